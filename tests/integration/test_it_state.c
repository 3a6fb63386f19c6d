/* integration.state — what a session carries from one command to the
 * next, and how single commands end.
 *
 * Two workers, one devbroker. Session "state-s1" changes directory and
 * exports a variable, and the third command sees both; the worker's state
 * file says so too. A per-request env reaches one command only.
 * close_session deletes the state and the session's workspace objects
 * (workspaces/{session_id}/, another session's left alone), and the next
 * command starts afresh. An earlier command re-sent with its execution_id
 * is answered from its record without running again (the fresh start's
 * claim check, then the full load).
 * Meanwhile, in sessions of their own: `exit 3` fails with exit_code 3 and
 * `sleep 30` with timeout_s 1 is stopped as timed_out within seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_testenv.h"

#define SID "state-s1"
#define WAIT_MS 60000
#define TIMEOUT_RESULT_MAX_MS 10000 /* `sleep 30`, timeout_s 1: result by then */

/* Send one exec request and wait for its result. */
static const rp_te_msg_t *run(rp_te_t *te, const char *sid, const char *eid,
                              const char *command, const char *const *env)
{
    const rp_te_msg_t *m;

    rp_te_send_exec(te, sid, eid, command, 0, env);
    rp_te_flush(te);
    if (!(m = rp_te_wait_result(te, eid, WAIT_MS)))
        fail_msg("no result for %s (%s) in %d ms", eid, command, WAIT_MS);
    return m;
}

/* The worker's state document of a session, parsed; NULL if absent. */
static cJSON *load_state(rp_te_t *te, const char *sid, char *path, size_t size)
{
    char rel[256];
    char *text;
    cJSON *doc;

    rp_te_format(rel, sizeof(rel), "state/sessions/%s/state.json", sid);
    rp_te_path(te, path, size, rel);
    if (!(text = rp_te_read_file(path, NULL)))
        return NULL;
    doc = cJSON_Parse(text);
    free(text);
    if (!doc)
        fail_msg("%s is not JSON", path);
    return doc;
}

static const char *doc_str(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* execution_count of a state document; fails when it is missing. */
static long long doc_count(const cJSON *doc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "execution_count");

    if (!cJSON_IsNumber(v))
        fail_msg("state document without a numeric execution_count");
    return (long long)v->valuedouble;
}

/* Write text at state/REL, making its directories (0700, as the store). */
static void plant(rp_te_t *te, const char *rel, const char *text)
{
    char path[PATH_MAX], full[PATH_MAX];
    FILE *f;

    rp_te_format(full, sizeof(full), "state/%s", rel);
    rp_te_path(te, path, sizeof(path), full);
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        (void)mkdir(path, 0700);
        *p = '/';
    }
    if (!(f = fopen(path, "w")) || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s", path);
}

static bool planted(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX], full[PATH_MAX];

    rp_te_format(full, sizeof(full), "state/%s", rel);
    rp_te_path(te, path, sizeof(path), full);
    return access(path, F_OK) == 0;
}

/* executions/EID/claim.json naming a local run of this machine whose
 * process is gone: a child that has exited and been reaped. */
static void plant_dead_claim(rp_te_t *te, const char *eid)
{
    char boot[128], doc[512], rel[128], *text;
    struct stat ns;
    size_t n;
    pid_t pid = fork();

    if (pid == 0)
        _exit(0);
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    if (!(text = rp_te_read_file("/proc/sys/kernel/random/boot_id", NULL)))
        fail_msg("cannot read the boot id");
    n = strcspn(text, "\n");
    text[n] = '\0';
    assert_int_equal(stat("/proc/self/ns/pid", &ns), 0);
    rp_te_format(boot, sizeof(boot), "%s.%llu", text,
                 (unsigned long long)ns.st_ino);
    free(text);
    rp_te_format(doc, sizeof(doc),
                 "{\"v\":1,\"execution_id\":\"%s\",\"run\":\"local:%s:%ld:1\","
                 "\"attempt\":1,\"claimed_at_ms\":%lld}",
                 eid, boot, (long)pid, (long long)rp_te_now_ms());
    rp_te_format(rel, sizeof(rel), "executions/%s/claim.json", eid);
    plant(te, rel, doc);
}

static void test_state(void **state)
{
    rp_te_t *te = *state;
    int workers[2];
    char home[PATH_MAX], demo[PATH_MAX + 8], expect[2 * PATH_MAX];
    char path[PATH_MAX], rel[256];
    const rp_te_msg_t *m;
    const char *const per_request_env[] = {"VISITOR", "bob", "GREETING",
                                           "override", NULL};
    cJSON *doc, *env;
    long long code;
    int64_t slow_sent;

    workers[0] = rp_te_start_worker(te);
    workers[1] = rp_te_start_worker(te);
    rp_te_wait_group(te, workers, 2, 30000);
    /* A new session starts in --workdir/SESSION_ID. */
    rp_te_path(te, home, sizeof(home), "work/" SID);
    rp_te_format(demo, sizeof(demo), "%s/demo", home);

    /* Two sessions of their own run alongside everything below. */
    rp_te_send_exec(te, "state-fail", "fail-1", "echo oops >&2; exit 3", 0,
                    NULL);
    rp_te_send_exec(te, "state-slow", "slow-1", "sleep 30", 1, NULL);
    rp_te_flush(te);
    slow_sent = rp_te_now_ms();

    /* 1. cwd and exported variables carry over. */
    rp_te_send_exec(te, SID, "a1", "mkdir -p demo && cd demo", 0, NULL);
    rp_te_send_exec(te, SID, "a2", "export GREETING=hi", 0, NULL);
    m = run(te, SID, "a3", "echo $GREETING > f && pwd && cat f", NULL);
    rp_te_expect(te, rp_te_wait_result(te, "a1", WAIT_MS), "succeeded", "");
    rp_te_expect(te, rp_te_wait_result(te, "a2", WAIT_MS), "succeeded", "");
    rp_te_format(expect, sizeof(expect), "%s\nhi\n", demo);
    rp_te_expect(te, m, "succeeded", expect);
    assert_string_equal(rp_te_str(m, "cwd"), demo);
    assert_true(rp_te_int(m, "exit_code", &code));
    assert_int_equal(code, 0);

    /* The worker saved that as the session's state. */
    doc = load_state(te, SID, path, sizeof(path));
    if (!doc)
        fail_msg("%s does not exist after 3 executions", path);
    assert_int_equal(doc_count(doc), 3);
    assert_string_equal(doc_str(doc, "session_id"), SID);
    assert_string_equal(doc_str(doc, "cwd"), demo);
    assert_string_equal(doc_str(doc, "last_execution_id"), "a3");
    env = cJSON_GetObjectItemCaseSensitive(doc, "env");
    assert_string_equal(doc_str(env, "GREETING"), "hi");
    cJSON_Delete(doc);
    rp_te_validate(te, "session-state", path);
    /* The executor's own record of a3 (result + env after the command). */
    rp_te_format(rel, sizeof(rel), "state/executions/%s/result.json", "a3");
    rp_te_path(te, path, sizeof(path), rel);
    rp_te_validate(te, "executor-result", path);

    /* 2. A per-request env is seen by its command only; a session variable
     *    it overrides comes back afterwards. */
    m = run(te, SID, "a4", "echo \"$VISITOR $GREETING\"", per_request_env);
    rp_te_expect(te, m, "succeeded", "bob override\n");
    m = run(te, SID, "a5", "echo \"visitor=${VISITOR-unset} greeting=$GREETING\"",
            NULL);
    rp_te_expect(te, m, "succeeded", "visitor=unset greeting=hi\n");
    doc = load_state(te, SID, path, sizeof(path));
    assert_non_null(doc);
    assert_int_equal(doc_count(doc), 5);
    env = cJSON_GetObjectItemCaseSensitive(doc, "env");
    assert_null(cJSON_GetObjectItemCaseSensitive(env, "VISITOR"));
    assert_string_equal(doc_str(env, "GREETING"), "hi");
    cJSON_Delete(doc);

    /* 3. close_session deletes the state and the workspace objects, and
     *    says so. */
    plant(te, "workspaces/" SID "/chunks/00ff", "chunk");
    plant(te, "workspaces/" SID "/snapshots/a5.json.zst", "manifest");
    plant(te, "workspaces/state-other/chunks/00ff", "another session's");
    rp_te_send_close(te, SID, "a6");
    rp_te_flush(te);
    m = rp_te_wait_result(te, "a6", WAIT_MS);
    rp_te_expect(te, m, "succeeded", NULL);
    doc = load_state(te, SID, path, sizeof(path));
    if (doc) {
        cJSON_Delete(doc);
        fail_msg("%s still exists after close_session", path);
    }
    assert_false(planted(te, "workspaces/" SID "/chunks/00ff"));
    assert_false(planted(te, "workspaces/" SID "/snapshots/a5.json.zst"));
    assert_true(planted(te, "workspaces/state-other/chunks/00ff"));
    /* The next command of that id is a new session: default cwd, no env. */
    m = run(te, SID, "a7", "pwd; echo \"greeting=${GREETING-unset}\"", NULL);
    rp_te_format(expect, sizeof(expect), "%s\ngreeting=unset\n", home);
    rp_te_expect(te, m, "succeeded", expect);
    doc = load_state(te, SID, path, sizeof(path));
    assert_non_null(doc);
    assert_int_equal(doc_count(doc), 1);
    cJSON_Delete(doc);

    /* 3b. An earlier command re-sent with its execution_id after a later
     *     one was saved: the worker's cached state says "fresh", the
     *     executor meets its claim and starts nothing, and the worker
     *     answers from the record (docs/worker.md "Fresh"). Its command
     *     does not run again and the state does not roll back. */
    run(te, "state-resend", "r1", "echo r1 >> log; export N=1; echo one", NULL);
    run(te, "state-resend", "r2", "export N=2; echo two", NULL);
    rp_te_send_exec(te, "state-resend", "r1",
                    "echo r1 >> log; export N=1; echo one", 0, NULL);
    rp_te_flush(te);
    {
        const rp_te_msg_t *r1[2];

        for (int i = 0; i < WAIT_MS / 100 &&
                        rp_te_results_for(te, "r1", r1, 2) < 2;
             i++)
            usleep(100 * 1000);
        if (rp_te_results_for(te, "r1", r1, 2) < 2)
            fail_msg("no second result for the re-sent r1");
        rp_te_expect(te, r1[1], "succeeded", "one\n");
        assert_string_equal(rp_te_str(r1[1], "finished_at"),
                            rp_te_str(r1[0], "finished_at"));
    }
    /* A claim without a record, naming a run on this machine that is
     * gone (its command "began" and died): the executor starts nothing
     * (exit 3), the worker looks the slow way, finds the claim of a dead
     * run and ends the execution "interrupted", never running it. */
    plant_dead_claim(te, "r9");
    m = run(te, "state-resend", "r9", "echo r9 >> log", NULL);
    rp_te_expect(te, m, "error", NULL);
    assert_string_equal(rp_te_error(m, "code"), "interrupted");
    assert_int_equal(rp_te_log_events(te, workers[0], "execution_seen_before",
                                      NULL) +
                         rp_te_log_events(te, workers[1],
                                          "execution_seen_before", NULL),
                     1);
    m = run(te, "state-resend", "r3", "cat log; echo N=$N", NULL);
    rp_te_expect(te, m, "succeeded", "r1\nN=2\n");

    /* 4. A failing command: status failed, its exit code and stderr. */
    m = rp_te_wait_result(te, "fail-1", WAIT_MS);
    rp_te_expect(te, m, "failed", "");
    assert_true(rp_te_int(m, "exit_code", &code));
    assert_int_equal(code, 3);
    assert_string_equal(rp_te_str(m, "stderr"), "oops\n");

    /* 5. A command past its timeout_s is stopped and reported timed_out. */
    m = rp_te_wait_result(te, "slow-1", WAIT_MS);
    rp_te_expect(te, m, "timed_out", NULL);
    print_message("timed_out result %lld ms after sending\n",
                  (long long)(m->received_ms - slow_sent));
    assert_true(m->received_ms - slow_sent < TIMEOUT_RESULT_MAX_MS);
    assert_true(rp_te_int(m, "duration_ms", &code));
    assert_true(code >= 900 && code < TIMEOUT_RESULT_MAX_MS);

    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
