/* rp_worker_int.h — the worker's private structs, shared by its files.
 *
 * The worker is one main thread (rp_worker.c) driving jobs (rp_job.c)
 * through a fixed life; the blocking state-store steps of that life run on
 * the I/O pool (rp_cycle.c), results leave through the producer
 * (rp_publish.c), and what Kafka assigns, commits and pauses is
 * rp_partitions.c. docs/worker.md has the picture; docs/architecture.md
 * the table of these files.
 *
 *   file              prefix           runs on
 *   rp_worker.c       rp_worker_       main thread: loop, timers, drain
 *   rp_job.c          rp_job_          main thread: the job machine
 *   rp_cycle.c        rp_cycle_        I/O pool threads: load and finish
 *   rp_fileops.c      rp_fileops_      I/O pool threads: file ops on the
 *                                      workspace snapshot (rp_fileops.h)
 *   rp_publish.c      rp_publish_      main thread: results, DLQ, retries
 *   rp_partitions.c   rp_partitions_   main thread: assign, revoke, commit,
 *                                      pause and resume
 *   rp_txn.c          rp_txn_          main thread: exactly-once delivery
 *                                      (Kafka transactions)
 *   rp_worker_conf.c  rp_worker_conf_  main(): options, defaults, ranges
 *
 * Everything here is main-thread only, except what a job's pool step
 * touches while the job is in LOADING or FINISHING: the job itself (the
 * main thread leaves it alone until the step posts it back) and the
 * thread-safe w->state and w->inbox.
 */
#ifndef RP_WORKER_INT_H
#define RP_WORKER_INT_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_backend.h"
#include "rp_iopool.h"
#include "rp_list.h"
#include "rp_msg.h"
#include "rp_offsets.h"
#include "rp_scache.h"
#include "rp_sched.h"
#include "rp_sign.h"
#include "rp_state.h"
#include "rp_timerq.h"
#include "rp_worker.h"

#define RP_WORKER_COMMIT_INTERVAL_MS 1000
#define RP_WORKER_WAIT_MAX_MS 1000      /* the loop turns at least this often */
#define RP_WORKER_FLUSH_MS 10000        /* producer flush at shutdown */
#define RP_WORKER_COMMIT_WAIT_MS 10000  /* a synchronous commit, at most */
#define RP_WORKER_PUBLISH_RETRY_MS 1000 /* after a failed delivery */
#define RP_WORKER_POLL_BATCH 1000       /* events served per wake-up */
#define RP_WORKER_RESUME_PCT 75         /* resume below this % of max */
#define RP_WORKER_ABANDON_WAIT_MS 5000 /* after drain timeout: publishes end */
#define RP_WORKER_TXN_MS 100            /* a transaction commits this often */
#define RP_WORKER_TXN_BATCH 500         /* or at this many results */
#define RP_WORKER_TXN_TIMEOUT_MS 10000  /* transaction.timeout.ms default */
#define RP_WORKER_TXN_INIT_MS 5000      /* init_transactions, per try */
#define RP_WORKER_FIRST_ASSIGN_MS 5000  /* at exit, for a first assignment */
/* Shutdown is bounded whatever the broker does: while draining no Kafka
 * call waits past the drain deadline (then past the abandon deadline) by
 * more than RP_WORKER_DRAIN_CALL_MIN_MS, so those timers fire on time;
 * --drain-timeout, then RP_WORKER_ABANDON_WAIT_MS for what is publishing;
 * then the final flush and commits (transactional or not) share
 * RP_WORKER_SHUTDOWN_MS, and leaving the group gets RP_WORKER_CLOSE_MS
 * more. In all: --drain-timeout + RP_WORKER_STOP_SLACK_S at most for the
 * loop and the Kafka clients (docs/worker.md, Stopping; deploy/k8s's grace
 * period covers it). */
#define RP_WORKER_DRAIN_CALL_MIN_MS 100
#define RP_WORKER_SHUTDOWN_MS 10000
#define RP_WORKER_CLOSE_MS 5000
/* 5 + 10 + 5, and up to a second of calls at their floor in the turns
 * that cross the two deadlines. */
#define RP_WORKER_STOP_SLACK_S 21
/* Past the slack, a watchdog ends the process (rp_worker_watchdog). */
#define RP_WORKER_WATCHDOG_GRACE_S 4

/* Room left in a message for the key and runpool's headers. */
#define RP_WORKER_MSG_HEADROOM (16 * 1024)

/* Inbox event kinds: what a pool step or the backend hands back. */
enum { RP_EV_LOADED = 1, RP_EV_RUN_DONE, RP_EV_FINISHED };

/* A job's life, in order (rp_job_set_stage logs every change). */
typedef enum rp_job_stage {
    RP_JOB_QUEUED,     /* behind its session's running job (rp_sched) */
    RP_JOB_READY,      /* its session's turn; waiting for a run slot */
    RP_JOB_LOADING,    /* pool: session state and any earlier record */
    RP_JOB_RUNNING,    /* backend: the command runs */
    RP_JOB_FINISHING,  /* pool: read the record, save the new state */
    RP_JOB_PUBLISHING, /* producer: result (and DLQ copy) in flight */
    RP_JOB_STAGE_COUNT
} rp_job_stage_t;

typedef struct rp_job rp_job_t;
typedef struct rp_wmetrics rp_wmetrics_t;

/* One produced message of a job, and what it carries for a retry. */
typedef struct rp_delivery {
    rp_job_t *job;
    bool pending;
    bool failed;
    bool is_dlq;
} rp_delivery_t;

/* A consumed Kafka record, as the job machine needs it (borrowed). */
typedef struct rp_record {
    int32_t partition;
    int64_t offset;
    int64_t ts_ms; /* Kafka timestamp, wall ms; <= 0 if none */
    const char *key;
    size_t keylen;
    const char *payload;
    size_t len;
    /* Its runpool-signature headers (contract/rp_sign.h): how many, and
     * the value of the last ("" for a null value; NULL when none). */
    int nsig;
    const char *sig;
    size_t siglen;
} rp_record_t;

struct rp_job {
    rp_inbox_item_t item; /* first: the inbox hands it back as this */
    rp_list_t link;       /* w->jobs: every live job */
    rp_list_t ready_link; /* w->ready or w->ready_now while READY */
    rp_list_t txn_link;   /* w->txn_jobs while in_txn */
    rp_timer_t timer;     /* RUNNING: backstop; PUBLISHING: retry */
    rp_worker_t *w;

    /* Where it came from. */
    int32_t partition;
    int64_t offset;
    uint64_t epoch; /* the partition's assignment epoch when consumed */
    char *key;
    size_t keylen;
    int64_t msg_ts_ms; /* Kafka timestamp, wall ms */

    /* Bad input keeps the original message for the DLQ. */
    bool rejected;
    char reject_code[RP_CODE_MAX + 1]; /* rp_code_str of an rp_code_t */
    char reject_msg[RP_ERRMSG_MAX];
    char *payload;
    size_t payload_len;
    rd_kafka_headers_t *headers;

    rp_request_t req;
    rp_job_stage_t stage;
    bool revoked; /* abandoned: partition lost or worker stopping */
    /* revoked, as I/O steps may read it (set with it, main thread): a
     * workspace gc stops at it (rp_jobws_gc, rp_fileops). */
    atomic_bool io_revoked;
    bool in_txn;    /* exactly-once: a message of it is queued in the
                       open transaction (on w->txn_jobs) */
    bool txn_whole; /* ...and all of them: its offset is staged; it ends
                       when the transaction commits */
    bool session_released; /* its session's next request may start */

    /* Filled by the I/O steps. */
    char err_code[RP_CODE_MAX + 1]; /* non-empty: publish an "error" result */
    char err_msg[RP_ERRMSG_MAX];
    rp_session_t session;
    bool session_found;
    uint64_t session_version;
    rp_result_t result;
    bool have_result;
    bool reused;
    /* The session cache (rp_scache.h, docs/worker.md "Session state
     * cache"): cached = session/session_version came from it, not from a
     * read; fresh = no look for an earlier record or claim either, the
     * backend's create-only claim answers it (rp_backend_start_fresh). */
    bool cached, fresh;
    char *cached_doc;  /* cached, not fresh: the I/O step parses it (owned) */
    size_t cached_len;
    /* FINISHING's verdict for the cache: saved_doc (owned) is the state
     * now stored at saved_version; else scache_drop = forget the entry. */
    char *saved_doc;
    uint64_t saved_version;
    bool scache_drop;

    /* Backend. */
    rp_backend_run_t *run;
    rp_backend_done_t done;
    bool backstop_fired;
    /* The backend stopped the run at its timeout and the executor left no
     * record: publish "timed_out" and leave the session state as it was. */
    bool backend_timed_out;

    /* The claim fence (contract/rp_claim.h; rp_cycle_claim decides). */
    char run_id[RP_CLAIM_RUN_MAX + 1]; /* the run job->run watches; "" =
                                          the backend cannot name it */
    bool claim_found;   /* the pool step saw a claim (fields below) */
    char claim_run[RP_CLAIM_RUN_MAX + 1];
    int claim_attempt;
    /* What the main thread does next, set by a pool step: */
    bool claim_attach;  /* watch claim_run instead of starting */
    bool claim_wait;    /* poll for its record (no attach possible) */
    bool claim_restart; /* "retry": "if-interrupted": start attempt */
    int attempt;        /* the start this job makes next (0 = first) */
    int claim_rounds;   /* attach/wait/restart rounds, bounded */
    int64_t claim_poll_ms;  /* next wait for the record, doubling */
    int64_t claim_deadline; /* mono ms: stop waiting, "interrupted" */

    /* Timing, mono ms; begin is also recorded as wall ms. */
    int64_t t_begin, t_begin_wall, t_loaded, t_run_done;
    int64_t state_load_ms, state_save_ms, run_ms;
    int64_t publish_started_ms; /* mono ms rp_publish_job began; 0: never */

    char *result_json; /* published result, kept for publish retries */
    size_t msg_cap;    /* size cap for this job's messages; halves when a
                          broker refuses one as too large */
    rp_delivery_t d_result, d_dlq;
};

/* Exactly-once: where the producer's transaction is (rp_txn.c). */
typedef enum rp_txn_state {
    RP_TXN_NONE,       /* none open */
    RP_TXN_OPEN,       /* results may be produced into it */
    RP_TXN_COMMITTING, /* a commit timed out; it goes on, and is resumed */
    RP_TXN_ABORTING,   /* an abort timed out; likewise */
} rp_txn_state_t;

/* What the worker knows of one partition (rp_partitions.c). */
typedef struct rp_part {
    uint64_t epoch;     /* assignment epoch: late completions of an
                           earlier assignment are ignored */
    int64_t committed;  /* last committed offset; -1: none */
    uint64_t meta_hash; /* of the last committed metadata */
    bool win_paused;    /* paused for its offset window (--max-window) */
    bool meta_full;     /* its commit metadata nears RP_OFFSETS_META_MAX */
    bool assigned;      /* ours now (metrics: lag only for these) */
} rp_part_t;

struct rp_worker {
    rp_worker_conf_t conf;
    char name[RP_WORKER_NAME_MAX];
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *cq; /* consumer queue (io events enabled) */
    rd_kafka_queue_t *pq; /* producer main queue */
    rp_state_t *state;
    rp_backend_t *backend;
    rp_iopool_t *io;
    rp_inbox_t *inbox;
    rp_sched_t *sched;
    rp_scache_t *scache; /* each session's last saved state */
    rp_offsets_t *offsets;
    int wake_fd;
    int sig_fd;

    rp_list_t jobs; /* every live job */
    size_t inflight;
    size_t running; /* jobs past READY */
    /* Session heads whose turn has come, oldest first: ready waits for
     * running < --max-running; ready_now (bad input, nothing to run)
     * never waits. rp_job_admit_ready starts them from the loop. */
    rp_list_t ready, ready_now;
    bool paused;         /* every partition, at the in-flight limit */
    bool reapply_pause;  /* the assignment changed: apply pauses again */
    bool window_check;   /* a partition's window crossed its bound */

    rp_part_t *part; /* indexed by partition, npart long */
    int32_t npart;

    /* Exactly-once (rp_txn.c): is a transaction open, the jobs whose
     * results it holds, and when it commits. */
    bool eos;
    rp_txn_state_t txn;
    rp_list_t txn_jobs;
    rd_kafka_topic_partition_list_t *txn_offsets; /* sent; kept while its
                                                     commit is retried */
    size_t txn_count;
    int64_t txn_partial_since; /* mono ms a job first sat half queued */
    rp_timer_t txn_timer;

    size_t msg_max; /* the producer's message.max.bytes */

    /* Everything that waits for a time: job timers, the periodic commit
     * and the drain deadlines. The loop sleeps until the nearest. */
    rp_timerq_t timers;
    rp_timer_t commit_timer;
    rp_timer_t drain_timer;

    rp_wmetrics_t *mx; /* --http-listen: metrics and endpoint; else NULL */
    rp_sign_keys_t *sign_keys; /* --signing-keys; NULL: requests unsigned */

    bool ever_assigned; /* the rebalance callback assigned at least once */
    bool ran;           /* rp_worker_run reached its shutdown */
    int64_t shutdown_deadline; /* mono ms; 0 until the loop has ended */
    int64_t drain_deadline;    /* mono ms the drain (then abandon) timer is
                                  due; 0 until draining */
    bool consumer_closed;      /* rd_kafka_consumer_close finished */
    bool consumer_more; /* the last turn left consumer events waiting */
    bool draining;
    bool abandoned; /* drain deadline passed: only cancels remain */
    bool stop;      /* leave the loop (shutdown wait over) */
    bool fatal;
    char fatal_msg[512];
};

/* ---- rp_worker.c ---- */

/* Stop the worker: what it has not finished is re-delivered elsewhere. */
void rp_worker_set_fatal(rp_worker_t *w, const char *what);

/* Queue timer t for due_ms (moving it if queued); on no memory the worker
 * stops (a lost timer would leave a job waiting for ever). */
void rp_worker_arm(rp_worker_t *w, rp_timer_t *t, int64_t due_ms);
/* A blocking Kafka call's timeout: cap (-1: librdkafka's own default);
 * while draining at most what is left before the drain (then abandon)
 * deadline, RP_WORKER_DRAIN_CALL_MIN_MS at least; once the loop has
 * ended, what is left of the shutdown budget (at least 1). Main thread
 * only. */
int rp_worker_call_ms(const rp_worker_t *w, int cap);

/* One turn of the loop: wait up to the nearest timer (at most timeout_ms;
 * 0 = do not wait), then serve signals, timers, the inbox, delivery
 * reports, the consumer, admission and flow control. */
void rp_worker_step(rp_worker_t *w, int timeout_ms);

/* Fire every timer due at now_ms. */
void rp_worker_fire_timers(rp_worker_t *w, int64_t now_ms);

/* ---- rp_job.c ---- */

/* The job machine. Each function moves job one step along its life; none
 * starts another job's step directly (a job that ends puts its session's
 * next one on the ready list, and the loop admits it), so no call nests
 * into another job's life. */
const char *rp_job_stage_name(rp_job_stage_t stage);
void rp_job_set_stage(rp_job_t *job, rp_job_stage_t stage);

/* A record consumed: track it, make its job and hand it to the scheduler.
 * rec is borrowed; m (borrowed, may be NULL) is the Kafka message it came
 * from, whose headers a bad-input job detaches for its DLQ copy. */
void rp_job_accept(rp_worker_t *w, const rp_record_t *rec,
                   rd_kafka_message_t *m);
/* Start jobs from the ready lists while run slots allow. */
void rp_job_admit_ready(rp_worker_t *w);
/* An inbox event (a pool step ended, or the backend's run did). */
void rp_job_on_event(rp_worker_t *w, rp_job_t *job, int kind);
/* Its timer fired. */
void rp_job_on_timer(rp_worker_t *w, rp_job_t *job);
/* Over: published (finished) or abandoned. Frees it and puts the next
 * job of its session, if any, on the ready list. */
void rp_job_end(rp_worker_t *w, rp_job_t *job, bool finished);
/* Let the session's next request start (once; rp_job_end does it too). */
void rp_job_release_session(rp_worker_t *w, rp_job_t *job);
/* Free a job that never began (a dropped queued job). */
void rp_job_drop(rp_worker_t *w, rp_job_t *job);
/* Take the ready jobs that match parts (NULL: all) off the ready lists and
 * end them unstarted; their requests stay unfinished and are re-delivered. */
size_t rp_job_drop_ready(rp_worker_t *w,
                         const rd_kafka_topic_partition_list_t *parts);
/* Still owned: not revoked and consumed in the current assignment. */
bool rp_job_current(const rp_worker_t *w, const rp_job_t *job);
/* Publish an "error" result with code (contract/rp_codes.h). */
void rp_job_set_error(rp_job_t *job, rp_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The backend's done callback (a backend thread): posts to the inbox. */
void rp_job_backend_done(void *job, const rp_backend_done_t *done,
                         void *opaque);

static inline const char *rp_job_eid(const rp_job_t *job)
{
    return job->req.execution_id;
}

static inline const char *rp_job_sid(const rp_job_t *job)
{
    return job->req.session_id;
}

/* ---- rp_cycle.c (I/O pool threads; touch only their job) ---- */

/* LOADING: read the session state and an earlier record of the execution;
 * posts RP_EV_LOADED. */
void rp_cycle_load(void *job);
/* FINISHING: read the executor's record and save the new session state
 * with compare-and-swap; posts RP_EV_FINISHED. */
void rp_cycle_finish(void *job);
/* After a lost compare-and-swap on the session state at key (st, key
 * borrowed): does the stored state name execution_id as its last, i.e. did
 * an earlier owner save this very execution? false when it cannot be read.
 * Any thread (the finish and file-op paths). */
bool rp_cycle_saved_by_other(rp_state_t *st, const char *key,
                             const char *execution_id);

/* ---- rp_jobws.c (rp_cycle's workspace half; I/O pool threads) ---- */

/* Put the record's workspace report into s (the session about to be
 * saved): its root, and a new snapshot when one was saved. *superseded:
 * the manifest key it replaces (caller frees; NULL = none), for
 * rp_jobws_gc once the save succeeded. RP_ERR_NOMEM only. */
rp_err_t rp_jobws_apply(rp_job_t *job, rp_session_t *s, int64_t now_ms,
                        char **superseded);
/* The session state was not saved: the published result must not say
 * the workspace was (it says workspace_error, why). The new snapshot is
 * left in place: a save whose reply was lost may have made it current,
 * and a redelivery reusing the record applies it. */
void rp_jobws_not_applied(rp_job_t *job, const char *why);
/* Delete old_key's snapshot except the chunks cur_key (NULL = empty) uses.
 * Best effort: a failure is logged; the objects stay until the session
 * is closed. It stops as soon as the job is revoked (rp_jobws_revoked):
 * the partition's next owner may already count one of those chunks as
 * stored. I/O thread. */
void rp_jobws_gc(rp_worker_t *w, rp_job_t *job, const char *old_key,
                 const char *cur_key);
/* rp_ws_stop_fn for a job (rp_job_t *, borrowed): its io_revoked. Any
 * thread. */
bool rp_jobws_revoked(void *job);

/* ---- rp_publish.c ---- */

/* PUBLISHING: build the result from what the job knows and produce it,
 * and the DLQ copy for bad input. Ends the job when nothing is to be
 * published. */
void rp_publish_job(rp_worker_t *w, rp_job_t *job);
/* The job's retry timer fired: produce again what failed. */
void rp_publish_retry(rp_worker_t *w, rp_job_t *job);
/* A delivery report for d (err 0: delivered). Ends the job once every
 * message of it is delivered. */
void rp_publish_on_delivery(rp_worker_t *w, rp_delivery_t *d,
                            rd_kafka_resp_err_t err);
/* librdkafka's dr_msg_cb, set on the producer. */
void rp_publish_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                      void *opaque);
/* Serialise r within max bytes, truncating the larger output (flagged)
 * until it fits. Caller frees; NULL on no memory. */
char *rp_publish_result_json(rp_result_t *r, size_t max);

/* ---- rp_partitions.c ---- */

/* Make room for partition p's bookkeeping. */
rp_err_t rp_partitions_grow(rp_worker_t *w, int32_t p);
/* Is p's offset window at its bound (pause), or still above the resume
 * mark when paused? */
bool rp_partitions_window_full(const rp_worker_t *w, int32_t p);
/* Does job belong to one of parts (NULL: to any)? */
bool rp_partitions_match(const rp_job_t *job,
                         const rd_kafka_topic_partition_list_t *parts);
/* Commit what is finished for parts (all when NULL); sync waits. */
void rp_partitions_commit(rp_worker_t *w,
                          const rd_kafka_topic_partition_list_t *parts,
                          bool sync);
/* The offsets to commit: every partition whose commit point or metadata
 * changed since its last commit (staged: count offsets staged in the open
 * transaction as done). Sets meta_full where the metadata nears its
 * bound. Caller destroys. */
rd_kafka_topic_partition_list_t *rp_partitions_offsets(rp_worker_t *w,
                                                       bool staged);
/* list (borrowed) was committed: remember it. */
void rp_partitions_committed(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *list);
/* librdkafka's offset_commit_cb: a failed commit is made again. */
void rp_partitions_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets,
                             void *opaque);
/* librdkafka's rebalance_cb, set on the consumer. */
void rp_partitions_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t *parts,
                                void *opaque);
/* Pause or resume partitions for --max-inflight, --max-window and drain. */
void rp_partitions_flow_control(rp_worker_t *w);
/* Drop every queued (not yet begun) job of parts (NULL: all). */
size_t rp_partitions_drop_queued(rp_worker_t *w,
                                 const rd_kafka_topic_partition_list_t *parts);

/* ---- rp_txn.c (exactly-once) ---- */

/* At start: fence earlier producers of our transactional.id; waits for a
 * cluster that is not there yet. RP_ERR_CANCELLED: SIGTERM/SIGINT came
 * first. */
rp_err_t rp_txn_init(rp_worker_t *w, char *errstr, size_t es);
/* Open a transaction unless one is; false: none can be open now (a
 * commit or abort is being resumed: produce later) or the worker is
 * stopping (fatal). */
bool rp_txn_begin(rp_worker_t *w);
/* A message of job was queued in the open transaction: track it; once
 * all of them are, stage its offset and free its session's next
 * request. */
void rp_txn_add(rp_worker_t *w, rp_job_t *job);
/* Commit the open transaction with the offsets of every partition (or
 * just the offsets, when they changed and none is open). dropping
 * (borrowed, may be NULL): partitions being revoked, whose jobs are not
 * produced again if it aborts. force: before a revoke or at exit, when a
 * half-queued job must not wait (the transaction is aborted instead). */
void rp_txn_commit(rp_worker_t *w,
                   const rd_kafka_topic_partition_list_t *dropping,
                   bool force);

/* ---- rp_wmetrics.c (metrics and /healthz, /readyz; docs/metrics.md) ----
 * All no-ops without --http-listen. Main thread, except where noted. */

/* Declare the metrics and start the HTTP endpoint (logs its address). */
rp_err_t rp_wmetrics_start(rp_worker_t *w, char *errstr, size_t es);
/* Stop the endpoint, free the metrics. Accepts w->mx == NULL. */
void rp_wmetrics_destroy(rp_worker_t *w);
/* Ask librdkafka for statistics (consumer lag) on the consumer's conf. */
rp_err_t rp_wmetrics_kafka_conf(rp_worker_t *w, rd_kafka_conf_t *cc,
                                char *errstr, size_t es);
/* librdkafka's stats_cb, set on the consumer. */
int rp_wmetrics_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque);
/* One loop turn did its work from start_ms to end_ms (mono): liveness,
 * loop lag and the queued/running/in-flight gauges. */
void rp_wmetrics_turn(rp_worker_t *w, int64_t start_ms, int64_t end_ms);
/* Outside the loop (waiting for the cluster at start): still alive for
 * /healthz. Main thread. */
void rp_wmetrics_alive(rp_worker_t *w);
void rp_wmetrics_consumed(rp_worker_t *w);
/* job ended finished: its result, DLQ copy and stage times. */
void rp_wmetrics_job_done(rp_worker_t *w, const rp_job_t *job);
/* A commit step of kind (bounded literal) that began at start_ms ended. */
void rp_wmetrics_commit(rp_worker_t *w, const char *kind, bool ok,
                        int64_t start_ms);
void rp_wmetrics_rebalance(rp_worker_t *w, bool assign,
                           const rd_kafka_topic_partition_list_t *parts,
                           int nassigned);
/* A state-store step: op "load"/"save", outcome "ok"/"conflict"/"error". */
void rp_wmetrics_state_op(rp_worker_t *w, const char *op, const char *outcome,
                          int64_t ms);
void rp_wmetrics_publish_retry(rp_worker_t *w);

#endif
