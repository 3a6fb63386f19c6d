/* rp_text — UTF-8 checks and base64, shared by the contract and the
 * executor (which cuts output at UTF-8 boundaries).
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_TEXT_H
#define RP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

/* true when the n bytes are valid UTF-8 (no overlongs, no surrogates) and
 * contain no NUL byte. */
bool rp_utf8_valid(const char *s, size_t n);

/* Largest m <= n such that s[0..m) does not end in the middle of a UTF-8
 * sequence (used when truncating output so that text stays text). */
size_t rp_utf8_trim(const char *s, size_t n);

/* Standard base64 with padding. Encode returns malloc'd NUL-terminated text;
 * decode returns RP_ERR_INVALID on malformed input. */
char *rp_base64_encode(const void *data, size_t len);
rp_err_t rp_base64_decode(const char *text, size_t len, char **out,
                          size_t *out_len);


/* A malloc'd copy of the NUL-terminated s in which each byte that does not
 * start a valid UTF-8 sequence is '?'; NULL on allocation failure. */
char *rp_utf8_sanitize(const char *s);

#endif
