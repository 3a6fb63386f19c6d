/* integration.bad_input — malformed requests go to the DLQ and nowhere else.
 *
 * Each case below is produced raw (not through runpool's producer). Every
 * one must reach runpool.dlq with the original payload byte for byte, the
 * original key, and headers naming the error and where the message came
 * from. A "rejected" result must appear on runpool.results exactly when the
 * request's execution_id and session_id were readable, addressed to that
 * session. Afterwards a valid request still succeeds: the workers survived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_testenv.h"

#define WAIT_MS 60000
/* After the DLQ copy, how long a rejected result may still take to show:
 * the worker produces both together. */
#define SETTLE_MS 3000
#define BIG_COMMAND (256 * 1024 + 1) /* one byte over RP_COMMAND_MAX */
/* The workers' --result-max-bytes, which also caps a DLQ copy; HUGE_COMMAND
 * makes a request over it (and over RP_REQUEST_MAX, but under the size up
 * to which the ids are still read). */
#define DLQ_CAP 300000
#define HUGE_COMMAND 400000

typedef struct bad_case {
    const char *name;
    const char *key;     /* NULL: the message has no key */
    char *payload;       /* owned; NULL: a null value (tombstone) */
    const char *code;    /* expected runpool.error.code */
    const char *mention; /* the error message names this, or NULL */
    const char *eid;     /* readable ids: a rejected result is expected */
    const char *sid;
    rp_te_sent_t sent;
} bad_case_t;

static char *dup_str(const char *s)
{
    char *c = strdup(s);

    assert_non_null(c);
    return c;
}

/* {"v":1,"execution_id":EID,"session_id":SID,"command":"aaa..."} with a
 * command of n bytes. */
static char *big_command_request(const char *eid, const char *sid, size_t n)
{
    char head[160];
    size_t hl, len;
    char *p;

    snprintf(head, sizeof(head),
             "{\"v\":1,\"execution_id\":\"%s\",\"session_id\":\"%s\","
             "\"command\":\"",
             eid, sid);
    hl = strlen(head);
    len = hl + n + 2;
    p = malloc(len + 1);
    assert_non_null(p);
    memcpy(p, head, hl);
    memset(p + hl, 'a', n);
    memcpy(p + hl + n, "\"}", 3);
    return p;
}

static size_t case_len(const bad_case_t *c)
{
    return c->payload ? strlen(c->payload) : 0;
}

static void test_bad_input(void **state)
{
    rp_te_t *te = *state;
    bad_case_t cases[] = {
        {"not JSON", "bad-s1", dup_str("this is {not json"),
         "invalid_request", NULL, NULL, NULL, {0}},
        {"JSON array", "bad-s2", dup_str("[1,2,3]"), "invalid_request", NULL,
         NULL, NULL, {0}},
        {"empty message", "bad-s2", dup_str(""), "invalid_request", NULL, NULL,
         NULL, {0}},
        {"missing v", "bad-s3",
         dup_str("{\"execution_id\":\"bad-nov\",\"session_id\":\"bad-s3\","
                 "\"command\":\"true\"}"),
         "invalid_request", NULL, "bad-nov", "bad-s3", {0}},
        {"bad execution_id characters", "bad-s4",
         dup_str("{\"v\":1,\"execution_id\":\"no spaces/or slashes!\","
                 "\"session_id\":\"bad-s4\",\"command\":\"true\"}"),
         "invalid_request", "execution_id", NULL, NULL, {0}},
        {"bad session_id characters", "bad s4b",
         dup_str("{\"v\":1,\"execution_id\":\"bad-sid\","
                 "\"session_id\":\"bad s4b\",\"command\":\"true\"}"),
         "invalid_request", "session_id", NULL, NULL, {0}},
        {"command over 256 KiB", "bad-s5",
         big_command_request("bad-big", "bad-s5", BIG_COMMAND), "too_large",
         "command", "bad-big", "bad-s5", {0}},
        /* Over the DLQ's size limit: its copy is cut, and says so. */
        {"request over the DLQ's limit", "bad-s11",
         big_command_request("bad-huge", "bad-s11", HUGE_COMMAND),
         "too_large", "command", "bad-huge", "bad-s11", {0}},
        /* A tombstone is not a request; its DLQ copy is a tombstone. */
        {"null value (tombstone)", "bad-s12", NULL, "invalid_request",
         "tombstone", NULL, NULL, {0}},
        /* A UTF-8 byte-order mark is refused, and said to be the reason;
         * the ids behind it are read for the rejected result. */
        {"UTF-8 byte-order mark", "bad-s10",
         dup_str("\xEF\xBB\xBF{\"v\":1,\"execution_id\":\"bad-bom\","
                 "\"session_id\":\"bad-s10\",\"command\":\"true\"}"),
         "invalid_request", "byte-order mark", "bad-bom", "bad-s10", {0}},
        {"timeout_s 0", "bad-s6",
         dup_str("{\"v\":1,\"execution_id\":\"bad-t0\",\"session_id\":"
                 "\"bad-s6\",\"command\":\"true\",\"timeout_s\":0}"),
         "invalid_request", "timeout_s", "bad-t0", "bad-s6", {0}},
        {"unknown field", "bad-s7",
         dup_str("{\"v\":1,\"execution_id\":\"bad-unk\",\"session_id\":"
                 "\"bad-s7\",\"command\":\"true\",\"colour\":\"red\"}"),
         "invalid_request", "colour", "bad-unk", "bad-s7", {0}},
        {"key is not session_id", "some-other-key",
         dup_str("{\"v\":1,\"execution_id\":\"bad-key\",\"session_id\":"
                 "\"bad-s8\",\"command\":\"true\"}"),
         "key_mismatch", NULL, "bad-key", "bad-s8", {0}},
        {"no key", NULL,
         dup_str("{\"v\":1,\"execution_id\":\"bad-nokey\",\"session_id\":"
                 "\"bad-s9\",\"command\":\"true\"}"),
         "key_mismatch", NULL, "bad-nokey", "bad-s9", {0}},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);
    size_t expected_rejections = 0, rejected = 0;
    int workers[2];
    const rp_te_msg_t *m;

    static const char *const cap[] = {"--result-max-bytes", "300000", NULL};

    _Static_assert(DLQ_CAP == 300000, "cap[] spells DLQ_CAP");
    _Static_assert(DLQ_CAP > BIG_COMMAND + 200 && HUGE_COMMAND > DLQ_CAP,
                   "the 256 KiB case fits the DLQ, the huge one does not");
    workers[0] = rp_te_start_worker_args(te, cap);
    workers[1] = rp_te_start_worker_args(te, cap);
    rp_te_wait_group(te, workers, 2, 30000);
    /* No --signing-keys: each worker says once that anyone may run. */
    assert_int_equal(rp_te_log_events(te, workers[0],
                                      "requests_not_authenticated", NULL), 1);
    assert_int_equal(rp_te_log_events(te, workers[1],
                                      "requests_not_authenticated", NULL), 1);

    for (size_t i = 0; i < n; i++) {
        bad_case_t *c = &cases[i];

        rp_te_send_raw(te, c->key, c->key ? strlen(c->key) : 0, c->payload,
                       case_len(c), &c->sent);
        expected_rejections += c->eid != NULL;
    }
    rp_te_flush(te);
    if (!rp_te_wait_dlq(te, n, WAIT_MS))
        fail_msg("%zu of %zu bad requests reached the DLQ in %d ms",
                 rp_te_dlq_count(te), n, WAIT_MS);

    /* Each case: its DLQ copy, found by where the original landed. */
    for (size_t i = 0; i < n; i++) {
        bad_case_t *c = &cases[i];
        const rp_te_msg_t *d = NULL;
        char part[16], off[32];
        const char *msg;

        assert_true(c->sent.delivered);
        rp_te_format(part, sizeof(part), "%d", (int)c->sent.partition);
        rp_te_format(off, sizeof(off), "%lld", (long long)c->sent.offset);
        for (size_t k = 0; k < rp_te_dlq_count(te); k++) {
            const rp_te_msg_t *x = rp_te_dlq_at(te, k);
            const char *xp = rp_te_header(x, "runpool.source.partition");
            const char *xo = rp_te_header(x, "runpool.source.offset");

            if (xp && xo && !strcmp(xp, part) && !strcmp(xo, off)) {
                if (d)
                    fail_msg("%s: two DLQ copies of %s/%s", c->name, part,
                             off);
                d = x;
            }
        }
        if (!d)
            fail_msg("%s: no DLQ message names partition %s offset %s",
                     c->name, part, off);
        print_message("%-28s -> DLQ %s: %s\n", c->name,
                      rp_te_header(d, "runpool.error.code"),
                      rp_te_header(d, "runpool.error.message"));
        /* The original bytes and key, untouched; a tombstone stays one
         * (not an empty value, nor an empty value a tombstone); a copy over
         * the DLQ's limit is its start, with the original length. */
        assert_int_equal(d->value_null, c->payload == NULL);
        if (case_len(c) + strlen(c->key ? c->key : "") > DLQ_CAP) {
            const char *from = rp_te_header(d, "runpool.payload.truncated_from");
            char want[32];

            rp_te_format(want, sizeof(want), "%zu", case_len(c));
            if (!from)
                fail_msg("%s: a cut DLQ copy without "
                         "runpool.payload.truncated_from", c->name);
            assert_string_equal(from, want);
            assert_int_equal(d->value_len, DLQ_CAP - strlen(c->key));
            assert_memory_equal(d->value, c->payload, d->value_len);
        } else {
            assert_null(rp_te_header(d, "runpool.payload.truncated_from"));
            assert_int_equal(d->value_len, case_len(c));
            if (c->payload)
                assert_memory_equal(d->value, c->payload, d->value_len);
        }
        assert_int_equal(d->has_key, c->key != NULL);
        if (c->key)
            assert_string_equal(d->key, c->key);
        /* Why and from where. */
        assert_non_null(rp_te_header(d, "runpool.error.code"));
        assert_string_equal(rp_te_header(d, "runpool.error.code"), c->code);
        msg = rp_te_header(d, "runpool.error.message");
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        if (c->mention && !strstr(msg, c->mention))
            fail_msg("%s: error message \"%s\" does not name %s", c->name, msg,
                     c->mention);
        assert_non_null(rp_te_header(d, "runpool.source.topic"));
        assert_string_equal(rp_te_header(d, "runpool.source.topic"),
                            RP_TOPIC_REQUESTS);
    }

    /* A rejected result for each case with readable ids... */
    for (size_t i = 0; i < n; i++) {
        bad_case_t *c = &cases[i];

        if (!c->eid)
            continue;
        m = rp_te_wait_result(te, c->eid, WAIT_MS);
        if (!m)
            fail_msg("%s: no rejected result for %s", c->name, c->eid);
        rp_te_expect(te, m, "rejected", NULL);
        assert_string_equal(rp_te_str(m, "session_id"), c->sid);
        /* Addressed to the session, whatever key the request had. */
        assert_true(m->has_key);
        assert_string_equal(m->key, c->sid);
        assert_string_equal(rp_te_error(m, "code"), c->code);
        assert_non_null(rp_te_error(m, "message"));
        assert_null(rp_te_str(m, "cwd"));
    }
    /* ...and none for the others: the worker produces the DLQ copy and the
     * result together, so after the last DLQ copy plus a margin, every
     * rejected result that will ever come is here. */
    rp_te_sleep_ms(SETTLE_MS);
    for (size_t i = 0; i < rp_te_result_count(te); i++) {
        m = rp_te_result_at(te, i);
        if (rp_te_str(m, "status") && !strcmp(rp_te_str(m, "status"), "rejected"))
            rejected++;
    }
    print_message("%zu rejected result(s), %zu expected\n", rejected,
                  expected_rejections);
    assert_int_equal(rejected, expected_rejections);

    /* The workers are still there and still work. */
    assert_true(rp_te_alive(te, workers[0]));
    assert_true(rp_te_alive(te, workers[1]));
    rp_te_send_exec(te, "bad-ok", "bad-ok-1", "echo survived", 0, NULL);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_wait_result(te, "bad-ok-1", WAIT_MS), "succeeded",
                 "survived\n");
    assert_true(rp_te_alive(te, workers[0]));
    assert_true(rp_te_alive(te, workers[1]));

    for (size_t i = 0; i < n; i++)
        free(cases[i].payload);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_input, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
