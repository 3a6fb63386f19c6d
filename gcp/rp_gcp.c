#include "rp_gcp.h"

#include <stdlib.h>
#include <string.h>

#include "rp_http.h"
#include "rp_log.h"

rp_err_t rp_gcp_setup(const char *state_url, rp_auth_t **auth, char *errstr,
                      size_t errstr_size)
{
    const char *emu = getenv("STORAGE_EMULATOR_HOST");
    rp_err_t err;

    *auth = NULL;
    if (!state_url || strncmp(state_url, "gs://", 5) != 0)
        return RP_OK; /* no HTTP needed here: libcurl stays unloaded */
    if ((err = rp_http_global_init(errstr, errstr_size)))
        return err;
    if (emu && *emu) {
        /* Google's clients send no credentials to an emulator. */
        rp_log(RP_LOG_INFO, "gcp_credentials", NULL, NULL,
               "Cloud Storage emulator at %s: no credentials", emu);
        return RP_OK;
    }
    if ((err = rp_auth_new_from_env(auth, errstr, errstr_size)))
        return err;
    rp_auth_set_default(*auth);
    rp_log(RP_LOG_INFO, "gcp_credentials", NULL, NULL, "using %s",
           rp_auth_describe(*auth));
    return RP_OK;
}
