/* rp_layout — where runpool keeps its objects in the state store.
 *
 *   sessions/{session_id}/state.json         written by the worker only
 *   executions/{execution_id}/result.json    the executor's record, create-only
 *   executions/{execution_id}/request.json   a command too large for the env
 *   executions/{execution_id}/attempt-{n}.json            Cloud Run: the n-th
 *   executions/{execution_id}/attempt-{n}.execution.json  jobs.run and the
 *                                            execution it made (create-only;
 *                                            attempt.json of older versions
 *                                            is read as claim 0)
 *   executions/{execution_id}/claim.json     the run that started the command,
 *                                            create-only (rp_claim.h)
 *   workspaces/{session_id}/chunks/{sha256hex}   one workspace chunk (zstd),
 *                                            create-only (docs/workspace.md)
 *   workspaces/{session_id}/snapshots/{execution_id}.json.zst
 *                                            a workspace manifest, create-only
 *   workspaces/{session_id}/                 all of the above for one session:
 *                                            close_session deletes the folder
 *   transfers/...                            upload/download objects of file
 *                                            ops, named by the requester
 *
 * The layout is part of the contract (schemas/README.md): the worker and
 * the executor, and any tool that reads the bucket, agree on it. Keys obey
 * the store's key rules (rp_state.h); a key that cannot be built is "",
 * which every store operation rejects, so a bad id can never address some
 * other object.
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_LAYOUT_H
#define RP_LAYOUT_H

#include <stddef.h>

#include "rp_contract.h"

/* "sessions/{session_id}/state.json" into out (out_size >= RP_STATE_KEY_MAX + 1
 * always fits a valid id). When the id is not a valid key segment (see
 * rp_id_valid: "." and ".." are not) or the key does not fit, out is "". */
void rp_layout_session_key(const char *session_id, char *out, size_t out_size);
/* "executions/{execution_id}/result.json" into out; same rules. */
void rp_layout_result_key(const char *execution_id, char *out,
                          size_t out_size);
/* "executions/{execution_id}/{file}" into out (attempt.json, request.json:
 * the other records of one execution); same rules. */
void rp_layout_execution_key(const char *execution_id, const char *file,
                             char *out, size_t out_size);

/* "workspaces/{session_id}/" into out: the prefix of everything a
 * session's workspace stores (closing a session deletes it); same rules. */
void rp_layout_ws_prefix(const char *session_id, char *out, size_t out_size);
/* "workspaces/{session_id}/chunks/{hash}" into out; hash must be 64
 * lowercase hex digits (a sha256), else out is "" as for a bad id. */
void rp_layout_ws_chunk_key(const char *session_id, const char *hash,
                            char *out, size_t out_size);
/* "workspaces/{session_id}/snapshots/{execution_id}.json.zst" into out;
 * same rules for both ids. */
void rp_layout_ws_manifest_key(const char *session_id,
                               const char *execution_id, char *out,
                               size_t out_size);

#endif
