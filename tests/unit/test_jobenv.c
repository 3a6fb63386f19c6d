/* Unit tests for contract/rp_jobenv.c: the executor's environment contract. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_jobenv.h"

static char errstr[512];

/* getenv over an rp_env_t, so no test touches the real environment. */
static const char *lookup(const char *name, void *opaque)
{
    return rp_env_get(opaque, name);
}

static void assert_errstr_starts(const char *prefix)
{
    if (strncmp(errstr, prefix, strlen(prefix)) != 0)
        fail_msg("errstr \"%s\" does not start with \"%s\"", errstr, prefix);
}

/* A complete spec; strings borrowed from literals (never cleared). */
static void full_spec(rp_jobspec_t *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->execution_id, sizeof(s->execution_id), "%s", "exec-1");
    snprintf(s->session_id, sizeof(s->session_id), "%s", "sess-1");
    s->command = "cd /tmp && echo \"$NAME\"";
    s->timeout_s = 30;
    s->state_url = "file:///var/lib/runpool?fsync=0";
    s->output_max = 65536;
    s->default_cwd = "/work/sess-1";
    assert_int_equal(rp_env_set(&s->env, "NAME", "w\"orld\n"), RP_OK);
    assert_int_equal(rp_env_set(&s->env, "EMPTY", ""), RP_OK);
}

/* The variables of a valid minimal contract. */
static void minimal_env(rp_env_t *env)
{
    rp_env_set(env, "EXECUTION_ID", "e1");
    rp_env_set(env, "SESSION_ID", "s1");
    rp_env_set(env, "COMMAND", "true");
    rp_env_set(env, "TIMEOUT", "120");
    rp_env_set(env, "RUNPOOL_STATE_URL", "gs://bucket/prefix");
}

static void test_build_parse_roundtrip(void **state)
{
    rp_jobspec_t in, out;
    rp_env_t env = {0};

    (void)state;
    full_spec(&in);
    assert_int_equal(rp_jobenv_build(&in, &env, errstr, sizeof(errstr)), RP_OK);
    assert_string_equal(rp_env_get(&env, "EXECUTION_ID"), "exec-1");
    assert_string_equal(rp_env_get(&env, "SESSION_ID"), "sess-1");
    assert_string_equal(rp_env_get(&env, "COMMAND"), in.command);
    assert_string_equal(rp_env_get(&env, "TIMEOUT"), "30");
    assert_string_equal(rp_env_get(&env, "RUNPOOL_STATE_URL"), in.state_url);
    assert_string_equal(rp_env_get(&env, "RUNPOOL_OUTPUT_MAX"), "65536");
    assert_string_equal(rp_env_get(&env, "RUNPOOL_DEFAULT_CWD"), "/work/sess-1");
    assert_non_null(rp_env_get(&env, "COMMAND_ENV"));
    assert_int_equal(env.n, 8);

    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_OK);
    assert_string_equal(out.execution_id, in.execution_id);
    assert_string_equal(out.session_id, in.session_id);
    assert_string_equal(out.command, in.command);
    assert_int_equal(out.timeout_s, 30);
    assert_string_equal(out.state_url, in.state_url);
    assert_int_equal(out.output_max, 65536);
    assert_string_equal(out.default_cwd, in.default_cwd);
    assert_int_equal(out.env.n, 2);
    assert_string_equal(rp_env_get(&out.env, "NAME"), "w\"orld\n");
    assert_string_equal(rp_env_get(&out.env, "EMPTY"), "");
    rp_jobspec_clear(&out);
    rp_jobspec_clear(&out); /* twice is harmless */
    rp_jobspec_clear(NULL);
    rp_env_clear(&env);
    rp_env_clear(&in.env);
}

static void test_build_minimal_leaves_optionals_out(void **state)
{
    rp_jobspec_t in, out;
    rp_env_t env = {0};

    (void)state;
    full_spec(&in);
    rp_env_clear(&in.env);
    in.output_max = 0;
    in.default_cwd = NULL;
    /* Variables already in out (the backend's PATH, HOME) are kept. */
    rp_env_set(&env, "PATH", "/usr/bin:/bin");
    assert_int_equal(rp_jobenv_build(&in, &env, errstr, sizeof(errstr)), RP_OK);
    assert_null(rp_env_get(&env, "COMMAND_ENV"));
    assert_null(rp_env_get(&env, "RUNPOOL_OUTPUT_MAX"));
    assert_null(rp_env_get(&env, "RUNPOOL_DEFAULT_CWD"));
    assert_string_equal(rp_env_get(&env, "PATH"), "/usr/bin:/bin");
    assert_int_equal(env.n, 6);
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.env.n, 0);
    assert_int_equal(out.output_max, 0);
    assert_null(out.default_cwd);
    rp_jobspec_clear(&out);
    rp_env_clear(&env);
}

static void test_parse_empty_optionals_are_absent(void **state)
{
    rp_jobspec_t out;
    rp_env_t env = {0};

    (void)state;
    minimal_env(&env);
    rp_env_set(&env, "COMMAND_ENV", "");
    rp_env_set(&env, "RUNPOOL_OUTPUT_MAX", "");
    rp_env_set(&env, "RUNPOOL_DEFAULT_CWD", "");
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_OK);
    assert_int_equal(out.env.n, 0);
    assert_int_equal(out.output_max, 0);
    assert_null(out.default_cwd);
    assert_int_equal(out.timeout_s, 120);
    rp_jobspec_clear(&out);
    rp_env_clear(&env);
}

static void test_parse_bad_variables(void **state)
{
    static const struct {
        const char *name;
        const char *value; /* NULL: unset */
        rp_err_t err;
        const char *prefix;
    } cases[] = {
        {"EXECUTION_ID", NULL, RP_ERR_INVALID, "EXECUTION_ID: must be 1 to 128"},
        {"EXECUTION_ID", "", RP_ERR_INVALID, "EXECUTION_ID: "},
        {"EXECUTION_ID", "a b", RP_ERR_INVALID, "EXECUTION_ID: "},
        {"SESSION_ID", NULL, RP_ERR_INVALID, "SESSION_ID: "},
        {"SESSION_ID", "s/1", RP_ERR_INVALID, "SESSION_ID: "},
        {"COMMAND", NULL, RP_ERR_INVALID, "COMMAND: required"},
        {"COMMAND", "", RP_ERR_INVALID, "COMMAND: required"},
        {"TIMEOUT", NULL, RP_ERR_INVALID, "TIMEOUT: required"},
        {"TIMEOUT", "", RP_ERR_INVALID, "TIMEOUT: must be an integer from 1 to 86400"},
        {"TIMEOUT", "0", RP_ERR_INVALID, "TIMEOUT: must be an integer"},
        {"TIMEOUT", "86401", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", "1.5", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", "10s", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", " 10", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", "+10", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", "-1", RP_ERR_INVALID, "TIMEOUT: "},
        {"TIMEOUT", "99999999999999999999999", RP_ERR_INVALID, "TIMEOUT: "},
        {"RUNPOOL_STATE_URL", NULL, RP_ERR_INVALID, "RUNPOOL_STATE_URL: required"},
        {"RUNPOOL_STATE_URL", "", RP_ERR_INVALID, "RUNPOOL_STATE_URL: "},
        {"COMMAND_ENV", "{", RP_ERR_INVALID, "COMMAND_ENV: not a JSON object"},
        {"COMMAND_ENV", "[\"A=b\"]", RP_ERR_INVALID, "COMMAND_ENV: not a JSON object"},
        {"COMMAND_ENV", "{\"1A\":\"x\"}", RP_ERR_INVALID,
         "COMMAND_ENV: invalid variable name \"1A\""},
        {"COMMAND_ENV", "{\"A\":1}", RP_ERR_INVALID, "COMMAND_ENV.A: must be a string"},
        {"COMMAND_ENV", "{\"A\":\"x\"} junk", RP_ERR_INVALID,
         "COMMAND_ENV: not a JSON object"},
        {"RUNPOOL_OUTPUT_MAX", "0", RP_ERR_INVALID,
         "RUNPOOL_OUTPUT_MAX: must be an integer from 1 to 8388608"},
        {"RUNPOOL_OUTPUT_MAX", "8388609", RP_ERR_INVALID, "RUNPOOL_OUTPUT_MAX: "},
        {"RUNPOOL_OUTPUT_MAX", "1MB", RP_ERR_INVALID, "RUNPOOL_OUTPUT_MAX: "},
    };
    rp_jobspec_t out;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_env_t env = {0};
        rp_err_t err;

        minimal_env(&env);
        if (cases[i].value)
            rp_env_set(&env, cases[i].name, cases[i].value);
        else
            rp_env_unset(&env, cases[i].name);
        errstr[0] = '\0';
        err = rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr));
        if (err != cases[i].err)
            fail_msg("case %zu (%s=%s): got %s (%s)", i, cases[i].name,
                     cases[i].value ? cases[i].value : "<unset>",
                     rp_err_code(err), errstr);
        assert_errstr_starts(cases[i].prefix);
        rp_jobspec_clear(&out);
        rp_env_clear(&env);
    }
}

static void test_parse_size_limits(void **state)
{
    rp_jobspec_t out;
    rp_env_t env = {0};
    char *big;

    (void)state;
    big = malloc(RP_COMMAND_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', RP_COMMAND_MAX + 1);
    big[RP_COMMAND_MAX] = '\0';
    minimal_env(&env);
    rp_env_set(&env, "COMMAND", big);
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_OK);
    assert_int_equal(strlen(out.command), RP_COMMAND_MAX);
    rp_jobspec_clear(&out);
    big[RP_COMMAND_MAX] = 'x';
    big[RP_COMMAND_MAX + 1] = '\0';
    rp_env_set(&env, "COMMAND", big);
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_ERR_TOO_LARGE);
    assert_errstr_starts("COMMAND: longer than 262144 bytes");
    rp_jobspec_clear(&out);
    free(big);

    big = malloc(RP_JOBENV_COMMAND_ENV_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', RP_JOBENV_COMMAND_ENV_MAX + 1);
    big[0] = '{';
    big[RP_JOBENV_COMMAND_ENV_MAX] = '}';
    big[RP_JOBENV_COMMAND_ENV_MAX + 1] = '\0';
    minimal_env(&env);
    rp_env_set(&env, "COMMAND_ENV", big);
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_ERR_TOO_LARGE);
    assert_errstr_starts("COMMAND_ENV: longer than");
    rp_jobspec_clear(&out);
    free(big);
    rp_env_clear(&env);
}

static void test_parse_keeps_ids_on_failure(void **state)
{
    rp_jobspec_t out;
    rp_env_t env = {0};

    (void)state;
    minimal_env(&env);
    rp_env_set(&env, "TIMEOUT", "soon");
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    /* The executor can still address an "error" record to this execution. */
    assert_string_equal(out.execution_id, "e1");
    assert_string_equal(out.session_id, "s1");
    rp_jobspec_clear(&out);

    rp_env_set(&env, "EXECUTION_ID", "bad id");
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("EXECUTION_ID: ");
    assert_string_equal(out.execution_id, "");
    assert_string_equal(out.session_id, "s1");
    rp_jobspec_clear(&out);
    rp_env_clear(&env);
}

/* RUNPOOL_REQUEST_REF=- (the local backend): the document comes on
 * stdin; the command and its env are out of the environment, and the
 * document round-trips through rp_jobenv_load_request. Large values that
 * could not be one environ string (a 256 KiB command) are fine there. */
static void test_request_stdin(void **state)
{
    rp_jobspec_t in, out;
    rp_env_t env = {0};
    char *doc = NULL, *cmd = malloc(RP_COMMAND_MAX + 1);

    (void)state;
    assert_non_null(cmd);
    full_spec(&in);
    memset(cmd, 'x', RP_COMMAND_MAX);
    cmd[RP_COMMAND_MAX] = '\0';
    in.command = cmd;
    assert_int_equal(rp_jobenv_build(&in, &env, errstr, sizeof(errstr)), RP_OK);
    assert_int_equal(rp_jobenv_use_request_stdin(&env, errstr, sizeof(errstr)),
                     RP_OK);
    assert_null(rp_env_get(&env, "COMMAND"));
    assert_null(rp_env_get(&env, "COMMAND_ENV"));
    assert_string_equal(rp_env_get(&env, RP_JOBENV_REQUEST_REF),
                        RP_JOBENV_REQUEST_STDIN);
    for (size_t i = 0; i < env.n; i++)
        assert_true(strlen(env.vars[i].value) < 4096);
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_null(out.command);
    assert_string_equal(out.request_ref, "-");
    assert_int_equal(rp_jobenv_request_json(&in, &doc, errstr, sizeof(errstr)),
                     RP_OK);
    assert_int_equal(rp_jobenv_load_request(&out, doc, strlen(doc), errstr,
                                            sizeof(errstr)),
                     RP_OK);
    assert_string_equal(out.command, cmd);
    assert_string_equal(rp_env_get(&out.env, "NAME"), "w\"orld\n");
    assert_string_equal(rp_env_get(&out.env, "EMPTY"), "");
    rp_jobspec_clear(&out);

    /* "-" with COMMAND_ENV beside it is contradictory. */
    rp_env_set(&env, "COMMAND_ENV", "{\"B\":\"c\"}");
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr,
                                     sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts("COMMAND_ENV");
    rp_jobspec_clear(&out);
    rp_env_unset(&env, "COMMAND_ENV");
    /* Anything else than "-" or this execution's document is refused,
     * and the message names both. */
    rp_env_set(&env, RP_JOBENV_REQUEST_REF, "--");
    assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr,
                                     sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_errstr_starts(RP_JOBENV_REQUEST_REF);
    assert_non_null(strstr(errstr, "executions/exec-1/request.json"));
    assert_non_null(strstr(errstr, "standard input"));
    rp_jobspec_clear(&out);
    /* A claim record of the same execution (attempt-1..100) is accepted;
     * another execution's, attempt-0 or attempt-101 are not. */
    {
        static const char *const good[] = {
            "executions/exec-1/attempt-1.json",
            "executions/exec-1/attempt-100.json"};
        static const char *const bad[] = {
            "executions/exec-2/attempt-1.json",
            "executions/exec-1/attempt-0.json",
            "executions/exec-1/attempt-101.json",
            "executions/exec-1/attempt-1.execution.json"};
        char key[RP_STATE_KEY_MAX + 1];

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
            rp_env_set(&env, RP_JOBENV_REQUEST_REF, good[i]);
            assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr,
                                             sizeof(errstr)),
                             RP_OK);
            assert_string_equal(out.request_ref, good[i]);
            rp_jobspec_clear(&out);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            rp_env_set(&env, RP_JOBENV_REQUEST_REF, bad[i]);
            assert_int_equal(rp_jobenv_parse(lookup, &env, &out, errstr,
                                             sizeof(errstr)),
                             RP_ERR_INVALID);
            rp_jobspec_clear(&out);
        }
        rp_jobenv_attempt_key("exec-1", 7, key, sizeof(key));
        assert_string_equal(key, "executions/exec-1/attempt-7.json");
        rp_jobenv_attempt_key("exec-1", 0, key, sizeof(key));
        assert_string_equal(key, "");
    }
    /* The document inside a claim record: its "request" member. */
    {
        const char *rec = "{\"execution_id\":\"exec-1\",\"attempt\":1,"
                          "\"job\":\"j\",\"request\":{\"command\":"
                          "\"echo wrapped\",\"env\":{\"A\":\"b\"}}}";
        rp_jobspec_t w;

        memset(&w, 0, sizeof(w));
        assert_int_equal(rp_jobenv_load_request(&w, rec, strlen(rec), errstr,
                                                sizeof(errstr)),
                         RP_OK);
        assert_string_equal(w.command, "echo wrapped");
        assert_string_equal(rp_env_get(&w.env, "A"), "b");
        rp_jobspec_clear(&w);
        rec = "{\"execution_id\":\"exec-1\",\"request\":\"no\"}";
        assert_int_equal(rp_jobenv_load_request(&w, rec, strlen(rec), errstr,
                                                sizeof(errstr)),
                         RP_ERR_INVALID);
        rp_jobspec_clear(&w);
    }
    free(doc);
    free(cmd);
    rp_env_clear(&env);
    rp_env_clear(&in.env);
}

static void test_build_rejects_bad_spec(void **state)
{
    rp_jobspec_t s;
    rp_env_t env = {0};
    int n;

    (void)state;
    for (n = 0;; n++) {
        const char *prefix;
        rp_err_t want = RP_ERR_INVALID;

        full_spec(&s);
        switch (n) {
        case 0:
            s.execution_id[0] = '\0';
            prefix = "EXECUTION_ID: ";
            break;
        case 1:
            snprintf(s.session_id, sizeof(s.session_id), "%s", "a b");
            prefix = "SESSION_ID: ";
            break;
        case 2:
            s.command = NULL;
            prefix = "COMMAND: required";
            break;
        case 3:
            s.timeout_s = 0;
            prefix = "TIMEOUT: must be an integer from 1 to 86400";
            break;
        case 4:
            s.timeout_s = RP_TIMEOUT_MAX_S + 1;
            prefix = "TIMEOUT: ";
            break;
        case 5:
            s.state_url = NULL;
            prefix = "RUNPOOL_STATE_URL: required";
            break;
        case 6:
            s.output_max = (size_t)RP_OUTPUT_MAX_LIMIT + 1;
            prefix = "RUNPOOL_OUTPUT_MAX: ";
            break;
        case 7:
            rp_env_set(&s.env, "NOT-A-NAME", "x");
            prefix = "COMMAND_ENV: invalid variable name";
            break;
        case 8:
            s.default_cwd = "";
            prefix = "RUNPOOL_DEFAULT_CWD: ";
            break;
        case 9: {
            /* Each value within its limit, all of them too many bytes. */
            char *v = malloc(RP_ENV_VALUE_MAX + 1), nm[16];

            assert_non_null(v);
            memset(v, 'v', RP_ENV_VALUE_MAX);
            v[RP_ENV_VALUE_MAX] = '\0';
            for (int i = 0; i < 40; i++) {
                snprintf(nm, sizeof(nm), "V%d", i);
                assert_int_equal(rp_env_set(&s.env, nm, v), RP_OK);
            }
            free(v);
            want = RP_ERR_TOO_LARGE;
            prefix = "COMMAND_ENV: longer than";
            break;
        }
        default:
            prefix = NULL;
        }
        if (!prefix) {
            rp_env_clear(&s.env);
            break;
        }
        errstr[0] = '\0';
        if (rp_jobenv_build(&s, &env, errstr, sizeof(errstr)) != want)
            fail_msg("case %d: accepted (%s)", n, errstr);
        assert_errstr_starts(prefix);
        assert_int_equal(env.n, 0); /* nothing half-built */
        rp_env_clear(&s.env);
    }
    assert_int_equal(n, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_parse_roundtrip),
        cmocka_unit_test(test_build_minimal_leaves_optionals_out),
        cmocka_unit_test(test_parse_empty_optionals_are_absent),
        cmocka_unit_test(test_parse_bad_variables),
        cmocka_unit_test(test_parse_size_limits),
        cmocka_unit_test(test_parse_keeps_ids_on_failure),
        cmocka_unit_test(test_build_rejects_bad_spec),
        cmocka_unit_test(test_request_stdin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
