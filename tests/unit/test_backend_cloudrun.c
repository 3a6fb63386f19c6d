/* The cloudrun backend against the Cloud Run fake
 * (tests/fakes/cloudrun/cloudrun_fake.py), whose executions run the real
 * runpool-executor as child processes with the job's environment. The
 * state store is file:// in a temp dir shared by both sides.
 *
 * Also here: the pure pieces (rp_cloudrun.c) and the request-by-reference
 * part of the job contract (rp_jobenv). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rp_test_dir.h"
#include "rp_backend.h"
#include "rp_cloudrun.h"
#include "rp_http.h"
#include "rp_jobenv.h"
#include "rp_layout.h"
#include "rp_msg.h"
#include "rp_state.h"
#include "rp_time.h"

/* ------------------------------------------------------------------ */
/* The fake                                                            */

static pid_t g_fake_pid = -1;
static char g_fake[256];    /* base URL */
static char g_executor[1024];

static int fake_start(void **state)
{
    const char *src = getenv("RP_SOURCE_DIR"), *bin = getenv("RP_BIN_DIR");
    char script[1024], portfile[128], es[256];
    FILE *fp;

    (void)state;
    rp_http_global_init(es, sizeof(es));
    if (!src || !bin)
        return 0; /* tests skip */
    snprintf(script, sizeof(script), "%s/tests/fakes/cloudrun/cloudrun_fake.py",
             src);
    snprintf(g_executor, sizeof(g_executor), "%s/runpool-executor", bin);
    if (access(script, R_OK) || access(g_executor, X_OK))
        return 0;
    snprintf(portfile, sizeof(portfile), "/tmp/rp-crfake-%ld.port",
             (long)getpid());
    unlink(portfile);
    g_fake_pid = fork();
    if (g_fake_pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        if (null >= 0 && !getenv("RP_TEST_FAKE_LOG"))
            dup2(null, STDOUT_FILENO);
        execlp("python3", "python3", script, "--port", "0", "--port-file",
               portfile, "--executor", g_executor, "--op-latency-ms", "50",
               getenv("RP_TEST_FAKE_LOG") ? "--state-dir=/tmp" : "--quiet",
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !g_fake[0]; i++) {
        usleep(50 * 1000);
        if ((fp = fopen(portfile, "r"))) {
            if (!fgets(g_fake, sizeof(g_fake), fp))
                g_fake[0] = '\0';
            fclose(fp);
            g_fake[strcspn(g_fake, "\r\n")] = '\0';
        }
    }
    unlink(portfile);
    return 0;
}

static int fake_stop(void **state)
{
    (void)state;
    if (g_fake_pid > 0) {
        kill(g_fake_pid, SIGTERM);
        waitpid(g_fake_pid, NULL, 0);
    }
    rp_http_thread_cleanup();
    return 0;
}

/* method path [body] -> parsed JSON reply (caller frees), NULL on error. */
static cJSON *fake_call(const char *method, const char *path, const char *body,
                        long *status)
{
    char url[1024], es[256];
    const char *hdrs[] = {"Content-Type: application/json"};
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    cJSON *doc = NULL;

    snprintf(url, sizeof(url), "%s%s", g_fake, path);
    req.method = method;
    req.url = url;
    req.headers = hdrs;
    req.n_headers = body ? 1 : 0;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    if (rp_http_request(&req, &resp, es, sizeof(es)) == RP_OK) {
        doc = cJSON_ParseWithLength(resp.body.data, resp.body.len);
        if (status)
            *status = resp.status;
    }
    rp_http_resp_clear(&resp);
    return doc;
}

static void fake_config(const char *json)
{
    long status = 0;
    cJSON *r = fake_call("POST", "/_fake/config", json, &status);

    assert_non_null(r);
    assert_int_equal(status, 200);
    cJSON_Delete(r);
}

static cJSON *fake_stats(void)
{
    cJSON *s = fake_call("GET", "/_fake/stats", NULL, NULL);

    assert_non_null(s);
    return s;
}

/* stats[table][key] (table NULL: stats[key]); 0 when absent. */
static int stat_int(const char *table, const char *key)
{
    cJSON *s = fake_stats(), *t = table ? cJSON_GetObjectItem(s, table) : s;
    cJSON *v = cJSON_GetObjectItem(t, key);
    int n = cJSON_IsNumber(v) ? v->valueint : 0;

    cJSON_Delete(s);
    return n;
}

/* The fake's own view of the executions whose EXECUTION_ID is eid:
 * how many, and the outcome of the last one. */
static int fake_exec_outcome(const char *eid, char *outcome, size_t size)
{
    cJSON *d = fake_call("GET", "/_fake/executions", NULL, NULL), *e;
    int n = 0;

    outcome[0] = '\0';
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "executions"))
    {
        cJSON *id = cJSON_GetObjectItem(e, "execution_id_env");
        cJSON *oc = cJSON_GetObjectItem(e, "outcome");
        cJSON *st = cJSON_GetObjectItem(e, "state");

        if (!cJSON_IsString(id) || strcmp(id->valuestring, eid))
            continue;
        n++;
        snprintf(outcome, size, "%s",
                 cJSON_IsString(oc) ? oc->valuestring
                 : cJSON_IsString(st) ? st->valuestring
                                      : "?");
    }
    cJSON_Delete(d);
    return n;
}

/* ------------------------------------------------------------------ */
/* Runs and their callbacks                                            */

typedef struct tjob {
    int done;
    rp_backend_done_t d;
    rp_backend_run_t *run;
} tjob_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static void on_done(void *job, const rp_backend_done_t *done, void *opaque)
{
    tjob_t *j = job;

    (void)opaque;
    pthread_mutex_lock(&g_lock);
    j->d = *done;
    j->done++;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

static bool wait_job(tjob_t *j, int timeout_s)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    pthread_mutex_lock(&g_lock);
    while (!j->done &&
           pthread_cond_timedwait(&g_cond, &g_lock, &ts) != ETIMEDOUT)
        ;
    ok = j->done == 1;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

#define MAX_SETTINGS 40

typedef struct fx {
    char dir[64];
    char url[128];
    const char *names[MAX_SETTINGS];
    char values[MAX_SETTINGS][256];
    int n;
    rp_backend_t *be;
    rp_state_t *st;
} fx_t;

static void set(fx_t *f, const char *name, const char *value)
{
    for (int i = 0; i < f->n; i++) {
        if (!strcmp(f->names[i], name)) {
            snprintf(f->values[i], sizeof(f->values[i]), "%s", value);
            return;
        }
    }
    assert_true(f->n < MAX_SETTINGS);
    f->names[f->n] = name;
    snprintf(f->values[f->n], sizeof(f->values[f->n]), "%s", value);
    f->n++;
}

static void unset(fx_t *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name))
            f->values[i][0] = '\0';
}

static const char *lookup(const char *name, void *opaque)
{
    fx_t *f = opaque;

    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name))
            return f->values[i];
    return NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char es[256];

    snprintf(f->dir, sizeof(f->dir), "/tmp/rp-cloudrun-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->url, sizeof(f->url), "file://%s?fsync=0", f->dir);
    assert_int_equal(rp_state_open(f->url, &f->st, es, sizeof(es)), RP_OK);
    set(f, "GCP_PROJECT_ID", "test-project");
    set(f, "GCP_REGION", "europe-west1");
    set(f, "SANDBOX_EXECUTOR_IMAGE", "europe-docker.pkg.dev/p/r/executor:1");
    set(f, "RUNPOOL_CLOUD_RUN_ENDPOINT", g_fake[0] ? g_fake : "http://127.0.0.1:9");
    set(f, "RUNPOOL_CLOUD_RUN_POLL_MIN_MS", "100");
    set(f, "RUNPOOL_CLOUD_RUN_POLL_MAX_MS", "400");
    set(f, "RUNPOOL_CLOUD_RUN_RETRY_BASE_MS", "50");
    set(f, "RUNPOOL_CLOUD_RUN_RETRY_CAP_MS", "300");
    set(f, "RUNPOOL_CLOUD_RUN_SETTLE_MS", "1500");
    set(f, "RUNPOOL_CLOUD_RUN_HTTP_TIMEOUT_MS", "5000");
    set(f, "RUNPOOL_CLOUD_RUN_MAX_RPS", "200");
    set(f, "RUNPOOL_CLOUD_RUN_THREADS", "4");
    set(f, "RUNPOOL_CLOUD_RUN_TIMEOUT_MARGIN_S", "5");
    if (g_fake[0])
        fake_config("{\"clear_faults\":true,\"clear_exec_faults\":true,"
                    "\"reset_stats\":true}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    rp_backend_destroy(f->be);
    rp_state_destroy(f->st);
    rp_test_rmtree(f->dir);
    free(f);
    return 0;
}

static rp_err_t make_backend(fx_t *f, char *es, size_t n)
{
    rp_backend_conf_t conf = {0};

    conf.lookup = lookup;
    conf.lookup_opaque = f;
    conf.state = f->st;
    return rp_backend_new("cloudrun", &conf, on_done, NULL, &f->be, es, n);
}

static void need_fake(fx_t *f)
{
    char es[512] = "";

    if (!g_fake[0])
        skip();
    if (!f->be && make_backend(f, es, sizeof(es)) != RP_OK)
        fail_msg("backend: %s", es);
}

static void spec_init(rp_jobspec_t *s, fx_t *f, const char *eid,
                      const char *command)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->execution_id, sizeof(s->execution_id), "%s", eid);
    snprintf(s->session_id, sizeof(s->session_id), "sess-%s", eid);
    s->command = (char *)command;
    s->timeout_s = 30;
    s->state_url = f->url;
}

static void start(fx_t *f, tjob_t *j, const char *eid, const char *command)
{
    rp_jobspec_t spec;
    char es[512] = "";

    spec_init(&spec, f, eid, command);
    memset(j, 0, sizeof(*j));
    if (rp_backend_start(f->be, &spec, j, &j->run, es, sizeof(es)) != RP_OK)
        fail_msg("start %s: %s", eid, es);
}

static void finish(fx_t *f, tjob_t *j)
{
    rp_backend_release(f->be, j->run);
    j->run = NULL;
}

/* The executor's record of eid; false when absent. */
static bool record(fx_t *f, const char *eid, rp_result_t *res)
{
    char key[RP_STATE_KEY_MAX + 1], es[256];
    rp_buf_t buf;
    bool ok;

    rp_layout_result_key(eid, key, sizeof(key));
    rp_buf_init(&buf, RP_RESULT_MAX);
    memset(res, 0, sizeof(*res));
    ok = rp_state_get(f->st, key, &buf, NULL, es, sizeof(es)) == RP_OK &&
         rp_result_parse(buf.data, buf.len, res, es, sizeof(es)) == RP_OK;
    rp_buf_free(&buf);
    return ok;
}

static bool object_exists(fx_t *f, const char *key)
{
    char es[256];
    rp_buf_t buf;
    bool ok;

    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    ok = rp_state_get(f->st, key, &buf, NULL, es, sizeof(es)) == RP_OK;
    rp_buf_free(&buf);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void expect_invalid(fx_t *f, const char *needle)
{
    char es[512] = "";

    assert_int_equal(make_backend(f, es, sizeof(es)), RP_ERR_INVALID);
    assert_null(f->be);
    if (!strstr(es, needle))
        fail_msg("'%s' does not name %s", es, needle);
}

static void test_config_errors(void **state)
{
    fx_t *f = *state;
    rp_backend_conf_t conf = {0};
    rp_backend_t *be = NULL;
    rp_state_t *other = NULL;
    char es[512] = "";

    unset(f, "GCP_REGION");
    expect_invalid(f, "GCP_REGION");
    set(f, "GCP_REGION", "Europe West");
    expect_invalid(f, "GCP_REGION");
    set(f, "GCP_REGION", "europe-west1");

    unset(f, "GCP_PROJECT_ID");
    expect_invalid(f, "GCP_PROJECT_ID");
    set(f, "GCP_PROJECT_ID", "test-project");
    unset(f, "SANDBOX_EXECUTOR_IMAGE");
    expect_invalid(f, "SANDBOX_EXECUTOR_IMAGE");
    set(f, "SANDBOX_EXECUTOR_IMAGE", "img:1");

    set(f, "SANDBOX_JOB_MEMORY", "lots");
    expect_invalid(f, "SANDBOX_JOB_MEMORY");
    set(f, "SANDBOX_JOB_MEMORY", "2Gi");
    set(f, "SANDBOX_JOB_CPU", "-1");
    expect_invalid(f, "SANDBOX_JOB_CPU");
    set(f, "SANDBOX_JOB_CPU", "1000m");
    set(f, "SANDBOX_JOB_TIMEOUT", "0");
    expect_invalid(f, "SANDBOX_JOB_TIMEOUT");
    set(f, "SANDBOX_JOB_TIMEOUT", "3600s");
    set(f, "RUNPOOL_CLOUD_RUN_JOB_MODE", "sometimes");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_JOB_MODE");
    set(f, "RUNPOOL_CLOUD_RUN_JOB_MODE", "per-execution");
    set(f, "RUNPOOL_CLOUD_RUN_ENDPOINT", "ftp://x");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_ENDPOINT");
    set(f, "RUNPOOL_CLOUD_RUN_ENDPOINT", "http://127.0.0.1:9/");
    set(f, "RUNPOOL_CLOUD_RUN_JOB_PREFIX", "9lives");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_JOB_PREFIX");
    set(f, "RUNPOOL_CLOUD_RUN_JOB_PREFIX", "rp");
    set(f, "RUNPOOL_CLOUD_RUN_MAX_RPS", "0");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_MAX_RPS");
    set(f, "RUNPOOL_CLOUD_RUN_MAX_RPS", "10");
    set(f, "RUNPOOL_CLOUD_RUN_READS_RPS", "0");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_READS_RPS");
    set(f, "RUNPOOL_CLOUD_RUN_READS_RPS", "10");
    set(f, "RUNPOOL_CLOUD_RUN_SWEEP_PAGES", "0");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_SWEEP_PAGES");
    set(f, "RUNPOOL_CLOUD_RUN_SWEEP_PAGES", "4");
    set(f, "RUNPOOL_CLOUD_RUN_POLL_MAX_MS", "50"); /* below the minimum */
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_POLL_MAX_MS");
    set(f, "RUNPOOL_CLOUD_RUN_POLL_MAX_MS", "400");
    set(f, "RUNPOOL_CLOUD_RUN_SERVICE_ACCOUNT", "nobody");
    expect_invalid(f, "RUNPOOL_CLOUD_RUN_SERVICE_ACCOUNT");
    set(f, "RUNPOOL_CLOUD_RUN_SERVICE_ACCOUNT", "sa@p.iam.gserviceaccount.com");

    /* The executors must use the store of the bucket named. */
    set(f, "SANDBOX_STATE_BUCKET", "my-bucket");
    conf.lookup = lookup;
    conf.lookup_opaque = f;
    assert_int_equal(rp_state_open("gs://other-bucket/prefix", &other, es,
                                   sizeof(es)),
                     RP_OK);
    conf.state = other;
    assert_int_equal(rp_backend_new("cloudrun", &conf, on_done, NULL, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "SANDBOX_STATE_BUCKET"));
    conf.state = f->st;
    rp_state_destroy(other);
    set(f, "SANDBOX_STATE_BUCKET", "gs://bad_Bucket!");
    expect_invalid(f, "SANDBOX_STATE_BUCKET");
    unset(f, "SANDBOX_STATE_BUCKET");

    /* All well: it starts (nothing is called before the first run). */
    assert_int_equal(make_backend(f, es, sizeof(es)), RP_OK);
    rp_backend_destroy(f->be);
    f->be = NULL;

    assert_int_equal(rp_backend_new("nope", &conf, on_done, NULL, &be, es,
                                    sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "cloudrun"));
}

/* ------------------------------------------------------------------ */
/* Pure pieces                                                         */

static const char *conf_lookup(const char *name, void *opaque)
{
    (void)opaque;
    if (!strcmp(name, "GCP_PROJECT_ID"))
        return "test-project";
    if (!strcmp(name, "GCP_REGION"))
        return "us-central1";
    if (!strcmp(name, "SANDBOX_EXECUTOR_IMAGE"))
        return "img:1";
    return NULL;
}

static void test_names(void **state)
{
    rp_cloudrun_conf_t c, c2;
    char a[64], b[64], es[256];
    char long_id[RP_ID_MAX + 1];

    (void)state;
    assert_int_equal(rp_cloudrun_conf_read(conf_lookup, NULL, &c, es,
                                           sizeof(es)),
                     RP_OK);
    assert_string_equal(c.endpoint, RP_CLOUDRUN_ENDPOINT_DEFAULT);
    assert_int_equal(c.mode, RP_CLOUDRUN_MODE_TEMPLATE);
    /* Three quota families; the deprecated single bucket is unset. */
    assert_false(c.max_rps_set);
    assert_int_equal(c.runs_rps, 3);
    assert_int_equal(c.reads_rps, 10);
    assert_int_equal(c.writes_rps, 3);
    assert_int_equal(c.reads_burst, 10);
    assert_int_equal(c.get_rps, 5);
    assert_int_equal(c.sweep_ms, 250);
    assert_int_equal(c.sweep_pages, 4);
    assert_int_equal(c.queue_max_s, 900);
    assert_int_equal(c.poll_min_ms, 1000);
    assert_int_equal(c.poll_max_ms, 15000);
    assert_int_equal(c.threads, 8);
    assert_int_equal(c.job_timeout_s, 600);

    rp_cloudrun_template_job_id(&c, "gs://b", a, sizeof(a));
    assert_true(rp_cloudrun_job_id_valid(a));
    assert_int_equal(strncmp(a, "runpool-", 8), 0);
    rp_cloudrun_template_job_id(&c, "gs://b", b, sizeof(b));
    assert_string_equal(a, b);
    /* The name is the job's identity across worker versions: a changed
     * hash would make every worker create a second template job. */
    assert_string_equal(a, "runpool-5ead6786bca723f4");
    c2 = c;
    snprintf(c2.memory, sizeof(c2.memory), "1Gi");
    rp_cloudrun_template_job_id(&c2, "gs://b", b, sizeof(b));
    assert_string_not_equal(a, b); /* a new shape, a new job */
    rp_cloudrun_template_job_id(&c, "gs://c", b, sizeof(b));
    assert_string_not_equal(a, b);

    rp_cloudrun_execution_job_id(&c, "Exec_42.try:1", a, sizeof(a));
    assert_true(rp_cloudrun_job_id_valid(a));
    assert_int_equal(strncmp(a, "runpool-exec-42-try-1-", 22), 0);
    rp_cloudrun_execution_job_id(&c, "exec-42-try-1", b, sizeof(b));
    assert_string_not_equal(a, b); /* same sanitised text, other hash */
    memset(long_id, 'Z', RP_ID_MAX);
    long_id[RP_ID_MAX] = '\0';
    rp_cloudrun_execution_job_id(&c, long_id, a, sizeof(a));
    assert_true(rp_cloudrun_job_id_valid(a));
    rp_cloudrun_execution_job_id(&c, "::", a, sizeof(a));
    assert_true(rp_cloudrun_job_id_valid(a));
    assert_false(rp_cloudrun_job_id_valid("-a"));
    assert_false(rp_cloudrun_job_id_valid("a-"));
    assert_false(rp_cloudrun_job_id_valid("Ab"));

    assert_true(rp_cloudrun_name_valid("projects/p/locations/l/jobs/j/"
                                       "executions/j-abcde"));
    assert_false(rp_cloudrun_name_valid("projects/p/../x"));
    assert_false(rp_cloudrun_name_valid("projects/p?x=1"));
    assert_false(rp_cloudrun_name_valid("jobs/j"));
}

static void test_bodies_and_replies(void **state)
{
    rp_cloudrun_conf_t c;
    rp_cloudrun_exec_t ex;
    rp_env_t env = {0};
    char es[256], msg[RP_CLOUDRUN_MESSAGE_MAX], name[RP_CLOUDRUN_NAME_MAX];
    const char *bad =
        "{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":"
        "\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
        "google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":\"job.x\","
        "\"description\":\"no\"}]}]}}";
    const char *op =
        "{\"name\":\"projects/p/locations/l/operations/o\",\"metadata\":"
        "{\"@type\":\"x\",\"name\":\"projects/p/locations/l/jobs/j/"
        "executions/j-x\"}}";
    char *body;
    cJSON *doc;

    (void)state;
    assert_int_equal(rp_cloudrun_conf_read(conf_lookup, NULL, &c, es,
                                           sizeof(es)),
                     RP_OK);
    rp_env_set(&env, "RUNPOOL_STATE_URL", "gs://b");
    body = rp_cloudrun_job_body(&c, &env, 600);
    assert_non_null(body);
    doc = cJSON_Parse(body);
    {
        cJSON *tt = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "template"),
                                        "template");
        cJSON *mr = cJSON_GetObjectItem(tt, "maxRetries");

        /* Sent explicitly: omitted would mean 3 retries. */
        assert_true(cJSON_IsNumber(mr));
        assert_int_equal(mr->valueint, 0);
        assert_string_equal(cJSON_GetObjectItem(tt, "timeout")->valuestring,
                            "600s");
    }
    cJSON_Delete(doc);
    free(body);
    body = rp_cloudrun_run_body(&env, 65);
    assert_non_null(strstr(body, "\"timeout\":\"65s\""));
    assert_non_null(strstr(body, "\"containerOverrides\":[{\"name\":\"executor\""));
    free(body);
    rp_env_clear(&env);

    rp_cloudrun_error_message(400, bad, strlen(bad), msg, sizeof(msg));
    assert_string_equal(msg, "HTTP 400 INVALID_ARGUMENT: bad (job.x: no)");
    rp_cloudrun_error_message(502, "<html>bad gateway</html>", 24, msg,
                              sizeof(msg));
    assert_string_equal(msg, "HTTP 502: <html>bad gateway</html>");

    assert_int_equal(rp_cloudrun_run_reply(op, strlen(op), name, sizeof(name),
                                           es, sizeof(es)),
                     RP_OK);
    assert_string_equal(name, "projects/p/locations/l/jobs/j/executions/j-x");
    assert_int_equal(rp_cloudrun_run_reply("{\"name\":\"x\"}", 12, name,
                                           sizeof(name), es, sizeof(es)),
                     RP_ERR_PROTOCOL);

#define EXEC(extra) "{\"name\":\"projects/p/x\"" extra "}"
    {
        static const struct {
            const char *json;
            rp_cloudrun_outcome_t want;
        } cases[] = {
            {EXEC(",\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_PENDING\"}]"),
             RP_CLOUDRUN_RUNNING},
            /* done-looking condition but no completionTime: running */
            {EXEC(",\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_SUCCEEDED\"}]"),
             RP_CLOUDRUN_RUNNING},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_SUCCEEDED\"}]"),
             RP_CLOUDRUN_SUCCEEDED},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_FAILED\",\"executionReason\":\"CANCELLED\"}]"),
             RP_CLOUDRUN_CANCELLED},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_FAILED\",\"executionReason\":"
                  "\"NON_ZERO_EXIT_CODE\",\"message\":\"boom\"}]"),
             RP_CLOUDRUN_FAILED},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"conditions\":[{\"type\":\"Completed\",\"state\":"
                  "\"CONDITION_FAILED\",\"executionReason\":\"DELETED\"}]"),
             RP_CLOUDRUN_DELETED},
            /* counts, when the condition is missing (absent = 0) */
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"taskCount\":1,\"succeededCount\":1"),
             RP_CLOUDRUN_SUCCEEDED},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"failedCount\":1"),
             RP_CLOUDRUN_FAILED},
            {EXEC(",\"completionTime\":\"2026-01-01T00:00:00Z\","
                  "\"cancelledCount\":1"),
             RP_CLOUDRUN_CANCELLED},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            assert_int_equal(rp_cloudrun_parse_execution(cases[i].json,
                                                         strlen(cases[i].json),
                                                         &ex, es, sizeof(es)),
                             RP_OK);
            if (ex.outcome != cases[i].want)
                fail_msg("case %zu: %s, want %s", i,
                         rp_cloudrun_outcome_str(ex.outcome),
                         rp_cloudrun_outcome_str(cases[i].want));
        }
        assert_string_equal(ex.message, "");
        rp_cloudrun_parse_execution(cases[4].json, strlen(cases[4].json), &ex,
                                    es, sizeof(es));
        assert_string_equal(ex.message, "boom");
    }
}

static void test_attempt_record(void **state)
{
    rp_cloudrun_attempt_t a = {0}, b;
    char key[RP_STATE_KEY_MAX + 1], es[256], *json;

    (void)state;
    int n = -1;

    rp_cloudrun_attempt_key("e-1", 1, key, sizeof(key));
    assert_string_equal(key, "executions/e-1/attempt-1.json");
    assert_int_equal(rp_cloudrun_attempt_key_kind(key, &n),
                     RP_CLOUDRUN_KEY_CLAIM);
    assert_int_equal(n, 1);
    rp_cloudrun_attempt_exec_key("e-1", 12, key, sizeof(key));
    assert_string_equal(key, "executions/e-1/attempt-12.execution.json");
    assert_int_equal(rp_cloudrun_attempt_key_kind(key, &n),
                     RP_CLOUDRUN_KEY_EXEC);
    assert_int_equal(n, 12);
    rp_cloudrun_attempt_key("e-1", 0, key, sizeof(key)); /* legacy */
    assert_string_equal(key, "executions/e-1/attempt.json");
    assert_int_equal(rp_cloudrun_attempt_key_kind(key, &n),
                     RP_CLOUDRUN_KEY_CLAIM);
    assert_int_equal(n, 0);
    rp_cloudrun_attempt_prefix("e-1", key, sizeof(key));
    assert_string_equal(key, "executions/e-1/attempt");
    assert_int_equal(rp_cloudrun_attempt_key_kind("executions/e/attempt-0.json",
                                                  &n),
                     RP_CLOUDRUN_KEY_OTHER);
    assert_int_equal(rp_cloudrun_attempt_key_kind("executions/e/attempt-01.json",
                                                  &n),
                     RP_CLOUDRUN_KEY_OTHER);
    assert_int_equal(rp_cloudrun_attempt_key_kind("executions/e/attempt-2.txt",
                                                  &n),
                     RP_CLOUDRUN_KEY_OTHER);
    assert_int_equal(rp_cloudrun_attempt_key_kind("executions/e/result.json",
                                                  &n),
                     RP_CLOUDRUN_KEY_OTHER);
    rp_cloudrun_attempt_key("..", 1, key, sizeof(key));
    assert_string_equal(key, "");
    snprintf(a.execution_id, sizeof(a.execution_id), "e-1");
    snprintf(a.job, sizeof(a.job), "projects/p/locations/l/jobs/j");
    a.created_ms = 1700000000123;
    a.run_at_ms = 1700000000456;
    a.n = 3;
    snprintf(a.worker, sizeof(a.worker), "w:1");
    json = rp_cloudrun_attempt_json(&a);
    assert_non_null(strstr(json, "\"state\":\"starting\""));
    assert_non_null(strstr(json, "\"attempt\":3"));
    assert_int_equal(rp_cloudrun_attempt_parse(json, strlen(json), &b, es,
                                               sizeof(es)),
                     RP_OK);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.job, a.job);
    assert_string_equal(b.execution, "");
    assert_true(b.created_ms == a.created_ms && b.run_at_ms == a.run_at_ms);
    free(json);
    snprintf(a.execution, sizeof(a.execution),
             "projects/p/locations/l/jobs/j/executions/j-x");
    json = rp_cloudrun_attempt_json(&a);
    assert_non_null(strstr(json, "\"state\":\"running\""));
    assert_int_equal(rp_cloudrun_attempt_parse(json, strlen(json), &b, es,
                                               sizeof(es)),
                     RP_OK);
    assert_string_equal(b.execution, a.execution);
    free(json);
    assert_int_equal(rp_cloudrun_attempt_parse("{\"job\":\"x\"}", 11, &b, es,
                                               sizeof(es)),
                     RP_ERR_PROTOCOL);
}

/* The contract's request-by-reference half (rp_jobenv). */
static const char *env_lookup(const char *name, void *opaque)
{
    const char *v = rp_env_get(opaque, name);

    return v;
}

static void test_jobenv_request_ref(void **state)
{
    rp_jobspec_t in, out;
    rp_env_t env = {0};
    char es[256], *doc;

    (void)state;
    memset(&in, 0, sizeof(in));
    snprintf(in.execution_id, sizeof(in.execution_id), "e-ref");
    snprintf(in.session_id, sizeof(in.session_id), "s");
    in.command = "echo \"$A\"";
    in.timeout_s = 5;
    in.state_url = "file:///tmp/x";
    rp_env_set(&in.env, "A", "a\nb");
    assert_int_equal(rp_jobenv_build(&in, &env, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_jobenv_request_json(&in, &doc, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_jobenv_use_request_ref(&env, "e-ref", es, sizeof(es)),
                     RP_OK);
    assert_null(rp_env_get(&env, "COMMAND"));
    assert_null(rp_env_get(&env, "COMMAND_ENV"));
    assert_string_equal(rp_env_get(&env, RP_JOBENV_REQUEST_REF),
                        "executions/e-ref/request.json");

    assert_int_equal(rp_jobenv_parse(env_lookup, &env, &out, es, sizeof(es)),
                     RP_OK);
    assert_null(out.command);
    assert_string_equal(out.request_ref, "executions/e-ref/request.json");
    assert_int_equal(rp_jobenv_load_request(&out, doc, strlen(doc), es,
                                            sizeof(es)),
                     RP_OK);
    assert_string_equal(out.command, in.command);
    assert_string_equal(rp_env_get(&out.env, "A"), "a\nb");
    rp_jobspec_clear(&out);

    /* Only this execution's own document may be named. */
    rp_env_set(&env, RP_JOBENV_REQUEST_REF, "sessions/s/state.json");
    assert_int_equal(rp_jobenv_parse(env_lookup, &env, &out, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, RP_JOBENV_REQUEST_REF));
    rp_jobspec_clear(&out);
    rp_env_set(&env, RP_JOBENV_REQUEST_REF, "executions/e-ref/request.json");
    rp_env_set(&env, "COMMAND_ENV", "{\"B\":\"c\"}");
    assert_int_equal(rp_jobenv_parse(env_lookup, &env, &out, es, sizeof(es)),
                     RP_ERR_INVALID);
    rp_jobspec_clear(&out);
    rp_env_unset(&env, "COMMAND_ENV");
    assert_int_equal(rp_jobenv_parse(env_lookup, &env, &out, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(rp_jobenv_load_request(&out, "{\"command\":1}", 13, es,
                                            sizeof(es)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_jobenv_load_request(&out, "{\"command\":\"x\",\"env\":"
                                                  "{\"1A\":\"x\"}}",
                                            34, es, sizeof(es)),
                     RP_ERR_INVALID);
    rp_jobspec_clear(&out);
    /* No ref, no command: the old message. */
    rp_env_unset(&env, RP_JOBENV_REQUEST_REF);
    assert_int_equal(rp_jobenv_parse(env_lookup, &env, &out, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "COMMAND: required"));
    rp_jobspec_clear(&out);
    free(doc);
    rp_env_clear(&env);
    rp_env_clear(&in.env);
}

/* ------------------------------------------------------------------ */
/* Against the fake                                                    */

/* Several runs in flight on one template job, created once. */
static void test_template_many(void **state)
{
    fx_t *f = *state;
    enum { N = 6 };
    tjob_t j[N];
    char eid[32], cmd[64], want[32], oc[32];
    rp_result_t res;

    need_fake(f);
    for (int i = 0; i < N; i++) {
        snprintf(eid, sizeof(eid), "tm-%d", i);
        snprintf(cmd, sizeof(cmd), "sleep 0.3; echo run-%d", i);
        start(f, &j[i], eid, cmd);
    }
    for (int i = 0; i < N; i++) {
        assert_true(wait_job(&j[i], 60));
        if (j[i].d.err != RP_OK)
            fail_msg("run %d: %s", i, j[i].d.detail);
        assert_false(j[i].d.cancelled);
        assert_int_equal(j[i].d.exit_code, 0);
        finish(f, &j[i]);
        snprintf(eid, sizeof(eid), "tm-%d", i);
        assert_true(record(f, eid, &res));
        assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
        snprintf(want, sizeof(want), "run-%d\n", i);
        assert_int_equal(res.stdout_len, strlen(want));
        assert_memory_equal(res.stdout_data, want, strlen(want));
        rp_result_clear(&res);
        assert_int_equal(fake_exec_outcome(eid, oc, sizeof(oc)), 1);
        assert_string_equal(oc, "succeeded");
    }
    assert_int_equal(stat_int("requests", "POST jobs.create"), 1);
    assert_int_equal(stat_int(NULL, "executions_created"), N);
    assert_int_equal(stat_int("requests", "POST jobs.run"), N);
    /* The emulator gets no credentials. */
    assert_int_equal(stat_int("authorization", "present"), 0);
}

/* The job exists already (another worker made it): 409 is fine. */
static void test_template_409(void **state)
{
    fx_t *f = *state;
    rp_cloudrun_conf_t c;
    char id[64], path[256], es[256], body[2048];
    long status = 0;
    tjob_t j;
    rp_result_t res;
    cJSON *r;

    need_fake(f);
    assert_int_equal(rp_cloudrun_conf_read(lookup, f, &c, es, sizeof(es)),
                     RP_OK);
    rp_cloudrun_template_job_id(&c, f->url, id, sizeof(id));
    snprintf(path, sizeof(path),
             "/v2/projects/test-project/locations/europe-west1/jobs?jobId=%s",
             id);
    snprintf(body, sizeof(body),
             "{\"template\":{\"template\":{\"containers\":[{\"name\":"
             "\"executor\",\"image\":\"%s\",\"env\":[{\"name\":"
             "\"RUNPOOL_STATE_URL\",\"value\":\"%s\"}]}],\"maxRetries\":0}}}",
             c.image, f->url);
    r = fake_call("POST", path, body, &status);
    assert_int_equal(status, 200);
    cJSON_Delete(r);
    usleep(200 * 1000); /* ready */
    fake_config("{\"reset_stats\":true}");

    start(f, &j, "t409", "echo ok");
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_true(record(f, "t409", &res));
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    rp_result_clear(&res);
    assert_int_equal(stat_int("responses_by_status", "409"), 1);
    assert_int_equal(stat_int("executions_by_execution_id", "t409"), 1);
}

/* Per-execution mode: a job of its own, run, deleted afterwards. */
static void test_per_execution(void **state)
{
    fx_t *f = *state;
    rp_cloudrun_conf_t c;
    char id[64], path[256], es[256];
    long status = 0;
    tjob_t j;
    rp_result_t res;
    cJSON *r;

    set(f, "RUNPOOL_CLOUD_RUN_JOB_MODE", "per-execution");
    need_fake(f);
    start(f, &j, "Per.Exec_1", "echo per");
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_true(record(f, "Per.Exec_1", &res));
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_memory_equal(res.stdout_data, "per\n", 4);
    rp_result_clear(&res);

    assert_int_equal(stat_int("requests", "POST jobs.create"), 1);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    assert_int_equal(stat_int("requests", "DELETE jobs.delete"), 1);
    assert_int_equal(rp_cloudrun_conf_read(lookup, f, &c, es, sizeof(es)),
                     RP_OK);
    rp_cloudrun_execution_job_id(&c, "Per.Exec_1", id, sizeof(id));
    snprintf(path, sizeof(path),
             "/v2/projects/test-project/locations/europe-west1/jobs/%s", id);
    r = fake_call("GET", path, NULL, &status);
    cJSON_Delete(r);
    assert_int_equal(status, 404); /* gone */
}

/* 429s on jobs.run are absorbed; still one execution per EXECUTION_ID. */
static void test_429_burst(void **state)
{
    fx_t *f = *state;
    tjob_t j[3];
    char eid[32], key[96];

    /* A retry on the same claim must land within settle_ms of it. */
    set(f, "RUNPOOL_CLOUD_RUN_HTTP_TIMEOUT_MS", "1000");
    set(f, "RUNPOOL_CLOUD_RUN_SETTLE_MS", "4000");
    need_fake(f);
    fake_config("{\"faults\":[{\"route\":\"jobs.run\",\"status\":429,"
                "\"count\":5}]}");
    for (int i = 0; i < 3; i++) {
        snprintf(eid, sizeof(eid), "q-%d", i);
        start(f, &j[i], eid, "true");
    }
    for (int i = 0; i < 3; i++) {
        assert_true(wait_job(&j[i], 60));
        if (j[i].d.err != RP_OK)
            fail_msg("%s", j[i].d.detail);
        finish(f, &j[i]);
        snprintf(eid, sizeof(eid), "q-%d", i);
        assert_int_equal(stat_int("executions_by_execution_id", eid), 1);
        /* A 429 proves nothing started: jobs.run is retried on the same
         * claim, no second claim is written. */
        snprintf(key, sizeof(key), "executions/%s/attempt-2.json", eid);
        assert_false(object_exists(f, key));
    }
    assert_int_equal(stat_int(NULL, "faults_injected"), 5);
    assert_int_equal(stat_int(NULL, "executions_created"), 3);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 3 + 5);
}

/* A 5xx or 504 that comes AFTER the execution was created, and a lost
 * reply, with the execution missing from executions.list for a while (the
 * fake's list_lag_ms, shorter than SETTLE_MS = 1.5 s here): "maybe
 * started", so the backend lists again after the settle time and finds it
 * instead of running the command a second time. (Taking the HTTP answer
 * for "nothing in flight" ran it twice here.) */
static void test_5xx_after_create(void **state)
{
    static const char *const faults[] = {"\"status\":500", "\"status\":503",
                                         "\"status\":504", "\"drop\":true"};
    fx_t *f = *state;
    char cfg[256], eid[32], out[32], key[96];
    tjob_t j;
    rp_result_t res;

    need_fake(f);
    for (int i = 0; i < 4; i++) {
        snprintf(cfg, sizeof(cfg),
                 "{\"reset_stats\":true,\"faults\":[{\"route\":\"jobs.run\","
                 "\"after\":true,%s,\"list_lag_ms\":900,\"count\":1}]}",
                 faults[i]);
        fake_config(cfg);
        snprintf(eid, sizeof(eid), "late-%d", i);
        snprintf(cfg, sizeof(cfg), "echo run-%d", i);
        start(f, &j, eid, cfg);
        assert_true(wait_job(&j, 30));
        if (j.d.err != RP_OK)
            fail_msg("%s: %s", faults[i], j.d.detail);
        finish(f, &j);
        assert_int_equal(stat_int(NULL, "faults_injected"), 1);
        if (stat_int("requests", "POST jobs.run") != 1 ||
            stat_int("executions_by_execution_id", eid) != 1)
            fail_msg("%s: %d jobs.run, %d executions of %s", faults[i],
                     stat_int("requests", "POST jobs.run"),
                     stat_int("executions_by_execution_id", eid), eid);
        /* One claim; the name found later is recorded once. */
        snprintf(key, sizeof(key), "executions/%s/attempt-1.execution.json",
                 eid);
        assert_true(object_exists(f, key));
        snprintf(key, sizeof(key), "executions/%s/attempt-2.json", eid);
        assert_false(object_exists(f, key));
        assert_true(record(f, eid, &res));
        snprintf(out, sizeof(out), "run-%d\n", i);
        assert_int_equal(res.stdout_len, strlen(out));
        assert_memory_equal(res.stdout_data, out, strlen(out));
        rp_result_clear(&res);
    }
}

/* The fake runs it and drops the reply: found and re-attached, not run
 * again. */
static void test_lost_reply(void **state)
{
    fx_t *f = *state;
    tjob_t j;
    rp_result_t res;

    need_fake(f);
    fake_config("{\"faults\":[{\"route\":\"jobs.run\",\"after\":true,"
                "\"drop\":true,\"count\":1}]}");
    start(f, &j, "lost-1", "echo once");
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_int_equal(stat_int(NULL, "faults_injected"), 1);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    assert_int_equal(stat_int("executions_by_execution_id", "lost-1"), 1);
    /* One claim, one name record: each object written once. */
    assert_true(object_exists(f, "executions/lost-1/attempt-1.json"));
    assert_true(object_exists(f, "executions/lost-1/attempt-1.execution.json"));
    assert_false(object_exists(f, "executions/lost-1/attempt-2.json"));
    assert_false(object_exists(f, "executions/lost-1/attempt.json"));
    assert_true(record(f, "lost-1", &res));
    assert_memory_equal(res.stdout_data, "once\n", 5);
    rp_result_clear(&res);
}

/* A command that fails, and a task that fails. */
static void test_failures(void **state)
{
    fx_t *f = *state;
    tjob_t j, k;
    rp_result_t res;
    char oc[32];

    need_fake(f);
    start(f, &j, "fail-cmd", "echo no >&2; exit 3");
    assert_true(wait_job(&j, 30));
    assert_int_equal(j.d.err, RP_OK); /* it ran to its end */
    finish(f, &j);
    assert_true(record(f, "fail-cmd", &res));
    assert_int_equal(res.status, RP_STATUS_FAILED);
    assert_int_equal(res.exit_code, 3);
    rp_result_clear(&res);

    /* The task itself fails (the container exits 1 before the executor
     * writes anything): done says so, the worker finds no record. With
     * maxRetries 0 it is not tried again. */
    fake_config("{\"exec_faults\":[{\"execution_id\":\"fail-task\","
                "\"exit_code\":1}]}");
    start(f, &k, "fail-task", "echo never");
    assert_true(wait_job(&k, 30));
    assert_int_equal(k.d.err, RP_OK);
    assert_false(k.d.cancelled);
    assert_non_null(strstr(k.d.detail, "failed"));
    finish(f, &k);
    assert_false(record(f, "fail-task", &res));
    assert_int_equal(fake_exec_outcome("fail-task", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "failed");
    assert_int_equal(stat_int("container_starts_by_execution_id", "fail-task"),
                     0);
}

/* A hanging execution: cancel ends it, and Cloud Run says CANCELLED. */
static void test_cancel(void **state)
{
    fx_t *f = *state;
    tjob_t j;
    char oc[32];
    int64_t t0;

    need_fake(f);
    start(f, &j, "hang-1", "sleep 60");
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    assert_int_equal(stat_int(NULL, "live_processes"), 1);
    t0 = rp_time_mono_ms();
    rp_backend_cancel(f->be, j.run);
    rp_backend_cancel(f->be, j.run); /* twice is harmless */
    assert_true(wait_job(&j, 30));
    assert_true(j.d.cancelled);
    assert_int_equal(j.d.err, RP_OK);
    assert_true(rp_time_mono_ms() - t0 < 15000);
    rp_backend_cancel(f->be, j.run); /* after the end too */
    finish(f, &j);
    assert_int_equal(fake_exec_outcome("hang-1", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "cancelled");
    assert_int_equal(stat_int(NULL, "live_processes"), 0);
    assert_int_equal(stat_int("requests", "POST executions.cancel"), 1);
}

/* A new owner (another start of the same execution) after a detach
 * re-attaches: one execution, run once. */
static void test_detach_reattach(void **state)
{
    fx_t *f = *state;
    tjob_t j, k;
    rp_result_t res;
    char oc[32];

    need_fake(f);
    start(f, &j, "det-1", "sleep 1.5; echo finished");
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    rp_backend_detach(f->be, j.run);
    assert_true(wait_job(&j, 30));
    assert_true(j.d.cancelled);
    finish(f, &j);
    /* Left running: not cancelled in Cloud Run. */
    assert_int_equal(stat_int("requests", "POST executions.cancel"), 0);
    assert_int_equal(fake_exec_outcome("det-1", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "running");

    start(f, &k, "det-1", "sleep 1.5; echo finished");
    assert_true(wait_job(&k, 30));
    if (k.d.err != RP_OK)
        fail_msg("%s", k.d.detail);
    assert_false(k.d.cancelled);
    finish(f, &k);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    assert_int_equal(stat_int("executions_by_execution_id", "det-1"), 1);
    assert_true(record(f, "det-1", &res));
    assert_memory_equal(res.stdout_data, "finished\n", 9);
    rp_result_clear(&res);
}

/* start_fresh (the worker's steady state): no listing and no name record,
 * the request inside claim 1; a second fresh start of the same execution
 * meets claim 1 and ends RP_ERR_EXISTS having run nothing; the slow start
 * that follows re-attaches (by listing) instead of running it again. A
 * detach hands the name over. */
static void test_fresh_start(void **state)
{
    fx_t *f = *state;
    rp_jobspec_t spec;
    tjob_t j, k;
    rp_result_t res;
    char es[512];

    need_fake(f);
    start(f, &j, "warm-fr", "true"); /* the template job, made once */
    assert_true(wait_job(&j, 30));
    finish(f, &j);
    fake_config("{\"reset_stats\":true}");

    spec_init(&spec, f, "fr-1", "echo fresh");
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start_fresh(f->be, &spec, &j, &j.run, es,
                                            sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_true(record(f, "fr-1", &res));
    assert_string_equal(res.stdout_data, "fresh\n");
    rp_result_clear(&res);
    assert_true(object_exists(f, "executions/fr-1/attempt-1.json"));
    assert_false(object_exists(f, "executions/fr-1/attempt-1.execution.json"));
    assert_false(object_exists(f, "executions/fr-1/request.json"));
    /* Cloud Run calls: one jobs.run, then only polls. */
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    assert_int_equal(stat_int("requests", "POST jobs.create"), 0);
    assert_int_equal(stat_int("requests", "GET jobs.get"), 0);

    /* Again, fresh: claim 1 exists -> EXISTS, nothing sent to Cloud Run. */
    memset(&k, 0, sizeof(k));
    assert_int_equal(rp_backend_start_fresh(f->be, &spec, &k, &k.run, es,
                                            sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&k, 30));
    assert_int_equal(k.d.err, RP_ERR_EXISTS);
    finish(f, &k);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    /* The slow way: finds the (ended) execution by listing, no new run. */
    start(f, &k, "fr-1", "echo fresh");
    assert_true(wait_job(&k, 30));
    if (k.d.err != RP_OK)
        fail_msg("%s", k.d.detail);
    finish(f, &k);
    assert_int_equal(stat_int("requests", "POST jobs.run"), 1);
    assert_int_equal(stat_int("executions_by_execution_id", "fr-1"), 1);

    /* Detached while it runs: the name is recorded for the next owner. */
    spec_init(&spec, f, "fr-2", "sleep 1.5; echo later");
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start_fresh(f->be, &spec, &j, &j.run, es,
                                            sizeof(es)),
                     RP_OK);
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    rp_backend_detach(f->be, j.run);
    assert_true(wait_job(&j, 30));
    assert_true(j.d.cancelled);
    finish(f, &j);
    assert_true(object_exists(f, "executions/fr-2/attempt-1.execution.json"));
    start(f, &k, "fr-2", "sleep 1.5; echo later");
    assert_true(wait_job(&k, 30));
    if (k.d.err != RP_OK)
        fail_msg("%s", k.d.detail);
    finish(f, &k);
    assert_int_equal(stat_int("executions_by_execution_id", "fr-2"), 1);
    assert_true(record(f, "fr-2", &res));
    assert_string_equal(res.stdout_data, "later\n");
    rp_result_clear(&res);
}

/* A claim without an execution name (the previous owner died between
 * claim and answer): the execution made for this EXECUTION_ID is found in
 * executions.list; with none, it runs once the settle time passed. */
static void test_reattach_by_list(void **state)
{
    fx_t *f = *state;
    rp_cloudrun_conf_t c;
    rp_cloudrun_attempt_t a = {0};
    char id[64], path[1024], es[256], body[1024], *json;
    long status = 0;
    tjob_t j, k;
    rp_result_t res;
    cJSON *r;

    need_fake(f);
    assert_int_equal(rp_cloudrun_conf_read(lookup, f, &c, es, sizeof(es)),
                     RP_OK);
    rp_cloudrun_template_job_id(&c, f->url, id, sizeof(id));

    /* Make the job ready (any run does) so we can run on it by hand. */
    start(f, &j, "warm", "true");
    assert_true(wait_job(&j, 30));
    finish(f, &j);

    /* "Owner 1": claimed, ran by hand, never recorded the name. */
    snprintf(a.execution_id, sizeof(a.execution_id), "rl-1");
    snprintf(a.job, sizeof(a.job),
             "projects/test-project/locations/europe-west1/jobs/%s", id);
    a.created_ms = a.run_at_ms = rp_time_wall_ms();
    json = rp_cloudrun_attempt_json(&a);
    assert_int_equal(rp_state_put(f->st, "executions/rl-1/attempt-1.json", json,
                                  strlen(json), 0, NULL, es, sizeof(es)),
                     RP_OK);
    free(json);
    snprintf(path, sizeof(path), "/v2/%s:run", a.job);
    snprintf(body, sizeof(body),
             "{\"overrides\":{\"containerOverrides\":[{\"name\":\"executor\","
             "\"env\":[{\"name\":\"EXECUTION_ID\",\"value\":\"rl-1\"},"
             "{\"name\":\"SESSION_ID\",\"value\":\"s\"},{\"name\":\"COMMAND\","
             "\"value\":\"sleep 0.5; echo by-hand\"},{\"name\":\"TIMEOUT\","
             "\"value\":\"30\"}]}]}}");
    r = fake_call("POST", path, body, &status);
    assert_int_equal(status, 200);
    cJSON_Delete(r);

    start(f, &k, "rl-1", "echo by-backend");
    assert_true(wait_job(&k, 30));
    if (k.d.err != RP_OK)
        fail_msg("%s", k.d.detail);
    finish(f, &k);
    assert_int_equal(stat_int("executions_by_execution_id", "rl-1"), 1);
    assert_true(record(f, "rl-1", &res));
    assert_memory_equal(res.stdout_data, "by-hand\n", 8);
    rp_result_clear(&res);

    /* Claimed long ago, nothing ran: runs once, but not before settle_ms
     * (1.5 s here) after this owner took the claim over, however old the
     * claim: the previous owner's jobs.run may have gone out late and be
     * in flight at the handover. The claim is in the single attempt.json
     * of earlier versions: read as claim 0, and the new run makes claim 1
     * instead of rewriting it. */
    a.created_ms = a.run_at_ms = rp_time_wall_ms() - 60000;
    snprintf(a.execution_id, sizeof(a.execution_id), "rl-2");
    json = rp_cloudrun_attempt_json(&a);
    assert_int_equal(rp_state_put(f->st, "executions/rl-2/attempt.json", json,
                                  strlen(json), 0, NULL, es, sizeof(es)),
                     RP_OK);
    free(json);
    {
        int64_t t0 = rp_time_mono_ms(), ran_after = -1;

        start(f, &k, "rl-2", "echo second");
        while (rp_time_mono_ms() - t0 < 30000) {
            if (stat_int("executions_by_execution_id", "rl-2") > 0) {
                ran_after = rp_time_mono_ms() - t0;
                break;
            }
            usleep(20 * 1000);
        }
        print_message("rl-2 ran %lld ms after the takeover\n",
                      (long long)ran_after);
        assert_true(ran_after >= 1500);
    }
    assert_true(wait_job(&k, 30));
    if (k.d.err != RP_OK)
        fail_msg("%s", k.d.detail);
    finish(f, &k);
    assert_int_equal(stat_int("executions_by_execution_id", "rl-2"), 1);
    assert_true(object_exists(f, "executions/rl-2/attempt-1.json"));
    assert_true(object_exists(f, "executions/rl-2/attempt-1.execution.json"));
    assert_true(record(f, "rl-2", &res));
    assert_memory_equal(res.stdout_data, "second\n", 7);
    rp_result_clear(&res);
}

/* Google refuses: the run ends with its message; the backend goes on. */
static void test_403(void **state)
{
    fx_t *f = *state;
    tjob_t j, k;

    need_fake(f);
    fake_config("{\"faults\":[{\"route\":\"jobs.run\",\"status\":403,"
                "\"message\":\"Permission 'run.jobs.runWithOverrides' "
                "denied on resource\"}]}");
    start(f, &j, "deny-1", "true");
    assert_true(wait_job(&j, 30));
    assert_int_equal(j.d.err, RP_ERR_PERMISSION);
    assert_non_null(strstr(j.d.detail, "run.jobs.runWithOverrides"));
    assert_non_null(strstr(j.d.detail, "PERMISSION_DENIED"));
    finish(f, &j);
    assert_int_equal(stat_int(NULL, "executions_created"), 0);

    start(f, &k, "deny-2", "true");
    assert_true(wait_job(&k, 30));
    assert_int_equal(k.d.err, RP_OK);
    finish(f, &k);
}

/* What Cloud Run shows anyone with Viewer on the project: the execution
 * resource of eid (its template holds the overrides applied) and its job,
 * fetched like a real client does, printed as one string (caller frees). */
static char *viewer_sees(const char *eid)
{
    cJSON *d = fake_call("GET", "/_fake/executions", NULL, NULL), *e;
    char path[1024], *out = NULL;
    size_t len = 0;

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "executions"))
    {
        cJSON *id = cJSON_GetObjectItem(e, "execution_id_env");
        cJSON *name = cJSON_GetObjectItem(e, "name");
        const char *jobs_end;
        char *parts[2] = {NULL, NULL};

        if (!cJSON_IsString(id) || strcmp(id->valuestring, eid) ||
            !cJSON_IsString(name))
            continue;
        for (int i = 0; i < 2; i++) {
            cJSON *r;
            long status = 0;

            if (i == 0) {
                snprintf(path, sizeof(path), "/v2/%s", name->valuestring);
            } else {
                jobs_end = strstr(name->valuestring, "/executions/");
                assert_non_null(jobs_end);
                snprintf(path, sizeof(path), "/v2/%.*s",
                         (int)(jobs_end - name->valuestring),
                         name->valuestring);
            }
            r = fake_call("GET", path, NULL, &status);
            assert_non_null(r);
            /* A per-execution job may be deleted already: then only the
             * execution is left to see. */
            if (status == 200)
                parts[i] = cJSON_PrintUnformatted(r);
            else
                assert_true(i == 1 && status == 404);
            cJSON_Delete(r);
        }
        assert_non_null(parts[0]);
        len = strlen(parts[0]) + (parts[1] ? strlen(parts[1]) : 0) + 2;
        out = malloc(len);
        snprintf(out, len, "%s\n%s", parts[0], parts[1] ? parts[1] : "");
        free(parts[0]);
        free(parts[1]);
        break;
    }
    cJSON_Delete(d);
    return out;
}

/* The largest command (RP_COMMAND_MAX, 256 KiB: 8 times Cloud Run's 32 KiB
 * a value, twice the kernel's 128 KiB a string) and a big COMMAND_ENV
 * travel through request.json, whole; a small command too: the execution
 * resource never shows a command. */
static void test_large_command(void **state)
{
    fx_t *f = *state;
    const char *tail = "'; echo ${#x} ${#BIG}";
    size_t n = RP_COMMAND_MAX - 3 - strlen(tail);
    char *cmd = malloc(RP_COMMAND_MAX + 1), *big = malloc(30001), out[64];
    char *seen;
    rp_jobspec_t spec;
    tjob_t j;
    rp_result_t res;
    char es[512];

    need_fake(f);
    /* x='aaaa...'; echo ${#x} $BIG-length: prints the lengths it got. */
    memcpy(cmd, "x='", 3);
    memset(cmd + 3, 'a', n);
    memcpy(cmd + 3 + n, tail, strlen(tail) + 1);
    assert_int_equal(strlen(cmd), RP_COMMAND_MAX);
    memset(big, 'b', 30000);
    big[30000] = '\0';
    spec_init(&spec, f, "large-1", cmd);
    rp_env_set(&spec.env, "BIG", big);
    rp_env_set(&spec.env, "BIG2", big);
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start(f->be, &spec, &j, &j.run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&j, 60));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    /* Template mode: the request rides in the claim, no object of its own. */
    assert_false(object_exists(f, "executions/large-1/request.json"));
    assert_true(object_exists(f, "executions/large-1/attempt-1.json"));
    assert_true(record(f, "large-1", &res));
    snprintf(out, sizeof(out), "%zu 30000\n", n);
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_int_equal(res.stdout_len, strlen(out));
    assert_memory_equal(res.stdout_data, out, strlen(out));
    rp_result_clear(&res);
    assert_non_null(seen = viewer_sees("large-1"));
    assert_non_null(strstr(seen, "\"RUNPOOL_REQUEST_REF\""));
    assert_non_null(strstr(seen, "executions/large-1/attempt-1.json"));
    assert_null(strstr(seen, "\"COMMAND\""));
    assert_null(strstr(seen, "\"COMMAND_ENV\""));
    assert_null(strstr(seen, "aaaa"));
    assert_null(strstr(seen, "bbbb"));
    free(seen);
    rp_env_clear(&spec.env);

    /* A small command and env: by reference all the same. */
    spec_init(&spec, f, "small-1", "echo small-secret-$TOKEN");
    rp_env_set(&spec.env, "TOKEN", "hunter2");
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start(f->be, &spec, &j, &j.run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_false(object_exists(f, "executions/small-1/request.json"));
    assert_true(record(f, "small-1", &res));
    assert_string_equal(res.stdout_data, "small-secret-hunter2\n");
    rp_result_clear(&res);
    assert_non_null(seen = viewer_sees("small-1"));
    assert_non_null(strstr(seen, "executions/small-1/attempt-1.json"));
    assert_null(strstr(seen, "\"COMMAND\""));
    assert_null(strstr(seen, "small-secret"));
    assert_null(strstr(seen, "hunter2"));
    free(seen);
    rp_env_clear(&spec.env);
    free(cmd);
    free(big);
}

/* 5xx while polling is retried; the request's timeout reaches the
 * executor, which records timed_out itself (overrides.timeout is above
 * it). */
static void test_poll_5xx_and_timeout(void **state)
{
    fx_t *f = *state;
    rp_jobspec_t spec;
    tjob_t j;
    rp_result_t res;
    char es[512];

    need_fake(f);
    fake_config("{\"faults\":[{\"route\":\"executions.list\",\"status\":503,"
                "\"count\":3},{\"route\":\"jobs.get\",\"status\":500,"
                "\"count\":1}]}");
    spec_init(&spec, f, "slow-1", "sleep 20");
    spec.timeout_s = 1;
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start(f->be, &spec, &j, &j.run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    finish(f, &j);
    assert_int_equal(stat_int(NULL, "faults_injected"), 4);
    assert_true(record(f, "slow-1", &res));
    assert_int_equal(res.status, RP_STATUS_TIMED_OUT);
    rp_result_clear(&res);
}

/* Cloud Run never starts it (queued for ever): its timeout has not begun,
 * so it is not timed_out; past RUNPOOL_CLOUD_RUN_QUEUE_MAX_S we cancel it
 * and say it never started (RP_ERR_UNAVAILABLE). */
static void test_queued_too_long(void **state)
{
    fx_t *f = *state;
    rp_jobspec_t spec;
    tjob_t j;
    char es[512], oc[32];

    set(f, "RUNPOOL_CLOUD_RUN_TIMEOUT_MARGIN_S", "0");
    set(f, "RUNPOOL_CLOUD_RUN_CANCEL_AFTER_S", "1");
    set(f, "RUNPOOL_CLOUD_RUN_QUEUE_MAX_S", "3");
    need_fake(f);
    fake_config("{\"exec_faults\":[{\"execution_id\":\"stuck-1\","
                "\"hang\":\"start\"}]}");
    spec_init(&spec, f, "stuck-1", "true");
    spec.timeout_s = 1;
    memset(&j, 0, sizeof(j));
    assert_int_equal(rp_backend_start(f->be, &spec, &j, &j.run, es, sizeof(es)),
                     RP_OK);
    /* Past timeout + margin + cancel_after (2 s) it is still waiting. */
    assert_false(wait_job(&j, 2));
    assert_int_equal(rp_backend_started_ms(f->be, j.run), 0);
    assert_true(wait_job(&j, 30));
    assert_int_equal(j.d.err, RP_ERR_UNAVAILABLE);
    assert_false(j.d.cancelled);
    assert_non_null(strstr(j.d.detail, "never started"));
    finish(f, &j);
    assert_int_equal(fake_exec_outcome("stuck-1", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "cancelled");
}

/* Queued longer than its timeout, then it runs a short command: the
 * timeout counts from the start (startTime), so it succeeds. (Before, the
 * clock began at jobs.run and it was cancelled as overdue at 4 s:
 * timeout 1 + margin 2 + cancel-after 1.) */
static void test_queued_then_runs(void **state)
{
    fx_t *f = *state;
    rp_jobspec_t spec;
    tjob_t j;
    rp_result_t res;
    char es[512];
    int64_t t0;

    set(f, "RUNPOOL_CLOUD_RUN_TIMEOUT_MARGIN_S", "2");
    set(f, "RUNPOOL_CLOUD_RUN_CANCEL_AFTER_S", "1");
    need_fake(f);
    fake_config("{\"exec_faults\":[{\"execution_id\":\"queued-1\","
                "\"start_latency_ms\":6000}]}");
    spec_init(&spec, f, "queued-1", "echo began");
    spec.timeout_s = 1;
    memset(&j, 0, sizeof(j));
    t0 = rp_time_mono_ms();
    assert_int_equal(rp_backend_start(f->be, &spec, &j, &j.run, es, sizeof(es)),
                     RP_OK);
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    assert_int_equal(j.d.exit_code, 0);
    assert_false(j.d.cancelled);
    assert_true(rp_time_mono_ms() - t0 >= 6000);
    /* The start was seen, after the queueing. */
    assert_true(rp_backend_started_ms(f->be, j.run) >= t0 + 5000);
    finish(f, &j);
    assert_true(record(f, "queued-1", &res));
    assert_int_equal(res.status, RP_STATUS_SUCCEEDED);
    assert_memory_equal(res.stdout_data, "began\n", 6);
    rp_result_clear(&res);
    assert_int_equal(stat_int("requests", "POST executions.cancel"), 0);
}

/* Per-execution mode: a cancelled execution's job is deleted too; a
 * detached one's is kept for the next owner. */
static void test_per_execution_cancel_detach(void **state)
{
    fx_t *f = *state;
    tjob_t j, k;
    char oc[32];

    set(f, "RUNPOOL_CLOUD_RUN_JOB_MODE", "per-execution");
    need_fake(f);
    start(f, &j, "pc-1", "sleep 60");
    start(f, &k, "pd-1", "sleep 3; echo kept");
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 2; i++)
        usleep(50 * 1000);
    assert_int_equal(stat_int(NULL, "live_processes"), 2);
    rp_backend_cancel(f->be, j.run);
    rp_backend_detach(f->be, k.run);
    assert_true(wait_job(&j, 30));
    assert_true(wait_job(&k, 30));
    assert_true(j.d.cancelled && k.d.cancelled);
    finish(f, &j);
    finish(f, &k);
    assert_non_null(strstr(j.d.detail, "was cancelled"));
    assert_int_equal(stat_int("requests", "POST executions.cancel"), 1);
    assert_int_equal(stat_int("requests", "DELETE jobs.delete"), 1);
    /* pc-1's job (and so its execution) is gone, pd-1's runs on. */
    assert_int_equal(fake_exec_outcome("pc-1", oc, sizeof(oc)), 0);
    assert_int_equal(fake_exec_outcome("pd-1", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "running");

    /* The next owner of pd-1 re-attaches, then deletes the job. */
    start(f, &k, "pd-1", "sleep 3; echo kept");
    assert_true(wait_job(&k, 30));
    assert_int_equal(k.d.err, RP_OK);
    assert_false(k.d.cancelled);
    finish(f, &k);
    assert_int_equal(stat_int("executions_by_execution_id", "pd-1"), 1);
    assert_int_equal(stat_int("requests", "DELETE jobs.delete"), 2);
}

/* The quota families bound the API calls however many runs there are:
 * jobs.run by the runs budget, gets and lists by the reads budget. */
static void test_rate_limit(void **state)
{
    fx_t *f = *state;
    enum { N = 8, RUNS = 4, READS = 6 };
    tjob_t j[N];
    char eid[32];
    int64_t t0;
    double secs;
    int runs, reads;
    rp_backend_quota_t q;

    unset(f, "RUNPOOL_CLOUD_RUN_MAX_RPS");
    set(f, "RUNPOOL_CLOUD_RUN_RUNS_RPS", "4");
    set(f, "RUNPOOL_CLOUD_RUN_RUNS_BURST", "1");
    set(f, "RUNPOOL_CLOUD_RUN_READS_RPS", "6");
    set(f, "RUNPOOL_CLOUD_RUN_READS_BURST", "2");
    set(f, "RUNPOOL_CLOUD_RUN_WRITES_RPS", "10");
    need_fake(f);
    t0 = rp_time_mono_ms();
    for (int i = 0; i < N; i++) {
        snprintf(eid, sizeof(eid), "rate-%d", i);
        start(f, &j[i], eid, "sleep 0.5");
    }
    for (int i = 0; i < N; i++) {
        assert_true(wait_job(&j[i], 60));
        assert_int_equal(j[i].d.err, RP_OK);
        finish(f, &j[i]);
    }
    secs = (double)(rp_time_mono_ms() - t0) / 1000.0;
    runs = stat_int("requests", "POST jobs.run");
    reads = stat_int("requests", "GET jobs.get") +
            stat_int("requests", "GET executions.get") +
            stat_int("requests", "GET executions.list");
    print_message("%d jobs.run, %d reads in %.2f s\n", runs, reads, secs);
    assert_int_equal(runs, N);
    assert_true(reads >= 1);
    if (runs > RUNS * secs + 1 + 1)
        fail_msg("%d jobs.run in %.2f s: over %d/s", runs, secs, RUNS);
    if (reads > READS * secs + 2 + 1)
        fail_msg("%d reads in %.2f s: over %d/s", reads, secs, READS);
    /* The families as the metrics show them. */
    assert_true(rp_backend_quota(f->be, 0, &q));
    assert_string_equal(q.family, "runs");
    assert_true(q.rate == RUNS);
    assert_int_equal((int)q.calls, runs);
    assert_true(q.waits > 0); /* 8 runs at once, a bucket of 1 */
    assert_true(rp_backend_quota(f->be, 1, &q));
    assert_string_equal(q.family, "reads");
    assert_int_equal((int)q.calls, reads);
    assert_true(rp_backend_quota(f->be, 2, &q));
    assert_string_equal(q.family, "writes");
    assert_false(rp_backend_quota(f->be, 3, &q));
}

/* An empty bucket holds no thread: with every token spoken for by other
 * runs, a cancel still goes out at once (executions.cancel takes none). */
static void test_cancel_not_behind_tokens(void **state)
{
    fx_t *f = *state;
    enum { N = 6 };
    tjob_t first, j[N];
    char eid[32];
    int64_t t0;

    set(f, "RUNPOOL_CLOUD_RUN_MAX_RPS", "2");
    set(f, "RUNPOOL_CLOUD_RUN_BURST", "1");
    set(f, "RUNPOOL_CLOUD_RUN_THREADS", "2");
    need_fake(f);
    start(f, &first, "tok-first", "sleep 60");
    for (int i = 0; i < 300 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    assert_int_equal(stat_int(NULL, "live_processes"), 1);
    for (int i = 0; i < N; i++) {
        snprintf(eid, sizeof(eid), "tok-%d", i);
        start(f, &j[i], eid, "sleep 60");
    }
    usleep(500 * 1000); /* the others now want more tokens than there are */
    t0 = rp_time_mono_ms();
    rp_backend_cancel(f->be, first.run);
    while (stat_int("requests", "POST executions.cancel") < 1 &&
           rp_time_mono_ms() - t0 < 10000)
        usleep(20 * 1000);
    print_message("executions.cancel after %lld ms\n",
                  (long long)(rp_time_mono_ms() - t0));
    assert_true(rp_time_mono_ms() - t0 < 1000);
    for (int i = 0; i < N; i++)
        rp_backend_cancel(f->be, j[i].run);
    assert_true(wait_job(&first, 60));
    assert_true(first.d.cancelled);
    finish(f, &first);
    for (int i = 0; i < N; i++) {
        assert_true(wait_job(&j[i], 60));
        assert_true(j[i].d.cancelled);
        finish(f, &j[i]);
    }
}

/* Deleted under our feet (by hand, by a retention policy): the run ends
 * with an error, never hangs. */
static void test_deleted_execution(void **state)
{
    fx_t *f = *state;
    tjob_t j;
    char path[1024];
    long status = 0;
    cJSON *d, *e, *r;
    const char *name = NULL;

    need_fake(f);
    start(f, &j, "del-1", "sleep 10");
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    /* Seen by a sweep first. */
    for (int i = 0; i < 100 && stat_int("requests", "GET executions.list") < 1;
         i++)
        usleep(50 * 1000);
    d = fake_call("GET", "/_fake/executions", NULL, NULL);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "executions"))
        name = cJSON_GetObjectItem(e, "name")->valuestring;
    assert_non_null(name);
    snprintf(path, sizeof(path), "/v2/%s", name);
    r = fake_call("DELETE", path, NULL, &status);
    assert_int_equal(status, 200);
    cJSON_Delete(r);
    cJSON_Delete(d);
    assert_true(wait_job(&j, 30));
    assert_true(j.d.err == RP_ERR_NOT_FOUND || j.d.err == RP_ERR_CANCELLED);
    assert_false(j.d.cancelled);
    finish(f, &j);
}

/* ------------------------------------------------------------------ */
/* Sweeps                                                              */

static uint64_t counter(fx_t *f, const char *name)
{
    const char *n;
    uint64_t v;

    for (int i = 0; rp_backend_counter(f->be, i, &n, &v); i++)
        if (!strcmp(n, name))
            return v;
    fail_msg("no counter %s", name);
    return 0;
}

/* Many executions, one executions.list call sees them all: no gets, far
 * fewer list calls than executions, and every one completed by a sweep. */
static void test_sweep_many(void **state)
{
    fx_t *f = *state;
    enum { N = 24 };
    tjob_t j[N];
    char eid[32], cmd[64], want[32];
    rp_result_t res;
    int lists;

    need_fake(f);
    for (int i = 0; i < N; i++) {
        snprintf(eid, sizeof(eid), "sw-%d", i);
        snprintf(cmd, sizeof(cmd), "sleep 1; echo sw-%d", i);
        start(f, &j[i], eid, cmd);
    }
    for (int i = 0; i < N; i++) {
        assert_true(wait_job(&j[i], 60));
        if (j[i].d.err != RP_OK)
            fail_msg("run %d: %s", i, j[i].d.detail);
        assert_int_equal(j[i].d.exit_code, 0);
        finish(f, &j[i]);
        snprintf(eid, sizeof(eid), "sw-%d", i);
        assert_true(record(f, eid, &res));
        snprintf(want, sizeof(want), "sw-%d\n", i);
        assert_memory_equal(res.stdout_data, want, strlen(want));
        rp_result_clear(&res);
    }
    lists = stat_int("requests", "GET executions.list");
    print_message("%d executions: %d list calls, %d gets\n", N, lists,
                  stat_int("requests", "GET executions.get"));
    assert_int_equal(stat_int("requests", "GET executions.get"), 0);
    assert_true(lists >= 1);
    assert_int_equal((int)counter(f, "completed_by_sweep"), N);
    assert_int_equal((int)counter(f, "straggler_gets"), 0);
    /* At most one sweep per 250 ms: bounded by time, not by N. */
    assert_true((uint64_t)lists <= counter(f, "sweep_pages"));
}

/* An execution the list does not show (the fake's list_lag_ms on a
 * successful jobs.run: a listing that lags behind the write) is a
 * straggler: found by its own executions.get, long before the listing
 * would show it. */
static void test_sweep_straggler(void **state)
{
    fx_t *f = *state;
    tjob_t j, k;
    int64_t t0;

    need_fake(f);
    start(f, &k, "sg-other", "sleep 1"); /* the job exists, sweeps run */
    assert_true(wait_job(&k, 30));
    assert_int_equal(k.d.err, RP_OK);
    finish(f, &k);
    fake_config("{\"reset_stats\":true,\"faults\":[{\"route\":\"jobs.run\","
                "\"after\":true,\"status\":200,\"list_lag_ms\":20000,"
                "\"count\":1}]}");
    t0 = rp_time_mono_ms();
    start(f, &j, "sg-1", "echo late");
    assert_true(wait_job(&j, 30));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    assert_int_equal(j.d.exit_code, 0);
    finish(f, &j);
    print_message("straggler done after %lld ms\n",
                  (long long)(rp_time_mono_ms() - t0));
    assert_true(rp_time_mono_ms() - t0 < 15000);
    assert_int_equal(stat_int(NULL, "faults_injected"), 1);
    assert_true(stat_int("requests", "GET executions.get") >= 1);
    assert_true(counter(f, "straggler_gets") >= 1);
    assert_int_equal(stat_int("executions_by_execution_id", "sg-1"), 1);
}

/* The execution we watch sits under executions we do not (made on the
 * same job by someone else): the sweep follows nextPageToken, two pages a
 * sweep, and goes on at the next sweep where it stopped. */
static void test_sweep_pages(void **state)
{
    fx_t *f = *state;
    enum { OTHERS = 30 };
    tjob_t j;
    rp_cloudrun_conf_t c;
    char id[64], path[256], es[256];
    long status = 0;
    int tokens = 0;
    cJSON *r, *e;

    set(f, "RUNPOOL_CLOUD_RUN_SWEEP_PAGES", "2");
    need_fake(f);
    start(f, &j, "deep-1", "sleep 3; echo deep");
    for (int i = 0; i < 200 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    assert_int_equal(stat_int(NULL, "live_processes"), 1);
    /* Newer executions of the same job, none ours (they fail at once). */
    assert_int_equal(rp_cloudrun_conf_read(lookup, f, &c, es, sizeof(es)),
                     RP_OK);
    rp_cloudrun_template_job_id(&c, f->url, id, sizeof(id));
    snprintf(es, sizeof(es),
             "{\"clear_exec_faults\":true,\"exec_faults\":[{\"job\":\"%s\","
             "\"exit_code\":1,\"count\":%d}]}",
             id, OTHERS);
    fake_config(es);
    snprintf(path, sizeof(path),
             "/v2/projects/test-project/locations/europe-west1/jobs/%s:run", id);
    for (int i = 0; i < OTHERS; i++) {
        r = fake_call("POST", path, "{}", &status);
        assert_int_equal(status, 200);
        cJSON_Delete(r);
    }
    fake_config("{\"reset_stats\":true}");
    assert_true(wait_job(&j, 60));
    if (j.d.err != RP_OK)
        fail_msg("%s", j.d.detail);
    assert_int_equal(j.d.exit_code, 0);
    finish(f, &j);
    /* Found by the sweeps, through later pages; no get was needed. */
    r = fake_call("GET", "/_fake/requests", NULL, NULL);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "requests"))
    {
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItem(e, "url"));

        if (u && strstr(u, "/executions?") && strstr(u, "pageToken="))
            tokens++;
    }
    cJSON_Delete(r);
    print_message("%d list calls with a pageToken\n", tokens);
    assert_true(tokens >= 2);
    assert_int_equal(stat_int("requests", "GET executions.get"), 0);
    assert_int_equal((int)counter(f, "straggler_gets"), 0);
}

/* A 429 on executions.list holds the reads family: the sweep waits and
 * lists again, the runs do not start gets of their own (no multiplied
 * calls), and jobs.run (the runs family) is not held. */
static void test_sweep_429(void **state)
{
    fx_t *f = *state;
    enum { N = 4 };
    tjob_t j[N];
    char eid[32];
    rp_backend_quota_t q;

    need_fake(f);
    fake_config("{\"faults\":[{\"route\":\"executions.list\",\"status\":429,"
                "\"count\":3}]}");
    for (int i = 0; i < N; i++) {
        snprintf(eid, sizeof(eid), "s429-%d", i);
        start(f, &j[i], eid, "sleep 0.5");
    }
    for (int i = 0; i < N; i++) {
        assert_true(wait_job(&j[i], 60));
        if (j[i].d.err != RP_OK)
            fail_msg("%s", j[i].d.detail);
        finish(f, &j[i]);
    }
    assert_int_equal(stat_int(NULL, "faults_injected"), 3);
    assert_int_equal(stat_int("responses_by_status", "429"), 3);
    assert_int_equal(stat_int("requests", "GET executions.get"), 0);
    assert_true(rp_backend_quota(f->be, 1, &q));
    assert_string_equal(q.family, "reads");
    assert_int_equal((int)q.throttled, 3);
    assert_true(rp_backend_quota(f->be, 0, &q));
    assert_int_equal((int)q.throttled, 0);
    assert_int_equal((int)q.calls, N);
}

/* Closing with runs in flight: reported cancelled, left running. */
static void test_close_leaves_running(void **state)
{
    fx_t *f = *state;
    tjob_t j;
    char oc[32];

    need_fake(f);
    start(f, &j, "close-1", "sleep 2");
    for (int i = 0; i < 100 && stat_int(NULL, "live_processes") < 1; i++)
        usleep(50 * 1000);
    rp_backend_release(f->be, j.run); /* as rp_worker_destroy does */
    rp_backend_destroy(f->be);
    f->be = NULL;
    assert_int_equal(j.done, 1);
    assert_true(j.d.cancelled);
    assert_int_equal(fake_exec_outcome("close-1", oc, sizeof(oc)), 1);
    assert_string_equal(oc, "running");
    assert_int_equal(stat_int("requests", "POST executions.cancel"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bodies_and_replies),
        cmocka_unit_test(test_attempt_record),
        cmocka_unit_test(test_jobenv_request_ref),
        cmocka_unit_test_setup_teardown(test_template_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_409, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_execution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5xx_after_create, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_reattach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reattach_by_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_403, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_5xx_and_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queued_too_long, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queued_then_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_per_execution_cancel_detach,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_not_behind_tokens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_execution, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_straggler, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_leaves_running, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
