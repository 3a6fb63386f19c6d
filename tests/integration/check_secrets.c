/* check_secrets DIR — the secrets.logs test (issue 12 §3: "a test greps
 * every log line of the suite for planted secret values").
 *
 * DIR is RP_IT_LOG_DIR: one subdirectory per integration/e2e test run,
 * written by the rig's teardown (rp_testenv.c, rp_te_keep_logs): every
 * process log (*.log), the test's requests.jsonl and a MANIFEST ("logs N",
 * "planted NAME..."). Fails (exit 1) when
 *   - DIR holds no test, or a test's MANIFEST is missing or unreadable;
 *   - a test holds fewer *.log files than its MANIFEST counts, or none;
 *   - no test planted any secret (the check would be vacuous);
 *   - a test that planted REQUEST_ENV has no such value in its
 *     requests.jsonl (the value cannot have been sent: the grep is blind);
 *   - any line of any *.log holds any planted value (rp_te_secrets.h).
 * A hit is reported by file, line number and secret NAME, never the value.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rp_te_secrets.h"

#define CS_PATH_MAX 4096
#define CS_MANIFEST_MAX 4096

static const char *const cs_values[RP_TE_SECRETS_N] = {
#define CS_VALUE(name, value) value,
    RP_TE_SECRETS(CS_VALUE)
#undef CS_VALUE
};
static const char *const cs_names[RP_TE_SECRETS_N] = {
#define CS_NAME(name, value) #name,
    RP_TE_SECRETS(CS_NAME)
#undef CS_NAME
};

static int cs_failures;
static long cs_lines;

static void cs_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cs_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "secrets.logs: FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cs_failures++;
}

/* dir/name into out; false (and a failure) when it does not fit. */
static bool cs_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= size) {
        cs_fail("path too long: %s/%s", dir, name);
        return false;
    }
    return true;
}

static bool cs_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every line of path against every value (want < 0: each hit is a
 * failure) or against secret want only (a control file: hits counted, not
 * failures). Returns the number of hits. */
static long cs_grep(const char *path, int want)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, hits = 0;

    if (!f) {
        cs_fail("cannot read %s: %s", path, strerror(errno));
        return 0;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        for (int s = 0; s < RP_TE_SECRETS_N; s++) {
            if (want >= 0 && s != want)
                continue;
            /* memmem: a log line may hold NUL bytes. */
            if (!memmem(line, (size_t)len, cs_values[s], strlen(cs_values[s])))
                continue;
            hits++;
            if (want < 0)
                cs_fail("%s line %ld holds the planted secret %s", path,
                        lineno, cs_names[s]);
        }
        if (want < 0)
            cs_lines++;
    }
    free(line);
    fclose(f);
    return hits;
}

/* One test's directory; returns how many logs it held. */
static int cs_test_dir(const char *dir, const char *name, int *planted_count)
{
    char path[CS_PATH_MAX], manifest[CS_MANIFEST_MAX] = "";
    int expected = -1, logs = 0;
    unsigned planted = 0;
    struct dirent *de;
    FILE *f;
    DIR *d;
    char *p;

    if (!cs_join(path, sizeof(path), dir, "MANIFEST"))
        return 0;
    if (!(f = fopen(path, "r"))) {
        cs_fail("%s: no MANIFEST (%s): the test's teardown did not run",
                name, strerror(errno));
        return 0;
    }
    manifest[fread(manifest, 1, sizeof(manifest) - 1, f)] = '\0';
    fclose(f);
    if (sscanf(manifest, "logs %d", &expected) != 1 || expected < 0) {
        cs_fail("%s: unreadable MANIFEST", name);
        return 0;
    }
    if ((p = strstr(manifest, "\nplanted"))) {
        char *end = strchr(p + 1, '\n');

        if (end)
            *end = '\0';
        for (char *tok = strtok(p + 8, " "); tok; tok = strtok(NULL, " "))
            for (int s = 0; s < RP_TE_SECRETS_N; s++)
                if (!strcmp(tok, cs_names[s]))
                    planted |= 1u << s;
    }
    if (!(d = opendir(dir))) {
        cs_fail("cannot open %s: %s", dir, strerror(errno));
        return 0;
    }
    while ((de = readdir(d))) {
        if (!cs_ends_with(de->d_name, ".log"))
            continue;
        if (!cs_join(path, sizeof(path), dir, de->d_name))
            continue;
        cs_grep(path, -1);
        logs++;
    }
    closedir(d);
    if (logs == 0 || logs < expected)
        cs_fail("%s: %d of %d logs kept", name, logs, expected);
    for (int s = 0; s < RP_TE_SECRETS_N; s++)
        if (planted & (1u << s))
            planted_count[s]++;
    if (planted & (1u << RP_TE_SECRET_REQUEST_ENV)) {
        if (cs_join(path, sizeof(path), dir, "requests.jsonl") &&
            cs_grep(path, RP_TE_SECRET_REQUEST_ENV) == 0)
            cs_fail("%s: REQUEST_ENV planted but not in its requests.jsonl",
                    name);
    }
    return logs;
}

int main(int argc, char **argv)
{
    int planted_count[RP_TE_SECRETS_N] = {0};
    int tests = 0, logs = 0, any_planted = 0;
    char path[CS_PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;

    if (argc != 2) {
        fprintf(stderr, "usage: check_secrets RP_IT_LOG_DIR\n");
        return 2;
    }
    if (!(d = opendir(argv[1]))) {
        fprintf(stderr,
                "secrets.logs: FAIL: %s: %s (no integration or e2e test "
                "kept its logs there)\n",
                argv[1], strerror(errno));
        return 1;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (!cs_join(path, sizeof(path), argv[1], de->d_name))
            continue;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        tests++;
        logs += cs_test_dir(path, de->d_name, planted_count);
    }
    closedir(d);
    if (tests == 0)
        cs_fail("%s holds no test's logs: nothing was checked", argv[1]);
    for (int s = 0; s < RP_TE_SECRETS_N; s++) {
        printf("secrets.logs: %s planted in %d of %d test(s)\n", cs_names[s],
               planted_count[s], tests);
        any_planted += planted_count[s];
    }
    if (tests > 0 && any_planted == 0)
        cs_fail("no test planted any secret: the check would be vacuous");
    printf("secrets.logs: %d test(s), %d log(s), %ld line(s) checked, %d "
           "failure(s)\n",
           tests, logs, cs_lines, cs_failures);
    return cs_failures ? 1 : 0;
}
