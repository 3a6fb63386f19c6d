/* Tests for rp_http against a scripted HTTP server on 127.0.0.1
 * (tests/fakes/fake_http.h): methods, bodies and headers as sent, status
 * codes passed through, bounded bodies, the wanted response header,
 * timeouts, refused and dropped connections, bad requests, per-thread
 * connection reuse, escaping and backoff bounds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../fakes/fake_http.h"
#include "rp_http.h"

#define TH_ERR_MAX 512
#define TH_URL_MAX 256
#define TH_THREADS 8
#define TH_PER_THREAD 20

static fh_server_t *th_start(const fh_reply_t *r, size_t n)
{
    fh_server_t *s = fh_start(r, n);

    assert_non_null(s);
    return s;
}

static int64_t th_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* GET base+path; returns the rp_http result, resp filled. */
static rp_err_t th_get(const fh_server_t *s, const char *path,
                       rp_http_resp_t *resp, char *err, size_t err_size)
{
    char url[TH_URL_MAX];
    rp_http_req_t req = {0};

    snprintf(url, sizeof(url), "%s%s", s->base, path);
    req.method = "GET";
    req.url = url;
    return rp_http_request(&req, resp, err, err_size);
}

static void test_escape(void **state)
{
    char out[64];
    size_t need;

    (void)state;
    assert_int_equal(rp_http_escape("sessions/a b/state.json", out,
                                    sizeof(out)),
                     RP_OK);
    assert_string_equal(out, "sessions%2Fa%20b%2Fstate.json");
    /* RFC 3986 unreserved characters pass; everything else is %XX. */
    assert_int_equal(rp_http_escape("Az09-._~", out, sizeof(out)), RP_OK);
    assert_string_equal(out, "Az09-._~");
    assert_int_equal(rp_http_escape("a+b&c=d?e#f%:\xc3\xa9", out, sizeof(out)),
                     RP_OK);
    assert_string_equal(out, "a%2Bb%26c%3Dd%3Fe%23f%25%3A%C3%A9");
    assert_int_equal(rp_http_escape("", out, sizeof(out)), RP_OK);
    assert_string_equal(out, "");

    /* Exactly enough room works; one byte less is refused with "", not a
     * cut name (which would address some other object). */
    need = strlen("a%2Fb") + 1;
    assert_int_equal(rp_http_escape("a/b", out, need), RP_OK);
    assert_string_equal(out, "a%2Fb");
    assert_int_equal(rp_http_escape("a/b", out, need - 1), RP_ERR_TOO_LARGE);
    assert_string_equal(out, "");
    assert_int_equal(rp_http_escape("abc", out, 3), RP_ERR_TOO_LARGE);
    assert_string_equal(out, "");
    assert_int_equal(rp_http_escape(NULL, out, sizeof(out)), RP_ERR_INVALID);
}

static void test_status_passthrough(void **state)
{
    static const fh_reply_t replies[] = {
        {.status = 201, .body = "created"},
        {.status = 404, .body = "{\"error\":{\"code\":404}}"},
        {.status = 503, .body = ""},
        {.status = 412, .body = "pre"},
    };
    static const long want[] = {201, 404, 503, 412};
    fh_server_t *s = th_start(replies, 4);
    rp_http_resp_t resp = {0};
    char err[TH_ERR_MAX];
    size_t i;

    (void)state;
    for (i = 0; i < 4; i++) {
        err[0] = '\0';
        /* resp is reused: each call frees the previous body first. */
        assert_int_equal(th_get(s, "/x", &resp, err, sizeof(err)), RP_OK);
        assert_int_equal(resp.status, want[i]);
        assert_non_null(resp.body.data);
        assert_string_equal(resp.body.data, replies[i].body);
        assert_int_equal(resp.body.len, strlen(replies[i].body));
    }
    rp_http_resp_clear(&resp);
    assert_null(resp.body.data);
    assert_int_equal(resp.status, 0);
    rp_http_resp_clear(NULL);
    fh_stop(s);
}

static void test_methods_and_bodies(void **state)
{
    static const fh_reply_t ok = {.status = 200, .body = "ok"};
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE",
                                          "PATCH"};
    const char *hdrs[] = {"X-Test: one", "Content-Type: application/json"};
    fh_server_t *s = th_start(&ok, 1);
    char url[TH_URL_MAX], v[64], err[TH_ERR_MAX];
    fh_request_t got;
    size_t i;

    (void)state;
    snprintf(url, sizeof(url), "%s/p/a%%2Fb?q=1&r=x%%20y", s->base);
    for (i = 0; i < 5; i++) {
        rp_http_req_t req = {0};
        rp_http_resp_t resp = {0};
        int with_body = i != 0 && i != 3;

        req.method = methods[i];
        req.url = url;
        req.headers = hdrs;
        req.n_headers = 2;
        if (with_body) {
            req.body = "{\"a\":1}";
            req.body_len = 7;
        }
        assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                         RP_OK);
        assert_int_equal(resp.status, 200);
        rp_http_resp_clear(&resp);

        assert_int_equal(fh_request(s, i, &got), 0);
        assert_string_equal(got.method, methods[i]);
        /* The target goes out exactly as given: %2F is not decoded. */
        assert_string_equal(got.target, "/p/a%2Fb?q=1&r=x%20y");
        assert_int_equal(fh_header(&got, "x-test", v, sizeof(v)), 0);
        assert_string_equal(v, "one");
        assert_int_equal(fh_header(&got, "Content-Type", v, sizeof(v)), 0);
        assert_string_equal(v, "application/json");
        /* We disable the Expect: 100-continue round trip. */
        assert_int_equal(fh_header(&got, "Expect", v, sizeof(v)), -1);
        if (with_body) {
            assert_int_equal(got.body_len, 7);
            assert_string_equal(got.body, "{\"a\":1}");
            assert_int_equal(fh_header(&got, "Content-Length", v, sizeof(v)),
                             0);
            assert_string_equal(v, "7");
        } else {
            assert_int_equal(got.body_len, 0);
        }
    }

    /* A POST with no body still says Content-Length: 0 (GCS wants it). */
    {
        rp_http_req_t req = {0};
        rp_http_resp_t resp = {0};

        req.method = "POST";
        req.url = url;
        assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                         RP_OK);
        rp_http_resp_clear(&resp);
        assert_int_equal(fh_request(s, 5, &got), 0);
        assert_string_equal(got.method, "POST");
        assert_int_equal(fh_header(&got, "Content-Length", v, sizeof(v)), 0);
        assert_string_equal(v, "0");
    }
    fh_stop(s);
}

static void test_body_cap(void **state)
{
    static char big[1001];
    fh_reply_t r = {.status = 200, .body = big};
    fh_server_t *s;
    char url[TH_URL_MAX], err[TH_ERR_MAX];
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};

    (void)state;
    memset(big, 'b', 1000);
    big[1000] = '\0';
    s = th_start(&r, 1);
    snprintf(url, sizeof(url), "%s/big", s->base);
    req.method = "GET";
    req.url = url;

    req.response_max = 1000; /* exactly the body: fine */
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.body.len, 1000);
    assert_int_equal(resp.body.data[1000], '\0');

    req.response_max = 999; /* one byte short: refused, not truncated */
    err[0] = '\0';
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "999"));
    assert_true(resp.body.len <= 999);
    assert_int_equal(resp.status, 200); /* what did arrive is reported */

    req.response_max = 0; /* default RP_HTTP_RESPONSE_MAX */
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.body.len, 1000);
    assert_int_equal(resp.body.max, RP_HTTP_RESPONSE_MAX);
    rp_http_resp_clear(&resp);

    /* The connection survives an aborted body: the next call works. */
    req.response_max = 5000;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.body.len, 1000);
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

static void test_header_capture(void **state)
{
    static const fh_reply_t r = {
        .status = 200,
        .headers = "X-Goog-Generation:   1700000000123456  \r\n"
                   "X-Goog-Generation-Other: 9\r\n"
                   "X-Other: 1\r\n",
        .body = "data",
    };
    fh_server_t *s = th_start(&r, 1);
    char url[TH_URL_MAX], err[TH_ERR_MAX];
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};

    (void)state;
    snprintf(url, sizeof(url), "%s/h", s->base);
    req.method = "GET";
    req.url = url;
    req.want_header = "x-goog-generation"; /* case-insensitive, exact name */
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_string_equal(resp.header_value, "1700000000123456");
    assert_string_equal(resp.body.data, "data");

    req.want_header = "X-Absent";
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_string_equal(resp.header_value, "");

    req.want_header = NULL;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_string_equal(resp.header_value, "");
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

static void test_timeout(void **state)
{
    static const fh_reply_t r = {.status = 200, .body = "late",
                                 .delay_ms = 3000};
    fh_server_t *s = th_start(&r, 1);
    char url[TH_URL_MAX], err[TH_ERR_MAX] = "";
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    int64_t t0, took;

    (void)state;
    snprintf(url, sizeof(url), "%s/slow", s->base);
    req.method = "GET";
    req.url = url;
    req.timeout_ms = 300;
    t0 = th_now_ms();
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_TIMEOUT);
    took = th_now_ms() - t0;
    assert_true(took >= 250 && took < 2500);
    assert_non_null(strstr(err, "/slow"));
    assert_int_equal(resp.status, 0);
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

static void test_connection_failures(void **state)
{
    static const fh_reply_t hang = {.hangup = 1};
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char url[TH_URL_MAX], err[TH_ERR_MAX] = "";
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    fh_server_t *s;
    int fd;

    (void)state;
    /* A bound socket that never listens: connecting is refused, and
     * holding it keeps anyone else off the port during the test. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    req.method = "GET";
    req.url = url;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, url));
    assert_int_equal(resp.status, 0);
    close(fd);

    /* A server that accepts and hangs up without an answer. */
    s = th_start(&hang, 1);
    snprintf(url, sizeof(url), "%s/x", s->base);
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_int_equal(resp.status, 0);
    fh_stop(s);

    /* A name that cannot resolve: retriable either way. */
    req.url = "http://name.invalid./x";
    req.timeout_ms = 3000;
    {
        rp_err_t rc = rp_http_request(&req, &resp, err, sizeof(err));

        assert_true(rc == RP_ERR_UNAVAILABLE || rc == RP_ERR_TIMEOUT);
    }
    rp_http_resp_clear(&resp);
}

static void test_bad_requests(void **state)
{
    const char *crlf[] = {"X-A: 1\r\nX-Injected: 2"};
    const char *nocolon[] = {"just text"};
    const char *many[RP_HTTP_HEADERS_MAX + 1];
    char err[TH_ERR_MAX];
    char *long_url;
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    size_t i;

    (void)state;
    req.method = "GET";
    req.url = "http://127.0.0.1:1/";
    for (i = 0; i < RP_HTTP_HEADERS_MAX + 1; i++)
        many[i] = "X-N: 1";

    req.method = "BREW";
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.method = "GET";
    req.headers = crlf;
    req.n_headers = 1;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.headers = nocolon;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.headers = many;
    req.n_headers = RP_HTTP_HEADERS_MAX + 1;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    req.headers = NULL;
    req.n_headers = 0;
    req.body_len = 3; /* and body NULL */
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.body_len = 0;
    req.url = "http://127.0.0.1:1/a\nb";
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.url = "ftp://127.0.0.1/x"; /* only http and https */
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    req.url = NULL;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_http_request(NULL, &resp, err, sizeof(err)),
                     RP_ERR_INVALID);

    long_url = malloc(RP_HTTP_URL_MAX + 1);
    assert_non_null(long_url);
    memcpy(long_url, "http://h/", 9);
    memset(long_url + 9, 'u', RP_HTTP_URL_MAX - 9);
    long_url[RP_HTTP_URL_MAX] = '\0';
    req.url = long_url;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(long_url);
    rp_http_resp_clear(&resp);
}

/* fresh_connection opens a connection of its own for one request (Cloud
 * Run jobs.run must never be re-sent by libcurl on a dead kept one); the
 * requests after it reuse kept connections again. */
static void test_fresh_connection(void **state)
{
    static const fh_reply_t ok = {.status = 200, .body = "ok"};
    fh_server_t *s = th_start(&ok, 1);
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    char err[TH_ERR_MAX], url[TH_URL_MAX];

    (void)state;
    rp_http_thread_cleanup();
    assert_int_equal(th_get(s, "/a", &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(fh_conns(s), 1);
    snprintf(url, sizeof(url), "%s/run", s->base);
    req.method = "POST";
    req.url = url;
    req.body = "{}";
    req.body_len = 2;
    req.fresh_connection = true;
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(fh_conns(s), 2);
    assert_int_equal(rp_http_request(&req, &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(fh_conns(s), 3);
    /* An ordinary request takes a kept connection: no new one. */
    assert_int_equal(th_get(s, "/b", &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(fh_conns(s), 3);
    assert_int_equal(fh_count(s), 4);
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

typedef struct th_thread_arg {
    const fh_server_t *s;
    int n;
    int ok;
    int cleanup; /* call rp_http_thread_cleanup before returning */
} th_thread_arg_t;

static void *th_thread(void *p)
{
    th_thread_arg_t *a = p;
    char err[TH_ERR_MAX];
    int i;

    for (i = 0; i < a->n; i++) {
        rp_http_resp_t resp = {0};

        if (th_get(a->s, "/t", &resp, err, sizeof(err)) == RP_OK &&
            resp.status == 200 && strcmp(resp.body.data, "ok") == 0)
            a->ok++;
        rp_http_resp_clear(&resp);
    }
    if (a->cleanup)
        rp_http_thread_cleanup();
    return NULL;
}

static void test_connection_reuse(void **state)
{
    static const fh_reply_t ok = {.status = 200, .body = "ok"};
    fh_server_t *s = th_start(&ok, 1);
    th_thread_arg_t a = {.s = s, .n = 3};
    pthread_t t;
    rp_http_resp_t resp = {0};
    char err[TH_ERR_MAX];
    int i;

    (void)state;
    /* Start clean: no handle cached from earlier tests on this thread. */
    rp_http_thread_cleanup();
    for (i = 0; i < 3; i++) {
        assert_int_equal(th_get(s, "/r", &resp, err, sizeof(err)), RP_OK);
        assert_int_equal(resp.status, 200);
    }
    assert_int_equal(fh_count(s), 3);
    assert_int_equal(fh_conns(s), 1); /* one connection, three requests */

    /* Another thread has its own handle, hence its own connection; it
     * exits without cleanup (the key's destructor frees the handle, which
     * the sanitizer build would report otherwise). */
    assert_int_equal(pthread_create(&t, NULL, th_thread, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.ok, 3);
    assert_int_equal(fh_conns(s), 2);

    /* This thread's connection is still there for the next call... */
    assert_int_equal(th_get(s, "/r", &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(fh_conns(s), 2);
    /* ...until the handle is dropped. */
    rp_http_thread_cleanup();
    assert_int_equal(th_get(s, "/r", &resp, err, sizeof(err)), RP_OK);
    assert_int_equal(fh_conns(s), 3);
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

static void test_threads(void **state)
{
    static const fh_reply_t ok = {.status = 200, .body = "ok"};
    fh_server_t *s = th_start(&ok, 1);
    th_thread_arg_t a[TH_THREADS];
    pthread_t t[TH_THREADS];
    int i;

    (void)state;
    for (i = 0; i < TH_THREADS; i++) {
        a[i] = (th_thread_arg_t){.s = s, .n = TH_PER_THREAD, .cleanup = i % 2};
        assert_int_equal(pthread_create(&t[i], NULL, th_thread, &a[i]), 0);
    }
    for (i = 0; i < TH_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(a[i].ok, TH_PER_THREAD);
    }
    assert_int_equal(fh_count(s), TH_THREADS * TH_PER_THREAD);
    /* Each thread kept its connection: far fewer than one per request. */
    assert_true(fh_conns(s) <= TH_THREADS * 2);
    fh_stop(s);
}

static void test_retriable(void **state)
{
    static const long yes[] = {408, 429, 500, 502, 503, 504};
    static const long no[] = {0, 200, 204, 301, 400, 401, 403, 404, 409, 412,
                              501};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(rp_http_status_retriable(yes[i]));
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(rp_http_status_retriable(no[i]));
}

static void test_backoff(void **state)
{
    int attempt, i;

    (void)state;
    for (attempt = 1; attempt <= 12; attempt++) {
        int ceil_ms = 100 << (attempt - 1);
        int lo = 1 << 30, hi = -1;

        if (ceil_ms > 5000)
            ceil_ms = 5000;
        for (i = 0; i < 400; i++) {
            int d = rp_http_retry_delay_ms(attempt, 100, 5000);

            assert_true(d >= 0 && d <= ceil_ms);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Full jitter: spread over the whole range, not a fixed value.
         * 400 uniform draws all in one half: probability 2^-399. */
        assert_true(lo < ceil_ms / 2);
        assert_true(hi > ceil_ms / 2);
    }
    /* Huge attempt numbers do not overflow past the cap. */
    for (i = 0; i < 100; i++) {
        int d = rp_http_retry_delay_ms(1000000, 100, 5000);

        assert_true(d >= 0 && d <= 5000);
        d = rp_http_retry_delay_ms(31, 1 << 30, 1 << 30);
        assert_true(d >= 0 && d <= (1 << 30));
        d = rp_http_retry_delay_ms(0, 100, 5000); /* counts as attempt 1 */
        assert_true(d >= 0 && d <= 100);
    }
    assert_int_equal(rp_http_retry_delay_ms(3, 0, 5000), 0);
    assert_int_equal(rp_http_retry_delay_ms(3, 100, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_status_passthrough),
        cmocka_unit_test(test_methods_and_bodies),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_header_capture),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connection_failures),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_fresh_connection),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_retriable),
        cmocka_unit_test(test_backoff),
    };
    char err[TH_ERR_MAX];
    int rc;

    /* Every server here is on 127.0.0.1: a CI proxy must not get it. */
    setenv("no_proxy", "*", 1);
    if (rp_http_global_init(err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "rp_http_global_init: %s\n", err);
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rp_http_thread_cleanup();
    return rc;
}
