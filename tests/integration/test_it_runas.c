/* integration.runas — least privilege on the local backend (issue 12 §3):
 * a worker that runs as root with --run-as 65534:65534 runs the sessions'
 * commands as that user, while the executor keeps root for the state
 * store and the record.
 *
 * As root (CI here): the command says it is 65534, cannot write where
 * only root may, cannot read the state store; cwd, env and files still
 * carry over from one command to the next; the session directory is the
 * user's, mode 0700; a timeout still stops it; with workspace snapshots
 * the restored files are the user's. Not root: the worker
 * refuses --run-as naming another uid, with a message, at start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_testenv.h"

#define WAIT_MS 60000
#define NOBODY 65534

static void test_runas(void **state)
{
    rp_te_t *te = *state;
    const char *extra[] = {"--run-as", "65534:65534", NULL};
    const char *snap[] = {"--run-as", "65534:65534", "--workspace",
                          "/workspace", NULL};
    char rootonly[PATH_MAX], cmd[PATH_MAX + 256], sdir[PATH_MAX];
    const rp_te_msg_t *m;
    struct stat st;
    int w;

    if (geteuid() != 0) {
        /* The worker cannot switch users: it must say so and stop. */
        w = rp_te_start_worker_args(te, extra);
        rp_te_signal(te, w, 0); /* its exit is expected */
        assert_true(rp_te_wait_exit(te, w, 20000));
        assert_true(WIFEXITED(te->procs[w].status) &&
                    WEXITSTATUS(te->procs[w].status) == 2);
        char *log = rp_te_read_file(te->procs[w].log_path, NULL);
        assert_non_null(log);
        assert_non_null(strstr(log, "cannot switch users"));
        free(log);
        rp_te_finish(te);
        return;
    }

    /* The workdir must be reachable by the commands' user: the worker
     * refuses it while the test directory is 0700 ... */
    {
        int w0 = rp_te_start_worker_args(te, extra);
        char *log;

        rp_te_signal(te, w0, 0); /* its exit is expected */
        assert_true(rp_te_wait_exit(te, w0, 20000));
        assert_true(WIFEXITED(te->procs[w0].status) &&
                    WEXITSTATUS(te->procs[w0].status) != 0);
        log = rp_te_read_file(te->procs[w0].log_path, NULL);
        assert_non_null(log);
        assert_non_null(strstr(log, "cannot reach --workdir"));
        free(log);
    }
    /* ... and takes it once the directory may be passed through. */
    assert_int_equal(chmod(te->dir, 0711), 0);

    /* A directory only root may write. */
    rp_te_path(te, rootonly, sizeof rootonly, "rootonly");
    assert_int_equal(mkdir(rootonly, 0700), 0);

    w = rp_te_start_worker_args(te, extra);
    assert_int_equal(rp_te_wait_group(te, &w, 1, WAIT_MS), 1);
    assert_int_equal(rp_te_log_events(te, w, "commands_run_as_root", NULL),
                     0);

    rp_te_send_exec(te, "ra-s", "ra-1",
                    "id -u; id -g; id -G; mkdir sub && cd sub && "
                    "echo hello > f && export RA=kept", 0, NULL);
    rp_te_format(cmd, sizeof cmd,
                 "touch %s/x 2>/dev/null && echo WROTE || echo refused; "
                 "ls %s/state/sessions >/dev/null 2>&1 && echo STATE || "
                 "echo no-state",
                 rootonly, te->dir);
    rp_te_send_exec(te, "ra-s", "ra-2", cmd, 0, NULL);
    rp_te_send_exec(te, "ra-s", "ra-3",
                    "pwd; echo \"$RA\"; cat f; stat -c %u:%a f", 0, NULL);
    rp_te_send_exec(te, "ra-s", "ra-4", "sleep 30", 2, NULL);
    rp_te_flush(te);

    m = rp_te_need_result(te, "ra-1", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "65534\n65534\n65534\n");
    m = rp_te_need_result(te, "ra-2", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "refused\nno-state\n");
    assert_int_equal(access(strcat(rootonly, "/x"), F_OK), -1);
    m = rp_te_need_result(te, "ra-3", WAIT_MS);
    rp_te_format(sdir, sizeof sdir, "%s/work/ra-s/sub\nkept\nhello\n"
                 "65534:644\n", te->dir);
    rp_te_expect(te, m, "succeeded", sdir);

    /* A root executor still stops the user's command on its timeout. */
    m = rp_te_need_result(te, "ra-4", WAIT_MS);
    assert_string_equal(rp_te_str(m, "status"), "timed_out");

    /* The session's directory: the user's own, 0700. */
    rp_te_path(te, sdir, sizeof sdir, "work/ra-s");
    assert_int_equal(stat(sdir, &st), 0);
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Workspace snapshots under --run-as: the executor restores as root
     * into a fresh scratch directory and gives the tree to the user, who
     * can read and change a 0600 file it left last time. */
    rp_te_signal(te, w, SIGTERM);
    assert_true(rp_te_wait_exit(te, w, WAIT_MS));
    w = rp_te_start_worker_args(te, snap);
    assert_int_equal(rp_te_wait_group(te, &w, 1, WAIT_MS), 1);
    rp_te_send_exec(te, "ra-ws", "ra-ws-1",
                    "mkdir sub && cd sub && echo hi > f && chmod 600 f && "
                    "chmod 500 . && echo made", 0, NULL);
    rp_te_send_exec(te, "ra-ws", "ra-ws-2",
                    "cat f; chmod 700 . && echo more >> f && cat f; "
                    "stat -c %u:%a f; id -u", 0, NULL);
    rp_te_flush(te);
    m = rp_te_need_result(te, "ra-ws-1", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "made\n");
    m = rp_te_need_result(te, "ra-ws-2", WAIT_MS);
    rp_te_expect(te, m, "succeeded", "hi\nhi\nmore\n65534:600\n65534\n");
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runas, rp_te_setup,
                                        rp_te_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
