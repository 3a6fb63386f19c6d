/* e2e.reattach — Cloud Run executions outlive the worker that started
 * them, and jobs.run replies get lost; still exactly one run each.
 *
 * Two workers on Cloud Run (the fake, template mode) and Cloud Storage
 * (fake-gcs-server), real Kafka. The first two jobs.run calls are carried
 * out by the fake but their replies are lost (connection closed): the
 * worker must find those executions (executions.list, matching
 * EXECUTION_ID) instead of running them again. While a dozen sessions run
 * `sleep 30`, the worker holding the most partitions is killed with SIGKILL
 * and a third worker starts: the next owners re-attach to the executions
 * already running (executions/{id}/attempt-{n}.execution.json) and
 * publish their results. Each session's second command sees the variable the first
 * exported, and the fake shows exactly one execution per execution id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define N_SESSIONS 12
#define RUNNING_BEFORE_KILL 6 /* executions running in the fake */
#define WAIT_MS 150000
/* Longer than the killed worker's partitions take to move (session
 * timeout 6 s + rebalance: ~8 s on Kafka, up to ~20 s on the dev broker,
 * whose coordinator waits a session timeout per rebalance), so its
 * executions still run at the takeover. */
#define SLEEP_S 30

static long stat_int(rp_te_t *te, const char *name)
{
    cJSON *stats = rp_te_cloud_stats(te);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(stats, name);
    long n = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;

    cJSON_Delete(stats);
    return n;
}

static void test_reattach(void **state)
{
    rp_te_t *te = *state;
    char eids[2 * N_SESSIONS][RP_TE_ID_MAX + 1];
    const char *eid_ptrs[2 * N_SESSIONS];
    char sid[32], cmd[96], out[32];
    int workers[2], victim, most = -1, reattached = 0, started_by_victim;
    int64_t deadline;
    const rp_te_msg_t *all[8];

    rp_te_cloud_start(te, "template");
    /* Done by Cloud Run, reply lost: the two first jobs.run calls. */
    rp_te_cloud_config(te, "{\"faults\":[{\"route\":\"jobs.run\",\"count\":2,"
                           "\"after\":true,\"drop\":true}]}");
    workers[0] = rp_te_start_worker(te);
    workers[1] = rp_te_start_worker(te);
    rp_te_wait_group(te, workers, 2, 60000);

    for (int s = 0; s < N_SESSIONS; s++) {
        snprintf(sid, sizeof(sid), "ra-%d", s);
        snprintf(eids[2 * s], RP_TE_ID_MAX + 1, "ra-%d-1", s);
        snprintf(eids[2 * s + 1], RP_TE_ID_MAX + 1, "ra-%d-2", s);
        snprintf(cmd, sizeof(cmd), "export K=v-%d; sleep %d", s, SLEEP_S);
        rp_te_send_exec(te, sid, eids[2 * s], cmd, 0, NULL);
        rp_te_send_exec(te, sid, eids[2 * s + 1], "echo $K", 0, NULL);
        eid_ptrs[2 * s] = eids[2 * s];
        eid_ptrs[2 * s + 1] = eids[2 * s + 1];
    }
    rp_te_flush(te);

    /* Kill the busiest worker once executions run on Cloud Run. */
    deadline = rp_te_now_ms() + 60000;
    while (stat_int(te, "executions_not_done") < RUNNING_BEFORE_KILL) {
        if (rp_te_now_ms() > deadline)
            fail_msg("fewer than %d executions running after 60 s",
                     RUNNING_BEFORE_KILL);
        rp_te_check_procs(te);
        rp_te_sleep_ms(100);
    }
    victim = workers[0];
    for (int i = 0; i < 2; i++) {
        int n = rp_te_worker_partitions(te, workers[i], NULL);

        if (n > most) {
            most = n;
            victim = workers[i];
        }
    }
    /* Give the victim a moment to record the names of what it started. */
    rp_te_sleep_ms(500);
    started_by_victim = rp_te_log_events(te, victim, "cloudrun_run", NULL);
    print_message("killing %s (%d partitions, started %d) with %ld "
                  "executions running\n",
                  te->procs[victim].name, most, started_by_victim,
                  stat_int(te, "executions_not_done"));
    rp_te_signal(te, victim, SIGKILL);
    if (!rp_te_wait_exit(te, victim, 10000))
        fail_msg("the killed worker is still there");
    rp_te_start_worker(te);

    rp_te_wait_results_for(te, eid_ptrs, 2 * N_SESSIONS, WAIT_MS);
    for (int s = 0; s < N_SESSIONS; s++) {
        for (int k = 0; k < 2; k++) {
            const char *eid = eids[2 * s + k];
            size_t n = rp_te_results_for(te, eid, all, 8);
            long runs = rp_te_cloud_runs(te, eid);

            snprintf(out, sizeof(out), "v-%d\n", s);
            /* A result published but not committed before the kill comes
             * again from the next owner: the same record, reused. */
            for (size_t i = 0; i < n && i < 8; i++)
                rp_te_expect(te, all[i], "succeeded", k ? out : "");
            if (runs != 1)
                fail_msg("%s ran %ld times on Cloud Run", eid, runs);
        }
    }
    /* The lost replies were found by listing the job's executions, and the
     * killed worker's executions were taken over, not run again. */
    assert_true(rp_te_cloud_count_requests(te, "executions.list", 200) >= 1);
    for (int i = 0; i < te->n_procs; i++) {
        if (te->procs[i].kind == RP_TE_WORKER && i != victim)
            reattached += rp_te_log_events(te, i, "cloudrun_reattach",
                                           "re-attaching to");
    }
    /* "re-attaching to NAME": taken over from the attempt record (the
     * lost replies are "found" by listing instead). */
    print_message("re-attached from records by the other workers: %d "
                  "(the victim had started %d)\n",
                  reattached, started_by_victim);
    assert_true(started_by_victim >= 1);
    assert_true(reattached >= 1);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reattach, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
