#include "rp_codes.h"

#include <string.h>

static const struct {
    const char *str;
    const char *meaning;
} rp_code_table[RP_CODE__COUNT] = {
#define RP_CODE_ROW_(name, str, meaning) [RP_CODE_##name] = {str, meaning},
    RP_CODES(RP_CODE_ROW_)
#undef RP_CODE_ROW_
};

/* rp_err_t -> code; designated so a reordered rp_err_t cannot shift it. */
static const rp_code_t rp_code_err_table[RP_ERR__COUNT] = {
    [RP_OK] = RP_CODE_INTERNAL,
    [RP_ERR_INVALID] = RP_CODE_INVALID,
    [RP_ERR_NOMEM] = RP_CODE_NO_MEMORY,
    [RP_ERR_TOO_LARGE] = RP_CODE_TOO_LARGE,
    [RP_ERR_NOT_FOUND] = RP_CODE_NOT_FOUND,
    [RP_ERR_EXISTS] = RP_CODE_EXISTS,
    [RP_ERR_CONFLICT] = RP_CODE_CONFLICT,
    [RP_ERR_IO] = RP_CODE_IO,
    [RP_ERR_TIMEOUT] = RP_CODE_TIMEOUT,
    [RP_ERR_UNAVAILABLE] = RP_CODE_UNAVAILABLE,
    [RP_ERR_PERMISSION] = RP_CODE_PERMISSION_DENIED,
    [RP_ERR_PROTOCOL] = RP_CODE_PROTOCOL,
    [RP_ERR_KAFKA] = RP_CODE_KAFKA,
    [RP_ERR_SPAWN] = RP_CODE_SPAWN,
    [RP_ERR_CANCELLED] = RP_CODE_CANCELLED,
    [RP_ERR_INTERNAL] = RP_CODE_INTERNAL,
};

static int rp_code_valid(rp_code_t code)
{
    return (int)code >= 0 && code < RP_CODE__COUNT;
}

const char *rp_code_str(rp_code_t code)
{
    return rp_code_valid(code) ? rp_code_table[code].str
                               : rp_code_table[RP_CODE_INTERNAL].str;
}

const char *rp_code_meaning(rp_code_t code)
{
    return rp_code_valid(code) ? rp_code_table[code].meaning : "";
}

int rp_code_parse(const char *s, rp_code_t *code)
{
    int i;

    if (!s)
        return -1;
    for (i = 0; i < RP_CODE__COUNT; i++) {
        if (strcmp(s, rp_code_table[i].str) == 0) {
            if (code)
                *code = (rp_code_t)i;
            return 0;
        }
    }
    return -1;
}

rp_code_t rp_code_of_err(rp_err_t err)
{
    return (int)err >= 0 && err < RP_ERR__COUNT ? rp_code_err_table[err]
                                                : RP_CODE_INTERNAL;
}
