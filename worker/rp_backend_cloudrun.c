/* The cloudrun backend: each execution is a Cloud Run Jobs execution of
 * the runpool-executor image, driven over the Admin API v2 REST
 * (docs/cloudrun.md; API pieces in rp_cloudrun.c).
 *
 * No thread per execution, and the worker's main thread never waits:
 * start/cancel/detach only change a run's flags and its place in a timer
 * queue (rp_timerq, on "next step due at"); a fixed pool of threads takes
 * due runs and performs one step each (an API call or two, a state-store
 * read or write), then puts the run back with its next due time. In
 * template mode a sweeper thread finds completions: one executions.list of
 * the template job every sweep_ms sees every execution in flight, and
 * hands the finished ones to their runs; only executions no sweep has seen
 * lately (stragglers) and per-execution jobs are polled with
 * executions.get, backing off from poll_min to poll_max. Every API call
 * first takes a token of its quota family (runs, reads, writes: Cloud
 * Run's own quotas), so a burst of requests cannot exhaust the project's
 * quota; a step that finds no token goes back on the queue until one is
 * there, so no thread waits for a token and steps that need none
 * (state-store I/O) are never held up behind it; cancels take theirs on
 * credit. A 429 holds its family for everyone; 429/5xx/timeouts back off
 * with jitter and retry. The timeout clock starts at the execution's
 * startTime (docs/cloudrun.md).
 *
 * jobs.run is not idempotent, so each jobs.run is claimed durably first:
 * executions/{id}/attempt-{n}.json, create-only, one object per run (Cloud
 * Storage allows about one write per second to one object name, so no
 * name is ever written twice); then jobs.run; then the execution's name
 * goes into attempt-{n}.execution.json, create-only as well. A start()
 * that finds records re-attaches to the latest claim: to its named
 * execution, or — a claim without a name (crash or lost reply between
 * claim and answer) — to the execution whose EXECUTION_ID variable is this
 * one's, found with executions.list; only when none exists once any
 * jobs.run that may still be in flight has landed (settle_ms after the
 * claim; at once only when our own call was refused with a 4xx, which
 * proves it was not applied) is claim n+1 made and it run again. A 5xx,
 * 504 or lost reply means "maybe started" and goes the same way.
 *
 * In template mode each claim also carries the request document (the
 * executor reads it there). A fresh start (rp_backend_start_fresh: the
 * worker's steady state) makes claim 1 without listing first, ends with
 * RP_ERR_EXISTS when it exists, and records the name only on detach:
 * 1 store write and jobs.run per execution (docs/cloudrun.md, "Call
 * budget").
 */
#include "rp_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rp_auth.h"
#include "rp_buf.h"
#include "rp_cloudrun.h"
#include "rp_http.h"
#include "rp_list.h"
#include "rp_log.h"
#include "rp_ratelimit.h"
#include "rp_state.h"
#include "rp_time.h"
#include "rp_timerq.h"

#define RP_CLOUDRUN_RUNS_MAX 1000000      /* runs held at once */
#define RP_CLOUDRUN_RESPONSE_MAX (16 * 1024 * 1024) /* one API reply */
#define RP_CLOUDRUN_LIST_PAGE 50          /* executions per list page */
#define RP_CLOUDRUN_LIST_PAGES_MAX 40     /* > the 1000 a job keeps */
#define RP_CLOUDRUN_PAGE_TOKEN_MAX 2048
#define RP_CLOUDRUN_JOB_WAIT_MS 250       /* runs waiting for the shared job */
#define RP_CLOUDRUN_JOB_POLL_MS 200       /* first look at a job being made */
#define RP_CLOUDRUN_JOB_FAIL_HOLD_MS 30000 /* a failed job is not retried sooner */
#define RP_CLOUDRUN_JOB_404_MAX 2         /* job vanished under jobs.run */
#define RP_CLOUDRUN_CANCEL_WAIT_MS 120000 /* after executions.cancel, at most */
#define RP_CLOUDRUN_SKEW_MS (10 * 60 * 1000) /* clocks of two owners */
#define RP_CLOUDRUN_DELETE_TRIES 5
#define RP_CLOUDRUN_NEW_404_MS 10000 /* a 404 this soon after jobs.run: lag */
#define RP_CLOUDRUN_ES_MAX 512
#define RP_CLOUDRUN_DONE (-1)
/* Sweeps (docs/cloudrun.md "Completion: sweeps of executions.list"). */
#define RP_CLOUDRUN_SWEEP_PAGE_MAX 1000   /* the API's largest page (guessed) */
#define RP_CLOUDRUN_SWEEP_PAGE_MIN 10
#define RP_CLOUDRUN_SWEEP_SLACK_MS 60000  /* clocks: ours vs createTime */
#define RP_CLOUDRUN_STRAGGLE_MIN_MS 2000  /* unseen this long: a get */
#define RP_CLOUDRUN_WATCH_BUCKETS 16384   /* name hash -> watched runs */

/* Cloud Run's quota families (cloud-run-semantics.md 3c). */
typedef enum rp_cloudrun_family {
    RP_CR_FAM_RUNS,   /* jobs.run: "Job run requests per minute" */
    RP_CR_FAM_READS,  /* jobs.get, executions.get/list */
    RP_CR_FAM_WRITES, /* jobs.create/delete, executions.cancel */
    RP_CR_FAM_N,
} rp_cloudrun_family_t;

static const char *const rp_cloudrun_family_names[RP_CR_FAM_N] = {
    "runs", "reads", "writes"};

typedef struct rp_cloudrun_quota {
    rp_ratelimit_t rl;
    int64_t hold_until_ms; /* after a 429: no call of the family before */
    int holds;             /* 429s in a row: the hold grows */
    uint64_t calls, throttled, waits;
} rp_cloudrun_quota_t;

/* Counters for the metrics (rp_cloudrun_counter_names). */
typedef enum rp_cloudrun_counter {
    RP_CR_CNT_SWEEPS,
    RP_CR_CNT_SWEEP_PAGES,
    RP_CR_CNT_DONE_BY_SWEEP,
    RP_CR_CNT_STRAGGLER_GETS,
    RP_CR_CNT_N,
} rp_cloudrun_counter_t;

static const char *const rp_cloudrun_counter_names[RP_CR_CNT_N] = {
    "sweeps", "sweep_pages", "completed_by_sweep", "straggler_gets"};

typedef enum rp_cloudrun_phase {
    RP_CR_PREPARE, /* open the store; write request.json (always) */
    RP_CR_ATTEMPT, /* read the attempt records or make claim 1; decide */
    RP_CR_JOB,     /* a ready job to run on */
    RP_CR_CLAIM,   /* claim n+1 if needed, jobs.run, record the name */
    RP_CR_FIND,    /* claim without a name: look for the execution */
    RP_CR_POLL,    /* watch the execution (cancel it when asked) */
    RP_CR_DELETE,  /* per-execution: delete the job, then report */
} rp_cloudrun_phase_t;

/* Shared template job (template mode). */
typedef enum rp_cloudrun_tjob {
    RP_CR_TJOB_NONE,
    RP_CR_TJOB_CREATING,
    RP_CR_TJOB_READY,
    RP_CR_TJOB_FAILED,
} rp_cloudrun_tjob_t;

struct rp_backend_run {
    /* Under cr->lock. */
    rp_list_t link;    /* on cr->runs: every unreported run */
    rp_timer_t timer;  /* on cr->timers: its next step is due */
    bool busy;     /* a pool thread runs its step */
    bool kick;     /* flags changed during the step: step again at once */
    bool cancel_req, detach_req;
    bool reported, released;

    /* Only the thread holding the run (busy) touches what follows. */
    void *job;
    char eid[RP_ID_MAX + 1];
    char sid[RP_ID_MAX + 1];
    int timeout_s;
    rp_env_t env;      /* the contract, as sent to the job */
    /* The request document: template mode puts it in every claim record
     * (RUNPOOL_REQUEST_REF names the claim of the jobs.run); per-execution
     * mode writes it as request.json (PREPARE), its job's env being fixed
     * at jobs.create, before a retried run's claim. */
    char *request_doc;
    /* start_fresh: the worker looked for no earlier record or claim; if
     * claim 1 exists, end with RP_ERR_EXISTS before anything runs. */
    bool fresh;
    bool name_recorded; /* attempt-{n}.execution.json exists for att.n */
    rp_cloudrun_phase_t phase;
    char job_id[RP_CLOUDRUN_JOB_ID_MAX + 1]; /* per-execution mode */
    char job_name[RP_CLOUDRUN_NAME_MAX];     /* job to run on */
    char exec_name[RP_CLOUDRUN_NAME_MAX];    /* "" until known */
    rp_cloudrun_attempt_t att; /* the latest claim (att.n) as known */
    int my_claim_n;            /* our own last claim's number; 0: none */
    bool claim_fresh;          /* claimed, no jobs.run sent since */
    bool run_refused;          /* our last jobs.run got a 4xx: not applied */
    int64_t run_sent_ms;       /* wall: our last jobs.run went out; 0 never */
    /* Another owner's claim, taken over without a name: its number and
     * when this run first read it (wall). FIND's settle counts from then
     * too: that owner's jobs.run may have gone out long after its claim
     * (quota waits, slow Storage) and be in flight now. */
    int seen_claim_n;
    int64_t seen_claim_ms;
    bool job_create_sent, job_mine, tjob_creator;
    bool claim_reused;         /* claim_fresh again after a 429 on jobs.run */
    bool cancel_sent, self_cancel;
    bool queue_cancel;         /* self_cancel because it never started */
    bool seen;                 /* executions.get has answered 200 */
    int64_t cancel_sent_ms, self_cancel_at_ms, poll_since_ms;
    /* The timeout clock starts when the execution starts running
     * (startTime), not at jobs.run: 0 while it is queued. */
    int64_t started_mono_ms, queue_deadline_ms;
    int poll_ms, job_poll_ms;
    int retries;
    int64_t retry_since_ms;
    int job_404s, delete_tries;
    int list_page; /* executions.list resumes here after a token wait */
    char list_token[RP_CLOUDRUN_PAGE_TOKEN_MAX];
    bool have_done;
    rp_backend_done_t done;

    /* The sweeps' side, under cr->lock. */
    bool watched;             /* in cr->watch: sweeps look for it */
    rp_list_t wlink;          /* on cr->watch_list */
    rp_backend_run_t *wnext;  /* hash chain */
    uint64_t whash;
    int64_t w_created_ms;     /* wall: its createTime is not older */
    int64_t w_since_ms;       /* mono: watched since */
    int64_t w_seen_ms;        /* mono: a sweep last saw it; 0 never */
    int64_t w_next_get_ms;    /* mono: a straggler's next get, not sooner */
    bool w_have;              /* w_ex is news for the run's next step */
    bool w_start_seen;        /* a sweep saw its startTime */
    rp_cloudrun_exec_t w_ex;
    int64_t started_pub_ms;   /* started_mono_ms, for the worker's backstop */
};

typedef struct rp_cloudrun {
    rp_cloudrun_conf_t conf;
    char parent[RP_CLOUDRUN_NAME_MAX];
    char worker[RP_WORKER_NAME_MAX];
    rp_auth_t *auth; /* borrowed from conf->gcp; NULL: send no token */

    pthread_mutex_t lock;
    /* Three condition variables (CLOCK_MONOTONIC), so that one new step
     * wakes one thread: with one broadcast condvar for all, every step
     * queued woke the 8 pool threads and the sweeper (about 10 thread
     * switches an execution in bench s). See rp_cloudrun_pool_wake(). */
    pthread_cond_t cond;       /* pool threads with nothing to do */
    pthread_cond_t timer_cond; /* the one pool thread timing the queue */
    pthread_cond_t sweep_cond; /* the sweeper */
    int pool_idle;             /* pool threads waiting on cond */
    int64_t timer_until;       /* timer_cond's waiter's deadline; 0: none */
    pthread_t *threads;
    int nthreads;
    bool stopping;
    rp_timerq_t timers;     /* queued runs, by next step's due time */
    rp_list_t runs;         /* every unreported run */
    size_t nruns;
    rp_cloudrun_quota_t quota[RP_CR_FAM_N];
    rp_ratelimit_t get_rl;  /* executions.get, within the reads */
    uint64_t counters[RP_CR_CNT_N];

    /* Sweeps (template mode); under lock. */
    bool sweeping;
    pthread_t sweeper;
    bool sweeper_started;
    rp_backend_run_t **watch; /* RP_CLOUDRUN_WATCH_BUCKETS chains */
    rp_list_t watch_list;
    size_t nwatch;
    int straggle_ms;
    char watch_prefix[RP_CLOUDRUN_NAME_MAX]; /* "{tjob_name}/executions/" */

    rp_state_t *state; /* borrowed: the worker's store */

    /* Template mode; under lock. */
    char tjob_id[RP_CLOUDRUN_JOB_ID_MAX + 1];
    char tjob_name[RP_CLOUDRUN_NAME_MAX];
    rp_env_t tjob_env;
    rp_cloudrun_tjob_t tjob_state;
    rp_backend_run_t *tjob_creator;
    int64_t tjob_failed_ms;
    rp_err_t tjob_err;
    char tjob_error[RP_BACKEND_DETAIL_MAX];
} rp_cloudrun_t;

/* Whether the run's current claim is one this worker made. Claim 0 (a
 * legacy claim without a number) is never ours. Any thread holding run. */
static int rp_cloudrun_claim_is_mine(const rp_backend_run_t *run)
{
    return run->my_claim_n && run->att.n == run->my_claim_n;
}

/* snprintf, cutting long messages quietly: Google's messages and our
 * names are bounded, but not so that every sum fits a detail line. */
static void rp_cloudrun_msg(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rp_cloudrun_msg(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Waiting (called with cr->lock)                                      */

/* Wait on cond until the monotonic deadline (ms) or a signal. */
static void rp_cloudrun_wait_until(rp_cloudrun_t *cr, pthread_cond_t *cond,
                                   int64_t until_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(until_ms / 1000);
    ts.tv_nsec = (long)(until_ms % 1000) * 1000000L;
    pthread_cond_timedwait(cond, &cr->lock, &ts);
}

/* The queue changed: wake the one pool thread that has to act, if any.
 * Its first step due now wants an idle thread (or the timing thread when
 * none is idle); due later, it wants the timing thread when it is due
 * sooner than that thread waits for, or an idle thread to start timing
 * when none does. A pool thread that takes a step calls this too, so a
 * wake that found no waiter (pool_idle counts a signalled thread until
 * it runs) is passed on by the next one. With cr->lock. */
static void rp_cloudrun_pool_wake(rp_cloudrun_t *cr, int64_t now)
{
    rp_timer_t *first = rp_timerq_peek(&cr->timers);

    if (!first)
        return;
    if (first->due_ms <= now) {
        if (cr->pool_idle > 0)
            pthread_cond_signal(&cr->cond);
        else if (cr->timer_until)
            pthread_cond_signal(&cr->timer_cond);
    } else if (cr->timer_until) {
        if (first->due_ms < cr->timer_until)
            pthread_cond_signal(&cr->timer_cond);
    } else if (cr->pool_idle > 0) {
        pthread_cond_signal(&cr->cond);
    }
}

/* ------------------------------------------------------------------ */
/* API calls                                                           */

typedef enum rp_cloudrun_rc {
    RP_CR_OK,    /* 2xx */
    RP_CR_RETRY, /* 429, 5xx, timeout, no connection: back off, retry */
    RP_CR_FAIL,  /* any other answer: Google's message in msg */
    RP_CR_STOP,  /* the backend is closing */
    RP_CR_WAIT,  /* no API token yet: nothing sent; try after wait_ms */
} rp_cloudrun_rc_t;

typedef struct rp_cloudrun_call {
    bool fresh_connection; /* in: never reuse a kept connection for it */
    bool unmetered;        /* in: never waits for a token (executions.cancel:
                            * it takes one on credit) */
    int64_t wait_ms;       /* RP_CR_WAIT: until a token is there */
    long status; /* 0: no HTTP answer */
    rp_http_resp_t resp;
    char msg[RP_BACKEND_DETAIL_MAX];
} rp_cloudrun_call_t;

/* The family of a call, from its name (docs/cloudrun.md "Quota
 * families"). */
static rp_cloudrun_family_t rp_cloudrun_family_of(const char *what)
{
    if (!strcmp(what, "jobs.run"))
        return RP_CR_FAM_RUNS;
    if (!strcmp(what, "jobs.create") || !strcmp(what, "jobs.delete") ||
        !strcmp(what, "executions.cancel"))
        return RP_CR_FAM_WRITES;
    return RP_CR_FAM_READS;
}

/* Take one token of the call's family without waiting: 0 when taken, else
 * the ms until one is there (a family held after a 429 gives none); -1
 * when the backend is closing. executions.get takes one of get_rl too, so
 * straggler gets never crowd out the sweeps. */
static int64_t rp_cloudrun_take_token(rp_cloudrun_t *cr, const char *what,
                                      bool unmetered)
{
    rp_cloudrun_quota_t *q = &cr->quota[rp_cloudrun_family_of(what)];
    int64_t wait, now = rp_time_mono_ms();

    pthread_mutex_lock(&cr->lock);
    if (cr->stopping) {
        wait = -1;
    } else if (unmetered) {
        rp_ratelimit_force(&q->rl, now);
        wait = 0;
    } else if (q->hold_until_ms > now) {
        wait = q->hold_until_ms - now;
    } else if (!strcmp(what, "executions.get") &&
               (wait = rp_ratelimit_take(&cr->get_rl, now)) > 0) {
        ;
    } else {
        wait = rp_ratelimit_take(&q->rl, now);
    }
    if (wait == 0)
        q->calls++;
    else if (wait > 0)
        q->waits++;
    pthread_mutex_unlock(&cr->lock);
    return wait;
}

/* A 429 holds the whole family for a growing, jittered while: every
 * caller of it waits (nothing sent, no retry counted) instead of each
 * retrying on its own. Any answer that is not a 429 ends the streak. */
static void rp_cloudrun_quota_answer(rp_cloudrun_t *cr, const char *what,
                                     long status)
{
    rp_cloudrun_quota_t *q = &cr->quota[rp_cloudrun_family_of(what)];
    int64_t now = rp_time_mono_ms(), hold;

    if (status == 0)
        return;
    pthread_mutex_lock(&cr->lock);
    if (status == 429) {
        q->throttled++;
        q->holds++;
        hold = rp_http_retry_delay_ms(q->holds, cr->conf.retry_base_ms,
                                      cr->conf.retry_cap_ms);
        if (hold < cr->conf.retry_base_ms / 2)
            hold = cr->conf.retry_base_ms / 2;
        if (now + hold > q->hold_until_ms)
            q->hold_until_ms = now + hold;
        if (q->holds == 1)
            rp_log(RP_LOG_INFO, "cloudrun_quota_hold", NULL, NULL,
                   "%s answered 429: %s calls held for %lld ms", what,
                   rp_cloudrun_family_names[rp_cloudrun_family_of(what)],
                   (long long)hold);
    } else {
        q->holds = 0;
    }
    pthread_mutex_unlock(&cr->lock);
}

static rp_cloudrun_rc_t rp_cloudrun_api(rp_cloudrun_t *cr, const char *what,
                                        const char *method, const char *url,
                                        const char *body,
                                        rp_cloudrun_call_t *call)
{
    char es[RP_CLOUDRUN_ES_MAX];
    char gmsg[RP_BACKEND_DETAIL_MAX];
    const char *hdrs[1];
    size_t nh = 0;
    rp_http_req_t req;
    rp_err_t err;
    bool no_token;

    rp_http_resp_clear(&call->resp);
    call->status = 0;
    call->msg[0] = '\0';
    call->wait_ms = rp_cloudrun_take_token(cr, what, call->unmetered);
    if (call->wait_ms < 0)
        return RP_CR_STOP;
    if (call->wait_ms > 0)
        return RP_CR_WAIT;
    if (body)
        hdrs[nh++] = "Content-Type: application/json";
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.headers = hdrs;
    req.n_headers = nh;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.timeout_ms = cr->conf.http_timeout_ms;
    req.response_max = RP_CLOUDRUN_RESPONSE_MAX;
    req.fresh_connection = call->fresh_connection;
    /* rp_auth adds the token, and on a 401 retries once with a fresh one. */
    err = rp_auth_request(cr->auth, &req, &call->resp, &no_token, es,
                          sizeof(es));
    if (err) {
        if (no_token)
            rp_cloudrun_msg(call->msg, sizeof(call->msg),
                            "%s: credentials: %s", what, es);
        else
            rp_cloudrun_msg(call->msg, sizeof(call->msg), "Cloud Run %s: %s",
                            what, es);
        if (call->resp.status == 401) /* refused twice: a refusal */
            call->status = 401;
        return rp_err_retriable(err) ? RP_CR_RETRY : RP_CR_FAIL;
    }
    call->status = call->resp.status;
    rp_cloudrun_quota_answer(cr, what, call->status);
    if (call->status >= 200 && call->status < 300)
        return RP_CR_OK;
    rp_cloudrun_error_message(call->status, call->resp.body.data,
                              call->resp.body.len, gmsg, sizeof(gmsg));
    rp_cloudrun_msg(call->msg, sizeof(call->msg), "Cloud Run %s: %s", what, gmsg);
    return rp_http_status_retriable(call->status) ? RP_CR_RETRY : RP_CR_FAIL;
}

/* The error a definitive API refusal becomes in done.err. */
static rp_err_t rp_cloudrun_status_err(long status)
{
    switch (status) {
    case 401:
    case 403: return RP_ERR_PERMISSION;
    case 404: return RP_ERR_NOT_FOUND;
    case 409: return RP_ERR_CONFLICT;
    case 400:
    case 412: return RP_ERR_INVALID;
    case 0: return RP_ERR_UNAVAILABLE;
    default: return RP_ERR_PROTOCOL;
    }
}

/* "{endpoint}/v2/{name}{suffix}"; false when it does not fit. */
static bool rp_cloudrun_url(const rp_cloudrun_t *cr, char *out, size_t size,
                            const char *name, const char *suffix)
{
    int n = snprintf(out, size, "%s/v2/%s%s", cr->conf.endpoint, name, suffix);

    return n > 0 && (size_t)n < size;
}

/* The URL of one executions.list page of job: page_size entries, only the
 * members the worker reads (RP_CLOUDRUN_LIST_FIELDS), after token (""
 * for the first page). false: the token or the URL does not fit. */
static bool rp_cloudrun_list_url(const rp_cloudrun_t *cr, char *out,
                                 size_t size, const char *job, int page_size,
                                 const char *token)
{
    char esc[3 * RP_CLOUDRUN_PAGE_TOKEN_MAX];
    char suffix[sizeof(esc) + 64 + sizeof(RP_CLOUDRUN_LIST_FIELDS)];

    if (token[0] && rp_http_escape(token, esc, sizeof(esc)) != RP_OK)
        return false;
    rp_cloudrun_msg(suffix, sizeof(suffix),
                    "/executions?pageSize=%d&prettyPrint=false"
                    "&fields=" RP_CLOUDRUN_LIST_FIELDS "%s%s",
                    page_size, token[0] ? "&pageToken=" : "",
                    token[0] ? esc : "");
    return rp_cloudrun_url(cr, out, size, job, suffix);
}

/* ------------------------------------------------------------------ */
/* Step helpers                                                        */

static void rp_cloudrun_set_done(rp_backend_run_t *run, rp_err_t err,
                                 bool cancelled, int exit_code,
                                 const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void rp_cloudrun_set_done(rp_backend_run_t *run, rp_err_t err,
                                 bool cancelled, int exit_code,
                                 const char *fmt, ...)
{
    va_list ap;

    memset(&run->done, 0, sizeof(run->done));
    run->done.err = err;
    run->done.cancelled = cancelled;
    run->done.exit_code = exit_code;
    va_start(ap, fmt);
    vsnprintf(run->done.detail, sizeof(run->done.detail), fmt, ap);
    va_end(ap);
    run->have_done = true;
}

/* The outcome is set: report it, after deleting our own job. */
static int64_t rp_cloudrun_end(rp_backend_run_t *run)
{
    if (run->job_mine && run->phase != RP_CR_DELETE) {
        run->phase = RP_CR_DELETE;
        return 0;
    }
    return RP_CLOUDRUN_DONE;
}

static int64_t rp_cloudrun_fail(rp_backend_run_t *run, rp_err_t err,
                                const char *msg)
{
    rp_cloudrun_set_done(run, err ? err : RP_ERR_INTERNAL, false, -1, "%s",
                         msg);
    return rp_cloudrun_end(run);
}

static void rp_cloudrun_ok(rp_backend_run_t *run)
{
    run->retries = 0;
    run->retry_since_ms = 0;
}

/* A retriable failure: the delay before trying again, or the end once
 * retry_max_s has passed without success. */
static int64_t rp_cloudrun_backoff(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                   const char *msg)
{
    int64_t now = rp_time_mono_ms();

    if (!run->retry_since_ms)
        run->retry_since_ms = now;
    if (now - run->retry_since_ms > (int64_t)cr->conf.retry_max_s * 1000) {
        rp_cloudrun_set_done(run, RP_ERR_UNAVAILABLE, false, -1,
                             "gave up after %d s of retries: %s",
                             cr->conf.retry_max_s, msg);
        return rp_cloudrun_end(run);
    }
    run->retries++;
    rp_log(run->retries == 1 ? RP_LOG_INFO : RP_LOG_DEBUG, "cloudrun_retry",
           run->eid, run->sid, "attempt %d: %s", run->retries, msg);
    return rp_http_retry_delay_ms(run->retries, cr->conf.retry_base_ms,
                                  cr->conf.retry_cap_ms);
}

static int64_t rp_cloudrun_call_failed(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                       rp_cloudrun_rc_t rc,
                                       const rp_cloudrun_call_t *call)
{
    if (rc == RP_CR_STOP)
        return 0; /* the thread is leaving; close() reports the run */
    if (rc == RP_CR_WAIT)
        return call->wait_ms; /* not a failure: no retry counted */
    if (rc == RP_CR_RETRY)
        return rp_cloudrun_backoff(cr, run, call->msg);
    return rp_cloudrun_fail(run, rp_cloudrun_status_err(call->status),
                            call->msg);
}

/* ------------------------------------------------------------------ */
/* The watch table: runs whose execution the sweeps look for           */

static uint64_t rp_cloudrun_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* With cr->lock. */
static void rp_cloudrun_watch_add(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                  int64_t created_wall_ms, int64_t now)
{
    size_t b;

    if (run->watched)
        return;
    run->whash = rp_cloudrun_hash(run->exec_name);
    b = (size_t)(run->whash % RP_CLOUDRUN_WATCH_BUCKETS);
    run->wnext = cr->watch[b];
    cr->watch[b] = run;
    rp_list_push_tail(&cr->watch_list, &run->wlink);
    cr->nwatch++;
    run->watched = true;
    run->w_created_ms = created_wall_ms;
    run->w_since_ms = now;
    run->w_seen_ms = 0;
    run->w_next_get_ms = 0;
    run->w_have = run->w_start_seen = false;
    if (cr->nwatch == 1)
        pthread_cond_signal(&cr->sweep_cond); /* it waits for a first one */
}

/* With cr->lock. */
static void rp_cloudrun_watch_remove(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    rp_backend_run_t **pp;

    if (!run->watched)
        return;
    for (pp = &cr->watch[run->whash % RP_CLOUDRUN_WATCH_BUCKETS]; *pp;
         pp = &(*pp)->wnext) {
        if (*pp == run) {
            *pp = run->wnext;
            break;
        }
    }
    rp_list_unlink(&run->wlink);
    cr->nwatch--;
    run->watched = false;
}

/* With cr->lock. */
static rp_backend_run_t *rp_cloudrun_watch_find(rp_cloudrun_t *cr,
                                                const char *name)
{
    uint64_t h = rp_cloudrun_hash(name);
    rp_backend_run_t *r = cr->watch[h % RP_CLOUDRUN_WATCH_BUCKETS];

    for (; r; r = r->wnext)
        if (r->whash == h && !strcmp(r->exec_name, name))
            return r;
    return NULL;
}

/* Make run's next step due at due (it has news). A sweep's news is due
 * at RP_CLOUDRUN_DUE_FIRST, before every other step: reporting an end
 * takes no I/O, and must not wait behind the state-store steps of a
 * thousand runs being started (the queue is ordered by due time). With
 * cr->lock. */
#define RP_CLOUDRUN_DUE_FIRST 1
static void rp_cloudrun_kick_locked(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                    int64_t due)
{
    if (run->busy) {
        run->kick = true;
    } else if (run->timer.queued && run->timer.due_ms > due) {
        rp_timerq_add(&cr->timers, &run->timer, due);
        rp_cloudrun_pool_wake(cr, rp_time_mono_ms());
    }
}

/* The run's next deadline (mono): the end of the wait after a cancel;
 * else, once started, its timeout plus margins; else the queue bound. */
static int64_t rp_cloudrun_deadline(const rp_backend_run_t *run)
{
    if (run->cancel_sent)
        return run->cancel_sent_ms + RP_CLOUDRUN_CANCEL_WAIT_MS;
    if (run->started_mono_ms)
        return run->self_cancel_at_ms;
    return run->queue_deadline_ms;
}

/* Started at start_wall (the execution's startTime): the timeout clock
 * starts there. Google's clock is not ours: the start is put no later
 * than now and no earlier than the claim's jobs.run. */
static void rp_cloudrun_mark_started(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                     int64_t start_wall, int64_t now)
{
    int64_t now_wall = rp_time_wall_ms(), ago = now_wall - start_wall;
    int64_t most = run->att.run_at_ms ? now_wall - run->att.run_at_ms : 0;

    if (ago > most)
        ago = most;
    if (ago < 0)
        ago = 0;
    run->started_mono_ms = now - ago;
    if (!run->started_mono_ms)
        run->started_mono_ms = 1;
    /* Cloud Run ends the task at its timeout; if it has not, we do. */
    run->self_cancel_at_ms =
        run->started_mono_ms + ((int64_t)run->timeout_s +
                                cr->conf.timeout_margin_s +
                                cr->conf.cancel_after_s) * 1000;
    pthread_mutex_lock(&cr->lock);
    run->started_pub_ms = run->started_mono_ms;
    pthread_mutex_unlock(&cr->lock);
    rp_log(RP_LOG_DEBUG, "cloudrun_started", run->eid, run->sid,
           "%s started running %lld ms ago; its timeout counts from there",
           run->exec_name, (long long)ago);
}

/* Watch the execution run->exec_name. In template mode its completion is
 * found by the sweeps; else (per-execution jobs, an execution of another
 * job) by executions.get. */
static void rp_cloudrun_arm_poll(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    int64_t now = rp_time_mono_ms();

    run->phase = RP_CR_POLL;
    run->poll_ms = cr->conf.poll_min_ms;
    run->seen = false;
    run->poll_since_ms = now;
    run->started_mono_ms = 0;
    run->self_cancel_at_ms = 0;
    run->queue_deadline_ms = now + (int64_t)cr->conf.queue_max_s * 1000;
    pthread_mutex_lock(&cr->lock);
    run->started_pub_ms = 0;
    if (cr->sweeping && cr->watch_prefix[0] &&
        !strncmp(run->exec_name, cr->watch_prefix, strlen(cr->watch_prefix)))
        rp_cloudrun_watch_add(cr, run,
                              run->att.run_at_ms ? run->att.run_at_ms
                                                 : rp_time_wall_ms(),
                              now);
    pthread_mutex_unlock(&cr->lock);
}

/* The delay before a watched run looks again by itself: the sweeps kick
 * it when there is news; this is only the safety net (and the deadline). */
static int64_t rp_cloudrun_watch_delay(const rp_cloudrun_t *cr,
                                       const rp_backend_run_t *run,
                                       int64_t now)
{
    int64_t d = cr->conf.poll_max_ms, dl = rp_cloudrun_deadline(run) - now;

    if (dl < d)
        d = dl;
    return d > 1 ? d : 1;
}

/* Create claim run->att.n (create-only): RP_OK makes it ours. */
static rp_err_t rp_cloudrun_put_claim(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                      rp_state_t *st, char *es, size_t n)
{
    char key[RP_STATE_KEY_MAX + 1], *json;
    bool tmpl = cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE;
    rp_err_t err;

    rp_cloudrun_attempt_key(run->eid, run->att.n, key, sizeof(key));
    rp_cloudrun_msg(run->att.worker, sizeof(run->att.worker), "%s", cr->worker);
    run->att.execution[0] = '\0';
    /* Template mode: the request rides in the claim (no request.json). */
    if (!(json = rp_cloudrun_attempt_json_with(
              &run->att, tmpl ? run->request_doc : NULL)))
        return rp_errf(es, n, RP_ERR_NOMEM, "out of memory");
    err = rp_state_put(st, key, json, strlen(json), 0, NULL, es, n);
    free(json);
    if (err == RP_OK) {
        run->my_claim_n = run->att.n;
        run->name_recorded = false;
        /* The jobs.run that follows names this claim as its request. */
        if (tmpl)
            err = rp_jobenv_use_attempt_ref(&run->env, run->eid, run->att.n,
                                            es, n);
    }
    return err;
}

/* Best effort: the execution's name for claim att.n, written once
 * (create-only), so a new owner polls it directly (without it,
 * executions.list finds it). EXISTS: someone recorded it already. */
static void rp_cloudrun_record_name(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    char es[RP_CLOUDRUN_ES_MAX], key[RP_STATE_KEY_MAX + 1], *json;
    rp_err_t err;

    rp_cloudrun_msg(run->att.execution, sizeof(run->att.execution), "%s",
             run->exec_name);
    rp_cloudrun_attempt_exec_key(run->eid, run->att.n, key, sizeof(key));
    rp_cloudrun_msg(run->att.worker, sizeof(run->att.worker), "%s", cr->worker);
    if (!(json = rp_cloudrun_attempt_json(&run->att))) {
        rp_log(RP_LOG_WARN, "cloudrun_attempt_update_failed", run->eid,
               run->sid, "recording %s: out of memory", run->exec_name);
        return;
    }
    err = rp_state_put(cr->state, key, json, strlen(json), 0, NULL, es,
                       sizeof(es));
    free(json);
    if (!err || err == RP_ERR_EXISTS)
        run->name_recorded = true;
    if (err && err != RP_ERR_EXISTS)
        rp_log(RP_LOG_WARN, "cloudrun_attempt_update_failed", run->eid,
               run->sid, "recording %s in %s: %s", run->exec_name, key, es);
}

/* ------------------------------------------------------------------ */
/* Steps                                                               */

static int64_t rp_cloudrun_step_prepare(rp_cloudrun_t *cr,
                                        rp_backend_run_t *run)
{
    char es[RP_CLOUDRUN_ES_MAX], key[RP_STATE_KEY_MAX + 1];
    char msg[RP_BACKEND_DETAIL_MAX];
    rp_state_t *st = cr->state;
    rp_err_t err;

    /* Template mode writes the request inside each claim instead. */
    if (run->request_doc && cr->conf.mode != RP_CLOUDRUN_MODE_TEMPLATE) {
        rp_jobenv_request_key(run->eid, key, sizeof(key));
        err = rp_state_put(st, key, run->request_doc, strlen(run->request_doc),
                           0, NULL, es, sizeof(es));
        /* EXISTS: an earlier attempt of this execution wrote it. */
        if (err && err != RP_ERR_EXISTS) {
            rp_cloudrun_msg(msg, sizeof(msg), "writing %s: %s", key, es);
            if (rp_err_retriable(err))
                return rp_cloudrun_backoff(cr, run, msg);
            return rp_cloudrun_fail(run, err, msg);
        }
        free(run->request_doc);
        run->request_doc = NULL;
        rp_cloudrun_ok(run);
    }
    run->phase = RP_CR_ATTEMPT;
    return 0;
}

/* What listing an execution's attempt records found. */
typedef struct rp_cloudrun_scan {
    int claim_n;  /* highest claim number; -1: none (0: the legacy one) */
    int exec_n;   /* highest name record's claim number; -1: none */
} rp_cloudrun_scan_t;

static int rp_cloudrun_scan_cb(void *opaque, const char *key, uint64_t version)
{
    rp_cloudrun_scan_t *sc = opaque;
    int n = 0;

    (void)version;
    switch (rp_cloudrun_attempt_key_kind(key, &n)) {
    case RP_CLOUDRUN_KEY_CLAIM:
        if (n > sc->claim_n)
            sc->claim_n = n;
        break;
    case RP_CLOUDRUN_KEY_EXEC:
        if (n > sc->exec_n)
            sc->exec_n = n;
        break;
    case RP_CLOUDRUN_KEY_OTHER: break;
    }
    return 0;
}

static int64_t rp_cloudrun_step_attempt(rp_cloudrun_t *cr,
                                        rp_backend_run_t *run)
{
    char es[RP_CLOUDRUN_ES_MAX], key[RP_STATE_KEY_MAX + 1];
    char msg[RP_BACKEND_DETAIL_MAX];
    rp_cloudrun_scan_t sc = {.claim_n = -1, .exec_n = -1};
    rp_state_t *st = cr->state;
    bool named;
    int64_t ret = 0;
    rp_buf_t buf;
    rp_err_t err;

    /* A claim record may carry the request document. */
    rp_buf_init(&buf, RP_JOBENV_REF_DOC_MAX);
    /* Fresh (the worker's steady state): no listing; the create-only
     * claim 1 below answers whether anyone started it before. */
    if (!run->fresh) {
        rp_cloudrun_attempt_prefix(run->eid, key, sizeof(key));
        err = rp_state_list(st, key, rp_cloudrun_scan_cb, &sc, es, sizeof(es));
        if (err)
            goto fail;
    }
    if (sc.claim_n < 0) {
        /* First claim: the create-only write is the claim itself. */
        memset(&run->att, 0, sizeof(run->att));
        memcpy(run->att.execution_id, run->eid, sizeof(run->att.execution_id));
        memcpy(run->att.job, run->job_name, sizeof(run->att.job));
        run->att.n = 1;
        run->att.created_ms = run->att.run_at_ms = rp_time_wall_ms();
        rp_cloudrun_attempt_key(run->eid, 1, key, sizeof(key));
        err = rp_cloudrun_put_claim(cr, run, st, es, sizeof(es));
        if (err == RP_ERR_EXISTS && run->fresh) {
            /* Started before: nothing runs; the worker looks (records,
             * claims) and starts again the slow way, which re-attaches. */
            rp_cloudrun_set_done(run, RP_ERR_EXISTS, false, -1,
                                 "%s exists: the execution was started "
                                 "before", key);
            ret = rp_cloudrun_end(run);
            goto out;
        }
        if (err == RP_ERR_EXISTS)
            goto out; /* someone else claimed just now: read theirs */
        if (err)
            goto fail;
        run->claim_fresh = true;
        run->claim_reused = false;
        run->run_refused = false;
        run->phase = RP_CR_JOB;
        rp_cloudrun_ok(run);
        goto out;
    }
    /* The latest claim decides; its name record, when there is one, is a
     * copy of it with the execution's name (the legacy record may carry
     * the name itself). */
    named = sc.exec_n == sc.claim_n;
    if (named)
        rp_cloudrun_attempt_exec_key(run->eid, sc.claim_n, key, sizeof(key));
    else
        rp_cloudrun_attempt_key(run->eid, sc.claim_n, key, sizeof(key));
    err = rp_state_get(st, key, &buf, NULL, es, sizeof(es));
    if (err == RP_ERR_NOT_FOUND)
        goto out; /* deleted under us (by hand?): look again */
    if (err)
        goto fail;
    rp_cloudrun_ok(run);
    if (rp_cloudrun_attempt_parse(buf.data, buf.len, &run->att, es,
                                  sizeof(es)) ||
        strcmp(run->att.execution_id, run->eid) ||
        (named && !run->att.execution[0])) {
        rp_cloudrun_msg(msg, sizeof(msg), "%s is unreadable; not running the "
                 "execution blind", key);
        ret = rp_cloudrun_fail(run, RP_ERR_PROTOCOL, msg);
        goto out;
    }
    run->att.n = sc.claim_n; /* the key says which claim it is */
    /* Per-execution: the job is this execution's (its name comes from the
     * id): whoever sees the execution end deletes it. */
    if (cr->conf.mode == RP_CLOUDRUN_MODE_PER_EXECUTION &&
        !strcmp(run->att.job, run->job_name))
        run->job_mine = true;
    if (run->att.execution[0]) {
        run->name_recorded = true;
        memcpy(run->exec_name, run->att.execution, sizeof(run->exec_name));
        rp_log(RP_LOG_INFO, "cloudrun_reattach", run->eid, run->sid,
               "re-attaching to %s (claim %d)", run->exec_name, run->att.n);
        rp_cloudrun_arm_poll(cr, run);
    } else {
        rp_log(RP_LOG_INFO, "cloudrun_claim_found", run->eid, run->sid,
               "claim %d made before (by %s) without an execution name: "
               "looking for it",
               run->att.n, run->att.worker[0] ? run->att.worker : "?");
        if (!rp_cloudrun_claim_is_mine(run) &&
            (!run->seen_claim_ms || run->att.n != run->seen_claim_n)) {
            run->seen_claim_n = run->att.n;
            run->seen_claim_ms = rp_time_wall_ms();
        }
        run->phase = RP_CR_FIND;
    }
    goto out;
fail:
    rp_cloudrun_msg(msg, sizeof(msg), "%s: %s", key, es);
    ret = rp_err_retriable(err) ? rp_cloudrun_backoff(cr, run, msg)
                                : rp_cloudrun_fail(run, err, msg);
out:
    rp_buf_free(&buf);
    return ret;
}

/* The next poll interval: doubled, at most poll_max_ms. */
static int rp_cloudrun_next_poll(const rp_cloudrun_t *cr, int ms)
{
    return ms > cr->conf.poll_max_ms / 2 ? cr->conf.poll_max_ms : ms * 2;
}

typedef enum rp_cloudrun_jobrc {
    RP_CR_JOB_READY,  /* the job exists and is ready to run on */
    RP_CR_JOB_LATER,  /* step again after the returned delay */
    RP_CR_JOB_FAILED, /* a definitive refusal: err and msg say why */
} rp_cloudrun_jobrc_t;

/* One step towards job name (id under cr->parent) existing and ready:
 * jobs.create from env and timeout_s (409: it exists already), then
 * jobs.get until it has reconciled. shared: the template job, which must
 * run our image; else this execution's own, which must carry its
 * EXECUTION_ID and is then deleted at the end (run->job_mine). LATER puts
 * the delay in *delay (a retry that gave up has set run's outcome). */
static rp_cloudrun_jobrc_t
rp_cloudrun_ensure_job(rp_cloudrun_t *cr, rp_backend_run_t *run,
                       const char *name, const char *id, const rp_env_t *env,
                       int timeout_s, bool shared, int64_t *delay,
                       rp_err_t *err, char *msg, size_t msg_size)
{
    char url[RP_HTTP_URL_MAX], es[RP_CLOUDRUN_ES_MAX], *body = NULL;
    rp_cloudrun_jobrc_t jr = RP_CR_JOB_LATER;
    rp_cloudrun_call_t call;
    rp_cloudrun_rc_t rc;
    rp_cloudrun_job_t job;

    *delay = 0;
    *err = RP_OK;
    memset(&call, 0, sizeof(call));
    if (!run->job_create_sent) {
        char query[RP_CLOUDRUN_JOB_ID_MAX + 16];

        rp_cloudrun_msg(query, sizeof(query), "/jobs?jobId=%s", id);
        if (!(body = rp_cloudrun_job_body(&cr->conf, env, timeout_s)) ||
            !rp_cloudrun_url(cr, url, sizeof(url), cr->parent, query)) {
            *err = RP_ERR_NOMEM;
            rp_cloudrun_msg(msg, msg_size,
                            "building jobs.create: out of memory");
            jr = RP_CR_JOB_FAILED;
            goto out;
        }
        rc = rp_cloudrun_api(cr, "jobs.create", "POST", url, body, &call);
        if (rc == RP_CR_OK || (rc == RP_CR_FAIL && call.status == 409)) {
            /* 409: made by another worker or an earlier life: use it
             * (a per-execution job's owner is checked below). */
            rp_log(RP_LOG_INFO, "cloudrun_job_create", run->eid, run->sid,
                   "job %s %s", name,
                   rc == RP_CR_OK ? "created" : "exists already");
            run->job_create_sent = true;
            if (!shared)
                run->job_mine = rc == RP_CR_OK;
            run->job_poll_ms = RP_CLOUDRUN_JOB_POLL_MS;
            rp_cloudrun_ok(run);
            *delay = rc == RP_CR_OK ? run->job_poll_ms : 0;
            goto out;
        }
        goto call_failed;
    }
    if (!rp_cloudrun_url(cr, url, sizeof(url), name, "")) {
        *err = RP_ERR_INVALID;
        rp_cloudrun_msg(msg, msg_size, "job name too long");
        jr = RP_CR_JOB_FAILED;
        goto out;
    }
    rc = rp_cloudrun_api(cr, "jobs.get", "GET", url, NULL, &call);
    if (rc == RP_CR_FAIL && call.status == 404) {
        run->job_create_sent = false; /* deleted meanwhile: make it again */
        goto out;
    }
    if (rc != RP_CR_OK)
        goto call_failed;
    rp_cloudrun_ok(run);
    jr = RP_CR_JOB_FAILED;
    if (rp_cloudrun_parse_job(call.resp.body.data, call.resp.body.len, &job,
                              es, sizeof(es))) {
        *err = RP_ERR_PROTOCOL;
        rp_cloudrun_msg(msg, msg_size, "Cloud Run jobs.get %s: %s", name, es);
        goto out;
    }
    if (!shared) {
        if (strcmp(job.execution_id, run->eid)) {
            *err = RP_ERR_CONFLICT;
            rp_cloudrun_msg(msg, msg_size,
                            "Cloud Run job %s belongs to execution '%s', "
                            "not this one",
                            name, job.execution_id);
            run->job_mine = false; /* never delete someone else's job */
            goto out;
        }
        run->job_mine = true;
    }
    if (job.state == RP_CLOUDRUN_JOB_RECONCILING) {
        *delay = run->job_poll_ms;
        run->job_poll_ms = rp_cloudrun_next_poll(cr, run->job_poll_ms);
        jr = RP_CR_JOB_LATER;
        goto out;
    }
    if (job.state == RP_CLOUDRUN_JOB_FAILED) {
        *err = RP_ERR_INVALID;
        rp_cloudrun_msg(msg, msg_size, "Cloud Run job %s is not ready: %s",
                        name, job.message);
        goto out;
    }
    if (shared && strcmp(job.image, cr->conf.image)) {
        /* The name is a hash of our shape: someone else's job. */
        *err = RP_ERR_CONFLICT;
        rp_cloudrun_msg(msg, msg_size,
                        "Cloud Run job %s exists with image %s, not %s", name,
                        job.image, cr->conf.image);
        goto out;
    }
    jr = RP_CR_JOB_READY;
    goto out;
call_failed:
    if (rc == RP_CR_FAIL) {
        *err = rp_cloudrun_status_err(call.status);
        rp_cloudrun_msg(msg, msg_size, "%s", call.msg);
        jr = RP_CR_JOB_FAILED;
    } else {
        *delay = rp_cloudrun_call_failed(cr, run, rc, &call);
    }
out:
    free(body);
    rp_http_resp_clear(&call.resp);
    return jr;
}

/* The job to run on: in template mode the shared one, which one run
 * creates while the others wait; else this execution's own. */
static int64_t rp_cloudrun_step_job(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    bool shared = cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE;
    char msg[RP_BACKEND_DETAIL_MAX];
    rp_cloudrun_jobrc_t jr;
    int64_t delay;
    rp_err_t err;

    if (shared) {
        pthread_mutex_lock(&cr->lock);
        if (cr->tjob_state == RP_CR_TJOB_FAILED &&
            rp_time_mono_ms() - cr->tjob_failed_ms >=
                RP_CLOUDRUN_JOB_FAIL_HOLD_MS)
            cr->tjob_state = RP_CR_TJOB_NONE;
        switch (cr->tjob_state) {
        case RP_CR_TJOB_READY:
            pthread_mutex_unlock(&cr->lock);
            run->phase = RP_CR_CLAIM;
            return 0;
        case RP_CR_TJOB_FAILED:
            err = cr->tjob_err;
            rp_cloudrun_msg(msg, sizeof(msg), "%s", cr->tjob_error);
            pthread_mutex_unlock(&cr->lock);
            return rp_cloudrun_fail(run, err, msg);
        case RP_CR_TJOB_CREATING:
            if (cr->tjob_creator != run) {
                pthread_mutex_unlock(&cr->lock);
                return RP_CLOUDRUN_JOB_WAIT_MS;
            }
            break;
        case RP_CR_TJOB_NONE:
            cr->tjob_state = RP_CR_TJOB_CREATING;
            cr->tjob_creator = run;
            run->tjob_creator = true;
            run->job_create_sent = false;
            break;
        }
        pthread_mutex_unlock(&cr->lock);
    }
    jr = rp_cloudrun_ensure_job(
        cr, run, run->job_name, shared ? cr->tjob_id : run->job_id,
        shared ? &cr->tjob_env : &run->env,
        shared ? cr->conf.job_timeout_s
               : run->timeout_s + cr->conf.timeout_margin_s,
        shared, &delay, &err, msg, sizeof(msg));
    if (jr == RP_CR_JOB_LATER)
        return delay;
    if (jr == RP_CR_JOB_READY) {
        if (shared) {
            pthread_mutex_lock(&cr->lock);
            cr->tjob_state = RP_CR_TJOB_READY;
            cr->tjob_creator = NULL;
            pthread_mutex_unlock(&cr->lock);
            run->tjob_creator = false;
            rp_log(RP_LOG_INFO, "cloudrun_job_ready", run->eid, run->sid,
                   "job %s is ready", run->job_name);
        }
        run->phase = RP_CR_CLAIM;
        return 0;
    }
    if (shared) {
        /* Everyone waiting learns the reason; a later run tries again. */
        pthread_mutex_lock(&cr->lock);
        cr->tjob_state = RP_CR_TJOB_FAILED;
        cr->tjob_creator = NULL;
        cr->tjob_failed_ms = rp_time_mono_ms();
        cr->tjob_err = err;
        rp_cloudrun_msg(cr->tjob_error, sizeof(cr->tjob_error), "%s", msg);
        pthread_mutex_unlock(&cr->lock);
        run->tjob_creator = false;
        rp_log(RP_LOG_ERROR, "cloudrun_job_failed", run->eid, run->sid, "%s",
               msg);
    }
    return rp_cloudrun_fail(run, err, msg);
}

static int64_t rp_cloudrun_step_claim(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    char url[RP_HTTP_URL_MAX], es[RP_CLOUDRUN_ES_MAX], *body = NULL;
    char msg[RP_BACKEND_DETAIL_MAX];
    bool tmpl = cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE;
    rp_cloudrun_call_t call;
    rp_cloudrun_rc_t rc;
    rp_state_t *st;
    int64_t ret = 0;
    rp_err_t err;

    memset(&call, 0, sizeof(call));
    if (run->claim_fresh && run->claim_reused &&
        rp_time_wall_ms() + cr->conf.http_timeout_ms >=
            run->att.run_at_ms + cr->conf.settle_ms) {
        /* Held too long to reuse claim n: another owner may have stopped
         * looking for its execution by the time this run would land.
         * Nothing was started for it (429), so claim n+1 follows. */
        run->claim_fresh = run->claim_reused = false;
    }
    if (!run->claim_fresh) {
        /* Every jobs.run is preceded by a claim of its own, the next
         * number, create-only: of two owners, only one makes it and runs.
         * A new object each time, never a rewrite of one name. */
        st = cr->state;
        if (run->att.n >= RP_CLOUDRUN_ATTEMPTS_MAX)
            return rp_cloudrun_fail(run, RP_ERR_UNAVAILABLE,
                                    "jobs.run was claimed too many times "
                                    "without an execution to show for it");
        memcpy(run->att.job, run->job_name, sizeof(run->att.job));
        if (!run->att.created_ms)
            run->att.created_ms = rp_time_wall_ms();
        run->att.n++;
        run->att.run_at_ms = rp_time_wall_ms();
        err = rp_cloudrun_put_claim(cr, run, st, es, sizeof(es));
        if (err == RP_ERR_EXISTS) {
            run->phase = RP_CR_ATTEMPT; /* someone else did: decide again */
            return 0;
        }
        if (err)
            run->att.n--; /* not made (a retriable error retries it) */
        if (err) {
            rp_cloudrun_msg(msg, sizeof(msg), "claiming the run: %s", es);
            return rp_err_retriable(err) ? rp_cloudrun_backoff(cr, run, msg)
                                         : rp_cloudrun_fail(run, err, msg);
        }
        run->claim_fresh = true;
        run->claim_reused = false;
        run->run_refused = false;
    }
    if (!(body = rp_cloudrun_run_body(
              tmpl ? &run->env : NULL,
              tmpl ? run->timeout_s + cr->conf.timeout_margin_s : 0)) ||
        !rp_cloudrun_url(cr, url, sizeof(url), run->job_name, ":run")) {
        ret = rp_cloudrun_fail(run, RP_ERR_NOMEM, "building jobs.run failed");
        goto out;
    }
    /* A fresh connection: libcurl silently re-sends a request whose reused
     * connection died before any answer, which for jobs.run could start a
     * second execution. On a new connection it reports the loss instead,
     * and the lost reply is handled below, by looking before running. */
    call.fresh_connection = true;
    run->run_sent_ms = rp_time_wall_ms();
    rc = rp_cloudrun_api(cr, "jobs.run", "POST", url, body, &call);
    if (rc == RP_CR_WAIT || rc == RP_CR_STOP) {
        ret = rp_cloudrun_call_failed(cr, run, rc, &call); /* nothing sent */
        goto out;
    }
    run->claim_fresh = false;
    /* Only a 4xx (429 included: sent before acting) proves that nothing
     * was started. A 5xx may come after the execution was created (504
     * DEADLINE_EXCEEDED "may be returned even if the operation has
     * completed successfully", google/rpc/code.proto), and a lost reply
     * says nothing: both are "maybe started". */
    run->run_refused = call.status >= 400 && call.status < 500;
    if (rc == RP_CR_OK &&
        rp_cloudrun_run_reply(call.resp.body.data, call.resp.body.len,
                              run->exec_name, sizeof(run->exec_name), es,
                              sizeof(es)) == RP_OK) {
        rp_cloudrun_ok(run);
        rp_log(RP_LOG_INFO, "cloudrun_run", run->eid, run->sid,
               "execution %s started", run->exec_name);
        /* Steady state (fresh) skips the name record: a new owner finds
         * the execution by listing, and a detach writes it
         * (docs/cloudrun.md, "Call budget"). */
        if (!run->fresh)
            rp_cloudrun_record_name(cr, run);
        rp_cloudrun_arm_poll(cr, run);
        ret = run->poll_ms;
        goto out;
    }
    if (rc == RP_CR_OK) {
        /* Answered but unreadable: an execution may exist; look for it. */
        rp_log(RP_LOG_WARN, "cloudrun_run_unreadable", run->eid, run->sid,
               "%s", es);
        run->phase = RP_CR_FIND;
        ret = rp_cloudrun_backoff(cr, run, es);
        goto out;
    }
    if (rc == RP_CR_RETRY && call.status == 429) {
        /* A 429 is sent before Google acts: nothing started, and claim n
         * still stands. Retry jobs.run on it after the backoff (the runs
         * family is held meanwhile) without a list or a new claim, as
         * long as the retry lands before a new owner of claim n would
         * stop looking for its execution (settle_ms after run_at_ms). */
        ret = rp_cloudrun_backoff(cr, run, call.msg);
        if (!run->have_done &&
            rp_time_wall_ms() + ret + cr->conf.http_timeout_ms <
                run->att.run_at_ms + cr->conf.settle_ms) {
            run->claim_fresh = run->claim_reused = true;
            goto out;
        }
        if (!run->have_done)
            run->phase = RP_CR_FIND;
        goto out;
    }
    if (rc == RP_CR_RETRY) {
        /* Maybe it ran (5xx after the fact, or the answer was lost):
         * never a blind second run: FIND waits settle_ms after the claim
         * and lists again before claim n+1 (a 429 lists once, at once). */
        run->phase = RP_CR_FIND;
        ret = rp_cloudrun_backoff(cr, run, call.msg);
        goto out;
    }
    if (rc == RP_CR_FAIL && call.status == 404 &&
        run->job_404s++ < RP_CLOUDRUN_JOB_404_MAX) {
        /* The job is gone (deleted by hand?): make it again and run. */
        rp_log(RP_LOG_WARN, "cloudrun_job_missing", run->eid, run->sid, "%s",
               call.msg);
        if (tmpl) {
            pthread_mutex_lock(&cr->lock);
            if (cr->tjob_state == RP_CR_TJOB_READY)
                cr->tjob_state = RP_CR_TJOB_NONE;
            pthread_mutex_unlock(&cr->lock);
        }
        run->job_create_sent = false;
        run->phase = RP_CR_JOB;
        goto out;
    }
    ret = rp_cloudrun_call_failed(cr, run, rc, &call);
out:
    free(body);
    rp_http_resp_clear(&call.resp);
    return ret;
}

static int64_t rp_cloudrun_step_find(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                     bool cancel)
{
    char url[RP_HTTP_URL_MAX], found[RP_CLOUDRUN_NAME_MAX], es[RP_CLOUDRUN_ES_MAX];
    char token[RP_CLOUDRUN_PAGE_TOKEN_MAX];
    const char *job = run->att.job[0] ? run->att.job : run->job_name;
    rp_cloudrun_call_t call;
    rp_cloudrun_rc_t rc;
    int64_t now_wall, since, ret = 0;
    bool older = false;

    memset(&call, 0, sizeof(call));
    found[0] = '\0';
    /* Resume where a token wait stopped the walk: restarting from the first
     * page could never get through a list longer than the bucket refills. */
    memcpy(token, run->list_token, sizeof(token));
    for (int page = run->list_page; page < RP_CLOUDRUN_LIST_PAGES_MAX; page++) {
        if (!rp_cloudrun_list_url(cr, url, sizeof(url), job,
                                  RP_CLOUDRUN_LIST_PAGE, token))
            break;
        rc = rp_cloudrun_api(cr, "executions.list", "GET", url, NULL, &call);
        if (rc == RP_CR_WAIT) {
            run->list_page = page;
            memcpy(run->list_token, token, sizeof(run->list_token));
            ret = call.wait_ms;
            goto wait;
        }
        if (rc == RP_CR_FAIL && call.status == 404)
            break; /* no job, so no execution */
        if (rc != RP_CR_OK) {
            ret = rp_cloudrun_call_failed(cr, run, rc, &call);
            goto out;
        }
        if (rp_cloudrun_find_in_list(call.resp.body.data, call.resp.body.len,
                                     run->eid,
                                     run->att.created_ms
                                         ? run->att.created_ms -
                                               RP_CLOUDRUN_SKEW_MS
                                         : 0,
                                     found, sizeof(found), token,
                                     sizeof(token), &older, es, sizeof(es))) {
            ret = rp_cloudrun_backoff(cr, run, es);
            goto out;
        }
        if (found[0] || older || !token[0])
            break;
    }
    rp_cloudrun_ok(run);
    if (found[0]) {
        memcpy(run->exec_name, found, sizeof(run->exec_name));
        rp_log(RP_LOG_INFO, "cloudrun_reattach", run->eid, run->sid,
               "found %s: re-attaching (not running again)", found);
        if (!run->att.execution[0])
            rp_cloudrun_record_name(cr, run);
        rp_cloudrun_arm_poll(cr, run);
        goto out;
    }
    /* None yet. A jobs.run still in flight (or answered 5xx, or whose
     * reply was lost) may yet show one: wait settle_ms after the claim and
     * look again — at once only when our own call was the last claim and
     * it was refused with a 4xx. */
    now_wall = rp_time_wall_ms();
    since = run->att.run_at_ms > run->att.created_ms ? run->att.run_at_ms
                                                     : run->att.created_ms;
    /* Our own jobs.run may have gone out well after the claim (its write
     * retried through Storage faults): what it made may be listed only
     * settle_ms after the call, not after the claim. */
    if (run->att.n == run->my_claim_n && run->run_sent_ms > since)
        since = run->run_sent_ms;
    /* Another owner's claim: when it sent its jobs.run we cannot know,
     * only that it was before we took the claim over (it had stopped, or
     * been stopped, by then), so that counts too. An old claim without an
     * execution therefore still waits settle_ms before claim n+1: else a
     * late jobs.run of the previous owner, in flight at the handover,
     * could land beside ours. */
    if (!rp_cloudrun_claim_is_mine(run) &&
        run->att.n == run->seen_claim_n && run->seen_claim_ms > since)
        since = run->seen_claim_ms;
    if (!(run->run_refused && run->att.n == run->my_claim_n) &&
        now_wall - since < cr->conf.settle_ms) {
        ret = cr->conf.settle_ms - (now_wall - since);
        if (ret < 50)
            ret = 50;
        goto out;
    }
    if (cancel) {
        rp_cloudrun_set_done(run, RP_OK, true, -1,
                             "cancelled before it started");
        ret = rp_cloudrun_end(run);
        goto out;
    }
    rp_log(RP_LOG_INFO, "cloudrun_not_found", run->eid, run->sid,
           "no execution of %s has EXECUTION_ID %s: running it", job, run->eid);
    run->phase = RP_CR_JOB;
out:
    run->list_page = 0;
    run->list_token[0] = '\0';
wait:
    rp_http_resp_clear(&call.resp);
    return ret;
}

/* What an observation of the execution (a get, or a sweep's page) means
 * for run: its end, or the delay before the next look. */
static int64_t rp_cloudrun_on_exec(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                   const rp_cloudrun_exec_t *ex, bool cancel,
                                   int64_t now, bool watched)
{
    /* Ours stopped it: past its timeout (self_cancel), or never started
     * within queue_max_s (queue_cancel: not a timeout, the command never
     * ran). */
    rp_err_t stop_err = run->queue_cancel  ? RP_ERR_UNAVAILABLE
                        : run->self_cancel ? RP_ERR_TIMEOUT
                                           : RP_OK;
    const char *why = run->queue_cancel    ? " (it never started)"
                      : run->self_cancel   ? " (past its timeout)"
                                           : "";
    int64_t ret, dl;

    if (ex->start_ms && !run->started_mono_ms)
        rp_cloudrun_mark_started(cr, run, ex->start_ms, now);
    switch (ex->outcome) {
    case RP_CLOUDRUN_RUNNING:
        dl = rp_cloudrun_deadline(run);
        if (!run->cancel_sent && now >= dl) {
            run->queue_cancel = !run->started_mono_ms;
            if (run->queue_cancel)
                rp_log(RP_LOG_WARN, "cloudrun_queued_too_long", run->eid,
                       run->sid,
                       "%s has not started %d s after jobs.run: cancelling",
                       run->exec_name, cr->conf.queue_max_s);
            else
                rp_log(RP_LOG_WARN, "cloudrun_overdue", run->eid, run->sid,
                       "%s still runs %d s past its timeout: cancelling",
                       run->exec_name, cr->conf.cancel_after_s);
            run->self_cancel = true;
            return 0;
        }
        if (run->cancel_sent && now >= dl) {
            rp_cloudrun_set_done(run, stop_err, cancel, -1,
                                 "execution %s did not end %d s after "
                                 "being cancelled%s",
                                 run->exec_name,
                                 RP_CLOUDRUN_CANCEL_WAIT_MS / 1000, why);
            return rp_cloudrun_end(run);
        }
        if (watched)
            return rp_cloudrun_watch_delay(cr, run, now);
        ret = run->poll_ms;
        if (!run->cancel_sent)
            run->poll_ms = rp_cloudrun_next_poll(cr, run->poll_ms);
        if (dl - now < ret)
            ret = dl - now;
        return ret > 1 ? ret : 1;
    case RP_CLOUDRUN_SUCCEEDED:
        rp_cloudrun_set_done(run, RP_OK, cancel, 0, "execution %s succeeded",
                             run->exec_name);
        break;
    case RP_CLOUDRUN_FAILED:
        /* The task failed: the executor's record (if any) says more. */
        rp_cloudrun_set_done(run, stop_err, cancel, 1,
                             "execution %s failed%s: %s", run->exec_name, why,
                             ex->message);
        break;
    case RP_CLOUDRUN_CANCELLED:
        rp_cloudrun_set_done(run,
                             cancel ? RP_OK
                             : run->self_cancel ? stop_err
                                                : RP_ERR_CANCELLED,
                             cancel, -1, "execution %s was cancelled%s",
                             run->exec_name,
                             cancel ? ""
                             : run->self_cancel ? why
                                                : " outside runpool");
        break;
    case RP_CLOUDRUN_DELETED:
        rp_cloudrun_set_done(run, RP_ERR_NOT_FOUND, cancel, -1,
                             "execution %s was deleted", run->exec_name);
        break;
    }
    return rp_cloudrun_end(run);
}

static int64_t rp_cloudrun_step_poll(rp_cloudrun_t *cr, rp_backend_run_t *run,
                                     bool cancel)
{
    char url[RP_HTTP_URL_MAX], es[RP_CLOUDRUN_ES_MAX];
    rp_cloudrun_call_t call;
    rp_cloudrun_rc_t rc;
    rp_cloudrun_exec_t ex;
    int64_t now = rp_time_mono_ms(), ret = 0, last = 0;
    bool watched, have = false, straggling = false;

    memset(&call, 0, sizeof(call));
    if ((cancel || run->self_cancel) && !run->cancel_sent) {
        if (!rp_cloudrun_url(cr, url, sizeof(url), run->exec_name, ":cancel"))
            return rp_cloudrun_fail(run, RP_ERR_INVALID, "name too long");
        /* A cancel never waits behind the bucket: it ends spending. */
        call.unmetered = true;
        rc = rp_cloudrun_api(cr, "executions.cancel", "POST", url, "{}", &call);
        call.unmetered = false;
        if (rc != RP_CR_OK && rc != RP_CR_FAIL) {
            ret = rp_cloudrun_call_failed(cr, run, rc, &call);
            goto out;
        }
        /* 400 FAILED_PRECONDITION (already over), 404: the poll tells. */
        if (rc == RP_CR_FAIL && call.status != 400 && call.status != 404)
            rp_log(RP_LOG_WARN, "cloudrun_cancel_failed", run->eid, run->sid,
                   "%s", call.msg);
        else
            rp_log(RP_LOG_INFO, "cloudrun_cancel", run->eid, run->sid,
                   "cancelling %s%s", run->exec_name,
                   run->queue_cancel  ? " (it never started)"
                   : run->self_cancel ? " (past its timeout)"
                                      : "");
        run->cancel_sent = true;
        run->cancel_sent_ms = now;
        run->poll_ms = cr->conf.poll_min_ms;
        rp_cloudrun_ok(run);
        rp_http_resp_clear(&call.resp); /* the paths below may return */
    }
    /* Watched by the sweeps: their news, if any; a get of our own only
     * when no sweep has seen it for straggle_ms (pruned, too deep, lagging
     * behind, or the sweeps cannot list), and then at most every poll_ms
     * (doubling). */
    pthread_mutex_lock(&cr->lock);
    watched = run->watched;
    if (watched) {
        if ((have = run->w_have))
            ex = run->w_ex;
        run->w_have = false;
        last = run->w_seen_ms > run->w_since_ms ? run->w_seen_ms
                                                : run->w_since_ms;
        straggling = now - last >= cr->straggle_ms &&
                     now >= run->w_next_get_ms;
    }
    pthread_mutex_unlock(&cr->lock);
    if (have) {
        run->seen = true;
        return rp_cloudrun_on_exec(cr, run, &ex, cancel, now, true);
    }
    if (watched && !straggling) {
        /* Seen running lately: only the deadlines can have moved. */
        rp_cloudrun_exec_t running = {.outcome = RP_CLOUDRUN_RUNNING};

        return rp_cloudrun_on_exec(cr, run, &running, cancel, now, true);
    }
    if (!rp_cloudrun_url(cr, url, sizeof(url), run->exec_name,
                         "?prettyPrint=false&fields=" RP_CLOUDRUN_EXEC_FIELDS))
        return rp_cloudrun_fail(run, RP_ERR_INVALID, "name too long");
    rc = rp_cloudrun_api(cr, "executions.get", "GET", url, NULL, &call);
    if (watched && rc != RP_CR_WAIT && rc != RP_CR_STOP) {
        /* A straggler: its next get not before poll_ms (doubling), and
         * the sweeper does not kick it before then either. */
        pthread_mutex_lock(&cr->lock);
        cr->counters[RP_CR_CNT_STRAGGLER_GETS]++;
        run->w_next_get_ms = now + run->poll_ms;
        pthread_mutex_unlock(&cr->lock);
    }
    if (rc == RP_CR_FAIL && call.status == 404 && !run->seen &&
        now - run->poll_since_ms < RP_CLOUDRUN_NEW_404_MS) {
        /* Just made, never seen yet: a read lagging behind the write is
         * not a deletion. */
        ret = rp_cloudrun_backoff(cr, run, call.msg);
        goto out;
    }
    if (rc == RP_CR_FAIL && call.status == 404) {
        rp_cloudrun_set_done(run, RP_ERR_NOT_FOUND, cancel, -1,
                             "execution %s no longer exists (deleted)",
                             run->exec_name);
        ret = rp_cloudrun_end(run);
        goto out;
    }
    if (rc != RP_CR_OK) {
        ret = rp_cloudrun_call_failed(cr, run, rc, &call);
        goto out;
    }
    rp_cloudrun_ok(run);
    run->seen = true;
    if (rp_cloudrun_parse_execution(call.resp.body.data, call.resp.body.len,
                                    &ex, es, sizeof(es))) {
        ret = rp_cloudrun_backoff(cr, run, es);
        goto out;
    }
    ret = rp_cloudrun_on_exec(cr, run, &ex, cancel, now, false);
    if (watched && ret != RP_CLOUDRUN_DONE && ret > 0 &&
        ex.outcome == RP_CLOUDRUN_RUNNING) {
        /* Still watched: the sweeps may find it again meanwhile. */
        pthread_mutex_lock(&cr->lock);
        run->w_next_get_ms = now + ret;
        pthread_mutex_unlock(&cr->lock);
    }
out:
    rp_http_resp_clear(&call.resp);
    return ret;
}

static int64_t rp_cloudrun_step_delete(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    char url[RP_HTTP_URL_MAX];
    rp_cloudrun_call_t call;
    rp_cloudrun_rc_t rc;
    int64_t ret = RP_CLOUDRUN_DONE;

    memset(&call, 0, sizeof(call));
    if (!rp_cloudrun_url(cr, url, sizeof(url), run->job_name, ""))
        return RP_CLOUDRUN_DONE;
    rc = rp_cloudrun_api(cr, "jobs.delete", "DELETE", url, NULL, &call);
    if (rc == RP_CR_STOP) {
        ret = 0;
    } else if (rc == RP_CR_WAIT) {
        ret = call.wait_ms;
    } else if (rc == RP_CR_RETRY &&
               ++run->delete_tries < RP_CLOUDRUN_DELETE_TRIES) {
        ret = rp_http_retry_delay_ms(run->delete_tries, cr->conf.retry_base_ms,
                                     cr->conf.retry_cap_ms);
    } else if (rc != RP_CR_OK && call.status != 404) {
        rp_log(RP_LOG_WARN, "cloudrun_job_delete_failed", run->eid, run->sid,
               "job %s left behind: %s", run->job_name, call.msg);
    } else {
        rp_log(RP_LOG_INFO, "cloudrun_job_deleted", run->eid, run->sid,
               "job %s deleted", run->job_name);
    }
    rp_http_resp_clear(&call.resp);
    return ret;
}

/* One step of run; the delay until its next one, or RP_CLOUDRUN_DONE with
 * run->done set. */
static int64_t rp_cloudrun_step(rp_cloudrun_t *cr, rp_backend_run_t *run)
{
    bool cancel, detach;

    pthread_mutex_lock(&cr->lock);
    cancel = run->cancel_req;
    detach = run->detach_req;
    pthread_mutex_unlock(&cr->lock);
    if (detach && run->phase != RP_CR_DELETE) {
        /* Keep it running in Cloud Run (and its per-execution job): the
         * next owner re-attaches. An outcome already known is reported.
         * Hand the name over, if steady state skipped it, so the next
         * owner polls it without listing. */
        if (!run->have_done && run->exec_name[0] && !run->name_recorded &&
            run->att.n > 0 && run->att.n == run->my_claim_n)
            rp_cloudrun_record_name(cr, run);
        if (!run->have_done)
            rp_cloudrun_set_done(run, RP_OK, true, -1,
                                 "detached; %s goes on in Cloud Run for the "
                                 "next owner",
                                 run->exec_name[0] ? run->exec_name
                                                   : "the execution");
        return RP_CLOUDRUN_DONE;
    }
    if (cancel && !run->exec_name[0] &&
        (run->phase == RP_CR_PREPARE || run->phase == RP_CR_ATTEMPT ||
         run->phase == RP_CR_JOB || run->phase == RP_CR_CLAIM)) {
        rp_cloudrun_set_done(run, RP_OK, true, -1,
                             "cancelled before it started");
        return rp_cloudrun_end(run);
    }
    switch (run->phase) {
    case RP_CR_PREPARE: return rp_cloudrun_step_prepare(cr, run);
    case RP_CR_ATTEMPT: return rp_cloudrun_step_attempt(cr, run);
    case RP_CR_JOB: return rp_cloudrun_step_job(cr, run);
    case RP_CR_CLAIM: return rp_cloudrun_step_claim(cr, run);
    case RP_CR_FIND: return rp_cloudrun_step_find(cr, run, cancel);
    case RP_CR_POLL: return rp_cloudrun_step_poll(cr, run, cancel);
    case RP_CR_DELETE: return rp_cloudrun_step_delete(cr, run);
    }
    return rp_cloudrun_fail(run, RP_ERR_INTERNAL, "bad phase");
}

/* ------------------------------------------------------------------ */
/* Sweeps: one executions.list walk sees every watched execution        */

typedef struct rp_cloudrun_sweep {
    rp_cloudrun_t *cr;
    int64_t now;
    size_t seen; /* watched executions met on this pass */
} rp_cloudrun_sweep_t;

/* One execution of a page: news for the run watching it, if any. */
static int rp_cloudrun_sweep_cb(void *opaque, const char *name,
                                const rp_cloudrun_exec_t *ex)
{
    rp_cloudrun_sweep_t *sw = opaque;
    rp_cloudrun_t *cr = sw->cr;
    rp_backend_run_t *run;

    pthread_mutex_lock(&cr->lock);
    if ((run = rp_cloudrun_watch_find(cr, name)) && !run->reported) {
        if (run->w_seen_ms < sw->now)
            sw->seen++;
        run->w_seen_ms = sw->now;
        if (ex->create_ms)
            run->w_created_ms = ex->create_ms;
        if (ex->outcome != RP_CLOUDRUN_RUNNING ||
            (ex->start_ms && !run->w_start_seen)) {
            run->w_start_seen = run->w_start_seen || ex->start_ms;
            run->w_ex = *ex;
            run->w_have = true;
            if (ex->outcome != RP_CLOUDRUN_RUNNING)
                cr->counters[RP_CR_CNT_DONE_BY_SWEEP]++;
            rp_cloudrun_kick_locked(cr, run, RP_CLOUDRUN_DUE_FIRST);
        }
    }
    pthread_mutex_unlock(&cr->lock);
    return 0;
}

/* The sweeper thread: while anything is watched, one sweep every
 * sweep_ms: executions.list of the template job, newest first, pages of
 * up to RP_CLOUDRUN_SWEEP_PAGE_MAX, until every watched execution was
 * seen, the list ends, or it is past the oldest one watched; at most
 * sweep_pages pages a sweep (a longer walk resumes at the next sweep).
 * After a whole pass, runs no sweep has seen for straggle_ms are kicked
 * to look for themselves (executions.get). Calls: reads family. */
static void *rp_cloudrun_sweeper(void *opaque)
{
    rp_cloudrun_t *cr = opaque;
    char url[RP_HTTP_URL_MAX], es[RP_CLOUDRUN_ES_MAX];
    char token[RP_CLOUDRUN_PAGE_TOKEN_MAX];
    rp_cloudrun_sweep_t sw = {.cr = cr};
    rp_cloudrun_call_t call;
    int64_t next_ms = 0, oldest = 0, last_create;
    int page_size = RP_CLOUDRUN_SWEEP_PAGE_MIN, fails = 0, n;
    size_t nwatch = 0;
    bool in_pass = false;

    memset(&call, 0, sizeof(call));
    token[0] = '\0';
    pthread_mutex_lock(&cr->lock);
    while (!cr->stopping) {
        int64_t now = rp_time_mono_ms(), t0;
        bool done = false, failed = false;
        rp_cloudrun_rc_t rc;
        rp_list_t *l;

        if (!cr->nwatch) {
            in_pass = false;
            token[0] = '\0';
            pthread_cond_wait(&cr->sweep_cond, &cr->lock);
            continue;
        }
        if (now < next_ms) {
            rp_cloudrun_wait_until(cr, &cr->sweep_cond, next_ms);
            continue;
        }
        t0 = now;
        if (!in_pass) {
            /* A new pass from the newest: who is watched, the oldest. */
            in_pass = true;
            token[0] = '\0';
            sw.seen = 0;
            sw.now = now;
            nwatch = cr->nwatch;
            oldest = INT64_MAX;
            for (l = rp_list_first(&cr->watch_list); l;
                 l = l->next == &cr->watch_list ? NULL : l->next) {
                rp_backend_run_t *r = RP_LIST_ENTRY(l, rp_backend_run_t, wlink);

                if (r->w_created_ms < oldest)
                    oldest = r->w_created_ms;
            }
            page_size = (int)(nwatch + nwatch / 4 + RP_CLOUDRUN_SWEEP_PAGE_MIN);
            if (page_size > RP_CLOUDRUN_SWEEP_PAGE_MAX)
                page_size = RP_CLOUDRUN_SWEEP_PAGE_MAX;
        }
        cr->counters[RP_CR_CNT_SWEEPS]++;
        pthread_mutex_unlock(&cr->lock);

        for (int page = 0; page < cr->conf.sweep_pages && !done; page++) {
            if (!rp_cloudrun_list_url(cr, url, sizeof(url), cr->tjob_name,
                                      page_size, token)) {
                done = true;
                break;
            }
            rc = rp_cloudrun_api(cr, "executions.list", "GET", url, NULL, &call);
            if (rc == RP_CR_STOP)
                break;
            if (rc == RP_CR_WAIT) {
                /* No token (or the reads are held after a 429): this
                 * thread may wait, it holds no run. */
                pthread_mutex_lock(&cr->lock);
                if (!cr->stopping)
                    rp_cloudrun_wait_until(cr, &cr->sweep_cond,
                                           rp_time_mono_ms() + call.wait_ms);
                pthread_mutex_unlock(&cr->lock);
                page--;
                continue;
            }
            if (rc != RP_CR_OK) {
                /* 404: no job yet (or deleted): nothing to see. Else a
                 * refusal or a retriable failure: try again later; the
                 * runs' own gets cover the meantime. */
                if (rc == RP_CR_FAIL && call.status != 404 && fails == 0)
                    rp_log(RP_LOG_WARN, "cloudrun_sweep_failed", NULL, NULL,
                           "%s", call.msg);
                failed = true;
                break;
            }
            pthread_mutex_lock(&cr->lock);
            cr->counters[RP_CR_CNT_SWEEP_PAGES]++;
            pthread_mutex_unlock(&cr->lock);
            if (rp_cloudrun_parse_page(call.resp.body.data, call.resp.body.len,
                                       rp_cloudrun_sweep_cb, &sw, token,
                                       sizeof(token), &last_create, &n, es,
                                       sizeof(es))) {
                rp_log(RP_LOG_WARN, "cloudrun_sweep_failed", NULL, NULL,
                       "executions.list of %s: %s", cr->tjob_name, es);
                failed = true;
                break;
            }
            if (sw.seen >= nwatch || !token[0] ||
                (last_create && oldest != INT64_MAX &&
                 last_create < oldest - RP_CLOUDRUN_SWEEP_SLACK_MS))
                done = true;
        }
        rp_http_resp_clear(&call.resp);

        pthread_mutex_lock(&cr->lock);
        now = rp_time_mono_ms();
        if (failed) {
            fails++;
            in_pass = false;
            next_ms = now + rp_http_retry_delay_ms(fails, cr->conf.retry_base_ms,
                                                   cr->conf.retry_cap_ms);
            if (next_ms < t0 + cr->conf.sweep_ms)
                next_ms = t0 + cr->conf.sweep_ms;
            continue;
        }
        fails = 0;
        next_ms = t0 + cr->conf.sweep_ms;
        if (!done)
            continue; /* the pass goes on at the next sweep */
        in_pass = false;
        /* Watched but not seen lately: stragglers, each at its own pace. */
        for (l = rp_list_first(&cr->watch_list); l;
             l = l->next == &cr->watch_list ? NULL : l->next) {
            rp_backend_run_t *r = RP_LIST_ENTRY(l, rp_backend_run_t, wlink);
            int64_t seen = r->w_seen_ms > r->w_since_ms ? r->w_seen_ms
                                                        : r->w_since_ms;

            /* Its get sets w_next_get_ms, so a kick already due is not
             * repeated (kick_locked moves only a later timer). */
            if (now - seen >= cr->straggle_ms && now >= r->w_next_get_ms)
                rp_cloudrun_kick_locked(cr, r, now);
        }
    }
    pthread_mutex_unlock(&cr->lock);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Reporting and the pool                                              */

static void rp_cloudrun_free_run(rp_backend_run_t *run)
{
    if (!run)
        return;
    rp_env_clear(&run->env);
    free(run->request_doc);
    free(run);
}

/* Unlink run and call the worker back, once. Not with cr->lock held. */
static void rp_cloudrun_report(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_cloudrun_t *cr = be->impl;
    bool free_it;

    pthread_mutex_lock(&cr->lock);
    if (cr->tjob_creator == run) {
        /* Another run takes the job over (409 then, if it was made). */
        cr->tjob_creator = NULL;
        if (cr->tjob_state == RP_CR_TJOB_CREATING)
            cr->tjob_state = RP_CR_TJOB_NONE;
    }
    rp_timerq_remove(&cr->timers, &run->timer);
    rp_list_unlink(&run->link);
    rp_cloudrun_watch_remove(cr, run);
    cr->nruns--;
    pthread_mutex_unlock(&cr->lock);

    rp_log(run->done.err ? RP_LOG_WARN : RP_LOG_INFO, "cloudrun_done", run->eid,
           run->sid, "err=%s cancelled=%d: %s", rp_err_code(run->done.err),
           run->done.cancelled, run->done.detail);
    be->done_cb(run->job, &run->done, be->done_opaque);

    pthread_mutex_lock(&cr->lock);
    run->reported = true;
    free_it = run->released;
    pthread_mutex_unlock(&cr->lock);
    if (free_it)
        rp_cloudrun_free_run(run);
}

static void *rp_cloudrun_thread(void *opaque)
{
    rp_backend_t *be = opaque;
    rp_cloudrun_t *cr = be->impl;

    pthread_mutex_lock(&cr->lock);
    while (!cr->stopping) {
        rp_backend_run_t *run;
        rp_timer_t *t, *first;
        int64_t delay, now = rp_time_mono_ms(), due;

        /* Nothing queued, or nothing due and another thread times the
         * queue: wait to be woken. Nothing due and none times it: this
         * thread does, alone, so a due time wakes one thread. */
        first = rp_timerq_peek(&cr->timers);
        if (!first || (first->due_ms > now && cr->timer_until)) {
            cr->pool_idle++;
            pthread_cond_wait(&cr->cond, &cr->lock);
            cr->pool_idle--;
            continue;
        }
        if (first->due_ms > now) {
            cr->timer_until = first->due_ms;
            rp_cloudrun_wait_until(cr, &cr->timer_cond, first->due_ms);
            cr->timer_until = 0;
            continue;
        }
        t = rp_timerq_pop_due(&cr->timers, now);
        run = RP_TIMER_ENTRY(t, rp_backend_run_t, timer);
        run->busy = true;
        run->kick = false;
        rp_cloudrun_pool_wake(cr, now); /* the next step, or its timer */
        pthread_mutex_unlock(&cr->lock);

        delay = rp_cloudrun_step(cr, run);

        pthread_mutex_lock(&cr->lock);
        run->busy = false;
        if (delay == RP_CLOUDRUN_DONE) {
            pthread_mutex_unlock(&cr->lock);
            rp_cloudrun_report(be, run);
            pthread_mutex_lock(&cr->lock);
            continue;
        }
        if (cr->stopping)
            break; /* left off the queue: close() reports it */
        due = rp_time_mono_ms() + (run->kick ? 0 : delay);
        if (rp_timerq_add(&cr->timers, &run->timer, due) != RP_OK) {
            /* No memory for the queue: report rather than lose it. */
            rp_cloudrun_set_done(run, RP_ERR_NOMEM, false, -1,
                                 "out of memory while watching %s",
                                 run->exec_name);
            pthread_mutex_unlock(&cr->lock);
            rp_cloudrun_report(be, run);
            pthread_mutex_lock(&cr->lock);
            continue;
        }
        /* This thread looks at the queue next, so only a timing thread
         * that would wake too late needs a signal. */
        if (cr->timer_until && due < cr->timer_until)
            pthread_cond_signal(&cr->timer_cond);
    }
    pthread_mutex_unlock(&cr->lock);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The interface (main thread)                                         */

/* The template job follows from the state URL (its executors use it). */
static rp_err_t rp_cloudrun_set_state_url(rp_cloudrun_t *cr, const char *url)
{
    rp_err_t err;

    rp_cloudrun_template_job_id(&cr->conf, url, cr->tjob_id,
                                sizeof(cr->tjob_id));
    rp_cloudrun_msg(cr->tjob_name, sizeof(cr->tjob_name), "%s/jobs/%s", cr->parent,
             cr->tjob_id);
    err = rp_env_set(&cr->tjob_env, "RUNPOOL_STATE_URL", url);
    return err;
}

static rp_err_t rp_cloudrun_start_run(rp_backend_t *be,
                                      const rp_jobspec_t *spec, void *job,
                                      bool fresh, rp_backend_run_t **out,
                                      char *errstr, size_t errstr_size)
{
    rp_cloudrun_t *cr = be->impl;
    rp_backend_run_t *run;
    rp_err_t err;

    *out = NULL;
    if (!(run = calloc(1, sizeof(*run))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    /* Building the environment checks the spec like the executor will. */
    if ((err = rp_jobenv_build(spec, &run->env, errstr, errstr_size)))
        goto out;
    /* The command and its env always go through the store, whatever
     * their size: an execution's overrides are readable by anyone with
     * Viewer on the project, and a value is capped at 32 KiB there
     * (rp_jobenv.h). The price is one object write per execution
     * (PREPARE). */
    if ((err = rp_jobenv_request_json(spec, &run->request_doc, errstr,
                                      errstr_size)) ||
        (err = rp_jobenv_use_request_ref(&run->env, spec->execution_id, errstr,
                                         errstr_size)))
        goto out;
    run->job = job;
    run->fresh = fresh;
    memcpy(run->eid, spec->execution_id, sizeof(run->eid));
    memcpy(run->sid, spec->session_id, sizeof(run->sid));
    run->timeout_s = spec->timeout_s;
    run->phase = RP_CR_PREPARE;

    pthread_mutex_lock(&cr->lock);
    if (cr->stopping)
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cloudrun backend is closing");
    else if (cr->nruns >= RP_CLOUDRUN_RUNS_MAX)
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "cloudrun backend: %d executions in flight already",
                      RP_CLOUDRUN_RUNS_MAX);
    else if (strcmp(cr->state->url, spec->state_url))
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cloudrun backend: state URL %s differs from the "
                      "backend's %s",
                      spec->state_url, cr->state->url);
    if (!err) {
        if (cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE) {
            memcpy(run->job_name, cr->tjob_name, sizeof(run->job_name));
        } else {
            rp_cloudrun_execution_job_id(&cr->conf, run->eid, run->job_id,
                                         sizeof(run->job_id));
            rp_cloudrun_msg(run->job_name, sizeof(run->job_name), "%s/jobs/%s",
                     cr->parent, run->job_id);
        }
        if ((err = rp_timerq_add(&cr->timers, &run->timer,
                                 rp_time_mono_ms())))
            rp_errf(errstr, errstr_size, err, "out of memory");
    }
    if (!err) {
        rp_list_push_head(&cr->runs, &run->link);
        cr->nruns++;
        rp_cloudrun_pool_wake(cr, rp_time_mono_ms());
        *out = run;
        run = NULL;
    }
    pthread_mutex_unlock(&cr->lock);
out:
    rp_cloudrun_free_run(run);
    return err;
}

static rp_err_t rp_cloudrun_start(rp_backend_t *be, const rp_jobspec_t *spec,
                                  void *job, rp_backend_run_t **out,
                                  char *errstr, size_t errstr_size)
{
    return rp_cloudrun_start_run(be, spec, job, false, out, errstr,
                                 errstr_size);
}

static rp_err_t rp_cloudrun_start_fresh(rp_backend_t *be,
                                        const rp_jobspec_t *spec, void *job,
                                        rp_backend_run_t **out, char *errstr,
                                        size_t errstr_size)
{
    return rp_cloudrun_start_run(be, spec, job, true, out, errstr,
                                 errstr_size);
}

/* Flag run and make its next step due now. */
static void rp_cloudrun_flag(rp_backend_t *be, rp_backend_run_t *run,
                             bool detach)
{
    rp_cloudrun_t *cr = be->impl;

    if (!run)
        return;
    pthread_mutex_lock(&cr->lock);
    if (!run->reported) {
        if (detach)
            run->detach_req = true;
        else
            run->cancel_req = true;
        if (run->busy) {
            run->kick = true;
        } else if (run->timer.queued) {
            int64_t now = rp_time_mono_ms();

            rp_timerq_add(&cr->timers, &run->timer, now);
            rp_cloudrun_pool_wake(cr, now);
        }
    }
    pthread_mutex_unlock(&cr->lock);
}

static void rp_cloudrun_cancel(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_cloudrun_flag(be, run, false);
}

static void rp_cloudrun_detach(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_cloudrun_flag(be, run, true);
}

static void rp_cloudrun_release(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_cloudrun_t *cr = be->impl;
    bool free_it;

    if (!run)
        return;
    pthread_mutex_lock(&cr->lock);
    run->released = true;
    free_it = run->reported;
    pthread_mutex_unlock(&cr->lock);
    if (free_it)
        rp_cloudrun_free_run(run);
}

static void rp_cloudrun_close(rp_backend_t *be)
{
    rp_cloudrun_t *cr = be->impl;
    rp_backend_run_t *run;
    rp_list_t *l;

    if (!cr)
        return;
    pthread_mutex_lock(&cr->lock);
    cr->stopping = true;
    pthread_cond_broadcast(&cr->cond);
    pthread_cond_broadcast(&cr->timer_cond);
    pthread_cond_broadcast(&cr->sweep_cond);
    pthread_mutex_unlock(&cr->lock);
    for (int i = 0; i < cr->nthreads; i++)
        pthread_join(cr->threads[i], NULL);
    if (cr->sweeper_started)
        pthread_join(cr->sweeper, NULL);
    /* What still runs in Cloud Run stays there: a later start() of the
     * same execution re-attaches to it. */
    while ((l = rp_list_first(&cr->runs))) {
        run = RP_LIST_ENTRY(l, rp_backend_run_t, link);
        bool released = run->released;

        if (!run->have_done)
            rp_cloudrun_set_done(run, RP_OK, true, -1,
                                 "worker stopping; %s left to the next owner",
                                 run->exec_name[0] ? run->exec_name
                                                   : "the execution");
        rp_cloudrun_report(be, run);
        if (!released)
            rp_cloudrun_free_run(run); /* the handle dies with the backend */
    }
    free(cr->threads);
    free(cr->watch);
    rp_timerq_clear(&cr->timers);
    rp_env_clear(&cr->tjob_env);
    pthread_cond_destroy(&cr->cond);
    pthread_cond_destroy(&cr->timer_cond);
    pthread_cond_destroy(&cr->sweep_cond);
    pthread_mutex_destroy(&cr->lock);
    free(cr);
    be->impl = NULL;
}

static bool rp_cloudrun_quota_op(rp_backend_t *be, int i,
                                 rp_backend_quota_t *out)
{
    rp_cloudrun_t *cr = be->impl;
    rp_cloudrun_quota_t *q;

    if (i < 0 || i >= RP_CR_FAM_N)
        return false;
    q = &cr->quota[i];
    pthread_mutex_lock(&cr->lock);
    out->family = rp_cloudrun_family_names[i];
    out->rate = q->rl.rate;
    out->burst = q->rl.burst;
    out->tokens = rp_ratelimit_tokens(&q->rl, rp_time_mono_ms());
    out->calls = q->calls;
    out->throttled = q->throttled;
    out->waits = q->waits;
    pthread_mutex_unlock(&cr->lock);
    return true;
}

static bool rp_cloudrun_counter_op(rp_backend_t *be, int i, const char **name,
                                   uint64_t *value)
{
    rp_cloudrun_t *cr = be->impl;

    if (i < 0 || i >= RP_CR_CNT_N)
        return false;
    pthread_mutex_lock(&cr->lock);
    *name = rp_cloudrun_counter_names[i];
    *value = cr->counters[i];
    pthread_mutex_unlock(&cr->lock);
    return true;
}

static int64_t rp_cloudrun_started_op(rp_backend_t *be, rp_backend_run_t *run)
{
    rp_cloudrun_t *cr = be->impl;
    int64_t t;

    pthread_mutex_lock(&cr->lock);
    t = run->started_pub_ms;
    pthread_mutex_unlock(&cr->lock);
    return t;
}

static const rp_backend_ops_t rp_cloudrun_ops = {
    .name = "cloudrun",
    .quota = rp_cloudrun_quota_op,
    .counter = rp_cloudrun_counter_op,
    .started_ms = rp_cloudrun_started_op,
    .start = rp_cloudrun_start,
    .start_fresh = rp_cloudrun_start_fresh,
    .cancel = rp_cloudrun_cancel,
    .detach = rp_cloudrun_detach,
    .release = rp_cloudrun_release,
    .close = rp_cloudrun_close,
};

static const char *rp_cloudrun_getenv(const char *name, void *opaque)
{
    (void)opaque;
    return getenv(name);
}

/* The executors must reach the store the worker uses: a gs:// store must
 * be in SANDBOX_STATE_BUCKET when that is set. */
static rp_err_t rp_cloudrun_check_state_url(const rp_cloudrun_conf_t *c,
                                            const char *url, char *errstr,
                                            size_t errstr_size)
{
    size_t bl = strlen(c->state_bucket);

    if (bl && !strncmp(url, "gs://", 5) &&
        (strncmp(url + 5, c->state_bucket, bl) ||
         (url[5 + bl] && url[5 + bl] != '/' && url[5 + bl] != '?')))
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "SANDBOX_STATE_BUCKET: %s is not the bucket of the "
                       "state store %s",
                       c->state_bucket, url);
    return RP_OK;
}

rp_err_t rp_backend_cloudrun_init(rp_backend_t *be,
                                  const rp_backend_conf_t *conf, char *errstr,
                                  size_t errstr_size)
{
    rp_cloudrun_t *cr;
    pthread_condattr_t ca;
    char host[128] = "host";
    rp_err_t err;

    if (!(cr = calloc(1, sizeof(*cr))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&cr->lock, NULL);
    rp_timerq_init(&cr->timers);
    rp_list_init(&cr->runs);
    rp_list_init(&cr->watch_list);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cr->cond, &ca);
    pthread_cond_init(&cr->timer_cond, &ca);
    pthread_cond_init(&cr->sweep_cond, &ca);
    pthread_condattr_destroy(&ca);
    be->ops = &rp_cloudrun_ops;
    be->impl = cr;

    if ((err = rp_cloudrun_conf_read(conf->lookup ? conf->lookup
                                                  : rp_cloudrun_getenv,
                                     conf->lookup_opaque, &cr->conf, errstr,
                                     errstr_size)))
        goto out;
    if (!rp_cloudrun_parent(&cr->conf, cr->parent, sizeof(cr->parent))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "GCP_PROJECT_ID/GCP_REGION: too long");
        goto out;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    rp_cloudrun_msg(cr->worker, sizeof(cr->worker), "%s:%ld", host, (long)getpid());
    if (!(cr->state = conf->state)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cloudrun backend: no state store (--state, or "
                      "SANDBOX_STATE_BUCKET)");
        goto out;
    }
    if ((err = rp_cloudrun_check_state_url(&cr->conf, cr->state->url, errstr,
                                           errstr_size)))
        goto out;
    if ((err = rp_cloudrun_set_state_url(cr, cr->state->url))) {
        rp_errf(errstr, errstr_size, err, "out of memory");
        goto out;
    }
    /* An emulator (RUNPOOL_CLOUD_RUN_ENDPOINT) gets no token, as Google's
     * clients do; else the process's credentials. */
    if (!cr->conf.endpoint_set && !(cr->auth = rp_gcp_auth(conf->gcp))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "cloudrun backend: no Google credentials (and no "
                      "RUNPOOL_CLOUD_RUN_ENDPOINT)");
        goto out;
    }
    {
        const int rps[RP_CR_FAM_N] = {cr->conf.runs_rps, cr->conf.reads_rps,
                                      cr->conf.writes_rps};
        const int burst[RP_CR_FAM_N] = {cr->conf.runs_burst,
                                        cr->conf.reads_burst,
                                        cr->conf.writes_burst};
        int64_t now = rp_time_mono_ms();

        for (int i = 0; i < RP_CR_FAM_N; i++)
            rp_ratelimit_init(&cr->quota[i].rl, rps[i], burst[i], now);
        rp_ratelimit_init(&cr->get_rl, cr->conf.get_rps, cr->conf.get_rps,
                          now);
    }
    if (cr->conf.max_rps_set)
        rp_log(RP_LOG_WARN, "cloudrun_deprecated_setting", NULL, NULL,
               "RUNPOOL_CLOUD_RUN_MAX_RPS/_BURST are deprecated: they set "
               "the default of _RUNS_RPS, _READS_RPS and _WRITES_RPS (and "
               "their _BURST), now %d, %d, %d calls/s",
               cr->conf.runs_rps, cr->conf.reads_rps, cr->conf.writes_rps);
    cr->straggle_ms = 4 * cr->conf.sweep_ms;
    if (cr->straggle_ms < RP_CLOUDRUN_STRAGGLE_MIN_MS)
        cr->straggle_ms = RP_CLOUDRUN_STRAGGLE_MIN_MS;
    cr->sweeping = cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE &&
                   cr->conf.sweep_ms > 0;
    if (cr->sweeping) {
        rp_cloudrun_msg(cr->watch_prefix, sizeof(cr->watch_prefix),
                        "%s/executions/", cr->tjob_name);
        if (!(cr->watch = calloc(RP_CLOUDRUN_WATCH_BUCKETS,
                                 sizeof(*cr->watch)))) {
            err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (pthread_create(&cr->sweeper, NULL, rp_cloudrun_sweeper, cr) != 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                          "cloudrun backend: cannot start the sweeper");
            goto out;
        }
        cr->sweeper_started = true;
    }
    if (!(cr->threads = calloc((size_t)cr->conf.threads, sizeof(pthread_t)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (; cr->nthreads < cr->conf.threads; cr->nthreads++) {
        if (pthread_create(&cr->threads[cr->nthreads], NULL,
                           rp_cloudrun_thread, be) != 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                          "cloudrun backend: cannot start threads");
            goto out;
        }
    }
    rp_log(RP_LOG_INFO, "cloudrun_backend", NULL, NULL,
           "project %s region %s image %s, %s mode%s%s, %s, %d threads, "
           "calls/s: runs %d, reads %d (gets %d), writes %d; sweeps every "
           "%d ms",
           cr->conf.project, cr->conf.region, cr->conf.image,
           cr->conf.mode == RP_CLOUDRUN_MODE_TEMPLATE ? "template"
                                                       : "per-execution",
           cr->tjob_id[0] ? " job " : "", cr->tjob_id,
           cr->conf.endpoint_set ? cr->conf.endpoint : "run.googleapis.com",
           cr->conf.threads, cr->conf.runs_rps, cr->conf.reads_rps,
           cr->conf.get_rps, cr->conf.writes_rps,
           cr->sweeping ? cr->conf.sweep_ms : 0);
out:
    if (err)
        rp_cloudrun_close(be);
    return err;
}
