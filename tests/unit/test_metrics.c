/* rp_metrics: families render in text format 0.0.4 (HELP/TYPE, escaped
 * label values, cumulative buckets ending in +Inf, _sum/_count), label
 * sets are bounded and refused beyond their maximum, bad declarations are
 * refused, and concurrent updates while rendering lose nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "rp_metrics.h"

static char *render(rp_metrics_t *m)
{
    rp_buf_t b;
    rp_buf_init(&b, 1 << 20);
    assert_int_equal(rp_metrics_render(m, &b), RP_OK);
    return rp_buf_steal(&b, NULL);
}

static void test_counter_and_gauge_text(void **state)
{
    (void)state;
    char err[200];
    rp_metrics_t *m = rp_metrics_new();
    assert_non_null(m);
    rp_metric_t *c = rp_metrics_counter(
        m, "rp_results_total", "Results by status.\nSecond \\ line",
        RP_LV("status", "code"), 2, 8, err, sizeof err);
    assert_non_null(c);
    rp_metric_t *g = rp_metrics_gauge(m, "rp_running", "Running now.", NULL, 0,
                                      1, err, sizeof err);
    assert_non_null(g);
    assert_int_equal(rp_metrics_inc(c, RP_LV("ok", "none")), RP_OK);
    assert_int_equal(rp_metrics_add(c, RP_LV("ok", "none"), 2), RP_OK);
    assert_int_equal(rp_metrics_inc(c, RP_LV("err\"q\\\n", "x")), RP_OK);
    assert_int_equal(rp_metrics_add(c, RP_LV("ok", "none"), -1), RP_ERR_INVALID);
    assert_int_equal(rp_metrics_set(c, RP_LV("ok", "none"), 9), RP_ERR_INVALID);
    assert_int_equal(rp_metrics_set(g, NULL, 2.5), RP_OK);
    assert_int_equal(rp_metrics_add(g, NULL, -1), RP_OK);

    char *t = render(m);
    assert_string_equal(
        t, "# HELP rp_results_total Results by status.\\nSecond \\\\ line\n"
           "# TYPE rp_results_total counter\n"
           "rp_results_total{status=\"ok\",code=\"none\"} 3\n"
           "rp_results_total{status=\"err\\\"q\\\\\\n\",code=\"x\"} 1\n"
           "# HELP rp_running Running now.\n"
           "# TYPE rp_running gauge\n"
           "rp_running 1.5\n");
    free(t);
    assert_true(rp_metrics_value(c, RP_LV("ok", "none")) == 3);
    assert_true(rp_metrics_value(c, RP_LV("never", "seen")) == 0);
    rp_metrics_destroy(m);
}

static void test_unlabelled_zero_before_update(void **state)
{
    (void)state;
    rp_metrics_t *m = rp_metrics_new();
    assert_non_null(rp_metrics_counter(m, "a_total", "A.", NULL, 0, 1, NULL, 0));
    assert_non_null(rp_metrics_counter(m, "b_total", "B.", RP_LV("x"), 1, 4,
                                       NULL, 0));
    char *t = render(m);
    assert_string_equal(t, "# HELP a_total A.\n# TYPE a_total counter\na_total 0\n"
                           "# HELP b_total B.\n# TYPE b_total counter\n");
    free(t);
    rp_metrics_destroy(m);
}

static void test_histogram_text(void **state)
{
    (void)state;
    rp_metrics_t *m = rp_metrics_new();
    const double b[] = {0.1, 0.5, 1};
    rp_metric_t *h = rp_metrics_histogram(m, "rp_stage_seconds", "Stage time.",
                                          RP_LV("stage"), 1, 4, b, 3, NULL, 0);
    assert_non_null(h);
    const double obs[] = {0.05, 0.1, 0.3, 0.7, 2, 5};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(rp_metrics_observe(h, RP_LV("run"), obs[i]), RP_OK);
    assert_int_equal(rp_metrics_inc(h, RP_LV("run")), RP_ERR_INVALID);
    char *t = render(m);
    assert_string_equal(t,
        "# HELP rp_stage_seconds Stage time.\n"
        "# TYPE rp_stage_seconds histogram\n"
        "rp_stage_seconds_bucket{stage=\"run\",le=\"0.1\"} 2\n"
        "rp_stage_seconds_bucket{stage=\"run\",le=\"0.5\"} 3\n"
        "rp_stage_seconds_bucket{stage=\"run\",le=\"1\"} 4\n"
        "rp_stage_seconds_bucket{stage=\"run\",le=\"+Inf\"} 6\n"
        "rp_stage_seconds_sum{stage=\"run\"} 8.15\n"
        "rp_stage_seconds_count{stage=\"run\"} 6\n");
    free(t);
    assert_true(rp_metrics_value(h, RP_LV("run")) == 6);
    rp_metrics_destroy(m);
}

static void test_bounded_series(void **state)
{
    (void)state;
    rp_metrics_t *m = rp_metrics_new();
    rp_metric_t *c = rp_metrics_counter(m, "lag_total", "x", RP_LV("partition"),
                                        1, 3, NULL, 0);
    char v[16];
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(rp_metrics_inc(c, RP_LV(v)), RP_OK);
    }
    assert_int_equal(rp_metrics_inc(c, RP_LV("3")), RP_ERR_TOO_LARGE);
    assert_int_equal(rp_metrics_inc(c, RP_LV("4")), RP_ERR_TOO_LARGE);
    assert_int_equal(rp_metrics_inc(c, RP_LV("1")), RP_OK); /* existing: fine */
    assert_int_equal(rp_metrics_refused(m), 2);
    assert_null(rp_metrics_series(c, RP_LV("5")));
    rp_metrics_series_add(NULL, 1); /* refused handle: a no-op */
    char longv[RP_METRICS_VALUE_MAX + 2];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(rp_metrics_inc(c, RP_LV(longv)), RP_ERR_TOO_LARGE);
    rp_metrics_destroy(m);
}

static void test_bad_declarations(void **state)
{
    (void)state;
    char err[200];
    rp_metrics_t *m = rp_metrics_new();
    const double b[] = {1, 0.5};
    assert_null(rp_metrics_counter(m, "9bad", "x", NULL, 0, 1, err, sizeof err));
    assert_null(rp_metrics_counter(m, "a-b", "x", NULL, 0, 1, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("__x"), 1, 2, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("le"), 1, 2, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("a", "a"), 2, 2, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("a"), 1, 0, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("a"), 1,
                                   RP_METRICS_MAX_SERIES + 1, err, sizeof err));
    assert_null(rp_metrics_counter(m, "ok", "x", RP_LV("a", "b", "c", "d", "e"),
                                   5, 2, err, sizeof err));
    assert_null(rp_metrics_histogram(m, "h", "x", NULL, 0, 1, b, 2, err, sizeof err));
    assert_non_null(strstr(err, "increasing"));
    assert_non_null(rp_metrics_counter(m, "ok", "x", NULL, 0, 1, err, sizeof err));
    assert_null(rp_metrics_gauge(m, "ok", "x", NULL, 0, 1, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    rp_metrics_destroy(m);
    rp_metrics_destroy(NULL);
}

static double answer(void *arg)
{
    return *(double *)arg;
}

static void test_gauge_fn(void **state)
{
    (void)state;
    double v = 42;
    rp_metrics_t *m = rp_metrics_new();
    rp_metric_t *g = rp_metrics_gauge_fn(m, "up_now", "x", answer, &v, NULL, 0);
    assert_non_null(g);
    assert_int_equal(rp_metrics_set(g, NULL, 1), RP_ERR_INVALID);
    v = 7;
    char *t = render(m);
    assert_string_equal(t, "# HELP up_now x\n# TYPE up_now gauge\nup_now 7\n");
    free(t);
    rp_metrics_destroy(m);
}

static void test_render_too_large(void **state)
{
    (void)state;
    rp_metrics_t *m = rp_metrics_new();
    rp_metrics_counter(m, "some_total", "Some help text.", NULL, 0, 1, NULL, 0);
    rp_buf_t b;
    rp_buf_init(&b, 16);
    assert_int_equal(rp_metrics_render(m, &b), RP_ERR_TOO_LARGE);
    rp_buf_free(&b);
    rp_metrics_destroy(m);
}

#define NTHREADS 4
#define NINC 20000

typedef struct conc {
    rp_metric_t *c, *h;
    int id;
} conc_t;

static void *incr(void *arg)
{
    conc_t *x = arg;
    char v[8];
    for (int i = 0; i < NINC; i++) {
        snprintf(v, sizeof v, "%d", i % 5);
        rp_metrics_inc(x->c, RP_LV(v));
        rp_metrics_observe(x->h, NULL, 0.001 * (i % 100));
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    rp_metrics_t *m = rp_metrics_new();
    conc_t x = {
        rp_metrics_counter(m, "c_total", "x", RP_LV("k"), 1, 8, NULL, 0),
        rp_metrics_histogram(m, "h_seconds", "x", NULL, 0, 1,
                             rp_metrics_buckets_latency,
                             rp_metrics_buckets_latency_n, NULL, 0),
        0};
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, incr, &x), 0);
    /* Render while they run: must never crash or tear a family. */
    for (int i = 0; i < 50; i++)
        free(render(m));
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    double sum = 0;
    char v[8];
    for (int k = 0; k < 5; k++) {
        snprintf(v, sizeof v, "%d", k);
        sum += rp_metrics_value(x.c, RP_LV(v));
    }
    assert_true(sum == (double)NTHREADS * NINC);
    assert_true(rp_metrics_value(x.h, NULL) == (double)NTHREADS * NINC);
    rp_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_text),
        cmocka_unit_test(test_unlabelled_zero_before_update),
        cmocka_unit_test(test_histogram_text),
        cmocka_unit_test(test_bounded_series),
        cmocka_unit_test(test_bad_declarations),
        cmocka_unit_test(test_gauge_fn),
        cmocka_unit_test(test_render_too_large),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
