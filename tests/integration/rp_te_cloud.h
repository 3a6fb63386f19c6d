/* rp_te_cloud — the Google side of the end-to-end tests (test_e2e_*.c).
 *
 * On top of the rig (rp_testenv.h), rp_te_cloud_start starts the two
 * stand-ins for Google's services and points the workers at them:
 *
 *   fake-gcs-server  Cloud Storage (tests/fakes/start-fake-gcs), one bucket,
 *                    RP_TE_CLOUD_BUCKET; the workers' --state is
 *                    gs://RP_TE_CLOUD_BUCKET/RP_TE_CLOUD_PREFIX
 *   cloudrun_fake    the Cloud Run Admin API v2 (tests/fakes/cloudrun),
 *                    which runs each execution's container as a
 *                    runpool-executor process; its task logs go to
 *                    TMP/cloudrun/logs/
 *
 * The workers get `--backend cloudrun` and the settings a deployment
 * would set (GCP_PROJECT_ID, GCP_REGION, SANDBOX_EXECUTOR_IMAGE,
 * RUNPOOL_CLOUD_RUN_ENDPOINT, STORAGE_EMULATOR_HOST), with short polling and
 * retry intervals so the tests take seconds. Neither the worker nor the
 * executor knows it talks to fakes beyond what Google's own clients know:
 * the endpoint and STORAGE_EMULATOR_HOST.
 *
 * The executor image RP_TE_CLOUD_IMAGE maps, in the fake, to
 *   /usr/bin/env STORAGE_EMULATOR_HOST=... RUNPOOL_DEFAULT_CWD=TMP/workspace
 *                BIN/runpool-executor
 * which is what the image's ENV lines would be in a test deployment: the
 * fake hands a container only PATH/HOME/TMPDIR, the job's env and the
 * run's overrides, as Cloud Run does.
 *
 * Objects are read and written with Google's google-cloud-storage Python
 * client (tests/integration/gcs_object.py, venv .tools/venv or $RP_VENV),
 * never with runpool's own code, so what the tests see is what any other
 * Cloud Storage client would see.
 *
 * Test thread only; helpers fail the test instead of returning errors.
 */
#ifndef RP_TE_CLOUD_H
#define RP_TE_CLOUD_H

#include <cjson/cJSON.h>

#include "rp_testenv.h"

#define RP_TE_CLOUD_BUCKET "rp-e2e"
#define RP_TE_CLOUD_PREFIX "it"
#define RP_TE_CLOUD_PROJECT "rp-e2e-project"
#define RP_TE_CLOUD_REGION "europe-west1"
#define RP_TE_CLOUD_IMAGE \
    "europe-west1-docker.pkg.dev/rp-e2e-project/runpool/executor:e2e"
/* Workers' RUNPOOL_CLOUD_RUN_* timing for tests: overrides.timeout is the
 * request's timeout + MARGIN_S; an execution still running CANCEL_AFTER_S
 * after that is cancelled by the worker and reported "timed_out". */
#define RP_TE_CLOUD_MARGIN_S 2
#define RP_TE_CLOUD_CANCEL_AFTER_S 2

/* Start fake-gcs-server and the Cloud Run fake, and set the environment,
 * --backend and --state of every worker started afterwards. job_mode:
 * "template" or "per-execution". Call before rp_te_start_worker. */
void rp_te_cloud_start(rp_te_t *te, const char *job_mode);

/* After rp_te_cloud_start: the workers' gs:// store is authenticated, as
 * on Google: it names fake-gcs-server with ?endpoint= instead of their
 * STORAGE_EMULATOR_HOST (unset for them), and their credentials are the
 * metadata server of tests/fakes/token_server.py (GCE_METADATA_HOST),
 * whose tokens are the planted secret ACCESS_TOKEN. Executors keep their
 * emulator (the image's ENV). */
void rp_te_cloud_authenticate(rp_te_t *te);

/* The same with tests/fakes/gcs_fault_proxy.py between everything and
 * fake-gcs-server (workers, executors, the test's own reads), started with
 * these flags (NULL-terminated, borrowed; see the script's --help):
 * te->gcs_url is then the proxy's URL. */
void rp_te_cloud_start_proxied(rp_te_t *te, const char *job_mode,
                               const char *const *proxy_flags);
/* GET /_proxy/stats of that proxy (caller frees). */
cJSON *rp_te_cloud_proxy_stats(rp_te_t *te);

/* After rp_te_cloud_start: a gcs_fault_proxy.py of the workers' own (no
 * throttling, no faults) in front of fake-gcs-server, as their
 * STORAGE_EMULATOR_HOST from now on, so its "by_call" counts are the
 * workers' Cloud Storage calls alone (executors and the test go direct).
 * Its URL into url. */
void rp_te_cloud_worker_gcs_proxy(rp_te_t *te, char *url, size_t url_size);
/* GET /_proxy/stats of the proxy at url (caller frees). */
cJSON *rp_te_cloud_proxy_stats_at(const char *url);

/* One HTTP call to the Cloud Run fake: PATH under its base URL, body NULL
 * or JSON. Returns the parsed reply (caller frees with cJSON_Delete; NULL
 * when it is not JSON) and the HTTP status in *status (may be NULL). */
cJSON *rp_te_cloud_call(rp_te_t *te, const char *method, const char *path,
                        const char *body, long *status);
/* POST /_fake/config with this JSON object; fails the test unless 200. */
void rp_te_cloud_config(rp_te_t *te, const char *json);
/* GET /_fake/stats (caller frees). */
cJSON *rp_te_cloud_stats(rp_te_t *te);
/* How many Cloud Run executions the fake created for this execution id:
 * `executions_by_execution_id` of its stats (0 when none). */
long rp_te_cloud_runs(rp_te_t *te, const char *execution_id);
/* How many API requests of this route ("jobs.create") got this HTTP
 * status, among the last 2000 (/_fake/requests). */
long rp_te_cloud_count_requests(rp_te_t *te, const char *route, long status);

/* Object NAME (full name, prefix included) of the test bucket through
 * google-cloud-storage: its bytes, NUL-terminated (caller frees), and its
 * generation in *generation (may be NULL); NULL when it does not exist. */
char *rp_te_cloud_gcs_get(rp_te_t *te, const char *name,
                          long long *generation);
/* Write object NAME unconditionally, as another writer would. */
void rp_te_cloud_gcs_put(rp_te_t *te, const char *name, const char *content);

#endif
