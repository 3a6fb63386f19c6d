/* rp_cdc — content-defined chunking (FastCDC: gear hash, normalized
 * chunking; Xia et al., USENIX ATC 2016).
 *
 * Bytes pushed in any pieces come out as chunks whose boundaries depend
 * only on the bytes: the same stream always gives the same chunks, and a
 * change in the middle of a stream changes only the chunks around it
 * (the cut points after it fall where they fell before). A boundary is
 * never before RP_CDC_MIN bytes nor after RP_CDC_MAX; below RP_CDC_AVG a
 * stricter mask, above it a looser one ("normalized chunking", level 2),
 * so most chunks are near the average.
 *
 * Memory: 2 * RP_CDC_MAX bytes per chunker. Not thread-safe: one owner.
 */
#ifndef RP_CDC_H
#define RP_CDC_H

#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"

#define RP_CDC_MIN (16 * 1024)
#define RP_CDC_AVG (64 * 1024)
#define RP_CDC_MAX (256 * 1024)

/* Called once per chunk, in stream order; data borrowed for the call.
 * A non-RP_OK return stops the chunker and is returned by push/finish. */
typedef rp_err_t rp_cdc_emit_fn(void *opaque, const uint8_t *data,
                                size_t len);

typedef struct rp_cdc rp_cdc_t;

/* emit and opaque borrowed for the chunker's life. NULL on no memory. */
rp_cdc_t *rp_cdc_new(rp_cdc_emit_fn *emit, void *opaque);
/* Feed len bytes (borrowed); emits every chunk that is decided. */
rp_err_t rp_cdc_push(rp_cdc_t *c, const void *data, size_t len);
/* End of stream: emits what is left. */
rp_err_t rp_cdc_finish(rp_cdc_t *c);
/* Accepts NULL. */
void rp_cdc_destroy(rp_cdc_t *c);

/* Where the first chunk of p[0..n) ends (1..n; n when n <= RP_CDC_MIN or
 * no cut point is found before min(n, RP_CDC_MAX)). Pure; for tests. */
size_t rp_cdc_cut(const uint8_t *p, size_t n);

#endif
