/* rp_sha256 — sha256 for the workspace's chunk and manifest hashes, from
 * libcrypto loaded with dlopen on the first hash.
 *
 * Linked, libcrypto costs every runpool-executor start its mapping and
 * relocation (~0.2 M dynamic-loader cycles, docs/workspace.md "Costs"),
 * also for the `true` with an empty workspace that hashes nothing; rp_auth
 * loads it the same way for a service-account key. rp_ws hashes only when
 * it reads or writes a stream or a manifest.
 */
#ifndef RP_SHA256_H
#define RP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

#define RP_SHA256_LIB "libcrypto.so.3"

/* Load libcrypto now (once; later calls report the first outcome), so a
 * caller can tell a missing library from a failed hash. Any thread. */
rp_err_t rp_sha256_load(char *errstr, size_t errstr_size);

/* out = sha256(p[0..n)). Loads libcrypto once (pthread_once); when it or
 * a function is missing: RP_ERR_INTERNAL (not retriable) naming it. Any
 * thread; p borrowed. */
rp_err_t rp_sha256(const void *p, size_t n, uint8_t out[32], char *errstr,
                   size_t errstr_size);

#endif
