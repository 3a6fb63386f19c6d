/* rp_sched — the key-ordered scheduler.
 *
 * Records of one key (session_id) run strictly one after another, in the
 * order they were pushed (offset order); records of different keys run
 * concurrently, including keys that share a partition. This is Confluent
 * Parallel Consumer's KEY mode: one slow session never holds up another.
 *
 * The scheduler only decides *what may run*; it neither runs nor frees
 * jobs. A job is an opaque pointer owned by the caller.
 *
 *   rp_sched_push(s, key, job, &runnable)  runnable=1: start it now
 *   ... job finishes ...
 *   next = rp_sched_done(s, key)           next != NULL: start next now
 *
 * Memory: O(keys with work + queued jobs); a key's entry is freed as soon
 * as its last job is done, so idle sessions cost nothing.
 *
 * Thread-safety: none; the worker's main thread owns it.
 */
#ifndef RP_SCHED_H
#define RP_SCHED_H

#include <stddef.h>

#include "rp_err.h"

/* Longest key accepted: Kafka keys come from outside, and Kafka's own
 * default message limit is 1 MiB. Session ids are far shorter. */
#define RP_SCHED_KEY_MAX (1024 * 1024)

typedef struct rp_sched rp_sched_t;

/* Caller frees with rp_sched_destroy(). NULL on allocation failure. */
rp_sched_t *rp_sched_new(void);

/* Append job (borrowed) to key's queue (key copied, keylen bytes, may
 * contain any byte; NULL when keylen is 0). *runnable is set to 1 when the
 * key had no job, so this one becomes the key's running job, else 0.
 * RP_ERR_TOO_LARGE when keylen > RP_SCHED_KEY_MAX, RP_ERR_NOMEM; on error
 * nothing changes and *runnable is 0. */
rp_err_t rp_sched_push(rp_sched_t *s, const char *key, size_t keylen,
                       void *job, int *runnable);

/* The running job of key finished. Returns the key's next job, which is now
 * the running one (the caller starts it), or NULL when the key is idle.
 * Calling it for a key with no running job is a bug (returns NULL). */
void *rp_sched_done(rp_sched_t *s, const char *key, size_t keylen);

/* Remove every *queued* (not running) job for which match(job, opaque) is
 * non-zero, calling dropped(job, opaque) for each, in queue order. Running
 * jobs stay: the caller finishes or cancels them and calls rp_sched_done.
 * Returns the number dropped. Used when a partition is revoked. The
 * callbacks must not call into the scheduler; dropped (may be NULL) may
 * free the job. */
size_t rp_sched_drop_queued(rp_sched_t *s, int (*match)(void *job, void *opaque),
                            void (*dropped)(void *job, void *opaque),
                            void *opaque);

size_t rp_sched_keys(const rp_sched_t *s);   /* keys with a running job */
size_t rp_sched_queued(const rp_sched_t *s); /* jobs waiting behind one */

/* Accepts NULL. Does not touch the jobs. */
void rp_sched_destroy(rp_sched_t *s);

#endif
