/* The executor's fork server: one loaded runpool-executor that forks a
 * copy of itself for each execution of the local backend.
 *
 * Why. An exec'd executor pays for its start every time: the dynamic
 * loader, relocations, page faults on a new address space (bench x:
 * about 0.7 ms of its 2.5 ms for `true`, docs/executor.md "Cost"). A
 * process forked from a parent that has done all that once starts with
 * those pages shared.
 *
 * How. The worker starts `runpool-executor --serve` once, with one end of
 * a SOCK_SEQPACKET socketpair as its stdin (rp_backend_local.c). For each
 * execution it sends one datagram: the execution's resource limits and
 * its environment, with the request document's memfd attached
 * (SCM_RIGHTS). The server clones with CLONE_PARENT, so the new executor
 * is the *worker's* child, exactly as a vfork+exec'd one is: the worker
 * waits for it, reads its exit status and watches it by pidfd, and the
 * server never reaps anything. The child takes the environment, sets the
 * limits, puts the memfd on stdin and runs the executor's main as if
 * exec'd. The server answers with the child's pid.
 *
 * What the child is not: a fresh exec. It shares the server's (read-only
 * after start) pages, its glibc thread descriptor still names the server's
 * thread id (glibc's raise() and fork() ask the kernel, so nothing the
 * executor uses depends on it), and it has the server's libraries, which
 * the server loaded before any environment was given (none reads the
 * environment before the executor's main does).
 *
 * Failure is never fatal: the worker falls back to vfork+exec when the
 * server is off, dead, slow or refuses (rp_backend_local.c), and a server
 * whose worker went away sees end of file and exits.
 *
 * Thread: rp_zygote_serve runs in the server process (single-threaded);
 * the client calls are made by one thread at a time per socket.
 */
#ifndef RP_ZYGOTE_H
#define RP_ZYGOTE_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "rp_err.h"

/* The server's flag: `runpool-executor --serve`, the socket on stdin. */
#define RP_ZYGOTE_FLAG "--serve"
/* One request datagram at most: limits, then NUL-separated NAME=value
 * strings. An execution's environment is the job contract and a few
 * deployment variables (the command is on stdin), a few KiB; a larger
 * one is started by vfork+exec instead. */
#define RP_ZYGOTE_MSG_MAX (64 * 1024)
#define RP_ZYGOTE_ENV_MAX 512  /* variables in one request */
/* Room for a child's /proc/PID/environ: the client starts the server with
 * this variable holding RP_ZYGOTE_ROOM bytes, and each child writes its
 * own environment over the server's original one (the kernel shows that
 * memory as /proc/PID/environ, as it shows argv as cmdline: the
 * setproctitle technique), so `ps e`, /proc and tools that find an
 * execution by its EXECUTION_ID see the execution's, not the server's. */
#define RP_ZYGOTE_ROOM_ENV "RUNPOOL_FORK_SERVER_ROOM"
/* An execution's environment is about 1 KiB; what does not fit in the
 * room is not shown there (it is in the executor's environ all the same).
 * Small, because each child writes over all of it. */
#define RP_ZYGOTE_ROOM (16 * 1024)
#define RP_ZYGOTE_LIMITS_MAX 8 /* resource limits in one request */

/* One resource limit the child sets, hard and soft, before the executor
 * runs, so that its command cannot raise it. */
typedef struct rp_zygote_limit {
    int resource;
    struct rlimit value;
} rp_zygote_limit_t;

/* The executor's main, run in each child as if exec'd with argv {argv0}. */
typedef int (*rp_zygote_main_fn)(int argc, char **argv);

/* Server side: answer requests on sock until its peer closes it; returns
 * the exit code for the server process (0 at end of file). argv0 is
 * borrowed. Call from a single-threaded process only. */
int rp_zygote_serve(int sock, const char *argv0, rp_zygote_main_fn main_fn);

/* Client side. Wait up to timeout_ms for the server's greeting on sock
 * and return its pid in *pid_out. RP_ERR_TIMEOUT, or RP_ERR_PROTOCOL if
 * what answered is not a fork server (e.g. an executor that does not
 * know --serve). */
rp_err_t rp_zygote_hello(int sock, int timeout_ms, pid_t *pid_out,
                         char *errstr, size_t errstr_size);

/* Client side: start one executor with environment envp (NULL-ended,
 * borrowed), request_fd on its stdin (borrowed; -1: /dev/null) and the
 * nlimits limits, waiting up to timeout_ms for the answer. On RP_OK
 * *pid_out is a child of the calling process. RP_ERR_TOO_LARGE: the
 * request does not fit one datagram (start it another way; the server is
 * fine). Any other error: the server cannot be trusted any more (dead,
 * slow, or out of step); stop using it. */
rp_err_t rp_zygote_spawn(int sock, char *const *envp, int request_fd,
                         const rp_zygote_limit_t *limits, int nlimits,
                         int timeout_ms, pid_t *pid_out, char *errstr,
                         size_t errstr_size);

#endif
