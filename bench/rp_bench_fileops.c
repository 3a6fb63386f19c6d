/* runpool-bench-fileops — file-op latency against a `cat` execution, one
 * request at a time through a real worker (bench/fileops starts it; see
 * bench/README.md, "File ops").
 *
 * Each round sends, in one session and waiting for each result before the
 * next: write_file (a small text file), read_file (the same file) and an
 * exec of `cat` on it, so the three are measured alternately in one run on
 * the same worker and machine. Every answer is checked (status succeeded,
 * the content read back is the content written, `cat` prints it) and a
 * wrong one fails the run. For each kind the file gets the end-to-end
 * latency (produce -> result read, read_committed) and the worker's own
 * time (the result's timings: state load + run + state save), as min /
 * median / p90 / max, and the ratios of
 * the medians, cat over each op. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rp_kafka.h"
#include "rp_time.h"

#define FB_ROUNDS_MAX 100000
#define FB_WAIT_MS 60000     /* one answer, at most */
#define FB_CONNECT_MS 30000  /* metadata and offsets at start */
#define FB_KINDS 3

static const char *const fb_kind[FB_KINDS] = {"write_file", "read_file",
                                              "cat"};

typedef struct fb {
    const char *brokers, *out, *session, *tag, *note;
    int rounds, warmup;
    rd_kafka_t *producer, *reader;
    double *e2e[FB_KINDS], *worker[FB_KINDS];
    int n[FB_KINDS];
} fb_t;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "runpool-bench-fileops: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void set_or_die(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char es[512];

    if (rp_kafka_set(c, k, v, es, sizeof(es)))
        die("%s", es);
}

static void fb_connect(fb_t *b)
{
    rd_kafka_conf_t *pc = rd_kafka_conf_new(), *cc = rd_kafka_conf_new();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    char es[512], group[128];
    int64_t deadline = rp_time_mono_ms() + FB_CONNECT_MS;

    set_or_die(pc, "bootstrap.servers", b->brokers);
    set_or_die(pc, "linger.ms", "0");
    if (rp_kafka_producer_defaults(pc, es, sizeof(es)) ||
        rp_kafka_unique_client_id(pc, "runpool-bench-fileops", es, sizeof(es)))
        die("%s", es);
    if (!(b->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, es, sizeof(es))))
        die("producer: %s", es);
    /* As the main bench's reader: assign() at the end, a short fetch
     * wait so the receive time is not the mock broker's 500 ms. */
    snprintf(group, sizeof(group), "runpool-bench-fileops-%s", b->tag);
    set_or_die(cc, "bootstrap.servers", b->brokers);
    set_or_die(cc, "group.id", group);
    set_or_die(cc, "enable.auto.commit", "false");
    set_or_die(cc, "fetch.wait.max.ms", "10");
    set_or_die(cc, "isolation.level", "read_committed");
    if (!(b->reader = rd_kafka_new(RD_KAFKA_CONSUMER, cc, es, sizeof(es))))
        die("consumer: %s", es);
    rd_kafka_poll_set_consumer(b->reader);
    for (;;) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(b->reader, "runpool.results",
                                                   NULL);
        rd_kafka_resp_err_t kerr = rd_kafka_metadata(b->reader, 0, rkt, &md,
                                                     2000);

        rd_kafka_topic_destroy(rkt);
        if (!kerr && md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt > 0)
            break;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (rp_time_mono_ms() > deadline)
            die("no metadata for runpool.results from %s", b->brokers);
        usleep(200 * 1000);
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo, hi;
        int32_t p = md->topics[0].partitions[i].id;

        if (rd_kafka_query_watermark_offsets(b->reader, "runpool.results", p,
                                             &lo, &hi, FB_CONNECT_MS))
            die("end offsets of runpool.results");
        rd_kafka_topic_partition_list_add(parts, "runpool.results", p)->offset =
            hi;
    }
    rd_kafka_metadata_destroy(md);
    if (rd_kafka_assign(b->reader, parts))
        die("assign");
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Send doc (taken) and wait for the result of eid; returns it parsed
 * (caller deletes) with *e2e_ms the round trip. */
static cJSON *fb_round(fb_t *b, cJSON *doc, const char *eid, double *e2e_ms)
{
    char *text = cJSON_PrintUnformatted(doc);
    int64_t t0 = rp_time_mono_us(), deadline;

    cJSON_Delete(doc);
    if (!text)
        die("out of memory");
    if (rd_kafka_producev(b->producer, RD_KAFKA_V_TOPIC("runpool.requests"),
                          RD_KAFKA_V_KEY(b->session, strlen(b->session)),
                          RD_KAFKA_V_VALUE(text, strlen(text)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_END))
        die("produce failed");
    free(text);
    rd_kafka_poll(b->producer, 0);
    deadline = rp_time_mono_ms() + FB_WAIT_MS;
    while (rp_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(b->reader, 50);
        cJSON *r, *id;

        rd_kafka_poll(b->producer, 0);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        r = cJSON_ParseWithLength(m->payload, m->len);
        rd_kafka_message_destroy(m);
        id = cJSON_GetObjectItemCaseSensitive(r, "execution_id");
        if (cJSON_IsString(id) && !strcmp(id->valuestring, eid)) {
            *e2e_ms = (double)(rp_time_mono_us() - t0) / 1000.0;
            return r;
        }
        cJSON_Delete(r);
    }
    die("no result for %s in %d ms", eid, FB_WAIT_MS);
}

static const char *fb_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The worker's time: the result's timings, state load + run + state
 * save (for cat, run is the whole execution: executor start, restore,
 * command, save, record). */
static double fb_worker_ms(const cJSON *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "timings");
    double sum = 0;
    static const char *const k[] = {"state_load_ms", "run_ms", "state_save_ms"};

    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, k[i]);

        if (!cJSON_IsNumber(v))
            die("result without timings.%s", k[i]);
        sum += v->valuedouble;
    }
    return sum;
}

static cJSON *fb_req(fb_t *b, const char *eid, const char *op)
{
    cJSON *d = cJSON_CreateObject();

    if (!d)
        die("out of memory");
    cJSON_AddNumberToObject(d, "v", 1);
    cJSON_AddStringToObject(d, "execution_id", eid);
    cJSON_AddStringToObject(d, "session_id", b->session);
    if (op)
        cJSON_AddStringToObject(d, "op", op);
    return d;
}

static void fb_one_round(fb_t *b, int round, bool measure)
{
    char eid[FB_KINDS][96], content[128];
    double e2e;
    cJSON *d, *r;
    const cJSON *o;

    for (int k = 0; k < FB_KINDS; k++)
        snprintf(eid[k], sizeof(eid[k]), "fb-%s-%s-%d-%d", b->tag,
                 fb_kind[k], measure, round);
    snprintf(content, sizeof(content), "round %d of %s\n", round, b->tag);
    /* write_file */
    d = fb_req(b, eid[0], "write_file");
    cJSON_AddStringToObject(d, "path", "bench/f.txt");
    cJSON_AddStringToObject(d, "content", content);
    r = fb_round(b, d, eid[0], &e2e);
    if (strcmp(fb_str(r, "status"), "succeeded"))
        die("%s: %s", eid[0], fb_str(cJSON_GetObjectItem(r, "error"), "message"));
    if (measure) {
        b->e2e[0][b->n[0]] = e2e;
        b->worker[0][b->n[0]++] = fb_worker_ms(r);
    }
    cJSON_Delete(r);
    /* read_file */
    d = fb_req(b, eid[1], "read_file");
    cJSON_AddStringToObject(d, "path", "bench/f.txt");
    r = fb_round(b, d, eid[1], &e2e);
    o = cJSON_GetObjectItemCaseSensitive(r, "op_result");
    if (strcmp(fb_str(r, "status"), "succeeded") ||
        strcmp(fb_str(o, "content"), content))
        die("%s: did not read back what was written", eid[1]);
    if (measure) {
        b->e2e[1][b->n[1]] = e2e;
        b->worker[1][b->n[1]++] = fb_worker_ms(r);
    }
    cJSON_Delete(r);
    /* cat: a command, through the backend, on the restored snapshot */
    d = fb_req(b, eid[2], NULL);
    cJSON_AddStringToObject(d, "command", "cat bench/f.txt");
    r = fb_round(b, d, eid[2], &e2e);
    if (strcmp(fb_str(r, "status"), "succeeded") ||
        strcmp(fb_str(r, "stdout"), content))
        die("%s: cat did not print what was written (%s)", eid[2],
            fb_str(r, "stdout"));
    if (measure) {
        b->e2e[2][b->n[2]] = e2e;
        b->worker[2][b->n[2]++] = fb_worker_ms(r);
    }
    cJSON_Delete(r);
}

static int fb_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double fb_q(double *v, int n, double q)
{
    int i = (int)(q * (n - 1) + 0.5);

    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void fb_stats(FILE *f, const char *name, double *v, int n,
                     bool comma)
{
    qsort(v, (size_t)n, sizeof(*v), fb_cmp);
    fprintf(f, "      \"%s\": {\"n\": %d, \"min\": %.2f, \"median\": %.2f, "
            "\"p90\": %.2f, \"max\": %.2f}%s\n", name, n, v[0],
            fb_q(v, n, 0.5), fb_q(v, n, 0.9), v[n - 1], comma ? "," : "");
}

static void usage(FILE *out)
{
    fprintf(out,
"usage: runpool-bench-fileops --brokers B --out FILE [options]\n"
"  --brokers B        the broker the worker reads\n"
"  --out FILE         where the JSON goes\n"
"  --rounds N         measured rounds (write_file, read_file, cat) [50]\n"
"  --warmup N         rounds before measuring [5]\n"
"  --session S        the session [fb-<pid>]\n"
"  --note TEXT        what the run was (into the file)\n"
"  -h, --help         this text\n"
"  -V, --version      print the version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"out", required_argument, NULL, 'o'},
        {"rounds", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"session", required_argument, NULL, 's'},
        {"note", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    fb_t b = {.rounds = 50, .warmup = 5, .note = ""};
    char tag[32], sess[64];
    double med[FB_KINDS];
    FILE *f;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'b': b.brokers = optarg; break;
        case 'o': b.out = optarg; break;
        case 'n': b.rounds = atoi(optarg); break;
        case 'w': b.warmup = atoi(optarg); break;
        case 's': b.session = optarg; break;
        case 'N': b.note = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("runpool-bench-fileops %s\n", RP_VERSION); return 0;
        default:
            fprintf(stderr, "runpool-bench-fileops: unknown option '%s'\n"
                    "Try 'runpool-bench-fileops --help'.\n", argv[optind - 1]);
            return 2;
        }
    }
    if (!b.brokers || !b.out || b.rounds < 1 || b.rounds > FB_ROUNDS_MAX ||
        b.warmup < 0) {
        fprintf(stderr, "runpool-bench-fileops: --brokers and --out are "
                "required, --rounds 1..%d\nTry 'runpool-bench-fileops "
                "--help'.\n", FB_ROUNDS_MAX);
        return 2;
    }
    snprintf(tag, sizeof(tag), "%d-%" PRId64, (int)getpid(),
             rp_time_wall_ms() % 100000000);
    b.tag = tag;
    if (!b.session) {
        snprintf(sess, sizeof(sess), "fb-%d", (int)getpid());
        b.session = sess;
    }
    for (int k = 0; k < FB_KINDS; k++)
        if (!(b.e2e[k] = calloc((size_t)b.rounds, sizeof(double))) ||
            !(b.worker[k] = calloc((size_t)b.rounds, sizeof(double))))
            die("out of memory");
    fb_connect(&b);
    for (int i = 0; i < b.warmup; i++)
        fb_one_round(&b, i, false);
    for (int i = 0; i < b.rounds; i++)
        fb_one_round(&b, i, true);
    if (!(f = fopen(b.out, "w")))
        die("cannot write %s", b.out);
    fprintf(f, "{\n  \"bench\": \"fileops\",\n  \"note\": \"%s\",\n"
            "  \"rounds\": %d,\n  \"warmup\": %d,\n  \"ms\": {\n", b.note,
            b.rounds, b.warmup);
    for (int k = 0; k < FB_KINDS; k++) {
        fprintf(f, "    \"%s\": {\n", fb_kind[k]);
        fb_stats(f, "end_to_end", b.e2e[k], b.n[k], true);
        med[k] = fb_q(b.e2e[k], b.n[k], 0.5);
        fb_stats(f, "worker", b.worker[k], b.n[k], false);
        fprintf(f, "    }%s\n", k + 1 < FB_KINDS ? "," : "");
    }
    fprintf(f, "  },\n  \"ratios_of_medians\": {\"cat_over_read_file\": %.2f, "
            "\"cat_over_write_file\": %.2f}\n}\n",
            med[1] > 0 ? med[2] / med[1] : 0, med[0] > 0 ? med[2] / med[0] : 0);
    if (fclose(f))
        die("writing %s failed", b.out);
    printf("end-to-end medians: write_file %.2f ms, read_file %.2f ms, cat "
           "%.2f ms (cat/read_file %.2f)\n", med[0], med[1], med[2],
           med[1] > 0 ? med[2] / med[1] : 0);
    rd_kafka_destroy(b.reader);
    rd_kafka_flush(b.producer, 5000);
    rd_kafka_destroy(b.producer);
    return 0;
}
