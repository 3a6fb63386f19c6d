/* rp_job — the job machine: one consumed record's life, in the order it is
 * lived (rp_worker_int.h has the stages; docs/worker.md the why):
 *
 *   accept -> QUEUED -> READY -> begin -> LOADING -> RUNNING -> FINISHING
 *          -> PUBLISHING (rp_publish.c) -> end -> the session's next job
 *
 * Main thread only. Every stage change goes through rp_job_set_stage,
 * which logs it (debug level) and drops the job's timer, since a timer
 * belongs to the stage that armed it.
 */
#include "rp_worker_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_log.h"
#include "rp_time.h"

static const char *const rp_job_stage_names[RP_JOB_STAGE_COUNT] = {
    [RP_JOB_QUEUED] = "queued",         [RP_JOB_READY] = "ready",
    [RP_JOB_LOADING] = "loading",       [RP_JOB_RUNNING] = "running",
    [RP_JOB_FINISHING] = "finishing",   [RP_JOB_PUBLISHING] = "publishing",
};

const char *rp_job_stage_name(rp_job_stage_t stage)
{
    return stage >= 0 && stage < RP_JOB_STAGE_COUNT ? rp_job_stage_names[stage]
                                                    : "unknown";
}

void rp_job_set_stage(rp_job_t *job, rp_job_stage_t stage)
{
    rp_worker_t *w = job->w;

    rp_log(RP_LOG_DEBUG, "job_stage", rp_job_eid(job), rp_job_sid(job),
           "partition %d offset %lld: %s -> %s", (int)job->partition,
           (long long)job->offset, rp_job_stage_name(job->stage),
           rp_job_stage_name(stage));
    if (job->stage <= RP_JOB_READY && stage > RP_JOB_READY)
        w->running++; /* it holds a run slot from here to its end */
    rp_timerq_remove(&w->timers, &job->timer);
    job->stage = stage;
}

void rp_job_set_error(rp_job_t *job, rp_code_t code, const char *fmt, ...)
{
    va_list ap;

    snprintf(job->err_code, sizeof(job->err_code), "%s", rp_code_str(code));
    va_start(ap, fmt);
    vsnprintf(job->err_msg, sizeof(job->err_msg), fmt, ap);
    va_end(ap);
}

bool rp_job_current(const rp_worker_t *w, const rp_job_t *job)
{
    return !job->revoked && job->partition < w->npart &&
           w->part[job->partition].epoch == job->epoch;
}

static void rp_job_free(rp_job_t *job)
{
    if (!job)
        return;
    free(job->key);
    free(job->payload);
    if (job->headers)
        rd_kafka_headers_destroy(job->headers);
    rp_request_clear(&job->req);
    rp_session_clear(&job->session);
    rp_result_clear(&job->result);
    free(job->result_json);
    free(job);
}

/* Off every list and out of the timer queue, and out of the counts. */
static void rp_job_unlink(rp_worker_t *w, rp_job_t *job)
{
    rp_list_unlink(&job->link);
    rp_list_unlink(&job->ready_link);
    rp_list_unlink(&job->txn_link);
    rp_timerq_remove(&w->timers, &job->timer);
    w->inflight--;
    if (job->stage > RP_JOB_READY)
        w->running--;
}

/* ------------------------------------------------------------------ */
/* Consumed                                                            */

static void rp_job_reject(rp_job_t *job, rp_code_t code, const char *msg)
{
    job->rejected = true;
    snprintf(job->reject_code, sizeof(job->reject_code), "%s",
             rp_code_str(code));
    snprintf(job->reject_msg, sizeof(job->reject_msg), "%s", msg);
}

static void rp_job_make_ready(rp_worker_t *w, rp_job_t *job);

/* With --signing-keys: does rec carry a signature that verifies? The
 * bytes are checked as they came, before anything reads them. */
static rp_sign_status_t rp_job_verify(const rp_worker_t *w,
                                      const rp_record_t *rec, char *why,
                                      size_t ws)
{
    if (!w->sign_keys)
        return RP_SIGN_OK;
    if (rec->nsig > 1) {
        snprintf(why, ws, "%d %s headers; a request carries one", rec->nsig,
                 RP_SIGN_HEADER_NAME);
        return RP_SIGN_BAD;
    }
    return rp_sign_verify(w->sign_keys, rec->nsig ? rec->sig : NULL,
                          rec->nsig ? rec->siglen : 0, rec->key,
                          rec->key ? rec->keylen : 0, rec->payload,
                          rec->payload ? rec->len : 0,
                          rp_time_wall_ms() / 1000,
                          w->conf.signature_max_age_s, why, ws);
}

/* Validate the record into job; bad input is marked rejected (with the
 * original kept for the DLQ), never dropped. false: out of memory. */
static bool rp_job_parse(rp_job_t *job, const rp_record_t *rec,
                         rd_kafka_message_t *m)
{
    char es[RP_ERRMSG_MAX], why[RP_ERRMSG_MAX];
    rp_sign_status_t sig = rp_job_verify(job->w, rec, why, sizeof(why));
    rp_err_t err;

    job->keylen = rec->key ? rec->keylen : 0;
    if (job->keylen > RP_SCHED_KEY_MAX) {
        /* Not a session id in any case; scheduled under the empty key so
         * it still reaches the DLQ (without its key). */
        job->keylen = 0;
        rp_job_reject(job, RP_CODE_KEY_TOO_LARGE, "the Kafka message key is too large");
    }
    if (!(job->key = malloc(job->keylen + 1)))
        return false;
    if (job->keylen)
        memcpy(job->key, rec->key, job->keylen);
    job->key[job->keylen] = '\0';

    /* An unsigned or forged request is parsed only so that its rejected
     * result can name the execution_id and session_id it claims (the
     * requester waits for them); it never runs. */
    err = rp_request_parse(rec->payload ? rec->payload : "", rec->len,
                           &job->req, es, sizeof(es));
    if (sig != RP_SIGN_OK) {
        rp_job_reject(job, rp_sign_code(sig), why);
    } else if (job->rejected) {
        /* key_too_large, decided above */
    } else if (!rec->payload) {
        rp_job_reject(job, RP_CODE_INVALID_REQUEST,
                      "a null value (tombstone) is not a request");
    } else if (err) {
        rp_job_reject(job, err == RP_ERR_TOO_LARGE ? RP_CODE_TOO_LARGE
                                                   : RP_CODE_INVALID_REQUEST, es);
    } else if (job->keylen != strlen(job->req.session_id) ||
               memcmp(job->key, job->req.session_id, job->keylen) != 0) {
        /* Ordering per session rests on key == session_id. */
        rp_job_reject(job, RP_CODE_KEY_MISMATCH,
                      "the Kafka message key must equal session_id");
    }
    if (!job->rejected)
        return true;
    job->payload_len = rec->payload ? rec->len : 0;
    /* A tombstone keeps payload NULL: its DLQ copy is a tombstone too. */
    if (rec->payload) {
        if (!(job->payload = malloc(rec->len + 1)))
            return false;
        if (rec->len)
            memcpy(job->payload, rec->payload, rec->len);
    }
    if (m)
        rd_kafka_message_detach_headers(m, &job->headers);
    rp_log(RP_LOG_WARN, "request_rejected", job->req.execution_id,
           job->req.session_id, "partition %d offset %lld: %s: %s",
           (int)rec->partition, (long long)rec->offset, job->reject_code,
           job->reject_msg);
    return true;
}

void rp_job_accept(rp_worker_t *w, const rp_record_t *rec,
                   rd_kafka_message_t *m)
{
    rp_job_t *job = NULL;
    int runnable = 0;

    rp_wmetrics_consumed(w);
    if (rp_partitions_grow(w, rec->partition) != RP_OK ||
        rp_offsets_track(w->offsets, rec->partition, rec->offset) != RP_OK) {
        /* Skipping it would let a later commit pass it: stop instead, so
         * nothing at or after it is consumed here and it is re-delivered. */
        rp_log(RP_LOG_ERROR, "offset_track_failed", NULL, NULL,
               "cannot track partition %d offset %lld; stopping",
               (int)rec->partition, (long long)rec->offset);
        rp_worker_set_fatal(w, "offset tracking failed");
        return;
    }
    if (!w->part[rec->partition].win_paused &&
        rp_partitions_window_full(w, rec->partition))
        w->window_check = true; /* flow control pauses it */
    if (rp_offsets_carried(w->offsets, rec->partition, rec->offset)) {
        /* Re-delivered, but the last owner published its result and said
         * so in its commit: do not publish it again. */
        rp_log(RP_LOG_DEBUG, "already_published", NULL, NULL,
               "partition %d offset %lld: finished by the previous owner",
               (int)rec->partition, (long long)rec->offset);
        (void)rp_offsets_done(w->offsets, rec->partition, rec->offset);
        return;
    }
    if (w->draining)
        return; /* tracked as unfinished: never committed, re-delivered */
    if (!(job = calloc(1, sizeof(*job))))
        goto oom;
    job->w = w;
    job->partition = rec->partition;
    job->offset = rec->offset;
    job->epoch = w->part[rec->partition].epoch;
    job->msg_ts_ms = rec->ts_ms;
    job->stage = RP_JOB_QUEUED;
    if (!rp_job_parse(job, rec, m))
        goto oom;
    rp_list_push_head(&w->jobs, &job->link);
    w->inflight++;
    if (rp_sched_push(w->sched, job->key, job->keylen, job, &runnable)) {
        rp_job_unlink(w, job);
        goto oom;
    }
    if (runnable)
        rp_job_make_ready(w, job);
    return;
oom:
    /* Left unfinished in the tracker: it is re-delivered, never lost. */
    rp_job_free(job);
    rp_worker_set_fatal(w, "out of memory");
}

/* ------------------------------------------------------------------ */
/* Its session's turn: wait for a run slot, then begin                 */

/* Behind the heads already waiting (first come, first served, so a
 * session with many requests cannot keep a slot to itself). Bad input runs
 * nothing and never waits. */
static void rp_job_make_ready(rp_worker_t *w, rp_job_t *job)
{
    rp_job_set_stage(job, RP_JOB_READY);
    rp_list_push_tail(job->rejected ? &w->ready_now : &w->ready,
                      &job->ready_link);
}

static void rp_job_begin(rp_worker_t *w, rp_job_t *job);

void rp_job_admit_ready(rp_worker_t *w)
{
    rp_list_t *n;

    while (!w->fatal) {
        if ((n = rp_list_pop_head(&w->ready_now)) == NULL &&
            (w->draining || w->running >= (size_t)w->conf.max_running ||
             (n = rp_list_pop_head(&w->ready)) == NULL))
            break;
        rp_job_begin(w, RP_LIST_ENTRY(n, rp_job_t, ready_link));
    }
}

static void rp_job_submit_io(rp_worker_t *w, rp_job_t *job, rp_iopool_fn *fn)
{
    if (rp_iopool_submit(w->io, fn, job) != RP_OK) {
        /* Publishing an error here would commit a request whose state was
         * never saved; stopping re-delivers it to a healthy worker. */
        rp_worker_set_fatal(w, "cannot queue an I/O step (out of memory)");
        rp_job_end(w, job, false);
    }
}

static void rp_job_begin(rp_worker_t *w, rp_job_t *job)
{
    job->t_begin = rp_time_mono_ms();
    job->t_begin_wall = rp_time_wall_ms();
    if (job->rejected) {
        rp_publish_job(w, job);
        return;
    }
    rp_job_set_stage(job, RP_JOB_LOADING);
    rp_job_submit_io(w, job, rp_cycle_load);
}

/* ------------------------------------------------------------------ */
/* Loaded: reuse, close, or run                                        */

static void rp_job_run(rp_worker_t *w, rp_job_t *job);
static void rp_job_attach(rp_worker_t *w, rp_job_t *job);

static void rp_job_on_loaded(rp_worker_t *w, rp_job_t *job)
{
    /* Stopping: a command that has not started stays unstarted (its
     * request is re-delivered); one that ran still gets published. */
    if (!rp_job_current(w, job) ||
        ((w->draining || w->fatal) && job->req.op == RP_OP_EXEC &&
         !job->reused && !job->err_code[0])) {
        rp_job_end(w, job, false);
        return;
    }
    if (job->err_code[0]) {
        rp_publish_job(w, job);
    } else if (job->req.op == RP_OP_CLOSE_SESSION || job->reused) {
        rp_job_set_stage(job, RP_JOB_FINISHING);
        rp_job_submit_io(w, job, rp_cycle_finish);
    } else if (job->claim_found && rp_backend_can_attach(w->backend)) {
        /* Started by some run (a previous owner's executor, which outlived
         * its worker): watch it, never start the command a second time. */
        job->t_loaded = rp_time_mono_ms();
        rp_job_attach(w, job);
    } else {
        /* No claim; or a backend that cannot attach, whose duplicate
         * executor will meet the claim and exit CLAIMED. */
        rp_job_run(w, job);
    }
}

/* The backstop of the run being watched: timeout_s + grace after loading. */
static void rp_job_arm_backstop(rp_worker_t *w, rp_job_t *job)
{
    rp_worker_arm(w, &job->timer,
                  job->t_loaded + ((int64_t)job->req.timeout_s +
                                   w->conf.timeout_grace_s) * 1000);
}

/* Forget the run watched so far, before watching the next one. */
static void rp_job_drop_run(rp_worker_t *w, rp_job_t *job)
{
    if (job->run)
        rp_backend_release(w->backend, job->run);
    job->run = NULL;
    memset(&job->done, 0, sizeof(job->done));
    job->claim_attach = job->claim_wait = job->claim_restart = false;
}

static void rp_job_claim_wait(rp_worker_t *w, rp_job_t *job);

/* Watch the run job->claim_run names. If it is gone, FINISHING looks for
 * its record once more, taking that run as the one watched, so no record
 * means "interrupted". A run this backend cannot watch: wait for it. */
static void rp_job_attach(rp_worker_t *w, rp_job_t *job)
{
    char es[512];
    rp_err_t err;

    rp_job_drop_run(w, job);
    rp_job_set_stage(job, RP_JOB_RUNNING);
    memcpy(job->run_id, job->claim_run, sizeof(job->run_id));
    err = rp_backend_attach(w->backend, job->claim_run, job, &job->run, es,
                            sizeof(es));
    if (err == RP_OK) {
        rp_log(RP_LOG_INFO, "execution_attached", rp_job_eid(job),
               rp_job_sid(job), "watching run %s, which claimed it",
               job->claim_run);
        rp_job_arm_backstop(w, job);
        return;
    }
    job->run = NULL;
    if (err == RP_ERR_NOT_FOUND) {
        rp_log(RP_LOG_INFO, "claimed_run_gone", rp_job_eid(job),
               rp_job_sid(job), "%s", es);
        rp_job_set_stage(job, RP_JOB_FINISHING);
        rp_job_submit_io(w, job, rp_cycle_finish);
        return;
    }
    rp_log(RP_LOG_INFO, "claim_wait", rp_job_eid(job), rp_job_sid(job),
           "cannot watch run %s (%s); waiting for its record", job->claim_run,
           es);
    job->run_id[0] = '\0';
    rp_job_claim_wait(w, job);
}

/* First and doubling waits for the record of a run we cannot watch. */
#define RP_JOB_CLAIM_POLL_FIRST_MS 500
#define RP_JOB_CLAIM_POLL_MAX_MS 10000

/* Poll the store for the record of a run we cannot watch, with a bounded
 * backoff, until the job's backstop; then it ends "interrupted". */
static void rp_job_claim_wait(rp_worker_t *w, rp_job_t *job)
{
    int64_t now = rp_time_mono_ms();

    rp_job_drop_run(w, job);
    rp_job_set_stage(job, RP_JOB_RUNNING);
    if (!job->claim_deadline) {
        job->claim_deadline = job->t_loaded + ((int64_t)job->req.timeout_s +
                                               w->conf.timeout_grace_s) * 1000;
        job->claim_poll_ms = RP_JOB_CLAIM_POLL_FIRST_MS;
    }
    if (now >= job->claim_deadline) {
        rp_job_set_error(job, RP_CODE_INTERRUPTED,
                         "run %s claimed the execution and left no record "
                         "within timeout_s + %d s; not run again",
                         job->claim_run, w->conf.timeout_grace_s);
        rp_publish_job(w, job);
        return;
    }
    rp_worker_arm(w, &job->timer, now + job->claim_poll_ms < job->claim_deadline
                                      ? now + job->claim_poll_ms
                                      : job->claim_deadline);
    job->claim_poll_ms = job->claim_poll_ms * 2 > RP_JOB_CLAIM_POLL_MAX_MS
                             ? RP_JOB_CLAIM_POLL_MAX_MS
                             : job->claim_poll_ms * 2;
}

/* Start the command through the backend; a backstop timer cancels it if
 * neither the executor's own timeout nor the backend ended it. */
static void rp_job_run(rp_worker_t *w, rp_job_t *job)
{
    rp_jobspec_t spec;
    char es[512];

    memset(&spec, 0, sizeof(spec));
    memcpy(spec.execution_id, job->req.execution_id, sizeof(spec.execution_id));
    memcpy(spec.session_id, job->req.session_id, sizeof(spec.session_id));
    spec.command = job->req.command;
    spec.timeout_s = job->req.timeout_s;
    spec.env = job->req.env; /* borrowed view; not cleared here */
    spec.state_url = (char *)w->conf.state_url;
    spec.output_max = w->conf.output_max;
    spec.attempt = job->attempt;
    rp_job_drop_run(w, job);
    rp_job_set_stage(job, RP_JOB_RUNNING);
    job->t_loaded = rp_time_mono_ms();
    job->backstop_fired = false;
    job->claim_deadline = 0;
    if (rp_backend_start(w->backend, &spec, job, &job->run, es, sizeof(es))) {
        rp_job_set_error(job, RP_CODE_BACKEND_FAILED, "%s", es);
        rp_publish_job(w, job);
        return;
    }
    rp_backend_run_id(w->backend, job->run, job->run_id);
    rp_job_arm_backstop(w, job);
}

void rp_job_backend_done(void *jobp, const rp_backend_done_t *done,
                         void *opaque)
{
    rp_job_t *job = jobp;

    (void)opaque;
    job->done = *done;
    rp_inbox_post(job->w->inbox, &job->item, RP_EV_RUN_DONE);
}

/* The backstop: no completion timeout_grace_s after the command's own
 * timeout. The cancelled run still reports done, and is finished then. */
static void rp_job_backstop(rp_worker_t *w, rp_job_t *job)
{
    int64_t started, due, now = rp_time_mono_ms();

    if (job->backstop_fired || !job->run)
        return;
    /* The timeout counts from the command's start: a run still queued
     * (a Cloud Run execution waiting for capacity) is not overdue, and one
     * that started late is given its whole timeout from then. The backend
     * bounds the queueing itself (RUNPOOL_CLOUD_RUN_QUEUE_MAX_S). */
    started = rp_backend_started_ms(w->backend, job->run);
    if (started == 0) {
        rp_worker_arm(w, &job->timer,
                      now + (int64_t)w->conf.timeout_grace_s * 1000);
        return;
    }
    due = started + ((int64_t)job->req.timeout_s + w->conf.timeout_grace_s) *
                        1000;
    if (started > 0 && due > now) {
        rp_worker_arm(w, &job->timer, due);
        return;
    }
    job->backstop_fired = true;
    rp_log(RP_LOG_WARN, "execution_backstop", rp_job_eid(job), rp_job_sid(job),
           "no completion %d s after its timeout; cancelling",
           w->conf.timeout_grace_s);
    rp_backend_cancel(w->backend, job->run);
}

/* ------------------------------------------------------------------ */
/* Ran: finish (record + state), then publish                          */

static void rp_job_on_run_done(rp_worker_t *w, rp_job_t *job)
{
    job->t_run_done = rp_time_mono_ms();
    job->run_ms = job->t_run_done - job->t_loaded;
    if (!rp_job_current(w, job)) {
        rp_log(RP_LOG_INFO, "execution_abandoned", rp_job_eid(job),
               rp_job_sid(job), "partition %d revoked or worker stopping; "
               "the run goes on and the next owner takes it over",
               (int)job->partition);
        rp_job_end(w, job, false);
        return;
    }
    if (job->done.err) {
        /* The execution could not run (quota, permissions, a missing
         * image): say so with the backend's own message. A record may
         * still exist if the executor got far enough, so look first. */
        rp_log(RP_LOG_WARN, "backend_error", rp_job_eid(job), rp_job_sid(job),
               "%s", job->done.detail);
    }
    rp_job_set_stage(job, RP_JOB_FINISHING);
    rp_job_submit_io(w, job, rp_cycle_finish);
}

static void rp_job_on_finished(rp_worker_t *w, rp_job_t *job)
{
    if (!rp_job_current(w, job)) {
        rp_job_end(w, job, false);
        return;
    }
    /* The claim fence's verdict (rp_cycle_claim), when there was one. */
    if (job->claim_restart)
        rp_job_run(w, job);
    else if (job->claim_attach && rp_backend_can_attach(w->backend))
        rp_job_attach(w, job);
    else if (job->claim_attach || job->claim_wait)
        rp_job_claim_wait(w, job);
    else
        rp_publish_job(w, job);
}

/* A wait for the record of a run we cannot watch is over: look again. */
static void rp_job_claim_poll(rp_worker_t *w, rp_job_t *job)
{
    if (!rp_job_current(w, job)) {
        rp_job_end(w, job, false); /* the next owner waits instead */
        return;
    }
    rp_job_set_stage(job, RP_JOB_FINISHING);
    rp_job_submit_io(w, job, rp_cycle_finish);
}

void rp_job_on_event(rp_worker_t *w, rp_job_t *job, int kind)
{
    switch (kind) {
    case RP_EV_LOADED:
        rp_wmetrics_state_op(w, "load",
                             strcmp(job->err_code, "state_load_failed") ? "ok"
                                                                        : "error",
                             job->state_load_ms);
        rp_job_on_loaded(w, job);
        break;
    case RP_EV_RUN_DONE:
        rp_job_on_run_done(w, job);
        break;
    case RP_EV_FINISHED:
        rp_wmetrics_state_op(
            w, "save",
            !strcmp(job->err_code, "state_conflict")      ? "conflict"
            : !strcmp(job->err_code, "state_save_failed") ? "error"
                                                          : "ok",
            job->state_save_ms);
        rp_job_on_finished(w, job);
        break;
    }
}

void rp_job_on_timer(rp_worker_t *w, rp_job_t *job)
{
    if (job->stage == RP_JOB_RUNNING && !job->run)
        rp_job_claim_poll(w, job);
    else if (job->stage == RP_JOB_RUNNING)
        rp_job_backstop(w, job);
    else if (job->stage == RP_JOB_PUBLISHING)
        rp_publish_retry(w, job);
}

/* ------------------------------------------------------------------ */
/* The end                                                             */

void rp_job_release_session(rp_worker_t *w, rp_job_t *job)
{
    rp_job_t *next;

    if (job->session_released)
        return;
    job->session_released = true;
    next = rp_sched_done(w->sched, job->key, job->keylen);
    if (next)
        rp_job_make_ready(w, next);
}

void rp_job_end(rp_worker_t *w, rp_job_t *job, bool finished)
{
    if (finished && rp_job_current(w, job)) {
        if (rp_offsets_done(w->offsets, job->partition, job->offset) != RP_OK)
            rp_log(RP_LOG_WARN, "offset_untracked", rp_job_eid(job),
                   rp_job_sid(job), "partition %d offset %lld was not tracked",
                   (int)job->partition, (long long)job->offset);
        if (w->part[job->partition].win_paused &&
            !rp_partitions_window_full(w, job->partition))
            w->window_check = true; /* flow control resumes it */
        rp_wmetrics_job_done(w, job);
    }
    rp_log(RP_LOG_DEBUG, "job_end", rp_job_eid(job), rp_job_sid(job),
           "partition %d offset %lld: %s -> %s", (int)job->partition,
           (long long)job->offset, rp_job_stage_name(job->stage),
           finished ? "done" : "abandoned");
    if (job->run)
        rp_backend_release(w->backend, job->run);
    job->run = NULL;
    rp_job_unlink(w, job);
    rp_job_release_session(w, job);
    rp_job_free(job);
}

void rp_job_drop(rp_worker_t *w, rp_job_t *job)
{
    rp_job_unlink(w, job);
    rp_job_free(job);
}

size_t rp_job_drop_ready(rp_worker_t *w,
                         const rd_kafka_topic_partition_list_t *parts)
{
    rp_list_t *lists[2] = {&w->ready_now, &w->ready}, drop, *n, *tmp;
    size_t count = 0;

    /* Take every match off first: ending one readies its session's next. */
    rp_list_init(&drop);
    for (int i = 0; i < 2; i++) {
        RP_LIST_FOREACH_SAFE(n, tmp, lists[i])
        {
            if (!rp_partitions_match(RP_LIST_ENTRY(n, rp_job_t, ready_link),
                                     parts))
                continue;
            rp_list_unlink(n);
            rp_list_push_tail(&drop, n);
            count++;
        }
    }
    while ((n = rp_list_pop_head(&drop)))
        rp_job_end(w, RP_LIST_ENTRY(n, rp_job_t, ready_link), false);
    return count;
}
