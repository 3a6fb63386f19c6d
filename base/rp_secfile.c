#include "rp_secfile.h"

rp_err_t rp_secfile_check(const char *what, const char *path,
                          const struct stat *st, uid_t euid, char *errstr,
                          size_t errstr_size)
{
    unsigned mode = (unsigned)(st->st_mode & 07777);

    if (st->st_uid == euid && euid != 0) {
        if (mode & (S_IRWXG | S_IRWXO))
            return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                           "%s %s holds a secret but group or others may "
                           "read it (mode %04o); chmod 600 it", what, path,
                           mode);
        return RP_OK;
    }
    if (st->st_uid == 0) {
        if (mode & (S_IWGRP | S_IXGRP | S_IRWXO))
            return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                           "%s %s holds a secret but is mode %04o; a file "
                           "owned by root may be at most 0640 (group read, "
                           "e.g. a Kubernetes Secret with defaultMode 0440), "
                           "others nothing", what, path, mode);
        return RP_OK;
    }
    return rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                   "%s %s holds a secret but is owned by uid %u, neither "
                   "this process's (%u) nor root", what, path,
                   (unsigned)st->st_uid, (unsigned)euid);
}
