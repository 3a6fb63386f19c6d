/* What runpool relies on from the development broker, i.e. from
 * librdkafka 2.0.2's mock cluster, tested against an in-process mock:
 *
 *  - it listens on 127.0.0.1 only;
 *  - an idempotent producer (rp_kafka_producer_defaults) with keys and
 *    headers works, retries injected produce errors without duplicates or
 *    reordering, and maps one key to one partition;
 *  - headers (including binary and NULL values) survive to the consumer;
 *  - a consumer group of two consumers splits 4 partitions, both with the
 *    default assignor (range,roundrobin: eager, revokes everything) and
 *    with cooperative-sticky (incremental: only moved partitions are
 *    revoked), and gives everything back when one leaves;
 *  - manual commits of explicit offsets, read back with rd_kafka_committed
 *    and honoured by a new consumer of the same group;
 *  - rd_kafka_pause_partitions / rd_kafka_resume_partitions.
 *
 * Timing (the reason for GROUP_SESSION_MS): the mock's group coordinator
 * waits 3 s before the first assignment of an empty group, and
 * session.timeout.ms - 1 s for members to rejoin on every later rebalance,
 * so with the default 45 s session a second consumer waits ~44 s (3.5 s
 * here: ~2.5 s per rebalance). With session.timeout.ms=2000 no member is
 * ever assigned anything (the session expires during the 3 s join wait).
 *
 * The last tests run the real runpool-devbroker binary ($RP_BIN_DIR).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "rp_kafka.h"
#include "rp_time.h"

#define TOPIC "rp.test"
#define NPART 4
#define ALL_PARTS ((1u << NPART) - 1)
#define GROUP_SESSION_MS "3500"
#define WAIT_MS 15000 /* longest wait for any one expected event */
#define MSGS_MAX 256  /* messages one test consumer remembers */

/* ---- an in-process mock cluster ---- */

typedef struct cluster {
    rd_kafka_t *host;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps; /* owned by mc */
} cluster_t;

static void cluster_start(cluster_t *c, int brokers)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    /* The host handle never connects; silence its "no bootstrap" warning. */
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", errstr,
                                       sizeof(errstr)), RD_KAFKA_CONF_OK);
    c->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(c->host);
    c->mc = rd_kafka_mock_cluster_new(c->host, brokers);
    assert_non_null(c->mc);
    assert_int_equal(rd_kafka_mock_topic_create(c->mc, TOPIC, NPART,
                                                brokers < 3 ? brokers : 3),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    c->bootstraps = rd_kafka_mock_cluster_bootstraps(c->mc);
    assert_non_null(c->bootstraps);
}

static void cluster_stop(cluster_t *c)
{
    if (c->mc)
        rd_kafka_mock_cluster_destroy(c->mc);
    if (c->host)
        rd_kafka_destroy(c->host);
    c->mc = NULL;
    c->host = NULL;
}

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *val)
{
    char errstr[512];

    if (rp_kafka_set(conf, name, val, errstr, sizeof(errstr)) != RP_OK)
        fail_msg("%s", errstr);
}

/* ---- producer ---- */

typedef struct delivery {
    int ok, failed;
    int idempotent; /* statistics showed a producer id assigned */
    int32_t key_partition[16]; /* partition each key index landed in */
    int key_moved;             /* a key seen in two partitions */
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    delivery_t *d = opaque;
    intptr_t k = (intptr_t)m->_private;

    (void)rk;
    if (m->err) {
        fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
        d->failed++;
        return;
    }
    d->ok++;
    if (k >= 0 && k < 16) {
        if (d->key_partition[k] >= 0 && d->key_partition[k] != m->partition)
            d->key_moved = 1;
        d->key_partition[k] = m->partition;
    }
}

/* Statistics JSON carries the idempotence state machine: "Assigned" means
 * the broker handed out a producer id (InitProducerId works). */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    delivery_t *d = opaque;

    (void)rk;
    (void)len;
    if (strstr(json, "\"idemp_state\": \"Assigned\"") ||
        strstr(json, "\"idemp_state\":\"Assigned\""))
        d->idempotent = 1;
    return 0; /* librdkafka frees json */
}

static rd_kafka_t *producer_new(const char *bootstraps, delivery_t *d)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    memset(d, 0, sizeof(*d));
    for (int i = 0; i < 16; i++)
        d->key_partition[i] = -1;
    assert_int_equal(rp_kafka_producer_defaults(conf, errstr, sizeof(errstr)),
                     RP_OK);
    conf_set(conf, "bootstrap.servers", bootstraps);
    conf_set(conf, "statistics.interval.ms", "100");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, d);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk)
        fail_msg("producer: %s", errstr);
    return rk;
}

/* Produce one message; partition RD_KAFKA_PARTITION_UA lets the key pick. */
static void produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                    const char *key, const char *value, intptr_t key_index)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE((void *)key_index), RD_KAFKA_V_END);

    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void flush_ok(rd_kafka_t *rk, const delivery_t *d, int expect)
{
    char errstr[512];

    assert_int_equal(rd_kafka_flush(rk, WAIT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(d->failed, 0);
    assert_int_equal(d->ok, expect);
    assert_int_equal(rd_kafka_fatal_error(rk, errstr, sizeof(errstr)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* ---- consumers ---- */

typedef struct consumer {
    rd_kafka_t *rk;
    int assign_events, revoke_events;
    unsigned revoked; /* partitions ever revoked (bitmask) */
    int got;          /* messages received */
    int per_part[NPART];
    int64_t first_offset[NPART]; /* -1 until one arrives */
    char seen[MSGS_MAX][32];     /* payloads, in arrival order */
} consumer_t;

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_t *c = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->assign_events++;
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        return;
    }
    c->revoke_events++;
    for (int i = 0; i < parts->cnt; i++)
        c->revoked |= 1u << parts->elems[i].partition;
    if (coop)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
}

/* A consumer; with group it subscribes to TOPIC, without it assigns
 * every partition of topic from the beginning. strategy NULL: default. */
static void consumer_start(consumer_t *c, const char *bootstraps,
                           const char *group, const char *strategy,
                           const char *topic, int nparts)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l;

    memset(c, 0, sizeof(*c));
    for (int i = 0; i < NPART; i++)
        c->first_offset[i] = -1;
    conf_set(conf, "bootstrap.servers", bootstraps);
    assert_int_equal(rp_kafka_unique_client_id(conf, "test", errstr,
                                               sizeof(errstr)), RP_OK);
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "auto.offset.reset", "earliest");
    /* librdkafka 2.0.2 refuses rd_kafka_assign() without a group.id
     * (_UNKNOWN_GROUP), even though assign never joins the group. */
    conf_set(conf, "group.id", group ? group : "rp-test-assign-only");
    if (group) {
        conf_set(conf, "session.timeout.ms", GROUP_SESSION_MS);
        conf_set(conf, "heartbeat.interval.ms", "100");
        if (strategy)
            conf_set(conf, "partition.assignment.strategy", strategy);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, c);
    }
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!c->rk)
        fail_msg("consumer: %s", errstr);
    rd_kafka_poll_set_consumer(c->rk);
    l = rd_kafka_topic_partition_list_new(nparts);
    if (group) {
        rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
        assert_int_equal(rd_kafka_subscribe(c->rk, l),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    } else {
        for (int p = 0; p < nparts; p++)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(c->rk, l),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void consumer_stop(consumer_t *c)
{
    if (!c->rk)
        return;
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
}

static unsigned assigned(const consumer_t *c)
{
    rd_kafka_topic_partition_list_t *l;
    unsigned mask = 0;

    if (rd_kafka_assignment(c->rk, &l))
        return 0;
    for (int i = 0; i < l->cnt; i++)
        mask |= 1u << l->elems[i].partition;
    rd_kafka_topic_partition_list_destroy(l);
    return mask;
}

/* Poll once; a message is recorded in c (errors are only printed: the
 * mock reports transient broker events the tests do not care about). */
static void poll_once(consumer_t *c, int ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, ms);

    if (!m)
        return;
    if (m->err) {
        fprintf(stderr, "consumer event: %s\n", rd_kafka_message_errstr(m));
    } else if (m->partition >= 0 && m->partition < NPART) {
        if (c->first_offset[m->partition] < 0)
            c->first_offset[m->partition] = m->offset;
        c->per_part[m->partition]++;
        if (c->got < MSGS_MAX) {
            size_t n = m->len < 31 ? m->len : 31;

            memcpy(c->seen[c->got], m->payload, n);
            c->seen[c->got][n] = '\0';
        }
        c->got++;
    }
    rd_kafka_message_destroy(m);
}

typedef int (*until_fn)(consumer_t **cs);

/* Poll all consumers (each must keep being polled to rebalance) until
 * done(cs) holds or ms pass. Returns whether done held. */
static int pump(consumer_t **cs, int n, int ms, until_fn done)
{
    int64_t end = rp_time_mono_ms() + ms;

    while (!(done && done(cs))) {
        if (rp_time_mono_ms() >= end)
            return done ? done(cs) : 1;
        for (int i = 0; i < n; i++)
            poll_once(cs[i], 20);
    }
    return 1;
}

static int first_has_all(consumer_t **cs)
{
    return assigned(cs[0]) == ALL_PARTS;
}

static int split_between_two(consumer_t **cs)
{
    unsigned a = assigned(cs[0]), b = assigned(cs[1]);

    return a && b && (a | b) == ALL_PARTS && !(a & b);
}

/* ---- tests against an in-process mock ---- */

static void test_mock_listens_on_loopback(void **state)
{
    cluster_t c = {0};
    char list[1024];
    char *save = NULL;
    int n = 0;

    (void)state;
    cluster_start(&c, 3);
    snprintf(list, sizeof(list), "%s", c.bootstraps);
    for (char *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        assert_memory_equal(tok, "127.0.0.1:", 10);
        assert_true(atoi(tok + 10) > 0);
        n++;
    }
    assert_int_equal(n, 3);
    cluster_stop(&c);
}

/* Idempotent producer, keys and headers; the consumer gets each message
 * once, headers intact, and per-key order kept despite injected retriable
 * produce errors. */
static void test_idempotent_producer_headers_keys(void **state)
{
    enum { N = 40, KEYS = 8 };
    cluster_t c = {0};
    delivery_t d;
    rd_kafka_t *p;
    consumer_t con;
    consumer_t *cs[1] = {&con};
    int last_seq[KEYS], got = 0;
    int64_t end;

    (void)state;
    cluster_start(&c, 3);
    p = producer_new(c.bootstraps, &d);
    /* Two retriable errors on the next Produce requests (ApiKey 0) to
     * broker 2, made leader of partition 0: the idempotent producer must
     * retry them without duplicating or reordering. */
    assert_int_equal(rd_kafka_mock_partition_set_leader(c.mc, TOPIC, 0, 2),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                         c.mc, 2, 0, 2, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                         0, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < N; i++) {
        char key[32], value[32], exec_id[32];
        const char bin[3] = {'a', '\0', 'b'};
        rd_kafka_resp_err_t err;

        snprintf(key, sizeof(key), "session-%d", i % KEYS);
        snprintf(value, sizeof(value), "%d:%d", i % KEYS, i / KEYS);
        snprintf(exec_id, sizeof(exec_id), "exec-%d", i);
        err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(value, strlen(value)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("execution_id", exec_id, -1),
            RD_KAFKA_V_HEADER("binary", bin, sizeof(bin)),
            RD_KAFKA_V_HEADER("nullvalue", NULL, 0),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)(i % KEYS)), RD_KAFKA_V_END);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    flush_ok(p, &d, N);
    assert_false(d.key_moved);
    /* Some key went to partition 0, so broker 2 used up its errors. */
    {
        int p0 = 0;
        size_t left = 99;

        for (int k = 0; k < KEYS; k++)
            p0 |= d.key_partition[k] == 0;
        assert_true(p0);
        assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(c.mc, 2, 0,
                                                              &left),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(left, 0);
    }
    end = rp_time_mono_ms() + WAIT_MS;
    while (!d.idempotent && rp_time_mono_ms() < end)
        rd_kafka_poll(p, 50);
    assert_true(d.idempotent);

    consumer_start(&con, c.bootstraps, NULL, NULL, TOPIC, NPART);
    for (int k = 0; k < KEYS; k++)
        last_seq[k] = -1;
    end = rp_time_mono_ms() + WAIT_MS;
    while (got < N && rp_time_mono_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(con.rk, 100);
        rd_kafka_headers_t *h = NULL;
        const void *val;
        size_t size;
        int k, seq;
        char text[32], want[32];

        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        assert_true(m->len < sizeof(text));
        memcpy(text, m->payload, m->len);
        text[m->len] = '\0';
        assert_int_equal(sscanf(text, "%d:%d", &k, &seq), 2);
        assert_in_range(k, 0, KEYS - 1);
        /* Key and partition as produced; per key, strictly in order. */
        snprintf(want, sizeof(want), "session-%d", k);
        assert_int_equal(m->key_len, strlen(want));
        assert_memory_equal(m->key, want, m->key_len);
        assert_int_equal(m->partition, d.key_partition[k]);
        assert_int_equal(seq, last_seq[k] + 1);
        last_seq[k] = seq;

        assert_int_equal(rd_kafka_message_headers(m, &h),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(rd_kafka_header_cnt(h), 3);
        assert_int_equal(rd_kafka_header_get_last(h, "execution_id", &val,
                                                  &size),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        snprintf(want, sizeof(want), "exec-%d", seq * KEYS + k);
        assert_int_equal(size, strlen(want));
        assert_memory_equal(val, want, size);
        assert_int_equal(rd_kafka_header_get_last(h, "binary", &val, &size),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(size, 3);
        assert_memory_equal(val, "a\0b", 3);
        assert_int_equal(rd_kafka_header_get_last(h, "nullvalue", &val,
                                                  &size),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_null(val);
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(got, N);
    /* Nothing more: the retries produced no duplicates. */
    pump(cs, 1, 500, NULL);
    assert_int_equal(con.got, 0);
    for (int k = 0; k < KEYS; k++)
        assert_int_equal(last_seq[k], N / KEYS - 1);
    consumer_stop(&con);
    rd_kafka_destroy(p);
    cluster_stop(&c);
}

static int got_one_per_partition(consumer_t **cs)
{
    return cs[0]->got + cs[1]->got >= NPART;
}

/* Two consumers of one group share the partitions, both receive from
 * their own partitions only, and the survivor gets all back. */
static void group_split(const char *strategy)
{
    cluster_t c = {0};
    consumer_t c1, c2;
    consumer_t *cs[2] = {&c1, &c2};
    delivery_t d;
    rd_kafka_t *p;
    unsigned before, a1, a2;

    cluster_start(&c, 1);
    consumer_start(&c1, c.bootstraps, "g-split", strategy, TOPIC, NPART);
    assert_true(pump(cs, 1, WAIT_MS, first_has_all));
    before = assigned(&c1);
    assert_int_equal(c1.revoke_events, 0);

    consumer_start(&c2, c.bootstraps, "g-split", strategy, TOPIC, NPART);
    assert_true(pump(cs, 2, WAIT_MS, split_between_two));
    a1 = assigned(&c1);
    a2 = assigned(&c2);
    assert_int_equal(__builtin_popcount(a1), 2);
    assert_int_equal(__builtin_popcount(a2), 2);
    if (strategy && !strcmp(strategy, "cooperative-sticky")) {
        /* Incremental: c1 kept its remaining partitions the whole time and
         * lost only those that moved to c2. */
        assert_int_equal(c1.revoke_events, 1);
        assert_int_equal(c1.revoked, a2);
        assert_int_equal(a1 & before, a1);
    } else {
        /* Eager: everything was revoked, then reassigned. */
        assert_int_equal(c1.revoked, ALL_PARTS);
    }

    /* One message per partition: each lands at its owner only. */
    p = producer_new(c.bootstraps, &d);
    for (int32_t part = 0; part < NPART; part++)
        produce(p, TOPIC, part, "k", "v", -1);
    flush_ok(p, &d, NPART);
    rd_kafka_destroy(p);
    assert_true(pump(cs, 2, WAIT_MS, got_one_per_partition));
    pump(cs, 2, 300, NULL);
    assert_int_equal(c1.got + c2.got, NPART);
    for (int part = 0; part < NPART; part++) {
        consumer_t *owner = (a1 >> part) & 1 ? &c1 : &c2;
        consumer_t *other = owner == &c1 ? &c2 : &c1;

        assert_int_equal(owner->per_part[part], 1);
        assert_int_equal(other->per_part[part], 0);
    }

    /* c2 leaves: c1 owns everything again. */
    consumer_stop(&c2);
    assert_true(pump(cs, 1, WAIT_MS, first_has_all));
    consumer_stop(&c1);
    cluster_stop(&c);
}

static void test_group_default_assignor(void **state)
{
    (void)state;
    group_split(NULL);
}

static void test_group_cooperative_sticky(void **state)
{
    (void)state;
    group_split("cooperative-sticky");
}

static int got_all_messages(consumer_t **cs)
{
    return cs[0]->got >= 5 * NPART;
}

static int got_resumed_messages(consumer_t **cs)
{
    return cs[0]->got >= 3 + 2 + 1;
}

/* Manual commits: explicit offsets are stored, read back, and a new
 * consumer of the group starts exactly there. */
static void test_manual_commit_resume(void **state)
{
    cluster_t c = {0};
    consumer_t c1, c2;
    consumer_t *cs1[1] = {&c1}, *cs2[1] = {&c2};
    delivery_t d;
    rd_kafka_t *p;
    rd_kafka_topic_partition_list_t *l;

    (void)state;
    cluster_start(&c, 1);
    p = producer_new(c.bootstraps, &d);
    for (int32_t part = 0; part < NPART; part++)
        for (int i = 0; i < 5; i++)
            produce(p, TOPIC, part, "k", "v", -1);
    flush_ok(p, &d, 5 * NPART);
    rd_kafka_destroy(p);

    consumer_start(&c1, c.bootstraps, "g-commit", NULL, TOPIC, NPART);
    assert_true(pump(cs1, 1, WAIT_MS, got_all_messages));
    for (int part = 0; part < NPART; part++)
        assert_int_equal(c1.first_offset[part], 0);

    /* Commit "everything below 2+p is done" for partition p. */
    l = rd_kafka_topic_partition_list_new(NPART);
    for (int32_t part = 0; part < NPART; part++)
        rd_kafka_topic_partition_list_add(l, TOPIC, part)->offset = 2 + part;
    assert_int_equal(rd_kafka_commit(c1.rk, l, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int32_t part = 0; part < NPART; part++)
        l->elems[part].offset = RD_KAFKA_OFFSET_INVALID;
    assert_int_equal(rd_kafka_committed(c1.rk, l, WAIT_MS),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int32_t part = 0; part < NPART; part++) {
        assert_int_equal(l->elems[part].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(l->elems[part].offset, 2 + part);
    }
    rd_kafka_topic_partition_list_destroy(l);
    consumer_stop(&c1);

    /* A new member resumes at the commits: 3+2+1+0 messages remain. */
    consumer_start(&c2, c.bootstraps, "g-commit", NULL, TOPIC, NPART);
    assert_true(pump(cs2, 1, WAIT_MS, got_resumed_messages));
    pump(cs2, 1, 500, NULL);
    assert_int_equal(c2.got, 6);
    for (int part = 0; part < NPART - 1; part++) {
        assert_int_equal(c2.first_offset[part], 2 + part);
        assert_int_equal(c2.per_part[part], 3 - part);
    }
    assert_int_equal(c2.per_part[NPART - 1], 0);
    consumer_stop(&c2);
    cluster_stop(&c);
}

static int got_p1_three(consumer_t **cs)
{
    return cs[0]->per_part[1] >= 3;
}

static int got_p0_three(consumer_t **cs)
{
    return cs[0]->per_part[0] >= 3;
}

static void test_pause_resume(void **state)
{
    cluster_t c = {0};
    consumer_t c1;
    consumer_t *cs[1] = {&c1};
    delivery_t d;
    rd_kafka_t *p;
    rd_kafka_topic_partition_list_t *l;

    (void)state;
    cluster_start(&c, 1);
    consumer_start(&c1, c.bootstraps, "g-pause", NULL, TOPIC, NPART);
    assert_true(pump(cs, 1, WAIT_MS, first_has_all));

    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0);
    assert_int_equal(rd_kafka_pause_partitions(c1.rk, l),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(l->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);

    p = producer_new(c.bootstraps, &d);
    for (int i = 0; i < 3; i++) {
        produce(p, TOPIC, 0, "k", "paused", -1);
        produce(p, TOPIC, 1, "k", "open", -1);
    }
    flush_ok(p, &d, 6);
    rd_kafka_destroy(p);

    assert_true(pump(cs, 1, WAIT_MS, got_p1_three));
    pump(cs, 1, 1000, NULL);
    assert_int_equal(c1.per_part[0], 0);

    assert_int_equal(rd_kafka_resume_partitions(c1.rk, l),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_true(pump(cs, 1, WAIT_MS, got_p0_three));
    assert_int_equal(c1.per_part[0], 3);
    assert_int_equal(c1.first_offset[0], 0);
    rd_kafka_topic_partition_list_destroy(l);
    consumer_stop(&c1);
    cluster_stop(&c);
}

/* ---- the runpool-devbroker binary ---- */

static pid_t child_pid = -1;
static char tmpdir[64];

/* Runs after each binary test, also when an assertion failed mid-way, so
 * no broker is left behind. */
static int reap_child(void **state)
{
    char path[128];

    (void)state;
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = -1;
    }
    if (tmpdir[0]) {
        snprintf(path, sizeof(path), "%s/bootstrap", tmpdir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/stderr", tmpdir);
        unlink(path);
        rmdir(tmpdir);
        tmpdir[0] = '\0';
    }
    return 0;
}

static void devbroker_path(char *out, size_t size)
{
    const char *dir = getenv("RP_BIN_DIR");
    int n;

    if (!dir)
        fail_msg("RP_BIN_DIR is not set (CTest sets it)");
    n = snprintf(out, size, "%s/runpool-devbroker", dir);
    assert_true(n > 0 && (size_t)n < size);
    if (access(out, X_OK) != 0)
        fail_msg("%s: %s (build the runpool-devbroker target)", out,
                 strerror(errno));
}

/* Start the binary with stdout on a pipe (returned) and stderr in a file. */
static int spawn(char *const argv[], const char *stderr_path)
{
    int out[2];

    assert_int_equal(pipe(out), 0);
    child_pid = fork();
    assert_true(child_pid >= 0);
    if (child_pid == 0) {
        int errfd = stderr_path
                        ? open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600)
                        : open("/dev/null", O_WRONLY);

        dup2(out[1], STDOUT_FILENO);
        if (errfd >= 0)
            dup2(errfd, STDERR_FILENO);
        close(out[0]);
        close(out[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    return out[0];
}

/* Read from fd until '\n', EOF or the deadline. Returns bytes read. */
static size_t read_line(int fd, char *buf, size_t size, int ms)
{
    size_t n = 0;
    int64_t end = rp_time_mono_ms() + ms;

    while (n + 1 < size) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = end - rp_time_mono_ms();
        ssize_t r;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        r = read(fd, buf + n, 1);
        if (r <= 0)
            break;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return n;
}

/* Wait for the child to exit; returns its wait status, -1 on timeout. */
static int wait_child(int ms)
{
    int64_t end = rp_time_mono_ms() + ms;
    int status;

    while (rp_time_mono_ms() < end) {
        pid_t r = waitpid(child_pid, &status, WNOHANG);

        if (r == child_pid) {
            child_pid = -1;
            return status;
        }
        usleep(20000);
    }
    return -1;
}

static int read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return -1;
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (int)n;
}

static int got_one(consumer_t **cs)
{
    return cs[0]->got >= 1;
}

static void test_devbroker_binary(void **state)
{
    char bin[512], bsfile[128], errfile[128], line[1024], filebuf[1024];
    char logs[8192];
    const char *bootstraps;
    int fd, status;
    delivery_t d;
    rd_kafka_t *p;
    consumer_t con;
    consumer_t *cs[1] = {&con};
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt;

    (void)state;
    devbroker_path(bin, sizeof(bin));
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rp-devbroker-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(bsfile, sizeof(bsfile), "%s/bootstrap", tmpdir);
    snprintf(errfile, sizeof(errfile), "%s/stderr", tmpdir);
    {
        char *argv[] = {bin, "--partitions", "2", "--bootstrap-file", bsfile,
                        "--requests-topic", "rp.req", NULL};

        fd = spawn(argv, errfile);
    }
    assert_true(read_line(fd, line, sizeof(line), WAIT_MS) > 0);
    assert_memory_equal(line, "bootstrap.servers=127.0.0.1:", 28);
    assert_int_equal(line[strlen(line) - 1], '\n');
    /* The file holds the same line, complete. */
    assert_true(read_file(bsfile, filebuf, sizeof(filebuf)) > 0);
    assert_string_equal(filebuf, line);
    line[strlen(line) - 1] = '\0';
    bootstraps = line + strlen("bootstrap.servers=");

    /* One message through the renamed requests topic. */
    p = producer_new(bootstraps, &d);
    produce(p, "rp.req", RD_KAFKA_PARTITION_UA, "session-1", "hello", 1);
    flush_ok(p, &d, 1);
    /* --partitions reached the default-named results topic too. */
    rkt = rd_kafka_topic_new(p, RP_TOPIC_RESULTS_DEFAULT, NULL);
    assert_int_equal(rd_kafka_metadata(p, 0, rkt, &md, WAIT_MS),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topics[0].partition_cnt, 2);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(p);

    consumer_start(&con, bootstraps, NULL, NULL, "rp.req", 2);
    assert_true(pump(cs, 1, WAIT_MS, got_one));
    pump(cs, 1, 300, NULL);
    assert_int_equal(con.got, 1);
    assert_string_equal(con.seen[0], "hello");
    consumer_stop(&con);

    assert_int_equal(kill(child_pid, SIGTERM), 0);
    status = wait_child(WAIT_MS);
    assert_true(status != -1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
    /* A stale file would point clients at a dead broker. */
    assert_int_equal(access(bsfile, F_OK), -1);
    /* The startup log says plainly what this is. */
    assert_true(read_file(errfile, logs, sizeof(logs)) > 0);
    assert_non_null(strstr(logs, "\"component\":\"devbroker\""));
    assert_non_null(strstr(logs, "keeps nothing"));
    assert_non_null(strstr(logs, "devbroker_stopping"));
}

static void test_devbroker_help_and_usage(void **state)
{
    char bin[512], buf[4096];
    int fd, status;
    size_t n = 0;

    (void)state;
    devbroker_path(bin, sizeof(bin));
    {
        char *argv[] = {bin, "--help", NULL};

        fd = spawn(argv, NULL);
    }
    while (n + 1 < sizeof(buf)) {
        size_t r = read_line(fd, buf + n, sizeof(buf) - n, WAIT_MS);

        if (r == 0)
            break;
        n += r;
    }
    close(fd);
    status = wait_child(WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(buf, "DEVELOPMENT ONLY"));
    assert_non_null(strstr(buf, "keeps nothing"));
    assert_non_null(strstr(buf, RP_TOPIC_REQUESTS_DEFAULT));

    /* Out-of-range and unknown options are usage errors (exit 2). */
    {
        char *argv[] = {bin, "--brokers", "0", NULL};

        close(spawn(argv, NULL));
    }
    status = wait_child(WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    {
        char *argv[] = {bin, "--requests-topic", "bad topic", NULL};

        close(spawn(argv, NULL));
    }
    status = wait_child(WAIT_MS);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mock_listens_on_loopback),
        cmocka_unit_test(test_idempotent_producer_headers_keys),
        cmocka_unit_test(test_group_default_assignor),
        cmocka_unit_test(test_group_cooperative_sticky),
        cmocka_unit_test(test_manual_commit_resume),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test_teardown(test_devbroker_binary, reap_child),
        cmocka_unit_test_teardown(test_devbroker_help_and_usage, reap_child),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
