/* runpool-executor, the program: spawned with a crafted job environment
 * (built with rp_jobenv_build, the worker's side of the contract) against
 * a temporary file:// state directory. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rp_test_dir.h"
#include "rp_buf.h"
#include "rp_claim.h"
#include "rp_jobenv.h"
#include "rp_layout.h"
#include "rp_msg.h"
#include "rp_state.h"
#include "rp_test_fmt.h"
#include "rp_time.h"

#define TEST_PATH_MAX 4096
#define TEST_CAPTURE_MAX (1024 * 1024) /* executor stdout/stderr we read */
#define TEST_WAIT_MS 20000             /* an executor run must end by then */

static char test_bin[TEST_PATH_MAX];
static char test_dir[1024];
static char test_url[TEST_PATH_MAX];
static rp_state_t *test_st;

static int test_setup(void **state)
{
    const char *bin = getenv("RP_BIN_DIR"), *tmp = getenv("TMPDIR");
    char errstr[256];
    char state_dir[sizeof(test_dir) + 16];

    (void)state;
    if (!bin) {
        fprintf(stderr, "RP_BIN_DIR is not set (run through ctest)\n");
        return -1;
    }
    snprintf(test_bin, sizeof(test_bin), "%s/runpool-executor", bin);
    if (access(test_bin, X_OK) != 0) {
        fprintf(stderr, "%s is not built\n", test_bin);
        return -1;
    }
    snprintf(test_dir, sizeof(test_dir), "%s/rp-test-exec-main.XXXXXX",
             tmp && tmp[0] == '/' ? tmp : "/tmp");
    if (!mkdtemp(test_dir))
        return -1;
    snprintf(state_dir, sizeof(state_dir), "%s/state", test_dir);
    if (mkdir(state_dir, 0700) != 0)
        return -1;
    rp_test_format(test_url, sizeof(test_url), "file://%s?fsync=0", state_dir);
    if (rp_state_open(test_url, &test_st, errstr, sizeof(errstr)) != RP_OK) {
        fprintf(stderr, "rp_state_open: %s\n", errstr);
        return -1;
    }
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    rp_state_destroy(test_st);
    return rp_test_rmtree(test_dir);
}

static void test_subdir(const char *name, char *out, size_t out_size)
{
    rp_test_format(out, out_size, "%s/%s", test_dir, name);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", out, strerror(errno));
}

/* A job spec with everything the contract requires. */
static void test_spec(rp_jobspec_t *spec, const char *exec_id,
                      const char *session_id, const char *command)
{
    memset(spec, 0, sizeof(*spec));
    rp_test_format(spec->execution_id, sizeof(spec->execution_id), "%s", exec_id);
    rp_test_format(spec->session_id, sizeof(spec->session_id), "%s", session_id);
    spec->command = strdup(command);
    spec->state_url = strdup(test_url);
    spec->timeout_s = 10;
    assert_non_null(spec->command);
    assert_non_null(spec->state_url);
}

/* The job environment for spec, plus extra (may be NULL). */
static void test_job_env(const rp_jobspec_t *spec, rp_env_t *env)
{
    char errstr[256];

    memset(env, 0, sizeof(*env));
    if (rp_jobenv_build(spec, env, errstr, sizeof(errstr)) != RP_OK)
        fail_msg("rp_jobenv_build: %s", errstr);
}

/* When set, the executor's stdin is this file instead of /dev/null. */
static const char *test_stdin;

/* Start the executor with exactly env (and one optional argument); its
 * stdout and stderr go to files in test_dir. */
static pid_t test_start(const rp_env_t *env, const char *arg)
{
    char out_path[TEST_PATH_MAX], err_path[TEST_PATH_MAX];
    char *argv[] = {test_bin, (char *)arg, NULL};
    char **envp = calloc(env->n + 1, sizeof(*envp));
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int rc;

    assert_non_null(envp);
    for (size_t i = 0; i < env->n; i++) {
        size_t len = strlen(env->vars[i].name) + strlen(env->vars[i].value) + 2;

        envp[i] = malloc(len);
        assert_non_null(envp[i]);
        snprintf(envp[i], len, "%s=%s", env->vars[i].name, env->vars[i].value);
    }
    rp_test_format(out_path, sizeof(out_path), "%s/exec.out", test_dir);
    rp_test_format(err_path, sizeof(err_path), "%s/exec.err", test_dir);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, test_stdin ? test_stdin
                                                        : "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    rc = posix_spawn(&pid, test_bin, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; i < env->n; i++)
        free(envp[i]);
    free(envp);
    if (rc != 0)
        fail_msg("posix_spawn %s: %s", test_bin, strerror(rc));
    return pid;
}

/* Exit status of pid; fails (and kills it) if it runs past TEST_WAIT_MS. */
static int test_wait(pid_t pid)
{
    int64_t until = rp_time_mono_ms() + TEST_WAIT_MS;
    struct timespec tick = {0, 10 * 1000000L};
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (rp_time_mono_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("executor still running after %d ms", TEST_WAIT_MS);
        }
        nanosleep(&tick, NULL);
    }
    if (!WIFEXITED(status))
        fail_msg("executor died by signal %d", WTERMSIG(status));
    return WEXITSTATUS(status);
}

static int test_exec(const rp_env_t *env)
{
    return test_wait(test_start(env, NULL));
}

/* The executor's stdout or stderr ("out"/"err") into buf. */
static void test_read_output(const char *which, rp_buf_t *buf)
{
    char path[TEST_PATH_MAX], chunk[4096];
    int fd;
    ssize_t n;

    rp_test_format(path, sizeof(path), "%s/exec.%s", test_dir, which);
    rp_buf_init(buf, TEST_CAPTURE_MAX);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        assert_int_equal(rp_buf_append(buf, chunk, (size_t)n), RP_OK);
    close(fd);
    if (!buf->data)
        assert_int_equal(rp_buf_append(buf, "", 0), RP_OK);
}

static bool test_stderr_has(const char *needle)
{
    rp_buf_t b;
    bool found;

    test_read_output("err", &b);
    found = strstr(b.data, needle) != NULL;
    rp_buf_free(&b);
    return found;
}

/* Read and parse executions/{exec_id}/result.json; its version optional. */
static void test_record(const char *exec_id, rp_result_t *res,
                        uint64_t *version)
{
    char key[RP_STATE_KEY_MAX], errstr[256];
    rp_buf_t doc;

    rp_layout_result_key(exec_id, key, sizeof(key));
    rp_buf_init(&doc, RP_RESULT_MAX);
    if (rp_state_get(test_st, key, &doc, version, errstr, sizeof(errstr)) != RP_OK)
        fail_msg("get %s: %s", key, errstr);
    if (rp_result_parse(doc.data, doc.len, res, errstr, sizeof(errstr)) != RP_OK)
        fail_msg("parse %s: %s\n%s", key, errstr, doc.data);
    rp_buf_free(&doc);
}

static rp_err_t test_get(const char *key, rp_buf_t *doc, uint64_t *version)
{
    rp_buf_init(doc, RP_STATE_DOC_MAX);
    return rp_state_get(test_st, key, doc, version, NULL, 0);
}

static void test_put_session(const char *session_id, const char *cwd,
                             const rp_env_t *env, uint64_t *version)
{
    char key[RP_STATE_KEY_MAX], errstr[256], *json;
    rp_session_t s;

    memset(&s, 0, sizeof(s));
    rp_test_format(s.session_id, sizeof(s.session_id), "%s", session_id);
    s.cwd = (char *)cwd;
    s.env = *env;
    s.created_at_ms = s.updated_at_ms = rp_time_wall_ms();
    s.execution_count = 1;
    rp_test_format(s.last_execution_id, sizeof(s.last_execution_id), "earlier");
    json = rp_session_to_json(&s);
    assert_non_null(json);
    rp_layout_session_key(session_id, key, sizeof(key));
    if (rp_state_put(test_st, key, json, strlen(json), RP_STATE_ANY, version,
                     errstr, sizeof(errstr)) != RP_OK)
        fail_msg("put %s: %s", key, errstr);
    free(json);
}

/* Read and parse executions/{exec_id}/claim.json. */
static void test_claim(const char *exec_id, rp_claim_t *c)
{
    char key[RP_STATE_KEY_MAX], errstr[256];
    rp_buf_t doc;

    rp_claim_key(exec_id, key, sizeof(key));
    if (test_get(key, &doc, NULL) != RP_OK)
        fail_msg("no claim %s", key);
    if (rp_claim_parse(doc.data, doc.len, c, errstr, sizeof(errstr)) != RP_OK)
        fail_msg("parse %s: %s\n%s", key, errstr, doc.data);
    rp_buf_free(&doc);
}

static bool test_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* A run writes the record with the right fields and no session state. */
static void test_main_writes_result(void **state)
{
    char home[TEST_PATH_MAX], want_cwd[TEST_PATH_MAX], key[RP_STATE_KEY_MAX];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    rp_buf_t doc;

    (void)state;
    test_subdir("home1", home, sizeof(home));
    test_spec(&spec, "exec-1", "sess-1",
              "echo hi; echo oops >&2; mkdir -p sub && cd sub; "
              "export FOO=bar; exit 3");
    spec.default_cwd = strdup(home);
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 0);

    test_record("exec-1", &res, NULL);
    rp_test_format(want_cwd, sizeof(want_cwd), "%s/sub", home);
    assert_string_equal(res.execution_id, "exec-1");
    assert_string_equal(res.session_id, "sess-1");
    assert_int_equal(res.status, RP_STATUS_FAILED);
    assert_true(res.has_exit_code);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.stdout_data, "hi\n");
    assert_string_equal(res.stderr_data, "oops\n");
    assert_string_equal(res.cwd, want_cwd);
    assert_true(res.started_at_ms > 0);
    assert_true(res.finished_at_ms >= res.started_at_ms);
    assert_true(res.has_env);
    assert_string_equal(rp_env_get(&res.env, "FOO"), "bar");
    /* The default PATH was ours, not the session's: not saved. */
    assert_null(rp_env_get(&res.env, "PATH"));
    assert_int_equal(res.env.n, 1);
    assert_null(res.error_code);
    rp_result_clear(&res);

    /* The worker is the only writer of session state. */
    rp_layout_session_key("sess-1", key, sizeof(key));
    assert_int_equal(test_get(key, &doc, NULL), RP_ERR_NOT_FOUND);
    rp_buf_free(&doc);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* RUNPOOL_REQUEST_REF=- (the local backend): the request document comes
 * on stdin, with the largest command and six 30 KiB per-request values;
 * neither COMMAND nor COMMAND_ENV is in the environment. An empty stdin
 * is a contract error with an "error" record that says so. */
static void test_main_request_stdin(void **state)
{
    char path[TEST_PATH_MAX], es[256], want[64], *doc = NULL;
    char *cmd = malloc(RP_COMMAND_MAX + 1), *val = malloc(30 * 1024 + 1);
    const char *tail = "'; echo ${#x} ${#E0} ${#E5}";
    size_t n = RP_COMMAND_MAX - 3 - strlen(tail);
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    FILE *f;

    (void)state;
    assert_non_null(cmd);
    assert_non_null(val);
    memcpy(cmd, "x='", 3);
    memset(cmd + 3, 'a', n);
    memcpy(cmd + 3 + n, tail, strlen(tail) + 1);
    memset(val, 'e', 30 * 1024);
    val[30 * 1024] = '\0';
    test_spec(&spec, "exec-stdin", "sess-stdin", cmd);
    for (int i = 0; i < 6; i++) {
        char name[8];

        snprintf(name, sizeof(name), "E%d", i);
        assert_int_equal(rp_env_set(&spec.env, name, val), RP_OK);
    }
    test_job_env(&spec, &env);
    assert_int_equal(rp_jobenv_use_request_stdin(&env, es, sizeof(es)), RP_OK);
    assert_null(rp_env_get(&env, "COMMAND"));
    assert_null(rp_env_get(&env, "COMMAND_ENV"));
    assert_int_equal(rp_jobenv_request_json(&spec, &doc, es, sizeof(es)),
                     RP_OK);
    rp_test_format(path, sizeof(path), "%s/request-stdin.json", test_dir);
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(fwrite(doc, 1, strlen(doc), f), strlen(doc));
    fclose(f);
    test_stdin = path;
    assert_int_equal(test_exec(&env), 0);
    test_stdin = NULL;
    test_record("exec-stdin", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    snprintf(want, sizeof(want), "%zu 30720 30720\n", n);
    assert_string_equal(res.stdout_data, want);
    /* Per-request variables apply to one command. */
    assert_null(rp_env_get(&res.env, "E0"));
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);

    /* Nothing on stdin. */
    test_spec(&spec, "exec-stdin-2", "sess-stdin", "echo never");
    test_job_env(&spec, &env);
    assert_int_equal(rp_jobenv_use_request_stdin(&env, es, sizeof(es)), RP_OK);
    assert_int_equal(test_exec(&env), 2);
    test_record("exec-stdin-2", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_ERROR);
    assert_non_null(strstr(res.error_message, "standard input"));
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
    free(doc);
    free(cmd);
    free(val);
}

/* The same EXECUTION_ID again: the record is kept, the command not rerun. */
static void test_main_rerun_keeps_record(void **state)
{
    char marker[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    uint64_t v1, v2;

    (void)state;
    rp_test_format(marker, sizeof(marker), "%s/rerun-marker", test_dir);
    test_spec(&spec, "exec-rerun", "sess-rerun", "echo first");
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 0);
    test_record("exec-rerun", &res, &v1);
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);

    rp_test_format(cmd, sizeof(cmd), "touch '%s'; echo second", marker);
    test_spec(&spec, "exec-rerun", "sess-rerun", cmd);
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 0);
    assert_true(test_stderr_has("result_exists"));
    test_record("exec-rerun", &res, &v2);
    assert_int_equal(v1, v2);
    assert_string_equal(res.stdout_data, "first\n");
    assert_false(test_exists(marker));
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* A record that appears while the command runs wins: create-only write. */
static void test_main_create_only_race(void **state)
{
    char marker[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64], key[RP_STATE_KEY_MAX];
    const char *theirs =
        "{\"v\":1,\"execution_id\":\"exec-race\",\"session_id\":\"sess-race\","
        "\"status\":\"succeeded\",\"exit_code\":0,\"signal\":null,"
        "\"stdout\":\"theirs\",\"stderr\":\"\",\"stdout_truncated\":false,"
        "\"stderr_truncated\":false,\"encoding\":\"utf-8\",\"duration_ms\":1,"
        "\"env\":{}}";
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    int64_t until;
    pid_t pid;

    (void)state;
    rp_test_format(marker, sizeof(marker), "%s/race-started", test_dir);
    rp_test_format(cmd, sizeof(cmd), "touch '%s'; sleep 1; echo ours", marker);
    test_spec(&spec, "exec-race", "sess-race", cmd);
    test_job_env(&spec, &env);
    pid = test_start(&env, NULL);
    until = rp_time_mono_ms() + TEST_WAIT_MS;
    while (!test_exists(marker) && rp_time_mono_ms() < until)
        usleep(10000);
    assert_true(test_exists(marker));
    rp_layout_result_key("exec-race", key, sizeof(key));
    assert_int_equal(rp_state_put(test_st, key, theirs, strlen(theirs), 0, NULL,
                                  NULL, 0),
                     RP_OK);
    assert_int_equal(test_wait(pid), 0);
    assert_true(test_stderr_has("result_exists"));
    test_record("exec-race", &res, NULL);
    assert_string_equal(res.stdout_data, "theirs");
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* A missing or malformed contract variable: exit 2, the variable named in
 * the log and, when the ids and the store are usable, in an "error"
 * record. */
static void test_main_missing_variable(void **state)
{
    static const struct {
        const char *name;
        bool record; /* can the executor still address a record? */
    } cases[] = {
        {"COMMAND", true},
        {"TIMEOUT", true},
        {"EXECUTION_ID", false},
        {"RUNPOOL_STATE_URL", false},
    };
    char exec_id[64], key[RP_STATE_KEY_MAX];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    rp_buf_t doc;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        rp_test_format(exec_id, sizeof(exec_id), "exec-missing-%zu", i);
        test_spec(&spec, exec_id, "sess-missing", "echo never");
        test_job_env(&spec, &env);
        rp_env_unset(&env, cases[i].name);
        assert_int_equal(test_exec(&env), 2);
        if (!test_stderr_has(cases[i].name))
            fail_msg("stderr does not name %s", cases[i].name);
        if (cases[i].record) {
            test_record(exec_id, &res, NULL);
            assert_int_equal(res.status, RP_STATUS_ERROR);
            assert_non_null(strstr(res.error_message, cases[i].name));
            rp_result_clear(&res);
        } else {
            rp_layout_result_key(exec_id, key, sizeof(key));
            assert_int_equal(test_get(key, &doc, NULL), RP_ERR_NOT_FOUND);
            rp_buf_free(&doc);
        }
        rp_env_clear(&env);
        rp_jobspec_clear(&spec);
    }
    test_spec(&spec, "exec-bad-timeout", "sess-missing", "echo never");
    test_job_env(&spec, &env);
    assert_int_equal(rp_env_set(&env, "TIMEOUT", "soon"), RP_OK);
    assert_int_equal(test_exec(&env), 2);
    assert_true(test_stderr_has("TIMEOUT"));
    test_record("exec-bad-timeout", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_ERROR);
    assert_string_equal(res.error_code, "invalid");
    assert_non_null(strstr(res.error_message, "TIMEOUT"));
    assert_int_equal(res.stdout_len, 0);
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* The session's cwd and env are used; the state file is left untouched. */
static void test_main_session_honoured(void **state)
{
    char work[TEST_PATH_MAX], want[TEST_PATH_MAX + 64], key[RP_STATE_KEY_MAX];
    rp_jobspec_t spec;
    rp_env_t env, senv = {0};
    rp_result_t res;
    rp_buf_t before, after;
    uint64_t v0, v1;

    (void)state;
    test_subdir("work", work, sizeof(work));
    assert_int_equal(rp_env_set(&senv, "GREETING", "hello"), RP_OK);
    assert_int_equal(rp_env_set(&senv, "PATH", "/usr/bin:/bin"), RP_OK);
    test_put_session("sess-2", work, &senv, &v0);
    rp_layout_session_key("sess-2", key, sizeof(key));
    assert_int_equal(test_get(key, &before, NULL), RP_OK);

    test_spec(&spec, "exec-2", "sess-2", "pwd; echo $GREETING; echo $PATH");
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 0);
    test_record("exec-2", &res, NULL);
    rp_test_format(want, sizeof(want), "%s\nhello\n/usr/bin:/bin\n", work);
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(res.stdout_data, want);
    assert_string_equal(res.cwd, work);
    assert_string_equal(rp_env_get(&res.env, "GREETING"), "hello");
    /* The session's own PATH is part of the session and stays. */
    assert_string_equal(rp_env_get(&res.env, "PATH"), "/usr/bin:/bin");

    assert_int_equal(test_get(key, &after, &v1), RP_OK);
    assert_int_equal(v0, v1);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    rp_buf_free(&before);
    rp_buf_free(&after);
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_env_clear(&senv);
    rp_jobspec_clear(&spec);
}

/* COMMAND_ENV applies to one command; a change the command made sticks. */
static void test_main_command_env(void **state)
{
    char work[TEST_PATH_MAX];
    rp_jobspec_t spec;
    rp_env_t env, senv = {0};
    rp_result_t res;

    (void)state;
    test_subdir("cmdenv", work, sizeof(work));
    assert_int_equal(rp_env_set(&senv, "A", "session"), RP_OK);
    test_put_session("sess-3", work, &senv, NULL);
    test_spec(&spec, "exec-3", "sess-3",
              "echo \"$A $B $C\"; export C=changed; export D=new");
    assert_int_equal(rp_env_set(&spec.env, "A", "cmd"), RP_OK);
    assert_int_equal(rp_env_set(&spec.env, "B", "once"), RP_OK);
    assert_int_equal(rp_env_set(&spec.env, "C", "x"), RP_OK);
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 0);
    test_record("exec-3", &res, NULL);
    assert_string_equal(res.stdout_data, "cmd once x\n");
    assert_string_equal(rp_env_get(&res.env, "A"), "session");
    assert_null(rp_env_get(&res.env, "B"));
    assert_string_equal(rp_env_get(&res.env, "C"), "changed");
    assert_string_equal(rp_env_get(&res.env, "D"), "new");
    assert_int_equal(res.env.n, 3);
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_env_clear(&senv);
    rp_jobspec_clear(&spec);
}

/* The contract never reaches the command nor the session. */
static void test_main_contract_hidden(void **state)
{
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;

    (void)state;
    test_spec(&spec, "exec-4", "sess-4",
              "env; export RUNPOOL_MINE=1 TIMEOUT=5 KEEP=1");
    assert_int_equal(rp_env_set(&spec.env, "PER", "cmd"), RP_OK);
    spec.output_max = 4096;
    test_job_env(&spec, &env);
    assert_int_equal(rp_env_set(&env, "UNRELATED_PLATFORM_VAR", "x"), RP_OK);
    assert_int_equal(test_exec(&env), 0);
    test_record("exec-4", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_non_null(strstr(res.stdout_data, "PER=cmd\n"));
    assert_non_null(strstr(res.stdout_data, "PATH="));
    assert_null(strstr(res.stdout_data, "EXECUTION_ID="));
    assert_null(strstr(res.stdout_data, "SESSION_ID="));
    assert_null(strstr(res.stdout_data, "COMMAND"));
    assert_null(strstr(res.stdout_data, "RUNPOOL_"));
    assert_null(strstr(res.stdout_data, "TIMEOUT="));
    assert_null(strstr(res.stdout_data, "UNRELATED_PLATFORM_VAR"));
    assert_string_equal(rp_env_get(&res.env, "KEEP"), "1");
    assert_null(rp_env_get(&res.env, "RUNPOOL_MINE"));
    assert_null(rp_env_get(&res.env, "TIMEOUT"));
    assert_null(rp_env_get(&res.env, "PER"));
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* Corrupt session state: an "error" record, exit 1, command not run. */
static void test_main_corrupt_state(void **state)
{
    char key[RP_STATE_KEY_MAX], marker[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 16];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;

    (void)state;
    rp_layout_session_key("sess-5", key, sizeof(key));
    assert_int_equal(rp_state_put(test_st, key, "{not json", 9, RP_STATE_ANY,
                                  NULL, NULL, 0),
                     RP_OK);
    rp_test_format(marker, sizeof(marker), "%s/corrupt-marker", test_dir);
    rp_test_format(cmd, sizeof(cmd), "touch '%s'", marker);
    test_spec(&spec, "exec-5", "sess-5", cmd);
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), 1);
    assert_false(test_exists(marker));
    test_record("exec-5", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_ERROR);
    assert_non_null(res.error_code);
    assert_non_null(res.error_message);
    assert_non_null(strstr(res.error_message, "sessions/sess-5/state.json"));
    assert_false(res.has_env);
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* A new session starts in $HOME when no RUNPOOL_DEFAULT_CWD is given. */
static void test_main_new_session_home(void **state)
{
    char home[TEST_PATH_MAX];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;

    (void)state;
    test_subdir("home2", home, sizeof(home));
    test_spec(&spec, "exec-6", "sess-6", "echo \"$HOME\"");
    test_job_env(&spec, &env);
    assert_int_equal(rp_env_set(&env, "HOME", home), RP_OK);
    assert_int_equal(test_exec(&env), 0);
    test_record("exec-6", &res, NULL);
    assert_string_equal(res.cwd, home);
    assert_int_equal(res.stdout_len, strlen(home) + 1);
    assert_memory_equal(res.stdout_data, home, strlen(home));
    /* HOME came from the executor, not from the session: not saved. */
    assert_null(rp_env_get(&res.env, "HOME"));
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* TIMEOUT is enforced; the record says timed_out and the program exits 0. */
static void test_main_timeout(void **state)
{
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    int64_t t0;

    (void)state;
    test_spec(&spec, "exec-7", "sess-7", "echo start; sleep 30");
    spec.timeout_s = 1;
    test_job_env(&spec, &env);
    t0 = rp_time_mono_ms();
    assert_int_equal(test_exec(&env), 0);
    assert_true(rp_time_mono_ms() - t0 < 6000);
    test_record("exec-7", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_TIMED_OUT);
    assert_string_equal(res.stdout_data, "start\n");
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* SIGTERM to the executor stops the command's whole group; no record. */
static void test_main_sigterm(void **state)
{
    char pidfile[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64], key[RP_STATE_KEY_MAX];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_buf_t doc;
    int64_t until;
    pid_t pid, bg = 0;
    FILE *f;

    (void)state;
    rp_test_format(pidfile, sizeof(pidfile), "%s/bg.pid", test_dir);
    rp_test_format(cmd, sizeof(cmd), "sleep 30 & echo $! > '%s.tmp'; mv '%s.tmp' '%s'; wait",
             pidfile, pidfile, pidfile);
    test_spec(&spec, "exec-8", "sess-8", cmd);
    test_job_env(&spec, &env);
    pid = test_start(&env, NULL);
    until = rp_time_mono_ms() + TEST_WAIT_MS;
    while (!test_exists(pidfile) && rp_time_mono_ms() < until)
        usleep(10000);
    assert_non_null(f = fopen(pidfile, "r"));
    assert_int_equal(fscanf(f, "%d", &bg), 1);
    fclose(f);
    assert_int_equal(kill(bg, 0), 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(test_wait(pid), 1);
    assert_true(test_stderr_has("execution_cancelled"));
    {
        /* Cut mid-command: the claim stays, telling the worker so. */
        rp_claim_t c;

        test_claim("exec-8", &c);
        assert_int_equal(strncmp(c.run, "local:", 6), 0);
    }
    assert_int_equal(kill(bg, 0), -1);
    assert_int_equal(errno, ESRCH);
    rp_layout_result_key("exec-8", key, sizeof(key));
    assert_int_equal(test_get(key, &doc, NULL), RP_ERR_NOT_FOUND);
    rp_buf_free(&doc);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* Before its command, the executor claims the execution, naming itself:
 * this boot, its pid (and start time); the attempt from RUNPOOL_ATTEMPT. */
static void test_main_claims(void **state)
{
    char boot[RP_CLAIM_BOOT_ID_MAX + 1], mine[RP_CLAIM_BOOT_ID_MAX + 1];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_claim_t c;
    uint64_t ticks;
    pid_t pid, claimed = 0;

    (void)state;
    test_spec(&spec, "exec-claim", "sess-claim", "echo hi");
    spec.attempt = 2;
    test_job_env(&spec, &env);
    pid = test_start(&env, NULL);
    assert_int_equal(test_wait(pid), 0);
    test_claim("exec-claim", &c);
    assert_string_equal(c.execution_id, "exec-claim");
    assert_int_equal(c.attempt, 2);
    assert_true(c.claimed_at_ms > 0);
    assert_string_equal(c.job, "");
    assert_int_equal(rp_claim_local_parse(c.run, boot, &claimed, &ticks),
                     RP_OK);
    assert_int_equal(claimed, pid);
    assert_int_equal(rp_claim_boot_id(mine), RP_OK);
    assert_string_equal(boot, mine);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);

    /* On Cloud Run the run is the execution (and the job is kept). */
    test_spec(&spec, "exec-claim-cr", "sess-claim", "echo hi");
    test_job_env(&spec, &env);
    assert_int_equal(rp_env_set(&env, "CLOUD_RUN_EXECUTION", "rp-job-x7k2p"),
                     RP_OK);
    assert_int_equal(rp_env_set(&env, "CLOUD_RUN_JOB", "rp-job"), RP_OK);
    assert_int_equal(test_exec(&env), 0);
    test_claim("exec-claim-cr", &c);
    assert_string_equal(c.run, "cloudrun:rp-job-x7k2p");
    assert_string_equal(c.job, "rp-job");
    assert_int_equal(c.attempt, 1);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* Another run's claim: the command is not run, nothing is written, and
 * the exit status says why (RP_EXEC_EXIT_CLAIMED). */
static void test_main_claimed_elsewhere(void **state)
{
    char marker[TEST_PATH_MAX], cmd[TEST_PATH_MAX + 64], key[RP_STATE_KEY_MAX];
    char errstr[256], *json;
    rp_jobspec_t spec;
    rp_env_t env;
    rp_claim_t c;
    rp_buf_t doc;

    (void)state;
    memset(&c, 0, sizeof(c));
    rp_test_format(c.execution_id, sizeof(c.execution_id), "exec-taken");
    rp_test_format(c.run, sizeof(c.run), "cloudrun:someone-else");
    c.attempt = 1;
    c.claimed_at_ms = rp_time_wall_ms();
    assert_non_null(json = rp_claim_to_json(&c));
    rp_claim_key("exec-taken", key, sizeof(key));
    assert_int_equal(rp_state_put(test_st, key, json, strlen(json), 0, NULL,
                                  errstr, sizeof(errstr)),
                     RP_OK);
    free(json);

    rp_test_format(marker, sizeof(marker), "%s/taken-marker", test_dir);
    rp_test_format(cmd, sizeof(cmd), "touch '%s'", marker);
    test_spec(&spec, "exec-taken", "sess-taken", cmd);
    test_job_env(&spec, &env);
    assert_int_equal(test_exec(&env), RP_EXEC_EXIT_CLAIMED);
    assert_false(test_exists(marker));
    assert_true(test_stderr_has("execution_claimed"));
    assert_true(test_stderr_has("cloudrun:someone-else"));
    rp_layout_result_key("exec-taken", key, sizeof(key));
    assert_int_equal(test_get(key, &doc, NULL), RP_ERR_NOT_FOUND);
    rp_buf_free(&doc);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* Copy an executable (no system(): the project rule holds in tests too). */
static void test_copy_exe(const char *from, const char *to)
{
    char chunk[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ssize_t n;

    assert_true(in >= 0 && out >= 0);
    while ((n = read(in, chunk, sizeof(chunk))) > 0)
        assert_int_equal(write(out, chunk, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    assert_int_equal(close(out), 0);
}

/* The bug of issue 8, end to end: SIGTERM to the executor after the
 * command exited, while the shell's capture tail runs (a dumper made
 * slow, named by RUNPOOL_ENV_DUMPER), still writes the
 * record, with the captured cwd and env. */
static void test_main_sigterm_in_tail(void **state)
{
    char bindir[TEST_PATH_MAX], prog[TEST_PATH_MAX + 32];
    char dumper[TEST_PATH_MAX + 32], mark[TEST_PATH_MAX + 32];
    char saved_bin[TEST_PATH_MAX];
    rp_jobspec_t spec;
    rp_env_t env;
    rp_result_t res;
    int64_t until;
    pid_t pid;
    FILE *f;

    (void)state;
    test_subdir("tailbin", bindir, sizeof(bindir));
    rp_test_format(prog, sizeof(prog), "%s/runpool-executor", bindir);
    rp_test_format(dumper, sizeof(dumper), "%s/runpool-dump-env", bindir);
    rp_test_format(mark, sizeof(mark), "%s/tail-started", test_dir);
    test_copy_exe(test_bin, prog);
    assert_non_null(f = fopen(dumper, "w"));
    fprintf(f, "#!/bin/sh\n: > '%s'\nsleep 0.5\nexec '%s' --dump-env\n",
            mark, test_bin);
    fclose(f);
    assert_int_equal(chmod(dumper, 0755), 0);

    test_spec(&spec, "exec-tail", "sess-tail",
              "cd /tmp && export TAILV=1 && echo done");
    test_job_env(&spec, &env);
    /* The slow dumper makes the tail long; by default there is none. */
    assert_int_equal(rp_env_set(&env, "RUNPOOL_ENV_DUMPER", dumper), RP_OK);
    memcpy(saved_bin, test_bin, sizeof(saved_bin));
    rp_test_format(test_bin, sizeof(test_bin), "%s", prog);
    pid = test_start(&env, NULL);
    memcpy(test_bin, saved_bin, sizeof(test_bin));
    until = rp_time_mono_ms() + TEST_WAIT_MS;
    while (!test_exists(mark) && rp_time_mono_ms() < until)
        usleep(5000);
    assert_true(test_exists(mark));
    assert_int_equal(kill(pid, SIGTERM), 0); /* as PR_SET_PDEATHSIG did */
    assert_int_equal(test_wait(pid), 0);
    assert_true(test_stderr_has("late_signal"));
    test_record("exec-tail", &res, NULL);
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_string_equal(res.stdout_data, "done\n");
    assert_string_equal(res.cwd, "/tmp");
    assert_string_equal(rp_env_get(&res.env, "TAILV"), "1");
    rp_result_clear(&res);
    rp_env_clear(&env);
    rp_jobspec_clear(&spec);
}

/* --dump-env writes exactly its environment, NUL-separated. */
static void test_main_dump_env(void **state)
{
    static const char want[] = "A=1\0B=two words\0EMPTY=\0";
    rp_env_t env = {0};
    rp_buf_t out;

    (void)state;
    assert_int_equal(rp_env_set(&env, "A", "1"), RP_OK);
    assert_int_equal(rp_env_set(&env, "B", "two words"), RP_OK);
    assert_int_equal(rp_env_set(&env, "EMPTY", ""), RP_OK);
    assert_int_equal(test_wait(test_start(&env, "--dump-env")), 0);
    test_read_output("out", &out);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    rp_buf_free(&out);
    /* Unknown arguments are a usage error. */
    assert_int_equal(test_wait(test_start(&env, "--bogus")), 2);
    rp_env_clear(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_writes_result),
        cmocka_unit_test(test_main_rerun_keeps_record),
        cmocka_unit_test(test_main_create_only_race),
        cmocka_unit_test(test_main_missing_variable),
        cmocka_unit_test(test_main_session_honoured),
        cmocka_unit_test(test_main_command_env),
        cmocka_unit_test(test_main_contract_hidden),
        cmocka_unit_test(test_main_corrupt_state),
        cmocka_unit_test(test_main_new_session_home),
        cmocka_unit_test(test_main_timeout),
        cmocka_unit_test(test_main_sigterm),
        cmocka_unit_test(test_main_dump_env),
        cmocka_unit_test(test_main_request_stdin),
        cmocka_unit_test(test_main_claims),
        cmocka_unit_test(test_main_claimed_elsewhere),
        cmocka_unit_test(test_main_sigterm_in_tail),
    };

    return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
