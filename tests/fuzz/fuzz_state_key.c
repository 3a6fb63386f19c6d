/* Keys and ids from outside (execution and session ids name objects):
 * rp_state_key_valid and the layout helpers must agree — a key built
 * from a valid id is a valid key. */
#include "fuzz_common.h"
#include "rp_ids.h"
#include "rp_jobenv.h"
#include "rp_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char key[RP_STATE_KEY_MAX + 1];

    (void)rp_state_key_valid(s);
    rp_jobenv_request_key(s, key, sizeof(key));
    if (key[0] != '\0')
        FUZZ_CHECK(rp_state_key_valid(key));
    free(s);
    return 0;
}
