/* rp_state_file — objects as files under one directory.
 *
 * The rules that make this safe without a server (docs/state-store.md):
 *  - A value is written to a temp file beside its final name and only then
 *    linked (create-only) or renamed (everything else) into place, so
 *    readers see the old file or the new one, never a half-written one.
 *  - The version is the file's mtime in ns, stamped on the temp file before
 *    it goes live: one fstat() on a reader's open fd gives the version of
 *    exactly the bytes it reads.
 *  - Writers of one directory serialise on flock() of that directory, taken
 *    on a fresh fd per operation, so threads and processes exclude each
 *    other alike. The compare, the stamp and the rename all happen under
 *    it, so versions of a key grow in the order writes land.
 *  - Temp names start with '+', which no key contains: they can never
 *    collide with an object and listing skips them.
 */
#include "rp_state_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RP_STATE_FILE_TMP_NAME_MAX 64 /* "+tmp.<pid>.<seq>.<rand>" */
#define RP_STATE_FILE_TMP_TRIES 8     /* O_EXCL name clashes before giving up */
#define RP_STATE_FILE_READ_CHUNK (64 * 1024)
#define RP_STATE_FILE_STRERR_MAX 128
/* The worker's and executors' own: sessions' env may hold secrets, and
 * with --run-as the commands run as another user (rp_runas.h). */
#define RP_STATE_FILE_DIR_MODE 0700
#define RP_STATE_FILE_FILE_MODE 0600
#define RP_STATE_FILE_NS 1000000000ULL

typedef struct rp_state_file {
    char root[RP_STATE_URL_MAX]; /* absolute, no trailing '/' (unless "/") */
    int rootfd;                  /* every path below is relative to it */
    bool fsync;
} rp_state_file_t;

/* Makes temp names unique between threads of one process; pid and random
 * bits separate processes (also in other pid namespaces on a shared disk). */
static atomic_uint_fast64_t rp_state_file_tmp_seq;

static rp_err_t rp_state_file_errno_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return RP_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return RP_ERR_PERMISSION;
    case ENOMEM:
        return RP_ERR_NOMEM;
    case ENAMETOOLONG: /* a key segment over the filesystem's NAME_MAX */
    case ELOOP:
        return RP_ERR_INVALID;
    default: /* ENOSPC, EIO, EDQUOT, EMFILE, ...: may pass */
        return RP_ERR_IO;
    }
}

/* Report a failed system call on root/rel with errno e. */
static rp_err_t rp_state_file_fail(const rp_state_file_t *fs, const char *what,
                                   const char *rel, int e, char *errstr,
                                   size_t errstr_size)
{
    char eb[RP_STATE_FILE_STRERR_MAX];

    return rp_errf(errstr, errstr_size, rp_state_file_errno_err(e),
                   "state store: %s %s/%s: %s", what, fs->root, rel,
                   strerror_r(e, eb, sizeof(eb)));
}

static uint64_t rp_state_file_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec < 0)
        return 1;
    return (uint64_t)ts.tv_sec * RP_STATE_FILE_NS + (uint64_t)ts.tv_nsec;
}

/* The version of a stat'ed object. Clamped into [1, RP_STATE_ANY) so that a
 * hand-set odd mtime can never read as "absent" (0) or "any". */
static uint64_t rp_state_file_version(const struct stat *sb)
{
    uint64_t sec, v;

    if (sb->st_mtim.tv_sec < 0)
        return 1;
    sec = (uint64_t)sb->st_mtim.tv_sec;
    if (sec >= (RP_STATE_ANY - 1) / RP_STATE_FILE_NS - 1)
        return RP_STATE_ANY - 1;
    v = sec * RP_STATE_FILE_NS + (uint64_t)sb->st_mtim.tv_nsec;
    return v ? v : 1;
}

/* Split key into its directory part (copied into dir, "" at top level) and
 * its last segment (pointer into key). */
static const char *rp_state_file_split(const char *key, char *dir,
                                       size_t dir_size)
{
    const char *slash = strrchr(key, '/');
    size_t n = slash ? (size_t)(slash - key) : 0;

    if (n >= dir_size) /* cannot happen for valid keys; keep it safe anyway */
        n = 0;
    memcpy(dir, key, n);
    dir[n] = '\0';
    return slash ? slash + 1 : key;
}

/* fsync a directory named relative to the root ("" = the root). */
static rp_err_t rp_state_file_sync_dir(const rp_state_file_t *fs,
                                       const char *dir, char *errstr,
                                       size_t errstr_size)
{
    rp_err_t err = RP_OK;
    int fd = openat(fs->rootfd, dir[0] ? dir : ".",
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return rp_state_file_fail(fs, "open", dir, errno, errstr, errstr_size);
    if (fsync(fd) != 0)
        err = rp_state_file_fail(fs, "fsync", dir, errno, errstr, errstr_size);
    close(fd);
    return err;
}

/* mkdir -p of dir below the root. A new directory's entry is made durable
 * (fsync of its parent) when fsync is on, or a crash could lose the object
 * written into it even though that object's own fsync succeeded. */
static rp_err_t rp_state_file_mkdirs(const rp_state_file_t *fs,
                                     const char *dir, char *errstr,
                                     size_t errstr_size)
{
    char path[RP_STATE_KEY_MAX + 1];
    size_t len = strlen(dir), i;
    rp_err_t err;

    if (len >= sizeof(path))
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                       "state store: directory name too long");
    memcpy(path, dir, len + 1);
    for (i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdirat(fs->rootfd, path, RP_STATE_FILE_DIR_MODE) == 0) {
            if (fs->fsync) {
                char *up = strrchr(path, '/');

                if (up)
                    *up = '\0';
                err = rp_state_file_sync_dir(fs, up ? path : "", errstr,
                                             errstr_size);
                if (err != RP_OK)
                    return err;
                if (up)
                    *up = '/';
            }
        } else if (errno != EEXIST) {
            if (errno == ENOTDIR)
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               "state store: cannot create directory %s/%s: "
                               "an object is stored under part of that name",
                               fs->root, path);
            return rp_state_file_fail(fs, "mkdir", path, errno, errstr,
                                      errstr_size);
        }
        path[i] = dir[i];
    }
    return RP_OK;
}

/* Open the directory holding an object (creating it when create is set).
 * Each call gives a fresh open file description, so flock() on it is this
 * operation's own lock even against other threads of this process. */
static rp_err_t rp_state_file_open_dir(const rp_state_file_t *fs,
                                       const char *dir, bool create,
                                       int *fd_out, char *errstr,
                                       size_t errstr_size)
{
    const char *rel = dir[0] ? dir : ".";
    int fd = openat(fs->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rp_err_t err;

    if (fd < 0 && errno == ENOENT && create) {
        err = rp_state_file_mkdirs(fs, dir, errstr, errstr_size);
        if (err != RP_OK)
            return err;
        fd = openat(fs->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0) {
        if (errno == ENOTDIR && create)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state store: %s/%s: an object is stored under "
                           "part of that name",
                           fs->root, dir);
        return rp_state_file_fail(fs, "open directory", rel, errno, errstr,
                                  errstr_size);
    }
    *fd_out = fd;
    return RP_OK;
}

static rp_err_t rp_state_file_lock(const rp_state_file_t *fs, int dirfd,
                                   const char *dir, char *errstr,
                                   size_t errstr_size)
{
    while (flock(dirfd, LOCK_EX) != 0) {
        if (errno != EINTR)
            return rp_state_file_fail(fs, "lock", dir[0] ? dir : ".", errno,
                                      errstr, errstr_size);
    }
    return RP_OK;
}

/* Release explicitly rather than by close(): a child forked by another
 * thread may still share this fd until it execs, and would keep the lock. */
static void rp_state_file_unlock(int dirfd)
{
    flock(dirfd, LOCK_UN);
}

/* Live version of name in dirfd, 0 when absent. Anything that is not a
 * regular file (a directory of deeper keys, a symlink) blocks the name. */
static rp_err_t rp_state_file_current(const rp_state_file_t *fs, int dirfd,
                                      const char *name, const char *key,
                                      uint64_t *version, char *errstr,
                                      size_t errstr_size)
{
    struct stat sb;

    if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            *version = 0;
            return RP_OK;
        }
        return rp_state_file_fail(fs, "stat", key, errno, errstr, errstr_size);
    }
    if (!S_ISREG(sb.st_mode))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state store: %s/%s is not a regular file (a directory "
                       "of deeper keys or something placed by hand)",
                       fs->root, key);
    *version = rp_state_file_version(&sb);
    return RP_OK;
}

static rp_err_t rp_state_file_make_tmp(const rp_state_file_t *fs, int dirfd,
                                       const char *dir, char *name,
                                       size_t name_size, int *fd_out,
                                       char *errstr, size_t errstr_size)
{
    int tries, fd;

    for (tries = 0; tries < RP_STATE_FILE_TMP_TRIES; tries++) {
        uint64_t seq = atomic_fetch_add(&rp_state_file_tmp_seq, 1);
        uint32_t rnd;

        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
            rnd = (uint32_t)rp_state_file_now_ns();
        snprintf(name, name_size, "+tmp.%ld.%" PRIu64 ".%08" PRIx32,
                 (long)getpid(), seq, rnd);
        fd = openat(dirfd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                    RP_STATE_FILE_FILE_MODE);
        if (fd >= 0) {
            *fd_out = fd;
            return RP_OK;
        }
        if (errno != EEXIST)
            break;
    }
    return rp_state_file_fail(fs, "create temp file in",
                              dir[0] ? dir : ".", errno, errstr, errstr_size);
}

static rp_err_t rp_state_file_write_all(const rp_state_file_t *fs, int fd,
                                        const char *key, const void *data,
                                        size_t len, char *errstr,
                                        size_t errstr_size)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return rp_state_file_fail(fs, "write temp file for", key, errno,
                                      errstr, errstr_size);
        }
        p += n;
        len -= (size_t)n;
    }
    return RP_OK;
}

/* Give the temp file its version as mtime, then read it back: a filesystem
 * that rounds timestamps would silently give two writes the same version. */
static rp_err_t rp_state_file_stamp(const rp_state_file_t *fs, int fd,
                                    const char *key, uint64_t version,
                                    char *errstr, size_t errstr_size)
{
    struct timespec ts[2];
    struct stat sb;

    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT; /* leave atime alone */
    ts[1].tv_sec = (time_t)(version / RP_STATE_FILE_NS);
    ts[1].tv_nsec = (long)(version % RP_STATE_FILE_NS);
    if (futimens(fd, ts) != 0)
        return rp_state_file_fail(fs, "set version (mtime) of temp file for",
                                  key, errno, errstr, errstr_size);
    if (fstat(fd, &sb) != 0)
        return rp_state_file_fail(fs, "stat temp file for", key, errno,
                                  errstr, errstr_size);
    if (rp_state_file_version(&sb) != version)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state store: the filesystem under %s does not keep "
                       "nanosecond mtimes (wrote %" PRIu64 ", read %" PRIu64
                       "); the file backend needs them for versions",
                       fs->root, version, rp_state_file_version(&sb));
    return RP_OK;
}

/* Next version after cur (0 = absent): later than cur and than any
 * earlier write of this key, as long as the wall clock does not step back. */
static uint64_t rp_state_file_next_version(uint64_t cur)
{
    uint64_t now = rp_state_file_now_ns();

    return now > cur ? now : cur + 1;
}

/* Take dir's lock and read name's live version (0 = absent) into *cur.
 * *locked is set once the lock is held: the caller unlocks, also when
 * reading the version fails. Any thread. */
static rp_err_t rp_state_file_lock_current(const rp_state_file_t *fs,
                                           int dirfd, const char *dir,
                                           const char *name, const char *key,
                                           bool *locked, uint64_t *cur,
                                           char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_state_file_lock(fs, dirfd, dir, errstr, errstr_size);

    if (err != RP_OK)
        return err;
    *locked = true;
    return rp_state_file_current(fs, dirfd, name, key, cur, errstr,
                                 errstr_size);
}

/* RP_ERR_CONFLICT unless if_version is RP_STATE_ANY or the live version
 * cur (0 = absent). */
static rp_err_t rp_state_file_match(const char *key, uint64_t if_version,
                                    uint64_t cur, char *errstr,
                                    size_t errstr_size)
{
    if (if_version == RP_STATE_ANY || cur == if_version)
        return RP_OK;
    if (cur == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_CONFLICT,
                       "state key '%s': expected version %" PRIu64
                       ", object is absent",
                       key, if_version);
    return rp_errf(errstr, errstr_size, RP_ERR_CONFLICT,
                   "state key '%s': expected version %" PRIu64
                   ", live version is %" PRIu64,
                   key, if_version, cur);
}

static rp_err_t rp_state_file_put(rp_state_t *st, const char *key,
                                  const void *data, size_t len,
                                  uint64_t if_version, uint64_t *new_version,
                                  char *errstr, size_t errstr_size)
{
    const rp_state_file_t *fs = st->impl;
    char dir[RP_STATE_KEY_MAX + 1];
    char tmp[RP_STATE_FILE_TMP_NAME_MAX];
    const char *name = rp_state_file_split(key, dir, sizeof(dir));
    int dirfd = -1, tmpfd = -1;
    bool have_tmp = false, locked = false;
    uint64_t cur, ver;
    rp_err_t err;

    err = rp_state_file_open_dir(fs, dir, true, &dirfd, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    err = rp_state_file_make_tmp(fs, dirfd, dir, tmp, sizeof(tmp), &tmpfd,
                                 errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    have_tmp = true;
    err = rp_state_file_write_all(fs, tmpfd, key, data, len, errstr,
                                  errstr_size);
    if (err != RP_OK)
        goto out;

    err = rp_state_file_lock_current(fs, dirfd, dir, name, key, &locked,
                                     &cur, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    if (if_version == 0 && cur != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_EXISTS,
                      "state key '%s' already exists (version %" PRIu64 ")",
                      key, cur);
        goto out;
    }
    if (if_version != 0 &&
        (err = rp_state_file_match(key, if_version, cur, errstr,
                                   errstr_size)) != RP_OK)
        goto out;
    if (cur >= RP_STATE_ANY - 2) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "state key '%s': version space exhausted", key);
        goto out;
    }
    ver = rp_state_file_next_version(cur);
    err = rp_state_file_stamp(fs, tmpfd, key, ver, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    /* One fsync covers both the data and the mtime just set. */
    if (fs->fsync && fsync(tmpfd) != 0) {
        err = rp_state_file_fail(fs, "fsync temp file for", key, errno, errstr,
                                 errstr_size);
        goto out;
    }

    if (if_version == 0) {
        /* link() refuses to replace an existing name: create-only stays
         * atomic even against writers that do not take our lock. */
        if (linkat(dirfd, tmp, dirfd, name, 0) != 0) {
            if (errno == EEXIST)
                err = rp_errf(errstr, errstr_size, RP_ERR_EXISTS,
                              "state key '%s' already exists", key);
            else
                err = rp_state_file_fail(fs, "link", key, errno, errstr,
                                         errstr_size);
            goto out;
        }
    } else {
        if (renameat(dirfd, tmp, dirfd, name) != 0) {
            err = rp_state_file_fail(fs, "rename into", key, errno, errstr,
                                     errstr_size);
            goto out;
        }
        have_tmp = false;
    }
    /* The new object is visible now; if its directory entry cannot be
     * made durable the caller must still hear about it. */
    if (fs->fsync && fsync(dirfd) != 0) {
        err = rp_state_file_fail(fs, "fsync directory of", key, errno, errstr,
                                 errstr_size);
        goto out;
    }
    if (new_version)
        *new_version = ver;
    err = RP_OK;
out:
    if (have_tmp)
        unlinkat(dirfd, tmp, 0);
    if (locked)
        rp_state_file_unlock(dirfd);
    if (tmpfd >= 0)
        close(tmpfd);
    if (dirfd >= 0)
        close(dirfd);
    return err;
}

static rp_err_t rp_state_file_get(rp_state_t *st, const char *key,
                                  rp_buf_t *out, uint64_t *version,
                                  char *errstr, size_t errstr_size)
{
    const rp_state_file_t *fs = st->impl;
    char *chunk = NULL;
    struct stat sb;
    int fd;
    rp_err_t err;

    rp_buf_reset(out);
    /* O_NONBLOCK: a FIFO placed by hand must not hang us; regular files
     * ignore it. */
    fd = openat(fs->rootfd, key,
                O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                           "state key '%s' not found", key);
        if (errno == ELOOP)
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state store: %s/%s is a symlink, not an object",
                           fs->root, key);
        return rp_state_file_fail(fs, "open", key, errno, errstr, errstr_size);
    }
    /* Version and bytes come from the same open inode: they match even if
     * a writer renames a newer file into place right now. */
    if (fstat(fd, &sb) != 0) {
        err = rp_state_file_fail(fs, "stat", key, errno, errstr, errstr_size);
        goto out;
    }
    if (S_ISDIR(sb.st_mode)) { /* only deeper keys live here */
        err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                      "state key '%s' not found", key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "state store: %s/%s is not a regular file", fs->root,
                      key);
        goto out;
    }
    if ((uint64_t)sb.st_size > out->max) {
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "state key '%s' holds %jd bytes, over the %zu allowed",
                      key, (intmax_t)sb.st_size, out->max);
        goto out;
    }
    /* Allocates even for an empty value, so out->data is never NULL. */
    err = rp_buf_append(out, "", 0);
    if (err != RP_OK)
        goto nomem;
    chunk = malloc(RP_STATE_FILE_READ_CHUNK);
    if (!chunk)
        goto nomem;
    for (;;) {
        ssize_t n = read(fd, chunk, RP_STATE_FILE_READ_CHUNK);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = rp_state_file_fail(fs, "read", key, errno, errstr,
                                     errstr_size);
            goto out;
        }
        if (n == 0)
            break;
        err = rp_buf_append(out, chunk, (size_t)n);
        if (err == RP_ERR_TOO_LARGE) { /* grew since fstat: edited by hand */
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          "state key '%s' is over the %zu bytes allowed", key,
                          out->max);
            goto out;
        }
        if (err != RP_OK)
            goto nomem;
    }
    if (version)
        *version = rp_state_file_version(&sb);
    err = RP_OK;
    goto out;
nomem:
    err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                  "out of memory reading state key '%s'", key);
out:
    if (err != RP_OK)
        rp_buf_reset(out);
    free(chunk);
    close(fd);
    return err;
}

static rp_err_t rp_state_file_del(rp_state_t *st, const char *key,
                                  uint64_t if_version, char *errstr,
                                  size_t errstr_size)
{
    const rp_state_file_t *fs = st->impl;
    char dir[RP_STATE_KEY_MAX + 1];
    const char *name = rp_state_file_split(key, dir, sizeof(dir));
    int dirfd = -1;
    bool locked = false;
    uint64_t cur;
    rp_err_t err;

    err = rp_state_file_open_dir(fs, dir, false, &dirfd, errstr, errstr_size);
    if (err == RP_ERR_NOT_FOUND)
        err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                      "state key '%s' not found", key);
    if (err != RP_OK)
        goto out;
    err = rp_state_file_lock_current(fs, dirfd, dir, name, key, &locked,
                                     &cur, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    if (cur == 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                      "state key '%s' not found", key);
        goto out;
    }
    err = rp_state_file_match(key, if_version, cur, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    if (unlinkat(dirfd, name, 0) != 0) {
        err = rp_state_file_fail(fs, "unlink", key, errno, errstr,
                                 errstr_size);
        goto out;
    }
    /* Empty directories stay: removing them would race with writers that
     * have just created or opened them. */
    if (fs->fsync && fsync(dirfd) != 0) {
        err = rp_state_file_fail(fs, "fsync directory of", key, errno, errstr,
                                 errstr_size);
        goto out;
    }
    err = RP_OK;
out:
    if (locked)
        rp_state_file_unlock(dirfd);
    if (dirfd >= 0)
        close(dirfd);
    return err;
}

typedef struct rp_state_file_walk {
    const rp_state_file_t *fs;
    const char *prefix;
    size_t prefix_len;
    rp_state_list_cb *cb;
    void *opaque;
    bool stop;
    char key[RP_STATE_KEY_MAX + 1]; /* key path of the entry being looked at */
    char *errstr;
    size_t errstr_size;
} rp_state_file_walk_t;

/* Can any key below directory key[0..len) start with the prefix? True when
 * "dir/" and the prefix agree on their common length. */
static bool rp_state_file_walk_wanted(const rp_state_file_walk_t *w, size_t len)
{
    size_t n = len < w->prefix_len ? len : w->prefix_len;

    if (memcmp(w->key, w->prefix, n) != 0)
        return false;
    return w->prefix_len <= len || w->prefix[len] == '/';
}

/* Report the objects in dirfd (takes ownership of dirfd), whose key path is
 * w->key[0..len), and recurse into its directories. Depth is bounded by
 * RP_STATE_KEY_MAX: every level adds at least two bytes to the key. */
static rp_err_t rp_state_file_walk_dir(rp_state_file_walk_t *w, int dirfd,
                                       size_t len)
{
    const rp_state_file_t *fs = w->fs;
    rp_err_t err = RP_OK;
    struct dirent *de;
    DIR *d = fdopendir(dirfd);

    if (!d) {
        err = rp_state_file_fail(fs, "open directory", len ? w->key : ".",
                                 errno, w->errstr, w->errstr_size);
        close(dirfd);
        return err;
    }
    while (!w->stop) {
        struct stat sb;
        size_t name_len, key_len;
        int sub;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno != 0) {
                w->key[len] = '\0';
                err = rp_state_file_fail(fs, "read directory",
                                         len ? w->key : ".", errno, w->errstr,
                                         w->errstr_size);
            }
            break;
        }
        /* Skips ".", "..", temp files and anything not made by a key. */
        if (!rp_state_key_valid(de->d_name))
            continue;
        name_len = strlen(de->d_name);
        key_len = len + (len ? 1 : 0) + name_len;
        if (key_len > RP_STATE_KEY_MAX)
            continue;
        if (len)
            w->key[len] = '/';
        memcpy(w->key + key_len - name_len, de->d_name, name_len + 1);

        if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) /* deleted since readdir */
                continue;
            err = rp_state_file_fail(fs, "stat", w->key, errno, w->errstr,
                                     w->errstr_size);
            break;
        }
        if (S_ISREG(sb.st_mode)) {
            if (strncmp(w->key, w->prefix, w->prefix_len) == 0 &&
                w->cb(w->opaque, w->key, rp_state_file_version(&sb)) != 0)
                w->stop = true;
        } else if (S_ISDIR(sb.st_mode) && rp_state_file_walk_wanted(w, key_len)) {
            sub = openat(dirfd, de->d_name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (errno == ENOENT)
                    continue;
                err = rp_state_file_fail(fs, "open directory", w->key, errno,
                                         w->errstr, w->errstr_size);
                break;
            }
            err = rp_state_file_walk_dir(w, sub, key_len);
            if (err != RP_OK)
                break;
        }
    }
    w->key[len] = '\0';
    closedir(d);
    return err;
}

static rp_err_t rp_state_file_list(rp_state_t *st, const char *prefix,
                                   rp_state_list_cb *cb, void *opaque,
                                   char *errstr, size_t errstr_size)
{
    rp_state_file_walk_t *w;
    const char *slash = strrchr(prefix, '/');
    size_t start_len = slash ? (size_t)(slash - prefix) : 0;
    int fd;
    rp_err_t err;

    /* The walk state holds a key-sized path: keep it off small thread
     * stacks. */
    w = calloc(1, sizeof(*w));
    if (!w)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "out of memory listing state keys");
    w->fs = st->impl;
    w->prefix = prefix;
    w->prefix_len = strlen(prefix);
    w->cb = cb;
    w->opaque = opaque;
    w->errstr = errstr;
    w->errstr_size = errstr_size;

    /* Start at the deepest directory the prefix names completely. If that
     * part is not a valid key, no key can start with the prefix. */
    memcpy(w->key, prefix, start_len);
    w->key[start_len] = '\0';
    if (start_len && !rp_state_key_valid(w->key)) {
        err = RP_OK;
        goto out;
    }
    fd = openat(w->fs->rootfd, start_len ? w->key : ".",
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            err = RP_OK; /* nothing stored under that prefix */
        else
            err = rp_state_file_fail(w->fs, "open directory",
                                     start_len ? w->key : ".", errno, errstr,
                                     errstr_size);
        goto out;
    }
    err = rp_state_file_walk_dir(w, fd, start_len);
out:
    free(w);
    return err;
}

/* file:///abs/dir[?fsync=0|1] -> fs->root, fs->fsync. */
static rp_err_t rp_state_file_parse_url(const char *url, rp_state_file_t *fs,
                                        char *errstr, size_t errstr_size)
{
    const char *path, *query;
    size_t path_len;

    if (strncmp(url, "file://", 7) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s' is not a file:// URL", url);
    path = url + 7;
    query = strchr(path, '?');
    path_len = query ? (size_t)(query - path) : strlen(path);
    if (path_len == 0 || path[0] != '/')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s': want file:///absolute/dir (a relative "
                       "path or a host name is not allowed)",
                       url);
    if (memchr(path, '%', path_len) || memchr(path, '#', path_len))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "state URL '%s': percent-encoding and fragments are not "
                       "supported",
                       url);
    while (path_len > 1 && path[path_len - 1] == '/')
        path_len--;
    memcpy(fs->root, path, path_len);
    fs->root[path_len] = '\0';

    fs->fsync = true;
    while (query) {
        const char *opt = query + 1;
        const char *end = strchr(opt, '&');
        size_t opt_len = end ? (size_t)(end - opt) : strlen(opt);

        if (opt_len == 7 && strncmp(opt, "fsync=1", 7) == 0)
            fs->fsync = true;
        else if (opt_len == 7 && strncmp(opt, "fsync=0", 7) == 0)
            fs->fsync = false;
        else
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "state URL '%s': unknown option '%.*s' (supported: "
                           "fsync=0, fsync=1)",
                           url, (int)opt_len, opt);
        query = end;
    }
    return RP_OK;
}

/* mkdir -p of the absolute root; new directories made durable like any
 * other when fsync is on. */
static rp_err_t rp_state_file_make_root(const rp_state_file_t *fs,
                                        char *errstr, size_t errstr_size)
{
    char path[RP_STATE_URL_MAX];
    size_t len = strlen(fs->root), i;
    char eb[RP_STATE_FILE_STRERR_MAX];

    memcpy(path, fs->root, len + 1);
    for (i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, RP_STATE_FILE_DIR_MODE) == 0) {
            if (fs->fsync) {
                char *up = strrchr(path, '/');
                int fd, e = 0;

                *up = '\0';
                fd = open(up == path ? "/" : path,
                          O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0 || fsync(fd) != 0)
                    e = errno;
                if (fd >= 0)
                    close(fd);
                if (e)
                    return rp_errf(errstr, errstr_size,
                                   rp_state_file_errno_err(e),
                                   "state store: cannot sync directory %s: %s",
                                   up == path ? "/" : path,
                                   strerror_r(e, eb, sizeof(eb)));
                *up = '/';
            }
        } else if (errno != EEXIST) {
            int e = errno;

            return rp_errf(errstr, errstr_size, rp_state_file_errno_err(e),
                           "state store: cannot create directory %s: %s",
                           path, strerror_r(e, eb, sizeof(eb)));
        }
        path[i] = fs->root[i];
    }
    return RP_OK;
}

static rp_err_t rp_state_file_open(rp_state_t *st, const char *url,
                                   const rp_state_opts_t *opts, char *errstr,
                                   size_t errstr_size)
{
    char eb[RP_STATE_FILE_STRERR_MAX];
    rp_state_file_t *fs;
    rp_err_t err;

    (void)opts; /* nothing to choose: no credentials on this machine */
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "out of memory opening state store");
    fs->rootfd = -1;
    err = rp_state_file_parse_url(url, fs, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    err = rp_state_file_make_root(fs, errstr, errstr_size);
    if (err != RP_OK)
        goto out;
    fs->rootfd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->rootfd < 0) {
        int e = errno;

        err = rp_errf(errstr, errstr_size,
                      e == ENOTDIR ? RP_ERR_INVALID : rp_state_file_errno_err(e),
                      "state store: cannot open directory %s: %s", fs->root,
                      strerror_r(e, eb, sizeof(eb)));
        goto out;
    }
    st->impl = fs;
    err = RP_OK;
out:
    if (err != RP_OK) {
        if (fs->rootfd >= 0)
            close(fs->rootfd);
        free(fs);
    }
    return err;
}

static void rp_state_file_close(rp_state_t *st)
{
    rp_state_file_t *fs = st->impl;

    if (!fs)
        return;
    close(fs->rootfd);
    free(fs);
    st->impl = NULL;
}

const rp_state_ops_t rp_state_file_ops = {
    .scheme = "file",
    .open = rp_state_file_open,
    .get = rp_state_file_get,
    .put = rp_state_file_put,
    .del = rp_state_file_del,
    .list = rp_state_file_list,
    .close = rp_state_file_close,
};
