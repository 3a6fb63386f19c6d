/* rp_auth — Google OAuth2 access tokens for the Cloud Run and Cloud Storage
 * clients (docs/auth.md).
 *
 * Sources, chosen by rp_auth_new_from_env the way Google's clients do:
 *   GOOGLE_APPLICATION_CREDENTIALS set  -> service-account key file: a JWT
 *       signed RS256 with the key is exchanged at the file's token_uri.
 *   otherwise                           -> the metadata server
 *       (http://metadata.google.internal or http://$GCE_METADATA_HOST).
 * rp_auth_new_none is for emulators: no token, callers send no
 * Authorization header. rp_auth_new_callback wraps a token function that
 * caches by itself (tests that serve their own tokens).
 *
 * rp_auth_token caches the token and refreshes it before it expires: when
 * less than min(5 minutes, 10% of its lifetime) remains. One thread
 * refreshes at a time; threads that find the token expired wait for that
 * refresh (and share its result, success or error) instead of each asking
 * the endpoint. While a refresh runs, or after it failed, a token that has
 * not yet expired is still handed out.
 *
 * Errors: RP_ERR_UNAVAILABLE for 429/5xx, timeouts and unreachable
 * endpoints (retriable); RP_ERR_PERMISSION for 400/401/403/404 (bad key,
 * revoked account: not retriable), with the endpoint's `error` and
 * `error_description` in errstr; RP_ERR_PROTOCOL for replies we cannot read.
 *
 * On a 401 (rp_auth_request, the one place every Google call goes through):
 * the token that was sent is dropped from the cache, a fresh one fetched
 * and the request sent once more, as Google's auth libraries do
 * (google-auth's transports refresh on 401; they allow two refreshes, we
 * one, as issue 12 asks). A second 401 is RP_ERR_PERMISSION saying that a
 * freshly fetched token was refused too. A 401 means Google did not act on
 * the request, so even a request that must not be sent twice (jobs.run)
 * is safe to resend. A token revoked or rotated before its computed expiry
 * thus costs one extra request, not every call until it expires.
 *
 * Tokens and private keys are never logged nor put in errstr.
 *
 * rp_http_global_init must have run before the first rp_auth_token.
 */
#ifndef RP_AUTH_H
#define RP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"
#include "rp_http.h"

#define RP_AUTH_TOKEN_MAX 4096            /* access token incl. NUL */
#define RP_AUTH_KEY_FILE_MAX (64 * 1024)  /* service-account JSON file */
#define RP_AUTH_RESPONSE_MAX (64 * 1024)  /* token endpoint reply body */
#define RP_AUTH_FIELD_MAX 1024            /* client_email, kid, token_uri */
#define RP_AUTH_HOST_MAX 256              /* metadata host[:port] */
#define RP_AUTH_TIMEOUT_MS 10000          /* default per token request */
#define RP_AUTH_JWT_LIFETIME_S 3600       /* exp - iat; Google's maximum */
#define RP_AUTH_REFRESH_MARGIN_MS (5 * 60 * 1000)
#define RP_AUTH_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define RP_AUTH_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define RP_AUTH_METADATA_HOST "metadata.google.internal"
#define RP_AUTH_METADATA_PATH \
    "/computeMetadata/v1/instance/service-accounts/default/token"

typedef struct rp_auth rp_auth_t;
typedef struct rp_auth_key rp_auth_key_t;

typedef enum rp_auth_kind {
    RP_AUTH_NONE,
    RP_AUTH_KEY_FILE,
    RP_AUTH_METADATA,
    RP_AUTH_CALLBACK,
} rp_auth_kind_t;

/* A token source of its own (rp_state_token_fn has this shape): writes a
 * current token (NUL-terminated, without "Bearer ") into out; thread-safe;
 * caches by itself (rp_auth does not cache its tokens). */
typedef rp_err_t(rp_auth_token_fn)(char *out, size_t out_size, char *errstr,
                                   size_t errstr_size);

/* ---- constructors: main thread (or any one thread); *out is owned by the
 * caller and freed with rp_auth_destroy. ---- */

/* GOOGLE_APPLICATION_CREDENTIALS (non-empty) -> key file, else metadata.
 * A bad key file is an error, never a silent fallback to the metadata
 * server. */
rp_err_t rp_auth_new_from_env(rp_auth_t **out, char *errstr,
                              size_t errstr_size);

/* No credentials (emulators): rp_auth_token yields "". */
rp_err_t rp_auth_new_none(rp_auth_t **out, char *errstr, size_t errstr_size);

/* Tokens from fn (borrowed, must outlive auth), asked once per request
 * and once more after a 401. An empty token is RP_ERR_PERMISSION. */
rp_err_t rp_auth_new_callback(rp_auth_token_fn *fn, rp_auth_t **out,
                              char *errstr, size_t errstr_size);

/* Service-account key file at path (borrowed). RP_ERR_INVALID for a file
 * that is not a service-account key, with the reason. */
rp_err_t rp_auth_new_key_file(const char *path, rp_auth_t **out, char *errstr,
                              size_t errstr_size);

/* Metadata server at host[:port] (borrowed); NULL means $GCE_METADATA_HOST
 * when set, else metadata.google.internal. */
rp_err_t rp_auth_new_metadata(const char *host, rp_auth_t **out, char *errstr,
                              size_t errstr_size);

/* Frees auth (NULL accepted) and wipes the cached token and key. No other
 * thread may be using it. */
void rp_auth_destroy(rp_auth_t *auth);

/* Per-request timeout for token fetches (ms > 0). Call before sharing. */
void rp_auth_set_timeout_ms(rp_auth_t *auth, int timeout_ms);

/* Replace the monotonic clock (ms) used for expiry: for tests that move
 * time. NULL restores rp_time_mono_ms. Call before sharing. The JWT's
 * iat/exp always use the wall clock. */
void rp_auth_set_clock(rp_auth_t *auth, int64_t (*mono_ms)(void *opaque),
                       void *opaque);

/* ---- use: any thread, concurrently. ---- */

rp_auth_kind_t rp_auth_kind(const rp_auth_t *auth);

/* Short description for logs, e.g. "key file (sa@p.iam.gserviceaccount.com)"
 * or "metadata server 127.0.0.1:8080". Borrowed, lives as long as auth. */
const char *rp_auth_describe(const rp_auth_t *auth);

/* A valid access token into out (NUL-terminated); "" for RP_AUTH_NONE.
 * RP_ERR_TOO_LARGE when out_size cannot hold it (RP_AUTH_TOKEN_MAX always
 * can). May block for one token request. */
rp_err_t rp_auth_token(rp_auth_t *auth, char *out, size_t out_size,
                       char *errstr, size_t errstr_size);

/* "Authorization: Bearer <token>" into out, or "" for RP_AUTH_NONE (send
 * no header then). out_size >= RP_AUTH_TOKEN_MAX + 32 always suffices. */
rp_err_t rp_auth_header(rp_auth_t *auth, char *out, size_t out_size,
                        char *errstr, size_t errstr_size);

/* Drop the cached token if it is still `rejected` (the token a request
 * carried when Google answered 401), so the next rp_auth_token fetches a
 * fresh one. A cache already holding another token (a thread refreshed it
 * meanwhile) is left alone: a wave of 401s costs one fetch. rejected is
 * borrowed. NULL auth or rejected: no-op. */
void rp_auth_invalidate(rp_auth_t *auth, const char *rejected);

/* Perform req (rp_http_request) with "Authorization: Bearer <token>" added
 * after req's own headers (at most RP_HTTP_HEADERS_MAX - 1 of them); auth
 * NULL or RP_AUTH_NONE sends none. On a 401 the token is invalidated, a
 * fresh one taken and the request sent once more. Returns what
 * rp_http_request returns for the last attempt, except:
 *   - getting a token failed (first, or the fresh one after a 401): that
 *     error ("access token: ..." is the caller's to add), *token_failed
 *     set: nothing this call sent can have taken effect;
 *   - 401 again with the fresh token: RP_ERR_PERMISSION ("HTTP 401 twice
 *     ... : Google's message"), resp holds that second 401.
 * token_failed may be NULL. req and resp as for rp_http_request. Any
 * thread. The token is wiped from every buffer used. */
rp_err_t rp_auth_request(rp_auth_t *auth, const rp_http_req_t *req,
                         rp_http_resp_t *resp, bool *token_failed,
                         char *errstr, size_t errstr_size);

/* ---- pieces, exposed for tests (any thread; pure except the key's
 * loading). ---- */

/* Parse a service-account key JSON (len bytes). *out owned by caller. */
rp_err_t rp_auth_key_parse(const char *json, size_t len, rp_auth_key_t **out,
                           char *errstr, size_t errstr_size);

/* Read and parse the file at path (at most RP_AUTH_KEY_FILE_MAX bytes). */
rp_err_t rp_auth_key_load(const char *path, rp_auth_key_t **out, char *errstr,
                          size_t errstr_size);

/* Frees the key (NULL accepted), wiping the private key. */
void rp_auth_key_free(rp_auth_key_t *key);

/* The signed assertion for `now` (seconds since the epoch): header
 * {"alg":"RS256","typ":"JWT","kid":private_key_id}, claims iss, scope, aud
 * = token_uri, iat = now, exp = now + RP_AUTH_JWT_LIFETIME_S. *jwt is
 * malloc'd, owned by the caller. key is only read: threads may share it. */
rp_err_t rp_auth_jwt_build(const rp_auth_key_t *key, int64_t now, char **jwt,
                           char *errstr, size_t errstr_size);

/* Read a token endpoint / metadata reply: access_token (printable ASCII, no
 * spaces, shorter than RP_AUTH_TOKEN_MAX), expires_in as a number or a
 * decimal string (> 0). RP_ERR_PROTOCOL otherwise. */
rp_err_t rp_auth_parse_token_response(const char *body, size_t len,
                                      char *token, size_t token_size,
                                      int64_t *expires_in_ms, char *errstr,
                                      size_t errstr_size);

/* The endpoint's own words from an error body (len bytes): OAuth's
 * {"error":"invalid_grant","error_description":"..."}, Google API's
 * {"error":{"status":...,"message":"..."}}, or the start of a text body
 * quoted; printable ASCII, always NUL-terminated in out. */
void rp_auth_error_text(const char *body, size_t len, char *out,
                        size_t out_size);

/* How long before expiry a token of this lifetime is refreshed:
 * min(RP_AUTH_REFRESH_MARGIN_MS, lifetime / 10). */
int64_t rp_auth_refresh_margin_ms(int64_t lifetime_ms);

#endif
