/* rp_testenv — the rig every integration test runs in.
 *
 * One test = one temp directory, one runpool-devbroker, worker processes
 * started by the test, a raw librdkafka producer (so a test can also send
 * malformed messages and wrong keys) and a collector thread that keeps
 * every message of the results and DLQ topics. Nothing here uses runpool's
 * own libraries: the rig looks at the system from outside, like a user.
 *
 *   rp_te_setup      cmocka setup: temp dir, devbroker, producer, collector
 *   ... the test: rp_te_start_worker, rp_te_send_*, rp_te_wait_*, asserts
 *   rp_te_finish     the last line of a passing test: schema-checks what was
 *                    sent and received, looks for sanitizer reports in logs
 *   rp_te_teardown   cmocka teardown, also after a failure: kills and reaps
 *                    every process (workers, their executors and commands,
 *                    the devbroker), prints the logs of a failed test and
 *                    keeps its directory, removes the directory otherwise
 *
 * The temp directory TMP ($TMPDIR or /tmp, rp-it-NAME-XXXXXX):
 *   state/            the workers' --state file://TMP/state
 *   work/             the workers' --workdir (sessions start in work/SID)
 *   bootstrap         the devbroker's --bootstrap-file
 *   devbroker.log, worker-N.log   stderr of each process
 *   requests.jsonl    every valid request the test produced
 *   results.jsonl     every message of runpool.results, in arrival order
 *   dlq.jsonl         every message of runpool.dlq, as an envelope
 *                     {partition, offset, key, headers, payload|payload_base64}
 *                     (payload null for a tombstone)
 *
 * The test process is a child subreaper, so executors orphaned by a killed
 * worker are re-parented to it and teardown can kill and reap them too.
 *
 * Helpers fail the running test (cmocka fail_msg) instead of returning
 * errors; call them from the test's thread only. Environment: RP_BIN_DIR
 * (binaries) and RP_SOURCE_DIR (for tests/schema/validate.js), both set by
 * CTest; RP_IT_KEEP=1 keeps the directory of a passing test too;
 * RP_IT_LOG_DIR (set by CTest) makes teardown copy every process log to
 * RP_IT_LOG_DIR/NAME.BROKER/ for the suite-wide secrets.logs check
 * (rp_te_secrets.h, docs/testing.md);
 * RP_TEST_BROKER=kafka runs the test against a real Apache Kafka
 * (tests/kafka/start: single-node KRaft on 127.0.0.1, data in TMP/kafka/,
 * log TMP/kafka.log) instead of runpool-devbroker (the default).
 */
#ifndef RP_TESTENV_H
#define RP_TESTENV_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "rp_te_secrets.h"

#define RP_TE_PARTITIONS 4      /* devbroker --partitions */
/* devbroker + workers started by one test (a fault test starts a
 * replacement for every worker it kills, and restarts the broker) */
#define RP_TE_PROCS_MAX 64
#define RP_TE_ID_MAX 128        /* execution_id / session_id */
#define RP_TE_DRAIN_TIMEOUT_S 20 /* workers' --drain-timeout */
/* Short consumer-group timers: a SIGKILLed worker's partitions move on
 * after this, and the mock broker waits about this long in a rebalance. */
#define RP_TE_SESSION_TIMEOUT_MS 6000

#define RP_TOPIC_REQUESTS "runpool.requests"
#define RP_TOPIC_RESULTS "runpool.results"
#define RP_TOPIC_DLQ "runpool.dlq"

typedef struct rp_te_header {
    char *name;
    char *value; /* NUL-terminated copy; NULL for a null value */
    size_t len;
} rp_te_header_t;

/* One message the collector received. Never changes once collected. */
typedef struct rp_te_msg {
    int32_t partition;
    int64_t offset;
    bool has_key;
    char *key; /* NUL-terminated copy ("" when absent) */
    size_t key_len;
    char *value; /* NUL-terminated copy ("" when empty or null) */
    bool value_null; /* a null value (tombstone), not an empty one */
    size_t value_len;
    rp_te_header_t *headers;
    size_t n_headers;
    cJSON *json;         /* results: the parsed document; NULL if not JSON */
    int64_t received_ms; /* rp_te_now_ms() when collected */
} rp_te_msg_t;

/* DEVBROKER: the Kafka broker; SERVICE: another server a test started
 * (rp_te_start_service: the Cloud Run fake, fake-gcs-server). */
typedef enum rp_te_kind {
    RP_TE_DEVBROKER,
    RP_TE_WORKER,
    RP_TE_SERVICE
} rp_te_kind_t;

/* The process registry: everything the test started. */
typedef struct rp_te_proc {
    rp_te_kind_t kind;
    char name[32]; /* "devbroker", "worker-1", ... */
    char log_path[PATH_MAX];
    pid_t pid;
    bool signalled;      /* the test sent it a signal: exiting is expected */
    bool reaped;
    int status;          /* wait status, once reaped */
    char worker_id[300]; /* HOST:PID, what its results carry in "worker" */
} rp_te_proc_t;

/* Where a produced message landed (filled by its delivery report). */
typedef struct rp_te_sent {
    bool delivered;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} rp_te_sent_t;

typedef struct rp_te {
    char name[64]; /* the test program's name */
    char dir[PATH_MAX];
    char bin_dir[PATH_MAX];
    char src_dir[PATH_MAX];
    char brokers[1024];
    bool real_kafka; /* RP_TEST_BROKER=kafka: exactly-once holds */
    char group[128];
    char **child_env; /* environment for started processes */
    /* What rp_te_start_worker passes as --backend and --state: "local" and
     * file://TMP/state unless a test changes them (rp_te_cloud_start). */
    char backend[16];
    char state_url[PATH_MAX + 16];
    /* A variable the workers must not inherit ("" = none): they are
     * started through env -u NAME (rp_te_cloud_authenticate). */
    char worker_unset[64];
    /* Base URLs of the Cloud Run fake and fake-gcs-server, once
     * rp_te_cloud_start started them; "" otherwise. */
    char cloudrun_url[256];
    char gcs_url[256];

    rp_te_proc_t procs[RP_TE_PROCS_MAX];
    int n_procs;
    int n_workers;

    rd_kafka_t *producer;
    FILE *requests_log;
    size_t n_delivery_failures; /* delivery reports with an error */
    char delivery_error[256];

    rd_kafka_t *consumer;
    pthread_t collector;
    bool collector_started;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* broadcast on every collected message */
    rp_te_msg_t **results;
    size_t n_results, cap_results;
    rp_te_msg_t **dlq;
    size_t n_dlq, cap_dlq;
    FILE *results_log, *dlq_log;
    char collector_error[512];
    char died[256]; /* a process exited though nobody signalled it */

    bool passed; /* set by rp_te_finish */
    unsigned planted; /* bit 1 << rp_te_secret_t: secrets given to runpool */

    /* rp_te_restart_broker: how many restarts began; from the first on,
     * the collector takes "broker down" errors as expected. */
    atomic_int broker_restarts;
} rp_te_t;

/* ---- planted secrets (rp_te_secrets.h) ---- */
/* The value of a planted secret (static). */
const char *rp_te_secret(rp_te_secret_t s);
/* Record that this test gave secret s to runpool (for secrets.logs). */
void rp_te_planted(rp_te_t *te, rp_te_secret_t s);

/* ---- fixture ---- */

int rp_te_setup(void **state);
int rp_te_teardown(void **state);
/* Last step of every test: validates TMP/results.jsonl (schema result) and
 * TMP/requests.jsonl (schema request) with tests/schema/validate.js, fails
 * on any sanitizer report in a process log, then marks the test passed. */
void rp_te_finish(rp_te_t *te);

/* ---- time and files ---- */

int64_t rp_te_now_ms(void); /* monotonic */
void rp_te_sleep_ms(int ms);
/* snprintf that fails the test instead of truncating. */
void rp_te_format(char *out, size_t out_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* TMP/<rel> into out; fails the test if it does not fit. */
void rp_te_path(const rp_te_t *te, char *out, size_t out_size, const char *rel);
/* Whole file, NUL-terminated (caller frees); NULL when it does not exist. */
char *rp_te_read_file(const char *path, size_t *len);
/* Run argv[0] to its end in the rig's child environment, stdin from
 * in_path (NULL: /dev/null), stdout to out_path (truncated) and stderr
 * appended to err_path (NULL: the test's own);
 * returns its wait status. Fails the test if it cannot start or runs past
 * timeout_ms (it is then killed). */
int rp_te_run(rp_te_t *te, char *const argv[], const char *in_path,
              const char *out_path, const char *err_path, int timeout_ms);
/* Runs node tests/schema/validate.js --schema SCHEMA FILE; asserts exit 0. */
void rp_te_validate(rp_te_t *te, const char *schema, const char *file);

/* ---- processes ---- */

/* Start a runpool-worker on the test's broker, group, backend, state and
 * workdir, with --kafka-config TMP/kafka-secret.conf (a planted
 * sasl.password, unused by the PLAINTEXT broker) and, on the local
 * backend, --workspace keep (sessions keep their files in work/SID; a
 * test of workspace snapshots passes --workspace /workspace in extra);
 * returns its index in te->procs. */
int rp_te_start_worker(rp_te_t *te);
/* The same with more arguments (NULL-terminated, borrowed) at the end. */
int rp_te_start_worker_args(rp_te_t *te, const char *const *extra);
/* Set (or replace) NAME=value in the environment of every process started
 * from now on. */
void rp_te_setenv(rp_te_t *te, const char *name, const char *value);
/* Start a server (kind SERVICE, log TMP/NAME.log; stdout to out_path, or
 * to the log when NULL) and wait up to timeout_ms until ready_file holds
 * one whole line; that line, without its newline, goes to line. Returns its
 * index in te->procs; fails the test if it exits or times out first. */
int rp_te_start_service(rp_te_t *te, const char *name, char *const argv[],
                        const char *out_path, const char *ready_file,
                        char *line, size_t line_size, int timeout_ms);
/* Send sig to a started process; from now on its exit is expected. */
void rp_te_signal(rp_te_t *te, int idx, int sig);
/* Wait up to timeout_ms for the process to exit; true when it has (its
 * wait status is then te->procs[idx].status). */
bool rp_te_wait_exit(rp_te_t *te, int idx, int timeout_ms);
bool rp_te_alive(rp_te_t *te, int idx);
/* Fails the test when a started process exited without the test asking
 * (a crashed worker): waits would otherwise only time out. The rig's own
 * waits call it. */
void rp_te_check_procs(rp_te_t *te);
/* The port a worker started with --http-listen 127.0.0.1:0 logged
 * ("http: listening on ..."), waiting up to 20 s; fails the test when
 * none came. */
int rp_te_http_port(rp_te_t *te, int idx);
/* In Prometheus text, the value of the sample line that starts with
 * `series ` (exact name and labels, as rendered); -1 when absent. */
double rp_te_metric(const char *text, const char *series);
/* Partitions the worker holds according to its own log (assigned minus
 * revoked); *events (may be NULL) = how many assignments it logged. */
int rp_te_worker_partitions(rp_te_t *te, int idx, int *events);
/* How many lines of process idx's log (JSON lines) have "event": event
 * and, unless msg_prefix is NULL, a "msg" that starts with msg_prefix. */
int rp_te_log_events(rp_te_t *te, int idx, const char *event,
                     const char *msg_prefix);
/* Wait until the n given workers hold all RP_TE_PARTITIONS partitions and
 * each has logged an assignment. Returns how many of them hold partitions;
 * a group that settles with one worker holding everything is accepted
 * (returns 1) after timeout_ms; an unsettled group fails the test. */
int rp_te_wait_group(rp_te_t *te, const int *workers, int n, int timeout_ms);
/* Execution ids of the executors that are children of live workers now. */
size_t rp_te_running_executions(rp_te_t *te, char (*eids)[RP_TE_ID_MAX + 1],
                                size_t max);
/* Wait until every process that a killed worker left behind (executors
 * and their commands, re-parented to the test) has exited; false on
 * timeout. */
bool rp_te_wait_orphans(rp_te_t *te, int timeout_ms);
/* Execution ids of the executors that are children of worker idx now
 * (none when it is not alive); returns how many (may exceed max). */
size_t rp_te_worker_executions(rp_te_t *te, int idx,
                               char (*eids)[RP_TE_ID_MAX + 1], size_t max);
/* Restart the broker, keeping its data and port (RP_TEST_BROKER=kafka
 * only; fails the test on the devbroker, whose mock cluster keeps nothing):
 * SIGTERM (Kafka's clean shutdown), wait for its exit, then
 * tests/kafka/start --restart --foreground on the same TMP/kafka and wait
 * until it serves again (log TMP/kafka-restart-N.log). Clients reconnect
 * by themselves; the collector ignores transport errors from now on.
 * Returns the new broker's index in te->procs; *down_ms (may be NULL) =
 * how long no broker served. */
int rp_te_restart_broker(rp_te_t *te, int timeout_ms, int64_t *down_ms);
/* Index of the worker whose worker_id is id, or -1. */
int rp_te_worker_by_id(const rp_te_t *te, const char *id);

/* ---- producing ---- */

/* Produce one message to runpool.requests as is. key NULL = no key;
 * payload NULL (len 0) = a null value, a tombstone;
 * sent (may be NULL) is filled once rp_te_flush returns. Not logged to
 * requests.jsonl: use it for malformed input. */
void rp_te_send_raw(rp_te_t *te, const char *key, size_t key_len,
                    const char *payload, size_t len, rp_te_sent_t *sent);
/* A valid exec request (key = session_id), also appended to
 * requests.jsonl. timeout_s <= 0 omits it (the default); env is NULL or
 * a NULL-terminated list of name, value, name, value, ...; the rig adds
 * RP_IT_PLANTED_SECRET (the planted REQUEST_ENV value) to every one. */
void rp_te_send_exec(rp_te_t *te, const char *session_id,
                     const char *execution_id, const char *command,
                     int timeout_s, const char *const *env);
/* The same; sent (may be NULL) says where it landed once rp_te_flush
 * returns. */
void rp_te_send_exec_sent(rp_te_t *te, const char *session_id,
                          const char *execution_id, const char *command,
                          int timeout_s, const char *const *env,
                          rp_te_sent_t *sent);
/* A valid close_session request, also appended to requests.jsonl. */
void rp_te_send_close(rp_te_t *te, const char *session_id,
                      const char *execution_id);
/* Any request document (taken; "submitted_at" is added), key =
 * session_id, also appended to requests.jsonl: file ops and the like. */
void rp_te_send_request(rp_te_t *te, const char *session_id, cJSON *doc);
/* Wait until every produced message is acknowledged; fails on any
 * delivery error. */
void rp_te_flush(rp_te_t *te);

/* ---- collected messages (arrival order; pointers stay valid) ----
 * Every wait below also fails the test at once when a started process
 * exits without the test having signalled it (rp_te_check_procs). */

size_t rp_te_result_count(rp_te_t *te);
const rp_te_msg_t *rp_te_result_at(rp_te_t *te, size_t i);
size_t rp_te_dlq_count(rp_te_t *te);
const rp_te_msg_t *rp_te_dlq_at(rp_te_t *te, size_t i);
/* First result with this execution_id, waiting up to timeout_ms; NULL if
 * none came. */
const rp_te_msg_t *rp_te_wait_result(rp_te_t *te, const char *execution_id,
                                     int timeout_ms);
/* The same, but fails the test when no result came in time. */
const rp_te_msg_t *rp_te_need_result(rp_te_t *te, const char *execution_id,
                                     int timeout_ms);
/* Wait until each of the n execution ids has at least one result; on
 * timeout fails the test naming the first missing one. */
void rp_te_wait_results_for(rp_te_t *te, const char *const *eids, size_t n,
                            int timeout_ms);
/* Wait until at least n results arrived; false on timeout. */
bool rp_te_wait_result_count(rp_te_t *te, size_t n, int timeout_ms);
/* Wait until at least n DLQ messages arrived; false on timeout. */
bool rp_te_wait_dlq(rp_te_t *te, size_t n, int timeout_ms);
/* Results with this execution_id, in arrival order, into out[max];
 * returns how many there are (may exceed max). */
size_t rp_te_results_for(rp_te_t *te, const char *execution_id,
                         const rp_te_msg_t **out, size_t max);

/* Fields of a collected result: a top-level string (NULL if absent or
 * not a string), a top-level integer (false if absent, null or not a
 * number), error.code / error.message (NULL if absent). */
const char *rp_te_str(const rp_te_msg_t *m, const char *field);
bool rp_te_int(const rp_te_msg_t *m, const char *field, long long *out);
const char *rp_te_error(const rp_te_msg_t *m, const char *field);
/* A header's value (NUL-terminated), NULL if the message lacks it. */
const char *rp_te_header(const rp_te_msg_t *m, const char *name);

/* A compact description of a result for failure messages (static buffer;
 * test thread only). */
const char *rp_te_describe(const rp_te_msg_t *m);

/* Assert a result's status and, unless NULL, its exact stdout; and that
 * its "worker" names one of the workers this test started. */
void rp_te_expect(rp_te_t *te, const rp_te_msg_t *m, const char *status,
                  const char *stdout_text);

#endif
