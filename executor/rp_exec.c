/* rp_exec — run one command with cwd/env capture (see rp_exec.h and
 * docs/executor.md for the design). */
#include "rp_exec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rp_time.h"

extern char **environ;

#define RP_EXEC_READ_CHUNK 65536
/* Reads per stream per poll round, so one chatty stream cannot starve the
 * other stream or the deadline checks. */
#define RP_EXEC_READS_PER_ROUND 16
/* Without a pidfd we notice the shell's exit by polling waitpid. */
#define RP_EXEC_WAITPID_TICK_MS 20
#define RP_EXEC_NOTE_MAX 1024
/* The private directory's parent when TMPDIR is unset (then /tmp). */
#define RP_EXEC_TMPFS_DIR "/dev/shm"

/* Variables the shell manages itself; saving them would only make the next
 * shell start with stale values. */
static const char *const rp_exec_shell_vars[] = {"PWD", "OLDPWD", "SHLVL",
                                                 "_"};

typedef struct rp_exec_stream {
    int fd; /* read end, -1 once closed */
    rp_buf_t buf;
    bool truncated;
} rp_exec_stream_t;

/* The capture files inside the private temp directory. */
typedef struct rp_exec_paths {
    char dir[RP_EXEC_PATH_MAX];
    char cwd[RP_EXEC_PATH_MAX + 16]; /* dir + "/" + a short file name */
    char env[RP_EXEC_PATH_MAX + 16];
    char env_ok[RP_EXEC_PATH_MAX + 16];
    /* The end of the user's command. Whoever creates it first decides:
     * the shell's EXIT trap (the command is over, its record must be
     * written) or our stop (timeout or cancel: the command is cut). */
    char over[RP_EXEC_PATH_MAX + 16];
    /* The user's command, which the shell sources (`. FILE`): a command
     * never travels in argv, where Linux caps one string at 128 KiB. */
    char command[RP_EXEC_PATH_MAX + 16];
    /* `export NAME='value'` lines for the variables that did not fit in
     * the shell's environ (opts.envp_max); sourced before the command. */
    char env_in[RP_EXEC_PATH_MAX + 16];
    /* `export -p` output, the capture's fallback when the dumper cannot
     * be exec'd (an environment over the exec limit: E2BIG). */
    char env_sh[RP_EXEC_PATH_MAX + 16];
    char env_sh_ok[RP_EXEC_PATH_MAX + 16];
} rp_exec_paths_t;

void rp_exec_opts_init(rp_exec_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->cancel_fd = -1;
}

void rp_exec_outcome_clear(rp_exec_outcome_t *out)
{
    if (!out)
        return;
    free(out->stdout_data);
    free(out->stderr_data);
    free(out->cwd_after);
    rp_env_clear(&out->env_after);
    memset(out, 0, sizeof(*out));
}

static int rp_exec_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int rp_exec_dump_env(int fd)
{
    for (char **e = environ; e && *e; e++)
        /* Each entry goes out with its own terminating NUL. */
        if (rp_exec_write_all(fd, *e, strlen(*e) + 1) != 0)
            return -1;
    return 0;
}

rp_err_t rp_exec_shell_quote(rp_buf_t *out, const char *s)
{
    rp_err_t err = rp_buf_append(out, "'", 1);

    while (err == RP_OK && *s) {
        size_t span = strcspn(s, "'");

        err = rp_buf_append(out, s, span);
        s += span;
        if (err == RP_OK && *s == '\'') {
            /* Close the quote, add an escaped quote, reopen. */
            err = rp_buf_append_str(out, "'\\''");
            s++;
        }
    }
    if (err == RP_OK)
        err = rp_buf_append(out, "'", 1);
    return err;
}

static bool rp_exec_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p: a fresh container does not have the session's directories. */
static int rp_exec_mkdir_p(const char *path)
{
    char tmp[RP_CWD_MAX + 1];
    size_t len = strlen(path);

    if (len == 0 || len > RP_CWD_MAX || path[0] != '/') {
        errno = EINVAL;
        return -1;
    }
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return -1;
        tmp[i] = path[i];
    }
    if (!rp_exec_is_dir(path)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void rp_exec_note(rp_exec_stream_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Add a "runpool: …" line to a captured stream, where the user sees it. */
static void rp_exec_note(rp_exec_stream_t *s, const char *fmt, ...)
{
    char line[RP_EXEC_NOTE_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (rp_buf_append_upto(&s->buf, line, (size_t)n) < (size_t)n)
        s->truncated = true;
}

/* Choose the directory to start in; a fallback is announced on stderr. */
static const char *rp_exec_pick_cwd(const rp_exec_opts_t *opts,
                                    rp_exec_stream_t *err_stream)
{
    const char *fallback = opts->fallback_cwd ? opts->fallback_cwd : "/";
    const char *cwd = opts->cwd ? opts->cwd : fallback;
    const char *why;

    if (cwd[0] == '/' && rp_exec_is_dir(cwd))
        return cwd;
    if (cwd[0] != '/')
        why = "not an absolute path";
    else if (rp_exec_mkdir_p(cwd) == 0) {
        /* Ours: a session's first directory, for the command's user. */
        if (opts->run_as.set) {
            char es[256];

            if (rp_runas_prepare_dir(&opts->run_as, cwd, es, sizeof(es)))
                rp_exec_note(err_stream, "runpool: %s\n", es);
        }
        return cwd;
    }
    else
        why = strerror(errno);
    if (cwd == fallback || (fallback[0] != '/' || !rp_exec_is_dir(fallback)))
        fallback = "/";
    rp_exec_note(err_stream,
                 "runpool: cannot use working directory %s (%s); running in %s\n",
                 cwd, why, fallback);
    return fallback;
}

static rp_err_t rp_exec_make_paths(rp_exec_paths_t *p, char *errstr,
                                   size_t errstr_size)
{
    const char *tmp = getenv("TMPDIR");
    int n;

    /* Without TMPDIR: tmpfs first. The directory and its files are made
     * and removed for every command; on a disk filesystem that costs
     * inode allocation and journal work (ext4 here: ~2 ms of CPU per
     * execution, bench/README.md "The executor"), on tmpfs almost none. */
    if (!tmp || tmp[0] != '/') {
        snprintf(p->dir, sizeof(p->dir), "%s/runpool-exec.XXXXXX",
                 RP_EXEC_TMPFS_DIR);
        if (mkdtemp(p->dir))
            goto made;
        tmp = "/tmp";
    }
    n = snprintf(p->dir, sizeof(p->dir), "%s/runpool-exec.XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(p->dir))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "TMPDIR too long");
    if (!mkdtemp(p->dir))
        return rp_errf(errstr, errstr_size, RP_ERR_IO,
                       "mkdtemp under %s: %s", tmp, strerror(errno));
made:
    snprintf(p->cwd, sizeof(p->cwd), "%s/cwd", p->dir);
    snprintf(p->env, sizeof(p->env), "%s/env", p->dir);
    snprintf(p->env_ok, sizeof(p->env_ok), "%s/env.ok", p->dir);
    snprintf(p->over, sizeof(p->over), "%s/over", p->dir);
    snprintf(p->command, sizeof(p->command), "%s/command", p->dir);
    snprintf(p->env_in, sizeof(p->env_in), "%s/env.in", p->dir);
    snprintf(p->env_sh, sizeof(p->env_sh), "%s/env.sh", p->dir);
    snprintf(p->env_sh_ok, sizeof(p->env_sh_ok), "%s/env.sh.ok", p->dir);
    return RP_OK;
}

static void rp_exec_remove_paths(const rp_exec_paths_t *p)
{
    if (!p->dir[0])
        return;
    unlink(p->cwd);
    unlink(p->env);
    unlink(p->env_ok);
    unlink(p->over);
    unlink(p->command);
    unlink(p->env_in);
    unlink(p->env_sh);
    unlink(p->env_sh_ok);
    rmdir(p->dir);
}

/* SCRIPT = the `sh -c` string: two trap lines, then `. ENV_IN` (only
 * when some variables did not fit in environ) and `. COMMAND`, which
 * sources the user's command verbatim from its file. Nothing the user
 * sent travels in argv: Linux refuses any single argv or environ string
 * over 128 KiB (MAX_ARG_STRLEN), and a command may be 256 KiB. Sourcing
 * keeps `sh -c` semantics where they matter: $0 is "sh", $# is 0, `exit N`
 * ends the shell with N and the status of the last command is the
 * shell's; shell messages name the file and the user's own line numbers.
 *
 * The trap first ignores TERM (nothing may cut our own tail short) and
 * creates the `over` file: from then on the user's command has exited and
 * a stop that comes later does not count (rp_exec_stop_first).
 *
 * The EXIT trap records `pwd` and the exported environment into files of
 * our private directory, then `exit` without an argument, which keeps the
 * status the shell was exiting with. The environment is written by the
 * builtin `export -p` (no exec: no process and no exec limit), in shell
 * syntax that rp_exec_exports_to_dump reads. With a dumper (opts), the
 * trap runs `DUMPER --dump-env` first (an absolute path so a changed PATH
 * cannot break it; exact NUL-separated bytes, whatever the shell) and
 * falls back to `export -p` when that exec fails (E2BIG: an environment
 * over the kernel's exec limit). `set +ex` is silenced
 * so a user's `set -x` does not trace our trap and `set -e` cannot cut it
 * short; `>|` defeats `set -C`. The TERM trap turns our timeout SIGTERM
 * into a normal exit, so the capture also runs for a timed-out command. */
static rp_err_t rp_exec_build_script(const rp_exec_paths_t *p,
                                     const char *dumper, bool has_env_in,
                                     rp_buf_t *script)
{
    rp_buf_t action;
    rp_err_t err;

    rp_buf_init(&action, RP_EXEC_SCRIPT_MAX);
    err = rp_buf_append_str(&action,
                            "{ set +ex; } 2>/dev/null; trap '' TERM; "
                            "{ command : >|");
    if (err == RP_OK)
        err = rp_exec_shell_quote(&action, p->over);
    if (err == RP_OK)
        err = rp_buf_append_str(&action, "; } 2>/dev/null; command pwd >|");
    if (err == RP_OK)
        err = rp_exec_shell_quote(&action, p->cwd);
    if (err == RP_OK && dumper) {
        err = rp_buf_append_str(&action, "; { ");
        if (err == RP_OK)
            err = rp_exec_shell_quote(&action, dumper);
        if (err == RP_OK)
            err = rp_buf_append_str(&action, " --dump-env >|");
        if (err == RP_OK)
            err = rp_exec_shell_quote(&action, p->env);
        if (err == RP_OK)
            err = rp_buf_append_str(&action, " && : >|");
        if (err == RP_OK)
            err = rp_exec_shell_quote(&action, p->env_ok);
        if (err == RP_OK)
            err = rp_buf_append_str(&action, "; } 2>/dev/null ||");
    } else if (err == RP_OK) {
        err = rp_buf_append_str(&action, ";");
    }
    if (err == RP_OK)
        err = rp_buf_append_str(&action, " { command export -p >|");
    if (err == RP_OK)
        err = rp_exec_shell_quote(&action, p->env_sh);
    if (err == RP_OK)
        err = rp_buf_append_str(&action, " && : >|");
    if (err == RP_OK)
        err = rp_exec_shell_quote(&action, p->env_sh_ok);
    if (err == RP_OK)
        err = rp_buf_append_str(&action, "; } 2>/dev/null; exit");

    if (err == RP_OK)
        err = rp_buf_append_str(script, "trap ");
    if (err == RP_OK)
        err = rp_exec_shell_quote(script, action.data);
    if (err == RP_OK)
        err = rp_buf_append_str(script, " EXIT; trap 'exit 143' TERM\n");
    if (err == RP_OK && has_env_in) {
        err = rp_buf_append_str(script, ". ");
        if (err == RP_OK)
            err = rp_exec_shell_quote(script, p->env_in);
        if (err == RP_OK)
            err = rp_buf_append_str(script, "\n");
    }
    if (err == RP_OK)
        err = rp_buf_append_str(script, ". ");
    if (err == RP_OK)
        err = rp_exec_shell_quote(script, p->command);
    if (err == RP_OK)
        err = rp_buf_append_str(script, "\n");
    rp_buf_free(&action);
    return err;
}

/* Write n bytes to a new private file (0600, in our 0700 directory). */
static rp_err_t rp_exec_write_file(const char *path, const char *data,
                                   size_t n, char *errstr, size_t errstr_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc;

    if (fd < 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "creating %s: %s",
                       path, strerror(errno));
    rc = rp_exec_write_all(fd, data, n);
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "writing %s: %s",
                       path, strerror(errno));
    return RP_OK;
}

/* What execve charges for one environ entry: the string, its NUL and its
 * pointer. */
static size_t rp_exec_envp_cost(const rp_env_var_t *v)
{
    return strlen(v->name) + 1 + strlen(v->value) + 1 + sizeof(char *);
}

/* The environ budget when opts.envp_max is 0: half the kernel's exec limit
 * (the rest stays for what the user's command adds for its own children),
 * at most RP_EXEC_ENVP_MAX_DEFAULT. */
static size_t rp_exec_envp_budget(const rp_exec_opts_t *opts)
{
    long arg_max;

    if (opts->envp_max > 0)
        return opts->envp_max;
    arg_max = sysconf(_SC_ARG_MAX);
    if (arg_max <= 0)
        arg_max = 128 * 1024; /* the floor Linux guarantees */
    if ((size_t)arg_max / 2 < RP_EXEC_ENVP_MAX_DEFAULT)
        return (size_t)arg_max / 2;
    return RP_EXEC_ENVP_MAX_DEFAULT;
}

/* NULL-terminated "NAME=VALUE" array for posix_spawn (caller frees with
 * rp_exec_envp_free). PWD is set to the start directory so the shell keeps
 * a logical path (symlinks) instead of recomputing a physical one.
 * Variables go into the array while it stays within budget bytes; the
 * others are appended to env_in as `export NAME='value'` lines for the
 * shell to source (a session may hold more than exec accepts). NULL with
 * *err set (RP_ERR_NOMEM, or RP_ERR_TOO_LARGE past env_in->max). */
static char **rp_exec_envp(const rp_env_t *env, const char *cwd,
                           size_t budget, rp_buf_t *env_in, rp_err_t *err)
{
    size_t n = env ? env->n : 0, k = 0;
    char **envp = calloc(n + 2, sizeof(*envp));
    size_t len, used = sizeof("PWD=") + strlen(cwd) + 2 * sizeof(char *);

    *err = RP_ERR_NOMEM;
    if (!envp)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const rp_env_var_t *v = &env->vars[i];
        size_t cost;

        if (!v->name[0] || strchr(v->name, '=') || !strcmp(v->name, "PWD"))
            continue;
        cost = rp_exec_envp_cost(v);
        if (used + cost > budget && rp_env_name_valid(v->name)) {
            if ((*err = rp_buf_append_str(env_in, "export ")) != RP_OK ||
                (*err = rp_buf_append_str(env_in, v->name)) != RP_OK ||
                (*err = rp_buf_append_str(env_in, "=")) != RP_OK ||
                (*err = rp_exec_shell_quote(env_in, v->value)) != RP_OK ||
                (*err = rp_buf_append_str(env_in, "\n")) != RP_OK)
                goto fail;
            continue;
        }
        *err = RP_ERR_NOMEM;
        len = strlen(v->name) + 1 + strlen(v->value) + 1;
        if (!(envp[k] = malloc(len)))
            goto fail;
        snprintf(envp[k], len, "%s=%s", v->name, v->value);
        used += cost;
        k++;
    }
    *err = RP_ERR_NOMEM;
    len = sizeof("PWD=") + strlen(cwd);
    if (!(envp[k] = malloc(len)))
        goto fail;
    snprintf(envp[k], len, "PWD=%s", cwd);
    *err = RP_OK;
    return envp;
fail:
    for (size_t i = 0; i < k; i++)
        free(envp[i]);
    free(envp);
    return NULL;
}

static void rp_exec_envp_free(char **envp)
{
    if (!envp)
        return;
    for (char **e = envp; *e; e++)
        free(*e);
    free(envp);
}

/* helper NULL: /bin/sh -c script. Else `helper --exec-as U:G -- /bin/sh
 * -c script`: the helper drops to ra and execs the shell (rp_runas.h). */
static rp_err_t rp_exec_spawn(const char *script, char **envp,
                              const char *cwd, int out_w, int err_w,
                              const char *helper, const rp_runas_t *ra,
                              pid_t *pid, char *errstr, size_t errstr_size)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char ids[32];
    char *sh_argv[] = {"sh", "-c", (char *)script, NULL};
    char *as_argv[] = {"runpool-executor", RP_RUNAS_FLAG, ids, "--", "/bin/sh",
                       "-c", (char *)script, NULL};
    char **argv = helper ? as_argv : sh_argv;
    int rc;

    snprintf(ids, sizeof(ids), "%u:%u", (unsigned)ra->uid, (unsigned)ra->gid);

    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* Own process group: one kill(-pgid) reaches everything it starts.
     * Default dispositions and an empty mask: whatever this process ignores
     * or blocks must not leak into the user's command. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                        POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (rc == 0)
        rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    if (rc == 0)
        rc = posix_spawn(pid, helper ? helper : "/bin/sh", &fa, &attr, argv,
                         envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc == E2BIG)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "command and environment too large to exec");
    if (rc != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_SPAWN,
                       "spawn /bin/sh in %s: %s", cwd, strerror(rc));
    return RP_OK;
}

/* Read what is available now; closes the stream at EOF or on error. Bytes
 * past the cap are read and dropped so the writer never blocks on us. */
static void rp_exec_stream_read(rp_exec_stream_t *s)
{
    char chunk[RP_EXEC_READ_CHUNK];

    for (int i = 0; s->fd >= 0 && i < RP_EXEC_READS_PER_ROUND; i++) {
        ssize_t n = read(s->fd, chunk, sizeof(chunk));

        if (n > 0) {
            if (rp_buf_append_upto(&s->buf, chunk, (size_t)n) < (size_t)n)
                s->truncated = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close(s->fd);
        s->fd = -1;
    }
}

static void rp_exec_stream_close(rp_exec_stream_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static int rp_exec_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    /* Only our end is non-blocking; the child's end stays blocking. */
    return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

static int rp_exec_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void rp_exec_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* SIGKILL the group and wait (bounded) until none of it is left. With a
 * subreaper, orphans are our children and are reaped here; without, init
 * reaps them. */
static void rp_exec_kill_group(pid_t pgid)
{
    int64_t until = rp_time_mono_ms() + RP_EXEC_REAP_WAIT_MS;

    for (;;) {
        /* Again each round: a process that was mid-fork may have a child
         * the first signal missed. */
        kill(-pgid, SIGKILL);
        while (waitpid(-pgid, NULL, WNOHANG) > 0) {
        }
        if (kill(-pgid, 0) != 0 && errno == ESRCH)
            return;
        if (rp_time_mono_ms() >= until)
            return;
        rp_exec_sleep_ms(5);
    }
}

static int64_t rp_exec_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Read a small capture file whole. RP_ERR_NOT_FOUND when absent. */
static rp_err_t rp_exec_read_file(const char *path, rp_buf_t *out)
{
    char chunk[RP_EXEC_READ_CHUNK];
    rp_err_t err = RP_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? RP_ERR_NOT_FOUND : RP_ERR_IO;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = RP_ERR_IO;
            break;
        }
        if (n == 0)
            break;
        if ((err = rp_buf_append(out, chunk, (size_t)n)) != RP_OK)
            break;
    }
    close(fd);
    return err;
}

static bool rp_exec_shell_var(const char *name)
{
    for (size_t i = 0; i < sizeof(rp_exec_shell_vars) / sizeof(*rp_exec_shell_vars); i++)
        if (!strcmp(name, rp_exec_shell_vars[i]))
            return true;
    return false;
}

/* Parse the NUL-separated dump (modified in place) into env. Variables a
 * session could not store are left out and announced on stderr. */
static rp_err_t rp_exec_parse_env(char *data, size_t len, rp_env_t *env,
                                  rp_exec_stream_t *err_stream)
{
    bool full_noted = false;
    size_t off = 0;

    while (off < len) {
        char *entry = data + off, *eq;
        size_t elen = strnlen(entry, len - off);
        rp_err_t err;

        off += elen + 1;
        if (!(eq = memchr(entry, '=', elen)))
            continue;
        *eq = '\0';
        /* Names the shell cannot export (inherited oddities) are dropped. */
        if (rp_exec_shell_var(entry) || !rp_env_name_valid(entry))
            continue;
        if (strlen(eq + 1) > RP_ENV_VALUE_MAX) {
            rp_exec_note(err_stream,
                         "runpool: not saving variable %s: value over %d bytes\n",
                         entry, RP_ENV_VALUE_MAX);
            continue;
        }
        if (!rp_utf8_valid(eq + 1, strlen(eq + 1))) {
            rp_exec_note(err_stream,
                         "runpool: not saving variable %s: value is not UTF-8\n",
                         entry);
            continue;
        }
        if (env->n >= RP_ENV_MAX_VARS && !rp_env_get(env, entry)) {
            if (!full_noted)
                rp_exec_note(err_stream,
                             "runpool: not saving variables past %d, from %s on\n",
                             RP_ENV_MAX_VARS, entry);
            full_noted = true;
            continue;
        }
        if ((err = rp_env_set(env, entry, eq + 1)) != RP_OK)
            return err;
    }
    return RP_OK;
}

/* One shell word of `export -p` output, unquoted into out (bytes and no
 * NUL). Returns the position after the word, or NULL on syntax we do not
 * know. Quoting as dash, bash and busybox print it: '…', "…" (backslash
 * before $ ` " \ and newline), $'…' (bash's ANSI-C form) and \x. */
static const char *rp_exec_unquote_word(const char *p, const char *end,
                                        rp_buf_t *out, bool *full)
{
    while (p < end && *p != ' ' && *p != '\t' && *p != '\n') {
        char c = *p++;
        rp_err_t err = RP_OK;

        if (c == '\'') {
            const char *q = memchr(p, '\'', (size_t)(end - p));

            if (!q)
                return NULL;
            err = rp_buf_append(out, p, (size_t)(q - p));
            p = q + 1;
        } else if (c == '"') {
            while (p < end && *p != '"' && err == RP_OK) {
                if (*p == '\\' && p + 1 < end &&
                    strchr("$`\"\\\n", p[1])) {
                    if (p[1] != '\n')
                        err = rp_buf_append(out, p + 1, 1);
                    p += 2;
                } else {
                    err = rp_buf_append(out, p++, 1);
                }
            }
            if (p >= end)
                return NULL;
            p++;
        } else if (c == '$' && p < end && *p == '\'') {
            for (p++; p < end && *p != '\'' && err == RP_OK;) {
                static const char from[] = "abeEfnrtv\\'\"?";
                static const char to[] = "\a\b\033\033\f\n\r\t\v\\'\"?";
                const char *f;
                unsigned v = 0;
                int nd = 0;
                char b;

                if (*p != '\\') {
                    err = rp_buf_append(out, p++, 1);
                    continue;
                }
                if (++p >= end)
                    return NULL;
                if ((f = strchr(from, *p)) && *p) {
                    b = to[f - from];
                    p++;
                } else if (*p >= '0' && *p <= '7') {
                    for (; nd < 3 && p < end && *p >= '0' && *p <= '7'; nd++)
                        v = v * 8 + (unsigned)(*p++ - '0');
                    b = (char)v;
                } else if (*p == 'x') {
                    for (p++; nd < 2 && p < end && isxdigit((unsigned char)*p);
                         nd++, p++)
                        v = v * 16 + (unsigned)(isdigit((unsigned char)*p)
                                                    ? *p - '0'
                                                    : (tolower((unsigned char)*p) - 'a' + 10));
                    if (!nd)
                        return NULL;
                    b = (char)v;
                } else {
                    return NULL;
                }
                if (b == '\0')
                    return NULL;
                err = rp_buf_append(out, &b, 1);
            }
            if (p >= end)
                return NULL;
            p++;
        } else if (c == '\\') {
            if (p >= end)
                return NULL;
            if (*p != '\n')
                err = rp_buf_append(out, p, 1);
            p++;
        } else {
            err = rp_buf_append(out, &c, 1);
        }
        if (err != RP_OK) {
            *full = true;
            return NULL;
        }
    }
    return p;
}

rp_err_t rp_exec_exports_to_dump(const char *text, size_t len, rp_buf_t *out)
{
    const char *p = text, *end = text + len;
    bool full = false;

    while (p < end) {
        const char *name;
        size_t nlen;

        while (p < end && (*p == '\n' || *p == ' ' || *p == '\t'))
            p++;
        if (p >= end)
            break;
        if ((size_t)(end - p) > 7 && !memcmp(p, "export ", 7)) {
            p += 7;
        } else if ((size_t)(end - p) > 9 && !memcmp(p, "declare -", 9)) {
            /* bash outside POSIX mode: declare -x, -rx, -ix ... */
            for (p += 9; p < end && isalpha((unsigned char)*p); p++) {
            }
            if (p >= end || *p != ' ')
                return RP_ERR_INVALID;
            p++;
        } else {
            return RP_ERR_INVALID;
        }
        name = p;
        while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
            p++;
        nlen = (size_t)(p - name);
        if (nlen == 0)
            return RP_ERR_INVALID;
        if (p >= end || *p == '\n') /* exported, never set: no value */
            continue;
        if (*p != '=')
            return RP_ERR_INVALID;
        p++;
        if (rp_buf_append(out, name, nlen) != RP_OK ||
            rp_buf_append(out, "=", 1) != RP_OK)
            return RP_ERR_TOO_LARGE;
        if (!(p = rp_exec_unquote_word(p, end, out, &full)))
            return full ? RP_ERR_TOO_LARGE : RP_ERR_INVALID;
        if (p < end && *p != '\n')
            return RP_ERR_INVALID;
        if (rp_buf_append(out, "", 1) != RP_OK)
            return RP_ERR_TOO_LARGE;
    }
    return RP_OK;
}

/* Fill cwd_after/env_after from the capture files, or from what the
 * command started with when the capture did not happen. */
static rp_err_t rp_exec_read_capture(const rp_exec_paths_t *p,
                                     const rp_exec_opts_t *opts,
                                     const char *start_cwd,
                                     rp_exec_outcome_t *out,
                                     rp_exec_stream_t *err_stream)
{
    rp_buf_t buf;
    struct stat st;
    bool have_cwd = false, have_env = false;
    rp_err_t err;

    rp_buf_init(&buf, RP_CWD_MAX + 1); /* + pwd's newline */
    err = rp_exec_read_file(p->cwd, &buf);
    if (err == RP_OK && buf.len > 1 && buf.data[0] == '/' &&
        buf.data[buf.len - 1] == '\n' && memchr(buf.data, '\0', buf.len) == NULL) {
        buf.data[--buf.len] = '\0';
        have_cwd = (out->cwd_after = rp_buf_steal(&buf, NULL)) != NULL;
        if (!have_cwd) {
            err = RP_ERR_NOMEM;
            goto out;
        }
    } else if (err == RP_ERR_TOO_LARGE) {
        rp_exec_note(err_stream, "runpool: not saving the working directory: "
                                 "longer than %d bytes\n", RP_CWD_MAX);
    }
    rp_buf_free(&buf);
    if (!have_cwd && !(out->cwd_after = strdup(start_cwd))) {
        err = RP_ERR_NOMEM;
        goto out;
    }

    /* env.ok exists only when the dumper finished: never trust half a dump.
     * Without it, env.sh.ok says the builtin `export -p` wrote env.sh. */
    rp_buf_init(&buf, RP_EXEC_ENV_DUMP_MAX);
    if (stat(p->env_ok, &st) == 0) {
        err = rp_exec_read_file(p->env, &buf);
    } else if (stat(p->env_sh_ok, &st) == 0) {
        rp_buf_t sh;

        rp_buf_init(&sh, RP_EXEC_ENV_DUMP_MAX);
        err = rp_exec_read_file(p->env_sh, &sh);
        if (err == RP_OK && sh.len)
            err = rp_exec_exports_to_dump(sh.data, sh.len, &buf);
        rp_buf_free(&sh);
        if (err == RP_ERR_INVALID) {
            rp_exec_note(err_stream, "runpool: not saving the environment: "
                                     "cannot read the shell's export -p "
                                     "output\n");
            err = RP_OK;
            goto no_env;
        }
    } else {
        goto no_env;
    }
    if (err == RP_OK) {
        err = buf.len ? rp_exec_parse_env(buf.data, buf.len, &out->env_after,
                                          err_stream)
                      : RP_OK;
        if (err != RP_OK)
            goto out;
        have_env = true;
    } else {
        rp_exec_note(err_stream, "runpool: not saving the environment: %s\n",
                     rp_err_str(err));
    }
no_env:
    err = RP_OK;
    if (!have_env && opts->env) {
        rp_env_clear(&out->env_after);
        if ((err = rp_env_copy(&out->env_after, opts->env)) != RP_OK)
            goto out;
    }
    out->captured = have_cwd && have_env;
out:
    rp_buf_free(&buf);
    return err;
}

/* Cut a truncated stream back to a UTF-8 boundary so text stays text. */
static void rp_exec_stream_finish(rp_exec_stream_t *s)
{
    if (s->truncated && s->buf.data) {
        s->buf.len = rp_utf8_trim(s->buf.data, s->buf.len);
        s->buf.data[s->buf.len] = '\0';
    }
}

/* What the wait loop tracks about one running shell. Times are monotonic
 * ms; INT64_MAX means "not scheduled". */
typedef struct rp_exec_child {
    pid_t pid;    /* the shell; also its process group id */
    int pidfd;    /* -1 when the kernel offers none */
    int wstatus;  /* valid once reaped */
    bool reaped;
    bool term_sent, kill_sent;
    bool timed_out, cancelled;
    /* The user's command had exited when a stop came (its EXIT trap made
     * `over` first): the stop was ignored and the tail runs to its end. */
    bool over;
    bool cancel_seen;   /* cancel_fd fired; it is not polled again */
    const char *over_path; /* borrowed: rp_exec_paths_t.over */
    int64_t deadline;   /* timeout: SIGTERM the group */
    int64_t kill_at;    /* grace over: SIGKILL the group */
    int64_t linger_end; /* shell gone: stop waiting for pipe EOF */
    int64_t kill_grace, linger;
    int64_t end_mono;
    int64_t end_wall;
} rp_exec_child_t;

/* A timeout or a cancel wants to stop the command: true when it still
 * runs, and from now on it counts as cut. false when the user's command
 * has already exited (its EXIT trap created `over` first): then the shell
 * is in our capture tail, which must finish so the record is written.
 * O_EXCL makes this a race with one winner, so "cancelled" and "record
 * written" can never both be true, nor both false. */
static bool rp_exec_stop_first(rp_exec_child_t *c)
{
    int fd = open(c->over_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd >= 0) {
        close(fd);
        return true;
    }
    if (errno == EEXIST) {
        c->over = true;
        return false;
    }
    return true; /* cannot tell (our directory is gone): stop, as before */
}

static void rp_exec_terminate(rp_exec_child_t *c, int64_t now)
{
    kill(-c->pid, SIGTERM);
    c->term_sent = true;
    c->kill_at = now + c->kill_grace;
}

static void rp_exec_try_reap(rp_exec_child_t *c)
{
    if (waitpid(c->pid, &c->wstatus, WNOHANG) != c->pid)
        return;
    c->reaped = true;
    c->end_mono = rp_time_mono_ms();
    c->end_wall = rp_time_wall_ms();
    c->linger_end = c->end_mono + c->linger;
}

/* ms until the next timed step, for poll(); -1 = wait for an fd. */
static int rp_exec_poll_ms(const rp_exec_child_t *c, int64_t now)
{
    int64_t wake;

    if (c->reaped)
        wake = c->linger_end;
    else if (c->over)
        wake = INT64_MAX; /* in the tail: no timeout applies any more */
    else if (!c->term_sent)
        wake = c->deadline;
    else
        wake = c->kill_sent ? INT64_MAX : c->kill_at;
    if (!c->reaped && c->pidfd < 0)
        wake = rp_exec_min(wake, now + RP_EXEC_WAITPID_TICK_MS);
    if (wake == INT64_MAX)
        return -1;
    return wake <= now ? 0 : (int)rp_exec_min(wake - now, INT_MAX);
}

/* The one loop: read both pipes, enforce the timeout, notice the shell's
 * exit, then linger briefly for pipe EOF. Returns when the shell is reaped
 * and the pipes are at EOF or the linger time is over. */
static rp_err_t rp_exec_wait(rp_exec_child_t *c, rp_exec_stream_t *so,
                             rp_exec_stream_t *se, int cancel_fd,
                             char *errstr, size_t errstr_size)
{
    for (;;) {
        struct pollfd pfd[4];
        int np = 0, i_so = -1, i_se = -1, i_pid = -1, i_cancel = -1;
        int64_t now = rp_time_mono_ms();

        if (!c->reaped && !c->term_sent && !c->over && now >= c->deadline &&
            rp_exec_stop_first(c)) {
            c->timed_out = true;
            rp_exec_terminate(c, now);
        }
        if (!c->reaped && c->term_sent && !c->kill_sent && now >= c->kill_at) {
            kill(-c->pid, SIGKILL);
            c->kill_sent = true;
        }
        if (c->reaped && ((so->fd < 0 && se->fd < 0) || now >= c->linger_end))
            return RP_OK;

        if (so->fd >= 0) {
            i_so = np;
            pfd[np++] = (struct pollfd){.fd = so->fd, .events = POLLIN};
        }
        if (se->fd >= 0) {
            i_se = np;
            pfd[np++] = (struct pollfd){.fd = se->fd, .events = POLLIN};
        }
        if (!c->reaped && c->pidfd >= 0) {
            i_pid = np;
            pfd[np++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
        }
        if (!c->reaped && !c->term_sent && !c->cancel_seen && cancel_fd >= 0) {
            i_cancel = np;
            pfd[np++] = (struct pollfd){.fd = cancel_fd, .events = POLLIN};
        }
        if (poll(pfd, (nfds_t)np, rp_exec_poll_ms(c, now)) < 0) {
            if (errno == EINTR)
                continue;
            return rp_errf(errstr, errstr_size, RP_ERR_IO, "poll: %s",
                           strerror(errno));
        }
        if (i_so >= 0 && pfd[i_so].revents)
            rp_exec_stream_read(so);
        if (i_se >= 0 && pfd[i_se].revents)
            rp_exec_stream_read(se);
        if (i_cancel >= 0 && pfd[i_cancel].revents) {
            /* A cancel only counts while the user's command runs; one that
             * comes during the capture tail (the worker died just after
             * the command ended) is noted and otherwise ignored. */
            c->cancel_seen = true;
            if (rp_exec_stop_first(c)) {
                c->cancelled = true;
                rp_exec_terminate(c, rp_time_mono_ms());
            }
        }
        if (!c->reaped && (c->pidfd < 0 || (i_pid >= 0 && pfd[i_pid].revents)))
            rp_exec_try_reap(c);
    }
}

static void rp_exec_set_status(const rp_exec_child_t *c, rp_exec_outcome_t *out)
{
    if (WIFEXITED(c->wstatus)) {
        out->has_exit_code = true;
        out->exit_code = WEXITSTATUS(c->wstatus);
    } else if (WIFSIGNALED(c->wstatus)) {
        out->has_signal = true;
        out->signal = WTERMSIG(c->wstatus);
    }
    out->cancelled = c->cancelled;
    out->late_cancel = c->cancel_seen && !c->cancelled;
    if (c->timed_out)
        out->status = RP_STATUS_TIMED_OUT;
    else if (out->has_exit_code && out->exit_code == 0 && !c->cancelled)
        out->status = RP_STATUS_SUCCEEDED;
    else
        out->status = RP_STATUS_FAILED;
}

rp_err_t rp_exec_run(const rp_exec_opts_t *opts, rp_exec_outcome_t *out,
                     char *errstr, size_t errstr_size)
{
    rp_exec_stream_t so = {.fd = -1}, se = {.fd = -1};
    rp_exec_child_t child = {.pid = -1, .pidfd = -1};
    /* child.over_path is set once the paths exist. */
    rp_exec_paths_t paths = {{0}};
    rp_buf_t script, env_in;
    char helper_self[RP_EXEC_PATH_MAX];
    const char *dumper, *cwd, *helper = NULL;
    bool drop = false;
    char **envp = NULL;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int64_t start_mono;
    size_t cap;
    rp_err_t err = RP_OK;

    memset(out, 0, sizeof(*out));
    rp_buf_init(&script, RP_EXEC_SCRIPT_MAX);
    rp_buf_init(&env_in, RP_EXEC_ENV_IN_MAX);
    if (!opts || !opts->command)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "no command");
    if (strlen(opts->command) > RP_COMMAND_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "command over %d bytes", RP_COMMAND_MAX);
    if (opts->output_max > RP_OUTPUT_MAX_LIMIT)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "output_max over %d bytes", RP_OUTPUT_MAX_LIMIT);
    cap = opts->output_max ? opts->output_max : RP_OUTPUT_MAX_DEFAULT;
    rp_buf_init(&so.buf, cap);
    rp_buf_init(&se.buf, cap);

    /* NULL: the shell's builtin `export -p` captures (no exec). */
    dumper = opts->env_dumper;
    if (dumper && dumper[0] != '/') {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "env dumper must be an absolute path: %s", dumper);
        goto out;
    }
    /* A drop only when it changes anything: we are root and the user is
     * another (rp_runas_check has refused what cannot be done). */
    drop = opts->run_as.set && geteuid() == 0 && opts->run_as.uid != 0;
    if (drop) {
        helper = opts->run_as_helper;
        if (!helper) {
            ssize_t n = readlink("/proc/self/exe", helper_self,
                                 sizeof(helper_self) - 1);

            if (n <= 0 || (size_t)n >= sizeof(helper_self) - 1) {
                err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                              "readlink /proc/self/exe failed");
                goto out;
            }
            helper_self[n] = '\0';
            helper = helper_self;
        }
        if (helper[0] != '/') {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "run-as helper must be an absolute path: %s",
                          helper);
            goto out;
        }
    }
    if (opts->subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    cwd = rp_exec_pick_cwd(opts, &se);
    if ((err = rp_exec_make_paths(&paths, errstr, errstr_size)) != RP_OK)
        goto out;
    if ((err = rp_exec_write_file(paths.command, opts->command,
                                  strlen(opts->command), errstr,
                                  errstr_size)) != RP_OK)
        goto out;
    if (!(envp = rp_exec_envp(opts->env, cwd, rp_exec_envp_budget(opts),
                              &env_in, &err))) {
        rp_errf(errstr, errstr_size, err, "environment: %s", rp_err_str(err));
        goto out;
    }
    if (env_in.len &&
        (err = rp_exec_write_file(paths.env_in, env_in.data, env_in.len,
                                  errstr, errstr_size)) != RP_OK)
        goto out;
    if (drop) {
        /* The shell, as the command's user, reads the command and env
         * files and writes the capture files; nobody else may look in. */
        if ((err = rp_runas_prepare_dir(&opts->run_as, paths.dir, errstr,
                                        errstr_size)))
            goto out;
        if (chown(paths.command, opts->run_as.uid, opts->run_as.gid) != 0 ||
            (env_in.len &&
             chown(paths.env_in, opts->run_as.uid, opts->run_as.gid) != 0)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "chown the command's files to %u:%u: %s",
                          (unsigned)opts->run_as.uid,
                          (unsigned)opts->run_as.gid, strerror(errno));
            goto out;
        }
    }
    if (rp_exec_build_script(&paths, dumper, env_in.len > 0, &script) !=
        RP_OK) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "script over %d bytes", RP_EXEC_SCRIPT_MAX);
        goto out;
    }
    if (rp_exec_pipe(out_pipe) != 0 || rp_exec_pipe(err_pipe) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "pipe: %s",
                      strerror(errno));
        goto out;
    }

    /* A cancel that came while we prepared (the worker died, Cloud Run
     * stopped the task) must not start the command at all: even its first
     * statements would run for nothing and might have side effects. */
    if (opts->cancel_fd >= 0) {
        struct pollfd cp = {.fd = opts->cancel_fd, .events = POLLIN};

        if (poll(&cp, 1, 0) == 1) {
            out->cancelled = true;
            out->status = RP_STATUS_FAILED;
            goto out;
        }
    }
    start_mono = rp_time_mono_ms();
    out->started_at_ms = rp_time_wall_ms();
    err = rp_exec_spawn(script.data, envp, cwd, out_pipe[1], err_pipe[1],
                        drop ? helper : NULL, &opts->run_as, &child.pid,
                        errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    out->pgid = child.pid;
    out->spawned = true;
    child.over_path = paths.over;
    /* Our copies of the write ends must go, or we would never see EOF. */
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    so.fd = out_pipe[0];
    se.fd = err_pipe[0];
    out_pipe[0] = err_pipe[0] = -1;

    /* A pidfd turns "the shell exited" into a poll event; without one
     * (old kernel, some sandboxes) we poll waitpid on a short tick. */
    child.pidfd = rp_exec_pidfd(child.pid);
    child.deadline = opts->timeout_ms > 0 ? start_mono + opts->timeout_ms
                                          : INT64_MAX;
    child.kill_at = child.linger_end = INT64_MAX;
    child.kill_grace = opts->kill_grace_ms > 0 ? opts->kill_grace_ms
                                               : RP_EXEC_KILL_GRACE_DEFAULT_MS;
    child.linger = opts->linger_ms > 0 ? opts->linger_ms
                                       : RP_EXEC_LINGER_DEFAULT_MS;
    err = rp_exec_wait(&child, &so, &se, opts->cancel_fd, errstr, errstr_size);

    /* Nothing of the command outlives the call; what it already wrote into
     * the pipes is still read. */
    rp_exec_kill_group(child.pid);
    if (!child.reaped) {
        /* Only after a poll failure: collect the (now killed) shell. */
        while (waitpid(child.pid, &child.wstatus, 0) < 0 && errno == EINTR) {
        }
        child.end_mono = rp_time_mono_ms();
        child.end_wall = rp_time_wall_ms();
    }
    rp_exec_stream_read(&so);
    rp_exec_stream_read(&se);
    if (err != RP_OK)
        goto out;

    rp_exec_set_status(&child, out);
    out->finished_at_ms = child.end_wall;
    out->duration_ms = child.end_mono - start_mono;
    rp_exec_stream_finish(&so);
    rp_exec_stream_finish(&se);
    err = rp_exec_read_capture(&paths, opts, cwd, out, &se);
    if (err != RP_OK) {
        rp_errf(errstr, errstr_size, err, "reading the capture: %s",
                rp_err_str(err));
        goto out;
    }
    out->stdout_truncated = so.truncated;
    out->stderr_truncated = se.truncated;
    out->stdout_data = rp_buf_steal(&so.buf, &out->stdout_len);
    out->stderr_data = rp_buf_steal(&se.buf, &out->stderr_len);
    if (!out->stdout_data || !out->stderr_data)
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "output buffers");
out:
    rp_exec_stream_close(&so);
    rp_exec_stream_close(&se);
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    if (child.pidfd >= 0)
        close(child.pidfd);
    rp_buf_free(&so.buf);
    rp_buf_free(&se.buf);
    rp_buf_free(&script);
    rp_buf_free(&env_in);
    rp_exec_envp_free(envp);
    rp_exec_remove_paths(&paths);
    return err;
}
