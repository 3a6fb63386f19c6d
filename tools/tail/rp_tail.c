/* rp_tail — options, filters, formats, request index and stats of
 * runpool-tail. See rp_tail.h. */
#include "rp_tail.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rp_codes.h"
#include "rp_time.h"

const char *const rp_tail_statuses[RP_TAIL_STATUS_N] = {
    "succeeded", "failed", "timed_out", "rejected", "error", "dlq",
};

void rp_tail_usage(FILE *out)
{
    fprintf(out,
"usage: runpool-tail [options]\n"
"\n"
"Follows runpool's results topic (and/or the DLQ) from outside the pool.\n"
"Reads with assign() and read_committed: it joins no consumer group and\n"
"commits nothing, so it never disturbs the workers.\n"
"\n"
"  --brokers B          Kafka bootstrap servers (default: $RUNPOOL_BROKERS)\n"
"  --dlq                follow the DLQ instead of the results\n"
"  --both               follow the results and the DLQ\n"
"  --session S          only these sessions (repeatable, or a,b,c)\n"
"  --execution ID       only these execution ids (repeatable, or a,b,c)\n"
"  --status S           only these statuses: succeeded failed timed_out\n"
"                       rejected error dlq (repeatable, or a,b,c)\n"
"  --worker W           only results of these workers (repeatable, a,b,c)\n"
"  --from WHERE         where to start in every partition:\n"
"                         end (default), beginning,\n"
"                         TIME: RFC 3339 (2026-12-03T10:00:00Z) or\n"
"                               @UNIX_SECONDS (@1764756000),\n"
"                         N: absolute offset N, -N: the last N records\n"
"                            (N up to %d, and at most %u MiB of\n"
"                            them in all)\n"
"  --format F           json (one object per line, for jq) or table\n"
"                       (default: table on a terminal, json otherwise)\n"
"  --with-requests      join each result with its request (read from the\n"
"                       requests topic; remembers at most %d)\n"
"  --stats[=SECONDS]    print a rolling summary every SECONDS (default %d):\n"
"                       rate, status mix, p50/p99 duration\n"
"  --exit-at-end        stop once every partition is read to its current end\n"
"  --metrics-listen A:P instead of printing, serve the results and the DLQ\n"
"                       as Prometheus metrics at http://A:P/metrics:\n"
"                       runpool_stream_results_total{status,code},\n"
"                       runpool_stream_result_duration_seconds{status},\n"
"                       runpool_stream_dlq_total{reason}\n"
"  --results-topic T    (default $RUNPOOL_RESULTS_TOPIC or %s)\n"
"  --dlq-topic T        (default $RUNPOOL_DLQ_TOPIC or %s)\n"
"  --requests-topic T   (default $RUNPOOL_REQUESTS_TOPIC or %s)\n"
"  --kafka-config FILE  librdkafka settings, key=value lines (default\n"
"                       $RUNPOOL_KAFKA_CONFIG); RUNPOOL_KAFKA_<NAME> variables\n"
"                       override it, -X overrides both (docs/kafka.md)\n"
"  -X key=value         librdkafka setting (repeatable)\n"
"  -h, --help           show this help\n"
"  --version            show the version\n"
"\n"
"Colours only when stdout is a terminal and NO_COLOR is unset.\n"
"Exits 0 on Ctrl-C or SIGTERM after closing the consumer, and when the\n"
"reader of stdout goes away (| head); 2 on bad usage, 1 on a Kafka error\n"
"or when stdout cannot be written (a full disk).\n",
            RP_TAIL_LAST_MAX, RP_TAIL_LAST_BYTES_MAX / (1024u * 1024u),
            RP_TAIL_REQUESTS_MAX, RP_TAIL_STATS_DEFAULT_S,
            RP_TOPIC_RESULTS_DEFAULT, RP_TOPIC_DLQ_DEFAULT,
            RP_TOPIC_REQUESTS_DEFAULT);
}

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (!errstr || !size)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

/* Whole-string decimal integer, no sign. */
static bool parse_u64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return false;
    *out = v;
    return true;
}

rp_err_t rp_tail_parse_from(const char *s, rp_tail_from_t *out, char *errstr,
                            size_t errstr_size)
{
    int64_t v;

    if (!strcmp(s, "end")) {
        out->kind = RP_TAIL_FROM_END;
        out->value = 0;
    } else if (!strcmp(s, "beginning")) {
        out->kind = RP_TAIL_FROM_BEGINNING;
        out->value = 0;
    } else if (s[0] == '@' && parse_u64(s + 1, &v) &&
               v <= INT64_MAX / 1000) {
        out->kind = RP_TAIL_FROM_TIME;
        out->value = v * 1000;
    } else if (s[0] == '-' && parse_u64(s + 1, &v) && v > 0 &&
               v <= RP_TAIL_LAST_MAX) {
        out->kind = RP_TAIL_FROM_LAST;
        out->value = v;
    } else if (parse_u64(s, &v)) {
        out->kind = RP_TAIL_FROM_OFFSET;
        out->value = v;
    } else if (rp_time_parse_rfc3339(s, &v) == 0) {
        out->kind = RP_TAIL_FROM_TIME;
        out->value = v;
    } else {
        seterr(errstr, errstr_size,
               "--from '%s': expected beginning, end, an RFC 3339 time "
               "(2026-12-03T10:00:00Z), @UNIX_SECONDS, an offset N or -N "
               "for the last N", s);
        return RP_ERR_INVALID;
    }
    return RP_OK;
}

/* Split a comma list into f, keeping a copy in c->strs. */
static rp_err_t add_filter(rp_tail_conf_t *c, rp_tail_filter_t *f,
                           const char *opt, const char *arg, char *errstr,
                           size_t errstr_size)
{
    char *copy, *save = NULL, *tok, **strs;

    strs = realloc(c->strs, (c->n_strs + 1) * sizeof(*strs));
    if (!strs)
        return RP_ERR_NOMEM;
    c->strs = strs;
    if (!(copy = strdup(arg)))
        return RP_ERR_NOMEM;
    c->strs[c->n_strs++] = copy;
    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (f->n >= RP_TAIL_FILTER_MAX) {
            seterr(errstr, errstr_size, "--%s: at most %d values", opt,
                   RP_TAIL_FILTER_MAX);
            return RP_ERR_INVALID;
        }
        f->v[f->n++] = tok;
    }
    return RP_OK;
}

static bool known_status(const char *s)
{
    for (int i = 0; i < RP_TAIL_STATUS_N; i++)
        if (!strcmp(s, rp_tail_statuses[i]))
            return true;
    return false;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && *v ? v : dflt;
}

rp_tail_parse_t rp_tail_parse_args(rp_tail_conf_t *c, int argc, char **argv,
                                   char *errstr, size_t errstr_size)
{
    enum {
        OPT_BROKERS = 256, OPT_DLQ, OPT_BOTH, OPT_SESSION, OPT_EXEC,
        OPT_STATUS, OPT_WORKER, OPT_FROM, OPT_FORMAT, OPT_WITH_REQ,
        OPT_STATS, OPT_EXIT_AT_END, OPT_METRICS, OPT_RES_TOPIC,
        OPT_DLQ_TOPIC, OPT_REQ_TOPIC, OPT_VERSION, OPT_KAFKA_CONFIG,
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"dlq", no_argument, NULL, OPT_DLQ},
        {"both", no_argument, NULL, OPT_BOTH},
        {"session", required_argument, NULL, OPT_SESSION},
        {"execution", required_argument, NULL, OPT_EXEC},
        {"status", required_argument, NULL, OPT_STATUS},
        {"worker", required_argument, NULL, OPT_WORKER},
        {"from", required_argument, NULL, OPT_FROM},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"with-requests", no_argument, NULL, OPT_WITH_REQ},
        {"stats", optional_argument, NULL, OPT_STATS},
        {"exit-at-end", no_argument, NULL, OPT_EXIT_AT_END},
        {"metrics-listen", required_argument, NULL, OPT_METRICS},
        {"results-topic", required_argument, NULL, OPT_RES_TOPIC},
        {"dlq-topic", required_argument, NULL, OPT_DLQ_TOPIC},
        {"requests-topic", required_argument, NULL, OPT_REQ_TOPIC},
        {"kafka-config", required_argument, NULL, OPT_KAFKA_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    rp_err_t err;
    int opt;
    size_t first_status;

    memset(c, 0, sizeof(*c));
    c->brokers = env_or("RUNPOOL_BROKERS", NULL);
    c->results_topic = env_or("RUNPOOL_RESULTS_TOPIC", RP_TOPIC_RESULTS_DEFAULT);
    c->dlq_topic = env_or("RUNPOOL_DLQ_TOPIC", RP_TOPIC_DLQ_DEFAULT);
    c->requests_topic = env_or("RUNPOOL_REQUESTS_TOPIC",
                               RP_TOPIC_REQUESTS_DEFAULT);
    c->read_results = true;

    opterr = 0;
    optind = 1; /* callable more than once (unit tests) */
    while ((opt = getopt_long(argc, argv, ":X:h", longopts, NULL)) != -1) {
        err = RP_OK;
        switch (opt) {
        case OPT_BROKERS:
            c->brokers = optarg;
            break;
        case OPT_DLQ:
            c->read_results = false;
            c->read_dlq = true;
            break;
        case OPT_BOTH:
            c->read_results = c->read_dlq = true;
            break;
        case OPT_SESSION:
            err = add_filter(c, &c->session, "session", optarg, errstr,
                             errstr_size);
            break;
        case OPT_EXEC:
            err = add_filter(c, &c->execution, "execution", optarg, errstr,
                             errstr_size);
            break;
        case OPT_STATUS:
            first_status = c->status.n;
            err = add_filter(c, &c->status, "status", optarg, errstr,
                             errstr_size);
            for (size_t i = first_status; !err && i < c->status.n; i++)
                if (!known_status(c->status.v[i])) {
                    seterr(errstr, errstr_size,
                           "--status '%s': expected succeeded, failed, "
                           "timed_out, rejected, error or dlq",
                           c->status.v[i]);
                    return RP_TAIL_PARSE_ERROR;
                }
            break;
        case OPT_WORKER:
            err = add_filter(c, &c->worker, "worker", optarg, errstr,
                             errstr_size);
            break;
        case OPT_FROM:
            if (rp_tail_parse_from(optarg, &c->from, errstr, errstr_size))
                return RP_TAIL_PARSE_ERROR;
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "json"))
                c->format = RP_TAIL_FMT_JSON;
            else if (!strcmp(optarg, "table"))
                c->format = RP_TAIL_FMT_TABLE;
            else {
                seterr(errstr, errstr_size,
                       "--format '%s': expected json or table", optarg);
                return RP_TAIL_PARSE_ERROR;
            }
            break;
        case OPT_WITH_REQ:
            c->with_requests = true;
            break;
        case OPT_STATS: {
            int64_t v = RP_TAIL_STATS_DEFAULT_S;

            if (optarg && (!parse_u64(optarg, &v) || v < 1 ||
                           v > RP_TAIL_STATS_MAX_S)) {
                seterr(errstr, errstr_size,
                       "--stats=%s: expected seconds 1..%d", optarg,
                       RP_TAIL_STATS_MAX_S);
                return RP_TAIL_PARSE_ERROR;
            }
            c->stats_s = (int)v;
            break;
        }
        case OPT_EXIT_AT_END:
            c->exit_at_end = true;
            break;
        case OPT_METRICS:
            c->metrics_listen = optarg;
            break;
        case OPT_RES_TOPIC:
            c->results_topic = optarg;
            break;
        case OPT_DLQ_TOPIC:
            c->dlq_topic = optarg;
            break;
        case OPT_REQ_TOPIC:
            c->requests_topic = optarg;
            break;
        case OPT_KAFKA_CONFIG:
            c->kafka_config = optarg;
            break;
        case 'X':
            if (c->n_props >= RP_KAFKA_PROPS_MAX) {
                seterr(errstr, errstr_size, "too many -X settings (at most %d)",
                       RP_KAFKA_PROPS_MAX);
                return RP_TAIL_PARSE_ERROR;
            }
            if (!strchr(optarg, '=')) {
                seterr(errstr, errstr_size, "-X '%s': expected key=value",
                       optarg);
                return RP_TAIL_PARSE_ERROR;
            }
            c->props[c->n_props++] = optarg;
            break;
        case 'h':
            return RP_TAIL_PARSE_HELP;
        case OPT_VERSION:
            return RP_TAIL_PARSE_VERSION;
        case ':':
            seterr(errstr, errstr_size, "option '%s' needs a value",
                   argv[optind - 1]);
            return RP_TAIL_PARSE_ERROR;
        default:
            seterr(errstr, errstr_size, "unknown option '%s'",
                   argv[optind - 1]);
            return RP_TAIL_PARSE_ERROR;
        }
        if (err == RP_ERR_NOMEM)
            seterr(errstr, errstr_size, "out of memory");
        if (err)
            return RP_TAIL_PARSE_ERROR;
    }
    if (optind < argc) {
        seterr(errstr, errstr_size, "unexpected argument '%s'", argv[optind]);
        return RP_TAIL_PARSE_ERROR;
    }
    if (!c->brokers || !*c->brokers) {
        seterr(errstr, errstr_size, "--brokers (or $RUNPOOL_BROKERS) is "
               "required");
        return RP_TAIL_PARSE_ERROR;
    }
    if (c->metrics_listen) {
        if (c->stats_s || c->with_requests) {
            seterr(errstr, errstr_size, "--metrics-listen prints no records: "
                   "it cannot go with --stats or --with-requests");
            return RP_TAIL_PARSE_ERROR;
        }
        c->read_results = c->read_dlq = true; /* both feed the metrics */
    }
    if (c->with_requests && !c->read_results) {
        seterr(errstr, errstr_size, "--with-requests joins results: it "
               "cannot go with --dlq alone (use --both)");
        return RP_TAIL_PARSE_ERROR;
    }
    return RP_TAIL_PARSE_OK;
}

void rp_tail_conf_free(rp_tail_conf_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_strs; i++)
        free(c->strs[i]);
    free(c->strs);
    c->strs = NULL;
    c->n_strs = 0;
}

/* ---- records ---- */

static const char *jstr(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

static long long jint(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);

    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static char *dup_n(const void *p, size_t n)
{
    char *s = malloc(n + 1);

    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

rp_err_t rp_tail_rec_init(rp_tail_rec_t *r, rp_tail_source_t src,
                          int32_t partition, int64_t offset, int64_t ts_ms,
                          const void *key, size_t key_len, const void *value,
                          size_t len, const rp_tail_dlq_hdrs_t *hdrs)
{
    char *k;

    memset(r, 0, sizeof(*r));
    r->source = src;
    r->partition = partition;
    r->offset = offset;
    r->timestamp_ms = ts_ms;
    r->exit_code = r->duration_ms = -1;
    k = dup_n(key ? key : "", key ? key_len : 0);
    r->raw = dup_n(value ? value : "", value ? len : 0);
    if (!k || !r->raw) {
        free(k);
        free(r->raw);
        r->raw = NULL;
        return RP_ERR_NOMEM;
    }
    r->key = k;
    r->doc = cJSON_ParseWithLength(r->raw, value ? len : 0);
    if (r->doc && !cJSON_IsObject(r->doc)) {
        cJSON_Delete(r->doc);
        r->doc = NULL;
    }
    r->execution = jstr(r->doc, "execution_id");
    r->session = jstr(r->doc, "session_id");
    if (!*r->session)
        r->session = r->key; /* the key is the session on both topics */
    if (src == RP_TAIL_SRC_RESULTS) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->doc, "error");

        r->status = jstr(r->doc, "status");
        r->worker = jstr(r->doc, "worker");
        r->code = jstr(e, "code");
        r->message = jstr(e, "message");
        r->exit_code = jint(r->doc, "exit_code");
        r->duration_ms = jint(r->doc, "duration_ms");
    } else {
        r->status = "dlq";
        r->worker = hdrs && hdrs->worker ? hdrs->worker : "";
        r->code = hdrs && hdrs->code ? hdrs->code : "";
        r->message = hdrs && hdrs->message ? hdrs->message : "";
    }
    return RP_OK;
}

void rp_tail_rec_clear(rp_tail_rec_t *r)
{
    if (!r)
        return;
    cJSON_Delete(r->doc);
    free(r->raw);
    free((char *)r->key);
    memset(r, 0, sizeof(*r));
}

static bool filter_ok(const rp_tail_filter_t *f, const char *v)
{
    if (!f->n)
        return true;
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i], v))
            return true;
    return false;
}

bool rp_tail_match(const rp_tail_conf_t *c, const rp_tail_rec_t *r)
{
    return filter_ok(&c->session, r->session) &&
           filter_ok(&c->execution, r->execution) &&
           filter_ok(&c->status, r->status) &&
           filter_ok(&c->worker, r->worker);
}

/* ---- formats ---- */

char *rp_tail_format_json(const rp_tail_rec_t *r, bool with_request,
                          const cJSON *request)
{
    cJSON *o = cJSON_CreateObject(), *v = NULL;
    char ts[RP_TIME_RFC3339_MAX], *line = NULL;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "topic",
                            r->source == RP_TAIL_SRC_DLQ ? "dlq" : "results");
    cJSON_AddNumberToObject(o, "partition", r->partition);
    cJSON_AddNumberToObject(o, "offset", (double)r->offset);
    if (r->timestamp_ms >= 0) {
        rp_time_rfc3339(r->timestamp_ms, ts, sizeof(ts));
        cJSON_AddStringToObject(o, "timestamp", ts);
    } else {
        cJSON_AddNullToObject(o, "timestamp");
    }
    cJSON_AddStringToObject(o, "key", r->key);
    if (r->source == RP_TAIL_SRC_RESULTS) {
        v = r->doc ? cJSON_Duplicate(r->doc, 1) : cJSON_CreateString(r->raw);
        if (!v)
            goto out;
        cJSON_AddItemToObject(o, "result", v);
    } else {
        cJSON *d = cJSON_AddObjectToObject(o, "dlq");

        if (!d)
            goto out;
        cJSON_AddStringToObject(d, "reason", r->code);
        cJSON_AddStringToObject(d, "message", r->message);
        cJSON_AddStringToObject(d, "worker", r->worker);
        /* The original payload: as JSON when it parses, else as text. */
        v = r->doc ? cJSON_Duplicate(r->doc, 1) : cJSON_CreateString(r->raw);
        if (!v)
            goto out;
        cJSON_AddItemToObject(d, "payload", v);
    }
    if (with_request) {
        v = request ? cJSON_Duplicate(request, 1) : cJSON_CreateNull();
        if (!v)
            goto out;
        cJSON_AddItemToObject(o, "request", v);
    }
    line = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return line;
}

#define C_RESET "\033[0m"
#define C_DIM "\033[2m"

static const char *status_color(const char *status)
{
    if (!strcmp(status, "succeeded"))
        return "\033[32m"; /* green */
    if (!strcmp(status, "failed") || !strcmp(status, "error"))
        return "\033[31m"; /* red */
    if (!strcmp(status, "dlq"))
        return "\033[35m"; /* magenta */
    return "\033[33m";     /* yellow: timed_out, rejected */
}

void rp_tail_table_header(FILE *out, bool with_request, bool color)
{
    fprintf(out, "%s%-24s %-12s %-20s %-36s %-10s %4s %9s %-20s%s%s\n",
            color ? C_DIM : "", "TIME", "PART:OFFSET", "SESSION", "EXECUTION",
            "STATUS", "EXIT", "DURATION", "WORKER",
            with_request ? " COMMAND" : "", color ? C_RESET : "");
}

/* Print at most max bytes of s on one line: control characters as '.'. */
static void put_oneline(FILE *out, const char *s, size_t max)
{
    size_t i;

    for (i = 0; s[i] && i < max; i++)
        fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '.' : s[i], out);
    if (s[i])
        fputs("...", out);
}

void rp_tail_format_table(FILE *out, const rp_tail_rec_t *r,
                          bool with_request, const cJSON *request, bool color)
{
    char ts[RP_TIME_RFC3339_MAX] = "-", po[40], ex[24], dur[32];

    if (r->timestamp_ms >= 0)
        rp_time_rfc3339(r->timestamp_ms, ts, sizeof(ts));
    snprintf(po, sizeof(po), "%d:%lld", (int)r->partition,
             (long long)r->offset);
    if (r->exit_code >= 0)
        snprintf(ex, sizeof(ex), "%lld", r->exit_code);
    else
        snprintf(ex, sizeof(ex), "-");
    if (r->duration_ms >= 0)
        snprintf(dur, sizeof(dur), "%lldms", r->duration_ms);
    else
        snprintf(dur, sizeof(dur), "-");
    fprintf(out, "%-24s %-12s %-20s %-36s %s%-10s%s %4s %9s %-20s", ts, po,
            *r->session ? r->session : "-",
            *r->execution ? r->execution : "-",
            color ? status_color(r->status) : "",
            *r->status ? r->status : "?", color ? C_RESET : "", ex, dur,
            *r->worker ? r->worker : "-");
    if (with_request) {
        const char *cmd = jstr(request, "command");

        fputc(' ', out);
        if (!request)
            fputs("(request not seen)", out);
        else if (*cmd)
            put_oneline(out, cmd, 80);
        else
            fputs(jstr(request, "type"), out);
    }
    fputc('\n', out);
    /* Why it did not succeed, on a second line. */
    if (*r->code || *r->message) {
        fprintf(out, "    %s%s: ", color ? C_DIM : "", r->code);
        put_oneline(out, r->message, 200);
        fprintf(out, "%s\n", color ? C_RESET : "");
    } else if (r->source == RP_TAIL_SRC_RESULTS &&
               strcmp(r->status, "succeeded") && r->doc) {
        const char *err = jstr(r->doc, "stderr");

        if (*err && strcmp(jstr(r->doc, "encoding"), "base64")) {
            fprintf(out, "    %sstderr: ", color ? C_DIM : "");
            put_oneline(out, err, 200);
            fprintf(out, "%s\n", color ? C_RESET : "");
        }
    }
}

/* ---- exporter labels ---- */

void rp_tail_metric_labels(const rp_tail_rec_t *r, const char **status,
                           const char **code)
{
    rp_code_t c;

    *status = "other";
    for (int i = 0; i < RP_TAIL_STATUS_N; i++)
        if (!strcmp(r->status, rp_tail_statuses[i]))
            *status = rp_tail_statuses[i];
    if (!*r->code)
        *code = "none";
    else if (rp_code_parse(r->code, &c) == 0)
        *code = rp_code_str(c);
    else
        *code = "other";
}

/* ---- request index: a chained hash over a FIFO ring ---- */

typedef struct rp_tail_req {
    char *eid;
    cJSON *doc;
    size_t next; /* chain, SIZE_MAX = end */
    bool used;
} rp_tail_req_t;

struct rp_tail_reqs {
    rp_tail_req_t *ring; /* max slots, filled in FIFO order */
    size_t max, head, n;
    size_t *buckets; /* SIZE_MAX = empty */
    size_t n_buckets;
};

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

rp_tail_reqs_t *rp_tail_reqs_new(size_t max)
{
    rp_tail_reqs_t *q;

    if (max < 1 || max > RP_TAIL_REQUESTS_MAX)
        return NULL;
    if (!(q = calloc(1, sizeof(*q))))
        return NULL;
    q->max = max;
    q->n_buckets = max * 2;
    q->ring = calloc(max, sizeof(*q->ring));
    q->buckets = malloc(q->n_buckets * sizeof(*q->buckets));
    if (!q->ring || !q->buckets) {
        rp_tail_reqs_destroy(q);
        return NULL;
    }
    for (size_t i = 0; i < q->n_buckets; i++)
        q->buckets[i] = SIZE_MAX;
    return q;
}

void rp_tail_reqs_destroy(rp_tail_reqs_t *q)
{
    if (!q)
        return;
    if (q->ring)
        for (size_t i = 0; i < q->max; i++) {
            free(q->ring[i].eid);
            cJSON_Delete(q->ring[i].doc);
        }
    free(q->ring);
    free(q->buckets);
    free(q);
}

/* Unlink slot i from its chain. */
static void reqs_unlink(rp_tail_reqs_t *q, size_t i)
{
    size_t *p = &q->buckets[hash_str(q->ring[i].eid) % q->n_buckets];

    while (*p != SIZE_MAX && *p != i)
        p = &q->ring[*p].next;
    if (*p == i)
        *p = q->ring[i].next;
}

static size_t reqs_find(const rp_tail_reqs_t *q, const char *eid)
{
    size_t i = q->buckets[hash_str(eid) % q->n_buckets];

    while (i != SIZE_MAX && strcmp(q->ring[i].eid, eid))
        i = q->ring[i].next;
    return i;
}

rp_err_t rp_tail_reqs_add(rp_tail_reqs_t *q, cJSON *doc)
{
    const char *eid = jstr(doc, "execution_id");
    size_t i, b;
    char *copy;

    if (!*eid) {
        cJSON_Delete(doc);
        return RP_ERR_INVALID;
    }
    if ((i = reqs_find(q, eid)) != SIZE_MAX) {
        cJSON_Delete(q->ring[i].doc); /* the newer one wins */
        q->ring[i].doc = doc;
        return RP_OK;
    }
    if (!(copy = strdup(eid))) {
        cJSON_Delete(doc);
        return RP_ERR_NOMEM;
    }
    i = q->head;
    if (q->ring[i].used) { /* full: forget the oldest */
        reqs_unlink(q, i);
        free(q->ring[i].eid);
        cJSON_Delete(q->ring[i].doc);
        q->n--;
    }
    b = hash_str(copy) % q->n_buckets;
    q->ring[i] = (rp_tail_req_t){.eid = copy, .doc = doc,
                                 .next = q->buckets[b], .used = true};
    q->buckets[b] = i;
    q->head = (q->head + 1) % q->max;
    q->n++;
    return RP_OK;
}

const cJSON *rp_tail_reqs_get(const rp_tail_reqs_t *q, const char *eid)
{
    size_t i;

    if (!q || !eid || !*eid)
        return NULL;
    i = reqs_find(q, eid);
    return i == SIZE_MAX ? NULL : q->ring[i].doc;
}

size_t rp_tail_reqs_count(const rp_tail_reqs_t *q)
{
    return q ? q->n : 0;
}

/* ---- stats ---- */

rp_err_t rp_tail_stats_init(rp_tail_stats_t *s, int64_t now_ms)
{
    memset(s, 0, sizeof(*s));
    s->interval_start_ms = now_ms;
    s->samples = malloc(RP_TAIL_STATS_SAMPLES_MAX * sizeof(*s->samples));
    return s->samples ? RP_OK : RP_ERR_NOMEM;
}

void rp_tail_stats_clear(rp_tail_stats_t *s)
{
    if (!s)
        return;
    free(s->samples);
    s->samples = NULL;
}

static int status_index(const char *status)
{
    for (int i = 0; i < RP_TAIL_STATUS_N; i++)
        if (!strcmp(status, rp_tail_statuses[i]))
            return i;
    return -1;
}

void rp_tail_stats_add(rp_tail_stats_t *s, const rp_tail_rec_t *r)
{
    int i = status_index(r->status);

    s->n++;
    s->total++;
    if (i >= 0) {
        s->by_status[i]++;
        s->total_by_status[i]++;
    }
    if (r->duration_ms >= 0) {
        if (s->n_samples < RP_TAIL_STATS_SAMPLES_MAX)
            s->samples[s->n_samples++] = r->duration_ms;
        else
            s->samples_capped = true;
    }
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

long long rp_tail_stats_percentile(rp_tail_stats_t *s, double p)
{
    size_t rank;

    if (!s->n_samples || p <= 0 || p > 100)
        return -1;
    qsort(s->samples, s->n_samples, sizeof(*s->samples), cmp_ll);
    /* nearest rank: the smallest value with at least p% at or below it */
    rank = (size_t)((p / 100.0) * (double)s->n_samples + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n_samples)
        rank = s->n_samples;
    return s->samples[rank - 1];
}

void rp_tail_stats_print(rp_tail_stats_t *s, FILE *out, bool json,
                         int64_t now_ms)
{
    int64_t span = now_ms - s->interval_start_ms;
    double secs = span > 0 ? (double)span / 1000.0 : 0.0;
    double rate = secs > 0 ? (double)s->n / secs : 0.0;
    long long p50 = rp_tail_stats_percentile(s, 50);
    long long p99 = rp_tail_stats_percentile(s, 99);

    if (json) {
        cJSON *o = cJSON_CreateObject(), *st, *tot;
        char *line;

        if (!o)
            return;
        cJSON_AddNumberToObject(o, "interval_s", secs);
        cJSON_AddNumberToObject(o, "count", (double)s->n);
        cJSON_AddNumberToObject(o, "rate_per_s", rate);
        st = cJSON_AddObjectToObject(o, "status");
        for (int i = 0; st && i < RP_TAIL_STATUS_N; i++)
            cJSON_AddNumberToObject(st, rp_tail_statuses[i],
                                    (double)s->by_status[i]);
        if (p50 >= 0) {
            cJSON_AddNumberToObject(o, "p50_ms", (double)p50);
            cJSON_AddNumberToObject(o, "p99_ms", (double)p99);
        } else {
            cJSON_AddNullToObject(o, "p50_ms");
            cJSON_AddNullToObject(o, "p99_ms");
        }
        cJSON_AddBoolToObject(o, "samples_capped", s->samples_capped);
        cJSON_AddNumberToObject(o, "total", (double)s->total);
        tot = cJSON_AddObjectToObject(o, "total_status");
        for (int i = 0; tot && i < RP_TAIL_STATUS_N; i++)
            cJSON_AddNumberToObject(tot, rp_tail_statuses[i],
                                    (double)s->total_by_status[i]);
        if ((line = cJSON_PrintUnformatted(o))) {
            fprintf(out, "%s\n", line);
            free(line);
        }
        cJSON_Delete(o);
    } else {
        char ts[RP_TIME_RFC3339_MAX];

        rp_time_rfc3339(rp_time_wall_ms(), ts, sizeof(ts));
        fprintf(out, "%s  %zu in %.1fs (%.1f/s) ", ts, s->n, secs, rate);
        for (int i = 0; i < RP_TAIL_STATUS_N; i++)
            if (s->by_status[i])
                fprintf(out, " %s=%zu", rp_tail_statuses[i], s->by_status[i]);
        if (p50 >= 0)
            fprintf(out, "  p50=%lldms p99=%lldms%s", p50, p99,
                    s->samples_capped ? " (first samples only)" : "");
        fprintf(out, "  | total %zu\n", s->total);
    }
    fflush(out);
    s->interval_start_ms = now_ms;
    s->n = 0;
    s->n_samples = 0;
    s->samples_capped = false;
    memset(s->by_status, 0, sizeof(s->by_status));
}
