/*
 * oauth.c - RFC 7635 AS-RS keys kept in Redis (cluster.h), in coturn's
 * layout: the hash turn/oauth/kid/<kid> with ikm_key (base64), as_rs_alg
 * ("A256GCM" when absent, as coturn's schema documents), timestamp,
 * lifetime and realm. Answers are cached per worker for auth.cache_ttl
 * seconds, absent kids too, so a client that keeps presenting an unknown
 * kid costs Redis one read per TTL. A hash that does not make a usable key
 * (bad base64, unknown algorithm) is treated as absent, and logged each
 * time a worker reads it (once per TTL and worker at most).
 */
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cluster/cluster_int.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/stats.h"

static struct cluster_oauth_entry *oauth_slot(struct cluster *c, const char *kid, size_t len)
{
    return &c->oauth[cluster_hash(kid, len) % CLUSTER_OAUTH_SLOTS];
}

void cluster_oauth_cached(struct cluster *c, const char *kid, size_t len,
                          struct cluster_oauth *out)
{
    out->status = CLUSTER_KEYS_UNKNOWN;
    if (len == 0 || len >= sizeof out->key.kid)
        return;
    const struct cluster_oauth_entry *e = oauth_slot(c, kid, len);
    if (e->expires_ms > clock_mono_ms() && strlen(e->key.kid) == len &&
        memcmp(e->key.kid, kid, len) == 0) {
        if (e->found) {
            out->status = CLUSTER_KEYS_FOUND;
            out->key = e->key;
        }
        return;
    }
    out->status = cluster_up(c) ? CLUSTER_KEYS_MISS : CLUSTER_KEYS_FAILED;
}

static void oauth_answer(struct cluster_ask *q)
{
    struct cluster *c = q->c;
    if (!q->failed) {
        struct cluster_oauth_entry *e = oauth_slot(c, q->user, q->user_len);
        OPENSSL_cleanse(e, sizeof *e);
        e->expires_ms = clock_mono_ms() + (uint64_t)c->env.conf->cache_ttl * 1000u;
        e->found = q->oauth_found;
        if (q->oauth_found)
            e->key = q->oauth;
        memcpy(e->key.kid, q->user, q->user_len);
        e->key.kid[q->user_len] = 0;
    }
    if (!q->cancelled && q->oauth_done) {
        struct cluster_oauth o = { .status = q->failed        ? CLUSTER_KEYS_FAILED
                                             : q->oauth_found ? CLUSTER_KEYS_FOUND
                                                              : CLUSTER_KEYS_UNKNOWN };
        if (q->oauth_found)
            o.key = q->oauth;
        q->oauth_done(q->arg, &o);
    }
    OPENSSL_cleanse(&q->oauth, sizeof q->oauth);
}

/* A field's value of an HGETALL reply, NUL-terminated into out; false if
 * absent or too long. */
static bool hash_field(const struct redisReply *r, const char *name, char *out, size_t cap)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const struct redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            strlen(name) != (size_t)k->len || memcmp(k->str, name, (size_t)k->len) != 0)
            continue;
        if ((size_t)v->len >= cap)
            return false;
        memcpy(out, v->str, (size_t)v->len);
        out[v->len] = 0;
        return true;
    }
    return false;
}

static void on_oauth(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        q->failed = true;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        char ikm[CONF_STR], alg[16] = "", ts[24] = "0", life[16] = "0", realm[256] = "";
        char kid[128];
        memcpy(kid, q->user, q->user_len);
        kid[q->user_len] = 0;
        hash_field(r, "as_rs_alg", alg, sizeof alg);
        hash_field(r, "timestamp", ts, sizeof ts);
        hash_field(r, "lifetime", life, sizeof life);
        hash_field(r, "realm", realm, sizeof realm);
        q->oauth_found = hash_field(r, "ikm_key", ikm, sizeof ikm) &&
                         oauth_key_init(&q->oauth, kid, ikm, alg, strtoull(ts, NULL, 10),
                                        (uint32_t)strtoul(life, NULL, 10), realm) == 0;
        if (!q->oauth_found)
            log_warn("redis: turn/oauth/kid/%s does not make a key (ikm_key base64 of 16 or "
                     "32 bytes, as_rs_alg A128GCM or A256GCM); the kid is refused",
                     kid);
        OPENSSL_cleanse(ikm, sizeof ikm);
    }
    cluster_ask_reply_done(q);
}

struct cluster_ask *cluster_oauth_ask(struct cluster *c, const char *kid, size_t len,
                                      cluster_oauth_fn done, void *arg)
{
    if (len == 0 || len >= sizeof ((struct oauth_key *)0)->kid)
        return NULL;
    struct cluster_ask *q = cluster_ask_new(c, oauth_answer, kid, len);
    if (!q)
        return NULL;
    stats_add(&c->env.stats->redis_lookups, 1);
    char key[16 + 128];
    memcpy(key, "turn/oauth/kid/", 15);
    memcpy(key + 15, kid, len);
    const char *argv[] = { "HGETALL", key };
    size_t lens[] = { 7, 15 + len };
    if (cluster_ask_send(q, on_oauth, 2, argv, lens) < 0)
        return NULL;
    q->oauth_done = done;
    q->arg = arg;
    return q;
}
