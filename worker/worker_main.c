/* runpool-worker: command line and environment -> rp_worker. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_cloudrun.h"
#include "rp_gcp.h"
#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_worker.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: runpool-worker [options]\n"
"Consumes execution requests from Kafka, runs each session's requests in\n"
"order through the execution backend, publishes results.\n"
"\n"
"  --brokers LIST         Kafka bootstrap servers        (RUNPOOL_BROKERS)\n"
"  --group ID             consumer group [runpool-workers] (RUNPOOL_GROUP)\n"
"  --requests-topic T     [runpool.requests]             (RUNPOOL_REQUESTS_TOPIC)\n"
"  --results-topic T      [runpool.results]              (RUNPOOL_RESULTS_TOPIC)\n"
"  --dlq-topic T          [runpool.dlq]                  (RUNPOOL_DLQ_TOPIC)\n"
"  --backend NAME         local | cloudrun [local]       (RUNPOOL_BACKEND)\n"
"  --state URL            file:///DIR                    (RUNPOOL_STATE)\n"
"  --max-inflight N       requests held at once [1024]   (RUNPOOL_MAX_INFLIGHT)\n"
"  --max-running N        executions in progress at once [= --max-inflight]\n"
"                                                        (RUNPOOL_MAX_RUNNING)\n"
"  --max-window N         per partition: offsets past the oldest unfinished\n"
"                         one before the partition pauses [10000]\n"
"                                                        (RUNPOOL_MAX_WINDOW)\n"
"  --drain-timeout S      on SIGTERM/SIGINT [30]         (RUNPOOL_DRAIN_TIMEOUT)\n"
"  --io-threads N         state-store threads [8]        (RUNPOOL_IO_THREADS)\n"
"  --output-max BYTES     stdout/stderr cap each [1 MiB] (RUNPOOL_OUTPUT_MAX)\n"
"  --result-max-bytes N   published result size cap [921600]\n"
"                         (RUNPOOL_RESULT_MAX_BYTES); keep it under the\n"
"                         results topic's max.message.bytes\n"
"  --worker-name NAME     in results and logs [HOST:PID] (RUNPOOL_WORKER_NAME)\n"
"  --executor PATH        local: runpool-executor [next to this binary]\n"
"                                                        (RUNPOOL_EXECUTOR)\n"
"  --workdir DIR          local: new sessions start in DIR/SESSION_ID\n"
"                                                        (RUNPOOL_WORKDIR)\n"
"  -X key=value           librdkafka setting (repeatable)\n"
"  -h, --help\n"
"\n"
"cloudrun backend (docs/cloudrun.md), from the environment: GCP_PROJECT_ID,\n"
"GCP_REGION, SANDBOX_EXECUTOR_IMAGE (required), SANDBOX_STATE_BUCKET (state\n"
"store gs://BUCKET when --state is not given), SANDBOX_JOB_TIMEOUT,\n"
"SANDBOX_JOB_MEMORY, SANDBOX_JOB_CPU, RUNPOOL_CLOUD_RUN_* (endpoint, job mode,\n"
"API calls per second, polling, service account, job-name prefix, ...).\n");
}

/* Integer option in [lo, hi]; names the option when wrong. */
static int parse_int(const char *name, const char *v, long lo, long hi,
                     long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "runpool-worker: %s: '%s' is not an integer in %ld..%ld\n",
                name, v, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

static const char *cloudrun_getenv(const char *name, void *opaque)
{
    (void)opaque;
    return getenv(name);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
    enum { O_BROKERS = 256, O_GROUP, O_REQ, O_RES, O_DLQ, O_BACKEND, O_STATE,
           O_MAXIN, O_DRAIN, O_IOT, O_OUTMAX, O_NAME, O_EXEC, O_WORKDIR,
           O_RESMAX, O_MAXWIN, O_MAXRUN };
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, O_BROKERS},
        {"group", required_argument, NULL, O_GROUP},
        {"requests-topic", required_argument, NULL, O_REQ},
        {"results-topic", required_argument, NULL, O_RES},
        {"dlq-topic", required_argument, NULL, O_DLQ},
        {"backend", required_argument, NULL, O_BACKEND},
        {"state", required_argument, NULL, O_STATE},
        {"max-inflight", required_argument, NULL, O_MAXIN},
        {"max-window", required_argument, NULL, O_MAXWIN},
        {"max-running", required_argument, NULL, O_MAXRUN},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"io-threads", required_argument, NULL, O_IOT},
        {"output-max", required_argument, NULL, O_OUTMAX},
        {"result-max-bytes", required_argument, NULL, O_RESMAX},
        {"worker-name", required_argument, NULL, O_NAME},
        {"executor", required_argument, NULL, O_EXEC},
        {"workdir", required_argument, NULL, O_WORKDIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    rp_worker_conf_t conf;
    const char *props[RP_KAFKA_PROPS_MAX];
    const char *maxin = env_or("RUNPOOL_MAX_INFLIGHT", NULL);
    const char *maxwin = env_or("RUNPOOL_MAX_WINDOW", NULL);
    const char *maxrun = env_or("RUNPOOL_MAX_RUNNING", NULL);
    const char *drain = env_or("RUNPOOL_DRAIN_TIMEOUT", NULL);
    const char *iot = env_or("RUNPOOL_IO_THREADS", NULL);
    const char *outmax = env_or("RUNPOOL_OUTPUT_MAX", NULL);
    const char *resmax = env_or("RUNPOOL_RESULT_MAX_BYTES", NULL);
    char exe[PATH_MAX], default_executor[PATH_MAX + 32], errstr[1024];
    rp_cloudrun_conf_t crconf;
    rp_worker_t *w = NULL;
    rp_gcp_t *gcp = NULL;
    bool is_cloudrun, is_gs;
    sigset_t sigs;
    int c, rc = 1;
    ssize_t len;

    memset(&conf, 0, sizeof(conf));
    conf.brokers = env_or("RUNPOOL_BROKERS", NULL);
    conf.group = env_or("RUNPOOL_GROUP", NULL);
    conf.requests_topic = env_or("RUNPOOL_REQUESTS_TOPIC", NULL);
    conf.results_topic = env_or("RUNPOOL_RESULTS_TOPIC", NULL);
    conf.dlq_topic = env_or("RUNPOOL_DLQ_TOPIC", NULL);
    conf.backend = env_or("RUNPOOL_BACKEND", NULL);
    conf.state_url = env_or("RUNPOOL_STATE", NULL);
    conf.worker_name = env_or("RUNPOOL_WORKER_NAME", NULL);
    conf.backend_conf.executor_path = env_or("RUNPOOL_EXECUTOR", NULL);
    conf.backend_conf.workdir = env_or("RUNPOOL_WORKDIR", NULL);
    conf.kafka_props = props;

    while ((c = getopt_long(argc, argv, "X:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BROKERS: conf.brokers = optarg; break;
        case O_GROUP: conf.group = optarg; break;
        case O_REQ: conf.requests_topic = optarg; break;
        case O_RES: conf.results_topic = optarg; break;
        case O_DLQ: conf.dlq_topic = optarg; break;
        case O_BACKEND: conf.backend = optarg; break;
        case O_STATE: conf.state_url = optarg; break;
        case O_MAXIN: maxin = optarg; break;
        case O_MAXWIN: maxwin = optarg; break;
        case O_MAXRUN: maxrun = optarg; break;
        case O_DRAIN: drain = optarg; break;
        case O_IOT: iot = optarg; break;
        case O_OUTMAX: outmax = optarg; break;
        case O_RESMAX: resmax = optarg; break;
        case O_NAME: conf.worker_name = optarg; break;
        case O_EXEC: conf.backend_conf.executor_path = optarg; break;
        case O_WORKDIR: conf.backend_conf.workdir = optarg; break;
        case 'X':
            if (conf.n_kafka_props >= RP_KAFKA_PROPS_MAX) {
                fprintf(stderr, "runpool-worker: at most %d -X settings\n",
                        RP_KAFKA_PROPS_MAX);
                return 2;
            }
            props[conf.n_kafka_props++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "runpool-worker: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    {
        /* Integer options: 0 (or -1 for the drain timeout) = not given. */
        long v_maxin = 0, v_maxrun = 0, v_maxwin = 0, v_drain = -1,
             v_iot = 0, v_outmax = 0, v_resmax = 0;
        const struct {
            const char *name, *value;
            long lo, hi, *out;
        } ints[] = {
            {"--max-inflight", maxin, 1, RP_WORKER_MAX_INFLIGHT_LIMIT, &v_maxin},
            {"--max-running", maxrun, 1, RP_WORKER_MAX_INFLIGHT_LIMIT,
             &v_maxrun},
            {"--max-window", maxwin, 1, RP_WORKER_MAX_WINDOW_LIMIT, &v_maxwin},
            {"--drain-timeout", drain, 0, 86400, &v_drain},
            {"--io-threads", iot, 1, 256, &v_iot},
            {"--output-max", outmax, 1, RP_OUTPUT_MAX_LIMIT, &v_outmax},
            {"--result-max-bytes", resmax, 16 * 1024, 64 * 1024 * 1024,
             &v_resmax},
        };

        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
            if (ints[i].value && parse_int(ints[i].name, ints[i].value,
                                           ints[i].lo, ints[i].hi,
                                           ints[i].out) != 0)
                return 2;
        conf.max_inflight = (int)v_maxin;
        conf.max_running = (int)v_maxrun;
        conf.max_window = (int)v_maxwin;
        if (v_drain >= 0) /* 0 asked for explicitly: do not wait */
            conf.drain_timeout_s = v_drain ? (int)v_drain : RP_WORKER_DRAIN_NONE;
        conf.io_threads = (int)v_iot;
        conf.output_max = (size_t)v_outmax;
        conf.result_max_bytes = (size_t)v_resmax;
    }
    if (!conf.backend_conf.executor_path) {
        /* Installed side by side: bin/runpool-worker, bin/runpool-executor. */
        len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (len > 0) {
            exe[len] = '\0';
            snprintf(default_executor, sizeof(default_executor),
                     "%s/runpool-executor", dirname(exe));
            conf.backend_conf.executor_path = default_executor;
        }
    }

    rp_log_init("worker", RP_LOG_INFO);
    /* Before any thread exists: SIGTERM/SIGINT are read from a signalfd,
     * and a closed pipe must be an error, not a death. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* ---- cloudrun backend settings (docs/cloudrun.md) ----
     * The backend reads GCP_*, SANDBOX_* and RUNPOOL_CLOUD_RUN_* itself
     * (lookup NULL = getenv) and runs its executors against the worker's
     * store; SANDBOX_STATE_BUCKET names that store when --state does not.
     * Read here too for the two facts main needs first: that store, and
     * whether the Admin API is an emulator (no credentials). */
    is_cloudrun = conf.backend && !strcmp(conf.backend, "cloudrun");
    if (is_cloudrun) {
        if (rp_cloudrun_conf_read(cloudrun_getenv, NULL, &crconf, errstr,
                                  sizeof(errstr)) != RP_OK) {
            rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
            fprintf(stderr, "runpool-worker: %s\n", errstr);
            rc = 2;
            goto out;
        }
        if (!conf.state_url && crconf.state_url[0])
            conf.state_url = crconf.state_url;
    }
    conf.backend_conf.lookup = NULL;
    /* ---- end cloudrun ---- */

    /* One Google context, before rp_worker_new starts threads: gs:// state
     * and the Admin API share its credentials (none for emulators). */
    is_gs = conf.state_url && !strncmp(conf.state_url, "gs://", 5);
    if (is_gs || is_cloudrun) {
        const char *emu = env_or("STORAGE_EMULATOR_HOST", NULL);
        bool auth = (is_gs && !emu) || (is_cloudrun && !crconf.endpoint_set);

        if (rp_gcp_new(auth, &gcp, errstr, sizeof(errstr)) != RP_OK) {
            rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
            fprintf(stderr, "runpool-worker: %s\n", errstr);
            rc = 2;
            goto out;
        }
    }
    conf.backend_conf.gcp = gcp;
    if (rp_worker_new(&conf, &w, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "config_error", NULL, NULL, "%s", errstr);
        fprintf(stderr, "runpool-worker: %s\n", errstr);
        rc = 2;
        goto out;
    }
    if (rp_worker_run(w, errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "worker_failed", NULL, NULL, "%s", errstr);
        goto out;
    }
    rc = 0;
out:
    rp_worker_destroy(w);
    rp_gcp_destroy(gcp);
    return rc;
}
