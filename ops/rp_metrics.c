/* rp_metrics — see rp_metrics.h. Values are atomics; a series is published
 * to readers by a release store of the family's series count after it is
 * fully built, and never changes or moves afterwards. */
#include "rp_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_log.h"

typedef enum fam_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } fam_type_t;

struct rp_metrics_series {
    rp_metric_t *fam;
    char *values[RP_METRICS_MAX_LABELS];
    _Atomic uint64_t bits;     /* double: counter/gauge value, histogram sum */
    _Atomic uint64_t *buckets; /* histogram: nbuckets+1 counts, last = +Inf */
};

struct rp_metric {
    rp_metrics_t *reg;
    fam_type_t type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[RP_METRICS_MAX_LABELS];
    size_t max_series;
    _Atomic size_t nseries;
    rp_metrics_series_t *series; /* max_series slots, allocated up front */
    pthread_mutex_t mu;          /* series creation only */
    double *bounds;
    size_t nbuckets;
    double (*fn)(void *arg);
    void *fn_arg;
    atomic_bool warned;
};

struct rp_metrics {
    pthread_mutex_t mu; /* declaration only */
    rp_metric_t *fams[RP_METRICS_MAX_FAMILIES];
    _Atomic size_t nfams;
    _Atomic uint64_t refused;
};

const double rp_metrics_buckets_latency[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,   1,      2.5,   5,    10,    30,   60};
const size_t rp_metrics_buckets_latency_n =
    sizeof rp_metrics_buckets_latency / sizeof rp_metrics_buckets_latency[0];
const double rp_metrics_buckets_run[] = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
const size_t rp_metrics_buckets_run_n =
    sizeof rp_metrics_buckets_run / sizeof rp_metrics_buckets_run[0];

static uint64_t d2b(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double b2d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        p, &old, d2b(b2d(old) + v), memory_order_relaxed,
        memory_order_relaxed)) {
    }
}

rp_metrics_t *rp_metrics_new(void)
{
    rp_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void fam_free(rp_metric_t *f)
{
    if (!f)
        return;
    size_t n = atomic_load(&f->nseries);
    for (size_t i = 0; f->series && i < n; i++) {
        for (size_t j = 0; j < f->nlabels; j++)
            free(f->series[i].values[j]);
        free(f->series[i].buckets);
    }
    for (size_t j = 0; j < f->nlabels; j++)
        free(f->labels[j]);
    free(f->series);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void rp_metrics_destroy(rp_metrics_t *m)
{
    if (!m)
        return;
    size_t n = atomic_load(&m->nfams);
    for (size_t i = 0; i < n; i++)
        fam_free(m->fams[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics; labels without ':' and not "__". */
static bool valid_name(const char *s, bool label)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= RP_METRICS_NAME_MAX)
        return false;
    if (label && strncmp(s, "__", 2) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '_' || (!label && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static rp_metric_t *declare(rp_metrics_t *m, fam_type_t type, const char *name,
                            const char *help, const char *const *label_names,
                            size_t nlabels, size_t max_series,
                            const double *buckets, size_t nbuckets,
                            double (*fn)(void *), void *fn_arg,
                            char *errstr, size_t errstr_size)
{
    rp_metric_t *f = NULL;
    bool locked = false;

    if (!m || !valid_name(name, false)) {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID, "bad metric name \"%s\"",
                name ? name : "(null)");
        goto fail;
    }
    if (!help || strlen(help) >= RP_METRICS_HELP_MAX) {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: help missing or too long",
                name);
        goto fail;
    }
    if (nlabels > RP_METRICS_MAX_LABELS || (nlabels && !label_names)) {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: too many labels (max %d)",
                name, RP_METRICS_MAX_LABELS);
        goto fail;
    }
    if (nlabels == 0)
        max_series = 1;
    if (max_series == 0 || max_series > RP_METRICS_MAX_SERIES) {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                "%s: max_series must be 1..%d", name, RP_METRICS_MAX_SERIES);
        goto fail;
    }
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(label_names[i], true) ||
            strcmp(label_names[i], "le") == 0 ||
            strcmp(label_names[i], "quantile") == 0) {
            rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: bad label name \"%s\"",
                    name, label_names[i] ? label_names[i] : "(null)");
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0) {
                rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                        "%s: label \"%s\" twice", name, label_names[i]);
                goto fail;
            }
    }
    if (type == FAM_HISTOGRAM) {
        if (nbuckets == 0 || nbuckets > RP_METRICS_MAX_BUCKETS || !buckets) {
            rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: 1..%d buckets", name,
                    RP_METRICS_MAX_BUCKETS);
            goto fail;
        }
        for (size_t i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
                rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                        "%s: buckets must be finite and increasing", name);
                goto fail;
            }
    }

    f = calloc(1, sizeof *f);
    if (!f)
        goto nomem;
    pthread_mutex_init(&f->mu, NULL);
    f->reg = m;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help);
    f->series = calloc(max_series, sizeof *f->series);
    if (!f->name || !f->help || !f->series)
        goto nomem;
    f->max_series = max_series;
    f->fn = fn;
    f->fn_arg = fn_arg;
    for (size_t i = 0; i < nlabels; i++) {
        if (!(f->labels[i] = strdup(label_names[i])))
            goto nomem;
        f->nlabels = i + 1;
    }
    if (type == FAM_HISTOGRAM) {
        if (!(f->bounds = malloc(nbuckets * sizeof *f->bounds)))
            goto nomem;
        memcpy(f->bounds, buckets, nbuckets * sizeof *f->bounds);
        f->nbuckets = nbuckets;
    }

    pthread_mutex_lock(&m->mu);
    locked = true;
    size_t n = atomic_load(&m->nfams);
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->fams[i]->name, name) == 0) {
            rp_errf(errstr, errstr_size, RP_ERR_EXISTS, "metric %s declared twice",
                    name);
            goto fail;
        }
    if (n >= RP_METRICS_MAX_FAMILIES) {
        rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE, "more than %d metrics",
                RP_METRICS_MAX_FAMILIES);
        goto fail;
    }
    m->fams[n] = f;
    atomic_store_explicit(&m->nfams, n + 1, memory_order_release);
    pthread_mutex_unlock(&m->mu);
    return f;

nomem:
    rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
fail:
    if (locked)
        pthread_mutex_unlock(&m->mu);
    fam_free(f);
    return NULL;
}

rp_metric_t *rp_metrics_counter(rp_metrics_t *m, const char *name,
                                const char *help,
                                const char *const *label_names, size_t nlabels,
                                size_t max_series, char *errstr,
                                size_t errstr_size)
{
    return declare(m, FAM_COUNTER, name, help, label_names, nlabels, max_series,
                   NULL, 0, NULL, NULL, errstr, errstr_size);
}

rp_metric_t *rp_metrics_gauge(rp_metrics_t *m, const char *name,
                              const char *help, const char *const *label_names,
                              size_t nlabels, size_t max_series, char *errstr,
                              size_t errstr_size)
{
    return declare(m, FAM_GAUGE, name, help, label_names, nlabels, max_series,
                   NULL, 0, NULL, NULL, errstr, errstr_size);
}

rp_metric_t *rp_metrics_histogram(rp_metrics_t *m, const char *name,
                                  const char *help,
                                  const char *const *label_names,
                                  size_t nlabels, size_t max_series,
                                  const double *buckets, size_t nbuckets,
                                  char *errstr, size_t errstr_size)
{
    return declare(m, FAM_HISTOGRAM, name, help, label_names, nlabels,
                   max_series, buckets, nbuckets, NULL, NULL, errstr,
                   errstr_size);
}

rp_metric_t *rp_metrics_gauge_fn(rp_metrics_t *m, const char *name,
                                 const char *help, double (*fn)(void *arg),
                                 void *arg, char *errstr, size_t errstr_size)
{
    if (!fn) {
        rp_errf(errstr, errstr_size, RP_ERR_INVALID, "%s: no callback",
                name ? name : "(null)");
        return NULL;
    }
    /* fn is set before the family is published (release in declare). */
    return declare(m, FAM_GAUGE, name, help, NULL, 0, 1, NULL, 0, fn, arg,
                   errstr, errstr_size);
}

static bool same_values(const rp_metrics_series_t *s, size_t n,
                        const char *const *lv)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], lv[i]) != 0)
            return false;
    return true;
}

static rp_metrics_series_t *find(rp_metric_t *f, const char *const *lv,
                                 size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (same_values(&f->series[i], f->nlabels, lv))
            return &f->series[i];
    return NULL;
}

static void refuse(rp_metric_t *f, const char *why)
{
    atomic_fetch_add(&f->reg->refused, 1);
    if (!atomic_exchange(&f->warned, true))
        rp_log(RP_LOG_WARN, "metrics_series_refused", NULL, NULL,
               "metric %s: %s; further updates of new label values are dropped",
               f->name, why);
}

rp_metrics_series_t *rp_metrics_series(rp_metric_t *f,
                                       const char *const *label_values)
{
    rp_metrics_series_t *s;

    if (!f)
        return NULL;
    if (f->nlabels && !label_values)
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!label_values[i] ||
            strlen(label_values[i]) > RP_METRICS_VALUE_MAX) {
            refuse(f, "label value missing or too long");
            return NULL;
        }
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    if ((s = find(f, label_values, 0, n)))
        return s;

    pthread_mutex_lock(&f->mu);
    size_t n2 = atomic_load_explicit(&f->nseries, memory_order_relaxed);
    if ((s = find(f, label_values, n, n2)))
        goto out;
    if (n2 >= f->max_series) {
        refuse(f, "more label combinations than its maximum");
        goto out;
    }
    rp_metrics_series_t *ns = &f->series[n2];
    ns->fam = f;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!(ns->values[i] = strdup(label_values[i])))
            goto undo;
    if (f->type == FAM_HISTOGRAM &&
        !(ns->buckets = calloc(f->nbuckets + 1, sizeof *ns->buckets)))
        goto undo;
    atomic_store_explicit(&ns->bits, d2b(0.0), memory_order_relaxed);
    atomic_store_explicit(&f->nseries, n2 + 1, memory_order_release);
    s = ns;
    goto out;
undo:
    for (size_t i = 0; i < f->nlabels; i++) {
        free(ns->values[i]);
        ns->values[i] = NULL;
    }
    refuse(f, "out of memory");
out:
    pthread_mutex_unlock(&f->mu);
    return s;
}

void rp_metrics_series_add(rp_metrics_series_t *s, double v)
{
    if (!s || s->fam->type == FAM_HISTOGRAM)
        return;
    if (s->fam->type == FAM_COUNTER && !(v >= 0))
        return;
    atomic_add_double(&s->bits, v);
}

void rp_metrics_series_set(rp_metrics_series_t *s, double v)
{
    if (!s || s->fam->type != FAM_GAUGE)
        return;
    atomic_store_explicit(&s->bits, d2b(v), memory_order_relaxed);
}

void rp_metrics_series_observe(rp_metrics_series_t *s, double v)
{
    if (!s || s->fam->type != FAM_HISTOGRAM || isnan(v))
        return;
    const rp_metric_t *f = s->fam;
    size_t i = 0;
    while (i < f->nbuckets && v > f->bounds[i])
        i++;
    /* Non-cumulative per bucket; render sums them, so _count is always
     * the +Inf bucket even when a scrape races an observation. */
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->bits, v);
}

static rp_err_t update(rp_metric_t *f, const char *const *lv, double v,
                       int op)
{
    if (!f)
        return RP_ERR_INVALID;
    if ((op == 2 && f->type != FAM_GAUGE) ||
        (op == 3 && f->type != FAM_HISTOGRAM) ||
        (op == 1 && f->type == FAM_HISTOGRAM) ||
        (op == 1 && f->type == FAM_COUNTER && !(v >= 0)) || f->fn)
        return RP_ERR_INVALID;
    rp_metrics_series_t *s = rp_metrics_series(f, lv);
    if (!s)
        return RP_ERR_TOO_LARGE;
    if (op == 1)
        rp_metrics_series_add(s, v);
    else if (op == 2)
        rp_metrics_series_set(s, v);
    else
        rp_metrics_series_observe(s, v);
    return RP_OK;
}

rp_err_t rp_metrics_inc(rp_metric_t *f, const char *const *lv)
{
    return update(f, lv, 1, 1);
}

rp_err_t rp_metrics_add(rp_metric_t *f, const char *const *lv, double v)
{
    return update(f, lv, v, 1);
}

rp_err_t rp_metrics_set(rp_metric_t *f, const char *const *lv, double v)
{
    return update(f, lv, v, 2);
}

rp_err_t rp_metrics_observe(rp_metric_t *f, const char *const *lv, double v)
{
    return update(f, lv, v, 3);
}

static uint64_t hist_count(const rp_metrics_series_t *s)
{
    uint64_t c = 0;
    for (size_t i = 0; i <= s->fam->nbuckets; i++)
        c += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return c;
}

double rp_metrics_value(rp_metric_t *f, const char *const *lv)
{
    if (!f)
        return 0;
    if (f->fn)
        return f->fn(f->fn_arg);
    if (f->nlabels && !lv)
        return 0;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!lv[i])
            return 0;
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    const rp_metrics_series_t *s = find(f, lv, 0, n);
    if (!s)
        return 0;
    if (f->type == FAM_HISTOGRAM)
        return (double)hist_count(s);
    return b2d(atomic_load_explicit(&s->bits, memory_order_relaxed));
}

uint64_t rp_metrics_refused(const rp_metrics_t *m)
{
    return m ? atomic_load(&((rp_metrics_t *)m)->refused) : 0;
}

/* ---- rendering ---------------------------------------------------------- */

/* Prometheus floats: integers without a fraction, +Inf/-Inf/NaN spelled
 * as the text format wants, otherwise the shortest %g that reads back. */
static void fmt_double(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "NaN");
    else if (isinf(v))
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, n, "%.17g", v);
    }
}

/* Label values escape \ " and newline; HELP escapes \ and newline. */
static rp_err_t append_escaped(rp_buf_t *out, const char *s, bool quote)
{
    rp_err_t err = RP_OK;
    const char *run = s;
    for (; *s && !err; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (esc) {
            err = rp_buf_append(out, run, (size_t)(s - run));
            if (!err)
                err = rp_buf_append_str(out, esc);
            run = s + 1;
        }
    }
    if (!err)
        err = rp_buf_append(out, run, (size_t)(s - run));
    return err;
}

/* name{labels[,le="x"]} value\n */
static rp_err_t sample(rp_buf_t *out, const rp_metric_t *f,
                       const rp_metrics_series_t *s, const char *suffix,
                       const char *le, double v)
{
    char num[64];
    rp_err_t err = rp_buf_append_str(out, f->name);
    if (!err)
        err = rp_buf_append_str(out, suffix);
    size_t nl = s ? f->nlabels : 0;
    if (!err && (nl || le)) {
        err = rp_buf_append_str(out, "{");
        for (size_t i = 0; i < nl && !err; i++) {
            if (i)
                err = rp_buf_append_str(out, ",");
            if (!err)
                err = rp_buf_append_str(out, f->labels[i]);
            if (!err)
                err = rp_buf_append_str(out, "=\"");
            if (!err)
                err = append_escaped(out, s->values[i], true);
            if (!err)
                err = rp_buf_append_str(out, "\"");
        }
        if (!err && le) {
            if (nl)
                err = rp_buf_append_str(out, ",");
            if (!err)
                err = rp_buf_append_str(out, "le=\"");
            if (!err)
                err = rp_buf_append_str(out, le);
            if (!err)
                err = rp_buf_append_str(out, "\"");
        }
        if (!err)
            err = rp_buf_append_str(out, "}");
    }
    fmt_double(num, sizeof num, v);
    if (!err)
        err = rp_buf_append_str(out, " ");
    if (!err)
        err = rp_buf_append_str(out, num);
    if (!err)
        err = rp_buf_append_str(out, "\n");
    return err;
}

static rp_err_t render_family(const rp_metric_t *f, rp_buf_t *out)
{
    static const char *const type_name[] = {"counter", "gauge", "histogram"};
    rp_err_t err;
    char le[64];

    if ((err = rp_buf_append_str(out, "# HELP ")) ||
        (err = rp_buf_append_str(out, f->name)) ||
        (err = rp_buf_append_str(out, " ")) ||
        (err = append_escaped(out, f->help, false)) ||
        (err = rp_buf_append_str(out, "\n# TYPE ")) ||
        (err = rp_buf_append_str(out, f->name)) ||
        (err = rp_buf_append_str(out, " ")) ||
        (err = rp_buf_append_str(out, type_name[f->type])) ||
        (err = rp_buf_append_str(out, "\n")))
        return err;

    if (f->fn)
        return sample(out, f, NULL, "", NULL, f->fn(f->fn_arg));

    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    /* An unlabelled counter or gauge shows 0 before its first update, so
     * a dashboard sees the series from the start. */
    if (n == 0 && f->nlabels == 0 && f->type != FAM_HISTOGRAM)
        return sample(out, f, NULL, "", NULL, 0);
    for (size_t i = 0; i < n && !err; i++) {
        const rp_metrics_series_t *s = &f->series[i];
        if (f->type != FAM_HISTOGRAM) {
            err = sample(out, f, s, "", NULL,
                         b2d(atomic_load_explicit(&s->bits,
                                                  memory_order_relaxed)));
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbuckets && !err; b++) {
            cum += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
            if (b < f->nbuckets)
                fmt_double(le, sizeof le, f->bounds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            err = sample(out, f, s, "_bucket", le, (double)cum);
        }
        if (!err)
            err = sample(out, f, s, "_sum", NULL,
                         b2d(atomic_load_explicit(&s->bits,
                                                  memory_order_relaxed)));
        if (!err)
            err = sample(out, f, s, "_count", NULL, (double)cum);
    }
    return err;
}

rp_err_t rp_metrics_render(rp_metrics_t *m, rp_buf_t *out)
{
    rp_err_t err = RP_OK;
    if (!m || !out)
        return RP_ERR_INVALID;
    size_t n = atomic_load_explicit(&m->nfams, memory_order_acquire);
    for (size_t i = 0; i < n && !err; i++)
        err = render_family(m->fams[i], out);
    return err;
}
