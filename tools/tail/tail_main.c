/* runpool-tail — follow runpool's results (and DLQ) topics as a person
 * debugging would. The Kafka loop; parsing, filters, formats and stats
 * are rp_tail.c. See rp_tail_usage() and docs/tools.md. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_httpd.h"
#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_metrics.h"
#include "rp_result.h"
#include "rp_tail.h"
#include "rp_time.h"

#define EXIT_KAFKA 1 /* also: stdout could not be written */
#define EXIT_USAGE 2
#define RP_TAIL_POLL_MS 200
#define RP_TAIL_META_TIMEOUT_MS 10000
#define RP_TAIL_PARTITIONS_MAX 10000 /* per topic */
/* A result whose request has not been read yet waits this long for it
 * (the two topics are fetched independently), then prints without it. */
#define RP_TAIL_JOIN_WAIT_MS 2000
/* At most this many results wait for their request at once; past it the
 * oldest prints without waiting. */
#define RP_TAIL_PENDING_MAX 1000
/* --with-requests starts the requests topic this much before the results'
 * start (for end/offsets: before now), so the requests of the first
 * results are read too. */
#define RP_TAIL_JOIN_LOOKBACK_MS (15 * 60 * 1000)

static const char *prog = "runpool-tail";
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
    stop_sig = sig;
}

typedef struct pending {
    rp_tail_rec_t rec;
    int64_t since_ms;
} pending_t;

/* --from -N: the last N records of one partition, kept until the
 * partition's first EOF, then printed. */
typedef struct last_ring {
    rp_tail_rec_t *recs; /* N slots */
    size_t *sizes;       /* N slots: value + key bytes of each record */
    size_t head, n;
    size_t bytes;        /* sum of sizes[] held */
    uint64_t dropped;    /* evicted by the byte bound, said at the end */
    bool done; /* reached EOF once: records go straight out */
} last_ring_t;

typedef struct tail {
    rp_tail_conf_t conf;
    rd_kafka_t *rk;
    bool json, color;
    rp_tail_reqs_t *reqs;
    rp_tail_stats_t stats;
    pending_t pending[RP_TAIL_PENDING_MAX];
    size_t pending_head, n_pending;
    size_t n_assigned, n_eof;
    rd_kafka_topic_partition_list_t *eofs; /* partitions that hit EOF */
    rd_kafka_topic_partition_list_t *list; /* the assignment */
    last_ring_t *rings; /* --from -N: one per entry of list, else NULL */
    size_t ring_budget; /* bytes each ring may hold: RP_TAIL_LAST_BYTES_MAX
                           shared out over the rings */
    int out_errno;      /* stdout failed: stop (EPIPE: quietly) */
    /* --metrics-listen: the registry the HTTP thread renders */
    rp_metrics_t *metrics;
    rp_metric_t *m_results, *m_duration, *m_dlq;
    rp_httpd_t *httpd;
} tail_t;

/* Label sets: 6 statuses x 30 codes fits; DLQ reasons are codes too. */
#define RP_TAIL_M_RESULTS_SERIES 256
#define RP_TAIL_M_DURATION_SERIES 8
#define RP_TAIL_M_DLQ_SERIES 64

static rp_err_t render_metrics(void *arg, rp_buf_t *out)
{
    return rp_metrics_render(arg, out);
}

/* Declare the exporter's families and start the endpoint. */
static int start_exporter(tail_t *t)
{
    static const char *const rl[] = {"status", "code"};
    static const char *const dl[] = {"status"};
    static const char *const ql[] = {"reason"};
    char errstr[512] = "";
    rp_httpd_handlers_t h = {0};
    rp_err_t err;

    if (!(t->metrics = rp_metrics_new())) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    t->m_results = rp_metrics_counter(
        t->metrics, "runpool_stream_results_total",
        "Results read from the results topic, by status and error code "
        "(none when the result has no error).", rl, 2,
        RP_TAIL_M_RESULTS_SERIES, errstr, sizeof(errstr));
    if (t->m_results)
        t->m_duration = rp_metrics_histogram(
            t->metrics, "runpool_stream_result_duration_seconds",
            "duration_ms of the results read, in seconds, by status.", dl, 1,
            RP_TAIL_M_DURATION_SERIES, rp_metrics_buckets_run,
            rp_metrics_buckets_run_n, errstr, sizeof(errstr));
    if (t->m_duration)
        t->m_dlq = rp_metrics_counter(
            t->metrics, "runpool_stream_dlq_total",
            "Messages read from the DLQ, by reason (runpool.error.code).", ql,
            1, RP_TAIL_M_DLQ_SERIES, errstr, sizeof(errstr));
    if (!t->m_dlq) {
        fprintf(stderr, "%s: metrics: %s\n", prog, errstr);
        return -1;
    }
    /* Every status's duration series exists from the start (0), so its
     * first results are a rate() can see, not its starting value. */
    for (int st = RP_STATUS_SUCCEEDED; st <= RP_STATUS_ERROR; st++)
        rp_metrics_series(t->m_duration, RP_LV(rp_status_str((rp_status_t)st)));
    h.metrics = render_metrics;
    h.arg = t->metrics;
    if ((err = rp_httpd_start(t->conf.metrics_listen, &h, &t->httpd, errstr,
                              sizeof(errstr)))) {
        fprintf(stderr, "%s: --metrics-listen %s: %s\n", prog,
                t->conf.metrics_listen, errstr);
        return -1;
    }
    /* One line a script can wait for: where to scrape. */
    fprintf(stdout, "{\"metrics\":\"http://%s/metrics\"}\n",
            rp_httpd_addr(t->httpd));
    fflush(stdout);
    return 0;
}

static void count_record(tail_t *t, const rp_tail_rec_t *r)
{
    const char *status, *code;

    rp_tail_metric_labels(r, &status, &code);
    if (r->source == RP_TAIL_SRC_DLQ) {
        rp_metrics_inc(t->m_dlq, RP_LV(*r->code ? code : "none"));
        return;
    }
    rp_metrics_inc(t->m_results, RP_LV(status, code));
    if (r->duration_ms >= 0)
        rp_metrics_observe(t->m_duration, RP_LV(status),
                           (double)r->duration_ms / 1000.0);
}

/* Partition count of topic, or -1 (message printed). */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    int n = -1;

    if (!t)
        return -1;
    err = rd_kafka_metadata(rk, 0, t, &md, RP_TAIL_META_TIMEOUT_MS);
    if (err)
        fprintf(stderr, "%s: metadata for %s: %s\n", prog, topic,
                rd_kafka_err2str(err));
    else if (md->topic_cnt != 1 || md->topics[0].err)
        fprintf(stderr, "%s: topic %s: %s\n", prog, topic,
                md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                              : "not found");
    else if (md->topics[0].partition_cnt > RP_TAIL_PARTITIONS_MAX)
        fprintf(stderr, "%s: topic %s: more than %d partitions\n", prog, topic,
                RP_TAIL_PARTITIONS_MAX);
    else
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

/* Add every partition of topic to list, starting at from. */
static int add_topic(tail_t *t, rd_kafka_topic_partition_list_t *list,
                     const char *topic, const rp_tail_from_t *from)
{
    int n = topic_partitions(t->rk, topic);
    rd_kafka_topic_partition_list_t *times = NULL;
    rd_kafka_resp_err_t err;

    if (n < 0)
        return -1;
    if (from->kind == RP_TAIL_FROM_TIME)
        times = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        int64_t off;

        switch (from->kind) {
        case RP_TAIL_FROM_BEGINNING:
            off = RD_KAFKA_OFFSET_BEGINNING;
            break;
        case RP_TAIL_FROM_OFFSET:
            off = from->value;
            break;
        case RP_TAIL_FROM_LAST: {
            /* Not OFFSET_TAIL(N): on a transactional topic commit markers
             * take offsets too (up to one per record), so the last N
             * offsets may hold no record at all. Start 2N back and keep the
             * last N records read before the end (last_ring_t). */
            int64_t lo = 0, hi = 0;

            err = rd_kafka_query_watermark_offsets(t->rk, topic, p, &lo, &hi,
                                                   RP_TAIL_META_TIMEOUT_MS);
            if (err) {
                fprintf(stderr, "%s: watermarks of %s [%d]: %s\n", prog,
                        topic, p, rd_kafka_err2str(err));
                return -1;
            }
            off = hi - 2 * from->value > lo ? hi - 2 * from->value : lo;
            break;
        }
        case RP_TAIL_FROM_TIME:
            rd_kafka_topic_partition_list_add(times, topic, p)->offset =
                from->value;
            continue;
        default:
            off = RD_KAFKA_OFFSET_END;
        }
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = off;
    }
    if (times) {
        /* The first offset at or after the time; -1 (nothing after it)
         * means the end. */
        err = rd_kafka_offsets_for_times(t->rk, times, RP_TAIL_META_TIMEOUT_MS);
        if (err) {
            fprintf(stderr, "%s: offsets for time on %s: %s\n", prog, topic,
                    rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(times);
            return -1;
        }
        for (int i = 0; i < times->cnt; i++) {
            int64_t off = times->elems[i].offset;

            if (times->elems[i].err) {
                fprintf(stderr, "%s: offsets for time on %s [%d]: %s\n", prog,
                        topic, (int)times->elems[i].partition,
                        rd_kafka_err2str(times->elems[i].err));
                rd_kafka_topic_partition_list_destroy(times);
                return -1;
            }
            rd_kafka_topic_partition_list_add(list, topic,
                                              times->elems[i].partition)
                ->offset = off < 0 ? RD_KAFKA_OFFSET_END : off;
        }
        rd_kafka_topic_partition_list_destroy(times);
    }
    return n;
}

static const char *header_str(rd_kafka_headers_t *h, const char *name,
                              char *buf, size_t size)
{
    const void *v;
    size_t len;

    if (!h || rd_kafka_header_get_last(h, name, &v, &len) || !v)
        return NULL;
    if (len >= size)
        len = size - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

/* true when stdout is a pipe whose reader has closed it. */
static bool reader_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = 0};

    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

/* Flush stdout; on a write error remember it so the loop stops: a
 * closed pipe (runpool-tail | head) or a full disk must not leave the
 * tail reading forever with its output going nowhere. */
static void check_stdout(tail_t *t)
{
    int e = errno; /* callers zero errno before their writes */

    if (t->out_errno)
        return;
    if (fflush(stdout) == EOF)
        e = errno;
    if (ferror(stdout))
        t->out_errno = e ? e : EIO;
}

/* Print (or count) one record that passed the filters. */
static void emit(tail_t *t, const rp_tail_rec_t *r)
{
    const cJSON *req = NULL;
    bool with_req = t->conf.with_requests && r->source == RP_TAIL_SRC_RESULTS;

    if (t->metrics) {
        count_record(t, r);
        return;
    }
    if (t->conf.stats_s) {
        rp_tail_stats_add(&t->stats, r);
        return;
    }
    errno = 0;
    if (with_req)
        req = rp_tail_reqs_get(t->reqs, r->execution);
    if (t->json) {
        char *line = rp_tail_format_json(r, with_req, req);

        if (!line) {
            fprintf(stderr, "%s: out of memory formatting offset %lld\n", prog,
                    (long long)r->offset);
            return;
        }
        fprintf(stdout, "%s\n", line);
        free(line);
    } else {
        rp_tail_format_table(stdout, r, with_req, req, t->color);
    }
    check_stdout(t);
}

/* Print waiting results whose request came, or that waited long enough
 * (all of them when force). Keeps output in arrival order. */
static void flush_pending(tail_t *t, bool force)
{
    int64_t now = rp_time_mono_ms();

    while (t->n_pending) {
        pending_t *p = &t->pending[t->pending_head];

        if (!force && !rp_tail_reqs_get(t->reqs, p->rec.execution) &&
            now - p->since_ms < RP_TAIL_JOIN_WAIT_MS)
            break;
        emit(t, &p->rec);
        rp_tail_rec_clear(&p->rec);
        t->pending_head = (t->pending_head + 1) % RP_TAIL_PENDING_MAX;
        t->n_pending--;
    }
}

static void handle_filtered(tail_t *t, rp_tail_rec_t *rec);

static last_ring_t *ring_of(tail_t *t, const char *topic, int32_t partition)
{
    for (int i = 0; i < t->list->cnt; i++)
        if (t->list->elems[i].partition == partition &&
            !strcmp(t->list->elems[i].topic, topic))
            return &t->rings[i];
    return NULL;
}

static void ring_evict(last_ring_t *r, size_t cap)
{
    rp_tail_rec_clear(&r->recs[r->head]);
    r->bytes -= r->sizes[r->head];
    r->head = (r->head + 1) % cap;
    r->n--;
}

/* --from -N before the partition's end: keep rec (taken, size bytes) in
 * its ring, dropping the oldest past N records or past the ring's byte
 * budget. Returns false when rec should go out now. */
static bool src_ring_keep(tail_t *t, const char *topic, rp_tail_rec_t *rec,
                          size_t size)
{
    last_ring_t *r = ring_of(t, topic, rec->partition);
    size_t cap = (size_t)t->conf.from.value, slot;

    if (!r || r->done)
        return false;
    if (r->n == cap)
        ring_evict(r, cap);
    while (r->n && r->bytes + size > t->ring_budget) {
        ring_evict(r, cap);
        r->dropped++;
    }
    slot = (r->head + r->n) % cap;
    r->recs[slot] = *rec;
    r->sizes[slot] = size;
    r->bytes += size;
    r->n++;
    return true;
}

/* The partition reached its end: print what its ring kept, in order. */
static void ring_flush(tail_t *t, const char *topic, int32_t partition)
{
    last_ring_t *r = t->rings ? ring_of(t, topic, partition) : NULL;
    size_t cap = (size_t)t->conf.from.value;

    if (!r || r->done)
        return;
    r->done = true;
    if (r->dropped)
        fprintf(stderr,
                "%s: %s [%d]: only the last %zu of the %zu records asked for "
                "fit the %zu bytes --from -N may hold for a partition\n",
                prog, topic, (int)partition, r->n, cap, t->ring_budget);
    for (; r->n; r->n--) {
        rp_tail_rec_t *rec = &r->recs[r->head];

        r->head = (r->head + 1) % cap;
        if (rp_tail_match(&t->conf, rec))
            handle_filtered(t, rec);
        rp_tail_rec_clear(rec);
    }
}

static void handle_record(tail_t *t, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_headers_t *h = NULL;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    rp_tail_source_t src;
    rp_tail_dlq_hdrs_t hd = {0};
    char code[128], msg[1100], worker[300];
    rp_tail_rec_t rec;

    if (t->conf.with_requests && !strcmp(topic, t->conf.requests_topic)) {
        cJSON *doc = cJSON_ParseWithLength(m->payload, m->len);

        if (doc)
            rp_tail_reqs_add(t->reqs, doc); /* takes doc; skips non-requests */
        return;
    }
    src = t->conf.read_dlq && !strcmp(topic, t->conf.dlq_topic)
              ? RP_TAIL_SRC_DLQ
              : RP_TAIL_SRC_RESULTS;
    if (src == RP_TAIL_SRC_DLQ) {
        rd_kafka_message_headers(m, &h);
        hd.code = header_str(h, "runpool.error.code", code, sizeof(code));
        hd.message = header_str(h, "runpool.error.message", msg, sizeof(msg));
        hd.worker = header_str(h, "runpool.worker", worker, sizeof(worker));
    }
    if (rp_tail_rec_init(&rec, src, m->partition, m->offset,
                         tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
                         m->key, m->key_len, m->payload, m->len, &hd)) {
        fprintf(stderr, "%s: out of memory at %s [%d] offset %lld\n", prog,
                topic, (int)m->partition, (long long)m->offset);
        return;
    }
    /* A kept record holds its key, its raw value and the parsed tree
     * (about twice the text again): count 3x the value. */
    if (t->rings && src_ring_keep(t, topic, &rec, 3 * m->len + m->key_len))
        return;
    if (rp_tail_match(&t->conf, &rec))
        handle_filtered(t, &rec);
    rp_tail_rec_clear(&rec);
}

/* Print rec (or park it until its request is read: then rec's contents
 * are taken and rec is left zeroed). */
static void handle_filtered(tail_t *t, rp_tail_rec_t *rec)
{
    if (t->conf.with_requests && rec->source == RP_TAIL_SRC_RESULTS &&
        !t->conf.stats_s && !rp_tail_reqs_get(t->reqs, rec->execution)) {
        if (t->n_pending == RP_TAIL_PENDING_MAX)
            flush_pending(t, true);
        t->pending[(t->pending_head + t->n_pending) % RP_TAIL_PENDING_MAX] =
            (pending_t){.rec = *rec, .since_ms = rp_time_mono_ms()};
        t->n_pending++;
        memset(rec, 0, sizeof(*rec));
        return;
    }
    flush_pending(t, true); /* keep arrival order */
    emit(t, rec);
}

/* Count a partition's EOF once; true when every assigned one reached it. */
static bool note_eof(tail_t *t, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);

    ring_flush(t, topic, m->partition);
    if (!rd_kafka_topic_partition_list_find(t->eofs, topic, m->partition)) {
        rd_kafka_topic_partition_list_add(t->eofs, topic, m->partition);
        t->n_eof++;
    }
    return t->n_eof >= t->n_assigned;
}

/* The settings of every source (--kafka-config or $RUNPOOL_KAFKA_CONFIG,
 * RUNPOOL_KAFKA_*, -X), then the reader (rp_kafka_reader_new). */
static rd_kafka_t *make_consumer(const rp_tail_conf_t *c, int *rc)
{
    rp_kafka_props_t kp = {0};
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rp_err_t err;

    if ((err = rp_kafka_props_load(&kp, c->kafka_config, c->props, c->n_props,
                                   NULL, errstr, sizeof(errstr))) ||
        (err = rp_kafka_reader_new(c->brokers, "runpool-tail", NULL,
                                   (const char *const *)kp.kv, kp.n, &rk,
                                   errstr, sizeof(errstr)))) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        /* A setting refused (bad file, unknown name) is bad usage. */
        *rc = err == RP_ERR_KAFKA ? EXIT_KAFKA : EXIT_USAGE;
    } else {
        rd_kafka_poll_set_consumer(rk);
    }
    rp_kafka_props_clear(&kp);
    return rk;
}

int main(int argc, char **argv)
{
    static tail_t t; /* big (pending ring): not on the stack */
    char errstr[512] = "";
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_resp_err_t err;
    int rc = EXIT_KAFKA;
    int64_t next_stats = 0;
    struct sigaction sa;

    switch (rp_tail_parse_args(&t.conf, argc, argv, errstr, sizeof(errstr))) {
    case RP_TAIL_PARSE_OK:
        break;
    case RP_TAIL_PARSE_HELP:
        rp_tail_usage(stdout);
        rp_tail_conf_free(&t.conf);
        return 0;
    case RP_TAIL_PARSE_VERSION:
        printf("runpool-tail %s (librdkafka %s)\n", RP_TAIL_VERSION_STR,
               rd_kafka_version_str());
        rp_tail_conf_free(&t.conf);
        return 0;
    default:
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, errstr, prog);
        rp_tail_conf_free(&t.conf);
        return EXIT_USAGE;
    }
    rp_log_init("tail", RP_LOG_WARN); /* librdkafka's warnings, as JSON */
    t.json = t.conf.format == RP_TAIL_FMT_JSON ||
             (t.conf.format == RP_TAIL_FMT_AUTO && !isatty(STDOUT_FILENO));
    t.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!(t.rk = make_consumer(&t.conf, &rc)))
        goto out;
    if (t.conf.metrics_listen && start_exporter(&t))
        goto out;
    if (rp_tail_stats_init(&t.stats, rp_time_mono_ms())) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (t.conf.with_requests &&
        !(t.reqs = rp_tail_reqs_new(RP_TAIL_REQUESTS_MAX))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    list = rd_kafka_topic_partition_list_new(16);
    t.eofs = rd_kafka_topic_partition_list_new(16);
    if (t.conf.read_results &&
        add_topic(&t, list, t.conf.results_topic, &t.conf.from) < 0)
        goto out;
    if (t.conf.read_dlq && add_topic(&t, list, t.conf.dlq_topic,
                                     &t.conf.from) < 0)
        goto out;
    if (t.conf.with_requests) {
        rp_tail_from_t rf = t.conf.from;

        if (rf.kind == RP_TAIL_FROM_TIME)
            rf.value -= RP_TAIL_JOIN_LOOKBACK_MS;
        else if (rf.kind != RP_TAIL_FROM_BEGINNING) {
            rf.kind = RP_TAIL_FROM_TIME;
            rf.value = rp_time_wall_ms() - RP_TAIL_JOIN_LOOKBACK_MS;
        }
        if (add_topic(&t, list, t.conf.requests_topic, &rf) < 0)
            goto out;
    }
    t.n_assigned = (size_t)list->cnt;
    t.list = list;
    if (t.conf.from.kind == RP_TAIL_FROM_LAST) {
        if (!(t.rings = calloc((size_t)list->cnt, sizeof(*t.rings))))
            goto nomem;
        for (int i = 0; i < list->cnt; i++) {
            /* the requests topic of --with-requests has no ring */
            if (t.conf.with_requests &&
                !strcmp(list->elems[i].topic, t.conf.requests_topic)) {
                t.rings[i].done = true;
                continue;
            }
            t.rings[i].recs = calloc((size_t)t.conf.from.value,
                                     sizeof(rp_tail_rec_t));
            t.rings[i].sizes = calloc((size_t)t.conf.from.value,
                                      sizeof(size_t));
            if (!t.rings[i].recs || !t.rings[i].sizes)
                goto nomem;
        }
        {
            size_t n_rings = 0;

            for (int i = 0; i < list->cnt; i++)
                n_rings += !t.rings[i].done;
            t.ring_budget = RP_TAIL_LAST_BYTES_MAX / (n_rings ? n_rings : 1);
        }
    }
    if ((err = rd_kafka_assign(t.rk, list))) {
        fprintf(stderr, "%s: assign: %s\n", prog, rd_kafka_err2str(err));
        goto out;
    }
    errno = 0;
    if (!t.json && !t.conf.stats_s && !t.metrics)
        rp_tail_table_header(stdout, t.conf.with_requests, t.color);
    check_stdout(&t);
    next_stats = rp_time_mono_ms() + (int64_t)t.conf.stats_s * 1000;
    rc = 0;
    while (!stop_sig && !t.out_errno) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(t.rk, RP_TAIL_POLL_MS);
        bool at_end = false;

        /* `runpool-tail | head -1` while nothing new comes: the reader is
         * gone but no write tells us. A pipe's write end reports POLLERR
         * once its read end is closed (as GNU tail -f checks). */
        if (!m && reader_gone())
            t.out_errno = EPIPE;

        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                at_end = note_eof(&t, m);
            else if (m->err) {
                fprintf(stderr, "%s: %s\n", prog, rd_kafka_message_errstr(m));
                if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                    rc = EXIT_KAFKA;
                    rd_kafka_message_destroy(m);
                    break;
                }
            } else
                handle_record(&t, m);
            rd_kafka_message_destroy(m);
        }
        flush_pending(&t, false);
        if (t.conf.stats_s && rp_time_mono_ms() >= next_stats) {
            errno = 0;
            rp_tail_stats_print(&t.stats, stdout, t.json, rp_time_mono_ms());
            check_stdout(&t);
            next_stats = rp_time_mono_ms() + (int64_t)t.conf.stats_s * 1000;
        }
        if (t.conf.exit_at_end && at_end)
            break;
    }
    if (!t.out_errno)
        flush_pending(&t, true);
    if (t.conf.stats_s && !t.out_errno) {
        errno = 0;
        rp_tail_stats_print(&t.stats, stdout, t.json, rp_time_mono_ms());
        check_stdout(&t);
    }
    if (t.out_errno == EPIPE) {
        /* The reader went away (| head): a normal end, like cat's. */
    } else if (t.out_errno) {
        fprintf(stderr, "%s: writing to stdout: %s\n", prog,
                strerror(t.out_errno));
        rc = EXIT_KAFKA;
    }
    goto out;
nomem:
    fprintf(stderr, "%s: out of memory\n", prog);
    rc = EXIT_KAFKA;
out:
    if (t.rk) {
        /* A clean close: leave the assignment, free librdkafka's queues. */
        rd_kafka_consumer_close(t.rk);
        rd_kafka_destroy(t.rk);
    }
    if (t.eofs)
        rd_kafka_topic_partition_list_destroy(t.eofs);
    while (t.n_pending) {
        rp_tail_rec_clear(&t.pending[t.pending_head].rec);
        t.pending_head = (t.pending_head + 1) % RP_TAIL_PENDING_MAX;
        t.n_pending--;
    }
    for (int i = 0; t.rings && i < list->cnt; i++) {
        last_ring_t *r = &t.rings[i];

        for (; r->recs && r->n; r->n--) {
            rp_tail_rec_clear(&r->recs[r->head]);
            r->head = (r->head + 1) % (size_t)t.conf.from.value;
        }
        free(r->recs);
        free(r->sizes);
    }
    free(t.rings);
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    rp_httpd_stop(t.httpd); /* before the registry it renders */
    rp_metrics_destroy(t.metrics);
    rp_tail_reqs_destroy(t.reqs);
    rp_tail_stats_clear(&t.stats);
    rp_tail_conf_free(&t.conf);
    return rc;
}
