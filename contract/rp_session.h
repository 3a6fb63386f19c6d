/* rp_session — the session state document
 * (schemas/session-state.schema.json), written by the worker only.
 *
 * Memory: as rp_request. Thread-safety: no shared state; any thread.
 */
#ifndef RP_SESSION_H
#define RP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_env.h"
#include "rp_err.h"

/* The session's current workspace snapshot (docs/workspace.md). Only the
 * worker sets it, in the compare-and-swap that saves cwd and env. */
typedef struct rp_session_ws {
    char *manifest;       /* owned; the snapshot's key; NULL = the
                           * workspace is empty (no snapshot) */
    char execution_id[RP_ID_MAX + 1]; /* the execution that made it */
    uint64_t bytes;       /* file content bytes */
    uint64_t files;       /* entries */
    int64_t saved_at_ms;
    /* owned; NULL = unknown: the workspace directory's path in the
     * execution that recorded cwd, so a cwd inside it can be moved to the
     * next execution's directory (local scratch directories differ). */
    char *root;
} rp_session_ws_t;

typedef struct rp_session {
    char session_id[RP_ID_MAX + 1];
    char *cwd;             /* owned; NULL = not set yet */
    rp_env_t env;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int64_t execution_count;
    char last_execution_id[RP_ID_MAX + 1]; /* "" when none */
    rp_session_ws_t workspace; /* all zero/NULL = absent */
} rp_session_t;

/* Replace dst's workspace by a copy of src (NULL = clear). RP_ERR_NOMEM. */
rp_err_t rp_session_ws_copy(rp_session_ws_t *dst, const rp_session_ws_t *src);
void rp_session_ws_clear(rp_session_ws_t *ws);

/* Caller frees; NULL on allocation failure. s borrowed. */
char *rp_session_to_json(const rp_session_t *s);
rp_err_t rp_session_parse(const char *json, size_t len, rp_session_t *out,
                          char *errstr, size_t errstr_size);
void rp_session_clear(rp_session_t *s);

#endif
