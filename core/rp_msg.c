/* rp_msg — the C side of schemas/NAME.schema.json (see rp_msg.h).
 *
 * The parsers here must accept exactly the documents the schemas accept:
 * tests/unit/test_msg.c and tests/schema/validate.js both run the shared
 * vectors in schemas/examples/ so the two cannot drift apart silently.
 * Where they cannot agree (JSON Schema counts characters, we count bytes;
 * JSON.parse keeps the last of duplicate keys, we reject duplicates) the
 * C side is the stricter one.
 */
#include "rp_msg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Largest integer a reader that holds numbers as doubles (JavaScript, and
 * cJSON itself) keeps exactly; the schemas use the same bound. */
#define RP_MSG_INT_MAX 9007199254740991LL

/* A request over RP_REQUEST_MAX is rejected, but up to this size we still
 * parse it to find its ids, so the requester gets a "rejected" result
 * rather than silence. Beyond it we do not even look. */
#define RP_MSG_SALVAGE_MAX (4 * RP_REQUEST_MAX)

/* Stands in for a JSON "\u0000" escape while cJSON parses (see
 * rp_msg_prepare). 0xFF never occurs in valid UTF-8, so a parsed string
 * containing it held a NUL. */
#define RP_MSG_NUL_MARK '\xff'

/* Field names quoted in error messages come from outside: show at most
 * this many bytes of them. */
#define RP_MSG_SHOWN_MAX 48

/* Base64 text of an RP_OUTPUT_MAX_LIMIT-byte output. */
#define RP_MSG_B64_OUTPUT_MAX (((size_t)RP_OUTPUT_MAX_LIMIT + 2) / 3 * 4)

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
/* ids                                                                 */
/* ------------------------------------------------------------------ */

bool rp_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > RP_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    /* "." and ".." would be path segments of their own in the state store
     * (sessions/{id}/...), so they are not ids. */
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return false;
    return true;
}

rp_err_t rp_id_generate(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t got = 0, o = 0;

    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return RP_ERR_IO;
        }
        got += (size_t)r;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
    return RP_OK;
}

/* ------------------------------------------------------------------ */
/* UTF-8 and base64                                                    */
/* ------------------------------------------------------------------ */

/* Length (1..4) of the valid, non-NUL UTF-8 sequence at p (avail bytes
 * readable), or 0 when none starts there. */
static size_t rp_utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], cp, min;
    size_t need;

    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        need = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        need = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail - 1 < need)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past Unicode. */
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

bool rp_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    if (!s)
        return n == 0;
    while (i < n) {
        size_t k;

        if (p[i] - 1u < 0x7f) { /* ASCII other than NUL: the common case */
            i++;
            continue;
        }
        if (!(k = rp_utf8_seq(p + i, n - i)))
            return false;
        i += k;
    }
    return true;
}

size_t rp_utf8_trim(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = n, back = 0, need;
    unsigned lead;

    if (!s || n == 0)
        return 0;
    while (i > 0 && back < 3 && (p[i - 1] & 0xc0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return n;
    lead = p[i - 1];
    if ((lead & 0xe0) == 0xc0)
        need = 2;
    else if ((lead & 0xf0) == 0xe0)
        need = 3;
    else if ((lead & 0xf8) == 0xf0)
        need = 4;
    else
        return n; /* ASCII or not a lead byte: nothing was cut */
    return back + 1 < need ? i - 1 : n;
}

/* A copy of s that is valid UTF-8: each byte that does not start a valid
 * sequence becomes '?'. Never longer than s. Caller frees. */
static char *rp_utf8_sanitize(const char *s)
{
    size_t n = strlen(s), i = 0;
    char *out = malloc(n + 1);

    if (!out)
        return NULL;
    memcpy(out, s, n + 1);
    while (i < n) {
        size_t k = rp_utf8_seq((const unsigned char *)s + i, n - i);

        if (k == 0) {
            out[i] = '?';
            k = 1;
        }
        i += k;
    }
    return out;
}

static const char rp_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *rp_base64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i, o = 0;
    char *out;

    if (len > (SIZE_MAX - 1) / 4 * 3 - 3 || (!data && len))
        return NULL;
    if (!(out = malloc((len + 2) / 3 * 4 + 1)))
        return NULL;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];

        out[o++] = rp_b64_alphabet[v >> 18];
        out[o++] = rp_b64_alphabet[(v >> 12) & 63];
        out[o++] = rp_b64_alphabet[(v >> 6) & 63];
        out[o++] = rp_b64_alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        out[o++] = rp_b64_alphabet[v >> 18];
        out[o++] = rp_b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? rp_b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int rp_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

rp_err_t rp_base64_decode(const char *text, size_t len, char **out,
                          size_t *out_len)
{
    size_t pad = 0, o = 0;
    char *buf;

    if (!out)
        return RP_ERR_INVALID;
    *out = NULL;
    if (out_len)
        *out_len = 0;
    /* Strict RFC 4648: padded, no whitespace, '=' only at the very end. */
    if ((!text && len) || len % 4 != 0)
        return RP_ERR_INVALID;
    if (len >= 4 && text[len - 1] == '=')
        pad = text[len - 2] == '=' ? 2 : 1;
    if (!(buf = malloc(len / 4 * 3 + 1)))
        return RP_ERR_NOMEM;
    for (size_t i = 0; i < len; i += 4) {
        unsigned v = 0;

        for (size_t k = 0; k < 4; k++) {
            int d = i + k >= len - pad ? 0 : rp_b64_value(text[i + k]);

            if (d < 0) {
                free(buf);
                return RP_ERR_INVALID;
            }
            v = v << 6 | (unsigned)d;
        }
        buf[o++] = (char)(v >> 16);
        if (i + 4 < len || pad < 2)
            buf[o++] = (char)(v >> 8);
        if (i + 4 < len || pad < 1)
            buf[o++] = (char)v;
    }
    buf[o] = '\0';
    *out = buf;
    if (out_len)
        *out_len = o;
    return RP_OK;
}

/* ------------------------------------------------------------------ */
/* reading JSON documents                                              */
/* ------------------------------------------------------------------ */

/* A printable excerpt of an outside string for an error message. */
static const char *rp_msg_shown(const char *s, char out[RP_MSG_SHOWN_MAX + 4])
{
    size_t i;

    for (i = 0; s[i] && i < RP_MSG_SHOWN_MAX; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static bool rp_msg_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool rp_msg_number_ok(const unsigned char *s, size_t n)
{
    size_t i = 0, start;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && rp_msg_digit(s[i]))
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && rp_msg_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < n && rp_msg_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

static bool rp_msg_number_char(unsigned char c)
{
    return rp_msg_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' ||
           c == 'E';
}

/* cJSON is more forgiving than JSON.parse (numbers like +1 or 01, raw
 * control characters in strings, any byte <= 0x20 as whitespace) and
 * decodes "\u0000" into a NUL that would silently cut a C string, so an
 * id "a\u0000!" would read as "a". Before cJSON sees a document we reject
 * what a strict parser rejects and swap each "\u0000" for
 * RP_MSG_NUL_MARK. Returns a NUL-terminated copy (caller frees) and its
 * length, or NULL for text that is not JSON (or NOMEM: *nomem set). */
static char *rp_msg_prepare(const char *json, size_t len, size_t *out_len,
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
                    buf[o++] = RP_MSG_NUL_MARK;
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
        } else if (c == '-' || rp_msg_digit(c)) {
            size_t j = i;

            while (j < len && rp_msg_number_char(p[j]))
                j++;
            if (!rp_msg_number_ok(p + i, j - i))
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
static rp_err_t rp_msg_load(const char *json, size_t len, size_t hard_max,
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
    text = rp_msg_prepare(json, len, &plen, &nomem);
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
static const cJSON rp_msg_dup_item = {.type = cJSON_Invalid};

/* Sort obj's members into items[] by name (names[], n of them). Reports
 * the first unknown or repeated member, but always fills every known one
 * (a repeated one as rp_msg_dup_item) so the caller can still read the ids
 * of a message it is about to reject. where: "" or "timings." etc. */
static rp_err_t rp_msg_fields(const cJSON *obj, const char *where,
                              const char *const names[], size_t n,
                              const cJSON *items[], char *errstr,
                              size_t errstr_size)
{
    char shown[RP_MSG_SHOWN_MAX + 4];
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
                              rp_msg_shown(c->string, shown));
        } else if (items[k]) {
            /* JSON.parse would silently keep the last one; a reader that
             * kept the first would see a different message. Refuse both. */
            if (!err)
                err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                              "%s%s: duplicate field", where, names[k]);
            items[k] = &rp_msg_dup_item;
        } else {
            items[k] = c;
        }
    }
    return err;
}

static rp_err_t rp_msg_required(const cJSON *it, const char *where,
                                const char *name, char *errstr,
                                size_t errstr_size)
{
    if (it)
        return RP_OK;
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s%s: required",
                   where, name);
}

static rp_err_t rp_msg_get_version(const cJSON *it, char *errstr,
                                   size_t errstr_size)
{
    if (!it)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "v: required");
    if (!cJSON_IsNumber(it) || it->valuedouble != RP_MSG_VERSION)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "v: must be %d",
                       RP_MSG_VERSION);
    return RP_OK;
}

/* A present id member into out[RP_ID_MAX + 1]; out untouched on error. */
static rp_err_t rp_msg_get_id(const cJSON *it, const char *name, char *out,
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
static rp_err_t rp_msg_get_int(const cJSON *it, const char *where,
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

static rp_err_t rp_msg_get_bool(const cJSON *it, const char *name, bool *out,
                                char *errstr, size_t errstr_size)
{
    if (!cJSON_IsBool(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be true or false", name);
    *out = cJSON_IsTrue(it);
    return RP_OK;
}

/* A string of min_len..max_len bytes without NUL; *out borrowed from it. */
static rp_err_t rp_msg_get_str(const cJSON *it, const char *where,
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
    if (memchr(it->valuestring, RP_MSG_NUL_MARK, n))
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

/* Like rp_msg_get_str, into a malloc'd copy. */
static rp_err_t rp_msg_dup_str(const cJSON *it, const char *where,
                               const char *name, size_t min_len,
                               size_t max_len, char **out, char *errstr,
                               size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err;

    err = rp_msg_get_str(it, where, name, min_len, max_len, &s, &n, errstr,
                         errstr_size);
    if (err)
        return err;
    if (!(*out = malloc(n + 1)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n + 1);
    return RP_OK;
}

/* The runpool timestamp rules on top of rp_time_parse_rfc3339, so that
 * exactly what ajv's "date-time" format plus the schema's pattern accept
 * gets through: upper-case T and Z, real calendar dates, and a leap
 * second only at 23:59:60 UTC. */
static bool rp_msg_time_ok(const char *s, int64_t *ms)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 1, umi, uh;
    const char *p = s + sizeof(shape) - 1;

    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !rp_msg_digit((unsigned char)s[i])
                            : s[i] != shape[i])
            return false;
    if (*p == '.') {
        if (!rp_msg_digit((unsigned char)*++p))
            return false;
        while (rp_msg_digit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && rp_msg_digit((unsigned char)p[1]) &&
               rp_msg_digit((unsigned char)p[2]) && p[3] == ':' &&
               rp_msg_digit((unsigned char)p[4]) &&
               rp_msg_digit((unsigned char)p[5])) {
        sign = *p == '-' ? -1 : 1;
        oh = (p[1] - '0') * 10 + (p[2] - '0');
        om = (p[4] - '0') * 10 + (p[5] - '0');
        p += 6;
    } else {
        return false;
    }
    if (*p || rp_time_parse_rfc3339(s, ms) != 0)
        return false;
    /* The shape is fixed, so the fields sit at fixed offsets. */
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return false;
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

static rp_err_t rp_msg_get_time(const cJSON *it, const char *name,
                                int64_t *out, char *errstr, size_t errstr_size)
{
    if (!cJSON_IsString(it) || !rp_msg_time_ok(it->valuestring, out))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: must be an RFC 3339 date-time like "
                       "2026-01-02T03:04:05.678Z",
                       name);
    return RP_OK;
}

/* An env object: string -> string under the RP_ENV_* limits. */
static rp_err_t rp_msg_get_env(const cJSON *it, const char *name,
                               rp_env_t *out, char *errstr, size_t errstr_size)
{
    char shown[RP_MSG_SHOWN_MAX + 4], where[RP_MSG_SHOWN_MAX + 16];
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
        rp_msg_shown(c->string, shown);
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
        err = rp_msg_get_str(c, "", where, 0, RP_ENV_VALUE_MAX, &value, NULL,
                             errstr, errstr_size);
        if (err)
            return err;
        if ((err = rp_env_set(out, c->string, value)))
            return rp_errf(errstr, errstr_size, err, "out of memory");
    }
    return RP_OK;
}

/* ------------------------------------------------------------------ */
/* writing JSON documents                                              */
/* ------------------------------------------------------------------ */

/* Add a string member that is guaranteed valid UTF-8 (bytes that are not
 * become '?': a document we cannot read back would be worse). */
static bool rp_msg_add_text(cJSON *obj, const char *name, const char *s)
{
    char *clean = NULL;
    cJSON *item;

    if (!rp_utf8_valid(s, strlen(s)) && !(s = clean = rp_utf8_sanitize(s)))
        return false;
    item = cJSON_AddStringToObject(obj, name, s);
    free(clean);
    return item != NULL;
}

static bool rp_msg_add_int(cJSON *obj, const char *name, int64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

static bool rp_msg_add_time(cJSON *obj, const char *name, int64_t ms)
{
    char ts[RP_TIME_RFC3339_MAX];

    rp_time_rfc3339(ms, ts, sizeof(ts));
    return cJSON_AddStringToObject(obj, name, ts) != NULL;
}

static bool rp_msg_add_env(cJSON *obj, const char *name, const rp_env_t *env)
{
    cJSON *e = cJSON_AddObjectToObject(obj, name);

    if (!e)
        return false;
    for (size_t i = 0; i < env->n; i++)
        if (!rp_msg_add_text(e, env->vars[i].name, env->vars[i].value))
            return false;
    return true;
}

/* Print and free root; NULL when anything before failed (ok false). */
static char *rp_msg_finish(cJSON *root, bool ok)
{
    char *out = ok && root ? cJSON_PrintUnformatted(root) : NULL;

    cJSON_Delete(root);
    return out;
}

/* ------------------------------------------------------------------ */
/* env as a standalone JSON object (COMMAND_ENV)                       */
/* ------------------------------------------------------------------ */

rp_err_t rp_env_validate(const rp_env_t *env, const char *what, char *errstr,
                         size_t errstr_size)
{
    char shown[RP_MSG_SHOWN_MAX + 4];

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
                           what, rp_msg_shown(var->name, shown));
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
        ok = rp_msg_add_text(root, env->vars[i].name, env->vars[i].value);
    return rp_msg_finish(root, ok);
}

rp_err_t rp_env_parse_json(const char *json, size_t len, rp_env_t *out,
                           const char *what, char *errstr, size_t errstr_size)
{
    cJSON *root = NULL;
    rp_err_t err;

    /* An env object can never be larger than the request it came from. */
    err = rp_msg_load(json, len, RP_REQUEST_MAX, what, &root, errstr,
                      errstr_size);
    if (err == RP_ERR_INVALID)
        err = rp_errf(errstr, errstr_size, err, "%s: not a JSON object", what);
    if (!err)
        err = rp_msg_get_env(root, what, out, errstr, errstr_size);
    cJSON_Delete(root);
    return err;
}

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
    RQ__COUNT
};

static const char *const rp_request_fields[RQ__COUNT] = {
    "v",       "execution_id", "session_id", "op",
    "command", "timeout_s",    "env",        "submitted_at",
};

rp_err_t rp_request_parse(const char *json, size_t len, rp_request_t *out,
                          char *errstr, size_t errstr_size)
{
    const cJSON *f[RQ__COUNT];
    char ferr[256];
    cJSON *root = NULL;
    rp_err_t err, fields_err;
    int64_t n = 0;

    memset(out, 0, sizeof(*out));
    out->timeout_s = RP_TIMEOUT_DEFAULT_S;
    if (json && len > RP_MSG_SALVAGE_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "request of %zu bytes is over the limit of %d bytes", len,
                      RP_REQUEST_MAX);
        goto out;
    }
    err = rp_msg_load(json, len, RP_MSG_SALVAGE_MAX, "request", &root, errstr,
                      errstr_size);
    if (err)
        goto out;
    fields_err = rp_msg_fields(root, "", rp_request_fields, RQ__COUNT, f, ferr,
                               sizeof(ferr));
    /* The ids come first, whatever else is wrong: the worker needs them to
     * address its "rejected" result to the requester. */
    if (f[RQ_EXECUTION_ID])
        rp_msg_get_id(f[RQ_EXECUTION_ID], "", out->execution_id, NULL, 0);
    if (f[RQ_SESSION_ID])
        rp_msg_get_id(f[RQ_SESSION_ID], "", out->session_id, NULL, 0);

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
    if ((err = rp_msg_get_version(f[RQ_V], errstr, errstr_size)) ||
        (err = rp_msg_required(f[RQ_EXECUTION_ID], "", "execution_id", errstr,
                               errstr_size)) ||
        (err = rp_msg_get_id(f[RQ_EXECUTION_ID], "execution_id",
                             out->execution_id, errstr, errstr_size)) ||
        (err = rp_msg_required(f[RQ_SESSION_ID], "", "session_id", errstr,
                               errstr_size)) ||
        (err = rp_msg_get_id(f[RQ_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)))
        goto out;

    if (f[RQ_OP]) {
        const char *op = cJSON_IsString(f[RQ_OP]) ? f[RQ_OP]->valuestring : "";

        if (strcmp(op, "exec") == 0) {
            out->op = RP_OP_EXEC;
        } else if (strcmp(op, "close_session") == 0) {
            out->op = RP_OP_CLOSE_SESSION;
        } else {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "op: must be \"exec\" or \"close_session\"");
            goto out;
        }
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
        err = rp_msg_dup_str(f[RQ_COMMAND], "", "command", 1, RP_COMMAND_MAX,
                             &out->command, errstr, errstr_size);
        if (err)
            goto out;
    }
    if (f[RQ_TIMEOUT_S]) {
        err = rp_msg_get_int(f[RQ_TIMEOUT_S], "", "timeout_s", RP_TIMEOUT_MIN_S,
                             RP_TIMEOUT_MAX_S, &n, errstr, errstr_size);
        if (err)
            goto out;
        out->timeout_s = (int)n;
    }
    if (f[RQ_ENV] && (err = rp_msg_get_env(f[RQ_ENV], "env", &out->env,
                                           errstr, errstr_size)))
        goto out;
    if (f[RQ_SUBMITTED_AT]) {
        err = rp_msg_get_time(f[RQ_SUBMITTED_AT], "submitted_at",
                              &out->submitted_at_ms, errstr, errstr_size);
        if (err)
            goto out;
        out->has_submitted_at = true;
    }
out:
    cJSON_Delete(root);
    return err;
}

char *rp_request_to_json(const rp_request_t *req)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    ok = ok && rp_msg_add_int(root, "v", RP_MSG_VERSION) &&
         rp_msg_add_text(root, "execution_id", req->execution_id) &&
         rp_msg_add_text(root, "session_id", req->session_id);
    if (ok && req->op == RP_OP_CLOSE_SESSION)
        ok = rp_msg_add_text(root, "op", "close_session");
    if (ok && req->op == RP_OP_EXEC)
        ok = rp_msg_add_text(root, "command", req->command ? req->command : "");
    if (ok && req->timeout_s > 0)
        ok = rp_msg_add_int(root, "timeout_s", req->timeout_s);
    if (ok && req->env.n > 0)
        ok = rp_msg_add_env(root, "env", &req->env);
    if (ok && req->has_submitted_at)
        ok = rp_msg_add_time(root, "submitted_at", req->submitted_at_ms);
    return rp_msg_finish(root, ok);
}

void rp_request_clear(rp_request_t *req)
{
    if (!req)
        return;
    free(req->command);
    rp_env_clear(&req->env);
    memset(req, 0, sizeof(*req));
    req->timeout_s = RP_TIMEOUT_DEFAULT_S;
}

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

/* error.code: snake_case like rp_err_code(); the schema says the same. */
static bool rp_msg_error_code_valid(const char *code)
{
    size_t i;

    if (!code || !(code[0] >= 'a' && code[0] <= 'z'))
        return false;
    for (i = 0; code[i]; i++)
        if (i >= 64 || !((code[i] >= 'a' && code[i] <= 'z') ||
                         (code[i] >= '0' && code[i] <= '9') || code[i] == '_'))
            return false;
    return true;
}

rp_err_t rp_result_set_error(rp_result_t *res, const char *code,
                             const char *message)
{
    char *c, *m;
    size_t n;

    if (!res || !rp_msg_error_code_valid(code))
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
static char *rp_msg_output_text(const char *data, size_t len, bool base64)
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
static bool rp_msg_add_ref(cJSON *obj, const char *name, const char *s)
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
static bool rp_msg_add_errmsg(cJSON *obj, const char *msg)
{
    size_t n = strlen(msg);
    char *cut;
    bool ok;

    if (n <= RP_ERRMSG_MAX)
        return rp_msg_add_text(obj, "message", msg);
    if (!(cut = strndup(msg, rp_utf8_trim(msg, RP_ERRMSG_MAX))))
        return false;
    ok = rp_msg_add_text(obj, "message", cut);
    free(cut);
    return ok;
}

static bool rp_msg_add_int_or_null(cJSON *obj, const char *name, bool has,
                                   int v)
{
    return has ? rp_msg_add_int(obj, name, v)
               : cJSON_AddNullToObject(obj, name) != NULL;
}

/* Durations come from clocks of different hosts (queue_wait_ms compares
 * the producer's clock with ours), so a small negative value is skew,
 * not a bug worth an unreadable document. */
static int64_t rp_msg_nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
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
    out_text = rp_msg_output_text(res->stdout_data, out_len, b64);
    err_text = rp_msg_output_text(res->stderr_data, err_len, b64);
    root = cJSON_CreateObject();
    ok = out_text && err_text && root;

    ok = ok && rp_msg_add_int(root, "v", RP_MSG_VERSION) &&
         rp_msg_add_text(root, "execution_id", res->execution_id) &&
         rp_msg_add_text(root, "session_id", res->session_id) &&
         rp_msg_add_text(root, "status", rp_status_str(st)) &&
         rp_msg_add_int_or_null(root, "exit_code", res->has_exit_code,
                                res->exit_code) &&
         rp_msg_add_int_or_null(root, "signal", res->has_signal, res->signal) &&
         rp_msg_add_ref(root, "stdout", out_text) &&
         rp_msg_add_ref(root, "stderr", err_text) &&
         cJSON_AddBoolToObject(root, "stdout_truncated",
                               res->stdout_truncated) &&
         cJSON_AddBoolToObject(root, "stderr_truncated",
                               res->stderr_truncated) &&
         rp_msg_add_text(root, "encoding", b64 ? "base64" : "utf-8");
    if (ok && res->cwd)
        ok = rp_msg_add_text(root, "cwd", res->cwd);
    if (ok && res->started_at_ms > 0)
        ok = rp_msg_add_time(root, "started_at", res->started_at_ms);
    if (ok && res->finished_at_ms > 0)
        ok = rp_msg_add_time(root, "finished_at", res->finished_at_ms);
    ok = ok && rp_msg_add_int(root, "duration_ms",
                              rp_msg_nonneg(res->duration_ms));
    if (ok && res->has_timings) {
        const rp_timings_t *t = &res->timings;

        ok = (obj = cJSON_AddObjectToObject(root, "timings")) &&
             rp_msg_add_int(obj, "queue_wait_ms",
                            rp_msg_nonneg(t->queue_wait_ms)) &&
             rp_msg_add_int(obj, "state_load_ms",
                            rp_msg_nonneg(t->state_load_ms)) &&
             rp_msg_add_int(obj, "run_ms", rp_msg_nonneg(t->run_ms)) &&
             rp_msg_add_int(obj, "state_save_ms",
                            rp_msg_nonneg(t->state_save_ms));
    }
    /* `error` belongs to rejected/error results and only to them (the
     * schema requires both directions); a missing one is still filled in
     * so the document stays valid and says something. */
    if (ok && rp_status_has_error(st)) {
        const char *code = rp_msg_error_code_valid(res->error_code)
                               ? res->error_code
                               : "internal";
        const char *msg = res->error_message ? res->error_message
                                             : "no error message recorded";

        ok = (obj = cJSON_AddObjectToObject(root, "error")) &&
             rp_msg_add_text(obj, "code", code) && rp_msg_add_errmsg(obj, msg);
    }
    if (ok && res->worker)
        ok = rp_msg_add_text(root, "worker", res->worker);
    if (ok && include_env)
        ok = rp_msg_add_env(root, "env", &res->env);
    out = rp_msg_finish(root, ok);
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
    RS__COUNT
};

static const char *const rp_result_fields[RS__COUNT] = {
    "v",           "execution_id",     "session_id",       "status",
    "exit_code",   "signal",           "stdout",           "stderr",
    "stdout_truncated", "stderr_truncated", "encoding",     "cwd",
    "started_at",  "finished_at",      "duration_ms",      "timings",
    "error",       "worker",           "env",
};

/* The members every result carries (rp_result_to_json always writes them). */
static const int rp_result_required[] = {
    RS_V,       RS_EXECUTION_ID, RS_SESSION_ID,       RS_STATUS,
    RS_EXIT_CODE, RS_SIGNAL,     RS_STDOUT,           RS_STDERR,
    RS_STDOUT_TRUNCATED, RS_STDERR_TRUNCATED, RS_ENCODING, RS_DURATION_MS,
};

/* exit_code / signal: null or an integer in [min, max]. */
static rp_err_t rp_msg_get_opt_int(const cJSON *it, const char *name, int min,
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
    if ((err = rp_msg_get_int(it, "", name, min, max, &v, errstr, errstr_size)))
        return err;
    *has = true;
    *out = (int)v;
    return RP_OK;
}

static rp_err_t rp_msg_get_output(const cJSON *it, const char *name,
                                  bool base64, char **data, size_t *len,
                                  char *errstr, size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err;

    if (!base64) {
        err = rp_msg_dup_str(it, "", name, 0, RP_OUTPUT_MAX_LIMIT, data,
                             errstr, errstr_size);
        if (!err)
            *len = strlen(*data);
        return err;
    }
    err = rp_msg_get_str(it, "", name, 0, RP_MSG_B64_OUTPUT_MAX, &s, &n, errstr,
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

static rp_err_t rp_msg_get_timings(const cJSON *it, rp_timings_t *t,
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
    if ((err = rp_msg_fields(it, "timings.", names, 4, f, errstr, errstr_size)))
        return err;
    for (size_t k = 0; k < 4; k++) {
        if ((err = rp_msg_required(f[k], "timings.", names[k], errstr,
                                   errstr_size)) ||
            (err = rp_msg_get_int(f[k], "timings.", names[k], 0, RP_MSG_INT_MAX,
                                  dst[k], errstr, errstr_size)))
            return err;
    }
    return RP_OK;
}

static rp_err_t rp_msg_get_error(const cJSON *it, rp_result_t *res,
                                 char *errstr, size_t errstr_size)
{
    static const char *const names[] = {"code", "message"};
    const cJSON *f[2];
    rp_err_t err;

    if (!cJSON_IsObject(it))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "error: must be an object with code and message");
    if ((err = rp_msg_fields(it, "error.", names, 2, f, errstr, errstr_size)) ||
        (err = rp_msg_required(f[0], "error.", "code", errstr, errstr_size)) ||
        (err = rp_msg_required(f[1], "error.", "message", errstr,
                               errstr_size)))
        return err;
    if (!cJSON_IsString(f[0]) || !rp_msg_error_code_valid(f[0]->valuestring))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "error.code: must be 1 to 64 characters of [a-z0-9_] "
                       "starting with a letter");
    if ((err = rp_msg_dup_str(f[0], "error.", "code", 1, 64, &res->error_code,
                              errstr, errstr_size)))
        return err;
    return rp_msg_dup_str(f[1], "error.", "message", 0, RP_ERRMSG_MAX,
                          &res->error_message, errstr, errstr_size);
}

/* cwd: an absolute path (the executor records getcwd()). */
static rp_err_t rp_msg_get_cwd(const cJSON *it, char **out, char *errstr,
                               size_t errstr_size)
{
    rp_err_t err = rp_msg_dup_str(it, "", "cwd", 1, RP_CWD_MAX, out, errstr,
                                  errstr_size);

    if (!err && (*out)[0] != '/')
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cwd: must be an absolute path");
    return err;
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
    err = rp_msg_load(json, len, RP_RESULT_MAX, "result", &root, errstr,
                      errstr_size);
    if (err)
        goto out;
    err = rp_msg_fields(root, "", rp_result_fields, RS__COUNT, f, errstr,
                        errstr_size);
    if (err)
        goto out;
    if ((err = rp_msg_get_version(f[RS_V], errstr, errstr_size)))
        goto out;
    for (size_t i = 0; i < sizeof(rp_result_required) / sizeof(int); i++) {
        int k = rp_result_required[i];

        if ((err = rp_msg_required(f[k], "", rp_result_fields[k], errstr,
                                   errstr_size)))
            goto out;
    }
    if ((err = rp_msg_get_id(f[RS_EXECUTION_ID], "execution_id",
                             out->execution_id, errstr, errstr_size)) ||
        (err = rp_msg_get_id(f[RS_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)))
        goto out;
    if (!cJSON_IsString(f[RS_STATUS]) ||
        rp_status_parse(f[RS_STATUS]->valuestring, &out->status) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "status: must be one of succeeded, failed, timed_out, "
                      "rejected, error");
        goto out;
    }
    if ((err = rp_msg_get_opt_int(f[RS_EXIT_CODE], "exit_code", 0, 255,
                                  &out->has_exit_code, &out->exit_code, errstr,
                                  errstr_size)) ||
        (err = rp_msg_get_opt_int(f[RS_SIGNAL], "signal", 1, 127,
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
    if ((err = rp_msg_get_output(f[RS_STDOUT], "stdout", b64, &out->stdout_data,
                                 &out->stdout_len, errstr, errstr_size)) ||
        (err = rp_msg_get_output(f[RS_STDERR], "stderr", b64, &out->stderr_data,
                                 &out->stderr_len, errstr, errstr_size)) ||
        (err = rp_msg_get_bool(f[RS_STDOUT_TRUNCATED], "stdout_truncated",
                               &out->stdout_truncated, errstr, errstr_size)) ||
        (err = rp_msg_get_bool(f[RS_STDERR_TRUNCATED], "stderr_truncated",
                               &out->stderr_truncated, errstr, errstr_size)))
        goto out;
    if (f[RS_CWD] &&
        (err = rp_msg_get_cwd(f[RS_CWD], &out->cwd, errstr, errstr_size)))
        goto out;
    if (f[RS_STARTED_AT] &&
        (err = rp_msg_get_time(f[RS_STARTED_AT], "started_at",
                               &out->started_at_ms, errstr, errstr_size)))
        goto out;
    if (f[RS_FINISHED_AT] &&
        (err = rp_msg_get_time(f[RS_FINISHED_AT], "finished_at",
                               &out->finished_at_ms, errstr, errstr_size)))
        goto out;
    if ((err = rp_msg_get_int(f[RS_DURATION_MS], "", "duration_ms", 0,
                              RP_MSG_INT_MAX, &n, errstr, errstr_size)))
        goto out;
    out->duration_ms = n;
    if (f[RS_TIMINGS]) {
        if ((err = rp_msg_get_timings(f[RS_TIMINGS], &out->timings, errstr,
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
    if (!rp_status_has_error(out->status) && f[RS_ERROR]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "error: must be absent when status is \"%s\"",
                      rp_status_str(out->status));
        goto out;
    }
    if (f[RS_ERROR] &&
        (err = rp_msg_get_error(f[RS_ERROR], out, errstr, errstr_size)))
        goto out;
    if (f[RS_WORKER] &&
        (err = rp_msg_dup_str(f[RS_WORKER], "", "worker", 1, RP_WORKER_NAME_MAX,
                              &out->worker, errstr, errstr_size)))
        goto out;
    if (f[RS_ENV]) {
        if ((err = rp_msg_get_env(f[RS_ENV], "env", &out->env, errstr,
                                  errstr_size)))
            goto out;
        out->has_env = true;
    }
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
    memset(res, 0, sizeof(*res));
}

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

    ok = ok && rp_msg_add_int(root, "v", RP_MSG_VERSION) &&
         rp_msg_add_text(root, "session_id", s->session_id);
    if (ok && s->cwd)
        ok = rp_msg_add_text(root, "cwd", s->cwd);
    ok = ok && rp_msg_add_env(root, "env", &s->env) &&
         rp_msg_add_time(root, "created_at", s->created_at_ms) &&
         rp_msg_add_time(root, "updated_at", s->updated_at_ms) &&
         rp_msg_add_int(root, "execution_count", s->execution_count);
    if (ok && s->last_execution_id[0])
        ok = rp_msg_add_text(root, "last_execution_id", s->last_execution_id);
    return rp_msg_finish(root, ok);
}

rp_err_t rp_session_parse(const char *json, size_t len, rp_session_t *out,
                          char *errstr, size_t errstr_size)
{
    const cJSON *f[SS__COUNT];
    cJSON *root = NULL;
    rp_err_t err;

    memset(out, 0, sizeof(*out));
    err = rp_msg_load(json, len, RP_STATE_DOC_MAX, "session state", &root,
                      errstr, errstr_size);
    if (err)
        goto out;
    if ((err = rp_msg_fields(root, "", rp_session_fields, SS__COUNT, f, errstr,
                             errstr_size)) ||
        (err = rp_msg_get_version(f[SS_V], errstr, errstr_size)) ||
        (err = rp_msg_required(f[SS_SESSION_ID], "", "session_id", errstr,
                               errstr_size)) ||
        (err = rp_msg_get_id(f[SS_SESSION_ID], "session_id", out->session_id,
                             errstr, errstr_size)) ||
        (err = rp_msg_required(f[SS_ENV], "", "env", errstr, errstr_size)) ||
        (err = rp_msg_required(f[SS_CREATED_AT], "", "created_at", errstr,
                               errstr_size)) ||
        (err = rp_msg_required(f[SS_UPDATED_AT], "", "updated_at", errstr,
                               errstr_size)) ||
        (err = rp_msg_required(f[SS_EXECUTION_COUNT], "", "execution_count",
                               errstr, errstr_size)))
        goto out;
    if (f[SS_CWD] &&
        (err = rp_msg_get_cwd(f[SS_CWD], &out->cwd, errstr, errstr_size)))
        goto out;
    if ((err = rp_msg_get_env(f[SS_ENV], "env", &out->env, errstr,
                              errstr_size)) ||
        (err = rp_msg_get_time(f[SS_CREATED_AT], "created_at",
                               &out->created_at_ms, errstr, errstr_size)) ||
        (err = rp_msg_get_time(f[SS_UPDATED_AT], "updated_at",
                               &out->updated_at_ms, errstr, errstr_size)) ||
        (err = rp_msg_get_int(f[SS_EXECUTION_COUNT], "", "execution_count", 0,
                              RP_MSG_INT_MAX, &out->execution_count, errstr,
                              errstr_size)))
        goto out;
    if (f[SS_LAST_EXECUTION_ID] &&
        (err = rp_msg_get_id(f[SS_LAST_EXECUTION_ID], "last_execution_id",
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
