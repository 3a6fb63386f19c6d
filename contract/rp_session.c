/* rp_session — the session state document (see rp_session.h). */
#include "rp_session.h"
#include "rp_json.h"
#include "rp_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* session state                                                       */
/* ------------------------------------------------------------------ */

enum {
    SS_V,
    SS_SESSION_ID,
    SS_CWD,
    SS_ENV,
    SS_CREATED_AT,
    SS_UPDATED_AT,
    SS_EXECUTION_COUNT,
    SS_LAST_EXECUTION_ID,
    SS__COUNT
};

static const char *const rp_session_fields[SS__COUNT] = {
    "v",          "session_id", "cwd",             "env",
    "created_at", "updated_at", "execution_count", "last_execution_id",
};

char *rp_session_to_json(const rp_session_t *s)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    ok = ok && rp_json_add_int(root, "v", RP_CONTRACT_VERSION) &&
         rp_json_add_text(root, "session_id", s->session_id);
    if (ok && s->cwd)
        ok = rp_json_add_text(root, "cwd", s->cwd);
    ok = ok && rp_json_add_env(root, "env", &s->env) &&
         rp_json_add_time(root, "created_at", s->created_at_ms) &&
         rp_json_add_time(root, "updated_at", s->updated_at_ms) &&
         rp_json_add_int(root, "execution_count", s->execution_count);
    if (ok && s->last_execution_id[0])
        ok = rp_json_add_text(root, "last_execution_id", s->last_execution_id);
    return rp_json_finish(root, ok);
}

rp_err_t rp_session_parse(const char *json, size_t len, rp_session_t *out,
                          char *errstr, size_t errstr_size)
{
    const cJSON *f[SS__COUNT];
    cJSON *root = NULL;
    rp_err_t err;

    memset(out, 0, sizeof(*out));
    err = rp_json_load(json, len, RP_STATE_DOC_MAX, "session state", &root,
                      errstr, errstr_size);
    if (err)
        goto out;
    if ((err = rp_json_fields(root, "", rp_session_fields, SS__COUNT, f, errstr,
                             errstr_size)) ||
        (err = rp_json_get_version(f[SS_V], errstr, errstr_size)) ||
        (err = rp_json_required(f[SS_SESSION_ID], "", "session_id", errstr,
                               errstr_size)) ||
        (err = rp_json_get_id(f[SS_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)) ||
        (err = rp_json_required(f[SS_ENV], "", "env", errstr, errstr_size)) ||
        (err = rp_json_required(f[SS_CREATED_AT], "", "created_at", errstr,
                               errstr_size)) ||
        (err = rp_json_required(f[SS_UPDATED_AT], "", "updated_at", errstr,
                               errstr_size)) ||
        (err = rp_json_required(f[SS_EXECUTION_COUNT], "", "execution_count",
                               errstr, errstr_size)))
        goto out;
    if (f[SS_CWD] &&
        (err = rp_json_get_cwd(f[SS_CWD], &out->cwd, errstr, errstr_size)))
        goto out;
    if ((err = rp_json_get_env(f[SS_ENV], "env", &out->env, errstr,
                              errstr_size)) ||
        (err = rp_json_get_time(f[SS_CREATED_AT], "created_at",
                               &out->created_at_ms, errstr, errstr_size)) ||
        (err = rp_json_get_time(f[SS_UPDATED_AT], "updated_at",
                               &out->updated_at_ms, errstr, errstr_size)) ||
        (err = rp_json_get_int(f[SS_EXECUTION_COUNT], "", "execution_count", 0,
                              RP_JSON_INT_MAX, &out->execution_count, errstr,
                              errstr_size)))
        goto out;
    if (f[SS_LAST_EXECUTION_ID] &&
        (err = rp_json_get_id(f[SS_LAST_EXECUTION_ID], "last_execution_id",
                             out->last_execution_id, errstr, errstr_size)))
        goto out;
out:
    cJSON_Delete(root);
    return err;
}

void rp_session_clear(rp_session_t *s)
{
    if (!s)
        return;
    free(s->cwd);
    rp_env_clear(&s->env);
    memset(s, 0, sizeof(*s));
}
