/* The workspace manifest (rp_ws_manifest_parse): what a snapshot's reader
 * (executor restore, worker file ops) trusts to find chunks and files.
 * First byte picks: '0' the rest is the JSON (compressed here, so the
 * fuzzer works on the JSON), '1' the rest is the zstd object as stored.
 * Properties of an accepted manifest: entries sorted and unique, each
 * found by its path, each parent a directory entry, file data inside the
 * stream, sizes summing to bytes. */
#include <zstd.h>

#include "fuzz_common.h"
#include "rp_ws.h"

static void check(const rp_ws_manifest_t *m)
{
    uint64_t bytes = 0;
    size_t n = rp_ws_manifest_count(m);

    FUZZ_CHECK(rp_ws_manifest_key(m)[0] != '\0');
    for (size_t i = 0; i < n; i++) {
        const rp_ws_entry_t *e = rp_ws_manifest_entry(m, i);
        const char *slash;

        FUZZ_CHECK(e && e->path && e->path[0] && e->path[0] != '/');
        FUZZ_CHECK(rp_ws_manifest_find(m, e->path) == e);
        if (i)
            FUZZ_CHECK(strcmp(rp_ws_manifest_entry(m, i - 1)->path,
                              e->path) < 0);
        FUZZ_CHECK(e->type == 'f' || e->type == 'd' || e->type == 'l');
        FUZZ_CHECK((e->type == 'l') == (e->link != NULL));
        FUZZ_CHECK(e->mode <= 07777);
        if (e->type == 'f') {
            FUZZ_CHECK(e->offset + e->size <= rp_ws_manifest_stream_bytes(m));
            bytes += e->size;
        }
        if ((slash = strrchr(e->path, '/'))) {
            char parent[RP_WS_PATH_MAX + 1];
            const rp_ws_entry_t *p;
            memcpy(parent, e->path, (size_t)(slash - e->path));
            parent[slash - e->path] = '\0';
            FUZZ_CHECK((p = rp_ws_manifest_find(m, parent)) && p->type == 'd');
        }
    }
    FUZZ_CHECK(bytes == rp_ws_manifest_bytes(m));
    for (size_t i = 0; i < rp_ws_manifest_skipped_count(m); i++) {
        const char *p, *why;
        rp_ws_manifest_skipped(m, i, &p, &why);
        FUZZ_CHECK(p && why);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body;
    size_t len, zn = 0;
    void *z = NULL;
    rp_ws_manifest_t *m = NULL;
    char err[256];
    int pick = fuzz_pick(data, size, 2, &body, &len);

    if (pick < 0)
        return 0;
    err[0] = '\0';
    if (pick == 0) {
        size_t bound = ZSTD_compressBound(len);
        if (!(z = malloc(bound ? bound : 1)))
            abort();
        zn = ZSTD_compress(z, bound, body, len, 1);
        FUZZ_CHECK(!ZSTD_isError(zn));
        body = z;
        len = zn;
    }
    if (rp_ws_manifest_parse(body, len, &m, err, sizeof(err)) == RP_OK) {
        FUZZ_CHECK(m != NULL);
        check(m);
    } else {
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(err[0] != '\0');
    }
    rp_ws_manifest_destroy(m);
    free(z);
    return 0;
}
