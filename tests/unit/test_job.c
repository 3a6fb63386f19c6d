/* The job machine (worker/rp_job.c with rp_cycle.c and rp_publish.c),
 * driven without a broker: records go in through rp_job_accept, a fake
 * backend stands in for the executor (it writes the record a real
 * executor would and reports done), the state is a real file:// store,
 * and delivery reports are handed in through rp_publish_on_delivery. The
 * producer is real but points at a closed port, so nothing is delivered
 * by itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_test_dir.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_time.h"
#include "rp_worker_int.h"

#define FAKE_RUNS_MAX 8

typedef struct fake_run {
    void *job;
    char execution_id[RP_ID_MAX + 1];
    char command[256];
    int cancels;
    bool released;
} fake_run_t;

/* What the fake backend saw. Main thread only, as the worker calls it. */
static struct {
    fake_run_t *runs[FAKE_RUNS_MAX];
    int nruns;
    int starts;
    bool fail_start;
} fake;

static rp_err_t fake_start(rp_backend_t *be, const rp_jobspec_t *spec,
                           void *job, rp_backend_run_t **run, char *errstr,
                           size_t es)
{
    fake_run_t *r;

    (void)be;
    fake.starts++;
    if (fake.fail_start)
        return rp_errf(errstr, es, RP_ERR_UNAVAILABLE, "fake: no quota left");
    assert_true(fake.nruns < FAKE_RUNS_MAX);
    assert_non_null(r = calloc(1, sizeof(*r)));
    r->job = job;
    snprintf(r->execution_id, sizeof(r->execution_id), "%s",
             spec->execution_id);
    snprintf(r->command, sizeof(r->command), "%s", spec->command);
    fake.runs[fake.nruns++] = r;
    *run = (rp_backend_run_t *)r;
    return RP_OK;
}

static void fake_cancel(rp_backend_t *be, rp_backend_run_t *run)
{
    (void)be;
    ((fake_run_t *)run)->cancels++;
}

static void fake_release(rp_backend_t *be, rp_backend_run_t *run)
{
    (void)be;
    ((fake_run_t *)run)->released = true;
}

static void fake_close(rp_backend_t *be)
{
    (void)be;
}

static const rp_backend_ops_t fake_ops = {
    .name = "fake",
    .start = fake_start,
    .cancel = fake_cancel,
    .release = fake_release,
    .close = fake_close,
};

static char dir[64], state_url[128], exec_path[128];

typedef struct fixture {
    rp_worker_t *w;
    rp_state_t *st; /* the executor's view of the same store */
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    rp_worker_conf_t c;
    rp_backend_t *be;
    char es[512];

    assert_non_null(fx);
    for (int i = 0; i < fake.nruns; i++)
        free(fake.runs[i]);
    memset(&fake, 0, sizeof(fake));
    rp_test_rmtree(dir);
    mkdir(dir, 0700);
    snprintf(exec_path, sizeof(exec_path), "%s/exec", dir);
    fclose(fopen(exec_path, "w"));
    chmod(exec_path, 0755);
    memset(&c, 0, sizeof(c));
    c.brokers = "127.0.0.1:1"; /* never reached: deliveries are handed in */
    c.delivery = RP_WORKER_DELIVERY_ALO; /* no transactions without a broker */
    c.state_url = state_url;
    c.backend_conf.executor_path = exec_path;
    c.io_threads = 2;
    c.max_running = 1;
    assert_int_equal(rp_worker_new(&c, &fx->w, es, sizeof(es)), RP_OK);
    /* Swap the local backend for the fake. */
    assert_non_null(be = calloc(1, sizeof(*be)));
    be->ops = &fake_ops;
    be->done_cb = fx->w->backend->done_cb;
    be->done_opaque = fx->w->backend->done_opaque;
    rp_backend_destroy(fx->w->backend);
    fx->w->backend = be;
    assert_int_equal(rp_state_open(state_url, &fx->st, es, sizeof(es)), RP_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    rp_worker_destroy(fx->w);
    rp_state_destroy(fx->st);
    free(fx);
    return 0;
}

static void accept_json(rp_worker_t *w, int64_t offset, const char *key,
                        const char *json)
{
    rp_record_t rec = {.partition = 0,
                       .offset = offset,
                       .ts_ms = rp_time_wall_ms(),
                       .key = key,
                       .keylen = strlen(key),
                       .payload = json,
                       .len = strlen(json)};

    rp_job_accept(w, &rec, NULL);
}

static void accept_exec(rp_worker_t *w, int64_t offset, const char *sid,
                        const char *eid, const char *command)
{
    char json[512];

    snprintf(json, sizeof(json),
             "{\"v\":1,\"execution_id\":\"%s\",\"session_id\":\"%s\","
             "\"command\":\"%s\",\"timeout_s\":5}",
             eid, sid, command);
    accept_json(w, offset, sid, json);
}

static rp_job_t *find_job(rp_worker_t *w, int64_t offset)
{
    for (rp_list_t *n = w->jobs.next; n != &w->jobs; n = n->next) {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, link);

        if (job->offset == offset)
            return job;
    }
    return NULL;
}

/* Turn the loop until the job at offset reaches stage (or 5 s pass). */
static rp_job_t *step_until(rp_worker_t *w, int64_t offset,
                            rp_job_stage_t stage)
{
    int64_t end = rp_time_mono_ms() + 5000;
    rp_job_t *job;

    while (rp_time_mono_ms() < end) {
        rp_worker_step(w, 20);
        if ((job = find_job(w, offset)) && job->stage == stage)
            return job;
    }
    fail_msg("offset %lld did not reach %s (now %s)", (long long)offset,
             rp_job_stage_name(stage),
             find_job(w, offset) ? rp_job_stage_name(find_job(w, offset)->stage)
                                 : "gone");
    return NULL;
}

/* Write the record an executor would, then report the run done. */
static void executor_finishes(fixture_t *fx, fake_run_t *run, const char *cwd,
                              const char *env_name, const char *env_value)
{
    rp_result_t r;
    rp_job_t *job = run->job;
    rp_backend_done_t done;
    char key[RP_STATE_KEY_MAX], es[256], *json;

    memset(&r, 0, sizeof(r));
    snprintf(r.execution_id, sizeof(r.execution_id), "%s", run->execution_id);
    snprintf(r.session_id, sizeof(r.session_id), "%s", job->req.session_id);
    r.status = RP_STATUS_SUCCEEDED;
    r.has_exit_code = true;
    r.stdout_data = strdup("hello\n");
    r.stdout_len = 6;
    r.cwd = strdup(cwd);
    r.started_at_ms = rp_time_wall_ms();
    r.finished_at_ms = r.started_at_ms + 1;
    r.has_env = true;
    assert_int_equal(rp_env_set(&r.env, env_name, env_value), RP_OK);
    assert_non_null(json = rp_result_to_json(&r, true));
    rp_layout_result_key(r.execution_id, key, sizeof(key));
    assert_int_equal(rp_state_put(fx->st, key, json, strlen(json), 0, NULL, es,
                                  sizeof(es)),
                     RP_OK);
    free(json);
    rp_result_clear(&r);
    memset(&done, 0, sizeof(done));
    done.err = RP_OK;
    fx->w->backend->done_cb(job, &done, fx->w->backend->done_opaque);
}

static void read_session(fixture_t *fx, const char *sid, rp_session_t *s)
{
    char key[RP_STATE_KEY_MAX], es[256];
    rp_buf_t buf;

    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key(sid, key, sizeof(key));
    assert_int_equal(rp_state_get(fx->st, key, &buf, NULL, es, sizeof(es)),
                     RP_OK);
    memset(s, 0, sizeof(*s));
    assert_int_equal(rp_session_parse(buf.data, buf.len, s, es, sizeof(es)),
                     RP_OK);
    rp_buf_free(&buf);
}

/* A request's whole life: loaded, run, its state saved, its result
 * published, and once delivered its offset is done. */
static void test_exec_life(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;
    rp_session_t s;

    accept_exec(w, 0, "s1", "e1", "cd /tmp && export X=1");
    job = step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.nruns, 1);
    assert_string_equal(fake.runs[0]->execution_id, "e1");
    assert_string_equal(fake.runs[0]->command, "cd /tmp && export X=1");
    assert_false(job->session_found);

    executor_finishes(fx, fake.runs[0], "/tmp", "X", "1");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_non_null(job->result_json);
    assert_non_null(strstr(job->result_json, "\"status\":\"succeeded\""));
    assert_non_null(strstr(job->result_json, "\"execution_id\":\"e1\""));
    assert_null(strstr(job->result_json, "\"env\"")); /* never published */
    assert_true(job->d_result.pending);
    assert_false(job->d_dlq.pending);
    read_session(fx, "s1", &s);
    assert_string_equal(s.cwd, "/tmp");
    assert_string_equal(s.last_execution_id, "e1");
    assert_int_equal(s.execution_count, 1);
    rp_session_clear(&s);
    assert_int_equal(rp_offsets_committable(w->offsets, 0), 0); /* not yet */

    rp_publish_on_delivery(w, &job->d_result, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_null(find_job(w, 0));
    assert_true(fake.runs[0]->released);
    assert_int_equal(rp_offsets_committable(w->offsets, 0), 1);
    assert_int_equal(w->inflight, 0);
    assert_int_equal(w->running, 0);
}

/* One session runs in order: the second request waits, queued, until the
 * first is delivered, and then sees the state the first one saved. */
static void test_session_order(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *first, *second;

    accept_exec(w, 0, "s1", "e1", "cd /a");
    accept_exec(w, 1, "s1", "e2", "pwd");
    first = step_until(w, 0, RP_JOB_RUNNING);
    second = find_job(w, 1);
    assert_non_null(second);
    assert_int_equal(second->stage, RP_JOB_QUEUED);
    executor_finishes(fx, fake.runs[0], "/a", "A", "1");
    first = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_int_equal(find_job(w, 1)->stage, RP_JOB_QUEUED);
    rp_publish_on_delivery(w, &first->d_result, RD_KAFKA_RESP_ERR_NO_ERROR);
    /* Its turn has come; the loop admits it in the next turn. */
    assert_int_equal(find_job(w, 1)->stage, RP_JOB_READY);
    second = step_until(w, 1, RP_JOB_RUNNING);
    assert_true(second->session_found);
    assert_string_equal(second->session.cwd, "/a");
    assert_int_equal(fake.nruns, 2);
    assert_string_equal(fake.runs[1]->execution_id, "e2");
}

/* --max-running 1: another session's head waits for the run slot. */
static void test_run_slot(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *a;

    accept_exec(w, 0, "sa", "ea", "true");
    accept_exec(w, 1, "sb", "eb", "true");
    a = step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(find_job(w, 1)->stage, RP_JOB_READY);
    executor_finishes(fx, fake.runs[0], "/", "A", "1");
    a = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_int_equal(find_job(w, 1)->stage, RP_JOB_READY);
    rp_publish_on_delivery(w, &a->d_result, RD_KAFKA_RESP_ERR_NO_ERROR);
    step_until(w, 1, RP_JOB_RUNNING);
}

/* Bad input runs nothing: a rejected result and the DLQ copy. */
static void test_rejected(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    accept_json(w, 0, "s1", "{not json");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_true(job->rejected);
    assert_string_equal(job->reject_code, "invalid_request");
    assert_true(job->d_dlq.pending);
    assert_int_equal(fake.starts, 0);
    rp_publish_on_delivery(w, &job->d_dlq, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_null(find_job(w, 0));
    assert_int_equal(rp_offsets_committable(w->offsets, 0), 1);
}

/* A backend that cannot start the run: an "error" result naming it. */
static void test_backend_fails(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    fake.fail_start = true;
    accept_exec(w, 0, "s1", "e1", "true");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_string_equal(job->err_code, "backend_failed");
    assert_non_null(strstr(job->result_json, "\"status\":\"error\""));
    assert_non_null(strstr(job->result_json, "no quota left"));
}

/* An execution that already left its record is reused, never re-run. */
static void test_reused_record(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;
    rp_session_t s;

    accept_exec(w, 0, "s1", "e1", "export Y=2");
    step_until(w, 0, RP_JOB_RUNNING);
    executor_finishes(fx, fake.runs[0], "/r", "Y", "2");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    rp_publish_on_delivery(w, &job->d_result, RD_KAFKA_RESP_ERR_NO_ERROR);

    accept_exec(w, 1, "s1", "e1", "export Y=2"); /* re-delivered */
    job = step_until(w, 1, RP_JOB_PUBLISHING);
    assert_true(job->reused);
    assert_int_equal(fake.starts, 1);
    assert_non_null(strstr(job->result_json, "\"execution_id\":\"e1\""));
    read_session(fx, "s1", &s);
    assert_int_equal(s.execution_count, 1); /* applied once */
    rp_session_clear(&s);
}

/* A failed delivery is produced again when the job's timer fires, from
 * the kept result; the command does not run again. The backstop cancels a
 * run that outlives its timeout plus the grace. */
static void test_timers(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    accept_exec(w, 0, "s1", "e1", "sleep 100");
    job = step_until(w, 0, RP_JOB_RUNNING);
    assert_true(job->timer.queued);
    /* timeout_s 5 + grace 60: nothing fires a minute in. */
    rp_worker_fire_timers(w, rp_time_mono_ms() + 60 * 1000);
    assert_int_equal(fake.runs[0]->cancels, 0);
    rp_worker_fire_timers(w, rp_time_mono_ms() + 66 * 1000);
    assert_int_equal(fake.runs[0]->cancels, 1);
    assert_true(job->backstop_fired);

    executor_finishes(fx, fake.runs[0], "/", "Z", "3");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_false(job->timer.queued);
    rp_publish_on_delivery(w, &job->d_result, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    assert_true(job->d_result.failed);
    assert_true(job->timer.queued);
    rp_worker_fire_timers(w, rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS);
    assert_true(job->d_result.pending);
    assert_false(job->d_result.failed);
    rp_publish_on_delivery(w, &job->d_result, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_null(find_job(w, 0));
    assert_int_equal(fake.starts, 1);
}

int main(void)
{
    sigset_t sigs;
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/rp-job-%ld", (long)getpid());
    snprintf(state_url, sizeof(state_url), "file://%s/state", dir);
    rp_log_init("test_job", RP_LOG_WARN);
    /* As runpool-worker does before creating the worker. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_life, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < fake.nruns; i++)
        free(fake.runs[i]);
    rp_test_rmtree(dir);
    return rc;
}
