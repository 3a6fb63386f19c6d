/* Unit tests for contract/rp_sign.c: the key file, the runpool-signature
 * header and its verification. The vector is the one schemas/README.md
 * documents (computed there with Python's hmac module). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_sign.h"
#include "rp_test_dir.h"

/* schemas/README.md, "Signed requests": the test vector. */
#define V_KEYFILE "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
#define V_KID2 "k2:cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM=\n"
#define V_T 1764770000
#define V_KEY "user-42"
#define V_VALUE \
    "{\"v\":1,\"execution_id\":\"e-1\",\"session_id\":\"user-42\"," \
    "\"command\":\"echo hi\"}"
#define V_MAC1 "dc907c6ef6f80e60ecbf385a17adbe72d78bdb24fd7bbd682a254fc36eec3937"
#define V_MAC2 "be1721d7834c6cc93678763aa0c1ca58fe3198e72c45969ec7242e2ffc09abf0"
#define V_HEADER "t=1764770000,kid=k1,v1=" V_MAC1

static rp_sign_keys_t *keys_from(const char *text)
{
    rp_sign_keys_t *k = NULL;
    char err[512];

    if (rp_sign_keys_parse(text, strlen(text), &k, err, sizeof(err)) != RP_OK)
        fail_msg("keys: %s", err);
    return k;
}

static rp_sign_status_t verify(const rp_sign_keys_t *k, const char *hdr,
                               int64_t now, char *why, size_t ws)
{
    return rp_sign_verify(k, hdr, hdr ? strlen(hdr) : 0, V_KEY, strlen(V_KEY),
                          V_VALUE, strlen(V_VALUE), now, 300, why, ws);
}

static void test_vector(void **state)
{
    rp_sign_keys_t *k = keys_from(V_KEYFILE);
    char hdr[RP_SIGN_HEADER_MAX + 1], err[256], why[256];

    (void)state;
    assert_int_equal(rp_sign_keys_count(k), 1);
    assert_string_equal(rp_sign_keys_kid(k, 0), "k1");
    assert_int_equal(rp_sign_header(k, NULL, V_T, V_KEY, strlen(V_KEY),
                                    V_VALUE, strlen(V_VALUE), hdr, err,
                                    sizeof(err)),
                     RP_OK);
    assert_string_equal(hdr, V_HEADER);
    assert_int_equal(verify(k, hdr, V_T, why, sizeof(why)), RP_SIGN_OK);
    /* One byte of the value, of the key, or of t changed: no match. */
    assert_int_equal(rp_sign_verify(k, hdr, strlen(hdr), V_KEY, strlen(V_KEY),
                                    V_VALUE, strlen(V_VALUE) - 1, V_T, 300,
                                    why, sizeof(why)),
                     RP_SIGN_BAD);
    assert_int_equal(rp_sign_verify(k, hdr, strlen(hdr), "user-43", 7,
                                    V_VALUE, strlen(V_VALUE), V_T, 300, why,
                                    sizeof(why)),
                     RP_SIGN_BAD);
    assert_int_equal(verify(k, "t=1764770001,kid=k1,v1=" V_MAC1, V_T, why,
                            sizeof(why)),
                     RP_SIGN_BAD);
    rp_sign_keys_destroy(k);
}

static void test_empty_key_and_value(void **state)
{
    rp_sign_keys_t *k = keys_from(V_KEYFILE);
    char hdr[RP_SIGN_HEADER_MAX + 1], err[256];

    (void)state;
    assert_int_equal(rp_sign_header(k, "k1", 0, NULL, 0, NULL, 0, hdr, err,
                                    sizeof(err)),
                     RP_OK);
    assert_int_equal(strncmp(hdr, "t=0,kid=k1,v1=", 14), 0);
    assert_int_equal(rp_sign_verify(k, hdr, strlen(hdr), NULL, 0, NULL, 0, 10,
                                    300, NULL, 0),
                     RP_SIGN_OK);
    /* "" and "." splits differ from an absent key: the dots are signed. */
    assert_int_equal(rp_sign_verify(k, hdr, strlen(hdr), ".", 1, NULL, 0, 10,
                                    300, NULL, 0),
                     RP_SIGN_BAD);
    assert_int_equal(rp_sign_header(k, "nope", 0, NULL, 0, NULL, 0, hdr, err,
                                    sizeof(err)),
                     RP_ERR_NOT_FOUND);
    rp_sign_keys_destroy(k);
}

static void test_parse_edges(void **state)
{
    static const char *const bad[] = {
        "",
        "t=",
        "kid=k1,v1=" V_MAC1,
        "t=01764770000,kid=k1,v1=" V_MAC1,   /* leading zero */
        "t=-1,kid=k1,v1=" V_MAC1,
        "t=1234567890123,kid=k1,v1=" V_MAC1, /* 13 digits */
        "t=1764770000",
        "t=1764770000,kid=k1",
        "t=1764770000,v1=" V_MAC1,
        "t=1764770000,kid=,v1=" V_MAC1,
        "t=1764770000,kid=k 1,v1=" V_MAC1,
        "t=1764770000, kid=k1,v1=" V_MAC1,
        "t=1764770000,kid=k1,v1=" V_MAC1 ",",
        "t=1764770000,kid=k1,v1=" V_MAC1 " ",
        "t=1764770000,kid=k1,v1=DC907C6EF6F80E60ECBF385A17ADBE72D78BDB24FD7BBD682A254FC36EEC3937",
        "t=1764770000,kid=k1,v1=dc907c",
        "t=1764770000,kid=k1,v1=" V_MAC1 "00",
        "t=1764770000,kid=k1,v0=" V_MAC1,
        "t=1764770000,kid=k1,kid=k2,v1=" V_MAC1,
        "t=1764770000,kid=k1,v1=" V_MAC1 ",kid=k1,v1=" V_MAC2,
        "t=1764770000,kid=k1,v1=" V_MAC1 ",kid=k2",
        "t=1764770000,kid=k1,v1=" V_MAC1 ",t=1",
        "t=1764770000,kid=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,v1=" V_MAC1, /* 65 */
    };
    rp_sign_parsed_t p;
    char err[256], big[RP_SIGN_HEADER_MAX + 200];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rp_sign_parse(bad[i], strlen(bad[i]), &p, err, sizeof(err)) ==
            RP_OK)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* A NUL inside is not the end of the header. */
    assert_int_not_equal(rp_sign_parse(V_HEADER "\0x", sizeof(V_HEADER) + 1,
                                       &p, err, sizeof(err)),
                         RP_OK);

    assert_int_equal(rp_sign_parse(V_HEADER, strlen(V_HEADER), &p, err,
                                   sizeof(err)),
                     RP_OK);
    assert_int_equal(p.t, V_T);
    assert_string_equal(p.t_text, "1764770000");
    assert_int_equal(p.n, 1);
    assert_string_equal(p.mac[0].kid, "k1");
    assert_int_equal(p.mac[0].mac[0], 0xdc);
    assert_int_equal(p.mac[0].mac[31], 0x37);

    /* Several v1 for one kid, and several kids. */
    {
        const char *h = "t=5,kid=a,v1=" V_MAC1 ",v1=" V_MAC2 ",kid=b.c_d-E,v1="
                        V_MAC1;

        assert_int_equal(rp_sign_parse(h, strlen(h), &p, err, sizeof(err)),
                         RP_OK);
        assert_int_equal(p.n, 3);
        assert_string_equal(p.mac[0].kid, "a");
        assert_string_equal(p.mac[1].kid, "a");
        assert_string_equal(p.mac[2].kid, "b.c_d-E");
    }

    /* RP_SIGN_MACS_MAX v1 entries pass, one more does not. */
    n = (size_t)snprintf(big, sizeof(big), "t=1,kid=k");
    for (int i = 0; i < RP_SIGN_MACS_MAX; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, ",v1=%s", V_MAC1);
    assert_int_equal(rp_sign_parse(big, n, &p, err, sizeof(err)), RP_OK);
    assert_int_equal(p.n, RP_SIGN_MACS_MAX);
    n += (size_t)snprintf(big + n, sizeof(big) - n, ",v1=%s", V_MAC1);
    assert_int_equal(rp_sign_parse(big, n, &p, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);

    /* Over RP_SIGN_HEADER_MAX bytes: refused before anything else. */
    memset(big, 'x', sizeof(big));
    memcpy(big, "t=1", 3);
    assert_int_equal(rp_sign_parse(big, RP_SIGN_HEADER_MAX + 1, &p, err,
                                   sizeof(err)),
                     RP_ERR_TOO_LARGE);
}

static void test_outcomes(void **state)
{
    rp_sign_keys_t *k = keys_from(V_KEYFILE);
    char why[256];

    (void)state;
    why[0] = '\0';
    assert_int_equal(verify(k, NULL, V_T, why, sizeof(why)), RP_SIGN_UNSIGNED);
    assert_non_null(strstr(why, "runpool-signature"));
    assert_int_equal(verify(k, "garbage", V_T, why, sizeof(why)), RP_SIGN_BAD);
    assert_int_equal(verify(k, "t=1764770000,kid=k9,v1=" V_MAC1, V_T, why,
                            sizeof(why)),
                     RP_SIGN_UNKNOWN_KEY);
    assert_non_null(strstr(why, "k9"));
    /* The k2 MAC under the kid k1: forged. */
    assert_int_equal(verify(k, "t=1764770000,kid=k1,v1=" V_MAC2, V_T, why,
                            sizeof(why)),
                     RP_SIGN_BAD);
    /* Never the key or the MAC in the message. */
    assert_null(strstr(why, V_MAC2));
    assert_null(strstr(why, "AAECAw"));
    assert_int_equal(rp_sign_code(RP_SIGN_UNSIGNED), RP_CODE_UNSIGNED);
    assert_int_equal(rp_sign_code(RP_SIGN_BAD), RP_CODE_BAD_SIGNATURE);
    assert_int_equal(rp_sign_code(RP_SIGN_UNKNOWN_KEY), RP_CODE_UNKNOWN_KEY);
    assert_int_equal(rp_sign_code(RP_SIGN_EXPIRED), RP_CODE_EXPIRED_SIGNATURE);
    assert_int_equal(rp_sign_code(RP_SIGN_OK), RP_CODE_INTERNAL);
    assert_string_equal(rp_code_str(RP_CODE_EXPIRED_SIGNATURE),
                        "expired_signature");
    rp_sign_keys_destroy(k);
}

static void test_skew(void **state)
{
    rp_sign_keys_t *k = keys_from(V_KEYFILE);
    char why[256];

    (void)state;
    /* max_age either way, inclusive. */
    assert_int_equal(verify(k, V_HEADER, V_T + 300, why, sizeof(why)),
                     RP_SIGN_OK);
    assert_int_equal(verify(k, V_HEADER, V_T - 300, why, sizeof(why)),
                     RP_SIGN_OK);
    assert_int_equal(verify(k, V_HEADER, V_T + 301, why, sizeof(why)),
                     RP_SIGN_EXPIRED);
    assert_non_null(strstr(why, "behind"));
    assert_int_equal(verify(k, V_HEADER, V_T - 301, why, sizeof(why)),
                     RP_SIGN_EXPIRED);
    assert_non_null(strstr(why, "ahead"));
    /* A forged MAC with a stale t is bad, not expired: the MAC comes first. */
    assert_int_equal(verify(k, "t=1764770000,kid=k1,v1=" V_MAC2, V_T + 9999,
                            why, sizeof(why)),
                     RP_SIGN_BAD);
    assert_int_equal(rp_sign_verify(k, V_HEADER, strlen(V_HEADER), V_KEY,
                                    strlen(V_KEY), V_VALUE, strlen(V_VALUE),
                                    V_T + 301, 301, why, sizeof(why)),
                     RP_SIGN_OK);
    rp_sign_keys_destroy(k);
}

static void test_rotation(void **state)
{
    rp_sign_keys_t *old = keys_from(V_KEYFILE);
    rp_sign_keys_t *both = keys_from("# rotation: new key first\n\n" V_KID2
                                     V_KEYFILE);
    rp_sign_keys_t *next = keys_from(V_KID2);
    char hdr[RP_SIGN_HEADER_MAX + 1], err[256];
    const char *two = "t=1764770000,kid=k2,v1=" V_MAC2 ",kid=k1,v1=" V_MAC1;

    (void)state;
    assert_int_equal(rp_sign_keys_count(both), 2);
    assert_string_equal(rp_sign_keys_kid(both, 0), "k2");
    assert_string_equal(rp_sign_keys_kid(both, 1), "k1");
    assert_null(rp_sign_keys_kid(both, 2));
    /* A producer with both signs with the first, or the one it is told. */
    assert_int_equal(rp_sign_header(both, NULL, V_T, V_KEY, strlen(V_KEY),
                                    V_VALUE, strlen(V_VALUE), hdr, err,
                                    sizeof(err)),
                     RP_OK);
    assert_string_equal(hdr, "t=1764770000,kid=k2,v1=" V_MAC2);
    assert_int_equal(rp_sign_header(both, "k1", V_T, V_KEY, strlen(V_KEY),
                                    V_VALUE, strlen(V_VALUE), hdr, err,
                                    sizeof(err)),
                     RP_OK);
    assert_string_equal(hdr, V_HEADER);
    /* Workers with the old key, both, or the new one all accept a header
     * that carries both signatures. */
    assert_int_equal(verify(old, two, V_T, NULL, 0), RP_SIGN_OK);
    assert_int_equal(verify(both, two, V_T, NULL, 0), RP_SIGN_OK);
    assert_int_equal(verify(next, two, V_T, NULL, 0), RP_SIGN_OK);
    /* Old requests still pass on a worker that has both keys. */
    assert_int_equal(verify(both, V_HEADER, V_T, NULL, 0), RP_SIGN_OK);
    assert_int_equal(verify(next, V_HEADER, V_T, NULL, 0),
                     RP_SIGN_UNKNOWN_KEY);
    /* Several v1 under one kid: any of them may match. */
    assert_int_equal(verify(old, "t=1764770000,kid=k1,v1=" V_MAC2 ",v1=" V_MAC1,
                            V_T, NULL, 0),
                     RP_SIGN_OK);
    /* A known kid with a wrong MAC next to an unknown one: bad. */
    assert_int_equal(verify(old, "t=1764770000,kid=k9,v1=" V_MAC1
                                 ",kid=k1,v1=" V_MAC2,
                            V_T, NULL, 0),
                     RP_SIGN_BAD);
    rp_sign_keys_destroy(old);
    rp_sign_keys_destroy(both);
    rp_sign_keys_destroy(next);
}

/* The compare covers the whole MAC: a forgery that differs only in its
 * first byte and one that differs only in its last are both refused, and
 * so is one matching the right MAC's first 31 bytes. (A timing test would
 * be flaky on a shared machine; the compare is CRYPTO_memcmp, over every
 * entry, without an early exit.) */
static void test_constant_time_path(void **state)
{
    rp_sign_keys_t *k = keys_from(V_KEYFILE);
    char h[sizeof(V_HEADER)];
    size_t mac_at = strlen(V_HEADER) - 64;

    (void)state;
    for (int pos = 0; pos < 64; pos += 63) {
        memcpy(h, V_HEADER, sizeof(V_HEADER));
        h[mac_at + pos] = h[mac_at + pos] == '0' ? '1' : '0';
        assert_int_equal(verify(k, h, V_T, NULL, 0), RP_SIGN_BAD);
    }
    /* A matching entry after non-matching ones is still found. */
    assert_int_equal(verify(k, "t=1764770000,kid=k1,v1=" V_MAC2 ",v1=" V_MAC2
                               ",v1=" V_MAC1,
                            V_T, NULL, 0),
                     RP_SIGN_OK);
    rp_sign_keys_destroy(k);
}

static void test_key_file_parse(void **state)
{
    static const char *const bad[] = {
        "",
        "# only a comment\n\n",
        "k1\n",
        "k1:\n",
        ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "k 1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "k1:not base64!\n",
        "k1:AAECAwQFBgcICQoLDA0ODw==\n" "k2:AAEC\n", /* k2 is 3 bytes */
        V_KEYFILE V_KEYFILE,                           /* kid twice */
    };
    rp_sign_keys_t *k;
    char err[512], *text;
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rp_sign_keys_parse(bad[i], strlen(bad[i]), &k, err, sizeof(err)) ==
            RP_OK)
            fail_msg("accepted key file: %s", bad[i]);
        assert_null(k);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "AAEC")); /* never the key itself */
    }
    assert_int_equal(rp_sign_keys_parse("k2:AAEC\n", 8, &k, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, "line 1"));
    /* CRLF, blanks around a line, no final newline: fine. */
    k = keys_from("  k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=  \r\n"
                  "\t#c\nk2:cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM=");
    assert_int_equal(rp_sign_keys_count(k), 2);
    assert_int_equal(verify(k, V_HEADER, V_T, NULL, 0), RP_SIGN_OK);
    rp_sign_keys_destroy(k);

    /* RP_SIGN_KEYS_MAX keys load; one more does not. */
    assert_non_null(text = malloc((RP_SIGN_KEYS_MAX + 1) * 80));
    for (int i = 0; i <= RP_SIGN_KEYS_MAX; i++) {
        size_t at = n;

        n += (size_t)sprintf(text + n, "kid%d:AAECAwQFBgcICQoLDA0ODw==\n", i);
        if (i == RP_SIGN_KEYS_MAX - 1) {
            assert_int_equal(rp_sign_keys_parse(text, n, &k, err, sizeof(err)),
                             RP_OK);
            assert_int_equal(rp_sign_keys_count(k), RP_SIGN_KEYS_MAX);
            rp_sign_keys_destroy(k);
        }
        (void)at;
    }
    assert_int_equal(rp_sign_keys_parse(text, n, &k, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(text);

    /* A line over RP_SIGN_LINE_MAX. */
    assert_non_null(text = malloc(RP_SIGN_LINE_MAX + 8));
    memset(text, 'A', RP_SIGN_LINE_MAX + 4);
    memcpy(text, "k1:", 3);
    assert_int_equal(rp_sign_keys_parse(text, RP_SIGN_LINE_MAX + 4, &k, err,
                                        sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(text);
    rp_sign_keys_destroy(NULL);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

/* base/rp_secfile.h's rule: our own file 0600/0400; a root-owned one at
 * most 0640 (a mounted Secret); any other owner refused. The message names
 * the mode and the file. The test runs as whoever runs it, so "ours" is
 * root's when that is root. */
static void test_key_file_mode(void **state)
{
    char dir[] = "/tmp/rp-sign-XXXXXX";
    char path[512], link[512], err[512];
    rp_sign_keys_t *k = NULL;
    bool root = geteuid() == 0;
    static const mode_t refused_any[] = {0644, 0604, 0660, 0606, 0620,
                                         0610, 0601, 0666};
    const mode_t accepted_root[] = {0640, 0440};

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/keys", dir);
    snprintf(link, sizeof(link), "%s/keys-link", dir);
    for (size_t i = 0; i <= sizeof(refused_any) / sizeof(refused_any[0]); i++) {
        /* Group read: refused for our own file unless we are root. */
        mode_t m = i < sizeof(refused_any) / sizeof(refused_any[0])
                       ? refused_any[i]
                       : 0640;
        char want[16];

        if (m == 0640 && root)
            continue;
        write_file(path, V_KEYFILE, m);
        assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)),
                         RP_ERR_PERMISSION);
        assert_null(k);
        snprintf(want, sizeof(want), "mode %04o", (unsigned)m);
        if (!strstr(err, want) || !strstr(err, path))
            fail_msg("message does not name the mode %s and file: %s", want,
                     err);
    }
    if (root) {
        for (size_t i = 0; i < 2; i++) {
            write_file(path, V_KEYFILE, accepted_root[i]);
            assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)),
                             RP_OK);
            rp_sign_keys_destroy(k);
        }
        /* Owned by someone else: refused whatever its mode. */
        write_file(path, V_KEYFILE, 0600);
        assert_int_equal(chown(path, 4242, (gid_t)-1), 0);
        assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)),
                         RP_ERR_PERMISSION);
        assert_non_null(strstr(err, "4242"));
        unlink(path);
    }
    write_file(path, V_KEYFILE, 0600);
    assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)), RP_OK);
    assert_int_equal(verify(k, V_HEADER, V_T, NULL, 0), RP_SIGN_OK);
    rp_sign_keys_destroy(k);
    write_file(path, V_KEYFILE, 0400);
    assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)), RP_OK);
    rp_sign_keys_destroy(k);
    /* Through a symlink (a mounted Secret): the target's mode counts. */
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(rp_sign_keys_load(link, &k, err, sizeof(err)), RP_OK);
    rp_sign_keys_destroy(k);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(rp_sign_keys_load(link, &k, err, sizeof(err)),
                     RP_ERR_PERMISSION);
    /* Missing, a directory, a bad line (named with the file). */
    snprintf(link, sizeof(link), "%s/absent", dir);
    assert_int_equal(rp_sign_keys_load(link, &k, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_int_equal(rp_sign_keys_load(dir, &k, err, sizeof(err)),
                     RP_ERR_INVALID);
    write_file(path, "k1:AAEC\n", 0600);
    assert_int_equal(rp_sign_keys_load(path, &k, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 1"));
    rp_test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_empty_key_and_value),
        cmocka_unit_test(test_parse_edges),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_constant_time_path),
        cmocka_unit_test(test_key_file_parse),
        cmocka_unit_test(test_key_file_mode),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
