/* integration.signed — a worker given --signing-keys runs signed requests
 * only (issue 12, section 1).
 *
 * The worker knows two keys (k1, k2: a rotation in progress). The test
 * signs with OpenSSL itself, following schemas/README.md ("Signed
 * requests"), not with runpool's code, so the format is checked from
 * outside; one request also goes through runpool-produce --signing-keys.
 * Every command would leave a marker file. Signed with k1, with k2, or
 * with both an unknown and a known kid: it runs. Unsigned, forged (a MAC
 * over other bytes), signed with an unknown kid, too old, too far in the
 * future, or with two signature headers: a rejected result with the
 * reason, a DLQ copy whose runpool.error.code says it, the reason counted
 * in runpool_dlq_messages_total, and no marker: the command never ran.
 * Key files that others may read are refused by the worker and by
 * runpool-produce, naming the mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rp_testenv.h"

#define WAIT_MS 60000
#define MAX_AGE_S 120
/* 32-byte keys, base64 (schemas/README.md's vector uses k1's). */
#define K1_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2_B64 "cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM="
static const unsigned char k1[32] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const char k2[] = "runpool-second-key-0123456789abc";
static const unsigned char k9[32] = {9, 9, 9};

/* ",kid=ID,v1=HEX" for HMAC-SHA256(key, "T.KEY.VALUE") appended to out. */
static void add_mac(char *out, size_t size, const char *kid,
                    const void *key, size_t keylen, long long t,
                    const char *mkey, const char *value)
{
    char *msg;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t n = strlen(out);
    int len = asprintf(&msg, "%lld.%s.%s", t, mkey, value);

    assert_true(len > 0);
    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen,
                         (const unsigned char *)msg, (size_t)len, mac,
                         &maclen));
    assert_int_equal(maclen, 32);
    free(msg);
    n += (size_t)snprintf(out + n, size - n, ",kid=%s,v1=", kid);
    for (unsigned i = 0; i < maclen; i++)
        n += (size_t)snprintf(out + n, size - n, "%02x", mac[i]);
    assert_true(n < size);
}

static char *request_json(const char *sid, const char *eid,
                          const char *command)
{
    char *s;

    assert_true(asprintf(&s,
                         "{\"v\":1,\"execution_id\":\"%s\",\"session_id\":"
                         "\"%s\",\"command\":\"%s\",\"timeout_s\":30}",
                         eid, sid, command) > 0);
    return s;
}

/* Produce value under key sid with the given runpool-signature headers
 * (NULL-terminated; none when sigs is NULL). */
static void send_signed(rp_te_t *te, const char *sid, const char *value,
                        const char *const *sigs)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_resp_err_t kerr;

    for (size_t i = 0; sigs && sigs[i]; i++)
        rd_kafka_header_add(h, "runpool-signature", -1, sigs[i], -1);
    kerr = rd_kafka_producev(te->producer, RD_KAFKA_V_TOPIC(RP_TOPIC_REQUESTS),
                             RD_KAFKA_V_KEY(sid, strlen(sid)),
                             RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (kerr) {
        rd_kafka_headers_destroy(h);
        fail_msg("produce: %s", rd_kafka_err2str(kerr));
    }
    /* A valid request document: the rig schema-checks it at the end. */
    fprintf(te->requests_log, "%s\n", value);
    fflush(te->requests_log);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

/* ---- the worker's /metrics (as test_it_metrics.c reads it) ---- */

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

static char *scrape(int port)
{
    char url[128];
    body_t b = {calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    CURLcode rc;

    assert_non_null(c);
    rp_te_format(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", url, curl_easy_strerror(rc));
    return b.p;
}

/* ---- the test ---- */

typedef struct sig_case {
    const char *eid;
    const char *code; /* NULL: it runs */
} sig_case_t;

/* Run a program of RP_BIN_DIR to its end; its exit status, stderr in err. */
static int run_bin(rp_te_t *te, char *const argv[], char **err)
{
    char out[PATH_MAX], errp[PATH_MAX];
    int st;

    rp_te_path(te, out, sizeof out, "run.out");
    rp_te_path(te, errp, sizeof errp, "run.err");
    unlink(errp);
    st = rp_te_run(te, argv, NULL, out, errp, 30000);
    *err = rp_te_read_file(errp, NULL);
    if (!*err)
        *err = strdup("");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_signed(void **state)
{
    rp_te_t *te = *state;
    char keys[PATH_MAX], bad_keys[PATH_MAX], work[PATH_MAX], bin[PATH_MAX];
    char marker[PATH_MAX + 64], cmd[PATH_MAX + 64], hdr[1024], hdr2[1024];
    long long now = (long long)time(NULL);
    static const sig_case_t cases[] = {
        {"sig-k1", NULL},
        {"sig-k2", NULL},
        {"sig-both", NULL},
        {"sig-cli", NULL},
        {"sig-unsigned", "unsigned"},
        {"sig-forged", "bad_signature"},
        {"sig-garbled", "bad_signature"},
        {"sig-two-headers", "bad_signature"},
        {"sig-unknown", "unknown_key"},
        {"sig-old", "expired_signature"},
        {"sig-future", "expired_signature"},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);
    char *err, *text, *value;
    int w, port, st;

    rp_te_path(te, keys, sizeof keys, "signing.keys");
    rp_te_path(te, bad_keys, sizeof bad_keys, "open.keys");
    rp_te_path(te, work, sizeof work, "markers");
    assert_int_equal(mkdir(work, 0700), 0);
    write_file(keys, "# k2 is the new key, k1 the old one\nk2:" K2_B64
                     "\nk1:" K1_B64 "\n", 0600);
    write_file(bad_keys, "k1:" K1_B64 "\n", 0644);

    /* Refused: a worker and runpool-produce given a 0644 key file. */
    rp_te_format(bin, sizeof bin, "%s/runpool-worker", te->bin_dir);
    {
        char *const argv[] = {bin, "--brokers", te->brokers, "--state",
                              te->state_url, "--signing-keys", bad_keys, NULL};

        st = run_bin(te, argv, &err);
        if (st != 2 || !strstr(err, "mode 0644") || !strstr(err, bad_keys))
            fail_msg("worker with a 0644 key file: exit %d, stderr: %s", st,
                     err);
        free(err);
    }
    rp_te_format(bin, sizeof bin, "%s/runpool-produce", te->bin_dir);
    {
        char *const argv[] = {bin, "--brokers", te->brokers, "--session",
                              "sig-s", "--signing-keys", bad_keys, "--",
                              "true", NULL};

        st = run_bin(te, argv, &err);
        if (st != 2 || !strstr(err, "mode 0644"))
            fail_msg("runpool-produce with a 0644 key file: exit %d, "
                     "stderr: %s", st, err);
        free(err);
    }

    {
        char max_age[16];
        const char *extra[] = {"--signing-keys", keys, "--signature-max-age",
                               max_age, "--http-listen", "127.0.0.1:0", NULL};

        rp_te_format(max_age, sizeof max_age, "%d", MAX_AGE_S);
        w = rp_te_start_worker_args(te, extra);
    }
    rp_te_wait_group(te, &w, 1, 30000);
    port = rp_te_http_port(te, w);
    /* k2 is a planted secret: secrets.logs checks every log for it. */
    assert_string_equal(rp_te_secret(RP_TE_SECRET_SIGNING_KEY), K2_B64);
    assert_string_equal(rp_te_secret(RP_TE_SECRET_SIGNING_KEY_BYTES), k2);
    rp_te_planted(te, RP_TE_SECRET_SIGNING_KEY);
    rp_te_planted(te, RP_TE_SECRET_SIGNING_KEY_BYTES);
    assert_int_equal(rp_te_log_events(te, w, "signing_keys_loaded", NULL), 1);
    assert_int_equal(
        rp_te_log_events(te, w, "requests_not_authenticated", NULL), 0);

    for (size_t i = 0; i < n; i++) {
        const char *eid = cases[i].eid;
        const char *sid = "sig-s"; /* one session: they run in order */

        rp_te_format(marker, sizeof marker, "%s/%s", work, eid);
        rp_te_format(cmd, sizeof cmd, "touch %s && echo ran-%s", marker, eid);
        value = request_json(sid, eid, cmd);
        hdr[0] = hdr2[0] = '\0';
        if (!strcmp(eid, "sig-cli")) {
            char *const argv[] = {bin,  "--brokers", te->brokers,
                                  "--session", (char *)sid,
                                  "--execution-id", (char *)eid,
                                  "--signing-keys", keys, "--signing-kid",
                                  "k1", "--", cmd, NULL};

            rp_te_flush(te); /* in order behind the ones before */
            st = run_bin(te, argv, &err);
            if (st != 0)
                fail_msg("runpool-produce --signing-keys: exit %d: %s", st,
                         err);
            free(err);
            free(value);
            continue;
        }
        rp_te_format(hdr, sizeof hdr, "t=%lld", now);
        if (!strcmp(eid, "sig-k1")) {
            add_mac(hdr, sizeof hdr, "k1", k1, 32, now, sid, value);
        } else if (!strcmp(eid, "sig-k2")) {
            add_mac(hdr, sizeof hdr, "k2", k2, 32, now, sid, value);
        } else if (!strcmp(eid, "sig-both")) {
            /* A producer mid-rotation: a key this worker does not have
             * yet, then one it has. */
            add_mac(hdr, sizeof hdr, "k3", k9, 32, now, sid, value);
            add_mac(hdr, sizeof hdr, "k1", k1, 32, now, sid, value);
        } else if (!strcmp(eid, "sig-forged")) {
            /* A genuine MAC, but of a harmless command. */
            char *other = request_json(sid, eid, "true");

            add_mac(hdr, sizeof hdr, "k1", k1, 32, now, sid, other);
            free(other);
        } else if (!strcmp(eid, "sig-garbled")) {
            add_mac(hdr, sizeof hdr, "k1", k1, 32, now, sid, value);
            strcat(hdr, ",x=1");
        } else if (!strcmp(eid, "sig-two-headers")) {
            add_mac(hdr, sizeof hdr, "k1", k1, 32, now, sid, value);
            memcpy(hdr2, hdr, sizeof hdr);
        } else if (!strcmp(eid, "sig-unknown")) {
            add_mac(hdr, sizeof hdr, "k9", k9, 32, now, sid, value);
        } else if (!strcmp(eid, "sig-old")) {
            rp_te_format(hdr, sizeof hdr, "t=%lld", now - 3600);
            add_mac(hdr, sizeof hdr, "k1", k1, 32, now - 3600, sid, value);
        } else if (!strcmp(eid, "sig-future")) {
            rp_te_format(hdr, sizeof hdr, "t=%lld", now + 3600);
            add_mac(hdr, sizeof hdr, "k2", k2, 32, now + 3600, sid, value);
        }
        {
            const char *sigs[] = {hdr, hdr2[0] ? hdr2 : NULL, NULL};

            send_signed(te, sid, value,
                        strcmp(eid, "sig-unsigned") ? sigs : NULL);
        }
        free(value);
    }
    rp_te_flush(te);

    for (size_t i = 0; i < n; i++) {
        const rp_te_msg_t *m = rp_te_need_result(te, cases[i].eid, WAIT_MS);
        char want[128];

        rp_te_format(marker, sizeof marker, "%s/%s", work, cases[i].eid);
        if (!cases[i].code) {
            rp_te_format(want, sizeof want, "ran-%s\n", cases[i].eid);
            rp_te_expect(te, m, "succeeded", want);
            assert_int_equal(access(marker, F_OK), 0);
            continue;
        }
        print_message("%-16s -> %s: %s\n", cases[i].eid,
                      rp_te_error(m, "code"), rp_te_error(m, "message"));
        rp_te_expect(te, m, "rejected", "");
        assert_string_equal(rp_te_error(m, "code"), cases[i].code);
        assert_string_equal(rp_te_str(m, "session_id"), "sig-s");
        /* Never ran: the result came, and no marker. */
        if (access(marker, F_OK) == 0)
            fail_msg("%s: the command of a rejected request ran",
                     cases[i].eid);
    }

    /* A DLQ copy for each rejection, byte for byte, with the reason. */
    assert_true(rp_te_wait_dlq(te, 7, WAIT_MS));
    for (size_t i = 0; i < n; i++) {
        const rp_te_msg_t *d = NULL;
        char needle[160];

        if (!cases[i].code)
            continue;
        rp_te_format(needle, sizeof needle, "\"execution_id\":\"%s\"",
                     cases[i].eid);
        for (size_t k = 0; k < rp_te_dlq_count(te); k++)
            if (strstr(rp_te_dlq_at(te, k)->value, needle)) {
                assert_null(d);
                d = rp_te_dlq_at(te, k);
            }
        if (!d)
            fail_msg("%s: no DLQ copy", cases[i].eid);
        assert_string_equal(rp_te_header(d, "runpool.error.code"),
                            cases[i].code);
        assert_string_equal(d->key, "sig-s");
        /* The signature header travels with it (the original headers). */
        if (strcmp(cases[i].eid, "sig-unsigned"))
            assert_non_null(rp_te_header(d, "runpool-signature"));
        else
            assert_null(rp_te_header(d, "runpool-signature"));
    }
    assert_int_equal(rp_te_dlq_count(te), 7);

    /* Counted by reason (when their transaction committed). */
    {
        static const struct {
            const char *series;
            double want;
        } counts[] = {
            {"runpool_dlq_messages_total{reason=\"unsigned\"}", 1},
            {"runpool_dlq_messages_total{reason=\"bad_signature\"}", 3},
            {"runpool_dlq_messages_total{reason=\"unknown_key\"}", 1},
            {"runpool_dlq_messages_total{reason=\"expired_signature\"}", 2},
        };
        int64_t deadline = rp_te_now_ms() + 10000;
        size_t ok = 0;

        text = NULL;
        while (ok < 4 && rp_te_now_ms() < deadline) {
            free(text);
            text = scrape(port);
            ok = 0;
            for (size_t i = 0; i < 4; i++)
                ok += rp_te_metric(text, counts[i].series) == counts[i].want;
            if (ok < 4)
                rp_te_sleep_ms(200);
        }
        for (size_t i = 0; i < 4; i++)
            if (rp_te_metric(text, counts[i].series) != counts[i].want)
                fail_msg("%s is %g, want %g", counts[i].series,
                         rp_te_metric(text, counts[i].series), counts[i].want);
        free(text);
    }
    /* runpool-replay re-drives the unsigned request from the DLQ: with
     * --signing-keys it signs it afresh and the worker runs it now; a
     * --reexecute of a signed one without keys goes unsigned (its old
     * signature cannot hold for the new id) and is rejected. */
    {
        char rbin[PATH_MAX], range[64], errp[PATH_MAX];
        const rp_te_msg_t *d = NULL, *res[4];
        char *argv[16];
        int rst, a = 0;
        int64_t deadline;

        for (size_t k = 0; k < rp_te_dlq_count(te); k++)
            if (strstr(rp_te_dlq_at(te, k)->value,
                       "\"execution_id\":\"sig-unsigned\""))
                d = rp_te_dlq_at(te, k);
        assert_non_null(d);
        rp_te_format(rbin, sizeof rbin, "%s/runpool-replay", te->bin_dir);
        rp_te_format(range, sizeof range, "%d:%lld-%lld", (int)d->partition,
                     (long long)d->offset, (long long)d->offset);
        rp_te_path(te, errp, sizeof errp, "replay.err");
        argv[a++] = rbin;
        argv[a++] = "--brokers";
        argv[a++] = te->brokers;
        argv[a++] = "--topic";
        argv[a++] = "runpool.dlq";
        argv[a++] = "--range";
        argv[a++] = range;
        argv[a++] = "--from-dlq";
        argv[a++] = "--reason";
        argv[a++] = "unsigned";
        argv[a++] = "--signing-keys";
        argv[a++] = keys;
        argv[a] = NULL;
        rst = rp_te_run(te, argv, NULL, NULL, errp, WAIT_MS);
        if (!WIFEXITED(rst) || WEXITSTATUS(rst) != 0)
            fail_msg("runpool-replay --from-dlq --signing-keys failed");
        deadline = rp_te_now_ms() + WAIT_MS;
        while (rp_te_results_for(te, "sig-unsigned", res, 4) < 2) {
            if (rp_te_now_ms() > deadline)
                fail_msg("the re-driven, re-signed request got no result");
            rp_te_sleep_ms(50);
        }
        rp_te_expect(te, res[1], "succeeded", "ran-sig-unsigned\n");
    }
    /* The keys themselves are never logged. */
    text = rp_te_read_file(te->procs[w].log_path, NULL);
    assert_non_null(text);
    assert_null(strstr(text, K1_B64));
    assert_null(strstr(text, K2_B64));
    free(text);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signed, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
