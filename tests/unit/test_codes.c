/* Unit tests for contract/rp_codes.c: the public error codes of results. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "rp_codes.h"
#include "rp_result.h"

static bool is_snake_case(const char *s)
{
    size_t i;

    if (!(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (i = 1; s[i]; i++) {
        bool lower = s[i] >= 'a' && s[i] <= 'z';
        bool digit = s[i] >= '0' && s[i] <= '9';

        if (!lower && !digit && s[i] != '_')
            return false;
        /* No empty words: "a__b" or a trailing "_". */
        if (s[i] == '_' && (s[i + 1] == '_' || s[i + 1] == '\0'))
            return false;
    }
    return true;
}

static void test_strings_well_formed(void **state)
{
    (void)state;
    assert_true(RP_CODE__COUNT > 0);
    for (int i = 0; i < RP_CODE__COUNT; i++) {
        const char *s = rp_code_str((rp_code_t)i);
        const char *m = rp_code_meaning((rp_code_t)i);

        assert_non_null(s);
        assert_non_null(m);
        if (!s[0] || strlen(s) > RP_CODE_MAX || !is_snake_case(s))
            fail_msg("code %d: \"%s\" is not 1 to 64 bytes of snake_case", i, s);
        if (!m[0] || strchr(m, '|') || strchr(m, '"'))
            fail_msg("code %s: meaning \"%s\" is empty or has | or \"", s, m);
    }
}

static void test_strings_unique(void **state)
{
    (void)state;
    for (int i = 0; i < RP_CODE__COUNT; i++)
        for (int j = i + 1; j < RP_CODE__COUNT; j++)
            if (strcmp(rp_code_str((rp_code_t)i), rp_code_str((rp_code_t)j)) == 0)
                fail_msg("codes %d and %d are both \"%s\"", i, j,
                         rp_code_str((rp_code_t)i));
}

static void test_parse_round_trip(void **state)
{
    rp_code_t c;

    (void)state;
    for (int i = 0; i < RP_CODE__COUNT; i++) {
        c = RP_CODE__COUNT;
        assert_int_equal(rp_code_parse(rp_code_str((rp_code_t)i), &c), 0);
        assert_int_equal(c, i);
    }
    assert_int_equal(rp_code_parse("state_conflict", &c), 0);
    assert_int_equal(c, RP_CODE_STATE_CONFLICT);
    assert_int_equal(rp_code_parse("state_conflict", NULL), 0);
    assert_int_equal(rp_code_parse("no_such_code", &c), -1);
    assert_int_equal(rp_code_parse("State_conflict", &c), -1);
    assert_int_equal(rp_code_parse("", &c), -1);
    assert_int_equal(rp_code_parse(NULL, &c), -1);
    assert_int_equal(c, RP_CODE_STATE_CONFLICT); /* untouched by failures */
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(rp_code_str(RP_CODE__COUNT), "internal");
    assert_string_equal(rp_code_str((rp_code_t)-1), "internal");
    assert_string_equal(rp_code_meaning(RP_CODE__COUNT), "");
}

/* rp_err_code() (base) and the list (contract) spell every error alike,
 * so the executor's codes stay what they were. */
static void test_of_err_matches_rp_err_code(void **state)
{
    (void)state;
    for (int e = RP_ERR_INVALID; e < RP_ERR__COUNT; e++) {
        const char *want = rp_err_code((rp_err_t)e);
        const char *have = rp_code_str(rp_code_of_err((rp_err_t)e));

        if (strcmp(want, have) != 0)
            fail_msg("rp_err %d: rp_err_code says \"%s\", rp_codes \"%s\"", e,
                     want, have);
    }
    assert_int_equal(rp_code_of_err(RP_OK), RP_CODE_INTERNAL);
    assert_int_equal(rp_code_of_err(RP_ERR__COUNT), RP_CODE_INTERNAL);
    assert_int_equal(rp_code_of_err(RP_ERR_PERMISSION),
                     RP_CODE_PERMISSION_DENIED);
}

/* The result module takes exactly the listed codes. */
static void test_result_accepts_listed_codes_only(void **state)
{
    rp_result_t r;

    (void)state;
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < RP_CODE__COUNT; i++)
        assert_int_equal(rp_result_set_error(&r, rp_code_str((rp_code_t)i), "m"),
                         RP_OK);
    assert_int_equal(rp_result_set_error(&r, "no_such_code", "m"),
                     RP_ERR_INVALID);
    assert_string_equal(r.error_code, rp_code_str(RP_CODE__COUNT - 1));
    rp_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_well_formed),
        cmocka_unit_test(test_strings_unique),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_of_err_matches_rp_err_code),
        cmocka_unit_test(test_result_accepts_listed_codes_only),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
