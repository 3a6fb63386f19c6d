/* rp_exec_ws — the executor's half of a session's workspace
 * (docs/workspace.md): before the command, restore the session's current
 * snapshot into the workspace directory; after it, snapshot the directory
 * under a new name and report what happened in the record. The executor
 * never makes a snapshot current: the worker does, in the compare-and-swap
 * that saves cwd and env, so a run that dies before its record leaves
 * nothing visible.
 *
 * RUNPOOL_WORKSPACE (rp_jobenv.h) picks the mode:
 *   absent / "off"  no workspace (the session's files are whatever the
 *                   machine keeps; nothing is saved)
 *   "/DIR"          snapshot: DIR is restored and saved around the command
 *   "mount:/PATH"   a shared volume: the session works in PATH/{session_id}
 *                   (created 0700), no snapshot, no report
 *
 * cwd: the session's cwd is absolute. When the session state says which
 * workspace directory it was recorded under (workspace.root) and that is
 * not this execution's directory (the local backend's scratch directories
 * differ per execution), a cwd inside the old root is moved to the same
 * place under the new one (rp_exec_ws_cwd).
 *
 * Thread-safety: one execution per process; main thread only.
 */
#ifndef RP_EXEC_WS_H
#define RP_EXEC_WS_H

#include <stddef.h>

#include "rp_err.h"
#include "rp_jobenv.h"
#include "rp_result.h"
#include "rp_runas.h"
#include "rp_session.h"
#include "rp_state.h"

typedef struct rp_exec_ws rp_exec_ws_t;

/* Set up the workspace of this execution (spec, session, run_as, st
 * borrowed for the handle's life). *out is NULL when there is none (off).
 * Snapshot mode restores the session's current snapshot into the
 * directory (created when missing; made run_as's own when set). An error
 * (the store, a corrupt manifest, the disk) means the command must not
 * run: it would start without the session's files and its save would
 * lose them. Caller frees with rp_exec_ws_destroy, also after an error. */
rp_err_t rp_exec_ws_begin(rp_state_t *st, const rp_jobspec_t *spec,
                          const rp_session_t *session, const rp_runas_t *run_as,
                          rp_exec_ws_t **out, char *errstr, size_t errstr_size);

/* The workspace directory (a new session starts there), or NULL. */
const char *rp_exec_ws_dir(const rp_exec_ws_t *ws);

/* The cwd to start the command in for a session whose state says cwd:
 * moved under this execution's directory when it lay inside the old root.
 * Returns cwd itself when nothing changes, else a string owned by ws. */
const char *rp_exec_ws_cwd(rp_exec_ws_t *ws, const rp_session_t *session,
                           const char *cwd);

/* After the command: snapshot the directory (snapshot mode) and fill
 * res->ws (the limits, a failure: saved = false with a code and message;
 * the command's output is untouched). Never fails the execution. */
void rp_exec_ws_end(rp_exec_ws_t *ws, rp_result_t *res);

/* Free; a scratch directory (RUNPOOL_WORKSPACE_SCRATCH=1) is removed.
 * Accepts NULL. */
void rp_exec_ws_destroy(rp_exec_ws_t *ws);

#endif
