/* rp_list: push, unlink from anywhere, pop in order, and a zeroed or
 * already unlinked node is on no list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rp_list.h"

typedef struct el {
    int id;
    rp_list_t link;
} el_t;

static int ids(rp_list_t *head, int *out, int max)
{
    rp_list_t *n, *tmp;
    int k = 0;

    RP_LIST_FOREACH_SAFE(n, tmp, head) {
        if (k < max)
            out[k] = RP_LIST_ENTRY(n, el_t, link)->id;
        k++;
    }
    return k;
}

static void test_order_and_unlink(void **state)
{
    el_t e[5] = {{0}};
    rp_list_t head;
    int got[5];

    (void)state;
    rp_list_init(&head);
    assert_true(rp_list_empty(&head));
    assert_null(rp_list_first(&head));
    for (int i = 0; i < 5; i++) {
        e[i].id = i;
        assert_false(rp_list_linked(&e[i].link)); /* zeroed */
        rp_list_push_tail(&head, &e[i].link);
        assert_true(rp_list_linked(&e[i].link));
    }
    rp_list_unlink(&e[2].link);
    rp_list_unlink(&e[2].link); /* twice: a no-op */
    assert_false(rp_list_linked(&e[2].link));
    rp_list_push_head(&head, &e[2].link);
    assert_int_equal(ids(&head, got, 5), 5);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[4], 4);
    assert_ptr_equal(rp_list_last(&head), &e[4].link);
    assert_ptr_equal(rp_list_pop_head(&head), &e[2].link);
    assert_ptr_equal(rp_list_pop_head(&head), &e[0].link);
    assert_int_equal(ids(&head, got, 5), 3);
}

static void test_unlink_while_walking(void **state)
{
    el_t e[6] = {{0}};
    rp_list_t head, *n, *tmp;
    int got[6];

    (void)state;
    rp_list_init(&head);
    for (int i = 0; i < 6; i++) {
        e[i].id = i;
        rp_list_push_tail(&head, &e[i].link);
    }
    RP_LIST_FOREACH_SAFE(n, tmp, &head) {
        if (RP_LIST_ENTRY(n, el_t, link)->id % 2)
            rp_list_unlink(n);
    }
    assert_int_equal(ids(&head, got, 6), 3);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 2);
    assert_int_equal(got[2], 4);
    while (rp_list_pop_head(&head))
        ;
    assert_true(rp_list_empty(&head));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_unlink),
        cmocka_unit_test(test_unlink_while_walking),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
