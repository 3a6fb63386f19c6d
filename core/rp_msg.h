/* rp_msg — the wire contract: requests, results and session state as JSON.
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"
#include "rp_time.h"

#define RP_MSG_VERSION 1
#define RP_ID_MAX 128                    /* execution_id, session_id */
#define RP_COMMAND_MAX (256 * 1024)      /* request.command, bytes */
#define RP_TIMEOUT_MIN_S 1
#define RP_TIMEOUT_MAX_S 86400
#define RP_TIMEOUT_DEFAULT_S 120
#define RP_ENV_MAX_VARS 1000             /* per request / per session */
#define RP_ENV_NAME_MAX 1024             /* bytes of one variable name */
#define RP_ENV_VALUE_MAX (32 * 1024)     /* bytes of one value */
#define RP_CWD_MAX 4096                  /* bytes of a working directory */
#define RP_REQUEST_MAX (1024 * 1024)     /* a whole request message */
#define RP_OUTPUT_MAX_DEFAULT (1024 * 1024) /* stdout/stderr cap each */
#define RP_OUTPUT_MAX_LIMIT (8 * 1024 * 1024) /* highest configurable cap */
/* A whole result document: two capped outputs, base64 growth, env, slack. */
#define RP_RESULT_MAX (3 * RP_OUTPUT_MAX_LIMIT + 4 * 1024 * 1024)
#define RP_STATE_DOC_MAX (4 * 1024 * 1024) /* a session state document */
#define RP_ERRMSG_MAX 1024               /* result error.message */
#define RP_WORKER_NAME_MAX 256

/* ---- environment maps (ordered as read; names unique) ---- */

typedef struct rp_env_var {
    char *name;  /* owned */
    char *value; /* owned */
} rp_env_var_t;

typedef struct rp_env {
    rp_env_var_t *vars; /* owned array */
    size_t n;
    size_t cap;
} rp_env_t;

/* Set name=value (copying both), replacing an existing value. */
rp_err_t rp_env_set(rp_env_t *env, const char *name, const char *value);
/* Value for name (borrowed from env) or NULL. */
const char *rp_env_get(const rp_env_t *env, const char *name);
/* Remove name if present. */
void rp_env_unset(rp_env_t *env, const char *name);
/* Deep copy src into *dst (dst must be empty/zeroed). */
rp_err_t rp_env_copy(rp_env_t *dst, const rp_env_t *src);
void rp_env_clear(rp_env_t *env);
/* POSIX shell-safe name: [A-Za-z_][A-Za-z0-9_]*, at most RP_ENV_NAME_MAX. */
bool rp_env_name_valid(const char *name);
/* Check env against the message rules (at most RP_ENV_MAX_VARS, valid
 * names, values at most RP_ENV_VALUE_MAX bytes of UTF-8). what names the
 * map in the message ("env", "COMMAND_ENV"). env borrowed. */
rp_err_t rp_env_validate(const rp_env_t *env, const char *what, char *errstr,
                         size_t errstr_size);
/* env as one JSON object {"NAME":"value",...}; caller frees. NULL on
 * allocation failure. env borrowed. */
char *rp_env_to_json(const rp_env_t *env);
/* Parse a JSON object of strings into *out (empty/zeroed; caller clears it,
 * also on failure) under the same rules as a request's env. json borrowed,
 * len bytes (at most RP_REQUEST_MAX). what names it in errstr. */
rp_err_t rp_env_parse_json(const char *json, size_t len, rp_env_t *out,
                           const char *what, char *errstr, size_t errstr_size);

/* ---- ids ---- */

/* 1..RP_ID_MAX chars of [A-Za-z0-9._:-]. */
bool rp_id_valid(const char *id, size_t len);

/* Write a fresh random UUIDv4 (36 chars + NUL) into out[37]. */
rp_err_t rp_id_generate(char out[37]);

/* ---- request ---- */

typedef enum rp_op {
    RP_OP_EXEC = 0,
    RP_OP_CLOSE_SESSION,
} rp_op_t;

typedef struct rp_request {
    char execution_id[RP_ID_MAX + 1]; /* "" when unreadable */
    char session_id[RP_ID_MAX + 1];   /* "" when unreadable */
    rp_op_t op;
    char *command;       /* owned; NULL for close_session */
    int timeout_s;       /* RP_TIMEOUT_DEFAULT_S when absent */
    rp_env_t env;        /* per-command variables; empty when absent */
    bool has_submitted_at;
    int64_t submitted_at_ms; /* wall ms since epoch, when has_submitted_at */
} rp_request_t;

/* Parse and validate one request message (json borrowed, len bytes, need
 * not be NUL-terminated).
 * On any validation failure returns RP_ERR_INVALID or RP_ERR_TOO_LARGE
 * (message, command or env over its byte limit) with a precise message
 * naming the field ("timeout_s: must be an integer from 1 to 86400"), and STILL
 * fills execution_id / session_id when those two fields were themselves
 * valid, so the caller can address a "rejected" result to the requester.
 * Unknown fields are rejected (additionalProperties: false), `v` must be 1.
 * Always call rp_request_clear() afterwards, on success or failure. */
rp_err_t rp_request_parse(const char *json, size_t len, rp_request_t *out,
                          char *errstr, size_t errstr_size);

/* Serialise (producer side). Includes "v":1; omits defaults it may omit:
 * op when "exec", timeout_s when <= 0 (so a zeroed struct means the
 * default), env when empty, submitted_at unless has_submitted_at.
 * Caller frees; NULL on allocation failure. req borrowed. */
char *rp_request_to_json(const rp_request_t *req);

void rp_request_clear(rp_request_t *req);

/* ---- result ---- */

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
    bool has_env;        /* executor record only */
    rp_env_t env;        /* session env after the command (executor record) */
} rp_result_t;

/* Serialise. Chooses "encoding": "utf-8" when both outputs are valid UTF-8
 * without NUL bytes, else "base64" for both. Writes "env" only when
 * include_env (the executor's record); the published result never has it.
 * `error` is written exactly when status is rejected/error (as the schema
 * requires; "internal" if none was set), negative durations (clock skew)
 * as 0, started_at/finished_at only when > 0, and text that is not valid
 * UTF-8 (cwd, env, worker, error) with '?' for the bad bytes.
 * Caller frees; NULL on allocation failure. res borrowed. */
char *rp_result_to_json(const rp_result_t *res, bool include_env);

/* Parse a result or executor record (validates the schema rules). Both
 * are accepted: has_env says whether env was present, which a published
 * result (result.schema.json) must not have and an executor record
 * (executor-result.schema.json) may; absent there means unknown. */
rp_err_t rp_result_parse(const char *json, size_t len, rp_result_t *out,
                         char *errstr, size_t errstr_size);

/* Fill error_code / error_message (copied; message cut to RP_ERRMSG_MAX
 * bytes at a UTF-8 boundary). code must be snake_case [a-z][a-z0-9_]*,
 * at most 64 bytes, e.g. rp_err_code(); else RP_ERR_INVALID. */
rp_err_t rp_result_set_error(rp_result_t *res, const char *code,
                             const char *message);

void rp_result_clear(rp_result_t *res);

/* ---- session state ---- */

typedef struct rp_session {
    char session_id[RP_ID_MAX + 1];
    char *cwd;             /* owned; NULL = not set yet */
    rp_env_t env;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int64_t execution_count;
    char last_execution_id[RP_ID_MAX + 1]; /* "" when none */
} rp_session_t;

/* Caller frees; NULL on allocation failure. s borrowed. */
char *rp_session_to_json(const rp_session_t *s);
rp_err_t rp_session_parse(const char *json, size_t len, rp_session_t *out,
                          char *errstr, size_t errstr_size);
void rp_session_clear(rp_session_t *s);

/* ---- helpers shared with the executor ---- */

/* true when the n bytes are valid UTF-8 (no overlongs, no surrogates) and
 * contain no NUL byte. */
bool rp_utf8_valid(const char *s, size_t n);

/* Largest m <= n such that s[0..m) does not end in the middle of a UTF-8
 * sequence (used when truncating output so that text stays text). */
size_t rp_utf8_trim(const char *s, size_t n);

/* Standard base64 with padding. Encode returns malloc'd NUL-terminated text;
 * decode returns RP_ERR_INVALID on malformed input. */
char *rp_base64_encode(const void *data, size_t len);
rp_err_t rp_base64_decode(const char *text, size_t len, char **out,
                          size_t *out_len);

#endif
