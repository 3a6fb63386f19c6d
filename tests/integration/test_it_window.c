/* integration.window — one slow session cannot grow a partition's offset
 * window without bound (--max-window).
 *
 * One worker with --max-window 4. A gated command (it waits for TMP/gate)
 * is the first request of its partition P; then 60 one-line commands in
 * sessions of their own spread over all partitions. Outside P everything
 * runs. In P exactly three more run — the window is then the gated offset
 * plus three finished ones behind it — and the worker logs
 * partition_paused naming the gated execution. When the gate opens, the
 * partition resumes and every request gets its result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_testenv.h"

#define MAX_WINDOW 4
#define N_FAST 60
#define WAIT_MS 60000
#define SETTLE_MS 2000 /* after the others: nothing more may come from P */

/* Did the worker say which execution holds partition P's window open? */
static bool log_names_gated(rp_te_t *te, int w)
{
    char *log = rp_te_read_file(te->procs[w].log_path, NULL), *line, *save;
    bool found = false;

    for (line = log ? strtok_r(log, "\n", &save) : NULL; line && !found;
         line = strtok_r(NULL, "\n", &save))
        found = strstr(line, "\"event\":\"partition_paused\"") &&
                strstr(line, "\"execution_id\":\"gated\"");
    free(log);
    return found;
}

static void test_window(void **state)
{
    rp_te_t *te = *state;
    const char *extra[] = {"--max-window", "4", NULL};
    char gate[PATH_MAX], cmd[PATH_MAX + 64];
    char eids[N_FAST][16], sids[N_FAST][16];
    const char *others[N_FAST], *in_p[N_FAST], *all[N_FAST + 1];
    rp_te_sent_t gated_sent = {0}, sent[N_FAST];
    size_t n_others = 0, n_in_p = 0, done_in_p = 0;
    int w;

    w = rp_te_start_worker_args(te, extra);
    rp_te_wait_group(te, &w, 1, 30000);
    rp_te_path(te, gate, sizeof(gate), "gate");
    rp_te_format(cmd, sizeof(cmd),
                 "while [ ! -e '%s' ]; do sleep 0.1; done; echo open", gate);
    rp_te_send_exec_sent(te, "win-gated", "gated", cmd, 0, NULL, &gated_sent);
    rp_te_flush(te);
    for (int i = 0; i < N_FAST; i++) {
        snprintf(eids[i], sizeof(eids[i]), "fast-%d", i);
        snprintf(sids[i], sizeof(sids[i]), "win-%d", i);
        rp_te_send_exec_sent(te, sids[i], eids[i], "echo ok", 0, NULL,
                             &sent[i]);
    }
    rp_te_flush(te);
    for (int i = 0; i < N_FAST; i++) {
        if (sent[i].partition == gated_sent.partition)
            in_p[n_in_p++] = eids[i];
        else
            others[n_others++] = eids[i];
        all[i] = eids[i];
    }
    all[N_FAST] = "gated";
    print_message("gated request in partition %d; %zu fast ones share it\n",
                  (int)gated_sent.partition, n_in_p);
    if (n_in_p < MAX_WINDOW)
        fail_msg("only %zu requests landed in the gated partition", n_in_p);

    /* Everything outside P runs although P is stuck. */
    rp_te_wait_results_for(te, others, n_others, WAIT_MS);
    rp_te_sleep_ms(SETTLE_MS);
    for (size_t i = 0; i < n_in_p; i++)
        if (rp_te_results_for(te, in_p[i], NULL, 0) > 0)
            done_in_p++;
    assert_int_equal(rp_te_results_for(te, "gated", NULL, 0), 0);
    print_message("while gated: %zu of %zu ran in its partition\n", done_in_p,
                  n_in_p);
    assert_int_equal(done_in_p, MAX_WINDOW - 1);
    assert_true(rp_te_log_events(te, w, "partition_paused", NULL) >= 1);
    assert_true(log_names_gated(te, w));

    /* Open the gate: the partition resumes and everything completes. */
    close(open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    rp_te_wait_results_for(te, all, N_FAST + 1, WAIT_MS);
    for (int i = 0; i < N_FAST; i++)
        rp_te_expect(te, rp_te_wait_result(te, eids[i], 0), "succeeded",
                     "ok\n");
    rp_te_expect(te, rp_te_wait_result(te, "gated", 0), "succeeded", "open\n");
    assert_true(rp_te_log_events(te, w, "partition_resumed", NULL) >= 1);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
