/* Tests for rp_offsets: committable is the lowest unfinished offset, gaps,
 * errors, reset, many partitions, memory that follows the window, and a
 * seeded random run against a brute-force reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rp_offsets.h"

static void test_in_order(void **state)
{
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    assert_non_null(t);
    assert_int_equal(rp_offsets_committable(t, 0), -1);
    for (int64_t o = 0; o < 5; o++)
        assert_int_equal(rp_offsets_track(t, 0, o), RP_OK);
    assert_int_equal(rp_offsets_pending(t, 0), 5);
    assert_int_equal(rp_offsets_committable(t, 0), 0);
    for (int64_t o = 0; o < 5; o++) {
        assert_int_equal(rp_offsets_done(t, 0, o), RP_OK);
        assert_int_equal(rp_offsets_committable(t, 0), o + 1);
    }
    assert_int_equal(rp_offsets_pending(t, 0), 0);
    rp_offsets_destroy(t);
}

static void test_out_of_order(void **state)
{
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(rp_offsets_track(t, 3, o), RP_OK);
    /* Finishing later ones does not move past an unfinished earlier one. */
    assert_int_equal(rp_offsets_done(t, 3, 12), RP_OK);
    assert_int_equal(rp_offsets_done(t, 3, 14), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 3), 10);
    assert_int_equal(rp_offsets_pending(t, 3), 3);
    /* The window counts the finished ones behind the oldest unfinished. */
    assert_int_equal(rp_offsets_window(t, 3), 5);
    assert_int_equal(rp_offsets_done(t, 3, 10), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 3), 11);
    assert_int_equal(rp_offsets_window(t, 3), 4);
    /* 11 done: 12 was already done, so it jumps to 13. */
    assert_int_equal(rp_offsets_done(t, 3, 11), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 3), 13);
    assert_int_equal(rp_offsets_done(t, 3, 13), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 3), 15);
    assert_int_equal(rp_offsets_pending(t, 3), 0);
    assert_int_equal(rp_offsets_window(t, 3), 0);
    assert_int_equal(rp_offsets_window(t, 2), 0);
    assert_int_equal(rp_offsets_window(NULL, 3), 0);
    /* Other partitions are untouched. */
    assert_int_equal(rp_offsets_committable(t, 2), -1);
    assert_int_equal(rp_offsets_committable(t, 4), -1);
    rp_offsets_destroy(t);
}

static void test_gaps(void **state)
{
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    assert_int_equal(rp_offsets_track(t, 0, 5), RP_OK);
    assert_int_equal(rp_offsets_track(t, 0, 9), RP_OK);
    assert_int_equal(rp_offsets_track(t, 0, 100), RP_OK);
    /* Offsets in the gaps were never tracked. */
    assert_int_equal(rp_offsets_done(t, 0, 6), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_done(t, 0, 4), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_done(t, 0, 101), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_done(t, 0, 9), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 0), 5);
    assert_int_equal(rp_offsets_done(t, 0, 5), RP_OK);
    /* 9 is done, so the lowest unfinished is 100, not 10. */
    assert_int_equal(rp_offsets_committable(t, 0), 100);
    assert_int_equal(rp_offsets_done(t, 0, 100), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 0), 101);
    rp_offsets_destroy(t);
}

static void test_errors(void **state)
{
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    assert_int_equal(rp_offsets_done(t, 0, 0), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_track(t, 0, 7), RP_OK);
    /* Not increasing. */
    assert_int_equal(rp_offsets_track(t, 0, 7), RP_ERR_INVALID);
    assert_int_equal(rp_offsets_track(t, 0, 3), RP_ERR_INVALID);
    assert_int_equal(rp_offsets_track(t, 0, -1), RP_ERR_INVALID);
    /* Bad partitions. */
    assert_int_equal(rp_offsets_track(t, -1, 0), RP_ERR_INVALID);
    assert_int_equal(rp_offsets_track(t, RP_OFFSETS_PARTITIONS_MAX, 0),
                     RP_ERR_INVALID);
    assert_int_equal(rp_offsets_done(t, -1, 0), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_committable(t, -1), -1);
    assert_int_equal(rp_offsets_pending(t, RP_OFFSETS_PARTITIONS_MAX), 0);
    rp_offsets_reset(t, -5);
    rp_offsets_reset(t, RP_OFFSETS_PARTITIONS_MAX + 10);
    /* The failed calls changed nothing. */
    assert_int_equal(rp_offsets_pending(t, 0), 1);
    assert_int_equal(rp_offsets_committable(t, 0), 7);
    assert_int_equal(rp_offsets_done(t, 0, 7), RP_OK);
    /* Twice done: the second is not found (no longer tracked). */
    assert_int_equal(rp_offsets_done(t, 0, 7), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_track(t, 0, 8), RP_OK);
    assert_int_equal(rp_offsets_track(t, 0, 9), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 9), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 9), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_pending(t, 0), 1);
    assert_int_equal(rp_offsets_committable(t, 0), 8);
    rp_offsets_destroy(t);
    rp_offsets_destroy(NULL);
    assert_int_equal(rp_offsets_memory(NULL), 0);
}

static void test_reset(void **state)
{
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    for (int64_t o = 0; o < 10; o++)
        assert_int_equal(rp_offsets_track(t, 1, o), RP_OK);
    assert_int_equal(rp_offsets_track(t, 2, 50), RP_OK);
    assert_int_equal(rp_offsets_done(t, 1, 0), RP_OK);
    rp_offsets_reset(t, 1);
    assert_int_equal(rp_offsets_committable(t, 1), -1);
    assert_int_equal(rp_offsets_pending(t, 1), 0);
    /* A job that finishes after the revoke is a late completion. */
    assert_int_equal(rp_offsets_done(t, 1, 5), RP_ERR_NOT_FOUND);
    /* Partition 2 is unaffected. */
    assert_int_equal(rp_offsets_committable(t, 2), 50);
    /* After reassignment the partition may restart from any offset, even
     * below what was tracked before (the committed one). */
    assert_int_equal(rp_offsets_track(t, 1, 1), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 1), 1);
    assert_int_equal(rp_offsets_done(t, 1, 1), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 1), 2);
    rp_offsets_destroy(t);
}

static void test_many_partitions(void **state)
{
    enum { NP = 5000 };
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    /* Highest partition first, then the rest. */
    assert_int_equal(rp_offsets_track(t, RP_OFFSETS_PARTITIONS_MAX - 1, 42),
                     RP_OK);
    for (int32_t p = 0; p < NP; p++) {
        assert_int_equal(rp_offsets_track(t, p, p), RP_OK);
        assert_int_equal(rp_offsets_track(t, p, p + 1), RP_OK);
    }
    for (int32_t p = 0; p < NP; p += 2)
        assert_int_equal(rp_offsets_done(t, p, p + 1), RP_OK);
    for (int32_t p = 0; p < NP; p++) {
        assert_int_equal(rp_offsets_committable(t, p), p);
        assert_int_equal(rp_offsets_pending(t, p), p % 2 ? 2 : 1);
    }
    assert_int_equal(rp_offsets_committable(t, RP_OFFSETS_PARTITIONS_MAX - 1),
                     42);
    for (int32_t p = 0; p < NP; p += 2)
        rp_offsets_reset(t, p);
    for (int32_t p = 0; p < NP; p++)
        assert_int_equal(rp_offsets_committable(t, p), p % 2 ? p : -1);
    rp_offsets_destroy(t);
}

/* One partition, a million offsets, a bounded number in flight: memory
 * must follow the window, not the number of offsets seen. */
static void test_million_offsets_bounded_memory(void **state)
{
    enum { N = 1000000, BLOCK = 64 };
    rp_offsets_t *t = rp_offsets_new();
    size_t mem_max = 0, mem_base;
    int64_t first;

    (void)state;
    assert_int_equal(rp_offsets_track(t, 0, 0), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 0), RP_OK);
    mem_base = rp_offsets_memory(t);
    /* Track block b, then finish block b-1 backwards: out of order, and
     * never more than 2 * BLOCK offsets held. */
    for (int64_t b = 0; b < N / BLOCK; b++) {
        for (int64_t o = 1 + b * BLOCK; o <= (b + 1) * BLOCK; o++)
            assert_int_equal(rp_offsets_track(t, 0, o), RP_OK);
        if (b > 0) {
            for (int64_t o = b * BLOCK; o > (b - 1) * BLOCK; o--) {
                assert_int_equal(rp_offsets_done(t, 0, o), RP_OK);
                assert_int_equal(rp_offsets_committable(t, 0),
                                 o == (b - 1) * BLOCK + 1 ? b * BLOCK + 1
                                                          : (b - 1) * BLOCK + 1);
            }
        }
        if (rp_offsets_memory(t) > mem_max)
            mem_max = rp_offsets_memory(t);
    }
    assert_int_equal(rp_offsets_pending(t, 0), BLOCK);
    /* 16-byte entries; capacity is at most twice what was ever held. */
    assert_true(mem_max <= mem_base + 2 * (2 * BLOCK) * 16);

    /* A burst grows it; finishing the burst gives the memory back. */
    first = rp_offsets_committable(t, 0);
    for (int64_t o = N + 1; o <= N + 100000; o++)
        assert_int_equal(rp_offsets_track(t, 0, o), RP_OK);
    assert_true(rp_offsets_memory(t) >= mem_base + (100000 - 16) * 16);
    for (int64_t o = first; o <= N + 100000; o++)
        if (o <= (N / BLOCK) * BLOCK || o > N)
            assert_int_equal(rp_offsets_done(t, 0, o), RP_OK);
    assert_int_equal(rp_offsets_pending(t, 0), 0);
    assert_int_equal(rp_offsets_committable(t, 0), N + 100001);
    assert_int_equal(rp_offsets_memory(t), mem_base);
    rp_offsets_destroy(t);
}

/* ---- randomized comparison with a brute-force reference ---- */

enum { REF_PARTS = 4, REF_OFFSETS = 20000 };

/* Reference: per partition, a flag per possible offset, scanned
 * linearly (low only skips what can never be open again). */
typedef struct ref {
    unsigned char state[REF_PARTS][REF_OFFSETS]; /* 0 none, 1 open, 2 done */
    int64_t last[REF_PARTS];
    int64_t low[REF_PARTS];
} ref_t;

static int64_t ref_committable(ref_t *r, int p)
{
    if (r->last[p] < 0)
        return -1;
    while (r->low[p] <= r->last[p] && r->state[p][r->low[p]] != 1)
        r->low[p]++;
    return r->low[p] <= r->last[p] ? r->low[p] : r->last[p] + 1;
}

static size_t ref_pending(const ref_t *r, int p)
{
    size_t n = 0;

    for (int64_t o = 0; o <= r->last[p]; o++)
        n += r->state[p][o] == 1;
    return n;
}

static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static void test_random_against_reference(void **state)
{
    ref_t *r = calloc(1, sizeof(*r));
    rp_offsets_t *t = rp_offsets_new();

    (void)state;
    assert_non_null(r);
    rng_state = 0x2545f4914f6cdd1dULL;
    for (int p = 0; p < REF_PARTS; p++)
        r->last[p] = -1;
    for (int step = 0; step < 60000; step++) {
        int p = (int)(rng() % REF_PARTS);
        uint32_t op = rng() % 1000;

        if (op < 450) {
            /* Track the next offset, sometimes leaving a gap. */
            int64_t o = r->last[p] + 1 + (rng() % 4 == 0 ? rng() % 5 : 0);

            if (o >= REF_OFFSETS)
                continue;
            assert_int_equal(rp_offsets_track(t, p, o), RP_OK);
            r->state[p][o] = 1;
            r->last[p] = o;
        } else if (op < 950) {
            /* Done on any offset around the open window: hits, misses,
             * repeats, gaps. */
            int64_t low = ref_committable(r, p), o;
            rp_err_t want;

            if (low < 0)
                continue;
            o = low - 2 + (int64_t)(rng() % (uint64_t)(r->last[p] - low + 5));
            if (o < 0 || o >= REF_OFFSETS)
                continue;
            want = r->state[p][o] == 1 ? RP_OK : RP_ERR_NOT_FOUND;
            assert_int_equal(rp_offsets_done(t, p, o), want);
            if (want == RP_OK)
                r->state[p][o] = 2;
        } else if (op < 955) {
            rp_offsets_reset(t, p);
            memset(r->state[p], 0, sizeof(r->state[p]));
            r->last[p] = -1;
            r->low[p] = 0;
        } else {
            /* A non-increasing track must fail and change nothing. */
            if (r->last[p] >= 0)
                assert_int_equal(rp_offsets_track(t, p, r->last[p] -
                                                  (int64_t)(rng() % 2)),
                                 RP_ERR_INVALID);
        }
        assert_int_equal(rp_offsets_committable(t, p), ref_committable(r, p));
        if (step % 97 == 0)
            for (int q = 0; q < REF_PARTS; q++)
                assert_int_equal(rp_offsets_pending(t, q), ref_pending(r, q));
    }
    rp_offsets_destroy(t);
    free(r);
}


/* Encode what t knows of partition p; returns the committed offset. */
static int64_t encode(rp_offsets_t *t, int32_t p, bool staged, char *meta,
                      size_t cap, bool *trunc)
{
    int64_t off;

    rp_offsets_encode(t, p, staged, &off, meta, cap, trunc);
    return off;
}

static void test_meta_encode(void **state)
{
    rp_offsets_t *t = rp_offsets_new();
    char meta[RP_OFFSETS_META_MAX + 1];
    bool trunc;

    (void)state;
    /* Nothing known: nothing to commit. */
    assert_int_equal(encode(t, 0, false, meta, sizeof(meta), &trunc), -1);
    for (int64_t o = 100; o < 120; o++)
        if (o != 110) /* 110 never delivered (a transaction marker) */
            assert_int_equal(rp_offsets_track(t, 0, o), RP_OK);
    /* 102-104, 109 and 111 (110 folds in), 115 done; 100 open. */
    for (int64_t o = 102; o <= 104; o++)
        assert_int_equal(rp_offsets_done(t, 0, o), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 109), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 111), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 115), RP_OK);
    assert_int_equal(encode(t, 0, false, meta, sizeof(meta), &trunc), 100);
    assert_false(trunc);
    /* 102 = 100 + 2, 3 long; 109 = 105 + 4, 3 long (109-111); 115 =
     * 112 + 3, 1 long. */
    assert_string_equal(meta, "rp1:2.3,4.3,3.1");
    /* Nothing above the commit point done: empty metadata. */
    rp_offsets_reset(t, 0);
    assert_int_equal(rp_offsets_track(t, 0, 5), RP_OK);
    assert_int_equal(encode(t, 0, false, meta, sizeof(meta), &trunc), 5);
    assert_string_equal(meta, "");
    assert_int_equal(rp_offsets_done(t, 0, 5), RP_OK);
    assert_int_equal(encode(t, 0, false, meta, sizeof(meta), &trunc), 6);
    assert_string_equal(meta, "");
    /* Large gaps are written in base 36. */
    rp_offsets_reset(t, 0);
    assert_int_equal(rp_offsets_track(t, 0, 0), RP_OK);
    assert_int_equal(rp_offsets_track(t, 0, 36 * 36 + 1), RP_OK);
    assert_int_equal(rp_offsets_done(t, 0, 36 * 36 + 1), RP_OK);
    assert_int_equal(encode(t, 0, false, meta, sizeof(meta), &trunc), 0);
    assert_string_equal(meta, "rp1:101.1");
    rp_offsets_destroy(t);
}

static void test_meta_staged(void **state)
{
    rp_offsets_t *t = rp_offsets_new();
    char meta[64];
    bool trunc;

    (void)state;
    for (int64_t o = 0; o < 4; o++)
        assert_int_equal(rp_offsets_track(t, 1, o), RP_OK);
    assert_int_equal(rp_offsets_stage(t, 1, 0), RP_OK);
    assert_int_equal(rp_offsets_stage(t, 1, 2), RP_OK);
    assert_int_equal(rp_offsets_stage(t, 1, 2), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_stage(t, 1, 9), RP_ERR_NOT_FOUND);
    /* A plain commit does not count staged offsets... */
    assert_int_equal(encode(t, 1, false, meta, sizeof(meta), &trunc), 0);
    assert_string_equal(meta, "");
    assert_int_equal(rp_offsets_committable(t, 1), 0);
    /* ...a commit inside the transaction does. */
    assert_int_equal(encode(t, 1, true, meta, sizeof(meta), &trunc), 1);
    assert_string_equal(meta, "rp1:1.1");
    /* Aborted: 2 is open again; committed: 0 is done. */
    assert_int_equal(rp_offsets_unstage(t, 1, 2), RP_OK);
    assert_int_equal(rp_offsets_unstage(t, 1, 2), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_offsets_done(t, 1, 0), RP_OK);
    assert_int_equal(encode(t, 1, true, meta, sizeof(meta), &trunc), 1);
    assert_string_equal(meta, "");
    assert_int_equal(rp_offsets_pending(t, 1), 3);
    /* A staged offset can be marked done directly. */
    assert_int_equal(rp_offsets_stage(t, 1, 1), RP_OK);
    assert_int_equal(rp_offsets_done(t, 1, 1), RP_OK);
    assert_int_equal(rp_offsets_committable(t, 1), 2);
    rp_offsets_destroy(t);
}

static void test_meta_truncated(void **state)
{
    rp_offsets_t *t = rp_offsets_new();
    char meta[RP_OFFSETS_META_MAX + 1];
    bool trunc;
    size_t len;
    int64_t off;

    (void)state;
    /* Every other offset done: one range each, far more than fit. */
    for (int64_t o = 0; o < 20000; o++)
        assert_int_equal(rp_offsets_track(t, 0, o), RP_OK);
    for (int64_t o = 1; o < 20000; o += 2)
        assert_int_equal(rp_offsets_done(t, 0, o), RP_OK);
    len = rp_offsets_encode(t, 0, false, &off, meta, sizeof(meta), &trunc);
    assert_true(trunc);
    assert_int_equal(off, 0);
    assert_true(len <= RP_OFFSETS_META_MAX);
    assert_int_equal(strlen(meta), len);
    assert_true(len > RP_OFFSETS_META_MAX - 8); /* filled, not given up */
    /* What fits is a valid prefix: the ranges it names are carried. */
    {
        rp_offsets_t *u = rp_offsets_new();
        int64_t o;

        assert_int_equal(rp_offsets_restore(u, 0, 0, meta, len), RP_OK);
        for (o = 0; o < 200; o++)
            assert_int_equal(rp_offsets_carried(u, 0, o), o % 2 == 1);
        rp_offsets_destroy(u);
    }
    rp_offsets_destroy(t);
}

static void test_meta_restore(void **state)
{
    rp_offsets_t *t = rp_offsets_new(), *u = rp_offsets_new();
    char meta[RP_OFFSETS_META_MAX + 1];
    bool trunc;
    size_t len;
    int64_t off;
    static const char *const bad[] = {
        "xx1:1.1", "rp1", "rp1:1", "rp1:1.", "rp1:1.0", "rp1:.1",
        "rp1:1.1,", "rp1:1.1;2.2", "rp1:A.1", "rp1:zzzzzzzzzzzzz.1",
    };

    (void)state;
    /* The previous owner: 10 open, 11-12 and 14 done, 13 open. */
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(rp_offsets_track(t, 2, o), RP_OK);
    assert_int_equal(rp_offsets_done(t, 2, 11), RP_OK);
    assert_int_equal(rp_offsets_done(t, 2, 12), RP_OK);
    assert_int_equal(rp_offsets_done(t, 2, 14), RP_OK);
    len = rp_offsets_encode(t, 2, false, &off, meta, sizeof(meta), &trunc);
    assert_int_equal(off, 10);
    /* The next owner is re-delivered 10..14 and skips the finished. */
    assert_int_equal(rp_offsets_restore(u, 2, off, meta, len), RP_OK);
    /* Before anything is consumed, the commit stays what it was. */
    {
        char again[RP_OFFSETS_META_MAX + 1];
        int64_t off2;
        size_t len2 = rp_offsets_encode(u, 2, false, &off2, again,
                                        sizeof(again), &trunc);

        assert_int_equal(off2, 10);
        assert_int_equal(len2, len);
        assert_string_equal(again, meta);
    }
    for (int64_t o = 10; o < 15; o++) {
        bool c = rp_offsets_carried(u, 2, o);

        assert_int_equal(c, o == 11 || o == 12 || o == 14);
        assert_int_equal(rp_offsets_track(u, 2, o), RP_OK);
        if (c)
            assert_int_equal(rp_offsets_done(u, 2, o), RP_OK);
    }
    assert_false(rp_offsets_carried(u, 2, 15));
    assert_int_equal(rp_offsets_committable(u, 2), 10);
    /* Only 10 consumed so far elsewhere: the carried ranges beyond the
     * newest tracked offset are still written into the next commit. */
    rp_offsets_reset(u, 2);
    assert_int_equal(rp_offsets_restore(u, 2, off, meta, len), RP_OK);
    assert_false(rp_offsets_carried(u, 2, 10));
    assert_int_equal(rp_offsets_track(u, 2, 10), RP_OK);
    assert_int_equal(rp_offsets_done(u, 2, 10), RP_OK);
    len = rp_offsets_encode(u, 2, false, &off, meta, sizeof(meta), &trunc);
    assert_int_equal(off, 11);
    assert_string_equal(meta, "rp1:0.2,1.1");
    /* Not ours, or malformed: refused, nothing carried. */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rp_offsets_reset(u, 3);
        assert_int_equal(rp_offsets_restore(u, 3, 5, bad[i], strlen(bad[i])),
                         RP_ERR_INVALID);
        assert_false(rp_offsets_carried(u, 3, 6));
    }
    /* Empty metadata: fine, nothing carried. */
    rp_offsets_reset(u, 3);
    assert_int_equal(rp_offsets_restore(u, 3, 5, "", 0), RP_OK);
    assert_false(rp_offsets_carried(u, 3, 5));
    /* Restore after tracking began, bad partition or offset: refused. */
    assert_int_equal(rp_offsets_restore(u, 2, 0, "", 0), RP_ERR_INVALID);
    assert_int_equal(rp_offsets_restore(u, -1, 0, "", 0), RP_ERR_INVALID);
    assert_int_equal(rp_offsets_restore(u, 4, -1, "", 0), RP_ERR_INVALID);
    rp_offsets_destroy(t);
    rp_offsets_destroy(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_many_partitions),
        cmocka_unit_test(test_million_offsets_bounded_memory),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_meta_encode),
        cmocka_unit_test(test_meta_staged),
        cmocka_unit_test(test_meta_truncated),
        cmocka_unit_test(test_meta_restore),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
