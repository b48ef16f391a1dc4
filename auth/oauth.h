/*
 * oauth.h - RFC 7635 (STUN third-party authorization) self-contained access
 * tokens: the AS-RS keys a server is configured with, and the codec of the
 * ACCESS-TOKEN attribute value.
 *
 * Pure functions over caller buffers: no sockets, no globals, no malloc of
 * ours (OpenSSL allocates its cipher context per call), safe from any worker
 * thread. The STUN side (THIRD-PARTY-AUTHORIZATION 0x802E in a 401,
 * ACCESS-TOKEN 0x001B in the request, USERNAME = kid, MESSAGE-INTEGRITY keyed
 * with the token's mac_key) belongs to the caller.
 *
 * Interoperable with coturn (turnserver, turnutils_oauth, turnutils_uclient
 * -J): same wire layout, same associated data (the server name), same key
 * representation (base64 input keying material used directly as the key).
 */
#ifndef TERN_AUTH_OAUTH_H
#define TERN_AUTH_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#define OAUTH_NONCE_LEN 12    /* RFC 5116 section 5.1/5.2: N_MIN = N_MAX = 12 */
#define OAUTH_TAG_LEN 16      /* AES-GCM tag, appended to the encrypted block */
#define OAUTH_MAC_KEY_MAX 128 /* coturn's MAXSHASIZE: the largest it accepts */
/* Largest token: length, nonce, key length, key, timestamp, lifetime, tag. */
#define OAUTH_TOKEN_MAX (2 + OAUTH_NONCE_LEN + 2 + OAUTH_MAC_KEY_MAX + 8 + 4 + OAUTH_TAG_LEN)
/* Clock allowance between the authorization server and us, seconds: coturn's
 * OAUTH_TIME_DELTA, which it adds to both key and token expiry. */
#define OAUTH_TIME_SKEW 5

/* AS-RS encryption algorithms (RFC 7635 section 4.1, names from JWA RFC 7518). */
enum oauth_alg { OAUTH_A256GCM = 1, OAUTH_A128GCM = 2 };

/* "A256GCM" or "A128GCM", any case. 0 or -1. */
int oauth_alg_parse(const char *name, enum oauth_alg *out);
/* AES key length in bytes: 32 or 16 (0 for an unknown value). */
size_t oauth_alg_key_len(enum oauth_alg a);

/*
 * An AS-RS key, as configured (config file, or coturn's Redis hash
 * turn/oauth/kid/<kid> with fields ikm_key, as_rs_alg, timestamp, lifetime,
 * realm). The key is the first oauth_alg_key_len bytes of the decoded ikm,
 * as in coturn (no HKDF). timestamp/lifetime bound the key's own validity:
 * lifetime 0 means no limit; otherwise the key is refused from
 * timestamp + lifetime + OAUTH_TIME_SKEW on (coturn's rule; a timestamp in
 * the future does not make a key "not yet valid"). A non-empty realm moves
 * the session authenticated with this kid into that realm. Plain data.
 */
struct oauth_key {
    char kid[128];
    uint8_t key[32];
    size_t key_len;
    enum oauth_alg alg;
    uint64_t timestamp; /* unix seconds */
    uint32_t lifetime;  /* seconds, 0 = no limit */
    char realm[256];
};

/*
 * Builds a key from coturn's representation. kid non-empty, < 128 bytes.
 * ikm_base64 standard base64 (with padding) of at least the key length;
 * extra bytes are ignored (coturn's own test ikms carry a trailing newline).
 * alg: NULL or "" means A256GCM (the default coturn's schema documents).
 * realm may be NULL. 0 or -1.
 */
int oauth_key_init(struct oauth_key *k, const char *kid, const char *ikm_base64, const char *alg,
                   uint64_t timestamp, uint32_t lifetime, const char *realm);
/* 0 if the key may be used at now (unix seconds), -1 if it has expired. */
int oauth_key_check_time(const struct oauth_key *k, uint64_t now);

/* The encrypted block of a token (RFC 7635 section 6.2). */
struct oauth_token {
    uint8_t mac_key[OAUTH_MAC_KEY_MAX]; /* the MESSAGE-INTEGRITY key */
    size_t mac_key_len;                 /* 1..128; coturn issues and accepts 20 */
    uint64_t timestamp;                 /* 48 bits seconds . 16 bits 1/64000 s */
    uint32_t lifetime;                  /* seconds */
};

/* Errors of oauth_token_decrypt. */
enum oauth_err {
    OAUTH_ERR_MALFORMED = -1, /* lengths inconsistent, or bad arguments */
    OAUTH_ERR_AUTH = -2,      /* the AEAD tag does not verify: tampered, or
                                 another key or server name */
};

/*
 * Decrypts and authenticates an ACCESS-TOKEN value with k. server_name is
 * the associated data: the THIRD-PARTY-AUTHORIZATION value this server
 * sends (coturn: --server-name, else the realm), without NUL. Reads only
 * tok[0..len). 0, or a negative enum oauth_err; out is written on 0 only.
 */
int oauth_token_decrypt(const struct oauth_key *k, const char *server_name, const uint8_t *tok,
                        size_t len, struct oauth_token *out);
/*
 * Encrypts t into out (for tests and ternctl; an authorization server's
 * job). nonce_len must be OAUTH_NONCE_LEN; the nonce must never repeat
 * under one key (random in real use). Returns the length written or -1.
 */
int oauth_token_encrypt(const struct oauth_key *k, const char *server_name,
                        const struct oauth_token *t, const uint8_t *nonce, size_t nonce_len,
                        uint8_t *out, size_t cap);

/* Unix seconds at which the token was issued (the fraction dropped). */
uint64_t oauth_token_issued(const struct oauth_token *t);
/*
 * 0 if the token is valid at now (unix seconds): issued no later than
 * now + OAUTH_TIME_SKEW and now < issued + lifetime + OAUTH_TIME_SKEW.
 * -1 expired or from the future. A lifetime of 0 is not "forever" (coturn
 * reads it so): RFC 7635 section 6.2 makes lifetime the token's lifetime.
 */
int oauth_token_check_time(const struct oauth_token *t, uint64_t now);
/* The timestamp field for unix seconds (fraction 0). */
uint64_t oauth_timestamp_make(uint64_t unix_seconds);

#endif
