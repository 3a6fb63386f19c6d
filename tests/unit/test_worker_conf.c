/* rp_worker_new refuses bad configuration with a message that names the
 * setting, before connecting to anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_test_dir.h"
#include "rp_worker.h"

static char state_url[128];

static char exec_path[128];

static void base_conf(rp_worker_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->brokers = "127.0.0.1:1"; /* never contacted by these tests */
    c->state_url = state_url;
    c->backend_conf.executor_path = exec_path;
}

static void expect_error(rp_worker_conf_t *c, rp_err_t code, const char *names)
{
    rp_worker_t *w = (rp_worker_t *)1;
    char es[512] = "";

    assert_int_equal(rp_worker_new(c, &w, es, sizeof(es)), code);
    assert_null(w);
    if (!strstr(es, names))
        fail_msg("error '%s' does not name '%s'", es, names);
}

static void test_required_settings(void **state)
{
    rp_worker_conf_t c;

    (void)state;
    base_conf(&c);
    c.brokers = NULL;
    expect_error(&c, RP_ERR_INVALID, "--brokers");
    base_conf(&c);
    c.state_url = "";
    expect_error(&c, RP_ERR_INVALID, "--state");
}

static void test_bad_values(void **state)
{
    rp_worker_conf_t c;

    (void)state;
    base_conf(&c);
    c.max_inflight = -3;
    expect_error(&c, RP_ERR_INVALID, "--max-inflight");
    base_conf(&c);
    c.max_window = RP_WORKER_MAX_WINDOW_LIMIT + 1;
    expect_error(&c, RP_ERR_INVALID, "--max-window");
    base_conf(&c);
    c.max_running = -1;
    expect_error(&c, RP_ERR_INVALID, "--max-running");
    base_conf(&c);
    c.output_max = (size_t)RP_OUTPUT_MAX_LIMIT + 1;
    expect_error(&c, RP_ERR_INVALID, "--output-max");
    base_conf(&c);
    c.state_url = "s3://bucket";
    expect_error(&c, RP_ERR_INVALID, "s3");
    base_conf(&c);
    c.backend = "kubernetes";
    expect_error(&c, RP_ERR_INVALID, "kubernetes");
    base_conf(&c);
    c.backend_conf.executor_path = "/nonexistent/exec";
    expect_error(&c, RP_ERR_INVALID, "/nonexistent/exec");
    base_conf(&c);
    c.kafka_props = (const char *const[]){"no.such.setting=1"};
    c.n_kafka_props = 1;
    expect_error(&c, RP_ERR_INVALID, "no.such.setting");
}

static void test_valid_conf_creates_and_destroys(void **state)
{
    rp_worker_conf_t c;
    rp_worker_t *w = NULL;
    char es[512] = "";

    (void)state;
    base_conf(&c);
    assert_int_equal(rp_worker_new(&c, &w, es, sizeof(es)), RP_OK);
    assert_non_null(w);
    rp_worker_destroy(w);
    rp_worker_destroy(NULL);
}


/* The README's option table is what --help-markdown prints. */
static void test_readme_table_matches(void **state)
{
    const char *root = getenv("RP_SOURCE_DIR");
    char path[4096], *readme = NULL, *table = NULL, *begin, *end;
    size_t rlen = 0, tlen = 0;
    FILE *f, *mem;

    (void)state;
    assert_non_null(root);
    snprintf(path, sizeof(path), "%s/README.md", root);
    assert_non_null(f = fopen(path, "r"));
    readme = calloc(1, 1 << 20);
    assert_non_null(readme);
    rlen = fread(readme, 1, (1 << 20) - 1, f);
    fclose(f);
    assert_true(rlen > 0);
    assert_non_null(mem = open_memstream(&table, &tlen));
    rp_worker_conf_markdown(mem);
    fclose(mem);
    begin = strstr(readme, "<!-- worker-options:");
    assert_non_null(begin);
    begin = strchr(begin, '\n') + 1;
    end = strstr(begin, "<!-- end worker-options -->");
    assert_non_null(end);
    if ((size_t)(end - begin) != tlen || memcmp(begin, table, tlen) != 0)
        fail_msg("README.md's worker option table differs from "
                 "`runpool-worker --help-markdown`; regenerate it:\n%s",
                 table);
    free(table);
    free(readme);
}

static const char *fake_env(const char *name)
{
    if (!strcmp(name, "RUNPOOL_MAX_INFLIGHT"))
        return "77";
    if (!strcmp(name, "RUNPOOL_GROUP"))
        return "from-env";
    if (!strcmp(name, "RUNPOOL_DRAIN_TIMEOUT"))
        return "0";
    return NULL;
}

/* The environment fills options, the command line overrides them, and
 * values outside an option's range are refused with its name. */
static void test_parse_env_and_argv(void **state)
{
    static rp_worker_args_t a;
    char es[512];
    char *ok[] = {"runpool-worker", "--group", "from-argv", "-X",
                  "linger.ms=5", "--io-threads", "3", NULL};
    char *bad[] = {"runpool-worker", "--io-threads", "999", NULL};
    char *extra[] = {"runpool-worker", "stray", NULL};
    char *md[] = {"runpool-worker", "--help-markdown", NULL};

    (void)state;
    assert_int_equal(rp_worker_conf_parse(&a, 7, ok, fake_env, es, sizeof(es)),
                     RP_OK);
    assert_string_equal(a.conf.group, "from-argv");
    assert_int_equal(a.conf.max_inflight, 77);
    assert_int_equal(a.conf.io_threads, 3);
    assert_int_equal(a.conf.drain_timeout_s, RP_WORKER_DRAIN_NONE);
    assert_int_equal(a.conf.n_kafka_props, 1);
    assert_string_equal(a.conf.kafka_props[0], "linger.ms=5");
    assert_int_equal(a.action, RP_WORKER_ACTION_RUN);
    /* Defaults and the "0 = do not wait" drain survive the check. */
    a.conf.brokers = "b:9092";
    a.conf.state_url = "file:///tmp/x";
    assert_int_equal(rp_worker_conf_check(&a.conf, es, sizeof(es)), RP_OK);
    assert_int_equal(a.conf.drain_timeout_s, 0);
    assert_int_equal(a.conf.max_running, 77);
    assert_string_equal(a.conf.requests_topic, "runpool.requests");
    assert_int_equal(a.conf.timeout_grace_s, 60);

    assert_int_equal(rp_worker_conf_parse(&a, 3, bad, fake_env, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "--io-threads"));
    assert_int_equal(
        rp_worker_conf_parse(&a, 2, extra, fake_env, es, sizeof(es)),
        RP_ERR_INVALID);
    assert_non_null(strstr(es, "stray"));
    assert_int_equal(rp_worker_conf_parse(&a, 2, md, NULL, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(a.action, RP_WORKER_ACTION_HELP_MARKDOWN);
}

int main(void)
{
    char dir[] = "/tmp/rp-wconf-XXXXXX";
    sigset_t sigs;
    FILE *f;
    int rc;

    if (!mkdtemp(dir))
        return 1;
    snprintf(state_url, sizeof(state_url), "file://%s/state", dir);
    snprintf(exec_path, sizeof(exec_path), "%s/exec", dir);
    f = fopen(exec_path, "w");
    if (!f)
        return 1;
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    chmod(exec_path, 0755);
    /* As runpool-worker does before creating the worker. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required_settings),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_valid_conf_creates_and_destroys),
        cmocka_unit_test(test_readme_table_matches),
        cmocka_unit_test(test_parse_env_and_argv),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rp_test_rmtree(dir);
    return rc;
}
