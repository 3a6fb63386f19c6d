/* rp_worker — the main loop and the worker's lifecycle (rp_worker.h has the
 * design note; rp_worker_int.h the map of the other files).
 *
 * One turn of the loop (rp_worker_step), as in Redis's ae.c: sleep in
 * poll() until an fd is ready or the nearest timer is due, then serve, in
 * order, signals, due timers, the inbox (pool steps and backend runs that
 * ended), delivery reports, the consumer, admission of ready jobs and flow
 * control. Nothing in a turn blocks.
 */
#include "rp_worker_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rp_kafka.h"
#include "rp_log.h"
#include "rp_time.h"

void rp_worker_set_fatal(rp_worker_t *w, const char *what)
{
    if (!w->fatal)
        snprintf(w->fatal_msg, sizeof(w->fatal_msg), "%s", what);
    w->fatal = true;
}

void rp_worker_arm(rp_worker_t *w, rp_timer_t *t, int64_t due_ms)
{
    if (rp_timerq_add(&w->timers, t, due_ms) != RP_OK)
        rp_worker_set_fatal(w, "cannot queue a timer (out of memory)");
}

int rp_worker_call_ms(const rp_worker_t *w, int cap)
{
    int64_t left;

    if (!w->shutdown_deadline) {
        /* Draining: no call may hold the loop past the drain or abandon
         * deadline, so those timers fire on time even when the broker is
         * gone; a call that times out is resumed on the next turn
         * (librdkafka's "retry call to resume"). */
        if (!w->draining || !w->drain_deadline)
            return cap;
        left = w->drain_deadline - rp_time_mono_ms();
        if (left < RP_WORKER_DRAIN_CALL_MIN_MS)
            left = RP_WORKER_DRAIN_CALL_MIN_MS;
        return cap >= 0 && cap < left ? cap : (int)left;
    }
    left = w->shutdown_deadline - rp_time_mono_ms();
    if (left < 1)
        left = 1;
    return cap >= 0 && cap < left ? cap : (int)left;
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */

static rp_err_t rp_worker_kafka(rp_worker_t *w, char *errstr, size_t es)
{
    rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
    const rp_worker_conf_t *c = &w->conf;
    char kerr[512];
    rp_err_t err;
    uint64_t one = 1;

    if ((err = rp_kafka_set(cc, "bootstrap.servers", c->brokers, errstr, es)) ||
        (err = rp_kafka_set(cc, "group.id", c->group, errstr, es)) ||
        (err = rp_kafka_set(cc, "enable.auto.commit", "false", errstr, es)) ||
        (err = rp_kafka_set(cc, "enable.auto.offset.store", "false", errstr,
                            es)) ||
        (err = rp_kafka_set(cc, "auto.offset.reset", "earliest", errstr, es)) ||
        (err = rp_kafka_set(cc, "partition.assignment.strategy",
                            "cooperative-sticky", errstr, es)) ||
        /* librdkafka's default too; said here because exactly-once rests
         * on it for requests written in transactions. */
        (err = rp_kafka_set(cc, "isolation.level", "read_committed", errstr,
                            es)) ||
        (c->instance_id &&
         (err = rp_kafka_set(cc, "group.instance.id", c->instance_id, errstr,
                             es))) ||
        (err = rp_kafka_unique_client_id(cc, "runpool-worker", errstr, es)) ||
        (err = rp_kafka_set_props_for(cc, RP_KAFKA_CONSUMER, c->kafka_props,
                                      c->n_kafka_props, errstr, es)))
        goto out;
    if ((err = rp_kafka_set(pc, "bootstrap.servers", c->brokers, errstr, es)) ||
        (err = rp_kafka_producer_defaults(pc, errstr, es)) ||
        (err = rp_kafka_unique_client_id(pc, "runpool-worker-p", errstr, es)))
        goto out;
    if (w->eos) {
        /* One transactional.id per running worker: a restarted worker with
         * the same name (a pod restarted in place) fences its old self and
         * aborts what it left open at once, instead of read_committed
         * consumers waiting transaction.timeout.ms for it. */
        char tid[512], tmo[32];

        snprintf(tid, sizeof(tid), "runpool-%s-%s", c->group,
                 c->instance_id ? c->instance_id : w->name);
        snprintf(tmo, sizeof(tmo), "%d", RP_WORKER_TXN_TIMEOUT_MS);
        if ((err = rp_kafka_set(pc, "transactional.id", tid, errstr, es)) ||
            (err = rp_kafka_set(pc, "transaction.timeout.ms", tmo, errstr,
                                es)))
            goto out;
    }
    if ((err = rp_kafka_set_props_for(pc, RP_KAFKA_PRODUCER, c->kafka_props,
                                      c->n_kafka_props, errstr, es)))
        goto out;
    {
        /* Results and DLQ copies are sized to fit under this. */
        char v[32];
        size_t vlen = sizeof(v);

        if (rd_kafka_conf_get(pc, "message.max.bytes", v, &vlen) ==
            RD_KAFKA_CONF_OK)
            w->msg_max = (size_t)strtoull(v, NULL, 10);
        if (w->msg_max && c->result_max_bytes + RP_WORKER_MSG_HEADROOM >
                              w->msg_max) {
            err = rp_errf(errstr, es, RP_ERR_INVALID,
                          "--result-max-bytes %zu does not fit in the "
                          "producer's message.max.bytes %zu (leave %d bytes "
                          "for key and headers; raise it with -X "
                          "message.max.bytes=N and on the topic)",
                          c->result_max_bytes, w->msg_max,
                          RP_WORKER_MSG_HEADROOM);
            goto out;
        }
    }
    rp_kafka_log_via_rp(cc);
    rp_kafka_log_via_rp(pc);
    rd_kafka_conf_set_opaque(cc, w);
    rd_kafka_conf_set_rebalance_cb(cc, rp_partitions_rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(cc, rp_partitions_commit_cb);
    if ((err = rp_wmetrics_kafka_conf(w, cc, errstr, es)))
        goto out;
    rd_kafka_conf_set_opaque(pc, w);
    rd_kafka_conf_set_dr_msg_cb(pc, rp_publish_dr_cb);

    if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, kerr,
                                     sizeof(kerr)))) {
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "consumer: %s", kerr);
        goto out;
    }
    cc = NULL;
    if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, kerr,
                                     sizeof(kerr)))) {
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "producer: %s", kerr);
        goto out;
    }
    pc = NULL;
    rd_kafka_poll_set_consumer(w->consumer);
    w->cq = rd_kafka_queue_get_consumer(w->consumer);
    w->pq = rd_kafka_queue_get_main(w->producer);
    /* Both queues write to the same eventfd when they become non-empty. */
    rd_kafka_queue_io_event_enable(w->cq, w->wake_fd, &one, sizeof(one));
    rd_kafka_queue_io_event_enable(w->pq, w->wake_fd, &one, sizeof(one));
out:
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    return err;
}

rp_err_t rp_worker_new(const rp_worker_conf_t *conf, rp_worker_t **out,
                       char *errstr, size_t es)
{
    rp_worker_t *w;
    rp_worker_conf_t *c;
    sigset_t sigs;
    char host[128] = "host";
    rp_err_t err;

    *out = NULL;
    if (!(w = calloc(1, sizeof(*w))))
        return rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
    w->wake_fd = w->sig_fd = -1;
    rp_list_init(&w->jobs);
    rp_list_init(&w->ready);
    rp_list_init(&w->ready_now);
    rp_list_init(&w->txn_jobs);
    rp_timerq_init(&w->timers);
    w->conf = *conf;
    c = &w->conf;
    if ((err = rp_worker_conf_check(c, errstr, es)))
        goto out;
    w->eos = !strcmp(c->delivery, RP_WORKER_DELIVERY_EOS);
    if (c->signing_keys) {
        if ((err = rp_sign_keys_load(c->signing_keys, &w->sign_keys, errstr,
                                     es)))
            goto out;
        rp_log(RP_LOG_INFO, "signing_keys_loaded", NULL, NULL,
               "running signed requests only: %zu key(s) from %s, first "
               "key id %s; signature max age %d s",
               rp_sign_keys_count(w->sign_keys), c->signing_keys,
               rp_sign_keys_kid(w->sign_keys, 0), c->signature_max_age_s);
    } else {
        rp_log(RP_LOG_WARN, "requests_not_authenticated", NULL, NULL,
               "no --signing-keys: any request on %s runs, whoever wrote "
               "it; give the worker a key file to run signed requests only",
               c->requests_topic);
    }
    if (!strcmp(c->backend, "local") && geteuid() == 0 &&
        !c->backend_conf.run_as)
        rp_log(RP_LOG_WARN, "commands_run_as_root", NULL, NULL,
               "the worker is root and has no --run-as: the sessions' "
               "commands run as root on this machine; give --run-as "
               "UID:GID (e.g. 65534:65534)");
    if (c->worker_name && *c->worker_name) {
        snprintf(w->name, sizeof(w->name), "%s", c->worker_name);
    } else {
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(w->name, sizeof(w->name), "%s:%ld", host, (long)getpid());
    }

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if ((w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (w->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        err = rp_errf(errstr, es, RP_ERR_IO, "eventfd/signalfd: %s",
                      strerror(errno));
        goto out;
    }
    if (!(w->sched = rp_sched_new()) || !(w->offsets = rp_offsets_new()) ||
        rp_scache_new(RP_SCACHE_ENTRIES_MAX, RP_SCACHE_BYTES_MAX,
                      &w->scache) ||
        rp_inbox_new(w->wake_fd, &w->inbox)) {
        err = rp_errf(errstr, es, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = rp_state_open_opts(c->state_url,
                                  &(rp_state_opts_t){.gcp = c->backend_conf.gcp},
                                  &w->state, errstr, es)))
        goto out;
    c->backend_conf.state = w->state; /* the backend borrows the store */
    if ((err = rp_iopool_new(c->io_threads, &w->io, errstr, es)) ||
        (err = rp_backend_new(c->backend, &c->backend_conf,
                              rp_job_backend_done, w, &w->backend, errstr,
                              es)) ||
        (err = rp_worker_kafka(w, errstr, es)) ||
        (err = rp_wmetrics_start(w, errstr, es)))
        goto out;
    *out = w;
    w = NULL;
out:
    rp_worker_destroy(w);
    return err;
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */

/* The last wall of a bounded stop: every Kafka call the worker makes is
 * cut to the budget, but a call inside librdkafka may still not return
 * (seen once in a clean-clone run of integration.shutdown: the consumer's
 * close, broker SIGKILLed). At --drain-timeout + RP_WORKER_STOP_SLACK_S +
 * RP_WORKER_WATCHDOG_GRACE_S the process leaves anyway, exit status 1:
 * what it had not committed is re-delivered, nothing is lost. */
static void *rp_worker_watchdog(void *arg)
{
    struct timespec due = *(struct timespec *)arg;

    free(arg);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) ==
           EINTR) {
    }
    rp_log(RP_LOG_ERROR, "stop_timeout", NULL, NULL,
           "the stop did not end within its bound (a Kafka call did not "
           "return); leaving now, unfinished requests will be re-delivered");
    _exit(1);
    return NULL;
}

static void rp_worker_arm_watchdog(const rp_worker_t *w)
{
    struct timespec *due = malloc(sizeof(*due));
    pthread_attr_t attr;
    pthread_t t;

    if (!due)
        return; /* the stop is still bounded by our own calls' budgets */
    clock_gettime(CLOCK_MONOTONIC, due);
    due->tv_sec += w->conf.drain_timeout_s + RP_WORKER_STOP_SLACK_S +
                   RP_WORKER_WATCHDOG_GRACE_S;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, rp_worker_watchdog, due) != 0)
        free(due);
    pthread_attr_destroy(&attr);
}

/* SIGTERM/SIGINT: take no new work, let what runs finish until the drain
 * deadline. */
static void rp_worker_start_drain(rp_worker_t *w, unsigned signo)
{
    if (w->draining)
        return;
    w->draining = true;
    rp_worker_arm_watchdog(w);
    w->drain_deadline =
        rp_time_mono_ms() + (int64_t)w->conf.drain_timeout_s * 1000;
    rp_worker_arm(w, &w->drain_timer, w->drain_deadline);
    rp_log(RP_LOG_INFO, "draining", NULL, NULL,
           "signal %u: taking no new work; waiting up to %d s for %zu "
           "running execution(s)",
           signo, w->conf.drain_timeout_s, w->running);
    /* Not yet started: leave them to the next owner. */
    rp_partitions_drop_queued(w, NULL);
    rp_job_drop_ready(w, NULL);
    rp_partitions_flow_control(w);
}

/* Drain deadline passed: abandon what still runs (it is re-delivered). */
static void rp_worker_abandon_all(rp_worker_t *w)
{
    rp_list_t *n;

    rp_log(RP_LOG_WARN, "drain_timeout", NULL, NULL,
           "%zu execution(s) still running after %d s; they will be "
           "re-delivered",
           w->running, w->conf.drain_timeout_s);
    for (n = w->jobs.next; n != &w->jobs; n = n->next) {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, link);

        if (job->stage == RP_JOB_PUBLISHING)
            continue; /* let the flush finish it */
        job->revoked = true;
        atomic_store(&job->io_revoked, true);
        if (job->stage == RP_JOB_RUNNING && job->run)
            rp_backend_detach(w->backend, job->run);
    }
    w->abandoned = true;
    w->drain_deadline = rp_time_mono_ms() + RP_WORKER_ABANDON_WAIT_MS;
    rp_worker_arm(w, &w->drain_timer, w->drain_deadline);
}

void rp_worker_fire_timers(rp_worker_t *w, int64_t now)
{
    rp_timer_t *t;

    while ((t = rp_timerq_pop_due(&w->timers, now))) {
        if (t == &w->commit_timer) {
            rp_partitions_commit(w, NULL, false);
            rp_worker_arm(w, t, now + RP_WORKER_COMMIT_INTERVAL_MS);
        } else if (t == &w->txn_timer) {
            rp_txn_commit(w, NULL, false);
        } else if (t == &w->drain_timer) {
            if (!w->abandoned)
                rp_worker_abandon_all(w);
            else
                w->stop = true; /* a dead broker must not hold shutdown */
        } else {
            rp_job_on_timer(w, RP_TIMER_ENTRY(t, rp_job_t, timer));
        }
    }
}

/* Wait for a wake-up, a signal or timeout_ms. */
static void rp_worker_wait(rp_worker_t *w, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = w->wake_fd, .events = POLLIN},
                            {.fd = w->sig_fd, .events = POLLIN}};
    struct signalfd_siginfo si;
    uint64_t v;

    if (poll(fds, 2, timeout_ms) <= 0)
        return;
    if ((fds[0].revents & POLLIN) && read(w->wake_fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: another turn already took the wake-up */
    }
    if (fds[1].revents & POLLIN)
        while (read(w->sig_fd, &si, sizeof(si)) == sizeof(si))
            rp_worker_start_drain(w, si.ssi_signo);
}

static void rp_worker_serve_inbox(rp_worker_t *w)
{
    rp_inbox_item_t *it = rp_inbox_take(w->inbox), *next;

    for (; it; it = next) {
        next = it->next;
        rp_job_on_event(w, (rp_job_t *)it, it->kind); /* item is first */
    }
}

/* The message's runpool-signature headers into rec (borrowed from m). */
static void rp_worker_record_sig(rd_kafka_message_t *m, rp_record_t *rec)
{
    rd_kafka_headers_t *hdrs;
    const void *v;
    size_t vlen;

    rec->nsig = 0;
    rec->sig = NULL;
    rec->siglen = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    while (rd_kafka_header_get(hdrs, (size_t)rec->nsig, RP_SIGN_HEADER_NAME,
                               &v, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rec->nsig++;
        rec->sig = v ? v : "";
        rec->siglen = v ? vlen : 0;
    }
}

/* Serve up to a batch of consumer events; returns true if more may wait. */
static bool rp_worker_serve_consumer(rp_worker_t *w)
{
    for (int i = 0; i < RP_WORKER_POLL_BATCH && !w->fatal; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
        rd_kafka_timestamp_type_t tstype;
        rp_record_t rec;

        if (!m)
            return false;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rp_log(RP_LOG_WARN, "consumer_error", NULL, NULL, "%s",
                       rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                rp_worker_set_fatal(w, rd_kafka_message_errstr(m));
        } else {
            rec.partition = m->partition;
            rec.offset = m->offset;
            rec.ts_ms = rd_kafka_message_timestamp(m, &tstype);
            rec.key = m->key;
            rec.keylen = m->key_len;
            rec.payload = m->payload;
            rec.len = m->len;
            rp_worker_record_sig(m, &rec);
            rp_job_accept(w, &rec, m);
        }
        rd_kafka_message_destroy(m);
        rp_partitions_flow_control(w);
    }
    return true;
}

void rp_worker_step(rp_worker_t *w, int timeout_ms)
{
    int wait = rp_timerq_wait_ms(&w->timers, rp_time_mono_ms(), timeout_ms);

    rp_worker_wait(w, wait);
    int64_t start = rp_time_mono_ms();
    rp_worker_fire_timers(w, start);
    rp_worker_serve_inbox(w);
    rd_kafka_poll(w->producer, 0); /* delivery reports */
    w->consumer_more = rp_worker_serve_consumer(w);
    rp_job_admit_ready(w);
    rp_partitions_flow_control(w);
    rp_wmetrics_turn(w, start, rp_time_mono_ms());
}

/* After the drain deadline only cancelled runs and publishes remain: done
 * once none is left. */
static bool rp_worker_all_settled(const rp_worker_t *w)
{
    const rp_list_t *n;

    for (n = w->jobs.next; n != &w->jobs; n = n->next)
        if (RP_LIST_ENTRY(n, const rp_job_t, link)->stage > RP_JOB_READY)
            return false;
    return true;
}

static rp_err_t rp_worker_subscribe(rp_worker_t *w, char *errstr, size_t es)
{
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new(1);
    rp_err_t err = RP_OK;

    rd_kafka_topic_partition_list_add(topics, w->conf.requests_topic,
                                      RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(w->consumer, topics))
        err = rp_errf(errstr, es, RP_ERR_KAFKA, "cannot subscribe to %s",
                      w->conf.requests_topic);
    rd_kafka_topic_partition_list_destroy(topics);
    return err;
}

/* librdkafka before 2.3.0 (Debian 12 ships 2.0.2) aborts in
 * rd_kafka_destroy when a cooperative-sticky consumer has joined its group
 * but not yet received its first assignment (the assignor's state is
 * still NULL: librdkafka issue #4381). A worker told to stop in that
 * window first waits a little for the assignment, which follows the join
 * within milliseconds; rp_worker_destroy then does not destroy a consumer
 * that never got one (the process is exiting). */
static void rp_worker_await_assignment(rp_worker_t *w)
{
    int64_t deadline = rp_time_mono_ms() + RP_WORKER_FIRST_ASSIGN_MS;
    char *member;
    bool joined;

    w->ran = true;
    member = rd_kafka_memberid(w->consumer);
    joined = member && *member;
    if (member)
        rd_kafka_mem_free(w->consumer, member);
    while (joined && !w->ever_assigned && !w->fatal &&
           rp_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 100);

        if (m) /* not tracked: never committed, so re-delivered */
            rd_kafka_message_destroy(m);
    }
}

/* rd_kafka_consumer_close, bounded: it waits without limit for the
 * group's answers (and serves the revoke through the rebalance callback).
 * The same through a queue of our own, served until the shutdown budget
 * plus RP_WORKER_CLOSE_MS is spent; a consumer not closed by then is
 * destroyed without another close (rp_worker_destroy). Leaving without a
 * LeaveGroup only makes the group wait session.timeout.ms; nothing
 * uncommitted is lost (it is re-delivered). */
static void rp_worker_close_consumer(rp_worker_t *w)
{
    int64_t deadline = w->shutdown_deadline + RP_WORKER_CLOSE_MS;
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_error_t *e;

    if (!q)
        return;
    if ((e = rd_kafka_consumer_close_queue(w->consumer, q))) {
        rp_log(RP_LOG_WARN, "consumer_close_failed", NULL, NULL, "%s",
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        while (!(w->consumer_closed = rd_kafka_consumer_closed(w->consumer)) &&
               rp_time_mono_ms() < deadline)
            rd_kafka_queue_poll_callback(q, 100);
        if (!w->consumer_closed)
            rp_log(RP_LOG_WARN, "consumer_close_timeout", NULL, NULL,
                   "the group did not answer within %d ms; leaving without "
                   "it (the broker may be gone)",
                   RP_WORKER_SHUTDOWN_MS + RP_WORKER_CLOSE_MS);
    }
    rd_kafka_queue_destroy(q);
}

rp_err_t rp_worker_run(rp_worker_t *w, char *errstr, size_t es)
{
    rp_err_t err;

    /* Here, not in rp_worker_new: these are the first calls that need the
     * cluster. Transactions first: the consumer must not join its group
     * while init_transactions blocks (it would not poll, and a stop then
     * would hit librdkafka #4381, below). */
    if (w->eos && (err = rp_txn_init(w, errstr, es)))
        return err == RP_ERR_CANCELLED ? RP_OK : err; /* stopped first */
    if ((err = rp_worker_subscribe(w, errstr, es)))
        return err;
    rp_log(RP_LOG_INFO, "worker_started", NULL, NULL,
           "worker %s: group %s, topic %s -> %s (dlq %s), %s, backend %s, "
           "state %s, max in flight %d, running %d, window %d",
           w->name, w->conf.group, w->conf.requests_topic,
           w->conf.results_topic, w->conf.dlq_topic, w->conf.delivery,
           w->conf.backend,
           w->conf.state_url, w->conf.max_inflight, w->conf.max_running,
           w->conf.max_window);
    rp_worker_arm(w, &w->commit_timer,
                  rp_time_mono_ms() + RP_WORKER_COMMIT_INTERVAL_MS);
    w->consumer_more = true;
    while (!w->fatal && !w->stop) {
        if (w->draining && w->running == 0 && w->inflight == 0)
            break;
        if (w->abandoned && rp_worker_all_settled(w))
            break;
        rp_worker_step(w, w->consumer_more ? 0 : RP_WORKER_WAIT_MAX_MS);
    }

    if (!w->ever_assigned)
        rp_worker_await_assignment(w);
    /* Shut down: nothing is started any more. Let the producer deliver what
     * is queued, commit what is finished, leave the group — all within a
     * bound, so a broker that is gone cannot hold the exit. */
    w->shutdown_deadline = rp_time_mono_ms() + RP_WORKER_SHUTDOWN_MS;
    rd_kafka_flush(w->producer, rp_worker_call_ms(w, RP_WORKER_FLUSH_MS));
    rp_worker_serve_inbox(w);
    if (rp_time_mono_ms() < w->shutdown_deadline)
        rp_partitions_commit(w, NULL, true);
    rp_worker_close_consumer(w);
    rp_log(RP_LOG_INFO, "worker_stopped", NULL, NULL,
           "%zu request(s) left unfinished for re-delivery", w->inflight);
    if (w->fatal)
        return rp_errf(errstr, es, RP_ERR_KAFKA, "fatal: %s", w->fatal_msg);
    return RP_OK;
}

void rp_worker_destroy(rp_worker_t *w)
{
    rp_list_t *n, *tmp;

    if (!w)
        return;
    /* Order matters: stop what can still call back into jobs (backend
     * threads, I/O threads) before freeing the jobs. Released runs are
     * freed by the backend once they have ended. */
    for (n = w->jobs.next; n != &w->jobs; n = n->next) {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, link);

        if (job->run)
            rp_backend_release(w->backend, job->run);
        job->run = NULL;
    }
    rp_backend_destroy(w->backend);
    rp_iopool_destroy(w->io);
    /* After the threads that make HTTP calls (they report to it); the
     * endpoint's thread reads only the metrics. */
    rp_wmetrics_destroy(w);
    if (w->cq)
        rd_kafka_queue_destroy(w->cq);
    if (w->pq)
        rd_kafka_queue_destroy(w->pq);
    if (w->consumer && w->ran && !w->ever_assigned) {
        /* See rp_worker_await_assignment. Kept reachable on purpose. */
        static rd_kafka_t *volatile rp_worker_kept_consumer;

        rp_log(RP_LOG_INFO, "consumer_kept", NULL, NULL,
               "the consumer never got an assignment; not destroying it "
               "(librdkafka < 2.3.0 would abort)");
        rp_worker_kept_consumer = w->consumer;
        (void)rp_worker_kept_consumer;
    } else if (w->consumer && w->shutdown_deadline && !w->consumer_closed) {
        /* Its close timed out: another one (rd_kafka_destroy's) would
         * block again. */
        rd_kafka_destroy_flags(w->consumer,
                               RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    } else if (w->consumer) {
        rd_kafka_destroy(w->consumer);
    }
    if (w->producer)
        rd_kafka_destroy(w->producer);
    RP_LIST_FOREACH_SAFE(n, tmp, &w->jobs)
    rp_job_drop(w, RP_LIST_ENTRY(n, rp_job_t, link));
    rp_timerq_clear(&w->timers);
    rp_state_destroy(w->state);
    rp_inbox_destroy(w->inbox);
    rp_sched_destroy(w->sched);
    rp_scache_destroy(w->scache);
    rp_offsets_destroy(w->offsets);
    free(w->part);
    rp_sign_keys_destroy(w->sign_keys);
    if (w->txn_offsets)
        rd_kafka_topic_partition_list_destroy(w->txn_offsets);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->sig_fd >= 0)
        close(w->sig_fd);
    free(w);
}
