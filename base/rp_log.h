/* rp_log — structured logs: one JSON object per line on stderr.
 *
 *   {"ts":"…","severity":"INFO","level":"info","component":"worker",
 *    "event":"execution_done","execution_id":"…","session_id":"…",
 *    "msg":"…"}
 *
 * severity is Cloud Logging's field (DEBUG, INFO, WARNING, ERROR), so GKE
 * shows each line at its level instead of every stderr line as an error;
 * level is the same in runpool's own words (debug, info, warn, error).
 *
 * Every line about an execution carries execution_id and session_id, so an
 * operator can follow one request across workers with grep or jq. Each line
 * is written with one write(2) call, so lines from threads never interleave.
 * Lines longer than RP_LOG_LINE_MAX are cut (the message is truncated, the
 * JSON stays valid).
 *
 * Any thread may call rp_log after rp_log_init.
 */
#ifndef RP_LOG_H
#define RP_LOG_H

#include <stddef.h>

#define RP_LOG_LINE_MAX 4096

typedef enum rp_log_level {
    RP_LOG_DEBUG,
    RP_LOG_INFO,
    RP_LOG_WARN,
    RP_LOG_ERROR,
} rp_log_level_t;

/* component is borrowed for the life of the process (a string literal).
 * Lines below min_level are dropped. RUNPOOL_LOG_LEVEL
 * (debug|info|warn|error) overrides min_level when set. Call once, from
 * the main thread, before other threads start. */
void rp_log_init(const char *component, rp_log_level_t min_level);

/* Log one line. event: short snake_case name of what happened (borrowed).
 * execution_id / session_id may be NULL (omitted). */
void rp_log(rp_log_level_t level, const char *event, const char *execution_id,
            const char *session_id, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Append s to out as JSON string contents (no quotes), escaping as needed,
 * never writing more than out_size-1 bytes and never splitting an escape.
 * Returns bytes written. Shared with code that hand-builds small JSON. */
size_t rp_log_json_escape(char *out, size_t out_size, const char *s);

#endif
