/* e2e.cloudrun — workers on Cloud Run (the fake) and Cloud Storage
 * (fake-gcs-server), template job mode, with a real Kafka.
 *
 * 1. worker-1 alone: several sessions at once, each `cd` + `export`
 *    carried across three executions (three containers), results in
 *    per-session order; a 256 KiB command (the documented limit; over
 *    Cloud Run's 32 KiB per env value) travels through
 *    its claim record executions/{id}/attempt-{n}.json, as every command
 *    does (no request.json any more): no execution
 *    or job resource shows a command (read back over the Admin API, as
 *    any project Viewer could); a failing command -> "failed" with its
 *    exit code;
 *    a command past its timeout_s -> "timed_out" (the executor stops it);
 *    an execution that never starts -> cancelled by the worker at its
 *    deadline and "timed_out". The saved state is read back with Google's
 *    google-cloud-storage client.
 * 2. worker-1 leaves (SIGTERM); worker-2 finds the template job made by
 *    worker-1: its jobs.create gets 409 ALREADY_EXISTS and it goes on.
 * 3. A burst of 429s (and some 503s) on jobs.run and executions.list: every
 *    request still gets its result, and no execution runs twice.
 * 4. Google refuses a run (403): an "error" result carrying Google's
 *    message; the next request of that session runs.
 * 5. Another writer changes a session's state while its command runs: the
 *    worker's compare-and-swap loses, the result says "state_conflict", and
 *    the other writer's state is left as it is.
 * Throughout: the fake created exactly one execution per execution id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define WAIT_MS 90000
#define N_SESSIONS 6
#define N_BURST 20
#define EIDS_MAX 128

typedef struct sent {
    char eids[EIDS_MAX][RP_TE_ID_MAX + 1];
    char sids[EIDS_MAX][RP_TE_ID_MAX + 1];
    size_t n;
} sent_t;

static sent_t g_sent;

static void send_exec(rp_te_t *te, const char *sid, const char *eid,
                      const char *command, int timeout_s)
{
    if (g_sent.n >= EIDS_MAX)
        fail_msg("more than %d executions", EIDS_MAX);
    rp_te_send_exec(te, sid, eid, command, timeout_s, NULL);
    snprintf(g_sent.eids[g_sent.n], RP_TE_ID_MAX + 1, "%s", eid);
    snprintf(g_sent.sids[g_sent.n], RP_TE_ID_MAX + 1, "%s", sid);
    g_sent.n++;
}

/* The results of each session arrived in the order its requests were sent
 * (the first result of each execution id counts). */
static void check_session_order(rp_te_t *te)
{
    for (size_t i = 0; i < g_sent.n; i++) {
        size_t last_pos = 0;
        bool first = true;

        for (size_t j = 0; j < g_sent.n; j++) {
            size_t pos;

            if (strcmp(g_sent.sids[j], g_sent.sids[i]))
                continue;
            for (pos = 0; pos < rp_te_result_count(te); pos++) {
                const char *e = rp_te_str(rp_te_result_at(te, pos),
                                          "execution_id");

                if (e && !strcmp(e, g_sent.eids[j]))
                    break;
            }
            if (pos == rp_te_result_count(te))
                fail_msg("no result for %s", g_sent.eids[j]);
            if (!first && pos < last_pos)
                fail_msg("session %s: %s's result came before an earlier "
                         "request's", g_sent.sids[j], g_sent.eids[j]);
            first = false;
            last_pos = pos;
        }
    }
}

/* The session state document at it/sessions/SID/state.json, parsed, as
 * Google's client reads it; NULL when absent. Also schema-checked. */
static cJSON *gcs_state(rp_te_t *te, const char *sid, long long *generation)
{
    char name[256], path[PATH_MAX], rel[300];
    char *text;
    cJSON *doc;
    FILE *f;

    rp_te_format(name, sizeof(name), "%s/sessions/%s/state.json",
                 RP_TE_CLOUD_PREFIX, sid);
    if (!(text = rp_te_cloud_gcs_get(te, name, generation)))
        return NULL;
    rp_te_format(rel, sizeof(rel), "state-%s.json", sid);
    rp_te_path(te, path, sizeof(path), rel);
    if (!(f = fopen(path, "w")) || fputs(text, f) == EOF || fclose(f) != 0)
        fail_msg("cannot write %s", path);
    rp_te_validate(te, "session-state", path);
    if (!(doc = cJSON_Parse(text)))
        fail_msg("gs://%s/%s is not JSON: %s", RP_TE_CLOUD_BUCKET, name, text);
    free(text);
    return doc;
}

static const char *doc_str(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long doc_int(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    if (!cJSON_IsNumber(v))
        fail_msg("state document without a numeric %s", name);
    return (long long)v->valuedouble;
}

/* The largest command, 256 KiB (the documented limit: 8 times Cloud Run's
 * 32 KiB for one env value, twice the kernel's 128 KiB for one string):
 * X='xxx...' (BIG_X_LEN x); echo ${#X}. */
#define BIG_TAIL "'; echo ${#X}"
#define BIG_X_LEN (256 * 1024 - 3 - (int)(sizeof(BIG_TAIL) - 1))
static const char *big_command(void)
{
    static char cmd[256 * 1024 + 1];

    memcpy(cmd, "X='", 3);
    memset(cmd + 3, 'x', BIG_X_LEN);
    snprintf(cmd + 3 + BIG_X_LEN, sizeof(cmd) - 3 - BIG_X_LEN, BIG_TAIL);
    assert_int_equal(strlen(cmd), 256 * 1024);
    return cmd;
}

/* What anyone with Viewer on the project sees of the execution the fake
 * made for execution id eid: its resource (the template with the
 * overrides applied) and its job, read like a real client does. The
 * command is in neither; RUNPOOL_REQUEST_REF names the document. */
static void assert_no_command_visible(rp_te_t *te, const char *eid,
                                      const char *needle)
{
    cJSON *list = rp_te_cloud_call(te, "GET", "/_fake/executions", NULL, NULL);
    cJSON *e;
    int found = 0;

    assert_non_null(list);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(list, "executions"))
    {
        cJSON *id = cJSON_GetObjectItem(e, "execution_id_env");
        cJSON *name = cJSON_GetObjectItem(e, "name");
        char path[1024], want[128];
        const char *ex;

        if (!cJSON_IsString(id) || strcmp(id->valuestring, eid) ||
            !cJSON_IsString(name))
            continue;
        found++;
        ex = strstr(name->valuestring, "/executions/");
        assert_non_null(ex);
        rp_te_format(want, sizeof(want), "executions/%s/attempt-", eid);
        for (int i = 0; i < 2; i++) {
            long status = 0;
            cJSON *r;
            char *text;

            if (i == 0)
                rp_te_format(path, sizeof(path), "/v2/%s", name->valuestring);
            else
                rp_te_format(path, sizeof(path), "/v2/%.*s",
                             (int)(ex - name->valuestring), name->valuestring);
            r = rp_te_cloud_call(te, "GET", path, NULL, &status);
            if (status != 200)
                fail_msg("GET %s: HTTP %ld", path, status);
            assert_non_null(text = cJSON_PrintUnformatted(r));
            if (strstr(text, "\"COMMAND\"") || strstr(text, needle))
                fail_msg("%s shows the command: %.300s", path, text);
            if (i == 0 && !strstr(text, want))
                fail_msg("%s has no RUNPOOL_REQUEST_REF %s", path, want);
            free(text);
            cJSON_Delete(r);
        }
    }
    cJSON_Delete(list);
    if (found != 1)
        fail_msg("%d Cloud Run executions for %s, want 1", found, eid);
}

/* Phase 1: stateful sessions, failing, timed-out and never-starting
 * executions, and one command too big for a Cloud Run env value, on
 * worker-1 alone. */
static void phase_sessions(rp_te_t *te)
{
    char sid[64], eid[64], cmd[256], expect[2 * PATH_MAX], dir[PATH_MAX];
    char rel[128], greeting[32];
    const rp_te_msg_t *m;
    long long code;
    cJSON *doc;
    long status;
    int64_t t0;

    /* An execution whose container never starts (queued for ever): its
     * timeout never begins, so it is not timed_out; the backend's queue
     * bound (RUNPOOL_CLOUD_RUN_QUEUE_MAX_S, 6 s here) cancels it and the
     * result is an error saying it never started. */
    rp_te_cloud_config(te, "{\"exec_faults\":[{\"execution_id\":\"hang-1\","
                           "\"hang\":\"start\"}]}");
    send_exec(te, "hang", "hang-1", "echo never", 1);
    send_exec(te, "fail", "fail-1", "echo out; echo oops >&2; exit 3", 0);
    send_exec(te, "slow", "slow-1", "echo started; sleep 600", 2);
    send_exec(te, "big", "big-1", big_command(), 0);
    for (int s = 1; s <= N_SESSIONS; s++) {
        snprintf(sid, sizeof(sid), "s-%d", s);
        snprintf(eid, sizeof(eid), "s-%d-a", s);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s && cd %s", sid, sid);
        send_exec(te, sid, eid, cmd, 0);
        snprintf(eid, sizeof(eid), "s-%d-b", s);
        snprintf(cmd, sizeof(cmd), "export GREETING=hi-%d", s);
        send_exec(te, sid, eid, cmd, 0);
        snprintf(eid, sizeof(eid), "s-%d-c", s);
        send_exec(te, sid, eid, "echo $GREETING > f && pwd && cat f", 0);
    }
    rp_te_flush(te);
    t0 = rp_te_now_ms();

    for (int s = 1; s <= N_SESSIONS; s++) {
        snprintf(sid, sizeof(sid), "s-%d", s);
        rp_te_format(rel, sizeof(rel), "workspace/%s", sid);
        rp_te_path(te, dir, sizeof(dir), rel);
        snprintf(eid, sizeof(eid), "s-%d-a", s);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", "");
        snprintf(eid, sizeof(eid), "s-%d-b", s);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", "");
        snprintf(eid, sizeof(eid), "s-%d-c", s);
        m = rp_te_need_result(te, eid, WAIT_MS);
        rp_te_format(expect, sizeof(expect), "%s\nhi-%d\n", dir, s);
        rp_te_expect(te, m, "succeeded", expect);
        assert_string_equal(rp_te_str(m, "cwd"), dir);

        /* Google's client reads the state the worker saved. */
        doc = gcs_state(te, sid, NULL);
        if (!doc)
            fail_msg("no state for session %s", sid);
        assert_string_equal(doc_str(doc, "session_id"), sid);
        assert_string_equal(doc_str(doc, "cwd"), dir);
        snprintf(greeting, sizeof(greeting), "hi-%d", s);
        assert_string_equal(
            doc_str(cJSON_GetObjectItemCaseSensitive(doc, "env"), "GREETING"),
            greeting);
        assert_int_equal(doc_int(doc, "execution_count"), 3);
        assert_string_equal(doc_str(doc, "last_execution_id"), eid);
        cJSON_Delete(doc);
    }

    m = rp_te_need_result(te, "fail-1", WAIT_MS);
    rp_te_expect(te, m, "failed", "out\n");
    assert_true(rp_te_int(m, "exit_code", &code));
    assert_int_equal(code, 3);
    assert_string_equal(rp_te_str(m, "stderr"), "oops\n");

    /* The big command went through the state store, not the env. */
    m = rp_te_need_result(te, "big-1", WAIT_MS);
    {
        char want[32];

        rp_te_format(want, sizeof(want), "%d\n", BIG_X_LEN);
        rp_te_expect(te, m, "succeeded", want);
    }
    /* Neither it nor a small one shows in Cloud Run's resources. */
    assert_no_command_visible(te, "big-1", "xxxxxxxxxx");
    assert_no_command_visible(te, "s-1-c", "echo $GREETING");
    {
        char *ref = rp_te_cloud_gcs_get(
            te, RP_TE_CLOUD_PREFIX "/executions/big-1/attempt-1.json", NULL);
        char *old = rp_te_cloud_gcs_get(
            te, RP_TE_CLOUD_PREFIX "/executions/big-1/request.json", NULL);

        if (!ref || !strstr(ref, "\"request\"") || !strstr(ref, "xxxxxxxxxx"))
            fail_msg("no executions/big-1/attempt-1.json holding the command");
        if (old)
            fail_msg("executions/big-1/request.json written: %.100s", old);
        free(ref);
    }

    m = rp_te_need_result(te, "slow-1", WAIT_MS);
    rp_te_expect(te, m, "timed_out", "started\n");

    m = rp_te_need_result(te, "hang-1", WAIT_MS);
    rp_te_expect(te, m, "error", NULL);
    {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(m->json, "error");
        const char *ecode = doc_str(e, "code"), *msg = doc_str(e, "message");

        if (!ecode || strcmp(ecode, "backend_failed") || !msg ||
            !strstr(msg, "never started"))
            fail_msg("hang-1: error %s: %s", ecode ? ecode : "(none)",
                     msg ? msg : "(none)");
    }
    print_message("never-started execution reported after %lld ms\n",
                  (long long)(m->received_ms - t0));
    /* Past its timeout + margin + cancel-after it was still waiting: the
     * queue bound ended it, and the worker cancelled it. */
    assert_true(m->received_ms - t0 >= 6000);
    assert_true(rp_te_cloud_count_requests(te, "executions.cancel", 200) >= 1);
    doc = rp_te_cloud_call(te, "GET", "/_fake/executions", NULL, &status);
    {
        const cJSON *e;
        bool cancelled = false;

        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc,
                                                               "executions"))
        {
            const char *id = doc_str(e, "execution_id_env");
            const char *outcome = doc_str(e, "outcome");

            if (id && !strcmp(id, "hang-1"))
                cancelled = outcome && !strcmp(outcome, "cancelled");
        }
        cJSON_Delete(doc);
        if (!cancelled)
            fail_msg("the fake does not show hang-1 as cancelled");
    }
    check_session_order(te);
}

/* Phase 3: 429s and 503s on the calls every execution makes. */
static void phase_burst(rp_te_t *te)
{
    char sid[64], eid[64], cmd[64];
    cJSON *stats;
    const cJSON *injected;

    rp_te_cloud_config(
        te, "{\"faults\":["
            "{\"route\":\"jobs.run\",\"count\":12,\"status\":429},"
            "{\"route\":\"jobs.run\",\"count\":3,\"status\":503},"
            "{\"route\":\"executions.list\",\"count\":15,\"status\":429}]}");
    for (int i = 0; i < N_BURST; i++) {
        snprintf(sid, sizeof(sid), "burst-%d", i % 10);
        snprintf(eid, sizeof(eid), "burst-%d", i);
        snprintf(cmd, sizeof(cmd), "echo %d", i);
        send_exec(te, sid, eid, cmd, 0);
    }
    rp_te_flush(te);
    for (int i = 0; i < N_BURST; i++) {
        char out[32];

        snprintf(eid, sizeof(eid), "burst-%d", i);
        snprintf(out, sizeof(out), "%d\n", i);
        rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", out);
    }
    stats = rp_te_cloud_stats(te);
    injected = cJSON_GetObjectItemCaseSensitive(stats, "faults_injected");
    print_message("faults injected so far: %d\n",
                  cJSON_IsNumber(injected) ? (int)injected->valuedouble : -1);
    assert_true(cJSON_IsNumber(injected) && injected->valuedouble >= 30);
    cJSON_Delete(stats);
    assert_int_equal(rp_te_cloud_count_requests(te, "jobs.run", 429), 12);
    assert_int_equal(rp_te_cloud_count_requests(te, "jobs.run", 503), 3);
}

/* Google refuses a run (403): an "error" result with Google's message,
 * and the worker goes on with the next request. */
static void phase_refused(rp_te_t *te)
{
    const rp_te_msg_t *m;
    const char *msg;

    rp_te_cloud_config(
        te, "{\"faults\":[{\"route\":\"jobs.run\",\"count\":1,"
            "\"status\":403,\"message\":\"Permission "
            "'run.jobs.runWithOverrides' denied on resource (or it may not "
            "exist).\"}]}");
    send_exec(te, "refused", "refused-1", "echo never", 0);
    rp_te_flush(te);
    m = rp_te_need_result(te, "refused-1", WAIT_MS);
    rp_te_expect(te, m, "error", NULL);
    msg = rp_te_error(m, "message");
    if (!msg || !strstr(msg, "run.jobs.runWithOverrides"))
        fail_msg("refused-1 does not carry Google's message: %s",
                 rp_te_describe(m));
    send_exec(te, "refused", "refused-2", "echo fine", 0);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "refused-2", WAIT_MS), "succeeded",
                 "fine\n");
}

/* Phase 4: another writer wins the session's compare-and-swap. */
static void phase_cas(rp_te_t *te)
{
    const char *other =
        "{\"v\":1,\"session_id\":\"cas\",\"cwd\":\"/elsewhere\","
        "\"env\":{\"WRITER\":\"other\"},\"created_at\":\"2026-01-01T00:00:00Z\","
        "\"updated_at\":\"2026-01-01T00:00:01Z\",\"execution_count\":99,"
        "\"last_execution_id\":\"other-writer\"}";
    const rp_te_msg_t *m;
    const char *code;
    long long gen_before, gen_after;
    int64_t deadline;
    cJSON *doc;

    send_exec(te, "cas", "cas-1", "export A=1", 0);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "cas-1", WAIT_MS), "succeeded", "");
    doc = gcs_state(te, "cas", NULL);
    assert_non_null(doc);
    cJSON_Delete(doc);

    /* cas-2 loads the state, then runs for 4 s: write over it meanwhile. */
    send_exec(te, "cas", "cas-2", "sleep 4; export B=2", 0);
    rp_te_flush(te);
    deadline = rp_te_now_ms() + WAIT_MS;
    while (rp_te_cloud_runs(te, "cas-2") == 0) {
        if (rp_te_now_ms() > deadline)
            fail_msg("cas-2 never started");
        rp_te_sleep_ms(100);
    }
    rp_te_cloud_gcs_put(te, RP_TE_CLOUD_PREFIX "/sessions/cas/state.json",
                        other);
    doc = gcs_state(te, "cas", &gen_before);
    cJSON_Delete(doc);

    m = rp_te_need_result(te, "cas-2", WAIT_MS);
    rp_te_expect(te, m, "error", NULL);
    code = rp_te_error(m, "code");
    if (!code || strcmp(code, "state_conflict"))
        fail_msg("cas-2: want error.code state_conflict: %s",
                 rp_te_describe(m));
    print_message("cas-2: %s\n", rp_te_error(m, "message"));

    /* Not overwritten: the other writer's document, same generation. */
    doc = gcs_state(te, "cas", &gen_after);
    assert_non_null(doc);
    assert_string_equal(doc_str(doc, "last_execution_id"), "other-writer");
    assert_int_equal(doc_int(doc, "execution_count"), 99);
    assert_true(gen_after == gen_before);
    cJSON_Delete(doc);
}

static void test_cloudrun(void **state)
{
    rp_te_t *te = *state;
    int w1, w2;
    size_t w2_results = 0;

    rp_te_cloud_start(te, "template");
    /* Real credentials on the store's side: tokens from a metadata server
     * (planted secrets: secrets.logs checks no log shows one). */
    rp_te_cloud_authenticate(te);
    w1 = rp_te_start_worker(te);
    rp_te_wait_group(te, &w1, 1, 60000);
    phase_sessions(te);
    /* Nobody tried to create the template job twice yet. */
    assert_int_equal(rp_te_cloud_count_requests(te, "jobs.create", 409), 0);

    /* 2. worker-1 drains and leaves; worker-2 meets the existing job. */
    rp_te_signal(te, w1, SIGTERM);
    if (!rp_te_wait_exit(te, w1, 60000))
        fail_msg("worker-1 did not exit within 60 s of SIGTERM");
    assert_true(WIFEXITED(te->procs[w1].status));
    assert_int_equal(WEXITSTATUS(te->procs[w1].status), 0);
    w2 = rp_te_start_worker(te);
    rp_te_wait_group(te, &w2, 1, 60000);
    phase_burst(te);
    assert_int_equal(rp_te_cloud_count_requests(te, "jobs.create", 409), 1);
    for (size_t i = 0; i < rp_te_result_count(te); i++) {
        const char *w = rp_te_str(rp_te_result_at(te, i), "worker");

        if (w && !strcmp(w, te->procs[w2].worker_id))
            w2_results++;
    }
    assert_true(w2_results >= N_BURST);

    phase_refused(te);
    phase_cas(te);

    /* Exactly one Cloud Run execution per execution id, all along (none
     * for the refused one: the 403 came before anything ran). */
    for (size_t i = 0; i < g_sent.n; i++) {
        long runs = rp_te_cloud_runs(te, g_sent.eids[i]);
        long want = strcmp(g_sent.eids[i], "refused-1") ? 1 : 0;

        if (runs != want)
            fail_msg("%s ran %ld times on Cloud Run (want %ld)",
                     g_sent.eids[i], runs, want);
    }
    /* The store really was authenticated: both workers got tokens. */
    assert_true(rp_te_log_events(te, w1, "auth_token_refreshed", NULL) >= 1);
    assert_true(rp_te_log_events(te, w2, "auth_token_refreshed", NULL) >= 1);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cloudrun, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
