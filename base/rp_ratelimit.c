/* rp_ratelimit — a token bucket that returns a delay (see rp_ratelimit.h). */
#include "rp_ratelimit.h"

void rp_ratelimit_init(rp_ratelimit_t *rl, double rate, double burst,
                       int64_t now_ms)
{
    rl->rate = rate > 0 ? rate : 1;
    rl->burst = burst >= 1 ? burst : 1;
    rl->tokens = rl->burst;
    rl->at_ms = now_ms;
}

static void rp_ratelimit_refill(rp_ratelimit_t *rl, int64_t now_ms)
{
    /* A clock that went back (it cannot: monotonic) or a caller's stale
     * now must not drain the bucket. */
    if (now_ms > rl->at_ms) {
        rl->tokens += (double)(now_ms - rl->at_ms) * rl->rate / 1000.0;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
        rl->at_ms = now_ms;
    }
}

void rp_ratelimit_force(rp_ratelimit_t *rl, int64_t now_ms)
{
    rp_ratelimit_refill(rl, now_ms);
    rl->tokens -= 1.0;
    if (rl->tokens < -rl->burst)
        rl->tokens = -rl->burst;
}

double rp_ratelimit_tokens(rp_ratelimit_t *rl, int64_t now_ms)
{
    rp_ratelimit_refill(rl, now_ms);
    return rl->tokens;
}

int64_t rp_ratelimit_take(rp_ratelimit_t *rl, int64_t now_ms)
{
    double need;
    int64_t ms;

    rp_ratelimit_refill(rl, now_ms);
    if (rl->tokens >= 1.0) {
        rl->tokens -= 1.0;
        return 0;
    }
    need = (1.0 - rl->tokens) * 1000.0 / rl->rate;
    ms = (int64_t)need;
    if ((double)ms < need)
        ms++; /* round up: a token due in 0.3 ms is not there yet */
    return ms > 0 ? ms : 1;
}
