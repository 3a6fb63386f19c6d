/* rp_replay — see rp_replay.h. */
#include "rp_replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

#include "rp_codes.h"
#include "rp_contract.h"
#include "rp_ids.h"
#include "rp_request.h"
#include "rp_time.h"

#define RP_REPLAY_IDLE_DEFAULT_S 30

const char *rp_replay_skip_str(rp_replay_skip_t s)
{
    static const char *const names[] = {
#define RP_REPLAY_SKIP_STR_(n, str) str,
        RP_REPLAY_SKIPS(RP_REPLAY_SKIP_STR_)
#undef RP_REPLAY_SKIP_STR_
    };
    return (unsigned)s < RP_REPLAY_SKIP__COUNT ? names[s] : "unknown";
}

void rp_replay_usage(FILE *out, const char *prog)
{
    fprintf(out,
"usage: %s --brokers B RANGE [FILTERS] [MODE] [options]\n"
"\n"
"Re-reads a range of a runpool topic (it stops at the range end, never\n"
"follows) and prints it as JSON lines, copies it, or re-submits it.\n"
"\n"
"Range (exactly one kind):\n"
"  --partition P        one partition (with --start-offset/--end-offset, or\n"
"                       to narrow --since/--until to it)\n"
"  --start-offset A     first offset to read (with --partition)\n"
"  --end-offset B       last offset to read, inclusive (with --partition)\n"
"  --range P:A-B        partition P, offsets A..B inclusive (repeatable)\n"
"  --since TIME         from the first record at or after TIME (RFC 3339,\n"
"                       e.g. 2026-12-03T10:00:00Z, or unix seconds)\n"
"  --until TIME         up to the last record before TIME (default: the\n"
"                       end of each partition when the run starts)\n"
"Filters (all given must match):\n"
"  --session S          key or session_id is S\n"
"  --execution ID       execution_id (header or value) is ID\n"
"  --status ST          result status (header or value) is ST\n"
"  --reason CODE        DLQ reason (runpool.error.code header) is CODE\n"
"Modes (default: print JSON lines on stdout):\n"
"  --copy-to TOPIC      produce each record to TOPIC, same key and headers\n"
"  --reexecute          re-submit requests to the requests topic, each with\n"
"                       execution_id ID.rTAG and header " RP_REPLAY_HEADER_OF "=ID;\n"
"                       needs --session-prefix P (session P+SESSION) or\n"
"                       --same-session\n"
"  --replay-tag TAG     with --reexecute: the TAG of the new ids (1-16 of\n"
"                       a-z 0-9; default: 8 random hex digits, printed).\n"
"                       Give a run's tag again to resume it without\n"
"                       running anything twice\n"
"  --from-dlq           re-drive DLQ records into the requests topic as\n"
"                       they are (key and headers kept, plus\n"
"                       " RP_REPLAY_HEADER_SOURCE "); only retriable\n"
"                       reasons unless --reason or --all\n"
"  --all                with --from-dlq: every reason\n"
"  --session-prefix P   with --reexecute: the scratch session prefix\n"
"  --same-session       with --reexecute: run in the original session\n"
"Options:\n"
"  --topic T            topic to read (default: the requests topic; with\n"
"                       --from-dlq the DLQ topic)\n"
"  --brokers B          Kafka bootstrap servers (default: $RUNPOOL_BROKERS)\n"
"  --requests-topic T   (default $RUNPOOL_REQUESTS_TOPIC or %s)\n"
"  --dlq-topic T        (default $RUNPOOL_DLQ_TOPIC or %s)\n"
"  --dry-run            print what would be sent (JSON lines), send nothing\n"
"  --progress / --no-progress  progress bar on stderr (default: on a TTY)\n"
"  --idle-timeout-s N   give up when no record came for N s (default %d)\n"
"  --kafka-config FILE  librdkafka settings, key=value lines (default\n"
"                       $RUNPOOL_KAFKA_CONFIG); RUNPOOL_KAFKA_<NAME> variables\n"
"                       override it, -X overrides both (docs/kafka.md)\n"
"  -X key=value         librdkafka setting (repeatable)\n"
"  -h, --help           show this help\n"
"  -V, --version        show the version\n"
"\n"
"Exit status: 0 done, 1 a Kafka error or a send not acknowledged,\n"
"2 bad options or a refused range.\n",
            prog, RP_TOPIC_REQUESTS_DEFAULT, RP_TOPIC_DLQ_DEFAULT,
            RP_REPLAY_IDLE_DEFAULT_S);
}

static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int rp_replay_parse_time(const char *s, int64_t *ms)
{
    int64_t secs;

    if (!s || !*s)
        return -1;
    /* Unix seconds up to year 9999. */
    if (parse_i64(s, 0, 253402300799LL, &secs)) {
        *ms = secs * 1000;
        return 0;
    }
    return rp_time_parse_rfc3339(s, ms);
}

/* "P:A-B" into r. */
static bool parse_range(const char *s, rp_replay_range_t *r)
{
    char buf[80], *colon, *dash;
    int64_t p;

    if (strlen(s) >= sizeof(buf))
        return false;
    memcpy(buf, s, strlen(s) + 1);
    colon = strchr(buf, ':');
    if (!colon)
        return false;
    *colon = '\0';
    dash = strchr(colon + 1, '-');
    if (!dash)
        return false;
    *dash = '\0';
    if (!parse_i64(buf, 0, INT32_MAX, &p) ||
        !parse_i64(colon + 1, 0, INT64_MAX, &r->start) ||
        !parse_i64(dash + 1, 0, INT64_MAX, &r->end))
        return false;
    r->partition = (int32_t)p;
    return true;
}

static rp_err_t check_id_arg(const char *opt, const char *v, char *errstr,
                             size_t errstr_size)
{
    if (!rp_id_valid(v, strlen(v)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s '%s': must be 1..%d characters of [A-Za-z0-9._:-]",
                       opt, v, RP_ID_MAX);
    return RP_OK;
}

/* The cross-option rules: one range kind, complete, in order. */
static rp_err_t check_conf(rp_replay_conf_t *c, char *errstr,
                           size_t errstr_size)
{
    bool offsets = c->start_offset >= 0 || c->end_offset >= 0;
    bool times = c->has_since || c->has_until;

    if (!c->brokers || !*c->brokers)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "no brokers: give --brokers or set RUNPOOL_BROKERS");
    if ((offsets || c->n_ranges) && times)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "ambiguous range: give offsets (--start-offset/"
                       "--end-offset or --range) or times (--since/--until), "
                       "not both");
    if (offsets && c->n_ranges)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "ambiguous range: give --partition/--start-offset/"
                       "--end-offset or --range, not both");
    if (offsets) {
        if (c->partition < 0)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "--start-offset/--end-offset need --partition "
                           "(or use --range P:A-B)");
        if (c->start_offset < 0 || c->end_offset < 0)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "incomplete range: give both --start-offset and "
                           "--end-offset");
        c->ranges[0].partition = c->partition;
        c->ranges[0].start = c->start_offset;
        c->ranges[0].end = c->end_offset;
        c->n_ranges = 1;
    } else if (c->n_ranges && c->partition >= 0) {
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "ambiguous range: --range names its partition; "
                       "drop --partition");
    }
    if (!c->n_ranges && !times)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "no range: give --partition P --start-offset A "
                       "--end-offset B, --range P:A-B, or --since/--until");
    if (times && !c->has_since)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "incomplete range: --until needs --since");
    if (c->has_since && c->has_until && c->until_ms <= c->since_ms)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "empty range: --until must be after --since");
    for (size_t i = 0; i < c->n_ranges; i++) {
        if (c->ranges[i].end < c->ranges[i].start)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "partition %d: end offset %lld is before start "
                           "offset %lld",
                           (int)c->ranges[i].partition,
                           (long long)c->ranges[i].end,
                           (long long)c->ranges[i].start);
        for (size_t j = 0; j < i; j++)
            if (c->ranges[j].partition == c->ranges[i].partition)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "ambiguous range: partition %d given twice",
                               (int)c->ranges[i].partition);
    }
    if (c->mode == RP_REPLAY_REEXEC) {
        if (!c->session_prefix && !c->same_session)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "--reexecute needs --session-prefix P (a scratch "
                           "session P+SESSION) or --same-session, so replays "
                           "never mix into a live session by accident");
        if (c->session_prefix && c->same_session)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "give --session-prefix or --same-session, not both");
        if (!c->tag[0]) {
            unsigned char rnd[RP_REPLAY_TAG_DEFAULT_LEN / 2];

            if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                return rp_errf(errstr, errstr_size, RP_ERR_IO,
                               "no random bytes for the replay tag: %s",
                               strerror(errno));
            for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(c->tag + 2 * i, 3, "%02x", rnd[i]);
        }
    } else if (c->session_prefix || c->same_session || c->tag[0]) {
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--session-prefix, --same-session and --replay-tag "
                       "only go with --reexecute");
    }
    if (c->all && c->mode != RP_REPLAY_FROM_DLQ)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--all only goes with --from-dlq");
    if (c->all && c->reason)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "give --all or --reason, not both");
    if (c->mode == RP_REPLAY_PRINT && c->dry_run)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--dry-run only goes with --copy-to, --reexecute or "
                       "--from-dlq (printing sends nothing anyway)");
    if (!c->topic)
        c->topic = c->mode == RP_REPLAY_FROM_DLQ ? c->dlq_topic
                                                 : c->requests_topic;
    if (c->mode == RP_REPLAY_COPY && !strcmp(c->copy_to, c->topic))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--copy-to '%s' is the topic being read", c->copy_to);
    if (c->mode == RP_REPLAY_FROM_DLQ && !strcmp(c->topic, c->requests_topic))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--from-dlq reads the DLQ, not the requests topic '%s'",
                       c->topic);
    return RP_OK;
}

rp_err_t rp_replay_conf_parse(rp_replay_conf_t *c, int argc, char **argv,
                              const char *env_brokers, const char *env_req,
                              const char *env_dlq, char *errstr,
                              size_t errstr_size)
{
    enum {
        O_BROKERS = 256, O_TOPIC, O_REQ, O_DLQ, O_PART, O_START, O_END,
        O_RANGE, O_SINCE, O_UNTIL, O_SESSION, O_EXEC, O_STATUS, O_REASON,
        O_COPY, O_REEXEC, O_FROMDLQ, O_ALL, O_PREFIX, O_SAME, O_DRY,
        O_PROG, O_NOPROG, O_IDLE, O_TAG, O_KCONF,
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, O_BROKERS},
        {"topic", required_argument, NULL, O_TOPIC},
        {"requests-topic", required_argument, NULL, O_REQ},
        {"dlq-topic", required_argument, NULL, O_DLQ},
        {"partition", required_argument, NULL, O_PART},
        {"start-offset", required_argument, NULL, O_START},
        {"end-offset", required_argument, NULL, O_END},
        {"range", required_argument, NULL, O_RANGE},
        {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"session", required_argument, NULL, O_SESSION},
        {"execution", required_argument, NULL, O_EXEC},
        {"status", required_argument, NULL, O_STATUS},
        {"reason", required_argument, NULL, O_REASON},
        {"copy-to", required_argument, NULL, O_COPY},
        {"reexecute", no_argument, NULL, O_REEXEC},
        {"from-dlq", no_argument, NULL, O_FROMDLQ},
        {"all", no_argument, NULL, O_ALL},
        {"session-prefix", required_argument, NULL, O_PREFIX},
        {"same-session", no_argument, NULL, O_SAME},
        {"replay-tag", required_argument, NULL, O_TAG},
        {"kafka-config", required_argument, NULL, O_KCONF},
        {"dry-run", no_argument, NULL, O_DRY},
        {"progress", no_argument, NULL, O_PROG},
        {"no-progress", no_argument, NULL, O_NOPROG},
        {"idle-timeout-s", required_argument, NULL, O_IDLE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    int64_t v;
    bool mode_set = false;
    rp_err_t err;

    memset(c, 0, sizeof(*c));
    c->partition = -1;
    c->start_offset = c->end_offset = -1;
    c->progress = -1;
    c->idle_timeout_s = RP_REPLAY_IDLE_DEFAULT_S;
    c->brokers = env_brokers;
    c->requests_topic = env_req && *env_req ? env_req : RP_TOPIC_REQUESTS_DEFAULT;
    c->dlq_topic = env_dlq && *env_dlq ? env_dlq : RP_TOPIC_DLQ_DEFAULT;
    optind = 0; /* GNU: full reset, so tests can parse many times */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:X:hV", longopts, NULL)) != -1) {
        rp_replay_mode_t m = RP_REPLAY_PRINT;

        switch (opt) {
        case 'h': c->help = true; return RP_OK;
        case 'V': c->version = true; return RP_OK;
        case O_BROKERS: c->brokers = optarg; break;
        case O_TOPIC: c->topic = optarg; break;
        case O_REQ: c->requests_topic = optarg; break;
        case O_DLQ: c->dlq_topic = optarg; break;
        case O_PART:
            if (!parse_i64(optarg, 0, INT32_MAX, &v))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "--partition '%s': expected a partition number",
                               optarg);
            c->partition = (int32_t)v;
            break;
        case O_START:
        case O_END:
            if (!parse_i64(optarg, 0, INT64_MAX, &v))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "%s '%s': expected an offset (0 or more)",
                               opt == O_START ? "--start-offset" : "--end-offset",
                               optarg);
            *(opt == O_START ? &c->start_offset : &c->end_offset) = v;
            break;
        case O_RANGE:
            if (c->n_ranges >= RP_REPLAY_RANGES_MAX)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "too many --range (at most %d)",
                               RP_REPLAY_RANGES_MAX);
            if (!parse_range(optarg, &c->ranges[c->n_ranges]))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "--range '%s': expected PARTITION:START-END",
                               optarg);
            c->n_ranges++;
            break;
        case O_SINCE:
        case O_UNTIL:
            if (rp_replay_parse_time(optarg, opt == O_SINCE ? &c->since_ms
                                                            : &c->until_ms))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "%s '%s': expected RFC 3339 (2026-12-03T10:00:00Z) "
                               "or unix seconds",
                               opt == O_SINCE ? "--since" : "--until", optarg);
            *(opt == O_SINCE ? &c->has_since : &c->has_until) = true;
            break;
        case O_SESSION:
            if ((err = check_id_arg("--session", optarg, errstr, errstr_size)))
                return err;
            c->session = optarg;
            break;
        case O_EXEC:
            if ((err = check_id_arg("--execution", optarg, errstr, errstr_size)))
                return err;
            c->execution = optarg;
            break;
        case O_STATUS: c->status = optarg; break;
        case O_REASON: c->reason = optarg; break;
        case O_COPY:
        case O_REEXEC:
        case O_FROMDLQ:
            m = opt == O_COPY ? RP_REPLAY_COPY
                : opt == O_REEXEC ? RP_REPLAY_REEXEC : RP_REPLAY_FROM_DLQ;
            if (mode_set && c->mode != m)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "give one of --copy-to, --reexecute, --from-dlq");
            mode_set = true;
            c->mode = m;
            if (opt == O_COPY)
                c->copy_to = optarg;
            break;
        case O_ALL: c->all = true; break;
        case O_PREFIX:
            /* The prefix is the start of a session id: same characters. */
            if ((err = check_id_arg("--session-prefix", optarg, errstr,
                                    errstr_size)))
                return err;
            c->session_prefix = optarg;
            break;
        case O_SAME: c->same_session = true; break;
        case O_KCONF: c->kafka_config = optarg; break;
        case O_TAG:
            if (!rp_replay_tag_valid(optarg))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "--replay-tag '%s': expected 1 to %d of a-z "
                               "and 0-9", optarg, RP_REPLAY_TAG_MAX);
            snprintf(c->tag, sizeof(c->tag), "%s", optarg);
            break;
        case O_DRY: c->dry_run = true; break;
        case O_PROG: c->progress = 1; break;
        case O_NOPROG: c->progress = 0; break;
        case O_IDLE:
            if (!parse_i64(optarg, 1, 86400, &v))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "--idle-timeout-s '%s': expected 1..86400",
                               optarg);
            c->idle_timeout_s = (int)v;
            break;
        case 'X':
            if (c->n_props >= RP_KAFKA_PROPS_MAX)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "too many -X settings (at most %d)",
                               RP_KAFKA_PROPS_MAX);
            if (!strchr(optarg, '='))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "-X '%s': expected key=value", optarg);
            c->props[c->n_props++] = optarg;
            break;
        case ':':
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s needs a value", argv[optind - 1]);
        default:
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "unexpected argument '%s'", argv[optind]);
    return check_conf(c, errstr, errstr_size);
}

rp_err_t rp_replay_resolve(const rp_replay_conf_t *conf, int32_t partition,
                           int64_t lo, int64_t hi, int64_t t_start,
                           int64_t t_end, int64_t *start, int64_t *end,
                           bool *empty, char *errstr, size_t errstr_size)
{
    *empty = false;
    if (conf->n_ranges) {
        const rp_replay_range_t *r = NULL;

        for (size_t i = 0; i < conf->n_ranges; i++)
            if (conf->ranges[i].partition == partition)
                r = &conf->ranges[i];
        if (!r) {
            *empty = true;
            return RP_OK;
        }
        if (r->end >= hi)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "partition %d: end offset %lld is beyond the end "
                           "(the last offset is %lld%s)",
                           (int)partition, (long long)r->end,
                           (long long)(hi - 1), hi == 0 ? ": it is empty" : "");
        if (r->start < lo)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "partition %d: start offset %lld is already "
                           "deleted (the first kept offset is %lld)",
                           (int)partition, (long long)r->start, (long long)lo);
        *start = r->start;
        *end = r->end;
        return RP_OK;
    }
    /* Time range: -1 from offsets-for-times means no record at or after
     * that time, i.e. the end of the partition. */
    *start = t_start < 0 ? hi : t_start;
    *end = (t_end < 0 || !conf->has_until ? hi : t_end) - 1;
    if (*start < lo)
        *start = lo;
    if (*end >= hi)
        *end = hi - 1;
    if (*end < *start)
        *empty = true;
    return RP_OK;
}

const rp_replay_hdr_t *rp_replay_hdr_find(const rp_replay_rec_t *rec,
                                          const char *name)
{
    for (size_t i = 0; i < rec->n_hdrs; i++)
        if (!strcmp(rec->hdrs[i].name, name))
            return &rec->hdrs[i];
    return NULL;
}

static bool hdr_is(const rp_replay_hdr_t *h, const char *want)
{
    return h && h->value && h->len == strlen(want) &&
           !memcmp(h->value, want, h->len);
}

bool rp_replay_reason_retriable(const char *code)
{
    for (int e = RP_OK + 1; e < RP_ERR__COUNT; e++)
        if (!strcmp(code, rp_err_code((rp_err_t)e)))
            return rp_err_retriable((rp_err_t)e);
    return false;
}

/* A string member of the record's value (parsed into *doc once). */
static const char *value_str(const rp_replay_rec_t *rec, cJSON **doc,
                             bool *parsed, const char *name)
{
    const cJSON *it;

    if (!*parsed) {
        *parsed = true;
        *doc = rec->value && rec->len <= RP_REQUEST_MAX
                   ? cJSON_ParseWithLength(rec->value, rec->len)
                   : NULL;
    }
    it = cJSON_IsObject(*doc) ? cJSON_GetObjectItemCaseSensitive(*doc, name)
                              : NULL;
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Header first (results carry execution_id/status headers), then value. */
static bool field_is(const rp_replay_rec_t *rec, cJSON **doc, bool *parsed,
                     const char *hdr, const char *member, const char *want)
{
    const rp_replay_hdr_t *h = hdr ? rp_replay_hdr_find(rec, hdr) : NULL;
    const char *v;

    if (h)
        return hdr_is(h, want);
    v = value_str(rec, doc, parsed, member);
    return v && !strcmp(v, want);
}

bool rp_replay_match(const rp_replay_conf_t *conf, const rp_replay_rec_t *rec,
                     rp_replay_skip_t *why)
{
    cJSON *doc = NULL;
    bool parsed = false, ok = false;
    const rp_replay_hdr_t *reason = rp_replay_hdr_find(rec, "runpool.error.code");

    if (conf->session) {
        bool key_ok = rec->key && rec->keylen == strlen(conf->session) &&
                      !memcmp(rec->key, conf->session, rec->keylen);
        const char *v = key_ok ? NULL
                               : value_str(rec, &doc, &parsed, "session_id");

        if (!key_ok && !(v && !strcmp(v, conf->session))) {
            *why = RP_REPLAY_SKIP_SESSION;
            goto out;
        }
    }
    if (conf->execution && !field_is(rec, &doc, &parsed, "execution_id",
                                     "execution_id", conf->execution)) {
        *why = RP_REPLAY_SKIP_EXECUTION;
        goto out;
    }
    if (conf->status &&
        !field_is(rec, &doc, &parsed, "status", "status", conf->status)) {
        *why = RP_REPLAY_SKIP_STATUS;
        goto out;
    }
    if (conf->reason && !hdr_is(reason, conf->reason)) {
        *why = RP_REPLAY_SKIP_REASON;
        goto out;
    }
    if (conf->mode == RP_REPLAY_FROM_DLQ && !conf->reason && !conf->all) {
        char code[RP_CODE_MAX + 1];

        if (!reason || !reason->value || reason->len > RP_CODE_MAX) {
            *why = RP_REPLAY_SKIP_NOT_RETRIABLE;
            goto out;
        }
        memcpy(code, reason->value, reason->len);
        code[reason->len] = '\0';
        if (!rp_replay_reason_retriable(code)) {
            *why = RP_REPLAY_SKIP_NOT_RETRIABLE;
            goto out;
        }
    }
    ok = true;
out:
    cJSON_Delete(doc);
    return ok;
}

bool rp_replay_is_dlq_annotation(const char *name)
{
    static const char *const exact[] = {"runpool.worker"};
    static const char *const prefix[] = {"runpool.error.", "runpool.source.",
                                         "runpool.payload."};

    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (!strcmp(name, exact[i]))
            return true;
    for (size_t i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++)
        if (!strncmp(name, prefix[i], strlen(prefix[i])))
            return true;
    return false;
}

bool rp_replay_tag_valid(const char *tag)
{
    size_t n = strlen(tag);

    return n >= 1 && n <= RP_REPLAY_TAG_MAX &&
           strspn(tag, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

rp_err_t rp_replay_new_id(const char *orig, const char *tag, char *out,
                          size_t out_size)
{
    size_t base = strlen(orig), tl = strlen(tag);

    if (base + 2 + tl > RP_ID_MAX || base + 2 + tl >= out_size)
        return RP_ERR_TOO_LARGE;
    memcpy(out, orig, base);
    memcpy(out + base, ".r", 2);
    memcpy(out + base + 2, tag, tl + 1);
    return RP_OK;
}

rp_err_t rp_replay_rewrite(const rp_replay_conf_t *conf,
                           const rp_replay_rec_t *rec, char **json,
                           char *new_session, char *new_exec, char *orig_exec,
                           rp_replay_skip_t *why, char *errstr,
                           size_t errstr_size)
{
    rp_request_t req;
    char es[256];
    rp_err_t err;
    size_t plen;

    *json = NULL;
    memset(&req, 0, sizeof(req));
    err = rp_request_parse(rec->value ? rec->value : "", rec->len, &req, es,
                           sizeof(es));
    if (err) {
        *why = RP_REPLAY_SKIP_NOT_A_REQUEST;
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "not a valid request: %s", es);
        goto out;
    }
    snprintf(orig_exec, RP_ID_MAX + 1, "%s", req.execution_id);
    if (rp_replay_new_id(req.execution_id, conf->tag[0] ? conf->tag : "1",
                          new_exec, RP_ID_MAX + 1)) {
        *why = RP_REPLAY_SKIP_ID_TOO_LONG;
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "execution_id '%s' plus the replay suffix is over %d "
                      "characters", req.execution_id, RP_ID_MAX);
        goto out;
    }
    plen = conf->same_session || !conf->session_prefix
               ? 0 : strlen(conf->session_prefix);
    if (plen + strlen(req.session_id) > RP_ID_MAX) {
        *why = RP_REPLAY_SKIP_ID_TOO_LONG;
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "session '%s%s' is over %d characters",
                      plen ? conf->session_prefix : "", req.session_id,
                      RP_ID_MAX);
        goto out;
    }
    if (plen) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(new_session, conf->session_prefix, plen);
    memcpy(new_session + plen, req.session_id, strlen(req.session_id) + 1);
    memcpy(req.execution_id, new_exec, strlen(new_exec) + 1);
    memcpy(req.session_id, new_session, strlen(new_session) + 1);
    /* submitted_at stays the original's: it says when it was first asked. */
    if (!(*json = rp_request_to_json(&req)))
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
out:
    rp_request_clear(&req);
    return err;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;

        if (c < 0x80) {
            if (c == 0)
                return false; /* cJSON strings end at NUL */
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static char *base64(const unsigned char *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;

        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Add bytes as "name" (text) or "name_base64" when not UTF-8 text. */
static bool add_bytes(cJSON *obj, const char *name, const char *p, size_t n)
{
    char *copy, b64name[64];
    bool ok;

    if (!p)
        return cJSON_AddNullToObject(obj, name) != NULL;
    if (utf8_valid((const unsigned char *)p, n)) {
        if (!(copy = malloc(n + 1)))
            return false;
        memcpy(copy, p, n);
        copy[n] = '\0';
    } else {
        snprintf(b64name, sizeof(b64name), "%s_base64", name);
        name = b64name;
        if (!(copy = base64((const unsigned char *)p, n)))
            return false;
    }
    ok = cJSON_AddStringToObject(obj, name, copy) != NULL;
    free(copy);
    return ok;
}

char *rp_replay_rec_json(const rp_replay_rec_t *rec)
{
    cJSON *o = cJSON_CreateObject(), *hs;
    char ts[RP_TIME_RFC3339_MAX], *out = NULL;

    if (!o)
        return NULL;
    if (!cJSON_AddStringToObject(o, "topic", rec->topic ? rec->topic : "") ||
        !cJSON_AddNumberToObject(o, "partition", rec->partition) ||
        !cJSON_AddNumberToObject(o, "offset", (double)rec->offset))
        goto out;
    if (rec->ts_ms >= 0) {
        rp_time_rfc3339(rec->ts_ms, ts, sizeof(ts));
        if (!cJSON_AddStringToObject(o, "timestamp", ts))
            goto out;
    } else if (!cJSON_AddNullToObject(o, "timestamp")) {
        goto out;
    }
    if (!add_bytes(o, "key", rec->key, rec->keylen) ||
        !(hs = cJSON_AddArrayToObject(o, "headers")))
        goto out;
    for (size_t i = 0; i < rec->n_hdrs; i++) {
        cJSON *h = cJSON_CreateObject();

        if (!h || !cJSON_AddItemToArray(hs, h) ||
            !cJSON_AddStringToObject(h, "key", rec->hdrs[i].name) ||
            !add_bytes(h, "value", rec->hdrs[i].value, rec->hdrs[i].len))
            goto out;
    }
    if (!add_bytes(o, "value", rec->value, rec->len))
        goto out;
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

void rp_replay_summary(const rp_replay_stats_t *st, bool dry_run, char *buf,
                       size_t size)
{
    size_t off;
    bool any = false;
    int n;

    n = snprintf(buf, size, "read %llu, matched %llu, %s %llu, failed %llu",
                 (unsigned long long)st->read, (unsigned long long)st->matched,
                 dry_run ? "would send" : "sent",
                 (unsigned long long)st->sent, (unsigned long long)st->failed);
    off = n < 0 ? 0 : (size_t)n;
    for (int i = 0; i < RP_REPLAY_SKIP__COUNT && off < size; i++) {
        if (!st->skipped[i])
            continue;
        n = snprintf(buf + off, size - off, "%s %s %llu",
                     any ? "," : ", skipped:", rp_replay_skip_str(i),
                     (unsigned long long)st->skipped[i]);
        off += n < 0 ? 0 : (size_t)n;
        any = true;
    }
}
