/* Tests for rp_sched: per-key FIFO order, one running job per key,
 * concurrency across keys, drop_queued, binary keys, counters, and a
 * seeded random run against a simple reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rp_sched.h"

/* A job as the tests see it: which key, and its sequence number there. */
typedef struct job {
    int key;
    int seq;
} job_t;

static void key_name(int key, char *out, size_t size)
{
    snprintf(out, size, "session-%d", key);
}

static int push_job(rp_sched_t *s, job_t *j)
{
    char k[32];
    int runnable = -1;

    key_name(j->key, k, sizeof(k));
    assert_int_equal(rp_sched_push(s, k, strlen(k), j, &runnable), RP_OK);
    assert_true(runnable == 0 || runnable == 1);
    return runnable;
}

static job_t *done_key(rp_sched_t *s, int key)
{
    char k[32];

    key_name(key, k, sizeof(k));
    return rp_sched_done(s, k, strlen(k));
}

static void test_interleaved_keys_keep_fifo(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t jobs[10];

    (void)state;
    assert_non_null(s);
    /* Keys 0 and 1 alternate: a0 b0 a1 b1 ... */
    for (int i = 0; i < 10; i++) {
        jobs[i].key = i % 2;
        jobs[i].seq = i / 2;
        assert_int_equal(push_job(s, &jobs[i]), i < 2 ? 1 : 0);
    }
    assert_int_equal(rp_sched_keys(s), 2);
    assert_int_equal(rp_sched_queued(s), 8);

    /* Finish key 1 twice first, then key 0: each yields its own next. */
    job_t *n = done_key(s, 1);
    assert_ptr_equal(n, &jobs[3]);
    n = done_key(s, 1);
    assert_ptr_equal(n, &jobs[5]);
    for (int seq = 1; seq < 5; seq++) {
        n = done_key(s, 0);
        assert_non_null(n);
        assert_int_equal(n->key, 0);
        assert_int_equal(n->seq, seq);
    }
    assert_null(done_key(s, 0));
    assert_int_equal(rp_sched_keys(s), 1);
    assert_ptr_equal(done_key(s, 1), &jobs[7]);
    assert_ptr_equal(done_key(s, 1), &jobs[9]);
    assert_null(done_key(s, 1));
    assert_int_equal(rp_sched_keys(s), 0);
    assert_int_equal(rp_sched_queued(s), 0);
    rp_sched_destroy(s);
}

static void test_second_job_waits_for_first(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t a = {0, 0}, b = {0, 1}, c = {0, 2};

    (void)state;
    assert_int_equal(push_job(s, &a), 1);
    assert_int_equal(push_job(s, &b), 0);
    /* Still the first job running, so a third push is not runnable. */
    assert_int_equal(push_job(s, &c), 0);
    assert_ptr_equal(done_key(s, 0), &b);
    assert_int_equal(rp_sched_queued(s), 1);
    assert_ptr_equal(done_key(s, 0), &c);
    assert_null(done_key(s, 0));
    /* The key is idle again: a new push runs at once. */
    assert_int_equal(push_job(s, &a), 1);
    assert_null(done_key(s, 0));
    rp_sched_destroy(s);
}

static void test_different_keys_run_concurrently(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t jobs[50];

    (void)state;
    for (int i = 0; i < 50; i++) {
        jobs[i].key = i;
        jobs[i].seq = 0;
        assert_int_equal(push_job(s, &jobs[i]), 1);
    }
    assert_int_equal(rp_sched_keys(s), 50);
    assert_int_equal(rp_sched_queued(s), 0);
    /* Finish in reverse: no key depends on another. */
    for (int i = 49; i >= 0; i--) {
        assert_null(done_key(s, i));
        assert_int_equal(rp_sched_keys(s), (size_t)i);
    }
    rp_sched_destroy(s);
}

static void test_done_on_idle_key(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t a = {1, 0}, b = {1, 1};

    (void)state;
    assert_null(done_key(s, 7));
    assert_null(rp_sched_done(s, NULL, 0));
    assert_int_equal(rp_sched_keys(s), 0);
    assert_int_equal(rp_sched_queued(s), 0);
    assert_int_equal(push_job(s, &a), 1);
    assert_int_equal(push_job(s, &b), 0);
    /* A stray done for another key must not disturb key 1. */
    assert_null(done_key(s, 2));
    assert_int_equal(rp_sched_keys(s), 1);
    assert_int_equal(rp_sched_queued(s), 1);
    assert_ptr_equal(done_key(s, 1), &b);
    assert_null(done_key(s, 1));
    /* And a done after the key went idle is again harmless. */
    assert_null(done_key(s, 1));
    assert_int_equal(rp_sched_keys(s), 0);
    rp_sched_destroy(s);
}

static void test_binary_keys(void **state)
{
    rp_sched_t *s = rp_sched_new();
    /* Same prefix up to the NUL, different after it: must be distinct. */
    const char k1[] = {'a', '\0', 'b'};
    const char k2[] = {'a', '\0', 'c'};
    const char k3[] = {'a'};
    int x = 1, y = 2, z = 3, w = 4, r;

    (void)state;
    assert_int_equal(rp_sched_push(s, k1, sizeof(k1), &x, &r), RP_OK);
    assert_int_equal(r, 1);
    assert_int_equal(rp_sched_push(s, k2, sizeof(k2), &y, &r), RP_OK);
    assert_int_equal(r, 1);
    assert_int_equal(rp_sched_push(s, k3, sizeof(k3), &z, &r), RP_OK);
    assert_int_equal(r, 1);
    /* The empty key is a key too (Kafka allows null keys). */
    assert_int_equal(rp_sched_push(s, NULL, 0, &w, &r), RP_OK);
    assert_int_equal(r, 1);
    assert_int_equal(rp_sched_push(s, k1, sizeof(k1), &w, &r), RP_OK);
    assert_int_equal(r, 0);
    assert_int_equal(rp_sched_keys(s), 4);
    assert_int_equal(rp_sched_queued(s), 1);
    assert_null(rp_sched_done(s, k2, sizeof(k2)));
    assert_null(rp_sched_done(s, k3, sizeof(k3)));
    assert_null(rp_sched_done(s, "", 0));
    assert_ptr_equal(rp_sched_done(s, k1, sizeof(k1)), &w);
    assert_null(rp_sched_done(s, k1, sizeof(k1)));
    assert_int_equal(rp_sched_keys(s), 0);
    rp_sched_destroy(s);
}

static void test_key_too_large(void **state)
{
    rp_sched_t *s = rp_sched_new();
    char *big = calloc(1, RP_SCHED_KEY_MAX + 1);
    int x = 0, r = -1;

    (void)state;
    assert_non_null(big);
    assert_int_equal(rp_sched_push(s, big, RP_SCHED_KEY_MAX + 1, &x, &r),
                     RP_ERR_TOO_LARGE);
    assert_int_equal(r, 0);
    assert_int_equal(rp_sched_keys(s), 0);
    /* Exactly at the limit is fine. */
    assert_int_equal(rp_sched_push(s, big, RP_SCHED_KEY_MAX, &x, &r), RP_OK);
    assert_int_equal(r, 1);
    assert_null(rp_sched_done(s, big, RP_SCHED_KEY_MAX));
    free(big);
    rp_sched_destroy(s);
}

/* Many keys force the table through several grows and shrinks. */
static void test_many_keys(void **state)
{
    enum { NKEYS = 100000, PER = 3 };
    rp_sched_t *s = rp_sched_new();
    job_t *jobs = calloc((size_t)NKEYS * PER, sizeof(*jobs));

    (void)state;
    assert_non_null(jobs);
    for (int r = 0; r < PER; r++)
        for (int k = 0; k < NKEYS; k++) {
            job_t *j = &jobs[k * PER + r];

            j->key = k;
            j->seq = r;
            assert_int_equal(push_job(s, j), r == 0 ? 1 : 0);
        }
    assert_int_equal(rp_sched_keys(s), NKEYS);
    assert_int_equal(rp_sched_queued(s), (size_t)NKEYS * (PER - 1));
    for (int r = 1; r < PER; r++)
        for (int k = 0; k < NKEYS; k++) {
            job_t *n = done_key(s, k);

            assert_non_null(n);
            assert_int_equal(n->key, k);
            assert_int_equal(n->seq, r);
        }
    assert_int_equal(rp_sched_queued(s), 0);
    /* Finish half, then destroy with the rest still present: ASan would
     * report any entry or node left behind. */
    for (int k = 0; k < NKEYS / 2; k++)
        assert_null(done_key(s, k));
    assert_int_equal(rp_sched_keys(s), NKEYS / 2);
    rp_sched_destroy(s);
    free(jobs);
}

typedef struct drop_ctx {
    int partition_to_drop; /* jobs with key % 3 == this are dropped */
    job_t *order[64];      /* dropped jobs, in callback order */
    int n;
} drop_ctx_t;

static int match_key_mod3(void *job, void *opaque)
{
    const drop_ctx_t *c = opaque;

    return ((job_t *)job)->key % 3 == c->partition_to_drop;
}

static void record_dropped(void *job, void *opaque)
{
    drop_ctx_t *c = opaque;

    assert_true(c->n < 64);
    c->order[c->n++] = job;
}

static int match_odd_seq(void *job, void *opaque)
{
    (void)opaque;
    return ((job_t *)job)->seq % 2 == 1;
}

static void test_drop_queued(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t jobs[6][5];
    drop_ctx_t ctx = {.partition_to_drop = 1};

    (void)state;
    for (int k = 0; k < 6; k++)
        for (int q = 0; q < 5; q++) {
            jobs[k][q].key = k;
            jobs[k][q].seq = q;
            push_job(s, &jobs[k][q]);
        }
    assert_int_equal(rp_sched_queued(s), 24);
    /* Keys 1 and 4 lose their 4 queued jobs each; heads keep running. */
    assert_int_equal(rp_sched_drop_queued(s, match_key_mod3, record_dropped,
                                          &ctx), 8);
    assert_int_equal(ctx.n, 8);
    assert_int_equal(rp_sched_keys(s), 6);
    assert_int_equal(rp_sched_queued(s), 16);
    /* Per key, the callback saw the jobs in queue order. */
    for (int k = 1; k < 6; k += 3) {
        int last = 0;

        for (int i = 0; i < ctx.n; i++)
            if (ctx.order[i]->key == k) {
                assert_int_equal(ctx.order[i]->seq, last + 1);
                last = ctx.order[i]->seq;
            }
        assert_int_equal(last, 4);
    }
    /* Dropping keeps the running head: done reports the key idle. */
    assert_null(done_key(s, 1));
    assert_null(done_key(s, 4));
    assert_int_equal(rp_sched_keys(s), 4);

    /* Now drop odd seqs from the rest: 1 and 3 go, 0 runs, 2 and 4 stay
     * in order, and the tail is fixed so a new push lands after 4. */
    assert_int_equal(rp_sched_drop_queued(s, match_odd_seq, NULL, NULL), 8);
    assert_int_equal(rp_sched_queued(s), 8);
    job_t extra = {0, 99};
    assert_int_equal(push_job(s, &extra), 0);
    assert_ptr_equal(done_key(s, 0), &jobs[0][2]);
    assert_ptr_equal(done_key(s, 0), &jobs[0][4]);
    assert_ptr_equal(done_key(s, 0), &extra);
    assert_null(done_key(s, 0));
    for (int k = 2; k < 6; k++) {
        if (k % 3 == 1)
            continue;
        assert_ptr_equal(done_key(s, k), &jobs[k][2]);
        assert_ptr_equal(done_key(s, k), &jobs[k][4]);
        assert_null(done_key(s, k));
    }
    assert_int_equal(rp_sched_keys(s), 0);
    assert_int_equal(rp_sched_queued(s), 0);
    /* Nothing to drop in an empty scheduler. */
    assert_int_equal(rp_sched_drop_queued(s, match_odd_seq, NULL, NULL), 0);
    rp_sched_destroy(s);
}

static int match_all(void *job, void *opaque)
{
    (void)job;
    (void)opaque;
    return 1;
}

static void test_drop_tail_then_push(void **state)
{
    rp_sched_t *s = rp_sched_new();
    job_t a = {5, 0}, b = {5, 1}, c = {5, 2};

    (void)state;
    push_job(s, &a);
    push_job(s, &b);
    assert_int_equal(rp_sched_drop_queued(s, match_all, NULL, NULL), 1);
    /* The tail was b; a push must now follow a, not the freed b. */
    assert_int_equal(push_job(s, &c), 0);
    assert_ptr_equal(done_key(s, 5), &c);
    assert_null(done_key(s, 5));
    rp_sched_destroy(s);
}

/* ---- randomized comparison with a reference model ---- */

enum { MODEL_KEYS = 40, MODEL_CAP = 4096 };

/* Reference: per key, a plain array FIFO. */
typedef struct model {
    job_t *q[MODEL_KEYS][MODEL_CAP];
    int head[MODEL_KEYS], tail[MODEL_KEYS];
} model_t;

static uint64_t rng_state;

static uint32_t rng(void)
{
    /* xorshift64*: seeded, so failures reproduce. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static int model_drop_match(void *job, void *opaque)
{
    return ((job_t *)job)->seq % 5 == *(int *)opaque;
}

static void test_random_against_model(void **state)
{
    model_t *m = calloc(1, sizeof(*m));
    job_t *pool = calloc(200000, sizeof(*pool));
    rp_sched_t *s = rp_sched_new();
    int npool = 0;

    (void)state;
    assert_non_null(m);
    assert_non_null(pool);
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (int step = 0; step < 150000; step++) {
        int k = (int)(rng() % MODEL_KEYS);
        uint32_t op = rng() % 100;

        if (op < 55 && npool < 200000 &&
            m->tail[k] - m->head[k] < MODEL_CAP - 1) {
            job_t *j = &pool[npool];
            int expect = m->head[k] == m->tail[k];

            j->key = k;
            j->seq = npool++;
            assert_int_equal(push_job(s, j), expect);
            m->q[k][m->tail[k]++ % MODEL_CAP] = j;
        } else if (op < 99) {
            job_t *got = done_key(s, k);
            job_t *want = NULL;

            if (m->head[k] != m->tail[k]) {
                m->head[k]++;
                if (m->head[k] != m->tail[k])
                    want = m->q[k][m->head[k] % MODEL_CAP];
            }
            assert_ptr_equal(got, want);
        } else {
            /* Drop queued jobs whose seq % 5 == r, model likewise. */
            int r = (int)(rng() % 5);
            size_t want = 0;

            for (int kk = 0; kk < MODEL_KEYS; kk++) {
                int w, h = m->head[kk];

                if (h == m->tail[kk])
                    continue;
                w = h + 1;
                for (int i = h + 1; i < m->tail[kk]; i++) {
                    job_t *j = m->q[kk][i % MODEL_CAP];

                    if (j->seq % 5 == r)
                        want++;
                    else
                        m->q[kk][w++ % MODEL_CAP] = j;
                }
                m->tail[kk] = w;
            }
            assert_int_equal(rp_sched_drop_queued(s, model_drop_match, NULL,
                                                  &r), want);
        }
        if (step % 1000 == 0) {
            size_t keys = 0, queued = 0;

            for (int kk = 0; kk < MODEL_KEYS; kk++)
                if (m->tail[kk] != m->head[kk]) {
                    keys++;
                    queued += (size_t)(m->tail[kk] - m->head[kk] - 1);
                }
            assert_int_equal(rp_sched_keys(s), keys);
            assert_int_equal(rp_sched_queued(s), queued);
        }
    }
    rp_sched_destroy(s);
    free(pool);
    free(m);
}

static void test_destroy_null(void **state)
{
    (void)state;
    rp_sched_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved_keys_keep_fifo),
        cmocka_unit_test(test_second_job_waits_for_first),
        cmocka_unit_test(test_different_keys_run_concurrently),
        cmocka_unit_test(test_done_on_idle_key),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_key_too_large),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_drop_queued),
        cmocka_unit_test(test_drop_tail_then_push),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_destroy_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
