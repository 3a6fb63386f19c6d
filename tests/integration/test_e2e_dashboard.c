/* e2e.dashboard — every panel of deploy/grafana/runpool.json returns data
 * from a real Prometheus.
 *
 * A worker on the cloudrun backend (the Cloud Run fake, fake-gcs-server,
 * with a burst of 429s so the API-error panels have something to show) and
 * `runpool-tail --metrics-listen` (the result-stream exporter) serve their
 * metrics; Prometheus 2.42 (Debian's package, pinned by
 * scripts/install-test-deps.sh) scrapes both every second. After a known
 * workload (succeeding, failing and rejected requests, one bad message for
 * the DLQ) every panel expression of the dashboard is evaluated through
 * Prometheus' HTTP API (/api/v1/query) with Grafana's $__rate_interval
 * replaced, and must return at least one series with a finite value.
 * A panel whose query names a metric nobody exports fails here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rp_te_cloud.h"
#include "rp_testenv.h"

#define WAIT_MS 90000
#define N_OK 12
#define REPLY_MAX (4u << 20)
#define PROMETHEUS "/usr/bin/prometheus"

typedef struct reply {
    char *buf;
    size_t len;
} reply_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    reply_t *r = ud;
    size_t add = sz * n;

    if (r->len + add > REPLY_MAX)
        return 0;
    char *nb = realloc(r->buf, r->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, add);
    r->buf = nb;
    r->len += add;
    r->buf[r->len] = '\0';
    return add;
}

/* GET url; returns the body (caller frees) or NULL; *status the HTTP code. */
static char *http_get(const char *url, long *status)
{
    CURL *c = curl_easy_init();
    reply_t r = {0};

    *status = 0;
    if (!c)
        fail_msg("curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    return r.buf;
}

/* A loopback port nobody listens on right now (Prometheus takes no port 0). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
        fail_msg("cannot find a free port");
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The first "listening on 127.0.0.1:PORT"-style address in a process's log
 * (pattern: a POSIX ERE with one group around the port). */
static int wait_log_port(rp_te_t *te, int idx, const char *pattern,
                         int timeout_ms)
{
    regex_t re;
    regmatch_t m[2];
    int64_t deadline = rp_te_now_ms() + timeout_ms;
    int port = -1;

    if (regcomp(&re, pattern, REG_EXTENDED))
        fail_msg("bad pattern %s", pattern);
    while (port < 0) {
        char *log = rp_te_read_file(te->procs[idx].log_path, NULL);

        if (log && regexec(&re, log, 2, m, 0) == 0)
            port = atoi(log + m[1].rm_so);
        free(log);
        if (port > 0)
            break;
        rp_te_check_procs(te);
        if (rp_te_now_ms() > deadline)
            fail_msg("%s never logged its address (%s)", te->procs[idx].name,
                     pattern);
        rp_te_sleep_ms(50);
    }
    regfree(&re);
    return port;
}

/* One instant query; returns the "data" object's "result" array parsed
 * (caller frees the returned root) or fails the test. */
static cJSON *prom_query(int port, const char *expr, const cJSON **result)
{
    char url[8192];
    char *body;
    long status;
    cJSON *root;
    CURL *c = curl_easy_init();
    char *q = curl_easy_escape(c, expr, 0);

    rp_te_format(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s",
                 port, q);
    curl_free(q);
    curl_easy_cleanup(c);
    body = http_get(url, &status);
    if (status != 200 || !body || !(root = cJSON_Parse(body)))
        fail_msg("query %s: HTTP %ld: %s", expr, status, body ? body : "");
    free(body);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "success") || !data)
        fail_msg("query %s did not succeed", expr);
    *result = cJSON_GetObjectItemCaseSensitive(data, "result");
    return root;
}

/* How many series of a vector result carry a finite value. */
static int finite_series(const cJSON *result)
{
    const cJSON *s;
    int n = 0;

    cJSON_ArrayForEach(s, result)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value");
        const cJSON *x = cJSON_GetArrayItem(v, 1);

        if (cJSON_IsString(x) && isfinite(strtod(x->valuestring, NULL)))
            n++;
    }
    return n;
}

static void start_prometheus(rp_te_t *te, int port, int worker_port,
                             int exporter_port)
{
    char cfg[PATH_MAX], data[PATH_MAX], listen[64], cfg_arg[PATH_MAX + 32],
        data_arg[PATH_MAX + 32], log[PATH_MAX], line[512], text[1024],
        url[128];
    FILE *f;
    int idx;
    long status;
    int64_t deadline;

    if (access(PROMETHEUS, X_OK))
        fail_msg(PROMETHEUS " not found: run scripts/install-test-deps.sh");
    rp_te_path(te, cfg, sizeof(cfg), "prometheus.yml");
    rp_te_path(te, data, sizeof(data), "prometheus-data");
    rp_te_format(text, sizeof(text),
                 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                 "scrape_configs:\n"
                 "  - job_name: runpool-worker\n    static_configs:\n"
                 "      - targets: ['127.0.0.1:%d']\n"
                 "  - job_name: runpool-stream\n    static_configs:\n"
                 "      - targets: ['127.0.0.1:%d']\n",
                 worker_port, exporter_port);
    if (!(f = fopen(cfg, "w")) || fputs(text, f) < 0 || fclose(f))
        fail_msg("cannot write %s", cfg);
    rp_te_format(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d",
                 port);
    rp_te_format(cfg_arg, sizeof(cfg_arg), "--config.file=%s", cfg);
    rp_te_format(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", data);
    rp_te_path(te, log, sizeof(log), "prometheus.log");
    char *argv[] = {PROMETHEUS, cfg_arg, data_arg, listen,
                    "--storage.tsdb.retention.time=1h", NULL};
    idx = rp_te_start_service(te, "prometheus", argv, NULL, log, line,
                              sizeof(line), 30000);
    (void)idx;
    rp_te_format(url, sizeof(url), "http://127.0.0.1:%d/-/ready", port);
    deadline = rp_te_now_ms() + 60000;
    for (;;) {
        free(http_get(url, &status));
        if (status == 200)
            break;
        rp_te_check_procs(te);
        if (rp_te_now_ms() > deadline)
            fail_msg("Prometheus not ready in 60 s (see %s)", log);
        rp_te_sleep_ms(100);
    }
}

/* Wait until Prometheus scraped both targets successfully. */
static void wait_targets_up(rp_te_t *te, int port)
{
    int64_t deadline = rp_te_now_ms() + 60000;

    for (;;) {
        const cJSON *res;
        cJSON *root = prom_query(port, "sum(up) == 2", &res);
        int n = cJSON_GetArraySize(res);

        cJSON_Delete(root);
        if (n == 1)
            return;
        rp_te_check_procs(te);
        if (rp_te_now_ms() > deadline)
            fail_msg("Prometheus did not scrape both targets in 60 s");
        rp_te_sleep_ms(200);
    }
}

/* Grafana's variables, as a Prometheus data source expands them. */
static void expand(const char *expr, char *out, size_t out_size)
{
    static const char *const vars[][2] = {
        {"$__rate_interval", "1m"}, {"${__rate_interval}", "1m"},
        {"$__interval", "15s"},     {"$__range", "5m"},
    };
    size_t o = 0;

    while (*expr) {
        bool hit = false;

        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
            size_t l = strlen(vars[i][0]);

            if (!strncmp(expr, vars[i][0], l)) {
                size_t rl = strlen(vars[i][1]);

                if (o + rl >= out_size)
                    fail_msg("expression too long");
                memcpy(out + o, vars[i][1], rl);
                o += rl;
                expr += l;
                hit = true;
                break;
            }
        }
        if (hit)
            continue;
        if (*expr == '$')
            fail_msg("dashboard uses an unknown variable at %s", expr);
        if (o + 1 >= out_size)
            fail_msg("expression too long");
        out[o++] = *expr++;
    }
    out[o] = '\0';
}

/* Every target of every panel (rows included) returns data. */
static int check_panels(const cJSON *panels, int port, int *n_exprs)
{
    const cJSON *p;
    int bad = 0;

    cJSON_ArrayForEach(p, panels)
    {
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(p, "title");
        const cJSON *targets = cJSON_GetObjectItemCaseSensitive(p, "targets");
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(p, "panels");
        const cJSON *t;

        if (cJSON_IsArray(inner))
            bad += check_panels(inner, port, n_exprs);
        cJSON_ArrayForEach(t, targets)
        {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, "expr");
            const cJSON *res;
            char expr[4096];
            cJSON *root;
            int n;

            if (!cJSON_IsString(e))
                fail_msg("panel %s has a target without expr",
                         cJSON_IsString(title) ? title->valuestring : "?");
            expand(e->valuestring, expr, sizeof(expr));
            root = prom_query(port, expr, &res);
            n = finite_series(res);
            print_message("[panel] %-40s %d series  %s\n",
                          cJSON_IsString(title) ? title->valuestring : "?", n,
                          expr);
            if (n == 0) {
                print_message("  -> NO DATA\n");
                bad++;
            }
            (*n_exprs)++;
            cJSON_Delete(root);
        }
    }
    return bad;
}

static void send_workload(rp_te_t *te)
{
    char sid[32], eid[32], cmd[64];
    const char *eids[N_OK + 2];

    rp_te_cloud_config(
        te, "{\"faults\":[{\"route\":\"jobs.run\",\"count\":3,\"status\":429},"
            "{\"route\":\"executions.get\",\"count\":3,\"status\":429}]}");
    for (int i = 0; i < N_OK; i++) {
        snprintf(sid, sizeof(sid), "dash-%d", i % 4);
        snprintf(eid, sizeof(eid), "dash-ok-%d", i);
        snprintf(cmd, sizeof(cmd), "echo %d", i);
        rp_te_send_exec(te, sid, eid, cmd, 0, NULL);
    }
    rp_te_send_exec(te, "dash-f", "dash-fail", "exit 3", 0, NULL);
    /* timeout_s 0 is out of range: a "rejected" result and a DLQ copy. */
    static const char bad[] =
        "{\"v\":1,\"execution_id\":\"dash-rej\",\"session_id\":"
        "\"dash-r\",\"command\":\"true\",\"timeout_s\":0}";
    rp_te_send_raw(te, "dash-r", 6, bad, sizeof(bad) - 1, NULL);
    rp_te_flush(te);
    for (int i = 0; i < N_OK; i++) {
        static char names[N_OK][32];

        snprintf(names[i], sizeof(names[i]), "dash-ok-%d", i);
        eids[i] = names[i];
    }
    eids[N_OK] = "dash-fail";
    eids[N_OK + 1] = "dash-rej";
    rp_te_wait_results_for(te, eids, N_OK + 2, WAIT_MS);
    if (!rp_te_wait_dlq(te, 1, WAIT_MS))
        fail_msg("the bad request never reached the DLQ");
}

/* A second, smaller batch a few scrapes after the first: a rate over [1m]
 * needs a counter to grow between two scrapes, and the first batch can be
 * over (the sweeps find ends in well under a second) before Prometheus
 * has scraped the series twice. */
static void send_more(rp_te_t *te)
{
    static const char *const eids[] = {"dash-more-0", "dash-more-1",
                                       "dash-more-2", "dash-more-3"};
    char sid[32];

    for (int i = 0; i < 4; i++) {
        snprintf(sid, sizeof(sid), "dash-%d", i);
        rp_te_send_exec(te, sid, eids[i], "echo more", 0, NULL);
    }
    rp_te_flush(te);
    rp_te_wait_results_for(te, eids, 4, WAIT_MS);
}

static void test_dashboard(void **state)
{
    rp_te_t *te = *state;
    const char *extra[] = {"--http-listen", "127.0.0.1:0", NULL};
    char exe[PATH_MAX], dash[PATH_MAX];
    int w, tail, wport, eport, pport;
    char *text;
    cJSON *doc;
    int n_exprs = 0, bad;

    rp_te_cloud_start(te, "template");
    w = rp_te_start_worker_args(te, extra);
    rp_te_wait_group(te, &w, 1, 60000);
    wport = wait_log_port(te, w, "listening on 127\\.0\\.0\\.1:([0-9]+)",
                          30000);

    rp_te_format(exe, sizeof(exe), "%s/runpool-tail", te->bin_dir);
    char *targv[] = {exe, "--brokers", te->brokers, "--from", "beginning",
                     "--metrics-listen", "127.0.0.1:0", NULL};
    char tlog[PATH_MAX], line[512];
    rp_te_path(te, tlog, sizeof(tlog), "exporter.log");
    tail = rp_te_start_service(te, "exporter", targv, NULL, tlog, line,
                               sizeof(line), 30000);
    /* It prints {"metrics":"http://ADDR:PORT/metrics"} once it listens. */
    eport = wait_log_port(te, tail,
                          "\"metrics\":\"http://127\\.0\\.0\\.1:([0-9]+)/metrics\"",
                          30000);

    pport = free_port();
    start_prometheus(te, pport, wport, eport);
    wait_targets_up(te, pport);

    send_workload(te);
    rp_te_sleep_ms(2500); /* scrapes of the first batch's counts */
    send_more(te);
    /* Three more scrapes of both, so rates over the window see the work. */
    rp_te_sleep_ms(4000);

    rp_te_format(dash, sizeof(dash), "%s/deploy/grafana/runpool.json",
                 te->src_dir);
    if (!(text = rp_te_read_file(dash, NULL)) || !(doc = cJSON_Parse(text)))
        fail_msg("cannot read %s as JSON", dash);
    free(text);
    /* A rate over [1m] needs two scrapes that saw the series: on a loaded
     * machine the last ones can come late, so look again for a while
     * before calling a panel empty. */
    for (int tries = 0;; tries++) {
        bad = check_panels(cJSON_GetObjectItemCaseSensitive(doc, "panels"),
                           pport, &n_exprs);
        if (bad == 0 || tries >= 10)
            break;
        print_message("%d panel expressions without data yet; again in 2 s\n",
                      bad);
        rp_te_sleep_ms(2000);
    }
    cJSON_Delete(doc);
    print_message("%d panel expressions, %d without data\n", n_exprs, bad);
    assert_true(n_exprs >= 10);
    assert_int_equal(bad, 0);
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dashboard, rp_te_setup,
                                        rp_te_teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
