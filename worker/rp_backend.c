#include "rp_backend.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    rp_err_t (*init)(rp_backend_t *be, const rp_backend_conf_t *conf,
                     char *errstr, size_t errstr_size);
} rp_backends[] = {
    {"local", rp_backend_local_init},
    {"cloudrun", rp_backend_cloudrun_init},
};

rp_err_t rp_backend_new(const char *name, const rp_backend_conf_t *conf,
                        rp_backend_done_cb *done_cb, void *opaque,
                        rp_backend_t **out, char *errstr, size_t errstr_size)
{
    rp_backend_t *be;
    rp_err_t err;

    *out = NULL;
    for (size_t i = 0; i < sizeof(rp_backends) / sizeof(rp_backends[0]); i++) {
        if (strcmp(rp_backends[i].name, name) != 0)
            continue;
        if (!(be = calloc(1, sizeof(*be))))
            return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        be->done_cb = done_cb;
        be->done_opaque = opaque;
        if ((err = rp_backends[i].init(be, conf, errstr, errstr_size))) {
            free(be);
            return err;
        }
        *out = be;
        return RP_OK;
    }
    return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                   "unknown backend '%s' (available: local, cloudrun)", name);
}

rp_err_t rp_backend_start(rp_backend_t *be, const rp_jobspec_t *spec,
                          void *job, rp_backend_run_t **run, char *errstr,
                          size_t errstr_size)
{
    return be->ops->start(be, spec, job, run, errstr, errstr_size);
}

bool rp_backend_can_start_fresh(const rp_backend_t *be)
{
    return be->ops->start_fresh != NULL;
}

rp_err_t rp_backend_start_fresh(rp_backend_t *be, const rp_jobspec_t *spec,
                                void *job, rp_backend_run_t **run,
                                char *errstr, size_t errstr_size)
{
    if (!be->ops->start_fresh)
        return be->ops->start(be, spec, job, run, errstr, errstr_size);
    return be->ops->start_fresh(be, spec, job, run, errstr, errstr_size);
}

void rp_backend_cancel(rp_backend_t *be, rp_backend_run_t *run)
{
    be->ops->cancel(be, run);
}

void rp_backend_detach(rp_backend_t *be, rp_backend_run_t *run)
{
    if (be->ops->detach)
        be->ops->detach(be, run);
    else
        be->ops->cancel(be, run);
}

bool rp_backend_can_attach(const rp_backend_t *be)
{
    return be->ops->attach != NULL;
}

rp_err_t rp_backend_attach(rp_backend_t *be, const char *run_id, void *job,
                           rp_backend_run_t **run, char *errstr,
                           size_t errstr_size)
{
    *run = NULL;
    if (!be->ops->attach)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "backend %s cannot attach to a run", be->ops->name);
    return be->ops->attach(be, run_id, job, run, errstr, errstr_size);
}

void rp_backend_run_id(rp_backend_t *be, rp_backend_run_t *run,
                       char out[RP_CLAIM_RUN_MAX + 1])
{
    out[0] = '\0';
    if (be->ops->run_id && run)
        be->ops->run_id(be, run, out);
}

bool rp_backend_quota(rp_backend_t *be, int i, rp_backend_quota_t *out)
{
    return be && be->ops->quota && be->ops->quota(be, i, out);
}

bool rp_backend_counter(rp_backend_t *be, int i, const char **name,
                        uint64_t *value)
{
    return be && be->ops->counter && be->ops->counter(be, i, name, value);
}

int64_t rp_backend_started_ms(rp_backend_t *be, rp_backend_run_t *run)
{
    return be->ops->started_ms && run ? be->ops->started_ms(be, run) : -1;
}

void rp_backend_release(rp_backend_t *be, rp_backend_run_t *run)
{
    be->ops->release(be, run);
}

void rp_backend_destroy(rp_backend_t *be)
{
    if (!be)
        return;
    be->ops->close(be);
    free(be);
}
