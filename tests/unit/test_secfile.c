/* rp_secfile: the owner/mode rule for files that hold secrets, on stat
 * structs (every owner can be tried without being root) and on a real
 * file of ours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_secfile.h"

static char es[512];

static rp_err_t check(uid_t owner, unsigned mode, uid_t euid)
{
    struct stat st;

    memset(&st, 0, sizeof(st));
    st.st_uid = owner;
    st.st_mode = S_IFREG | mode;
    es[0] = '\0';
    return rp_secfile_check("signing keys", "/etc/k", &st, euid, es,
                            sizeof(es));
}

static void test_own_file(void **state)
{
    (void)state;
    assert_int_equal(check(1000, 0600, 1000), RP_OK);
    assert_int_equal(check(1000, 0400, 1000), RP_OK);
    assert_int_equal(check(1000, 0640, 1000), RP_ERR_PERMISSION);
    assert_non_null(strstr(es, "chmod 600"));
    assert_non_null(strstr(es, "0640"));
    assert_non_null(strstr(es, "signing keys /etc/k"));
    assert_int_equal(check(1000, 0604, 1000), RP_ERR_PERMISSION);
    assert_int_equal(check(1000, 0610, 1000), RP_ERR_PERMISSION);
}

/* A Kubernetes Secret volume (root:fsGroup 0440) read by uid 10001. */
static void test_root_owned(void **state)
{
    (void)state;
    assert_int_equal(check(0, 0440, 10001), RP_OK);
    assert_int_equal(check(0, 0640, 10001), RP_OK);
    assert_int_equal(check(0, 0400, 0), RP_OK);
    assert_int_equal(check(0, 0660, 10001), RP_ERR_PERMISSION);
    assert_non_null(strstr(es, "at most 0640"));
    assert_int_equal(check(0, 0444, 10001), RP_ERR_PERMISSION);
    assert_int_equal(check(0, 0644, 0), RP_ERR_PERMISSION);
}

static void test_someone_elses(void **state)
{
    (void)state;
    assert_int_equal(check(1234, 0600, 1000), RP_ERR_PERMISSION);
    assert_non_null(strstr(es, "uid 1234"));
    assert_false(rp_err_retriable(RP_ERR_PERMISSION));
}

/* The same on a file this test writes and stats. */
static void test_real_file(void **state)
{
    char path[] = "/tmp/rp-secfile-XXXXXX";
    struct stat st;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(rp_secfile_check("f", path, &st, geteuid(), es,
                                      sizeof(es)), RP_OK);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(rp_secfile_check("f", path, &st, geteuid(), es,
                                      sizeof(es)), RP_ERR_PERMISSION);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_file),
        cmocka_unit_test(test_root_owned),
        cmocka_unit_test(test_someone_elses),
        cmocka_unit_test(test_real_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
