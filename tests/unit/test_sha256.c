/* rp_sha256: libcrypto is not linked (the test program links
 * runpool_workspace, as the executor does) and loads on the first hash;
 * the FIPS 180-2 vectors come out right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "rp_sha256.h"

static void test_hex(const uint8_t h[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void test_vectors(void **state)
{
    static const char *const in[] = {
        "", "abc",
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
    static const char *const want[] = {
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"};
    uint8_t h[32];
    char hex[65], es[256] = "";

    (void)state;
    /* Runs first: nothing has loaded libcrypto yet. */
    assert_null(dlopen(RP_SHA256_LIB, RTLD_NOW | RTLD_NOLOAD));
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        assert_int_equal(rp_sha256(in[i], strlen(in[i]), h, es, sizeof(es)),
                         RP_OK);
        test_hex(h, hex);
        assert_string_equal(hex, want[i]);
    }
    assert_non_null(dlopen(RP_SHA256_LIB, RTLD_NOW | RTLD_NOLOAD));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
