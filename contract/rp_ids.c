/* rp_ids — execution and session ids (see rp_ids.h). */
#include "rp_ids.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <errno.h>

/* ------------------------------------------------------------------ */
/* ids                                                                 */
/* ------------------------------------------------------------------ */

bool rp_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > RP_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    /* "." and ".." would be path segments of their own in the state store
     * (sessions/{id}/...), so they are not ids. */
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return false;
    return true;
}

rp_err_t rp_id_generate(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t got = 0, o = 0;

    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return RP_ERR_IO;
        }
        got += (size_t)r;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
    return RP_OK;
}
