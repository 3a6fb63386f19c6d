/* rp_ratelimit: a full bucket gives burst tokens at once, then one per
 * 1/rate seconds; an empty bucket returns the delay and takes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rp_ratelimit.h"

static void test_burst_then_rate(void **state)
{
    rp_ratelimit_t rl;

    (void)state;
    rp_ratelimit_init(&rl, 10, 3, 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rp_ratelimit_take(&rl, 1000), 0);
    /* Empty: the next token is 100 ms away, and asking takes nothing. */
    assert_int_equal(rp_ratelimit_take(&rl, 1000), 100);
    assert_int_equal(rp_ratelimit_take(&rl, 1000), 100);
    assert_int_equal(rp_ratelimit_take(&rl, 1040), 60);
    assert_int_equal(rp_ratelimit_take(&rl, 1100), 0);
    assert_int_equal(rp_ratelimit_take(&rl, 1100), 100);
    /* A long pause refills to burst, not beyond. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(rp_ratelimit_take(&rl, 60000), 0);
    assert_true(rp_ratelimit_take(&rl, 60000) > 0);
}

static void test_rate_over_time(void **state)
{
    rp_ratelimit_t rl;
    int taken = 0;

    (void)state;
    rp_ratelimit_init(&rl, 50, 1, 0);
    /* A caller that retries exactly when told gets rate tokens a second. */
    for (int64_t now = 0; now <= 10000;) {
        int64_t d = rp_ratelimit_take(&rl, now);

        if (d == 0)
            taken++;
        else
            now += d;
    }
    assert_in_range(taken, 500, 502);
}

static void test_delay_rounds_up(void **state)
{
    rp_ratelimit_t rl;

    (void)state;
    rp_ratelimit_init(&rl, 3, 0, 0); /* burst < 1 counts as 1 */
    assert_int_equal(rp_ratelimit_take(&rl, 0), 0);
    /* 333.3 ms to the next token: 334, never a 0 that would spin. */
    assert_int_equal(rp_ratelimit_take(&rl, 0), 334);
    assert_int_equal(rp_ratelimit_take(&rl, 333), 1);
    assert_int_equal(rp_ratelimit_take(&rl, 334), 0);
}

/* A forced take goes into debt (down to -burst at most); the next taker
 * waits until the debt is paid back. */
static void test_force_on_credit(void **state)
{
    rp_ratelimit_t rl;

    (void)state;
    rp_ratelimit_init(&rl, 10, 2, 0);
    assert_true(rp_ratelimit_tokens(&rl, 0) == 2.0);
    assert_int_equal(rp_ratelimit_take(&rl, 0), 0);
    assert_int_equal(rp_ratelimit_take(&rl, 0), 0);
    rp_ratelimit_force(&rl, 0); /* -1 */
    assert_true(rp_ratelimit_tokens(&rl, 0) == -1.0);
    for (int i = 0; i < 5; i++)
        rp_ratelimit_force(&rl, 0);
    assert_true(rp_ratelimit_tokens(&rl, 0) == -2.0); /* floor: -burst */
    /* 3 tokens at 10/s to get back to 1. */
    assert_int_equal(rp_ratelimit_take(&rl, 0), 300);
    assert_int_equal(rp_ratelimit_take(&rl, 300), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_rate_over_time),
        cmocka_unit_test(test_delay_rounds_up),
        cmocka_unit_test(test_force_on_credit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
