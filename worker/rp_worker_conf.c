/* rp_worker_conf — runpool-worker's options, from one table.
 *
 * Each row names an option once: its flag, environment variable, where it
 * lands in rp_worker_conf_t, its default and range, and the sentence that
 * explains it. From the rows come getopt's option array, the environment
 * lookups, --help, the defaults and range checks of rp_worker_new, and
 * the Markdown table in the README (--help-markdown; test_worker_conf
 * fails when the README differs), so none of them can drift.
 */
#include "rp_worker.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_contract.h"
#include "rp_runas.h"
#include "rp_sign.h"

typedef enum { RP_OPT_STR, RP_OPT_INT, RP_OPT_SIZE } rp_opt_type_t;

/* 0 given on the command line means "none", not "the default". */
#define RP_OPT_ZERO_IS_NONE 1u
#define RP_OPT_REQUIRED 2u

typedef struct rp_worker_opt {
    const char *name; /* long option, without "--" */
    const char *arg;  /* its value, as --help shows it */
    const char *env;
    rp_opt_type_t type;
    size_t off;       /* of the field in rp_worker_conf_t */
    const char *dflt_str; /* applied default of a string option */
    long dflt;        /* applied default of a number (0: none applied) */
    long lo, hi;      /* range of a number */
    unsigned flags;
    const char *dflt_doc; /* the default, as the docs say it */
    const char *doc;      /* what it means (Markdown) */
} rp_worker_opt_t;

#define RP_OFF(field) offsetof(rp_worker_conf_t, field)

static const rp_worker_opt_t rp_worker_opts[] = {
    {"brokers", "LIST", "RUNPOOL_BROKERS", RP_OPT_STR, RP_OFF(brokers), NULL,
     0, 0, 0, RP_OPT_REQUIRED, "– (required)", "Kafka bootstrap servers"},
    {"group", "ID", "RUNPOOL_GROUP", RP_OPT_STR, RP_OFF(group),
     "runpool-workers", 0, 0, 0, 0, "`runpool-workers`", "consumer group"},
    {"requests-topic", "T", "RUNPOOL_REQUESTS_TOPIC", RP_OPT_STR,
     RP_OFF(requests_topic), RP_TOPIC_REQUESTS_DEFAULT, 0, 0, 0, 0,
     "`" RP_TOPIC_REQUESTS_DEFAULT "`", "where requests are read from"},
    {"results-topic", "T", "RUNPOOL_RESULTS_TOPIC", RP_OPT_STR,
     RP_OFF(results_topic), RP_TOPIC_RESULTS_DEFAULT, 0, 0, 0, 0,
     "`" RP_TOPIC_RESULTS_DEFAULT "`", "where results are published"},
    {"dlq-topic", "T", "RUNPOOL_DLQ_TOPIC", RP_OPT_STR, RP_OFF(dlq_topic),
     RP_TOPIC_DLQ_DEFAULT, 0, 0, 0, 0, "`" RP_TOPIC_DLQ_DEFAULT "`",
     "where bad input goes, byte for byte, with error headers"},
    {"backend", "NAME", "RUNPOOL_BACKEND", RP_OPT_STR, RP_OFF(backend),
     "local", 0, 0, 0, 0, "`local`",
     "`local` or `cloudrun` (see Running on Google Cloud)"},
    {"state", "URL", "RUNPOOL_STATE", RP_OPT_STR, RP_OFF(state_url), NULL, 0,
     0, 0, RP_OPT_REQUIRED,
     "– (required; cloudrun: `gs://$SANDBOX_STATE_BUCKET`)",
     "`file:///DIR[?fsync=0]` or `gs://BUCKET[/PREFIX]`"},
    {"max-inflight", "N", "RUNPOOL_MAX_INFLIGHT", RP_OPT_INT,
     RP_OFF(max_inflight), NULL, 1024, 1, RP_WORKER_MAX_INFLIGHT_LIMIT, 0,
     "1024", "requests held at once; partitions pause at the limit"},
    {"max-running", "N", "RUNPOOL_MAX_RUNNING", RP_OPT_INT,
     RP_OFF(max_running), NULL, 0, 1, RP_WORKER_MAX_INFLIGHT_LIMIT, 0,
     "= `--max-inflight`",
     "executions in progress at once (state load to publish); the others "
     "wait their turn, first come first served — e.g. the Cloud Run "
     "executions one worker may have running, or the processes one pod may "
     "fork"},
    {"max-window", "N", "RUNPOOL_MAX_WINDOW", RP_OPT_INT, RP_OFF(max_window),
     NULL, RP_WORKER_MAX_WINDOW_DEFAULT, 1, RP_WORKER_MAX_WINDOW_LIMIT, 0,
     "10000",
     "per partition: offsets between the oldest unfinished request and the "
     "newest; the partition pauses at the limit (bounds memory and what a "
     "crash re-delivers)"},
    {"drain-timeout", "S", "RUNPOOL_DRAIN_TIMEOUT", RP_OPT_INT,
     RP_OFF(drain_timeout_s), NULL, 30, 0, 86400, RP_OPT_ZERO_IS_NONE, "30",
     "seconds to finish running work on SIGTERM/SIGINT (0: do not wait)"},
    {"timeout-grace", "S", "RUNPOOL_TIMEOUT_GRACE", RP_OPT_INT,
     RP_OFF(timeout_grace_s), NULL, 60, 1, 86400, 0, "60",
     "seconds past a command's own timeout before the worker cancels a run "
     "that has not ended (a backstop for a stuck executor or backend)"},
    {"io-threads", "N", "RUNPOOL_IO_THREADS", RP_OPT_INT, RP_OFF(io_threads),
     NULL, 8, 1, 256, 0, "8", "threads for state-store calls"},
    {"output-max", "BYTES", "RUNPOOL_OUTPUT_MAX", RP_OPT_SIZE,
     RP_OFF(output_max), NULL, 0, 1, RP_OUTPUT_MAX_LIMIT, 0, "1048576",
     "stdout/stderr cap per stream, bytes"},
    {"result-max-bytes", "N", "RUNPOOL_RESULT_MAX_BYTES", RP_OPT_SIZE,
     RP_OFF(result_max_bytes), NULL, RP_WORKER_RESULT_BYTES_DEFAULT,
     RP_WORKER_RESULT_BYTES_MIN, RP_WORKER_RESULT_BYTES_LIMIT, 0, "921600",
     "a published result's size; keep it under the results topic's "
     "`max.message.bytes`"},
    {"worker-name", "NAME", "RUNPOOL_WORKER_NAME", RP_OPT_STR,
     RP_OFF(worker_name), NULL, 0, 0, 0, 0, "`HOST:PID`",
     "in results and logs; also names the worker's Kafka transactions "
     "(`runpool-GROUP-NAME`), so it must be unique among running workers"},
    {"delivery", "MODE", "RUNPOOL_DELIVERY", RP_OPT_STR, RP_OFF(delivery),
     RP_WORKER_DELIVERY_EOS, 0, 0, 0, 0, "`" RP_WORKER_DELIVERY_EOS "`",
     "`" RP_WORKER_DELIVERY_EOS "`: results, DLQ copies and offsets are "
     "committed in Kafka transactions (read with "
     "`isolation.level=read_committed`); `" RP_WORKER_DELIVERY_ALO "`: "
     "plain commits, a result may be published twice after a crash"},
    {"instance-id", "ID", "RUNPOOL_INSTANCE_ID", RP_OPT_STR,
     RP_OFF(instance_id), NULL, 0, 0, 0, 0, "–",
     "static group membership (`group.instance.id`): a worker that comes "
     "back with the same ID within `session.timeout.ms` gets its "
     "partitions back without a rebalance; give each a stable, unique ID "
     "(a StatefulSet pod's name)"},
    {"http-listen", "ADDR:PORT", "RUNPOOL_HTTP_LISTEN", RP_OPT_STR,
     RP_OFF(http_listen), NULL, 0, 0, 0, 0, "– (off)",
     "serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this "
     "address (`0.0.0.0:9464` in a pod; port 0: any free port, logged); "
     "see docs/metrics.md"},
    {"kafka-config", "FILE", "RUNPOOL_KAFKA_CONFIG", RP_OPT_STR,
     RP_OFF(kafka_config), NULL, 0, 0, 0, 0, "–",
     "librdkafka settings, one `key=value` a line (kcat's `-F` format); "
     "then `RUNPOOL_KAFKA_*` variables, then `-X`, win (see Kafka "
     "settings)"},
    {"signing-keys", "FILE", "RUNPOOL_SIGNING_KEYS", RP_OPT_STR,
     RP_OFF(signing_keys), NULL, 0, 0, 0, 0, "– (off: a warning at start)",
     "run only requests signed with one of these keys (lines "
     "`KID:BASE64-KEY`; owned by the worker and 0600, or by root and at "
     "most 0640, else refused); anything else "
     "goes to the DLQ and gets a `rejected` result (see Signed requests)"},
    {"signature-max-age", "S", "RUNPOOL_SIGNATURE_MAX_AGE", RP_OPT_INT,
     RP_OFF(signature_max_age_s), NULL, RP_SIGN_MAX_AGE_DEFAULT, 1,
     RP_SIGN_MAX_AGE_LIMIT, 0, "300",
     "with `--signing-keys`: how far a signature's time may be from the "
     "worker's clock, either way (seconds)"},
    {"workspace", "SPEC", "RUNPOOL_WORKSPACE", RP_OPT_STR, RP_OFF(workspace),
     RP_WORKER_WORKSPACE_DEFAULT, 0, 0, 0, 0, "`" RP_WORKER_WORKSPACE_DEFAULT "`",
     "where a session's files live (docs/workspace.md): `/DIR` — cloudrun: "
     "that directory of the container, local: a fresh scratch directory per "
     "execution (under `--workdir`, else `$TMPDIR`) — restored from the "
     "session's snapshot before each command and saved after it; "
     "`mount:/PATH`: a volume every execution mounts, the session works in "
     "`PATH/SESSION_ID`, no snapshot; `keep` (local): no snapshot, files stay "
     "on this machine in `--workdir/SESSION_ID`; `off`: none"},
    {"workspace-max-bytes", "BYTES", "RUNPOOL_WORKSPACE_MAX_BYTES", RP_OPT_SIZE,
     RP_OFF(workspace_max_bytes), NULL, 1L << 30, 1, 1L << 40, 0,
     "1073741824 (1 GiB)",
     "a snapshot's file bytes at most; past it the workspace is not saved "
     "(`workspace_saved: false`, `workspace_too_large`) and the session keeps "
     "its previous one"},
    {"workspace-max-files", "N", "RUNPOOL_WORKSPACE_MAX_FILES", RP_OPT_SIZE,
     RP_OFF(workspace_max_files), NULL, 100000, 1, 10000000, 0, "100000",
     "a snapshot's entries (files, directories, symlinks) at most "
     "(`workspace_too_many_files` past it)"},
    {"executor", "PATH", "RUNPOOL_EXECUTOR", RP_OPT_STR,
     RP_OFF(backend_conf.executor_path), NULL, 0, 0, 0, 0,
     "next to `runpool-worker`", "local backend: the executor binary"},
    {"executor-fork-server", "0|1", "RUNPOOL_EXECUTOR_FORK_SERVER", RP_OPT_INT,
     RP_OFF(backend_conf.fork_server), NULL, 1, 0, 1, RP_OPT_ZERO_IS_NONE,
     "1", "local backend: 1 forks each executor from one loaded "
     "`runpool-executor --serve` (about 0.7 ms of CPU less per execution, "
     "docs/executor.md \"Fork server\"); 0 execs each one. Either way the "
     "executor is the worker's child; if the server fails, executors are "
     "exec'd until it is back"},
    {"workdir", "DIR", "RUNPOOL_WORKDIR", RP_OPT_STR,
     RP_OFF(backend_conf.workdir), NULL, 0, 0, 0, 0, "–",
     "local backend: with `--workspace keep` (or `off`) new sessions start "
     "in `DIR/SESSION_ID` (created mode 0700); with snapshots the scratch "
     "directories (`DIR/.scratch`) and the chunk cache (`DIR/.chunks`) go "
     "here"},
    {"workspace-cache-max-bytes", "BYTES", "RUNPOOL_WORKSPACE_CACHE_MAX_BYTES",
     RP_OPT_SIZE, RP_OFF(backend_conf.ws_cache_max_bytes), NULL, 1L << 30, 1,
     1L << 50, 0, "1073741824 (1 GiB)",
     "local backend: the chunk cache (`--workdir/.chunks`) is kept under this "
     "size: once a minute the least recently used chunks are deleted (a "
     "deleted chunk is fetched from the state store again when needed)"},
    /* Per-execution resource limits of the local backend (rp_backend.h). */
    {"exec-max-address-space", "BYTES", "RUNPOOL_EXEC_MAX_ADDRESS_SPACE",
     RP_OPT_SIZE, RP_OFF(backend_conf.limits.address_space), NULL, 0, 0,
     1L << 50, 0, "– (the worker's)",
     "local backend: each execution's address space (`RLIMIT_AS`, executor "
     "and command; at least 64 MiB; not with sanitizer builds)"},
    {"exec-max-processes", "N", "RUNPOOL_EXEC_MAX_PROCESSES", RP_OPT_SIZE,
     RP_OFF(backend_conf.limits.processes), NULL, 0, 0, 1L << 30, 0,
     "– (the worker's)",
     "local backend: `RLIMIT_NPROC` of each execution — the kernel counts "
     "every process and thread of the worker's user, not one execution's "
     "(at least 16; root is exempt)"},
    {"exec-max-file-size", "BYTES", "RUNPOOL_EXEC_MAX_FILE_SIZE", RP_OPT_SIZE,
     RP_OFF(backend_conf.limits.file_size), NULL, 0, 0, 1L << 50, 0,
     "– (the worker's)",
     "local backend: largest file an execution may write (`RLIMIT_FSIZE`; "
     "at least 29 MiB, the largest result record)"},
    {"exec-max-open-files", "N", "RUNPOOL_EXEC_MAX_OPEN_FILES", RP_OPT_SIZE,
     RP_OFF(backend_conf.limits.open_files), NULL, 0, 0, 1L << 20, 0,
     "– (the worker's)",
     "local backend: open files per process of an execution "
     "(`RLIMIT_NOFILE`; at least 32)"},
    {"run-as", "UID:GID", "RUNPOOL_RUN_AS", RP_OPT_STR,
     RP_OFF(backend_conf.run_as), NULL, 0, 0, 0, 0,
     "– (the worker's user; a warning when that is root)",
     "local backend: the user the commands run as (numbers; the executor "
     "stays root for its own work and drops to it just before the "
     "command's shell); session directories become its own, mode 0700"},
};

#define RP_WORKER_NOPTS (sizeof(rp_worker_opts) / sizeof(rp_worker_opts[0]))
/* getopt values: table rows are RP_OPT_VAL_BASE + index. */
#define RP_OPT_VAL_BASE 256
#define RP_OPT_VAL_MARKDOWN (RP_OPT_VAL_BASE + 1000)
#define RP_OPT_VAL_VERSION (RP_OPT_VAL_BASE + 1001)

static const char **rp_opt_str(rp_worker_conf_t *c, const rp_worker_opt_t *o)
{
    return (const char **)(void *)((char *)c + o->off);
}

static int *rp_opt_int(rp_worker_conf_t *c, const rp_worker_opt_t *o)
{
    return (int *)(void *)((char *)c + o->off);
}

static size_t *rp_opt_size(rp_worker_conf_t *c, const rp_worker_opt_t *o)
{
    return (size_t *)(void *)((char *)c + o->off);
}

/* Set option o from text v (from argv or the environment). */
static rp_err_t rp_opt_set(rp_worker_conf_t *c, const rp_worker_opt_t *o,
                           const char *v, const char *from, char *errstr,
                           size_t es)
{
    char *end;
    long n;

    if (o->type == RP_OPT_STR) {
        *rp_opt_str(c, o) = v;
        return RP_OK;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < o->lo || n > o->hi)
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "--%s (%s): '%s' is not an integer in %ld..%ld",
                       o->name, from, v, o->lo, o->hi);
    if (n == 0 && (o->flags & RP_OPT_ZERO_IS_NONE))
        n = RP_WORKER_DRAIN_NONE; /* asked for explicitly: none */
    if (o->type == RP_OPT_INT)
        *rp_opt_int(c, o) = (int)n;
    else
        *rp_opt_size(c, o) = (size_t)n;
    return RP_OK;
}

/* The executor installed side by side: bin/runpool-worker and
 * bin/runpool-executor. */
static void rp_worker_conf_default_executor(rp_worker_args_t *a)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (len <= 0)
        return;
    exe[len] = '\0';
    snprintf(a->default_executor, sizeof(a->default_executor),
             "%s/runpool-executor", dirname(exe));
    a->conf.backend_conf.executor_path = a->default_executor;
}

rp_err_t rp_worker_conf_parse(rp_worker_args_t *a, int argc, char **argv,
                              rp_worker_lookup_fn *lookup, char *errstr,
                              size_t es)
{
    struct option longopts[RP_WORKER_NOPTS + 4];
    const char *v;
    rp_err_t err = RP_OK;
    int c;

    memset(a, 0, sizeof(*a));
    a->conf.kafka_props = a->props;
    for (size_t i = 0; i < RP_WORKER_NOPTS; i++) {
        const rp_worker_opt_t *o = &rp_worker_opts[i];

        longopts[i] = (struct option){o->name, required_argument, NULL,
                                      RP_OPT_VAL_BASE + (int)i};
        v = lookup ? lookup(o->env) : getenv(o->env);
        if (v && *v && (err = rp_opt_set(&a->conf, o, v, o->env, errstr, es)))
            return err;
    }
    longopts[RP_WORKER_NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[RP_WORKER_NOPTS + 1] =
        (struct option){"help-markdown", no_argument, NULL, RP_OPT_VAL_MARKDOWN};
    longopts[RP_WORKER_NOPTS + 2] =
        (struct option){"version", no_argument, NULL, RP_OPT_VAL_VERSION};
    longopts[RP_WORKER_NOPTS + 3] = (struct option){NULL, 0, NULL, 0};

    optind = 0; /* glibc: start over, so a caller may parse again */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":X:h", longopts, NULL)) != -1) {
        if (c >= RP_OPT_VAL_BASE && c < RP_OPT_VAL_BASE + (int)RP_WORKER_NOPTS) {
            const rp_worker_opt_t *o = &rp_worker_opts[c - RP_OPT_VAL_BASE];

            if ((err = rp_opt_set(&a->conf, o, optarg, "command line", errstr,
                                  es)))
                return err;
        } else if (c == 'X') {
            if (a->conf.n_kafka_props >= RP_KAFKA_PROPS_MAX)
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "at most %d -X settings", RP_KAFKA_PROPS_MAX);
            a->props[a->conf.n_kafka_props++] = optarg;
        } else if (c == 'h') {
            a->action = RP_WORKER_ACTION_HELP;
        } else if (c == RP_OPT_VAL_MARKDOWN) {
            a->action = RP_WORKER_ACTION_HELP_MARKDOWN;
        } else if (c == RP_OPT_VAL_VERSION) {
            a->action = RP_WORKER_ACTION_VERSION;
        } else if (c == ':') {
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "%s needs a value (see --help)", argv[optind - 1]);
        } else {
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "unknown option '%s' (see --help)",
                           argv[optind - 1]);
        }
    }
    if (optind < argc)
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "unexpected argument '%s' (see --help)", argv[optind]);
    if (!a->conf.backend_conf.executor_path)
        rp_worker_conf_default_executor(a);
    return RP_OK;
}

rp_err_t rp_worker_conf_check(rp_worker_conf_t *c, char *errstr, size_t es)
{
    for (size_t i = 0; i < RP_WORKER_NOPTS; i++) {
        const rp_worker_opt_t *o = &rp_worker_opts[i];
        long n;

        if (o->type == RP_OPT_STR) {
            const char **s = rp_opt_str(c, o);

            if (!*s && o->dflt_str)
                *s = o->dflt_str;
            if ((o->flags & RP_OPT_REQUIRED) && (!*s || !**s))
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "--%s is required (or set %s)", o->name,
                               o->env);
            continue;
        }
        n = o->type == RP_OPT_INT ? *rp_opt_int(c, o)
                                  : (long)*rp_opt_size(c, o);
        if (n == 0)
            n = o->dflt; /* not given */
        else if (n == RP_WORKER_DRAIN_NONE && (o->flags & RP_OPT_ZERO_IS_NONE))
            n = 0;
        else if (n < o->lo || n > o->hi)
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "--%s must be %ld..%ld", o->name, o->lo, o->hi);
        if (o->type == RP_OPT_INT)
            *rp_opt_int(c, o) = (int)n;
        else
            *rp_opt_size(c, o) = (size_t)n;
    }
    if (!c->max_running)
        c->max_running = c->max_inflight;
    if (strcmp(c->delivery, RP_WORKER_DELIVERY_EOS) &&
        strcmp(c->delivery, RP_WORKER_DELIVERY_ALO))
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "--delivery must be %s or %s, not '%s'",
                       RP_WORKER_DELIVERY_EOS, RP_WORKER_DELIVERY_ALO,
                       c->delivery);
    if (c->instance_id && !*c->instance_id)
        c->instance_id = NULL;
    if (c->signing_keys && !*c->signing_keys)
        c->signing_keys = NULL;
    if (strcmp(c->workspace, "off") && strcmp(c->workspace, "keep") &&
        !(c->workspace[0] == '/' && c->workspace[1]) &&
        !(!strncmp(c->workspace, "mount:/", 7) && c->workspace[7]))
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "--workspace must be /DIR, mount:/PATH, keep or off, "
                       "not '%s'", c->workspace);
    if (!strcmp(c->workspace, "keep") && strcmp(c->backend, "local"))
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "--workspace keep is for the local backend (a Cloud "
                       "Run container keeps nothing)");
    if (c->backend_conf.run_as && !*c->backend_conf.run_as)
        c->backend_conf.run_as = NULL;
    if (c->backend_conf.run_as) {
        rp_runas_t ra;
        rp_err_t err;

        if ((err = rp_runas_parse(c->backend_conf.run_as, &ra, errstr, es)) ||
            (err = rp_runas_check(&ra, geteuid(), errstr, es)))
            return err;
        if (strcmp(c->backend, "local"))
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "--run-as is for the local backend; on Cloud Run "
                           "the executor image runs as its own non-root "
                           "user (deploy/docker)");
    }
    return RP_OK;
}

void rp_worker_conf_usage(FILE *f)
{
    fprintf(f, "usage: runpool-worker [options]\n"
               "Consumes execution requests from Kafka, runs each session's "
               "requests in\norder through the execution backend, publishes "
               "results.\n\n");
    for (size_t i = 0; i < RP_WORKER_NOPTS; i++) {
        const rp_worker_opt_t *o = &rp_worker_opts[i];

        fprintf(f, "  --%s %s  (%s; default: %s)\n      %s\n", o->name,
                o->arg, o->env, o->dflt_doc, o->doc);
    }
    fprintf(f,
            "  -X key=value\n      a librdkafka setting (repeatable)\n"
            "  -h, --help\n"
            "  --help-markdown\n      these options as the README's table\n"
            "  --version\n      print \"runpool-worker VERSION\" and exit\n"
            "\n"
            "cloudrun backend (docs/cloudrun.md), from the environment: "
            "GCP_PROJECT_ID,\nGCP_REGION, SANDBOX_EXECUTOR_IMAGE (required), "
            "SANDBOX_STATE_BUCKET (state\nstore gs://BUCKET when --state is "
            "not given), SANDBOX_JOB_TIMEOUT,\nSANDBOX_JOB_MEMORY, "
            "SANDBOX_JOB_CPU, RUNPOOL_CLOUD_RUN_* (endpoint, job mode,\nAPI "
            "calls per second, polling, service account, job-name prefix, "
            "...).\n"
            "Logs: one JSON object a line on stderr; RUNPOOL_LOG_LEVEL=debug|"
            "info|warn|error\n(default info).\n");
}

void rp_worker_conf_markdown(FILE *f)
{
    fprintf(f, "| option | env | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < RP_WORKER_NOPTS; i++) {
        const rp_worker_opt_t *o = &rp_worker_opts[i];

        fprintf(f, "| `--%s` | `%s` | %s | %s |\n", o->name, o->env,
                o->dflt_doc, o->doc);
    }
    fprintf(f, "| `-X key=value` | – | – | any librdkafka setting "
               "(repeatable) |\n");
}
