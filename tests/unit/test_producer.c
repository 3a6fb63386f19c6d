/* Tests for rp_producer and the runpool-produce CLI, against librdkafka's
 * in-process mock cluster: what lands in the requests topic (key, headers,
 * JSON, partition), send_json's additions and refusals, and waiting for
 * results (in order, out of order, unknown ids, stale results, the held-
 * results bound, timeouts). Each test uses its own pair of topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_msg.h"
#include "rp_producer.h"
#include "rp_sign.h"
#include "rp_time.h"

#define PARTITIONS 4
#define SEND_TIMEOUT_MS 10000
#define CHILD_TIMEOUT_MS 60000
#define CHILD_OUTPUT_MAX (256 * 1024)

extern char **environ;

static rd_kafka_t *mock_rk;
static rd_kafka_t *helper_rk; /* the tests' own client: publish, watermarks */
static rd_kafka_mock_cluster_t *mock;
static const char *bootstraps;
static int topic_seq;

/* Topic names for one test. */
typedef struct topics {
    char req[64];
    char res[64];
} topics_t;

static void new_topics_n(topics_t *t, int partitions)
{
    topic_seq++;
    snprintf(t->req, sizeof(t->req), "req.%d", topic_seq);
    snprintf(t->res, sizeof(t->res), "res.%d", topic_seq);
    assert_int_equal(rd_kafka_mock_topic_create(mock, t->req, partitions, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_mock_topic_create(mock, t->res, partitions, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    if (helper_rk) {
        /* Fill the helper's metadata cache, so its first publish to the
         * new topics does not wait for librdkafka's 1 s refresh tick. */
        const rd_kafka_metadata_t *md;

        assert_int_equal(rd_kafka_metadata(helper_rk, 1, NULL, &md,
                                           SEND_TIMEOUT_MS),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_metadata_destroy(md);
    }
}

static void new_topics(topics_t *t)
{
    new_topics_n(t, PARTITIONS);
}

static int setup_cluster(void **state)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];

    (void)state;
    /* The mock cluster lives inside a client handle that connects nowhere
     * (and would say so at notice level). */
    if (rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err)) !=
        RD_KAFKA_CONF_OK)
        return -1;
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!mock_rk)
        return -1;
    mock = rd_kafka_mock_cluster_new(mock_rk, 3);
    if (!mock)
        return -1;
    bootstraps = rd_kafka_mock_cluster_bootstraps(mock);
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err,
                          sizeof(err)) != RD_KAFKA_CONF_OK)
        return -1;
    helper_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    return helper_rk ? 0 : -1;
}

static int teardown_cluster(void **state)
{
    (void)state;
    rd_kafka_destroy(helper_rk);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
    return 0;
}

static rp_producer_t *new_producer_at(const char *brokers, const topics_t *t,
                                      bool watch, size_t pending_max)
{
    rp_producer_conf_t conf = {0};
    rp_producer_t *p = NULL;
    char err[512] = "";
    rp_err_t rc;

    conf.brokers = brokers;
    conf.requests_topic = t->req;
    conf.results_topic = t->res;
    conf.watch_results = watch;
    conf.pending_max = pending_max;
    rc = rp_producer_new(&conf, &p, err, sizeof(err));
    if (rc)
        fail_msg("rp_producer_new: %s", err);
    return p;
}

static rp_producer_t *new_producer(const topics_t *t, bool watch,
                                   size_t pending_max)
{
    return new_producer_at(bootstraps, t, watch, pending_max);
}

/* ---- plain Kafka helpers (independent of the code under test) ---- */

/* Publish one message; header execution_id only when exec_id != NULL. */
static void publish(const char *topic, const char *key, const char *value,
                    const char *exec_id)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);

    if (exec_id)
        rd_kafka_header_add(hdrs, "execution_id", -1, exec_id, -1);
    assert_int_equal(
        rd_kafka_producev(helper_rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(helper_rk, SEND_TIMEOUT_MS),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* A consumed message, copied: librdkafka wants its own messages destroyed
 * before the client that read them. */
typedef struct msg {
    char *key;
    size_t key_len;
    char *payload; /* NUL-terminated copy */
    size_t len;
    int32_t partition;
    rd_kafka_headers_t *hdrs; /* owned copy; NULL when none */
} msg_t;

typedef struct consumed {
    msg_t msgs[64];
    int n;
} consumed_t;

static void copy_msg(const rd_kafka_message_t *m, msg_t *out)
{
    rd_kafka_headers_t *hdrs;

    out->key_len = m->key_len;
    out->key = malloc(m->key_len + 1);
    out->len = m->len;
    out->payload = malloc(m->len + 1);
    assert_non_null(out->key);
    assert_non_null(out->payload);
    if (m->key_len)
        memcpy(out->key, m->key, m->key_len);
    if (m->len)
        memcpy(out->payload, m->payload, m->len);
    out->payload[m->len] = '\0';
    out->partition = m->partition;
    out->hdrs = rd_kafka_message_headers(m, &hdrs) ? NULL
                                                    : rd_kafka_headers_copy(hdrs);
}

/* Read every partition of topic from the start until `want` messages came
 * or timeout_ms passed. */
static void consume(const char *topic, int want, int timeout_ms,
                    consumed_t *out)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts;
    int64_t deadline = rp_time_mono_ms() + timeout_ms;
    char err[256], group[64];
    rd_kafka_t *rk;

    memset(out, 0, sizeof(*out));
    snprintf(group, sizeof(group), "test-reader-%d-%d", (int)getpid(),
             ++topic_seq);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps,
                                       err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err,
                                       sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false",
                                       err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int i = 0; i < PARTITIONS; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    while (out->n < want && out->n < 64 && rp_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

        if (!m)
            continue;
        if (!m->err)
            copy_msg(m, &out->msgs[out->n++]);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void consumed_free(consumed_t *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->msgs[i].key);
        free(c->msgs[i].payload);
        if (c->msgs[i].hdrs)
            rd_kafka_headers_destroy(c->msgs[i].hdrs);
    }
    c->n = 0;
}

/* Messages in topic right now (sum of high watermarks). */
static int64_t topic_count(const char *topic)
{
    int64_t total = 0;

    for (int i = 0; i < PARTITIONS; i++) {
        int64_t lo, hi;

        assert_int_equal(rd_kafka_query_watermark_offsets(
                             helper_rk, topic, i, &lo, &hi, SEND_TIMEOUT_MS),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        total += hi;
    }
    return total;
}

static const char *header(const msg_t *m, const char *name, char *out,
                          size_t size)
{
    const void *val;
    size_t len;

    if (!m->hdrs || rd_kafka_header_get_last(m->hdrs, name, &val, &len) ||
        len >= size)
        return NULL;
    memcpy(out, val, len);
    out[len] = '\0';
    return out;
}

/* Kafka's murmur2 (as in the Java client's default partitioner). */
static uint32_t murmur2(const void *key, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const unsigned char *d = key;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;

    for (; len >= 4; d += 4, len -= 4) {
        uint32_t k = (uint32_t)d[0] | (uint32_t)d[1] << 8 |
                     (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;

        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len) {
    case 3:
        h ^= (uint32_t)d[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)d[1] << 8;
        /* fall through */
    case 1:
        h ^= d[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* A result document for id as the worker would publish it. */
static char *make_result(const char *exec_id, const char *session_id,
                         rp_status_t status, const char *out_text)
{
    rp_result_t res = {0};
    char *json;

    snprintf(res.execution_id, sizeof(res.execution_id), "%s", exec_id);
    snprintf(res.session_id, sizeof(res.session_id), "%s", session_id);
    res.status = status;
    res.has_exit_code = true;
    res.exit_code = status == RP_STATUS_SUCCEEDED ? 0 : 3;
    res.stdout_data = (char *)out_text;
    res.stdout_len = strlen(out_text);
    res.stderr_data = (char *)"";
    res.cwd = (char *)"/tmp";
    res.started_at_ms = rp_time_wall_ms();
    res.finished_at_ms = res.started_at_ms + 5;
    res.duration_ms = 5;
    json = rp_result_to_json(&res, false);
    assert_non_null(json);
    return json;
}

static void publish_result(const topics_t *t, const char *exec_id,
                           const char *out_text, bool with_header)
{
    char *json = make_result(exec_id, "s", RP_STATUS_SUCCEEDED, out_text);

    publish(t->res, "s", json, with_header ? exec_id : NULL);
    free(json);
}

static rp_err_t wait_for(rp_producer_t *p, const char *id, int timeout_ms,
                         char **json)
{
    char err[512] = "";
    size_t len = 0;
    rp_err_t rc = rp_producer_wait(p, id, timeout_ms, json, &len, err,
                                   sizeof(err));

    if (rc == RP_OK)
        assert_int_equal(len, strlen(*json));
    else
        assert_null(*json);
    return rc;
}

/* Assert json is a result for id whose stdout is want_out. */
static void assert_result(const char *json, const char *id,
                          const char *want_out)
{
    rp_result_t res = {0};
    char err[512] = "";

    assert_int_equal(rp_result_parse(json, strlen(json), &res, err,
                                     sizeof(err)),
                     RP_OK);
    assert_string_equal(res.execution_id, id);
    assert_int_equal(res.stdout_len, strlen(want_out));
    assert_memory_equal(res.stdout_data, want_out, res.stdout_len);
    rp_result_clear(&res);
}

static void send_exec(rp_producer_t *p, const char *session, const char *cmd,
                      char id_out[RP_ID_MAX + 1])
{
    rp_request_t req = {0};
    char err[512] = "";

    snprintf(req.session_id, sizeof(req.session_id), "%s", session);
    req.command = (char *)cmd;
    req.timeout_s = 30;
    if (rp_producer_send(p, &req, SEND_TIMEOUT_MS, err, sizeof(err)))
        fail_msg("rp_producer_send: %s", err);
    snprintf(id_out, RP_ID_MAX + 1, "%s", req.execution_id);
}

/* ---- library tests ---- */

static void test_send_lands_keyed_with_headers(void **state)
{
    topics_t t;
    rp_producer_t *p;
    rp_request_t req = {0}, parsed = {0};
    consumed_t c;
    char err[512] = "", hv[RP_ID_MAX + 1];
    const msg_t *m;

    (void)state;
    new_topics(&t);
    p = new_producer(&t, false, 0);
    snprintf(req.session_id, sizeof(req.session_id), "sess-1");
    req.command = (char *)"cd /tmp && ls";
    req.timeout_s = 42;
    assert_int_equal(rp_env_set(&req.env, "FOO", "bar"), RP_OK);
    assert_int_equal(rp_producer_send(p, &req, SEND_TIMEOUT_MS, err,
                                      sizeof(err)),
                     RP_OK);
    /* A UUIDv4 was generated and written back. */
    assert_int_equal(strlen(req.execution_id), 36);
    assert_int_equal(req.execution_id[14], '4');

    consume(t.req, 1, 10000, &c);
    assert_int_equal(c.n, 1);
    m = &c.msgs[0];
    assert_int_equal(m->key_len, strlen("sess-1"));
    assert_memory_equal(m->key, "sess-1", m->key_len);
    assert_non_null(header(m, "execution_id", hv, sizeof(hv)));
    assert_string_equal(hv, req.execution_id);
    assert_non_null(header(m, "session_id", hv, sizeof(hv)));
    assert_string_equal(hv, "sess-1");
    assert_int_equal(rp_request_parse(m->payload, m->len, &parsed, err,
                                      sizeof(err)),
                     RP_OK);
    assert_string_equal(parsed.execution_id, req.execution_id);
    assert_string_equal(parsed.session_id, "sess-1");
    assert_int_equal(parsed.op, RP_OP_EXEC);
    assert_string_equal(parsed.command, "cd /tmp && ls");
    assert_int_equal(parsed.timeout_s, 42);
    assert_string_equal(rp_env_get(&parsed.env, "FOO"), "bar");
    rp_request_clear(&parsed);
    consumed_free(&c);

    /* A given execution_id is kept as is. */
    snprintf(req.execution_id, sizeof(req.execution_id), "mine-1");
    assert_int_equal(rp_producer_send(p, &req, SEND_TIMEOUT_MS, err,
                                      sizeof(err)),
                     RP_OK);
    assert_string_equal(req.execution_id, "mine-1");
    /* An invalid session_id is refused before anything is sent. */
    snprintf(req.session_id, sizeof(req.session_id), "has space");
    assert_int_equal(rp_producer_send(p, &req, SEND_TIMEOUT_MS, err,
                                      sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "session_id"));
    req.command = NULL;
    rp_request_clear(&req);
    rp_producer_destroy(p);
    assert_int_equal(topic_count(t.req), 2);
}

/* With signing keys every request carries runpool-signature over its
 * exact key and value, under the chosen kid; key files others may read,
 * and unknown kids, are refused at creation. */
static void test_send_signed(void **state)
{
    static const char keys[] =
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "k2:cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM=\n";
    char path[] = "/tmp/rp-prod-keys-XXXXXX";
    rp_producer_conf_t conf = {0};
    rp_sign_keys_t *k = NULL;
    rp_producer_t *p = NULL;
    rp_request_t req = {0};
    topics_t t;
    consumed_t c;
    char err[512] = "", hv[RP_SIGN_HEADER_MAX + 1];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, keys, strlen(keys)), (ssize_t)strlen(keys));
    close(fd);
    assert_int_equal(rp_sign_keys_parse(keys, strlen(keys), &k, err,
                                        sizeof(err)),
                     RP_OK);
    new_topics(&t);
    conf.brokers = bootstraps;
    conf.requests_topic = t.req;
    conf.results_topic = t.res;
    conf.signing_keys = path;
    conf.signing_kid = "k2";
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)), RP_OK);
    snprintf(req.session_id, sizeof(req.session_id), "sess-signed");
    req.command = (char *)"echo signed";
    req.timeout_s = 5;
    assert_int_equal(rp_producer_send(p, &req, SEND_TIMEOUT_MS, err,
                                      sizeof(err)),
                     RP_OK);
    rp_producer_destroy(p);
    consume(t.req, 1, 10000, &c);
    assert_int_equal(c.n, 1);
    assert_non_null(header(&c.msgs[0], "runpool-signature", hv, sizeof(hv)));
    assert_non_null(strstr(hv, ",kid=k2,v1="));
    assert_int_equal(rp_sign_verify(k, hv, strlen(hv), c.msgs[0].key,
                                    c.msgs[0].key_len, c.msgs[0].payload,
                                    c.msgs[0].len, rp_time_wall_ms() / 1000,
                                    60, err, sizeof(err)),
                     RP_SIGN_OK);
    consumed_free(&c);

    conf.signing_kid = "k9";
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_null(p);
    assert_non_null(strstr(err, "k9"));
    conf.signing_kid = NULL;
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_null(p);
    assert_non_null(strstr(err, "mode 0644"));
    req.command = NULL;
    rp_request_clear(&req);
    rp_sign_keys_destroy(k);
    unlink(path);
}

static void test_same_session_same_partition(void **state)
{
    static const char *const sessions[] = {"alpha", "beta", "gamma-7",
                                           "user:42"};
    topics_t t;
    rp_producer_t *p;
    consumed_t c;
    char id[RP_ID_MAX + 1];

    (void)state;
    new_topics(&t);
    p = new_producer(&t, false, 0);
    for (int round = 0; round < 2; round++)
        for (int s = 0; s < 4; s++)
            send_exec(p, sessions[s], "true", id);
    rp_producer_destroy(p);

    consume(t.req, 8, 10000, &c);
    assert_int_equal(c.n, 8);
    for (int i = 0; i < c.n; i++) {
        const msg_t *m = &c.msgs[i];
        int32_t want = (int32_t)((murmur2(m->key, m->key_len) & 0x7fffffff) %
                                 PARTITIONS);

        /* Both requests of a session share one partition, and it is the
         * one the Java client's murmur2 partitioner would pick. */
        assert_int_equal(m->partition, want);
    }
    consumed_free(&c);
}

static void test_send_json_adds_v_and_id(void **state)
{
    const char *in1 = "{\"session_id\":\"js-1\",\"command\":\"echo 1\"}";
    const char *in2 = "  {\"v\":1,\"execution_id\":\"given-7\","
                      "\"session_id\":\"js-2\",\"command\":\"echo 2\"}\r\n";
    topics_t t;
    rp_producer_t *p;
    consumed_t c;
    char err[512] = "", id1[RP_ID_MAX + 1], id2[RP_ID_MAX + 1];
    char hv[RP_ID_MAX + 1];

    (void)state;
    new_topics(&t);
    p = new_producer(&t, false, 0);
    assert_int_equal(rp_producer_send_json(p, in1, strlen(in1), id1,
                                           SEND_TIMEOUT_MS, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(strlen(id1), 36);
    assert_int_equal(rp_producer_send_json(p, in2, strlen(in2), id2,
                                           SEND_TIMEOUT_MS, err, sizeof(err)),
                     RP_OK);
    assert_string_equal(id2, "given-7");
    rp_producer_destroy(p);

    consume(t.req, 2, 10000, &c);
    assert_int_equal(c.n, 2);
    for (int i = 0; i < 2; i++) {
        const msg_t *m = &c.msgs[i];
        cJSON *root = cJSON_ParseWithLength(m->payload, m->len);
        rp_request_t parsed = {0};
        const char *sid, *want_id;
        int n_v = 0;

        assert_non_null(root);
        sid = cJSON_GetObjectItem(root, "session_id")->valuestring;
        want_id = strcmp(sid, "js-1") == 0 ? id1 : id2;
        assert_int_equal(m->key_len, strlen(sid));
        assert_memory_equal(m->key, sid, m->key_len);
        assert_string_equal(header(m, "execution_id", hv, sizeof(hv)),
                            want_id);
        assert_string_equal(header(m, "session_id", hv, sizeof(hv)), sid);
        for (cJSON *it = root->child; it; it = it->next)
            n_v += strcmp(it->string, "v") == 0;
        assert_int_equal(n_v, 1); /* added once, never duplicated */
        assert_int_equal(cJSON_GetObjectItem(root, "v")->valueint, 1);
        assert_string_equal(
            cJSON_GetObjectItem(root, "execution_id")->valuestring, want_id);
        /* What send_json produces is a request the worker accepts. */
        assert_int_equal(rp_request_parse(m->payload, m->len, &parsed, err,
                                          sizeof(err)),
                         RP_OK);
        assert_string_equal(parsed.execution_id, want_id);
        rp_request_clear(&parsed);
        cJSON_Delete(root);
    }
    consumed_free(&c);
}

static void test_send_json_rejects_unaddressable(void **state)
{
    static const struct {
        const char *json;
        rp_err_t err;
        const char *needle; /* must appear in the error message */
    } cases[] = {
        {"not json", RP_ERR_INVALID, "JSON"},
        {"", RP_ERR_INVALID, "JSON"},
        {"[1,2]", RP_ERR_INVALID, "object"},
        {"\"s\"", RP_ERR_INVALID, "object"},
        {"{\"session_id\":\"a\"} {}", RP_ERR_INVALID, "after"},
        {"{\"session_id\":\"a\"", RP_ERR_INVALID, "JSON"},
        {"{\"command\":\"ls\"}", RP_ERR_INVALID, "session_id"},
        {"{\"session_id\":42}", RP_ERR_INVALID, "session_id"},
        {"{\"session_id\":\"\"}", RP_ERR_INVALID, "session_id"},
        {"{\"session_id\":\"a b\"}", RP_ERR_INVALID, "session_id"},
        {"{\"session_id\":\"a\",\"execution_id\":7}", RP_ERR_INVALID,
         "execution_id"},
        {"{\"session_id\":\"a\",\"execution_id\":\"x/y\"}", RP_ERR_INVALID,
         "execution_id"},
    };
    topics_t t;
    rp_producer_t *p;
    char err[512], id[RP_ID_MAX + 1];
    char *big;
    const char nul[] = "{\"session_id\":\"a\"}\0x";

    (void)state;
    new_topics(&t);
    p = new_producer(&t, false, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_int_equal(rp_producer_send_json(p, cases[i].json,
                                               strlen(cases[i].json), id,
                                               SEND_TIMEOUT_MS, err,
                                               sizeof(err)),
                         cases[i].err);
        if (!strstr(err, cases[i].needle))
            fail_msg("case %zu (%s): message '%s' lacks '%s'", i,
                     cases[i].json, err, cases[i].needle);
        assert_string_equal(id, "");
    }
    assert_int_equal(rp_producer_send_json(p, nul, sizeof(nul) - 1, id,
                                           SEND_TIMEOUT_MS, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "NUL"));

    /* Over RP_REQUEST_MAX: refused before parsing. */
    big = malloc(RP_REQUEST_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', RP_REQUEST_MAX + 1);
    memcpy(big, "{\"session_id\":\"a\"}", 18);
    assert_int_equal(rp_producer_send_json(p, big, RP_REQUEST_MAX + 1, id,
                                           SEND_TIMEOUT_MS, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(big);
    rp_producer_destroy(p);
    assert_int_equal(topic_count(t.req), 0);
}

static void test_wait_returns_result_published_after_send(void **state)
{
    topics_t t;
    rp_producer_t *p;
    char id[RP_ID_MAX + 1], *json = NULL, *want;

    (void)state;
    new_topics(&t);
    p = new_producer(&t, true, 0);
    send_exec(p, "s", "echo hi", id);
    want = make_result(id, "s", RP_STATUS_SUCCEEDED, "hi\n");
    publish(t.res, "s", want, id);
    assert_int_equal(wait_for(p, id, 10000, &json), RP_OK);
    assert_string_equal(json, want); /* the raw result, byte for byte */
    free(json);
    free(want);
    assert_int_equal(rp_producer_pending(p), 0);
    rp_producer_destroy(p);
}

static void test_wait_out_of_order_and_unknown(void **state)
{
    topics_t t;
    rp_producer_t *p;
    char a[RP_ID_MAX + 1], b[RP_ID_MAX + 1], c[RP_ID_MAX + 1];
    char *json = NULL;
    int64_t t0;

    (void)state;
    new_topics(&t);
    p = new_producer(&t, true, 0);
    send_exec(p, "s", "echo a", a);
    send_exec(p, "s", "echo b", b);
    send_exec(p, "s", "echo c", c);
    /* Results arrive C, stranger, A, B; B only names its id in the JSON. */
    publish_result(&t, c, "out-c", true);
    publish_result(&t, "someone-elses-id", "out-x", true);
    publish_result(&t, a, "out-a", true);
    publish_result(&t, b, "out-b", false);

    assert_int_equal(wait_for(p, b, 10000, &json), RP_OK);
    assert_result(json, b, "out-b");
    free(json);
    /* C and A were kept for later; the stranger's result was not. */
    assert_int_equal(rp_producer_pending(p), 2);

    t0 = rp_time_mono_ms();
    assert_int_equal(wait_for(p, a, 10000, &json), RP_OK);
    assert_result(json, a, "out-a");
    free(json);
    assert_int_equal(wait_for(p, c, 0, &json), RP_OK);
    assert_result(json, c, "out-c");
    free(json);
    assert_true(rp_time_mono_ms() - t0 < 2000); /* served from memory */
    assert_int_equal(rp_producer_pending(p), 0);

    /* Results for ids we never sent are dropped, not kept for a wait. */
    assert_int_equal(wait_for(p, "someone-elses-id", 300, &json),
                     RP_ERR_TIMEOUT);
    /* A result already returned is not returned twice. */
    assert_int_equal(wait_for(p, a, 300, &json), RP_ERR_TIMEOUT);
    rp_producer_destroy(p);
}

static void test_wait_times_out(void **state)
{
    topics_t t;
    rp_producer_t *p;
    char id[RP_ID_MAX + 1], err[512] = "", *json = (char *)"x";
    int64_t t0;

    (void)state;
    new_topics(&t);
    p = new_producer(&t, true, 0);
    send_exec(p, "s", "sleep 1", id);
    t0 = rp_time_mono_ms();
    assert_int_equal(rp_producer_wait(p, id, 400, &json, NULL, err,
                                      sizeof(err)),
                     RP_ERR_TIMEOUT);
    assert_true(rp_time_mono_ms() - t0 >= 400);
    assert_null(json);
    assert_non_null(strstr(err, id));
    rp_producer_destroy(p);
}

static void test_wait_skips_results_older_than_producer(void **state)
{
    topics_t t;
    rp_producer_t *p;
    rp_request_t req = {0};
    char err[512] = "", *json = NULL;

    (void)state;
    new_topics(&t);
    /* A stale result for the id, published before the producer existed. */
    publish_result(&t, "reused-1", "stale", true);
    p = new_producer(&t, true, 0);
    snprintf(req.session_id, sizeof(req.session_id), "s");
    snprintf(req.execution_id, sizeof(req.execution_id), "reused-1");
    req.command = (char *)"true";
    assert_int_equal(rp_producer_send(p, &req, SEND_TIMEOUT_MS, err,
                                      sizeof(err)),
                     RP_OK);
    assert_int_equal(wait_for(p, "reused-1", 500, &json), RP_ERR_TIMEOUT);
    publish_result(&t, "reused-1", "fresh", true);
    assert_int_equal(wait_for(p, "reused-1", 10000, &json), RP_OK);
    assert_result(json, "reused-1", "fresh");
    free(json);
    req.command = NULL;
    rp_request_clear(&req);
    rp_producer_destroy(p);
}

/* The reader must know its start offsets before rp_producer_new returns.
 * Here broker 1 leads the results partition and answers slowly, and the
 * producer bootstraps from the other brokers only, so its first connection
 * to broker 1 takes a second: a reader that let librdkafka resolve "the
 * end" in the background (OFFSET_END) would ask only after the result
 * below was already published, and skip it. */
static void test_reader_positioned_before_first_send(void **state)
{
    const rd_kafka_metadata_t *md;
    char others[256] = "";
    size_t off = 0;
    topics_t t;
    rp_producer_t *p;
    char id[RP_ID_MAX + 1], *json = NULL;

    (void)state;
    /* One partition each: every slow round trip costs test time. */
    new_topics_n(&t, 1);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mock, t.res, 0, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mock, t.req, 0, 2),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_metadata(helper_rk, 0, NULL, &md,
                                       SEND_TIMEOUT_MS),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < md->broker_cnt; i++)
        if (md->brokers[i].id != 1)
            off += (size_t)snprintf(others + off, sizeof(others) - off,
                                    "%s%s:%d", off ? "," : "",
                                    md->brokers[i].host, md->brokers[i].port);
    rd_kafka_metadata_destroy(md);
    assert_true(off > 0 && off < sizeof(others));

    /* The helper is connected to broker 1 already, so its publishing is
     * immediate (only the acknowledgement is slow). */
    publish(t.res, "s", "{}", NULL);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, 1, 400),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    p = new_producer_at(others, &t, true, 0);
    send_exec(p, "s", "echo early", id);
    publish_result(&t, id, "early", true);
    assert_int_equal(wait_for(p, id, 10000, &json), RP_OK);
    assert_result(json, id, "early");
    free(json);
    rp_producer_destroy(p);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, 1, 0),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void test_held_results_are_bounded(void **state)
{
    topics_t t;
    rp_producer_t *p;
    char ids[4][RP_ID_MAX + 1], *json = NULL;

    (void)state;
    new_topics(&t);
    p = new_producer(&t, true, 2);
    for (int i = 0; i < 4; i++)
        send_exec(p, "s", "true", ids[i]);
    for (int i = 0; i < 4; i++)
        publish_result(&t, ids[i], ids[i], true);
    /* Waiting for the last one holds 0,1,2 on the way: 0 is dropped. */
    assert_int_equal(wait_for(p, ids[3], 10000, &json), RP_OK);
    assert_result(json, ids[3], ids[3]);
    free(json);
    assert_int_equal(rp_producer_pending(p), 2);
    assert_int_equal(wait_for(p, ids[0], 300, &json), RP_ERR_TIMEOUT);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(wait_for(p, ids[i], 0, &json), RP_OK);
        assert_result(json, ids[i], ids[i]);
        free(json);
    }
    assert_int_equal(rp_producer_pending(p), 0);
    rp_producer_destroy(p);
}

static void test_new_and_wait_errors(void **state)
{
    rp_producer_conf_t conf = {0};
    rp_producer_t *p = (rp_producer_t *)&conf;
    topics_t t;
    char err[512] = "", *json = NULL;

    (void)state;
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_null(p);
    assert_non_null(strstr(err, "brokers"));

    /* The mock cluster would create a missing topic on first sight; make
     * it answer as a broker without auto-creation does. */
    conf.brokers = bootstraps;
    rd_kafka_mock_topic_set_error(mock, "no.such.requests",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    rd_kafka_mock_topic_set_error(mock, "no.such.results",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    conf.requests_topic = "no.such.requests";
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_null(p);
    assert_non_null(strstr(err, "no.such.requests"));

    conf.requests_topic = NULL; /* the default, which the mock creates */
    conf.results_topic = "no.such.results";
    conf.watch_results = true;
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_null(p);
    assert_non_null(strstr(err, "no.such.results"));

    conf.props = (const char *const[]){"no.such.setting=1"};
    conf.n_props = 1;
    assert_int_equal(rp_producer_new(&conf, &p, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "no.such.setting"));

    new_topics(&t);
    p = new_producer(&t, false, 0);
    assert_int_equal(rp_producer_wait(p, "x", 100, &json, NULL, err,
                                      sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "watch_results"));
    assert_int_equal(rp_producer_pending(p), 0);
    rp_producer_destroy(p);
    rp_producer_destroy(NULL);
}

/* ---- CLI tests ---- */

typedef struct child {
    pid_t pid;
    int out_fd, err_fd;
    char out[CHILD_OUTPUT_MAX];
    char err[CHILD_OUTPUT_MAX];
    size_t out_len, err_len;
    int status; /* exit status, or -1 if killed */
} child_t;

/* Start runpool-produce with args (NULL-terminated) and stdin_text fed on
 * its standard input. brokers_env: value of RUNPOOL_BROKERS, or NULL to
 * unset it. */
static void cli_start(child_t *ch, const char *const *args,
                      const char *stdin_text, const char *brokers_env)
{
    const char *dir = getenv("RP_BIN_DIR");
    char path[1024], envbuf[1024];
    char *argv[64], *envp[512];
    int in_p[2], out_p[2], err_p[2], n = 0, ne = 0;
    posix_spawn_file_actions_t fa;

    if (!dir)
        fail_msg("RP_BIN_DIR is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/runpool-produce", dir);
    argv[n++] = path;
    for (; *args && n < 63; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    for (char **e = environ; *e && ne < 509; e++)
        if (strncmp(*e, "RUNPOOL_BROKERS=", 16) != 0 &&
            strncmp(*e, "RUNPOOL_LOG_LEVEL=", 18) != 0)
            envp[ne++] = *e;
    envp[ne++] = (char *)"RUNPOOL_LOG_LEVEL=error";
    if (brokers_env) {
        snprintf(envbuf, sizeof(envbuf), "RUNPOOL_BROKERS=%s", brokers_env);
        envp[ne++] = envbuf;
    }
    envp[ne] = NULL;

    assert_int_equal(pipe2(in_p, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out_p, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err_p, O_CLOEXEC), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
    assert_int_equal(posix_spawn(&ch->pid, path, &fa, NULL, argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in_p[0]);
    close(out_p[1]);
    close(err_p[1]);
    if (stdin_text) {
        size_t len = strlen(stdin_text), off = 0;

        while (off < len) {
            ssize_t w = write(in_p[1], stdin_text + off, len - off);

            assert_true(w > 0);
            off += (size_t)w;
        }
    }
    close(in_p[1]);
    ch->out_fd = out_p[0];
    ch->err_fd = err_p[0];
    ch->out_len = ch->err_len = 0;
}

/* Collect output until exit (killing the child after CHILD_TIMEOUT_MS). */
static void cli_finish(child_t *ch)
{
    int64_t deadline = rp_time_mono_ms() + CHILD_TIMEOUT_MS;
    int open_fds = 2, wstatus;

    while (open_fds > 0 && rp_time_mono_ms() < deadline) {
        struct pollfd pfd[2] = {{ch->out_fd, POLLIN, 0},
                                {ch->err_fd, POLLIN, 0}};

        if (poll(pfd, 2, 200) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char *buf = i ? ch->err : ch->out;
            size_t *len = i ? &ch->err_len : &ch->out_len;
            ssize_t r;

            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP)))
                continue;
            r = read(pfd[i].fd, buf + *len, CHILD_OUTPUT_MAX - 1 - *len);
            if (r <= 0) {
                close(pfd[i].fd);
                if (i)
                    ch->err_fd = -1;
                else
                    ch->out_fd = -1;
                open_fds--;
                continue;
            }
            *len += (size_t)r;
        }
    }
    ch->out[ch->out_len] = '\0';
    ch->err[ch->err_len] = '\0';
    if (open_fds > 0)
        kill(ch->pid, SIGKILL);
    if (ch->out_fd >= 0)
        close(ch->out_fd);
    if (ch->err_fd >= 0)
        close(ch->err_fd);
    assert_int_equal(waitpid(ch->pid, &wstatus, 0), ch->pid);
    ch->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

static child_t *cli_run(const char *const *args, const char *stdin_text,
                        const char *brokers_env)
{
    child_t *ch = calloc(1, sizeof(*ch));

    assert_non_null(ch);
    cli_start(ch, args, stdin_text, brokers_env);
    cli_finish(ch);
    return ch;
}

static bool is_uuid_line(const char *s)
{
    if (strlen(s) < 37 || s[36] != '\n')
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

static void test_cli_usage_errors(void **state)
{
    static const struct {
        const char *args[12];
        const char *needle;
    } cases[] = {
        {{NULL}, "no brokers"},
        {{"--brokers", "127.0.0.1:1", "--", "ls", NULL}, "--session"},
        {{"--brokers", "127.0.0.1:1", "--session", "s", NULL}, "COMMAND"},
        {{"--brokers", "127.0.0.1:1", "--session", "a b", "--", "ls", NULL},
         "--session"},
        {{"--brokers", "b", "--session", "s", "--timeout-s", "abc", "--",
          "ls", NULL},
         "--timeout-s"},
        {{"--brokers", "b", "--session", "s", "--timeout-s", "0", "--", "ls",
          NULL},
         "--timeout-s"},
        {{"--brokers", "b", "--session", "s", "--env", "1X=2", "--", "ls",
          NULL},
         "--env"},
        {{"--brokers", "b", "--session", "s", "--wait=soon", "--", "ls",
          NULL},
         "--wait"},
        {{"--brokers", "b", "--session", "s", "--bogus", "--", "ls", NULL},
         "unknown option"},
        {{"--brokers", "b", "--session", "s", "--close", "--", "ls", NULL},
         "--close"},
        {{"--brokers", "b", "--stdin", "--session", "s", NULL}, "--stdin"},
        {{"--brokers", "b", "--session", "s", "-X", "nokey", "--", "ls",
          NULL},
         "-X"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        child_t *ch = cli_run(cases[i].args, NULL, NULL);

        if (ch->status != 2 || !strstr(ch->err, cases[i].needle))
            fail_msg("case %zu: exit %d, stderr '%s' (want 2 and '%s')", i,
                     ch->status, ch->err, cases[i].needle);
        assert_int_equal(ch->out_len, 0);
        free(ch);
    }
}

static void test_cli_sends_and_prints_id(void **state)
{
    topics_t t;
    child_t *ch;
    consumed_t c;
    rp_request_t parsed = {0};
    char err[512] = "", id[40];

    (void)state;
    new_topics(&t);
    {
        const char *args[] = {"--brokers", bootstraps, "--session", "cli-1",
                              "--requests-topic", t.req, "--timeout-s", "9",
                              "--env", "A=1=2", "--", "echo", "-n",
                              "hello world", NULL};

        ch = cli_run(args, NULL, NULL);
    }
    if (ch->status != 0)
        fail_msg("exit %d: %s", ch->status, ch->err);
    assert_true(is_uuid_line(ch->out));
    assert_int_equal(ch->out_len, 37);
    memcpy(id, ch->out, 36);
    id[36] = '\0';
    free(ch);

    /* Brokers from the environment; --close sends close_session. */
    {
        const char *args[] = {"--session", "cli-1", "--requests-topic", t.req,
                              "--close", NULL};

        ch = cli_run(args, NULL, bootstraps);
    }
    if (ch->status != 0)
        fail_msg("exit %d: %s", ch->status, ch->err);
    assert_true(is_uuid_line(ch->out));
    free(ch);

    consume(t.req, 2, 10000, &c);
    assert_int_equal(c.n, 2);
    /* Same key, so same partition, so in send order. */
    assert_int_equal(rp_request_parse(c.msgs[0].payload, c.msgs[0].len,
                                      &parsed, err, sizeof(err)),
                     RP_OK);
    assert_string_equal(parsed.execution_id, id);
    assert_string_equal(parsed.session_id, "cli-1");
    assert_string_equal(parsed.command, "echo -n hello world");
    assert_int_equal(parsed.timeout_s, 9);
    assert_string_equal(rp_env_get(&parsed.env, "A"), "1=2");
    rp_request_clear(&parsed);
    assert_int_equal(rp_request_parse(c.msgs[1].payload, c.msgs[1].len,
                                      &parsed, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(parsed.op, RP_OP_CLOSE_SESSION);
    assert_null(parsed.command);
    rp_request_clear(&parsed);
    consumed_free(&c);
}

static void test_cli_stdin_reports_bad_lines(void **state)
{
    const char *input =
        "{\"session_id\":\"in-1\",\"command\":\"echo one\"}\n"
        "[\"not\",\"an\",\"object\"]\n"
        "\n"
        "{\"session_id\":\"in-2\",\"execution_id\":\"line-4\","
        "\"command\":\"echo two\"}\n"
        "{\"command\":\"no session\"}"; /* last line without newline */
    topics_t t;
    child_t *ch;
    char *nl;

    (void)state;
    new_topics(&t);
    {
        const char *args[] = {"--brokers", bootstraps, "--requests-topic",
                              t.req, "--stdin", NULL};

        ch = cli_run(args, input, NULL);
    }
    assert_int_equal(ch->status, 2);
    assert_non_null(strstr(ch->err, "line 2: not a JSON object"));
    assert_non_null(strstr(ch->err, "line 5: session_id"));
    assert_null(strstr(ch->err, "line 3"));
    assert_null(strstr(ch->err, "line 4"));
    /* Two ids, in input order: a generated one, then the given one. */
    assert_true(is_uuid_line(ch->out));
    nl = strchr(ch->out, '\n');
    assert_string_equal(nl + 1, "line-4\n");
    free(ch);
    assert_int_equal(topic_count(t.req), 2);
}

static void test_cli_wait_prints_result(void **state)
{
    topics_t t;
    child_t *ch = calloc(1, sizeof(*ch));
    consumed_t c;
    char *want;
    int64_t deadline = rp_time_mono_ms() + 20000;

    (void)state;
    assert_non_null(ch);
    new_topics(&t);
    {
        const char *args[] = {"--brokers", bootstraps, "--session", "w-1",
                              "--execution-id", "cli-wait-1",
                              "--requests-topic", t.req, "--results-topic",
                              t.res, "--wait=30", "--", "false", NULL};

        cli_start(ch, args, NULL, NULL);
    }
    /* Answer only once the request is there, as a worker would. */
    while (topic_count(t.req) == 0 && rp_time_mono_ms() < deadline)
        usleep(50 * 1000);
    consume(t.req, 1, 10000, &c);
    assert_int_equal(c.n, 1);
    consumed_free(&c);
    publish_result(&t, "other-id", "not mine", true);
    want = make_result("cli-wait-1", "w-1", RP_STATUS_FAILED, "");
    publish(t.res, "w-1", want, "cli-wait-1");
    cli_finish(ch);
    if (ch->status != 1)
        fail_msg("exit %d (want 1 for failed): %s", ch->status, ch->err);
    assert_int_equal(ch->out_len, strlen(want) + 1);
    assert_memory_equal(ch->out, want, strlen(want));
    assert_int_equal(ch->out[ch->out_len - 1], '\n');
    free(want);
    free(ch);
}

static void test_cli_stdin_wait_worst_status(void **state)
{
    const char *input =
        "{\"session_id\":\"b-1\",\"execution_id\":\"batch-1\","
        "\"command\":\"true\"}\n"
        "{\"session_id\":\"b-2\",\"execution_id\":\"batch-2\","
        "\"command\":\"false\"}\n";
    topics_t t;
    child_t *ch = calloc(1, sizeof(*ch));
    char *r1, *r2, *expect;
    int64_t deadline = rp_time_mono_ms() + 20000;
    size_t n;

    (void)state;
    assert_non_null(ch);
    new_topics(&t);
    {
        const char *args[] = {"--brokers", bootstraps, "--requests-topic",
                              t.req, "--results-topic", t.res, "--stdin",
                              "--wait=30", NULL};

        cli_start(ch, args, input, NULL);
    }
    while (topic_count(t.req) < 2 && rp_time_mono_ms() < deadline)
        usleep(50 * 1000);
    assert_int_equal(topic_count(t.req), 2);
    /* Answered in reverse order; printed in input order. */
    r2 = make_result("batch-2", "b-2", RP_STATUS_TIMED_OUT, "");
    r1 = make_result("batch-1", "b-1", RP_STATUS_SUCCEEDED, "ok");
    publish(t.res, "b-2", r2, "batch-2");
    publish(t.res, "b-1", r1, "batch-1");
    cli_finish(ch);
    assert_int_equal(ch->status, 1); /* worst of succeeded and timed_out */
    n = strlen(r1) + strlen(r2) + 3;
    expect = malloc(n);
    assert_non_null(expect);
    snprintf(expect, n, "%s\n%s\n", r1, r2);
    assert_string_equal(ch->out, expect);
    free(expect);
    free(r1);
    free(r2);
    free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_lands_keyed_with_headers),
        cmocka_unit_test(test_send_signed),
        cmocka_unit_test(test_same_session_same_partition),
        cmocka_unit_test(test_send_json_adds_v_and_id),
        cmocka_unit_test(test_send_json_rejects_unaddressable),
        cmocka_unit_test(test_wait_returns_result_published_after_send),
        cmocka_unit_test(test_wait_out_of_order_and_unknown),
        cmocka_unit_test(test_wait_times_out),
        cmocka_unit_test(test_wait_skips_results_older_than_producer),
        cmocka_unit_test(test_reader_positioned_before_first_send),
        cmocka_unit_test(test_held_results_are_bounded),
        cmocka_unit_test(test_new_and_wait_errors),
        cmocka_unit_test(test_cli_usage_errors),
        cmocka_unit_test(test_cli_sends_and_prints_id),
        cmocka_unit_test(test_cli_stdin_reports_bad_lines),
        cmocka_unit_test(test_cli_wait_prints_result),
        cmocka_unit_test(test_cli_stdin_wait_worst_status),
    };

    return cmocka_run_group_tests(tests, setup_cluster, teardown_cluster);
}
