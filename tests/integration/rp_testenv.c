/* rp_testenv — see rp_testenv.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rp_test_dir.h"
#include "rp_test_fmt.h"
#include "rp_testenv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RP_TE_START_TIMEOUT_MS 20000 /* devbroker's bootstrap file */
/* RP_TEST_BROKER=kafka: format, JVM start and topic creation take about
 * 10 s on an idle 2-core machine, 25 s on a loaded one. */
#define RP_TE_KAFKA_START_TIMEOUT_MS 90000
#define RP_TE_FLUSH_TIMEOUT_MS 30000
#define RP_TE_NODE_TIMEOUT_MS 120000
#define RP_TE_KILL_WAIT_MS 10000
#define RP_TE_LOG_TAIL 24000 /* bytes of each log printed on failure */
#define RP_TE_ENVIRON_MAX (512 * 1024)

/* ------------------------------------------------------------------ */
/* Time, paths, files                                                  */

int64_t rp_te_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_te_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void rp_te_format(char *out, size_t out_size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rp_test_vformat(out, out_size, fmt, ap);
    va_end(ap);
}

void rp_te_path(const rp_te_t *te, char *out, size_t out_size, const char *rel)
{
    if (!rp_test_fmt(out, out_size, "%s/%s", te->dir, rel))
        fail_msg("path %s/%s is too long", te->dir, rel);
}

char *rp_te_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    char *data = NULL, *grown;
    size_t n = 0, cap = 0, got;

    if (!f)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (!(grown = realloc(data, cap + 1))) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

static const char *rp_te_base64(const unsigned char *p, size_t n, char *out,
                                size_t out_size)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    if (out_size < (n + 2) / 3 * 4 + 1)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* Printable ASCII (and tab/newline) only: safe to show as JSON text. */
static bool rp_te_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c > 0x7e)
            return false;
    }
    return true;
}

/* Add p[0..n) to obj as name (text) or name_base64. */
static void rp_te_json_bytes(cJSON *obj, const char *name, const char *p,
                             size_t n)
{
    char key[64], *b64;

    if (rp_te_printable(p, n)) {
        cJSON_AddStringToObject(obj, name, p);
        return;
    }
    snprintf(key, sizeof(key), "%s_base64", name);
    if ((b64 = malloc((n + 2) / 3 * 4 + 1))) {
        if (rp_te_base64((const unsigned char *)p, n, b64,
                         (n + 2) / 3 * 4 + 1))
            cJSON_AddStringToObject(obj, key, b64);
        free(b64);
    }
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */

/* Reap every exited child, recording the registered ones' status.
 * Unregistered children are executors and commands orphaned by a killed
 * worker (we are their subreaper). */
static void rp_te_reap(rp_te_t *te)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < te->n_procs; i++) {
            if (te->procs[i].pid == pid && !te->procs[i].reaped) {
                te->procs[i].reaped = true;
                te->procs[i].status = status;
            }
        }
    }
}

/* Parent pid and command name of pid from /proc; -1 when it is gone. */
static pid_t rp_te_proc_ppid(pid_t pid, char *comm, size_t comm_size)
{
    char path[64], buf[1024], *open_p, *close_p;
    pid_t ppid = -1;
    char state;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "PID (COMM) STATE PPID ...": COMM may hold spaces and ')'. */
    open_p = strchr(buf, '(');
    close_p = strrchr(buf, ')');
    if (!open_p || !close_p || close_p < open_p)
        return -1;
    if (comm && comm_size) {
        size_t len = (size_t)(close_p - open_p - 1);

        if (len >= comm_size)
            len = comm_size - 1;
        memcpy(comm, open_p + 1, len);
        comm[len] = '\0';
    }
    if (sscanf(close_p + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return ppid;
}

/* Call fn(pid, opaque) for every process whose parent is ppid. */
static void rp_te_each_child(pid_t ppid, void (*fn)(pid_t, void *),
                             void *opaque)
{
    DIR *d = opendir("/proc");
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);

        if (*end || pid <= 0)
            continue;
        if (rp_te_proc_ppid((pid_t)pid, NULL, 0) == ppid)
            fn((pid_t)pid, opaque);
    }
    closedir(d);
}

static void rp_te_kill_one(pid_t pid, void *opaque)
{
    int *count = opaque;

    kill(pid, SIGKILL);
    (*count)++;
}

/* SIGKILL and reap every child of ours (registered or orphaned), until
 * none is left or RP_TE_KILL_WAIT_MS passed. */
static void rp_te_kill_all_children(rp_te_t *te)
{
    int64_t deadline = rp_te_now_ms() + RP_TE_KILL_WAIT_MS;

    for (;;) {
        int count = 0;

        rp_te_reap(te);
        rp_te_each_child(getpid(), rp_te_kill_one, &count);
        rp_te_reap(te);
        if (count == 0 && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
            return;
        if (rp_te_now_ms() > deadline) {
            print_message("[rig] warning: child processes still present "
                          "after %d ms\n", RP_TE_KILL_WAIT_MS);
            return;
        }
        rp_te_sleep_ms(20);
    }
}

typedef struct rp_te_orphan_count {
    const rp_te_t *te;
    int n;
} rp_te_orphan_count_t;

static void rp_te_count_orphan(pid_t pid, void *opaque)
{
    rp_te_orphan_count_t *c = opaque;

    for (int i = 0; i < c->te->n_procs; i++)
        if (c->te->procs[i].pid == pid)
            return; /* one of ours, not an orphan */
    c->n++;
}

bool rp_te_wait_orphans(rp_te_t *te, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;

    for (;;) {
        rp_te_orphan_count_t c = {.te = te, .n = 0};

        rp_te_reap(te); /* exited orphans are zombies until reaped */
        rp_te_each_child(getpid(), rp_te_count_orphan, &c);
        if (c.n == 0)
            return true;
        if (rp_te_now_ms() >= deadline)
            return false;
        rp_te_sleep_ms(20);
    }
}

/* fork+exec argv[0] with stdin from in_path (NULL: /dev/null), stdout and
 * stderr to files (NULL: ours) and the given environment (NULL: ours). The
 * child dies with us (PR_SET_PDEATHSIG), so a test killed by CTest leaves
 * nothing behind. Returns the pid or -1. */
static pid_t rp_te_spawn(char **envp, char *const argv[], const char *in_path,
                         const char *out_path, const char *err_path)
{
    int in_fd, out_fd, err_fd;
    pid_t parent = getpid(), pid;
    sigset_t none;

    in_fd = open(in_path ? in_path : "/dev/null", O_RDONLY | O_CLOEXEC);
    err_fd = err_path ? open(err_path,
                             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
                      : fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    if (out_path && err_path && !strcmp(out_path, err_path))
        out_fd = err_fd >= 0 ? fcntl(err_fd, F_DUPFD_CLOEXEC, 0) : -1;
    else if (out_path)
        out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    else
        out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
        pid = -1;
        goto out;
    }
    sigemptyset(&none);
    pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls from here to execve. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(in_fd, STDIN_FILENO);
        dup2(out_fd, STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        execve(argv[0], argv, envp ? envp : environ);
        _exit(127);
    }
out:
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    return pid;
}

/* Register and start a process; returns its index or -1 (errbuf says). */
static int rp_te_start(rp_te_t *te, rp_te_kind_t kind, const char *name,
                       char *const argv[], const char *out_path, char *errbuf,
                       size_t errsize)
{
    rp_te_proc_t *p;
    char log[PATH_MAX];

    if (te->n_procs >= RP_TE_PROCS_MAX) {
        snprintf(errbuf, errsize, "more than %d processes", RP_TE_PROCS_MAX);
        return -1;
    }
    if (!rp_test_fmt(log, sizeof(log), "%s/%s.log", te->dir, name)) {
        snprintf(errbuf, errsize, "log path too long");
        return -1;
    }
    p = &te->procs[te->n_procs];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    snprintf(p->name, sizeof(p->name), "%s", name);
    memcpy(p->log_path, log, sizeof(p->log_path));
    p->pid = rp_te_spawn(te->child_env, argv, NULL, out_path ? out_path : log,
                         log);
    if (p->pid < 0) {
        snprintf(errbuf, errsize, "cannot start %s: %s", argv[0],
                 strerror(errno));
        return -1;
    }
    return te->n_procs++;
}

int rp_te_start_worker(rp_te_t *te)
{
    return rp_te_start_worker_args(te, NULL);
}

/* TMP/kafka-secret.conf: a planted sasl.password (librdkafka keeps it
 * unused on a PLAINTEXT connection), mode 0600 as runpool demands of a
 * config file holding a password. */
static void rp_te_kafka_secret_conf(rp_te_t *te, char *path, size_t size)
{
    FILE *f;
    int fd;

    rp_te_path(te, path, size, "kafka-secret.conf");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w")))
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# planted by the rig: must never show in a log\n"
               "sasl.password=%s\n",
            rp_te_secret(RP_TE_SECRET_KAFKA_PASSWORD));
    if (fclose(f) != 0)
        fail_msg("cannot write %s", path);
    rp_te_planted(te, RP_TE_SECRET_KAFKA_PASSWORD);
}

int rp_te_start_worker_args(rp_te_t *te, const char *const *extra)
{
    char exe[PATH_MAX], state[PATH_MAX + 16], work[PATH_MAX], name[32];
    char host[128] = "host", drain[16], session[64], err[256];
    char kconf[PATH_MAX];
    char *argv[41];
    int n = 0, idx;

    if (!rp_test_fmt(exe, sizeof(exe), "%s/runpool-worker", te->bin_dir) ||
        !rp_test_fmt(state, sizeof(state), "%s", te->state_url) ||
        !rp_test_fmt(work, sizeof(work), "%s/work", te->dir))
        fail_msg("worker paths too long");
    snprintf(name, sizeof(name), "worker-%d", ++te->n_workers);
    snprintf(drain, sizeof(drain), "%d", RP_TE_DRAIN_TIMEOUT_S);
    snprintf(session, sizeof(session), "session.timeout.ms=%d",
             RP_TE_SESSION_TIMEOUT_MS);
    if (te->worker_unset[0]) {
        argv[n++] = "/usr/bin/env"; /* execs the worker: same pid */
        argv[n++] = "-u";
        argv[n++] = te->worker_unset;
    }
    argv[n++] = exe;
    argv[n++] = "--brokers";
    argv[n++] = te->brokers;
    argv[n++] = "--group";
    argv[n++] = te->group;
    argv[n++] = "--backend";
    argv[n++] = te->backend;
    argv[n++] = "--state";
    argv[n++] = state;
    argv[n++] = "--workdir";
    argv[n++] = work;
    argv[n++] = "--drain-timeout";
    argv[n++] = drain;
    argv[n++] = "-X";
    argv[n++] = session;
    argv[n++] = "-X";
    argv[n++] = "heartbeat.interval.ms=500";
    argv[n++] = "-X";
    argv[n++] = "fetch.wait.max.ms=100";
    argv[n++] = "--kafka-config";
    argv[n++] = kconf;
    rp_te_kafka_secret_conf(te, kconf, sizeof(kconf));
    /* The tests written before workspace snapshots look for a session's
     * files in work/SID: the local backend's "keep". A test of snapshots
     * passes --workspace /workspace in extra (the later one wins). */
    if (!strcmp(te->backend, "local")) {
        argv[n++] = "--workspace";
        argv[n++] = "keep";
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n >= (int)(sizeof(argv) / sizeof(argv[0])) - 1)
            fail_msg("too many worker arguments");
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    idx = rp_te_start(te, RP_TE_WORKER, name, argv, NULL, err, sizeof(err));
    if (idx < 0)
        fail_msg("%s", err);
    /* The worker names itself HOST:PID (worker_main.c) unless told. */
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(te->procs[idx].worker_id, sizeof(te->procs[idx].worker_id),
             "%s:%ld", host, (long)te->procs[idx].pid);
    print_message("[rig] started %s pid %ld\n", name,
                  (long)te->procs[idx].pid);
    return idx;
}

void rp_te_setenv(rp_te_t *te, const char *name, const char *value)
{
    size_t nlen = strlen(name), n = 0;
    char *entry, **env;

    if (asprintf(&entry, "%s=%s", name, value) < 0)
        fail_msg("out of memory");
    for (n = 0; te->child_env[n]; n++) {
        if (!strncmp(te->child_env[n], name, nlen) &&
            te->child_env[n][nlen] == '=') {
            free(te->child_env[n]);
            te->child_env[n] = entry;
            return;
        }
    }
    if (!(env = realloc(te->child_env, (n + 2) * sizeof(*env)))) {
        free(entry);
        fail_msg("out of memory");
    }
    env[n] = entry;
    env[n + 1] = NULL;
    te->child_env = env;
}

/* Wait until file holds one whole line (its writer writes it atomically,
 * or a single short write) and copy it without the newline into line;
 * false with err set when process idx exits first or timeout_ms passes. */
static bool rp_te_wait_line(rp_te_t *te, int idx, const char *file,
                            char *line, size_t line_size, int timeout_ms,
                            char *err, size_t errsize)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;

    for (;;) {
        char *text = rp_te_read_file(file, NULL), *nl;

        if (text && (nl = strchr(text, '\n'))) {
            *nl = '\0';
            if (!rp_test_fmt(line, line_size, "%s", text)) {
                snprintf(err, errsize, "the line in %.300s is too long", file);
                free(text);
                return false;
            }
            free(text);
            return true;
        }
        free(text);
        if (!rp_te_alive(te, idx)) {
            snprintf(err, errsize, "%s exited at start: see %.300s",
                     te->procs[idx].name, te->procs[idx].log_path);
            return false;
        }
        if (rp_te_now_ms() >= deadline) {
            snprintf(err, errsize, "nothing in %.300s from %s in %d ms", file,
                     te->procs[idx].name, timeout_ms);
            return false;
        }
        rp_te_sleep_ms(20);
    }
}

int rp_te_start_service(rp_te_t *te, const char *name, char *const argv[],
                        const char *out_path, const char *ready_file,
                        char *line, size_t line_size, int timeout_ms)
{
    char err[512];
    int idx;

    idx = rp_te_start(te, RP_TE_SERVICE, name, argv, out_path, err,
                      sizeof(err));
    if (idx < 0)
        fail_msg("%s", err);
    if (!rp_te_wait_line(te, idx, ready_file, line, line_size, timeout_ms, err,
                         sizeof(err)))
        fail_msg("%s", err);
    print_message("[rig] started %s pid %ld: %s\n", name,
                  (long)te->procs[idx].pid, line);
    return idx;
}

void rp_te_signal(rp_te_t *te, int idx, int sig)
{
    rp_te_reap(te);
    te->procs[idx].signalled = true;
    if (!te->procs[idx].reaped)
        kill(te->procs[idx].pid, sig);
}

/* Describe into te->died the first process that exited unasked; true if
 * there is one. */
static bool rp_te_find_death(rp_te_t *te)
{
    rp_te_reap(te);
    for (int i = 0; i < te->n_procs && !te->died[0]; i++) {
        const rp_te_proc_t *p = &te->procs[i];

        if (!p->reaped || p->signalled)
            continue;
        if (WIFSIGNALED(p->status))
            snprintf(te->died, sizeof(te->died),
                     "%s (pid %ld) died of signal %d unasked: see its log",
                     p->name, (long)p->pid, WTERMSIG(p->status));
        else
            snprintf(te->died, sizeof(te->died),
                     "%s (pid %ld) exited %d unasked: see its log", p->name,
                     (long)p->pid, WEXITSTATUS(p->status));
    }
    return te->died[0] != '\0';
}

void rp_te_check_procs(rp_te_t *te)
{
    if (rp_te_find_death(te))
        fail_msg("%s", te->died);
}

bool rp_te_wait_exit(rp_te_t *te, int idx, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;

    for (;;) {
        rp_te_reap(te);
        if (te->procs[idx].reaped)
            return true;
        if (rp_te_now_ms() >= deadline)
            return false;
        rp_te_sleep_ms(10);
    }
}

bool rp_te_alive(rp_te_t *te, int idx)
{
    rp_te_reap(te);
    return !te->procs[idx].reaped && kill(te->procs[idx].pid, 0) == 0;
}

int rp_te_worker_by_id(const rp_te_t *te, const char *id)
{
    for (int i = 0; id && i < te->n_procs; i++)
        if (te->procs[i].kind == RP_TE_WORKER &&
            !strcmp(te->procs[i].worker_id, id))
            return i;
    return -1;
}

int rp_te_log_events(rp_te_t *te, int idx, const char *event,
                     const char *msg_prefix)
{
    char *log = rp_te_read_file(te->procs[idx].log_path, NULL), *line, *save;
    char needle[128];
    int n = 0;

    rp_te_format(needle, sizeof(needle), "\"event\":\"%s\"", event);
    for (line = log ? strtok_r(log, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j, *ev, *msg;

        if (!strstr(line, needle) || !(j = cJSON_Parse(line)))
            continue;
        ev = cJSON_GetObjectItemCaseSensitive(j, "event");
        msg = cJSON_GetObjectItemCaseSensitive(j, "msg");
        if (cJSON_IsString(ev) && !strcmp(ev->valuestring, event) &&
            (!msg_prefix ||
             (cJSON_IsString(msg) &&
              !strncmp(msg->valuestring, msg_prefix, strlen(msg_prefix)))))
            n++;
        cJSON_Delete(j);
    }
    free(log);
    return n;
}

int rp_te_worker_partitions(rp_te_t *te, int idx, int *events)
{
    char *log = rp_te_read_file(te->procs[idx].log_path, NULL), *line, *save;
    int net = 0, ev = 0;

    for (line = log ? strtok_r(log, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j, *event, *msg;
        int k;

        if (!strstr(line, "\"partitions_"))
            continue;
        if (!(j = cJSON_Parse(line)))
            continue;
        event = cJSON_GetObjectItemCaseSensitive(j, "event");
        msg = cJSON_GetObjectItemCaseSensitive(j, "msg");
        if (cJSON_IsString(event) && cJSON_IsString(msg) &&
            sscanf(msg->valuestring, "%d", &k) == 1) {
            if (!strcmp(event->valuestring, "partitions_assigned")) {
                net += k;
                ev++;
            } else if (!strcmp(event->valuestring, "partitions_revoked")) {
                net -= k;
            }
        }
        cJSON_Delete(j);
    }
    free(log);
    if (events)
        *events = ev;
    return net;
}

int rp_te_wait_group(rp_te_t *te, const int *workers, int n, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    int held[RP_TE_PROCS_MAX], sum, holders, alive;
    bool all_assigned;

    assert_true(n <= RP_TE_PROCS_MAX);
    for (;;) {
        rp_te_check_procs(te);
        sum = holders = alive = 0;
        all_assigned = true;
        for (int i = 0; i < n; i++) {
            int ev = 0;

            held[i] = 0;
            if (!rp_te_alive(te, workers[i]))
                continue;
            alive++;
            held[i] = rp_te_worker_partitions(te, workers[i], &ev);
            sum += held[i];
            holders += held[i] > 0;
            all_assigned = all_assigned && ev > 0;
        }
        if (alive == 0)
            fail_msg("no worker is alive (see the logs below)");
        if (sum == RP_TE_PARTITIONS && all_assigned)
            break;
        if (rp_te_now_ms() >= deadline) {
            if (sum == RP_TE_PARTITIONS)
                break; /* settled, one worker holds everything: allowed */
            fail_msg("the consumer group did not settle in %d ms: the live "
                     "workers hold %d of %d partitions",
                     timeout_ms, sum, RP_TE_PARTITIONS);
        }
        rp_te_sleep_ms(100);
    }
    for (int i = 0; i < n; i++)
        print_message("[rig] %s holds %d partition(s)\n",
                      te->procs[workers[i]].name, held[i]);
    return holders;
}

/* EXECUTION_ID from /proc/PID/environ into eid; false if absent. */
static bool rp_te_proc_execution_id(pid_t pid, char *eid, size_t size)
{
    char path[64];
    char *env;
    size_t len;
    bool found = false;

    snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
    if (!(env = rp_te_read_file(path, &len)))
        return false;
    for (size_t off = 0; off < len; off += strlen(env + off) + 1) {
        if (!strncmp(env + off, "EXECUTION_ID=", 13)) {
            found = rp_test_fmt(eid, size, "%s", env + off + 13);
            break;
        }
    }
    free(env);
    return found;
}

typedef struct rp_te_exec_scan {
    char (*eids)[RP_TE_ID_MAX + 1];
    size_t max, n;
} rp_te_exec_scan_t;

static void rp_te_scan_executor(pid_t pid, void *opaque)
{
    rp_te_exec_scan_t *s = opaque;
    char spare[RP_TE_ID_MAX + 1];
    /* Read straight into the caller's next slot; past max only counted. */
    char *eid = s->n < s->max ? s->eids[s->n] : spare;

    /* Between fork and execve the child still has the worker's
     * environment, without EXECUTION_ID: skipped until it runs. */
    if (rp_te_proc_execution_id(pid, eid, sizeof(spare)))
        s->n++;
}

size_t rp_te_running_executions(rp_te_t *te, char (*eids)[RP_TE_ID_MAX + 1],
                                size_t max)
{
    rp_te_exec_scan_t s = {.eids = eids, .max = max, .n = 0};

    rp_te_check_procs(te);

    for (int i = 0; i < te->n_procs; i++)
        if (te->procs[i].kind == RP_TE_WORKER && rp_te_alive(te, i))
            rp_te_each_child(te->procs[i].pid, rp_te_scan_executor, &s);
    return s.n;
}

size_t rp_te_worker_executions(rp_te_t *te, int idx,
                               char (*eids)[RP_TE_ID_MAX + 1], size_t max)
{
    rp_te_exec_scan_t s = {.eids = eids, .max = max, .n = 0};

    rp_te_check_procs(te);
    if (te->procs[idx].kind == RP_TE_WORKER && rp_te_alive(te, idx))
        rp_te_each_child(te->procs[idx].pid, rp_te_scan_executor, &s);
    return s.n;
}

/* ------------------------------------------------------------------ */
/* Collector                                                           */

static void rp_te_msg_free(rp_te_msg_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->key);
    free(m->value);
    cJSON_Delete(m->json);
    free(m);
}

static char *rp_te_memdup(const void *p, size_t n)
{
    char *c = malloc(n + 1);

    if (c) {
        if (n)
            memcpy(c, p, n);
        c[n] = '\0';
    }
    return c;
}

/* Copy what we need of a consumed message; NULL when out of memory. */
static rp_te_msg_t *rp_te_msg_copy(const rd_kafka_message_t *km, bool result)
{
    rp_te_msg_t *m = calloc(1, sizeof(*m));
    rd_kafka_headers_t *h = NULL;

    if (!m)
        return NULL;
    m->partition = km->partition;
    m->offset = km->offset;
    m->has_key = km->key != NULL;
    m->key_len = km->key ? km->key_len : 0;
    m->key = rp_te_memdup(km->key, m->key_len);
    m->value_null = km->payload == NULL;
    m->value_len = km->payload ? km->len : 0;
    m->value = rp_te_memdup(km->payload, m->value_len);
    if (!m->key || !m->value)
        goto oom;
    if (rd_kafka_message_headers(km, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t cnt = rd_kafka_header_cnt(h);

        if (!(m->headers = calloc(cnt ? cnt : 1, sizeof(*m->headers))))
            goto oom;
        for (size_t i = 0; i < cnt; i++) {
            const char *name;
            const void *val;
            size_t size;

            if (rd_kafka_header_get_all(h, i, &name, &val, &size))
                break;
            m->headers[i].name = strdup(name);
            m->headers[i].value = val ? rp_te_memdup(val, size) : NULL;
            m->headers[i].len = val ? size : 0;
            m->n_headers++;
            if (!m->headers[i].name || (val && !m->headers[i].value))
                goto oom;
        }
    }
    if (result)
        m->json = cJSON_ParseWithLength(m->value, m->value_len);
    m->received_ms = rp_te_now_ms();
    return m;
oom:
    rp_te_msg_free(m);
    return NULL;
}

static bool rp_te_append(rp_te_msg_t ***arr, size_t *n, size_t *cap,
                         rp_te_msg_t *m)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        rp_te_msg_t **g = realloc(*arr, nc * sizeof(*g));

        if (!g)
            return false;
        *arr = g;
        *cap = nc;
    }
    (*arr)[(*n)++] = m;
    return true;
}

/* results.jsonl: the document as received, on one line (JSON whitespace
 * only, so turning newlines into spaces keeps it the same document). */
static void rp_te_log_result(FILE *f, const rp_te_msg_t *m)
{
    for (size_t i = 0; i < m->value_len; i++) {
        char c = m->value[i];

        fputc(c == '\n' || c == '\r' ? ' ' : c, f);
    }
    fputc('\n', f);
    fflush(f);
}

/* dlq.jsonl: an envelope, since a DLQ payload need not be JSON. */
static void rp_te_log_dlq(FILE *f, const rp_te_msg_t *m)
{
    cJSON *o = cJSON_CreateObject(), *h;
    char *line;

    if (!o)
        return;
    cJSON_AddNumberToObject(o, "partition", m->partition);
    cJSON_AddNumberToObject(o, "offset", (double)m->offset);
    if (m->has_key)
        rp_te_json_bytes(o, "key", m->key, m->key_len);
    else
        cJSON_AddNullToObject(o, "key");
    if ((h = cJSON_AddObjectToObject(o, "headers"))) {
        for (size_t i = 0; i < m->n_headers; i++) {
            if (m->headers[i].value)
                rp_te_json_bytes(h, m->headers[i].name, m->headers[i].value,
                                 m->headers[i].len);
            else
                cJSON_AddNullToObject(h, m->headers[i].name);
        }
    }
    if (m->value_null)
        cJSON_AddNullToObject(o, "payload"); /* a tombstone */
    else
        rp_te_json_bytes(o, "payload", m->value, m->value_len);
    if ((line = cJSON_PrintUnformatted(o))) {
        fprintf(f, "%s\n", line);
        fflush(f);
        free(line);
    }
    cJSON_Delete(o);
}

static void *rp_te_collector_main(void *arg)
{
    rp_te_t *te = arg;

    while (!atomic_load(&te->stop)) {
        rd_kafka_message_t *km = rd_kafka_consumer_poll(te->consumer, 100);
        bool result;
        rp_te_msg_t *m;

        if (!km)
            continue;
        if (km->err && atomic_load(&te->broker_restarts) > 0 &&
            (km->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
             km->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)) {
            /* The test restarts the broker: librdkafka reconnects. */
            rd_kafka_message_destroy(km);
            continue;
        }
        if (km->err) {
            pthread_mutex_lock(&te->lock);
            if (!te->collector_error[0])
                snprintf(te->collector_error, sizeof(te->collector_error),
                         "consumer error: %s", rd_kafka_message_errstr(km));
            pthread_mutex_unlock(&te->lock);
            rd_kafka_message_destroy(km);
            continue;
        }
        result = !strcmp(rd_kafka_topic_name(km->rkt), RP_TOPIC_RESULTS);
        m = rp_te_msg_copy(km, result);
        rd_kafka_message_destroy(km);
        pthread_mutex_lock(&te->lock);
        if (!m ||
            !(result ? rp_te_append(&te->results, &te->n_results,
                                    &te->cap_results, m)
                     : rp_te_append(&te->dlq, &te->n_dlq, &te->cap_dlq, m))) {
            snprintf(te->collector_error, sizeof(te->collector_error),
                     "collector out of memory");
            rp_te_msg_free(m);
        } else if (result) {
            rp_te_log_result(te->results_log, m);
        } else {
            rp_te_log_dlq(te->dlq_log, m);
        }
        pthread_cond_broadcast(&te->cond);
        pthread_mutex_unlock(&te->lock);
    }
    return NULL;
}

static bool rp_te_conf(rd_kafka_conf_t *conf, const char *name,
                       const char *value, char *err, size_t errsize)
{
    return rd_kafka_conf_set(conf, name, value, err, errsize) ==
           RD_KAFKA_CONF_OK;
}

/* A consumer with every partition of results and DLQ assigned from the
 * beginning (no group subscription: it sees everything, commits nothing). */
static bool rp_te_start_collector(rp_te_t *te, char *err, size_t errsize)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts;
    char group[160];
    rd_kafka_resp_err_t kerr;

    snprintf(group, sizeof(group), "%s-collector", te->group);
    /* group.id only because rd_kafka_consumer_poll needs one; nothing is
     * ever committed. */
    if (!rp_te_conf(conf, "bootstrap.servers", te->brokers, err, errsize) ||
        !rp_te_conf(conf, "group.id", group, err, errsize) ||
        !rp_te_conf(conf, "enable.auto.commit", "false", err, errsize) ||
        !rp_te_conf(conf, "enable.auto.offset.store", "false", err, errsize) ||
        /* librdkafka's default, said out loud: results are read as a
         * consumer of runpool must read them (only committed transactions;
         * the mock cluster of the devbroker ignores it). */
        !rp_te_conf(conf, "isolation.level", "read_committed", err,
                    errsize) ||
        !rp_te_conf(conf, "fetch.wait.max.ms", "50", err, errsize)) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    if (!(te->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errsize)))
        return false;
    rd_kafka_poll_set_consumer(te->consumer);
    parts = rd_kafka_topic_partition_list_new(2 * RP_TE_PARTITIONS);
    for (int p = 0; p < RP_TE_PARTITIONS; p++) {
        rd_kafka_topic_partition_list_add(parts, RP_TOPIC_RESULTS, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_topic_partition_list_add(parts, RP_TOPIC_DLQ, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    kerr = rd_kafka_assign(te->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (kerr) {
        snprintf(err, errsize, "assign: %s", rd_kafka_err2str(kerr));
        return false;
    }
    if (pthread_create(&te->collector, NULL, rp_te_collector_main, te)) {
        snprintf(err, errsize, "cannot start the collector thread");
        return false;
    }
    te->collector_started = true;
    return true;
}

static void rp_te_stop_collector(rp_te_t *te)
{
    if (!te->collector_started)
        return;
    atomic_store(&te->stop, true);
    pthread_join(te->collector, NULL);
    te->collector_started = false;
}

/* ------------------------------------------------------------------ */
/* Producing                                                           */

static void rp_te_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    rp_te_t *te = opaque;
    rp_te_sent_t *sent = m->_private;

    (void)rk;
    if (m->err) {
        te->n_delivery_failures++;
        snprintf(te->delivery_error, sizeof(te->delivery_error), "%s",
                 rd_kafka_err2str(m->err));
    }
    if (sent) {
        sent->delivered = !m->err;
        sent->err = m->err;
        sent->partition = m->partition;
        sent->offset = m->offset;
    }
}

static bool rp_te_start_producer(rp_te_t *te, char *err, size_t errsize)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    /* Like runpool's producers (kafka/rp_kafka.c): murmur2_random, so a
     * session_id key lands where any Kafka client would put it; idempotent,
     * so one session's requests can never be reordered by a retry. */
    if (!rp_te_conf(conf, "bootstrap.servers", te->brokers, err, errsize) ||
        !rp_te_conf(conf, "partitioner", "murmur2_random", err, errsize) ||
        !rp_te_conf(conf, "enable.idempotence", "true", err, errsize) ||
        !rp_te_conf(conf, "acks", "all", err, errsize) ||
        !rp_te_conf(conf, "linger.ms", "5", err, errsize)) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_conf_set_opaque(conf, te);
    rd_kafka_conf_set_dr_msg_cb(conf, rp_te_dr_cb);
    te->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errsize);
    return te->producer != NULL;
}

void rp_te_send_raw(rp_te_t *te, const char *key, size_t key_len,
                    const char *payload, size_t len, rp_te_sent_t *sent)
{
    rd_kafka_resp_err_t kerr;
    int64_t deadline = rp_te_now_ms() + RP_TE_FLUSH_TIMEOUT_MS;

    if (sent)
        memset(sent, 0, sizeof(*sent));
    for (;;) {
        kerr = rd_kafka_producev(
            te->producer, RD_KAFKA_V_TOPIC(RP_TOPIC_REQUESTS),
            RD_KAFKA_V_KEY(key, key ? key_len : 0),
            RD_KAFKA_V_VALUE((void *)payload, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(sent),
            RD_KAFKA_V_END);
        if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
            rp_te_now_ms() >= deadline)
            break;
        rd_kafka_poll(te->producer, 50);
    }
    if (kerr)
        fail_msg("produce: %s", rd_kafka_err2str(kerr));
    rd_kafka_poll(te->producer, 0);
}

/* RFC 3339 UTC with milliseconds, like the schema's timestamp. */
static void rp_te_rfc3339_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* Produce a request document keyed by its session and log it. */
static void rp_te_send_doc(rp_te_t *te, const char *session_id, cJSON *doc,
                           rp_te_sent_t *sent)
{
    char now[48], *text;

    rp_te_rfc3339_now(now, sizeof(now));
    cJSON_AddStringToObject(doc, "submitted_at", now);
    if (!(text = cJSON_PrintUnformatted(doc)))
        fail_msg("out of memory");
    cJSON_Delete(doc);
    rp_te_send_raw(te, session_id, strlen(session_id), text, strlen(text),
                   sent);
    fprintf(te->requests_log, "%s\n", text);
    fflush(te->requests_log);
    free(text);
}

void rp_te_send_exec(rp_te_t *te, const char *session_id,
                     const char *execution_id, const char *command,
                     int timeout_s, const char *const *env)
{
    rp_te_send_exec_sent(te, session_id, execution_id, command, timeout_s, env,
                         NULL);
}

void rp_te_send_exec_sent(rp_te_t *te, const char *session_id,
                          const char *execution_id, const char *command,
                          int timeout_s, const char *const *env,
                          rp_te_sent_t *sent)
{
    cJSON *doc = cJSON_CreateObject(), *e;

    assert_non_null(doc);
    cJSON_AddNumberToObject(doc, "v", 1);
    cJSON_AddStringToObject(doc, "execution_id", execution_id);
    cJSON_AddStringToObject(doc, "session_id", session_id);
    cJSON_AddStringToObject(doc, "command", command);
    if (timeout_s > 0)
        cJSON_AddNumberToObject(doc, "timeout_s", timeout_s);
    e = cJSON_AddObjectToObject(doc, "env");
    assert_non_null(e);
    for (size_t i = 0; env && env[i] && env[i + 1]; i += 2)
        cJSON_AddStringToObject(e, env[i], env[i + 1]);
    cJSON_AddStringToObject(e, RP_TE_SECRET_ENV_NAME,
                            rp_te_secret(RP_TE_SECRET_REQUEST_ENV));
    rp_te_planted(te, RP_TE_SECRET_REQUEST_ENV);
    rp_te_send_doc(te, session_id, doc, sent);
}

void rp_te_send_close(rp_te_t *te, const char *session_id,
                      const char *execution_id)
{
    cJSON *doc = cJSON_CreateObject();

    assert_non_null(doc);
    cJSON_AddNumberToObject(doc, "v", 1);
    cJSON_AddStringToObject(doc, "execution_id", execution_id);
    cJSON_AddStringToObject(doc, "session_id", session_id);
    cJSON_AddStringToObject(doc, "op", "close_session");
    rp_te_send_doc(te, session_id, doc, NULL);
}

void rp_te_send_request(rp_te_t *te, const char *session_id, cJSON *doc)
{
    rp_te_send_doc(te, session_id, doc, NULL);
}

void rp_te_flush(rp_te_t *te)
{
    rd_kafka_resp_err_t kerr = rd_kafka_flush(te->producer,
                                              RP_TE_FLUSH_TIMEOUT_MS);

    if (kerr)
        fail_msg("flush: %s (%d message(s) still queued)",
                 rd_kafka_err2str(kerr), rd_kafka_outq_len(te->producer));
    if (te->n_delivery_failures)
        fail_msg("%zu message(s) were not delivered: %s",
                 te->n_delivery_failures, te->delivery_error);
}

/* ------------------------------------------------------------------ */
/* Reading what was collected                                          */

size_t rp_te_result_count(rp_te_t *te)
{
    size_t n;

    pthread_mutex_lock(&te->lock);
    n = te->n_results;
    pthread_mutex_unlock(&te->lock);
    return n;
}

const rp_te_msg_t *rp_te_result_at(rp_te_t *te, size_t i)
{
    const rp_te_msg_t *m;

    pthread_mutex_lock(&te->lock);
    m = i < te->n_results ? te->results[i] : NULL;
    pthread_mutex_unlock(&te->lock);
    return m;
}

size_t rp_te_dlq_count(rp_te_t *te)
{
    size_t n;

    pthread_mutex_lock(&te->lock);
    n = te->n_dlq;
    pthread_mutex_unlock(&te->lock);
    return n;
}

const rp_te_msg_t *rp_te_dlq_at(rp_te_t *te, size_t i)
{
    const rp_te_msg_t *m;

    pthread_mutex_lock(&te->lock);
    m = i < te->n_dlq ? te->dlq[i] : NULL;
    pthread_mutex_unlock(&te->lock);
    return m;
}

const char *rp_te_str(const rp_te_msg_t *m, const char *field)
{
    const cJSON *v =
        m && m->json ? cJSON_GetObjectItemCaseSensitive(m->json, field) : NULL;

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool rp_te_int(const rp_te_msg_t *m, const char *field, long long *out)
{
    const cJSON *v =
        m && m->json ? cJSON_GetObjectItemCaseSensitive(m->json, field) : NULL;

    if (!cJSON_IsNumber(v))
        return false;
    *out = (long long)v->valuedouble;
    return true;
}

const char *rp_te_error(const rp_te_msg_t *m, const char *field)
{
    const cJSON *e =
        m && m->json ? cJSON_GetObjectItemCaseSensitive(m->json, "error")
                     : NULL;
    const cJSON *v = cJSON_IsObject(e)
                         ? cJSON_GetObjectItemCaseSensitive(e, field)
                         : NULL;

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *rp_te_header(const rp_te_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (!strcmp(m->headers[i].name, name))
            return m->headers[i].value;
    return NULL;
}

static bool rp_te_is_eid(const rp_te_msg_t *m, const char *eid)
{
    const char *e = rp_te_str(m, "execution_id");

    return e && !strcmp(e, eid);
}

/* Wait on the collector's condition until deadline; false once it passed.
 * Called with te->lock held. */
static bool rp_te_wait_until(rp_te_t *te, int64_t deadline)
{
    int64_t now = rp_te_now_ms(), left = deadline - now;
    struct timespec ts;

    if (left <= 0)
        return false;
    if (left > 200)
        left = 200; /* re-check now and then regardless */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&te->cond, &te->lock, &ts);
    /* A dead worker ends the wait early; the caller fails once it has
     * released the lock (teardown needs it). */
    pthread_mutex_unlock(&te->lock);
    rp_te_find_death(te);
    pthread_mutex_lock(&te->lock);
    return te->died[0] == '\0';
}

const rp_te_msg_t *rp_te_wait_result(rp_te_t *te, const char *execution_id,
                                     int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    const rp_te_msg_t *found = NULL;
    size_t checked = 0;

    pthread_mutex_lock(&te->lock);
    do {
        for (; checked < te->n_results && !found; checked++)
            if (rp_te_is_eid(te->results[checked], execution_id))
                found = te->results[checked];
    } while (!found && rp_te_wait_until(te, deadline));
    pthread_mutex_unlock(&te->lock);
    if (!found)
        rp_te_check_procs(te);
    return found;
}

const rp_te_msg_t *rp_te_need_result(rp_te_t *te, const char *execution_id,
                                     int timeout_ms)
{
    const rp_te_msg_t *m = rp_te_wait_result(te, execution_id, timeout_ms);

    if (!m)
        fail_msg("no result for %s in %d ms", execution_id, timeout_ms);
    return m;
}

void rp_te_wait_results_for(rp_te_t *te, const char *const *eids, size_t n,
                            int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    bool *seen = calloc(n ? n : 1, sizeof(*seen));
    size_t checked = 0, missing = n;
    const char *first_missing = NULL;

    assert_non_null(seen);
    pthread_mutex_lock(&te->lock);
    do {
        for (; checked < te->n_results; checked++) {
            const char *e = rp_te_str(te->results[checked], "execution_id");

            for (size_t i = 0; e && i < n; i++) {
                if (!seen[i] && !strcmp(e, eids[i])) {
                    seen[i] = true;
                    missing--;
                }
            }
        }
    } while (missing && rp_te_wait_until(te, deadline));
    pthread_mutex_unlock(&te->lock);
    if (missing && rp_te_find_death(te)) {
        free(seen);
        fail_msg("%s", te->died);
    }
    for (size_t i = 0; i < n && !first_missing; i++)
        if (!seen[i])
            first_missing = eids[i];
    free(seen);
    if (missing)
        fail_msg("%zu of %zu execution(s) got no result in %d ms, e.g. %s",
                 missing, n, timeout_ms, first_missing);
}

bool rp_te_wait_result_count(rp_te_t *te, size_t n, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    bool ok;

    pthread_mutex_lock(&te->lock);
    while (te->n_results < n && rp_te_wait_until(te, deadline)) {
    }
    ok = te->n_results >= n;
    pthread_mutex_unlock(&te->lock);
    if (!ok)
        rp_te_check_procs(te);
    return ok;
}

bool rp_te_wait_dlq(rp_te_t *te, size_t n, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    bool ok;

    pthread_mutex_lock(&te->lock);
    while (te->n_dlq < n && rp_te_wait_until(te, deadline)) {
    }
    ok = te->n_dlq >= n;
    pthread_mutex_unlock(&te->lock);
    if (!ok)
        rp_te_check_procs(te);
    return ok;
}

size_t rp_te_results_for(rp_te_t *te, const char *execution_id,
                         const rp_te_msg_t **out, size_t max)
{
    size_t k = 0;

    pthread_mutex_lock(&te->lock);
    for (size_t i = 0; i < te->n_results; i++) {
        if (rp_te_is_eid(te->results[i], execution_id)) {
            if (k < max)
                out[k] = te->results[i];
            k++;
        }
    }
    pthread_mutex_unlock(&te->lock);
    return k;
}

const char *rp_te_describe(const rp_te_msg_t *m)
{
    static char buf[1024];
    long long code = -1;
    const char *out;

    if (!m)
        return "(no result)";
    if (!m->json) {
        snprintf(buf, sizeof(buf), "(not JSON: %.200s)", m->value);
        return buf;
    }
    rp_te_int(m, "exit_code", &code);
    out = rp_te_str(m, "stdout");
    snprintf(buf, sizeof(buf),
             "{execution_id=%s session_id=%s status=%s exit_code=%lld "
             "stdout=\"%.80s\" stderr=\"%.200s\" worker=%s error=%s: %.200s "
             "@%d/%lld}",
             rp_te_str(m, "execution_id"), rp_te_str(m, "session_id"),
             rp_te_str(m, "status"), code, out ? out : "(none)",
             rp_te_str(m, "stderr") ? rp_te_str(m, "stderr") : "(none)",
             rp_te_str(m, "worker"),
             rp_te_error(m, "code") ? rp_te_error(m, "code") : "-",
             rp_te_error(m, "message") ? rp_te_error(m, "message") : "",
             (int)m->partition, (long long)m->offset);
    return buf;
}

void rp_te_expect(rp_te_t *te, const rp_te_msg_t *m, const char *status,
                  const char *stdout_text)
{
    const char *st = rp_te_str(m, "status"), *out = rp_te_str(m, "stdout");
    const char *enc = rp_te_str(m, "encoding");

    if (!m)
        fail_msg("expected a %s result, got none", status);
    if (!st || strcmp(st, status) != 0)
        fail_msg("expected status %s: %s", status, rp_te_describe(m));
    if (stdout_text && (!out || !enc || strcmp(enc, "utf-8") != 0 ||
                        strcmp(out, stdout_text) != 0))
        fail_msg("expected stdout \"%s\" (utf-8): %s", stdout_text,
                 rp_te_describe(m));
    if (rp_te_worker_by_id(te, rp_te_str(m, "worker")) < 0)
        fail_msg("\"worker\" names none of our workers: %s",
                 rp_te_describe(m));
}

/* ------------------------------------------------------------------ */
/* Schema validation, sanitizer reports                                */

/* Absolute path of an executable named name on $PATH into out. */
static bool rp_te_which(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    char *copy, *dir, *save;
    bool found = false;

    if (!path || !(copy = strdup(path)))
        return false;
    for (dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save))
        found = rp_test_fmt(out, size, "%s/%s", *dir ? dir : ".", name) &&
                access(out, X_OK) == 0;
    free(copy);
    return found;
}

int rp_te_run(rp_te_t *te, char *const argv[], const char *in_path,
              const char *out_path, const char *err_path, int timeout_ms)
{
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    int status = 0;
    pid_t pid;

    fflush(stdout);
    if ((pid = rp_te_spawn(te->child_env, argv, in_path, out_path,
                           err_path)) < 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(errno));
    /* This pid only: the rig's own processes are reaped elsewhere. */
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (rp_te_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s: no answer in %d ms", argv[0], timeout_ms);
        }
        rp_te_sleep_ms(20);
    }
    return status;
}

void rp_te_validate(rp_te_t *te, const char *schema, const char *file)
{
    char node[PATH_MAX], script[PATH_MAX], modules[PATH_MAX];
    char *argv[] = {node, script, "--schema", (char *)schema, (char *)file,
                    NULL};
    struct stat st;
    int status;

    if (!rp_test_fmt(script, sizeof(script), "%s/tests/schema/validate.js",
                   te->src_dir) ||
        !rp_test_fmt(modules, sizeof(modules), "%s/tests/schema/node_modules",
                   te->src_dir))
        fail_msg("RP_SOURCE_DIR is too long");
    if (!rp_te_which("node", node, sizeof(node)))
        fail_msg("schema check impossible: `node` is not on PATH (install "
                 "Node.js; scripts/test requires it)");
    if (access(script, R_OK) != 0)
        fail_msg("schema check impossible: %s is missing", script);
    if (stat(modules, &st) != 0 || !S_ISDIR(st.st_mode))
        fail_msg("schema check impossible: %s is missing (run `npm ci "
                 "--prefix tests/schema`; scripts/test does)", modules);
    status = rp_te_run(te, argv, NULL, NULL, NULL, RP_TE_NODE_TIMEOUT_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("validate.js --schema %s %s failed (%s %d): output above",
                 schema, file, WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    print_message("[rig] %s: every document is a valid %s\n", file, schema);
}

/* Fails the test when a process log holds a sanitizer report (workers'
 * logs also hold their executors' stderr). */
static void rp_te_check_sanitizers(rp_te_t *te)
{
    static const char *const marks[] = {
        "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
        "runtime error:",          "UndefinedBehaviorSanitizer",
    };

    for (int i = 0; i < te->n_procs; i++) {
        char *log = rp_te_read_file(te->procs[i].log_path, NULL);

        for (size_t k = 0; log && k < sizeof(marks) / sizeof(*marks); k++) {
            if (strstr(log, marks[k])) {
                free(log);
                fail_msg("%s's log (%s) holds a sanitizer report (\"%s\")",
                         te->procs[i].name, te->procs[i].log_path, marks[k]);
            }
        }
        free(log);
    }
}

int rp_te_http_port(rp_te_t *te, int idx)
{
    const char *needle = "http: listening on 127.0.0.1:";
    int64_t deadline = rp_te_now_ms() + 20000;

    while (rp_te_now_ms() < deadline) {
        char *log = rp_te_read_file(te->procs[idx].log_path, NULL);
        const char *p = log ? strstr(log, needle) : NULL;
        int port = p ? atoi(p + strlen(needle)) : 0;

        free(log);
        if (port > 0)
            return port;
        rp_te_check_procs(te);
        rp_te_sleep_ms(50);
    }
    fail_msg("%s logged no \"%s\"", te->procs[idx].name, needle);
    return 0;
}

double rp_te_metric(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *l = text; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, series, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

void rp_te_finish(rp_te_t *te)
{
    char results[PATH_MAX], requests[PATH_MAX];

    rp_te_path(te, results, sizeof(results), "results.jsonl");
    rp_te_path(te, requests, sizeof(requests), "requests.jsonl");
    /* The test has seen what it needs: stop the collector, so node reads
     * a results.jsonl that no longer grows (no half-written last line). */
    rp_te_stop_collector(te);
    if (te->collector_error[0])
        fail_msg("the results/DLQ collector failed: %s", te->collector_error);
    fflush(te->requests_log);
    fflush(te->results_log);
    fflush(te->dlq_log);
    rp_te_validate(te, "result", results);
    rp_te_validate(te, "request", requests);
    rp_te_check_sanitizers(te);
    te->passed = true;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

/* Our environment minus RUNPOOL_* (a developer's settings must not change
 * what the workers do), plus an explicit log level: the rig reads the
 * workers' info lines. */
static char **rp_te_child_env(void)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    if (!(env = calloc(n + 2, sizeof(*env))))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(environ[i], "RUNPOOL_", 8))
            continue;
        if (!(env[k++] = strdup(environ[i])))
            goto oom;
    }
    if (!(env[k++] = strdup("RUNPOOL_LOG_LEVEL=info")))
        goto oom;
    return env;
oom:
    for (size_t i = 0; i < k; i++)
        free(env[i]);
    free(env);
    return NULL;
}

static void rp_te_print_tail(const rp_te_proc_t *p)
{
    size_t len;
    char *log = rp_te_read_file(p->log_path, &len);
    const char *start = log;

    if (p->reaped && WIFEXITED(p->status))
        print_message("---- %s (pid %ld, exited %d): %s ----\n", p->name,
                      (long)p->pid, WEXITSTATUS(p->status), p->log_path);
    else if (p->reaped && WIFSIGNALED(p->status))
        print_message("---- %s (pid %ld, killed by signal %d): %s ----\n",
                      p->name, (long)p->pid, WTERMSIG(p->status), p->log_path);
    else
        print_message("---- %s (pid %ld): %s ----\n", p->name, (long)p->pid,
                      p->log_path);
    if (!log)
        return;
    if (len > RP_TE_LOG_TAIL) {
        start = log + len - RP_TE_LOG_TAIL;
        print_message("[... %zu bytes before ...]\n", len - RP_TE_LOG_TAIL);
    }
    fwrite(start, 1, strlen(start), stdout);
    fflush(stdout);
    free(log);
}

/* Everything teardown does; also undoes a half-finished setup. */
/* ---- the suite-wide log directory (secrets.logs) ---- */

static const char *const rp_te_secret_values[RP_TE_SECRETS_N] = {
#define RP_TE_SECRET_VALUE(name, value) value,
    RP_TE_SECRETS(RP_TE_SECRET_VALUE)
#undef RP_TE_SECRET_VALUE
};
static const char *const rp_te_secret_names[RP_TE_SECRETS_N] = {
#define RP_TE_SECRET_NAME(name, value) #name,
    RP_TE_SECRETS(RP_TE_SECRET_NAME)
#undef RP_TE_SECRET_NAME
};

const char *rp_te_secret(rp_te_secret_t s)
{
    return s < RP_TE_SECRETS_N ? rp_te_secret_values[s] : "";
}

void rp_te_planted(rp_te_t *te, rp_te_secret_t s)
{
    if (s < RP_TE_SECRETS_N)
        te->planted |= 1u << s;
}

/* Copy src to dst; false when src cannot be read or dst written. */
static bool rp_te_copy_file(const char *src, const char *dst)
{
    size_t len;
    char *data = rp_te_read_file(src, &len);
    FILE *f;
    bool ok;

    if (!data)
        return false;
    f = fopen(dst, "we");
    ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = false;
    free(data);
    return ok;
}

/* nftw has no user pointer: the copy in progress (test thread only). */
static const char *rp_te_keep_root, *rp_te_keep_dest;
static int rp_te_keep_n;

/* Every *.log under the Cloud Run fake's task logs (executors' output). */
static int rp_te_keep_one(const char *path, const struct stat *st, int type,
                          struct FTW *ftw)
{
    char dst[PATH_MAX], flat[PATH_MAX];
    size_t n = strlen(path);
    const char *rel = path + strlen(rp_te_keep_root);

    (void)st;
    (void)ftw;
    if (type != FTW_F || n < 4 || strcmp(path + n - 4, ".log") != 0)
        return 0;
    snprintf(flat, sizeof(flat), "%s", *rel == '/' ? rel + 1 : rel);
    for (char *c = flat; *c; c++)
        if (*c == '/')
            *c = '_';
    if (rp_test_fmt(dst, sizeof(dst), "%s/cloudrun-%s", rp_te_keep_dest,
                    flat) &&
        rp_te_copy_file(path, dst))
        rp_te_keep_n++;
    return 0;
}

/* RP_IT_LOG_DIR/NAME.BROKER/: every process log of this test, its
 * requests.jsonl (where the planted request env must be found: the
 * check's proof that it can see it) and MANIFEST ("logs N", "planted
 * NAME..."), so secrets.logs can tell a missing log from a clean one. */
static void rp_te_keep_logs(rp_te_t *te)
{
    const char *root = getenv("RP_IT_LOG_DIR");
    char dest[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
    struct stat st;
    FILE *f;
    int n = 0;

    if (!root || !*root || !te->dir[0])
        return;
    if (!rp_test_fmt(dest, sizeof(dest), "%s/%s.%s", root, te->name,
                     te->real_kafka ? "kafka" : "devbroker")) {
        print_message("[rig] RP_IT_LOG_DIR too long: logs not kept\n");
        return;
    }
    mkdir(root, 0755);
    rp_test_rmtree(dest);
    if (mkdir(dest, 0755) != 0) {
        print_message("[rig] cannot create %s: %s\n", dest, strerror(errno));
        return;
    }
    for (int i = 0; i < te->n_procs; i++) {
        if (!rp_test_fmt(dst, sizeof(dst), "%s/%02d-%s.log", dest, i,
                         te->procs[i].name) ||
            !rp_te_copy_file(te->procs[i].log_path, dst))
            print_message("[rig] could not keep %s\n", te->procs[i].log_path);
        else
            n++;
    }
    rp_te_path(te, src, sizeof(src), "cloudrun/logs");
    if (stat(src, &st) == 0) {
        rp_te_keep_root = src;
        rp_te_keep_dest = dest;
        rp_te_keep_n = 0;
        nftw(src, rp_te_keep_one, 16, FTW_PHYS);
        n += rp_te_keep_n;
    }
    rp_te_path(te, src, sizeof(src), "requests.jsonl");
    if (rp_test_fmt(dst, sizeof(dst), "%s/requests.jsonl", dest))
        rp_te_copy_file(src, dst);
    if (rp_test_fmt(dst, sizeof(dst), "%s/MANIFEST", dest) &&
        (f = fopen(dst, "we"))) {
        fprintf(f, "logs %d\nplanted", n);
        for (int s = 0; s < RP_TE_SECRETS_N; s++)
            if (te->planted & (1u << s))
                fprintf(f, " %s", rp_te_secret_names[s]);
        fprintf(f, "\n");
        fclose(f);
    }
}

static void rp_te_cleanup(rp_te_t *te)
{
    const char *keep = getenv("RP_IT_KEEP");

    /* Workers first, so nothing produces or runs any more; the devbroker
     * stays up until our own Kafka clients are closed. */
    for (int i = 0; i < te->n_procs; i++)
        if (te->procs[i].kind == RP_TE_WORKER)
            rp_te_signal(te, i, SIGKILL);
    for (int i = 0; i < te->n_procs; i++)
        if (te->procs[i].kind == RP_TE_WORKER)
            rp_te_wait_exit(te, i, RP_TE_KILL_WAIT_MS);
    rp_te_stop_collector(te);
    if (te->consumer) {
        rd_kafka_consumer_close(te->consumer);
        rd_kafka_destroy(te->consumer);
    }
    if (te->producer) {
        rd_kafka_purge(te->producer, RD_KAFKA_PURGE_F_QUEUE |
                                         RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(te->producer, 0);
        rd_kafka_destroy(te->producer);
    }
    /* The devbroker, and every executor or command a killed worker left
     * behind (re-parented to us, the subreaper). */
    rp_te_kill_all_children(te);

    if (!te->passed && te->dir[0]) {
        print_message("==== %s failed: logs of every process ====\n",
                      te->name);
        for (int i = 0; i < te->n_procs; i++)
            rp_te_print_tail(&te->procs[i]);
        print_message("==== kept %s (requests.jsonl, results.jsonl, "
                      "dlq.jsonl, state/, logs) ====\n", te->dir);
    }
    if (te->requests_log)
        fclose(te->requests_log);
    te->requests_log = NULL;
    rp_te_keep_logs(te);
    if (te->results_log)
        fclose(te->results_log);
    if (te->dlq_log)
        fclose(te->dlq_log);
    if (te->passed && te->dir[0] && !(keep && !strcmp(keep, "1")))
        rp_test_rmtree(te->dir);
    else if (te->passed && te->dir[0])
        print_message("[rig] RP_IT_KEEP=1: kept %s\n", te->dir);

    for (size_t i = 0; i < te->n_results; i++)
        rp_te_msg_free(te->results[i]);
    for (size_t i = 0; i < te->n_dlq; i++)
        rp_te_msg_free(te->dlq[i]);
    free(te->results);
    free(te->dlq);
    for (size_t i = 0; te->child_env && te->child_env[i]; i++)
        free(te->child_env[i]);
    free(te->child_env);
    pthread_cond_destroy(&te->cond);
    pthread_mutex_destroy(&te->lock);
    free(te);
}

static FILE *rp_te_open_log(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX];

    if (!rp_test_fmt(path, sizeof(path), "%s/%s", te->dir, rel))
        return NULL;
    return fopen(path, "we"); /* not inherited by workers */
}

/* Start the broker and wait for its bootstrap file: runpool-devbroker, or
 * with RP_TEST_BROKER=kafka a fresh single-node Apache Kafka (KRaft) from
 * tests/kafka/start --foreground, which becomes the broker's JVM (same pid,
 * so PR_SET_PDEATHSIG holds) and writes the same bootstrap line once the
 * topics exist. Its data lives in TMP/kafka/, its output in TMP/kafka.log. */
static bool rp_te_start_devbroker(rp_te_t *te, char *err, size_t errsize)
{
    char exe[PATH_MAX], file[PATH_MAX], out[PATH_MAX], kdir[PATH_MAX];
    char line[1100];
    char *argv[] = {exe, "--partitions", "4", "--bootstrap-file", file, NULL};
    char *kargv[] = {exe,  "--foreground", "--dir", kdir, "--port-file",
                     file, "--partitions", "4",   NULL};
    const char *which = getenv("RP_TEST_BROKER");
    bool kafka = which && !strcmp(which, "kafka");
    int timeout_ms = kafka ? RP_TE_KAFKA_START_TIMEOUT_MS
                           : RP_TE_START_TIMEOUT_MS;
    const char *prefix = "bootstrap.servers=";
    const char *what = kafka ? "tests/kafka/start" : "runpool-devbroker";
    int idx;


    te->real_kafka = kafka;
    if (which && *which && !kafka && strcmp(which, "devbroker")) {
        snprintf(err, errsize, "RP_TEST_BROKER=%.100s: want devbroker or kafka",
                 which);
        return false;
    }
    if (!(kafka ? rp_test_fmt(exe, sizeof(exe), "%s/tests/kafka/start",
                            te->src_dir)
                : rp_test_fmt(exe, sizeof(exe), "%s/runpool-devbroker",
                            te->bin_dir)) ||
        !rp_test_fmt(kdir, sizeof(kdir), "%s/kafka", te->dir) ||
        !rp_test_fmt(file, sizeof(file), "%s/bootstrap", te->dir) ||
        !rp_test_fmt(out, sizeof(out), "%s/devbroker.out", te->dir)) {
        snprintf(err, errsize, "paths too long");
        return false;
    }
    if ((idx = kafka ? rp_te_start(te, RP_TE_DEVBROKER, "kafka", kargv, NULL,
                                   err, errsize)
                     : rp_te_start(te, RP_TE_DEVBROKER, "devbroker", argv, out,
                                   err, errsize)) < 0)
        return false;
    if (!rp_te_wait_line(te, idx, file, line, sizeof(line), timeout_ms, err,
                         errsize))
        return false;
    if (strncmp(line, prefix, strlen(prefix)) ||
        !rp_test_fmt(te->brokers, sizeof(te->brokers), "%s",
                   line + strlen(prefix))) {
        snprintf(err, errsize, "%s wrote a bad bootstrap line: %.300s", what,
                 line);
        return false;
    }
    return true;
}

int rp_te_restart_broker(rp_te_t *te, int timeout_ms, int64_t *down_ms)
{
    char exe[PATH_MAX], file[PATH_MAX], kdir[PATH_MAX], line[1100];
    char name[32], err[512], before[sizeof(te->brokers)];
    char *kargv[] = {exe,  "--foreground", "--restart", "--dir", kdir,
                     "--port-file", file, "--partitions", "4", NULL};
    const char *which = getenv("RP_TEST_BROKER");
    const char *prefix = "bootstrap.servers=";
    int old = -1, idx, n;
    int64_t t0;

    if (!which || strcmp(which, "kafka"))
        fail_msg("rp_te_restart_broker needs RP_TEST_BROKER=kafka (the "
                 "devbroker keeps nothing across a restart)");
    for (int i = 0; i < te->n_procs; i++)
        if (te->procs[i].kind == RP_TE_DEVBROKER && rp_te_alive(te, i))
            old = i;
    if (old < 0)
        fail_msg("no broker is running");
    n = atomic_fetch_add(&te->broker_restarts, 1) + 1;
    rp_te_format(exe, sizeof(exe), "%s/tests/kafka/start", te->src_dir);
    rp_te_path(te, kdir, sizeof(kdir), "kafka");
    rp_te_path(te, file, sizeof(file), "bootstrap");
    snprintf(name, sizeof(name), "kafka-restart-%d", n);
    memcpy(before, te->brokers, sizeof(before));

    t0 = rp_te_now_ms();
    rp_te_signal(te, old, SIGTERM);
    if (!rp_te_wait_exit(te, old, timeout_ms))
        fail_msg("the broker did not stop in %d ms after SIGTERM", timeout_ms);
    /* Else the wait below would read the old line. */
    if (unlink(file) != 0 && errno != ENOENT)
        fail_msg("unlink %s: %s", file, strerror(errno));
    if ((idx = rp_te_start(te, RP_TE_DEVBROKER, name, kargv, NULL, err,
                           sizeof(err))) < 0)
        fail_msg("%s", err);
    if (!rp_te_wait_line(te, idx, file, line, sizeof(line), timeout_ms, err,
                         sizeof(err)))
        fail_msg("broker restart: %s", err);
    if (strncmp(line, prefix, strlen(prefix)) ||
        strcmp(line + strlen(prefix), before))
        fail_msg("the restarted broker serves %.300s, not %.300s", line,
                 before);
    if (down_ms)
        *down_ms = rp_te_now_ms() - t0;
    print_message("[rig] broker restarted (pid %ld) on %s after %lld ms\n",
                  (long)te->procs[idx].pid, before,
                  (long long)(rp_te_now_ms() - t0));
    return idx;
}

int rp_te_setup(void **state)
{
    rp_te_t *te = calloc(1, sizeof(*te));
    const char *bin = getenv("RP_BIN_DIR"), *src = getenv("RP_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR");
    pthread_condattr_t ca;
    char err[512] = "", sub[PATH_MAX], dir[PATH_MAX];

    *state = NULL;
    if (!te)
        return -1;
    pthread_mutex_init(&te->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&te->cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(te->name, sizeof(te->name), "%s", program_invocation_short_name);

    if (!bin || !src) {
        snprintf(err, sizeof(err), "RP_BIN_DIR and RP_SOURCE_DIR must be set "
                                   "(run the test through ctest)");
        goto fail;
    }
    if (!rp_test_fmt(te->bin_dir, sizeof(te->bin_dir), "%s", bin) ||
        !rp_test_fmt(te->src_dir, sizeof(te->src_dir), "%s", src) ||
        !rp_test_fmt(dir, sizeof(dir), "%s/rp-it-%s-XXXXXX",
                   tmp && *tmp ? tmp : "/tmp", te->name)) {
        snprintf(err, sizeof(err), "paths too long");
        goto fail;
    }
    /* Orphans of a killed worker come to us, so teardown can reap them. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        snprintf(err, sizeof(err), "PR_SET_CHILD_SUBREAPER: %s",
                 strerror(errno));
        goto fail;
    }
    if (!mkdtemp(dir)) {
        snprintf(err, sizeof(err), "mkdtemp %.300s: %s", dir, strerror(errno));
        goto fail;
    }
    memcpy(te->dir, dir, sizeof(te->dir));
    if (!rp_test_fmt(sub, sizeof(sub), "%s/state", te->dir) ||
        mkdir(sub, 0755) != 0 ||
        !rp_test_fmt(sub, sizeof(sub), "%s/work", te->dir) ||
        mkdir(sub, 0755) != 0) {
        snprintf(err, sizeof(err), "cannot create state/ and work/ in %.300s",
                 te->dir);
        goto fail;
    }
    snprintf(te->backend, sizeof(te->backend), "local");
    if (!rp_test_fmt(te->state_url, sizeof(te->state_url), "file://%s/state",
                   te->dir)) {
        snprintf(err, sizeof(err), "paths too long");
        goto fail;
    }
    snprintf(te->group, sizeof(te->group), "rp-it-%s-%ld", te->name,
             (long)getpid());
    if (!(te->child_env = rp_te_child_env()) ||
        !(te->requests_log = rp_te_open_log(te, "requests.jsonl")) ||
        !(te->results_log = rp_te_open_log(te, "results.jsonl")) ||
        !(te->dlq_log = rp_te_open_log(te, "dlq.jsonl"))) {
        snprintf(err, sizeof(err), "cannot create the rig's files in %.300s",
                 te->dir);
        goto fail;
    }
    if (!rp_te_start_devbroker(te, err, sizeof(err)) ||
        !rp_te_start_producer(te, err, sizeof(err)) ||
        !rp_te_start_collector(te, err, sizeof(err)))
        goto fail;
    print_message("[rig] %s: dir %s, brokers %s, group %s\n", te->name,
                  te->dir, te->brokers, te->group);
    *state = te;
    return 0;
fail:
    print_message("[rig] setup failed: %s\n", err);
    rp_te_cleanup(te);
    return -1;
}

int rp_te_teardown(void **state)
{
    if (*state)
        rp_te_cleanup(*state);
    *state = NULL;
    return 0;
}
