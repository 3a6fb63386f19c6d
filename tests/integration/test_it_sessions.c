/* integration.sessions — runpool-sessions against the file:// store of a
 * real worker: the sessions its commands made are listed (table and
 * --json) with their execution counts and workspace sizes (the worker
 * takes snapshots: --workspace /workspace), one is shown, one closed (its
 * workspace objects with it), and expire --idle closes only what is idle
 * (--dry-run first closes nothing). A closed session's next command starts
 * afresh. */
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

#define WAIT_MS 60000
#define RUN_MS 30000

static void run_cmd(rp_te_t *te, const char *sid, const char *eid,
                    const char *command)
{
    rp_te_send_exec(te, sid, eid, command, 0, NULL);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, eid, WAIT_MS), "succeeded", NULL);
}

/* runpool-sessions --state URL ARGS...: its exit code; stdout in *out
 * (caller frees). */
static int sessions(rp_te_t *te, char **out, const char *a1, const char *a2,
                    const char *a3, const char *a4)
{
    char bin[PATH_MAX + 32], outp[PATH_MAX], errp[PATH_MAX];
    char *argv[] = {bin, "--state", te->state_url, (char *)a1, (char *)a2,
                    (char *)a3, (char *)a4, NULL};
    int ws;

    rp_te_format(bin, sizeof(bin), "%s/runpool-sessions", te->bin_dir);
    rp_te_path(te, outp, sizeof(outp), "sessions.out");
    rp_te_path(te, errp, sizeof(errp), "sessions.err");
    ws = rp_te_run(te, argv, NULL, outp, errp, RUN_MS);
    *out = rp_te_read_file(outp, NULL);
    assert_non_null(*out);
    assert_true(WIFEXITED(ws));
    return WEXITSTATUS(ws);
}

static bool exists(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX];

    rp_te_path(te, path, sizeof(path), rel);
    return access(path, F_OK) == 0;
}

static void plant(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX];
    FILE *f;

    rp_te_path(te, path, sizeof(path), rel);
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        (void)mkdir(path, 0700);
        *p = '/';
    }
    if (!(f = fopen(path, "w")) || fputs("x", f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s", path);
}

/* The JSON line of session sid in a --json listing; NULL when absent. */
static cJSON *find_line(const char *text, const char *sid)
{
    const char *p = text;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        cJSON *doc = cJSON_ParseWithLength(p, n);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "session_id");

        if (!doc)
            fail_msg("not JSON: %.*s", (int)n, p);
        if (cJSON_IsString(id) && !strcmp(id->valuestring, sid))
            return doc;
        cJSON_Delete(doc);
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static long long num(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    if (!cJSON_IsNumber(v))
        fail_msg("no number %s", name);
    return (long long)v->valuedouble;
}

static void test_sessions(void **state)
{
    rp_te_t *te = *state;
    int worker;
    char *out;
    cJSON *doc;

    worker = rp_te_start_worker_args(
        te, (const char *const[]){"--workspace", "/workspace", NULL});
    rp_te_wait_group(te, &worker, 1, 30000);
    run_cmd(te, "sess-a", "sa-1", "export X=1");
    run_cmd(te, "sess-a", "sa-2", "printf 0123456789 > ten.txt");
    run_cmd(te, "sess-a", "sa-3", "true");
    run_cmd(te, "sess-b", "sb-1", "cd /tmp");
    run_cmd(te, "sess-c", "sc-1", "true");
    plant(te, "state/workspaces/sess-b/chunks/00");

    /* list: the table, then --json with the worker's counts. */
    assert_int_equal(sessions(te, &out, "list", NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "SESSION"));
    assert_non_null(strstr(out, "sess-a"));
    assert_non_null(strstr(out, "sess-c"));
    free(out);
    assert_int_equal(sessions(te, &out, "list", "--json", NULL, NULL), 0);
    assert_non_null(doc = find_line(out, "sess-a"));
    assert_int_equal(num(doc, "executions"), 3);
    assert_int_equal(num(doc, "env_count"), 1);
    /* Its workspace: the one 10-byte file the command wrote. */
    assert_int_equal(num(cJSON_GetObjectItem(doc, "workspace"), "bytes"), 10);
    assert_null(strstr(out, "\"X\"")); /* values, and names, never printed */
    cJSON_Delete(doc);
    assert_non_null(doc = find_line(out, "sess-b"));
    assert_int_equal(num(doc, "executions"), 1);
    cJSON_Delete(doc);
    free(out);

    /* show */
    assert_int_equal(sessions(te, &out, "show", "sess-b", "--json", NULL), 0);
    assert_non_null(doc = find_line(out, "sess-b"));
    assert_string_equal(cJSON_GetObjectItem(doc, "cwd")->valuestring, "/tmp");
    /* The planted object, besides what its snapshot stored. */
    assert_true(num(doc, "workspace_objects") >= 1);
    cJSON_Delete(doc);
    free(out);
    assert_int_equal(sessions(te, &out, "show", "nope", NULL, NULL), 3);
    free(out);

    /* close: state and workspace gone; the next command starts afresh. */
    assert_int_equal(sessions(te, &out, "close", "sess-b", NULL, NULL), 0);
    free(out);
    assert_false(exists(te, "state/sessions/sess-b/state.json"));
    assert_false(exists(te, "state/workspaces/sess-b/chunks/00"));
    assert_int_equal(sessions(te, &out, "close", "sess-b", NULL, NULL), 3);
    free(out);
    run_cmd(te, "sess-b", "sb-2", "true");
    assert_int_equal(sessions(te, &out, "show", "sess-b", "--json", NULL), 0);
    assert_non_null(doc = find_line(out, "sess-b"));
    assert_int_equal(num(doc, "executions"), 1);
    /* The default directory again, not /tmp. */
    assert_string_not_equal(cJSON_GetObjectItem(doc, "cwd")->valuestring,
                            "/tmp");
    cJSON_Delete(doc);
    free(out);

    /* expire: nothing is a day idle; then with 1 s, after 2 s of quiet,
     * everything is — a dry run first closes nothing. */
    assert_int_equal(sessions(te, &out, "expire", "--idle", "1d", NULL), 0);
    assert_null(strstr(out, "closed"));
    free(out);
    rp_te_sleep_ms(2000); /* the sessions' age, not a wait for the system */
    assert_int_equal(sessions(te, &out, "expire", "--idle", "1s", "--dry-run"),
                     0);
    assert_non_null(strstr(out, "would close sess-a"));
    assert_non_null(strstr(out, "would close sess-c"));
    free(out);
    assert_true(exists(te, "state/sessions/sess-a/state.json"));
    run_cmd(te, "sess-c", "sc-2", "true"); /* used just now: not idle */
    assert_int_equal(sessions(te, &out, "expire", "--idle", "1s", NULL), 0);
    assert_non_null(strstr(out, "closed sess-a"));
    assert_non_null(strstr(out, "closed sess-b"));
    free(out);
    assert_false(exists(te, "state/sessions/sess-a/state.json"));
    assert_int_equal(sessions(te, &out, "list", "--json", NULL, NULL), 0);
    assert_null(strstr(out, "sess-a"));
    free(out);

    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
