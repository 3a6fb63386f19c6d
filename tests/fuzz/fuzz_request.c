/* A request message from Kafka: rp_request_parse, and a round trip of
 * every valid one (serialised, it parses again to the same JSON). */
#include "fuzz_common.h"
#include "rp_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_request_t a = {0}, b = {0};
    char err[256];
    char *j1 = NULL, *j2 = NULL;

    if (rp_request_parse((const char *)data, size, &a, err, sizeof(err)) ==
        RP_OK) {
        FUZZ_CHECK((j1 = rp_request_to_json(&a)) != NULL);
        FUZZ_CHECK(rp_request_parse(j1, strlen(j1), &b, err, sizeof(err)) ==
                   RP_OK);
        FUZZ_CHECK((j2 = rp_request_to_json(&b)) != NULL);
        FUZZ_CHECK(strcmp(j1, j2) == 0);
    } else {
        FUZZ_CHECK(err[0] != '\0'); /* a refusal always says why */
    }
    free(j1);
    free(j2);
    rp_request_clear(&a);
    rp_request_clear(&b);
    return 0;
}
