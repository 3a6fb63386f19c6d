/* rp_json — reading and writing the contract's JSON documents (see
 * rp_json.h).
 *
 * The parsers built on this must accept exactly the documents the schemas
 * accept: tests/unit/test_msg.c and tests/schema/validate.js both run the
 * shared vectors in schemas/examples/ so the two cannot drift apart
 * silently. Where they cannot agree (JSON Schema counts characters, we
 * count bytes; JSON.parse keeps the last of duplicate keys, we reject
 * duplicates) the C side is the stricter one.
 */
#include "rp_json.h"
#include "rp_ids.h"
#include "rp_text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stands in for a JSON "\u0000" escape while cJSON parses (see
 * rp_json_prepare). 0xFF never occurs in valid UTF-8, so a parsed string
 * containing it held a NUL. */
#define RP_JSON_NUL_MARK '\xff'

/* ------------------------------------------------------------------ */
/* reading JSON documents                                              */
/* ------------------------------------------------------------------ */

/* A printable excerpt of an outside string for an error message. */
const char *rp_json_shown(const char *s, char out[RP_JSON_SHOWN_MAX + 4])
{
    size_t i;

    for (i = 0; s[i] && i < RP_JSON_SHOWN_MAX; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static bool rp_json_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool rp_json_number_ok(const unsigned char *s, size_t n)
{
    size_t i = 0, start;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && rp_json_digit(s[i]))
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && rp_json_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < n && rp_json_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

static bool rp_json_number_char(unsigned char c)
{
    return rp_json_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' ||
           c == 'E';
}

/* cJSON is more forgiving than JSON.parse (numbers like +1 or 01, raw
 * control characters in strings, any byte <= 0x20 as whitespace) and
 * decodes "\u0000" into a NUL that would silently cut a C string, so an
 * id "a\u0000!" would read as "a". Before cJSON sees a document we reject
 * what a strict parser rejects and swap each "\u0000" for
 * RP_JSON_NUL_MARK. Returns a NUL-terminated copy (caller frees) and its
 * length, or NULL for text that is not JSON (or NOMEM: *nomem set). */
static char *rp_json_prepare(const char *json, size_t len, size_t *out_len,
                            bool *nomem)
{
    const unsigned char *p = (const unsigned char *)json;
    bool in_str = false;
    size_t i = 0, o = 0;
    char *buf;

    *nomem = false;
    if (!rp_utf8_valid(json, len))
        return NULL;
    if (!(buf = malloc(len + 1))) {
        *nomem = true;
        return NULL;
    }
    while (i < len) {
        unsigned char c = p[i];

        if (in_str) {
            if (c < 0x20)
                goto fail;
            if (c == '"') {
                in_str = false;
            } else if (c == '\\') {
                if (i + 1 >= len)
                    goto fail;
                if (p[i + 1] == 'u' && len - i >= 6 &&
                    memcmp(p + i + 2, "0000", 4) == 0) {
                    buf[o++] = RP_JSON_NUL_MARK;
                    i += 6;
                    continue;
                }
                /* Copy the escaped byte too: it must not end the string. */
                buf[o++] = (char)c;
                c = p[++i];
            }
            buf[o++] = (char)c;
            i++;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '-' || rp_json_digit(c)) {
            size_t j = i;

            while (j < len && rp_json_number_char(p[j]))
                j++;
            if (!rp_json_number_ok(p + i, j - i))
                goto fail;
            memcpy(buf + o, p + i, j - i);
            o += j - i;
            i = j;
            continue;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            goto fail;
        }
        buf[o++] = (char)c;
        i++;
    }
    buf[o] = '\0';
    *out_len = o;
    return buf;
fail:
    free(buf);
    return NULL;
}

/* Parse one JSON object of at most hard_max bytes. */
rp_err_t rp_json_load(const char *json, size_t len, size_t hard_max,
                            const char *what, cJSON **root, char *errstr,
                            size_t errstr_size)
{
    size_t plen = 0;
    bool nomem;
    char *text;

    *root = NULL;
    if (!json)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "not a JSON object");
    if (len > hard_max)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s of %zu bytes is over the limit of %zu bytes", what,
                       len, hard_max);
    text = rp_json_prepare(json, len, &plen, &nomem);
    if (!text)
        return nomem ? rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                               "out of memory")
                     : rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "not a JSON object");
    /* With require_null_terminated, cJSON rejects trailing garbage; the
     * terminating NUL must lie inside the length it is given. */
    *root = cJSON_ParseWithLengthOpts(text, plen + 1, NULL, 1);
    free(text);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "not a JSON object");
    }
    return RP_OK;
}

/* Stands for a field that occurred twice; every check rejects it. */
static const cJSON rp_json_dup_item = {.type = cJSON_Invalid};

/* Sort obj's members into items[] by name (names[], n of them). Reports
 * the first unknown or repeated member, but always fills every known one
 * (a repeated one as rp_json_dup_item) so the caller can still read the ids
 * of a message it is about to reject. where: "" or "timings." etc. */
rp_err_t rp_json_fields(const cJSON *obj, const char *where,
                              const char *const names[], size_t n,
                              const cJSON *items[], char *errstr,
                              size_t errstr_size)
{
    char shown[RP_JSON_SHOWN_MAX + 4];
    rp_err_t err = RP_OK;

    for (size_t k = 0; k < n; k++)
        items[k] = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        size_t k = 0;

        while (k < n && strcmp(names[k], c->string) != 0)
            k++;
        if (k == n) {
            if (!err)
                err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                              "%s%s: unknown field", where,
                              rp_json_shown(c->string, shown));
        } else if (items[k]) {
            /* JSON.parse would silently keep the last one; a reader that
             * kept the first would see a different message. Refuse both. */
            if (!err)
                err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                              "%s%s: duplicate field", where, names[k]);
            items[k] = &rp_json_dup_item;
        } else {
            items[k] = c;
        }
    }
    return err;
}

rp_err_t rp_json_required(const cJSON *it, const char *where,
                                const char *name, char *errstr,
                                size_t errstr_size)
{
    if (it)
        return RP_OK;
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s%s: required",
                   where, name);
}

rp_err_t rp_json_get_version(const cJSON *it, char *errstr,
                                   size_t errstr_size)
{
    if (!it)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "v: required");
    if (!cJSON_IsNumber(it) || it->valuedouble != RP_CONTRACT_VERSION)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "v: must be %d",
                       RP_CONTRACT_VERSION);
    return RP_OK;
}

/* A present id member into out[RP_ID_MAX + 1]; out untouched on error. */
rp_err_t rp_json_get_id(const cJSON *it, const char *name, char *out,
                              char *errstr, size_t errstr_size)
{
    size_t n;

    if (!cJSON_IsString(it) ||
        !rp_id_valid(it->valuestring, n = strlen(it->valuestring)))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be 1 to %d characters of [A-Za-z0-9._:-], "
                       "not \".\" or \"..\"",
                       name, RP_ID_MAX);
    memcpy(out, it->valuestring, n + 1);
    return RP_OK;
}

/* An integral number in [min, max]. Like JSON Schema's "integer", 2.0
 * counts as an integer and 2.5 or "2" do not. */
rp_err_t rp_json_get_int(const cJSON *it, const char *where,
                               const char *name, int64_t min, int64_t max,
                               int64_t *out, char *errstr, size_t errstr_size)
{
    double d;

    if (cJSON_IsNumber(it)) {
        d = it->valuedouble;
        /* Range first: the cast below is only defined for values in it
         * (and comparisons with NaN are false). */
        if (d >= (double)min && d <= (double)max && (double)(int64_t)d == d) {
            *out = (int64_t)d;
            return RP_OK;
        }
    }
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                   "%s%s: must be an integer from %lld to %lld", where, name,
                   (long long)min, (long long)max);
}

rp_err_t rp_json_get_bool(const cJSON *it, const char *name, bool *out,
                                char *errstr, size_t errstr_size)
{
    if (!cJSON_IsBool(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be true or false", name);
    *out = cJSON_IsTrue(it);
    return RP_OK;
}

/* A string of min_len..max_len bytes without NUL; *out borrowed from it. */
rp_err_t rp_json_get_str(const cJSON *it, const char *where,
                               const char *name, size_t min_len,
                               size_t max_len, const char **out,
                               size_t *out_len, char *errstr,
                               size_t errstr_size)
{
    size_t n;

    if (!cJSON_IsString(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s%s: must be a string", where, name);
    n = strlen(it->valuestring);
    if (memchr(it->valuestring, RP_JSON_NUL_MARK, n))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s%s: must not contain NUL characters", where, name);
    if (n > max_len)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "%s%s: longer than %zu bytes", where, name, max_len);
    if (n < min_len)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s%s: must not be empty", where, name);
    *out = it->valuestring;
    if (out_len)
        *out_len = n;
    return RP_OK;
}

/* Like rp_json_get_str, into a malloc'd copy. */
rp_err_t rp_json_dup_str(const cJSON *it, const char *where,
                               const char *name, size_t min_len,
                               size_t max_len, char **out, char *errstr,
                               size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err;

    err = rp_json_get_str(it, where, name, min_len, max_len, &s, &n, errstr,
                         errstr_size);
    if (err)
        return err;
    if (!(*out = malloc(n + 1)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n + 1);
    return RP_OK;
}

/* The value of n decimal digits at s (the caller checked they are). */
static int rp_json_digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* The runpool timestamp rules on top of rp_time_parse_rfc3339, so that
 * exactly what ajv's "date-time" format plus the schema's pattern accept
 * gets through: upper-case T and Z, real calendar dates, and a leap
 * second only at 23:59:60 UTC. */
static bool rp_json_time_ok(const char *s, int64_t *ms)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 1, umi, uh;
    const char *p = s + sizeof(shape) - 1;

    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !rp_json_digit((unsigned char)s[i])
                            : s[i] != shape[i])
            return false;
    if (*p == '.') {
        if (!rp_json_digit((unsigned char)*++p))
            return false;
        while (rp_json_digit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && rp_json_digit((unsigned char)p[1]) &&
               rp_json_digit((unsigned char)p[2]) && p[3] == ':' &&
               rp_json_digit((unsigned char)p[4]) &&
               rp_json_digit((unsigned char)p[5])) {
        sign = *p == '-' ? -1 : 1;
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        p += 6;
    } else {
        return false;
    }
    if (*p || rp_time_parse_rfc3339(s, ms) != 0)
        return false;
    /* The shape is fixed (checked above), so the fields are digits at
     * fixed offsets; no sscanf, which showed in the worker's profile. */
    y = rp_json_digits(s, 4);
    mo = rp_json_digits(s + 5, 2);
    d = rp_json_digits(s + 8, 2);
    h = rp_json_digits(s + 11, 2);
    mi = rp_json_digits(s + 14, 2);
    sec = rp_json_digits(s + 17, 2);
    /* rp_time_parse_rfc3339 allows February 29 in every year. */
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return false;
    if (sec == 60) {
        umi = mi - om * sign;
        uh = h - oh * sign - (umi < 0 ? 1 : 0);
        if (!((uh == 23 || uh == -1) && (umi == 59 || umi == -1)))
            return false;
    }
    return true;
}

rp_err_t rp_json_get_time(const cJSON *it, const char *name,
                                int64_t *out, char *errstr, size_t errstr_size)
{
    if (!cJSON_IsString(it) || !rp_json_time_ok(it->valuestring, out))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be an RFC 3339 date-time like "
                       "2026-01-02T03:04:05.678Z",
                       name);
    return RP_OK;
}

/* An env object: string -> string under the RP_ENV_* limits. */
rp_err_t rp_json_get_env(const cJSON *it, const char *name,
                               rp_env_t *out, char *errstr, size_t errstr_size)
{
    char shown[RP_JSON_SHOWN_MAX + 4], where[RP_JSON_SHOWN_MAX + 16];
    size_t count = 0;
    const char *value;
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be an object of strings", name);
    for (const cJSON *c = it->child; c; c = c->next) {
        if (++count > RP_ENV_MAX_VARS)
            return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                           "%s: more than %d variables", name, RP_ENV_MAX_VARS);
        rp_json_shown(c->string, shown);
        if (strlen(c->string) > RP_ENV_NAME_MAX)
            return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                           "%s: variable name longer than %d bytes", name,
                           RP_ENV_NAME_MAX);
        if (!rp_env_name_valid(c->string))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: invalid variable name \"%s\" (must match "
                           "[A-Za-z_][A-Za-z0-9_]*)",
                           name, shown);
        if (rp_env_get(out, c->string))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: duplicate variable %s", name, shown);
        snprintf(where, sizeof(where), "%s.%s", name, shown);
        err = rp_json_get_str(c, "", where, 0, RP_ENV_VALUE_MAX, &value, NULL,
                             errstr, errstr_size);
        if (err)
            return err;
        if ((err = rp_env_set(out, c->string, value)))
            return rp_errf(errstr, errstr_size, err, "out of memory");
    }
    return RP_OK;
}

/* cwd: an absolute path (the executor records getcwd()). */
rp_err_t rp_json_get_cwd(const cJSON *it, char **out, char *errstr,
                               size_t errstr_size)
{
    rp_err_t err = rp_json_dup_str(it, "", "cwd", 1, RP_CWD_MAX, out, errstr,
                                  errstr_size);

    if (!err && (*out)[0] != '/')
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cwd: must be an absolute path");
    return err;
}


/* ------------------------------------------------------------------ */
/* writing JSON documents                                              */
/* ------------------------------------------------------------------ */

/* Add a string member that is guaranteed valid UTF-8 (bytes that are not
 * become '?': a document we cannot read back would be worse). */
bool rp_json_add_text(cJSON *obj, const char *name, const char *s)
{
    char *clean = NULL;
    cJSON *item;

    if (!rp_utf8_valid(s, strlen(s)) && !(s = clean = rp_utf8_sanitize(s)))
        return false;
    item = cJSON_AddStringToObject(obj, name, s);
    free(clean);
    return item != NULL;
}

bool rp_json_add_int(cJSON *obj, const char *name, int64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

bool rp_json_add_time(cJSON *obj, const char *name, int64_t ms)
{
    char ts[RP_TIME_RFC3339_MAX];

    rp_time_rfc3339(ms, ts, sizeof(ts));
    return cJSON_AddStringToObject(obj, name, ts) != NULL;
}

bool rp_json_add_env(cJSON *obj, const char *name, const rp_env_t *env)
{
    cJSON *e = cJSON_AddObjectToObject(obj, name);

    if (!e)
        return false;
    for (size_t i = 0; i < env->n; i++)
        if (!rp_json_add_text(e, env->vars[i].name, env->vars[i].value))
            return false;
    return true;
}

/* Print and free root; NULL when anything before failed (ok false). */
char *rp_json_finish(cJSON *root, bool ok)
{
    char *out = ok && root ? cJSON_PrintUnformatted(root) : NULL;

    cJSON_Delete(root);
    return out;
}
