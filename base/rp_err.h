/* rp_err — the one error enum of runpool, its names and retry classes.
 *
 * Convention at module boundaries: a function returns rp_err_t and, when
 * it fails, writes a one-line human message into a caller-owned
 * `char *errstr, size_t errstr_size` buffer (may be NULL/0 to ignore).
 * rp_err_retriable() says whether trying the same operation again later
 * can succeed (I/O hiccups, unavailable peers) or never will (bad input).
 *
 * Thread-safety: every function here is pure and callable from any thread.
 */
#ifndef RP_ERR_H
#define RP_ERR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum rp_err {
    RP_OK = 0,
    RP_ERR_INVALID,     /* bad input or argument; never retriable */
    RP_ERR_NOMEM,       /* allocation failed */
    RP_ERR_TOO_LARGE,   /* input over a named maximum */
    RP_ERR_NOT_FOUND,   /* object/key absent */
    RP_ERR_EXISTS,      /* create-only target already exists */
    RP_ERR_CONFLICT,    /* compare-and-swap lost: version changed */
    RP_ERR_IO,          /* local I/O failure; retriable */
    RP_ERR_TIMEOUT,     /* deadline passed; retriable */
    RP_ERR_UNAVAILABLE, /* remote temporarily unavailable (429/5xx); retriable */
    RP_ERR_PERMISSION,  /* denied (EACCES, 403); not retriable */
    RP_ERR_PROTOCOL,    /* peer answered something we cannot understand */
    RP_ERR_KAFKA,       /* Kafka client error (see message) */
    RP_ERR_SPAWN,       /* could not start a process */
    RP_ERR_CANCELLED,   /* operation was cancelled on purpose */
    RP_ERR_INTERNAL,    /* a bug or broken invariant */
    RP_ERR__COUNT
} rp_err_t;

/* Human description, e.g. "version conflict". Never NULL. */
const char *rp_err_str(rp_err_t err);

/* Stable snake_case code used in result `error.code` and DLQ headers,
 * e.g. "conflict". Never NULL. */
const char *rp_err_code(rp_err_t err);

/* true when the same operation may succeed if tried again later. */
bool rp_err_retriable(rp_err_t err);

/* printf into errstr (truncating, always NUL-terminated when size > 0).
 * errstr may be NULL. Returns 0; called through rp_errf. */
int rp_errf_msg(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns err; done (rp_errf_msg's 0) is taken so that rp_errf is one
 * expression whose value is err, even where a statement drops it (a comma
 * expression would warn there). err must have no side effects that touch
 * errstr: the order the two arguments are evaluated in is unspecified. */
static inline rp_err_t rp_err_pass(int done, rp_err_t err)
{
    (void)done;
    return err;
}

/* rp_errf_msg into errstr, then err, so callers can write
 * `return rp_errf(errstr, n, RP_ERR_IO, ...)`. errstr may be NULL.
 * A macro rather than a function so that the optimiser sees which code
 * each error path returns: with an opaque return it cannot tell that
 * `if ((err = f(..., &out))) goto out;` never reads an unset out. */
#define rp_errf(errstr, errstr_size, err, ...)                               \
    rp_err_pass(rp_errf_msg((errstr), (errstr_size), __VA_ARGS__), (err))

#endif
