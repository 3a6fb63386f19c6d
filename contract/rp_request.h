/* rp_request — the request document (schemas/request.schema.json).
 *
 * Memory: rp_request_parse fills a caller-provided struct whose pointers
 * it owns; release with rp_request_clear, which accepts a zeroed or
 * cleared struct. Thread-safety: no shared state; any thread.
 */
#ifndef RP_REQUEST_H
#define RP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_env.h"
#include "rp_err.h"
#include "rp_fileop.h"

typedef enum rp_op {
    RP_OP_EXEC = 0,
    RP_OP_CLOSE_SESSION,
    /* The file ops (rp_fileop.h), in rp_fileop_kind_t's order: op ==
     * RP_OP_FILEOP_FIRST + kind. */
    RP_OP_FILEOP_FIRST,
    RP_OP_FILEOP_LAST = RP_OP_FILEOP_FIRST + RP_FILEOP__COUNT - 1,
} rp_op_t;

static inline bool rp_op_is_fileop(rp_op_t op)
{
    return op >= RP_OP_FILEOP_FIRST && op <= RP_OP_FILEOP_LAST;
}

/* What may happen when the run that started the command vanished before
 * it finished (rp_claim.h): by default nothing, the result is an
 * "interrupted" error; "if-interrupted" starts it again, at most
 * RP_CLAIM_ATTEMPTS_MAX starts in all. */
typedef enum rp_retry {
    RP_RETRY_NEVER = 0,
    RP_RETRY_IF_INTERRUPTED,
} rp_retry_t;

typedef struct rp_request {
    char execution_id[RP_ID_MAX + 1]; /* "" when unreadable */
    char session_id[RP_ID_MAX + 1];   /* "" when unreadable */
    rp_op_t op;
    char *command;       /* owned; NULL for close_session */
    int timeout_s;       /* RP_TIMEOUT_DEFAULT_S when absent */
    rp_env_t env;        /* per-command variables; empty when absent */
    bool has_submitted_at;
    int64_t submitted_at_ms; /* wall ms since epoch, when has_submitted_at */
    rp_retry_t retry;        /* "retry"; RP_RETRY_NEVER when absent */
    rp_fileop_t fop;         /* a file op's members (rp_op_is_fileop) */
} rp_request_t;

/* Parse and validate one request message (json borrowed, len bytes, need
 * not be NUL-terminated).
 * On any validation failure returns RP_ERR_INVALID or RP_ERR_TOO_LARGE
 * (message, command or env over its byte limit) with a precise message
 * naming the field ("timeout_s: must be an integer from 1 to 86400"), and STILL
 * fills execution_id / session_id when those two fields were themselves
 * valid, so the caller can address a "rejected" result to the requester.
 * Unknown fields are rejected (additionalProperties: false), `v` must be 1.
 * A leading UTF-8 byte-order mark is refused (RP_ERR_INVALID, the message
 * names it), after the ids behind it were read.
 * Always call rp_request_clear() afterwards, on success or failure. */
rp_err_t rp_request_parse(const char *json, size_t len, rp_request_t *out,
                          char *errstr, size_t errstr_size);

/* Serialise (producer side). Includes "v":1; omits defaults it may omit:
 * op when "exec", timeout_s when <= 0 (so a zeroed struct means the
 * default), env when empty, submitted_at unless has_submitted_at, retry
 * when "never".
 * Caller frees; NULL on allocation failure. req borrowed. */
char *rp_request_to_json(const rp_request_t *req);

void rp_request_clear(rp_request_t *req);

#endif
