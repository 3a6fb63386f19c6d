/* rp_archive — libarchive loaded with dlopen on first use (see rp_archive.h
 * for why). Same scheme as rp_http's libcurl: one table, every function or
 * none, resolved once; the library is never dlclose'd. */
#define RP_ARCHIVE_NO_REDIRECT 1
#include "rp_archive.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

rp_archive_fns_t rp_archive_fn;

/* One table row: the symbol and its slot in t. The sizeof() assignment is
 * never evaluated (no reference to the real symbol reaches the linker) but
 * is type-checked: a slot whose type differs from archive.h's prototype
 * fails the build (-Werror=incompatible-pointer-types). */
#define RP_ARCHIVE_SYM(t, fn)                                                  \
    {"archive_" #fn, (void **)&(t)->fn, sizeof((t)->fn = archive_##fn)}

rp_err_t rp_archive_load_from(const char *soname, rp_archive_fns_t *out,
                              char *errstr, size_t errstr_size)
{
    rp_archive_fns_t t;
    const struct {
        const char *name;
        void **slot;
        size_t checked; /* unused: carries the type check above */
    } syms[] = {
        RP_ARCHIVE_SYM(&t, read_new),
        RP_ARCHIVE_SYM(&t, read_support_format_tar),
        RP_ARCHIVE_SYM(&t, read_open_memory),
        RP_ARCHIVE_SYM(&t, read_open2),
        RP_ARCHIVE_SYM(&t, read_next_header),
        RP_ARCHIVE_SYM(&t, read_data_block),
        RP_ARCHIVE_SYM(&t, read_free),
        RP_ARCHIVE_SYM(&t, write_new),
        RP_ARCHIVE_SYM(&t, write_set_format_pax),
        RP_ARCHIVE_SYM(&t, write_set_format_option),
        RP_ARCHIVE_SYM(&t, write_set_bytes_per_block),
        RP_ARCHIVE_SYM(&t, write_set_bytes_in_last_block),
        RP_ARCHIVE_SYM(&t, write_open2),
        RP_ARCHIVE_SYM(&t, write_open_memory),
        RP_ARCHIVE_SYM(&t, write_header),
        RP_ARCHIVE_SYM(&t, write_data),
        RP_ARCHIVE_SYM(&t, write_close),
        RP_ARCHIVE_SYM(&t, write_free),
        RP_ARCHIVE_SYM(&t, write_disk_new),
        RP_ARCHIVE_SYM(&t, write_disk_set_options),
        RP_ARCHIVE_SYM(&t, write_data_block),
        RP_ARCHIVE_SYM(&t, write_finish_entry),
        RP_ARCHIVE_SYM(&t, error_string),
        RP_ARCHIVE_SYM(&t, entry_new),
        RP_ARCHIVE_SYM(&t, entry_free),
        RP_ARCHIVE_SYM(&t, entry_clear),
        RP_ARCHIVE_SYM(&t, entry_pathname),
        RP_ARCHIVE_SYM(&t, entry_filetype),
        RP_ARCHIVE_SYM(&t, entry_hardlink),
        RP_ARCHIVE_SYM(&t, entry_size),
        RP_ARCHIVE_SYM(&t, entry_set_pathname),
        RP_ARCHIVE_SYM(&t, entry_set_symlink),
        RP_ARCHIVE_SYM(&t, entry_set_perm),
        RP_ARCHIVE_SYM(&t, entry_set_filetype),
        RP_ARCHIVE_SYM(&t, entry_set_size),
        RP_ARCHIVE_SYM(&t, entry_set_mtime),
        RP_ARCHIVE_SYM(&t, entry_set_uid),
        RP_ARCHIVE_SYM(&t, entry_set_gid),
    };
    void *lib;

    if (!soname || !out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    memset(&t, 0, sizeof(t));
    /* The library's own dependencies (libxml2, ICU ...) come with it. */
    if (!(lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL))) {
        const char *why = dlerror();

        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                       "%s not found: workspace snapshots need it (%s)",
                       soname, why ? why : "dlopen failed");
    }
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        if (!(*syms[i].slot = dlsym(lib, syms[i].name)))
            return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                           "%s has no %s: workspace snapshots need it",
                           soname, syms[i].name);
    }
    *out = t; /* all or nothing */
    return RP_OK;
}

static pthread_once_t rp_archive_once = PTHREAD_ONCE_INIT;
static rp_err_t rp_archive_load_err = RP_ERR_INTERNAL;
static char rp_archive_load_msg[512];

static void rp_archive_load_once(void)
{
    rp_archive_load_err =
        rp_archive_load_from(RP_ARCHIVE_LIB, &rp_archive_fn,
                             rp_archive_load_msg, sizeof(rp_archive_load_msg));
}

rp_err_t rp_archive_load(char *errstr, size_t errstr_size)
{
    pthread_once(&rp_archive_once, rp_archive_load_once);
    if (rp_archive_load_err != RP_OK)
        return rp_errf(errstr, errstr_size, rp_archive_load_err, "%s",
                       rp_archive_load_msg);
    return RP_OK;
}
