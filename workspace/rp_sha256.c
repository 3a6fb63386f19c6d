/* rp_sha256 — see rp_sha256.h. One-shot EVP_Digest, as rp_ws used linked. */
#include "rp_sha256.h"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <pthread.h>

#if OPENSSL_VERSION_MAJOR != 3
#error "rp_sha256 loads libcrypto.so.3: update RP_SHA256_LIB"
#endif

static struct {
    int (*digest)(const void *data, size_t count, unsigned char *md,
                  unsigned int *size, const EVP_MD *type, ENGINE *impl);
    const EVP_MD *(*sha256)(void);
} rp_sha256_fn;
static pthread_once_t rp_sha256_once = PTHREAD_ONCE_INIT;
static rp_err_t rp_sha256_load_err = RP_ERR_INTERNAL;
static char rp_sha256_load_msg[512];

/* The slots' types are the prototypes' (__typeof__ is not evaluated: no
 * link reference to libcrypto). */
_Static_assert(__builtin_types_compatible_p(__typeof__(&EVP_Digest),
                                            __typeof__(rp_sha256_fn.digest)),
               "EVP_Digest slot");
_Static_assert(__builtin_types_compatible_p(__typeof__(&EVP_sha256),
                                            __typeof__(rp_sha256_fn.sha256)),
               "EVP_sha256 slot");

/* Resolve both or neither; never dlclose'd. */
static void rp_sha256_load_once(void)
{
    void *lib = dlopen(RP_SHA256_LIB, RTLD_NOW | RTLD_LOCAL);
    void *d, *s;

    if (!lib) {
        const char *why = dlerror();

        rp_errf(rp_sha256_load_msg, sizeof(rp_sha256_load_msg),
                RP_ERR_INTERNAL,
                "%s not found: workspace snapshots need it (%s)",
                RP_SHA256_LIB, why ? why : "dlopen failed");
        return;
    }
    if (!(d = dlsym(lib, "EVP_Digest")) || !(s = dlsym(lib, "EVP_sha256"))) {
        rp_errf(rp_sha256_load_msg, sizeof(rp_sha256_load_msg),
                RP_ERR_INTERNAL, "%s has no EVP_Digest/EVP_sha256",
                RP_SHA256_LIB);
        return;
    }
    *(void **)&rp_sha256_fn.digest = d;
    *(void **)&rp_sha256_fn.sha256 = s;
    rp_sha256_load_err = RP_OK;
}

rp_err_t rp_sha256_load(char *errstr, size_t errstr_size)
{
    pthread_once(&rp_sha256_once, rp_sha256_load_once);
    if (rp_sha256_load_err != RP_OK)
        return rp_errf(errstr, errstr_size, rp_sha256_load_err, "%s",
                       rp_sha256_load_msg);
    return RP_OK;
}

rp_err_t rp_sha256(const void *p, size_t n, uint8_t out[32], char *errstr,
                   size_t errstr_size)
{
    unsigned int len = 0;
    rp_err_t err;

    if ((err = rp_sha256_load(errstr, errstr_size)) != RP_OK)
        return err;
    if (!rp_sha256_fn.digest(p, n, out, &len, rp_sha256_fn.sha256(), NULL) ||
        len != 32)
        return rp_errf(errstr, errstr_size, RP_ERR_INTERNAL, "sha256 failed");
    return RP_OK;
}
