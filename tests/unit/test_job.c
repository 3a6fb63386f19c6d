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
    char run_id[RP_CLAIM_RUN_MAX + 1]; /* "fake:N", or the attached one */
    int attempt;                       /* spec.attempt it was started with */
    bool attached;
    int cancels;
    bool released;
} fake_run_t;

/* What the fake backend saw. Main thread only, as the worker calls it. */
static struct {
    fake_run_t *runs[FAKE_RUNS_MAX];
    int nruns;
    int starts;
    int attaches;
    bool fail_start;
    rp_err_t attach_err; /* what attach answers (RP_OK: it watches) */
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
    r->attempt = spec->attempt;
    fake.runs[fake.nruns++] = r;
    snprintf(r->run_id, sizeof(r->run_id), "fake:%d", fake.nruns);
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

static rp_err_t fake_attach(rp_backend_t *be, const char *run_id, void *job,
                            rp_backend_run_t **run, char *errstr, size_t es)
{
    fake_run_t *r;

    (void)be;
    fake.attaches++;
    if (fake.attach_err)
        return rp_errf(errstr, es, fake.attach_err, "fake: run %s is gone",
                       run_id);
    assert_true(fake.nruns < FAKE_RUNS_MAX);
    assert_non_null(r = calloc(1, sizeof(*r)));
    r->job = job;
    r->attached = true;
    snprintf(r->execution_id, sizeof(r->execution_id), "%s",
             ((rp_job_t *)job)->req.execution_id);
    snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
    fake.runs[fake.nruns++] = r;
    *run = (rp_backend_run_t *)r;
    return RP_OK;
}

static void fake_run_id(rp_backend_t *be, rp_backend_run_t *run,
                        char out[RP_CLAIM_RUN_MAX + 1])
{
    (void)be;
    memcpy(out, ((fake_run_t *)run)->run_id, RP_CLAIM_RUN_MAX + 1);
}

/* Like the local backend: names its runs and attaches. */
static const rp_backend_ops_t fake_ops = {
    .name = "fake",
    .start = fake_start,
    .cancel = fake_cancel,
    .release = fake_release,
    .close = fake_close,
    .attach = fake_attach,
    .run_id = fake_run_id,
};

/* Like the cloudrun backend today: neither names its runs nor attaches. */
static const rp_backend_ops_t fake_plain_ops = {
    .name = "fake-plain",
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

/* Write the record an executor would (and, unless quiet, report the run
 * done). */
static void executor_writes(fixture_t *fx, fake_run_t *run, const char *cwd,
                            const char *env_name, const char *env_value,
                            bool report)
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
    if (!report)
        return;
    memset(&done, 0, sizeof(done));
    done.err = RP_OK;
    fx->w->backend->done_cb(job, &done, fx->w->backend->done_opaque);
}

static void executor_finishes(fixture_t *fx, fake_run_t *run, const char *cwd,
                              const char *env_name, const char *env_value)
{
    executor_writes(fx, run, cwd, env_name, env_value, true);
}

/* The record appears, written by a run this worker does not watch. */
static void executor_finishes_quiet(fixture_t *fx, fake_run_t *run,
                                    const char *cwd, const char *env_name,
                                    const char *env_value)
{
    executor_writes(fx, run, cwd, env_name, env_value, false);
}

/* Write the claim an executor would (attempt, naming run). */
static void write_claim(fixture_t *fx, const char *eid, const char *run,
                        int attempt)
{
    char key[RP_STATE_KEY_MAX], es[256], *json;
    rp_claim_t c;

    memset(&c, 0, sizeof(c));
    snprintf(c.execution_id, sizeof(c.execution_id), "%s", eid);
    snprintf(c.run, sizeof(c.run), "%s", run);
    c.attempt = attempt;
    c.claimed_at_ms = rp_time_wall_ms();
    assert_non_null(json = rp_claim_to_json(&c));
    rp_claim_key(eid, key, sizeof(key));
    assert_int_equal(rp_state_put(fx->st, key, json, strlen(json), 0, NULL, es,
                                  sizeof(es)),
                     RP_OK);
    free(json);
}

static bool claim_exists(fixture_t *fx, const char *eid)
{
    char key[RP_STATE_KEY_MAX], es[256];
    rp_buf_t buf;
    rp_err_t err;

    rp_buf_init(&buf, RP_CLAIM_DOC_MAX);
    rp_claim_key(eid, key, sizeof(key));
    err = rp_state_get(fx->st, key, &buf, NULL, es, sizeof(es));
    rp_buf_free(&buf);
    return err == RP_OK;
}

/* The run ends without a record (the executor vanished, or exited). */
static void run_ends(fixture_t *fx, fake_run_t *run, int exit_code, int sig)
{
    rp_backend_done_t done;

    memset(&done, 0, sizeof(done));
    done.err = RP_OK;
    done.exit_code = exit_code;
    done.signal = sig;
    snprintf(done.detail, sizeof(done.detail), "fake: exit %d signal %d",
             exit_code, sig);
    fx->w->backend->done_cb(run->job, &done, fx->w->backend->done_opaque);
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

/* With signing keys: an unsigned, a forged and a doubly signed request are
 * rejected with their code and a result addressed to them, and never
 * start; a signed one runs. */
static void test_signed_only(void **state)
{
    static const char keys[] =
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    static const char json[] =
        "{\"v\":1,\"execution_id\":\"e%d\",\"session_id\":\"s1\","
        "\"command\":\"true\",\"timeout_s\":5}";
    static const char *const want[] = {"unsigned", "bad_signature",
                                       "bad_signature", "unknown_key",
                                       "expired_signature"};
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    char err[256], hdr[RP_SIGN_HEADER_MAX + 1], body[256];
    int64_t now = rp_time_wall_ms() / 1000;
    rp_job_t *job;

    assert_int_equal(rp_sign_keys_parse(keys, strlen(keys), &w->sign_keys,
                                        err, sizeof(err)),
                     RP_OK);
    w->conf.signature_max_age_s = 300;
    for (int i = 0; i <= 5; i++) {
        rp_record_t rec = {.partition = 0, .offset = i, .key = "s1",
                           .keylen = 2, .ts_ms = rp_time_wall_ms()};

        snprintf(body, sizeof(body), json, i);
        rec.payload = body;
        rec.len = strlen(body);
        assert_int_equal(rp_sign_header(w->sign_keys, NULL,
                                        i == 4 ? now - 301 : now, "s1", 2,
                                        body, strlen(body), hdr, err,
                                        sizeof(err)),
                         RP_OK);
        rec.nsig = i == 0 ? 0 : i == 2 ? 2 : 1;
        rec.sig = hdr;
        rec.siglen = strlen(hdr);
        if (i == 1)
            rec.len--; /* the value is not what was signed */
        if (i == 3)
            memcpy(strstr(hdr, "kid=k1"), "kid=k9", 6);
        rp_job_accept(w, &rec, NULL);
        if (i == 5)
            break;
        job = step_until(w, i, RP_JOB_PUBLISHING);
        assert_true(job->rejected);
        assert_string_equal(job->reject_code, want[i]);
        assert_true(job->d_dlq.pending);
        /* Addressed to the requester when its ids are readable. */
        if (i != 1) {
            snprintf(body, sizeof(body), "e%d", i);
            assert_true(job->d_result.pending);
            assert_string_equal(job->result.execution_id, body);
            assert_string_equal(job->result.error_code, want[i]);
        }
        /* The last delivery ends (frees) the job. */
        if (job->d_result.pending)
            rp_publish_on_delivery(w, &job->d_result,
                                   RD_KAFKA_RESP_ERR_NO_ERROR);
        rp_publish_on_delivery(w, &job->d_dlq, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_null(find_job(w, i));
    }
    assert_int_equal(fake.starts, 0);
    step_until(w, 5, RP_JOB_RUNNING);
    assert_int_equal(fake.starts, 1);
    assert_false(find_job(w, 5)->rejected);
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

static void accept_retry(rp_worker_t *w, int64_t offset, const char *sid,
                         const char *eid)
{
    char json[512];

    snprintf(json, sizeof(json),
             "{\"v\":1,\"execution_id\":\"%s\",\"session_id\":\"%s\","
             "\"command\":\"make\",\"timeout_s\":5,"
             "\"retry\":\"if-interrupted\"}",
             eid, sid);
    accept_json(w, offset, sid, json);
}

/* A claim without a record (a previous owner's executor still runs): the
 * job watches that run, never starts the command, and publishes the
 * record that run leaves. */
static void test_claim_attaches(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    write_claim(fx, "e1", "local:boot:77:1234", 1);
    accept_exec(w, 0, "s1", "e1", "git push");
    job = step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.starts, 0);
    assert_int_equal(fake.attaches, 1);
    assert_true(fake.runs[0]->attached);
    assert_string_equal(fake.runs[0]->run_id, "local:boot:77:1234");
    assert_true(job->timer.queued); /* the backstop watches it too */
    executor_finishes(fx, fake.runs[0], "/", "A", "1");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_non_null(strstr(job->result_json, "\"status\":\"succeeded\""));
    assert_int_equal(fake.starts, 0);
}

/* Our executor met another run's claim and exited CLAIMED: attach to that
 * run rather than report anything. */
static void test_claimed_exit_attaches(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    accept_exec(w, 0, "s1", "e1", "git push");
    step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.starts, 1);
    write_claim(fx, "e1", "cloudrun:other-run", 1); /* won the race */
    run_ends(fx, fake.runs[0], RP_EXEC_EXIT_CLAIMED, 0);
    job = step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.attaches, 1);
    assert_true(fake.runs[0]->released); /* the first handle is let go */
    assert_string_equal(fake.runs[1]->run_id, "cloudrun:other-run");
    executor_finishes(fx, fake.runs[1], "/", "A", "1");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_non_null(strstr(job->result_json, "\"status\":\"succeeded\""));
    assert_int_equal(fake.starts, 1);
}

/* The run that claimed it vanished mid-command (kill -9, OOM): an
 * "interrupted" error, the command not started again, the session state
 * untouched. */
static void test_interrupted(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;
    char key[RP_STATE_KEY_MAX], es[256];
    rp_buf_t buf;

    accept_exec(w, 0, "s1", "e1", "git push");
    step_until(w, 0, RP_JOB_RUNNING);
    write_claim(fx, "e1", fake.runs[0]->run_id, 1);
    run_ends(fx, fake.runs[0], -1, SIGKILL);
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_string_equal(job->err_code, "interrupted");
    assert_non_null(strstr(job->result_json, "\"status\":\"error\""));
    assert_non_null(strstr(job->result_json, "\"code\":\"interrupted\""));
    assert_non_null(strstr(job->result_json, "fake:1"));
    assert_int_equal(fake.starts, 1);
    assert_true(claim_exists(fx, "e1")); /* kept: a later owner sees it */
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key("s1", key, sizeof(key));
    assert_int_equal(rp_state_get(fx->st, key, &buf, NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_buf_free(&buf);
}

/* A claimed run that is already gone when the new owner loads: attach
 * says NOT_FOUND, and without a record that is "interrupted". */
static void test_claimed_run_gone(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    write_claim(fx, "e1", "local:boot:77:1234", 1);
    fake.attach_err = RP_ERR_NOT_FOUND;
    accept_exec(w, 0, "s1", "e1", "git push");
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_string_equal(job->err_code, "interrupted");
    assert_int_equal(fake.attaches, 1);
    assert_int_equal(fake.starts, 0);
}

/* "retry": "if-interrupted": the claim is deleted and the command starts
 * again as attempt 2, 3; after RP_CLAIM_ATTEMPTS_MAX it is "interrupted". */
static void test_retry_if_interrupted(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;

    accept_retry(w, 0, "s1", "e1");
    step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.runs[0]->attempt, 0); /* first: not passed */
    for (int a = 1; a < RP_CLAIM_ATTEMPTS_MAX; a++) {
        write_claim(fx, "e1", fake.runs[a - 1]->run_id, a);
        run_ends(fx, fake.runs[a - 1], -1, SIGKILL);
        for (int i = 0; i < 250 && fake.starts == a; i++)
            rp_worker_step(w, 20);
        assert_int_equal(fake.starts, a + 1);
        assert_int_equal(fake.runs[a]->attempt, a + 1);
        assert_false(claim_exists(fx, "e1")); /* given back for the start */
    }
    write_claim(fx, "e1", fake.runs[RP_CLAIM_ATTEMPTS_MAX - 1]->run_id,
                RP_CLAIM_ATTEMPTS_MAX);
    run_ends(fx, fake.runs[RP_CLAIM_ATTEMPTS_MAX - 1], -1, SIGKILL);
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_string_equal(job->err_code, "interrupted");
    assert_non_null(strstr(job->result_json, "no attempts are left"));
    assert_int_equal(fake.starts, RP_CLAIM_ATTEMPTS_MAX);
}

/* A backend that can neither attach nor name its runs (cloudrun today):
 * a claim found at load still starts (the duplicate executor exits
 * CLAIMED), then the worker polls the store for the claiming run's record
 * with a backoff and publishes it. */
static void test_claim_wait_without_attach(void **state)
{
    fixture_t *fx = *state;
    rp_worker_t *w = fx->w;
    rp_job_t *job;
    int64_t first;

    w->backend->ops = &fake_plain_ops;
    write_claim(fx, "e1", "cloudrun:exec-a", 1);
    accept_exec(w, 0, "s1", "e1", "git push");
    step_until(w, 0, RP_JOB_RUNNING);
    assert_int_equal(fake.starts, 1);
    run_ends(fx, fake.runs[0], 1, 0); /* Cloud Run: "task failed" */
    /* Waiting: RUNNING, no run, a poll timer. */
    for (int i = 0; i < 250; i++) {
        rp_worker_step(w, 20);
        job = find_job(w, 0);
        if (job->stage == RP_JOB_RUNNING && !job->run && job->timer.queued)
            break;
    }
    assert_null(job->run);
    assert_true(job->timer.queued);
    first = job->timer.due_ms;
    assert_true(job->claim_poll_ms > 0);
    /* A poll that finds nothing waits longer the next time. */
    rp_worker_fire_timers(w, first);
    for (int i = 0; i < 250; i++) {
        rp_worker_step(w, 20);
        if (job->stage == RP_JOB_RUNNING && job->timer.queued)
            break;
    }
    assert_true(job->timer.due_ms - rp_time_mono_ms() > 500);
    /* The claiming run writes its record; the next poll publishes it. */
    {
        fake_run_t other = {.job = job};

        snprintf(other.execution_id, sizeof(other.execution_id), "e1");
        executor_finishes_quiet(fx, &other, "/", "A", "1");
    }
    rp_worker_fire_timers(w, job->timer.due_ms);
    job = step_until(w, 0, RP_JOB_PUBLISHING);
    assert_non_null(strstr(job->result_json, "\"status\":\"succeeded\""));
    assert_int_equal(fake.starts, 1);
    assert_int_equal(fake.attaches, 0);
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
        cmocka_unit_test_setup_teardown(test_signed_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_attaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claimed_exit_attaches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claimed_run_gone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_if_interrupted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_claim_wait_without_attach, setup,
                                        teardown),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < fake.nruns; i++)
        free(fake.runs[i]);
    rp_test_rmtree(dir);
    return rc;
}
