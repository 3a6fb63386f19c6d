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

/* Set one property, turning librdkafka's error into ours. */
rp_err_t rp_kafka_set(rd_kafka_conf_t *conf, const char *name,
                      const char *value, char *errstr, size_t errstr_size);

/* Apply "key=value" strings (borrowed) in order; later ones win. */
rp_err_t rp_kafka_set_props(rd_kafka_conf_t *conf, const char *const *props,
                            size_t n, char *errstr, size_t errstr_size);

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

#endif
