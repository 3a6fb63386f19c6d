/* rp_test_fmt — snprintf for tests that never lets a truncated string
 * through unnoticed: either says so (rp_test_fmt) or fails the running
 * cmocka test (rp_test_format, rp_test_vformat).
 *
 * Thread-safety: rp_test_fmt from any thread; the failing ones only from
 * the thread running the cmocka test. */
#ifndef RP_TEST_FMT_H
#define RP_TEST_FMT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* vsnprintf into out (caller-owned, size bytes); false when the text did
 * not fit (out then holds it cut short) or could not be formatted. */
bool rp_test_fmt(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like rp_test_fmt, but fails the test instead of returning false. */
void rp_test_format(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rp_test_vformat(char *out, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
