/* rp_backend — where executions run.
 *
 * The worker hands a backend an rp_jobspec_t (the executor's environment
 * contract, contract/rp_jobenv.h) and is told, without blocking, when that
 * execution has ended. The executor inside writes the result record to the
 * state store; the backend only reports how the run ended (ran to the end,
 * could not start, was cancelled), and the worker reads the record.
 *
 *   local     runpool-executor as a child process of the worker, with the
 *             environment a job container would get (rp_backend_local.c)
 *   cloudrun  Cloud Run Jobs over the Admin API v2 (rp_backend_cloudrun.c,
 *             docs/cloudrun.md)
 *
 * Lifecycle of one run (all calls from the worker's main thread, except the
 * done callback, which comes from a backend thread):
 *
 *   rp_backend_start(be, spec, job, &run)    -> run handle
 *   or rp_backend_attach(be, run_id, job, &run)
 *                                             -> watch a run that is already
 *                                                going (its claim names it)
 *   [rp_backend_run_id(be, run, id)]          -> the claim name of the run
 *   [rp_backend_cancel(be, run)]              -> asks it to stop (async)
 *   [rp_backend_detach(be, run)]              -> stop watching it; where the
 *                                                backend allows, the run goes
 *                                                on and a later start() or
 *                                                attach() of the same
 *                                                execution watches it again
 *   done_cb(job, &done, opaque)               -> on a backend thread, once
 *   rp_backend_release(be, run)               -> main thread, after it has
 *                                                seen done; frees the handle
 *
 * A handle stays valid until released, so cancelling a run that has just
 * ended is harmless.
 */
#ifndef RP_BACKEND_H
#define RP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "rp_claim.h"
#include "rp_err.h"
#include "rp_gcp.h"
#include "rp_jobenv.h"
#include "rp_state.h"

#define RP_BACKEND_DETAIL_MAX 512

typedef struct rp_backend rp_backend_t;
typedef struct rp_backend_run rp_backend_run_t;

/* How a run ended. */
typedef struct rp_backend_done {
    rp_err_t err;      /* RP_OK: the executor ran and exited (see exit_code);
                          RP_ERR_TIMEOUT: the backend stopped it because
                          the request's timeout passed (the worker reports
                          "timed_out" if the executor left no record);
                          otherwise the infrastructure failed */
    bool cancelled;    /* ended because rp_backend_cancel asked it to */
    int exit_code;     /* executor's exit code, -1 if killed by a signal */
    int signal;        /* signal that killed the executor, 0 if none */
    char detail[RP_BACKEND_DETAIL_MAX]; /* human-readable, for logs/results */
} rp_backend_done_t;

/* One quota family of a backend's API calls (cloudrun: runs, reads,
 * writes; docs/cloudrun.md "Quota families"), for the metrics. */
typedef struct rp_backend_quota {
    const char *family; /* static */
    double rate;        /* calls per second allowed */
    double burst;       /* bucket size */
    double tokens;      /* held now; < 0: calls taken on credit (cancels) */
    uint64_t calls;     /* sent */
    uint64_t throttled; /* answered 429 */
    uint64_t waits;     /* times a call found no token or the family held */
} rp_backend_quota_t;

/* Called once per run on a backend thread; done is borrowed for the call.
 * It must not block: the worker posts it to its inbox. */
typedef void(rp_backend_done_cb)(void *job, const rp_backend_done_t *done,
                                 void *opaque);

typedef struct rp_backend_ops {
    const char *name;
    rp_err_t (*start)(rp_backend_t *be, const rp_jobspec_t *spec, void *job,
                      rp_backend_run_t **run, char *errstr, size_t errstr_size);
    /* NULL = the worker always looks for an earlier record and claim
     * before start (rp_backend_start_fresh). */
    rp_err_t (*start_fresh)(rp_backend_t *be, const rp_jobspec_t *spec,
                            void *job, rp_backend_run_t **run, char *errstr,
                            size_t errstr_size);
    void (*cancel)(rp_backend_t *be, rp_backend_run_t *run);
    /* NULL = detach is cancel (runs that cannot outlive the worker). */
    void (*detach)(rp_backend_t *be, rp_backend_run_t *run);
    void (*release)(rp_backend_t *be, rp_backend_run_t *run);
    void (*close)(rp_backend_t *be);
    /* NULL = cannot attach: the worker starts instead, and a duplicate
     * executor meets the claim and exits RP_EXEC_EXIT_CLAIMED. */
    rp_err_t (*attach)(rp_backend_t *be, const char *run_id, void *job,
                       rp_backend_run_t **run, char *errstr,
                       size_t errstr_size);
    /* NULL = the backend cannot name the runs it starts. */
    void (*run_id)(rp_backend_t *be, rp_backend_run_t *run,
                   char out[RP_CLAIM_RUN_MAX + 1]);
    /* NULL = no quota families / counters / start times (see below). */
    bool (*quota)(rp_backend_t *be, int i, rp_backend_quota_t *out);
    bool (*counter)(rp_backend_t *be, int i, const char **name,
                    uint64_t *value);
    int64_t (*started_ms)(rp_backend_t *be, rp_backend_run_t *run);
} rp_backend_ops_t;

struct rp_backend {
    const rp_backend_ops_t *ops;
    rp_backend_done_cb *done_cb;
    void *done_opaque;
    void *impl;
};

/* local: resource limits of each execution, set (soft and hard) on the
 * executor process before it starts, so its command inherits them and
 * cannot raise them. 0 = not set: the worker's own. They bound the
 * executor too, hence the minimums (rp_backend_local.c checks them). */
typedef struct rp_backend_limits {
    size_t address_space; /* RLIMIT_AS, bytes; >= RP_LOCAL_AS_MIN */
    size_t processes;     /* RLIMIT_NPROC: processes and threads of the
                           * worker's user, all executions together, as the
                           * kernel counts it (root is exempt) */
    size_t file_size;     /* RLIMIT_FSIZE, bytes; >= RP_LOCAL_FSIZE_MIN */
    size_t open_files;    /* RLIMIT_NOFILE; >= RP_LOCAL_NOFILE_MIN */
} rp_backend_limits_t;

/* A result record must stay writable, the executor must load. */
#define RP_LOCAL_AS_MIN ((size_t)64 * 1024 * 1024)
#define RP_LOCAL_FSIZE_MIN ((size_t)RP_RESULT_MAX + 1024 * 1024)
#define RP_LOCAL_NOFILE_MIN 32
#define RP_LOCAL_NPROC_MIN 16

/* Configuration for every backend; each reads what it needs. */
typedef struct rp_backend_conf {
    const char *executor_path; /* local: runpool-executor to spawn */
    const char *workdir;       /* local: sessions start in workdir/{session},
                                * created mode 0700 */
    int kill_grace_ms;         /* local: SIGTERM -> SIGKILL on cancel */
    /* local: fork executors from one `runpool-executor --serve` rather
     * than exec each (rp_zygote.h); falls back to exec on its own. */
    int fork_server;
    /* local: the chunk cache (workdir/.chunks) is pruned to this many
     * bytes every RP_LOCAL_PRUNE_MS (rp_wscache.h); 0 = 1 GiB. */
    size_t ws_cache_max_bytes;
    rp_backend_limits_t limits; /* local: per execution */
    /* local: "UID:GID" the commands run as (RUNPOOL_RUN_AS, rp_runas.h);
     * NULL or "": as the worker's user. Borrowed for rp_backend_new. */
    const char *run_as;
    /* cloudrun: its settings (GCP_*, SANDBOX_*, RUNPOOL_CLOUD_RUN_*) are
     * read through lookup, getenv-like; NULL = getenv. Borrowed for the
     * call to rp_backend_new. */
    const char *(*lookup)(const char *name, void *opaque);
    void *lookup_opaque;
    /* cloudrun: the state store the executors use (the worker's),
     * borrowed for the backend's life; required. */
    rp_state_t *state;
    /* cloudrun: the Google context whose credentials Admin API calls
     * carry, borrowed for the backend's life; may be NULL (or without
     * credentials) only with RUNPOOL_CLOUD_RUN_ENDPOINT. */
    rp_gcp_t *gcp;
} rp_backend_conf_t;

/* Create the backend named `name` ("local", "cloudrun"). done_cb/opaque
 * borrowed for the backend's life. Caller frees with rp_backend_destroy.
 * Main thread. */
rp_err_t rp_backend_new(const char *name, const rp_backend_conf_t *conf,
                        rp_backend_done_cb *done_cb, void *opaque,
                        rp_backend_t **out, char *errstr, size_t errstr_size);

/* See the lifecycle above. spec and job are borrowed; spec only during the
 * call. */
rp_err_t rp_backend_start(rp_backend_t *be, const rp_jobspec_t *spec,
                          void *job, rp_backend_run_t **run, char *errstr,
                          size_t errstr_size);
/* Does this backend implement rp_backend_start_fresh? Any thread. */
bool rp_backend_can_start_fresh(const rp_backend_t *be);
/* start, for a worker that skipped its look for an earlier record and
 * claim of the execution (a session's later commands in one partition
 * epoch, docs/cloudrun.md "Call budget"): the backend's own first
 * create-only claim answers it. If that claim exists, the run ends with
 * done.err = RP_ERR_EXISTS having started nothing; the worker then looks
 * and calls rp_backend_start. Same arguments as start. Main thread. */
rp_err_t rp_backend_start_fresh(rp_backend_t *be, const rp_jobspec_t *spec,
                                void *job, rp_backend_run_t **run,
                                char *errstr, size_t errstr_size);
void rp_backend_cancel(rp_backend_t *be, rp_backend_run_t *run);
/* The worker gives the execution up (partition revoked, drain timed out):
 * the done callback still comes, with cancelled set. The run itself keeps
 * going (a Cloud Run execution; a local executor, which lives in its own
 * session and outlives the worker) and finishes its record, so the next
 * owner finds the claim and attaches or waits instead of starting it
 * again. A backend without a detach operation cancels instead. */
void rp_backend_detach(rp_backend_t *be, rp_backend_run_t *run);

/* Does this backend implement rp_backend_attach? Any thread. */
bool rp_backend_can_attach(const rp_backend_t *be);
/* Watch the run a claim names (run_id borrowed, see rp_claim.h) as if
 * this worker had started it: *run and the done callback as for start;
 * the done's exit_code is -1 when the backend cannot know it (a local
 * process that is not our child). RP_ERR_NOT_FOUND: that run is already
 * gone (ended, a reused pid); no callback comes. RP_ERR_UNAVAILABLE: it
 * may still run but cannot be watched from here (another machine, boot or
 * pod); the caller waits for its record instead. RP_ERR_INVALID: not a
 * run of this backend. Main thread. */
rp_err_t rp_backend_attach(rp_backend_t *be, const char *run_id, void *job,
                           rp_backend_run_t **run, char *errstr,
                           size_t errstr_size);
/* The claim name (rp_claim.h) of the run the handle watches into out, ""
 * when the backend cannot tell. Main thread, before release. */
void rp_backend_run_id(rp_backend_t *be, rp_backend_run_t *run,
                       char out[RP_CLAIM_RUN_MAX + 1]);
void rp_backend_release(rp_backend_t *be, rp_backend_run_t *run);

/* Quota family i (0, 1, ...) into out; false past the last (or none).
 * Any thread. */
bool rp_backend_quota(rp_backend_t *be, int i, rp_backend_quota_t *out);
/* Counter i (0, 1, ...): its name (static) and value; false past the
 * last. Any thread. */
bool rp_backend_counter(rp_backend_t *be, int i, const char **name,
                        uint64_t *value);
/* When the run's command began running (monotonic ms): 0 while it is
 * queued (a Cloud Run execution without a startTime yet), -1 when the
 * backend does not tell (it runs at once). The worker's timeout backstop
 * counts from there. Main thread, before release. */
int64_t rp_backend_started_ms(rp_backend_t *be, rp_backend_run_t *run);

/* Stops watching (local: detaches, the executors go on; cloudrun: cancels
 * what still runs and waits for it), no more callbacks after this
 * returns, and frees. Accepts NULL. */
void rp_backend_destroy(rp_backend_t *be);

/* Backend constructors, one per implementation file. */
rp_err_t rp_backend_local_init(rp_backend_t *be, const rp_backend_conf_t *conf,
                               char *errstr, size_t errstr_size);
rp_err_t rp_backend_cloudrun_init(rp_backend_t *be,
                                  const rp_backend_conf_t *conf, char *errstr,
                                  size_t errstr_size);

#endif
