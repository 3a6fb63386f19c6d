/* integration.tail — runpool-tail, run as a real process, reads what a
 * real worker wrote.
 *
 * One worker runs known requests: two that succeed, one that fails (exit
 * 3), and one message that is not JSON goes to the DLQ. Then runpool-tail
 * --exit-at-end runs with each filter, format and --from form, and its
 * output must hold exactly the records the rig's own collector says match:
 * no more, no fewer. --with-requests must show each result's command,
 * --stats must count the statuses, a bad --from must be refused (exit 2),
 * and a tail that follows (no --exit-at-end) must exit 0 on SIGINT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rp_testenv.h"

#define WAIT_MS 60000
#define TAIL_TIMEOUT_MS 60000
#define LINES_MAX 64

static const char *const EIDS[] = {"tail-ok-1", "tail-fail", "tail-ok-2"};

typedef struct out_lines {
    cJSON *doc[LINES_MAX];
    size_t n;
    char *text; /* the whole output */
} out_lines_t;

static void lines_free(out_lines_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        cJSON_Delete(o->doc[i]);
    free(o->text);
    memset(o, 0, sizeof(*o));
}

/* Run runpool-tail with the test's brokers and extra args (NULL-ended);
 * returns its exit status; its stdout lines go into out (JSON parsed when
 * json). */
static int run_tail(rp_te_t *te, const char *const *extra, bool json,
                    out_lines_t *out)
{
    char bin[PATH_MAX], outp[PATH_MAX], errp[PATH_MAX];
    char *argv[32];
    int argc = 0, status;
    size_t len;
    char *save = NULL, *line, *copy;

    rp_te_format(bin, sizeof(bin), "%s/runpool-tail", te->bin_dir);
    rp_te_path(te, outp, sizeof(outp), "tail.out");
    rp_te_path(te, errp, sizeof(errp), "tail.err");
    argv[argc++] = bin;
    argv[argc++] = "--brokers";
    argv[argc++] = te->brokers;
    for (; *extra; extra++) {
        assert_true(argc < 30);
        argv[argc++] = (char *)*extra;
    }
    argv[argc] = NULL;
    status = rp_te_run(te, argv, NULL, outp, errp, TAIL_TIMEOUT_MS);
    memset(out, 0, sizeof(*out));
    out->text = rp_te_read_file(outp, &len);
    assert_non_null(out->text);
    if (json) {
        copy = strdup(out->text);
        assert_non_null(copy);
        for (line = strtok_r(copy, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            assert_true(out->n < LINES_MAX);
            out->doc[out->n] = cJSON_Parse(line);
            if (!out->doc[out->n])
                fail_msg("runpool-tail printed a line that is not JSON: %s",
                         line);
            out->n++;
        }
        free(copy);
    }
    return status;
}

static void expect_exit(int status, int code, const char *what)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
        fail_msg("runpool-tail %s: expected exit %d, got %s %d", what, code,
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static const char *sub_str(const cJSON *o, const char *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        obj ? cJSON_GetObjectItemCaseSensitive(o, obj) : o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The execution ids in out (results only), sorted into a "a,b,c" string
 * to compare with the expected set. */
static void eid_set(const out_lines_t *out, char *buf, size_t size)
{
    const char *ids[LINES_MAX];
    size_t n = 0, off = 0;

    for (size_t i = 0; i < out->n; i++) {
        const char *e = sub_str(out->doc[i], "result", "execution_id");

        ids[n++] = e ? e : "(dlq)";
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
            const char *t = ids[j];

            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "",
                                ids[i]);
}

static void expect_eids(rp_te_t *te, const char *const *args,
                        const char *want)
{
    out_lines_t out;
    char got[1024];

    expect_exit(run_tail(te, args, true, &out), 0, args[0]);
    eid_set(&out, got, sizeof(got));
    if (strcmp(got, want))
        fail_msg("runpool-tail %s %s: got [%s], want [%s]", args[0],
                 args[1] ? args[1] : "", got, want);
    print_message("[tail] %s %s -> [%s]\n", args[0], args[1] ? args[1] : "",
                  got);
    lines_free(&out);
}


/* Start runpool-tail (argv[0] = its path) with stdout to out_path. */
static pid_t spawn_tail(rp_te_t *te, char *const argv[], const char *out_path,
                        const char *err_path)
{
    pid_t pid;
    int fd;

    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(127);
        fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execve(argv[0], argv, te->child_env);
        _exit(127);
    }
    return pid;
}

/* Start runpool-tail with stdout to a new pipe, fds[0] its read end and
 * fds[1] our copy of the write end (the caller closes both). */
static pid_t spawn_tail_pipe(rp_te_t *te, char *const argv[], int fds[2])
{
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fds[1], 1) < 0)
            _exit(127);
        close(fds[0]);
        close(fds[1]);
        execve(argv[0], argv, te->child_env);
        _exit(127);
    }
    return pid;
}

/* Wait until path holds at least n lines; the text (caller frees). */
static char *wait_lines(pid_t pid, const char *path, size_t n)
{
    int64_t deadline = rp_te_now_ms() + TAIL_TIMEOUT_MS;
    int status;

    for (;;) {
        size_t len, nl = 0;
        char *text = rp_te_read_file(path, &len);

        for (size_t i = 0; text && i < len; i++)
            nl += text[i] == '\n';
        if (nl >= n)
            return text;
        free(text);
        if (rp_te_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("runpool-tail printed fewer than %zu lines to %s", n,
                     path);
        }
        rp_te_sleep_ms(100);
    }
}

/* Wait (up to 20 s) for a tail to exit; its status. why: what should
 * have ended it, for the failure message. */
static int wait_tail_exit(pid_t pid, const char *what, const char *why)
{
    int64_t deadline = rp_te_now_ms() + 20000;
    int status = 0;

    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (rp_te_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("runpool-tail %s did not exit within 20 s of %s", what,
                     why);
        }
        rp_te_sleep_ms(20);
    }
    return status;
}

/* SIGINT, then it must exit 0 within 20 s. */
static void stop_tail(pid_t pid, const char *what)
{
    kill(pid, SIGINT);
    expect_exit(wait_tail_exit(pid, what, "SIGINT"), 0, what);
    print_message("[tail] %s: SIGINT -> exit 0\n", what);
}

static size_t curl_sink(char *p, size_t size, size_t n, void *arg)
{
    FILE *f = arg;

    return fwrite(p, size, n, f);
}

/* GET url; the body (caller frees). Fails the test on a non-200. */
static char *scrape(const char *url)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    CURL *c = curl_easy_init();
    long code = 0;
    CURLcode rc;

    assert_non_null(f);
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    fclose(f);
    if (rc != CURLE_OK || code != 200)
        fail_msg("GET %s: %s, HTTP %ld", url, curl_easy_strerror(rc), code);
    return body;
}

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

static void test_tail(void **state)
{
    rp_te_t *te = *state;
    int w = rp_te_start_worker(te);
    const char *const sent_cmds[] = {"echo one", "echo oops >&2; exit 3",
                                     "echo two"};
    const char *const sessions[] = {"tail-s1", "tail-s1", "tail-s2"};
    char worker_arg[400], from_arg[64];
    int64_t t0 = wall_s();
    out_lines_t out;
    size_t parts_with_results = 0;
    bool seen_part[RP_TE_PARTITIONS] = {false};

    for (int i = 0; i < 3; i++)
        rp_te_send_exec(te, sessions[i], EIDS[i], sent_cmds[i], 0, NULL);
    rp_te_send_raw(te, "tail-s3", 7, "this is {not json", 17, NULL);
    rp_te_flush(te);
    rp_te_wait_results_for(te, EIDS, 3, WAIT_MS);
    assert_true(rp_te_wait_dlq(te, 1, WAIT_MS));
    rp_te_expect(te, rp_te_need_result(te, "tail-ok-1", 1), "succeeded",
                 "one\n");
    rp_te_expect(te, rp_te_need_result(te, "tail-fail", 1), "failed", "");
    assert_int_equal(rp_te_result_count(te), 3);

    /* Everything, then each filter keeps exactly its records. */
    {
        const char *const a[] = {"--from", "beginning", "--exit-at-end",
                                 "--format", "json", NULL};
        expect_eids(te, a, "tail-fail,tail-ok-1,tail-ok-2");
    }
    {
        const char *const a[] = {"--session", "tail-s1", "--from",
                                 "beginning", "--exit-at-end", NULL};
        expect_eids(te, a, "tail-fail,tail-ok-1");
    }
    {
        const char *const a[] = {"--status", "failed", "--from", "beginning",
                                 "--exit-at-end", NULL};
        expect_eids(te, a, "tail-fail");
    }
    {
        const char *const a[] = {"--execution", "tail-ok-1,tail-ok-2",
                                 "--from", "beginning", "--exit-at-end",
                                 NULL};
        expect_eids(te, a, "tail-ok-1,tail-ok-2");
    }
    {
        const char *const a[] = {"--execution", "tail-ok-2", "--execution",
                                 "tail-fail", "--status", "succeeded",
                                 "--from", "beginning", "--exit-at-end",
                                 NULL};
        expect_eids(te, a, "tail-ok-2"); /* filters combine with AND */
    }
    rp_te_format(worker_arg, sizeof(worker_arg), "%s",
                 te->procs[w].worker_id);
    {
        const char *const a[] = {"--worker", worker_arg, "--from",
                                 "beginning", "--exit-at-end", NULL};
        expect_eids(te, a, "tail-fail,tail-ok-1,tail-ok-2");
    }
    {
        const char *const a[] = {"--worker", "nobody:1", "--from",
                                 "beginning", "--exit-at-end", NULL};
        expect_eids(te, a, "");
    }
    /* The DLQ: the one bad message, with its reason and key. */
    {
        const char *const a[] = {"--dlq", "--from", "beginning",
                                 "--exit-at-end", "--format", "json", NULL};
        expect_exit(run_tail(te, a, true, &out), 0, "--dlq");
        assert_int_equal(out.n, 1);
        assert_string_equal(sub_str(out.doc[0], NULL, "topic"), "dlq");
        assert_string_equal(sub_str(out.doc[0], NULL, "key"), "tail-s3");
        assert_string_equal(sub_str(out.doc[0], "dlq", "reason"),
                            "invalid_request");
        assert_string_equal(sub_str(out.doc[0], "dlq", "payload"),
                            "this is {not json");
        assert_string_equal(sub_str(out.doc[0], "dlq", "worker"),
                            te->procs[w].worker_id);
        lines_free(&out);
    }
    {
        const char *const a[] = {"--both", "--status", "dlq,failed", "--from",
                                 "beginning", "--exit-at-end", NULL};
        expect_eids(te, a, "(dlq),tail-fail");
    }
    /* --with-requests: each result with the command that produced it. */
    {
        const char *const a[] = {"--with-requests", "--from", "beginning",
                                 "--exit-at-end", "--format", "json", NULL};
        expect_exit(run_tail(te, a, true, &out), 0, "--with-requests");
        assert_int_equal(out.n, 3);
        for (size_t i = 0; i < out.n; i++) {
            const char *eid = sub_str(out.doc[i], "result", "execution_id");
            const char *cmd = sub_str(out.doc[i], "request", "command");
            int k = -1;

            for (int j = 0; j < 3; j++)
                if (eid && !strcmp(eid, EIDS[j]))
                    k = j;
            assert_true(k >= 0);
            if (!cmd || strcmp(cmd, sent_cmds[k]))
                fail_msg("%s: request command '%s', want '%s'", eid,
                         cmd ? cmd : "(none)", sent_cmds[k]);
            assert_string_equal(sub_str(out.doc[i], "request",
                                        "execution_id"), eid);
        }
        lines_free(&out);
    }
    /* The table (not a terminal: no colours), with the commands. */
    {
        const char *const a[] = {"--with-requests", "--from", "beginning",
                                 "--exit-at-end", "--format", "table", NULL};
        expect_exit(run_tail(te, a, false, &out), 0, "--format table");
        assert_non_null(strstr(out.text, "EXECUTION"));
        assert_non_null(strstr(out.text, "tail-fail"));
        assert_non_null(strstr(out.text, "failed"));
        assert_non_null(strstr(out.text, "echo oops >&2; exit 3"));
        assert_non_null(strstr(out.text, "stderr: oops"));
        assert_null(strchr(out.text, '\033'));
        lines_free(&out);
    }
    /* --stats: the final summary counts what was read. */
    {
        const char *const a[] = {"--both", "--stats=60", "--from",
                                 "beginning", "--exit-at-end", "--format",
                                 "json", NULL};
        const cJSON *ts;

        expect_exit(run_tail(te, a, true, &out), 0, "--stats");
        assert_true(out.n >= 1);
        ts = cJSON_GetObjectItem(out.doc[out.n - 1], "total_status");
        assert_int_equal(cJSON_GetObjectItem(out.doc[out.n - 1], "total")
                             ->valueint, 4);
        assert_int_equal(cJSON_GetObjectItem(ts, "succeeded")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(ts, "failed")->valueint, 1);
        assert_int_equal(cJSON_GetObjectItem(ts, "dlq")->valueint, 1);
        assert_true(cJSON_IsNumber(
            cJSON_GetObjectItem(out.doc[out.n - 1], "p99_ms")));
        lines_free(&out);
    }
    /* --from -1: the last record of every partition that has results. */
    for (size_t i = 0; i < rp_te_result_count(te); i++) {
        int32_t p = rp_te_result_at(te, i)->partition;

        if (!seen_part[p]) {
            seen_part[p] = true;
            parts_with_results++;
        }
    }
    {
        const char *const a[] = {"--from", "-1", "--exit-at-end", "--format",
                                 "json", NULL};
        expect_exit(run_tail(te, a, true, &out), 0, "--from -1");
        assert_int_equal(out.n, parts_with_results);
        lines_free(&out);
    }
    /* --from OFFSET: only records at or past it, in every partition, and
     * all of those (compared with the collector's offsets). */
    {
        const char *const a[] = {"--from", "1", "--exit-at-end", "--format",
                                 "json", NULL};
        size_t want_n = 0;

        for (size_t i = 0; i < rp_te_result_count(te); i++)
            want_n += rp_te_result_at(te, i)->offset >= 1;
        expect_exit(run_tail(te, a, true, &out), 0, "--from 1");
        assert_int_equal(out.n, want_n);
        for (size_t i = 0; i < out.n; i++)
            assert_true(cJSON_GetObjectItem(out.doc[i], "offset")->valueint
                        >= 1);
        lines_free(&out);
    }
    /* --from TIME: before the test began = all; an hour ahead = none.
     * The devbroker (librdkafka's mock cluster) answers every lookup by
     * time with "no offset" (-1), which runpool-tail takes, as for real
     * Kafka, as "nothing after it": start at the end. So "all" is only
     * checkable on real Kafka (integration.kafka.tail). */
    rp_te_format(from_arg, sizeof(from_arg), "@%lld", (long long)(t0 - 60));
    if (te->real_kafka) {
        const char *const a[] = {"--from", from_arg, "--exit-at-end", NULL};
        expect_eids(te, a, "tail-fail,tail-ok-1,tail-ok-2");
    } else {
        const char *const a[] = {"--from", from_arg, "--exit-at-end", NULL};
        expect_eids(te, a, ""); /* the mock's -1: from the end */
    }
    rp_te_format(from_arg, sizeof(from_arg), "@%lld", (long long)(t0 + 3600));
    {
        const char *const a[] = {"--from", from_arg, "--exit-at-end", NULL};
        expect_eids(te, a, "");
    }
    /* Refused: a --from that is none of the forms. */
    {
        const char *const a[] = {"--from", "yesterday", NULL};
        expect_exit(run_tail(te, a, false, &out), 2, "--from yesterday");
        lines_free(&out);
    }
    /* Following (no --exit-at-end): SIGINT ends it with exit 0. */
    {
        char bin[PATH_MAX], errp[PATH_MAX], outp[PATH_MAX];
        char *argv[] = {bin, "--brokers", te->brokers, "--from", "beginning",
                        "--format", "json", NULL};
        pid_t pid;

        rp_te_format(bin, sizeof(bin), "%s/runpool-tail", te->bin_dir);
        rp_te_path(te, outp, sizeof(outp), "tail-follow.out");
        rp_te_path(te, errp, sizeof(errp), "tail.err");
        pid = spawn_tail(te, argv, outp, errp);
        free(wait_lines(pid, outp, 3)); /* it is in its loop */
        stop_tail(pid, "following");
    }
    /* Its stdout gone: a following tail must stop, not read on with its
     * output going nowhere. A full disk (/dev/full) is an error (exit 1,
     * said on stderr); a reader that went away (| head) a normal end. */
    {
        char bin[PATH_MAX], errp[PATH_MAX], *err_text;
        char *argv[] = {bin, "--brokers", te->brokers, "--from", "beginning",
                        "--format", "json", NULL};
        int fds[2], status;
        pid_t pid;

        rp_te_format(bin, sizeof(bin), "%s/runpool-tail", te->bin_dir);
        rp_te_path(te, errp, sizeof(errp), "tail-full.err");
        pid = spawn_tail(te, argv, "/dev/full", errp);
        expect_exit(wait_tail_exit(pid, "> /dev/full", "its stdout failing"), 1,
                    "> /dev/full");
        err_text = rp_te_read_file(errp, NULL);
        assert_non_null(err_text);
        if (!strstr(err_text, "writing to stdout: No space left on device"))
            fail_msg("runpool-tail > /dev/full said: %s", err_text);
        free(err_text);

        pid = spawn_tail_pipe(te, argv, fds);
        close(fds[0]); /* no reader: the first write gets EPIPE */
        close(fds[1]);
        status = wait_tail_exit(pid, "| (closed)", "its reader closing");
        expect_exit(status, 0, "| (closed)");

        /* | head -1: the reader takes a line, then goes while nothing new
         * is written; the tail must notice without a write to fail. */
        pid = spawn_tail_pipe(te, argv, fds);
        close(fds[1]);
        {
            char c;

            while (read(fds[0], &c, 1) == 1 && c != '\n') {
            }
        }
        rp_te_sleep_ms(500); /* it has written all it had */
        close(fds[0]);
        status = wait_tail_exit(pid, "| head -1", "its reader closing");
        expect_exit(status, 0, "| head -1");
    }
    /* The stream exporter: scraped counts match what the worker wrote. */
    {
        char bin[PATH_MAX], errp[PATH_MAX], outp[PATH_MAX], url[300];
        char *argv[] = {bin, "--brokers", te->brokers, "--from", "beginning",
                        "--metrics-listen", "127.0.0.1:0", NULL};
        int64_t deadline;
        char *text, *body = NULL;
        cJSON *first;
        pid_t pid;

        rp_te_format(bin, sizeof(bin), "%s/runpool-tail", te->bin_dir);
        rp_te_path(te, outp, sizeof(outp), "tail-metrics.out");
        rp_te_path(te, errp, sizeof(errp), "tail.err");
        pid = spawn_tail(te, argv, outp, errp);
        text = wait_lines(pid, outp, 1);
        *strchr(text, '\n') = '\0';
        first = cJSON_Parse(text);
        assert_non_null(first);
        rp_te_format(url, sizeof(url), "%s",
                     cJSON_GetObjectItem(first, "metrics")->valuestring);
        cJSON_Delete(first);
        free(text);
        /* It reads from the beginning: wait until it has read all four. */
        deadline = rp_te_now_ms() + TAIL_TIMEOUT_MS;
        for (;;) {
            free(body);
            body = scrape(url);
            if (rp_te_metric(body, "runpool_stream_result_duration_seconds_count"
                             "{status=\"succeeded\"}") == 2 &&
                rp_te_metric(body, "runpool_stream_dlq_total"
                             "{reason=\"invalid_request\"}") == 1)
                break;
            if (rp_te_now_ms() > deadline)
                fail_msg("the exporter never counted everything:\n%s", body);
            rp_te_sleep_ms(200);
        }
        if (rp_te_metric(body, "runpool_stream_results_total{status=\"succeeded\","
                         "code=\"none\"}") != 2 ||
            rp_te_metric(body, "runpool_stream_results_total{status=\"failed\","
                         "code=\"none\"}") != 1 ||
            rp_te_metric(body, "runpool_stream_result_duration_seconds_count"
                         "{status=\"failed\"}") != 1)
            fail_msg("exporter counts are wrong:\n%s", body);
        assert_non_null(strstr(body, "# TYPE runpool_stream_results_total "
                                     "counter"));
        assert_non_null(strstr(body, "# TYPE runpool_stream_result_duration_"
                                     "seconds histogram"));
        print_message("[tail] exporter: succeeded=2 failed=1 dlq=1\n");
        free(body);
        stop_tail(pid, "--metrics-listen");
    }
    rp_te_finish(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tail, rp_te_setup,
                                        rp_te_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
