/* rp_state_file — the rp_state backend that keeps objects as files under
 * one local directory: file:///abs/dir[?fsync=0|1] (default fsync=1).
 *
 * Object `key` is the file dir/key; its version is the file's mtime in
 * nanoseconds, stamped on the temp file before it is linked or renamed into
 * place, so content and version always travel together. Conditional writes
 * serialise on flock() of the key's parent directory, which works across
 * threads and processes. docs/state-store.md has the full design.
 *
 * Use it only through rp_state.h; this header exists so rp_state.c can put
 * the ops table in its backend list. Thread-safety: every op may run from
 * several threads (and processes) at once.
 */
#ifndef RP_STATE_FILE_H
#define RP_STATE_FILE_H

#include "rp_state.h"

extern const rp_state_ops_t rp_state_file_ops;

#endif
