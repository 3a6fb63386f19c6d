/* Unit tests for the contract (contract/rp_*.c): codecs, validation rules and the test
 * vectors shared with the JSON Schemas (schemas/examples/). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_buf.h"
#include "rp_msg.h"

/* Largest test vector file we read. */
#define TEST_VECTOR_MAX (8 * 1024 * 1024)
#define IDS "\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\""

static char errstr[512];

static rp_err_t parse_req(const char *json, rp_request_t *r)
{
    errstr[0] = '\0';
    return rp_request_parse(json, strlen(json), r, errstr, sizeof(errstr));
}

/* errstr must start with prefix (messages name the field first). */
static void assert_errstr_starts(const char *prefix)
{
    if (strncmp(errstr, prefix, strlen(prefix)) != 0)
        fail_msg("errstr \"%s\" does not start with \"%s\"", errstr, prefix);
}

/* A string of n copies of s, built in an rp_buf; caller frees. */
static char *repeat(const char *s, size_t n)
{
    rp_buf_t b;

    rp_buf_init(&b, (size_t)64 * 1024 * 1024);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rp_buf_append_str(&b, s), RP_OK);
    return rp_buf_steal(&b, NULL);
}

/* ---------------------------------------------------------------- */
/* request                                                           */
/* ---------------------------------------------------------------- */

static void test_request_defaults(void **state)
{
    rp_request_t r;

    (void)state;
    assert_int_equal(parse_req("{" IDS ",\"command\":\"echo hi\"}", &r), RP_OK);
    assert_string_equal(r.execution_id, "e1");
    assert_string_equal(r.session_id, "s1");
    assert_int_equal(r.op, RP_OP_EXEC);
    assert_string_equal(r.command, "echo hi");
    assert_int_equal(r.timeout_s, RP_TIMEOUT_DEFAULT_S);
    assert_int_equal(r.env.n, 0);
    assert_false(r.has_submitted_at);
    assert_int_equal(r.retry, RP_RETRY_NEVER);
    rp_request_clear(&r);
    rp_request_clear(&r); /* clearing twice is harmless */
    rp_request_clear(NULL);
}

static void test_request_roundtrip(void **state)
{
    rp_request_t in = {0}, out;
    char *json;

    (void)state;
    snprintf(in.execution_id, sizeof(in.execution_id), "%s", "exec-1:a.b_c");
    snprintf(in.session_id, sizeof(in.session_id), "%s", "sess-9");
    in.command = "printf '%s\\n' \"h\xc3\xa9llo\" | tr a-z A-Z\n\t\"quoted\"";
    in.timeout_s = 30;
    assert_int_equal(rp_env_set(&in.env, "NAME", "w\"orld\\"), RP_OK);
    assert_int_equal(rp_env_set(&in.env, "EMPTY", ""), RP_OK);
    in.has_submitted_at = true;
    in.submitted_at_ms = 1795460708123;
    in.retry = RP_RETRY_IF_INTERRUPTED;

    json = rp_request_to_json(&in);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"retry\":\"if-interrupted\""));
    assert_non_null(strstr(json, "\"submitted_at\":\"2026-11-23T19:05:08.123Z\""));
    assert_null(strstr(json, "\"op\"")); /* the default is left out */
    assert_int_equal(parse_req(json, &out), RP_OK);
    assert_string_equal(out.execution_id, in.execution_id);
    assert_string_equal(out.session_id, in.session_id);
    assert_int_equal(out.op, RP_OP_EXEC);
    assert_string_equal(out.command, in.command);
    assert_int_equal(out.timeout_s, 30);
    assert_int_equal(out.env.n, 2);
    assert_string_equal(out.env.vars[0].name, "NAME");
    assert_string_equal(rp_env_get(&out.env, "NAME"), "w\"orld\\");
    assert_string_equal(rp_env_get(&out.env, "EMPTY"), "");
    assert_true(out.has_submitted_at);
    assert_int_equal(out.submitted_at_ms, in.submitted_at_ms);
    assert_int_equal(out.retry, RP_RETRY_IF_INTERRUPTED);
    free(json);
    rp_request_clear(&out);
    in.retry = RP_RETRY_NEVER;

    /* close_session carries no command; a zero timeout means "default". */
    in.op = RP_OP_CLOSE_SESSION;
    in.timeout_s = 0;
    in.has_submitted_at = false;
    json = rp_request_to_json(&in);
    assert_non_null(json);
    assert_null(strstr(json, "\"command\""));
    assert_null(strstr(json, "\"timeout_s\""));
    assert_int_equal(parse_req(json, &out), RP_OK);
    assert_int_equal(out.op, RP_OP_CLOSE_SESSION);
    assert_null(out.command);
    assert_int_equal(out.timeout_s, RP_TIMEOUT_DEFAULT_S);
    free(json);
    rp_request_clear(&out);
    rp_env_clear(&in.env);
}

struct rule_case {
    const char *json;
    rp_err_t err;
    const char *prefix;
};

static void test_request_rules(void **state)
{
    static const struct rule_case cases[] = {
        {"{" IDS ",\"command\":\"x\",\"retry\":\"always\"}", RP_ERR_INVALID,
         "retry: must be \"never\" or \"if-interrupted\""},
        {"{" IDS ",\"command\":\"x\",\"retry\":1}", RP_ERR_INVALID,
         "retry: must be"},
        {"{" IDS ",\"op\":\"close_session\",\"retry\":\"never\"}",
         RP_ERR_INVALID, "retry: must be absent"},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":0}", RP_ERR_INVALID,
         "timeout_s: must be an integer from 1 to 86400"},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":1.5}", RP_ERR_INVALID,
         "timeout_s: must be an integer from 1 to 86400"},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":\"10\"}", RP_ERR_INVALID,
         "timeout_s: must be an integer"},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":86401}", RP_ERR_INVALID,
         "timeout_s: "},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":null}", RP_ERR_INVALID,
         "timeout_s: "},
        {"{" IDS ",\"command\":\"x\",\"timeout_s\":1e999}", RP_ERR_INVALID,
         "timeout_s: "},
        {"{\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "v: required"},
        {"{\"v\":2,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "v: must be 1"},
        {"{\"v\":\"1\",\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "v: must be 1"},
        {"{\"v\":1,\"session_id\":\"s1\",\"command\":\"x\"}", RP_ERR_INVALID,
         "execution_id: required"},
        {"{\"v\":1,\"execution_id\":\"e 1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "execution_id: must be 1 to 128 characters"},
        {"{\"v\":1,\"execution_id\":\"\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "execution_id: "},
        {"{\"v\":1,\"execution_id\":\"e1\",\"command\":\"x\"}", RP_ERR_INVALID,
         "session_id: required"},
        {"{\"v\":1,\"execution_id\":\"e1\",\"session_id\":5,\"command\":\"x\"}",
         RP_ERR_INVALID, "session_id: must be"},
        {"{\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s/1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "session_id: must be"},
        {"{" IDS ",\"command\":\"x\",\"op\":\"restart\"}", RP_ERR_INVALID,
         "op: must be \"exec\", \"close_session\" or a file op"},
        {"{" IDS ",\"command\":\"x\",\"op\":1}", RP_ERR_INVALID, "op: "},
        {"{" IDS ",\"command\":\"x\",\"op\":\"close_session\"}", RP_ERR_INVALID,
         "command: must be absent"},
        {"{" IDS "}", RP_ERR_INVALID, "command: required"},
        {"{" IDS ",\"op\":\"exec\"}", RP_ERR_INVALID, "command: required"},
        {"{" IDS ",\"command\":\"\"}", RP_ERR_INVALID, "command: must not be empty"},
        {"{" IDS ",\"command\":[\"ls\"]}", RP_ERR_INVALID,
         "command: must be a string"},
        {"{" IDS ",\"command\":\"a\\u0000b\"}", RP_ERR_INVALID,
         "command: must not contain NUL"},
        {"{" IDS ",\"command\":\"x\",\"env\":[]}", RP_ERR_INVALID,
         "env: must be an object"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"1A\":\"x\"}}", RP_ERR_INVALID,
         "env: invalid variable name \"1A\""},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"A-B\":\"x\"}}", RP_ERR_INVALID,
         "env: invalid variable name"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"\":\"x\"}}", RP_ERR_INVALID,
         "env: invalid variable name"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"A\\u0000B\":\"x\"}}",
         RP_ERR_INVALID, "env: invalid variable name"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"A\":1}}", RP_ERR_INVALID,
         "env.A: must be a string"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"A\":\"x\\u0000\"}}",
         RP_ERR_INVALID, "env.A: must not contain NUL"},
        {"{" IDS ",\"command\":\"x\",\"env\":{\"A\":\"1\",\"A\":\"2\"}}",
         RP_ERR_INVALID, "env: duplicate variable A"},
        {"{" IDS ",\"command\":\"x\",\"submitted_at\":\"2025-02-29T00:00:00Z\"}",
         RP_ERR_INVALID, "submitted_at: must be an RFC 3339 date-time"},
        {"{" IDS ",\"command\":\"x\",\"submitted_at\":\"2026-01-01t00:00:00z\"}",
         RP_ERR_INVALID, "submitted_at: "},
        {"{" IDS ",\"command\":\"x\",\"submitted_at\":\"2026-01-01T00:00:00\"}",
         RP_ERR_INVALID, "submitted_at: "},
        {"{" IDS ",\"command\":\"x\",\"submitted_at\":\"2016-12-31T12:59:60Z\"}",
         RP_ERR_INVALID, "submitted_at: "},
        {"{" IDS ",\"command\":\"x\",\"submitted_at\":1700000000}",
         RP_ERR_INVALID, "submitted_at: "},
        {"{" IDS ",\"command\":\"x\",\"priority\":5}", RP_ERR_INVALID,
         "priority: unknown field"},
        /* Member names are case-sensitive (cJSON's default lookup is not). */
        {"{\"V\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "V: unknown field"},
        {"{" IDS ",\"command\":\"x\",\"command\":\"rm -rf /\"}", RP_ERR_INVALID,
         "command: duplicate field"},
        {"[1]", RP_ERR_INVALID, "not a JSON object"},
        {"\"str\"", RP_ERR_INVALID, "not a JSON object"},
        {"null", RP_ERR_INVALID, "not a JSON object"},
        {"", RP_ERR_INVALID, "not a JSON object"},
        {"{" IDS ",\"command\":\"x\"} x", RP_ERR_INVALID, "not a JSON object"},
        {"{" IDS ",\"command\":\"x\",}", RP_ERR_INVALID, "not a JSON object"},
        {"{\"v\":01,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "not a JSON object"},
        {"{\"v\":+1,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "not a JSON object"},
        {"{\"v\":1.,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"command\":\"x\"}",
         RP_ERR_INVALID, "not a JSON object"},
        {"{" IDS ",\"command\":\"a\tb\"}", RP_ERR_INVALID, "not a JSON object"},
        {"{" IDS ",\"command\":\"x\"}\x01", RP_ERR_INVALID, "not a JSON object"},
        {"{" IDS ",\"command\":\"\xc3\x28\"}", RP_ERR_INVALID,
         "not a JSON object"},
        {"{" IDS ",\"command\":\"\\ud800\"}", RP_ERR_INVALID,
         "not a JSON object"},
    };
    rp_request_t r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_err_t err = parse_req(cases[i].json, &r);

        if (err != cases[i].err)
            fail_msg("case %zu (%s): got %s (%s), want %s", i, cases[i].json,
                     rp_err_code(err), errstr, rp_err_code(cases[i].err));
        assert_errstr_starts(cases[i].prefix);
        rp_request_clear(&r);
    }
}

static void test_request_accepts_edge_values(void **state)
{
    rp_request_t r;

    (void)state;
    /* 2.0 is an integer to JSON Schema too; so are the bounds. */
    assert_int_equal(parse_req("{\"v\":1.0,\"execution_id\":\"e1\",\"session_id\":"
                               "\"s1\",\"command\":\"x\",\"timeout_s\":2.0}",
                               &r),
                     RP_OK);
    assert_int_equal(r.timeout_s, 2);
    rp_request_clear(&r);
    assert_int_equal(parse_req("{" IDS ",\"command\":\"x\",\"timeout_s\":86400}", &r),
                     RP_OK);
    assert_int_equal(r.timeout_s, 86400);
    rp_request_clear(&r);
    assert_int_equal(parse_req("{" IDS ",\"command\":\"x\",\"timeout_s\":1e0}", &r),
                     RP_OK);
    assert_int_equal(r.timeout_s, 1);
    rp_request_clear(&r);
    /* An escaped backslash before "u0000" is text, not a NUL. */
    assert_int_equal(parse_req("{" IDS ",\"command\":\"a\\\\u0000\"}", &r), RP_OK);
    assert_string_equal(r.command, "a\\u0000");
    rp_request_clear(&r);
    /* Escapes decode to UTF-8, surrogate pairs included. */
    assert_int_equal(parse_req("{" IDS ",\"command\":\"\\u00e9\\ud83d\\ude00\"}", &r),
                     RP_OK);
    assert_string_equal(r.command, "\xc3\xa9\xf0\x9f\x98\x80");
    rp_request_clear(&r);
    /* Offsets, fractions, leap days and the one legal leap second. */
    assert_int_equal(parse_req("{" IDS ",\"command\":\"x\",\"submitted_at\":"
                               "\"2024-02-29T12:00:00.5+02:00\"}",
                               &r),
                     RP_OK);
    assert_int_equal(r.submitted_at_ms, 1709200800500);
    rp_request_clear(&r);
    assert_int_equal(parse_req("{" IDS ",\"command\":\"x\",\"submitted_at\":"
                               "\"2016-12-31T23:59:60Z\"}",
                               &r),
                     RP_OK);
    assert_int_equal(r.submitted_at_ms, 1483228800000);
    rp_request_clear(&r);
    /* Whitespace JSON allows. */
    assert_int_equal(parse_req(" \t\r\n{ " IDS " ,\n\"command\" : \"x\" }\n", &r),
                     RP_OK);
    rp_request_clear(&r);
}

static void test_request_ids_filled_on_failure(void **state)
{
    rp_request_t r;

    (void)state;
    assert_int_equal(parse_req("{" IDS ",\"command\":\"x\",\"timeout_s\":0}", &r),
                     RP_ERR_INVALID);
    assert_string_equal(r.execution_id, "e1");
    assert_string_equal(r.session_id, "s1");
    rp_request_clear(&r);

    /* Unknown fields and a missing v do not hide the ids either. */
    assert_int_equal(parse_req("{\"execution_id\":\"e2\",\"session_id\":\"s2\","
                               "\"bogus\":true}",
                               &r),
                     RP_ERR_INVALID);
    assert_errstr_starts("bogus: unknown field");
    assert_string_equal(r.execution_id, "e2");
    assert_string_equal(r.session_id, "s2");
    rp_request_clear(&r);

    /* Only the valid one is filled. */
    assert_int_equal(parse_req("{\"v\":1,\"execution_id\":\"bad id\","
                               "\"session_id\":\"s3\",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_string_equal(r.execution_id, "");
    assert_string_equal(r.session_id, "s3");
    rp_request_clear(&r);

    /* A repeated id is not trusted: which one did the sender mean? */
    assert_int_equal(parse_req("{\"v\":1,\"execution_id\":\"a\",\"execution_id\":"
                               "\"b\",\"session_id\":\"s4\",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_string_equal(r.execution_id, "");
    assert_string_equal(r.session_id, "s4");
    rp_request_clear(&r);

    /* An id holding a NUL must not be read as its prefix. */
    assert_int_equal(parse_req("{\"v\":1,\"execution_id\":\"e5\\u0000x\","
                               "\"session_id\":\"s5\",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_errstr_starts("execution_id: ");
    assert_string_equal(r.execution_id, "");
    rp_request_clear(&r);

    assert_int_equal(parse_req("not json", &r), RP_ERR_INVALID);
    assert_string_equal(r.execution_id, "");
    assert_string_equal(r.session_id, "");
    rp_request_clear(&r);
}

/* A UTF-8 byte-order mark before the JSON is refused by name (RFC 8259
 * §8.1), the ids behind it still read; one anywhere else is just not
 * JSON. */
static void test_request_bom(void **state)
{
    rp_request_t r;

    (void)state;
    assert_int_equal(parse_req("\xEF\xBB\xBF{" IDS
                               ",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_errstr_starts("the request starts with a UTF-8 byte-order mark");
    assert_string_equal(r.execution_id, "e1");
    assert_string_equal(r.session_id, "s1");
    rp_request_clear(&r);

    /* BOM + not JSON: the BOM is still the first thing named. */
    assert_int_equal(parse_req("\xEF\xBB\xBFnot json", &r), RP_ERR_INVALID);
    assert_errstr_starts("the request starts with a UTF-8 byte-order mark");
    assert_string_equal(r.execution_id, "");
    rp_request_clear(&r);
    assert_int_equal(parse_req("\xEF\xBB\xBF", &r), RP_ERR_INVALID);
    assert_errstr_starts("the request starts with a UTF-8 byte-order mark");
    rp_request_clear(&r);

    /* Not at the very start: not a JSON object, as any stray byte. */
    assert_int_equal(parse_req(" \xEF\xBB\xBF{" IDS
                               ",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_errstr_starts("not a JSON object");
    rp_request_clear(&r);
    /* Two bytes of one are not one. */
    assert_int_equal(parse_req("\xEF\xBB{" IDS ",\"command\":\"x\"}",
                               &r),
                     RP_ERR_INVALID);
    assert_errstr_starts("not a JSON object");
    rp_request_clear(&r);
}

static void test_request_size_limits(void **state)
{
    rp_request_t r;
    rp_buf_t b;
    char *big, *json;
    size_t len;

    (void)state;
    /* command: exactly the limit is fine, one byte more is too large. */
    big = repeat("x", RP_COMMAND_MAX);
    rp_buf_init(&b, RP_REQUEST_MAX * 8);
    assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\""), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, big), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, "\"}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_OK);
    assert_int_equal(strlen(r.command), RP_COMMAND_MAX);
    rp_request_clear(&r);
    b.len -= 2;
    assert_int_equal(rp_buf_append_str(&b, "y\"}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
    assert_errstr_starts("command: longer than 262144 bytes");
    assert_string_equal(r.execution_id, "e1");
    rp_request_clear(&r);
    free(big);

    /* Bytes, not characters: 131073 two-byte characters are too many
     * (the schema, counting characters, would allow them). */
    big = repeat("\xc3\xa9", RP_COMMAND_MAX / 2 + 1);
    rp_buf_reset(&b);
    assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\""), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, big), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, "\"}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
    assert_errstr_starts("command: ");
    rp_request_clear(&r);
    free(big);

    /* env limits. */
    big = repeat("v", RP_ENV_VALUE_MAX + 1);
    rp_buf_reset(&b);
    assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\"x\",\"env\":"
                                           "{\"BIG\":\""),
                     RP_OK);
    assert_int_equal(rp_buf_append_str(&b, big), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, "\"}}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
    assert_errstr_starts("env.BIG: longer than 32768 bytes");
    rp_request_clear(&r);
    free(big);

    big = repeat("N", RP_ENV_NAME_MAX + 1);
    rp_buf_reset(&b);
    assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\"x\",\"env\":{\""),
                     RP_OK);
    assert_int_equal(rp_buf_append_str(&b, big), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, "\":\"v\"}}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
    assert_errstr_starts("env: variable name longer than 1024 bytes");
    rp_request_clear(&r);
    free(big);

    for (int n = RP_ENV_MAX_VARS; n <= RP_ENV_MAX_VARS + 1; n++) {
        char var[32];

        rp_buf_reset(&b);
        assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\"x\",\"env\":{"),
                         RP_OK);
        for (int i = 0; i < n; i++) {
            snprintf(var, sizeof(var), "%s\"V%d\":\"%d\"", i ? "," : "", i, i);
            assert_int_equal(rp_buf_append_str(&b, var), RP_OK);
        }
        assert_int_equal(rp_buf_append_str(&b, "}}"), RP_OK);
        if (n == RP_ENV_MAX_VARS) {
            assert_int_equal(parse_req(b.data, &r), RP_OK);
            assert_int_equal(r.env.n, RP_ENV_MAX_VARS);
            assert_string_equal(rp_env_get(&r.env, "V999"), "999");
        } else {
            assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
            assert_errstr_starts("env: more than 1000 variables");
        }
        rp_request_clear(&r);
    }

    /* The whole message: over RP_REQUEST_MAX is too large, but the ids are
     * still found; far beyond it they are not even looked for. */
    big = repeat(" ", RP_REQUEST_MAX);
    rp_buf_reset(&b);
    assert_int_equal(rp_buf_append_str(&b, "{" IDS ",\"command\":\"x\""), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, big), RP_OK);
    assert_int_equal(rp_buf_append_str(&b, "}"), RP_OK);
    assert_int_equal(parse_req(b.data, &r), RP_ERR_TOO_LARGE);
    assert_errstr_starts("request of ");
    assert_string_equal(r.execution_id, "e1");
    assert_string_equal(r.session_id, "s1");
    rp_request_clear(&r);
    free(big);

    json = b.data;
    len = 5 * (size_t)RP_REQUEST_MAX;
    big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, json, strlen(json) - 1);
    big[len - 1] = '}';
    assert_int_equal(rp_request_parse(big, len, &r, errstr, sizeof(errstr)),
                     RP_ERR_TOO_LARGE);
    assert_string_equal(r.execution_id, "");
    rp_request_clear(&r);
    free(big);
    rp_buf_free(&b);

    /* len, not the NUL, bounds the input. */
    assert_int_equal(rp_request_parse("{" IDS ",\"command\":\"x\"}garbage",
                                      strlen("{" IDS ",\"command\":\"x\"}"), &r,
                                      errstr, sizeof(errstr)),
                     RP_OK);
    rp_request_clear(&r);
}

/* ---------------------------------------------------------------- */
/* result                                                            */
/* ---------------------------------------------------------------- */

static void fill_ids(rp_result_t *r, const char *eid, const char *sid)
{
    snprintf(r->execution_id, sizeof(r->execution_id), "%s", eid);
    snprintf(r->session_id, sizeof(r->session_id), "%s", sid);
}

/* The workspace report: the record keeps the whole object, a published
 * result only workspace_saved (+ workspace_error); both parse back. */
static void test_result_workspace(void **state)
{
    rp_result_t r, back;
    char es[256], *j;

    (void)state;
    memset(&r, 0, sizeof(r));
    strcpy(r.execution_id, "e-1");
    strcpy(r.session_id, "s1");
    r.has_exit_code = true;
    r.ws.present = r.ws.saved = true;
    r.ws.manifest = strdup("workspaces/s1/snapshots/e-1.json.zst");
    r.ws.root = strdup("/workspace");
    r.ws.bytes = 5000000000ULL;
    r.ws.files = 7;
    r.ws.bytes_uploaded = 1234;
    r.ws.skipped = 1;
    r.ws.skipped_paths[0] = strdup("a.sock");
    r.ws.nskipped_paths = 1;
    j = rp_result_to_json(&r, true);
    assert_non_null(j);
    assert_int_equal(rp_result_parse(j, strlen(j), &back, es, sizeof(es)), RP_OK);
    assert_true(back.ws.present && back.ws.full && back.ws.saved);
    assert_string_equal(back.ws.manifest, r.ws.manifest);
    assert_string_equal(back.ws.root, "/workspace");
    assert_true(back.ws.bytes == 5000000000ULL);
    assert_int_equal(back.ws.bytes_uploaded, 1234);
    assert_int_equal(back.ws.nskipped_paths, 1);
    assert_string_equal(back.ws.skipped_paths[0], "a.sock");
    assert_null(strstr(j, "workspace_saved"));
    free(j);
    rp_result_clear(&back);
    j = rp_result_to_json(&r, false);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"workspace_saved\":true"));
    assert_null(strstr(j, "manifest"));
    assert_int_equal(rp_result_parse(j, strlen(j), &back, es, sizeof(es)), RP_OK);
    assert_true(back.ws.present && !back.ws.full && back.ws.saved);
    free(j);
    rp_result_clear(&back);

    /* Not saved: the code and message travel both ways. */
    r.ws.saved = false;
    r.ws.code = strdup(RP_RESULT_WS_TOO_LARGE);
    r.ws.message = strdup("over the cap");
    j = rp_result_to_json(&r, true);
    assert_int_equal(rp_result_parse(j, strlen(j), &back, es, sizeof(es)), RP_OK);
    assert_false(back.ws.saved);
    assert_null(back.ws.manifest); /* a manifest is never written unsaved */
    assert_string_equal(back.ws.code, RP_RESULT_WS_TOO_LARGE);
    free(j);
    rp_result_clear(&back);
    j = rp_result_to_json(&r, false);
    assert_non_null(strstr(j, "\"workspace_saved\":false"));
    assert_int_equal(rp_result_parse(j, strlen(j), &back, es, sizeof(es)), RP_OK);
    assert_string_equal(back.ws.code, RP_RESULT_WS_TOO_LARGE);
    assert_string_equal(back.ws.message, "over the cap");
    free(j);
    rp_result_clear(&back);
    rp_result_clear(&r);
}

/* The session's workspace object round-trips; root alone is allowed. */
static void test_session_workspace(void **state)
{
    rp_session_t s, back;
    char es[256], *j;

    (void)state;
    memset(&s, 0, sizeof(s));
    strcpy(s.session_id, "s1");
    s.workspace.manifest = strdup("workspaces/s1/snapshots/e-2.json.zst");
    strcpy(s.workspace.execution_id, "e-2");
    s.workspace.bytes = 10;
    s.workspace.files = 2;
    s.workspace.saved_at_ms = 1764770000123;
    s.workspace.root = strdup("/tmp/x");
    j = rp_session_to_json(&s);
    assert_int_equal(rp_session_parse(j, strlen(j), &back, es, sizeof(es)), RP_OK);
    assert_string_equal(back.workspace.manifest, s.workspace.manifest);
    assert_string_equal(back.workspace.execution_id, "e-2");
    assert_int_equal(back.workspace.files, 2);
    assert_true(back.workspace.saved_at_ms == 1764770000123);
    assert_string_equal(back.workspace.root, "/tmp/x");
    free(j);
    rp_session_clear(&back);
    rp_session_ws_clear(&s.workspace);
    j = rp_session_to_json(&s);
    assert_null(strstr(j, "workspace")); /* absent = empty */
    free(j);
    rp_session_clear(&s);
}

static void test_result_roundtrip_utf8(void **state)
{
    static char out_text[] = "h\xc3\xa9llo \xe2\x98\x83\n\x1b[0m";
    static char err_text[] = "warn";
    rp_result_t in = {0}, out;
    char *json;

    (void)state;
    fill_ids(&in, "e-1", "s-1");
    in.status = RP_STATUS_SUCCEEDED;
    in.has_exit_code = true;
    in.exit_code = 0;
    in.stdout_data = out_text;
    in.stdout_len = strlen(out_text);
    in.stderr_data = err_text;
    in.stderr_len = strlen(err_text);
    in.stderr_truncated = true;
    in.cwd = "/home/u";
    in.started_at_ms = 1795460708123;
    in.finished_at_ms = 1795460708200;
    in.duration_ms = 77;
    in.has_timings = true;
    in.timings = (rp_timings_t){.queue_wait_ms = 5, .state_load_ms = 6,
                                .run_ms = 77, .state_save_ms = 8};
    in.worker = "worker-1";
    assert_int_equal(rp_env_set(&in.env, "PATH", "/bin"), RP_OK);

    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"encoding\":\"utf-8\""));
    assert_non_null(strstr(json, "\"stderr\":\"warn\""));
    assert_non_null(strstr(json, "\"signal\":null"));
    assert_non_null(strstr(json, "\"started_at\":\"2026-11-23T19:05:08.123Z\""));
    assert_null(strstr(json, "\"env\"")); /* published results never have it */
    assert_null(strstr(json, "\"error\""));
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_string_equal(out.execution_id, "e-1");
    assert_string_equal(out.session_id, "s-1");
    assert_int_equal(out.status, RP_STATUS_SUCCEEDED);
    assert_true(out.has_exit_code);
    assert_int_equal(out.exit_code, 0);
    assert_false(out.has_signal);
    assert_int_equal(out.stdout_len, in.stdout_len);
    assert_memory_equal(out.stdout_data, out_text, in.stdout_len);
    assert_string_equal(out.stderr_data, "warn");
    assert_false(out.stdout_truncated);
    assert_true(out.stderr_truncated);
    assert_string_equal(out.cwd, "/home/u");
    assert_int_equal(out.started_at_ms, in.started_at_ms);
    assert_int_equal(out.finished_at_ms, in.finished_at_ms);
    assert_int_equal(out.duration_ms, 77);
    assert_true(out.has_timings);
    assert_int_equal(out.timings.queue_wait_ms, 5);
    assert_int_equal(out.timings.state_load_ms, 6);
    assert_int_equal(out.timings.run_ms, 77);
    assert_int_equal(out.timings.state_save_ms, 8);
    assert_string_equal(out.worker, "worker-1");
    assert_null(out.error_code);
    assert_false(out.has_env);
    rp_result_clear(&out);
    free(json);

    /* The executor's record carries env. */
    json = rp_result_to_json(&in, true);
    assert_non_null(json);
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_true(out.has_env);
    assert_string_equal(rp_env_get(&out.env, "PATH"), "/bin");
    rp_result_clear(&out);
    rp_result_clear(NULL);
    free(json);
    rp_env_clear(&in.env);
}

static void test_result_roundtrip_binary(void **state)
{
    static char bin[] = {'a', 0, (char)0xff, (char)0x80, 'z'};
    static char err_text[] = "warn";
    static char all[256];
    rp_result_t in = {0}, out;
    char *json;

    (void)state;
    fill_ids(&in, "e-2", "s-1");
    in.status = RP_STATUS_FAILED;
    in.has_signal = true;
    in.signal = 9;
    in.stdout_data = bin;
    in.stdout_len = sizeof(bin);
    in.stderr_data = err_text;
    in.stderr_len = strlen(err_text);
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    /* One bad output makes both base64. */
    assert_non_null(strstr(json, "\"encoding\":\"base64\""));
    assert_non_null(strstr(json, "\"stdout\":\"YQD/gHo=\""));
    assert_non_null(strstr(json, "\"stderr\":\"d2Fybg==\""));
    assert_non_null(strstr(json, "\"exit_code\":null"));
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.status, RP_STATUS_FAILED);
    assert_false(out.has_exit_code);
    assert_true(out.has_signal);
    assert_int_equal(out.signal, 9);
    assert_int_equal(out.stdout_len, sizeof(bin));
    assert_memory_equal(out.stdout_data, bin, sizeof(bin));
    assert_int_equal(out.stderr_len, 4);
    assert_memory_equal(out.stderr_data, "warn", 4);
    rp_result_clear(&out);
    free(json);

    /* Every byte value survives, in stderr this time. */
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    in.stdout_data = NULL;
    in.stdout_len = 0;
    in.stderr_data = all;
    in.stderr_len = sizeof(all);
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"stdout\":\"\""));
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.stdout_len, 0);
    assert_int_equal(out.stderr_len, sizeof(all));
    assert_memory_equal(out.stderr_data, all, sizeof(all));
    rp_result_clear(&out);
    free(json);
}

static void test_result_error_member(void **state)
{
    rp_result_t in = {0}, out;
    char *json, *msg;

    (void)state;
    fill_ids(&in, "e-3", "s-1");
    in.status = RP_STATUS_REJECTED;
    /* No error recorded: still a valid document, saying so. */
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_string_equal(out.error_code, "internal");
    rp_result_clear(&out);
    free(json);

    assert_int_equal(rp_result_set_error(&in, "invalid", "timeout_s: bad"), RP_OK);
    assert_int_equal(rp_result_set_error(&in, "Not Snake", "x"), RP_ERR_INVALID);
    assert_int_equal(rp_result_set_error(&in, NULL, "x"), RP_ERR_INVALID);
    assert_string_equal(in.error_code, "invalid"); /* untouched by failures */
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.status, RP_STATUS_REJECTED);
    assert_string_equal(out.error_code, "invalid");
    assert_string_equal(out.error_message, "timeout_s: bad");
    rp_result_clear(&out);
    free(json);

    /* error belongs to rejected/error only, whatever the struct holds. */
    in.status = RP_STATUS_FAILED;
    in.has_exit_code = true;
    in.exit_code = 3;
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_null(strstr(json, "\"error\""));
    free(json);

    /* Messages are cut to RP_ERRMSG_MAX bytes, never inside a character. */
    msg = repeat("m", RP_ERRMSG_MAX - 1);
    msg = realloc(msg, RP_ERRMSG_MAX + 8);
    assert_non_null(msg);
    memcpy(msg + RP_ERRMSG_MAX - 1, "\xc3\xa9tail", 7);
    assert_int_equal(rp_result_set_error(&in, "io", msg), RP_OK);
    assert_int_equal(strlen(in.error_message), RP_ERRMSG_MAX - 1);
    free(msg);
    msg = repeat("m", 3 * RP_ERRMSG_MAX);
    assert_int_equal(rp_result_set_error(&in, "io", msg), RP_OK);
    assert_int_equal(strlen(in.error_message), RP_ERRMSG_MAX);
    free(msg);
    rp_result_clear(&in);
}

static void test_result_writer_keeps_documents_valid(void **state)
{
    rp_result_t in = {0}, out;
    char *json;

    (void)state;
    fill_ids(&in, "e-4", "s-1");
    in.status = RP_STATUS_SUCCEEDED;
    in.has_exit_code = true;
    /* Clock skew between hosts gives negative durations: written as 0. */
    in.duration_ms = -3;
    in.has_timings = true;
    in.timings.queue_wait_ms = -250;
    /* Text that is not UTF-8 outside stdout/stderr is made readable. */
    in.cwd = "/tmp/caf\xe9";
    in.worker = "w\xff";
    json = rp_result_to_json(&in, false);
    assert_non_null(json);
    assert_int_equal(rp_result_parse(json, strlen(json), &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.duration_ms, 0);
    assert_int_equal(out.timings.queue_wait_ms, 0);
    assert_string_equal(out.cwd, "/tmp/caf?");
    assert_string_equal(out.worker, "w?");
    assert_int_equal(out.started_at_ms, 0); /* 0 = absent, not 1970 */
    assert_null(strstr(json, "started_at"));
    rp_result_clear(&out);
    free(json);
}

static void test_result_rules(void **state)
{
#define RES_BASE                                                             \
    "\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\",\"signal\":null," \
    "\"stdout_truncated\":false,\"stderr_truncated\":false,\"duration_ms\":1"
    static const struct rule_case cases[] = {
        {"{" RES_BASE ",\"status\":\"rejected\",\"exit_code\":null,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "error: required when status is \"rejected\""},
        {"{" RES_BASE ",\"status\":\"succeeded\",\"exit_code\":0,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"error\":{\"code\":\"io\","
         "\"message\":\"x\"}}",
         RP_ERR_INVALID, "error: must be absent"},
        {"{" RES_BASE ",\"status\":\"succeeded\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "exit_code: must be 0 when status is \"succeeded\""},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":256,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "exit_code: must be an integer from 0 to 255"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":\"1\",\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "exit_code: must be null or an integer"},
        {"{" RES_BASE ",\"status\":\"done\",\"exit_code\":0,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "status: must be one of"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"AP8\",\"stderr\":\"\",\"encoding\":\"base64\"}",
         RP_ERR_INVALID, "stdout: not valid base64"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"a\\u0000b\",\"stderr\":\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "stdout: must not contain NUL"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"latin-1\"}",
         RP_ERR_INVALID, "encoding: must be \"utf-8\" or \"base64\""},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"encoding\":\"utf-8\"}",
         RP_ERR_INVALID, "stderr: required"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"timings\":{"
         "\"queue_wait_ms\":1,\"state_load_ms\":1,\"run_ms\":-1,"
         "\"state_save_ms\":1}}",
         RP_ERR_INVALID, "timings.run_ms: must be an integer from 0"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"timings\":{"
         "\"queue_wait_ms\":1,\"state_load_ms\":1,\"run_ms\":1}}",
         RP_ERR_INVALID, "timings.state_save_ms: required"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"timings\":{"
         "\"queue_wait_ms\":1,\"state_load_ms\":1,\"run_ms\":1,"
         "\"state_save_ms\":1,\"gc_ms\":1}}",
         RP_ERR_INVALID, "timings.gc_ms: unknown field"},
        {"{" RES_BASE ",\"status\":\"error\",\"exit_code\":null,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"error\":{\"code\":"
         "\"Bad\",\"message\":\"x\"}}",
         RP_ERR_INVALID, "error.code: "},
        {"{" RES_BASE ",\"status\":\"error\",\"exit_code\":null,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"error\":{\"code\":"
         "\"io\"}}",
         RP_ERR_INVALID, "error.message: required"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"cwd\":\"rel\"}",
         RP_ERR_INVALID, "cwd: must be an absolute path"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"host\":\"x\"}",
         RP_ERR_INVALID, "host: unknown field"},
        {"{" RES_BASE ",\"status\":\"failed\",\"exit_code\":1,\"stdout\":"
         "\"\",\"stderr\":\"\",\"encoding\":\"utf-8\",\"env\":{\"9\":\"x\"}}",
         RP_ERR_INVALID, "env: invalid variable name"},
    };
    rp_result_t r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_err_t err = rp_result_parse(cases[i].json, strlen(cases[i].json), &r,
                                       errstr, sizeof(errstr));

        if (err != cases[i].err)
            fail_msg("case %zu: got %s (%s), want %s", i, rp_err_code(err),
                     errstr, rp_err_code(cases[i].err));
        assert_errstr_starts(cases[i].prefix);
        rp_result_clear(&r);
    }
#undef RES_BASE
}

static void test_status_names(void **state)
{
    rp_status_t st;

    (void)state;
    for (int i = RP_STATUS_SUCCEEDED; i <= RP_STATUS_ERROR; i++) {
        assert_int_equal(rp_status_parse(rp_status_str((rp_status_t)i), &st), 0);
        assert_int_equal(st, i);
    }
    assert_string_equal(rp_status_str(RP_STATUS_TIMED_OUT), "timed_out");
    assert_int_equal(rp_status_parse("Succeeded", &st), -1);
    assert_int_equal(rp_status_parse(NULL, &st), -1);
}

/* ---------------------------------------------------------------- */
/* session state                                                     */
/* ---------------------------------------------------------------- */

static void test_session_roundtrip(void **state)
{
    rp_session_t in = {0}, out;
    char *json;

    (void)state;
    snprintf(in.session_id, sizeof(in.session_id), "%s", "s-7");
    in.cwd = "/srv/app";
    assert_int_equal(rp_env_set(&in.env, "A", "1"), RP_OK);
    assert_int_equal(rp_env_set(&in.env, "MSG", "h\xc3\xa9 \"q\"\n"), RP_OK);
    in.created_at_ms = 1795460708123;
    in.updated_at_ms = 1795460709000;
    in.execution_count = 42;
    snprintf(in.last_execution_id, sizeof(in.last_execution_id), "%s", "e-42");
    json = rp_session_to_json(&in);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"updated_at\":\"2026-11-23T19:05:09.000Z\""));
    assert_int_equal(rp_session_parse(json, strlen(json), &out, errstr,
                                      sizeof(errstr)),
                     RP_OK);
    assert_string_equal(out.session_id, "s-7");
    assert_string_equal(out.cwd, "/srv/app");
    assert_int_equal(out.env.n, 2);
    assert_string_equal(rp_env_get(&out.env, "MSG"), "h\xc3\xa9 \"q\"\n");
    assert_int_equal(out.created_at_ms, in.created_at_ms);
    assert_int_equal(out.updated_at_ms, in.updated_at_ms);
    assert_int_equal(out.execution_count, 42);
    assert_string_equal(out.last_execution_id, "e-42");
    rp_session_clear(&out);
    free(json);

    /* A fresh session: no cwd yet, no last execution, empty env. */
    rp_env_clear(&in.env);
    in.cwd = NULL;
    in.last_execution_id[0] = '\0';
    in.execution_count = 0;
    json = rp_session_to_json(&in);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"env\":{}"));
    assert_null(strstr(json, "\"cwd\""));
    assert_null(strstr(json, "last_execution_id"));
    assert_int_equal(rp_session_parse(json, strlen(json), &out, errstr,
                                      sizeof(errstr)),
                     RP_OK);
    assert_null(out.cwd);
    assert_string_equal(out.last_execution_id, "");
    assert_int_equal(out.env.n, 0);
    rp_session_clear(&out);
    rp_session_clear(NULL);
    free(json);
}

static void test_session_rules(void **state)
{
#define SES_TIMES \
    "\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:01Z\""
    static const struct rule_case cases[] = {
        {"{\"v\":1,\"session_id\":\"s\",\"execution_count\":0," SES_TIMES "}",
         RP_ERR_INVALID, "env: required"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":-1," SES_TIMES "}",
         RP_ERR_INVALID, "execution_count: must be an integer from 0"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":9007199254740992,"
         SES_TIMES "}",
         RP_ERR_INVALID, "execution_count: "},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":0,\"cwd\":"
         "\"x\"," SES_TIMES "}",
         RP_ERR_INVALID, "cwd: must be an absolute path"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":0,"
         "\"last_execution_id\":\"\"," SES_TIMES "}",
         RP_ERR_INVALID, "last_execution_id: must be 1 to 128"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":0,"
         "\"created_at\":\"2026-01-01T00:00:00Z\"}",
         RP_ERR_INVALID, "updated_at: required"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":0,"
         "\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"soon\"}",
         RP_ERR_INVALID, "updated_at: must be an RFC 3339"},
        {"{\"v\":1,\"session_id\":\"s\",\"env\":{},\"execution_count\":0,"
         "\"owner\":1," SES_TIMES "}",
         RP_ERR_INVALID, "owner: unknown field"},
    };
    rp_session_t s;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_err_t err = rp_session_parse(cases[i].json, strlen(cases[i].json),
                                        &s, errstr, sizeof(errstr));

        if (err != cases[i].err)
            fail_msg("case %zu: got %s (%s), want %s", i, rp_err_code(err),
                     errstr, rp_err_code(cases[i].err));
        assert_errstr_starts(cases[i].prefix);
        rp_session_clear(&s);
    }
#undef SES_TIMES
}

/* ---------------------------------------------------------------- */
/* the shared vectors in schemas/examples                            */
/* ---------------------------------------------------------------- */

/* Does the C side accept doc as a `schema` document? */
static bool c_accepts(const char *schema, const char *doc, size_t len,
                      char *why, size_t why_size)
{
    bool ok;

    why[0] = '\0';
    if (strcmp(schema, "request") == 0) {
        rp_request_t r;

        ok = rp_request_parse(doc, len, &r, why, why_size) == RP_OK;
        rp_request_clear(&r);
    } else if (strcmp(schema, "session-state") == 0) {
        rp_session_t s;

        ok = rp_session_parse(doc, len, &s, why, why_size) == RP_OK;
        rp_session_clear(&s);
    } else {
        /* One parser for both: a published result must not carry env, the
         * executor's record may. */
        bool published = strcmp(schema, "result") == 0;
        rp_result_t r;

        ok = rp_result_parse(doc, len, &r, why, why_size) == RP_OK;
        if (ok && published && r.has_env) {
            snprintf(why, why_size, "env present in a published result");
            ok = false;
        }
        /* The same for the workspace report: the record's whole object,
         * the published workspace_saved. */
        if (ok && r.ws.present && r.ws.full == published) {
            snprintf(why, why_size, "%s in %s", published ? "workspace object"
                     : "workspace_saved", published ? "a published result"
                     : "an executor record");
            ok = false;
        }
        rp_result_clear(&r);
    }
    return ok;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    rp_buf_t b;
    char chunk[65536];
    size_t n;

    assert_non_null(f);
    rp_buf_init(&b, TEST_VECTOR_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(rp_buf_append(&b, chunk, n), RP_OK);
    fclose(f);
    return rp_buf_steal(&b, len);
}

/* Check every vector in dir; returns the number of documents. */
static int check_vector_dir(const char *dir, const char *schema, bool valid,
                            int *mismatches)
{
    char path[4096 + 512], why[512];
    struct dirent *de;
    int docs = 0;
    DIR *d = opendir(dir);

    if (!d)
        fail_msg("cannot open %s", dir);
    while ((de = readdir(d))) {
        size_t nlen = strlen(de->d_name), len;
        bool jsonl = nlen > 6 && strcmp(de->d_name + nlen - 6, ".jsonl") == 0;
        char *text, *p, *end;
        int line = 0;

        if (!jsonl && !(nlen > 5 && strcmp(de->d_name + nlen - 5, ".json") == 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        text = read_file(path, &len);
        for (p = text, end = text + len; p <= end && (jsonl || p == text);) {
            char *nl = jsonl ? memchr(p, '\n', (size_t)(end - p)) : NULL;
            size_t dlen = nl ? (size_t)(nl - p) : (size_t)(end - p);
            bool blank = true;

            line++;
            for (size_t i = 0; i < dlen; i++)
                blank = blank && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r');
            if (!jsonl || !blank) {
                docs++;
                if (c_accepts(schema, p, dlen, why, sizeof(why)) != valid) {
                    print_error("%s:%d: expected %s, C says %s%s\n", path, line,
                                valid ? "valid" : "invalid",
                                valid ? "invalid: " : "valid", why);
                    (*mismatches)++;
                }
            }
            if (!nl)
                break;
            p = nl + 1;
        }
        free(text);
    }
    closedir(d);
    return docs;
}

static void test_shared_vectors(void **state)
{
    static const char *const schemas[] = {"request", "result",
                                          "executor-result", "session-state"};
    const char *src = getenv("RP_SOURCE_DIR");
    char dir[4096];
    int mismatches = 0;

    (void)state;
    if (!src)
        fail_msg("RP_SOURCE_DIR is not set: run this test through ctest");
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        for (int valid = 1; valid >= 0; valid--) {
            int n;

            snprintf(dir, sizeof(dir), "%s/schemas/examples/%s/%s", src,
                     schemas[i], valid ? "valid" : "invalid");
            n = check_vector_dir(dir, schemas[i], valid, &mismatches);
            /* An empty directory would make this test pass vacuously. */
            if (n < 3)
                fail_msg("%s: only %d documents", dir, n);
        }
    }
    assert_int_equal(mismatches, 0);
}

/* ---------------------------------------------------------------- */
/* helpers: ids, env, UTF-8, base64                                  */
/* ---------------------------------------------------------------- */

static void test_ids(void **state)
{
    char id[37], other[37], long_id[RP_ID_MAX + 2];

    (void)state;
    assert_true(rp_id_valid("a", 1));
    assert_true(rp_id_valid("A-z_0.9:x", 9));
    assert_false(rp_id_valid("", 0));
    assert_false(rp_id_valid(NULL, 3));
    assert_false(rp_id_valid("a b", 3));
    assert_false(rp_id_valid("a/b", 3));
    assert_false(rp_id_valid("\xc3\xa9", 2));
    assert_true(rp_id_valid("ab\0", 2)); /* len decides, not the NUL */
    assert_false(rp_id_valid("ab\0", 3));
    memset(long_id, 'x', sizeof(long_id));
    assert_true(rp_id_valid(long_id, RP_ID_MAX));
    assert_false(rp_id_valid(long_id, RP_ID_MAX + 1));

    assert_int_equal(rp_id_generate(id), RP_OK);
    assert_int_equal(rp_id_generate(other), RP_OK);
    assert_int_equal(strlen(id), 36);
    assert_string_not_equal(id, other);
    assert_true(rp_id_valid(id, 36));
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id[i]));
    }
    assert_int_equal(id[14], '4');             /* version 4 */
    assert_non_null(strchr("89ab", id[19]));   /* RFC 4122 variant */
}

static void test_env_map(void **state)
{
    rp_env_t env = {0}, copy = {0};
    char *name;

    (void)state;
    assert_int_equal(rp_env_set(&env, "A", "1"), RP_OK);
    assert_int_equal(rp_env_set(&env, "B", "2"), RP_OK);
    assert_int_equal(rp_env_set(&env, "C", "3"), RP_OK);
    assert_int_equal(rp_env_set(&env, "A", "one"), RP_OK); /* replaces */
    assert_int_equal(env.n, 3);
    assert_string_equal(rp_env_get(&env, "A"), "one");
    assert_null(rp_env_get(&env, "a"));
    assert_int_equal(rp_env_set(&env, NULL, "x"), RP_ERR_INVALID);
    rp_env_unset(&env, "B");
    rp_env_unset(&env, "missing");
    assert_int_equal(env.n, 2);
    assert_string_equal(env.vars[0].name, "A"); /* order kept */
    assert_string_equal(env.vars[1].name, "C");
    assert_int_equal(rp_env_copy(&copy, &env), RP_OK);
    rp_env_set(&env, "C", "changed");
    assert_string_equal(rp_env_get(&copy, "C"), "3"); /* deep copy */
    for (int i = 0; i < 100; i++) { /* growth */
        char nm[16];

        snprintf(nm, sizeof(nm), "V%d", i);
        assert_int_equal(rp_env_set(&copy, nm, nm), RP_OK);
    }
    assert_string_equal(rp_env_get(&copy, "V99"), "V99");
    rp_env_clear(&env);
    rp_env_clear(&copy);
    rp_env_clear(NULL);
    assert_int_equal(env.n, 0);

    assert_true(rp_env_name_valid("_"));
    assert_true(rp_env_name_valid("PATH_2"));
    assert_false(rp_env_name_valid("2X"));
    assert_false(rp_env_name_valid("A-B"));
    assert_false(rp_env_name_valid("A=B"));
    assert_false(rp_env_name_valid(""));
    assert_false(rp_env_name_valid(NULL));
    name = repeat("N", RP_ENV_NAME_MAX);
    assert_true(rp_env_name_valid(name));
    free(name);
    name = repeat("N", RP_ENV_NAME_MAX + 1);
    assert_false(rp_env_name_valid(name));
    free(name);
}

static void test_env_json(void **state)
{
    rp_env_t env = {0}, back = {0};
    char *json;

    (void)state;
    rp_env_set(&env, "X", "a \"b\"\n\xe2\x98\x83");
    rp_env_set(&env, "Y", "");
    assert_int_equal(rp_env_validate(&env, "COMMAND_ENV", errstr, sizeof(errstr)),
                     RP_OK);
    json = rp_env_to_json(&env);
    assert_non_null(json);
    assert_int_equal(rp_env_parse_json(json, strlen(json), &back, "COMMAND_ENV",
                                       errstr, sizeof(errstr)),
                     RP_OK);
    assert_int_equal(back.n, 2);
    assert_string_equal(rp_env_get(&back, "X"), "a \"b\"\n\xe2\x98\x83");
    assert_string_equal(rp_env_get(&back, "Y"), "");
    free(json);
    rp_env_clear(&back);

    assert_int_equal(rp_env_parse_json("[]", 2, &back, "COMMAND_ENV", errstr,
                                       sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("COMMAND_ENV: not a JSON object");
    rp_env_clear(&back);
    assert_int_equal(rp_env_parse_json("{", 1, &back, "COMMAND_ENV", errstr,
                                       sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("COMMAND_ENV: not a JSON object");
    rp_env_clear(&back);

    rp_env_set(&env, "bad-name", "x");
    assert_int_equal(rp_env_validate(&env, "COMMAND_ENV", errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("COMMAND_ENV: invalid variable name \"bad-name\"");
    rp_env_unset(&env, "bad-name");
    rp_env_set(&env, "LATIN1", "caf\xe9");
    assert_int_equal(rp_env_validate(&env, "COMMAND_ENV", errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("COMMAND_ENV.LATIN1: not valid UTF-8");
    rp_env_clear(&env);
}

static void test_utf8_valid(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii", true},
        {"\xc2\x80", true},                  /* U+0080 */
        {"\xdf\xbf", true},                  /* U+07FF */
        {"\xe0\xa0\x80", true},              /* U+0800 */
        {"\xed\x9f\xbf", true},              /* U+D7FF */
        {"\xee\x80\x80", true},              /* U+E000 */
        {"\xef\xbf\xbf", true},              /* U+FFFF */
        {"\xf0\x90\x80\x80", true},          /* U+10000 */
        {"\xf4\x8f\xbf\xbf", true},          /* U+10FFFF */
        {"\xc0\x80", false},                 /* overlong NUL */
        {"\xc1\xbf", false},                 /* overlong */
        {"\xe0\x80\x80", false},             /* overlong */
        {"\xe0\x9f\xbf", false},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", false},         /* overlong */
        {"\xf0\x8f\xbf\xbf", false},         /* overlong U+FFFF */
        {"\xed\xa0\x80", false},             /* U+D800 surrogate */
        {"\xed\xbf\xbf", false},             /* U+DFFF surrogate */
        {"\xf4\x90\x80\x80", false},         /* U+110000 */
        {"\xf5\x80\x80\x80", false},
        {"\xf8\x88\x80\x80\x80", false},     /* 5-byte form */
        {"\xff", false},
        {"\x80", false},                     /* stray continuation */
        {"a\xc3", false},                    /* cut short */
        {"\xe2\x98", false},
        {"\xc3\x28", false},                 /* bad continuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (rp_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");
    assert_false(rp_utf8_valid("a\0b", 3)); /* NUL is not text here */
    assert_true(rp_utf8_valid("a\0b", 1));
    assert_true(rp_utf8_valid(NULL, 0));
}

static void test_utf8_trim(void **state)
{
    const char *s = "a\xc3\xa9" "b\xe2\x98\x83" "\xf0\x9f\x98\x80"; /* aé b☃ 😀 */

    (void)state;
    assert_int_equal(rp_utf8_trim(s, 0), 0);
    assert_int_equal(rp_utf8_trim(s, 1), 1);
    assert_int_equal(rp_utf8_trim(s, 2), 1);  /* inside é */
    assert_int_equal(rp_utf8_trim(s, 3), 3);
    assert_int_equal(rp_utf8_trim(s, 5), 4);  /* inside ☃ */
    assert_int_equal(rp_utf8_trim(s, 6), 4);
    assert_int_equal(rp_utf8_trim(s, 7), 7);
    assert_int_equal(rp_utf8_trim(s, 8), 7);  /* inside 😀 */
    assert_int_equal(rp_utf8_trim(s, 9), 7);
    assert_int_equal(rp_utf8_trim(s, 10), 7);
    assert_int_equal(rp_utf8_trim(s, 11), 11);
    /* A trimmed prefix is always valid text. */
    for (size_t n = 0; n <= strlen(s); n++)
        assert_true(rp_utf8_valid(s, rp_utf8_trim(s, n)));
    /* Binary junk is not "cut text": leave it alone. */
    assert_int_equal(rp_utf8_trim("\x80\x80\x80\x80", 4), 4);
    assert_int_equal(rp_utf8_trim("ab\xff", 3), 3);
}

static void test_base64(void **state)
{
    static const char *const rfc4648[][2] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
        {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    static const char *const bad[] = {
        "Zg=", "Zg", "Z", "Zm9v\n", "Zm 9", "Z===", "====", "Zg==Zg==",
        "Zm9-", "Zm9_", "Zm=v", "=Zm9",
    };
    unsigned char all[256];
    char *enc, *dec;
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        enc = rp_base64_encode(rfc4648[i][0], strlen(rfc4648[i][0]));
        assert_non_null(enc);
        assert_string_equal(enc, rfc4648[i][1]);
        assert_int_equal(rp_base64_decode(enc, strlen(enc), &dec, &len), RP_OK);
        assert_int_equal(len, strlen(rfc4648[i][0]));
        assert_memory_equal(dec, rfc4648[i][0], len);
        assert_int_equal(dec[len], '\0');
        free(enc);
        free(dec);
    }
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    for (size_t n = 0; n <= sizeof(all); n += 37) {
        enc = rp_base64_encode(all, n);
        assert_non_null(enc);
        assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
        assert_int_equal(rp_base64_decode(enc, strlen(enc), &dec, &len), RP_OK);
        assert_int_equal(len, n);
        assert_memory_equal(dec, all, n);
        free(enc);
        free(dec);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dec = (char *)1;
        if (rp_base64_decode(bad[i], strlen(bad[i]), &dec, &len) != RP_ERR_INVALID)
            fail_msg("\"%s\" decoded", bad[i]);
        assert_null(dec);
    }
    assert_int_equal(rp_base64_decode("Zg==", 4, NULL, &len), RP_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_defaults),
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_request_rules),
        cmocka_unit_test(test_request_accepts_edge_values),
        cmocka_unit_test(test_request_ids_filled_on_failure),
        cmocka_unit_test(test_request_size_limits),
        cmocka_unit_test(test_request_bom),
        cmocka_unit_test(test_result_roundtrip_utf8),
        cmocka_unit_test(test_result_roundtrip_binary),
        cmocka_unit_test(test_result_error_member),
        cmocka_unit_test(test_result_writer_keeps_documents_valid),
        cmocka_unit_test(test_result_rules),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_session_roundtrip),
        cmocka_unit_test(test_session_rules),
        cmocka_unit_test(test_shared_vectors),
        cmocka_unit_test(test_result_workspace),
        cmocka_unit_test(test_session_workspace),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_env_map),
        cmocka_unit_test(test_env_json),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_trim),
        cmocka_unit_test(test_base64),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
