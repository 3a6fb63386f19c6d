/* rp_httpd — the operator's HTTP endpoint: /metrics, /healthz, /readyz.
 *
 * libmicrohttpd on its own thread (MHD_USE_INTERNAL_POLLING_THREAD): the
 * owner's loop never serves a request itself, and a slow scraper only
 * holds the server's thread. GET (and HEAD) only; any body, another method
 * or a path other than the three answers 413/405/404. Connections are
 * bounded (RP_HTTPD_MAX_CONNS, RP_HTTPD_CONN_MEMORY for the request line
 * and headers, RP_HTTPD_TIMEOUT_S idle), and a /metrics answer is at most
 * RP_HTTPD_METRICS_MAX bytes (500 beyond).
 *
 * The callbacks run on the server's thread and must be thread-safe.
 */
#ifndef RP_HTTPD_H
#define RP_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_err.h"

#define RP_HTTPD_MAX_CONNS 16
#define RP_HTTPD_CONN_MEMORY (32 * 1024)
#define RP_HTTPD_TIMEOUT_S 10
#define RP_HTTPD_METRICS_MAX (4 * 1024 * 1024)
#define RP_HTTPD_ADDR_MAX 64 /* "[v6addr]:port" as text, with NUL */

typedef struct rp_httpd rp_httpd_t;

typedef struct rp_httpd_handlers {
    /* /metrics: append the exposition to out (max RP_HTTPD_METRICS_MAX);
     * an error answers 500. NULL: /metrics is 404. */
    rp_err_t (*metrics)(void *arg, rp_buf_t *out);
    /* /healthz, /readyz: true answers 200, false 503; write a one-line
     * reason into msg (msg_size bytes, NUL-terminated; may stay empty).
     * NULL: always 200. */
    bool (*healthz)(void *arg, char *msg, size_t msg_size);
    bool (*readyz)(void *arg, char *msg, size_t msg_size);
    void *arg; /* borrowed until rp_httpd_stop returns */
} rp_httpd_handlers_t;

/* Parse "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" (loopback, 127.0.0.1).
 * ADDR is a numeric IPv4/IPv6 address or "localhost". Port 0..65535 (0 =
 * ephemeral). host gets the address text (host_size >= RP_HTTPD_ADDR_MAX).
 * Pure; any thread. */
rp_err_t rp_httpd_parse_listen(const char *listen, char *host,
                               size_t host_size, uint16_t *port, char *errstr,
                               size_t errstr_size);

/* Bind listen (see rp_httpd_parse_listen) and start serving on a new
 * thread. h is copied. On success *out is the server (caller stops it).
 * The server thread blocks all signals, so they go to the owner's
 * threads. Call from the owner's thread. */
rp_err_t rp_httpd_start(const char *listen, const rp_httpd_handlers_t *h,
                        rp_httpd_t **out, char *errstr, size_t errstr_size);

/* The port actually bound (the ephemeral one for port 0). */
uint16_t rp_httpd_port(const rp_httpd_t *s);

/* The bound address as "127.0.0.1:PORT" or "[::1]:PORT" (borrowed, lives
 * as long as s). */
const char *rp_httpd_addr(const rp_httpd_t *s);

/* Stop serving (waits for the server thread; in-flight answers finish),
 * free s. Accepts NULL. Call from the thread that started it. */
void rp_httpd_stop(rp_httpd_t *s);

#endif
