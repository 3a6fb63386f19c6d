/* rp_codes — every public error code of a result (error.code in
 * schemas/result.schema.json, and the runpool.error.code DLQ header).
 *
 * RP_CODES is the one list: tests/schema/validate.js reads the body of
 * the #define below (up to the first blank line) and checks that the
 * schema's enum on error.code and the codes table in schemas/README.md
 * hold exactly these strings, in this order. Keep each entry in the form
 *
 *   X(NAME, "wire_string", "one-line meaning")
 *
 *   NAME        gives RP_CODE_NAME in rp_code_t
 *   wire_string what error.code carries: snake_case, at most 64 bytes
 *   meaning     plain text without double quotes or a pipe, for the docs
 *
 * INVALID to INTERNAL spell rp_err_code() (base/rp_err.c), so any rp_err_t
 * has a code (rp_code_of_err); tests/unit/test_codes.c checks the two stay
 * alike. The rest name the worker's own failures.
 *
 * Thread-safety: pure functions over constant tables; any thread.
 */
#ifndef RP_CODES_H
#define RP_CODES_H

#include <stddef.h>

#include "rp_err.h"

#define RP_CODES(X) \
    X(INVALID, "invalid", \
      "bad input or argument") \
    X(NO_MEMORY, "no_memory", \
      "runpool ran out of memory") \
    X(TOO_LARGE, "too_large", \
      "a request or document is over a named maximum") \
    X(NOT_FOUND, "not_found", \
      "an object runpool needed is absent") \
    X(EXISTS, "exists", \
      "a create-only object already exists") \
    X(CONFLICT, "conflict", \
      "a compare-and-swap lost: the version changed") \
    X(IO, "io", \
      "local I/O failed") \
    X(TIMEOUT, "timeout", \
      "an internal deadline passed") \
    X(UNAVAILABLE, "unavailable", \
      "a remote service was temporarily unavailable") \
    X(PERMISSION_DENIED, "permission_denied", \
      "access was denied") \
    X(PROTOCOL, "protocol", \
      "a peer answered something runpool cannot understand") \
    X(KAFKA, "kafka", \
      "a Kafka client error") \
    X(SPAWN, "spawn", \
      "the shell could not be started") \
    X(CANCELLED, "cancelled", \
      "an operation was cancelled on purpose") \
    X(INTERNAL, "internal", \
      "a bug or broken invariant in runpool") \
    X(INVALID_REQUEST, "invalid_request", \
      "the request does not match request.schema.json") \
    X(KEY_TOO_LARGE, "key_too_large", \
      "the Kafka message key is too large") \
    X(KEY_MISMATCH, "key_mismatch", \
      "the Kafka message key is not the session_id") \
    X(STATE_CORRUPT, "state_corrupt", \
      "the stored session state is unreadable") \
    X(STATE_LOAD_FAILED, "state_load_failed", \
      "reading the session state or the execution's existing record failed") \
    X(STATE_SAVE_FAILED, "state_save_failed", \
      "writing or deleting the session state failed") \
    X(STATE_CONFLICT, "state_conflict", \
      "another writer changed the session state while the command ran; its new cwd and env were not saved") \
    X(RESULT_CORRUPT, "result_corrupt", \
      "the executor record is unreadable") \
    X(RESULT_READ_FAILED, "result_read_failed", \
      "reading the executor record failed") \
    X(EXECUTION_ID_CONFLICT, "execution_id_conflict", \
      "the execution_id already ran in another session") \
    X(BACKEND_FAILED, "backend_failed", \
      "the backend could not start or run the executor") \
    X(EXECUTOR_UNRESPONSIVE, "executor_unresponsive", \
      "the executor was still running well past timeout_s and was stopped without a record") \
    X(NO_RESULT, "no_result", \
      "the executor ended without writing a record") \
    X(INTERRUPTED, "interrupted", \
      "the run that started the command vanished before it finished (OOM kill, machine loss); the command was not run again") \
    X(UNSIGNED, "unsigned", \
      "the worker runs signed requests only and the request has no runpool-signature header") \
    X(BAD_SIGNATURE, "bad_signature", \
      "the runpool-signature header is malformed or its HMAC does not match the message") \
    X(UNKNOWN_KEY, "unknown_key", \
      "the request is signed with a key id the worker does not know") \
    X(EXPIRED_SIGNATURE, "expired_signature", \
      "the signature is genuine but its time t is further from the worker clock than --signature-max-age") \
    X(INVALID_PATH, "invalid_path", \
      "a file op's path is not inside the workspace (absolute, a .. segment, NUL, too long) or goes through a symlink") \
    X(NOT_A_DIRECTORY, "not_a_directory", \
      "a file op needs a directory and the path is a file or symlink") \
    X(IS_A_DIRECTORY, "is_a_directory", \
      "a file op needs a file and the path is a directory (or a non-empty one, for delete without recursive)") \
    X(COUNT_MISMATCH, "count_mismatch", \
      "replace_in_file found the old text a different number of times than count; nothing was changed")

/* The longest wire string (test_codes checks every entry against it). */
#define RP_CODE_MAX 64

typedef enum rp_code {
#define RP_CODE_ENUM_(name, str, meaning) RP_CODE_##name,
    RP_CODES(RP_CODE_ENUM_)
#undef RP_CODE_ENUM_
    RP_CODE__COUNT
} rp_code_t;

/* The wire string, e.g. "state_conflict"; "internal" for a value out of
 * range. Never NULL, static. */
const char *rp_code_str(rp_code_t code);

/* The one-line meaning; "" for a value out of range. Never NULL, static. */
const char *rp_code_meaning(rp_code_t code);

/* Returns 0 and sets *code when s is a listed wire string, else -1.
 * s borrowed, may be NULL. */
int rp_code_parse(const char *s, rp_code_t *code);

/* The code of an rp_err_t (same spelling as rp_err_code()); RP_OK and
 * values out of range, which no failure should carry, are
 * RP_CODE_INTERNAL. */
rp_code_t rp_code_of_err(rp_err_t err);

#endif
