/* rp_timerq: timers come out in due order, move and remove keep the heap
 * right, and the poll timeout is computed from the nearest timer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "rp_timerq.h"

#define NTIMERS 1000

typedef struct item {
    int id;
    rp_timer_t timer;
} item_t;

static void test_pops_in_due_order(void **state)
{
    static item_t items[NTIMERS];
    rp_timerq_t q;
    rp_timer_t *t;
    int64_t last = -1;
    int n = 0;

    (void)state;
    rp_timerq_init(&q);
    srand(7);
    for (int i = 0; i < NTIMERS; i++) {
        items[i].id = i;
        assert_int_equal(rp_timerq_add(&q, &items[i].timer, rand() % 5000),
                         RP_OK);
    }
    assert_int_equal(rp_timerq_len(&q), NTIMERS);
    /* Nothing is due before the earliest time. */
    assert_null(rp_timerq_pop_due(&q, rp_timerq_peek(&q)->due_ms - 1));
    while ((t = rp_timerq_pop_due(&q, 5000))) {
        item_t *it = RP_TIMER_ENTRY(t, item_t, timer);

        assert_true(t->due_ms >= last);
        assert_false(t->queued);
        assert_ptr_equal(&items[it->id], it);
        last = t->due_ms;
        n++;
    }
    assert_int_equal(n, NTIMERS);
    assert_int_equal(rp_timerq_len(&q), 0);
    rp_timerq_clear(&q);
}

static void test_move_and_remove(void **state)
{
    item_t a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    rp_timerq_t q;

    (void)state;
    rp_timerq_init(&q);
    assert_int_equal(rp_timerq_add(&q, &a.timer, 100), RP_OK);
    assert_int_equal(rp_timerq_add(&q, &b.timer, 200), RP_OK);
    assert_int_equal(rp_timerq_add(&q, &c.timer, 300), RP_OK);
    /* Moving a queued timer re-sorts it and does not add it twice. */
    assert_int_equal(rp_timerq_add(&q, &c.timer, 50), RP_OK);
    assert_int_equal(rp_timerq_len(&q), 3);
    assert_ptr_equal(rp_timerq_peek(&q), &c.timer);
    assert_int_equal(rp_timerq_add(&q, &c.timer, 250), RP_OK);
    assert_ptr_equal(rp_timerq_peek(&q), &a.timer);
    rp_timerq_remove(&q, &a.timer);
    rp_timerq_remove(&q, &a.timer); /* not queued: a no-op */
    assert_false(a.timer.queued);
    assert_int_equal(rp_timerq_len(&q), 2);
    assert_ptr_equal(rp_timerq_pop_due(&q, 1000), &b.timer);
    assert_ptr_equal(rp_timerq_pop_due(&q, 1000), &c.timer);
    assert_null(rp_timerq_pop_due(&q, 1000));
    rp_timerq_clear(&q);
}

static void test_wait_ms(void **state)
{
    item_t a = {0};
    rp_timerq_t q;

    (void)state;
    rp_timerq_init(&q);
    assert_int_equal(rp_timerq_wait_ms(&q, 0, 1000), 1000);
    assert_int_equal(rp_timerq_wait_ms(&q, 0, -1), -1);
    assert_int_equal(rp_timerq_add(&q, &a.timer, 10300), RP_OK);
    assert_int_equal(rp_timerq_wait_ms(&q, 10000, 1000), 300);
    assert_int_equal(rp_timerq_wait_ms(&q, 9000, 500), 500);
    assert_int_equal(rp_timerq_wait_ms(&q, 9000, -1), 1300);
    assert_int_equal(rp_timerq_wait_ms(&q, 10300, 1000), 0);
    assert_int_equal(rp_timerq_wait_ms(&q, 99999, 1000), 0);
    rp_timerq_clear(&q);
    /* clear leaves the timers not queued, so they may be added again. */
    assert_false(a.timer.queued);
    rp_timerq_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pops_in_due_order),
        cmocka_unit_test(test_move_and_remove),
        cmocka_unit_test(test_wait_ms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
