/* rp_ws — workspace snapshots: a session's files in the state store.
 *
 * A snapshot is a pax tar stream of the workspace directory (libarchive),
 * cut into content-defined chunks (rp_cdc.h, FastCDC), each chunk stored
 * once under its sha256 and zstd-compressed, plus a manifest that lists
 * the chunks in stream order and every entry with the offset of its data
 * in the stream. docs/workspace.md is the design note (format, keys,
 * limits, what restore guarantees, GC rules, costs).
 *
 *   workspaces/{session_id}/chunks/{sha256hex}                  create-only
 *   workspaces/{session_id}/snapshots/{execution_id}.json.zst   create-only
 *
 * Whoever makes a snapshot (the executor after a command, the worker after
 * a file op) writes it under a new name; only the worker makes it current,
 * in the compare-and-swap of the session state, and then calls rp_ws_gc on
 * the superseded one.
 *
 * Memory: save, restore and edit stream; they hold a bounded number of
 * chunks (the chunker's 2 * RP_CDC_MAX, 16 upload or fetch slots of one
 * chunk each) and the entry list, never a whole file or workspace. They
 * start up to 8 threads of their own for uploads and fetches (joined
 * before they return). Everything read from outside is bounded by the
 * RP_WS_* maxima below.
 *
 * Thread-safety: no shared state; any thread may call any function, and
 * several threads may work on different snapshots at once (a manifest is
 * immutable after parse and may be read from several threads). rp_ws_save
 * and rp_ws_restore read or write the file system below dir only.
 */
#ifndef RP_WS_H
#define RP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_err.h"
#include "rp_state.h"

#define RP_WS_FORMAT "runpool.workspace/1"
/* A manifest, uncompressed (and so the JSON parser's input). */
#define RP_WS_MANIFEST_MAX (32 * 1024 * 1024)
/* Entries, chunks and skipped files one manifest may list. The parser
 * (cJSON) costs ~100 bytes per JSON value: these bound it (with
 * RP_WS_JSON_VALUES_MAX) to a few hundred MiB for a hostile manifest; a
 * manifest at the default limits needs ~1M values. */
#define RP_WS_ENTRIES_MAX 250000
#define RP_WS_CHUNKS_MAX (256 * 1024) /* >= 16 GiB of stream */
#define RP_WS_SKIPPED_MAX 1000 /* listed; the rest only counted */
#define RP_WS_JSON_VALUES_MAX                                               \
    (9 * RP_WS_ENTRIES_MAX + 3 * RP_WS_CHUNKS_MAX + 3 * RP_WS_SKIPPED_MAX + 64)
/* A relative path in the workspace, and one of its segments. */
#define RP_WS_PATH_MAX 4096
#define RP_WS_NAME_MAX 255
/* A symlink's target. */
#define RP_WS_LINK_MAX 4096
/* Defaults of the limits (RUNPOOL_WORKSPACE_MAX_BYTES / _MAX_FILES); max
 * files is at most RP_WS_ENTRIES_MAX. */
#define RP_WS_MAX_BYTES_DEFAULT (1024ULL * 1024 * 1024)
#define RP_WS_MAX_FILES_DEFAULT 100000ULL
/* zstd level of chunks and manifests. */
#define RP_WS_ZSTD_LEVEL 3

typedef struct rp_ws_manifest rp_ws_manifest_t; /* parsed manifest, immutable */

typedef struct rp_ws_entry {
    const char *path; /* relative, normalised, no leading "./" */
    char type;        /* 'f' file, 'd' directory, 'l' symlink */
    uint32_t mode;    /* permission bits (07777) */
    uint64_t size;    /* file: content bytes; 0 otherwise */
    int64_t mtime_ms; /* modification time, ms since the epoch */
    int64_t mtime_ns; /* the same time in ns (manifest "mt" * 1e6 + "mn") */
    uint64_t offset;  /* file: where its data starts in the stream */
    const char *link; /* symlink: the target, verbatim; NULL otherwise */
} rp_ws_entry_t;

/* A limit of 0 means the default. */
typedef struct rp_ws_limits {
    uint64_t max_bytes; /* total file content bytes */
    uint64_t max_files; /* entries (files, directories, symlinks) */
} rp_ws_limits_t;

/* Which limit a save or edit hit (rp_ws_stats.limit). */
typedef enum rp_ws_limit {
    RP_WS_LIMIT_NONE = 0,
    RP_WS_LIMIT_BYTES,  /* result code RP_WS_TOO_LARGE */
    RP_WS_LIMIT_FILES,  /* result code RP_WS_TOO_MANY_FILES */
} rp_ws_limit_t;

/* bytes/files: the workspace's file bytes and entries; stream_bytes and
 * chunks: the tar stream's; *_uploaded: chunks written (compressed bytes;
 * bytes_uploaded also counts the manifest); *_downloaded: chunk objects
 * fetched from the store (compressed bytes; cache hits not counted). */
typedef struct rp_ws_stats {
    uint64_t bytes, files, stream_bytes, chunks, chunks_uploaded,
        bytes_uploaded, chunks_downloaded, bytes_downloaded;
    int unchanged;  /* save: nothing changed, nothing written */
    size_t skipped; /* special or unreadable files left out (all of them) */
    rp_ws_limit_t limit; /* RP_ERR_TOO_LARGE from save/edit: which one */
    int64_t elapsed_us;
} rp_ws_stats_t;

/* Limits from RUNPOOL_WORKSPACE_MAX_BYTES and RUNPOOL_WORKSPACE_MAX_FILES
 * (decimal; unset or empty = default). RP_ERR_INVALID names a bad value.
 * Reads the environment: call before starting threads that setenv. */
rp_err_t rp_ws_limits_from_env(rp_ws_limits_t *out, char *errstr,
                               size_t errstr_size);

/* Fetch and parse the manifest at key (borrowed). Caller frees *out. */
rp_err_t rp_ws_manifest_load(rp_state_t *st, const char *key,
                             rp_ws_manifest_t **out, char *errstr,
                             size_t errstr_size);
/* Parse a manifest object's bytes (zstd frame of the JSON; borrowed).
 * Everything is checked: sizes under the maxima, entries sorted and
 * unique, paths normalised, every entry's parent a directory entry,
 * offsets inside the stream, chunk lengths summing to stream_bytes.
 * RP_ERR_INVALID (or RP_ERR_TOO_LARGE) with a message otherwise.
 * Caller frees *out. */
rp_err_t rp_ws_manifest_parse(const void *zst, size_t len,
                              rp_ws_manifest_t **out, char *errstr,
                              size_t errstr_size);
/* Accepts NULL. */
void rp_ws_manifest_destroy(rp_ws_manifest_t *m);
/* Entries, in byte-wise sorted path order. */
size_t rp_ws_manifest_count(const rp_ws_manifest_t *m);
const rp_ws_entry_t *rp_ws_manifest_entry(const rp_ws_manifest_t *m,
                                          size_t i);
/* The entry with this normalised path, or NULL (binary search). */
const rp_ws_entry_t *rp_ws_manifest_find(const rp_ws_manifest_t *m,
                                         const char *path);
/* Its key in the store (from its session and execution ids); borrowed. */
const char *rp_ws_manifest_key(const rp_ws_manifest_t *m);
/* Totals as the manifest states them. */
uint64_t rp_ws_manifest_bytes(const rp_ws_manifest_t *m);
uint64_t rp_ws_manifest_stream_bytes(const rp_ws_manifest_t *m);
size_t rp_ws_manifest_chunks(const rp_ws_manifest_t *m);
const char *rp_ws_manifest_session_id(const rp_ws_manifest_t *m);
const char *rp_ws_manifest_execution_id(const rp_ws_manifest_t *m);
int64_t rp_ws_manifest_created_at_ms(const rp_ws_manifest_t *m);
/* Skipped files: count listed, and the i-th (path and why borrowed). */
size_t rp_ws_manifest_skipped_count(const rp_ws_manifest_t *m);
void rp_ws_manifest_skipped(const rp_ws_manifest_t *m, size_t i,
                            const char **path, const char **why);

/* Restore m into dir (must exist, should be empty; a symlink to a
 * directory is resolved first). Files, directories, modes, mtimes and
 * symlinks come back as saved; owners are not set. Extraction is
 * libarchive's secure one: no entry is written through a symlink, none
 * outside dir. Every chunk is checked against its hash and length; a bad
 * one is RP_ERR_PROTOCOL naming it. cache_dir (may be NULL): a local
 * directory of chunk objects by hash; chunks found there (and intact) are
 * not downloaded, downloaded ones are added. stats may be NULL. */
rp_err_t rp_ws_restore(rp_state_t *st, const rp_ws_manifest_t *m,
                       const char *dir, const char *cache_dir,
                       rp_ws_stats_t *stats, char *errstr,
                       size_t errstr_size);

/* Snapshot dir. prev (may be NULL): the session's current manifest, for
 * the unchanged fast path and so that its chunks are not uploaded again.
 * lim NULL = defaults. On RP_OK either *out is the new manifest (caller
 * frees; chunks and the manifest are written, the manifest create-only at
 * rp_layout_ws_manifest_key(session_id, execution_id)), or *out == NULL
 * and stats->unchanged = 1: nothing changed since prev, nothing written.
 * Over a limit: RP_ERR_TOO_LARGE, stats->limit says which, errstr names
 * it, nothing uploaded. Sockets, fifos, devices and unreadable files are
 * skipped and listed in the manifest's "skipped". cache_dir (may be NULL)
 * receives the chunks uploaded. stats may be NULL. */
rp_err_t rp_ws_save(rp_state_t *st, const char *session_id,
                    const char *execution_id, const char *dir,
                    const rp_ws_manifest_t *prev, const rp_ws_limits_t *lim,
                    const char *cache_dir, rp_ws_manifest_t **out,
                    rp_ws_stats_t *stats, char *errstr, size_t errstr_size);

/* Read up to len bytes at off of file e (an entry of m) into out (reset
 * first; out->max caps it: RP_ERR_TOO_LARGE past it, nothing kept). Reads
 * past the end stop at it. Fetches only the chunks that cover the bytes.
 * RP_ERR_INVALID when e is not a file. stats (may be NULL) counts the
 * downloads. */
rp_err_t rp_ws_read(rp_state_t *st, const rp_ws_manifest_t *m,
                    const rp_ws_entry_t *e, uint64_t off, uint64_t len,
                    rp_buf_t *out, rp_ws_stats_t *stats, char *errstr,
                    size_t errstr_size);

/* Edits for file ops done without a container. */
typedef enum rp_ws_edit_kind {
    RP_WS_PUT,    /* write a file: data/len, mode (0 = 0644) */
    RP_WS_DELETE, /* remove a file, symlink, or directory and all below */
    RP_WS_MKDIR,  /* make a directory, mode (0 = 0755) */
} rp_ws_edit_kind_t;

typedef struct rp_ws_edit {
    rp_ws_edit_kind_t kind;
    const char *path;  /* checked with rp_ws_path_check; not the root */
    const void *data;  /* PUT: borrowed */
    size_t len;
    uint32_t mode;
    int parents;       /* PUT/MKDIR: make missing parents (0755);
                        * MKDIR: an existing directory is fine */
} rp_ws_edit_t;

/* A new snapshot = m (NULL = empty workspace) with edits (borrowed, n of
 * them) applied in order, at rp_layout_ws_manifest_key(session_id,
 * execution_id). Rewrites the stream: reads m's chunks one at a time,
 * re-chunks, uploads only chunks m does not have. Errors, nothing
 * written: RP_ERR_NOT_FOUND (delete of a missing path, a missing parent
 * without parents), RP_ERR_EXISTS (mkdir of an existing path without
 * parents), RP_ERR_INVALID (a bad path, a PUT over a directory or
 * symlink, a parent that is not a directory), RP_ERR_TOO_LARGE (limits,
 * as rp_ws_save). Caller frees *out. stats may be NULL. */
rp_err_t rp_ws_edit(rp_state_t *st, const rp_ws_manifest_t *m,
                    const rp_ws_edit_t *edits, size_t n,
                    const char *session_id, const char *execution_id,
                    const rp_ws_limits_t *lim, rp_ws_manifest_t **out,
                    rp_ws_stats_t *stats, char *errstr, size_t errstr_size);

/* Delete old's chunks that cur (NULL = none) does not use, then old's
 * manifest. Objects already gone are fine. Called by the worker after
 * the compare-and-swap made cur current, and finished before the
 * session's next execution starts (a save that found a chunk present
 * must not see it deleted afterwards; docs/workspace.md). old == cur (the
 * same key) does nothing. */
rp_err_t rp_ws_gc(rp_state_t *st, const rp_ws_manifest_t *old,
                  const rp_ws_manifest_t *cur, char *errstr,
                  size_t errstr_size);

/* Asked before every delete of rp_ws_gc_until (arg borrowed): true = stop
 * now. Called on the gc's thread. */
typedef bool rp_ws_stop_fn(void *arg);

/* rp_ws_gc that asks stop (may be NULL) before each delete and, when it
 * says so, returns RP_ERR_CANCELLED with the rest left in place (garbage,
 * never a broken session). The worker stops when the job's partition was
 * revoked: the next owner may already be saving a snapshot that counts a
 * chunk of old as stored. */
rp_err_t rp_ws_gc_until(rp_state_t *st, const rp_ws_manifest_t *old,
                        const rp_ws_manifest_t *cur, rp_ws_stop_fn *stop,
                        void *arg, char *errstr, size_t errstr_size);

/* Path rules for ops: path must be relative to the workspace root, valid
 * UTF-8, at most RP_WS_PATH_MAX bytes with segments of at most
 * RP_WS_NAME_MAX; no "..", no leading '/'. Empty and repeated '/' and
 * "." segments are dropped: "a//b/./c/" -> "a/b/c". An empty path is
 * refused; "." (the root) gives norm "" (callers that need a file check
 * norm[0]). norm_size >= RP_WS_PATH_MAX + 1 always fits. */
rp_err_t rp_ws_path_check(const char *path, char *norm, size_t norm_size,
                          char *errstr, size_t errstr_size);
/* The same for len bytes that may hold a NUL (refused). */
rp_err_t rp_ws_path_check_len(const char *path, size_t len, char *norm,
                              size_t norm_size, char *errstr,
                              size_t errstr_size);

#endif
