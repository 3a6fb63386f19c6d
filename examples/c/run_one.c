/* run_one — the producer library from an installed copy: run one command in
 * a runpool session and print its result.
 *
 *   run_one BROKERS SESSION COMMAND
 *
 * Build against an installed runpool (cmake --install BUILD --component dev
 * --prefix PREFIX), either way:
 *   cc run_one.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs runpool-producer)
 *   cmake -S examples/c -B out -DCMAKE_PREFIX_PATH=PREFIX && cmake --build out
 * Exit status: 0 the result arrived (printed on stdout), 1 no result in
 * time, 2 bad arguments or a Kafka error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rp_producer.h"

int main(int argc, char **argv)
{
    char err[512];
    rp_producer_t *p = NULL;
    char *result = NULL;
    int rc = 2;

    if (argc != 4) {
        fprintf(stderr, "usage: run_one BROKERS SESSION COMMAND\n");
        return 2;
    }
    rp_producer_conf_t conf = {.brokers = argv[1], .watch_results = true};
    if (rp_producer_new(&conf, &p, err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "run_one: %s\n", err);
        goto out;
    }
    rp_request_t req = {.op = RP_OP_EXEC, .command = argv[3], .timeout_s = 60};
    if ((size_t)snprintf(req.session_id, sizeof(req.session_id), "%s",
                         argv[2]) >= sizeof(req.session_id)) {
        fprintf(stderr, "run_one: session id too long\n");
        goto out;
    }
    if (rp_producer_send(p, &req, 10000, err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "run_one: %s\n", err);
        goto out;
    }
    rp_err_t e = rp_producer_wait(p, req.execution_id, 60000, &result, NULL,
                                  err, sizeof(err));
    if (e != RP_OK) {
        fprintf(stderr, "run_one: %s\n", err);
        rc = e == RP_ERR_TIMEOUT ? 1 : 2;
        goto out;
    }
    printf("%s\n", result);
    rc = 0;
out:
    free(result);
    rp_producer_destroy(p);
    return rc;
}
