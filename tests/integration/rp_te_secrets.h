/* rp_te_secrets — the planted secrets of the test suite (issue 12 §3: no
 * secret in logs).
 *
 * The rig hands runpool these values where real secrets go, and
 * secrets.logs (check_secrets.c, the last CTest test of every run that
 * includes an integration or e2e test) fails when any line of any process
 * log the suite kept holds one of them. This list is the one place both
 * read. To add a secret (a signing key, a token): add a line here, make
 * the rig give it to runpool where that kind of secret goes, and call
 * rp_te_planted(te, RP_TE_SECRET_NAME) there so the check knows it was
 * planted. Values must be unique strings no log could hold by chance, and
 * plain ASCII without JSON-escaped characters (so a JSON log line shows
 * them as they are).
 */
#ifndef RP_TE_SECRETS_H
#define RP_TE_SECRETS_H

/* X(NAME, value) */
#define RP_TE_SECRETS(X)                                                    \
    /* a per-request env value: every exec request the rig sends carries    \
     * RP_IT_PLANTED_SECRET=this (rp_te_send_exec) */                       \
    X(REQUEST_ENV, "rp-planted-request-env-9c41f7d2e8")                     \
    /* sasl.password in the --kafka-config file (mode 0600) of every       \
     * worker the rig starts (rp_te_start_worker) */                        \
    X(KAFKA_PASSWORD, "rp-planted-kafka-password-5e0b3a86c1")              \
    /* the OAuth access tokens of tests/fakes/token_server.py (VALUE-meta-N) \
     * when a test authenticates its gs:// store (rp_te_cloud_authenticate, \
     * e2e.cloudrun): the workers send them to fake-gcs-server */           \
    X(ACCESS_TOKEN, "rp-planted-access-token-4a7f21c9d0")                  \
    /* a request-signing key, as integration.signed writes it into its     \
     * --signing-keys file (base64) and as its bytes (the same key) */      \
    X(SIGNING_KEY, "cnVucG9vbC1zZWNvbmQta2V5LTAxMjM0NTY3ODlhYmM=")          \
    X(SIGNING_KEY_BYTES, "runpool-second-key-0123456789abc")

typedef enum rp_te_secret {
#define RP_TE_SECRET_ENUM(name, value) RP_TE_SECRET_##name,
    RP_TE_SECRETS(RP_TE_SECRET_ENUM)
#undef RP_TE_SECRET_ENUM
    RP_TE_SECRETS_N
} rp_te_secret_t;

/* The env variable the rig adds to every exec request. */
#define RP_TE_SECRET_ENV_NAME "RP_IT_PLANTED_SECRET"

#endif
