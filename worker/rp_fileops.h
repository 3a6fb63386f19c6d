/* rp_fileops — the file ops of issue 11 §2 (write_file, read_file,
 * list_files, find, search, replace_in_file, delete, upload, download),
 * done by the worker itself on the session's workspace snapshot: no
 * container starts, so a read_file costs a state load and the chunks that
 * hold the bytes (docs/worker.md, "File operations").
 *
 * A file op is a job like a command: keyed by session, in the session's
 * order (rp_sched), one pool step (FINISHING) after LOADING. A mutating
 * op (write_file, replace_in_file, delete, upload) goes the way a command
 * does: its new snapshot under a new name (workspaces/{sid}/snapshots/
 * {execution_id}.json.zst, create-only), then its record
 * (executions/{id}/result.json, create-only: the claim and the answer in
 * one), then the session state with compare-and-swap, then rp_ws_gc of
 * the snapshot it replaced. A redelivery finds the record (job->reused),
 * so the edit is never applied twice and the answer is the first one;
 * if the first run stopped between its record and the state, the reuse
 * finishes the state. Read-only ops change nothing and record nothing.
 *
 * Thread-safety: rp_fileops_run runs on an I/O pool thread and touches
 * only its job, the thread-safe store and the inbox (rp_worker_int.h).
 */
#ifndef RP_FILEOPS_H
#define RP_FILEOPS_H

#include <stdbool.h>

#include "rp_request.h"

/* Must LOADING read the execution's record (a mutating file op)? */
bool rp_fileops_records(const rp_request_t *req);

/* FINISHING of a file op: do it and fill the job's result (or error);
 * posts RP_EV_FINISHED. arg is the rp_job_t. I/O pool thread. */
void rp_fileops_run(void *arg);

#endif
