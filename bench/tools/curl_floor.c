/* curl_floor — the CPU of one bare libcurl call: N GETs of a small object
 * on one reused easy handle (keep-alive), against a given URL (the fake
 * Cloud Storage server of bench s). Prints user+sys CPU per call from
 * getrusage, the floor under any HTTP client the worker could use with
 * blocking HTTP/1.1 calls. Built as runpool-curl-floor (bench/CMakeLists.txt),
 * or by hand:
 *   cc -O2 -o /tmp/curl_floor bench/tools/curl_floor.c -lcurl
 *   /tmp/curl_floor URL N [fresh]
 * "fresh": a new TCP connection per call (CURLOPT_FRESH_CONNECT, what the
 * worker does for jobs.run).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    CURL *h;
    long n, i, bad = 0, fresh;
    double t0;

    if (argc < 3 || argc > 4 || (n = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: curl_floor URL N [fresh]\n");
        return 2;
    }
    fresh = argc == 4;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = curl_easy_init();
    if (!h)
        return 1;
    t0 = cpu_s();
    for (i = 0; i < n; i++) {
        long code = 0;

        curl_easy_setopt(h, CURLOPT_URL, argv[1]);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, fresh);
        if (curl_easy_perform(h) != CURLE_OK ||
            (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code), code != 200))
            bad++;
    }
    printf("calls %ld failed %ld cpu_ms_per_call %.4f\n", n, bad,
           (cpu_s() - t0) * 1000.0 / n);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return bad != 0;
}
