/*
 * turn_methods.c - the requests on an existing allocation (RFC 8656
 * sections 8, 10 and 11): Refresh, CreatePermission, ChannelBind, and the
 * Send indication.
 */
#include <string.h>

#include "server/cluster/cluster.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/turn/turn_int.h"

static bool peer_family_ok(const struct alloc *a, const struct sockaddr *peer)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (a->relay[i].addr.sin6_family == peer->sa_family)
            return true;
    return false;
}

int turn_peers_check(const struct turn *t, const struct alloc *a, const struct stun_msg *m,
                     struct sockaddr_storage *peers, size_t *n)
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
        /* The allocation's own relay address is refused even where the
         * policy allows its IP (loopback in tests): it would loop. */
        if (!policy_peer_allowed(&t->policy, p) || alloc_is_own_relay(a, p)) {
            char s[NET_ADDRSTRLEN];
            log_info("allocation %u (%.*s): peer %s refused by policy", a->id, (int)a->user_len,
                     a->user, net_addr_format(p, s, sizeof s));
            return 403;
        }
        (*n)++;
    }
    return *n ? 0 : 400;
}

size_t turn_do_refresh(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                       const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    const struct stun_attr *raf = stun_attr_find(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (raf) {
        int fam = m->buf[raf->off] == 0x02 ? AF_INET6 : AF_INET;
        bool ok = false;
        for (unsigned i = 0; i < a->n_relay; i++)
            ok |= a->relay[i].addr.sin6_family == fam;
        if (!ok)
            return turn_reply_error(t, m, 443, au, out, cap);
    }
    uint32_t lifetime = turn_lifetime(t, m, au, false);
    unsigned realm = a->stats_realm; /* a may be gone below */
    if (lifetime == 0) {
        alloc_destroy(a, "refresh with lifetime 0");
    } else {
        alloc_set_lifetime(a, lifetime);
        if (t->env.cluster) {
            struct cluster_alloc ca;
            turn_alloc_report(a, false, &ca);
            cluster_alloc_status(t->env.cluster, &ca, "refreshed", lifetime);
        }
    }
    stats_request(t->env.stats, realm, m->method, 0);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, lifetime);
    if (lifetime && a->mobile)
        turn_ticket_add(t, a, &e); /* RFC 8016 section 3.2: a new one each time */
    return turn_enc_finish(t, &e, m, au);
}

size_t turn_do_permission(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                          const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n;
    int code = turn_peers_check(t, a, m, peers, &n);
    for (size_t i = 0; !code && i < n; i++)
        code = alloc_perm_add(a, (struct sockaddr *)&peers[i]);
    if (code)
        return turn_reply_error(t, m, code, au, out, cap);
    stats_request(t->env.stats, a->stats_realm, m->method, 0);
    stats_add(&t->env.stats->permissions_created, n);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return turn_enc_finish(t, &e, m, au);
}

size_t turn_do_channel_bind(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                            const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    const struct stun_attr *cn = stun_attr_find(m, STUN_ATTR_CHANNEL_NUMBER);
    uint32_t v = 0;
    if (!cn || stun_attr_get_u32(m, cn, &v) < 0)
        return turn_reply_error(t, m, 400, au, out, cap);
    uint16_t number = (uint16_t)(v >> 16);
    /* RFC 6062 section 5: a TCP allocation has no channels. */
    if (number < STUN_CHANNEL_MIN || number > STUN_CHANNEL_MAX || a->tcp)
        return turn_reply_error(t, m, 400, au, out, cap);
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n;
    int code = turn_peers_check(t, a, m, peers, &n);
    if (!code && n != 1)
        code = 400;
    if (!code)
        code = alloc_chan_bind(a, number, (struct sockaddr *)&peers[0]);
    if (code)
        return turn_reply_error(t, m, code, au, out, cap);
    stats_request(t->env.stats, a->stats_realm, m->method, 0);
    stats_add(&t->env.stats->channels_bound, 1);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    return turn_enc_finish(t, &e, m, au);
}

void turn_send_indication(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client)
{
    struct worker_stats *st = s->svc->env.stats;
    struct alloc *a = turn_find_alloc(s, client);
    const struct stun_attr *pa = stun_attr_find(m, STUN_ATTR_XOR_PEER_ADDRESS);
    const struct stun_attr *da = stun_attr_find(m, STUN_ATTR_DATA);
    struct sockaddr_storage peer;
    if (!a || a->tcp) {
        stats_add(&st->drops[STATS_DROP_NO_ALLOCATION], 1);
        return;
    }
    if (!pa || !da || stun_attr_get_xaddr(m, pa, &peer) < 0) {
        stats_add(&st->drops[STATS_DROP_MALFORMED], 1);
        return;
    }
    alloc_relay_send(a, (struct sockaddr *)&peer, m->buf + da->off, da->len,
                     stun_attr_find(m, STUN_ATTR_DONT_FRAGMENT) != NULL);
}
