/* Google's replies: an Execution (executions.get), a Job (jobs.get), an
 * executions.list page, an error body, a token endpoint reply and a
 * service-account key. The first byte picks the parser. */
#include "fuzz_common.h"
#include "rp_auth.h"
#include "rp_cloudrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];

    const char *body;
    size_t len;

    switch (fuzz_pick(data, size, 6, &body, &len)) {
    case -1:
        return 0;
    case 0: {
        rp_cloudrun_exec_t e;

        (void)rp_cloudrun_parse_execution(body, len, &e, err, sizeof(err));
        break;
    }
    case 1: {
        rp_cloudrun_job_t j;

        (void)rp_cloudrun_parse_job(body, len, &j, err, sizeof(err));
        break;
    }
    case 2: {
        char found[512], next[1024];
        bool older = false;

        if (rp_cloudrun_find_in_list(body, len, "e-1", 0, found,
                                     sizeof(found), next, sizeof(next),
                                     &older, err, sizeof(err)) == RP_OK)
            FUZZ_CHECK(strlen(found) < sizeof(found) &&
                       strlen(next) < sizeof(next));
        break;
    }
    case 3: {
        char msg[512];

        rp_cloudrun_error_message(429, body, len, msg, sizeof(msg));
        FUZZ_CHECK(strlen(msg) < sizeof(msg));
        break;
    }
    case 4: {
        char token[RP_AUTH_TOKEN_MAX];
        int64_t exp_ms = 0;

        if (rp_auth_parse_token_response(body, len, token, sizeof(token),
                                         &exp_ms, err, sizeof(err)) == RP_OK)
            FUZZ_CHECK(exp_ms > 0 && token[0] != '\0');
        break;
    }
    default: {
        rp_auth_key_t *k = NULL;

        (void)rp_auth_key_parse(body, len, &k, err, sizeof(err));
        rp_auth_key_free(k);
        break;
    }
    }
    return 0;
}
