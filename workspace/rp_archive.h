/* rp_archive — libarchive, loaded with dlopen on first use.
 *
 * Debian's libarchive13 pulls in libxml2 (and with it ICU, 30+ MB of data)
 * and libstdc++; linked, every executor start would map them, also for
 * the `true` with an empty or no workspace that issue 9's ≤ 5 ms start
 * is about, and the executor image would have to carry them. So rp_ws
 * calls libarchive through a table resolved once from libarchive.so.13
 * (as rp_http loads libcurl), and only when it reads or writes a tar
 * stream: restoring a non-empty snapshot, a save that is not the
 * unchanged fast path, an edit.
 *
 * Use: call rp_archive_load() before the first archive_* call (any thread;
 * it resolves once under pthread_once and then only reports). Including
 * this header redirects the archive_* names below to the table, so the
 * calling code reads as plain libarchive; a function that is not in the
 * table is a link error, never a silent static dependency.
 */
#ifndef RP_ARCHIVE_H
#define RP_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>

#include "rp_err.h"

#define RP_ARCHIVE_LIB "libarchive.so.13"

/* The libarchive functions rp_ws uses (and the two *_open_memory its
 * tests use). Written once by rp_archive_load
 * (under pthread_once), read-only after: any thread may read it once
 * rp_archive_load has returned RP_OK. */
typedef struct rp_archive_fns {
    /* reading a tar stream */
    struct archive *(*read_new)(void);
    int (*read_support_format_tar)(struct archive *a);
    int (*read_open_memory)(struct archive *a, const void *buf, size_t n);
    int (*read_open2)(struct archive *a, void *client_data,
                      archive_open_callback *open, archive_read_callback *read,
                      archive_skip_callback *skip,
                      archive_close_callback *close);
    int (*read_next_header)(struct archive *a, struct archive_entry **e);
    int (*read_data_block)(struct archive *a, const void **buf, size_t *len,
                           la_int64_t *offset);
    int (*read_free)(struct archive *a);
    /* writing a pax stream */
    struct archive *(*write_new)(void);
    int (*write_set_format_pax)(struct archive *a);
    int (*write_set_format_option)(struct archive *a, const char *m,
                                   const char *o, const char *v);
    int (*write_set_bytes_per_block)(struct archive *a, int n);
    int (*write_set_bytes_in_last_block)(struct archive *a, int n);
    int (*write_open2)(struct archive *a, void *client_data,
                       archive_open_callback *open,
                       archive_write_callback *write,
                       archive_close_callback *close,
                       archive_free_callback *free);
    int (*write_open_memory)(struct archive *a, void *buf, size_t n,
                             size_t *used);
    int (*write_header)(struct archive *a, struct archive_entry *e);
    la_ssize_t (*write_data)(struct archive *a, const void *buf, size_t n);
    int (*write_close)(struct archive *a);
    int (*write_free)(struct archive *a);
    /* writing to disk (restore) */
    struct archive *(*write_disk_new)(void);
    int (*write_disk_set_options)(struct archive *a, int flags);
    la_ssize_t (*write_data_block)(struct archive *a, const void *buf,
                                   size_t n, la_int64_t offset);
    int (*write_finish_entry)(struct archive *a);
    const char *(*error_string)(struct archive *a);
    /* entries */
    struct archive_entry *(*entry_new)(void);
    void (*entry_free)(struct archive_entry *e);
    struct archive_entry *(*entry_clear)(struct archive_entry *e);
    const char *(*entry_pathname)(struct archive_entry *e);
    __LA_MODE_T (*entry_filetype)(struct archive_entry *e);
    const char *(*entry_hardlink)(struct archive_entry *e);
    la_int64_t (*entry_size)(struct archive_entry *e);
    void (*entry_set_pathname)(struct archive_entry *e, const char *p);
    void (*entry_set_symlink)(struct archive_entry *e, const char *p);
    void (*entry_set_perm)(struct archive_entry *e, __LA_MODE_T m);
    void (*entry_set_filetype)(struct archive_entry *e, unsigned int t);
    void (*entry_set_size)(struct archive_entry *e, la_int64_t n);
    void (*entry_set_mtime)(struct archive_entry *e, time_t s, long ns);
    void (*entry_set_uid)(struct archive_entry *e, la_int64_t u);
    void (*entry_set_gid)(struct archive_entry *e, la_int64_t g);
} rp_archive_fns_t;

extern rp_archive_fns_t rp_archive_fn;

/* Load libarchive.so.13 and resolve the whole table, once per process
 * (later calls return the first call's outcome). RP_ERR_INTERNAL (not
 * retriable: the installation lacks it, a retry cannot help) naming the
 * library when it or one of its functions is missing. Any thread. */
rp_err_t rp_archive_load(char *errstr, size_t errstr_size);

/* For tests: the same, from library `soname`, into a table of the
 * caller's (so the process's own table is untouched); not once-guarded.
 * The library stays loaded. */
rp_err_t rp_archive_load_from(const char *soname, rp_archive_fns_t *out,
                              char *errstr, size_t errstr_size);

#ifndef RP_ARCHIVE_NO_REDIRECT
#define archive_read_new (*rp_archive_fn.read_new)
#define archive_read_support_format_tar (*rp_archive_fn.read_support_format_tar)
#define archive_read_open2 (*rp_archive_fn.read_open2)
#define archive_read_open_memory (*rp_archive_fn.read_open_memory)
#define archive_read_next_header (*rp_archive_fn.read_next_header)
#define archive_read_data_block (*rp_archive_fn.read_data_block)
#define archive_read_free (*rp_archive_fn.read_free)
#define archive_write_new (*rp_archive_fn.write_new)
#define archive_write_set_format_pax (*rp_archive_fn.write_set_format_pax)
#define archive_write_set_format_option \
    (*rp_archive_fn.write_set_format_option)
#define archive_write_set_bytes_per_block \
    (*rp_archive_fn.write_set_bytes_per_block)
#define archive_write_set_bytes_in_last_block \
    (*rp_archive_fn.write_set_bytes_in_last_block)
#define archive_write_open2 (*rp_archive_fn.write_open2)
#define archive_write_open_memory (*rp_archive_fn.write_open_memory)
#define archive_write_header (*rp_archive_fn.write_header)
#define archive_write_data (*rp_archive_fn.write_data)
#define archive_write_close (*rp_archive_fn.write_close)
#define archive_write_free (*rp_archive_fn.write_free)
#define archive_write_disk_new (*rp_archive_fn.write_disk_new)
#define archive_write_disk_set_options (*rp_archive_fn.write_disk_set_options)
#define archive_write_data_block (*rp_archive_fn.write_data_block)
#define archive_write_finish_entry (*rp_archive_fn.write_finish_entry)
#define archive_error_string (*rp_archive_fn.error_string)
#define archive_entry_new (*rp_archive_fn.entry_new)
#define archive_entry_free (*rp_archive_fn.entry_free)
#define archive_entry_clear (*rp_archive_fn.entry_clear)
#define archive_entry_pathname (*rp_archive_fn.entry_pathname)
#define archive_entry_filetype (*rp_archive_fn.entry_filetype)
#define archive_entry_hardlink (*rp_archive_fn.entry_hardlink)
#define archive_entry_size (*rp_archive_fn.entry_size)
#define archive_entry_set_pathname (*rp_archive_fn.entry_set_pathname)
#define archive_entry_set_symlink (*rp_archive_fn.entry_set_symlink)
#define archive_entry_set_perm (*rp_archive_fn.entry_set_perm)
#define archive_entry_set_filetype (*rp_archive_fn.entry_set_filetype)
#define archive_entry_set_size (*rp_archive_fn.entry_set_size)
#define archive_entry_set_mtime (*rp_archive_fn.entry_set_mtime)
#define archive_entry_set_uid (*rp_archive_fn.entry_set_uid)
#define archive_entry_set_gid (*rp_archive_fn.entry_set_gid)
#endif

#endif
