/* The local backend against real child processes. The "executor" here is a
 * small shell script, so the test sees exactly what a job container gets:
 * its environment, process group, signal mask, and how cancel ends it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include "rp_test_dir.h"
#include "rp_backend.h"
#include "rp_claim.h"
#include "rp_jobenv.h"

/* Records each done callback; the test waits on it. */
typedef struct done_box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int count;
    void *job;
    rp_backend_done_t done;
} done_box_t;

static void on_done(void *job, const rp_backend_done_t *done, void *opaque)
{
    done_box_t *b = opaque;

    pthread_mutex_lock(&b->lock);
    b->count++;
    b->job = job;
    b->done = *done;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int wait_done(done_box_t *b, int want, int timeout_s)
{
    struct timespec ts;
    int ok = 1;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    pthread_mutex_lock(&b->lock);
    while (b->count < want && ok)
        ok = pthread_cond_timedwait(&b->cond, &b->lock, &ts) == 0;
    ok = b->count >= want;
    pthread_mutex_unlock(&b->lock);
    return ok;
}

typedef struct fixture {
    char dir[64];
    char script[128];
    char workdir[128];
    done_box_t box;
    rp_backend_t *be;
} fixture_t;

/* The fake executor: records its environment, process group and blocked
 * signal mask and the request document of its stdin, then behaves as the
 * document's command says. */
static const char *const script_text =
    "#!/bin/sh\n"
    "dir=${RUNPOOL_STATE_URL#file://}\n"
    /* Builtins only, before the first fork: dash blocks every signal while
     * it waits for a child, so a later sample would see its own mask. */
    "while read k v; do [ \"$k\" = SigBlk: ] && echo \"SigBlk: $v\" > "
    "\"$dir/sigblk.$EXECUTION_ID\"; done < /proc/$$/status\n"
    "env > \"$dir/env.$EXECUTION_ID\"\n"
    "cat /proc/$$/limits > \"$dir/limits.$EXECUTION_ID\"\n"
    /* The request document comes on stdin (RUNPOOL_REQUEST_REF=-). */
    "cat > \"$dir/request.$EXECUTION_ID\"\n"
    "COMMAND=$(sed 's/^{\"command\":\"\\([^\"]*\\)\".*/\\1/' "
    "\"$dir/request.$EXECUTION_ID\")\n"
    "set -- $(cat /proc/$$/stat | sed 's/^.*) //')\n"
    "echo \"$3\" > \"$dir/pgid.$EXECUTION_ID\"\n"
    "echo \"$4\" > \"$dir/sid.$EXECUTION_ID\"\n"
    /* Traps are set before the pid file appears: the test cancels as soon
     * as it sees the pid, and must find the trap in place. */
    "case \"$COMMAND\" in\n"
    "  sleep) sleep 30 & trap 'kill $!; exit 143' TERM ;;\n"
    "  stubborn) trap '' TERM ;;\n"
    "esac\n"
    "echo $$ > \"$dir/pid.$EXECUTION_ID\"\n"
    "case \"$COMMAND\" in\n"
    "  exit*) exit ${COMMAND#exit } ;;\n"
    "  sleep) wait; exit 0 ;;\n"
    "  stubborn) while :; do sleep 1; done ;;\n"
    "  gate) while [ ! -e \"$dir/gate.$EXECUTION_ID\" ]; do sleep 0.05; done;"
    " echo done > \"$dir/done.$EXECUTION_ID\" ;;\n"
    "esac\n";

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    rp_backend_conf_t conf = {0};
    FILE *fp;
    char es[512];

    snprintf(f->dir, sizeof(f->dir), "/tmp/rp-backend-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->script, sizeof(f->script), "%s/fake-executor", f->dir);
    snprintf(f->workdir, sizeof(f->workdir), "%s/work", f->dir);
    fp = fopen(f->script, "w");
    assert_non_null(fp);
    fputs(script_text, fp);
    fclose(fp);
    chmod(f->script, 0755);
    pthread_mutex_init(&f->box.lock, NULL);
    pthread_cond_init(&f->box.cond, NULL);
    conf.executor_path = f->script;
    conf.workdir = f->workdir;
    conf.kill_grace_ms = 300;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &f->be,
                                    es, sizeof(es)),
                     RP_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    rp_backend_destroy(f->be);
    rp_test_rmtree(f->dir);
    pthread_mutex_destroy(&f->box.lock);
    pthread_cond_destroy(&f->box.cond);
    free(f);
    return 0;
}

static void spec_init(rp_jobspec_t *s, fixture_t *f, const char *eid,
                      const char *command)
{
    static char url[128];

    memset(s, 0, sizeof(*s));
    snprintf(s->execution_id, sizeof(s->execution_id), "%s", eid);
    snprintf(s->session_id, sizeof(s->session_id), "sess-1");
    s->command = (char *)command;
    s->timeout_s = 30;
    snprintf(url, sizeof(url), "file://%s", f->dir);
    s->state_url = url;
}

/* Read a small file the fake executor wrote. */
static char *slurp(fixture_t *f, const char *what, const char *eid)
{
    char path[256], *buf = calloc(1, 65536);
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s.%s", f->dir, what, eid);
    fp = fopen(path, "r");
    if (!fp) {
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* --workspace /workspace: each execution gets a scratch directory of its
 * own under workdir/.scratch (never the container path, never the
 * session's directory), the chunk cache and the scratch flag; "keep" is
 * the old session directory. */
static void test_workspace_modes(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *env, *env2, prefix[256], *p, *q;
    int job_marker;
    struct stat sb;

    spec_init(&spec, f, "w1", "exit 0");
    spec.workspace = "/workspace";
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 1, 20));
    rp_backend_release(f->be, run);
    spec_init(&spec, f, "w2", "exit 0");
    spec.workspace = "/workspace";
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 2, 20));
    rp_backend_release(f->be, run);

    env = slurp(f, "env", "w1");
    env2 = slurp(f, "env", "w2");
    assert_non_null(env);
    assert_non_null(env2);
    snprintf(prefix, sizeof(prefix), "RUNPOOL_WORKSPACE=%s/.scratch/w1.",
             f->workdir);
    assert_non_null(strstr(env, prefix));
    snprintf(prefix, sizeof(prefix), "RUNPOOL_WORKSPACE=%s/.scratch/w2.",
             f->workdir);
    assert_non_null(strstr(env2, prefix));
    assert_non_null(strstr(env, "RUNPOOL_WORKSPACE_SCRATCH=1\n"));
    snprintf(prefix, sizeof(prefix), "RUNPOOL_WORKSPACE_CACHE=%s/.chunks\n",
             f->workdir);
    assert_non_null(strstr(env, prefix));
    /* A new session starts in its workspace: no RUNPOOL_DEFAULT_CWD. */
    assert_null(strstr(env, "RUNPOOL_DEFAULT_CWD="));
    /* The executor makes the directory itself; its parents are private. */
    p = strstr(env, "RUNPOOL_WORKSPACE=") + strlen("RUNPOOL_WORKSPACE=");
    q = strchr(p, '\n');
    *q = '\0';
    assert_int_not_equal(stat(p, &sb), 0);
    snprintf(prefix, sizeof(prefix), "%s/.scratch", f->workdir);
    assert_int_equal(stat(prefix, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    free(env);
    free(env2);

    spec_init(&spec, f, "w3", "exit 0");
    spec.workspace = "keep";
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 3, 20));
    rp_backend_release(f->be, run);
    env = slurp(f, "env", "w3");
    assert_null(strstr(env, "RUNPOOL_WORKSPACE"));
    snprintf(prefix, sizeof(prefix), "RUNPOOL_DEFAULT_CWD=%s/sess-1\n",
             f->workdir);
    assert_non_null(strstr(env, prefix));
    free(env);

    spec_init(&spec, f, "w4", "exit 0");
    spec.workspace = "mount:/mnt/vol";
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 4, 20));
    rp_backend_release(f->be, run);
    env = slurp(f, "env", "w4");
    assert_non_null(strstr(env, "RUNPOOL_WORKSPACE=mount:/mnt/vol\n"));
    assert_null(strstr(env, "RUNPOOL_DEFAULT_CWD="));
    free(env);
}

static void test_exit_code_and_contract_env(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *env, expect[256];
    int job_marker;

    setenv("RP_TEST_LEAK", "must-not-reach-the-executor", 1);
    setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9", 1);
    spec_init(&spec, f, "e1", "exit 5");
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_non_null(run);
    assert_true(wait_done(&f->box, 1, 20));
    assert_ptr_equal(f->box.job, &job_marker);
    assert_int_equal(f->box.done.err, RP_OK);
    assert_int_equal(f->box.done.exit_code, 5);
    assert_false(f->box.done.cancelled);
    rp_backend_release(f->be, run);

    env = slurp(f, "env", "e1");
    assert_non_null(env);
    assert_non_null(strstr(env, "EXECUTION_ID=e1\n"));
    assert_non_null(strstr(env, "SESSION_ID=sess-1\n"));
    /* The command travels on stdin, never in the environment. */
    assert_null(strstr(env, "COMMAND="));
    assert_null(strstr(env, "COMMAND_ENV="));
    assert_non_null(strstr(env, "RUNPOOL_REQUEST_REF=-\n"));
    free(env);
    env = slurp(f, "request", "e1");
    assert_non_null(env);
    assert_string_equal(env, "{\"command\":\"exit 5\",\"env\":{}}");
    free(env);
    env = slurp(f, "env", "e1");
    assert_non_null(strstr(env, "TIMEOUT=30\n"));
    assert_non_null(strstr(env, "PATH="));
    snprintf(expect, sizeof(expect), "RUNPOOL_DEFAULT_CWD=%s/sess-1\n",
             f->workdir);
    assert_non_null(strstr(env, expect));
    /* Only the contract and a base reach the job, never the worker's own
     * environment. */
    assert_null(strstr(env, "RP_TEST_LEAK"));
    /* Deployment settings a job container would have do reach it. */
    assert_non_null(strstr(env, "STORAGE_EMULATOR_HOST=http://127.0.0.1:9\n"));
    unsetenv("STORAGE_EMULATOR_HOST");
    free(env);
}

/* Start eid running command, fresh or not, wait for done number n, and
 * check what it reports. */
static void run_and_expect(fixture_t *f, const char *eid, const char *command,
                           bool fresh, int n, rp_err_t err, int exit_code)
{
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512];

    spec_init(&spec, f, eid, command);
    assert_int_equal((fresh ? rp_backend_start_fresh : rp_backend_start)(
                         f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, n, 20));
    assert_int_equal(f->box.done.err, err);
    assert_int_equal(f->box.done.exit_code, exit_code);
    rp_backend_release(f->be, run);
}

/* A fresh start (the worker read no earlier record or claim first): an
 * executor that met a claim (exit 3, RP_EXEC_EXIT_CLAIMED) started
 * nothing, which the backend reports as RP_ERR_EXISTS so the worker looks
 * the slow way. Other exits are reported as they are; and exit 3 of a
 * plain start stays exit 3 (the worker's claim fence reads it). */
static void test_fresh_start_claimed(void **state)
{
    fixture_t *f = *state;

    assert_true(rp_backend_can_start_fresh(f->be));
    run_and_expect(f, "f1", "exit 3", true, 1, RP_ERR_EXISTS,
                   RP_EXEC_EXIT_CLAIMED);
    assert_non_null(strstr(f->box.done.detail, "claimed before"));
    run_and_expect(f, "f2", "exit 0", true, 2, RP_OK, 0);
    run_and_expect(f, "f3", "exit 3", false, 3, RP_OK, RP_EXEC_EXIT_CLAIMED);
}

/* A 256 KiB command and per-request values of 30 KiB reach the executor
 * whole, as the request document on its stdin: before, they travelled in
 * one environment string and execve refused anything over 128 KiB
 * (exit 127). */
static void test_large_request_on_stdin(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], path[256], *cmd, *want = NULL, *got;
    char *val;
    size_t cap = 4 * 1024 * 1024, n;
    FILE *fp;

    cmd = malloc(RP_COMMAND_MAX + 1);
    val = malloc(30 * 1024 + 1);
    assert_non_null(cmd);
    assert_non_null(val);
    /* A long comment, then the command proper; exactly the limit. */
    memset(cmd, 'c', RP_COMMAND_MAX);
    cmd[0] = '#';
    memcpy(cmd + RP_COMMAND_MAX - 8, "\nexit 7\n", 8);
    cmd[RP_COMMAND_MAX] = '\0';
    memset(val, 'v', 30 * 1024);
    val[30 * 1024] = '\0';
    spec_init(&spec, f, "e-big", cmd);
    for (int i = 0; i < 6; i++) {
        char name[16];

        snprintf(name, sizeof(name), "BIG%d", i);
        assert_int_equal(rp_env_set(&spec.env, name, val), RP_OK);
    }
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 1, 20));
    assert_int_equal(f->box.done.err, RP_OK);
    assert_int_equal(f->box.done.exit_code, 0); /* the fake ran, no 127 */
    rp_backend_release(f->be, run);

    assert_int_equal(rp_jobenv_request_json(&spec, &want, es, sizeof(es)),
                     RP_OK);
    snprintf(path, sizeof(path), "%s/request.e-big", f->dir);
    assert_non_null(fp = fopen(path, "r"));
    assert_non_null(got = malloc(cap));
    n = fread(got, 1, cap - 1, fp);
    got[n] = '\0';
    fclose(fp);
    assert_int_equal(n, strlen(want));
    assert_string_equal(got, want);
    free(got);
    /* Nothing of it in the environment. */
    got = slurp(f, "env", "e-big");
    assert_non_null(got);
    assert_null(strstr(got, "vvvv"));
    assert_null(strstr(got, "cccc"));
    free(got);
    free(want);
    rp_env_clear(&spec.env);
    free(cmd);
    free(val);
}

/* Soft and hard value of one line of /proc/PID/limits ("unlimited" = -1). */
static void limit_of(const char *text, const char *label, long long *soft,
                     long long *hard)
{
    const char *p = strstr(text, label);
    char a[32], b[32];

    assert_non_null(p);
    assert_int_equal(sscanf(p + strlen(label), "%31s %31s", a, b), 2);
    *soft = strcmp(a, "unlimited") ? atoll(a) : -1;
    *hard = strcmp(b, "unlimited") ? atoll(b) : -1;
}

/* The configured limits bind the executor (hard and soft, so its command
 * cannot raise them); a new session's directory is 0700, and one an
 * older version left wider is made so. */
static void test_limits_and_session_dir(void **state)
{
    fixture_t *f = *state;
    rp_backend_conf_t conf = {0};
    rp_backend_t *be = NULL;
    rp_backend_run_t *run = NULL;
    rp_jobspec_t spec;
    struct rlimit np;
    struct stat st;
    char es[512], path[256], *lim;
    long long soft, hard, nproc;

    assert_int_equal(getrlimit(RLIMIT_NPROC, &np), 0);
    /* High enough for everything this user runs, within our hard limit. */
    nproc = np.rlim_max == RLIM_INFINITY || np.rlim_max > 200000
                ? 200000 : (long long)np.rlim_max;
    conf.executor_path = f->script;
    conf.workdir = f->workdir;
    conf.kill_grace_ms = 300;
    conf.limits.address_space = (size_t)1 << 30;
    conf.limits.processes = (size_t)nproc;
    conf.limits.file_size = (size_t)64 << 20;
    conf.limits.open_files = 100;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &be, es,
                                    sizeof(es)),
                     RP_OK);
    assert_int_equal(mkdir(f->workdir, 0755), 0);
    snprintf(path, sizeof(path), "%s/sess-old", f->workdir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(chmod(path, 0755), 0);

    spec_init(&spec, f, "e-lim", "exit 0");
    assert_int_equal(rp_backend_start(be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 1, 20));
    assert_int_equal(f->box.done.exit_code, 0);
    rp_backend_release(be, run);
    assert_non_null(lim = slurp(f, "limits", "e-lim"));
    limit_of(lim, "Max address space", &soft, &hard);
    assert_true(soft == 1LL << 30 && hard == 1LL << 30);
    limit_of(lim, "Max processes", &soft, &hard);
    assert_true(soft == nproc && hard == nproc);
    limit_of(lim, "Max file size", &soft, &hard);
    assert_true(soft == 64LL << 20 && hard == 64LL << 20);
    limit_of(lim, "Max open files", &soft, &hard);
    assert_true(soft == 100 && hard == 100);
    free(lim);
    snprintf(path, sizeof(path), "%s/sess-1", f->workdir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    snprintf(spec.session_id, sizeof(spec.session_id), "sess-old");
    snprintf(spec.execution_id, sizeof(spec.execution_id), "e-lim2");
    assert_int_equal(rp_backend_start(be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, 2, 20));
    rp_backend_release(be, run);
    snprintf(path, sizeof(path), "%s/sess-old", f->workdir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    rp_backend_destroy(be);

    /* Limits the executor could not live with are refused at start. */
    memset(&conf.limits, 0, sizeof(conf.limits));
    conf.limits.file_size = RP_LOCAL_FSIZE_MIN - 1;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "--exec-max-file-size"));
    memset(&conf.limits, 0, sizeof(conf.limits));
    conf.limits.open_files = 8;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "--exec-max-open-files"));
    memset(&conf.limits, 0, sizeof(conf.limits));
    conf.limits.address_space = 1 << 20;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "--exec-max-address-space"));
    if (geteuid() != 0 && getrlimit(RLIMIT_NOFILE, &np) == 0 &&
        np.rlim_max != RLIM_INFINITY) {
        memset(&conf.limits, 0, sizeof(conf.limits));
        conf.limits.open_files = (size_t)np.rlim_max + 1;
        assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &be,
                                        es, sizeof(es)),
                         RP_ERR_INVALID);
        assert_non_null(strstr(es, "hard limit"));
    }
}

static void test_own_group_and_unblocked_signals(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *pgid, *pid, *sigblk, *sid;
    sigset_t sigs, old;

    /* The worker runs with SIGTERM/SIGINT blocked (signalfd); a child must
     * not inherit that, or cancel could never stop it. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    spec_init(&spec, f, "e2", "exit 0");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    assert_true(wait_done(&f->box, 1, 20));
    rp_backend_release(f->be, run);
    pgid = slurp(f, "pgid", "e2");
    pid = slurp(f, "pid", "e2");
    sigblk = slurp(f, "sigblk", "e2");
    sid = slurp(f, "sid", "e2");
    assert_non_null(sid);
    /* Its own session (setsid): it outlives the worker. */
    assert_string_equal(sid, pid);
    free(sid);
    assert_non_null(pgid);
    assert_non_null(pid);
    assert_non_null(sigblk);
    assert_string_equal(pgid, pid); /* process group leader */
    if (!strstr(sigblk, "0000000000000000"))
        fail_msg("executor started with signals blocked: %s", sigblk);
    free(pgid);
    free(pid);
    free(sigblk);
}

static void test_cancel_terminates(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *pid;

    spec_init(&spec, f, "e3", "sleep");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    for (int i = 0; i < 200 && !(pid = slurp(f, "pid", "e3")); i++)
        usleep(10000);
    assert_non_null(pid); /* it is running */
    free(pid);
    assert_int_equal(f->box.count, 0);
    rp_backend_cancel(f->be, run);
    assert_true(wait_done(&f->box, 1, 10));
    assert_true(f->box.done.cancelled);
    assert_int_equal(f->box.done.exit_code, 143); /* its TERM trap ran */
    rp_backend_cancel(f->be, run); /* after the end: harmless */
    rp_backend_release(f->be, run);
}

static void test_cancel_kills_stubborn(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *pid;

    spec_init(&spec, f, "e4", "stubborn");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    for (int i = 0; i < 200 && !(pid = slurp(f, "pid", "e4")); i++)
        usleep(10000);
    assert_non_null(pid);
    free(pid);
    rp_backend_cancel(f->be, run);
    /* SIGTERM is ignored; SIGKILL follows after the 300 ms grace. */
    assert_true(wait_done(&f->box, 1, 10));
    assert_true(f->box.done.cancelled);
    assert_int_equal(f->box.done.signal, SIGKILL);
    rp_backend_release(f->be, run);
}

static pid_t wait_pid_file(fixture_t *f, const char *eid)
{
    char *s = NULL;
    pid_t pid;

    /* Until the line is complete: `echo $$ > file` creates it first. */
    for (int i = 0; i < 500; i++) {
        if ((s = slurp(f, "pid", eid)) && strchr(s, '\n'))
            break;
        free(s);
        s = NULL;
        usleep(10000);
    }
    assert_non_null(s);
    pid = (pid_t)atol(s);
    free(s);
    return pid;
}

static void open_gate(fixture_t *f, const char *eid)
{
    char path[256];
    int fd;

    snprintf(path, sizeof(path), "%s/gate.%s", f->dir, eid);
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
}

/* Is pid still a live (not zombie) process? */
static bool alive(pid_t pid)
{
    char path[64], buf[512];
    FILE *fp;
    bool live = false;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (!(fp = fopen(path, "r")))
        return false;
    if (fgets(buf, sizeof(buf), fp)) {
        char *p = strrchr(buf, ')');

        live = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
    }
    fclose(fp);
    return live;
}

/* The run id names the executor the way its own claim will. */
static void test_run_id(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], id[RP_CLAIM_RUN_MAX + 1], want[RP_CLAIM_RUN_MAX + 1];
    pid_t pid;

    spec_init(&spec, f, "e5", "gate");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    pid = wait_pid_file(f, "e5");
    rp_backend_run_id(f->be, run, id);
    assert_int_equal(rp_claim_local_run(pid, want, es, sizeof(es)), RP_OK);
    assert_string_equal(id, want);
    open_gate(f, "e5");
    assert_true(wait_done(&f->box, 1, 20));
    rp_backend_release(f->be, run);
}

/* detach stops watching and never kills: done comes at once (cancelled),
 * the executor runs on, finishes, and is still reaped (no zombie). */
static void test_detach_keeps_running(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *done;
    pid_t pid;

    spec_init(&spec, f, "e6", "gate");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    pid = wait_pid_file(f, "e6");
    rp_backend_detach(f->be, run);
    assert_true(wait_done(&f->box, 1, 10));
    assert_true(f->box.done.cancelled);
    rp_backend_release(f->be, run);
    usleep(300000);
    assert_true(alive(pid)); /* not killed */
    open_gate(f, "e6");
    for (int i = 0; i < 500 && !(done = slurp(f, "done", "e6")); i++)
        usleep(10000);
    assert_non_null(done); /* it finished its work */
    free(done);
    {
        char path[64];
        int i;

        snprintf(path, sizeof(path), "/proc/%ld", (long)pid);
        for (i = 0; i < 500 && access(path, F_OK) == 0; i++)
            usleep(10000);
        /* Gone from /proc: reaped by the backend, no zombie left. */
        assert_int_not_equal(access(path, F_OK), 0);
    }
    assert_int_equal(f->box.count, 1); /* no second report */
}

/* Closing the backend (the worker exits) leaves executors running. */
static void test_close_leaves_running(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *done = NULL;
    int status = 0;
    pid_t pid;

    spec_init(&spec, f, "e7", "gate");
    assert_int_equal(rp_backend_start(f->be, &spec, NULL, &run, es, sizeof(es)),
                     RP_OK);
    pid = wait_pid_file(f, "e7");
    rp_backend_release(f->be, run);
    rp_backend_destroy(f->be);
    f->be = NULL;
    assert_true(alive(pid));
    open_gate(f, "e7");
    /* Ours to reap now, as init would for a dead worker. */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    done = slurp(f, "done", "e7");
    assert_non_null(done);
    free(done);
    assert_int_equal(f->box.count, 0);
}

/* Attach to a process the backend did not start (a detached executor of
 * a dead worker): done comes when it exits; a run that is gone or whose
 * pid was reused is refused with NOT_FOUND; one of another boot or pid
 * namespace (a pod on the same node) with UNAVAILABLE: it may still run. */
static void test_attach(void **state)
{
    fixture_t *f = *state;
    rp_backend_run_t *run = NULL;
    char es[512], id[RP_CLAIM_RUN_MAX + 1], bad[RP_CLAIM_RUN_MAX + 64];
    char boot[RP_CLAIM_BOOT_ID_MAX + 1];
    char *argv[] = {"sh", "-c", "sleep 0.3", NULL};
    uint64_t ticks;
    int status, job_marker;
    pid_t pid, p2;

    assert_true(rp_backend_can_attach(f->be));
    assert_int_equal(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, NULL), 0);
    assert_int_equal(rp_claim_local_run(pid, id, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_claim_local_parse(id, boot, &p2, &ticks), RP_OK);
    assert_int_equal(p2, pid);

    /* Same pid, another start time: a reused pid, not our run. */
    snprintf(bad, sizeof(bad), "local:%s:%ld:%llu", boot, (long)pid,
             (unsigned long long)ticks + 1);
    assert_int_equal(rp_backend_attach(f->be, bad, NULL, &run, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    assert_null(run);
    snprintf(bad, sizeof(bad), "local:00000000-0000-0000-0000-000000000000:%ld:%llu",
             (long)pid, (unsigned long long)ticks);
    assert_int_equal(rp_backend_attach(f->be, bad, NULL, &run, es, sizeof(es)),
                     RP_ERR_UNAVAILABLE);
    /* Same boot, another pid namespace. */
    assert_non_null(strchr(boot, '.'));
    snprintf(bad, sizeof(bad), "local:%.*s.1:%ld:%llu",
             (int)(strchr(boot, '.') - boot), boot, (long)pid,
             (unsigned long long)ticks);
    assert_int_equal(rp_backend_attach(f->be, bad, NULL, &run, es, sizeof(es)),
                     RP_ERR_UNAVAILABLE);
    assert_int_equal(rp_backend_attach(f->be, "cloudrun:x-1", NULL, &run, es,
                                       sizeof(es)),
                     RP_ERR_INVALID);

    assert_int_equal(rp_backend_attach(f->be, id, &job_marker, &run, es,
                                       sizeof(es)),
                     RP_OK);
    assert_non_null(run);
    rp_backend_run_id(f->be, run, bad);
    assert_string_equal(bad, id);
    assert_true(wait_done(&f->box, 1, 10));
    assert_ptr_equal(f->box.job, &job_marker);
    assert_int_equal(f->box.done.err, RP_OK);
    assert_int_equal(f->box.done.exit_code, -1); /* not ours to know */
    assert_false(f->box.done.cancelled);
    rp_backend_release(f->be, run);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Reaped and gone: attach now says so. */
    assert_int_equal(rp_backend_attach(f->be, id, NULL, &run, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
}

/* The fork server's executor (pid) ran the command: read its parent and
 * its command line from what the command saved of /proc/$PPID. Returns
 * whether the fork server forked it (its command line is the server's). */
static bool forked_by_server(fixture_t *f, const char *eid)
{
    char *st = slurp(f, "status", eid), *cmd = slurp(f, "cmdline", eid);
    char *env = slurp(f, "environ", eid), want[64];
    bool forked;

    assert_non_null(st);
    assert_non_null(cmd);
    assert_non_null(env);
    /* /proc/PID/environ is the execution's, forked or not (rp_zygote.h). */
    snprintf(want, sizeof(want), "\nEXECUTION_ID=%s\n", eid);
    assert_true(!strncmp(env, want + 1, strlen(want + 1)) ||
                strstr(env, want));
    assert_null(strstr(env, "RUNPOOL_FORK_SERVER_ROOM"));
    free(env);
    /* Either way the executor is our child, so we wait for it. */
    snprintf(want, sizeof(want), "\nPPid:\t%d\n", (int)getpid());
    assert_non_null(strstr(st, want));
    forked = strstr(cmd, "--serve") != NULL;
    free(st);
    free(cmd);
    return forked;
}

/* /proc/PID/WHAT into buf, NUL-terminated; its length (0: unreadable). */
static size_t read_proc(const char *pid, const char *what, char *buf,
                        size_t size)
{
    char path[300];
    FILE *fp;
    size_t len;

    snprintf(path, sizeof(path), "/proc/%s/%s", pid, what);
    if (!(fp = fopen(path, "r")))
        return 0;
    len = fread(buf, 1, size - 1, fp);
    fclose(fp);
    buf[len] = '\0';
    return len;
}

/* The fork server process: our child with the command line --serve that
 * is no execution's executor (none runs when this is called). */
static pid_t find_fork_server(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char buf[4096];
        size_t len;
        int ppid = -1;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (read_proc(e->d_name, "stat", buf, sizeof(buf)) == 0 ||
            !strrchr(buf, ')') ||
            sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid) != 1 ||
            ppid != getpid())
            continue;
        len = read_proc(e->d_name, "cmdline", buf, sizeof(buf));
        if (len > 8 && !strcmp(buf + strlen(buf) + 1, "--serve")) {
            found = (pid_t)atoi(e->d_name);
            n++;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
    return found;
}

/* One execution by the real executor; its command saves its executor's
 * /proc status and command line. */
static void run_real(fixture_t *f, const char *eid, int nth)
{
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], cmd[512];
    int job_marker;

    snprintf(cmd, sizeof(cmd),
             "cat /proc/$PPID/status > %s/status.%s && "
             "tr '\\0' ' ' < /proc/$PPID/cmdline > %s/cmdline.%s && "
             "cat /proc/$PPID/limits > %s/limits.%s && "
             "tr '\\0' '\\n' < /proc/$PPID/environ > %s/environ.%s",
             f->dir, eid, f->dir, eid, f->dir, eid, f->dir, eid);
    spec_init(&spec, f, eid, cmd);
    assert_int_equal(rp_backend_start(f->be, &spec, &job_marker, &run, es,
                                      sizeof(es)),
                     RP_OK);
    assert_true(wait_done(&f->box, nth, 20));
    assert_int_equal(f->box.done.err, RP_OK);
    assert_int_equal(f->box.done.exit_code, 0); /* its record written */
    rp_backend_release(f->be, run);
}

/* --executor-fork-server with the real executor: executions are forked
 * by the server yet are our children with the configured limits; a
 * killed server costs no execution (the next is exec'd) and is replaced
 * a while later. */
static void test_fork_server(void **state)
{
    fixture_t *f = *state;
    const char *bin = getenv("RP_BIN_DIR");
    rp_backend_conf_t conf = {0};
    char exe[1024], es[512], *lim;
    pid_t server, server2;
    int status;

    assert_non_null(bin);
    snprintf(exe, sizeof(exe), "%s/runpool-executor", bin);
    rp_backend_destroy(f->be); /* the fixture's, with the fake script */
    conf.executor_path = exe;
    conf.workdir = f->workdir;
    conf.fork_server = 1;
    conf.limits.open_files = 222;
    assert_int_equal(rp_backend_new("local", &conf, on_done, &f->box, &f->be,
                                    es, sizeof(es)),
                     RP_OK);
    server = find_fork_server();

    run_real(f, "fs1", 1);
    assert_true(forked_by_server(f, "fs1"));
    lim = slurp(f, "limits", "fs1");
    assert_non_null(lim);
    assert_non_null(strstr(lim, "Max open files            222                  222"));
    free(lim);

    /* Killed: the next execution is exec'd, and the dead server reaped. */
    assert_int_equal(kill(server, SIGKILL), 0);
    run_real(f, "fs2", 2);
    assert_false(forked_by_server(f, "fs2"));
    assert_true(waitpid(server, &status, WNOHANG) < 0 && errno == ECHILD);
    lim = slurp(f, "limits", "fs2");
    assert_non_null(strstr(lim, "Max open files            222                  222"));
    free(lim);

    /* A second later a new server forks them again. */
    usleep(1100 * 1000);
    run_real(f, "fs3", 3);
    assert_true(forked_by_server(f, "fs3"));
    server2 = find_fork_server();
    assert_true(server2 != server);
}

static void test_bad_executor_and_backend(void **state)
{
    rp_backend_conf_t conf = {.executor_path = "/nonexistent/runpool-executor"};
    rp_backend_t *be = NULL;
    char es[512] = "";

    (void)state;
    assert_int_equal(rp_backend_new("local", &conf, on_done, NULL, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_null(be);
    assert_non_null(strstr(es, "/nonexistent/runpool-executor"));
    assert_int_equal(rp_backend_new("nope", &conf, on_done, NULL, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "unknown backend 'nope'"));
    rp_backend_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workspace_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_code_and_contract_env, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fresh_start_claimed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_request_on_stdin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_session_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_group_and_unblocked_signals,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_terminates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_kills_stubborn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_run_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_keeps_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_leaves_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_server, setup, teardown),
        cmocka_unit_test(test_bad_executor_and_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
