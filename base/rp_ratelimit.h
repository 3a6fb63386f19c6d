/* rp_ratelimit — a token bucket that never sleeps.
 *
 * rate tokens a second, at most burst saved up; the bucket starts full.
 * rp_ratelimit_take either takes a token (returns 0) or says how many
 * milliseconds until one will be there, and takes nothing: the caller
 * puts its step back on a timer queue for that time instead of holding a
 * thread (curl's Curl_rlimit_wait_ms works the same way). Times are
 * monotonic milliseconds passed in by the caller, so tests need no clock.
 * docs/internals/ratelimit.md has the picture.
 *
 * Thread-safety: none; the owner serialises access (a backend under its
 * lock).
 */
#ifndef RP_RATELIMIT_H
#define RP_RATELIMIT_H

#include <stdint.h>

typedef struct rp_ratelimit {
    double rate;   /* tokens per second, > 0 */
    double burst;  /* most tokens held, >= 1 */
    double tokens; /* held at at_ms */
    int64_t at_ms;
} rp_ratelimit_t;

/* A full bucket at now_ms. rate > 0; burst < 1 counts as 1. */
void rp_ratelimit_init(rp_ratelimit_t *rl, double rate, double burst,
                       int64_t now_ms);
/* 0: a token was taken. > 0: none is there; one will be in that many ms
 * (at least 1), and nothing was taken. */
int64_t rp_ratelimit_take(rp_ratelimit_t *rl, int64_t now_ms);
/* Take a token even when there is none (a call that must not wait, such as
 * a cancel): the bucket may go down to -burst, and later takers wait for
 * the debt to be paid back, so the rate still holds on average. */
void rp_ratelimit_force(rp_ratelimit_t *rl, int64_t now_ms);
/* The tokens held at now_ms (refilled, nothing taken; may be < 0). */
double rp_ratelimit_tokens(rp_ratelimit_t *rl, int64_t now_ms);

#endif
