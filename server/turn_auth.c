/*
 * turn_auth.c - long-term authentication of TURN requests (RFC 8489 section
 * 9.2.4) and the rate limit on answers to requests that did not
 * authenticate: a per-source-IP token bucket in a fixed direct-mapped table,
 * so a flood of bad credentials costs a hash and a compare per packet and
 * gets silence once its bucket is dry.
 */
#include <string.h>
#include <time.h>

#include "server/clock.h"
#include "server/creds.h"
#include "server/log.h"
#include "server/net.h"
#include "server/server.h"
#include "server/turn_int.h"

#define RATE_BURST_FACTOR 2

static uint32_t ip_hash(const struct sockaddr *sa)
{
    const uint8_t *p;
    size_t n;
    if (sa->sa_family == AF_INET6) {
        p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        n = 16;
    } else {
        p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h | 1;
}

/* May this source get one more unauthenticated answer? */
bool turn_rate_take(struct worker *w, const struct sockaddr *client)
{
    unsigned rate = w->conf->unauth_rate;
    if (!rate)
        return true;
    uint32_t h = ip_hash(client);
    typeof(w->turn->rate[0]) *r = &w->turn->rate[h % TURN_RATE_SLOTS];
    uint64_t now = clock_mono_ms();
    uint32_t burst = rate * RATE_BURST_FACTOR;
    if (r->ip_hash != h) {
        r->ip_hash = h;
        r->tokens = burst;
        r->at_ms = now;
    }
    uint64_t add = (now - r->at_ms) * rate / 1000u;
    if (add) {
        r->tokens = r->tokens + add > burst ? burst : (uint32_t)(r->tokens + add);
        r->at_ms = now;
    }
    if (!r->tokens)
        return false;
    r->tokens--;
    return true;
}

/* 401 or 438: a fresh nonce and the realm (RFC 8489 section 9.2.4). */
size_t turn_reply_challenge(const struct turn_client *tc, const struct stun_msg *m, int code,
                              const struct sockaddr *client, uint8_t *out, size_t cap)
{
    struct worker *w = tc->w;
    if (!turn_rate_take(w, client)) {
        stats_add(&w->stats.drops[STATS_DROP_RATE_LIMIT], 1);
        return 0;
    }
    stats_request(&w->stats, m->method, code);
    char nonce[AUTH_NONCE_LEN + 1];
    auth_nonce_make(w->srv->nonce_key, client, (uint64_t)time(NULL) + w->conf->nonce_lifetime,
                    nonce);
    static const uint8_t algs[] = { 0x00, AUTH_ALG_SHA256, 0, 0, 0x00, AUTH_ALG_MD5, 0, 0 };
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0 ||
        stun_enc_add(&e, STUN_ATTR_REALM, w->conf->realm, strlen(w->conf->realm)) < 0 ||
        stun_enc_add(&e, STUN_ATTR_NONCE, nonce, AUTH_NONCE_LEN) < 0 ||
        stun_enc_add(&e, STUN_ATTR_PASSWORD_ALGORITHMS, algs, sizeof algs) < 0)
        return 0;
    return turn_enc_finish(tc, &e, m, NULL);
}

/* 0 authenticated (au filled); otherwise the negative of the error code to
 * answer with (401, 438, 400). */
int turn_authenticate(const struct turn_client *tc, const struct stun_msg *m,
                        const struct sockaddr *client, struct turn_auth *au)
{
    struct worker *w = tc->w;
    const struct auth_store *store = &w->srv->auth;
    if (m->integrity < 0 && m->integrity256 < 0)
        return -401;
    const struct stun_attr *un = stun_attr_find(m, STUN_ATTR_USERNAME);
    const struct stun_attr *uh = stun_attr_find(m, STUN_ATTR_USERHASH);
    const struct stun_attr *realm = stun_attr_find(m, STUN_ATTR_REALM);
    const struct stun_attr *nonce = stun_attr_find(m, STUN_ATTR_NONCE);
    if ((!un && !uh) || !realm || !nonce)
        return -400;
    if (realm->len != strlen(w->conf->realm) ||
        memcmp(m->buf + realm->off, w->conf->realm, realm->len) != 0)
        return -401;
    int nrc = auth_nonce_check(w->srv->nonce_key, client, (const char *)m->buf + nonce->off,
                               nonce->len, (uint64_t)time(NULL));
    if (nrc < 0)
        return -438; /* stale or not ours: either way, here is a fresh one */

    au->alg = AUTH_ALG_MD5;
    const struct stun_attr *pa = stun_attr_find(m, STUN_ATTR_PASSWORD_ALGORITHM);
    if (pa) {
        /* RFC 8489 section 9.2.4: the algorithm must come with the list we
         * offered, unchanged (downgrade protection). */
        static const uint8_t algs[] = { 0x00, AUTH_ALG_SHA256, 0, 0, 0x00, AUTH_ALG_MD5, 0, 0 };
        const struct stun_attr *pas = stun_attr_find(m, STUN_ATTR_PASSWORD_ALGORITHMS);
        if (!pas || pas->len != sizeof algs || memcmp(m->buf + pas->off, algs, sizeof algs) != 0 ||
            pa->len < 4)
            return -400;
        unsigned alg = ((unsigned)m->buf[pa->off] << 8) | m->buf[pa->off + 1];
        if (alg != AUTH_ALG_MD5 && alg != AUTH_ALG_SHA256)
            return -400;
        au->alg = (enum auth_alg)alg;
    }
    if (un) {
        au->user = (const char *)m->buf + un->off;
        au->user_len = un->len;
    } else {
        if (uh->len != 32)
            return -400;
        const struct auth_user *u = auth_store_find_userhash(store, m->buf + uh->off);
        if (!u)
            return -401;
        au->user = u->name;
        au->user_len = u->name_len;
    }
    uint8_t keys[4][32];
    int n;
    enum creds_result cr = creds_lookup(w, au->user, au->user_len, au->alg, (uint64_t)time(NULL),
                                        keys, 4, &n);
    if (cr == CREDS_PENDING)
        return TURN_PARK;
    if (cr == CREDS_UNAVAILABLE)
        return -500;
    if (cr != CREDS_FOUND)
        return -401;
    au->key_len = au->alg == AUTH_ALG_SHA256 ? AUTH_SHA256_KEY_LEN : AUTH_MD5_KEY_LEN;
    au->sha256 = m->integrity256 >= 0;
    for (int i = 0; i < n; i++) {
        int rc = au->sha256 ? stun_msg_check_integrity_sha256(m, keys[i], au->key_len)
                            : stun_msg_check_integrity(m, keys[i], au->key_len);
        if (rc == 0) {
            memcpy(au->key, keys[i], au->key_len);
            return 0;
        }
    }
    return -401;
}

/* An error to a request that did not authenticate: rate limited. */
size_t turn_unauth_error(const struct turn_client *tc, const struct stun_msg *m,
                           const struct sockaddr *client, int code, uint8_t *out, size_t cap)
{
    if (!turn_rate_take(tc->w, client)) {
        stats_add(&tc->w->stats.drops[STATS_DROP_RATE_LIMIT], 1);
        return 0;
    }
    return turn_reply_error(tc, m, code, NULL, out, cap);
}
