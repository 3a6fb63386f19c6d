/* rp_auth — Google OAuth2 access tokens for the Cloud Run and Cloud Storage
 * clients (docs/auth.md).
 *
 * Sources, chosen by rp_auth_new_from_env the way Google's clients do:
 *   GOOGLE_APPLICATION_CREDENTIALS set  -> service-account key file: a JWT
 *       signed RS256 with the key is exchanged at the file's token_uri.
 *   otherwise                           -> the metadata server
 *       (http://metadata.google.internal or http://$GCE_METADATA_HOST).
 * rp_auth_new_none is for emulators: no token, callers send no
 * Authorization header.
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
 * Tokens and private keys are never logged nor put in errstr.
 *
 * rp_http_global_init must have run before the first rp_auth_token.
 */
#ifndef RP_AUTH_H
#define RP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

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
} rp_auth_kind_t;

/* ---- constructors: main thread (or any one thread); *out is owned by the
 * caller and freed with rp_auth_destroy. ---- */

/* GOOGLE_APPLICATION_CREDENTIALS (non-empty) -> key file, else metadata.
 * A bad key file is an error, never a silent fallback to the metadata
 * server. */
rp_err_t rp_auth_new_from_env(rp_auth_t **out, char *errstr,
                              size_t errstr_size);

/* No credentials (emulators): rp_auth_token yields "". */
rp_err_t rp_auth_new_none(rp_auth_t **out, char *errstr, size_t errstr_size);

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

/* How long before expiry a token of this lifetime is refreshed:
 * min(RP_AUTH_REFRESH_MARGIN_MS, lifetime / 10). */
int64_t rp_auth_refresh_margin_ms(int64_t lifetime_ms);

#endif
