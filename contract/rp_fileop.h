/* rp_fileop — the file operations of a request (op write_file, read_file,
 * list_files, find, search, replace_in_file, delete, upload, download):
 * their names, their members in the request document
 * (schemas/request.schema.json) and their limits. The worker does them on
 * the session's workspace snapshot without a container (worker/
 * rp_fileops.c); schemas/README.md ("File operations") says what each
 * takes and returns.
 *
 * Paths are kept as sent: the worker checks them against the workspace
 * (rp_ws_path_check), so that a path that leaves the workspace is answered
 * as a failed op with a clear error, not a rejected message.
 *
 * Memory: rp_fileop_parse fills a caller-provided struct whose pointers it
 * owns; rp_fileop_clear frees them and accepts a zeroed struct.
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_FILEOP_H
#define RP_FILEOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

typedef struct cJSON cJSON;

/* The ops, in rp_op_t's order after exec and close_session (rp_request.h
 * numbers them RP_OP_WRITE_FILE ... = RP_FILEOP_FIRST + kind). */
typedef enum rp_fileop_kind {
    RP_FILEOP_WRITE_FILE = 0,
    RP_FILEOP_READ_FILE,
    RP_FILEOP_LIST_FILES,
    RP_FILEOP_FIND,
    RP_FILEOP_SEARCH,
    RP_FILEOP_REPLACE_IN_FILE,
    RP_FILEOP_DELETE,
    RP_FILEOP_UPLOAD,
    RP_FILEOP_DOWNLOAD,
    RP_FILEOP__COUNT
} rp_fileop_kind_t;

/* Limits (named maxima; schemas/README.md quotes them). */
#define RP_FILEOP_PATH_MAX 4096          /* a path as sent (= RP_WS_PATH_MAX) */
#define RP_FILEOP_PATTERN_MAX 1024       /* glob, name or search pattern */
#define RP_FILEOP_READ_MAX (512 * 1024)  /* read_file bytes per request */
#define RP_FILEOP_LIST_MAX 10000         /* list_files/find entries */
#define RP_FILEOP_MATCHES_MAX 1000       /* search matches */
#define RP_FILEOP_SEARCH_BYTES_MAX (64 * 1024 * 1024) /* search reads */
#define RP_FILEOP_LINE_MAX 512           /* a search match's text */
#define RP_FILEOP_TRANSFER_MAX (64 * 1024 * 1024)     /* upload/download */
#define RP_FILEOP_TRANSFER_PREFIX "transfers/"
#define RP_FILEOP_REPLACE_COUNT_MAX 100000
#define RP_FILEOP_MODE_DEFAULT 0644

typedef struct rp_fileop {
    rp_fileop_kind_t kind;
    char *path;      /* owned; as sent; NULL = the workspace root ("") */
    char *data;      /* owned; write_file content (decoded), replace "old" */
    size_t data_len;
    char *data2;     /* owned; replace_in_file "new" */
    size_t data2_len;
    char *pattern;   /* owned; list_files glob, find name, search pattern */
    char *glob;      /* owned; search: only files whose name matches */
    char *object;    /* owned; upload/download: the store key */
    uint32_t mode;   /* write_file/upload; RP_FILEOP_MODE_DEFAULT */
    bool parents;    /* write_file/upload: make missing directories (true) */
    bool recursive;  /* list_files, delete (false) */
    bool fixed;      /* search: pattern is a plain string (false: ERE) */
    bool ignore_case;
    char type;       /* find: 'f', 'd', 'l' or 0 = any */
    uint64_t offset; /* read_file */
    uint64_t length; /* read_file: 0 = to the cap */
    uint64_t count;  /* replace_in_file: occurrences expected (1) */
    uint64_t limit;  /* list_files/find entries, search matches; 0 = max */
} rp_fileop_t;

/* "write_file", ...; NULL for a kind out of range. */
const char *rp_fileop_name(rp_fileop_kind_t kind);
/* The kind named s; -1 when s names none. */
int rp_fileop_kind(const char *s);
/* Does the op change the workspace (a new snapshot, a record)? */
bool rp_fileop_mutates(rp_fileop_kind_t kind);

/* Is name a member a file op may carry (any of them)? For the request's
 * unknown-member check. */
bool rp_fileop_member(const char *name);

/* Read the op's members of the request object root (borrowed) into out
 * (zeroed first). Members of other ops, and missing required ones, are
 * RP_ERR_INVALID naming them; RP_ERR_TOO_LARGE past a limit. */
rp_err_t rp_fileop_parse(const cJSON *root, rp_fileop_kind_t kind,
                         rp_fileop_t *out, char *errstr, size_t errstr_size);

/* Add the op's members to the request object root (producer side; data
 * written as "content" in utf-8 when it is valid UTF-8 without NUL, else
 * base64). false on no memory. */
bool rp_fileop_to_json(const rp_fileop_t *op, cJSON *root);

void rp_fileop_clear(rp_fileop_t *op);

#endif
