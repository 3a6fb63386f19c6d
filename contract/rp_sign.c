#include "rp_sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "rp_secfile.h"
#include "rp_text.h"

/* The whole key file, at most: every line at its maximum. */
#define RP_SIGN_FILE_MAX ((size_t)(RP_SIGN_LINE_MAX + 1) * 64)

typedef struct rp_sign_key {
    char kid[RP_SIGN_KID_MAX + 1];
    unsigned char *key;
    size_t len;
} rp_sign_key_t;

struct rp_sign_keys {
    size_t n;
    rp_sign_key_t k[RP_SIGN_KEYS_MAX];
    EVP_MAC *mac; /* HMAC, fetched once; shared by every thread */
};

static bool rp_sign_kid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool rp_sign_kid_valid(const char *s, size_t n)
{
    if (n < 1 || n > RP_SIGN_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rp_sign_kid_char(s[i]))
            return false;
    return true;
}

static const rp_sign_key_t *rp_sign_find(const rp_sign_keys_t *k,
                                         const char *kid)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->k[i].kid, kid) == 0)
            return &k->k[i];
    return NULL;
}

void rp_sign_keys_destroy(rp_sign_keys_t *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        if (k->k[i].key)
            OPENSSL_cleanse(k->k[i].key, k->k[i].len);
        free(k->k[i].key);
    }
    EVP_MAC_free(k->mac);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

size_t rp_sign_keys_count(const rp_sign_keys_t *k)
{
    return k ? k->n : 0;
}

const char *rp_sign_keys_kid(const rp_sign_keys_t *k, size_t i)
{
    return k && i < k->n ? k->k[i].kid : NULL;
}

/* One line "kid:base64" (no newline) into k. */
static rp_err_t rp_sign_line(rp_sign_keys_t *k, const char *s, size_t n,
                             unsigned lineno, char *errstr, size_t es)
{
    const char *colon = memchr(s, ':', n);
    size_t kidlen = colon ? (size_t)(colon - s) : 0;
    char *raw = NULL;
    size_t rawlen = 0;
    rp_err_t err = RP_OK;

    if (!colon || !rp_sign_kid_valid(s, kidlen)) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "line %u: expected KID:BASE64-KEY, KID 1..%d chars of "
                      "[A-Za-z0-9._-]", lineno, RP_SIGN_KID_MAX);
        goto out;
    }
    if (k->n >= RP_SIGN_KEYS_MAX) {
        err = rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                      "line %u: more than %d keys", lineno, RP_SIGN_KEYS_MAX);
        goto out;
    }
    memcpy(k->k[k->n].kid, s, kidlen);
    k->k[k->n].kid[kidlen] = '\0';
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->k[i].kid, k->k[k->n].kid) == 0) {
            err = rp_errf(errstr, es, RP_ERR_INVALID,
                          "line %u: key id '%s' given twice", lineno,
                          k->k[k->n].kid);
            goto out;
        }
    if (rp_base64_decode(colon + 1, n - kidlen - 1, &raw, &rawlen) != RP_OK) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "line %u (key id '%s'): the key is not valid base64",
                      lineno, k->k[k->n].kid);
        goto out;
    }
    if (rawlen < RP_SIGN_KEY_MIN || rawlen > RP_SIGN_KEY_MAX) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "line %u (key id '%s'): the key is %zu bytes; it must be "
                      "%d..%d bytes once decoded (e.g. openssl rand -base64 32)",
                      lineno, k->k[k->n].kid, rawlen, RP_SIGN_KEY_MIN,
                      RP_SIGN_KEY_MAX);
        goto out;
    }
    k->k[k->n].key = (unsigned char *)raw;
    k->k[k->n].len = rawlen;
    k->n++;
    raw = NULL;
out:
    if (raw) {
        OPENSSL_cleanse(raw, rawlen);
        free(raw);
    }
    return err;
}

rp_err_t rp_sign_keys_parse(const char *text, size_t len,
                            rp_sign_keys_t **out, char *errstr, size_t es)
{
    rp_sign_keys_t *k;
    rp_err_t err = RP_OK;
    unsigned lineno = 0;
    size_t pos = 0;

    *out = NULL;
    if (!(k = calloc(1, sizeof(*k))))
        return rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
    while (pos < len) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        size_t b = 0;

        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n > RP_SIGN_LINE_MAX) {
            err = rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                          "line %u: longer than %d bytes", lineno,
                          RP_SIGN_LINE_MAX);
            goto out;
        }
        /* Surrounding blanks (and a CR) are not part of a key. */
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        while (b < n && (s[b] == ' ' || s[b] == '\t'))
            b++;
        if (b == n || s[b] == '#')
            continue;
        if (memchr(s + b, '\0', n - b)) {
            err = rp_errf(errstr, es, RP_ERR_INVALID, "line %u: a NUL byte",
                          lineno);
            goto out;
        }
        if ((err = rp_sign_line(k, s + b, n - b, lineno, errstr, es)))
            goto out;
    }
    if (!k->n) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "no key (expected lines KID:BASE64-KEY)");
        goto out;
    }
    if (!(k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL))) {
        err = rp_errf(errstr, es, RP_ERR_INTERNAL,
                      "OpenSSL has no HMAC implementation");
        goto out;
    }
    *out = k;
    k = NULL;
out:
    rp_sign_keys_destroy(k);
    return err;
}

rp_err_t rp_sign_keys_load(const char *path, rp_sign_keys_t **out,
                           char *errstr, size_t es)
{
    char msg[512];
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    rp_err_t err = RP_OK;
    int fd;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return rp_errf(errstr, es, errno == ENOENT ? RP_ERR_NOT_FOUND
                                                   : RP_ERR_IO,
                       "signing key file %s: %s", path, strerror(errno));
    /* fstat the opened file: what is checked is what is read (a mounted
     * secret is a symlink; its target counts). */
    if (fstat(fd, &st) != 0) {
        err = rp_errf(errstr, es, RP_ERR_IO, "signing key file %s: %s", path,
                      strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = rp_errf(errstr, es, RP_ERR_INVALID,
                      "signing key file %s: not a regular file", path);
        goto out;
    }
    /* The rule every secret file of runpool follows (base/rp_secfile.h). */
    if ((err = rp_secfile_check("signing key file", path, &st, geteuid(),
                                errstr, es)))
        goto out;
    if ((size_t)st.st_size > RP_SIGN_FILE_MAX) {
        err = rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                      "signing key file %s: larger than %zu bytes", path,
                      RP_SIGN_FILE_MAX);
        goto out;
    }
    if (!(buf = malloc(RP_SIGN_FILE_MAX + 1))) {
        err = rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, RP_SIGN_FILE_MAX + 1 - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = rp_errf(errstr, es, RP_ERR_IO, "signing key file %s: %s",
                          path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > RP_SIGN_FILE_MAX) {
            err = rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                          "signing key file %s: larger than %zu bytes", path,
                          RP_SIGN_FILE_MAX);
            goto out;
        }
    }
    if ((err = rp_sign_keys_parse(buf, len, out, msg, sizeof(msg))))
        err = rp_errf(errstr, es, err, "signing key file %s: %s", path, msg);
out:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    close(fd);
    return err;
}

/* HMAC-SHA256(key, "<t>.<kafka key>.<value>") into mac. */
static bool rp_sign_mac(const rp_sign_keys_t *k, const rp_sign_key_t *key,
                        const char *t_text, const void *mkey, size_t mkeylen,
                        const void *value, size_t len,
                        unsigned char mac[RP_SIGN_MAC_LEN])
{
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(k->mac);
    size_t outl = 0;
    bool ok;

    ok = ctx && EVP_MAC_init(ctx, key->key, key->len, params) &&
         EVP_MAC_update(ctx, (const unsigned char *)t_text, strlen(t_text)) &&
         EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
         (!mkeylen || EVP_MAC_update(ctx, mkey, mkeylen)) &&
         EVP_MAC_update(ctx, (const unsigned char *)".", 1) &&
         (!len || EVP_MAC_update(ctx, value, len)) &&
         EVP_MAC_final(ctx, mac, &outl, RP_SIGN_MAC_LEN) &&
         outl == RP_SIGN_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

rp_err_t rp_sign_header(const rp_sign_keys_t *k, const char *kid, int64_t t,
                        const void *key, size_t keylen, const void *value,
                        size_t len, char out[RP_SIGN_HEADER_MAX + 1],
                        char *errstr, size_t es)
{
    static const char hex[] = "0123456789abcdef";
    const rp_sign_key_t *sk;
    unsigned char mac[RP_SIGN_MAC_LEN];
    char t_text[32], machex[2 * RP_SIGN_MAC_LEN + 1];
    int n;

    out[0] = '\0';
    if (!k || !k->n)
        return rp_errf(errstr, es, RP_ERR_INVALID, "no signing keys");
    sk = kid ? rp_sign_find(k, kid) : &k->k[0];
    if (!sk)
        return rp_errf(errstr, es, RP_ERR_NOT_FOUND,
                       "no signing key with id '%s'", kid);
    if (t < 0)
        return rp_errf(errstr, es, RP_ERR_INVALID, "time before 1970");
    snprintf(t_text, sizeof(t_text), "%" PRId64, t);
    if (!rp_sign_mac(k, sk, t_text, key, keylen, value, len, mac))
        return rp_errf(errstr, es, RP_ERR_INTERNAL, "HMAC-SHA256 failed");
    for (size_t i = 0; i < RP_SIGN_MAC_LEN; i++) {
        machex[2 * i] = hex[mac[i] >> 4];
        machex[2 * i + 1] = hex[mac[i] & 15];
    }
    machex[2 * RP_SIGN_MAC_LEN] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
    n = snprintf(out, RP_SIGN_HEADER_MAX + 1, "t=%s,kid=%s,v1=%s", t_text,
                 sk->kid, machex);
    if (n < 0 || n > RP_SIGN_HEADER_MAX)
        return rp_errf(errstr, es, RP_ERR_INTERNAL, "header too long");
    return RP_OK;
}

/* ---- parsing ---- */

static int rp_sign_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase too: the format is lowercase */
}

/* Does s[pos..] start with lit? */
static bool rp_sign_lit(const char *s, size_t len, size_t pos, const char *lit)
{
    size_t n = strlen(lit);

    return len - pos >= n && memcmp(s + pos, lit, n) == 0;
}

rp_err_t rp_sign_parse(const char *s, size_t len, rp_sign_parsed_t *out,
                       char *errstr, size_t es)
{
    char seen[RP_SIGN_KEYS_MAX][RP_SIGN_KID_MAX + 1];
    size_t pos, b, nkids = 0;
    bool cur_has_v1 = false;

    memset(out, 0, sizeof(*out));
    if (len > RP_SIGN_HEADER_MAX)
        return rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                       "signature header longer than %d bytes",
                       RP_SIGN_HEADER_MAX);
    if (!rp_sign_lit(s, len, 0, "t="))
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "signature header must start with t=");
    pos = b = 2;
    while (pos < len && s[pos] >= '0' && s[pos] <= '9')
        pos++;
    if (pos == b || pos - b > RP_SIGN_T_DIGITS_MAX ||
        (s[b] == '0' && pos - b > 1))
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "signature header: t must be 1..%d decimal digits "
                       "without a leading zero", RP_SIGN_T_DIGITS_MAX);
    memcpy(out->t_text, s + b, pos - b);
    out->t_text[pos - b] = '\0';
    out->t = (int64_t)strtoll(out->t_text, NULL, 10); /* <= 12 digits */
    while (pos < len) {
        if (rp_sign_lit(s, len, pos, ",kid=")) {
            if (nkids && !cur_has_v1)
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "signature header: kid=%s has no v1=",
                               seen[nkids - 1]);
            pos += 5;
            b = pos;
            while (pos < len && rp_sign_kid_char(s[pos]))
                pos++;
            if (!rp_sign_kid_valid(s + b, pos - b))
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "signature header: kid must be 1..%d chars of "
                               "[A-Za-z0-9._-]", RP_SIGN_KID_MAX);
            if (nkids >= RP_SIGN_KEYS_MAX)
                return rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                               "signature header: more than %d kids",
                               RP_SIGN_KEYS_MAX);
            memcpy(seen[nkids], s + b, pos - b);
            seen[nkids][pos - b] = '\0';
            for (size_t i = 0; i < nkids; i++)
                if (strcmp(seen[i], seen[nkids]) == 0)
                    return rp_errf(errstr, es, RP_ERR_INVALID,
                                   "signature header: kid=%s twice", seen[i]);
            nkids++;
            cur_has_v1 = false;
        } else if (rp_sign_lit(s, len, pos, ",v1=")) {
            rp_sign_mac_t *m;

            if (!nkids)
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "signature header: v1= before any kid=");
            if (out->n >= RP_SIGN_MACS_MAX)
                return rp_errf(errstr, es, RP_ERR_TOO_LARGE,
                               "signature header: more than %d v1 entries",
                               RP_SIGN_MACS_MAX);
            pos += 4;
            if (len - pos < 2 * RP_SIGN_MAC_LEN)
                return rp_errf(errstr, es, RP_ERR_INVALID,
                               "signature header: v1 must be %d lowercase hex "
                               "digits", 2 * RP_SIGN_MAC_LEN);
            m = &out->mac[out->n];
            for (size_t i = 0; i < RP_SIGN_MAC_LEN; i++) {
                int hi = rp_sign_hexval(s[pos + 2 * i]);
                int lo = rp_sign_hexval(s[pos + 2 * i + 1]);

                if (hi < 0 || lo < 0)
                    return rp_errf(errstr, es, RP_ERR_INVALID,
                                   "signature header: v1 must be %d lowercase "
                                   "hex digits", 2 * RP_SIGN_MAC_LEN);
                m->mac[i] = (unsigned char)(hi << 4 | lo);
            }
            memcpy(m->kid, seen[nkids - 1], sizeof(m->kid));
            pos += 2 * RP_SIGN_MAC_LEN;
            out->n++;
            cur_has_v1 = true;
        } else {
            return rp_errf(errstr, es, RP_ERR_INVALID,
                           "signature header: unexpected text at byte %zu "
                           "(expected ,kid= or ,v1=)", pos);
        }
    }
    if (!nkids)
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "signature header: no kid= and v1=");
    if (!cur_has_v1)
        return rp_errf(errstr, es, RP_ERR_INVALID,
                       "signature header: kid=%s has no v1=", seen[nkids - 1]);
    return RP_OK;
}

/* ---- verifying ---- */

static void rp_sign_why(char *why, size_t ws, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rp_sign_why(char *why, size_t ws, const char *fmt, ...)
{
    va_list ap;

    if (!why || !ws)
        return;
    va_start(ap, fmt);
    vsnprintf(why, ws, fmt, ap);
    va_end(ap);
}

rp_sign_status_t rp_sign_verify(const rp_sign_keys_t *k, const char *hdr,
                                size_t hdrlen, const void *key, size_t keylen,
                                const void *value, size_t len, int64_t now_s,
                                int max_age_s, char *why, size_t ws)
{
    rp_sign_parsed_t p;
    char msg[256];
    unsigned char want[RP_SIGN_MAC_LEN];
    const rp_sign_key_t *last = NULL;
    bool known = false, computed = false;
    int match = 0;
    int64_t age;

    if (!hdr) {
        rp_sign_why(why, ws, "the request has no %s header and this worker "
                    "runs signed requests only", RP_SIGN_HEADER_NAME);
        return RP_SIGN_UNSIGNED;
    }
    if (rp_sign_parse(hdr, hdrlen, &p, msg, sizeof(msg)) != RP_OK) {
        rp_sign_why(why, ws, "%s", msg);
        return RP_SIGN_BAD;
    }
    for (size_t i = 0; i < p.n; i++) {
        const rp_sign_key_t *sk = k ? rp_sign_find(k, p.mac[i].kid) : NULL;

        if (!sk)
            continue;
        known = true;
        if (sk != last) { /* v1 entries of one kid are adjacent */
            computed = rp_sign_mac(k, sk, p.t_text, key, keylen, value, len,
                                   want);
            last = sk;
        }
        /* Every entry is compared, the whole MAC each time. */
        if (computed)
            match |= CRYPTO_memcmp(want, p.mac[i].mac, RP_SIGN_MAC_LEN) == 0;
    }
    OPENSSL_cleanse(want, sizeof(want));
    if (!known) {
        rp_sign_why(why, ws, "signed with key id%s %s%s, which this worker "
                    "does not know", p.n > 1 ? "s" : "", p.mac[0].kid,
                    p.n > 1 ? ", ..." : "");
        return RP_SIGN_UNKNOWN_KEY;
    }
    if (!match) {
        rp_sign_why(why, ws, "the signature does not match the message "
                    "(forged, altered, or signed with another key)");
        return RP_SIGN_BAD;
    }
    age = now_s - p.t;
    if (age > max_age_s || age < -(int64_t)max_age_s) {
        rp_sign_why(why, ws, "signed at t=%s, %lld s %s this worker's clock; "
                    "the tolerance is %d s", p.t_text,
                    (long long)(age < 0 ? -age : age),
                    age < 0 ? "ahead of" : "behind", max_age_s);
        return RP_SIGN_EXPIRED;
    }
    return RP_SIGN_OK;
}

rp_code_t rp_sign_code(rp_sign_status_t s)
{
    switch (s) {
    case RP_SIGN_UNSIGNED:
        return RP_CODE_UNSIGNED;
    case RP_SIGN_BAD:
        return RP_CODE_BAD_SIGNATURE;
    case RP_SIGN_UNKNOWN_KEY:
        return RP_CODE_UNKNOWN_KEY;
    case RP_SIGN_EXPIRED:
        return RP_CODE_EXPIRED_SIGNATURE;
    default:
        return RP_CODE_INTERNAL;
    }
}
