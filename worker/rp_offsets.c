#include "rp_offsets.h"

#include <stdbool.h>
#include <stdlib.h>

/* Each partition keeps a ring buffer of the offsets it has taken but cannot
 * commit yet, oldest first. The front entry is always unfinished: finished
 * entries are popped from the front as soon as they get there, so the ring
 * holds exactly the "window" between the committable offset and the newest
 * tracked one. Its capacity follows the window (doubling when full,
 * halving when a quarter full), so memory is O(window), not O(offsets). */

#define RP_OFFSETS_RING_MIN 16 /* a power of two, like every capacity */

typedef struct rp_offsets_entry {
    int64_t offset;
    bool done;
} rp_offsets_entry_t;

typedef struct rp_offsets_part {
    rp_offsets_entry_t *ring;
    size_t cap;     /* a power of two, so & (cap - 1) wraps an index */
    size_t head;    /* index of the oldest entry */
    size_t count;   /* entries held (finished ones behind an unfinished) */
    size_t pending; /* entries not finished */
    int64_t last;   /* highest offset tracked since reset; -1: none */
} rp_offsets_part_t;

struct rp_offsets {
    rp_offsets_part_t **parts; /* indexed by partition; NULL: untouched */
    size_t nparts;             /* length of parts */
};

rp_offsets_t *rp_offsets_new(void)
{
    return calloc(1, sizeof(rp_offsets_t));
}

static rp_offsets_entry_t *rp_offsets_at(const rp_offsets_part_t *p, size_t i)
{
    return &p->ring[(p->head + i) & (p->cap - 1)];
}

/* The partition's state, or NULL when it was never tracked (or was reset)
 * or is out of range. */
static rp_offsets_part_t *rp_offsets_get(const rp_offsets_t *t,
                                         int32_t partition)
{
    if (partition < 0 || (size_t)partition >= t->nparts)
        return NULL;
    return t->parts[partition];
}

/* Copy the ring into a new one of capacity cap (>= count), unwrapped. */
static rp_err_t rp_offsets_resize(rp_offsets_part_t *p, size_t cap)
{
    rp_offsets_entry_t *ring = malloc(cap * sizeof(*ring));

    if (!ring)
        return RP_ERR_NOMEM;
    for (size_t i = 0; i < p->count; i++)
        ring[i] = *rp_offsets_at(p, i);
    free(p->ring);
    p->ring = ring;
    p->cap = cap;
    p->head = 0;
    return RP_OK;
}

/* Make the partition's slot exist (the index array grows on demand, so a
 * worker with partitions 0..3 never pays for RP_OFFSETS_PARTITIONS_MAX). */
static rp_offsets_part_t *rp_offsets_make(rp_offsets_t *t, int32_t partition)
{
    size_t want = (size_t)partition + 1;
    rp_offsets_part_t *p;

    if (want > t->nparts) {
        size_t n = t->nparts ? t->nparts : 8;
        rp_offsets_part_t **parts;

        while (n < want)
            n *= 2;
        if (n > RP_OFFSETS_PARTITIONS_MAX)
            n = RP_OFFSETS_PARTITIONS_MAX;
        if (!(parts = realloc(t->parts, n * sizeof(*parts))))
            return NULL;
        for (size_t i = t->nparts; i < n; i++)
            parts[i] = NULL;
        t->parts = parts;
        t->nparts = n;
    }
    if ((p = t->parts[partition]) != NULL)
        return p;
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;
    if (!(p->ring = malloc(RP_OFFSETS_RING_MIN * sizeof(*p->ring)))) {
        free(p);
        return NULL;
    }
    p->cap = RP_OFFSETS_RING_MIN;
    p->last = -1;
    t->parts[partition] = p;
    return p;
}

rp_err_t rp_offsets_track(rp_offsets_t *t, int32_t partition, int64_t offset)
{
    rp_offsets_part_t *p;
    rp_offsets_entry_t *e;

    if (partition < 0 || partition >= RP_OFFSETS_PARTITIONS_MAX || offset < 0)
        return RP_ERR_INVALID;
    if (!(p = rp_offsets_make(t, partition)))
        return RP_ERR_NOMEM;
    if (offset <= p->last)
        return RP_ERR_INVALID;
    if (p->count == p->cap &&
        (p->cap > SIZE_MAX / 2 / sizeof(*p->ring) ||
         rp_offsets_resize(p, p->cap * 2) != RP_OK))
        return RP_ERR_NOMEM;
    e = rp_offsets_at(p, p->count);
    e->offset = offset;
    e->done = false;
    p->count++;
    p->pending++;
    p->last = offset;
    return RP_OK;
}

rp_err_t rp_offsets_done(rp_offsets_t *t, int32_t partition, int64_t offset)
{
    rp_offsets_part_t *p = rp_offsets_get(t, partition);
    size_t lo = 0, hi;
    rp_offsets_entry_t *e;

    if (!p)
        return RP_ERR_NOT_FOUND;
    /* Binary search: the ring is sorted by offset from head to tail. */
    hi = p->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rp_offsets_at(p, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->count || (e = rp_offsets_at(p, lo))->offset != offset ||
        e->done)
        return RP_ERR_NOT_FOUND;
    e->done = true;
    p->pending--;

    while (p->count > 0 && rp_offsets_at(p, 0)->done) {
        p->head = (p->head + 1) & (p->cap - 1);
        p->count--;
    }
    /* Give memory back after a burst; failing to shrink is harmless. */
    if (p->cap > RP_OFFSETS_RING_MIN && p->count < p->cap / 4)
        (void)rp_offsets_resize(p, p->cap / 2);
    return RP_OK;
}

int64_t rp_offsets_committable(const rp_offsets_t *t, int32_t partition)
{
    const rp_offsets_part_t *p = rp_offsets_get(t, partition);

    if (!p || p->last < 0)
        return -1;
    if (p->count == 0)
        return p->last + 1;
    return rp_offsets_at(p, 0)->offset;
}

size_t rp_offsets_pending(const rp_offsets_t *t, int32_t partition)
{
    const rp_offsets_part_t *p = rp_offsets_get(t, partition);

    return p ? p->pending : 0;
}

size_t rp_offsets_window(const rp_offsets_t *t, int32_t partition)
{
    const rp_offsets_part_t *p = t ? rp_offsets_get(t, partition) : NULL;

    return p ? p->count : 0;
}

size_t rp_offsets_memory(const rp_offsets_t *t)
{
    size_t n;

    if (!t)
        return 0;
    n = sizeof(*t) + t->nparts * sizeof(*t->parts);
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i])
            n += sizeof(*t->parts[i]) +
                 t->parts[i]->cap * sizeof(*t->parts[i]->ring);
    return n;
}

static void rp_offsets_part_free(rp_offsets_part_t *p)
{
    if (!p)
        return;
    free(p->ring);
    free(p);
}

void rp_offsets_reset(rp_offsets_t *t, int32_t partition)
{
    if (partition < 0 || (size_t)partition >= t->nparts)
        return;
    rp_offsets_part_free(t->parts[partition]);
    t->parts[partition] = NULL;
}

void rp_offsets_destroy(rp_offsets_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nparts; i++)
        rp_offsets_part_free(t->parts[i]);
    free(t->parts);
    free(t);
}
