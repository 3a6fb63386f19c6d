/* Tests for the Cloud Storage backend (store/rp_state_gs.c).
 *
 * Two kinds of server:
 *  - fake-gcs-server, started once for this program by
 *    tests/fakes/start-fake-gcs (binary: $RP_FAKE_GCS, else
 *    .tools/bin/fake-gcs-server from scripts/install-test-deps.sh). The
 *    contract checks every backend passes (state_contract.c) run against
 *    it, each test under its own prefix. The fake does not enforce ifGenerationMatch on
 *    DELETE, so no test here claims a stale conditional delete is refused
 *    by it; the scripted server checks that we send the precondition and
 *    map the 412.
 *  - a scripted HTTP server (tests/fakes/fake_http.h) for what the fake
 *    cannot show: retries, giving up, replayed conditional writes, error
 *    mapping, paging, the Authorization header.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
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

#include "../fakes/fake_http.h"
#include "rp_http.h"
#include "rp_state.h"
#include "rp_state_gs.h"
#include "state_contract.h"

extern char **environ;

#define TG_ERR_MAX 1024
#define TG_URL_MAX 1024
#define TG_PATH_MAX 1024
#define TG_BUCKET "rp-test"
#define TG_START_TIMEOUT_MS 60000 /* start-fake-gcs: start + bucket */

/* The fake-gcs-server of this run. */
static char tg_fake[128];  /* "http://127.0.0.1:PORT" */
static pid_t tg_fake_pid = -1; /* the start-fake-gcs script, our child */
static int tg_seq;

/* ---- fake-gcs-server lifecycle ---- */

static void tg_source_dir(char *out, size_t out_size)
{
    const char *env = getenv("RP_SOURCE_DIR");
    const char *f = __FILE__;
    const char *cut = strstr(f, "/tests/unit/");

    if (env && env[0])
        snprintf(out, out_size, "%s", env);
    else if (cut)
        snprintf(out, out_size, "%.*s", (int)(cut - f), f);
    else
        snprintf(out, out_size, ".");
}

static int tg_group_setup(void **state)
{
    char src[TG_PATH_MAX], bin[TG_PATH_MAX + 64], script[TG_PATH_MAX + 64];
    char *argv[] = {script, "--bucket", TG_BUCKET, NULL};
    posix_spawn_file_actions_t fa;
    const char *env_bin = getenv("RP_FAKE_GCS");
    struct pollfd p;
    size_t len = 0;
    int fds[2];

    (void)state;
    tg_source_dir(src, sizeof(src));
    if (env_bin && env_bin[0])
        snprintf(bin, sizeof(bin), "%s", env_bin);
    else
        snprintf(bin, sizeof(bin), "%s/.tools/bin/fake-gcs-server", src);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr,
                "test_state_gs: fake-gcs-server not found at %s: run "
                "scripts/install-test-deps.sh (or set RP_FAKE_GCS)\n",
                bin);
        return -1;
    }
    setenv("RP_FAKE_GCS", bin, 1);
    snprintf(script, sizeof(script), "%s/tests/fakes/start-fake-gcs", src);

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    if (posix_spawn(&tg_fake_pid, script, &fa, NULL, argv, environ) != 0) {
        fprintf(stderr, "test_state_gs: cannot run %s\n", script);
        tg_fake_pid = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    /* One line: the base URL, printed once the bucket exists. */
    p.fd = fds[0];
    p.events = POLLIN;
    while (tg_fake_pid > 0 && len < sizeof(tg_fake) - 1 &&
           poll(&p, 1, TG_START_TIMEOUT_MS) == 1) {
        ssize_t n = read(fds[0], tg_fake + len, 1);

        if (n <= 0 || tg_fake[len] == '\n')
            break;
        len++;
    }
    tg_fake[len] = '\0';
    close(fds[0]);
    if (strncmp(tg_fake, "http://127.0.0.1:", 17) != 0) {
        fprintf(stderr, "test_state_gs: start-fake-gcs gave no URL ('%s')\n",
                tg_fake);
        return -1;
    }
    return 0;
}

static int tg_group_teardown(void **state)
{
    int status;

    (void)state;
    if (tg_fake_pid > 0) {
        kill(tg_fake_pid, SIGTERM);
        waitpid(tg_fake_pid, &status, 0);
        tg_fake_pid = -1;
    }
    rp_http_thread_cleanup();
    return 0;
}

/* ---- helpers ---- */

static void tg_emulator(const char *host)
{
    if (host)
        setenv("STORAGE_EMULATOR_HOST", host, 1);
    else
        unsetenv("STORAGE_EMULATOR_HOST");
}

/* Open url; token (may be NULL) serves the access tokens. */
static rp_state_t *tg_open_token(const char *url, rp_state_token_fn *token)
{
    char err[TG_ERR_MAX] = "";
    rp_state_t *st = NULL;

    if (rp_state_open_opts(url, &(rp_state_opts_t){.token = token}, &st, err,
                           sizeof(err)) != RP_OK)
        fail_msg("open %s: %s", url, err);
    return st;
}

static rp_state_t *tg_open(const char *url)
{
    return tg_open_token(url, NULL);
}

/* A store on the fake under a prefix no other test uses; its prefix goes
 * into pfx (may be NULL). */
static rp_state_t *tg_open_fake(char *pfx, size_t pfx_size)
{
    char url[TG_URL_MAX], p[64];

    snprintf(p, sizeof(p), "run-%ld/t%d", (long)getpid(), ++tg_seq);
    if (pfx)
        snprintf(pfx, pfx_size, "%s", p);
    snprintf(url, sizeof(url), "gs://%s/%s", TG_BUCKET, p);
    tg_emulator(tg_fake);
    return tg_open(url);
}

/* ---- the gs backend under the shared contract: fake-gcs-server ---- */

static int tg_store_open(sc_store_t *s)
{
    s->st = tg_open_fake(s->where, sizeof(s->where));
    snprintf(s->url, sizeof(s->url), "gs://%s/%s", TG_BUCKET, s->where);
    return 0;
}

/* Cloud Storage generations do grow, but rp_state.h promises only new
 * ones; the fake does not enforce ifGenerationMatch on DELETE. */
static sc_backend_t tg_backend = {
    .open = tg_store_open,
    .thread_increments = 8,
};

static int64_t tg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what only the fake-gcs-server can show ---- */

/* A store sees only the objects under its own prefix: a sibling prefix's
 * objects are never its own (the rest of listing is sc_test_list). */
static void test_gs_list_sibling(void **state)
{
    char pfx[64], url[TG_URL_MAX];
    rp_state_t *st = tg_open_fake(pfx, sizeof(pfx));
    rp_state_t *other;
    uint64_t v1, v2, v3;
    sc_list_t l;

    (void)state;
    v1 = sc_put(st, "sessions/s1/state.json", "1", RP_STATE_ANY);
    v2 = sc_put(st, "sessions/s2/state.json", "2", RP_STATE_ANY);
    v3 = sc_put(st, "executions/e1/result.json", "3", RP_STATE_ANY);
    snprintf(url, sizeof(url), "gs://%s/%s-sibling", TG_BUCKET, pfx);
    other = tg_open(url);
    sc_put(other, "sessions/s9/state.json", "9", RP_STATE_ANY);

    sc_list(st, "sessions/", &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(sc_listed(&l, "sessions/s1/state.json"), v1);
    assert_int_equal(sc_listed(&l, "sessions/s2/state.json"), v2);

    sc_list(st, "", &l);
    assert_int_equal(l.n, 3);
    assert_int_equal(sc_listed(&l, "executions/e1/result.json"), v3);

    sc_list(other, "", &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.keys[0], "sessions/s9/state.json");
    rp_state_destroy(other);
    rp_state_destroy(st);
}

/* Keys with '/' travel as one %2F-encoded object name: the object is named
 * exactly PREFIX/sessions/s1/state.json, seen through the raw JSON API. */
static void test_gs_object_names(void **state)
{
    char pfx[64], enc[256], url[TG_URL_MAX], name[256];
    char err[TG_ERR_MAX] = "";
    rp_state_t *st = tg_open_fake(pfx, sizeof(pfx));
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    const cJSON *items, *it;
    cJSON *root;
    uint64_t v;
    sc_list_t l;

    (void)state;
    v = sc_put(st, "sessions/s1/state.json", "{}", RP_STATE_ANY);
    snprintf(name, sizeof(name), "%s/", pfx);
    assert_int_equal(rp_http_escape(name, enc, sizeof(enc)), RP_OK);
    snprintf(url, sizeof(url), "%s/storage/v1/b/%s/o?prefix=%s", tg_fake,
             TG_BUCKET, enc);
    req.method = "GET";
    req.url = url;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.status, 200);
    root = cJSON_Parse(resp.body.data);
    assert_non_null(root);
    items = cJSON_GetObjectItemCaseSensitive(root, "items");
    assert_int_equal(cJSON_GetArraySize(items), 1);
    it = cJSON_GetArrayItem(items, 0);
    snprintf(name, sizeof(name), "%s/sessions/s1/state.json", pfx);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring, name);
    assert_int_equal(strtoull(cJSON_GetObjectItemCaseSensitive(it, "generation")
                                  ->valuestring,
                              NULL, 10),
                     v);
    cJSON_Delete(root);

    /* And the %2F path names that object directly. */
    assert_int_equal(rp_http_escape(name, enc, sizeof(enc)), RP_OK);
    assert_non_null(strstr(enc, "%2Fsessions%2Fs1%2Fstate.json"));
    snprintf(url, sizeof(url), "%s/storage/v1/b/%s/o/%s?alt=media", tg_fake,
             TG_BUCKET, enc);
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "{}");

    /* Objects under the prefix that are not keys (written by other tools)
     * are skipped by list. */
    snprintf(name, sizeof(name), "%s/bad name+x", pfx);
    assert_int_equal(rp_http_escape(name, enc, sizeof(enc)), RP_OK);
    snprintf(url, sizeof(url),
             "%s/upload/storage/v1/b/%s/o?uploadType=media&name=%s", tg_fake,
             TG_BUCKET, enc);
    req.method = "POST";
    req.body = "z";
    req.body_len = 1;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.status, 200);
    sc_list(st, "", &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.keys[0], "sessions/s1/state.json");
    rp_http_resp_clear(&resp);
    rp_state_destroy(st);
}

static void test_gs_missing_bucket(void **state)
{
    char err[TG_ERR_MAX] = "";
    rp_state_t *st;
    sc_list_t l;

    (void)state;
    tg_emulator(tg_fake);
    st = tg_open("gs://no-such-bucket-here/p");
    /* Writing or listing a bucket that does not exist is configuration:
     * not a missing key, not worth retrying. */
    assert_int_equal(rp_state_put(st, "k", "v", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "HTTP 404"));
    assert_int_equal(rp_state_list(st, "", sc_list_cb, &l, err, sizeof(err)),
                     RP_ERR_INVALID);
    rp_state_destroy(st);
}

/* ---- scripted server: retries, errors, requests as sent ---- */

#define TG_OBJ(gen) "{\"kind\":\"storage#object\",\"generation\":\"" gen "\"}"
#define TG_E503 "{\"error\":{\"code\":503,\"message\":\"Backend Error\"}}"

/* Start a scripted server and open gs://bkt/p on it as the emulator. */
#define TG_FAST "retry_initial_ms=5&retry_max_ms=20"

static rp_state_t *tg_scripted(fh_server_t **s, const fh_reply_t *r, size_t n,
                               const char *query)
{
    char url[TG_URL_MAX];

    *s = fh_start(r, n);
    assert_non_null(*s);
    tg_emulator((*s)->hostport); /* no scheme: http:// is implied */
    /* Retries scaled down (the defaults wait 1 s, 2 s, ...). */
    snprintf(url, sizeof(url), "gs://bkt/p?" TG_FAST "%s%s",
             query ? "&" : "", query ? query + 1 : "");
    return tg_open(url);
}

static void tg_req(fh_server_t *s, size_t i, const char *method,
                   const char *target)
{
    fh_request_t r;

    assert_int_equal(fh_request(s, i, &r), 0);
    assert_string_equal(r.method, method);
    assert_string_equal(r.target, target);
}

static void test_gs_retry_then_success(void **state)
{
    static const fh_reply_t get[] = {
        {.status = 503, .body = TG_E503},
        {.status = 503, .body = TG_E503},
        {.status = 200, .headers = "X-Goog-Generation: 42\r\n",
         .body = "hello"},
    };
    static const fh_reply_t put[] = {
        {.status = 500, .body = "oops"},
        {.status = 200, .body = TG_OBJ("43")},
    };
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, get, 3, NULL);
    char v[64];
    fh_request_t r;
    size_t i;

    (void)state;
    assert_int_equal(sc_expect(st, "k", "hello"), 42);
    assert_int_equal(fh_count(s), 3);
    for (i = 0; i < 3; i++) {
        tg_req(s, i, "GET", "/storage/v1/b/bkt/o/p%2Fk?alt=media");
        assert_int_equal(fh_request(s, i, &r), 0);
        /* Emulator: never an Authorization header. */
        assert_int_equal(fh_header(&r, "Authorization", v, sizeof(v)), -1);
    }
    rp_state_destroy(st);
    fh_stop(s);

    /* Unconditional writes are retried too (same bytes: idempotent). */
    st = tg_scripted(&s, put, 2, NULL);
    assert_int_equal(sc_put(st, "k", "body", RP_STATE_ANY), 43);
    assert_int_equal(fh_count(s), 2);
    for (i = 0; i < 2; i++) {
        tg_req(s, i, "POST",
               "/upload/storage/v1/b/bkt/o?uploadType=media&name=p%2Fk");
        assert_int_equal(fh_request(s, i, &r), 0);
        assert_string_equal(r.body, "body");
        assert_int_equal(fh_header(&r, "Content-Type", v, sizeof(v)), 0);
        assert_string_equal(v, "application/octet-stream");
    }
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_give_up(void **state)
{
    static const fh_reply_t always503 = {.status = 503, .body = TG_E503};
    static const fh_reply_t always429 = {.status = 429, .body = "slow down"};
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, &always503, 1, "?retry_deadline_ms=300");
    char want[TG_ERR_MAX];
    size_t n;
    rp_buf_t b;

    (void)state;
    rp_buf_init(&b, 64);
    /* The deadline ends it, not a count: waits of 5, 10, 20, 20 ... ms
     * (+ up to 5 ms jitter) fit 10..60 attempts in 300 ms. */
    assert_int_equal(rp_state_get(st, "x", &b, NULL, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    n = fh_count(s);
    assert_in_range(n, 10, 60);
    snprintf(want, sizeof(want),
             "gs://bkt/p/x: giving up after %zu attempts (retry deadline "
             "300 ms): HTTP 503: Backend Error",
             n);
    assert_string_equal(err, want);
    rp_state_destroy(st);
    fh_stop(s);

    /* retries=1: one attempt, no "giving up". */
    st = tg_scripted(&s, &always503, 1, "?retries=1");
    assert_int_equal(rp_state_put(st, "x", "v", 1, 0, NULL, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_string_equal(err, "gs://bkt/p/x: HTTP 503: Backend Error");
    assert_int_equal(fh_count(s), 1);
    rp_state_destroy(st);
    fh_stop(s);

    /* 429 is retried as well; a non-JSON body is quoted as text. */
    st = tg_scripted(&s, &always429, 1, "?retries=2");
    assert_int_equal(rp_state_delete(st, "x", RP_STATE_ANY, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_string_equal(err, "gs://bkt/p/x: giving up after 2 attempts: "
                             "HTTP 429: slow down");
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);
    rp_buf_free(&b);
}

/* GCS's real answer past one write per second to one object name. */
#define TG_E429                                                              \
    "{\"error\":{\"code\":429,\"message\":\"The object bkt/p/k exceeded "   \
    "the rate limit for object mutation operations (create, update, and "    \
    "delete). Please reduce your request rate. See "                         \
    "https://cloud.google.com/storage/docs/gcs429.\",\"errors\":[{"           \
    "\"message\":\"The object bkt/p/k exceeded the rate limit for object "    \
    "mutation operations (create, update, and delete). Please reduce your "  \
    "request rate. See https://cloud.google.com/storage/docs/gcs429.\","      \
    "\"domain\":\"usageLimits\",\"reason\":\"rateLimitExceeded\"}]}}"

static void test_gs_429_backoff(void **state)
{
    static const fh_reply_t put[] = {
        {.status = 429, .body = TG_E429},
        {.status = 429, .body = TG_E429},
        {.status = 429, .body = TG_E429},
        {.status = 200, .body = "{\"generation\":\"7\"}"},
    };
    static const fh_reply_t put1[] = {
        {.status = 429, .body = TG_E429},
        {.status = 200, .body = "{\"generation\":\"8\"}"},
    };
    char url[TG_URL_MAX];
    fh_server_t *s;
    rp_state_t *st;
    int64_t t0, dt;

    (void)state;
    /* Scaled: waits min(100 * 2^(n-1), 200) + 0..100 ms: 100, 200, 200. */
    s = fh_start(put, 4);
    assert_non_null(s);
    tg_emulator(s->hostport);
    st = tg_open("gs://bkt/p?retry_initial_ms=100&retry_max_ms=200");
    t0 = tg_now_ms();
    assert_int_equal(sc_put(st, "k", "v", 0), 7);
    dt = tg_now_ms() - t0;
    assert_int_equal(fh_count(s), 4);
    assert_true(dt >= 500);
    assert_true(dt < 500 + 300 + 700); /* jitter + slack for a busy VM */
    rp_state_destroy(st);
    fh_stop(s);

    /* The defaults: the first retry waits 1 s + 0..1 s (Google's value),
     * not the old 0..100 ms that a 1 write/s limit answers with 429 again. */
    s = fh_start(put1, 2);
    assert_non_null(s);
    tg_emulator(s->hostport);
    snprintf(url, sizeof(url), "gs://bkt/p");
    st = tg_open(url);
    t0 = tg_now_ms();
    assert_int_equal(sc_put(st, "k", "v", 0), 8);
    dt = tg_now_ms() - t0;
    assert_int_equal(fh_count(s), 2);
    assert_true(dt >= 1000);
    assert_true(dt < 2000 + 700);
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_timeout_retried(void **state)
{
    static const fh_reply_t slow = {.status = 200, .body = "late",
                                    .delay_ms = 3000};
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, &slow, 1, "?timeout_ms=200&retries=2");
    int64_t t0 = tg_now_ms();
    rp_buf_t b;

    (void)state;
    rp_buf_init(&b, 64);
    assert_int_equal(rp_state_get(st, "x", &b, NULL, err, sizeof(err)),
                     RP_ERR_TIMEOUT);
    assert_true(tg_now_ms() - t0 < 2500);
    assert_non_null(strstr(err, "gs://bkt/p/x: giving up after 2 attempts: "));
    rp_buf_free(&b);
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_412(void **state)
{
    static const fh_reply_t pre = {
        .status = 412,
        .body = "{\"error\":{\"code\":412,\"message\":\"At least one of the "
                "pre-conditions you specified did not hold.\"}}",
    };
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, &pre, 1, NULL);
    uint64_t v = 0;

    (void)state;
    assert_int_equal(rp_state_put(st, "k", "v", 1, 0, &v, err, sizeof(err)),
                     RP_ERR_EXISTS);
    assert_int_equal(v, 0);
    assert_non_null(strstr(err, "'k' already exists"));
    tg_req(s, 0, "POST",
           "/upload/storage/v1/b/bkt/o?uploadType=media&name=p%2Fk"
           "&ifGenerationMatch=0");
    assert_int_equal(rp_state_put(st, "k", "v", 1, 5, &v, err, sizeof(err)),
                     RP_ERR_CONFLICT);
    tg_req(s, 1, "POST",
           "/upload/storage/v1/b/bkt/o?uploadType=media&name=p%2Fk"
           "&ifGenerationMatch=5");
    /* A first-attempt 412 is a plain loss: nothing is re-read. */
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);
}

/* A conditional write whose first attempt may have landed comes back 412
 * on replay: it is ours when the object holds exactly our bytes. */
static void test_gs_replayed_write(void **state)
{
    static const fh_reply_t ours[] = {
        {.status = 503, .body = TG_E503},
        {.status = 412, .body = "{}"},
        {.status = 200, .headers = "X-Goog-Generation: 77\r\n", .body = "data"},
    };
    static const fh_reply_t theirs[] = {
        {.status = 503, .body = TG_E503},
        {.status = 412, .body = "{}"},
        {.status = 200, .headers = "X-Goog-Generation: 78\r\n",
         .body = "data, but longer"},
    };
    static const fh_reply_t dropped[] = {
        {.hangup = 1},
        {.status = 412, .body = "{}"},
        {.status = 200, .headers = "X-Goog-Generation: 79\r\n", .body = "data"},
    };
    static const fh_reply_t throttled[] = {
        {.status = 429, .body = "{}"},
        {.status = 412, .body = "{}"},
    };
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st;
    uint64_t v = 0;

    (void)state;
    st = tg_scripted(&s, ours, 3, NULL);
    assert_int_equal(rp_state_put(st, "k", "data", 4, 0, &v, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(v, 77);
    assert_int_equal(fh_count(s), 3);
    tg_req(s, 2, "GET", "/storage/v1/b/bkt/o/p%2Fk?alt=media");
    rp_state_destroy(st);
    fh_stop(s);

    st = tg_scripted(&s, theirs, 3, NULL);
    v = 0;
    assert_int_equal(rp_state_put(st, "k", "data", 4, 0, &v, err, sizeof(err)),
                     RP_ERR_EXISTS);
    assert_int_equal(v, 0);
    assert_int_equal(fh_count(s), 3);
    rp_state_destroy(st);
    fh_stop(s);

    /* Same for compare-and-swap after a dropped connection. */
    st = tg_scripted(&s, dropped, 3, NULL);
    assert_int_equal(rp_state_put(st, "k", "data", 4, 5, &v, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(v, 79);
    rp_state_destroy(st);
    fh_stop(s);

    /* 429 means the request was not run: its 412 is a real conflict. */
    st = tg_scripted(&s, throttled, 2, NULL);
    assert_int_equal(rp_state_put(st, "k", "data", 4, 5, &v, err, sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_http_errors(void **state)
{
    static const fh_reply_t r[] = {
        {.status = 403,
         .body = "{\"error\":{\"code\":403,\"message\":\"sa@p.iam does not "
                 "have storage.objects.get access\"}}"},
        {.status = 401,
         .body = "{\"error\":{\"message\":\"Invalid\\nCreds\"}}"},
        {.status = 400,
         .body = "{\"error\":{\"message\":\"Invalid argument.\"}}"},
        {.status = 404, .body = "Not Found"},
        {.status = 301, .body = ""},
        {.status = 200, .body = "no generation header"},
        {.status = 200, .body = "not json"},
        {.status = 200, .body = "{\"generation\":\"0\"}"},
    };
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, r, 8, NULL);

    (void)state;
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PERMISSION);
    assert_string_equal(err, "gs://bkt/p/k: HTTP 403: sa@p.iam does not have "
                             "storage.objects.get access");
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PERMISSION);
    /* Control characters from the reply never reach our one-line errors. */
    assert_string_equal(err, "gs://bkt/p/k: HTTP 401: Invalid Creds");
    assert_int_equal(rp_state_put(st, "k", "v", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_string_equal(err, "gs://bkt/p/k: HTTP 400: Invalid argument.");
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_NOT_FOUND);
    assert_string_equal(err, "state key 'k' not found in gs://bkt/p");
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PROTOCOL);
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PROTOCOL);
    assert_non_null(strstr(err, "X-Goog-Generation"));
    assert_int_equal(rp_state_put(st, "k", "v", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_PROTOCOL);
    assert_int_equal(rp_state_put(st, "k", "v", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_PROTOCOL); /* generation 0 is never a version */
    assert_int_equal(fh_count(s), 8); /* none of these was retried */
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_delete_requests(void **state)
{
    static const fh_reply_t ok[] = {{.status = 204}, {.status = 200,
                                                      .body = "null"}};
    static const fh_reply_t stale[] = {
        {.status = 412, .body = "{}"},
        {.status = 200, .body = "{\"generation\":\"8\"}"},
    };
    static const fh_reply_t absent412[] = {{.status = 412, .body = "{}"},
                                           {.status = 404, .body = "{}"}};
    static const fh_reply_t absent[] = {{.status = 404, .body = "{}"}};
    static const fh_reply_t replayed[] = {{.status = 503, .body = TG_E503},
                                          {.status = 404, .body = "{}"}};
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st;

    (void)state;
    st = tg_scripted(&s, ok, 2, NULL);
    assert_int_equal(rp_state_delete(st, "a/b", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    tg_req(s, 0, "DELETE", "/storage/v1/b/bkt/o/p%2Fa%2Fb");
    assert_int_equal(rp_state_delete(st, "a/b", 7, err, sizeof(err)), RP_OK);
    tg_req(s, 1, "DELETE", "/storage/v1/b/bkt/o/p%2Fa%2Fb?ifGenerationMatch=7");
    rp_state_destroy(st);
    fh_stop(s);

    /* Real GCS enforces the precondition: 412 -> CONFLICT. */
    st = tg_scripted(&s, stale, 2, NULL);
    assert_int_equal(rp_state_delete(st, "a/b", 7, err, sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_non_null(strstr(err, "expected version 7"));
    tg_req(s, 1, "GET", "/storage/v1/b/bkt/o/p%2Fa%2Fb?fields=generation");
    rp_state_destroy(st);
    fh_stop(s);

    /* rp_state.h: absent is NOT_FOUND whatever if_version, even if GCS
     * answers the precondition first. */
    st = tg_scripted(&s, absent412, 2, NULL);
    assert_int_equal(rp_state_delete(st, "a/b", 7, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    rp_state_destroy(st);
    fh_stop(s);

    st = tg_scripted(&s, absent, 1, NULL);
    assert_int_equal(rp_state_delete(st, "a/b", 7, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    rp_state_destroy(st);
    fh_stop(s);

    /* Gone after an attempt that may have deleted it: done. */
    st = tg_scripted(&s, replayed, 2, NULL);
    assert_int_equal(rp_state_delete(st, "a/b", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_list_pages(void **state)
{
    static const fh_reply_t pages[] = {
        {.status = 200,
         .body = "{\"items\":[{\"name\":\"p/s/a\",\"generation\":\"1\"},"
                 "{\"name\":\"p/s/bad name\",\"generation\":\"2\"},"
                 "{\"name\":\"p/s/b\",\"generation\":\"3\"}],"
                 "\"nextPageToken\":\"tok+1\"}"},
        {.status = 503, .body = TG_E503}, /* each page is retried */
        {.status = 200,
         .body = "{\"items\":[{\"name\":\"p/s/c\",\"generation\":\"4\"}]}"},
    };
    static const fh_reply_t loop = {
        .status = 200, .body = "{\"items\":[],\"nextPageToken\":\"same\"}"};
    char err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st = tg_scripted(&s, pages, 3, NULL);
    sc_list_t l;

    (void)state;
    sc_list(st, "s/", &l);
    assert_int_equal(l.n, 3);
    assert_int_equal(sc_listed(&l, "s/a"), 1);
    assert_int_equal(sc_listed(&l, "s/b"), 3);
    assert_int_equal(sc_listed(&l, "s/c"), 4);
    tg_req(s, 0, "GET",
           "/storage/v1/b/bkt/o?fields=items%28name%2Cgeneration%29%2C"
           "nextPageToken&maxResults=1000&prefix=p%2Fs%2F");
    tg_req(s, 2, "GET",
           "/storage/v1/b/bkt/o?fields=items%28name%2Cgeneration%29%2C"
           "nextPageToken&maxResults=1000&prefix=p%2Fs%2F&pageToken=tok%2B1");
    rp_state_destroy(st);
    fh_stop(s);

    /* A server that hands back the same token forever is cut off. */
    st = tg_scripted(&s, &loop, 1, NULL);
    memset(&l, 0, sizeof(l));
    assert_int_equal(rp_state_list(st, "", sc_list_cb, &l, err, sizeof(err)),
                     RP_ERR_PROTOCOL);
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);
}

static int tg_token_calls;
static rp_err_t tg_token_rc;

static rp_err_t tg_token(char *out, size_t out_size, char *errstr,
                         size_t errstr_size)
{
    tg_token_calls++;
    if (tg_token_rc != RP_OK)
        return rp_errf(errstr, errstr_size, tg_token_rc,
                       "metadata server said no");
    snprintf(out, out_size, "ya29.test-token");
    return RP_OK;
}

static void test_gs_auth(void **state)
{
    static const fh_reply_t ok = {
        .status = 200, .headers = "X-Goog-Generation: 5\r\n", .body = "v"};
    char url[TG_URL_MAX], err[TG_ERR_MAX] = "", v[128];
    fh_server_t *s = fh_start(&ok, 1);
    rp_state_t *st;
    fh_request_t r;
    sc_list_t l;

    (void)state;
    assert_non_null(s);
    /* Not an emulator: credentials are needed, and none are set. */
    tg_emulator(NULL);
    snprintf(url, sizeof(url), "gs://bkt/p?endpoint=%s/", s->base);
    st = tg_open(url);
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PERMISSION);
    assert_non_null(strstr(err, "no Google credentials configured"));
    assert_int_equal(rp_state_put(st, "k", "v", 1, 0, NULL, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_int_equal(rp_state_delete(st, "k", RP_STATE_ANY, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_int_equal(rp_state_list(st, "", sc_list_cb, &l, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_int_equal(fh_count(s), 0); /* nothing went out */

    /* With a token source: a Bearer header on every request. */
    rp_state_destroy(st);
    st = tg_open_token(url, tg_token);
    tg_token_rc = RP_OK;
    tg_token_calls = 0;
    assert_int_equal(sc_expect(st, "k", "v"), 5);
    assert_int_equal(fh_request(s, 0, &r), 0);
    assert_string_equal(r.target, "/storage/v1/b/bkt/o/p%2Fk?alt=media");
    assert_int_equal(fh_header(&r, "Authorization", v, sizeof(v)), 0);
    assert_string_equal(v, "Bearer ya29.test-token");
    assert_int_equal(tg_token_calls, 1);

    /* A token source that is unavailable is retried, then given up on. */
    tg_token_rc = RP_ERR_UNAVAILABLE;
    tg_token_calls = 0;
    rp_state_destroy(st);
    snprintf(url, sizeof(url), "gs://bkt/p?retries=3&" TG_FAST "&endpoint=%s",
             s->base);
    st = tg_open_token(url, tg_token);
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_UNAVAILABLE);
    assert_string_equal(err, "gs://bkt/p/k: giving up after 3 attempts: "
                             "access token: metadata server said no");
    assert_int_equal(tg_token_calls, 3);
    /* A refusal is final at once. */
    tg_token_rc = RP_ERR_PERMISSION;
    tg_token_calls = 0;
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PERMISSION);
    assert_int_equal(tg_token_calls, 1);
    assert_int_equal(fh_count(s), 1);
    rp_state_destroy(st);

    /* STORAGE_EMULATOR_HOST (here with its scheme) turns auth off even
     * with a token source set. */
    tg_token_rc = RP_OK;
    tg_token_calls = 0;
    tg_emulator(s->base);
    st = tg_open_token("gs://bkt/p", tg_token);
    assert_int_equal(sc_expect(st, "k", "v"), 5);
    assert_int_equal(fh_request(s, 1, &r), 0);
    assert_int_equal(fh_header(&r, "Authorization", v, sizeof(v)), -1);
    assert_int_equal(tg_token_calls, 0);
    rp_state_destroy(st);
    fh_stop(s);
}

/* A 401 costs one fresh token and one more request (rp_auth_request), not
 * a retry loop; a second 401 is a clear, final refusal. */
static void test_gs_auth_401(void **state)
{
    static const char body401[] =
        "{\"error\":{\"code\":401,\"message\":\"Invalid Credentials\"}}";
    const fh_reply_t once[] = {
        {.status = 401, .body = body401},
        {.status = 200, .headers = "X-Goog-Generation: 7\r\n", .body = "v"},
    };
    const fh_reply_t always[] = {{.status = 401, .body = body401}};
    char url[TG_URL_MAX], err[TG_ERR_MAX] = "";
    fh_server_t *s;
    rp_state_t *st;

    (void)state;
    tg_emulator(NULL);
    tg_token_rc = RP_OK;

    s = fh_start(once, 2);
    assert_non_null(s);
    snprintf(url, sizeof(url), "gs://bkt/p?" TG_FAST "&endpoint=%s", s->base);
    st = tg_open_token(url, tg_token);
    tg_token_calls = 0;
    assert_int_equal(sc_expect(st, "k", "v"), 7);
    assert_int_equal(tg_token_calls, 2);
    assert_int_equal(fh_count(s), 2);
    rp_state_destroy(st);
    fh_stop(s);

    s = fh_start(always, 1);
    assert_non_null(s);
    snprintf(url, sizeof(url), "gs://bkt/p?" TG_FAST "&endpoint=%s", s->base);
    st = tg_open_token(url, tg_token);
    tg_token_calls = 0;
    assert_int_equal(sc_get_rc(st, "k", err, sizeof(err)), RP_ERR_PERMISSION);
    assert_non_null(strstr(err, "gs://bkt/p/k: "));
    assert_non_null(strstr(err, "HTTP 401 twice"));
    assert_non_null(strstr(err, "Invalid Credentials"));
    assert_null(strstr(err, "ya29"));
    assert_int_equal(tg_token_calls, 2);
    assert_int_equal(fh_count(s), 2);
    /* Writes too: refused, not retried further. */
    assert_int_equal(rp_state_put(st, "k", "v", 1, 0, NULL, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_int_equal(fh_count(s), 4);
    rp_state_destroy(st);
    fh_stop(s);
}

static void test_gs_urls(void **state)
{
    static const char *const bad[] = {
        "gs://",
        "gs:///p",
        "gs://ab",
        "gs://Upper",
        "gs://-bkt",
        "gs://bkt-",
        "gs://bk t",
        "gs://bkt/a//b",
        "gs://bkt/../x",
        "gs://bkt/a b",
        "gs://bkt/a%2Fb",
        "gs://bkt#frag",
        "gs://bkt?retries=0",
        "gs://bkt?retries=101",
        "gs://bkt?retry_initial_ms=0",
        "gs://bkt?retry_max_ms=x",
        "gs://bkt?retry_deadline_ms=3600001",
        "gs://bkt?retries=x",
        "gs://bkt?timeout_ms=0",
        "gs://bkt?bogus=1",
        "gs://bkt?retries=3&",
        "gs://bkt?endpoint=ftp://h",
        "gs://bkt?endpoint=",
    };
    static const char *const good[] = {
        "gs://bkt",
        "gs://bkt/",
        "gs://bkt/a/b/",
        "gs://my.bucket_1-x/runpool:prod",
        "gs://bkt?retries=1",
        "gs://bkt/p?retries=20&timeout_ms=1000",
        "gs://bkt?retry_initial_ms=1&retry_max_ms=1&retry_deadline_ms=0",
        "gs://bkt?endpoint=https://storage.example.com/",
    };
    char err[TG_ERR_MAX];
    rp_state_t *st = NULL;
    size_t i;

    (void)state;
    tg_emulator(NULL);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rp_state_open(bad[i], &st, err, sizeof(err)) != RP_ERR_INVALID)
            fail_msg("URL '%s' should be RP_ERR_INVALID", bad[i]);
        assert_null(st);
        assert_true(strlen(err) > 0);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (rp_state_open(good[i], &st, err, sizeof(err)) != RP_OK)
            fail_msg("URL '%s': %s", good[i], err);
        rp_state_destroy(st);
        st = NULL;
    }
    /* A bearer token must not travel over plain http to another host. */
    assert_int_equal(rp_state_open("gs://bkt?endpoint=http://example.com", &st,
                                   err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "plain http"));
    /* ...but an emulator takes no token, so plain http is fine there. */
    tg_emulator("storage.test:4443");
    assert_int_equal(rp_state_open("gs://bkt?endpoint=http://example.com", &st,
                                   err, sizeof(err)),
                     RP_OK);
    rp_state_destroy(st);
    tg_emulator("ftp://nope");
    assert_int_equal(rp_state_open("gs://bkt", &st, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "STORAGE_EMULATOR_HOST"));
    tg_emulator(NULL);

    /* The dispatcher now knows both schemes. */
    assert_int_equal(rp_state_open("s3://bucket/x", &st, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_string_equal(err,
                        "unsupported state URL scheme 's3' (supported: file, "
                        "gs)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS(&tg_backend),
        cmocka_unit_test(test_gs_list_sibling),
        cmocka_unit_test(test_gs_object_names),
        cmocka_unit_test(test_gs_missing_bucket),
        cmocka_unit_test(test_gs_retry_then_success),
        cmocka_unit_test(test_gs_give_up),
        cmocka_unit_test(test_gs_429_backoff),
        cmocka_unit_test(test_gs_timeout_retried),
        cmocka_unit_test(test_gs_412),
        cmocka_unit_test(test_gs_replayed_write),
        cmocka_unit_test(test_gs_http_errors),
        cmocka_unit_test(test_gs_delete_requests),
        cmocka_unit_test(test_gs_list_pages),
        cmocka_unit_test(test_gs_auth),
        cmocka_unit_test(test_gs_auth_401),
        cmocka_unit_test(test_gs_urls),
    };
    char err[TG_ERR_MAX];

    /* Every server here is on 127.0.0.1: a CI proxy must not get it. */
    setenv("no_proxy", "*", 1);
    if (rp_http_global_init(err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "rp_http_global_init: %s\n", err);
        return 1;
    }
    return cmocka_run_group_tests(tests, tg_group_setup, tg_group_teardown);
}
