/*
 * turn_alloc.c - the Allocate request (RFC 8656 section 7.2, RFC 6156):
 * transport, address families, EVEN-PORT and reservations, quotas (local and
 * across nodes), 300 Try Alternate, relay sockets on relay.ip round robin,
 * and the answer.
 */
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "server/creds.h"
#include "server/log.h"
#include "server/net.h"
#include "server/quota.h"
#include "server/reserve.h"
#include "server/server.h"
#include "server/shared.h"
#include "server/turn_int.h"

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
            memcpy(&out->reported, &c->external_ip[i],
                   net_addr_len((const struct sockaddr *)&c->external_ip[i]));
            net_addr_set_port((struct sockaddr *)&out->reported,
                              net_addr_port((struct sockaddr *)&out->addr));
        }
        return 0;
    }
    return -508;
}

uint32_t turn_lifetime(const struct turn_client *tc, const struct stun_msg *m, bool allocate)
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
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, 300, NULL) < 0 || stun_enc_add_addr(&e, STUN_ATTR_ALTERNATE_SERVER, alt) < 0)
        return 0;
    if (c->alternate_domain[0])
        stun_enc_add(&e, STUN_ATTR_ALTERNATE_DOMAIN, c->alternate_domain, strlen(c->alternate_domain));
    char a[NET_ADDRSTRLEN];
    log_info("allocate for %.*s: %u allocations here, sent to %s", (int)au->user_len, au->user,
             quota_total(w->srv->quota), net_addr_format(alt, a, sizeof a));
    return turn_enc_finish(tc, &e, m, au);
}

size_t turn_allocate(const struct turn_client *tc, const struct stun_msg *m,
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
        return turn_reply_error(tc, m, 400, au, out, cap);
    if (m->buf[rt->off] != 17) /* UDP; TCP relaying (RFC 6062) is not offered */
        return turn_reply_error(tc, m, 442, au, out, cap);
    if ((tok && (ep || raf || aaf)) || (raf && aaf))
        return turn_reply_error(tc, m, 400, au, out, cap);
    int fam = AF_INET;
    if (raf) {
        uint8_t f = m->buf[raf->off];
        if (f != 0x01 && f != 0x02)
            return turn_reply_error(tc, m, 440, au, out, cap);
        fam = f == 0x02 ? AF_INET6 : AF_INET;
    }
    if (aaf && m->buf[aaf->off] != 0x02)
        return turn_reply_error(tc, m, 400, au, out, cap);
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
            return turn_reply_error(tc, m, 486, au, out, cap);
        if (d < 0) {
            sid = alloc_next_sid(w);
            uint32_t real = turn_lifetime(tc, m, true) / cf->time_scale + 1;
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
        return turn_reply_error(tc, m, 486, au, out, cap);
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
            memcpy(&relays[0].addr, &addr, net_addr_len((struct sockaddr *)&addr));
            relays[0].reported = relays[0].addr;
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
    uint32_t lifetime = turn_lifetime(tc, m, true);
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
        return turn_reply_error(tc, m, code, au, out, cap);
    }
    if (shared) {
        a->sid = sid;
        a->quota_shared = true;
    }
    memcpy(a->key, au->key, au->key_len);
    a->alg = (uint8_t)au->alg;
    if (alloc_relay_start(a) < 0) {
        alloc_destroy(a, "out of memory");
        return turn_reply_error(tc, m, 508, au, out, cap);
    }
    if (tc->slot)
        *tc->slot = a;
    if (stun_attr_find(m, STUN_ATTR_DONT_FRAGMENT)) {
        /* RFC 8656 section 7.2: set DF on what we relay to peers (IPv4; IPv6
         * routers never fragment anyway). */
        int pmtu = IP_PMTUDISC_DO;
        for (unsigned i = 0; i < a->n_relay; i++)
            if (a->relay[i].addr.sin6_family == AF_INET)
                setsockopt(a->relay[i].fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
    uint8_t token[8];
    bool have_token = false;
    if (reserve && next_fd >= 0) {
        struct sockaddr_in6 next = relays[0].addr; /* the odd port after ours */
        net_addr_set_port((struct sockaddr *)&next, net_addr_port((struct sockaddr *)&next) + 1);
        have_token = reserve_put(w->srv->resv, next_fd, (struct sockaddr *)&next, token) == 0;
    }

    stats_request(&w->stats, m->method, 0);
    stats_add(&w->stats.allocations_created, 1);
    shared_alloc_status(a, "new", lifetime);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
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
    return turn_enc_finish(tc, &e, m, au);
}
