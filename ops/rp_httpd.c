/* rp_httpd — see rp_httpd.h. We bind the listening socket ourselves (clear
 * errors such as "address in use", and getsockname for the ephemeral port)
 * and hand it to libmicrohttpd, which closes it on stop. */
#include "rp_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rp_log.h"

struct rp_httpd {
    struct MHD_Daemon *d;
    rp_httpd_handlers_t h;
    uint16_t port;
    char addr[RP_HTTPD_ADDR_MAX + 16]; /* host, brackets, ":65535" */
};

rp_err_t rp_httpd_parse_listen(const char *listen, char *host,
                               size_t host_size, uint16_t *port, char *errstr,
                               size_t errstr_size)
{
    const char *p, *colon;
    size_t hl;

    if (!listen || !*listen || !host || host_size < RP_HTTPD_ADDR_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "listen address is empty");
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':')
            return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                           "bad listen address \"%s\" (want [V6ADDR]:PORT)",
                           listen);
        hl = (size_t)(end - listen - 1);
        p = listen + 1;
        colon = end + 1;
    } else if ((colon = strrchr(listen, ':'))) {
        p = listen;
        hl = (size_t)(colon - listen);
    } else {
        p = "127.0.0.1";
        hl = strlen(p);
        colon = listen - 1; /* port is the whole string */
    }
    if (hl == 0) {
        p = "127.0.0.1";
        hl = strlen(p);
    }
    if (hl >= host_size - 1)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "listen address \"%s\" too long", listen);
    memcpy(host, p, hl);
    host[hl] = '\0';

    const char *ps = colon + 1;
    char *end = NULL;
    errno = 0;
    long v = strtol(ps, &end, 10);
    if (!*ps || *end || errno || v < 0 || v > 65535 || ps[0] == '-' ||
        ps[0] == '+' || ps[0] == ' ')
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "bad port in listen address \"%s\" (want 0..65535)",
                       listen);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, host_size, "127.0.0.1");
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) != 1 &&
        inet_pton(AF_INET6, host, &a6) != 1)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "bad address in \"%s\" (want a numeric IPv4 or [IPv6] "
                       "address, or localhost)",
                       listen);
    *port = (uint16_t)v;
    return RP_OK;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *ctype, char *body, size_t len)
{
    /* body is malloc'd (or NULL for an empty answer); MHD frees it. */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE
                                             : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status,
                                  const char *text)
{
    size_t n = strlen(text);
    char *b = malloc(n + 1);
    if (!b)
        return MHD_NO;
    memcpy(b, text, n + 1);
    return reply(c, status, "text/plain; charset=utf-8", b, n);
}

static enum MHD_Result check(struct MHD_Connection *c,
                             bool (*fn)(void *, char *, size_t), void *arg)
{
    char msg[256] = "";
    char line[300];
    bool ok = fn ? fn(arg, msg, sizeof msg) : true;
    msg[sizeof msg - 1] = '\0';
    snprintf(line, sizeof line, "%s%s%s\n", ok ? "ok" : "unavailable",
             msg[0] ? ": " : "", msg);
    return reply_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, line);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    rp_httpd_t *s = cls;
    (void)version;
    (void)upload_data;

    /* First call per request: headers only. Remember we saw it, and
     * answer on the next call so a body (if any) shows up first. */
    if (!*con_cls) {
        *con_cls = (void *)1;
        /* We read no bodies: refuse one before it is sent (MHD then
         * closes the connection instead of reading it). */
        const char *cl = MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (te || (cl && strcmp(cl, "0") != 0))
            return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
                              "request bodies are not accepted\n");
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* unreachable in practice: refused above */
        return MHD_NO;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/healthz") == 0)
        return check(c, s->h.healthz, s->h.arg);
    if (strcmp(url, "/readyz") == 0)
        return check(c, s->h.readyz, s->h.arg);
    if (strcmp(url, "/metrics") == 0 && s->h.metrics) {
        rp_buf_t b;
        rp_buf_init(&b, RP_HTTPD_METRICS_MAX);
        rp_err_t err = s->h.metrics(s->h.arg, &b);
        if (err) {
            rp_buf_free(&b);
            rp_log(RP_LOG_WARN, "http_metrics_failed", NULL, NULL,
                   "rendering /metrics failed: %s", rp_err_str(err));
            return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                              "metrics unavailable\n");
        }
        size_t len = 0;
        char *body = rp_buf_steal(&b, &len);
        if (!body)
            return MHD_NO;
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                     body, len);
    }
    return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

static int bind_socket(const char *host, uint16_t port, uint16_t *bound,
                       char *addr, size_t addr_size, char *errstr,
                       size_t errstr_size)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fam, fd;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        sl = sizeof *s6;
    } else {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad address %s", host);
        return -1;
    }
    fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rp_errf(errstr, errstr_size, RP_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fam == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        rp_errf(errstr, errstr_size, RP_ERR_IO, "cannot listen on %s port %u: %s",
                host, (unsigned)port, strerror(errno));
        close(fd);
        return -1;
    }
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rp_errf(errstr, errstr_size, RP_ERR_IO, "getsockname: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *bound = ntohs(fam == AF_INET ? s4->sin_port : s6->sin6_port);
    if (fam == AF_INET)
        snprintf(addr, addr_size, "%s:%u", host, (unsigned)*bound);
    else
        snprintf(addr, addr_size, "[%s]:%u", host, (unsigned)*bound);
    return fd;
}

rp_err_t rp_httpd_start(const char *listen, const rp_httpd_handlers_t *h,
                        rp_httpd_t **out, char *errstr, size_t errstr_size)
{
    char host[RP_HTTPD_ADDR_MAX];
    uint16_t port = 0;
    rp_err_t err;
    rp_httpd_t *s = NULL;
    int fd = -1;
    sigset_t all, old;

    *out = NULL;
    if ((err = rp_httpd_parse_listen(listen, host, sizeof host, &port, errstr,
                                     errstr_size)))
        return err;
    if (!(s = calloc(1, sizeof *s)))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    if (h)
        s->h = *h;
    fd = bind_socket(host, port, &s->port, s->addr, sizeof s->addr, errstr,
                     errstr_size);
    if (fd < 0) {
        free(s);
        return RP_ERR_IO;
    }
    /* The server thread inherits this mask: signals stay with the owner. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL, handle,
        s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)RP_HTTPD_MAX_CONNS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)RP_HTTPD_CONN_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)RP_HTTPD_TIMEOUT_S,
        MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->d) {
        close(fd);
        free(s);
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                       "libmicrohttpd did not start on %s", listen);
    }
    *out = s;
    return RP_OK;
}

uint16_t rp_httpd_port(const rp_httpd_t *s)
{
    return s ? s->port : 0;
}

const char *rp_httpd_addr(const rp_httpd_t *s)
{
    return s ? s->addr : "";
}

void rp_httpd_stop(rp_httpd_t *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d); /* closes the listening socket too */
    free(s);
}
