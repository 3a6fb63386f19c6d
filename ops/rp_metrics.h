/* rp_metrics — a small thread-safe metrics registry rendered as Prometheus
 * text exposition format 0.0.4.
 *
 * A registry holds families (counter, gauge, histogram). Each family is
 * declared up front with its label names (at most RP_METRICS_MAX_LABELS)
 * and a maximum number of label-value combinations (series, at most
 * RP_METRICS_MAX_SERIES): a family never grows past it, so a bug that
 * puts an unbounded value into a label cannot eat memory. Updates to a
 * series beyond the maximum are refused (RP_ERR_TOO_LARGE, logged once
 * per family) and counted in rp_metrics_refused().
 *
 * Cost and threads: every series' values are atomics, and a family's
 * series array is allocated whole at declaration, so an update of an
 * existing series takes no lock (a short linear scan comparing label
 * values, or nothing with a cached rp_metrics_series_t handle). Creating
 * a series takes the family's mutex for a few string copies. Rendering
 * takes no lock an update waits on, so a scrape never blocks the updater.
 * Declare families from one thread before others update or render them;
 * after that any thread may update, and any thread may render.
 *
 * Histogram buckets are upper bounds in base units (seconds), strictly
 * increasing, at most RP_METRICS_MAX_BUCKETS; +Inf is implicit.
 */
#ifndef RP_METRICS_H
#define RP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_buf.h"
#include "rp_err.h"

#define RP_METRICS_MAX_LABELS 4
#define RP_METRICS_MAX_SERIES 1024
#define RP_METRICS_MAX_BUCKETS 32
#define RP_METRICS_MAX_FAMILIES 128
#define RP_METRICS_NAME_MAX 128  /* metric and label names, bytes */
#define RP_METRICS_VALUE_MAX 128 /* one label value, bytes (longer: refused) */
#define RP_METRICS_HELP_MAX 512

typedef struct rp_metrics rp_metrics_t;
typedef struct rp_metric rp_metric_t;         /* a family */
typedef struct rp_metrics_series rp_metrics_series_t; /* one label set */

/* Label values as a literal array: rp_metrics_inc(f, RP_LV("ok", "none")). */
#define RP_LV(...) ((const char *const[]){__VA_ARGS__})

/* Default bucket sets (seconds). */
extern const double rp_metrics_buckets_latency[]; /* 1 ms .. 60 s */
extern const size_t rp_metrics_buckets_latency_n;
extern const double rp_metrics_buckets_run[];     /* 10 ms .. 1 h */
extern const size_t rp_metrics_buckets_run_n;

/* New empty registry; NULL on allocation failure. Caller destroys. */
rp_metrics_t *rp_metrics_new(void);

/* Free the registry and all families; accepts NULL. No other thread may
 * use it any more (stop the HTTP server first). */
void rp_metrics_destroy(rp_metrics_t *m);

/* Declare a family. name/help/label_names are copied. label_names has
 * nlabels entries (0 allowed). max_series bounds the label combinations
 * (1..RP_METRICS_MAX_SERIES; an unlabelled family has exactly one).
 * Returns the family (owned by the registry), or NULL with errstr set on a
 * bad name, a duplicate name, too many labels/families/series. */
rp_metric_t *rp_metrics_counter(rp_metrics_t *m, const char *name,
                                const char *help,
                                const char *const *label_names, size_t nlabels,
                                size_t max_series, char *errstr,
                                size_t errstr_size);
rp_metric_t *rp_metrics_gauge(rp_metrics_t *m, const char *name,
                              const char *help, const char *const *label_names,
                              size_t nlabels, size_t max_series, char *errstr,
                              size_t errstr_size);
/* buckets: nbuckets upper bounds, strictly increasing, finite (copied). */
rp_metric_t *rp_metrics_histogram(rp_metrics_t *m, const char *name,
                                  const char *help,
                                  const char *const *label_names,
                                  size_t nlabels, size_t max_series,
                                  const double *buckets, size_t nbuckets,
                                  char *errstr, size_t errstr_size);

/* An unlabelled gauge whose value fn(arg) returns at render time. fn runs
 * on the rendering thread (the HTTP server's), so it must be thread-safe;
 * arg is borrowed for the registry's life. */
rp_metric_t *rp_metrics_gauge_fn(rp_metrics_t *m, const char *name,
                                 const char *help, double (*fn)(void *arg),
                                 void *arg, char *errstr, size_t errstr_size);

/* The series for these label values (one per label name; copied), created
 * on first use. NULL if the family is full, a value is NULL or longer than
 * RP_METRICS_VALUE_MAX, or f is NULL. The handle lives as long as the
 * registry; callers may cache it. Any thread. */
rp_metrics_series_t *rp_metrics_series(rp_metric_t *f,
                                       const char *const *label_values);

/* Updates on a series handle; NULL s is a no-op (so a refused series
 * costs nothing). Lock-free; any thread. */
void rp_metrics_series_add(rp_metrics_series_t *s, double v);    /* counter/gauge */
void rp_metrics_series_set(rp_metrics_series_t *s, double v);    /* gauge */
void rp_metrics_series_observe(rp_metrics_series_t *s, double v); /* histogram */

/* Shorthands: look the series up, then update. label_values may be NULL
 * for an unlabelled family. Return RP_OK, RP_ERR_TOO_LARGE (family full or
 * value too long) or RP_ERR_INVALID (wrong family type, NULL f). A counter
 * refuses negative increments (RP_ERR_INVALID). Any thread. */
rp_err_t rp_metrics_inc(rp_metric_t *f, const char *const *label_values);
rp_err_t rp_metrics_add(rp_metric_t *f, const char *const *label_values,
                        double v);
rp_err_t rp_metrics_set(rp_metric_t *f, const char *const *label_values,
                        double v);
rp_err_t rp_metrics_observe(rp_metric_t *f, const char *const *label_values,
                            double v);

/* Read back a value (tests, callbacks): a counter's or gauge's value, a
 * histogram's count. 0 for a series never created. Any thread. */
double rp_metrics_value(rp_metric_t *f, const char *const *label_values);

/* Updates refused because a family was full (all families). */
uint64_t rp_metrics_refused(const rp_metrics_t *m);

/* Append the whole registry in text format 0.0.4 to out (families in
 * declaration order, series in creation order). RP_ERR_TOO_LARGE if out's
 * maximum is reached (out then holds a truncated text). Any thread. */
rp_err_t rp_metrics_render(rp_metrics_t *m, rp_buf_t *out);

/* The Content-Type of what rp_metrics_render writes. */
#define RP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
