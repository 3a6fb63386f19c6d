/* rp_tail — the pure parts of runpool-tail: options into a conf, one
 * Kafka record into a filterable view, the json and table formats, the
 * bounded request index behind --with-requests, and the rolling --stats
 * summary. No Kafka here (tail_main.c has the loop), so unit tests drive
 * all of it. docs/tools.md is the user's page.
 *
 * Thread-safety: none needed; runpool-tail is single-threaded. Call
 * everything from the thread that owns the objects.
 */
#ifndef RP_TAIL_H
#define RP_TAIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rp_err.h"
#include "rp_kafka.h"

#define RP_TAIL_FILTER_MAX 256 /* values of one filter (--status a,b ...) */
/* --with-requests remembers at most this many requests (oldest forgotten
 * first); a result whose request was forgotten shows "request": null. */
#define RP_TAIL_REQUESTS_MAX 20000
/* --stats keeps at most this many durations per interval for p50/p99;
 * past it the percentiles are over the first ones (said in the output). */
#define RP_TAIL_STATS_SAMPLES_MAX 100000
/* --from -N: N at most this (each partition keeps N records until its
 * end is reached). */
#define RP_TAIL_LAST_MAX 100000
/* ... and at most this many bytes of keys and values in all (shared out
 * evenly over the partitions): 100,000 records of up to 1 MiB must not
 * take 100 GB. Past it the oldest go, and the tail says so on stderr. */
#define RP_TAIL_LAST_BYTES_MAX (64u * 1024 * 1024)
#define RP_TAIL_STATS_DEFAULT_S 5
#define RP_TAIL_STATS_MAX_S 86400
#define RP_TAIL_STATUS_N 6 /* the five result statuses, and "dlq" */

typedef enum rp_tail_from_kind {
    RP_TAIL_FROM_END = 0,   /* only what arrives from now on (default) */
    RP_TAIL_FROM_BEGINNING,
    RP_TAIL_FROM_TIME,      /* value = wall ms since epoch */
    RP_TAIL_FROM_OFFSET,    /* value = absolute offset, every partition */
    RP_TAIL_FROM_LAST,      /* value = N (1..RP_TAIL_LAST_MAX): the last N
                               records of every partition */
} rp_tail_from_kind_t;

typedef struct rp_tail_from {
    rp_tail_from_kind_t kind;
    int64_t value;
} rp_tail_from_t;

typedef enum rp_tail_format {
    RP_TAIL_FMT_AUTO = 0, /* table on a TTY, json otherwise */
    RP_TAIL_FMT_JSON,
    RP_TAIL_FMT_TABLE,
} rp_tail_format_t;

/* One filter: a record passes when the list is empty or holds its value. */
typedef struct rp_tail_filter {
    const char *v[RP_TAIL_FILTER_MAX]; /* point into rp_tail_conf_t.strs */
    size_t n;
} rp_tail_filter_t;

typedef struct rp_tail_conf {
    const char *brokers;
    const char *results_topic, *dlq_topic, *requests_topic;
    bool read_results, read_dlq; /* --dlq: DLQ only; --both: both */
    rp_tail_filter_t session, execution, status, worker;
    rp_tail_from_t from;
    rp_tail_format_t format;
    bool with_requests;
    int stats_s; /* 0 = print records */
    bool exit_at_end;
    const char *metrics_listen; /* NULL = off */
    const char *kafka_config;   /* --kafka-config; NULL: $RUNPOOL_KAFKA_CONFIG */
    const char *props[RP_KAFKA_PROPS_MAX];
    size_t n_props;
    char **strs; /* owned copies the filters point into */
    size_t n_strs;
} rp_tail_conf_t;

typedef enum rp_tail_parse {
    RP_TAIL_PARSE_OK = 0,
    RP_TAIL_PARSE_HELP,    /* --help: print rp_tail_usage, exit 0 */
    RP_TAIL_PARSE_VERSION, /* --version: print it, exit 0 */
    RP_TAIL_PARSE_ERROR,   /* errstr says why; exit 2 */
} rp_tail_parse_t;

/* Parse argv into c (zeroed first; defaults from RUNPOOL_BROKERS and the
 * RUNPOOL_*_TOPIC variables). argv is borrowed and must outlive c; free c
 * with rp_tail_conf_free whatever this returns. */
rp_tail_parse_t rp_tail_parse_args(rp_tail_conf_t *c, int argc, char **argv,
                                   char *errstr, size_t errstr_size);
void rp_tail_conf_free(rp_tail_conf_t *c);
void rp_tail_usage(FILE *out);

/* "beginning", "end", RFC 3339, "@UNIX_SECONDS", "N" (offset) or "-N"
 * (last N); anything else is RP_ERR_INVALID with a message. */
rp_err_t rp_tail_parse_from(const char *s, rp_tail_from_t *out, char *errstr,
                            size_t errstr_size);

typedef enum rp_tail_source {
    RP_TAIL_SRC_RESULTS = 0,
    RP_TAIL_SRC_DLQ,
} rp_tail_source_t;

/* One Kafka record seen through runpool's contract. The strings point into
 * doc, or into the borrowed headers/key given to rp_tail_rec_init; "" when
 * unknown. */
typedef struct rp_tail_rec {
    rp_tail_source_t source;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* Kafka timestamp; -1 if none */
    const char *key;      /* NUL-terminated copy owned by the rec */
    cJSON *doc;           /* owned: the parsed value, NULL if not JSON */
    char *raw;            /* owned: the value as a NUL-terminated string */
    const char *session, *execution, *status, *worker;
    const char *code;    /* error.code, or the DLQ reason */
    const char *message; /* error.message, or the DLQ message */
    long long exit_code; /* -1 when null/absent */
    long long duration_ms; /* -1 when absent */
} rp_tail_rec_t;

/* The headers of a DLQ record that rp_tail_rec_init reads (borrowed,
 * NUL-terminated, NULL when absent). */
typedef struct rp_tail_dlq_hdrs {
    const char *code, *message, *worker;
} rp_tail_dlq_hdrs_t;

/* Fill r from one record (key/value borrowed and copied; hdrs NULL for
 * results). Returns RP_ERR_NOMEM or RP_OK; a value that is not JSON
 * is not an error (doc stays NULL, status "" or "dlq"). */
rp_err_t rp_tail_rec_init(rp_tail_rec_t *r, rp_tail_source_t src,
                          int32_t partition, int64_t offset, int64_t ts_ms,
                          const void *key, size_t key_len, const void *value,
                          size_t len, const rp_tail_dlq_hdrs_t *hdrs);
void rp_tail_rec_clear(rp_tail_rec_t *r);

/* Whether r passes every filter of c. A DLQ record's status is "dlq". */
bool rp_tail_match(const rp_tail_conf_t *c, const rp_tail_rec_t *r);

/* One line of JSON for jq: {"topic","partition","offset","timestamp",
 * "key", "result"|"dlq", and "request" when with_request}. request is
 * borrowed, NULL = null. Returns the line (no newline; caller frees) or
 * NULL on no memory. */
char *rp_tail_format_json(const rp_tail_rec_t *r, bool with_request,
                          const cJSON *request);
/* The table: header line, then one line per record (plus an indented
 * line with the error or the start of stderr when not succeeded). */
void rp_tail_table_header(FILE *out, bool with_request, bool color);
void rp_tail_format_table(FILE *out, const rp_tail_rec_t *r,
                          bool with_request, const cJSON *request, bool color);

/* ---- --metrics-listen (the stream exporter) ---- */

/* Label values for r that keep every label set bounded: status is one of
 * rp_tail_statuses or "other"; code is a code of contract/rp_codes.h,
 * "none" (no error) or "other" (unknown text). Both borrowed: static
 * strings or r's own. */
void rp_tail_metric_labels(const rp_tail_rec_t *r, const char **status,
                           const char **code);

/* ---- the request index of --with-requests ---- */
typedef struct rp_tail_reqs rp_tail_reqs_t;

/* max = how many requests to remember (1..RP_TAIL_REQUESTS_MAX). */
rp_tail_reqs_t *rp_tail_reqs_new(size_t max);
void rp_tail_reqs_destroy(rp_tail_reqs_t *q);
/* Remember a request (takes doc; it must hold a string execution_id,
 * else it is freed and RP_ERR_INVALID returned). The oldest is forgotten
 * when full; a second request with the same id replaces the first. */
rp_err_t rp_tail_reqs_add(rp_tail_reqs_t *q, cJSON *doc);
/* The request with this execution id (borrowed until the next add), or
 * NULL. */
const cJSON *rp_tail_reqs_get(const rp_tail_reqs_t *q, const char *eid);
size_t rp_tail_reqs_count(const rp_tail_reqs_t *q);

/* ---- --stats ---- */
typedef struct rp_tail_stats {
    int64_t interval_start_ms;
    size_t n, total;
    size_t by_status[RP_TAIL_STATUS_N], total_by_status[RP_TAIL_STATUS_N];
    long long *samples; /* durations of this interval, sorted when printed */
    size_t n_samples;
    bool samples_capped;
} rp_tail_stats_t;

/* The statuses in the order the summary prints them. */
extern const char *const rp_tail_statuses[RP_TAIL_STATUS_N];

rp_err_t rp_tail_stats_init(rp_tail_stats_t *s, int64_t now_ms);
void rp_tail_stats_clear(rp_tail_stats_t *s);
void rp_tail_stats_add(rp_tail_stats_t *s, const rp_tail_rec_t *r);
/* Nearest-rank percentile (0 < p <= 100) of the interval's durations;
 * -1 when there are none. Sorts the samples. */
long long rp_tail_stats_percentile(rp_tail_stats_t *s, double p);
/* Print the interval ending at now_ms (one JSON object per line when
 * json, else one readable line) and start a new interval. */
void rp_tail_stats_print(rp_tail_stats_t *s, FILE *out, bool json,
                         int64_t now_ms);

#endif
