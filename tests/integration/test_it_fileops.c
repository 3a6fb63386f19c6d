/* integration.fileops — file ops done by a real worker (local backend,
 * file:// store) on a session's workspace snapshot, no command run:
 * write_file then read_file (text and base64), a command that sees what
 * write_file wrote and read_file what a command wrote (and its symlink to
 * /etc not followed), list_files (direct and
 * recursive), find, search, replace_in_file (and a count that does not
 * match, which changes nothing), delete (a non-empty directory needs
 * recursive), upload and download of a 3 MiB object through the store,
 * paths that leave the workspace refused with invalid_path while the
 * worker goes on, a write_file delivered again answered from its record
 * (reused) without writing twice, superseded snapshots collected, and
 * close_session taking the workspace with it. Every result is checked
 * against result.schema.json at the end (rp_te_finish), the session state
 * and a record against theirs.
 *
 * `test_it_fileops cloudrun` (e2e.devbroker.fileops) runs the same on the
 * cloudrun backend: the Cloud Run fake runs the commands, each in its own
 * fresh filesystem area, and fake-gcs-server holds the state
 * (gs://rp-e2e/it), so the transfers are objects of the bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define SID "fo-s1"
#define WAIT_MS (g_cloud ? 180000 : 60000) /* a Cloud Run start is slower */
#define BIG_BYTES (3 * 1024 * 1024) /* over a Kafka message's 1 MiB */

static bool g_cloud; /* the cloudrun backend, state in fake-gcs-server */

/* A state-store object's bytes, NUL-terminated (caller frees); NULL when
 * absent. rel is its key. */
static char *store_get(rp_te_t *te, const char *key, size_t *len)
{
    char path[PATH_MAX], rel[PATH_MAX];
    char *text;

    if (g_cloud) {
        rp_te_format(rel, sizeof(rel), "%s/%s", RP_TE_CLOUD_PREFIX, key);
        text = rp_te_cloud_gcs_get(te, rel, NULL);
        if (text && len)
            *len = strlen(text);
        return text;
    }
    rp_te_format(rel, sizeof(rel), "state/%s", key);
    rp_te_path(te, path, sizeof(path), rel);
    return rp_te_read_file(path, len);
}

/* A file-op request of op on SID: members as name, value pairs; a value
 * starting with '#' is a number, "true"/"false" booleans, else a string. */
static void send_op(rp_te_t *te, const char *eid, const char *op, ...)
{
    cJSON *doc = cJSON_CreateObject();
    const char *name, *val;
    va_list ap;

    assert_non_null(doc);
    cJSON_AddNumberToObject(doc, "v", 1);
    cJSON_AddStringToObject(doc, "execution_id", eid);
    cJSON_AddStringToObject(doc, "session_id", SID);
    cJSON_AddStringToObject(doc, "op", op);
    va_start(ap, op);
    while ((name = va_arg(ap, const char *))) {
        val = va_arg(ap, const char *);
        if (val[0] == '#')
            cJSON_AddNumberToObject(doc, name, atof(val + 1));
        else if (!strcmp(val, "true") || !strcmp(val, "false"))
            cJSON_AddBoolToObject(doc, name, !strcmp(val, "true"));
        else
            cJSON_AddStringToObject(doc, name, val);
    }
    va_end(ap);
    rp_te_send_request(te, SID, doc);
    rp_te_flush(te);
}

/* The result of eid, which must have this status (and for failed, this
 * error code); returns its op_result (NULL for a failure). */
static const cJSON *expect_op(rp_te_t *te, const char *eid, const char *op,
                              const char *status, const char *code)
{
    const rp_te_msg_t *m = rp_te_need_result(te, eid, WAIT_MS);
    const cJSON *r;

    if (strcmp(rp_te_str(m, "status"), status))
        fail_msg("%s: want %s, got %s", eid, status, rp_te_describe(m));
    assert_string_equal(rp_te_str(m, "op"), op);
    if (code) {
        if (!rp_te_error(m, "code") || strcmp(rp_te_error(m, "code"), code))
            fail_msg("%s: want code %s, got %s", eid, code, rp_te_describe(m));
        print_message("%s refused as expected: %s\n", eid,
                      rp_te_error(m, "message"));
        return NULL;
    }
    r = cJSON_GetObjectItemCaseSensitive(m->json, "op_result");
    if (!cJSON_IsObject(r))
        fail_msg("%s: no op_result: %s", eid, m->value);
    return r;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(v))
        fail_msg("no string %s", name);
    return v->valuestring;
}

static long long jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v))
        fail_msg("no number %s", name);
    return (long long)v->valuedouble;
}

static bool jbool(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsBool(v))
        fail_msg("no boolean %s", name);
    return cJSON_IsTrue(v);
}

/* The paths of a list_files/find result, as "a,b,c". */
static void paths(const cJSON *r, char *out, size_t size)
{
    const cJSON *e;

    out[0] = '\0';
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "entries"))
    {
        size_t n = strlen(out);

        snprintf(out + n, size - n, "%s%s", n ? "," : "", jstr(e, "path"));
    }
}

static void read_expect(rp_te_t *te, const char *eid, const char *path,
                        const char *content, const char *encoding)
{
    const cJSON *r;

    send_op(te, eid, "read_file", "path", path, NULL);
    r = expect_op(te, eid, "read_file", "succeeded", NULL);
    assert_string_equal(jstr(r, "content"), content);
    assert_string_equal(jstr(r, "encoding"), encoding);
    assert_false(jbool(r, "truncated"));
}

/* Entries in a directory of the test's tree (-1: none). */
static int count_dir(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX];
    struct dirent *d;
    DIR *dir;
    int n = 0;

    rp_te_path(te, path, sizeof(path), rel);
    if (!(dir = opendir(path)))
        return -1;
    while ((d = readdir(dir)))
        n += d->d_name[0] != '.' && d->d_name[0] != '+';
    closedir(dir);
    return n;
}

static int files_seen;

static int count_one(const char *p, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)p;
    (void)sb;
    (void)ftw;
    files_seen += flag == FTW_F;
    return 0;
}

/* Regular files anywhere below a directory of the test's tree (the file
 * store leaves empty directories behind; they hold no objects). */
static int count_files(rp_te_t *te, const char *rel)
{
    char path[PATH_MAX];

    rp_te_path(te, path, sizeof(path), rel);
    files_seen = 0;
    if (nftw(path, count_one, 16, FTW_PHYS) != 0)
        return -1;
    return files_seen;
}

static void write_bytes(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        fail_msg("cannot write %s", path);
}

static void test_fileops(void **state)
{
    rp_te_t *te = *state;
    char list[4096], path[PATH_MAX];
    const cJSON *r, *m0;
    unsigned char *big;
    size_t got_len = 0;
    char *got, *text;
    cJSON *doc;
    int worker;

    if (g_cloud) {
        char executor[PATH_MAX], emu[300], config[2 * PATH_MAX + 600];

        rp_te_cloud_start(te, "template");
        rp_te_format(executor, sizeof(executor), "%s/runpool-executor",
                     te->bin_dir);
        rp_te_format(emu, sizeof(emu), "STORAGE_EMULATOR_HOST=%s",
                     te->gcs_url);
        rp_te_format(config, sizeof(config),
                     "{\"images\":{\"%s\":[\"/usr/bin/env\",\"%s\",\"%s\"]}}",
                     RP_TE_CLOUD_IMAGE, emu, executor);
        rp_te_cloud_config(te, config);
    }
    worker = rp_te_start_worker_args(
        te, (const char *const[]){"--workspace", "/workspace", NULL});
    rp_te_wait_group(te, &worker, 1, 60000);

    /* write_file, then read it back: text, and bytes as base64. */
    send_op(te, "w1", "write_file", "path", "a.txt", "content",
            "hello world\n", NULL);
    r = expect_op(te, "w1", "write_file", "succeeded", NULL);
    assert_true(jbool(r, "created"));
    assert_int_equal(jint(r, "size"), 12);
    assert_int_equal(jint(r, "mode"), 0644);
    read_expect(te, "r1", "a.txt", "hello world\n", "utf-8");
    send_op(te, "w2", "write_file", "path", "bin/x", "content", "AAEC/w==",
            "encoding", "base64", "mode", "#493", NULL);
    expect_op(te, "w2", "write_file", "succeeded", NULL);
    read_expect(te, "r2", "bin/x", "AAEC/w==", "base64");
    send_op(te, "r2b", "read_file", "path", "bin/x", "length", "#2", NULL);
    r = expect_op(te, "r2b", "read_file", "succeeded", NULL);
    assert_string_equal(jstr(r, "content"), "AAE="); /* 00 01 */
    assert_string_equal(jstr(r, "encoding"), "base64");
    send_op(te, "r2c", "read_file", "path", "bin/x", "offset", "#1",
            "length", "#2", NULL);
    r = expect_op(te, "r2c", "read_file", "succeeded", NULL);
    /* 01 02: valid UTF-8 without NUL, so text, as stdout would be. */
    assert_string_equal(jstr(r, "content"), "\x01\x02");
    assert_string_equal(jstr(r, "encoding"), "utf-8");
    assert_true(jbool(r, "truncated"));
    assert_int_equal(jint(r, "size"), 4);
    assert_int_equal(jint(r, "mode"), 0755);
    send_op(te, "w3", "write_file", "path", "src/deep/b.c", "content",
            "int main(void) { return 0; }\n// TODO: fix\n", NULL);
    expect_op(te, "w3", "write_file", "succeeded", NULL);
    /* Without parents a missing directory is an error, not made. */
    send_op(te, "w4", "write_file", "path", "nodir/c", "content", "x",
            "parents", "false", NULL);
    expect_op(te, "w4", "write_file", "failed", "not_found");
    send_op(te, "w5", "write_file", "path", "src", "content", "x", NULL);
    expect_op(te, "w5", "write_file", "failed", "is_a_directory");
    send_op(te, "w6", "write_file", "path", "a.txt/under", "content", "x",
            NULL);
    expect_op(te, "w6", "write_file", "failed", "not_a_directory");

    /* list_files: direct entries, then the whole tree; find; search. */
    send_op(te, "l1", "list_files", NULL);
    r = expect_op(te, "l1", "list_files", "succeeded", NULL);
    paths(r, list, sizeof(list));
    assert_string_equal(list, "a.txt,bin,src");
    assert_false(jbool(r, "truncated"));
    send_op(te, "l2", "list_files", "path", "src", "recursive", "true", NULL);
    r = expect_op(te, "l2", "list_files", "succeeded", NULL);
    paths(r, list, sizeof(list));
    assert_string_equal(list, "src/deep,src/deep/b.c");
    send_op(te, "l3", "list_files", "recursive", "true", "limit", "#2", NULL);
    r = expect_op(te, "l3", "list_files", "succeeded", NULL);
    assert_true(jbool(r, "truncated"));
    send_op(te, "l4", "list_files", "path", "a.txt", NULL);
    expect_op(te, "l4", "list_files", "failed", "not_a_directory");
    send_op(te, "f1", "find", "name", "*.c", NULL);
    r = expect_op(te, "f1", "find", "succeeded", NULL);
    paths(r, list, sizeof(list));
    assert_string_equal(list, "src/deep/b.c");
    send_op(te, "f2", "find", "name", "*", "type", "d", NULL);
    r = expect_op(te, "f2", "find", "succeeded", NULL);
    paths(r, list, sizeof(list));
    assert_string_equal(list, "bin,src,src/deep");
    send_op(te, "s1", "search", "pattern", "TODO", "fixed", "true", NULL);
    r = expect_op(te, "s1", "search", "succeeded", NULL);
    m0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "matches"), 0);
    assert_non_null(m0);
    assert_string_equal(jstr(m0, "path"), "src/deep/b.c");
    assert_int_equal(jint(m0, "line"), 2);
    assert_string_equal(jstr(m0, "text"), "// TODO: fix");
    assert_int_equal(cJSON_GetArraySize(
                         cJSON_GetObjectItemCaseSensitive(r, "matches")), 1);
    send_op(te, "s2", "search", "pattern", "^HEL+O", "ignore_case", "true",
            "glob", "*.txt", NULL);
    r = expect_op(te, "s2", "search", "succeeded", NULL);
    assert_int_equal(cJSON_GetArraySize(
                         cJSON_GetObjectItemCaseSensitive(r, "matches")), 1);
    assert_int_equal(jint(r, "files_searched"), 1);
    send_op(te, "s3", "search", "pattern", "(", NULL);
    expect_op(te, "s3", "search", "failed", "invalid");
    /* Back-references are refused (exponential matching); in a bracket
     * expression a backslash and a digit are plain characters. */
    send_op(te, "s4", "search", "pattern", "^(a+)+\\1$", NULL);
    expect_op(te, "s4", "search", "failed", "invalid");
    send_op(te, "s5", "search", "pattern", "[\\1]HEL", "ignore_case", "true",
            NULL);
    expect_op(te, "s5", "search", "succeeded", NULL);

    /* replace_in_file: count must match, else nothing changes. */
    send_op(te, "x1", "replace_in_file", "path", "a.txt", "old", "o", "new",
            "0", NULL);
    expect_op(te, "x1", "replace_in_file", "failed", "count_mismatch");
    read_expect(te, "r3", "a.txt", "hello world\n", "utf-8");
    send_op(te, "x2", "replace_in_file", "path", "a.txt", "old", "world",
            "new", "there", NULL);
    r = expect_op(te, "x2", "replace_in_file", "succeeded", NULL);
    assert_int_equal(jint(r, "replaced"), 1);
    read_expect(te, "r4", "a.txt", "hello there\n", "utf-8");

    /* Commands and file ops see the same files: a command reads what
     * write_file wrote, read_file what a command wrote. */
    rp_te_send_exec(te, SID, "c-cat", "cat a.txt && ls src/deep", 0, NULL);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "c-cat", WAIT_MS), "succeeded",
                 "hello there\nb.c\n");
    rp_te_send_exec(te, SID, "c-make",
                    "mkdir -p out && printf 'made by a command\\n' > "
                    "out/made.txt && ln -s /etc etc",
                    0, NULL);
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "c-make", WAIT_MS), "succeeded",
                 "");
    read_expect(te, "r4b", "out/made.txt", "made by a command\n", "utf-8");
    /* The command's symlink to /etc is never followed. */
    send_op(te, "e0", "read_file", "path", "etc/passwd", NULL);
    expect_op(te, "e0", "read_file", "failed", "invalid_path");
    send_op(te, "d0", "delete", "path", "etc", NULL);
    r = expect_op(te, "d0", "delete", "succeeded", NULL);
    assert_string_equal(jstr(r, "type"), "l");
    send_op(te, "d0b", "delete", "path", "out", "recursive", "true", NULL);
    expect_op(te, "d0b", "delete", "succeeded", NULL);

    /* Paths that leave the workspace: refused, and the worker goes on. */
    send_op(te, "e1", "read_file", "path", "../../etc/passwd", NULL);
    expect_op(te, "e1", "read_file", "failed", "invalid_path");
    send_op(te, "e2", "read_file", "path", "/etc/passwd", NULL);
    expect_op(te, "e2", "read_file", "failed", "invalid_path");
    send_op(te, "e3", "write_file", "path", "src/../../x", "content", "x",
            NULL);
    expect_op(te, "e3", "write_file", "failed", "invalid_path");
    send_op(te, "e4", "list_files", "path", "..", NULL);
    expect_op(te, "e4", "list_files", "failed", "invalid_path");
    send_op(te, "e5", "delete", "path", ".", NULL);
    expect_op(te, "e5", "delete", "failed", "invalid_path");
    send_op(te, "e6", "read_file", "path", "missing", NULL);
    expect_op(te, "e6", "read_file", "failed", "not_found");
    assert_true(rp_te_alive(te, worker));

    /* delete: a directory that is not empty needs recursive. */
    send_op(te, "d1", "delete", "path", "src", NULL);
    expect_op(te, "d1", "delete", "failed", "is_a_directory");
    send_op(te, "d2", "delete", "path", "src", "recursive", "true", NULL);
    r = expect_op(te, "d2", "delete", "succeeded", NULL);
    assert_int_equal(jint(r, "deleted"), 3);
    assert_string_equal(jstr(r, "type"), "d");
    send_op(te, "l5", "list_files", "recursive", "true", NULL);
    r = expect_op(te, "l5", "list_files", "succeeded", NULL);
    paths(r, list, sizeof(list));
    assert_string_equal(list, "a.txt,bin,bin/x");

    /* upload and download: 3 MiB through the store, not Kafka (text, so
     * the bucket's test helper can carry it; bytes are bytes to the ops). */
    assert_non_null(big = malloc(BIG_BYTES + 1));
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (unsigned char)('a' + ((i * 2654435761u) >> 13) % 26);
    big[BIG_BYTES] = '\0';
    if (g_cloud) {
        rp_te_cloud_gcs_put(te, RP_TE_CLOUD_PREFIX "/transfers/in.bin",
                            (const char *)big);
    } else {
        rp_te_path(te, path, sizeof(path), "state/transfers");
        assert_int_equal(mkdir(path, 0700), 0);
        rp_te_path(te, path, sizeof(path), "state/transfers/in.bin");
        write_bytes(path, big, BIG_BYTES);
    }
    send_op(te, "u1", "upload", "path", "data/in.bin", "object",
            "transfers/in.bin", NULL);
    r = expect_op(te, "u1", "upload", "succeeded", NULL);
    assert_int_equal(jint(r, "size"), BIG_BYTES);
    send_op(te, "u2", "upload", "path", "data/none", "object",
            "transfers/none.bin", NULL);
    expect_op(te, "u2", "upload", "failed", "not_found");
    send_op(te, "g1", "download", "path", "data/in.bin", "object",
            "transfers/out.bin", NULL);
    r = expect_op(te, "g1", "download", "succeeded", NULL);
    assert_int_equal(jint(r, "size"), BIG_BYTES);
    got = store_get(te, "transfers/out.bin", &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, BIG_BYTES);
    assert_memory_equal(got, big, BIG_BYTES);
    free(got);
    free(big);

    /* A write_file delivered again (same execution_id, other content):
     * answered from its record, not applied a second time. */
    {
        const rp_te_msg_t *again[2];
        size_t before = rp_te_result_count(te);

        send_op(te, "w1", "write_file", "path", "a.txt", "content",
                "AGAIN\n", NULL);
        assert_true(rp_te_wait_result_count(te, before + 1, WAIT_MS));
        assert_int_equal(rp_te_results_for(te, "w1", again, 2), 2);
        assert_true(cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(again[1]->json, "reused")));
        assert_int_equal(jint(cJSON_GetObjectItemCaseSensitive(again[1]->json,
                                                               "op_result"),
                              "size"),
                         12);
    }
    read_expect(te, "r5", "a.txt", "hello there\n", "utf-8");

    /* The state names the last snapshot; the superseded ones are gone. */
    text = store_get(te, "sessions/" SID "/state.json", NULL);
    assert_non_null(text);
    rp_te_path(te, path, sizeof(path), "state-copy.json");
    {
        FILE *fp = fopen(path, "w");

        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
    }
    rp_te_validate(te, "session-state", path);
    assert_non_null(doc = cJSON_Parse(text));
    free(text);
    assert_string_equal(
        jstr(cJSON_GetObjectItemCaseSensitive(doc, "workspace"), "manifest"),
        "workspaces/" SID "/snapshots/u1.json.zst");
    assert_string_equal(jstr(doc, "last_execution_id"), "u1");
    cJSON_Delete(doc);
    /* The snapshot that u1 replaced (d2's) was collected. */
    assert_null(text = store_get(te, "workspaces/" SID "/snapshots/d2.json.zst",
                                 NULL));
    assert_non_null(text = store_get(te, "executions/u1/result.json", NULL));
    rp_te_path(te, path, sizeof(path), "record-copy.json");
    {
        FILE *fp = fopen(path, "w");

        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
    }
    free(text);
    rp_te_validate(te, "executor-result", path);
    if (!g_cloud) {
        assert_int_equal(count_dir(te, "state/workspaces/" SID "/snapshots"),
                         1);
        /* Read-only ops leave no record. */
        assert_int_equal(count_dir(te, "state/executions/r1"), -1);
    } else {
        assert_null(store_get(te, "executions/r1/result.json", NULL));
    }

    /* close_session takes the workspace with it. */
    rp_te_send_close(te, SID, "c1");
    rp_te_flush(te);
    rp_te_expect(te, rp_te_need_result(te, "c1", WAIT_MS), "succeeded", NULL);
    if (g_cloud)
        assert_null(store_get(te, "workspaces/" SID "/snapshots/u1.json.zst",
                              NULL));
    else
        assert_int_equal(count_files(te, "state/workspaces/" SID), 0);
    send_op(te, "r6", "read_file", "path", "a.txt", NULL);
    expect_op(te, "r6", "read_file", "failed", "not_found");

    rp_te_finish(te);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fileops, rp_te_setup,
                                        rp_te_teardown),
    };

    g_cloud = argc > 1 && !strcmp(argv[1], "cloudrun");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
