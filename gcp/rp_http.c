/* rp_http — blocking HTTP requests over the libcurl easy API.
 *
 * Each thread keeps one CURL handle (a pthread key, freed when the thread
 * exits) and resets it between requests: curl_easy_reset keeps the
 * handle's connection and DNS caches, so the worker's I/O threads reuse
 * their TLS connections to Google instead of paying a handshake per call.
 *
 * libcurl is loaded with dlopen on first use, not linked: it pulls in some
 * thirty shared libraries, and every process that links rp_core (the
 * executor above all, started for every execution) would pay for mapping
 * them even when it never speaks HTTP (file:// state, the local backend).
 */
#include "rp_http.h"

/* The type-checking macros of curl.h would call the real symbols. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "rp_time.h"

#define RP_HTTP_DEFAULT_TIMEOUT_MS 30000
/* Connecting gets its own, shorter deadline: a black-holed address should
 * fail fast and be retried, not eat the whole request timeout. */
#define RP_HTTP_CONNECT_TIMEOUT_MS 10000
#define RP_HTTP_HEADER_LINE_MAX 8192 /* one request header "Name: value" */
#define RP_HTTP_WANT_HEADER_MAX 128  /* name of the response header kept */

#define RP_HTTP_LIBCURL "libcurl.so.4"

/* The libcurl functions rp_http uses, resolved from the dlopen'ed library;
 * the names below are redirected to this table. */
static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *h);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
    void (*easy_reset)(CURL *h);
    void (*easy_cleanup)(CURL *h);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} rp_curl;
static char rp_http_load_error[256];

/* curl.h wraps these two in argument-count macros; replace them. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init (*rp_curl.global_init)
#define curl_easy_init (*rp_curl.easy_init)
#define curl_easy_setopt (*rp_curl.easy_setopt)
#define curl_easy_perform (*rp_curl.easy_perform)
#define curl_easy_getinfo (*rp_curl.easy_getinfo)
#define curl_easy_reset (*rp_curl.easy_reset)
#define curl_easy_cleanup (*rp_curl.easy_cleanup)
#define curl_easy_strerror (*rp_curl.easy_strerror)
#define curl_slist_append (*rp_curl.slist_append)
#define curl_slist_free_all (*rp_curl.slist_free_all)

/* Resolve every function or none: returns 0 on success. */
static int rp_http_load_curl(void)
{
    void *lib = dlopen(RP_HTTP_LIBCURL, RTLD_NOW | RTLD_LOCAL);
    const struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"curl_global_init", (void **)&rp_curl.global_init},
        {"curl_easy_init", (void **)&rp_curl.easy_init},
        {"curl_easy_setopt", (void **)&rp_curl.easy_setopt},
        {"curl_easy_perform", (void **)&rp_curl.easy_perform},
        {"curl_easy_getinfo", (void **)&rp_curl.easy_getinfo},
        {"curl_easy_reset", (void **)&rp_curl.easy_reset},
        {"curl_easy_cleanup", (void **)&rp_curl.easy_cleanup},
        {"curl_easy_strerror", (void **)&rp_curl.easy_strerror},
        {"curl_slist_append", (void **)&rp_curl.slist_append},
        {"curl_slist_free_all", (void **)&rp_curl.slist_free_all},
    };

    if (!lib) {
        snprintf(rp_http_load_error, sizeof(rp_http_load_error),
                 "cannot load %s: %s", RP_HTTP_LIBCURL, dlerror());
        return -1;
    }
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        if (!(*syms[i].slot = dlsym(lib, syms[i].name))) {
            snprintf(rp_http_load_error, sizeof(rp_http_load_error),
                     "%s has no %s", RP_HTTP_LIBCURL, syms[i].name);
            return -1;
        }
    }
    return 0; /* never dlclose'd: handles live until the process ends */
}

static pthread_once_t rp_http_once = PTHREAD_ONCE_INIT;
static pthread_key_t rp_http_key;
static CURLcode rp_http_init_code = CURLE_FAILED_INIT;
static int rp_http_key_ok;

/* Thread exit: free that thread's cached handle. */
static void rp_http_handle_free(void *p)
{
    curl_easy_cleanup(p);
}

static int rp_http_loaded;

static void rp_http_init_once(void)
{
    if (rp_http_load_curl() != 0)
        return;
    rp_http_loaded = 1;
    rp_http_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
    rp_http_key_ok = pthread_key_create(&rp_http_key, rp_http_handle_free) == 0;
}

rp_err_t rp_http_global_init(char *errstr, size_t errstr_size)
{
    pthread_once(&rp_http_once, rp_http_init_once);
    if (!rp_http_loaded)
        return rp_errf(errstr, errstr_size, RP_ERR_UNAVAILABLE, "rp_http: %s",
                       rp_http_load_error);
    if (rp_http_init_code != CURLE_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                       "libcurl initialisation failed: %s",
                       curl_easy_strerror(rp_http_init_code));
    if (!rp_http_key_ok)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "rp_http: cannot create the per-thread handle key");
    return RP_OK;
}

void rp_http_thread_cleanup(void)
{
    CURL *h;

    if (!rp_http_key_ok || !rp_http_loaded)
        return;
    h = pthread_getspecific(rp_http_key);
    if (!h)
        return;
    pthread_setspecific(rp_http_key, NULL);
    curl_easy_cleanup(h);
}

/* The calling thread's handle, reset to defaults (connections kept). */
static rp_err_t rp_http_handle(CURL **out, char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_http_global_init(errstr, errstr_size);
    CURL *h;

    if (err != RP_OK)
        return err;
    h = pthread_getspecific(rp_http_key);
    if (h) {
        curl_easy_reset(h);
    } else {
        h = curl_easy_init();
        if (!h)
            return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                           "curl_easy_init failed");
        if (pthread_setspecific(rp_http_key, h) != 0) {
            curl_easy_cleanup(h);
            return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                           "rp_http: cannot cache the thread's handle");
        }
    }
    *out = h;
    return RP_OK;
}

typedef struct rp_http_ctx {
    rp_http_resp_t *resp;
    const char *want;
    size_t want_len;
    int too_large;
} rp_http_ctx_t;

static size_t rp_http_write_cb(char *p, size_t size, size_t n, void *opaque)
{
    rp_http_ctx_t *c = opaque;
    size_t len = size * n;

    if (rp_buf_append(&c->resp->body, p, len) != RP_OK) {
        c->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

static int rp_http_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Called once per header line, for every response (1xx ones too). */
static size_t rp_http_header_cb(char *p, size_t size, size_t n, void *opaque)
{
    rp_http_ctx_t *c = opaque;
    size_t len = size * n, vlen;
    const char *v, *end;

    /* A new status line starts a new response: forget the previous one's
     * header (an interim "100 Continue" is not the answer). */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        c->resp->header_value[0] = '\0';
        return len;
    }
    if (!c->want || len <= c->want_len || p[c->want_len] != ':' ||
        strncasecmp(p, c->want, c->want_len) != 0)
        return len;
    v = p + c->want_len + 1;
    end = p + len;
    while (v < end && rp_http_is_space(*v))
        v++;
    while (end > v && rp_http_is_space(end[-1]))
        end--;
    vlen = (size_t)(end - v);
    if (vlen >= sizeof(c->resp->header_value))
        vlen = sizeof(c->resp->header_value) - 1; /* documented: cut */
    memcpy(c->resp->header_value, v, vlen);
    c->resp->header_value[vlen] = '\0';
    return len;
}

static rp_err_t rp_http_curl_err(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return RP_ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return RP_ERR_UNAVAILABLE;
    case CURLE_OUT_OF_MEMORY:
        return RP_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return RP_ERR_INVALID;
    default: /* TLS verification, weird replies: trying again will not help */
        return RP_ERR_PROTOCOL;
    }
}

static int rp_http_has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static rp_err_t rp_http_check(const rp_http_req_t *req, char *errstr,
                              size_t errstr_size)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE",
                                          "PATCH", "HEAD"};
    size_t i;
    int known = 0;

    if (!req || !req->method || !req->url)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: request, method and url are required");
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        known |= strcmp(req->method, methods[i]) == 0;
    if (!known)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: unsupported method '%.16s'",
                       req->method);
    if (strnlen(req->url, RP_HTTP_URL_MAX) >= RP_HTTP_URL_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "rp_http_request: URL longer than %d bytes",
                       RP_HTTP_URL_MAX - 1);
    if (rp_http_has_crlf(req->url))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: URL contains CR or LF");
    if (req->n_headers > RP_HTTP_HEADERS_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "rp_http_request: %zu headers (max %d)",
                       req->n_headers, RP_HTTP_HEADERS_MAX);
    if (req->n_headers > 0 && !req->headers)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: headers is NULL");
    for (i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];

        /* A CR/LF would let a value smuggle in extra headers. */
        if (!h || !strchr(h, ':') || rp_http_has_crlf(h) ||
            strnlen(h, RP_HTTP_HEADER_LINE_MAX) >= RP_HTTP_HEADER_LINE_MAX)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "rp_http_request: header %zu is not one "
                           "'Name: value' line",
                           i);
    }
    if (req->body_len > 0 && !req->body)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: body is NULL");
    if (req->want_header &&
        (req->want_header[0] == '\0' ||
         strnlen(req->want_header, RP_HTTP_WANT_HEADER_MAX) >=
             RP_HTTP_WANT_HEADER_MAX))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: bad want_header");
    if (req->timeout_ms < 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: negative timeout");
    return RP_OK;
}

static const rp_http_observer_t *_Atomic rp_http_observer;

void rp_http_set_observer(const rp_http_observer_t *obs)
{
    atomic_store(&rp_http_observer, obs);
}

rp_err_t rp_http_request(const rp_http_req_t *req, rp_http_resp_t *resp,
                         char *errstr, size_t errstr_size)
{
    char cerr[CURL_ERROR_SIZE];
    struct curl_slist *hdrs = NULL, *tmp;
    rp_http_ctx_t ctx;
    CURL *h = NULL;
    CURLcode rc;
    rp_err_t err;
    long timeout_ms, connect_ms;
    size_t i;
    bool observed = false;
    int64_t t0 = 0;

    if (!resp)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_http_request: resp is NULL");
    /* Works on a zeroed resp and on one used before. */
    rp_buf_free(&resp->body);
    resp->status = 0;
    resp->header_value[0] = '\0';
    err = rp_http_check(req, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    rp_buf_init(&resp->body, req->response_max ? req->response_max
                                               : RP_HTTP_RESPONSE_MAX);
    err = rp_http_handle(&h, errstr, errstr_size);
    if (err != RP_OK)
        goto out;

    for (i = 0; i < req->n_headers; i++) {
        tmp = curl_slist_append(hdrs, req->headers[i]);
        if (!tmp)
            goto nomem;
        hdrs = tmp;
    }
    /* No "Expect: 100-continue" round trip before large uploads. */
    tmp = curl_slist_append(hdrs, "Expect:");
    if (!tmp)
        goto nomem;
    hdrs = tmp;

    memset(&ctx, 0, sizeof(ctx));
    ctx.resp = resp;
    ctx.want = req->want_header;
    ctx.want_len = req->want_header ? strlen(req->want_header) : 0;
    timeout_ms = req->timeout_ms ? req->timeout_ms : RP_HTTP_DEFAULT_TIMEOUT_MS;
    connect_ms = timeout_ms < RP_HTTP_CONNECT_TIMEOUT_MS
                     ? timeout_ms
                     : RP_HTTP_CONNECT_TIMEOUT_MS;
    cerr[0] = '\0';

    curl_easy_setopt(h, CURLOPT_URL, req->url);
    /* Worker threads must never get SIGALRM from the resolver. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    if (req->fresh_connection)
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rp_http_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, rp_http_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        /* DELETE without a body sends no body and no Content-Length. */
        if (strcmp(req->method, "DELETE") != 0 || req->body_len > 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                             req->body ? (const char *)req->body : "");
        }
    }

    t0 = rp_time_mono_us();
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    observed = true;
    if (rc == CURLE_OK) {
        err = RP_OK;
        /* Keep "data is non-NULL on success" even for an empty body. */
        if (!resp->body.data)
            err = rp_buf_append(&resp->body, "", 0);
        if (err != RP_OK)
            rp_errf(errstr, errstr_size, err, "%s %s: out of memory",
                    req->method, req->url);
    } else if (ctx.too_large) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "%s %s: response body larger than %zu bytes",
                      req->method, req->url, resp->body.max);
    } else {
        err = rp_errf(errstr, errstr_size, rp_http_curl_err(rc), "%s %s: %s",
                      req->method, req->url,
                      cerr[0] ? cerr : curl_easy_strerror(rc));
    }
    goto out;

nomem:
    err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                  "rp_http_request: out of memory");
out:
    /* The cached handle must not keep pointers into this call's stack. */
    if (h) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    }
    curl_slist_free_all(hdrs);
    if (observed) {
        const rp_http_observer_t *obs = atomic_load(&rp_http_observer);
        if (obs)
            obs->fn(req->method, req->url, resp->status, err,
                    rp_time_mono_us() - t0, obs->arg);
    }
    return err;
}

void rp_http_resp_clear(rp_http_resp_t *resp)
{
    if (!resp)
        return;
    rp_buf_free(&resp->body);
    resp->status = 0;
    resp->header_value[0] = '\0';
}

bool rp_http_status_retriable(long status)
{
    return status == 408 || status == 429 || status == 500 || status == 502 ||
           status == 503 || status == 504;
}

/* Thread-local xorshift, used only when getrandom fails (very old kernel,
 * seccomp): jitter needs to spread clients, not be unpredictable. */
static uint64_t rp_http_fallback_random(void)
{
    static __thread uint64_t s;
    struct timespec ts;

    if (s == 0) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
            (uint64_t)(uintptr_t)&s;
        if (s == 0)
            s = 0x9e3779b97f4a7c15ULL;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

int rp_http_retry_delay_ms(int attempt, int base_ms, int cap_ms)
{
    uint64_t ceil_ms, r;
    int shift;

    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    shift = attempt < 1 ? 0 : attempt - 1;
    if (shift > 30) /* base * 2^30 already passes any int cap */
        shift = 30;
    ceil_ms = (uint64_t)base_ms << shift;
    if (ceil_ms > (uint64_t)cap_ms)
        ceil_ms = (uint64_t)cap_ms;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = rp_http_fallback_random();
    return (int)(r % (ceil_ms + 1));
}

static int rp_http_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

rp_err_t rp_http_escape(const char *s, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (!out || out_size == 0)
        return RP_ERR_TOO_LARGE;
    out[0] = '\0';
    if (!s)
        return RP_ERR_INVALID;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (rp_http_unreserved(c)) {
            if (o + 1 >= out_size)
                goto too_large;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= out_size)
                goto too_large;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return RP_OK;

too_large:
    out[0] = '\0'; /* never hand out a cut name: it would be another one */
    return RP_ERR_TOO_LARGE;
}
