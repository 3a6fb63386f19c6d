/* rp_secfile — may a file that holds a secret (a Kafka password, signing
 * keys) be read? The rule is PostgreSQL's for ssl_key_file, because it is
 * the one that fits both a developer's machine and Kubernetes:
 *
 *   owned by the process's effective uid: no group or other bits
 *     (0600, 0400);
 *   owned by root: group may read, nothing more, others nothing
 *     (0640, 0440) — a Secret volume with fsGroup and defaultMode 0440
 *     gives exactly root:FSGROUP 0440 to a non-root container;
 *   owned by anyone else: refused.
 *
 * An ssh-style "0600 only" rule would refuse every Secret a non-root pod
 * can read. The message names the file, its owner and mode and the fix.
 *
 * Thread-safety: pure; any thread.
 */
#ifndef RP_SECFILE_H
#define RP_SECFILE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "rp_err.h"

/* RP_OK when st (of path, borrowed; what names the file in the message,
 * e.g. "kafka config") passes the rule above for a process whose
 * effective uid is euid; RP_ERR_PERMISSION (not retriable) with a message
 * otherwise. */
rp_err_t rp_secfile_check(const char *what, const char *path,
                          const struct stat *st, uid_t euid, char *errstr,
                          size_t errstr_size);

#endif
