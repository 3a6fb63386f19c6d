/* Tests for rp_auth: the JWT (signature checked with OpenSSL against the
 * public key, header and claims decoded), key-file validation, token reply
 * parsing, the refresh rule, and — against tests/fakes/token_server.py on
 * 127.0.0.1 — the token exchange, caching, refresh, error classes, the
 * metadata server, and one refresh (not eight) for eight threads at once.
 *
 * The RSA keys are made at test time. The expiry clock is a fake the tests
 * move (rp_auth_set_clock); the JWT's iat is real time, which the server
 * checks. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "rp_test_dir.h"
#include "rp_auth.h"
#include "rp_http.h"
#include "rp_log.h"
#include "rp_state_gs.h"

#include "../fakes/fake_http.h"

#define TA_PATH_MAX 1024
#define TA_ERR_MAX 1024
#define TA_URL_MAX 256
#define TA_DIR_MAX 64 /* the mkdtemp template, short on purpose */
#define TA_PEM_MAX 8192
#define TA_THREADS 8
#define TA_EMAIL "runner@test-project.iam.gserviceaccount.com"
#define TA_KID "0123456789abcdef"
#define TA_START_TIMEOUT_MS 20000
#define TA_NOW 1700000000LL

typedef struct ta_ctx {
    char dir[TA_DIR_MAX];      /* mkdtemp: keys, key files, port file */
    char pub_a[TA_PATH_MAX];   /* public key the server trusts */
    char key_a[TA_PATH_MAX];   /* key file signed with key A */
    char key_b[TA_PATH_MAX];   /* same identity, signed with key B */
    char pem_a[TA_PEM_MAX];    /* private keys, PKCS#8 PEM */
    char pem_b[TA_PEM_MAX];
    EVP_PKEY *pkey_a, *pkey_b;
    pid_t server;
    int port;
    char base[TA_DIR_MAX];     /* http://127.0.0.1:PORT */
    char token_uri[TA_URL_MAX];
} ta_ctx_t;

static ta_ctx_t ta;

/* Every token rp_auth hands out must fit the state backend's buffer. */
_Static_assert(RP_AUTH_TOKEN_MAX <= RP_STATE_GS_TOKEN_MAX,
               "rp_auth tokens must fit rp_state_gs buffers");

/* ---- fake clock for rp_auth_set_clock ---- */

static _Atomic int64_t ta_clock_ms;

static int64_t ta_clock(void *opaque)
{
    (void)opaque;
    return atomic_load(&ta_clock_ms);
}

/* ---- helpers ---- */

static int ta_write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int rc = 0;

    if (!f)
        return -1;
    if (fwrite(data, 1, len, f) != len)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

static EVP_PKEY *ta_rsa_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

/* PKCS#8 PEM of the private key into out. */
static int ta_private_pem(EVP_PKEY *k, char *out, size_t out_size)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    int rc = -1;

    if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
        n = BIO_get_mem_data(b, &p);
        if (n > 0 && (size_t)n < out_size) {
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
            rc = 0;
        }
    }
    BIO_free(b);
    return rc;
}

static int ta_write_pubkey(EVP_PKEY *k, const char *path)
{
    BIO *b = BIO_new_file(path, "w");
    int rc = -1;

    if (b && PEM_write_bio_PUBKEY(b, k) == 1)
        rc = 0;
    BIO_free(b);
    return rc;
}

/* A key file like the ones the Cloud console makes. Any NULL field is left
 * out. */
static void ta_write_key_json(const char *path, const char *type,
                              const char *email, const char *kid,
                              const char *pem, const char *token_uri)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    assert_non_null(o);
    if (type)
        cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "project_id", "test-project");
    if (kid)
        cJSON_AddStringToObject(o, "private_key_id", kid);
    if (pem)
        cJSON_AddStringToObject(o, "private_key", pem);
    if (email)
        cJSON_AddStringToObject(o, "client_email", email);
    cJSON_AddStringToObject(o, "client_id", "1234567890");
    cJSON_AddStringToObject(o, "auth_uri",
                            "https://accounts.google.com/o/oauth2/auth");
    if (token_uri)
        cJSON_AddStringToObject(o, "token_uri", token_uri);
    s = cJSON_Print(o);
    assert_non_null(s);
    assert_int_equal(ta_write_file(path, s, strlen(s)), 0);
    cJSON_free(s);
    cJSON_Delete(o);
}

static const char *ta_script(char *buf, size_t size)
{
    const char *src = getenv("RP_SOURCE_DIR");

    if (src && *src) {
        snprintf(buf, size, "%s/tests/fakes/token_server.py", src);
    } else {
        /* Run by hand: find it beside this file (CMake passes __FILE__
         * as an absolute path). */
        const char *slash = strrchr(__FILE__, '/');
        int dirlen = slash ? (int)(slash - __FILE__) : 1;

        snprintf(buf, size, "%.*s/../fakes/token_server.py", dirlen,
                 slash ? __FILE__ : ".");
    }
    return buf;
}

static void ta_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* GET base+path from the fake; returns its parsed JSON body (caller
 * deletes), NULL on failure. *status gets the HTTP status. */
static cJSON *ta_get(const char *path, const char *header, long *status)
{
    char url[TA_URL_MAX * 2];
    char err[TA_ERR_MAX] = "";
    const char *hdrs[1] = {header};
    rp_http_req_t req = {0};
    rp_http_resp_t resp = {0};
    cJSON *j = NULL;

    snprintf(url, sizeof(url), "%s%s", ta.base, path);
    req.method = "GET";
    req.url = url;
    req.headers = header ? hdrs : NULL;
    req.n_headers = header ? 1 : 0;
    req.timeout_ms = 10000;
    if (rp_http_request(&req, &resp, err, sizeof(err)) == RP_OK) {
        if (status)
            *status = resp.status;
        if (resp.body.data)
            j = cJSON_ParseWithLength(resp.body.data, resp.body.len);
    } else {
        print_error("GET %s: %s\n", url, err);
    }
    rp_http_resp_clear(&resp);
    return j;
}

static void ta_control(const char *query)
{
    char path[TA_URL_MAX];
    long status = 0;
    cJSON *j;

    snprintf(path, sizeof(path), "/control?%s", query);
    j = ta_get(path, NULL, &status);
    assert_non_null(j);
    assert_int_equal(status, 200);
    cJSON_Delete(j);
}

/* Server-side request counter `which` ("token", "metadata", "rejected"). */
static int ta_count(const char *which)
{
    long status = 0;
    cJSON *j = ta_get("/count", NULL, &status);
    const cJSON *n;
    int v;

    assert_non_null(j);
    assert_int_equal(status, 200);
    n = cJSON_GetObjectItemCaseSensitive(j, which);
    assert_true(cJSON_IsNumber(n));
    v = n->valueint;
    cJSON_Delete(j);
    return v;
}

static void ta_reset(void)
{
    ta_control("reset=1&expires_in=3599&delay_ms=0&fail_status=0&token_len=0");
    atomic_store(&ta_clock_ms, 1000000);
}

/* base64url (no padding) -> bytes; independent of the code under test.
 * Returns the length, or -1 on a character outside the alphabet. */
static long ta_b64url_decode(const char *s, size_t n, unsigned char *out,
                             size_t out_size)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(tbl, s[i], 64);

        if (!p || !s[i])
            return -1;
        acc = (acc << 6) | (uint32_t)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static cJSON *ta_decode_part(const char *s, size_t n)
{
    unsigned char buf[4096];
    long len = ta_b64url_decode(s, n, buf, sizeof(buf));

    assert_true(len > 0);
    return cJSON_ParseWithLength((const char *)buf, (size_t)len);
}

static void ta_assert_str(const cJSON *o, const char *name, const char *want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsString(it));
    assert_string_equal(it->valuestring, want);
}

static int ta_nfields(const cJSON *o)
{
    return cJSON_GetArraySize(o);
}

static rp_auth_t *ta_new_key_auth(const char *path)
{
    rp_auth_t *a = NULL;
    char err[TA_ERR_MAX] = "";

    assert_int_equal(rp_auth_new_key_file(path, &a, err, sizeof(err)), RP_OK);
    assert_non_null(a);
    rp_auth_set_clock(a, ta_clock, NULL);
    return a;
}

static void ta_expect_token(rp_auth_t *a, const char *want)
{
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX] = "";
    rp_err_t rc = rp_auth_token(a, tok, sizeof(tok), err, sizeof(err));

    if (rc != RP_OK)
        print_error("rp_auth_token: %s\n", err);
    assert_int_equal(rc, RP_OK);
    assert_string_equal(tok, want);
}

/* ---- group setup: keys, key files, the fake server ---- */

static int ta_group_setup(void **state)
{
    char port_file[TA_PATH_MAX + 16], script[TA_PATH_MAX];
    char buf[32];
    pid_t pid;
    int waited = 0;

    (void)state;
    snprintf(ta.dir, sizeof(ta.dir), "/tmp/rp_auth_test.XXXXXX");
    if (!mkdtemp(ta.dir))
        return -1;
    ta.pkey_a = ta_rsa_key();
    ta.pkey_b = ta_rsa_key();
    if (!ta.pkey_a || !ta.pkey_b ||
        ta_private_pem(ta.pkey_a, ta.pem_a, sizeof(ta.pem_a)) != 0 ||
        ta_private_pem(ta.pkey_b, ta.pem_b, sizeof(ta.pem_b)) != 0)
        return -1;
    snprintf(ta.pub_a, sizeof(ta.pub_a), "%s/pub_a.pem", ta.dir);
    if (ta_write_pubkey(ta.pkey_a, ta.pub_a) != 0)
        return -1;

    snprintf(port_file, sizeof(port_file), "%s/port", ta.dir);
    ta_script(script, sizeof(script));
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("python3", "python3", script, "--pubkey", ta.pub_a,
               "--email", TA_EMAIL, "--kid", TA_KID, "--port-file",
               port_file, (char *)NULL);
        _exit(127);
    }
    ta.server = pid;
    for (;;) {
        FILE *f = fopen(port_file, "r");
        int status;

        if (f) {
            if (fgets(buf, sizeof(buf), f))
                ta.port = atoi(buf);
            fclose(f);
            if (ta.port > 0)
                break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "token_server.py (%s) exited early\n", script);
            ta.server = 0;
            return -1;
        }
        if (waited >= TA_START_TIMEOUT_MS)
            return -1;
        ta_sleep_ms(20);
        waited += 20;
    }
    snprintf(ta.base, sizeof(ta.base), "http://127.0.0.1:%d", ta.port);
    snprintf(ta.token_uri, sizeof(ta.token_uri), "%s/token", ta.base);
    snprintf(ta.key_a, sizeof(ta.key_a), "%s/key_a.json", ta.dir);
    snprintf(ta.key_b, sizeof(ta.key_b), "%s/key_b.json", ta.dir);
    ta_write_key_json(ta.key_a, "service_account", TA_EMAIL, TA_KID,
                      ta.pem_a, ta.token_uri);
    ta_write_key_json(ta.key_b, "service_account", TA_EMAIL, TA_KID,
                      ta.pem_b, ta.token_uri);
    return 0;
}

static int ta_group_teardown(void **state)
{
    (void)state;
    if (ta.server > 0) {
        kill(ta.server, SIGTERM);
        waitpid(ta.server, NULL, 0);
    }
    EVP_PKEY_free(ta.pkey_a);
    EVP_PKEY_free(ta.pkey_b);
    if (ta.dir[0])
        rp_test_rmtree(ta.dir);
    return 0;
}

/* ---- pure parts ---- */

static void test_refresh_margin(void **state)
{
    (void)state;
    /* 5 minutes for the usual hour-long token... */
    assert_int_equal(rp_auth_refresh_margin_ms(3599 * 1000LL), 300 * 1000);
    assert_int_equal(rp_auth_refresh_margin_ms(3600 * 1000LL), 300 * 1000);
    /* ...10% when that is smaller. */
    assert_int_equal(rp_auth_refresh_margin_ms(100 * 1000LL), 10 * 1000);
    assert_int_equal(rp_auth_refresh_margin_ms(2000), 200);
    assert_int_equal(rp_auth_refresh_margin_ms(3000 * 1000LL), 300 * 1000);
    assert_int_equal(rp_auth_refresh_margin_ms(2999 * 1000LL), 299900);
    assert_int_equal(rp_auth_refresh_margin_ms(0), 0);
}

static void test_parse_token_response(void **state)
{
    static const struct {
        const char *body;
        rp_err_t want;
        const char *token;
        int64_t expires_ms;
    } cases[] = {
        {"{\"access_token\":\"ya29.a\",\"expires_in\":\"3599\","
         "\"token_type\":\"Bearer\"}",
         RP_OK, "ya29.a", 3599000},
        {"{\"access_token\":\"ya29.b\",\"expires_in\":3599,"
         "\"token_type\":\"Bearer\"}",
         RP_OK, "ya29.b", 3599000},
        {"{\"access_token\":\"c\",\"expires_in\":59.9}", RP_OK, "c", 59000},
        {"{\"access_token\":\"d\",\"expires_in\":\"3599\","
         "\"token_type\":\"bearer\"}",
         RP_OK, "d", 3599000},
        /* Lifetimes beyond a week are clamped, not trusted. */
        {"{\"access_token\":\"e\",\"expires_in\":\"99999999999999999999\"}",
         RP_OK, "e", 7LL * 24 * 3600 * 1000},
        {"{\"access_token\":\"\",\"expires_in\":3599}", RP_ERR_PROTOCOL, "",
         0},
        {"{\"expires_in\":3599}", RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":\"x\"}", RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":\"x\",\"expires_in\":0}", RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":\"x\",\"expires_in\":-5}", RP_ERR_PROTOCOL, "",
         0},
        {"{\"access_token\":\"x\",\"expires_in\":\"0\"}", RP_ERR_PROTOCOL, "",
         0},
        {"{\"access_token\":\"x\",\"expires_in\":\"-5\"}", RP_ERR_PROTOCOL,
         "", 0},
        {"{\"access_token\":\"x\",\"expires_in\":\"12abc\"}",
         RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":\"x\",\"expires_in\":\"\"}", RP_ERR_PROTOCOL, "",
         0},
        {"{\"access_token\":\"x\",\"expires_in\":true}", RP_ERR_PROTOCOL, "",
         0},
        {"{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3599}",
         RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":\"a b\",\"expires_in\":3599}", RP_ERR_PROTOCOL,
         "", 0},
        {"{\"access_token\":\"x\",\"expires_in\":3599,\"token_type\":\"MAC\"}",
         RP_ERR_PROTOCOL, "", 0},
        {"{\"access_token\":7,\"expires_in\":3599}", RP_ERR_PROTOCOL, "", 0},
        {"[1,2]", RP_ERR_PROTOCOL, "", 0},
        {"not json", RP_ERR_PROTOCOL, "", 0},
        {"", RP_ERR_PROTOCOL, "", 0},
    };
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        rp_err_t rc;

        err[0] = '\0';
        rc = rp_auth_parse_token_response(cases[i].body,
                                          strlen(cases[i].body), tok,
                                          sizeof(tok), &ms, err, sizeof(err));
        if (rc != cases[i].want)
            print_error("case %zu: %s -> %d (%s)\n", i, cases[i].body, rc,
                        err);
        assert_int_equal(rc, cases[i].want);
        assert_string_equal(tok, cases[i].token);
        if (rc == RP_OK)
            assert_int_equal(ms, cases[i].expires_ms);
        else
            assert_true(err[0] != '\0');
    }
}

static void test_parse_token_bounds(void **state)
{
    size_t n = RP_AUTH_TOKEN_MAX; /* one too long: the NUL needs a byte */
    char *body = malloc(n + 64);
    char tok[RP_AUTH_TOKEN_MAX];
    char small[8];
    char err[TA_ERR_MAX] = "";
    int64_t ms = 0;
    int len;

    (void)state;
    assert_non_null(body);
    len = snprintf(body, n + 64, "{\"access_token\":\"%0*d\",\"expires_in\":1}",
                   (int)n, 7);
    assert_int_equal(rp_auth_parse_token_response(body, (size_t)len, tok,
                                                  sizeof(tok), &ms, err,
                                                  sizeof(err)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(err, "RP_AUTH_TOKEN_MAX"));
    /* The longest allowed token parses. */
    len = snprintf(body, n + 64, "{\"access_token\":\"%0*d\",\"expires_in\":1}",
                   (int)n - 1, 7);
    assert_int_equal(rp_auth_parse_token_response(body, (size_t)len, tok,
                                                  sizeof(tok), &ms, err,
                                                  sizeof(err)),
                     RP_OK);
    assert_int_equal(strlen(tok), n - 1);
    /* A caller buffer too small is the caller's problem, said as such. */
    len = snprintf(body, n + 64,
                   "{\"access_token\":\"abcdefghij\",\"expires_in\":1}");
    assert_int_equal(rp_auth_parse_token_response(body, (size_t)len, small,
                                                  sizeof(small), &ms, err,
                                                  sizeof(err)),
                     RP_ERR_TOO_LARGE);
    free(body);
}

/* Split a JWT into its three parts; checks the alphabet on the way. */
static void ta_split_jwt(const char *jwt, const char **p, size_t *n)
{
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

    assert_non_null(d1);
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_int_equal(strspn(jwt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                 "qrstuvwxyz0123456789-_."),
                     strlen(jwt));
    p[0] = jwt;
    n[0] = (size_t)(d1 - jwt);
    p[1] = d1 + 1;
    n[1] = (size_t)(d2 - d1 - 1);
    p[2] = d2 + 1;
    n[2] = strlen(d2 + 1);
}

static int ta_verify(EVP_PKEY *pub, const char *signing_input, size_t len,
                     const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = 0;

    assert_non_null(md);
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1)
        ok = EVP_DigestVerify(md, sig, siglen,
                              (const unsigned char *)signing_input, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void test_jwt_build_and_verify(void **state)
{
    rp_auth_key_t *key = NULL;
    char err[TA_ERR_MAX] = "";
    char *jwt = NULL;
    const char *p[3];
    size_t n[3];
    unsigned char sig[1024];
    long siglen;
    cJSON *hdr, *cl;
    char *tampered;

    (void)state;
    assert_int_equal(rp_auth_key_load(ta.key_a, &key, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(rp_auth_jwt_build(key, TA_NOW, &jwt, err, sizeof(err)),
                     RP_OK);
    assert_non_null(jwt);
    ta_split_jwt(jwt, p, n);

    hdr = ta_decode_part(p[0], n[0]);
    assert_non_null(hdr);
    ta_assert_str(hdr, "alg", "RS256");
    ta_assert_str(hdr, "typ", "JWT");
    ta_assert_str(hdr, "kid", TA_KID);
    assert_int_equal(ta_nfields(hdr), 3);
    cJSON_Delete(hdr);

    cl = ta_decode_part(p[1], n[1]);
    assert_non_null(cl);
    ta_assert_str(cl, "iss", TA_EMAIL);
    ta_assert_str(cl, "scope",
                  "https://www.googleapis.com/auth/cloud-platform");
    ta_assert_str(cl, "aud", ta.token_uri);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(cl, "iat")));
    assert_true(cJSON_GetObjectItem(cl, "iat")->valuedouble == (double)TA_NOW);
    assert_true(cJSON_GetObjectItem(cl, "exp")->valuedouble ==
                (double)(TA_NOW + 3600));
    assert_int_equal(ta_nfields(cl), 5);
    cJSON_Delete(cl);
    /* Integers, not 1.7e+09: strict verifiers reject floats. */
    {
        unsigned char raw[2048];
        long len = ta_b64url_decode(p[1], n[1], raw, sizeof(raw) - 1);

        assert_true(len > 0);
        raw[len] = '\0';
        assert_non_null(strstr((char *)raw, "\"iat\":1700000000"));
        assert_non_null(strstr((char *)raw, "\"exp\":1700003600"));
    }

    siglen = ta_b64url_decode(p[2], n[2], sig, sizeof(sig));
    assert_int_equal(siglen, 256); /* 2048-bit key */
    /* The right key verifies it; the other key and a changed claim don't. */
    assert_true(ta_verify(ta.pkey_a, jwt, n[0] + 1 + n[1], sig,
                          (size_t)siglen));
    assert_false(ta_verify(ta.pkey_b, jwt, n[0] + 1 + n[1], sig,
                           (size_t)siglen));
    tampered = strdup(jwt);
    assert_non_null(tampered);
    tampered[n[0] + 3] = tampered[n[0] + 3] == 'A' ? 'B' : 'A';
    assert_false(ta_verify(ta.pkey_a, tampered, n[0] + 1 + n[1], sig,
                           (size_t)siglen));
    free(tampered);
    free(jwt);
    rp_auth_key_free(key);
}

static void test_jwt_defaults(void **state)
{
    char path[TA_PATH_MAX + 32];
    rp_auth_key_t *key = NULL;
    char err[TA_ERR_MAX] = "";
    char *jwt = NULL;
    const char *p[3];
    size_t n[3];
    cJSON *hdr, *cl;

    (void)state;
    /* No private_key_id -> no kid; no token_uri -> Google's endpoint. */
    snprintf(path, sizeof(path), "%s/nokid.json", ta.dir);
    ta_write_key_json(path, "service_account", TA_EMAIL, NULL, ta.pem_a,
                      NULL);
    assert_int_equal(rp_auth_key_load(path, &key, err, sizeof(err)), RP_OK);
    assert_int_equal(rp_auth_jwt_build(key, TA_NOW, &jwt, err, sizeof(err)),
                     RP_OK);
    ta_split_jwt(jwt, p, n);
    hdr = ta_decode_part(p[0], n[0]);
    cl = ta_decode_part(p[1], n[1]);
    assert_null(cJSON_GetObjectItem(hdr, "kid"));
    assert_int_equal(ta_nfields(hdr), 2);
    ta_assert_str(cl, "aud", "https://oauth2.googleapis.com/token");
    cJSON_Delete(hdr);
    cJSON_Delete(cl);
    free(jwt);
    rp_auth_key_free(key);
}

/* ---- key file validation ---- */

static void ta_expect_key_error(const char *path, rp_err_t want,
                                const char *needle1, const char *needle2)
{
    rp_auth_t *a = (rp_auth_t *)&ta; /* must be reset to NULL */
    char err[TA_ERR_MAX] = "";

    assert_int_equal(rp_auth_new_key_file(path, &a, err, sizeof(err)), want);
    assert_null(a);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        print_error("errstr: %s\n", err);
    assert_non_null(strstr(err, needle1));
    if (needle2)
        assert_non_null(strstr(err, needle2));
    /* The private key must never show up in a message. */
    assert_null(strstr(err, "PRIVATE KEY"));
}

static void test_key_file_errors(void **state)
{
    char path[TA_PATH_MAX + 32];
    char pem[TA_PEM_MAX];
    EVP_PKEY *ec;
    BIO *b;
    char *big;

    (void)state;
    snprintf(path, sizeof(path), "%s/bad.json", ta.dir);

    ta_write_key_json(path, "authorized_user", TA_EMAIL, TA_KID, ta.pem_a,
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "'authorized_user'",
                        "service_account");
    ta_write_key_json(path, NULL, TA_EMAIL, TA_KID, ta.pem_a, ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "not supported", NULL);
    ta_write_key_json(path, "service_account", NULL, TA_KID, ta.pem_a,
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "client_email", path);
    ta_write_key_json(path, "service_account", TA_EMAIL, TA_KID, NULL,
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "private_key", NULL);
    ta_write_key_json(path, "service_account", TA_EMAIL, TA_KID,
                      "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n"
                      "-----END PRIVATE KEY-----\n",
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "private_key", NULL);
    ta_write_key_json(path, "service_account", TA_EMAIL, TA_KID, ta.pem_a,
                      "file:///etc/passwd");
    ta_expect_key_error(path, RP_ERR_INVALID, "token_uri", NULL);

    /* An EC key cannot sign RS256. */
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    assert_int_equal(ta_private_pem(ec, pem, sizeof(pem)), 0);
    EVP_PKEY_free(ec);
    ta_write_key_json(path, "service_account", TA_EMAIL, TA_KID, pem,
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "RSA", NULL);

    /* An encrypted key fails instead of prompting for a passphrase. */
    b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, ta.pkey_a, EVP_aes_128_cbc(),
                                              (unsigned char *)"secret", 6,
                                              NULL, NULL),
                     1);
    {
        char *data;
        long len = BIO_get_mem_data(b, &data);

        assert_true(len > 0 && (size_t)len < sizeof(pem));
        memcpy(pem, data, (size_t)len);
        pem[len] = '\0';
    }
    BIO_free(b);
    assert_non_null(strstr(pem, "ENCRYPTED"));
    ta_write_key_json(path, "service_account", TA_EMAIL, TA_KID, pem,
                      ta.token_uri);
    ta_expect_key_error(path, RP_ERR_INVALID, "private_key", NULL);

    assert_int_equal(ta_write_file(path, "{not json", 9), 0);
    ta_expect_key_error(path, RP_ERR_INVALID, "JSON", NULL);
    assert_int_equal(ta_write_file(path, "", 0), 0);
    ta_expect_key_error(path, RP_ERR_INVALID, "empty", NULL);

    big = malloc(RP_AUTH_KEY_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', RP_AUTH_KEY_FILE_MAX + 1);
    big[0] = '{';
    assert_int_equal(ta_write_file(path, big, RP_AUTH_KEY_FILE_MAX + 1), 0);
    free(big);
    ta_expect_key_error(path, RP_ERR_TOO_LARGE, "larger than", NULL);

    snprintf(path, sizeof(path), "%s/does-not-exist.json", ta.dir);
    ta_expect_key_error(path, RP_ERR_NOT_FOUND, "does-not-exist.json", NULL);
}

/* ---- against the fake token server ---- */

static void test_token_cache_and_refresh(void **state)
{
    rp_auth_t *a;
    char hdr[RP_AUTH_TOKEN_MAX + 32];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    assert_int_equal(rp_auth_kind(a), RP_AUTH_KEY_FILE);
    assert_non_null(strstr(rp_auth_describe(a), TA_EMAIL));

    ta_expect_token(a, "tok-1");
    assert_int_equal(ta_count("token"), 1);
    ta_expect_token(a, "tok-1"); /* cached */
    assert_int_equal(rp_auth_header(a, hdr, sizeof(hdr), err, sizeof(err)),
                     RP_OK);
    assert_string_equal(hdr, "Authorization: Bearer tok-1");
    assert_int_equal(ta_count("token"), 1);

    /* expires_in "3599" (a string): refreshed 5 minutes before expiry. */
    atomic_fetch_add(&ta_clock_ms, (3599 - 300) * 1000LL - 1);
    ta_expect_token(a, "tok-1");
    assert_int_equal(ta_count("token"), 1);
    atomic_fetch_add(&ta_clock_ms, 2);
    ta_expect_token(a, "tok-2");
    assert_int_equal(ta_count("token"), 2);
    ta_expect_token(a, "tok-2");
    assert_int_equal(ta_count("token"), 2);
    assert_int_equal(ta_count("rejected"), 0);
    rp_auth_destroy(a);
}

static void test_token_short_lifetime(void **state)
{
    rp_auth_t *a;

    (void)state;
    ta_reset();
    ta_control("expires_in=100"); /* 10% = 10 s is less than 5 min */
    a = ta_new_key_auth(ta.key_a);
    ta_expect_token(a, "tok-1");
    atomic_fetch_add(&ta_clock_ms, 89 * 1000LL);
    ta_expect_token(a, "tok-1");
    assert_int_equal(ta_count("token"), 1);
    atomic_fetch_add(&ta_clock_ms, 2 * 1000LL);
    ta_expect_token(a, "tok-2");
    assert_int_equal(ta_count("token"), 2);
    rp_auth_destroy(a);
}

static void test_token_wrong_key(void **state)
{
    rp_auth_t *a;
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_b); /* server only trusts key A */
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_PERMISSION);
    assert_false(rp_err_retriable(RP_ERR_PERMISSION));
    assert_string_equal(tok, "");
    assert_non_null(strstr(err, "invalid_grant"));
    assert_non_null(strstr(err, "Invalid JWT Signature"));
    assert_non_null(strstr(err, "400"));
    assert_int_equal(ta_count("rejected"), 1);
    rp_auth_destroy(a);
}

typedef struct ta_thread_arg {
    rp_auth_t *auth;
    pthread_barrier_t *barrier;
    rp_err_t rc;
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX];
} ta_thread_arg_t;

static void *ta_thread(void *p)
{
    ta_thread_arg_t *t = p;

    pthread_barrier_wait(t->barrier);
    t->rc = rp_auth_token(t->auth, t->tok, sizeof(t->tok), t->err,
                          sizeof(t->err));
    return NULL;
}

/* Start TA_THREADS callers at once on a and join them. */
static void ta_run_threads(rp_auth_t *a, ta_thread_arg_t *args)
{
    pthread_t th[TA_THREADS];
    pthread_barrier_t barrier;

    assert_int_equal(pthread_barrier_init(&barrier, NULL, TA_THREADS), 0);
    for (int i = 0; i < TA_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].auth = a;
        args[i].barrier = &barrier;
        assert_int_equal(pthread_create(&th[i], NULL, ta_thread, &args[i]),
                         0);
    }
    for (int i = 0; i < TA_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
}

static void test_token_one_refresh_for_many_threads(void **state)
{
    ta_thread_arg_t args[TA_THREADS];
    rp_auth_t *a;

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    ta_expect_token(a, "tok-1");
    /* Expired; the endpoint is slow, so all eight arrive while the first
     * refresh is in flight. */
    atomic_fetch_add(&ta_clock_ms, 3600 * 1000LL);
    ta_control("delay_ms=400");
    ta_run_threads(a, args);
    for (int i = 0; i < TA_THREADS; i++) {
        assert_int_equal(args[i].rc, RP_OK);
        assert_string_equal(args[i].tok, "tok-2");
    }
    assert_int_equal(ta_count("token"), 2);
    rp_auth_destroy(a);
}

static void test_token_failure_shared_by_waiters(void **state)
{
    ta_thread_arg_t args[TA_THREADS];
    rp_auth_t *a;

    (void)state;
    ta_reset();
    ta_control("delay_ms=400&fail_status=503");
    a = ta_new_key_auth(ta.key_a);
    ta_run_threads(a, args);
    for (int i = 0; i < TA_THREADS; i++) {
        assert_int_equal(args[i].rc, RP_ERR_UNAVAILABLE);
        assert_non_null(strstr(args[i].err, "503"));
        assert_non_null(strstr(args[i].err, "injected failure"));
    }
    assert_int_equal(ta_count("token"), 1);
    rp_auth_destroy(a);
}

static void test_token_failure_keeps_valid_token(void **state)
{
    rp_auth_t *a;
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    ta_expect_token(a, "tok-1");
    ta_control("fail_status=503");
    /* In the refresh window: the refresh fails, the old token still works. */
    atomic_fetch_add(&ta_clock_ms, 3400 * 1000LL);
    ta_expect_token(a, "tok-1");
    assert_int_equal(ta_count("token"), 2);
    /* Expired: now the failure shows, as retriable. */
    atomic_fetch_add(&ta_clock_ms, 200 * 1000LL);
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_true(rp_err_retriable(RP_ERR_UNAVAILABLE));
    assert_string_equal(tok, "");
    assert_int_equal(ta_count("token"), 3);
    /* Endpoint back: next call refreshes. */
    ta_control("fail_status=0");
    ta_expect_token(a, "tok-2");
    rp_auth_destroy(a);
}

static void test_token_unavailable(void **state)
{
    rp_auth_t *a;
    char tok[RP_AUTH_TOKEN_MAX];
    char err[TA_ERR_MAX] = "";
    char host[64];
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);
    int fd;

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    ta_control("fail_status=500");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    ta_control("fail_status=429");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    ta_control("fail_status=401");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_PERMISSION);
    ta_control("fail_status=403");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_PERMISSION);
    ta_control("fail_status=418");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_PROTOCOL);

    /* A timeout is retriable too. */
    ta_control("fail_status=0&delay_ms=3000");
    rp_auth_set_timeout_ms(a, 300);
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    ta_control("delay_ms=0");
    rp_auth_destroy(a);

    /* Nothing listening: a port just freed. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    close(fd);
    snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(sin.sin_port));
    assert_int_equal(rp_auth_new_metadata(host, &a, err, sizeof(err)), RP_OK);
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, host));
    rp_auth_destroy(a);
}

static void test_token_too_long(void **state)
{
    rp_auth_t *a;
    char tok[RP_AUTH_TOKEN_MAX];
    char small[16];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    ta_control("token_len=5000");
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_ERR_PROTOCOL);
    assert_non_null(strstr(err, "RP_AUTH_TOKEN_MAX"));
    ta_control("token_len=100");
    assert_int_equal(rp_auth_token(a, small, sizeof(small), err, sizeof(err)),
                     RP_ERR_TOO_LARGE);
    assert_string_equal(small, "");
    /* The token was cached all the same: a big enough buffer gets it. */
    assert_int_equal(rp_auth_token(a, tok, sizeof(tok), err, sizeof(err)),
                     RP_OK);
    assert_int_equal(strlen(tok), 100);
    assert_int_equal(strncmp(tok, "tok-2", 5), 0);
    assert_int_equal(ta_count("token"), 2);
    rp_auth_destroy(a);
}

static void test_metadata_from_env(void **state)
{
    rp_auth_t *a = NULL;
    char host[64];
    char err[TA_ERR_MAX] = "";
    long status = 0;
    cJSON *j;

    (void)state;
    ta_reset();
    /* The fake insists on the header, like the real server. */
    j = ta_get("/computeMetadata/v1/instance/service-accounts/default/token",
               NULL, &status);
    cJSON_Delete(j);
    assert_int_equal(status, 403);
    assert_int_equal(ta_count("metadata"), 0);

    snprintf(host, sizeof(host), "127.0.0.1:%d", ta.port);
    assert_int_equal(setenv("GCE_METADATA_HOST", host, 1), 0);
    assert_int_equal(setenv("GOOGLE_APPLICATION_CREDENTIALS", "", 1), 0);
    assert_int_equal(rp_auth_new_from_env(&a, err, sizeof(err)), RP_OK);
    unsetenv("GCE_METADATA_HOST");
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    assert_int_equal(rp_auth_kind(a), RP_AUTH_METADATA);
    assert_non_null(strstr(rp_auth_describe(a), host));
    rp_auth_set_clock(a, ta_clock, NULL);

    ta_expect_token(a, "meta-1"); /* expires_in as a number */
    ta_expect_token(a, "meta-1");
    assert_int_equal(ta_count("metadata"), 1);
    assert_int_equal(ta_count("rejected"), 1); /* only ours, above */
    atomic_fetch_add(&ta_clock_ms, 3599 * 1000LL);
    ta_expect_token(a, "meta-2");
    assert_int_equal(ta_count("metadata"), 2);
    rp_auth_destroy(a);

    /* The default host, and hosts that would change the URL. */
    unsetenv("GCE_METADATA_HOST");
    assert_int_equal(rp_auth_new_metadata(NULL, &a, err, sizeof(err)), RP_OK);
    assert_string_equal(rp_auth_describe(a),
                        "metadata server metadata.google.internal");
    rp_auth_destroy(a);
    assert_int_equal(rp_auth_new_metadata("evil.com/x?", &a, err,
                                          sizeof(err)),
                     RP_ERR_INVALID);
    assert_int_equal(rp_auth_new_metadata("a b", &a, err, sizeof(err)),
                     RP_ERR_INVALID);
}

static void test_key_file_from_env(void **state)
{
    rp_auth_t *a = NULL;
    char path[TA_PATH_MAX + 32];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    assert_int_equal(setenv("GOOGLE_APPLICATION_CREDENTIALS", ta.key_a, 1), 0);
    assert_int_equal(setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1), 0);
    assert_int_equal(rp_auth_new_from_env(&a, err, sizeof(err)), RP_OK);
    assert_int_equal(rp_auth_kind(a), RP_AUTH_KEY_FILE);
    ta_expect_token(a, "tok-1");
    assert_int_equal(ta_count("token"), 1);
    assert_int_equal(ta_count("metadata"), 0);
    rp_auth_destroy(a);

    /* A bad file is an error, not a fallback to the metadata server. */
    snprintf(path, sizeof(path), "%s/user.json", ta.dir);
    ta_write_key_json(path, "authorized_user", TA_EMAIL, NULL, NULL, NULL);
    assert_int_equal(setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1), 0);
    a = (rp_auth_t *)&ta;
    assert_int_equal(rp_auth_new_from_env(&a, err, sizeof(err)),
                     RP_ERR_INVALID);
    assert_null(a);
    assert_non_null(strstr(err, "GOOGLE_APPLICATION_CREDENTIALS"));
    assert_non_null(strstr(err, "authorized_user"));
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("GCE_METADATA_HOST");
}

static void test_none(void **state)
{
    rp_auth_t *none = NULL;
    char tok[RP_AUTH_TOKEN_MAX];
    char hdr[RP_AUTH_TOKEN_MAX + 32];
    char err[TA_ERR_MAX] = "";

    (void)state;
    ta_reset();
    rp_auth_destroy(NULL);

    assert_int_equal(rp_auth_new_none(&none, err, sizeof(err)), RP_OK);
    assert_int_equal(rp_auth_kind(none), RP_AUTH_NONE);
    tok[0] = 'x';
    assert_int_equal(rp_auth_token(none, tok, sizeof(tok), err, sizeof(err)),
                     RP_OK);
    assert_string_equal(tok, "");
    hdr[0] = 'x';
    assert_int_equal(rp_auth_header(none, hdr, sizeof(hdr), err, sizeof(err)),
                     RP_OK);
    assert_string_equal(hdr, "");

    rp_auth_destroy(none);
}

/* ---- rp_auth_request: the token on every call, refresh on 401 ---- */

#define TA_401_BODY                                                          \
    "{\"error\":{\"code\":401,\"message\":\"Request had invalid "            \
    "authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}"

/* GET s/api through rp_auth_request with one header of our own. */
static rp_err_t ta_api_get(rp_auth_t *a, fh_server_t *s, rp_http_resp_t *resp,
                           bool *token_failed, char *err, size_t err_size)
{
    char url[TA_URL_MAX];
    const char *hdrs[] = {"X-Test: kept"};
    rp_http_req_t req = {0};

    snprintf(url, sizeof(url), "%s/api?x=1", s->base);
    req.method = "GET";
    req.url = url;
    req.headers = hdrs;
    req.n_headers = 1;
    req.timeout_ms = 10000;
    return rp_auth_request(a, &req, resp, token_failed, err, err_size);
}

static void ta_expect_bearer(fh_server_t *s, size_t i, const char *want)
{
    fh_request_t r;
    char v[RP_AUTH_TOKEN_MAX + 16];

    assert_int_equal(fh_request(s, i, &r), 0);
    assert_int_equal(fh_header(&r, "X-Test", v, sizeof(v)), 0);
    assert_string_equal(v, "kept");
    if (!want) {
        assert_int_equal(fh_header(&r, "Authorization", v, sizeof(v)), -1);
        return;
    }
    assert_int_equal(fh_header(&r, "Authorization", v, sizeof(v)), 0);
    assert_string_equal(v, want);
}

/* Capture what rp_log writes (stderr) while fn runs: the log must name
 * what happened, never the tokens. */
static int ta_saved_stderr = -1;
static char ta_log_path[TA_PATH_MAX + 16];

static void ta_capture_stderr(void)
{
    int fd;

    snprintf(ta_log_path, sizeof(ta_log_path), "%s/stderr.log", ta.dir);
    fflush(stderr);
    ta_saved_stderr = dup(STDERR_FILENO);
    fd = open(ta_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(ta_saved_stderr >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restore stderr; the captured text (caller frees). */
static char *ta_captured_stderr(void)
{
    FILE *f;
    char *buf = calloc(1, 65536);

    fflush(stderr);
    assert_int_equal(dup2(ta_saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(ta_saved_stderr);
    ta_saved_stderr = -1;
    assert_non_null(buf);
    f = fopen(ta_log_path, "r");
    assert_non_null(f);
    buf[fread(buf, 1, 65535, f)] = '\0';
    fclose(f);
    return buf;
}

static void test_request_401_once(void **state)
{
    static const fh_reply_t replies[] = {
        {.status = 401, .body = TA_401_BODY},
        {.status = 200, .body = "ok"},
    };
    fh_server_t *s = fh_start(replies, 2);
    rp_http_resp_t resp = {0};
    char err[TA_ERR_MAX] = "";
    bool token_failed = true;
    rp_auth_t *a;

    (void)state;
    assert_non_null(s);
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    /* tok-1 is refused (revoked before its expiry): dropped, tok-2
     * fetched, the call made again and answered. */
    assert_int_equal(ta_api_get(a, s, &resp, &token_failed, err, sizeof(err)),
                     RP_OK);
    assert_false(token_failed);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body.data, "ok");
    assert_int_equal(fh_count(s), 2);
    assert_int_equal(ta_count("token"), 2);
    ta_expect_bearer(s, 0, "Bearer tok-1");
    ta_expect_bearer(s, 1, "Bearer tok-2");
    /* The fresh token is the cached one now. */
    assert_int_equal(ta_api_get(a, s, &resp, NULL, err, sizeof(err)), RP_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(ta_count("token"), 2);
    ta_expect_bearer(s, 2, "Bearer tok-2");
    rp_http_resp_clear(&resp);
    rp_auth_destroy(a);
    fh_stop(s);
}

static void test_request_401_twice(void **state)
{
    static const fh_reply_t replies[] = {{.status = 401, .body = TA_401_BODY}};
    fh_server_t *s = fh_start(replies, 1);
    rp_http_resp_t resp = {0};
    char err[TA_ERR_MAX] = "";
    bool token_failed = true;
    rp_auth_t *a;
    rp_err_t rc;
    char *log;

    (void)state;
    assert_non_null(s);
    ta_reset();
    a = ta_new_key_auth(ta.key_a);
    rp_log_init("test_auth", RP_LOG_INFO);
    ta_capture_stderr();
    rc = ta_api_get(a, s, &resp, &token_failed, err, sizeof(err));
    log = ta_captured_stderr();
    /* Logged: the refreshes and both refusals; never a token. */
    assert_non_null(strstr(log, "auth_token_refreshed"));
    assert_non_null(strstr(log, "auth_token_rejected"));
    assert_non_null(strstr(log, "HTTP 401 again"));
    assert_null(strstr(log, "tok-"));
    assert_null(strstr(log, "?x=1")); /* nor the query */
    free(log);
    assert_int_equal(rc, RP_ERR_PERMISSION);
    assert_false(rp_err_retriable(rc));
    assert_false(token_failed);
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr(err, "HTTP 401 twice"));
    assert_non_null(strstr(err, "freshly fetched"));
    assert_non_null(strstr(err, "Request had invalid authentication"));
    assert_null(strstr(err, "tok-")); /* the tokens stay out of it */
    /* Exactly one retry: two requests, two token fetches. */
    assert_int_equal(fh_count(s), 2);
    assert_int_equal(ta_count("token"), 2);
    ta_expect_bearer(s, 0, "Bearer tok-1");
    ta_expect_bearer(s, 1, "Bearer tok-2");
    rp_http_resp_clear(&resp);
    rp_auth_destroy(a);
    fh_stop(s);
}

static void test_request_token_errors(void **state)
{
    static const fh_reply_t ok = {.status = 200, .body = "ok"};
    fh_server_t *s = fh_start(&ok, 1);
    rp_http_resp_t resp = {0};
    char err[TA_ERR_MAX] = "";
    bool token_failed = false;
    rp_auth_t *a, *none = NULL;

    (void)state;
    assert_non_null(s);
    ta_reset();
    /* No token to be had: nothing is sent, and the caller is told. */
    ta_control("fail_status=503");
    a = ta_new_key_auth(ta.key_a);
    assert_int_equal(ta_api_get(a, s, &resp, &token_failed, err, sizeof(err)),
                     RP_ERR_UNAVAILABLE);
    assert_true(token_failed);
    assert_int_equal(fh_count(s), 0);
    ta_control("fail_status=0");

    /* invalidate drops only the token that was refused. */
    ta_expect_token(a, "tok-1");
    rp_auth_invalidate(a, "tok-0");
    ta_expect_token(a, "tok-1");
    rp_auth_invalidate(a, "tok-1");
    ta_expect_token(a, "tok-2");
    assert_int_equal(ta_count("token"), 3); /* the 503 counts too */
    rp_auth_invalidate(NULL, "tok-2");
    rp_auth_invalidate(a, NULL);
    ta_expect_token(a, "tok-2");
    rp_auth_destroy(a);

    /* No credentials (NULL or none): the request goes out bare. */
    assert_int_equal(ta_api_get(NULL, s, &resp, &token_failed, err,
                                sizeof(err)),
                     RP_OK);
    assert_false(token_failed);
    assert_int_equal(rp_auth_new_none(&none, err, sizeof(err)), RP_OK);
    assert_int_equal(ta_api_get(none, s, &resp, NULL, err, sizeof(err)),
                     RP_OK);
    assert_int_equal(fh_count(s), 2);
    ta_expect_bearer(s, 0, NULL);
    ta_expect_bearer(s, 1, NULL);
    rp_auth_destroy(none);
    rp_http_resp_clear(&resp);
    fh_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_margin),
        cmocka_unit_test(test_parse_token_response),
        cmocka_unit_test(test_parse_token_bounds),
        cmocka_unit_test(test_jwt_build_and_verify),
        cmocka_unit_test(test_jwt_defaults),
        cmocka_unit_test(test_key_file_errors),
        cmocka_unit_test(test_token_cache_and_refresh),
        cmocka_unit_test(test_token_short_lifetime),
        cmocka_unit_test(test_token_wrong_key),
        cmocka_unit_test(test_token_one_refresh_for_many_threads),
        cmocka_unit_test(test_token_failure_shared_by_waiters),
        cmocka_unit_test(test_token_failure_keeps_valid_token),
        cmocka_unit_test(test_token_unavailable),
        cmocka_unit_test(test_token_too_long),
        cmocka_unit_test(test_metadata_from_env),
        cmocka_unit_test(test_key_file_from_env),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_request_401_once),
        cmocka_unit_test(test_request_401_twice),
        cmocka_unit_test(test_request_token_errors),
    };
    char err[TA_ERR_MAX] = "";

    if (rp_http_global_init(err, sizeof(err)) != RP_OK) {
        fprintf(stderr, "rp_http_global_init: %s\n", err);
        return 1;
    }
    return cmocka_run_group_tests(tests, ta_group_setup, ta_group_teardown);
}
