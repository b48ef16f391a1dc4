/*
 * turn.c - see turn.h.
 *
 * Order of checks for a request (RFC 8489 section 9.2.4, RFC 8656 section 7):
 * unknown comprehension-required attributes (420), the transaction cache
 * (a retransmission gets the first answer again), authentication (401, 438,
 * 400), the allocation owner (441), then the method. Answers to
 * unauthenticated requests draw on a per-source-IP token bucket, so a flood
 * of bad credentials costs little and gets silence once the bucket is dry;
 * no relay port is opened before a request has authenticated. This file
 * dispatches and holds the small methods; authentication is in
 * turn_auth.c, Allocate in turn_alloc.c (shared declarations: turn_int.h).
 */
#include "server/clock.h"
#include "server/turn.h"

#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "server/creds.h"
#include "server/log.h"
#include "server/net.h"
#include "server/policy.h"
#include "server/server.h"
#include "server/shared.h"
#include "server/turn_int.h"

#define TXCACHE_MS 40000 /* RFC 8489 section 6.2.1: Rc * RTO, about 40 s */

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
        clock_mono_ms() - e->at_ms > TXCACHE_MS)
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
    e->at_ms = clock_mono_ms();
    memcpy(e->resp, resp, len);
    e->len = (uint16_t)len;
}

void turn_enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                      size_t cap)
{
    stun_enc_init(e, out, cap, m->method, cls, m->tid, false);
}

size_t turn_enc_finish(const struct turn_client *tc, struct stun_enc *e,
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
size_t turn_reply_error(const struct turn_client *tc, const struct stun_msg *m, int code,
                          const struct turn_auth *au, uint8_t *out, size_t cap)
{
    stats_request(&tc->w->stats, m->method, code);
    log_debug("method 0x%03x from %.*s: %d %s", m->method, au ? (int)au->user_len : 1,
              au ? au->user : "-", code, stun_error_reason(code));
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (code == 420)
        stun_enc_add_unknown(&e, m->unknown, m->n_unknown);
    return turn_enc_finish(tc, &e, m, au);
}

static bool peer_family_ok(const struct alloc *a, const struct sockaddr *peer)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (a->relay[i].addr.sin6_family == peer->sa_family)
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

static size_t do_refresh(const struct turn_client *tc, struct alloc *a, const struct stun_msg *m,
                         const struct turn_auth *au, uint8_t *out, size_t cap)
{
    const struct stun_attr *raf = stun_attr_find(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (raf) {
        int fam = m->buf[raf->off] == 0x02 ? AF_INET6 : AF_INET;
        bool ok = false;
        for (unsigned i = 0; i < a->n_relay; i++)
            ok |= a->relay[i].addr.sin6_family == fam;
        if (!ok)
            return turn_reply_error(tc, m, 443, au, out, cap);
    }
    uint32_t lifetime = turn_lifetime(tc, m, false);
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
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, lifetime);
    return turn_enc_finish(tc, &e, m, au);
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
        return turn_reply_error(tc, m, code, au, out, cap);
    stats_request(&tc->w->stats, m->method, 0);
    stats_add(&tc->w->stats.permissions_created, n);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return turn_enc_finish(tc, &e, m, au);
}

static size_t do_channel_bind(const struct turn_client *tc, struct alloc *a,
                              const struct stun_msg *m, const struct turn_auth *au, uint8_t *out,
                              size_t cap)
{
    const struct stun_attr *cn = stun_attr_find(m, STUN_ATTR_CHANNEL_NUMBER);
    uint32_t v = 0;
    if (!cn || stun_attr_get_u32(m, cn, &v) < 0)
        return turn_reply_error(tc, m, 400, au, out, cap);
    uint16_t number = (uint16_t)(v >> 16);
    if (number < STUN_CHANNEL_MIN || number > STUN_CHANNEL_MAX)
        return turn_reply_error(tc, m, 400, au, out, cap);
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n;
    int code = peers_check(tc, a, m, peers, &n);
    if (!code && n != 1)
        code = 400;
    if (!code)
        code = alloc_chan_bind(a, number, (struct sockaddr *)&peers[0]);
    if (code)
        return turn_reply_error(tc, m, code, au, out, cap);
    stats_request(&tc->w->stats, m->method, 0);
    stats_add(&tc->w->stats.channels_bound, 1);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return turn_enc_finish(tc, &e, m, au);
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
        return turn_unauth_error(tc, m, client, 400, out, cap);
    }
    if (m->n_unknown)
        return turn_unauth_error(tc, m, client, 420, out, cap);
    size_t len = txcache_find(tc, m, client, out, cap);
    if (len)
        return len;

    struct turn_auth au;
    memset(&au, 0, sizeof au);
    int rc = turn_authenticate(tc, m, client, &au);
    /* A first request without credentials is the normal challenge, not a failure. */
    if (rc < 0 && (m->integrity >= 0 || m->integrity256 >= 0))
        stats_add(&tc->w->stats.auth_failures, 1);
    if (rc == TURN_PARK) {
        if (creds_park(tc->w, tc, client, m->buf, m->len, au.user, au.user_len) == 0)
            return 0; /* answered when Redis is */
        rc = -500;
    }
    if (rc == -401 || rc == -438)
        return turn_reply_challenge(tc, m, -rc, client, out, cap);
    if (rc < 0)
        return turn_unauth_error(tc, m, client, -rc, out, cap);

    struct alloc *a = find_alloc(tc, client);
    if (a && (a->user_len != au.user_len || memcmp(a->user, au.user, au.user_len) != 0))
        len = turn_reply_error(tc, m, 441, &au, out, cap);
    else if (m->method == STUN_ALLOCATE)
        len = a ? turn_reply_error(tc, m, 437, &au, out, cap) : turn_allocate(tc, m, client, &au, out, cap);
    else if (!a)
        len = turn_reply_error(tc, m, 437, &au, out, cap);
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
