/* rp_claim: the claim document (round trip, bounds, rejected input) and
 * the run names (this process, another local process, Cloud Run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_claim.h"
#include "rp_jobenv.h"

static void test_key(void **state)
{
    char key[RP_STATE_KEY_MAX + 1];

    (void)state;
    rp_claim_key("e-1", key, sizeof(key));
    assert_string_equal(key, "executions/e-1/claim.json");
    rp_claim_key("..", key, sizeof(key));
    assert_string_equal(key, ""); /* never some other object */
}

static void test_round_trip(void **state)
{
    rp_claim_t c, back;
    char es[256], *json;

    (void)state;
    memset(&c, 0, sizeof(c));
    snprintf(c.execution_id, sizeof(c.execution_id), "e-1");
    snprintf(c.run, sizeof(c.run), "cloudrun:rp-job-x7k2p");
    snprintf(c.job, sizeof(c.job), "rp-job");
    c.attempt = 2;
    c.claimed_at_ms = 1764745200123;
    assert_non_null(json = rp_claim_to_json(&c));
    assert_int_equal(rp_claim_parse(json, strlen(json), &back, es, sizeof(es)),
                     RP_OK);
    assert_string_equal(back.execution_id, "e-1");
    assert_string_equal(back.run, "cloudrun:rp-job-x7k2p");
    assert_string_equal(back.job, "rp-job");
    assert_int_equal(back.attempt, 2);
    assert_int_equal(back.claimed_at_ms, 1764745200123);
    free(json);

    /* job is optional; attempt 0 is written as the first. */
    c.job[0] = '\0';
    c.attempt = 0;
    assert_non_null(json = rp_claim_to_json(&c));
    assert_null(strstr(json, "\"job\""));
    assert_int_equal(rp_claim_parse(json, strlen(json), &back, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(back.attempt, 1);
    assert_string_equal(back.job, "");
    free(json);
}

static void expect_bad(const char *json, rp_err_t want, const char *field)
{
    rp_claim_t c;
    char es[256] = "";

    assert_int_equal(rp_claim_parse(json, strlen(json), &c, es, sizeof(es)),
                     want);
    if (field && !strstr(es, field))
        fail_msg("error for %s does not name %s: %s", json, field, es);
    assert_string_equal(c.run, ""); /* nothing half-filled */
}

static void test_rejected(void **state)
{
    char big[RP_CLAIM_DOC_MAX + 64], run[RP_CLAIM_RUN_MAX + 2];

    (void)state;
    expect_bad("", RP_ERR_INVALID, NULL);
    expect_bad("[]", RP_ERR_INVALID, NULL);
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"attempt\":1,"
               "\"claimed_at_ms\":1}",
               RP_ERR_INVALID, "run");
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"run\":\"local:a:1:2\","
               "\"attempt\":4,\"claimed_at_ms\":1}",
               RP_ERR_INVALID, "attempt");
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"run\":\"local:a:1:2\","
               "\"attempt\":0,\"claimed_at_ms\":1}",
               RP_ERR_INVALID, "attempt");
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"run\":\"a b\","
               "\"attempt\":1,\"claimed_at_ms\":1}",
               RP_ERR_INVALID, "run");
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"run\":\"x\","
               "\"attempt\":1,\"claimed_at_ms\":-1}",
               RP_ERR_INVALID, "claimed_at_ms");
    expect_bad("{\"v\":1,\"execution_id\":\"e\",\"run\":\"x\","
               "\"attempt\":1,\"claimed_at_ms\":1,\"extra\":1}",
               RP_ERR_INVALID, "extra");
    expect_bad("{\"v\":2,\"execution_id\":\"e\",\"run\":\"x\","
               "\"attempt\":1,\"claimed_at_ms\":1}",
               RP_ERR_INVALID, NULL);
    /* Bounded: a run name past RP_CLAIM_RUN_MAX, a document past the cap. */
    memset(run, 'r', sizeof(run) - 1);
    run[sizeof(run) - 1] = '\0';
    snprintf(big, sizeof(big),
             "{\"v\":1,\"execution_id\":\"e\",\"run\":\"%s\",\"attempt\":1,"
             "\"claimed_at_ms\":1}",
             run);
    expect_bad(big, RP_ERR_TOO_LARGE, "run");
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    expect_bad(big, RP_ERR_TOO_LARGE, NULL);
}

static const char *no_env(const char *name, void *opaque)
{
    (void)name;
    (void)opaque;
    return NULL;
}

static const char *cloud_env(const char *name, void *opaque)
{
    (void)opaque;
    if (!strcmp(name, "CLOUD_RUN_EXECUTION"))
        return "rp-job-x7k2p";
    if (!strcmp(name, "CLOUD_RUN_JOB"))
        return "rp-job";
    return NULL;
}

static const char *bad_cloud_env(const char *name, void *opaque)
{
    (void)opaque;
    return !strcmp(name, "CLOUD_RUN_EXECUTION") ? "has \"quotes\"" : NULL;
}

/* This process's run: local with our pid and start time; on Cloud Run the
 * execution. */
static void test_self_run(void **state)
{
    char run[RP_CLAIM_RUN_MAX + 1], job[RP_CLAIM_JOB_MAX + 1], es[256];
    char boot[RP_CLAIM_BOOT_ID_MAX + 1], mine[RP_CLAIM_BOOT_ID_MAX + 1];
    uint64_t ticks, my_ticks;
    pid_t pid;

    (void)state;
    assert_int_equal(rp_claim_self_run(no_env, NULL, run, job, es, sizeof(es)),
                     RP_OK);
    assert_string_equal(job, "");
    assert_int_equal(rp_claim_local_parse(run, boot, &pid, &ticks), RP_OK);
    assert_int_equal(pid, getpid());
    assert_int_equal(rp_claim_boot_id(mine), RP_OK);
    assert_string_equal(boot, mine);
    /* A UUID, then "." and the pid namespace's inode. */
    assert_true(strlen(mine) > 37);
    assert_int_equal(mine[36], '.');
    assert_int_equal(rp_claim_start_ticks(getpid(), &my_ticks), RP_OK);
    assert_true(my_ticks == ticks);

    assert_int_equal(rp_claim_self_run(cloud_env, NULL, run, job, es,
                                       sizeof(es)),
                     RP_OK);
    assert_string_equal(run, "cloudrun:rp-job-x7k2p");
    assert_string_equal(job, "rp-job");
    assert_int_equal(rp_claim_self_run(bad_cloud_env, NULL, run, job, es,
                                       sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "CLOUD_RUN_EXECUTION"));
}

/* Another process: its name is stable while it lives, differs from ours,
 * and a gone pid is NOT_FOUND. */
static void test_local_run(void **state)
{
    char run[RP_CLAIM_RUN_MAX + 1], again[RP_CLAIM_RUN_MAX + 1], es[256];
    char self[RP_CLAIM_RUN_MAX + 1];
    char *argv[] = {"sleep", "5", NULL};
    int status;
    pid_t pid;

    (void)state;
    assert_int_equal(posix_spawn(&pid, "/bin/sleep", NULL, NULL, argv, NULL),
                     0);
    assert_int_equal(rp_claim_local_run(pid, run, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_claim_local_run(pid, again, es, sizeof(es)), RP_OK);
    assert_string_equal(run, again);
    assert_int_equal(rp_claim_local_run(getpid(), self, es, sizeof(es)), RP_OK);
    assert_string_not_equal(run, self);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rp_claim_local_run(pid, again, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
}

static void test_local_parse(void **state)
{
    char boot[RP_CLAIM_BOOT_ID_MAX + 1];
    uint64_t ticks;
    pid_t pid;

    (void)state;
    assert_int_equal(rp_claim_local_parse("local:abc-def:42:123", boot, &pid,
                                          &ticks),
                     RP_OK);
    assert_string_equal(boot, "abc-def");
    assert_int_equal(pid, 42);
    assert_true(ticks == 123);
    assert_int_equal(rp_claim_local_parse("cloudrun:x", boot, &pid, &ticks),
                     RP_ERR_INVALID);
    assert_int_equal(rp_claim_local_parse("local::42:1", boot, &pid, &ticks),
                     RP_ERR_INVALID);
    assert_int_equal(rp_claim_local_parse("local:b:0:1", boot, &pid, &ticks),
                     RP_ERR_INVALID);
    assert_int_equal(rp_claim_local_parse("local:b:42:", boot, &pid, &ticks),
                     RP_ERR_INVALID);
    assert_int_equal(rp_claim_local_parse("local:b:42:1x", boot, &pid, &ticks),
                     RP_ERR_INVALID);
    assert_int_equal(rp_claim_local_parse("local:b:x:1", boot, &pid, &ticks),
                     RP_ERR_INVALID);
}

/* RUNPOOL_ATTEMPT reaches the spec, bounded by the claim's limit. */
static const char *attempt_env(const char *name, void *opaque)
{
    static const char *const vars[][2] = {
        {"EXECUTION_ID", "e"}, {"SESSION_ID", "s"}, {"COMMAND", "true"},
        {"TIMEOUT", "5"},      {"RUNPOOL_STATE_URL", "file:///tmp/x"},
    };

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (!strcmp(name, vars[i][0]))
            return vars[i][1];
    return !strcmp(name, "RUNPOOL_ATTEMPT") ? (const char *)opaque : NULL;
}

static void test_jobenv_attempt(void **state)
{
    rp_jobspec_t spec;
    rp_env_t env = {0};
    char es[256];

    (void)state;
    memset(&spec, 0, sizeof(spec));
    assert_int_equal(rp_jobenv_parse(attempt_env, NULL, &spec, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(spec.attempt, 1);
    rp_jobspec_clear(&spec);
    assert_int_equal(rp_jobenv_parse(attempt_env, "3", &spec, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(spec.attempt, 3);
    assert_int_equal(rp_jobenv_build(&spec, &env, es, sizeof(es)), RP_OK);
    assert_string_equal(rp_env_get(&env, "RUNPOOL_ATTEMPT"), "3");
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
    assert_int_equal(rp_jobenv_parse(attempt_env, "4", &spec, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "RUNPOOL_ATTEMPT"));
    rp_jobspec_clear(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_self_run),
        cmocka_unit_test(test_local_run),
        cmocka_unit_test(test_local_parse),
        cmocka_unit_test(test_jobenv_attempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
