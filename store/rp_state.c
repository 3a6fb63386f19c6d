/* rp_state — URL dispatch, key rules and the argument checks shared by
 * every backend. Backends live in rp_state_<scheme>.c. */
#include "rp_state.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_state_file.h"
#include "rp_state_gs.h"

/* Every built backend. Adding one (Cloud Storage next) is its file plus one
 * line here; the "supported:" list in errors follows automatically. */
static const rp_state_ops_t *const rp_state_backends[] = {
    &rp_state_file_ops,
    &rp_state_gs_ops,
};

#define RP_STATE_NBACKENDS \
    (sizeof(rp_state_backends) / sizeof(rp_state_backends[0]))

/* Longest URL scheme we accept before "://"; real ones are 2-5 bytes. */
#define RP_STATE_SCHEME_MAX 32
/* Room for "file, gs, ..." in error messages. */
#define RP_STATE_SUPPORTED_MAX 128
/* Keys in error messages are cut to this many bytes to keep lines short. */
#define RP_STATE_KEY_SHOWN 160

static int rp_state_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '-';
}

/* One segment: non-empty, not "." or "..", only key characters. */
static int rp_state_segment_valid(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (i = 0; i < n; i++) {
        if (!rp_state_key_char(s[i]))
            return 0;
    }
    return 1;
}

int rp_state_key_valid(const char *key)
{
    size_t len, start, i;

    if (!key)
        return 0;
    len = strnlen(key, RP_STATE_KEY_MAX + 1);
    if (len == 0 || len > RP_STATE_KEY_MAX)
        return 0;
    /* A leading or trailing '/' shows up as an empty segment. */
    start = 0;
    for (i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            if (!rp_state_segment_valid(key + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

/* Length of the scheme in "scheme://...", or 0 when url has no such
 * prefix. RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static size_t rp_state_scheme_len(const char *url)
{
    size_t i;

    if (!((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')))
        return 0;
    for (i = 1; i < RP_STATE_SCHEME_MAX && url[i] != '\0'; i++) {
        char c = url[i];

        if (c == ':')
            return strncmp(url + i, "://", 3) == 0 ? i : 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 0;
}

static void rp_state_supported(char *out, size_t out_size)
{
    size_t i, used = 0;

    out[0] = '\0';
    for (i = 0; i < RP_STATE_NBACKENDS; i++) {
        int n = snprintf(out + used, out_size - used, "%s%s", i ? ", " : "",
                         rp_state_backends[i]->scheme);

        if (n < 0 || (size_t)n >= out_size - used)
            return;
        used += (size_t)n;
    }
}

rp_err_t rp_state_open(const char *url, rp_state_t **out, char *errstr,
                       size_t errstr_size)
{
    return rp_state_open_opts(url, NULL, out, errstr, errstr_size);
}

rp_err_t rp_state_open_opts(const char *url, const rp_state_opts_t *opts,
                            rp_state_t **out, char *errstr,
                            size_t errstr_size)
{
    static const rp_state_opts_t defaults;
    const rp_state_ops_t *ops = NULL;
    char supported[RP_STATE_SUPPORTED_MAX];
    rp_state_t *st;
    size_t url_len, scheme_len, i;
    rp_err_t err;

    if (!out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_state_open: out is NULL");
    *out = NULL;
    if (!url || url[0] == '\0')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "empty state URL (expected e.g. file:///var/lib/runpool)");
    url_len = strnlen(url, RP_STATE_URL_MAX);
    if (url_len >= RP_STATE_URL_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL longer than %d bytes", RP_STATE_URL_MAX - 1);
    scheme_len = rp_state_scheme_len(url);
    if (scheme_len == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "malformed state URL '%s' (expected scheme://..., "
                       "e.g. file:///var/lib/runpool)",
                       url);
    for (i = 0; i < RP_STATE_NBACKENDS; i++) {
        const char *scheme = rp_state_backends[i]->scheme;

        if (strlen(scheme) == scheme_len &&
            strncmp(scheme, url, scheme_len) == 0) {
            ops = rp_state_backends[i];
            break;
        }
    }
    if (!ops) {
        rp_state_supported(supported, sizeof(supported));
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "unsupported state URL scheme '%.*s' (supported: %s)",
                       (int)scheme_len, url, supported);
    }

    st = calloc(1, sizeof(*st));
    if (!st)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "out of memory opening state store");
    st->ops = ops;
    memcpy(st->url, url, url_len + 1);
    err = ops->open(st, st->url, opts ? opts : &defaults, errstr,
                    errstr_size);
    if (err != RP_OK) {
        free(st);
        return err;
    }
    *out = st;
    return RP_OK;
}

void rp_state_destroy(rp_state_t *st)
{
    if (!st)
        return;
    st->ops->close(st);
    free(st);
}

static rp_err_t rp_state_check(const rp_state_t *st, const char *key,
                               char *errstr, size_t errstr_size)
{
    if (!st)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state store is NULL");
    if (!rp_state_key_valid(key))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "invalid state key '%.*s' (want '/'-separated segments "
                       "of [A-Za-z0-9._:-], no empty, '.' or '..' segment, "
                       "at most %d bytes)",
                       RP_STATE_KEY_SHOWN, key ? key : "(null)",
                       RP_STATE_KEY_MAX);
    return RP_OK;
}

rp_err_t rp_state_get(rp_state_t *st, const char *key, rp_buf_t *out,
                      uint64_t *version, char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_state_check(st, key, errstr, errstr_size);

    if (err != RP_OK)
        return err;
    if (!out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_state_get '%s': out buffer is NULL", key);
    return st->ops->get(st, key, out, version, errstr, errstr_size);
}

rp_err_t rp_state_put(rp_state_t *st, const char *key, const void *data,
                      size_t len, uint64_t if_version, uint64_t *new_version,
                      char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_state_check(st, key, errstr, errstr_size);

    if (err != RP_OK)
        return err;
    if (!data && len > 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_state_put '%s': data is NULL", key);
    if (len > RP_STATE_VALUE_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "state value for '%s' is %zu bytes (max %d)", key, len,
                       RP_STATE_VALUE_MAX);
    return st->ops->put(st, key, data ? data : "", len, if_version,
                        new_version, errstr, errstr_size);
}

rp_err_t rp_state_delete(rp_state_t *st, const char *key, uint64_t if_version,
                         char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_state_check(st, key, errstr, errstr_size);

    if (err != RP_OK)
        return err;
    return st->ops->del(st, key, if_version, errstr, errstr_size);
}

rp_err_t rp_state_list(rp_state_t *st, const char *prefix,
                       rp_state_list_cb *cb, void *opaque, char *errstr,
                       size_t errstr_size)
{
    if (!st)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state store is NULL");
    if (!prefix || !cb)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_state_list: prefix and cb must not be NULL");
    if (strnlen(prefix, RP_STATE_KEY_MAX + 1) > RP_STATE_KEY_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state list prefix longer than %d bytes",
                       RP_STATE_KEY_MAX);
    return st->ops->list(st, prefix, cb, opaque, errstr, errstr_size);
}

/* The keys of one rp_state_delete_prefix call, collected before deleting
 * (a backend's listing need not survive deletes under it). */
typedef struct rp_state_keys {
    char **keys;
    size_t n, cap;
    bool full;
    bool nomem;
} rp_state_keys_t;

static int rp_state_collect(void *opaque, const char *key, uint64_t version)
{
    rp_state_keys_t *k = opaque;
    char **grown;

    (void)version;
    if (k->n >= RP_STATE_DELETE_PREFIX_MAX) {
        k->full = true;
        return 1;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;

        if (!(grown = realloc(k->keys, cap * sizeof(*grown)))) {
            k->nomem = true;
            return 1;
        }
        k->keys = grown;
        k->cap = cap;
    }
    if (!(k->keys[k->n] = strdup(key))) {
        k->nomem = true;
        return 1;
    }
    k->n++;
    return 0;
}

rp_err_t rp_state_delete_prefix(rp_state_t *st, const char *prefix,
                                size_t *deleted, char *errstr,
                                size_t errstr_size)
{
    rp_state_keys_t k = {0};
    size_t plen = prefix ? strlen(prefix) : 0, done = 0;
    rp_err_t err;

    if (deleted)
        *deleted = 0;
    if (plen < 2 || prefix[plen - 1] != '/')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_state_delete_prefix: prefix '%s' must name a "
                       "folder (end in '/')", prefix ? prefix : "(null)");
    err = rp_state_list(st, prefix, rp_state_collect, &k, errstr, errstr_size);
    if (err == RP_OK && k.nomem)
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                      "listing %s: out of memory", prefix);
    for (size_t i = 0; err == RP_OK && i < k.n; i++) {
        err = rp_state_delete(st, k.keys[i], RP_STATE_ANY, errstr,
                              errstr_size);
        if (err == RP_ERR_NOT_FOUND)
            err = RP_OK; /* someone else deleted it first */
        if (err == RP_OK)
            done++;
    }
    if (err == RP_OK && k.full)
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "more than %d keys under %s: deleted %zu, call again",
                      RP_STATE_DELETE_PREFIX_MAX, prefix, done);
    for (size_t i = 0; i < k.n; i++)
        free(k.keys[i]);
    free(k.keys);
    if (deleted)
        *deleted = done;
    return err;
}
