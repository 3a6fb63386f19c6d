/* unit.test_sessions — runpool-sessions' pure parts (tools/sessions):
 * options and durations, and reading, listing and closing sessions on a
 * real file:// store, including the compare-and-swap that keeps expire
 * from closing a session used meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_sessions.h"
#include "rp_test_dir.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void test_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t secs; /* 0: refused */
    } cases[] = {
        {"7d", 7 * 86400}, {"12h", 12 * 3600}, {"30m", 1800}, {"45s", 45},
        {"2w", 14 * 86400}, {"3600", 3600}, {"1", 1},
        {"0", 0}, {"0d", 0}, {"-1d", 0}, {"d", 0}, {"", 0}, {"7x", 0},
        {"7dd", 0}, {"1.5h", 0}, {" 7d", 0}, {"99999999999999999999", 0},
        {"4000w", 0}, /* over ten years */
    };
    char es[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t secs = -1;
        rp_err_t err = rp_sessions_parse_duration(cases[i].s, &secs, es,
                                                  sizeof(es));

        if (cases[i].secs) {
            assert_int_equal(err, RP_OK);
            assert_int_equal(secs, cases[i].secs);
        } else {
            assert_int_equal(err, RP_ERR_INVALID);
            assert_non_null(strstr(es, "--idle"));
        }
    }
}

static void test_conf(void **state)
{
    rp_sessions_conf_t c;
    char es[256];
    char *list[] = {"p", "--state", "file:///x", "list", "--json", NULL};
    char *show[] = {"p", "show", "s-1", NULL};
    char *expire[] = {"p", "expire", "--idle", "7d", "--dry-run", NULL};
    char *noid[] = {"p", "--state", "file:///x", "close", NULL};
    char *twoids[] = {"p", "--state", "file:///x", "show", "a", "b", NULL};
    char *badid[] = {"p", "--state", "file:///x", "show", "../x", NULL};
    char *noidle[] = {"p", "--state", "file:///x", "expire", NULL};
    char *idlelist[] = {"p", "--state", "file:///x", "list", "--idle", "1d",
                        NULL};
    char *nocmd[] = {"p", "--state", "file:///x", NULL};
    char *badcmd[] = {"p", "--state", "file:///x", "sweep", NULL};
    char *badflag[] = {"p", "--no-such-flag", NULL};
    char *nostate[] = {"p", "list", NULL};
    char *help[] = {"p", "--help", NULL};

    (void)state;
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(list), list, NULL, es,
                                            sizeof(es)), RP_OK);
    assert_int_equal(c.cmd, RP_SESSIONS_LIST);
    assert_true(c.json);
    assert_string_equal(c.state_url, "file:///x");
    /* RUNPOOL_STATE stands in for --state. */
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(show), show, "file:///e",
                                            es, sizeof(es)), RP_OK);
    assert_int_equal(c.cmd, RP_SESSIONS_SHOW);
    assert_string_equal(c.id, "s-1");
    assert_string_equal(c.state_url, "file:///e");
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(expire), expire,
                                            "file:///e", es, sizeof(es)),
                     RP_OK);
    assert_int_equal(c.cmd, RP_SESSIONS_EXPIRE);
    assert_int_equal(c.idle_s, 7 * 86400);
    assert_true(c.dry_run);
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(help), help, NULL, es,
                                            sizeof(es)), RP_OK);
    assert_true(c.help);

    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(noid), noid, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "close needs one session id"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(twoids), twoids, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "unexpected argument 'b'"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(badid), badid, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "not a session id"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(noidle), noidle, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "--idle"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(idlelist), idlelist, NULL,
                                            es, sizeof(es)), RP_ERR_INVALID);
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(nocmd), nocmd, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "a command is required"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(badcmd), badcmd, NULL, es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "unknown command 'sweep'"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(badflag), badflag, NULL,
                                            es, sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "--no-such-flag"));
    assert_int_equal(rp_sessions_conf_parse(&c, ARGC(nostate), nostate, "", es,
                                            sizeof(es)), RP_ERR_INVALID);
    assert_non_null(strstr(es, "--state"));
}

/* ---- against a file:// store ---- */

typedef struct fx {
    char dir[64];
    char url[96];
    rp_state_t *st;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char es[256];

    snprintf(f->dir, sizeof(f->dir), "/tmp/rp_sessions_test.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->url, sizeof(f->url), "file://%s", f->dir);
    if (rp_state_open(f->url, &f->st, es, sizeof(es)))
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;

    rp_state_destroy(f->st);
    rp_test_rmtree(f->dir);
    free(f);
    return 0;
}

static uint64_t put(fx_t *f, const char *key, const char *text)
{
    char es[256];
    uint64_t v = 0;

    assert_int_equal(rp_state_put(f->st, key, text, strlen(text), RP_STATE_ANY,
                                  &v, es, sizeof(es)), RP_OK);
    return v;
}

#define STATE(id, updated, n, extra)                                          \
    "{\"v\":1,\"session_id\":\"" id "\",\"env\":{\"A\":\"1\",\"B\":\"2\"},"   \
    "\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"" updated  \
    "\",\"execution_count\":" #n extra "}"

typedef struct seen {
    int n;
    char ids[8][RP_ID_MAX + 1];
    int64_t ws_bytes[8];
} seen_t;

static int seen_cb(void *opaque, const rp_sessions_info_t *info)
{
    seen_t *s = opaque;

    if (s->n < 8) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", info->id);
        s->ws_bytes[s->n] = info->ws_bytes;
    }
    s->n++;
    return 0;
}

static void test_store(void **state)
{
    fx_t *f = *state;
    rp_sessions_info_t info;
    seen_t seen = {0};
    char es[512];
    size_t bad = 99, objects = 99;
    uint64_t v;
    char *j;

    put(f, "sessions/b/state.json",
        STATE("b", "2026-01-02T00:00:00.000Z", 3,
              ",\"cwd\":\"/w\",\"last_execution_id\":\"e-3\","
              "\"workspace\":{\"manifest\":\"workspaces/b/snapshots/e-3.json.zst\","
              "\"execution_id\":\"e-3\",\"bytes\":2048,\"files\":2,"
              "\"saved_at\":\"2026-01-02T00:00:00.000Z\"}"));
    v = put(f, "sessions/a/state.json",
            STATE("a", "2026-01-01T00:00:00.000Z", 1, ""));
    put(f, "sessions/bad/state.json", "{not json");
    put(f, "sessions/a/other.json", "{}");        /* not a session */
    put(f, "workspaces/a/chunks/00", "c");
    put(f, "workspaces/a/snapshots/e-1.json.zst", "m");
    put(f, "workspaces/ab/chunks/00", "another session's");

    assert_int_equal(rp_sessions_load(f->st, "b", &info, es, sizeof(es)), RP_OK);
    assert_string_equal(info.id, "b");
    assert_int_equal(info.executions, 3);
    assert_int_equal(info.ws_bytes, 2048);
    assert_int_equal(info.ws_files, 2);
    assert_string_equal(info.ws_manifest, "workspaces/b/snapshots/e-3.json.zst");
    assert_string_equal(info.cwd, "/w");
    assert_int_equal(info.env_count, 2);
    assert_non_null(j = rp_sessions_json(&info));
    assert_non_null(strstr(j, "\"workspace\":{\"bytes\":2048,\"files\":2,"));
    assert_non_null(strstr(j, "\"last_used_at\":\"2026-01-02T00:00:00.000Z\""));
    free(j);
    rp_sessions_info_clear(&info);
    assert_int_equal(rp_sessions_load(f->st, "none", &info, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_sessions_info_clear(&info);
    assert_int_equal(rp_sessions_load(f->st, "bad", &info, es, sizeof(es)),
                     RP_ERR_INVALID);
    assert_non_null(strstr(es, "sessions/bad/state.json"));
    rp_sessions_info_clear(&info);

    /* Sorted by id; the unreadable one counted, not listed. */
    assert_int_equal(rp_sessions_list(f->st, seen_cb, &seen, &bad, NULL, es,
                                      sizeof(es)), RP_OK);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.ids[0], "a");
    assert_string_equal(seen.ids[1], "b");
    assert_int_equal(seen.ws_bytes[0], -1); /* a has no workspace */
    assert_int_equal(bad, 1);

    /* Idle: by last use against now. */
    assert_int_equal(rp_sessions_load(f->st, "a", &info, es, sizeof(es)), RP_OK);
    assert_true(rp_sessions_idle(&info, 3600, info.updated_ms + 3601 * 1000));
    assert_false(rp_sessions_idle(&info, 3600, info.updated_ms + 3599 * 1000));
    rp_sessions_info_clear(&info);

    /* Used since it was read (a new version): not closed. */
    put(f, "sessions/a/state.json", STATE("a", "2026-01-03T00:00:00.000Z", 2, ""));
    assert_int_equal(rp_sessions_close(f->st, "a", v, &objects, es, sizeof(es)),
                     RP_ERR_CONFLICT);
    assert_non_null(strstr(es, "left open"));
    assert_int_equal(objects, 0);
    assert_int_equal(rp_sessions_load(f->st, "a", &info, es, sizeof(es)), RP_OK);
    v = info.version;
    rp_sessions_info_clear(&info);
    /* At the version read: state and workspace go, "ab"'s stays. */
    assert_int_equal(rp_sessions_close(f->st, "a", v, &objects, es, sizeof(es)),
                     RP_OK);
    assert_int_equal(objects, 2);
    assert_int_equal(rp_sessions_load(f->st, "a", &info, es, sizeof(es)),
                     RP_ERR_NOT_FOUND);
    rp_sessions_info_clear(&info);
    {
        rp_buf_t b;

        rp_buf_init(&b, 1024);
        assert_int_equal(rp_state_get(f->st, "workspaces/ab/chunks/00", &b,
                                      NULL, es, sizeof(es)), RP_OK);
        assert_int_equal(rp_state_get(f->st, "workspaces/a/chunks/00", &b,
                                      NULL, es, sizeof(es)), RP_ERR_NOT_FOUND);
        rp_buf_free(&b);
    }
    /* Closing again: not found, and not an error for the workspace. */
    assert_int_equal(rp_sessions_close(f->st, "a", RP_STATE_ANY, &objects, es,
                                       sizeof(es)), RP_ERR_NOT_FOUND);
    assert_int_equal(objects, 0);
    assert_int_equal(rp_sessions_close(f->st, "..", RP_STATE_ANY, &objects, es,
                                       sizeof(es)), RP_ERR_INVALID);
}

static void test_bytes(void **state)
{
    char b[32];

    (void)state;
    rp_sessions_bytes(-1, b, sizeof(b));
    assert_string_equal(b, "-");
    rp_sessions_bytes(1023, b, sizeof(b));
    assert_string_equal(b, "1023 B");
    rp_sessions_bytes(1536, b, sizeof(b));
    assert_string_equal(b, "1.5 KiB");
    rp_sessions_bytes(200LL * 1024 * 1024, b, sizeof(b));
    assert_string_equal(b, "200.0 MiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_conf),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test_setup_teardown(test_store, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
