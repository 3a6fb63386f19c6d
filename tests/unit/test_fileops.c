/* unit.test_fileops — file ops: the request members each op takes
 * (contract/rp_fileop.c through rp_request_parse), and the worker's op
 * module (worker/rp_fileops.c) run directly on a real snapshot in a
 * file:// store, for what confinement means there: a path through a
 * symlink (here one pointing at /etc) is refused whatever the op, a
 * symlink itself is never read or written through, deleting one removes
 * the link only, and a refused op leaves no snapshot, record or state
 * behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_fileops.h"
#include "rp_layout.h"
#include "rp_test_dir.h"
#include "rp_worker_int.h"
#include "rp_ws.h"

#define IDS "\"v\":1,\"execution_id\":\"e1\",\"session_id\":\"s1\""

static char es[1024];

static rp_err_t parse(const char *json, rp_request_t *r)
{
    es[0] = '\0';
    return rp_request_parse(json, strlen(json), r, es, sizeof(es));
}

static void expect_bad(const char *json, const char *msg_start)
{
    rp_request_t r;

    if (parse(json, &r) == RP_OK)
        fail_msg("accepted: %s", json);
    if (strncmp(es, msg_start, strlen(msg_start)))
        fail_msg("%s: message \"%s\" does not start with \"%s\"", json, es,
                 msg_start);
    /* The ids are still read, for the rejected result. */
    assert_string_equal(r.execution_id, "e1");
    rp_request_clear(&r);
}

static void test_parse(void **state)
{
    rp_request_t r;
    char *json;

    (void)state;
    assert_int_equal(parse("{" IDS ",\"op\":\"write_file\",\"path\":\"a/b\","
                           "\"content\":\"AP8=\",\"encoding\":\"base64\","
                           "\"mode\":493,\"parents\":false}", &r),
                     RP_OK);
    assert_int_equal(r.op, RP_OP_FILEOP_FIRST + RP_FILEOP_WRITE_FILE);
    assert_true(rp_op_is_fileop(r.op));
    assert_string_equal(r.fop.path, "a/b");
    assert_int_equal(r.fop.data_len, 2);
    assert_memory_equal(r.fop.data, "\x00\xff", 2);
    assert_int_equal(r.fop.mode, 0755);
    assert_false(r.fop.parents);
    assert_true(rp_fileops_records(&r));
    /* Round trip: the producer's JSON parses back to the same op. */
    assert_non_null(json = rp_request_to_json(&r));
    rp_request_clear(&r);
    assert_int_equal(parse(json, &r), RP_OK);
    free(json);
    assert_int_equal(r.fop.data_len, 2);
    assert_memory_equal(r.fop.data, "\x00\xff", 2);
    assert_int_equal(r.fop.mode, 0755);
    assert_false(r.fop.parents);
    rp_request_clear(&r);

    /* Defaults. */
    assert_int_equal(parse("{" IDS ",\"op\":\"write_file\",\"path\":\"a\","
                           "\"content\":\"\"}", &r), RP_OK);
    assert_int_equal(r.fop.mode, RP_FILEOP_MODE_DEFAULT);
    assert_true(r.fop.parents);
    assert_int_equal(r.fop.data_len, 0);
    rp_request_clear(&r);
    assert_int_equal(parse("{" IDS ",\"op\":\"list_files\"}", &r), RP_OK);
    assert_null(r.fop.path); /* the root */
    assert_false(r.fop.recursive);
    assert_false(rp_fileops_records(&r));
    rp_request_clear(&r);
    assert_int_equal(parse("{" IDS ",\"op\":\"replace_in_file\",\"path\":\"a\","
                           "\"old\":\"x\",\"new\":\"\"}", &r), RP_OK);
    assert_int_equal(r.fop.count, 1);
    assert_int_equal(r.fop.data2_len, 0);
    rp_request_clear(&r);
    assert_int_equal(parse("{" IDS ",\"op\":\"search\",\"pattern\":\"p\","
                           "\"glob\":\"*.c\",\"limit\":5}", &r), RP_OK);
    assert_string_equal(r.fop.pattern, "p");
    assert_string_equal(r.fop.glob, "*.c");
    assert_int_equal(r.fop.limit, 5);
    rp_request_clear(&r);
    /* A path as sent: the worker, not the parser, confines it, so a path
     * out of the workspace is a failed op with a clear code. */
    assert_int_equal(parse("{" IDS ",\"op\":\"read_file\","
                           "\"path\":\"../../etc/passwd\"}", &r), RP_OK);
    rp_request_clear(&r);

    expect_bad("{" IDS ",\"op\":\"write_file\",\"path\":\"a\"}",
               "content: required when op is \"write_file\"");
    expect_bad("{" IDS ",\"op\":\"read_file\",\"path\":\"a\",\"content\":\"x\"}",
               "content: not a member of op \"read_file\"");
    expect_bad("{" IDS ",\"op\":\"write_file\",\"path\":\"a\",\"content\":\"x\","
               "\"command\":\"ls\"}", "command: must be absent");
    expect_bad("{" IDS ",\"op\":\"write_file\",\"path\":\"a\",\"content\":\"x\","
               "\"env\":{}}", "env: must be absent");
    expect_bad("{" IDS ",\"command\":\"ls\",\"path\":\"a\"}",
               "path: only file ops take it");
    expect_bad("{" IDS ",\"op\":\"write_file\",\"path\":\"a\",\"content\":\"!\","
               "\"encoding\":\"base64\"}", "content: not valid base64");
    expect_bad("{" IDS ",\"op\":\"write_file\",\"path\":\"a\",\"content\":\"x\","
               "\"mode\":4096}", "mode:");
    expect_bad("{" IDS ",\"op\":\"read_file\",\"path\":\"a\\u0000b\"}",
               "path: must not contain NUL");
    expect_bad("{" IDS ",\"op\":\"read_file\",\"path\":\"\"}",
               "path: must not be empty");
    expect_bad("{" IDS ",\"op\":\"find\",\"name\":\"*\",\"type\":\"s\"}",
               "type: must be");
    expect_bad("{" IDS ",\"op\":\"search\",\"pattern\":\"p\",\"limit\":1001}",
               "limit:");
    expect_bad("{" IDS ",\"op\":\"upload\",\"path\":\"a\","
               "\"object\":\"sessions/s1/state.json\"}",
               "object: must be a key under \"transfers/\"");
    expect_bad("{" IDS ",\"op\":\"download\",\"path\":\"a\","
               "\"object\":\"transfers/../sessions/s1/state.json\"}",
               "object: must be a key under");
    expect_bad("{" IDS ",\"op\":\"replace_in_file\",\"path\":\"a\","
               "\"old\":\"\",\"new\":\"x\"}", "old: must not be empty");
}

/* ---- the op module on a real snapshot ---- */

typedef struct fx {
    char dir[64], url[96], tree[96];
    rp_worker_t w;
    int efd;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char p[256];
    rp_ws_manifest_t *m = NULL;
    rp_session_t s;
    char *doc;
    FILE *fp;

    snprintf(f->dir, sizeof(f->dir), "/tmp/rp_fileops_test.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->url, sizeof(f->url), "file://%s/state", f->dir);
    snprintf(f->tree, sizeof(f->tree), "%s/tree", f->dir);
    if (rp_state_open(f->url, &f->w.state, es, sizeof(es)) ||
        (f->efd = eventfd(0, EFD_CLOEXEC)) < 0 ||
        rp_inbox_new(f->efd, &f->w.inbox) || mkdir(f->tree, 0755))
        return -1;
    f->w.conf.result_max_bytes = RP_WORKER_RESULT_BYTES_DEFAULT;
    f->w.conf.workspace = RP_WORKER_WORKSPACE_DEFAULT;
    f->w.conf.workspace_max_bytes = 1L << 30;
    f->w.conf.workspace_max_files = 100000;
    /* a.txt, sub/, and two symlinks: one to /etc, one to a.txt. */
    snprintf(p, sizeof(p), "%s/a.txt", f->tree);
    if (!(fp = fopen(p, "w")) || fputs("alpha\n", fp) < 0 || fclose(fp))
        return -1;
    snprintf(p, sizeof(p), "%s/sub", f->tree);
    if (mkdir(p, 0755))
        return -1;
    snprintf(p, sizeof(p), "%s/etc", f->tree);
    if (symlink("/etc", p))
        return -1;
    snprintf(p, sizeof(p), "%s/ln", f->tree);
    if (symlink("a.txt", p))
        return -1;
    if (rp_ws_save(f->w.state, "s1", "base", f->tree, NULL, NULL, NULL, &m,
                   NULL, es, sizeof(es))) {
        fprintf(stderr, "save: %s\n", es);
        return -1;
    }
    memset(&s, 0, sizeof(s));
    memcpy(s.session_id, "s1", 3);
    s.created_at_ms = s.updated_at_ms = 1764770000000;
    s.workspace.manifest = (char *)rp_ws_manifest_key(m);
    memcpy(s.workspace.execution_id, "base", 5);
    s.workspace.saved_at_ms = s.created_at_ms;
    memcpy(s.last_execution_id, "base", 5);
    doc = rp_session_to_json(&s);
    rp_layout_session_key("s1", p, sizeof(p));
    if (!doc || rp_state_put(f->w.state, p, doc, strlen(doc), 0, NULL, es,
                             sizeof(es)))
        return -1;
    free(doc);
    rp_ws_manifest_destroy(m);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;

    rp_inbox_destroy(f->w.inbox);
    rp_state_destroy(f->w.state);
    close(f->efd);
    rp_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Run one file op as the worker would after LOADING (no record found):
 * the session state loaded, then rp_fileops_run. Caller frees with
 * job_free. */
static rp_job_t *run(fx_t *f, const char *eid, const char *members)
{
    rp_job_t *job = calloc(1, sizeof(*job));
    char json[2048], key[256];
    rp_buf_t buf;

    assert_non_null(job);
    snprintf(json, sizeof(json),
             "{\"v\":1,\"execution_id\":\"%s\",\"session_id\":\"s1\",%s}", eid,
             members);
    if (parse(json, &job->req))
        fail_msg("%s: %s", json, es);
    job->w = &f->w;
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key("s1", key, sizeof(key));
    assert_int_equal(rp_state_get(f->w.state, key, &buf, &job->session_version,
                                  es, sizeof(es)), RP_OK);
    assert_int_equal(rp_session_parse(buf.data, buf.len, &job->session, es,
                                      sizeof(es)), RP_OK);
    job->session_found = true;
    rp_buf_free(&buf);
    rp_fileops_run(job);
    /* It reported back through the inbox, as a pool step does. */
    assert_ptr_equal(rp_inbox_take(f->w.inbox), &job->item);
    return job;
}

static void job_free(rp_job_t *job)
{
    rp_request_clear(&job->req);
    rp_session_clear(&job->session);
    rp_result_clear(&job->result);
    free(job);
}

/* The op failed as the requester's doing, with code. */
static void expect_fail(fx_t *f, const char *eid, const char *members,
                        const char *code)
{
    rp_job_t *job = run(f, eid, members);
    char key[256];
    rp_buf_t buf;

    if (job->err_code[0])
        fail_msg("%s: runpool error %s: %s", eid, job->err_code, job->err_msg);
    assert_true(job->have_result);
    assert_int_equal(job->result.status, RP_STATUS_FAILED);
    if (!job->result.error_code || strcmp(job->result.error_code, code))
        fail_msg("%s: code %s (%s), want %s", eid,
                 job->result.error_code ? job->result.error_code : "-",
                 job->result.error_message ? job->result.error_message : "",
                 code);
    print_message("%s: %s\n", eid, job->result.error_message);
    /* Nothing left behind: no snapshot, no record. */
    rp_layout_ws_manifest_key("s1", eid, key, sizeof(key));
    rp_buf_init(&buf, RP_WS_MANIFEST_MAX);
    assert_int_equal(rp_state_get(f->w.state, key, &buf, NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_layout_result_key(eid, key, sizeof(key));
    assert_int_equal(rp_state_get(f->w.state, key, &buf, NULL, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_buf_free(&buf);
    job_free(job);
}

static cJSON *expect_ok(fx_t *f, const char *eid, const char *members)
{
    rp_job_t *job = run(f, eid, members);
    cJSON *r;

    if (job->err_code[0] || job->result.status != RP_STATUS_SUCCEEDED)
        fail_msg("%s: %s %s", eid, job->err_code,
                 job->result.error_message ? job->result.error_message
                                           : job->err_msg);
    assert_non_null(r = cJSON_Parse(job->result.op_result));
    job_free(job);
    return r;
}

static void test_confined(void **state)
{
    fx_t *f = *state;
    const cJSON *e;
    cJSON *r;
    bool saw_link = false;

    /* Through a symlink to /etc, whatever the op. */
    expect_fail(f, "t1", "\"op\":\"read_file\",\"path\":\"etc/passwd\"",
                "invalid_path");
    expect_fail(f, "t2", "\"op\":\"write_file\",\"path\":\"etc/evil\","
                "\"content\":\"x\"", "invalid_path");
    expect_fail(f, "t3", "\"op\":\"list_files\",\"path\":\"etc\"",
                "invalid_path");
    expect_fail(f, "t4", "\"op\":\"search\",\"path\":\"etc\","
                "\"pattern\":\"root\"", "invalid_path");
    expect_fail(f, "t5", "\"op\":\"delete\",\"path\":\"etc/passwd\"",
                "invalid_path");
    expect_fail(f, "t6", "\"op\":\"download\",\"path\":\"etc/passwd\","
                "\"object\":\"transfers/x\"", "invalid_path");
    /* A symlink is not read or written through, even one inside. */
    expect_fail(f, "t7", "\"op\":\"read_file\",\"path\":\"ln\"",
                "invalid_path");
    expect_fail(f, "t8", "\"op\":\"write_file\",\"path\":\"ln\","
                "\"content\":\"x\"", "invalid_path");
    expect_fail(f, "t9", "\"op\":\"replace_in_file\",\"path\":\"ln\","
                "\"old\":\"alpha\",\"new\":\"x\"", "invalid_path");
    /* Lexical escapes. */
    expect_fail(f, "t10", "\"op\":\"read_file\",\"path\":\"sub/../../x\"",
                "invalid_path");
    expect_fail(f, "t11", "\"op\":\"read_file\",\"path\":\"/etc/passwd\"",
                "invalid_path");
    expect_fail(f, "t12", "\"op\":\"write_file\",\"path\":\".\","
                "\"content\":\"x\"", "is_a_directory");
    expect_fail(f, "t13", "\"op\":\"read_file\",\"path\":\"sub\"",
                "is_a_directory");

    /* The listing shows the link and its target, not what it points at. */
    r = expect_ok(f, "t20", "\"op\":\"list_files\"");
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "entries"))
    {
        if (strcmp(cJSON_GetObjectItem(e, "path")->valuestring, "etc"))
            continue;
        saw_link = true;
        assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, "l");
        assert_string_equal(cJSON_GetObjectItem(e, "target")->valuestring,
                            "/etc");
    }
    assert_true(saw_link);
    cJSON_Delete(r);
    /* find does not descend into the link either. */
    r = expect_ok(f, "t21", "\"op\":\"find\",\"name\":\"passwd\"");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "entries")), 0);
    cJSON_Delete(r);
    /* Deleting a symlink removes the link, not its target. */
    r = expect_ok(f, "t22", "\"op\":\"delete\",\"path\":\"ln\"");
    assert_string_equal(cJSON_GetObjectItem(r, "type")->valuestring, "l");
    cJSON_Delete(r);
    r = expect_ok(f, "t23", "\"op\":\"read_file\",\"path\":\"a.txt\"");
    assert_string_equal(cJSON_GetObjectItem(r, "content")->valuestring,
                        "alpha\n");
    cJSON_Delete(r);
    expect_fail(f, "t24", "\"op\":\"read_file\",\"path\":\"ln\"", "not_found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_confined, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
