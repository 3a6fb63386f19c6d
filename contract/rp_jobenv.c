/* rp_jobenv — the executor's environment contract (see rp_jobenv.h).
 *
 * build and parse share one set of checks, so whatever a backend hands a
 * job is something the executor will accept.
 */
#include "rp_jobenv.h"
#include "rp_layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>


#define RP_JOBENV_ID_RULE "must be 1 to 128 characters of [A-Za-z0-9._:-]"

/* Checks shared by build and parse; each names the variable. */

static rp_err_t rp_jobenv_check_id(const char *var, const char *id,
                                   char *errstr, size_t errstr_size)
{
    if (!id || !rp_id_valid(id, strnlen(id, RP_ID_MAX + 1)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: " RP_JOBENV_ID_RULE, var);
    return RP_OK;
}

/* A required string of 1..max bytes. */
static rp_err_t rp_jobenv_check_str(const char *var, const char *s, size_t max,
                                    char *errstr, size_t errstr_size)
{
    if (!s || !s[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: required, must not be empty", var);
    if (strnlen(s, max + 1) > max)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: longer than %zu bytes", var, max);
    return RP_OK;
}

static rp_err_t rp_jobenv_check_spec(const rp_jobspec_t *spec, char *errstr,
                                     size_t errstr_size)
{
    rp_err_t err;

    if ((err = rp_jobenv_check_id("EXECUTION_ID", spec->execution_id, errstr,
                                  errstr_size)) ||
        (err = rp_jobenv_check_id("SESSION_ID", spec->session_id, errstr,
                                  errstr_size)) ||
        (err = rp_jobenv_check_str("COMMAND", spec->command, RP_COMMAND_MAX,
                                   errstr, errstr_size)) ||
        (err = rp_jobenv_check_str("RUNPOOL_STATE_URL", spec->state_url,
                                   RP_STATE_URL_MAX - 1, errstr, errstr_size)))
        return err;
    if (spec->timeout_s < RP_TIMEOUT_MIN_S ||
        spec->timeout_s > RP_TIMEOUT_MAX_S)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "TIMEOUT: must be an integer from %d to %d",
                       RP_TIMEOUT_MIN_S, RP_TIMEOUT_MAX_S);
    if (spec->output_max > RP_OUTPUT_MAX_LIMIT)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "RUNPOOL_OUTPUT_MAX: must be an integer from 1 to %d",
                       RP_OUTPUT_MAX_LIMIT);
    if (spec->default_cwd &&
        (err = rp_jobenv_check_str("RUNPOOL_DEFAULT_CWD", spec->default_cwd,
                                   RP_CWD_MAX, errstr, errstr_size)))
        return err;
    if (spec->attempt < 0 || spec->attempt > RP_JOBENV_ATTEMPT_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "RUNPOOL_ATTEMPT: must be an integer from 1 to %d",
                       RP_JOBENV_ATTEMPT_MAX);
    return rp_env_validate(&spec->env, "COMMAND_ENV", errstr, errstr_size);
}

rp_err_t rp_jobenv_build(const rp_jobspec_t *spec, rp_env_t *out, char *errstr,
                         size_t errstr_size)
{
    char num[32];
    char *env_json = NULL;
    rp_err_t err;

    if (!spec || !out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_jobenv_build: no spec");
    if ((err = rp_jobenv_check_spec(spec, errstr, errstr_size)))
        return err;
    /* Only when there is something to say: an empty object would just be
     * one more thing the executor has to parse. */
    if (spec->env.n > 0 && !(env_json = rp_env_to_json(&spec->env))) {
        err = RP_ERR_NOMEM;
        goto out;
    }
    /* Each variable fits, but together they might not (parse would say). */
    if (env_json && strlen(env_json) > RP_JOBENV_COMMAND_ENV_MAX) {
        free(env_json);
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "COMMAND_ENV: longer than %d bytes",
                       RP_JOBENV_COMMAND_ENV_MAX);
    }
    snprintf(num, sizeof(num), "%d", spec->timeout_s);
    if ((err = rp_env_set(out, "EXECUTION_ID", spec->execution_id)) ||
        (err = rp_env_set(out, "SESSION_ID", spec->session_id)) ||
        (err = rp_env_set(out, "COMMAND", spec->command)) ||
        (err = rp_env_set(out, "TIMEOUT", num)) ||
        (err = rp_env_set(out, "RUNPOOL_STATE_URL", spec->state_url)))
        goto out;
    if (env_json && (err = rp_env_set(out, "COMMAND_ENV", env_json)))
        goto out;
    if (spec->output_max > 0) {
        snprintf(num, sizeof(num), "%zu", spec->output_max);
        if ((err = rp_env_set(out, "RUNPOOL_OUTPUT_MAX", num)))
            goto out;
    }
    if (spec->default_cwd &&
        (err = rp_env_set(out, "RUNPOOL_DEFAULT_CWD", spec->default_cwd)))
        goto out;
    if (spec->attempt > 1) {
        snprintf(num, sizeof(num), "%d", spec->attempt);
        if ((err = rp_env_set(out, "RUNPOOL_ATTEMPT", num)))
            goto out;
    }
out:
    free(env_json);
    if (err)
        rp_errf(errstr, errstr_size, err, "building the job environment: %s",
                rp_err_str(err));
    return err;
}

/* A decimal integer in [min, max]: digits only, no sign, no spaces. */
static rp_err_t rp_jobenv_parse_int(const char *var, const char *s, long min,
                                    long max, long *out, char *errstr,
                                    size_t errstr_size)
{
    long v = 0;
    size_t i;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (s[i] - '0');
        if (v > max)
            break;
    }
    if (i == 0 || s[i] != '\0' || v < min || v > max)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be an integer from %ld to %ld", var, min, max);
    *out = v;
    return RP_OK;
}

/* A copy of a required string variable of 1..max bytes. */
static rp_err_t rp_jobenv_dup(const char *var, const char *s, size_t max,
                              char **out, char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_jobenv_check_str(var, s, max, errstr, errstr_size);

    if (err)
        return err;
    if (!(*out = strdup(s)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

/* RUNPOOL_REQUEST_REF: only this execution's own document may be named,
 * so a job environment cannot make the executor read another object. */
static rp_err_t rp_jobenv_parse_ref(rp_jobspec_t *spec, const char *ref,
                                    const char *command_env, char *errstr,
                                    size_t errstr_size)
{
    char want[RP_STATE_KEY_MAX + 1], att[RP_STATE_KEY_MAX + 1];
    bool ok = !strcmp(ref, RP_JOBENV_REQUEST_STDIN);

    rp_jobenv_request_key(spec->execution_id, want, sizeof(want));
    ok = ok || (want[0] && !strcmp(ref, want));
    /* A claim record of this execution: attempt-{n}.json, n as written. */
    for (int n = 1; !ok && want[0] && n <= RP_JOBENV_REF_ATTEMPT_MAX; n++) {
        rp_jobenv_attempt_key(spec->execution_id, n, att, sizeof(att));
        ok = att[0] && !strcmp(ref, att);
    }
    if (!ok)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       RP_JOBENV_REQUEST_REF ": must be %s, an attempt-{n}.json "
                       "of the same execution or "
                       RP_JOBENV_REQUEST_STDIN " (standard input)", want);
    if (command_env && command_env[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "COMMAND_ENV: must not be set with "
                       RP_JOBENV_REQUEST_REF " (the document holds it)");
    if (!(spec->request_ref = strdup(ref)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

rp_err_t rp_jobenv_parse(const char *(*lookup)(const char *name, void *opaque),
                         void *opaque, rp_jobspec_t *spec, char *errstr,
                         size_t errstr_size)
{
    const char *eid, *sid, *v, *ref;
    rp_err_t err;
    long n;

    if (!spec)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_jobenv_parse: no spec");
    memset(spec, 0, sizeof(*spec));
    if (!lookup)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_jobenv_parse: no lookup function");
    eid = lookup("EXECUTION_ID", opaque);
    sid = lookup("SESSION_ID", opaque);
    /* Each id is kept when valid, whatever else is wrong: see the header. */
    if (!rp_jobenv_check_id("EXECUTION_ID", eid, NULL, 0))
        memcpy(spec->execution_id, eid, strlen(eid) + 1);
    if (!rp_jobenv_check_id("SESSION_ID", sid, NULL, 0))
        memcpy(spec->session_id, sid, strlen(sid) + 1);
    if ((err = rp_jobenv_check_id("EXECUTION_ID", eid, errstr, errstr_size)) ||
        (err = rp_jobenv_check_id("SESSION_ID", sid, errstr, errstr_size)))
        goto out;
    v = lookup("COMMAND", opaque);
    ref = lookup(RP_JOBENV_REQUEST_REF, opaque);
    if ((!v || !v[0]) && ref && ref[0]) {
        if ((err = rp_jobenv_parse_ref(spec, ref, lookup("COMMAND_ENV", opaque),
                                       errstr, errstr_size)))
            goto out;
    } else if ((err = rp_jobenv_dup("COMMAND", v, RP_COMMAND_MAX,
                                    &spec->command, errstr, errstr_size))) {
        goto out;
    }

    v = lookup("TIMEOUT", opaque);
    if (!v) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID, "TIMEOUT: required");
        goto out;
    }
    if ((err = rp_jobenv_parse_int("TIMEOUT", v, RP_TIMEOUT_MIN_S,
                                   RP_TIMEOUT_MAX_S, &n, errstr, errstr_size)))
        goto out;
    spec->timeout_s = (int)n;

    if ((err = rp_jobenv_dup("RUNPOOL_STATE_URL",
                             lookup("RUNPOOL_STATE_URL", opaque),
                             RP_STATE_URL_MAX - 1, &spec->state_url, errstr,
                             errstr_size)))
        goto out;

    v = lookup("COMMAND_ENV", opaque);
    if (v && v[0]) {
        size_t len = strnlen(v, RP_JOBENV_COMMAND_ENV_MAX + 1);

        if (len > RP_JOBENV_COMMAND_ENV_MAX) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          "COMMAND_ENV: longer than %d bytes",
                          RP_JOBENV_COMMAND_ENV_MAX);
            goto out;
        }
        if ((err = rp_env_parse_json(v, len, &spec->env, "COMMAND_ENV", errstr,
                                     errstr_size)))
            goto out;
    }

    v = lookup("RUNPOOL_OUTPUT_MAX", opaque);
    if (v && v[0]) {
        if ((err = rp_jobenv_parse_int("RUNPOOL_OUTPUT_MAX", v, 1,
                                       RP_OUTPUT_MAX_LIMIT, &n, errstr,
                                       errstr_size)))
            goto out;
        spec->output_max = (size_t)n;
    }

    v = lookup("RUNPOOL_DEFAULT_CWD", opaque);
    if (v && v[0] &&
        (err = rp_jobenv_dup("RUNPOOL_DEFAULT_CWD", v, RP_CWD_MAX,
                             &spec->default_cwd, errstr, errstr_size)))
        goto out;

    v = lookup("RUNPOOL_ATTEMPT", opaque);
    spec->attempt = 1;
    if (v && v[0]) {
        if ((err = rp_jobenv_parse_int("RUNPOOL_ATTEMPT", v, 1,
                                       RP_JOBENV_ATTEMPT_MAX, &n, errstr,
                                       errstr_size)))
            goto out;
        spec->attempt = (int)n;
    }
out:
    return err;
}

void rp_jobenv_request_key(const char *execution_id, char *out,
                           size_t out_size)
{
    rp_layout_execution_key(execution_id, "request.json", out, out_size);
}

void rp_jobenv_attempt_key(const char *execution_id, int n, char *out,
                           size_t out_size)
{
    char file[32];

    if (n < 1 || n > RP_JOBENV_REF_ATTEMPT_MAX) {
        if (out_size)
            out[0] = '\0';
        return;
    }
    snprintf(file, sizeof(file), "attempt-%d.json", n);
    rp_layout_execution_key(execution_id, file, out, out_size);
}

rp_err_t rp_jobenv_request_json(const rp_jobspec_t *spec, char **out,
                                char *errstr, size_t errstr_size)
{
    cJSON *doc = cJSON_CreateObject(), *env = NULL;
    rp_err_t err = RP_ERR_NOMEM;

    *out = NULL;
    if (!doc || !cJSON_AddStringToObject(doc, "command",
                                         spec->command ? spec->command : "") ||
        !(env = cJSON_AddObjectToObject(doc, "env")))
        goto out;
    for (size_t i = 0; i < spec->env.n; i++)
        if (!cJSON_AddStringToObject(env, spec->env.vars[i].name,
                                     spec->env.vars[i].value))
            goto out;
    if ((*out = cJSON_PrintUnformatted(doc)))
        err = RP_OK;
out:
    cJSON_Delete(doc);
    if (err)
        rp_errf(errstr, errstr_size, err, "request document: out of memory");
    return err;
}

rp_err_t rp_jobenv_use_request_ref(rp_env_t *env, const char *execution_id,
                                   char *errstr, size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX + 1];

    rp_jobenv_request_key(execution_id, key, sizeof(key));
    if (!key[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "EXECUTION_ID: " RP_JOBENV_ID_RULE);
    rp_env_unset(env, "COMMAND");
    rp_env_unset(env, "COMMAND_ENV");
    if (rp_env_set(env, RP_JOBENV_REQUEST_REF, key) != RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

rp_err_t rp_jobenv_use_attempt_ref(rp_env_t *env, const char *execution_id,
                                   int n, char *errstr, size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX + 1];

    rp_jobenv_attempt_key(execution_id, n, key, sizeof(key));
    if (!key[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "EXECUTION_ID: " RP_JOBENV_ID_RULE " (attempt %d)", n);
    rp_env_unset(env, "COMMAND");
    rp_env_unset(env, "COMMAND_ENV");
    if (rp_env_set(env, RP_JOBENV_REQUEST_REF, key) != RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

rp_err_t rp_jobenv_use_request_stdin(rp_env_t *env, char *errstr,
                                     size_t errstr_size)
{
    rp_env_unset(env, "COMMAND");
    rp_env_unset(env, "COMMAND_ENV");
    if (rp_env_set(env, RP_JOBENV_REQUEST_REF, RP_JOBENV_REQUEST_STDIN) !=
        RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    return RP_OK;
}

rp_err_t rp_jobenv_load_request(rp_jobspec_t *spec, const char *json,
                                size_t len, char *errstr, size_t errstr_size)
{
    cJSON *doc = NULL, *req, *cmd, *env, *v;
    rp_env_t parsed = {0};
    rp_err_t err = RP_ERR_INVALID;

    if (!json || len > RP_JOBENV_REF_DOC_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      RP_JOBENV_REQUEST_REF ": document longer than %d bytes",
                      RP_JOBENV_REQUEST_DOC_MAX);
        goto out;
    }
    doc = cJSON_ParseWithLength(json, len);
    /* A claim record carries the document as its "request" member. */
    req = cJSON_GetObjectItemCaseSensitive(doc, "request");
    if (!req && len > RP_JOBENV_REQUEST_DOC_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      RP_JOBENV_REQUEST_REF ": document longer than %d bytes",
                      RP_JOBENV_REQUEST_DOC_MAX);
        goto out;
    }
    if (!req)
        req = doc;
    cmd = cJSON_GetObjectItemCaseSensitive(req, "command");
    env = cJSON_GetObjectItemCaseSensitive(req, "env");
    if (!cJSON_IsObject(doc) || !cJSON_IsObject(req) || !cJSON_IsString(cmd) ||
        (env && !cJSON_IsObject(env))) {
        rp_errf(errstr, errstr_size, err,
                RP_JOBENV_REQUEST_REF ": not a request document "
                "({\"command\": string, \"env\": object})");
        goto out;
    }
    if ((err = rp_jobenv_check_str(RP_JOBENV_REQUEST_REF ": command",
                                   cmd->valuestring, RP_COMMAND_MAX, errstr,
                                   errstr_size)))
        goto out;
    cJSON_ArrayForEach(v, env) {
        if (!cJSON_IsString(v)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          RP_JOBENV_REQUEST_REF ": env.%.64s: must be a string",
                          v->string ? v->string : "?");
            goto out;
        }
        if (parsed.n >= RP_ENV_MAX_VARS) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          RP_JOBENV_REQUEST_REF ": env: more than %d variables",
                          RP_ENV_MAX_VARS);
            goto out;
        }
        if ((err = rp_env_set(&parsed, v->string, v->valuestring))) {
            rp_errf(errstr, errstr_size, err, RP_JOBENV_REQUEST_REF ": env: %s",
                    rp_err_str(err));
            goto out;
        }
    }
    if ((err = rp_env_validate(&parsed, RP_JOBENV_REQUEST_REF ": env", errstr,
                               errstr_size)))
        goto out;
    free(spec->command);
    if (!(spec->command = strdup(cmd->valuestring))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    rp_env_clear(&spec->env);
    spec->env = parsed;
    memset(&parsed, 0, sizeof(parsed));
out:
    rp_env_clear(&parsed);
    cJSON_Delete(doc);
    return err;
}

void rp_jobspec_clear(rp_jobspec_t *spec)
{
    if (!spec)
        return;
    free(spec->command);
    free(spec->request_ref);
    free(spec->state_url);
    free(spec->default_cwd);
    rp_env_clear(&spec->env);
    memset(spec, 0, sizeof(*spec));
}
