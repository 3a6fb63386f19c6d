/* Records other runs wrote to the state store: the execution claim
 * (claim.json), a local run name, and the Cloud Run attempt records with
 * their keys. The first byte picks the parser. */
#include "fuzz_common.h"
#include "rp_claim.h"
#include "rp_cloudrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];

    const char *body;
    size_t len;

    switch (fuzz_pick(data, size, 4, &body, &len)) {
    case -1:
        return 0;
    case 0: {
        rp_claim_t c;
        char *j = NULL;

        if (rp_claim_parse(body, len, &c, err, sizeof(err)) == RP_OK) {
            rp_claim_t c2;

            FUZZ_CHECK((j = rp_claim_to_json(&c)) != NULL);
            FUZZ_CHECK(rp_claim_parse(j, strlen(j), &c2, err, sizeof(err)) ==
                       RP_OK);
        }
        free(j);
        break;
    }
    case 1: {
        char *run = fuzz_cstr(data + 1, len);
        char boot[RP_CLAIM_BOOT_ID_MAX + 1];
        pid_t pid;
        uint64_t ticks;

        if (rp_claim_local_parse(run, boot, &pid, &ticks) == RP_OK)
            FUZZ_CHECK(pid > 0 && strlen(boot) <= RP_CLAIM_BOOT_ID_MAX);
        free(run);
        break;
    }
    case 2: {
        rp_cloudrun_attempt_t a;

        (void)rp_cloudrun_attempt_parse(body, len, &a, err, sizeof(err));
        break;
    }
    default: {
        char *key = fuzz_cstr(data + 1, len);
        int n = 0;

        if (rp_cloudrun_attempt_key_kind(key, &n) != RP_CLOUDRUN_KEY_OTHER)
            FUZZ_CHECK(n >= 0 && n < 1000000); /* attempt-0: legacy */
        free(key);
        break;
    }
    }
    return 0;
}
