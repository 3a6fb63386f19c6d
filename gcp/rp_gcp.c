/* rp_gcp — the Google Cloud context (see rp_gcp.h). */
#include "rp_gcp.h"

#include <stdlib.h>

#include "rp_auth.h"
#include "rp_http.h"
#include "rp_log.h"

struct rp_gcp {
    rp_auth_t *auth; /* owned; NULL without auth */
};

rp_err_t rp_gcp_new(bool auth, rp_gcp_t **out, char *errstr,
                    size_t errstr_size)
{
    rp_gcp_t *g;
    rp_err_t err;

    *out = NULL;
    if (!(g = calloc(1, sizeof(*g))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    if ((err = rp_http_global_init(errstr, errstr_size)))
        goto out;
    if (!auth) {
        /* Google's clients send no credentials to an emulator. */
        rp_log(RP_LOG_INFO, "gcp_credentials", NULL, NULL,
               "emulated endpoints: no credentials");
        goto out;
    }
    if ((err = rp_auth_new_from_env(&g->auth, errstr, errstr_size)))
        goto out;
    rp_log(RP_LOG_INFO, "gcp_credentials", NULL, NULL, "using %s",
           rp_auth_describe(g->auth));
out:
    if (err)
        rp_gcp_destroy(g);
    else
        *out = g;
    return err;
}

void rp_gcp_destroy(rp_gcp_t *gcp)
{
    if (!gcp)
        return;
    rp_auth_destroy(gcp->auth);
    free(gcp);
}

rp_auth_t *rp_gcp_auth(const rp_gcp_t *gcp)
{
    return gcp ? gcp->auth : NULL;
}
