/*
 * turn.c - see turn.h.
 *
 * Order of checks for a request (RFC 8489 section 9.2.4, RFC 8656 section 7):
 * unknown comprehension-required attributes (420), the transaction cache
 * (a retransmission gets the first answer again), authentication (401, 438,
 * 400), the allocation owner (441), then the method. Answers to
 * unauthenticated requests draw on a per-source-IP token bucket, so a flood
 * of bad credentials costs little and gets silence once the bucket is dry;
 * no relay port is opened before a request has authenticated.
 */
#include "server/turn.h"

#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "server/creds.h"
#include "server/log.h"
#include "server/net.h"
#include "server/policy.h"
#include "server/quota.h"
#include "server/reserve.h"
#include "server/server.h"
#include "server/shared.h"

#define TXCACHE_MS 40000 /* RFC 8489 section 6.2.1: Rc * RTO, about 40 s */
#define RATE_BURST_FACTOR 2
#define TURN_PARK (-1000) /* authenticate(): credentials are being fetched */

/* The outcome of authentication; user borrowed from the request or store. */
struct turn_auth {
    const char *user;
    size_t user_len;
    uint8_t key[32];
    size_t key_len;
    enum auth_alg alg;
    bool sha256; /* request carried MESSAGE-INTEGRITY-SHA256: answer with it */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
static bool rate_take(struct worker *w, const struct sockaddr *client)
{
    unsigned rate = w->conf->unauth_rate;
    if (!rate)
        return true;
    uint32_t h = ip_hash(client);
    typeof(w->turn->rate[0]) *r = &w->turn->rate[h % TURN_RATE_SLOTS];
    uint64_t now = mono_ms();
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

static size_t txcache_slot(const struct stun_msg *m)
{
    uint32_t h;
    memcpy(&h, m->tid, 4);
    return h % TURN_TXCACHE;
}

static size_t txcache_find(const struct turn_client *tc, const struct stun_msg *m,
                           const struct sockaddr *client, uint8_t *out, size_t cap)
{
    typeof(tc->w->turn->tx[0]) *e = &tc->w->turn->tx[txcache_slot(m)];
    if (!e->len || e->conn != tc->conn || memcmp(e->tid, m->tid, STUN_TID_LEN) != 0 ||
        !net_addr_equal((struct sockaddr *)&e->client, client) || e->len > cap ||
        mono_ms() - e->at_ms > TXCACHE_MS)
        return 0;
    memcpy(out, e->resp, e->len);
    return e->len;
}

static void txcache_put(const struct turn_client *tc, const struct stun_msg *m,
                        const struct sockaddr *client, const uint8_t *resp, size_t len)
{
    if (len > TURN_TXCACHE_RESP)
        return;
    typeof(tc->w->turn->tx[0]) *e = &tc->w->turn->tx[txcache_slot(m)];
    memcpy(e->tid, m->tid, STUN_TID_LEN);
    e->conn = tc->conn;
    memcpy(&e->client, client, net_addr_len(client));
    e->at_ms = mono_ms();
    memcpy(e->resp, resp, len);
    e->len = (uint16_t)len;
}

static void enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                      size_t cap)
{
    stun_enc_init(e, out, cap, m->method, cls, m->tid, false);
}

static size_t enc_finish(const struct turn_client *tc, struct stun_enc *e,
                         const struct stun_msg *m, const struct turn_auth *au)
{
    const struct conf *c = tc->w->conf;
    if (c->software[0])
        stun_enc_add(e, STUN_ATTR_SOFTWARE, c->software, strlen(c->software));
    if (au) {
        int rc = au->sha256 ? stun_enc_add_integrity_sha256(e, au->key, au->key_len)
                            : stun_enc_add_integrity(e, au->key, au->key_len);
        if (rc < 0)
            return 0;
    }
    if (m->fingerprint >= 0 && stun_enc_add_fingerprint(e) < 0)
        return 0;
    return e->len;
}

/* An error answer; signed when the request authenticated. */
static size_t reply_error(const struct turn_client *tc, const struct stun_msg *m, int code,
                          const struct turn_auth *au, uint8_t *out, size_t cap)
{
    stats_request(&tc->w->stats, m->method, code);
    log_debug("method 0x%03x from %.*s: %d %s", m->method, au ? (int)au->user_len : 1,
              au ? au->user : "-", code, stun_error_reason(code));
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (code == 420)
        stun_enc_add_unknown(&e, m->unknown, m->n_unknown);
    return enc_finish(tc, &e, m, au);
}

/* 401 or 438: a fresh nonce and the realm (RFC 8489 section 9.2.4). */
static size_t reply_challenge(const struct turn_client *tc, const struct stun_msg *m, int code,
                              const struct sockaddr *client, uint8_t *out, size_t cap)
{
    struct worker *w = tc->w;
    if (!rate_take(w, client)) {
        stats_add(&w->stats.drops[STATS_DROP_RATE_LIMIT], 1);
        return 0;
    }
    stats_request(&w->stats, m->method, code);
    char nonce[AUTH_NONCE_LEN + 1];
    auth_nonce_make(w->srv->nonce_key, client, (uint64_t)time(NULL) + w->conf->nonce_lifetime,
                    nonce);
    static const uint8_t algs[] = { 0x00, AUTH_ALG_SHA256, 0, 0, 0x00, AUTH_ALG_MD5, 0, 0 };
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0 ||
        stun_enc_add(&e, STUN_ATTR_REALM, w->conf->realm, strlen(w->conf->realm)) < 0 ||
        stun_enc_add(&e, STUN_ATTR_NONCE, nonce, AUTH_NONCE_LEN) < 0 ||
        stun_enc_add(&e, STUN_ATTR_PASSWORD_ALGORITHMS, algs, sizeof algs) < 0)
        return 0;
    return enc_finish(tc, &e, m, NULL);
}

/* 0 authenticated (au filled); otherwise the negative of the error code to
 * answer with (401, 438, 400). */
static int authenticate(const struct turn_client *tc, const struct stun_msg *m,
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

static bool peer_family_ok(const struct alloc *a, const struct sockaddr *peer)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (a->relay[i].addr.ss_family == peer->sa_family)
            return true;
    return false;
}

/* Every XOR-PEER-ADDRESS of a request, checked: 0, or an error code. */
static int peers_check(const struct turn_client *tc, const struct alloc *a,
                       const struct stun_msg *m, struct sockaddr_storage *peers, size_t *n)
{
    *n = 0;
    for (unsigned i = 0; i < m->n_attrs; i++) {
        if (m->attrs[i].type != STUN_ATTR_XOR_PEER_ADDRESS)
            continue;
        if (*n >= ALLOC_MAX_PERMS)
            return 508;
        if (stun_attr_get_xaddr(m, &m->attrs[i], &peers[*n]) < 0)
            return 400;
        const struct sockaddr *p = (const struct sockaddr *)&peers[*n];
        if (!peer_family_ok(a, p))
            return 443;
        if (!policy_peer_allowed(&tc->w->srv->policy, p)) {
            char s[NET_ADDRSTRLEN];
            log_info("allocation %u (%.*s): peer %s refused by policy", a->id, (int)a->user_len,
                     a->user, net_addr_format(p, s, sizeof s));
            return 403;
        }
        (*n)++;
    }
    return *n ? 0 : 400;
}

/* Open a relay socket of a family: on the configured relay.ip addresses of
 * that family, round robin from allocation to allocation and on to the next
 * when one address has no free port left; without relay.ip, on the address
 * the client reached us on. 0, or -440 (no address of that family) or -508
 * (every port taken). The reported address is the paired external_ip. */
static int relay_open_family(const struct turn_client *tc, int family, bool even, bool reserve,
                             struct relay *out, int *next_fd)
{
    struct worker *w = tc->w;
    const struct conf *c = w->conf;
    size_t idx[CONF_MAX_RELAY_IPS], n = 0;
    for (size_t i = 0; i < c->n_relay_ip; i++)
        if (c->relay_ip[i].ss_family == family)
            idx[n++] = i;
    if (c->n_relay_ip == 0) {
        if (tc->local->sa_family != family || net_addr_is_any(tc->local))
            return -440;
        return alloc_relay_open(w, tc->local, even, reserve, out, next_fd) < 0 ? -508 : 0;
    }
    if (n == 0)
        return -440;
    unsigned start = w->relay_next++;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[(start + k) % n];
        if (alloc_relay_open(w, (const struct sockaddr *)&c->relay_ip[i], even, reserve, out,
                             next_fd) < 0)
            continue;
        if (i < c->n_external_ip) {
            out->reported = c->external_ip[i];
            net_addr_set_port((struct sockaddr *)&out->reported,
                              net_addr_port((struct sockaddr *)&out->addr));
        }
        return 0;
    }
    return -508;
}

static uint32_t lifetime_of(const struct turn_client *tc, const struct stun_msg *m, bool allocate)
{
    unsigned max = tc->w->conf->max_lifetime;
    const struct stun_attr *la = stun_attr_find(m, STUN_ATTR_LIFETIME);
    uint32_t want = ALLOC_DEFAULT_LIFETIME;
    if (la) {
        stun_attr_get_u32(m, la, &want);
        if (allocate && want < ALLOC_DEFAULT_LIFETIME)
            want = ALLOC_DEFAULT_LIFETIME; /* RFC 8656 section 7.2 */
    }
    return want > max ? max : want;
}

/* 300 Try Alternate: the next of alternate_servers, round robin. */
static size_t reply_alternate(const struct turn_client *tc, const struct stun_msg *m,
                              const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct worker *w = tc->w;
    const struct conf *c = w->conf;
    const struct sockaddr *alt =
        (const struct sockaddr *)&c->alternate_servers[w->alternate_next++ % c->n_alternate_servers];
    stats_request(&w->stats, m->method, 300);
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, 300, NULL) < 0 || stun_enc_add_addr(&e, STUN_ATTR_ALTERNATE_SERVER, alt) < 0)
        return 0;
    if (c->alternate_domain[0])
        stun_enc_add(&e, STUN_ATTR_ALTERNATE_DOMAIN, c->alternate_domain, strlen(c->alternate_domain));
    char a[NET_ADDRSTRLEN];
    log_info("allocate for %.*s: %u allocations here, sent to %s", (int)au->user_len, au->user,
             quota_total(w->srv->quota), net_addr_format(alt, a, sizeof a));
    return enc_finish(tc, &e, m, au);
}

static size_t do_allocate(const struct turn_client *tc, const struct stun_msg *m,
                          const struct sockaddr *client, const struct turn_auth *au, uint8_t *out,
                          size_t cap)
{
    struct worker *w = tc->w;
    const struct stun_attr *rt = stun_attr_find(m, STUN_ATTR_REQUESTED_TRANSPORT);
    const struct stun_attr *ep = stun_attr_find(m, STUN_ATTR_EVEN_PORT);
    const struct stun_attr *tok = stun_attr_find(m, STUN_ATTR_RESERVATION_TOKEN);
    const struct stun_attr *raf = stun_attr_find(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    const struct stun_attr *aaf = stun_attr_find(m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    if (!rt)
        return reply_error(tc, m, 400, au, out, cap);
    if (m->buf[rt->off] != 17) /* UDP; TCP relaying (RFC 6062) is not offered */
        return reply_error(tc, m, 442, au, out, cap);
    if ((tok && (ep || raf || aaf)) || (raf && aaf))
        return reply_error(tc, m, 400, au, out, cap);
    int fam = AF_INET;
    if (raf) {
        uint8_t f = m->buf[raf->off];
        if (f != 0x01 && f != 0x02)
            return reply_error(tc, m, 440, au, out, cap);
        fam = f == 0x02 ? AF_INET6 : AF_INET;
    }
    if (aaf && m->buf[aaf->off] != 0x02)
        return reply_error(tc, m, 400, au, out, cap);
    bool even = ep != NULL, reserve = ep && (m->buf[ep->off] & 0x80);

    /* Overloaded: send the client elsewhere (RFC 8489 section 10), signed
     * like any answer to an authenticated request. */
    const struct conf *cf = w->conf;
    if (cf->n_alternate_servers && cf->alternate_threshold &&
        quota_total(w->srv->quota) >= cf->alternate_threshold)
        return reply_alternate(tc, m, au, out, cap);

    /* The user quota across nodes (shared.h), asked of Redis first; without
     * Redis only this process's count applies. */
    uint64_t sid = 0;
    bool shared = false;
    if (w->limits.user_quota && creds_redis_up(w)) {
        int d = creds_quota_decision(w, &sid);
        if (d == 0)
            return reply_error(tc, m, 486, au, out, cap);
        if (d < 0) {
            sid = alloc_next_sid(w);
            uint32_t real = lifetime_of(tc, m, true) / cf->time_scale + 1;
            if (creds_park_quota(w, tc, client, m->buf, m->len, au->user, au->user_len, sid,
                                 real) == 0)
                return 0; /* answered when Redis is */
        }
        shared = d == 1;
    }
    if (quota_acquire(w->srv->quota, au->user, au->user_len, w->limits.user_quota,
                      w->limits.total_quota) < 0) {
        if (shared)
            shared_quota_drop(w, au->user, au->user_len, sid);
        return reply_error(tc, m, 486, au, out, cap);
    }

    struct relay relays[2];
    unsigned n_relay = 0;
    int next_fd = -1, code = 0;
    bool v6_failed = false;
    if (tok) {
        struct sockaddr_storage addr;
        int fd = reserve_take(w->srv->resv, m->buf + tok->off, &addr);
        if (fd < 0) {
            code = 508;
        } else {
            memset(&relays[0], 0, sizeof relays[0]);
            relays[0].fd = fd;
            relays[0].addr = relays[0].reported = addr;
            n_relay = 1;
        }
    } else {
        int rc = relay_open_family(tc, fam, even, reserve, &relays[0], &next_fd);
        if (rc < 0) {
            code = -rc;
        } else {
            n_relay = 1;
            if (aaf) {
                if (relay_open_family(tc, AF_INET6, false, false, &relays[1], &next_fd) < 0)
                    v6_failed = true;
                else
                    n_relay = 2;
            }
        }
    }
    uint32_t lifetime = lifetime_of(tc, m, true);
    struct alloc *a = code ? NULL
                           : alloc_create(w, tc->ops, tc->conn, client, tc->local, relays, n_relay,
                                          lifetime, au->user, au->user_len);
    if (!a) {
        for (unsigned i = 0; i < n_relay; i++)
            alloc_relay_close(&relays[i]);
        if (next_fd >= 0)
            close(next_fd);
        quota_release(w->srv->quota, au->user, au->user_len);
        if (shared)
            shared_quota_drop(w, au->user, au->user_len, sid);
        if (!code)
            code = 508;
        char c[NET_ADDRSTRLEN];
        log_info("allocate from %s (%.*s) refused: %d", net_addr_format(client, c, sizeof c),
                 (int)au->user_len, au->user, code);
        return reply_error(tc, m, code, au, out, cap);
    }
    if (shared) {
        a->sid = sid;
        a->quota_shared = true;
    }
    memcpy(a->key, au->key, au->key_len);
    a->alg = (uint8_t)au->alg;
    if (alloc_relay_start(a) < 0) {
        alloc_destroy(a, "out of memory");
        return reply_error(tc, m, 508, au, out, cap);
    }
    if (tc->slot)
        *tc->slot = a;
    if (stun_attr_find(m, STUN_ATTR_DONT_FRAGMENT)) {
        /* RFC 8656 section 7.2: set DF on what we relay to peers (IPv4; IPv6
         * routers never fragment anyway). */
        int pmtu = IP_PMTUDISC_DO;
        for (unsigned i = 0; i < a->n_relay; i++)
            if (a->relay[i].addr.ss_family == AF_INET)
                setsockopt(a->relay[i].fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
    uint8_t token[8];
    bool have_token = false;
    if (reserve && next_fd >= 0) {
        struct sockaddr_storage next = relays[0].addr; /* the odd port after ours */
        net_addr_set_port((struct sockaddr *)&next, net_addr_port((struct sockaddr *)&next) + 1);
        have_token = reserve_put(w->srv->resv, next_fd, (struct sockaddr *)&next, token) == 0;
    }

    stats_request(&w->stats, m->method, 0);
    stats_add(&w->stats.allocations_created, 1);
    shared_alloc_status(a, "new", lifetime);
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    for (unsigned i = 0; i < a->n_relay; i++)
        stun_enc_add_xaddr(&e, STUN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&a->relay[i].reported);
    stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, lifetime);
    stun_enc_add_xaddr(&e, STUN_ATTR_XOR_MAPPED_ADDRESS, client);
    if (have_token)
        stun_enc_add(&e, STUN_ATTR_RESERVATION_TOKEN, token, 8);
    if (v6_failed) {
        /* RFC 8656 section 7.2: ADDRESS-ERROR-CODE for the family we could not serve */
        uint8_t v[4 + 32] = { 0x02, 0, 4, 40 };
        const char *r = stun_error_reason(440);
        size_t rl = strlen(r) < 32 ? strlen(r) : 32;
        memcpy(v + 4, r, rl);
        stun_enc_add(&e, STUN_ATTR_ADDRESS_ERROR_CODE, v, 4 + rl);
    }
    char c[NET_ADDRSTRLEN], rl[NET_ADDRSTRLEN];
    log_info("allocation %u for %s (%.*s): relay %s, lifetime %u s", a->id,
             net_addr_format(client, c, sizeof c), (int)au->user_len, au->user,
             net_addr_format((struct sockaddr *)&a->relay[0].reported, rl, sizeof rl), lifetime);
    return enc_finish(tc, &e, m, au);
}

static size_t do_refresh(const struct turn_client *tc, struct alloc *a, const struct stun_msg *m,
                         const struct turn_auth *au, uint8_t *out, size_t cap)
{
    const struct stun_attr *raf = stun_attr_find(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (raf) {
        int fam = m->buf[raf->off] == 0x02 ? AF_INET6 : AF_INET;
        bool ok = false;
        for (unsigned i = 0; i < a->n_relay; i++)
            ok |= a->relay[i].addr.ss_family == fam;
        if (!ok)
            return reply_error(tc, m, 443, au, out, cap);
    }
    uint32_t lifetime = lifetime_of(tc, m, false);
    if (lifetime == 0) {
        if (tc->slot)
            *tc->slot = NULL;
        alloc_destroy(a, "refresh with lifetime 0");
    } else {
        alloc_set_lifetime(a, lifetime);
        shared_alloc_status(a, "refreshed", lifetime);
    }
    stats_request(&tc->w->stats, m->method, 0);
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, lifetime);
    return enc_finish(tc, &e, m, au);
}

static size_t do_permission(const struct turn_client *tc, struct alloc *a, const struct stun_msg *m,
                            const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n;
    int code = peers_check(tc, a, m, peers, &n);
    for (size_t i = 0; !code && i < n; i++)
        code = alloc_perm_add(a, (struct sockaddr *)&peers[i]);
    if (code)
        return reply_error(tc, m, code, au, out, cap);
    stats_request(&tc->w->stats, m->method, 0);
    stats_add(&tc->w->stats.permissions_created, n);
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return enc_finish(tc, &e, m, au);
}

static size_t do_channel_bind(const struct turn_client *tc, struct alloc *a,
                              const struct stun_msg *m, const struct turn_auth *au, uint8_t *out,
                              size_t cap)
{
    const struct stun_attr *cn = stun_attr_find(m, STUN_ATTR_CHANNEL_NUMBER);
    uint32_t v = 0;
    if (!cn || stun_attr_get_u32(m, cn, &v) < 0)
        return reply_error(tc, m, 400, au, out, cap);
    uint16_t number = (uint16_t)(v >> 16);
    if (number < STUN_CHANNEL_MIN || number > STUN_CHANNEL_MAX)
        return reply_error(tc, m, 400, au, out, cap);
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n;
    int code = peers_check(tc, a, m, peers, &n);
    if (!code && n != 1)
        code = 400;
    if (!code)
        code = alloc_chan_bind(a, number, (struct sockaddr *)&peers[0]);
    if (code)
        return reply_error(tc, m, code, au, out, cap);
    stats_request(&tc->w->stats, m->method, 0);
    stats_add(&tc->w->stats.channels_bound, 1);
    struct stun_enc e;
    enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return enc_finish(tc, &e, m, au);
}

/* An error to a request that did not authenticate: rate limited. */
static size_t unauth_error(const struct turn_client *tc, const struct stun_msg *m,
                           const struct sockaddr *client, int code, uint8_t *out, size_t cap)
{
    if (!rate_take(tc->w, client)) {
        stats_add(&tc->w->stats.drops[STATS_DROP_RATE_LIMIT], 1);
        return 0;
    }
    return reply_error(tc, m, code, NULL, out, cap);
}

static struct alloc *find_alloc(const struct turn_client *tc, const struct sockaddr *client)
{
    return tc->slot ? *tc->slot : alloc_table_find(tc->w, tc->conn, client);
}

static void send_indication(const struct turn_client *tc, const struct stun_msg *m,
                            const struct sockaddr *client)
{
    struct alloc *a = find_alloc(tc, client);
    const struct stun_attr *pa = stun_attr_find(m, STUN_ATTR_XOR_PEER_ADDRESS);
    const struct stun_attr *da = stun_attr_find(m, STUN_ATTR_DATA);
    struct sockaddr_storage peer;
    if (!a) {
        stats_add(&tc->w->stats.drops[STATS_DROP_NO_ALLOCATION], 1);
        return;
    }
    if (!pa || !da || stun_attr_get_xaddr(m, pa, &peer) < 0) {
        stats_add(&tc->w->stats.drops[STATS_DROP_MALFORMED], 1);
        return;
    }
    alloc_relay_send(a, (struct sockaddr *)&peer, m->buf + da->off, da->len);
}

void turn_channel_data(const struct turn_client *tc, const struct sockaddr *client,
                       const uint8_t *frame, size_t len)
{
    struct alloc *a = find_alloc(tc, client);
    if (a)
        alloc_relay_channel(a, frame, len);
    else
        stats_add(&tc->w->stats.drops[STATS_DROP_NO_ALLOCATION], 1);
}

size_t turn_handle(const struct turn_client *tc, const struct stun_msg *m,
                   const struct sockaddr *client, uint8_t *out, size_t cap)
{
    if (m->cls == STUN_CLASS_INDICATION) {
        if (m->method == STUN_SEND)
            send_indication(tc, m, client);
        return 0;
    }
    if (m->cls != STUN_CLASS_REQUEST || m->classic)
        return 0;
    switch (m->method) {
    case STUN_ALLOCATE:
    case STUN_REFRESH:
    case STUN_CREATE_PERMISSION:
    case STUN_CHANNEL_BIND:
        break;
    default:
        return unauth_error(tc, m, client, 400, out, cap);
    }
    if (m->n_unknown)
        return unauth_error(tc, m, client, 420, out, cap);
    size_t len = txcache_find(tc, m, client, out, cap);
    if (len)
        return len;

    struct turn_auth au;
    memset(&au, 0, sizeof au);
    int rc = authenticate(tc, m, client, &au);
    /* A first request without credentials is the normal challenge, not a failure. */
    if (rc < 0 && (m->integrity >= 0 || m->integrity256 >= 0))
        stats_add(&tc->w->stats.auth_failures, 1);
    if (rc == TURN_PARK) {
        if (creds_park(tc->w, tc, client, m->buf, m->len, au.user, au.user_len) == 0)
            return 0; /* answered when Redis is */
        rc = -500;
    }
    if (rc == -401 || rc == -438)
        return reply_challenge(tc, m, -rc, client, out, cap);
    if (rc < 0)
        return unauth_error(tc, m, client, -rc, out, cap);

    struct alloc *a = find_alloc(tc, client);
    if (a && (a->user_len != au.user_len || memcmp(a->user, au.user, au.user_len) != 0))
        len = reply_error(tc, m, 441, &au, out, cap);
    else if (m->method == STUN_ALLOCATE)
        len = a ? reply_error(tc, m, 437, &au, out, cap) : do_allocate(tc, m, client, &au, out, cap);
    else if (!a)
        len = reply_error(tc, m, 437, &au, out, cap);
    else if (m->method == STUN_REFRESH)
        len = do_refresh(tc, a, m, &au, out, cap);
    else if (m->method == STUN_CREATE_PERMISSION)
        len = do_permission(tc, a, m, &au, out, cap);
    else
        len = do_channel_bind(tc, a, m, &au, out, cap);
    if (len)
        txcache_put(tc, m, client, out, len);
    return len;
}
