/* rp_kafka's settings sources (rp_kafka_props_load): a kcat -F file, the
 * RUNPOOL_KAFKA_* environment and -X, in that order of precedence; the
 * refusal of a password file others can read; and the split of settings
 * by librdkafka's scope (rp_kafka_set_props_for), checked by reading the
 * real rd_kafka_conf_t back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rp_kafka.h"

static char path[] = "/tmp/rp_kconf_XXXXXX";

static void write_file(const char *text, mode_t mode)
{
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void done_file(void)
{
    static const char tmpl[] = "/tmp/rp_kconf_XXXXXX";

    unlink(path);
    memcpy(path, tmpl, sizeof(tmpl));
}

static const char *find(const rp_kafka_props_t *p, const char *name)
{
    const char *v = NULL; /* the last one wins, as when applied */
    size_t n = strlen(name);

    for (size_t i = 0; i < p->n; i++)
        if (!strncmp(p->kv[i], name, n) && p->kv[i][n] == '=')
            v = p->kv[i] + n + 1;
    return v;
}

static void test_precedence(void **state)
{
    char *env[] = {"RUNPOOL_KAFKA_SOCKET_TIMEOUT_MS=2000",
                   "RUNPOOL_KAFKA_SASL_PASSWORD=envpw", "HOME=/x", NULL};
    const char *cli[] = {"socket.timeout.ms=3000"};
    rp_kafka_props_t p;
    char err[512];

    (void)state;
    write_file("# a comment\n\n  security.protocol = SASL_SSL \n"
               "socket.timeout.ms=1000\nsasl.password=filepw\n"
               "client.rack=r=1\n",
               0600);
    assert_int_equal(rp_kafka_props_load(&p, path, cli, 1, env, err,
                                         sizeof(err)),
                     RP_OK);
    assert_string_equal(find(&p, "security.protocol"), "SASL_SSL");
    assert_string_equal(find(&p, "socket.timeout.ms"), "3000"); /* -X */
    assert_string_equal(find(&p, "sasl.password"), "envpw");    /* env */
    assert_string_equal(find(&p, "client.rack"), "r=1");
    assert_int_equal(p.n, 7);
    rp_kafka_props_clear(&p);

    /* RUNPOOL_KAFKA_CONFIG names the file when none is given. */
    {
        char var[64];
        char *env2[] = {var, NULL};

        snprintf(var, sizeof(var), "RUNPOOL_KAFKA_CONFIG=%s", path);
        assert_int_equal(rp_kafka_props_load(&p, NULL, NULL, 0, env2, err,
                                             sizeof(err)),
                         RP_OK);
        assert_string_equal(find(&p, "sasl.password"), "filepw");
        rp_kafka_props_clear(&p);
    }
    done_file();
}

static void test_refusals(void **state)
{
    char *bad_env[] = {"RUNPOOL_KAFKA_NO_SUCH_THING=1", NULL};
    char *no_env[] = {NULL};
    rp_kafka_props_t p;
    char err[512];

    (void)state;
    /* A password in a file group or others can read. */
    write_file("sasl.password=hunter2\n", 0644);
    assert_int_equal(rp_kafka_props_load(&p, path, NULL, 0, no_env, err,
                                         sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_non_null(strstr(err, "0644"));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(p.n, 0);
    done_file();
    /* 0440: what a Kubernetes Secret volume gives (root:fsGroup). Fine
     * when root owns it (the test's own file, if the test runs as root);
     * a non-root owner must make it 0600 (rp_secfile.h). */
    write_file("sasl.password=hunter2\n", 0440);
    assert_int_equal(rp_kafka_props_load(&p, path, NULL, 0, no_env, err,
                                         sizeof(err)),
                     geteuid() == 0 ? RP_OK : RP_ERR_PERMISSION);
    rp_kafka_props_clear(&p);
    done_file();
    /* ... but no secret: fine at 0644. */
    write_file("acks=all\n", 0644);
    assert_int_equal(rp_kafka_props_load(&p, path, NULL, 0, no_env, err,
                                         sizeof(err)),
                     RP_OK);
    rp_kafka_props_clear(&p);
    done_file();
    /* A line without '='. */
    write_file("acks all\n", 0600);
    assert_int_equal(rp_kafka_props_load(&p, path, NULL, 0, no_env, err,
                                         sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, ":1: expected key=value"));
    done_file();
    assert_int_equal(rp_kafka_props_load(&p, "/nonexistent/k.conf", NULL, 0,
                                         no_env, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_kafka_props_load(&p, NULL, NULL, 0, bad_env, err,
                                         sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "RUNPOOL_KAFKA_NO_SUCH_THING"));
}

static int has(rd_kafka_conf_t *c, const char *name, const char *want)
{
    char v[256];
    size_t len = sizeof(v);

    return rd_kafka_conf_get(c, name, v, &len) == RD_KAFKA_CONF_OK &&
           !strcmp(v, want);
}

static void test_scope_split(void **state)
{
    const char *props[] = {"session.timeout.ms=6000", "linger.ms=77",
                           "socket.timeout.ms=4321", "no.such.setting=1"};
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    char err[512];

    (void)state;
    assert_int_equal(rp_kafka_prop_scope("session.timeout.ms"), 'C');
    assert_int_equal(rp_kafka_prop_scope("linger.ms"), 'P');
    assert_int_equal(rp_kafka_prop_scope("acks"), 'P'); /* topic-level */
    assert_int_equal(rp_kafka_prop_scope("bootstrap.servers"), '*');
    /* Unknown names go to both, so librdkafka reports them. */
    assert_int_equal(rp_kafka_set_props_for(cc, RP_KAFKA_CONSUMER, props, 4,
                                            err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "no.such.setting"));
    assert_int_equal(rp_kafka_set_props_for(cc, RP_KAFKA_CONSUMER, props, 3,
                                            err, sizeof(err)),
                     RP_OK);
    assert_int_equal(rp_kafka_set_props_for(pc, RP_KAFKA_PRODUCER, props, 3,
                                            err, sizeof(err)),
                     RP_OK);
    assert_true(has(cc, "session.timeout.ms", "6000"));
    assert_false(has(pc, "session.timeout.ms", "6000"));
    assert_true(has(pc, "linger.ms", "77"));
    assert_false(has(cc, "linger.ms", "77"));
    assert_true(has(cc, "socket.timeout.ms", "4321"));
    assert_true(has(pc, "socket.timeout.ms", "4321"));
    rd_kafka_conf_destroy(cc);
    rd_kafka_conf_destroy(pc);
}

static void test_secret_names(void **state)
{
    (void)state;
    assert_true(rp_kafka_prop_is_secret("sasl.password"));
    assert_true(rp_kafka_prop_is_secret("ssl.key.password"));
    assert_true(rp_kafka_prop_is_secret("sasl.oauthbearer.client.secret"));
    assert_true(rp_kafka_prop_is_secret("ssl.key.pem"));
    assert_false(rp_kafka_prop_is_secret("sasl.username"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_scope_split),
        cmocka_unit_test(test_secret_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
