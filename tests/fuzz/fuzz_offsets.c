/* Commit metadata a previous owner of a partition left (rp1:...): restore
 * it, consume offsets past the commit, and encode again — never a crash,
 * and every re-encoding fits its buffer. */
#include "fuzz_common.h"
#include "rp_offsets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_offsets_t *t = rp_offsets_new();
    char buf[RP_OFFSETS_META_MAX + 1];
    int64_t off = -1;
    bool trunc = false;

    if (!t)
        abort();
    if (rp_offsets_restore(t, 0, 100, (const char *)data, size) == RP_OK) {
        for (int64_t o = 100; o < 400; o++)
            if (!rp_offsets_carried(t, 0, o))
                FUZZ_CHECK(rp_offsets_track(t, 0, o) == RP_OK);
        size_t n = rp_offsets_encode(t, 0, false, &off, buf, sizeof(buf),
                                     &trunc);
        FUZZ_CHECK(n < sizeof(buf) && strlen(buf) == n);
    }
    rp_offsets_destroy(t);
    return 0;
}
