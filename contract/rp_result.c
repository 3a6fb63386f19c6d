/* rp_result — the result document and the executor record (see rp_result.h). */
#include "rp_result.h"
#include "rp_fileop.h"
#include "rp_codes.h"
#include "rp_json.h"
#include "rp_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Base64 text of an RP_OUTPUT_MAX_LIMIT-byte output. */
#define RP_RESULT_B64_OUTPUT_MAX (((size_t)RP_OUTPUT_MAX_LIMIT + 2) / 3 * 4)

/* ------------------------------------------------------------------ */
/* result                                                              */
/* ------------------------------------------------------------------ */

static const char *const rp_status_names[] = {
    [RP_STATUS_SUCCEEDED] = "succeeded", [RP_STATUS_FAILED] = "failed",
    [RP_STATUS_TIMED_OUT] = "timed_out", [RP_STATUS_REJECTED] = "rejected",
    [RP_STATUS_ERROR] = "error",
};

#define RP_STATUS_COUNT (sizeof(rp_status_names) / sizeof(rp_status_names[0]))

const char *rp_status_str(rp_status_t st)
{
    return (size_t)st < RP_STATUS_COUNT ? rp_status_names[st] : "error";
}

int rp_status_parse(const char *s, rp_status_t *st)
{
    for (size_t i = 0; s && i < RP_STATUS_COUNT; i++) {
        if (strcmp(s, rp_status_names[i]) == 0) {
            *st = (rp_status_t)i;
            return 0;
        }
    }
    return -1;
}

static bool rp_status_has_error(rp_status_t st)
{
    return st == RP_STATUS_REJECTED || st == RP_STATUS_ERROR;
}

/* error.code: one of RP_CODES, as the schema's enum says. */
static bool rp_result_error_code_valid(const char *code)
{
    return rp_code_parse(code, NULL) == 0;
}

rp_err_t rp_result_set_error(rp_result_t *res, const char *code,
                             const char *message)
{
    char *c, *m;
    size_t n;

    if (!res || !rp_result_error_code_valid(code))
        return RP_ERR_INVALID;
    if (!message)
        message = "";
    n = strlen(message);
    if (n > RP_ERRMSG_MAX)
        n = rp_utf8_trim(message, RP_ERRMSG_MAX);
    if (!(c = strdup(code)) || !(m = malloc(n + 1))) {
        free(c);
        return RP_ERR_NOMEM;
    }
    memcpy(m, message, n);
    m[n] = '\0';
    free(res->error_code);
    free(res->error_message);
    res->error_code = c;
    res->error_message = m;
    return RP_OK;
}

/* One output as JSON text: a NUL-terminated copy (utf-8) or base64. */
static char *rp_result_output_text(const char *data, size_t len, bool base64)
{
    char *s;

    if (!data)
        len = 0;
    if (base64)
        return rp_base64_encode(data ? data : "", len);
    if (!(s = malloc(len + 1)))
        return NULL;
    if (len)
        memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* cJSON copies strings it is given; outputs can be megabytes, so hand it
 * our own copy by reference and free that after printing. */
static bool rp_result_add_ref(cJSON *obj, const char *name, const char *s)
{
    cJSON *item = cJSON_CreateStringReference(s);

    if (!item)
        return false;
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* error.message as the schema allows it: at most RP_ERRMSG_MAX bytes. */
static bool rp_result_add_errmsg(cJSON *obj, const char *msg)
{
    size_t n = strlen(msg);
    char *cut;
    bool ok;

    if (n <= RP_ERRMSG_MAX)
        return rp_json_add_text(obj, "message", msg);
    if (!(cut = strndup(msg, rp_utf8_trim(msg, RP_ERRMSG_MAX))))
        return false;
    ok = rp_json_add_text(obj, "message", cut);
    free(cut);
    return ok;
}

static bool rp_result_add_int_or_null(cJSON *obj, const char *name, bool has,
                                   int v)
{
    return has ? rp_json_add_int(obj, name, v)
               : cJSON_AddNullToObject(obj, name) != NULL;
}

/* Durations come from clocks of different hosts (queue_wait_ms compares
 * the producer's clock with ours), so a small negative value is skew,
 * not a bug worth an unreadable document. */
static int64_t rp_result_nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

/* ------------------------------------------------------------------ */
/* workspace report                                                    */
/* ------------------------------------------------------------------ */

#define RP_RESULT_WS_KEY_MAX 1024

static bool rp_result_ws_code_valid(const char *c)
{
    return c && (!strcmp(c, RP_RESULT_WS_TOO_LARGE) ||
                 !strcmp(c, RP_RESULT_WS_TOO_MANY_FILES) ||
                 !strcmp(c, RP_RESULT_WS_ERROR));
}

void rp_result_ws_clear(rp_result_ws_t *ws)
{
    if (!ws)
        return;
    free(ws->manifest);
    free(ws->root);
    free(ws->code);
    free(ws->message);
    for (size_t i = 0; i < ws->nskipped_paths; i++)
        free(ws->skipped_paths[i]);
    memset(ws, 0, sizeof(*ws));
}

static bool rp_result_ws_error_to_json(cJSON *obj, const char *name,
                                       const rp_result_ws_t *ws)
{
    cJSON *e = cJSON_AddObjectToObject(obj, name);

    return e &&
           rp_json_add_text(e, "code", rp_result_ws_code_valid(ws->code)
                                           ? ws->code
                                           : RP_RESULT_WS_ERROR) &&
           rp_result_add_errmsg(e, ws->message ? ws->message
                                               : "the workspace was not saved");
}

static bool rp_result_ws_to_json(cJSON *root, const rp_result_ws_t *ws,
                                 bool full)
{
    cJSON *o, *arr;
    bool ok;

    if (!full) {
        ok = cJSON_AddBoolToObject(root, "workspace_saved", ws->saved) != NULL;
        if (ok && !ws->saved)
            ok = rp_result_ws_error_to_json(root, "workspace_error", ws);
        return ok;
    }
    ok = (o = cJSON_AddObjectToObject(root, "workspace")) &&
         cJSON_AddBoolToObject(o, "saved", ws->saved);
    if (ok && ws->saved)
        ok = cJSON_AddBoolToObject(o, "unchanged", ws->unchanged) != NULL;
    if (ok && ws->saved && ws->manifest)
        ok = rp_json_add_text(o, "manifest", ws->manifest);
    if (ok && ws->root)
        ok = rp_json_add_text(o, "root", ws->root);
    ok = ok && rp_json_add_int(o, "bytes", (int64_t)ws->bytes) &&
         rp_json_add_int(o, "files", (int64_t)ws->files) &&
         rp_json_add_int(o, "bytes_uploaded", (int64_t)ws->bytes_uploaded) &&
         rp_json_add_int(o, "chunks_uploaded", (int64_t)ws->chunks_uploaded) &&
         rp_json_add_int(o, "bytes_downloaded",
                         (int64_t)ws->bytes_downloaded) &&
         rp_json_add_int(o, "restore_ms", rp_result_nonneg(ws->restore_ms)) &&
         rp_json_add_int(o, "save_ms", rp_result_nonneg(ws->save_ms)) &&
         rp_json_add_int(o, "skipped", (int64_t)ws->skipped);
    if (ok && ws->nskipped_paths) {
        ok = (arr = cJSON_AddArrayToObject(o, "skipped_paths")) != NULL;
        for (size_t i = 0; ok && i < ws->nskipped_paths; i++) {
            cJSON *str = cJSON_CreateString(ws->skipped_paths[i]);

            ok = str && cJSON_AddItemToArray(arr, str);
        }
    }
    if (ok && !ws->saved)
        ok = rp_result_ws_error_to_json(o, "error", ws);
    return ok;
}

static rp_err_t rp_result_ws_get_error(const cJSON *it, const char *where,
                                       rp_result_ws_t *ws, char *errstr,
                                       size_t errstr_size)
{
    static const char *const names[] = {"code", "message"};
    const cJSON *f[2];
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be an object with code and message", where);
    if ((err = rp_json_fields(it, where, names, 2, f, errstr, errstr_size)) ||
        (err = rp_json_required(f[0], where, "code", errstr, errstr_size)) ||
        (err = rp_json_required(f[1], where, "message", errstr, errstr_size)))
        return err;
    if (!cJSON_IsString(f[0]) || !rp_result_ws_code_valid(f[0]->valuestring))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%scode: must be " RP_RESULT_WS_TOO_LARGE ", "
                       RP_RESULT_WS_TOO_MANY_FILES " or " RP_RESULT_WS_ERROR,
                       where);
    if ((err = rp_json_dup_str(f[0], where, "code", 1, 64, &ws->code, errstr,
                               errstr_size)))
        return err;
    return rp_json_dup_str(f[1], where, "message", 0, RP_ERRMSG_MAX,
                           &ws->message, errstr, errstr_size);
}

/* The record's "workspace" object. */
static rp_err_t rp_result_ws_parse(const cJSON *it, rp_result_ws_t *ws,
                                   char *errstr, size_t errstr_size)
{
    enum { W_SAVED, W_UNCHANGED, W_MANIFEST, W_ROOT, W_BYTES, W_FILES,
           W_BUP, W_CUP, W_BDOWN, W_RMS, W_SMS, W_SKIPPED, W_SKIPPED_PATHS,
           W_ERROR, W__COUNT };
    static const char *const names[W__COUNT] = {
        "saved", "unchanged", "manifest", "root", "bytes", "files",
        "bytes_uploaded", "chunks_uploaded", "bytes_downloaded", "restore_ms",
        "save_ms", "skipped", "skipped_paths", "error"};
    uint64_t *nums[] = {&ws->bytes, &ws->files, &ws->bytes_uploaded,
                        &ws->chunks_uploaded, &ws->bytes_downloaded};
    const cJSON *f[W__COUNT], *el;
    int64_t n = 0;
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace: must be an object");
    if ((err = rp_json_fields(it, "workspace.", names, W__COUNT, f, errstr,
                              errstr_size)) ||
        (err = rp_json_required(f[W_SAVED], "workspace.", "saved", errstr,
                                errstr_size)) ||
        (err = rp_json_get_bool(f[W_SAVED], "workspace.saved", &ws->saved,
                                errstr, errstr_size)))
        return err;
    ws->present = ws->full = true;
    if (f[W_UNCHANGED] &&
        (err = rp_json_get_bool(f[W_UNCHANGED], "workspace.unchanged",
                                &ws->unchanged, errstr, errstr_size)))
        return err;
    if (f[W_MANIFEST] &&
        (err = rp_json_dup_str(f[W_MANIFEST], "workspace.", "manifest", 1,
                               RP_RESULT_WS_KEY_MAX, &ws->manifest, errstr,
                               errstr_size)))
        return err;
    if (f[W_ROOT] && ((err = rp_json_dup_str(f[W_ROOT], "workspace.", "root",
                                             1, RP_CWD_MAX, &ws->root, errstr,
                                             errstr_size)) ||
                      (ws->root[0] != '/' &&
                       (err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                                      "workspace.root: must be an absolute "
                                      "path")))))
        return err;
    for (int k = W_BYTES; k <= W_SKIPPED; k++) {
        if (!f[k])
            continue;
        if ((err = rp_json_get_int(f[k], "workspace.", names[k], 0,
                                   RP_JSON_INT_MAX, &n, errstr, errstr_size)))
            return err;
        if (k <= W_BDOWN)
            *nums[k - W_BYTES] = (uint64_t)n;
        else if (k == W_RMS)
            ws->restore_ms = n;
        else if (k == W_SMS)
            ws->save_ms = n;
        else
            ws->skipped = (uint64_t)n;
    }
    if (f[W_SKIPPED_PATHS]) {
        if (!cJSON_IsArray(f[W_SKIPPED_PATHS]) ||
            cJSON_GetArraySize(f[W_SKIPPED_PATHS]) > RP_RESULT_WS_SKIPPED_MAX)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "workspace.skipped_paths: must be an array of at "
                           "most %d strings", RP_RESULT_WS_SKIPPED_MAX);
        cJSON_ArrayForEach(el, f[W_SKIPPED_PATHS]) {
            if ((err = rp_json_dup_str(el, "workspace.", "skipped_paths[]", 1,
                                       RP_CWD_MAX,
                                       &ws->skipped_paths[ws->nskipped_paths],
                                       errstr, errstr_size)))
                return err;
            ws->nskipped_paths++;
        }
    }
    if (ws->saved && f[W_ERROR])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace.error: only when saved is false");
    if (!ws->saved && (f[W_MANIFEST] || f[W_UNCHANGED]))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace.%s: only when saved is true",
                       f[W_MANIFEST] ? "manifest" : "unchanged");
    if (!ws->saved) {
        if ((err = rp_json_required(f[W_ERROR], "workspace.", "error", errstr,
                                    errstr_size)))
            return err;
        return rp_result_ws_get_error(f[W_ERROR], "workspace.error.", ws,
                                      errstr, errstr_size);
    }
    return RP_OK;
}

/* A published result's workspace_saved / workspace_error. */
static rp_err_t rp_result_ws_parse_short(const cJSON *saved,
                                         const cJSON *error,
                                         rp_result_ws_t *ws, char *errstr,
                                         size_t errstr_size)
{
    rp_err_t err;

    if ((err = rp_json_required(saved, "", "workspace_saved", errstr,
                                errstr_size)) ||
        (err = rp_json_get_bool(saved, "workspace_saved", &ws->saved, errstr,
                                errstr_size)))
        return err;
    ws->present = true;
    if (ws->saved && error)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace_error: only when workspace_saved is false");
    if (!ws->saved) {
        if ((err = rp_json_required(error, "", "workspace_error", errstr,
                                    errstr_size)))
            return err;
        return rp_result_ws_get_error(error, "workspace_error.", ws, errstr,
                                      errstr_size);
    }
    return RP_OK;
}

char *rp_result_to_json(const rp_result_t *res, bool include_env)
{
    size_t out_len = res->stdout_data ? res->stdout_len : 0;
    size_t err_len = res->stderr_data ? res->stderr_len : 0;
    /* An out-of-range status is written (and treated) as "error". */
    rp_status_t st = (size_t)res->status < RP_STATUS_COUNT ? res->status
                                                           : RP_STATUS_ERROR;
    char *out_text = NULL, *err_text = NULL, *out = NULL;
    cJSON *root = NULL, *obj;
    bool ok, b64;

    /* One encoding for both, so a reader decodes them the same way. */
    b64 = !rp_utf8_valid(res->stdout_data, out_len) ||
          !rp_utf8_valid(res->stderr_data, err_len);
    out_text = rp_result_output_text(res->stdout_data, out_len, b64);
    err_text = rp_result_output_text(res->stderr_data, err_len, b64);
    root = cJSON_CreateObject();
    ok = out_text && err_text && root;

    ok = ok && rp_json_add_int(root, "v", RP_CONTRACT_VERSION) &&
         rp_json_add_text(root, "execution_id", res->execution_id) &&
         rp_json_add_text(root, "session_id", res->session_id) &&
         rp_json_add_text(root, "status", rp_status_str(st)) &&
         rp_result_add_int_or_null(root, "exit_code", res->has_exit_code,
                                res->exit_code) &&
         rp_result_add_int_or_null(root, "signal", res->has_signal, res->signal) &&
         rp_result_add_ref(root, "stdout", out_text) &&
         rp_result_add_ref(root, "stderr", err_text) &&
         cJSON_AddBoolToObject(root, "stdout_truncated",
                               res->stdout_truncated) &&
         cJSON_AddBoolToObject(root, "stderr_truncated",
                               res->stderr_truncated) &&
         rp_json_add_text(root, "encoding", b64 ? "base64" : "utf-8");
    if (ok && res->cwd)
        ok = rp_json_add_text(root, "cwd", res->cwd);
    if (ok && res->started_at_ms > 0)
        ok = rp_json_add_time(root, "started_at", res->started_at_ms);
    if (ok && res->finished_at_ms > 0)
        ok = rp_json_add_time(root, "finished_at", res->finished_at_ms);
    ok = ok && rp_json_add_int(root, "duration_ms",
                              rp_result_nonneg(res->duration_ms));
    if (ok && res->has_timings) {
        const rp_timings_t *t = &res->timings;

        ok = (obj = cJSON_AddObjectToObject(root, "timings")) &&
             rp_json_add_int(obj, "queue_wait_ms",
                            rp_result_nonneg(t->queue_wait_ms)) &&
             rp_json_add_int(obj, "state_load_ms",
                            rp_result_nonneg(t->state_load_ms)) &&
             rp_json_add_int(obj, "run_ms", rp_result_nonneg(t->run_ms)) &&
             rp_json_add_int(obj, "state_save_ms",
                            rp_result_nonneg(t->state_save_ms));
    }
    /* `error` belongs to rejected/error results and only to them (the
     * schema requires both directions); a missing one is still filled in
     * so the document stays valid and says something. */
    if (ok && (rp_status_has_error(st) ||
               (res->op && st == RP_STATUS_FAILED && res->error_code))) {
        const char *code = rp_result_error_code_valid(res->error_code)
                               ? res->error_code
                               : rp_code_str(RP_CODE_INTERNAL);
        const char *msg = res->error_message ? res->error_message
                                             : "no error message recorded";

        ok = (obj = cJSON_AddObjectToObject(root, "error")) &&
             rp_json_add_text(obj, "code", code) && rp_result_add_errmsg(obj, msg);
    }
    if (ok && res->worker)
        ok = rp_json_add_text(root, "worker", res->worker);
    if (ok && res->reused)
        ok = cJSON_AddTrueToObject(root, "reused") != NULL;
    if (ok && res->ws.present)
        ok = rp_result_ws_to_json(root, &res->ws, include_env);
    if (ok && res->op) {
        ok = rp_json_add_text(root, "op", res->op);
        if (ok && res->op_result) {
            cJSON *o = cJSON_Parse(res->op_result);

            ok = cJSON_IsObject(o) && cJSON_AddItemToObject(root, "op_result", o);
            if (!ok)
                cJSON_Delete(o);
        }
    }
    if (ok && include_env && res->has_state_version) {
        char v[24];

        snprintf(v, sizeof(v), "%" PRIu64, res->state_version);
        ok = rp_json_add_text(root, "state_version", v);
    }
    if (ok && include_env)
        ok = rp_json_add_env(root, "env", &res->env);
    out = rp_json_finish(root, ok);
    free(out_text);
    free(err_text);
    return out;
}

enum {
    RS_V,
    RS_EXECUTION_ID,
    RS_SESSION_ID,
    RS_STATUS,
    RS_EXIT_CODE,
    RS_SIGNAL,
    RS_STDOUT,
    RS_STDERR,
    RS_STDOUT_TRUNCATED,
    RS_STDERR_TRUNCATED,
    RS_ENCODING,
    RS_CWD,
    RS_STARTED_AT,
    RS_FINISHED_AT,
    RS_DURATION_MS,
    RS_TIMINGS,
    RS_ERROR,
    RS_WORKER,
    RS_ENV,
    RS_REUSED,
    RS_WORKSPACE,
    RS_WORKSPACE_SAVED,
    RS_WORKSPACE_ERROR,
    RS_OP,
    RS_OP_RESULT,
    RS_STATE_VERSION,
    RS__COUNT
};

static const char *const rp_result_fields[RS__COUNT] = {
    "v",           "execution_id",     "session_id",       "status",
    "exit_code",   "signal",           "stdout",           "stderr",
    "stdout_truncated", "stderr_truncated", "encoding",     "cwd",
    "started_at",  "finished_at",      "duration_ms",      "timings",
    "error",       "worker",           "env",              "reused",
    "workspace",   "workspace_saved",  "workspace_error",  "op",
    "op_result",   "state_version",
};

/* The members every result carries (rp_result_to_json always writes them). */
static const int rp_result_required[] = {
    RS_V,       RS_EXECUTION_ID, RS_SESSION_ID,       RS_STATUS,
    RS_EXIT_CODE, RS_SIGNAL,     RS_STDOUT,           RS_STDERR,
    RS_STDOUT_TRUNCATED, RS_STDERR_TRUNCATED, RS_ENCODING, RS_DURATION_MS,
};

/* exit_code / signal: null or an integer in [min, max]. */
static rp_err_t rp_result_get_opt_int(const cJSON *it, const char *name, int min,
                                   int max, bool *has, int *out, char *errstr,
                                   size_t errstr_size)
{
    int64_t v = 0;
    rp_err_t err;

    *has = false;
    if (cJSON_IsNull(it))
        return RP_OK;
    if (!cJSON_IsNumber(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be null or an integer from %d to %d", name,
                       min, max);
    if ((err = rp_json_get_int(it, "", name, min, max, &v, errstr, errstr_size)))
        return err;
    *has = true;
    *out = (int)v;
    return RP_OK;
}

static rp_err_t rp_result_get_output(const cJSON *it, const char *name,
                                  bool base64, char **data, size_t *len,
                                  char *errstr, size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err;

    if (!base64) {
        err = rp_json_dup_str(it, "", name, 0, RP_OUTPUT_MAX_LIMIT, data,
                             errstr, errstr_size);
        if (!err)
            *len = strlen(*data);
        return err;
    }
    err = rp_json_get_str(it, "", name, 0, RP_RESULT_B64_OUTPUT_MAX, &s, &n, errstr,
                         errstr_size);
    if (err)
        return err;
    err = rp_base64_decode(s, n, data, len);
    if (err == RP_ERR_NOMEM)
        return rp_errf(errstr, errstr_size, err, "out of memory");
    if (err)
        return rp_errf(errstr, errstr_size, err,
                       "%s: not valid base64 (encoding is \"base64\")", name);
    if (*len > RP_OUTPUT_MAX_LIMIT)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s: longer than %d bytes", name, RP_OUTPUT_MAX_LIMIT);
    return RP_OK;
}

static rp_err_t rp_result_get_timings(const cJSON *it, rp_timings_t *t,
                                   char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"queue_wait_ms", "state_load_ms",
                                        "run_ms", "state_save_ms"};
    int64_t *dst[] = {&t->queue_wait_ms, &t->state_load_ms, &t->run_ms,
                      &t->state_save_ms};
    const cJSON *f[4];
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "timings: must be an object");
    if ((err = rp_json_fields(it, "timings.", names, 4, f, errstr, errstr_size)))
        return err;
    for (size_t k = 0; k < 4; k++) {
        if ((err = rp_json_required(f[k], "timings.", names[k], errstr,
                                   errstr_size)) ||
            (err = rp_json_get_int(f[k], "timings.", names[k], 0, RP_JSON_INT_MAX,
                                  dst[k], errstr, errstr_size)))
            return err;
    }
    return RP_OK;
}

static rp_err_t rp_result_get_error(const cJSON *it, rp_result_t *res,
                                 char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"code", "message"};
    const cJSON *f[2];
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "error: must be an object with code and message");
    if ((err = rp_json_fields(it, "error.", names, 2, f, errstr, errstr_size)) ||
        (err = rp_json_required(f[0], "error.", "code", errstr, errstr_size)) ||
        (err = rp_json_required(f[1], "error.", "message", errstr,
                               errstr_size)))
        return err;
    if (!cJSON_IsString(f[0]) || !rp_result_error_code_valid(f[0]->valuestring))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "error.code: must be one of the codes in "
                       "contract/rp_codes.h");
    if ((err = rp_json_dup_str(f[0], "error.", "code", 1, 64, &res->error_code,
                              errstr, errstr_size)))
        return err;
    return rp_json_dup_str(f[1], "error.", "message", 0, RP_ERRMSG_MAX,
                          &res->error_message, errstr, errstr_size);
}

rp_err_t rp_result_parse(const char *json, size_t len, rp_result_t *out,
                         char *errstr, size_t errstr_size)
{
    const cJSON *f[RS__COUNT];
    cJSON *root = NULL;
    bool b64;
    rp_err_t err;
    int64_t n = 0;

    memset(out, 0, sizeof(*out));
    err = rp_json_load(json, len, RP_RESULT_MAX, "result", &root, errstr,
                      errstr_size);
    if (err)
        goto out;
    err = rp_json_fields(root, "", rp_result_fields, RS__COUNT, f, errstr,
                        errstr_size);
    if (err)
        goto out;
    if ((err = rp_json_get_version(f[RS_V], errstr, errstr_size)))
        goto out;
    for (size_t i = 0; i < sizeof(rp_result_required) / sizeof(int); i++) {
        int k = rp_result_required[i];

        if ((err = rp_json_required(f[k], "", rp_result_fields[k], errstr,
                                   errstr_size)))
            goto out;
    }
    if ((err = rp_json_get_id(f[RS_EXECUTION_ID], "execution_id",
                             out->execution_id, errstr, errstr_size)) ||
        (err = rp_json_get_id(f[RS_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)))
        goto out;
    if (!cJSON_IsString(f[RS_STATUS]) ||
        rp_status_parse(f[RS_STATUS]->valuestring, &out->status) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "status: must be one of succeeded, failed, timed_out, "
                      "rejected, error");
        goto out;
    }
    if ((err = rp_result_get_opt_int(f[RS_EXIT_CODE], "exit_code", 0, 255,
                                  &out->has_exit_code, &out->exit_code, errstr,
                                  errstr_size)) ||
        (err = rp_result_get_opt_int(f[RS_SIGNAL], "signal", 1, 127,
                                  &out->has_signal, &out->signal, errstr,
                                  errstr_size)))
        goto out;
    if (out->status == RP_STATUS_SUCCEEDED &&
        !(out->has_exit_code && out->exit_code == 0)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "exit_code: must be 0 when status is \"succeeded\"");
        goto out;
    }
    if (!cJSON_IsString(f[RS_ENCODING]) ||
        (strcmp(f[RS_ENCODING]->valuestring, "utf-8") != 0 &&
         strcmp(f[RS_ENCODING]->valuestring, "base64") != 0)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "encoding: must be \"utf-8\" or \"base64\"");
        goto out;
    }
    b64 = strcmp(f[RS_ENCODING]->valuestring, "base64") == 0;
    if ((err = rp_result_get_output(f[RS_STDOUT], "stdout", b64, &out->stdout_data,
                                 &out->stdout_len, errstr, errstr_size)) ||
        (err = rp_result_get_output(f[RS_STDERR], "stderr", b64, &out->stderr_data,
                                 &out->stderr_len, errstr, errstr_size)) ||
        (err = rp_json_get_bool(f[RS_STDOUT_TRUNCATED], "stdout_truncated",
                               &out->stdout_truncated, errstr, errstr_size)) ||
        (err = rp_json_get_bool(f[RS_STDERR_TRUNCATED], "stderr_truncated",
                               &out->stderr_truncated, errstr, errstr_size)))
        goto out;
    if (f[RS_CWD] &&
        (err = rp_json_get_cwd(f[RS_CWD], &out->cwd, errstr, errstr_size)))
        goto out;
    if (f[RS_STARTED_AT] &&
        (err = rp_json_get_time(f[RS_STARTED_AT], "started_at",
                               &out->started_at_ms, errstr, errstr_size)))
        goto out;
    if (f[RS_FINISHED_AT] &&
        (err = rp_json_get_time(f[RS_FINISHED_AT], "finished_at",
                               &out->finished_at_ms, errstr, errstr_size)))
        goto out;
    if ((err = rp_json_get_int(f[RS_DURATION_MS], "", "duration_ms", 0,
                              RP_JSON_INT_MAX, &n, errstr, errstr_size)))
        goto out;
    out->duration_ms = n;
    if (f[RS_TIMINGS]) {
        if ((err = rp_result_get_timings(f[RS_TIMINGS], &out->timings, errstr,
                                      errstr_size)))
            goto out;
        out->has_timings = true;
    }
    if (rp_status_has_error(out->status) && !f[RS_ERROR]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "error: required when status is \"%s\"",
                      rp_status_str(out->status));
        goto out;
    }
    if (f[RS_OP]) {
        if ((err = rp_json_dup_str(f[RS_OP], "", "op", 1, 32, &out->op, errstr,
                                   errstr_size)))
            goto out;
        if (rp_fileop_kind(out->op) < 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "op: not a file op");
            goto out;
        }
    }
    if (f[RS_OP_RESULT]) {
        if (!f[RS_OP] || !cJSON_IsObject(f[RS_OP_RESULT])) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "op_result: an object, with op");
            goto out;
        }
        if (!(out->op_result = cJSON_PrintUnformatted(f[RS_OP_RESULT]))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (f[RS_OP] && out->status == RP_STATUS_FAILED && !f[RS_ERROR]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "error: required when a file op failed");
        goto out;
    }
    if (!rp_status_has_error(out->status) && f[RS_ERROR] &&
        !(f[RS_OP] && out->status == RP_STATUS_FAILED)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "error: must be absent when status is \"%s\"",
                      rp_status_str(out->status));
        goto out;
    }
    if (f[RS_ERROR] &&
        (err = rp_result_get_error(f[RS_ERROR], out, errstr, errstr_size)))
        goto out;
    if (f[RS_WORKER] &&
        (err = rp_json_dup_str(f[RS_WORKER], "", "worker", 1, RP_WORKER_NAME_MAX,
                              &out->worker, errstr, errstr_size)))
        goto out;
    if (f[RS_REUSED] && (err = rp_json_get_bool(f[RS_REUSED], "reused",
                                                &out->reused, errstr,
                                                errstr_size)))
        goto out;
    if (f[RS_STATE_VERSION]) {
        const char *v = cJSON_GetStringValue(f[RS_STATE_VERSION]);
        char *end = NULL;

        errno = 0;
        out->state_version = v ? strtoull(v, &end, 10) : 0;
        if (!v || !v[0] || strlen(v) > 20 || *end || errno || v[0] == '-' ||
            v[0] == '+' || v[0] == ' ') {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "state_version: expected a string of decimal digits");
            goto out;
        }
        out->has_state_version = true;
    }
    if (f[RS_ENV]) {
        if ((err = rp_json_get_env(f[RS_ENV], "env", &out->env, errstr,
                                  errstr_size)))
            goto out;
        out->has_env = true;
    }
    if (f[RS_WORKSPACE] && (f[RS_WORKSPACE_SAVED] || f[RS_WORKSPACE_ERROR])) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "workspace: not together with workspace_saved");
        goto out;
    }
    if (f[RS_WORKSPACE])
        err = rp_result_ws_parse(f[RS_WORKSPACE], &out->ws, errstr,
                                 errstr_size);
    else if (f[RS_WORKSPACE_SAVED] || f[RS_WORKSPACE_ERROR])
        err = rp_result_ws_parse_short(f[RS_WORKSPACE_SAVED],
                                       f[RS_WORKSPACE_ERROR], &out->ws, errstr,
                                       errstr_size);
out:
    cJSON_Delete(root);
    return err;
}

void rp_result_clear(rp_result_t *res)
{
    if (!res)
        return;
    free(res->stdout_data);
    free(res->stderr_data);
    free(res->cwd);
    free(res->error_code);
    free(res->error_message);
    free(res->worker);
    rp_env_clear(&res->env);
    rp_result_ws_clear(&res->ws);
    free(res->op);
    free(res->op_result);
    memset(res, 0, sizeof(*res));
}
