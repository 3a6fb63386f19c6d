/* rp_test_fmt — see rp_test_fmt.h. */
#include "rp_test_fmt.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static bool rp_test_vfmt(char *out, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, size, fmt, ap);

    return n >= 0 && (size_t)n < size;
}

bool rp_test_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    bool ok;

    va_start(ap, fmt);
    ok = rp_test_vfmt(out, size, fmt, ap);
    va_end(ap);
    return ok;
}

void rp_test_vformat(char *out, size_t size, const char *fmt, va_list ap)
{
    if (!rp_test_vfmt(out, size, fmt, ap))
        fail_msg("string too long for its buffer (%zu bytes): %.100s...",
                 size, size ? out : "");
}

void rp_test_format(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rp_test_vformat(out, size, fmt, ap);
    va_end(ap);
}
