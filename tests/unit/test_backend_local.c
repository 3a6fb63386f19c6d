/* The local backend against real child processes. The "executor" here is a
 * small shell script, so the test sees exactly what a job container gets:
 * its environment, process group, signal mask, and how cancel ends it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rp_test_dir.h"
#include "rp_backend.h"

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
 * signal mask, then behaves as COMMAND says. */
static const char *const script_text =
    "#!/bin/sh\n"
    "dir=${RUNPOOL_STATE_URL#file://}\n"
    /* Builtins only, before the first fork: dash blocks every signal while
     * it waits for a child, so a later sample would see its own mask. */
    "while read k v; do [ \"$k\" = SigBlk: ] && echo \"SigBlk: $v\" > "
    "\"$dir/sigblk.$EXECUTION_ID\"; done < /proc/$$/status\n"
    "env > \"$dir/env.$EXECUTION_ID\"\n"
    "set -- $(cat /proc/$$/stat | sed 's/^.*) //')\n"
    "echo \"$3\" > \"$dir/pgid.$EXECUTION_ID\"\n"
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
    assert_non_null(strstr(env, "COMMAND=exit 5\n"));
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

static void test_own_group_and_unblocked_signals(void **state)
{
    fixture_t *f = *state;
    rp_jobspec_t spec;
    rp_backend_run_t *run = NULL;
    char es[512], *pgid, *pid, *sigblk;
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
        cmocka_unit_test_setup_teardown(test_exit_code_and_contract_env, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_group_and_unblocked_signals,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_terminates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_kills_stubborn, setup,
                                        teardown),
        cmocka_unit_test(test_bad_executor_and_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
