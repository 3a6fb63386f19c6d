/* rp_publish — a job's PUBLISHING stage: the result record assembled from
 * what the job knows, fitted under the results topic's message size, the
 * DLQ copy of bad input, delivery reports and retries. A failed delivery
 * is produced again from the kept result (never re-run) when the job's
 * timer fires. Main thread only (delivery reports come from
 * rd_kafka_poll on it).
 *
 * Exactly-once (rp_txn.c): the messages go into the open transaction; a
 * job whose messages are all queued joins the transaction's batch and ends
 * when it commits, not on its delivery reports.
 */
#include "rp_worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_log.h"
#include "rp_time.h"

static void rp_publish_retry_later(rp_worker_t *w, rp_job_t *job)
{
    rp_worker_arm(w, &job->timer,
                  rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS);
}

static bool rp_publish_settled(const rp_job_t *job)
{
    return !job->d_result.pending && !job->d_dlq.pending &&
           !job->d_result.failed && !job->d_dlq.failed;
}

/* A produce failed. Most failures pass (the retry goes through later);
 * two never do: a fatal producer error (the worker stops, its work is
 * re-delivered) and a message too large (the next try is cut smaller). */
static void rp_publish_failed(rp_worker_t *w, rp_job_t *job,
                                  rd_kafka_resp_err_t kerr)
{
    if (kerr == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];

        rd_kafka_fatal_error(w->producer, why, sizeof(why));
        rp_worker_set_fatal(w, why);
    } else if ((kerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                kerr == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE) &&
               job->msg_cap > RP_WORKER_RESULT_BYTES_MIN) {
        job->msg_cap /= 2;
        free(job->result_json);
        job->result_json = NULL; /* re-fitted to the new cap on retry */
    }
}

/* Produce one message of job; on a local failure the delivery is marked
 * failed and produced again when the job's timer fires. */
static void rp_publish_produce(rp_worker_t *w, rp_job_t *job, rp_delivery_t *d)
{
    rd_kafka_resp_err_t kerr;
    rd_kafka_headers_t *h;
    const char *status;
    size_t dlq_key, dlq_len;

    d->job = job;
    if (w->eos && !rp_txn_begin(w)) {
        /* A commit or abort is being resumed (or the worker stops). */
        d->pending = false;
        d->failed = true;
        rp_publish_retry_later(w, job);
        return;
    }
    d->pending = true;
    d->failed = false;
    if (!d->is_dlq) {
        status = rp_status_str(job->result.status);
        h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "execution_id", -1, job->result.execution_id, -1);
        rd_kafka_header_add(h, "status", -1, status, -1);
        kerr = rd_kafka_producev(
            w->producer, RD_KAFKA_V_TOPIC(w->conf.results_topic),
            RD_KAFKA_V_KEY(job->result.session_id,
                           strlen(job->result.session_id)),
            RD_KAFKA_V_VALUE(job->result_json, strlen(job->result_json)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    } else {
        char part[16], off[32];

        h = job->headers ? rd_kafka_headers_copy(job->headers)
                         : rd_kafka_headers_new(6);
        snprintf(part, sizeof(part), "%d", (int)job->partition);
        snprintf(off, sizeof(off), "%lld", (long long)job->offset);
        rd_kafka_header_add(h, "runpool.error.code", -1, job->reject_code, -1);
        rd_kafka_header_add(h, "runpool.error.message", -1, job->reject_msg, -1);
        rd_kafka_header_add(h, "runpool.source.topic", -1,
                            w->conf.requests_topic, -1);
        rd_kafka_header_add(h, "runpool.source.partition", -1, part, -1);
        rd_kafka_header_add(h, "runpool.source.offset", -1, off, -1);
        rd_kafka_header_add(h, "runpool.worker", -1, w->name, -1);
        /* The DLQ copy gets headers the original did not have: if that
         * makes it too big, it carries the start of the payload and says
         * so; the whole original stays at its source offset. */
        dlq_key = job->keylen && job->keylen <= RP_SCHED_KEY_MAX ? job->keylen
                                                                  : 0;
        dlq_len = job->payload_len;
        if (dlq_len + dlq_key > job->msg_cap) {
            char orig[32];

            dlq_len = job->msg_cap > dlq_key ? job->msg_cap - dlq_key : 0;
            snprintf(orig, sizeof(orig), "%zu", job->payload_len);
            rd_kafka_header_add(h, "runpool.payload.truncated_from", -1, orig,
                                -1);
        }
        /* A tombstone's payload is NULL: its copy is a tombstone too. */
        kerr = rd_kafka_producev(
            w->producer, RD_KAFKA_V_TOPIC(w->conf.dlq_topic),
            RD_KAFKA_V_KEY(dlq_key ? job->key : NULL, dlq_key),
            RD_KAFKA_V_VALUE(job->payload, dlq_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    }
    if (kerr) {
        rd_kafka_headers_destroy(h); /* not taken on failure */
        rp_log(RP_LOG_WARN, "publish_failed", rp_job_eid(job), rp_job_sid(job),
               "cannot queue %s message: %s; retrying",
               d->is_dlq ? "DLQ" : "result", rd_kafka_err2str(kerr));
        rp_publish_failed(w, job, kerr);
        d->pending = false;
        d->failed = true;
        rp_publish_retry_later(w, job);
    }
}

/* Cut n bytes off the end of one output stream, keeping UTF-8 whole. */
static void rp_publish_cut(char *data, size_t *len, bool *truncated, size_t n)
{
    size_t keep = n >= *len ? 0 : *len - n;

    *len = rp_utf8_trim(data, keep);
    *truncated = true;
}

/* Serialise r for the results topic, within max bytes: when too big, the
 * larger output is truncated further (and flagged) until it fits. The
 * executor's record in the state store keeps the full output. */
char *rp_publish_result_json(rp_result_t *r, size_t max)
{
    char *json = rp_result_to_json(r, false);
    size_t len;

    while (json && (len = strlen(json)) > max &&
           (r->stdout_len || r->stderr_len)) {
        /* base64 makes 3 raw bytes 4; escaping makes one raw byte 1 to 6
         * bytes of JSON, so there cut half again the excess: either way
         * it converges in a pass or two. */
        bool b64 = !rp_utf8_valid(r->stdout_data, r->stdout_len) ||
                   !rp_utf8_valid(r->stderr_data, r->stderr_len);
        size_t cut = b64 ? (len - max) * 3 / 4 + 64
                         : (len - max) + (len - max) / 2 + 64;

        free(json);
        if (r->stdout_len >= r->stderr_len)
            rp_publish_cut(r->stdout_data, &r->stdout_len, &r->stdout_truncated,
                          cut);
        else
            rp_publish_cut(r->stderr_data, &r->stderr_len, &r->stderr_truncated,
                          cut);
        json = rp_result_to_json(r, false);
    }
    return json;
}

/* Exactly-once: a job with a message queued joins the open transaction
 * (rp_txn_add; once all are queued it is whole). A job that lost its
 * partition and has nothing queued publishes nothing: its next owner
 * does, and only one of the two can commit. true: job ended. */
static bool rp_publish_eos_step(rp_worker_t *w, rp_job_t *job)
{
    if (!w->eos)
        return false;
    if (!job->in_txn && !rp_job_current(w, job)) {
        rp_job_end(w, job, false);
        return true;
    }
    if (job->d_result.pending || job->d_dlq.pending)
        rp_txn_add(w, job);
    return false;
}

/* Build the published result from what the job knows and produce it (and
 * the DLQ copy for bad input). */
void rp_publish_job(rp_worker_t *w, rp_job_t *job)
{
    rp_result_t *r = &job->result;
    int64_t now_wall = rp_time_wall_ms();
    int64_t submitted;

    rp_job_set_stage(job, RP_JOB_PUBLISHING);
    job->publish_started_ms = rp_time_mono_ms();
    if (w->eos && !rp_job_current(w, job)) {
        rp_job_end(w, job, false);
        return;
    }
    if (!job->msg_cap)
        job->msg_cap = w->conf.result_max_bytes;
    if (!job->have_result) {
        /* No executor record: a rejection, an infrastructure error or a
         * close_session; build the result from scratch. */
        rp_result_clear(r);
        memset(r, 0, sizeof(*r));
        memcpy(r->execution_id, job->req.execution_id, sizeof(r->execution_id));
        memcpy(r->session_id, job->req.session_id, sizeof(r->session_id));
        r->started_at_ms = job->t_begin_wall;
        r->finished_at_ms = now_wall;
        r->duration_ms = now_wall - job->t_begin_wall;
        if (job->rejected) {
            r->status = RP_STATUS_REJECTED;
            rp_result_set_error(r, job->reject_code, job->reject_msg);
        } else if (job->err_code[0]) {
            r->status = RP_STATUS_ERROR;
            rp_result_set_error(r, job->err_code, job->err_msg);
        } else if (job->backend_timed_out) {
            /* No exit code, no output: only the backend's word on it. */
            char note[RP_BACKEND_DETAIL_MAX + 128];

            r->status = RP_STATUS_TIMED_OUT;
            snprintf(note, sizeof(note),
                     "runpool: the command did not finish within its "
                     "timeout of %d s and was stopped (%s)\n",
                     job->req.timeout_s, job->done.detail);
            r->stderr_data = strdup(note);
            r->stderr_len = r->stderr_data ? strlen(note) : 0;
        } else {
            r->status = RP_STATUS_SUCCEEDED; /* close_session */
            r->has_exit_code = true;
            r->exit_code = 0;
        }
    } else if (job->err_code[0]) {
        /* The command ran but we could not record its state: the outputs
         * are still worth returning, flagged as our failure. */
        r->status = RP_STATUS_ERROR;
        rp_result_set_error(r, job->err_code, job->err_msg);
    }
    free(r->worker);
    r->worker = strdup(w->name);
    r->has_env = false;
    r->reused = job->reused; /* an earlier run's record, not a new run */
    r->has_timings = true;
    submitted = job->req.has_submitted_at ? job->req.submitted_at_ms
                                          : job->msg_ts_ms;
    r->timings.queue_wait_ms =
        submitted > 0 && job->t_begin_wall > submitted
            ? job->t_begin_wall - submitted
            : 0;
    r->timings.state_load_ms = job->state_load_ms;
    r->timings.run_ms = job->run_ms;
    r->timings.state_save_ms = job->state_save_ms;

    job->d_result.is_dlq = false;
    job->d_dlq.is_dlq = true;
    if (r->execution_id[0] && r->session_id[0]) {
        if (!(job->result_json = rp_publish_result_json(r, job->msg_cap))) {
            /* Out of memory: try again when the timer fires. */
            job->d_result.failed = true;
            rp_publish_retry_later(w, job);
        } else {
            rp_publish_produce(w, job, &job->d_result);
        }
    }
    if (job->rejected)
        rp_publish_produce(w, job, &job->d_dlq);
    rp_log(job->rejected || job->err_code[0] ? RP_LOG_WARN : RP_LOG_INFO,
           "execution_result", rp_job_eid(job), rp_job_sid(job),
           "status=%s%s%s%s reused=%d run_ms=%lld", rp_status_str(r->status),
           r->error_code ? " error=" : "", r->error_code ? r->error_code : "",
           job->rejected ? " (sent to DLQ)" : "", job->reused,
           (long long)job->run_ms);
    if (rp_publish_settled(job))
        rp_job_end(w, job, true); /* nothing to publish (unreadable ids) */
    else
        rp_publish_eos_step(w, job);
}

void rp_publish_retry(rp_worker_t *w, rp_job_t *job)
{
    if (w->eos && !rp_job_current(w, job)) {
        /* Never publish for a partition we lost; what it has queued goes
         * with the transaction's abort. */
        if (!job->in_txn)
            rp_job_end(w, job, false);
        return;
    }
    if (job->d_result.failed || job->d_dlq.failed)
        rp_wmetrics_publish_retry(w);
    if (job->d_result.failed) {
        if (!job->result_json)
            job->result_json =
                rp_publish_result_json(&job->result, job->msg_cap);
        if (job->result_json)
            rp_publish_produce(w, job, &job->d_result);
        else
            rp_publish_retry_later(w, job); /* still out of memory */
    }
    if (job->d_dlq.failed)
        rp_publish_produce(w, job, &job->d_dlq);
    rp_publish_eos_step(w, job);
}

void rp_publish_on_delivery(rp_worker_t *w, rp_delivery_t *d,
                            rd_kafka_resp_err_t err)
{
    rp_job_t *job = d->job;

    if (w->eos) {
        /* The commit decides; a report only says a result was too large
         * (cut it smaller for the next transaction) or the producer is
         * dead. Purged messages of an aborted transaction are expected. */
        if (err && err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
            err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
            rp_publish_failed(w, job, err);
            rp_log(RP_LOG_WARN, "publish_failed", rp_job_eid(job),
                   rp_job_sid(job), "%s delivery failed: %s",
                   d->is_dlq ? "DLQ" : "result", rd_kafka_err2str(err));
        }
        return;
    }
    d->pending = false;
    if (err) {
        /* Keep the result; retry only the publish (never re-run). */
        d->failed = true;
        rp_publish_failed(w, job, err);
        rp_publish_retry_later(w, job);
        rp_log(RP_LOG_WARN, "publish_failed", rp_job_eid(job), rp_job_sid(job),
               "%s delivery failed: %s; retrying", d->is_dlq ? "DLQ" : "result",
               rd_kafka_err2str(err));
        return;
    }
    if (rp_publish_settled(job))
        rp_job_end(w, job, true);
}

void rp_publish_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque)
{
    (void)rk;
    if (m->_private)
        rp_publish_on_delivery(opaque, m->_private, m->err);
}
