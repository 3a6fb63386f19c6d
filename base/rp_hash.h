/* rp_hash — FNV-1a, 64 bit, for in-process hash tables and for names
 * that only need to differ (template job ids). Not for anything an
 * adversary picks to collide: no secret, no resistance.
 *
 * Header-only (like rp_list.h): the loop is a few instructions and the
 * callers are hot paths. Any thread; no state.
 */
#ifndef RP_HASH_H
#define RP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RP_HASH_FNV1A64_INIT 14695981039346656037ULL
#define RP_HASH_FNV1A64_PRIME 1099511628211ULL

/* h continued over len bytes of data (borrowed); start with
 * RP_HASH_FNV1A64_INIT. */
static inline uint64_t rp_hash_fnv1a64(uint64_t h, const void *data,
                                       size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * RP_HASH_FNV1A64_PRIME;
    return h;
}

/* h continued over the NUL-terminated s (borrowed; NULL hashes as ""). */
static inline uint64_t rp_hash_fnv1a64_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * RP_HASH_FNV1A64_PRIME;
    return h;
}

#endif
