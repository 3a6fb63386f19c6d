/* runpool-bench-exec — the executor alone: start → exit (its record is
 * written before it exits) and the CPU of one `runpool-executor` run with
 * everything it starts, for one or more executor binaries run alternately
 * in one process, so every variant sees the same machine.
 *
 * Each run is what the local backend does (worker/rp_backend_local.c): a
 * memfd on stdin holding the request document ({"command": CMD}),
 * RUNPOOL_REQUEST_REF=-, a file:// state store, a new session. The clock
 * starts just before vfork and stops when wait4 returns; the CPU is the
 * child's rusage from wait4, which includes every descendant it reaped
 * (the executor reaps the shell, the shell its children). After each run
 * the record is read back and must say "succeeded".
 *
 * Usage: runpool-bench-exec --state-dir DIR --runs N --command CMD
 *          --out FILE [--floor] NAME=EXECUTOR [NAME=EXECUTOR ...]
 * --floor adds, alternated with the executors, `/bin/sh -c true` and
 * `/bin/true` started the same way: the CPU floor of one execution's
 * processes (a shell, and an exec of a libc-only program).
 * Exit status: 0 figures written; 1 a run failed; 2 usage.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_buf.h"
#include "rp_contract.h"
#include "rp_msg.h"
#include "rp_time.h"

#define BX_VARIANTS_MAX 8
#define BX_RUNS_MAX 100000
#define BX_PATH_MAX 4096

typedef struct bx_variant {
    const char *name;
    const char *exe;
    int64_t *wall_us; /* per run */
    int64_t *cpu_us;
    int failed;
} bx_variant_t;

static void bx_die(const char *msg)
{
    fprintf(stderr, "runpool-bench-exec: %s\n", msg);
    exit(2);
}

static int bx_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* {"p50","p90","p99","max","mean"} in ms (3 decimals) of v[0..n), sorted
 * in place; nearest rank. */
static cJSON *bx_dist_ms(int64_t *v, size_t n)
{
    static const double ps[] = {50, 90, 99};
    static const char *const names[] = {"p50", "p90", "p99"};
    cJSON *o = cJSON_CreateObject();
    double sum = 0;

    if (!n)
        return o;
    qsort(v, n, sizeof(*v), bx_cmp);
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    for (size_t i = 0; i < 3; i++) {
        size_t k = (size_t)ceil(ps[i] / 100.0 * (double)n);

        cJSON_AddNumberToObject(o, names[i], (double)v[k ? k - 1 : 0] / 1000.0);
    }
    cJSON_AddNumberToObject(o, "max", (double)v[n - 1] / 1000.0);
    cJSON_AddNumberToObject(o, "mean", round(sum / (double)n) / 1000.0);
    return o;
}

/* One execution of exe; 0 when it exited 0 and its record says
 * succeeded. */
static int bx_run_one(const char *exe, const char *state_dir,
                      const char *work_dir, const char *command,
                      const char *eid, int64_t *wall_us, int64_t *cpu_us)
{
    char e_id[256], e_url[BX_PATH_MAX + 32], e_cwd[BX_PATH_MAX + 32],
        path[BX_PATH_MAX + 256];
    char e_tmp[BX_PATH_MAX + 8];
    const char *tmpdir = getenv("TMPDIR");
    char *envp[] = {e_id, "SESSION_ID=bench-exec-session", "TIMEOUT=60",
                    "RUNPOOL_REQUEST_REF=-", e_url, e_cwd,
                    "PATH=/usr/bin:/bin", NULL, NULL};
    char *argv[] = {(char *)exe, NULL};
    cJSON *doc = cJSON_CreateObject();
    char *json, errstr[256];
    struct rusage ru;
    rp_result_t res;
    rp_buf_t rec;
    int fd = -1, status = 0, rc = 1;
    int64_t t0;
    pid_t pid;

    snprintf(e_id, sizeof(e_id), "EXECUTION_ID=%s", eid);
    snprintf(e_url, sizeof(e_url), "RUNPOOL_STATE_URL=file://%s", state_dir);
    snprintf(e_cwd, sizeof(e_cwd), "RUNPOOL_DEFAULT_CWD=%s", work_dir);
    /* The worker passes its TMPDIR on (rp_backend_local.c): so do we. */
    if (tmpdir && tmpdir[0] == '/' && strlen(tmpdir) < BX_PATH_MAX) {
        snprintf(e_tmp, sizeof(e_tmp), "TMPDIR=%s", tmpdir);
        envp[7] = e_tmp;
    }
    cJSON_AddStringToObject(doc, "command", command);
    json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!json || (fd = memfd_create("bench-request", MFD_CLOEXEC)) < 0)
        bx_die("memfd");
    if (write(fd, json, strlen(json)) != (ssize_t)strlen(json) ||
        lseek(fd, 0, SEEK_SET) != 0)
        bx_die("memfd write");
    free(json);

    t0 = rp_time_mono_us();
    pid = vfork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(fd, 0);
        /* Its log lines (two per run) are not what is measured. */
        if (null >= 0)
            dup2(null, 2);
        execve(exe, argv, envp);
        _exit(127);
    }
    if (pid < 0)
        bx_die("vfork");
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    *wall_us = rp_time_mono_us() - t0;
    *cpu_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
              (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "runpool-bench-exec: %s: exit status %d\n", exe, status);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/executions/%s/result.json", state_dir, eid);
    rp_buf_init(&rec, RP_RESULT_MAX);
    memset(&res, 0, sizeof(res));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        char chunk[65536];
        ssize_t n;

        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
            if (rp_buf_append(&rec, chunk, (size_t)n) != RP_OK)
                break;
        close(fd);
    }
    if (rec.len && rp_result_parse(rec.data, rec.len, &res, errstr,
                                   sizeof(errstr)) == RP_OK &&
        res.status == RP_STATUS_SUCCEEDED)
        rc = 0;
    else
        fprintf(stderr, "runpool-bench-exec: %s: no succeeded record at %s\n",
                exe, path);
    rp_result_clear(&res);
    rp_buf_free(&rec);
    return rc;
}

/* The floor: vfork + exec + wait of argv (no record), as bx_run_one
 * times it. 0 when it exited 0. */
static int bx_run_raw(char *const argv[], int64_t *wall_us, int64_t *cpu_us)
{
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    struct rusage ru;
    int status = 0;
    int64_t t0 = rp_time_mono_us();
    pid_t pid = vfork();

    if (pid == 0) {
        execve(argv[0], argv, envp);
        _exit(127);
    }
    if (pid < 0)
        bx_die("vfork");
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    *wall_us = rp_time_mono_us() - t0;
    *cpu_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
              (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *state_dir = NULL, *command = "true", *out = NULL;
    bx_variant_t v[BX_VARIANTS_MAX];
    size_t nv = 0, nfloor = 0;
    long runs = 1000;
    bool floor = false;
    /* --floor: what any execution costs at least, alternated with the
     * executors: a dash start (the command's shell) and a libc-only
     * dynamic program (what an executor start cannot go below). */
    static char *floor_sh[] = {"/bin/sh", "-c", "true", NULL};
    static char *floor_exec[] = {"/bin/true", NULL};
    char *const *floor_argv[] = {floor_sh, floor_exec};
    const char *floor_name[] = {"floor_sh_c_true", "floor_exec_bin_true"};
    char work_dir[BX_PATH_MAX + 8], eid[128], load0[128] = "", load1[128] = "";
    cJSON *root, *vs;
    char *text;
    FILE *f;
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--state-dir") && i + 1 < argc)
            state_dir = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--command") && i + 1 < argc)
            command = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--floor"))
            floor = true;
        else if (strchr(argv[i], '=') && argv[i][0] != '-' &&
                 nv < BX_VARIANTS_MAX) {
            char *eq = strchr(argv[i], '=');

            *eq = '\0';
            v[nv].name = argv[i];
            v[nv].exe = eq + 1;
            v[nv].failed = 0;
            nv++;
        } else
            bx_die("usage: --state-dir DIR --runs N [--command CMD] --out FILE "
                   "NAME=EXECUTOR...");
    }
    if (!state_dir || !out || !nv || runs < 1 || runs > BX_RUNS_MAX ||
        strlen(state_dir) >= BX_PATH_MAX)
        bx_die("usage: --state-dir DIR --runs N [--command CMD] --out FILE "
               "NAME=EXECUTOR...");
    if (floor && nv + 2 <= BX_VARIANTS_MAX)
        for (size_t k = 0; k < 2; k++, nfloor++) {
            v[nv + k].name = floor_name[k];
            v[nv + k].exe = floor_argv[k][0];
            v[nv + k].failed = 0;
        }
    snprintf(work_dir, sizeof(work_dir), "%s/work", state_dir);
    mkdir(work_dir, 0700);
    for (size_t k = 0; k < nv + nfloor; k++)
        if (!(v[k].wall_us = calloc((size_t)runs, sizeof(int64_t))) ||
            !(v[k].cpu_us = calloc((size_t)runs, sizeof(int64_t))))
            bx_die("out of memory");
    if ((f = fopen("/proc/loadavg", "r"))) {
        if (!fgets(load0, sizeof(load0), f))
            load0[0] = '\0';
        fclose(f);
    }
    /* Alternate: run r of every variant, then run r+1. */
    for (long r = 0; r < runs; r++)
        for (size_t k = 0; k < nv + nfloor; k++) {
            if (k >= nv) {
                if (bx_run_raw(floor_argv[k - nv], &v[k].wall_us[r],
                               &v[k].cpu_us[r]) != 0) {
                    v[k].failed++;
                    failed = 1;
                }
                continue;
            }
            snprintf(eid, sizeof(eid), "bx-%s-%ld-%ld", v[k].name, (long)getpid(), r);
            if (bx_run_one(v[k].exe, state_dir, work_dir, command, eid,
                           &v[k].wall_us[r], &v[k].cpu_us[r]) != 0) {
                v[k].failed++;
                failed = 1;
            }
        }
    if ((f = fopen("/proc/loadavg", "r"))) {
        if (!fgets(load1, sizeof(load1), f))
            load1[0] = '\0';
        fclose(f);
    }
    load0[strcspn(load0, "\n")] = load1[strcspn(load1, "\n")] = '\0';

    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "scenario", "x");
    cJSON_AddStringToObject(root, "description",
        "runpool-executor alone, as the local backend starts it (memfd "
        "request on stdin, file:// state, a new session): vfork -> exit "
        "(the record is written before exit) and CPU of the executor with "
        "all it reaped (wait4 rusage); variants alternate run by run");
    cJSON_AddStringToObject(root, "command", command);
    cJSON_AddNumberToObject(root, "runs_per_variant", (double)runs);
    cJSON_AddStringToObject(root, "loadavg_at_start", load0);
    cJSON_AddStringToObject(root, "loadavg_at_end", load1);
    vs = cJSON_AddObjectToObject(root, "variants");
    for (size_t k = 0; k < nv + nfloor; k++) {
        cJSON *o = cJSON_AddObjectToObject(vs, v[k].name);

        cJSON_AddStringToObject(o, "executor", v[k].exe);
        cJSON_AddNumberToObject(o, "failed_runs", v[k].failed);
        cJSON_AddItemToObject(o, "start_to_exit_ms",
                              bx_dist_ms(v[k].wall_us, (size_t)runs));
        cJSON_AddItemToObject(o, "cpu_ms_with_descendants",
                              bx_dist_ms(v[k].cpu_us, (size_t)runs));
        printf("%-10s start->exit p50 %.3f ms p99 %.3f ms; cpu p50 %.3f ms "
               "mean %.3f ms; failed %d\n", v[k].name,
               cJSON_GetObjectItem(cJSON_GetObjectItem(o, "start_to_exit_ms"), "p50")->valuedouble,
               cJSON_GetObjectItem(cJSON_GetObjectItem(o, "start_to_exit_ms"), "p99")->valuedouble,
               cJSON_GetObjectItem(cJSON_GetObjectItem(o, "cpu_ms_with_descendants"), "p50")->valuedouble,
               cJSON_GetObjectItem(cJSON_GetObjectItem(o, "cpu_ms_with_descendants"), "mean")->valuedouble,
               v[k].failed);
        free(v[k].wall_us);
        free(v[k].cpu_us);
    }
    if (!(text = cJSON_Print(root)) || !(f = fopen(out, "w")))
        bx_die("writing the output");
    fputs(text, f);
    fputc('\n', f);
    fclose(f);
    free(text);
    cJSON_Delete(root);
    return failed;
}
