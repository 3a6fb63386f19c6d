/* rp_ids — execution and session ids: syntax and generation.
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef RP_IDS_H
#define RP_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_contract.h"
#include "rp_err.h"

/* 1..RP_ID_MAX chars of [A-Za-z0-9._:-]. */
bool rp_id_valid(const char *id, size_t len);

/* Write a fresh random UUIDv4 (36 chars + NUL) into out[37]. */
rp_err_t rp_id_generate(char out[37]);

#endif
