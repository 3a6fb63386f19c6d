/* rp_iopool — a fixed pool of threads for the worker's blocking steps.
 *
 * The worker's main thread must never block (it polls Kafka; a blocked
 * poll loop gets the worker thrown out of the group). State-store calls
 * do block (a file fsync, an HTTP round trip to Cloud Storage), so they
 * run here: a handful of threads shared by all in-flight executions, not a
 * thread per execution. A task reports back by posting to the worker's
 * inbox (rp_inbox), which wakes the main loop.
 *
 * Thread-safety: rp_iopool_submit from any thread; new/destroy from one.
 */
#ifndef RP_IOPOOL_H
#define RP_IOPOOL_H

#include <stddef.h>

#include "rp_err.h"

#define RP_IOPOOL_THREADS_MAX 256
#define RP_IOPOOL_QUEUE_MAX 1000000 /* queued tasks; far above max-inflight */

typedef struct rp_iopool rp_iopool_t;

/* A task: fn(arg) runs on one pool thread. arg is borrowed by the pool. */
typedef void(rp_iopool_fn)(void *arg);

/* Start nthreads threads (1..RP_IOPOOL_THREADS_MAX). Caller frees with
 * rp_iopool_destroy. */
rp_err_t rp_iopool_new(int nthreads, rp_iopool_t **out, char *errstr,
                       size_t errstr_size);

/* Queue a task. RP_ERR_TOO_LARGE past RP_IOPOOL_QUEUE_MAX queued tasks. */
rp_err_t rp_iopool_submit(rp_iopool_t *p, rp_iopool_fn *fn, void *arg);

/* Run every queued task to completion, then stop and join the threads.
 * Accepts NULL. */
void rp_iopool_destroy(rp_iopool_t *p);

/* ---- rp_inbox: completions flowing back to the main thread ---- */

/* Items are intrusive: the poster embeds an rp_inbox_item_t in its own
 * struct, so posting never allocates (and so never fails). */
typedef struct rp_inbox_item {
    struct rp_inbox_item *next;
    int kind; /* what completed; meaning is the poster's */
} rp_inbox_item_t;

typedef struct rp_inbox rp_inbox_t;

/* wake_fd: an eventfd the main loop polls (borrowed; written with 1 on
 * each post). */
rp_err_t rp_inbox_new(int wake_fd, rp_inbox_t **out);

/* Append item (borrowed until taken). Any thread. */
void rp_inbox_post(rp_inbox_t *ib, rp_inbox_item_t *item, int kind);

/* Take every posted item, oldest first, as a linked list (NULL if none).
 * Main thread. */
rp_inbox_item_t *rp_inbox_take(rp_inbox_t *ib);

/* Accepts NULL. Items still posted are not touched. */
void rp_inbox_destroy(rp_inbox_t *ib);

#endif
