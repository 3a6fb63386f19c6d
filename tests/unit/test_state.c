/* Tests for rp_state and its file backend: the key rules and builders, URL
 * parsing, conditional writes (create-only, compare-and-swap,
 * unconditional, delete), versions that only grow, listing, size limits,
 * leftovers on failure paths, and races between threads and between
 * processes (lost updates, double creates, torn reads).
 *
 * The checks every backend must pass are tests/unit/state_contract.c, run
 * here against the file backend; this file holds what only it shows.
 * Every test gets a fresh mkdtemp directory, removed afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rp_test_dir.h"
#include "rp_layout.h"
#include "rp_state.h"
#include "state_contract.h"

#define TS_PATH_MAX 512
#define TS_ERR_MAX 512

/* ---- helpers ---- */

static void ts_rm_rf(const char *dir)
{
    rp_test_rmtree(dir);
}

static int ts_tmp_count;

static int ts_count_one(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (path[ftw->base] == '+')
        ts_tmp_count++;
    return 0;
}

/* Temp files ('+...') anywhere under dir: writers must never leave any. */
static int ts_count_tmp(const char *dir)
{
    ts_tmp_count = 0;
    nftw(dir, ts_count_one, 16, FTW_PHYS);
    return ts_tmp_count;
}

static void ts_write_file(const char *dir, const char *rel, const char *text)
{
    char path[TS_PATH_MAX * 2];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* ---- the file backend under the shared contract ---- */

static int ts_open(sc_store_t *s)
{
    char err[TS_ERR_MAX] = "";

    snprintf(s->where, sizeof(s->where), "/tmp/rp_state_test.XXXXXX");
    if (!mkdtemp(s->where))
        return -1;
    snprintf(s->url, sizeof(s->url), "file://%s", s->where);
    if (rp_state_open(s->url, &s->st, err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "open %s: %s\n", s->url, err);
        ts_rm_rf(s->where);
        return -1;
    }
    return 0;
}

static int ts_close(sc_store_t *s)
{
    int leftovers = ts_count_tmp(s->where);

    ts_rm_rf(s->where);
    /* Every test ends with no temp file left behind. */
    return leftovers == 0 ? 0 : -1;
}

static void ts_check_clean(sc_store_t *s)
{
    assert_int_equal(ts_count_tmp(s->where), 0);
}

#define TS_DEAD_TMP "sessions/s1/+tmp.99.1.dead"

/* A crashed writer's temp file, a file whose name is not a key, a
 * symlink and an empty directory. */
static void ts_plant_non_objects(sc_store_t *s)
{
    char path[TS_PATH_MAX * 2];

    ts_write_file(s->where, TS_DEAD_TMP, "crashed writer");
    ts_write_file(s->where, "bad name", "x");
    snprintf(path, sizeof(path), "%s/link", s->where);
    assert_int_equal(symlink("top", path), 0);
    snprintf(path, sizeof(path), "%s/emptydir", s->where);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* The planted temp file goes, so that ts_close's check holds. */
static void ts_remove_planted(sc_store_t *s)
{
    char path[TS_PATH_MAX * 2];

    snprintf(path, sizeof(path), "%s/" TS_DEAD_TMP, s->where);
    assert_int_equal(unlink(path), 0);
}

static sc_backend_t ts_backend = {
    .open = ts_open,
    .close = ts_close,
    .check_clean = ts_check_clean,
    .plant_non_objects = ts_plant_non_objects,
    .remove_planted = ts_remove_planted,
    .versions_grow = true,
    .refuses_stale_delete = true,
    .thread_increments = 150,
};

#define TS_TEST(fn) SC_TEST(fn, &ts_backend)

/* ---- keys and URLs ---- */

static void test_key_rules(void **state)
{
    static const char *const good[] = {
        "a", "sessions/s1/state.json", "A-Z_a.z:0-9", "..x/x..", ".hidden",
        "a/b/c/d/e/f",
    };
    static const char *const bad[] = {
        "", "/abs", "a//b", "a/./b", "a/../b", "../x", "..", ".", "a/",
        "a b", "a\\b", "a+b", "+tmp.1", "caf\xc3\xa9", "a\tb", "x/y?z",
    };
    char key[RP_STATE_KEY_MAX + 2];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(rp_state_key_valid(good[i]));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rp_state_key_valid(bad[i]))
            fail_msg("key '%s' should be invalid", bad[i]);
    }
    assert_false(rp_state_key_valid(NULL));

    /* Exactly RP_STATE_KEY_MAX bytes is fine, one more is not. */
    memset(key, 'k', sizeof(key));
    key[RP_STATE_KEY_MAX] = '\0';
    assert_true(rp_state_key_valid(key));
    key[RP_STATE_KEY_MAX] = 'k';
    key[RP_STATE_KEY_MAX + 1] = '\0';
    assert_false(rp_state_key_valid(key));
}

static void test_key_builders(void **state)
{
    char out[RP_STATE_KEY_MAX + 1];
    char id[129];
    char small[12];

    (void)state;
    rp_layout_session_key("s1", out, sizeof(out));
    assert_string_equal(out, "sessions/s1/state.json");
    rp_layout_result_key("e-1:x_2.y", out, sizeof(out));
    assert_string_equal(out, "executions/e-1:x_2.y/result.json");

    /* The longest id (RP_ID_MAX = 128) fits and makes a valid key. */
    memset(id, 'i', 128);
    id[128] = '\0';
    rp_layout_session_key(id, out, sizeof(out));
    assert_true(rp_state_key_valid(out));
    assert_int_equal(strlen(out), strlen("sessions//state.json") + 128);

    /* Ids that would escape or be ambiguous give "", an invalid key. */
    rp_layout_session_key("..", out, sizeof(out));
    assert_string_equal(out, "");
    rp_layout_session_key(".", out, sizeof(out));
    assert_string_equal(out, "");
    rp_layout_session_key("a/b", out, sizeof(out));
    assert_string_equal(out, "");
    rp_layout_result_key("", out, sizeof(out));
    assert_string_equal(out, "");
    rp_layout_result_key(NULL, out, sizeof(out));
    assert_string_equal(out, "");
    rp_layout_result_key("bad id", out, sizeof(out));
    assert_string_equal(out, "");
    assert_false(rp_state_key_valid(out));
    /* A key that does not fit is not cut short into some other key. */
    rp_layout_session_key("s1", small, sizeof(small));
    assert_string_equal(small, "");
}

static void test_bad_urls(void **state)
{
    static const char *const bad[] = {
        "",
        "file://relative/dir",
        "file:relative",
        "relative/dir",
        "/abs/without/scheme",
        "file://",
        "file:///tmp/x?fsync=2",
        "file:///tmp/x?bogus=1",
        "file:///tmp/x?fsync=1&",
        "file:///tmp/a%20b",
        "://nothing",
    };
    static rp_state_t dummy;
    char err[TS_ERR_MAX];
    rp_state_t *st = &dummy; /* open must reset it to NULL */
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rp_state_open(bad[i], &st, err, sizeof(err)) != RP_ERR_INVALID)
            fail_msg("URL '%s' should be RP_ERR_INVALID", bad[i]);
        assert_null(st);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(rp_state_open(NULL, &st, err, sizeof(err)),
                     RP_ERR_INVALID);

    assert_int_equal(rp_state_open("s3://bucket/x", &st, err, sizeof(err)),
                     RP_ERR_INVALID);
    /* The message names the scheme and lists the backends built in. */
    assert_non_null(strstr(err, "unsupported state URL scheme 's3'"));
    assert_non_null(strstr(err, "(supported: file"));
}

static void test_open_creates_dir(void **state)
{
    sc_store_t *f = *state;
    char url[TS_PATH_MAX * 2], path[TS_PATH_MAX * 2];
    char err[TS_ERR_MAX] = "";
    rp_state_t *st = NULL;
    struct stat sb;

    /* Missing parents are created; a trailing slash is harmless. */
    snprintf(url, sizeof(url), "file://%s/new/deeper/", f->where);
    assert_int_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
    snprintf(path, sizeof(path), "%s/new/deeper", f->where);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    sc_put(st, "k", "v", RP_STATE_ANY);
    snprintf(path, sizeof(path), "%s/new/deeper/k", f->where);
    assert_int_equal(stat(path, &sb), 0);
    rp_state_destroy(st);

    /* A regular file where the directory should be is refused. */
    ts_write_file(f->where, "plain", "x");
    snprintf(url, sizeof(url), "file://%s/plain", f->where);
    assert_int_not_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
    assert_null(st);
    rp_state_destroy(NULL);
}

/* ---- single-writer behaviour ---- */

/* The object is a plain file at dir/key (the round trip itself is
 * sc_test_roundtrip). */
static void test_object_is_plain_file(void **state)
{
    sc_store_t *f = *state;
    char path[TS_PATH_MAX * 2];
    struct stat sb;

    sc_put(f->st, "sessions/s1/state.json", "{\"cwd\":\"/\"}", RP_STATE_ANY);
    snprintf(path, sizeof(path), "%s/sessions/s1/state.json", f->where);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, strlen("{\"cwd\":\"/\"}"));
}

static void test_versions_never_reused(void **state)
{
    sc_store_t *f = *state;
    char err[TS_ERR_MAX] = "";
    uint64_t highest = 0, v;
    int i;

    /* Each write, in any mode, beats every version the key ever had, even
     * across delete + recreate. */
    for (i = 0; i < 30; i++) {
        v = sc_put(f->st, "s/k", "a", 0);
        assert_true(v > highest);
        highest = v;
        v = sc_put(f->st, "s/k", "b", v);
        assert_true(v > highest);
        highest = v;
        v = sc_put(f->st, "s/k", "c", RP_STATE_ANY);
        assert_true(v > highest);
        highest = v;
        assert_int_equal(rp_state_delete(f->st, "s/k", v, err, sizeof(err)),
                         RP_OK);
    }
}

static void test_hand_edit_new_version(void **state)
{
    sc_store_t *f = *state;
    uint64_t v1, v2;

    v1 = sc_put(f->st, "h", "by runpool", RP_STATE_ANY);
    /* Someone edits the file in place: the old version must no longer
     * match, so a CAS based on it cannot silently overwrite the edit. */
    ts_write_file(f->where, "h", "by hand");
    v2 = sc_expect(f->st, "h", "by hand");
    assert_true(v2 != v1);
    assert_int_equal(rp_state_put(f->st, "h", "x", 1, v1, NULL, NULL, 0),
                     RP_ERR_CONFLICT);
    assert_true(sc_put(f->st, "h", "again", v2) > v2);
}

static void test_not_objects(void **state)
{
    sc_store_t *f = *state;
    char path[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "";

    /* Symlinks are never followed. */
    sc_put(f->st, "target", "secret", RP_STATE_ANY);
    snprintf(path, sizeof(path), "%s/lnk", f->where);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(sc_get_rc(f->st, "lnk", NULL, 0), RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "lnk", "x", 1, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);

    /* A key cannot be both an object and a directory of deeper keys. */
    sc_put(f->st, "d/x", "1", RP_STATE_ANY);
    assert_int_equal(rp_state_put(f->st, "d", "x", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "d/x/y", "x", 1, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "d/x/y/z", "x", 1, 0, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(ts_count_tmp(f->where), 0);
}

static void test_invalid_keys(void **state)
{
    static const char *const bad[] = {
        "../x", "/abs", "a//b", "a/./b", "a/../b", "a/", "", "a b", "a$b",
        "+tmp.x",
    };
    sc_store_t *f = *state;
    char err[TS_ERR_MAX], key[RP_STATE_KEY_MAX + 2];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sc_get_rc(f->st, bad[i], NULL, 0), RP_ERR_INVALID);
        err[0] = '\0';
        assert_int_equal(rp_state_put(f->st, bad[i], "x", 1, RP_STATE_ANY,
                                      NULL, err, sizeof(err)),
                         RP_ERR_INVALID);
        assert_non_null(strstr(err, "invalid state key"));
        assert_int_equal(rp_state_delete(f->st, bad[i], RP_STATE_ANY, err,
                                         sizeof(err)),
                         RP_ERR_INVALID);
    }
    assert_int_equal(rp_state_put(f->st, NULL, "x", 1, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);

    /* The longest key (100-byte segments) works; one byte more does not. */
    memset(key, 's', RP_STATE_KEY_MAX);
    for (i = 100; i < RP_STATE_KEY_MAX; i += 101)
        key[i] = '/';
    key[RP_STATE_KEY_MAX] = '\0';
    assert_true(rp_state_key_valid(key));
    sc_put(f->st, key, "long", 0);
    sc_expect(f->st, key, "long");
    key[RP_STATE_KEY_MAX] = 's';
    key[RP_STATE_KEY_MAX + 1] = '\0';
    assert_int_equal(sc_get_rc(f->st, key, NULL, 0), RP_ERR_INVALID);

    /* A valid key whose segment is over the filesystem's NAME_MAX (255). */
    memset(key, 'n', 300);
    key[300] = '\0';
    assert_true(rp_state_key_valid(key));
    assert_int_equal(rp_state_put(f->st, key, "x", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    /* Nothing was written anywhere. */
    assert_int_equal(ts_count_tmp(f->where), 0);
    assert_int_equal(sc_get_rc(f->st, "x", NULL, 0), RP_ERR_NOT_FOUND);
}

static void test_fsync_modes(void **state)
{
    static const char *const opts[] = {"?fsync=0", "?fsync=1", "",
                                       "?fsync=0&fsync=1"};
    sc_store_t *f = *state;
    char url[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "", key[32];
    size_t i;

    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        rp_state_t *st = NULL;
        uint64_t v;

        snprintf(url, sizeof(url), "file://%s/m%zu%s", f->where, i, opts[i]);
        assert_int_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
        snprintf(key, sizeof(key), "sessions/s%zu/state.json", i);
        v = sc_put(st, key, "a", 0);
        v = sc_put(st, key, "b", v);
        assert_int_equal(sc_expect(st, key, "b"), v);
        assert_int_equal(rp_state_delete(st, key, v, err, sizeof(err)), RP_OK);
        assert_int_equal(sc_get_rc(st, key, NULL, 0), RP_ERR_NOT_FOUND);
        rp_state_destroy(st);
    }
}

/* ---- listing ---- */

/* Directories left behind by deletes are not objects. */
static void test_list_empty_dirs(void **state)
{
    sc_store_t *f = *state;
    char path[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "";

    snprintf(path, sizeof(path), "%s/empty", f->where);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(sc_list_count(f->st, ""), 0);
    sc_put(f->st, "empty/x", "1", 0);
    assert_int_equal(sc_list_count(f->st, "e"), 1);
    assert_int_equal(rp_state_delete(f->st, "empty/x", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(sc_list_count(f->st, ""), 0);
}

/* ---- concurrency ---- */

#define TS_COUNTER_KEY "sessions/race/state.json"
#define TS_PROC_INCREMENTS 300
#define TS_CREATE_KEYS 200

/* get + CAS until one increment lands. Returns conflicts seen, or -1 on
 * any other error. Used by threads and by forked children alike, so it
 * must not call cmocka asserts. */
static long ts_increment(rp_state_t *st)
{
    char err[TS_ERR_MAX], text[32];
    long conflicts = 0;
    rp_buf_t b;

    rp_buf_init(&b, 64);
    for (;;) {
        uint64_t v = 0;
        rp_err_t rc = rp_state_get(st, TS_COUNTER_KEY, &b, &v, err,
                                   sizeof(err));
        long n;
        int len;

        if (rc != RP_OK)
            goto fail;
        n = strtol(b.data, NULL, 10);
        len = snprintf(text, sizeof(text), "%ld", n + 1);
        rc = rp_state_put(st, TS_COUNTER_KEY, text, (size_t)len, v, NULL, err,
                          sizeof(err));
        if (rc == RP_OK)
            break;
        if (rc != RP_ERR_CONFLICT)
            goto fail;
        conflicts++;
    }
    rp_buf_free(&b);
    return conflicts;
fail:
    fprintf(stderr, "increment: %s\n", err);
    rp_buf_free(&b);
    return -1;
}

/* Block until the parent closes the write end, so children start together. */
static void ts_wait_go(int go_fd)
{
    char c;

    while (read(go_fd, &c, 1) < 0 && errno == EINTR)
        ;
}

static void ts_write_full(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(3);
        }
        c += w;
        n -= (size_t)w;
    }
}

static int ts_read_full(int fd, void *p, size_t n)
{
    char *c = p;

    while (n > 0) {
        ssize_t r = read(fd, c, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static void ts_expect_child_ok(pid_t pid)
{
    int status = 0;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Child: its own store handle, N increments, conflicts to out_fd. */
static void ts_counter_child(const char *url, int go_fd, int out_fd)
{
    char err[TS_ERR_MAX];
    rp_state_t *st = NULL;
    long conflicts = 0, c;
    int i;

    if (rp_state_open(url, &st, err, sizeof(err)) != RP_OK)
        _exit(2);
    ts_wait_go(go_fd);
    for (i = 0; i < TS_PROC_INCREMENTS; i++) {
        c = ts_increment(st);
        if (c < 0)
            _exit(1);
        conflicts += c;
    }
    ts_write_full(out_fd, &conflicts, sizeof(conflicts));
    rp_state_destroy(st);
    _exit(0);
}

static void test_two_processes_no_lost_update(void **state)
{
    sc_store_t *f = *state;
    int go[2], out[2], i;
    pid_t pids[2];
    long conflicts[2];
    char want[32];

    sc_put(f->st, TS_COUNTER_KEY, "0", 0);
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(out), 0);
    for (i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(out[0]);
            ts_counter_child(f->url, go[0], out[1]);
        }
    }
    close(go[0]);
    close(out[1]);
    close(go[1]); /* go */
    for (i = 0; i < 2; i++)
        ts_expect_child_ok(pids[i]);
    for (i = 0; i < 2; i++)
        assert_int_equal(ts_read_full(out[0], &conflicts[i],
                                      sizeof(conflicts[i])),
                         0);
    close(out[0]);
    snprintf(want, sizeof(want), "%d", 2 * TS_PROC_INCREMENTS);
    sc_expect(f->st, TS_COUNTER_KEY, want);
    print_message("two processes: %d increments each, %ld + %ld conflicts "
                  "retried\n",
                  TS_PROC_INCREMENTS, conflicts[0], conflicts[1]);
}

/* Child: create-only on every race/k<i>; wins[i] = 1 when it created it. */
static void ts_create_child(const char *url, int id, int go_fd, int out_fd)
{
    char err[TS_ERR_MAX], key[32], text[16];
    unsigned char wins[TS_CREATE_KEYS];
    rp_state_t *st = NULL;
    int i;

    if (rp_state_open(url, &st, err, sizeof(err)) != RP_OK)
        _exit(2);
    snprintf(text, sizeof(text), "child%d", id);
    ts_wait_go(go_fd);
    for (i = 0; i < TS_CREATE_KEYS; i++) {
        rp_err_t rc;

        snprintf(key, sizeof(key), "race/k%d", i);
        rc = rp_state_put(st, key, text, strlen(text), 0, NULL, err,
                          sizeof(err));
        if (rc != RP_OK && rc != RP_ERR_EXISTS) {
            fprintf(stderr, "create %s: %s\n", key, err);
            _exit(1);
        }
        wins[i] = rc == RP_OK;
    }
    ts_write_full(out_fd, wins, sizeof(wins));
    rp_state_destroy(st);
    _exit(0);
}

static void test_two_processes_create_race(void **state)
{
    sc_store_t *f = *state;
    unsigned char wins[2][TS_CREATE_KEYS];
    char key[32], text[16];
    int go[2], out[2][2], i;
    pid_t pids[2];

    assert_int_equal(pipe(go), 0);
    for (i = 0; i < 2; i++) {
        assert_int_equal(pipe(out[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(out[i][0]);
            ts_create_child(f->url, i, go[0], out[i][1]);
        }
        close(out[i][1]);
    }
    close(go[0]);
    close(go[1]);
    for (i = 0; i < 2; i++) {
        assert_int_equal(ts_read_full(out[i][0], wins[i], sizeof(wins[i])), 0);
        close(out[i][0]);
        ts_expect_child_ok(pids[i]);
    }
    /* Exactly one winner per key, and the stored value is the winner's. */
    for (i = 0; i < TS_CREATE_KEYS; i++) {
        assert_int_equal(wins[0][i] + wins[1][i], 1);
        snprintf(key, sizeof(key), "race/k%d", i);
        snprintf(text, sizeof(text), "child%d", wins[0][i] ? 0 : 1);
        sc_expect(f->st, key, text);
    }
    assert_int_equal(sc_list_count(f->st, "race/"), TS_CREATE_KEYS);
}

#define TS_TORN_SIZE (256 * 1024)
#define TS_TORN_WRITES 150

/* Two large values that differ at every byte, so any mix of them shows. */
static void ts_torn_value(char *buf, int which)
{
    size_t i;

    for (i = 0; i < TS_TORN_SIZE; i++)
        buf[i] = (char)(which ? 'a' + i % 26 : 'A' + i % 26);
}

static void test_reader_never_sees_torn_value(void **state)
{
    sc_store_t *f = *state;
    char *vals[2], err[TS_ERR_MAX] = "";
    int go[2], status = 0, reads = 0, changes = 0, last_which = -1;
    uint64_t last_version = 0;
    rp_buf_t b;
    pid_t pid;

    vals[0] = malloc(TS_TORN_SIZE);
    vals[1] = malloc(TS_TORN_SIZE);
    assert_non_null(vals[0]);
    assert_non_null(vals[1]);
    ts_torn_value(vals[0], 0);
    ts_torn_value(vals[1], 1);
    assert_int_equal(rp_state_put(f->st, "torn", vals[0], TS_TORN_SIZE, 0,
                                  NULL, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rp_state_t *st = NULL;
        int i;

        close(go[1]);
        if (rp_state_open(f->url, &st, err, sizeof(err)) != RP_OK)
            _exit(2);
        ts_wait_go(go[0]);
        for (i = 1; i <= TS_TORN_WRITES; i++) {
            if (rp_state_put(st, "torn", vals[i % 2], TS_TORN_SIZE,
                             RP_STATE_ANY, NULL, err, sizeof(err)) != RP_OK)
                _exit(1);
        }
        rp_state_destroy(st);
        _exit(0);
    }
    close(go[0]);
    close(go[1]);

    rp_buf_init(&b, TS_TORN_SIZE);
    for (;;) {
        uint64_t v = 0;
        int which, done = waitpid(pid, &status, WNOHANG) == pid;

        assert_int_equal(rp_state_get(f->st, "torn", &b, &v, err,
                                      sizeof(err)),
                         RP_OK);
        assert_int_equal(b.len, TS_TORN_SIZE);
        which = memcmp(b.data, vals[0], TS_TORN_SIZE) == 0   ? 0
                : memcmp(b.data, vals[1], TS_TORN_SIZE) == 0 ? 1
                                                             : -1;
        if (which < 0)
            fail_msg("read %d saw a torn value", reads);
        /* Versions never go back; the same version means the same bytes. */
        assert_true(v >= last_version);
        if (v == last_version)
            assert_int_equal(which, last_which);
        else if (last_which >= 0)
            changes++;
        last_version = v;
        last_which = which;
        reads++;
        if (done)
            break;
    }
    rp_buf_free(&b);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The last write (TS_TORN_WRITES is even) stored vals[0]. */
    assert_int_equal(last_which, 0);
    print_message("torn-read race: %d reads, %d version changes seen\n",
                  reads, changes);
    free(vals[0]);
    free(vals[1]);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_key_builders),
        cmocka_unit_test(test_bad_urls),
        SC_CONTRACT_TESTS(&ts_backend),
        TS_TEST(test_open_creates_dir),
        TS_TEST(test_object_is_plain_file),
        TS_TEST(test_versions_never_reused),
        TS_TEST(test_hand_edit_new_version),
        TS_TEST(test_not_objects),
        TS_TEST(test_invalid_keys),
        TS_TEST(test_fsync_modes),
        TS_TEST(test_list_empty_dirs),
        TS_TEST(test_two_processes_no_lost_update),
        TS_TEST(test_two_processes_create_race),
        TS_TEST(test_reader_never_sees_torn_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
