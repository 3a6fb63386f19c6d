/* rp_fileop — a request's file operation (see rp_fileop.h). */
#include "rp_fileop.h"
#include "rp_json.h"
#include "rp_contract.h"
#include "rp_text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The members a file op may carry, one bit each. */
enum {
    FM_PATH, FM_CONTENT, FM_ENCODING, FM_MODE, FM_PARENTS, FM_OFFSET,
    FM_LENGTH, FM_RECURSIVE, FM_GLOB, FM_LIMIT, FM_NAME, FM_TYPE, FM_PATTERN,
    FM_FIXED, FM_IGNORE_CASE, FM_OLD, FM_NEW, FM_COUNT, FM_OBJECT, FM__COUNT
};

static const char *const rp_fileop_members[FM__COUNT] = {
    "path", "content", "encoding", "mode", "parents", "offset", "length",
    "recursive", "glob", "limit", "name", "type", "pattern", "fixed",
    "ignore_case", "old", "new", "count", "object",
};

#define B(m) (1u << (m))

/* The state store's key rules (store/rp_state.h, which the contract does
 * not link): '/'-separated segments of [A-Za-z0-9._:-], none empty, "."
 * or "..". */
static bool rp_fileop_key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > RP_STATE_KEY_MAX)
        return false;
    for (const char *seg = k; seg; ) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);

        if (len == 0 || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.') ||
            strspn(seg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789._:-") < len)
            return false;
        seg = slash ? slash + 1 : NULL;
    }
    return true;
}

static const struct {
    const char *name;
    unsigned allowed, required;
    bool mutates;
} rp_fileop_ops[RP_FILEOP__COUNT] = {
    [RP_FILEOP_WRITE_FILE] = {"write_file",
        B(FM_PATH) | B(FM_CONTENT) | B(FM_ENCODING) | B(FM_MODE) | B(FM_PARENTS),
        B(FM_PATH) | B(FM_CONTENT), true},
    [RP_FILEOP_READ_FILE] = {"read_file",
        B(FM_PATH) | B(FM_OFFSET) | B(FM_LENGTH), B(FM_PATH), false},
    [RP_FILEOP_LIST_FILES] = {"list_files",
        B(FM_PATH) | B(FM_RECURSIVE) | B(FM_GLOB) | B(FM_LIMIT), 0, false},
    [RP_FILEOP_FIND] = {"find",
        B(FM_PATH) | B(FM_NAME) | B(FM_TYPE) | B(FM_LIMIT), B(FM_NAME), false},
    [RP_FILEOP_SEARCH] = {"search",
        B(FM_PATH) | B(FM_PATTERN) | B(FM_FIXED) | B(FM_IGNORE_CASE) |
            B(FM_GLOB) | B(FM_LIMIT),
        B(FM_PATTERN), false},
    [RP_FILEOP_REPLACE_IN_FILE] = {"replace_in_file",
        B(FM_PATH) | B(FM_OLD) | B(FM_NEW) | B(FM_COUNT),
        B(FM_PATH) | B(FM_OLD) | B(FM_NEW), true},
    [RP_FILEOP_DELETE] = {"delete", B(FM_PATH) | B(FM_RECURSIVE), B(FM_PATH),
        true},
    [RP_FILEOP_UPLOAD] = {"upload",
        B(FM_PATH) | B(FM_OBJECT) | B(FM_MODE) | B(FM_PARENTS),
        B(FM_PATH) | B(FM_OBJECT), true},
    [RP_FILEOP_DOWNLOAD] = {"download", B(FM_PATH) | B(FM_OBJECT),
        B(FM_PATH) | B(FM_OBJECT), false},
};

const char *rp_fileop_name(rp_fileop_kind_t kind)
{
    return kind >= 0 && kind < RP_FILEOP__COUNT ? rp_fileop_ops[kind].name
                                                : NULL;
}

int rp_fileop_kind(const char *s)
{
    for (int k = 0; s && k < RP_FILEOP__COUNT; k++)
        if (!strcmp(s, rp_fileop_ops[k].name))
            return k;
    return -1;
}

bool rp_fileop_mutates(rp_fileop_kind_t kind)
{
    return kind >= 0 && kind < RP_FILEOP__COUNT && rp_fileop_ops[kind].mutates;
}

static int rp_fileop_member_index(const char *name)
{
    for (int i = 0; name && i < FM__COUNT; i++)
        if (!strcmp(name, rp_fileop_members[i]))
            return i;
    return -1;
}

bool rp_fileop_member(const char *name)
{
    return rp_fileop_member_index(name) >= 0;
}

/* A string member into a malloc'd copy, min..max bytes, no NUL. */
static rp_err_t rp_fileop_str(const cJSON *it, const char *name, size_t min,
                              size_t max, char **out, size_t *len,
                              char *errstr, size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err = rp_json_get_str(it, "", name, min, max, &s, &n, errstr,
                                   errstr_size);

    if (err)
        return err;
    if (!(*out = malloc(n + 1)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n + 1);
    if (len)
        *len = n;
    return RP_OK;
}

static rp_err_t rp_fileop_u64(const cJSON *it, const char *name, int64_t min,
                              int64_t max, uint64_t *out, char *errstr,
                              size_t errstr_size)
{
    int64_t n = 0;
    rp_err_t err = rp_json_get_int(it, "", name, min, max, &n, errstr,
                                   errstr_size);

    if (!err)
        *out = (uint64_t)n;
    return err;
}

rp_err_t rp_fileop_parse(const cJSON *root, rp_fileop_kind_t kind,
                         rp_fileop_t *out, char *errstr, size_t errstr_size)
{
    const cJSON *f[FM__COUNT] = {0}, *it;
    const char *enc = "utf-8", *name = rp_fileop_name(kind);
    unsigned allowed, required;
    uint64_t n;
    rp_err_t err = RP_OK;
    bool b64 = false;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->mode = RP_FILEOP_MODE_DEFAULT;
    out->parents = true;
    out->count = 1;
    if (!name)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "op: not a file op");
    allowed = rp_fileop_ops[kind].allowed;
    required = rp_fileop_ops[kind].required;
    cJSON_ArrayForEach(it, root)
    {
        int i = rp_fileop_member_index(it->string);

        if (i < 0)
            continue; /* the request's own members; it checks the rest */
        if (!(allowed & B(i)))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: not a member of op \"%s\"", it->string, name);
        f[i] = it;
    }
    for (int i = 0; i < FM__COUNT; i++)
        if ((required & B(i)) && !f[i])
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: required when op is \"%s\"",
                           rp_fileop_members[i], name);
    if (f[FM_PATH] &&
        (err = rp_fileop_str(f[FM_PATH], "path", 1, RP_FILEOP_PATH_MAX,
                             &out->path, NULL, errstr, errstr_size)))
        return err;
    if (f[FM_ENCODING]) {
        enc = cJSON_IsString(f[FM_ENCODING]) ? f[FM_ENCODING]->valuestring : "";
        if (strcmp(enc, "utf-8") && strcmp(enc, "base64"))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "encoding: must be \"utf-8\" or \"base64\"");
        b64 = !strcmp(enc, "base64");
    }
    if (f[FM_CONTENT]) {
        const char *s;
        size_t len;

        /* The request's own cap (RP_REQUEST_MAX) bounds it already. */
        if ((err = rp_json_get_str(f[FM_CONTENT], "", "content", 0, SIZE_MAX,
                                   &s, &len, errstr, errstr_size)))
            return err;
        if (b64) {
            if (rp_base64_decode(s, len, &out->data, &out->data_len) != RP_OK)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "content: not valid base64 (encoding is "
                               "\"base64\")");
        } else if (!(out->data = malloc(len + 1))) {
            return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        } else {
            memcpy(out->data, s, len + 1);
            out->data_len = len;
        }
    }
    if (f[FM_MODE]) {
        if ((err = rp_fileop_u64(f[FM_MODE], "mode", 0, 07777, &n, errstr,
                                 errstr_size)))
            return err;
        out->mode = (uint32_t)n;
    }
    if ((f[FM_PARENTS] && (err = rp_json_get_bool(f[FM_PARENTS], "parents",
                                                  &out->parents, errstr,
                                                  errstr_size))) ||
        (f[FM_RECURSIVE] &&
         (err = rp_json_get_bool(f[FM_RECURSIVE], "recursive", &out->recursive,
                                 errstr, errstr_size))) ||
        (f[FM_FIXED] && (err = rp_json_get_bool(f[FM_FIXED], "fixed",
                                                &out->fixed, errstr,
                                                errstr_size))) ||
        (f[FM_IGNORE_CASE] &&
         (err = rp_json_get_bool(f[FM_IGNORE_CASE], "ignore_case",
                                 &out->ignore_case, errstr, errstr_size))) ||
        (f[FM_OFFSET] && (err = rp_fileop_u64(f[FM_OFFSET], "offset", 0,
                                              RP_JSON_INT_MAX, &out->offset,
                                              errstr, errstr_size))) ||
        (f[FM_LENGTH] && (err = rp_fileop_u64(f[FM_LENGTH], "length", 1,
                                              RP_JSON_INT_MAX, &out->length,
                                              errstr, errstr_size))) ||
        (f[FM_COUNT] &&
         (err = rp_fileop_u64(f[FM_COUNT], "count", 1,
                              RP_FILEOP_REPLACE_COUNT_MAX, &out->count, errstr,
                              errstr_size))))
        return err;
    if (f[FM_LIMIT] &&
        (err = rp_fileop_u64(f[FM_LIMIT], "limit", 1,
                             kind == RP_FILEOP_SEARCH ? RP_FILEOP_MATCHES_MAX
                                                      : RP_FILEOP_LIST_MAX,
                             &out->limit, errstr, errstr_size)))
        return err;
    if (f[FM_GLOB] && (err = rp_fileop_str(f[FM_GLOB], "glob", 1,
                                           RP_FILEOP_PATTERN_MAX,
                                           kind == RP_FILEOP_SEARCH
                                               ? &out->glob
                                               : &out->pattern,
                                           NULL, errstr, errstr_size)))
        return err;
    if ((f[FM_NAME] && (err = rp_fileop_str(f[FM_NAME], "name", 1,
                                            RP_FILEOP_PATTERN_MAX,
                                            &out->pattern, NULL, errstr,
                                            errstr_size))) ||
        (f[FM_PATTERN] && (err = rp_fileop_str(f[FM_PATTERN], "pattern", 1,
                                               RP_FILEOP_PATTERN_MAX,
                                               &out->pattern, NULL, errstr,
                                               errstr_size))) ||
        (f[FM_OLD] && (err = rp_fileop_str(f[FM_OLD], "old", 1, SIZE_MAX,
                                           &out->data, &out->data_len, errstr,
                                           errstr_size))) ||
        (f[FM_NEW] && (err = rp_fileop_str(f[FM_NEW], "new", 0, SIZE_MAX,
                                           &out->data2, &out->data2_len,
                                           errstr, errstr_size))))
        return err;
    if (f[FM_TYPE]) {
        const char *t = cJSON_IsString(f[FM_TYPE]) ? f[FM_TYPE]->valuestring
                                                   : "";

        if (strcmp(t, "f") && strcmp(t, "d") && strcmp(t, "l"))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "type: must be \"f\" (file), \"d\" (directory) or "
                           "\"l\" (symlink)");
        out->type = t[0];
    }
    if (f[FM_OBJECT]) {
        size_t plen = strlen(RP_FILEOP_TRANSFER_PREFIX);

        if ((err = rp_fileop_str(f[FM_OBJECT], "object", 1, RP_STATE_KEY_MAX,
                                 &out->object, NULL, errstr, errstr_size)))
            return err;
        /* Only the transfer folder: a request must never read or overwrite
         * runpool's own objects (session state, records, workspaces). */
        if (strncmp(out->object, RP_FILEOP_TRANSFER_PREFIX, plen) ||
            !out->object[plen] || !rp_fileop_key_valid(out->object))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "object: must be a key under \"%s\" of "
                           "'/'-separated [A-Za-z0-9._:-] segments",
                           RP_FILEOP_TRANSFER_PREFIX);
    }
    return RP_OK;
}

bool rp_fileop_to_json(const rp_fileop_t *op, cJSON *root)
{
    bool ok = true;
    bool mut = op->kind == RP_FILEOP_WRITE_FILE || op->kind == RP_FILEOP_UPLOAD;

    if (op->path)
        ok = ok && rp_json_add_text(root, "path", op->path);
    if (ok && op->kind == RP_FILEOP_WRITE_FILE) {
        bool text = rp_utf8_valid(op->data ? op->data : "", op->data_len) &&
                    !memchr(op->data ? op->data : "", 0, op->data_len);

        if (text) {
            ok = cJSON_AddStringToObject(root, "content",
                                         op->data ? op->data : "") != NULL;
        } else {
            char *b = rp_base64_encode(op->data, op->data_len);

            ok = b && cJSON_AddStringToObject(root, "content", b) &&
                 cJSON_AddStringToObject(root, "encoding", "base64");
            free(b);
        }
    }
    if (ok && mut && op->mode != RP_FILEOP_MODE_DEFAULT)
        ok = rp_json_add_int(root, "mode", op->mode);
    if (ok && mut && !op->parents)
        ok = cJSON_AddFalseToObject(root, "parents") != NULL;
    if (ok && op->object)
        ok = rp_json_add_text(root, "object", op->object);
    switch (op->kind) {
    case RP_FILEOP_READ_FILE:
        if (ok && op->offset)
            ok = rp_json_add_int(root, "offset", (int64_t)op->offset);
        if (ok && op->length)
            ok = rp_json_add_int(root, "length", (int64_t)op->length);
        break;
    case RP_FILEOP_LIST_FILES:
    case RP_FILEOP_DELETE:
        if (ok && op->recursive)
            ok = cJSON_AddTrueToObject(root, "recursive") != NULL;
        if (ok && op->kind == RP_FILEOP_LIST_FILES && op->pattern)
            ok = rp_json_add_text(root, "glob", op->pattern);
        break;
    case RP_FILEOP_FIND:
        if (ok && op->pattern)
            ok = rp_json_add_text(root, "name", op->pattern);
        if (ok && op->type) {
            char t[2] = {op->type, 0};

            ok = rp_json_add_text(root, "type", t);
        }
        break;
    case RP_FILEOP_SEARCH:
        if (ok && op->pattern)
            ok = rp_json_add_text(root, "pattern", op->pattern);
        if (ok && op->glob)
            ok = rp_json_add_text(root, "glob", op->glob);
        if (ok && op->fixed)
            ok = cJSON_AddTrueToObject(root, "fixed") != NULL;
        if (ok && op->ignore_case)
            ok = cJSON_AddTrueToObject(root, "ignore_case") != NULL;
        break;
    case RP_FILEOP_REPLACE_IN_FILE:
        ok = ok && cJSON_AddStringToObject(root, "old", op->data ? op->data : "") &&
             cJSON_AddStringToObject(root, "new", op->data2 ? op->data2 : "");
        if (ok && op->count != 1)
            ok = rp_json_add_int(root, "count", (int64_t)op->count);
        break;
    default:
        break;
    }
    if (ok && op->limit &&
        (op->kind == RP_FILEOP_LIST_FILES || op->kind == RP_FILEOP_FIND ||
         op->kind == RP_FILEOP_SEARCH))
        ok = rp_json_add_int(root, "limit", (int64_t)op->limit);
    return ok;
}

void rp_fileop_clear(rp_fileop_t *op)
{
    if (!op)
        return;
    free(op->path);
    free(op->data);
    free(op->data2);
    free(op->pattern);
    free(op->glob);
    free(op->object);
    memset(op, 0, sizeof(*op));
}
