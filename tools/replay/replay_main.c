/* runpool-replay — re-read a topic range and print, copy or re-submit it.
 * The options and rules are in rp_replay.c (rp_replay_usage); this file is
 * the Kafka loop: a consumer with assign() (no group, so the workers'
 * group never sees it) and read_committed, stopping at the range end,
 * and an idempotent murmur2_random producer like runpool's own. */
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_contract.h"
#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_replay.h"
#include "rp_time.h"

#ifndef RP_REPLAY_VERSION
#define RP_REPLAY_VERSION "unknown"
#endif

#define RP_REPLAY_META_TIMEOUT_MS 10000
#define RP_REPLAY_FLUSH_TIMEOUT_MS 30000
#define RP_REPLAY_PARTITIONS_MAX 4096 /* partitions of one topic we handle */
#define RP_REPLAY_HDRS_MAX 256        /* headers of one record we look at */
#define RP_REPLAY_PROGRESS_MS 200

static const char *prog = "runpool-replay";
static volatile sig_atomic_t stop_flag;

typedef struct part {
    int32_t id;
    int64_t start, end; /* inclusive */
    int64_t next;       /* next offset expected (for the progress bar) */
    bool done;
} part_t;

typedef struct replay {
    rp_replay_conf_t conf;
    rd_kafka_t *consumer, *producer;
    rp_kafka_props_t kprops; /* every source of settings, for both clients */
    part_t *parts;
    size_t n_parts;
    uint64_t total; /* records in range (offsets; control records count) */
    uint64_t seen;
    rp_replay_stats_t st;
    bool progress;
    int64_t last_progress_ms;
} replay_t;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Delivery reports: sent counts acknowledged records only. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    replay_t *r = opaque;

    (void)rk;
    if (m->err) {
        r->st.failed++;
        fprintf(stderr, "%s: send to %s failed: %s\n", prog,
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        r->st.sent++;
    }
}

static rp_err_t make_consumer(replay_t *r, char *es, size_t esz)
{
    /* auto.offset.reset=error: a range is checked against the watermarks
     * first, so an offset out of range is a bug to report, not a jump. */
    return rp_kafka_reader_new(r->conf.brokers, "runpool-replay", "error",
                               (const char *const *)r->kprops.kv,
                               r->kprops.n, &r->consumer, es, esz);
}

static rp_err_t make_producer(replay_t *r, char *es, size_t esz)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();

    rp_kafka_log_via_rp(kc);
    if (rp_kafka_set(kc, "bootstrap.servers", r->conf.brokers, es, esz) ||
        rp_kafka_unique_client_id(kc, "runpool-replay-producer", es, esz) ||
        rp_kafka_producer_defaults(kc, es, esz) ||
        rp_kafka_set_props_for(kc, RP_KAFKA_PRODUCER,
                               (const char *const *)r->kprops.kv,
                               r->kprops.n, es, esz)) {
        rd_kafka_conf_destroy(kc);
        return RP_ERR_INVALID;
    }
    rd_kafka_conf_set_opaque(kc, r);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    if (!(r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, es, esz))) {
        rd_kafka_conf_destroy(kc);
        return RP_ERR_KAFKA;
    }
    return RP_OK;
}

/* offsets-for-times for every partition at ms; out[i] -1 when none. */
static rp_err_t offsets_at(replay_t *r, const int32_t *ids, size_t n,
                           int64_t ms, int64_t *out, char *es, size_t esz)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_resp_err_t kerr;
    rp_err_t err = RP_OK;

    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, r->conf.topic, ids[i])->offset = ms;
    kerr = rd_kafka_offsets_for_times(r->consumer, l, RP_REPLAY_META_TIMEOUT_MS);
    if (kerr) {
        err = rp_errf(es, esz, RP_ERR_KAFKA, "offsets for times on %s: %s",
                      r->conf.topic, rd_kafka_err2str(kerr));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];

        if (tp->err) {
            err = rp_errf(es, esz, RP_ERR_KAFKA,
                          "offsets for times on %s partition %d: %s",
                          r->conf.topic, (int)tp->partition,
                          rd_kafka_err2str(tp->err));
            goto out;
        }
        out[i] = tp->offset; /* RD_KAFKA_OFFSET_END (-1): none that late */
    }
out:
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

/* Resolve the range per partition. RP_ERR_INVALID = refused range. */
static rp_err_t resolve(replay_t *r, char *es, size_t esz)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->consumer, r->conf.topic, NULL);
    rd_kafka_resp_err_t kerr;
    int32_t *ids = NULL;
    int64_t *ts = NULL, *te = NULL;
    size_t n = 0;
    rp_err_t err = RP_OK;

    if (!t)
        return rp_errf(es, esz, RP_ERR_KAFKA, "topic %s: %s", r->conf.topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    kerr = rd_kafka_metadata(r->consumer, 0, t, &md, RP_REPLAY_META_TIMEOUT_MS);
    if (kerr) {
        err = rp_errf(es, esz, RP_ERR_KAFKA, "metadata of %s: %s",
                      r->conf.topic, rd_kafka_err2str(kerr));
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        err = rp_errf(es, esz, RP_ERR_KAFKA, "topic %s: %s", r->conf.topic,
                      md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                    : "not found");
        goto out;
    }
    n = (size_t)md->topics[0].partition_cnt;
    if (n == 0 || n > RP_REPLAY_PARTITIONS_MAX) {
        err = rp_errf(es, esz, RP_ERR_KAFKA, "topic %s has %zu partitions",
                      r->conf.topic, n);
        goto out;
    }
    ids = calloc(n, sizeof(*ids));
    ts = calloc(n, sizeof(*ts));
    te = calloc(n, sizeof(*te));
    r->parts = calloc(n, sizeof(*r->parts));
    if (!ids || !ts || !te || !r->parts) {
        err = rp_errf(es, esz, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = md->topics[0].partitions[i].id;
    /* Every partition an offset range or --partition names must exist. */
    for (size_t k = 0; k <= r->conf.n_ranges; k++) {
        int32_t want = k < r->conf.n_ranges ? r->conf.ranges[k].partition
                                            : r->conf.partition;
        bool found = want < 0;

        for (size_t i = 0; i < n && !found; i++)
            found = ids[i] == want;
        if (!found) {
            err = rp_errf(es, esz, RP_ERR_INVALID,
                          "partition %d: topic %s has partitions 0..%zu only",
                          (int)want, r->conf.topic, n - 1);
            goto out;
        }
    }
    if (!r->conf.n_ranges) {
        if ((err = offsets_at(r, ids, n, r->conf.since_ms, ts, es, esz)))
            goto out;
        if (r->conf.has_until &&
            (err = offsets_at(r, ids, n, r->conf.until_ms, te, es, esz)))
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t lo, hi;
        part_t *p = &r->parts[r->n_parts];
        bool empty;

        if (!r->conf.n_ranges && r->conf.partition >= 0 &&
            ids[i] != r->conf.partition)
            continue;
        kerr = rd_kafka_query_watermark_offsets(r->consumer, r->conf.topic,
                                                ids[i], &lo, &hi,
                                                RP_REPLAY_META_TIMEOUT_MS);
        if (kerr) {
            err = rp_errf(es, esz, RP_ERR_KAFKA,
                          "watermarks of %s partition %d: %s", r->conf.topic,
                          (int)ids[i], rd_kafka_err2str(kerr));
            goto out;
        }
        if ((err = rp_replay_resolve(&r->conf, ids[i], lo, hi, ts[i], te[i],
                                     &p->start, &p->end, &empty, es, esz)))
            goto out;
        if (empty)
            continue;
        p->id = ids[i];
        p->next = p->start;
        r->total += (uint64_t)(p->end - p->start + 1);
        r->n_parts++;
    }
out:
    free(ids);
    free(ts);
    free(te);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return err;
}

static void progress(replay_t *r, bool final)
{
    int64_t now = rp_time_mono_ms();
    unsigned pct;
    char bar[31];

    if (!r->progress || !r->total)
        return;
    if (final) {
        fprintf(stderr, "\r\033[K");
        return;
    }
    if (now - r->last_progress_ms < RP_REPLAY_PROGRESS_MS)
        return;
    r->last_progress_ms = now;
    pct = (unsigned)(r->seen * 100 / r->total);
    for (unsigned i = 0; i < 30; i++)
        bar[i] = i < pct * 30 / 100 ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3u%% %llu/%llu", bar, pct,
            (unsigned long long)r->seen, (unsigned long long)r->total);
}

/* Write one JSON line (stdout). false on a write error. */
static int out_errno; /* why stdout failed (ENOMEM: a line not made) */

static bool print_json(const rp_replay_rec_t *rec)
{
    char *line = rp_replay_rec_json(rec);
    bool ok;

    errno = 0;
    ok = line && printf("%s\n", line) >= 0 && !ferror(stdout);
    if (!ok && !out_errno)
        out_errno = !line ? ENOMEM : errno ? errno : EIO;
    free(line);
    return ok;
}

/* Build the view of a consumed message; hdrs has RP_REPLAY_HDRS_MAX. */
static void view(const rd_kafka_message_t *m, rp_replay_rec_t *rec,
                 rp_replay_hdr_t *hdrs)
{
    rd_kafka_headers_t *h = NULL;
    rd_kafka_timestamp_type_t tstype;

    memset(rec, 0, sizeof(*rec));
    rec->topic = rd_kafka_topic_name(m->rkt);
    rec->partition = m->partition;
    rec->offset = m->offset;
    rec->ts_ms = rd_kafka_message_timestamp(m, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        rec->ts_ms = -1;
    rec->key = m->key;
    rec->keylen = m->key_len;
    rec->value = m->payload;
    rec->len = m->len;
    rec->hdrs = hdrs;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const void *v;
        size_t len;
        const char *name;

        for (size_t i = 0; rec->n_hdrs < RP_REPLAY_HDRS_MAX &&
                           !rd_kafka_header_get_all(h, i, &name, &v, &len);
             i++) {
            hdrs[rec->n_hdrs].name = name;
            hdrs[rec->n_hdrs].value = v;
            hdrs[rec->n_hdrs].len = len;
            rec->n_hdrs++;
        }
    }
}

/* Send (or with --dry-run print) one record. Headers taken. */
static bool send_rec(replay_t *r, const char *topic, const char *key,
                     size_t keylen, const char *value, size_t len,
                     rd_kafka_headers_t *h, int64_t ts_ms)
{
    rd_kafka_resp_err_t kerr;

    if (r->conf.dry_run) {
        rp_replay_hdr_t hdrs[RP_REPLAY_HDRS_MAX];
        rp_replay_rec_t out = {.topic = topic, .partition = -1, .offset = -1,
                               .ts_ms = -1, .key = key, .keylen = keylen,
                               .value = value, .len = len, .hdrs = hdrs};
        const char *name;
        const void *v;
        size_t vl;

        for (size_t i = 0; out.n_hdrs < RP_REPLAY_HDRS_MAX &&
                           !rd_kafka_header_get_all(h, i, &name, &v, &vl);
             i++)
            hdrs[out.n_hdrs++] = (rp_replay_hdr_t){name, v, vl};
        print_json(&out);
        rd_kafka_headers_destroy(h);
        r->st.sent++;
        return true;
    }
    do {
        kerr = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_TIMESTAMP(ts_ms > 0 ? ts_ms : 0), RD_KAFKA_V_END);
        if (kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(r->producer, 100);
    } while (kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL && !stop_flag);
    if (kerr) {
        rd_kafka_headers_destroy(h); /* not taken on failure */
        r->st.failed++;
        fprintf(stderr, "%s: send to %s failed: %s\n", prog, topic,
                rd_kafka_err2str(kerr));
        return false;
    }
    rd_kafka_poll(r->producer, 0);
    return true;
}

/* rec's headers, less those whose name starts with drop (NULL: none) and,
 * with drop_dlq, the worker's DLQ annotations. */
static rd_kafka_headers_t *copy_headers(const rp_replay_rec_t *rec,
                                        const char *drop, bool drop_dlq)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(rec->n_hdrs + 2);

    for (size_t i = 0; i < rec->n_hdrs; i++) {
        const char *n = rec->hdrs[i].name;

        if ((drop && !strncmp(n, drop, strlen(drop))) ||
            (drop_dlq && rp_replay_is_dlq_annotation(n)))
            continue;
        rd_kafka_header_add(h, n, -1, rec->hdrs[i].value,
                            rec->hdrs[i].value ? (ssize_t)rec->hdrs[i].len : 0);
    }
    return h;
}

static void add_source(rd_kafka_headers_t *h, const rp_replay_rec_t *rec)
{
    char src[512];

    snprintf(src, sizeof(src), "%s/%d/%lld", rec->topic, (int)rec->partition,
             (long long)rec->offset);
    rd_kafka_header_add(h, RP_REPLAY_HEADER_SOURCE, -1, src, -1);
}

/* One record in range: filter, then the mode's action. false: stop
 * (a write error on stdout). */
static bool handle(replay_t *r, const rd_kafka_message_t *m)
{
    rp_replay_hdr_t hdrs[RP_REPLAY_HDRS_MAX];
    rp_replay_rec_t rec;
    rp_replay_skip_t why;
    rd_kafka_headers_t *h;
    char es[512];

    view(m, &rec, hdrs);
    r->st.read++;
    if (!rp_replay_match(&r->conf, &rec, &why)) {
        r->st.skipped[why]++;
        return true;
    }
    r->st.matched++;
    switch (r->conf.mode) {
    case RP_REPLAY_PRINT:
        if (!print_json(&rec))
            return false;
        break;
    case RP_REPLAY_COPY:
        (void)send_rec(r, r->conf.copy_to, rec.key, rec.keylen, rec.value, rec.len,
                 copy_headers(&rec, NULL, false), rec.ts_ms);
        break;
    case RP_REPLAY_REEXEC: {
        char sess[RP_ID_MAX + 1], exec[RP_ID_MAX + 1], orig[RP_ID_MAX + 1];
        char *json;

        if (rp_replay_rewrite(&r->conf, &rec, &json, sess, exec, orig, &why,
                              es, sizeof(es))) {
            r->st.matched--;
            r->st.skipped[why]++;
            fprintf(stderr, "%s: skipped %s/%d/%lld: %s\n", prog, rec.topic,
                    (int)rec.partition, (long long)rec.offset, es);
            break;
        }
        /* Earlier replay headers are replaced by this replay's. */
        h = copy_headers(&rec, "runpool-replay-", false);
        rd_kafka_header_add(h, RP_REPLAY_HEADER_OF, -1, orig, -1);
        add_source(h, &rec);
        send_rec(r, r->conf.requests_topic, sess, strlen(sess), json,
                 strlen(json), h, 0);
        free(json);
        break;
    }
    case RP_REPLAY_FROM_DLQ:
        if (rp_replay_hdr_find(&rec, "runpool.payload.truncated_from")) {
            /* The DLQ holds only the start of it: the whole original is
             * at its source offset (see its runpool.source.* headers). */
            r->st.matched--;
            r->st.skipped[RP_REPLAY_SKIP_TRUNCATED]++;
            break;
        }
        /* The worker's annotations go; it adds fresh ones if it rejects
         * the record again. */
        h = copy_headers(&rec, "runpool-replay-", true);
        add_source(h, &rec);
        send_rec(r, r->conf.requests_topic, rec.key, rec.keylen, rec.value,
                 rec.len, h, 0);
        break;
    }
    /* A --dry-run line that could not be written (full disk) stops the
     * run like a failed print does. */
    return !ferror(stdout);
}

static part_t *find_part(replay_t *r, int32_t id)
{
    for (size_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].id == id)
            return &r->parts[i];
    return NULL;
}

static size_t parts_left(const replay_t *r)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_parts; i++)
        n += !r->parts[i].done;
    return n;
}

/* Read every partition to its end. RP_OK, or why it stopped early. */
static rp_err_t run(replay_t *r, char *es, size_t esz)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)r->n_parts);
    rd_kafka_resp_err_t kerr;
    int64_t last = rp_time_mono_ms();
    rp_err_t err = RP_OK;

    for (size_t i = 0; i < r->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, r->conf.topic, r->parts[i].id)
            ->offset = r->parts[i].start;
    kerr = r->n_parts ? rd_kafka_assign(r->consumer, l) : 0;
    rd_kafka_topic_partition_list_destroy(l);
    if (kerr)
        return rp_errf(es, esz, RP_ERR_KAFKA, "assign: %s",
                       rd_kafka_err2str(kerr));
    while (parts_left(r) && !stop_flag) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 200);
        part_t *p;

        if (r->producer)
            rd_kafka_poll(r->producer, 0);
        progress(r, false);
        if (!m) {
            if (rp_time_mono_ms() - last > r->conf.idle_timeout_s * 1000LL) {
                for (size_t i = 0; i < r->n_parts; i++)
                    if (!r->parts[i].done)
                        return rp_errf(es, esz, RP_ERR_TIMEOUT,
                                       "no record for %d s with partition %d "
                                       "not read to offset %lld (an open "
                                       "transaction holds read_committed "
                                       "back?); stopped",
                                       r->conf.idle_timeout_s,
                                       (int)r->parts[i].id,
                                       (long long)r->parts[i].end);
            }
            continue;
        }
        last = rp_time_mono_ms();
        p = m->rkt && rd_kafka_topic_name(m->rkt) &&
                    !strcmp(rd_kafka_topic_name(m->rkt), r->conf.topic)
                ? find_part(r, m->partition)
                : NULL;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* EOF past the end: the rest were control records. Before the
             * end: the last stable offset is behind, keep waiting. */
            if (p && m->offset > p->end && !p->done) {
                r->seen += (uint64_t)(p->end + 1 - p->next);
                p->done = true;
            }
        } else if (m->err) {
            err = rp_errf(es, esz, RP_ERR_KAFKA, "consume %s: %s",
                          r->conf.topic, rd_kafka_message_errstr(m));
            if (rd_kafka_fatal_error(r->consumer, NULL, 0) ||
                m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                rd_kafka_message_destroy(m);
                return err;
            }
            fprintf(stderr, "%s: %s\n", prog, es);
            err = RP_OK;
        } else if (p && !p->done) {
            int64_t upto = m->offset < p->end ? m->offset : p->end;

            /* Offsets skipped over (control records, aborted ones)
             * count as seen too, so the bar reaches 100 %. */
            if (upto >= p->next)
                r->seen += (uint64_t)(upto + 1 - p->next);
            if (m->offset <= p->end) {
                if (!handle(r, m)) {
                    rd_kafka_message_destroy(m);
                    return rp_errf(es, esz, RP_ERR_IO,
                                   "writing to stdout failed: %s",
                                   strerror(out_errno ? out_errno : EIO));
                }
            }
            if (m->offset >= p->end)
                p->done = true;
            if (m->offset + 1 > p->next)
                p->next = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    if (stop_flag)
        return rp_errf(es, esz, RP_ERR_CANCELLED,
                       "interrupted before the range end");
    return RP_OK;
}

int main(int argc, char **argv)
{
    replay_t *r = calloc(1, sizeof(*r));
    char es[1024], summary[1024];
    int status = RP_REPLAY_EXIT_FAILED;
    rp_err_t err;

    if (!r) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return RP_REPLAY_EXIT_FAILED;
    }
    rp_log_init("replay", RP_LOG_WARN);
    if (rp_replay_conf_parse(&r->conf, argc, argv, getenv("RUNPOOL_BROKERS"),
                             getenv("RUNPOOL_REQUESTS_TOPIC"),
                             getenv("RUNPOOL_DLQ_TOPIC"), es, sizeof(es))) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, es, prog);
        status = RP_REPLAY_EXIT_USAGE;
        goto out;
    }
    if (r->conf.help) {
        rp_replay_usage(stdout, prog);
        status = RP_REPLAY_EXIT_OK;
        goto out;
    }
    if (r->conf.version) {
        printf("%s %s\n", prog, RP_REPLAY_VERSION);
        status = RP_REPLAY_EXIT_OK;
        goto out;
    }
    if (r->conf.mode == RP_REPLAY_REEXEC)
        fprintf(stderr, "%s: replay tag %s: new execution ids end in .r%s "
                "(--replay-tag %s resumes this run)\n", prog, r->conf.tag,
                r->conf.tag, r->conf.tag);
    r->progress = r->conf.progress < 0 ? isatty(STDERR_FILENO) != 0
                                       : r->conf.progress == 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is EPIPE, handled */
    if ((err = rp_kafka_props_load(&r->kprops, r->conf.kafka_config,
                                   r->conf.props, r->conf.n_props, NULL, es,
                                   sizeof(es)))) {
        fprintf(stderr, "%s: %s\n", prog, es);
        status = RP_REPLAY_EXIT_USAGE;
        goto out;
    }
    if ((err = make_consumer(r, es, sizeof(es)))) {
        fprintf(stderr, "%s: %s\n", prog, es);
        status = err == RP_ERR_INVALID ? RP_REPLAY_EXIT_USAGE
                                       : RP_REPLAY_EXIT_FAILED;
        goto out;
    }
    if ((err = resolve(r, es, sizeof(es)))) {
        fprintf(stderr, "%s: %s\n", prog, es);
        status = err == RP_ERR_INVALID ? RP_REPLAY_EXIT_USAGE
                                       : RP_REPLAY_EXIT_FAILED;
        goto out;
    }
    if (r->conf.mode != RP_REPLAY_PRINT && !r->conf.dry_run &&
        (err = make_producer(r, es, sizeof(es)))) {
        fprintf(stderr, "%s: %s\n", prog, es);
        status = err == RP_ERR_INVALID ? RP_REPLAY_EXIT_USAGE
                                       : RP_REPLAY_EXIT_FAILED;
        goto out;
    }
    err = run(r, es, sizeof(es));
    progress(r, true);
    errno = 0;
    if (fflush(stdout) == EOF && !out_errno)
        out_errno = errno ? errno : EIO;
    if ((out_errno || ferror(stdout)) && !err)
        err = rp_errf(es, sizeof(es), RP_ERR_IO, "writing to stdout failed: %s",
                      strerror(out_errno ? out_errno : EIO));
    /* The reader went away (| head): an end, not a failure; the summary
     * still goes to stderr. */
    if (out_errno == EPIPE)
        err = RP_OK;
    if (err)
        fprintf(stderr, "%s: %s\n", prog, es);
    if (r->producer) {
        rd_kafka_flush(r->producer, RP_REPLAY_FLUSH_TIMEOUT_MS);
        if (rd_kafka_outq_len(r->producer) > 0) {
            fprintf(stderr, "%s: %d records not acknowledged in %d ms\n",
                    prog, rd_kafka_outq_len(r->producer),
                    RP_REPLAY_FLUSH_TIMEOUT_MS);
            r->st.failed += (uint64_t)rd_kafka_outq_len(r->producer);
        }
    }
    rp_replay_summary(&r->st, r->conf.dry_run, summary, sizeof(summary));
    fprintf(stderr, "%s: %s\n", prog, summary);
    status = err || r->st.failed ? RP_REPLAY_EXIT_FAILED : RP_REPLAY_EXIT_OK;
out:
    if (r->consumer) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    if (r->producer)
        rd_kafka_destroy(r->producer);
    free(r->parts);
    rp_kafka_props_clear(&r->kprops);
    free(r);
    return status;
}
