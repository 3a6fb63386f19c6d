/* rp_state_gs — rp_state on Cloud Storage through the JSON API.
 *
 *   get     GET  {base}/storage/v1/b/B/o/{enc(name)}?alt=media
 *           version = X-Goog-Generation response header
 *   put     POST {base}/upload/storage/v1/b/B/o?uploadType=media
 *                &name={enc(name)}[&ifGenerationMatch=N]
 *           version = "generation" of the Object JSON reply
 *   delete  DELETE {base}/storage/v1/b/B/o/{enc(name)}[?ifGenerationMatch=N]
 *   list    GET  {base}/storage/v1/b/B/o?prefix=..&pageToken=..
 *
 * Retries (Google's truncated exponential backoff with up to 1 s of
 * jitter, within a total deadline) cover 408/429/5xx, timeouts
 * and connection failures for every operation: reads are safe, conditional
 * writes and deletes are safe because GCS re-checks the precondition, and
 * an unconditional write of the same bytes is idempotent. The one subtle
 * case is a conditional write whose earlier attempt may have landed: its
 * replay fails the precondition (412) against our own write, so a 412
 * after such an attempt re-reads the object and counts it as success when
 * it holds exactly our bytes.
 */
#include "rp_state_gs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rp_auth.h"
#include "rp_http.h"

/* Object name: PREFIX "/" KEY. */
#define RP_STATE_GS_NAME_MAX (RP_STATE_GS_PREFIX_MAX + 1 + RP_STATE_KEY_MAX)
/* Percent-encoding at most triples it. */
#define RP_STATE_GS_ENC_MAX (3 * RP_STATE_GS_NAME_MAX + 1)
#define RP_STATE_GS_SHOWN_MAX \
    (8 + RP_STATE_GS_BUCKET_MAX + RP_STATE_GS_PREFIX_MAX) /* gs://B/P */
#define RP_STATE_GS_MSG_MAX 300           /* Google's error message kept */
#define RP_STATE_GS_ERR_MAX 1024          /* one attempt's error text */
#define RP_STATE_GS_REPLY_MAX (64 * 1024) /* Object JSON and error bodies */
#define RP_STATE_GS_LIST_PAGE_MAX (16 * 1024 * 1024) /* one list page */
#define RP_STATE_GS_PAGE_TOKEN_MAX 4096
#define RP_STATE_GS_DEFAULT_BASE "https://storage.googleapis.com"
/* Only the fields list needs from a page: keeps pages small. */
#define RP_STATE_GS_LIST_FIELDS "items(name,generation),nextPageToken"

typedef struct rp_state_gs {
    char bucket[RP_STATE_GS_BUCKET_MAX + 1];
    char prefix[RP_STATE_GS_PREFIX_MAX + 1]; /* no slashes at the ends */
    char base[RP_STATE_GS_BASE_MAX + 1];     /* no trailing '/' */
    char shown[RP_STATE_GS_SHOWN_MAX];       /* "gs://B/P" for messages */
    bool emulator;                           /* no Authorization header */
    rp_auth_t *auth;     /* the rp_gcp_t's (borrowed) or own_auth; NULL: none */
    rp_auth_t *own_auth; /* owned: wraps rp_state_opts_t.token */
    int attempts;
    int timeout_ms;
    int retry_initial_ms, retry_max_ms, retry_deadline_ms;
} rp_state_gs_t;

/* ---- small helpers ---- */

static void rp_state_gs_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t rp_state_gs_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait before retry n (1 = the first retry), as Cloud Storage's
 * retry strategy page gives it: min(2^(n-1) * initial, max) plus a random
 * 0..min(initial, 1 s) ms, so clients throttled together do not come
 * back together. The jitter is added on top (never a 0 ms wait): a 429
 * for one object name's write rate only clears with time. */
static int rp_state_gs_retry_wait_ms(const rp_state_gs_t *gs, int n)
{
    int jitter = gs->retry_initial_ms < RP_STATE_GS_RETRY_JITTER_MAX_MS
                     ? gs->retry_initial_ms
                     : RP_STATE_GS_RETRY_JITTER_MAX_MS;
    int64_t w = gs->retry_initial_ms;

    for (int i = 1; i < n && w < gs->retry_max_ms; i++)
        w *= 2;
    if (w > gs->retry_max_ms)
        w = gs->retry_max_ms;
    /* rp_http_retry_delay_ms(1, j, j) is uniform in [0, j]. */
    return (int)w + rp_http_retry_delay_ms(1, jitter, jitter);
}

/* "PREFIX/KEY" (or KEY) into out. */
static rp_err_t rp_state_gs_name(const rp_state_gs_t *gs, const char *key,
                                 char *out, size_t out_size, char *errstr,
                                 size_t errstr_size)
{
    int n = snprintf(out, out_size, "%s%s%s", gs->prefix,
                     gs->prefix[0] ? "/" : "", key);

    if (n < 0 || (size_t)n >= out_size)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: object name for key '%s' too long", gs->shown,
                       key);
    return RP_OK;
}

/* printf a request URL into url; RP_ERR_TOO_LARGE, naming what, when it
 * does not fit. */
static rp_err_t rp_state_gs_url(char *url, size_t url_size, const char *what,
                                char *errstr, size_t errstr_size,
                                const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static rp_err_t rp_state_gs_url(char *url, size_t url_size, const char *what,
                                char *errstr, size_t errstr_size,
                                const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(url, url_size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= url_size)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: request URL too long", what);
    return RP_OK;
}

/* The URL of key's object, then tail (a query, may be ""): in the JSON API
 * (BASE/storage/v1/b/BUCKET/o/NAME) or, with upload, the media upload's
 * (BASE/upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME). */
static rp_err_t rp_state_gs_object_url(const rp_state_gs_t *gs,
                                       const char *key, bool upload,
                                       const char *tail, char *url,
                                       size_t url_size, const char *what,
                                       char *errstr, size_t errstr_size)
{
    char name[RP_STATE_GS_NAME_MAX + 1], enc[RP_STATE_GS_ENC_MAX];
    rp_err_t err;

    err = rp_state_gs_name(gs, key, name, sizeof(name), errstr, errstr_size);
    if (err != RP_OK)
        return err;
    if (rp_http_escape(name, enc, sizeof(enc)) != RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: request URL too long", what);
    return rp_state_gs_url(url, url_size, what, errstr, errstr_size,
                           "%s%s/storage/v1/b/%s/o%s%s%s", gs->base,
                           upload ? "/upload" : "", gs->bucket,
                           upload ? "?uploadType=media&name=" : "/", enc,
                           tail);
}

/* Parse a generation ("123", int64 as a JSON string or the header value):
 * digits only, never 0, never RP_STATE_ANY. */
bool rp_state_gs_parse_generation(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (!s || !s[0])
        return false;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 20)
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v == RP_STATE_ANY)
        return false;
    *out = v;
    return true;
}

/* Copy at most out_size - 1 bytes of s, control characters as spaces, so
 * a reply can never break our one-line messages. */
static void rp_state_gs_printable(char *out, size_t out_size, const char *s,
                                  size_t len)
{
    size_t i, n = len < out_size - 1 ? len : out_size - 1;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* Google's message from an error reply ({"error":{"message":...}}), or
 * the start of the body when it is not JSON (emulators answer text). */
void rp_state_gs_error_message(const char *body, size_t body_len, char *out,
                               size_t out_size)
{
    cJSON *root;
    const cJSON *e, *m;
    size_t len;

    if (out_size == 0)
        return;
    if (!body) {
        body = "";
        body_len = 0;
    }
    root = cJSON_ParseWithLength(body, body_len);
    e = cJSON_GetObjectItemCaseSensitive(root, "error");
    m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(m) && m->valuestring) {
        rp_state_gs_printable(out, out_size, m->valuestring,
                              strlen(m->valuestring));
    } else {
        len = body_len;
        while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' ||
                           body[len - 1] == ' '))
            len--;
        if (len == 0)
            snprintf(out, out_size, "(empty reply)");
        else
            rp_state_gs_printable(out, out_size, body, len);
    }
    cJSON_Delete(root);
}

static void rp_state_gs_message(const rp_http_resp_t *resp, char *out,
                                size_t out_size)
{
    rp_state_gs_error_message(resp->body.data, resp->body.len, out, out_size);
}

/* Map a final, non-success HTTP status that the operation did not handle
 * itself. what names the object or bucket. */
static rp_err_t rp_state_gs_status_err(const rp_http_resp_t *resp,
                                       const char *what, char *errstr,
                                       size_t errstr_size)
{
    char msg[RP_STATE_GS_MSG_MAX];
    rp_err_t err;

    rp_state_gs_message(resp, msg, sizeof(msg));
    if (resp->status == 401 || resp->status == 403)
        err = RP_ERR_PERMISSION;
    else if (resp->status == 404)
        err = RP_ERR_NOT_FOUND;
    else if (resp->status >= 400 && resp->status < 500)
        err = RP_ERR_INVALID;
    else
        err = RP_ERR_PROTOCOL;
    return rp_errf(errstr, errstr_size, err, "%s: HTTP %ld: %s", what,
                   resp->status, msg);
}

/* ---- one request, with retries ---- */

typedef struct rp_state_gs_call {
    const char *method;
    const char *url;
    const void *body;
    size_t body_len;
    size_t response_max;
    const char *want_header;
    const char *what; /* "gs://B/P/KEY": prefix of every error */
} rp_state_gs_call_t;

/* Perform c until a non-retriable answer arrives or attempts run out.
 * RP_OK: resp holds the final response (any status but a retriable one).
 * *maybe_applied tells whether an earlier failed attempt may still have
 * reached the server and taken effect (timeout, dropped connection, 5xx;
 * not 429/408, which GCS sends before doing anything). */
static rp_err_t rp_state_gs_send(const rp_state_gs_t *gs,
                                 const rp_state_gs_call_t *c,
                                 rp_http_resp_t *resp, bool *maybe_applied,
                                 char *errstr, size_t errstr_size)
{
    char last[RP_STATE_GS_ERR_MAX + 32]; /* herr or a status line */
    char herr[RP_STATE_GS_ERR_MAX];
    char msg[RP_STATE_GS_MSG_MAX];
    const char *hdrs[1];
    rp_http_req_t req = {0};
    rp_err_t err = RP_OK, last_err = RP_ERR_UNAVAILABLE;
    int64_t t0 = rp_state_gs_mono_ms();
    bool past_deadline = false, token_failed;
    int attempt;

    *maybe_applied = false;
    last[0] = '\0';
    for (attempt = 1;; attempt++) {
        size_t nh = 0;

        if (attempt > 1) {
            int wait = rp_state_gs_retry_wait_ms(gs, attempt - 1);

            if (rp_state_gs_mono_ms() - t0 + wait > gs->retry_deadline_ms) {
                attempt--; /* not made */
                past_deadline = true;
                break;
            }
            rp_state_gs_sleep_ms(wait);
        }
        if (!gs->emulator && !gs->auth) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                          "%s: no Google credentials configured (no token "
                          "source; set STORAGE_EMULATOR_HOST to use an "
                          "emulator)",
                          c->what);
            goto out;
        }
        if (c->body)
            hdrs[nh++] = "Content-Type: application/octet-stream";
        req.method = c->method;
        req.url = c->url;
        req.headers = hdrs;
        req.n_headers = nh;
        req.body = c->body;
        req.body_len = c->body_len;
        req.timeout_ms = gs->timeout_ms;
        req.response_max = c->response_max;
        req.want_header = c->want_header;
        /* The token and its refresh-and-retry on 401 live in rp_auth. */
        err = rp_auth_request(gs->emulator ? NULL : gs->auth, &req, resp,
                              &token_failed, herr, sizeof(herr));
        if (err != RP_OK && token_failed) {
            if (!rp_err_retriable(err)) {
                rp_errf(errstr, errstr_size, err, "%s: access token: %s",
                        c->what, herr);
                goto out;
            }
            last_err = err;
            snprintf(last, sizeof(last), "access token: %s", herr);
            if (attempt >= gs->attempts)
                break;
            continue;
        }
        if (err == RP_OK && !rp_http_status_retriable(resp->status))
            goto out;
        if (err != RP_OK && err != RP_ERR_TIMEOUT &&
            err != RP_ERR_UNAVAILABLE) {
            rp_errf(errstr, errstr_size, err, "%s: %s", c->what, herr);
            goto out;
        }
        if (err == RP_OK) {
            rp_state_gs_message(resp, msg, sizeof(msg));
            snprintf(last, sizeof(last), "HTTP %ld: %s", resp->status, msg);
            last_err = resp->status == 408 || resp->status == 504
                           ? RP_ERR_TIMEOUT
                           : RP_ERR_UNAVAILABLE;
            if (resp->status >= 500)
                *maybe_applied = true;
        } else {
            snprintf(last, sizeof(last), "%s", herr);
            last_err = err;
            *maybe_applied = true;
        }
        if (attempt >= gs->attempts)
            break;
    }
    if (attempt == 1)
        err = rp_errf(errstr, errstr_size, last_err, "%s: %s", c->what, last);
    else if (past_deadline)
        err = rp_errf(errstr, errstr_size, last_err,
                      "%s: giving up after %d attempts (retry deadline %d "
                      "ms): %s",
                      c->what, attempt, gs->retry_deadline_ms, last);
    else
        err = rp_errf(errstr, errstr_size, last_err,
                      "%s: giving up after %d attempts: %s", c->what,
                      attempt, last);
out:
    return err;
}

/* ---- get ---- */

/* Download name into out (its max bounds the object) with its generation.
 * A reply status other than 200 comes back as *status with RP_OK so the
 * caller decides what 404 means. */
static rp_err_t rp_state_gs_download(const rp_state_gs_t *gs, const char *key,
                                     rp_buf_t *out, uint64_t *version,
                                     long *status, char *errstr,
                                     size_t errstr_size)
{
    char url[RP_HTTP_URL_MAX], what[RP_STATE_GS_SHOWN_MAX + RP_STATE_KEY_MAX];
    rp_state_gs_call_t c = {0};
    rp_http_resp_t resp = {0};
    bool maybe;
    rp_err_t err;

    *status = 0;
    snprintf(what, sizeof(what), "%s/%s", gs->shown, key);
    err = rp_state_gs_object_url(gs, key, false, "?alt=media", url,
                                 sizeof(url), what, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    c.method = "GET";
    c.url = url;
    /* Room for error bodies even when the caller's buffer is tiny. */
    c.response_max = out->max > RP_STATE_GS_REPLY_MAX ? out->max
                                                      : RP_STATE_GS_REPLY_MAX;
    c.want_header = "X-Goog-Generation";
    c.what = what;
    err = rp_state_gs_send(gs, &c, &resp, &maybe, errstr, errstr_size);
    if (err == RP_ERR_TOO_LARGE && resp.status == 200)
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "%s: object larger than %zu bytes", what, out->max);
    if (err != RP_OK)
        goto out;
    *status = resp.status;
    if (resp.status != 200) {
        if (resp.status != 404)
            err = rp_state_gs_status_err(&resp, what, errstr, errstr_size);
        else
            rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                    "state key '%s' not found in %s", key, gs->shown);
        goto out;
    }
    if (resp.body.len > out->max) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "%s: object is %zu bytes (max %zu)", what, resp.body.len,
                      out->max);
        goto out;
    }
    if (!rp_state_gs_parse_generation(resp.header_value, version)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "%s: download reply has no valid X-Goog-Generation "
                      "header ('%.40s')",
                      what, resp.header_value);
        goto out;
    }
    /* Hand the downloaded bytes over instead of copying up to 64 MiB. */
    rp_buf_free(out);
    out->data = resp.body.data;
    out->len = resp.body.len;
    out->cap = resp.body.cap;
    resp.body.data = NULL;
out:
    rp_http_resp_clear(&resp);
    return err;
}

static rp_err_t rp_state_gs_get(rp_state_t *st, const char *key, rp_buf_t *out,
                                uint64_t *version, char *errstr,
                                size_t errstr_size)
{
    const rp_state_gs_t *gs = st->impl;
    uint64_t v = 0;
    long status;
    rp_err_t err;

    rp_buf_reset(out);
    err = rp_state_gs_download(gs, key, out, &v, &status, errstr, errstr_size);
    if (err == RP_OK && status == 404)
        err = RP_ERR_NOT_FOUND; /* message written by the download */
    if (err == RP_OK && version)
        *version = v;
    return err;
}

/* ---- put ---- */

/* After a 412 that may have been our own earlier attempt: does the object
 * hold exactly data? Sets *gen to its generation when it does. */
static rp_err_t rp_state_gs_is_ours(const rp_state_gs_t *gs, const char *key,
                                    const void *data, size_t len, bool *ours,
                                    uint64_t *gen, char *errstr,
                                    size_t errstr_size)
{
    rp_buf_t b;
    long status;
    rp_err_t err;

    *ours = false;
    rp_buf_init(&b, len);
    err = rp_state_gs_download(gs, key, &b, gen, &status, errstr,
                               errstr_size);
    if (err == RP_ERR_TOO_LARGE) {
        err = RP_OK; /* longer than ours: someone else's */
    } else if (err == RP_OK && status == 200) {
        *ours = b.len == len && (len == 0 || memcmp(b.data, data, len) == 0);
    }
    rp_buf_free(&b);
    return err;
}

static rp_err_t rp_state_gs_put(rp_state_t *st, const char *key,
                                const void *data, size_t len,
                                uint64_t if_version, uint64_t *new_version,
                                char *errstr, size_t errstr_size)
{
    const rp_state_gs_t *gs = st->impl;
    char url[RP_HTTP_URL_MAX], cond[48] = "";
    char what[RP_STATE_GS_SHOWN_MAX + RP_STATE_KEY_MAX];
    rp_state_gs_call_t c = {0};
    rp_http_resp_t resp = {0};
    uint64_t v = 0;
    bool maybe = false, ours = false;
    rp_err_t err;

    snprintf(what, sizeof(what), "%s/%s", gs->shown, key);
    if (if_version != RP_STATE_ANY)
        snprintf(cond, sizeof(cond), "&ifGenerationMatch=%" PRIu64,
                 if_version);
    err = rp_state_gs_object_url(gs, key, true, cond, url, sizeof(url), what,
                                 errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    c.method = "POST";
    c.url = url;
    c.body = data;
    c.body_len = len;
    c.response_max = RP_STATE_GS_REPLY_MAX;
    c.what = what;
    err = rp_state_gs_send(gs, &c, &resp, &maybe, errstr, errstr_size);
    if (err != RP_OK)
        goto out;

    if (resp.status == 412 && if_version != RP_STATE_ANY) {
        /* A lost reply to our own conditional write looks exactly like
         * losing the race: look at what is there now. */
        if (maybe) {
            err = rp_state_gs_is_ours(gs, key, data, len, &ours, &v, errstr,
                                      errstr_size);
            if (err != RP_OK)
                goto out;
            if (ours)
                goto done;
        }
        if (if_version == 0)
            err = rp_errf(errstr, errstr_size, RP_ERR_EXISTS,
                          "state key '%s' already exists in %s", key,
                          gs->shown);
        else
            err = rp_errf(errstr, errstr_size, RP_ERR_CONFLICT,
                          "state key '%s' in %s: expected version %" PRIu64
                          ", the live version differs or the object is "
                          "absent",
                          key, gs->shown, if_version);
        goto out;
    }
    if (resp.status != 200) {
        err = rp_state_gs_status_err(&resp, what, errstr, errstr_size);
        /* Uploads only 404 when the bucket is missing: configuration. */
        if (err == RP_ERR_NOT_FOUND)
            err = RP_ERR_INVALID;
        goto out;
    }
    if (!rp_state_gs_parse_object_reply(resp.body.data, resp.body.len, &v)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "%s: upload reply has no valid \"generation\"", what);
        goto out;
    }
done:
    if (new_version)
        *new_version = v;
    err = RP_OK;
out:
    rp_http_resp_clear(&resp);
    return err;
}

bool rp_state_gs_parse_object_reply(const char *body, size_t len,
                                    uint64_t *generation)
{
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "generation");
    uint64_t v = 0;
    bool ok;

    /* int64 travels as a string; accept a bare number from odd servers. */
    ok = (cJSON_IsString(g) && rp_state_gs_parse_generation(g->valuestring,
                                                            &v)) ||
         (cJSON_IsNumber(g) && g->valuedouble >= 1 &&
          g->valuedouble < 9007199254740992.0 &&
          (v = (uint64_t)g->valuedouble) > 0 && v != RP_STATE_ANY);
    if (ok)
        *generation = v;
    cJSON_Delete(root);
    return ok;
}

/* ---- delete ---- */

static rp_err_t rp_state_gs_del(rp_state_t *st, const char *key,
                                uint64_t if_version, char *errstr,
                                size_t errstr_size)
{
    const rp_state_gs_t *gs = st->impl;
    char url[RP_HTTP_URL_MAX], cond[48] = "";
    char what[RP_STATE_GS_SHOWN_MAX + RP_STATE_KEY_MAX];
    rp_state_gs_call_t c = {0};
    rp_http_resp_t resp = {0};
    bool maybe = false;
    rp_err_t err;

    snprintf(what, sizeof(what), "%s/%s", gs->shown, key);
    if (if_version != RP_STATE_ANY)
        snprintf(cond, sizeof(cond), "?ifGenerationMatch=%" PRIu64,
                 if_version);
    err = rp_state_gs_object_url(gs, key, false, cond, url, sizeof(url), what,
                                 errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    c.method = "DELETE";
    c.url = url;
    c.response_max = RP_STATE_GS_REPLY_MAX;
    c.what = what;
    err = rp_state_gs_send(gs, &c, &resp, &maybe, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    if (resp.status == 200 || resp.status == 204)
        goto out;
    if (resp.status == 404) {
        /* Gone after an attempt that may have deleted it: the delete did
         * what was asked, most likely by our own hand. */
        if (!maybe)
            err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                          "state key '%s' not found in %s", key, gs->shown);
        goto out;
    }
    if (resp.status == 412 && if_version != RP_STATE_ANY) {
        /* rp_state.h: an absent key is NOT_FOUND whatever if_version; GCS
         * may answer 412 for it, so ask which case this is. */
        rp_http_resp_clear(&resp);
        err = rp_state_gs_object_url(gs, key, false, "?fields=generation", url,
                                     sizeof(url), what, errstr, errstr_size);
        if (err != RP_OK)
            goto out;
        c.method = "GET";
        err = rp_state_gs_send(gs, &c, &resp, &maybe, errstr, errstr_size);
        if (err != RP_OK)
            goto out;
        if (resp.status == 404)
            err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                          "state key '%s' not found in %s", key, gs->shown);
        else if (resp.status == 200)
            err = rp_errf(errstr, errstr_size, RP_ERR_CONFLICT,
                          "state key '%s' in %s: expected version %" PRIu64
                          ", the live version differs",
                          key, gs->shown, if_version);
        else
            err = rp_state_gs_status_err(&resp, what, errstr, errstr_size);
        goto out;
    }
    err = rp_state_gs_status_err(&resp, what, errstr, errstr_size);
out:
    rp_http_resp_clear(&resp);
    return err;
}

/* ---- list ---- */

#define RP_STATE_GS_LIST_BATCH 1000 /* items held per page (GCS's maximum) */

static rp_err_t rp_state_gs_list(rp_state_t *st, const char *prefix,
                                 rp_state_list_cb *cb, void *opaque,
                                 char *errstr, size_t errstr_size)
{
    const rp_state_gs_t *gs = st->impl;
    char full[RP_STATE_GS_NAME_MAX + 1], enc[RP_STATE_GS_ENC_MAX];
    char fields[128], url[RP_HTTP_URL_MAX];
    char token[RP_STATE_GS_PAGE_TOKEN_MAX], next[RP_STATE_GS_PAGE_TOKEN_MAX];
    char herr[128];
    char tok_enc[3 * RP_STATE_GS_PAGE_TOKEN_MAX];
    bool stopped = false;
    char what[RP_STATE_GS_SHOWN_MAX + 32];
    size_t strip = gs->prefix[0] ? strlen(gs->prefix) + 1 : 0;
    rp_state_gs_call_t c = {0};
    rp_http_resp_t resp = {0};
    bool maybe;
    rp_err_t err = RP_OK;
    int n;

    snprintf(what, sizeof(what), "%s (list)", gs->shown);
    n = snprintf(full, sizeof(full), "%s%s%s", gs->prefix,
                 gs->prefix[0] ? "/" : "", prefix);
    if (n < 0 || (size_t)n >= sizeof(full) ||
        rp_http_escape(full, enc, sizeof(enc)) != RP_OK ||
        rp_http_escape(RP_STATE_GS_LIST_FIELDS, fields, sizeof(fields)) !=
            RP_OK) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "%s: prefix '%s' too long", what, prefix);
        goto out;
    }
    token[0] = '\0';
    for (;;) {
        err = rp_state_gs_url(url, sizeof(url), what, errstr, errstr_size,
                              "%s/storage/v1/b/%s/o?fields=%s&maxResults=%d"
                              "%s%s%s%s",
                              gs->base, gs->bucket, fields,
                              RP_STATE_GS_LIST_BATCH, enc[0] ? "&prefix=" : "",
                              enc, token[0] ? "&pageToken=" : "",
                              token[0] ? tok_enc : "");
        if (err != RP_OK)
            goto out;
        c.method = "GET";
        c.url = url;
        c.response_max = RP_STATE_GS_LIST_PAGE_MAX;
        c.what = what;
        err = rp_state_gs_send(gs, &c, &resp, &maybe, errstr, errstr_size);
        if (err != RP_OK)
            goto out;
        if (resp.status != 200) {
            err = rp_state_gs_status_err(&resp, what, errstr, errstr_size);
            if (err == RP_ERR_NOT_FOUND) /* the bucket: configuration */
                err = RP_ERR_INVALID;
            goto out;
        }
        err = rp_state_gs_parse_list_page(resp.body.data, resp.body.len,
                                          full, strip, cb, opaque, next,
                                          sizeof(next), &stopped, herr,
                                          sizeof(herr));
        if (err != RP_OK) {
            rp_errf(errstr, errstr_size, err, "%s: %s", what, herr);
            goto out;
        }
        if (stopped || next[0] == '\0')
            break;
        if (strcmp(next, token) == 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "%s: bad nextPageToken (too long or repeated)",
                          what);
            goto out;
        }
        snprintf(token, sizeof(token), "%s", next);
        if (rp_http_escape(token, tok_enc, sizeof(tok_enc)) != RP_OK) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "%s: nextPageToken too long", what);
            goto out;
        }
    }
out:
    rp_http_resp_clear(&resp);
    return err;
}

rp_err_t rp_state_gs_parse_list_page(const char *body, size_t len,
                                     const char *full, size_t strip,
                                     rp_state_list_cb *cb, void *opaque,
                                     char *next, size_t next_size,
                                     bool *stopped, char *errstr,
                                     size_t errstr_size)
{
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *items, *item, *nt;
    rp_err_t err = RP_OK;
    size_t full_len = strlen(full);

    *stopped = false;
    if (next_size)
        next[0] = '\0';
    if (!cJSON_IsObject(root)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "list reply is not a JSON object");
        goto out;
    }
    items = cJSON_GetObjectItemCaseSensitive(root, "items");
    cJSON_ArrayForEach(item, items)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(item, "generation");
        uint64_t v;
        const char *key;

        if (!cJSON_IsString(nm) || !cJSON_IsString(g) ||
            !rp_state_gs_parse_generation(g->valuestring, &v))
            continue;
        if (strncmp(nm->valuestring, full, full_len) != 0 ||
            strlen(nm->valuestring) <= strip)
            continue;
        key = nm->valuestring + strip;
        /* Objects put there by other tools may not be keys at all. */
        if (!rp_state_key_valid(key))
            continue;
        if (cb(opaque, key, v) != 0) {
            *stopped = true; /* the caller has seen enough */
            goto out;
        }
    }
    nt = cJSON_GetObjectItemCaseSensitive(root, "nextPageToken");
    if (!cJSON_IsString(nt) || nt->valuestring[0] == '\0')
        goto out;
    if (strlen(nt->valuestring) >= next_size) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "bad nextPageToken (longer than %zu bytes)",
                      next_size ? next_size - 1 : 0);
        goto out;
    }
    memcpy(next, nt->valuestring, strlen(nt->valuestring) + 1);
out:
    cJSON_Delete(root);
    return err;
}

/* ---- open / close ---- */

static bool rp_state_gs_bucket_valid(const char *b, size_t n)
{
    size_t i;

    if (n < 3 || n > RP_STATE_GS_BUCKET_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

        if (!alnum && c != '-' && c != '_' && c != '.')
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
    }
    return true;
}

/* A parsed non-negative int option in [lo, hi]. */
static bool rp_state_gs_int_opt(const char *s, size_t n, long lo, long hi,
                                int *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 9)
        return false;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* Set gs->base from url (borrowed, n bytes): http(s)://host[:port][/path],
 * trailing '/' dropped. */
static bool rp_state_gs_set_base(rp_state_gs_t *gs, const char *url, size_t n)
{
    size_t i;

    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n > RP_STATE_GS_BASE_MAX)
        return false;
    if (!(n > 7 && strncmp(url, "http://", 7) == 0) &&
        !(n > 8 && strncmp(url, "https://", 8) == 0))
        return false;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];

        if (c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%')
            return false;
    }
    memcpy(gs->base, url, n);
    gs->base[n] = '\0';
    return true;
}

/* A bearer token must not cross the network in clear. */
static bool rp_state_gs_base_safe(const char *base)
{
    static const char *const local[] = {"http://127.0.0.1", "http://localhost",
                                        "http://[::1]"};
    size_t i;

    if (strncmp(base, "https://", 8) == 0)
        return true;
    for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        size_t l = strlen(local[i]);

        if (strncmp(base, local[i], l) == 0 &&
            (base[l] == '\0' || base[l] == ':' || base[l] == '/'))
            return true;
    }
    return false;
}

static rp_err_t rp_state_gs_parse_url(const char *url, rp_state_gs_t *gs,
                                      char *errstr, size_t errstr_size)
{
    const char *p, *q, *slash, *endpoint = NULL;
    size_t blen, plen, endpoint_len = 0;

    if (strncmp(url, "gs://", 5) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s' is not a gs:// URL", url);
    p = url + 5;
    q = strchr(p, '?');
    if (!q)
        q = p + strlen(p);
    if (memchr(p, '#', (size_t)(q - p)) || memchr(p, '%', (size_t)(q - p)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s': percent-encoding and fragments are "
                       "not supported",
                       url);
    slash = memchr(p, '/', (size_t)(q - p));
    blen = slash ? (size_t)(slash - p) : (size_t)(q - p);
    if (!rp_state_gs_bucket_valid(p, blen))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s': bad bucket name (want 3-%d of "
                       "[a-z0-9._-], starting and ending with a letter or "
                       "digit)",
                       url, RP_STATE_GS_BUCKET_MAX);
    memcpy(gs->bucket, p, blen);
    gs->bucket[blen] = '\0';

    gs->prefix[0] = '\0';
    if (slash) {
        const char *pp = slash + 1;

        plen = (size_t)(q - pp);
        while (plen > 0 && pp[plen - 1] == '/')
            plen--;
        if (plen > RP_STATE_GS_PREFIX_MAX)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state URL '%s': prefix longer than %d bytes", url,
                           RP_STATE_GS_PREFIX_MAX);
        memcpy(gs->prefix, pp, plen);
        gs->prefix[plen] = '\0';
        if (plen > 0 && !rp_state_key_valid(gs->prefix))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state URL '%s': the prefix must be '/'-separated "
                           "segments of [A-Za-z0-9._:-] (no empty, '.' or "
                           "'..' segment)",
                           url);
    }

    gs->attempts = RP_STATE_GS_ATTEMPTS_DEFAULT;
    gs->timeout_ms = RP_STATE_GS_TIMEOUT_MS_DEFAULT;
    gs->retry_initial_ms = RP_STATE_GS_RETRY_INITIAL_MS;
    gs->retry_max_ms = RP_STATE_GS_RETRY_MAX_MS;
    gs->retry_deadline_ms = RP_STATE_GS_RETRY_DEADLINE_MS;
    while (*q == '?' || *q == '&') {
        const char *opt = q + 1;
        const char *end = strchr(opt, '&');
        size_t len = end ? (size_t)(end - opt) : strlen(opt);

        if (len > 8 && strncmp(opt, "retries=", 8) == 0) {
            if (!rp_state_gs_int_opt(opt + 8, len - 8, 1,
                                     RP_STATE_GS_ATTEMPTS_MAX, &gs->attempts))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state URL '%s': retries wants 1..%d "
                               "(attempts in all)",
                               url, RP_STATE_GS_ATTEMPTS_MAX);
        } else if (len > 11 && strncmp(opt, "timeout_ms=", 11) == 0) {
            if (!rp_state_gs_int_opt(opt + 11, len - 11, 1,
                                     RP_STATE_GS_TIMEOUT_MS_MAX,
                                     &gs->timeout_ms))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state URL '%s': timeout_ms wants 1..%d", url,
                               RP_STATE_GS_TIMEOUT_MS_MAX);
        } else if (len > 17 && strncmp(opt, "retry_initial_ms=", 17) == 0) {
            if (!rp_state_gs_int_opt(opt + 17, len - 17, 1,
                                     RP_STATE_GS_RETRY_OPT_MAX,
                                     &gs->retry_initial_ms))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state URL '%s': retry_initial_ms wants 1..%d",
                               url, RP_STATE_GS_RETRY_OPT_MAX);
        } else if (len > 13 && strncmp(opt, "retry_max_ms=", 13) == 0) {
            if (!rp_state_gs_int_opt(opt + 13, len - 13, 1,
                                     RP_STATE_GS_RETRY_OPT_MAX,
                                     &gs->retry_max_ms))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state URL '%s': retry_max_ms wants 1..%d",
                               url, RP_STATE_GS_RETRY_OPT_MAX);
        } else if (len > 18 && strncmp(opt, "retry_deadline_ms=", 18) == 0) {
            if (!rp_state_gs_int_opt(opt + 18, len - 18, 0,
                                     RP_STATE_GS_RETRY_OPT_MAX,
                                     &gs->retry_deadline_ms))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state URL '%s': retry_deadline_ms wants "
                               "0..%d",
                               url, RP_STATE_GS_RETRY_OPT_MAX);
        } else if (len > 9 && strncmp(opt, "endpoint=", 9) == 0) {
            endpoint = opt + 9;
            endpoint_len = len - 9;
        } else {
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state URL '%s': unknown option '%.*s' (supported: "
                           "retries=N, timeout_ms=N, endpoint=URL, "
                           "retry_initial_ms=N, retry_max_ms=N, "
                           "retry_deadline_ms=N)",
                           url, (int)len, opt);
        }
        q = end ? end : opt + len;
    }

    if (endpoint && !rp_state_gs_set_base(gs, endpoint, endpoint_len))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s': endpoint must be http(s)://host[:port]"
                       "[/path], at most %d bytes",
                       url, RP_STATE_GS_BASE_MAX);
    snprintf(gs->shown, sizeof(gs->shown), "gs://%s%s%s", gs->bucket,
             gs->prefix[0] ? "/" : "", gs->prefix);
    return RP_OK;
}

/* STORAGE_EMULATOR_HOST as Google's clients read it: a base URL, with
 * http:// added when it has no scheme; its presence turns auth off. */
static rp_err_t rp_state_gs_emulator(rp_state_gs_t *gs, bool have_endpoint,
                                     char *errstr, size_t errstr_size)
{
    const char *host = getenv("STORAGE_EMULATOR_HOST");
    char base[RP_STATE_GS_BASE_MAX + 16];
    int n;

    if (!host || host[0] == '\0') {
        gs->emulator = false;
        if (!have_endpoint)
            snprintf(gs->base, sizeof(gs->base), "%s",
                     RP_STATE_GS_DEFAULT_BASE);
        return RP_OK;
    }
    gs->emulator = true;
    if (have_endpoint)
        return RP_OK; /* an explicit endpoint wins; still no credentials */
    n = snprintf(base, sizeof(base), "%s%s",
                 strstr(host, "://") ? "" : "http://", host);
    if (n < 0 || (size_t)n >= sizeof(base) ||
        !rp_state_gs_set_base(gs, base, (size_t)n))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "STORAGE_EMULATOR_HOST='%.200s' is not host[:port] or "
                       "http(s)://host[:port]",
                       host);
    return RP_OK;
}

static rp_err_t rp_state_gs_open(rp_state_t *st, const char *url,
                                 const rp_state_opts_t *opts, char *errstr,
                                 size_t errstr_size)
{
    rp_state_gs_t *gs;
    rp_err_t err;

    gs = calloc(1, sizeof(*gs));
    if (!gs)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "out of memory opening state store");
    err = rp_http_global_init(errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    err = rp_state_gs_parse_url(url, gs, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    err = rp_state_gs_emulator(gs, gs->base[0] != '\0', errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    if (!gs->emulator && !rp_state_gs_base_safe(gs->base)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "state URL '%s': endpoint %s is plain http: access "
                      "tokens would travel in clear (use https, or loopback "
                      "for tests)",
                      url, gs->base);
        goto out;
    }
    gs->auth = rp_gcp_auth(opts->gcp);
    if (!gs->auth && opts->token) {
        err = rp_auth_new_callback(opts->token, &gs->own_auth, errstr,
                                   errstr_size);
        if (err != RP_OK)
            goto out;
        gs->auth = gs->own_auth;
    }
    st->impl = gs;
out:
    if (err != RP_OK)
        free(gs);
    return err;
}

static void rp_state_gs_close(rp_state_t *st)
{
    rp_state_gs_t *gs = st->impl;

    if (gs)
        rp_auth_destroy(gs->own_auth);
    free(st->impl);
    st->impl = NULL;
}

const rp_state_ops_t rp_state_gs_ops = {
    .scheme = "gs",
    .open = rp_state_gs_open,
    .get = rp_state_gs_get,
    .put = rp_state_gs_put,
    .del = rp_state_gs_del,
    .list = rp_state_gs_list,
    .close = rp_state_gs_close,
};
