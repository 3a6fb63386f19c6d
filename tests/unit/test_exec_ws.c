/* Unit tests for executor/rp_exec_ws.c: the executor's half of a session's
 * workspace, against a file:// store in a temp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_exec_ws.h"
#include "rp_test_dir.h"

typedef struct fix {
    char dir[256];
    char url[300];
    char ws[300];
    rp_state_t *st;
    rp_jobspec_t spec;
    rp_session_t session;
    rp_runas_t run_as;
    char es[512];
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "%s/rp-exec-ws-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->url, sizeof(f->url), "file://%s/state", f->dir);
    snprintf(f->ws, sizeof(f->ws), "%s/ws-1", f->dir);
    if (rp_state_open(f->url, &f->st, f->es, sizeof(f->es)) != RP_OK)
        return -1;
    snprintf(f->spec.execution_id, sizeof(f->spec.execution_id), "e-1");
    snprintf(f->spec.session_id, sizeof(f->spec.session_id), "s-1");
    f->spec.workspace = f->ws;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;

    rp_state_destroy(f->st);
    rp_session_clear(&f->session);
    rp_test_rmtree(f->dir);
    free(f);
    return 0;
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *fp;

    assert_true(snprintf(path, sizeof(path), "%s/%s", dir, name) <
                (int)sizeof(path));
    assert_non_null(fp = fopen(path, "w"));
    fputs(text, fp);
    fclose(fp);
}

/* Off and absent: no handle, nothing to do. */
static void test_off(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws = (rp_exec_ws_t *)1;

    f->spec.workspace = "off";
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    assert_null(ws);
    assert_null(rp_exec_ws_dir(ws));
    assert_string_equal(rp_exec_ws_cwd(ws, &f->session, "/x"), "/x");
    rp_exec_ws_destroy(ws);
    f->spec.workspace = NULL;
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    assert_null(ws);
}

/* An empty workspace that was empty: saved and unchanged, no store call
 * (nothing under workspaces/). */
static void test_empty_fast_path(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws;
    rp_result_t res;
    char path[600];
    struct stat sb;

    memset(&res, 0, sizeof(res));
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    assert_string_equal(rp_exec_ws_dir(ws), f->ws);
    assert_int_equal(stat(f->ws, &sb), 0); /* created */
    rp_exec_ws_end(ws, &res);
    assert_true(res.ws.present && res.ws.saved && res.ws.unchanged);
    assert_null(res.ws.manifest);
    assert_string_equal(res.ws.root, f->ws);
    snprintf(path, sizeof(path), "%s/state/workspaces", f->dir);
    assert_int_not_equal(stat(path, &sb), 0);
    rp_exec_ws_destroy(ws);
    assert_int_equal(stat(f->ws, &sb), 0); /* not scratch: kept */
    rp_result_clear(&res);
}

/* Save, then restore into another (scratch) directory: the files come
 * back, the cwd follows, and an unchanged tree is reported unchanged. */
static void test_save_restore_rebase(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws;
    rp_result_t res;
    char ws2[320], path[700], buf[16] = "";
    struct stat sb;
    int fd;

    memset(&res, 0, sizeof(res));
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    snprintf(path, sizeof(path), "%s/sub", f->ws);
    assert_int_equal(mkdir(path, 0750), 0);
    put_file(path, "f.txt", "hello");
    rp_exec_ws_end(ws, &res);
    rp_exec_ws_destroy(ws);
    assert_true(res.ws.saved && !res.ws.unchanged);
    assert_non_null(res.ws.manifest);
    assert_int_equal(res.ws.files, 2);
    assert_int_equal(res.ws.bytes, 5);
    assert_true(res.ws.bytes_uploaded > 0);

    /* What the worker makes of it. */
    f->session.workspace.manifest = strdup(res.ws.manifest);
    f->session.workspace.root = strdup(f->ws);
    rp_result_clear(&res);
    memset(&res, 0, sizeof(res));

    snprintf(ws2, sizeof(ws2), "%s/scratch-2", f->dir);
    snprintf(f->spec.execution_id, sizeof(f->spec.execution_id), "e-2");
    f->spec.workspace = ws2;
    f->spec.ws_scratch = 1;
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    snprintf(path, sizeof(path), "%s/sub/f.txt", ws2);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), 5);
    close(fd);
    assert_string_equal(buf, "hello");
    snprintf(path, sizeof(path), "%s/sub", ws2);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0750);

    /* cwd: inside the old root moves; outside, or a name that only starts
     * like the root, stays. */
    snprintf(path, sizeof(path), "%s/sub", f->ws);
    {
        char want[700], sibling[700];

        snprintf(want, sizeof(want), "%s/sub", ws2);
        assert_string_equal(rp_exec_ws_cwd(ws, &f->session, path), want);
        assert_string_equal(rp_exec_ws_cwd(ws, &f->session, f->ws), ws2);
        assert_string_equal(rp_exec_ws_cwd(ws, &f->session, "/tmp"), "/tmp");
        snprintf(sibling, sizeof(sibling), "%s2/sub", f->ws);
        assert_string_equal(rp_exec_ws_cwd(ws, &f->session, sibling), sibling);
    }

    rp_exec_ws_end(ws, &res);
    assert_true(res.ws.saved && res.ws.unchanged);
    assert_string_equal(res.ws.manifest, f->session.workspace.manifest);
    assert_int_equal(res.ws.bytes_uploaded, 0);
    rp_exec_ws_destroy(ws);
    assert_int_not_equal(stat(ws2, &sb), 0); /* scratch: removed */
    rp_result_clear(&res);
}

/* Over a cap: not saved, the code says which, nothing uploaded. */
static void test_caps(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws;
    rp_result_t res;
    char path[600];
    struct stat sb;

    memset(&res, 0, sizeof(res));
    f->spec.ws_max_files = 2;
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    put_file(f->ws, "a", "1");
    put_file(f->ws, "b", "2");
    put_file(f->ws, "c", "3");
    rp_exec_ws_end(ws, &res);
    assert_true(res.ws.present && !res.ws.saved);
    assert_string_equal(res.ws.code, RP_RESULT_WS_TOO_MANY_FILES);
    assert_non_null(res.ws.message);
    assert_null(res.ws.manifest);
    snprintf(path, sizeof(path), "%s/state/workspaces", f->dir);
    assert_int_not_equal(stat(path, &sb), 0);
    rp_result_clear(&res);
    memset(&res, 0, sizeof(res));

    f->spec.ws_max_files = 0;
    f->spec.ws_max_bytes = 2;
    rp_exec_ws_end(ws, &res);
    assert_false(res.ws.saved);
    assert_string_equal(res.ws.code, RP_RESULT_WS_TOO_LARGE);
    rp_exec_ws_destroy(ws);
    rp_result_clear(&res);
}

/* A snapshot that is not there: the execution must not run. */
static void test_restore_failure(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws;

    f->session.workspace.manifest =
        strdup("workspaces/s-1/snapshots/gone.json.zst");
    assert_int_not_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session,
                                          &f->run_as, &ws, f->es,
                                          sizeof(f->es)),
                         RP_OK);
    assert_non_null(strstr(f->es, "gone.json.zst"));
    rp_exec_ws_destroy(ws);
}

/* mount:PATH: the session's own directory below it, no report. */
static void test_mount(void **state)
{
    fix_t *f = *state;
    rp_exec_ws_t *ws;
    rp_result_t res;
    char spec[400], want[400];
    struct stat sb;

    memset(&res, 0, sizeof(res));
    snprintf(spec, sizeof(spec), "mount:%s/vol", f->dir);
    f->spec.workspace = spec;
    assert_int_equal(rp_exec_ws_begin(f->st, &f->spec, &f->session, &f->run_as,
                                      &ws, f->es, sizeof(f->es)),
                     RP_OK);
    snprintf(want, sizeof(want), "%s/vol/s-1", f->dir);
    assert_string_equal(rp_exec_ws_dir(ws), want);
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    rp_exec_ws_end(ws, &res);
    assert_false(res.ws.present);
    rp_exec_ws_destroy(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_fast_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore_rebase, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mount, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
