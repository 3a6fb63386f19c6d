/* rp_state_gs — the rp_state backend on Google Cloud Storage (JSON API):
 *
 *   gs://BUCKET[/PREFIX][?retries=N&timeout_ms=N&endpoint=URL
 *                        &retry_initial_ms=N&retry_max_ms=N
 *                        &retry_deadline_ms=N]
 *
 * Key K is the object PREFIX/K (K alone without a prefix); its version is
 * the object's `generation`. Conditional writes use ifGenerationMatch
 * (0 = create-only), so Cloud Storage itself arbitrates races between
 * writers anywhere. Options:
 *   retries=N     at most N attempts per request in all (1 = never retry;
 *                 1..RP_STATE_GS_ATTEMPTS_MAX, default 100: the retry
 *                 deadline ends it first)
 *   timeout_ms=N  deadline of one attempt (default 60000)
 *   retry_initial_ms=N, retry_max_ms=N, retry_deadline_ms=N
 *                 Google's truncated exponential backoff: the wait before
 *                 retry n is min(initial * 2^(n-1), max) plus a random
 *                 0..min(initial, 1000) ms; no retry starts once the
 *                 deadline (from the first attempt) would be passed.
 *                 Defaults 1000, 30000, 120000 (tests scale them down).
 *   endpoint=URL  API base other than https://storage.googleapis.com
 *                 (private endpoints, tests)
 * docs/state-store.md ("Cloud Storage backend") has retries, errors and
 * what an emulator does differently.
 *
 * Credentials: when STORAGE_EMULATOR_HOST is set (read at open), requests
 * go to that host (http:// is added when it has no scheme) and carry no
 * Authorization header, as Google's own clients do. Otherwise each request
 * sends "Authorization: Bearer TOKEN" with an OAuth2 access token from the
 * credentials of the rp_gcp_t in the open options (rp_state_open_opts), or,
 * without one, from the token source set below; with neither every
 * operation fails with RP_ERR_PERMISSION "no Google credentials
 * configured". A 401 drops the token and retries once with a fresh one
 * (rp_auth_request); a second 401 is RP_ERR_PERMISSION.
 *
 * Use it only through rp_state.h; this header exists for the backend table
 * and the token hook. Thread-safety: every op may run from several threads
 * at once; each thread reuses its own HTTP connection (rp_http).
 */
#ifndef RP_STATE_GS_H
#define RP_STATE_GS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"
#include "rp_state.h"

#define RP_STATE_GS_TOKEN_MAX 4096       /* access token incl. NUL */
#define RP_STATE_GS_BUCKET_MAX 222       /* Cloud Storage's own limit */
#define RP_STATE_GS_PREFIX_MAX 256       /* PREFIX/KEY stays < 1024 bytes */
#define RP_STATE_GS_BASE_MAX 512         /* endpoint / emulator base URL */
#define RP_STATE_GS_ATTEMPTS_DEFAULT 100 /* the deadline ends it first */
#define RP_STATE_GS_ATTEMPTS_MAX 100
#define RP_STATE_GS_TIMEOUT_MS_DEFAULT 60000
#define RP_STATE_GS_TIMEOUT_MS_MAX 600000
/* Retries follow Google's guidance for Cloud Storage (retry-strategy,
 * python-storage: 1 s, x2, 60 s, 120 s); the cap is 30 s, not 60 s, so
 * the 120 s deadline is used to its end: waits 1+2+4+8+16+30+30 s give
 * attempts at about 0,1,3,7,15,31,61,91 s, where a 60 s cap would leave
 * the last one at 63 s and nothing in the minute after. The limit met
 * most (about one write per second per object name, 429
 * rateLimitExceeded) clears within seconds, so long waits buy nothing. */
#define RP_STATE_GS_RETRY_INITIAL_MS 1000
#define RP_STATE_GS_RETRY_MAX_MS 30000
#define RP_STATE_GS_RETRY_DEADLINE_MS 120000
#define RP_STATE_GS_RETRY_JITTER_MAX_MS 1000 /* Google: "<= 1000 ms" */
#define RP_STATE_GS_RETRY_OPT_MAX 3600000    /* any retry_*_ms option */

extern const rp_state_ops_t rp_state_gs_ops;

/* ---- Cloud Storage's replies, exposed for tests and tests/fuzz
 * (pure, any thread; bodies are len bytes, NUL not needed). ---- */

/* A generation ("123": the X-Goog-Generation header, an int64 JSON
 * string): digits only, never 0, never RP_STATE_ANY. */
bool rp_state_gs_parse_generation(const char *s, uint64_t *out);

/* The Object JSON of an upload reply: its "generation" (a string, or a
 * number from odd servers) into *generation; false without a valid one. */
bool rp_state_gs_parse_object_reply(const char *body, size_t len,
                                    uint64_t *generation);

/* One objects.list page: cb(opaque, key, generation) for every item whose
 * name starts with full (PREFIX/ + the listed prefix) and, past its first
 * strip bytes, is a valid key (others are skipped); *stopped when cb
 * returned non-zero. The nextPageToken into next ("" on the last page).
 * RP_ERR_PROTOCOL (why in errstr) when the body is not a JSON object or
 * the token does not fit next_size. */
rp_err_t rp_state_gs_parse_list_page(const char *body, size_t len,
                                     const char *full, size_t strip,
                                     rp_state_list_cb *cb, void *opaque,
                                     char *next, size_t next_size,
                                     bool *stopped, char *errstr,
                                     size_t errstr_size);

/* Google's message of an error reply ({"error":{"message":...}}), or the
 * start of a text body, printable, into out (always NUL-terminated). */
void rp_state_gs_error_message(const char *body, size_t len, char *out,
                               size_t out_size);

#endif
