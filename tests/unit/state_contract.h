/* state_contract — the rp_state contract (store/rp_state.h) as cmocka
 * tests that every backend's test program runs against its own stores:
 * round trips, missing keys, create-only, compare-and-swap, delete,
 * listing, size limits and threads sharing one handle. What only one
 * backend can show stays in that backend's test file.
 *
 * A backend is an sc_backend_t: how to open a fresh store for one test
 * and what it guarantees beyond the contract. Its program puts
 * SC_CONTRACT_TESTS(&backend) into its cmocka test array; the sc_* helpers
 * below serve its own tests too.
 *
 * Thread-safety: cmocka runs these on the main thread; sc_* helpers
 * assert, so they are for the test's own thread only. */
#ifndef STATE_CONTRACT_H
#define STATE_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rp_state.h"

#define SC_ERR_MAX 1024
#define SC_URL_MAX 1024
#define SC_WHERE_MAX 512
#define SC_LIST_MAX 32 /* keys a listing remembers (it counts them all) */

typedef struct sc_store sc_store_t;

/* One backend under test. */
typedef struct sc_backend {
    /* Make a fresh, empty store: set s->st, s->url (which other handles
     * can open) and s->where. 0 on success, -1 on failure. */
    int (*open)(sc_store_t *s);
    /* Called after s->st is destroyed: free what open made; -1 when the
     * backend's own end-of-test check fails. May be NULL. */
    int (*close)(sc_store_t *s);
    /* The backend's own check that a test left nothing behind (file: no
     * temporary file); called after writes. May be NULL. */
    void (*check_clean)(sc_store_t *s);
    /* Put things next to the objects that are not objects and must never
     * be listed, and take away what check_clean would object to. Either
     * may be NULL. */
    void (*plant_non_objects)(sc_store_t *s);
    void (*remove_planted)(sc_store_t *s);
    bool versions_grow;        /* each write's version is larger, not only new */
    bool refuses_stale_delete; /* delete with an old if_version: CONFLICT */
    int thread_increments;     /* per thread in sc_test_threads_no_lost_update */
} sc_backend_t;

/* One test's store; owned by sc_setup/sc_teardown. */
struct sc_store {
    const sc_backend_t *b;
    rp_state_t *st;
    char url[SC_URL_MAX];
    char where[SC_WHERE_MAX]; /* the backend's name for it: directory, prefix */
};

/* cmocka fixtures: *state starts as the sc_backend_t (the test's
 * prestate) and holds the sc_store_t in between. */
int sc_setup(void **state);
int sc_teardown(void **state);

/* put text; asserts RP_OK and returns the new version. */
uint64_t sc_put(rp_state_t *st, const char *key, const char *text,
                uint64_t if_version);
/* Asserts key holds exactly text; returns its version. */
uint64_t sc_expect(rp_state_t *st, const char *key, const char *text);
/* rp_state_get's code for key; err (may be NULL) gets its message. */
rp_err_t sc_get_rc(rp_state_t *st, const char *key, char *err,
                   size_t err_size);

typedef struct sc_list {
    int n;
    int stop_after; /* 0 = never stop */
    char keys[SC_LIST_MAX][RP_STATE_KEY_MAX + 1];
    uint64_t versions[SC_LIST_MAX];
} sc_list_t;

/* rp_state_list_cb that records into opaque, an sc_list_t. */
int sc_list_cb(void *opaque, const char *key, uint64_t version);
/* Lists prefix into l (reset first); asserts RP_OK. */
void sc_list(rp_state_t *st, const char *prefix, sc_list_t *l);
/* Keys listed under prefix. */
int sc_list_count(rp_state_t *st, const char *prefix);
/* Version listed for key, 0 when it was not listed. */
uint64_t sc_listed(const sc_list_t *l, const char *key);

void sc_test_roundtrip(void **state);
void sc_test_get_missing(void **state);
void sc_test_create_only(void **state);
void sc_test_cas(void **state);
void sc_test_delete(void **state);
void sc_test_list(void **state);
void sc_test_too_large(void **state);
void sc_test_delete_prefix(void **state);
void sc_test_threads_no_lost_update(void **state);

#define SC_TEST(fn, backend)                                                 \
    cmocka_unit_test_prestate_setup_teardown(fn, sc_setup, sc_teardown,      \
                                             (void *)(backend))

/* The contract tests against backend (an sc_backend_t *), as entries of a
 * struct CMUnitTest array. */
#define SC_CONTRACT_TESTS(backend)                                           \
    SC_TEST(sc_test_roundtrip, backend),                                     \
        SC_TEST(sc_test_get_missing, backend),                               \
        SC_TEST(sc_test_create_only, backend),                               \
        SC_TEST(sc_test_cas, backend), SC_TEST(sc_test_delete, backend),     \
        SC_TEST(sc_test_list, backend),                                      \
        SC_TEST(sc_test_delete_prefix, backend),                             \
        SC_TEST(sc_test_too_large, backend),                                 \
        SC_TEST(sc_test_threads_no_lost_update, backend)

#endif
