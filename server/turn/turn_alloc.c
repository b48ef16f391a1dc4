/*
 * turn_alloc.c - the Allocate request (RFC 8656 section 7.2, RFC 6156):
 * transport, address families, EVEN-PORT and reservations, quotas (local and
 * across nodes), 300 Try Alternate, relay sockets on relay.ip round robin,
 * and the answer.
 *
 * With a user quota and Redis up, the request waits for the cross-node quota
 * question (park.h) and continues in allocate_quota with its answer; every
 * path that does not end in an allocation gives the granted member back
 * (cluster_quota_release).
 */
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/core/core.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/turn/turn_int.h"

/* The attributes of an Allocate that shape it. */
struct alloc_req {
    const struct stun_attr *tok, *aaf;
    int family;
    bool even, reserve;
    bool tcp; /* RFC 6062 */
};

/* Parse and check; 0 or the error code. stream: the session is TCP or TLS. */
static int alloc_req_parse(const struct stun_msg *m, bool stream, struct alloc_req *r)
{
    const struct stun_attr *rt = stun_attr_find(m, STUN_ATTR_REQUESTED_TRANSPORT);
    const struct stun_attr *ep = stun_attr_find(m, STUN_ATTR_EVEN_PORT);
    const struct stun_attr *raf = stun_attr_find(m, STUN_ATTR_REQUESTED_ADDRESS_FAMILY);
    r->tok = stun_attr_find(m, STUN_ATTR_RESERVATION_TOKEN);
    r->aaf = stun_attr_find(m, STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    if (!rt)
        return 400;
    /* RFC 6062 section 5.1: TCP relaying only for a client over TCP or TLS,
     * one relay address, no port parity or reservation. */
    r->tcp = m->buf[rt->off] == 6;
    if (m->buf[rt->off] != 17 && !(r->tcp && stream))
        return 442;
    if ((r->tok && (ep || raf || r->aaf)) || (raf && r->aaf) || (r->tcp && (ep || r->tok || r->aaf)))
        return 400;
    r->family = AF_INET;
    if (raf) {
        uint8_t f = m->buf[raf->off];
        if (f != 0x01 && f != 0x02)
            return 440;
        r->family = f == 0x02 ? AF_INET6 : AF_INET;
    }
    if (r->aaf && m->buf[r->aaf->off] != 0x02)
        return 400;
    r->even = ep != NULL;
    r->reserve = ep && (m->buf[ep->off] & 0x80);
    return 0;
}

/* What the client is told for a relay socket: the external_ip paired with
 * the relay.ip it is bound to (1:1 NAT), else the bound address. */
static void relay_set_reported(const struct conf *c, struct relay *r)
{
    r->reported = r->addr;
    for (size_t i = 0; i < c->n_relay_ip && i < c->n_external_ip; i++) {
        struct sockaddr_storage ip = c->relay_ip[i];
        net_addr_set_port((struct sockaddr *)&ip, net_addr_port((struct sockaddr *)&r->addr));
        if (!net_addr_equal((struct sockaddr *)&ip, (struct sockaddr *)&r->addr))
            continue;
        memcpy(&r->reported, &c->external_ip[i],
               net_addr_len((const struct sockaddr *)&c->external_ip[i]));
        net_addr_set_port((struct sockaddr *)&r->reported,
                          net_addr_port((struct sockaddr *)&r->addr));
        return;
    }
}

/* Open a relay socket of a family: on the configured relay.ip addresses of
 * that family, round robin from allocation to allocation and on to the next
 * when one address has no free port left; without relay.ip, on the address
 * the client reached us on. 0, or 440 (no address of that family) or 508
 * (every port taken). */
static int relay_open_family(struct turn_session *s, int family, bool even, bool reserve,
                             bool stream, struct relay *out, int *next_fd)
{
    struct turn *t = s->svc;
    const struct conf *c = t->env.conf;
    size_t idx[CONF_MAX_RELAY_IPS], n = 0;
    for (size_t i = 0; i < c->n_relay_ip; i++)
        if (c->relay_ip[i].ss_family == family)
            idx[n++] = i;
    if (c->n_relay_ip == 0) {
        if (s->local->sa_family != family || net_addr_is_any(s->local))
            return 440;
        return alloc_relay_open(t->env.relay, s->local, even, reserve, stream, out, next_fd) < 0 ? 508 : 0;
    }
    if (n == 0)
        return 440;
    unsigned start = t->relay_next++;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[(start + k) % n];
        if (alloc_relay_open(t->env.relay, (const struct sockaddr *)&c->relay_ip[i], even,
                             reserve, stream, out, next_fd) < 0)
            continue;
        relay_set_reported(c, out);
        return 0;
    }
    return 508;
}

uint32_t turn_lifetime(const struct turn *t, const struct stun_msg *m,
                       const struct turn_auth *au, bool allocate)
{
    unsigned max = t->env.conf->max_lifetime;
    const struct stun_attr *la = stun_attr_find(m, STUN_ATTR_LIFETIME);
    uint32_t want = ALLOC_DEFAULT_LIFETIME;
    if (la) {
        stun_attr_get_u32(m, la, &want);
        if (allocate && want < ALLOC_DEFAULT_LIFETIME)
            want = ALLOC_DEFAULT_LIFETIME; /* RFC 8656 section 7.2 */
    }
    if (au->oauth && au->token_left != UINT32_MAX) {
        /* RFC 7635 section 6.2: not beyond the token (in the TURN clock) */
        uint64_t left = (uint64_t)au->token_left * t->env.conf->time_scale;
        if (left < max)
            max = (unsigned)left;
    }
    return want > max ? max : want;
}

/* 300 Try Alternate: the next of alternate_servers, round robin. */
static size_t reply_alternate(struct turn *t, const struct stun_msg *m,
                              const struct turn_auth *au, uint8_t *out, size_t cap)
{
    const struct conf *c = t->env.conf;
    const struct sockaddr *alt =
        (const struct sockaddr *)&c->alternate_servers[t->alternate_next++ % c->n_alternate_servers];
    stats_request(t->env.stats, turn_realm_stats(t, au->realm), m->method, 300);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, 300, NULL) < 0 || stun_enc_add_addr(&e, STUN_ATTR_ALTERNATE_SERVER, alt) < 0)
        return 0;
    if (c->alternate_domain[0])
        stun_enc_add(&e, STUN_ATTR_ALTERNATE_DOMAIN, c->alternate_domain, strlen(c->alternate_domain));
    char a[NET_ADDRSTRLEN];
    log_info("allocate for %.*s: %u allocations here, sent to %s", (int)au->user_len, au->user,
             quota_total(t->env.quota), net_addr_format(alt, a, sizeof a));
    return turn_enc_finish(t, &e, m, au);
}

/* node (19 bits) . worker . counter, within coturn's 18 decimal digits */
static uint64_t next_sid(struct turn *t)
{
    uint32_t n = ++t->next_sid;
    return (uint64_t)t->env.node_id * 1000000000000ull + (uint64_t)t->env.worker_id * 1000000000ull +
           n % 1000000000u;
}

static size_t allocate_quota(struct turn_session *s, const struct stun_msg *m,
                             const struct sockaddr *client, const struct turn_auth *au,
                             enum cluster_quota_status q, uint64_t sid, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    struct alloc_req r;
    bool shared = q == CLUSTER_QUOTA_GRANTED;
    const struct realm *rl = turn_realm(t, au->realm);
    int code = alloc_req_parse(m, turn_session_stream(s), &r);
    /* While this one waited, another Allocate may have made the 5-tuple's
     * allocation. */
    if (!code && turn_find_alloc(s, client))
        code = 437;
    if (!code && q == CLUSTER_QUOTA_FULL)
        code = 486;
    if (!code && quota_acquire(t->env.quota, rl->name, rl->len, au->user, au->user_len,
                               rl->now.user_quota, rl->now.total_quota) < 0)
        code = 486;
    if (code) {
        if (shared)
            cluster_quota_release(t->env.cluster, rl->name, rl->len, au->user, au->user_len, sid);
        return turn_reply_error(t, m, code, au, out, cap);
    }

    struct relay relays[2];
    unsigned n_relay = 0;
    int next_fd = -1;
    bool v6_failed = false;
    if (r.tok) {
        struct sockaddr_storage addr;
        int fd = reserve_take(t->env.resv, m->buf + r.tok->off, &addr);
        if (fd < 0) {
            code = 508;
        } else {
            memset(&relays[0], 0, sizeof relays[0]);
            relays[0].fd = fd;
            memcpy(&relays[0].addr, &addr, net_addr_len((struct sockaddr *)&addr));
            relay_set_reported(t->env.conf, &relays[0]);
            n_relay = 1;
        }
    } else {
        code = relay_open_family(s, r.family, r.even, r.reserve, r.tcp, &relays[0], &next_fd);
        if (!code) {
            n_relay = 1;
            if (r.aaf) {
                if (relay_open_family(s, AF_INET6, false, false, false, &relays[1], &next_fd))
                    v6_failed = true;
                else
                    n_relay = 2;
            }
        }
    }
    uint32_t lifetime = turn_lifetime(t, m, au, true);
    struct alloc *a = code ? NULL
                           : alloc_create(t->env.relay, s->ops, s->conn, s, client, s->local,
                                          relays, n_relay, lifetime,
                                          (unsigned)(rl - t->env.realms->r), au->user, au->user_len);
    if (!a) {
        for (unsigned i = 0; i < n_relay; i++)
            alloc_relay_close(&relays[i]);
        if (next_fd >= 0)
            close(next_fd);
        quota_release(t->env.quota, rl->name, rl->len, au->user, au->user_len);
        if (shared)
            cluster_quota_release(t->env.cluster, rl->name, rl->len, au->user, au->user_len, sid);
        if (!code)
            code = 508;
        char cs[NET_ADDRSTRLEN];
        log_info("allocate from %s (%.*s) refused: %d", net_addr_format(client, cs, sizeof cs),
                 (int)au->user_len, au->user, code);
        return turn_reply_error(t, m, code, au, out, cap);
    }
    a->sid = sid;
    a->quota_shared = shared;
    memcpy(a->key, au->key, au->key_len);
    a->key_len = (uint8_t)au->key_len;
    a->alg = (uint8_t)au->alg;
    a->oauth = au->oauth;
    a->token_end = au->oauth ? (uint64_t)time(NULL) + au->token_left : 0;
    a->tcp = r.tcp;
    if (alloc_relay_start(a) < 0) {
        alloc_destroy(a, "out of memory");
        return turn_reply_error(t, m, 508, au, out, cap);
    }
    if (s->one_alloc)
        s->alloc = a;
    /* RFC 8656 sections 7.2 and 14: DF on what is relayed to peers when the
     * Allocate asked for it, else 0; a Send indication says it per datagram. */
    alloc_relay_set_df(a, stun_attr_find(m, STUN_ATTR_DONT_FRAGMENT) != NULL);
    uint8_t token[8];
    bool have_token = false;
    if (r.reserve && next_fd >= 0) {
        struct sockaddr_in6 next = relays[0].addr; /* the odd port after ours */
        net_addr_set_port((struct sockaddr *)&next, net_addr_port((struct sockaddr *)&next) + 1);
        have_token = reserve_put(t->env.resv, next_fd, (struct sockaddr *)&next, token) == 0;
    }

    stats_request(t->env.stats, a->stats_realm, m->method, 0);
    stats_add(&t->env.stats->allocations_created[a->stats_realm], 1);
    if (t->env.cluster) {
        struct cluster_alloc ca;
        turn_alloc_report(a, false, &ca);
        cluster_alloc_status(t->env.cluster, &ca, "new", lifetime);
    }
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    for (unsigned i = 0; i < a->n_relay; i++)
        stun_enc_add_xaddr(&e, STUN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&a->relay[i].reported);
    stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, lifetime);
    stun_enc_add_xaddr(&e, STUN_ATTR_XOR_MAPPED_ADDRESS, client);
    if (have_token)
        stun_enc_add(&e, STUN_ATTR_RESERVATION_TOKEN, token, 8);
    if (stun_attr_find(m, STUN_ATTR_MOBILITY_TICKET)) {
        a->mobile = true;
        turn_ticket_add(t, a, &e);
    }
    if (v6_failed) {
        /* RFC 8656 section 7.2: ADDRESS-ERROR-CODE for the family we could not serve */
        uint8_t v[4 + 32] = { 0x02, 0, 4, 40 };
        const char *reason = stun_error_reason(440);
        size_t rl = strlen(reason) < 32 ? strlen(reason) : 32;
        memcpy(v + 4, reason, rl);
        stun_enc_add(&e, STUN_ATTR_ADDRESS_ERROR_CODE, v, 4 + rl);
    }
    turn_log_session(t, a, NULL);
    return turn_enc_finish(t, &e, m, au);
}

/* The quota question of a parked Allocate is answered (park.h). */
static size_t resume_quota(struct turn_session *s, const struct stun_msg *m,
                           const struct sockaddr *client, struct turn_auth *au,
                           const struct park_answer *ans, uint8_t *out, size_t cap)
{
    return allocate_quota(s, m, client, au, ans->quota, ans->sid, out, cap);
}

enum turn_verdict turn_allocate(struct turn_session *s, const struct stun_msg *m,
                                const struct sockaddr *client, const struct turn_auth *au,
                                uint8_t *out, size_t cap, size_t *len)
{
    struct turn *t = s->svc;
    const struct conf *c = t->env.conf;
    struct alloc_req r;
    int code = alloc_req_parse(m, turn_session_stream(s), &r);
    if (!code)
        code = turn_ticket_asked(s, m);
    if (code) {
        *len = turn_reply_error(t, m, code, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    /* Overloaded or draining: send the client elsewhere (RFC 8489 section
     * 10), signed like any answer to an authenticated request. */
    bool draining = t->env.draining && atomic_load(t->env.draining);
    if (c->n_alternate_servers &&
        (draining || (c->alternate_threshold && quota_total(t->env.quota) >= c->alternate_threshold))) {
        *len = reply_alternate(t, m, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    if (draining) {
        *len = turn_reply_error(t, m, 508, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    /* The user quota across nodes is asked of Redis first; without Redis
     * only this process's count applies. */
    enum cluster_quota_status q = CLUSTER_QUOTA_FAILED;
    uint64_t sid = next_sid(t);
    unsigned user_quota = turn_realm(t, au->realm)->now.user_quota;
    if (user_quota && cluster_up(t->env.cluster)) {
        uint32_t real = turn_lifetime(t, m, au, true) / c->time_scale + 1;
        if (park_quota(t->park, s, m, client, au, sid, real, user_quota, resume_quota) == 0)
            return TURN_PARKED;
    }
    *len = allocate_quota(s, m, client, au, q, sid, out, cap);
    return *len ? TURN_ANSWER : TURN_DROP;
}
