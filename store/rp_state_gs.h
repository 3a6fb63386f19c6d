/* rp_state_gs — the rp_state backend on Google Cloud Storage (JSON API):
 *
 *   gs://BUCKET[/PREFIX][?retries=N&timeout_ms=N&endpoint=URL]
 *
 * Key K is the object PREFIX/K (K alone without a prefix); its version is
 * the object's `generation`. Conditional writes use ifGenerationMatch
 * (0 = create-only), so Cloud Storage itself arbitrates races between
 * writers anywhere. Options:
 *   retries=N     at most N attempts per request in all (1 = never retry;
 *                 1..RP_STATE_GS_ATTEMPTS_MAX, default 5)
 *   timeout_ms=N  deadline of one attempt (default 60000)
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
 * configured".
 *
 * Use it only through rp_state.h; this header exists for the backend table
 * and the token hook. Thread-safety: every op may run from several threads
 * at once; each thread reuses its own HTTP connection (rp_http).
 */
#ifndef RP_STATE_GS_H
#define RP_STATE_GS_H

#include <stddef.h>

#include "rp_err.h"
#include "rp_state.h"

#define RP_STATE_GS_TOKEN_MAX 4096       /* access token incl. NUL */
#define RP_STATE_GS_BUCKET_MAX 222       /* Cloud Storage's own limit */
#define RP_STATE_GS_PREFIX_MAX 256       /* PREFIX/KEY stays < 1024 bytes */
#define RP_STATE_GS_BASE_MAX 512         /* endpoint / emulator base URL */
#define RP_STATE_GS_ATTEMPTS_DEFAULT 5
#define RP_STATE_GS_ATTEMPTS_MAX 20
#define RP_STATE_GS_TIMEOUT_MS_DEFAULT 60000
#define RP_STATE_GS_TIMEOUT_MS_MAX 600000
#define RP_STATE_GS_BASE_DELAY_MS 100    /* first retry waits <= this */
#define RP_STATE_GS_MAX_DELAY_MS 5000    /* backoff cap */

extern const rp_state_ops_t rp_state_gs_ops;

#endif
