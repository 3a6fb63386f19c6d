/* rp_cycle — the blocking half of a job's state cycle, on I/O pool
 * threads: LOADING (session state, and an earlier record of the same
 * execution) and FINISHING (the executor's record, the new session state
 * saved with compare-and-swap). Each step touches only its job and the
 * thread-safe store, then posts the job back to the main thread's inbox.
 * docs/worker.md explains the reuse and conflict rules; rp_cycle_claim
 * is the worker's half of the claim fence (contract/rp_claim.h).
 */
#include "rp_worker_int.h"

#include <stdlib.h>
#include <string.h>

#include "rp_claim.h"
#include "rp_fileops.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_time.h"

/* Attach, wait and restart rounds of one job; past it the execution ends
 * "interrupted" (a claim that keeps changing hands is not worth chasing). */
#define RP_CYCLE_CLAIM_ROUNDS_MAX 8

/* Read the execution's claim into the job. RP_ERR_NOT_FOUND: none;
 * RP_OK: claim_found and its fields set; else an error result is set. */
static rp_err_t rp_cycle_read_claim(rp_worker_t *w, rp_job_t *job,
                                    uint64_t *version)
{
    char key[RP_STATE_KEY_MAX], es[512];
    rp_claim_t c;
    rp_buf_t buf;
    rp_err_t err;

    rp_buf_init(&buf, RP_CLAIM_DOC_MAX);
    rp_claim_key(job->req.execution_id, key, sizeof(key));
    err = rp_state_get(w->state, key, &buf, version, es, sizeof(es));
    job->claim_found = false;
    if (err == RP_OK &&
        (err = rp_claim_parse(buf.data, buf.len, &c, es, sizeof(es))) != RP_OK) {
        /* Unreadable: someone claimed it, so it must not start again. */
        rp_job_set_error(job, RP_CODE_RESULT_CORRUPT, "claim %s: %s", key, es);
    } else if (err == RP_OK) {
        job->claim_found = true;
        memcpy(job->claim_run, c.run, sizeof(job->claim_run));
        job->claim_attempt = c.attempt;
    } else if (err != RP_ERR_NOT_FOUND) {
        rp_job_set_error(job, RP_CODE_STATE_LOAD_FAILED, "loading %s: %s", key,
                         es);
    }
    rp_buf_free(&buf);
    return err;
}

/* The run the job watched ended and left no record. Decide from the
 * claim (rp_claim.h, step 4). false: there is no claim, the caller goes
 * on as before the fence (no_result and friends). true: decided — the
 * job has an error result, or one of claim_attach / claim_wait /
 * claim_restart set for the main thread (rp_job_on_finished). */
static bool rp_cycle_claim(rp_worker_t *w, rp_job_t *job)
{
    char key[RP_STATE_KEY_MAX], es[512];
    uint64_t version = 0;
    bool ours, other;
    rp_err_t err;

    err = rp_cycle_read_claim(w, job, &version);
    if (err == RP_ERR_NOT_FOUND && job->done.err == RP_OK &&
        job->done.exit_code == RP_EXEC_EXIT_CLAIMED) {
        /* Our executor saw a claim that is gone now (a retry removed it
         * and the next attempt has not claimed yet): look again. */
        job->claim_wait = true;
        return true;
    }
    if (err == RP_ERR_NOT_FOUND)
        return false;
    if (err != RP_OK)
        return true; /* error result set */
    /* Waiting does not count; every attach and restart does. */
    if (job->claim_rounds >= RP_CYCLE_CLAIM_ROUNDS_MAX) {
        rp_job_set_error(job, RP_CODE_INTERRUPTED,
                         "the execution's claim (now %s) changed hands %d "
                         "times without a record; not run again",
                         job->claim_run, RP_CYCLE_CLAIM_ROUNDS_MAX);
        return true;
    }
    /* Ours: the claim names the very run we watched. Another's: it names
     * some other run, known because we can name ours or because our
     * executor said so. Neither (a backend that cannot name its runs):
     * wait for the record. */
    ours = job->run_id[0] && !strcmp(job->claim_run, job->run_id);
    other = !ours && (job->run_id[0] ||
                      (job->done.err == RP_OK &&
                       job->done.exit_code == RP_EXEC_EXIT_CLAIMED));
    if (other) {
        job->claim_rounds++;
        job->claim_attach = true;
        return true;
    }
    if (!ours) {
        job->claim_wait = true;
        return true;
    }
    /* The run started the command and vanished before its record. */
    if (job->req.retry == RP_RETRY_IF_INTERRUPTED &&
        job->claim_attempt < RP_CLAIM_ATTEMPTS_MAX) {
        rp_claim_key(job->req.execution_id, key, sizeof(key));
        err = rp_state_delete(w->state, key, version, es, sizeof(es));
        if (err == RP_OK) {
            rp_log(RP_LOG_WARN, "execution_interrupted", rp_job_eid(job),
                   rp_job_sid(job), "run %s ended without a record; "
                   "starting attempt %d of %d (retry: if-interrupted)",
                   job->claim_run, job->claim_attempt + 1,
                   RP_CLAIM_ATTEMPTS_MAX);
            job->attempt = job->claim_attempt + 1;
            job->claim_rounds++;
            job->claim_restart = true;
            return true;
        }
        if (err == RP_ERR_CONFLICT || err == RP_ERR_NOT_FOUND) {
            job->claim_wait = true; /* someone else moved first: look again */
            return true;
        }
        rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED,
                         "deleting the claim %s for a retry: %s", key, es);
        return true;
    }
    rp_log(RP_LOG_WARN, "execution_interrupted", rp_job_eid(job),
           rp_job_sid(job), "run %s ended without a record (attempt %d)",
           job->claim_run, job->claim_attempt);
    rp_job_set_error(job, RP_CODE_INTERRUPTED,
                     "the run %s that claimed the execution (attempt %d) "
                     "ended without a record: the command was started and "
                     "did not finish; not run again%s",
                     job->claim_run, job->claim_attempt,
                     job->req.retry == RP_RETRY_IF_INTERRUPTED
                         ? " (retry: if-interrupted, but no attempts are left)"
                         : " (the request does not say \"retry\": "
                           "\"if-interrupted\")");
    return true;
}

void rp_cycle_load(void *arg)
{
    rp_job_t *job = arg;
    rp_worker_t *w = job->w;
    char key[RP_STATE_KEY_MAX], es[512];
    rp_buf_t buf;
    rp_err_t err = RP_OK;
    int64_t t0 = rp_time_mono_ms();

    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    /* From the session cache (rp_job_begin): no read of our own write. */
    if (job->cached && job->cached_doc) {
        /* The cached copy stands for the read (version set). */
        err = rp_buf_append(&buf, job->cached_doc, job->cached_len);
        free(job->cached_doc);
        job->cached_doc = NULL;
        if (err) {
            rp_job_set_error(job, RP_CODE_STATE_LOAD_FAILED,
                             "loading %s: out of memory", key);
            goto out;
        }
    } else if (!job->cached) {
        err = rp_state_get(w->state, key, &buf, &job->session_version, es,
                           sizeof(es));
    }
    if (job->cached && job->session_found) {
        /* parsed already (rp_job_from_cache) */
    } else if (err == RP_OK) {
        job->session_found = true;
        if (rp_session_parse(buf.data, buf.len, &job->session, es,
                             sizeof(es)) != RP_OK) {
            rp_job_set_error(job, RP_CODE_STATE_CORRUPT,
                             "session state %s is unreadable: %s", key, es);
            goto out;
        }
    } else if (err != RP_ERR_NOT_FOUND) {
        rp_job_set_error(job, RP_CODE_STATE_LOAD_FAILED, "loading %s: %s", key, es);
        goto out;
    }
    if (job->req.op != RP_OP_EXEC && !rp_fileops_records(&job->req))
        goto out; /* read-only file ops and close_session record nothing */
    /* A finished execution is never run again: reuse its record. */
    rp_buf_reset(&buf);
    buf.max = RP_RESULT_MAX;
    rp_layout_result_key(job->req.execution_id, key, sizeof(key));
    err = rp_state_get(w->state, key, &buf, NULL, es, sizeof(es));
    if (err == RP_OK) {
        if (rp_result_parse(buf.data, buf.len, &job->result, es, sizeof(es)) !=
            RP_OK) {
            rp_job_set_error(job, RP_CODE_RESULT_CORRUPT,
                             "existing record %s is unreadable: %s", key, es);
            goto out;
        }
        if (strcmp(job->result.session_id, job->req.session_id) != 0) {
            /* Never hand one session's output or env to another. */
            rp_job_set_error(job, RP_CODE_EXECUTION_ID_CONFLICT,
                             "execution_id %s already ran in another session",
                             job->req.execution_id);
            rp_result_clear(&job->result);
            memset(&job->result, 0, sizeof(job->result));
            goto out;
        }
        job->have_result = true;
        job->reused = true;
    } else if (err != RP_ERR_NOT_FOUND) {
        rp_job_set_error(job, RP_CODE_STATE_LOAD_FAILED, "loading %s: %s", key, es);
    } else if (job->req.op == RP_OP_EXEC) {
        /* No record: a claim means the command was started by some run,
         * which the job watches (or waits for) instead of starting it. */
        rp_cycle_read_claim(w, job, NULL);
    }
out:
    job->state_load_ms = rp_time_mono_ms() - t0;
    rp_buf_free(&buf);
    rp_inbox_post(w->inbox, &job->item, RP_EV_LOADED);
}

/* Should the record's cwd/env become the session's state? */
static bool rp_cycle_should_apply(const rp_job_t *job)
{
    if (!job->result.has_env)
        return false; /* the executor failed before running anything */
    if (!job->session_found)
        return true;
    if (!strcmp(job->session.last_execution_id, job->req.execution_id))
        return false; /* already applied before a crash or rebalance */
    /* A reused record older than the state: the session moved on since
     * (a request re-sent with an old execution_id); never roll it back. */
    if (job->reused && job->result.finished_at_ms &&
        job->result.finished_at_ms < job->session.updated_at_ms)
        return false;
    return true;
}

/* After a lost compare-and-swap: did the writer that won save this same
 * execution (an earlier owner of the partition, finishing as it was
 * revoked)? Then the state is right and there is no conflict. */
bool rp_cycle_saved_by_other(rp_state_t *st, const char *key,
                             const char *execution_id)
{
    rp_session_t now;
    rp_buf_t buf;
    char es[256];
    bool same = false;

    memset(&now, 0, sizeof(now));
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    if (rp_state_get(st, key, &buf, NULL, es, sizeof(es)) == RP_OK &&
        rp_session_parse(buf.data, buf.len, &now, es, sizeof(es)) == RP_OK)
        same = !strcmp(now.last_execution_id, execution_id);
    rp_session_clear(&now);
    rp_buf_free(&buf);
    return same;
}

/* A job that skipped LOADING (the session cache) saves on the version the
 * executor read (its record's state_version), not on the cached one: if
 * they differ, someone else wrote or deleted the state between our last
 * save and the command (runpool-sessions close, say). Re-read it: still
 * the version the command started from -> it is the base. Otherwise it
 * changed while the command ran, and the compare-and-swap reports that.
 * false (with the job's error set) when the state cannot be read. */
static bool rp_cycle_rebase(rp_worker_t *w, rp_job_t *job, const char *key)
{
    rp_session_t now;
    rp_buf_t buf;
    uint64_t version = 0;
    char es[256];
    rp_err_t err;
    bool ok = true;

    memset(&now, 0, sizeof(now));
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    err = rp_state_get(w->state, key, &buf, &version, es, sizeof(es));
    if (err == RP_ERR_NOT_FOUND) {
        version = 0;
    } else if (err) {
        rp_job_set_error(job, RP_CODE_STATE_LOAD_FAILED, "loading %s: %s", key,
                         es);
        ok = false;
        goto out;
    } else if (rp_session_parse(buf.data, buf.len, &now, es, sizeof(es))) {
        rp_job_set_error(job, RP_CODE_STATE_CORRUPT,
                         "session state %s is unreadable: %s", key, es);
        ok = false;
        goto out;
    }
    job->scache_drop = true;
    if (version != job->result.state_version)
        goto out; /* changed while the command ran: the CAS says so */
    rp_session_clear(&job->session);
    job->session = now;
    memset(&now, 0, sizeof(now));
    job->session_found = version != 0;
    job->session_version = version;
out:
    rp_session_clear(&now);
    rp_buf_free(&buf);
    return ok;
}

void rp_cycle_finish(void *arg)
{
    rp_job_t *job = arg;
    rp_worker_t *w = job->w;
    rp_session_t *s = &job->session;
    char key[RP_STATE_KEY_MAX], es[512], *doc = NULL, *superseded = NULL;
    rp_buf_t buf;
    rp_err_t err;
    int64_t t0 = rp_time_mono_ms(), now;

    rp_buf_init(&buf, RP_RESULT_MAX);
    if (job->req.op == RP_OP_CLOSE_SESSION) {
        rp_layout_session_key(job->req.session_id, key, sizeof(key));
        err = rp_state_delete(w->state, key, RP_STATE_ANY, es, sizeof(es));
        if (err && err != RP_ERR_NOT_FOUND) {
            rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED, "deleting %s: %s", key,
                             es);
            goto out;
        }
        /* Then its workspace: the state went first, so nothing names these
         * objects any more; a failure here leaves them for a close_session
         * sent again (it deletes the folder whether or not the state is
         * still there). */
        rp_layout_ws_prefix(job->req.session_id, key, sizeof(key));
        err = rp_state_delete_prefix(w->state, key, NULL, es, sizeof(es));
        if (err)
            rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED,
                             "the session state is deleted, but deleting its "
                             "workspace %s failed (send close_session again): "
                             "%s", key, es);
        goto out;
    }
    if (!job->have_result) {
        rp_layout_result_key(job->req.execution_id, key, sizeof(key));
        err = rp_state_get(w->state, key, &buf, NULL, es, sizeof(es));
        if (err == RP_ERR_NOT_FOUND && job->done.err == RP_ERR_TIMEOUT) {
            job->backend_timed_out = true;
            goto out;
        } else if (err == RP_ERR_NOT_FOUND && !job->backstop_fired &&
                   rp_cycle_claim(w, job)) {
            goto out;
        } else if (err == RP_ERR_NOT_FOUND) {
            rp_job_set_error(job,
                             job->backstop_fired ? RP_CODE_EXECUTOR_UNRESPONSIVE
                             : job->done.err     ? RP_CODE_BACKEND_FAILED
                                                 : RP_CODE_NO_RESULT,
                             "the executor wrote no result (%s)",
                             job->done.detail);
            goto out;
        } else if (err) {
            rp_job_set_error(job, RP_CODE_RESULT_READ_FAILED, "reading %s: %s", key,
                             es);
            goto out;
        }
        if (rp_result_parse(buf.data, buf.len, &job->result, es, sizeof(es))) {
            rp_job_set_error(job, RP_CODE_RESULT_CORRUPT, "record %s: %s", key, es);
            goto out;
        }
        job->have_result = true;
    }
    if (job->fresh && strcmp(job->result.session_id, job->req.session_id)) {
        /* Fresh (no look at load): an old record of another session;
         * never hand its output or env over. */
        rp_job_set_error(job, RP_CODE_EXECUTION_ID_CONFLICT,
                         "execution_id %s already ran in another session",
                         job->req.execution_id);
        rp_result_clear(&job->result);
        memset(&job->result, 0, sizeof(job->result));
        job->have_result = false;
        goto out;
    }
    if (job->fresh && job->session_found && job->result.finished_at_ms &&
        job->result.finished_at_ms < job->session.updated_at_ms) {
        /* Fresh: a record that ended before the session's last save is
         * an earlier run's (a request re-sent with an old execution_id
         * that no claim of ours answered): reused, as a look at load
         * would have found it. */
        job->reused = true;
    }
    if (!rp_cycle_should_apply(job))
        goto out;
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    if (job->cached && job->result.has_state_version &&
        job->result.state_version !=
            (job->session_found ? job->session_version : 0) &&
        !rp_cycle_rebase(w, job, key))
        goto out;

    now = rp_time_wall_ms();
    if (!job->session_found) {
        memcpy(s->session_id, job->req.session_id, sizeof(s->session_id));
        s->created_at_ms = now;
    }
    free(s->cwd);
    s->cwd = job->result.cwd ? strdup(job->result.cwd) : NULL;
    rp_env_clear(&s->env);
    if (rp_env_copy(&s->env, &job->result.env) != RP_OK ||
        (job->result.cwd && !s->cwd)) {
        rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED, "out of memory");
        goto out;
    }
    if (rp_jobws_apply(job, s, now, &superseded) != RP_OK) {
        rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED, "out of memory");
        goto out;
    }
    s->updated_at_ms = now;
    s->execution_count++;
    memcpy(s->last_execution_id, job->req.execution_id,
           sizeof(s->last_execution_id));
    if (!(doc = rp_session_to_json(s))) {
        rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED, "out of memory");
        goto out;
    }
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    err = rp_state_put(w->state, key, doc, strlen(doc),
                       job->session_found ? job->session_version : 0,
                       &job->saved_version, es, sizeof(es));
    if (err == RP_OK) {
        job->saved_doc = doc; /* the cache's next entry (main thread) */
        doc = NULL;
    } else {
        job->scache_drop = true; /* whatever is stored, we do not know it */
    }
    if ((err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS) &&
        rp_cycle_saved_by_other(w->state, key, job->req.execution_id)) {
        err = RP_OK; /* a previous owner saved this very execution */
    }
    if (err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS)
        rp_job_set_error(job, RP_CODE_STATE_CONFLICT,
                         "session state changed while the command ran (another "
                         "writer); the new cwd/env were not saved: %s", es);
    else if (err)
        rp_job_set_error(job, RP_CODE_STATE_SAVE_FAILED, "saving %s: %s", key, es);
    if (err)
        rp_jobws_not_applied(job, job->err_msg);
    else if (superseded)
        rp_jobws_gc(w, job, superseded, s->workspace.manifest);
out:
    free(superseded);
    job->state_save_ms = rp_time_mono_ms() - t0;
    free(doc);
    rp_buf_free(&buf);
    rp_inbox_post(w->inbox, &job->item, RP_EV_FINISHED);
}
