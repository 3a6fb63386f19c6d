/* e2e.devbroker.simulated — the Cloud Run fake's simulated image
 * (tests/fakes/cloudrun/simulated.py) is, to the worker, a real executor.
 *
 * 1. A real container (runpool-executor) runs `cd DIR && export SIM_A=1`:
 *    its record and claim in Cloud Storage are the reference.
 * 2. The image becomes simulated (/_fake/config simulated_images): the
 *    same session's next execution runs no process. The worker publishes a
 *    "succeeded" result with the simulation's stdout, the cwd the session
 *    had (read from its state, as the executor reads it), and saves the
 *    session state again. The simulated record has exactly the reference
 *    record's members, in the same order, passes
 *    schemas/executor-result.schema.json, and carries the session env;
 *    the claim has the reference claim's members and names the Cloud Run
 *    execution as the executor's does.
 * 3. A new session on the simulated image: succeeded, state created.
 * 4. An execution past its timeout on the simulated image ends as the
 *    executor ends a command it stops: at timeout_s, a "timed_out" record
 *    (exit code 143, the shell's TERM trap), reported "timed_out".
 * Throughout: one Cloud Run execution per execution id, no live process
 * while simulated tasks run, and the fake counts each simulated record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define WAIT_MS 90000
#define SIM_STDOUT "simulated\\n"

/* it/executions/EID/FILE, parsed; fails when absent or not JSON. The text
 * goes to TMP/EID-FILE for schema checks. */
static cJSON *gcs_doc(rp_te_t *te, const char *eid, const char *file,
                      char *path, size_t path_size)
{
    char name[256], rel[300];
    char *text;
    cJSON *doc;
    FILE *f;

    rp_te_format(name, sizeof(name), "%s/executions/%s/%s",
                 RP_TE_CLOUD_PREFIX, eid, file);
    if (!(text = rp_te_cloud_gcs_get(te, name, NULL)))
        fail_msg("gs://%s/%s does not exist", RP_TE_CLOUD_BUCKET, name);
    rp_te_format(rel, sizeof(rel), "%s-%s", eid, file);
    rp_te_path(te, path, path_size, rel);
    if (!(f = fopen(path, "w")) || fputs(text, f) == EOF || fclose(f) != 0)
        fail_msg("cannot write %s", path);
    if (!(doc = cJSON_Parse(text)))
        fail_msg("gs://%s/%s is not JSON: %s", RP_TE_CLOUD_BUCKET, name, text);
    free(text);
    return doc;
}

/* The same members in the same order. */
static void same_members(const cJSON *want, const cJSON *got, const char *what)
{
    const cJSON *a = want->child, *b = got->child;

    for (; a && b; a = a->next, b = b->next)
        if (strcmp(a->string, b->string) != 0)
            fail_msg("%s: member '%s' where the executor has '%s'", what,
                     b->string, a->string);
    if (a || b)
        fail_msg("%s: member '%s' %s", what, a ? a->string : b->string,
                 a ? "missing" : "that the executor does not write");
}

static const char *obj_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long stat_long(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    if (!cJSON_IsNumber(v))
        fail_msg("/_fake/stats has no %s%s%s", a, b ? "." : "", b ? b : "");
    return (long)v->valuedouble;
}

static void test_simulated(void **state)
{
    rp_te_t *te = *state;
    char dir[PATH_MAX], cfg[1024], path[PATH_MAX], want_run[512];
    cJSON *real_rec, *real_claim, *rec, *claim, *stats, *execs, *env;
    const rp_te_msg_t *m;
    const char *eids[] = {"real-1", "sim-1", "sim-2", "sim-slow"};
    int w;

    rp_te_cloud_start(te, "template");
    w = rp_te_start_worker(te);
    rp_te_wait_group(te, &w, 1, 60000);

    /* 1. The reference: a real container. */
    rp_te_path(te, dir, sizeof(dir), "workspace/s1-dir");
    {
        char cmd[PATH_MAX + 64];

        rp_te_format(cmd, sizeof(cmd), "mkdir -p %s && cd %s && export SIM_A=1",
                     dir, dir);
        rp_te_send_exec(te, "s1", "real-1", cmd, 30, NULL);
    }
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "real-1", WAIT_MS), "succeeded", "");
    real_rec = gcs_doc(te, "real-1", "result.json", path, sizeof(path));
    real_claim = gcs_doc(te, "real-1", "claim.json", path, sizeof(path));

    /* 2. The same image, simulated: no process any more. */
    rp_te_format(cfg, sizeof(cfg),
                 "{\"simulated_images\":{\"%s\":{\"duration_ms\":400,"
                 "\"stdout\":\"" SIM_STDOUT "\"}},"
                 "\"storage_emulator_host\":\"%s\"}",
                 RP_TE_CLOUD_IMAGE, te->gcs_url);
    rp_te_cloud_config(te, cfg);
    rp_te_send_exec(te, "s1", "sim-1", "echo this never runs", 30, NULL);
    rp_te_flush(te);
    m = rp_te_need_result(te, "sim-1", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "simulated\n");
    assert_string_equal(rp_te_str(m, "cwd"), dir);
    rec = gcs_doc(te, "sim-1", "result.json", path, sizeof(path));
    rp_te_validate(te, "executor-result", path);
    same_members(real_rec, rec, "simulated record");
    env = cJSON_GetObjectItemCaseSensitive(rec, "env");
    assert_non_null(obj_str(env, "SIM_A"));
    assert_string_equal(obj_str(env, "SIM_A"), "1");
    claim = gcs_doc(te, "sim-1", "claim.json", path, sizeof(path));
    same_members(real_claim, claim, "simulated claim");
    assert_non_null(obj_str(claim, "run"));
    assert_int_equal(strncmp(obj_str(claim, "run"), "cloudrun:", 9), 0);
    assert_string_equal(obj_str(claim, "job"), obj_str(real_claim, "job"));
    assert_string_equal(obj_str(claim, "execution_id"), "sim-1");
    /* The run names this execution's Cloud Run execution. */
    execs = rp_te_cloud_call(te, "GET", "/_fake/executions", NULL, NULL);
    want_run[0] = '\0';
    for (const cJSON *e = cJSON_GetObjectItemCaseSensitive(execs, "executions")
                              ->child;
         e; e = e->next) {
        const char *id = obj_str(e, "execution_id_env"), *name = obj_str(e, "name");

        if (id && name && !strcmp(id, "sim-1")) {
            const char *last = strrchr(name, '/');
            rp_te_format(want_run, sizeof(want_run), "cloudrun:%s",
                         last ? last + 1 : name);
        }
    }
    cJSON_Delete(execs);
    assert_string_equal(obj_str(claim, "run"), want_run);
    cJSON_Delete(rec);
    cJSON_Delete(claim);

    /* 3. A new session on the simulated image. */
    rp_te_send_exec(te, "s2", "sim-2", "true", 30, NULL);
    rp_te_flush(te);
    m = rp_te_need_result(te, "sim-2", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "simulated\n");
    assert_non_null(rp_te_str(m, "cwd"));
    assert_true(rp_te_str(m, "cwd")[0] == '/');
    {
        char name[256], *text;

        rp_te_format(name, sizeof(name), "%s/sessions/s2/state.json",
                     RP_TE_CLOUD_PREFIX);
        text = rp_te_cloud_gcs_get(te, name, NULL);
        assert_non_null(text);
        free(text);
    }

    /* 4. Past its timeout (1 s): stopped at 1 s as the executor stops a
     * command, "timed_out" with the shell's 143. */
    rp_te_format(cfg, sizeof(cfg),
                 "{\"simulated_images\":{\"%s\":{\"duration_ms\":60000}}}",
                 RP_TE_CLOUD_IMAGE);
    rp_te_cloud_config(te, cfg);
    rp_te_send_exec(te, "s3", "sim-slow", "sleep 60", 1, NULL);
    rp_te_flush(te);
    m = rp_te_need_result(te, "sim-slow", WAIT_MS);
    rp_te_expect(te, m, "timed_out", "");
    {
        long long code = 0, dur = 0;

        assert_true(rp_te_int(m, "exit_code", &code));
        assert_int_equal(code, 143);
        assert_true(rp_te_int(m, "duration_ms", &dur));
        assert_true(dur >= 1000 && dur < 5000);
    }
    rec = gcs_doc(te, "sim-slow", "result.json", path, sizeof(path));
    rp_te_validate(te, "executor-result", path);
    cJSON_Delete(rec);

    stats = rp_te_cloud_stats(te);
    assert_int_equal(stat_long(stats, "simulated", "records"), 3);
    assert_int_equal(stat_long(stats, "simulated", "started"), 3);
    assert_int_equal(stat_long(stats, "live_processes", NULL), 0);
    cJSON_Delete(stats);
    for (size_t i = 0; i < sizeof(eids) / sizeof(eids[0]); i++)
        if (rp_te_cloud_runs(te, eids[i]) != 1)
            fail_msg("%s ran %ld times on Cloud Run", eids[i],
                     rp_te_cloud_runs(te, eids[i]));
    cJSON_Delete(real_rec);
    cJSON_Delete(real_claim);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simulated, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
