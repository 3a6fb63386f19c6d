/* unit.test_tail — runpool-tail's pure parts: options, --from, filters,
 * the json and table formats, the request index and the stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_tail.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static const char *RESULT_OK =
    "{\"v\":1,\"execution_id\":\"e-1\",\"session_id\":\"s1\","
    "\"status\":\"succeeded\",\"exit_code\":0,\"signal\":null,"
    "\"stdout\":\"hi\\n\",\"stderr\":\"\",\"stdout_truncated\":false,"
    "\"stderr_truncated\":false,\"encoding\":\"utf-8\",\"duration_ms\":14,"
    "\"worker\":\"host:1\"}";
static const char *RESULT_FAIL =
    "{\"v\":1,\"execution_id\":\"e-2\",\"session_id\":\"s2\","
    "\"status\":\"failed\",\"exit_code\":3,\"signal\":null,"
    "\"stdout\":\"\",\"stderr\":\"boom\\n\",\"stdout_truncated\":false,"
    "\"stderr_truncated\":false,\"encoding\":\"utf-8\",\"duration_ms\":200,"
    "\"worker\":\"host:2\"}";

static rp_tail_parse_t parse(rp_tail_conf_t *c, int argc, char **argv,
                             char *err)
{
    return rp_tail_parse_args(c, argc, argv, err, 256);
}

static void test_parse_defaults(void **state)
{
    char *argv[] = {"runpool-tail", "--brokers", "b:9092", NULL};
    rp_tail_conf_t c;
    char err[256];

    (void)state;
    unsetenv("RUNPOOL_RESULTS_TOPIC");
    assert_int_equal(parse(&c, ARGC(argv), argv, err), RP_TAIL_PARSE_OK);
    assert_string_equal(c.brokers, "b:9092");
    assert_string_equal(c.results_topic, "runpool.results");
    assert_true(c.read_results);
    assert_false(c.read_dlq);
    assert_int_equal(c.from.kind, RP_TAIL_FROM_END);
    assert_int_equal(c.format, RP_TAIL_FMT_AUTO);
    assert_int_equal(c.stats_s, 0);
    rp_tail_conf_free(&c);
}

static void test_parse_options(void **state)
{
    char *argv[] = {"runpool-tail", "--brokers=b", "--both", "--session",
                    "s1,s2", "--session", "s3", "--status", "failed,dlq",
                    "--execution", "e-1", "--worker", "w1", "--format",
                    "json", "--with-requests", "--stats=7", "--exit-at-end",
                    "-X", "debug=all", "--from", "-5", NULL};
    rp_tail_conf_t c;
    char err[256];

    (void)state;
    setenv("RUNPOOL_RESULTS_TOPIC", "my.results", 1);
    assert_int_equal(parse(&c, ARGC(argv), argv, err), RP_TAIL_PARSE_OK);
    unsetenv("RUNPOOL_RESULTS_TOPIC");
    assert_string_equal(c.results_topic, "my.results");
    assert_true(c.read_results && c.read_dlq);
    assert_int_equal(c.session.n, 3);
    assert_string_equal(c.session.v[0], "s1");
    assert_string_equal(c.session.v[1], "s2");
    assert_string_equal(c.session.v[2], "s3");
    assert_int_equal(c.status.n, 2);
    assert_int_equal(c.execution.n, 1);
    assert_int_equal(c.worker.n, 1);
    assert_int_equal(c.format, RP_TAIL_FMT_JSON);
    assert_true(c.with_requests);
    assert_int_equal(c.stats_s, 7);
    assert_true(c.exit_at_end);
    assert_int_equal(c.n_props, 1);
    assert_int_equal(c.from.kind, RP_TAIL_FROM_LAST);
    assert_int_equal(c.from.value, 5);
    rp_tail_conf_free(&c);
}

static void expect_error(char **argv, int argc, const char *mention)
{
    rp_tail_conf_t c;
    char err[256] = "";

    assert_int_equal(parse(&c, argc, argv, err), RP_TAIL_PARSE_ERROR);
    if (!strstr(err, mention))
        fail_msg("error '%s' does not mention '%s'", err, mention);
    rp_tail_conf_free(&c);
}

static void test_parse_errors(void **state)
{
    char *a1[] = {"t", "--brokers", "b", "--status", "succeeded,weird", NULL};
    char *a2[] = {"t", "--brokers", "b", "--format", "yaml", NULL};
    char *a3[] = {"t", "--brokers", "b", "--from", "yesterday", NULL};
    char *a4[] = {"t", "--brokers", "b", "--stats=0", NULL};
    char *a5[] = {"t", "--brokers", "b", "--bogus", NULL};
    char *a6[] = {"t", "--brokers", "b", "-X", "novalue", NULL};
    char *a7[] = {"t", "--brokers", "b", "--dlq", "--with-requests", NULL};
    char *a8[] = {"t", "--brokers", "b", "stray", NULL};
    char *a9[] = {"t", "--brokers", NULL};
    char *a10[] = {"t", NULL};
    char *help[] = {"t", "--help", NULL};
    char *ver[] = {"t", "--version", NULL};
    rp_tail_conf_t c;
    char err[256];

    (void)state;
    unsetenv("RUNPOOL_BROKERS");
    expect_error(a1, ARGC(a1), "weird");
    expect_error(a2, ARGC(a2), "yaml");
    expect_error(a3, ARGC(a3), "yesterday");
    expect_error(a4, ARGC(a4), "--stats");
    expect_error(a5, ARGC(a5), "--bogus");
    expect_error(a6, ARGC(a6), "key=value");
    expect_error(a7, ARGC(a7), "--both");
    expect_error(a8, ARGC(a8), "stray");
    expect_error(a9, ARGC(a9), "needs a value");
    expect_error(a10, ARGC(a10), "--brokers");
    assert_int_equal(parse(&c, ARGC(help), help, err), RP_TAIL_PARSE_HELP);
    rp_tail_conf_free(&c);
    assert_int_equal(parse(&c, ARGC(ver), ver, err), RP_TAIL_PARSE_VERSION);
    rp_tail_conf_free(&c);
}

static void test_from(void **state)
{
    rp_tail_from_t f;
    char err[256];

    (void)state;
    assert_int_equal(rp_tail_parse_from("beginning", &f, err, sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_BEGINNING);
    assert_int_equal(rp_tail_parse_from("end", &f, err, sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_END);
    assert_int_equal(rp_tail_parse_from("42", &f, err, sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_OFFSET);
    assert_int_equal(f.value, 42);
    assert_int_equal(rp_tail_parse_from("0", &f, err, sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_OFFSET);
    assert_int_equal(f.value, 0);
    assert_int_equal(rp_tail_parse_from("-10", &f, err, sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_LAST);
    assert_int_equal(f.value, 10);
    assert_int_equal(rp_tail_parse_from("@1764756000", &f, err, sizeof(err)),
                     0);
    assert_int_equal(f.kind, RP_TAIL_FROM_TIME);
    assert_int_equal(f.value, 1764756000000LL);
    assert_int_equal(rp_tail_parse_from("2025-12-03T10:00:00Z", &f, err,
                                        sizeof(err)), 0);
    assert_int_equal(f.kind, RP_TAIL_FROM_TIME);
    assert_int_equal(f.value, 1764756000000LL);
    assert_int_equal(rp_tail_parse_from("2025-12-03T11:00:00.5+01:00", &f,
                                        err, sizeof(err)), 0);
    assert_int_equal(f.value, 1764756000500LL);
    /* Refused: "last 0", signs, garbage, trailing junk, empty. */
    assert_int_equal(rp_tail_parse_from("-0", &f, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_tail_parse_from("-100001", &f, err, sizeof(err)),
                     RP_ERR_INVALID); /* over RP_TAIL_LAST_MAX */
    assert_int_equal(rp_tail_parse_from("+5", &f, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_tail_parse_from("12abc", &f, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_tail_parse_from("@", &f, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_tail_parse_from("", &f, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_tail_parse_from("2025-13-03T10:00:00Z", &f, err,
                                        sizeof(err)), RP_ERR_INVALID);
    assert_non_null(strstr(err, "RFC 3339"));
}

static void rec_result(rp_tail_rec_t *r, const char *json, int64_t off)
{
    assert_int_equal(rp_tail_rec_init(r, RP_TAIL_SRC_RESULTS, 2, off,
                                      1764756000123LL, "s-key", 5, json,
                                      strlen(json), NULL), RP_OK);
}

static void test_filters(void **state)
{
    char *argv[] = {"t", "--brokers", "b", "--status", "failed,dlq",
                    "--worker", "host:2,host:9", NULL};
    char *none[] = {"t", "--brokers", "b", NULL};
    char *sess[] = {"t", "--brokers", "b", "--session", "s1",
                    "--execution", "e-1", NULL};
    rp_tail_dlq_hdrs_t hd = {"invalid_request", "not JSON", "host:9"};
    rp_tail_conf_t c, all, s1;
    rp_tail_rec_t ok, fail, dlq;
    char err[256];

    (void)state;
    assert_int_equal(parse(&c, ARGC(argv), argv, err), RP_TAIL_PARSE_OK);
    assert_int_equal(parse(&all, ARGC(none), none, err), RP_TAIL_PARSE_OK);
    assert_int_equal(parse(&s1, ARGC(sess), sess, err), RP_TAIL_PARSE_OK);
    rec_result(&ok, RESULT_OK, 7);
    rec_result(&fail, RESULT_FAIL, 8);
    assert_int_equal(rp_tail_rec_init(&dlq, RP_TAIL_SRC_DLQ, 0, 3, -1, "s9",
                                      2, "not {json", 9, &hd), RP_OK);
    assert_string_equal(ok.status, "succeeded");
    assert_string_equal(ok.session, "s1");
    assert_int_equal(ok.duration_ms, 14);
    assert_string_equal(dlq.status, "dlq");
    assert_string_equal(dlq.session, "s9"); /* from the key */
    assert_string_equal(dlq.code, "invalid_request");
    assert_null(dlq.doc);

    assert_false(rp_tail_match(&c, &ok));
    assert_true(rp_tail_match(&c, &fail));
    assert_true(rp_tail_match(&c, &dlq));
    assert_true(rp_tail_match(&all, &ok));
    assert_true(rp_tail_match(&all, &dlq));
    assert_true(rp_tail_match(&s1, &ok));
    assert_false(rp_tail_match(&s1, &fail));
    assert_false(rp_tail_match(&s1, &dlq));

    rp_tail_rec_clear(&ok);
    rp_tail_rec_clear(&fail);
    rp_tail_rec_clear(&dlq);
    rp_tail_conf_free(&c);
    rp_tail_conf_free(&all);
    rp_tail_conf_free(&s1);
}

static void test_json_format(void **state)
{
    rp_tail_rec_t r, d;
    rp_tail_dlq_hdrs_t hd = {"invalid_request", "bad", "w"};
    cJSON *req = cJSON_Parse("{\"v\":1,\"execution_id\":\"e-1\","
                             "\"command\":\"echo hi\"}");
    cJSON *o;
    char *line;

    (void)state;
    rec_result(&r, RESULT_OK, 7);
    line = rp_tail_format_json(&r, true, req);
    assert_non_null(line);
    assert_null(strchr(line, '\n')); /* one line */
    o = cJSON_Parse(line);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "topic")->valuestring,
                        "results");
    assert_int_equal(cJSON_GetObjectItem(o, "partition")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(o, "offset")->valueint, 7);
    assert_string_equal(cJSON_GetObjectItem(o, "timestamp")->valuestring,
                        "2025-12-03T10:00:00.123Z");
    assert_string_equal(cJSON_GetObjectItem(o, "key")->valuestring, "s-key");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "result"),
                                            "execution_id")->valuestring,
                        "e-1");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "request"),
                                            "command")->valuestring,
                        "echo hi");
    cJSON_Delete(o);
    free(line);

    line = rp_tail_format_json(&r, true, NULL); /* request unknown */
    o = cJSON_Parse(line);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "request")));
    cJSON_Delete(o);
    free(line);
    line = rp_tail_format_json(&r, false, NULL);
    o = cJSON_Parse(line);
    assert_null(cJSON_GetObjectItem(o, "request"));
    cJSON_Delete(o);
    free(line);

    assert_int_equal(rp_tail_rec_init(&d, RP_TAIL_SRC_DLQ, 1, 0, -1, NULL, 0,
                                      "raw\tbytes", 9, &hd), RP_OK);
    line = rp_tail_format_json(&d, false, NULL);
    o = cJSON_Parse(line);
    assert_string_equal(cJSON_GetObjectItem(o, "topic")->valuestring, "dlq");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "timestamp")));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "dlq"),
                                            "reason")->valuestring,
                        "invalid_request");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "dlq"),
                                            "payload")->valuestring,
                        "raw\tbytes");
    cJSON_Delete(o);
    free(line);
    rp_tail_rec_clear(&d);
    rp_tail_rec_clear(&r);
    cJSON_Delete(req);
}

static char *table_of(const char *json, bool color, bool with_req,
                      const cJSON *req)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rp_tail_rec_t r;

    assert_non_null(f);
    rec_result(&r, json, 8);
    rp_tail_table_header(f, with_req, color);
    rp_tail_format_table(f, &r, with_req, req, color);
    fclose(f);
    rp_tail_rec_clear(&r);
    return buf;
}

static void test_table_format(void **state)
{
    cJSON *req = cJSON_Parse("{\"execution_id\":\"e-2\","
                             "\"command\":\"exit 3\\nsecond line\"}");
    char *t;

    (void)state;
    t = table_of(RESULT_FAIL, false, true, req);
    assert_non_null(strstr(t, "EXECUTION"));
    assert_non_null(strstr(t, "COMMAND"));
    assert_non_null(strstr(t, "2:8"));
    assert_non_null(strstr(t, "e-2"));
    assert_non_null(strstr(t, "failed"));
    assert_non_null(strstr(t, "200ms"));
    assert_non_null(strstr(t, "exit 3.second line")); /* one line */
    assert_non_null(strstr(t, "stderr: boom."));
    assert_null(strchr(t, '\033')); /* no colours unless asked */
    free(t);
    t = table_of(RESULT_FAIL, true, false, NULL);
    assert_non_null(strstr(t, "\033[31mfailed"));
    assert_null(strstr(t, "COMMAND"));
    free(t);
    t = table_of(RESULT_OK, true, false, NULL);
    assert_non_null(strstr(t, "\033[32msucceeded"));
    assert_null(strstr(t, "stderr:"));
    free(t);
    cJSON_Delete(req);
}

static cJSON *req_doc(const char *eid, const char *cmd)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "execution_id", eid);
    cJSON_AddStringToObject(o, "command", cmd);
    return o;
}

static void test_metric_labels(void **state)
{
    char *argv[] = {"t", "--brokers", "b", "--metrics-listen", ":0", NULL};
    char *bad[] = {"t", "--brokers", "b", "--metrics-listen", ":0",
                   "--stats", NULL};
    rp_tail_dlq_hdrs_t hd = {"invalid_request", "x", "w"};
    rp_tail_dlq_hdrs_t odd = {"made up reason", "x", "w"};
    const char *status, *code;
    rp_tail_conf_t c;
    rp_tail_rec_t r;
    char err[256];

    (void)state;
    assert_int_equal(parse(&c, ARGC(argv), argv, err), RP_TAIL_PARSE_OK);
    assert_true(c.read_results && c.read_dlq); /* both feed the metrics */
    rp_tail_conf_free(&c);
    expect_error(bad, ARGC(bad), "--metrics-listen");

    rec_result(&r, RESULT_FAIL, 1);
    rp_tail_metric_labels(&r, &status, &code);
    assert_string_equal(status, "failed");
    assert_string_equal(code, "none");
    rp_tail_rec_clear(&r);
    rec_result(&r, "{\"status\":\"error\",\"error\":{\"code\":"
                   "\"state_load_failed\",\"message\":\"m\"}}", 1);
    rp_tail_metric_labels(&r, &status, &code);
    assert_string_equal(status, "error");
    assert_string_equal(code, "state_load_failed");
    rp_tail_rec_clear(&r);
    /* Unknown text never becomes a label value. */
    rec_result(&r, "{\"status\":\"weird\",\"error\":{\"code\":"
                   "\"session-123\",\"message\":\"m\"}}", 1);
    rp_tail_metric_labels(&r, &status, &code);
    assert_string_equal(status, "other");
    assert_string_equal(code, "other");
    rp_tail_rec_clear(&r);
    assert_int_equal(rp_tail_rec_init(&r, RP_TAIL_SRC_DLQ, 0, 0, -1, "k", 1,
                                      "x", 1, &hd), RP_OK);
    rp_tail_metric_labels(&r, &status, &code);
    assert_string_equal(status, "dlq");
    assert_string_equal(code, "invalid_request");
    rp_tail_rec_clear(&r);
    assert_int_equal(rp_tail_rec_init(&r, RP_TAIL_SRC_DLQ, 0, 0, -1, "k", 1,
                                      "x", 1, &odd), RP_OK);
    rp_tail_metric_labels(&r, &status, &code);
    assert_string_equal(code, "other");
    rp_tail_rec_clear(&r);
}

static void test_reqs(void **state)
{
    rp_tail_reqs_t *q = rp_tail_reqs_new(3);
    char eid[16];

    (void)state;
    assert_null(rp_tail_reqs_new(0));
    assert_null(rp_tail_reqs_new(RP_TAIL_REQUESTS_MAX + 1));
    assert_non_null(q);
    assert_int_equal(rp_tail_reqs_add(q, cJSON_Parse("{\"x\":1}")),
                     RP_ERR_INVALID);
    for (int i = 0; i < 3; i++) {
        snprintf(eid, sizeof(eid), "e-%d", i);
        assert_int_equal(rp_tail_reqs_add(q, req_doc(eid, "c")), RP_OK);
    }
    assert_int_equal(rp_tail_reqs_count(q), 3);
    /* Same id again replaces, does not grow. */
    assert_int_equal(rp_tail_reqs_add(q, req_doc("e-1", "newer")), RP_OK);
    assert_int_equal(rp_tail_reqs_count(q), 3);
    assert_string_equal(
        cJSON_GetObjectItem(rp_tail_reqs_get(q, "e-1"), "command")->valuestring,
        "newer");
    /* A fourth forgets the oldest (e-0) only. */
    assert_int_equal(rp_tail_reqs_add(q, req_doc("e-3", "c3")), RP_OK);
    assert_int_equal(rp_tail_reqs_count(q), 3);
    assert_null(rp_tail_reqs_get(q, "e-0"));
    assert_non_null(rp_tail_reqs_get(q, "e-1"));
    assert_non_null(rp_tail_reqs_get(q, "e-2"));
    assert_non_null(rp_tail_reqs_get(q, "e-3"));
    assert_null(rp_tail_reqs_get(q, "nope"));
    /* Many more: stays bounded, keeps the newest three. */
    for (int i = 10; i < 1000; i++) {
        snprintf(eid, sizeof(eid), "e-%d", i);
        assert_int_equal(rp_tail_reqs_add(q, req_doc(eid, "c")), RP_OK);
    }
    assert_int_equal(rp_tail_reqs_count(q), 3);
    assert_non_null(rp_tail_reqs_get(q, "e-999"));
    assert_non_null(rp_tail_reqs_get(q, "e-997"));
    assert_null(rp_tail_reqs_get(q, "e-996"));
    rp_tail_reqs_destroy(q);
    rp_tail_reqs_destroy(NULL);
}

static void test_stats(void **state)
{
    rp_tail_stats_t s;
    rp_tail_rec_t r;
    char json[512], *buf = NULL;
    size_t len = 0;
    FILE *f;
    cJSON *o;

    (void)state;
    assert_int_equal(rp_tail_stats_init(&s, 1000), RP_OK);
    assert_int_equal(rp_tail_stats_percentile(&s, 50), -1);
    /* durations 1..100 ms: 90 succeeded, 10 failed */
    for (int i = 1; i <= 100; i++) {
        snprintf(json, sizeof(json),
                 "{\"execution_id\":\"e\",\"status\":\"%s\","
                 "\"duration_ms\":%d}", i > 90 ? "failed" : "succeeded",
                 101 - i);
        rec_result(&r, json, i);
        rp_tail_stats_add(&s, &r);
        rp_tail_rec_clear(&r);
    }
    assert_int_equal(rp_tail_stats_percentile(&s, 50), 50);
    assert_int_equal(rp_tail_stats_percentile(&s, 99), 99);
    assert_int_equal(rp_tail_stats_percentile(&s, 100), 100);
    f = open_memstream(&buf, &len);
    rp_tail_stats_print(&s, f, true, 3000); /* a 2 s interval */
    fclose(f);
    o = cJSON_Parse(buf);
    assert_non_null(o);
    assert_int_equal(cJSON_GetObjectItem(o, "count")->valueint, 100);
    assert_true(cJSON_GetObjectItem(o, "rate_per_s")->valuedouble == 50.0);
    assert_int_equal(cJSON_GetObjectItem(o, "p50_ms")->valueint, 50);
    assert_int_equal(cJSON_GetObjectItem(o, "p99_ms")->valueint, 99);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"),
                                         "succeeded")->valueint, 90);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "status"),
                                         "failed")->valueint, 10);
    cJSON_Delete(o);
    free(buf);
    /* The next interval starts empty; totals carry on. */
    assert_int_equal(s.n, 0);
    rec_result(&r, RESULT_FAIL, 1);
    rp_tail_stats_add(&s, &r);
    rp_tail_rec_clear(&r);
    buf = NULL;
    f = open_memstream(&buf, &len);
    rp_tail_stats_print(&s, f, false, 4000);
    fclose(f);
    assert_non_null(strstr(buf, "1 in 1.0s"));
    assert_non_null(strstr(buf, "failed=1"));
    assert_null(strstr(buf, "succeeded="));
    assert_non_null(strstr(buf, "p50=200ms p99=200ms"));
    assert_non_null(strstr(buf, "total 101"));
    free(buf);
    rp_tail_stats_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_json_format),
        cmocka_unit_test(test_table_format),
        cmocka_unit_test(test_metric_labels),
        cmocka_unit_test(test_reqs),
        cmocka_unit_test(test_stats),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
