/* runpool-bench — the benchmark driver behind bench/run.
 *
 * Against a running broker and worker it: sends a few warm-up requests and
 * waits for their results (so group join and first fetches are not
 * measured); produces SESSIONS x PER_SESSION requests at once, interleaved
 * (round r sends request r of every session); reads every result; checks
 * that each execution_id got exactly one result and that it succeeded;
 * and writes the figures as one JSON document (see bench/README.md).
 *
 * All times from Kafka records are CreateTime stamps in wall-clock ms: the
 * request's is set here, the result's by the worker's producer when it
 * queued the result. Both run on this machine, so they share one clock.
 *
 * Exit status: 0 figures written (goals may still have failed: see the
 * file); 1 lost, duplicated or failed executions (the file says which);
 * 2 usage or setup error.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "rp_http.h"
#include "rp_kafka.h"
#include "rp_msg.h"
#include "rp_time.h"

#define BENCH_META_MAX 32
#define BENCH_PEERS_MAX 4 /* --peer: other processes whose CPU is reported */
#define BENCH_EXECUTIONS_MAX 1000000
#define BENCH_PROBLEMS_MAX 20       /* problem lines kept for the report */
#define BENCH_WARMUP_WAIT_MS 60000  /* group join on a fresh broker: ~3-5 s */
#define BENCH_LINGER_MS 1000        /* after the last result: catch dupes */
#define BENCH_CONNECT_MS 10000
#define BENCH_FLUSH_MS 10000
#define BENCH_STATS_MAX (4 * 1024 * 1024) /* a /metrics or stats reply */
#define BENCH_STATS_MS 5000
#define BENCH_LAG_BUCKETS_MAX 32 /* runpool_loop_lag_seconds buckets */

typedef struct bench_opts {
    const char *brokers;
    const char *name;
    const char *description;
    const char *command;
    const char *out_path;
    const char *requests_topic;
    const char *results_topic;
    int sessions;
    int per_session;
    int timeout_s;
    int warmup;
    int warmup_wait_s; /* how long the warm-up may take */
    int deadline_s;
    int sample_ms; /* 0: do not sample executor processes */
    pid_t worker_pid;
    pid_t broker_pid;
    double goal_wall_s;   /* <= 0: no goal */
    double goal_rss_mib;  /* <= 0: no goal */
    double goal_rate;     /* executions/s at least; <= 0: no goal */
    double goal_worker_cpu_ms; /* per execution, at most; <= 0: no goal */
    double goal_turn_p50_ms;   /* turnaround p50 at most; <= 0: no goal */
    double goal_turn_p99_ms;   /* turnaround p99 at most; <= 0: no goal */
    double goal_lag_p99_ms;     /* <= 0: no goal */
    double goal_cpu_ms_per_exec; /* <= 0: no goal */
    const char *metrics_url; /* the worker's /metrics (http://IP:PORT/PATH) */
    const char *meta[BENCH_META_MAX];
    size_t n_meta;
    char peer_name[BENCH_PEERS_MAX][32];
    pid_t peer_pid[BENCH_PEERS_MAX];
    size_t n_peers;
    const char *props[RP_KAFKA_PROPS_MAX];
    size_t n_props;
    bool prime;                  /* one request per session before t0 */
    const char *worker_metrics;  /* the worker's /metrics URL, or NULL */
    const char *cloudrun_stats;  /* the Cloud Run fake's /_fake/stats */
} bench_opts_t;

/* What we learn about one execution. */
typedef struct bench_exec {
    int64_t req_ts;      /* request record's Kafka timestamp */
    int64_t res_ts;      /* result record's Kafka timestamp */
    int64_t recv_us;     /* mono us when this driver read the result */
    int64_t started_at, finished_at, duration;
    rp_timings_t t;
    bool has_timings;
    int results;         /* results that named this execution */
    rp_status_t status;
} bench_exec_t;

/* CPU seconds of one process, from /proc/PID/stat. */
typedef struct bench_cpu {
    bool ok;
    double user, sys, child_user, child_sys;
} bench_cpu_t;

typedef struct bench {
    bench_opts_t o;
    char tag[64];            /* prefix of every id of this run */
    rd_kafka_t *producer;
    rd_kafka_t *reader;
    bench_exec_t *ex;
    int total;
    int received;            /* executions with at least one result */
    int warm_received;
    int delivery_failures;
    int foreign;             /* results of other runs: ignored */
    int unparsable;
    int duplicates;
    int not_succeeded;
    int64_t last_recv_us;
    char *problems[BENCH_PROBLEMS_MAX];
    int n_problems;
    int problems_dropped;
    /* Executor process samples. */
    int samples;
    int peak_procs;
    double procs_sum;
    int64_t sample_cost_us;
    pid_t fork_server;       /* the local backend's (rp_zygote.h); -1: none */
    bench_cpu_t fs0, fs1;    /* its CPU at the start and the end */
    int idle_fds; /* worker's open fds with no executor alive */
    double peak_rss_mib_sampled;
} bench_t;

static void problem(bench_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Remember a correctness problem for the report (the first few). */
static void problem(bench_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (b->n_problems >= BENCH_PROBLEMS_MAX) {
        b->problems_dropped++;
        return;
    }
    b->problems[b->n_problems] = strdup(line);
    if (b->problems[b->n_problems])
        b->n_problems++;
}

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "runpool-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ------------------------------------------------------------------ */
/* /proc readers                                                       */

/* Read a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* A "Name:   123 kB" field of /proc/PID/status (or /proc/meminfo), in
 * KiB; -1 when absent. */
static long proc_kib(const char *path, const char *field)
{
    char buf[8192], *p;
    size_t flen = strlen(field);

    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, field, flen) && p[flen] == ':')
            return strtol(p + flen + 1, NULL, 10);
    }
    return -1;
}

static long status_kib(pid_t pid, const char *field)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    return proc_kib(path, field);
}

static bench_cpu_t proc_cpu(pid_t pid)
{
    bench_cpu_t c = {0};
    char path[64], buf[2048], *rp;
    unsigned long ut, st;
    long cut, cst;
    double hz = (double)sysconf(_SC_CLK_TCK);

    if (pid <= 0)
        return c;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (read_small(path, buf, sizeof(buf)) < 0 || !(rp = strrchr(buf, ')')))
        return c;
    /* After "(comm)": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime cutime cstime. */
    if (sscanf(rp + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
               &ut, &st, &cut, &cst) != 4)
        return c;
    c.ok = true;
    c.user = (double)ut / hz;
    c.sys = (double)st / hz;
    c.child_user = (double)cut / hz;
    c.child_sys = (double)cst / hz;
    return c;
}

/* The local backend's fork server (rp_zygote.h): the worker's child with
 * the command line `... --serve` that started first (the executors it
 * forks show the same command line). Its own CPU is not in the worker's
 * reaped children until it exits, so it is counted apart. -1: none. */
static pid_t fork_server_pid(pid_t worker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    unsigned long long best_start = ~0ULL;
    pid_t best = -1;

    if (!d || worker <= 0) {
        if (d)
            closedir(d);
        return -1;
    }
    while ((e = readdir(d))) {
        char path[300], buf[4096], *rp;
        unsigned long long start;
        long ppid;
        ssize_t n;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (read_small(path, buf, sizeof(buf)) < 0 ||
            !(rp = strrchr(buf, ')')) ||
            /* state ppid ... starttime (field 22) */
            sscanf(rp + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
                           "%*u %*d %*d %*d %*d %*d %*d %llu",
                   &ppid, &start) != 2 ||
            ppid != (long)worker)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        if ((n = read_small(path, buf, sizeof(buf))) < 2)
            continue;
        /* argv[0] NUL argv[1] NUL: read_small ends it with one more NUL */
        if (strlen(buf) + 1 < (size_t)n &&
            !strcmp(buf + strlen(buf) + 1, "--serve") &&
            start < best_start) {
            best_start = start;
            best = (pid_t)atol(e->d_name);
        }
    }
    closedir(d);
    return best;
}

/* Open fds of the worker. The local backend holds one pidfd per live
 * executor child, from fork until it has reaped it, and the worker's other
 * fds barely change, so this minus its idle value counts live executors
 * (within the few files the I/O threads have open at a time). Cheap on
 * purpose: readlink()ing each fd to pick out the pidfds cost ~15 ms a
 * sample with 1,000 executors, and scanning all of /proc for children
 * (no /proc/PID/task/TID/children without CONFIG_PROC_CHILDREN) ~85 ms,
 * which slowed the run being measured by half on 2 cores. */
static int count_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    if (!(d = opendir(path)))
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void sample(bench_t *b)
{
    int64_t t0 = rp_time_mono_us();
    int n = count_fds(b->o.worker_pid);
    long rss = status_kib(b->o.worker_pid, "VmRSS");

    b->sample_cost_us += rp_time_mono_us() - t0;
    if (n < 0)
        return;
    n -= b->idle_fds;
    if (n < 0)
        n = 0;
    b->samples++;
    b->procs_sum += n;
    if (n > b->peak_procs)
        b->peak_procs = n;
    if (rss > 0 && rss / 1024.0 > b->peak_rss_mib_sampled)
        b->peak_rss_mib_sampled = rss / 1024.0;
}

/* ------------------------------------------------------------------ */
/* Kafka                                                               */

static void set_or_die(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char es[512];

    if (rp_kafka_set(conf, k, v, es, sizeof(es)))
        die("%s", es);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    bench_t *b = opaque;

    (void)rk;
    if (m->err) {
        b->delivery_failures++;
        problem(b, "request delivery failed: %s", rd_kafka_err2str(m->err));
    }
}

static void kafka_setup(bench_t *b)
{
    rd_kafka_conf_t *pc = rd_kafka_conf_new(), *cc = rd_kafka_conf_new();
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t kerr;
    char es[512], group[128];
    int64_t deadline = rp_time_mono_ms() + BENCH_CONNECT_MS;

    set_or_die(pc, "bootstrap.servers", b->o.brokers);
    if (rp_kafka_producer_defaults(pc, es, sizeof(es)) ||
        rp_kafka_unique_client_id(pc, "runpool-bench", es, sizeof(es)) ||
        rp_kafka_set_props(pc, b->o.props, b->o.n_props, es, sizeof(es)))
        die("%s", es);
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_opaque(pc, b);
    if (!(b->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, es, sizeof(es))))
        die("producer: %s", es);

    /* The results reader: assign(), never a group member. Our own
     * instrument, so it fetches with a short wait: librdkafka's mock broker
     * answers an empty fetch only after the full fetch.wait.max.ms (500 ms
     * by default) even when data arrives meanwhile, which would blur the
     * receive times. */
    snprintf(group, sizeof(group), "runpool-bench-%s", b->tag);
    set_or_die(cc, "bootstrap.servers", b->o.brokers);
    set_or_die(cc, "group.id", group);
    set_or_die(cc, "enable.auto.commit", "false");
    set_or_die(cc, "fetch.wait.max.ms", "10");
    /* As a consumer of runpool must read results (librdkafka's default,
     * said out loud): only committed transactions, so a worker's
     * transaction batching shows in result_to_bench and end_to_end. */
    set_or_die(cc, "isolation.level", "read_committed");
    if (rp_kafka_unique_client_id(cc, "runpool-bench-r", es, sizeof(es)) ||
        rp_kafka_set_props(cc, b->o.props, b->o.n_props, es, sizeof(es)))
        die("%s", es);
    if (!(b->reader = rd_kafka_new(RD_KAFKA_CONSUMER, cc, es, sizeof(es))))
        die("consumer: %s", es);
    rd_kafka_poll_set_consumer(b->reader);

    /* Start at the current end of every results partition, so results of
     * earlier runs on the same broker are never read. */
    for (;;) {
        rkt = rd_kafka_topic_new(b->reader, b->o.results_topic, NULL);
        kerr = rd_kafka_metadata(b->reader, 0, rkt, &md, 2000);
        rd_kafka_topic_destroy(rkt);
        if (!kerr && md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt > 0)
            break;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (rp_time_mono_ms() > deadline)
            die("no metadata for %s from %s", b->o.results_topic, b->o.brokers);
        usleep(200 * 1000);
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;

        kerr = rd_kafka_query_watermark_offsets(b->reader, b->o.results_topic,
                                                p, &lo, &hi, BENCH_CONNECT_MS);
        if (kerr)
            die("end offset of %s [%d]: %s", b->o.results_topic, (int)p,
                rd_kafka_err2str(kerr));
        rd_kafka_topic_partition_list_add(parts, b->o.results_topic, p)
            ->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    if ((kerr = rd_kafka_assign(b->reader, parts)))
        die("assign: %s", rd_kafka_err2str(kerr));
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Produce one request; returns its Kafka timestamp. */
static int64_t send_request(bench_t *b, const char *eid, const char *sid,
                            const char *command)
{
    rp_request_t req;
    rd_kafka_resp_err_t kerr;
    char *json;
    int64_t ts;

    memset(&req, 0, sizeof(req));
    snprintf(req.execution_id, sizeof(req.execution_id), "%s", eid);
    snprintf(req.session_id, sizeof(req.session_id), "%s", sid);
    req.op = RP_OP_EXEC;
    req.command = (char *)command; /* borrowed: never cleared */
    req.timeout_s = b->o.timeout_s;
    /* No submitted_at: the worker then measures queue_wait_ms from the
     * Kafka timestamp set here, which is what the added latency uses. */
    if (!(json = rp_request_to_json(&req)))
        die("out of memory");
    for (;;) {
        ts = rp_time_wall_ms();
        kerr = rd_kafka_producev(
            b->producer, RD_KAFKA_V_TOPIC(b->o.requests_topic),
            RD_KAFKA_V_KEY(sid, strlen(sid)),
            RD_KAFKA_V_VALUE(json, strlen(json)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
        if (kerr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(b->producer, 10);
    }
    if (kerr) {
        free(json);
        die("produce: %s", rd_kafka_err2str(kerr));
    }
    rd_kafka_poll(b->producer, 0);
    return ts;
}

/* Index of a measured execution id "TAG-eN", -2 for a warm-up one, -1 for
 * anything else. */
static int exec_index(const bench_t *b, const char *eid)
{
    size_t tl = strlen(b->tag);
    char *end;
    long n;

    if (strncmp(eid, b->tag, tl) || eid[tl] != '-')
        return -1;
    if (eid[tl + 1] == 'w')
        return -2;
    if (eid[tl + 1] != 'e')
        return -1;
    errno = 0;
    n = strtol(eid + tl + 2, &end, 10);
    if (errno || *end || n < 0 || n >= b->total)
        return -1;
    return (int)n;
}

static void on_result(bench_t *b, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tst;
    rp_result_t r;
    char es[512];
    bench_exec_t *e;
    int idx;

    memset(&r, 0, sizeof(r));
    if (rp_result_parse(m->payload, m->len, &r, es, sizeof(es))) {
        b->unparsable++;
        problem(b, "unparsable result at partition %d offset %" PRId64 ": %s",
                (int)m->partition, m->offset, es);
        goto out;
    }
    idx = exec_index(b, r.execution_id);
    if (idx == -1) {
        b->foreign++;
        goto out;
    }
    if (idx == -2) {
        b->warm_received++;
        if (r.status != RP_STATUS_SUCCEEDED)
            die("warm-up execution %s: status %s (%s): is the worker set up?",
                r.execution_id, rp_status_str(r.status),
                r.error_message ? r.error_message : "no error message");
        goto out;
    }
    e = &b->ex[idx];
    if (++e->results > 1) {
        b->duplicates++;
        problem(b, "execution %s: result #%d (status %s)", r.execution_id,
                e->results, rp_status_str(r.status));
        goto out;
    }
    b->received++;
    e->recv_us = b->last_recv_us = rp_time_mono_us();
    e->res_ts = rd_kafka_message_timestamp(m, &tst);
    e->status = r.status;
    e->started_at = r.started_at_ms;
    e->finished_at = r.finished_at_ms;
    e->duration = r.duration_ms;
    e->has_timings = r.has_timings;
    e->t = r.timings;
    if (r.status != RP_STATUS_SUCCEEDED) {
        b->not_succeeded++;
        problem(b, "execution %s: status %s%s%s%s%s", r.execution_id,
                rp_status_str(r.status), r.error_code ? " error " : "",
                r.error_code ? r.error_code : "", r.error_message ? ": " : "",
                r.error_message ? r.error_message : "");
    }
out:
    rp_result_clear(&r);
}

/* Serve the reader for up to wait_ms. */
static void consume(bench_t *b, int wait_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(b->reader, wait_ms);

    while (m) {
        if (!m->err)
            on_result(b, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, "runpool-bench: reader: %s\n",
                    rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        m = rd_kafka_consumer_poll(b->reader, 0);
    }
    rd_kafka_poll(b->producer, 0);
}

static void warm_up(bench_t *b)
{
    char eid[RP_ID_MAX + 1], sid[RP_ID_MAX + 1];
    int64_t deadline = rp_time_mono_ms() + b->o.warmup_wait_s * 1000LL;

    for (int i = 0; i < b->o.warmup; i++) {
        snprintf(eid, sizeof(eid), "%s-w%d", b->tag, i);
        snprintf(sid, sizeof(sid), "%s-w%d", b->tag, i);
        send_request(b, eid, sid, "true");
    }
    while (b->warm_received < b->o.warmup) {
        if (rp_time_mono_ms() > deadline)
            die("warm-up: %d of %d results in %d s: is a worker running?",
                b->warm_received, b->o.warmup, b->o.warmup_wait_s);
        consume(b, 50);
    }
    if (!b->o.prime)
        return;
    /* --prime: each session's first command, so that what is measured is
     * the sessions' later commands (their steady state). */
    for (int s = 0; s < b->o.sessions; s++) {
        snprintf(eid, sizeof(eid), "%s-w%d", b->tag, b->o.warmup + s);
        snprintf(sid, sizeof(sid), "%s-s%d", b->tag, s);
        send_request(b, eid, sid, b->o.command);
    }
    deadline = rp_time_mono_ms() + (int64_t)b->o.deadline_s * 1000;
    while (b->warm_received < b->o.warmup + b->o.sessions) {
        if (rp_time_mono_ms() > deadline)
            die("--prime: %d of %d results in %d s", b->warm_received -
                b->o.warmup, b->o.sessions, b->o.deadline_s);
        consume(b, 50);
    }
}

/* ------------------------------------------------------------------ */
/* Remote calls: the worker's own count (runpool_backend_api_calls_total
 * on its /metrics, every HTTP request it sent, by api and method) and
 * the Cloud Run fake's (its requests by route), before and after.      */

static char *http_get(const char *url)
{
    rp_http_req_t req = {.method = "GET", .url = url,
                         .timeout_ms = BENCH_STATS_MS,
                         .response_max = BENCH_STATS_MAX};
    rp_http_resp_t resp;
    char es[256], *text = NULL;

    memset(&resp, 0, sizeof(resp));
    if (rp_http_request(&req, &resp, es, sizeof(es)) != RP_OK ||
        resp.status != 200)
        fprintf(stderr, "runpool-bench: GET %s: %s\n", url,
                resp.status ? "not 200" : es);
    else if ((text = malloc(resp.body.len + 1))) {
        memcpy(text, resp.body.data, resp.body.len);
        text[resp.body.len] = '\0';
    }
    rp_http_resp_clear(&resp);
    return text;
}

/* {"storage GET": n, "cloudrun POST": n, ...}: the worker's API calls
 * summed over status codes. NULL when there is no URL or no answer. */
static cJSON *worker_calls(const char *url)
{
    static const char name[] = "runpool_backend_api_calls_total{";
    char *text = url ? http_get(url) : NULL, *line, *save = NULL;
    cJSON *o;

    if (!text || !(o = cJSON_CreateObject())) {
        free(text);
        return NULL;
    }
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char api[32], method[16], key[64];
        const char *a, *m, *v;
        cJSON *cur;

        if (strncmp(line, name, sizeof(name) - 1) ||
            !(a = strstr(line, "api=\"")) || !(m = strstr(line, "method=\"")) ||
            !(v = strrchr(line, ' ')) ||
            sscanf(a + 5, "%31[^\"]", api) != 1 ||
            sscanf(m + 8, "%15[^\"]", method) != 1)
            continue;
        snprintf(key, sizeof(key), "%s %s", api, method);
        if ((cur = cJSON_GetObjectItemCaseSensitive(o, key)))
            cJSON_SetNumberValue(cur, cur->valuedouble + strtod(v + 1, NULL));
        else
            cJSON_AddNumberToObject(o, key, strtod(v + 1, NULL));
    }
    free(text);
    return o;
}

/* The fake's "requests" ({"POST jobs.run": n, ...}), or NULL. */
static cJSON *cloudrun_calls(const char *url)
{
    char *text = url ? http_get(url) : NULL;
    cJSON *doc = text ? cJSON_Parse(text) : NULL, *req;

    free(text);
    req = cJSON_DetachItemFromObjectCaseSensitive(doc, "requests");
    cJSON_Delete(doc);
    return cJSON_IsObject(req) ? req : (cJSON_Delete(req), NULL);
}

/* after - before, per key (keys only in before count as 0 after). */
static cJSON *calls_diff(const cJSON *before, const cJSON *after)
{
    cJSON *d = cJSON_CreateObject();
    const cJSON *v;

    cJSON_ArrayForEach(v, after)
    {
        const cJSON *b0 = cJSON_GetObjectItemCaseSensitive(before, v->string);
        double n = v->valuedouble - (cJSON_IsNumber(b0) ? b0->valuedouble : 0);

        if (n > 0)
            cJSON_AddNumberToObject(d, v->string, n);
    }
    return d;
}

static double calls_sum(const cJSON *o, const char *prefix, const char *skip)
{
    const cJSON *v;
    double n = 0;

    cJSON_ArrayForEach(v, o)
    {
        if (prefix && strncmp(v->string, prefix, strlen(prefix)))
            continue;
        if (skip && strstr(v->string, skip))
            continue;
        n += v->valuedouble;
    }
    return n;
}

/* figures.remote_calls: what the worker called during the measured part,
 * in all and per execution; polling (executions.get/list, from the fake)
 * apart from the rest. */
static void calls_json(cJSON *fig, int total, cJSON *w0, cJSON *w1,
                       cJSON *r0, cJSON *r1)
{
    cJSON *rc, *per, *wd = NULL, *rd = NULL;
    double storage, run_all, polls = 0, run;

    if (!w0 || !w1)
        return;
    rc = cJSON_AddObjectToObject(fig, "remote_calls");
    wd = calls_diff(w0, w1);
    cJSON_AddItemToObject(rc, "worker_by_api_method", wd);
    storage = calls_sum(wd, "storage ", NULL);
    run_all = calls_sum(wd, "cloudrun ", NULL);
    run = run_all;
    if (r0 && r1) {
        rd = calls_diff(r0, r1);
        cJSON_AddItemToObject(rc, "cloudrun_fake_by_route", rd);
        polls = calls_sum(rd, "GET executions.", NULL);
        run = calls_sum(rd, NULL, "fake.") - polls;
    }
    per = cJSON_AddObjectToObject(rc, "per_execution");
    cJSON_AddNumberToObject(per, "cloud_storage", storage / total);
    cJSON_AddNumberToObject(per, "cloud_run_excluding_polling", run / total);
    cJSON_AddNumberToObject(per, "polling", polls / total);
    cJSON_AddNumberToObject(per, "total_excluding_polling",
                            (storage + run) / total);
    cJSON_AddStringToObject(
        rc, "how",
        "Cloud Storage: the worker's runpool_backend_api_calls_total "
        "(every HTTP request it sent, retries included) before and after "
        "the measured executions; Cloud Run: the fake's count of the "
        "requests it served, by route; polling = executions.get and "
        "executions.list, whose calls are shared by all executions in "
        "flight");
}

/* ------------------------------------------------------------------ */
/* Figures                                                             */

static int cmp_i64(const void *a, const void *bb)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)bb;

    return (x > y) - (x < y);
}

/* {"p50":..,"p90":..,"p99":..,"max":..,"mean":..} of v[0..n) (sorted in
 * place); nearest-rank percentiles. */
static cJSON *dist(int64_t *v, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    static const double ps[] = {50, 90, 99};
    static const char *const names[] = {"p50", "p90", "p99"};
    double sum = 0;

    if (n == 0)
        return o;
    qsort(v, n, sizeof(*v), cmp_i64);
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    for (size_t i = 0; i < 3; i++) {
        size_t k = (size_t)ceil(ps[i] / 100.0 * (double)n);

        cJSON_AddNumberToObject(o, names[i], (double)v[k ? k - 1 : 0]);
    }
    cJSON_AddNumberToObject(o, "max", (double)v[n - 1]);
    cJSON_AddNumberToObject(o, "mean", round(sum / (double)n * 10) / 10);
    return o;
}

typedef struct bench_event {
    int64_t t;
    int d; /* +1 start, -1 end */
} bench_event_t;

static int cmp_event(const void *a, const void *bb)
{
    const bench_event_t *x = a, *y = bb;

    if (x->t != y->t)
        return (x->t > y->t) - (x->t < y->t);
    return x->d - y->d; /* ends first: [start, end) intervals */
}

/* Most intervals [s[i], f[i]) open at one instant. */
static int peak_overlap(const int64_t *s, const int64_t *f, size_t n)
{
    bench_event_t *ev = calloc(2 * n + 1, sizeof(*ev));
    int cur = 0, peak = 0;
    size_t k = 0;

    if (!ev)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= 0 || f[i] < s[i])
            continue;
        ev[k++] = (bench_event_t){s[i], +1};
        ev[k++] = (bench_event_t){f[i], -1};
    }
    qsort(ev, k, sizeof(*ev), cmp_event);
    for (size_t i = 0; i < k; i++) {
        cur += ev[i].d;
        if (cur > peak)
            peak = cur;
    }
    free(ev);
    return peak;
}

static double r3(double v)
{
    return round(v * 1000) / 1000;
}

static cJSON *cpu_json(bench_cpu_t a, bench_cpu_t z)
{
    cJSON *o = cJSON_CreateObject();

    if (!a.ok || !z.ok)
        return o;
    cJSON_AddNumberToObject(o, "user_s", r3(z.user - a.user));
    cJSON_AddNumberToObject(o, "sys_s", r3(z.sys - a.sys));
    cJSON_AddNumberToObject(o, "reaped_children_user_s",
                            r3(z.child_user - a.child_user));
    cJSON_AddNumberToObject(o, "reaped_children_sys_s",
                            r3(z.child_sys - a.child_sys));
    return o;
}

static void goal(cJSON *goals, const char *name, double limit, double value,
                 bool *all_pass)
{
    cJSON *g = cJSON_AddObjectToObject(goals, name);
    bool pass = value < limit;

    cJSON_AddNumberToObject(g, "limit", limit);
    cJSON_AddNumberToObject(g, "value", value);
    cJSON_AddStringToObject(g, "result", pass ? "pass" : "fail");
    if (!pass)
        *all_pass = false;
}

/* A goal met when value <= limit (at_most) or value >= limit. */
static void goal_bound(cJSON *goals, const char *name, double limit,
                       double value, bool at_most, bool *all_pass)
{
    cJSON *g = cJSON_AddObjectToObject(goals, name);
    bool pass = at_most ? value <= limit : value >= limit;

    cJSON_AddNumberToObject(g, at_most ? "limit" : "at_least", limit);
    cJSON_AddNumberToObject(g, "value", value);
    cJSON_AddStringToObject(g, "result", pass ? "pass" : "fail");
    if (!pass)
        *all_pass = false;
}

/* /proc/loadavg without its newline: how busy the machine was. */
static void loadavg(char *out, size_t size)
{
    char *nl;

    if (read_small("/proc/loadavg", out, size) < 0)
        snprintf(out, size, "unknown");
    if ((nl = strchr(out, '\n')))
        *nl = '\0';
}

static void machine_json(cJSON *root, const char *load0, const char *load1)
{
    cJSON *mach = cJSON_AddObjectToObject(root, "machine");
    struct utsname u;

    cJSON_AddNumberToObject(mach, "nproc",
                            (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(mach, "mem_total_kib",
                            (double)proc_kib("/proc/meminfo", "MemTotal"));
    if (uname(&u) == 0) {
        char k[sizeof(u.sysname) + sizeof(u.release) + sizeof(u.machine) + 4];

        snprintf(k, sizeof(k), "%s %s %s", u.sysname, u.release, u.machine);
        cJSON_AddStringToObject(mach, "kernel", k);
    }
    cJSON_AddStringToObject(mach, "librdkafka", rd_kafka_version_str());
    /* Shared machine: other load skews every figure, so keep it beside
     * them. */
    cJSON_AddStringToObject(mach, "loadavg_at_start", load0);
    cJSON_AddStringToObject(mach, "loadavg_at_end", load1);
}

/* The worker's command line, NULs turned into spaces. */
static void cmdline_json(cJSON *o, const char *key, pid_t pid)
{
    char path[64], buf[4096];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    if (pid <= 0 || (n = read_small(path, buf, sizeof(buf))) <= 0)
        return;
    for (ssize_t i = 0; i < n - 1; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    cJSON_AddStringToObject(o, key, buf);
}

/* Per-execution series the report summarises (ms unless noted). */
enum {
    S_START, S_FINISH,          /* the command, from the executor (wall) */
    S_PICKED, S_PUBLISHED,      /* the worker: picked up, result queued (wall) */
    S_ADDED, S_LOAD, S_SAVE, S_SPAWN, S_REST, S_DURATION, S_QUEUE,
    S_DELIVERY, S_E2E, S_FINISH_TO_RESULT,
    S_COUNT
};

/* Build the report. Returns true when every execution succeeded once. */
/* The loop-lag histogram of one /metrics scrape: cumulative counts per
 * upper bound (seconds), +Inf last. */
typedef struct bench_lag {
    bool ok;
    size_t n;
    double le[BENCH_LAG_BUCKETS_MAX];
    double count[BENCH_LAG_BUCKETS_MAX];
} bench_lag_t;

static bench_lag_t scrape_lag(const char *url)
{
    static const char name[] = "runpool_loop_lag_seconds_bucket{le=\"";
    bench_lag_t lag;
    char *page, *p;

    memset(&lag, 0, sizeof(lag));
    if (!url || !(page = http_get(url)))
        return lag;
    for (p = strstr(page, name); p && lag.n < BENCH_LAG_BUCKETS_MAX;
         p = strstr(p, name)) {
        char *q = p + sizeof(name) - 1, *end;

        lag.le[lag.n] = strncmp(q, "+Inf", 4) ? strtod(q, &end) : INFINITY;
        q = strchr(q, '}');
        if (!q)
            break;
        lag.count[lag.n++] = strtod(q + 1, &end);
        p = q;
    }
    lag.ok = lag.n > 0 && isinf(lag.le[lag.n - 1]);
    free(page);
    return lag;
}

/* The turns between two scrapes: how many, the bucket bounds holding the
 * median and the 99th percentile (upper bounds: the histogram's
 * resolution), and how many took longer than 10 ms. */
static cJSON *lag_json(const bench_lag_t *a, const bench_lag_t *b,
                       double *p99_ms)
{
    cJSON *o = cJSON_CreateObject();
    double total, over10 = 0, p50 = NAN, p99 = NAN;

    *p99_ms = NAN;
    if (!a->ok || !b->ok || a->n != b->n) {
        cJSON_AddStringToObject(o, "error", "no runpool_loop_lag_seconds "
                                "histogram on --metrics-url");
        return o;
    }
    total = b->count[b->n - 1] - a->count[a->n - 1];
    for (size_t i = 0; i < b->n; i++) {
        double c = b->count[i] - a->count[i];

        if (isnan(p50) && c >= 0.50 * total)
            p50 = b->le[i];
        if (isnan(p99) && c >= 0.99 * total)
            p99 = b->le[i];
        if (fabs(b->le[i] - 0.01) < 1e-9)
            over10 = total - c;
    }
    cJSON_AddStringToObject(o, "how", "runpool_loop_lag_seconds scraped "
                            "after the warm-up and after the last result; "
                            "percentiles are the bucket upper bounds");
    cJSON_AddNumberToObject(o, "turns", total);
    cJSON_AddNumberToObject(o, "p50_le_ms", isinf(p50) ? -1 : p50 * 1000);
    cJSON_AddNumberToObject(o, "p99_le_ms", isinf(p99) ? -1 : p99 * 1000);
    cJSON_AddNumberToObject(o, "turns_over_10ms", over10);
    *p99_ms = isinf(p99) ? INFINITY : p99 * 1000;
    return o;
}

static bool report(bench_t *b, cJSON *root, int64_t t0_us, int64_t t0_wall,
                   bench_cpu_t w0, bench_cpu_t w1, bench_cpu_t k0,
                   bench_cpu_t k1, long hwm_kib, long rss_kib,
                   long rss0_kib, const bench_lag_t *lag0,
                   const bench_lag_t *lag1)
{
    size_t n = (size_t)b->total, m = 0, c = 0;
    int64_t *v[S_COUNT];
    int64_t last_start = 0, first_start = INT64_MAX;
    int missing = b->total - b->received, peak_results, peak_worker;
    double wall_s = b->received ? (double)(b->last_recv_us - t0_us) / 1e6 : 0;
    cJSON *fig, *lat, *probs, *goals, *run;
    double worker_ms = NAN, turn_p50 = NAN, turn_p99 = NAN;
    bool ok, all_pass = true;
    double cpu_ms, lag_p99 = NAN;

    for (int k = 0; k < S_COUNT; k++)
        if (!(v[k] = calloc(n + 1, sizeof(int64_t))))
            die("out of memory");
    for (int i = 0; i < b->total; i++) {
        const bench_exec_t *e = &b->ex[i];
        int64_t recv_wall = t0_wall + (e->recv_us - t0_us) / 1000;

        if (!e->results) {
            problem(b, "execution %s-e%d: no result", b->tag, i);
            continue;
        }
        v[S_START][c] = e->started_at;
        v[S_FINISH][c++] = e->finished_at;
        if (e->started_at > last_start)
            last_start = e->started_at;
        if (e->started_at > 0 && e->started_at < first_start)
            first_start = e->started_at;
        if (!e->has_timings)
            continue;
        /* Picked up by the worker, by its own account. */
        v[S_PICKED][m] = e->req_ts + e->t.queue_wait_ms;
        v[S_PUBLISHED][m] = e->res_ts;
        v[S_ADDED][m] = e->res_ts - v[S_PICKED][m] - e->duration;
        v[S_LOAD][m] = e->t.state_load_ms;
        v[S_SAVE][m] = e->t.state_save_ms;
        v[S_SPAWN][m] = e->t.run_ms - e->duration;
        v[S_REST][m] = v[S_ADDED][m] - v[S_LOAD][m] - v[S_SAVE][m] -
                       v[S_SPAWN][m];
        v[S_DURATION][m] = e->duration;
        v[S_QUEUE][m] = e->t.queue_wait_ms;
        v[S_DELIVERY][m] = recv_wall - e->res_ts;
        v[S_E2E][m] = recv_wall - e->req_ts;
        /* The executor's finished_at (its clock, this machine's) to the
         * result queued: how long the worker took to notice the end and
         * publish (issue 9 s1). */
        v[S_FINISH_TO_RESULT][m] = e->res_ts - e->finished_at;
        m++;
    }
    peak_results = peak_overlap(v[S_START], v[S_FINISH], c);
    peak_worker = peak_overlap(v[S_PICKED], v[S_PUBLISHED], m);
    ok = missing == 0 && b->duplicates == 0 && b->not_succeeded == 0 &&
         b->unparsable == 0 && b->delivery_failures == 0;

    cJSON_AddStringToObject(root, "result", ok ? "ok" : "FAILED");
    probs = cJSON_AddArrayToObject(root, "problems");
    for (int i = 0; i < b->n_problems; i++)
        cJSON_AddItemToArray(probs, cJSON_CreateString(b->problems[i]));
    if (b->problems_dropped) {
        char more[64];

        snprintf(more, sizeof(more), "... and %d more", b->problems_dropped);
        cJSON_AddItemToArray(probs, cJSON_CreateString(more));
    }

    fig = cJSON_AddObjectToObject(root, "figures");
    cJSON_AddNumberToObject(fig, "executions", b->total);
    cJSON_AddNumberToObject(fig, "results_received", b->received);
    cJSON_AddNumberToObject(fig, "missing", missing);
    cJSON_AddNumberToObject(fig, "duplicates", b->duplicates);
    cJSON_AddNumberToObject(fig, "not_succeeded", b->not_succeeded);
    cJSON_AddNumberToObject(fig, "wall_time_s", r3(wall_s));
    cJSON_AddNumberToObject(fig, "executions_per_s",
                            wall_s > 0 ? round(b->received / wall_s * 10) / 10
                                       : 0);
    cJSON_AddNumberToObject(fig, "first_command_start_s",
                            first_start == INT64_MAX ? 0
                                : r3((double)(first_start - t0_wall) / 1000));
    cJSON_AddNumberToObject(fig, "last_command_start_s",
                            r3((double)(last_start - t0_wall) / 1000));
    cJSON_AddNumberToObject(fig, "peak_in_flight_from_results", peak_results);
    cJSON_AddNumberToObject(fig, "peak_in_worker_from_results", peak_worker);
    if (b->o.sample_ms > 0) {
        cJSON *ps = cJSON_AddObjectToObject(fig, "executor_processes_sampled");

        cJSON_AddStringToObject(ps, "how", "worker's open fds minus its idle "
                                "count: one pidfd per live executor child");
        cJSON_AddNumberToObject(ps, "idle_fds", b->idle_fds);
        cJSON_AddNumberToObject(ps, "interval_ms", b->o.sample_ms);
        cJSON_AddNumberToObject(ps, "samples", b->samples);
        cJSON_AddNumberToObject(ps, "peak", b->peak_procs);
        cJSON_AddNumberToObject(ps, "mean",
                                b->samples ? round(b->procs_sum / b->samples)
                                           : 0);
        cJSON_AddNumberToObject(ps, "scan_cost_ms_mean",
                                b->samples ? r3(b->sample_cost_us / 1000.0 /
                                                b->samples)
                                           : 0);
    }
    cJSON_AddNumberToObject(fig, "worker_vmhwm_mib", r3(hwm_kib / 1024.0));
    cJSON_AddNumberToObject(fig, "worker_vmrss_end_mib", r3(rss_kib / 1024.0));
    if (b->o.sample_ms > 0)
        cJSON_AddNumberToObject(fig, "worker_vmrss_peak_sampled_mib",
                                r3(b->peak_rss_mib_sampled));
    cJSON_AddItemToObject(fig, "worker_cpu", cpu_json(w0, w1));
    cJSON_AddItemToObject(fig, "broker_cpu", cpu_json(k0, k1));
    /* The worker's own cost per execution (its children excluded) and
     * what one more execution held at once costs it in memory. */
    cpu_ms = w0.ok && w1.ok && b->received
                 ? (w1.user + w1.sys - w0.user - w0.sys) * 1000 / b->received
                 : NAN;
    cJSON_AddNumberToObject(fig, "worker_cpu_ms_per_execution",
                            isnan(cpu_ms) ? -1 : round(cpu_ms * 1000) / 1000);
    cJSON_AddNumberToObject(fig, "worker_vmrss_at_start_mib",
                            r3(rss0_kib / 1024.0));
    cJSON_AddNumberToObject(fig, "worker_kib_per_in_worker_execution",
                            peak_worker > 0
                                ? round((double)(hwm_kib - rss0_kib) /
                                        peak_worker * 100) / 100
                                : -1);
    if (b->o.metrics_url)
        cJSON_AddItemToObject(fig, "loop_lag", lag_json(lag0, lag1, &lag_p99));

    lat = cJSON_AddObjectToObject(fig, "latency_ms");
    cJSON_AddItemToObject(lat, "worker_added", dist(v[S_ADDED], m));
    cJSON_AddItemToObject(lat, "state_load", dist(v[S_LOAD], m));
    cJSON_AddItemToObject(lat, "state_save", dist(v[S_SAVE], m));
    cJSON_AddItemToObject(lat, "spawn_and_executor", dist(v[S_SPAWN], m));
    cJSON_AddItemToObject(lat, "worker_added_rest", dist(v[S_REST], m));
    cJSON_AddItemToObject(lat, "command_duration", dist(v[S_DURATION], m));
    cJSON_AddItemToObject(lat, "queue_wait", dist(v[S_QUEUE], m));
    cJSON_AddItemToObject(lat, "result_to_bench", dist(v[S_DELIVERY], m));
    cJSON_AddItemToObject(lat, "end_to_end", dist(v[S_E2E], m));
    cJSON_AddItemToObject(lat, "finished_to_result",
                          dist(v[S_FINISH_TO_RESULT], m));

    /* One session's turnaround: the gap between the results of its
     * consecutive requests (request r+1 can start only when r is done),
     * from the results' Kafka timestamps, set by the worker's producer when
     * it queued each result (the driver's own fetch wait stays out). */
    {
        size_t ng = 0, cap = (size_t)b->total;
        int64_t *gaps = calloc(cap + 1, sizeof(int64_t));
        cJSON *t;

        if (!gaps)
            die("out of memory");
        for (int r = 1; r < b->o.per_session; r++)
            for (int s = 0; s < b->o.sessions; s++) {
                const bench_exec_t *p = &b->ex[(r - 1) * b->o.sessions + s];
                const bench_exec_t *q = &b->ex[r * b->o.sessions + s];

                if (p->results && q->results)
                    gaps[ng++] = q->res_ts - p->res_ts;
            }
        t = dist(gaps, ng);
        cJSON_AddStringToObject(t, "how", "per session, result r+1's Kafka "
                                "timestamp minus result r's (ms)");
        cJSON_AddItemToObject(lat, "turnaround", t);
        if (ng) {
            size_t k50 = (size_t)ceil(0.5 * (double)ng), k99 = (size_t)ceil(0.99 * (double)ng);

            turn_p50 = (double)gaps[k50 ? k50 - 1 : 0];
            turn_p99 = (double)gaps[k99 ? k99 - 1 : 0];
        }
        free(gaps);
    }
    if (w0.ok && w1.ok && b->received) {
        cJSON *pe = cJSON_AddObjectToObject(fig, "cpu_ms_per_execution");

        worker_ms = ((w1.user - w0.user) + (w1.sys - w0.sys)) * 1000.0 /
                    b->received;
        cJSON_AddNumberToObject(pe, "worker", r3(worker_ms));
        cJSON_AddNumberToObject(pe, "executors_reaped",
                                r3(((w1.child_user - w0.child_user) +
                                    (w1.child_sys - w0.child_sys)) *
                                   1000.0 / b->received));
        if (b->fork_server > 0 && b->fs0.ok && b->fs1.ok)
            cJSON_AddNumberToObject(pe, "fork_server",
                                    r3(((b->fs1.user - b->fs0.user) +
                                        (b->fs1.sys - b->fs0.sys)) *
                                       1000.0 / b->received));
        if (k0.ok && k1.ok)
            cJSON_AddNumberToObject(pe, "broker",
                                    r3(((k1.user - k0.user) + (k1.sys - k0.sys)) *
                                       1000.0 / b->received));
    }

    goals = cJSON_AddObjectToObject(root, "goals");
    {
        cJSON *g = cJSON_AddObjectToObject(goals,
                                           "every_execution_succeeded_once");

        cJSON_AddStringToObject(g, "result", ok ? "pass" : "fail");
        if (!ok)
            all_pass = false;
    }
    if (b->o.goal_wall_s > 0)
        goal(goals, "wall_time_s", b->o.goal_wall_s, r3(wall_s), &all_pass);
    if (b->o.goal_rss_mib > 0)
        goal(goals, "worker_vmhwm_mib", b->o.goal_rss_mib,
             r3(hwm_kib / 1024.0), &all_pass);
    if (b->o.goal_rate > 0)
        goal_bound(goals, "executions_per_s", b->o.goal_rate,
                   wall_s > 0 ? round(b->received / wall_s * 10) / 10 : 0,
                   false, &all_pass);
    if (b->o.goal_worker_cpu_ms > 0)
        goal_bound(goals, "worker_cpu_ms_per_execution", b->o.goal_worker_cpu_ms,
                   r3(worker_ms), true, &all_pass);
    if (b->o.goal_turn_p50_ms > 0)
        goal_bound(goals, "turnaround_p50_ms", b->o.goal_turn_p50_ms, turn_p50,
                   true, &all_pass);
    if (b->o.goal_turn_p99_ms > 0)
        goal_bound(goals, "turnaround_p99_ms", b->o.goal_turn_p99_ms, turn_p99,
                   true, &all_pass);
    if (b->o.goal_lag_p99_ms > 0)
        goal(goals, "loop_lag_p99_ms", b->o.goal_lag_p99_ms,
             isnan(lag_p99) || isinf(lag_p99) ? 1e9 : lag_p99, &all_pass);
    if (b->o.goal_cpu_ms_per_exec > 0)
        goal(goals, "worker_cpu_ms_per_execution", b->o.goal_cpu_ms_per_exec,
             isnan(cpu_ms) ? 1e9 : round(cpu_ms * 1000) / 1000, &all_pass);
    cJSON_AddStringToObject(goals, "all", all_pass ? "pass" : "fail");

    run = cJSON_GetObjectItem(root, "run");
    cJSON_AddNumberToObject(run, "foreign_results_ignored", b->foreign);

    for (int k = 0; k < S_COUNT; k++)
        free(v[k]);
    return ok;
}

static double num(const cJSON *o, const char *a, const char *bk)
{
    const cJSON *x = cJSON_GetObjectItem(o, a);

    if (bk)
        x = cJSON_GetObjectItem(x, bk);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static void summary(const bench_t *b, const cJSON *root)
{
    const cJSON *fig = cJSON_GetObjectItem(root, "figures");
    const cJSON *lat = cJSON_GetObjectItem(fig, "latency_ms");
    const cJSON *goals = cJSON_GetObjectItem(root, "goals");
    const cJSON *g;

    printf("== scenario %s: %d x %d '%s' -> %s: %s\n", b->o.name,
           b->o.sessions, b->o.per_session, b->o.command, b->o.out_path,
           cJSON_GetStringValue(cJSON_GetObjectItem(root, "result")));
    printf("   results %d/%d, duplicates %d, not succeeded %d\n", b->received,
           b->total, b->duplicates, b->not_succeeded);
    printf("   wall %.3f s, %.1f executions/s, last command started at "
           "%.3f s\n",
           num(fig, "wall_time_s", NULL), num(fig, "executions_per_s", NULL),
           num(fig, "last_command_start_s", NULL));
    printf("   peak in flight %g (from results), %g in worker",
           num(fig, "peak_in_flight_from_results", NULL),
           num(fig, "peak_in_worker_from_results", NULL));
    if (b->o.sample_ms > 0)
        printf(", %g executor processes (sampled)",
               num(fig, "executor_processes_sampled", "peak"));
    printf("\n");
    printf("   worker VmHWM %.1f MiB; CPU s user+sys: worker %.2f+%.2f, "
           "its reaped children %.2f+%.2f\n",
           num(fig, "worker_vmhwm_mib", NULL), num(fig, "worker_cpu", "user_s"),
           num(fig, "worker_cpu", "sys_s"),
           num(fig, "worker_cpu", "reaped_children_user_s"),
           num(fig, "worker_cpu", "reaped_children_sys_s"));
    printf("   ms p50/p99: worker added %g/%g = load %g/%g + save %g/%g + "
           "spawn+executor %g/%g + rest %g/%g\n",
           num(lat, "worker_added", "p50"), num(lat, "worker_added", "p99"),
           num(lat, "state_load", "p50"), num(lat, "state_load", "p99"),
           num(lat, "state_save", "p50"), num(lat, "state_save", "p99"),
           num(lat, "spawn_and_executor", "p50"),
           num(lat, "spawn_and_executor", "p99"),
           num(lat, "worker_added_rest", "p50"),
           num(lat, "worker_added_rest", "p99"));
    printf("   CPU ms per execution: worker %g, executors %g (+ fork server "
           "%g); turnaround ms p50/p99 %g/%g\n",
           num(fig, "cpu_ms_per_execution", "worker"),
           num(fig, "cpu_ms_per_execution", "executors_reaped"),
           num(fig, "cpu_ms_per_execution", "fork_server"),
           num(lat, "turnaround", "p50"), num(lat, "turnaround", "p99"));
    printf("   load average at start: %s\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(
               cJSON_GetObjectItem(root, "machine"), "loadavg_at_start")));
    printf("   ms p50/p99: queue wait %g/%g, end to end %g/%g, executor "
           "finished -> result %g/%g\n",
           num(lat, "queue_wait", "p50"), num(lat, "queue_wait", "p99"),
           num(lat, "end_to_end", "p50"), num(lat, "end_to_end", "p99"),
           num(lat, "finished_to_result", "p50"),
           num(lat, "finished_to_result", "p99"));
    for (g = goals ? goals->child : NULL; g; g = g->next) {
        if (!cJSON_IsObject(g))
            continue;
        if (cJSON_GetObjectItem(g, "limit"))
            printf("   goal %s: %g (limit %g): %s\n", g->string,
                   num(g, "value", NULL), num(g, "limit", NULL),
                   cJSON_GetStringValue(cJSON_GetObjectItem(g, "result")));
        else
            printf("   goal %s: %s\n", g->string,
                   cJSON_GetStringValue(cJSON_GetObjectItem(g, "result")));
    }
    printf("   goals: %s\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(goals, "all")));
    for (int i = 0; i < b->n_problems; i++)
        printf("   PROBLEM: %s\n", b->problems[i]);
    if (b->problems_dropped)
        printf("   PROBLEM: ... and %d more\n", b->problems_dropped);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */

static void usage(FILE *f)
{
    fprintf(f,
"usage: runpool-bench --brokers B --name NAME --sessions N --per-session M\n"
"                     --command CMD --out FILE [options]\n"
"Benchmark driver (normally started by bench/run): warms up, produces\n"
"N x M requests at once (interleaved by session), reads every result and\n"
"writes figures as JSON to FILE. Exit 1 when an execution lost, duplicated\n"
"or failed.\n"
"\n"
"  --worker-pid PID     worker to watch (RSS, CPU, executor children)\n"
"  --broker-pid PID     broker to watch (CPU)\n"
"  --sample-ms MS       count the worker's executors every MS (0 = off) [0]\n"
"  --deadline-s S       give up waiting for results after S s [300]\n"
"  --warmup N           warm-up requests before measuring [8]\n"
"  --warmup-wait-s S    how long the warm-up may take [60]\n"
"  --timeout-s S        request timeout_s [120]\n"
"  --goal-wall-s S      goal: wall time below S seconds\n"
"  --goal-rss-mib M     goal: worker VmHWM below M MiB\n"
"  --goal-rate R        goal: at least R executions/s\n"
"  --goal-worker-cpu-ms X  goal: worker CPU per execution at most X ms\n"
"  --goal-turnaround-p50-ms X, --goal-turnaround-p99-ms X\n"
"                       goal: gap between a session's consecutive results\n"
"                       at most X ms (p50, p99)\n"
"  --metrics-url URL    the worker's /metrics (http://IP:PORT/metrics):\n"
"                       main-loop lag over the run\n"
"  --goal-lag-p99-ms MS goal: loop lag p99 below MS (needs --metrics-url)\n"
"  --goal-cpu-ms-per-exec MS  goal: worker CPU per execution below MS\n"
"  --description TEXT   what the scenario measures (into the file)\n"
"  --meta KEY=VALUE     extra string for the file's \"run\" (repeatable)\n"
"  --peer NAME=PID      another process whose CPU and command line go into\n"
"                       the file (repeatable, at most 4)\n"
"  --prime              send each session's first command before measuring\n"
"                       (the figures are then the sessions' later commands)\n"
"  --worker-metrics URL the worker's /metrics: its API calls go into\n"
"                       figures.remote_calls\n"
"  --cloudrun-stats URL the Cloud Run fake's /_fake/stats (its count of\n"
"                       requests by route, polling told apart)\n"
"  --requests-topic T   [%s]\n"
"  --results-topic T    [%s]\n"
"  -X key=value         librdkafka setting for the bench's own clients\n"
"  -h, --help           this text\n"
"  -V, --version        print \"runpool-bench VERSION\" and exit\n",
            RP_TOPIC_REQUESTS_DEFAULT, RP_TOPIC_RESULTS_DEFAULT);
}

static long int_arg(const char *name, const char *v, long lo, long hi)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        die("%s: '%s' is not an integer in %ld..%ld", name, v, lo, hi);
    return n;
}

static double num_arg(const char *name, const char *v)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !(d > 0))
        die("%s: '%s' is not a positive number", name, v);
    return d;
}

static void parse_args(bench_t *b, int argc, char **argv)
{
    enum { O_BROKERS = 256, O_NAME, O_SESS, O_PER, O_CMD, O_OUT, O_WPID,
           O_BPID, O_SAMPLE, O_DEADLINE, O_WARM, O_TMO, O_GWALL, O_GRSS,
           O_DESC, O_META, O_REQ, O_RES, O_PEER, O_GRATE, O_GWCPU, O_GT50,
           O_GT99, O_PRIME, O_WMETRICS, O_CRSTATS, O_MURL, O_GLAG, O_GCPU,
           O_WWAIT };
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, O_BROKERS},
        {"name", required_argument, NULL, O_NAME},
        {"sessions", required_argument, NULL, O_SESS},
        {"per-session", required_argument, NULL, O_PER},
        {"command", required_argument, NULL, O_CMD},
        {"out", required_argument, NULL, O_OUT},
        {"worker-pid", required_argument, NULL, O_WPID},
        {"broker-pid", required_argument, NULL, O_BPID},
        {"sample-ms", required_argument, NULL, O_SAMPLE},
        {"deadline-s", required_argument, NULL, O_DEADLINE},
        {"warmup", required_argument, NULL, O_WARM},
        {"timeout-s", required_argument, NULL, O_TMO},
        {"goal-wall-s", required_argument, NULL, O_GWALL},
        {"goal-rss-mib", required_argument, NULL, O_GRSS},
        {"goal-rate", required_argument, NULL, O_GRATE},
        {"goal-worker-cpu-ms", required_argument, NULL, O_GWCPU},
        {"goal-turnaround-p50-ms", required_argument, NULL, O_GT50},
        {"goal-turnaround-p99-ms", required_argument, NULL, O_GT99},
        {"description", required_argument, NULL, O_DESC},
        {"meta", required_argument, NULL, O_META},
        {"requests-topic", required_argument, NULL, O_REQ},
        {"results-topic", required_argument, NULL, O_RES},
        {"peer", required_argument, NULL, O_PEER},
        {"prime", no_argument, NULL, O_PRIME},
        {"worker-metrics", required_argument, NULL, O_WMETRICS},
        {"cloudrun-stats", required_argument, NULL, O_CRSTATS},
        {"metrics-url", required_argument, NULL, O_MURL},
        {"warmup-wait-s", required_argument, NULL, O_WWAIT},
        {"goal-lag-p99-ms", required_argument, NULL, O_GLAG},
        {"goal-cpu-ms-per-exec", required_argument, NULL, O_GCPU},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bench_opts_t *o = &b->o;
    int c;

    o->requests_topic = RP_TOPIC_REQUESTS_DEFAULT;
    o->results_topic = RP_TOPIC_RESULTS_DEFAULT;
    o->timeout_s = RP_TIMEOUT_DEFAULT_S;
    o->warmup = 8;
    o->warmup_wait_s = BENCH_WARMUP_WAIT_MS / 1000;
    o->deadline_s = 300;
    opterr = 0; /* one line of our own, not getopt's and the usage */
    while ((c = getopt_long(argc, argv, ":X:hV", opts, NULL)) != -1) {
        switch (c) {
        case O_BROKERS: o->brokers = optarg; break;
        case O_NAME: o->name = optarg; break;
        case O_SESS:
            o->sessions = (int)int_arg("--sessions", optarg, 1, 100000);
            break;
        case O_PER:
            o->per_session = (int)int_arg("--per-session", optarg, 1, 100000);
            break;
        case O_CMD: o->command = optarg; break;
        case O_OUT: o->out_path = optarg; break;
        case O_WPID:
            o->worker_pid = (pid_t)int_arg("--worker-pid", optarg, 1, INT32_MAX);
            break;
        case O_BPID:
            o->broker_pid = (pid_t)int_arg("--broker-pid", optarg, 1, INT32_MAX);
            break;
        case O_SAMPLE:
            o->sample_ms = (int)int_arg("--sample-ms", optarg, 0, 60000);
            break;
        case O_DEADLINE:
            o->deadline_s = (int)int_arg("--deadline-s", optarg, 1, 86400);
            break;
        case O_WARM:
            o->warmup = (int)int_arg("--warmup", optarg, 1, 1000);
            break;
        case O_TMO:
            o->timeout_s = (int)int_arg("--timeout-s", optarg, RP_TIMEOUT_MIN_S,
                                        RP_TIMEOUT_MAX_S);
            break;
        case O_GWALL: o->goal_wall_s = num_arg("--goal-wall-s", optarg); break;
        case O_GRSS: o->goal_rss_mib = num_arg("--goal-rss-mib", optarg); break;
        case O_GRATE: o->goal_rate = num_arg("--goal-rate", optarg); break;
        case O_GWCPU:
            o->goal_worker_cpu_ms = num_arg("--goal-worker-cpu-ms", optarg);
            break;
        case O_GT50:
            o->goal_turn_p50_ms = num_arg("--goal-turnaround-p50-ms", optarg);
            break;
        case O_GT99:
            o->goal_turn_p99_ms = num_arg("--goal-turnaround-p99-ms", optarg);
            break;
        case O_MURL: o->metrics_url = optarg; break;
        case O_WWAIT:
            o->warmup_wait_s = (int)int_arg("--warmup-wait-s", optarg, 1, 86400);
            break;
        case O_GLAG:
            o->goal_lag_p99_ms = num_arg("--goal-lag-p99-ms", optarg);
            break;
        case O_GCPU:
            o->goal_cpu_ms_per_exec = num_arg("--goal-cpu-ms-per-exec", optarg);
            break;
        case O_DESC: o->description = optarg; break;
        case O_META:
            if (!strchr(optarg, '=') || o->n_meta >= BENCH_META_MAX)
                die("--meta: expected KEY=VALUE (at most %d)", BENCH_META_MAX);
            o->meta[o->n_meta++] = optarg;
            break;
        case O_REQ: o->requests_topic = optarg; break;
        case O_PRIME: o->prime = true; break;
        case O_WMETRICS: o->worker_metrics = optarg; break;
        case O_CRSTATS: o->cloudrun_stats = optarg; break;
        case O_RES: o->results_topic = optarg; break;
        case O_PEER: {
            const char *eq = strchr(optarg, '=');

            if (!eq || eq == optarg || (size_t)(eq - optarg) >= 32 ||
                o->n_peers >= BENCH_PEERS_MAX)
                die("--peer: expected NAME=PID (at most %d)", BENCH_PEERS_MAX);
            snprintf(o->peer_name[o->n_peers], 32, "%.*s",
                     (int)(eq - optarg), optarg);
            o->peer_pid[o->n_peers++] =
                (pid_t)int_arg("--peer", eq + 1, 1, INT32_MAX);
            break;
        }
        case 'X':
            if (o->n_props >= RP_KAFKA_PROPS_MAX)
                die("at most %d -X settings", RP_KAFKA_PROPS_MAX);
            o->props[o->n_props++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("runpool-bench %s\n", RP_VERSION); exit(0);
        case ':':
            fprintf(stderr, "runpool-bench: %s needs a value (see --help)\n",
                    argv[optind - 1]);
            exit(2);
        default:
            fprintf(stderr, "runpool-bench: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "runpool-bench: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        exit(2);
    }
    if (!o->brokers || !o->name || !o->sessions || !o->per_session ||
        !o->command || !o->out_path) {
        fprintf(stderr, "runpool-bench: --brokers, --name, --sessions, "
                "--per-session, --command and --out are required (see "
                "--help)\n");
        exit(2);
    }
}

static void write_file(const char *path, const char *text)
{
    char tmp[4096];
    FILE *f;

    /* Write then rename: a reader never sees half a file. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        die("--out path too long");
    if (!(f = fopen(tmp, "w")))
        die("%s: %s", tmp, strerror(errno));
    if (fputs(text, f) == EOF || fputc('\n', f) == EOF || fclose(f) != 0)
        die("%s: write failed", tmp);
    if (rename(tmp, path) != 0)
        die("%s: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    bench_t b;
    cJSON *root, *run, *wl;
    bench_cpu_t w0, w1, k0, k1, peer0[BENCH_PEERS_MAX], peer1[BENCH_PEERS_MAX];
    cJSON *calls_w0, *calls_w1, *calls_r0, *calls_r1;
    int64_t t0_us, t0_wall, deadline_us, next_sample_us, now;
    char date[RP_TIME_RFC3339_MAX], *text, eid[RP_ID_MAX + 1],
        sid[RP_ID_MAX + 1], load0[128], load1[128];
    long hwm, rss, rss0;
    bench_lag_t lag0, lag1;
    bool ok, cpu_taken = false;
    int i = 0;

    memset(&b, 0, sizeof(b));
    parse_args(&b, argc, argv);
    if ((long)b.o.sessions * b.o.per_session > BENCH_EXECUTIONS_MAX)
        die("at most %d executions per run", BENCH_EXECUTIONS_MAX);
    b.total = b.o.sessions * b.o.per_session;
    if (!(b.ex = calloc((size_t)b.total, sizeof(*b.ex))))
        die("out of memory");
    /* Ids unique per run, so a reused broker or group cannot mix runs. */
    snprintf(b.tag, sizeof(b.tag), "bench-%s-%ld-%" PRIx64, b.o.name,
             (long)getpid(), (uint64_t)rp_time_wall_ms());

    kafka_setup(&b);
    warm_up(&b);

    /* Warm-up results are published after their executors were reaped. */
    if (b.o.sample_ms > 0 && b.o.worker_pid > 0)
        b.idle_fds = count_fds(b.o.worker_pid);
    loadavg(load0, sizeof(load0));
    calls_w0 = worker_calls(b.o.worker_metrics);
    calls_r0 = cloudrun_calls(b.o.cloudrun_stats);
    rss0 = status_kib(b.o.worker_pid, "VmRSS");
    lag0 = scrape_lag(b.o.metrics_url);
    w0 = proc_cpu(b.o.worker_pid);
    b.fork_server = fork_server_pid(b.o.worker_pid);
    b.fs0 = proc_cpu(b.fork_server);
    k0 = proc_cpu(b.o.broker_pid);
    for (size_t p = 0; p < b.o.n_peers; p++)
        peer0[p] = proc_cpu(b.o.peer_pid[p]);
    t0_us = rp_time_mono_us();
    t0_wall = rp_time_wall_ms();
    for (int r = 0; r < b.o.per_session; r++) {
        for (int s = 0; s < b.o.sessions; s++, i++) {
            snprintf(eid, sizeof(eid), "%s-e%d", b.tag, i);
            snprintf(sid, sizeof(sid), "%s-s%d", b.tag, s);
            b.ex[i].req_ts = send_request(&b, eid, sid, b.o.command);
        }
    }
    fprintf(stderr, "runpool-bench: %s: %d requests produced in %.3f s\n",
            b.o.name, b.total, (double)(rp_time_mono_us() - t0_us) / 1e6);

    deadline_us = t0_us + (int64_t)b.o.deadline_s * 1000000;
    next_sample_us = rp_time_mono_us();
    for (;;) {
        int wait_ms = 50;

        now = rp_time_mono_us();
        if (b.o.sample_ms > 0 && b.o.worker_pid > 0 && now >= next_sample_us) {
            sample(&b);
            next_sample_us += (int64_t)b.o.sample_ms * 1000;
            if (next_sample_us < now)
                next_sample_us = now + (int64_t)b.o.sample_ms * 1000;
        }
        /* CPU up to the last result: the linger below is idle time. */
        if (b.received == b.total && !cpu_taken) {
            w1 = proc_cpu(b.o.worker_pid);
            b.fs1 = proc_cpu(b.fork_server);
            k1 = proc_cpu(b.o.broker_pid);
            for (size_t p = 0; p < b.o.n_peers; p++)
                peer1[p] = proc_cpu(b.o.peer_pid[p]);
            cpu_taken = true;
        }
        if (b.received == b.total &&
            now >= b.last_recv_us + (int64_t)BENCH_LINGER_MS * 1000)
            break;
        if (now >= deadline_us) {
            problem(&b, "gave up after %d s with %d of %d results",
                    b.o.deadline_s, b.received, b.total);
            break;
        }
        if (b.o.sample_ms > 0 && (next_sample_us - now) / 1000 < wait_ms)
            wait_ms = (int)((next_sample_us - now) / 1000);
        consume(&b, wait_ms < 0 ? 0 : wait_ms);
    }
    /* Children excluded: VmHWM is this process's own peak. */
    hwm = status_kib(b.o.worker_pid, "VmHWM");
    rss = status_kib(b.o.worker_pid, "VmRSS");
    if (!cpu_taken) { /* gave up: CPU up to now */
        w1 = proc_cpu(b.o.worker_pid);
        b.fs1 = proc_cpu(b.fork_server);
        k1 = proc_cpu(b.o.broker_pid);
        for (size_t p = 0; p < b.o.n_peers; p++)
            peer1[p] = proc_cpu(b.o.peer_pid[p]);
    }
    calls_w1 = worker_calls(b.o.worker_metrics);
    calls_r1 = cloudrun_calls(b.o.cloudrun_stats);
    lag1 = scrape_lag(b.o.metrics_url);
    loadavg(load1, sizeof(load1));

    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "scenario", b.o.name);
    if (b.o.description)
        cJSON_AddStringToObject(root, "description", b.o.description);
    run = cJSON_AddObjectToObject(root, "run");
    rp_time_rfc3339(t0_wall, date, sizeof(date));
    cJSON_AddStringToObject(run, "date", date);
    for (size_t k = 0; k < b.o.n_meta; k++) {
        const char *eq = strchr(b.o.meta[k], '=');
        char key[128];

        snprintf(key, sizeof(key), "%.*s", (int)(eq - b.o.meta[k]),
                 b.o.meta[k]);
        cJSON_AddStringToObject(run, key, eq + 1);
    }
    cmdline_json(run, "worker_cmdline", b.o.worker_pid);
    cmdline_json(run, "broker_cmdline", b.o.broker_pid);
    for (size_t p = 0; p < b.o.n_peers; p++) {
        char key[64];

        snprintf(key, sizeof(key), "%s_cmdline", b.o.peer_name[p]);
        cmdline_json(run, key, b.o.peer_pid[p]);
    }
    {
        char line[4096];
        size_t off = 0;

        line[0] = '\0';
        for (int k = 0; k < argc && off < sizeof(line); k++) {
            int w = snprintf(line + off, sizeof(line) - off, "%s%s",
                             k ? " " : "", argv[k]);

            if (w < 0)
                break;
            off += (size_t)w;
        }
        cJSON_AddStringToObject(run, "bench_cmdline", line);
    }
    cJSON_AddStringToObject(run, "id_prefix", b.tag);
    machine_json(root, load0, load1);
    wl = cJSON_AddObjectToObject(root, "workload");
    cJSON_AddNumberToObject(wl, "sessions", b.o.sessions);
    cJSON_AddNumberToObject(wl, "per_session", b.o.per_session);
    cJSON_AddNumberToObject(wl, "executions", b.total);
    cJSON_AddStringToObject(wl, "command", b.o.command);
    cJSON_AddNumberToObject(wl, "warmup_executions", b.o.warmup);

    ok = report(&b, root, t0_us, t0_wall, w0, w1, k0, k1, hwm, rss, rss0,
                &lag0, &lag1);
    cJSON_AddBoolToObject(wl, "primed", b.o.prime);
    calls_json(cJSON_GetObjectItemCaseSensitive(root, "figures"), b.total,
               calls_w0, calls_w1, calls_r0, calls_r1);
    cJSON_Delete(calls_w0);
    cJSON_Delete(calls_w1);
    cJSON_Delete(calls_r0);
    cJSON_Delete(calls_r1);
    if (b.o.n_peers) {
        cJSON *fig = cJSON_GetObjectItemCaseSensitive(root, "figures");
        cJSON *peers = cJSON_AddObjectToObject(fig, "peers_cpu");

        for (size_t p = 0; p < b.o.n_peers; p++)
            cJSON_AddItemToObject(peers, b.o.peer_name[p],
                                  cpu_json(peer0[p], peer1[p]));
    }
    if (!(text = cJSON_Print(root)))
        die("out of memory");
    write_file(b.o.out_path, text);
    summary(&b, root);
    if (!ok)
        fprintf(stderr, "runpool-bench: %s FAILED: executions lost, "
                "duplicated or not succeeded (see %s)\n", b.o.name,
                b.o.out_path);

    free(text);
    cJSON_Delete(root);
    rd_kafka_flush(b.producer, BENCH_FLUSH_MS);
    rd_kafka_consumer_close(b.reader);
    rd_kafka_destroy(b.reader);
    rd_kafka_destroy(b.producer);
    for (int k = 0; k < b.n_problems; k++)
        free(b.problems[k]);
    free(b.ex);
    return ok ? 0 : 1;
}
