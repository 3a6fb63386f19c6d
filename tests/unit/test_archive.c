/* rp_archive: libarchive is not linked (the test program, like the
 * executor, links runpool_workspace) and loads on first use; a missing
 * library or function is a non-retriable error that names it, and leaves
 * the table untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <string.h>

#include "rp_archive.h"

static int test_table_is_empty(const rp_archive_fns_t *t)
{
    static const rp_archive_fns_t zero;

    return memcmp(t, &zero, sizeof(zero)) == 0;
}

/* Runs first: nothing has loaded libarchive yet. */
static void test_not_loaded_until_asked(void **state)
{
    char es[256] = "";

    (void)state;
    assert_null(dlopen(RP_ARCHIVE_LIB, RTLD_NOW | RTLD_NOLOAD));
    assert_true(test_table_is_empty(&rp_archive_fn));
    assert_int_equal(rp_archive_load(es, sizeof(es)), RP_OK);
    assert_non_null(dlopen(RP_ARCHIVE_LIB, RTLD_NOW | RTLD_NOLOAD));
    assert_non_null(rp_archive_fn.read_new);
    assert_non_null(rp_archive_fn.entry_set_gid);
    /* Once: a second call reports the same. */
    assert_int_equal(rp_archive_load(es, sizeof(es)), RP_OK);
}

/* The table works: a pax entry written through it reads back. */
static void test_calls_through_table(void **state)
{
    char es[256] = "", buf[4096];
    struct archive *w, *r;
    struct archive_entry *e;
    size_t used = 0;

    (void)state;
    assert_int_equal(rp_archive_load(es, sizeof(es)), RP_OK);
    assert_non_null(w = archive_write_new());
    assert_int_equal(archive_write_set_format_pax(w), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(w, buf, sizeof(buf), &used),
                     ARCHIVE_OK);
    assert_non_null(e = archive_entry_new());
    archive_entry_set_pathname(e, "a.txt");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 2);
    assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(w, "hi", 2), 2);
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
    archive_entry_free(e);
    assert_true(used > 0);

    assert_non_null(r = archive_read_new());
    assert_int_equal(archive_read_support_format_tar(r), ARCHIVE_OK);
    assert_int_equal(archive_read_open_memory(r, buf, used), ARCHIVE_OK);
    assert_int_equal(archive_read_next_header(r, &e), ARCHIVE_OK);
    assert_string_equal(archive_entry_pathname(e), "a.txt");
    assert_int_equal(archive_entry_size(e), 2);
    assert_int_equal(archive_read_next_header(r, &e), ARCHIVE_EOF);
    archive_read_free(r);
}

static void test_missing_library(void **state)
{
    rp_archive_fns_t t;
    char es[256] = "";
    rp_err_t err;

    (void)state;
    memset(&t, 0, sizeof(t));
    err = rp_archive_load_from("libarchive-rp-absent.so.13", &t, es,
                               sizeof(es));
    assert_int_equal(err, RP_ERR_INTERNAL);
    assert_false(rp_err_retriable(err));
    assert_non_null(strstr(es, "libarchive-rp-absent.so.13 not found: "
                               "workspace snapshots need it"));
    assert_true(test_table_is_empty(&t));
}

/* A library that loads but is not libarchive: named, nothing half-set. */
static void test_missing_function(void **state)
{
    rp_archive_fns_t t;
    char es[256] = "";
    rp_err_t err;

    (void)state;
    memset(&t, 0, sizeof(t));
    err = rp_archive_load_from("libzstd.so.1", &t, es, sizeof(es));
    assert_int_equal(err, RP_ERR_INTERNAL);
    assert_false(rp_err_retriable(err));
    assert_non_null(strstr(es, "libzstd.so.1 has no archive_read_new"));
    assert_true(test_table_is_empty(&t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_loaded_until_asked),
        cmocka_unit_test(test_calls_through_table),
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_missing_function),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
