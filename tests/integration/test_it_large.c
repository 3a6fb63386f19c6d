/* integration.large — requests at the documented limits run on the local
 * backend (issue 12, section 2).
 *
 * One worker, one broker. Before, the command and the per-request env
 * travelled in single environment strings, and Linux refuses any one over
 * 128 KiB (MAX_ARG_STRLEN): these ended as error/backend_failed ("could
 * not execute runpool-executor (exit 127)"), and a session exporting
 * 80 x 30 KiB lost every export to "Argument list too long". Now:
 *   - a command of exactly 256 KiB (a long comment, then `echo ok`) runs;
 *   - a command embedding a 200 KiB literal, with five per-request values
 *     of 30 KiB, sees all of it whole;
 *   - a session exports 80 values of 30 KiB (2.4 MB, over the kernel's
 *     2 MiB exec limit); the next command finds all 80 with builtins, and
 *     the worker's state document holds them.
 * And (section 3) per-execution limits and 0700 session directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rp_testenv.h"

#define WAIT_MS 90000
#define COMMAND_MAX (256 * 1024) /* RP_COMMAND_MAX, the documented limit */
#define VALUE_LEN (30 * 1024)
#define LITERAL_LEN (200 * 1024)
#define SID "large-s"

static const rp_te_msg_t *run(rp_te_t *te, const char *sid, const char *eid,
                              const char *command, const char *const *env)
{
    const rp_te_msg_t *m;

    rp_te_send_exec(te, sid, eid, command, 0, env);
    rp_te_flush(te);
    if (!(m = rp_te_wait_result(te, eid, WAIT_MS)))
        fail_msg("no result for %s in %d ms", eid, WAIT_MS);
    return m;
}

static void expect_clean_stderr(const rp_te_msg_t *m)
{
    const char *err = rp_te_str(m, "stderr");

    if (err && (strstr(err, "Argument list too long") ||
                strstr(err, "runpool: not saving")))
        fail_msg("unexpected stderr: %s", rp_te_describe(m));
}

static void test_large(void **state)
{
    rp_te_t *te = *state;
    char *cmd = malloc(COMMAND_MAX + 1), *val = malloc(VALUE_LEN + 1);
    char expect[128], path[PATH_MAX], *text;
    const char *tail = "\necho ok\n";
    const rp_te_msg_t *m;
    int workers[1];
    size_t n;
    cJSON *doc, *env;

    assert_non_null(cmd);
    assert_non_null(val);
    workers[0] = rp_te_start_worker(te);
    rp_te_wait_group(te, workers, 1, 30000);

    /* 1. Exactly the documented limit: a comment, then the command. */
    n = COMMAND_MAX - strlen(tail);
    memset(cmd, 'c', n);
    cmd[0] = '#';
    memcpy(cmd + n, tail, strlen(tail) + 1);
    assert_int_equal(strlen(cmd), COMMAND_MAX);
    m = run(te, "large-cmd", "big-1", cmd, NULL);
    rp_te_expect(te, m, "succeeded", "ok\n");

    /* 2. A 200 KiB literal and five 30 KiB per-request values. */
    memcpy(cmd, "x='", 3);
    memset(cmd + 3, 'a', LITERAL_LEN);
    snprintf(cmd + 3 + LITERAL_LEN, 64, "'; echo ${#x} ${#P0} ${#P4}");
    memset(val, 'p', VALUE_LEN);
    val[VALUE_LEN] = '\0';
    {
        const char *const env5[] = {"P0", val, "P1", val, "P2", val,
                                    "P3", val, "P4", val, NULL};

        m = run(te, "large-env", "big-2", cmd, env5);
    }
    rp_te_format(expect, sizeof(expect), "%d %d %d\n", LITERAL_LEN, VALUE_LEN,
                 VALUE_LEN);
    rp_te_expect(te, m, "succeeded", expect);

    /* 3. 80 exports of 30 KiB, then a command that counts them back with
     * builtins only (with 2.4 MB exported, any exec'd program would get
     * E2BIG: that is the kernel's limit, not ours). */
    m = run(te, SID, "big-3",
            "b=$(printf '%30720s' '' | tr ' ' v); i=0; "
            "while [ $i -lt 80 ]; do export V$i=\"$b\"; i=$((i+1)); done",
            NULL);
    rp_te_expect(te, m, "succeeded", "");
    expect_clean_stderr(m);
    m = run(te, SID, "big-4",
            "n=0; i=0; while [ $i -lt 80 ]; do eval \"v=\\$V$i\"; "
            "[ ${#v} -eq 30720 ] && n=$((n+1)); i=$((i+1)); done; echo $n",
            NULL);
    rp_te_expect(te, m, "succeeded", "80\n");
    expect_clean_stderr(m);

    /* The session state the worker wrote has all 80. */
    rp_te_path(te, path, sizeof(path), "state/sessions/" SID "/state.json");
    assert_non_null(text = rp_te_read_file(path, NULL));
    assert_non_null(doc = cJSON_Parse(text));
    free(text);
    env = cJSON_GetObjectItemCaseSensitive(doc, "env");
    assert_true(cJSON_IsObject(env));
    for (int i = 0; i < 80; i++) {
        char name[16];
        cJSON *v;

        rp_te_format(name, sizeof(name), "V%d", i);
        v = cJSON_GetObjectItemCaseSensitive(env, name);
        if (!cJSON_IsString(v) || strlen(v->valuestring) != VALUE_LEN)
            fail_msg("state.json: %s missing or not %d bytes", name,
                     VALUE_LEN);
    }
    cJSON_Delete(doc);
    free(cmd);
    free(val);
    rp_te_finish(te);
}

/* Per-execution limits (issue 12, section 3) on a real executor: with
 * --exec-max-file-size 32 MiB and --exec-max-open-files 64 the command
 * sees them and cannot raise them, a write past the size is stopped
 * (SIGXFSZ: status 153), and the executor still writes its record; a new
 * session's directory is 0700. */
static void test_limits(void **state)
{
    rp_te_t *te = *state;
    const char *const extra[] = {"--exec-max-file-size", "33554432",
                                 "--exec-max-open-files", "64", NULL};
    char path[PATH_MAX];
    const rp_te_msg_t *m;
    struct stat st;
    int workers[1];

    workers[0] = rp_te_start_worker_args(te, extra);
    rp_te_wait_group(te, workers, 1, 30000);
    m = run(te, "lim-s", "lim-1",
            "ulimit -f; ulimit -n; ulimit -n 65 2>/dev/null || echo no-raise; "
            "head -c 40000000 /dev/zero > big; echo \"rc=$?\"; wc -c < big",
            NULL);
    rp_te_expect(te, m, "succeeded", "65536\n64\nno-raise\nrc=153\n33554432\n");
    rp_te_path(te, path, sizeof(path), "work/lim-s");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large, rp_te_setup,
                                        rp_te_teardown),
        cmocka_unit_test_setup_teardown(test_limits, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
