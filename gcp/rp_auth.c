/* rp_auth — Google OAuth2 access tokens (see rp_auth.h, docs/auth.md).
 *
 * Cache discipline: the mutex guards the cached token and the `refreshing`
 * flag only; the HTTP request runs unlocked so threads holding a still
 * valid token are never blocked by a slow endpoint. Exactly one thread
 * fetches at a time; the rest wait on the condition variable and, when it
 * finishes, take its token or its error (`gen` tells them it finished), so
 * a failing endpoint is asked once per wave of callers, not once per
 * thread.
 *
 * Secrets: private keys and tokens are wiped (explicit_bzero) from every
 * buffer we own once done, and never reach rp_log or an errstr.
 */
#include "rp_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <dlfcn.h>

#include "rp_buf.h"
#include "rp_http.h"
#include "rp_log.h"
#include "rp_time.h"

/* libcrypto is loaded with dlopen when a service-account key is parsed,
 * not linked: mapping and relocating it cost every runpool-executor start
 * ~0.8 ms of CPU (bench/README.md, "The executor"), and only a key file
 * needs it (metadata-server and emulator tokens do not). The functions
 * below are redirected to this table. Wiping and the constant-time
 * compare need no OpenSSL (explicit_bzero, rp_auth_ct_equal). */
#if OPENSSL_VERSION_MAJOR != 3
#error "rp_auth loads libcrypto.so.3: update RP_AUTH_LIBCRYPTO"
#endif
#define RP_AUTH_LIBCRYPTO "libcrypto.so.3"
static struct {
    unsigned long (*err_get_error)(void);
    void (*err_error_string_n)(unsigned long e, char *buf, size_t len);
    void (*err_clear_error)(void);
    BIO *(*bio_new_mem_buf)(const void *buf, int len);
    int (*bio_free)(BIO *a);
    EVP_PKEY *(*pem_read_bio_privatekey)(BIO *bp, EVP_PKEY **x,
                                         pem_password_cb *cb, void *u);
    int (*pkey_get_bits)(const EVP_PKEY *pkey);
    int (*pkey_get_size)(const EVP_PKEY *pkey);
    int (*pkey_is_a)(const EVP_PKEY *pkey, const char *name);
    void (*pkey_free)(EVP_PKEY *pkey);
    EVP_MD_CTX *(*md_ctx_new)(void);
    void (*md_ctx_free)(EVP_MD_CTX *ctx);
    const EVP_MD *(*sha256)(void);
    int (*digest_sign_init)(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx,
                            const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey);
    int (*digest_sign)(EVP_MD_CTX *ctx, unsigned char *sigret,
                       size_t *siglen, const unsigned char *tbs,
                       size_t tbslen);
} rp_ossl;
static char rp_auth_load_error[256];
static int rp_auth_load_rc = -1;
static pthread_once_t rp_auth_load_once = PTHREAD_ONCE_INIT;

#undef OPENSSL_cleanse
#define OPENSSL_cleanse(p, n) explicit_bzero((p), (n))
#define ERR_get_error (*rp_ossl.err_get_error)
#define ERR_error_string_n (*rp_ossl.err_error_string_n)
#define ERR_clear_error (*rp_ossl.err_clear_error)
#define BIO_new_mem_buf (*rp_ossl.bio_new_mem_buf)
#define BIO_free (*rp_ossl.bio_free)
#define PEM_read_bio_PrivateKey (*rp_ossl.pem_read_bio_privatekey)
#define EVP_PKEY_get_bits (*rp_ossl.pkey_get_bits)
#define EVP_PKEY_get_size (*rp_ossl.pkey_get_size)
#define EVP_PKEY_is_a (*rp_ossl.pkey_is_a)
#define EVP_PKEY_free (*rp_ossl.pkey_free)
#define EVP_MD_CTX_new (*rp_ossl.md_ctx_new)
#define EVP_MD_CTX_free (*rp_ossl.md_ctx_free)
#define EVP_sha256 (*rp_ossl.sha256)
#define EVP_DigestSignInit (*rp_ossl.digest_sign_init)
#define EVP_DigestSign (*rp_ossl.digest_sign)

/* Resolve every function or none (pthread_once). */
static void rp_auth_load_crypto(void)
{
    void *lib = dlopen(RP_AUTH_LIBCRYPTO, RTLD_NOW | RTLD_LOCAL);
    const struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"ERR_get_error", (void **)&rp_ossl.err_get_error},
        {"ERR_error_string_n", (void **)&rp_ossl.err_error_string_n},
        {"ERR_clear_error", (void **)&rp_ossl.err_clear_error},
        {"BIO_new_mem_buf", (void **)&rp_ossl.bio_new_mem_buf},
        {"BIO_free", (void **)&rp_ossl.bio_free},
        {"PEM_read_bio_PrivateKey", (void **)&rp_ossl.pem_read_bio_privatekey},
        {"EVP_PKEY_get_bits", (void **)&rp_ossl.pkey_get_bits},
        {"EVP_PKEY_get_size", (void **)&rp_ossl.pkey_get_size},
        {"EVP_PKEY_is_a", (void **)&rp_ossl.pkey_is_a},
        {"EVP_PKEY_free", (void **)&rp_ossl.pkey_free},
        {"EVP_MD_CTX_new", (void **)&rp_ossl.md_ctx_new},
        {"EVP_MD_CTX_free", (void **)&rp_ossl.md_ctx_free},
        {"EVP_sha256", (void **)&rp_ossl.sha256},
        {"EVP_DigestSignInit", (void **)&rp_ossl.digest_sign_init},
        {"EVP_DigestSign", (void **)&rp_ossl.digest_sign},
    };

    if (!lib) {
        snprintf(rp_auth_load_error, sizeof(rp_auth_load_error),
                 "cannot load %s: %s", RP_AUTH_LIBCRYPTO, dlerror());
        return;
    }
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        if (!(*syms[i].slot = dlsym(lib, syms[i].name))) {
            snprintf(rp_auth_load_error, sizeof(rp_auth_load_error),
                     "%s has no %s", RP_AUTH_LIBCRYPTO, syms[i].name);
            return;
        }
    }
    rp_auth_load_rc = 0; /* never dlclose'd */
}

/* Constant-time equality of n bytes (a token compare must not leak how
 * much of it matched). */
static bool rp_auth_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;

    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

/* Header + claims are bounded by the RP_AUTH_FIELD_MAX fields; the
 * signature by the largest RSA key we accept (16384 bits = 2 KiB). */
#define RP_AUTH_JWT_MAX (16 * 1024)
#define RP_AUTH_RSA_BITS_MAX 16384
#define RP_AUTH_FORM_PREFIX                                                  \
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"      \
    "&assertion="
#define RP_AUTH_BODY_MAX (sizeof(RP_AUTH_FORM_PREFIX) + RP_AUTH_JWT_MAX)
#define RP_AUTH_URL_MAX (RP_AUTH_FIELD_MAX + RP_AUTH_HOST_MAX + 80)
#define RP_AUTH_DESC_MAX (2 * RP_AUTH_FIELD_MAX + 64)
#define RP_AUTH_ERR_MAX 768      /* kept error of the last failed refresh */
#define RP_AUTH_DETAIL_MAX 400   /* endpoint's error text quoted in errstr */
#define RP_AUTH_QUOTE_MAX 160    /* bytes of a non-JSON error body quoted */
#define RP_AUTH_EXPIRES_MAX_S (7LL * 24 * 3600) /* clamp absurd lifetimes */
#define RP_AUTH_READ_CHUNK 4096

struct rp_auth_key {
    char client_email[RP_AUTH_FIELD_MAX];
    char private_key_id[RP_AUTH_FIELD_MAX]; /* "" = send no kid */
    char token_uri[RP_AUTH_FIELD_MAX];
    EVP_PKEY *pkey;
};

struct rp_auth {
    rp_auth_kind_t kind;
    rp_auth_key_t *key; /* RP_AUTH_KEY_FILE only */
    rp_auth_token_fn *fn; /* RP_AUTH_CALLBACK only */
    char url[RP_AUTH_URL_MAX];
    char desc[RP_AUTH_DESC_MAX];
    int timeout_ms;
    int64_t (*clock)(void *opaque);
    void *clock_opaque;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* signalled when a refresh finishes */
    bool refreshing;
    uint64_t gen;                  /* number of finished refreshes */
    char token[RP_AUTH_TOKEN_MAX]; /* "" = none yet */
    int64_t expires_at_ms;         /* on a->clock */
    int64_t refresh_at_ms;
    rp_err_t last_err; /* result of the last refresh */
    char last_errstr[RP_AUTH_ERR_MAX];
};


/* ---- small helpers ---- */

static int64_t rp_auth_default_clock(void *opaque)
{
    (void)opaque;
    return rp_time_mono_ms();
}

/* Copy s into out with anything but printable ASCII replaced, so text from
 * files and peers cannot break a log line or a terminal. */
static void rp_auth_printable(char *out, size_t out_size, const char *s,
                              size_t n)
{
    size_t o = 0;

    if (out_size == 0)
        return;
    for (size_t i = 0; i < n && s[i] && o + 1 < out_size; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    out[o] = '\0';
}

/* Append OpenSSL's first queued error and clear the (per-thread) queue. */
static rp_err_t rp_auth_ossl_err(char *errstr, size_t errstr_size,
                                 rp_err_t err, const char *what)
{
    char buf[256] = "unknown OpenSSL error";
    unsigned long e = ERR_get_error();

    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rp_errf(errstr, errstr_size, err, "%s: %s", what, buf);
}

static rp_err_t rp_auth_copy_out(const char *token, char *out, size_t out_size,
                                 char *errstr, size_t errstr_size)
{
    size_t n = strlen(token);

    if (n >= out_size)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "access token (%zu bytes) does not fit the %zu-byte "
                       "buffer",
                       n, out_size);
    memcpy(out, token, n + 1);
    return RP_OK;
}

static const char rp_auth_b64url_tbl[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RFC 4648 §5 base64url without padding, as JWS requires. */
static rp_err_t rp_auth_b64url_append(rp_buf_t *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    rp_err_t err = RP_OK;

    for (size_t i = 0; i < n && err == RP_OK; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;
        char q[4];

        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        q[0] = rp_auth_b64url_tbl[(v >> 18) & 63];
        q[1] = rp_auth_b64url_tbl[(v >> 12) & 63];
        q[2] = rp_auth_b64url_tbl[(v >> 6) & 63];
        q[3] = rp_auth_b64url_tbl[v & 63];
        err = rp_buf_append(b, q, left > 2 ? 4 : left + 1);
    }
    return err;
}

static const char *rp_auth_json_str(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Encrypted PEM keys would otherwise make OpenSSL prompt on the terminal. */
static int rp_auth_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* ---- key file ---- */

static rp_err_t rp_auth_key_field(const cJSON *root, const char *name,
                                  bool required, char *out, size_t out_size,
                                  char *errstr, size_t errstr_size)
{
    const char *v = rp_auth_json_str(root, name);

    out[0] = '\0';
    if (!v || !*v) {
        if (!required)
            return RP_OK;
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "service-account key: missing or empty \"%s\"", name);
    }
    if (strlen(v) >= out_size)
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "service-account key: \"%s\" longer than %zu bytes",
                       name, out_size - 1);
    memcpy(out, v, strlen(v) + 1);
    return RP_OK;
}

rp_err_t rp_auth_key_parse(const char *json, size_t len, rp_auth_key_t **out,
                           char *errstr, size_t errstr_size)
{
    rp_err_t err = RP_OK;
    cJSON *root = NULL;
    cJSON *pk_item;
    rp_auth_key_t *key = NULL;
    BIO *bio = NULL;
    const char *type;
    char shown[64];
    int bits;

    if (!json || !out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_key_parse: NULL argument");
    pthread_once(&rp_auth_load_once, rp_auth_load_crypto);
    if (rp_auth_load_rc != 0)
        return rp_errf(errstr, errstr_size, RP_ERR_UNAVAILABLE,
                       "service-account key: %s", rp_auth_load_error);
    *out = NULL;
    root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "service-account key: not a JSON object");
        goto out;
    }
    type = rp_auth_json_str(root, "type");
    if (!type || strcmp(type, "service_account") != 0) {
        rp_auth_printable(shown, sizeof(shown), type ? type : "(none)",
                          SIZE_MAX);
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "credentials of type '%s' are not supported: runpool "
                      "needs a service-account key file "
                      "(\"type\": \"service_account\") or the metadata "
                      "server",
                      shown);
        goto out;
    }
    if (!(key = calloc(1, sizeof(*key)))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = rp_auth_key_field(root, "client_email", true,
                                 key->client_email, sizeof(key->client_email),
                                 errstr, errstr_size)) != RP_OK ||
        (err = rp_auth_key_field(root, "private_key_id", false,
                                 key->private_key_id,
                                 sizeof(key->private_key_id), errstr,
                                 errstr_size)) != RP_OK ||
        (err = rp_auth_key_field(root, "token_uri", false, key->token_uri,
                                 sizeof(key->token_uri), errstr,
                                 errstr_size)) != RP_OK)
        goto out;
    if (!key->token_uri[0])
        memcpy(key->token_uri, RP_AUTH_DEFAULT_TOKEN_URI,
               sizeof(RP_AUTH_DEFAULT_TOKEN_URI));
    if (strncmp(key->token_uri, "https://", 8) != 0 &&
        strncmp(key->token_uri, "http://", 7) != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "service-account key: token_uri is not an http(s) URL");
        goto out;
    }
    pk_item = cJSON_GetObjectItemCaseSensitive(root, "private_key");
    if (!cJSON_IsString(pk_item) || !pk_item->valuestring[0]) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "service-account key: missing or empty \"private_key\"");
        goto out;
    }
    bio = BIO_new_mem_buf(pk_item->valuestring, -1);
    if (!bio) {
        err = rp_auth_ossl_err(errstr, errstr_size, RP_ERR_NOMEM, "BIO");
        goto out;
    }
    key->pkey = PEM_read_bio_PrivateKey(bio, NULL, rp_auth_no_passphrase,
                                        NULL);
    if (!key->pkey) {
        err = rp_auth_ossl_err(errstr, errstr_size, RP_ERR_INVALID,
                               "service-account key: private_key is not a "
                               "readable unencrypted PEM key");
        goto out;
    }
    bits = EVP_PKEY_get_bits(key->pkey);
    if (!EVP_PKEY_is_a(key->pkey, "RSA") || bits < 1024 ||
        bits > RP_AUTH_RSA_BITS_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "service-account key: private_key must be an RSA key "
                      "of 1024..%d bits (RS256)",
                      RP_AUTH_RSA_BITS_MAX);
        goto out;
    }
    *out = key;
    key = NULL;

out:
    if (bio)
        BIO_free(bio);
    if (root) {
        pk_item = cJSON_GetObjectItemCaseSensitive(root, "private_key");
        if (cJSON_IsString(pk_item))
            OPENSSL_cleanse(pk_item->valuestring,
                            strlen(pk_item->valuestring));
        cJSON_Delete(root);
    }
    rp_auth_key_free(key);
    return err;
}

rp_err_t rp_auth_key_load(const char *path, rp_auth_key_t **out, char *errstr,
                          size_t errstr_size)
{
    rp_err_t err = RP_OK;
    rp_buf_t b;
    char chunk[RP_AUTH_READ_CHUNK];
    char inner[RP_AUTH_ERR_MAX];
    int fd = -1;

    rp_buf_init(&b, RP_AUTH_KEY_FILE_MAX);
    if (!path || !out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_key_load: NULL argument");
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        err = rp_errf(errstr, errstr_size,
                      e == ENOENT   ? RP_ERR_NOT_FOUND
                      : e == EACCES ? RP_ERR_PERMISSION
                                    : RP_ERR_IO,
                      "credentials file %s: %s", path, strerror(e));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = rp_errf(errstr, errstr_size, RP_ERR_IO,
                          "credentials file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (rp_buf_append(&b, chunk, (size_t)n) != RP_OK) {
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          "credentials file %s: larger than %d bytes", path,
                          RP_AUTH_KEY_FILE_MAX);
            goto out;
        }
    }
    if (b.len == 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                      "credentials file %s: empty", path);
        goto out;
    }
    err = rp_auth_key_parse(b.data, b.len, out, inner, sizeof(inner));
    if (err != RP_OK)
        rp_errf(errstr, errstr_size, err, "credentials file %s: %s", path,
                inner);

out:
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    if (b.data)
        OPENSSL_cleanse(b.data, b.len);
    rp_buf_free(&b);
    return err;
}

void rp_auth_key_free(rp_auth_key_t *key)
{
    if (!key)
        return;
    if (key->pkey) /* set only once libcrypto is loaded */
        EVP_PKEY_free(key->pkey); /* OpenSSL clears RSA key material on free */
    free(key);
}

/* ---- JWT ---- */

/* Append b64url(JSON of obj) to b. */
static rp_err_t rp_auth_jwt_part(rp_buf_t *b, const cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    rp_err_t err;

    if (!s)
        return RP_ERR_NOMEM;
    err = rp_auth_b64url_append(b, s, strlen(s));
    cJSON_free(s);
    return err;
}

rp_err_t rp_auth_jwt_build(const rp_auth_key_t *key, int64_t now, char **jwt,
                           char *errstr, size_t errstr_size)
{
    rp_err_t err = RP_OK;
    cJSON *hdr = NULL, *cl = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t siglen;
    rp_buf_t b;

    rp_buf_init(&b, RP_AUTH_JWT_MAX);
    if (!key || !jwt || !key->pkey)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_jwt_build: NULL argument");
    *jwt = NULL;
    hdr = cJSON_CreateObject();
    cl = cJSON_CreateObject();
    if (!hdr || !cl || !cJSON_AddStringToObject(hdr, "alg", "RS256") ||
        !cJSON_AddStringToObject(hdr, "typ", "JWT") ||
        (key->private_key_id[0] &&
         !cJSON_AddStringToObject(hdr, "kid", key->private_key_id)) ||
        !cJSON_AddStringToObject(cl, "iss", key->client_email) ||
        !cJSON_AddStringToObject(cl, "scope", RP_AUTH_SCOPE) ||
        !cJSON_AddStringToObject(cl, "aud", key->token_uri) ||
        !cJSON_AddNumberToObject(cl, "iat", (double)now) ||
        !cJSON_AddNumberToObject(cl, "exp",
                                 (double)(now + RP_AUTH_JWT_LIFETIME_S))) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = rp_auth_jwt_part(&b, hdr)) != RP_OK ||
        (err = rp_buf_append(&b, ".", 1)) != RP_OK ||
        (err = rp_auth_jwt_part(&b, cl)) != RP_OK) {
        rp_errf(errstr, errstr_size, err, "JWT header and claims: %s",
                rp_err_str(err));
        goto out;
    }
    /* RS256 = RSASSA-PKCS1-v1_5 with SHA-256, OpenSSL's default padding
     * for RSA keys. */
    siglen = (size_t)EVP_PKEY_get_size(key->pkey);
    md = EVP_MD_CTX_new();
    sig = malloc(siglen ? siglen : 1);
    if (!md || !sig) {
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data,
                       b.len) != 1) {
        err = rp_auth_ossl_err(errstr, errstr_size, RP_ERR_INTERNAL,
                               "signing the JWT");
        goto out;
    }
    if ((err = rp_buf_append(&b, ".", 1)) != RP_OK ||
        (err = rp_auth_b64url_append(&b, sig, siglen)) != RP_OK) {
        rp_errf(errstr, errstr_size, err, "JWT signature: %s",
                rp_err_str(err));
        goto out;
    }
    if (!(*jwt = rp_buf_steal(&b, NULL)))
        err = rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");

out:
    if (md)
        EVP_MD_CTX_free(md);
    free(sig);
    cJSON_Delete(hdr);
    cJSON_Delete(cl);
    rp_buf_free(&b);
    return err;
}

/* ---- token replies ---- */

rp_err_t rp_auth_parse_token_response(const char *body, size_t len,
                                      char *token, size_t token_size,
                                      int64_t *expires_in_ms, char *errstr,
                                      size_t errstr_size)
{
    rp_err_t err = RP_OK;
    cJSON *root = NULL;
    const cJSON *exp;
    const char *at, *type;
    long long secs = 0;
    size_t n;

    if (!body || !token || token_size == 0 || !expires_in_ms)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_parse_token_response: NULL argument");
    token[0] = '\0';
    root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(root)) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "token reply is not a JSON object");
        goto out;
    }
    at = rp_auth_json_str(root, "access_token");
    if (!at || !*at) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "token reply has no access_token");
        goto out;
    }
    n = strlen(at);
    if (n >= RP_AUTH_TOKEN_MAX) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "access_token of %zu bytes exceeds RP_AUTH_TOKEN_MAX "
                      "(%d)",
                      n, RP_AUTH_TOKEN_MAX);
        goto out;
    }
    /* It goes into an HTTP header: no spaces, no CR/LF, ASCII only. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)at[i] <= 0x20 || (unsigned char)at[i] >= 0x7f) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "access_token contains characters not allowed in "
                          "a header");
            goto out;
        }
    type = rp_auth_json_str(root, "token_type");
    if (type && strcasecmp(type, "Bearer") != 0) {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "token_type is not Bearer");
        goto out;
    }
    exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (cJSON_IsNumber(exp)) {
        if (!(exp->valuedouble >= 1.0)) { /* also catches NaN */
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "expires_in is not a positive number");
            goto out;
        }
        secs = exp->valuedouble > (double)RP_AUTH_EXPIRES_MAX_S
                   ? RP_AUTH_EXPIRES_MAX_S
                   : (long long)exp->valuedouble;
    } else if (cJSON_IsString(exp)) {
        /* Some endpoints send "3599": digits only, no sign, no spaces. */
        const char *s = exp->valuestring;
        size_t digits = strspn(s, "0123456789");

        if (digits == 0 || s[digits] != '\0') {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "expires_in string is not a whole number");
            goto out;
        }
        secs = digits > 12 ? RP_AUTH_EXPIRES_MAX_S : strtoll(s, NULL, 10);
        if (secs > RP_AUTH_EXPIRES_MAX_S)
            secs = RP_AUTH_EXPIRES_MAX_S;
        if (secs < 1) {
            err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                          "expires_in is not positive");
            goto out;
        }
    } else {
        err = rp_errf(errstr, errstr_size, RP_ERR_PROTOCOL,
                      "token reply has no expires_in");
        goto out;
    }
    if ((err = rp_auth_copy_out(at, token, token_size, errstr,
                                errstr_size)) != RP_OK)
        goto out;
    *expires_in_ms = (int64_t)secs * 1000;

out:
    if (root) {
        cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "access_token");

        if (cJSON_IsString(it))
            OPENSSL_cleanse(it->valuestring, strlen(it->valuestring));
        cJSON_Delete(root);
    }
    return err;
}

/* The endpoint's own words for a failed request: OAuth's
 * {"error":"invalid_grant","error_description":"..."}, Google API's
 * {"error":{"message":"..."}}, or the start of a text body. */
static void rp_auth_error_detail(const rp_buf_t *body, char *out,
                                 size_t out_size)
{
    rp_auth_error_text(body->data, body->len, out, out_size);
}

void rp_auth_error_text(const char *body, size_t body_len, char *out,
                        size_t out_size)
{
    cJSON *root = NULL;
    const cJSON *e;
    const char *code = NULL, *desc = NULL;
    char a[RP_AUTH_DETAIL_MAX / 4], d[RP_AUTH_DETAIL_MAX / 2]; /* fit out */
    char quote[RP_AUTH_QUOTE_MAX];

    if (out_size == 0)
        return;
    out[0] = '\0';
    if (!body || body_len == 0) {
        snprintf(out, out_size, "empty body");
        return;
    }
    root = cJSON_ParseWithLength(body, body_len);
    e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(e)) {
        code = e->valuestring;
        desc = rp_auth_json_str(root, "error_description");
    } else if (cJSON_IsObject(e)) {
        desc = rp_auth_json_str(e, "message");
        code = rp_auth_json_str(e, "status");
    }
    if (code || desc) {
        rp_auth_printable(a, sizeof(a), code ? code : "error", SIZE_MAX);
        rp_auth_printable(d, sizeof(d), desc ? desc : "", SIZE_MAX);
        snprintf(out, out_size, "%s%s%s", a, d[0] ? ": " : "", d);
    } else {
        rp_auth_printable(quote, sizeof(quote), body, body_len);
        snprintf(out, out_size, "'%s'", quote);
    }
    cJSON_Delete(root);
}

/* One request to the endpoint; no lock held. */
static rp_err_t rp_auth_fetch(rp_auth_t *a, char *tok, size_t tok_size,
                              int64_t *expires_in_ms, char *errstr,
                              size_t errstr_size)
{
    rp_err_t err = RP_OK;
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    rp_buf_t body;
    char *jwt = NULL;
    char herr[RP_AUTH_ERR_MAX];
    char detail[RP_AUTH_DETAIL_MAX];
    const char *form_hdr[] = {
        "Content-Type: application/x-www-form-urlencoded"};
    const char *meta_hdr[] = {"Metadata-Flavor: Google"};

    rp_buf_init(&body, RP_AUTH_BODY_MAX);
    req.url = a->url;
    req.timeout_ms = a->timeout_ms;
    req.response_max = RP_AUTH_RESPONSE_MAX;
    if (a->kind == RP_AUTH_KEY_FILE) {
        if ((err = rp_auth_jwt_build(a->key, rp_time_wall_ms() / 1000, &jwt,
                                     errstr, errstr_size)) != RP_OK)
            goto out;
        if ((err = rp_buf_append_str(&body, RP_AUTH_FORM_PREFIX)) != RP_OK ||
            (err = rp_buf_append_str(&body, jwt)) != RP_OK) {
            rp_errf(errstr, errstr_size, err, "token request body: %s",
                    rp_err_str(err));
            goto out;
        }
        req.method = "POST";
        req.headers = form_hdr;
        req.n_headers = 1;
        req.body = body.data;
        req.body_len = body.len;
    } else {
        req.method = "GET";
        req.headers = meta_hdr;
        req.n_headers = 1;
    }
    err = rp_http_request(&req, &resp, herr, sizeof(herr));
    if (err != RP_OK) {
        /* A timeout is as retriable as a refused connection: callers only
         * need to know the token service was unavailable. */
        if (err == RP_ERR_TIMEOUT)
            err = RP_ERR_UNAVAILABLE;
        else if (err == RP_ERR_TOO_LARGE)
            err = RP_ERR_PROTOCOL;
        rp_errf(errstr, errstr_size, err, "token request to %s failed: %s",
                a->url, herr);
        goto out;
    }
    if (resp.status == 200) {
        err = rp_auth_parse_token_response(resp.body.data ? resp.body.data
                                                          : "",
                                           resp.body.len, tok, tok_size,
                                           expires_in_ms, herr, sizeof(herr));
        if (err != RP_OK)
            rp_errf(errstr, errstr_size, err, "token reply from %s: %s",
                    a->url, herr);
        goto out;
    }
    rp_auth_error_detail(&resp.body, detail, sizeof(detail));
    if (rp_http_status_retriable(resp.status))
        err = RP_ERR_UNAVAILABLE;
    else if (resp.status == 400 || resp.status == 401 ||
             resp.status == 403 || resp.status == 404)
        err = RP_ERR_PERMISSION; /* bad key, revoked or missing account */
    else
        err = RP_ERR_PROTOCOL;
    rp_errf(errstr, errstr_size, err, "token request to %s: HTTP %ld: %s",
            a->url, resp.status, detail);

out:
    if (resp.body.data)
        OPENSSL_cleanse(resp.body.data, resp.body.len);
    rp_http_resp_clear(&resp);
    /* The assertion buys a token for an hour: wipe it like one. */
    if (jwt) {
        OPENSSL_cleanse(jwt, strlen(jwt));
        free(jwt);
    }
    if (body.data)
        OPENSSL_cleanse(body.data, body.len);
    rp_buf_free(&body);
    return err;
}

/* ---- cache ---- */

int64_t rp_auth_refresh_margin_ms(int64_t lifetime_ms)
{
    int64_t tenth = lifetime_ms > 0 ? lifetime_ms / 10 : 0;

    return tenth < RP_AUTH_REFRESH_MARGIN_MS ? tenth
                                             : RP_AUTH_REFRESH_MARGIN_MS;
}

rp_err_t rp_auth_token(rp_auth_t *a, char *out, size_t out_size, char *errstr,
                       size_t errstr_size)
{
    rp_err_t err = RP_OK;
    char tok[RP_AUTH_TOKEN_MAX];
    char ferr[RP_AUTH_ERR_MAX] = "";
    int64_t start, now, lifetime = 0;
    uint64_t gen;

    if (!a || !out || out_size == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_token: NULL argument");
    out[0] = '\0';
    if (a->kind == RP_AUTH_NONE)
        return RP_OK;
    if (a->kind == RP_AUTH_CALLBACK) {
        err = a->fn(out, out_size, errstr, errstr_size);
        if (err == RP_OK && !out[0])
            err = rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                          "the token source gave an empty access token");
        return err;
    }

    pthread_mutex_lock(&a->mu);
    for (;;) {
        now = a->clock(a->clock_opaque);
        if (a->token[0] && now < a->refresh_at_ms) {
            err = rp_auth_copy_out(a->token, out, out_size, errstr,
                                   errstr_size);
            goto out;
        }
        if (!a->refreshing)
            break;
        /* Someone else is refreshing: a token that still works will do. */
        if (a->token[0] && now < a->expires_at_ms) {
            err = rp_auth_copy_out(a->token, out, out_size, errstr,
                                   errstr_size);
            goto out;
        }
        gen = a->gen;
        while (a->refreshing && a->gen == gen)
            pthread_cond_wait(&a->cv, &a->mu);
        now = a->clock(a->clock_opaque);
        if (a->token[0] && now < a->expires_at_ms) {
            err = rp_auth_copy_out(a->token, out, out_size, errstr,
                                   errstr_size);
            goto out;
        }
        if (a->last_err != RP_OK) { /* share the refresher's failure */
            err = rp_errf(errstr, errstr_size, a->last_err, "%s",
                          a->last_errstr);
            goto out;
        }
    }

    a->refreshing = true;
    pthread_mutex_unlock(&a->mu);
    /* Lifetime counts from before the request: never trust a token
     * longer than the endpoint meant. */
    start = a->clock(a->clock_opaque);
    err = rp_auth_fetch(a, tok, sizeof(tok), &lifetime, ferr, sizeof(ferr));
    pthread_mutex_lock(&a->mu);
    a->refreshing = false;
    a->gen++;
    a->last_err = err;
    if (err == RP_OK) {
        memcpy(a->token, tok, strlen(tok) + 1);
        a->expires_at_ms = start + lifetime;
        a->refresh_at_ms = a->expires_at_ms -
                           rp_auth_refresh_margin_ms(lifetime);
        a->last_errstr[0] = '\0';
        rp_log(RP_LOG_INFO, "auth_token_refreshed", NULL, NULL,
               "new access token from %s, expires in %lld s", a->desc,
               (long long)(lifetime / 1000));
    } else {
        snprintf(a->last_errstr, sizeof(a->last_errstr), "%s", ferr);
    }
    pthread_cond_broadcast(&a->cv);
    now = a->clock(a->clock_opaque);
    if (err == RP_OK || (a->token[0] && now < a->expires_at_ms)) {
        if (err != RP_OK)
            rp_log(RP_LOG_WARN, "auth_refresh_failed", NULL, NULL,
                   "%s; using the cached token until it expires", ferr);
        /* A just-issued token is returned even if its lifetime already
         * ran out on our clock: it is the freshest there is. */
        err = rp_auth_copy_out(a->token, out, out_size, errstr, errstr_size);
    } else {
        rp_errf(errstr, errstr_size, err, "%s", ferr);
    }

out:
    pthread_mutex_unlock(&a->mu);
    OPENSSL_cleanse(tok, sizeof(tok));
    return err;
}

rp_err_t rp_auth_header(rp_auth_t *a, char *out, size_t out_size,
                        char *errstr, size_t errstr_size)
{
    char tok[RP_AUTH_TOKEN_MAX];
    rp_err_t err;
    int n;

    if (!out || out_size == 0)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_header: NULL argument");
    out[0] = '\0';
    if ((err = rp_auth_token(a, tok, sizeof(tok), errstr, errstr_size)) !=
        RP_OK)
        goto out;
    if (!tok[0])
        goto out;
    n = snprintf(out, out_size, "Authorization: Bearer %s", tok);
    if (n < 0 || (size_t)n >= out_size) {
        OPENSSL_cleanse(out, out_size);
        out[0] = '\0';
        err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                      "Authorization header does not fit %zu bytes",
                      out_size);
    }

out:
    OPENSSL_cleanse(tok, sizeof(tok));
    return err;
}

void rp_auth_invalidate(rp_auth_t *a, const char *rejected)
{
    size_t n;

    if (!a || !rejected || !rejected[0] || a->kind == RP_AUTH_NONE ||
        a->kind == RP_AUTH_CALLBACK)
        return;
    n = strlen(rejected);
    pthread_mutex_lock(&a->mu);
    if (strlen(a->token) == n && rp_auth_ct_equal(a->token, rejected, n)) {
        OPENSSL_cleanse(a->token, sizeof(a->token));
        a->token[0] = '\0';
        a->expires_at_ms = 0;
        a->refresh_at_ms = 0;
    }
    pthread_mutex_unlock(&a->mu);
}

/* The request's URL without its query, for a log line. */
static void rp_auth_url_shown(const char *url, char *out, size_t out_size)
{
    size_t n = strcspn(url, "?");

    rp_auth_printable(out, out_size, url, n);
}

rp_err_t rp_auth_request(rp_auth_t *a, const rp_http_req_t *req,
                         rp_http_resp_t *resp, bool *token_failed,
                         char *errstr, size_t errstr_size)
{
    const char *hdrs[RP_HTTP_HEADERS_MAX];
    char hdr[RP_AUTH_TOKEN_MAX + 32];
    char tok[RP_AUTH_TOKEN_MAX];
    char detail[RP_AUTH_DETAIL_MAX], shown[RP_AUTH_QUOTE_MAX];
    rp_http_req_t r;
    rp_err_t err = RP_OK;
    int n;

    if (token_failed)
        *token_failed = false;
    if (!req || !resp)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_request: NULL argument");
    if (!a || a->kind == RP_AUTH_NONE)
        return rp_http_request(req, resp, errstr, errstr_size);
    if (req->n_headers >= RP_HTTP_HEADERS_MAX ||
        (req->n_headers && !req->headers))
        return rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                       "rp_auth_request: %zu headers (max %d with "
                       "Authorization)",
                       req->n_headers, RP_HTTP_HEADERS_MAX);
    for (size_t i = 0; i < req->n_headers; i++)
        hdrs[i] = req->headers[i];
    hdrs[req->n_headers] = hdr;
    r = *req;
    r.headers = hdrs;
    r.n_headers = req->n_headers + 1;
    for (int attempt = 1; attempt <= 2; attempt++) {
        if ((err = rp_auth_token(a, tok, sizeof(tok), errstr,
                                 errstr_size)) != RP_OK) {
            if (token_failed)
                *token_failed = true;
            goto out;
        }
        n = snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
        if (n < 0 || (size_t)n >= sizeof(hdr)) { /* cannot happen */
            err = rp_errf(errstr, errstr_size, RP_ERR_TOO_LARGE,
                          "Authorization header does not fit");
            goto out;
        }
        err = rp_http_request(&r, resp, errstr, errstr_size);
        OPENSSL_cleanse(hdr, sizeof(hdr));
        if (err != RP_OK || resp->status != 401)
            goto out;
        rp_auth_url_shown(req->url, shown, sizeof(shown));
        if (attempt == 2) {
            rp_auth_error_detail(&resp->body, detail, sizeof(detail));
            err = rp_errf(errstr, errstr_size, RP_ERR_PERMISSION,
                          "HTTP 401 twice: Google refused the access token "
                          "from %s and a freshly fetched one: %s",
                          a->desc, detail);
            rp_log(RP_LOG_ERROR, "auth_token_rejected", NULL, NULL,
                   "%s %s: HTTP 401 again with a fresh token from %s",
                   req->method ? req->method : "?", shown, a->desc);
            goto out;
        }
        /* Revoked or rotated before its expiry: drop it, fetch anew. */
        rp_log(RP_LOG_WARN, "auth_token_rejected", NULL, NULL,
               "%s %s: HTTP 401; dropping the cached token from %s and "
               "retrying once with a fresh one",
               req->method ? req->method : "?", shown, a->desc);
        rp_auth_invalidate(a, tok);
    }

out:
    OPENSSL_cleanse(hdr, sizeof(hdr));
    OPENSSL_cleanse(tok, sizeof(tok));
    return err;
}

/* ---- construction ---- */

static rp_err_t rp_auth_alloc(rp_auth_kind_t kind, rp_auth_t **out,
                              char *errstr, size_t errstr_size)
{
    rp_auth_t *a;

    if (!out)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth: NULL out");
    *out = NULL;
    if (!(a = calloc(1, sizeof(*a))))
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "out of memory");
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a);
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "mutex init");
    }
    if (pthread_cond_init(&a->cv, NULL) != 0) {
        pthread_mutex_destroy(&a->mu);
        free(a);
        return rp_errf(errstr, errstr_size, RP_ERR_NOMEM, "cond init");
    }
    a->kind = kind;
    a->timeout_ms = RP_AUTH_TIMEOUT_MS;
    a->clock = rp_auth_default_clock;
    *out = a;
    return RP_OK;
}

rp_err_t rp_auth_new_none(rp_auth_t **out, char *errstr, size_t errstr_size)
{
    rp_err_t err = rp_auth_alloc(RP_AUTH_NONE, out, errstr, errstr_size);

    if (err == RP_OK)
        snprintf((*out)->desc, sizeof((*out)->desc), "no credentials");
    return err;
}

rp_err_t rp_auth_new_callback(rp_auth_token_fn *fn, rp_auth_t **out,
                              char *errstr, size_t errstr_size)
{
    rp_err_t err;

    if (!fn)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_new_callback: NULL fn");
    err = rp_auth_alloc(RP_AUTH_CALLBACK, out, errstr, errstr_size);
    if (err == RP_OK) {
        (*out)->fn = fn;
        snprintf((*out)->desc, sizeof((*out)->desc), "token source");
    }
    return err;
}

rp_err_t rp_auth_new_key_file(const char *path, rp_auth_t **out, char *errstr,
                              size_t errstr_size)
{
    rp_err_t err;
    rp_auth_t *a = NULL;

    if (!path || !*path)
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "rp_auth_new_key_file: empty path");
    if ((err = rp_auth_alloc(RP_AUTH_KEY_FILE, &a, errstr, errstr_size)) !=
        RP_OK)
        goto out;
    if ((err = rp_auth_key_load(path, &a->key, errstr, errstr_size)) != RP_OK)
        goto out;
    snprintf(a->url, sizeof(a->url), "%s", a->key->token_uri);
    snprintf(a->desc, sizeof(a->desc), "key file (%s)",
             a->key->client_email);

out:
    if (err != RP_OK) {
        rp_auth_destroy(a);
        a = NULL;
    }
    if (out)
        *out = a;
    return err;
}

rp_err_t rp_auth_new_metadata(const char *host, rp_auth_t **out, char *errstr,
                              size_t errstr_size)
{
    rp_err_t err;
    rp_auth_t *a = NULL;
    size_t n;

    if (!host || !*host)
        host = getenv("GCE_METADATA_HOST");
    if (!host || !*host)
        host = RP_AUTH_METADATA_HOST;
    n = strlen(host);
    /* host[:port] or [v6]:port, nothing that could change the URL's path. */
    if (n >= RP_AUTH_HOST_MAX ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-:[]") != n) {
        char shown[RP_AUTH_HOST_MAX];

        rp_auth_printable(shown, sizeof(shown), host, SIZE_MAX);
        return rp_errf(errstr, errstr_size, RP_ERR_INVALID,
                       "metadata host '%s' is not a host[:port]", shown);
    }
    if ((err = rp_auth_alloc(RP_AUTH_METADATA, &a, errstr, errstr_size)) !=
        RP_OK)
        return err;
    snprintf(a->url, sizeof(a->url), "http://%s%s", host,
             RP_AUTH_METADATA_PATH);
    snprintf(a->desc, sizeof(a->desc), "metadata server %s", host);
    *out = a;
    return RP_OK;
}

rp_err_t rp_auth_new_from_env(rp_auth_t **out, char *errstr,
                              size_t errstr_size)
{
    const char *path = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    char inner[RP_AUTH_ERR_MAX];
    rp_err_t err;

    if (!path || !*path)
        return rp_auth_new_metadata(NULL, out, errstr, errstr_size);
    err = rp_auth_new_key_file(path, out, inner, sizeof(inner));
    if (err != RP_OK)
        rp_errf(errstr, errstr_size, err, "GOOGLE_APPLICATION_CREDENTIALS: %s",
                inner);
    return err;
}

void rp_auth_destroy(rp_auth_t *a)
{
    if (!a)
        return;
    rp_auth_key_free(a->key);
    OPENSSL_cleanse(a->token, sizeof(a->token));
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void rp_auth_set_timeout_ms(rp_auth_t *a, int timeout_ms)
{
    if (a && timeout_ms > 0)
        a->timeout_ms = timeout_ms;
}

void rp_auth_set_clock(rp_auth_t *a, int64_t (*mono_ms)(void *opaque),
                       void *opaque)
{
    if (!a)
        return;
    a->clock = mono_ms ? mono_ms : rp_auth_default_clock;
    a->clock_opaque = mono_ms ? opaque : NULL;
}

rp_auth_kind_t rp_auth_kind(const rp_auth_t *a)
{
    return a ? a->kind : RP_AUTH_NONE;
}

const char *rp_auth_describe(const rp_auth_t *a)
{
    return a ? a->desc : "no credentials";
}
