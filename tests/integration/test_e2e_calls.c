/* e2e.calls — the worker's remote calls per execution in steady state
 * (issue 9 §2; the budget is in docs/cloudrun.md, "Call budget").
 *
 * One worker on Cloud Run (the fake, template mode) and Cloud Storage
 * (fake-gcs-server), its Cloud Storage calls through a counting
 * gcs_fault_proxy.py of its own (executors and the test go direct), its
 * Cloud Run calls counted by the fake. One session: a first command (which
 * also makes the template job), then N_STEADY commands, each using what
 * the one before exported. Over those N_STEADY executions the worker makes
 * at most 4 calls per execution besides completion polling: one claim
 * write carrying the request, jobs.run, the record read and the state's
 * compare-and-swap; no state read, no listing, no request.json, no name
 * record, no claim.json read. Polling (executions.get / executions.list)
 * is counted apart and printed per execution. The worker's own count
 * (runpool_backend_api_calls_total{api="storage"}, which bench s reads)
 * must agree with the proxy's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define N_STEADY 10
#define WAIT_MS 90000
#define BUDGET 4

/* by_call[key] of the worker's proxy, 0 when absent. */
static long gcs_calls(const cJSON *stats, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(stats, "by_call"), key);

    return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static long gcs_total(const cJSON *stats)
{
    const cJSON *v;
    long n = 0;

    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(stats, "by_call"))
        n += (long)v->valuedouble;
    return n;
}

/* requests["METHOD route"] of the Cloud Run fake, 0 when absent. */
static long run_calls(const cJSON *stats, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(stats, "requests"), key);

    return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static long run_total(const cJSON *stats)
{
    const cJSON *v;
    long n = 0;

    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(stats, "requests"))
    {
        /* The fake's own endpoints are the test's, not the worker's. */
        if (v->string && !strstr(v->string, "fake."))
            n += (long)v->valuedouble;
    }
    return n;
}

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
    char **buf = opaque;
    size_t have = *buf ? strlen(*buf) : 0, add = size * n;
    char *grown = realloc(*buf, have + add + 1);

    if (!grown)
        return 0;
    memcpy(grown + have, p, add);
    grown[have + add] = '\0';
    *buf = grown;
    return add;
}

/* The worker's runpool_backend_api_calls_total{api="storage",...}, summed. */
static long worker_storage_calls(int port)
{
    static const char series[] = "runpool_backend_api_calls_total{api=\"storage\"";
    char url[64], *text = NULL, *line, *save = NULL;
    CURL *c = curl_easy_init();
    long n = 0;

    assert_non_null(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &text);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(c) != CURLE_OK || !text)
        fail_msg("GET %s failed", url);
    curl_easy_cleanup(c);
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        const char *v = strrchr(line, ' ');

        if (!strncmp(line, series, sizeof(series) - 1) && v)
            n += strtol(v + 1, NULL, 10);
    }
    free(text);
    return n;
}

static void test_calls(void **state)
{
    rp_te_t *te = *state;
    char url[256], eid[32], cmd[64], out[32];
    char eids[N_STEADY][RP_TE_ID_MAX + 1];
    const char *eid_ptrs[N_STEADY];
    cJSON *g0, *g1, *r0, *r1;
    long gcs, run, polls, per_kind[5];
    static const char *const kinds[5] = {
        "insert attempt-N.json", "get result.json", "insert state.json",
        NULL, NULL};
    static const char *const never[] = {
        "get state.json",        "list attempt",
        "get claim.json",        "insert request.json",
        "insert attempt-N.execution.json", "get attempt-N.json"};
    static const char *const listen[] = {"--http-listen", "127.0.0.1:0", NULL};
    long m0, m1;
    int worker, port;

    rp_te_cloud_start(te, "template");
    rp_te_cloud_worker_gcs_proxy(te, url, sizeof(url));
    worker = rp_te_start_worker_args(te, listen);
    port = rp_te_http_port(te, worker);
    rp_te_wait_group(te, &worker, 1, 60000);

    /* The first command of the session: not steady state. */
    rp_te_send_exec(te, "calls-1", "calls-0", "export N=0", 0, NULL);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "calls-0", WAIT_MS), "succeeded",
                 "");

    g0 = rp_te_cloud_proxy_stats_at(url);
    r0 = rp_te_cloud_stats(te);
    m0 = worker_storage_calls(port);
    for (int i = 0; i < N_STEADY; i++) {
        snprintf(eid, sizeof(eid), "calls-%d", i + 1);
        snprintf(eids[i], RP_TE_ID_MAX + 1, "%s", eid);
        eid_ptrs[i] = eids[i];
        snprintf(cmd, sizeof(cmd), "export N=$((N+1)); echo $N");
        rp_te_send_exec(te, "calls-1", eid, cmd, 0, NULL);
    }
    rp_te_flush(te);
    rp_te_wait_results_for(te, eid_ptrs, N_STEADY, WAIT_MS);
    for (int i = 0; i < N_STEADY; i++) {
        snprintf(out, sizeof(out), "%d\n", i + 1);
        rp_te_expect(te, rp_te_need_result(te, eids[i], WAIT_MS), "succeeded",
                     out);
        if (rp_te_cloud_runs(te, eids[i]) != 1)
            fail_msg("%s ran %ld times on Cloud Run", eids[i],
                     rp_te_cloud_runs(te, eids[i]));
    }
    g1 = rp_te_cloud_proxy_stats_at(url);
    r1 = rp_te_cloud_stats(te);
    m1 = worker_storage_calls(port);

    gcs = gcs_total(g1) - gcs_total(g0);
    polls = run_calls(r1, "GET executions.get") -
            run_calls(r0, "GET executions.get") +
            run_calls(r1, "GET executions.list") -
            run_calls(r0, "GET executions.list");
    run = run_total(r1) - run_total(r0) - polls;
    for (int k = 0; kinds[k]; k++)
        per_kind[k] = gcs_calls(g1, kinds[k]) - gcs_calls(g0, kinds[k]);
    print_message("steady state, %d executions: Cloud Storage %ld (claim "
                  "%ld, record %ld, state %ld), Cloud Run %ld (jobs.run "
                  "%ld), polling %ld: %.2f calls per execution + %.2f "
                  "polls\n",
                  N_STEADY, gcs, per_kind[0], per_kind[1], per_kind[2], run,
                  run_calls(r1, "POST jobs.run") -
                      run_calls(r0, "POST jobs.run"),
                  polls, (double)(gcs + run) / N_STEADY,
                  (double)polls / N_STEADY);
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (gcs_calls(g1, never[i]) - gcs_calls(g0, never[i]))
            fail_msg("steady state made %ld '%s' calls",
                     gcs_calls(g1, never[i]) - gcs_calls(g0, never[i]),
                     never[i]);
    /* Exactly one of each per execution, and nothing else. */
    for (int k = 0; kinds[k]; k++)
        assert_int_equal(per_kind[k], N_STEADY);
    assert_int_equal(run_calls(r1, "POST jobs.run") -
                         run_calls(r0, "POST jobs.run"),
                     N_STEADY);
    assert_true(gcs + run <= (long)BUDGET * N_STEADY);
    /* The worker counts what the proxy saw. */
    assert_int_equal(m1 - m0, gcs);
    cJSON_Delete(g0);
    cJSON_Delete(g1);
    cJSON_Delete(r0);
    cJSON_Delete(r1);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
