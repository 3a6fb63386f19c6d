/* e2e.workspace — a session keeps its files across commands (issue 11 §1,
 * docs/workspace.md), with real processes end to end:
 *
 *   cloudrun  the Cloud Run fake + fake-gcs-server + Kafka, one worker;
 *             the fake gives every container a fresh, empty filesystem
 *             area (its RUNPOOL_WORKSPACE) and removes it afterwards, so
 *             nothing but the snapshot carries files from one command to
 *             the next;
 *   local     two local workers (file:// state, --workspace /workspace:
 *             a fresh scratch directory per execution); the worker that
 *             ran a session's first commands is stopped, so the rest run
 *             on the other.
 *
 * Both run the same sessions:
 *   git    `git init` + commit in one command, `git log` / `git status`
 *          in the next (cwd inside the workspace carried over);
 *   big    a 50 MB file, then one small file changed per command: the
 *          record says the upload was small, then nothing at all when
 *          nothing changed; the 50 MB come back intact;
 *   cap    past --workspace-max-files and --workspace-max-bytes:
 *          workspace_saved false + the code, the output still there, and
 *          the next command sees the previous workspace;
 *   link   a symlink pointing outside the workspace (and a fifo): kept as
 *          a symlink, nothing written through it outside; the fifo is
 *          skipped and reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define WAIT_MS 180000
#define MAX_FILES "1000"
#define MAX_BYTES "62914560" /* 60 MiB: the 50 MB session fits */
#define BIG_BYTES 52428800
/* One small file changed in a 50 MB workspace: a few chunks at most
 * (max chunk 256 KiB, compressed), never the 50 MB. */
#define SMALL_UPLOAD_MAX (1024 * 1024)

static bool g_cloud;

/* The executor's record of eid, from the store (caller frees). */
static cJSON *record(rp_te_t *te, const char *eid)
{
    char path[PATH_MAX], rel[300], *text;
    cJSON *doc;

    if (g_cloud) {
        rp_te_format(rel, sizeof(rel), "%s/executions/%s/result.json",
                     RP_TE_CLOUD_PREFIX, eid);
        text = rp_te_cloud_gcs_get(te, rel, NULL);
    } else {
        rp_te_format(rel, sizeof(rel), "state/executions/%s/result.json", eid);
        rp_te_path(te, path, sizeof(path), rel);
        text = rp_te_read_file(path, NULL);
    }
    if (!text)
        fail_msg("no record for %s", eid);
    if (!(doc = cJSON_Parse(text)))
        fail_msg("record of %s is not JSON: %s", eid, text);
    free(text);
    return doc;
}

static const cJSON *ws_of(const cJSON *rec)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(rec, "workspace");

    if (!cJSON_IsObject(ws))
        fail_msg("record without a workspace report");
    return ws;
}

static long long num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v))
        fail_msg("no number %s", name);
    return (long long)v->valuedouble;
}

static bool flag(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsBool(v))
        fail_msg("no boolean %s", name);
    return cJSON_IsTrue(v);
}

/* Send one command and wait for its result; returns it. */
static const rp_te_msg_t *run(rp_te_t *te, const char *sid, const char *eid,
                              const char *cmd, const char *status,
                              const char *out)
{
    const rp_te_msg_t *m;

    rp_te_send_exec(te, sid, eid, cmd, 120, NULL);
    rp_te_flush(te);
    m = rp_te_wait_result(te, eid, WAIT_MS);
    rp_te_expect(te, m, status, out);
    return m;
}

static void expect_saved(const rp_te_msg_t *m, bool saved, const char *code)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->json,
                                                      "workspace_saved");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(m->json,
                                                      "workspace_error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");

    if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != saved)
        fail_msg("expected workspace_saved %s: %s", saved ? "true" : "false",
                 rp_te_describe(m));
    if (!saved && (!cJSON_IsString(c) || strcmp(c->valuestring, code)))
        fail_msg("expected workspace_error.code %s: %s", code,
                 rp_te_describe(m));
    if (saved && e)
        fail_msg("workspace_error with workspace_saved true: %s",
                 rp_te_describe(m));
}

static const char *str(const rp_te_msg_t *m, const char *field)
{
    const char *s = rp_te_str(m, field);

    if (!s)
        fail_msg("no %s: %s", field, rp_te_describe(m));
    return s;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n >= t && !strcmp(s + n - t, tail);
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* The sessions. on_switch (may be NULL) runs after the first command of
 * each session: the local test stops the worker that ran it there. */
static void sessions(rp_te_t *te, void (*on_switch)(rp_te_t *, const char *))
{
    char outside[PATH_MAX], cmd[PATH_MAX + 256], expect[PATH_MAX + 64];
    char cwd1[PATH_MAX], sha[128];
    const rp_te_msg_t *m;
    cJSON *rec;
    const cJSON *ws;

    /* git: a repository made in one command is there in the next. */
    m = run(te, "git", "git-1",
            "git init -q repo && cd repo && git config user.email t@e.st && "
            "git config user.name t && echo hello > README && git add README "
            "&& git commit -qm first && echo done",
            "succeeded", "done\n");
    expect_saved(m, true, NULL);
    snprintf(cwd1, sizeof(cwd1), "%s", str(m, "cwd"));
    assert_true(ends_with(cwd1, "/repo"));
    if (on_switch)
        on_switch(te, str(m, "worker"));
    m = run(te, "git", "git-2",
            "git log --format=%s && git status --porcelain && pwd | "
            "sed 's,.*/,,'",
            "succeeded", "first\nrepo\n");
    expect_saved(m, true, NULL);
    /* Every execution had a directory of its own, the cwd followed. */
    assert_true(ends_with(str(m, "cwd"), "/repo"));
    if (!g_cloud)
        assert_string_not_equal(str(m, "cwd"), cwd1);
    run(te, "git", "git-3", "echo more >> README && git commit -qam second "
        "&& git log --format=%s | wc -l", "succeeded", "2\n");

    /* big: 50 MB once, then one small file per command. */
    rp_te_format(cmd, sizeof(cmd),
                 "head -c %d /dev/urandom > big.bin && echo 1 > small && "
                 "sha256sum big.bin | cut -c1-64",
                 BIG_BYTES);
    m = run(te, "big", "big-1", cmd, "succeeded", NULL);
    expect_saved(m, true, NULL);
    snprintf(sha, sizeof(sha), "%s", str(m, "stdout"));
    rec = record(te, "big-1");
    ws = ws_of(rec);
    assert_true(flag(ws, "saved"));
    assert_true(num(ws, "bytes") >= BIG_BYTES);
    assert_true(num(ws, "bytes_uploaded") >= BIG_BYTES * 9LL / 10);
    cJSON_Delete(rec);
    if (on_switch)
        on_switch(te, str(m, "worker"));
    for (int i = 2; i <= 4; i++) {
        char eid[32];

        snprintf(eid, sizeof(eid), "big-%d", i);
        rp_te_format(cmd, sizeof(cmd), "cat small && echo %d > small", i);
        rp_te_format(expect, sizeof(expect), "%d\n", i - 1);
        m = run(te, "big", eid, cmd, "succeeded", expect);
        expect_saved(m, true, NULL);
        rec = record(te, eid);
        ws = ws_of(rec);
        assert_true(flag(ws, "saved"));
        assert_false(flag(ws, "unchanged"));
        if (num(ws, "bytes_uploaded") > SMALL_UPLOAD_MAX)
            fail_msg("%s: one small file changed, %lld bytes uploaded", eid,
                     num(ws, "bytes_uploaded"));
        assert_true(num(ws, "bytes") >= BIG_BYTES);
        cJSON_Delete(rec);
    }
    /* Nothing changed: nothing uploaded, the same snapshot. */
    m = run(te, "big", "big-5", "sha256sum big.bin | cut -c1-64; cat small",
            "succeeded", NULL);
    rp_te_format(expect, sizeof(expect), "%s4\n", sha);
    assert_string_equal(str(m, "stdout"), expect);
    rec = record(te, "big-5");
    ws = ws_of(rec);
    assert_true(flag(ws, "unchanged"));
    assert_int_equal(num(ws, "bytes_uploaded"), 0);
    cJSON_Delete(rec);

    /* cap: over the caps the output is still returned and the session
     * keeps its previous workspace. */
    m = run(te, "cap", "cap-1", "echo keep > keep.txt && echo one",
            "succeeded", "one\n");
    expect_saved(m, true, NULL);
    m = run(te, "cap", "cap-2",
            "mkdir many && cd many && seq 1 1500 | xargs touch && "
            "echo output-here",
            "succeeded", "output-here\n");
    expect_saved(m, false, "workspace_too_many_files");
    rec = record(te, "cap-2");
    ws = ws_of(rec);
    assert_false(flag(ws, "saved"));
    assert_null(cJSON_GetObjectItemCaseSensitive(ws, "manifest"));
    cJSON_Delete(rec);
    /* The cwd moved on (into many/, empty now); the files did not. */
    m = run(te, "cap", "cap-3", "ls | wc -l; cat ../keep.txt; ls .. | wc -l",
            "succeeded", "0\nkeep\n2\n");
    expect_saved(m, true, NULL);
    m = run(te, "cap", "cap-4",
            "cd .. && head -c 70000000 /dev/zero > zeros && echo big-output",
            "succeeded", "big-output\n");
    expect_saved(m, false, "workspace_too_large");
    run(te, "cap", "cap-5", "ls; cat keep.txt", "succeeded",
        "keep.txt\nmany\nkeep\n");

    /* link: a symlink out of the workspace stays a symlink; the restore
     * writes nothing through it. */
    rp_te_path(te, outside, sizeof(outside), "outside");
    if (mkdir(outside, 0777) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", outside, strerror(errno));
    rp_te_format(cmd, sizeof(cmd),
                 "ln -s %s out && ln -s /etc/hostname host && mkdir d && "
                 "echo x > d/f && mkfifo pipe && echo made",
                 outside);
    m = run(te, "link", "link-1", cmd, "succeeded", "made\n");
    expect_saved(m, true, NULL);
    rec = record(te, "link-1");
    ws = ws_of(rec);
    assert_int_equal(num(ws, "skipped"), 1);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ws,
                                                            "skipped_paths"),
                           0)
            ->valuestring,
        "pipe");
    cJSON_Delete(rec);
    rp_te_format(expect, sizeof(expect), "%s\n/etc/hostname\nlink\nx\nno-pipe\n",
                 outside);
    run(te, "link", "link-2",
        "readlink out; readlink host; test -L out && echo link; cat d/f; "
        "test -e pipe || echo no-pipe",
        "succeeded", expect);
    assert_int_equal(dir_entries(outside), 0);
}

/* The Cloud Run fake: every container's area is gone once it ended. */
static void check_areas(rp_te_t *te, long min_areas)
{
    char fs[PATH_MAX];
    cJSON *stats = rp_te_cloud_stats(te);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(stats, "filesystem_areas");

    if (!cJSON_IsNumber(n) || n->valuedouble < (double)min_areas)
        fail_msg("the fake gave %g filesystem areas, expected >= %ld",
                 cJSON_IsNumber(n) ? n->valuedouble : -1.0, min_areas);
    cJSON_Delete(stats);
    rp_te_path(te, fs, sizeof(fs), "cloudrun/fs");
    for (int i = 0; i < 100 && dir_entries(fs) != 0; i++)
        rp_te_sleep_ms(100); /* removed as the fake reaps the process */
    assert_int_equal(dir_entries(fs), 0);
}

static void test_workspace_cloudrun(void **state)
{
    rp_te_t *te = *state;
    static const char *const args[] = {"--workspace-max-files", MAX_FILES,
                                       "--workspace-max-bytes", MAX_BYTES,
                                       NULL};
    char executor[PATH_MAX], emu[300], config[2 * PATH_MAX + 600];
    int w;

    g_cloud = true;
    rp_te_cloud_start(te, "template");
    /* The image without RUNPOOL_DEFAULT_CWD: sessions start in their
     * workspace (the Dockerfile's ENV RUNPOOL_WORKSPACE=/workspace comes
     * from the worker's --workspace default here). */
    rp_te_format(executor, sizeof(executor), "%s/runpool-executor",
                 te->bin_dir);
    rp_te_format(emu, sizeof(emu), "STORAGE_EMULATOR_HOST=%s", te->gcs_url);
    rp_te_format(config, sizeof(config),
                 "{\"images\":{\"%s\":[\"/usr/bin/env\",\"%s\",\"%s\"]}}",
                 RP_TE_CLOUD_IMAGE, emu, executor);
    rp_te_cloud_config(te, config);
    w = rp_te_start_worker_args(te, args);
    rp_te_wait_group(te, &w, 1, 60000);
    sessions(te, NULL);
    check_areas(te, 15);
    rp_te_finish(te);
}

/* Local: stop the worker that ran the command, so the session's next
 * command runs on the other one (the two share only the state store). */
static int g_workers[3];
static int g_live = 2;

static void local_switch(rp_te_t *te, const char *worker)
{
    int idx = rp_te_worker_by_id(te, worker), other = -1;
    const char *const args[] = {"--workspace", "/workspace",
                                "--workspace-max-files", MAX_FILES,
                                "--workspace-max-bytes", MAX_BYTES, NULL};

    if (idx < 0)
        fail_msg("no worker %s", worker);
    rp_te_signal(te, idx, SIGTERM);
    if (!rp_te_wait_exit(te, idx, 60000))
        fail_msg("%s did not stop", worker);
    for (int i = 0; i < g_live; i++)
        if (g_workers[i] != idx)
            other = g_workers[i];
    /* A fresh second worker, so there are two again for the next. */
    g_workers[0] = other;
    g_workers[1] = rp_te_start_worker_args(te, args);
    rp_te_wait_group(te, g_workers, 2, 60000);
}

static void test_workspace_local(void **state)
{
    rp_te_t *te = *state;
    const char *const args[] = {"--workspace", "/workspace",
                                "--workspace-max-files", MAX_FILES,
                                "--workspace-max-bytes", MAX_BYTES, NULL};
    char scratch[PATH_MAX];

    g_cloud = false;
    g_workers[0] = rp_te_start_worker_args(te, args);
    g_workers[1] = rp_te_start_worker_args(te, args);
    rp_te_wait_group(te, g_workers, 2, 60000);
    sessions(te, local_switch);
    /* Each execution's scratch directory was removed by its executor. */
    rp_te_path(te, scratch, sizeof(scratch), "work/.scratch");
    assert_int_equal(dir_entries(scratch), 0);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workspace_local, rp_te_setup,
                                        rp_te_teardown),
        cmocka_unit_test_setup_teardown(test_workspace_cloudrun, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
