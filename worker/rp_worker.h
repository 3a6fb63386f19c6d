/* rp_worker — the consumer-group worker: Kafka in, executions, results out.
 *
 * Design note (read docs/worker.md for the full picture):
 *
 * One main thread runs an event loop over two fds: an eventfd that wakes it
 * when the Kafka consumer queue, the producer's delivery reports, the I/O
 * pool or the backend has something, and a signalfd for SIGTERM/SIGINT.
 * It never blocks, so max.poll.interval.ms cannot expire however long
 * executions run. Each consumed record becomes an rp_job that moves through
 *
 *   QUEUED -> READY -> LOADING -> RUNNING -> FINISHING -> PUBLISHING -> done
 *   (sched)  (slot)   (io pool)  (backend)  (io pool)    (producer)
 *
 * rp_sched keeps one running job per session; rp_offsets commits only up to
 * the lowest unfinished offset of each partition. Jobs of a revoked
 * partition are abandoned (not published, not committed) and run again by
 * the new owner, which reuses executions/{id}/result.json when the
 * execution had finished.
 *
 * Files: rp_worker_int.h maps the worker's files (loop, job machine,
 * pool-thread cycle, publishing, partitions, options).
 *
 * Thread-safety: rp_worker_new/run/destroy from the main thread only.
 */
#ifndef RP_WORKER_H
#define RP_WORKER_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include "rp_backend.h"
#include "rp_err.h"
#include "rp_kafka.h"

#define RP_WORKER_MAX_INFLIGHT_LIMIT 1000000
#define RP_WORKER_MAX_WINDOW_DEFAULT 10000
#define RP_WORKER_MAX_WINDOW_LIMIT 10000000
#define RP_WORKER_DRAIN_NONE (-1)
/* A published result must fit the results topic's message size limit
 * (librdkafka's and Kafka's default message.max.bytes is about 1 MB) with
 * room for headers; a bigger one would be refused forever. */
#define RP_WORKER_RESULT_BYTES_DEFAULT (900 * 1024)
#define RP_WORKER_RESULT_BYTES_MIN (16 * 1024)
#define RP_WORKER_RESULT_BYTES_LIMIT (64 * 1024 * 1024)

#define RP_WORKER_WORKSPACE_DEFAULT "/workspace"
#define RP_WORKER_DELIVERY_EOS "exactly-once"
#define RP_WORKER_DELIVERY_ALO "at-least-once"

typedef struct rp_worker_conf {
    const char *brokers;
    const char *group;          /* default "runpool-workers" */
    const char *requests_topic; /* default runpool.requests */
    const char *results_topic;  /* default runpool.results */
    const char *dlq_topic;      /* default runpool.dlq */
    const char *backend;        /* "local" */
    const char *state_url;      /* file:///dir */
    int max_inflight;           /* records held at once; default 1024 */
    int max_running;            /* executions in progress at once (state
                                   load to publish); the rest wait their
                                   turn, first come first served; default
                                   max_inflight */
    int max_window;             /* per partition: offsets between the lowest
                                   unfinished one and the newest; at this
                                   many the partition pauses (one slow
                                   session must not grow the tracker, or
                                   what a crash re-delivers, without end);
                                   default 10000 */
    int drain_timeout_s;        /* on SIGTERM; default 30 (0 = default;
                                   RP_WORKER_DRAIN_NONE = do not wait) */
    int io_threads;             /* state-store threads; default 8 */
    int timeout_grace_s;        /* backstop beyond timeout_s; default 60 */
    const char *worker_name;    /* default HOST:PID */
    const char *delivery;       /* "exactly-once" (default) or
                                   "at-least-once" */
    const char *instance_id;    /* static group membership; NULL: none */
    const char *http_listen;    /* ADDR:PORT for /metrics, /healthz,
                                   /readyz; NULL: no HTTP endpoint */
    const char *signing_keys;   /* key file (contract/rp_sign.h): run
                                   signed requests only; NULL: run any
                                   request (a warning at start) */
    int signature_max_age_s;    /* tolerance of a signature's t either
                                   way; default 300 */
    size_t output_max;          /* per stream; 0 = executor default */
    size_t result_max_bytes;    /* published result JSON; default 900 KiB */
    /* The sessions' workspace (docs/workspace.md): "/DIR" snapshot (the
     * default, /workspace; local: a fresh scratch directory per
     * execution), "mount:/PATH", "keep" (local: files stay in
     * --workdir/SESSION) or "off". */
    const char *workspace;
    size_t workspace_max_bytes; /* snapshot caps; defaults 1 GiB, 100000 */
    size_t workspace_max_files;
    rp_backend_conf_t backend_conf;
    const char *kafka_config;   /* --kafka-config FILE; main loads it */
    const char *const *kafka_props; /* "key=value", borrowed */
    size_t n_kafka_props;
} rp_worker_conf_t;

typedef struct rp_worker rp_worker_t;

/* ---- Options (rp_worker_conf.c) ----
 * One table lists every option of runpool-worker with its environment
 * variable, default and range; it drives the command line, the
 * environment, --help, the defaults and checks of rp_worker_new, and the
 * README's configuration table (--help-markdown; test_worker_conf checks
 * the README against it). */

typedef enum rp_worker_action {
    RP_WORKER_ACTION_RUN,
    RP_WORKER_ACTION_HELP,          /* --help */
    RP_WORKER_ACTION_HELP_MARKDOWN, /* --help-markdown */
    RP_WORKER_ACTION_VERSION,       /* --version */
} rp_worker_action_t;

/* What the command line and environment say. conf's strings are borrowed
 * from argv, the environment and this struct. */
typedef struct rp_worker_args {
    rp_worker_conf_t conf;
    rp_worker_action_t action;
    const char *props[RP_KAFKA_PROPS_MAX];
    char default_executor[PATH_MAX + 32]; /* DIR/runpool-executor */
} rp_worker_args_t;

/* Environment variable lookup; NULL means getenv. */
typedef const char *(rp_worker_lookup_fn)(const char *name);

/* Fill a from the environment, then argv (options win). Values are
 * checked against the option's range; RP_ERR_INVALID with a message
 * naming the option on bad input. Not thread-safe (getopt). */
rp_err_t rp_worker_conf_parse(rp_worker_args_t *a, int argc, char **argv,
                              rp_worker_lookup_fn *lookup, char *errstr,
                              size_t errstr_size);

/* Apply defaults to what c leaves 0/NULL and check every range; the
 * message names the option. rp_worker_new calls it. */
rp_err_t rp_worker_conf_check(rp_worker_conf_t *c, char *errstr,
                              size_t errstr_size);

/* --help text, and the README's configuration table in Markdown. */
void rp_worker_conf_usage(FILE *f);
void rp_worker_conf_markdown(FILE *f);

/* Connects nothing yet beyond creating the clients; validates conf.
 * The caller must have blocked SIGTERM and SIGINT in every thread (block
 * them before this call: librdkafka starts threads here) — the worker reads
 * them from a signalfd. conf is copied. Caller frees with
 * rp_worker_destroy. */
rp_err_t rp_worker_new(const rp_worker_conf_t *conf, rp_worker_t **out,
                       char *errstr, size_t errstr_size);

/* Run until SIGTERM/SIGINT, then drain (finish in-flight executions for up
 * to drain_timeout_s, publish, commit) and return RP_OK; or return an error
 * on a fatal failure. */
rp_err_t rp_worker_run(rp_worker_t *w, char *errstr, size_t errstr_size);

/* Accepts NULL. */
void rp_worker_destroy(rp_worker_t *w);

#endif
