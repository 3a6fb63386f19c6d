/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): each defines
 * LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer under
 * RP_FUZZ, or with regress_main.c (any compiler) to replay the committed
 * regression inputs as a CTest test. */
#ifndef RP_FUZZ_COMMON_H
#define RP_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep; abort (a crash for the fuzzer). */
#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* A NUL-terminated copy (caller frees) for APIs that take C strings. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* For harnesses that fuzz several parsers: the first byte picks one of n
 * (byte % n), the rest is the input (*body, *len). Returns the choice, or
 * -1 for an empty input (nothing to do). Seeds start with an ASCII digit:
 * '0' % n == 0 for n = 2, 3, 4, 6, 8, 12, 16, 24 (48 = 2^4 * 3). */
static inline int fuzz_pick(const uint8_t *data, size_t size, int n,
                            const char **body, size_t *len)
{
    if (size < 1 || n < 1)
        return -1;
    *body = (const char *)data + 1;
    *len = size - 1;
    return data[0] % n;
}

#endif
