/* rp-sign-tool KEYFILE KID T KEY < VALUE: prints the runpool-signature
 * header runpool's C signer (contract/rp_sign.c) makes for the Kafka key
 * KEY and the value read from stdin (bytes as they are) at time T, with
 * key KID of KEYFILE. tests/examples/test_clients.py compares it with the
 * Python client's sign(). Exit 0, or 2 with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_sign.h"

#define SIGN_TOOL_VALUE_MAX (4u << 20)

int main(int argc, char **argv)
{
    rp_sign_keys_t *k = NULL;
    char err[512], hdr[RP_SIGN_HEADER_MAX + 1];
    char *value = NULL;
    size_t len;
    int rc = 2;

    if (argc != 5) {
        fprintf(stderr, "usage: rp-sign-tool KEYFILE KID T KEY < VALUE\n");
        return 2;
    }
    if (!(value = malloc(SIGN_TOOL_VALUE_MAX + 1)))
        goto out;
    len = fread(value, 1, SIGN_TOOL_VALUE_MAX + 1, stdin);
    if (len > SIGN_TOOL_VALUE_MAX) {
        fprintf(stderr, "rp-sign-tool: value over %u bytes\n",
                SIGN_TOOL_VALUE_MAX);
        goto out;
    }
    if (rp_sign_keys_load(argv[1], &k, err, sizeof(err)) ||
        rp_sign_header(k, argv[2], strtoll(argv[3], NULL, 10), argv[4],
                       strlen(argv[4]), value, len, hdr, err, sizeof(err))) {
        fprintf(stderr, "rp-sign-tool: %s\n", err);
        goto out;
    }
    printf("%s\n", hdr);
    rc = 0;
out:
    rp_sign_keys_destroy(k);
    free(value);
    return rc;
}
