/* e2e.faults — the cloudrun backend with both Google fakes faulting:
 * nothing lost, every request answered, no command started twice, order
 * per session kept.
 *
 * Three workers on Apache Kafka, --backend cloudrun against the Cloud Run
 * fake (template mode), state in fake-gcs-server behind
 * tests/fakes/gcs_fault_proxy.py, which every Cloud Storage client of the
 * test goes through (workers and the executors the fake runs):
 *
 *   Cloud Storage: about one write per second per object name (429
 *   rateLimitExceeded with Google's body), a lost reply (write done,
 *   connection dropped) every LOST_EVERY-th accepted write, a 503 after the
 *   write every ERR_EVERY-th, and 429 bursts of BURST_LEN_S every
 *   BURST_PERIOD_S.
 *   Cloud Run jobs.run: 504 and 500 AFTER creating the execution, and lost
 *   replies, each with the new execution missing from executions.list for
 *   a few seconds (list_lag_ms, below the rig's 12 s settle time), and 429
 *   before acting.
 *
 * Each command writes side-effect files outside the state store (TMP/marks,
 * which the executors the fake starts as local processes can reach):
 * EID.start when it starts and EID.done when it ends, and appends its
 * number to SESSION.order. So a command started twice shows as two lines,
 * whatever the state store or Kafka say. Each command also prints the
 * variable the previous command of its session exported (env carry-over in
 * order).
 *
 * While the commands run, one worker is SIGKILLed and another drained
 * with SIGTERM, each replaced: their Cloud Run executions go on, and the
 * new owners re-attach to them (or find their records) instead of
 * running them again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define N_SESSIONS 6
#define N_CMDS 5 /* per session, in order */
#define N_EXEC (N_SESSIONS * N_CMDS)
#define WAIT_MS 170000
#define RESULTS_MAX 8

/* Cloud Storage faults (gcs_fault_proxy.py flags). */
#define LOST_EVERY "9"
#define ERR_EVERY "7"
#define BURST "15:1.5" /* PERIOD_S:LEN_S */

/* Lines in TMP/marks/NAME (0 when it does not exist). */
static int mark_lines(rp_te_t *te, const char *name)
{
    char rel[PATH_MAX], path[PATH_MAX];
    char *text;
    int n = 0;

    rp_te_format(rel, sizeof(rel), "marks/%s", name);
    rp_te_path(te, path, sizeof(path), rel);
    if (!(text = rp_te_read_file(path, NULL)))
        return 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

static char *mark_text(rp_te_t *te, const char *name)
{
    char rel[PATH_MAX], path[PATH_MAX];
    char *text;

    rp_te_format(rel, sizeof(rel), "marks/%s", name);
    rp_te_path(te, path, sizeof(path), rel);
    text = rp_te_read_file(path, NULL);
    return text ? text : strdup("");
}

static long json_long(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static void test_faults(void **state)
{
    static const char *const proxy_flags[] = {
        "--lost-reply-every", LOST_EVERY, "--error-after-every", ERR_EVERY,
        "--error-status", "503", "--burst-429", BURST,
        "--burst-429-offset-s", "5", "--faults-after-s", "2", NULL};
    rp_te_t *te = *state;
    char eids[N_EXEC][RP_TE_ID_MAX + 1];
    const char *eid_ptrs[N_EXEC];
    char marks[PATH_MAX], sid[32], cmd[1024], out[32], want[64], name[96];
    const rp_te_msg_t *res[RESULTS_MAX];
    int workers[3], started_twice = 0, done_twice = 0, not_started = 0;
    long dup_results = 0, cr_dups = 0;
    int found_later = 0;
    int64_t t0;
    cJSON *ps, *fs;

    rp_te_cloud_start_proxied(te, "template", proxy_flags);
    /* jobs.run: a steady rate of "maybe started" answers (the execution is
     * made, then 504/500 or no reply, and it is listed only later), and of
     * 429s sent before acting. */
    rp_te_cloud_config(
        te, "{\"faults\":["
            "{\"route\":\"jobs.run\",\"after\":true,\"status\":504,"
            "\"list_lag_ms\":4000,\"every\":6,\"count\":-1},"
            "{\"route\":\"jobs.run\",\"after\":true,\"status\":500,"
            "\"list_lag_ms\":2000,\"every\":10,\"count\":-1},"
            "{\"route\":\"jobs.run\",\"after\":true,\"drop\":true,"
            "\"list_lag_ms\":3000,\"every\":13,\"count\":-1},"
            "{\"route\":\"jobs.run\",\"status\":429,\"every\":8,"
            "\"count\":-1}]}");
    rp_te_path(te, marks, sizeof(marks), "marks");
    if (mkdir(marks, 0755) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", marks, strerror(errno));

    for (int i = 0; i < 3; i++)
        workers[i] = rp_te_start_worker(te);
    rp_te_wait_group(te, workers, 3, 60000);

    t0 = rp_te_now_ms();
    for (int k = 1; k <= N_CMDS; k++) {
        for (int s = 0; s < N_SESSIONS; s++) {
            char *eid = eids[s * N_CMDS + k - 1];

            snprintf(sid, sizeof(sid), "fx-%d", s);
            snprintf(eid, RP_TE_ID_MAX + 1, "fx-%d-%d", s, k);
            /* start mark; order; the previous command's variable; done
             * mark last, once the command's work is over. */
            rp_te_format(cmd, sizeof(cmd),
                         "echo $$ >> %s/%s.start; echo %d >> %s/%s.order; "
                         "sleep 0.3; echo \"p=$PREV\"; export PREV=%d; "
                         "echo $$ >> %s/%s.done",
                         marks, eid, k, marks, sid, k, marks, eid);
            rp_te_send_exec(te, sid, eid, cmd, 0, NULL);
            eid_ptrs[s * N_CMDS + k - 1] = eid;
        }
    }
    rp_te_flush(te);

    /* A worker killed, then one drained, while executions run; each
     * replaced. */
    for (int f = 0; f < 2; f++) {
        size_t enough = f == 0 ? N_EXEC / 4 : N_EXEC / 2;
        int64_t until = rp_te_now_ms() + WAIT_MS / 2;

        while (rp_te_result_count(te) < enough) {
            if (rp_te_now_ms() >= until)
                fail_msg("only %zu of %d results after %d s",
                         rp_te_result_count(te), N_EXEC, WAIT_MS / 2000);
            rp_te_check_procs(te);
            rp_te_sleep_ms(100);
        }
        print_message("%zu results: %s worker %d\n", rp_te_result_count(te),
                      f == 0 ? "SIGKILL" : "SIGTERM", f);
        rp_te_signal(te, workers[f], f == 0 ? SIGKILL : SIGTERM);
        if (!rp_te_wait_exit(te, workers[f], 60000))
            fail_msg("worker %d did not exit", f);
        if (f == 1 && !(WIFEXITED(te->procs[workers[f]].status) &&
                        WEXITSTATUS(te->procs[workers[f]].status) == 0))
            fail_msg("the drained worker did not exit 0");
        workers[f] = rp_te_start_worker(te);
    }

    rp_te_wait_results_for(te, eid_ptrs, N_EXEC, WAIT_MS);
    print_message("all %d requests answered after %.1f s\n", N_EXEC,
                  (double)(rp_te_now_ms() - t0) / 1000.0);

    for (int s = 0; s < N_SESSIONS; s++) {
        char *order;

        snprintf(sid, sizeof(sid), "fx-%d", s);
        for (int k = 1; k <= N_CMDS; k++) {
            const char *eid = eids[s * N_CMDS + k - 1];
            size_t n = rp_te_results_for(te, eid, res, RESULTS_MAX);
            int starts, dones;
            long runs = rp_te_cloud_runs(te, eid);

            rp_te_format(name, sizeof(name), "%s.start", eid);
            starts = mark_lines(te, name);
            rp_te_format(name, sizeof(name), "%s.done", eid);
            dones = mark_lines(te, name);
            if (starts == 0)
                not_started++;
            if (starts > 1)
                started_twice++;
            if (dones > 1)
                done_twice++;
            if (runs > 1)
                cr_dups += runs - 1;
            if (n > 1)
                dup_results += (long)n - 1;
            if (k == 1)
                snprintf(out, sizeof(out), "p=\n");
            else
                snprintf(out, sizeof(out), "p=%d\n", k - 1);
            for (size_t i = 0; i < n && i < RESULTS_MAX; i++)
                rp_te_expect(te, res[i], "succeeded", out);
            if (starts != 1 || dones != 1)
                print_message("%s: started %d, completed %d, %ld Cloud Run "
                              "executions, %zu results\n",
                              eid, starts, dones, runs, n);
            /* 0 lost, 0 duplicate results (read_committed, Apache
             * Kafka). */
            assert_int_equal(n, 1);
        }
        /* Order per session: each command ran once, after the one before. */
        snprintf(name, sizeof(name), "%s.order", sid);
        order = mark_text(te, name);
        want[0] = '\0';
        for (int k = 1; k <= N_CMDS; k++)
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%d\n",
                     k);
        if (strcmp(order, want))
            fail_msg("session %s ran its commands as [%s], not in order once "
                     "each",
                     sid, order);
        free(order);
    }

    ps = rp_te_cloud_proxy_stats(te);
    fs = rp_te_cloud_stats(te);
    print_message("Cloud Storage faults (gcs_fault_proxy): %ld writes, %ld "
                  "throttled (1 write/s per object), %ld in 429 bursts, %ld "
                  "lost replies, %ld 503 after the write\n",
                  json_long(ps, "writes"), json_long(ps, "throttled_429"),
                  json_long(ps, "burst_429"), json_long(ps, "lost_replies"),
                  json_long(ps, "errors_after"));
    print_message("Cloud Run faults (fake): %ld injected, %ld executions "
                  "created for %d requests\n",
                  json_long(fs, "faults_injected"),
                  json_long(fs, "executions_created"), N_EXEC);
    print_message("commands not started %d, started twice %d, completed "
                  "twice %d; extra Cloud Run executions %ld; duplicate "
                  "results %ld\n",
                  not_started, started_twice, done_twice, cr_dups,
                  dup_results);
    /* The faults really happened on both sides. */
    assert_true(json_long(ps, "throttled_429") + json_long(ps, "burst_429") >=
                1);
    assert_true(json_long(ps, "lost_replies") >= 1);
    assert_true(json_long(ps, "errors_after") >= 1);
    assert_true(json_long(fs, "faults_injected") >= 3);
    cJSON_Delete(ps);
    cJSON_Delete(fs);
    /* The "maybe started" path ran: after a 5xx/504/lost reply the
     * execution was found by listing again (it was hidden at first), not
     * started a second time. */
    for (int i = 0; i < te->n_procs; i++) {
        if (te->procs[i].kind == RP_TE_WORKER)
            found_later += rp_te_log_events(te, i, "cloudrun_reattach",
                                            "found ");
    }
    print_message("executions found by listing after a maybe-started "
                  "jobs.run answer: %d\n",
                  found_later);
    assert_true(found_later >= 1);

    assert_int_equal(not_started, 0);
    assert_int_equal(started_twice, 0);
    assert_int_equal(done_twice, 0);
    /* No second Cloud Run execution either: "maybe started" was waited
     * for and found, never run again. */
    assert_int_equal(cr_dups, 0);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
