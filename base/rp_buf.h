/* rp_buf — a growable byte buffer with a hard maximum.
 *
 * Every buffer that grows from outside input (HTTP bodies, files, command
 * output) is an rp_buf with a named maximum, so a hostile or runaway peer
 * cannot make us allocate without bound. The data is always kept
 * NUL-terminated (one spare byte beyond len) so text can be used in place.
 *
 * Not thread-safe: one owner at a time.
 */
#ifndef RP_BUF_H
#define RP_BUF_H

#include <stddef.h>

#include "rp_err.h"

typedef struct rp_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would exceed max fail with RP_ERR_TOO_LARGE */
} rp_buf_t;

/* Initialise an empty buffer that may hold at most `max` bytes. */
void rp_buf_init(rp_buf_t *b, size_t max);

/* Append n bytes. On RP_ERR_TOO_LARGE nothing is appended. */
rp_err_t rp_buf_append(rp_buf_t *b, const void *p, size_t n);

/* Append a NUL-terminated string (without its NUL). */
rp_err_t rp_buf_append_str(rp_buf_t *b, const char *s);

/* Append as much of p as fits under max; returns the number of bytes
 * appended (< n means the buffer is full: callers flag truncation). */
size_t rp_buf_append_upto(rp_buf_t *b, const void *p, size_t n);

/* Take the data out: returns the NUL-terminated bytes (caller frees) and
 * leaves the buffer empty. Returns an allocated "" for an empty buffer,
 * or NULL on allocation failure. */
char *rp_buf_steal(rp_buf_t *b, size_t *len_out);

/* Drop contents, keep max. */
void rp_buf_reset(rp_buf_t *b);

/* Free memory; accepts NULL. */
void rp_buf_free(rp_buf_t *b);

#endif
