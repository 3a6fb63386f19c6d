#include "rp_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void rp_buf_init(rp_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Make room for `extra` more bytes plus the terminating NUL. */
static rp_err_t rp_buf_reserve(rp_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;
    char *p;

    if (need <= b->cap)
        return RP_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (!p)
        return RP_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return RP_OK;
}

rp_err_t rp_buf_append(rp_buf_t *b, const void *p, size_t n)
{
    rp_err_t err;

    if (n > b->max - b->len)
        return RP_ERR_TOO_LARGE;
    if ((err = rp_buf_reserve(b, n)) != RP_OK)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return RP_OK;
}

rp_err_t rp_buf_append_str(rp_buf_t *b, const char *s)
{
    return rp_buf_append(b, s, strlen(s));
}

size_t rp_buf_append_upto(rp_buf_t *b, const void *p, size_t n)
{
    size_t room = b->max - b->len;

    if (n > room)
        n = room;
    if (n == 0 || rp_buf_append(b, p, n) != RP_OK)
        return 0;
    return n;
}

char *rp_buf_steal(rp_buf_t *b, size_t *len_out)
{
    char *p = b->data;

    if (!p)
        p = calloc(1, 1);
    if (len_out)
        *len_out = p ? b->len : 0;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void rp_buf_reset(rp_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void rp_buf_free(rp_buf_t *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
