/* rp_time — clocks and RFC 3339 timestamps. Any thread. */
#ifndef RP_TIME_H
#define RP_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Size of a buffer that holds any timestamp rp_time_rfc3339 writes. */
#define RP_TIME_RFC3339_MAX 40

/* Monotonic clock in milliseconds (for durations and deadlines). */
int64_t rp_time_mono_ms(void);

/* Monotonic clock in microseconds. */
int64_t rp_time_mono_us(void);

/* Wall clock in milliseconds since the Unix epoch. */
int64_t rp_time_wall_ms(void);

/* Format wall-clock ms since epoch as "2026-11-23T19:05:08.123Z" into
 * out (at least RP_TIME_RFC3339_MAX bytes). */
void rp_time_rfc3339(int64_t wall_ms, char *out, size_t out_size);

/* Parse an RFC 3339 timestamp (with 'Z' or a numeric offset, optional
 * fraction) into ms since epoch. Returns 0 on success, -1 if malformed or
 * outside RP_TIME_MIN_MS..RP_TIME_MAX_MS. */
int rp_time_parse_rfc3339(const char *s, int64_t *wall_ms);
/* The instants RFC 3339's four-digit years can name, in wall ms:
 * 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define RP_TIME_MIN_MS (-62167219200000LL)
#define RP_TIME_MAX_MS 253402300799999LL

#endif
