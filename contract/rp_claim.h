/* rp_claim — the fence that starts a command at most once per execution_id.
 *
 * The protocol, all of it (docs/executor.md and docs/worker.md tell why):
 *
 *   executions/{execution_id}/claim.json    create-only, one per start
 *
 *   1. The executor, after it has loaded everything and just before it
 *      starts the user's command, writes a claim naming its run
 *      (rp_claim_self_run) with if_version 0. Only the writer that creates
 *      it runs the command.
 *   2. An executor that finds a claim already there (any run, also an
 *      earlier task attempt of its own Cloud Run execution) does not run
 *      the command and exits RP_EXEC_EXIT_CLAIMED (rp_jobenv.h), writing
 *      nothing.
 *   3. Once the command has exited the executor always writes result.json;
 *      the claim stays (it is cheap, and it is what tells a later owner
 *      that the command did start).
 *   4. The worker (rp_cycle.c) reads the claim with the record: record ->
 *      reuse it; claim and no record -> watch that run (rp_backend_attach)
 *      or wait for its record instead of starting; the run it watched
 *      ended with the claim naming that very run and no record -> the
 *      command was interrupted (an "interrupted" error result), re-run only
 *      when the request says "retry": "if-interrupted": the worker then
 *      deletes the claim (compare-and-swap on its version) and starts the
 *      next attempt, at most RP_CLAIM_ATTEMPTS_MAX in all.
 *
 * A run names one process that may run the command:
 *   cloudrun:{CLOUD_RUN_EXECUTION}          a Cloud Run Job execution
 *   local:{boot_id}:{pid}:{start_ticks}     a process on this machine
 * boot_id is /proc/sys/kernel/random/boot_id plus ".{inode}" of our pid
 * namespace (rp_claim_boot_id), and start_ticks field 22 of
 * /proc/PID/stat (clock ticks after boot), so a reused pid or a reboot
 * never looks like the same run.
 *
 * Document (at most RP_CLAIM_DOC_MAX bytes, unknown members rejected):
 *   {"v":1, "execution_id":"e1", "run":"local:…", "attempt":1,
 *    "claimed_at_ms":1764745200000, "job":"runpool-exec"}
 * job (CLOUD_RUN_JOB) is present only on Cloud Run.
 *
 * Thread-safety: no shared state; any thread. The run helpers read /proc
 * (the one place in contract/ that does I/O: the run's name is part of the
 * contract).
 */
#ifndef RP_CLAIM_H
#define RP_CLAIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rp_contract.h"
#include "rp_err.h"

#define RP_CLAIM_FILE "claim.json"
#define RP_CLAIM_DOC_MAX 4096
/* A run name: "local:" + 36-byte boot id + two numbers, or "cloudrun:" +
 * an execution name (at most 63 bytes in Cloud Run); room to spare. */
#define RP_CLAIM_RUN_MAX 200
/* CLOUD_RUN_JOB: a Cloud Run job name is at most 63 bytes. */
#define RP_CLAIM_JOB_MAX 128
#define RP_CLAIM_BOOT_ID_MAX 64
/* Starts of one execution under "retry": "if-interrupted", the first
 * included. Counted in the claim itself, so a new owner continues it. */
#define RP_CLAIM_ATTEMPTS_MAX 3

typedef struct rp_claim {
    char execution_id[RP_ID_MAX + 1];
    char run[RP_CLAIM_RUN_MAX + 1];
    char job[RP_CLAIM_JOB_MAX + 1]; /* "" when not on Cloud Run */
    int attempt;                    /* 1..RP_CLAIM_ATTEMPTS_MAX */
    int64_t claimed_at_ms;          /* wall clock */
} rp_claim_t;

/* "executions/{execution_id}/claim.json" into out; "" for an invalid id
 * (rp_layout rules). */
void rp_claim_key(const char *execution_id, char *out, size_t out_size);

/* Serialise c. Caller frees; NULL on no memory. */
char *rp_claim_to_json(const rp_claim_t *c);

/* Parse a claim (json borrowed, len bytes). RP_ERR_INVALID /
 * RP_ERR_TOO_LARGE with a message naming the field; out is zeroed first. */
rp_err_t rp_claim_parse(const char *json, size_t len, rp_claim_t *out,
                        char *errstr, size_t errstr_size);

/* The run this process is: "cloudrun:" + CLOUD_RUN_EXECUTION when lookup
 * (getenv-like) has it (job gets CLOUD_RUN_JOB, may be ""), else the local
 * run of getpid(). run[RP_CLAIM_RUN_MAX + 1], job[RP_CLAIM_JOB_MAX + 1]. */
rp_err_t rp_claim_self_run(const char *(*lookup)(const char *name,
                                                 void *opaque),
                           void *opaque, char *run, char *job, char *errstr,
                           size_t errstr_size);

/* "local:{boot_id}:{pid}:{start_ticks}" of a live (or zombie) process of
 * this machine into run[RP_CLAIM_RUN_MAX + 1]. RP_ERR_NOT_FOUND when pid
 * is gone, RP_ERR_IO when /proc cannot be read. */
rp_err_t rp_claim_local_run(pid_t pid, char *run, char *errstr,
                            size_t errstr_size);

/* Split a local run name. RP_ERR_INVALID when it is not one. */
rp_err_t rp_claim_local_parse(const char *run,
                              char boot_id[RP_CLAIM_BOOT_ID_MAX + 1],
                              pid_t *pid, uint64_t *start_ticks);

/* Where local pids mean something: this machine's boot id and our pid
 * namespace, "{boot_id}.{pidns inode}", into out[RP_CLAIM_BOOT_ID_MAX + 1]. */
rp_err_t rp_claim_boot_id(char out[RP_CLAIM_BOOT_ID_MAX + 1]);

/* Field 22 of /proc/PID/stat. RP_ERR_NOT_FOUND when pid is gone. */
rp_err_t rp_claim_start_ticks(pid_t pid, uint64_t *out);

#endif
