/* integration.replay — runpool-replay as a real process against a worker.
 *
 * Known requests and one bad input (which the worker sends to the DLQ) go
 * in; then runpool-replay prints an offset range (exactly those records),
 * copies the DLQ to another topic (keys and headers kept), re-executes two
 * requests into a scratch session (new ids, a header naming the original,
 * the live session's state byte for byte unchanged), does a dry run (nothing
 * sent), re-drives the DLQ only when asked for its reason, and refuses
 * ambiguous ranges with exit status 2 and a message saying why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "rp_testenv.h"

#define WAIT_MS 60000
#define RUN_MS 60000
#define QUIET_MS 4000 /* how long "nothing ran" is watched for */
#define MAX_LINES 64

typedef struct run_out {
    int status; /* exit status, -1 when killed */
    char *out;  /* whole stdout (owned) */
    char *err;  /* whole stderr (owned) */
    cJSON *lines[MAX_LINES];
    size_t n;
} run_out_t;

static int runs;
static char since[32]; /* unix seconds a little before the first record */

/* The whole of topic as replay options: --since on Apache Kafka (so
 * offsets-for-times is tested), and on the devbroker, whose mock cluster
 * does not answer offsets-for-times (librdkafka #4755), one --range per
 * non-empty partition from the watermarks. */
static int window(rp_te_t *te, const char *topic, char **argv,
                  char (*bufs)[64])
{
    int argc = 0;

    argv[argc++] = "--topic";
    argv[argc++] = (char *)topic;
    if (te->real_kafka) {
        argv[argc++] = "--since";
        argv[argc++] = since;
        return argc;
    }
    for (int p = 0; p < 4; p++) {
        int64_t lo, hi;

        /* A topic the replay created may have fewer partitions. */
        if (rd_kafka_query_watermark_offsets(te->producer, topic, p, &lo, &hi,
                                             10000))
            break;
        if (hi <= lo)
            continue;
        snprintf(bufs[p], 64, "%d:%lld-%lld", p, (long long)lo,
                 (long long)hi - 1);
        argv[argc++] = "--range";
        argv[argc++] = bufs[p];
    }
    return argc;
}

/* Run runpool-replay --brokers B [window of topic] ARGS... (NULL-ended);
 * topic NULL: no window. */
static void replay_in(rp_te_t *te, run_out_t *r, const char *topic, ...)
{
    char *argv[48], bin[4200], outp[4200], errp[4200], rel[64];
    char bufs[4][64];
    const char *a;
    va_list ap;
    int argc = 0, ws;

    memset(r, 0, sizeof(*r));
    rp_te_format(bin, sizeof(bin), "%s/runpool-replay", te->bin_dir);
    argv[argc++] = bin;
    argv[argc++] = "--brokers";
    argv[argc++] = te->brokers;
    if (topic)
        argc += window(te, topic, argv + argc, bufs);
    va_start(ap, topic);
    while ((a = va_arg(ap, const char *)) && argc < 46)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    runs++;
    rp_te_format(rel, sizeof(rel), "replay-%d.out", runs);
    rp_te_path(te, outp, sizeof(outp), rel);
    rp_te_format(rel, sizeof(rel), "replay-%d.err", runs);
    rp_te_path(te, errp, sizeof(errp), rel);
    ws = rp_te_run(te, argv, NULL, outp, errp, RUN_MS);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    r->out = rp_te_read_file(outp, NULL);
    r->err = rp_te_read_file(errp, NULL);
    if (!r->out)
        r->out = strdup("");
    if (!r->err)
        r->err = strdup("");
    assert_non_null(r->out);
    assert_non_null(r->err);
    /* JSON lines, unless it is the --help text. */
    for (char *line = r->out, *nl; *line == '{'; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl); /* every line ends */
        *nl = '\0';
        assert_true(r->n < MAX_LINES);
        r->lines[r->n] = cJSON_Parse(line);
        if (!r->lines[r->n])
            fail_msg("replay run %d: not a JSON line: %s", runs, line);
        *nl = '\n';
        r->n++;
    }
    fprintf(stderr, "replay run %d: exit %d, %zu lines; stderr: %s", runs,
            r->status, r->n, r->err);
    /* Under build-asan: no sanitizer report from the tool itself. */
    if (strstr(r->err, "Sanitizer") || strstr(r->err, "runtime error:"))
        fail_msg("replay run %d: sanitizer report in its stderr", runs);
}

static void run_clear(run_out_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        cJSON_Delete(r->lines[i]);
    free(r->out);
    free(r->err);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static long long jint(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsNumber(it));
    return (long long)it->valuedouble;
}

/* A field of the JSON document in a line's "value". */
static char *value_field(const cJSON *line, const char *name)
{
    cJSON *v = cJSON_Parse(jstr(line, "value") ? jstr(line, "value") : "");
    const char *s = v ? jstr(v, name) : NULL;
    char *out = s ? strdup(s) : NULL;

    cJSON_Delete(v);
    return out;
}

static const char *line_header(const cJSON *line, const char *name)
{
    const cJSON *h;

    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(line, "headers"))
        if (jstr(h, "key") && !strcmp(jstr(h, "key"), name))
            return jstr(h, "value");
    return NULL;
}

/* The tag a --reexecute run printed on stderr ("replay tag T: ..."). */
static void tag_of(const run_out_t *r, char *tag, size_t size)
{
    const char *p = r->err ? strstr(r->err, "replay tag ") : NULL;
    size_t n;

    if (!p)
        fail_msg("runpool-replay --reexecute printed no tag: %s",
                 r->err ? r->err : "");
    p += strlen("replay tag ");
    n = strcspn(p, ":");
    assert_true(n > 0 && n < size);
    memcpy(tag, p, n);
    tag[n] = '\0';
}

static void expect_value_id(const cJSON *line, const char *eid)
{
    char *got = value_field(line, "execution_id");

    if (!got || strcmp(got, eid))
        fail_msg("expected execution_id %s, got %s", eid, got ? got : "(none)");
    free(got);
}

static void expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' not in: %s", needle, hay);
}

/* Create topic with 4 partitions through the Admin API (a real broker
 * here does not create topics on first use). */
static void create_topic(rp_te_t *te, const char *topic)
{
    char es[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 4, 1, es, sizeof(es));
    rd_kafka_queue_t *q = rd_kafka_queue_new(te->producer);
    rd_kafka_event_t *ev;
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **tr;
    size_t n;

    assert_non_null(nt);
    rd_kafka_CreateTopics(te->producer, &nt, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    assert_non_null(ev);
    res = rd_kafka_event_CreateTopics_result(ev);
    assert_non_null(res);
    tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    if (rd_kafka_topic_result_error(tr[0]) &&
        rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        fail_msg("create topic %s: %s", topic,
                 rd_kafka_topic_result_error_string(tr[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

static char *state_of(rp_te_t *te, const char *sid)
{
    char rel[256], path[4400];

    rp_te_format(rel, sizeof(rel), "state/sessions/%s/state.json", sid);
    rp_te_path(te, path, sizeof(path), rel);
    return rp_te_read_file(path, NULL);
}

static void test_replay(void **state)
{
    rp_te_t *te = *state;
    rp_te_sent_t s1a = {0}, s1b = {0}, s2a = {0}, bad = {0};
    const char *eids[] = {"rp-e1", "rp-e2", "rp-e3"};
    const char *reids[] = {"rp-e1.r1", "rp-e2.r1"};
    char range[64], range_all[64], end_beyond[32], part[16];
    char tag[32], dry_id[64];
    char *live_before, *live_after;
    const rp_te_msg_t *m;
    int w;
    run_out_t r;

    snprintf(since, sizeof(since), "%lld", (long long)time(NULL) - 5);
    w = rp_te_start_worker(te);
    assert_int_equal(rp_te_wait_group(te, &w, 1, WAIT_MS), 1);

    /* Session rp-s1 keeps state: cd and a variable. */
    rp_te_send_exec_sent(te, "rp-s1", "rp-e1",
                         "mkdir -p d && cd d && export K=one && echo one", 0,
                         NULL, &s1a);
    rp_te_send_exec_sent(te, "rp-s1", "rp-e2", "echo \"two $K\"", 0, NULL,
                         &s1b);
    rp_te_send_exec_sent(te, "rp-s2", "rp-e3", "echo three", 0, NULL, &s2a);
    rp_te_send_raw(te, "rp-bad", 6, "this is {not json", 17, &bad);
    rp_te_flush(te);
    rp_te_wait_results_for(te, eids, 3, WAIT_MS);
    assert_true(rp_te_wait_dlq(te, 1, WAIT_MS));
    rp_te_expect(te, rp_te_need_result(te, "rp-e2", 1), "succeeded", "two one\n");
    /* Same key, same partition, in order. */
    assert_int_equal(s1a.partition, s1b.partition);
    assert_int_equal(s1b.offset, s1a.offset + 1);
    live_before = state_of(te, "rp-s1");
    assert_non_null(live_before);

    /* 1. Print exactly the range: rp-s1's two requests. */
    snprintf(range, sizeof(range), "%d:%lld-%lld", (int)s1a.partition,
             (long long)s1a.offset, (long long)s1b.offset);
    replay_in(te, &r, NULL, "--range", range, "--progress", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 2);
    expect_value_id(r.lines[0], "rp-e1");
    expect_value_id(r.lines[1], "rp-e2");
    assert_int_equal(jint(r.lines[0], "partition"), s1a.partition);
    assert_int_equal(jint(r.lines[0], "offset"), s1a.offset);
    assert_int_equal(jint(r.lines[1], "offset"), s1b.offset);
    assert_string_equal(jstr(r.lines[0], "key"), "rp-s1");
    assert_string_equal(jstr(r.lines[0], "topic"), "runpool.requests");
    assert_non_null(jstr(r.lines[0], "timestamp"));
    expect_in(r.err, "read 2, matched 2");
    run_clear(&r);

    /* The same by time, filtered by session and by execution id. */
    replay_in(te, &r, "runpool.requests", "--session", "rp-s1", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 2);
    expect_value_id(r.lines[0], "rp-e1");
    expect_value_id(r.lines[1], "rp-e2");
    run_clear(&r);
    replay_in(te, &r, "runpool.requests", "--execution", "rp-e3", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    expect_value_id(r.lines[0], "rp-e3");
    expect_in(r.err, "read 4, matched 1");
    expect_in(r.err, "skipped: execution 3");
    run_clear(&r);
    /* Results filtered by status. */
    replay_in(te, &r, "runpool.results", "--status", "succeeded",
              "--session", "rp-s1", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(line_header(r.lines[0], "status"), "succeeded");
    run_clear(&r);

    /* 2. Copy the DLQ to another topic: key and headers kept. */
    /* Apache Kafka here creates no topic on first use; the devbroker's
     * mock cluster does, and does not answer CreateTopics. */
    if (te->real_kafka)
        create_topic(te, "rp-it-replay-copy");
    replay_in(te, &r, "runpool.dlq", "--copy-to", "rp-it-replay-copy", NULL);
    assert_int_equal(r.status, 0);
    expect_in(r.err, "read 1, matched 1, sent 1, failed 0");
    run_clear(&r);
    replay_in(te, &r, "rp-it-replay-copy", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(jstr(r.lines[0], "key"), "rp-bad");
    assert_string_equal(jstr(r.lines[0], "value"), "this is {not json");
    assert_string_equal(line_header(r.lines[0], "runpool.error.code"),
                        "invalid_request");
    assert_string_equal(line_header(r.lines[0], "runpool.source.topic"),
                        "runpool.requests");
    run_clear(&r);

    /* 3. Dry run of a re-execution: shows it, sends nothing. */
    snprintf(range_all, sizeof(range_all), "%d:%lld-%lld", (int)s2a.partition,
             (long long)s2a.offset, (long long)s2a.offset);
    replay_in(te, &r, NULL, "--range", range_all, "--reexecute", "--session-prefix",
           "dry-", "--dry-run", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    tag_of(&r, tag, sizeof(tag));
    rp_te_format(dry_id, sizeof(dry_id), "rp-e3.r%s", tag);
    expect_value_id(r.lines[0], dry_id);
    assert_string_equal(jstr(r.lines[0], "key"), "dry-rp-s2");
    assert_string_equal(line_header(r.lines[0], "runpool-replay-of"), "rp-e3");
    expect_in(r.err, "would send 1");
    run_clear(&r);

    /* 4. Re-execute rp-s1's two requests into a scratch session (tag "1":
     * ids rp-e1.r1, rp-e2.r1). */
    replay_in(te, &r, NULL, "--range", range, "--reexecute", "--session-prefix",
           "scratch-", "--replay-tag", "1", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 0);
    expect_in(r.err, "read 2, matched 2, sent 2, failed 0");
    run_clear(&r);
    rp_te_wait_results_for(te, reids, 2, WAIT_MS);
    m = rp_te_need_result(te, "rp-e1.r1", 1);
    rp_te_expect(te, m, "succeeded", "one\n");
    assert_string_equal(rp_te_str(m, "session_id"), "scratch-rp-s1");
    m = rp_te_need_result(te, "rp-e2.r1", 1);
    /* It ran in the scratch session's own state, made by rp-e1.r1. */
    rp_te_expect(te, m, "succeeded", "two one\n");
    assert_string_equal(rp_te_str(m, "session_id"), "scratch-rp-s1");
    /* The re-submitted requests carry the original's id in a header. */
    replay_in(te, &r, "runpool.requests", "--session", "scratch-rp-s1", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 2);
    expect_value_id(r.lines[0], "rp-e1.r1");
    assert_string_equal(line_header(r.lines[0], "runpool-replay-of"), "rp-e1");
    assert_string_equal(line_header(r.lines[1], "runpool-replay-of"), "rp-e2");
    assert_non_null(line_header(r.lines[1], "runpool-replay-source"));
    run_clear(&r);
    /* The same replay again, untagged: new ids that run again (a
     * repeated id would only get the first run's result back, reused). */
    replay_in(te, &r, NULL, "--range", range, "--reexecute", "--session-prefix",
           "again-", NULL);
    assert_int_equal(r.status, 0);
    expect_in(r.err, "sent 2, failed 0");
    tag_of(&r, tag, sizeof(tag));
    assert_string_not_equal(tag, "1");
    run_clear(&r);
    {
        char id1[64], id2[64];
        const char *ids[2] = {id1, id2};

        rp_te_format(id1, sizeof(id1), "rp-e1.r%s", tag);
        rp_te_format(id2, sizeof(id2), "rp-e2.r%s", tag);
        rp_te_wait_results_for(te, ids, 2, WAIT_MS);
        m = rp_te_need_result(te, id2, 1);
        rp_te_expect(te, m, "succeeded", "two one\n");
        assert_null(cJSON_GetObjectItem(m->json, "reused"));
    }
    /* The live session: state unchanged, no new results for its ids. */
    live_after = state_of(te, "rp-s1");
    assert_non_null(live_after);
    assert_string_equal(live_before, live_after);
    assert_int_equal(rp_te_results_for(te, "rp-e1", NULL, 0), 1);
    assert_int_equal(rp_te_results_for(te, "rp-e2", NULL, 0), 1);
    free(live_before);
    free(live_after);
    /* Nothing of the dry run ran. */
    assert_null(rp_te_wait_result(te, dry_id, QUIET_MS));

    /* 5. DLQ re-drive: invalid_request is not retriable by default. */
    replay_in(te, &r, "runpool.dlq", "--from-dlq", NULL);
    assert_int_equal(r.status, 0);
    expect_in(r.err, "matched 0, sent 0, failed 0, skipped: not_retriable 1");
    run_clear(&r);
    replay_in(te, &r, "runpool.dlq", "--from-dlq", "--reason",
              "invalid_request", "--dry-run", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(jstr(r.lines[0], "value"), "this is {not json");
    assert_string_equal(jstr(r.lines[0], "topic"), "runpool.requests");
    assert_null(line_header(r.lines[0], "runpool.error.code"));
    run_clear(&r);

    /* 6. Refused ranges: exit 2 and why. */
    replay_in(te, &r, NULL, NULL);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "no range");
    run_clear(&r);
    snprintf(part, sizeof(part), "%d", (int)s1a.partition);
    replay_in(te, &r, NULL, "--since", since, "--partition", part, "--start-offset",
           "0", "--end-offset", "1", NULL);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "ambiguous range");
    run_clear(&r);
    replay_in(te, &r, NULL, "--since", "2000", "--until", "1000", NULL);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "--until must be after --since");
    run_clear(&r);
    snprintf(end_beyond, sizeof(end_beyond), "%lld", (long long)s1b.offset + 1000);
    replay_in(te, &r, NULL, "--partition", part, "--start-offset", "0", "--end-offset",
           end_beyond, NULL);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "beyond the end");
    run_clear(&r);
    replay_in(te, &r, NULL, "--range", range, "--reexecute", NULL);
    assert_int_equal(r.status, 2);
    expect_in(r.err, "--session-prefix");
    run_clear(&r);
    replay_in(te, &r, NULL, "--help", NULL);
    assert_int_equal(r.status, 0);
    expect_in(r.out, "--session-prefix");
    expect_in(r.out, "Exit status");
    run_clear(&r);

    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay, rp_te_setup,
                                        rp_te_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
