/* e2e.per_execution — the per-execution job mode end to end.
 *
 * One worker with RUNPOOL_CLOUD_RUN_JOB_MODE=per-execution against Cloud
 * Run (the fake) and Cloud Storage (fake-gcs-server), real Kafka: each
 * execution is a job of its own, created, run and deleted. Sessions carry
 * cwd and env across those jobs; a failing command is "failed" with its
 * exit code; afterwards no job is left behind, and each execution id ran
 * exactly once. */
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

#define N_SESSIONS 3
#define WAIT_MS 90000

/* Jobs the fake still has, by listing them as a client would. */
static int jobs_left(rp_te_t *te)
{
    char path[256];
    long status = 0;
    cJSON *reply;
    int n;

    rp_te_format(path, sizeof(path), "/v2/projects/%s/locations/%s/jobs",
                 RP_TE_CLOUD_PROJECT, RP_TE_CLOUD_REGION);
    reply = rp_te_cloud_call(te, "GET", path, NULL, &status);
    if (status != 200)
        fail_msg("GET %s: HTTP %ld", path, status);
    n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "jobs"));
    cJSON_Delete(reply);
    return n;
}

static void test_per_execution(void **state)
{
    rp_te_t *te = *state;
    char sid[32], eid[32], cmd[128], dir[PATH_MAX], rel[64];
    char expect[PATH_MAX + 64];
    const char *eids[3 * N_SESSIONS + 1];
    char names[3 * N_SESSIONS + 1][32];
    const rp_te_msg_t *m;
    long long code;
    int64_t deadline;
    int w, n = 0;

    rp_te_cloud_start(te, "per-execution");
    w = rp_te_start_worker(te);
    rp_te_wait_group(te, &w, 1, 60000);

    for (int s = 0; s < N_SESSIONS; s++) {
        snprintf(sid, sizeof(sid), "pe-%d", s);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s && cd %s", sid, sid);
        snprintf(names[n], sizeof(names[n]), "pe-%d-a", s);
        rp_te_send_exec(te, sid, names[n], cmd, 0, NULL);
        eids[n] = names[n], n++;
        snprintf(cmd, sizeof(cmd), "export WHO=pe-%d", s);
        snprintf(names[n], sizeof(names[n]), "pe-%d-b", s);
        rp_te_send_exec(te, sid, names[n], cmd, 0, NULL);
        eids[n] = names[n], n++;
        snprintf(names[n], sizeof(names[n]), "pe-%d-c", s);
        rp_te_send_exec(te, sid, names[n], "pwd; echo $WHO", 0, NULL);
        eids[n] = names[n], n++;
    }
    snprintf(names[n], sizeof(names[n]), "pe-fail");
    rp_te_send_exec(te, "pe-fail", names[n], "exit 7", 0, NULL);
    eids[n] = names[n], n++;
    rp_te_flush(te);
    rp_te_wait_results_for(te, eids, (size_t)n, WAIT_MS);

    for (int s = 0; s < N_SESSIONS; s++) {
        snprintf(eid, sizeof(eid), "pe-%d-a", s);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", "");
        snprintf(eid, sizeof(eid), "pe-%d-b", s);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", "");
        snprintf(eid, sizeof(eid), "pe-%d-c", s);
        snprintf(rel, sizeof(rel), "workspace/pe-%d", s);
        rp_te_path(te, dir, sizeof(dir), rel);
        rp_te_format(expect, sizeof(expect), "%s\npe-%d\n", dir, s);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", expect);
    }
    m = rp_te_need_result(te, "pe-fail", WAIT_MS);
    rp_te_expect(te, m, "failed", "");
    assert_true(rp_te_int(m, "exit_code", &code));
    assert_int_equal(code, 7);

    /* One job per execution, each created once and deleted after. */
    for (int i = 0; i < n; i++) {
        long runs = rp_te_cloud_runs(te, eids[i]);

        if (runs != 1)
            fail_msg("%s ran %ld times on Cloud Run", eids[i], runs);
    }
    assert_int_equal(rp_te_cloud_count_requests(te, "jobs.create", 200), n);
    deadline = rp_te_now_ms() + 30000;
    while (jobs_left(te) > 0) {
        if (rp_te_now_ms() > deadline)
            fail_msg("%d jobs still exist 30 s after the last result",
                     jobs_left(te));
        rp_te_sleep_ms(200);
    }
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_execution, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
