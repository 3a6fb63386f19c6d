#include "rp_worker.h"
#include "rp_iopool.h"
#include "rp_kafka.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_msg.h"
#include "rp_offsets.h"
#include "rp_sched.h"
#include "rp_state.h"
#include "rp_time.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>


#define RP_WORKER_COMMIT_INTERVAL_MS 1000
#define RP_WORKER_TICK_MS 1000          /* deadline and commit checks */
#define RP_WORKER_FLUSH_MS 10000        /* producer flush at shutdown */
#define RP_WORKER_PUBLISH_RETRY_MS 1000 /* after a failed delivery */
#define RP_WORKER_POLL_BATCH 1000       /* events served per wake-up */
#define RP_WORKER_RESUME_PCT 75         /* resume below this % of max */
#define RP_WORKER_ABANDON_WAIT_MS 15000 /* after drain timeout, for cancels */

/* A published result must fit the results topic's message size limit
 * (librdkafka's and Kafka's default message.max.bytes is about 1 MB) with
 * room for headers; a bigger one would be refused forever. */
#define RP_WORKER_RESULT_BYTES_DEFAULT (900 * 1024)
#define RP_WORKER_RESULT_BYTES_MIN (16 * 1024)
/* Room left in a message for the key and runpool's headers. */
#define RP_WORKER_MSG_HEADROOM (16 * 1024)

/* Inbox event kinds. */
enum { RP_EV_LOADED = 1, RP_EV_RUN_DONE, RP_EV_FINISHED };

typedef enum rp_job_stage {
    RP_JOB_QUEUED,
    RP_JOB_LOADING,
    RP_JOB_RUNNING,
    RP_JOB_FINISHING,
    RP_JOB_PUBLISHING,
} rp_job_stage_t;

typedef struct rp_job rp_job_t;

/* One produced message of a job, and what it carries for a retry. */
typedef struct rp_delivery {
    rp_job_t *job;
    bool pending;
    bool failed;
    bool is_dlq;
} rp_delivery_t;

struct rp_job {
    rp_inbox_item_t item; /* first: the inbox hands it back as this */
    rp_job_t *prev, *next; /* all jobs of the worker */
    rp_job_t *ready_next;  /* in the worker's ready queue (--max-running) */
    rp_worker_t *w;

    /* Where it came from. */
    int32_t partition;
    int64_t offset;
    uint64_t epoch; /* the partition's assignment epoch when consumed */
    char *key;
    size_t keylen;
    int64_t msg_ts_ms; /* Kafka timestamp, wall ms */

    /* Bad input keeps the original message for the DLQ. */
    bool rejected;
    char reject_code[32];
    char reject_msg[RP_ERRMSG_MAX];
    char *payload;
    size_t payload_len;
    rd_kafka_headers_t *headers;

    rp_request_t req;
    rp_job_stage_t stage;
    bool revoked; /* abandoned: partition lost or worker stopping */

    /* Filled by the I/O steps. */
    char err_code[48]; /* non-empty: publish an "error" result */
    char err_msg[RP_ERRMSG_MAX];
    rp_session_t session;
    bool session_found;
    uint64_t session_version;
    rp_result_t result;
    bool have_result;
    bool reused;

    /* Backend. */
    rp_backend_run_t *run;
    rp_backend_done_t done;
    int64_t deadline_ms; /* backstop, mono */
    bool backstop_fired;
    /* The backend stopped the run at its timeout and the executor left no
     * record: publish "timed_out" and leave the session state as it was. */
    bool backend_timed_out;

    /* Timing, mono ms; begin is also recorded as wall ms. */
    int64_t t_begin, t_begin_wall, t_loaded, t_run_done, t_saved;
    int64_t state_load_ms, state_save_ms, run_ms;

    char *result_json; /* published result, kept for publish retries */
    size_t msg_cap;    /* size cap for this job's messages; halves when a
                          broker refuses one as too large */
    rp_delivery_t d_result, d_dlq;
    int64_t retry_at_ms; /* failed delivery: re-produce at this time */
};

struct rp_worker {
    rp_worker_conf_t conf;
    char name[RP_WORKER_NAME_MAX];
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *cq; /* consumer queue (io events enabled) */
    rd_kafka_queue_t *pq; /* producer main queue */
    rp_state_t *state;
    rp_backend_t *backend;
    rp_iopool_t *io;
    rp_inbox_t *inbox;
    rp_sched_t *sched;
    rp_offsets_t *offsets;
    int wake_fd;
    int sig_fd;

    rp_job_t *jobs; /* every live job */
    size_t inflight;
    size_t running; /* jobs past QUEUED */
    /* Session heads waiting for running < --max-running, oldest first. */
    rp_job_t *ready_head, *ready_tail;
    bool paused;         /* every partition, at the in-flight limit */
    bool reapply_pause;  /* the assignment changed: apply pauses again */
    bool window_check;   /* a partition's window crossed its bound */

    /* Per partition: assignment epoch, last committed offset, and whether
     * it is paused for its offset window (--max-window). */
    uint64_t *epoch;
    int64_t *committed;
    bool *win_paused;
    int32_t npart;

    size_t msg_max; /* the producer's message.max.bytes */

    bool draining;
    int64_t drain_deadline;
    int64_t next_commit;
    bool fatal;
    char fatal_msg[512];
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static rp_err_t rp_worker_grow_parts(rp_worker_t *w, int32_t p)
{
    uint64_t *e;
    int64_t *c;
    bool *wp;
    int32_t n;

    if (p < w->npart)
        return RP_OK;
    if (p >= RP_OFFSETS_PARTITIONS_MAX)
        return RP_ERR_INVALID;
    n = p + 1 > w->npart * 2 ? p + 1 : w->npart * 2;
    if (!(e = realloc(w->epoch, (size_t)n * sizeof(*e))))
        return RP_ERR_NOMEM;
    w->epoch = e;
    if (!(c = realloc(w->committed, (size_t)n * sizeof(*c))))
        return RP_ERR_NOMEM;
    w->committed = c;
    if (!(wp = realloc(w->win_paused, (size_t)n * sizeof(*wp))))
        return RP_ERR_NOMEM;
    w->win_paused = wp;
    for (int32_t i = w->npart; i < n; i++) {
        w->epoch[i] = 0;
        w->committed[i] = -1;
        w->win_paused[i] = false;
    }
    w->npart = n;
    return RP_OK;
}

/* Stop the worker: what it has not finished is re-delivered elsewhere. */
static void rp_worker_set_fatal(rp_worker_t *w, const char *what)
{
    if (!w->fatal)
        snprintf(w->fatal_msg, sizeof(w->fatal_msg), "%s", what);
    w->fatal = true;
}

static const char *rp_job_eid(const rp_job_t *job)
{
    return job->req.execution_id;
}

static const char *rp_job_sid(const rp_job_t *job)
{
    return job->req.session_id;
}

static void rp_job_set_error(rp_job_t *job, const char *code, const char *fmt,
                             ...) __attribute__((format(printf, 3, 4)));

static void rp_job_set_error(rp_job_t *job, const char *code, const char *fmt,
                             ...)
{
    va_list ap;

    snprintf(job->err_code, sizeof(job->err_code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(job->err_msg, sizeof(job->err_msg), fmt, ap);
    va_end(ap);
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

static void rp_worker_unlink_job(rp_worker_t *w, rp_job_t *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        w->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    w->inflight--;
    if (job->stage != RP_JOB_QUEUED)
        w->running--;
}

static bool rp_job_current(const rp_worker_t *w, const rp_job_t *job)
{
    return !job->revoked && job->partition < w->npart &&
           w->epoch[job->partition] == job->epoch;
}

/* ------------------------------------------------------------------ */
/* Job lifecycle                                                       */

static void rp_job_begin(rp_worker_t *w, rp_job_t *job);

/* Is partition p's offset window at its bound? Pauses at --max-window,
 * resumes below RESUME_PCT of it. */
static bool rp_worker_window_full(const rp_worker_t *w, int32_t p)
{
    size_t win = rp_offsets_window(w->offsets, p);
    size_t max = (size_t)w->conf.max_window;

    return w->win_paused[p] ? win * 100 >= max * RP_WORKER_RESUME_PCT
                            : win >= max;
}

/* Start queued session heads while there is a run slot. */
static void rp_worker_admit_ready(rp_worker_t *w)
{
    while (w->ready_head && !w->draining &&
           w->running < (size_t)w->conf.max_running) {
        rp_job_t *job = w->ready_head;

        w->ready_head = job->ready_next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        job->ready_next = NULL;
        rp_job_begin(w, job);
    }
}

/* It is job's turn in its session: start it, or queue it for a run slot
 * behind the heads already waiting (first come, first served, so a session
 * with many requests cannot keep a slot to itself). Rejected requests run
 * nothing and never wait. */
static void rp_job_admit(rp_worker_t *w, rp_job_t *job)
{
    if (job->rejected) {
        rp_job_begin(w, job);
        return;
    }
    job->ready_next = NULL;
    if (w->ready_tail)
        w->ready_tail->ready_next = job;
    else
        w->ready_head = job;
    w->ready_tail = job;
    rp_worker_admit_ready(w);
}

/* Take the waiting heads that match (NULL opaque: all) out of the ready
 * queue and end them unstarted: a revoked partition's, or all on drain.
 * Their requests stay unfinished in the tracker and are re-delivered. */
static void rp_job_end(rp_worker_t *w, rp_job_t *job, bool finished);
static int rp_job_match_partition(void *jobp, void *opaque);

static size_t rp_worker_drop_ready(rp_worker_t *w, void *parts)
{
    rp_job_t **link = &w->ready_head, *drop = NULL, *job, *nx;
    size_t n = 0;

    /* Unlink every match first: ending a job admits others from the queue. */
    w->ready_tail = NULL;
    while ((job = *link)) {
        if (rp_job_match_partition(job, parts)) {
            *link = job->ready_next;
            job->ready_next = drop;
            drop = job;
            n++;
        } else {
            w->ready_tail = job;
            link = &job->ready_next;
        }
    }
    for (job = drop; job; job = nx) {
        nx = job->ready_next;
        job->ready_next = NULL;
        rp_job_end(w, job, false);
    }
    return n;
}

/* The job is over (published, or abandoned). Frees it and lets the next
 * job of its session, if any, take its turn. */
static void rp_job_end(rp_worker_t *w, rp_job_t *job, bool finished)
{
    rp_job_t *next;

    if (finished && rp_job_current(w, job)) {
        if (rp_offsets_done(w->offsets, job->partition, job->offset) != RP_OK)
            rp_log(RP_LOG_WARN, "offset_untracked", rp_job_eid(job),
                   rp_job_sid(job), "partition %d offset %lld was not tracked",
                   (int)job->partition, (long long)job->offset);
        if (w->win_paused[job->partition] &&
            !rp_worker_window_full(w, job->partition))
            w->window_check = true; /* flow control resumes it */
    }
    next = rp_sched_done(w->sched, job->key, job->keylen);
    if (job->run)
        rp_backend_release(w->backend, job->run);
    rp_worker_unlink_job(w, job);
    rp_job_free(job);
    if (next)
        rp_job_admit(w, next);
    else
        rp_worker_admit_ready(w);
}

static void rp_worker_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                            void *opaque);

/* A produce failed. Most failures pass (the retry goes through later);
 * two never do: a fatal producer error (the worker stops, its work is
 * re-delivered) and a message too large (the next try is cut smaller). */
static void rp_job_publish_failed(rp_worker_t *w, rp_job_t *job,
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
 * failed and retried by the tick. */
static void rp_job_produce(rp_worker_t *w, rp_job_t *job, rp_delivery_t *d)
{
    rd_kafka_resp_err_t kerr;
    rd_kafka_headers_t *h;
    const char *status;
    size_t dlq_key, dlq_len;

    d->job = job;
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
        rp_job_publish_failed(w, job, kerr);
        d->pending = false;
        d->failed = true;
        job->retry_at_ms = rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS;
    }
}

/* Cut n bytes off the end of one output stream, keeping UTF-8 whole. */
static void rp_result_cut(char *data, size_t *len, bool *truncated, size_t n)
{
    size_t keep = n >= *len ? 0 : *len - n;

    *len = rp_utf8_trim(data, keep);
    *truncated = true;
}

/* Serialise r for the results topic, within max bytes: when too big, the
 * larger output is truncated further (and flagged) until it fits. The
 * executor's record in the state store keeps the full output. */
static char *rp_result_json_fitting(rp_result_t *r, size_t max)
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
            rp_result_cut(r->stdout_data, &r->stdout_len, &r->stdout_truncated,
                          cut);
        else
            rp_result_cut(r->stderr_data, &r->stderr_len, &r->stderr_truncated,
                          cut);
        json = rp_result_to_json(r, false);
    }
    return json;
}

/* Build the published result from what the job knows and produce it (and
 * the DLQ copy for bad input). */
static void rp_job_publish(rp_worker_t *w, rp_job_t *job)
{
    rp_result_t *r = &job->result;
    int64_t now_wall = rp_time_wall_ms();
    int64_t submitted;

    job->stage = RP_JOB_PUBLISHING;
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
        if (!(job->result_json = rp_result_json_fitting(r, job->msg_cap))) {
            /* Out of memory: try again on the next tick. */
            job->d_result.failed = true;
            job->retry_at_ms = rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS;
        } else {
            rp_job_produce(w, job, &job->d_result);
        }
    }
    if (job->rejected)
        rp_job_produce(w, job, &job->d_dlq);
    rp_log(job->rejected || job->err_code[0] ? RP_LOG_WARN : RP_LOG_INFO,
           "execution_result", rp_job_eid(job), rp_job_sid(job),
           "status=%s%s%s%s reused=%d run_ms=%lld", rp_status_str(r->status),
           r->error_code ? " error=" : "", r->error_code ? r->error_code : "",
           job->rejected ? " (sent to DLQ)" : "", job->reused,
           (long long)job->run_ms);
    if (!job->d_result.pending && !job->d_dlq.pending && !job->d_result.failed &&
        !job->d_dlq.failed)
        rp_job_end(w, job, true); /* nothing to publish (unreadable ids) */
}

static void rp_worker_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                            void *opaque)
{
    rp_delivery_t *d = m->_private;
    rp_worker_t *w = opaque;
    rp_job_t *job;

    (void)rk;
    if (!d)
        return;
    job = d->job;
    d->pending = false;
    if (m->err) {
        /* Keep the result; retry only the publish (never re-run). */
        d->failed = true;
        rp_job_publish_failed(w, job, m->err);
        job->retry_at_ms = rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS;
        rp_log(RP_LOG_WARN, "publish_failed", rp_job_eid(job), rp_job_sid(job),
               "%s delivery failed: %s; retrying", d->is_dlq ? "DLQ" : "result",
               rd_kafka_err2str(m->err));
        return;
    }
    if (job->d_result.pending || job->d_dlq.pending || job->d_result.failed ||
        job->d_dlq.failed)
        return;
    rp_job_end(w, job, true);
}

/* ---- I/O steps (run on pool threads; touch only their job) ---- */

static void rp_io_load(void *arg)
{
    rp_job_t *job = arg;
    rp_worker_t *w = job->w;
    char key[RP_STATE_KEY_MAX], es[512];
    rp_buf_t buf;
    rp_err_t err;
    int64_t t0 = rp_time_mono_ms();

    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    err = rp_state_get(w->state, key, &buf, &job->session_version, es,
                       sizeof(es));
    if (err == RP_OK) {
        job->session_found = true;
        if (rp_session_parse(buf.data, buf.len, &job->session, es,
                             sizeof(es)) != RP_OK) {
            rp_job_set_error(job, "state_corrupt",
                             "session state %s is unreadable: %s", key, es);
            goto out;
        }
    } else if (err != RP_ERR_NOT_FOUND) {
        rp_job_set_error(job, "state_load_failed", "loading %s: %s", key, es);
        goto out;
    }
    if (job->req.op != RP_OP_EXEC)
        goto out;
    /* A finished execution is never run again: reuse its record. */
    rp_buf_reset(&buf);
    buf.max = RP_RESULT_MAX;
    rp_layout_result_key(job->req.execution_id, key, sizeof(key));
    err = rp_state_get(w->state, key, &buf, NULL, es, sizeof(es));
    if (err == RP_OK) {
        if (rp_result_parse(buf.data, buf.len, &job->result, es, sizeof(es)) !=
            RP_OK) {
            rp_job_set_error(job, "result_corrupt",
                             "existing record %s is unreadable: %s", key, es);
            goto out;
        }
        if (strcmp(job->result.session_id, job->req.session_id) != 0) {
            /* Never hand one session's output or env to another. */
            rp_job_set_error(job, "execution_id_conflict",
                             "execution_id %s already ran in another session",
                             job->req.execution_id);
            rp_result_clear(&job->result);
            memset(&job->result, 0, sizeof(job->result));
            goto out;
        }
        job->have_result = true;
        job->reused = true;
    } else if (err != RP_ERR_NOT_FOUND) {
        rp_job_set_error(job, "state_load_failed", "loading %s: %s", key, es);
    }
out:
    job->state_load_ms = rp_time_mono_ms() - t0;
    rp_buf_free(&buf);
    rp_inbox_post(w->inbox, &job->item, RP_EV_LOADED);
}

/* Should the record's cwd/env become the session's state? */
static bool rp_io_should_apply(const rp_job_t *job)
{
    if (!job->result.has_env)
        return false; /* the executor failed before running anything */
    if (!job->session_found)
        return true;
    if (!strcmp(job->session.last_execution_id, job->req.execution_id))
        return false; /* already applied before a crash or rebalance */
    /* A reused record older than the state: the session moved on since
     * (a request re-sent with an old execution_id); never roll it back. */
    if (job->reused && job->result.finished_at_ms &&
        job->result.finished_at_ms < job->session.updated_at_ms)
        return false;
    return true;
}

/* After a lost compare-and-swap: did the writer that won save this same
 * execution (an earlier owner of the partition, finishing as it was
 * revoked)? Then the state is right and there is no conflict. */
static bool rp_io_saved_by_other(rp_worker_t *w, const rp_job_t *job,
                                 const char *key)
{
    rp_session_t now;
    rp_buf_t buf;
    char es[256];
    bool same = false;

    memset(&now, 0, sizeof(now));
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    if (rp_state_get(w->state, key, &buf, NULL, es, sizeof(es)) == RP_OK &&
        rp_session_parse(buf.data, buf.len, &now, es, sizeof(es)) == RP_OK)
        same = !strcmp(now.last_execution_id, job->req.execution_id);
    rp_session_clear(&now);
    rp_buf_free(&buf);
    return same;
}

static void rp_io_finish(void *arg)
{
    rp_job_t *job = arg;
    rp_worker_t *w = job->w;
    rp_session_t *s = &job->session;
    char key[RP_STATE_KEY_MAX], es[512], *doc = NULL;
    rp_buf_t buf;
    rp_err_t err;
    int64_t t0 = rp_time_mono_ms(), now;

    rp_buf_init(&buf, RP_RESULT_MAX);
    if (job->req.op == RP_OP_CLOSE_SESSION) {
        rp_layout_session_key(job->req.session_id, key, sizeof(key));
        err = rp_state_delete(w->state, key, RP_STATE_ANY, es, sizeof(es));
        if (err && err != RP_ERR_NOT_FOUND)
            rp_job_set_error(job, "state_save_failed", "deleting %s: %s", key,
                             es);
        goto out;
    }
    if (!job->have_result) {
        rp_layout_result_key(job->req.execution_id, key, sizeof(key));
        err = rp_state_get(w->state, key, &buf, NULL, es, sizeof(es));
        if (err == RP_ERR_NOT_FOUND && job->done.err == RP_ERR_TIMEOUT) {
            job->backend_timed_out = true;
            goto out;
        } else if (err == RP_ERR_NOT_FOUND) {
            rp_job_set_error(job,
                             job->backstop_fired ? "executor_unresponsive"
                             : job->done.err     ? "backend_failed"
                                                 : "no_result",
                             "the executor wrote no result (%s)",
                             job->done.detail);
            goto out;
        } else if (err) {
            rp_job_set_error(job, "result_read_failed", "reading %s: %s", key,
                             es);
            goto out;
        }
        if (rp_result_parse(buf.data, buf.len, &job->result, es, sizeof(es))) {
            rp_job_set_error(job, "result_corrupt", "record %s: %s", key, es);
            goto out;
        }
        job->have_result = true;
    }
    if (!rp_io_should_apply(job))
        goto out;

    now = rp_time_wall_ms();
    if (!job->session_found) {
        memcpy(s->session_id, job->req.session_id, sizeof(s->session_id));
        s->created_at_ms = now;
    }
    free(s->cwd);
    s->cwd = job->result.cwd ? strdup(job->result.cwd) : NULL;
    rp_env_clear(&s->env);
    if (rp_env_copy(&s->env, &job->result.env) != RP_OK ||
        (job->result.cwd && !s->cwd)) {
        rp_job_set_error(job, "state_save_failed", "out of memory");
        goto out;
    }
    s->updated_at_ms = now;
    s->execution_count++;
    memcpy(s->last_execution_id, job->req.execution_id,
           sizeof(s->last_execution_id));
    if (!(doc = rp_session_to_json(s))) {
        rp_job_set_error(job, "state_save_failed", "out of memory");
        goto out;
    }
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    err = rp_state_put(w->state, key, doc, strlen(doc),
                       job->session_found ? job->session_version : 0, NULL, es,
                       sizeof(es));
    if ((err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS) &&
        rp_io_saved_by_other(w, job, key)) {
        err = RP_OK; /* a previous owner saved this very execution */
    }
    if (err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS)
        rp_job_set_error(job, "state_conflict",
                         "session state changed while the command ran (another "
                         "writer); the new cwd/env were not saved: %s", es);
    else if (err)
        rp_job_set_error(job, "state_save_failed", "saving %s: %s", key, es);
out:
    job->state_save_ms = rp_time_mono_ms() - t0;
    free(doc);
    rp_buf_free(&buf);
    rp_inbox_post(w->inbox, &job->item, RP_EV_FINISHED);
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

static void rp_backend_done_cb_fn(void *jobp, const rp_backend_done_t *done,
                                  void *opaque)
{
    rp_job_t *job = jobp;

    (void)opaque;
    job->done = *done;
    rp_inbox_post(job->w->inbox, &job->item, RP_EV_RUN_DONE);
}

/* Start the command through the backend. */
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
    job->stage = RP_JOB_RUNNING;
    job->t_loaded = rp_time_mono_ms();
    job->deadline_ms = job->t_loaded +
                       ((int64_t)job->req.timeout_s + w->conf.timeout_grace_s) *
                           1000;
    if (rp_backend_start(w->backend, &spec, job, &job->run, es, sizeof(es))) {
        rp_job_set_error(job, "backend_failed", "%s", es);
        rp_job_publish(w, job);
    }
}

static void rp_job_begin(rp_worker_t *w, rp_job_t *job)
{
    job->stage = RP_JOB_LOADING;
    w->running++;
    job->t_begin = rp_time_mono_ms();
    job->t_begin_wall = rp_time_wall_ms();
    if (job->rejected) {
        rp_job_publish(w, job);
        return;
    }
    rp_job_submit_io(w, job, rp_io_load);
}

static void rp_worker_on_loaded(rp_worker_t *w, rp_job_t *job)
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
        rp_job_publish(w, job);
    } else if (job->req.op == RP_OP_CLOSE_SESSION || job->reused) {
        job->stage = RP_JOB_FINISHING;
        rp_job_submit_io(w, job, rp_io_finish);
    } else {
        rp_job_run(w, job);
    }
}

static void rp_worker_on_run_done(rp_worker_t *w, rp_job_t *job)
{
    job->t_run_done = rp_time_mono_ms();
    job->run_ms = job->t_run_done - job->t_loaded;
    if (!rp_job_current(w, job)) {
        rp_log(RP_LOG_INFO, "execution_abandoned", rp_job_eid(job),
               rp_job_sid(job), "partition %d revoked or worker stopping; "
               "the next owner runs it", (int)job->partition);
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
    job->stage = RP_JOB_FINISHING;
    rp_job_submit_io(w, job, rp_io_finish);
}

static void rp_worker_on_finished(rp_worker_t *w, rp_job_t *job)
{
    if (!rp_job_current(w, job)) {
        rp_job_end(w, job, false);
        return;
    }
    rp_job_publish(w, job);
}

static void rp_worker_serve_inbox(rp_worker_t *w)
{
    rp_inbox_item_t *it = rp_inbox_take(w->inbox), *next;

    for (; it; it = next) {
        rp_job_t *job = (rp_job_t *)it; /* item is the first member */

        next = it->next;
        switch (it->kind) {
        case RP_EV_LOADED:
            rp_worker_on_loaded(w, job);
            break;
        case RP_EV_RUN_DONE:
            rp_worker_on_run_done(w, job);
            break;
        case RP_EV_FINISHED:
            rp_worker_on_finished(w, job);
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Consuming                                                           */

static void rp_job_reject(rp_job_t *job, const char *code, const char *msg)
{
    job->rejected = true;
    snprintf(job->reject_code, sizeof(job->reject_code), "%s", code);
    snprintf(job->reject_msg, sizeof(job->reject_msg), "%s", msg);
}

static void rp_worker_on_message(rp_worker_t *w, rd_kafka_message_t *m)
{
    rp_job_t *job = NULL;
    char es[RP_ERRMSG_MAX];
    rp_err_t err;
    int runnable = 0;
    rd_kafka_timestamp_type_t tstype;

    if (rp_worker_grow_parts(w, m->partition) != RP_OK ||
        rp_offsets_track(w->offsets, m->partition, m->offset) != RP_OK) {
        /* Skipping it would let a later commit pass it: stop instead, so
         * nothing at or after it is consumed here and it is re-delivered. */
        rp_log(RP_LOG_ERROR, "offset_track_failed", NULL, NULL,
               "cannot track partition %d offset %lld; stopping",
               (int)m->partition, (long long)m->offset);
        rp_worker_set_fatal(w, "offset tracking failed");
        return;
    }
    if (!w->win_paused[m->partition] && rp_worker_window_full(w, m->partition))
        w->window_check = true; /* flow control pauses it */
    if (w->draining)
        return; /* tracked as unfinished: never committed, re-delivered */
    if (!(job = calloc(1, sizeof(*job))))
        goto oom;
    job->w = w;
    job->partition = m->partition;
    job->offset = m->offset;
    job->epoch = w->epoch[m->partition];
    job->msg_ts_ms = rd_kafka_message_timestamp(m, &tstype);
    job->keylen = m->key ? m->key_len : 0;
    if (job->keylen > RP_SCHED_KEY_MAX) {
        /* Not a session id in any case; scheduled under the empty key so
         * it still reaches the DLQ (without its key). */
        job->keylen = 0;
        rp_job_reject(job, "key_too_large", "the Kafka message key is too large");
    }
    if (!(job->key = malloc(job->keylen + 1)))
        goto oom;
    if (job->keylen)
        memcpy(job->key, m->key, job->keylen);
    job->key[job->keylen] = '\0';

    err = rp_request_parse(m->payload ? m->payload : "", m->len, &job->req, es,
                           sizeof(es));
    if (job->rejected) {
        /* key_too_large, decided above */
    } else if (err) {
        rp_job_reject(job, err == RP_ERR_TOO_LARGE ? "too_large"
                                                   : "invalid_request", es);
    } else if (job->keylen != strlen(job->req.session_id) ||
               memcmp(job->key, job->req.session_id, job->keylen) != 0) {
        /* Ordering per session rests on key == session_id. */
        rp_job_reject(job, "key_mismatch",
                      "the Kafka message key must equal session_id");
    }
    if (job->rejected) {
        job->payload_len = m->len;
        if (!(job->payload = malloc(m->len + 1)))
            goto oom;
        if (m->len)
            memcpy(job->payload, m->payload, m->len);
        rd_kafka_message_detach_headers(m, &job->headers);
        rp_log(RP_LOG_WARN, "request_rejected", job->req.execution_id,
               job->req.session_id, "partition %d offset %lld: %s: %s",
               (int)m->partition, (long long)m->offset, job->reject_code,
               job->reject_msg);
    }
    job->stage = RP_JOB_QUEUED;
    job->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = job;
    w->jobs = job;
    w->inflight++;
    if (rp_sched_push(w->sched, job->key, job->keylen, job, &runnable)) {
        rp_worker_unlink_job(w, job);
        goto oom;
    }
    if (runnable)
        rp_job_admit(w, job);
    return;
oom:
    /* Left unfinished in the tracker: it is re-delivered, never lost. */
    rp_job_free(job);
    w->fatal = true;
    snprintf(w->fatal_msg, sizeof(w->fatal_msg), "out of memory");
}

static int rp_job_match_partition(void *jobp, void *opaque)
{
    rp_job_t *job = jobp;
    const rd_kafka_topic_partition_list_t *parts = opaque;

    if (!parts)
        return 1;
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == job->partition)
            return 1;
    return 0;
}

static void rp_job_dropped(void *jobp, void *opaque)
{
    rp_job_t *job = jobp;
    rp_worker_t *w = job->w;

    (void)opaque;
    rp_worker_unlink_job(w, job);
    rp_job_free(job);
}

/* Commit what is finished for the given partitions (all assigned when
 * NULL). sync: wait for the broker (before giving partitions up). */
static void rp_worker_commit(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *only,
                             bool sync)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(16);
    rd_kafka_resp_err_t kerr;

    for (int32_t p = 0; p < w->npart; p++) {
        int64_t off = rp_offsets_committable(w->offsets, p);
        bool wanted = !only;

        for (int i = 0; only && i < only->cnt; i++)
            if (only->elems[i].partition == p)
                wanted = true;
        if (!wanted || off < 0 || off <= w->committed[p])
            continue;
        rd_kafka_topic_partition_list_add(list, w->conf.requests_topic, p)
            ->offset = off;
        w->committed[p] = off;
    }
    if (list->cnt > 0) {
        kerr = rd_kafka_commit(w->consumer, list, sync ? 0 : 1);
        if (kerr && kerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            rp_log(RP_LOG_WARN, "commit_failed", NULL, NULL, "commit: %s",
                   rd_kafka_err2str(kerr));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Partitions are going away: commit what is done, abandon the rest. */
static void rp_worker_revoke(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *parts)
{
    size_t dropped;

    rp_worker_commit(w, parts, true);
    dropped = rp_sched_drop_queued(w->sched, rp_job_match_partition,
                                   rp_job_dropped, (void *)parts);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;

        if (p < w->npart) {
            w->epoch[p]++;
            w->committed[p] = -1;
            w->win_paused[p] = false;
        }
        rp_offsets_reset(w->offsets, p);
    }
    dropped += rp_worker_drop_ready(w, (void *)parts);
    for (rp_job_t *job = w->jobs; job; job = job->next) {
        if (!rp_job_match_partition(job, (void *)parts) || job->revoked)
            continue;
        job->revoked = true;
        /* A job already publishing finishes its publish; the new owner
         * will reuse the record and publish the same result again. */
        if (job->stage == RP_JOB_RUNNING && job->run)
            rp_backend_detach(w->backend, job->run);
    }
    rp_log(RP_LOG_INFO, "partitions_revoked", NULL, NULL,
           "%d partition(s) revoked; %zu queued request(s) left for the next "
           "owner",
           parts->cnt, dropped);
}

static void rp_worker_assign(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;

        if (rp_worker_grow_parts(w, p) == RP_OK) {
            w->epoch[p]++;
            w->committed[p] = -1;
            w->win_paused[p] = false;
        }
        rp_offsets_reset(w->offsets, p);
    }
    w->reapply_pause = true;
    rp_log(RP_LOG_INFO, "partitions_assigned", NULL, NULL,
           "%d partition(s) assigned", parts->cnt);
}

static void rp_worker_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t *parts,
                                   void *opaque)
{
    rp_worker_t *w = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *kerr = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rp_worker_assign(w, parts);
        if (coop)
            kerr = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        rp_worker_revoke(w, parts);
        if (coop)
            kerr = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (kerr) {
        rp_log(RP_LOG_ERROR, "rebalance_failed", NULL, NULL, "%s",
               rd_kafka_error_string(kerr));
        rd_kafka_error_destroy(kerr);
    }
}

/* Say which execution holds partition p's window open. */
static void rp_worker_log_window(rp_worker_t *w, int32_t p, bool paused)
{
    int64_t low = rp_offsets_committable(w->offsets, p);
    const rp_job_t *oldest = NULL;

    if (!paused) {
        rp_log(RP_LOG_INFO, "partition_resumed", NULL, NULL,
               "partition %d: offset window below %d%% of --max-window %d",
               (int)p, RP_WORKER_RESUME_PCT, w->conf.max_window);
        return;
    }
    for (const rp_job_t *job = w->jobs; job && !oldest; job = job->next)
        if (job->partition == p && job->offset == low && !job->revoked)
            oldest = job;
    rp_log(RP_LOG_WARN, "partition_paused", oldest ? rp_job_eid(oldest) : NULL,
           oldest ? rp_job_sid(oldest) : NULL,
           "partition %d paused: %zu offsets since the oldest unfinished one "
           "(offset %lld) reach --max-window %d; it resumes as that one "
           "finishes",
           (int)p, rp_offsets_window(w->offsets, p), (long long)low,
           w->conf.max_window);
}

/* Pause every assigned partition at the in-flight limit, and any partition
 * whose offset window reached --max-window; resume each below RESUME_PCT
 * of its limit. librdkafka keeps fetch positions, so nothing is lost. */
static void rp_worker_flow_control(rp_worker_t *w)
{
    bool want = w->draining ||
                w->inflight >= (size_t)w->conf.max_inflight ||
                (w->paused && w->inflight * 100 >=
                                  (size_t)w->conf.max_inflight *
                                      RP_WORKER_RESUME_PCT);
    rd_kafka_topic_partition_list_t *parts = NULL, *pause = NULL,
                                    *resume = NULL;

    if (want == w->paused && !w->reapply_pause && !w->window_check)
        return;
    if (rd_kafka_assignment(w->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    pause = rd_kafka_topic_partition_list_new(parts->cnt ? parts->cnt : 1);
    resume = rd_kafka_topic_partition_list_new(parts->cnt ? parts->cnt : 1);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        bool known = p >= 0 && p < w->npart;
        bool was = known && w->win_paused[p];
        bool full = known && rp_worker_window_full(w, p);

        if (known && full != was) {
            w->win_paused[p] = full;
            rp_worker_log_window(w, p, full);
        }
        if (want || full)
            rd_kafka_topic_partition_list_add(pause, parts->elems[i].topic, p);
        else if (w->paused || was || w->reapply_pause)
            rd_kafka_topic_partition_list_add(resume, parts->elems[i].topic,
                                              p);
    }
    if (pause->cnt)
        rd_kafka_pause_partitions(w->consumer, pause);
    if (resume->cnt)
        rd_kafka_resume_partitions(w->consumer, resume);
    if (want != w->paused)
        rp_log(RP_LOG_INFO, want ? "consumer_paused" : "consumer_resumed",
               NULL, NULL, "%zu request(s) in flight (limit %d)", w->inflight,
               w->conf.max_inflight);
    w->paused = want;
    w->reapply_pause = false;
    w->window_check = false;
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Serve up to a batch of consumer events; returns true if more may wait. */
static bool rp_worker_serve_consumer(rp_worker_t *w)
{
    for (int i = 0; i < RP_WORKER_POLL_BATCH && !w->fatal; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);

        if (!m)
            return false;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rp_log(RP_LOG_WARN, "consumer_error", NULL, NULL, "%s",
                       rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                w->fatal = true;
                snprintf(w->fatal_msg, sizeof(w->fatal_msg), "%s",
                         rd_kafka_message_errstr(m));
            }
        } else {
            rp_worker_on_message(w, m);
        }
        rd_kafka_message_destroy(m);
        rp_worker_flow_control(w);
    }
    return true;
}

/* Timers: execution backstops and publish retries. */
static void rp_worker_tick(rp_worker_t *w, int64_t now)
{
    for (rp_job_t *job = w->jobs; job; job = job->next) {
        if (job->stage == RP_JOB_RUNNING && !job->backstop_fired &&
            now >= job->deadline_ms && job->run) {
            job->backstop_fired = true;
            rp_log(RP_LOG_WARN, "execution_backstop", rp_job_eid(job),
                   rp_job_sid(job), "no completion %d s after its timeout; "
                   "cancelling", w->conf.timeout_grace_s);
            rp_backend_cancel(w->backend, job->run);
        }
        if (job->stage == RP_JOB_PUBLISHING && job->retry_at_ms &&
            now >= job->retry_at_ms) {
            job->retry_at_ms = 0;
            if (job->d_result.failed) {
                if (!job->result_json)
                    job->result_json =
                        rp_result_json_fitting(&job->result, job->msg_cap);
                if (job->result_json)
                    rp_job_produce(w, job, &job->d_result);
                else
                    job->retry_at_ms = now + RP_WORKER_PUBLISH_RETRY_MS;
            }
            if (job->d_dlq.failed)
                rp_job_produce(w, job, &job->d_dlq);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Setup and the loop                                                  */

static rp_err_t rp_worker_kafka(rp_worker_t *w, char *errstr, size_t es)
{
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    const rp_worker_conf_t *c = &w->conf;
    rd_kafka_topic_partition_list_t *topics = NULL;
    char kerr[512];
    rp_err_t err;
    uint64_t one = 1;

    if ((err = rp_kafka_set(cc, "bootstrap.servers", c->brokers, errstr, es)) ||
        (err = rp_kafka_set(cc, "group.id", c->group, errstr, es)) ||
        (err = rp_kafka_set(cc, "enable.auto.commit", "false", errstr, es)) ||
        (err = rp_kafka_set(cc, "enable.auto.offset.store", "false", errstr,
                            es)) ||
        (err = rp_kafka_set(cc, "auto.offset.reset", "earliest", errstr, es)) ||
        (err = rp_kafka_set(cc, "partition.assignment.strategy",
                            "cooperative-sticky", errstr, es)) ||
        (err = rp_kafka_unique_client_id(cc, "runpool-worker", errstr, es)) ||
        (err = rp_kafka_set_props(cc, c->kafka_props, c->n_kafka_props, errstr,
                                  es)))
        goto out;
    if ((err = rp_kafka_set(pc, "bootstrap.servers", c->brokers, errstr, es)) ||
        (err = rp_kafka_producer_defaults(pc, errstr, es)) ||
        (err = rp_kafka_unique_client_id(pc, "runpool-worker-p", errstr, es)) ||
        (err = rp_kafka_set_props(pc, c->kafka_props, c->n_kafka_props, errstr,
                                  es)))
        goto out;
    {
        /* Results and DLQ copies are sized to fit under this. */
        char v[32];
        size_t vlen = sizeof(v);

        if (rd_kafka_conf_get(pc, "message.max.bytes", v, &vlen) ==
            RD_KAFKA_CONF_OK)
            w->msg_max = (size_t)strtoull(v, NULL, 10);
        if (w->msg_max && c->result_max_bytes + RP_WORKER_MSG_HEADROOM >
                              w->msg_max) {
            err = rp_errf(errstr, es, RP_ERR_INVALID,
                          "--result-max-bytes %zu does not fit in the "
                          "producer's message.max.bytes %zu (leave %d bytes "
                          "for key and headers; raise it with -X "
                          "message.max.bytes=N and on the topic)",
                          c->result_max_bytes, w->msg_max,
                          RP_WORKER_MSG_HEADROOM);
            goto out;
        }
    }
    rp_kafka_log_via_rp(cc);
    rp_kafka_log_via_rp(pc);
    rd_kafka_conf_set_opaque(cc, w);
    rd_kafka_conf_set_rebalance_cb(cc, rp_worker_rebalance_cb);
    rd_kafka_conf_set_opaque(pc, w);
    rd_kafka_conf_set_dr_msg_cb(pc, rp_worker_dr_cb);

    if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, kerr,
                                     sizeof(kerr)))) {
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "consumer: %s", kerr);
        goto out;
    }
    cc = NULL;
    if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, kerr,
                                     sizeof(kerr)))) {
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "producer: %s", kerr);
        goto out;
    }
    pc = NULL;
    rd_kafka_poll_set_consumer(w->consumer);
    w->cq = rd_kafka_queue_get_consumer(w->consumer);
    w->pq = rd_kafka_queue_get_main(w->producer);
    /* Both queues write to the same eventfd when they become non-empty. */
    rd_kafka_queue_io_event_enable(w->cq, w->wake_fd, &one, sizeof(one));
    rd_kafka_queue_io_event_enable(w->pq, w->wake_fd, &one, sizeof(one));

    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->requests_topic,
                                      RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(w->consumer, topics)) {
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "cannot subscribe to %s",
                      c->requests_topic);
        goto out;
    }
out:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    return err;
}

rp_err_t rp_worker_new(const rp_worker_conf_t *conf, rp_worker_t **out,
                       char *errstr, size_t es)
{
    rp_worker_t *w;
    rp_worker_conf_t *c;
    sigset_t sigs;
    char host[128] = "host";
    rp_err_t err;

    *out = NULL;
    if (!(w = calloc(1, sizeof(*w))))
        return rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
    w->wake_fd = w->sig_fd = -1;
    w->conf = *conf;
    c = &w->conf;
    if (!c->group)
        c->group = "runpool-workers";
    if (!c->requests_topic)
        c->requests_topic = RP_TOPIC_REQUESTS_DEFAULT;
    if (!c->results_topic)
        c->results_topic = RP_TOPIC_RESULTS_DEFAULT;
    if (!c->dlq_topic)
        c->dlq_topic = RP_TOPIC_DLQ_DEFAULT;
    if (!c->backend)
        c->backend = "local";
    if (!c->max_inflight)
        c->max_inflight = 1024;
    if (!c->max_window)
        c->max_window = RP_WORKER_MAX_WINDOW_DEFAULT;
    if (!c->max_running)
        c->max_running = c->max_inflight;
    if (!c->drain_timeout_s)
        c->drain_timeout_s = 30;
    else if (c->drain_timeout_s == RP_WORKER_DRAIN_NONE)
        c->drain_timeout_s = 0; /* asked for explicitly: do not wait */
    if (!c->io_threads)
        c->io_threads = 8;
    if (!c->timeout_grace_s)
        c->timeout_grace_s = 60;
    if (!c->result_max_bytes)
        c->result_max_bytes = RP_WORKER_RESULT_BYTES_DEFAULT;
    if (c->result_max_bytes < RP_WORKER_RESULT_BYTES_MIN) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--result-max-bytes must be at least %d",
                      RP_WORKER_RESULT_BYTES_MIN);
        goto out;
    }
    if (!c->brokers || !*c->brokers) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "no brokers: set --brokers or RUNPOOL_BROKERS");
        goto out;
    }
    if (!c->state_url || !*c->state_url) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "no state store: set --state or RUNPOOL_STATE");
        goto out;
    }
    if (c->max_inflight < 1 || c->max_inflight > RP_WORKER_MAX_INFLIGHT_LIMIT) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--max-inflight must be 1..%d",
                      RP_WORKER_MAX_INFLIGHT_LIMIT);
        goto out;
    }
    if (c->max_running < 1 || c->max_running > RP_WORKER_MAX_INFLIGHT_LIMIT) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--max-running must be 1..%d",
                      RP_WORKER_MAX_INFLIGHT_LIMIT);
        goto out;
    }
    if (c->max_window < 1 || c->max_window > RP_WORKER_MAX_WINDOW_LIMIT) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--max-window must be 1..%d", RP_WORKER_MAX_WINDOW_LIMIT);
        goto out;
    }
    if (c->drain_timeout_s < 0 || c->timeout_grace_s < 0) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--drain-timeout must not be negative");
        goto out;
    }
    if (c->output_max > RP_OUTPUT_MAX_LIMIT) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "--output-max must be at most %d", RP_OUTPUT_MAX_LIMIT);
        goto out;
    }
    if (c->worker_name && *c->worker_name) {
        snprintf(w->name, sizeof(w->name), "%s", c->worker_name);
    } else {
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(w->name, sizeof(w->name), "%s:%ld", host, (long)getpid());
    }

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if ((w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (w->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        err = rp_errf(errstr, es, RP_ERR_IO, "eventfd/signalfd: %s",
                      strerror(errno));
        goto out;
    }
    if (!(w->sched = rp_sched_new()) || !(w->offsets = rp_offsets_new()) ||
        rp_inbox_new(w->wake_fd, &w->inbox)) {
        err = rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = rp_state_open_opts(c->state_url,
                                  &(rp_state_opts_t){.gcp = c->backend_conf.gcp},
                                  &w->state, errstr, es)))
        goto out;
    c->backend_conf.state = w->state; /* the backend borrows the store */
    if ((err = rp_iopool_new(c->io_threads, &w->io, errstr, es)) ||
        (err = rp_backend_new(c->backend, &c->backend_conf,
                              rp_backend_done_cb_fn, w, &w->backend, errstr,
                              es)) ||
        (err = rp_worker_kafka(w, errstr, es)))
        goto out;
    *out = w;
    w = NULL;
out:
    rp_worker_destroy(w);
    return err;
}

/* Wait for wake-ups or the next timer. */
static void rp_worker_wait(rp_worker_t *w, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = w->wake_fd, .events = POLLIN},
                            {.fd = w->sig_fd, .events = POLLIN}};
    uint64_t v;

    if (poll(fds, 2, timeout_ms) <= 0)
        return;
    if (fds[0].revents & POLLIN) {
        if (read(w->wake_fd, &v, sizeof(v)) < 0) {
        }
    }
    if (fds[1].revents & POLLIN) {
        struct signalfd_siginfo si;

        while (read(w->sig_fd, &si, sizeof(si)) == sizeof(si)) {
            if (w->draining)
                continue;
            w->draining = true;
            w->drain_deadline =
                rp_time_mono_ms() + (int64_t)w->conf.drain_timeout_s * 1000;
            rp_log(RP_LOG_INFO, "draining", NULL, NULL,
                   "signal %u: taking no new work; waiting up to %d s for %zu "
                   "running execution(s)",
                   si.ssi_signo, w->conf.drain_timeout_s, w->running);
            /* Not yet started: leave them to the next owner. */
            rp_sched_drop_queued(w->sched, rp_job_match_partition,
                                 rp_job_dropped, NULL);
            rp_worker_drop_ready(w, NULL);
            rp_worker_flow_control(w);
        }
    }
}

/* Drain deadline passed: abandon what still runs (it is re-delivered). */
static void rp_worker_abandon_all(rp_worker_t *w)
{
    for (rp_job_t *job = w->jobs; job; job = job->next) {
        if (job->stage == RP_JOB_PUBLISHING)
            continue; /* let the flush finish it */
        job->revoked = true;
        if (job->stage == RP_JOB_RUNNING && job->run)
            rp_backend_detach(w->backend, job->run);
    }
}

rp_err_t rp_worker_run(rp_worker_t *w, char *errstr, size_t es)
{
    int64_t now, next_tick = 0;
    bool more = true, abandoned = false;
    int64_t abandon_deadline = 0;

    rp_log(RP_LOG_INFO, "worker_started", NULL, NULL,
           "worker %s: group %s, topic %s -> %s (dlq %s), backend %s, state %s, "
           "max in flight %d, running %d, window %d",
           w->name, w->conf.group, w->conf.requests_topic,
           w->conf.results_topic, w->conf.dlq_topic, w->conf.backend,
           w->conf.state_url, w->conf.max_inflight, w->conf.max_running,
           w->conf.max_window);
    while (!w->fatal) {
        int timeout;

        now = rp_time_mono_ms();
        if (w->draining && w->running == 0 && w->inflight == 0)
            break;
        if (w->draining && !abandoned && now >= w->drain_deadline) {
            rp_log(RP_LOG_WARN, "drain_timeout", NULL, NULL,
                   "%zu execution(s) still running after %d s; they will be "
                   "re-delivered",
                   w->running, w->conf.drain_timeout_s);
            rp_worker_abandon_all(w);
            abandoned = true;
            abandon_deadline = now + RP_WORKER_ABANDON_WAIT_MS;
        }
        if (abandoned && now >= abandon_deadline)
            break; /* a dead broker must not hold shutdown forever */
        if (abandoned) {
            /* Only publishes and cancelled runs remain; stop once the
             * backend has reported every cancelled run. */
            bool waiting = false;

            for (rp_job_t *job = w->jobs; job; job = job->next)
                if (job->stage != RP_JOB_QUEUED)
                    waiting = true;
            if (!waiting)
                break;
        }
        if (now >= next_tick) {
            rp_worker_tick(w, now);
            next_tick = now + RP_WORKER_TICK_MS;
        }
        if (now >= w->next_commit) {
            rp_worker_commit(w, NULL, false);
            w->next_commit = now + RP_WORKER_COMMIT_INTERVAL_MS;
        }
        timeout = more ? 0 : (int)(next_tick - now);
        if (timeout < 0)
            timeout = 0;
        rp_worker_wait(w, timeout);
        rp_worker_serve_inbox(w);
        rd_kafka_poll(w->producer, 0); /* delivery reports */
        more = rp_worker_serve_consumer(w);
        rp_worker_flow_control(w);
    }

    /* Shut down: nothing is started any more. Let the producer deliver what
     * is queued, commit what is finished, leave the group. */
    rd_kafka_flush(w->producer, RP_WORKER_FLUSH_MS);
    rp_worker_serve_inbox(w);
    rp_worker_commit(w, NULL, true);
    rd_kafka_consumer_close(w->consumer);
    rp_log(RP_LOG_INFO, "worker_stopped", NULL, NULL,
           "%zu request(s) left unfinished for re-delivery", w->inflight);
    if (w->fatal)
        return rp_errf(errstr, es, RP_ERR_KAFKA, "fatal: %s", w->fatal_msg);
    return RP_OK;
}

void rp_worker_destroy(rp_worker_t *w)
{
    rp_job_t *job, *next;

    if (!w)
        return;
    /* Order matters: stop what can still call back into jobs (backend
     * threads, I/O threads) before freeing the jobs. Released runs are
     * freed by the backend once they have ended. */
    for (job = w->jobs; job; job = job->next) {
        if (job->run)
            rp_backend_release(w->backend, job->run);
        job->run = NULL;
    }
    rp_backend_destroy(w->backend);
    rp_iopool_destroy(w->io);
    if (w->cq)
        rd_kafka_queue_destroy(w->cq);
    if (w->pq)
        rd_kafka_queue_destroy(w->pq);
    if (w->consumer)
        rd_kafka_destroy(w->consumer);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    for (job = w->jobs; job; job = next) {
        next = job->next;
        rp_job_free(job);
    }
    rp_state_destroy(w->state);
    rp_inbox_destroy(w->inbox);
    rp_sched_destroy(w->sched);
    rp_offsets_destroy(w->offsets);
    free(w->epoch);
    free(w->committed);
    free(w->win_paused);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->sig_fd >= 0)
        close(w->sig_fd);
    free(w);
}
