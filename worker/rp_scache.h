/* rp_scache — the worker's memory of each session's last saved state.
 *
 * A session's second and later commands would each read
 * sessions/{id}/state.json back although this worker wrote it last
 * (one Cloud Storage call per execution on gs://). The cache keeps, per
 * session, the whole document as saved and its version, so the next
 * command of the session starts from it without a read. It is generic:
 * bytes + version, parsed by whoever uses it (the session document may
 * grow members, e.g. a workspace, without touching this module).
 *
 * Correctness does not rest on it: the save that follows is a
 * compare-and-swap on the cached version, so a stale entry loses (the
 * caller drops the entry and follows its conflict rules). An entry also
 * belongs to one assignment of one partition (partition, epoch): only
 * while this worker owns the partition without a break is it the
 * session's only writer, so a lookup with another epoch misses (and drops
 * the entry). docs/worker.md ("Session state cache") says when the worker
 * fills, uses and drops entries.
 *
 * Bounded: at most max_entries entries and max_bytes document bytes in
 * all; the least recently used go first. A document over max_bytes / 8
 * is not kept.
 *
 * Main thread only (not thread-safe).
 */
#ifndef RP_SCACHE_H
#define RP_SCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

/* Defaults the worker uses: a few thousand active sessions fit. */
#define RP_SCACHE_ENTRIES_MAX 65536
#define RP_SCACHE_BYTES_MAX ((size_t)256 * 1024 * 1024)

typedef struct rp_scache rp_scache_t;

typedef struct rp_scache_stats {
    uint64_t hits, misses, stale; /* stale: a lookup of another epoch */
    size_t entries, bytes;
} rp_scache_stats_t;

/* A cache with these bounds (>= 1 each). Caller frees with
 * rp_scache_destroy. RP_ERR_NOMEM / RP_ERR_INVALID. */
rp_err_t rp_scache_new(size_t max_entries, size_t max_bytes,
                       rp_scache_t **out);
/* Accepts NULL. */
void rp_scache_destroy(rp_scache_t *c);

/* The entry of key (NUL-terminated, borrowed) saved under (partition,
 * epoch): *doc / *len borrowed until the next call on c, *version its
 * version. false: none (an entry of another assignment is dropped). */
bool rp_scache_get(rp_scache_t *c, const char *key, int32_t partition,
                   uint64_t epoch, const char **doc, size_t *len,
                   uint64_t *version);

/* Remember doc (len bytes, copied) as key's state at version, replacing
 * what was there. RP_ERR_NOMEM leaves key without an entry (a later
 * lookup misses: slower, never wrong). A document too large for the
 * bound is not kept either (RP_OK). */
rp_err_t rp_scache_put(rp_scache_t *c, const char *key, int32_t partition,
                       uint64_t epoch, const char *doc, size_t len,
                       uint64_t version);

/* Forget key (no entry: nothing happens). */
void rp_scache_drop(rp_scache_t *c, const char *key);

void rp_scache_get_stats(const rp_scache_t *c, rp_scache_stats_t *out);

#endif
