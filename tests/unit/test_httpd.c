/* rp_httpd: serves /metrics, /healthz and /readyz from the owner's
 * callbacks on its own thread, on an ephemeral loopback port; 404 for
 * other paths, 405 for other methods, refuses bodies and oversized
 * headers; bad listen addresses are refused with a clear message. The
 * client is a plain socket, so the test sees the bytes on the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rp_httpd.h"
#include "rp_metrics.h"

typedef struct owner {
    rp_metrics_t *m;
    atomic_bool healthy, ready;
    atomic_int metrics_calls;
} owner_t;

static rp_err_t cb_metrics(void *arg, rp_buf_t *out)
{
    owner_t *o = arg;
    atomic_fetch_add(&o->metrics_calls, 1);
    return rp_metrics_render(o->m, out);
}

static bool cb_health(void *arg, char *msg, size_t n)
{
    owner_t *o = arg;
    if (!atomic_load(&o->healthy))
        snprintf(msg, n, "loop stalled");
    return atomic_load(&o->healthy);
}

static bool cb_ready(void *arg, char *msg, size_t n)
{
    owner_t *o = arg;
    if (!atomic_load(&o->ready))
        snprintf(msg, n, "draining");
    return atomic_load(&o->ready);
}

/* Send raw bytes, read the whole answer (the server closes: we ask so). */
static char *roundtrip(uint16_t port, const char *req, size_t reqlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t off = 0;
    while (off < reqlen) {
        ssize_t w = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close early */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;
    while ((r = recv(fd, buf + len, cap - len, 0)) > 0) {
        len += (size_t)r;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *get(uint16_t port, const char *method, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     method, path);
    return roundtrip(port, req, (size_t)n);
}

static int status_of(const char *resp)
{
    int st = 0;
    if (strncmp(resp, "HTTP/1.1 ", 9) != 0)
        fprintf(stderr, "answer: [%.200s]\n", resp);
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &st), 1);
    return st;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void test_serves_endpoints(void **state)
{
    (void)state;
    owner_t o = {.m = rp_metrics_new()};
    atomic_store(&o.healthy, true);
    atomic_store(&o.ready, true);
    rp_metric_t *c = rp_metrics_counter(o.m, "x_requests_total", "Requests.",
                                        RP_LV("status"), 1, 4, NULL, 0);
    rp_metrics_add(c, RP_LV("ok"), 5);
    rp_httpd_handlers_t h = {cb_metrics, cb_health, cb_ready, &o};
    rp_httpd_t *s = NULL;
    char err[200];
    assert_int_equal(rp_httpd_start("127.0.0.1:0", &h, &s, err, sizeof err), RP_OK);
    uint16_t port = rp_httpd_port(s);
    assert_true(port > 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)port);
    assert_string_equal(rp_httpd_addr(s), want);

    char *r = get(port, "GET", "/metrics");
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    assert_string_equal(body_of(r), "# HELP x_requests_total Requests.\n"
                                    "# TYPE x_requests_total counter\n"
                                    "x_requests_total{status=\"ok\"} 5\n");
    free(r);

    r = get(port, "GET", "/healthz");
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "ok\n");
    free(r);
    atomic_store(&o.healthy, false);
    r = get(port, "GET", "/healthz");
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r), "unavailable: loop stalled\n");
    free(r);

    r = get(port, "GET", "/readyz");
    assert_int_equal(status_of(r), 200);
    free(r);
    atomic_store(&o.ready, false);
    r = get(port, "GET", "/readyz");
    assert_int_equal(status_of(r), 503);
    assert_string_equal(body_of(r), "unavailable: draining\n");
    free(r);

    r = get(port, "GET", "/nope");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = get(port, "GET", "/metrics/x");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = get(port, "DELETE", "/metrics");
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: GET, HEAD"));
    free(r);
    r = get(port, "HEAD", "/healthz");
    assert_int_equal(status_of(r), 503);
    free(r);

    /* A body is refused. */
    const char *post = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Length: 5\r\n\r\nhello";
    r = roundtrip(port, post, strlen(post));
    assert_int_equal(status_of(r), 413);
    free(r);

    /* Headers larger than the connection's memory are refused, not grown. */
    size_t big = RP_HTTPD_CONN_MEMORY * 2;
    char *req = malloc(big + 100);
    int n = snprintf(req, 100, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    r = roundtrip(port, req, strlen(req));
    assert_int_equal(status_of(r), 431);
    free(r);
    free(req);

    /* The server still answers after all of that. */
    r = get(port, "GET", "/metrics");
    assert_int_equal(status_of(r), 200);
    free(r);
    assert_int_equal(atomic_load(&o.metrics_calls), 2);

    rp_httpd_stop(s);
    rp_httpd_stop(NULL);
    rp_metrics_destroy(o.m);
}

static void test_no_metrics_callback_is_404(void **state)
{
    (void)state;
    rp_httpd_handlers_t h = {0};
    rp_httpd_t *s = NULL;
    assert_int_equal(rp_httpd_start(":0", &h, &s, NULL, 0), RP_OK);
    char *r = get(rp_httpd_port(s), "GET", "/metrics");
    assert_int_equal(status_of(r), 404);
    free(r);
    r = get(rp_httpd_port(s), "GET", "/readyz");
    assert_int_equal(status_of(r), 200);
    free(r);
    rp_httpd_stop(s);
}

static void test_parse_listen(void **state)
{
    (void)state;
    char host[RP_HTTPD_ADDR_MAX], err[200];
    uint16_t port = 1;
    assert_int_equal(rp_httpd_parse_listen("0.0.0.0:9090", host, sizeof host,
                                           &port, err, sizeof err), RP_OK);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 9090);
    assert_int_equal(rp_httpd_parse_listen("9091", host, sizeof host, &port,
                                           err, sizeof err), RP_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9091);
    assert_int_equal(rp_httpd_parse_listen(":0", host, sizeof host, &port, err,
                                           sizeof err), RP_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    assert_int_equal(rp_httpd_parse_listen("[::1]:80", host, sizeof host, &port,
                                           err, sizeof err), RP_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(rp_httpd_parse_listen("localhost:8", host, sizeof host,
                                           &port, err, sizeof err), RP_OK);
    assert_string_equal(host, "127.0.0.1");
    const char *bad[] = {"", "1.2.3.4:", "1.2.3.4:70000", "1.2.3.4:-1",
                         "example.com:80", "[::1:80", "1.2.3.4:8x", "a:b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rp_httpd_parse_listen(bad[i], host, sizeof host, &port,
                                               err, sizeof err),
                         RP_ERR_INVALID);
}

static void test_port_in_use(void **state)
{
    (void)state;
    rp_httpd_t *a = NULL, *b = NULL;
    char listen[64], err[200];
    rp_httpd_handlers_t h = {0};
    assert_int_equal(rp_httpd_start("127.0.0.1:0", &h, &a, NULL, 0), RP_OK);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)rp_httpd_port(a));
    assert_int_equal(rp_httpd_start(listen, &h, &b, err, sizeof err), RP_ERR_IO);
    assert_null(b);
    assert_non_null(strstr(err, "in use"));
    rp_httpd_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_endpoints),
        cmocka_unit_test(test_no_metrics_callback_is_404),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_port_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
