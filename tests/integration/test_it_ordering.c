/* integration.ordering — per-session order through two workers.
 *
 * 40 sessions x 5 requests `echo ord-sSS-N`, produced interleaved
 * (every session's request 0, then every session's request 1, ...). Each
 * result must be "succeeded" with its own stdout, carry the session as its
 * Kafka key, name one of our workers, and per session the results must
 * appear on the results topic in request order. A re-delivered request may
 * publish its result twice (at-least-once); the order is then judged by
 * first appearances, and a repeat must be identical. When the group gave
 * both workers partitions, both must have run something. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_testenv.h"

#define SESSIONS 40
#define PER_SESSION 5
#define N (SESSIONS * PER_SESSION)
#define WAIT_MS 120000

static void test_ordering(void **state)
{
    rp_te_t *te = *state;
    static char eids[N][32];
    const char *eid_list[N];
    int workers[2], holders, ran[RP_TE_PROCS_MAX] = {0};
    /* sessions_of[w]: " 00 03 ..." the sessions worker w ran requests of */
    char sessions_of[RP_TE_PROCS_MAX][SESSIONS * 3 + 1] = {{0}};
    size_t duplicates = 0, total;

    workers[0] = rp_te_start_worker(te);
    workers[1] = rp_te_start_worker(te);
    holders = rp_te_wait_group(te, workers, 2, 30000);

    for (int n = 0; n < PER_SESSION; n++) {
        for (int s = 0; s < SESSIONS; s++) {
            char sid[32], cmd[64];
            int i = n * SESSIONS + s;

            rp_te_format(sid, sizeof(sid), "ord-s%02d", s);
            rp_te_format(eids[i], sizeof(eids[i]), "ord-s%02d-%d", s, n);
            rp_te_format(cmd, sizeof(cmd), "echo %s", eids[i]);
            eid_list[i] = eids[i];
            rp_te_send_exec(te, sid, eids[i], cmd, 0, NULL);
        }
    }
    rp_te_flush(te);
    rp_te_wait_results_for(te, eid_list, N, WAIT_MS);
    total = rp_te_result_count(te);

    for (int s = 0; s < SESSIONS; s++) {
        char sid[32];
        const rp_te_msg_t *first[PER_SESSION] = {NULL};
        int next = 0; /* request number expected to appear next */
        bool ran_here[RP_TE_PROCS_MAX] = {false};

        rp_te_format(sid, sizeof(sid), "ord-s%02d", s);
        for (size_t i = 0; i < total; i++) {
            const rp_te_msg_t *m = rp_te_result_at(te, i);
            const char *msid = rp_te_str(m, "session_id");
            const char *eid = rp_te_str(m, "execution_id");
            char want[40];
            int n;

            if (!msid || strcmp(msid, sid) != 0)
                continue;
            if (!eid || strncmp(eid, sid, strlen(sid)) != 0 ||
                sscanf(eid + strlen(sid), "-%d", &n) != 1 || n < 0 ||
                n >= PER_SESSION)
                fail_msg("unexpected result in %s: %s", sid, rp_te_describe(m));
            rp_te_format(want, sizeof(want), "%s\n", eid);
            rp_te_expect(te, m, "succeeded", want);
            /* Results are keyed by session, like the requests. */
            assert_true(m->has_key);
            assert_string_equal(m->key, sid);
            if (n == next) {
                int w = rp_te_worker_by_id(te, rp_te_str(m, "worker"));

                first[n] = m;
                next++;
                ran[w]++;
                ran_here[w] = true;
            } else if (n < next) {
                /* A repeat of an earlier result: same execution, same
                 * outcome (the worker reuses the executor's record). */
                duplicates++;
                assert_string_equal(rp_te_str(m, "stdout"),
                                    rp_te_str(first[n], "stdout"));
                assert_string_equal(rp_te_str(m, "started_at"),
                                    rp_te_str(first[n], "started_at"));
            } else {
                fail_msg("%s: result of request %d appeared before request "
                         "%d's: %s", sid, n, next, rp_te_describe(m));
            }
        }
        assert_int_equal(next, PER_SESSION);
        for (int w = 0; w < RP_TE_PROCS_MAX; w++) {
            size_t len = strlen(sessions_of[w]);

            if (ran_here[w])
                rp_te_format(sessions_of[w] + len,
                             sizeof(sessions_of[w]) - len, " %02d", s);
        }
    }

    print_message("%zu results for %d requests (%zu repeated)\n", total, N,
                  duplicates);
    for (int i = 0; i < 2; i++)
        print_message("%s (%s) ran %d execution(s), sessions:%s\n",
                      te->procs[workers[i]].name,
                      te->procs[workers[i]].worker_id, ran[workers[i]],
                      sessions_of[workers[i]]);
    if (holders == 2) {
        assert_true(ran[workers[0]] > 0);
        assert_true(ran[workers[1]] > 0);
    } else {
        print_message("the group gave one worker every partition; not "
                      "checking that both took part\n");
    }
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ordering, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
