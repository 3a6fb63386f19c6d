/* rp_partitions — what Kafka gives and takes: assignment epochs, commits
 * of the lowest unfinished offset, revocation, and flow control (pause at
 * --max-inflight, at a partition's --max-window, and on drain; resume
 * below RP_WORKER_RESUME_PCT). Main thread only: librdkafka calls the
 * rebalance callback from rd_kafka_consumer_poll on it.
 */
#include "rp_hash.h"
#include "rp_time.h"
#include "rp_worker_int.h"

#include <stdlib.h>
#include <string.h>

#include "rp_log.h"

bool rp_partitions_match(const rp_job_t *job,
                         const rd_kafka_topic_partition_list_t *parts)
{
    if (!parts)
        return true;
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == job->partition)
            return true;
    return false;
}

static int rp_partitions_match_fn(void *job, void *parts)
{
    return rp_partitions_match(job, parts);
}

static void rp_partitions_drop_fn(void *job, void *opaque)
{
    rp_job_t *j = job;

    (void)opaque;
    rp_job_drop(j->w, j);
}

size_t rp_partitions_drop_queued(rp_worker_t *w,
                                 const rd_kafka_topic_partition_list_t *parts)
{
    return rp_sched_drop_queued(w->sched, rp_partitions_match_fn,
                                rp_partitions_drop_fn, (void *)parts);
}

rp_err_t rp_partitions_grow(rp_worker_t *w, int32_t p)
{
    rp_part_t *part;
    int32_t n;

    if (p < w->npart)
        return RP_OK;
    if (p >= RP_OFFSETS_PARTITIONS_MAX)
        return RP_ERR_INVALID;
    n = p + 1 > w->npart * 2 ? p + 1 : w->npart * 2;
    if (!(part = realloc(w->part, (size_t)n * sizeof(*part))))
        return RP_ERR_NOMEM;
    w->part = part;
    for (int32_t i = w->npart; i < n; i++)
        w->part[i] = (rp_part_t){.committed = -1};
    w->npart = n;
    return RP_OK;
}

/* Is partition p's offset window at its bound? Pauses at --max-window,
 * resumes below RESUME_PCT of it. */
bool rp_partitions_window_full(const rp_worker_t *w, int32_t p)
{
    size_t win = rp_offsets_window(w->offsets, p);
    size_t max = (size_t)w->conf.max_window;

    if (w->part[p].meta_full)
        return true;
    return w->part[p].win_paused ? win * 100 >= max * RP_WORKER_RESUME_PCT
                            : win >= max;
}

/* FNV-1a of a commit's metadata: a commit is due when it changes. */
static uint64_t rp_partitions_hash(const char *s, size_t n)
{
    return rp_hash_fnv1a64(RP_HASH_FNV1A64_INIT, s, n);
}

/* Forget what p's last commit was (a new assignment). */
static void rp_partitions_forget(rp_worker_t *w, int32_t p)
{
    w->part[p] = (rp_part_t){.epoch = w->part[p].epoch + 1, .committed = -1};
}

rd_kafka_topic_partition_list_t *rp_partitions_offsets(rp_worker_t *w,
                                                       bool staged)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_new(16);
    char meta[RP_OFFSETS_META_MAX + 1];

    for (int32_t p = 0; p < w->npart; p++) {
        rd_kafka_topic_partition_t *tp;
        bool truncated, full;
        int64_t off;
        size_t len = rp_offsets_encode(w->offsets, p, staged, &off, meta,
                                       sizeof(meta), &truncated);
        uint64_t h = rp_partitions_hash(meta, len);

        if (off < 0)
            continue;
        /* Near the bound, pause the partition (as at --max-window) until
         * finished offsets catch up with the commit point. */
        full = truncated || len > RP_OFFSETS_META_MAX * 3 / 4;
        if (full != w->part[p].meta_full) {
            w->part[p].meta_full = full;
            w->window_check = true;
            if (truncated)
                rp_log(RP_LOG_WARN, "commit_metadata_full", NULL, NULL,
                       "partition %d: the finished offsets above %lld do "
                       "not all fit in %d bytes of commit metadata; those "
                       "left out would be published again after a crash",
                       (int)p, (long long)off, RP_OFFSETS_META_MAX);
        }
        if (off == w->part[p].committed && h == w->part[p].meta_hash)
            continue;
        tp = rd_kafka_topic_partition_list_add(list, w->conf.requests_topic,
                                               p);
        tp->offset = off;
        if (len && !(tp->metadata = malloc(len))) {
            /* Without its metadata the commit would forget the finished
             * offsets above it: leave this partition for the next one. */
            rd_kafka_topic_partition_list_del_by_idx(list, list->cnt - 1);
            continue;
        }
        if (len) {
            memcpy(tp->metadata, meta, len);
            tp->metadata_size = len;
        }
    }
    return list;
}

void rp_partitions_committed(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];

        if (tp->partition < 0 || tp->partition >= w->npart)
            continue;
        w->part[tp->partition].committed = tp->offset;
        w->part[tp->partition].meta_hash =
            rp_partitions_hash(tp->metadata, tp->metadata_size);
    }
}

void rp_partitions_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets,
                             void *opaque)
{
    rp_worker_t *w = opaque;

    (void)rk;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets)
        return;
    /* Forget what we thought was committed, so the next turn commits it
     * again (a failed async commit used to be lost until the next
     * change). */
    for (int i = 0; i < offsets->cnt; i++) {
        int32_t p = offsets->elems[i].partition;

        if (p >= 0 && p < w->npart &&
            w->part[p].committed == offsets->elems[i].offset) {
            w->part[p].committed = -1;
            w->part[p].meta_hash = 0;
        }
    }
}

/* A new assignment: read what the last owner committed, so records it
 * finished above its commit point are not published again. */
static void rp_partitions_restore(rp_worker_t *w,
                                  const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *list =
        rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t kerr = rd_kafka_committed(
        w->consumer, list, rp_worker_call_ms(w, RP_WORKER_COMMIT_WAIT_MS));

    if (kerr) {
        rp_log(RP_LOG_WARN, "committed_unknown", NULL, NULL,
               "cannot read the committed offsets: %s; requests finished "
               "above them will be published again",
               rd_kafka_err2str(kerr));
        goto out;
    }
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        int32_t p = tp->partition;
        rp_err_t err;

        if (tp->err) {
            rp_log(RP_LOG_WARN, "committed_unknown", NULL, NULL,
                   "partition %d: cannot read its committed offset: %s; "
                   "requests finished above it will be published again",
                   (int)p, rd_kafka_err2str(tp->err));
            continue;
        }
        if (tp->offset < 0 || p < 0 || p >= w->npart)
            continue;
        err = rp_offsets_restore(w->offsets, p, tp->offset, tp->metadata,
                                 tp->metadata_size);
        if (err == RP_OK) {
            w->part[p].committed = tp->offset;
            w->part[p].meta_hash =
                rp_partitions_hash(tp->metadata, tp->metadata_size);
        } else {
            rp_log(RP_LOG_WARN, "commit_metadata_unknown", NULL, NULL,
                   "partition %d: the commit at offset %lld carries metadata "
                   "runpool did not write (%zu bytes); requests finished "
                   "above it will be published again",
                   (int)p, (long long)tp->offset, tp->metadata_size);
        }
    }
out:
    rd_kafka_topic_partition_list_destroy(list);
}

/* Commit list and wait for the broker's answer, but not for ever: a broker
 * that is gone must not hold a revoke or the shutdown (rd_kafka_commit's
 * synchronous form has no deadline). What a failed commit leaves out is
 * re-delivered, so giving up is safe. */
static rd_kafka_resp_err_t
rp_partitions_commit_wait(rp_worker_t *w, rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_resp_err_t kerr;
    rd_kafka_event_t *ev;

    if (!q)
        return RD_KAFKA_RESP_ERR__FAIL;
    kerr = rd_kafka_commit_queue(w->consumer, list, q, NULL, NULL);
    if (!kerr) {
        ev = rd_kafka_queue_poll(
            q, rp_worker_call_ms(w, RP_WORKER_COMMIT_WAIT_MS));
        if (!ev) {
            kerr = RD_KAFKA_RESP_ERR__TIMED_OUT;
        } else {
            kerr = rd_kafka_event_error(ev);
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    return kerr;
}

/* Commit what is finished for the given partitions (all assigned when
 * NULL). sync: wait for the broker, up to RP_WORKER_COMMIT_WAIT_MS
 * (before giving partitions up, and at exit). */
void rp_partitions_commit(rp_worker_t *w,
                          const rd_kafka_topic_partition_list_t *only,
                          bool sync)
{
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t kerr;

    if (w->eos) {
        rp_txn_commit(w, only, sync);
        return;
    }
    /* Every changed partition, not only those asked for: committing more
     * than asked is harmless, and one list is one request. */
    list = rp_partitions_offsets(w, false);
    rp_partitions_committed(w, list);
    if (list->cnt > 0) {
        int64_t t0 = rp_time_mono_ms();
        kerr = sync ? rp_partitions_commit_wait(w, list)
                    : rd_kafka_commit(w->consumer, list, 1);
        /* async: only the time to queue it; its answer is commit_cb's */
        rp_wmetrics_commit(w, sync ? "offsets" : "offsets_async",
                           !kerr || kerr == RD_KAFKA_RESP_ERR__NO_OFFSET, t0);
        if (kerr && kerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            rp_log(RP_LOG_WARN, "commit_failed", NULL, NULL, "commit: %s",
                   rd_kafka_err2str(kerr));
            rp_partitions_commit_cb(w->consumer, kerr, list, w);
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Partitions are going away: commit what is done, abandon the rest. */
static void rp_partitions_revoke(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *parts)
{
    rp_list_t *n, *tmp;
    size_t dropped;

    rp_partitions_commit(w, parts, true);
    dropped = rp_partitions_drop_queued(w, parts);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;

        if (p < w->npart)
            rp_partitions_forget(w, p);
        rp_offsets_reset(w->offsets, p);
    }
    dropped += rp_job_drop_ready(w, parts);
    RP_LIST_FOREACH_SAFE(n, tmp, &w->jobs)
    {
        rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, link);

        if (!rp_partitions_match(job, parts) || job->revoked)
            continue;
        job->revoked = true;
        atomic_store(&job->io_revoked, true);
        /* At least once: a job already publishing finishes its publish;
         * the new owner reuses the record and skips it only if our commit
         * named it. Exactly once: the commit above took every queued
         * result; what was not queued ends unpublished. */
        if (job->stage == RP_JOB_RUNNING && job->run)
            rp_backend_detach(w->backend, job->run);
    }
    rp_log(RP_LOG_INFO, "partitions_revoked", NULL, NULL,
           "%d partition(s) revoked; %zu queued request(s) left for the next "
           "owner",
           parts->cnt, dropped);
}

static void rp_partitions_assign(rp_worker_t *w,
                             const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;

        if (rp_partitions_grow(w, p) == RP_OK) {
            rp_partitions_forget(w, p);
            w->part[p].assigned = true;
        }
        rp_offsets_reset(w->offsets, p);
    }
    rp_partitions_restore(w, parts);
    w->ever_assigned = true;
    w->reapply_pause = true;
    rp_log(RP_LOG_INFO, "partitions_assigned", NULL, NULL,
           "%d partition(s) assigned", parts->cnt);
}

void rp_partitions_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t *parts,
                                   void *opaque)
{
    rp_worker_t *w = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *kerr = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rp_partitions_assign(w, parts);
        if (coop)
            kerr = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        rp_partitions_revoke(w, parts);
        if (coop)
            kerr = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    {
        rd_kafka_topic_partition_list_t *now = NULL;
        int n = 0;
        if (!rd_kafka_assignment(rk, &now) && now)
            n = now->cnt;
        if (now)
            rd_kafka_topic_partition_list_destroy(now);
        rp_wmetrics_rebalance(w, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS,
                              parts, n);
    }
    if (kerr) {
        rp_log(RP_LOG_ERROR, "rebalance_failed", NULL, NULL, "%s",
               rd_kafka_error_string(kerr));
        rd_kafka_error_destroy(kerr);
    }
}

/* Say which execution holds partition p's window open. */
static void rp_partitions_log_window(rp_worker_t *w, int32_t p, bool paused)
{
    int64_t low = rp_offsets_committable(w->offsets, p);
    const rp_job_t *oldest = NULL;

    if (!paused) {
        rp_log(RP_LOG_INFO, "partition_resumed", NULL, NULL,
               "partition %d: offset window below %d%% of --max-window %d",
               (int)p, RP_WORKER_RESUME_PCT, w->conf.max_window);
        return;
    }
    rp_list_t *n;

    for (n = w->jobs.next; n != &w->jobs && !oldest; n = n->next) {
        const rp_job_t *job = RP_LIST_ENTRY(n, rp_job_t, link);

        if (job->partition == p && job->offset == low && !job->revoked)
            oldest = job;
    }
    rp_log(RP_LOG_WARN, "partition_paused", oldest ? rp_job_eid(oldest) : NULL,
           oldest ? rp_job_sid(oldest) : NULL,
           "partition %d paused: %zu offsets since the oldest unfinished one "
           "(offset %lld) %s; it resumes as that one finishes",
           (int)p, rp_offsets_window(w->offsets, p), (long long)low,
           w->part[p].meta_full
               ? "hold more finished gaps than the commit metadata bound"
               : "reach --max-window");
}

/* Pause every assigned partition at the in-flight limit, and any partition
 * whose offset window reached --max-window; resume each below RESUME_PCT
 * of its limit. librdkafka keeps fetch positions, so nothing is lost. */
void rp_partitions_flow_control(rp_worker_t *w)
{
    bool want = w->draining ||
                w->inflight >= (size_t)w->conf.max_inflight ||
                (w->paused && w->inflight * 100 >=
                                  (size_t)w->conf.max_inflight *
                                      RP_WORKER_RESUME_PCT);
    rd_kafka_topic_partition_list_t *parts = NULL, *pause = NULL,
                                    *resume = NULL;

    if (want == w->paused && !w->reapply_pause && !w->window_check)
        return;
    if (rd_kafka_assignment(w->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    pause = rd_kafka_topic_partition_list_new(parts->cnt ? parts->cnt : 1);
    resume = rd_kafka_topic_partition_list_new(parts->cnt ? parts->cnt : 1);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        bool known = p >= 0 && p < w->npart;
        bool was = known && w->part[p].win_paused;
        bool full = known && rp_partitions_window_full(w, p);

        if (known && full != was) {
            w->part[p].win_paused = full;
            rp_partitions_log_window(w, p, full);
        }
        if (want || full)
            rd_kafka_topic_partition_list_add(pause, parts->elems[i].topic, p);
        else if (w->paused || was || w->reapply_pause)
            rd_kafka_topic_partition_list_add(resume, parts->elems[i].topic,
                                              p);
    }
    if (pause->cnt)
        rd_kafka_pause_partitions(w->consumer, pause);
    if (resume->cnt)
        rd_kafka_resume_partitions(w->consumer, resume);
    if (want != w->paused)
        rp_log(RP_LOG_INFO, want ? "consumer_paused" : "consumer_resumed",
               NULL, NULL, "%zu request(s) in flight (limit %d)", w->inflight,
               w->conf.max_inflight);
    w->paused = want;
    w->reapply_pause = false;
    w->window_check = false;
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
    rd_kafka_topic_partition_list_destroy(parts);
}
