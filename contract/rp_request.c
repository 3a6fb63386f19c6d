/* rp_request — the request document (see rp_request.h). */
#include "rp_request.h"
#include "rp_json.h"
#include "rp_text.h"
#include "rp_ids.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request over RP_REQUEST_MAX is rejected, but up to this size we still
 * parse it to find its ids, so the requester gets a "rejected" result
 * rather than silence. Beyond it we do not even look. */
#define RP_REQUEST_SALVAGE_MAX (4 * RP_REQUEST_MAX)
#define RP_REQUEST_BOM_MSG                                                   \
    "the request starts with a UTF-8 byte-order mark (EF BB BF): send the "  \
    "JSON without one (RFC 8259 section 8.1)"

/* ------------------------------------------------------------------ */
/* request                                                             */
/* ------------------------------------------------------------------ */

enum {
    RQ_V,
    RQ_EXECUTION_ID,
    RQ_SESSION_ID,
    RQ_OP,
    RQ_COMMAND,
    RQ_TIMEOUT_S,
    RQ_ENV,
    RQ_SUBMITTED_AT,
    RQ_RETRY,
    RQ_FILEOP_FIRST, /* the file ops' members (rp_fileop.c checks them) */
    RQ__COUNT = RQ_FILEOP_FIRST + 19
};

static const char *const rp_request_fields[] = {
    "v",       "execution_id", "session_id", "op",
    "command", "timeout_s",    "env",        "submitted_at",
    "retry",
    /* rp_fileop.c's members, so that the unknown-member check passes them */
    "path", "content", "encoding", "mode", "parents", "offset", "length",
    "recursive", "glob", "limit", "name", "type", "pattern", "fixed",
    "ignore_case", "old", "new", "count", "object",
};
_Static_assert(sizeof(rp_request_fields) / sizeof(rp_request_fields[0]) ==
                   RQ__COUNT,
               "one name per field");

rp_err_t rp_request_parse(const char *json, size_t len, rp_request_t *out,
                          char *errstr, size_t errstr_size)
{
    const cJSON *f[RQ__COUNT];
    char ferr[256];
    cJSON *root = NULL;
    rp_err_t err, fields_err;
    int64_t n = 0;
    bool bom;

    memset(out, 0, sizeof(*out));
    out->timeout_s = RP_TIMEOUT_DEFAULT_S;
    if (json && len > RP_REQUEST_SALVAGE_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "request of %zu bytes is over the limit of %d bytes", len,
                      RP_REQUEST_MAX);
        goto out;
    }
    /* A UTF-8 byte-order mark is refused (RFC 8259 §8.1: senders must not
     * add one; Python's json, Go and JavaScript refuse it too), with a
     * message that names it, not "not a JSON object". The ids behind it
     * are still read, so the requester gets its "rejected" result. */
    bom = json && len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0;
    err = rp_json_load(bom ? json + 3 : json, bom ? len - 3 : len,
                       RP_REQUEST_SALVAGE_MAX, "request", &root, errstr,
                       errstr_size);
    if (err && bom)
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID, RP_REQUEST_BOM_MSG);
    if (err)
        goto out;
    fields_err = rp_json_fields(root, "", rp_request_fields, RQ__COUNT, f, ferr,
                               sizeof(ferr));
    /* The ids come first, whatever else is wrong: the worker needs them to
     * address its "rejected" result to the requester. */
    if (f[RQ_EXECUTION_ID])
        rp_json_get_id(f[RQ_EXECUTION_ID], "", out->execution_id, NULL, 0);
    if (f[RQ_SESSION_ID])
        rp_json_get_id(f[RQ_SESSION_ID], "", out->session_id, NULL, 0);

    if (bom) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID, RP_REQUEST_BOM_MSG);
        goto out;
    }
    if (len > RP_REQUEST_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "request of %zu bytes is over the limit of %d bytes", len,
                      RP_REQUEST_MAX);
        goto out;
    }
    if (fields_err) {
        err = rp_errf(errstr, errstr_size, fields_err, "%s", ferr);
        goto out;
    }
    if ((err = rp_json_get_version(f[RQ_V], errstr, errstr_size)) ||
        (err = rp_json_required(f[RQ_EXECUTION_ID], "", "execution_id", errstr,
                               errstr_size)) ||
        (err = rp_json_get_id(f[RQ_EXECUTION_ID], "execution_id",
                             out->execution_id, errstr, errstr_size)) ||
        (err = rp_json_required(f[RQ_SESSION_ID], "", "session_id", errstr,
                               errstr_size)) ||
        (err = rp_json_get_id(f[RQ_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)))
        goto out;

    if (f[RQ_OP]) {
        const char *op = cJSON_IsString(f[RQ_OP]) ? f[RQ_OP]->valuestring : "";

        int kind = rp_fileop_kind(op);

        if (strcmp(op, "exec") == 0) {
            out->op = RP_OP_EXEC;
        } else if (strcmp(op, "close_session") == 0) {
            out->op = RP_OP_CLOSE_SESSION;
        } else if (kind >= 0) {
            out->op = (rp_op_t)(RP_OP_FILEOP_FIRST + kind);
        } else {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "op: must be \"exec\", \"close_session\" or a "
                          "file op (write_file, read_file, list_files, find, "
                          "search, replace_in_file, delete, upload, "
                          "download)");
            goto out;
        }
    }
    for (int i = RQ_FILEOP_FIRST; !rp_op_is_fileop(out->op) && i < RQ__COUNT;
         i++) {
        if (f[i]) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "%s: only file ops take it (op is \"%s\")",
                          rp_request_fields[i],
                          out->op == RP_OP_EXEC ? "exec" : "close_session");
            goto out;
        }
    }
    if (rp_op_is_fileop(out->op)) {
        const char *name =
            rp_fileop_name((rp_fileop_kind_t)(out->op - RP_OP_FILEOP_FIRST));

        /* No command, no shell: nothing of exec's applies. */
        if (f[RQ_COMMAND] || f[RQ_ENV] || f[RQ_RETRY]) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "%s: must be absent when op is \"%s\"",
                          f[RQ_COMMAND] ? "command"
                          : f[RQ_ENV]   ? "env"
                                        : "retry",
                          name);
            goto out;
        }
        err = rp_fileop_parse(root,
                              (rp_fileop_kind_t)(out->op - RP_OP_FILEOP_FIRST),
                              &out->fop, errstr, errstr_size);
        if (err)
            goto out;
    }
    if (out->op == RP_OP_CLOSE_SESSION && f[RQ_COMMAND]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "command: must be absent when op is \"close_session\"");
        goto out;
    }
    if (out->op == RP_OP_EXEC) {
        if (!f[RQ_COMMAND]) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "command: required when op is \"exec\"");
            goto out;
        }
        err = rp_json_dup_str(f[RQ_COMMAND], "", "command", 1, RP_COMMAND_MAX,
                             &out->command, errstr, errstr_size);
        if (err)
            goto out;
    }
    if (f[RQ_TIMEOUT_S]) {
        err = rp_json_get_int(f[RQ_TIMEOUT_S], "", "timeout_s", RP_TIMEOUT_MIN_S,
                             RP_TIMEOUT_MAX_S, &n, errstr, errstr_size);
        if (err)
            goto out;
        out->timeout_s = (int)n;
    }
    if (f[RQ_ENV] && (err = rp_json_get_env(f[RQ_ENV], "env", &out->env,
                                           errstr, errstr_size)))
        goto out;
    if (f[RQ_SUBMITTED_AT]) {
        err = rp_json_get_time(f[RQ_SUBMITTED_AT], "submitted_at",
                              &out->submitted_at_ms, errstr, errstr_size);
        if (err)
            goto out;
        out->has_submitted_at = true;
    }
    if (f[RQ_RETRY]) {
        const char *r = cJSON_IsString(f[RQ_RETRY]) ? f[RQ_RETRY]->valuestring
                                                    : "";

        if (strcmp(r, "never") == 0) {
            out->retry = RP_RETRY_NEVER;
        } else if (strcmp(r, "if-interrupted") == 0) {
            out->retry = RP_RETRY_IF_INTERRUPTED;
        } else {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "retry: must be \"never\" or \"if-interrupted\"");
            goto out;
        }
        if (out->op == RP_OP_CLOSE_SESSION) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "retry: must be absent when op is \"close_session\"");
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    return err;
}

char *rp_request_to_json(const rp_request_t *req)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    ok = ok && rp_json_add_int(root, "v", RP_CONTRACT_VERSION) &&
         rp_json_add_text(root, "execution_id", req->execution_id) &&
         rp_json_add_text(root, "session_id", req->session_id);
    if (ok && req->op == RP_OP_CLOSE_SESSION)
        ok = rp_json_add_text(root, "op", "close_session");
    if (ok && rp_op_is_fileop(req->op))
        ok = rp_json_add_text(root, "op",
                              rp_fileop_name((rp_fileop_kind_t)(
                                  req->op - RP_OP_FILEOP_FIRST))) &&
             rp_fileop_to_json(&req->fop, root);
    if (ok && req->op == RP_OP_EXEC)
        ok = rp_json_add_text(root, "command", req->command ? req->command : "");
    if (ok && req->timeout_s > 0)
        ok = rp_json_add_int(root, "timeout_s", req->timeout_s);
    if (ok && req->env.n > 0)
        ok = rp_json_add_env(root, "env", &req->env);
    if (ok && req->has_submitted_at)
        ok = rp_json_add_time(root, "submitted_at", req->submitted_at_ms);
    if (ok && req->retry == RP_RETRY_IF_INTERRUPTED)
        ok = rp_json_add_text(root, "retry", "if-interrupted");
    return rp_json_finish(root, ok);
}

void rp_request_clear(rp_request_t *req)
{
    if (!req)
        return;
    free(req->command);
    rp_env_clear(&req->env);
    rp_fileop_clear(&req->fop);
    memset(req, 0, sizeof(*req));
    req->timeout_s = RP_TIMEOUT_DEFAULT_S;
}
