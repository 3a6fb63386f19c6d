/* rp_env — environment maps: ordered as read, names unique.
 *
 * Used for a request's per-command env, the session env in the state
 * document and the executor record, and COMMAND_ENV. Memory: an rp_env_t
 * owns its strings; rp_env_clear releases them and accepts a zeroed map.
 * Thread-safety: no shared state; any thread, one map per thread.
 */
#ifndef RP_ENV_H
#define RP_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_err.h"

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

#endif
