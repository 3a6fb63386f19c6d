/* integration.kafka.chaos — the fault suite: exactly one result per
 * request and no command started twice, while workers are SIGKILLed and
 * drained and the broker restarts (issue 8, section 4).
 *
 * On Apache Kafka only (a broker restart needs a broker that keeps its
 * data). 3 workers on the local backend with file:// state. SESSIONS
 * sessions of PER_SESSION requests; request k of session S runs
 *   echo start EID >> SIDE/EID; echo start EID >> SIDE/S.seq; sleep D;
 *   RP_CHAOS_N=$((${RP_CHAOS_N:-0}+1)); export RP_CHAOS_N;
 *   echo done EID $RP_CHAOS_N >> SIDE/S.seq; echo done EID >> SIDE/EID;
 *   echo $RP_CHAOS_N
 * with D in 0.2..2 s (fixed per request). The side effects are outside the
 * state store and appended with O_APPEND (">>"), so they count what really
 * ran: SIDE/EID how often the command started and finished, SIDE/S.seq the
 * order within the session, and stdout / the "done" line the env variable
 * the session carried over (request k must see k).
 *
 * Requests go out in FAULTS+1 equal chunks (round-major: request r of every
 * session, then r+1), one before each fault and the last after them; a
 * chunk goes out once GAP_MS have passed since the previous fault, so there
 * is work when the next fault comes. The faults, in order: SIGKILLs
 * (each replaced by a fresh worker at once), one SIGTERM drain after a
 * third of them, one broker restart (SIGTERM, same port and data) after
 * two thirds. Each fault waits for a condition, not for luck: at least
 * GAP_MS since the previous one, then a live worker with a command running
 * (its executor children carry EXECUTION_ID); the victim is the worker
 * running the most. So every kill and the drain land mid-command.
 *
 * Then: every request must get a result, and the pipeline must be quiet
 * (the group's committed offsets at the end of runpool.requests, no
 * executor left, no new result for QUIET_MS) before anything is counted.
 * Results are read by the rig's collector with isolation.level=
 * read_committed. The test prints the counts, then asserts: 0 lost, 0
 * duplicate results, 0 commands started twice (nor finished twice), every
 * result succeeded with the carried-over value, per-session order kept
 * (results' first appearance, and each command started only after the
 * previous one of its session finished), the drained worker exited 0.
 *
 * Size knobs, for bench/run chaos (defaults are the CTest size):
 * RP_CHAOS_SESSIONS, RP_CHAOS_PER_SESSION, RP_CHAOS_KILLS, RP_CHAOS_GAP_MS,
 * RP_CHAOS_DRAIN and RP_CHAOS_RESTART (0: leave that fault out; with
 * RP_CHAOS_KILLS=0 too, a control run without faults, which must pass),
 * RP_CHAOS_WAIT_S (bound on the wait for every result), RP_CHAOS_WORKER_ARGS
 * (extra worker arguments, space-separated, e.g. "--delivery
 * at-least-once"), RP_CHAOS_FIGURES (write the counts as JSON there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rp_testenv.h"

#define MAX_SESSIONS 1000
#define MAX_PER_SESSION 100
#define MAX_KILLS 50 /* RP_TE_PROCS_MAX: 3 + kills + drain + 2 brokers */
#define MAX_WORKER_ARGS 16
#define RUNNING_WAIT_MS 90000 /* a fault waits this long for a command */
#define QUIET_MS 3000
#define SETTLE_MS 60000
#define DRAIN_WAIT_MS ((RP_TE_DRAIN_TIMEOUT_S + 40) * 1000)
#define BROKER_WAIT_MS 90000
#define N_WORKERS 3
#define SEQ_MAX (1024 * 1024) /* one session's sequence file */

typedef enum fault { F_KILL, F_DRAIN, F_RESTART } fault_t;

typedef struct counts {
    int results;   /* messages on runpool.results with this id */
    int succeeded; /* of them with status succeeded and stdout "k\n" */
    int starts;    /* "start" lines in SIDE/EID */
    int dones;     /* "done" lines */
} counts_t;

typedef struct chaos {
    int sessions, per_session, kills, gap_ms, wait_s;
    const char *figures;
    char worker_args_buf[1024];
    const char *worker_args[MAX_WORKER_ARGS + 1];
    char side[PATH_MAX];
    int live[N_WORKERS];  /* te->procs indices of the live workers */
    counts_t *c;          /* [sessions * per_session], session-major */
    size_t scanned;       /* results of the collector looked at */
    int n_faults;
    fault_t faults[MAX_KILLS + 2];
    int64_t fault_at_ms[MAX_KILLS + 2]; /* from the first produce */
    int fault_running[MAX_KILLS + 2];   /* the victim's running commands */
    int64_t t0, all_results_ms, broker_down_ms;
    int drain_status;
    bool settled;
    char settle_note[256];
} chaos_t;

/* Static, so a failed assertion (a longjmp) leaks nothing. */
static counts_t counts[MAX_SESSIONS * MAX_PER_SESSION];

static int env_int(const char *name, int dflt, int lo, int hi)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v)
        return dflt;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        fail_msg("%s=%s: want %d..%d", name, v, lo, hi);
    return (int)n;
}

static void sid_of(int s, char *out, size_t size)
{
    rp_te_format(out, size, "chaos-%03d", s);
}

static void eid_of(int s, int k, char *out, size_t size)
{
    rp_te_format(out, size, "chaos-%03d-%02d", s, k);
}

/* "chaos-SSS-KK" -> index into c, or -1. */
static int eid_index(const chaos_t *ch, const char *eid)
{
    int s, k, len = 0;

    if (!eid || sscanf(eid, "chaos-%d-%d%n", &s, &k, &len) != 2 ||
        eid[len] || s < 0 || s >= ch->sessions || k < 1 ||
        k > ch->per_session)
        return -1;
    return s * ch->per_session + (k - 1);
}

/* A fixed duration in 0.2..2.0 s for each request (no clock, no rand). */
static int duration_ds(int s, int k)
{
    unsigned h = (unsigned)s * 2654435761u ^ (unsigned)k * 40503u;

    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return 2 + (int)(h % 19); /* tenths of a second */
}

static void send_request(rp_te_t *te, chaos_t *ch, int s, int k)
{
    char sid[32], eid[32], cmd[2048 + 4 * PATH_MAX], f[PATH_MAX + 40],
        seq[PATH_MAX + 40];
    int d = duration_ds(s, k);

    sid_of(s, sid, sizeof(sid));
    eid_of(s, k, eid, sizeof(eid));
    rp_te_format(f, sizeof(f), "%s/%s", ch->side, eid);
    rp_te_format(seq, sizeof(seq), "%s/%s.seq", ch->side, sid);
    rp_te_format(cmd, sizeof(cmd),
                 "echo start %s >> '%s'; echo start %s >> '%s'; "
                 "sleep %d.%d; "
                 "RP_CHAOS_N=$((${RP_CHAOS_N:-0}+1)); export RP_CHAOS_N; "
                 "echo done %s $RP_CHAOS_N >> '%s'; echo done %s >> '%s'; "
                 "echo $RP_CHAOS_N",
                 eid, f, eid, seq, d / 10, d % 10, eid, seq, eid, f);
    rp_te_send_exec(te, sid, eid, cmd, 0, NULL);
}

/* Chunk i of FAULTS+1 (round-major order). */
static void send_chunk(rp_te_t *te, chaos_t *ch, int i)
{
    long total = (long)ch->sessions * ch->per_session;
    long from = total * i / (ch->n_faults + 1);
    long to = total * (i + 1) / (ch->n_faults + 1);

    for (long r = from; r < to; r++)
        send_request(te, ch, (int)(r % ch->sessions),
                     (int)(r / ch->sessions) + 1);
    rp_te_flush(te);
}

/* Fold the results the collector got since the last call into ch->c. */
static void scan_results(rp_te_t *te, chaos_t *ch)
{
    size_t n = rp_te_result_count(te);

    for (; ch->scanned < n; ch->scanned++) {
        const rp_te_msg_t *m = rp_te_result_at(te, ch->scanned);
        int i = eid_index(ch, rp_te_str(m, "execution_id"));
        const char *status = rp_te_str(m, "status");
        const char *out = rp_te_str(m, "stdout");
        char want[16];

        if (i < 0)
            fail_msg("a result for an execution this test never sent: %s",
                     rp_te_describe(m));
        ch->c[i].results++;
        snprintf(want, sizeof(want), "%d\n", i % ch->per_session + 1);
        if (status && !strcmp(status, "succeeded") && out &&
            !strcmp(out, want))
            ch->c[i].succeeded++;
    }
}

static int missing_results(const chaos_t *ch)
{
    int n = 0;

    for (int i = 0; i < ch->sessions * ch->per_session; i++)
        n += ch->c[i].results == 0;
    return n;
}

/* The live worker running the most commands; -1 if none runs one.
 * *running = how many it runs. */
static int busiest(rp_te_t *te, const int *live, int *running)
{
    char eids[64][RP_TE_ID_MAX + 1];
    int best = -1;
    size_t most = 0;

    for (int w = 0; w < N_WORKERS; w++) {
        size_t n = rp_te_worker_executions(te, live[w], eids, 64);

        if (n > most) {
            most = n;
            best = w;
        }
    }
    *running = (int)most;
    return best;
}

/* Whether a command of a request still without a result started in the
 * last RECENT_MS and has not finished, by its side file: the fallback of
 * wait_for_victim for executors that are not children of their worker. */
#define RECENT_MS 1500
static bool side_running(chaos_t *ch)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < ch->sessions * ch->per_session; i++) {
        char eid[32], path[PATH_MAX + 40], *text, *p;
        struct stat st;
        int starts = 0, dones = 0;
        int64_t age_ms;

        if (ch->c[i].results)
            continue;
        eid_of(i / ch->per_session, i % ch->per_session + 1, eid,
               sizeof(eid));
        rp_te_format(path, sizeof(path), "%s/%s", ch->side, eid);
        if (stat(path, &st) != 0)
            continue;
        age_ms = (int64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                 (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
        if (age_ms > RECENT_MS || !(text = rp_te_read_file(path, NULL)))
            continue;
        for (p = text; (p = strstr(p, "start ")); p++)
            starts++;
        for (p = text; (p = strstr(p, "done ")); p++)
            dones++;
        free(text);
        if (starts > dones)
            return true;
    }
    return false;
}

/* The faults' condition (after GAP_MS since the previous fault and the
 * next chunk of requests): a command running in some live worker. Returns the slot of the busiest worker
 * (by its executor children), or, when the executors are not its children
 * but a side file shows a command running, of the worker holding the most
 * partitions (*running = -1 then). */
static int wait_for_victim(rp_te_t *te, chaos_t *ch, int *running)
{
    int64_t deadline = rp_te_now_ms() + RUNNING_WAIT_MS, next_side = 0;
    int w;

    for (;;) {
        scan_results(te, ch);
        if ((w = busiest(te, ch->live, running)) >= 0)
            return w;
        if (rp_te_now_ms() >= next_side) {
            next_side = rp_te_now_ms() + 200;
            if (side_running(ch)) {
                int most = -1;

                for (int i = 0; i < N_WORKERS; i++) {
                    int held = rp_te_alive(te, ch->live[i])
                                   ? rp_te_worker_partitions(te, ch->live[i],
                                                             NULL)
                                   : -1;

                    if (held > most) {
                        most = held;
                        w = i;
                    }
                }
                if (most > 0) {
                    *running = -1;
                    return w;
                }
            }
        }
        if (rp_te_now_ms() >= deadline)
            fail_msg("rig: no command ran in any live worker for %d ms "
                     "(%d requests still without a result)",
                     RUNNING_WAIT_MS, missing_results(ch));
        rp_te_sleep_ms(20);
    }
}

/* A client of the workers' group that never joins it: reads the group's
 * committed offsets and the requests topic's end. */
static rd_kafka_t *group_reader(rp_te_t *te)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", te->brokers, err,
                          sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", te->group, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                          sizeof(err)) != RD_KAFKA_CONF_OK)
        fail_msg("group reader: %s", err);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))))
        fail_msg("group reader: %s", err);
    return rk;
}

/* Requests not yet committed by the group (sum over partitions of end -
 * committed); -1 when the broker did not answer. */
static long long group_lag(rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(RP_TE_PARTITIONS);
    long long lag = 0;

    for (int p = 0; p < RP_TE_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, RP_TOPIC_REQUESTS, p);
    if (rd_kafka_committed(rk, parts, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = -1;
        goto out;
    }
    for (int p = 0; p < RP_TE_PARTITIONS; p++) {
        int64_t lo, hi, committed = parts->elems[p].offset;

        if (parts->elems[p].err ||
            rd_kafka_query_watermark_offsets(rk, RP_TOPIC_REQUESTS, p, &lo,
                                             &hi, 5000)) {
            lag = -1;
            goto out;
        }
        lag += hi - (committed < 0 ? lo : committed);
    }
out:
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

/* Wait until the pipeline is quiet, so late duplicates are counted too:
 * the group committed everything, no executor runs (under a live worker or
 * orphaned), and no result came for QUIET_MS. Bounded: ch->settled says
 * whether it got there. */
static void settle(rp_te_t *te, chaos_t *ch)
{
    rd_kafka_t *rk = group_reader(te);
    int64_t deadline = rp_te_now_ms() + SETTLE_MS, last_change = rp_te_now_ms();
    size_t seen = rp_te_result_count(te);
    long long lag = -1;
    int running = 0;

    for (;;) {
        size_t n = rp_te_result_count(te);

        if (n != seen) {
            seen = n;
            last_change = rp_te_now_ms();
        }
        lag = group_lag(rk);
        busiest(te, ch->live, &running);
        if (lag == 0 && running == 0 && rp_te_wait_orphans(te, 0) &&
            rp_te_now_ms() - last_change >= QUIET_MS) {
            ch->settled = true;
            break;
        }
        if (rp_te_now_ms() >= deadline)
            break;
        rp_te_sleep_ms(200);
    }
    snprintf(ch->settle_note, sizeof(ch->settle_note),
             "group lag %lld, commands running %d, orphans %s, %lld ms "
             "since the last result",
             lag, running, rp_te_wait_orphans(te, 0) ? "none" : "some",
             (long long)(rp_te_now_ms() - last_change));
    rd_kafka_destroy(rk);
    scan_results(te, ch);
}

/* Count "start"/"done" lines of SIDE/EID. */
static void count_side(chaos_t *ch, int i)
{
    char eid[32], path[PATH_MAX + 40], *text, *line, *save;
    int s = i / ch->per_session, k = i % ch->per_session + 1;

    eid_of(s, k, eid, sizeof(eid));
    rp_te_format(path, sizeof(path), "%s/%s", ch->side, eid);
    if (!(text = rp_te_read_file(path, NULL)))
        return;
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "start ", 6))
            ch->c[i].starts++;
        else if (!strncmp(line, "done ", 5))
            ch->c[i].dones++;
    }
    free(text);
}

/* Per session: results first appear in request order, and the sequence
 * file shows each command starting only after the previous one of the
 * session finished, with the carried-over value. Returns a description of
 * the first violation (static buffer) or NULL. */
static const char *session_order(rp_te_t *te, chaos_t *ch, int s,
                                 bool *env_broken)
{
    static char why[256];
    char sid[32], path[PATH_MAX + 40], *text, *line, *save;
    int next = 1, done_upto = 0; /* highest k whose first "done" was seen */
    bool bad = false;
    size_t len;

    *env_broken = false;
    sid_of(s, sid, sizeof(sid));
    for (size_t j = 0; j < rp_te_result_count(te); j++) {
        const rp_te_msg_t *m = rp_te_result_at(te, j);
        int i = eid_index(ch, rp_te_str(m, "execution_id"));

        if (i < 0 || i / ch->per_session != s)
            continue;
        if (i % ch->per_session + 1 > next) {
            snprintf(why, sizeof(why), "%s: result of request %d came before "
                     "request %d's", sid, i % ch->per_session + 1, next);
            return why;
        }
        if (i % ch->per_session + 1 == next)
            next++;
    }
    rp_te_format(path, sizeof(path), "%s/%s.seq", ch->side, sid);
    if (!(text = rp_te_read_file(path, &len)))
        return NULL; /* nothing ran: reported as lost */
    if (len > SEQ_MAX)
        fail_msg("%s is larger than %d bytes", path, SEQ_MAX);
    for (line = strtok_r(text, "\n", &save); line && !bad;
         line = strtok_r(NULL, "\n", &save)) {
        int ss, k, n, got;
        char what[8];

        got = sscanf(line, "%7s chaos-%d-%d %d", what, &ss, &k, &n);
        if (got < 3 || ss != s) {
            snprintf(why, sizeof(why), "%s: bad line '%.100s'", sid, line);
            bad = true;
        } else if (!strcmp(what, "start") && k > done_upto + 1) {
            snprintf(why, sizeof(why), "%s: request %d started before "
                     "request %d finished", sid, k, done_upto + 1);
            bad = true;
        } else if (!strcmp(what, "done") && k == done_upto + 1) {
            done_upto = k;
            if (got != 4 || n != k)
                *env_broken = true;
        }
    }
    free(text);
    return bad ? why : NULL;
}

static void parse_worker_args(chaos_t *ch)
{
    const char *v = getenv("RP_CHAOS_WORKER_ARGS");
    int n = 0;
    char *save, *w;

    if (!v || !*v)
        return;
    rp_te_format(ch->worker_args_buf, sizeof(ch->worker_args_buf), "%s", v);
    for (w = strtok_r(ch->worker_args_buf, " ", &save); w;
         w = strtok_r(NULL, " ", &save)) {
        if (n >= MAX_WORKER_ARGS)
            fail_msg("RP_CHAOS_WORKER_ARGS: more than %d words",
                     MAX_WORKER_ARGS);
        ch->worker_args[n++] = w;
    }
    ch->worker_args[n] = NULL;
}

static int start_worker(rp_te_t *te, chaos_t *ch)
{
    return rp_te_start_worker_args(te, ch->worker_args);
}

static const char *fault_name(fault_t f)
{
    return f == F_KILL ? "sigkill" : f == F_DRAIN ? "sigterm" : "broker";
}

/* The counts, as the test prints them and bench/run chaos stores them. */
typedef struct tally {
    int requests, results, lost, dup_results, started_twice, finished_twice,
        never_started, not_succeeded, env_broken, order_broken;
    int by_results[7]; /* executions with 0..5, and 6+, results */
    const char *first_order; /* first order violation, or NULL */
    char first_order_buf[256];
} tally_t;

static void tally(rp_te_t *te, chaos_t *ch, tally_t *t)
{
    memset(t, 0, sizeof(*t));
    t->requests = ch->sessions * ch->per_session;
    for (int i = 0; i < t->requests; i++) {
        counts_t *c = &ch->c[i];

        count_side(ch, i);
        t->results += c->results;
        t->by_results[c->results < 6 ? c->results : 6]++;
        t->lost += c->results == 0;
        t->dup_results += c->results > 1;
        t->started_twice += c->starts > 1;
        t->finished_twice += c->dones > 1;
        t->never_started += c->starts == 0;
        t->not_succeeded += c->results > 0 && c->succeeded != c->results;
    }
    for (int s = 0; s < ch->sessions; s++) {
        bool env_broken;
        const char *why = session_order(te, ch, s, &env_broken);

        t->env_broken += env_broken;
        if (why) {
            t->order_broken++;
            if (!t->first_order) {
                snprintf(t->first_order_buf, sizeof(t->first_order_buf),
                         "%s", why);
                t->first_order = t->first_order_buf;
            }
        }
    }
}

static void write_figures(chaos_t *ch, const tally_t *t, int64_t wall_ms,
                          const char *problems)
{
    cJSON *o = cJSON_CreateObject(), *w, *f, *c, *by, *fl;
    char *text;
    FILE *fp;

    if (!ch->figures || !o)
        goto out;
    cJSON_AddStringToObject(o, "result", *problems ? "FAILED" : "ok");
    cJSON_AddStringToObject(o, "problems", problems);
    w = cJSON_AddObjectToObject(o, "workload");
    cJSON_AddNumberToObject(w, "workers", N_WORKERS);
    cJSON_AddNumberToObject(w, "sessions", ch->sessions);
    cJSON_AddNumberToObject(w, "per_session", ch->per_session);
    cJSON_AddNumberToObject(w, "requests", t->requests);
    cJSON_AddStringToObject(w, "command", "start/done lines to side files, "
                            "sleep 0.2-2.0 s, env counter carried over");
    cJSON_AddNumberToObject(w, "sigkills", ch->kills);
    cJSON_AddNumberToObject(w, "min_gap_ms", ch->gap_ms);
    cJSON_AddStringToObject(w, "worker_args",
                            getenv("RP_CHAOS_WORKER_ARGS")
                                ? getenv("RP_CHAOS_WORKER_ARGS")
                                : "");
    fl = cJSON_AddArrayToObject(o, "faults");
    for (int i = 0; i < ch->n_faults; i++) {
        cJSON *e = cJSON_CreateObject();

        cJSON_AddStringToObject(e, "fault", fault_name(ch->faults[i]));
        cJSON_AddNumberToObject(e, "at_s", ch->fault_at_ms[i] / 1000.0);
        cJSON_AddNumberToObject(e, "victim_running", ch->fault_running[i]);
        cJSON_AddItemToArray(fl, e);
    }
    f = cJSON_AddObjectToObject(o, "figures");
    cJSON_AddNumberToObject(f, "wall_time_s", wall_ms / 1000.0);
    cJSON_AddNumberToObject(f, "all_results_s", ch->all_results_ms / 1000.0);
    cJSON_AddNumberToObject(f, "broker_down_s", ch->broker_down_ms / 1000.0);
    cJSON_AddNumberToObject(f, "drained_worker_exit_status",
                            ch->drain_status);
    cJSON_AddBoolToObject(f, "settled", ch->settled);
    cJSON_AddStringToObject(f, "settle", ch->settle_note);
    c = cJSON_AddObjectToObject(o, "counts");
    cJSON_AddNumberToObject(c, "requests", t->requests);
    cJSON_AddNumberToObject(c, "results", t->results);
    cJSON_AddNumberToObject(c, "lost", t->lost);
    cJSON_AddNumberToObject(c, "executions_with_duplicate_results",
                            t->dup_results);
    cJSON_AddNumberToObject(c, "duplicate_results_pct",
                            100.0 * t->dup_results / t->requests);
    cJSON_AddNumberToObject(c, "commands_started_twice", t->started_twice);
    cJSON_AddNumberToObject(c, "commands_started_twice_pct",
                            100.0 * t->started_twice / t->requests);
    cJSON_AddNumberToObject(c, "commands_finished_twice", t->finished_twice);
    cJSON_AddNumberToObject(c, "commands_never_started", t->never_started);
    cJSON_AddNumberToObject(c, "results_not_succeeded", t->not_succeeded);
    cJSON_AddNumberToObject(c, "sessions_env_broken", t->env_broken);
    cJSON_AddNumberToObject(c, "sessions_order_broken", t->order_broken);
    by = cJSON_AddObjectToObject(c, "executions_by_result_count");
    for (int i = 0; i < 7; i++) {
        char k[8];

        snprintf(k, sizeof(k), i < 6 ? "%d" : "%d+", i);
        cJSON_AddNumberToObject(by, k, t->by_results[i]);
    }
    if ((text = cJSON_Print(o)) && (fp = fopen(ch->figures, "w"))) {
        fprintf(fp, "%s\n", text);
        fclose(fp);
        print_message("[chaos] figures written to %s\n", ch->figures);
    } else {
        print_message("[chaos] cannot write %s\n", ch->figures);
    }
    free(text);
out:
    cJSON_Delete(o);
}

static void test_chaos(void **state)
{
    rp_te_t *te = *state;
    chaos_t ch_store = {0}, *ch = &ch_store;
    char problems[2048] = "";
    size_t plen = 0;
    int64_t last_fault;
    int drained = -1, drain, restart;
    tally_t t;

    ch->sessions = env_int("RP_CHAOS_SESSIONS", 24, 1, MAX_SESSIONS);
    ch->per_session = env_int("RP_CHAOS_PER_SESSION", 12, 1, MAX_PER_SESSION);
    ch->kills = env_int("RP_CHAOS_KILLS", 8, 0, MAX_KILLS);
    drain = env_int("RP_CHAOS_DRAIN", 1, 0, 1);
    restart = env_int("RP_CHAOS_RESTART", 1, 0, 1);
    ch->gap_ms = env_int("RP_CHAOS_GAP_MS", 3000, 0, 600000);
    ch->wait_s = env_int("RP_CHAOS_WAIT_S", 240, 10, 3600);
    ch->figures = getenv("RP_CHAOS_FIGURES");
    ch->drain_status = -1;
    parse_worker_args(ch);
    ch->c = counts;
    rp_te_path(te, ch->side, sizeof(ch->side), "side");
    assert_int_equal(mkdir(ch->side, 0755), 0);

    /* kills, a drain after a third of them, the broker after two thirds */
    for (int k = 0; k <= ch->kills; k++) {
        if (drain && k == ch->kills / 3)
            ch->faults[ch->n_faults++] = F_DRAIN;
        if (restart && k == (2 * ch->kills) / 3)
            ch->faults[ch->n_faults++] = F_RESTART;
        if (k < ch->kills)
            ch->faults[ch->n_faults++] = F_KILL;
    }
    print_message("[chaos] %d sessions x %d requests, %d faults, >= %d ms "
                  "apart; worker args '%s'\n", ch->sessions, ch->per_session,
                  ch->n_faults, ch->gap_ms,
                  getenv("RP_CHAOS_WORKER_ARGS") ? getenv("RP_CHAOS_WORKER_ARGS")
                                                 : "");

    for (int w = 0; w < N_WORKERS; w++)
        ch->live[w] = start_worker(te, ch);
    rp_te_wait_group(te, ch->live, N_WORKERS, 60000);

    ch->t0 = rp_te_now_ms();
    last_fault = ch->t0;
    for (int i = 0; i < ch->n_faults; i++) {
        int running, w;

        /* The chunk goes out once the gap has passed, so it is not all
         * done by the time the fault may come. */
        while (rp_te_now_ms() < last_fault + ch->gap_ms)
            rp_te_sleep_ms(20);
        send_chunk(te, ch, i);
        w = wait_for_victim(te, ch, &running);
        ch->fault_at_ms[i] = rp_te_now_ms() - ch->t0;
        ch->fault_running[i] = running;
        print_message("[chaos] %5.1f s: %s %s (running %d), %d without a "
                      "result\n", ch->fault_at_ms[i] / 1000.0,
                      fault_name(ch->faults[i]),
                      ch->faults[i] == F_RESTART ? "restart"
                                                 : te->procs[ch->live[w]].name,
                      running, missing_results(ch));
        switch (ch->faults[i]) {
        case F_KILL:
            rp_te_signal(te, ch->live[w], SIGKILL);
            ch->live[w] = start_worker(te, ch);
            break;
        case F_DRAIN:
            drained = ch->live[w];
            rp_te_signal(te, drained, SIGTERM);
            ch->live[w] = start_worker(te, ch);
            if (!rp_te_wait_exit(te, drained, DRAIN_WAIT_MS))
                fail_msg("the drained worker did not exit in %d ms",
                         DRAIN_WAIT_MS);
            ch->drain_status = te->procs[drained].status;
            break;
        case F_RESTART:
            rp_te_restart_broker(te, BROKER_WAIT_MS, &ch->broker_down_ms);
            break;
        }
        last_fault = rp_te_now_ms();
    }
    send_chunk(te, ch, ch->n_faults);

    /* Every request answered, bounded. */
    for (int64_t deadline = rp_te_now_ms() + (int64_t)ch->wait_s * 1000;;) {
        rp_te_check_procs(te);
        scan_results(te, ch);
        if (missing_results(ch) == 0 || rp_te_now_ms() >= deadline)
            break;
        rp_te_sleep_ms(100);
    }
    ch->all_results_ms = rp_te_now_ms() - ch->t0;
    settle(te, ch);

    tally(te, ch, &t);
    print_message(
        "[chaos] counts: %d requests, %d results (read_committed); lost %d; "
        "executions with 2+ results %d (%.1f %%); commands started twice %d "
        "(%.1f %%), finished twice %d, never started %d; results not "
        "succeeded/right %d; sessions with env broken %d, order broken %d; "
        "executions by result count 0:%d 1:%d 2:%d 3:%d 4:%d 5:%d 6+:%d; "
        "drained worker status %d; broker down %.1f s; all results after "
        "%.1f s; settled %s (%s)\n",
        t.requests, t.results, t.lost, t.dup_results,
        100.0 * t.dup_results / t.requests, t.started_twice,
        100.0 * t.started_twice / t.requests, t.finished_twice,
        t.never_started, t.not_succeeded, t.env_broken, t.order_broken,
        t.by_results[0], t.by_results[1], t.by_results[2], t.by_results[3],
        t.by_results[4], t.by_results[5], t.by_results[6], ch->drain_status,
        ch->broker_down_ms / 1000.0, ch->all_results_ms / 1000.0,
        ch->settled ? "yes" : "no", ch->settle_note);
#define PROBLEM(cond, ...)                                                    \
    do {                                                                      \
        if ((cond) && plen < sizeof(problems))                                \
            plen += (size_t)snprintf(problems + plen,                         \
                                     sizeof(problems) - plen, __VA_ARGS__);   \
    } while (0)
    PROBLEM(t.lost, "%d lost (no result); ", t.lost);
    PROBLEM(t.dup_results, "%d executions with duplicate results; ",
            t.dup_results);
    PROBLEM(t.started_twice, "%d commands started twice; ", t.started_twice);
    PROBLEM(t.finished_twice, "%d commands finished twice; ",
            t.finished_twice);
    PROBLEM(t.not_succeeded, "%d results not succeeded with the carried-over "
            "value; ", t.not_succeeded);
    PROBLEM(t.env_broken, "%d sessions lost their env; ", t.env_broken);
    PROBLEM(t.order_broken, "%d sessions out of order (first: %s); ",
            t.order_broken, t.first_order ? t.first_order : "?");
    PROBLEM(drained >= 0 && (!WIFEXITED(ch->drain_status) ||
                             WEXITSTATUS(ch->drain_status)),
            "the drained worker ended with wait status %d; ",
            ch->drain_status);
    PROBLEM(!ch->settled, "never quiet: %s; ", ch->settle_note);
#undef PROBLEM
    write_figures(ch, &t, rp_te_now_ms() - ch->t0, problems);
    if (plen)
        fail_msg("fault suite: %s", problems);
    for (int w = 0; w < N_WORKERS; w++)
        assert_true(rp_te_alive(te, ch->live[w]));
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chaos, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
