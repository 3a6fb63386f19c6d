/* rp_kafka — librdkafka configuration shared by worker, producer and
 * devbroker, so every client of runpool agrees on the partitioner (and so
 * on which partition a session lands in) and on delivery guarantees.
 *
 * Thread-safety: call from the thread that builds the configuration.
 */
#ifndef RP_KAFKA_H
#define RP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "rp_err.h"

#define RP_KAFKA_PROPS_MAX 128 /* -X key=value pairs on one command line */

#define RP_TOPIC_REQUESTS_DEFAULT "runpool.requests"
#define RP_TOPIC_RESULTS_DEFAULT "runpool.results"
#define RP_TOPIC_DLQ_DEFAULT "runpool.dlq"

/* Where a property applies (librdkafka's CONFIGURATION.md, C/P column). */
typedef enum rp_kafka_role {
    RP_KAFKA_CONSUMER = 'C',
    RP_KAFKA_PRODUCER = 'P',
} rp_kafka_role_t;

#define RP_KAFKA_CONF_LINE_MAX 4096 /* one line of a --kafka-config file */
#define RP_KAFKA_ENV_PREFIX "RUNPOOL_KAFKA_"
#define RP_KAFKA_CONFIG_ENV "RUNPOOL_KAFKA_CONFIG"

/* Set one property, turning librdkafka's error into ours. */
rp_err_t rp_kafka_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size);

/* Apply "key=value" strings (borrowed) in order; later ones win. */
rp_err_t rp_kafka_set_props(rd_kafka_conf_t *conf, const char *const *props,
                            size_t n, char *errstr, size_t errstr_size);

/* Like rp_kafka_set_props, for a client of the given role: settings that
 * librdkafka documents as the other role's only are skipped (so consumer
 * settings do not make the producer log CONFWARN, and the reverse);
 * global ones and names not in the table are applied. */
rp_err_t rp_kafka_set_props_for(rd_kafka_conf_t *conf, rp_kafka_role_t role,
                                const char *const *props, size_t n,
                                char *errstr, size_t errstr_size);

/* 'C', 'P' or '*' for a librdkafka property name (librdkafka 2.0.2's
 * table, kafka/rp_kafka_props.inc); 0 when not in the table. */
char rp_kafka_prop_scope(const char *name);

/* True when a setting's value must never be logged: its name contains
 * "password", "secret" or "key". */
int rp_kafka_prop_is_secret(const char *name);

/* librdkafka settings gathered from every source, lowest precedence
 * first, so applying them in order lets the later ones win:
 *   1. the properties file (file, or $RUNPOOL_KAFKA_CONFIG when file is
 *      NULL): kcat -F's format, "key=value" lines, '#' comments and blank
 *      lines ignored, spaces around key and value trimmed;
 *   2. the environment: RUNPOOL_KAFKA_<NAME>, NAME being the property
 *      name upper-cased with '.' as '_' (RUNPOOL_KAFKA_SASL_PASSWORD ->
 *      sasl.password); matched against librdkafka's table, an unknown
 *      NAME is an error;
 *   3. cli: the -X key=value strings (borrowed, copied).
 * A file that holds a secret (rp_kafka_prop_is_secret, "key" names
 * aside: only password/secret) must pass rp_secfile_check (ours and
 * 0600, or root's and at most 0640), else RP_ERR_PERMISSION. Logs one "kafka_config" line naming each setting and where it
 * came from, secrets' values redacted. envp: NULL for environ.
 * On success p owns the strings (free with rp_kafka_props_clear). */
typedef struct rp_kafka_props {
    char *kv[RP_KAFKA_PROPS_MAX]; /* "key=value", owned */
    size_t n;
} rp_kafka_props_t;

rp_err_t rp_kafka_props_load(rp_kafka_props_t *p, const char *file,
                             const char *const *cli, size_t n_cli,
                             char *const *envp, char *errstr,
                             size_t errstr_size);
void rp_kafka_props_clear(rp_kafka_props_t *p); /* NULL ok */

/* Settings every runpool producer uses: idempotence (acks=all, no
 * duplicates on retry) and the murmur2_random partitioner, which is what
 * Java and most other clients use, so a session_id key maps to the same
 * partition whichever client produced it. */
rp_err_t rp_kafka_producer_defaults(rd_kafka_conf_t *conf, char *errstr,
                                    size_t errstr_size);

/* A unique client.id "PREFIX-HOST-PID-RAND" (librdkafka #4783: shared
 * client ids confuse cooperative rebalancing). */
rp_err_t rp_kafka_unique_client_id(rd_kafka_conf_t *conf, const char *prefix,
                                   char *errstr, size_t errstr_size);

/* Send librdkafka's own log lines through rp_log (JSON lines, event
 * "kafka_log") instead of its plain-text stderr format. */
void rp_kafka_log_via_rp(rd_kafka_conf_t *conf);

/* A reader of runpool's topics for the tools (runpool-tail,
 * runpool-replay): a consumer for assign() only, read_committed (the
 * results are transactional), no auto commit or offset store, partition
 * EOF events on, auto.offset.reset = auto_reset (NULL: librdkafka's), a
 * unique client.id "PREFIX-..." and a private group.id
 * "PREFIX-PID-MS" (assign() wants one; nothing is ever committed to it,
 * so the workers' group is never touched); librdkafka's log through
 * rp_log. props ("key=value", borrowed; rp_kafka_props_load's, so a
 * --kafka-config file and RUNPOOL_KAFKA_* reach the tools too) go in
 * before the fixed settings above, which win: no setting can make a tool
 * commit into a group or stop seeing partition ends. *out: the handle (caller rd_kafka_destroys it).
 * RP_ERR_INVALID for a setting librdkafka refuses, RP_ERR_KAFKA when the
 * client cannot be made. Any thread. */
rp_err_t rp_kafka_reader_new(const char *brokers, const char *prefix,
                             const char *auto_reset, const char *const *props,
                             size_t n_props, rd_kafka_t **out, char *errstr,
                             size_t errstr_size);

#endif
