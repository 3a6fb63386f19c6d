/* runpool-worker: command line and environment (rp_worker_conf.c) ->
 * rp_worker. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_cloudrun.h"
#include "rp_gcp.h"
#include "rp_log.h"
#include "rp_worker.h"

static const char *cloudrun_getenv(const char *name, void *opaque)
{
    (void)opaque;
    return getenv(name);
}

/* Once, as a log line (stderr is the log). */
static int config_error(const char *errstr)
{
    rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
    return 2;
}

int main(int argc, char **argv)
{
    static rp_worker_args_t args; /* large; conf borrows from it */
    rp_worker_conf_t *conf = &args.conf;
    char errstr[1024];
    rp_cloudrun_conf_t crconf;
    rp_kafka_props_t kprops = {0};
    rp_worker_t *w = NULL;
    rp_gcp_t *gcp = NULL;
    bool is_cloudrun, is_gs;
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
    if (args.action == RP_WORKER_ACTION_VERSION) {
        printf("runpool-worker %s\n", RP_VERSION);
        return 0;
    }

    rp_log_init("worker", RP_LOG_INFO);
    /* librdkafka settings: file < RUNPOOL_KAFKA_* < -X (rp_kafka.h). */
    if (rp_kafka_props_load(&kprops, conf->kafka_config, conf->kafka_props,
                            conf->n_kafka_props, NULL, errstr,
                            sizeof(errstr)) != RP_OK) {
        rc = config_error(errstr);
        goto out;
    }
    conf->kafka_props = (const char *const *)kprops.kv;
    conf->n_kafka_props = kprops.n;
    /* Before any thread exists: SIGTERM/SIGINT are read from a signalfd,
     * and a closed pipe must be an error, not a death. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* ---- cloudrun backend settings (docs/cloudrun.md) ----
     * The backend reads GCP_*, SANDBOX_* and RUNPOOL_CLOUD_RUN_* itself
     * (lookup NULL = getenv) and runs its executors against the worker's
     * store; SANDBOX_STATE_BUCKET names that store when --state does not.
     * Read here too for the two facts main needs first: that store, and
     * whether the Admin API is an emulator (no credentials). */
    is_cloudrun = conf->backend && !strcmp(conf->backend, "cloudrun");
    if (is_cloudrun) {
        if (rp_cloudrun_conf_read(cloudrun_getenv, NULL, &crconf, errstr,
                                  sizeof(errstr)) != RP_OK) {
            rc = config_error(errstr);
            goto out;
        }
        if (!conf->state_url && crconf.state_url[0])
            conf->state_url = crconf.state_url;
    }
    conf->backend_conf.lookup = NULL;
    /* ---- end cloudrun ---- */

    /* One Google context, before rp_worker_new starts threads: gs:// state
     * and the Admin API share its credentials (none for emulators). */
    is_gs = conf->state_url && !strncmp(conf->state_url, "gs://", 5);
    if (is_gs || is_cloudrun) {
        const char *emu = getenv("STORAGE_EMULATOR_HOST");
        bool auth = (is_gs && !(emu && *emu)) ||
                    (is_cloudrun && !crconf.endpoint_set);

        if (rp_gcp_new(auth, &gcp, errstr, sizeof(errstr)) != RP_OK) {
            rc = config_error(errstr);
            goto out;
        }
    }
    conf->backend_conf.gcp = gcp;
    if (rp_worker_new(conf, &w, errstr, sizeof(errstr)) != RP_OK) {
        rc = config_error(errstr);
        goto out;
    }
    if (rp_worker_run(w, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "worker_failed", NULL, NULL, "%s", errstr);
        goto out;
    }
    rc = 0;
out:
    rp_worker_destroy(w);
    rp_gcp_destroy(gcp);
    rp_kafka_props_clear(&kprops);
    return rc;
}
