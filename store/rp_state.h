/* rp_state — the object store that holds session state and execution
 * records between executions.
 *
 * Keys are relative paths of segments of [A-Za-z0-9._:-] separated by '/'
 * ("sessions/s1/state.json"); no empty, "." or ".." segments, at most
 * RP_STATE_KEY_MAX bytes. Values are opaque bytes up to RP_STATE_VALUE_MAX.
 *
 * Every object has a version (uint64, never 0 for a live object) that
 * changes on every write and is never reused for the same key, even after a
 * delete: this is Cloud Storage's `generation`, and the file backend gives
 * the same guarantee. Writes are conditional:
 *   if_version == RP_STATE_ANY   unconditional
 *   if_version == 0              create-only (fails RP_ERR_EXISTS if live)
 *   if_version == N              compare-and-swap (RP_ERR_CONFLICT if the
 *                                live version is not N, incl. absent)
 * A conflict is reported, never retried blindly: the caller decides.
 *
 * What runpool keeps where is the contract's (rp_layout.h).
 *
 * Backends are chosen by URL:
 *   file:///abs/dir[?fsync=0|1]   rp_state_file.c (this machine; default fsync=1)
 *   gs://bucket[/prefix]          Cloud Storage (rp_state_gs.c)
 *
 * Thread-safety: an rp_state_t may be used from several threads at once
 * (the worker's I/O threads share one); every operation blocks until done.
 */
#ifndef RP_STATE_H
#define RP_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_contract.h"
#include "rp_err.h"
#include "rp_gcp.h"

/* RP_STATE_KEY_MAX and RP_STATE_URL_MAX: rp_contract.h (the executor's
 * job environment carries both). */
#define RP_STATE_VALUE_MAX (64 * 1024 * 1024)
#define RP_STATE_ANY UINT64_MAX

typedef struct rp_state rp_state_t;

/* Writes a current access token (NUL-terminated, without "Bearer ") into
 * out. Called from any thread that runs a state operation, once per HTTP
 * attempt, so it must be thread-safe and should cache (rp_auth does).
 * A retriable error (RP_ERR_UNAVAILABLE, RP_ERR_TIMEOUT) is retried like
 * an HTTP failure; any other is returned to the caller as is. */
typedef rp_err_t rp_state_token_fn(char *out, size_t out_size, char *errstr,
                                   size_t errstr_size);

/* How to open a store; a zeroed struct (or NULL) is the default. */
typedef struct rp_state_opts {
    /* gs://: the Google context whose credentials requests carry
     * (borrowed; must outlive the store). NULL: no credentials (an
     * emulator), unless token is set. */
    rp_gcp_t *gcp;
    /* gs:// without gcp: where tokens come from instead (tests that serve
     * their own); NULL: none. */
    rp_state_token_fn *token;
} rp_state_opts_t;

/* Called once per key found by rp_state_list (key borrowed for the call).
 * Return non-zero to stop listing early. */
typedef int(rp_state_list_cb)(void *opaque, const char *key, uint64_t version);

/* Backend operations; each backend file defines one const instance and
 * rp_state.c lists it in its table. rp_state.c checks the arguments every
 * backend would otherwise repeat before calling in: keys are valid, data is
 * non-NULL when len > 0, len <= RP_STATE_VALUE_MAX, out/cb/prefix non-NULL,
 * prefix <= RP_STATE_KEY_MAX bytes.
 *   open   st->ops and st->url are set; opts is never NULL (borrowed for
 *          the call); sets st->impl on success. On failure
 *          it frees whatever it made itself: close is not called.
 *   close  frees st->impl; called once, only after a successful open.
 * Every entry may be called from several threads at once. */
typedef struct rp_state_ops {
    const char *scheme; /* "file", "gs" */
    rp_err_t (*open)(rp_state_t *st, const char *url,
                     const rp_state_opts_t *opts, char *errstr,
                     size_t errstr_size);
    rp_err_t (*get)(rp_state_t *st, const char *key, rp_buf_t *out,
                    uint64_t *version, char *errstr, size_t errstr_size);
    rp_err_t (*put)(rp_state_t *st, const char *key, const void *data,
                    size_t len, uint64_t if_version, uint64_t *new_version,
                    char *errstr, size_t errstr_size);
    rp_err_t (*del)(rp_state_t *st, const char *key, uint64_t if_version,
                    char *errstr, size_t errstr_size);
    rp_err_t (*list)(rp_state_t *st, const char *prefix, rp_state_list_cb *cb,
                     void *opaque, char *errstr, size_t errstr_size);
    void (*close)(rp_state_t *st);
} rp_state_ops_t;

struct rp_state {
    const rp_state_ops_t *ops;
    char url[RP_STATE_URL_MAX];
    void *impl; /* backend-private, owned by the backend */
};

/* Open the store named by url (borrowed). Caller frees *out with
 * rp_state_destroy(). RP_ERR_INVALID for a malformed or unsupported URL.
 * Any thread. */
rp_err_t rp_state_open(const char *url, rp_state_t **out, char *errstr,
                       size_t errstr_size);
/* rp_state_open with options (borrowed for the call; NULL = defaults). */
rp_err_t rp_state_open_opts(const char *url, const rp_state_opts_t *opts,
                            rp_state_t **out, char *errstr,
                            size_t errstr_size);

/* Read key into out (caller-initialised buffer, borrowed; it is reset
 * first, its max bounds the read, RP_ERR_TOO_LARGE past it; on success
 * out->data is non-NULL and NUL-terminated) and its version (may be NULL).
 * RP_ERR_NOT_FOUND when absent. Any thread. */
rp_err_t rp_state_get(rp_state_t *st, const char *key, rp_buf_t *out,
                      uint64_t *version, char *errstr, size_t errstr_size);

/* Write data (borrowed, copied) under key if if_version matches (see
 * above). new_version (may be NULL) receives the version written; it is
 * only set on RP_OK. Any thread. */
rp_err_t rp_state_put(rp_state_t *st, const char *key, const void *data,
                      size_t len, uint64_t if_version, uint64_t *new_version,
                      char *errstr, size_t errstr_size);

/* Delete key if if_version matches (RP_STATE_ANY: unconditional).
 * RP_ERR_NOT_FOUND when absent, whatever if_version. Any thread. */
rp_err_t rp_state_delete(rp_state_t *st, const char *key, uint64_t if_version,
                         char *errstr, size_t errstr_size);

/* Call cb for every key that starts with prefix (borrowed; "" = all keys),
 * in no particular order. Keys written or deleted while the listing runs
 * may or may not be reported. cb runs on the calling thread and may call
 * other rp_state functions. Any thread. */
rp_err_t rp_state_list(rp_state_t *st, const char *prefix,
                       rp_state_list_cb *cb, void *opaque, char *errstr,
                       size_t errstr_size);

/* Delete every key that starts with prefix (borrowed; must end in '/' and
 * not be "/" alone, so a typo cannot empty the store), unconditionally.
 * Keys are listed first, then deleted (a key written meanwhile may stay).
 * A key gone by the time it is deleted counts as deleted. *deleted (may
 * be NULL) gets how many were; at most RP_STATE_DELETE_PREFIX_MAX keys a
 * call (RP_ERR_TOO_LARGE past it, after deleting that many: call again).
 * Any thread. */
#define RP_STATE_DELETE_PREFIX_MAX 1000000
rp_err_t rp_state_delete_prefix(rp_state_t *st, const char *prefix,
                                size_t *deleted, char *errstr,
                                size_t errstr_size);

/* Close the store and free st (takes ownership). Accepts NULL. Call it
 * once no other thread is using st. */
void rp_state_destroy(rp_state_t *st);

/* true when key (may be NULL) follows the key rules above. Any thread. */
int rp_state_key_valid(const char *key);

#endif
