/* rp_fileops — file ops on the workspace snapshot (see rp_fileops.h). */
#include "rp_fileops.h"
#include "rp_worker_int.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_json.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_text.h"
#include "rp_time.h"
#include "rp_ws.h"

/* Room the rest of a published result takes beside op_result. */
#define RP_FILEOPS_HEADROOM (16 * 1024)
/* op_result at least this big whatever --result-max-bytes says. */
#define RP_FILEOPS_BUDGET_MIN (4 * 1024)
/* JSON bytes an entry takes beside its path (type, size, mode, mtime). */
#define RP_FILEOPS_ENTRY_COST 96
/* replace_in_file reads the whole file: at most this big. */
#define RP_FILEOPS_REPLACE_FILE_MAX (16 * 1024 * 1024)

/* What an op did: done, failed as the requester's doing (a result of
 * status failed with a code), or runpool's failure (status error). */
typedef enum { FOP_OK, FOP_FAILED, FOP_ERROR } fop_rc_t;

typedef struct fop {
    rp_job_t *job;
    rp_worker_t *w;
    rp_state_t *st;
    const rp_fileop_t *op;
    rp_fileop_kind_t kind;
    const char *name;
    char norm[RP_WS_PATH_MAX + 1]; /* the path, normalised; "" = root */
    rp_ws_manifest_t *m;           /* the session's current; NULL = empty */
    rp_ws_manifest_t *nm;          /* a mutating op's new snapshot */
    cJSON *res;                    /* op_result */
    size_t budget;                 /* op_result bytes allowed */
    rp_code_t code;                /* FOP_FAILED / FOP_ERROR: why */
    char msg[RP_ERRMSG_MAX];
} fop_t;

static fop_rc_t fop_say(fop_t *f, fop_rc_t rc, rp_code_t code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static fop_rc_t fop_say(fop_t *f, fop_rc_t rc, rp_code_t code,
                        const char *fmt, ...)
{
    va_list ap;

    f->code = code;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
    return rc;
}

#define FOP_FAIL(f, code, ...) fop_say((f), FOP_FAILED, (code), __VA_ARGS__)
#define FOP_ERR(f, code, ...) fop_say((f), FOP_ERROR, (code), __VA_ARGS__)

bool rp_fileops_records(const rp_request_t *req)
{
    return rp_op_is_fileop(req->op) &&
           rp_fileop_mutates((rp_fileop_kind_t)(req->op - RP_OP_FILEOP_FIRST));
}

/* ------------------------------------------------------------------ */
/* Paths                                                               */

/* Shown paths are at most this long in messages. */
static const char *fop_shown(const char *p)
{
    return p[0] ? p : ".";
}

/* Check every directory above norm in the snapshot: none may be a
 * symlink (file ops never follow one: its target may be outside the
 * workspace) or a file. final_link: may norm itself be a symlink (delete
 * removes the link). Missing parents are the op's business. */
static fop_rc_t fop_check_parents(fop_t *f, bool final_link)
{
    char p[RP_WS_PATH_MAX + 1];
    const rp_ws_entry_t *e;
    size_t n = strlen(f->norm);

    memcpy(p, f->norm, n + 1);
    for (size_t i = 0; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        e = f->m && p[0] ? rp_ws_manifest_find(f->m, p) : NULL;
        if (e && e->type == 'l' && (i < n || !final_link))
            return FOP_FAIL(f, RP_CODE_INVALID_PATH,
                            "%s: %s is a symlink; file ops do not follow "
                            "symlinks", f->name, p);
        if (e && e->type == 'f' && i < n)
            return FOP_FAIL(f, RP_CODE_NOT_A_DIRECTORY,
                            "%s: %s is a file, not a directory", f->name, p);
        if (i < n)
            p[i] = '/';
    }
    return FOP_OK;
}

/* The entry at norm (after fop_check_parents); NULL for the root or a
 * missing path. */
static const rp_ws_entry_t *fop_entry(const fop_t *f)
{
    return f->m && f->norm[0] ? rp_ws_manifest_find(f->m, f->norm) : NULL;
}

/* Is path below dir ("" = root)? direct: a child, not a deeper one. */
static bool fop_below(const char *dir, const char *path, bool direct)
{
    size_t n = strlen(dir);

    if (n && (strncmp(path, dir, n) || path[n] != '/'))
        return false;
    if (n)
        path += n + 1;
    return !direct || !strchr(path, '/');
}

static const char *fop_base(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* A directory op's starting point: the root, or a directory entry. */
static fop_rc_t fop_need_dir(fop_t *f)
{
    const rp_ws_entry_t *e;
    fop_rc_t rc = fop_check_parents(f, false);

    if (rc != FOP_OK || !f->norm[0])
        return rc;
    if (!(e = fop_entry(f)))
        return FOP_FAIL(f, RP_CODE_NOT_FOUND, "%s: %s: no such directory",
                        f->name, f->norm);
    if (e->type != 'd')
        return FOP_FAIL(f, RP_CODE_NOT_A_DIRECTORY, "%s: %s is not a directory",
                        f->name, f->norm);
    return FOP_OK;
}

/* A file op's file: an existing regular file, not a symlink. */
static fop_rc_t fop_need_file(fop_t *f, const rp_ws_entry_t **out)
{
    const rp_ws_entry_t *e;
    fop_rc_t rc = fop_check_parents(f, false);

    if (rc != FOP_OK)
        return rc;
    if (!f->norm[0])
        return FOP_FAIL(f, RP_CODE_IS_A_DIRECTORY,
                        "%s: the workspace root is a directory", f->name);
    if (!(e = fop_entry(f)))
        return FOP_FAIL(f, RP_CODE_NOT_FOUND, "%s: %s: no such file", f->name,
                        f->norm);
    if (e->type == 'd')
        return FOP_FAIL(f, RP_CODE_IS_A_DIRECTORY, "%s: %s is a directory",
                        f->name, f->norm);
    if (e->type == 'l')
        return FOP_FAIL(f, RP_CODE_INVALID_PATH,
                        "%s: %s is a symlink; file ops do not follow "
                        "symlinks", f->name, f->norm);
    *out = e;
    return FOP_OK;
}

/* ------------------------------------------------------------------ */
/* Results                                                             */

static bool fop_add_time(cJSON *o, const char *name, int64_t ms)
{
    return rp_json_add_time(o, name, ms > 0 ? ms : 0);
}

static cJSON *fop_entry_json(const rp_ws_entry_t *e)
{
    cJSON *o = cJSON_CreateObject();
    char t[2] = {e->type, 0};
    bool ok = o && rp_json_add_text(o, "path", e->path) &&
              rp_json_add_text(o, "type", t) &&
              rp_json_add_int(o, "size", (int64_t)e->size) &&
              rp_json_add_int(o, "mode", e->mode & 07777) &&
              fop_add_time(o, "mtime", e->mtime_ms);

    if (ok && e->type == 'l' && e->link)
        ok = rp_json_add_text(o, "target", e->link);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Bytes as "content" + "encoding": text when valid UTF-8 without NUL. */
static bool fop_add_content(cJSON *o, const char *data, size_t len)
{
    bool text = rp_utf8_valid(data, len) && !memchr(data, 0, len);
    char *b = text ? NULL : rp_base64_encode(data, len);
    bool ok;

    if (text)
        ok = cJSON_AddStringToObject(o, "content", data) != NULL;
    else
        ok = b && cJSON_AddStringToObject(o, "content", b);
    free(b);
    return ok && rp_json_add_text(o, "encoding", text ? "utf-8" : "base64");
}

static fop_rc_t fop_nomem(fop_t *f)
{
    return FOP_ERR(f, RP_CODE_NO_MEMORY, "%s: out of memory", f->name);
}

/* ------------------------------------------------------------------ */
/* Read-only ops                                                       */

/* len bytes of e's data from off into *buf (initialised here; the
 * caller frees it on FOP_OK, freed here otherwise); never NULL data on
 * FOP_OK, even for 0 bytes. */
static fop_rc_t fop_read(fop_t *f, const rp_ws_entry_t *e, uint64_t off,
                         uint64_t len, rp_buf_t *buf)
{
    char es[512];
    rp_err_t err;

    es[0] = '\0';
    rp_buf_init(buf, len + 1);
    err = len ? rp_ws_read(f->st, f->m, e, off, len, buf, NULL, es,
                           sizeof(es))
              : rp_buf_append(buf, "", 0);
    if (err) {
        rp_buf_free(buf);
        return FOP_ERR(f, RP_CODE_STATE_LOAD_FAILED, "%s %s: %s", f->name,
                       f->norm, es);
    }
    return FOP_OK;
}

static fop_rc_t fop_read_file(fop_t *f)
{
    const rp_ws_entry_t *e = NULL;
    uint64_t cap, off = f->op->offset, len;
    rp_buf_t buf;
    fop_rc_t rc;

    if ((rc = fop_need_file(f, &e)) != FOP_OK)
        return rc;
    /* Capped twice: the named maximum, and what a result can carry once
     * base64 makes 3 bytes 4. */
    cap = RP_FILEOP_READ_MAX;
    if (cap > f->budget / 4 * 3)
        cap = f->budget / 4 * 3;
    len = f->op->length && f->op->length < cap ? f->op->length : cap;
    if (off > e->size)
        off = e->size;
    if (len > e->size - off)
        len = e->size - off;
    if ((rc = fop_read(f, e, off, len, &buf)) != FOP_OK)
        return rc;
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !rp_json_add_int(f->res, "size", (int64_t)e->size) ||
        !rp_json_add_int(f->res, "offset", (int64_t)off) ||
        !rp_json_add_int(f->res, "length", (int64_t)buf.len) ||
        !fop_add_content(f->res, buf.data ? buf.data : "", buf.len) ||
        !cJSON_AddBoolToObject(f->res, "truncated", off + buf.len < e->size) ||
        !rp_json_add_int(f->res, "mode", e->mode & 07777) ||
        !fop_add_time(f->res, "mtime", e->mtime_ms)) {
        rp_buf_free(&buf);
        return fop_nomem(f);
    }
    rp_buf_free(&buf);
    return FOP_OK;
}

/* list_files and find: the entries below norm that match. */
static fop_rc_t fop_list(fop_t *f)
{
    bool find = f->kind == RP_FILEOP_FIND;
    bool direct = !find && !f->op->recursive;
    uint64_t limit = f->op->limit ? f->op->limit : RP_FILEOP_LIST_MAX;
    size_t n = f->m ? rp_ws_manifest_count(f->m) : 0, used = 256, count = 0;
    bool truncated = false;
    cJSON *arr;
    fop_rc_t rc;

    if ((rc = fop_need_dir(f)) != FOP_OK)
        return rc;
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !(arr = cJSON_AddArrayToObject(f->res, "entries")))
        return fop_nomem(f);
    for (size_t i = 0; i < n; i++) {
        const rp_ws_entry_t *e = rp_ws_manifest_entry(f->m, i);
        size_t cost;
        cJSON *o;

        if (!fop_below(f->norm, e->path, direct))
            continue;
        if (f->op->pattern && fnmatch(f->op->pattern, fop_base(e->path), 0))
            continue;
        if (find && f->op->type && e->type != f->op->type)
            continue;
        cost = strlen(e->path) + (e->link ? strlen(e->link) : 0) +
               RP_FILEOPS_ENTRY_COST;
        if (count >= limit || used + cost > f->budget) {
            truncated = true;
            break;
        }
        if (!(o = fop_entry_json(e)) || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return fop_nomem(f);
        }
        used += cost;
        count++;
    }
    if (!cJSON_AddBoolToObject(f->res, "truncated", truncated))
        return fop_nomem(f);
    return FOP_OK;
}

/* true when pattern has a back-reference (\1 .. \9 outside a bracket
 * expression). */
static bool fop_has_backref(const char *pattern)
{
    bool bracket = false;

    for (const char *p = pattern; *p; p++) {
        if (bracket) {
            if (*p == ']')
                bracket = false;
        } else if (*p == '[') {
            bracket = true;
            if (p[1] == '^')
                p++;
            if (p[1] == ']')
                p++;
        } else if (*p == '\\' && p[1]) {
            if (p[1] >= '1' && p[1] <= '9')
                return true;
            p++;
        }
    }
    return false;
}

/* search: lines of the text files below norm that match. */
static fop_rc_t fop_search(fop_t *f)
{
    uint64_t limit = f->op->limit ? f->op->limit : RP_FILEOP_MATCHES_MAX;
    size_t n = f->m ? rp_ws_manifest_count(f->m) : 0, used = 256;
    uint64_t files = 0, bytes = 0, matches = 0;
    bool truncated = false, have_re = false;
    char es[512];
    regex_t re;
    cJSON *arr;
    fop_rc_t rc;

    if ((rc = fop_need_dir(f)) != FOP_OK)
        return rc;
    if (!f->op->fixed && fop_has_backref(f->op->pattern))
        /* glibc takes \1..\9 in extended patterns too, and matching them
         * is exponential: one request could hold an I/O thread that every
         * session shares. */
        return FOP_FAIL(f, RP_CODE_INVALID,
                        "search: back-references (\\1 to \\9) are not "
                        "allowed in pattern");
    if (!f->op->fixed) {
        int r = regcomp(&re, f->op->pattern,
                        REG_EXTENDED | REG_NOSUB |
                            (f->op->ignore_case ? REG_ICASE : 0));

        if (r) {
            char why[256];

            regerror(r, &re, why, sizeof(why));
            return FOP_FAIL(f, RP_CODE_INVALID,
                            "search: pattern is not a POSIX extended regular "
                            "expression: %s", why);
        }
        have_re = true;
    }
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !(arr = cJSON_AddArrayToObject(f->res, "matches"))) {
        rc = fop_nomem(f);
        goto out;
    }
    for (size_t i = 0; i < n && !truncated; i++) {
        const rp_ws_entry_t *e = rp_ws_manifest_entry(f->m, i);
        rp_buf_t buf;
        char *line, *nl;
        uint64_t lineno = 0;

        if (e->type != 'f' || !fop_below(f->norm, e->path, false) ||
            (f->op->glob && fnmatch(f->op->glob, fop_base(e->path), 0)))
            continue;
        if (bytes + e->size > RP_FILEOP_SEARCH_BYTES_MAX) {
            truncated = true;
            break;
        }
        rp_buf_init(&buf, e->size + 1);
        if (e->size && rp_ws_read(f->st, f->m, e, 0, e->size, &buf, NULL, es,
                                  sizeof(es)) != RP_OK) {
            rp_buf_free(&buf);
            rc = FOP_ERR(f, RP_CODE_STATE_LOAD_FAILED, "search: reading %s: %s",
                         e->path, es);
            goto out;
        }
        files++;
        bytes += buf.len;
        /* Like grep, binary files are not searched. */
        if (!buf.data || memchr(buf.data, 0, buf.len)) {
            rp_buf_free(&buf);
            continue;
        }
        for (line = buf.data; line && *line; line = nl ? nl + 1 : NULL) {
            bool hit;

            lineno++;
            if ((nl = strchr(line, '\n')))
                *nl = '\0';
            if (have_re)
                hit = regexec(&re, line, 0, NULL, 0) == 0;
            else
                hit = (f->op->ignore_case ? strcasestr(line, f->op->pattern)
                                          : strstr(line, f->op->pattern)) != NULL;
            if (!hit)
                continue;
            {
                size_t tl = rp_utf8_trim(line, strlen(line) > RP_FILEOP_LINE_MAX
                                                   ? RP_FILEOP_LINE_MAX
                                                   : strlen(line));
                size_t cost = strlen(e->path) + 2 * tl + 48;
                cJSON *o;
                char save;

                if (matches >= limit || used + cost > f->budget) {
                    truncated = true;
                    break;
                }
                save = line[tl];
                line[tl] = '\0';
                o = cJSON_CreateObject();
                if (!o || !rp_json_add_text(o, "path", e->path) ||
                    !rp_json_add_int(o, "line", (int64_t)lineno) ||
                    !rp_json_add_text(o, "text", line) ||
                    !cJSON_AddItemToArray(arr, o)) {
                    cJSON_Delete(o);
                    rp_buf_free(&buf);
                    rc = fop_nomem(f);
                    goto out;
                }
                line[tl] = save;
                used += cost;
                matches++;
            }
        }
        rp_buf_free(&buf);
    }
    if (!rp_json_add_int(f->res, "files_searched", (int64_t)files) ||
        !rp_json_add_int(f->res, "bytes_searched", (int64_t)bytes) ||
        !cJSON_AddBoolToObject(f->res, "truncated", truncated))
        rc = fop_nomem(f);
out:
    if (have_re)
        regfree(&re);
    return rc;
}

static fop_rc_t fop_download(fop_t *f)
{
    const rp_ws_entry_t *e = NULL;
    char es[512];
    rp_buf_t buf;
    rp_err_t err;
    fop_rc_t rc;

    if ((rc = fop_need_file(f, &e)) != FOP_OK)
        return rc;
    if (e->size > RP_FILEOP_TRANSFER_MAX)
        return FOP_FAIL(f, RP_CODE_TOO_LARGE,
                        "download: %s is %llu bytes, over the %d of a "
                        "transfer", f->norm, (unsigned long long)e->size,
                        RP_FILEOP_TRANSFER_MAX);
    if ((rc = fop_read(f, e, 0, e->size, &buf)) != FOP_OK)
        return rc;
    /* Unconditional: a download delivered again writes the same bytes. */
    err = rp_state_put(f->st, f->op->object, buf.data, buf.len, RP_STATE_ANY,
                       NULL, es, sizeof(es));
    rp_buf_free(&buf);
    if (err)
        return FOP_ERR(f, RP_CODE_STATE_SAVE_FAILED, "download: writing %s: %s",
                       f->op->object, es);
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !rp_json_add_text(f->res, "object", f->op->object) ||
        !rp_json_add_int(f->res, "size", (int64_t)e->size))
        return fop_nomem(f);
    return FOP_OK;
}

/* ------------------------------------------------------------------ */
/* Mutating ops: the edit (the snapshot is made by fop_commit)          */

/* Where a PUT lands: not a directory, not a symlink; parents directories
 * or (with parents) missing. *created: no file there yet. */
static fop_rc_t fop_put_target(fop_t *f, bool parents, bool *created)
{
    const rp_ws_entry_t *e;
    fop_rc_t rc = fop_check_parents(f, false);
    char *slash;

    if (rc != FOP_OK)
        return rc;
    if (!f->norm[0])
        return FOP_FAIL(f, RP_CODE_IS_A_DIRECTORY,
                        "%s: the workspace root is a directory", f->name);
    e = fop_entry(f);
    if (e && e->type == 'd')
        return FOP_FAIL(f, RP_CODE_IS_A_DIRECTORY, "%s: %s is a directory",
                        f->name, f->norm);
    *created = e == NULL;
    if (!parents && (slash = strrchr(f->norm, '/'))) {
        *slash = '\0';
        e = f->m ? rp_ws_manifest_find(f->m, f->norm) : NULL;
        *slash = '/';
        if (!e)
            return FOP_FAIL(f, RP_CODE_NOT_FOUND,
                            "%s: the directory of %s does not exist (parents "
                            "is false)", f->name, f->norm);
    }
    return FOP_OK;
}

/* The edit's own errors, as a failure of the op or of runpool. */
static fop_rc_t fop_edit_err(fop_t *f, rp_err_t err, const char *es)
{
    switch (err) {
    case RP_ERR_NOT_FOUND:
        return FOP_FAIL(f, RP_CODE_NOT_FOUND, "%s: %s", f->name, es);
    case RP_ERR_EXISTS:
        return FOP_FAIL(f, RP_CODE_EXISTS, "%s: %s", f->name, es);
    case RP_ERR_INVALID:
        return FOP_FAIL(f, RP_CODE_INVALID_PATH, "%s: %s", f->name, es);
    case RP_ERR_TOO_LARGE:
        return FOP_FAIL(f, RP_CODE_TOO_LARGE,
                        "%s: the workspace would be over its limit: %s",
                        f->name, es);
    case RP_ERR_NOMEM:
        return FOP_ERR(f, RP_CODE_NO_MEMORY, "%s: %s", f->name, es);
    default:
        return FOP_ERR(f, RP_CODE_STATE_SAVE_FAILED, "%s: saving the "
                       "workspace: %s", f->name, es);
    }
}

/* Make the new snapshot: the one an earlier run of this execution made,
 * if there is one (it was made from the same state: requests of a session
 * run in order), else m with edit applied. */
static fop_rc_t fop_snapshot(fop_t *f, const rp_ws_edit_t *edit)
{
    rp_job_t *job = f->job;
    char key[RP_STATE_KEY_MAX + 1], es[512];
    rp_ws_limits_t lim;
    rp_err_t err;

    rp_layout_ws_manifest_key(job->req.session_id, job->req.execution_id, key,
                              sizeof(key));
    err = rp_ws_manifest_load(f->st, key, &f->nm, es, sizeof(es));
    if (err == RP_OK)
        return FOP_OK;
    if (err != RP_ERR_NOT_FOUND)
        return FOP_ERR(f, RP_CODE_STATE_LOAD_FAILED, "%s: reading %s: %s",
                       f->name, key, es);
    /* The worker's caps, the ones its executors get. */
    lim.max_bytes = f->w->conf.workspace_max_bytes;
    lim.max_files = f->w->conf.workspace_max_files;
    err = rp_ws_edit(f->st, f->m, edit, 1, job->req.session_id,
                     job->req.execution_id, &lim, &f->nm, NULL, es, sizeof(es));
    if (err == RP_ERR_EXISTS &&
        rp_ws_manifest_load(f->st, key, &f->nm, es, sizeof(es)) == RP_OK)
        return FOP_OK; /* another owner made it just now */
    if (err)
        return fop_edit_err(f, err, es);
    return FOP_OK;
}

static fop_rc_t fop_write(fop_t *f, const void *data, size_t len, uint32_t mode,
                          bool parents, uint64_t *size)
{
    rp_ws_edit_t edit = {.kind = RP_WS_PUT, .path = f->norm, .data = data,
                         .len = len, .mode = mode, .parents = parents};

    *size = len;
    return fop_snapshot(f, &edit);
}

static fop_rc_t fop_write_file(fop_t *f)
{
    bool created = false;
    uint64_t size = 0;
    fop_rc_t rc = fop_put_target(f, f->op->parents, &created);

    if (rc == FOP_OK)
        rc = fop_write(f, f->op->data ? f->op->data : "", f->op->data_len,
                       f->op->mode, f->op->parents, &size);
    if (rc != FOP_OK)
        return rc;
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !rp_json_add_int(f->res, "size", (int64_t)size) ||
        !rp_json_add_int(f->res, "mode", f->op->mode & 07777) ||
        !cJSON_AddBoolToObject(f->res, "created", created))
        return fop_nomem(f);
    return FOP_OK;
}

static fop_rc_t fop_upload(fop_t *f)
{
    bool created = false;
    uint64_t size = 0;
    char es[512];
    rp_buf_t buf;
    rp_err_t err;
    fop_rc_t rc = fop_put_target(f, f->op->parents, &created);

    if (rc != FOP_OK)
        return rc;
    rp_buf_init(&buf, RP_FILEOP_TRANSFER_MAX);
    err = rp_state_get(f->st, f->op->object, &buf, NULL, es, sizeof(es));
    if (err == RP_ERR_NOT_FOUND)
        rc = FOP_FAIL(f, RP_CODE_NOT_FOUND, "upload: no object %s in the "
                      "state store", f->op->object);
    else if (err == RP_ERR_TOO_LARGE)
        rc = FOP_FAIL(f, RP_CODE_TOO_LARGE, "upload: %s is over the %d bytes "
                      "of a transfer", f->op->object, RP_FILEOP_TRANSFER_MAX);
    else if (err)
        rc = FOP_ERR(f, RP_CODE_STATE_LOAD_FAILED, "upload: reading %s: %s",
                     f->op->object, es);
    else
        rc = fop_write(f, buf.data, buf.len, f->op->mode, f->op->parents,
                       &size);
    rp_buf_free(&buf);
    if (rc != FOP_OK)
        return rc;
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !rp_json_add_text(f->res, "object", f->op->object) ||
        !rp_json_add_int(f->res, "size", (int64_t)size))
        return fop_nomem(f);
    return FOP_OK;
}

/* Occurrences of needle in hay (non-overlapping, left to right). */
static uint64_t fop_count(const char *hay, size_t hl, const char *needle,
                          size_t nl)
{
    uint64_t n = 0;

    for (const char *p = hay; (p = memmem(p, hl - (size_t)(p - hay), needle,
                                          nl)) != NULL;
         p += nl)
        n++;
    return n;
}

static fop_rc_t fop_replace(fop_t *f)
{
    const rp_ws_entry_t *e = NULL;
    const char *old = f->op->data, *neu = f->op->data2 ? f->op->data2 : "";
    size_t ol = f->op->data_len, nl = f->op->data2_len;
    uint64_t found, size = 0;
    char es[512];
    rp_buf_t in, out;
    fop_rc_t rc;

    if ((rc = fop_need_file(f, &e)) != FOP_OK)
        return rc;
    if (e->size > RP_FILEOPS_REPLACE_FILE_MAX)
        return FOP_FAIL(f, RP_CODE_TOO_LARGE,
                        "replace_in_file: %s is %llu bytes, over %d",
                        f->norm, (unsigned long long)e->size,
                        RP_FILEOPS_REPLACE_FILE_MAX);
    rp_buf_init(&in, e->size + 1);
    rp_buf_init(&out, RP_FILEOPS_REPLACE_FILE_MAX);
    if (e->size && rp_ws_read(f->st, f->m, e, 0, e->size, &in, NULL, es,
                              sizeof(es)) != RP_OK) {
        rc = FOP_ERR(f, RP_CODE_STATE_LOAD_FAILED, "replace_in_file %s: %s",
                     f->norm, es);
        goto out;
    }
    found = in.len ? fop_count(in.data, in.len, old, ol) : 0;
    if (found != f->op->count) {
        rc = FOP_FAIL(f, RP_CODE_COUNT_MISMATCH,
                      "replace_in_file: %s has the old text %llu times, count "
                      "is %llu; nothing changed", f->norm,
                      (unsigned long long)found,
                      (unsigned long long)f->op->count);
        goto out;
    }
    for (const char *p = in.data, *q; p; p = q ? q + ol : NULL) {
        size_t left = in.len - (size_t)(p - in.data);

        q = memmem(p, left, old, ol);
        if (rp_buf_append(&out, p, q ? (size_t)(q - p) : left) != RP_OK ||
            (q && rp_buf_append(&out, neu, nl) != RP_OK)) {
            rc = FOP_FAIL(f, RP_CODE_TOO_LARGE,
                          "replace_in_file: %s would be over %d bytes",
                          f->norm, RP_FILEOPS_REPLACE_FILE_MAX);
            goto out;
        }
    }
    rc = fop_write(f, out.data ? out.data : "", out.len, e->mode & 07777, 0,
                   &size);
    if (rc == FOP_OK &&
        (!(f->res = cJSON_CreateObject()) ||
         !rp_json_add_text(f->res, "path", f->norm) ||
         !rp_json_add_int(f->res, "replaced", (int64_t)found) ||
         !rp_json_add_int(f->res, "size", (int64_t)size)))
        rc = fop_nomem(f);
out:
    rp_buf_free(&in);
    rp_buf_free(&out);
    return rc;
}

static fop_rc_t fop_delete(fop_t *f)
{
    const rp_ws_entry_t *e;
    size_t n = f->m ? rp_ws_manifest_count(f->m) : 0, below = 0;
    rp_ws_edit_t edit = {.kind = RP_WS_DELETE, .path = f->norm};
    char t[2] = {0, 0};
    fop_rc_t rc = fop_check_parents(f, true);

    if (rc != FOP_OK)
        return rc;
    if (!f->norm[0])
        return FOP_FAIL(f, RP_CODE_INVALID_PATH,
                        "delete: the workspace root cannot be deleted (delete "
                        "what is in it)");
    if (!(e = fop_entry(f)))
        return FOP_FAIL(f, RP_CODE_NOT_FOUND, "delete: %s: no such file or "
                        "directory", f->norm);
    t[0] = e->type;
    for (size_t i = 0; e->type == 'd' && i < n; i++)
        below += fop_below(f->norm, rp_ws_manifest_entry(f->m, i)->path, false);
    if (below && !f->op->recursive)
        return FOP_FAIL(f, RP_CODE_IS_A_DIRECTORY,
                        "delete: %s is a directory that is not empty (send "
                        "recursive: true to delete it all)", f->norm);
    if ((rc = fop_snapshot(f, &edit)) != FOP_OK)
        return rc;
    if (!(f->res = cJSON_CreateObject()) ||
        !rp_json_add_text(f->res, "path", f->norm) ||
        !rp_json_add_text(f->res, "type", t) ||
        !rp_json_add_int(f->res, "deleted", (int64_t)(below + 1)))
        return fop_nomem(f);
    return FOP_OK;
}

/* ------------------------------------------------------------------ */
/* The commit: record, session state, gc                               */

/* Make the record's snapshot the session's, with compare-and-swap, unless
 * this execution is applied already or the session moved on past it (a
 * reused record older than the state). *applied: the state now names it
 * because of this call (the caller collects the old snapshot). */
static fop_rc_t fop_apply(fop_t *f, const rp_result_t *rec, bool *applied)
{
    rp_job_t *job = f->job;
    rp_session_t *s = &job->session;
    rp_session_ws_t ws;
    char key[RP_STATE_KEY_MAX + 1], es[512], *doc = NULL;
    int64_t now = rp_time_wall_ms(), t0 = rp_time_mono_ms();
    rp_err_t err;
    fop_rc_t rc = FOP_OK;

    *applied = false;
    if (job->session_found &&
        !strcmp(s->last_execution_id, job->req.execution_id))
        return FOP_OK;
    if (job->reused && job->session_found && rec->finished_at_ms &&
        rec->finished_at_ms < s->updated_at_ms)
        return FOP_OK;
    if (!rec->ws.manifest)
        return FOP_ERR(f, RP_CODE_RESULT_CORRUPT,
                       "the record of %s names no workspace snapshot",
                       job->req.execution_id);
    if (!job->session_found) {
        memcpy(s->session_id, job->req.session_id, sizeof(s->session_id));
        s->created_at_ms = now;
    }
    memset(&ws, 0, sizeof(ws));
    ws.manifest = rec->ws.manifest; /* borrowed into the copy below */
    memcpy(ws.execution_id, job->req.execution_id, sizeof(ws.execution_id));
    ws.bytes = rec->ws.bytes;
    ws.files = rec->ws.files;
    ws.saved_at_ms = now;
    ws.root = s->workspace.root; /* where a command last ran: kept */
    if (rp_session_ws_copy(&s->workspace, &ws) != RP_OK)
        return fop_nomem(f);
    s->updated_at_ms = now;
    s->execution_count++;
    memcpy(s->last_execution_id, job->req.execution_id,
           sizeof(s->last_execution_id));
    if (!(doc = rp_session_to_json(s)))
        return fop_nomem(f);
    rp_layout_session_key(job->req.session_id, key, sizeof(key));
    err = rp_state_put(f->st, key, doc, strlen(doc),
                       job->session_found ? job->session_version : 0, NULL, es,
                       sizeof(es));
    if ((err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS) &&
        rp_cycle_saved_by_other(f->st, key, job->req.execution_id))
        err = RP_OK; /* applied, by a previous owner: not ours to collect */
    else if (err == RP_OK)
        *applied = true;
    if (err == RP_ERR_CONFLICT || err == RP_ERR_EXISTS)
        rc = FOP_ERR(f, RP_CODE_STATE_CONFLICT,
                     "%s: the session state changed meanwhile (another "
                     "writer); the new workspace was not saved: %s", f->name,
                     es);
    else if (err)
        rc = FOP_ERR(f, RP_CODE_STATE_SAVE_FAILED, "%s: saving %s: %s",
                     f->name, key, es);
    free(doc);
    job->state_save_ms += rp_time_mono_ms() - t0;
    return rc;
}

/* The previous snapshot's objects that the new one does not use. A
 * failure leaves garbage, never a broken session: logged, not answered. */
static void fop_gc(fop_t *f, const rp_ws_manifest_t *cur)
{
    char es[512];

    if (f->m && cur &&
        rp_ws_gc_until(f->st, f->m, cur, rp_jobws_revoked, f->job, es,
                       sizeof(es)) != RP_OK)
        rp_log(RP_LOG_WARN, "workspace_gc_failed", rp_job_eid(f->job),
               rp_job_sid(f->job), "%s", es);
}

/* Fill the job's result for what f did (rc), the one a command's record
 * would say: status, error, op, op_result, workspace_saved. */
static fop_rc_t fop_fill(fop_t *f, fop_rc_t rc)
{
    rp_job_t *job = f->job;
    rp_result_t *r = &job->result;
    int64_t now = rp_time_wall_ms();

    rp_result_clear(r);
    memcpy(r->execution_id, job->req.execution_id, sizeof(r->execution_id));
    memcpy(r->session_id, job->req.session_id, sizeof(r->session_id));
    r->started_at_ms = job->t_begin_wall;
    r->finished_at_ms = now;
    r->duration_ms = now - job->t_begin_wall;
    if (!(r->op = strdup(f->name)))
        return fop_nomem(f);
    job->have_result = true;
    if (rc == FOP_FAILED) {
        r->status = RP_STATUS_FAILED;
        return rp_result_set_error(r, rp_code_str(f->code), f->msg) == RP_OK
                   ? FOP_FAILED
                   : fop_nomem(f);
    }
    r->status = RP_STATUS_SUCCEEDED;
    r->has_exit_code = true;
    r->exit_code = 0;
    if (f->res && !(r->op_result = cJSON_PrintUnformatted(f->res)))
        return fop_nomem(f);
    if (f->nm) {
        r->ws.present = r->ws.full = r->ws.saved = true;
        r->ws.bytes = rp_ws_manifest_bytes(f->nm);
        r->ws.files = rp_ws_manifest_count(f->nm);
        if (!(r->ws.manifest = strdup(rp_ws_manifest_key(f->nm))))
            return fop_nomem(f);
    }
    return FOP_OK;
}

/* A mutating op succeeded: its record (create-only: a record already
 * there is the first run's, whose answer wins), then the state, then gc. */
static fop_rc_t fop_commit(fop_t *f)
{
    rp_job_t *job = f->job;
    rp_result_t *r = &job->result;
    char key[RP_STATE_KEY_MAX + 1], es[512], *doc;
    rp_ws_manifest_t *cur = NULL;
    bool applied = false;
    rp_buf_t buf;
    rp_err_t err;
    fop_rc_t rc;

    r->has_env = true;
    if (rp_env_copy(&r->env, &job->session.env) != RP_OK ||
        (job->session.cwd && !(r->cwd = strdup(job->session.cwd))) ||
        !(doc = rp_result_to_json(r, true)))
        return fop_nomem(f);
    rp_layout_result_key(job->req.execution_id, key, sizeof(key));
    err = rp_state_put(f->st, key, doc, strlen(doc), 0, NULL, es, sizeof(es));
    free(doc);
    if (err == RP_ERR_EXISTS) {
        /* Another owner got there first: take its answer and snapshot. */
        rp_buf_init(&buf, RP_RESULT_MAX);
        err = rp_state_get(f->st, key, &buf, NULL, es, sizeof(es));
        rp_result_clear(r);
        if (err == RP_OK &&
            rp_result_parse(buf.data, buf.len, r, es, sizeof(es)) != RP_OK)
            err = RP_ERR_PROTOCOL;
        rp_buf_free(&buf);
        if (err)
            return FOP_ERR(f, RP_CODE_RESULT_CORRUPT, "record %s: %s", key, es);
        job->reused = true;
    } else if (err) {
        return FOP_ERR(f, RP_CODE_STATE_SAVE_FAILED, "%s: writing %s: %s",
                       f->name, key, es);
    }
    job->have_result = true;
    if ((rc = fop_apply(f, r, &applied)) != FOP_OK)
        return rc;
    if (applied && job->reused && r->ws.manifest &&
        rp_ws_manifest_load(f->st, r->ws.manifest, &cur, es, sizeof(es)) ==
            RP_OK) {
        fop_gc(f, cur);
    } else if (applied && !job->reused) {
        fop_gc(f, f->nm);
    }
    rp_ws_manifest_destroy(cur);
    return FOP_OK;
}

/* A record found at LOADING: the op ran before. Finish what the first
 * run may not have (the state), answer with its result. */
static fop_rc_t fop_reuse(fop_t *f)
{
    rp_ws_manifest_t *cur = NULL;
    bool applied = false;
    char es[512];
    fop_rc_t rc;

    if (!f->job->result.op || strcmp(f->job->result.op, f->name))
        return FOP_ERR(f, RP_CODE_EXECUTION_ID_CONFLICT,
                       "execution_id %s already ran as another operation",
                       f->job->req.execution_id);
    if (f->job->result.status != RP_STATUS_SUCCEEDED)
        return FOP_OK; /* nothing to apply */
    if ((rc = fop_apply(f, &f->job->result, &applied)) != FOP_OK)
        return rc;
    if (applied && rp_ws_manifest_load(f->st, f->job->result.ws.manifest, &cur,
                                       es, sizeof(es)) == RP_OK)
        fop_gc(f, cur);
    rp_ws_manifest_destroy(cur);
    return FOP_OK;
}

/* ------------------------------------------------------------------ */
/* The pool step                                                       */

static fop_rc_t fop_do(fop_t *f)
{
    rp_job_t *job = f->job;
    const char *key = job->session.workspace.manifest;
    char es[512];
    rp_err_t err;

    if (job->reused)
        return fop_reuse(f);
    /* Only snapshots are a workspace the worker can reach: keep and
     * mount:PATH live on a machine or volume it may not have, off is none. */
    if (f->w->conf.workspace && f->w->conf.workspace[0] != '/')
        return FOP_ERR(f, RP_CODE_INVALID,
                       "%s: file ops work on workspace snapshots, and this "
                       "worker runs with --workspace %s (use /DIR, the "
                       "default)", f->name, f->w->conf.workspace);
    if ((err = rp_ws_path_check(f->op->path ? f->op->path : ".", f->norm,
                                sizeof(f->norm), es, sizeof(es))) != RP_OK)
        return FOP_FAIL(f, RP_CODE_INVALID_PATH, "%s: %s", f->name, es);
    if (key && (err = rp_ws_manifest_load(f->st, key, &f->m, es, sizeof(es))))
        return FOP_ERR(f, err == RP_ERR_NOT_FOUND ? RP_CODE_STATE_CORRUPT
                                                  : RP_CODE_STATE_LOAD_FAILED,
                       "%s: the session's workspace snapshot %s: %s", f->name,
                       key, es);
    switch (f->kind) {
    case RP_FILEOP_READ_FILE: return fop_read_file(f);
    case RP_FILEOP_LIST_FILES:
    case RP_FILEOP_FIND: return fop_list(f);
    case RP_FILEOP_SEARCH: return fop_search(f);
    case RP_FILEOP_DOWNLOAD: return fop_download(f);
    case RP_FILEOP_WRITE_FILE: return fop_write_file(f);
    case RP_FILEOP_UPLOAD: return fop_upload(f);
    case RP_FILEOP_REPLACE_IN_FILE: return fop_replace(f);
    case RP_FILEOP_DELETE: return fop_delete(f);
    default:
        return FOP_ERR(f, RP_CODE_INTERNAL, "op %d is not a file op",
                       (int)f->kind);
    }
}

void rp_fileops_run(void *arg)
{
    rp_job_t *job = arg;
    rp_worker_t *w = job->w;
    fop_t f;
    fop_rc_t rc;
    int64_t t0 = rp_time_mono_ms();

    memset(&f, 0, sizeof(f));
    f.job = job;
    f.w = w;
    f.st = w->state;
    f.op = &job->req.fop;
    f.kind = (rp_fileop_kind_t)(job->req.op - RP_OP_FILEOP_FIRST);
    f.name = rp_fileop_name(f.kind);
    f.budget = w->conf.result_max_bytes > RP_FILEOPS_HEADROOM +
                                              RP_FILEOPS_BUDGET_MIN
                   ? w->conf.result_max_bytes - RP_FILEOPS_HEADROOM
                   : RP_FILEOPS_BUDGET_MIN;
    job->state_save_ms = 0;
    rc = fop_do(&f);
    if (rc != FOP_ERROR && !job->reused)
        rc = fop_fill(&f, rc);
    if (rc == FOP_OK && f.nm && !job->reused)
        rc = fop_commit(&f);
    if (rc == FOP_ERROR)
        rp_job_set_error(job, f.code, "%s", f.msg);
    job->run_ms = rp_time_mono_ms() - t0 - job->state_save_ms;
    rp_log(rc == FOP_ERROR ? RP_LOG_WARN : RP_LOG_DEBUG, "file_op",
           rp_job_eid(job), rp_job_sid(job), "%s %s: %s%s%s", f.name,
           fop_shown(f.norm), rc == FOP_OK ? "ok" : rp_code_str(f.code),
           rc == FOP_OK ? "" : ": ", rc == FOP_OK ? "" : f.msg);
    cJSON_Delete(f.res);
    rp_ws_manifest_destroy(f.m);
    rp_ws_manifest_destroy(f.nm);
    rp_inbox_post(w->inbox, &job->item, RP_EV_FINISHED);
}
