/* rp_sessions — the pure parts of runpool-sessions (options, durations,
 * reading and closing sessions in a state store, output rows), so that
 * tests/unit/test_sessions.c drives them; sessions_main.c is the program.
 *
 * A session is its state document sessions/{id}/state.json (written by
 * the worker only) plus the objects of its workspace under
 * workspaces/{id}/ (rp_layout.h). Closing one here deletes both, as the
 * close_session request op does; the state goes first and only if it is
 * still the version that was read (compare-and-swap), so a session a
 * command used in between is not closed ("in use").
 *
 * Thread-safety: no shared state; any thread, one call at a time per store
 * handle's rules (rp_state.h).
 */
#ifndef RP_SESSIONS_H
#define RP_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rp_contract.h"
#include "rp_err.h"
#include "rp_state.h"

/* Exit statuses of runpool-sessions. */
#define RP_SESSIONS_EXIT_OK 0
#define RP_SESSIONS_EXIT_FAILED 1   /* a store error, or a session in use */
#define RP_SESSIONS_EXIT_USAGE 2    /* bad option or argument */
#define RP_SESSIONS_EXIT_NOT_FOUND 3 /* show/close: no such session */

/* Sessions one `list` or `expire` reads at most; past it the command
 * fails naming the limit (a store that big wants Object Lifecycle rules,
 * docs/state-store.md, not a sweep). */
#define RP_SESSIONS_MAX 1000000
/* --idle: at most ten years. */
#define RP_SESSIONS_IDLE_MAX_S (10LL * 366 * 24 * 3600)

typedef enum rp_sessions_cmd {
    RP_SESSIONS_NONE = 0,
    RP_SESSIONS_LIST,
    RP_SESSIONS_SHOW,
    RP_SESSIONS_CLOSE,
    RP_SESSIONS_EXPIRE,
} rp_sessions_cmd_t;

typedef struct rp_sessions_conf {
    bool help, version;
    const char *state_url; /* --state, or RUNPOOL_STATE; borrowed */
    bool json;             /* --json: one JSON object a line */
    bool dry_run;          /* expire --dry-run */
    int64_t idle_s;        /* expire --idle; 0 = not given */
    rp_sessions_cmd_t cmd;
    char id[RP_ID_MAX + 1]; /* show/close */
} rp_sessions_conf_t;

/* Parse argv (borrowed, kept: conf points into it). env_state: the
 * RUNPOOL_STATE variable (may be NULL), used when --state is absent.
 * RP_ERR_INVALID with a one-line message naming what is wrong. */
rp_err_t rp_sessions_conf_parse(rp_sessions_conf_t *conf, int argc,
                                char **argv, const char *env_state,
                                char *errstr, size_t errstr_size);

/* Usage text. */
void rp_sessions_usage(FILE *out, const char *prog);

/* "7d", "12h", "30m", "45s", "2w" or plain seconds ("3600") into *secs:
 * 1 s .. RP_SESSIONS_IDLE_MAX_S. RP_ERR_INVALID otherwise. */
rp_err_t rp_sessions_parse_duration(const char *s, int64_t *secs,
                                    char *errstr, size_t errstr_size);

/* What `list` and `show` say of one session. */
typedef struct rp_sessions_info {
    char id[RP_ID_MAX + 1];
    uint64_t version; /* of its state document, for a CAS close */
    int64_t created_ms, updated_ms, executions;
    char last_execution_id[RP_ID_MAX + 1];
    char *cwd; /* owned; NULL = not set */
    size_t env_count;
    /* The state's workspace: bytes and files of its current snapshot
     * (-1 when the session has none) and the manifest's key ("" = none). */
    int64_t ws_bytes, ws_files;
    char ws_manifest[RP_STATE_KEY_MAX + 1];
    /* show only: objects under workspaces/{id}/ (-1 = not counted). */
    int64_t ws_objects;
} rp_sessions_info_t;

void rp_sessions_info_clear(rp_sessions_info_t *info);

/* Read one session's state into info (zeroed first; clear it after).
 * RP_ERR_NOT_FOUND when it has none; RP_ERR_INVALID for an id that is
 * not one (rp_id_valid); a store or parse error otherwise. */
rp_err_t rp_sessions_load(rp_state_t *st, const char *id,
                          rp_sessions_info_t *info, char *errstr,
                          size_t errstr_size);

/* Called for every session found by rp_sessions_list (info borrowed for
 * the call). Non-zero stops the listing. */
typedef int(rp_sessions_cb)(void *opaque, const rp_sessions_info_t *info);

/* Every session of the store, in id order. A state that vanished
 * between the listing and its read is skipped; one that cannot be read
 * is reported with *bad (may be NULL) counted and its message logged on
 * stderr_msg (may be NULL: silently skipped). */
rp_err_t rp_sessions_list(rp_state_t *st, rp_sessions_cb *cb, void *opaque,
                          size_t *bad, FILE *stderr_msg, char *errstr,
                          size_t errstr_size);

/* Close session id: delete its state if it is still at if_version
 * (RP_STATE_ANY: whatever version), then every object under
 * workspaces/{id}/. RP_ERR_CONFLICT: it changed since it was read (in
 * use), nothing deleted. RP_ERR_NOT_FOUND: no state (its workspace
 * objects, if any, are still deleted). *objects (may be NULL): workspace
 * objects deleted. */
rp_err_t rp_sessions_close(rp_state_t *st, const char *id, uint64_t if_version,
                           size_t *objects, char *errstr, size_t errstr_size);

/* Is info idle for longer than idle_s at now_ms (wall)? */
bool rp_sessions_idle(const rp_sessions_info_t *info, int64_t idle_s,
                      int64_t now_ms);

/* One session as a JSON object (one line, no newline). Caller frees;
 * NULL on no memory. */
char *rp_sessions_json(const rp_sessions_info_t *info);
/* Human-readable byte count ("1.5 MiB", "-" for < 0) into out. */
void rp_sessions_bytes(int64_t n, char *out, size_t out_size);
/* The table's header, and one row, each with a newline. */
void rp_sessions_table_header(FILE *out);
void rp_sessions_table_row(FILE *out, const rp_sessions_info_t *info);

#endif
