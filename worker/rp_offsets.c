#include "rp_offsets.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Each partition keeps a ring buffer of the offsets it has taken but cannot
 * commit yet, oldest first. The front entry is always unfinished: finished
 * entries are popped from the front as soon as they get there, so the ring
 * holds exactly the "window" between the committable offset and the newest
 * tracked one. Its capacity follows the window (doubling when full,
 * halving when a quarter full), so memory is O(window), not O(offsets). */

#define RP_OFFSETS_RING_MIN 16 /* a power of two, like every capacity */

enum { RP_OFF_OPEN, RP_OFF_STAGED, RP_OFF_DONE };

typedef struct rp_offsets_entry {
    int64_t offset;
    unsigned char state; /* RP_OFF_* */
} rp_offsets_entry_t;

/* A range of offsets finished by an earlier owner, from restored commit
 * metadata: [lo, hi]. */
typedef struct rp_offsets_range {
    int64_t lo, hi;
} rp_offsets_range_t;

/* Restored ranges, at most this many (the metadata bound allows fewer). */
#define RP_OFFSETS_CARRY_MAX (RP_OFFSETS_META_MAX / 4)

typedef struct rp_offsets_part {
    rp_offsets_entry_t *ring;
    size_t cap;     /* a power of two, so & (cap - 1) wraps an index */
    size_t head;    /* index of the oldest entry */
    size_t count;   /* entries held (finished ones behind an unfinished) */
    size_t pending; /* entries not finished */
    int64_t last;   /* highest offset tracked since reset; -1: none */
    rp_offsets_range_t *carry; /* restored ranges, sorted */
    size_t ncarry;             /* length of carry */
    size_t carry_head;         /* ranges before it are consumed */
    int64_t base;              /* the restored committed offset; -1: none */
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
    p->base = -1;
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
    e->state = RP_OFF_OPEN;
    p->count++;
    p->pending++;
    p->last = offset;
    return RP_OK;
}

/* The entry of offset, or NULL when it is not in the ring. */
static rp_offsets_entry_t *rp_offsets_find(const rp_offsets_part_t *p,
                                           int64_t offset)
{
    size_t lo = 0, hi = p->count;
    rp_offsets_entry_t *e;

    /* Binary search: the ring is sorted by offset from head to tail. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (rp_offsets_at(p, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->count || (e = rp_offsets_at(p, lo))->offset != offset)
        return NULL;
    return e;
}

rp_err_t rp_offsets_stage(rp_offsets_t *t, int32_t partition, int64_t offset)
{
    rp_offsets_part_t *p = rp_offsets_get(t, partition);
    rp_offsets_entry_t *e = p ? rp_offsets_find(p, offset) : NULL;

    if (!e || e->state != RP_OFF_OPEN)
        return RP_ERR_NOT_FOUND;
    e->state = RP_OFF_STAGED;
    return RP_OK;
}

rp_err_t rp_offsets_unstage(rp_offsets_t *t, int32_t partition,
                            int64_t offset)
{
    rp_offsets_part_t *p = rp_offsets_get(t, partition);
    rp_offsets_entry_t *e = p ? rp_offsets_find(p, offset) : NULL;

    if (!e || e->state != RP_OFF_STAGED)
        return RP_ERR_NOT_FOUND;
    e->state = RP_OFF_OPEN;
    return RP_OK;
}

rp_err_t rp_offsets_done(rp_offsets_t *t, int32_t partition, int64_t offset)
{
    rp_offsets_part_t *p = rp_offsets_get(t, partition);
    rp_offsets_entry_t *e = p ? rp_offsets_find(p, offset) : NULL;

    if (!e || e->state == RP_OFF_DONE)
        return RP_ERR_NOT_FOUND;
    e->state = RP_OFF_DONE;
    p->pending--;

    while (p->count > 0 && rp_offsets_at(p, 0)->state == RP_OFF_DONE) {
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
                 t->parts[i]->cap * sizeof(*t->parts[i]->ring) +
                 t->parts[i]->ncarry * sizeof(*t->parts[i]->carry);
    return n;
}

/* ---- Commit metadata ----
 *
 * "rp1:" then ranges "G.L" joined by ",", numbers in base 36: a range
 * starts G offsets after the end of the previous one (the first: after the
 * committed offset) and holds L >= 1 offsets. E.g. committed 100 and
 * "rp1:2.3,a.1" = offsets 102-104 and 115 are done. Offsets between two
 * finished ones that were never delivered (compaction, transaction
 * markers) are folded into the range: they will never be delivered either.
 */

static size_t rp_offsets_b36(char *out, uint64_t v)
{
    char tmp[16];
    size_t n = 0, i;

    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

typedef struct rp_offsets_writer {
    char *buf;
    size_t cap, len;
    int64_t cursor; /* end (exclusive) of the previous range */
    bool truncated;
    bool first;
} rp_offsets_writer_t;

/* Append range [lo, hi] unless it does not fit. */
static void rp_offsets_put(rp_offsets_writer_t *wr, int64_t lo, int64_t hi)
{
    char item[40];
    size_t n = 0;

    if (wr->truncated)
        return;
    if (!wr->first)
        item[n++] = ',';
    n += rp_offsets_b36(item + n, (uint64_t)(lo - wr->cursor));
    item[n++] = '.';
    n += rp_offsets_b36(item + n, (uint64_t)(hi - lo + 1));
    if (wr->len + n + 1 > wr->cap) {
        wr->truncated = true;
        return;
    }
    memcpy(wr->buf + wr->len, item, n);
    wr->len += n;
    wr->buf[wr->len] = '\0';
    wr->cursor = hi + 1;
    wr->first = false;
}

size_t rp_offsets_encode(const rp_offsets_t *t, int32_t partition,
                         bool staged, int64_t *offset, char *buf, size_t cap,
                         bool *truncated)
{
    const rp_offsets_part_t *p = rp_offsets_get(t, partition);
    rp_offsets_writer_t wr = {.buf = buf, .cap = cap, .first = true};
    size_t plen = strlen(RP_OFFSETS_META_PREFIX), i = 0;
    int64_t lo = -1, hi = -1, low, tail;

    *truncated = false;
    *offset = -1;
    if (cap)
        buf[0] = '\0';
    if (!p || (p->last < 0 && p->base < 0))
        return 0;
    /* The commit point: the first entry that is neither done nor (when
     * asked) staged; past the ring, the next offset to come. */
    while (i < p->count && rp_offsets_at(p, i)->state != RP_OFF_OPEN &&
           (staged || rp_offsets_at(p, i)->state == RP_OFF_DONE))
        i++;
    tail = p->last >= 0 ? p->last + 1 : p->base;
    low = i < p->count ? rp_offsets_at(p, i)->offset : tail;
    *offset = low;
    if (cap <= plen)
        return 0;
    memcpy(buf, RP_OFFSETS_META_PREFIX, plen + 1);
    wr.len = plen;
    wr.cursor = low;
    for (; i < p->count; i++) {
        const rp_offsets_entry_t *e = rp_offsets_at(p, i);
        bool fin = e->state == RP_OFF_DONE ||
                   (staged && e->state == RP_OFF_STAGED);

        if (!fin) {
            if (lo >= 0)
                rp_offsets_put(&wr, lo, hi);
            lo = -1;
        } else {
            if (lo < 0)
                lo = e->offset;
            hi = e->offset;
        }
    }
    /* Restored ranges not consumed yet; one that begins right after the
     * last finished entry continues its range. */
    for (size_t k = p->carry_head; k < p->ncarry; k++) {
        int64_t clo = p->carry[k].lo, chi = p->carry[k].hi;

        if (chi < tail)
            continue;
        if (clo < tail)
            clo = tail;
        if (lo >= 0 && clo == hi + 1) {
            hi = chi;
            continue;
        }
        if (lo >= 0)
            rp_offsets_put(&wr, lo, hi);
        lo = clo;
        hi = chi;
    }
    if (lo >= 0)
        rp_offsets_put(&wr, lo, hi);
    *truncated = wr.truncated;
    if (wr.first) { /* nothing above the commit point */
        buf[0] = '\0';
        return 0;
    }
    return wr.len;
}

static int rp_offsets_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'z' ? c - 'a' + 10
                                  : -1;
}

/* Parse a base-36 number of 1 to 12 digits (36^12 < 2^63). */
static bool rp_offsets_num(const char **s, const char *end, int64_t *v)
{
    int64_t n = 0;
    int digits = 0, d;

    while (*s < end && digits < 12 && (d = rp_offsets_digit(**s)) >= 0) {
        n = n * 36 + d;
        (*s)++;
        digits++;
    }
    if (digits == 0 || (*s < end && rp_offsets_digit(**s) >= 0))
        return false;
    *v = n;
    return true;
}

rp_err_t rp_offsets_restore(rp_offsets_t *t, int32_t partition,
                            int64_t committed, const char *meta,
                            size_t meta_len)
{
    size_t plen = strlen(RP_OFFSETS_META_PREFIX), n = 0;
    const char *s = meta + plen, *end = meta + meta_len;
    rp_offsets_range_t *r = NULL;
    rp_offsets_part_t *p;
    int64_t cursor = committed;
    rp_err_t err = RP_OK;

    if (partition < 0 || partition >= RP_OFFSETS_PARTITIONS_MAX ||
        committed < 0)
        return RP_ERR_INVALID;
    if (!(p = rp_offsets_make(t, partition)))
        return RP_ERR_NOMEM;
    if (p->last >= 0)
        return RP_ERR_INVALID; /* records of it were tracked already */
    free(p->carry);
    p->carry = NULL;
    p->ncarry = p->carry_head = 0;
    p->base = committed;
    if (!meta || meta_len == 0)
        return RP_OK;
    if (meta_len < plen || memcmp(meta, RP_OFFSETS_META_PREFIX, plen) ||
        meta_len > RP_OFFSETS_META_MAX)
        return RP_ERR_INVALID;
    if (!(r = malloc(RP_OFFSETS_CARRY_MAX * sizeof(*r))))
        return RP_ERR_NOMEM;
    while (s < end) {
        int64_t gap, len;

        if (n > 0 && *s++ != ',') {
            err = RP_ERR_INVALID;
            goto out;
        }
        if (n == RP_OFFSETS_CARRY_MAX || !rp_offsets_num(&s, end, &gap) ||
            s == end || *s++ != '.' || !rp_offsets_num(&s, end, &len) ||
            len < 1 || gap > INT64_MAX / 2 - cursor ||
            len > INT64_MAX / 2 - cursor - gap) {
            err = RP_ERR_INVALID;
            goto out;
        }
        r[n].lo = cursor + gap;
        r[n].hi = r[n].lo + len - 1;
        cursor = r[n].hi + 1;
        n++;
    }
    p->carry = r;
    p->ncarry = n;
    r = NULL;
out:
    free(r);
    return err;
}

bool rp_offsets_carried(rp_offsets_t *t, int32_t partition, int64_t offset)
{
    rp_offsets_part_t *p = rp_offsets_get(t, partition);

    if (!p)
        return false;
    while (p->carry_head < p->ncarry && p->carry[p->carry_head].hi < offset)
        p->carry_head++;
    return p->carry_head < p->ncarry && p->carry[p->carry_head].lo <= offset;
}

static void rp_offsets_part_free(rp_offsets_part_t *p)
{
    if (!p)
        return;
    free(p->carry);
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
