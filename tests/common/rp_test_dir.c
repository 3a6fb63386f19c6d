#define _XOPEN_SOURCE 700
#include "rp_test_dir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int rp_test_rm_one(const char *path, const struct stat *sb, int flag,
                          struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* go on past a failure: remove what can be removed */
    return 0;
}

int rp_test_rmtree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    nftw(path, rp_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return lstat(path, &st) == 0 ? -1 : 0;
}
