/* rp_env — environment maps and their JSON form (COMMAND_ENV) (see rp_env.h). */
#include "rp_env.h"
#include "rp_json.h"
#include "rp_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* environment maps                                                    */
/* ------------------------------------------------------------------ */

static rp_env_var_t *rp_env_find(const rp_env_t *env, const char *name)
{
    for (size_t i = 0; i < env->n; i++)
        if (strcmp(env->vars[i].name, name) == 0)
            return &env->vars[i];
    return NULL;
}

rp_err_t rp_env_set(rp_env_t *env, const char *name, const char *value)
{
    rp_env_var_t *var;
    char *v, *nm;

    if (!env || !name || !value)
        return RP_ERR_INVALID;
    if (!(v = strdup(value)))
        return RP_ERR_NOMEM;
    if ((var = rp_env_find(env, name))) {
        free(var->value);
        var->value = v;
        return RP_OK;
    }
    if (env->n == env->cap) {
        size_t cap = env->cap ? env->cap * 2 : 16;
        rp_env_var_t *vars;

        if (cap > SIZE_MAX / sizeof(*vars) ||
            !(vars = realloc(env->vars, cap * sizeof(*vars)))) {
            free(v);
            return RP_ERR_NOMEM;
        }
        env->vars = vars;
        env->cap = cap;
    }
    if (!(nm = strdup(name))) {
        free(v);
        return RP_ERR_NOMEM;
    }
    env->vars[env->n].name = nm;
    env->vars[env->n].value = v;
    env->n++;
    return RP_OK;
}

const char *rp_env_get(const rp_env_t *env, const char *name)
{
    const rp_env_var_t *var;

    if (!env || !name)
        return NULL;
    var = rp_env_find(env, name);
    return var ? var->value : NULL;
}

void rp_env_unset(rp_env_t *env, const char *name)
{
    rp_env_var_t *var;
    size_t i;

    if (!env || !name || !(var = rp_env_find(env, name)))
        return;
    i = (size_t)(var - env->vars);
    free(var->name);
    free(var->value);
    /* Keep the rest in order: env files and logs read better that way. */
    memmove(&env->vars[i], &env->vars[i + 1],
            (env->n - i - 1) * sizeof(env->vars[0]));
    env->n--;
}

rp_err_t rp_env_copy(rp_env_t *dst, const rp_env_t *src)
{
    rp_err_t err = RP_OK;

    if (!dst || !src)
        return RP_ERR_INVALID;
    for (size_t i = 0; i < src->n && !err; i++)
        err = rp_env_set(dst, src->vars[i].name, src->vars[i].value);
    if (err)
        rp_env_clear(dst);
    return err;
}

void rp_env_clear(rp_env_t *env)
{
    if (!env)
        return;
    for (size_t i = 0; i < env->n; i++) {
        free(env->vars[i].name);
        free(env->vars[i].value);
    }
    free(env->vars);
    env->vars = NULL;
    env->n = env->cap = 0;
}

static bool rp_env_name_char(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

bool rp_env_name_valid(const char *name)
{
    size_t i;

    if (!name || !name[0])
        return false;
    for (i = 0; name[i]; i++)
        if (i >= RP_ENV_NAME_MAX || !rp_env_name_char(name[i], i == 0))
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* env as a standalone JSON object (COMMAND_ENV)                       */
/* ------------------------------------------------------------------ */

rp_err_t rp_env_validate(const rp_env_t *env, const char *what, char *errstr,
                         size_t errstr_size)
{
    char shown[RP_JSON_SHOWN_MAX + 4];

    if (!env)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: missing",
                       what);
    if (env->n > RP_ENV_MAX_VARS)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: more than %d variables", what, RP_ENV_MAX_VARS);
    for (size_t i = 0; i < env->n; i++) {
        const rp_env_var_t *var = &env->vars[i];

        if (!rp_env_name_valid(var->name))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: invalid variable name \"%s\" (must match "
                           "[A-Za-z_][A-Za-z0-9_]*)",
                           what, rp_json_shown(var->name, shown));
        if (strlen(var->value) > RP_ENV_VALUE_MAX)
            return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                           "%s.%s: longer than %d bytes", what, var->name,
                           RP_ENV_VALUE_MAX);
        if (!rp_utf8_valid(var->value, strlen(var->value)))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s.%s: not valid UTF-8", what, var->name);
    }
    return RP_OK;
}

char *rp_env_to_json(const rp_env_t *env)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    for (size_t i = 0; ok && env && i < env->n; i++)
        ok = rp_json_add_text(root, env->vars[i].name, env->vars[i].value);
    return rp_json_finish(root, ok);
}

rp_err_t rp_env_parse_json(const char *json, size_t len, rp_env_t *out,
                           const char *what, char *errstr, size_t errstr_size)
{
    cJSON *root = NULL;
    rp_err_t err;

    /* An env object can never be larger than the request it came from. */
    err = rp_json_load(json, len, RP_REQUEST_MAX, what, &root, errstr,
                      errstr_size);
    if (err == RP_ERR_INVALID)
        err = rp_errf(errstr, errstr_size, err, "%s: not a JSON object", what);
    if (!err)
        err = rp_json_get_env(root, what, out, errstr, errstr_size);
    cJSON_Delete(root);
    return err;
}
