/* rp_runas: parsing RUNPOOL_RUN_AS, who may honour it, and the drop
 * itself in a child process (as root: it becomes 65534 for good; not
 * root: a drop to another uid is refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_runas.h"

#define NOBODY 65534

static char es[512];

static void test_parse(void **state)
{
    rp_runas_t ra;

    (void)state;
    assert_int_equal(rp_runas_parse(NULL, &ra, es, sizeof(es)), RP_OK);
    assert_false(ra.set);
    assert_int_equal(rp_runas_parse("", &ra, es, sizeof(es)), RP_OK);
    assert_false(ra.set);
    assert_int_equal(rp_runas_parse("10001:10002", &ra, es, sizeof(es)),
                     RP_OK);
    assert_true(ra.set);
    assert_int_equal(ra.uid, 10001);
    assert_int_equal(ra.gid, 10002);
    const char *bad[] = {"0:0", "10001", "10001:", ":5", "a:b", "1:2:3",
                         "-1:5", "4294967296:1", "10001 :1", "2147483648:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rp_runas_parse(bad[i], &ra, es, sizeof(es)),
                         RP_ERR_INVALID);
        assert_non_null(strstr(es, "UID:GID"));
        assert_false(ra.set);
    }
}

static void test_check(void **state)
{
    rp_runas_t ra = {.set = true, .uid = 10001, .gid = 10001}, none = {0};

    (void)state;
    assert_int_equal(rp_runas_check(&none, 1000, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_runas_check(&ra, 0, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_runas_check(&ra, 10001, es, sizeof(es)), RP_OK);
    assert_int_equal(rp_runas_check(&ra, 1000, es, sizeof(es)),
                     RP_ERR_PERMISSION);
    assert_non_null(strstr(es, "not root"));
}

/* In a child: drop, then report what we are and whether a root-only
 * directory is still open to us. */
static void test_drop(void **state)
{
    char dir[] = "/tmp/rp-runas-XXXXXX", file[64];
    rp_runas_t ra = {.set = true, .uid = NOBODY, .gid = NOBODY};
    int st;
    pid_t pid;

    (void)state;
    assert_non_null(mkdtemp(dir)); /* 0700, ours */
    snprintf(file, sizeof(file), "%s/x", dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (rp_runas_drop(&ra) != 0)
            _exit(geteuid() == 0 ? 10 : (errno == EPERM ? 20 : 21));
        if (getuid() != NOBODY || geteuid() != NOBODY || getgid() != NOBODY)
            _exit(11);
        if (getgroups(0, NULL) != 0)
            _exit(12);
        if (open(file, O_WRONLY | O_CREAT, 0600) >= 0 || errno != EACCES)
            _exit(13);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    /* Root: the drop worked and holds. Anyone else: refused (EPERM). */
    assert_int_equal(WEXITSTATUS(st), geteuid() == 0 ? 0 : 20);
    rmdir(dir);
}

/* --exec-as runs the program as the user: `id -u` says 65534. */
static void test_exec_main(void **state)
{
    char *argv[] = {"runpool-executor", RP_RUNAS_FLAG, "65534:65534", "--",
                    "/usr/bin/id", "-u", NULL};
    char out[64] = "";
    int fds[2], st;
    ssize_t n;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        _exit(rp_runas_exec_main(6, argv));
    }
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (geteuid() == 0) {
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_true(n > 0);
        assert_string_equal(out, "65534\n");
    } else {
        assert_int_equal(WEXITSTATUS(st), 126);
    }
    /* Malformed: usage, exit 2. */
    char *bad[] = {"runpool-executor", RP_RUNAS_FLAG, "0:0", "--", "/bin/true",
                   NULL};
    assert_int_equal(rp_runas_exec_main(5, bad), 2);
}

static void test_prepare_dir(void **state)
{
    char dir[] = "/tmp/rp-runas-XXXXXX";
    rp_runas_t ra = {.set = true, .uid = NOBODY, .gid = NOBODY}, none = {0};
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    chmod(dir, 0755);
    assert_int_equal(rp_runas_prepare_dir(&none, dir, es, sizeof(es)), RP_OK);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    if (geteuid() == 0) {
        assert_int_equal(rp_runas_prepare_dir(&ra, dir, es, sizeof(es)),
                         RP_OK);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_uid, NOBODY);
        assert_int_equal(st.st_gid, NOBODY);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_exec_main),
        cmocka_unit_test(test_prepare_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
