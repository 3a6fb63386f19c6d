#include "rp_wscache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RP_WSCACHE_NAME_MAX 80 /* a sha256 hex name is 64 */

typedef struct rp_wscache_ent {
    int64_t mtime_ns;
    uint64_t size;
    char name[RP_WSCACHE_NAME_MAX];
} rp_wscache_ent_t;

static int rp_wscache_cmp(const void *a, const void *b)
{
    const rp_wscache_ent_t *x = a, *y = b;

    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

rp_err_t rp_wscache_prune(const char *dir, uint64_t max_bytes, time_t now,
                          rp_wscache_stats_t *stats, char *errstr,
                          size_t errstr_size)
{
    rp_wscache_stats_t s = {0};
    rp_wscache_ent_t *ents = NULL;
    size_t n = 0, cap = 0;
    rp_err_t err = RP_OK;
    struct dirent *de;
    DIR *d = NULL;
    int dfd;

    if (!(d = opendir(dir))) {
        if (errno != ENOENT)
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "chunk cache %s: %s", dir, strerror(errno));
        goto out;
    }
    dfd = dirfd(d);
    while ((de = readdir(d))) {
        struct stat st;
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' && (len == 1 || (len == 2 && de->d_name[1] == '.')))
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (de->d_name[0] == '.') {
            /* A temp file: a write in progress, or one that died. */
            if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0 &&
                now - st.st_mtime > RP_WSCACHE_TMP_MAX_AGE_S &&
                unlinkat(dfd, de->d_name, 0) == 0) {
                s.removed_files++;
                s.removed_bytes += (uint64_t)st.st_size;
            }
            continue;
        }
        s.files++;
        s.bytes += (uint64_t)st.st_size;
        if (len >= RP_WSCACHE_NAME_MAX || n >= RP_WSCACHE_SCAN_MAX)
            continue; /* counted, not a candidate this pass */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            rp_wscache_ent_t *p = realloc(ents, ncap * sizeof(*p));

            if (!p) {
                err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                              "chunk cache %s: out of memory", dir);
                goto out;
            }
            ents = p;
            cap = ncap;
        }
        ents[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
                           st.st_mtim.tv_nsec;
        ents[n].size = (uint64_t)st.st_size;
        memcpy(ents[n].name, de->d_name, len + 1);
        n++;
    }
    s.kept_bytes = s.bytes;
    if (s.bytes <= max_bytes)
        goto out;
    qsort(ents, n, sizeof(*ents), rp_wscache_cmp);
    for (size_t i = 0; i < n && s.kept_bytes > max_bytes; i++) {
        if (unlinkat(dfd, ents[i].name, 0) != 0)
            continue;
        s.kept_bytes -= ents[i].size;
        s.removed_files++;
        s.removed_bytes += ents[i].size;
    }
out:
    if (d)
        closedir(d);
    free(ents);
    if (stats)
        *stats = s;
    return err;
}
