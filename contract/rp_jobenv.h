/* rp_jobenv — the executor's contract: the environment variables a job
 * container receives. Both sides live here, so the worker's backends
 * (local child process, Cloud Run execution overrides) and the executor
 * cannot drift apart.
 *
 *   EXECUTION_ID        the request's execution_id
 *   SESSION_ID          the request's session_id
 *   COMMAND             the shell command (read for compatibility; no
 *                       backend sends it, see below)
 *   TIMEOUT             seconds, integer 1..86400
 *   RUNPOOL_STATE_URL   file:///dir or gs://bucket[/prefix]
 *   COMMAND_ENV         optional: JSON object of per-command variables
 *                       (the same)
 *   RUNPOOL_OUTPUT_MAX  optional: stdout/stderr cap in bytes each
 *   RUNPOOL_DEFAULT_CWD optional: working directory of a new session
 *   RUNPOOL_REQUEST_REF instead of COMMAND / COMMAND_ENV: where the
 *                       request document holding both is: the state-store
 *                       key executions/{id}/attempt-{n}.json (a Cloud Run
 *                       claim record, the document in its "request"
 *                       member), executions/{id}/request.json (written by
 *                       earlier workers), or "-" for the executor's
 *                       standard input
 *   RUNPOOL_ATTEMPT     optional: which start of the execution this is
 *                       (1..RP_JOBENV_ATTEMPT_MAX, default 1); written
 *                       into the claim (rp_claim.h), so a re-run after an
 *                       interruption stays bounded across owners
 *
 * The executor's exit status (what a backend reports as exit_code):
 *   RP_EXEC_EXIT_RECORDED  0  a result record exists for the execution
 *   RP_EXEC_EXIT_FAILED    1  the executor itself failed (it still tries
 *                             to leave a status "error" record)
 *   RP_EXEC_EXIT_CONTRACT  2  the job environment is missing or malformed
 *   RP_EXEC_EXIT_CLAIMED   3  another run had claimed the execution: the
 *                             command was not run and nothing was written
 *                             (the claim's run writes the record)
 *
 * The command and COMMAND_ENV never travel in environment strings: no
 * backend sends COMMAND or COMMAND_ENV (the executor still reads them, for
 * compatibility). An environment has limits a request does not have —
 * Linux refuses any single environ string over 128 KiB (MAX_ARG_STRLEN)
 * and the whole of argv + environ past ARG_MAX, Cloud Run caps a value at
 * 32 KiB — and it is visible where a command may not be: anyone with
 * Viewer on the project reads a Cloud Run execution's overrides, and
 * /proc/PID/environ shows a process's. So every backend writes the
 * request document {"command": ..., "env": {...}}
 * (rp_jobenv_request_json) and replaces both variables by
 * RUNPOOL_REQUEST_REF:
 *   - Cloud Run: inside the claim record the backend writes anyway before
 *     each jobs.run, executions/{execution_id}/attempt-{n}.json
 *     (create-only), as its "request" member
 *     (rp_jobenv_use_attempt_ref): no object of its own. Earlier workers
 *     wrote executions/{execution_id}/request.json
 *     (rp_jobenv_use_request_ref), which the executor still reads;
 *   - local: "-", the document on the executor's standard input (a
 *     memfd: no store write, nothing left on disk;
 *     rp_jobenv_use_request_stdin).
 * Nothing is ever truncated. The executor reads the document
 * (rp_jobenv_load_request) before it runs anything.
 *
 * An optional variable set to "" counts as absent (a Cloud Run override
 * can blank a variable of the job definition but not remove it).
 *
 * Thread-safety: pure functions; any thread.
 */
#ifndef RP_JOBENV_H
#define RP_JOBENV_H

#include <stddef.h>

#include "rp_claim.h"
#include "rp_err.h"
#include "rp_msg.h"

/* COMMAND_ENV is at most this many bytes (it came from one request). */
#define RP_JOBENV_COMMAND_ENV_MAX RP_REQUEST_MAX
#define RP_JOBENV_REQUEST_REF "RUNPOOL_REQUEST_REF"
/* RUNPOOL_REQUEST_REF's value for "the document is on standard input". */
#define RP_JOBENV_REQUEST_STDIN "-"
/* A request document: a command (JSON-escaped, up to 6 bytes a byte) plus
 * a COMMAND_ENV, with room to spare. */
#define RP_JOBENV_REQUEST_DOC_MAX (4 * 1024 * 1024)
/* A claim record that carries one: the document plus the claim's own
 * members (job and execution names, times, worker: under 4 KiB). */
#define RP_JOBENV_REF_DOC_MAX (RP_JOBENV_REQUEST_DOC_MAX + 8 * 1024)
/* attempt-{n}.json: n is 1..this (the Cloud Run backend's claims). */
#define RP_JOBENV_REF_ATTEMPT_MAX 100

#define RP_EXEC_EXIT_RECORDED 0
#define RP_EXEC_EXIT_FAILED 1
#define RP_EXEC_EXIT_CONTRACT 2
#define RP_EXEC_EXIT_CLAIMED 3
/* The bound on starts lives with the claim that counts them. */
#define RP_JOBENV_ATTEMPT_MAX RP_CLAIM_ATTEMPTS_MAX

typedef struct rp_jobspec {
    char execution_id[RP_ID_MAX + 1];
    char session_id[RP_ID_MAX + 1];
    char *command;        /* owned by whoever filled the struct */
    int timeout_s;
    rp_env_t env;         /* per-command variables (COMMAND_ENV) */
    char *state_url;      /* owned */
    size_t output_max;    /* 0 = RP_OUTPUT_MAX_DEFAULT */
    char *default_cwd;    /* owned; NULL = executor's choice */
    /* parse only: the command travels by reference (RUNPOOL_REQUEST_REF);
     * command is NULL until rp_jobenv_load_request. Owned. */
    char *request_ref;
    int attempt;          /* build: 0 or 1 = first (not passed); parse: >= 1 */
} rp_jobspec_t;

/* Append the contract variables for spec to out (name/value copied; spec
 * borrowed). spec is checked first with the same rules as
 * rp_jobenv_parse, so on RP_ERR_INVALID / RP_ERR_TOO_LARGE (naming the
 * variable) nothing was appended; on RP_ERR_NOMEM out may hold some. */
rp_err_t rp_jobenv_build(const rp_jobspec_t *spec, rp_env_t *out,
                         char *errstr, size_t errstr_size);

/* Read the contract from an environment (getenv-like lookup function, so
 * tests need not touch the real environment; the strings it returns are
 * borrowed and copied). Fills spec (caller clears with rp_jobspec_clear,
 * on success or failure). RP_ERR_INVALID (RP_ERR_TOO_LARGE for an
 * over-long value) naming the variable when one is missing or malformed;
 * even then execution_id / session_id are filled when they were valid, so
 * the executor can still record an "error" result for the worker.
 * When COMMAND is absent and RUNPOOL_REQUEST_REF is set (it must name
 * this execution's request.json or be RP_JOBENV_REQUEST_STDIN, and
 * COMMAND_ENV must then be absent),
 * spec->request_ref is set and spec->command stays NULL: the caller loads
 * the document (rp_jobenv_load_request). */
rp_err_t rp_jobenv_parse(const char *(*lookup)(const char *name, void *opaque),
                         void *opaque, rp_jobspec_t *spec, char *errstr,
                         size_t errstr_size);

/* "executions/{execution_id}/request.json" into out, or "" when the id is
 * not valid or out is too small (RP_STATE_KEY_MAX + 1 always fits). */
void rp_jobenv_request_key(const char *execution_id, char *out,
                           size_t out_size);

/* "executions/{execution_id}/attempt-{n}.json" (n in
 * 1..RP_JOBENV_REF_ATTEMPT_MAX) into out; "" as above or for a bad n. */
void rp_jobenv_attempt_key(const char *execution_id, int n, char *out,
                           size_t out_size);

/* The request document for spec: {"command": ..., "env": {...}}. *out is
 * malloc'd, caller frees. spec borrowed. RP_ERR_NOMEM only. */
rp_err_t rp_jobenv_request_json(const rp_jobspec_t *spec, char **out,
                                char *errstr, size_t errstr_size);

/* In env (as rp_jobenv_build made it for execution_id), replace COMMAND
 * and COMMAND_ENV by RUNPOOL_REQUEST_REF=rp_jobenv_request_key(id). */
rp_err_t rp_jobenv_use_request_ref(rp_env_t *env, const char *execution_id,
                                   char *errstr, size_t errstr_size);

/* The same with RUNPOOL_REQUEST_REF=rp_jobenv_attempt_key(id, n): the
 * document is the "request" member of that claim record. */
rp_err_t rp_jobenv_use_attempt_ref(rp_env_t *env, const char *execution_id,
                                   int n, char *errstr, size_t errstr_size);

/* The same for the local backend: RUNPOOL_REQUEST_REF=- (the document
 * comes on the executor's standard input). RP_ERR_NOMEM only. */
rp_err_t rp_jobenv_use_request_stdin(rp_env_t *env, char *errstr,
                                     size_t errstr_size);

/* Fill spec->command and spec->env from a request document (json, len
 * bytes, borrowed), checked with the rules of COMMAND and COMMAND_ENV.
 * A claim record (an object with a "request" member, at most
 * RP_JOBENV_REF_DOC_MAX) stands for the document in that member.
 * RP_ERR_INVALID / RP_ERR_TOO_LARGE naming RUNPOOL_REQUEST_REF. */
rp_err_t rp_jobenv_load_request(rp_jobspec_t *spec, const char *json,
                                size_t len, char *errstr, size_t errstr_size);

/* Free what spec owns and zero it; accepts NULL. */
void rp_jobspec_clear(rp_jobspec_t *spec);

#endif
