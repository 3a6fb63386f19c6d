/* runpool-sessions — list, show, close and expire sessions in a state
 * store. The pure parts are rp_sessions.c; see rp_sessions_usage() and
 * docs/tools.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_gcp.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_sessions.h"
#include "rp_time.h"

static const char *prog = "runpool-sessions";

typedef struct lister {
    const rp_sessions_conf_t *conf;
    size_t n;
    bool nomem;
} lister_t;

static void print_info(const rp_sessions_conf_t *conf,
                       const rp_sessions_info_t *info, bool *nomem)
{
    char *j;

    if (!conf->json) {
        rp_sessions_table_row(stdout, info);
        return;
    }
    if (!(j = rp_sessions_json(info))) {
        *nomem = true;
        return;
    }
    printf("%s\n", j);
    free(j);
}

static int list_one(void *opaque, const rp_sessions_info_t *info)
{
    lister_t *l = opaque;

    print_info(l->conf, info, &l->nomem);
    l->n++;
    return l->nomem;
}

/* expire: the sessions to close are gathered first (id + the version
 * read), then closed each with a compare-and-swap on that version. */
typedef struct expirer {
    const rp_sessions_conf_t *conf;
    int64_t now_ms;
    size_t n, cap, seen;
    struct victim {
        char id[RP_ID_MAX + 1];
        uint64_t version;
        int64_t updated_ms;
    } *v;
    bool nomem;
} expirer_t;

static int expire_one(void *opaque, const rp_sessions_info_t *info)
{
    expirer_t *e = opaque;
    struct victim *grown;

    e->seen++;
    if (!rp_sessions_idle(info, e->conf->idle_s, e->now_ms))
        return 0;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;

        if (!(grown = realloc(e->v, cap * sizeof(*grown)))) {
            e->nomem = true;
            return 1;
        }
        e->v = grown;
        e->cap = cap;
    }
    memcpy(e->v[e->n].id, info->id, sizeof(e->v[e->n].id));
    e->v[e->n].version = info->version;
    e->v[e->n].updated_ms = info->updated_ms;
    e->n++;
    return 0;
}

static int run_expire(const rp_sessions_conf_t *conf, rp_state_t *st)
{
    expirer_t e = {.conf = conf, .now_ms = rp_time_wall_ms()};
    char es[1024], when[RP_TIME_RFC3339_MAX];
    size_t bad = 0, closed = 0, failed = 0, objects;
    rp_err_t err;
    int rc = RP_SESSIONS_EXIT_OK;

    err = rp_sessions_list(st, expire_one, &e, &bad, stderr, es, sizeof(es));
    if (!err && e.nomem)
        err = rp_errf(es, sizeof(es), RP_ERR_NOMEM, "out of memory");
    if (err) {
        fprintf(stderr, "%s: %s\n", prog, es);
        rc = RP_SESSIONS_EXIT_FAILED;
        goto out;
    }
    for (size_t i = 0; i < e.n; i++) {
        rp_time_rfc3339(e.v[i].updated_ms, when, sizeof(when));
        if (conf->dry_run) {
            if (conf->json)
                printf("{\"session_id\":\"%s\",\"last_used_at\":\"%s\","
                       "\"action\":\"would_close\"}\n", e.v[i].id, when);
            else
                printf("would close %s (last used %s)\n", e.v[i].id, when);
            continue;
        }
        err = rp_sessions_close(st, e.v[i].id, e.v[i].version, &objects, es,
                                sizeof(es));
        if (err == RP_ERR_NOT_FOUND)
            err = RP_OK; /* closed by someone else meanwhile: same end */
        if (err) {
            failed++;
            fprintf(stderr, "%s: %s: %s\n", prog, e.v[i].id, es);
            continue;
        }
        closed++;
        if (conf->json)
            printf("{\"session_id\":\"%s\",\"last_used_at\":\"%s\","
                   "\"action\":\"closed\",\"workspace_objects\":%zu}\n",
                   e.v[i].id, when, objects);
        else
            printf("closed %s (last used %s, %zu workspace objects)\n",
                   e.v[i].id, when, objects);
    }
    fprintf(stderr, "%s: %zu sessions, %zu idle over %lld s, %zu %s, %zu "
            "failed, %zu unreadable\n", prog, e.seen, e.n,
            (long long)conf->idle_s, conf->dry_run ? e.n : closed,
            conf->dry_run ? "would be closed" : "closed", failed, bad);
    if (failed || bad)
        rc = RP_SESSIONS_EXIT_FAILED;
out:
    free(e.v);
    return rc;
}

/* Count the objects under workspaces/{id}/ for show. */
static int count_one(void *opaque, const char *key, uint64_t version)
{
    (void)key;
    (void)version;
    (*(int64_t *)opaque)++;
    return 0;
}

static int run(const rp_sessions_conf_t *conf, rp_state_t *st)
{
    rp_sessions_info_t info;
    char es[1024], prefix[RP_STATE_KEY_MAX + 1];
    lister_t l = {.conf = conf};
    size_t bad = 0, objects = 0;
    rp_err_t err;

    switch (conf->cmd) {
    case RP_SESSIONS_LIST:
        if (!conf->json)
            rp_sessions_table_header(stdout);
        err = rp_sessions_list(st, list_one, &l, &bad, stderr, es, sizeof(es));
        if (!err && l.nomem)
            err = rp_errf(es, sizeof(es), RP_ERR_NOMEM, "out of memory");
        if (err) {
            fprintf(stderr, "%s: %s\n", prog, es);
            return RP_SESSIONS_EXIT_FAILED;
        }
        return bad ? RP_SESSIONS_EXIT_FAILED : RP_SESSIONS_EXIT_OK;
    case RP_SESSIONS_SHOW:
        err = rp_sessions_load(st, conf->id, &info, es, sizeof(es));
        if (err == RP_OK) {
            rp_layout_ws_prefix(conf->id, prefix, sizeof(prefix));
            info.ws_objects = 0;
            err = rp_state_list(st, prefix, count_one, &info.ws_objects, es,
                                sizeof(es));
        }
        if (err == RP_OK) {
            char *j = rp_sessions_json(&info);

            if (!j)
                err = rp_errf(es, sizeof(es), RP_ERR_NOMEM, "out of memory");
            else if (conf->json)
                printf("%s\n", j);
            else {
                char c[RP_TIME_RFC3339_MAX], u[RP_TIME_RFC3339_MAX], b[32];

                rp_time_rfc3339(info.created_ms, c, sizeof(c));
                rp_time_rfc3339(info.updated_ms, u, sizeof(u));
                rp_sessions_bytes(info.ws_bytes, b, sizeof(b));
                printf("session:        %s\ncreated:        %s\n"
                       "last used:      %s\nexecutions:     %lld\n"
                       "last execution: %s\ncwd:            %s\n"
                       "variables:      %zu\nworkspace:      %s",
                       info.id, c, u, (long long)info.executions,
                       info.last_execution_id[0] ? info.last_execution_id
                                                 : "-",
                       info.cwd ? info.cwd : "-", info.env_count, b);
                if (info.ws_files >= 0)
                    printf(" in %lld files (%s)", (long long)info.ws_files,
                           info.ws_manifest[0] ? info.ws_manifest : "-");
                printf("\nobjects:        %lld under %s\n",
                       (long long)info.ws_objects, prefix);
            }
            free(j);
        }
        rp_sessions_info_clear(&info);
        if (err) {
            fprintf(stderr, "%s: %s\n", prog,
                    err == RP_ERR_NOT_FOUND ? "no such session" : es);
            return err == RP_ERR_NOT_FOUND ? RP_SESSIONS_EXIT_NOT_FOUND
                                           : RP_SESSIONS_EXIT_FAILED;
        }
        return RP_SESSIONS_EXIT_OK;
    case RP_SESSIONS_CLOSE:
        err = rp_sessions_close(st, conf->id, RP_STATE_ANY, &objects, es,
                                sizeof(es));
        if (err == RP_OK || err == RP_ERR_NOT_FOUND) {
            if (conf->json)
                printf("{\"session_id\":\"%s\",\"action\":\"%s\","
                       "\"workspace_objects\":%zu}\n", conf->id,
                       err ? "not_found" : "closed", objects);
            else
                printf("%s %s (%zu workspace objects deleted)\n",
                       err ? "no session" : "closed", conf->id, objects);
        }
        if (err) {
            fprintf(stderr, "%s: %s\n", prog, es);
            return err == RP_ERR_NOT_FOUND ? RP_SESSIONS_EXIT_NOT_FOUND
                                           : RP_SESSIONS_EXIT_FAILED;
        }
        return RP_SESSIONS_EXIT_OK;
    case RP_SESSIONS_EXPIRE:
        return run_expire(conf, st);
    default:
        return RP_SESSIONS_EXIT_USAGE;
    }
}

int main(int argc, char **argv)
{
    rp_sessions_conf_t conf;
    rp_gcp_t *gcp = NULL;
    rp_state_t *st = NULL;
    char es[1024];
    int rc = RP_SESSIONS_EXIT_FAILED;

    rp_log_init("sessions", RP_LOG_WARN);
    if (rp_sessions_conf_parse(&conf, argc, argv, getenv("RUNPOOL_STATE"), es,
                               sizeof(es))) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, es, prog);
        return RP_SESSIONS_EXIT_USAGE;
    }
    if (conf.help) {
        rp_sessions_usage(stdout, prog);
        return RP_SESSIONS_EXIT_OK;
    }
    if (conf.version) {
        printf("%s %s\n", prog, RP_SESSIONS_VERSION);
        return RP_SESSIONS_EXIT_OK;
    }
    /* Credentials as the worker's: Google's for gs://, none for an
     * emulator (STORAGE_EMULATOR_HOST). */
    if (!strncmp(conf.state_url, "gs://", 5)) {
        const char *emu = getenv("STORAGE_EMULATOR_HOST");

        if (rp_gcp_new(!(emu && *emu), &gcp, es, sizeof(es)) != RP_OK) {
            fprintf(stderr, "%s: %s\n", prog, es);
            goto out;
        }
    }
    if (rp_state_open_opts(conf.state_url, &(rp_state_opts_t){.gcp = gcp},
                           &st, es, sizeof(es)) != RP_OK) {
        fprintf(stderr, "%s: --state %s: %s\n", prog, conf.state_url, es);
        rc = RP_SESSIONS_EXIT_USAGE;
        goto out;
    }
    rc = run(&conf, st);
    if (fflush(stdout) == EOF) {
        fprintf(stderr, "%s: writing to stdout failed: %s\n", prog,
                strerror(errno ? errno : EIO));
        if (rc == RP_SESSIONS_EXIT_OK)
            rc = RP_SESSIONS_EXIT_FAILED;
    }
out:
    rp_state_destroy(st);
    rp_gcp_destroy(gcp);
    return rc;
}
