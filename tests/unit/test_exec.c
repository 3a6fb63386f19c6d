/* rp_exec: running one command — cwd/env capture, exit status, timeouts,
 * output caps, background processes. Uses the built runpool-executor
 * ($RP_BIN_DIR/runpool-executor) as the --dump-env helper. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "rp_test_dir.h"
#include "rp_exec.h"
#include "rp_msg.h"
#include "rp_test_fmt.h"
#include "rp_time.h"

#define TEST_PATH_MAX 4096
#define TEST_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

static char test_dumper[TEST_PATH_MAX];
static char test_dir[TEST_PATH_MAX]; /* private scratch directory */
/* What test_opts puts in env_dumper: the suite runs twice, once with the
 * default (NULL: the shell's export -p captures, what runpool-executor
 * does) and once with the exec'd dumper (RUNPOOL_ENV_DUMPER). */
static const char *test_opts_dumper;

static int test_setup(void **state)
{
    const char *bin = getenv("RP_BIN_DIR");
    const char *tmp = getenv("TMPDIR");

    (void)state;
    if (!bin) {
        fprintf(stderr, "RP_BIN_DIR is not set (run through ctest)\n");
        return -1;
    }
    snprintf(test_dumper, sizeof(test_dumper), "%s/runpool-executor", bin);
    if (access(test_dumper, X_OK) != 0) {
        fprintf(stderr, "%s is not built\n", test_dumper);
        return -1;
    }
    snprintf(test_dir, sizeof(test_dir), "%s/rp-test-exec.XXXXXX",
             tmp && tmp[0] == '/' ? tmp : "/tmp");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int test_setup_builtin(void **state)
{
    test_opts_dumper = NULL;
    return test_setup(state);
}

static int test_setup_dumper(void **state)
{
    int rc = test_setup(state);

    test_opts_dumper = test_dumper;
    return rc;
}

static int test_teardown(void **state)
{
    (void)state;
    return rp_test_rmtree(test_dir);
}

static void test_opts(rp_exec_opts_t *o, const char *cmd, const char *cwd,
                      const rp_env_t *env)
{
    rp_exec_opts_init(o);
    o->command = cmd;
    o->cwd = cwd;
    o->env = env;
    o->env_dumper = test_opts_dumper;
    o->subreaper = true;
    o->timeout_ms = 30000;
}

static void test_run_opts(const rp_exec_opts_t *o, rp_exec_outcome_t *oc)
{
    char errstr[256] = "";
    rp_err_t err = rp_exec_run(o, oc, errstr, sizeof(errstr));

    if (err != RP_OK)
        fail_msg("rp_exec_run: %s (%s)", rp_err_str(err), errstr);
}

static void test_run(const char *cmd, const char *cwd, const rp_env_t *env,
                     rp_exec_outcome_t *oc)
{
    rp_exec_opts_t o;

    test_opts(&o, cmd, cwd, env);
    test_run_opts(&o, oc);
}

static void test_base_env(rp_env_t *env)
{
    assert_int_equal(rp_env_set(env, "PATH", TEST_DEFAULT_PATH), RP_OK);
}

static void test_subdir(const char *name, char *out, size_t out_size)
{
    rp_test_format(out, out_size, "%s/%s", test_dir, name);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", out, strerror(errno));
}

static void assert_group_gone(int pgid)
{
    assert_true(pgid > 0);
    assert_int_equal(kill(-pgid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* `cd` and `export` carry over into the next command through the outcome. */
static void test_cwd_env_carry_over(void **state)
{
    char dir[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64], want[TEST_PATH_MAX + 8];
    rp_exec_outcome_t a, b;
    rp_env_t env = {0};

    (void)state;
    test_subdir("carry", dir, sizeof(dir));
    test_base_env(&env);
    rp_test_format(cmd, sizeof(cmd), "cd '%s' && export X=1 Y='two words'", dir);
    test_run(cmd, "/", &env, &a);
    assert_int_equal(a.status, RP_STATUS_SUCCEEDED);
    assert_true(a.has_exit_code);
    assert_int_equal(a.exit_code, 0);
    assert_true(a.captured);
    assert_string_equal(a.cwd_after, dir);
    assert_string_equal(rp_env_get(&a.env_after, "X"), "1");
    assert_string_equal(rp_env_get(&a.env_after, "Y"), "two words");
    assert_string_equal(rp_env_get(&a.env_after, "PATH"), TEST_DEFAULT_PATH);
    /* Shell-managed variables are not part of the session. */
    assert_null(rp_env_get(&a.env_after, "PWD"));
    assert_null(rp_env_get(&a.env_after, "OLDPWD"));
    assert_null(rp_env_get(&a.env_after, "SHLVL"));
    assert_null(rp_env_get(&a.env_after, "_"));
    assert_true(a.started_at_ms > 0);
    assert_true(a.finished_at_ms >= a.started_at_ms);

    test_run("pwd; echo \"$X/$Y\"", a.cwd_after, &a.env_after, &b);
    rp_test_format(want, sizeof(want), "%s\n1/two words\n", dir);
    assert_int_equal(b.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(b.stdout_data, want);
    assert_int_equal(b.stdout_len, strlen(want));
    assert_int_equal(b.stderr_len, 0);
    rp_exec_outcome_clear(&a);
    rp_exec_outcome_clear(&b);
    rp_env_clear(&env);
}

/* `cd /tmp` with /tmp unchanged in the test's view: the literal example. */
static void test_cd_tmp(void **state)
{
    rp_exec_outcome_t a, b;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    test_run("cd /tmp && export X=1", "/", &env, &a);
    assert_string_equal(a.cwd_after, "/tmp");
    test_run("pwd; echo $X", a.cwd_after, &a.env_after, &b);
    assert_string_equal(b.stdout_data, "/tmp\n1\n");
    rp_exec_outcome_clear(&a);
    rp_exec_outcome_clear(&b);
    rp_env_clear(&env);
}

/* The EXIT trap keeps the user's status and still captures. */
static void test_exit_code_kept(void **state)
{
    char dir[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64];
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_subdir("exit3", dir, sizeof(dir));
    test_base_env(&env);
    rp_test_format(cmd, sizeof(cmd), "cd '%s'; export E=3; echo out; echo err >&2; exit 3",
             dir);
    test_run(cmd, "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_true(oc.has_exit_code);
    assert_int_equal(oc.exit_code, 3);
    assert_false(oc.has_signal);
    assert_true(oc.captured);
    assert_string_equal(oc.cwd_after, dir);
    assert_string_equal(rp_env_get(&oc.env_after, "E"), "3");
    assert_string_equal(oc.stdout_data, "out\n");
    assert_string_equal(oc.stderr_data, "err\n");
    rp_exec_outcome_clear(&oc);

    /* A failing last command (no explicit exit) keeps its status too. */
    test_run("(exit 200)", "/", &env, &oc);
    assert_int_equal(oc.exit_code, 200);
    assert_true(oc.captured);
    rp_exec_outcome_clear(&oc);

    /* A syntax error: the shell's own status 2, cwd still captured. */
    test_run("if then fi", dir, &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_int_equal(oc.exit_code, 2);
    assert_true(oc.captured);
    assert_string_equal(oc.cwd_after, dir);
    assert_non_null(strstr(oc.stderr_data, "then"));
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A shell killed by a signal cannot capture: the session stays as it was. */
static void test_killed_by_signal(void **state)
{
    char dir[TEST_PATH_MAX];
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_subdir("sig", dir, sizeof(dir));
    test_base_env(&env);
    assert_int_equal(rp_env_set(&env, "KEEP", "yes"), RP_OK);
    test_run("cd /; export LOST=1; unset KEEP; kill -9 $$", dir, &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_false(oc.has_exit_code);
    assert_true(oc.has_signal);
    assert_int_equal(oc.signal, SIGKILL);
    assert_false(oc.captured);
    assert_string_equal(oc.cwd_after, dir);
    assert_string_equal(rp_env_get(&oc.env_after, "KEEP"), "yes");
    assert_null(rp_env_get(&oc.env_after, "LOST"));
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* Timeout: SIGTERM to the whole group, capture still runs, partial output
 * kept, and nothing of the group is left. */
static void test_timeout_kills_group(void **state)
{
    char dir[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 128];
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    int64_t t0;

    (void)state;
    test_subdir("timeout", dir, sizeof(dir));
    test_base_env(&env);
    rp_test_format(cmd, sizeof(cmd),
             "cd '%s'; echo before; sleep 100 & sh -c 'sleep 100' & wait", dir);
    test_opts(&o, cmd, "/", &env);
    o.timeout_ms = 500;
    t0 = rp_time_mono_ms();
    test_run_opts(&o, &oc);
    assert_true(rp_time_mono_ms() - t0 < 5000);
    assert_int_equal(oc.status, RP_STATUS_TIMED_OUT);
    assert_string_equal(oc.stdout_data, "before\n");
    assert_true(oc.duration_ms >= 500);
    /* The TERM trap turned the timeout into exit 143 after capturing. */
    assert_true(oc.has_exit_code);
    assert_int_equal(oc.exit_code, 143);
    assert_true(oc.captured);
    assert_string_equal(oc.cwd_after, dir);
    assert_group_gone(oc.pgid);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A command that ignores SIGTERM is SIGKILLed after the grace period. */
static void test_timeout_grace_sigkill(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    int64_t t0, took;

    (void)state;
    test_base_env(&env);
    /* Ignored signals stay ignored across exec, so sleep ignores it too. */
    test_opts(&o, "trap '' TERM; printf partial; sleep 100", "/", &env);
    o.timeout_ms = 300;
    o.kill_grace_ms = 400;
    t0 = rp_time_mono_ms();
    test_run_opts(&o, &oc);
    took = rp_time_mono_ms() - t0;
    assert_int_equal(oc.status, RP_STATUS_TIMED_OUT);
    assert_true(took >= 700);
    assert_true(took < 5000);
    assert_true(oc.has_signal);
    assert_int_equal(oc.signal, SIGKILL);
    assert_false(oc.captured);
    assert_string_equal(oc.stdout_data, "partial");
    assert_group_gone(oc.pgid);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* 3 MiB with a 1 MiB cap: truncated to exactly the cap, not killed. */
static void test_truncation(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    size_t cap = 1024 * 1024;

    (void)state;
    test_base_env(&env);
    test_opts(&o, "head -c 3145728 /dev/zero | tr '\\000' a; echo done >&2",
              "/", &env);
    o.output_max = cap;
    test_run_opts(&o, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_int_equal(oc.exit_code, 0);
    assert_true(oc.stdout_truncated);
    assert_int_equal(oc.stdout_len, cap);
    for (size_t i = 0; i < oc.stdout_len; i++)
        if (oc.stdout_data[i] != 'a')
            fail_msg("byte %zu is 0x%02x", i, (unsigned char)oc.stdout_data[i]);
    assert_false(oc.stderr_truncated);
    assert_string_equal(oc.stderr_data, "done\n");
    rp_exec_outcome_clear(&oc);

    /* stderr has its own cap. */
    test_opts(&o, "head -c 5000 /dev/zero | tr '\\000' b >&2; echo ok",
              "/", &env);
    o.output_max = 1000;
    test_run_opts(&o, &oc);
    assert_true(oc.stderr_truncated);
    assert_int_equal(oc.stderr_len, 1000);
    assert_false(oc.stdout_truncated);
    assert_string_equal(oc.stdout_data, "ok\n");
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A cap in the middle of a multi-byte character cuts before it. */
static void test_truncation_utf8_boundary(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    /* 1000 x U+00E9 (2 bytes each) = 2000 bytes; cap 1001 ends mid-char. */
    test_opts(&o,
              "i=0; while [ $i -lt 1000 ]; do printf '\\303\\251'; "
              "i=$((i+1)); done",
              "/", &env);
    o.output_max = 1001;
    test_run_opts(&o, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_true(oc.stdout_truncated);
    assert_int_equal(oc.stdout_len, 1000);
    assert_true(rp_utf8_valid(oc.stdout_data, oc.stdout_len));
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* Non-UTF-8 output: the record says base64 and decodes to the same bytes. */
static void test_non_utf8_base64(void **state)
{
    rp_exec_outcome_t oc;
    rp_result_t res, back;
    rp_env_t env = {0};
    cJSON *doc;
    const cJSON *enc, *out;
    char *json, *decoded = NULL, errstr[256];
    size_t decoded_len = 0;

    (void)state;
    memset(&res, 0, sizeof(res));
    test_base_env(&env);
    test_run("printf '\\377\\376'", "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_int_equal(oc.stdout_len, 2);
    assert_memory_equal(oc.stdout_data, "\377\376", 2);

    memcpy(res.execution_id, "e-b64", 6);
    memcpy(res.session_id, "s-b64", 6);
    res.status = oc.status;
    res.has_exit_code = oc.has_exit_code;
    res.exit_code = oc.exit_code;
    res.stdout_data = oc.stdout_data;
    res.stdout_len = oc.stdout_len;
    res.stderr_data = oc.stderr_data;
    res.stderr_len = oc.stderr_len;
    res.cwd = oc.cwd_after;
    res.duration_ms = oc.duration_ms;
    json = rp_result_to_json(&res, false);
    assert_non_null(json);

    doc = cJSON_Parse(json);
    assert_non_null(doc);
    enc = cJSON_GetObjectItemCaseSensitive(doc, "encoding");
    out = cJSON_GetObjectItemCaseSensitive(doc, "stdout");
    assert_true(cJSON_IsString(enc) && cJSON_IsString(out));
    assert_string_equal(enc->valuestring, "base64");
    assert_int_equal(rp_base64_decode(out->valuestring, strlen(out->valuestring),
                                      &decoded, &decoded_len),
                     RP_OK);
    assert_int_equal(decoded_len, 2);
    assert_memory_equal(decoded, "\377\376", 2);
    free(decoded);
    cJSON_Delete(doc);

    assert_int_equal(rp_result_parse(json, strlen(json), &back, errstr,
                                     sizeof(errstr)),
                     RP_OK);
    assert_int_equal(back.stdout_len, 2);
    assert_memory_equal(back.stdout_data, "\377\376", 2);
    rp_result_clear(&back);
    free(json);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A background process holding the pipes does not keep us waiting, and
 * does not survive the call. */
static void test_background_no_hang(void **state)
{
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    int64_t t0;

    (void)state;
    test_base_env(&env);
    t0 = rp_time_mono_ms();
    test_run("(sleep 100; echo late) & sleep 100 >/dev/null 2>&1 & "
             "echo started; export BG=1",
             "/", &env, &oc);
    assert_true(rp_time_mono_ms() - t0 < 2000);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(oc.stdout_data, "started\n");
    assert_true(oc.captured);
    assert_string_equal(rp_env_get(&oc.env_after, "BG"), "1");
    assert_group_gone(oc.pgid);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* Exported changes persist, unset ones disappear, nothing else leaks in:
 * the command sees exactly the given environment. */
static void test_env_exact_and_export(void **state)
{
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    assert_int_equal(rp_env_set(&env, "A", "1"), RP_OK);
    assert_int_equal(rp_env_set(&env, "C", "keep"), RP_OK);
    /* RP_BIN_DIR is in this process's environment, not in `env`. */
    test_run("env; export B=2; unset A; NOTEXPORTED=1", "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_non_null(strstr(oc.stdout_data, "A=1\n"));
    assert_non_null(strstr(oc.stdout_data, "C=keep\n"));
    assert_null(strstr(oc.stdout_data, "RP_BIN_DIR="));
    assert_null(strstr(oc.stdout_data, "RP_SOURCE_DIR="));
    assert_null(rp_env_get(&oc.env_after, "A"));
    assert_string_equal(rp_env_get(&oc.env_after, "B"), "2");
    assert_string_equal(rp_env_get(&oc.env_after, "C"), "keep");
    assert_null(rp_env_get(&oc.env_after, "NOTEXPORTED"));
    assert_null(rp_env_get(&oc.env_after, "RP_BIN_DIR"));
    assert_int_equal(oc.env_after.n, 3); /* PATH, B, C */
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* The capture survives a changed PATH, set -eux, set -C and a `pwd`
 * function, and our trap is not traced into the user's stderr. */
static void test_capture_robust(void **state)
{
    char dir[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 256];
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_subdir("robust", dir, sizeof(dir));
    test_base_env(&env);
    rp_test_format(cmd, sizeof(cmd),
             "pwd() { echo fake; }; set -euxC; cd '%s'; "
             "export PATH=/nonexistent; false",
             dir);
    test_run(cmd, "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_int_equal(oc.exit_code, 1);
    assert_true(oc.captured);
    assert_string_equal(oc.cwd_after, dir);
    assert_string_equal(rp_env_get(&oc.env_after, "PATH"), "/nonexistent");
    assert_null(strstr(oc.stderr_data, "dump-env"));
    assert_null(strstr(oc.stderr_data, "set +ex"));
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* Quotes and spaces in a directory name survive the round trip. */
static void test_quoted_cwd(void **state)
{
    char dir[TEST_PATH_MAX];
    rp_exec_outcome_t a, b;
    rp_env_t env = {0};

    (void)state;
    test_subdir("it's a dir", dir, sizeof(dir));
    test_base_env(&env);
    test_run("cd \"it's a dir\"", test_dir, &env, &a);
    assert_true(a.captured);
    assert_string_equal(a.cwd_after, dir);
    test_run("pwd", a.cwd_after, &env, &b);
    assert_int_equal(b.stdout_len, strlen(dir) + 1);
    assert_memory_equal(b.stdout_data, dir, strlen(dir));
    rp_exec_outcome_clear(&a);
    rp_exec_outcome_clear(&b);
    rp_env_clear(&env);
}

static void test_shell_quote(void **state)
{
    rp_buf_t b;

    (void)state;
    rp_buf_init(&b, 64);
    assert_int_equal(rp_exec_shell_quote(&b, "it's"), RP_OK);
    assert_string_equal(b.data, "'it'\\''s'");
    rp_buf_reset(&b);
    assert_int_equal(rp_exec_shell_quote(&b, ""), RP_OK);
    assert_string_equal(b.data, "''");
    rp_buf_free(&b);
    rp_buf_init(&b, 4);
    assert_int_equal(rp_exec_shell_quote(&b, "abcdef"), RP_ERR_TOO_LARGE);
    rp_buf_free(&b);
}

/* A fresh container lacks the session's directory: it is created. */
static void test_missing_cwd_created(void **state)
{
    char dir[TEST_PATH_MAX];
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    struct stat st;

    (void)state;
    rp_test_format(dir, sizeof(dir), "%s/new/deep/dir", test_dir);
    test_base_env(&env);
    test_run("pwd", dir, &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(oc.stdout_len, strlen(dir) + 1);
    assert_memory_equal(oc.stdout_data, dir, strlen(dir));
    assert_int_equal(oc.stderr_len, 0);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A directory that cannot be created: fall back, say so on stderr. */
static void test_uncreatable_cwd_fallback(void **state)
{
    char fallback[TEST_PATH_MAX], want[TEST_PATH_MAX + 8];
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_subdir("fallback", fallback, sizeof(fallback));
    test_base_env(&env);
    test_opts(&o, "pwd", "/proc/self/no/such/dir", &env);
    o.fallback_cwd = fallback;
    test_run_opts(&o, &oc);
    rp_test_format(want, sizeof(want), "%s\n", fallback);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(oc.stdout_data, want);
    assert_non_null(strstr(oc.stderr_data, "runpool: cannot use working "
                                           "directory /proc/self/no/such/dir"));
    assert_string_equal(oc.cwd_after, fallback);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* stdin is /dev/null: a reading command gets EOF at once. */
static void test_stdin_devnull(void **state)
{
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    test_run("cat; echo rc=$?", "/", &env, &oc);
    assert_string_equal(oc.stdout_data, "rc=0\n");
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A cancel already pending when the run starts: the command never runs
 * (not even its first statement). */
static void test_cancel_before_start(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    char dir[] = "/tmp/rp-exec-cancel-XXXXXX", cmd[128], mark[96];
    int fds[2];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(mark, sizeof(mark), "%s/started", dir);
    snprintf(cmd, sizeof(cmd), "touch %s; sleep 100", mark);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    test_base_env(&env);
    test_opts(&o, cmd, "/", &env);
    o.cancel_fd = fds[0];
    test_run_opts(&o, &oc);
    assert_true(oc.cancelled);
    assert_false(oc.spawned);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_int_equal(access(mark, F_OK), -1); /* never started */
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
    close(fds[0]);
    close(fds[1]);
    rmdir(dir);
}

typedef struct cancel_later {
    int fd;
    int delay_ms;
} cancel_later_t;

static void *cancel_later_thread(void *arg)
{
    cancel_later_t *c = arg;

    usleep((useconds_t)c->delay_ms * 1000);
    if (write(c->fd, "x", 1) != 1)
        abort();
    return NULL;
}

/* cancel_fd stops a running command like a timeout, without waiting for
 * the deadline, and takes its whole process group down. */
static void test_cancel(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    int fds[2];
    int64_t t0;
    pthread_t th;
    cancel_later_t cl;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    test_base_env(&env);
    test_opts(&o, "echo started; sleep 100 & sleep 100", "/", &env);
    o.cancel_fd = fds[0];
    cl.fd = fds[1];
    cl.delay_ms = 300;
    assert_int_equal(pthread_create(&th, NULL, cancel_later_thread, &cl), 0);
    t0 = rp_time_mono_ms();
    test_run_opts(&o, &oc);
    pthread_join(th, NULL);
    assert_true(rp_time_mono_ms() - t0 < 5000);
    assert_true(oc.cancelled);
    assert_false(oc.late_cancel);
    assert_true(oc.spawned);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_string_equal(oc.stdout_data, "started\n"); /* it did run */
    assert_true(oc.pgid > 0);
    assert_group_gone(oc.pgid);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
    close(fds[0]);
    close(fds[1]);
}

/* A dumper that takes its time: the capture tail runs long enough for a
 * signal to land in it, as the parent-death SIGTERM did 80-310 ms after
 * the command. It marks the tail's start in `mark`. */
static void write_slow_dumper(const char *path, const char *mark)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n: > '%s'\nsleep 0.5\nexec '%s' \"$@\"\n", mark,
            test_dumper);
    fclose(fp);
    assert_int_equal(chmod(path, 0755), 0);
}

typedef struct cancel_on_file {
    int fd;
    const char *mark;
} cancel_on_file_t;

static void *cancel_on_file_thread(void *arg)
{
    cancel_on_file_t *c = arg;

    for (int i = 0; i < 500 && access(c->mark, F_OK) != 0; i++)
        usleep(10000);
    if (write(c->fd, "x", 1) != 1)
        abort();
    return NULL;
}

/* The bug of issue 8: a SIGTERM (cancel) that comes after the user's
 * command exited, while the EXIT trap captures cwd and env, must not turn
 * the run into a cancelled one: the outcome is the command's, captured
 * in full, and late_cancel says a stop came too late to count. */
static void test_cancel_during_tail(void **state)
{
    char dumper[TEST_PATH_MAX + 32], mark[TEST_PATH_MAX + 32];
    cancel_on_file_t c;
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    pthread_t th;
    int fds[2];

    (void)state;
    snprintf(dumper, sizeof(dumper), "%s/slow-dumper", test_dir);
    snprintf(mark, sizeof(mark), "%s/tail-started", test_dir);
    write_slow_dumper(dumper, mark);
    assert_int_equal(pipe(fds), 0);
    test_base_env(&env);
    test_opts(&o, "cd /tmp && export TAILVAR=kept && echo out", "/", &env);
    o.env_dumper = dumper;
    o.cancel_fd = fds[0];
    o.kill_grace_ms = 100; /* a stop that counted would kill the tail */
    c.fd = fds[1];
    c.mark = mark;
    assert_int_equal(pthread_create(&th, NULL, cancel_on_file_thread, &c), 0);
    test_run_opts(&o, &oc);
    pthread_join(th, NULL);
    assert_int_equal(access(mark, F_OK), 0); /* the cancel came in the tail */
    assert_false(oc.cancelled);
    assert_true(oc.late_cancel);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_true(oc.has_exit_code);
    assert_int_equal(oc.exit_code, 0);
    assert_string_equal(oc.stdout_data, "out\n");
    assert_true(oc.captured);
    assert_string_equal(oc.cwd_after, "/tmp");
    assert_non_null(rp_env_get(&oc.env_after, "TAILVAR"));
    assert_string_equal(rp_env_get(&oc.env_after, "TAILVAR"), "kept");
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
    close(fds[0]);
    close(fds[1]);
    unlink(mark);
    unlink(dumper);
}

/* Likewise the timeout: a deadline that passes in the tail of a command
 * that finished in time does not make it "timed_out". */
static void test_timeout_during_tail(void **state)
{
    char dumper[TEST_PATH_MAX + 32], mark[TEST_PATH_MAX + 32];
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    snprintf(dumper, sizeof(dumper), "%s/slow-dumper2", test_dir);
    snprintf(mark, sizeof(mark), "%s/tail-started2", test_dir);
    write_slow_dumper(dumper, mark);
    test_base_env(&env);
    test_opts(&o, "export T2=yes", "/", &env);
    o.env_dumper = dumper;
    o.timeout_ms = 200; /* passes while the 500 ms tail runs */
    o.kill_grace_ms = 100;
    test_run_opts(&o, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_true(oc.captured);
    assert_string_equal(rp_env_get(&oc.env_after, "T2"), "yes");
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
    unlink(mark);
    unlink(dumper);
}

/* Values a session cannot store are dropped, with a note on stderr. */
static void test_env_limits(void **state)
{
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    test_run("export BIG=$(head -c 40000 /dev/zero | tr '\\000' x) "
             "BAD=$(printf '\\377') OK=1",
             "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_true(oc.captured);
    assert_null(rp_env_get(&oc.env_after, "BIG"));
    assert_null(rp_env_get(&oc.env_after, "BAD"));
    assert_string_equal(rp_env_get(&oc.env_after, "OK"), "1");
    assert_non_null(strstr(oc.stderr_data, "not saving variable BIG"));
    assert_non_null(strstr(oc.stderr_data, "not saving variable BAD"));
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* A command of RP_COMMAND_MAX bytes (twice the kernel's 128 KiB limit on
 * one argv string) runs: it is sourced from a file, with $0 "sh", no
 * positional parameters, and its exit status kept. */
static void test_command_256k(void **state)
{
    const char *tail = "\necho ok \"$0\" $#; exit 3\n";
    char *cmd = malloc(RP_COMMAND_MAX + 1), want[64];
    size_t n = RP_COMMAND_MAX - strlen(tail), lit;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    assert_non_null(cmd);
    test_base_env(&env);
    memset(cmd, 'c', n);
    cmd[0] = '#';
    memcpy(cmd + n, tail, strlen(tail) + 1);
    assert_int_equal(strlen(cmd), RP_COMMAND_MAX);
    test_run(cmd, "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_FAILED);
    assert_int_equal(oc.exit_code, 3);
    assert_true(oc.captured);
    assert_string_equal(oc.stdout_data, "ok sh 0\n");
    rp_exec_outcome_clear(&oc);

    /* A 200 KiB literal reaches the shell whole. */
    lit = 200 * 1024;
    memcpy(cmd, "x='", 3);
    memset(cmd + 3, 'a', lit);
    memcpy(cmd + 3 + lit, "'; echo ${#x}", 14);
    test_run(cmd, "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    snprintf(want, sizeof(want), "%zu\n", lit);
    assert_string_equal(oc.stdout_data, want);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
    free(cmd);
}

/* Shell messages count the user's own lines; `set -e`, a syntax error and
 * `exit` inside the sourced command end the shell as they would in
 * `sh -c`, and the capture still happens. */
static void test_sourced_semantics(void **state)
{
    rp_exec_outcome_t oc;
    rp_env_t env = {0};

    (void)state;
    test_base_env(&env);
    test_run("true\nrp_no_such_command_xyz\necho after", "/", &env, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(oc.stdout_data, "after\n");
    assert_non_null(strstr(oc.stderr_data, "rp_no_such_command_xyz"));
    assert_non_null(strstr(oc.stderr_data, "2"));
    rp_exec_outcome_clear(&oc);

    test_run("export K=1; set -e; false; echo not-reached", "/", &env, &oc);
    assert_int_equal(oc.exit_code, 1);
    assert_string_equal(oc.stdout_data, "");
    assert_true(oc.captured);
    assert_string_equal(rp_env_get(&oc.env_after, "K"), "1");
    rp_exec_outcome_clear(&oc);

    test_run("export K=2\nif then", "/", &env, &oc);
    assert_int_equal(oc.exit_code, 2);
    assert_non_null(strstr(oc.stderr_data, "then"));
    rp_exec_outcome_clear(&oc);

    test_run("f() { return 4; }; f; echo $?; exit", "/", &env, &oc);
    assert_string_equal(oc.stdout_data, "4\n");
    assert_int_equal(oc.exit_code, 0);
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* Values that stress quoting, exported and then restored through the
 * sourced file (a tiny envp budget puts every variable there) and
 * captured by `export -p` (the dumper cannot be exec'd): byte-exact. */
static void test_env_file_and_export_p(void **state)
{
    static const char *const vals[][2] = {
        {"Q1", "it's"},        {"Q2", "say \"hi\""},  {"Q3", "a\nb\n"},
        {"Q4", "back\\slash"}, {"Q5", "$HOME `x`"},   {"Q6", ""},
        {"Q7", "tab\there"},   {"Q8", "caf\xc3\xa9"}, {"Q9", "''\"\"''"},
    };
    size_t nv = sizeof(vals) / sizeof(*vals);
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    rp_env_t env = {0};
    char cmd[512];

    (void)state;
    test_base_env(&env);
    for (size_t i = 0; i < nv; i++)
        assert_int_equal(rp_env_set(&env, vals[i][0], vals[i][1]), RP_OK);
    /* printf shows what the shell got; N is new, U exported unset. */
    rp_test_format(cmd, sizeof(cmd),
                   "printf '[%%s]' \"$Q1\" \"$Q3\" \"$Q9\"; "
                   "export N='x'\\''y' U; unset U; export U");
    test_opts(&o, cmd, "/", &env);
    o.envp_max = 1; /* nothing fits: all from the sourced file */
    o.env_dumper = "/nonexistent/runpool-dump-env";
    test_run_opts(&o, &oc);
    assert_int_equal(oc.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(oc.stdout_data, "[it's][a\nb\n][''\"\"'']");
    assert_true(oc.captured);
    assert_string_equal(oc.stderr_data, "");
    for (size_t i = 0; i < nv; i++) {
        const char *got = rp_env_get(&oc.env_after, vals[i][0]);

        assert_non_null(got);
        assert_string_equal(got, vals[i][1]);
    }
    assert_string_equal(rp_env_get(&oc.env_after, "N"), "x'y");
    assert_null(rp_env_get(&oc.env_after, "U"));
    assert_string_equal(rp_env_get(&oc.env_after, "PATH"), TEST_DEFAULT_PATH);
    assert_int_equal(oc.env_after.n, nv + 2); /* + PATH, N */
    rp_exec_outcome_clear(&oc);
    rp_env_clear(&env);
}

/* 80 exports of 30 KiB (2.4 MB, over the kernel's 2 MiB exec limit): the
 * dumper's exec gets E2BIG, the builtin export -p saves them all; a 40 KiB
 * one is dropped with the documented line, the others are not. The next
 * command starts with all of them (sourced from a file, as environ cannot
 * hold them) and sees them with builtins. */
static void test_many_large_exports(void **state)
{
    rp_exec_outcome_t a, b;
    rp_env_t env = {0};
    char name[16], *val = malloc(30 * 1024 + 1);

    (void)state;
    test_base_env(&env);
    test_run("b=$(printf '%30720s' '' | tr ' ' v); i=0; "
             "while [ $i -lt 80 ]; do export V$i=\"$b\"; i=$((i+1)); done; "
             "export HUGE=\"$b$b\" SMALL=1",
             "/", &env, &a);
    assert_int_equal(a.status, RP_STATUS_SUCCEEDED);
    assert_true(a.captured);
    memset(val, 'v', 30 * 1024);
    val[30 * 1024] = '\0';
    for (int i = 0; i < 80; i++) {
        snprintf(name, sizeof(name), "V%d", i);
        assert_non_null(rp_env_get(&a.env_after, name));
        assert_string_equal(rp_env_get(&a.env_after, name), val);
    }
    assert_string_equal(rp_env_get(&a.env_after, "SMALL"), "1");
    assert_null(rp_env_get(&a.env_after, "HUGE"));
    assert_non_null(strstr(a.stderr_data, "runpool: not saving variable HUGE"));
    assert_null(strstr(a.stderr_data, "not saving variable V"));
    assert_null(strstr(a.stderr_data, "Argument list too long"));

    test_run("n=0; for v in \"$V0\" \"$V40\" \"$V79\"; do "
             "[ ${#v} -eq 30720 ] && n=$((n+1)); done; echo $n; "
             "export MORE=1",
             "/", &a.env_after, &b);
    assert_int_equal(b.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(b.stdout_data, "3\n");
    assert_true(b.captured);
    assert_string_equal(rp_env_get(&b.env_after, "MORE"), "1");
    assert_string_equal(rp_env_get(&b.env_after, "V79"), val);
    assert_int_equal(b.env_after.n, a.env_after.n + 1);
    rp_exec_outcome_clear(&a);
    rp_exec_outcome_clear(&b);
    rp_env_clear(&env);
    free(val);
}

/* The export -p reader on the forms dash, bash and busybox print. */
static void test_exports_to_dump(void **state)
{
    static const char in[] =
        "export A='x'\"'\"'y'\n"
        "export B=\"q\\\"\\$\\`\\\\z\"\n"
        "declare -x C=$'a\\nb\\001\\'\\x41'\n"
        "declare -rx D=\"1\"\n"
        "export E\n"
        "export F='multi\nline'\n"
        "export G=plain\\ word\n";
    static const char want[] = "A=x'y\0B=q\"$`\\z\0C=a\nb\001'A\0D=1\0"
                               "F=multi\nline\0G=plain word\0";
    static const char *const bad[] = {
        "garbage\n", "export A='open\n", "export A=\"open\n",
        "export =x\n", "export A=$'\\q'\n", "export A=x y\n",
        "export A=$'\\0'\n",
    };
    rp_buf_t out;

    (void)state;
    rp_buf_init(&out, 4096);
    assert_int_equal(rp_exec_exports_to_dump(in, strlen(in), &out), RP_OK);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    rp_buf_free(&out);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        rp_buf_init(&out, 4096);
        if (rp_exec_exports_to_dump(bad[i], strlen(bad[i]), &out) !=
            RP_ERR_INVALID)
            fail_msg("accepted: %s", bad[i]);
        rp_buf_free(&out);
    }
    rp_buf_init(&out, 4);
    assert_int_equal(rp_exec_exports_to_dump(in, strlen(in), &out),
                     RP_ERR_TOO_LARGE);
    rp_buf_free(&out);
}

static void test_invalid_opts(void **state)
{
    rp_exec_opts_t o;
    rp_exec_outcome_t oc;
    char errstr[128] = "";

    (void)state;
    rp_exec_opts_init(&o);
    assert_int_equal(rp_exec_run(&o, &oc, errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    rp_exec_outcome_clear(&oc);
    o.command = "true";
    o.env_dumper = "relative/dumper";
    assert_int_equal(rp_exec_run(&o, &oc, errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(errstr, "absolute"));
    rp_exec_outcome_clear(&oc);
    o.env_dumper = test_dumper;
    o.output_max = RP_OUTPUT_MAX_LIMIT + 1;
    assert_int_equal(rp_exec_run(&o, &oc, errstr, sizeof(errstr)),
                     RP_ERR_INVALID);
    rp_exec_outcome_clear(&oc);
    rp_exec_outcome_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cwd_env_carry_over),
        cmocka_unit_test(test_cd_tmp),
        cmocka_unit_test(test_exit_code_kept),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_timeout_grace_sigkill),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_truncation_utf8_boundary),
        cmocka_unit_test(test_non_utf8_base64),
        cmocka_unit_test(test_background_no_hang),
        cmocka_unit_test(test_env_exact_and_export),
        cmocka_unit_test(test_capture_robust),
        cmocka_unit_test(test_quoted_cwd),
        cmocka_unit_test(test_shell_quote),
        cmocka_unit_test(test_missing_cwd_created),
        cmocka_unit_test(test_uncreatable_cwd_fallback),
        cmocka_unit_test(test_stdin_devnull),
        cmocka_unit_test(test_cancel_before_start),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_during_tail),
        cmocka_unit_test(test_timeout_during_tail),
        cmocka_unit_test(test_env_limits),
        cmocka_unit_test(test_command_256k),
        cmocka_unit_test(test_sourced_semantics),
        cmocka_unit_test(test_env_file_and_export_p),
        cmocka_unit_test(test_many_large_exports),
        cmocka_unit_test(test_exports_to_dump),
        cmocka_unit_test(test_invalid_opts),
    };

    int failed = cmocka_run_group_tests_name("capture by export -p (default)",
                                             tests, test_setup_builtin,
                                             test_teardown);

    return failed + cmocka_run_group_tests_name("capture by the dumper", tests,
                                                test_setup_dumper,
                                                test_teardown);
}
