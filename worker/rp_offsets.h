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
 *
 * Finished offsets above the committable one are not lost with a crash:
 * rp_offsets_encode writes them into the commit's metadata string (a
 * run-length list, at most RP_OFFSETS_META_MAX bytes), and the next owner
 * hands that string to rp_offsets_restore, after which
 * rp_offsets_carried() says which re-delivered records are already done
 * (their results were published) so they are not published again. This is
 * what Confluent's Parallel Consumer does, with the same kind of bound.
 *
 * Exactly-once mode adds a middle state: an offset whose result is queued
 * in the open Kafka transaction is "staged". Commits made inside that
 * transaction count staged offsets as done (rp_offsets_encode's
 * committable offset and ranges); if the transaction aborts they go back to
 * unfinished (rp_offsets_unstage); once it commits they are done.
 * Cost: O(1) amortised track, O(log window) done, O(1) committable.
 *
 * Thread-safety: none; the worker's main thread owns it.
 */
#ifndef RP_OFFSETS_H
#define RP_OFFSETS_H

#include <stdbool.h>
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

/* Exactly-once: the offset's result is queued in the open transaction.
 * RP_ERR_NOT_FOUND when it is not tracked as unfinished. */
rp_err_t rp_offsets_stage(rp_offsets_t *t, int32_t partition, int64_t offset);

/* The transaction aborted: a staged offset is unfinished again.
 * RP_ERR_NOT_FOUND when it is not tracked as staged. */
rp_err_t rp_offsets_unstage(rp_offsets_t *t, int32_t partition,
                            int64_t offset);

/* Metadata of a commit: "rp1:" and a list of finished ranges above the
 * committed offset. 4,000 bytes stays under Kafka's default
 * offset.metadata.max.bytes (4,096). */
#define RP_OFFSETS_META_MAX 4000
#define RP_OFFSETS_META_PREFIX "rp1:"

/* What to commit for partition: *offset = the lowest offset neither done
 * nor (staged true) staged, and buf (cap bytes, NUL-terminated) = the
 * metadata naming every finished (and, with staged, staged) offset above
 * it, including ranges restored by rp_offsets_restore and not consumed
 * yet. Returns the metadata's length; *truncated is set when ranges did
 * not fit in cap (the ones left out would be re-delivered and published
 * again). *offset = -1 when nothing is known about the partition. */
size_t rp_offsets_encode(const rp_offsets_t *t, int32_t partition,
                         bool staged, int64_t *offset, char *buf, size_t cap,
                         bool *truncated);

/* After an assignment (and before any rp_offsets_track of the partition):
 * take the committed offset and its metadata (borrowed, meta_len bytes,
 * not NUL-terminated) so rp_offsets_carried knows which records above it
 * are done. RP_ERR_INVALID when the metadata is not ours or is malformed
 * (nothing is carried then: those records are published again),
 * RP_ERR_NOMEM. Empty metadata is RP_OK with nothing carried. */
rp_err_t rp_offsets_restore(rp_offsets_t *t, int32_t partition,
                            int64_t committed, const char *meta,
                            size_t meta_len);

/* Was this re-delivered offset finished by an earlier owner (restored
 * metadata)? Call with increasing offsets, as they are consumed: ranges
 * below offset are forgotten. */
bool rp_offsets_carried(rp_offsets_t *t, int32_t partition, int64_t offset);

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
