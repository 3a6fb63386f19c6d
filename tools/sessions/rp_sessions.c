/* rp_sessions — see rp_sessions.h. */
#include "rp_sessions.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rp_ids.h"
#include "rp_json.h"
#include "rp_layout.h"
#include "rp_session.h"
#include "rp_time.h"

#define RP_SESSIONS_STATE_FILE "/state.json"
#define RP_SESSIONS_PREFIX "sessions/"

void rp_sessions_usage(FILE *out, const char *prog)
{
    fprintf(out,
"Usage: %s [--state URL] [--json] COMMAND\n"
"List, show, close and expire runpool sessions in a state store.\n"
"\n"
"Commands:\n"
"  list                  every session: id, created, last used, executions,\n"
"                        workspace size\n"
"  show ID               one session in full (cwd, variables, workspace)\n"
"  close ID              delete the session's state and its workspace\n"
"                        (everything under workspaces/ID/), like the\n"
"                        close_session request op\n"
"  expire --idle DUR     close every session not used for DUR (7d, 12h, 30m,\n"
"                        45s, 2w or seconds); a session used meanwhile is\n"
"                        left alone\n"
"\n"
"Options:\n"
"  --state URL           the state store: file:///dir or gs://bucket[/prefix]\n"
"                        (default: $RUNPOOL_STATE). gs:// uses Google's\n"
"                        credentials as the worker does, none when\n"
"                        STORAGE_EMULATOR_HOST is set\n"
"  --json                one JSON object a line instead of a table\n"
"  --idle DUR            expire: the idle time past which a session goes\n"
"  --dry-run             expire: say what would be closed, close nothing\n"
"  --help                this text\n"
"  --version             print the version\n"
"\n"
"Exit status: 0 done; 1 a store error or a session in use (expire: any\n"
"session not closed); 2 a bad option; 3 show/close: no such session.\n"
"For Cloud Storage, the executions/ records are best expired by Object\n"
"Lifecycle rules (docs/state-store.md), not by this tool.\n",
            prog);
}

rp_err_t rp_sessions_parse_duration(const char *s, int64_t *secs,
                                    char *errstr, size_t errstr_size)
{
    char *end = NULL;
    long long n;
    int64_t unit = 1;

    if (!s || *s < '0' || *s > '9')
        goto bad;
    n = strtoll(s, &end, 10);
    if (*end) {
        if (end[1])
            goto bad;
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: goto bad;
        }
    }
    if (n < 1 || n > RP_SESSIONS_IDLE_MAX_S / unit)
        goto bad;
    *secs = (int64_t)n * unit;
    return RP_OK;
bad:
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                   "--idle '%s': want a duration like 7d, 12h, 30m, 45s, 2w "
                   "or seconds, from 1 s to 10 years", s ? s : "");
}

enum { O_STATE = 1, O_JSON, O_IDLE, O_DRY, O_HELP, O_VERSION };

/* One option getopt_long returned (c, optarg), before or after the
 * command. *done: --help or --version, parsing stops there. */
static rp_err_t rp_sessions_opt(rp_sessions_conf_t *conf, int c, char **argv,
                                bool *done, char *errstr, size_t errstr_size)
{
    rp_err_t err;

    *done = false;
    switch (c) {
    case O_STATE: conf->state_url = optarg; break;
    case O_JSON: conf->json = true; break;
    case O_IDLE:
        if ((err = rp_sessions_parse_duration(optarg, &conf->idle_s, errstr,
                                              errstr_size)))
            return err;
        break;
    case O_DRY: conf->dry_run = true; break;
    case O_HELP: conf->help = true; *done = true; break;
    case O_VERSION: conf->version = true; *done = true; break;
    case ':':
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "option '%s' needs a value", argv[optind - 1]);
    default:
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "unknown option '%s'", argv[optind - 1]);
    }
    return RP_OK;
}

rp_err_t rp_sessions_conf_parse(rp_sessions_conf_t *conf, int argc,
                                char **argv, const char *env_state,
                                char *errstr, size_t errstr_size)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, O_STATE},
        {"json", no_argument, NULL, O_JSON},
        {"idle", required_argument, NULL, O_IDLE},
        {"dry-run", no_argument, NULL, O_DRY},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *cmd;
    int c, nargs;
    bool done;
    rp_err_t err;

    memset(conf, 0, sizeof(*conf));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if ((err = rp_sessions_opt(conf, c, argv, &done, errstr,
                                   errstr_size)) || done)
            return err;
    }
    /* Options may also follow the command ("expire --idle 7d"). */
    if (optind >= argc)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "a command is required: list, show ID, close ID or "
                       "expire --idle DUR");
    cmd = argv[optind++];
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1 ||
           optind < argc) {
        if (c == -1) {
            /* A positional argument: keep it in place, go on after it. */
            if (conf->id[0] || strlen(argv[optind]) > RP_ID_MAX ||
                !rp_id_valid(argv[optind], strlen(argv[optind])))
                return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                               conf->id[0] ? "unexpected argument '%s'"
                                           : "'%s' is not a session id "
                                             "(1-128 of [A-Za-z0-9._:-])",
                               argv[optind]);
            memcpy(conf->id, argv[optind], strlen(argv[optind]) + 1);
            optind++;
            continue;
        }
        if ((err = rp_sessions_opt(conf, c, argv, &done, errstr,
                                   errstr_size)) || done)
            return err;
    }
    nargs = conf->id[0] ? 1 : 0;
    if (!strcmp(cmd, "list")) {
        conf->cmd = RP_SESSIONS_LIST;
    } else if (!strcmp(cmd, "show")) {
        conf->cmd = RP_SESSIONS_SHOW;
    } else if (!strcmp(cmd, "close")) {
        conf->cmd = RP_SESSIONS_CLOSE;
    } else if (!strcmp(cmd, "expire")) {
        conf->cmd = RP_SESSIONS_EXPIRE;
    } else {
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "unknown command '%s' (list, show, close, expire)",
                       cmd);
    }
    if ((conf->cmd == RP_SESSIONS_SHOW || conf->cmd == RP_SESSIONS_CLOSE) &&
        nargs != 1)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s needs one session id", cmd);
    if ((conf->cmd == RP_SESSIONS_LIST || conf->cmd == RP_SESSIONS_EXPIRE) &&
        nargs)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "%s takes no session id ('%s')", cmd, conf->id);
    if (conf->cmd == RP_SESSIONS_EXPIRE && !conf->idle_s)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "expire needs --idle DUR (e.g. --idle 7d)");
    if (conf->cmd != RP_SESSIONS_EXPIRE && (conf->idle_s || conf->dry_run))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--idle and --dry-run go with expire only");
    if (!conf->state_url)
        conf->state_url = env_state && *env_state ? env_state : NULL;
    if (!conf->state_url)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "--state URL is required (or set RUNPOOL_STATE)");
    return RP_OK;
}

void rp_sessions_info_clear(rp_sessions_info_t *info)
{
    if (!info)
        return;
    free(info->cwd);
    memset(info, 0, sizeof(*info));
}

/* The workspace member of a state document, read on its own: the
 * session module is the authority on everything else. Taken out of root
 * so that rp_session_parse sees the rest whatever its version knows. */
static void rp_sessions_take_workspace(cJSON *root, rp_sessions_info_t *info)
{
    cJSON *ws = cJSON_DetachItemFromObjectCaseSensitive(root, "workspace");
    const cJSON *b, *f, *m;

    info->ws_bytes = info->ws_files = -1;
    if (!cJSON_IsObject(ws))
        goto out;
    b = cJSON_GetObjectItemCaseSensitive(ws, "bytes");
    f = cJSON_GetObjectItemCaseSensitive(ws, "files");
    m = cJSON_GetObjectItemCaseSensitive(ws, "manifest");
    info->ws_bytes = cJSON_IsNumber(b) && b->valuedouble >= 0
                         ? (int64_t)b->valuedouble : 0;
    info->ws_files = cJSON_IsNumber(f) && f->valuedouble >= 0
                         ? (int64_t)f->valuedouble : 0;
    if (cJSON_IsString(m) && strlen(m->valuestring) < sizeof(info->ws_manifest))
        memcpy(info->ws_manifest, m->valuestring, strlen(m->valuestring) + 1);
out:
    cJSON_Delete(ws);
}

rp_err_t rp_sessions_load(rp_state_t *st, const char *id,
                          rp_sessions_info_t *info, char *errstr,
                          size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX + 1], *rest = NULL;
    rp_session_t s;
    cJSON *root = NULL;
    rp_buf_t buf;
    rp_err_t err;
    bool got = false; /* read: a later error is the document's */

    memset(info, 0, sizeof(*info));
    memset(&s, 0, sizeof(s));
    info->ws_objects = -1;
    rp_buf_init(&buf, RP_STATE_DOC_MAX);
    rp_layout_session_key(id, key, sizeof(key));
    if (!key[0]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "'%s' is not a session id", id);
        goto out;
    }
    if ((err = rp_state_get(st, key, &buf, &info->version, errstr,
                            errstr_size)))
        goto out;
    got = true;
    if ((err = rp_json_load(buf.data, buf.len, RP_STATE_DOC_MAX,
                            "session state", &root, errstr, errstr_size)))
        goto out;
    rp_sessions_take_workspace(root, info);
    if (!(rest = cJSON_PrintUnformatted(root))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = rp_session_parse(rest, strlen(rest), &s, errstr, errstr_size)))
        goto out;
    memcpy(info->id, s.session_id, sizeof(info->id));
    info->created_ms = s.created_at_ms;
    info->updated_ms = s.updated_at_ms;
    info->executions = s.execution_count;
    memcpy(info->last_execution_id, s.last_execution_id,
           sizeof(info->last_execution_id));
    info->env_count = s.env.n;
    if (s.cwd && !(info->cwd = strdup(s.cwd)))
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
out:
    if (err && got && errstr && errstr_size) {
        char why[512];

        snprintf(why, sizeof(why), "%s", errstr);
        rp_errf(errstr, errstr_size, err, "%s: %s", key, why);
    }
    rp_session_clear(&s);
    cJSON_Delete(root);
    free(rest);
    rp_buf_free(&buf);
    return err;
}

/* The ids found by a listing, sorted before they are read. */
typedef struct rp_sessions_ids {
    char **ids;
    size_t n, cap;
    bool full, nomem;
} rp_sessions_ids_t;

static int rp_sessions_collect(void *opaque, const char *key, uint64_t v)
{
    rp_sessions_ids_t *ids = opaque;
    const char *id = key + strlen(RP_SESSIONS_PREFIX);
    size_t n = strlen(id), tail = strlen(RP_SESSIONS_STATE_FILE);
    char **grown;

    (void)v;
    /* Only sessions/{id}/state.json is a session. */
    if (n <= tail || strcmp(id + n - tail, RP_SESSIONS_STATE_FILE) ||
        memchr(id, '/', n - tail))
        return 0;
    if (ids->n >= RP_SESSIONS_MAX) {
        ids->full = true;
        return 1;
    }
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;

        if (!(grown = realloc(ids->ids, cap * sizeof(*grown)))) {
            ids->nomem = true;
            return 1;
        }
        ids->ids = grown;
        ids->cap = cap;
    }
    if (!(ids->ids[ids->n] = strndup(id, n - tail))) {
        ids->nomem = true;
        return 1;
    }
    ids->n++;
    return 0;
}

static int rp_sessions_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

rp_err_t rp_sessions_list(rp_state_t *st, rp_sessions_cb *cb, void *opaque,
                          size_t *bad, FILE *stderr_msg, char *errstr,
                          size_t errstr_size)
{
    rp_sessions_ids_t ids = {0};
    rp_sessions_info_t info;
    char es[1024];
    rp_err_t err;

    if (bad)
        *bad = 0;
    err = rp_state_list(st, RP_SESSIONS_PREFIX, rp_sessions_collect, &ids,
                        errstr, errstr_size);
    if (!err && ids.nomem)
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    if (!err && ids.full)
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "more than %d sessions in the store",
                      RP_SESSIONS_MAX);
    if (err)
        goto out;
    qsort(ids.ids, ids.n, sizeof(*ids.ids), rp_sessions_cmp);
    for (size_t i = 0; i < ids.n; i++) {
        rp_err_t e = rp_sessions_load(st, ids.ids[i], &info, es, sizeof(es));
        int stop = 0;

        if (e == RP_OK)
            stop = cb(opaque, &info);
        else if (e != RP_ERR_NOT_FOUND) {
            /* Closed meanwhile is not news; unreadable is. */
            if (bad)
                (*bad)++;
            if (stderr_msg)
                fprintf(stderr_msg, "session %s: %s\n", ids.ids[i], es);
        }
        rp_sessions_info_clear(&info);
        if (stop)
            break;
    }
out:
    for (size_t i = 0; i < ids.n; i++)
        free(ids.ids[i]);
    free(ids.ids);
    return err;
}

rp_err_t rp_sessions_close(rp_state_t *st, const char *id, uint64_t if_version,
                           size_t *objects, char *errstr, size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX + 1], prefix[RP_STATE_KEY_MAX + 1];
    rp_err_t err, werr;

    if (objects)
        *objects = 0;
    rp_layout_session_key(id, key, sizeof(key));
    rp_layout_ws_prefix(id, prefix, sizeof(prefix));
    if (!key[0] || !prefix[0])
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "'%s' is not a session id", id);
    err = rp_state_delete(st, key, if_version, errstr, errstr_size);
    if (err == RP_ERR_CONFLICT)
        return rp_errf(errstr, errstr_size, RP_ERR_CONFLICT,
                       "session %s was used since it was read: left open", id);
    if (err && err != RP_ERR_NOT_FOUND)
        return err;
    /* As close_session: the state first, then what only it named. */
    werr = rp_state_delete_prefix(st, prefix, objects, errstr, errstr_size);
    if (werr)
        return werr;
    if (err == RP_ERR_NOT_FOUND)
        rp_errf(errstr, errstr_size, RP_ERR_NOT_FOUND,
                "no session %s in the store", id);
    return err;
}

bool rp_sessions_idle(const rp_sessions_info_t *info, int64_t idle_s,
                      int64_t now_ms)
{
    int64_t last = info->updated_ms > info->created_ms ? info->updated_ms
                                                       : info->created_ms;

    return now_ms - last > idle_s * 1000;
}

char *rp_sessions_json(const rp_sessions_info_t *info)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;

    ok = ok && rp_json_add_text(root, "session_id", info->id) &&
         rp_json_add_time(root, "created_at", info->created_ms) &&
         rp_json_add_time(root, "last_used_at", info->updated_ms) &&
         rp_json_add_int(root, "executions", info->executions);
    if (ok && info->last_execution_id[0])
        ok = rp_json_add_text(root, "last_execution_id",
                              info->last_execution_id);
    if (ok && info->cwd)
        ok = rp_json_add_text(root, "cwd", info->cwd);
    ok = ok && rp_json_add_int(root, "env_count", (int64_t)info->env_count);
    if (ok && info->ws_bytes >= 0) {
        cJSON *ws = cJSON_AddObjectToObject(root, "workspace");

        ok = ws && rp_json_add_int(ws, "bytes", info->ws_bytes) &&
             rp_json_add_int(ws, "files", info->ws_files);
        if (ok && info->ws_manifest[0])
            ok = rp_json_add_text(ws, "manifest", info->ws_manifest);
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "workspace") != NULL;
    }
    if (ok && info->ws_objects >= 0)
        ok = rp_json_add_int(root, "workspace_objects", info->ws_objects);
    return rp_json_finish(root, ok);
}

void rp_sessions_bytes(int64_t n, char *out, size_t out_size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = -1;

    if (n < 0) {
        snprintf(out, out_size, "-");
        return;
    }
    if (n < 1024) {
        snprintf(out, out_size, "%" PRId64 " B", n);
        return;
    }
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(out, out_size, "%.1f %s", v, units[u]);
}

void rp_sessions_table_header(FILE *out)
{
    fprintf(out, "%-36s %-24s %-24s %10s %12s\n", "SESSION", "CREATED",
            "LAST USED", "EXECUTIONS", "WORKSPACE");
}

void rp_sessions_table_row(FILE *out, const rp_sessions_info_t *info)
{
    char c[RP_TIME_RFC3339_MAX], u[RP_TIME_RFC3339_MAX], b[32];

    rp_time_rfc3339(info->created_ms, c, sizeof(c));
    rp_time_rfc3339(info->updated_ms, u, sizeof(u));
    rp_sessions_bytes(info->ws_bytes, b, sizeof(b));
    fprintf(out, "%-36s %-24s %-24s %10" PRId64 " %12s\n", info->id, c, u,
            info->executions, b);
}
