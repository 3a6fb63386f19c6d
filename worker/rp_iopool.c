#include "rp_iopool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rp_iopool_task {
    struct rp_iopool_task *next;
    rp_iopool_fn *fn;
    void *arg;
} rp_iopool_task_t;

struct rp_iopool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    rp_iopool_task_t *head, *tail;
    size_t queued;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

static void *rp_iopool_thread(void *opaque)
{
    rp_iopool_t *p = opaque;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        rp_iopool_task_t *t;

        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->head)
            break; /* stopping and drained */
        t = p->head;
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

rp_err_t rp_iopool_new(int nthreads, rp_iopool_t **out, char *errstr,
                       size_t errstr_size)
{
    rp_iopool_t *p;

    *out = NULL;
    if (nthreads < 1 || nthreads > RP_IOPOOL_THREADS_MAX)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "io threads must be 1..%d", RP_IOPOOL_THREADS_MAX);
    if (!(p = calloc(1, sizeof(*p))) ||
        !(p->threads = calloc((size_t)nthreads, sizeof(pthread_t)))) {
        free(p);
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, rp_iopool_thread, p) != 0) {
            rp_iopool_destroy(p);
            return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL,
                           "cannot start io thread %d", i);
        }
        p->nthreads++;
    }
    *out = p;
    return RP_OK;
}

rp_err_t rp_iopool_submit(rp_iopool_t *p, rp_iopool_fn *fn, void *arg)
{
    rp_iopool_task_t *t = malloc(sizeof(*t));
    rp_err_t err = RP_OK;

    if (!t)
        return RP_ERR_NOMEM;
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&p->lock);
    if (p->queued >= RP_IOPOOL_QUEUE_MAX) {
        err = RP_ERR_TOO_LARGE;
        free(t);
    } else {
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->queued++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return err;
}

void rp_iopool_destroy(rp_iopool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p);
}

struct rp_inbox {
    pthread_mutex_t lock;
    rp_inbox_item_t *head, *tail;
    int wake_fd;
};

rp_err_t rp_inbox_new(int wake_fd, rp_inbox_t **out)
{
    rp_inbox_t *ib = calloc(1, sizeof(*ib));

    *out = NULL;
    if (!ib)
        return RP_ERR_NOMEM;
    pthread_mutex_init(&ib->lock, NULL);
    ib->wake_fd = wake_fd;
    *out = ib;
    return RP_OK;
}

void rp_inbox_post(rp_inbox_t *ib, rp_inbox_item_t *item, int kind)
{
    uint64_t one = 1;

    item->next = NULL;
    item->kind = kind;
    pthread_mutex_lock(&ib->lock);
    if (ib->tail)
        ib->tail->next = item;
    else
        ib->head = item;
    ib->tail = item;
    pthread_mutex_unlock(&ib->lock);
    /* An eventfd write only fails when the counter would overflow, and then
     * the main loop is already due to wake. */
    if (write(ib->wake_fd, &one, sizeof(one)) < 0) {
    }
}

rp_inbox_item_t *rp_inbox_take(rp_inbox_t *ib)
{
    rp_inbox_item_t *list;

    pthread_mutex_lock(&ib->lock);
    list = ib->head;
    ib->head = ib->tail = NULL;
    pthread_mutex_unlock(&ib->lock);
    return list;
}

void rp_inbox_destroy(rp_inbox_t *ib)
{
    if (!ib)
        return;
    pthread_mutex_destroy(&ib->lock);
    free(ib);
}
