/* The executor's fork server and its client (design: rp_zygote.h). */
#include "rp_zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args, CLONE_PARENT */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RP_ZYGOTE_MAGIC_REQ 0x71505a52u   /* "RZPq" */
#define RP_ZYGOTE_MAGIC_ANS 0x61505a52u   /* "RZPa" */
#define RP_ZYGOTE_MAGIC_HELLO 0x68505a52u /* "RZPh" */

/* The wire format: both ends are the same build of the same tree on one
 * machine (the worker starts the executor next to it), so fixed-size
 * native-endian fields suffice; the magic catches a stranger. */
typedef struct rp_zygote_wire_limit {
    int32_t resource;
    uint32_t pad;
    uint64_t cur, max;
} rp_zygote_wire_limit_t;

typedef struct rp_zygote_req {
    uint32_t magic;
    uint32_t nlimits;
    rp_zygote_wire_limit_t limits[RP_ZYGOTE_LIMITS_MAX];
    uint32_t env_n;   /* NUL-terminated strings after the header */
    uint32_t env_len; /* their bytes */
} rp_zygote_req_t;

/* An answer (pid of the child, or err an errno) or the greeting (pid of
 * the server). */
typedef struct rp_zygote_ans {
    uint32_t magic;
    int32_t pid;
    int32_t err;
    uint32_t pad;
} rp_zygote_ans_t;

/* ------------------------------------------------------------------ */
/* Server                                                              */

/* fork(), except that the child's parent is our parent (the worker):
 * the worker waits for it as for any child of its own. clone3 first; a
 * seccomp profile that refuses it (Docker's answers ENOSYS) gets clone. */
static pid_t rp_zygote_clone(void)
{
    struct clone_args a;
    long r;

    /* No exit_signal: with CLONE_PARENT the child signals our parent as
     * we would (SIGCHLD, from the worker's vfork), and clone3 refuses
     * one given. */
    memset(&a, 0, sizeof(a));
    a.flags = CLONE_PARENT;
    r = syscall(SYS_clone3, &a, sizeof(a));
    if (r < 0 && errno == ENOSYS)
        r = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    return (pid_t)r;
}

/* The server's original environment block, [env_start, env_end) of
 * /proc/self/stat (fields 50 and 51): what the kernel shows as
 * /proc/PID/environ. NULL if unknown. */
static char *rp_zygote_env_area;
static size_t rp_zygote_env_room;

static void rp_zygote_find_env_area(void)
{
    char buf[2048], *p;
    unsigned long start = 0, end = 0;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field;
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')))
        return;
    /* After "(comm)" comes field 3; count spaces up to field 50. */
    for (field = 2, p++; *p && field < 50; p++)
        if (*p == ' ')
            field++;
    if (sscanf(p, "%lu %lu", &start, &end) == 2 && start && end > start) {
        rp_zygote_env_area = (char *)start;
        rp_zygote_env_room = end - start;
    }
}

/* Write env over the original block, NUL-padded, if it fits. */
static void rp_zygote_show_env(char **env)
{
    size_t off = 0;

    if (!rp_zygote_env_area)
        return;
    for (size_t i = 0; env[i]; i++) {
        size_t l = strlen(env[i]) + 1;

        if (off + l > rp_zygote_env_room)
            break; /* the rest is not shown, not wrong */
        memcpy(rp_zygote_env_area + off, env[i], l);
        off += l;
    }
    memset(rp_zygote_env_area + off, 0, rp_zygote_env_room - off);
}

/* The new executor: become what an exec'd one would be, then run main.
 * env points into the child's copy of the request buffer. */
static void __attribute__((noreturn))
rp_zygote_child(const rp_zygote_req_t *req, char **env, int memfd,
                const char *argv0, rp_zygote_main_fn main_fn)
{
    char *argv[] = {(char *)argv0, NULL};
    int fd;

    /* Own session and process group, as rp_backend_local.c's vfork child:
     * the executor outlives its worker. */
    setsid();
    for (uint32_t i = 0; i < req->nlimits; i++) {
        struct rlimit rl = {.rlim_cur = (rlim_t)req->limits[i].cur,
                            .rlim_max = (rlim_t)req->limits[i].max};

        /* Must not run unbounded: exit as a failed exec would. */
        if (setrlimit(req->limits[i].resource, &rl) != 0)
            _exit(127);
    }
    fd = memfd >= 0 ? memfd : open("/dev/null", O_RDONLY);
    if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) /* dup2 clears cloexec */
        _exit(127);
    close_range(3, ~0U, 0); /* the socket and the memfd's first copy */
    /* The old strings in the area are unused from here on: environ is
     * cleared first, and the new one points into the request buffer. */
    if (clearenv() != 0)
        _exit(127);
    rp_zygote_show_env(env);
    for (size_t i = 0; env[i]; i++)
        if (putenv(env[i]) != 0)
            _exit(127);
    exit(main_fn(1, argv));
}

static int rp_zygote_answer(int sock, uint32_t magic, pid_t pid, int err)
{
    rp_zygote_ans_t a = {.magic = magic, .pid = pid, .err = err};
    ssize_t n;

    do
        n = send(sock, &a, sizeof(a), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(a) ? 0 : -1;
}

/* Split the request's strings into env (RP_ZYGOTE_ENV_MAX + 1 slots).
 * Returns 0, or an errno for a malformed request. */
static int rp_zygote_parse(const rp_zygote_req_t *req, char *strs, size_t len,
                           char **env)
{
    size_t off = 0, n = 0;

    if (req->magic != RP_ZYGOTE_MAGIC_REQ || req->nlimits >
        RP_ZYGOTE_LIMITS_MAX || req->env_len != len ||
        req->env_n > RP_ZYGOTE_ENV_MAX)
        return EPROTO;
    while (off < len) {
        char *s = strs + off, *end = memchr(s, '\0', len - off);

        if (!end || n >= req->env_n || !strchr(s, '='))
            return EPROTO;
        env[n++] = s;
        off += (size_t)(end - s) + 1;
    }
    if (n != req->env_n)
        return EPROTO;
    env[n] = NULL;
    return 0;
}

int rp_zygote_serve(int sock, const char *argv0, rp_zygote_main_fn main_fn)
{
    /* Static: 64 KiB off the stack, and the children get a copy anyway. */
    static union {
        rp_zygote_req_t req;
        char bytes[sizeof(rp_zygote_req_t) + RP_ZYGOTE_MSG_MAX];
    } buf;
    static char *env[RP_ZYGOTE_ENV_MAX + 1];

    rp_zygote_find_env_area();
    if (rp_zygote_answer(sock, RP_ZYGOTE_MAGIC_HELLO, getpid(), 0) != 0)
        return 1;
    for (;;) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = {.iov_base = buf.bytes, .iov_len = sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b)};
        struct cmsghdr *c;
        int memfd = -1, err = 0;
        ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        pid_t pid = -1;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* the worker is gone (0) or the socket broke */
            return n == 0 ? 0 : 1;
        for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&memfd, CMSG_DATA(c), sizeof(int));
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
            err = EMSGSIZE;
        else if ((size_t)n < sizeof(rp_zygote_req_t))
            err = EPROTO;
        else
            err = rp_zygote_parse(&buf.req, buf.bytes + sizeof(buf.req),
                                  (size_t)n - sizeof(buf.req), env);
        if (!err) {
            pid = rp_zygote_clone();
            if (pid == 0)
                rp_zygote_child(&buf.req, env, memfd, argv0, main_fn);
            if (pid < 0)
                err = errno;
        }
        if (memfd >= 0)
            close(memfd);
        if (rp_zygote_answer(sock, RP_ZYGOTE_MAGIC_ANS, pid, err) != 0)
            return 1;
    }
}

/* ------------------------------------------------------------------ */
/* Client                                                              */

/* Read one answer with the given magic within timeout_ms. */
static rp_err_t rp_zygote_read(int sock, uint32_t magic, int timeout_ms,
                               rp_zygote_ans_t *a, char *errstr,
                               size_t errstr_size)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    ssize_t n;
    int r;

    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_TIMEOUT,
                       "the fork server did not answer in %d ms", timeout_ms);
    if (r < 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "poll: %s",
                       strerror(errno));
    do
        n = recv(sock, a, sizeof(*a), MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                       "the fork server has exited");
    if (n < 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO,
                       "reading the fork server: %s", strerror(errno));
    if (n != (ssize_t)sizeof(*a) || a->magic != magic)
        return rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                       "the fork server answered something else (%zd bytes)",
                       n);
    return RP_OK;
}

rp_err_t rp_zygote_hello(int sock, int timeout_ms, pid_t *pid_out,
                         char *errstr, size_t errstr_size)
{
    rp_zygote_ans_t a;
    rp_err_t err;

    *pid_out = -1;
    if ((err = rp_zygote_read(sock, RP_ZYGOTE_MAGIC_HELLO, timeout_ms, &a,
                              errstr, errstr_size)))
        return err;
    *pid_out = a.pid;
    return RP_OK;
}

rp_err_t rp_zygote_spawn(int sock, char *const *envp, int request_fd,
                         const rp_zygote_limit_t *limits, int nlimits,
                         int timeout_ms, pid_t *pid_out, char *errstr,
                         size_t errstr_size)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov;
    struct msghdr mh;
    rp_zygote_req_t *req = NULL;
    rp_zygote_ans_t a;
    size_t len = 0, n = 0, off;
    rp_err_t err;
    ssize_t w;

    *pid_out = -1;
    for (; envp[n]; n++)
        len += strlen(envp[n]) + 1;
    if (nlimits > RP_ZYGOTE_LIMITS_MAX || n > RP_ZYGOTE_ENV_MAX ||
        len > RP_ZYGOTE_MSG_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "%zu variables, %zu bytes: over one fork-server "
                      "request (%d, %d)", n, len, RP_ZYGOTE_ENV_MAX,
                      RP_ZYGOTE_MSG_MAX);
        goto out;
    }
    if (!(req = calloc(1, sizeof(*req) + len))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    req->magic = RP_ZYGOTE_MAGIC_REQ;
    req->nlimits = (uint32_t)nlimits;
    for (int i = 0; i < nlimits; i++) {
        req->limits[i].resource = limits[i].resource;
        req->limits[i].cur = limits[i].value.rlim_cur;
        req->limits[i].max = limits[i].value.rlim_max;
    }
    req->env_n = (uint32_t)n;
    req->env_len = (uint32_t)len;
    off = sizeof(*req);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(envp[i]) + 1;

        memcpy((char *)req + off, envp[i], l);
        off += l;
    }
    iov.iov_base = req;
    iov.iov_len = off;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (request_fd >= 0) {
        struct cmsghdr *c;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof(ctl.b);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &request_fd, sizeof(int));
    }
    do
        w = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)off) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                      "writing to the fork server: %s",
                      w < 0 ? strerror(errno) : "short write");
        goto out;
    }
    if ((err = rp_zygote_read(sock, RP_ZYGOTE_MAGIC_ANS, timeout_ms, &a,
                              errstr, errstr_size)))
        goto out;
    if (a.pid <= 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_SPAWN,
                      "the fork server could not start an executor: %s",
                      strerror(a.err));
        goto out;
    }
    *pid_out = a.pid;
    err = RP_OK;
out:
    free(req);
    return err;
}
