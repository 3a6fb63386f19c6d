/* rp_wscache: the chunk cache is pruned least recently used first down to
 * its budget; dead writers' temp files go after an hour; a missing
 * directory is nothing to do. Real files in a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_wscache.h"

static char test_dir[64];

static void test_put(const char *name, size_t size, time_t mtime)
{
    char path[256], buf[1024] = {0};
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    int fd;

    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
    for (size_t left = size; left > 0;) {
        size_t n = left < sizeof(buf) ? left : sizeof(buf);
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        left -= n;
    }
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

static bool test_exists(const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    return access(path, F_OK) == 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(test_dir, sizeof(test_dir), "/tmp/rp-wscache-XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[300];
    const char *names[] = {"aa", "bb", "cc", "dd", ".aa.1.0.tmp",
                           ".bb.1.1.tmp", "sub"};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", test_dir, names[i]);
        unlink(path);
        rmdir(path);
    }
    return rmdir(test_dir);
}

static void test_prunes_oldest_first(void **state)
{
    rp_wscache_stats_t st;
    char es[256];
    time_t now = 1700000000;

    (void)state;
    test_put("aa", 4000, now - 400); /* least recently used */
    test_put("bb", 4000, now - 300);
    test_put("cc", 4000, now - 200);
    test_put("dd", 4000, now - 100);
    {
        char sub[300];

        snprintf(sub, sizeof(sub), "%s/sub", test_dir);
        assert_int_equal(mkdir(sub, 0700), 0); /* not a chunk: left alone */
    }
    assert_int_equal(rp_wscache_prune(test_dir, 9000, now, &st, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(st.files, 4);
    assert_int_equal(st.bytes, 16000);
    assert_int_equal(st.removed_files, 2);
    assert_int_equal(st.removed_bytes, 8000);
    assert_int_equal(st.kept_bytes, 8000);
    assert_false(test_exists("aa"));
    assert_false(test_exists("bb"));
    assert_true(test_exists("cc"));
    assert_true(test_exists("dd"));
    assert_true(test_exists("sub"));

    /* Within budget: nothing more goes. */
    assert_int_equal(rp_wscache_prune(test_dir, 9000, now, &st, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(st.removed_files, 0);
    assert_int_equal(st.kept_bytes, 8000);
}

static void test_old_temp_files(void **state)
{
    rp_wscache_stats_t st;
    char es[256];
    time_t now = 1700000000;

    (void)state;
    test_put(".aa.1.0.tmp", 100, now - RP_WSCACHE_TMP_MAX_AGE_S - 10); /* dead */
    test_put(".bb.1.1.tmp", 100, now - 5); /* a write in progress */
    test_put("cc", 100, now - 5);
    assert_int_equal(rp_wscache_prune(test_dir, 1 << 20, now, &st, es,
                                      sizeof(es)),
                     RP_OK);
    assert_false(test_exists(".aa.1.0.tmp"));
    assert_true(test_exists(".bb.1.1.tmp"));
    assert_true(test_exists("cc"));
    assert_int_equal(st.removed_files, 1);
    assert_int_equal(st.files, 1); /* temp files are not chunks */
}

static void test_missing_dir(void **state)
{
    rp_wscache_stats_t st;
    char es[256] = "";

    (void)state;
    assert_int_equal(rp_wscache_prune("/nonexistent/rp-wscache", 0, 0, &st, es,
                                      sizeof(es)),
                     RP_OK);
    assert_int_equal(st.files, 0);
    assert_string_equal(es, "");
}

static void test_unreadable_dir(void **state)
{
    rp_wscache_stats_t st;
    char es[256] = "";

    (void)state;
    /* A file where the directory should be: an error that names it. */
    char path[300];

    test_put("aa", 10, 1700000000);
    snprintf(path, sizeof(path), "%s/aa", test_dir);
    assert_int_equal(rp_wscache_prune(path, 0, 0, &st, es, sizeof(es)),
                     RP_ERR_IO);
    assert_non_null(strstr(es, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prunes_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_temp_files, setup, teardown),
        cmocka_unit_test(test_missing_dir),
        cmocka_unit_test_setup_teardown(test_unreadable_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
