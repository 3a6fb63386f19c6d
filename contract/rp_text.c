/* rp_text — UTF-8 checks and base64 (see rp_text.h). */
#include "rp_text.h"

#include <stdlib.h>
#include <string.h>

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
char *rp_utf8_sanitize(const char *s)
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
