/*
 * turn_auth.c - long-term authentication of TURN requests (RFC 8489 section
 * 9.2.4), and the answers to requests that did not authenticate.
 *
 * Everything happens in the request's realm (turn_realm.c). Keys are tried
 * source by source, first match wins: the realm's static users and REST
 * secrets from the configuration (auth/), then what Redis holds (cluster/):
 * the cache, or a question that parks the request. A credential that fails
 * against the configuration goes on to Redis, so a REST credential signed
 * with a secret kept only in Redis authenticates although auth.secrets also
 * holds one, and a user name the configuration does not know is looked up.
 *
 * Answers to requests that did not authenticate are bounded three ways: per
 * source (rate.h), per worker in answers and bytes per second (rate.h), and
 * in size: never more than TURN_UNAUTH_GROWTH bytes longer than the request
 * (SOFTWARE is left out rather than break it), the amplification bound that
 * Binding answers keep too.
 */
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "server/core/clock.h"
#include "server/core/stats.h"
#include "server/turn/turn_int.h"

#define TURN_UNAUTH_GROWTH 128

/* The PASSWORD-ALGORITHMS we offer, SHA-256 first (RFC 8489 section 18.5). */
static const uint8_t offered_algs[] = { 0x00, AUTH_ALG_SHA256, 0, 0, 0x00, AUTH_ALG_MD5, 0, 0 };

/* Try each candidate key on m's integrity; 0 (au->key set) or 401. */
static int try_keys(const struct stun_msg *m, uint8_t keys[][32], int n, struct turn_auth *au)
{
    for (int i = 0; i < n; i++) {
        int rc = au->sha256 ? stun_msg_check_integrity_sha256(m, keys[i], au->key_len)
                            : stun_msg_check_integrity(m, keys[i], au->key_len);
        if (rc == 0) {
            memcpy(au->key, keys[i], au->key_len);
            return 0;
        }
    }
    return 401;
}

/* The attributes of a request with credentials: 0 (au's user, alg, sha256
 * and key_len set) or the error code. */
static int auth_parse(struct turn *t, const struct stun_msg *m, const struct sockaddr *client,
                      bool any_realm, struct turn_auth *au)
{
    const struct realm *r = turn_realm(t, au->realm);
    const struct auth_store *store = auth_realms_store(t->env.auth, au->realm);
    if (m->integrity < 0 && m->integrity256 < 0)
        return 401;
    const struct stun_attr *un = stun_attr_find(m, STUN_ATTR_USERNAME);
    const struct stun_attr *uh = stun_attr_find(m, STUN_ATTR_USERHASH);
    const struct stun_attr *realm = stun_attr_find(m, STUN_ATTR_REALM);
    const struct stun_attr *nonce = stun_attr_find(m, STUN_ATTR_NONCE);
    if ((!un && !uh) || !realm || !nonce)
        return 400;
    if (!any_realm && (realm->len != r->len || memcmp(m->buf + realm->off, r->name, realm->len) != 0))
        return 401;
    if (auth_nonce_check(t->env.nonce_key, client, (const char *)m->buf + nonce->off, nonce->len,
                         (uint64_t)time(NULL)) < 0)
        return 438; /* stale or not ours: either way, here is a fresh one */

    au->alg = AUTH_ALG_MD5;
    const struct stun_attr *pa = stun_attr_find(m, STUN_ATTR_PASSWORD_ALGORITHM);
    if (pa) {
        /* RFC 8489 section 9.2.4: the algorithm must come with the list we
         * offered, unchanged (downgrade protection). */
        const struct stun_attr *pas = stun_attr_find(m, STUN_ATTR_PASSWORD_ALGORITHMS);
        if (!pas || pas->len != sizeof offered_algs ||
            memcmp(m->buf + pas->off, offered_algs, sizeof offered_algs) != 0 || pa->len < 4)
            return 400;
        unsigned alg = ((unsigned)m->buf[pa->off] << 8) | m->buf[pa->off + 1];
        if (alg != AUTH_ALG_MD5 && alg != AUTH_ALG_SHA256)
            return 400;
        au->alg = (enum auth_alg)alg;
    }
    if (un) {
        au->user = (const char *)m->buf + un->off;
        au->user_len = un->len;
    } else {
        if (uh->len != 32)
            return 400;
        const struct auth_user *u = store ? auth_store_find_userhash(store, m->buf + uh->off) : NULL;
        if (!u)
            return 401;
        au->user = u->name;
        au->user_len = u->name_len;
    }
    au->key_len = au->alg == AUTH_ALG_SHA256 ? AUTH_SHA256_KEY_LEN : AUTH_MD5_KEY_LEN;
    au->sha256 = m->integrity256 >= 0;
    return 0;
}

enum turn_auth_step turn_authenticate(struct turn *t, const struct stun_msg *m,
                                      const struct sockaddr *client, const struct alloc *a,
                                      struct turn_auth *au, int *code)
{
    /* A token, not the realm, decides the key (RFC 7635), and a kid may
     * have moved the allocation into another realm than the challenge's. */
    bool token = turn_oauth_on(t) && stun_attr_find(m, STUN_ATTR_ACCESS_TOKEN);
    if ((*code = auth_parse(t, m, client, token || (a && a->oauth), au)) != 0)
        return TURN_AUTH_ERROR;
    if (token)
        return turn_oauth_authenticate(t, m, au, code);
    /* coturn's clients sign later requests with the last token's key,
     * under the last token's kid: the key is the proof, not the name */
    if (a && a->oauth) {
        *code = turn_oauth_with_alloc(m, a, au);
        return *code ? TURN_AUTH_ERROR : TURN_AUTH_OK;
    }
    uint64_t now = (uint64_t)time(NULL);
    uint8_t keys[CLUSTER_MAX_KEYS][32];
    const struct auth_store *store = auth_realms_store(t->env.auth, au->realm);
    /* a realm only Redis knows has no static users or secrets */
    int n = store ? auth_store_keys(store, au->user, au->user_len, au->alg, now, keys,
                                    CLUSTER_MAX_KEYS)
                  : AUTH_ERR_UNKNOWN;
    *code = 401;
    if (n == AUTH_ERR_STALE)
        return TURN_AUTH_ERROR; /* an expired REST user name, whatever signed it */
    if (n > 0 && try_keys(m, keys, n, au) == 0)
        return TURN_AUTH_OK;
    if (!t->env.cluster)
        return TURN_AUTH_ERROR;
    struct cluster_keys k;
    cluster_keys_cached(t->env.cluster, au->realm, au->user, au->user_len, au->alg, now, &k);
    if (k.status == CLUSTER_KEYS_MISS)
        return TURN_AUTH_ASK;
    if (k.status == CLUSTER_KEYS_FAILED && n > 0)
        return TURN_AUTH_ERROR; /* the configuration's answer stands */
    *code = turn_auth_with_keys(t, m, &k, au);
    return *code ? TURN_AUTH_ERROR : TURN_AUTH_OK;
}

int turn_auth_with_keys(struct turn *t, const struct stun_msg *m, const struct cluster_keys *k,
                        struct turn_auth *au)
{
    (void)t;
    if (k->status == CLUSTER_KEYS_FAILED)
        return 500;
    if (k->status != CLUSTER_KEYS_FOUND)
        return 401;
    uint8_t keys[CLUSTER_MAX_KEYS][32];
    memcpy(keys, k->key, sizeof keys);
    return try_keys(m, keys, k->n, au);
}

/* SOFTWARE if it fits, FINGERPRINT if asked for; 0 if the answer would
 * break the size bound. */
static size_t unauth_finish(const struct turn *t, struct stun_enc *e, const struct stun_msg *m)
{
    const struct conf *c = t->env.conf;
    size_t limit = m->len + TURN_UNAUTH_GROWTH;
    size_t fp = m->fingerprint >= 0 ? 8 : 0;
    size_t sw_len = strlen(c->software);
    if (sw_len && e->len + 4 + ((sw_len + 3) & ~(size_t)3) + fp <= limit)
        stun_enc_add(e, STUN_ATTR_SOFTWARE, c->software, sw_len);
    if (fp && stun_enc_add_fingerprint(e) < 0)
        return 0;
    return e->len <= limit ? e->len : 0;
}

/* Per-source allowance, before building an answer. */
static bool unauth_allowed(struct turn *t, const struct sockaddr *client)
{
    if (rate_take_source(t->rate, client, clock_mono_ms()))
        return true;
    stats_add(&t->env.stats->drops[STATS_DROP_RATE_LIMIT], 1);
    return false;
}

/* The worker's budget and the size bound, once the answer is built; the
 * request is counted only if it is answered. */
static size_t unauth_send(struct turn *t, const struct stun_msg *m, unsigned realm, int code,
                          size_t len)
{
    if (!len || !rate_take_budget(t->rate, len, clock_mono_ms())) {
        stats_add(&t->env.stats->drops[STATS_DROP_UNAUTH_BUDGET], 1);
        return 0;
    }
    stats_request(t->env.stats, turn_realm_stats(t, realm), m->method, code);
    return len;
}

size_t turn_reply_challenge(struct turn *t, const struct stun_msg *m, int code, unsigned realm,
                            const struct sockaddr *client, uint8_t *out, size_t cap)
{
    if (!unauth_allowed(t, client))
        return 0;
    const struct conf *c = t->env.conf;
    const struct realm *r = turn_realm(t, realm);
    char nonce[AUTH_NONCE_LEN + 1];
    auth_nonce_make(t->env.nonce_key, client, (uint64_t)time(NULL) + c->nonce_lifetime, nonce);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0 ||
        stun_enc_add(&e, STUN_ATTR_REALM, r->name, r->len) < 0 ||
        stun_enc_add(&e, STUN_ATTR_NONCE, nonce, AUTH_NONCE_LEN) < 0 ||
        stun_enc_add(&e, STUN_ATTR_PASSWORD_ALGORITHMS, offered_algs, sizeof offered_algs) < 0)
        return 0;
    if (turn_oauth_on(t)) {
        /* RFC 7635 section 6.1; conf bounds it to fit any Allocate's
         * challenge, and a smaller request goes without rather than
         * break the size bound */
        size_t sn_len;
        const char *sn = turn_oauth_server_name(t, realm, &sn_len);
        size_t need = 4 + ((sn_len + 3) & ~(size_t)3) + (m->fingerprint >= 0 ? 8 : 0);
        if (e.len + need <= m->len + TURN_UNAUTH_GROWTH)
            stun_enc_add(&e, STUN_ATTR_THIRD_PARTY_AUTHORIZATION, sn, sn_len);
    }
    return unauth_send(t, m, realm, code, unauth_finish(t, &e, m));
}

size_t turn_unauth_error(struct turn *t, const struct stun_msg *m, unsigned realm,
                         const struct sockaddr *client, int code, uint8_t *out, size_t cap)
{
    if (!unauth_allowed(t, client))
        return 0;
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (code == 420 && stun_enc_add_unknown(&e, m->unknown, m->n_unknown) < 0)
        return 0;
    return unauth_send(t, m, realm, code, unauth_finish(t, &e, m));
}

/* Is au the owner of a (RFC 8656 section 5: same user; and here the same
 * realm, where the same name is another user)? An allocation made with an
 * RFC 7635 token belongs to whoever holds a valid token or its key
 * (turn_oauth.c), and takes the newest key. */
bool turn_owner_ok(struct alloc *a, const struct realm *r, const struct turn_auth *au)
{
    if (a->oauth && au->oauth) {
        memcpy(a->key, au->key, au->key_len);
        a->key_len = (uint8_t)au->key_len;
        a->token_end = (uint64_t)time(NULL) + au->token_left;
        return true;
    }
    return !a->oauth && !au->oauth && a->user_len == au->user_len &&
           memcmp(a->user, au->user, au->user_len) == 0 && a->realm_len == r->len &&
           memcmp(a->realm_name, r->name, r->len) == 0;
}
