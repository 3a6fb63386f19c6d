/* rp_exec_ws — the executor's half of a session's workspace (see
 * rp_exec_ws.h and docs/workspace.md). */
#include "rp_exec_ws.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_log.h"
#include "rp_time.h"
#include "rp_ws.h"

#define RP_EXEC_WS_ERRSTR_MAX 512
/* nftw's descriptors while walking a tree we remove or chown. */
#define RP_EXEC_WS_NFTW_FDS 32

typedef enum { RP_EXEC_WS_SNAPSHOT, RP_EXEC_WS_MOUNT } rp_exec_ws_mode_t;

struct rp_exec_ws {
    rp_exec_ws_mode_t mode;
    rp_state_t *st;
    const rp_jobspec_t *spec;
    const rp_session_t *session;
    rp_runas_t run_as;
    char dir[RP_CWD_MAX + RP_ID_MAX + 2];
    rp_ws_manifest_t *prev; /* the restored snapshot; NULL = empty */
    rp_ws_stats_t restore;
    int64_t restore_ms;
    char *cwd; /* a rebased cwd, owned */
};

static rp_err_t rp_exec_ws_mkdir(const char *dir, mode_t mode, char *errstr,
                                 size_t errstr_size)
{
    char path[sizeof(((rp_exec_ws_t *)0)->dir)];
    size_t n = strlen(dir);

    if (n >= sizeof(path))
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "workspace %s: path too long", dir);
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return rp_errf(errstr, errstr_size, RP_ERR_IO, "mkdir %s: %s",
                           path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "mkdir %s: %s", path,
                       strerror(errno));
    return RP_OK;
}

/* nftw callbacks cannot take an argument: the owner to give the tree. */
static rp_runas_t rp_exec_ws_chown_to;

static int rp_exec_ws_chown_one(const char *path, const struct stat *sb,
                                int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (lchown(path, rp_exec_ws_chown_to.uid, rp_exec_ws_chown_to.gid) != 0)
        return -1;
    return 0;
}

/* The restore writes as the executor (root, with RUNPOOL_RUN_AS): the
 * command's user must own what it finds, as it owned what it left. */
static rp_err_t rp_exec_ws_chown_tree(const char *dir, const rp_runas_t *ra,
                                      char *errstr, size_t errstr_size)
{
    if (!ra->set)
        return RP_OK;
    rp_exec_ws_chown_to = *ra;
    if (nftw(dir, rp_exec_ws_chown_one, RP_EXEC_WS_NFTW_FDS, FTW_PHYS) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO,
                       "giving the workspace %s to %u:%u: %s", dir,
                       (unsigned)ra->uid, (unsigned)ra->gid, strerror(errno));
    return RP_OK;
}

static int rp_exec_ws_open_dirs(const char *path, const struct stat *sb,
                                int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_D && (sb->st_mode & 0700) != 0700)
        chmod(path, (sb->st_mode & 07777) | 0700);
    return 0;
}

static int rp_exec_ws_remove_one(const char *path, const struct stat *sb,
                                 int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP ? rmdir(path) : unlink(path))
        return errno == ENOENT ? 0 : -1;
    return 0;
}

/* rm -rf dir: a command may leave directories without write permission,
 * so they are opened up first (pre-order), then removed (post-order). */
static int rp_exec_ws_remove_tree(const char *dir)
{
    nftw(dir, rp_exec_ws_open_dirs, RP_EXEC_WS_NFTW_FDS, FTW_PHYS);
    return nftw(dir, rp_exec_ws_remove_one, RP_EXEC_WS_NFTW_FDS,
                FTW_PHYS | FTW_DEPTH);
}

/* 1 when dir has no entries, 0 when it has, -1 when it cannot be read. */
static int rp_exec_ws_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

rp_err_t rp_exec_ws_begin(rp_state_t *st, const rp_jobspec_t *spec,
                          const rp_session_t *session, const rp_runas_t *run_as,
                          rp_exec_ws_t **out, char *errstr, size_t errstr_size)
{
    const char *v = spec->workspace;
    size_t pl = strlen(RP_JOBENV_WS_MOUNT_PREFIX);
    char es[RP_EXEC_WS_ERRSTR_MAX];
    const char *key = session->workspace.manifest;
    rp_exec_ws_t *ws;
    rp_err_t err = RP_OK;
    int64_t t0;

    *out = NULL;
    if (!v || !v[0] || !strcmp(v, "off"))
        return RP_OK;
    if (!(ws = calloc(1, sizeof(*ws))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    *out = ws;
    ws->st = st;
    ws->spec = spec;
    ws->session = session;
    ws->run_as = *run_as;
    if (!strncmp(v, RP_JOBENV_WS_MOUNT_PREFIX, pl)) {
        /* A shared volume: the files are already there, every run sees
         * them; the session's own directory below it. */
        ws->mode = RP_EXEC_WS_MOUNT;
        if ((size_t)snprintf(ws->dir, sizeof(ws->dir), "%s/%s", v + pl,
                             spec->session_id) >= sizeof(ws->dir))
            return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                           "RUNPOOL_WORKSPACE: path too long");
        if ((err = rp_exec_ws_mkdir(ws->dir, 0700, errstr, errstr_size)))
            return err;
        if (run_as->set && lchown(ws->dir, run_as->uid, run_as->gid) != 0)
            rp_log(RP_LOG_WARN, "workspace_chown_failed", spec->execution_id,
                   spec->session_id, "%s: %s", ws->dir, strerror(errno));
        return RP_OK;
    }
    ws->mode = RP_EXEC_WS_SNAPSHOT;
    snprintf(ws->dir, sizeof(ws->dir), "%s", v);
    if ((err = rp_exec_ws_mkdir(ws->dir, run_as->set ? 0700 : 0755, errstr,
                                errstr_size)))
        return err;
    if (run_as->set && lchown(ws->dir, run_as->uid, run_as->gid) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO,
                       "giving the workspace %s to %u:%u: %s", ws->dir,
                       (unsigned)run_as->uid, (unsigned)run_as->gid,
                       strerror(errno));
    if (!key)
        return RP_OK; /* an empty workspace: nothing to fetch */
    t0 = rp_time_mono_ms();
    if ((err = rp_ws_manifest_load(st, key, &ws->prev, es, sizeof(es))))
        return rp_errf(errstr, errstr_size, err,
                       "loading the workspace snapshot %s: %s", key, es);
    if ((err = rp_ws_restore(st, ws->prev, ws->dir, spec->ws_cache,
                             &ws->restore, es, sizeof(es))))
        return rp_errf(errstr, errstr_size, err,
                       "restoring the workspace %s into %s: %s", key, ws->dir,
                       es);
    if ((err = rp_exec_ws_chown_tree(ws->dir, run_as, errstr, errstr_size)))
        return err;
    ws->restore_ms = rp_time_mono_ms() - t0;
    rp_log(RP_LOG_DEBUG, "workspace_restored", spec->execution_id,
           spec->session_id,
           "%s: %llu bytes in %llu entries, %llu chunk bytes downloaded, %lld ms",
           key, (unsigned long long)ws->restore.bytes,
           (unsigned long long)rp_ws_manifest_count(ws->prev),
           (unsigned long long)ws->restore.bytes_downloaded,
           (long long)ws->restore_ms);
    return RP_OK;
}

const char *rp_exec_ws_dir(const rp_exec_ws_t *ws)
{
    return ws ? ws->dir : NULL;
}

const char *rp_exec_ws_cwd(rp_exec_ws_t *ws, const rp_session_t *session,
                           const char *cwd)
{
    const char *root = session->workspace.root;
    size_t n;

    if (!ws || ws->mode != RP_EXEC_WS_SNAPSHOT || !cwd || !root ||
        !strcmp(root, ws->dir))
        return cwd;
    n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(cwd, root, n) != 0 || (cwd[n] != '\0' && cwd[n] != '/'))
        return cwd; /* outside the workspace: a path of the machine */
    free(ws->cwd);
    if (asprintf(&ws->cwd, "%s%s", ws->dir, cwd + n) < 0) {
        ws->cwd = NULL;
        return cwd;
    }
    if (strlen(ws->cwd) > RP_CWD_MAX) {
        free(ws->cwd);
        ws->cwd = NULL;
        return cwd;
    }
    return ws->cwd;
}

static void rp_exec_ws_fail(rp_result_ws_t *r, const char *code,
                            const char *msg)
{
    r->saved = false;
    r->unchanged = false;
    free(r->manifest);
    r->manifest = NULL;
    r->code = strdup(code);
    r->message = strdup(msg);
}

void rp_exec_ws_end(rp_exec_ws_t *ws, rp_result_t *res)
{
    rp_result_ws_t *r = &res->ws;
    char es[RP_EXEC_WS_ERRSTR_MAX], msg[2 * RP_EXEC_WS_ERRSTR_MAX];
    rp_ws_limits_t lim;
    rp_ws_stats_t st;
    rp_ws_manifest_t *m = NULL;
    rp_err_t err;
    int64_t t0 = rp_time_mono_ms();
    int empty;

    if (!ws || ws->mode != RP_EXEC_WS_SNAPSHOT)
        return;
    memset(&st, 0, sizeof(st));
    rp_result_ws_clear(r);
    r->present = true;
    r->root = strdup(ws->dir);
    r->restore_ms = ws->restore_ms;
    r->bytes_downloaded = ws->restore.bytes_downloaded;
    lim.max_bytes = ws->spec->ws_max_bytes ? ws->spec->ws_max_bytes
                                           : RP_JOBENV_WS_MAX_BYTES_DEFAULT;
    lim.max_files = ws->spec->ws_max_files ? ws->spec->ws_max_files
                                           : RP_JOBENV_WS_MAX_FILES_DEFAULT;
    /* The `true` fast path: an empty workspace that was empty costs one
     * readdir, no store call. */
    empty = rp_exec_ws_empty(ws->dir);
    if (!ws->prev && empty == 1) {
        r->saved = r->unchanged = true;
        goto out;
    }
    err = rp_ws_save(ws->st, ws->spec->session_id, ws->spec->execution_id,
                     ws->dir, ws->prev, &lim, ws->spec->ws_cache, &m, &st, es,
                     sizeof(es));
    r->bytes = st.bytes;
    r->files = st.files;
    r->skipped = st.skipped;
    if (err == RP_ERR_TOO_LARGE && st.limit != RP_WS_LIMIT_NONE) {
        snprintf(msg, sizeof(msg), "the workspace was not saved (the session "
                 "keeps its previous one): %s", es);
        rp_exec_ws_fail(r, st.limit == RP_WS_LIMIT_FILES
                               ? RP_RESULT_WS_TOO_MANY_FILES
                               : RP_RESULT_WS_TOO_LARGE,
                        msg);
    } else if (err != RP_OK) {
        snprintf(msg, sizeof(msg), "the workspace was not saved (the session "
                 "keeps its previous one): %s: %s", rp_err_str(err), es);
        rp_exec_ws_fail(r, RP_RESULT_WS_ERROR, msg);
    } else if (!m) {
        /* Nothing changed: the session keeps the snapshot it has. */
        r->saved = r->unchanged = true;
        if (ws->prev) {
            r->manifest = strdup(rp_ws_manifest_key(ws->prev));
            r->bytes = rp_ws_manifest_bytes(ws->prev);
            r->files = rp_ws_manifest_count(ws->prev);
            r->skipped = rp_ws_manifest_skipped_count(ws->prev);
        }
    } else {
        r->saved = true;
        r->manifest = strdup(rp_ws_manifest_key(m));
        r->bytes = rp_ws_manifest_bytes(m);
        r->files = rp_ws_manifest_count(m);
        r->bytes_uploaded = st.bytes_uploaded;
        r->chunks_uploaded = st.chunks_uploaded;
        for (size_t i = 0; i < rp_ws_manifest_skipped_count(m) &&
                           r->nskipped_paths < RP_RESULT_WS_SKIPPED_MAX;
             i++) {
            const char *p = NULL, *why = NULL;

            rp_ws_manifest_skipped(m, i, &p, &why);
            if (p && (r->skipped_paths[r->nskipped_paths] = strdup(p)))
                r->nskipped_paths++;
        }
    }
    if (r->saved && !r->manifest && (m || ws->prev)) {
        /* strdup failed: a saved report without its key would drop the
         * session's files; say it was not saved instead. */
        rp_exec_ws_fail(r, RP_RESULT_WS_ERROR, "out of memory");
    }
out:
    r->save_ms = rp_time_mono_ms() - t0;
    if (!r->root || (!r->saved && (!r->code || !r->message))) {
        /* Out of memory: no report beats a wrong one (the worker then
         * keeps the session's workspace as it was). */
        rp_result_ws_clear(r);
    }
    rp_log(r->present && !r->saved ? RP_LOG_WARN : RP_LOG_DEBUG,
           "workspace_saved", ws->spec->execution_id, ws->spec->session_id,
           "saved=%s unchanged=%s bytes=%llu files=%llu uploaded=%llu "
           "skipped=%llu save_ms=%lld%s%s",
           r->saved ? "yes" : "no", r->unchanged ? "yes" : "no",
           (unsigned long long)r->bytes, (unsigned long long)r->files,
           (unsigned long long)r->bytes_uploaded,
           (unsigned long long)r->skipped, (long long)r->save_ms,
           r->message ? " " : "", r->message ? r->message : "");
    rp_ws_manifest_destroy(m);
}

void rp_exec_ws_destroy(rp_exec_ws_t *ws)
{
    if (!ws)
        return;
    if (ws->mode == RP_EXEC_WS_SNAPSHOT && ws->spec->ws_scratch &&
        ws->dir[0] && rp_exec_ws_remove_tree(ws->dir) != 0 && errno != ENOENT)
        rp_log(RP_LOG_WARN, "workspace_cleanup_failed",
               ws->spec->execution_id, ws->spec->session_id, "%s: %s",
               ws->dir, strerror(errno));
    rp_ws_manifest_destroy(ws->prev);
    free(ws->cwd);
    free(ws);
}
