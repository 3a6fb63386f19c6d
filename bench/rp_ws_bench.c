/* runpool-ws-bench: what a workspace snapshot costs per execution
 * (issue 11 §4): for an empty, a 10 MB and a 200 MB workspace, the time to
 * save it the first time, to save it again when nothing changed (the fast
 * path), to restore it into an empty directory, and to save it after one
 * small file changed, with the bytes each uploads or downloads. Medians
 * over --rounds, all in one run; writes one JSON file (bench/README.md).
 *
 * The workspace: SIZE files of 1 MiB of pseudo-random bytes (incompressible:
 * the worst case for zstd) in directories of 20, plus 100 text files of
 * 1 KiB. Each round uses a new session id, so its first save uploads
 * everything (no chunk is shared with an earlier round).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rp_state.h"
#include "rp_time.h"
#include "rp_ws.h"

#define BENCH_ROUNDS_MAX 50
#define BENCH_SIZES_MAX 8

static void die(const char *what, const char *es)
{
    fprintf(stderr, "runpool-ws-bench: %s: %s\n", what, es);
    exit(1);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, n - i < 8 ? n - i : 8);
    }
}

static void wfile(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) != 0)
        die(path, strerror(errno));
}

static void make_workspace(const char *dir, int mib, uint64_t seed)
{
    uint8_t *buf = malloc(1024 * 1024);
    char path[1300], text[1024];

    if (!buf || mkdir(dir, 0755) != 0)
        die(dir, strerror(errno));
    for (int i = 0; i < mib; i++) {
        if (i % 20 == 0) {
            snprintf(path, sizeof(path), "%s/data%03d", dir, i / 20);
            mkdir(path, 0755);
        }
        snprintf(path, sizeof(path), "%s/data%03d/blob%04d.bin", dir, i / 20,
                 i);
        fill(buf, 1024 * 1024, seed * 100000 + (uint64_t)i);
        wfile(path, buf, 1024 * 1024);
    }
    if (mib > 0) {
        snprintf(path, sizeof(path), "%s/src", dir);
        mkdir(path, 0755);
        for (int i = 0; i < 100; i++) {
            for (size_t k = 0; k < sizeof(text); k++)
                text[k] = "int main(void) { return 0; }\n"[(k + (size_t)i) % 30];
            snprintf(path, sizeof(path), "%s/src/file%03d.c", dir, i);
            wfile(path, text, sizeof(text));
        }
    }
    free(buf);
}

static void rmtree(const char *dir)
{
    pid_t pid;
    int st;

    /* No system(): fork + exec rm. */
    if ((pid = fork()) == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, &st, 0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_ms(int64_t *us, int n)
{
    qsort(us, (size_t)n, sizeof(*us), cmp_i64);
    return (n % 2 ? (double)us[n / 2] : (us[n / 2 - 1] + us[n / 2]) / 2.0) /
           1000.0;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: runpool-ws-bench [--state URL] [--sizes 0,10,200] "
            "[--rounds N] [--tmp DIR] [--out FILE] [--meta KEY=VALUE]...\n"
            "  --state   state store (default file://TMP/store?fsync=1)\n"
            "  --sizes   workspace sizes in MiB (default 0,10,200)\n"
            "  --rounds  rounds per size; medians reported (default 5)\n");
}

int main(int argc, char **argv)
{
    const char *state_url = NULL, *out_path = NULL, *tmp_base = "/tmp";
    int sizes[BENCH_SIZES_MAX] = {0, 10, 200}, nsizes = 3, rounds = 5;
    cJSON *root = cJSON_CreateObject(), *run = cJSON_CreateObject(),
          *res = cJSON_CreateArray();
    char tmp[1024], store_url[1200], es[1024], ts[64];
    rp_state_t *st = NULL;
    static const struct option opts[] = {
        {"state", required_argument, 0, 's'},
        {"sizes", required_argument, 0, 'z'},
        {"rounds", required_argument, 0, 'r'},
        {"tmp", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},
        {"meta", required_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state_url = optarg;
            break;
        case 'z': {
            char *s = optarg, *end;
            nsizes = 0;
            while (*s && nsizes < BENCH_SIZES_MAX) {
                long v = strtol(s, &end, 10);
                if (end == s || v < 0 || v > 100000)
                    die("--sizes", optarg);
                sizes[nsizes++] = (int)v;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    die("--sizes", optarg);
            }
            break;
        }
        case 'r':
            rounds = atoi(optarg);
            if (rounds < 1 || rounds > BENCH_ROUNDS_MAX)
                die("--rounds", "1..50");
            break;
        case 't':
            tmp_base = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'm': {
            char *eq = strchr(optarg, '=');
            if (!eq)
                die("--meta", "want KEY=VALUE");
            *eq = '\0';
            cJSON_AddStringToObject(run, optarg, eq + 1);
            break;
        }
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    snprintf(tmp, sizeof(tmp), "%s/runpool-ws-bench.XXXXXX", tmp_base);
    if (!mkdtemp(tmp))
        die(tmp, strerror(errno));
    if (!state_url) {
        char sd[1100];
        snprintf(sd, sizeof(sd), "%s/store", tmp);
        mkdir(sd, 0700);
        snprintf(store_url, sizeof(store_url), "file://%s?fsync=1", sd);
        state_url = store_url;
    }
    if (rp_state_open(state_url, &st, es, sizeof(es)) != RP_OK)
        die(state_url, es);
    rp_time_rfc3339(rp_time_wall_ms(), ts, sizeof(ts));
    cJSON_AddStringToObject(run, "date", ts);
    cJSON_AddStringToObject(run, "state", state_url);
    cJSON_AddNumberToObject(run, "rounds", rounds);
    {
        double load[1];
        if (getloadavg(load, 1) == 1)
            cJSON_AddNumberToObject(run, "loadavg_1m_at_start", load[0]);
    }
    cJSON_AddStringToObject(root, "scenario", "workspace");
    cJSON_AddStringToObject(
        root, "description",
        "workspace snapshot overhead per execution (rp_ws, file or gs "
        "store): first save, save when unchanged, restore into an empty "
        "directory, save after one 1 KiB file changed; medians over rounds");
    cJSON_AddItemToObject(root, "run", run);

    for (int si = 0; si < nsizes; si++) {
        int64_t t_save[BENCH_ROUNDS_MAX], t_same[BENCH_ROUNDS_MAX],
            t_rest[BENCH_ROUNDS_MAX], t_one[BENCH_ROUNDS_MAX];
        uint64_t up_first = 0, up_one = 0, chunks_one = 0, down = 0,
                 chunks = 0, stream = 0, bytes = 0;
        cJSON *o = cJSON_CreateObject();

        fprintf(stderr, "workspace %d MiB:", sizes[si]);
        for (int r = 0; r < rounds; r++) {
            char ws[1100], rs[1100], sid[64], path[1200];
            rp_ws_manifest_t *m1 = NULL, *m2 = NULL, *m3 = NULL;
            rp_ws_stats_t s;
            int64_t t0;

            snprintf(ws, sizeof(ws), "%s/ws-%d-%d", tmp, sizes[si], r);
            snprintf(rs, sizeof(rs), "%s/rs-%d-%d", tmp, sizes[si], r);
            snprintf(sid, sizeof(sid), "bench-%d-%d-%d", (int)getpid(),
                     sizes[si], r);
            make_workspace(ws, sizes[si], (uint64_t)r + 1);

            t0 = rp_time_mono_us();
            if (rp_ws_save(st, sid, "e1", ws, NULL, NULL, NULL, &m1, &s, es,
                           sizeof(es)) != RP_OK)
                die("save", es);
            t_save[r] = rp_time_mono_us() - t0;
            up_first = s.bytes_uploaded;
            chunks = s.chunks;
            stream = s.stream_bytes;
            bytes = s.bytes;

            t0 = rp_time_mono_us();
            if (rp_ws_save(st, sid, "e2", ws, m1, NULL, NULL, &m2, &s, es,
                           sizeof(es)) != RP_OK || m2 || !s.unchanged)
                die("save unchanged", es[0] ? es : "not unchanged");
            t_same[r] = rp_time_mono_us() - t0;

            if (mkdir(rs, 0755) != 0)
                die(rs, strerror(errno));
            t0 = rp_time_mono_us();
            if (rp_ws_restore(st, m1, rs, NULL, &s, es, sizeof(es)) != RP_OK)
                die("restore", es);
            t_rest[r] = rp_time_mono_us() - t0;
            down = s.bytes_downloaded;

            /* One small file changes (in the restored copy, as the next
             * command in a fresh container would). */
            snprintf(path, sizeof(path),
                     sizes[si] > 0 ? "%s/src/file050.c" : "%s/new.txt", rs);
            wfile(path, "changed\n", 8);
            t0 = rp_time_mono_us();
            if (rp_ws_save(st, sid, "e3", rs, m1, NULL, NULL, &m3, &s, es,
                           sizeof(es)) != RP_OK || !m3)
                die("save one changed", es);
            t_one[r] = rp_time_mono_us() - t0;
            up_one = s.bytes_uploaded;
            chunks_one = s.chunks_uploaded;

            /* Clean up the store as the worker would. */
            if (rp_ws_gc(st, m1, m3, es, sizeof(es)) != RP_OK ||
                rp_ws_gc(st, m3, NULL, es, sizeof(es)) != RP_OK)
                die("gc", es);
            rp_ws_manifest_destroy(m1);
            rp_ws_manifest_destroy(m3);
            rmtree(ws);
            rmtree(rs);
            fprintf(stderr, " %d", r + 1);
        }
        fprintf(stderr, "\n");
        cJSON_AddNumberToObject(o, "workspace_mib", sizes[si]);
        cJSON_AddNumberToObject(o, "file_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "stream_bytes", (double)stream);
        cJSON_AddNumberToObject(o, "chunks", (double)chunks);
        cJSON_AddNumberToObject(o, "save_first_ms", median_ms(t_save, rounds));
        cJSON_AddNumberToObject(o, "save_first_bytes_uploaded",
                                (double)up_first);
        cJSON_AddNumberToObject(o, "save_unchanged_ms",
                                median_ms(t_same, rounds));
        cJSON_AddNumberToObject(o, "restore_ms", median_ms(t_rest, rounds));
        cJSON_AddNumberToObject(o, "restore_bytes_downloaded", (double)down);
        cJSON_AddNumberToObject(o, "save_one_changed_ms",
                                median_ms(t_one, rounds));
        cJSON_AddNumberToObject(o, "save_one_changed_bytes_uploaded",
                                (double)up_one);
        cJSON_AddNumberToObject(o, "save_one_changed_chunks_uploaded",
                                (double)chunks_one);
        cJSON_AddNumberToObject(o, "peak_rss_kib_so_far",
                                (double)peak_rss_kib());
        cJSON_AddItemToArray(res, o);
    }
    cJSON_AddItemToObject(root, "results", res);
    {
        double load[1];
        /* The machine may be shared: how busy it was says how far to trust
         * the absolute times (compare within one file). */
        if (getloadavg(load, 1) == 1)
            cJSON_AddNumberToObject(run, "loadavg_1m_at_end", load[0]);
    }
    {
        char *j = cJSON_Print(root);
        FILE *f = out_path ? fopen(out_path, "w") : stdout;
        if (!j || !f)
            die("output", out_path ? out_path : "stdout");
        fprintf(f, "%s\n", j);
        if (out_path)
            fclose(f);
        free(j);
    }
    cJSON_Delete(root);
    rp_state_destroy(st);
    rmtree(tmp);
    return 0;
}
