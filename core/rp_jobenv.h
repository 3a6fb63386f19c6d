/* rp_jobenv — the executor's contract: the environment variables a job
 * container receives. Both sides live here, so the worker's backends
 * (local child process now, Cloud Run overrides later) and the executor
 * cannot drift apart.
 *
 *   EXECUTION_ID        the request's execution_id
 *   SESSION_ID          the request's session_id
 *   COMMAND             the shell command (run with /bin/sh -c)
 *   TIMEOUT             seconds, integer 1..86400
 *   RUNPOOL_STATE_URL   file:///dir or gs://bucket[/prefix]
 *   COMMAND_ENV         optional: JSON object of per-command variables
 *   RUNPOOL_OUTPUT_MAX  optional: stdout/stderr cap in bytes each
 *   RUNPOOL_DEFAULT_CWD optional: working directory of a new session
 *
 * An optional variable set to "" counts as absent (a Cloud Run override
 * can blank a variable of the job definition but not remove it).
 *
 * Thread-safety: pure functions; any thread.
 */
#ifndef RP_JOBENV_H
#define RP_JOBENV_H

#include <stddef.h>

#include "rp_err.h"
#include "rp_msg.h"

/* COMMAND_ENV is at most this many bytes (it came from one request). */
#define RP_JOBENV_COMMAND_ENV_MAX RP_REQUEST_MAX

typedef struct rp_jobspec {
    char execution_id[RP_ID_MAX + 1];
    char session_id[RP_ID_MAX + 1];
    char *command;        /* owned by whoever filled the struct */
    int timeout_s;
    rp_env_t env;         /* per-command variables (COMMAND_ENV) */
    char *state_url;      /* owned */
    size_t output_max;    /* 0 = RP_OUTPUT_MAX_DEFAULT */
    char *default_cwd;    /* owned; NULL = executor's choice */
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
 * the executor can still record an "error" result for the worker. */
rp_err_t rp_jobenv_parse(const char *(*lookup)(const char *name, void *opaque),
                         void *opaque, rp_jobspec_t *spec, char *errstr,
                         size_t errstr_size);

/* Free what spec owns and zero it; accepts NULL. */
void rp_jobspec_clear(rp_jobspec_t *spec);

#endif
