/* rp_exec — run one shell command the way a runpool session sees it.
 *
 * rp_exec_run() starts `/bin/sh -c SCRIPT` in a new process group, with
 * stdin from /dev/null, stdout and stderr captured on two pipes, the given
 * working directory and exactly the given environment. SCRIPT is a short
 * prologue that installs an EXIT trap, then sources the user's command
 * verbatim from a private file (`. FILE`: argv never carries it, so the
 * 256 KiB command limit is not cut to the kernel's 128 KiB per string).
 * The trap records the shell's final working directory and its exported
 * environment, so `cd /tmp` and `export X=1` carry over to the next
 * command of the session (see docs/executor.md). An environment larger
 * than exec accepts is partly exported by the shell from a sourced file,
 * and captured with the builtin `export -p` when the dumper cannot be
 * exec'd.
 *
 * Guarantees when rp_exec_run() returns:
 *  - a stop (timeout, cancel_fd) counts only if it came while the user's
 *    command ran: the EXIT trap's first act marks the command's end, and
 *    whichever of that mark and a stop comes first wins (O_EXCL on one
 *    file), so a signal during the capture tail never loses an outcome;
 *  - the shell has been reaped and its whole process group SIGKILLed:
 *    processes do not survive the execution (in production every execution
 *    is a fresh container anyway);
 *  - stdout/stderr hold at most output_max bytes each (cut back to a UTF-8
 *    boundary, *_truncated set); output never causes a kill;
 *  - the call never waits for a background process the command left behind
 *    longer than linger_ms after the shell exited.
 *
 * It knows nothing about Kafka, state stores or JSON: executor_main.c does
 * the session bookkeeping around it.
 *
 * Thread-safety: rp_exec_run() may be called from any one thread at a time
 * per process (it reaps by process group and, with `subreaper`, changes a
 * process-wide attribute).
 */
#ifndef RP_EXEC_H
#define RP_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_err.h"
#include "rp_msg.h"
#include "rp_runas.h"

#define RP_EXEC_KILL_GRACE_DEFAULT_MS 2000 /* SIGTERM -> SIGKILL */
#define RP_EXEC_LINGER_DEFAULT_MS 200      /* drain after the shell exits */
#define RP_EXEC_REAP_WAIT_MS 2000          /* wait for SIGKILLed group */
/* A capture (the dumper's NUL dump, or export -p's text when the dumper
 * could not be exec'd) is read up to this; a larger one is not saved, and
 * a "runpool: not saving the environment" line says so. */
#define RP_EXEC_ENV_DUMP_MAX (8 * 1024 * 1024)
/* The `sh -c` string: traps and quoted paths (the command is in a file). */
#define RP_EXEC_SCRIPT_MAX (16 * 4096)
/* Environ gets the command's variables up to this many bytes (or half the
 * kernel's exec limit, if lower); the rest is sourced from a file. */
#define RP_EXEC_ENVP_MAX_DEFAULT (1024 * 1024)
/* The sourced `export NAME='value'` lines: every variable of a full
 * session, each value quoted ('\'' per quote: 4 bytes a byte at worst). */
#define RP_EXEC_ENV_IN_MAX \
    ((size_t)RP_ENV_MAX_VARS * (4 * RP_ENV_VALUE_MAX + 512))
/* Private capture directory path, including the file names in it. */
#define RP_EXEC_PATH_MAX 4096

typedef struct rp_exec_opts {
    const char *command;      /* borrowed; run verbatim after the prologue */
    const char *cwd;          /* borrowed; absolute; created (mkdir -p) when
                               * missing; NULL = fallback_cwd */
    const char *fallback_cwd; /* borrowed; used when cwd cannot be created;
                               * NULL = "/" */
    const rp_env_t *env;      /* borrowed; the command's whole environment
                               * (NULL = empty) */
    int64_t timeout_ms;       /* <= 0: no timeout */
    size_t output_max;        /* per stream; 0 = RP_OUTPUT_MAX_DEFAULT */
    int64_t kill_grace_ms;    /* 0 = RP_EXEC_KILL_GRACE_DEFAULT_MS */
    int64_t linger_ms;        /* 0 = RP_EXEC_LINGER_DEFAULT_MS */
    /* borrowed; NULL (the default): the EXIT trap captures the exported
     * environment with the shell's builtin `export -p`, no exec. Else the
     * absolute path of a runpool-dump-env (or runpool-executor) binary,
     * run as `DUMPER --dump-env` by the trap (one more exec per run, but
     * NUL-exact whatever the shell); when it cannot be exec'd (E2BIG: an
     * environment over the kernel's limit; or missing), `export -p`
     * captures. */
    const char *env_dumper;
    /* When readable, the run is cancelled like a timeout (SIGTERM, grace,
     * SIGKILL) and outcome.cancelled is set. -1 = none. Borrowed. */
    int cancel_fd;
    /* Bytes of the shell's environ (strings, NULs and pointers, as execve
     * counts them); variables past it are exported by the shell from a
     * sourced file instead, so a session larger than exec accepts still
     * starts. 0 = min(RP_EXEC_ENVP_MAX_DEFAULT, ARG_MAX / 2). */
    size_t envp_max;
    /* Make this process a child subreaper (prctl) so that orphans of the
     * command are reparented to us and reaped here, not left as zombies.
     * Only for a process that owns no other children (runpool-executor). */
    bool subreaper;
    /* Run the shell as this user (rp_runas.h): the private directory and
     * the command's files are handed to it, a session directory this run
     * creates is made its own (0700), and the shell starts through
     * `RUN_AS_HELPER --exec-as UID:GID -- /bin/sh -c ...`. Unset: as we
     * are. run_as_helper: absolute path of a runpool-executor; NULL = this
     * process's own binary (/proc/self/exe), right inside the executor. */
    rp_runas_t run_as;
    const char *run_as_helper;
} rp_exec_opts_t;

/* Zero the options and set cancel_fd = -1. Any thread. */
void rp_exec_opts_init(rp_exec_opts_t *opts);

typedef struct rp_exec_outcome {
    /* RP_STATUS_SUCCEEDED (exit 0), RP_STATUS_FAILED (non-zero exit or a
     * signal) or RP_STATUS_TIMED_OUT; nothing else. A cancelled run is
     * reported as FAILED with cancelled = true. */
    rp_status_t status;
    /* cancel_fd fired while the user's command ran: it was stopped.
     * A cancel that comes after the command itself exited (during the
     * capture tail or the linger) never sets this: the run then ends as
     * the command made it end, late_cancel is set, and the caller must
     * write its record. The same holds for the timeout. */
    bool cancelled;
    bool late_cancel;
    bool spawned; /* the shell was started (false: cancelled before) */
    bool has_exit_code;
    int exit_code;
    bool has_signal;
    int signal;
    char *stdout_data; /* owned; NUL-terminated for convenience, may hold NUL */
    size_t stdout_len;
    bool stdout_truncated;
    char *stderr_data; /* owned; ditto; runpool's own notes ("runpool: …")
                        * are added here, where the user sees them */
    size_t stderr_len;
    bool stderr_truncated;
    /* true when the EXIT trap recorded cwd and env. When false (the shell
     * was SIGKILLed, exec'd another program, or replaced the trap),
     * cwd_after/env_after are the cwd the command started in and a copy of
     * opts.env, so the session is left as it was. */
    bool captured;
    char *cwd_after;   /* owned */
    rp_env_t env_after; /* owned; without PWD, OLDPWD, SHLVL, _ */
    int64_t started_at_ms;  /* wall clock */
    int64_t finished_at_ms; /* wall clock, when the shell exited */
    int64_t duration_ms;    /* monotonic */
    int pgid;               /* process group used; empty on return */
} rp_exec_outcome_t;

/* Run opts->command. opts and everything it points to are borrowed for
 * the call. Fills *out (zeroed first; the caller owns it and clears it with
 * rp_exec_outcome_clear, also after an error). Returns RP_OK whenever the
 * command ran, whatever it did; an error only when runpool itself could
 * not run it (RP_ERR_INVALID bad options, RP_ERR_SPAWN, RP_ERR_IO temp
 * dir/pipes, RP_ERR_NOMEM, RP_ERR_TOO_LARGE command/environment), with a
 * message in errstr. Any thread, one call at a time per process. */
rp_err_t rp_exec_run(const rp_exec_opts_t *opts, rp_exec_outcome_t *out,
                     char *errstr, size_t errstr_size);

/* Free what the outcome owns and zero it. Accepts NULL. Any thread (the
 * outcome's owner). */
void rp_exec_outcome_clear(rp_exec_outcome_t *out);

/* The --dump-env half of the capture: write environ to fd as
 * NAME=VALUE entries each followed by a NUL byte. Returns 0 or -1 (errno).
 * Main thread of runpool-executor. */
int rp_exec_dump_env(int fd);

/* The capture's fallback: turn `export -p` output (text, len bytes, as
 * dash, bash or busybox print it) into the --dump-env format, NAME=VALUE
 * entries each followed by a NUL, appended to out. Exported variables
 * without a value are skipped. RP_ERR_INVALID on syntax it does not know,
 * RP_ERR_TOO_LARGE past out->max. Any thread. */
rp_err_t rp_exec_exports_to_dump(const char *text, size_t len, rp_buf_t *out);

/* Single-quote s for /bin/sh into out ('…' with ' as '\''), appending to
 * the buffer. RP_ERR_TOO_LARGE past out->max. Any thread. */
rp_err_t rp_exec_shell_quote(rp_buf_t *out, const char *s);

#endif
