/* rp_wscache — keeps the local backend's chunk cache within a budget.
 *
 * Executors of the local backend restore snapshots through a directory of
 * chunk objects named by their hash (rp_ws_restore's cache_dir,
 * BASE/.chunks). They only ever add to it, so without this a long-lived
 * worker would fill its disk. rp_wscache_prune deletes the least recently
 * used chunks (oldest mtime first: rp_ws bumps a chunk's mtime when it is
 * read from the cache) until the directory holds at most max_bytes, and
 * the temp files of writes that died (".HEX.PID.N.tmp") once older than
 * RP_WSCACHE_TMP_MAX_AGE_S.
 *
 * Deleting is always safe: a cache miss costs a download from the state
 * store, never data (the store holds every chunk of a current snapshot).
 * A reader that has the file open still reads all of it after the unlink.
 */
#ifndef RP_WSCACHE_H
#define RP_WSCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "rp_err.h"

/* Entries one pass looks at, at most (bounds its memory: ~80 bytes
 * each). A larger cache is pruned among the first this many the
 * directory lists, which still frees space; the next pass sees others. */
#define RP_WSCACHE_SCAN_MAX 262144
/* Temp files of dead writers are removed after this long. */
#define RP_WSCACHE_TMP_MAX_AGE_S 3600

typedef struct rp_wscache_stats {
    uint64_t files, bytes;               /* chunks found */
    uint64_t removed_files, removed_bytes; /* chunks and temp files deleted */
    uint64_t kept_bytes;                 /* chunk bytes left */
} rp_wscache_stats_t;

/* One pass over dir (borrowed): see above. now: the wall clock
 * (time(NULL); a parameter for tests). A missing dir is RP_OK with
 * nothing found. RP_ERR_IO when dir cannot be read; a file that cannot
 * be deleted is skipped (counted as kept). stats may be NULL. Any thread;
 * blocking (a directory scan): not on the main loop. */
rp_err_t rp_wscache_prune(const char *dir, uint64_t max_bytes, time_t now,
                          rp_wscache_stats_t *stats, char *errstr,
                          size_t errstr_size);

#endif
