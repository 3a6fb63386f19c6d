/* rp_ws — workspace snapshots (see rp_ws.h and docs/workspace.md).
 *
 * The file is in five parts: helpers (hashes, zstd, a hash set), the
 * manifest (writer and checked parser), the chunk writer (libarchive ->
 * FastCDC -> create-only uploads) and chunk reader (fetch, check, feed
 * libarchive), then the operations: save, restore, read, edit, gc.
 */
#include "rp_ws.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "rp_archive.h" /* libarchive, dlopen'ed on first use */
#include "rp_cdc.h"
#include "rp_ids.h"
#include "rp_layout.h"
#include "rp_sha256.h"
#include "rp_text.h"
#include "rp_time.h"

/* A chunk object can only be this large: zstd's worst case for one chunk
 * (and a little room); more is not one of ours. */
#define RP_WS_CHUNK_OBJ_MAX (RP_CDC_MAX + RP_CDC_MAX / 64 + 1024)
/* A manifest object, compressed. */
#define RP_WS_MANIFEST_OBJ_MAX (RP_WS_MANIFEST_MAX + RP_WS_MANIFEST_MAX / 64 + 1024)
/* Reads of one file's data while saving. */
#define RP_WS_IO_BLOCK (64 * 1024)
/* Largest integer the manifest carries (JSON readers with doubles). */
#define RP_WS_INT_MAX 9007199254740991LL
/* |mt| bound: ms that still fit int64 ns. */
#define RP_WS_MT_MAX 9000000000000LL

/* ---------------------------------------------------------------- helpers */

static void rp_ws_hex(const uint8_t h[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[64] = '\0';
}

static int rp_ws_unhex(const char *s, uint8_t h[32])
{
    for (int i = 0; i < 64; i++) {
        int v;
        char c = s[i];

        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else
            return -1;
        if (i & 1)
            h[i / 2] = (uint8_t)(h[i / 2] | v);
        else
            h[i / 2] = (uint8_t)(v << 4);
    }
    return s[64] == '\0' ? 0 : -1;
}

static rp_err_t rp_ws_sha256(const void *p, size_t n, uint8_t out[32],
                             char *errstr, size_t errstr_size)
{
    return rp_sha256(p, n, out, errstr, errstr_size); /* libcrypto, lazily */
}

static void rp_ws_stats_start(rp_ws_stats_t *s, int64_t *t0)
{
    if (s)
        memset(s, 0, sizeof(*s));
    *t0 = rp_time_mono_us();
}

static void rp_ws_stats_end(rp_ws_stats_t *s, int64_t t0)
{
    if (s)
        s->elapsed_us = rp_time_mono_us() - t0;
}

/* A set of sha256 digests (open addressing; the digests are random, so
 * their first bytes are a good hash). */
typedef struct rp_ws_hset {
    uint8_t (*keys)[32];
    uint8_t *used;
    size_t cap, n;
} rp_ws_hset_t;

static void rp_ws_hset_free(rp_ws_hset_t *s)
{
    free(s->keys);
    free(s->used);
    memset(s, 0, sizeof(*s));
}

static size_t rp_ws_hset_slot(const rp_ws_hset_t *s, const uint8_t h[32])
{
    uint64_t x;
    size_t i;

    memcpy(&x, h, sizeof(x));
    for (i = (size_t)x & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
        if (!s->used[i] || memcmp(s->keys[i], h, 32) == 0)
            return i;
}

static int rp_ws_hset_has(const rp_ws_hset_t *s, const uint8_t h[32])
{
    return s->cap && s->used[rp_ws_hset_slot(s, h)];
}

/* 0 added or present, -1 no memory. */
static int rp_ws_hset_add(rp_ws_hset_t *s, const uint8_t h[32])
{
    size_t i;

    if (2 * (s->n + 1) > s->cap) {
        rp_ws_hset_t g = {0};
        g.cap = s->cap ? 2 * s->cap : 64;
        g.keys = malloc(g.cap * 32);
        g.used = calloc(g.cap, 1);
        if (!g.keys || !g.used) {
            rp_ws_hset_free(&g);
            return -1;
        }
        for (size_t j = 0; j < s->cap; j++)
            if (s->used[j]) {
                size_t k = rp_ws_hset_slot(&g, s->keys[j]);
                memcpy(g.keys[k], s->keys[j], 32);
                g.used[k] = 1;
                g.n++;
            }
        rp_ws_hset_free(s);
        *s = g;
    }
    i = rp_ws_hset_slot(s, h);
    if (!s->used[i]) {
        memcpy(s->keys[i], h, 32);
        s->used[i] = 1;
        s->n++;
    }
    return 0;
}

/* ------------------------------------------------------------- manifest */

typedef struct rp_ws_chunk {
    uint8_t h[32];
    uint32_t n;
    uint64_t off; /* where it starts in the stream */
} rp_ws_chunk_t;

typedef struct rp_ws_skip {
    char *path;
    char *why;
} rp_ws_skip_t;

struct rp_ws_manifest {
    char session_id[RP_ID_MAX + 1];
    char execution_id[RP_ID_MAX + 1];
    char key[RP_STATE_KEY_MAX + 1];
    int64_t created_at_ms;
    uint64_t bytes, files, stream_bytes, skipped_total;
    rp_ws_chunk_t *chunks;
    size_t nchunks;
    rp_ws_entry_t *entries;
    size_t nentries;
    rp_ws_skip_t *skipped;
    size_t nskipped;
};

void rp_ws_manifest_destroy(rp_ws_manifest_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nentries; i++) {
        free((char *)m->entries[i].path);
        free((char *)m->entries[i].link);
    }
    for (size_t i = 0; i < m->nskipped; i++) {
        free(m->skipped[i].path);
        free(m->skipped[i].why);
    }
    free(m->entries);
    free(m->chunks);
    free(m->skipped);
    free(m);
}

size_t rp_ws_manifest_count(const rp_ws_manifest_t *m)
{
    return m ? m->nentries : 0;
}

const rp_ws_entry_t *rp_ws_manifest_entry(const rp_ws_manifest_t *m, size_t i)
{
    return m && i < m->nentries ? &m->entries[i] : NULL;
}

/* Index of the first entry whose path is >= path (entries[0..n)). */
static size_t rp_ws_lower_bound(const rp_ws_entry_t *e, size_t n,
                                const char *path)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(e[mid].path, path) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const rp_ws_entry_t *rp_ws_manifest_find(const rp_ws_manifest_t *m,
                                         const char *path)
{
    size_t i;

    if (!m || !path)
        return NULL;
    i = rp_ws_lower_bound(m->entries, m->nentries, path);
    return i < m->nentries && strcmp(m->entries[i].path, path) == 0
               ? &m->entries[i]
               : NULL;
}

const char *rp_ws_manifest_key(const rp_ws_manifest_t *m)
{
    return m ? m->key : "";
}
uint64_t rp_ws_manifest_bytes(const rp_ws_manifest_t *m)
{
    return m ? m->bytes : 0;
}
uint64_t rp_ws_manifest_stream_bytes(const rp_ws_manifest_t *m)
{
    return m ? m->stream_bytes : 0;
}
size_t rp_ws_manifest_chunks(const rp_ws_manifest_t *m)
{
    return m ? m->nchunks : 0;
}
const char *rp_ws_manifest_session_id(const rp_ws_manifest_t *m)
{
    return m ? m->session_id : "";
}
const char *rp_ws_manifest_execution_id(const rp_ws_manifest_t *m)
{
    return m ? m->execution_id : "";
}
int64_t rp_ws_manifest_created_at_ms(const rp_ws_manifest_t *m)
{
    return m ? m->created_at_ms : 0;
}
size_t rp_ws_manifest_skipped_count(const rp_ws_manifest_t *m)
{
    return m ? m->nskipped : 0;
}
void rp_ws_manifest_skipped(const rp_ws_manifest_t *m, size_t i,
                            const char **path, const char **why)
{
    *path = *why = NULL;
    if (m && i < m->nskipped) {
        *path = m->skipped[i].path;
        *why = m->skipped[i].why;
    }
}

/* --- path rules */

rp_err_t rp_ws_path_check_len(const char *path, size_t len, char *norm,
                              size_t norm_size, char *errstr,
                              size_t errstr_size)
{
    size_t i = 0, o = 0;

    if (norm && norm_size)
        norm[0] = '\0';
    if (!path || len == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "empty path");
    if (len > RP_WS_PATH_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "path over %d bytes", RP_WS_PATH_MAX);
    if (memchr(path, '\0', len))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "path holds a NUL byte");
    if (path[0] == '/')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "path is absolute; paths are relative to the "
                       "workspace");
    if (!rp_utf8_valid(path, len))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "path is not valid UTF-8");
    if (!norm || norm_size == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "no room for the path");
    while (i < len) {
        size_t s = i, n;

        while (i < len && path[i] != '/')
            i++;
        n = i - s;
        while (i < len && path[i] == '/')
            i++;
        if (n == 0 || (n == 1 && path[s] == '.'))
            continue;
        if (n == 2 && path[s] == '.' && path[s + 1] == '.') {
            norm[0] = '\0';
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "path has a \"..\" segment");
        }
        if (n > RP_WS_NAME_MAX) {
            norm[0] = '\0';
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "a path segment is over %d bytes",
                           RP_WS_NAME_MAX);
        }
        if (o + (o ? 1 : 0) + n + 1 > norm_size) {
            norm[0] = '\0';
            return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                           "no room for the path");
        }
        if (o)
            norm[o++] = '/';
        memcpy(norm + o, path + s, n);
        o += n;
    }
    norm[o] = '\0';
    return RP_OK;
}

rp_err_t rp_ws_path_check(const char *path, char *norm, size_t norm_size,
                          char *errstr, size_t errstr_size)
{
    return rp_ws_path_check_len(path, path ? strnlen(path, RP_WS_PATH_MAX + 1)
                                           : 0,
                                norm, norm_size, errstr, errstr_size);
}

/* A manifest path: already normalised, not the root. */
static int rp_ws_path_canonical(const char *p)
{
    char norm[RP_WS_PATH_MAX + 1];

    return rp_ws_path_check(p, norm, sizeof(norm), NULL, 0) == RP_OK &&
           norm[0] != '\0' && strcmp(norm, p) == 0;
}

/* Length of p's parent ("a/b/c" -> 3, "a" -> 0). */
static size_t rp_ws_parent_len(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? (size_t)(s - p) : 0;
}

/* --- the items a snapshot is made of (save's walk, edit's list) */

typedef struct rp_ws_item {
    char *path;
    char type;
    uint32_t mode;
    uint64_t size;
    int64_t mtime_ns;
    char *link;
    uint64_t offset;  /* set when streamed */
    long old;         /* edit: index in the old manifest, -1 new */
    const void *data; /* edit: a PUT's bytes (borrowed) */
} rp_ws_item_t;

typedef struct rp_ws_items {
    rp_ws_item_t *v;
    size_t n, cap;
    rp_ws_skip_t *skip;
    size_t nskip, skip_cap;
    uint64_t skip_total;
} rp_ws_items_t;

static void rp_ws_items_free(rp_ws_items_t *it)
{
    for (size_t i = 0; i < it->n; i++) {
        free(it->v[i].path);
        free(it->v[i].link);
    }
    for (size_t i = 0; i < it->nskip; i++) {
        free(it->skip[i].path);
        free(it->skip[i].why);
    }
    free(it->v);
    free(it->skip);
    memset(it, 0, sizeof(*it));
}

/* Append (takes path and link). -1 no memory (and frees them). */
static int rp_ws_items_push(rp_ws_items_t *it, rp_ws_item_t *x)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? 2 * it->cap : 256;
        rp_ws_item_t *v = realloc(it->v, cap * sizeof(*v));
        if (!v) {
            free(x->path);
            free(x->link);
            return -1;
        }
        it->v = v;
        it->cap = cap;
    }
    it->v[it->n++] = *x;
    return 0;
}

/* Record a skipped path (copied, made printable UTF-8); -1 no memory. */
static int rp_ws_items_skip(rp_ws_items_t *it, const char *path,
                            const char *why)
{
    it->skip_total++;
    if (it->nskip >= RP_WS_SKIPPED_MAX)
        return 0;
    if (it->nskip == it->skip_cap) {
        size_t cap = it->skip_cap ? 2 * it->skip_cap : 16;
        rp_ws_skip_t *v = realloc(it->skip, cap * sizeof(*v));
        if (!v)
            return -1;
        it->skip = v;
        it->skip_cap = cap;
    }
    it->skip[it->nskip].path = rp_utf8_sanitize(path);
    it->skip[it->nskip].why = strdup(why);
    if (!it->skip[it->nskip].path || !it->skip[it->nskip].why) {
        free(it->skip[it->nskip].path);
        free(it->skip[it->nskip].why);
        return -1;
    }
    it->nskip++;
    return 0;
}

static int rp_ws_item_cmp(const void *a, const void *b)
{
    return strcmp(((const rp_ws_item_t *)a)->path,
                  ((const rp_ws_item_t *)b)->path);
}

/* --- the manifest writer */

static rp_err_t rp_ws_json_str(rp_buf_t *b, const char *s)
{
    rp_err_t err = rp_buf_append(b, "\"", 1);

    for (; err == RP_OK && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            err = rp_buf_append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            err = rp_buf_append(b, esc, 6);
        } else {
            err = rp_buf_append(b, s, 1);
        }
    }
    return err ? err : rp_buf_append(b, "\"", 1);
}

static rp_err_t rp_ws_json_fmt(rp_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static rp_err_t rp_ws_json_fmt(rp_buf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return RP_ERR_INTERNAL;
    return rp_buf_append(b, tmp, (size_t)n);
}

/* mtime_ns as "mt" (ms, floor) and "mn" (ns within that ms). */
static void rp_ws_split_ns(int64_t ns, int64_t *ms, int64_t *rem)
{
    *ms = ns / 1000000;
    *rem = ns % 1000000;
    if (*rem < 0) {
        *rem += 1000000;
        (*ms)--;
    }
}

/* The manifest of items (streamed, offsets set) and chunks as zstd bytes
 * (caller frees *out). */
static rp_err_t rp_ws_manifest_write(const char *session_id,
                                     const char *execution_id,
                                     const rp_ws_items_t *it,
                                     const rp_ws_chunk_t *chunks,
                                     size_t nchunks, uint64_t stream_bytes,
                                     void **out, size_t *out_len,
                                     char *errstr, size_t errstr_size)
{
    rp_buf_t b;
    rp_err_t err = RP_OK;
    char ts[64], hex[65];
    uint64_t bytes = 0;
    size_t bound, zn;
    void *z = NULL;

    *out = NULL;
    rp_buf_init(&b, RP_WS_MANIFEST_MAX);
    for (size_t i = 0; i < it->n; i++)
        bytes += it->v[i].type == 'f' ? it->v[i].size : 0;
    rp_time_rfc3339(rp_time_wall_ms(), ts, sizeof(ts));
#define W(x)                                                                \
    do {                                                                    \
        if ((err = (x)) != RP_OK)                                           \
            goto out;                                                       \
    } while (0)
    W(rp_buf_append_str(&b, "{\"format\":\"" RP_WS_FORMAT "\",\"session_id\":"));
    W(rp_ws_json_str(&b, session_id));
    W(rp_buf_append_str(&b, ",\"execution_id\":"));
    W(rp_ws_json_str(&b, execution_id));
    W(rp_ws_json_fmt(&b,
                     ",\"created_at\":\"%s\",\"bytes\":%" PRIu64
                     ",\"files\":%zu,\"stream_bytes\":%" PRIu64
                     ",\"chunks\":[",
                     ts, bytes, it->n, stream_bytes));
    for (size_t i = 0; i < nchunks; i++) {
        rp_ws_hex(chunks[i].h, hex);
        W(rp_ws_json_fmt(&b, "%s{\"h\":\"%s\",\"n\":%" PRIu32 "}",
                         i ? "," : "", hex, chunks[i].n));
    }
    W(rp_buf_append_str(&b, "],\"entries\":["));
    for (size_t i = 0; i < it->n; i++) {
        const rp_ws_item_t *x = &it->v[i];
        int64_t ms, rem;

        rp_ws_split_ns(x->mtime_ns, &ms, &rem);
        W(rp_buf_append_str(&b, i ? ",{\"p\":" : "{\"p\":"));
        W(rp_ws_json_str(&b, x->path));
        W(rp_ws_json_fmt(&b,
                         ",\"t\":\"%c\",\"m\":%" PRIu32 ",\"mt\":%" PRId64
                         ",\"mn\":%" PRId64,
                         x->type, x->mode, ms, rem));
        if (x->type == 'f')
            W(rp_ws_json_fmt(&b, ",\"s\":%" PRIu64 ",\"o\":%" PRIu64,
                             x->size, x->offset));
        if (x->type == 'l') {
            W(rp_buf_append_str(&b, ",\"l\":"));
            W(rp_ws_json_str(&b, x->link));
        }
        W(rp_buf_append(&b, "}", 1));
    }
    W(rp_buf_append_str(&b, "],\"skipped\":["));
    for (size_t i = 0; i < it->nskip; i++) {
        W(rp_buf_append_str(&b, i ? ",{\"p\":" : "{\"p\":"));
        W(rp_ws_json_str(&b, it->skip[i].path));
        W(rp_buf_append_str(&b, ",\"why\":"));
        W(rp_ws_json_str(&b, it->skip[i].why));
        W(rp_buf_append(&b, "}", 1));
    }
    W(rp_ws_json_fmt(&b, "],\"skipped_total\":%" PRIu64 "}", it->skip_total));
#undef W
    bound = ZSTD_compressBound(b.len);
    if (!(z = malloc(bound))) {
        err = RP_ERR_NOMEM;
        goto out;
    }
    zn = ZSTD_compress(z, bound, b.data, b.len, RP_WS_ZSTD_LEVEL);
    if (ZSTD_isError(zn)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                      "zstd: %s", ZSTD_getErrorName(zn));
        goto out;
    }
    *out = z;
    *out_len = zn;
    z = NULL;
out:
    if (err == RP_ERR_TOO_LARGE)
        rp_errf(errstr, errstr_size, err,
                "workspace manifest over %d bytes (too many entries)",
                RP_WS_MANIFEST_MAX);
    else if (err == RP_ERR_NOMEM)
        rp_errf(errstr, errstr_size, err, "out of memory");
    else if (err == RP_ERR_INTERNAL && errstr && !errstr[0])
        rp_errf(errstr, errstr_size, err, "manifest number too long");
    free(z);
    rp_buf_free(&b);
    return err;
}

/* --- the manifest parser */

static rp_err_t rp_ws_bad(char *errstr, size_t errstr_size, const char *what,
                          size_t i)
{
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                   "workspace manifest: bad %s (item %zu)", what, i);
}

/* An integral number in [lo, hi]; absent -> def when def_ok. */
static int rp_ws_jint(const cJSON *o, const char *name, int64_t lo,
                      int64_t hi, int def_ok, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    double d;

    if (!it) {
        *out = 0;
        return def_ok ? 0 : -1;
    }
    if (!cJSON_IsNumber(it))
        return -1;
    d = it->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static const char *rp_ws_jstr(const cJSON *o, const char *name, size_t max)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(it) || !it->valuestring ||
        strnlen(it->valuestring, max + 1) > max)
        return NULL;
    return it->valuestring;
}

/* How many JSON values json holds at most (one per '[', '{' and ',' outside
 * strings, plus one): checked before cJSON allocates a node for each. */
static size_t rp_ws_json_values(const char *json, size_t len)
{
    size_t n = 1;
    int in_str = 0;

    for (size_t i = 0; i < len; i++) {
        char c = json[i];

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            n++;
        }
    }
    return n;
}

static rp_err_t rp_ws_manifest_from_json(const char *json, size_t len,
                                         rp_ws_manifest_t **out,
                                         char *errstr, size_t errstr_size)
{
    rp_ws_manifest_t *m = NULL;
    cJSON *root = NULL;
    const cJSON *arr, *it;
    const char *s;
    rp_err_t err = RP_OK;
    int64_t v;
    uint64_t sum = 0, bytes = 0;
    size_t i, n;

    *out = NULL;
    if (rp_ws_json_values(json, len) > RP_WS_JSON_VALUES_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "workspace manifest: over %d JSON values",
                      RP_WS_JSON_VALUES_MAX);
        goto out;
    }
    if (!(root = cJSON_ParseWithLength(json, len)) || !cJSON_IsObject(root)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "workspace manifest: not a JSON object");
        goto out;
    }
    if (!(m = calloc(1, sizeof(*m)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    s = rp_ws_jstr(root, "format", 64);
    if (!s || strcmp(s, RP_WS_FORMAT) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "workspace manifest: format is not " RP_WS_FORMAT);
        goto out;
    }
#define BAD(what, idx)                                                      \
    do {                                                                    \
        err = rp_ws_bad(errstr, errstr_size, what, idx);                    \
        goto out;                                                           \
    } while (0)
    if (!(s = rp_ws_jstr(root, "session_id", RP_ID_MAX)) ||
        !rp_id_valid(s, strlen(s)))
        BAD("session_id", 0);
    snprintf(m->session_id, sizeof(m->session_id), "%s", s);
    if (!(s = rp_ws_jstr(root, "execution_id", RP_ID_MAX)) ||
        !rp_id_valid(s, strlen(s)))
        BAD("execution_id", 0);
    snprintf(m->execution_id, sizeof(m->execution_id), "%s", s);
    rp_layout_ws_manifest_key(m->session_id, m->execution_id, m->key,
                              sizeof(m->key));
    if (!m->key[0])
        BAD("ids", 0);
    if (!(s = rp_ws_jstr(root, "created_at", 64)) ||
        rp_time_parse_rfc3339(s, &m->created_at_ms) != 0)
        BAD("created_at", 0);
    if (rp_ws_jint(root, "bytes", 0, RP_WS_INT_MAX, 0, &v))
        BAD("bytes", 0);
    m->bytes = (uint64_t)v;
    if (rp_ws_jint(root, "files", 0, RP_WS_ENTRIES_MAX, 0, &v))
        BAD("files", 0);
    m->files = (uint64_t)v;
    if (rp_ws_jint(root, "stream_bytes", 0, RP_WS_INT_MAX, 0, &v))
        BAD("stream_bytes", 0);
    m->stream_bytes = (uint64_t)v;
    if (rp_ws_jint(root, "skipped_total", 0, RP_WS_INT_MAX, 1, &v))
        BAD("skipped_total", 0);
    m->skipped_total = (uint64_t)v;

    /* chunks */
    arr = cJSON_GetObjectItemCaseSensitive(root, "chunks");
    if (!cJSON_IsArray(arr) || (n = (size_t)cJSON_GetArraySize(arr)) >
                                   RP_WS_CHUNKS_MAX)
        BAD("chunks", 0);
    if (n && !(m->chunks = calloc(n, sizeof(*m->chunks)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    i = 0;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsObject(it) || !(s = rp_ws_jstr(it, "h", 64)) ||
            strlen(s) != 64 || rp_ws_unhex(s, m->chunks[i].h) ||
            rp_ws_jint(it, "n", 1, RP_CDC_MAX, 0, &v))
            BAD("chunk", i);
        m->chunks[i].n = (uint32_t)v;
        m->chunks[i].off = sum;
        sum += (uint64_t)v;
        m->nchunks = ++i;
    }
    if (sum != m->stream_bytes)
        BAD("chunk lengths (their sum is not stream_bytes)", 0);

    /* entries */
    arr = cJSON_GetObjectItemCaseSensitive(root, "entries");
    if (!cJSON_IsArray(arr) || (n = (size_t)cJSON_GetArraySize(arr)) >
                                   RP_WS_ENTRIES_MAX)
        BAD("entries", 0);
    if (n != m->files)
        BAD("files (not the number of entries)", 0);
    if (n && !(m->entries = calloc(n, sizeof(*m->entries)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    i = 0;
    cJSON_ArrayForEach(it, arr)
    {
        rp_ws_entry_t *e = &m->entries[i];
        int64_t mt, mn;
        size_t pl;

        if (!cJSON_IsObject(it) || !(s = rp_ws_jstr(it, "p", RP_WS_PATH_MAX)) ||
            !rp_ws_path_canonical(s))
            BAD("entry path", i);
        if (i && strcmp(m->entries[i - 1].path, s) >= 0)
            BAD("entry order (paths must be sorted and unique)", i);
        if (!(e->path = strdup(s))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
        m->nentries = ++i;
        /* The parent must be a directory entry before it: restore never
         * writes below anything but a directory it made. */
        if ((pl = rp_ws_parent_len(s)) > 0) {
            char parent[RP_WS_PATH_MAX + 1];
            size_t k;

            memcpy(parent, s, pl);
            parent[pl] = '\0';
            k = rp_ws_lower_bound(m->entries, i - 1, parent);
            if (k >= i - 1 || strcmp(m->entries[k].path, parent) != 0 ||
                m->entries[k].type != 'd')
                BAD("entry (its parent is not a directory entry)", i - 1);
        }
        if (!(s = rp_ws_jstr(it, "t", 1)) ||
            (s[0] != 'f' && s[0] != 'd' && s[0] != 'l') || s[1])
            BAD("entry type", i - 1);
        e->type = s[0];
        if (rp_ws_jint(it, "m", 0, 07777, 0, &v))
            BAD("entry mode", i - 1);
        e->mode = (uint32_t)v;
        if (rp_ws_jint(it, "mt", -RP_WS_MT_MAX, RP_WS_MT_MAX, 0, &mt) ||
            rp_ws_jint(it, "mn", 0, 999999, 1, &mn))
            BAD("entry mtime", i - 1);
        e->mtime_ms = mt;
        e->mtime_ns = mt * 1000000 + mn;
        if (e->type == 'f') {
            int64_t sz, off;
            if (rp_ws_jint(it, "s", 0, RP_WS_INT_MAX, 0, &sz) ||
                rp_ws_jint(it, "o", 0, RP_WS_INT_MAX, 0, &off) ||
                (uint64_t)sz > m->stream_bytes ||
                (uint64_t)off > m->stream_bytes - (uint64_t)sz)
                BAD("entry size or offset", i - 1);
            e->size = (uint64_t)sz;
            e->offset = (uint64_t)off;
            bytes += e->size;
        }
        if (e->type == 'l') {
            if (!(s = rp_ws_jstr(it, "l", RP_WS_LINK_MAX)) || !s[0])
                BAD("symlink target", i - 1);
            if (!(e->link = strdup(s))) {
                err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                              "out of memory");
                goto out;
            }
        }
    }
    if (bytes != m->bytes)
        BAD("bytes (not the sum of the file sizes)", 0);

    /* skipped (optional) */
    arr = cJSON_GetObjectItemCaseSensitive(root, "skipped");
    if (arr) {
        if (!cJSON_IsArray(arr) ||
            (n = (size_t)cJSON_GetArraySize(arr)) > RP_WS_SKIPPED_MAX)
            BAD("skipped", 0);
        if (n && !(m->skipped = calloc(n, sizeof(*m->skipped)))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
        i = 0;
        cJSON_ArrayForEach(it, arr)
        {
            const char *why;
            if (!cJSON_IsObject(it) ||
                !(s = rp_ws_jstr(it, "p", RP_WS_PATH_MAX)) ||
                !(why = rp_ws_jstr(it, "why", 64)))
                BAD("skipped entry", i);
            m->skipped[i].path = strdup(s);
            m->skipped[i].why = strdup(why);
            m->nskipped = ++i;
            if (!m->skipped[i - 1].path || !m->skipped[i - 1].why) {
                err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                              "out of memory");
                goto out;
            }
        }
    }
#undef BAD
    *out = m;
    m = NULL;
out:
    cJSON_Delete(root);
    rp_ws_manifest_destroy(m);
    return err;
}

/* Append n decompressed bytes to the manifest's JSON (capped at
 * RP_WS_MANIFEST_MAX). */
static rp_err_t rp_ws_manifest_append(rp_buf_t *json, const void *p, size_t n,
                                      char *errstr, size_t errstr_size)
{
    if (rp_buf_append(json, p, n) != RP_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "workspace manifest over %d bytes", RP_WS_MANIFEST_MAX);
    return RP_OK;
}

rp_err_t rp_ws_manifest_parse(const void *zst, size_t len,
                              rp_ws_manifest_t **out, char *errstr,
                              size_t errstr_size)
{
    ZSTD_DCtx *dz = NULL;
    rp_buf_t json;
    rp_err_t err = RP_OK;
    ZSTD_inBuffer in = {zst, len, 0};
    char tmp[64 * 1024];
    size_t r = 1;

    if (!out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "no output");
    *out = NULL;
    if (!zst || len == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "workspace manifest: empty");
    rp_buf_init(&json, RP_WS_MANIFEST_MAX);
    if (!(dz = ZSTD_createDCtx())) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* One frame, streamed into a capped buffer: a frame header that lies
     * about its size cannot make us allocate more than the cap. */
    while (in.pos < in.size && r != 0) {
        ZSTD_outBuffer o = {tmp, sizeof(tmp), 0};
        r = ZSTD_decompressStream(dz, &o, &in);
        if (ZSTD_isError(r)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "workspace manifest: zstd: %s",
                          ZSTD_getErrorName(r));
            goto out;
        }
        if ((err = rp_ws_manifest_append(&json, tmp, o.pos, errstr,
                                         errstr_size)))
            goto out;
        if (r != 0 && o.pos < o.size && in.pos == in.size)
            break;
    }
    /* Flush what is left of the frame (output may be pending). */
    while (r != 0) {
        ZSTD_outBuffer o = {tmp, sizeof(tmp), 0};
        r = ZSTD_decompressStream(dz, &o, &in);
        if (ZSTD_isError(r) || o.pos == 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                          "workspace manifest: truncated zstd frame");
            goto out;
        }
        if ((err = rp_ws_manifest_append(&json, tmp, o.pos, errstr,
                                         errstr_size)))
            goto out;
    }
    if (in.pos != in.size) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "workspace manifest: bytes after the zstd frame");
        goto out;
    }
    err = rp_ws_manifest_from_json(json.data ? json.data : "", json.len, out,
                                   errstr, errstr_size);
out:
    ZSTD_freeDCtx(dz);
    rp_buf_free(&json);
    return err;
}

rp_err_t rp_ws_manifest_load(rp_state_t *st, const char *key,
                             rp_ws_manifest_t **out, char *errstr,
                             size_t errstr_size)
{
    rp_buf_t b;
    rp_err_t err;

    if (!out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "no output");
    *out = NULL;
    rp_buf_init(&b, RP_WS_MANIFEST_OBJ_MAX);
    err = rp_state_get(st, key, &b, NULL, errstr, errstr_size);
    if (err == RP_OK)
        err = rp_ws_manifest_parse(b.data, b.len, out, errstr, errstr_size);
    else if (err == RP_ERR_TOO_LARGE)
        err = rp_errf(errstr, errstr_size, err,
                      "workspace manifest %s over %d bytes", key,
                      RP_WS_MANIFEST_OBJ_MAX);
    rp_buf_free(&b);
    return err;
}

rp_err_t rp_ws_limits_from_env(rp_ws_limits_t *out, char *errstr,
                               size_t errstr_size)
{
    static const char *const names[2] = {"RUNPOOL_WORKSPACE_MAX_BYTES",
                                         "RUNPOOL_WORKSPACE_MAX_FILES"};
    uint64_t *dst[2] = {&out->max_bytes, &out->max_files};

    out->max_bytes = RP_WS_MAX_BYTES_DEFAULT;
    out->max_files = RP_WS_MAX_FILES_DEFAULT;
    for (int i = 0; i < 2; i++) {
        const char *s = getenv(names[i]);
        char *end;
        unsigned long long v;

        if (!s || !*s)
            continue;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || s[0] < '0' || s[0] > '9' || v == 0 ||
            (i == 1 && v > RP_WS_ENTRIES_MAX))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "%s: want a number 1..%llu, got \"%.32s\"",
                           names[i],
                           i ? (unsigned long long)RP_WS_ENTRIES_MAX
                             : (unsigned long long)RP_WS_INT_MAX,
                           s);
        *dst[i] = v;
    }
    return RP_OK;
}

static void rp_ws_limits_eff(const rp_ws_limits_t *lim, uint64_t *bytes,
                             uint64_t *files)
{
    *bytes = lim && lim->max_bytes ? lim->max_bytes : RP_WS_MAX_BYTES_DEFAULT;
    *files = lim && lim->max_files ? lim->max_files : RP_WS_MAX_FILES_DEFAULT;
    if (*files > RP_WS_ENTRIES_MAX)
        *files = RP_WS_ENTRIES_MAX;
}

/* ----------------------------------------------------- chunk I/O */

/* Read a cached chunk object into obj (reset); -1 absent or unreadable. */
static int rp_ws_cache_get(const char *cache_dir, const char *hex,
                           rp_buf_t *obj)
{
    char path[PATH_MAX];
    char tmp[16 * 1024];
    ssize_t r;
    int fd, rc = 0;

    rp_buf_reset(obj);
    if (snprintf(path, sizeof(path), "%s/%s", cache_dir, hex) >=
        (int)sizeof(path))
        return -1;
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return -1;
    while ((r = read(fd, tmp, sizeof(tmp))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        if (rp_buf_append(obj, tmp, (size_t)r) != RP_OK) {
            rc = -1;
            break;
        }
    }
    /* Used now: the pruner (rp_wscache.h) deletes the oldest mtime first.
     * Best effort: a chunk not touched is only pruned sooner. */
    if (rc == 0 && futimens(fd, NULL) != 0) {
    }
    close(fd);
    return rc;
}

/* Temp names of cache writes: unique per process and call (two fetch
 * threads may cache the same chunk at once). */
static unsigned rp_ws_tmp_seq;

/* Best effort: a cache that cannot be written only costs a download. */
static void rp_ws_cache_put(const char *cache_dir, const char *hex,
                            const void *data, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    const char *p = data;
    int fd, ok = 1;

    if (snprintf(path, sizeof(path), "%s/%s", cache_dir, hex) >=
            (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.%u.tmp", cache_dir, hex,
                 (long)getpid(),
                 __atomic_fetch_add(&rp_ws_tmp_seq, 1, __ATOMIC_RELAXED)) >=
            (int)sizeof(tmp))
        return;
    if (access(path, F_OK) == 0)
        return;
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                   0600)) < 0)
        return;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ok = 0;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

/* What reading chunks needs: buffers for one chunk at a time. */
typedef struct rp_ws_fetch {
    rp_state_t *st;
    const rp_ws_manifest_t *m;
    const char *cache_dir;
    ZSTD_DCtx *dz;
    rp_buf_t obj;  /* the compressed object */
    uint8_t *raw;  /* RP_CDC_MAX: the chunk */
    rp_ws_stats_t *stats;
} rp_ws_fetch_t;

static rp_err_t rp_ws_fetch_init(rp_ws_fetch_t *f, rp_state_t *st,
                                 const rp_ws_manifest_t *m,
                                 const char *cache_dir, rp_ws_stats_t *stats,
                                 char *errstr, size_t errstr_size)
{
    memset(f, 0, sizeof(*f));
    f->st = st;
    f->m = m;
    f->cache_dir = cache_dir;
    f->stats = stats;
    rp_buf_init(&f->obj, RP_WS_CHUNK_OBJ_MAX);
    f->dz = ZSTD_createDCtx();
    f->raw = malloc(RP_CDC_MAX);
    if (!f->dz || !f->raw)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    /* Here, not in the check: a missing libcrypto is not a corrupt chunk. */
    return rp_sha256_load(errstr, errstr_size);
}

static void rp_ws_fetch_free(rp_ws_fetch_t *f)
{
    ZSTD_freeDCtx(f->dz);
    free(f->raw);
    rp_buf_free(&f->obj);
}

/* f->obj holds an object; decompress into f->raw and check it is chunk c.
 * 0 ok, -1 not. */
static int rp_ws_chunk_check(rp_ws_fetch_t *f, const rp_ws_chunk_t *c)
{
    uint8_t h[32];
    size_t n;

    n = ZSTD_decompressDCtx(f->dz, f->raw, c->n, f->obj.data, f->obj.len);
    if (ZSTD_isError(n) || n != c->n)
        return -1;
    if (rp_ws_sha256(f->raw, n, h, NULL, 0) != RP_OK ||
        memcmp(h, c->h, 32) != 0)
        return -1;
    return 0;
}

/* Chunk i of f->m into f->raw (c->n bytes): from the cache when it is
 * there and intact, else from the store (then cached). */
static rp_err_t rp_ws_fetch_chunk(rp_ws_fetch_t *f, size_t i, char *errstr,
                                  size_t errstr_size)
{
    const rp_ws_chunk_t *c = &f->m->chunks[i];
    char hex[65], key[RP_STATE_KEY_MAX + 1];
    rp_err_t err;

    rp_ws_hex(c->h, hex);
    if (f->cache_dir && rp_ws_cache_get(f->cache_dir, hex, &f->obj) == 0 &&
        f->obj.len > 0 && rp_ws_chunk_check(f, c) == 0)
        return RP_OK;
    rp_layout_ws_chunk_key(f->m->session_id, hex, key, sizeof(key));
    err = rp_state_get(f->st, key, &f->obj, NULL, errstr, errstr_size);
    if (err == RP_ERR_TOO_LARGE || err == RP_ERR_NOT_FOUND)
        return rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                       "workspace chunk %s (%zu of %zu) %s", hex, i + 1,
                       f->m->nchunks,
                       err == RP_ERR_NOT_FOUND ? "is missing"
                                               : "is larger than any chunk");
    if (err != RP_OK)
        return err;
    if (f->stats) {
        f->stats->chunks_downloaded++;
        f->stats->bytes_downloaded += f->obj.len;
    }
    if (rp_ws_chunk_check(f, c) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                       "workspace chunk %s (%zu of %zu) is corrupt: its "
                       "bytes do not have that hash and length",
                       hex, i + 1, f->m->nchunks);
    if (f->cache_dir)
        rp_ws_cache_put(f->cache_dir, hex, f->obj.data, f->obj.len);
    return RP_OK;
}

/* p (a tar entry's name) names manifest path want: libarchive writes a
 * directory's name with a trailing '/'. */
static int rp_ws_tar_name_is(const char *p, const char *want)
{
    size_t n;

    if (!p)
        return 0;
    n = strlen(want);
    return strncmp(p, want, n) == 0 &&
           (p[n] == '\0' || (p[n] == '/' && p[n + 1] == '\0'));
}

/* Ends a stream's threads (reader's fetches or writer's uploads): sets
 * *stop under mu, wakes them, joins the nth started, then destroys mu and
 * cv. The stream's owner only, once. */
static void rp_ws_threads_end(pthread_mutex_t *mu, pthread_cond_t *cv,
                              int *stop, pthread_t *th, int nth)
{
    pthread_mutex_lock(mu);
    *stop = 1;
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(mu);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(cv);
    pthread_mutex_destroy(mu);
}

/* libarchive's reader over a manifest's chunks, in order. Chunks are
 * fetched ahead by RP_WS_FETCH_THREADS threads into RP_WS_FETCH_AHEAD slots
 * (each with its own buffers): a restore is one GET per chunk, and over
 * Cloud Storage their latency, not the bandwidth, would set its time.
 * Chunk i uses slot i % RP_WS_FETCH_AHEAD; a thread may fetch chunk i only
 * when i < base + RP_WS_FETCH_AHEAD, base being the oldest chunk whose
 * slot is still in use (lent to libarchive, or next to be returned). */
#define RP_WS_FETCH_THREADS 8
#define RP_WS_FETCH_AHEAD 16

typedef struct rp_ws_slot {
    rp_ws_fetch_t f;  /* its buffers; f.stats = &st */
    rp_ws_stats_t st; /* this fetch's downloads, added by the reader */
    size_t idx;       /* the chunk it holds or is fetching */
    int done;
    rp_err_t err;
    char errstr[512];
} rp_ws_slot_t;

typedef struct rp_ws_rstream {
    rp_ws_fetch_t f; /* sequential mode (nth == 0) */
    const rp_ws_manifest_t *m;
    rp_ws_stats_t *stats;
    size_t next; /* the next chunk to return */
    rp_err_t err;
    char *errstr;
    size_t errstr_size;
    /* prefetch */
    int nth, mu_ok;
    pthread_t th[RP_WS_FETCH_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rp_ws_slot_t *slots;
    size_t claim, base;
    int stop;
} rp_ws_rstream_t;

static void *rp_ws_prefetch_main(void *opaque)
{
    rp_ws_rstream_t *r = opaque;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        rp_ws_slot_t *slot;
        size_t i;
        rp_err_t err;

        while (!r->stop && r->claim < r->m->nchunks &&
               r->claim >= r->base + RP_WS_FETCH_AHEAD)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop || r->claim >= r->m->nchunks)
            break;
        i = r->claim++;
        slot = &r->slots[i % RP_WS_FETCH_AHEAD];
        slot->idx = i;
        slot->done = 0;
        pthread_mutex_unlock(&r->mu);
        memset(&slot->st, 0, sizeof(slot->st));
        slot->errstr[0] = '\0';
        err = rp_ws_fetch_chunk(&slot->f, i, slot->errstr,
                                sizeof(slot->errstr));
        pthread_mutex_lock(&r->mu);
        slot->err = err;
        slot->done = 1;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Set up r over m: threads when there is more than one chunk (falls back
 * to fetching in the reader if none can be started). */
static rp_err_t rp_ws_rstream_init(rp_ws_rstream_t *r, rp_state_t *st,
                                   const rp_ws_manifest_t *m,
                                   const char *cache_dir, rp_ws_stats_t *stats,
                                   char *errstr, size_t errstr_size)
{
    int want = m->nchunks < RP_WS_FETCH_THREADS ? (int)m->nchunks
                                                 : RP_WS_FETCH_THREADS;
    rp_err_t err;

    memset(r, 0, sizeof(*r));
    r->m = m;
    r->stats = stats;
    r->errstr = errstr;
    r->errstr_size = errstr_size;
    if ((err = rp_ws_fetch_init(&r->f, st, m, cache_dir, stats, errstr,
                                errstr_size)))
        return err;
    if (want < 2)
        return RP_OK;
    if (!(r->slots = calloc(RP_WS_FETCH_AHEAD, sizeof(*r->slots))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < RP_WS_FETCH_AHEAD; i++) {
        rp_ws_slot_t *sl = &r->slots[i];
        if ((err = rp_ws_fetch_init(&sl->f, st, m, cache_dir, &sl->st, errstr,
                                    errstr_size)))
            return err;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "mutex");
    if (pthread_cond_init(&r->cv, NULL) != 0) {
        pthread_mutex_destroy(&r->mu);
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "condition");
    }
    r->mu_ok = 1;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&r->th[i], NULL, rp_ws_prefetch_main, r) != 0)
            break;
        r->nth++;
    }
    return RP_OK;
}

static void rp_ws_rstream_free(rp_ws_rstream_t *r)
{
    if (r->mu_ok)
        rp_ws_threads_end(&r->mu, &r->cv, &r->stop, r->th, r->nth);
    for (int i = 0; r->slots && i < RP_WS_FETCH_AHEAD; i++)
        rp_ws_fetch_free(&r->slots[i].f);
    free(r->slots);
    rp_ws_fetch_free(&r->f);
    memset(r, 0, sizeof(*r));
}

static la_ssize_t rp_ws_rstream_read(struct archive *a, void *opaque,
                                     const void **buf)
{
    rp_ws_rstream_t *r = opaque;
    rp_ws_slot_t *slot;
    la_ssize_t n;
    rp_err_t err;

    (void)a;
    if (r->nth == 0) {
        if (r->next >= r->m->nchunks)
            return 0;
        if ((err = rp_ws_fetch_chunk(&r->f, r->next, r->errstr,
                                     r->errstr_size)) != RP_OK) {
            r->err = err;
            return -1;
        }
        *buf = r->f.raw;
        return (la_ssize_t)r->m->chunks[r->next++].n;
    }
    pthread_mutex_lock(&r->mu);
    /* libarchive is done with the chunk it had: its slot is free. */
    r->base = r->next;
    pthread_cond_broadcast(&r->cv);
    if (r->next >= r->m->nchunks) {
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    slot = &r->slots[r->next % RP_WS_FETCH_AHEAD];
    while (!(slot->done && slot->idx == r->next))
        pthread_cond_wait(&r->cv, &r->mu);
    if (slot->err) {
        r->err = slot->err;
        rp_errf(r->errstr, r->errstr_size, slot->err, "%s", slot->errstr);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    if (r->stats) {
        r->stats->chunks_downloaded += slot->st.chunks_downloaded;
        r->stats->bytes_downloaded += slot->st.bytes_downloaded;
    }
    *buf = slot->f.raw;
    n = (la_ssize_t)r->m->chunks[r->next++].n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static rp_err_t rp_ws_rstream_open(rp_ws_rstream_t *r, struct archive **out,
                                   char *errstr, size_t errstr_size)
{
    struct archive *a;
    rp_err_t err;

    *out = NULL;
    if ((err = rp_archive_load(errstr, errstr_size)))
        return err;
    if (!(a = archive_read_new()))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    archive_read_support_format_tar(a);
    if (archive_read_open2(a, r, NULL, rp_ws_rstream_read, NULL, NULL) !=
        ARCHIVE_OK) {
        err = r->err ? r->err
                     : rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                               "workspace stream: %s",
                               archive_error_string(a));
        archive_read_free(a);
        return err;
    }
    *out = a;
    return RP_OK;
}

/* The stream's error: the fetch's when it failed, else libarchive's. */
static rp_err_t rp_ws_rstream_err(rp_ws_rstream_t *r, struct archive *a,
                                  const char *what)
{
    if (r->err)
        return r->err;
    return rp_errf(r->errstr, r->errstr_size, RP_ERR_PROTOCOL,
                   "workspace stream %s: %s", what,
                   archive_error_string(a) ? archive_error_string(a)
                                           : "unreadable");
}

/* The writer: libarchive (pax) -> FastCDC -> sha256 -> upload. New chunks
 * are compressed and written by up to RP_WS_PUT_THREADS threads through
 * RP_WS_PUT_SLOTS slots (a copy of the chunk each), for the same reason
 * restores fetch ahead: one PUT per chunk, latency-bound on Cloud
 * Storage. The chunker's thread only hashes (the manifest needs the
 * order), so a slot is taken only for a chunk the store may lack. */
#define RP_WS_PUT_THREADS 8
#define RP_WS_PUT_SLOTS 16

typedef struct rp_ws_upslot {
    uint8_t *raw; /* RP_CDC_MAX */
    size_t n;
    uint8_t h[32];
    int state; /* 0 free, 1 queued, 2 being written */
} rp_ws_upslot_t;

typedef struct rp_ws_wstream {
    rp_state_t *st;
    const char *session_id;
    const char *cache_dir;
    const rp_ws_manifest_t *prev; /* its chunks are in the store already */
    rp_ws_hset_t have;            /* prev's and this stream's chunks */
    rp_cdc_t *cdc;
    ZSTD_CCtx *cz;  /* sequential mode */
    uint8_t *zbuf;
    rp_ws_chunk_t *chunks;
    size_t nchunks, chunks_cap;
    uint64_t off; /* stream bytes so far */
    rp_ws_stats_t *stats;
    rp_err_t err;
    char *errstr;
    size_t errstr_size;
    struct archive *a;
    struct archive_entry *ent;
    /* uploads */
    int mu_ok, nth, alive, idle, stop; /* nth started (joined), alive */
    pthread_t th[RP_WS_PUT_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rp_ws_upslot_t *up;
    rp_err_t up_err; /* the first failed upload's */
    char up_errstr[512];
} rp_ws_wstream_t;

/* Compress and write one chunk create-only (RP_ERR_EXISTS: those bytes are
 * stored already = success); *zn_out = its compressed size when written
 * (0 when it existed). Any thread. */
static rp_err_t rp_ws_put_chunk(rp_ws_wstream_t *w, ZSTD_CCtx *cz,
                                uint8_t *zbuf, const uint8_t *data,
                                size_t len, const uint8_t h[32],
                                size_t *zn_out, char *errstr,
                                size_t errstr_size)
{
    char hex[65], key[RP_STATE_KEY_MAX + 1];
    size_t zn;
    rp_err_t err;

    *zn_out = 0;
    zn = ZSTD_compressCCtx(cz, zbuf, ZSTD_compressBound(RP_CDC_MAX), data, len,
                           RP_WS_ZSTD_LEVEL);
    if (ZSTD_isError(zn))
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL, "zstd: %s",
                       ZSTD_getErrorName(zn));
    rp_ws_hex(h, hex);
    rp_layout_ws_chunk_key(w->session_id, hex, key, sizeof(key));
    err = rp_state_put(w->st, key, zbuf, zn, 0, NULL, errstr, errstr_size);
    if (err == RP_ERR_EXISTS) {
        if (errstr && errstr_size)
            errstr[0] = '\0';
        return RP_OK;
    }
    if (err != RP_OK)
        return err;
    *zn_out = zn;
    if (w->cache_dir)
        rp_ws_cache_put(w->cache_dir, hex, zbuf, zn);
    return RP_OK;
}

/* Count a chunk rp_ws_put_chunk wrote (zn > 0; 0: it was stored already).
 * With threads, w->mu held. */
static void rp_ws_count_upload(rp_ws_wstream_t *w, size_t zn)
{
    if (zn && w->stats) {
        w->stats->chunks_uploaded++;
        w->stats->bytes_uploaded += zn;
    }
}

static void *rp_ws_upload_main(void *opaque)
{
    rp_ws_wstream_t *w = opaque;
    ZSTD_CCtx *cz = ZSTD_createCCtx();
    uint8_t *zbuf = malloc(ZSTD_compressBound(RP_CDC_MAX));
    char es[512];

    pthread_mutex_lock(&w->mu);
    if (!cz || !zbuf) {
        if (!w->up_err) {
            w->up_err = RP_ERR_NOMEM;
            snprintf(w->up_errstr, sizeof(w->up_errstr), "out of memory");
        }
        w->alive--; /* the others (or the caller) do the work */
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        ZSTD_freeCCtx(cz);
        free(zbuf);
        return NULL;
    }
    for (;;) {
        rp_ws_upslot_t *sl = NULL;
        size_t zn;
        rp_err_t err;

        for (int i = 0; i < RP_WS_PUT_SLOTS; i++)
            if (w->up[i].state == 1) {
                sl = &w->up[i];
                break;
            }
        if (!sl) {
            if (w->stop)
                break;
            w->idle++;
            pthread_cond_wait(&w->cv, &w->mu);
            w->idle--;
            continue;
        }
        sl->state = 2;
        pthread_mutex_unlock(&w->mu);
        es[0] = '\0';
        err = rp_ws_put_chunk(w, cz, zbuf, sl->raw, sl->n, sl->h, &zn, es,
                              sizeof(es));
        pthread_mutex_lock(&w->mu);
        if (err && !w->up_err) {
            w->up_err = err;
            snprintf(w->up_errstr, sizeof(w->up_errstr), "%s", es);
        }
        if (!err)
            rp_ws_count_upload(w, zn);
        sl->state = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    ZSTD_freeCCtx(cz);
    free(zbuf);
    return NULL;
}

/* The first failed upload's error, into the caller's errstr. w->mu held. */
static rp_err_t rp_ws_up_failed(rp_ws_wstream_t *w)
{
    return rp_errf(w->errstr, w->errstr_size, w->up_err, "%s", w->up_errstr);
}

/* Queue one chunk the store may lack; sequential when no thread runs. */
static rp_err_t rp_ws_upload(rp_ws_wstream_t *w, const uint8_t *data,
                             size_t len, const uint8_t h[32])
{
    rp_ws_upslot_t *sl = NULL;
    rp_err_t err = RP_OK;

    if (w->mu_ok) {
        pthread_mutex_lock(&w->mu);
        /* Another thread while none waits idle, up to the maximum. */
        if (w->idle == 0 && w->nth < RP_WS_PUT_THREADS &&
            pthread_create(&w->th[w->nth], NULL, rp_ws_upload_main, w) == 0) {
            w->nth++;
            w->alive++;
        }
        while (!w->up_err && w->alive > 0) {
            for (int i = 0; i < RP_WS_PUT_SLOTS && !sl; i++)
                if (w->up[i].state == 0)
                    sl = &w->up[i];
            if (sl)
                break;
            pthread_cond_wait(&w->cv, &w->mu);
        }
        if (w->up_err) {
            err = rp_ws_up_failed(w);
        } else if (sl) {
            memcpy(sl->raw, data, len);
            sl->n = len;
            memcpy(sl->h, h, 32);
            sl->state = 1;
            pthread_cond_broadcast(&w->cv);
        }
        pthread_mutex_unlock(&w->mu);
        if (err || sl)
            return err;
    }
    {
        size_t zn;
        err = rp_ws_put_chunk(w, w->cz, w->zbuf, data, len, h, &zn, w->errstr,
                              w->errstr_size);
        if (!err)
            rp_ws_count_upload(w, zn);
    }
    return err;
}

/* Wait until every queued chunk is written; the first error if one was
 * not. */
static rp_err_t rp_ws_upload_drain(rp_ws_wstream_t *w)
{
    rp_err_t err = RP_OK;

    if (!w->mu_ok)
        return RP_OK;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        int busy = 0;
        for (int i = 0; i < RP_WS_PUT_SLOTS; i++)
            busy |= w->up[i].state != 0;
        if (!busy || w->alive == 0)
            break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    if (w->up_err)
        err = rp_ws_up_failed(w);
    else
        for (int i = 0; i < RP_WS_PUT_SLOTS; i++)
            if (w->up[i].state != 0) /* every thread failed to start */
                err = rp_errf(w->errstr, w->errstr_size, RP_ERR_NOMEM,
                              "workspace upload threads failed");
    pthread_mutex_unlock(&w->mu);
    return err;
}

static rp_err_t rp_ws_wstream_emit(void *opaque, const uint8_t *data,
                                   size_t len)
{
    rp_ws_wstream_t *w = opaque;
    rp_ws_chunk_t *c;
    rp_err_t err;

    if (w->nchunks == RP_WS_CHUNKS_MAX)
        return rp_errf(w->errstr, w->errstr_size, RP_ERR_TOO_LARGE,
                       "workspace stream over %d chunks", RP_WS_CHUNKS_MAX);
    if (w->nchunks == w->chunks_cap) {
        size_t cap = w->chunks_cap ? 2 * w->chunks_cap : 256;
        rp_ws_chunk_t *v = realloc(w->chunks, cap * sizeof(*v));
        if (!v)
            return rp_errf(w->errstr, w->errstr_size, RP_ERR_NOMEM,
                           "out of memory");
        w->chunks = v;
        w->chunks_cap = cap;
    }
    c = &w->chunks[w->nchunks];
    c->n = (uint32_t)len;
    c->off = w->nchunks ? w->chunks[w->nchunks - 1].off +
                              w->chunks[w->nchunks - 1].n
                        : 0;
    if ((err = rp_ws_sha256(data, len, c->h, w->errstr, w->errstr_size)))
        return err;
    w->nchunks++;
    if (w->stats)
        w->stats->chunks++;
    if (rp_ws_hset_has(&w->have, c->h))
        return RP_OK; /* stored before, or earlier in this stream */
    /* Added before it is written: the same bytes later in the stream are
     * not queued twice (the manifest is written only once all are). */
    if (rp_ws_hset_add(&w->have, c->h) != 0)
        return rp_errf(w->errstr, w->errstr_size, RP_ERR_NOMEM,
                       "out of memory");
    return rp_ws_upload(w, data, len, c->h);
}

static la_ssize_t rp_ws_wstream_write(struct archive *a, void *opaque,
                                      const void *buf, size_t len)
{
    rp_ws_wstream_t *w = opaque;
    rp_err_t err;

    (void)a;
    if ((err = rp_cdc_push(w->cdc, buf, len)) != RP_OK) {
        w->err = err;
        return -1;
    }
    w->off += len;
    return (la_ssize_t)len;
}

static void rp_ws_wstream_free(rp_ws_wstream_t *w)
{
    if (w->mu_ok)
        rp_ws_threads_end(&w->mu, &w->cv, &w->stop, w->th, w->nth);
    for (int i = 0; w->up && i < RP_WS_PUT_SLOTS; i++)
        free(w->up[i].raw);
    free(w->up);
    if (w->a)
        archive_write_free(w->a);
    if (w->ent) /* NULL also when libarchive did not load */
        archive_entry_free(w->ent);
    rp_cdc_destroy(w->cdc);
    ZSTD_freeCCtx(w->cz);
    free(w->zbuf);
    free(w->chunks);
    rp_ws_hset_free(&w->have);
}

static rp_err_t rp_ws_wstream_open(rp_ws_wstream_t *w, rp_state_t *st,
                                   const char *session_id,
                                   const rp_ws_manifest_t *prev,
                                   const char *cache_dir, rp_ws_stats_t *stats,
                                   char *errstr, size_t errstr_size)
{
    rp_err_t err;

    memset(w, 0, sizeof(*w));
    w->st = st;
    w->session_id = session_id;
    w->cache_dir = cache_dir;
    w->prev = prev;
    w->stats = stats;
    w->errstr = errstr;
    w->errstr_size = errstr_size;
    if ((err = rp_archive_load(errstr, errstr_size)))
        return err;
    if (!(w->cdc = rp_cdc_new(rp_ws_wstream_emit, w)) ||
        !(w->cz = ZSTD_createCCtx()) ||
        !(w->zbuf = malloc(ZSTD_compressBound(RP_CDC_MAX))) ||
        !(w->ent = archive_entry_new()) || !(w->a = archive_write_new()))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    /* Upload slots; without them (or threads) chunks go up one by one. */
    if ((w->up = calloc(RP_WS_PUT_SLOTS, sizeof(*w->up)))) {
        int ok = 1;
        for (int i = 0; i < RP_WS_PUT_SLOTS; i++)
            ok &= (w->up[i].raw = malloc(RP_CDC_MAX)) != NULL;
        if (ok && pthread_mutex_init(&w->mu, NULL) == 0) {
            if (pthread_cond_init(&w->cv, NULL) == 0)
                w->mu_ok = 1;
            else
                pthread_mutex_destroy(&w->mu);
        }
    }
    /* prev's chunks are in the store (prev is current, so complete). */
    if (prev && prev->session_id[0] && strcmp(prev->session_id, session_id) == 0)
        for (size_t i = 0; i < prev->nchunks; i++)
            if (rp_ws_hset_add(&w->have, prev->chunks[i].h) != 0)
                return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                               "out of memory");
    /* Full pax, not pax_restricted: restricted drops mtime's nanoseconds
     * unless some other field needs an extended header. No blocking: every
     * byte reaches the callback at once, so the offset after a header is
     * where the file's data starts; no padding after the end marker.
     * hdrcharset=BINARY: names go in as the bytes they are (UTF-8, checked
     * by the walk) with no locale conversion, which in the C locale fails
     * for anything not ASCII; the reader then gives the same bytes back
     * through archive_entry_pathname(). */
    if (archive_write_set_format_pax(w->a) != ARCHIVE_OK ||
        archive_write_set_format_option(w->a, "pax", "hdrcharset",
                                        "BINARY") != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
        archive_write_open2(w->a, w, NULL, rp_ws_wstream_write, NULL, NULL) !=
            ARCHIVE_OK)
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                       "libarchive: %s", archive_error_string(w->a));
    return RP_OK;
}

static rp_err_t rp_ws_wstream_fail(rp_ws_wstream_t *w, const char *what)
{
    if (w->err)
        return w->err;
    return rp_errf(w->errstr, w->errstr_size, RP_ERR_INTERNAL,
                   "workspace stream %s: %s", what,
                   archive_error_string(w->a) ? archive_error_string(w->a)
                                              : "failed");
}

/* Write x's header; sets x->offset. */
static rp_err_t rp_ws_wstream_header(rp_ws_wstream_t *w, rp_ws_item_t *x)
{
    struct archive_entry *e = w->ent;
    int64_t sec = x->mtime_ns / 1000000000, nsec = x->mtime_ns % 1000000000;

    if (nsec < 0) {
        nsec += 1000000000;
        sec--;
    }
    archive_entry_clear(e);
    archive_entry_set_pathname(e, x->path);
    archive_entry_set_perm(e, x->mode & 07777);
    archive_entry_set_mtime(e, (time_t)sec, (long)nsec);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    switch (x->type) {
    case 'f':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)x->size);
        break;
    case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_size(e, 0);
        break;
    default:
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, x->link);
        archive_entry_set_size(e, 0);
        break;
    }
    if (archive_write_header(w->a, e) != ARCHIVE_OK)
        return rp_ws_wstream_fail(w, "header");
    x->offset = x->type == 'f' ? w->off : 0;
    return RP_OK;
}

static rp_err_t rp_ws_wstream_data(rp_ws_wstream_t *w, const void *p,
                                   size_t n)
{
    if (n && archive_write_data(w->a, p, n) != (la_ssize_t)n)
        return rp_ws_wstream_fail(w, "data");
    return RP_OK;
}

static rp_err_t rp_ws_wstream_close(rp_ws_wstream_t *w)
{
    rp_err_t err;

    if (archive_write_close(w->a) != ARCHIVE_OK)
        return rp_ws_wstream_fail(w, "end");
    if ((err = rp_cdc_finish(w->cdc)) != RP_OK)
        return err;
    return rp_ws_upload_drain(w);
}

/* Write the manifest create-only and parse it back as *out. */
static rp_err_t rp_ws_commit(rp_state_t *st, const char *session_id,
                             const char *execution_id, rp_ws_items_t *it,
                             rp_ws_wstream_t *w, rp_ws_manifest_t **out,
                             char *errstr, size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX + 1];
    void *z = NULL;
    size_t zn = 0;
    rp_err_t err;

    rp_layout_ws_manifest_key(session_id, execution_id, key, sizeof(key));
    if ((err = rp_ws_manifest_write(session_id, execution_id, it, w->chunks,
                                    w->nchunks, w->off, &z, &zn, errstr,
                                    errstr_size)))
        goto out;
    if ((err = rp_state_put(st, key, z, zn, 0, NULL, errstr, errstr_size))) {
        if (err == RP_ERR_EXISTS)
            rp_errf(errstr, errstr_size, err,
                    "workspace manifest %s exists already (this execution "
                    "saved before)", key);
        goto out;
    }
    if (w->stats) {
        w->stats->bytes_uploaded += zn;
        w->stats->stream_bytes = w->off;
    }
    err = rp_ws_manifest_parse(z, zn, out, errstr, errstr_size);
out:
    free(z);
    return err;
}

/* ------------------------------------------------------------- save */

/* Walk dir into it (lstat only, no file read), sorted. Limits checked as
 * it goes; RP_ERR_TOO_LARGE names the one hit. */
static rp_err_t rp_ws_walk(const char *dir, uint64_t max_bytes,
                           uint64_t max_files, rp_ws_items_t *it,
                           rp_ws_stats_t *stats, char *errstr,
                           size_t errstr_size)
{
    uint64_t bytes = 0;
    size_t next = 0; /* items[next..] not yet listed, if directories */
    int root = 1;
    rp_err_t err = RP_OK;

    while (root || next < it->n) {
        char path[PATH_MAX];
        const char *rel = root ? "" : it->v[next].path;
        DIR *d;
        struct dirent *de;
        int fd;

        if (!root && it->v[next].type != 'd') {
            next++;
            continue;
        }
        if (snprintf(path, sizeof(path), "%s%s%s", dir, root ? "" : "/", rel) >=
            (int)sizeof(path)) {
            if (root)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "workspace path too long");
            if (rp_ws_items_skip(it, rel, "path_too_long"))
                goto nomem;
            next += !root;
            root = 0;
            continue;
        }
        /* The root may be a symlink (the caller names it); nothing below
         * it is followed. */
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                            (root ? 0 : O_NOFOLLOW));
        if (fd < 0 || !(d = fdopendir(fd))) {
            if (fd >= 0)
                close(fd);
            if (root)
                return rp_errf(errstr, errstr_size, RP_ERR_IO,
                               "workspace %s: %s", dir, strerror(errno));
            if (rp_ws_items_skip(it, rel, "unreadable"))
                goto nomem;
            next++;
            continue;
        }
        while ((errno = 0, de = readdir(d))) {
            rp_ws_item_t x = {0};
            struct stat sb;
            size_t rl = strlen(rel), nl = strlen(de->d_name);
            char *p;

            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if (!(p = malloc(rl + 1 + nl + 1))) {
                closedir(d);
                goto nomem;
            }
            snprintf(p, rl + 1 + nl + 1, "%s%s%s", rel, rl ? "/" : "",
                     de->d_name);
            if (rl + 1 + nl > RP_WS_PATH_MAX || nl > RP_WS_NAME_MAX) {
                err = rp_ws_items_skip(it, p, "path_too_long") ? RP_ERR_NOMEM
                                                                : RP_OK;
                free(p);
                if (err)
                    break;
                continue;
            }
            if (!rp_utf8_valid(p, strlen(p))) {
                err = rp_ws_items_skip(it, p, "name_not_utf8") ? RP_ERR_NOMEM
                                                                : RP_OK;
                free(p);
                if (err)
                    break;
                continue;
            }
            if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
                err = rp_ws_items_skip(it, p, "unreadable") ? RP_ERR_NOMEM
                                                             : RP_OK;
                free(p);
                if (err)
                    break;
                continue;
            }
            x.path = p;
            x.mode = (uint32_t)(sb.st_mode & 07777);
            x.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 +
                         sb.st_mtim.tv_nsec;
            x.old = -1;
            if (S_ISREG(sb.st_mode)) {
                x.type = 'f';
                x.size = (uint64_t)sb.st_size;
            } else if (S_ISDIR(sb.st_mode)) {
                x.type = 'd';
            } else if (S_ISLNK(sb.st_mode)) {
                char target[RP_WS_LINK_MAX + 1];
                ssize_t n = readlinkat(dirfd(d), de->d_name, target,
                                       sizeof(target));
                const char *why = NULL;

                if (n <= 0)
                    why = "unreadable";
                else if ((size_t)n > RP_WS_LINK_MAX)
                    why = "link_too_long";
                else if (!rp_utf8_valid(target, (size_t)n) ||
                         memchr(target, '\0', (size_t)n))
                    why = "link_not_utf8";
                if (why) {
                    err = rp_ws_items_skip(it, p, why) ? RP_ERR_NOMEM : RP_OK;
                    free(p);
                    if (err)
                        break;
                    continue;
                }
                target[n] = '\0';
                x.type = 'l';
                x.mode = 0777;
                if (!(x.link = strdup(target))) {
                    free(p);
                    err = RP_ERR_NOMEM;
                    break;
                }
            } else {
                const char *why = S_ISSOCK(sb.st_mode)   ? "socket"
                                  : S_ISFIFO(sb.st_mode) ? "fifo"
                                  : S_ISCHR(sb.st_mode)  ? "char_device"
                                  : S_ISBLK(sb.st_mode)  ? "block_device"
                                                         : "special";
                err = rp_ws_items_skip(it, p, why) ? RP_ERR_NOMEM : RP_OK;
                free(p);
                if (err)
                    break;
                continue;
            }
            bytes += x.size;
            if (rp_ws_items_push(it, &x)) {
                err = RP_ERR_NOMEM;
                break;
            }
            if (it->n > max_files || bytes > max_bytes) {
                closedir(d);
                if (stats) {
                    stats->limit = it->n > max_files ? RP_WS_LIMIT_FILES
                                                     : RP_WS_LIMIT_BYTES;
                    stats->files = it->n;
                    stats->bytes = bytes;
                }
                if (it->n > max_files)
                    return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                                   "workspace has more than %" PRIu64
                                   " files (RUNPOOL_WORKSPACE_MAX_FILES): "
                                   "not saved",
                                   max_files);
                return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                               "workspace is over %" PRIu64
                               " bytes (RUNPOOL_WORKSPACE_MAX_BYTES): not "
                               "saved",
                               max_bytes);
            }
        }
        closedir(d);
        if (err == RP_ERR_NOMEM)
            goto nomem;
        if (err)
            return err;
        next += !root;
        root = 0;
    }
    if (it->n > 1)
        qsort(it->v, it->n, sizeof(*it->v), rp_ws_item_cmp);
    if (stats) {
        stats->files = it->n;
        stats->bytes = bytes;
    }
    return RP_OK;
nomem:
    return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
}

/* 1 when the walk equals prev's entries (the unchanged fast path). */
static int rp_ws_same(const rp_ws_items_t *it, const rp_ws_manifest_t *prev)
{
    if (!prev || prev->nentries != it->n)
        return 0;
    for (size_t i = 0; i < it->n; i++) {
        const rp_ws_item_t *x = &it->v[i];
        const rp_ws_entry_t *e = &prev->entries[i];

        if (x->type != e->type || strcmp(x->path, e->path) != 0)
            return 0;
        /* A symlink is its target: Linux gives it no mode of its own, and
         * not every file system keeps its mtime. */
        if (x->type == 'l') {
            if (strcmp(x->link, e->link) != 0)
                return 0;
            continue;
        }
        if (x->mode != e->mode || x->mtime_ns != e->mtime_ns ||
            (x->type == 'f' && x->size != e->size))
            return 0;
    }
    return 1;
}

/* Open file x of the walk for reading; -1 when it is gone, unreadable or
 * no longer a regular file (then it is skipped). */
static int rp_ws_open_file(const char *dir, const rp_ws_item_t *x)
{
    char path[PATH_MAX];
    struct stat sb;
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s", dir, x->path) >=
        (int)sizeof(path))
        return -1;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Stream file x: size from the walk, so the limits hold even if it grew;
 * a file that shrank meanwhile is padded with zeros (it was being written
 * while saved). */
static rp_err_t rp_ws_stream_file(rp_ws_wstream_t *w, int fd,
                                  rp_ws_item_t *x, uint8_t *buf)
{
    uint64_t left = x->size;
    rp_err_t err;

    if ((err = rp_ws_wstream_header(w, x)))
        return err;
    while (left > 0) {
        size_t want = left < RP_WS_IO_BLOCK ? (size_t)left : RP_WS_IO_BLOCK;
        ssize_t r = read(fd, buf, want);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return rp_errf(w->errstr, w->errstr_size, RP_ERR_IO,
                           "reading %s: %s", x->path, strerror(errno));
        if (r == 0) { /* shrank: pad */
            memset(buf, 0, want);
            r = (ssize_t)want;
        }
        if ((err = rp_ws_wstream_data(w, buf, (size_t)r)))
            return err;
        left -= (uint64_t)r;
    }
    return RP_OK;
}

rp_err_t rp_ws_save(rp_state_t *st, const char *session_id,
                    const char *execution_id, const char *dir,
                    const rp_ws_manifest_t *prev, const rp_ws_limits_t *lim,
                    const char *cache_dir, rp_ws_manifest_t **out,
                    rp_ws_stats_t *stats, char *errstr, size_t errstr_size)
{
    rp_ws_items_t it = {0};
    rp_ws_wstream_t w;
    rp_ws_stats_t local;
    uint64_t max_bytes, max_files;
    uint8_t *buf = NULL;
    char key[RP_STATE_KEY_MAX + 1];
    int64_t t0;
    size_t kept = 0;
    rp_err_t err;

    memset(&w, 0, sizeof(w));
    if (!stats)
        stats = &local;
    rp_ws_stats_start(stats, &t0);
    if (!out || !st || !dir)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    *out = NULL;
    rp_layout_ws_manifest_key(session_id, execution_id, key, sizeof(key));
    if (!key[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "bad session or execution id for a workspace");
    rp_ws_limits_eff(lim, &max_bytes, &max_files);
    if ((err = rp_ws_walk(dir, max_bytes, max_files, &it, stats, errstr,
                          errstr_size)))
        goto out;
    stats->skipped = (size_t)it.skip_total;
    if (rp_ws_same(&it, prev)) {
        stats->unchanged = 1;
        stats->stream_bytes = prev->stream_bytes;
        stats->chunks = prev->nchunks;
        goto out;
    }
    if ((err = rp_ws_wstream_open(&w, st, session_id, prev, cache_dir, stats,
                                  errstr, errstr_size)))
        goto out;
    if (!(buf = malloc(RP_WS_IO_BLOCK))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < it.n; i++) {
        rp_ws_item_t *x = &it.v[i];

        if (x->type == 'f') {
            int fd = rp_ws_open_file(dir, x);

            if (fd < 0) { /* gone or unreadable: leave it out, say so */
                if (rp_ws_items_skip(&it, x->path, "unreadable")) {
                    err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                                  "out of memory");
                    goto out;
                }
                free(x->path);
                free(x->link);
                continue;
            }
            err = rp_ws_stream_file(&w, fd, x, buf);
            close(fd);
        } else {
            err = rp_ws_wstream_header(&w, x);
        }
        if (err)
            goto out;
        it.v[kept++] = *x;
    }
    it.n = kept;
    stats->files = it.n;
    stats->skipped = (size_t)it.skip_total;
    stats->bytes = 0;
    for (size_t i = 0; i < it.n; i++)
        stats->bytes += it.v[i].size;
    if ((err = rp_ws_wstream_close(&w)))
        goto out;
    err = rp_ws_commit(st, session_id, execution_id, &it, &w, out, errstr,
                       errstr_size);
out:
    free(buf);
    rp_ws_wstream_free(&w);
    rp_ws_items_free(&it);
    rp_ws_stats_end(stats, t0);
    return err;
}

/* ---------------------------------------------------------- restore */

rp_err_t rp_ws_restore(rp_state_t *st, const rp_ws_manifest_t *m,
                       const char *dir, const char *cache_dir,
                       rp_ws_stats_t *stats, char *errstr,
                       size_t errstr_size)
{
    rp_ws_rstream_t r;
    rp_ws_stats_t local;
    struct archive *ar = NULL, *dw = NULL;
    struct archive_entry *ent;
    char *real = NULL, full[PATH_MAX];
    size_t k = 0;
    int64_t t0;
    int rc;
    rp_err_t err = RP_OK;

    memset(&r, 0, sizeof(r));
    if (!stats)
        stats = &local;
    rp_ws_stats_start(stats, &t0);
    if (!st || !m || !dir)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    /* libarchive refuses to write through any symlink on the way, the
     * directory's own path included: resolve that first. */
    if (!(real = realpath(dir, NULL))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "workspace %s: %s", dir,
                      strerror(errno));
        goto out;
    }
    if (m->nentries == 0)
        goto out;
    if ((err = rp_ws_rstream_init(&r, st, m, cache_dir, stats, errstr,
                                  errstr_size)))
        goto out;
    if ((err = rp_ws_rstream_open(&r, &ar, errstr, errstr_size)))
        goto out;
    if (!(dw = archive_write_disk_new())) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* No owners (ARCHIVE_EXTRACT_OWNER unset): files belong to whoever
     * restores. NOABSOLUTEPATHS cannot be set as every path is prefixed
     * with the absolute dir; the paths are checked below instead. */
    archive_write_disk_set_options(
        dw, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_NO_OVERWRITE);
    while ((rc = archive_read_next_header(ar, &ent)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(ent);
        const rp_ws_entry_t *e = k < m->nentries ? &m->entries[k] : NULL;
        mode_t ft = archive_entry_filetype(ent);
        char t = ft == AE_IFREG ? 'f' : ft == AE_IFDIR ? 'd'
                                    : ft == AE_IFLNK ? 'l' : '?';
        const void *blk;
        size_t blen;
        la_int64_t boff;

        /* The stream must be the manifest's (its chunks are checked by
         * hash; this catches a manifest that lies about the stream). */
        if (!e || !rp_ws_tar_name_is(p, e->path) || t != e->type ||
            archive_entry_hardlink(ent) ||
            (t == 'f' && (uint64_t)archive_entry_size(ent) != e->size)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "workspace stream does not match its manifest at "
                          "entry %zu",
                          k);
            goto out;
        }
        k++;
        if (snprintf(full, sizeof(full), "%s/%s", real, e->path) >=
            (int)sizeof(full)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "workspace path too long: %s", e->path);
            goto out;
        }
        archive_entry_set_pathname(ent, full);
        if (t == 'l')
            archive_entry_set_symlink(ent, e->link);
        if (archive_write_header(dw, ent) != ARCHIVE_OK) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "restoring %s: %s", e->path,
                          archive_error_string(dw));
            goto out;
        }
        while ((rc = archive_read_data_block(ar, &blk, &blen, &boff)) ==
               ARCHIVE_OK) {
            if (archive_write_data_block(dw, blk, blen, boff) != ARCHIVE_OK) {
                err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                              "restoring %s: %s", e->path,
                              archive_error_string(dw));
                goto out;
            }
        }
        if (rc != ARCHIVE_EOF) {
            err = rp_ws_rstream_err(&r, ar, "data");
            goto out;
        }
        if (archive_write_finish_entry(dw) != ARCHIVE_OK) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO, "restoring %s: %s",
                          e->path, archive_error_string(dw));
            goto out;
        }
        if (t == 'f') {
            stats->bytes += e->size;
        }
        stats->files++;
    }
    if (rc != ARCHIVE_EOF) {
        err = rp_ws_rstream_err(&r, ar, "header");
        goto out;
    }
    if (k != m->nentries) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "workspace stream ended after %zu of %zu entries", k,
                      m->nentries);
        goto out;
    }
    /* Directory modes and times are set here, after their contents. */
    if (archive_write_close(dw) != ARCHIVE_OK) {
        err = rp_errf(errstr, errstr_size, RP_ERR_IO, "restoring: %s",
                      archive_error_string(dw));
        goto out;
    }
    stats->stream_bytes = m->stream_bytes;
    stats->chunks = m->nchunks;
out:
    if (ar)
        archive_read_free(ar);
    if (dw)
        archive_write_free(dw);
    rp_ws_rstream_free(&r);
    free(real);
    rp_ws_stats_end(stats, t0);
    return err;
}

/* ------------------------------------------------------------- read */

rp_err_t rp_ws_read(rp_state_t *st, const rp_ws_manifest_t *m,
                    const rp_ws_entry_t *e, uint64_t off, uint64_t len,
                    rp_buf_t *out, rp_ws_stats_t *stats, char *errstr,
                    size_t errstr_size)
{
    rp_ws_fetch_t f;
    rp_ws_stats_t local;
    uint64_t start, end;
    size_t lo, hi;
    int64_t t0;
    rp_err_t err = RP_OK;

    memset(&f, 0, sizeof(f));
    if (!stats)
        stats = &local;
    rp_ws_stats_start(stats, &t0);
    if (!st || !m || !e || !out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    rp_buf_reset(out);
    if (e->type != 'f')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s is not a file",
                       e->path);
    if (off >= e->size || len == 0)
        goto out;
    if (len > e->size - off)
        len = e->size - off;
    if (len > out->max) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "reading %" PRIu64 " bytes of %s: over the cap of %zu",
                      len, e->path, out->max);
        goto out;
    }
    start = e->offset + off;
    end = start + len;
    /* The first chunk that ends after start. */
    lo = 0;
    hi = m->nchunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->chunks[mid].off + m->chunks[mid].n <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if ((err = rp_ws_fetch_init(&f, st, m, NULL, stats, errstr,
                                errstr_size)))
        goto out;
    for (size_t i = lo; i < m->nchunks && m->chunks[i].off < end; i++) {
        const rp_ws_chunk_t *c = &m->chunks[i];
        uint64_t a = start > c->off ? start - c->off : 0;
        uint64_t b = end < c->off + c->n ? end - c->off : c->n;

        if ((err = rp_ws_fetch_chunk(&f, i, errstr, errstr_size)))
            goto out;
        if ((err = rp_buf_append(out, f.raw + a, (size_t)(b - a)))) {
            err = rp_errf(errstr, errstr_size, err, "reading %s: %s", e->path,
                          rp_err_str(err));
            goto out;
        }
    }
    if (out->len != len)
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "workspace stream is shorter than %s", e->path);
out:
    if (err)
        rp_buf_reset(out);
    rp_ws_fetch_free(&f);
    rp_ws_stats_end(stats, t0);
    return err;
}

/* ------------------------------------------------------------- edit */

static size_t rp_ws_items_lower(const rp_ws_items_t *it, const char *path)
{
    size_t lo = 0, hi = it->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(it->v[mid].path, path) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static rp_ws_item_t *rp_ws_items_find(rp_ws_items_t *it, const char *path)
{
    size_t i = rp_ws_items_lower(it, path);
    return i < it->n && strcmp(it->v[i].path, path) == 0 ? &it->v[i] : NULL;
}

/* Insert x in order (takes its strings); -1 no memory. */
static int rp_ws_items_insert(rp_ws_items_t *it, rp_ws_item_t *x)
{
    size_t i = rp_ws_items_lower(it, x->path);

    if (rp_ws_items_push(it, x))
        return -1;
    memmove(&it->v[i + 1], &it->v[i], (it->n - 1 - i) * sizeof(*it->v));
    it->v[i] = *x;
    return 0;
}

static void rp_ws_touch_parent(rp_ws_items_t *it, const char *path,
                               int64_t now_ns)
{
    char parent[RP_WS_PATH_MAX + 1];
    size_t pl = rp_ws_parent_len(path);
    rp_ws_item_t *p;

    if (pl == 0)
        return;
    memcpy(parent, path, pl);
    parent[pl] = '\0';
    if ((p = rp_ws_items_find(it, parent)))
        p->mtime_ns = now_ns;
}

/* Make sure path's parent is a directory (making it and its own parents
 * when parents is set). */
static rp_err_t rp_ws_edit_parents(rp_ws_items_t *it, const char *path,
                                   int parents, int64_t now_ns, char *errstr,
                                   size_t errstr_size)
{
    char buf[RP_WS_PATH_MAX + 1];
    size_t pl = rp_ws_parent_len(path), i = 0;

    if (pl == 0)
        return RP_OK;
    memcpy(buf, path, pl);
    buf[pl] = '\0';
    /* Each prefix of the parent, from the top. */
    while (i <= pl) {
        rp_ws_item_t *p;
        char save;

        while (i < pl && buf[i] != '/')
            i++;
        save = buf[i];
        buf[i] = '\0';
        if ((p = rp_ws_items_find(it, buf))) {
            if (p->type != 'd')
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "%s: %s is not a directory", path, buf);
        } else if (!parents) {
            return rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                           "%s: no directory %s", path, buf);
        } else {
            rp_ws_item_t x = {0};
            x.type = 'd';
            x.mode = 0755;
            x.mtime_ns = now_ns;
            x.old = -1;
            if (!(x.path = strdup(buf)) || rp_ws_items_insert(it, &x))
                return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                               "out of memory");
            rp_ws_touch_parent(it, buf, now_ns);
        }
        buf[i] = save;
        i++;
    }
    return RP_OK;
}

static rp_err_t rp_ws_edit_apply(rp_ws_items_t *it, const rp_ws_edit_t *ed,
                                 int64_t now_ns, char *errstr,
                                 size_t errstr_size)
{
    char norm[RP_WS_PATH_MAX + 1];
    rp_ws_item_t *cur;
    rp_err_t err;

    if ((err = rp_ws_path_check(ed->path, norm, sizeof(norm), errstr,
                                errstr_size)))
        return err;
    if (!norm[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "the workspace root cannot be edited");
    cur = rp_ws_items_find(it, norm);
    switch (ed->kind) {
    case RP_WS_PUT:
        if (ed->len && !ed->data)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "no data");
        if (cur && cur->type != 'f')
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s is a %s",
                           norm,
                           cur->type == 'd' ? "directory" : "symlink");
        if (!cur) {
            rp_ws_item_t x = {0};
            if ((err = rp_ws_edit_parents(it, norm, ed->parents, now_ns,
                                          errstr, errstr_size)))
                return err;
            x.type = 'f';
            x.mode = ed->mode ? (ed->mode & 07777) : 0644;
            x.old = -1;
            if (!(x.path = strdup(norm)) || rp_ws_items_insert(it, &x))
                return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                               "out of memory");
            cur = rp_ws_items_find(it, norm);
            rp_ws_touch_parent(it, norm, now_ns);
        } else if (ed->mode) {
            cur->mode = ed->mode & 07777;
        }
        cur->size = ed->len;
        cur->data = ed->data;
        cur->old = -1;
        cur->mtime_ns = now_ns;
        return RP_OK;
    case RP_WS_MKDIR:
        if (cur) {
            if (cur->type == 'd' && ed->parents)
                return RP_OK;
            return rp_errf(errstr, errstr_size, RP_ERR_EXISTS,
                           "%s exists already", norm);
        }
        if ((err = rp_ws_edit_parents(it, norm, ed->parents, now_ns, errstr,
                                      errstr_size)))
            return err;
        {
            rp_ws_item_t x = {0};
            x.type = 'd';
            x.mode = ed->mode ? (ed->mode & 07777) : 0755;
            x.mtime_ns = now_ns;
            x.old = -1;
            if (!(x.path = strdup(norm)) || rp_ws_items_insert(it, &x))
                return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                               "out of memory");
        }
        rp_ws_touch_parent(it, norm, now_ns);
        return RP_OK;
    case RP_WS_DELETE: {
        size_t i, j, nl = strlen(norm);
        if (!cur)
            return rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                           "%s does not exist", norm);
        i = (size_t)(cur - it->v);
        free(cur->path);
        free(cur->link);
        memmove(&it->v[i], &it->v[i + 1], (it->n - i - 1) * sizeof(*it->v));
        it->n--;
        /* Everything below it: contiguous in sorted order, after the
         * paths that share its name as a prefix ("a-b" < "a/b"). */
        norm[nl] = '/';
        norm[nl + 1] = '\0';
        i = rp_ws_items_lower(it, norm);
        for (j = i; j < it->n && strncmp(it->v[j].path, norm, nl + 1) == 0;
             j++) {
            free(it->v[j].path);
            free(it->v[j].link);
        }
        memmove(&it->v[i], &it->v[j], (it->n - j) * sizeof(*it->v));
        it->n -= j - i;
        norm[nl] = '\0';
        rp_ws_touch_parent(it, norm, now_ns);
        return RP_OK;
    }
    }
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "unknown edit");
}

rp_err_t rp_ws_edit(rp_state_t *st, const rp_ws_manifest_t *m,
                    const rp_ws_edit_t *edits, size_t n,
                    const char *session_id, const char *execution_id,
                    const rp_ws_limits_t *lim, rp_ws_manifest_t **out,
                    rp_ws_stats_t *stats, char *errstr, size_t errstr_size)
{
    rp_ws_items_t it = {0};
    rp_ws_wstream_t w;
    rp_ws_rstream_t r;
    rp_ws_stats_t local;
    struct archive *ar = NULL;
    struct archive_entry *ent;
    uint64_t max_bytes, max_files, bytes = 0;
    char key[RP_STATE_KEY_MAX + 1];
    size_t old_next = 0; /* index of the old stream's next header */
    int64_t t0, now_ns = rp_time_wall_ms() * 1000000;
    rp_err_t err = RP_OK;

    memset(&w, 0, sizeof(w));
    memset(&r, 0, sizeof(r));
    if (!stats)
        stats = &local;
    rp_ws_stats_start(stats, &t0);
    if (!st || !out || (n && !edits))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    *out = NULL;
    rp_layout_ws_manifest_key(session_id, execution_id, key, sizeof(key));
    if (!key[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "bad session or execution id for a workspace");
    if (m && strcmp(m->session_id, session_id) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "the manifest is another session's");
    rp_ws_limits_eff(lim, &max_bytes, &max_files);
    for (size_t i = 0; m && i < m->nentries; i++) {
        const rp_ws_entry_t *e = &m->entries[i];
        rp_ws_item_t x = {0};

        x.type = e->type;
        x.mode = e->mode;
        x.size = e->size;
        x.mtime_ns = e->mtime_ns;
        x.old = (long)i;
        if (!(x.path = strdup(e->path)) ||
            (e->link && !(x.link = strdup(e->link))) ||
            rp_ws_items_push(&it, &x)) {
            free(x.path);
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((err = rp_ws_edit_apply(&it, &edits[i], now_ns, errstr,
                                    errstr_size)))
            goto out;
    for (size_t i = 0; i < it.n; i++)
        bytes += it.v[i].size;
    stats->files = it.n;
    stats->bytes = bytes;
    if (it.n > max_files || bytes > max_bytes) {
        stats->limit = it.n > max_files ? RP_WS_LIMIT_FILES : RP_WS_LIMIT_BYTES;
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      it.n > max_files
                          ? "workspace would have more than %" PRIu64
                            " files (RUNPOOL_WORKSPACE_MAX_FILES)"
                          : "workspace would be over %" PRIu64
                            " bytes (RUNPOOL_WORKSPACE_MAX_BYTES)",
                      it.n > max_files ? max_files : max_bytes);
        goto out;
    }
    if ((err = rp_ws_wstream_open(&w, st, session_id, m, NULL, stats, errstr,
                                  errstr_size)))
        goto out;
    if (m && m->nentries) {
        if ((err = rp_ws_rstream_init(&r, st, m, NULL, stats, errstr,
                                      errstr_size)) ||
            (err = rp_ws_rstream_open(&r, &ar, errstr, errstr_size)))
            goto out;
    }
    for (size_t i = 0; i < it.n; i++) {
        rp_ws_item_t *x = &it.v[i];

        if (x->old < 0) {
            if ((err = rp_ws_wstream_header(&w, x)) ||
                (x->type == 'f' &&
                 (err = rp_ws_wstream_data(&w, x->data, x->size))))
                goto out;
            continue;
        }
        /* Old entries come in stream order: move forward to it. */
        for (;;) {
            const char *p;
            int rc = archive_read_next_header(ar, &ent);

            if (rc != ARCHIVE_OK) {
                err = rc == ARCHIVE_EOF
                          ? rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                                    "workspace stream ended early")
                          : rp_ws_rstream_err(&r, ar, "header");
                goto out;
            }
            p = archive_entry_pathname(ent);
            if (old_next >= m->nentries ||
                !rp_ws_tar_name_is(p, m->entries[old_next].path)) {
                err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                              "workspace stream does not match its manifest "
                              "at entry %zu",
                              old_next);
                goto out;
            }
            if (old_next++ == (size_t)x->old)
                break;
        }
        if ((err = rp_ws_wstream_header(&w, x)))
            goto out;
        if (x->type == 'f') {
            const void *blk;
            size_t blen;
            la_int64_t boff;
            uint64_t got = 0;
            int rc;

            while ((rc = archive_read_data_block(ar, &blk, &blen, &boff)) ==
                   ARCHIVE_OK) {
                /* tar has no holes: blocks come in order. */
                if ((uint64_t)boff != got || got + blen > x->size) {
                    err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                                  "workspace stream: bad data of %s",
                                  x->path);
                    goto out;
                }
                if ((err = rp_ws_wstream_data(&w, blk, blen)))
                    goto out;
                got += blen;
            }
            if (rc != ARCHIVE_EOF) {
                err = rp_ws_rstream_err(&r, ar, "data");
                goto out;
            }
            if (got != x->size) {
                err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                              "workspace stream: %s is short", x->path);
                goto out;
            }
        }
    }
    if ((err = rp_ws_wstream_close(&w)))
        goto out;
    err = rp_ws_commit(st, session_id, execution_id, &it, &w, out, errstr,
                       errstr_size);
out:
    if (ar)
        archive_read_free(ar);
    rp_ws_rstream_free(&r);
    rp_ws_wstream_free(&w);
    rp_ws_items_free(&it);
    rp_ws_stats_end(stats, t0);
    return err;
}

/* --------------------------------------------------------------- gc */

rp_err_t rp_ws_gc(rp_state_t *st, const rp_ws_manifest_t *old,
                  const rp_ws_manifest_t *cur, char *errstr,
                  size_t errstr_size)
{
    return rp_ws_gc_until(st, old, cur, NULL, NULL, errstr, errstr_size);
}

rp_err_t rp_ws_gc_until(rp_state_t *st, const rp_ws_manifest_t *old,
                        const rp_ws_manifest_t *cur, rp_ws_stop_fn *stop,
                        void *arg, char *errstr, size_t errstr_size)
{
    rp_ws_hset_t keep = {0}, done = {0};
    char hex[65], key[RP_STATE_KEY_MAX + 1];
    rp_err_t err = RP_OK;

    if (!st || !old)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad arguments");
    if (cur && strcmp(cur->key, old->key) == 0)
        return RP_OK;
    if (cur && strcmp(cur->session_id, old->session_id) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "gc across sessions");
    for (size_t i = 0; cur && i < cur->nchunks; i++)
        if (rp_ws_hset_add(&keep, cur->chunks[i].h)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
    for (size_t i = 0; i < old->nchunks; i++) {
        const uint8_t *h = old->chunks[i].h;

        if (rp_ws_hset_has(&keep, h) || rp_ws_hset_has(&done, h))
            continue;
        if (stop && stop(arg)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_CANCELLED,
                          "stopped: the rest of %s is left in place", old->key);
            goto out;
        }
        rp_ws_hex(h, hex);
        rp_layout_ws_chunk_key(old->session_id, hex, key, sizeof(key));
        err = rp_state_delete(st, key, RP_STATE_ANY, errstr, errstr_size);
        if (err != RP_OK && err != RP_ERR_NOT_FOUND)
            goto out;
        err = RP_OK;
        if (rp_ws_hset_add(&done, h)) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    /* The manifest last: an interrupted gc can be run again. */
    if (stop && stop(arg)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_CANCELLED,
                      "stopped: %s is left in place", old->key);
        goto out;
    }
    err = rp_state_delete(st, old->key, RP_STATE_ANY, errstr, errstr_size);
    if (err == RP_ERR_NOT_FOUND)
        err = RP_OK;
out:
    if (err == RP_OK && errstr && errstr_size)
        errstr[0] = '\0';
    rp_ws_hset_free(&keep);
    rp_ws_hset_free(&done);
    return err;
}
