/* Tests for rp_state and its file backend: the key rules and builders, URL
 * parsing, conditional writes (create-only, compare-and-swap,
 * unconditional, delete), versions that only grow, listing, size limits,
 * leftovers on failure paths, and races between threads and between
 * processes (lost updates, double creates, torn reads).
 *
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

#include "rp_layout.h"
#include "rp_state.h"

#define TS_PATH_MAX 512
#define TS_ERR_MAX 512

typedef struct ts_fixture {
    char dir[TS_PATH_MAX]; /* the store directory (mkdtemp) */
    char url[TS_PATH_MAX + 16];
    rp_state_t *st;
} ts_fixture_t;

/* ---- helpers ---- */

static int ts_rm_one(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void ts_rm_rf(const char *dir)
{
    nftw(dir, ts_rm_one, 16, FTW_DEPTH | FTW_PHYS);
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

static int ts_setup(void **state)
{
    ts_fixture_t *f = calloc(1, sizeof(*f));
    char err[TS_ERR_MAX] = "";

    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/rp_state_test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->url, sizeof(f->url), "file://%s", f->dir);
    if (rp_state_open(f->url, &f->st, err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "open %s: %s\n", f->url, err);
        ts_rm_rf(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int ts_teardown(void **state)
{
    ts_fixture_t *f = *state;
    int leftovers = ts_count_tmp(f->dir);

    rp_state_destroy(f->st);
    ts_rm_rf(f->dir);
    free(f);
    /* Every test ends with no temp file left behind. */
    return leftovers == 0 ? 0 : -1;
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

static uint64_t ts_put(rp_state_t *st, const char *key, const char *text,
                       uint64_t if_version)
{
    char err[TS_ERR_MAX] = "";
    uint64_t v = 0;
    rp_err_t rc = rp_state_put(st, key, text, strlen(text), if_version, &v,
                               err, sizeof(err));

    if (rc != RP_OK)
        fprintf(stderr, "put %s: %s\n", key, err);
    assert_int_equal(rc, RP_OK);
    assert_true(v != 0 && v != RP_STATE_ANY);
    return v;
}

/* Assert key holds exactly text; returns its version. */
static uint64_t ts_expect(rp_state_t *st, const char *key, const char *text)
{
    char err[TS_ERR_MAX] = "";
    rp_buf_t b;
    uint64_t v = 0;

    rp_buf_init(&b, 1 << 20);
    assert_int_equal(rp_state_get(st, key, &b, &v, err, sizeof(err)), RP_OK);
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.data, text, b.len);
    rp_buf_free(&b);
    assert_true(v != 0);
    return v;
}

static rp_err_t ts_get_rc(rp_state_t *st, const char *key)
{
    char err[TS_ERR_MAX] = "";
    rp_buf_t b;
    rp_err_t rc;

    rp_buf_init(&b, 1 << 20);
    rc = rp_state_get(st, key, &b, NULL, err, sizeof(err));
    rp_buf_free(&b);
    return rc;
}

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
    ts_fixture_t *f = *state;
    char url[TS_PATH_MAX * 2], path[TS_PATH_MAX * 2];
    char err[TS_ERR_MAX] = "";
    rp_state_t *st = NULL;
    struct stat sb;

    /* Missing parents are created; a trailing slash is harmless. */
    snprintf(url, sizeof(url), "file://%s/new/deeper/", f->dir);
    assert_int_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
    snprintf(path, sizeof(path), "%s/new/deeper", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    ts_put(st, "k", "v", RP_STATE_ANY);
    snprintf(path, sizeof(path), "%s/new/deeper/k", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    rp_state_destroy(st);

    /* A regular file where the directory should be is refused. */
    ts_write_file(f->dir, "plain", "x");
    snprintf(url, sizeof(url), "file://%s/plain", f->dir);
    assert_int_not_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
    assert_null(st);
    rp_state_destroy(NULL);
}

/* ---- single-writer behaviour ---- */

static void test_put_get_roundtrip(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    rp_buf_t b;
    uint64_t v, got = 0;

    v = ts_put(f->st, "sessions/s1/state.json", "{\"cwd\":\"/\"}",
               RP_STATE_ANY);
    assert_int_equal(ts_expect(f->st, "sessions/s1/state.json",
                               "{\"cwd\":\"/\"}"),
                     v);

    /* Binary data with NULs survives; the buffer is reset, not appended. */
    rp_buf_init(&b, 64);
    assert_int_equal(rp_buf_append_str(&b, "old junk"), RP_OK);
    assert_int_equal(rp_state_put(f->st, "bin", "a\0b\0", 4, RP_STATE_ANY,
                                  &v, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(rp_state_get(f->st, "bin", &b, &got, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\0", 4);
    assert_int_equal(got, v);

    /* An empty value is an object too, with a non-NULL "" data. */
    assert_int_equal(rp_state_put(f->st, "empty", NULL, 0, 0, &v, err,
                                  sizeof(err)),
                     RP_OK);
    rp_buf_free(&b);
    rp_buf_init(&b, 64);
    assert_int_equal(rp_state_get(f->st, "empty", &b, &got, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(got, v);
    rp_buf_free(&b);

    /* The object is a plain file at dir/key. */
    {
        char path[TS_PATH_MAX * 2];
        struct stat sb;

        snprintf(path, sizeof(path), "%s/sessions/s1/state.json", f->dir);
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_size, strlen("{\"cwd\":\"/\"}"));
    }
}

static void test_get_missing(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    rp_buf_t b;
    uint64_t v = 77;

    rp_buf_init(&b, 64);
    assert_int_equal(rp_state_get(f->st, "nope", &b, &v, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(v, 77); /* untouched on failure */
    assert_int_equal(ts_get_rc(f->st, "no/such/dir/key"), RP_ERR_NOT_FOUND);
    /* Below an object: "file/x" cannot exist while "file" is an object. */
    ts_put(f->st, "file", "x", RP_STATE_ANY);
    assert_int_equal(ts_get_rc(f->st, "file/x"), RP_ERR_NOT_FOUND);
    /* A directory of deeper keys is not itself an object. */
    ts_put(f->st, "d/inner", "x", RP_STATE_ANY);
    assert_int_equal(ts_get_rc(f->st, "d"), RP_ERR_NOT_FOUND);
    rp_buf_free(&b);
}

static void test_create_only(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    uint64_t v1, v2 = 0;

    v1 = ts_put(f->st, "executions/e1/result.json", "first", 0);
    assert_int_equal(rp_state_put(f->st, "executions/e1/result.json",
                                  "second", 6, 0, &v2, err, sizeof(err)),
                     RP_ERR_EXISTS);
    assert_int_equal(v2, 0); /* not set on failure */
    assert_non_null(strstr(err, "executions/e1/result.json"));
    assert_int_equal(ts_expect(f->st, "executions/e1/result.json", "first"),
                     v1);
    assert_int_equal(ts_count_tmp(f->dir), 0);
}

static void test_cas(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    uint64_t v1, v2, v3 = 0;

    v1 = ts_put(f->st, "k", "one", 0);
    v2 = ts_put(f->st, "k", "two", v1);
    assert_true(v2 > v1);
    assert_int_equal(ts_expect(f->st, "k", "two"), v2);

    /* Stale version: refused, content and version unchanged. */
    assert_int_equal(rp_state_put(f->st, "k", "three", 5, v1, &v3, err,
                                  sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_int_equal(v3, 0);
    assert_true(strlen(err) > 0);
    assert_int_equal(ts_expect(f->st, "k", "two"), v2);

    /* Create-only on a live key is EXISTS, not CONFLICT. */
    assert_int_equal(rp_state_put(f->st, "k", "x", 1, 0, NULL, err,
                                  sizeof(err)),
                     RP_ERR_EXISTS);
    /* Unconditional always wins and still moves the version on. */
    v3 = ts_put(f->st, "k", "four", RP_STATE_ANY);
    assert_true(v3 > v2);
    assert_int_equal(ts_expect(f->st, "k", "four"), v3);
    assert_int_equal(ts_count_tmp(f->dir), 0);
}

static void test_cas_missing(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";

    assert_int_equal(rp_state_put(f->st, "gone/k", "x", 1, 12345, NULL, err,
                                  sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_non_null(strstr(err, "absent"));
    assert_int_equal(ts_get_rc(f->st, "gone/k"), RP_ERR_NOT_FOUND);
    assert_int_equal(ts_count_tmp(f->dir), 0);
}

static void test_delete(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    uint64_t v1, v2;

    v1 = ts_put(f->st, "a/b", "x", 0);
    v2 = ts_put(f->st, "a/b", "y", v1);
    assert_int_equal(rp_state_delete(f->st, "a/b", v1, err, sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_int_equal(ts_expect(f->st, "a/b", "y"), v2);
    assert_int_equal(rp_state_delete(f->st, "a/b", v2, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(ts_get_rc(f->st, "a/b"), RP_ERR_NOT_FOUND);
    assert_int_equal(rp_state_delete(f->st, "a/b", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_int_equal(rp_state_delete(f->st, "a/b", v2, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_int_equal(rp_state_delete(f->st, "never/there", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_ERR_NOT_FOUND);
    /* Unconditional delete. */
    ts_put(f->st, "c", "z", RP_STATE_ANY);
    assert_int_equal(rp_state_delete(f->st, "c", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(ts_get_rc(f->st, "c"), RP_ERR_NOT_FOUND);
}

static void test_versions_never_reused(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "";
    uint64_t highest = 0, v;
    int i;

    /* Each write, in any mode, beats every version the key ever had, even
     * across delete + recreate. */
    for (i = 0; i < 30; i++) {
        v = ts_put(f->st, "s/k", "a", 0);
        assert_true(v > highest);
        highest = v;
        v = ts_put(f->st, "s/k", "b", v);
        assert_true(v > highest);
        highest = v;
        v = ts_put(f->st, "s/k", "c", RP_STATE_ANY);
        assert_true(v > highest);
        highest = v;
        assert_int_equal(rp_state_delete(f->st, "s/k", v, err, sizeof(err)),
                         RP_OK);
    }
}

static void test_hand_edit_new_version(void **state)
{
    ts_fixture_t *f = *state;
    uint64_t v1, v2;

    v1 = ts_put(f->st, "h", "by runpool", RP_STATE_ANY);
    /* Someone edits the file in place: the old version must no longer
     * match, so a CAS based on it cannot silently overwrite the edit. */
    ts_write_file(f->dir, "h", "by hand");
    v2 = ts_expect(f->st, "h", "by hand");
    assert_true(v2 != v1);
    assert_int_equal(rp_state_put(f->st, "h", "x", 1, v1, NULL, NULL, 0),
                     RP_ERR_CONFLICT);
    assert_true(ts_put(f->st, "h", "again", v2) > v2);
}

static void test_not_objects(void **state)
{
    ts_fixture_t *f = *state;
    char path[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "";

    /* Symlinks are never followed. */
    ts_put(f->st, "target", "secret", RP_STATE_ANY);
    snprintf(path, sizeof(path), "%s/lnk", f->dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(ts_get_rc(f->st, "lnk"), RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "lnk", "x", 1, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);

    /* A key cannot be both an object and a directory of deeper keys. */
    ts_put(f->st, "d/x", "1", RP_STATE_ANY);
    assert_int_equal(rp_state_put(f->st, "d", "x", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "d/x/y", "x", 1, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_state_put(f->st, "d/x/y/z", "x", 1, 0, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(ts_count_tmp(f->dir), 0);
}

static void test_invalid_keys(void **state)
{
    static const char *const bad[] = {
        "../x", "/abs", "a//b", "a/./b", "a/../b", "a/", "", "a b", "a$b",
        "+tmp.x",
    };
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX], key[RP_STATE_KEY_MAX + 2];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ts_get_rc(f->st, bad[i]), RP_ERR_INVALID);
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
    ts_put(f->st, key, "long", 0);
    ts_expect(f->st, key, "long");
    key[RP_STATE_KEY_MAX] = 's';
    key[RP_STATE_KEY_MAX + 1] = '\0';
    assert_int_equal(ts_get_rc(f->st, key), RP_ERR_INVALID);

    /* A valid key whose segment is over the filesystem's NAME_MAX (255). */
    memset(key, 'n', 300);
    key[300] = '\0';
    assert_true(rp_state_key_valid(key));
    assert_int_equal(rp_state_put(f->st, key, "x", 1, RP_STATE_ANY, NULL, err,
                                  sizeof(err)),
                     RP_ERR_INVALID);
    /* Nothing was written anywhere. */
    assert_int_equal(ts_count_tmp(f->dir), 0);
    assert_int_equal(ts_get_rc(f->st, "x"), RP_ERR_NOT_FOUND);
}

static void test_too_large(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "", value[1000];
    rp_buf_t b;
    uint64_t v = 0;
    char *huge;

    memset(value, 'v', sizeof(value));
    assert_int_equal(rp_state_put(f->st, "big", value, sizeof(value),
                                  RP_STATE_ANY, NULL, err, sizeof(err)),
                     RP_OK);
    rp_buf_init(&b, sizeof(value) - 1);
    assert_int_equal(rp_state_get(f->st, "big", &b, &v, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    assert_int_equal(v, 0);
    rp_buf_free(&b);
    rp_buf_init(&b, sizeof(value));
    assert_int_equal(rp_state_get(f->st, "big", &b, &v, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(b.len, sizeof(value));
    rp_buf_free(&b);

    /* Over RP_STATE_VALUE_MAX is refused before anything touches disk. */
    huge = calloc(1, (size_t)RP_STATE_VALUE_MAX + 1);
    assert_non_null(huge);
    assert_int_equal(rp_state_put(f->st, "huge", huge,
                                  (size_t)RP_STATE_VALUE_MAX + 1,
                                  RP_STATE_ANY, NULL, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(huge);
    assert_int_equal(ts_get_rc(f->st, "huge"), RP_ERR_NOT_FOUND);
    /* NULL data with a length is a caller bug. */
    assert_int_equal(rp_state_put(f->st, "n", NULL, 3, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);
}

static void test_fsync_modes(void **state)
{
    static const char *const opts[] = {"?fsync=0", "?fsync=1", "",
                                       "?fsync=0&fsync=1"};
    ts_fixture_t *f = *state;
    char url[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "", key[32];
    size_t i;

    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        rp_state_t *st = NULL;
        uint64_t v;

        snprintf(url, sizeof(url), "file://%s/m%zu%s", f->dir, i, opts[i]);
        assert_int_equal(rp_state_open(url, &st, err, sizeof(err)), RP_OK);
        snprintf(key, sizeof(key), "sessions/s%zu/state.json", i);
        v = ts_put(st, key, "a", 0);
        v = ts_put(st, key, "b", v);
        assert_int_equal(ts_expect(st, key, "b"), v);
        assert_int_equal(rp_state_delete(st, key, v, err, sizeof(err)), RP_OK);
        assert_int_equal(ts_get_rc(st, key), RP_ERR_NOT_FOUND);
        rp_state_destroy(st);
    }
}

/* ---- listing ---- */

#define TS_LIST_MAX 16

typedef struct ts_list {
    int n;
    int stop_after; /* 0 = never stop */
    char keys[TS_LIST_MAX][RP_STATE_KEY_MAX + 1];
    uint64_t versions[TS_LIST_MAX];
} ts_list_t;

static int ts_list_cb(void *opaque, const char *key, uint64_t version)
{
    ts_list_t *l = opaque;

    if (l->n < TS_LIST_MAX) {
        snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
        l->versions[l->n] = version;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static int ts_list_has(const ts_list_t *l, const char *key, uint64_t *version)
{
    int i;

    for (i = 0; i < l->n && i < TS_LIST_MAX; i++) {
        if (strcmp(l->keys[i], key) == 0) {
            if (version)
                *version = l->versions[i];
            return 1;
        }
    }
    return 0;
}

static int ts_list_count(rp_state_t *st, const char *prefix)
{
    ts_list_t l;
    char err[TS_ERR_MAX] = "";

    memset(&l, 0, sizeof(l));
    assert_int_equal(rp_state_list(st, prefix, ts_list_cb, &l, err,
                                   sizeof(err)),
                     RP_OK);
    return l.n;
}

static void test_list(void **state)
{
    ts_fixture_t *f = *state;
    char err[TS_ERR_MAX] = "", path[TS_PATH_MAX * 2];
    uint64_t v1, v2, v3, v4, seen = 0;
    ts_list_t l;

    v1 = ts_put(f->st, "sessions/s1/state.json", "1", 0);
    v2 = ts_put(f->st, "sessions/s2/state.json", "2", 0);
    v3 = ts_put(f->st, "executions/e1/result.json", "3", 0);
    v4 = ts_put(f->st, "top", "4", 0);
    /* Things in the directory that are not objects are never reported. */
    ts_write_file(f->dir, "sessions/s1/+tmp.99.1.dead", "crashed writer");
    ts_write_file(f->dir, "bad name", "x");
    snprintf(path, sizeof(path), "%s/link", f->dir);
    assert_int_equal(symlink("top", path), 0);
    snprintf(path, sizeof(path), "%s/emptydir", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);

    memset(&l, 0, sizeof(l));
    assert_int_equal(rp_state_list(f->st, "", ts_list_cb, &l, err,
                                   sizeof(err)),
                     RP_OK);
    assert_int_equal(l.n, 4);
    assert_true(ts_list_has(&l, "sessions/s1/state.json", &seen));
    assert_int_equal(seen, v1);
    assert_true(ts_list_has(&l, "sessions/s2/state.json", &seen));
    assert_int_equal(seen, v2);
    assert_true(ts_list_has(&l, "executions/e1/result.json", &seen));
    assert_int_equal(seen, v3);
    assert_true(ts_list_has(&l, "top", &seen));
    assert_int_equal(seen, v4);

    memset(&l, 0, sizeof(l));
    assert_int_equal(rp_state_list(f->st, "sessions/", ts_list_cb, &l, err,
                                   sizeof(err)),
                     RP_OK);
    assert_int_equal(l.n, 2);
    assert_true(ts_list_has(&l, "sessions/s1/state.json", NULL));
    assert_true(ts_list_has(&l, "sessions/s2/state.json", NULL));

    assert_int_equal(ts_list_count(f->st, "sess"), 2);
    assert_int_equal(ts_list_count(f->st, "sessions"), 2);
    assert_int_equal(ts_list_count(f->st, "sessions/s1"), 1);
    assert_int_equal(ts_list_count(f->st, "sessions/s1/"), 1);
    assert_int_equal(ts_list_count(f->st, "sessions/s1/state.json"), 1);
    assert_int_equal(ts_list_count(f->st, "sessions/s1/state.jsonx"), 0);
    assert_int_equal(ts_list_count(f->st, "t"), 1);
    /* "emptydir" matches "e" too, but holds no objects. */
    assert_int_equal(ts_list_count(f->st, "e"), 1);
    assert_int_equal(ts_list_count(f->st, "nope/"), 0);
    assert_int_equal(ts_list_count(f->st, "top/"), 0);
    assert_int_equal(ts_list_count(f->st, "../"), 0);
    assert_int_equal(ts_list_count(f->st, "a//"), 0);

    /* The callback can stop the walk. */
    memset(&l, 0, sizeof(l));
    l.stop_after = 1;
    assert_int_equal(rp_state_list(f->st, "", ts_list_cb, &l, err,
                                   sizeof(err)),
                     RP_OK);
    assert_int_equal(l.n, 1);

    /* Deleted keys disappear from listings. */
    assert_int_equal(rp_state_delete(f->st, "sessions/s1/state.json",
                                     RP_STATE_ANY, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(ts_list_count(f->st, "sessions/"), 1);
    assert_int_equal(rp_state_list(f->st, NULL, ts_list_cb, &l, err,
                                   sizeof(err)),
                     RP_ERR_INVALID);

    /* Clean up the planted temp file so the teardown check holds. */
    snprintf(path, sizeof(path), "%s/sessions/s1/+tmp.99.1.dead", f->dir);
    assert_int_equal(unlink(path), 0);
}

/* Directories left behind by deletes are not objects. */
static void test_list_empty_dirs(void **state)
{
    ts_fixture_t *f = *state;
    char path[TS_PATH_MAX * 2], err[TS_ERR_MAX] = "";

    snprintf(path, sizeof(path), "%s/empty", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(ts_list_count(f->st, ""), 0);
    ts_put(f->st, "empty/x", "1", 0);
    assert_int_equal(ts_list_count(f->st, "e"), 1);
    assert_int_equal(rp_state_delete(f->st, "empty/x", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(ts_list_count(f->st, ""), 0);
}

/* ---- concurrency ---- */

#define TS_COUNTER_KEY "sessions/race/state.json"
#define TS_PROC_INCREMENTS 300
#define TS_THREADS 4
#define TS_THREAD_INCREMENTS 150
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
    ts_fixture_t *f = *state;
    int go[2], out[2], i;
    pid_t pids[2];
    long conflicts[2];
    char want[32];

    ts_put(f->st, TS_COUNTER_KEY, "0", 0);
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
    ts_expect(f->st, TS_COUNTER_KEY, want);
    print_message("two processes: %d increments each, %ld + %ld conflicts "
                  "retried\n",
                  TS_PROC_INCREMENTS, conflicts[0], conflicts[1]);
}

typedef struct ts_thread_arg {
    rp_state_t *st;
    long conflicts;
    int failed;
} ts_thread_arg_t;

static void *ts_thread_main(void *p)
{
    ts_thread_arg_t *a = p;
    int i;

    for (i = 0; i < TS_THREAD_INCREMENTS; i++) {
        long c = ts_increment(a->st);

        if (c < 0) {
            a->failed = 1;
            break;
        }
        a->conflicts += c;
    }
    return NULL;
}

static void test_threads_share_one_store(void **state)
{
    ts_fixture_t *f = *state;
    pthread_t th[TS_THREADS];
    ts_thread_arg_t args[TS_THREADS];
    char want[32];
    int i;

    ts_put(f->st, TS_COUNTER_KEY, "0", 0);
    memset(args, 0, sizeof(args));
    for (i = 0; i < TS_THREADS; i++) {
        args[i].st = f->st;
        assert_int_equal(pthread_create(&th[i], NULL, ts_thread_main,
                                        &args[i]),
                         0);
    }
    for (i = 0; i < TS_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failed, 0);
    }
    snprintf(want, sizeof(want), "%d", TS_THREADS * TS_THREAD_INCREMENTS);
    ts_expect(f->st, TS_COUNTER_KEY, want);
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
    ts_fixture_t *f = *state;
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
        ts_expect(f->st, key, text);
    }
    assert_int_equal(ts_list_count(f->st, "race/"), TS_CREATE_KEYS);
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
    ts_fixture_t *f = *state;
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

#define TS_TEST(fn) cmocka_unit_test_setup_teardown(fn, ts_setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_key_builders),
        cmocka_unit_test(test_bad_urls),
        TS_TEST(test_open_creates_dir),
        TS_TEST(test_put_get_roundtrip),
        TS_TEST(test_get_missing),
        TS_TEST(test_create_only),
        TS_TEST(test_cas),
        TS_TEST(test_cas_missing),
        TS_TEST(test_delete),
        TS_TEST(test_versions_never_reused),
        TS_TEST(test_hand_edit_new_version),
        TS_TEST(test_not_objects),
        TS_TEST(test_invalid_keys),
        TS_TEST(test_too_large),
        TS_TEST(test_fsync_modes),
        TS_TEST(test_list),
        TS_TEST(test_list_empty_dirs),
        TS_TEST(test_two_processes_no_lost_update),
        TS_TEST(test_threads_share_one_store),
        TS_TEST(test_two_processes_create_race),
        TS_TEST(test_reader_never_sees_torn_value),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
