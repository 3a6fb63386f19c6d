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

typedef struct rp_session {
    char session_id[RP_ID_MAX + 1];
    char *cwd;             /* owned; NULL = not set yet */
    rp_env_t env;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int64_t execution_count;
    char last_execution_id[RP_ID_MAX + 1]; /* "" when none */
} rp_session_t;

/* Caller frees; NULL on allocation failure. s borrowed. */
char *rp_session_to_json(const rp_session_t *s);
rp_err_t rp_session_parse(const char *json, size_t len, rp_session_t *out,
                          char *errstr, size_t errstr_size);
void rp_session_clear(rp_session_t *s);

#endif
