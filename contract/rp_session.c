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
    SS_WORKSPACE,
    SS__COUNT
};

static const char *const rp_session_fields[SS__COUNT] = {
    "v",          "session_id", "cwd",             "env",
    "created_at", "updated_at", "execution_count", "last_execution_id",
    "workspace",
};

/* A manifest key: workspaces/... within the store's key rules. */
#define RP_SESSION_WS_KEY_MAX 1024

static bool rp_session_ws_present(const rp_session_ws_t *ws)
{
    return ws->manifest || ws->root;
}

static bool rp_session_ws_to_json(cJSON *root, const rp_session_ws_t *ws)
{
    cJSON *o = cJSON_AddObjectToObject(root, "workspace");
    bool ok = o != NULL;

    if (ok && ws->manifest)
        ok = rp_json_add_text(o, "manifest", ws->manifest) &&
             rp_json_add_text(o, "execution_id", ws->execution_id) &&
             rp_json_add_int(o, "bytes", (int64_t)ws->bytes) &&
             rp_json_add_int(o, "files", (int64_t)ws->files) &&
             rp_json_add_time(o, "saved_at", ws->saved_at_ms);
    if (ok && ws->root)
        ok = rp_json_add_text(o, "root", ws->root);
    return ok;
}

static rp_err_t rp_session_ws_parse(const cJSON *it, rp_session_ws_t *ws,
                                    char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"manifest", "execution_id", "bytes",
                                        "files",    "saved_at",     "root"};
    const cJSON *f[6];
    int64_t n = 0;
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace: must be an object");
    if ((err = rp_json_fields(it, "workspace.", names, 6, f, errstr,
                              errstr_size)))
        return err;
    if (f[0]) {
        for (int k = 1; k <= 4; k++)
            if ((err = rp_json_required(f[k], "workspace.", names[k], errstr,
                                        errstr_size)))
                return err;
        if ((err = rp_json_dup_str(f[0], "workspace.", "manifest", 1,
                                   RP_SESSION_WS_KEY_MAX, &ws->manifest,
                                   errstr, errstr_size)) ||
            (err = rp_json_get_id(f[1], "workspace.execution_id",
                                  ws->execution_id, errstr, errstr_size)) ||
            (err = rp_json_get_int(f[2], "workspace.", "bytes", 0,
                                   RP_JSON_INT_MAX, &n, errstr, errstr_size)))
            return err;
        ws->bytes = (uint64_t)n;
        if ((err = rp_json_get_int(f[3], "workspace.", "files", 0,
                                   RP_JSON_INT_MAX, &n, errstr, errstr_size)))
            return err;
        ws->files = (uint64_t)n;
        if ((err = rp_json_get_time(f[4], "workspace.saved_at",
                                    &ws->saved_at_ms, errstr, errstr_size)))
            return err;
    } else {
        for (int k = 1; k <= 4; k++)
            if (f[k])
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "workspace.%s: only with workspace.manifest",
                               names[k]);
    }
    if (f[5] && (err = rp_json_dup_str(f[5], "workspace.", "root", 1,
                                       RP_CWD_MAX, &ws->root, errstr,
                                       errstr_size)))
        return err;
    if (ws->root && ws->root[0] != '/')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace.root: must be an absolute path");
    return RP_OK;
}

rp_err_t rp_session_ws_copy(rp_session_ws_t *dst, const rp_session_ws_t *src)
{
    rp_session_ws_t n;

    memset(&n, 0, sizeof(n));
    if (src) {
        n = *src;
        n.manifest = src->manifest ? strdup(src->manifest) : NULL;
        n.root = src->root ? strdup(src->root) : NULL;
        if ((src->manifest && !n.manifest) || (src->root && !n.root)) {
            free(n.manifest);
            free(n.root);
            return RP_ERR_NOMEM;
        }
    }
    rp_session_ws_clear(dst);
    *dst = n;
    return RP_OK;
}

void rp_session_ws_clear(rp_session_ws_t *ws)
{
    if (!ws)
        return;
    free(ws->manifest);
    free(ws->root);
    memset(ws, 0, sizeof(*ws));
}

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
    if (ok && rp_session_ws_present(&s->workspace))
        ok = rp_session_ws_to_json(root, &s->workspace);
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
    if (f[SS_WORKSPACE] &&
        (err = rp_session_ws_parse(f[SS_WORKSPACE], &out->workspace, errstr,
                                   errstr_size)))
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
    rp_session_ws_clear(&s->workspace);
    memset(s, 0, sizeof(*s));
}
