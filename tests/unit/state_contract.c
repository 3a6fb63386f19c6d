/* state_contract — see state_contract.h. */
#include "state_contract.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_THREADS 4
#define SC_COUNTER_KEY "sessions/race/state.json"

/* ---- fixtures and helpers ---- */

int sc_setup(void **state)
{
    const sc_backend_t *b = *state;
    sc_store_t *s = calloc(1, sizeof(*s));

    if (!s)
        return -1;
    s->b = b;
    if (b->open(s) != 0) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

int sc_teardown(void **state)
{
    sc_store_t *s = *state;
    int rc = 0;

    rp_state_destroy(s->st);
    if (s->b->close)
        rc = s->b->close(s);
    free(s);
    return rc;
}

static void sc_check_clean(sc_store_t *s)
{
    if (s->b->check_clean)
        s->b->check_clean(s);
}

/* now is a version written after was: new, and larger where the backend
 * says versions grow. */
static void sc_newer(const sc_store_t *s, uint64_t now, uint64_t was)
{
    assert_true(now != was);
    if (s->b->versions_grow)
        assert_true(now > was);
}

uint64_t sc_put(rp_state_t *st, const char *key, const char *text,
                uint64_t if_version)
{
    char err[SC_ERR_MAX] = "";
    uint64_t v = 0;
    rp_err_t rc = rp_state_put(st, key, text, strlen(text), if_version, &v,
                               err, sizeof(err));

    if (rc != RP_OK)
        fail_msg("put %s: %s", key, err);
    assert_true(v != 0 && v != RP_STATE_ANY);
    return v;
}

uint64_t sc_expect(rp_state_t *st, const char *key, const char *text)
{
    char err[SC_ERR_MAX] = "";
    rp_buf_t b;
    uint64_t v = 0;

    rp_buf_init(&b, 1 << 20);
    if (rp_state_get(st, key, &b, &v, err, sizeof(err)) != RP_OK)
        fail_msg("get %s: %s", key, err);
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.data, text, b.len);
    rp_buf_free(&b);
    assert_true(v != 0);
    return v;
}

rp_err_t sc_get_rc(rp_state_t *st, const char *key, char *err,
                   size_t err_size)
{
    char own[SC_ERR_MAX];
    rp_buf_t b;
    rp_err_t rc;

    if (!err) {
        err = own;
        err_size = sizeof(own);
    }
    rp_buf_init(&b, 1 << 20);
    rc = rp_state_get(st, key, &b, NULL, err, err_size);
    rp_buf_free(&b);
    return rc;
}

int sc_list_cb(void *opaque, const char *key, uint64_t version)
{
    sc_list_t *l = opaque;

    if (l->n < SC_LIST_MAX) {
        snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
        l->versions[l->n] = version;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

void sc_list(rp_state_t *st, const char *prefix, sc_list_t *l)
{
    char err[SC_ERR_MAX] = "";

    memset(l, 0, sizeof(*l));
    if (rp_state_list(st, prefix, sc_list_cb, l, err, sizeof(err)) != RP_OK)
        fail_msg("list '%s': %s", prefix, err);
}

int sc_list_count(rp_state_t *st, const char *prefix)
{
    sc_list_t l;

    sc_list(st, prefix, &l);
    return l.n;
}

uint64_t sc_listed(const sc_list_t *l, const char *key)
{
    int i;

    for (i = 0; i < l->n && i < SC_LIST_MAX; i++) {
        if (strcmp(l->keys[i], key) == 0)
            return l->versions[i];
    }
    return 0;
}

/* ---- the contract ---- */

void sc_test_roundtrip(void **state)
{
    /* Binary values: NULs inside and at the end, a byte over 0x7f. */
    static const struct {
        const char *data;
        size_t len;
    } bins[] = {{"a\0b\0", 4}, {"a\0b\0\xff", 5}};
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    uint64_t v, v2, got = 0;
    rp_buf_t b;
    size_t i;

    v = sc_put(s->st, "sessions/s1/state.json", "{\"cwd\":\"/\"}",
               RP_STATE_ANY);
    /* The version put returns is the one get reports. */
    assert_int_equal(sc_expect(s->st, "sessions/s1/state.json",
                               "{\"cwd\":\"/\"}"),
                     v);
    v2 = sc_put(s->st, "sessions/s1/state.json", "{\"cwd\":\"/tmp\"}",
                RP_STATE_ANY);
    sc_newer(s, v2, v);
    assert_int_equal(
        sc_expect(s->st, "sessions/s1/state.json", "{\"cwd\":\"/tmp\"}"), v2);

    /* Binary data survives; the caller's buffer is reset, not appended. */
    for (i = 0; i < sizeof(bins) / sizeof(bins[0]); i++) {
        rp_buf_init(&b, 64);
        assert_int_equal(rp_buf_append_str(&b, "old junk"), RP_OK);
        assert_int_equal(rp_state_put(s->st, "bin", bins[i].data, bins[i].len,
                                      RP_STATE_ANY, &v, err, sizeof(err)),
                         RP_OK);
        assert_int_equal(rp_state_get(s->st, "bin", &b, &got, err,
                                      sizeof(err)),
                         RP_OK);
        assert_int_equal(b.len, bins[i].len);
        assert_memory_equal(b.data, bins[i].data, bins[i].len);
        assert_int_equal(b.max, 64); /* the caller's limit is kept */
        assert_int_equal(got, v);
        rp_buf_free(&b);
    }

    /* An empty value is an object too, with a non-NULL "" data. */
    assert_int_equal(rp_state_put(s->st, "empty", NULL, 0, 0, &v, err,
                                  sizeof(err)),
                     RP_OK);
    rp_buf_init(&b, 64);
    assert_int_equal(rp_state_get(s->st, "empty", &b, &got, err,
                                  sizeof(err)),
                     RP_OK);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(got, v);
    rp_buf_free(&b);
}

void sc_test_get_missing(void **state)
{
    static const char *const missing[] = {"nope", "nope/x"};
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    rp_buf_t b;
    uint64_t v = 77;
    size_t i;

    for (i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        rp_buf_init(&b, 64);
        err[0] = '\0';
        assert_int_equal(rp_state_get(s->st, missing[i], &b, &v, err,
                                      sizeof(err)),
                         RP_ERR_NOT_FOUND);
        assert_non_null(strstr(err, missing[i]));
        assert_int_equal(v, 77); /* untouched on failure */
        rp_buf_free(&b);
    }
    assert_int_equal(sc_get_rc(s->st, "no/such/dir/key", NULL, 0),
                     RP_ERR_NOT_FOUND);
    /* Below an object: "file/x" cannot exist while "file" is an object. */
    sc_put(s->st, "file", "x", RP_STATE_ANY);
    assert_int_equal(sc_get_rc(s->st, "file/x", NULL, 0), RP_ERR_NOT_FOUND);
    /* A "directory" of deeper keys is not itself an object. */
    sc_put(s->st, "d/inner", "x", RP_STATE_ANY);
    assert_int_equal(sc_get_rc(s->st, "d", NULL, 0), RP_ERR_NOT_FOUND);
}

void sc_test_create_only(void **state)
{
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    uint64_t v1, v2 = 0;

    v1 = sc_put(s->st, "executions/e1/result.json", "first", 0);
    assert_int_equal(rp_state_put(s->st, "executions/e1/result.json",
                                  "second", 6, 0, &v2, err, sizeof(err)),
                     RP_ERR_EXISTS);
    assert_int_equal(v2, 0); /* not set on failure */
    assert_non_null(strstr(err, "executions/e1/result.json"));
    assert_int_equal(sc_expect(s->st, "executions/e1/result.json", "first"),
                     v1);
    sc_check_clean(s);
}

void sc_test_cas(void **state)
{
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    uint64_t v1, v2, v3 = 0;

    v1 = sc_put(s->st, "k", "one", 0);
    v2 = sc_put(s->st, "k", "two", v1);
    sc_newer(s, v2, v1);
    assert_int_equal(sc_expect(s->st, "k", "two"), v2);

    /* Stale version: refused, content and version unchanged. */
    assert_int_equal(rp_state_put(s->st, "k", "three", 5, v1, &v3, err,
                                  sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_int_equal(v3, 0);
    assert_true(strlen(err) > 0);
    assert_non_null(strstr(err, "'k'"));
    assert_int_equal(sc_expect(s->st, "k", "two"), v2);

    /* Create-only on a live key is EXISTS, not CONFLICT. */
    assert_int_equal(rp_state_put(s->st, "k", "x", 1, 0, NULL, err,
                                  sizeof(err)),
                     RP_ERR_EXISTS);

    /* CAS on an absent key is CONFLICT, and creates nothing. */
    assert_int_equal(rp_state_put(s->st, "gone/k", "x", 1, 12345, NULL, err,
                                  sizeof(err)),
                     RP_ERR_CONFLICT);
    assert_non_null(strstr(err, "absent"));
    assert_int_equal(sc_get_rc(s->st, "gone/k", err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    sc_check_clean(s);

    /* Unconditional always wins and still moves the version on. */
    v3 = sc_put(s->st, "k", "four", RP_STATE_ANY);
    sc_newer(s, v3, v2);
    assert_int_equal(sc_expect(s->st, "k", "four"), v3);
    sc_check_clean(s);
}

void sc_test_delete(void **state)
{
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    uint64_t v1, v2, v3;

    v1 = sc_put(s->st, "a/b", "x", 0);
    v2 = sc_put(s->st, "a/b", "y", v1);
    if (s->b->refuses_stale_delete) {
        assert_int_equal(rp_state_delete(s->st, "a/b", v1, err, sizeof(err)),
                         RP_ERR_CONFLICT);
        assert_int_equal(sc_expect(s->st, "a/b", "y"), v2);
    }
    /* Conditional delete with the live version. */
    assert_int_equal(rp_state_delete(s->st, "a/b", v2, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(sc_get_rc(s->st, "a/b", err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    /* Absent is NOT_FOUND whatever if_version. */
    assert_int_equal(rp_state_delete(s->st, "a/b", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "a/b"));
    assert_int_equal(rp_state_delete(s->st, "a/b", v2, err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    assert_int_equal(rp_state_delete(s->st, "never/there", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_ERR_NOT_FOUND);

    /* Recreated after delete: create-only works again, new version. */
    v3 = sc_put(s->st, "a/b", "z", 0);
    assert_true(v3 != v1);
    sc_newer(s, v3, v2);
    assert_int_equal(sc_expect(s->st, "a/b", "z"), v3);

    /* Unconditional delete. */
    assert_int_equal(rp_state_delete(s->st, "a/b", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(sc_get_rc(s->st, "a/b", err, sizeof(err)),
                     RP_ERR_NOT_FOUND);
    sc_put(s->st, "c", "z", RP_STATE_ANY);
    assert_int_equal(rp_state_delete(s->st, "c", RP_STATE_ANY, err,
                                     sizeof(err)),
                     RP_OK);
    assert_int_equal(sc_get_rc(s->st, "c", NULL, 0), RP_ERR_NOT_FOUND);
}

void sc_test_list(void **state)
{
    /* Keys listed under each prefix once the four objects are there. */
    static const struct {
        const char *prefix;
        int n;
    } counts[] = {
        {"sess", 2}, {"sessions", 2}, {"sessions/s1", 1}, {"sessions/s1/", 1},
        {"sessions/s1/state.json", 1}, {"sessions/s1/state.jsonx", 0},
        {"t", 1},
        /* Whatever plant_non_objects put there under "e" holds no objects. */
        {"e", 1}, {"nomatch", 0}, {"nope/", 0}, {"top/", 0}, {"../", 0},
        {"a//", 0},
    };
    sc_store_t *s = *state;
    size_t i;
    char err[SC_ERR_MAX] = "";
    uint64_t v1, v2, v3, v4;
    sc_list_t l;

    v1 = sc_put(s->st, "sessions/s1/state.json", "1", 0);
    v2 = sc_put(s->st, "sessions/s2/state.json", "2", 0);
    v3 = sc_put(s->st, "executions/e1/result.json", "3", 0);
    v4 = sc_put(s->st, "top", "4", 0);
    /* Things in the store that are not objects are never reported. */
    if (s->b->plant_non_objects)
        s->b->plant_non_objects(s);

    sc_list(s->st, "", &l);
    assert_int_equal(l.n, 4);
    assert_int_equal(sc_listed(&l, "sessions/s1/state.json"), v1);
    assert_int_equal(sc_listed(&l, "sessions/s2/state.json"), v2);
    assert_int_equal(sc_listed(&l, "executions/e1/result.json"), v3);
    assert_int_equal(sc_listed(&l, "top"), v4);

    sc_list(s->st, "sessions/", &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(sc_listed(&l, "sessions/s1/state.json"), v1);
    assert_int_equal(sc_listed(&l, "sessions/s2/state.json"), v2);

    for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        int n = sc_list_count(s->st, counts[i].prefix);

        if (n != counts[i].n)
            fail_msg("list '%s': %d keys, want %d", counts[i].prefix, n,
                     counts[i].n);
    }

    /* The callback can stop the walk. */
    memset(&l, 0, sizeof(l));
    l.stop_after = 1;
    assert_int_equal(rp_state_list(s->st, "", sc_list_cb, &l, NULL, 0),
                     RP_OK);
    assert_int_equal(l.n, 1);

    /* Deleted keys disappear from listings. */
    assert_int_equal(rp_state_delete(s->st, "sessions/s1/state.json",
                                     RP_STATE_ANY, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(sc_list_count(s->st, "sessions/"), 1);
    assert_int_equal(rp_state_list(s->st, NULL, sc_list_cb, &l, err,
                                   sizeof(err)),
                     RP_ERR_INVALID);
    if (s->b->remove_planted)
        s->b->remove_planted(s);
}

void sc_test_too_large(void **state)
{
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "", value[1000];
    rp_buf_t b;
    uint64_t v = 0;
    char *huge;

    memset(value, 'v', sizeof(value));
    assert_int_equal(rp_state_put(s->st, "big", value, sizeof(value),
                                  RP_STATE_ANY, NULL, err, sizeof(err)),
                     RP_OK);
    rp_buf_init(&b, sizeof(value) - 1);
    assert_int_equal(rp_state_get(s->st, "big", &b, &v, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    assert_int_equal(v, 0);
    rp_buf_free(&b);
    rp_buf_init(&b, sizeof(value)); /* exactly the size: fine */
    assert_int_equal(rp_state_get(s->st, "big", &b, &v, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(b.len, sizeof(value));
    rp_buf_free(&b);

    /* Over RP_STATE_VALUE_MAX is refused before anything is written. */
    huge = calloc(1, (size_t)RP_STATE_VALUE_MAX + 1);
    assert_non_null(huge);
    assert_int_equal(rp_state_put(s->st, "huge", huge,
                                  (size_t)RP_STATE_VALUE_MAX + 1,
                                  RP_STATE_ANY, NULL, err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(huge);
    assert_int_equal(sc_get_rc(s->st, "huge", NULL, 0), RP_ERR_NOT_FOUND);
    /* NULL data with a length is a caller bug. */
    assert_int_equal(rp_state_put(s->st, "n", NULL, 3, RP_STATE_ANY, NULL,
                                  err, sizeof(err)),
                     RP_ERR_INVALID);
}

typedef struct sc_counter_arg {
    rp_state_t *st;
    int want;
    int done;
    long conflicts;
    int failed;
} sc_counter_arg_t;

/* get + compare-and-swap a counter a->want times, retrying conflicts. */
static void *sc_counter_thread(void *p)
{
    sc_counter_arg_t *a = p;
    char err[SC_ERR_MAX];
    rp_buf_t b;

    rp_buf_init(&b, 64);
    while (a->done < a->want && !a->failed) {
        uint64_t v = 0;
        char next[32];
        rp_err_t rc;

        if (rp_state_get(a->st, SC_COUNTER_KEY, &b, &v, err, sizeof(err)) !=
            RP_OK) {
            a->failed = 1;
            break;
        }
        snprintf(next, sizeof(next), "%ld", strtol(b.data, NULL, 10) + 1);
        rc = rp_state_put(a->st, SC_COUNTER_KEY, next, strlen(next), v, NULL,
                          err, sizeof(err));
        if (rc == RP_OK)
            a->done++;
        else if (rc == RP_ERR_CONFLICT)
            a->conflicts++;
        else
            a->failed = 1;
    }
    if (a->failed)
        fprintf(stderr, "increment: %s\n", err);
    rp_buf_free(&b);
    return NULL;
}

/* One rp_state_t shared by threads: compare-and-swap loses no update. */
void sc_test_threads_no_lost_update(void **state)
{
    sc_store_t *s = *state;
    sc_counter_arg_t a[SC_THREADS];
    pthread_t t[SC_THREADS];
    int i, n = s->b->thread_increments;
    long conflicts = 0;
    char want[32];

    sc_put(s->st, SC_COUNTER_KEY, "0", 0);
    for (i = 0; i < SC_THREADS; i++) {
        a[i] = (sc_counter_arg_t){.st = s->st, .want = n};
        assert_int_equal(pthread_create(&t[i], NULL, sc_counter_thread, &a[i]),
                         0);
    }
    for (i = 0; i < SC_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(a[i].failed, 0);
        assert_int_equal(a[i].done, n);
        conflicts += a[i].conflicts;
    }
    snprintf(want, sizeof(want), "%d", SC_THREADS * n);
    sc_expect(s->st, SC_COUNTER_KEY, want);
    print_message("CAS counter: %d increments, %ld conflicts retried\n",
                  SC_THREADS * n, conflicts);
}

void sc_test_delete_prefix(void **state)
{
    sc_store_t *s = *state;
    char err[SC_ERR_MAX] = "";
    size_t n = 99;

    sc_put(s->st, "workspaces/s1/chunks/aa", "1", 0);
    sc_put(s->st, "workspaces/s1/chunks/bb", "2", 0);
    sc_put(s->st, "workspaces/s1/snapshots/e1.json.zst", "3", 0);
    sc_put(s->st, "workspaces/s10/chunks/aa", "4", 0); /* shares "s1" */
    sc_put(s->st, "sessions/s1/state.json", "5", 0);
    /* Not a folder: refused, nothing deleted. */
    assert_int_equal(rp_state_delete_prefix(s->st, "workspaces/s1", &n, err,
                                            sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(n, 0);
    assert_int_equal(rp_state_delete_prefix(s->st, "/", NULL, err,
                                            sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_state_delete_prefix(s->st, "", NULL, err,
                                            sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(sc_list_count(s->st, ""), 5);

    assert_int_equal(rp_state_delete_prefix(s->st, "workspaces/s1/", &n, err,
                                            sizeof(err)),
                     RP_OK);
    assert_int_equal(n, 3);
    assert_int_equal(sc_list_count(s->st, "workspaces/s1/"), 0);
    sc_expect(s->st, "workspaces/s10/chunks/aa", "4");
    sc_expect(s->st, "sessions/s1/state.json", "5");
    /* Again: nothing left, not an error. */
    assert_int_equal(rp_state_delete_prefix(s->st, "workspaces/s1/", &n, err,
                                            sizeof(err)),
                     RP_OK);
    assert_int_equal(n, 0);
    if (s->b->check_clean)
        s->b->check_clean(s);
}
