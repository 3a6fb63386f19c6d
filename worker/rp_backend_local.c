/* The local backend: each execution is a runpool-executor child process.
 *
 * The child gets the environment a Cloud Run job container would get: the
 * executor contract (rp_jobenv_build) plus a base of PATH, HOME and TMPDIR
 * and the deployment's Google settings (rp_local_passthrough: what a job
 * template would set) — not the worker's own environment, so nothing of
 * the worker leaks into sessions and the two backends behave alike. The
 * command and its per-request env are not in that environment: they come
 * as the request document on the executor's stdin, a memfd
 * (RUNPOOL_REQUEST_REF=-, rp_jobenv.h), so a 256 KiB command is not cut
 * by the kernel's 128 KiB limit on one environ string and does not show
 * in /proc/PID/environ.
 *
 * Each execution runs under the configured resource limits (address
 * space, processes, file size, open files: setrlimit in the child before
 * execve, hard and soft, so the command cannot raise them).
 *
 * Workspace (--workspace, docs/workspace.md): in snapshot mode (an
 * absolute path, the default) each execution gets a fresh scratch
 * directory BASE/.scratch/{execution_id}.{pid}.{n} as its
 * RUNPOOL_WORKSPACE, which the executor restores from the session's
 * snapshot (chunks it finds in BASE/.chunks are not downloaded) and
 * removes when done (RUNPOOL_WORKSPACE_SCRATCH=1) — so a local session
 * behaves as on Cloud Run, and the next command may run on another
 * worker. BASE is --workdir, else $TMPDIR/runpool-local-{uid}. The
 * cache BASE/.chunks is kept under --workspace-cache-max-bytes by a
 * pruner thread (least recently used first, rp_wscache.h). With
 * "keep" or "off" (or no workspace in the spec) the old behaviour: a new
 * session's directory workdir/{session} is created mode 0700 and files
 * stay on this machine; "mount:/PATH" is passed through.
 *
 * Children are watched through pidfds on an epoll set served by one reaper
 * thread, so thousands of executions cost one thread, not thousands.
 *
 * How an executor starts (--executor-fork-server, rp_zygote.h): by default
 * one `runpool-executor --serve`, started with the backend, forks each one
 * with CLONE_PARENT, so it is our child all the same and everything below
 * (waitpid, pidfds, signals, detach) treats both kinds alike. Without the
 * server, or while it is down or refuses a request, the executor is
 * vfork+exec'd here (rp_local_spawn).
 *
 * An executor outlives its worker: it runs in its own session (setsid: a
 * Ctrl-C or a terminal hang-up meant for the worker does not reach it) and
 * gets no parent-death signal, so a worker that is killed, or that exits
 * after its drain, leaves its executors running; each finishes its command
 * and writes its record, and the next owner of the partition finds the
 * claim and attaches (rp_local_attach) instead of starting the command
 * again. detach therefore never kills: it only stops watching (a child is
 * still reaped when it exits, silently). In Kubernetes a pod's death still
 * ends its executors (they are in the pod's cgroup); that is the machine
 * loss case, which ends as an "interrupted" result (docs/worker.md).
 */
#include "rp_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rp_claim.h"
#include "rp_list.h"
#include "rp_log.h"
#include "rp_runas.h"
#include "rp_time.h"
#include "rp_timerq.h"
#include "rp_wscache.h"
#include "rp_zygote.h"

#define RP_LOCAL_PATH_DEFAULT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define RP_LOCAL_KILL_GRACE_DEFAULT_MS 5000
/* The chunk cache: its default size, and how often it is pruned. */
#define RP_LOCAL_WS_CACHE_MAX_DEFAULT ((size_t)1 << 30)
#define RP_LOCAL_PRUNE_MS 60000
/* The fork server (rp_zygote.h): how long its greeting and each answer
 * may take before it is given up (an answer is one clone, well under a
 * millisecond), and how long after a failure it is started again. */
#define RP_LOCAL_ZYGOTE_HELLO_MS 5000
#define RP_LOCAL_ZYGOTE_ANSWER_MS 2000
#define RP_LOCAL_ZYGOTE_RETRY_MS 1000

/* Variables a job container gets from its deployment, not from the
 * request: where the state store and credentials are. */
static const char *const rp_local_passthrough[] = {
    "PATH", "HOME", "TMPDIR", "STORAGE_EMULATOR_HOST",
    "GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "RUNPOOL_LOG_LEVEL",
};

/* Copy the worker's rp_local_passthrough variables that are set into
 * env (over what env has of them). */
static rp_err_t rp_local_passthrough_env(rp_env_t *env)
{
    rp_err_t err = RP_OK;
    const char *v;

    for (size_t i = 0; !err && i < sizeof(rp_local_passthrough) /
                                       sizeof(rp_local_passthrough[0]);
         i++)
        if ((v = getenv(rp_local_passthrough[i])))
            err = rp_env_set(env, rp_local_passthrough[i], v);
    return err;
}

struct rp_backend_run {
    rp_list_t link;        /* on lb->live, under lock */
    rp_list_t report_link; /* on lb->detached until its done is reported */
    pid_t pid;
    int pidfd;
    void *job;
    char run_id[RP_CLAIM_RUN_MAX + 1]; /* "local:boot:pid:ticks" */
    rp_timer_t kill_timer; /* on lb->kills: SIGKILL after a cancel's grace */
    bool child;    /* started here (waitpid); false: attached to */
    /* rp_backend_start_fresh: the worker looked for no earlier record or
     * claim, so an executor that finds a claim (exit RP_EXEC_EXIT_CLAIMED)
     * is reported RP_ERR_EXISTS and the worker looks the slow way. */
    bool fresh;
    bool cancelled;
    bool detached; /* given up: its done reported as cancelled; it goes on */
    bool reaped;   /* gone: waited for or no longer watched; never signal */
    bool reported; /* done callback returned: the reaper is finished with it */
    bool released; /* the worker is finished with it */
};

/* One resource limit to set in each executor before it runs. */
typedef rp_zygote_limit_t rp_local_limit_t;

#define RP_LOCAL_LIMITS_MAX 4

typedef struct rp_local {
    char *executor_path;
    char *workdir;
    char ws_base[PATH_MAX];    /* scratch directories and chunk cache */
    atomic_ulong ws_seq;       /* makes each scratch directory's name new */
    int kill_grace_ms;
    rp_local_limit_t limits[RP_LOCAL_LIMITS_MAX];
    int nlimits;
    rp_runas_t run_as;  /* --run-as: who the commands run as */
    char run_as_str[32]; /* the same as RUNPOOL_RUN_AS for the executor */
    int epfd;
    int wake_fd; /* wakes the reaper to re-read kill deadlines / stop */
    pthread_t reaper;
    bool reaper_started;
    pthread_mutex_t lock;
    rp_list_t live; /* runs started or attached and not yet reaped */
    rp_list_t detached; /* detached runs whose done is not reported yet */
    rp_timerq_t kills; /* SIGKILL deadlines of cancelled live runs */
    bool stopping;
    /* The chunk cache's pruner (rp_wscache.h): one pass at start, then
     * every RP_LOCAL_PRUNE_MS; waits on prune_cond under lock. */
    size_t ws_cache_max_bytes;
    pthread_t pruner;
    bool pruner_started;
    pthread_cond_t prune_cond;
    /* The fork server (rp_zygote.h), under zy_lock: zy_sock our end of
     * its socket (-1: none now), zy_pid its pid (our child; -1: none),
     * zy_retry_ms when a failed one may be started again (monotonic). */
    bool fork_server; /* configured on */
    pthread_mutex_t zy_lock;
    int zy_sock;
    pid_t zy_pid;
    int64_t zy_retry_ms;
} rp_local_t;

static void rp_local_free_run(rp_backend_run_t *run)
{
    free(run);
}

/* Build "NAME=value" strings for execve. Caller frees with free_envp. */
static char **rp_local_envp(const rp_env_t *env)
{
    char **envp = calloc(env->n + 1, sizeof(char *));

    if (!envp)
        return NULL;
    for (size_t i = 0; i < env->n; i++) {
        size_t n = strlen(env->vars[i].name) + strlen(env->vars[i].value) + 2;

        if (!(envp[i] = malloc(n))) {
            for (size_t j = 0; j < i; j++)
                free(envp[j]);
            free(envp);
            return NULL;
        }
        snprintf(envp[i], n, "%s=%s", env->vars[i].name, env->vars[i].value);
    }
    return envp;
}

static void rp_local_free_envp(char **envp)
{
    if (!envp)
        return;
    for (size_t i = 0; envp[i]; i++)
        free(envp[i]);
    free(envp);
}

/* The child side of vfork(): it runs on the parent's memory until execve,
 * so it only makes async-signal-safe system calls and never returns. */
static void __attribute__((noreturn))
rp_local_child(char *const *argv, char **envp, int request_fd,
               const rp_local_limit_t *limits, int nlimits)
{
    sigset_t none;
    struct sigaction dfl;
    int devnull;

    /* The worker blocks SIGTERM/SIGINT for its signalfd and ignores
     * SIGPIPE; both would otherwise be inherited across execve. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    /* Own session, own process group, no parent-death signal: the
     * executor survives the worker (see the top of this file). */
    setsid();
    /* The execution's limits, hard as well as soft: the command inherits
     * them and cannot raise them. Checked against ours at start, so a
     * failure here is unexpected; it must not run unbounded. */
    for (int i = 0; i < nlimits; i++)
        if (setrlimit(limits[i].resource, &limits[i].value) != 0)
            _exit(127);
    /* The request document is the executor's stdin (RUNPOOL_REQUEST_REF=-);
     * dup2 clears the memfd's close-on-exec on the copy. */
    if (request_fd == STDIN_FILENO) /* the worker had no stdin open */
        fcntl(STDIN_FILENO, F_SETFD, 0);
    else if (request_fd >= 0 && dup2(request_fd, STDIN_FILENO) < 0)
        _exit(127);
    /* Nothing of the worker's (librdkafka's pipes and sockets, the
     * epoll set) is inherited by the executor. */
    close_range(3, ~0U, 0);
    devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        if (request_fd < 0)
            dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO); /* executor logs go to stderr */
        if (devnull > STDERR_FILENO)
            close(devnull);
    }
    execve(argv[0], argv, envp);
    _exit(127);
}

/* vfork, not fork: fork copies the worker's page tables (1-2 ms of system
 * time per execution, measured by bench/, all on the main thread); vfork
 * borrows the parent's memory until the child's execve. Kept apart and
 * not inlined so that nothing of the caller's frame is live across it. */
static pid_t __attribute__((noinline))
rp_local_spawn(char *const *argv, char **envp, int request_fd,
               const rp_local_limit_t *limits, int nlimits)
{
    pid_t pid = vfork();

    if (pid == 0)
        rp_local_child(argv, envp, request_fd, limits, nlimits);
    return pid;
}

/* Stop using the fork server: close our end (it exits at end of file),
 * make sure it is gone and reap it. Its executors are our children, not
 * its own, and go on. With zy_lock held. */
static void rp_local_zygote_stop(rp_local_t *lb)
{
    if (lb->zy_sock >= 0)
        close(lb->zy_sock);
    lb->zy_sock = -1;
    if (lb->zy_pid > 0) {
        kill(lb->zy_pid, SIGKILL);
        waitpid(lb->zy_pid, NULL, 0);
    }
    lb->zy_pid = -1;
    lb->zy_retry_ms = rp_time_mono_ms() + RP_LOCAL_ZYGOTE_RETRY_MS;
}

/* Start `runpool-executor --serve` with the deployment's environment and
 * no limits (each execution's are set in its own process), and wait for
 * its greeting. With zy_lock held; on failure there is none, and the
 * executors are vfork+exec'd until zy_retry_ms. */
static void rp_local_zygote_start(rp_local_t *lb)
{
    char *argv[] = {lb->executor_path, RP_ZYGOTE_FLAG, NULL};
    char es[256], **envp = NULL, *room = NULL;
    rp_env_t env = {0};
    int sv[2];
    pid_t hello_pid;
    rp_err_t err = rp_env_set(&env, "PATH", RP_LOCAL_PATH_DEFAULT);

    if (!err)
        err = rp_local_passthrough_env(&env);
    /* Room for each executor's /proc/PID/environ (rp_zygote.h). */
    if (!err && !(room = malloc(RP_ZYGOTE_ROOM + 1)))
        err = RP_ERR_NOMEM;
    if (!err) {
        memset(room, '.', RP_ZYGOTE_ROOM);
        room[RP_ZYGOTE_ROOM] = '\0';
        err = rp_env_set(&env, RP_ZYGOTE_ROOM_ENV, room);
    }
    if (err || !(envp = rp_local_envp(&env))) {
        rp_log(RP_LOG_WARN, "fork_server_failed", NULL, NULL,
               "out of memory; executors are exec'd");
        lb->zy_retry_ms = rp_time_mono_ms() + RP_LOCAL_ZYGOTE_RETRY_MS;
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        rp_log(RP_LOG_WARN, "fork_server_failed", NULL, NULL,
               "socketpair: %s; executors are exec'd", strerror(errno));
        lb->zy_retry_ms = rp_time_mono_ms() + RP_LOCAL_ZYGOTE_RETRY_MS;
        goto out;
    }
    lb->zy_sock = sv[0];
    lb->zy_pid = rp_local_spawn(argv, envp, sv[1], NULL, 0);
    close(sv[1]);
    if (lb->zy_pid < 0) {
        err = rp_errf(es, sizeof(es), RP_ERR_SPAWN, "vfork: %s",
                      strerror(errno));
    } else if (!(err = rp_zygote_hello(lb->zy_sock, RP_LOCAL_ZYGOTE_HELLO_MS,
                                       &hello_pid, es, sizeof(es))) &&
               hello_pid != lb->zy_pid) {
        err = rp_errf(es, sizeof(es), RP_ERR_PROTOCOL,
                      "greeting from pid %d, not %d", (int)hello_pid,
                      (int)lb->zy_pid);
    }
    if (err) {
        rp_log(RP_LOG_WARN, "fork_server_failed", NULL, NULL,
               "%s --serve: %s; executors are exec'd", lb->executor_path, es);
        rp_local_zygote_stop(lb);
        goto out;
    }
    rp_log(RP_LOG_INFO, "fork_server_started", NULL, NULL,
           "executor fork server pid %d", (int)lb->zy_pid);
out:
    free(room);
    rp_local_free_envp(envp);
    rp_env_clear(&env);
}

/* Start one executor: forked by the fork server when there is one, else
 * vfork+exec'd. Either way it is our child. Any thread. */
static pid_t rp_local_spawn_executor(rp_local_t *lb, char **envp,
                                     int request_fd)
{
    char *argv[] = {lb->executor_path, NULL};
    char es[256];
    pid_t pid = -1;
    rp_err_t err;

    if (lb->fork_server) {
        pthread_mutex_lock(&lb->zy_lock);
        if (lb->zy_sock < 0 && rp_time_mono_ms() >= lb->zy_retry_ms)
            rp_local_zygote_start(lb);
        if (lb->zy_sock >= 0 &&
            (err = rp_zygote_spawn(lb->zy_sock, envp, request_fd, lb->limits,
                                   lb->nlimits, RP_LOCAL_ZYGOTE_ANSWER_MS,
                                   &pid, es, sizeof(es)))) {
            /* Too large or a failed clone: this one is exec'd (and fails
             * the same way if it must). Anything else: the server is not
             * to be trusted any more; a new one comes in a while. */
            if (err != RP_ERR_TOO_LARGE && err != RP_ERR_SPAWN) {
                rp_log(RP_LOG_WARN, "fork_server_failed", NULL, NULL,
                       "%s; executors are exec'd for now", es);
                rp_local_zygote_stop(lb);
            }
            pid = -1;
        }
        pthread_mutex_unlock(&lb->zy_lock);
        if (pid > 0)
            return pid;
    }
    return rp_local_spawn(argv, envp, request_fd, lb->limits, lb->nlimits);
}

/* workdir/{session}, the default cwd of a new session: private to the
 * worker's user (0700, and made so if an older version left it wider).
 * Created here rather than by the executor's mkdir -p, whose modes follow
 * the umask. A failure is left to the executor, which falls back to
 * another directory and says so on the command's stderr. */
static void rp_local_session_dir(const rp_local_t *lb, const char *dir)
{
    struct stat st;

    /* workdir itself: others may pass through (with --run-as the
     * commands' user must reach its session directory), not list it. */
    if (mkdir(lb->workdir, lb->run_as.set ? 0711 : 0700) != 0 &&
        errno != EEXIST)
        return;
    if (mkdir(dir, 0700) == 0) {
        /* --run-as: the session's directory is the commands' user's. */
        if (lb->run_as.set && chown(dir, lb->run_as.uid, lb->run_as.gid)) {
            /* left to the executor, which says so on the command's stderr */
        }
        return;
    }
    if (errno != EEXIST)
        return;
    if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_uid == (lb->run_as.set ? lb->run_as.uid : geteuid()) &&
        (st.st_mode & 077))
        chmod(dir, 0700);
}

/* Snapshot mode: the name of a fresh scratch directory for this
 * execution (the executor creates it, restores into it and removes it)
 * and the chunk cache. Their parents are made here, private to the
 * worker's user; with --run-as the scratch parent lets that user pass
 * (0711: reach its own directory, list none). */
static rp_err_t rp_local_scratch(rp_local_t *lb, const rp_jobspec_t *spec,
                                 char *dir, size_t dir_size, char *cache,
                                 size_t cache_size, char *errstr,
                                 size_t errstr_size)
{
    char parent[PATH_MAX];
    unsigned long n = atomic_fetch_add(&lb->ws_seq, 1);
    struct stat st;

    if (!lb->ws_base[0])
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "--workdir is too long for the workspace's scratch "
                       "directories");
    if (mkdir(lb->ws_base, lb->run_as.set ? 0711 : 0700) != 0 &&
        errno != EEXIST)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "mkdir %s: %s",
                       lb->ws_base, strerror(errno));
    /* In a shared $TMPDIR the name could be someone else's. */
    if (lstat(lb->ws_base, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid())
        return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                       "%s is not a directory of this user: the workspace's "
                       "scratch directories cannot go there (set --workdir)",
                       lb->ws_base);
    if ((size_t)snprintf(parent, sizeof(parent), "%s/.scratch", lb->ws_base) >=
            sizeof(parent) ||
        (size_t)snprintf(cache, cache_size, "%s/.chunks", lb->ws_base) >=
            cache_size ||
        (size_t)snprintf(dir, dir_size, "%s/%s.%ld.%lu", parent,
                         spec->execution_id, (long)getpid(), n) >= dir_size)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "workspace directory under %s: path too long",
                       lb->ws_base);
    if ((mkdir(parent, lb->run_as.set ? 0711 : 0700) != 0 && errno != EEXIST) ||
        (mkdir(cache, 0700) != 0 && errno != EEXIST))
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "mkdir under %s: %s",
                       lb->ws_base, strerror(errno));
    return RP_OK;
}

/* --run-as: the commands' user must be able to reach workdir (x on
 * every directory above it), or every session would start in a directory
 * it cannot use. Checked once at start, with a message naming the
 * directory, instead of failing each command. */
static rp_err_t rp_local_workdir_reachable(const rp_local_t *lb, char *errstr,
                                           size_t errstr_size)
{
    char path[PATH_MAX];
    struct stat st;
    char *slash;

    if (snprintf(path, sizeof(path), "%s", lb->workdir) >= (int)sizeof(path))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--workdir too long");
    while ((slash = strrchr(path, '/')) && slash != path) {
        *slash = '\0';
        if (stat(path, &st) != 0)
            continue; /* made at the first session, with its modes */
        if (!(st.st_mode & S_IXOTH) &&
            !(st.st_uid == lb->run_as.uid && (st.st_mode & S_IXUSR)) &&
            !(st.st_gid == lb->run_as.gid && (st.st_mode & S_IXGRP)))
            return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                           "--run-as %u:%u cannot reach --workdir %s: %s is "
                           "mode %04o (it needs x for that user: chmod o+x)",
                           (unsigned)lb->run_as.uid, (unsigned)lb->run_as.gid,
                           lb->workdir, path, (unsigned)(st.st_mode & 07777));
    }
    return RP_OK;
}

/* Turn conf->limits into setrlimit calls, refusing what could not work:
 * below the minimum the executor itself needs, or above the worker's own
 * hard limit (an unprivileged process cannot raise it). */
static rp_err_t rp_local_set_limits(rp_local_t *lb,
                                    const rp_backend_limits_t *l,
                                    char *errstr, size_t errstr_size)
{
    const struct {
        size_t v;
        int resource;
        const char *option;
        size_t min;
        const char *why;
    } want[RP_LOCAL_LIMITS_MAX] = {
        {l->address_space, RLIMIT_AS, "exec-max-address-space",
         RP_LOCAL_AS_MIN, "the executor's own memory"},
        {l->processes, RLIMIT_NPROC, "exec-max-processes", RP_LOCAL_NPROC_MIN,
         "counted over all of the user's processes"},
        {l->file_size, RLIMIT_FSIZE, "exec-max-file-size", RP_LOCAL_FSIZE_MIN,
         "the executor writes result records up to this size"},
        {l->open_files, RLIMIT_NOFILE, "exec-max-open-files",
         RP_LOCAL_NOFILE_MIN, "the executor's own files"},
    };

    for (int i = 0; i < RP_LOCAL_LIMITS_MAX; i++) {
        struct rlimit cur;

        if (want[i].v == 0)
            continue;
        if (want[i].v < want[i].min)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "--%s: at least %zu (%s)", want[i].option,
                           want[i].min, want[i].why);
        if (getrlimit(want[i].resource, &cur) == 0 &&
            cur.rlim_max != RLIM_INFINITY && (rlim_t)want[i].v > cur.rlim_max &&
            geteuid() != 0)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "--%s: %zu is above the worker's hard limit %llu",
                           want[i].option, want[i].v,
                           (unsigned long long)cur.rlim_max);
        lb->limits[lb->nlimits].resource = want[i].resource;
        lb->limits[lb->nlimits].value.rlim_cur = (rlim_t)want[i].v;
        lb->limits[lb->nlimits].value.rlim_max = (rlim_t)want[i].v;
        lb->nlimits++;
    }
    return RP_OK;
}

/* The request document in an anonymous memory file, positioned at its
 * start, for the executor's stdin: a pipe would hold only 64 KiB and make
 * the worker's thread wait for the executor to read; a memfd never
 * blocks, is never on disk and goes away with its last descriptor.
 * *fd_out: the fd (close-on-exec), or -1 on error (errstr says). */
static rp_err_t rp_local_request_fd(const rp_jobspec_t *spec, int *fd_out,
                                    char *errstr, size_t errstr_size)
{
    char *doc = NULL;
    size_t len, off = 0;
    rp_err_t err;
    int fd = -1;

    *fd_out = -1;
    if ((err = rp_jobenv_request_json(spec, &doc, errstr, errstr_size)))
        return err;
    err = RP_ERR_IO;
    if ((fd = memfd_create("runpool-request", MFD_CLOEXEC)) < 0) {
        rp_errf(errstr, errstr_size, err, "memfd_create: %s", strerror(errno));
        goto out;
    }
    for (len = strlen(doc); off < len;) {
        ssize_t n = write(fd, doc + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rp_errf(errstr, errstr_size, err,
                    "writing the request document: %s", strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        rp_errf(errstr, errstr_size, err, "lseek: %s", strerror(errno));
        goto out;
    }
    *fd_out = fd;
    fd = -1;
    err = RP_OK;
out:
    if (fd >= 0)
        close(fd);
    free(doc);
    return err;
}

/* Put run (its pidfd set) on the live list and register its pidfd with
 * the reaper; registered last, so from then on the reaper owns its exit.
 * On failure it is on neither. */
static rp_err_t rp_local_watch(rp_local_t *lb, rp_backend_run_t *run,
                               char *errstr, size_t errstr_size)
{
    struct epoll_event ev;

    pthread_mutex_lock(&lb->lock);
    rp_list_push_head(&lb->live, &run->link);
    pthread_mutex_unlock(&lb->lock);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = run;
    if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, run->pidfd, &ev) != 0) {
        rp_err_t err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                               "epoll_ctl: %s", strerror(errno));

        pthread_mutex_lock(&lb->lock);
        rp_list_unlink(&run->link);
        pthread_mutex_unlock(&lb->lock);
        return err;
    }
    return RP_OK;
}

static rp_err_t rp_local_start_run(rp_backend_t *be, const rp_jobspec_t *spec,
                                   void *job, bool fresh,
                                   rp_backend_run_t **out, char *errstr,
                                   size_t errstr_size)
{
    rp_local_t *lb = be->impl;
    rp_jobspec_t s = *spec; /* shallow: default_cwd and workspace replaced */
    rp_env_t env = {0};
    char **envp = NULL, cwd[4096], wsdir[PATH_MAX], cache[PATH_MAX];
    rp_backend_run_t *run = NULL;
    rp_err_t err;
    int request_fd = -1;
    pid_t pid;

    *out = NULL;
    if (spec->workspace && spec->workspace[0] == '/') {
        /* Snapshot mode: a fresh directory, restored by the executor. */
        if ((err = rp_local_scratch(lb, spec, wsdir, sizeof(wsdir), cache,
                                    sizeof(cache), errstr, errstr_size)))
            goto out;
        s.workspace = wsdir;
        s.ws_cache = cache;
        s.ws_scratch = 1;
    } else {
        if (spec->workspace && (!strcmp(spec->workspace, "keep") ||
                                !strcmp(spec->workspace, "off")))
            s.workspace = NULL; /* the executor's "off": files stay here */
        if (lb->workdir && !s.workspace) {
            snprintf(cwd, sizeof(cwd), "%s/%s", lb->workdir, spec->session_id);
            s.default_cwd = cwd;
            rp_local_session_dir(lb, cwd);
        }
    }
    if ((err = rp_jobenv_build(&s, &env, errstr, errstr_size)))
        goto out;
    /* The command and its env go on stdin, never in environ: see
     * rp_jobenv.h (128 KiB per string, visible in /proc/PID/environ). */
    if ((err = rp_jobenv_use_request_stdin(&env, errstr, errstr_size)))
        goto out;
    if ((err = rp_local_request_fd(&s, &request_fd, errstr, errstr_size)))
        goto out;
    err = rp_env_set(&env, "PATH", RP_LOCAL_PATH_DEFAULT);
    if (!err && lb->run_as.set)
        err = rp_env_set(&env, RP_RUNAS_ENV, lb->run_as_str);
    if (!err)
        err = rp_local_passthrough_env(&env);
    if (err || !(envp = rp_local_envp(&env)) ||
        !(run = calloc(1, sizeof(*run)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    run->job = job;
    run->fresh = fresh;

    pid = rp_local_spawn_executor(lb, envp, request_fd);
    if (pid < 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_SPAWN, "vfork: %s",
                      strerror(errno));
        goto out;
    }

    run->pid = pid;
    run->child = true;
    /* The name its claim will carry (the executor computes the same from
     * /proc/self): our child, unreaped, still has its /proc entry, and its
     * start time is fixed at its fork. */
    if (rp_claim_local_run(pid, run->run_id, errstr, errstr_size) != RP_OK)
        run->run_id[0] = '\0'; /* unnamed: the worker then waits for it */
    run->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (run->pidfd < 0) {
        /* Cannot watch it: do not leave it running unobserved. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        err = rp_errf(errstr, errstr_size, RP_ERR_SPAWN, "pidfd_open: %s",
                      strerror(errno));
        goto out;
    }
    if ((err = rp_local_watch(lb, run, errstr, errstr_size))) {
        /* Unwatched, it would never be reported: take it back. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(run->pidfd);
        goto out;
    }
    *out = run;
    run = NULL;
out:
    if (request_fd >= 0)
        close(request_fd); /* the executor has its own copy */
    free(run);
    rp_local_free_envp(envp);
    rp_env_clear(&env);
    return err;
}

static rp_err_t rp_local_start(rp_backend_t *be, const rp_jobspec_t *spec,
                               void *job, rp_backend_run_t **out, char *errstr,
                               size_t errstr_size)
{
    return rp_local_start_run(be, spec, job, false, out, errstr, errstr_size);
}

/* The executor's create-only claim (rp_claim.h) answers "started before"
 * on its own, so a session's next command needs no read first (the
 * worker's session cache holds its state): one trip to the I/O pool and
 * two file lookups less per execution. */
static rp_err_t rp_local_start_fresh(rp_backend_t *be,
                                     const rp_jobspec_t *spec, void *job,
                                     rp_backend_run_t **out, char *errstr,
                                     size_t errstr_size)
{
    return rp_local_start_run(be, spec, job, true, out, errstr, errstr_size);
}

static void rp_local_wake(rp_local_t *lb)
{
    uint64_t one = 1;

    if (write(lb->wake_fd, &one, sizeof(one)) < 0) {
    }
}

/* Through the pidfd: an attached run is not our child, and only the pidfd
 * is sure to name that very process. */
static void rp_local_signal(rp_backend_run_t *run, int sig)
{
    if (syscall(SYS_pidfd_send_signal, run->pidfd, sig, NULL, 0) != 0 &&
        errno == ENOSYS && run->child)
        kill(run->pid, sig);
}

/* SIGTERM run once, and SIGKILL it when the grace has passed. Called with
 * lb->lock held; the caller wakes the reaper to see the new deadline. */
static void rp_local_terminate(rp_local_t *lb, rp_backend_run_t *run)
{
    if (run->reaped || run->cancelled || run->detached)
        return;
    run->cancelled = true;
    /* The executor turns SIGTERM into a clean stop of its command's
     * process group; SIGKILL follows if it does not exit in time. */
    rp_local_signal(run, SIGTERM);
    if (rp_timerq_add(&lb->kills, &run->kill_timer,
                      rp_time_mono_ms() + lb->kill_grace_ms) != RP_OK) {
        /* No room to remember the deadline: no grace rather than none. */
        rp_local_signal(run, SIGKILL);
    }
}

static void rp_local_cancel(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_local_t *lb = be->impl;

    pthread_mutex_lock(&lb->lock);
    rp_local_terminate(lb, run);
    pthread_mutex_unlock(&lb->lock);
    rp_local_wake(lb);
}

/* Set one of run's three ends (released by the worker, reported to it,
 * reaped) under the lock; whoever sets the last one frees it. */
static void rp_local_settle(rp_local_t *lb, rp_backend_run_t *run,
                            bool *flag)
{
    bool free_it;

    pthread_mutex_lock(&lb->lock);
    *flag = true;
    free_it = run->released && run->reported && run->reaped;
    pthread_mutex_unlock(&lb->lock);
    if (free_it)
        rp_local_free_run(run);
}

static void rp_local_release(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_local_t *lb = be->impl;

    if (!run)
        return;
    /* A detached child is reported but still watched, to be reaped. */
    rp_local_settle(lb, run, &run->released);
}

/* Report run's done on the reaper thread, then free it if the worker has
 * released it already (whoever of the two finishes last frees). */
static void rp_local_report(rp_backend_t *be, rp_backend_run_t *run,
                            const rp_backend_done_t *done)
{
    be->done_cb(run->job, done, be->done_opaque);
    rp_local_settle(be->impl, run, &run->reported);
}

/* A watched process ended (its pidfd became readable): reap it if it is
 * our child, stop watching, and report it unless its done was reported
 * at detach already. */
static void rp_local_reap(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_local_t *lb = be->impl;
    rp_backend_done_t done;
    int status = 0;
    bool report, free_it;

    if (run->child && waitpid(run->pid, &status, WNOHANG) <= 0)
        return;
    memset(&done, 0, sizeof(done));
    done.err = RP_OK;
    if (!run->child) {
        /* Not ours to wait for: how it exited is not ours to know. */
        done.exit_code = -1;
        snprintf(done.detail, sizeof(done.detail), "attached run %s ended",
                 run->run_id);
    } else if (WIFEXITED(status)) {
        done.exit_code = WEXITSTATUS(status);
        snprintf(done.detail, sizeof(done.detail), "executor exited with %d",
                 done.exit_code);
        if (run->fresh && done.exit_code == RP_EXEC_EXIT_CLAIMED) {
            done.err = RP_ERR_EXISTS; /* nothing ran: look the slow way */
            snprintf(done.detail, sizeof(done.detail),
                     "the execution was claimed before (executor exit %d)",
                     done.exit_code);
        } else if (done.exit_code == 127 || done.exit_code == 126) {
            done.err = RP_ERR_SPAWN;
            snprintf(done.detail, sizeof(done.detail),
                     "could not execute %s (exit %d)", lb->executor_path,
                     done.exit_code);
        }
    } else {
        done.exit_code = -1;
        done.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        snprintf(done.detail, sizeof(done.detail),
                 "executor killed by signal %d", done.signal);
    }
    /* Remove it explicitly: close() alone leaves the registration while a
     * child forked by rp_local_start still holds a copy of the fd (until
     * its execve), and the exited pidfd would keep firing with this run,
     * which may be freed by then. */
    epoll_ctl(lb->epfd, EPOLL_CTL_DEL, run->pidfd, NULL);
    close(run->pidfd);
    run->pidfd = -1;
    pthread_mutex_lock(&lb->lock);
    done.cancelled = run->cancelled;
    run->reaped = true;
    rp_list_unlink(&run->link);
    rp_timerq_remove(&lb->kills, &run->kill_timer);
    /* Detached and not reported yet: this report is its only one. */
    rp_list_unlink(&run->report_link);
    report = !run->reported;
    free_it = !report && run->released;
    pthread_mutex_unlock(&lb->lock);

    if (report)
        rp_local_report(be, run, &done);
    else if (free_it)
        rp_local_free_run(run);
}

/* Report detached runs as cancelled; their processes go on. An attached
 * run is not watched any more at all; a child stays on the epoll set so
 * it is still reaped (silently) when it exits. */
static void rp_local_report_detached(rp_backend_t *be)
{
    rp_local_t *lb = be->impl;
    rp_list_t *n;

    for (;;) {
        rp_backend_run_t *run;
        rp_backend_done_t done;

        pthread_mutex_lock(&lb->lock);
        if (!(n = rp_list_pop_head(&lb->detached))) {
            pthread_mutex_unlock(&lb->lock);
            return;
        }
        run = RP_LIST_ENTRY(n, rp_backend_run_t, report_link);
        if (!run->child) {
            epoll_ctl(lb->epfd, EPOLL_CTL_DEL, run->pidfd, NULL);
            close(run->pidfd);
            run->pidfd = -1;
            run->reaped = true; /* not watched: never signal it again */
            rp_list_unlink(&run->link);
        }
        pthread_mutex_unlock(&lb->lock);
        memset(&done, 0, sizeof(done));
        done.err = RP_OK;
        done.cancelled = true;
        done.exit_code = -1;
        snprintf(done.detail, sizeof(done.detail),
                 "detached; executor %s goes on", run->run_id);
        rp_local_report(be, run, &done);
    }
}

/* Stop watching, never kill: the executor finishes and writes its record,
 * and the next owner attaches to it. */
static void rp_local_detach(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_local_t *lb = be->impl;

    pthread_mutex_lock(&lb->lock);
    if (!run->reaped && !run->detached && !run->reported) {
        run->detached = true;
        rp_timerq_remove(&lb->kills, &run->kill_timer);
        rp_list_push_tail(&lb->detached, &run->report_link);
    }
    pthread_mutex_unlock(&lb->lock);
    rp_local_wake(lb);
}

/* Watch the process a claim names. It must be this boot's, still alive
 * under that pid with that start time: a pidfd taken before the check
 * pins the process, so a check that passes speaks of the pidfd's
 * process, and one that fails means the claimed run is gone. */
static rp_err_t rp_local_attach(rp_backend_t *be, const char *run_id,
                                void *job, rp_backend_run_t **out,
                                char *errstr, size_t errstr_size)
{
    rp_local_t *lb = be->impl;
    char boot[RP_CLAIM_BOOT_ID_MAX + 1], mine[RP_CLAIM_BOOT_ID_MAX + 1];
    rp_backend_run_t *run = NULL;
    uint64_t ticks = 0, now_ticks = 0;
    pid_t pid = 0;
    int pidfd = -1;
    rp_err_t err = RP_OK;

    *out = NULL;
    if (rp_claim_local_parse(run_id, boot, &pid, &ticks) != RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s is not a local run", run_id);
    if ((err = rp_claim_boot_id(mine)))
        return rp_errf(errstr, errstr_size, err, "cannot read the boot id");
    if (strcmp(boot, mine) != 0)
        /* Another machine, boot or pod (pid namespace): it may well still
         * run, we just cannot watch it from here. */
        return rp_errf(errstr, errstr_size, RP_ERR_UNAVAILABLE,
                       "run %s is on another machine, boot or pid "
                       "namespace", run_id);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno == ESRCH)
        return rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                       "run %s has ended", run_id);
    if (pidfd < 0)
        return rp_errf(errstr, errstr_size, RP_ERR_SPAWN, "pidfd_open: %s",
                       strerror(errno));
    if (rp_claim_start_ticks(pid, &now_ticks) != RP_OK || now_ticks != ticks) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                      "run %s has ended (pid %ld is another process now)",
                      run_id, (long)pid);
        goto out;
    }
    if (!(run = calloc(1, sizeof(*run)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    run->job = job;
    run->pid = pid;
    run->pidfd = pidfd;
    snprintf(run->run_id, sizeof(run->run_id), "%s", run_id);
    if ((err = rp_local_watch(lb, run, errstr, errstr_size)))
        goto out;
    *out = run;
    run = NULL;
    pidfd = -1;
out:
    free(run);
    if (pidfd >= 0)
        close(pidfd);
    return err;
}

static void rp_local_run_id(rp_backend_t *be, rp_backend_run_t *run,
                            char out[RP_CLAIM_RUN_MAX + 1])
{
    (void)be;
    memcpy(out, run->run_id, sizeof(run->run_id));
}

/* SIGKILL runs whose cancel grace expired; return ms until the next
 * deadline (-1: none), the reaper's epoll timeout. Called with lb->lock
 * held. */
static int rp_local_kill_overdue(rp_local_t *lb)
{
    int64_t now = rp_time_mono_ms();
    rp_timer_t *t;

    while ((t = rp_timerq_pop_due(&lb->kills, now)))
        rp_local_signal(RP_TIMER_ENTRY(t, rp_backend_run_t, kill_timer),
                        SIGKILL);
    return rp_timerq_wait_ms(&lb->kills, now, -1);
}

static void *rp_local_reaper(void *opaque)
{
    rp_backend_t *be = opaque;
    rp_local_t *lb = be->impl;
    struct epoll_event evs[64];

    for (;;) {
        int timeout, n;
        bool stop;

        rp_local_report_detached(be);
        pthread_mutex_lock(&lb->lock);
        timeout = rp_local_kill_overdue(lb);
        stop = lb->stopping;
        pthread_mutex_unlock(&lb->lock);
        if (stop)
            break; /* what still runs goes on without us */
        n = epoll_wait(lb->epfd, evs, 64, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;

                if (read(lb->wake_fd, &v, sizeof(v)) < 0) {
                }
                continue;
            }
            rp_local_reap(be, evs[i].data.ptr);
        }
    }
    return NULL;
}

/* The pruner thread: keeps BASE/.chunks under ws_cache_max_bytes. Its
 * own thread, since a pass over a large cache is a directory scan that
 * must not delay reaping. */
static void *rp_local_pruner(void *opaque)
{
    rp_local_t *lb = opaque;
    char dir[PATH_MAX + 16], es[256];
    rp_wscache_stats_t st;
    struct timespec ts;

    snprintf(dir, sizeof(dir), "%s/.chunks", lb->ws_base);
    pthread_mutex_lock(&lb->lock);
    while (!lb->stopping) {
        pthread_mutex_unlock(&lb->lock);
        if (rp_wscache_prune(dir, lb->ws_cache_max_bytes, time(NULL), &st, es,
                             sizeof(es)) != RP_OK)
            rp_log(RP_LOG_WARN, "chunk_cache_prune_failed", NULL, NULL, "%s",
                   es);
        else if (st.removed_files)
            rp_log(RP_LOG_INFO, "chunk_cache_pruned", NULL, NULL,
                   "%s: %llu files (%llu bytes) deleted, %llu bytes kept "
                   "(limit %zu)",
                   dir, (unsigned long long)st.removed_files,
                   (unsigned long long)st.removed_bytes,
                   (unsigned long long)st.kept_bytes, lb->ws_cache_max_bytes);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += RP_LOCAL_PRUNE_MS / 1000;
        pthread_mutex_lock(&lb->lock);
        while (!lb->stopping &&
               pthread_cond_timedwait(&lb->prune_cond, &lb->lock, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&lb->lock);
    return NULL;
}

/* The worker is going: stop watching, kill nothing. Executors still
 * running finish on their own and write their records; once this process
 * is gone they are reparented (to init or a subreaper) and reaped there.
 * Runs the worker has released are freed; no callback comes any more. */
static void rp_local_close(rp_backend_t *be)
{
    rp_local_t *lb = be->impl;
    rp_list_t *l, *tmp;

    if (!lb)
        return;
    pthread_mutex_lock(&lb->lock);
    lb->stopping = true;
    pthread_cond_broadcast(&lb->prune_cond);
    pthread_mutex_unlock(&lb->lock);
    if (lb->reaper_started) {
        rp_local_wake(lb);
        pthread_join(lb->reaper, NULL);
    }
    if (lb->pruner_started)
        pthread_join(lb->pruner, NULL);
    pthread_mutex_lock(&lb->zy_lock);
    rp_local_zygote_stop(lb);
    pthread_mutex_unlock(&lb->zy_lock);
    RP_LIST_FOREACH_SAFE(l, tmp, &lb->live) {
        rp_backend_run_t *run = RP_LIST_ENTRY(l, rp_backend_run_t, link);

        rp_list_unlink(&run->link);
        rp_list_unlink(&run->report_link);
        if (run->pidfd >= 0)
            close(run->pidfd);
        run->pidfd = -1;
        run->reaped = true;
        if (run->released)
            rp_local_free_run(run);
        else
            run->reported = true; /* a later release frees it */
    }
    if (lb->epfd >= 0)
        close(lb->epfd);
    if (lb->wake_fd >= 0)
        close(lb->wake_fd);
    rp_timerq_clear(&lb->kills);
    pthread_cond_destroy(&lb->prune_cond);
    pthread_mutex_destroy(&lb->lock);
    pthread_mutex_destroy(&lb->zy_lock);
    free(lb->executor_path);
    free(lb->workdir);
    free(lb);
    be->impl = NULL;
}

static const rp_backend_ops_t rp_local_ops = {
    .name = "local",
    .start = rp_local_start,
    .start_fresh = rp_local_start_fresh,
    .cancel = rp_local_cancel,
    .detach = rp_local_detach,
    .release = rp_local_release,
    .close = rp_local_close,
    .attach = rp_local_attach,
    .run_id = rp_local_run_id,
};

rp_err_t rp_backend_local_init(rp_backend_t *be, const rp_backend_conf_t *conf,
                               char *errstr, size_t errstr_size)
{
    rp_local_t *lb;
    struct epoll_event ev;
    rp_err_t err = RP_OK;

    if (!conf->executor_path || access(conf->executor_path, X_OK) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "local backend: executor '%s' is not an executable "
                       "file (set --executor)",
                       conf->executor_path ? conf->executor_path : "(none)");
    if (!(lb = calloc(1, sizeof(*lb))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&lb->lock, NULL);
    pthread_cond_init(&lb->prune_cond, NULL);
    pthread_mutex_init(&lb->zy_lock, NULL);
    lb->zy_sock = -1;
    lb->zy_pid = -1;
    lb->fork_server = conf->fork_server;
    lb->ws_cache_max_bytes = conf->ws_cache_max_bytes
                                 ? conf->ws_cache_max_bytes
                                 : RP_LOCAL_WS_CACHE_MAX_DEFAULT;
    rp_list_init(&lb->live);
    rp_list_init(&lb->detached);
    rp_timerq_init(&lb->kills);
    lb->epfd = lb->wake_fd = -1;
    be->ops = &rp_local_ops;
    be->impl = lb;
    lb->kill_grace_ms = conf->kill_grace_ms > 0 ? conf->kill_grace_ms
                                                : RP_LOCAL_KILL_GRACE_DEFAULT_MS;
    lb->executor_path = strdup(conf->executor_path);
    lb->workdir = conf->workdir ? strdup(conf->workdir) : NULL;
    if (conf->workdir && conf->workdir[0] == '/')
        snprintf(lb->ws_base, sizeof(lb->ws_base), "%s", conf->workdir);
    else if (conf->workdir) {
        /* RUNPOOL_WORKSPACE must be absolute: a relative --workdir is
         * taken from where the worker started. */
        char here[PATH_MAX];

        if (!getcwd(here, sizeof(here)))
            snprintf(here, sizeof(here), "/");
        if ((size_t)snprintf(lb->ws_base, sizeof(lb->ws_base), "%s/%s",
                             strcmp(here, "/") ? here : "", conf->workdir) >=
            sizeof(lb->ws_base))
            lb->ws_base[0] = '\0'; /* rp_local_scratch then says so */
    } else
        snprintf(lb->ws_base, sizeof(lb->ws_base), "%s/runpool-local-%u",
                 getenv("TMPDIR") && getenv("TMPDIR")[0] == '/'
                     ? getenv("TMPDIR") : "/tmp",
                 (unsigned)geteuid());
    if ((err = rp_runas_parse(conf->run_as, &lb->run_as, errstr,
                              errstr_size)) ||
        (err = rp_runas_check(&lb->run_as, geteuid(), errstr, errstr_size)))
        goto out;
    snprintf(lb->run_as_str, sizeof(lb->run_as_str), "%u:%u",
             (unsigned)lb->run_as.uid, (unsigned)lb->run_as.gid);
    if (lb->run_as.set && lb->workdir &&
        (err = rp_local_workdir_reachable(lb, errstr, errstr_size)))
        goto out;
    if ((err = rp_local_set_limits(lb, &conf->limits, errstr, errstr_size)))
        goto out;
    lb->epfd = epoll_create1(EPOLL_CLOEXEC);
    lb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!lb->executor_path || (conf->workdir && !lb->workdir) ||
        lb->epfd < 0 || lb->wake_fd < 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                      "local backend: cannot set up: %s", strerror(errno));
        goto out;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* NULL marks the wake fd */
    if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->wake_fd, &ev) != 0 ||
        pthread_create(&lb->reaper, NULL, rp_local_reaper, be) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                      "local backend: cannot start reaper");
        goto out;
    }
    lb->reaper_started = true;
    if (lb->ws_base[0]) {
        if (pthread_create(&lb->pruner, NULL, rp_local_pruner, lb) != 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                          "local backend: cannot start the chunk cache pruner");
            goto out;
        }
        lb->pruner_started = true;
    }
    /* Started now, so that the first execution does not wait for it. */
    if (lb->fork_server) {
        pthread_mutex_lock(&lb->zy_lock);
        rp_local_zygote_start(lb);
        pthread_mutex_unlock(&lb->zy_lock);
    }
out:
    if (err)
        rp_local_close(be);
    return err;
}
