/* rp_cloudrun — configuration, names, bodies and replies of the Cloud Run
 * Admin API v2 (see rp_cloudrun.h and /work/shared/reference section 1).
 */
#include "rp_cloudrun.h"
#include "rp_hash.h"
#include "rp_layout.h"
#include "rp_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>


#define RP_CLOUDRUN_PREFIX_DEFAULT "runpool"
#define RP_CLOUDRUN_ERRBODY_SHOW 200 /* bytes of a non-JSON error body shown */

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

typedef struct rp_cloudrun_reader {
    rp_cloudrun_lookup_fn *lookup;
    void *opaque;
} rp_cloudrun_reader_t;

static const char *rp_cloudrun_get(const rp_cloudrun_reader_t *r,
                                   const char *name)
{
    const char *v = r->lookup(name, r->opaque);

    return v && v[0] ? v : NULL;
}

static bool rp_cloudrun_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool rp_cloudrun_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Printable ASCII without spaces or quotes: safe in JSON, URLs and logs. */
static bool rp_cloudrun_plain(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == '"' || *s == '\\')
            return false;
    return true;
}

/* A project id or a region: min..max characters of [a-z0-9-], starting
 * with a letter and not ending with '-'. */
static bool rp_cloudrun_label_valid(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);

    if (n < min || n > max || !(s[0] >= 'a' && s[0] <= 'z') ||
        s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rp_cloudrun_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool rp_cloudrun_project_valid(const char *s)
{
    return rp_cloudrun_label_valid(s, 6, RP_CLOUDRUN_PROJECT_MAX);
}

static bool rp_cloudrun_region_valid(const char *s)
{
    return rp_cloudrun_label_valid(s, 2, RP_CLOUDRUN_REGION_MAX);
}

static bool rp_cloudrun_bucket_valid(const char *s)
{
    size_t n = strlen(s);

    if (n < 3 || n > RP_CLOUDRUN_BUCKET_MAX || !rp_cloudrun_lower_alnum(s[0]) ||
        !rp_cloudrun_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rp_cloudrun_lower_alnum(s[i]) && s[i] != '-' && s[i] != '_' &&
            s[i] != '.')
            return false;
    return true;
}

/* "1", "0.5", "2.25" or "1000m". */
static bool rp_cloudrun_cpu_valid(const char *s)
{
    size_t i = 0;

    while (rp_cloudrun_digit(s[i]))
        i++;
    if (i == 0)
        return false;
    if (s[i] == 'm')
        return s[i + 1] == '\0' && strtol(s, NULL, 10) > 0;
    if (s[i] == '.') {
        size_t j = ++i;

        while (rp_cloudrun_digit(s[i]))
            i++;
        if (i == j)
            return false;
    }
    return s[i] == '\0' && strtod(s, NULL) > 0;
}

/* "512Mi", "2Gi", "1G", "1073741824". */
static bool rp_cloudrun_memory_valid(const char *s)
{
    static const char *const units[] = {"", "k", "K", "M", "G", "T",
                                        "Ki", "Mi", "Gi", "Ti"};
    size_t i = 0;

    while (rp_cloudrun_digit(s[i]))
        i++;
    if (i == 0 || strtol(s, NULL, 10) <= 0)
        return false;
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++)
        if (!strcmp(s + i, units[u]))
            return true;
    return false;
}

static bool rp_cloudrun_sa_valid(const char *s)
{
    const char *at = strchr(s, '@');

    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (; *s; s++)
        if (!rp_cloudrun_lower_alnum(*s) && !(*s >= 'A' && *s <= 'Z') &&
            *s != '@' && *s != '.' && *s != '-' && *s != '_')
            return false;
    return true;
}

bool rp_cloudrun_job_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;

    if (n < 1 || n > RP_CLOUDRUN_JOB_ID_MAX || !(id[0] >= 'a' && id[0] <= 'z') ||
        id[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rp_cloudrun_lower_alnum(id[i]) && id[i] != '-')
            return false;
    return true;
}

bool rp_cloudrun_name_valid(const char *name)
{
    size_t n = name ? strnlen(name, RP_CLOUDRUN_NAME_MAX) : 0;

    if (n == 0 || n >= RP_CLOUDRUN_NAME_MAX || strncmp(name, "projects/", 9))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!rp_cloudrun_lower_alnum(c) && !(c >= 'A' && c <= 'Z') &&
            c != '.' && c != '_' && c != '~' && c != '/' && c != '-')
            return false;
    }
    return !strstr(name, "/../") && !strstr(name, "//");
}

/* A string setting: copied when set, else dflt (NULL = required). */
static rp_err_t rp_cloudrun_conf_str(const rp_cloudrun_reader_t *r,
                                     const char *name, const char *dflt,
                                     char *out, size_t out_size,
                                     bool (*valid)(const char *),
                                     const char *rule, char *errstr,
                                     size_t errstr_size)
{
    const char *v = rp_cloudrun_get(r, name);

    if (!v && !dflt)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: required for the cloudrun backend (%s)", name,
                       rule);
    if (!v)
        v = dflt;
    if (strlen(v) >= out_size || !rp_cloudrun_plain(v) || (valid && !valid(v)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: '%.80s' is not valid (%s)", name, v, rule);
    memcpy(out, v, strlen(v) + 1);
    return RP_OK;
}

/* An integer setting in [min, max]; digits only, plus `suffix` if given. */
static rp_err_t rp_cloudrun_conf_int(const rp_cloudrun_reader_t *r,
                                     const char *name, int dflt, int min,
                                     int max, const char *suffix, int *out,
                                     char *errstr, size_t errstr_size)
{
    const char *v = rp_cloudrun_get(r, name);
    long n = 0;
    size_t i;

    if (!v) {
        *out = dflt;
        return RP_OK;
    }
    for (i = 0; rp_cloudrun_digit(v[i]) && n <= max; i++)
        n = n * 10 + (v[i] - '0');
    if (i == 0 || n < min || n > max ||
        (v[i] && (!suffix || strcmp(v + i, suffix))))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: '%.40s' is not an integer from %d to %d", name, v,
                       min, max);
    *out = (int)n;
    return RP_OK;
}

/* One rate family's bucket: rps defaults to _MAX_RPS when set, else dflt;
 * burst to _BURST when set, else to the family's rps. c: _MAX_RPS and
 * _BURST read already. */
static rp_err_t rp_cloudrun_conf_family(const rp_cloudrun_reader_t *r,
                                        const rp_cloudrun_conf_t *c,
                                        const char *rps_name,
                                        const char *burst_name, int dflt,
                                        int *rps, int *burst, char *errstr,
                                        size_t errstr_size)
{
    rp_err_t err;

    if ((err = rp_cloudrun_conf_int(r, rps_name,
                                    c->max_rps_set ? c->max_rps : dflt, 1,
                                    10000, NULL, rps, errstr, errstr_size)))
        return err;
    return rp_cloudrun_conf_int(r, burst_name, c->burst ? c->burst : *rps, 1,
                                10000, NULL, burst, errstr, errstr_size);
}

rp_err_t rp_cloudrun_conf_read(rp_cloudrun_lookup_fn *lookup, void *opaque,
                               rp_cloudrun_conf_t *c, char *errstr,
                               size_t errstr_size)
{
    rp_cloudrun_reader_t r = {lookup, opaque};
    const char *v;
    char bucket[RP_CLOUDRUN_BUCKET_MAX + 8];
    rp_err_t err;
    size_t n;

    memset(c, 0, sizeof(*c));
    if (!lookup)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "cloudrun backend: no settings lookup");
    if ((err = rp_cloudrun_conf_str(&r, "GCP_PROJECT_ID", NULL, c->project,
                                    sizeof(c->project),
                                    rp_cloudrun_project_valid,
                                    "a project id: 6 to 30 of [a-z0-9-]",
                                    errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_str(&r, "GCP_REGION", NULL, c->region,
                                    sizeof(c->region), rp_cloudrun_region_valid,
                                    "a region such as europe-west1", errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_str(&r, "SANDBOX_EXECUTOR_IMAGE", NULL,
                                    c->image, sizeof(c->image), NULL,
                                    "the runpool-executor container image",
                                    errstr, errstr_size)))
        return err;
    /* A bucket name, or gs://bucket for those who write it that way. */
    if ((v = rp_cloudrun_get(&r, "SANDBOX_STATE_BUCKET"))) {
        if (!strncmp(v, "gs://", 5))
            v += 5;
        snprintf(bucket, sizeof(bucket), "%s", v);
        n = strlen(bucket);
        if (n > 0 && bucket[n - 1] == '/')
            bucket[n - 1] = '\0';
        if (strlen(v) > RP_CLOUDRUN_BUCKET_MAX + 1 ||
            !rp_cloudrun_bucket_valid(bucket))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "SANDBOX_STATE_BUCKET: '%.80s' is not a bucket "
                           "name",
                           v);
        memcpy(c->state_bucket, bucket, strlen(bucket) + 1);
        snprintf(c->state_url, sizeof(c->state_url), "gs://%s",
                 c->state_bucket);
    }
    if ((err = rp_cloudrun_conf_int(&r, "SANDBOX_JOB_TIMEOUT", 600, 1,
                                    RP_CLOUDRUN_TIMEOUT_MAX_S, "s",
                                    &c->job_timeout_s, errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_str(&r, "SANDBOX_JOB_MEMORY", "512Mi",
                                    c->memory, sizeof(c->memory),
                                    rp_cloudrun_memory_valid,
                                    "a quantity such as 512Mi or 2Gi", errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_str(&r, "SANDBOX_JOB_CPU", "1", c->cpu,
                                    sizeof(c->cpu), rp_cloudrun_cpu_valid,
                                    "cpus such as 1, 2 or 1000m", errstr,
                                    errstr_size)))
        return err;

    if ((v = rp_cloudrun_get(&r, "RUNPOOL_CLOUD_RUN_ENDPOINT"))) {
        n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        if (n >= sizeof(c->endpoint) || !rp_cloudrun_plain(v) ||
            (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) ||
            n <= (size_t)(v[4] == 's' ? 8 : 7))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "RUNPOOL_CLOUD_RUN_ENDPOINT: '%.80s' is not an "
                           "http:// or https:// URL",
                           v);
        memcpy(c->endpoint, v, n);
        c->endpoint[n] = '\0';
        c->endpoint_set = true;
    } else {
        snprintf(c->endpoint, sizeof(c->endpoint), "%s",
                 RP_CLOUDRUN_ENDPOINT_DEFAULT);
    }
    v = rp_cloudrun_get(&r, "RUNPOOL_CLOUD_RUN_JOB_MODE");
    if (!v || !strcmp(v, "template"))
        c->mode = RP_CLOUDRUN_MODE_TEMPLATE;
    else if (!strcmp(v, "per-execution"))
        c->mode = RP_CLOUDRUN_MODE_PER_EXECUTION;
    else
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "RUNPOOL_CLOUD_RUN_JOB_MODE: '%.40s' is not template "
                       "or per-execution",
                       v);
    if ((err = rp_cloudrun_conf_str(&r, "RUNPOOL_CLOUD_RUN_JOB_PREFIX",
                                    RP_CLOUDRUN_PREFIX_DEFAULT, c->job_prefix,
                                    sizeof(c->job_prefix),
                                    rp_cloudrun_job_id_valid,
                                    "1 to 20 of [a-z0-9-], a letter first",
                                    errstr, errstr_size)))
        return err;
    if (rp_cloudrun_get(&r, "RUNPOOL_CLOUD_RUN_SERVICE_ACCOUNT") &&
        (err = rp_cloudrun_conf_str(&r, "RUNPOOL_CLOUD_RUN_SERVICE_ACCOUNT",
                                    NULL, c->service_account,
                                    sizeof(c->service_account),
                                    rp_cloudrun_sa_valid,
                                    "a service account e-mail", errstr,
                                    errstr_size)))
        return err;
    /* The old single bucket: when set, the default of every family. */
    if ((err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_MAX_RPS", 0, 1,
                                    10000, NULL, &c->max_rps, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_BURST", c->max_rps,
                                    1, 10000, NULL, &c->burst, errstr,
                                    errstr_size)))
        return err;
    c->max_rps_set = c->max_rps > 0;
    if ((err = rp_cloudrun_conf_family(&r, c, "RUNPOOL_CLOUD_RUN_RUNS_RPS",
                                       "RUNPOOL_CLOUD_RUN_RUNS_BURST", 3,
                                       &c->runs_rps, &c->runs_burst, errstr,
                                       errstr_size)) ||
        (err = rp_cloudrun_conf_family(&r, c, "RUNPOOL_CLOUD_RUN_READS_RPS",
                                       "RUNPOOL_CLOUD_RUN_READS_BURST", 10,
                                       &c->reads_rps, &c->reads_burst, errstr,
                                       errstr_size)) ||
        (err = rp_cloudrun_conf_family(&r, c, "RUNPOOL_CLOUD_RUN_WRITES_RPS",
                                       "RUNPOOL_CLOUD_RUN_WRITES_BURST", 3,
                                       &c->writes_rps, &c->writes_burst,
                                       errstr, errstr_size)) ||
        /* Template mode: gets are for stragglers only, the sweeps keep
         * the rest of the reads; per-execution mode polls by get. */
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_GET_RPS",
                                    c->mode == RP_CLOUDRUN_MODE_PER_EXECUTION ||
                                            c->reads_rps < 5
                                        ? c->reads_rps
                                        : 5,
                                    1,
                                    10000, NULL, &c->get_rps, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_SWEEP_MS", 250, 0,
                                    600000, NULL, &c->sweep_ms, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_SWEEP_PAGES", 4, 1,
                                    100, NULL, &c->sweep_pages, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_QUEUE_MAX_S", 900, 1,
                                    7 * 86400, NULL, &c->queue_max_s, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_POLL_MIN_MS", 1000,
                                    10, 600000, NULL, &c->poll_min_ms, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_POLL_MAX_MS", 15000,
                                    c->poll_min_ms, 3600000, NULL,
                                    &c->poll_max_ms, errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_THREADS", 8, 1, 64,
                                    NULL, &c->threads, errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_TIMEOUT_MARGIN_S",
                                    30, 0, 3600, NULL, &c->timeout_margin_s,
                                    errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_CANCEL_AFTER_S", 60,
                                    0, 86400, NULL, &c->cancel_after_s, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_HTTP_TIMEOUT_MS",
                                    30000, 100, 600000, NULL,
                                    &c->http_timeout_ms, errstr,
                                    errstr_size)) ||
        /* Longer than one API call may take: a jobs.run still in flight
         * when its sender died has landed by then. */
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_SETTLE_MS",
                                    c->http_timeout_ms + 15000, 0, 3600000,
                                    NULL, &c->settle_ms, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_RETRY_BASE_MS", 500,
                                    1, 600000, NULL, &c->retry_base_ms, errstr,
                                    errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_RETRY_CAP_MS",
                                    c->retry_base_ms > 30000 ? c->retry_base_ms
                                                             : 30000,
                                    c->retry_base_ms, 3600000, NULL,
                                    &c->retry_cap_ms, errstr, errstr_size)) ||
        (err = rp_cloudrun_conf_int(&r, "RUNPOOL_CLOUD_RUN_RETRY_MAX_S", 600, 1,
                                    86400, NULL, &c->retry_max_s, errstr,
                                    errstr_size)))
        return err;
    return RP_OK;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

bool rp_cloudrun_parent(const rp_cloudrun_conf_t *conf, char *out,
                        size_t out_size)
{
    int n = snprintf(out, out_size, "projects/%s/locations/%s", conf->project,
                     conf->region);

    return n > 0 && (size_t)n < out_size;
}

/* FNV-1a of one field: names only need to differ, not to resist anyone.
 * The values are part of the template job's name: never change them. */
static uint64_t rp_cloudrun_fnv(uint64_t h, const char *s)
{
    h = rp_hash_fnv1a64_str(h, s);
    return rp_hash_fnv1a64(h, "\xff", 1); /* field separator: ("ab","c") != ("a","bc") */
}

void rp_cloudrun_template_job_id(const rp_cloudrun_conf_t *conf,
                                 const char *state_url, char *out,
                                 size_t out_size)
{
    char timeout[16];
    uint64_t h = RP_HASH_FNV1A64_INIT;

    snprintf(timeout, sizeof(timeout), "%d", conf->job_timeout_s);
    h = rp_cloudrun_fnv(h, conf->image);
    h = rp_cloudrun_fnv(h, conf->cpu);
    h = rp_cloudrun_fnv(h, conf->memory);
    h = rp_cloudrun_fnv(h, timeout);
    h = rp_cloudrun_fnv(h, conf->service_account);
    h = rp_cloudrun_fnv(h, state_url);
    snprintf(out, out_size, "%s-%016llx", conf->job_prefix,
             (unsigned long long)h);
}

void rp_cloudrun_execution_job_id(const rp_cloudrun_conf_t *conf,
                                  const char *execution_id, char *out,
                                  size_t out_size)
{
    /* prefix '-' middle '-' 8 hex <= RP_CLOUDRUN_JOB_ID_MAX */
    size_t room = RP_CLOUDRUN_JOB_ID_MAX - strlen(conf->job_prefix) - 10;
    char mid[RP_CLOUDRUN_JOB_ID_MAX + 1];
    uint64_t h = rp_cloudrun_fnv(RP_HASH_FNV1A64_INIT, execution_id);
    size_t m = 0;

    for (size_t i = 0; execution_id[i] && m < room; i++) {
        char c = execution_id[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!rp_cloudrun_lower_alnum(c))
            c = '-';
        if (c == '-' && (m == 0 || mid[m - 1] == '-'))
            continue;
        mid[m++] = c;
    }
    while (m > 0 && mid[m - 1] == '-')
        m--;
    mid[m] = '\0';
    snprintf(out, out_size, "%s-%s%s%08x", conf->job_prefix, mid, m ? "-" : "",
             (unsigned)(h ^ (h >> 32)));
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */

static cJSON *rp_cloudrun_env_array(const rp_env_t *env)
{
    cJSON *arr = cJSON_CreateArray(), *e;

    for (size_t i = 0; arr && env && i < env->n; i++) {
        if (!(e = cJSON_CreateObject()) || !cJSON_AddItemToArray(arr, e) ||
            !cJSON_AddStringToObject(e, "name", env->vars[i].name) ||
            !cJSON_AddStringToObject(e, "value", env->vars[i].value)) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static char *rp_cloudrun_print(cJSON *doc, bool ok)
{
    char *s = ok ? cJSON_PrintUnformatted(doc) : NULL;

    cJSON_Delete(doc);
    return s;
}

char *rp_cloudrun_job_body(const rp_cloudrun_conf_t *conf, const rp_env_t *env,
                           int timeout_s)
{
    cJSON *doc = cJSON_CreateObject(), *labels, *et, *tt, *cs, *c, *lim, *res,
          *e;
    char t[32];
    bool ok;

    snprintf(t, sizeof(t), "%ds", timeout_s);
    ok = doc && (labels = cJSON_AddObjectToObject(doc, "labels")) &&
         cJSON_AddStringToObject(labels, "managed-by", "runpool") &&
         (et = cJSON_AddObjectToObject(doc, "template")) &&
         cJSON_AddNumberToObject(et, "taskCount", 1) &&
         (tt = cJSON_AddObjectToObject(et, "template")) &&
         (cs = cJSON_AddArrayToObject(tt, "containers")) &&
         (c = cJSON_CreateObject()) && cJSON_AddItemToArray(cs, c) &&
         cJSON_AddStringToObject(c, "name", RP_CLOUDRUN_CONTAINER) &&
         cJSON_AddStringToObject(c, "image", conf->image) &&
         (e = rp_cloudrun_env_array(env)) && cJSON_AddItemToObject(c, "env", e) &&
         (res = cJSON_AddObjectToObject(c, "resources")) &&
         (lim = cJSON_AddObjectToObject(res, "limits")) &&
         cJSON_AddStringToObject(lim, "cpu", conf->cpu) &&
         cJSON_AddStringToObject(lim, "memory", conf->memory) &&
         cJSON_AddStringToObject(tt, "timeout", t) &&
         /* In a proto oneof: omitted means the default of 3 retries, and a
          * retried task would run the command twice. */
         cJSON_AddNumberToObject(tt, "maxRetries", 0) &&
         (!conf->service_account[0] ||
          cJSON_AddStringToObject(tt, "serviceAccount",
                                  conf->service_account));
    return rp_cloudrun_print(doc, ok);
}

char *rp_cloudrun_run_body(const rp_env_t *env, int timeout_s)
{
    cJSON *doc = cJSON_CreateObject(), *ov, *cos, *co, *e;
    char t[32];
    bool ok;

    snprintf(t, sizeof(t), "%ds", timeout_s);
    ok = doc && (ov = cJSON_AddObjectToObject(doc, "overrides")) &&
         cJSON_AddNumberToObject(ov, "taskCount", 1) &&
         (timeout_s <= 0 || cJSON_AddStringToObject(ov, "timeout", t));
    if (ok && env)
        ok = (cos = cJSON_AddArrayToObject(ov, "containerOverrides")) &&
             (co = cJSON_CreateObject()) && cJSON_AddItemToArray(cos, co) &&
             cJSON_AddStringToObject(co, "name", RP_CLOUDRUN_CONTAINER) &&
             (e = rp_cloudrun_env_array(env)) &&
             cJSON_AddItemToObject(co, "env", e);
    return rp_cloudrun_print(doc, ok);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

static const char *rp_cloudrun_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Counts and millisecond times are far below 2^62; beyond, clamped. */
#define RP_CLOUDRUN_COUNT_MAX 4611686018427387904L

/* A count that may come as a number or an int64-style string; 0 absent. */
static long rp_cloudrun_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    /* Clamped: converting a double beyond long's range is undefined
     * (fuzz_google found a 27-digit succeededCount). */
    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble > -RP_CLOUDRUN_COUNT_MAX))
            return -RP_CLOUDRUN_COUNT_MAX;
        if (!(v->valuedouble < RP_CLOUDRUN_COUNT_MAX))
            return RP_CLOUDRUN_COUNT_MAX;
        return (long)v->valuedouble;
    }
    if (cJSON_IsString(v))
        return strtol(v->valuestring, NULL, 10);
    return 0;
}

/* Copy s into out, control characters as spaces, cut to fit. */
static void rp_cloudrun_copy_text(char *out, size_t out_size, const char *s,
                                  size_t len)
{
    size_t n = 0;

    if (out_size == 0)
        return;
    for (size_t i = 0; s && i < len && s[i] && n + 1 < out_size; i++)
        out[n++] = (unsigned char)s[i] < ' ' ? ' ' : s[i];
    out[n] = '\0';
}

void rp_cloudrun_error_message(long status, const char *body, size_t len,
                               char *out, size_t out_size)
{
    cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error"), *d, *fv;
    const char *msg = rp_cloudrun_str(err, "message");
    const char *st = rp_cloudrun_str(err, "status");
    size_t n;
    int k = 0;

    if (!msg) {
        n = (size_t)snprintf(out, out_size, "HTTP %ld: ", status);
        if (n < out_size)
            rp_cloudrun_copy_text(out + n, out_size - n, body,
                                  len < RP_CLOUDRUN_ERRBODY_SHOW
                                      ? len
                                      : RP_CLOUDRUN_ERRBODY_SHOW);
        goto out;
    }
    n = (size_t)snprintf(out, out_size, "HTTP %ld %s: ", status, st ? st : "");
    if (n < out_size)
        rp_cloudrun_copy_text(out + n, out_size - n, msg, strlen(msg));
    /* google.rpc.BadRequest: say which fields were wrong. */
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(err, "details"))
    {
        cJSON_ArrayForEach(fv,
                           cJSON_GetObjectItemCaseSensitive(d, "fieldViolations"))
        {
            const char *f = rp_cloudrun_str(fv, "field");
            const char *desc = rp_cloudrun_str(fv, "description");

            n = strlen(out);
            if (n + 4 >= out_size)
                break;
            snprintf(out + n, out_size - n, "%s%s: %s", k++ ? "; " : " (",
                     f ? f : "?", desc ? desc : "?");
        }
    }
    n = strlen(out);
    if (k && n + 1 < out_size)
        snprintf(out + n, out_size - n, ")");
out:
    cJSON_Delete(doc);
}

rp_err_t rp_cloudrun_run_reply(const char *body, size_t len, char *name,
                               size_t name_size, char *errstr,
                               size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const char *n =
        rp_cloudrun_str(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "name");
    rp_err_t err = RP_OK;

    if (!n || !rp_cloudrun_name_valid(n) || strlen(n) >= name_size ||
        !strstr(n, "/executions/"))
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "jobs.run reply has no execution name in metadata.name");
    else
        memcpy(name, n, strlen(n) + 1);
    cJSON_Delete(doc);
    return err;
}

const char *rp_cloudrun_outcome_str(rp_cloudrun_outcome_t o)
{
    switch (o) {
    case RP_CLOUDRUN_RUNNING: return "running";
    case RP_CLOUDRUN_SUCCEEDED: return "succeeded";
    case RP_CLOUDRUN_FAILED: return "failed";
    case RP_CLOUDRUN_CANCELLED: return "cancelled";
    case RP_CLOUDRUN_DELETED: return "deleted";
    }
    return "?";
}

/* The EXECUTION_ID variable of a TaskTemplate-like object's containers. */
static void rp_cloudrun_env_eid(const cJSON *tmpl, char *out, size_t out_size)
{
    const cJSON *c, *e;

    out[0] = '\0';
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(tmpl, "containers"))
    {
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(c, "env"))
        {
            const char *n = rp_cloudrun_str(e, "name");
            const char *v = rp_cloudrun_str(e, "value");

            if (n && v && !strcmp(n, "EXECUTION_ID") && strlen(v) < out_size) {
                memcpy(out, v, strlen(v) + 1);
                return;
            }
        }
    }
}

static void rp_cloudrun_exec_fill(const cJSON *ex, rp_cloudrun_exec_t *out)
{
    const cJSON *c, *done = NULL;
    const char *state = NULL, *reason = NULL, *msg = NULL, *ct;
    long tasks, ok, failed, cancelled;

    memset(out, 0, sizeof(*out));
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ex, "conditions"))
    {
        const char *t = rp_cloudrun_str(c, "type");

        if (t && !strcmp(t, "Completed"))
            done = c;
    }
    if (done) {
        state = rp_cloudrun_str(done, "state");
        reason = rp_cloudrun_str(done, "executionReason");
        if (!reason)
            reason = rp_cloudrun_str(done, "reason");
        msg = rp_cloudrun_str(done, "message");
    }
    if (msg)
        rp_cloudrun_copy_text(out->message, sizeof(out->message), msg,
                              strlen(msg));
    rp_cloudrun_env_eid(cJSON_GetObjectItemCaseSensitive(ex, "template"),
                        out->execution_id, sizeof(out->execution_id));
    if ((ct = rp_cloudrun_str(ex, "createTime")) &&
        rp_time_parse_rfc3339(ct, &out->create_ms) != 0)
        out->create_ms = 0;
    if ((ct = rp_cloudrun_str(ex, "startTime")) &&
        rp_time_parse_rfc3339(ct, &out->start_ms) != 0)
        out->start_ms = 0;

    out->outcome = RP_CLOUDRUN_RUNNING;
    if (!rp_cloudrun_str(ex, "completionTime"))
        return;
    if (state && !strcmp(state, "CONDITION_SUCCEEDED")) {
        out->outcome = RP_CLOUDRUN_SUCCEEDED;
        return;
    }
    if (state && !strcmp(state, "CONDITION_FAILED")) {
        if (reason && !strcmp(reason, "CANCELLED"))
            out->outcome = RP_CLOUDRUN_CANCELLED;
        else if (reason && !strcmp(reason, "DELETED"))
            out->outcome = RP_CLOUDRUN_DELETED;
        else
            out->outcome = RP_CLOUDRUN_FAILED;
        return;
    }
    if (state) /* PENDING / RECONCILING */
        return;
    /* No Completed condition: the counts say it (absent = 0). */
    tasks = rp_cloudrun_num(ex, "taskCount");
    ok = rp_cloudrun_num(ex, "succeededCount");
    failed = rp_cloudrun_num(ex, "failedCount");
    cancelled = rp_cloudrun_num(ex, "cancelledCount");
    if (cancelled > 0)
        out->outcome = RP_CLOUDRUN_CANCELLED;
    else if (failed > 0)
        out->outcome = RP_CLOUDRUN_FAILED;
    else if (ok >= (tasks > 0 ? tasks : 1))
        out->outcome = RP_CLOUDRUN_SUCCEEDED;
}

rp_err_t rp_cloudrun_parse_execution(const char *body, size_t len,
                                     rp_cloudrun_exec_t *out, char *errstr,
                                     size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    rp_err_t err = RP_OK;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(doc) || !rp_cloudrun_str(doc, "name"))
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "not an Execution (no name)");
    else
        rp_cloudrun_exec_fill(doc, out);
    cJSON_Delete(doc);
    return err;
}

/* An executions.list reply's nextPageToken into next ("" stays when there
 * is none); RP_ERR_PROTOCOL when it does not fit or is not plain. */
static rp_err_t rp_cloudrun_next_token(const cJSON *doc, char *next,
                                       size_t next_size, char *errstr,
                                       size_t errstr_size)
{
    const char *tok = rp_cloudrun_str(doc, "nextPageToken");

    if (!tok || !tok[0])
        return RP_OK;
    if (strlen(tok) >= next_size || !rp_cloudrun_plain(tok))
        return rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                       "executions.list: unusable nextPageToken");
    memcpy(next, tok, strlen(tok) + 1);
    return RP_OK;
}

rp_err_t rp_cloudrun_find_in_list(const char *body, size_t len,
                                  const char *execution_id,
                                  int64_t not_before_ms, char *found,
                                  size_t found_size, char *next,
                                  size_t next_size, bool *older, char *errstr,
                                  size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *ex;
    rp_cloudrun_exec_t e;
    bool all_older = true;
    rp_err_t err = RP_OK;

    found[0] = next[0] = '\0';
    if (!cJSON_IsObject(doc)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "executions.list reply is not a JSON object");
        goto out;
    }
    cJSON_ArrayForEach(ex, cJSON_GetObjectItemCaseSensitive(doc, "executions"))
    {
        const char *name = rp_cloudrun_str(ex, "name");

        rp_cloudrun_exec_fill(ex, &e);
        if (!not_before_ms || !e.create_ms || e.create_ms >= not_before_ms)
            all_older = false;
        if (found[0] || !name || strcmp(e.execution_id, execution_id))
            continue;
        if (!rp_cloudrun_name_valid(name) || strlen(name) >= found_size) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "executions.list: unusable execution name");
            goto out;
        }
        memcpy(found, name, strlen(name) + 1);
    }
    if ((err = rp_cloudrun_next_token(doc, next, next_size, errstr,
                                      errstr_size)))
        goto out;
    *older = all_older && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                              doc, "executions")) > 0;
out:
    cJSON_Delete(doc);
    return err;
}

rp_err_t rp_cloudrun_parse_page(const char *body, size_t len,
                                rp_cloudrun_page_cb *cb, void *opaque,
                                char *next, size_t next_size,
                                int64_t *last_create_ms, int *n, char *errstr,
                                size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *ex;
    rp_cloudrun_exec_t e;
    rp_err_t err = RP_OK;

    next[0] = '\0';
    *last_create_ms = 0;
    *n = 0;
    if (!cJSON_IsObject(doc)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "executions.list reply is not a JSON object");
        goto out;
    }
    if ((err = rp_cloudrun_next_token(doc, next, next_size, errstr,
                                      errstr_size)))
        goto out;
    cJSON_ArrayForEach(ex, cJSON_GetObjectItemCaseSensitive(doc, "executions"))
    {
        const char *name = rp_cloudrun_str(ex, "name");

        rp_cloudrun_exec_fill(ex, &e);
        (*n)++;
        *last_create_ms = e.create_ms;
        if (!name || !rp_cloudrun_name_valid(name))
            continue; /* not ours to watch: a name we could not have sent */
        if (cb(opaque, name, &e))
            break;
    }
out:
    cJSON_Delete(doc);
    return err;
}

rp_err_t rp_cloudrun_parse_job(const char *body, size_t len,
                               rp_cloudrun_job_t *out, char *errstr,
                               size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(doc, "terminalCondition");
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "template"), "template");
    const cJSON *c0 = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(tt, "containers"), 0);
    const char *type = rp_cloudrun_str(tc, "type");
    const char *state = rp_cloudrun_str(tc, "state");
    const char *msg = rp_cloudrun_str(tc, "message");
    const char *img = rp_cloudrun_str(c0, "image");
    rp_err_t err = RP_OK;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(doc) || !rp_cloudrun_str(doc, "name")) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "not a Job (no name)");
        goto out;
    }
    out->state = RP_CLOUDRUN_JOB_RECONCILING;
    if (type && !strcmp(type, "Ready") && state &&
        !strcmp(state, "CONDITION_SUCCEEDED"))
        out->state = RP_CLOUDRUN_JOB_READY;
    else if (state && !strcmp(state, "CONDITION_FAILED"))
        out->state = RP_CLOUDRUN_JOB_FAILED;
    if (msg)
        rp_cloudrun_copy_text(out->message, sizeof(out->message), msg,
                              strlen(msg));
    if (img)
        rp_cloudrun_copy_text(out->image, sizeof(out->image), img, strlen(img));
    rp_cloudrun_env_eid(tt, out->execution_id, sizeof(out->execution_id));
out:
    cJSON_Delete(doc);
    return err;
}

/* ------------------------------------------------------------------ */
/* Attempt record                                                      */

void rp_cloudrun_attempt_key(const char *execution_id, int n, char *out,
                             size_t out_size)
{
    char file[48];

    if (n <= 0)
        snprintf(file, sizeof(file), "attempt.json");
    else
        snprintf(file, sizeof(file), "attempt-%d.json", n);
    rp_layout_execution_key(execution_id, file, out, out_size);
}

void rp_cloudrun_attempt_exec_key(const char *execution_id, int n, char *out,
                                  size_t out_size)
{
    char file[48];

    snprintf(file, sizeof(file), "attempt-%d.execution.json", n < 0 ? 0 : n);
    rp_layout_execution_key(execution_id, file, out, out_size);
}

void rp_cloudrun_attempt_prefix(const char *execution_id, char *out,
                                size_t out_size)
{
    /* "attempt" is a valid file name: the key is built the same way, and
     * every attempt record's key starts with it. */
    rp_layout_execution_key(execution_id, "attempt", out, out_size);
}

rp_cloudrun_key_kind_t rp_cloudrun_attempt_key_kind(const char *key, int *n)
{
    const char *f = strrchr(key, '/');
    long v = 0;
    int digits = 0;

    f = f ? f + 1 : key;
    if (!strcmp(f, "attempt.json")) {
        *n = 0;
        return RP_CLOUDRUN_KEY_CLAIM;
    }
    if (strncmp(f, "attempt-", 8))
        return RP_CLOUDRUN_KEY_OTHER;
    for (f += 8; *f >= '0' && *f <= '9' && digits < 6; f++, digits++)
        v = v * 10 + (*f - '0');
    if (!digits || (digits > 1 && f[-digits] == '0'))
        return RP_CLOUDRUN_KEY_OTHER;
    *n = (int)v;
    if (!strcmp(f, ".json") && v > 0)
        return RP_CLOUDRUN_KEY_CLAIM;
    if (!strcmp(f, ".execution.json"))
        return RP_CLOUDRUN_KEY_EXEC;
    return RP_CLOUDRUN_KEY_OTHER;
}

char *rp_cloudrun_attempt_json(const rp_cloudrun_attempt_t *a)
{
    cJSON *doc = cJSON_CreateObject();
    bool ok;

    ok = doc && cJSON_AddStringToObject(doc, "execution_id", a->execution_id) &&
         cJSON_AddStringToObject(doc, "state",
                                 a->execution[0] ? "running" : "starting") &&
         (a->n <= 0 || cJSON_AddNumberToObject(doc, "attempt", a->n)) &&
         cJSON_AddStringToObject(doc, "job", a->job) &&
         (!a->execution[0] ||
          cJSON_AddStringToObject(doc, "execution", a->execution)) &&
         cJSON_AddNumberToObject(doc, "created_ms", (double)a->created_ms) &&
         cJSON_AddNumberToObject(doc, "run_at_ms", (double)a->run_at_ms) &&
         cJSON_AddStringToObject(doc, "worker", a->worker);
    return rp_cloudrun_print(doc, ok);
}

char *rp_cloudrun_attempt_json_with(const rp_cloudrun_attempt_t *a,
                                    const char *request)
{
    static const char member[] = ",\"request\":";
    char *head = rp_cloudrun_attempt_json(a), *out;
    size_t hl, rl;

    if (!head || !request)
        return head;
    /* Splice the document (valid JSON of ours) in before the closing
     * brace: no parse and re-print of up to 4 MiB. */
    hl = strlen(head);
    rl = strlen(request);
    if (hl < 2 || head[hl - 1] != '}' ||
        !(out = malloc(hl - 1 + sizeof(member) - 1 + rl + 2))) {
        free(head);
        return NULL;
    }
    memcpy(out, head, hl - 1);
    memcpy(out + hl - 1, member, sizeof(member) - 1);
    memcpy(out + hl - 1 + sizeof(member) - 1, request, rl);
    memcpy(out + hl - 1 + sizeof(member) - 1 + rl, "}", 2);
    free(head);
    return out;
}

rp_err_t rp_cloudrun_attempt_parse(const char *json, size_t len,
                                   rp_cloudrun_attempt_t *out, char *errstr,
                                   size_t errstr_size)
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    const char *eid = rp_cloudrun_str(doc, "execution_id");
    const char *job = rp_cloudrun_str(doc, "job");
    const char *ex = rp_cloudrun_str(doc, "execution");
    const char *w = rp_cloudrun_str(doc, "worker");
    rp_err_t err = RP_OK;

    memset(out, 0, sizeof(*out));
    if (!eid || strlen(eid) > RP_ID_MAX || !job || !rp_cloudrun_name_valid(job) ||
        (ex && ex[0] && !rp_cloudrun_name_valid(ex))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "attempt record is unreadable");
        goto out;
    }
    memcpy(out->execution_id, eid, strlen(eid) + 1);
    memcpy(out->job, job, strlen(job) + 1);
    if (ex)
        memcpy(out->execution, ex, strlen(ex) + 1);
    if (w)
        rp_cloudrun_copy_text(out->worker, sizeof(out->worker), w, strlen(w));
    out->n = (int)rp_cloudrun_num(doc, "attempt");
    if (out->n < 0 || out->n > RP_CLOUDRUN_ATTEMPTS_MAX)
        out->n = 0;
    out->created_ms = rp_cloudrun_num(doc, "created_ms");
    out->run_at_ms = rp_cloudrun_num(doc, "run_at_ms");
out:
    cJSON_Delete(doc);
    return err;
}
