#include "rp_err.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *code;
    const char *str;
    bool retriable;
} rp_err_table[RP_ERR__COUNT] = {
    [RP_OK] = {"ok", "success", false},
    [RP_ERR_INVALID] = {"invalid", "invalid input", false},
    [RP_ERR_NOMEM] = {"no_memory", "out of memory", true},
    [RP_ERR_TOO_LARGE] = {"too_large", "input too large", false},
    [RP_ERR_NOT_FOUND] = {"not_found", "not found", false},
    [RP_ERR_EXISTS] = {"exists", "already exists", false},
    [RP_ERR_CONFLICT] = {"conflict", "version conflict", false},
    [RP_ERR_IO] = {"io", "I/O error", true},
    [RP_ERR_TIMEOUT] = {"timeout", "timed out", true},
    [RP_ERR_UNAVAILABLE] = {"unavailable", "temporarily unavailable", true},
    [RP_ERR_PERMISSION] = {"permission_denied", "permission denied", false},
    [RP_ERR_PROTOCOL] = {"protocol", "protocol error", false},
    [RP_ERR_KAFKA] = {"kafka", "Kafka error", true},
    [RP_ERR_SPAWN] = {"spawn", "could not start process", true},
    [RP_ERR_CANCELLED] = {"cancelled", "cancelled", false},
    [RP_ERR_INTERNAL] = {"internal", "internal error", false},
};

static int rp_err_valid(rp_err_t err)
{
    return (int)err >= 0 && err < RP_ERR__COUNT;
}

const char *rp_err_str(rp_err_t err)
{
    return rp_err_valid(err) ? rp_err_table[err].str : "unknown error";
}

const char *rp_err_code(rp_err_t err)
{
    return rp_err_valid(err) ? rp_err_table[err].code : "unknown";
}

bool rp_err_retriable(rp_err_t err)
{
    return rp_err_valid(err) && rp_err_table[err].retriable;
}

int rp_errf_msg(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (!errstr || errstr_size == 0)
        return 0;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return 0;
}
