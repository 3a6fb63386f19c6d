/* A JSON env map (COMMAND_ENV, a request's env): rp_env_parse_json, and a
 * round trip of every valid one. */
#include "fuzz_common.h"
#include "rp_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_env_t a = {0}, b = {0};
    char err[256];
    char *j1 = NULL, *j2 = NULL;

    if (rp_env_parse_json((const char *)data, size, &a, "env", err, sizeof(err)) ==
        RP_OK) {
        FUZZ_CHECK((j1 = rp_env_to_json(&a)) != NULL);
        FUZZ_CHECK(rp_env_parse_json(j1, strlen(j1), &b, "env", err, sizeof(err)) ==
                   RP_OK);
        FUZZ_CHECK((j2 = rp_env_to_json(&b)) != NULL);
        FUZZ_CHECK(strcmp(j1, j2) == 0);
    }
    free(j1);
    free(j2);
    rp_env_clear(&a);
    rp_env_clear(&b);
    return 0;
}
