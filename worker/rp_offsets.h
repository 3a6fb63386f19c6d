/* rp_offsets — per-partition tracking of which offsets are finished, to
 * commit only up to the lowest unfinished one.
 *
 * Records are processed out of order (different sessions finish at
 * different times), but a Kafka commit says "everything below N is done".
 * So each partition keeps the window of offsets taken but not yet
 * committable; the committable offset is the lowest unfinished offset (or
 * one past the highest tracked when all are done). A crash re-delivers only
 * unfinished work and the finished records above it, which the worker
 * recognises by execution_id and does not run again.
 *
 * Offsets must be tracked in increasing order per partition (as Kafka
 * delivers them); gaps (compaction, control records) are fine.
 * Cost: O(1) amortised track, O(log window) done, O(1) committable.
 *
 * Thread-safety: none; the worker's main thread owns it.
 */
#ifndef RP_OFFSETS_H
#define RP_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

/* Partitions are indexed directly; Kafka topics rarely exceed this. */
#define RP_OFFSETS_PARTITIONS_MAX 100000

typedef struct rp_offsets rp_offsets_t;

/* Caller frees with rp_offsets_destroy(). NULL on allocation failure. */
rp_offsets_t *rp_offsets_new(void);

/* Start tracking offset as unfinished. RP_ERR_INVALID when offset is
 * negative or not above the partition's last tracked one (since the last
 * reset), or partition is out of range; RP_ERR_NOMEM. */
rp_err_t rp_offsets_track(rp_offsets_t *t, int32_t partition, int64_t offset);

/* Mark a tracked offset finished. RP_ERR_NOT_FOUND when it is not tracked
 * (e.g. the partition was reset since: a late completion) or was already
 * marked finished. */
rp_err_t rp_offsets_done(rp_offsets_t *t, int32_t partition, int64_t offset);

/* The offset to commit for partition (lowest unfinished, or highest tracked
 * + 1 when all are done), or -1 when nothing was tracked since the last
 * reset. */
int64_t rp_offsets_committable(const rp_offsets_t *t, int32_t partition);

/* Tracked offsets of the partition not yet finished. */
size_t rp_offsets_pending(const rp_offsets_t *t, int32_t partition);

/* The partition's window: tracked offsets from the lowest unfinished one
 * to the newest, finished ones among them included (0 when all are done).
 * What a crash would re-deliver, and what the tracker holds in memory. */
size_t rp_offsets_window(const rp_offsets_t *t, int32_t partition);

/* Forget everything about the partition (assignment change). */
void rp_offsets_reset(rp_offsets_t *t, int32_t partition);

/* Bytes the tracker holds in memory now (all partitions), for metrics and
 * for tests that check memory follows the window, not the offsets seen.
 * Accepts NULL (0). */
size_t rp_offsets_memory(const rp_offsets_t *t);

/* Accepts NULL. */
void rp_offsets_destroy(rp_offsets_t *t);

#endif
