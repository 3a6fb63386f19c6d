/* integration.metrics — the worker's /metrics, /healthz and /readyz.
 *
 * One worker with --http-listen 127.0.0.1:0 (the port it logs). Known
 * traffic: OK echo requests, one failing command (exit 3), one bad input
 * (valid ids, no "v": a "rejected" result and a DLQ copy). Once every
 * result arrived, /metrics (scraped with libcurl, validated by promtool
 * check metrics from Debian's prometheus 2.42 — the test fails if it is
 * missing) must count exactly that: consumed, results per status and
 * code, DLQ per reason, stage histograms with one observation per
 * execution. /healthz is 200; /readyz is 200 once assigned and 503 while
 * the worker drains a running job after SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_testenv.h"

#define N_OK 6
#define WAIT_MS 60000

typedef struct body {
    char *p;
    size_t len;
} body_t;

static size_t on_data(char *d, size_t sz, size_t n, void *arg)
{
    body_t *b = arg;
    char *np = realloc(b->p, b->len + sz * n + 1);
    assert_non_null(np);
    b->p = np;
    memcpy(b->p + b->len, d, sz * n);
    b->len += sz * n;
    b->p[b->len] = '\0';
    return sz * n;
}

/* GET http://127.0.0.1:port/path; returns the status, body in *out. */
static long http_get(int port, const char *path, char **out, char *ctype,
                     size_t ctype_size)
{
    char url[128];
    body_t b = {calloc(1, 1), 0};
    long code = 0;
    CURL *c = curl_easy_init();

    assert_non_null(c);
    rp_te_format(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (ctype) {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        rp_te_format(ctype, ctype_size, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    if (out)
        *out = b.p;
    else
        free(b.p);
    return code;
}

/* Scrape until the series has the wanted value (results are counted
 * when their transaction commits, a moment after the collector sees
 * them); returns the last text (caller frees). */
static char *scrape_until(int port, const char *series, double want)
{
    int64_t deadline = rp_te_now_ms() + 10000;
    char *text = NULL;
    for (;;) {
        free(text);
        assert_int_equal(http_get(port, "/metrics", &text, NULL, 0), 200);
        if (rp_te_metric(text, series) == want || rp_te_now_ms() > deadline)
            return text;
        rp_te_sleep_ms(100);
    }
}

/* promtool on PATH (the rig's spawn execs a full path). */
static void find_promtool(char *out, size_t n)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (len && len < sizeof dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
            rp_te_format(out, n, "%s/promtool", dir);
            if (access(out, X_OK) == 0)
                return;
        }
        path += len + (path[len] == ':');
    }
    fail_msg("promtool is not on PATH: install Debian's prometheus=2.42.* "
             "(scripts/install-test-deps.sh)");
}

static void promtool_check(rp_te_t *te, const char *text)
{
    char promtool[PATH_MAX];
    find_promtool(promtool, sizeof promtool);
    char in[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
    rp_te_path(te, in, sizeof in, "metrics.txt");
    rp_te_path(te, out, sizeof out, "promtool.out");
    rp_te_path(te, err, sizeof err, "promtool.err");
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    char *const argv[] = {promtool, "check", "metrics", NULL};
    int st = rp_te_run(te, argv, in, out, err, 30000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *e = rp_te_read_file(err, NULL), *o = rp_te_read_file(out, NULL);
        fail_msg("promtool check metrics failed (wait status %#x; install "
                 "Debian's prometheus=2.42.*: scripts/install-test-deps.sh):\n%s%s",
                 (unsigned)st, o ? o : "", e ? e : "");
    }
}

static void test_metrics(void **state)
{
    rp_te_t *te = *state;
    const char *extra[] = {"--http-listen", "127.0.0.1:0", NULL};
    char eids[N_OK + 2][32];
    const char *eid_list[N_OK + 2];
    char ctype[128], series[256], *text = NULL;

    int w = rp_te_start_worker_args(te, extra);
    int port = rp_te_http_port(te, w);
    print_message("worker serves on port %d\n", port);
    assert_int_equal(http_get(port, "/healthz", NULL, NULL, 0), 200);
    assert_int_equal(http_get(port, "/nope", NULL, NULL, 0), 404);
    rp_te_wait_group(te, &w, 1, 30000);
    int64_t deadline = rp_te_now_ms() + 10000;
    while (http_get(port, "/readyz", NULL, NULL, 0) != 200) {
        if (rp_te_now_ms() > deadline)
            fail_msg("/readyz not 200 after the assignment");
        rp_te_sleep_ms(100);
    }

    for (int i = 0; i < N_OK; i++) {
        char sid[32], cmd[32];
        rp_te_format(sid, sizeof sid, "met-s%d", i % 3);
        rp_te_format(eids[i], sizeof eids[i], "met-ok-%d", i);
        rp_te_format(cmd, sizeof cmd, "echo %d", i);
        eid_list[i] = eids[i];
        rp_te_send_exec(te, sid, eids[i], cmd, 0, NULL);
    }
    rp_te_format(eids[N_OK], sizeof eids[0], "met-fail");
    eid_list[N_OK] = eids[N_OK];
    rp_te_send_exec(te, "met-s9", eids[N_OK], "exit 3", 0, NULL);
    const char *bad = "{\"execution_id\":\"met-bad\",\"session_id\":\"met-s8\","
                      "\"command\":\"true\"}";
    rp_te_send_raw(te, "met-s8", 6, bad, strlen(bad), NULL);
    rp_te_format(eids[N_OK + 1], sizeof eids[0], "met-bad");
    eid_list[N_OK + 1] = eids[N_OK + 1];
    rp_te_flush(te);
    rp_te_wait_results_for(te, eid_list, N_OK + 2, WAIT_MS);
    assert_true(rp_te_wait_dlq(te, 1, WAIT_MS));

    /* Results are counted when their transaction commits; the devbroker
     * may show them to the collector a moment before. */
    free(scrape_until(port, "runpool_dlq_messages_total{reason=\"invalid_request\"}", 1));
    free(scrape_until(port, "runpool_results_total{status=\"succeeded\",code=\"none\"}", N_OK));
    free(scrape_until(port, "runpool_results_total{status=\"failed\",code=\"none\"}", 1));
    text = scrape_until(port, "runpool_end_to_end_seconds_count", N_OK + 1);
    assert_int_equal(http_get(port, "/metrics", NULL, ctype, sizeof ctype), 200);
    assert_non_null(strstr(ctype, "text/plain; version=0.0.4"));
    promtool_check(te, text);

    assert_true(rp_te_metric(text, "runpool_requests_consumed_total") == N_OK + 2);
    assert_true(rp_te_metric(text, "runpool_results_total{status=\"succeeded\",code=\"none\"}") == N_OK);
    assert_true(rp_te_metric(text, "runpool_results_total{status=\"failed\",code=\"none\"}") == 1);
    assert_true(rp_te_metric(text, "runpool_results_total{status=\"rejected\",code=\"invalid_request\"}") == 1);
    assert_true(rp_te_metric(text, "runpool_dlq_messages_total{reason=\"invalid_request\"}") == 1);
    const char *stages[] = {"queue_wait", "state_load", "run", "state_save", "publish"};
    for (size_t i = 0; i < 5; i++) {
        rp_te_format(series, sizeof series,
                     "runpool_stage_duration_seconds_count{stage=\"%s\"}", stages[i]);
        if (rp_te_metric(text, series) != N_OK + 1)
            fail_msg("%s = %g, want %d\n%s", series, rp_te_metric(text, series), N_OK + 1, text);
    }
    assert_true(rp_te_metric(text, "runpool_end_to_end_seconds_count") == N_OK + 1);
    /* One load per session (met-s0..s2, met-s9): a session's second
     * command starts fresh from the session cache, with no load step
     * (docs/worker.md, "Fresh"). */
    assert_true(rp_te_metric(text, "runpool_state_operations_total{op=\"load\",outcome=\"ok\"}") == 3 + 1);
    assert_true(rp_te_metric(text, "runpool_state_operations_total{op=\"save\",outcome=\"ok\"}") == N_OK + 1);
    assert_true(rp_te_metric(text, "runpool_commit_duration_seconds_count{kind=\"commit_transaction\",outcome=\"ok\"}") >= 1);
    assert_true(rp_te_metric(text, "runpool_rebalances_total{kind=\"assign\"}") >= 1);
    assert_true(rp_te_metric(text, "runpool_partitions_assigned") == RP_TE_PARTITIONS);
    assert_true(rp_te_metric(text, "runpool_executions_inflight") == 0);
    assert_true(rp_te_metric(text, "runpool_loop_lag_seconds_count") > 0);
    /* No execution or session id is ever a label. */
    assert_null(strstr(text, "met-"));
    free(text);

    /* Consumer lag from librdkafka's statistics (every 5 s): all caught up. */
    deadline = rp_te_now_ms() + 20000;
    for (int ok = 0; !ok;) {
        assert_int_equal(http_get(port, "/metrics", &text, NULL, 0), 200);
        ok = 1;
        for (int p = 0; p < RP_TE_PARTITIONS; p++) {
            rp_te_format(series, sizeof series,
                         "runpool_consumer_lag{partition=\"%d\"}", p);
            ok &= rp_te_metric(text, series) == 0;
        }
        if (!ok && rp_te_now_ms() > deadline)
            fail_msg("consumer lag not 0 on every partition after 20 s:\n%s", text);
        free(text);
        if (!ok)
            rp_te_sleep_ms(200);
    }

    /* A second worker joins: the partitions the first gives up read -1
     * there (their lag is the new owner's to report), the ones it keeps
     * their real lag. Then it leaves and the first gets all back. */
    {
        int both[2] = {w, rp_te_start_worker(te)};
        double held = -1;
        int unknown = 0;

        if (rp_te_wait_group(te, both, 2, 30000) != 2)
            fail_msg("the second worker got no partitions");
        deadline = rp_te_now_ms() + 20000;
        for (;;) {
            assert_int_equal(http_get(port, "/metrics", &text, NULL, 0), 200);
            held = rp_te_metric(text, "runpool_partitions_assigned");
            unknown = 0;
            for (int p = 0; p < RP_TE_PARTITIONS; p++) {
                rp_te_format(series, sizeof series,
                             "runpool_consumer_lag{partition=\"%d\"}", p);
                unknown += rp_te_metric(text, series) == -1;
            }
            if (held > 0 && held < RP_TE_PARTITIONS &&
                unknown == RP_TE_PARTITIONS - (int)held)
                break;
            if (rp_te_now_ms() > deadline)
                fail_msg("after the rebalance: %g partitions held, %d lag "
                         "series at -1 (want %g):\n%s", held, unknown,
                         RP_TE_PARTITIONS - held, text);
            free(text);
            rp_te_sleep_ms(200);
        }
        free(text);
        rp_te_signal(te, both[1], SIGTERM);
        assert_true(rp_te_wait_exit(te, both[1], 30000));
        text = scrape_until(port, "runpool_partitions_assigned", RP_TE_PARTITIONS);
        assert_true(rp_te_metric(text, "runpool_partitions_assigned") == RP_TE_PARTITIONS);
        free(text);
    }

    /* Drain: a running job holds the worker after SIGTERM; not ready. */
    rp_te_send_exec(te, "met-s7", "met-sleep", "sleep 4", 0, NULL);
    rp_te_flush(te);
    char running[4][RP_TE_ID_MAX + 1];
    deadline = rp_te_now_ms() + 20000;
    while (rp_te_running_executions(te, running, 4) < 1) {
        if (rp_te_now_ms() > deadline)
            fail_msg("met-sleep never ran");
        rp_te_sleep_ms(20);
    }
    assert_int_equal(http_get(port, "/readyz", NULL, NULL, 0), 200);
    rp_te_signal(te, w, SIGTERM);
    deadline = rp_te_now_ms() + 3000;
    long code = 0;
    char *body = NULL;
    while ((code = http_get(port, "/readyz", &body, NULL, 0)) == 200 &&
           rp_te_now_ms() < deadline) {
        free(body);
        body = NULL;
        rp_te_sleep_ms(20);
    }
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "draining"));
    free(body);
    assert_int_equal(http_get(port, "/healthz", NULL, NULL, 0), 200);
    assert_true(rp_te_alive(te, w)); /* still draining the sleep */
    assert_true(rp_te_wait_exit(te, w, RP_TE_DRAIN_TIMEOUT_S * 1000));
    rp_te_proc_t *p = &te->procs[w];
    assert_true(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);
    rp_te_expect(te, rp_te_need_result(te, "met-sleep", 10000), "succeeded", "");
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics, rp_te_setup, rp_te_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
