/* rp_jobws — the worker's half of a session's workspace (docs/workspace.md):
 * the executor's record says which snapshot it left; the worker makes it
 * current in the compare-and-swap that saves cwd and env (rp_cycle_finish
 * calls rp_jobws_apply on the session before it serialises it), then
 * deletes the superseded snapshot (rp_jobws_gc, best effort, logged).
 * When the snapshot was not saved, or the state could not be saved, the
 * session keeps the workspace it had.
 *
 * Thread-safety: I/O pool threads, one job at a time (as rp_cycle).
 */
#include "rp_worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_log.h"
#include "rp_ws.h"

rp_err_t rp_jobws_apply(rp_job_t *job, rp_session_t *s, int64_t now_ms,
                        char **superseded)
{
    const rp_result_ws_t *r = &job->result.ws;
    rp_session_ws_t *ws = &s->workspace;
    char *root = NULL;

    *superseded = NULL;
    if (!r->present)
        return RP_OK; /* no snapshot workspace: nothing to say about it */
    /* cwd was recorded under this execution's workspace directory. */
    if (r->root && !(root = strdup(r->root)))
        return RP_ERR_NOMEM;
    free(ws->root);
    ws->root = root;
    if (!r->saved || r->unchanged)
        return RP_OK; /* the session keeps the snapshot it had */
    if (ws->manifest && (!r->manifest || strcmp(ws->manifest, r->manifest)))
        *superseded = ws->manifest; /* the caller frees it */
    else
        free(ws->manifest);
    ws->manifest = NULL;
    memset(ws->execution_id, 0, sizeof(ws->execution_id));
    ws->bytes = ws->files = 0;
    ws->saved_at_ms = 0;
    if (!r->manifest)
        return RP_OK; /* saved empty: no snapshot at all */
    if (!(ws->manifest = strdup(r->manifest)))
        return RP_ERR_NOMEM;
    memcpy(ws->execution_id, job->req.execution_id, sizeof(ws->execution_id));
    ws->bytes = r->bytes;
    ws->files = r->files;
    ws->saved_at_ms = now_ms;
    return RP_OK;
}

void rp_jobws_not_applied(rp_job_t *job, const char *why)
{
    rp_result_ws_t *r = &job->result.ws;
    char *code, *msg;

    if (!r->present || !r->saved)
        return;
    /* The new manifest is kept, not deleted (docs/workspace.md, garbage
     * collection rule 3): a save whose reply was lost may have made it
     * current after all, and a redelivery that reuses this record applies
     * it. It and its chunks go when the session is closed. */
    if (asprintf(&msg, "the workspace was saved but not made the session's: "
                       "%s", why) < 0)
        msg = NULL;
    code = strdup(RP_RESULT_WS_ERROR);
    if (!code || !msg) {
        free(code);
        free(msg);
        return;
    }
    r->saved = r->unchanged = false;
    free(r->manifest);
    r->manifest = NULL;
    free(r->code);
    free(r->message);
    r->code = code;
    r->message = msg;
}

bool rp_jobws_revoked(void *job)
{
    return atomic_load(&((rp_job_t *)job)->io_revoked);
}

void rp_jobws_gc(rp_worker_t *w, rp_job_t *job, const char *old_key,
                 const char *cur_key)
{
    rp_ws_manifest_t *old = NULL, *cur = NULL;
    char es[512];
    rp_err_t err;

    if (!old_key || (cur_key && !strcmp(old_key, cur_key)))
        return;
    if ((err = rp_ws_manifest_load(w->state, old_key, &old, es, sizeof(es)))) {
        if (err != RP_ERR_NOT_FOUND)
            rp_log(RP_LOG_WARN, "workspace_gc_failed", rp_job_eid(job),
                   rp_job_sid(job), "loading %s: %s", old_key, es);
        goto out;
    }
    if (cur_key &&
        (err = rp_ws_manifest_load(w->state, cur_key, &cur, es, sizeof(es)))) {
        /* Without the current one, no chunk of the old may go. */
        rp_log(RP_LOG_WARN, "workspace_gc_failed", rp_job_eid(job),
               rp_job_sid(job), "loading %s: %s", cur_key, es);
        goto out;
    }
    if ((err = rp_ws_gc_until(w->state, old, cur, rp_jobws_revoked, job, es,
                              sizeof(es))))
        rp_log(RP_LOG_WARN, "workspace_gc_failed", rp_job_eid(job),
               rp_job_sid(job), "deleting %s: %s", old_key, es);
    else
        rp_log(RP_LOG_DEBUG, "workspace_gc", rp_job_eid(job), rp_job_sid(job),
               "deleted %s (superseded by %s)", old_key,
               cur_key ? cur_key : "an empty workspace");
out:
    rp_ws_manifest_destroy(old);
    rp_ws_manifest_destroy(cur);
}
