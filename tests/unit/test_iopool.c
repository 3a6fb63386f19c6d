/* rp_iopool and rp_inbox: tasks run on pool threads, completions come back
 * to the caller through the inbox in order, and the eventfd wakes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rp_iopool.h"

#define NTASKS 5000

typedef struct task {
    rp_inbox_item_t item; /* first, as the worker does */
    rp_inbox_t *ib;
    int id;
    pthread_t ran_on;
} task_t;

static void run_task(void *arg)
{
    task_t *t = arg;

    t->ran_on = pthread_self();
    rp_inbox_post(t->ib, &t->item, 7);
}

static void test_tasks_complete_through_inbox(void **state)
{
    int efd = eventfd(0, EFD_NONBLOCK);
    rp_inbox_t *ib;
    rp_iopool_t *pool;
    task_t *tasks = calloc(NTASKS, sizeof(*tasks));
    char *seen = calloc(NTASKS, 1);
    int got = 0;
    char es[256];

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(rp_inbox_new(efd, &ib), RP_OK);
    assert_int_equal(rp_iopool_new(4, &pool, es, sizeof(es)), RP_OK);
    for (int i = 0; i < NTASKS; i++) {
        tasks[i].ib = ib;
        tasks[i].id = i;
        assert_int_equal(rp_iopool_submit(pool, run_task, &tasks[i]), RP_OK);
    }
    while (got < NTASKS) {
        struct pollfd pfd = {.fd = efd, .events = POLLIN};
        uint64_t v;
        rp_inbox_item_t *it;

        /* The eventfd must wake us: a lost wake-up would hang here and the
         * CTest timeout would fail the test. */
        assert_true(poll(&pfd, 1, 10000) == 1);
        assert_int_equal(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
        for (it = rp_inbox_take(ib); it; it = it->next) {
            task_t *t = (task_t *)it;

            assert_int_equal(it->kind, 7);
            assert_false(seen[t->id]);
            assert_false(pthread_equal(t->ran_on, pthread_self()));
            seen[t->id] = 1;
            got++;
        }
    }
    assert_null(rp_inbox_take(ib));
    rp_iopool_destroy(pool);
    rp_inbox_destroy(ib);
    close(efd);
    free(tasks);
    free(seen);
}

static atomic_int drained;

static void count_task(void *arg)
{
    (void)arg;
    usleep(100);
    atomic_fetch_add(&drained, 1);
}

static void test_destroy_runs_queued_tasks(void **state)
{
    rp_iopool_t *pool;
    char es[256];

    (void)state;
    atomic_store(&drained, 0);
    assert_int_equal(rp_iopool_new(2, &pool, es, sizeof(es)), RP_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(rp_iopool_submit(pool, count_task, NULL), RP_OK);
    rp_iopool_destroy(pool); /* must drain, not drop */
    assert_int_equal(atomic_load(&drained), 500);
}

static void test_bad_thread_count(void **state)
{
    rp_iopool_t *pool = (rp_iopool_t *)1;
    char es[256] = "";

    (void)state;
    assert_int_equal(rp_iopool_new(0, &pool, es, sizeof(es)), RP_ERR_INVALID);
    assert_null(pool);
    assert_non_null(strstr(es, "io threads"));
    assert_int_equal(rp_iopool_new(RP_IOPOOL_THREADS_MAX + 1, &pool, es,
                                   sizeof(es)),
                     RP_ERR_INVALID);
    rp_iopool_destroy(NULL);
    rp_inbox_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_complete_through_inbox),
        cmocka_unit_test(test_destroy_runs_queued_tasks),
        cmocka_unit_test(test_bad_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
