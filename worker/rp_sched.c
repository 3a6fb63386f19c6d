#include "rp_sched.h"

#include "rp_hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Layout: an open hash table with separate chaining. Each entry is one key
 * with work; its jobs form a singly linked FIFO whose head is the running
 * job. Entries exist only while their key has a job, so the table holds
 * O(keys with work) entries. */

#define RP_SCHED_BUCKETS_MIN 64

typedef struct rp_sched_job {
    void *job; /* borrowed from the caller */
    struct rp_sched_job *next;
} rp_sched_job_t;

typedef struct rp_sched_entry {
    struct rp_sched_entry *chain; /* next entry in the same bucket */
    uint64_t hash;
    rp_sched_job_t *head; /* the running job; never NULL while linked */
    rp_sched_job_t *tail;
    size_t keylen;
    char key[]; /* keylen bytes, not NUL-terminated: keys are binary */
} rp_sched_entry_t;

struct rp_sched {
    rp_sched_entry_t **buckets;
    size_t nbuckets; /* a power of two, so hash & (nbuckets - 1) picks one */
    size_t nkeys;
    size_t nqueued;
};

/* FNV-1a: simple, fast for the short ids we see, and spreads similar
 * keys ("s-1", "s-2" ...) well. */
static uint64_t rp_sched_hash(const char *key, size_t keylen)
{
    return rp_hash_fnv1a64(RP_HASH_FNV1A64_INIT, key, keylen);
}

rp_sched_t *rp_sched_new(void)
{
    rp_sched_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->buckets = calloc(RP_SCHED_BUCKETS_MIN, sizeof(*s->buckets));
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    s->nbuckets = RP_SCHED_BUCKETS_MIN;
    return s;
}

/* Move every entry into a table of nbuckets buckets. On allocation failure
 * the old table stays: a crowded table is slower, never wrong. */
static void rp_sched_rehash(rp_sched_t *s, size_t nbuckets)
{
    rp_sched_entry_t **nb = calloc(nbuckets, sizeof(*nb));

    if (!nb)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        rp_sched_entry_t *e = s->buckets[i], *next;

        for (; e; e = next) {
            size_t b = (size_t)(e->hash & (nbuckets - 1));

            next = e->chain;
            e->chain = nb[b];
            nb[b] = e;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = nbuckets;
}

/* Returns the link that points at key's entry (or at the NULL ending its
 * bucket), so callers can both find and unlink without a second walk. */
static rp_sched_entry_t **rp_sched_slot(const rp_sched_t *s, const char *key,
                                        size_t keylen, uint64_t hash)
{
    rp_sched_entry_t **pp = &s->buckets[hash & (s->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->chain) {
        rp_sched_entry_t *e = *pp;

        if (e->hash == hash && e->keylen == keylen &&
            (keylen == 0 || memcmp(e->key, key, keylen) == 0))
            break;
    }
    return pp;
}

rp_err_t rp_sched_push(rp_sched_t *s, const char *key, size_t keylen,
                       void *job, int *runnable)
{
    uint64_t hash;
    rp_sched_entry_t **pp, *e;
    rp_sched_job_t *j;

    *runnable = 0;
    if (keylen > RP_SCHED_KEY_MAX)
        return RP_ERR_TOO_LARGE;
    if (keylen > 0 && !key)
        return RP_ERR_INVALID;
    hash = rp_sched_hash(key, keylen);
    if (!(j = malloc(sizeof(*j))))
        return RP_ERR_NOMEM;
    j->job = job;
    j->next = NULL;

    pp = rp_sched_slot(s, key, keylen, hash);
    if ((e = *pp) != NULL) {
        /* Key is busy: wait behind its running job. */
        e->tail->next = j;
        e->tail = j;
        s->nqueued++;
        return RP_OK;
    }

    if (!(e = malloc(sizeof(*e) + keylen))) {
        free(j);
        return RP_ERR_NOMEM;
    }
    e->chain = NULL;
    e->hash = hash;
    e->head = e->tail = j;
    e->keylen = keylen;
    if (keylen)
        memcpy(e->key, key, keylen);
    *pp = e;
    s->nkeys++;
    *runnable = 1;
    /* Grow at load 0.75 to keep chains short. */
    if (s->nkeys > s->nbuckets / 4 * 3 && s->nbuckets <= SIZE_MAX / 2)
        rp_sched_rehash(s, s->nbuckets * 2);
    return RP_OK;
}

void *rp_sched_done(rp_sched_t *s, const char *key, size_t keylen)
{
    uint64_t hash;
    rp_sched_entry_t **pp, *e;
    rp_sched_job_t *j;

    if (keylen > RP_SCHED_KEY_MAX || (keylen > 0 && !key))
        return NULL;
    hash = rp_sched_hash(key, keylen);
    pp = rp_sched_slot(s, key, keylen, hash);
    if (!(e = *pp))
        return NULL; /* idle key: a caller bug, but harmless */

    j = e->head;
    e->head = j->next;
    free(j);
    if (e->head) {
        s->nqueued--;
        return e->head->job;
    }

    /* Last job done: forget the key so idle sessions cost nothing. */
    *pp = e->chain;
    free(e);
    s->nkeys--;
    /* Shrink at load 1/8 (well below the 3/4 that grows it, so a table
     * hovering around one size does not rehash back and forth). */
    if (s->nbuckets > RP_SCHED_BUCKETS_MIN && s->nkeys < s->nbuckets / 8)
        rp_sched_rehash(s, s->nbuckets / 2);
    return NULL;
}

size_t rp_sched_drop_queued(rp_sched_t *s, int (*match)(void *job, void *opaque),
                            void (*dropped)(void *job, void *opaque),
                            void *opaque)
{
    size_t n = 0;

    for (size_t i = 0; i < s->nbuckets; i++) {
        for (rp_sched_entry_t *e = s->buckets[i]; e; e = e->chain) {
            /* Start after the head: the running job always stays, so no
             * entry is freed here and the walk stays valid. */
            rp_sched_job_t *prev = e->head, *j;

            while ((j = prev->next) != NULL) {
                if (!match(j->job, opaque)) {
                    prev = j;
                    continue;
                }
                prev->next = j->next;
                if (e->tail == j)
                    e->tail = prev;
                s->nqueued--;
                n++;
                /* Unlinked before the callback, which may free the job. */
                if (dropped)
                    dropped(j->job, opaque);
                free(j);
            }
        }
    }
    return n;
}

size_t rp_sched_keys(const rp_sched_t *s)
{
    return s->nkeys;
}

size_t rp_sched_queued(const rp_sched_t *s)
{
    return s->nqueued;
}

void rp_sched_destroy(rp_sched_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        rp_sched_entry_t *e = s->buckets[i], *enext;

        for (; e; e = enext) {
            rp_sched_job_t *j = e->head, *jnext;

            enext = e->chain;
            for (; j; j = jnext) {
                jnext = j->next;
                free(j);
            }
            free(e);
        }
    }
    free(s->buckets);
    free(s);
}
