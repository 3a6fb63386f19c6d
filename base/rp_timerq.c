/* rp_timerq — a binary min-heap of intrusive timers (see rp_timerq.h). */
#include "rp_timerq.h"

#include <limits.h>
#include <stdlib.h>

/* First allocation; the array doubles from there. */
#define RP_TIMERQ_INITIAL_CAP 64

void rp_timerq_init(rp_timerq_t *q)
{
    q->heap = NULL;
    q->n = q->cap = 0;
}

void rp_timerq_clear(rp_timerq_t *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        q->heap[i]->queued = false;
    free(q->heap);
    rp_timerq_init(q);
}

static bool rp_timerq_less(const rp_timerq_t *q, size_t a, size_t b)
{
    return q->heap[a]->due_ms < q->heap[b]->due_ms;
}

static void rp_timerq_swap(rp_timerq_t *q, size_t a, size_t b)
{
    rp_timer_t *t = q->heap[a];

    q->heap[a] = q->heap[b];
    q->heap[b] = t;
    q->heap[a]->idx = a;
    q->heap[b]->idx = b;
}

/* Restore the heap order around position i, up or down. */
static void rp_timerq_fix(rp_timerq_t *q, size_t i)
{
    while (i > 0 && rp_timerq_less(q, i, (i - 1) / 2)) {
        rp_timerq_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < q->n && rp_timerq_less(q, l, m))
            m = l;
        if (r < q->n && rp_timerq_less(q, r, m))
            m = r;
        if (m == i)
            break;
        rp_timerq_swap(q, i, m);
        i = m;
    }
}

rp_err_t rp_timerq_add(rp_timerq_t *q, rp_timer_t *t, int64_t due_ms)
{
    if (t->queued) {
        t->due_ms = due_ms;
        rp_timerq_fix(q, t->idx);
        return RP_OK;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : RP_TIMERQ_INITIAL_CAP;
        rp_timer_t **h = realloc(q->heap, cap * sizeof(*h));

        if (!h)
            return RP_ERR_NOMEM;
        q->heap = h;
        q->cap = cap;
    }
    t->due_ms = due_ms;
    t->idx = q->n;
    t->queued = true;
    q->heap[q->n++] = t;
    rp_timerq_fix(q, t->idx);
    return RP_OK;
}

void rp_timerq_remove(rp_timerq_t *q, rp_timer_t *t)
{
    size_t i = t->idx;

    if (!t->queued)
        return;
    t->queued = false;
    if (i != --q->n) {
        q->heap[i] = q->heap[q->n];
        q->heap[i]->idx = i;
        rp_timerq_fix(q, i);
    }
}

rp_timer_t *rp_timerq_peek(const rp_timerq_t *q)
{
    return q->n ? q->heap[0] : NULL;
}

rp_timer_t *rp_timerq_pop_due(rp_timerq_t *q, int64_t now_ms)
{
    rp_timer_t *t = rp_timerq_peek(q);

    if (!t || t->due_ms > now_ms)
        return NULL;
    rp_timerq_remove(q, t);
    return t;
}

int rp_timerq_wait_ms(const rp_timerq_t *q, int64_t now_ms, int max_ms)
{
    const rp_timer_t *t = rp_timerq_peek(q);
    int64_t d;

    if (!t)
        return max_ms < 0 ? -1 : max_ms;
    d = t->due_ms - now_ms;
    if (d <= 0)
        return 0;
    if (max_ms >= 0 && d > max_ms)
        return max_ms;
    return d > INT_MAX ? INT_MAX : (int)d;
}
