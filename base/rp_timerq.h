/* rp_timerq — one timer queue: "wake this up at time T".
 *
 * A binary min-heap of intrusive timers ordered by due time (monotonic
 * milliseconds, rp_time_mono_ms). The owner embeds an rp_timer_t in each
 * object that waits and finds the object again with RP_LIST_ENTRY-style
 * arithmetic (RP_TIMER_ENTRY). Add, move and remove are O(log n); the
 * nearest due time is O(1), so an event loop computes its poll timeout
 * from it the way Redis's ae.c does:
 *
 *     timeout = rp_timerq_wait_ms(&q, now, max_ms);
 *     poll(..., timeout);
 *     while ((t = rp_timerq_pop_due(&q, rp_time_mono_ms())))
 *         fire(RP_TIMER_ENTRY(t, struct job, timer));
 *
 * docs/internals/timerq.md has the picture. Memory: the queue owns only
 * its array of pointers; timers belong to their objects, which must be
 * removed (rp_timerq_remove) before they are freed. A zeroed rp_timer_t is
 * not queued. Thread-safety: none; the owner serialises access (the
 * worker's main thread, or a backend under its lock).
 */
#ifndef RP_TIMERQ_H
#define RP_TIMERQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

typedef struct rp_timer {
    int64_t due_ms; /* when queued: the time it is due */
    size_t idx;     /* position in the heap; internal */
    bool queued;
} rp_timer_t;

#define RP_TIMER_ENTRY(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct rp_timerq {
    rp_timer_t **heap; /* owned array; the timers are borrowed */
    size_t n, cap;
} rp_timerq_t;

/* An empty queue (a zeroed rp_timerq_t is one too). */
void rp_timerq_init(rp_timerq_t *q);
/* Free the array; the timers are left as they are. Accepts NULL. */
void rp_timerq_clear(rp_timerq_t *q);

/* Queue t (borrowed until removed or popped) to fire at due_ms, or move it
 * there when it is already queued. RP_ERR_NOMEM only for a new entry when
 * the array cannot grow; moving never fails. */
rp_err_t rp_timerq_add(rp_timerq_t *q, rp_timer_t *t, int64_t due_ms);
/* Take t out of the queue; a no-op when it is not queued. */
void rp_timerq_remove(rp_timerq_t *q, rp_timer_t *t);

/* The earliest timer (still queued), or NULL when empty. */
rp_timer_t *rp_timerq_peek(const rp_timerq_t *q);
/* Remove and return the earliest timer due at or before now_ms, or NULL. */
rp_timer_t *rp_timerq_pop_due(rp_timerq_t *q, int64_t now_ms);
/* Milliseconds from now_ms until the earliest timer is due: 0 when one is
 * due already, max_ms when the queue is empty or the timer is further off
 * (so a loop still turns at least every max_ms; max_ms < 0 means no cap
 * and -1 for an empty queue, poll()'s "wait forever"). */
int rp_timerq_wait_ms(const rp_timerq_t *q, int64_t now_ms, int max_ms);

static inline size_t rp_timerq_len(const rp_timerq_t *q)
{
    return q->n;
}

#endif
