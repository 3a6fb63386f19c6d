/* rp_layout — object keys in the state store (see rp_layout.h). */
#include "rp_layout.h"

#include <stdio.h>
#include <string.h>

/* An id as one key segment: non-empty, not "." or "..", and only the key
 * characters [A-Za-z0-9._:-] (the same set rp_id_valid allows). */
static int rp_layout_segment_valid(const char *s, size_t n)
{
    if (n == 0 || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._:-") >= n;
}

static void rp_layout_build(const char *dir, const char *id, const char *file,
                            char *out, size_t out_size)
{
    size_t id_len;
    int n;

    if (!out || out_size == 0)
        return;
    out[0] = '\0';
    if (!id)
        return;
    id_len = strnlen(id, RP_STATE_KEY_MAX + 1);
    if (!rp_layout_segment_valid(id, id_len))
        return;
    n = snprintf(out, out_size, "%s/%s/%s", dir, id, file);
    /* A cut key would name some other object: give the invalid "" instead. */
    if (n < 0 || (size_t)n >= out_size)
        out[0] = '\0';
}

void rp_layout_session_key(const char *session_id, char *out, size_t out_size)
{
    rp_layout_build("sessions", session_id, "state.json", out, out_size);
}

void rp_layout_result_key(const char *execution_id, char *out,
                          size_t out_size)
{
    rp_layout_build("executions", execution_id, "result.json", out, out_size);
}

void rp_layout_execution_key(const char *execution_id, const char *file,
                             char *out, size_t out_size)
{
    rp_layout_build("executions", execution_id, file, out, out_size);
}

void rp_layout_ws_prefix(const char *session_id, char *out, size_t out_size)
{
    rp_layout_build("workspaces", session_id, "", out, out_size);
}

void rp_layout_ws_chunk_key(const char *session_id, const char *hash,
                            char *out, size_t out_size)
{
    char file[128];

    if (out && out_size)
        out[0] = '\0';
    if (!hash || strnlen(hash, 65) != 64 ||
        strspn(hash, "0123456789abcdef") != 64)
        return;
    snprintf(file, sizeof(file), "chunks/%s", hash);
    rp_layout_build("workspaces", session_id, file, out, out_size);
}

void rp_layout_ws_manifest_key(const char *session_id,
                               const char *execution_id, char *out,
                               size_t out_size)
{
    char file[RP_ID_MAX + 32];
    size_t n;

    if (out && out_size)
        out[0] = '\0';
    if (!execution_id)
        return;
    n = strnlen(execution_id, RP_ID_MAX + 1);
    if (n > RP_ID_MAX || !rp_layout_segment_valid(execution_id, n))
        return;
    snprintf(file, sizeof(file), "snapshots/%s.json.zst", execution_id);
    rp_layout_build("workspaces", session_id, file, out, out_size);
}
