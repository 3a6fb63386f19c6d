/* rp_ws and rp_cdc: workspace snapshots against a file:// store in a temp
 * dir. The store is wrapped in a counting one (every get/put/delete the
 * library makes goes through it), so "uploads only a few chunks" and
 * "fetches only the covering chunks" are counted by the test, not taken
 * from the library's own stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zstd.h>

#include "rp_cdc.h"
#include "rp_layout.h"
#include "rp_state.h"
#include "rp_test_dir.h"
#include "rp_ws.h"

/* ------------------------------------------------------------ fixture */

/* A call that must succeed; its message (es) when it does not. */
#define OKE(call)                                                           \
    do {                                                                    \
        rp_err_t e_ = (call);                                               \
        if (e_ != RP_OK)                                                    \
            fail_msg("%s: %s (%s)", #call, rp_err_str(e_), es);              \
    } while (0)

typedef struct counts {
    int gets, puts, dels;
    int chunk_gets, chunk_puts;
} counts_t;

static counts_t g_n;
/* > 0: the chunk put with this number (1-based) and later ones fail. */
static int g_fail_chunk_put;

static int is_chunk(const char *key)
{
    return strstr(key, "/chunks/") != NULL;
}

static rp_err_t c_get(rp_state_t *st, const char *key, rp_buf_t *out,
                      uint64_t *version, char *e, size_t es)
{
    /* Restores fetch from several threads. */
    __atomic_fetch_add(&g_n.gets, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_n.chunk_gets, is_chunk(key), __ATOMIC_RELAXED);
    return rp_state_get(st->impl, key, out, version, e, es);
}
static rp_err_t c_put(rp_state_t *st, const char *key, const void *data,
                      size_t len, uint64_t if_version, uint64_t *nv, char *e,
                      size_t es)
{
    __atomic_fetch_add(&g_n.puts, 1, __ATOMIC_RELAXED);
    if (is_chunk(key) &&
        __atomic_add_fetch(&g_n.chunk_puts, 1, __ATOMIC_RELAXED) >=
            __atomic_load_n(&g_fail_chunk_put, __ATOMIC_RELAXED) &&
        __atomic_load_n(&g_fail_chunk_put, __ATOMIC_RELAXED) > 0)
        return rp_errf(e, es, RP_ERR_UNAVAILABLE, "injected: store down");
    return rp_state_put(st->impl, key, data, len, if_version, nv, e, es);
}
static rp_err_t c_del(rp_state_t *st, const char *key, uint64_t if_version,
                      char *e, size_t es)
{
    __atomic_fetch_add(&g_n.dels, 1, __ATOMIC_RELAXED);
    return rp_state_delete(st->impl, key, if_version, e, es);
}
static rp_err_t c_list(rp_state_t *st, const char *prefix,
                       rp_state_list_cb *cb, void *opaque, char *e, size_t es)
{
    return rp_state_list(st->impl, prefix, cb, opaque, e, es);
}
static const rp_state_ops_t counting_ops = {
    .scheme = "count", .get = c_get, .put = c_put, .del = c_del,
    .list = c_list};

typedef struct fx {
    char root[256];
    char store_dir[300];
    rp_state_t *inner;
    rp_state_t st; /* counting wrapper around inner */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char url[400], es[256];

    snprintf(f->root, sizeof(f->root), "/tmp/rp_test_ws.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->store_dir, sizeof(f->store_dir), "%s/store", f->root);
    mkdir(f->store_dir, 0700);
    snprintf(url, sizeof(url), "file://%s?fsync=0", f->store_dir);
    if (rp_state_open(url, &f->inner, es, sizeof(es)) != RP_OK) {
        fprintf(stderr, "open: %s\n", es);
        return -1;
    }
    f->st.ops = &counting_ops;
    snprintf(f->st.url, sizeof(f->st.url), "count:%s", url);
    f->st.impl = f->inner;
    memset(&g_n, 0, sizeof(g_n));
    g_fail_chunk_put = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    rp_state_destroy(f->inner);
    rp_test_rmtree(f->root);
    free(f);
    return 0;
}

static void sub(const fx_t *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", f->root, name);
}

static void mkd(const char *base, const char *rel, mode_t mode)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_int_equal(mkdir(p, mode), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void wfile(const char *base, const char *rel, const void *data,
                  size_t len, mode_t mode)
{
    char p[4096];
    int fd;

    snprintf(p, sizeof(p), "%s/%s", base, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(p, mode), 0);
}

/* Deterministic pseudo-random bytes (xorshift). */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* --- an independent description of a tree: sorted lines of
 * "path type mode size mtime_ns link content-hash" (not the root). */
static char **g_lines;
static size_t g_nlines, g_base_len;

static int lister(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    char line[8192], link[4096] = "";
    uint64_t h = 1469598103934665603ULL;

    (void)flag;
    if (ftw->level == 0)
        return 0;
    if (S_ISLNK(sb->st_mode)) {
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        link[n > 0 ? n : 0] = '\0';
    } else if (S_ISREG(sb->st_mode)) {
        uint8_t buf[65536];
        ssize_t r;
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        while ((r = read(fd, buf, sizeof(buf))) > 0)
            for (ssize_t i = 0; i < r; i++)
                h = (h ^ buf[i]) * 1099511628211ULL;
        close(fd);
    }
    snprintf(line, sizeof(line), "%s %c %o %lld %lld %s %016llx",
             path + g_base_len,
             S_ISDIR(sb->st_mode)   ? 'd'
             : S_ISLNK(sb->st_mode) ? 'l'
             : S_ISREG(sb->st_mode) ? 'f'
                                    : 's',
             S_ISLNK(sb->st_mode) ? 0777 : (unsigned)(sb->st_mode & 07777),
             S_ISREG(sb->st_mode) ? (long long)sb->st_size : 0LL,
             S_ISLNK(sb->st_mode)
                 ? 0LL
                 : (long long)sb->st_mtim.tv_sec * 1000000000LL +
                       sb->st_mtim.tv_nsec,
             link, (unsigned long long)h);
    g_lines = realloc(g_lines, (g_nlines + 1) * sizeof(*g_lines));
    g_lines[g_nlines++] = strdup(line);
    return 0;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The tree as one string, special files left out (they are not saved). */
static char *describe(const char *dir)
{
    size_t total = 1;
    char *s;

    g_lines = NULL;
    g_nlines = 0;
    g_base_len = strlen(dir);
    assert_int_equal(nftw(dir, lister, 16, FTW_PHYS), 0);
    qsort(g_lines, g_nlines, sizeof(*g_lines), cmpstr);
    for (size_t i = 0; i < g_nlines; i++)
        total += strlen(g_lines[i]) + 1;
    s = calloc(1, total);
    for (size_t i = 0; i < g_nlines; i++) {
        if (strchr(g_lines[i], ' ')[1] != 's') {
            strcat(s, g_lines[i]);
            strcat(s, "\n");
        }
        free(g_lines[i]);
    }
    free(g_lines);
    return s;
}

static void set_mtime(const char *base, const char *rel, long sec, long nsec)
{
    char p[4096];
    struct timespec ts[2] = {{0, UTIME_OMIT}, {sec, nsec}};

    snprintf(p, sizeof(p), "%s/%s", base, rel);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void cat(const char *base, const char *rel, char *out, size_t n);

/* ---------------------------------------------------------------- cdc */

typedef struct chunks {
    size_t n;
    size_t len[4096];
    uint64_t sum[4096];
} chunks_t;

static rp_err_t collect(void *opaque, const uint8_t *data, size_t len)
{
    chunks_t *c = opaque;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    assert_true(c->n < 4096);
    c->len[c->n] = len;
    c->sum[c->n++] = h;
    return RP_OK;
}

static void chunk_all(const uint8_t *p, size_t n, size_t piece, chunks_t *c)
{
    rp_cdc_t *cdc = rp_cdc_new(collect, c);

    c->n = 0;
    assert_non_null(cdc);
    for (size_t off = 0; off < n; off += piece)
        assert_int_equal(rp_cdc_push(cdc, p + off,
                                     n - off < piece ? n - off : piece),
                         RP_OK);
    assert_int_equal(rp_cdc_finish(cdc), RP_OK);
    rp_cdc_destroy(cdc);
}

static void test_cdc(void **state)
{
    size_t n = 8 * 1024 * 1024, total = 0, same = 0;
    uint8_t *p = malloc(n + 100);
    chunks_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

    (void)state;
    fill(p, n, 7);
    chunk_all(p, n, n, a);
    chunk_all(p, n, 4093, b); /* other piece sizes, same boundaries */
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->len[i], b->len[i]);
        assert_true(a->sum[i] == b->sum[i]);
        if (i + 1 < a->n)
            assert_true(a->len[i] >= RP_CDC_MIN);
        assert_true(a->len[i] <= RP_CDC_MAX);
        total += a->len[i];
    }
    assert_int_equal(total, n);
    /* Average near 64 KiB: 8 MiB gives roughly 128 chunks. */
    assert_in_range(a->n, 64, 256);

    /* 100 bytes inserted in the middle: all but a few chunks survive. */
    memmove(p + n / 2 + 100, p + n / 2, n / 2);
    fill(p + n / 2, 100, 99);
    chunk_all(p, n + 100, 65536, b);
    for (size_t i = 0; i < b->n; i++)
        for (size_t j = 0; j < a->n; j++)
            if (a->sum[j] == b->sum[i] && a->len[j] == b->len[i]) {
                same++;
                break;
            }
    assert_true(same + 3 >= a->n);

    /* Zeros (no content to cut on) cut at the maximum. */
    memset(p, 0, n);
    chunk_all(p, 1024 * 1024, 1000, a);
    assert_int_equal(a->n, 4);
    assert_int_equal(a->len[0], RP_CDC_MAX);
    free(p);
    free(a);
    free(b);
}

/* --------------------------------------------------------------- paths */

static void test_path_check(void **state)
{
    char norm[RP_WS_PATH_MAX + 1], es[256], big[RP_WS_PATH_MAX + 10];

    (void)state;
    assert_int_equal(rp_ws_path_check("a//b/./c", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_OK);
    assert_string_equal(norm, "a/b/c");
    assert_int_equal(rp_ws_path_check("./x/", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_OK);
    assert_string_equal(norm, "x");
    assert_int_equal(rp_ws_path_check(".", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_OK);
    assert_string_equal(norm, "");
    assert_int_equal(rp_ws_path_check("a..b/..c", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_OK);
    assert_string_equal(norm, "a..b/..c");

    assert_int_equal(rp_ws_path_check("", norm, sizeof(norm), es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "empty"));
    assert_int_equal(rp_ws_path_check("a/../../etc", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, ".."));
    assert_string_equal(norm, "");
    assert_int_equal(rp_ws_path_check("..", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_ws_path_check("/etc/passwd", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "absolute"));
    assert_int_equal(rp_ws_path_check_len("a\0b", 3, norm, sizeof(norm), es,
                                          sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "NUL"));
    assert_int_equal(rp_ws_path_check("bad\xff", norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(rp_ws_path_check(big, norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID);
    memset(big, 'a', 300);
    big[300] = '\0';
    assert_int_equal(rp_ws_path_check(big, norm, sizeof(norm), es,
                                      sizeof(es)),
                     RP_ERR_INVALID); /* one segment over 255 */
    assert_int_equal(rp_ws_path_check("a/b", norm, 3, es, sizeof(es)),
                     RP_ERR_TOO_LARGE);
}

static void test_layout(void **state)
{
    char k[RP_STATE_KEY_MAX + 1];
    const char *h =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    (void)state;
    rp_layout_ws_chunk_key("s1", h, k, sizeof(k));
    assert_string_equal(k, "workspaces/s1/chunks/0123456789abcdef0123456789abcdef"
                           "0123456789abcdef0123456789abcdef");
    assert_true(rp_state_key_valid(k));
    rp_layout_ws_chunk_key("s1", "ABC", k, sizeof(k));
    assert_string_equal(k, "");
    rp_layout_ws_manifest_key("s1", "e-1", k, sizeof(k));
    assert_string_equal(k, "workspaces/s1/snapshots/e-1.json.zst");
    assert_true(rp_state_key_valid(k));
    rp_layout_ws_manifest_key("..", "e-1", k, sizeof(k));
    assert_string_equal(k, "");
    rp_layout_ws_manifest_key("s1", "a/b", k, sizeof(k));
    assert_string_equal(k, "");
    rp_layout_ws_prefix("s1", k, sizeof(k));
    assert_string_equal(k, "workspaces/s1/");
}

/* ---------------------------------------------------------- round trip */

/* A tree of every kind: files of several modes, an empty file, nested and
 * restrictive directories, long and non-ASCII names, symlinks (relative,
 * dangling, absolute to outside), and a fifo and a socket (skipped). */
static void make_tree(const fx_t *f, const char *w, int specials)
{
    char longname[256], longpath[1024], outside[400];
    uint8_t data[100000];

    (void)f;
    fill(data, sizeof(data), 1);
    wfile(w, "hello.txt", "hello\n", 6, 0644);
    wfile(w, "empty", "", 0, 0600);
    wfile(w, "run.sh", "#!/bin/sh\necho hi\n", 18, 0755);
    wfile(w, "big.bin", data, sizeof(data), 0640);
    mkd(w, "src", 0755);
    mkd(w, "src/deep", 0700);
    mkd(w, "src/deep/er", 0755);
    wfile(w, "src/deep/er/x.c", "int x;\n", 7, 0444);
    mkd(w, "emptydir", 0750);
    mkd(w, "ro", 0755);
    wfile(w, "ro/f", "ro", 2, 0644);
    assert_int_equal(chmod(w, 0755), 0);
    memset(longname, 'n', 200);
    longname[200] = '\0';
    wfile(w, longname, "long", 4, 0644);
    snprintf(longpath, sizeof(longpath), "src/%s", longname);
    mkd(w, longpath, 0755);
    snprintf(longpath, sizeof(longpath), "src/%s/%s", longname, longname);
    wfile(w, longpath, "longer", 6, 0644);
    wfile(w, "caf\xc3\xa9 \xe2\x98\x83.txt", "snow", 4, 0644);
    wfile(w, "a-b", "dash", 4, 0644); /* sorts between "a" and "a/..." */
    mkd(w, "a", 0755);
    wfile(w, "a/b", "slash", 5, 0644);
    {
        char p[4096];
        snprintf(p, sizeof(p), "%s/link-rel", w);
        assert_int_equal(symlink("src/deep/er/x.c", p), 0);
        snprintf(p, sizeof(p), "%s/link-dangling", w);
        assert_int_equal(symlink("no/such/file", p), 0);
        snprintf(outside, sizeof(outside), "%s/outside", f->root);
        snprintf(p, sizeof(p), "%s/link-out", w);
        assert_int_equal(symlink(outside, p), 0);
        snprintf(p, sizeof(p), "%s/link-up", w);
        assert_int_equal(symlink("../outside", p), 0);
    }
    if (specials) {
        char p[4096];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int s;

        snprintf(p, sizeof(p), "%s/fifo", w);
        assert_int_equal(mkfifo(p, 0644), 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", w);
        s = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(s);
    }
    /* Fixed times with nanoseconds, files before their directories. */
    set_mtime(w, "hello.txt", 1700000000, 123456789);
    set_mtime(w, "src/deep/er/x.c", 1600000000, 5);
    set_mtime(w, "src/deep/er", 1600000001, 999999999);
    set_mtime(w, "ro", 1500000000, 1);
}

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], outside[512], es[512];
    rp_ws_manifest_t *m = NULL, *back = NULL, *m2 = NULL;
    rp_ws_stats_t s;
    char *d1, *d2;
    const rp_ws_entry_t *e;
    const char *sp, *why;
    int saw_fifo = 0, saw_sock = 0;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    sub(f, "outside", outside, sizeof(outside));
    mkdir(w, 0755);
    mkdir(r, 0755);
    mkdir(outside, 0755);
    make_tree(f, w, 1);

    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                &s, es, sizeof(es)));
    assert_non_null(m);
    assert_false(s.unchanged);
    assert_int_equal(s.skipped, 2);
    assert_true(s.chunks_uploaded >= 1);
    assert_string_equal(rp_ws_manifest_key(m),
                        "workspaces/s1/snapshots/e1.json.zst");
    assert_int_equal(rp_ws_manifest_skipped_count(m), 2);
    for (size_t i = 0; i < 2; i++) {
        rp_ws_manifest_skipped(m, i, &sp, &why);
        saw_fifo |= !strcmp(sp, "fifo") && !strcmp(why, "fifo");
        saw_sock |= !strcmp(sp, "sock") && !strcmp(why, "socket");
    }
    assert_true(saw_fifo && saw_sock);
    /* Entries sorted byte-wise: "a" < "a-b" < "a/b". */
    for (size_t i = 1; i < rp_ws_manifest_count(m); i++)
        assert_true(strcmp(rp_ws_manifest_entry(m, i - 1)->path,
                           rp_ws_manifest_entry(m, i)->path) < 0);
    assert_non_null(e = rp_ws_manifest_find(m, "hello.txt"));
    assert_int_equal(e->type, 'f');
    assert_int_equal(e->size, 6);
    assert_int_equal(e->mode, 0644);
    assert_int_equal(e->mtime_ns, 1700000000123456789LL);
    assert_int_equal(e->mtime_ms, 1700000000123LL);
    assert_non_null(e = rp_ws_manifest_find(m, "link-out"));
    assert_int_equal(e->type, 'l');
    assert_string_equal(e->link, outside);
    assert_null(rp_ws_manifest_find(m, "fifo"));

    /* The manifest loads back from the store as saved. */
    OKE(rp_ws_manifest_load(&f->st, rp_ws_manifest_key(m), &back,
                                         es, sizeof(es)));
    assert_int_equal(rp_ws_manifest_count(back), rp_ws_manifest_count(m));
    rp_ws_manifest_destroy(back);

    OKE(rp_ws_restore(&f->st, m, r, NULL, &s, es, sizeof(es)));
    assert_int_equal(s.files, rp_ws_manifest_count(m));
    d1 = describe(w);
    d2 = describe(r);
    assert_string_equal(d1, d2);
    assert_non_null(strstr(d2, "/link-out l 777 0 0 "));
    free(d1);
    free(d2);

    /* Saving the restored copy: the same stream, so the same chunks (and
     * none uploaded again); unchanged against m (the fast path). */
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_save(&f->st, "s1", "e2", r, m, NULL, NULL, &m2, &s,
                                es, sizeof(es)));
    assert_null(m2);
    assert_true(s.unchanged);
    assert_int_equal(g_n.puts, 0);
    assert_int_equal(g_n.gets, 0);
    OKE(rp_ws_save(&f->st, "s1", "e3", r, NULL, NULL, NULL, &m2,
                                &s, es, sizeof(es)));
    assert_non_null(m2);
    assert_int_equal(rp_ws_manifest_chunks(m2), rp_ws_manifest_chunks(m));
    assert_int_equal(rp_ws_manifest_stream_bytes(m2),
                     rp_ws_manifest_stream_bytes(m));
    assert_int_equal(s.chunks_uploaded, 0); /* all EXISTS: stored already */
    /* A second save into an existing name is refused (create-only). */
    rp_ws_manifest_destroy(m2);
    m2 = NULL;
    assert_int_equal(rp_ws_save(&f->st, "s1", "e3", w, NULL, NULL, NULL, &m2,
                                &s, es, sizeof(es)),
                     RP_ERR_EXISTS);
    assert_null(m2);
    rp_ws_manifest_destroy(m);
}

static void test_empty_workspace(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], es[256];
    rp_ws_manifest_t *m = NULL, *m2 = NULL;
    rp_ws_stats_t s;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    mkdir(w, 0755);
    mkdir(r, 0755);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                &s, es, sizeof(es)));
    assert_non_null(m);
    assert_int_equal(rp_ws_manifest_count(m), 0);
    OKE(rp_ws_restore(&f->st, m, r, NULL, &s, es, sizeof(es)));
    OKE(rp_ws_save(&f->st, "s1", "e2", w, m, NULL, NULL, &m2, &s,
                                es, sizeof(es)));
    assert_null(m2);
    assert_true(s.unchanged);
    /* The workspace named through a symlink: saved as the directory. */
    {
        char lnk[600];
        snprintf(lnk, sizeof(lnk), "%s/wlink", f->root);
        wfile(w, "x", "x", 1, 0644);
        assert_int_equal(symlink(w, lnk), 0);
        OKE(rp_ws_save(&f->st, "s1", "e4", lnk, m, NULL, NULL, &m2, &s, es,
                       sizeof(es)));
        assert_non_null(m2);
        assert_int_equal(rp_ws_manifest_count(m2), 1);
        rp_ws_manifest_destroy(m2);
        m2 = NULL;
    }
    /* Not a directory: a clear error. */
    assert_int_equal(rp_ws_save(&f->st, "s1", "e3", "/nonexistent/ws", NULL,
                                NULL, NULL, &m2, &s, es, sizeof(es)),
                     RP_ERR_IO);
    assert_non_null(strstr(es, "/nonexistent/ws"));
    assert_int_equal(rp_ws_save(&f->st, "s/1", "e3", w, NULL, NULL, NULL, &m2,
                                &s, es, sizeof(es)),
                     RP_ERR_INVALID);
    rp_ws_manifest_destroy(m);
}

/* The restore target holds a symlink to outside where the snapshot has a
 * directory: libarchive replaces the symlink by the directory (it never
 * writes through it), so nothing lands outside. */
static void test_restore_never_writes_through_symlink(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], outside[512], p[1024], es[512], buf[64];
    rp_ws_manifest_t *m = NULL;
    struct stat sb;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    sub(f, "outside", outside, sizeof(outside));
    mkdir(w, 0755);
    mkdir(r, 0755);
    mkdir(outside, 0755);
    mkd(w, "d", 0755);
    wfile(w, "d/victim", "payload", 7, 0644);
    snprintf(p, sizeof(p), "%s/d", r);
    assert_int_equal(symlink(outside, p), 0);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m, NULL, es,
                   sizeof(es)));
    OKE(rp_ws_restore(&f->st, m, r, NULL, NULL, es, sizeof(es)));
    snprintf(p, sizeof(p), "%s/victim", outside);
    assert_int_equal(lstat(p, &sb), -1);
    snprintf(p, sizeof(p), "%s/d", r);
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    cat(r, "d/victim", buf, sizeof(buf));
    assert_string_equal(buf, "payload");
    rp_ws_manifest_destroy(m);
}

/* ------------------------------------------------- big, limits, changes */

static void make_10mb(const char *w)
{
    uint8_t *data = malloc(1024 * 1024);
    char name[64];

    mkd(w, "lib", 0755);
    for (int i = 0; i < 10; i++) {
        fill(data, 1024 * 1024, 100 + (uint64_t)i);
        snprintf(name, sizeof(name), "lib/part%02d.bin", i);
        wfile(w, name, data, 1024 * 1024, 0644);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "notes/n%02d.txt", i);
        if (i == 0)
            mkd(w, "notes", 0755);
        wfile(w, name, "some text\n", 10, 0644);
    }
    free(data);
}

static void test_one_change_uploads_few_chunks(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], es[512];
    rp_ws_manifest_t *m1 = NULL, *m2 = NULL;
    rp_ws_stats_t s;
    char *d1, *d2;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    mkdir(w, 0755);
    mkdir(r, 0755);
    make_10mb(w);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m1,
                                &s, es, sizeof(es)));
    assert_true(rp_ws_manifest_chunks(m1) > 40);
    assert_int_equal(g_n.chunk_puts, (int)s.chunks_uploaded);
    assert_true(s.bytes == 10 * 1024 * 1024 + 50 * 10);

    /* One small file changes (the same size, a later mtime). */
    wfile(w, "notes/n25.txt", "more text\n", 10, 0644);
    set_mtime(w, "notes/n25.txt", 1800000000, 0);
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_save(&f->st, "s1", "e2", w, m1, NULL, NULL, &m2,
                                &s, es, sizeof(es)));
    assert_non_null(m2);
    assert_false(s.unchanged);
    assert_in_range(g_n.chunk_puts, 1, 3);
    assert_int_equal(g_n.gets, 0); /* prev's chunks are not read back */
    assert_true(s.bytes_uploaded < 1024 * 1024);
    OKE(rp_ws_restore(&f->st, m2, r, NULL, &s, es, sizeof(es)));
    d1 = describe(w);
    d2 = describe(r);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    rp_ws_manifest_destroy(m1);
    rp_ws_manifest_destroy(m2);
}

/* Uploads run on several threads: one failing fails the save, with its
 * message, and no manifest is written (nothing half-saved is visible). */
static void test_upload_failure(void **state)
{
    fx_t *f = *state;
    char w[512], es[512];
    rp_ws_manifest_t *m = NULL;
    rp_buf_t b;

    sub(f, "w", w, sizeof(w));
    mkdir(w, 0755);
    make_10mb(w);
    g_fail_chunk_put = 30;
    assert_int_equal(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                NULL, es, sizeof(es)),
                     RP_ERR_UNAVAILABLE);
    assert_null(m);
    assert_non_null(strstr(es, "injected"));
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    assert_int_equal(rp_state_get(f->inner,
                                  "workspaces/s1/snapshots/e1.json.zst", &b,
                                  NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    /* The store back: the same save succeeds (chunks written before are
     * found stored). */
    g_fail_chunk_put = 0;
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m, NULL, es,
                   sizeof(es)));
    assert_non_null(m);
    rp_buf_free(&b);
    rp_ws_manifest_destroy(m);
}

static void test_limits(void **state)
{
    fx_t *f = *state;
    char w[512], es[512];
    rp_ws_manifest_t *m = NULL;
    rp_ws_stats_t s;
    rp_ws_limits_t lim = {.max_files = 10};
    uint8_t data[5000] = {1};

    sub(f, "w", w, sizeof(w));
    mkdir(w, 0755);
    for (int i = 0; i < 11; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        wfile(w, name, data, 100, 0644);
    }
    assert_int_equal(rp_ws_save(&f->st, "s1", "e1", w, NULL, &lim, NULL, &m,
                                &s, es, sizeof(es)),
                     RP_ERR_TOO_LARGE);
    assert_null(m);
    assert_int_equal(s.limit, RP_WS_LIMIT_FILES);
    assert_non_null(strstr(es, "RUNPOOL_WORKSPACE_MAX_FILES"));
    assert_int_equal(g_n.puts, 0);

    lim.max_files = 0; /* default */
    lim.max_bytes = 1000;
    assert_int_equal(rp_ws_save(&f->st, "s1", "e1", w, NULL, &lim, NULL, &m,
                                &s, es, sizeof(es)),
                     RP_ERR_TOO_LARGE);
    assert_int_equal(s.limit, RP_WS_LIMIT_BYTES);
    assert_non_null(strstr(es, "RUNPOOL_WORKSPACE_MAX_BYTES"));
    assert_int_equal(g_n.puts, 0);

    lim.max_bytes = 1100;
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, &lim, NULL, &m,
                                &s, es, sizeof(es)));
    assert_int_equal(s.limit, RP_WS_LIMIT_NONE);
    rp_ws_manifest_destroy(m);

    /* From the environment. */
    setenv("RUNPOOL_WORKSPACE_MAX_BYTES", "12345", 1);
    setenv("RUNPOOL_WORKSPACE_MAX_FILES", "", 1);
    assert_int_equal(rp_ws_limits_from_env(&lim, es, sizeof(es)), RP_OK);
    assert_int_equal(lim.max_bytes, 12345);
    assert_int_equal(lim.max_files, RP_WS_MAX_FILES_DEFAULT);
    setenv("RUNPOOL_WORKSPACE_MAX_FILES", "-3", 1);
    assert_int_equal(rp_ws_limits_from_env(&lim, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "RUNPOOL_WORKSPACE_MAX_FILES"));
    unsetenv("RUNPOOL_WORKSPACE_MAX_BYTES");
    unsetenv("RUNPOOL_WORKSPACE_MAX_FILES");
}

/* ------------------------------------------------------ bad input */

static rp_ws_manifest_t *parse_json(const char *json, rp_err_t want,
                                    const char *msg)
{
    size_t bound = ZSTD_compressBound(strlen(json));
    void *z = malloc(bound);
    size_t zn = ZSTD_compress(z, bound, json, strlen(json), 1);
    rp_ws_manifest_t *m = NULL;
    char es[512];

    assert_false(ZSTD_isError(zn));
    assert_int_equal(rp_ws_manifest_parse(z, zn, &m, es, sizeof(es)), want);
    if (want != RP_OK) {
        assert_null(m);
        if (msg && !strstr(es, msg))
            fail_msg("\"%s\" not in \"%s\"", msg, es);
    }
    free(z);
    return m;
}

#define HDR                                                                  \
    "{\"format\":\"runpool.workspace/1\",\"session_id\":\"s1\","             \
    "\"execution_id\":\"e1\",\"created_at\":\"2026-12-04T10:00:00.000Z\","

static void test_manifest_bad(void **state)
{
    fx_t *f = *state;
    char w[512], es[512], key[RP_STATE_KEY_MAX + 1];
    rp_ws_manifest_t *m = NULL;
    rp_buf_t b;
    rp_ws_manifest_t *ok;

    ok = parse_json(HDR "\"bytes\":0,\"files\":1,\"stream_bytes\":0,"
                        "\"chunks\":[],\"entries\":[{\"p\":\"d\",\"t\":\"d\","
                        "\"m\":493,\"mt\":1}],\"skipped\":[]}",
                    RP_OK, NULL);
    assert_int_equal(rp_ws_manifest_count(ok), 1);
    rp_ws_manifest_destroy(ok);
    /* A symlink with an entry below it: restore would write through it. */
    parse_json(HDR "\"bytes\":0,\"files\":2,\"stream_bytes\":0,\"chunks\":[],"
                   "\"entries\":[{\"p\":\"out\",\"t\":\"l\",\"m\":511,\"mt\":1,"
                   "\"l\":\"/etc\"},{\"p\":\"out/passwd\",\"t\":\"d\",\"m\":"
                   "493,\"mt\":1}]}",
               RP_ERR_INVALID, "parent is not a directory");
    parse_json(HDR "\"bytes\":0,\"files\":1,\"stream_bytes\":0,\"chunks\":[],"
                   "\"entries\":[{\"p\":\"../x\",\"t\":\"d\",\"m\":493,"
                   "\"mt\":1}]}",
               RP_ERR_INVALID, "entry path");
    parse_json(HDR "\"bytes\":0,\"files\":1,\"stream_bytes\":0,\"chunks\":[],"
                   "\"entries\":[{\"p\":\"/x\",\"t\":\"d\",\"m\":493,"
                   "\"mt\":1}]}",
               RP_ERR_INVALID, "entry path");
    parse_json(HDR "\"bytes\":0,\"files\":2,\"stream_bytes\":0,\"chunks\":[],"
                   "\"entries\":[{\"p\":\"b\",\"t\":\"d\",\"m\":493,\"mt\":1},"
                   "{\"p\":\"a\",\"t\":\"d\",\"m\":493,\"mt\":1}]}",
               RP_ERR_INVALID, "sorted");
    parse_json(HDR "\"bytes\":5,\"files\":1,\"stream_bytes\":10,\"chunks\":"
                   "[{\"h\":\"00000000000000000000000000000000000000000000000"
                   "00000000000000000\",\"n\":10}],\"entries\":[{\"p\":\"f\","
                   "\"t\":\"f\",\"m\":420,\"mt\":1,\"s\":5,\"o\":8}]}",
               RP_ERR_INVALID, "offset");
    parse_json(HDR "\"bytes\":0,\"files\":0,\"stream_bytes\":10,\"chunks\":[],"
                   "\"entries\":[]}",
               RP_ERR_INVALID, "chunk lengths");
    parse_json("{\"format\":\"other/2\"}", RP_ERR_INVALID, "format");
    parse_json("[1,2]", RP_ERR_INVALID, "not a JSON object");

    /* Not zstd, truncated zstd, over the cap. */
    assert_int_equal(rp_ws_manifest_parse("hello", 5, &m, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "zstd"));
    {
        size_t n = RP_WS_MANIFEST_MAX + 10, bound = ZSTD_compressBound(n), zn;
        char *big = malloc(n);
        void *z = malloc(bound);
        memset(big, ' ', n);
        zn = ZSTD_compress(z, bound, big, n, 1);
        assert_int_equal(rp_ws_manifest_parse(z, zn, &m, es, sizeof(es)),
                         RP_ERR_TOO_LARGE);
        free(big);
        free(z);
    }

    /* Small but with millions of JSON values: refused before cJSON
     * allocates a node for each. */
    {
        size_t n = 4 * 1000 * 1000, bound, zn;
        char *js = malloc(2 * n + 16);
        void *z;
        memcpy(js, "{\"x\":[", 6);
        for (size_t i = 0; i < n; i++)
            memcpy(js + 6 + 2 * i, "0,", 2);
        memcpy(js + 6 + 2 * n - 1, "]}", 3);
        bound = ZSTD_compressBound(strlen(js));
        z = malloc(bound);
        zn = ZSTD_compress(z, bound, js, strlen(js), 1);
        assert_int_equal(rp_ws_manifest_parse(z, zn, &m, es, sizeof(es)),
                         RP_ERR_TOO_LARGE);
        assert_non_null(strstr(es, "JSON values"));
        free(js);
        free(z);
    }

    /* A real manifest, cut short in the store. */
    sub(f, "w", w, sizeof(w));
    mkdir(w, 0755);
    make_tree(f, w, 0);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                NULL, es, sizeof(es)));
    snprintf(key, sizeof(key), "%s", rp_ws_manifest_key(m));
    rp_ws_manifest_destroy(m);
    m = NULL;
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    assert_int_equal(rp_state_get(f->inner, key, &b, NULL, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(rp_state_put(f->inner, key, b.data, b.len / 2,
                                  RP_STATE_ANY, NULL, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(rp_ws_manifest_load(&f->st, key, &m, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_null(m);
    assert_non_null(strstr(es, "truncated"));
    assert_int_equal(rp_ws_manifest_load(&f->st, "workspaces/s1/snapshots/"
                                                 "none.json.zst",
                                         &m, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_buf_free(&b);
}

typedef struct first_chunk {
    char key[RP_STATE_KEY_MAX + 1];
    int n;
} first_chunk_t;

static int grab_chunk(void *opaque, const char *key, uint64_t version)
{
    first_chunk_t *fc = opaque;
    (void)version;
    if (fc->n++ == 0)
        snprintf(fc->key, sizeof(fc->key), "%s", key);
    return 0;
}

static void test_corrupt_chunk(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], r2[512], es[512];
    rp_ws_manifest_t *m = NULL;
    first_chunk_t fc = {{0}, 0};
    uint8_t junk[100];
    void *z = malloc(ZSTD_compressBound(sizeof(junk)));
    size_t zn;
    rp_buf_t out;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    sub(f, "r2", r2, sizeof(r2));
    mkdir(w, 0755);
    mkdir(r, 0755);
    mkdir(r2, 0755);
    wfile(w, "f", "x", 1, 0644); /* one chunk */
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                NULL, es, sizeof(es)));
    assert_int_equal(rp_state_list(f->inner, "workspaces/s1/chunks/",
                                   grab_chunk, &fc, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(fc.n, 1);
    /* Valid zstd, other bytes: the hash does not match. */
    fill(junk, sizeof(junk), 5);
    zn = ZSTD_compress(z, ZSTD_compressBound(sizeof(junk)), junk,
                       sizeof(junk), 1);
    assert_int_equal(rp_state_put(f->inner, fc.key, z, zn, RP_STATE_ANY, NULL,
                                  es, sizeof(es)),
                     RP_OK);
    assert_int_equal(rp_ws_restore(&f->st, m, r, NULL, NULL, es, sizeof(es)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(es, "corrupt"));
    rp_buf_init(&out, 1024);
    assert_int_equal(rp_ws_read(&f->st, m, rp_ws_manifest_find(m, "f"), 0, 1,
                                &out, NULL, es, sizeof(es)),
                     RP_ERR_PROTOCOL);
    assert_int_equal(out.len, 0);
    /* Missing. */
    assert_int_equal(rp_state_delete(f->inner, fc.key, RP_STATE_ANY, es,
                                     sizeof(es)),
                     RP_OK);
    assert_int_equal(rp_ws_restore(&f->st, m, r2, NULL, NULL, es, sizeof(es)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(es, "missing"));
    rp_buf_free(&out);
    free(z);
    rp_ws_manifest_destroy(m);
}

/* Many chunks, fetched ahead by several threads: a bad one in the middle
 * still stops the restore with its name, and the others are not lost. */
static void test_corrupt_chunk_prefetched(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], r2[512], es[512], key[RP_STATE_KEY_MAX + 1], hex[65];
    rp_ws_manifest_t *m = NULL, *m2 = NULL;
    uint8_t junk[100];
    void *z = malloc(ZSTD_compressBound(sizeof(junk)));
    size_t zn;
    rp_buf_t b;
    int i;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    sub(f, "r2", r2, sizeof(r2));
    mkdir(w, 0755);
    mkdir(r, 0755);
    mkdir(r2, 0755);
    make_10mb(w);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m, NULL, es,
                   sizeof(es)));
    /* The 60th chunk's key, from the manifest as stored (its JSON). */
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    OKE(rp_state_get(f->inner, rp_ws_manifest_key(m), &b, NULL, es,
                     sizeof(es)));
    {
        size_t cap = ZSTD_getFrameContentSize(b.data, b.len);
        char *js = malloc(cap + 1), *p;
        assert_int_equal(ZSTD_decompress(js, cap, b.data, b.len), cap);
        js[cap] = '\0';
        p = js;
        for (i = 0; i < 60; i++)
            assert_non_null(p = strstr(p + 1, "{\"h\":\""));
        memcpy(hex, p + 6, 64);
        hex[64] = '\0';
        free(js);
    }
    rp_layout_ws_chunk_key("s1", hex, key, sizeof(key));
    fill(junk, sizeof(junk), 6);
    zn = ZSTD_compress(z, ZSTD_compressBound(sizeof(junk)), junk,
                       sizeof(junk), 1);
    OKE(rp_state_put(f->inner, key, z, zn, RP_STATE_ANY, NULL, es,
                     sizeof(es)));
    assert_int_equal(rp_ws_restore(&f->st, m, r, NULL, NULL, es, sizeof(es)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(es, "corrupt"));
    assert_non_null(strstr(es, hex));
    /* A save that finds the bad chunk "stored" would keep it: only a
     * restore notices. The manifest loads and a second restore fails the
     * same way (no state kept between restores). */
    OKE(rp_ws_manifest_load(&f->st, rp_ws_manifest_key(m), &m2, es,
                            sizeof(es)));
    assert_int_equal(rp_ws_restore(&f->st, m2, r2, NULL, NULL, es,
                                   sizeof(es)),
                     RP_ERR_PROTOCOL);
    rp_buf_free(&b);
    free(z);
    rp_ws_manifest_destroy(m);
    rp_ws_manifest_destroy(m2);
}

static void test_cache_dir(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], r2[512], cache[512], es[512];
    rp_ws_manifest_t *m = NULL;
    rp_ws_stats_t s;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    sub(f, "r2", r2, sizeof(r2));
    sub(f, "cache", cache, sizeof(cache));
    mkdir(w, 0755);
    mkdir(r, 0755);
    mkdir(r2, 0755);
    mkdir(cache, 0700);
    make_10mb(w);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                NULL, es, sizeof(es)));
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_restore(&f->st, m, r, cache, &s, es, sizeof(es)));
    assert_int_equal(g_n.chunk_gets, (int)rp_ws_manifest_chunks(m));
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_restore(&f->st, m, r2, cache, &s, es, sizeof(es)));
    assert_int_equal(g_n.chunk_gets, 0); /* all in the cache */
    assert_int_equal(s.chunks_downloaded, 0);
    rp_ws_manifest_destroy(m);
}

/* ------------------------------------------------------------- read */

static void test_read(void **state)
{
    fx_t *f = *state;
    char w[512], es[512];
    rp_ws_manifest_t *m = NULL;
    const rp_ws_entry_t *e;
    uint8_t *data = malloc(3 * 1024 * 1024);
    rp_buf_t out;
    rp_ws_stats_t s;

    sub(f, "w", w, sizeof(w));
    mkdir(w, 0755);
    make_10mb(w);
    fill(data, 3 * 1024 * 1024, 42);
    wfile(w, "lib/three.bin", data, 3 * 1024 * 1024, 0644);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m,
                                NULL, es, sizeof(es)));
    assert_non_null(e = rp_ws_manifest_find(m, "lib/three.bin"));
    rp_buf_init(&out, 4 * 1024 * 1024);

    /* 100 bytes in the middle: one chunk, two if they straddle a cut. */
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_read(&f->st, m, e, 1500000, 100, &out, &s, es,
                                sizeof(es)));
    assert_int_equal(out.len, 100);
    assert_memory_equal(out.data, data + 1500000, 100);
    assert_in_range(g_n.chunk_gets, 1, 2);
    assert_int_equal(g_n.gets, g_n.chunk_gets);
    assert_int_equal(s.chunks_downloaded, (uint64_t)g_n.chunk_gets);

    /* The whole file: only its chunks (3 of 13 MiB). */
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_read(&f->st, m, e, 0, UINT64_MAX, &out, &s, es,
                                sizeof(es)));
    assert_int_equal(out.len, 3 * 1024 * 1024);
    assert_memory_equal(out.data, data, 3 * 1024 * 1024);
    assert_true(g_n.chunk_gets <= 3 * 1024 * 1024 / RP_CDC_MIN + 2);
    assert_true((size_t)g_n.chunk_gets < rp_ws_manifest_chunks(m) / 3);

    /* Past the end: nothing, no fetch. A small file. Over the cap. */
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_read(&f->st, m, e, 3 * 1024 * 1024, 10, &out, NULL,
                                es, sizeof(es)));
    assert_int_equal(out.len, 0);
    assert_int_equal(g_n.gets, 0);
    OKE(rp_ws_read(&f->st, m, rp_ws_manifest_find(m, "notes/n07.txt"),
                                5, 100, &out, NULL, es, sizeof(es)));
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "text\n", 5);
    rp_buf_free(&out);
    rp_buf_init(&out, 1000);
    assert_int_equal(rp_ws_read(&f->st, m, e, 0, 2000, &out, NULL, es,
                                sizeof(es)),
                     RP_ERR_TOO_LARGE);
    assert_int_equal(rp_ws_read(&f->st, m, rp_ws_manifest_find(m, "lib"), 0,
                                10, &out, NULL, es, sizeof(es)),
                     RP_ERR_INVALID);
    rp_buf_free(&out);
    free(data);
    rp_ws_manifest_destroy(m);
}

/* ------------------------------------------------------------- edit */

static void cat(const char *base, const char *rel, char *out, size_t n)
{
    char p[4096];
    int fd;
    ssize_t r;

    snprintf(p, sizeof(p), "%s/%s", base, rel);
    fd = open(p, O_RDONLY | O_NOFOLLOW);
    assert_true(fd >= 0);
    r = read(fd, out, n - 1);
    assert_true(r >= 0);
    out[r] = '\0';
    close(fd);
}

static void test_edit(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], es[512], buf[256], p[1024];
    rp_ws_manifest_t *m1 = NULL, *m2 = NULL, *m3 = NULL;
    rp_ws_stats_t s;
    struct stat sb;
    rp_ws_edit_t ed[4];

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    mkdir(w, 0755);
    mkdir(r, 0755);
    make_10mb(w);
    mkd(w, "gone", 0755);
    mkd(w, "gone/sub", 0755);
    wfile(w, "gone/sub/x", "x", 1, 0644);
    wfile(w, "gone-not", "stays", 5, 0644);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m1,
                                NULL, es, sizeof(es)));

    memset(ed, 0, sizeof(ed));
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "x//y/./z.txt",
                           .data = "new file\n", .len = 9, .mode = 0600,
                           .parents = 1};
    ed[1] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "notes/n10.txt",
                           .data = "replaced", .len = 8};
    ed[2] = (rp_ws_edit_t){.kind = RP_WS_DELETE, .path = "gone"};
    ed[3] = (rp_ws_edit_t){.kind = RP_WS_MKDIR, .path = "m/n/o", .parents = 1};
    memset(&g_n, 0, sizeof(g_n));
    OKE(rp_ws_edit(&f->st, m1, ed, 4, "s1", "e2", NULL, &m2, &s,
                                es, sizeof(es)));
    assert_non_null(m2);
    /* A 10 MB workspace edited: a few new chunks, not the whole. */
    assert_in_range(g_n.chunk_puts, 1, 6);
    assert_true(s.bytes_uploaded < 1024 * 1024);
    assert_string_equal(rp_ws_manifest_key(m2),
                        "workspaces/s1/snapshots/e2.json.zst");
    assert_null(rp_ws_manifest_find(m2, "gone"));
    assert_null(rp_ws_manifest_find(m2, "gone/sub/x"));
    assert_non_null(rp_ws_manifest_find(m2, "gone-not"));
    assert_int_equal(rp_ws_manifest_find(m2, "x")->type, 'd');
    assert_int_equal(rp_ws_manifest_find(m2, "x/y/z.txt")->mode, 0600);
    assert_int_equal(rp_ws_manifest_find(m2, "m/n/o")->type, 'd');
    assert_int_equal(rp_ws_manifest_find(m2, "notes/n10.txt")->mode, 0644);

    OKE(rp_ws_restore(&f->st, m2, r, NULL, NULL, es, sizeof(es)));
    cat(r, "x/y/z.txt", buf, sizeof(buf));
    assert_string_equal(buf, "new file\n");
    cat(r, "notes/n10.txt", buf, sizeof(buf));
    assert_string_equal(buf, "replaced");
    cat(r, "notes/n11.txt", buf, sizeof(buf));
    assert_string_equal(buf, "some text\n");
    cat(r, "gone-not", buf, sizeof(buf));
    assert_string_equal(buf, "stays");
    snprintf(p, sizeof(p), "%s/gone", r);
    assert_int_equal(lstat(p, &sb), -1);
    snprintf(p, sizeof(p), "%s/m/n/o", r);
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    snprintf(p, sizeof(p), "%s/lib/part03.bin", r);
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_size, 1024 * 1024);

    /* Errors: nothing written. */
    memset(&g_n, 0, sizeof(g_n));
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_DELETE, .path = "no/such"};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "lib", .data = "x",
                           .len = 1};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "directory"));
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "gone-not/f",
                           .data = "x", .len = 1, .parents = 1};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "not a directory"));
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "new/f", .data = "x",
                           .len = 1};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_MKDIR, .path = "lib"};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_EXISTS);
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "../escape",
                           .data = "x", .len = 1};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_INVALID);
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_DELETE, .path = "."};
    assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", NULL, &m3,
                                NULL, es, sizeof(es)),
                     RP_ERR_INVALID);
    {
        rp_ws_limits_t lim = {.max_bytes = 1024};
        ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "tiny",
                               .data = "x", .len = 1};
        assert_int_equal(rp_ws_edit(&f->st, m2, ed, 1, "s1", "e3", &lim, &m3,
                                    &s, es, sizeof(es)),
                         RP_ERR_TOO_LARGE);
        assert_int_equal(s.limit, RP_WS_LIMIT_BYTES);
    }
    assert_null(m3);
    assert_int_equal(g_n.puts, 0);

    /* From nothing (an empty workspace). */
    ed[0] = (rp_ws_edit_t){.kind = RP_WS_PUT, .path = "only.txt",
                           .data = "one", .len = 3};
    OKE(rp_ws_edit(&f->st, NULL, ed, 1, "s1", "e4", NULL, &m3,
                                NULL, es, sizeof(es)));
    assert_int_equal(rp_ws_manifest_count(m3), 1);
    {
        rp_buf_t out;
        rp_buf_init(&out, 100);
        OKE(rp_ws_read(&f->st, m3, rp_ws_manifest_entry(m3, 0), 0,
                                    100, &out, NULL, es, sizeof(es)));
        assert_int_equal(out.len, 3);
        assert_memory_equal(out.data, "one", 3);
        rp_buf_free(&out);
    }
    rp_ws_manifest_destroy(m1);
    rp_ws_manifest_destroy(m2);
    rp_ws_manifest_destroy(m3);
}

/* --------------------------------------------------------------- gc */

static int count_cb(void *opaque, const char *key, uint64_t version)
{
    (void)key;
    (void)version;
    (*(int *)opaque)++;
    return 0;
}

static int count_keys(fx_t *f, const char *prefix)
{
    int n = 0;
    char es[256];
    assert_int_equal(rp_state_list(f->inner, prefix, count_cb, &n, es,
                                   sizeof(es)),
                     RP_OK);
    return n;
}

/* rp_ws_gc_until: a stop after n deletes leaves the rest and the
 * manifest; a later gc finishes the job. */
static bool stop_after(void *arg)
{
    int *left = arg;

    return (*left)-- <= 0;
}

static void test_gc_until_stop(void **state)
{
    fx_t *f = *state;
    char w[512], es[512];
    rp_ws_manifest_t *m1 = NULL, *m2 = NULL;
    rp_buf_t b;
    uint8_t *data = malloc(1024 * 1024);
    int before, left = 2;

    assert_non_null(data);
    sub(f, "w", w, sizeof(w));
    mkdir(w, 0755);
    make_10mb(w);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m1, NULL, es,
                   sizeof(es)));
    fill(data, 1024 * 1024, 778);
    wfile(w, "lib/part05.bin", data, 1024 * 1024, 0644);
    OKE(rp_ws_save(&f->st, "s1", "e2", w, m1, NULL, NULL, &m2, NULL, es,
                   sizeof(es)));
    before = count_keys(f, "workspaces/s1/chunks/");
    assert_int_equal(rp_ws_gc_until(&f->st, m1, m2, stop_after, &left, es,
                                    sizeof(es)),
                     RP_ERR_CANCELLED);
    /* Two chunks went, then it stopped: the rest and m1's manifest stay. */
    assert_int_equal(count_keys(f, "workspaces/s1/chunks/"), before - 2);
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    assert_int_equal(rp_state_get(f->inner, rp_ws_manifest_key(m1), &b, NULL,
                                  es, sizeof(es)),
                     RP_OK);
    rp_buf_free(&b);
    OKE(rp_ws_gc(&f->st, m1, m2, es, sizeof(es)));
    assert_int_equal(count_keys(f, "workspaces/s1/chunks/"),
                     (int)rp_ws_manifest_chunks(m2));
    rp_ws_manifest_destroy(m1);
    rp_ws_manifest_destroy(m2);
    free(data);
}

static void test_gc(void **state)
{
    fx_t *f = *state;
    char w[512], r[512], es[512];
    rp_ws_manifest_t *m1 = NULL, *m2 = NULL;
    rp_ws_stats_t s;
    rp_buf_t b;
    uint8_t *data = malloc(1024 * 1024);
    int before, after;

    sub(f, "w", w, sizeof(w));
    sub(f, "r", r, sizeof(r));
    mkdir(w, 0755);
    mkdir(r, 0755);
    make_10mb(w);
    OKE(rp_ws_save(&f->st, "s1", "e1", w, NULL, NULL, NULL, &m1,
                                NULL, es, sizeof(es)));
    /* Replace one 1 MiB file: its ~16 chunks are m1's only. */
    fill(data, 1024 * 1024, 777);
    wfile(w, "lib/part05.bin", data, 1024 * 1024, 0644);
    OKE(rp_ws_save(&f->st, "s1", "e2", w, m1, NULL, NULL, &m2, &s,
                                es, sizeof(es)));
    before = count_keys(f, "workspaces/s1/chunks/");
    assert_int_equal(before, (int)(rp_ws_manifest_chunks(m1) +
                                   s.chunks_uploaded));
    OKE(rp_ws_gc(&f->st, m1, m2, es, sizeof(es)));
    after = count_keys(f, "workspaces/s1/chunks/");
    assert_int_equal(after, (int)rp_ws_manifest_chunks(m2));
    assert_true(after < before);
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    assert_int_equal(rp_state_get(f->inner, rp_ws_manifest_key(m1), &b, NULL,
                                  es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    assert_int_equal(rp_state_get(f->inner, rp_ws_manifest_key(m2), &b, NULL,
                                  es, sizeof(es)),
                     RP_OK);
    rp_buf_free(&b);
    /* cur still restores whole; gc again is harmless; gc(cur, cur) no-op. */
    OKE(rp_ws_restore(&f->st, m2, r, NULL, NULL, es, sizeof(es)));
    OKE(rp_ws_gc(&f->st, m1, m2, es, sizeof(es)));
    OKE(rp_ws_gc(&f->st, m2, m2, es, sizeof(es)));
    assert_int_equal(count_keys(f, "workspaces/s1/"),
                     (int)rp_ws_manifest_chunks(m2) + 1);
    /* gc(cur, NULL): everything of the session goes. */
    OKE(rp_ws_gc(&f->st, m2, NULL, es, sizeof(es)));
    assert_int_equal(count_keys(f, "workspaces/s1/"), 0);
    free(data);
    rp_ws_manifest_destroy(m1);
    rp_ws_manifest_destroy(m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cdc),
        cmocka_unit_test(test_path_check),
        cmocka_unit_test(test_layout),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_workspace, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_restore_never_writes_through_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_change_uploads_few_chunks,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_chunk_prefetched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_until_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
