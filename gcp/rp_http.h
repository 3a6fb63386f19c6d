/* rp_http — blocking HTTP/1.1 requests over libcurl, for the Google APIs.
 *
 * One request = one call. Responses are bounded by a named maximum, so a
 * misbehaving server cannot make us allocate without bound. Retries are
 * the caller's decision (only the caller knows whether an operation is safe
 * to repeat); rp_http_retry_delay_ms gives the standard exponential backoff
 * with full jitter, and rp_http_status_retriable the standard classes
 * (429, 5xx, timeouts, connection errors).
 *
 * Thread-safety: rp_http_global_init once from the main thread before any
 * other thread starts; after that any thread may call rp_http_request.
 * (rp_http_request also initialises on first use, under pthread_once, so a
 * forgotten call is not a crash; libcurl still prefers the early one.)
 * Each thread keeps one cached CURL handle, so its connections are reused
 * across calls; it is freed when the thread exits (rp_http_thread_cleanup
 * frees it earlier, e.g. on the main thread before exit).
 */
#ifndef RP_HTTP_H
#define RP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_err.h"

#define RP_HTTP_URL_MAX 8192
#define RP_HTTP_HEADERS_MAX 16        /* request headers per call */
#define RP_HTTP_RESPONSE_MAX (64 * 1024 * 1024)
#define RP_HTTP_RESP_HEADER_MAX 8192  /* one response header value kept */

typedef struct rp_http_req {
    const char *method;  /* "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" */
    const char *url;
    const char *const *headers; /* "Name: value" strings, borrowed */
    size_t n_headers;
    const void *body;    /* may be NULL */
    size_t body_len;
    int timeout_ms;      /* whole request; 0 = 30000 */
    size_t response_max; /* 0 = RP_HTTP_RESPONSE_MAX */
    /* Response header whose value to keep (e.g. "X-Goog-Generation"),
     * case-insensitive; NULL = none. */
    const char *want_header;
    /* Open a new connection for this request instead of reusing a kept
     * one. For requests that must not be sent twice (Cloud Run jobs.run):
     * libcurl silently re-sends a request whose reused connection died
     * before any answer; on a new connection it reports the loss instead. */
    bool fresh_connection;
} rp_http_req_t;

typedef struct rp_http_resp {
    long status;         /* HTTP status; 0 when no response arrived */
    rp_buf_t body;       /* owned; free with rp_http_resp_clear */
    /* want_header's value (of the final response, trimmed, cut to fit) or
     * "" when absent. */
    char header_value[RP_HTTP_RESP_HEADER_MAX];
} rp_http_resp_t;

/* Process-wide libcurl initialisation; later calls are no-ops that report
 * the first call's result. */
rp_err_t rp_http_global_init(char *errstr, size_t errstr_size);

/* Perform req. Returns RP_OK whenever an HTTP response arrived, whatever its
 * status (look at resp->status); RP_ERR_TIMEOUT / RP_ERR_UNAVAILABLE for
 * timeouts and connection failures (retriable), RP_ERR_TOO_LARGE when the
 * body passed response_max, RP_ERR_INVALID for a bad request (unknown
 * method, CR/LF in a header or the URL), RP_ERR_TOO_LARGE also for a URL
 * of RP_HTTP_URL_MAX bytes or more than RP_HTTP_HEADERS_MAX headers.
 * resp must be zeroed by the caller (or hold an earlier response, which is
 * freed first); it is filled even on error when possible. On RP_OK
 * resp->body.data is non-NULL and NUL-terminated. req and everything it
 * points to are borrowed for the call. Any thread. */
rp_err_t rp_http_request(const rp_http_req_t *req, rp_http_resp_t *resp,
                         char *errstr, size_t errstr_size);

/* Free resp's body and reset it to the zeroed state. Accepts NULL. */
void rp_http_resp_clear(rp_http_resp_t *resp);

/* Free the calling thread's cached handle now (the next request makes a
 * new one). Threads that exit free theirs anyway. Any thread. */
void rp_http_thread_cleanup(void);

/* An observer of every completed request (metrics): method and url are
 * the request's (borrowed for the call), status 0 when no response came,
 * err what rp_http_request returns. Called on the requesting thread, so
 * fn must be thread-safe. */
typedef void(rp_http_observer_fn)(const char *method, const char *url,
                                  long status, rp_err_t err,
                                  int64_t duration_us, void *arg);
typedef struct rp_http_observer {
    rp_http_observer_fn *fn;
    void *arg;
} rp_http_observer_t;
/* Process-wide; obs borrowed (it must outlive every request made while it
 * is set), NULL removes it. One pointer, swapped atomically, so a request
 * never pairs one observer's fn with another's arg. Set it before other
 * threads make requests and clear it after they stopped: a request
 * finishing concurrently with the clear may still call the old one. */
void rp_http_set_observer(const rp_http_observer_t *obs);

/* 429, 500, 502, 503, 504 (and 408). */
bool rp_http_status_retriable(long status);

/* Backoff before attempt number `attempt` (1 = first retry): a random
 * delay in [0, min(cap_ms, base_ms * 2^(attempt-1))] ("full jitter").
 * attempt < 1 counts as 1; base_ms or cap_ms <= 0 gives 0. Any thread. */
int rp_http_retry_delay_ms(int attempt, int base_ms, int cap_ms);

/* Percent-encode s as ONE path segment or query value (RFC 3986
 * unreserved chars kept; '/' becomes %2F). Returns RP_ERR_TOO_LARGE when
 * out_size is too small (out is then "", never a cut name), RP_ERR_INVALID
 * for s == NULL. Any thread. */
rp_err_t rp_http_escape(const char *s, char *out, size_t out_size);

#endif
