/* runpool-produce — send one request (or JSON lines from stdin) to runpool
 * and optionally wait for the results. See usage() for the interface. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_msg.h"
#include "rp_producer.h"
#include "rp_time.h"

/* Exit statuses, also the result statuses they stand for. */
#define EXIT_SUCCEEDED 0 /* status succeeded, or sent without --wait */
#define EXIT_FAILED 1    /* status failed or timed_out */
#define EXIT_TROUBLE 2   /* usage error, send error, rejected/error, no result */

/* How long one send may wait for the broker's acknowledgement. */
#define RP_PRODUCE_SEND_TIMEOUT_MS 30000
#define RP_PRODUCE_WAIT_DEFAULT_S 300
#define RP_PRODUCE_WAIT_MAX_S (7 * 86400)
/* --stdin --wait keeps every sent id until its result is printed; this
 * many at most per run (the producer tracks no more than this anyway). */
#define RP_PRODUCE_STDIN_WAIT_MAX RP_PRODUCER_TRACKED_MAX

static const char *prog = "runpool-produce";

typedef struct produce_opts {
    const char *brokers;
    const char *session;
    const char *execution_id;
    const char *requests_topic;
    const char *results_topic;
    const char *kafka_config;
    const char *signing_keys;
    const char *signing_kid;
    int timeout_s; /* 0 = not given */
    bool close;
    bool use_stdin;
    bool wait;
    int wait_s;
    const char *props[RP_KAFKA_PROPS_MAX];
    size_t n_props;
    rp_env_t env;
    char *command; /* owned; NULL when no COMMAND words */
} produce_opts_t;

static void usage(FILE *out)
{
    fprintf(out,
"usage: %s --brokers B --session S [options] -- COMMAND...\n"
"       %s --brokers B --session S --close [options]\n"
"       %s --brokers B --stdin [options] < requests.jsonl\n"
"\n"
"Sends an execution request to runpool and prints its execution_id.\n"
"COMMAND words are joined with single spaces and run by /bin/sh -c in the\n"
"session's working directory and environment.\n"
"\n"
"  --brokers B          Kafka bootstrap servers (default: $RUNPOOL_BROKERS)\n"
"  --session S          session id (request key; same session = in order)\n"
"  --execution-id ID    execution id (default: a new UUID)\n"
"  --timeout-s N        command timeout, %d..%d seconds (default %d)\n"
"  --env K=V            per-command environment variable (repeatable)\n"
"  --close              close the session instead of running a command\n"
"  --wait[=SECONDS]     wait for the result (default %d s) and print it\n"
"                       instead of the id; exit 0 succeeded, 1 failed or\n"
"                       timed_out, 2 rejected, error or no result in time\n"
"  --stdin              send request JSON objects, one per line, from\n"
"                       standard input; with --wait, print every result\n"
"                       (in input order) after all are sent\n"
"  --requests-topic T   (default $RUNPOOL_REQUESTS_TOPIC, else %s)\n"
"  --results-topic T    (default $RUNPOOL_RESULTS_TOPIC, else %s)\n"
"  --kafka-config FILE  librdkafka settings, key=value lines (default\n"
"                       $RUNPOOL_KAFKA_CONFIG); RUNPOOL_KAFKA_<NAME> variables\n"
"                       override it, -X overrides both\n"
"  --signing-keys FILE  sign each request (header runpool-signature) with a\n"
"                       key of FILE, lines KID:BASE64-KEY (yours and 0600, or\n"
"                       root's and at most 0640)\n"
"                       (default $RUNPOOL_SIGNING_KEYS; see the README,\n"
"                       Signed requests)\n"
"  --signing-kid KID    the key to sign with (default: the file's first)\n"
"  -X key=value         librdkafka setting (repeatable)\n"
"  -h, --help           show this help\n"
"  --version            print the version\n",
            prog, prog, prog, RP_TIMEOUT_MIN_S, RP_TIMEOUT_MAX_S,
            RP_TIMEOUT_DEFAULT_S, RP_PRODUCE_WAIT_DEFAULT_S,
            RP_TOPIC_REQUESTS_DEFAULT, RP_TOPIC_RESULTS_DEFAULT);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage message; returns the exit status for it. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return EXIT_TROUBLE;
}

/* Whole-string decimal integer in [min, max]. */
static bool parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

static bool valid_id_arg(const char *s)
{
    return rp_id_valid(s, strlen(s));
}

/* Join argv words with single spaces, at most RP_COMMAND_MAX bytes. */
static char *join_words(char **words, int n)
{
    size_t total = 0, off = 0;
    char *out;

    for (int i = 0; i < n; i++) {
        total += strlen(words[i]) + 1;
        if (total > RP_COMMAND_MAX + 1)
            return NULL;
    }
    out = malloc(total);
    if (!out)
        return NULL;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(words[i]);

        if (i)
            out[off++] = ' ';
        memcpy(out + off, words[i], len);
        off += len;
    }
    out[off] = '\0';
    return out;
}

/* Returns -1 when the options are fine, else the exit status. */
static int parse_args(int argc, char **argv, produce_opts_t *o)
{
    enum {
        OPT_BROKERS = 256, OPT_SESSION, OPT_EXEC_ID, OPT_TIMEOUT, OPT_ENV,
        OPT_CLOSE, OPT_WAIT, OPT_STDIN, OPT_REQ_TOPIC, OPT_RES_TOPIC,
        OPT_KAFKA_CONFIG, OPT_VERSION, OPT_SIGNING_KEYS, OPT_SIGNING_KID,
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"session", required_argument, NULL, OPT_SESSION},
        {"execution-id", required_argument, NULL, OPT_EXEC_ID},
        {"timeout-s", required_argument, NULL, OPT_TIMEOUT},
        {"env", required_argument, NULL, OPT_ENV},
        {"close", no_argument, NULL, OPT_CLOSE},
        {"wait", optional_argument, NULL, OPT_WAIT},
        {"stdin", no_argument, NULL, OPT_STDIN},
        {"requests-topic", required_argument, NULL, OPT_REQ_TOPIC},
        {"results-topic", required_argument, NULL, OPT_RES_TOPIC},
        {"kafka-config", required_argument, NULL, OPT_KAFKA_CONFIG},
        {"signing-keys", required_argument, NULL, OPT_SIGNING_KEYS},
        {"signing-kid", required_argument, NULL, OPT_SIGNING_KID},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0; /* we print our own messages */
    /* '+': stop at the first non-option, so COMMAND words (even ones
     * starting with '-') are never taken for our options. */
    while ((c = getopt_long(argc, argv, "+:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_BROKERS:
            o->brokers = optarg;
            break;
        case OPT_SESSION:
            if (!valid_id_arg(optarg))
                return usage_error("--session '%s': must be 1..%d chars of "
                                   "[A-Za-z0-9._:-]", optarg, RP_ID_MAX);
            o->session = optarg;
            break;
        case OPT_EXEC_ID:
            if (!valid_id_arg(optarg))
                return usage_error("--execution-id '%s': must be 1..%d chars "
                                   "of [A-Za-z0-9._:-]", optarg, RP_ID_MAX);
            o->execution_id = optarg;
            break;
        case OPT_TIMEOUT:
            if (!parse_int(optarg, RP_TIMEOUT_MIN_S, RP_TIMEOUT_MAX_S,
                           &o->timeout_s))
                return usage_error("--timeout-s '%s': must be an integer "
                                   "%d..%d", optarg, RP_TIMEOUT_MIN_S,
                                   RP_TIMEOUT_MAX_S);
            break;
        case OPT_ENV: {
            const char *eq = strchr(optarg, '=');
            char name[RP_ENV_NAME_MAX + 1];
            size_t nlen = eq ? (size_t)(eq - optarg) : 0;

            if (!eq || nlen > RP_ENV_NAME_MAX)
                return usage_error("--env '%s': expected NAME=VALUE", optarg);
            memcpy(name, optarg, nlen);
            name[nlen] = '\0';
            if (!rp_env_name_valid(name))
                return usage_error("--env '%s': the name must match "
                                   "[A-Za-z_][A-Za-z0-9_]*", optarg);
            if (strlen(eq + 1) > RP_ENV_VALUE_MAX)
                return usage_error("--env '%s': value too long", name);
            if (!rp_env_get(&o->env, name) && o->env.n >= RP_ENV_MAX_VARS)
                return usage_error("too many --env variables (at most %d)",
                                   RP_ENV_MAX_VARS);
            if (rp_env_set(&o->env, name, eq + 1)) {
                fprintf(stderr, "%s: out of memory\n", prog);
                return EXIT_TROUBLE;
            }
            break;
        }
        case OPT_CLOSE:
            o->close = true;
            break;
        case OPT_WAIT:
            o->wait = true;
            o->wait_s = RP_PRODUCE_WAIT_DEFAULT_S;
            if (optarg && !parse_int(optarg, 0, RP_PRODUCE_WAIT_MAX_S,
                                     &o->wait_s))
                return usage_error("--wait=%s: must be a number of seconds "
                                   "0..%d", optarg, RP_PRODUCE_WAIT_MAX_S);
            break;
        case OPT_STDIN:
            o->use_stdin = true;
            break;
        case OPT_REQ_TOPIC:
            o->requests_topic = optarg;
            break;
        case OPT_RES_TOPIC:
            o->results_topic = optarg;
            break;
        case OPT_KAFKA_CONFIG:
            o->kafka_config = optarg;
            break;
        case OPT_SIGNING_KEYS:
            o->signing_keys = optarg;
            break;
        case OPT_SIGNING_KID:
            o->signing_kid = optarg;
            break;
        case OPT_VERSION:
            printf("%s %s\n", prog, RP_VERSION);
            return EXIT_SUCCEEDED;
        case 'X':
            if (o->n_props >= RP_KAFKA_PROPS_MAX)
                return usage_error("too many -X settings (at most %d)",
                                   RP_KAFKA_PROPS_MAX);
            if (!strchr(optarg, '='))
                return usage_error("-X '%s': expected key=value", optarg);
            o->props[o->n_props++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCEEDED;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }

    if (!o->brokers || !*o->brokers)
        o->brokers = getenv("RUNPOOL_BROKERS");
    if (!o->signing_keys || !*o->signing_keys)
        o->signing_keys = getenv("RUNPOOL_SIGNING_KEYS");
    /* The same variables as runpool-worker's. */
    if (!o->requests_topic || !*o->requests_topic)
        o->requests_topic = getenv("RUNPOOL_REQUESTS_TOPIC");
    if (!o->results_topic || !*o->results_topic)
        o->results_topic = getenv("RUNPOOL_RESULTS_TOPIC");
    if (o->requests_topic && !*o->requests_topic)
        o->requests_topic = NULL;
    if (o->results_topic && !*o->results_topic)
        o->results_topic = NULL;
    if (!o->brokers || !*o->brokers)
        return usage_error("no brokers: give --brokers or set RUNPOOL_BROKERS");
    if (optind < argc) {
        o->command = join_words(argv + optind, argc - optind);
        if (!o->command)
            return usage_error("COMMAND is longer than %d bytes",
                               RP_COMMAND_MAX);
    }

    if (o->use_stdin) {
        if (o->session || o->execution_id || o->timeout_s || o->env.n ||
            o->close || o->command)
            return usage_error("--stdin takes the requests from standard "
                               "input: --session, --execution-id, --timeout-s, "
                               "--env, --close and COMMAND do not apply");
        return -1;
    }
    if (!o->session)
        return usage_error("--session is required");
    if (o->close) {
        if (o->command || o->timeout_s || o->env.n)
            return usage_error("--close takes no COMMAND, --timeout-s or "
                               "--env");
    } else if (!o->command || !*o->command) {
        return usage_error("no COMMAND given (put it after --)");
    }
    return -1;
}

/* Exit status for one result; prints it on stdout as one line. */
static int report_result(char *json, size_t len)
{
    rp_result_t res = {0};
    char err[512];
    int status;

    /* Keep "one result per line" even if a producer pretty-printed it. */
    if (memchr(json, '\n', len)) {
        cJSON_Minify(json);
        len = strlen(json);
    }
    fwrite(json, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (rp_result_parse(json, len, &res, err, sizeof(err))) {
        fprintf(stderr, "%s: unreadable result: %s\n", prog, err);
        status = EXIT_TROUBLE;
    } else if (res.status == RP_STATUS_SUCCEEDED) {
        status = EXIT_SUCCEEDED;
    } else if (res.status == RP_STATUS_FAILED ||
               res.status == RP_STATUS_TIMED_OUT) {
        status = EXIT_FAILED;
    } else {
        status = EXIT_TROUBLE;
    }
    rp_result_clear(&res);
    return status;
}

/* Wait (until deadline_ms on the monotonic clock) for id's result. */
static int wait_and_report(rp_producer_t *p, const char *id,
                           int64_t deadline_ms)
{
    int64_t left = deadline_ms - rp_time_mono_ms();
    char err[512], *json = NULL;
    size_t len = 0;
    int status;

    if (rp_producer_wait(p, id, left > 0 ? (int)left : 0, &json, &len, err,
                         sizeof(err))) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EXIT_TROUBLE;
    }
    status = report_result(json, len);
    free(json);
    return status;
}

static int run_single(rp_producer_t *p, produce_opts_t *o)
{
    rp_request_t req = {0};
    char err[512];
    int status = EXIT_TROUBLE;

    snprintf(req.session_id, sizeof(req.session_id), "%s", o->session);
    if (o->execution_id)
        snprintf(req.execution_id, sizeof(req.execution_id), "%s",
                 o->execution_id);
    req.op = o->close ? RP_OP_CLOSE_SESSION : RP_OP_EXEC;
    req.command = o->command; /* borrowed; detached before clearing */
    req.timeout_s = o->timeout_s ? o->timeout_s : RP_TIMEOUT_DEFAULT_S;
    req.env = o->env;

    if (rp_producer_send(p, &req, RP_PRODUCE_SEND_TIMEOUT_MS, err,
                         sizeof(err))) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    if (!o->wait) {
        printf("%s\n", req.execution_id);
        status = EXIT_SUCCEEDED;
        goto out;
    }
    status = wait_and_report(p, req.execution_id,
                             rp_time_mono_ms() + (int64_t)o->wait_s * 1000);
out:
    /* command and env belong to o. */
    req.command = NULL;
    memset(&req.env, 0, sizeof(req.env));
    rp_request_clear(&req);
    return status;
}

/* Read one line (without its '\n') into buf (RP_REQUEST_MAX bytes). Returns
 * false at end of input. A longer line is consumed and *too_long set. */
static bool read_line(FILE *in, char *buf, size_t *len, bool *too_long)
{
    int ch;
    bool any = false;

    *len = 0;
    *too_long = false;
    while ((ch = getc_unlocked(in)) != EOF) {
        any = true;
        if (ch == '\n')
            return true;
        if (*len < RP_REQUEST_MAX)
            buf[(*len)++] = (char)ch;
        else
            *too_long = true;
    }
    return any;
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", s[i]) || s[i] == '\0')
            return false;
    return true;
}

static int run_stdin(rp_producer_t *p, const produce_opts_t *o)
{
    char *line = malloc(RP_REQUEST_MAX);
    char (*ids)[RP_ID_MAX + 1] = NULL;
    size_t n_ids = 0, cap_ids = 0, len;
    unsigned long lineno = 0;
    bool too_long;
    int status = EXIT_SUCCEEDED;
    char err[512];

    if (!line) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_TROUBLE;
    }
    while (read_line(stdin, line, &len, &too_long)) {
        char id[RP_ID_MAX + 1];
        rp_err_t rc;

        lineno++;
        if (too_long) {
            fprintf(stderr, "%s: line %lu: longer than %d bytes; not sent\n",
                    prog, lineno, RP_REQUEST_MAX);
            status = EXIT_TROUBLE;
            continue;
        }
        if (is_blank(line, len))
            continue;
        if (o->wait && n_ids >= RP_PRODUCE_STDIN_WAIT_MAX) {
            fprintf(stderr, "%s: line %lu: more than %d requests to wait for;"
                    " not sent\n", prog, lineno, RP_PRODUCE_STDIN_WAIT_MAX);
            status = EXIT_TROUBLE;
            continue;
        }
        rc = rp_producer_send_json(p, line, len, id,
                                   RP_PRODUCE_SEND_TIMEOUT_MS, err,
                                   sizeof(err));
        if (rc) {
            fprintf(stderr, "%s: line %lu: %s\n", prog, lineno, err);
            status = EXIT_TROUBLE;
            /* A bad line is skipped; a broken connection would fail every
             * following line the same slow way, so stop there. */
            if (rc == RP_ERR_INVALID || rc == RP_ERR_TOO_LARGE)
                continue;
            break;
        }
        if (!o->wait) {
            printf("%s\n", id);
            fflush(stdout);
            continue;
        }
        if (n_ids == cap_ids) {
            size_t ncap = cap_ids ? cap_ids * 2 : 64;
            void *grown = realloc(ids, ncap * sizeof(*ids));

            if (!grown) {
                fprintf(stderr, "%s: out of memory\n", prog);
                status = EXIT_TROUBLE;
                break;
            }
            ids = grown;
            cap_ids = ncap;
        }
        memcpy(ids[n_ids++], id, sizeof(id));
    }
    if (ferror(stdin)) {
        fprintf(stderr, "%s: reading standard input: %s\n", prog,
                strerror(errno));
        status = EXIT_TROUBLE;
    }

    if (o->wait) {
        /* One deadline for the whole batch, not one per result. */
        int64_t deadline = rp_time_mono_ms() + (int64_t)o->wait_s * 1000;

        for (size_t i = 0; i < n_ids; i++) {
            int s = wait_and_report(p, ids[i], deadline);

            if (s > status)
                status = s;
        }
    }
    free(ids);
    free(line);
    return status;
}

int main(int argc, char **argv)
{
    produce_opts_t o = {0};
    rp_producer_conf_t conf = {0};
    rp_producer_t *p = NULL;
    rp_kafka_props_t kprops = {0};
    char err[512];
    int status;

    rp_log_init("produce", RP_LOG_WARN);
    status = parse_args(argc, argv, &o);
    if (status >= 0)
        goto out;

    conf.brokers = o.brokers;
    conf.requests_topic = o.requests_topic;
    conf.results_topic = o.results_topic;
    /* file < RUNPOOL_KAFKA_* < -X (rp_kafka.h) */
    if (rp_kafka_props_load(&kprops, o.kafka_config, o.props, o.n_props,
                            NULL, err, sizeof(err))) {
        fprintf(stderr, "%s: %s\n", prog, err);
        status = EXIT_TROUBLE;
        goto out;
    }
    conf.props = (const char *const *)kprops.kv;
    conf.n_props = kprops.n;
    conf.watch_results = o.wait;
    conf.signing_keys = o.signing_keys;
    conf.signing_kid = o.signing_kid;
    if (rp_producer_new(&conf, &p, err, sizeof(err))) {
        fprintf(stderr, "%s: %s\n", prog, err);
        status = EXIT_TROUBLE;
        goto out;
    }
    status = o.use_stdin ? run_stdin(p, &o) : run_single(p, &o);
out:
    rp_producer_destroy(p);
    rp_env_clear(&o.env);
    rp_kafka_props_clear(&kprops);
    free(o.command);
    return status;
}
