/* fake_http — a scripted HTTP/1.1 server for unit tests (header-only,
 * included by tests/unit/test_http.c and test_state_gs.c).
 *
 * It listens on 127.0.0.1 (a free port), runs one thread that serves every
 * connection with poll(), keeps connections alive like a real server (so
 * connection reuse can be observed), records each request (method, target,
 * headers, body) and answers request i with replies[min(i, n - 1)]: the
 * last reply repeats. A reply can be delayed (to force client timeouts) or
 * be a hang-up without any answer.
 *
 * Not a general server: no chunked request bodies, no pipelining beyond
 * what arrives in order on one connection.
 */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FH_FN static __attribute__((unused))

#define FH_MAX_REPLIES 16
#define FH_MAX_REQS 64       /* requests recorded; later ones still served */
#define FH_MAX_CONNS 32      /* open connections at once */
#define FH_HEAD_MAX 16384    /* request line + headers */
#define FH_BODY_MAX (1 << 20) /* request body accepted */
#define FH_BODY_KEPT 4096    /* request body bytes recorded */
#define FH_TARGET_MAX 4096

typedef struct fh_reply {
    int status;
    const char *headers; /* extra "Name: value\r\n" lines, may be NULL */
    const char *body;    /* may be NULL */
    int delay_ms;        /* wait before answering */
    int hangup;          /* close the connection without answering */
} fh_reply_t;

typedef struct fh_request {
    char method[16];
    char target[FH_TARGET_MAX];
    char headers[FH_HEAD_MAX]; /* raw header lines */
    char body[FH_BODY_KEPT + 1];
    size_t body_len;           /* full length, even past FH_BODY_KEPT */
    int conn;                  /* connection number, from 1 */
} fh_request_t;

typedef struct fh_conn {
    int fd;
    int id;
    char *buf;
    size_t len;
} fh_conn_t;

typedef struct fh_server {
    int lfd;
    int port;
    int stop[2];
    pthread_t thr;
    pthread_mutex_t mu;
    fh_reply_t replies[FH_MAX_REPLIES];
    size_t n_replies;
    size_t n_reqs;   /* requests answered or hung up on */
    int n_conns;     /* connections accepted */
    fh_request_t reqs[FH_MAX_REQS];
    fh_conn_t conns[FH_MAX_CONNS];
    char base[64];   /* "http://127.0.0.1:PORT" */
    char hostport[32];
} fh_server_t;

static int fh_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sleep ms, or less when the server is told to stop. */
static void fh_sleep(fh_server_t *s, int ms)
{
    struct pollfd p = {.fd = s->stop[0], .events = POLLIN};

    if (ms > 0)
        poll(&p, 1, ms);
}

static size_t fh_content_length(const char *head)
{
    const char *p = head;

    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
    }
    return 0;
}

/* Serve every complete request in c's buffer. Returns -1 to close c. */
static int fh_serve(fh_server_t *s, fh_conn_t *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        size_t head_len, body_len, total, idx;
        fh_reply_t r;
        char *out;
        int n, close_after;

        if (!end)
            return c->len >= FH_HEAD_MAX ? -1 : 0;
        head_len = (size_t)(end - c->buf) + 4;
        end[2] = '\0'; /* headers as a string, ending with one CRLF */
        body_len = fh_content_length(c->buf);
        if (body_len > FH_BODY_MAX)
            return -1;
        total = head_len + body_len;
        if (c->len < total) {
            end[2] = '\r';
            return 0;
        }
        close_after = strcasestr(c->buf, "\nConnection: close") != NULL;

        pthread_mutex_lock(&s->mu);
        idx = s->n_reqs;
        r = s->replies[idx < s->n_replies ? idx : s->n_replies - 1];
        if (idx < FH_MAX_REQS) {
            fh_request_t *q = &s->reqs[idx];
            char *sp1 = strchr(c->buf, ' ');
            char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            char *eol = strstr(c->buf, "\r\n");
            size_t kept = body_len < FH_BODY_KEPT ? body_len : FH_BODY_KEPT;

            memset(q, 0, sizeof(*q));
            if (sp1 && sp2) {
                snprintf(q->method, sizeof(q->method), "%.*s",
                         (int)(sp1 - c->buf), c->buf);
                snprintf(q->target, sizeof(q->target), "%.*s",
                         (int)(sp2 - sp1 - 1), sp1 + 1);
            }
            snprintf(q->headers, sizeof(q->headers), "%s", eol ? eol + 2 : "");
            memcpy(q->body, c->buf + head_len, kept);
            q->body[kept] = '\0';
            q->body_len = body_len;
            q->conn = c->id;
        }
        pthread_mutex_unlock(&s->mu);

        fh_sleep(s, r.delay_ms);
        if (r.hangup) {
            pthread_mutex_lock(&s->mu);
            s->n_reqs++;
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        {
            const char *body = r.body ? r.body : "";
            size_t blen = strlen(body);
            size_t cap = 256 + (r.headers ? strlen(r.headers) : 0) + blen;

            out = malloc(cap);
            if (!out)
                return -1;
            n = snprintf(out, cap,
                         "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n%s%s"
                         "\r\n",
                         r.status, blen, r.headers ? r.headers : "",
                         close_after ? "Connection: close\r\n" : "");
            memcpy(out + n, body, blen);
            /* Count the request before the client can see the answer. */
            pthread_mutex_lock(&s->mu);
            s->n_reqs++;
            pthread_mutex_unlock(&s->mu);
            n = fh_write_all(c->fd, out, (size_t)n + blen);
            free(out);
            if (n != 0 || close_after)
                return -1;
        }
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
    }
}

static void fh_close_conn(fh_conn_t *c)
{
    close(c->fd);
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
    c->len = 0;
}

static void *fh_main(void *arg)
{
    fh_server_t *s = arg;
    size_t i;

    for (;;) {
        struct pollfd p[FH_MAX_CONNS + 2];
        int map[FH_MAX_CONNS + 2];
        nfds_t np = 0;

        p[np].fd = s->stop[0];
        p[np++].events = POLLIN;
        p[np].fd = s->lfd;
        p[np++].events = POLLIN;
        for (i = 0; i < FH_MAX_CONNS; i++) {
            if (s->conns[i].fd < 0)
                continue;
            map[np] = (int)i;
            p[np].fd = s->conns[i].fd;
            p[np++].events = POLLIN;
        }
        if (poll(p, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);

            for (i = 0; fd >= 0 && i < FH_MAX_CONNS; i++) {
                if (s->conns[i].fd < 0) {
                    pthread_mutex_lock(&s->mu);
                    s->conns[i].id = ++s->n_conns;
                    pthread_mutex_unlock(&s->mu);
                    s->conns[i].fd = fd;
                    s->conns[i].buf = malloc(FH_HEAD_MAX + FH_BODY_MAX);
                    s->conns[i].len = 0;
                    if (!s->conns[i].buf)
                        fh_close_conn(&s->conns[i]);
                    fd = -1;
                }
            }
            if (fd >= 0)
                close(fd); /* table full */
        }
        for (nfds_t k = 2; k < np; k++) {
            fh_conn_t *c = &s->conns[map[k]];
            ssize_t n;

            if (!p[k].revents || c->fd < 0)
                continue;
            n = recv(c->fd, c->buf + c->len, FH_HEAD_MAX + FH_BODY_MAX - c->len,
                     0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) { /* peer closed, error, or a request too big */
                fh_close_conn(c);
                continue;
            }
            c->len += (size_t)n;
            if (fh_serve(s, c) != 0)
                fh_close_conn(c);
        }
    }
    for (i = 0; i < FH_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0)
            fh_close_conn(&s->conns[i]);
    }
    return NULL;
}

/* Start a server answering with replies (copied; strings borrowed for the
 * server's life). Returns NULL on failure. */
FH_FN fh_server_t *fh_start(const fh_reply_t *replies, size_t n)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    fh_server_t *s;
    size_t i;

    if (n == 0 || n > FH_MAX_REPLIES)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    memcpy(s->replies, replies, n * sizeof(*replies));
    s->n_replies = n;
    for (i = 0; i < FH_MAX_CONNS; i++)
        s->conns[i].fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(s->lfd, 64) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pipe2(s->stop, O_CLOEXEC) != 0)
        goto fail;
    s->port = ntohs(sa.sin_port);
    snprintf(s->hostport, sizeof(s->hostport), "127.0.0.1:%d", s->port);
    snprintf(s->base, sizeof(s->base), "http://%s", s->hostport);
    if (pthread_create(&s->thr, NULL, fh_main, s) != 0) {
        close(s->stop[0]);
        close(s->stop[1]);
        goto fail;
    }
    return s;
fail:
    if (s->lfd >= 0)
        close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

/* Stop the server and free it. Accepts NULL. */
FH_FN void fh_stop(fh_server_t *s)
{
    if (!s)
        return;
    if (write(s->stop[1], "x", 1) != 1)
        perror("fh_stop");
    pthread_join(s->thr, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

FH_FN size_t fh_count(fh_server_t *s)
{
    size_t n;

    pthread_mutex_lock(&s->mu);
    n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

FH_FN int fh_conns(fh_server_t *s)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = s->n_conns;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Copy of recorded request i (0-based) into out; -1 when there is none. */
FH_FN int fh_request(fh_server_t *s, size_t i, fh_request_t *out)
{
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    if (i < s->n_reqs && i < FH_MAX_REQS) {
        *out = s->reqs[i];
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Value of header name in r (case-insensitive) into out; -1 if absent. */
FH_FN int fh_header(const fh_request_t *r, const char *name, char *out,
                    size_t out_size)
{
    size_t nl = strlen(name);
    const char *p = r->headers;

    while (*p) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);

        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;

            while (*v == ' ')
                v++;
            snprintf(out, out_size, "%.*s", (int)(ll - (size_t)(v - p)), v);
            return 0;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    return -1;
}

#endif
