/* rp_wmetrics — the worker's metrics and its HTTP endpoint (--http-listen).
 *
 * The families are declared once at start; the main thread updates them
 * where things happen (rp_job, rp_publish, rp_partitions, rp_txn), I/O
 * pool threads count state-store calls, and the HTTP thread (rp_httpd)
 * only reads: the registry's values are atomics, and the few worker
 * fields /healthz and /readyz need are mirrored into atomics each turn of
 * the loop (rp_wmetrics_turn). Without --http-listen nothing is allocated
 * and every call is a no-op. docs/metrics.md lists every metric.
 */
#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_http.h"
#include "rp_httpd.h"
#include "rp_log.h"
#include "rp_metrics.h"
#include "rp_time.h"
#include "rp_worker_int.h"

/* A partition label per partition of the requests topic, up to this. */
#define RP_WMETRICS_PARTITIONS_MAX 256
/* /healthz fails once the loop has not turned for this long. The loop
 * turns at least every RP_WORKER_WAIT_MAX_MS, but one turn may block in
 * send_offsets and commit_transaction (10 s each) against a slow broker:
 * above that, so a slow broker is not taken for a hung worker. */
#define RP_WMETRICS_STALE_MS 30000
/* librdkafka statistics every this often (consumer lag). */
#define RP_WMETRICS_STATS_MS "5000"
/* The backend's quota families and event counters shown, at most. */
#define RP_WMETRICS_QUOTAS_MAX 8
#define RP_WMETRICS_EVENTS_MAX 16

struct rp_wmetrics {
    rp_metrics_t *reg;
    rp_httpd_t *httpd;
    rp_metric_t *consumed, *results, *dlq, *queued, *running, *inflight,
        *stage, *e2e, *commit, *rebalances, *lag, *loop_lag, *state_ops,
        *state_secs, *publish_retries, *assigned, *draining_g, *api_calls,
        *api_secs, *q_rate, *q_burst, *q_tokens, *q_calls, *q_throttled,
        *q_waits, *be_events;
    /* main thread: the backend's counters as last added (deltas go in) */
    uint64_t q_prev[RP_WMETRICS_QUOTAS_MAX][3];
    uint64_t ev_prev[RP_WMETRICS_EVENTS_MAX];
    _Atomic int64_t last_turn_ms;
    atomic_bool draining, assigned_once, stopping;
    atomic_int nassigned;
    int64_t turn_end_ms; /* main thread: when the last turn's work ended */
    rp_http_observer_t http_obs; /* rp_http holds a pointer to it */
};

static rp_err_t wm_metrics(void *arg, rp_buf_t *out)
{
    rp_wmetrics_t *m = arg;
    return rp_metrics_render(m->reg, out);
}

static bool wm_healthy(rp_wmetrics_t *m, char *msg, size_t n)
{
    int64_t age = rp_time_mono_ms() - atomic_load(&m->last_turn_ms);
    if (age > RP_WMETRICS_STALE_MS) {
        snprintf(msg, n, "main loop has not turned for %lld ms", (long long)age);
        return false;
    }
    return true;
}

static bool wm_healthz(void *arg, char *msg, size_t n)
{
    return wm_healthy(arg, msg, n);
}

static bool wm_readyz(void *arg, char *msg, size_t n)
{
    rp_wmetrics_t *m = arg;
    if (!wm_healthy(m, msg, n))
        return false;
    if (atomic_load(&m->draining) || atomic_load(&m->stopping)) {
        snprintf(msg, n, "draining");
        return false;
    }
    if (!atomic_load(&m->assigned_once)) {
        snprintf(msg, n, "no partition assignment yet");
        return false;
    }
    return true;
}

#define DECL(var, call)                                                      \
    do {                                                                     \
        if (!(m->var = call))                                                \
            goto fail;                                                       \
    } while (0)

static rp_err_t wm_declare(rp_wmetrics_t *m, char *errstr, size_t es)
{
    rp_metrics_t *r = m->reg;
    const double *lat = rp_metrics_buckets_latency;
    size_t nlat = rp_metrics_buckets_latency_n;

    DECL(consumed, rp_metrics_counter(r, "runpool_requests_consumed_total",
                                      "Request records read from the requests topic.",
                                      NULL, 0, 1, errstr, es));
    DECL(results, rp_metrics_counter(
                      r, "runpool_results_total",
                      "Results published (delivered or committed), by status and "
                      "error code (\"none\" for no error).",
                      RP_LV("status", "code"), 2, 256, errstr, es));
    DECL(dlq, rp_metrics_counter(r, "runpool_dlq_messages_total",
                                 "Bad-input records copied to the DLQ, by reason "
                                 "(the runpool.error.code header).",
                                 RP_LV("reason"), 1, 64, errstr, es));
    DECL(queued, rp_metrics_gauge(r, "runpool_executions_queued",
                                  "Requests held but not started: behind their "
                                  "session or waiting for a run slot.",
                                  NULL, 0, 1, errstr, es));
    DECL(running, rp_metrics_gauge(r, "runpool_executions_running",
                                   "Executions in progress (state load to publish).",
                                   NULL, 0, 1, errstr, es));
    DECL(inflight, rp_metrics_gauge(r, "runpool_executions_inflight",
                                    "Requests held by this worker (queued or running).",
                                    NULL, 0, 1, errstr, es));
    DECL(stage, rp_metrics_histogram(
                    r, "runpool_stage_duration_seconds",
                    "Time per stage of an execution: queue_wait (submitted to "
                    "begin), state_load, run, state_save, publish.",
                    RP_LV("stage"), 1, 8, rp_metrics_buckets_run,
                    rp_metrics_buckets_run_n, errstr, es));
    DECL(e2e, rp_metrics_histogram(
                  r, "runpool_end_to_end_seconds",
                  "From the request's submission (or its Kafka timestamp) to "
                  "its result being published.",
                  NULL, 0, 1, rp_metrics_buckets_run, rp_metrics_buckets_run_n,
                  errstr, es));
    DECL(commit, rp_metrics_histogram(
                     r, "runpool_commit_duration_seconds",
                     "Offset commits and transaction steps, by kind (offsets, "
                     "send_offsets, commit_transaction, abort_transaction) and "
                     "outcome (ok, error).",
                     RP_LV("kind", "outcome"), 2, 16, lat, nlat, errstr, es));
    DECL(rebalances, rp_metrics_counter(r, "runpool_rebalances_total",
                                        "Rebalance callbacks, by kind (assign, revoke).",
                                        RP_LV("kind"), 1, 2, errstr, es));
    DECL(assigned, rp_metrics_gauge(r, "runpool_partitions_assigned",
                                    "Partitions of the requests topic this worker owns.",
                                    NULL, 0, 1, errstr, es));
    DECL(lag, rp_metrics_gauge(
                  r, "runpool_consumer_lag",
                  "Consumer lag per assigned partition, in records (librdkafka "
                  "statistics, every 5 s; -1 while unknown).",
                  RP_LV("partition"), 1, RP_WMETRICS_PARTITIONS_MAX, errstr, es));
    DECL(loop_lag, rp_metrics_histogram(
                       r, "runpool_loop_lag_seconds",
                       "How long one turn of the main loop spent working (an "
                       "event that arrives meanwhile waits this long).",
                       NULL, 0, 1, lat, nlat, errstr, es));
    DECL(state_ops, rp_metrics_counter(
                        r, "runpool_state_operations_total",
                        "State-store steps, by op (load, save) and outcome (ok, "
                        "conflict, error).",
                        RP_LV("op", "outcome"), 2, 8, errstr, es));
    DECL(state_secs, rp_metrics_histogram(
                         r, "runpool_state_operation_seconds",
                         "Duration of state-store steps, by op (load, save).",
                         RP_LV("op"), 1, 2, lat, nlat, errstr, es));
    DECL(publish_retries, rp_metrics_counter(
                              r, "runpool_publish_retries_total",
                              "Result or DLQ messages produced again after a failed "
                              "delivery or an aborted transaction.",
                              NULL, 0, 1, errstr, es));
    DECL(draining_g, rp_metrics_gauge(r, "runpool_draining",
                                      "1 while the worker drains after SIGTERM/SIGINT.",
                                      NULL, 0, 1, errstr, es));
    DECL(api_calls, rp_metrics_counter(
                        r, "runpool_backend_api_calls_total",
                        "HTTP calls to Google APIs (and their fakes), by api "
                        "(cloudrun, storage, oauth, metadata, other), method "
                        "and HTTP code (0: no response; 429: rate limited).",
                        RP_LV("api", "method", "code"), 3, 128, errstr, es));
    DECL(api_secs, rp_metrics_histogram(
                       r, "runpool_backend_api_call_seconds",
                       "Duration of those HTTP calls, by api and method.",
                       RP_LV("api", "method"), 2, 32, lat, nlat, errstr, es));
    DECL(q_rate, rp_metrics_gauge(
                     r, "runpool_backend_quota_rate",
                     "The backend's API budget per quota family (cloudrun: "
                     "runs, reads, writes), calls per second.",
                     RP_LV("family"), 1, RP_WMETRICS_QUOTAS_MAX, errstr, es));
    DECL(q_burst, rp_metrics_gauge(r, "runpool_backend_quota_burst",
                                   "Bucket size of each quota family, calls.",
                                   RP_LV("family"), 1, RP_WMETRICS_QUOTAS_MAX,
                                   errstr, es));
    DECL(q_tokens, rp_metrics_gauge(
                       r, "runpool_backend_quota_tokens",
                       "Calls each quota family may make at once now "
                       "(negative: cancels sent on credit).",
                       RP_LV("family"), 1, RP_WMETRICS_QUOTAS_MAX, errstr, es));
    DECL(q_calls, rp_metrics_counter(r, "runpool_backend_quota_calls_total",
                                     "API calls sent, by quota family.",
                                     RP_LV("family"), 1,
                                     RP_WMETRICS_QUOTAS_MAX, errstr, es));
    DECL(q_throttled, rp_metrics_counter(
                          r, "runpool_backend_quota_throttled_total",
                          "API calls answered 429, by quota family (each "
                          "holds that family for a while).",
                          RP_LV("family"), 1, RP_WMETRICS_QUOTAS_MAX, errstr,
                          es));
    DECL(q_waits, rp_metrics_counter(
                      r, "runpool_backend_quota_waits_total",
                      "Times a call found no token of its family (or the "
                      "family held after a 429) and waited, not sent.",
                      RP_LV("family"), 1, RP_WMETRICS_QUOTAS_MAX, errstr, es));
    DECL(be_events, rp_metrics_counter(
                        r, "runpool_backend_events_total",
                        "Backend events (cloudrun: sweeps, sweep_pages, "
                        "completed_by_sweep, straggler_gets).",
                        RP_LV("event"), 1, RP_WMETRICS_EVENTS_MAX, errstr, es));
    /* Series that exist from the start show 0 instead of appearing with
     * their first observation already counted, which rate() cannot see. */
    static const char *const stages[] = {"queue_wait", "state_load", "run",
                                         "state_save", "publish"};
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
        rp_metrics_series(m->stage, RP_LV(stages[i]));
    rp_metrics_series(m->e2e, NULL);
    return RP_OK;
fail:
    return RP_ERR_INVALID;
}

/* Which API a URL is, from its path (a fake serves the same paths), so the
 * label stays bounded whatever the host. */
static const char *wm_api(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        return "other";
    if (!strncmp(p, "/storage/", 9) || !strncmp(p, "/upload/storage/", 16) ||
        !strncmp(p, "/download/storage/", 18))
        return "storage";
    if (!strncmp(p, "/v2/projects/", 13))
        return "cloudrun";
    if (!strncmp(p, "/computeMetadata/", 17))
        return "metadata";
    if (strstr(p, "token"))
        return "oauth";
    return "other";
}

static const char *wm_method(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PUT", "PATCH",
                                        "DELETE", "HEAD"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(m, known[i]))
            return known[i];
    return "other";
}

/* rp_http's observer: any thread (I/O pool, backend threads). */
static void wm_http(const char *method, const char *url, long status,
                    rp_err_t err, int64_t us, void *arg)
{
    rp_wmetrics_t *m = arg;
    char code[16];
    (void)err;
    const char *api = wm_api(url ? url : ""), *meth = wm_method(method ? method : "");
    snprintf(code, sizeof code, "%ld", status >= 0 && status < 1000 ? status : 0);
    rp_metrics_inc(m->api_calls, RP_LV(api, meth, code));
    rp_metrics_observe(m->api_secs, RP_LV(api, meth), (double)us / 1e6);
}

rp_err_t rp_wmetrics_start(rp_worker_t *w, char *errstr, size_t es)
{
    rp_wmetrics_t *m;
    rp_err_t err;

    if (!w->conf.http_listen || !*w->conf.http_listen)
        return RP_OK;
    if (!(m = calloc(1, sizeof *m)) || !(m->reg = rp_metrics_new())) {
        free(m);
        return rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
    }
    atomic_store(&m->last_turn_ms, rp_time_mono_ms());
    w->mx = m; /* before the server starts: destroy frees it on failure */
    if ((err = wm_declare(m, errstr, es)))
        return err;
    rp_httpd_handlers_t h = {wm_metrics, wm_healthz, wm_readyz, m};
    if ((err = rp_httpd_start(w->conf.http_listen, &h, &m->httpd, errstr, es)))
        return err;
    m->http_obs = (rp_http_observer_t){wm_http, m};
    rp_http_set_observer(&m->http_obs);
    rp_log(RP_LOG_INFO, "http_listening", NULL, NULL,
           "http: listening on %s", rp_httpd_addr(m->httpd));
    return RP_OK;
}

void rp_wmetrics_destroy(rp_worker_t *w)
{
    rp_wmetrics_t *m = w ? w->mx : NULL;
    if (!m)
        return;
    rp_http_set_observer(NULL);
    rp_httpd_stop(m->httpd); /* first: the server thread reads m */
    rp_metrics_destroy(m->reg);
    free(m);
    w->mx = NULL;
}

rp_err_t rp_wmetrics_kafka_conf(rp_worker_t *w, rd_kafka_conf_t *cc,
                                char *errstr, size_t es)
{
    char kerr[256];
    if (!w->conf.http_listen || !*w->conf.http_listen)
        return RP_OK;
    if (rd_kafka_conf_set(cc, "statistics.interval.ms", RP_WMETRICS_STATS_MS,
                          kerr, sizeof kerr) != RD_KAFKA_CONF_OK)
        return rp_errf(errstr, es, RP_ERR_KAFKA, "statistics.interval.ms: %s",
                       kerr);
    rd_kafka_conf_set_stats_cb(cc, rp_wmetrics_stats_cb);
    return RP_OK;
}

void rp_wmetrics_alive(rp_worker_t *w)
{
    if (w->mx)
        atomic_store(&w->mx->last_turn_ms, rp_time_mono_ms());
}

void rp_wmetrics_turn(rp_worker_t *w, int64_t start_ms, int64_t end_ms)
{
    rp_wmetrics_t *m = w->mx;
    if (!m)
        return;
    atomic_store(&m->last_turn_ms, end_ms);
    if (m->turn_end_ms)
        rp_metrics_observe(m->loop_lag, NULL, (double)(end_ms - start_ms) / 1e3);
    m->turn_end_ms = end_ms;
    size_t queued = w->inflight > w->running ? w->inflight - w->running : 0;
    rp_metrics_set(m->inflight, NULL, (double)w->inflight);
    rp_metrics_set(m->running, NULL, (double)w->running);
    rp_metrics_set(m->queued, NULL, (double)queued);
    rp_metrics_set(m->draining_g, NULL, w->draining ? 1 : 0);
    atomic_store(&m->draining, w->draining);
    atomic_store(&m->stopping, w->stop || w->fatal);
    if (w->ever_assigned)
        atomic_store(&m->assigned_once, true);
    if (w->backend) {
        rp_backend_quota_t q;
        const char *name;
        uint64_t v;

        for (int i = 0; i < RP_WMETRICS_QUOTAS_MAX &&
                        rp_backend_quota(w->backend, i, &q);
             i++) {
            const char *const *lv = RP_LV(q.family);

            rp_metrics_set(m->q_rate, lv, q.rate);
            rp_metrics_set(m->q_burst, lv, q.burst);
            rp_metrics_set(m->q_tokens, lv, q.tokens);
            rp_metrics_add(m->q_calls, lv, (double)(q.calls - m->q_prev[i][0]));
            rp_metrics_add(m->q_throttled, lv,
                           (double)(q.throttled - m->q_prev[i][1]));
            rp_metrics_add(m->q_waits, lv, (double)(q.waits - m->q_prev[i][2]));
            m->q_prev[i][0] = q.calls;
            m->q_prev[i][1] = q.throttled;
            m->q_prev[i][2] = q.waits;
        }
        for (int i = 0; i < RP_WMETRICS_EVENTS_MAX &&
                        rp_backend_counter(w->backend, i, &name, &v);
             i++) {
            rp_metrics_add(m->be_events, RP_LV(name),
                           (double)(v - m->ev_prev[i]));
            m->ev_prev[i] = v;
        }
    }
}

void rp_wmetrics_consumed(rp_worker_t *w)
{
    if (w->mx)
        rp_metrics_inc(w->mx->consumed, NULL);
}

void rp_wmetrics_job_done(rp_worker_t *w, const rp_job_t *job)
{
    rp_wmetrics_t *m = w->mx;
    if (!m || !job->publish_started_ms)
        return;
    const rp_result_t *r = &job->result;
    if (r->execution_id[0] && r->session_id[0])
        rp_metrics_inc(m->results,
                       RP_LV(rp_status_str(r->status),
                             r->error_code ? r->error_code : "none"));
    if (job->rejected) {
        rp_metrics_inc(m->dlq, RP_LV(job->reject_code));
        return; /* never ran: no stage times */
    }
    int64_t now = rp_time_mono_ms();
    if (r->has_timings)
        rp_metrics_observe(m->stage, RP_LV("queue_wait"),
                           (double)r->timings.queue_wait_ms / 1e3);
    if (!job->reused) {
        rp_metrics_observe(m->stage, RP_LV("state_load"),
                           (double)job->state_load_ms / 1e3);
        rp_metrics_observe(m->stage, RP_LV("run"), (double)job->run_ms / 1e3);
        rp_metrics_observe(m->stage, RP_LV("state_save"),
                           (double)job->state_save_ms / 1e3);
    }
    rp_metrics_observe(m->stage, RP_LV("publish"),
                       (double)(now - job->publish_started_ms) / 1e3);
    int64_t submitted = job->req.has_submitted_at ? job->req.submitted_at_ms
                                                  : job->msg_ts_ms;
    int64_t wall = rp_time_wall_ms();
    if (submitted > 0 && wall >= submitted)
        rp_metrics_observe(m->e2e, NULL, (double)(wall - submitted) / 1e3);
}

void rp_wmetrics_commit(rp_worker_t *w, const char *kind, bool ok,
                        int64_t start_ms)
{
    if (w->mx)
        rp_metrics_observe(w->mx->commit, RP_LV(kind, ok ? "ok" : "error"),
                           (double)(rp_time_mono_ms() - start_ms) / 1e3);
}

void rp_wmetrics_rebalance(rp_worker_t *w, bool assign,
                           const rd_kafka_topic_partition_list_t *parts,
                           int nassigned)
{
    rp_wmetrics_t *m = w->mx;
    if (!m)
        return;
    rp_metrics_inc(m->rebalances, RP_LV(assign ? "assign" : "revoke"));
    rp_metrics_set(m->assigned, NULL, nassigned);
    /* A revoked partition's lag is another worker's to report now: "-1,
     * unknown here", so max by (partition) (lag >= 0) does not keep our
     * last, stale value next to the new owner's. */
    for (int i = 0; !assign && parts && i < parts->cnt; i++) {
        char id[16];

        if (strcmp(parts->elems[i].topic, w->conf.requests_topic) ||
            parts->elems[i].partition < 0 ||
            parts->elems[i].partition >= RP_WMETRICS_PARTITIONS_MAX)
            continue;
        snprintf(id, sizeof(id), "%d", (int)parts->elems[i].partition);
        rp_metrics_set(m->lag, RP_LV(id), -1);
    }
}

void rp_wmetrics_state_op(rp_worker_t *w, const char *op, const char *outcome,
                          int64_t ms)
{
    rp_wmetrics_t *m = w->mx;
    if (!m)
        return;
    rp_metrics_inc(m->state_ops, RP_LV(op, outcome));
    rp_metrics_observe(m->state_secs, RP_LV(op), (double)ms / 1e3);
}

void rp_wmetrics_publish_retry(rp_worker_t *w)
{
    if (w->mx)
        rp_metrics_inc(w->mx->publish_retries, NULL);
}

/* librdkafka's stats_cb (the consumer's, served by the main thread's
 * poll): topics.<requests>.partitions.<p>.consumer_lag. Returns 0: we do
 * not keep the JSON. */
int rp_wmetrics_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    rp_worker_t *w = opaque;
    (void)rk;
    if (!w || !w->mx)
        return 0;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(topics, w->conf.requests_topic);
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(t, "partitions");
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        char *end = NULL;
        long id = strtol(p->string ? p->string : "", &end, 10);
        if (!p->string || *end || id < 0 || id >= RP_WMETRICS_PARTITIONS_MAX)
            continue; /* -1 is librdkafka's internal UA partition */
        const cJSON *fetch = cJSON_GetObjectItemCaseSensitive(p, "fetch_state");
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(p, "ls_offset");
        const cJSON *lag = cJSON_GetObjectItemCaseSensitive(p, "consumer_lag");
        /* Only partitions we own and fetch: the others carry stale numbers
         * (a snapshot taken between a revoke and the fetcher stopping
         * still says "active"). One we do not own reads -1, once it has a
         * series, so a stale value never outlives the revoke. */
        if (!cJSON_IsString(fetch) || strcmp(fetch->valuestring, "active") != 0 ||
            id >= w->npart || !w->part[id].assigned) {
            if (id < w->npart && !w->part[id].assigned &&
                w->part[id].epoch > 0)
                rp_metrics_set(w->mx->lag, RP_LV(p->string), -1);
            continue;
        }
        /* librdkafka's consumer_lag is -1 with exactly-once: the offsets
         * are committed by the producer's transactions, which the
         * consumer does not see. The group's committed offset is ours
         * (w->part), so lag = last stable offset - committed, which is
         * what the group's lag (KEDA's) says too. */
        double v = cJSON_IsNumber(lag) ? lag->valuedouble : -1;
        if (id < w->npart && w->part[id].committed >= 0 && cJSON_IsNumber(ls) &&
            ls->valuedouble >= 0) {
            v = ls->valuedouble - (double)w->part[id].committed;
            if (v < 0)
                v = 0;
        } else if (id < w->npart && w->part[id].committed < 0 &&
                   cJSON_IsNumber(ls) && ls->valuedouble == 0) {
            v = 0; /* nothing committed, and nothing to consume */
        }
        rp_metrics_set(w->mx->lag, RP_LV(p->string), v);
    }
    cJSON_Delete(root);
    return 0;
}
