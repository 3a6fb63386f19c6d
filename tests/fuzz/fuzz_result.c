/* The executor's record (executions/{id}/result.json, with env) and a
 * result message: rp_result_parse, and a round trip of every valid one. */
#include "fuzz_common.h"
#include "rp_result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_result_t a = {0}, b = {0};
    char err[256];
    char *j1 = NULL, *j2 = NULL;

    if (rp_result_parse((const char *)data, size, &a, err, sizeof(err)) ==
        RP_OK) {
        FUZZ_CHECK((j1 = rp_result_to_json(&a, true)) != NULL);
        FUZZ_CHECK(rp_result_parse(j1, strlen(j1), &b, err, sizeof(err)) ==
                   RP_OK);
        FUZZ_CHECK((j2 = rp_result_to_json(&b, true)) != NULL);
        FUZZ_CHECK(strcmp(j1, j2) == 0);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    free(j1);
    free(j2);
    rp_result_clear(&a);
    rp_result_clear(&b);
    return 0;
}
