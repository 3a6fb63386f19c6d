/* rp_replay — the pure parts of runpool-replay: options into a conf, the
 * range checks, record filters, the re-execute rewrite of a request and
 * the summary. replay_main.c does the Kafka side with these.
 *
 * Memory: a conf borrows the argv strings it was parsed from. Records
 * (rp_replay_rec_t) are borrowed views the caller fills.
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_REPLAY_H
#define RP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rp_err.h"
#include "rp_kafka.h"

/* Exit statuses of runpool-replay. */
#define RP_REPLAY_EXIT_OK 0      /* range read to its end, all sends acked */
#define RP_REPLAY_EXIT_FAILED 1  /* Kafka error, or a send not acknowledged */
#define RP_REPLAY_EXIT_USAGE 2   /* bad option or refused (ambiguous) range */

#define RP_REPLAY_RANGES_MAX 1024  /* --range P:A-B entries */
#define RP_REPLAY_TAG_MAX 16       /* --replay-tag: [a-z0-9], 1..16 chars */
#define RP_REPLAY_TAG_DEFAULT_LEN 8 /* a random tag: 8 hex digits */
#define RP_REPLAY_SUFFIX_MAX (2 + RP_REPLAY_TAG_MAX + 1) /* ".r" + tag */
#define RP_REPLAY_HEADER_OF "runpool-replay-of"
#define RP_REPLAY_HEADER_SOURCE "runpool-replay-source"

typedef enum rp_replay_mode {
    RP_REPLAY_PRINT = 0, /* jsonl on stdout */
    RP_REPLAY_COPY,      /* --copy-to TOPIC */
    RP_REPLAY_REEXEC,    /* --reexecute: new ids into the requests topic */
    RP_REPLAY_FROM_DLQ,  /* --from-dlq: DLQ records back to the requests */
} rp_replay_mode_t;

/* One partition's offsets, end inclusive (the last offset to read). */
typedef struct rp_replay_range {
    int32_t partition;
    int64_t start;
    int64_t end;
} rp_replay_range_t;

typedef struct rp_replay_conf {
    const char *brokers;
    const char *topic; /* the topic read; NULL: by mode (see conf_parse) */
    const char *requests_topic;
    const char *dlq_topic;
    rp_replay_mode_t mode;
    const char *copy_to;
    /* Range: offsets (ranges[]) or time (since/until), never both. */
    rp_replay_range_t ranges[RP_REPLAY_RANGES_MAX];
    size_t n_ranges;
    int32_t partition;   /* --partition; -1 = not given */
    int64_t start_offset, end_offset; /* -1 = not given */
    bool has_since, has_until;
    int64_t since_ms, until_ms;
    /* Filters (NULL = any). */
    const char *session, *execution, *status, *reason;
    bool all;            /* --all: every DLQ reason */
    /* Re-execute. */
    const char *session_prefix;
    bool same_session;
    /* The run's replay tag: --replay-tag, or (with --reexecute) random,
     * in tag_buf. Every new id of one run ends in ".r" + tag, so a second
     * run of the same replay gets new ids (the worker would answer a
     * repeated id with the first run's result) unless it is given the
     * same --replay-tag on purpose (a rerun after a crash then sends
     * nothing twice). */
    char tag[RP_REPLAY_TAG_MAX + 1]; /* "" unless --reexecute */
    bool dry_run;
    int progress;        /* 1 on, 0 off, -1 auto (on when stderr is a TTY) */
    int idle_timeout_s;  /* stop waiting for records after this */
    const char *kafka_config; /* --kafka-config; NULL: $RUNPOOL_KAFKA_CONFIG */
    const char *props[RP_KAFKA_PROPS_MAX];
    size_t n_props;
    bool help, version;
} rp_replay_conf_t;

/* Parse argv into conf (strings borrowed from argv). env_brokers and the
 * env topics (may be NULL) are $RUNPOOL_BROKERS, $RUNPOOL_REQUESTS_TOPIC,
 * $RUNPOOL_DLQ_TOPIC as the caller read them. Refuses contradictory or
 * ambiguous options with one clear line in errstr: RP_ERR_INVALID.
 * Returns RP_OK with conf->help or conf->version set when asked. */
rp_err_t rp_replay_conf_parse(rp_replay_conf_t *conf, int argc, char **argv,
                              const char *env_brokers, const char *env_req,
                              const char *env_dlq, char *errstr,
                              size_t errstr_size);

/* The usage text, listing every option. */
void rp_replay_usage(FILE *out, const char *prog);

/* "2026-12-03T10:00:00Z" (RFC 3339) or unix seconds ("1764756000") into
 * ms since the epoch. 0 on success, -1 if neither. */
int rp_replay_parse_time(const char *s, int64_t *ms);

/* The offsets [*start, *end] (end inclusive) to read from one partition
 * whose low and high watermarks are lo and hi (hi = next offset).
 * Offset ranges: the given range for the partition; time ranges:
 * t_start / t_end are what offsets-for-times answered for since and
 * until (-1: no record at or after that time), so the range is
 * [t_start, t_end - 1]. Refuses offsets beyond the end or already
 * deleted with RP_ERR_INVALID and a clear errstr. *empty set when the
 * partition has nothing in range (not an error). */
rp_err_t rp_replay_resolve(const rp_replay_conf_t *conf, int32_t partition,
                           int64_t lo, int64_t hi, int64_t t_start,
                           int64_t t_end, int64_t *start, int64_t *end,
                           bool *empty, char *errstr, size_t errstr_size);

typedef struct rp_replay_hdr {
    const char *name;
    const char *value; /* may be NULL (a header without value) */
    size_t len;
} rp_replay_hdr_t;

/* One consumed record, borrowed. */
typedef struct rp_replay_rec {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms; /* -1 when the record has none */
    const char *key;
    size_t keylen;
    const char *value;
    size_t len;
    const rp_replay_hdr_t *hdrs;
    size_t n_hdrs;
} rp_replay_rec_t;

/* Why a record was not sent. */
#define RP_REPLAY_SKIPS(X)                                                  \
    X(SESSION, "session")             /* --session did not match */         \
    X(EXECUTION, "execution")         /* --execution did not match */       \
    X(STATUS, "status")               /* --status did not match */          \
    X(REASON, "reason")               /* --reason did not match */          \
    X(NOT_RETRIABLE, "not_retriable") /* --from-dlq: reason not retriable */ \
    X(NOT_A_REQUEST, "not_a_request") /* --reexecute: value not a request */ \
    X(ID_TOO_LONG, "id_too_long")     /* new execution or session id > max */ \
    X(TRUNCATED, "truncated")         /* --from-dlq: DLQ holds only a part */

typedef enum rp_replay_skip {
#define RP_REPLAY_SKIP_ENUM_(n, s) RP_REPLAY_SKIP_##n,
    RP_REPLAY_SKIPS(RP_REPLAY_SKIP_ENUM_)
#undef RP_REPLAY_SKIP_ENUM_
    RP_REPLAY_SKIP__COUNT
} rp_replay_skip_t;

const char *rp_replay_skip_str(rp_replay_skip_t s);

/* First header called name, or NULL. */
const rp_replay_hdr_t *rp_replay_hdr_find(const rp_replay_rec_t *rec,
                                          const char *name);

/* true when a DLQ reason (runpool.error.code) may succeed if sent again
 * unchanged: a code spelling a retriable rp_err_t (io, timeout,
 * unavailable, kafka). The worker's rejections (invalid_request,
 * too_large, key_mismatch, key_too_large) are not: they need a fix and
 * an explicit --reason or --all. */
bool rp_replay_reason_retriable(const char *code);

/* Whether rec passes the filters and the mode's own rule; when not,
 * *why says which. */
bool rp_replay_match(const rp_replay_conf_t *conf, const rp_replay_rec_t *rec,
                     rp_replay_skip_t *why);

/* The replay id of orig: "ID.r" + tag ("e1" -> "e1.r5f3a9c01"). A replay
 * of a replay appends again ("e1.r5f3a9c01.r0bad7e11"), so each id names
 * its whole line of ancestors. RP_ERR_TOO_LARGE when it would exceed
 * RP_ID_MAX (the record is then skipped as id_too_long).
 * out[RP_ID_MAX+1]. */
rp_err_t rp_replay_new_id(const char *orig, const char *tag, char *out,
                          size_t out_size);

/* true when a header of a DLQ record is one the worker added to the
 * original (worker/rp_publish.c: runpool.error.*, runpool.source.*,
 * runpool.worker, runpool.payload.*). --from-dlq drops exactly these, so
 * the producer's own headers, runpool.* ones included, go back as they
 * came. */
bool rp_replay_is_dlq_annotation(const char *name);

/* true when tag is 1..RP_REPLAY_TAG_MAX chars of [a-z0-9]. */
bool rp_replay_tag_valid(const char *tag);

/* Rewrite a request for --reexecute: parse it, give it rp_replay_new_id
 * and the session (prefix + session, or the same with --same-session).
 * *json (caller frees), new_session and new_exec ([RP_ID_MAX+1]) out;
 * orig_exec gets the original id. *why on refusal (RP_ERR_INVALID:
 * NOT_A_REQUEST, RP_ERR_TOO_LARGE: ID_TOO_LONG). */
rp_err_t rp_replay_rewrite(const rp_replay_conf_t *conf,
                           const rp_replay_rec_t *rec, char **json,
                           char *new_session, char *new_exec, char *orig_exec,
                           rp_replay_skip_t *why, char *errstr,
                           size_t errstr_size);

/* One record as a JSON object (jsonl line without newline): topic,
 * partition, offset, timestamp (RFC 3339 or null), key, headers (array
 * of {key, value} in order), value (a string; value_base64 instead when
 * it is not valid UTF-8). Caller frees; NULL when out of memory. */
char *rp_replay_rec_json(const rp_replay_rec_t *rec);

typedef struct rp_replay_stats {
    uint64_t read, matched, sent, failed;
    uint64_t skipped[RP_REPLAY_SKIP__COUNT];
} rp_replay_stats_t;

/* "read 10, matched 4, sent 4, failed 0, skipped: session 6" (only the
 * reasons that happened), into buf; dry_run says "would send". */
void rp_replay_summary(const rp_replay_stats_t *st, bool dry_run, char *buf,
                       size_t size);

#endif
