/*
 * auth.h - long-term credentials (RFC 8489 section 9.2), stateless nonces,
 * TURN REST API ephemeral credentials, and the static user store.
 *
 * Pure functions over caller buffers plus one read-only store built once from
 * the configuration: no sockets, no event loop, safe to call from any worker
 * thread at once (nothing here is mutated after auth_store_init).
 */
#ifndef TERN_AUTH_AUTH_H
#define TERN_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/oauth.h"
#include "conf/conf.h"

#define AUTH_MD5_KEY_LEN 16
#define AUTH_SHA256_KEY_LEN 32
#define AUTH_NONCE_LEN 36   /* characters, without the terminating NUL */
#define AUTH_MAX_USERNAME 513 /* RFC 8489 section 14.3: < 513 bytes */

/* PASSWORD-ALGORITHM values (RFC 8489 section 18.5). */
enum auth_alg { AUTH_ALG_MD5 = 0x0001, AUTH_ALG_SHA256 = 0x0002 };

/* Errors. */
enum auth_err {
    AUTH_ERR_INVALID = -1, /* malformed or forged */
    AUTH_ERR_STALE = -2,   /* well-formed, genuine, expired */
    AUTH_ERR_UNKNOWN = -3, /* no such user / no secret matches */
    AUTH_ERR_PROHIBITED = -4, /* SASLprep: prohibited character */
};

/*
 * SASLprep (RFC 4013) of a UTF-8 password into out (NUL-terminated): maps
 * non-ASCII spaces to U+0020, removes characters mapped to nothing, rejects
 * prohibited ones. NFKC is applied to the compatibility characters that
 * occur in practice (Latin-1 supplement, Roman numerals, full-width ASCII,
 * Ohm/Kelvin/Angstrom; see auth.c), not in full. Returns the output length
 * or a negative enum auth_err.
 */
int auth_saslprep(const char *in, char *out, size_t cap);

/* key = MD5(username ":" realm ":" SASLprep(password)). 0 or negative. */
int auth_key_md5(const char *user, size_t user_len, const char *realm, const char *password,
                 uint8_t key[AUTH_MD5_KEY_LEN]);
/* key = SHA-256(username ":" realm ":" SASLprep(password)). 0 or negative. */
int auth_key_sha256(const char *user, size_t user_len, const char *realm, const char *password,
                    uint8_t key[AUTH_SHA256_KEY_LEN]);
/* USERHASH = SHA-256(username ":" realm) (RFC 8489 section 14.4). */
void auth_userhash(const char *user, size_t user_len, const char *realm, uint8_t out[32]);

/*
 * Stateless nonces: hex(expiry) || hex(HMAC-SHA256(key, expiry || client IP))
 * truncated, prefixed with the RFC 8489 section 9.2 nonce cookie
 * "obMatJos2" + 4 characters of security feature bits (password algorithms
 * and username anonymity offered). Unforgeable without the per-process key;
 * bound to the client IP; stale after expiry (seconds on the caller's clock).
 * out must hold AUTH_NONCE_LEN + 1 bytes.
 */
void auth_nonce_make(const uint8_t key[32], const struct sockaddr *client, uint64_t expiry,
                     char *out);
/* 0 valid, AUTH_ERR_STALE expired, AUTH_ERR_INVALID forged or malformed. */
int auth_nonce_check(const uint8_t key[32], const struct sockaddr *client, const char *nonce,
                     size_t len, uint64_t now);

/*
 * TURN REST API (draft-uberti-behave-turn-rest): username "<unix-expiry>" or
 * "<unix-expiry>:<name>"; password base64(HMAC-SHA1(secret, username)).
 * auth_rest_expiry parses the expiry (AUTH_ERR_INVALID if the username is not
 * of that form). auth_rest_password writes the NUL-terminated password.
 */
int auth_rest_expiry(const char *user, size_t user_len, uint64_t *expiry);
int auth_rest_password(const char *secret, const char *user, size_t user_len, char *out,
                       size_t cap);

/* A static user with both keys precomputed. */
struct auth_user {
    char name[CONF_STR];
    size_t name_len;
    uint8_t md5[AUTH_MD5_KEY_LEN];
    uint8_t sha256[AUTH_SHA256_KEY_LEN];
    bool has_md5, has_sha256; /* a configured key gives only its own kind */
    uint8_t userhash[32];
};

/*
 * The static users of the configuration, hashed by name and by USERHASH, and
 * the REST secrets (copied). Owns users and the two index tables; freed by
 * auth_store_free. Read-only after init, shared by all workers.
 */
struct auth_store {
    char realm[CONF_STR];
    struct auth_user *users;
    size_t n_users;
    uint32_t *by_name;     /* open addressing: index+1, 0 empty */
    uint32_t *by_hash;
    size_t n_slots;        /* power of two */
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
};

/* The default realm's store (auth_store_init), or one realm's. */
int auth_store_init(struct auth_store *s, const struct conf *c);
int auth_store_init_realm(struct auth_store *s, const struct conf_realm_view *realm);
void auth_store_free(struct auth_store *s);
const struct auth_user *auth_store_find(const struct auth_store *s, const char *user, size_t len);
const struct auth_user *auth_store_find_userhash(const struct auth_store *s, const uint8_t hash[32]);

/*
 * The key for a username under the given algorithm: a static user, else a
 * REST credential valid at `now` (unix seconds) under any configured secret.
 * For REST usernames several secrets may match; keys[] receives up to
 * max_keys candidates (the caller tries each against MESSAGE-INTEGRITY).
 * Returns the number of candidate keys (>0), AUTH_ERR_STALE for an expired
 * REST username, or AUTH_ERR_UNKNOWN.
 */
int auth_store_keys(const struct auth_store *s, const char *user, size_t len, enum auth_alg alg,
                    uint64_t now, uint8_t keys[][32], size_t max_keys);

/*
 * The stores of every realm of a configuration, by realm index (0 the
 * default realm, then realms[] in order: conf_realm_get), and the RFC 7635
 * keys (oauth.keys). Owns store[] and oauth[]; read-only after init like
 * the stores themselves.
 */
struct auth_realms {
    struct auth_store *store;
    size_t n;
    struct oauth_key *oauth;
    size_t n_oauth;
};

int auth_realms_init(struct auth_realms *a, const struct conf *c);
void auth_realms_free(struct auth_realms *a);
/* The store of realm index realm; NULL for a realm the configuration does
 * not have (one that only Redis knows). */
const struct auth_store *auth_realms_store(const struct auth_realms *a, size_t realm);
/* The configured AS-RS key of kid, or NULL. */
const struct oauth_key *auth_realms_oauth(const struct auth_realms *a, const char *kid,
                                          size_t len);

#endif
