/* rp_runas — the unprivileged user a session's commands run as.
 *
 * An executor started as root (the local backend under a root worker, or
 * a job image that runs as root) must not run the user's command as root:
 * RUNPOOL_RUN_AS=UID:GID (numbers: a slim image may have no passwd
 * entry for them) names who runs it. The executor keeps root for its own
 * work (the state store, the claim and the record), prepares the
 * session's directories for that user (owned by it, mode 0700), and the
 * command's shell starts through `runpool-executor --exec-as UID:GID --
 * /bin/sh ...`: supplementary groups dropped, then the gid, then the uid,
 * checked (setuid(0) must fail afterwards), then execve. An executor that
 * is not root needs nothing: it is already unprivileged (the executor
 * image runs as 10001), and RUNPOOL_RUN_AS naming another uid is refused
 * (it could not be honoured).
 *
 * Thread-safety: rp_runas_parse and rp_runas_prepare_dir any thread;
 * rp_runas_drop only in a process about to execve (it changes the whole
 * process's credentials).
 */
#ifndef RP_RUNAS_H
#define RP_RUNAS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rp_err.h"

#define RP_RUNAS_ENV "RUNPOOL_RUN_AS"
#define RP_RUNAS_FLAG "--exec-as"
#define RP_RUNAS_ID_MAX 2147483647u /* uid_t/gid_t values we accept */

typedef struct rp_runas {
    bool set; /* false: run as the executor's own user */
    uid_t uid;
    gid_t gid;
} rp_runas_t;

/* "UID:GID" (decimal, 1..RP_RUNAS_ID_MAX each: uid 0 is no drop) into
 * *out; NULL or "" leaves it unset. RP_ERR_INVALID with a message for
 * anything else. */
rp_err_t rp_runas_parse(const char *s, rp_runas_t *out, char *errstr,
                        size_t errstr_size);

/* Whether this process (effective uid euid) can honour ra: unset, root,
 * or already exactly that uid. RP_ERR_PERMISSION with a message when not. */
rp_err_t rp_runas_check(const rp_runas_t *ra, uid_t euid, char *errstr,
                        size_t errstr_size);

/* For a drop: chown path to ra's uid:gid and chmod it 0700, so the
 * command can work in it and other users of the machine cannot look in.
 * Unset: only the chmod. */
rp_err_t rp_runas_prepare_dir(const rp_runas_t *ra, const char *path,
                              char *errstr, size_t errstr_size);

/* Become ra (setgroups(0), setgid, setuid) and check that root cannot be
 * regained. Returns 0, or -1 with errno set; on -1 the caller must not
 * exec the command. */
int rp_runas_drop(const rp_runas_t *ra);

/* `runpool-executor --exec-as UID:GID -- PROG ARGS...`: drop, then execv
 * PROG with the environment as it is. Returns only on failure (exit
 * status 126 for the caller, like a shell's "cannot execute"); prints one
 * line on stderr. argv borrowed. */
int rp_runas_exec_main(int argc, char **argv);

#endif
