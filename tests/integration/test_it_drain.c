/* integration.drain — SIGTERM drains a worker without losing anything.
 *
 * 20 sessions, each: `sleep 2` then `echo after-N`. Once several
 * executions run, both workers get SIGTERM. Each must finish what it was
 * running, publish it and exit 0 within its drain timeout; the executions
 * that were running at SIGTERM have results before any new worker starts.
 * The queued `echo` requests were left uncommitted, so two fresh workers
 * in the same group pick them up: in the end every request has a result,
 * and per session the sleep's result comes before the echo's. */
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

#include "rp_testenv.h"

#define SESSIONS 20
#define MIN_RUNNING 4 /* executions running when SIGTERM is sent */
#define WAIT_MS 90000

static void test_drain(void **state)
{
    rp_te_t *te = *state;
    static char eids[2 * SESSIONS][32];
    const char *eid_list[2 * SESSIONS];
    char running[64][RP_TE_ID_MAX + 1];
    const char *running_list[64];
    int old[2], fresh[2];
    size_t n_running = 0;
    int64_t deadline, t_term;

    old[0] = rp_te_start_worker(te);
    old[1] = rp_te_start_worker(te);
    rp_te_wait_group(te, old, 2, 30000);

    for (int s = 0; s < SESSIONS; s++) {
        char sid[32], cmd[64];

        rp_te_format(sid, sizeof(sid), "drain-s%02d", s);
        rp_te_format(eids[2 * s], sizeof(eids[0]), "drain-s%02d-sleep", s);
        rp_te_format(eids[2 * s + 1], sizeof(eids[0]), "drain-s%02d-echo", s);
        rp_te_format(cmd, sizeof(cmd), "echo after-%02d", s);
        eid_list[2 * s] = eids[2 * s];
        eid_list[2 * s + 1] = eids[2 * s + 1];
        rp_te_send_exec(te, sid, eids[2 * s], "sleep 2", 0, NULL);
        rp_te_send_exec(te, sid, eids[2 * s + 1], cmd, 0, NULL);
    }
    rp_te_flush(te);

    /* Wait until several executors run (children of our workers). */
    deadline = rp_te_now_ms() + 30000;
    while ((n_running = rp_te_running_executions(te, running, 64)) <
           MIN_RUNNING) {
        if (rp_te_now_ms() >= deadline)
            fail_msg("only %zu execution(s) running after 30 s", n_running);
        rp_te_sleep_ms(20);
    }
    if (n_running > 64)
        n_running = 64;
    for (size_t i = 0; i < n_running; i++)
        running_list[i] = running[i];
    print_message("%zu execution(s) running at SIGTERM, e.g. %s\n", n_running,
                  running[0]);

    t_term = rp_te_now_ms();
    rp_te_signal(te, old[0], SIGTERM);
    rp_te_signal(te, old[1], SIGTERM);
    for (int i = 0; i < 2; i++) {
        rp_te_proc_t *p = &te->procs[old[i]];

        if (!rp_te_wait_exit(te, old[i], RP_TE_DRAIN_TIMEOUT_S * 1000))
            fail_msg("%s still runs %d s after SIGTERM", p->name,
                     RP_TE_DRAIN_TIMEOUT_S);
        print_message("%s exited %lld ms after SIGTERM\n", p->name,
                      (long long)(rp_te_now_ms() - t_term));
        if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
            fail_msg("%s did not exit 0 (wait status %#x)", p->name,
                     (unsigned)p->status);
    }
    /* What ran at SIGTERM was finished and published by the draining
     * workers themselves: no worker is alive now. */
    rp_te_wait_results_for(te, running_list, n_running, 10000);
    for (size_t i = 0; i < n_running; i++)
        rp_te_expect(te, rp_te_wait_result(te, running_list[i], 0),
                     "succeeded", NULL);
    print_message("%zu of %d results published before the fresh workers\n",
                  rp_te_result_count(te), 2 * SESSIONS);

    /* Fresh workers in the same group take over what was left. */
    fresh[0] = rp_te_start_worker(te);
    fresh[1] = rp_te_start_worker(te);
    rp_te_wait_results_for(te, eid_list, 2 * SESSIONS, WAIT_MS);

    for (int s = 0; s < SESSIONS; s++) {
        const rp_te_msg_t *sleep_r = NULL, *echo_r = NULL;
        char want[32];

        rp_te_format(want, sizeof(want), "after-%02d\n", s);
        for (size_t i = 0; i < rp_te_result_count(te); i++) {
            const rp_te_msg_t *m = rp_te_result_at(te, i);
            const char *eid = rp_te_str(m, "execution_id");

            if (eid && !strcmp(eid, eids[2 * s])) {
                rp_te_expect(te, m, "succeeded", "");
                if (!sleep_r)
                    sleep_r = m;
            } else if (eid && !strcmp(eid, eids[2 * s + 1])) {
                rp_te_expect(te, m, "succeeded", want);
                if (!echo_r)
                    echo_r = m;
                if (!sleep_r)
                    fail_msg("%s: the echo's result came before the sleep's",
                             eids[2 * s]);
            }
        }
        assert_non_null(sleep_r);
        assert_non_null(echo_r);
    }
    print_message("%zu results for %d requests\n", rp_te_result_count(te),
                  2 * SESSIONS);
    assert_true(rp_te_alive(te, fresh[0]));
    assert_true(rp_te_alive(te, fresh[1]));
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_drain, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
