/* rp_txn — exactly-once delivery (--delivery exactly-once, the default):
 * results, DLQ copies and the consumed offsets leave in one Kafka
 * transaction.
 *
 *   publish:  begin (if none open) -> produce the job's messages
 *             -> rp_txn_add: its offset is "staged", its session's next
 *                request may start
 *   commit:   every RP_WORKER_TXN_MS (or RP_WORKER_TXN_BATCH jobs, or
 *             before a revoke / at exit): send_offsets_to_transaction
 *             (lowest offset not done or staged + the finished ones above
 *             it in the metadata, with the consumer's group metadata so a
 *             worker that lost its partitions is fenced) -> commit
 *   success:  the batch's jobs are done
 *   abortable error: abort (the batch's messages vanish for read_committed
 *             consumers), unstage, produce the batch again in a new
 *             transaction; jobs whose partition went away end unpublished
 *             (their next owner publishes them)
 *   fatal:    the worker stops; what it had not committed is re-delivered
 *
 * The commit calls block the main thread, each for at most
 * RP_WORKER_TXN_TIMEOUT_MS (the transaction.timeout.ms the worker sets).
 * Not -1, which librdkafka recommends: in 2.0.2 abort_transaction(-1)
 * waits for ever when the broker is gone (seen: a worker stuck after its
 * broker was SIGKILLed); a timed-out call is retriable and resumed later. On a healthy cluster that is a few round
 * trips every RP_WORKER_TXN_MS. Once the loop has ended they get what is
 * left of RP_WORKER_SHUTDOWN_MS instead (rp_worker_call_ms), so a broker
 * that is gone cannot hold the exit; executions, pool steps and backends go on
 * meanwhile on their own threads. Delivery reports do not decide anything
 * here: the commit's answer does (a report only shrinks a result that was
 * too large). Main thread only.
 */
#include "rp_worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rp_log.h"
#include "rp_time.h"

/* A job some of whose messages are queued in the open transaction and
 * some not (a local produce failure waiting for its retry): committing now
 * would publish half of it. */
static bool rp_txn_partial(const rp_worker_t *w)
{
    const rp_list_t *n;

    for (n = w->txn_jobs.next; n != &w->txn_jobs; n = n->next)
        if (!RP_LIST_ENTRY(n, const rp_job_t, txn_link)->txn_whole)
            return true;
    return false;
}

bool rp_txn_begin(rp_worker_t *w)
{
    rd_kafka_error_t *e;

    if (w->txn == RP_TXN_OPEN)
        return true;
    if (w->txn != RP_TXN_NONE || w->fatal)
        return false;
    if ((e = rd_kafka_begin_transaction(w->producer))) {
        char why[512];

        snprintf(why, sizeof(why), "cannot begin a transaction: %s",
                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rp_worker_set_fatal(w, why);
        return false;
    }
    w->txn = RP_TXN_OPEN;
    w->txn_count = 0;
    rp_worker_arm(w, &w->txn_timer, rp_time_mono_ms() + RP_WORKER_TXN_MS);
    return true;
}

void rp_txn_add(rp_worker_t *w, rp_job_t *job)
{
    if (!job->in_txn) {
        job->in_txn = true;
        rp_list_push_tail(&w->txn_jobs, &job->txn_link);
    }
    if (job->txn_whole || job->d_result.failed || job->d_dlq.failed)
        return;
    job->txn_whole = true;
    if (rp_offsets_stage(w->offsets, job->partition, job->offset) != RP_OK)
        rp_log(RP_LOG_WARN, "offset_untracked", rp_job_eid(job),
               rp_job_sid(job), "partition %d offset %lld was not tracked",
               (int)job->partition, (long long)job->offset);
    /* Its state is saved and its result queued: the session's next
     * request need not wait for the commit. */
    rp_job_release_session(w, job);
    if (++w->txn_count >= RP_WORKER_TXN_BATCH)
        rp_worker_arm(w, &w->txn_timer, rp_time_mono_ms());
}

/* Try a resumed commit or abort again in a while. */
static void rp_txn_later(rp_worker_t *w)
{
    rp_worker_arm(w, &w->txn_timer,
                  rp_time_mono_ms() + RP_WORKER_PUBLISH_RETRY_MS);
}

/* The transaction is over: no state, no timer, no offsets kept. */
static void rp_txn_close(rp_worker_t *w)
{
    w->txn = RP_TXN_NONE;
    w->txn_count = 0;
    w->txn_partial_since = 0;
    rp_timerq_remove(&w->timers, &w->txn_timer);
    if (w->txn_offsets)
        rd_kafka_topic_partition_list_destroy(w->txn_offsets);
    w->txn_offsets = NULL;
}

/* An error fatal to the producer stops the worker; false if e is not. */
static bool rp_txn_fatal(rp_worker_t *w, rd_kafka_error_t *e, const char *op)
{
    char msg[512];

    if (!rd_kafka_error_is_fatal(e))
        return false;
    /* Fenced: another producer with our transactional.id, or the group
     * moved on without us. What we did not commit is re-delivered. */
    snprintf(msg, sizeof(msg), "transaction %s: %s", op,
             rd_kafka_error_string(e));
    rp_worker_set_fatal(w, msg);
    return true;
}

/* Abort the open transaction (or resume an abort), then produce its jobs
 * again in a new one, except those of partitions in dropping (being
 * revoked) or no longer ours: they end unpublished and their next owner
 * publishes them. */
static void rp_txn_abort(rp_worker_t *w,
                         const rd_kafka_topic_partition_list_t *dropping,
                         const char *why)
{
    rd_kafka_error_t *e;
    rp_list_t batch, *n, *tmp;

    if (w->txn != RP_TXN_ABORTING)
        rp_log(RP_LOG_WARN, "transaction_aborted", NULL, NULL,
               "%s; producing its results again", why);
    w->txn = RP_TXN_ABORTING;
    int64_t t0 = rp_time_mono_ms();
    e = rd_kafka_abort_transaction(
        w->producer, rp_worker_call_ms(w, RP_WORKER_TXN_TIMEOUT_MS));
    rp_wmetrics_commit(w, "abort_transaction", !e, t0);
    if (e) {
        if (rp_txn_fatal(w, e, "abort")) {
            /* stopping */
        } else if (rd_kafka_error_is_retriable(e)) {
            rp_log(RP_LOG_WARN, "transaction_abort_failed", NULL, NULL,
                   "%s; trying again", rd_kafka_error_string(e));
            rp_txn_later(w);
        } else {
            /* librdkafka: treat what is neither retriable nor abortable
             * as fatal. */
            char msg[512];

            snprintf(msg, sizeof(msg), "transaction abort: %s",
                     rd_kafka_error_string(e));
            rp_worker_set_fatal(w, msg);
        }
        rd_kafka_error_destroy(e);
        return;
    }
    /* Serve the purged messages' delivery reports now, while their jobs
     * still exist. */
    rd_kafka_flush(w->producer, rp_worker_call_ms(w, RP_WORKER_FLUSH_MS));
    rp_txn_close(w);
    rp_list_init(&batch);
    while (!rp_list_empty(&w->txn_jobs)) {
        n = w->txn_jobs.next;
        rp_list_unlink(n);
        rp_list_push_tail(&batch, n);
    }
    RP_LIST_FOREACH_SAFE(n, tmp, &batch)
    {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, txn_link);

        rp_list_unlink(n);
        job->in_txn = false;
        if (job->txn_whole)
            (void)rp_offsets_unstage(w->offsets, job->partition, job->offset);
        job->txn_whole = false;
        if (!rp_job_current(w, job) ||
            (dropping && rp_partitions_match(job, dropping))) {
            rp_job_end(w, job, false);
            continue;
        }
        job->d_result.pending = job->d_dlq.pending = false;
        job->d_result.failed =
            job->result.execution_id[0] && job->result.session_id[0];
        job->d_dlq.failed = job->rejected;
        rp_publish_retry(w, job);
    }
}

/* Committed: the batch's jobs are done. */
static void rp_txn_committed(rp_worker_t *w)
{
    rp_list_t *n;
    size_t jobs = 0;

    if (w->txn_offsets)
        rp_partitions_committed(w, w->txn_offsets);
    rp_txn_close(w);
    while ((n = w->txn_jobs.next) != &w->txn_jobs) {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, txn_link);

        rp_list_unlink(n);
        job->in_txn = job->txn_whole = false;
        rp_job_end(w, job, true);
        jobs++;
    }
    rp_log(RP_LOG_DEBUG, "transaction_committed", NULL, NULL,
           "%zu result(s)", jobs);
}

/* Commit the open transaction (send_offsets already done), or resume a
 * commit that timed out. */
static void rp_txn_finish(rp_worker_t *w,
                          const rd_kafka_topic_partition_list_t *dropping)
{
    int64_t t0 = rp_time_mono_ms();
    rd_kafka_error_t *e = rd_kafka_commit_transaction(
        w->producer, rp_worker_call_ms(w, RP_WORKER_TXN_TIMEOUT_MS));

    rp_wmetrics_commit(w, "commit_transaction", !e, t0);

    if (!e) {
        rp_txn_committed(w);
        return;
    }
    if (rp_txn_fatal(w, e, "commit")) {
        /* stopping */
    } else if (rd_kafka_error_is_retriable(e) &&
               !rd_kafka_error_txn_requires_abort(e)) {
        /* Resumable: the commit goes on in the background. */
        rp_log(RP_LOG_WARN, "commit_failed", NULL, NULL,
               "transaction commit: %s; trying again",
               rd_kafka_error_string(e));
        w->txn = RP_TXN_COMMITTING;
        rp_txn_later(w);
    } else if (rd_kafka_error_txn_requires_abort(e)) {
        char why[512];

        snprintf(why, sizeof(why), "transaction commit failed: %s",
                 rd_kafka_error_string(e));
        rp_txn_abort(w, dropping, why);
    } else {
        /* Neither retriable nor abortable: librdkafka says fatal. The
         * commit may have landed; what did not is re-delivered. */
        char msg[512];

        snprintf(msg, sizeof(msg), "transaction commit: %s",
                 rd_kafka_error_string(e));
        rp_worker_set_fatal(w, msg);
    }
    rd_kafka_error_destroy(e);
}

void rp_txn_commit(rp_worker_t *w,
                   const rd_kafka_topic_partition_list_t *dropping,
                   bool force)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_consumer_group_metadata_t *cgmd;
    rd_kafka_error_t *e = NULL;

    if (w->fatal)
        return;
    if (w->txn == RP_TXN_ABORTING) {
        rp_txn_abort(w, dropping, "resumed");
        if (w->txn != RP_TXN_NONE)
            return;
    }
    if (w->txn == RP_TXN_COMMITTING) {
        rp_txn_finish(w, dropping);
        return;
    }
    if (w->txn == RP_TXN_OPEN && !rp_txn_partial(w)) {
        w->txn_partial_since = 0;
    } else if (w->txn == RP_TXN_OPEN) {
        int64_t now = rp_time_mono_ms();

        if (!w->txn_partial_since)
            w->txn_partial_since = now;
        /* Wait for the missing message's retry, but not so long that the
         * broker times the transaction out (then no retry can succeed),
         * nor when giving partitions up or exiting. */
        if (!force &&
            now - w->txn_partial_since < RP_WORKER_TXN_TIMEOUT_MS / 2) {
            rp_worker_arm(w, &w->txn_timer, now + RP_WORKER_TXN_MS);
            return;
        }
        rp_txn_abort(w, dropping, "a result could not be queued whole");
        if (w->txn == RP_TXN_ABORTING ||
            (w->txn == RP_TXN_OPEN && rp_txn_partial(w)))
            return;
    }
    list = rp_partitions_offsets(w, true);
    if ((w->txn == RP_TXN_NONE && list->cnt == 0) || !rp_txn_begin(w)) {
        rd_kafka_topic_partition_list_destroy(list);
        return; /* nothing new, or stopping */
    }
    if (list->cnt) {
        cgmd = rd_kafka_consumer_group_metadata(w->consumer);
        int64_t t0 = rp_time_mono_ms();
        e = rd_kafka_send_offsets_to_transaction(
            w->producer, list, cgmd,
            rp_worker_call_ms(w, RP_WORKER_TXN_TIMEOUT_MS));
        rp_wmetrics_commit(w, "send_offsets", !e, t0);
        rd_kafka_consumer_group_metadata_destroy(cgmd);
    }
    w->txn_offsets = list;
    if (!e) {
        rp_txn_finish(w, dropping);
        return;
    }
    if (!rp_txn_fatal(w, e, "offsets")) {
        char why[512];

        /* Also a timeout: the offsets are recomputed for the next one. */
        snprintf(why, sizeof(why), "cannot add the offsets: %s",
                 rd_kafka_error_string(e));
        rp_txn_abort(w, dropping, why);
    }
    rd_kafka_error_destroy(e);
}

/* A stop signal arrived (the loop has not started: read it here). */
static bool rp_txn_stop_asked(rp_worker_t *w)
{
    struct signalfd_siginfo si;

    return read(w->sig_fd, &si, sizeof(si)) == sizeof(si);
}

rp_err_t rp_txn_init(rp_worker_t *w, char *errstr, size_t es)
{
    rd_kafka_error_t *e;
    rp_err_t err = RP_OK;

    /* Fences an earlier producer with the same transactional.id (this
     * worker before a restart) and aborts what it left open. A cluster
     * that is not there yet is waited for, as a consumer would, in steps
     * that let SIGTERM through. */
    while ((e = rd_kafka_init_transactions(w->producer,
                                           RP_WORKER_TXN_INIT_MS))) {
        rp_wmetrics_alive(w); /* waiting for a cluster is not hung */
        if (!rd_kafka_error_is_retriable(e)) {
            err = rp_errf(errstr, es, RP_ERR_KAFKA,
                          "cannot initialise transactions (--delivery "
                          "exactly-once needs Apache Kafka >= 2.5 or "
                          "compatible): %s",
                          rd_kafka_error_string(e));
            break;
        }
        rp_log(RP_LOG_WARN, "cluster_waiting", NULL, NULL,
               "no transaction coordinator yet (%s); still trying",
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        e = NULL;
        if (rp_txn_stop_asked(w)) {
            err = RP_ERR_CANCELLED;
            break;
        }
    }
    if (e)
        rd_kafka_error_destroy(e);
    return err;
}
