/*
 * creds.c - credentials in Redis (cluster.h): the per-worker cache and the
 * questions that fill it.
 *
 * The cache is direct-mapped by a hash of the realm and user name (bounded
 * memory, a collision simply evicts); entries live auth.cache_ttl seconds,
 * so a user or secret deleted in Redis stops working within that time.
 * Redis's REST secrets are cached per realm beside the users. Keys are
 * derived with the realm's name, so a user of one realm never
 * authenticates in another.
 */
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cluster/cluster_int.h"
#include "server/core/clock.h"
#include "server/core/stats.h"

uint32_t cluster_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct cluster_cache_entry *cache_slot(struct cluster *c, unsigned realm, const char *user,
                                              size_t len)
{
    return &c->cache[(cluster_hash(user, len) + realm * 2654435761u) % CLUSTER_CACHE_SLOTS];
}

static const char *realm_name(const struct cluster *c, unsigned realm)
{
    return c->env.realms->r[realm].name;
}

void cluster_cache_clear(struct cluster *c)
{
    memset(c->cache, 0, sizeof c->cache);
    memset(c->origins, 0, sizeof c->origins);
    OPENSSL_cleanse(c->oauth, sizeof c->oauth);
    for (size_t i = 0; i < REALM_MAX; i++) {
        free(c->secrets[i]);
        c->secrets[i] = NULL;
    }
}

static bool key_from_hex(const char *hex, struct cluster_cache_entry *e)
{
    uint8_t key[32];
    size_t len;
    if (conf_parse_hex_key(hex, key, &len) < 0)
        return false;
    if (len == 16) {
        memcpy(e->md5, key, 16);
        e->has_md5 = true;
    } else {
        memcpy(e->sha256, key, 32);
        e->has_sha256 = true;
    }
    return true;
}

/* The user's keys from what Redis returned for q (not the cache). */
static void entry_from_answer(const struct cluster *c, const struct cluster_ask *q,
                              struct cluster_cache_entry *e)
{
    memset(e, 0, sizeof *e);
    const char *realm = realm_name(c, q->realm);
    e->realm = (uint8_t)q->realm;
    if (q->has_key && key_from_hex(q->key_hex, e)) {
        /* a key wins over a password, as in coturn */
    } else if (q->has_password) {
        e->has_md5 = auth_key_md5(q->user, q->user_len, realm, q->password, e->md5) == 0;
        e->has_sha256 =
            auth_key_sha256(q->user, q->user_len, realm, q->password, e->sha256) == 0;
    }
    e->negative = !e->has_md5 && !e->has_sha256;
}

static int keys_from_entry(const struct cluster_cache_entry *e, enum auth_alg alg,
                           uint8_t keys[][32])
{
    if (alg == AUTH_ALG_SHA256 && e->has_sha256) {
        memcpy(keys[0], e->sha256, 32);
        return 1;
    }
    if (alg == AUTH_ALG_MD5 && e->has_md5) {
        memset(keys[0], 0, 32);
        memcpy(keys[0], e->md5, 16);
        return 1;
    }
    return 0;
}

/* REST credentials under secrets[]: one candidate key per secret. */
static int keys_from_secrets(const struct cluster *c, unsigned realm_idx,
                             const char secrets[][CONF_STR], size_t n_secrets, const char *user,
                             size_t len, enum auth_alg alg, uint8_t keys[][32])
{
    int n = 0;
    const char *realm = realm_name(c, realm_idx);
    for (size_t i = 0; i < n_secrets && n < CLUSTER_MAX_KEYS; i++) {
        char pw[64];
        if (auth_rest_password(secrets[i], user, len, pw, sizeof pw) < 0)
            continue;
        memset(keys[n], 0, 32);
        int rc = alg == AUTH_ALG_SHA256 ? auth_key_sha256(user, len, realm, pw, keys[n])
                                        : auth_key_md5(user, len, realm, pw, keys[n]);
        if (rc == 0)
            n++;
    }
    return n;
}

void cluster_keys_cached(struct cluster *c, unsigned realm, const char *user, size_t len,
                         enum auth_alg alg, uint64_t now, struct cluster_keys *out)
{
    out->n = 0;
    uint64_t expiry;
    bool rest = auth_rest_expiry(user, len, &expiry) == 0;
    uint64_t ms = clock_mono_ms();
    const struct cluster_cache_entry *e = cache_slot(c, realm, user, len);
    const struct cluster_secrets *sec = c->secrets[realm];
    bool cached = e->expires_ms > ms && e->realm == realm && e->user_len == len &&
                  memcmp(e->user, user, len) == 0;
    out->status = CLUSTER_KEYS_UNKNOWN;
    if (cached && !e->negative) {
        out->n = keys_from_entry(e, alg, out->key);
        if (out->n > 0)
            out->status = CLUSTER_KEYS_FOUND;
        return;
    }
    if (cached && !rest)
        return;
    if (cached && rest && sec && sec->expires_ms > ms) {
        if (expiry < now) {
            out->status = CLUSTER_KEYS_STALE;
            return;
        }
        out->n = keys_from_secrets(c, realm, (const char (*)[CONF_STR])sec->s, sec->n, user,
                                   len, alg, out->key);
        if (out->n > 0)
            out->status = CLUSTER_KEYS_FOUND;
        return;
    }
    out->status = cluster_up(c) ? CLUSTER_KEYS_MISS : CLUSTER_KEYS_FAILED;
}

/* Deliver a keys question's answer, and cache what Redis said. */
static void creds_answer(struct cluster_ask *q)
{
    struct cluster *c = q->c;
    uint64_t ttl = (uint64_t)c->env.conf->cache_ttl * 1000u;
    struct cluster_cache_entry e;
    entry_from_answer(c, q, &e);
    if (!q->failed) {
        struct cluster_secrets **sec = &c->secrets[q->realm];
        if (q->want_secrets && (*sec || (*sec = malloc(sizeof **sec)))) {
            memcpy((*sec)->s, q->secrets, sizeof (*sec)->s);
            (*sec)->n = q->n_secrets;
            (*sec)->expires_ms = clock_mono_ms() + ttl;
        }
        if (q->user_len < CLUSTER_CACHE_USER) {
            struct cluster_cache_entry *slot = cache_slot(c, q->realm, q->user, q->user_len);
            *slot = e;
            memcpy(slot->user, q->user, q->user_len);
            slot->user_len = (uint16_t)q->user_len;
            slot->expires_ms = clock_mono_ms() + ttl;
        }
    }
    if (q->cancelled || !q->keys_done)
        return;
    struct cluster_keys k = { .status = CLUSTER_KEYS_UNKNOWN };
    uint64_t expiry;
    bool rest = auth_rest_expiry(q->user, q->user_len, &expiry) == 0;
    if (q->failed)
        k.status = CLUSTER_KEYS_FAILED;
    else if ((k.n = keys_from_entry(&e, q->alg, k.key)) > 0)
        k.status = CLUSTER_KEYS_FOUND;
    else if (rest && expiry < q->now)
        k.status = CLUSTER_KEYS_STALE;
    else if (rest && (k.n = keys_from_secrets(c, q->realm, (const char (*)[CONF_STR])q->secrets,
                                              q->n_secrets, q->user, q->user_len, q->alg,
                                              k.key)) > 0)
        k.status = CLUSTER_KEYS_FOUND;
    q->keys_done(q->arg, &k);
}

static void on_string(struct redisReply *r, struct cluster_ask *q, bool *has, char *out,
                      size_t cap)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        q->failed = true;
    } else if (r->type == REDIS_REPLY_STRING && r->len > 0 && (size_t)r->len < cap) {
        memcpy(out, r->str, (size_t)r->len);
        out[r->len] = 0;
        *has = true;
    }
    cluster_ask_reply_done(q);
}

static void on_key(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    on_string(r, q, &q->has_key, q->key_hex, sizeof q->key_hex);
}

static void on_password(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    on_string(r, q, &q->has_password, q->password, sizeof q->password);
}

static void on_secrets(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        q->failed = true;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && q->n_secrets < CONF_MAX_SECRETS; i++) {
            struct redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && e->len > 0 && (size_t)e->len < CONF_STR) {
                memcpy(q->secrets[q->n_secrets], e->str, (size_t)e->len);
                q->secrets[q->n_secrets++][e->len] = 0;
            }
        }
    }
    cluster_ask_reply_done(q);
}

static int ask(struct cluster_ask *q, redis_reply_fn fn, const char *cmd, const char *key,
               size_t key_len)
{
    const char *argv[2] = { cmd, key };
    size_t lens[2] = { strlen(cmd), key_len };
    if (redis_conn_command(q->c->redis, fn, q, 2, argv, lens) < 0)
        return -1;
    q->waiting++;
    return 0;
}

struct cluster_ask *cluster_keys_ask(struct cluster *c, unsigned realm, const char *user,
                                     size_t len, enum auth_alg alg, uint64_t now,
                                     cluster_keys_fn done, void *arg)
{
    struct cluster_ask *q = cluster_ask_new(c, creds_answer, user, len);
    if (!q)
        return NULL;
    q->realm = realm;
    q->alg = alg;
    q->now = now;
    uint64_t expiry;
    q->want_secrets = auth_rest_expiry(user, len, &expiry) == 0;
    stats_add(&c->env.stats->redis_lookups, 1);
    /* The key names hold the raw user name as one argument: no quoting, no
     * injection, whatever bytes it contains. */
    char key[64 + CONF_STR + AUTH_MAX_USERNAME];
    size_t base = (size_t)snprintf(key, sizeof key, "turn/realm/%s/user/", realm_name(c, realm));
    memcpy(key + base, user, len);
    q->waiting = 1; /* held until every command is queued */
    int rc = 0;
    memcpy(key + base + len, "/key", 4);
    rc |= ask(q, on_key, "GET", key, base + len + 4);
    memcpy(key + base + len, "/password", 9);
    rc |= ask(q, on_password, "GET", key, base + len + 9);
    if (q->want_secrets) {
        int n = snprintf(key, sizeof key, "turn/realm/%s/secret", realm_name(c, realm));
        rc |= ask(q, on_secrets, "SMEMBERS", key, (size_t)n);
    }
    if (rc < 0) {
        /* Some commands may be out: they free q when they come back. */
        q->failed = true;
        q->cancelled = true;
        cluster_ask_reply_done(q);
        return NULL;
    }
    q->keys_done = done;
    q->arg = arg;
    cluster_ask_reply_done(q); /* drops the hold; replies cannot have come yet */
    return q;
}
