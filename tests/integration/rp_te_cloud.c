/* rp_te_cloud: see rp_te_cloud.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rp_te_cloud.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#define RP_TE_CLOUD_START_MS 30000  /* each fake until it answers */
#define RP_TE_CLOUD_REPLY_MAX (8 << 20) /* one reply of the Cloud Run fake */
#define RP_TE_CLOUD_TOOL_MS 60000   /* one run of gcs_object.py */

/* ---- starting the fakes ---------------------------------------------- */

static void rp_te_cloud_start_gcs(rp_te_t *te)
{
    char exe[PATH_MAX], log[PATH_MAX], url_file[PATH_MAX];
    char *argv[] = {exe, "--bucket", RP_TE_CLOUD_BUCKET, "--log", log, NULL};

    rp_te_format(exe, sizeof(exe), "%s/tests/fakes/start-fake-gcs",
                 te->src_dir);
    rp_te_path(te, log, sizeof(log), "fake-gcs-server.log");
    rp_te_path(te, url_file, sizeof(url_file), "fake-gcs.url");
    /* start-fake-gcs prints the base URL once the bucket exists. */
    rp_te_start_service(te, "fake-gcs", argv, url_file, url_file, te->gcs_url,
                        sizeof(te->gcs_url), RP_TE_CLOUD_START_MS);
}

/* tests/fakes/gcs_fault_proxy.py in front of fake-gcs-server (its URL in
 * te->gcs_url), with the test's fault flags; te->gcs_url becomes the
 * proxy's, so every Cloud Storage client of the test goes through it. */
static void rp_te_cloud_start_proxy(rp_te_t *te, const char *const *flags)
{
    char script[PATH_MAX], url_file[PATH_MAX], log[PATH_MAX];
    char upstream[sizeof(te->gcs_url)];
    char *argv[64];
    size_t n = 0;

    rp_te_format(script, sizeof(script), "%s/tests/fakes/gcs_fault_proxy.py",
                 te->src_dir);
    rp_te_path(te, url_file, sizeof(url_file), "gcs-proxy.url");
    rp_te_path(te, log, sizeof(log), "gcs-proxy.faults.log");
    memcpy(upstream, te->gcs_url, sizeof(upstream));
    argv[n++] = "/usr/bin/env";
    argv[n++] = "python3";
    argv[n++] = script;
    argv[n++] = "--upstream";
    argv[n++] = upstream;
    argv[n++] = "--port-file";
    argv[n++] = url_file;
    argv[n++] = "--log";
    argv[n++] = log;
    for (size_t i = 0; flags && flags[i]; i++) {
        if (n + 2 > sizeof(argv) / sizeof(argv[0]))
            fail_msg("too many proxy flags");
        argv[n++] = (char *)flags[i];
    }
    argv[n] = NULL;
    rp_te_start_service(te, "gcs-proxy", argv, NULL, url_file, te->gcs_url,
                        sizeof(te->gcs_url), RP_TE_CLOUD_START_MS);
    print_message("Cloud Storage through gcs_fault_proxy %s -> %s\n",
                  te->gcs_url, upstream);
}

/* The fake's --config: the executor image and its ENV lines. */
static char *rp_te_cloud_fake_config(rp_te_t *te)
{
    char executor[PATH_MAX], emu[300], cwd[PATH_MAX + 32];
    cJSON *cfg = cJSON_CreateObject(), *images, *argv;
    char *text;

    rp_te_format(executor, sizeof(executor), "%s/runpool-executor",
                 te->bin_dir);
    rp_te_format(emu, sizeof(emu), "STORAGE_EMULATOR_HOST=%s", te->gcs_url);
    rp_te_format(cwd, sizeof(cwd), "RUNPOOL_DEFAULT_CWD=%s/workspace",
                 te->dir);
    if (!cfg || !(images = cJSON_AddObjectToObject(cfg, "images")) ||
        !(argv = cJSON_AddArrayToObject(images, RP_TE_CLOUD_IMAGE)))
        fail_msg("out of memory");
    cJSON_AddItemToArray(argv, cJSON_CreateString("/usr/bin/env"));
    cJSON_AddItemToArray(argv, cJSON_CreateString(emu));
    cJSON_AddItemToArray(argv, cJSON_CreateString(cwd));
    cJSON_AddItemToArray(argv, cJSON_CreateString(executor));
    if (!(text = cJSON_PrintUnformatted(cfg)))
        fail_msg("out of memory");
    cJSON_Delete(cfg);
    return text;
}

static void rp_te_cloud_start_run(rp_te_t *te)
{
    char script[PATH_MAX], url_file[PATH_MAX], state_dir[PATH_MAX];
    char executor[PATH_MAX];
    char *config = rp_te_cloud_fake_config(te);
    char *argv[] = {"/usr/bin/env", "python3", script,
                    "--port", "0", "--port-file", url_file,
                    "--executor", executor, "--state-dir", state_dir,
                    "--op-latency-ms", "50",
                    /* SIGTERM -> SIGKILL on cancel: Cloud Run gives 10 s; the
                     * executor stops at once, so 2 s is plenty here. */
                    "--cancel-grace-s", "2",
                    "--config", config, NULL};

    rp_te_format(script, sizeof(script),
                 "%s/tests/fakes/cloudrun/cloudrun_fake.py", te->src_dir);
    rp_te_format(executor, sizeof(executor), "%s/runpool-executor",
                 te->bin_dir);
    rp_te_path(te, url_file, sizeof(url_file), "cloudrun.url");
    rp_te_path(te, state_dir, sizeof(state_dir), "cloudrun");
    rp_te_start_service(te, "cloudrun-fake", argv, NULL, url_file,
                        te->cloudrun_url, sizeof(te->cloudrun_url),
                        RP_TE_CLOUD_START_MS);
    free(config);
}

static void rp_te_cloud_start_with(rp_te_t *te, const char *job_mode,
                                   const char *const *proxy_flags);

void rp_te_cloud_start(rp_te_t *te, const char *job_mode)
{
    rp_te_cloud_start_with(te, job_mode, NULL);
}

void rp_te_cloud_start_proxied(rp_te_t *te, const char *job_mode,
                               const char *const *proxy_flags)
{
    static const char *const none[] = {NULL};

    rp_te_cloud_start_with(te, job_mode, proxy_flags ? proxy_flags : none);
}

static void rp_te_cloud_start_with(rp_te_t *te, const char *job_mode,
                                   const char *const *proxy_flags)
{
    char state[PATH_MAX], dir[PATH_MAX];
    /* Test timing: poll every 0.2-1 s, retry after 0.1-2 s, a jobs.run with
     * no answer in 10 s is lost and settles 12 s after its claim. */
    static const char *const timing[][2] = {
        {"RUNPOOL_CLOUD_RUN_POLL_MIN_MS", "200"},
        {"RUNPOOL_CLOUD_RUN_POLL_MAX_MS", "1000"},
        {"RUNPOOL_CLOUD_RUN_RETRY_BASE_MS", "100"},
        {"RUNPOOL_CLOUD_RUN_RETRY_CAP_MS", "2000"},
        {"RUNPOOL_CLOUD_RUN_RETRY_MAX_S", "120"},
        {"RUNPOOL_CLOUD_RUN_HTTP_TIMEOUT_MS", "10000"},
        {"RUNPOOL_CLOUD_RUN_SETTLE_MS", "12000"},
        {"RUNPOOL_CLOUD_RUN_MAX_RPS", "200"},
        /* Never started this long after jobs.run: cancelled, a backend
         * failure (its timeout has not begun). */
        {"RUNPOOL_CLOUD_RUN_QUEUE_MAX_S", "6"},
    };
    char margin[16], cancel_after[16];

    rp_te_path(te, dir, sizeof(dir), "workspace");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
    rp_te_cloud_start_gcs(te);
    if (proxy_flags)
        rp_te_cloud_start_proxy(te, proxy_flags);
    rp_te_cloud_start_run(te);

    rp_te_setenv(te, "GCP_PROJECT_ID", RP_TE_CLOUD_PROJECT);
    rp_te_setenv(te, "GCP_REGION", RP_TE_CLOUD_REGION);
    rp_te_setenv(te, "SANDBOX_EXECUTOR_IMAGE", RP_TE_CLOUD_IMAGE);
    rp_te_setenv(te, "SANDBOX_STATE_BUCKET", RP_TE_CLOUD_BUCKET);
    rp_te_setenv(te, "SANDBOX_JOB_TIMEOUT", "300");
    rp_te_setenv(te, "RUNPOOL_CLOUD_RUN_ENDPOINT", te->cloudrun_url);
    rp_te_setenv(te, "RUNPOOL_CLOUD_RUN_JOB_MODE", job_mode);
    rp_te_setenv(te, "STORAGE_EMULATOR_HOST", te->gcs_url);
    for (size_t i = 0; i < sizeof(timing) / sizeof(timing[0]); i++)
        rp_te_setenv(te, timing[i][0], timing[i][1]);
    snprintf(margin, sizeof(margin), "%d", RP_TE_CLOUD_MARGIN_S);
    snprintf(cancel_after, sizeof(cancel_after), "%d",
             RP_TE_CLOUD_CANCEL_AFTER_S);
    rp_te_setenv(te, "RUNPOOL_CLOUD_RUN_TIMEOUT_MARGIN_S", margin);
    rp_te_setenv(te, "RUNPOOL_CLOUD_RUN_CANCEL_AFTER_S", cancel_after);

    rp_te_format(state, sizeof(state), "gs://%s/%s", RP_TE_CLOUD_BUCKET,
                 RP_TE_CLOUD_PREFIX);
    rp_te_format(te->state_url, sizeof(te->state_url), "%s", state);
    snprintf(te->backend, sizeof(te->backend), "cloudrun");
}

void rp_te_cloud_authenticate(rp_te_t *te)
{
    char script[PATH_MAX], port_file[PATH_MAX], pub[PATH_MAX], port[32];
    char host[64], state[sizeof(te->state_url)];
    char *argv[] = {"/usr/bin/env", "python3", script, "--pubkey", pub,
                    "--email", "runner@" RP_TE_CLOUD_PROJECT
                               ".iam.gserviceaccount.com",
                    "--port-file", port_file, "--token-prefix",
                    (char *)rp_te_secret(RP_TE_SECRET_ACCESS_TOKEN), NULL};

    if (!te->gcs_url[0])
        fail_msg("rp_te_cloud_authenticate before rp_te_cloud_start");
    rp_te_format(script, sizeof(script), "%s/tests/fakes/token_server.py",
                 te->src_dir);
    rp_te_path(te, port_file, sizeof(port_file), "token-server.port");
    /* Only the metadata endpoint is used: no key is ever checked. */
    rp_te_path(te, pub, sizeof(pub), "token-server.unused.pem");
    rp_te_start_service(te, "token-server", argv, NULL, port_file, port,
                        sizeof(port), RP_TE_CLOUD_START_MS);
    rp_te_format(host, sizeof(host), "127.0.0.1:%s", port);
    rp_te_setenv(te, "GCE_METADATA_HOST", host);
    snprintf(te->worker_unset, sizeof(te->worker_unset),
             "STORAGE_EMULATOR_HOST");
    rp_te_format(state, sizeof(state), "%s?endpoint=%s", te->state_url,
                 te->gcs_url);
    memcpy(te->state_url, state, sizeof(te->state_url));
    rp_te_planted(te, RP_TE_SECRET_ACCESS_TOKEN);
}

/* ---- the Cloud Run fake over HTTP ------------------------------------ */

typedef struct rp_te_cloud_body {
    char *data;
    size_t len;
    bool too_big;
} rp_te_cloud_body_t;

static size_t rp_te_cloud_write(char *p, size_t size, size_t n, void *opaque)
{
    rp_te_cloud_body_t *b = opaque;
    size_t add = size * n;
    char *grown;

    if (b->len + add > RP_TE_CLOUD_REPLY_MAX) {
        b->too_big = true;
        return 0;
    }
    if (!(grown = realloc(b->data, b->len + add + 1)))
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static cJSON *rp_te_cloud_call_at(const char *base, const char *method,
                                  const char *path, const char *body,
                                  long *status);

cJSON *rp_te_cloud_call(rp_te_t *te, const char *method, const char *path,
                        const char *body, long *status)
{
    return rp_te_cloud_call_at(te->cloudrun_url, method, path, body, status);
}

cJSON *rp_te_cloud_proxy_stats(rp_te_t *te)
{
    long status = 0;
    cJSON *stats = rp_te_cloud_call_at(te->gcs_url, "GET", "/_proxy/stats",
                                       NULL, &status);

    if (status != 200 || !cJSON_IsObject(stats))
        fail_msg("GET %s/_proxy/stats: HTTP %ld (no proxy started?)",
                 te->gcs_url, status);
    return stats;
}

static cJSON *rp_te_cloud_call_at(const char *base, const char *method,
                                  const char *path, const char *body,
                                  long *status)
{
    char url[1024];
    rp_te_cloud_body_t reply = {0};
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    long code = 0;
    cJSON *doc = NULL;

    if (!c)
        fail_msg("curl_easy_init failed");
    rp_te_format(url, sizeof(url), "%s%s", base, path);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rp_te_cloud_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(reply.data);
        fail_msg("%s %s: %s%s", method, url, curl_easy_strerror(rc),
                 reply.too_big ? " (reply too big)" : "");
    }
    if (reply.data)
        doc = cJSON_ParseWithLength(reply.data, reply.len);
    free(reply.data);
    if (status)
        *status = code;
    return doc;
}

void rp_te_cloud_config(rp_te_t *te, const char *json)
{
    long status = 0;
    cJSON *reply = rp_te_cloud_call(te, "POST", "/_fake/config", json, &status);

    cJSON_Delete(reply);
    if (status != 200)
        fail_msg("POST /_fake/config %s: HTTP %ld", json, status);
}

cJSON *rp_te_cloud_stats(rp_te_t *te)
{
    long status = 0;
    cJSON *stats = rp_te_cloud_call(te, "GET", "/_fake/stats", NULL, &status);

    if (status != 200 || !cJSON_IsObject(stats))
        fail_msg("GET /_fake/stats: HTTP %ld", status);
    return stats;
}

long rp_te_cloud_runs(rp_te_t *te, const char *execution_id)
{
    cJSON *stats = rp_te_cloud_stats(te);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(
        stats, "executions_by_execution_id");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(by, execution_id);
    long runs = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;

    cJSON_Delete(stats);
    return runs;
}

long rp_te_cloud_count_requests(rp_te_t *te, const char *route, long status)
{
    long http = 0, count = 0;
    cJSON *reqs = rp_te_cloud_call(te, "GET", "/_fake/requests", NULL, &http);
    const cJSON *r, *list = cJSON_IsArray(reqs)
                                ? reqs
                                : cJSON_GetObjectItemCaseSensitive(reqs,
                                                                   "requests");

    if (http != 200 || !cJSON_IsArray(list))
        fail_msg("GET /_fake/requests: HTTP %ld", http);
    cJSON_ArrayForEach(r, list)
    {
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(r, "route");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");

        if (cJSON_IsString(rt) && !strcmp(rt->valuestring, route) &&
            cJSON_IsNumber(st) && (long)st->valuedouble == status)
            count++;
    }
    cJSON_Delete(reqs);
    return count;
}

/* ---- Cloud Storage through Google's client --------------------------- */

/* Run gcs_object.py VERB BUCKET NAME with stdin from in_path (NULL =
 * /dev/null); its stdout/stderr go to TMP/gcs-tool.out/.err. Returns the
 * exit code. */
static int rp_te_cloud_gcs_tool(rp_te_t *te, const char *verb,
                                const char *name, const char *in_path)
{
    char python[PATH_MAX], script[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
    char *argv[] = {python, script, (char *)verb, RP_TE_CLOUD_BUCKET,
                    (char *)name, NULL};
    const char *venv = getenv("RP_VENV");
    int status;

    if (venv && *venv)
        rp_te_format(python, sizeof(python), "%s/bin/python", venv);
    else
        rp_te_format(python, sizeof(python), "%s/.tools/venv/bin/python",
                     te->src_dir);
    if (access(python, X_OK) != 0)
        fail_msg("%s not found: run scripts/install-test-deps.sh", python);
    rp_te_format(script, sizeof(script), "%s/tests/integration/gcs_object.py",
                 te->src_dir);
    rp_te_path(te, out, sizeof(out), "gcs-tool.out");
    rp_te_path(te, err, sizeof(err), "gcs-tool.err");
    unlink(err); /* the rig appends stderr; get reads this run's alone */
    status = rp_te_run(te, argv, in_path, out, err, RP_TE_CLOUD_TOOL_MS);
    if (!WIFEXITED(status))
        fail_msg("gcs_object.py %s %s: killed by signal %d", verb, name,
                 WTERMSIG(status));
    return WEXITSTATUS(status);
}

static void rp_te_cloud_tool_failed(rp_te_t *te, const char *verb,
                                    const char *name, int code)
{
    char err[PATH_MAX];
    char *text;

    rp_te_path(te, err, sizeof(err), "gcs-tool.err");
    text = rp_te_read_file(err, NULL);
    print_message("%s", text ? text : "");
    free(text);
    fail_msg("gcs_object.py %s %s exited %d (stderr above)", verb, name, code);
}

char *rp_te_cloud_gcs_get(rp_te_t *te, const char *name, long long *generation)
{
    char out[PATH_MAX], err[PATH_MAX];
    char *data, *meta, *g;
    int code = rp_te_cloud_gcs_tool(te, "get", name, NULL);

    if (code == 3)
        return NULL;
    if (code != 0)
        rp_te_cloud_tool_failed(te, "get", name, code);
    rp_te_path(te, out, sizeof(out), "gcs-tool.out");
    rp_te_path(te, err, sizeof(err), "gcs-tool.err");
    if (!(data = rp_te_read_file(out, NULL)))
        fail_msg("gcs_object.py get %s: no output", name);
    if (generation) {
        meta = rp_te_read_file(err, NULL);
        if (!meta || !(g = strstr(meta, "generation=")))
            fail_msg("gcs_object.py get %s: no generation", name);
        *generation = strtoll(g + strlen("generation="), NULL, 10);
        free(meta);
    }
    return data;
}

void rp_te_cloud_gcs_put(rp_te_t *te, const char *name, const char *content)
{
    char in[PATH_MAX];
    FILE *f;
    int code;

    rp_te_path(te, in, sizeof(in), "gcs-tool.in");
    if (!(f = fopen(in, "w")) || fputs(content, f) == EOF || fclose(f) != 0)
        fail_msg("cannot write %s", in);
    if ((code = rp_te_cloud_gcs_tool(te, "put", name, in)) != 0)
        rp_te_cloud_tool_failed(te, "put", name, code);
}
