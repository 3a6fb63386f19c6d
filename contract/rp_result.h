/* rp_result — the result document (schemas/result.schema.json) and the
 * executor's record (executor-result.schema.json), which is a result plus
 * the session env after the command.
 *
 * Memory: rp_result_parse fills a caller-provided struct whose pointers it
 * owns; release with rp_result_clear, which accepts a zeroed or cleared
 * struct. Thread-safety: no shared state; any thread.
 */
#ifndef RP_RESULT_H
#define RP_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_env.h"
#include "rp_err.h"

typedef enum rp_status {
    RP_STATUS_SUCCEEDED = 0, /* exit 0 */
    RP_STATUS_FAILED,        /* non-zero exit or killed by a signal */
    RP_STATUS_TIMED_OUT,     /* the request's timeout_s passed */
    RP_STATUS_REJECTED,      /* invalid request: never ran */
    RP_STATUS_ERROR,         /* runpool's own infrastructure failed */
} rp_status_t;

const char *rp_status_str(rp_status_t st); /* "succeeded", … */
/* Returns 0 and sets *st, or -1 for an unknown name. */
int rp_status_parse(const char *s, rp_status_t *st);

typedef struct rp_timings {
    int64_t queue_wait_ms; /* submitted_at (or Kafka timestamp) -> picked up */
    int64_t state_load_ms;
    int64_t run_ms;
    int64_t state_save_ms;
} rp_timings_t;

/* The executor's report on the session's workspace snapshot
 * (docs/workspace.md). In the executor's record it is the "workspace"
 * object; a published result carries only "workspace_saved" and, when
 * false, "workspace_error" {code, message}. */
#define RP_RESULT_WS_SKIPPED_MAX 16 /* skipped paths listed (all counted) */
#define RP_RESULT_WS_TOO_LARGE "workspace_too_large"
#define RP_RESULT_WS_TOO_MANY_FILES "workspace_too_many_files"
#define RP_RESULT_WS_ERROR "workspace_error"
typedef struct rp_result_ws {
    bool present;   /* the execution had a snapshot workspace */
    bool full;      /* parse: it came as the record's "workspace" object
                     * (false: a published workspace_saved) */
    bool saved;     /* the workspace after the command is `manifest` */
    bool unchanged; /* saved: nothing changed since the restored snapshot */
    char *manifest; /* owned; saved: the snapshot's key, NULL = empty */
    char *root;     /* owned; the workspace directory in this execution */
    uint64_t bytes, files;            /* of the snapshot */
    uint64_t bytes_uploaded, chunks_uploaded; /* by the save */
    uint64_t bytes_downloaded;        /* by the restore */
    int64_t restore_ms, save_ms;
    uint64_t skipped;                 /* special files left out */
    char *skipped_paths[RP_RESULT_WS_SKIPPED_MAX]; /* owned; the first ones */
    size_t nskipped_paths;
    char *code;    /* owned; !saved: RP_RESULT_WS_TOO_LARGE, ... */
    char *message; /* owned; !saved */
} rp_result_ws_t;

typedef struct rp_result {
    char execution_id[RP_ID_MAX + 1];
    char session_id[RP_ID_MAX + 1];
    rp_status_t status;
    bool has_exit_code;
    int exit_code;
    bool has_signal;
    int signal;
    /* Raw bytes (any content, may contain NUL). On parse they are decoded
     * from base64 when encoding was "base64". Owned. */
    char *stdout_data;
    size_t stdout_len;
    bool stdout_truncated;
    char *stderr_data;
    size_t stderr_len;
    bool stderr_truncated;
    char *cwd;           /* owned; NULL when unknown (rejected/error) */
    int64_t started_at_ms;  /* 0 = absent */
    int64_t finished_at_ms; /* 0 = absent */
    int64_t duration_ms;
    bool has_timings;
    rp_timings_t timings;
    char *error_code;    /* owned; NULL unless rejected/error */
    char *error_message; /* owned */
    char *worker;        /* owned; NULL = absent */
    bool reused;         /* the record of an earlier run of this
                            execution_id, not a new run ("reused": true;
                            absent = false) */
    bool has_env;        /* executor record only */
    /* Executor record only: the version of the session state the executor
     * read (0 = none: a new session), so the worker saves on the state the
     * command really started from ("state_version", decimal digits: a
     * Cloud Storage generation does not fit a JSON double). */
    bool has_state_version;
    uint64_t state_version;
    rp_env_t env;        /* session env after the command (executor record) */
    rp_result_ws_t ws;   /* workspace report; ws.present = false: none */
    /* A file op's result (rp_fileop.h): its name ("read_file"; NULL for a
     * command or close_session) and what it returns, the "op_result"
     * object as JSON text (owned; NULL = none). A file op that failed
     * (not found, a path outside the workspace, ...) is status "failed"
     * with error {code, message}. */
    char *op;
    char *op_result;
} rp_result_t;

/* Serialise. Chooses "encoding": "utf-8" when both outputs are valid UTF-8
 * without NUL bytes, else "base64" for both. Writes "env" only when
 * include_env (the executor's record); the published result never has it.
 * `error` is written exactly when status is rejected/error (as the schema
 * requires; RP_CODE_INTERNAL if none was set), negative durations (clock skew)
 * as 0, started_at/finished_at only when > 0, and text that is not valid
 * UTF-8 (cwd, env, worker, error) with '?' for the bad bytes, and
 * "reused": true only when reused; error also with "failed" when op is
 * set (a file op's failure) and error_code is. The workspace report (ws.present):
 * the whole "workspace" object with include_env, else workspace_saved
 * (and workspace_error when not saved).
 * Caller frees; NULL on allocation failure. res borrowed. */
char *rp_result_to_json(const rp_result_t *res, bool include_env);

/* Parse a result or executor record (validates the schema rules). Both
 * are accepted: has_env says whether env was present, which a published
 * result (result.schema.json) must not have and an executor record
 * (executor-result.schema.json) may; absent there means unknown. */
rp_err_t rp_result_parse(const char *json, size_t len, rp_result_t *out,
                         char *errstr, size_t errstr_size);

/* Fill error_code / error_message (copied; message cut to RP_ERRMSG_MAX
 * bytes at a UTF-8 boundary). code must be a wire string of RP_CODES
 * (rp_codes.h), e.g. rp_code_str(RP_CODE_STATE_CONFLICT); else
 * RP_ERR_INVALID. */
rp_err_t rp_result_set_error(rp_result_t *res, const char *code,
                             const char *message);

void rp_result_clear(rp_result_t *res);
/* Free what ws owns and zero it; accepts NULL. */
void rp_result_ws_clear(rp_result_ws_t *ws);

#endif
