/* rp_cdc — FastCDC over a byte stream (see rp_cdc.h). */
#include "rp_cdc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The gear table: 256 fixed pseudo-random words (splitmix64 from a fixed
 * seed), so every build and every machine cuts at the same places. */
static uint64_t rp_cdc_gear[256];
static pthread_once_t rp_cdc_gear_once = PTHREAD_ONCE_INIT;

static void rp_cdc_gear_fill(void)
{
    uint64_t x = 0x72756e706f6f6c31ULL; /* "runpool1" */

    for (int i = 0; i < 256; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        rp_cdc_gear[i] = z ^ (z >> 31);
    }
}

static void rp_cdc_gear_init(void)
{
    pthread_once(&rp_cdc_gear_once, rp_cdc_gear_fill);
}

/* log2(RP_CDC_AVG) = 16 bits; normalization level 2: 18 bits before the
 * average, 14 after. The gear hash shifts left, so the high bits depend on
 * the most bytes (up to 64): the masks take the top bits. */
#define RP_CDC_MASK_S (((1ULL << 18) - 1) << (64 - 18))
#define RP_CDC_MASK_L (((1ULL << 14) - 1) << (64 - 14))

size_t rp_cdc_cut(const uint8_t *p, size_t n)
{
    uint64_t h = 0;
    size_t i, normal, end;

    rp_cdc_gear_init();
    if (n <= RP_CDC_MIN)
        return n;
    end = n < RP_CDC_MAX ? n : RP_CDC_MAX;
    normal = end < RP_CDC_AVG ? end : RP_CDC_AVG;
    for (i = RP_CDC_MIN; i < normal; i++) {
        h = (h << 1) + rp_cdc_gear[p[i]];
        if (!(h & RP_CDC_MASK_S))
            return i + 1;
    }
    for (; i < end; i++) {
        h = (h << 1) + rp_cdc_gear[p[i]];
        if (!(h & RP_CDC_MASK_L))
            return i + 1;
    }
    return end;
}

struct rp_cdc {
    rp_cdc_emit_fn *emit;
    void *opaque;
    uint8_t *buf; /* 2 * RP_CDC_MAX */
    size_t start, len; /* pending bytes are buf[start, len) */
    rp_err_t failed;
};

rp_cdc_t *rp_cdc_new(rp_cdc_emit_fn *emit, void *opaque)
{
    rp_cdc_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (!(c->buf = malloc(2 * RP_CDC_MAX))) {
        free(c);
        return NULL;
    }
    c->emit = emit;
    c->opaque = opaque;
    rp_cdc_gear_init();
    return c;
}

/* Emit chunks while at least RP_CDC_MAX bytes are pending (or all of
 * them at the end): only then is the next cut independent of what comes. */
static rp_err_t rp_cdc_drain(rp_cdc_t *c, int final)
{
    while (c->len - c->start >= RP_CDC_MAX ||
           (final && c->len > c->start)) {
        size_t cut = rp_cdc_cut(c->buf + c->start, c->len - c->start);
        rp_err_t err = c->emit(c->opaque, c->buf + c->start, cut);

        if (err != RP_OK)
            return c->failed = err;
        c->start += cut;
    }
    return RP_OK;
}

rp_err_t rp_cdc_push(rp_cdc_t *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    rp_err_t err;

    if (c->failed)
        return c->failed;
    while (len > 0) {
        size_t room, n;

        if (c->len == 2 * RP_CDC_MAX) { /* keep the pending tail only */
            memmove(c->buf, c->buf + c->start, c->len - c->start);
            c->len -= c->start;
            c->start = 0;
        }
        room = 2 * RP_CDC_MAX - c->len;
        n = len < room ? len : room;
        memcpy(c->buf + c->len, p, n);
        c->len += n;
        p += n;
        len -= n;
        if ((err = rp_cdc_drain(c, 0)) != RP_OK)
            return err;
    }
    return RP_OK;
}

rp_err_t rp_cdc_finish(rp_cdc_t *c)
{
    rp_err_t err;

    if (c->failed)
        return c->failed;
    err = rp_cdc_drain(c, 1);
    c->start = c->len = 0;
    return err;
}

void rp_cdc_destroy(rp_cdc_t *c)
{
    if (!c)
        return;
    free(c->buf);
    free(c);
}
