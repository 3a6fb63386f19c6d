/* rp_cloudrun — the Cloud Run Admin API v2 pieces of the cloudrun backend
 * (worker/rp_backend_cloudrun.c): its configuration, job names, request
 * bodies and the reading of replies. No I/O here, so all of it is tested
 * without a server. See docs/cloudrun.md.
 *
 * Configuration (read through a getenv-like lookup; "" counts as unset):
 *   GCP_PROJECT_ID            required
 *   GCP_REGION                required
 *   SANDBOX_EXECUTOR_IMAGE    required: the runpool-executor image
 *   SANDBOX_STATE_BUCKET      gs:// bucket of the state store, when the
 *                             worker is given no state URL
 *   SANDBOX_JOB_TIMEOUT       job definition's task timeout, s [600]
 *   SANDBOX_JOB_MEMORY        memory limit [512Mi]
 *   SANDBOX_JOB_CPU           cpu limit [1]
 *   RUNPOOL_CLOUD_RUN_*       this backend's own knobs (rp_cloudrun_conf_t)
 *
 * Thread-safety: pure functions; any thread.
 */
#ifndef RP_CLOUDRUN_H
#define RP_CLOUDRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"
#include "rp_msg.h"

#define RP_CLOUDRUN_ENDPOINT_DEFAULT "https://run.googleapis.com"
#define RP_CLOUDRUN_ENDPOINT_MAX 1024
#define RP_CLOUDRUN_PROJECT_MAX 30  /* Google: 6..30 characters */
#define RP_CLOUDRUN_REGION_MAX 63
#define RP_CLOUDRUN_IMAGE_MAX 1024
#define RP_CLOUDRUN_BUCKET_MAX 63
#define RP_CLOUDRUN_LIMIT_MAX 16    /* "512Mi", "1000m" */
#define RP_CLOUDRUN_SA_MAX 256      /* service account e-mail */
#define RP_CLOUDRUN_PREFIX_MAX 20   /* job-name prefix */
#define RP_CLOUDRUN_JOB_ID_MAX 49   /* the safe job id rule's maximum */
#define RP_CLOUDRUN_NAME_MAX 512    /* a resource name we keep */
#define RP_CLOUDRUN_MESSAGE_MAX 400 /* Google's message, as we keep it */
#define RP_CLOUDRUN_ENV_VALUE_MAX 32768 /* Cloud Run: bytes of one value */
#define RP_CLOUDRUN_TIMEOUT_MAX_S (168 * 3600) /* Cloud Run task timeout */
#define RP_CLOUDRUN_CONTAINER "executor"       /* the job's one container */

/* Partial responses (docs/cloudrun.md "Partial responses"): the `fields`
 * selectors of executions.get and executions.list, exactly the members
 * rp_cloudrun_exec_fill and the list parsers read. A member added there
 * must be added here, or it reads as absent. */
#define RP_CLOUDRUN_EXEC_FIELDS                                              \
    "name,createTime,startTime,completionTime,taskCount,succeededCount,"   \
    "failedCount,cancelledCount,"                                           \
    "conditions(type,state,reason,executionReason,message),"               \
    "template/containers/env(name,value)"
#define RP_CLOUDRUN_LIST_FIELDS                                              \
    "executions(" RP_CLOUDRUN_EXEC_FIELDS "),nextPageToken"

typedef enum rp_cloudrun_mode {
    RP_CLOUDRUN_MODE_TEMPLATE,      /* one job per image+shape, run many */
    RP_CLOUDRUN_MODE_PER_EXECUTION, /* one job per execution, deleted after */
} rp_cloudrun_mode_t;

typedef struct rp_cloudrun_conf {
    char project[RP_CLOUDRUN_PROJECT_MAX + 1];
    char region[RP_CLOUDRUN_REGION_MAX + 1];
    char image[RP_CLOUDRUN_IMAGE_MAX + 1];
    char state_bucket[RP_CLOUDRUN_BUCKET_MAX + 1]; /* "" = none */
    /* gs://state_bucket, the store when none is named; "" = none */
    char state_url[RP_CLOUDRUN_BUCKET_MAX + 8];
    int job_timeout_s;
    char memory[RP_CLOUDRUN_LIMIT_MAX + 1];
    char cpu[RP_CLOUDRUN_LIMIT_MAX + 1];
    /* RUNPOOL_CLOUD_RUN_ENDPOINT: another API endpoint (an emulator: no
     * credentials are sent then). */
    char endpoint[RP_CLOUDRUN_ENDPOINT_MAX + 1];
    bool endpoint_set;
    rp_cloudrun_mode_t mode;           /* _JOB_MODE [template] */
    /* Quota families (docs/cloudrun.md "Quota families"): calls/s and
     * bucket size of each. _MAX_RPS / _BURST (deprecated) set the default
     * of all three when given; max_rps_set says they were. */
    int max_rps, burst;                /* _MAX_RPS [unset] _BURST [unset] */
    bool max_rps_set;
    int runs_rps, runs_burst;          /* _RUNS_RPS [3] _RUNS_BURST [= rps]: jobs.run */
    int reads_rps, reads_burst;        /* _READS_RPS [10] _READS_BURST: get, list */
    int writes_rps, writes_burst;      /* _WRITES_RPS [3] _WRITES_BURST: create, delete, cancel */
    int get_rps;                       /* _GET_RPS [5; per-execution: reads]: executions.get */
    int sweep_ms;                      /* _SWEEP_MS [250]; 0: no sweeps */
    int sweep_pages;                   /* _SWEEP_PAGES [4]: list pages per sweep */
    int queue_max_s;                   /* _QUEUE_MAX_S [900]: not started by then */
    int poll_min_ms, poll_max_ms;      /* _POLL_MIN_MS [1000] _POLL_MAX_MS [15000] */
    char service_account[RP_CLOUDRUN_SA_MAX + 1]; /* _SERVICE_ACCOUNT [""] */
    char job_prefix[RP_CLOUDRUN_PREFIX_MAX + 1];  /* _JOB_PREFIX [runpool] */
    int threads;                       /* _THREADS [8] */
    int timeout_margin_s;              /* _TIMEOUT_MARGIN_S [30] */
    int cancel_after_s;                /* _CANCEL_AFTER_S [60] */
    int settle_ms;                     /* _SETTLE_MS [45000] */
    int http_timeout_ms;               /* _HTTP_TIMEOUT_MS [30000] */
    int retry_base_ms, retry_cap_ms;   /* _RETRY_BASE_MS [500] _RETRY_CAP_MS [30000] */
    int retry_max_s;                   /* _RETRY_MAX_S [600] */
} rp_cloudrun_conf_t;

typedef const char *(rp_cloudrun_lookup_fn)(const char *name, void *opaque);

/* Read and check every setting. RP_ERR_INVALID naming the setting when
 * one is missing or malformed. lookup's strings are borrowed and copied. */
rp_err_t rp_cloudrun_conf_read(rp_cloudrun_lookup_fn *lookup, void *opaque,
                               rp_cloudrun_conf_t *out, char *errstr,
                               size_t errstr_size);

/* ---- names ---- */

/* "projects/{p}/locations/{r}" into out; false when it does not fit. */
bool rp_cloudrun_parent(const rp_cloudrun_conf_t *conf, char *out,
                        size_t out_size);

/* Template mode: "{prefix}-{16 hex}", a hash of image, cpu, memory, job
 * timeout, service account and state_url, so a changed shape gets a new
 * job. out_size >= RP_CLOUDRUN_JOB_ID_MAX + 1. */
void rp_cloudrun_template_job_id(const rp_cloudrun_conf_t *conf,
                                 const char *state_url, char *out,
                                 size_t out_size);

/* Per-execution mode: "{prefix}-{execution id, lower-cased, other
 * characters as '-'}-{8 hex of the id}", cut to the job id rule.
 * out_size >= RP_CLOUDRUN_JOB_ID_MAX + 1. */
void rp_cloudrun_execution_job_id(const rp_cloudrun_conf_t *conf,
                                  const char *execution_id, char *out,
                                  size_t out_size);

/* ^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$ */
bool rp_cloudrun_job_id_valid(const char *id);

/* A resource name from a reply that may go into a URL path:
 * "projects/..." of [A-Za-z0-9._~/-] only, shorter than
 * RP_CLOUDRUN_NAME_MAX. */
bool rp_cloudrun_name_valid(const char *name);

/* ---- request bodies (malloc'd JSON, caller frees; NULL = no memory) ---- */

/* jobs.create. env: the container's variables (template mode: the
 * deployment's, RUNPOOL_STATE_URL; per-execution: the whole contract).
 * timeout_s: the task timeout. maxRetries 0 is always sent. */
char *rp_cloudrun_job_body(const rp_cloudrun_conf_t *conf, const rp_env_t *env,
                           int timeout_s);

/* jobs.run. env NULL: no container override; timeout_s 0: none. */
char *rp_cloudrun_run_body(const rp_env_t *env, int timeout_s);

/* ---- replies ---- */

/* Google's error body -> "HTTP 403 PERMISSION_DENIED: message (field:
 * description; ...)" into out; the raw start of the body when it is not
 * one. */
void rp_cloudrun_error_message(long status, const char *body, size_t len,
                               char *out, size_t out_size);

/* The execution name of a jobs.run reply (an Operation whose metadata is
 * the Execution: metadata.name). RP_ERR_PROTOCOL when absent or not a
 * valid name. */
rp_err_t rp_cloudrun_run_reply(const char *body, size_t len, char *name,
                               size_t name_size, char *errstr,
                               size_t errstr_size);

typedef enum rp_cloudrun_outcome {
    RP_CLOUDRUN_RUNNING,
    RP_CLOUDRUN_SUCCEEDED,
    RP_CLOUDRUN_FAILED,
    RP_CLOUDRUN_CANCELLED,
    RP_CLOUDRUN_DELETED,
} rp_cloudrun_outcome_t;

const char *rp_cloudrun_outcome_str(rp_cloudrun_outcome_t o);

typedef struct rp_cloudrun_exec {
    rp_cloudrun_outcome_t outcome;
    char message[RP_CLOUDRUN_MESSAGE_MAX]; /* Completed condition's */
    char execution_id[RP_ID_MAX + 1]; /* its EXECUTION_ID variable, or "" */
    int64_t create_ms;                /* createTime, wall; 0 unknown */
    int64_t start_ms;                 /* startTime, wall; 0: not started */
} rp_cloudrun_exec_t;

/* Decide an Execution's outcome (docs/cloudrun.md): running while
 * completionTime is absent or Completed is PENDING/RECONCILING; Completed
 * SUCCEEDED -> succeeded; FAILED with executionReason CANCELLED -> cancelled,
 * DELETED -> deleted, else failed; counts cross-check when the condition
 * is missing. */
rp_err_t rp_cloudrun_parse_execution(const char *body, size_t len,
                                     rp_cloudrun_exec_t *out, char *errstr,
                                     size_t errstr_size);

/* executions.list page: the newest execution whose EXECUTION_ID variable
 * is execution_id into found ("" when none), the nextPageToken into next
 * ("" when none), and *older set when every execution of the page was
 * created before not_before_ms (wall; 0 = no limit). */
rp_err_t rp_cloudrun_find_in_list(const char *body, size_t len,
                                  const char *execution_id,
                                  int64_t not_before_ms, char *found,
                                  size_t found_size, char *next,
                                  size_t next_size, bool *older, char *errstr,
                                  size_t errstr_size);

/* One executions.list page, for a sweep: cb(opaque, name, &exec) for each
 * execution with a valid name (borrowed for the call; a non-zero return
 * stops the walk), the nextPageToken into next ("" when none), the
 * createTime of the page's last (oldest) execution into *last_create_ms
 * (0 when unknown or the page is empty), the count into *n. */
typedef int(rp_cloudrun_page_cb)(void *opaque, const char *name,
                                 const rp_cloudrun_exec_t *ex);
rp_err_t rp_cloudrun_parse_page(const char *body, size_t len,
                                rp_cloudrun_page_cb *cb, void *opaque,
                                char *next, size_t next_size,
                                int64_t *last_create_ms, int *n, char *errstr,
                                size_t errstr_size);

typedef enum rp_cloudrun_job_state {
    RP_CLOUDRUN_JOB_RECONCILING,
    RP_CLOUDRUN_JOB_READY,
    RP_CLOUDRUN_JOB_FAILED,
} rp_cloudrun_job_state_t;

typedef struct rp_cloudrun_job {
    rp_cloudrun_job_state_t state;
    char message[RP_CLOUDRUN_MESSAGE_MAX];
    char image[RP_CLOUDRUN_IMAGE_MAX + 1];  /* first container's */
    char execution_id[RP_ID_MAX + 1]; /* its EXECUTION_ID variable, or "" */
} rp_cloudrun_job_t;

/* A Job (jobs.get): ready when terminalCondition is Ready/SUCCEEDED. */
rp_err_t rp_cloudrun_parse_job(const char *body, size_t len,
                               rp_cloudrun_job_t *out, char *errstr,
                               size_t errstr_size);

/* ---- the attempt records: one object per jobs.run, each written once ----
 *
 *   executions/{id}/attempt-{n}.json            claim n (n = 1, 2, ...):
 *       create-only, written before the n-th jobs.run of the execution; of
 *       two owners only the one that creates it runs. In template mode it
 *       carries the request document ("request"), which that run's
 *       executor reads (RUNPOOL_REQUEST_REF).
 *   executions/{id}/attempt-{n}.execution.json  the execution claim n
 *       started (or that was found for it), create-only, best effort.
 *   executions/{id}/attempt.json                the single record of
 *       earlier versions: read as claim 0 (and its name), never written.
 *
 * Cloud Storage allows about one write per second to one object name, so
 * no name is written twice (docs/cloudrun.md). */

#define RP_CLOUDRUN_ATTEMPT_MAX (16 * 1024)
#define RP_CLOUDRUN_ATTEMPTS_MAX 100 /* jobs.run claims per execution */

typedef struct rp_cloudrun_attempt {
    char execution_id[RP_ID_MAX + 1];
    int n;                                /* claim number; 0 = legacy */
    char job[RP_CLOUDRUN_NAME_MAX];       /* job run (to be run) on */
    char execution[RP_CLOUDRUN_NAME_MAX]; /* "" in a claim */
    int64_t created_ms;                   /* wall: first claim */
    int64_t run_at_ms;                    /* wall: this claim */
    char worker[RP_WORKER_NAME_MAX];      /* who wrote it (for people) */
} rp_cloudrun_attempt_t;

/* "executions/{id}/attempt-{n}.json" (n = 0: the legacy
 * "executions/{id}/attempt.json") into out; "" for an invalid id. */
void rp_cloudrun_attempt_key(const char *execution_id, int n, char *out,
                             size_t out_size);
/* "executions/{id}/attempt-{n}.execution.json" into out; same rules. */
void rp_cloudrun_attempt_exec_key(const char *execution_id, int n, char *out,
                                  size_t out_size);
/* "executions/{id}/attempt": the prefix all of them share. */
void rp_cloudrun_attempt_prefix(const char *execution_id, char *out,
                                size_t out_size);
/* What a listed key (borrowed) is: RP_CLOUDRUN_KEY_CLAIM or _EXEC with *n
 * set, or RP_CLOUDRUN_KEY_OTHER. */
typedef enum rp_cloudrun_key_kind {
    RP_CLOUDRUN_KEY_OTHER,
    RP_CLOUDRUN_KEY_CLAIM,
    RP_CLOUDRUN_KEY_EXEC,
} rp_cloudrun_key_kind_t;
rp_cloudrun_key_kind_t rp_cloudrun_attempt_key_kind(const char *key, int *n);
/* JSON of a claim (a->execution "") or a name record; caller frees. */
char *rp_cloudrun_attempt_json(const rp_cloudrun_attempt_t *a);
/* The same with request (a request document, rp_jobenv_request_json;
 * borrowed; NULL = none) as its "request" member: the executor reads its
 * command there (RUNPOOL_REQUEST_REF names the claim). Caller frees. */
char *rp_cloudrun_attempt_json_with(const rp_cloudrun_attempt_t *a,
                                    const char *request);
rp_err_t rp_cloudrun_attempt_parse(const char *json, size_t len,
                                   rp_cloudrun_attempt_t *out, char *errstr,
                                   size_t errstr_size);

#endif
