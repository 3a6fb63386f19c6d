/* rp_json — reading and writing the contract's JSON documents.
 *
 * Internal to contract/: the document modules (rp_env, rp_request,
 * rp_result, rp_session) build on these; nothing outside includes it.
 * cJSON parses, and the checks here add what cJSON does not: RFC 8259
 * number grammar, "\u0000" inside strings, duplicate members, byte
 * limits, and the schemas' integer and timestamp rules.
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_JSON_H
#define RP_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_env.h"
#include "rp_err.h"
#include "rp_time.h"

/* Largest integer a reader that holds numbers as doubles (JavaScript, and
 * cJSON itself) keeps exactly; the schemas use the same bound. */
#define RP_JSON_INT_MAX 9007199254740991LL

/* Field names quoted in error messages come from outside: show at most
 * this many bytes of them. */
#define RP_JSON_SHOWN_MAX 48

/* A printable excerpt of an outside string for an error message. */
const char *rp_json_shown(const char *s, char out[RP_JSON_SHOWN_MAX + 4]);

/* Parse one JSON object of at most hard_max bytes. */
rp_err_t rp_json_load(const char *json, size_t len, size_t hard_max,
                            const char *what, cJSON **root, char *errstr,
                            size_t errstr_size);

/* Sort obj's members into items[] by name (names[], n of them). Reports
 * the first unknown or repeated member, but always fills every known one
 * (a repeated one as rp_json_dup_item) so the caller can still read the ids
 * of a message it is about to reject. where: "" or "timings." etc. */
rp_err_t rp_json_fields(const cJSON *obj, const char *where,
                              const char *const names[], size_t n,
                              const cJSON *items[], char *errstr,
                              size_t errstr_size);

rp_err_t rp_json_required(const cJSON *it, const char *where,
                                const char *name, char *errstr,
                                size_t errstr_size);

rp_err_t rp_json_get_version(const cJSON *it, char *errstr,
                                   size_t errstr_size);

/* A present id member into out[RP_ID_MAX + 1]; out untouched on error. */
rp_err_t rp_json_get_id(const cJSON *it, const char *name, char *out,
                              char *errstr, size_t errstr_size);

/* An integral number in [min, max]. Like JSON Schema's "integer", 2.0
 * counts as an integer and 2.5 or "2" do not. */
rp_err_t rp_json_get_int(const cJSON *it, const char *where,
                               const char *name, int64_t min, int64_t max,
                               int64_t *out, char *errstr, size_t errstr_size);

rp_err_t rp_json_get_bool(const cJSON *it, const char *name, bool *out,
                                char *errstr, size_t errstr_size);

/* A string of min_len..max_len bytes without NUL; *out borrowed from it. */
rp_err_t rp_json_get_str(const cJSON *it, const char *where,
                               const char *name, size_t min_len,
                               size_t max_len, const char **out,
                               size_t *out_len, char *errstr,
                               size_t errstr_size);

/* Like rp_json_get_str, into a malloc'd copy. */
rp_err_t rp_json_dup_str(const cJSON *it, const char *where,
                               const char *name, size_t min_len,
                               size_t max_len, char **out, char *errstr,
                               size_t errstr_size);

rp_err_t rp_json_get_time(const cJSON *it, const char *name,
                                int64_t *out, char *errstr, size_t errstr_size);

/* An env object: string -> string under the RP_ENV_* limits. */
rp_err_t rp_json_get_env(const cJSON *it, const char *name,
                               rp_env_t *out, char *errstr, size_t errstr_size);

/* cwd: an absolute path (the executor records getcwd()). */
rp_err_t rp_json_get_cwd(const cJSON *it, char **out, char *errstr,
                               size_t errstr_size);

/* Add a string member that is guaranteed valid UTF-8 (bytes that are not
 * become '?': a document we cannot read back would be worse). */
bool rp_json_add_text(cJSON *obj, const char *name, const char *s);

bool rp_json_add_int(cJSON *obj, const char *name, int64_t v);

bool rp_json_add_time(cJSON *obj, const char *name, int64_t ms);

bool rp_json_add_env(cJSON *obj, const char *name, const rp_env_t *env);

/* Print and free root; NULL when anything before failed (ok false). */
char *rp_json_finish(cJSON *root, bool ok);

#endif
