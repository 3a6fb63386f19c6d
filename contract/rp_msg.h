/* rp_msg — the wire contract in one include: requests, results and session state as JSON.
 *
 * The files schemas/NAME.schema.json are the normative definitions; this
 * module is the C side of them and validates the same rules, so a message
 * the worker accepts is a message the schema accepts and vice versa. Where
 * JSON Schema cannot say what we check (byte lengths, duplicate keys,
 * whole-document size limits) the C side is the stricter one.
 *
 * Three documents:
 *  - request       producer -> runpool.requests (Kafka key = session_id)
 *  - result        worker   -> runpool.results  (key = session_id), and the
 *                  executor's record executions/{id}/result.json, which is a
 *                  result plus the session `env` after the command (the
 *                  worker strips env before publishing: env may hold secrets
 *                  and belongs to the state, not the stream).
 *  - session state sessions/{session_id}/state.json, written by the worker
 *                  only.
 *
 * Memory: parse functions fill a caller-provided struct whose pointers are
 * owned by the struct; release with the matching *_clear(), which accepts a
 * zeroed or already-cleared struct. Serialisers return a malloc'd
 * NUL-terminated JSON string the caller frees.
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_MSG_H
#define RP_MSG_H

/* Each part has its own module; include just the one you need, or this. */
#include "rp_codes.h"
#include "rp_contract.h"
#include "rp_env.h"
#include "rp_ids.h"
#include "rp_request.h"
#include "rp_result.h"
#include "rp_session.h"
#include "rp_text.h"

#endif
