/* rp_sign — signed requests: the key file, the runpool-signature header,
 * and its verification (issue 12; the format is in schemas/README.md,
 * "Signed requests", with a test vector).
 *
 * Design note.
 *
 * Anyone who can write to the requests topic can run commands, so a worker
 * given keys runs only what a holder of a key signed. A producer puts on
 * each request the Kafka header
 *
 *   runpool-signature: t=<unix seconds>,kid=<key id>,v1=<hex>
 *
 * where hex is the lowercase hex HMAC-SHA256, under the key named kid, of
 * the bytes "<t>.<kafka key>.<value>" (an absent key or value is empty;
 * t as written in the header). During a rotation a producer may sign with
 * several keys: more "kid=K,v1=HEX" pairs follow, and one kid may carry
 * several v1 values. The header is parsed strictly (grammar in
 * rp_sign_parse), within RP_SIGN_HEADER_MAX bytes.
 *
 * Verification: every v1 of every kid the verifier knows is compared, with
 * CRYPTO_memcmp and without stopping at the first match, so the time taken
 * does not depend on where a forged MAC differs. The outcome is one of
 * four codes (contract/rp_codes.h): unsigned (no header), bad_signature
 * (unparsable header, or no MAC matched under a known key), unknown_key
 * (no kid of the header is known), expired_signature (a MAC matched but t
 * is more than max_age seconds away from now, either way: the clock of a
 * producer may run ahead). The MAC is checked before t, so a forged header
 * with a fresh t is bad_signature, and a genuine old one is expired.
 *
 * The signed string joins key and value with '.', which both may contain;
 * a request signed for one (key, value) cannot pass as another split of
 * the same bytes, because the worker then refuses it anyway: the value
 * must be a JSON object ('{' first, which no session id holds) whose
 * session_id equals the key.
 *
 * Replays: within max_age a signed request can be sent again; the worker
 * runs an execution_id at most once (the key and the value, hence the
 * session and the execution_id, are signed), so a replay gets the first
 * run's recorded result again, never a second run.
 *
 * A refused request still gets a "rejected" result when its execution_id
 * and session_id are readable (the worker's rule for all bad input, so a
 * requester waiting on it learns why). The cost: whoever can write to the
 * requests topic can make the worker publish a "rejected" result under an
 * execution_id of their choosing. They cannot make anything run; a reader
 * that must not trust such results can tell them by their error.code.
 *
 * Key file: one key a line, "kid:base64" (standard base64 with padding),
 * kid 1..RP_SIGN_KID_MAX bytes of [A-Za-z0-9._-], the key
 * RP_SIGN_KEY_MIN..RP_SIGN_KEY_MAX bytes once decoded; lines that are
 * blank or start with '#' are skipped; at most RP_SIGN_KEYS_MAX keys and
 * RP_SIGN_LINE_MAX bytes a line; a kid may appear once. The file must be
 * a regular file that passes runpool's rule for secret files
 * (base/rp_secfile.h: owned by us, 0600 or 0400; or owned by root, at most
 * 0640, as a Kubernetes Secret mounts): anything else is refused with its
 * mode in the message. The first key is the one a producer signs with
 * unless told otherwise.
 *
 * Thread-safety: a loaded rp_sign_keys_t is read-only; any thread may sign
 * and verify with it at once. Everything else is pure.
 */
#ifndef RP_SIGN_H
#define RP_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_codes.h"
#include "rp_err.h"

/* The Kafka header that carries the signature. */
#define RP_SIGN_HEADER_NAME "runpool-signature"
/* The header's value, at most (several kids during a rotation fit). */
#define RP_SIGN_HEADER_MAX 1024
#define RP_SIGN_KID_MAX 64
/* Keys per file; also the distinct kids one header may name. */
#define RP_SIGN_KEYS_MAX 16
/* MACs (v1 entries) one header may carry, in all. */
#define RP_SIGN_MACS_MAX 8
/* A decoded key: at least 128 bits; at most 1024 bytes. */
#define RP_SIGN_KEY_MIN 16
#define RP_SIGN_KEY_MAX 1024
/* One line of the key file, without its newline. */
#define RP_SIGN_LINE_MAX 2048
/* t: decimal, at most this many digits (no sign, no leading zero). */
#define RP_SIGN_T_DIGITS_MAX 12
#define RP_SIGN_MAC_LEN 32 /* HMAC-SHA256 */
/* --signature-max-age: default and bounds, seconds. */
#define RP_SIGN_MAX_AGE_DEFAULT 300
#define RP_SIGN_MAX_AGE_LIMIT 86400

typedef struct rp_sign_keys rp_sign_keys_t;

/* Load the key file at path (borrowed). Refuses a file that fails
 * rp_secfile_check (RP_ERR_PERMISSION, the message names the mode), one
 * that is not a regular file, and any malformed line (RP_ERR_INVALID,
 * naming the line number, never the key). *out is the caller's; free with
 * rp_sign_keys_destroy. Any thread. */
rp_err_t rp_sign_keys_load(const char *path, rp_sign_keys_t **out,
                           char *errstr, size_t errstr_size);

/* The same from text (borrowed, len bytes) already read; no mode check.
 * For tests and the fuzzer. */
rp_err_t rp_sign_keys_parse(const char *text, size_t len,
                            rp_sign_keys_t **out, char *errstr,
                            size_t errstr_size);

/* Number of keys, and the kid of the i-th (in file order; static while k
 * lives; NULL when i is out of range). */
size_t rp_sign_keys_count(const rp_sign_keys_t *k);
const char *rp_sign_keys_kid(const rp_sign_keys_t *k, size_t i);

/* Wipes the keys; accepts NULL. */
void rp_sign_keys_destroy(rp_sign_keys_t *k);

/* The header value for (t, key, value) signed with kid (NULL: the first
 * key), NUL-terminated in out. key and value borrowed, may be NULL when
 * their length is 0. RP_ERR_NOT_FOUND when kid is not in k. */
rp_err_t rp_sign_header(const rp_sign_keys_t *k, const char *kid, int64_t t,
                        const void *key, size_t keylen, const void *value,
                        size_t len, char out[RP_SIGN_HEADER_MAX + 1],
                        char *errstr, size_t errstr_size);

/* A parsed header. */
typedef struct rp_sign_mac {
    char kid[RP_SIGN_KID_MAX + 1];
    unsigned char mac[RP_SIGN_MAC_LEN];
} rp_sign_mac_t;

typedef struct rp_sign_parsed {
    int64_t t;
    char t_text[RP_SIGN_T_DIGITS_MAX + 1]; /* as written: what was signed */
    size_t n;                              /* entries in mac */
    rp_sign_mac_t mac[RP_SIGN_MACS_MAX];
} rp_sign_parsed_t;

/* Parse a header value (borrowed, len bytes, need not be NUL-terminated):
 *
 *   header = "t=" T 1*( ",kid=" KID 1*( ",v1=" HEX64 ) )
 *   T      = "0" / [1-9] *[0-9]   (at most RP_SIGN_T_DIGITS_MAX digits)
 *   KID    = 1*64 [A-Za-z0-9._-]
 *   HEX64  = 64 [0-9a-f]
 *
 * No spaces, no other fields, no kid twice, at most RP_SIGN_MACS_MAX v1
 * in all, at most RP_SIGN_HEADER_MAX bytes. RP_ERR_INVALID with a message
 * on anything else. */
rp_err_t rp_sign_parse(const char *hdr, size_t len, rp_sign_parsed_t *out,
                       char *errstr, size_t errstr_size);

typedef enum rp_sign_status {
    RP_SIGN_OK,
    RP_SIGN_UNSIGNED,    /* no header */
    RP_SIGN_BAD,         /* unparsable, or no MAC matched */
    RP_SIGN_UNKNOWN_KEY, /* no kid of the header is known */
    RP_SIGN_EXPIRED,     /* a MAC matched; t too far from now */
} rp_sign_status_t;

/* Verify a message. hdr: the header's value (borrowed, hdrlen bytes), NULL
 * when the message has none. now_s: the verifier's clock (unix seconds);
 * max_age_s: tolerance either way. why (may be NULL) gets a sentence for
 * the DLQ header and the rejected result: never a key or a MAC. */
rp_sign_status_t rp_sign_verify(const rp_sign_keys_t *k, const char *hdr,
                                size_t hdrlen, const void *key, size_t keylen,
                                const void *value, size_t len, int64_t now_s,
                                int max_age_s, char *why, size_t why_size);

/* The result/DLQ code of a failed verification (RP_SIGN_OK: internal). */
rp_code_t rp_sign_code(rp_sign_status_t s);

#endif
