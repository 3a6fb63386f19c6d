/* runpool-devbroker — a throwaway Kafka broker for development and tests.
 *
 * It is librdkafka's own mock cluster (rdkafka_mock.h) in a process of its
 * own: real Kafka protocol on 127.0.0.1, topics, consumer groups and
 * committed offsets, all in memory. Nothing survives a restart, there is
 * no replication worth the name and no security: never point anything
 * that matters at it.
 *
 * The first line on stdout is `bootstrap.servers=HOST:PORT[,...]`, so a
 * script can start it and read where to connect; --bootstrap-file writes
 * the same line to a file (atomically) for tools that poll for it.
 *
 * Single-threaded on our side: main() sets up, then waits in sigwait()
 * for SIGTERM/SIGINT; librdkafka runs the brokers on its own threads.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "rp_err.h"
#include "rp_kafka.h"
#include "rp_log.h"

#define RP_DEVBROKER_BROKERS_MAX 16
#define RP_DEVBROKER_PARTITIONS_MAX 1024
#define RP_DEVBROKER_TOPIC_MAX 249 /* Kafka's own limit on topic names */
/* "bootstrap.servers=" plus 127.0.0.1:PORT per broker, with room to
 * spare: librdkafka's string is copied in, never grown from input. */
#define RP_DEVBROKER_LINE_MAX 2048

typedef struct devbroker_opts {
    int brokers;
    int partitions;
    const char *bootstrap_file; /* borrowed from argv; NULL: none */
    const char *topics[3];      /* requests, results, dlq; borrowed */
} devbroker_opts_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runpool-devbroker [--brokers N] [--partitions N]\n"
            "                         [--bootstrap-file PATH]\n"
            "                         [--requests-topic T] [--results-topic T]"
            " [--dlq-topic T]\n"
            "\n"
            "A Kafka broker for DEVELOPMENT ONLY: librdkafka's mock cluster,\n"
            "listening on 127.0.0.1. It keeps nothing: all topics, messages\n"
            "and committed offsets live in memory and are gone when it exits.\n"
            "Each partition keeps at most 5 MiB or 100,000 message batches:\n"
            "past that the oldest are dropped, silently (librdkafka's mock\n"
            "log limit). It cannot look up offsets by time.\n"
            "\n"
            "Prints `bootstrap.servers=HOST:PORT[,...]` as its first line on\n"
            "stdout, then runs until SIGTERM or SIGINT.\n"
            "\n"
            "  --brokers N          brokers in the cluster (1..%d, default 1)\n"
            "  --partitions N       partitions per topic (1..%d, default 4)\n"
            "  --bootstrap-file P   also write the bootstrap line to P\n"
            "                       (atomically; removed again on exit)\n"
            "  --requests-topic T   default %s\n"
            "  --results-topic T    default %s\n"
            "  --dlq-topic T        default %s\n"
            "  -h, --help           show this help\n"
            "  --version            print the version\n",
            RP_DEVBROKER_BROKERS_MAX, RP_DEVBROKER_PARTITIONS_MAX,
            RP_TOPIC_REQUESTS_DEFAULT, RP_TOPIC_RESULTS_DEFAULT,
            RP_TOPIC_DLQ_DEFAULT);
}

/* Parse a decimal int in [min, max]; -1 when it is not one. */
static int parse_int(const char *s, int min, int max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    return (int)v;
}

/* Kafka topic names: 1..249 of [A-Za-z0-9._-], and not "." or "..". */
static int topic_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > RP_DEVBROKER_TOPIC_MAX || !strcmp(t, ".") ||
        !strcmp(t, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Returns 0 to run, 1 to exit 0 (--help), 2 for a usage error. */
static int parse_args(int argc, char **argv, devbroker_opts_t *o)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"partitions", required_argument, NULL, 'p'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"requests-topic", required_argument, NULL, 'q'},
        {"results-topic", required_argument, NULL, 'r'},
        {"dlq-topic", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->brokers = 1;
    o->partitions = 4;
    o->bootstrap_file = NULL;
    o->topics[0] = RP_TOPIC_REQUESTS_DEFAULT;
    o->topics[1] = RP_TOPIC_RESULTS_DEFAULT;
    o->topics[2] = RP_TOPIC_DLQ_DEFAULT;
    opterr = 0; /* one message, ours */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->brokers = parse_int(optarg, 1, RP_DEVBROKER_BROKERS_MAX);
            if (o->brokers < 0) {
                fprintf(stderr, "runpool-devbroker: --brokers: want 1..%d\n",
                        RP_DEVBROKER_BROKERS_MAX);
                return 2;
            }
            break;
        case 'p':
            o->partitions = parse_int(optarg, 1, RP_DEVBROKER_PARTITIONS_MAX);
            if (o->partitions < 0) {
                fprintf(stderr,
                        "runpool-devbroker: --partitions: want 1..%d\n",
                        RP_DEVBROKER_PARTITIONS_MAX);
                return 2;
            }
            break;
        case 'f':
            o->bootstrap_file = optarg;
            break;
        case 'q':
            o->topics[0] = optarg;
            break;
        case 'r':
            o->topics[1] = optarg;
            break;
        case 'd':
            o->topics[2] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("runpool-devbroker %s\n", RP_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "runpool-devbroker: %s needs a value (see "
                            "--help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "runpool-devbroker: unknown option '%s' (see "
                            "--help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "runpool-devbroker: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    for (int i = 0; i < 3; i++)
        if (!topic_ok(o->topics[i])) {
            fprintf(stderr, "runpool-devbroker: bad topic name '%s'\n",
                    o->topics[i]);
            return 2;
        }
    return 0;
}

/* Write line to path via a temporary file and rename(2), so a reader never
 * sees a half-written file. */
static rp_err_t write_atomic(const char *path, const char *line, char *errstr,
                             size_t errstr_size)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    rp_err_t err = RP_OK;
    int n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "bootstrap file path too long");
    if (!(f = fopen(tmp, "w"))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "%s: %s", tmp,
                      strerror(errno));
        goto out;
    }
    if (fputs(line, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "%s: %s", tmp,
                      strerror(errno));
        goto out;
    }
    if (fclose(f) != 0) {
        f = NULL;
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "%s: %s", tmp,
                      strerror(errno));
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "rename %s: %s", path,
                      strerror(errno));
out:
    if (f)
        fclose(f);
    if (err)
        unlink(tmp);
    return err;
}

/* librdkafka's own log lines (the mock cluster logs through the handle)
 * become ours, so stderr stays one JSON object per line. Called from
 * librdkafka threads; rp_log is thread-safe. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    rp_log_level_t l = level <= 3 ? RP_LOG_ERROR
                       : level <= 5 ? RP_LOG_WARN
                       : level <= 6 ? RP_LOG_INFO
                                    : RP_LOG_DEBUG;

    (void)rk;
    /* The hosting handle never connects anywhere, so its warning about
     * having no bootstrap.servers is noise. */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers"))
        return;
    rp_log(l, "kafka_log", NULL, NULL, "%s: %s", fac, buf);
}

int main(int argc, char **argv)
{
    devbroker_opts_t o;
    char errstr[512], line[RP_DEVBROKER_LINE_MAX];
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    const char *bootstraps;
    sigset_t stopset;
    int rc = 1, sig = 0, n, wrote_file = 0;

    switch (parse_args(argc, argv, &o)) {
    case 0:
        break;
    case 1:
        return 0;
    default:
        return 2;
    }
    rp_log_init("devbroker", RP_LOG_INFO);

    /* Block the stop signals before librdkafka starts its threads (they
     * inherit the mask), so only sigwait() below ever receives them. */
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);
    /* A reader that closes our stdout early must not kill the broker. */
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    /* The handle only hosts the mock cluster; it never talks to it. */
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rp_log(RP_LOG_ERROR, "kafka_init_failed", NULL, NULL, "%s", errstr);
        goto out;
    }
    conf = NULL; /* rd_kafka_new took it */

    if (!(mc = rd_kafka_mock_cluster_new(rk, o.brokers))) {
        rp_log(RP_LOG_ERROR, "mock_cluster_failed", NULL, NULL,
               "could not create a mock cluster of %d brokers", o.brokers);
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        int rf = o.brokers < 3 ? o.brokers : 3;
        rd_kafka_resp_err_t kerr =
            rd_kafka_mock_topic_create(mc, o.topics[i], o.partitions, rf);

        if (kerr) {
            rp_log(RP_LOG_ERROR, "topic_create_failed", NULL, NULL,
                   "topic %s: %s", o.topics[i], rd_kafka_err2str(kerr));
            goto out;
        }
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    n = snprintf(line, sizeof(line), "bootstrap.servers=%s\n", bootstraps);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        rp_log(RP_LOG_ERROR, "bootstrap_too_long", NULL, NULL,
               "bootstrap list longer than %d bytes", RP_DEVBROKER_LINE_MAX);
        goto out;
    }
    if (o.bootstrap_file) {
        if (write_atomic(o.bootstrap_file, line, errstr, sizeof(errstr))) {
            rp_log(RP_LOG_ERROR, "bootstrap_file_failed", NULL, NULL, "%s",
                   errstr);
            goto out;
        }
        wrote_file = 1;
    }
    /* The first stdout line is the contract with whoever started us. */
    fputs(line, stdout);
    fflush(stdout);

    rp_log(RP_LOG_INFO, "devbroker_started", NULL, NULL,
           "DEVELOPMENT broker (librdkafka mock cluster, in memory only: "
           "keeps nothing across restarts) at %s; %d broker(s), topics %s, "
           "%s, %s with %d partitions",
           bootstraps, o.brokers, o.topics[0], o.topics[1], o.topics[2],
           o.partitions);

    while (sigwait(&stopset, &sig) != 0) {
        /* sigwait only fails for a bad set; keep waiting regardless. */
    }
    rp_log(RP_LOG_INFO, "devbroker_stopping", NULL, NULL,
           "got %s; all topics and offsets are discarded",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    if (wrote_file && unlink(o.bootstrap_file) != 0)
        rp_log(RP_LOG_WARN, "bootstrap_file_remove_failed", NULL, NULL,
               "%s: %s", o.bootstrap_file, strerror(errno));
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}
