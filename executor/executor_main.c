/* runpool-executor — runs one execution inside a job: a Cloud Run Job
 * container in production, a child process of the worker locally. The
 * job environment (contract/rp_jobenv.h) says what to run; the executor
 *
 *   1. loads sessions/{session_id}/state.json (absent = new session),
 *   2. claims the execution: executions/{execution_id}/claim.json,
 *      create-only, naming this run (rp_claim.h); a claim that is already
 *      there means another run owns the command: exit 3, write nothing,
 *   3. runs the command (from the request document RUNPOOL_REQUEST_REF
 *      names: stdin or the store; COMMAND still works) in the session's
 *      cwd and environment (rp_exec),
 *   4. writes executions/{execution_id}/result.json, create-only: the
 *      result plus the session env after the command. Once the command
 *      has exited this always happens, whatever signal comes later.
 *
 * It never writes session state; the worker is its only writer.
 *
 * Exit status: 0 a result record exists for the execution (written now or
 * before), whatever the command did; 1 the executor itself failed (it
 * still tries to leave a status "error" record); 2 the job environment is
 * missing or malformed (an "error" record is left when the ids and the
 * store are usable); 3 another run had claimed the execution (rp_jobenv.h
 * RP_EXEC_EXIT_*).
 *
 * `runpool-executor --dump-env` writes its environment NUL-separated to
 * stdout: the shell's EXIT trap runs it to capture exported variables.
 *
 * See docs/executor.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rp_buf.h"
#include "rp_claim.h"
#include "rp_codes.h"
#include "rp_err.h"
#include "rp_exec.h"
#include "rp_exec_ws.h"
#include "rp_gcp.h"
#include "rp_jobenv.h"
#include "rp_layout.h"
#include "rp_log.h"
#include "rp_msg.h"
#include "rp_runas.h"
#include "rp_state.h"
#include "rp_time.h"
#include "rp_zygote.h"

/* Exit statuses: rp_jobenv.h, where the backends read them too. */
#define RP_EXECUTOR_EXIT_RECORDED RP_EXEC_EXIT_RECORDED
#define RP_EXECUTOR_EXIT_FAILED RP_EXEC_EXIT_FAILED
#define RP_EXECUTOR_EXIT_CONTRACT RP_EXEC_EXIT_CONTRACT
#define RP_EXECUTOR_EXIT_CLAIMED RP_EXEC_EXIT_CLAIMED
#define RP_EXECUTOR_DEFAULT_PATH \
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define RP_EXECUTOR_ERRSTR_MAX 512
#define RP_EXECUTOR_DUMPER_ENV "RUNPOOL_ENV_DUMPER"

typedef struct rp_main {
    rp_jobspec_t spec;
    rp_state_t *st;
    rp_session_t session;     /* zeroed for a new session */
    uint64_t state_version;   /* of the state read; 0 = none (the record's
                               * state_version) */
    const char *default_cwd;  /* borrowed: spec, $HOME or "/" */
    rp_env_t base;            /* variables we supplied under the session's */
    rp_env_t cmd_env;         /* base + session + COMMAND_ENV */
    char result_key[RP_STATE_KEY_MAX];
    char claim_key[RP_STATE_KEY_MAX];
    uint64_t claim_version; /* of our claim, once made */
    rp_gcp_t *gcp;            /* gs:// context, or NULL */
    rp_runas_t run_as;        /* RUNPOOL_RUN_AS: who runs the command */
    rp_exec_ws_t *ws;         /* the session's workspace, or NULL (off) */
} rp_main_t;

/* Written by the signal handler; rp_exec polls the read end. */
static int rp_main_cancel_pipe[2] = {-1, -1};

static void rp_main_on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (write(rp_main_cancel_pipe[1], &c, 1) < 0) {
        /* Pipe full: a cancellation is already pending. */
    }
    errno = saved;
}

/* SIGTERM (Cloud Run cancelling the task, the worker stopping us) must
 * not orphan the command's process group, which is not ours: turn it into
 * a cancellation that rp_exec handles like a timeout. */
static void rp_main_install_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa;
    sigset_t set;

    signal(SIGPIPE, SIG_IGN); /* a closed stderr must not kill us */
    if (pipe2(rp_main_cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = rp_main_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    /* A parent that blocked them (for its own signalfd) must not make us
     * deaf to them. */
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static const char *rp_main_lookup(const char *name, void *opaque)
{
    (void)opaque;
    return getenv(name);
}

/* The job contract's own variables: never part of a session. */
static bool rp_main_contract_var(const char *name)
{
    static const char *const names[] = {"EXECUTION_ID", "SESSION_ID",
                                        "COMMAND", "TIMEOUT", "COMMAND_ENV"};

    if (!strncmp(name, "RUNPOOL_", 8))
        return true;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

static bool rp_main_is_dir(const char *path)
{
    struct stat st;

    return path && path[0] == '/' && stat(path, &st) == 0 &&
           S_ISDIR(st.st_mode);
}

/* RP_ERR_NOT_FOUND leaves m->session zeroed: a new session. */
static rp_err_t rp_main_load_session(rp_main_t *m, char *errstr,
                                     size_t errstr_size)
{
    char key[RP_STATE_KEY_MAX], msg[RP_EXECUTOR_ERRSTR_MAX];
    rp_buf_t doc;
    rp_err_t err;

    rp_buf_init(&doc, RP_STATE_DOC_MAX);
    rp_layout_session_key(m->spec.session_id, key, sizeof(key));
    err = rp_state_get(m->st, key, &doc, &m->state_version, msg, sizeof(msg));
    if (err == RP_ERR_NOT_FOUND) {
        m->state_version = 0;
        err = RP_OK;
        goto out;
    }
    if (err != RP_OK) {
        rp_errf(errstr, errstr_size, err, "reading %s: %s", key, msg);
        goto out;
    }
    err = rp_session_parse(doc.data, doc.len, &m->session, msg, sizeof(msg));
    if (err != RP_OK) {
        rp_errf(errstr, errstr_size, err, "session state %s is invalid: %s",
                key, msg);
        goto out;
    }
    if (m->session.session_id[0] &&
        strcmp(m->session.session_id, m->spec.session_id) != 0)
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "session state %s belongs to session %s", key,
                      m->session.session_id);
out:
    rp_buf_free(&doc);
    return err;
}

/* The command's environment: a minimal base, the session's variables over
 * it, the request's per-command variables on top. The executor's own
 * environment (the contract, the platform's variables) stays out. */
static rp_err_t rp_main_build_env(rp_main_t *m)
{
    const char *home = getenv("HOME");
    const rp_env_t *layers[] = {&m->base, &m->session.env, &m->spec.env};
    rp_err_t err = RP_OK;

    if (!rp_env_get(&m->session.env, "PATH"))
        err = rp_env_set(&m->base, "PATH", RP_EXECUTOR_DEFAULT_PATH);
    if (err == RP_OK && home && home[0] && !rp_env_get(&m->session.env, "HOME"))
        err = rp_env_set(&m->base, "HOME", home);
    for (size_t l = 0; err == RP_OK && l < 3; l++)
        for (size_t i = 0; err == RP_OK && i < layers[l]->n; i++)
            err = rp_env_set(&m->cmd_env, layers[l]->vars[i].name,
                             layers[l]->vars[i].value);
    return err;
}

/* What the session keeps: the env after the command, except that a
 * per-command or base variable still holding the value we put in goes
 * back to what the session had (or away). A value the command changed
 * itself persists. */
static rp_err_t rp_main_session_env(const rp_main_t *m, const rp_env_t *after,
                                    rp_env_t *out)
{
    rp_err_t err = rp_env_copy(out, after);

    for (size_t i = 0; err == RP_OK && i < m->spec.env.n; i++) {
        const rp_env_var_t *v = &m->spec.env.vars[i];
        const char *now = rp_env_get(out, v->name), *prev;

        if (!now || strcmp(now, v->value) != 0)
            continue;
        prev = rp_env_get(&m->session.env, v->name);
        if (!prev)
            prev = rp_env_get(&m->base, v->name);
        if (prev)
            err = rp_env_set(out, v->name, prev);
        else
            rp_env_unset(out, v->name);
    }
    for (size_t i = 0; err == RP_OK && i < m->base.n; i++) {
        const rp_env_var_t *v = &m->base.vars[i];
        const char *now = rp_env_get(out, v->name);

        if (now && !strcmp(now, v->value))
            rp_env_unset(out, v->name);
    }
    /* Contract names never enter a session, even if the user exported one. */
    for (size_t i = out->n; err == RP_OK && i > 0; i--)
        if (rp_main_contract_var(out->vars[i - 1].name))
            rp_env_unset(out, out->vars[i - 1].name);
    return err;
}

/* Create-only write of the record. RP_ERR_EXISTS is passed up unchanged.
 * An "error" record has no env at all (not an empty one): the session's
 * variables are unknown, not gone. */
static rp_err_t rp_main_put_result(rp_main_t *m, const rp_result_t *res,
                                   char *errstr, size_t errstr_size)
{
    char *json = rp_result_to_json(res, res->has_env);
    rp_err_t err;

    if (!json)
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM,
                       "serialising the result failed");
    err = rp_state_put(m->st, m->result_key, json, strlen(json), 0, NULL,
                       errstr, errstr_size);
    free(json);
    return err;
}

/* Leave a status "error" record explaining why the executor failed. Returns
 * the exit status: an existing record wins (0), else 1. */
static int rp_main_fail(rp_main_t *m, rp_err_t cause, const char *message)
{
    char errstr[RP_EXECUTOR_ERRSTR_MAX] = "";
    rp_result_t res;
    rp_err_t err;

    memset(&res, 0, sizeof(res));
    rp_log(RP_LOG_ERROR, "executor_failed", m->spec.execution_id,
           m->spec.session_id, "%s", message);
    memcpy(res.execution_id, m->spec.execution_id, sizeof(res.execution_id));
    memcpy(res.session_id, m->spec.session_id, sizeof(res.session_id));
    res.status = RP_STATUS_ERROR;
    res.finished_at_ms = rp_time_wall_ms();
    err = rp_result_set_error(&res, rp_code_str(rp_code_of_err(cause)),
                              message);
    if (err == RP_OK)
        err = rp_main_put_result(m, &res, errstr, sizeof(errstr));
    rp_result_clear(&res);
    if (err == RP_ERR_EXISTS) {
        rp_log(RP_LOG_INFO, "result_exists", m->spec.execution_id,
               m->spec.session_id, "a result record exists already; kept it");
        return RP_EXECUTOR_EXIT_RECORDED;
    }
    if (err != RP_OK)
        rp_log(RP_LOG_ERROR, "result_write_failed", m->spec.execution_id,
               m->spec.session_id, "error record not written: %s", errstr);
    return RP_EXECUTOR_EXIT_FAILED;
}

/* A redelivered request must not run its command twice. */
static bool rp_main_result_exists(rp_main_t *m)
{
    char errstr[RP_EXECUTOR_ERRSTR_MAX] = "";
    rp_buf_t doc;
    rp_err_t err;

    rp_buf_init(&doc, RP_RESULT_MAX);
    err = rp_state_get(m->st, m->result_key, &doc, NULL, errstr,
                       sizeof(errstr));
    rp_buf_free(&doc);
    if (err != RP_OK && err != RP_ERR_NOT_FOUND && err != RP_ERR_TOO_LARGE)
        /* The create-only write still protects the record; run. */
        rp_log(RP_LOG_WARN, "result_check_failed", m->spec.execution_id,
               m->spec.session_id, "%s", errstr);
    return err == RP_OK || err == RP_ERR_TOO_LARGE;
}

/* The fence (rp_claim.h): create-only write of a claim naming this run.
 * RP_OK: ours, run the command. RP_ERR_EXISTS: another run's (or an
 * earlier attempt of ours, on Cloud Run), do not run it. A store that
 * answered a lost reply with "exists" is told apart by reading the claim
 * back: the bytes we wrote are ours. Anything else: errstr says. */
static rp_err_t rp_main_claim(rp_main_t *m, char *errstr, size_t errstr_size)
{
    char es[RP_EXECUTOR_ERRSTR_MAX];
    rp_claim_t c;
    rp_buf_t doc;
    char *json = NULL;
    rp_err_t err;

    memset(&c, 0, sizeof(c));
    rp_buf_init(&doc, RP_CLAIM_DOC_MAX);
    memcpy(c.execution_id, m->spec.execution_id, sizeof(c.execution_id));
    c.attempt = m->spec.attempt > 0 ? m->spec.attempt : 1;
    c.claimed_at_ms = rp_time_wall_ms();
    if ((err = rp_claim_self_run(rp_main_lookup, NULL, c.run, c.job, errstr,
                                 errstr_size)))
        goto out;
    if (!(json = rp_claim_to_json(&c))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "claim: no memory");
        goto out;
    }
    rp_claim_key(m->spec.execution_id, m->claim_key, sizeof(m->claim_key));
    err = rp_state_put(m->st, m->claim_key, json, strlen(json), 0,
                       &m->claim_version, errstr, errstr_size);
    if (err != RP_ERR_EXISTS)
        goto out;
    if (rp_state_get(m->st, m->claim_key, &doc, &m->claim_version, es,
                     sizeof(es)) == RP_OK &&
        doc.len == strlen(json) && !memcmp(doc.data, json, doc.len)) {
        err = RP_OK; /* our own write, its reply lost */
        goto out;
    }
    m->claim_version = 0;
    if (rp_claim_parse(doc.data ? doc.data : "", doc.len, &c, es, sizeof(es)) ==
        RP_OK)
        snprintf(errstr, errstr_size, "claimed by %s at %lld (attempt %d)",
                 c.run, (long long)c.claimed_at_ms, c.attempt);
    else
        snprintf(errstr, errstr_size, "claimed (claim unreadable)");
out:
    free(json);
    rp_buf_free(&doc);
    return err;
}

/* The command did not start after all (cancelled before the spawn): give
 * the claim back, so the execution is not taken for an interrupted one. */
static void rp_main_unclaim(rp_main_t *m)
{
    char es[RP_EXECUTOR_ERRSTR_MAX];

    if (!m->claim_version)
        return;
    if (rp_state_delete(m->st, m->claim_key, m->claim_version, es,
                        sizeof(es)) != RP_OK)
        rp_log(RP_LOG_WARN, "unclaim_failed", m->spec.execution_id,
               m->spec.session_id, "%s", es);
    m->claim_version = 0;
}

/* Move the outcome into a result record (the outcome loses ownership). */
static rp_err_t rp_main_fill_result(rp_main_t *m, rp_exec_outcome_t *oc,
                                    rp_result_t *res)
{
    memcpy(res->execution_id, m->spec.execution_id, sizeof(res->execution_id));
    memcpy(res->session_id, m->spec.session_id, sizeof(res->session_id));
    res->status = oc->status;
    res->has_exit_code = oc->has_exit_code;
    res->exit_code = oc->exit_code;
    res->has_signal = oc->has_signal;
    res->signal = oc->signal;
    res->stdout_data = oc->stdout_data;
    res->stdout_len = oc->stdout_len;
    res->stdout_truncated = oc->stdout_truncated;
    res->stderr_data = oc->stderr_data;
    res->stderr_len = oc->stderr_len;
    res->stderr_truncated = oc->stderr_truncated;
    res->cwd = oc->cwd_after;
    oc->stdout_data = oc->stderr_data = oc->cwd_after = NULL;
    res->started_at_ms = oc->started_at_ms;
    res->finished_at_ms = oc->finished_at_ms;
    res->duration_ms = oc->duration_ms;
    res->has_env = true;
    res->has_state_version = true;
    res->state_version = m->state_version;
    return rp_main_session_env(m, &oc->env_after, &res->env);
}

/* RUNPOOL_ENV_DUMPER=PATH (absolute): capture the command's environment
 * by exec'ing `PATH --dump-env` (runpool-dump-env: NUL-exact whatever the
 * shell) instead of the shell's builtin `export -p`, for a /bin/sh whose
 * export -p the executor cannot read. Unset (the default): no dumper, one
 * process less per execution (docs/executor.md). */
static const char *rp_main_dumper(void)
{
    const char *d = getenv(RP_EXECUTOR_DUMPER_ENV);

    return d && d[0] ? d : NULL;
}

/* A malformed job environment will not get better on a retry: when the
 * ids and the store are usable, leave an "error" record naming the
 * variable, so the requester learns what was wrong. Exit status stays 2. */
static void rp_main_contract_record(rp_main_t *m, rp_err_t cause,
                                    const char *message)
{
    const char *url = getenv("RUNPOOL_STATE_URL");
    char errstr[RP_EXECUTOR_ERRSTR_MAX];

    if (!m->spec.execution_id[0] || !m->spec.session_id[0] || !url || !url[0])
        return;
    if (rp_state_open_opts(url, &(rp_state_opts_t){.gcp = m->gcp}, &m->st,
                           errstr, sizeof(errstr)) != RP_OK) {
        rp_log(RP_LOG_ERROR, "state_open_failed", m->spec.execution_id,
               m->spec.session_id, "%s", errstr);
        return;
    }
    rp_layout_result_key(m->spec.execution_id, m->result_key,
                        sizeof(m->result_key));
    rp_main_fail(m, cause, message);
}

/* RUNPOOL_REQUEST_REF=-: the request document is our standard input (the
 * local backend's memfd). Read it whole, then put /dev/null in its place:
 * nothing after us needs it. Main thread. */
static rp_err_t rp_main_read_stdin(rp_buf_t *doc, char *errstr,
                                   size_t errstr_size)
{
    char chunk[65536];
    rp_err_t err = RP_OK;
    int fd;

    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "standard input: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (rp_buf_append(doc, chunk, (size_t)n) != RP_OK) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          "standard input: document longer than %d bytes",
                          RP_JOBENV_REQUEST_DOC_MAX);
            break;
        }
    }
    if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
    if (err == RP_OK && doc->len == 0)
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "standard input: empty, no request document");
    return err;
}

/* The command and COMMAND_ENV came by reference (RUNPOOL_REQUEST_REF):
 * read the document from standard input or from the store. On failure *rc is the
 * exit status: a missing or malformed document is a contract error (2,
 * with an "error" record), a store that cannot be read our failure (1). */
static rp_err_t rp_main_load_request(rp_main_t *m, int *rc)
{
    char errstr[RP_EXECUTOR_ERRSTR_MAX];
    char msg[RP_STATE_KEY_MAX + RP_EXECUTOR_ERRSTR_MAX + 64];
    rp_buf_t doc;
    rp_err_t err;

    /* From the store it may be a claim record around the document. */
    rp_buf_init(&doc, strcmp(m->spec.request_ref, RP_JOBENV_REQUEST_STDIN)
                          ? RP_JOBENV_REF_DOC_MAX
                          : RP_JOBENV_REQUEST_DOC_MAX);
    if (!strcmp(m->spec.request_ref, RP_JOBENV_REQUEST_STDIN))
        err = rp_main_read_stdin(&doc, errstr, sizeof(errstr));
    else
        err = rp_state_get(m->st, m->spec.request_ref, &doc, NULL, errstr,
                           sizeof(errstr));
    if (err == RP_OK)
        err = rp_jobenv_load_request(&m->spec, doc.data, doc.len, errstr,
                                     sizeof(errstr));
    rp_buf_free(&doc);
    if (err == RP_OK)
        return RP_OK;
    snprintf(msg, sizeof(msg), "reading the request %s: %s",
             m->spec.request_ref, errstr);
    *rc = rp_main_fail(m, err, msg);
    if (*rc == RP_EXECUTOR_EXIT_FAILED && !rp_err_retriable(err))
        *rc = RP_EXECUTOR_EXIT_CONTRACT;
    return err;
}

static int rp_main_run(rp_main_t *m)
{
    char errstr[RP_EXECUTOR_ERRSTR_MAX], msg[RP_STATE_KEY_MAX + RP_EXECUTOR_ERRSTR_MAX + 64];
    const char *home = getenv("HOME");
    rp_exec_opts_t opts;
    rp_exec_outcome_t oc;
    rp_result_t res;
    rp_err_t err;
    int rc = RP_EXECUTOR_EXIT_FAILED;

    memset(&oc, 0, sizeof(oc));
    memset(&res, 0, sizeof(res));
    if (rp_main_result_exists(m)) {
        rp_log(RP_LOG_INFO, "result_exists", m->spec.execution_id,
               m->spec.session_id,
               "a result record exists already; not running again");
        return RP_EXECUTOR_EXIT_RECORDED;
    }
    if (m->spec.request_ref && rp_main_load_request(m, &rc) != RP_OK)
        return rc;
    if ((err = rp_main_load_session(m, errstr, sizeof(errstr))) != RP_OK)
        return rp_main_fail(m, err, errstr);
    if ((err = rp_main_build_env(m)) != RP_OK)
        return rp_main_fail(m, err, "building the environment failed");

    /* The workspace: restored before anything runs (a command must never
     * start without the session's files: its save would drop them). */
    err = rp_exec_ws_begin(m->st, &m->spec, &m->session, &m->run_as, &m->ws,
                           errstr, sizeof(errstr));
    if (err != RP_OK)
        return rp_main_fail(m, err, errstr);

    /* RUNPOOL_DEFAULT_CWD is created when missing (rp_exec does mkdir -p);
     * without it a new session starts in its workspace. */
    if (m->spec.default_cwd && m->spec.default_cwd[0])
        m->default_cwd = m->spec.default_cwd;
    else if (rp_exec_ws_dir(m->ws))
        m->default_cwd = rp_exec_ws_dir(m->ws);
    else if (rp_main_is_dir(home))
        m->default_cwd = home;
    else
        m->default_cwd = "/";

    rp_exec_opts_init(&opts);
    opts.command = m->spec.command;
    opts.cwd = m->session.cwd
                   ? rp_exec_ws_cwd(m->ws, &m->session, m->session.cwd)
                   : m->default_cwd;
    opts.fallback_cwd = m->default_cwd;
    opts.env = &m->cmd_env;
    opts.timeout_ms = (int64_t)m->spec.timeout_s * 1000;
    opts.output_max = m->spec.output_max;
    opts.cancel_fd = rp_main_cancel_pipe[0];
    opts.env_dumper = rp_main_dumper();
    opts.subreaper = true; /* we own no other children */
    opts.run_as = m->run_as;
    err = rp_main_claim(m, errstr, sizeof(errstr));
    if (err == RP_ERR_EXISTS) {
        rp_log(RP_LOG_INFO, "execution_claimed", m->spec.execution_id,
               m->spec.session_id, "%s; not running the command", errstr);
        return RP_EXECUTOR_EXIT_CLAIMED;
    }
    if (err != RP_OK) {
        snprintf(msg, sizeof(msg), "claiming the execution failed: %s", errstr);
        return rp_main_fail(m, err, msg);
    }
    rp_log(RP_LOG_INFO, "execution_start", m->spec.execution_id,
           m->spec.session_id, "cwd=%s timeout_s=%d new_session=%s",
           opts.cwd, m->spec.timeout_s, m->session.cwd ? "no" : "yes");

    err = rp_exec_run(&opts, &oc, errstr, sizeof(errstr));
    if (err != RP_OK) {
        snprintf(msg, sizeof(msg), "running the command failed: %s", errstr);
        rc = rp_main_fail(m, err, msg);
        goto out;
    }
    if (oc.cancelled && !oc.spawned) {
        rp_main_unclaim(m);
        rp_log(RP_LOG_WARN, "execution_cancelled", m->spec.execution_id,
               m->spec.session_id, "stopped before the command started");
        goto out;
    }
    if (oc.cancelled) {
        /* Cut mid-command: no record; the claim stays and tells the worker
         * that the command was interrupted. */
        rp_log(RP_LOG_WARN, "execution_cancelled", m->spec.execution_id,
               m->spec.session_id, "stopped by a signal; no result written");
        goto out;
    }
    if (oc.late_cancel)
        rp_log(RP_LOG_INFO, "late_signal", m->spec.execution_id,
               m->spec.session_id, "a stop came after the command had exited; "
               "writing its record all the same");
    rp_log(RP_LOG_INFO, "execution_done", m->spec.execution_id,
           m->spec.session_id,
           "status=%s exit_code=%d signal=%d duration_ms=%lld "
           "stdout_bytes=%zu stderr_bytes=%zu captured=%s",
           rp_status_str(oc.status), oc.has_exit_code ? oc.exit_code : -1,
           oc.has_signal ? oc.signal : 0, (long long)oc.duration_ms,
           oc.stdout_len, oc.stderr_len, oc.captured ? "yes" : "no");

    if ((err = rp_main_fill_result(m, &oc, &res)) != RP_OK) {
        rc = rp_main_fail(m, err, "building the session environment failed");
        goto out;
    }
    /* The files the command left, under a new name; the worker makes the
     * snapshot current with cwd and env (rp_exec_ws.h). */
    rp_exec_ws_end(m->ws, &res);
    err = rp_main_put_result(m, &res, errstr, sizeof(errstr));
    if (err == RP_OK) {
        rc = RP_EXECUTOR_EXIT_RECORDED;
    } else if (err == RP_ERR_EXISTS) {
        rp_log(RP_LOG_INFO, "result_exists", m->spec.execution_id,
               m->spec.session_id,
               "a result record appeared meanwhile; kept it, ours dropped");
        rc = RP_EXECUTOR_EXIT_RECORDED;
    } else {
        snprintf(msg, sizeof(msg), "writing %s failed: %s", m->result_key,
                 errstr);
        rc = rp_main_fail(m, err, msg);
    }
out:
    rp_exec_outcome_clear(&oc);
    rp_result_clear(&res);
    return rc;
}

static int rp_executor_main(int argc, char **argv)
{
    char errstr[RP_EXECUTOR_ERRSTR_MAX];
    const char *url;
    rp_main_t m;
    rp_err_t err;
    int rc;

    /* The capture half: keep it tiny, it runs at the end of every command. */
    if (argc == 2 && !strcmp(argv[1], "--dump-env"))
        return rp_exec_dump_env(STDOUT_FILENO) == 0 ? 0 : 1;
    /* The command's shell, started as RUNPOOL_RUN_AS (rp_runas.h). */
    if (argc > 1 && !strcmp(argv[1], RP_RUNAS_FLAG))
        return rp_runas_exec_main(argc, argv);
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: runpool-executor [--dump-env | --exec-as UID:GID -- PROG "
               "ARGS... |\n                        --serve | --help | "
               "--version]\n"
               "Runs the command described by the job environment "
               "(EXECUTION_ID, SESSION_ID,\nRUNPOOL_REQUEST_REF, TIMEOUT, "
               "RUNPOOL_STATE_URL, ...; docs/executor.md) and records\n"
               "its result in the state store. RUNPOOL_REQUEST_REF=- reads "
               "the request\ndocument (command and env) from stdin.\n\n"
               "  --dump-env   write the environment NUL-separated to stdout "
               "and exit\n"
               "  --serve      be the local backend's fork server: start an "
               "executor for each\n               request on the "
               "SOCK_SEQPACKET socket on stdin (rp_zygote.h)\n"
               "  --exec-as UID:GID -- PROG ARGS...\n"
               "               become UID:GID for good, then exec PROG (how "
               "the command's\n               shell starts under "
               "RUNPOOL_RUN_AS)\n"
               "  -h, --help   show this help\n"
               "  --version    print the version\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("runpool-executor %s\n", RP_VERSION);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "runpool-executor: unexpected argument '%s' (see "
                        "--help)\n", argv[1]);
        return RP_EXECUTOR_EXIT_CONTRACT;
    }
    rp_log_init("executor", RP_LOG_INFO);
    memset(&m, 0, sizeof(m));
    /* The Google context for gs:// state (credentials unless an emulator
     * serves it); none for file://, which keeps libcurl unloaded. */
    url = getenv("RUNPOOL_STATE_URL");
    if (url && !strncmp(url, "gs://", 5)) {
        const char *emu = getenv("STORAGE_EMULATOR_HOST");

        if (rp_gcp_new(!(emu && emu[0]), &m.gcp, errstr, sizeof(errstr)) !=
            RP_OK) {
            rp_log(RP_LOG_ERROR, "credentials_failed", NULL, NULL, "%s",
                   errstr);
            return RP_EXECUTOR_EXIT_FAILED;
        }
    }
    err = rp_jobenv_parse(rp_main_lookup, NULL, &m.spec, errstr,
                          sizeof(errstr));
    if (err != RP_OK) {
        rp_log(RP_LOG_ERROR, "jobenv_invalid", m.spec.execution_id,
               m.spec.session_id, "%s", errstr);
        rp_main_contract_record(&m, err, errstr);
        rc = RP_EXECUTOR_EXIT_CONTRACT;
        goto out;
    }
    /* Who runs the command: a root executor drops to RUNPOOL_RUN_AS; one
     * that is not root cannot honour another uid (rp_runas.h). */
    if ((err = rp_runas_parse(getenv(RP_RUNAS_ENV), &m.run_as, errstr,
                              sizeof(errstr))) ||
        (err = rp_runas_check(&m.run_as, geteuid(), errstr,
                              sizeof(errstr)))) {
        rp_log(RP_LOG_ERROR, "jobenv_invalid", m.spec.execution_id,
               m.spec.session_id, "%s", errstr);
        rp_main_contract_record(&m, err, errstr);
        rc = RP_EXECUTOR_EXIT_CONTRACT;
        goto out;
    }
    rp_layout_result_key(m.spec.execution_id, m.result_key,
                        sizeof(m.result_key));
    rp_main_install_signals();
    err = rp_state_open_opts(m.spec.state_url,
                             &(rp_state_opts_t){.gcp = m.gcp}, &m.st, errstr,
                             sizeof(errstr));
    if (err != RP_OK) {
        /* No store, so no record can be written either. */
        rp_log(RP_LOG_ERROR, "state_open_failed", m.spec.execution_id,
               m.spec.session_id, "%s", errstr);
        rc = RP_EXECUTOR_EXIT_FAILED;
        goto out;
    }
    rc = rp_main_run(&m);
out:
    rp_exec_ws_destroy(m.ws); /* removes a scratch workspace */
    rp_state_destroy(m.st);
    rp_session_clear(&m.session);
    rp_env_clear(&m.base);
    rp_env_clear(&m.cmd_env);
    rp_jobspec_clear(&m.spec);
    rp_gcp_destroy(m.gcp);
    return rc;
}

int main(int argc, char **argv)
{
    /* The local backend's fork server: each child runs rp_executor_main
     * as an exec'd executor would (rp_zygote.h). */
    if (argc == 2 && !strcmp(argv[1], RP_ZYGOTE_FLAG))
        return rp_zygote_serve(STDIN_FILENO, argv[0], rp_executor_main);
    return rp_executor_main(argc, argv);
}
