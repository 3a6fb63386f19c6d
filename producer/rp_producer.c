#include "rp_producer.h"

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_hash.h"
#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_sign.h"
#include "rp_time.h"

/* Hash buckets for the tracked ids; chains stay short up to tens of
 * thousands of outstanding requests. */
#define RP_PRODUCER_BUCKETS 4096
/* Upper bound of one librdkafka poll, so deadlines are re-checked often. */
#define RP_PRODUCER_POLL_SLICE_MS 500
/* Pause between attempts to read the results partitions at creation. */
#define RP_PRODUCER_RETRY_MS 200

/* An execution id this producer sent, and its result once it arrived.
 * Every entry is on the `sent` list (oldest first); entries holding a result
 * are also on the `arrived` list (oldest result first). */
typedef struct rp_tracked {
    char id[RP_ID_MAX + 1];
    char *result; /* owned; NULL until the result arrives */
    size_t result_len;
    struct rp_tracked *hnext; /* hash chain */
    struct rp_tracked *sent_prev, *sent_next;
    struct rp_tracked *arr_prev, *arr_next;
} rp_tracked_t;

struct rp_producer {
    rd_kafka_t *rk;     /* the producer client */
    rd_kafka_topic_t *requests_rkt; /* held so the topic stays known */
    rd_kafka_t *reader; /* results reader; NULL without watch_results */
    char *requests_topic;
    char *results_topic;
    size_t pending_max;

    /* Delivery report of the message rp_producer_send is blocked on:
     * each message carries a sequence number as its opaque, so a late
     * report of a message whose send gave up is recognised as such. */
    uint64_t next_seq;
    uint64_t dr_seq; /* 0 = nobody waiting */
    bool dr_done;
    rd_kafka_resp_err_t dr_err;

    rp_tracked_t *buckets[RP_PRODUCER_BUCKETS];
    rp_tracked_t *sent_head, *sent_tail;
    rp_tracked_t *arr_head, *arr_tail;
    size_t n_tracked;
    size_t n_pending;
    size_t pending_bytes;

    rp_sign_keys_t *sign_keys; /* NULL: requests go out unsigned */
    char *sign_kid;            /* NULL: the first key */
};

/* ---- tracked ids ---- */

static size_t rp_producer_hash(const char *id)
{
    return (size_t)(rp_hash_fnv1a64_str(RP_HASH_FNV1A64_INIT, id) %
                    RP_PRODUCER_BUCKETS);
}

/* The slot that points at id's entry, or at the NULL ending its chain. */
static rp_tracked_t **rp_producer_slot(rp_producer_t *p, const char *id)
{
    rp_tracked_t **slot = &p->buckets[rp_producer_hash(id)];

    while (*slot && strcmp((*slot)->id, id) != 0)
        slot = &(*slot)->hnext;
    return slot;
}

static void rp_producer_arrived_unlink(rp_producer_t *p, rp_tracked_t *e)
{
    if (e->arr_prev)
        e->arr_prev->arr_next = e->arr_next;
    else
        p->arr_head = e->arr_next;
    if (e->arr_next)
        e->arr_next->arr_prev = e->arr_prev;
    else
        p->arr_tail = e->arr_prev;
    e->arr_prev = e->arr_next = NULL;
    p->n_pending--;
    p->pending_bytes -= e->result_len;
}

/* Forget an id entirely, with its result if any. */
static void rp_producer_forget(rp_producer_t *p, rp_tracked_t *e)
{
    rp_tracked_t **slot = rp_producer_slot(p, e->id);

    *slot = e->hnext;
    if (e->sent_prev)
        e->sent_prev->sent_next = e->sent_next;
    else
        p->sent_head = e->sent_next;
    if (e->sent_next)
        e->sent_next->sent_prev = e->sent_prev;
    else
        p->sent_tail = e->sent_prev;
    if (e->result)
        rp_producer_arrived_unlink(p, e);
    p->n_tracked--;
    free(e->result);
    free(e);
}

/* Remember that id was sent (no-op when already remembered). */
static rp_err_t rp_producer_track(rp_producer_t *p, const char *id)
{
    rp_tracked_t **slot = rp_producer_slot(p, id);
    rp_tracked_t *e;
    size_t n = strlen(id);

    if (*slot)
        return RP_OK;
    if (n > RP_ID_MAX)
        return RP_ERR_INVALID;
    if (p->n_tracked >= RP_PRODUCER_TRACKED_MAX) {
        rp_log(RP_LOG_WARN, "tracked_id_dropped", p->sent_head->id, NULL,
               "more than %d ids sent and not waited for; forgetting the "
               "oldest, its result will be ignored",
               RP_PRODUCER_TRACKED_MAX);
        rp_producer_forget(p, p->sent_head);
        slot = rp_producer_slot(p, id); /* the chain may have changed */
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return RP_ERR_NOMEM;
    memcpy(e->id, id, n + 1);
    *slot = e;
    e->sent_prev = p->sent_tail;
    if (p->sent_tail)
        p->sent_tail->sent_next = e;
    else
        p->sent_head = e;
    p->sent_tail = e;
    p->n_tracked++;
    return RP_OK;
}

/* Keep a copy of a result for a later wait; the first result of an id wins. */
static void rp_producer_hold(rp_producer_t *p, rp_tracked_t *e,
                             const void *data, size_t len)
{
    if (e->result)
        return;
    e->result = malloc(len + 1);
    if (!e->result) {
        rp_log(RP_LOG_ERROR, "result_dropped", e->id, NULL,
               "out of memory holding a %zu-byte result", len);
        return;
    }
    memcpy(e->result, data, len);
    e->result[len] = '\0';
    e->result_len = len;
    e->arr_prev = p->arr_tail;
    if (p->arr_tail)
        p->arr_tail->arr_next = e;
    else
        p->arr_head = e;
    p->arr_tail = e;
    p->n_pending++;
    p->pending_bytes += len;

    while (p->n_pending > p->pending_max ||
           p->pending_bytes > RP_PRODUCER_PENDING_BYTES_MAX) {
        rp_tracked_t *old = p->arr_head;

        rp_log(RP_LOG_WARN, "result_dropped", old->id, NULL,
               "%zu results (%zu bytes) held and not waited for; dropping "
               "the oldest", p->n_pending, p->pending_bytes);
        rp_producer_forget(p, old);
    }
}

/* ---- librdkafka callbacks ---- */

static void rp_producer_log_cb(const rd_kafka_t *rk, int level,
                               const char *fac, const char *buf)
{
    /* syslog levels; librdkafka's "info" (6) is chatty, so it is debug. */
    rp_log_level_t lvl = level <= 3   ? RP_LOG_ERROR
                         : level == 4 ? RP_LOG_WARN
                         : level == 5 ? RP_LOG_INFO
                                      : RP_LOG_DEBUG;

    /* -X settings go to both clients, so each one ignoring the other's
     * properties is expected, not worth a warning. */
    if (strcmp(fac, "CONFWARN") == 0 &&
        strstr(buf, "will be ignored by this"))
        lvl = RP_LOG_DEBUG;

    rp_log(lvl, "kafka_log", NULL, NULL, "%s: %s: %s", rd_kafka_name(rk), fac,
           buf);
}

static void rp_producer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                                 void *opaque)
{
    (void)opaque;
    rp_log(err == RD_KAFKA_RESP_ERR__FATAL ? RP_LOG_ERROR : RP_LOG_WARN,
           "kafka_error", NULL, NULL, "%s: %s: %s", rd_kafka_name(rk),
           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Copy header `name` of m into out (RP_ID_MAX+1 bytes); false if absent. */
static bool rp_producer_header(const rd_kafka_message_t *m, const char *name,
                               char out[RP_ID_MAX + 1])
{
    rd_kafka_headers_t *hdrs;
    const void *val;
    size_t size;

    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &val, &size) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || size == 0 || size > RP_ID_MAX)
        return false;
    memcpy(out, val, size);
    out[size] = '\0';
    return true;
}

/* Called from rd_kafka_poll/flush, i.e. on the thread using the producer. */
static void rp_producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                              void *opaque)
{
    rp_producer_t *p = opaque;
    uint64_t seq = (uint64_t)(uintptr_t)m->_private;
    char id[RP_ID_MAX + 1] = "";

    (void)rk;
    if (p->dr_seq != 0 && seq == p->dr_seq) {
        p->dr_done = true;
        p->dr_err = m->err;
        return;
    }
    /* The send of this message already returned RP_ERR_TIMEOUT. */
    rp_producer_header(m, "execution_id", id);
    if (m->err)
        rp_log(RP_LOG_WARN, "late_delivery_failed", id, NULL,
               "request not delivered: %s", rd_kafka_err2str(m->err));
    else
        rp_log(RP_LOG_INFO, "late_delivery", id, NULL,
               "request delivered after its send timed out");
}

/* ---- creation ---- */

static int64_t rp_producer_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : rp_time_mono_ms() + timeout_ms;
}

/* Milliseconds left until deadline (-1 = none), at most `slice`. */
static int rp_producer_left(int64_t deadline, int slice)
{
    int64_t left;

    if (deadline < 0)
        return slice;
    left = deadline - rp_time_mono_ms();
    if (left <= 0)
        return 0;
    return left < slice ? (int)left : slice;
}

/* One metadata request for topic (rkt's name). On success *out holds a
 * topic with at least one partition; caller frees with
 * rd_kafka_metadata_destroy. */
static rp_err_t rp_producer_meta_once(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                      int64_t deadline,
                                      const rd_kafka_metadata_t **out,
                                      char *errstr, size_t errstr_size)
{
    const char *topic = rd_kafka_topic_name(rkt);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t kerr;

    *out = NULL;
    kerr = rd_kafka_metadata(rk, 0, rkt, &md,
                             rp_producer_left(deadline, INT32_MAX));
    if (kerr)
        return rp_errf(errstr, errstr_size,
                       kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? RP_ERR_TIMEOUT
                                                            : RP_ERR_KAFKA,
                       "metadata of topic %s: %s", topic,
                       rd_kafka_err2str(kerr));
    if (md->topic_cnt != 1 || md->topics[0].err ||
        md->topics[0].partition_cnt <= 0) {
        kerr = md->topic_cnt == 1 ? md->topics[0].err
                                  : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        rd_kafka_metadata_destroy(md);
        return rp_errf(errstr, errstr_size,
                       kerr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                           ? RP_ERR_NOT_FOUND
                           : RP_ERR_KAFKA,
                       "topic %s: %s", topic,
                       kerr ? rd_kafka_err2str(kerr) : "no partitions");
    }
    *out = md;
    return RP_OK;
}

/* Metadata of rkt's topic, retrying until deadline: right after a broker
 * starts, leaders may not be elected yet. A missing topic is reported at
 * once (most likely a typo). */
static rp_err_t rp_producer_meta(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                 int64_t deadline,
                                 const rd_kafka_metadata_t **out,
                                 char *errstr, size_t errstr_size)
{
    rp_err_t err;

    while ((err = rp_producer_meta_once(rk, rkt, deadline, out, errstr,
                                        errstr_size)) &&
           err != RP_ERR_NOT_FOUND && rp_producer_left(deadline, 1) > 0)
        usleep(RP_PRODUCER_RETRY_MS * 1000);
    return err;
}

/* Settings both clients share, in the order that lets -X props win. */
static rp_err_t rp_producer_base_conf(rd_kafka_conf_t *conf,
                                      const rp_producer_conf_t *c,
                                      const char *client_prefix,
                                      char *errstr, size_t errstr_size)
{
    rp_err_t err;

    if ((err = rp_kafka_set(conf, "bootstrap.servers", c->brokers, errstr,
                            errstr_size)) ||
        (err = rp_kafka_unique_client_id(conf, client_prefix, errstr,
                                         errstr_size)))
        return err;
    rd_kafka_conf_set_log_cb(conf, rp_producer_log_cb);
    rd_kafka_conf_set_error_cb(conf, rp_producer_error_cb);
    return RP_OK;
}

static rp_err_t rp_producer_new_client(rp_producer_t *p,
                                       const rp_producer_conf_t *c,
                                       char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const rd_kafka_metadata_t *md;
    char kerr[512];
    rp_err_t err;

    if ((err = rp_producer_base_conf(conf, c, "runpool-produce", errstr,
                                     errstr_size)) ||
        (err = rp_kafka_producer_defaults(conf, errstr, errstr_size)) ||
        (err = rp_kafka_set_props_for(conf, RP_KAFKA_PRODUCER, c->props,
                                      c->n_props, errstr, errstr_size)))
        goto out;
    rd_kafka_conf_set_dr_msg_cb(conf, rp_producer_dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!p->rk) {
        err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA,
                      "creating kafka producer: %s", kerr);
        goto out;
    }
    conf = NULL; /* rd_kafka_new took it */

    /* Learn the requests topic now: librdkafka would otherwise look a new
     * topic up only on its next 1-second tick, delaying the first send,
     * and a missing topic or unreachable cluster is reported here, clearly. */
    p->requests_rkt = rd_kafka_topic_new(p->rk, p->requests_topic, NULL);
    if (!p->requests_rkt) {
        err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA, "topic %s: %s",
                      p->requests_topic,
                      rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    if ((err = rp_producer_meta(
             p->rk, p->requests_rkt,
             rp_producer_deadline(RP_PRODUCER_CONNECT_TIMEOUT_MS), &md,
             errstr, errstr_size)))
        goto out;
    rd_kafka_metadata_destroy(md);
out:
    if (conf) /* rd_kafka_conf_destroy does not accept NULL */
        rd_kafka_conf_destroy(conf);
    return err;
}

/* Every results partition with offset = its current end (high watermark),
 * ready for rd_kafka_assign. */
static rp_err_t rp_producer_read_ends(rp_producer_t *p, int64_t deadline,
                                      rd_kafka_topic_partition_list_t **out,
                                      char *errstr, size_t errstr_size)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_topic_t *rkt;
    rp_err_t err;

    rkt = rd_kafka_topic_new(p->reader, p->results_topic, NULL);
    if (!rkt)
        return rp_errf(errstr, errstr_size, RP_ERR_KAFKA, "topic %s: %s",
                       p->results_topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    err = rp_producer_meta(p->reader, rkt, deadline, &md, errstr, errstr_size);
    rd_kafka_topic_destroy(rkt);
    if (err)
        goto out;

    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t pid = md->topics[0].partitions[i].id;
        rd_kafka_resp_err_t kerr;
        int64_t lo, hi;

        /* Synchronous on purpose: OFFSET_END would be resolved later, in
         * the background, and could skip a result of our first send. */
        kerr = rd_kafka_query_watermark_offsets(
            p->reader, p->results_topic, pid, &lo, &hi,
            rp_producer_left(deadline, INT32_MAX));
        if (kerr) {
            err = rp_errf(errstr, errstr_size,
                          kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? RP_ERR_TIMEOUT
                                                               : RP_ERR_KAFKA,
                          "end offset of %s [%d]: %s", p->results_topic,
                          (int)pid, rd_kafka_err2str(kerr));
            goto out;
        }
        rd_kafka_topic_partition_list_add(parts, p->results_topic, pid)
            ->offset = hi;
    }
    *out = parts;
    parts = NULL;
out:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    return err;
}

static rp_err_t rp_producer_new_reader(rp_producer_t *p,
                                       const rp_producer_conf_t *c,
                                       char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t deadline = rp_producer_deadline(RP_PRODUCER_CONNECT_TIMEOUT_MS);
    char kerr[512], group[256];
    size_t glen = sizeof(group);
    rd_kafka_resp_err_t aerr;
    rp_err_t err;

    if ((err = rp_producer_base_conf(conf, c, "runpool-produce-reader",
                                     errstr, errstr_size)) ||
        (err = rp_kafka_set_props_for(conf, RP_KAFKA_CONSUMER, c->props,
                                      c->n_props, errstr, errstr_size)))
        goto out;
    /* librdkafka wants a group.id for assign() and consumer_poll(). We
     * never subscribe or commit, and a unique id (set after the -X props,
     * so none can override it) keeps us out of the workers' group. */
    if (rd_kafka_conf_get(conf, "client.id", group, &glen) !=
        RD_KAFKA_CONF_OK) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL, "no client.id");
        goto out;
    }
    if ((err = rp_kafka_set(conf, "group.id", group, errstr, errstr_size)) ||
        (err = rp_kafka_set(conf, "enable.auto.commit", "false", errstr,
                            errstr_size)) ||
        (err = rp_kafka_set(conf, "enable.auto.offset.store", "false",
                            errstr, errstr_size)))
        goto out;
    p->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr));
    if (!p->reader) {
        err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA,
                      "creating kafka consumer: %s", kerr);
        goto out;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(p->reader);

    if ((err = rp_producer_read_ends(p, deadline, &parts, errstr,
                                     errstr_size)))
        goto out;
    aerr = rd_kafka_assign(p->reader, parts);
    if (aerr)
        err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA, "assign %s: %s",
                      p->results_topic, rd_kafka_err2str(aerr));
out:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (conf) /* rd_kafka_conf_destroy does not accept NULL */
        rd_kafka_conf_destroy(conf);
    return err;
}

rp_err_t rp_producer_new(const rp_producer_conf_t *conf, rp_producer_t **out,
                         char *errstr, size_t errstr_size)
{
    rp_producer_t *p = NULL;
    rp_err_t err = RP_OK;

    *out = NULL;
    if (!conf || !conf->brokers || !*conf->brokers)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "no kafka brokers given");
    p = calloc(1, sizeof(*p));
    if (!p)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    p->requests_topic = strdup(conf->requests_topic ? conf->requests_topic
                                                    : RP_TOPIC_REQUESTS_DEFAULT);
    p->results_topic = strdup(conf->results_topic ? conf->results_topic
                                                  : RP_TOPIC_RESULTS_DEFAULT);
    if (!p->requests_topic || !p->results_topic) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    p->pending_max = conf->pending_max ? conf->pending_max
                                       : RP_PRODUCER_PENDING_MAX;
    if (conf->signing_keys && *conf->signing_keys &&
        (err = rp_sign_keys_load(conf->signing_keys, &p->sign_keys, errstr,
                                 errstr_size)))
        goto out;
    if (conf->signing_kid && *conf->signing_kid) {
        bool found = false;

        for (size_t i = 0; i < rp_sign_keys_count(p->sign_keys); i++)
            found |= !strcmp(rp_sign_keys_kid(p->sign_keys, i),
                             conf->signing_kid);
        if (!found) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "signing key id '%s' is not in %s",
                          conf->signing_kid,
                          p->sign_keys ? conf->signing_keys
                                       : "the key file (none given)");
            goto out;
        }
        if (!(p->sign_kid = strdup(conf->signing_kid))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((err = rp_producer_new_client(p, conf, errstr, errstr_size)))
        goto out;
    if (conf->watch_results &&
        (err = rp_producer_new_reader(p, conf, errstr, errstr_size)))
        goto out;
    *out = p;
    p = NULL;
out:
    rp_producer_destroy(p);
    return err;
}

/* ---- sending ---- */

/* Produce one payload and block until its delivery report or the deadline. */
static rp_err_t rp_producer_publish(rp_producer_t *p, const char *execution_id,
                                    const char *session_id, const char *payload,
                                    size_t len, int timeout_ms, char *errstr,
                                    size_t errstr_size)
{
    int64_t deadline = rp_producer_deadline(timeout_ms);
    uint64_t seq = ++p->next_seq;
    rd_kafka_resp_err_t kerr;
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    char sig[RP_SIGN_HEADER_MAX + 1];
    rp_err_t err = RP_OK;

    rd_kafka_header_add(h, "execution_id", -1, execution_id, -1);
    rd_kafka_header_add(h, "session_id", -1, session_id, -1);
    if (p->sign_keys) {
        /* Over the exact bytes sent: the key and the payload. */
        if ((err = rp_sign_header(p->sign_keys, p->sign_kid,
                                  rp_time_wall_ms() / 1000, session_id,
                                  strlen(session_id), payload, len, sig,
                                  errstr, errstr_size)))
            goto out;
        rd_kafka_header_add(h, RP_SIGN_HEADER_NAME, -1, sig, -1);
    }
    for (;;) {
        /* The headers are taken only on success. */
        kerr = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(p->requests_rkt),
            RD_KAFKA_V_KEY(session_id, strlen(session_id)),
            RD_KAFKA_V_VALUE((void *)payload, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq), RD_KAFKA_V_END);
        if (!kerr)
            h = NULL;
        if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /* Local queue full: serve delivery reports to make room. */
        if (rp_producer_left(deadline, 1) == 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TIMEOUT,
                          "local producer queue full; request %s not sent",
                          execution_id);
            goto out;
        }
        rd_kafka_poll(p->rk, rp_producer_left(deadline, 100));
    }
    if (kerr) {
        err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA,
                      "producing to %s: %s", p->requests_topic,
                      rd_kafka_err2str(kerr));
        goto out;
    }
    /* Track before delivery is confirmed: even if we stop waiting for the
     * report, the message may still arrive and be answered. */
    if (p->reader && (err = rp_producer_track(p, execution_id))) {
        err = rp_errf(errstr, errstr_size, err,
                      "tracking %s: out of memory", execution_id);
        goto out;
    }

    p->dr_seq = seq;
    p->dr_done = false;
    while (!p->dr_done) {
        int slice = rp_producer_left(deadline, RP_PRODUCER_POLL_SLICE_MS);

        if (slice == 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TIMEOUT,
                          "no delivery report for %s within %d ms (it may "
                          "still be delivered)", execution_id, timeout_ms);
            goto out;
        }
        rd_kafka_poll(p->rk, slice);
    }
    if (p->dr_err) {
        char fatal[512];

        if (rd_kafka_fatal_error(p->rk, fatal, sizeof(fatal)))
            err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA,
                          "delivering %s: fatal producer error: %s",
                          execution_id, fatal);
        else
            err = rp_errf(errstr, errstr_size, RP_ERR_KAFKA,
                          "delivering %s to %s: %s", execution_id,
                          p->requests_topic, rd_kafka_err2str(p->dr_err));
    }
out:
    if (h)
        rd_kafka_headers_destroy(h);
    p->dr_seq = 0;
    return err;
}

rp_err_t rp_producer_send(rp_producer_t *p, rp_request_t *req, int timeout_ms,
                          char *errstr, size_t errstr_size)
{
    char *json = NULL;
    rp_err_t err;

    if (!rp_id_valid(req->session_id, strlen(req->session_id)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "session_id: must be 1..%d chars of [A-Za-z0-9._:-]",
                       RP_ID_MAX);
    if (!req->execution_id[0]) {
        if ((err = rp_id_generate(req->execution_id)))
            return rp_errf(errstr, errstr_size, err,
                           "generating an execution_id: %s", rp_err_str(err));
    } else if (!rp_id_valid(req->execution_id, strlen(req->execution_id))) {
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "execution_id: must be 1..%d chars of [A-Za-z0-9._:-]",
                       RP_ID_MAX);
    }
    json = rp_request_to_json(req);
    if (!json)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "serialising request %s failed", req->execution_id);
    err = rp_producer_publish(p, req->execution_id, req->session_id, json,
                              strlen(json), timeout_ms, errstr, errstr_size);
    free(json);
    return err;
}

/* A valid id held in a JSON string member, or NULL. */
static const char *rp_producer_json_id(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsString(it) || !rp_id_valid(it->valuestring,
                                             strlen(it->valuestring)))
        return NULL;
    return it->valuestring;
}

rp_err_t rp_producer_send_json(rp_producer_t *p, const char *json, size_t len,
                               char out_execution_id[RP_ID_MAX + 1],
                               int timeout_ms, char *errstr,
                               size_t errstr_size)
{
    cJSON *root = NULL;
    const char *end = NULL, *sid, *eid;
    char generated[37];
    char *text = NULL;
    rp_err_t err = RP_OK;

    out_execution_id[0] = '\0';
    if (len > RP_REQUEST_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "request is %zu bytes, more than %d", len,
                       RP_REQUEST_MAX);
    if (memchr(json, '\0', len))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "request contains a NUL byte");
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "not valid JSON (error at byte %zu)",
                      end ? (size_t)(end - json) : (size_t)0);
        goto out;
    }
    /* cJSON stops after the first value; anything but blanks after it
     * means the line was not one JSON document. */
    for (; end < json + len; end++)
        if (!strchr(" \t\r\n", *end)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "unexpected text after the JSON object at byte %zu",
                          (size_t)(end - json));
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "not a JSON object");
        goto out;
    }
    if (!(sid = rp_producer_json_id(root, "session_id"))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "session_id: missing, or not 1..%d chars of "
                      "[A-Za-z0-9._:-]", RP_ID_MAX);
        goto out;
    }
    if (cJSON_HasObjectItem(root, "execution_id")) {
        if (!(eid = rp_producer_json_id(root, "execution_id"))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "execution_id: must be 1..%d chars of "
                          "[A-Za-z0-9._:-]", RP_ID_MAX);
            goto out;
        }
    } else {
        if ((err = rp_id_generate(generated))) {
            err = rp_errf(errstr, errstr_size, err,
                          "generating an execution_id: %s", rp_err_str(err));
            goto out;
        }
        if (!cJSON_AddStringToObject(root, "execution_id", generated)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
        eid = generated;
    }
    if (!cJSON_HasObjectItem(root, "v") &&
        !cJSON_AddNumberToObject(root, "v", RP_CONTRACT_VERSION)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* eid points into root (or generated), both alive until out. */
    snprintf(out_execution_id, RP_ID_MAX + 1, "%s", eid);
    err = rp_producer_publish(p, eid, sid, text, strlen(text), timeout_ms,
                              errstr, errstr_size);
out:
    cJSON_free(text);
    cJSON_Delete(root);
    return err;
}

/* ---- waiting ---- */

/* The execution id a result is addressed to: header first (cheap), the
 * JSON field for results published without headers. */
static bool rp_producer_result_id(const rd_kafka_message_t *m,
                                  char out[RP_ID_MAX + 1])
{
    cJSON *root;
    const cJSON *it;
    bool ok = false;

    if (rp_producer_header(m, "execution_id", out))
        return true;
    if (!m->payload)
        return false;
    root = cJSON_ParseWithLength(m->payload, m->len);
    it = cJSON_GetObjectItemCaseSensitive(root, "execution_id");
    if (cJSON_IsString(it) && strlen(it->valuestring) <= RP_ID_MAX) {
        snprintf(out, RP_ID_MAX + 1, "%s", it->valuestring);
        ok = out[0] != '\0';
    }
    cJSON_Delete(root);
    return ok;
}

/* Look at one message from the results topic. Returns true when it settles
 * the wait for `want` (*err says how: RP_OK with *result_json set, or an
 * error), false to keep waiting. Results for other ids we sent are held. */
static bool rp_producer_consider(rp_producer_t *p, const rd_kafka_message_t *m,
                                 const char *want, char **result_json,
                                 size_t *len, rp_err_t *err, char *errstr,
                                 size_t errstr_size)
{
    char id[RP_ID_MAX + 1];
    rp_tracked_t *e;
    char *data;

    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            rp_log(RP_LOG_WARN, "results_read_error", NULL, NULL,
                   "reading %s: %s", p->results_topic,
                   rd_kafka_message_errstr(m));
        return false;
    }
    if (!rp_producer_result_id(m, id)) {
        rp_log(RP_LOG_DEBUG, "result_ignored", NULL, NULL,
               "result without execution_id at %s [%d] offset %lld",
               p->results_topic, (int)m->partition, (long long)m->offset);
        return false;
    }
    e = *rp_producer_slot(p, id);
    if (strcmp(id, want) != 0) {
        if (!e)
            rp_log(RP_LOG_DEBUG, "result_ignored", id, NULL,
                   "result for an execution this producer did not send");
        else if (m->len > RP_RESULT_MAX)
            rp_log(RP_LOG_WARN, "result_dropped", id, NULL,
                   "result of %zu bytes is over %d", m->len, RP_RESULT_MAX);
        else
            rp_producer_hold(p, e, m->payload, m->len);
        return false;
    }

    if (e)
        rp_producer_forget(p, e);
    if (m->len > RP_RESULT_MAX) {
        *err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "result of %s is %zu bytes, more than %d", id, m->len,
                       RP_RESULT_MAX);
        return true;
    }
    data = malloc(m->len + 1);
    if (!data) {
        *err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "out of memory for a %zu-byte result", m->len);
        return true;
    }
    if (m->len)
        memcpy(data, m->payload, m->len);
    data[m->len] = '\0';
    *result_json = data;
    if (len)
        *len = m->len;
    *err = RP_OK;
    return true;
}

rp_err_t rp_producer_wait(rp_producer_t *p, const char *execution_id,
                          int timeout_ms, char **result_json, size_t *len,
                          char *errstr, size_t errstr_size)
{
    int64_t deadline = rp_producer_deadline(timeout_ms);
    rp_tracked_t *e;

    *result_json = NULL;
    if (len)
        *len = 0;
    if (!p->reader)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "producer was created without watch_results");
    if (!rp_id_valid(execution_id, strlen(execution_id)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "execution_id: must be 1..%d chars of [A-Za-z0-9._:-]",
                       RP_ID_MAX);

    e = *rp_producer_slot(p, execution_id);
    if (e && e->result) {
        /* It arrived while we waited for another id: hand it over. */
        *result_json = e->result;
        if (len)
            *len = e->result_len;
        rp_producer_arrived_unlink(p, e);
        e->result = NULL;
        rp_producer_forget(p, e);
        return RP_OK;
    }

    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(
            p->reader, rp_producer_left(deadline, RP_PRODUCER_POLL_SLICE_MS));
        rp_err_t err;

        /* Late delivery reports of timed-out sends are served here too. */
        rd_kafka_poll(p->rk, 0);
        if (m) {
            bool done = rp_producer_consider(p, m, execution_id, result_json,
                                             len, &err, errstr, errstr_size);

            rd_kafka_message_destroy(m);
            if (done)
                return err;
        }
        if (rp_producer_left(deadline, 1) == 0)
            return rp_errf(errstr, errstr_size, RP_ERR_TIMEOUT,
                           "no result for %s within %d ms", execution_id,
                           timeout_ms);
    }
}

size_t rp_producer_pending(const rp_producer_t *p)
{
    return p ? p->n_pending : 0;
}

void rp_producer_destroy(rp_producer_t *p)
{
    if (!p)
        return;
    if (p->reader) {
        rd_kafka_consumer_close(p->reader);
        rd_kafka_destroy(p->reader);
    }
    if (p->rk) {
        if (rd_kafka_flush(p->rk, RP_PRODUCER_FLUSH_TIMEOUT_MS)) {
            rp_log(RP_LOG_WARN, "requests_undelivered", NULL, NULL,
                   "%d request(s) not delivered within %d ms; dropping them",
                   rd_kafka_outq_len(p->rk), RP_PRODUCER_FLUSH_TIMEOUT_MS);
            /* Purged messages get a failed delivery report; serve them so
             * each one is logged with its execution_id. */
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE |
                                      RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(p->rk, 0);
        }
        if (p->requests_rkt)
            rd_kafka_topic_destroy(p->requests_rkt);
        rd_kafka_destroy(p->rk);
    }
    while (p->sent_head)
        rp_producer_forget(p, p->sent_head);
    free(p->requests_topic);
    free(p->results_topic);
    rp_sign_keys_destroy(p->sign_keys);
    free(p->sign_kid);
    free(p);
}
