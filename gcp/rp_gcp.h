/* rp_gcp — process-wide set-up for talking to Google Cloud.
 *
 * The worker and the executor both call rp_gcp_setup once at start, from
 * the main thread before other threads exist: it initialises libcurl and,
 * when the state store is gs:// and no emulator is configured, picks the
 * credentials the way Google's clients do (rp_auth_new_from_env) and hands
 * them to the Cloud Storage backend. Token fetching is lazy: a missing
 * credential shows up as a clear error on the first state-store call.
 */
#ifndef RP_GCP_H
#define RP_GCP_H

#include <stddef.h>

#include "rp_auth.h"
#include "rp_err.h"

/* state_url: the store the process will open (may be NULL). *auth is set
 * to the credentials created (NULL when none are needed); the caller
 * destroys it with rp_auth_destroy after every user is gone. */
rp_err_t rp_gcp_setup(const char *state_url, rp_auth_t **auth, char *errstr,
                      size_t errstr_size);

#endif
