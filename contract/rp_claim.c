/* rp_claim — the execution claim document and run names (see rp_claim.h). */
#include "rp_claim.h"
#include "rp_json.h"
#include "rp_layout.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* /proc/PID/stat: the command name alone may be 64 bytes; the whole line
 * is well under this. */
#define RP_CLAIM_STAT_MAX 4096

enum { CL_V, CL_EXECUTION_ID, CL_RUN, CL_ATTEMPT, CL_CLAIMED_AT, CL_JOB, CL__COUNT };

static const char *const rp_claim_fields[CL__COUNT] = {
    "v", "execution_id", "run", "attempt", "claimed_at_ms", "job",
};

void rp_claim_key(const char *execution_id, char *out, size_t out_size)
{
    rp_layout_execution_key(execution_id, RP_CLAIM_FILE, out, out_size);
}

/* Run and job names: printable, no quotes or spaces (they end up in logs
 * and error messages verbatim). */
static int rp_claim_name_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("._:/-", c)))
            return 0;
    }
    return len > 0;
}

char *rp_claim_to_json(const rp_claim_t *c)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    ok = ok && rp_json_add_int(root, "v", RP_CONTRACT_VERSION) &&
         rp_json_add_text(root, "execution_id", c->execution_id) &&
         rp_json_add_text(root, "run", c->run) &&
         rp_json_add_int(root, "attempt", c->attempt > 0 ? c->attempt : 1) &&
         rp_json_add_int(root, "claimed_at_ms", c->claimed_at_ms);
    if (ok && c->job[0])
        ok = rp_json_add_text(root, "job", c->job);
    return rp_json_finish(root, ok);
}

static rp_err_t rp_claim_get_name(const cJSON *it, const char *name,
                                  size_t max, char *out, char *errstr,
                                  size_t errstr_size)
{
    const char *s;
    size_t n;
    rp_err_t err = rp_json_get_str(it, "", name, 1, max, &s, &n, errstr,
                                   errstr_size);

    if (err)
        return err;
    if (!rp_claim_name_ok(s, n))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s: only letters, digits and ._:/- are allowed", name);
    memcpy(out, s, n);
    out[n] = '\0';
    return RP_OK;
}

rp_err_t rp_claim_parse(const char *json, size_t len, rp_claim_t *out,
                        char *errstr, size_t errstr_size)
{
    const cJSON *f[CL__COUNT];
    cJSON *root = NULL;
    int64_t n = 0;
    rp_err_t err;

    memset(out, 0, sizeof(*out));
    if (len > RP_CLAIM_DOC_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "claim of %zu bytes is over %d bytes", len,
                       RP_CLAIM_DOC_MAX);
    err = rp_json_load(json, len, RP_CLAIM_DOC_MAX, "claim", &root, errstr,
                       errstr_size);
    if (err)
        goto out;
    if ((err = rp_json_fields(root, "", rp_claim_fields, CL__COUNT, f, errstr,
                              errstr_size)) ||
        (err = rp_json_get_version(f[CL_V], errstr, errstr_size)) ||
        (err = rp_json_required(f[CL_EXECUTION_ID], "", "execution_id", errstr,
                                errstr_size)) ||
        (err = rp_json_get_id(f[CL_EXECUTION_ID], "execution_id",
                              out->execution_id, errstr, errstr_size)) ||
        (err = rp_json_required(f[CL_RUN], "", "run", errstr, errstr_size)) ||
        (err = rp_claim_get_name(f[CL_RUN], "run", RP_CLAIM_RUN_MAX, out->run,
                                 errstr, errstr_size)) ||
        (err = rp_json_required(f[CL_ATTEMPT], "", "attempt", errstr,
                                errstr_size)) ||
        (err = rp_json_get_int(f[CL_ATTEMPT], "", "attempt", 1,
                               RP_CLAIM_ATTEMPTS_MAX, &n, errstr,
                               errstr_size)))
        goto out;
    out->attempt = (int)n;
    if ((err = rp_json_required(f[CL_CLAIMED_AT], "", "claimed_at_ms", errstr,
                                errstr_size)) ||
        (err = rp_json_get_int(f[CL_CLAIMED_AT], "", "claimed_at_ms", 0,
                               RP_JSON_INT_MAX, &out->claimed_at_ms, errstr,
                               errstr_size)))
        goto out;
    if (f[CL_JOB])
        err = rp_claim_get_name(f[CL_JOB], "job", RP_CLAIM_JOB_MAX, out->job,
                                errstr, errstr_size);
out:
    cJSON_Delete(root);
    if (err)
        memset(out, 0, sizeof(*out));
    return err;
}

/* Read a small /proc file whole into buf (NUL-terminated). */
static rp_err_t rp_claim_read_small(const char *path, char *buf, size_t size,
                                    size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;

    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? RP_ERR_NOT_FOUND : RP_ERR_IO;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, size - 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;

            close(fd);
            return e == ESRCH ? RP_ERR_NOT_FOUND : RP_ERR_IO;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return RP_OK;
}

rp_err_t rp_claim_boot_id(char out[RP_CLAIM_BOOT_ID_MAX + 1])
{
    char buf[RP_CLAIM_BOOT_ID_MAX + 2];
    size_t n = 0;
    struct stat ns;
    rp_err_t err = rp_claim_read_small("/proc/sys/kernel/random/boot_id", buf,
                                       sizeof(buf), &n);

    if (err)
        return err == RP_ERR_NOT_FOUND ? RP_ERR_IO : err;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    /* Pids mean something only inside one pid namespace (two pods on one
     * node share the boot id, not their pids): name it too. */
    if (stat("/proc/self/ns/pid", &ns) != 0)
        return RP_ERR_IO;
    if (n + 22 > RP_CLAIM_BOOT_ID_MAX)
        return RP_ERR_PROTOCOL;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%llu",
                          (unsigned long long)ns.st_ino);
    if (!rp_claim_name_ok(buf, n) || n > RP_CLAIM_BOOT_ID_MAX)
        return RP_ERR_PROTOCOL;
    memcpy(out, buf, n + 1);
    return RP_OK;
}

rp_err_t rp_claim_start_ticks(pid_t pid, uint64_t *out)
{
    char path[64], buf[RP_CLAIM_STAT_MAX], *p, *end;
    size_t n = 0;
    rp_err_t err;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((err = rp_claim_read_small(path, buf, sizeof(buf), &n)))
        return err;
    /* Field 2 is "(comm)" and comm may hold spaces and ')': count fields
     * after the last ')'. It is followed by field 3 (state). */
    if (!(p = strrchr(buf, ')')))
        return RP_ERR_PROTOCOL;
    p++;
    for (int field = 3; field < 22; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return RP_ERR_PROTOCOL;
        while (*p && *p != ' ')
            p++;
    }
    while (*p == ' ')
        p++;
    errno = 0;
    *out = strtoull(p, &end, 10);
    if (end == p || errno)
        return RP_ERR_PROTOCOL;
    return RP_OK;
}

rp_err_t rp_claim_local_run(pid_t pid, char *run, char *errstr,
                            size_t errstr_size)
{
    char boot[RP_CLAIM_BOOT_ID_MAX + 1];
    uint64_t ticks = 0;
    rp_err_t err;

    if ((err = rp_claim_boot_id(boot)))
        return rp_errf(errstr, errstr_size, err,
                       "cannot read /proc/sys/kernel/random/boot_id");
    if ((err = rp_claim_start_ticks(pid, &ticks)))
        return rp_errf(errstr, errstr_size, err,
                       "cannot read the start time of process %ld",
                       (long)pid);
    snprintf(run, RP_CLAIM_RUN_MAX + 1, "local:%s:%ld:%" PRIu64, boot,
             (long)pid, ticks);
    return RP_OK;
}

rp_err_t rp_claim_local_parse(const char *run,
                              char boot_id[RP_CLAIM_BOOT_ID_MAX + 1],
                              pid_t *pid, uint64_t *start_ticks)
{
    const char *b, *c1, *c2;
    char *end;
    long p;

    if (!run || strncmp(run, "local:", 6) != 0)
        return RP_ERR_INVALID;
    b = run + 6;
    if (!(c1 = strchr(b, ':')) || !(c2 = strchr(c1 + 1, ':')) ||
        (size_t)(c1 - b) > RP_CLAIM_BOOT_ID_MAX || c1 == b)
        return RP_ERR_INVALID;
    errno = 0;
    p = strtol(c1 + 1, &end, 10);
    if (end != c2 || p <= 0 || errno || p > INT32_MAX)
        return RP_ERR_INVALID;
    *start_ticks = strtoull(c2 + 1, &end, 10);
    if (end == c2 + 1 || *end || errno)
        return RP_ERR_INVALID;
    memcpy(boot_id, b, (size_t)(c1 - b));
    boot_id[c1 - b] = '\0';
    *pid = (pid_t)p;
    return RP_OK;
}

rp_err_t rp_claim_self_run(const char *(*lookup)(const char *name,
                                                 void *opaque),
                           void *opaque, char *run, char *job, char *errstr,
                           size_t errstr_size)
{
    const char *ex = lookup("CLOUD_RUN_EXECUTION", opaque);
    const char *jb = lookup("CLOUD_RUN_JOB", opaque);
    int n;

    job[0] = '\0';
    if (!ex || !ex[0])
        return rp_claim_local_run(getpid(), run, errstr, errstr_size);
    n = snprintf(run, RP_CLAIM_RUN_MAX + 1, "cloudrun:%s", ex);
    if (n < 0 || n > RP_CLAIM_RUN_MAX || !rp_claim_name_ok(run, (size_t)n))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "CLOUD_RUN_EXECUTION is not a usable execution name");
    if (jb && jb[0]) {
        if (strlen(jb) > RP_CLAIM_JOB_MAX || !rp_claim_name_ok(jb, strlen(jb)))
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "CLOUD_RUN_JOB is not a usable job name");
        memcpy(job, jb, strlen(jb) + 1);
    }
    return RP_OK;
}
