/*
 * auth_store.c - the static user store and key lookup for long-term
 * credentials (RFC 8489 section 9.2) and TURN REST API usernames.
 *
 * Design: built once from the configuration, read-only afterwards, so every
 * worker thread reads it without locks. Keys are precomputed at init
 * (RFC 8489 section 9.2.2 lets a server store the key instead of the
 * password), so a request costs one hash-table probe, not a digest. Two
 * open-addressing tables (linear probing, FNV-1a, power-of-two size at
 * least twice the user count so probes stay short) index the users by name
 * and by USERHASH (RFC 8489 section 14.4). A slot holds index+1; 0 is empty.
 * auth_store_init is the only function that allocates.
 *
 * REST usernames ("<expiry>[:<name>]") are not stored: their password is
 * derived from each configured secret at request time, and every secret
 * yields a candidate key for the caller to try, so secrets can be rotated
 * without a flag day.
 */
#include "auth/auth.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_MIN_SLOTS 16
/* HMAC-SHA1 base64 (28) + NUL. */
#define AUTH_REST_PW_CAP 32

/* 32-bit FNV-1a: a fast, well-spread hash for short keys. */
static uint32_t auth_fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

static void auth_store_insert(uint32_t *table, size_t n_slots, uint32_t h, uint32_t idx)
{
    size_t mask = n_slots - 1;
    size_t i = h & mask;
    while (table[i] != 0)
        i = (i + 1) & mask;
    table[i] = idx + 1;
}

/* Fill u from a configured user; 0 or a negative enum auth_err. */
static int auth_user_init(struct auth_user *u, const struct conf_user *cu, const char *realm)
{
    size_t len = strnlen(cu->user, CONF_STR - 1);
    memcpy(u->name, cu->user, len);
    u->name[len] = '\0';
    u->name_len = len;
    if (cu->key_len == AUTH_MD5_KEY_LEN) {
        memcpy(u->md5, cu->key, AUTH_MD5_KEY_LEN);
        u->has_md5 = true;
    } else if (cu->key_len == AUTH_SHA256_KEY_LEN) {
        memcpy(u->sha256, cu->key, AUTH_SHA256_KEY_LEN);
        u->has_sha256 = true;
    } else {
        /* A password gives both keys: the client picks the algorithm
         * (RFC 8489 section 9.2.4). */
        int r = auth_key_md5(u->name, len, realm, cu->password, u->md5);
        if (r < 0)
            return r;
        r = auth_key_sha256(u->name, len, realm, cu->password, u->sha256);
        if (r < 0)
            return r;
        u->has_md5 = u->has_sha256 = true;
    }
    auth_userhash(u->name, len, realm, u->userhash);
    return 0;
}

int auth_store_init(struct auth_store *s, const struct conf *c)
{
    struct conf_realm_view v;
    conf_realm_get(c, 0, &v);
    return auth_store_init_realm(s, &v);
}

int auth_store_init_realm(struct auth_store *s, const struct conf_realm_view *c)
{
    memset(s, 0, sizeof(*s));
    size_t realm_len = strnlen(c->name, CONF_STR - 1);
    memcpy(s->realm, c->name, realm_len);
    s->realm[realm_len] = '\0';
    for (size_t i = 0; i < c->n_secrets && i < CONF_MAX_SECRETS; i++) {
        size_t n = strnlen(c->secrets[i], CONF_STR - 1);
        memcpy(s->secrets[i], c->secrets[i], n);
        s->secrets[i][n] = '\0';
        s->n_secrets = i + 1;
    }

    if (c->n_users > UINT32_MAX / 4)
        return AUTH_ERR_INVALID;
    size_t slots = AUTH_MIN_SLOTS;
    while (slots < 2 * c->n_users)
        slots *= 2;
    s->n_slots = slots;
    s->by_name = calloc(slots, sizeof(*s->by_name));
    s->by_hash = calloc(slots, sizeof(*s->by_hash));
    s->users = calloc(c->n_users ? c->n_users : 1, sizeof(*s->users));
    if (!s->by_name || !s->by_hash || !s->users) {
        auth_store_free(s);
        return AUTH_ERR_INVALID;
    }
    for (size_t i = 0; i < c->n_users; i++) {
        struct auth_user *u = &s->users[s->n_users];
        int r = auth_user_init(u, &c->users[i], s->realm);
        if (r < 0) {
            auth_store_free(s);
            return r;
        }
        /* Duplicate names: the first one wins (conf rejects them anyway). */
        if (auth_store_find(s, u->name, u->name_len)) {
            OPENSSL_cleanse(u, sizeof(*u));
            continue;
        }
        uint32_t idx = (uint32_t)s->n_users++;
        auth_store_insert(s->by_name, slots, auth_fnv1a(u->name, u->name_len), idx);
        auth_store_insert(s->by_hash, slots, auth_fnv1a(u->userhash, 32), idx);
    }
    return 0;
}

void auth_store_free(struct auth_store *s)
{
    if (s->users)
        OPENSSL_cleanse(s->users, s->n_users * sizeof(*s->users)); /* keys */
    free(s->users);
    free(s->by_name);
    free(s->by_hash);
    OPENSSL_cleanse(s->secrets, sizeof(s->secrets));
    s->users = NULL;
    s->by_name = s->by_hash = NULL;
    s->n_users = s->n_slots = s->n_secrets = 0;
}

const struct auth_user *auth_store_find(const struct auth_store *s, const char *user, size_t len)
{
    if (!s->by_name || len >= CONF_STR)
        return NULL;
    size_t mask = s->n_slots - 1;
    for (size_t i = auth_fnv1a(user, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = s->by_name[i];
        if (v == 0)
            return NULL; /* the table is never full: n_slots >= 2 * n_users */
        const struct auth_user *u = &s->users[v - 1];
        if (u->name_len == len && memcmp(u->name, user, len) == 0)
            return u;
    }
}

const struct auth_user *auth_store_find_userhash(const struct auth_store *s, const uint8_t hash[32])
{
    if (!s->by_hash)
        return NULL;
    size_t mask = s->n_slots - 1;
    for (size_t i = auth_fnv1a(hash, 32) & mask;; i = (i + 1) & mask) {
        uint32_t v = s->by_hash[i];
        if (v == 0)
            return NULL;
        const struct auth_user *u = &s->users[v - 1];
        if (memcmp(u->userhash, hash, 32) == 0)
            return u;
    }
}

int auth_store_keys(const struct auth_store *s, const char *user, size_t len, enum auth_alg alg,
                    uint64_t now, uint8_t keys[][32], size_t max_keys)
{
    if ((alg != AUTH_ALG_MD5 && alg != AUTH_ALG_SHA256) || max_keys == 0)
        return AUTH_ERR_UNKNOWN;
    const struct auth_user *u = auth_store_find(s, user, len);
    if (u) {
        if (alg == AUTH_ALG_MD5 && u->has_md5) {
            memset(keys[0], 0, 32);
            memcpy(keys[0], u->md5, AUTH_MD5_KEY_LEN);
            return 1;
        }
        if (alg == AUTH_ALG_SHA256 && u->has_sha256) {
            memcpy(keys[0], u->sha256, AUTH_SHA256_KEY_LEN);
            return 1;
        }
        return AUTH_ERR_UNKNOWN; /* a configured key of the other kind */
    }

    uint64_t expiry;
    if (s->n_secrets == 0 || auth_rest_expiry(user, len, &expiry) < 0)
        return AUTH_ERR_UNKNOWN;
    if (expiry < now)
        return AUTH_ERR_STALE;
    int n = 0;
    for (size_t i = 0; i < s->n_secrets && (size_t)n < max_keys; i++) {
        char pw[AUTH_REST_PW_CAP];
        if (auth_rest_password(s->secrets[i], user, len, pw, sizeof(pw)) < 0)
            continue;
        memset(keys[n], 0, 32);
        int r = alg == AUTH_ALG_MD5 ? auth_key_md5(user, len, s->realm, pw, keys[n])
                                    : auth_key_sha256(user, len, s->realm, pw, keys[n]);
        OPENSSL_cleanse(pw, sizeof(pw));
        if (r == 0)
            n++;
    }
    return n > 0 ? n : AUTH_ERR_UNKNOWN;
}

int auth_realms_init(struct auth_realms *a, const struct conf *c)
{
    a->n = conf_realm_count(c);
    a->store = calloc(a->n, sizeof(*a->store));
    if (!a->store) {
        a->n = 0;
        return AUTH_ERR_INVALID;
    }
    for (size_t i = 0; i < a->n; i++) {
        struct conf_realm_view v;
        conf_realm_get(c, i, &v);
        int r = auth_store_init_realm(&a->store[i], &v);
        if (r < 0) {
            a->n = i;
            auth_realms_free(a);
            return r;
        }
    }
    if (c->n_oauth_keys && !(a->oauth = calloc(c->n_oauth_keys, sizeof(*a->oauth)))) {
        auth_realms_free(a);
        return AUTH_ERR_INVALID;
    }
    for (size_t i = 0; i < c->n_oauth_keys; i++) {
        const struct conf_oauth_key *k = &c->oauth_keys[i];
        if (oauth_key_init(&a->oauth[i], k->kid, k->key, k->alg, k->timestamp, k->lifetime,
                           k->realm) < 0) {
            auth_realms_free(a);
            return AUTH_ERR_INVALID;
        }
        a->n_oauth = i + 1;
    }
    return 0;
}

const struct oauth_key *auth_realms_oauth(const struct auth_realms *a, const char *kid,
                                          size_t len)
{
    for (size_t i = 0; i < a->n_oauth; i++)
        if (strlen(a->oauth[i].kid) == len && memcmp(a->oauth[i].kid, kid, len) == 0)
            return &a->oauth[i];
    return NULL;
}

void auth_realms_free(struct auth_realms *a)
{
    for (size_t i = 0; i < a->n; i++)
        auth_store_free(&a->store[i]);
    free(a->store);
    a->store = NULL;
    a->n = 0;
    if (a->oauth)
        OPENSSL_cleanse(a->oauth, a->n_oauth * sizeof(*a->oauth));
    free(a->oauth);
    a->oauth = NULL;
    a->n_oauth = 0;
}

const struct auth_store *auth_realms_store(const struct auth_realms *a, size_t realm)
{
    return realm < a->n ? &a->store[realm] : NULL;
}
