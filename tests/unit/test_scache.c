/* rp_scache: hits, misses, another assignment's entry, replace, drop, and
 * the two bounds (entries, bytes) with least-recently-used eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rp_scache.h"

static void test_get_put_drop(void **state)
{
    rp_scache_t *c;
    rp_scache_stats_t st;
    const char *doc;
    size_t len;
    uint64_t v;

    (void)state;
    assert_int_equal(rp_scache_new(0, 10, &c), RP_ERR_INVALID);
    assert_int_equal(rp_scache_new(8, 1 << 20, &c), RP_OK);
    assert_false(rp_scache_get(c, "s1", 0, 1, &doc, &len, &v));
    assert_int_equal(rp_scache_put(c, "s1", 0, 1, "{\"a\":1}", 7, 42), RP_OK);
    assert_true(rp_scache_get(c, "s1", 0, 1, &doc, &len, &v));
    assert_int_equal(len, 7);
    assert_memory_equal(doc, "{\"a\":1}", 7);
    assert_int_equal(v, 42);
    /* Replaced by the next save. */
    assert_int_equal(rp_scache_put(c, "s1", 0, 1, "{\"a\":2}", 7, 43), RP_OK);
    assert_true(rp_scache_get(c, "s1", 0, 1, &doc, &len, &v));
    assert_memory_equal(doc, "{\"a\":2}", 7);
    assert_int_equal(v, 43);
    /* Another assignment (epoch) or partition: a miss, and it is gone. */
    assert_false(rp_scache_get(c, "s1", 0, 2, &doc, &len, &v));
    assert_false(rp_scache_get(c, "s1", 0, 1, &doc, &len, &v));
    assert_int_equal(rp_scache_put(c, "s1", 3, 1, "x", 1, 5), RP_OK);
    assert_false(rp_scache_get(c, "s1", 4, 1, &doc, &len, &v));
    /* Dropped. */
    assert_int_equal(rp_scache_put(c, "s2", 0, 1, "y", 1, 6), RP_OK);
    rp_scache_drop(c, "s2");
    rp_scache_drop(c, "never");
    assert_false(rp_scache_get(c, "s2", 0, 1, &doc, &len, &v));
    rp_scache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.stale, 2);
    rp_scache_destroy(c);
    rp_scache_destroy(NULL);
}

static void test_bounds(void **state)
{
    rp_scache_t *c;
    rp_scache_stats_t st;
    const char *doc;
    char key[32], big[200];
    size_t len;
    uint64_t v;

    (void)state;
    /* At most 4 entries: the least recently used goes. */
    assert_int_equal(rp_scache_new(4, 1 << 20, &c), RP_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(rp_scache_put(c, key, 0, 1, "d", 1, (uint64_t)i + 1),
                         RP_OK);
    }
    assert_true(rp_scache_get(c, "k0", 0, 1, &doc, &len, &v)); /* k1 oldest */
    assert_int_equal(rp_scache_put(c, "k4", 0, 1, "d", 1, 9), RP_OK);
    assert_false(rp_scache_get(c, "k1", 0, 1, &doc, &len, &v));
    assert_true(rp_scache_get(c, "k0", 0, 1, &doc, &len, &v));
    assert_true(rp_scache_get(c, "k4", 0, 1, &doc, &len, &v));
    rp_scache_destroy(c);

    /* At most 800 bytes; a document over 100 (an eighth) is not kept. */
    memset(big, 'x', sizeof(big));
    assert_int_equal(rp_scache_new(1000, 800, &c), RP_OK);
    assert_int_equal(rp_scache_put(c, "huge", 0, 1, big, 101, 1), RP_OK);
    assert_false(rp_scache_get(c, "huge", 0, 1, &doc, &len, &v));
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        assert_int_equal(rp_scache_put(c, key, 0, 1, big, 100, 1), RP_OK);
        rp_scache_get_stats(c, &st);
        assert_true(st.bytes <= 800);
    }
    assert_int_equal(st.entries, 8);
    assert_true(rp_scache_get(c, "b19", 0, 1, &doc, &len, &v));
    assert_false(rp_scache_get(c, "b0", 0, 1, &doc, &len, &v));
    /* Many keys: the table grows and keeps every entry findable. */
    rp_scache_destroy(c);
    assert_int_equal(rp_scache_new(5000, 1 << 20, &c), RP_OK);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        assert_int_equal(rp_scache_put(c, key, 1, 7, key, strlen(key),
                                       (uint64_t)i + 1),
                         RP_OK);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "many-%d", i);
        assert_true(rp_scache_get(c, key, 1, 7, &doc, &len, &v));
        assert_int_equal(v, (uint64_t)i + 1);
        assert_memory_equal(doc, key, len);
    }
    rp_scache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put_drop),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
