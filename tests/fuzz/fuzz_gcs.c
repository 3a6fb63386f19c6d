/* Cloud Storage's side of the state store (store/rp_state_gs.c) and the
 * token endpoint's error bodies: the Object JSON of an upload reply, an
 * objects.list page, an error body, the X-Goog-Generation header, a
 * gs:// state URL (rp_state_open, no request made) and an OAuth error
 * body (rp_auth_error_text). The first byte picks. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "rp_auth.h"
#include "rp_state.h"
#include "rp_state_gs.h"

#define FUZZ_GCS_OUT 300 /* like RP_STATE_GS_MSG_MAX */

static int fuzz_gcs_list_cb(void *opaque, const char *key, uint64_t version)
{
    int *n = opaque;

    /* Only valid keys under the listed prefix, with real generations. */
    FUZZ_CHECK(rp_state_key_valid(key));
    FUZZ_CHECK(version != 0 && version != RP_STATE_ANY);
    return ++*n >= 1000; /* a caller that has seen enough stops it */
}

static void fuzz_gcs_printable(const char *s, size_t size)
{
    size_t n = strlen(s);

    FUZZ_CHECK(n < size);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512], out[FUZZ_GCS_OUT];
    const char *body;
    size_t len;
    uint64_t v = 0;

    switch (fuzz_pick(data, size, 6, &body, &len)) {
    case -1:
        return 0;
    case 0:
        if (rp_state_gs_parse_object_reply(body, len, &v))
            FUZZ_CHECK(v != 0 && v != RP_STATE_ANY);
        break;
    case 1: {
        char next[64];
        bool stopped = false;
        int n = 0;

        /* A store gs://b/p listing prefix "s/": full "p/s/", strip "p/". */
        if (rp_state_gs_parse_list_page(body, len, "p/s/", 2,
                                        fuzz_gcs_list_cb, &n, next,
                                        sizeof(next), &stopped, err,
                                        sizeof(err)) == RP_OK)
            FUZZ_CHECK(strlen(next) < sizeof(next));
        else
            FUZZ_CHECK(err[0] != '\0');
        break;
    }
    case 2:
        rp_state_gs_error_message(body, len, out, sizeof(out));
        fuzz_gcs_printable(out, sizeof(out));
        break;
    case 3: {
        char *s = fuzz_cstr((const uint8_t *)body, len);

        if (rp_state_gs_parse_generation(s, &v))
            FUZZ_CHECK(v != 0 && v != RP_STATE_ANY);
        free(s);
        break;
    }
    case 4: {
        char *url = malloc(len + 6);
        rp_state_t *st = NULL;

        if (!url)
            abort();
        /* The emulator variable would change what open accepts. */
        unsetenv("STORAGE_EMULATOR_HOST");
        memcpy(url, "gs://", 5);
        memcpy(url + 5, body, len);
        url[len + 5] = '\0';
        if (rp_state_open(url, &st, err, sizeof(err)) == RP_OK)
            FUZZ_CHECK(st != NULL);
        else
            FUZZ_CHECK(st == NULL && err[0] != '\0');
        rp_state_destroy(st);
        free(url);
        break;
    }
    default:
        rp_auth_error_text(body, len, out, sizeof(out));
        fuzz_gcs_printable(out, sizeof(out));
        break;
    }
    return 0;
}
