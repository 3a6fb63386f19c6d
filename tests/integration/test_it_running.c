/* integration.running — --max-running bounds the executions in progress,
 * and a drain leaves the ones still waiting for a slot to the next owner.
 *
 * One worker with --max-running 3; 12 sessions x 2 `sleep 0.5`. No more
 * than 3 commands ever run at once (their own [started_at, finished_at)
 * intervals, from the results), yet at least 2 do. The worker gets SIGTERM
 * while most requests still wait for a slot: it exits 0 at once, without
 * starting them; a fresh worker answers every request, each session's two
 * in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "rp_testenv.h"

#define MAX_RUNNING 3
#define N_SESSIONS 12
#define N_EXEC (2 * N_SESSIONS)
#define WAIT_MS 90000

/* "2026-12-01T21:54:43.713Z" -> ms since the epoch; fails the test when it
 * is not that shape. */
static int64_t ts_ms(const rp_te_msg_t *m, const char *field)
{
    const char *v = rp_te_str(m, field);
    struct tm tm;
    const char *rest;
    int ms = 0;

    memset(&tm, 0, sizeof(tm));
    if (!v || !(rest = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm)))
        fail_msg("%s is not a timestamp: %s", field, rp_te_describe(m));
    if (*rest == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Most of the [start, finish) intervals open at one instant. */
static int peak_overlap(const int64_t *start, const int64_t *finish, int n)
{
    int peak = 0;

    for (int i = 0; i < n; i++) {
        int open = 0;

        for (int j = 0; j < n; j++)
            if (start[j] <= start[i] && finish[j] > start[i])
                open++;
        if (open > peak)
            peak = open;
    }
    return peak;
}

static void test_running(void **state)
{
    rp_te_t *te = *state;
    const char *extra[] = {"--max-running", "3", NULL};
    char eids[N_EXEC][16], sid[16];
    const char *eid_ptrs[N_EXEC];
    int64_t start[N_EXEC], finish[N_EXEC], t0;
    int w1, w2, peak, n_before;

    w1 = rp_te_start_worker_args(te, extra);
    rp_te_wait_group(te, &w1, 1, 30000);
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < N_SESSIONS; s++) {
            int i = k * N_SESSIONS + s;

            snprintf(sid, sizeof(sid), "run-%d", s);
            snprintf(eids[i], sizeof(eids[i]), "run-%d-%d", s, k);
            eid_ptrs[i] = eids[i];
            rp_te_send_exec(te, sid, eids[i], "sleep 0.5", 0, NULL);
        }
    }
    rp_te_flush(te);

    /* Once the first results are in, most requests still wait: stop. */
    if (!rp_te_wait_result_count(te, 1, WAIT_MS))
        fail_msg("no result in %d ms", WAIT_MS);
    rp_te_signal(te, w1, SIGTERM);
    t0 = rp_te_now_ms();
    if (!rp_te_wait_exit(te, w1, 20000))
        fail_msg("worker-1 did not exit within 20 s of SIGTERM");
    assert_true(WIFEXITED(te->procs[w1].status));
    assert_int_equal(WEXITSTATUS(te->procs[w1].status), 0);
    n_before = (int)rp_te_result_count(te);
    print_message("worker-1 exited %lld ms after SIGTERM with %d results "
                  "published\n", (long long)(rp_te_now_ms() - t0), n_before);
    /* It finished what ran (at most 3 more) and started nothing else. */
    assert_true(n_before <= 2 * MAX_RUNNING);

    w2 = rp_te_start_worker_args(te, extra);
    rp_te_wait_results_for(te, eid_ptrs, N_EXEC, WAIT_MS);
    for (int i = 0; i < N_EXEC; i++) {
        const rp_te_msg_t *m = rp_te_wait_result(te, eids[i], 0);

        rp_te_expect(te, m, "succeeded", "");
        start[i] = ts_ms(m, "started_at");
        finish[i] = ts_ms(m, "finished_at");
    }
    /* Per session, the second ran after the first. */
    for (int s = 0; s < N_SESSIONS; s++)
        assert_true(start[N_SESSIONS + s] >= finish[s]);
    peak = peak_overlap(start, finish, N_EXEC);
    print_message("peak commands running at once: %d (limit %d)\n", peak,
                  MAX_RUNNING);
    assert_true(peak <= MAX_RUNNING);
    assert_true(peak >= 2);
    (void)w2;
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_running, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
