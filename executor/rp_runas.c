#include "rp_runas.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool rp_runas_num(const char *s, size_t n, unsigned long *out)
{
    unsigned long v = 0;

    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > RP_RUNAS_ID_MAX)
        return false;
    *out = v;
    return true;
}

rp_err_t rp_runas_parse(const char *s, rp_runas_t *out, char *errstr,
                        size_t errstr_size)
{
    const char *colon;
    unsigned long uid, gid;

    memset(out, 0, sizeof(*out));
    if (!s || !*s)
        return RP_OK;
    colon = strchr(s, ':');
    if (!colon || !rp_runas_num(s, (size_t)(colon - s), &uid) ||
        !rp_runas_num(colon + 1, strlen(colon + 1), &gid))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s '%s': expected UID:GID, two numbers from 1 to %u",
                       RP_RUNAS_ENV, s, RP_RUNAS_ID_MAX);
    out->set = true;
    out->uid = (uid_t)uid;
    out->gid = (gid_t)gid;
    return RP_OK;
}

rp_err_t rp_runas_check(const rp_runas_t *ra, uid_t euid, char *errstr,
                        size_t errstr_size)
{
    if (!ra->set || euid == 0 || euid == ra->uid)
        return RP_OK;
    return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                   "%s=%u:%u, but the executor runs as uid %u, not root: it "
                   "cannot switch users (leave %s unset: it is already "
                   "unprivileged)", RP_RUNAS_ENV, (unsigned)ra->uid,
                   (unsigned)ra->gid, (unsigned)euid, RP_RUNAS_ENV);
}

rp_err_t rp_runas_prepare_dir(const rp_runas_t *ra, const char *path,
                              char *errstr, size_t errstr_size)
{
    if (ra->set && geteuid() == 0 && chown(path, ra->uid, ra->gid) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "chown %s to %u:%u: %s",
                       path, (unsigned)ra->uid, (unsigned)ra->gid,
                       strerror(errno));
    if (chmod(path, 0700) != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_IO, "chmod 0700 %s: %s",
                       path, strerror(errno));
    return RP_OK;
}

int rp_runas_drop(const rp_runas_t *ra)
{
    if (!ra->set)
        return 0;
    if (geteuid() == ra->uid && getuid() == ra->uid)
        return 0; /* already that user: nothing to drop */
    /* Groups first: once the uid is gone, setgroups is refused. */
    if (setgroups(0, NULL) != 0 || setgid(ra->gid) != 0 ||
        setuid(ra->uid) != 0)
        return -1;
    if (getuid() != ra->uid || geteuid() != ra->uid ||
        getgid() != ra->gid || getegid() != ra->gid) {
        errno = EPERM;
        return -1;
    }
    if (setuid(0) == 0) { /* root must be gone for good */
        errno = EPERM;
        return -1;
    }
    return 0;
}

int rp_runas_exec_main(int argc, char **argv)
{
    char es[256];
    rp_runas_t ra;

    if (argc < 5 || strcmp(argv[1], RP_RUNAS_FLAG) != 0 ||
        strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "runpool-executor: usage: %s UID:GID -- PROGRAM "
                "[ARGS...]\n", RP_RUNAS_FLAG);
        return 2;
    }
    if (rp_runas_parse(argv[2], &ra, es, sizeof(es)) || !ra.set) {
        fprintf(stderr, "runpool-executor: %s\n",
                ra.set ? es : "--exec-as needs UID:GID");
        return 2;
    }
    if (rp_runas_drop(&ra) != 0) {
        fprintf(stderr, "runpool-executor: cannot become %u:%u: %s\n",
                (unsigned)ra.uid, (unsigned)ra.gid, strerror(errno));
        return 126;
    }
    execv(argv[4], argv + 4);
    fprintf(stderr, "runpool-executor: cannot execute %s: %s\n", argv[4],
            strerror(errno));
    return 126;
}
