/* rp_scache — see rp_scache.h. A chained hash table (power-of-two
 * buckets, FNV-1a as in rp_sched) plus an LRU list, most recent first. */
#include "rp_scache.h"

#include <stdlib.h>
#include <string.h>

#include "rp_hash.h"
#include "rp_list.h"

#define RP_SCACHE_BUCKETS_MIN 64

typedef struct rp_scache_entry {
    struct rp_scache_entry *chain; /* next in its bucket */
    rp_list_t lru;
    uint64_t hash;
    int32_t partition;
    uint64_t epoch;
    uint64_t version;
    char *doc;
    size_t len;
    char key[]; /* NUL-terminated */
} rp_scache_entry_t;

struct rp_scache {
    rp_scache_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    rp_list_t lru;   /* most recently used first */
    size_t max_entries, max_bytes;
    rp_scache_stats_t st;
};

static uint64_t rp_scache_hash(const char *key)
{
    return rp_hash_fnv1a64_str(RP_HASH_FNV1A64_INIT, key);
}

rp_err_t rp_scache_new(size_t max_entries, size_t max_bytes,
                       rp_scache_t **out)
{
    rp_scache_t *c;

    *out = NULL;
    if (!max_entries || !max_bytes)
        return RP_ERR_INVALID;
    if (!(c = calloc(1, sizeof(*c))))
        return RP_ERR_NOMEM;
    if (!(c->buckets = calloc(RP_SCACHE_BUCKETS_MIN, sizeof(*c->buckets)))) {
        free(c);
        return RP_ERR_NOMEM;
    }
    c->nbuckets = RP_SCACHE_BUCKETS_MIN;
    rp_list_init(&c->lru);
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    *out = c;
    return RP_OK;
}

static rp_scache_entry_t **rp_scache_slot(rp_scache_t *c, const char *key,
                                          uint64_t hash)
{
    rp_scache_entry_t **pp = &c->buckets[hash & (c->nbuckets - 1)];

    while (*pp && ((*pp)->hash != hash || strcmp((*pp)->key, key)))
        pp = &(*pp)->chain;
    return pp;
}

/* Unlink the entry *pp points at and free it. */
static void rp_scache_remove(rp_scache_t *c, rp_scache_entry_t **pp)
{
    rp_scache_entry_t *e = *pp;

    *pp = e->chain;
    rp_list_unlink(&e->lru);
    c->st.entries--;
    c->st.bytes -= e->len;
    free(e->doc);
    free(e);
}

/* Double the table; on no memory keep it (slower, never wrong). */
static void rp_scache_grow(rp_scache_t *c)
{
    size_t n = c->nbuckets * 2;
    rp_scache_entry_t **b = calloc(n, sizeof(*b));

    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        rp_scache_entry_t *e = c->buckets[i], *next;

        for (; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

void rp_scache_destroy(rp_scache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nbuckets; i++)
        while (c->buckets[i])
            rp_scache_remove(c, &c->buckets[i]);
    free(c->buckets);
    free(c);
}

bool rp_scache_get(rp_scache_t *c, const char *key, int32_t partition,
                   uint64_t epoch, const char **doc, size_t *len,
                   uint64_t *version)
{
    rp_scache_entry_t **pp = rp_scache_slot(c, key, rp_scache_hash(key));
    rp_scache_entry_t *e = *pp;

    if (!e) {
        c->st.misses++;
        return false;
    }
    if (e->partition != partition || e->epoch != epoch) {
        /* Saved under an earlier assignment: someone else may have
         * written since. */
        c->st.stale++;
        c->st.misses++;
        rp_scache_remove(c, pp);
        return false;
    }
    c->st.hits++;
    rp_list_unlink(&e->lru);
    rp_list_push_head(&c->lru, &e->lru);
    *doc = e->doc;
    *len = e->len;
    *version = e->version;
    return true;
}

void rp_scache_drop(rp_scache_t *c, const char *key)
{
    rp_scache_entry_t **pp = rp_scache_slot(c, key, rp_scache_hash(key));

    if (*pp)
        rp_scache_remove(c, pp);
}

/* Make room for one more entry of len bytes: drop the least recent. */
static void rp_scache_evict(rp_scache_t *c, size_t len)
{
    while (!rp_list_empty(&c->lru) &&
           (c->st.entries >= c->max_entries ||
            c->st.bytes + len > c->max_bytes)) {
        rp_scache_entry_t *e =
            RP_LIST_ENTRY(rp_list_last(&c->lru), rp_scache_entry_t, lru);

        rp_scache_remove(c, rp_scache_slot(c, e->key, e->hash));
    }
}

rp_err_t rp_scache_put(rp_scache_t *c, const char *key, int32_t partition,
                       uint64_t epoch, const char *doc, size_t len,
                       uint64_t version)
{
    uint64_t hash = rp_scache_hash(key);
    size_t klen = strlen(key);
    rp_scache_entry_t *e;

    rp_scache_drop(c, key);
    if (len > c->max_bytes / 8)
        return RP_OK;
    rp_scache_evict(c, len);
    if (!(e = calloc(1, sizeof(*e) + klen + 1)))
        return RP_ERR_NOMEM;
    if (!(e->doc = malloc(len ? len : 1))) {
        free(e);
        return RP_ERR_NOMEM;
    }
    memcpy(e->doc, doc, len);
    e->len = len;
    memcpy(e->key, key, klen + 1);
    e->hash = hash;
    e->partition = partition;
    e->epoch = epoch;
    e->version = version;
    if (c->st.entries >= c->nbuckets)
        rp_scache_grow(c);
    e->chain = c->buckets[hash & (c->nbuckets - 1)];
    c->buckets[hash & (c->nbuckets - 1)] = e;
    rp_list_push_head(&c->lru, &e->lru);
    c->st.entries++;
    c->st.bytes += len;
    return RP_OK;
}

void rp_scache_get_stats(const rp_scache_t *c, rp_scache_stats_t *out)
{
    *out = c->st;
}
