/* The runpool-signature header and the signing key file
 * (contract/rp_sign.h). The first byte picks:
 *   0: the rest is a header, parsed and verified against a fixed message
 *      and key set; a header that parses is canonical (rendering the
 *      parsed form gives back the same bytes), and verification never
 *      says OK for a header that does not parse;
 *   1: the rest is a key file; a loaded set has 1..RP_SIGN_KEYS_MAX keys
 *      and signs and verifies with each of its kids;
 *   2: the rest is a Kafka key (up to the first NUL) and a value, signed
 *      and verified; one flipped bit of the value is refused. */
#include "fuzz_common.h"
#include "rp_sign.h"

#define FZ_KEYS \
    "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n" \
    "k2:cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM=\n"
#define FZ_T 1764770000

static rp_sign_keys_t *fz_keys(void)
{
    static rp_sign_keys_t *k;
    char err[256];

    if (!k && rp_sign_keys_parse(FZ_KEYS, sizeof(FZ_KEYS) - 1, &k, err,
                                 sizeof(err)) != RP_OK)
        abort();
    return k; /* kept for the whole run */
}

/* The parsed header written back in the one form the grammar allows. */
static size_t fz_render(const rp_sign_parsed_t *p, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "t=%s", p->t_text);

    for (size_t i = 0; i < p->n && n < size; i++) {
        if (i == 0 || strcmp(p->mac[i].kid, p->mac[i - 1].kid) != 0)
            n += (size_t)snprintf(out + n, size - n, ",kid=%s",
                                  p->mac[i].kid);
        n += (size_t)snprintf(out + n, size - n, ",v1=");
        for (size_t j = 0; j < RP_SIGN_MAC_LEN && n < size; j++)
            n += (size_t)snprintf(out + n, size - n, "%02x", p->mac[i].mac[j]);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char mkey[] = "user-42";
    static const char value[] =
        "{\"v\":1,\"execution_id\":\"e-1\",\"session_id\":\"user-42\","
        "\"command\":\"echo hi\"}";
    rp_sign_keys_t *keys = fz_keys();
    char err[256], why[256], hdr[RP_SIGN_HEADER_MAX + 1];

    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;

    switch (data[0] % 3) {
    case 0: {
        rp_sign_parsed_t p;
        char back[RP_SIGN_HEADER_MAX * 2];
        rp_err_t perr = rp_sign_parse(body, len, &p, err, sizeof(err));
        rp_sign_status_t st =
            rp_sign_verify(keys, body, len, mkey, strlen(mkey), value,
                           strlen(value), FZ_T, 300, why, sizeof(why));

        FUZZ_CHECK(st >= RP_SIGN_OK && st <= RP_SIGN_EXPIRED);
        FUZZ_CHECK(st != RP_SIGN_UNSIGNED);
        if (perr != RP_OK) {
            FUZZ_CHECK(err[0] != '\0');
            FUZZ_CHECK(st == RP_SIGN_BAD);
            break;
        }
        FUZZ_CHECK(p.n >= 1 && p.n <= RP_SIGN_MACS_MAX);
        FUZZ_CHECK(strlen(p.t_text) >= 1 &&
                   strlen(p.t_text) <= RP_SIGN_T_DIGITS_MAX);
        FUZZ_CHECK(fz_render(&p, back, sizeof(back)) == len);
        FUZZ_CHECK(memcmp(back, body, len) == 0);
        break;
    }
    case 1: {
        rp_sign_keys_t *k = NULL;

        if (rp_sign_keys_parse(body, len, &k, err, sizeof(err)) != RP_OK) {
            FUZZ_CHECK(k == NULL && err[0] != '\0');
            break;
        }
        FUZZ_CHECK(rp_sign_keys_count(k) >= 1 &&
                   rp_sign_keys_count(k) <= RP_SIGN_KEYS_MAX);
        for (size_t i = 0; i < rp_sign_keys_count(k); i++) {
            const char *kid = rp_sign_keys_kid(k, i);

            FUZZ_CHECK(kid && strlen(kid) >= 1 &&
                       strlen(kid) <= RP_SIGN_KID_MAX);
            FUZZ_CHECK(rp_sign_header(k, kid, FZ_T, mkey, strlen(mkey), value,
                                      strlen(value), hdr, err,
                                      sizeof(err)) == RP_OK);
            FUZZ_CHECK(rp_sign_verify(k, hdr, strlen(hdr), mkey, strlen(mkey),
                                      value, strlen(value), FZ_T, 1, NULL,
                                      0) == RP_SIGN_OK);
        }
        rp_sign_keys_destroy(k);
        break;
    }
    default: {
        const char *nul = memchr(body, '\0', len);
        size_t klen = nul ? (size_t)(nul - body) : 0;
        const char *v = nul ? nul + 1 : body;
        size_t vlen = len - (nul ? klen + 1 : 0);
        char *flipped;

        FUZZ_CHECK(rp_sign_header(keys, "k2", FZ_T, body, klen, v, vlen, hdr,
                                  err, sizeof(err)) == RP_OK);
        FUZZ_CHECK(rp_sign_verify(keys, hdr, strlen(hdr), body, klen, v, vlen,
                                  FZ_T + 300, 300, NULL, 0) == RP_SIGN_OK);
        FUZZ_CHECK(rp_sign_verify(keys, hdr, strlen(hdr), body, klen, v, vlen,
                                  FZ_T + 301, 300, NULL, 0) ==
                   RP_SIGN_EXPIRED);
        if (!vlen)
            break;
        flipped = fuzz_cstr((const uint8_t *)v, vlen);
        flipped[vlen / 2] ^= 1;
        FUZZ_CHECK(rp_sign_verify(keys, hdr, strlen(hdr), body, klen, flipped,
                                  vlen, FZ_T, 300, NULL, 0) == RP_SIGN_BAD);
        free(flipped);
        break;
    }
    }
    return 0;
}
