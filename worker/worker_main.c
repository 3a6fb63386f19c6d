/* runpool-worker: command line and environment (rp_worker_conf.c) ->
 * rp_worker. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_cloudrun.h"
#include "rp_gcp.h"
#include "rp_log.h"
#include "rp_state_gs.h"
#include "rp_worker.h"

int main(int argc, char **argv)
{
    static rp_worker_args_t args; /* large; conf borrows from it */
    rp_worker_conf_t *conf = &args.conf;
    char errstr[1024];
    char cloudrun_state[RP_CLOUDRUN_BUCKET_MAX + 16];
    rp_worker_t *w = NULL;
    rp_auth_t *auth = NULL;
    const char *bucket;
    sigset_t sigs;
    int rc = 1;

    if (rp_worker_conf_parse(&args, argc, argv, NULL, errstr,
                             sizeof(errstr)) != RP_OK) {
        fprintf(stderr, "runpool-worker: %s\n", errstr);
        return 2;
    }
    if (args.action == RP_WORKER_ACTION_HELP) {
        rp_worker_conf_usage(stdout);
        return 0;
    }
    if (args.action == RP_WORKER_ACTION_HELP_MARKDOWN) {
        rp_worker_conf_markdown(stdout);
        return 0;
    }

    /* ---- cloudrun backend settings (docs/cloudrun.md) ----
     * The backend reads GCP_*, SANDBOX_* and RUNPOOL_CLOUD_RUN_* itself
     * (lookup NULL = getenv) and runs its executors against the worker's
     * store; SANDBOX_STATE_BUCKET names that store when --state does not.
     * libcurl is initialised by rp_gcp_setup below; the backend makes its
     * own Admin API credentials (none for RUNPOOL_CLOUD_RUN_ENDPOINT). */
    bucket = getenv("SANDBOX_STATE_BUCKET");
    if (!conf->state_url && conf->backend &&
        !strcmp(conf->backend, "cloudrun") && bucket && *bucket) {
        const char *b = bucket;

        snprintf(cloudrun_state, sizeof(cloudrun_state), "%s%s",
                 strncmp(b, "gs://", 5) ? "gs://" : "", b);
        conf->state_url = cloudrun_state;
    }
    conf->backend_conf.lookup = NULL;
    conf->backend_conf.state_url = conf->state_url;
    /* ---- end cloudrun ---- */

    rp_log_init("worker", RP_LOG_INFO);
    /* Before any thread exists: SIGTERM/SIGINT are read from a signalfd,
     * and a closed pipe must be an error, not a death. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Credentials for gs:// state; before rp_worker_new starts threads. */
    if (rp_gcp_setup(conf->state_url, &auth, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
        fprintf(stderr, "runpool-worker: %s\n", errstr);
        rc = 2;
        goto out;
    }
    if (auth)
        rp_state_gs_set_token_source(rp_auth_default_token);
    if (rp_worker_new(conf, &w, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
        fprintf(stderr, "runpool-worker: %s\n", errstr);
        rc = 2;
        goto out;
    }
    if (rp_worker_run(w, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "worker_failed", NULL, NULL, "%s", errstr);
        goto out;
    }
    rc = 0;
out:
    rp_worker_destroy(w);
    rp_auth_destroy(auth);
    return rc;
}
