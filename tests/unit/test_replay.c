/* test_replay — runpool-replay's pure parts: options, range refusal and
 * resolution, filters, the re-execute rewrite and the summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rp_contract.h"
#include "rp_ids.h"
#include "rp_replay.h"
#include "rp_request.h"

static rp_replay_conf_t conf;
static char es[512];

/* Parse a NULL-terminated list of words (argv[0] added). */
static rp_err_t parse_words(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *w;

    argv[argc++] = (char *)"runpool-replay";
    va_start(ap, first);
    for (w = first; w; w = va_arg(ap, const char *))
        argv[argc++] = (char *)w;
    va_end(ap);
    argv[argc] = NULL;
    es[0] = '\0';
    return rp_replay_conf_parse(&conf, argc, argv, "localhost:9092", NULL,
                                NULL, es, sizeof(es));
}

#define PARSE(...) parse_words(__VA_ARGS__, (const char *)NULL)

static void refused(rp_err_t err, const char *words)
{
    assert_int_equal(err, RP_ERR_INVALID);
    if (!strstr(es, words))
        fail_msg("message '%s' does not say '%s'", es, words);
}

static void test_parse_offsets(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--partition", "2", "--start-offset", "5",
                           "--end-offset", "9"), RP_OK);
    assert_int_equal(conf.n_ranges, 1);
    assert_int_equal(conf.ranges[0].partition, 2);
    assert_int_equal(conf.ranges[0].start, 5);
    assert_int_equal(conf.ranges[0].end, 9);
    assert_int_equal(conf.mode, RP_REPLAY_PRINT);
    assert_string_equal(conf.topic, "runpool.requests");

    assert_int_equal(PARSE("--range", "0:1-3", "--range", "1:0-0",
                           "--topic", "t", "-X", "a=b"), RP_OK);
    assert_int_equal(conf.n_ranges, 2);
    assert_int_equal(conf.ranges[1].partition, 1);
    assert_int_equal(conf.ranges[1].end, 0);
    assert_string_equal(conf.topic, "t");
    assert_int_equal(conf.n_props, 1);
}

static void test_parse_times(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(rp_replay_parse_time("1764756000", &ms), 0);
    assert_int_equal(ms, 1764756000000LL);
    assert_int_equal(rp_replay_parse_time("2025-12-03T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1764756000000LL);
    assert_int_equal(rp_replay_parse_time("2025-12-03T11:00:00+01:00", &ms), 0);
    assert_int_equal(ms, 1764756000000LL);
    assert_int_equal(rp_replay_parse_time("yesterday", &ms), -1);
    assert_int_equal(rp_replay_parse_time("", &ms), -1);

    assert_int_equal(PARSE("--since", "1764756000", "--until",
                           "2025-12-03T11:00:00Z", "--partition", "1"), RP_OK);
    assert_true(conf.has_since && conf.has_until);
    assert_int_equal(conf.until_ms - conf.since_ms, 3600000);
    assert_int_equal(conf.partition, 1);
    assert_int_equal(conf.n_ranges, 0);
    refused(PARSE("--since", "noon"), "--since 'noon'");
}

static void test_refuse_ambiguous(void **state)
{
    (void)state;
    refused(PARSE(NULL), "no range");
    refused(PARSE("--session", "s1"), "no range");
    refused(PARSE("--since", "100", "--partition", "0", "--start-offset", "1",
                  "--end-offset", "2"), "not both");
    refused(PARSE("--since", "100", "--range", "0:1-2"), "not both");
    refused(PARSE("--range", "0:1-2", "--partition", "0", "--start-offset",
                  "1", "--end-offset", "2"), "not both");
    refused(PARSE("--range", "0:1-2", "--partition", "0"), "drop --partition");
    refused(PARSE("--since", "200", "--until", "100"),
            "--until must be after --since");
    refused(PARSE("--since", "100", "--until", "100"),
            "--until must be after --since");
    refused(PARSE("--until", "100"), "--until needs --since");
    refused(PARSE("--start-offset", "1", "--end-offset", "2"),
            "need --partition");
    refused(PARSE("--partition", "0", "--start-offset", "1"), "incomplete");
    refused(PARSE("--partition", "0", "--start-offset", "5", "--end-offset",
                  "4"), "before start offset");
    refused(PARSE("--range", "0:1-2", "--range", "0:5-6"), "given twice");
    refused(PARSE("--range", "0:9"), "PARTITION:START-END");
    refused(PARSE("--partition", "-1", "--start-offset", "1", "--end-offset",
                  "2"), "--partition '-1'");
    refused(PARSE("--range", "0:1-2", "--bogus"), "unknown option");
    refused(PARSE("--range", "0:1-2", "extra"), "unexpected argument");
}

static void test_refuse_modes(void **state)
{
    (void)state;
    refused(PARSE("--range", "0:0-1", "--reexecute"), "--session-prefix");
    refused(PARSE("--range", "0:0-1", "--reexecute", "--same-session",
                  "--session-prefix", "x-"), "not both");
    refused(PARSE("--range", "0:0-1", "--session-prefix", "x-"),
            "only go with --reexecute");
    refused(PARSE("--range", "0:0-1", "--reexecute", "--session-prefix",
                  "bad prefix"), "--session-prefix 'bad prefix'");
    refused(PARSE("--range", "0:0-1", "--copy-to", "a", "--reexecute",
                  "--same-session"), "one of");
    refused(PARSE("--range", "0:0-1", "--all"), "--from-dlq");
    refused(PARSE("--range", "0:0-1", "--dry-run"), "--dry-run");
    refused(PARSE("--range", "0:0-1", "--copy-to", "runpool.requests"),
            "is the topic being read");
    refused(PARSE("--range", "0:0-1", "--from-dlq", "--topic",
                  "runpool.requests"), "reads the DLQ");
    refused(PARSE("--range", "0:0-1", "--from-dlq", "--all", "--reason", "x"),
            "not both");

    assert_int_equal(PARSE("--range", "0:0-1", "--from-dlq"), RP_OK);
    assert_string_equal(conf.topic, "runpool.dlq");
    assert_int_equal(conf.mode, RP_REPLAY_FROM_DLQ);
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--session-prefix", "replay-", "--dry-run"), RP_OK);
    assert_int_equal(conf.mode, RP_REPLAY_REEXEC);
    assert_true(conf.dry_run);
    assert_int_equal(PARSE("--help"), RP_OK);
    assert_true(conf.help);
    assert_int_equal(PARSE("--version"), RP_OK);
    assert_true(conf.version);

    /* No brokers anywhere. */
    {
        char *argv[] = {"runpool-replay", "--range", "0:0-1", NULL};

        assert_int_equal(rp_replay_conf_parse(&conf, 3, argv, NULL, NULL,
                                              NULL, es, sizeof(es)),
                         RP_ERR_INVALID);
        assert_non_null(strstr(es, "RUNPOOL_BROKERS"));
    }
}

static void test_resolve(void **state)
{
    int64_t s, e;
    bool empty;

    (void)state;
    assert_int_equal(PARSE("--range", "0:2-4", "--range", "1:0-0"), RP_OK);
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, -1, -1, &s, &e,
                                       &empty, es, sizeof(es)), RP_OK);
    assert_false(empty);
    assert_int_equal(s, 2);
    assert_int_equal(e, 4);
    /* A partition no range names is skipped. */
    assert_int_equal(rp_replay_resolve(&conf, 2, 0, 10, -1, -1, &s, &e,
                                       &empty, es, sizeof(es)), RP_OK);
    assert_true(empty);
    /* Beyond the end: offsets 0..4 exist, 4 is the last. */
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 4, -1, -1, &s, &e, &empty,
                                       es, sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "beyond the end"));
    assert_non_null(strstr(es, "last offset is 3"));
    assert_int_equal(rp_replay_resolve(&conf, 1, 0, 0, -1, -1, &s, &e, &empty,
                                       es, sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "empty"));
    /* Deleted by retention. */
    assert_int_equal(rp_replay_resolve(&conf, 0, 3, 10, -1, -1, &s, &e,
                                       &empty, es, sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "already deleted"));

    /* Times: since answered 3, until answered 7 -> 3..6. */
    assert_int_equal(PARSE("--since", "100", "--until", "200"), RP_OK);
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, 3, 7, &s, &e, &empty,
                                       es, sizeof(es)), RP_OK);
    assert_false(empty);
    assert_int_equal(s, 3);
    assert_int_equal(e, 6);
    /* Nothing at or after until: to the end. */
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, 3, -1, &s, &e, &empty,
                                       es, sizeof(es)), RP_OK);
    assert_int_equal(e, 9);
    /* Nothing at or after since: empty. */
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, -1, -1, &s, &e, &empty,
                                       es, sizeof(es)), RP_OK);
    assert_true(empty);
    /* since and until find the same record: nothing in between. */
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, 5, 5, &s, &e, &empty,
                                       es, sizeof(es)), RP_OK);
    assert_true(empty);
    /* --since only: up to the end as it was at the start. */
    assert_int_equal(PARSE("--since", "100"), RP_OK);
    assert_int_equal(rp_replay_resolve(&conf, 0, 0, 10, 4, 2, &s, &e, &empty,
                                       es, sizeof(es)), RP_OK);
    assert_int_equal(s, 4);
    assert_int_equal(e, 9);
}

static rp_replay_rec_t rec_of(const char *key, const char *value,
                              const rp_replay_hdr_t *h, size_t nh)
{
    rp_replay_rec_t r = {.topic = "t", .partition = 0, .offset = 7,
                         .ts_ms = 1764756000123LL, .key = key,
                         .keylen = key ? strlen(key) : 0, .value = value,
                         .len = value ? strlen(value) : 0, .hdrs = h,
                         .n_hdrs = nh};
    return r;
}

#define REQ1 "{\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"echo hi\"}"
#define RES1 "{\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"status\":\"failed\"}"

static void test_filters(void **state)
{
    rp_replay_hdr_t rh[] = {{"execution_id", "e9", 2}, {"status", "succeeded", 9}};
    rp_replay_hdr_t dh[] = {{"runpool.error.code", "invalid_request", 15}};
    rp_replay_hdr_t ioh[] = {{"runpool.error.code", "unavailable", 11}};
    rp_replay_rec_t r;
    rp_replay_skip_t why;

    (void)state;
    assert_int_equal(PARSE("--range", "0:0-1", "--session", "s1"), RP_OK);
    r = rec_of("s1", REQ1, NULL, 0);
    assert_true(rp_replay_match(&conf, &r, &why));
    r = rec_of("s2", REQ1, NULL, 0); /* key differs, value says s1 */
    assert_true(rp_replay_match(&conf, &r, &why));
    r = rec_of("s2", "not json", NULL, 0);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(why, RP_REPLAY_SKIP_SESSION);

    assert_int_equal(PARSE("--range", "0:0-1", "--execution", "e1"), RP_OK);
    r = rec_of("s1", REQ1, NULL, 0);
    assert_true(rp_replay_match(&conf, &r, &why));
    /* A header wins over the value (results carry one). */
    r = rec_of("s1", REQ1, rh, 2);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(why, RP_REPLAY_SKIP_EXECUTION);

    assert_int_equal(PARSE("--range", "0:0-1", "--status", "failed"), RP_OK);
    r = rec_of("s1", RES1, NULL, 0);
    assert_true(rp_replay_match(&conf, &r, &why));
    r = rec_of("s1", RES1, rh, 2);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(why, RP_REPLAY_SKIP_STATUS);

    assert_int_equal(PARSE("--range", "0:0-1", "--reason", "invalid_request"),
                     RP_OK);
    r = rec_of("s1", "x", dh, 1);
    assert_true(rp_replay_match(&conf, &r, &why));
    r = rec_of("s1", "x", ioh, 1);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(why, RP_REPLAY_SKIP_REASON);

    /* --from-dlq alone: retriable reasons only. */
    assert_true(rp_replay_reason_retriable("unavailable"));
    assert_true(rp_replay_reason_retriable("io"));
    assert_false(rp_replay_reason_retriable("invalid_request"));
    assert_false(rp_replay_reason_retriable("key_mismatch"));
    assert_false(rp_replay_reason_retriable("too_large"));
    assert_false(rp_replay_reason_retriable("no such code"));
    assert_int_equal(PARSE("--range", "0:0-1", "--from-dlq"), RP_OK);
    r = rec_of("s1", "x", dh, 1);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(why, RP_REPLAY_SKIP_NOT_RETRIABLE);
    r = rec_of("s1", "x", ioh, 1);
    assert_true(rp_replay_match(&conf, &r, &why));
    r = rec_of("s1", "x", NULL, 0);
    assert_false(rp_replay_match(&conf, &r, &why));
    assert_int_equal(PARSE("--range", "0:0-1", "--from-dlq", "--all"), RP_OK);
    r = rec_of("s1", "x", dh, 1);
    assert_true(rp_replay_match(&conf, &r, &why));
    assert_int_equal(PARSE("--range", "0:0-1", "--from-dlq", "--reason",
                           "invalid_request"), RP_OK);
    assert_true(rp_replay_match(&conf, &r, &why));
}

static void test_new_id(void **state)
{
    char out[RP_ID_MAX + 1], longid[RP_ID_MAX + 1];

    (void)state;
    assert_int_equal(rp_replay_new_id("abc", "5f3a9c01", out, sizeof(out)),
                     RP_OK);
    assert_string_equal(out, "abc.r5f3a9c01");
    /* A replay of a replay appends: the id names its whole line. */
    assert_int_equal(rp_replay_new_id("abc.r5f3a9c01", "t2", out, sizeof(out)),
                     RP_OK);
    assert_string_equal(out, "abc.r5f3a9c01.rt2");
    assert_true(rp_id_valid(out, strlen(out)));
    memset(longid, 'a', RP_ID_MAX - 4);
    longid[RP_ID_MAX - 4] = '\0';
    assert_int_equal(rp_replay_new_id(longid, "xy", out, sizeof(out)), RP_OK);
    assert_int_equal(strlen(out), RP_ID_MAX);
    assert_true(rp_id_valid(out, strlen(out)));
    memset(longid, 'a', RP_ID_MAX - 3);
    longid[RP_ID_MAX - 3] = '\0';
    assert_int_equal(rp_replay_new_id(longid, "xy", out, sizeof(out)),
                     RP_ERR_TOO_LARGE);
}

/* --from-dlq drops what the worker added, and nothing the producer sent. */
static void test_dlq_annotation(void **state)
{
    (void)state;
    assert_true(rp_replay_is_dlq_annotation("runpool.error.code"));
    assert_true(rp_replay_is_dlq_annotation("runpool.error.message"));
    assert_true(rp_replay_is_dlq_annotation("runpool.source.offset"));
    assert_true(rp_replay_is_dlq_annotation("runpool.worker"));
    assert_true(rp_replay_is_dlq_annotation("runpool.payload.truncated_from"));
    assert_false(rp_replay_is_dlq_annotation("runpool.trace"));
    assert_false(rp_replay_is_dlq_annotation("runpool.workers"));
    assert_false(rp_replay_is_dlq_annotation("runpool-signature"));
    assert_false(rp_replay_is_dlq_annotation("traceparent"));
}

/* Two runs of one --reexecute get different tags (the worker would answer
 * a repeated execution_id with the first run's result); --replay-tag
 * gives a chosen one, and is refused when malformed or without
 * --reexecute. */
static void test_replay_tag(void **state)
{
    char first[RP_REPLAY_TAG_MAX + 1];

    (void)state;
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session"), RP_OK);
    assert_int_equal(strlen(conf.tag), RP_REPLAY_TAG_DEFAULT_LEN);
    assert_true(rp_replay_tag_valid(conf.tag));
    memcpy(first, conf.tag, sizeof(first));
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session"), RP_OK);
    assert_string_not_equal(conf.tag, first);
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session", "--replay-tag", "fix42"), RP_OK);
    assert_string_equal(conf.tag, "fix42");
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session", "--replay-tag", "Bad!"),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "--replay-tag"));
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session", "--replay-tag",
                           "abcdefghijklmnopq"), RP_ERR_INVALID);
    assert_int_equal(PARSE("--range", "0:0-1", "--replay-tag", "t1"),
                     RP_ERR_INVALID);
    assert_false(rp_replay_tag_valid(""));
}

static void test_rewrite(void **state)
{
    char sess[RP_ID_MAX + 1], exec[RP_ID_MAX + 1], orig[RP_ID_MAX + 1];
    char *json = NULL, longs[RP_ID_MAX + 1], big[512];
    rp_replay_rec_t r = rec_of("s1", REQ1, NULL, 0);
    rp_replay_skip_t why;
    rp_request_t req;

    (void)state;
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--session-prefix", "replay-", "--replay-tag",
                           "t1"), RP_OK);
    assert_int_equal(rp_replay_rewrite(&conf, &r, &json, sess, exec, orig,
                                       &why, es, sizeof(es)), RP_OK);
    assert_string_equal(sess, "replay-s1");
    assert_string_equal(exec, "e1.rt1");
    assert_string_equal(orig, "e1");
    /* The result is a valid request with the new ids, same command. */
    memset(&req, 0, sizeof(req));
    assert_int_equal(rp_request_parse(json, strlen(json), &req, es, sizeof(es)),
                     RP_OK);
    assert_string_equal(req.execution_id, "e1.rt1");
    assert_string_equal(req.session_id, "replay-s1");
    assert_string_equal(req.command, "echo hi");
    rp_request_clear(&req);
    free(json);

    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--same-session"), RP_OK);
    assert_int_equal(rp_replay_rewrite(&conf, &r, &json, sess, exec, orig,
                                       &why, es, sizeof(es)), RP_OK);
    assert_string_equal(sess, "s1");
    free(json);

    r = rec_of("s1", "{\"v\":1}", NULL, 0);
    assert_int_equal(rp_replay_rewrite(&conf, &r, &json, sess, exec, orig,
                                       &why, es, sizeof(es)), RP_ERR_INVALID);
    assert_int_equal(why, RP_REPLAY_SKIP_NOT_A_REQUEST);
    assert_null(json);

    /* prefix + session over RP_ID_MAX. */
    memset(longs, 's', RP_ID_MAX);
    longs[RP_ID_MAX] = '\0';
    snprintf(big, sizeof(big),
             "{\"v\":1,\"execution_id\":\"e\",\"session_id\":\"%s\","
             "\"command\":\"true\"}", longs);
    r = rec_of(longs, big, NULL, 0);
    assert_int_equal(PARSE("--range", "0:0-1", "--reexecute",
                           "--session-prefix", "p-"), RP_OK);
    assert_int_equal(rp_replay_rewrite(&conf, &r, &json, sess, exec, orig,
                                       &why, es, sizeof(es)), RP_ERR_TOO_LARGE);
    assert_int_equal(why, RP_REPLAY_SKIP_ID_TOO_LONG);
    assert_null(json);
}

static void test_rec_json(void **state)
{
    rp_replay_hdr_t h[] = {{"a", "1", 1}, {"bin", "\xff\x00", 2}, {"n", NULL, 0}};
    rp_replay_rec_t r = rec_of("s1", REQ1, h, 3);
    char *j;

    (void)state;
    j = rp_replay_rec_json(&r);
    assert_non_null(j);
    assert_string_equal(j,
        "{\"topic\":\"t\",\"partition\":0,\"offset\":7,"
        "\"timestamp\":\"2025-12-03T10:00:00.123Z\",\"key\":\"s1\","
        "\"headers\":[{\"key\":\"a\",\"value\":\"1\"},"
        "{\"key\":\"bin\",\"value_base64\":\"/wA=\"},"
        "{\"key\":\"n\",\"value\":null}],"
        "\"value\":\"{\\\"v\\\":1,\\\"execution_id\\\":\\\"e1\\\","
        "\\\"session_id\\\":\\\"s1\\\",\\\"command\\\":\\\"echo hi\\\"}\"}");
    free(j);
    r = rec_of(NULL, NULL, NULL, 0);
    r.ts_ms = -1;
    j = rp_replay_rec_json(&r);
    assert_non_null(strstr(j, "\"timestamp\":null,\"key\":null"));
    assert_non_null(strstr(j, "\"value\":null"));
    free(j);
}

static void test_summary(void **state)
{
    rp_replay_stats_t st = {.read = 10, .matched = 3, .sent = 3};
    char buf[256];

    (void)state;
    st.skipped[RP_REPLAY_SKIP_SESSION] = 5;
    st.skipped[RP_REPLAY_SKIP_NOT_RETRIABLE] = 2;
    rp_replay_summary(&st, false, buf, sizeof(buf));
    assert_string_equal(buf, "read 10, matched 3, sent 3, failed 0, skipped: "
                             "session 5, not_retriable 2");
    rp_replay_summary(&st, true, buf, sizeof(buf));
    assert_non_null(strstr(buf, "would send 3"));
    memset(&st, 0, sizeof(st));
    rp_replay_summary(&st, false, buf, sizeof(buf));
    assert_string_equal(buf, "read 0, matched 0, sent 0, failed 0");
    /* Truncates, never overflows. */
    st.skipped[0] = 1;
    rp_replay_summary(&st, false, buf, 12);
    assert_int_equal(strlen(buf), 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_offsets),
        cmocka_unit_test(test_parse_times),
        cmocka_unit_test(test_refuse_ambiguous),
        cmocka_unit_test(test_refuse_modes),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_new_id),
        cmocka_unit_test(test_replay_tag),
        cmocka_unit_test(test_dlq_annotation),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_rec_json),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
