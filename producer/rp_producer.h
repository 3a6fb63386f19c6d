/* rp_producer — publish execution requests to Kafka and (optionally) wait
 * for their results. A small library a C backend can embed; the
 * runpool-produce CLI is one user of it.
 *
 *   rp_producer_t *p;
 *   rp_producer_conf_t conf = {.brokers = "kafka:9092", .watch_results = true};
 *   rp_producer_new(&conf, &p, err, sizeof(err));
 *   rp_request_t req = {.session_id = "s1", .command = "cd /tmp", ...};
 *   rp_producer_send(p, &req, 10000, err, sizeof(err));  // fills execution_id
 *   rp_producer_wait(p, req.execution_id, 300000, &json, &len, err, sizeof(err));
 *
 * Requests are keyed by session_id, so all requests of one session land in
 * one partition and one worker runs them in order.
 *
 * Thread-safety: a producer is used by one thread at a time (any thread,
 * but never two at once); different producers are independent.
 */
#ifndef RP_PRODUCER_H
#define RP_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>

#include "rp_err.h"
#include "rp_msg.h"

/* Results that arrived for ids this producer sent but nobody has waited for
 * yet are held in memory; beyond either bound the oldest is dropped (with a
 * log line) and a later rp_producer_wait for it times out. */
#define RP_PRODUCER_PENDING_MAX 10000
#define RP_PRODUCER_PENDING_BYTES_MAX (256u * 1024 * 1024)
/* Sent ids remembered (to tell our results from other producers'); beyond
 * this the oldest is forgotten and its result will be ignored. */
#define RP_PRODUCER_TRACKED_MAX 100000
/* How long rp_producer_new may take to read the results partitions. */
#define RP_PRODUCER_CONNECT_TIMEOUT_MS 10000
/* How long rp_producer_destroy waits for queued messages to be delivered. */
#define RP_PRODUCER_FLUSH_TIMEOUT_MS 10000

typedef struct rp_producer_conf {
    const char *brokers;        /* bootstrap.servers; required */
    const char *requests_topic; /* NULL = RP_TOPIC_REQUESTS_DEFAULT */
    const char *results_topic;  /* NULL = RP_TOPIC_RESULTS_DEFAULT */
    /* Extra librdkafka "key=value" settings applied to both clients after
     * runpool's defaults (so they can override them). */
    const char *const *props;
    size_t n_props;
    /* Also read the results topic so rp_producer_wait works. */
    bool watch_results;
    /* Held-results bound; 0 = RP_PRODUCER_PENDING_MAX. */
    size_t pending_max;
    /* Sign every request (contract/rp_sign.h: header runpool-signature)
     * with a key of this file (lines KID:BASE64-KEY; owned by the process
     * and 0600/0400, or by root and at most 0640: base/rp_secfile.h);
     * NULL: send unsigned. signing_kid names the key (NULL: the first).
     * Loaded by rp_producer_new, which refuses any other file. */
    const char *signing_keys;
    const char *signing_kid;
} rp_producer_conf_t;

typedef struct rp_producer rp_producer_t;

/* Create a producer. conf and everything it points to is borrowed for the
 * call only (copied). This connects to the cluster and reads the requests
 * topic's metadata (so the first send is not delayed); with watch_results
 * it also positions the results reader at the current end of every results
 * partition before returning, so no result of a later send can be missed.
 * Takes up to RP_PRODUCER_CONNECT_TIMEOUT_MS; fails with RP_ERR_NOT_FOUND
 * when a topic does not exist, RP_ERR_TIMEOUT / RP_ERR_KAFKA when the
 * cluster cannot be reached, RP_ERR_INVALID for bad settings. On success
 * *out is the caller's; free with rp_producer_destroy. Any thread. */
rp_err_t rp_producer_new(const rp_producer_conf_t *conf, rp_producer_t **out,
                         char *errstr, size_t errstr_size);

/* Publish one request (req borrowed). If req->execution_id is empty a fresh
 * UUIDv4 is generated and written back into req. The Kafka key is
 * session_id; headers execution_id and session_id are set, and
 * runpool-signature when the producer has signing keys. Blocks until the
 * broker acknowledged the message, or timeout_ms passed (-1 = no limit):
 * then RP_ERR_TIMEOUT is returned but the message is still queued and MAY
 * be delivered later (do not blindly resend it under a new execution_id).
 * RP_ERR_KAFKA with librdkafka's message when delivery failed;
 * RP_ERR_INVALID when session_id is not a valid id. */
rp_err_t rp_producer_send(rp_producer_t *p, rp_request_t *req, int timeout_ms,
                          char *errstr, size_t errstr_size);

/* Publish a request given as JSON text (json borrowed, len bytes, need not
 * be NUL-terminated). Only what is needed to address it is checked: it
 * must be one JSON object (at most RP_REQUEST_MAX bytes) with a valid
 * session_id, and an execution_id, if present, must be a valid id. "v":1
 * and a fresh execution_id are added when missing. Everything else is left
 * for the worker to validate (it answers a bad request with a "rejected"
 * result). The execution_id used is written to out_execution_id. Delivery
 * and timeouts as rp_producer_send. */
rp_err_t rp_producer_send_json(rp_producer_t *p, const char *json, size_t len,
                               char out_execution_id[RP_ID_MAX + 1],
                               int timeout_ms, char *errstr,
                               size_t errstr_size);

/* Wait for the result of execution_id (borrowed): the first message on the
 * results topic whose execution_id header (or, without the header, JSON
 * field) matches, counting only results published after rp_producer_new.
 * On RP_OK *result_json is the raw result (NUL-terminated, caller frees)
 * and *len its length (len may be NULL). RP_ERR_TIMEOUT when none came
 * within timeout_ms (-1 = no limit). While waiting, results for other ids
 * this producer sent are kept for their own wait; results for ids it never
 * sent are ignored. RP_ERR_INVALID without watch_results. */
rp_err_t rp_producer_wait(rp_producer_t *p, const char *execution_id,
                          int timeout_ms, char **result_json, size_t *len,
                          char *errstr, size_t errstr_size);

/* Number of results currently held for later waits (for tests and stats). */
size_t rp_producer_pending(const rp_producer_t *p);

/* Deliver what is still queued (at most RP_PRODUCER_FLUSH_TIMEOUT_MS, then
 * drop it with a log line) and free everything. Accepts NULL. */
void rp_producer_destroy(rp_producer_t *p);

#endif
