/* rp_gcp — one context for talking to Google Cloud.
 *
 * main makes one with rp_gcp_new before other threads exist and passes it
 * down, borrowed, to whatever calls Google: the gs:// state store
 * (rp_state_open_opts) and the Cloud Run backend (rp_backend_conf_t.gcp).
 * It initialises libcurl and holds the one credential source of the
 * process, so every client shares one token cache. Token fetching is lazy:
 * a missing credential shows up as a clear error on the first call.
 */
#ifndef RP_GCP_H
#define RP_GCP_H

#include <stdbool.h>
#include <stddef.h>

#include "rp_err.h"

typedef struct rp_auth rp_auth_t; /* rp_auth.h */
typedef struct rp_gcp rp_gcp_t;

/* Initialise libcurl and, when auth, pick the credentials the way Google's
 * clients do (rp_auth_new_from_env); without auth (every endpoint is an
 * emulator or a fake) requests carry no token. *out is owned by the caller,
 * freed with rp_gcp_destroy after every user is gone. Main thread, before
 * other threads start. */
rp_err_t rp_gcp_new(bool auth, rp_gcp_t **out, char *errstr,
                    size_t errstr_size);

/* Frees gcp and its credentials. Accepts NULL. No user may be left. */
void rp_gcp_destroy(rp_gcp_t *gcp);

/* The credentials (borrowed, live as long as gcp); NULL when gcp is NULL
 * or was made without auth. Any thread. */
rp_auth_t *rp_gcp_auth(const rp_gcp_t *gcp);

#endif
