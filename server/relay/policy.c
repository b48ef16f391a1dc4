/*
 * policy.c - which peers a relay may send to and accept from.
 *
 * Design: a TURN relay is an open proxy for anyone holding credentials, so
 * without a policy a client can reach the relay host's loopback services,
 * the private network behind it and the cloud metadata endpoint
 * (169.254.169.254). RFC 8656 section 21 asks servers to refuse such peers;
 * CVE-2020-26262 (coturn) showed the checks are bypassed by writing the same
 * IPv4 address in another form (0.0.0.0, ::ffff:127.0.0.1, ::127.0.0.1,
 * 64:ff9b::7f00:1, 2002:7f00:1::, ...). So every address is first reduced to
 * the IPv4 address it carries, if any (the "effective" address), and all
 * checks look at that as well as at the address as written.
 *
 * Order (policy.h): operator deny list, operator allow list, loopback when
 * allow_loopback, the relay's own addresses, other loopback, built-in deny
 * ranges, else allowed.
 * The deny list comes first so that an operator's deny can never be undone by
 * a broader allow. Unknown address families fail closed.
 *
 * Pure: no allocation, no logging, no mutable state; only const tables.
 */
#include "server/relay/policy.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* An address reduced to its bytes: len 4 (IPv4) or 16 (IPv6), 0 if none. */
struct paddr {
    size_t len;
    uint8_t b[16];
};

/* A built-in range; len says the family as in struct paddr. */
struct prange {
    size_t len;
    uint8_t net[16];
    unsigned prefix;
};

#define V4(a, b, c, d, p) {4, {a, b, c, d}, p}
#define V6(p, ...) {16, {__VA_ARGS__}, p}

/* Never reachable as peers, whatever the form they are written in. */
static const struct prange policy_builtin_deny[] = {
    V4(0, 0, 0, 0, 8),         /* "this network"; 0.0.0.0 reaches localhost */
    V4(10, 0, 0, 0, 8),        /* RFC 1918 */
    V4(100, 64, 0, 0, 10),     /* RFC 6598 carrier-grade NAT */
    V4(127, 0, 0, 0, 8),       /* loopback (when allow_loopback is off) */
    V4(169, 254, 0, 0, 16),    /* link-local, cloud metadata */
    V4(172, 16, 0, 0, 12),     /* RFC 1918 */
    V4(192, 0, 0, 0, 24),      /* IETF protocol assignments */
    V4(192, 0, 2, 0, 24),      /* TEST-NET-1 (RFC 5737) */
    V4(192, 168, 0, 0, 16),    /* RFC 1918 */
    V4(198, 18, 0, 0, 15),     /* benchmarking (RFC 2544) */
    V4(198, 51, 100, 0, 24),   /* TEST-NET-2 */
    V4(203, 0, 113, 0, 24),    /* TEST-NET-3 */
    V4(224, 0, 0, 0, 4),       /* multicast */
    V4(240, 0, 0, 0, 4),       /* reserved, includes 255.255.255.255 */
    V6(128),                   /* :: unspecified */
    V6(128, [15] = 1),         /* ::1 loopback */
    V6(64, 0x01),              /* 100::/64 discard (RFC 6666) */
    V6(32, 0x20, 0x01, 0x0d, 0xb8), /* documentation (RFC 3849) */
    V6(7, 0xfc),               /* unique local */
    V6(10, 0xfe, 0x80),        /* link-local */
    V6(10, 0xfe, 0xc0),        /* deprecated site-local, still routed inside */
    V6(8, 0xff),               /* multicast */
};

static bool policy_prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

/* Raw bytes of sa as written; len 0 for families other than IPv4/IPv6. */
static struct paddr policy_raw(const struct sockaddr *sa)
{
    struct paddr r = {0, {0}};
    if (sa->sa_family == AF_INET) {
        r.len = 4;
        memcpy(r.b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        r.len = 16;
        memcpy(r.b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
    return r;
}

static bool policy_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static struct paddr policy_v4(const uint8_t *b, uint8_t xor)
{
    struct paddr r = {4, {0}};
    for (int i = 0; i < 4; i++)
        r.b[i] = b[i] ^ xor;
    return r;
}

/* The IPv4 addresses an address may reach: one for IPv4 itself and for the
 * IPv6 forms that carry one, up to three for a local-use NAT64 address. */
struct peff {
    size_t n;
    bool embedded; /* an IPv6 form carrying IPv4: judged by that IPv4 only */
    struct paddr a[3];
};

/*
 * The address the packets really go to: the IPv4 address inside an IPv6
 * form that carries one, else the address itself. Each of these forms can be
 * routed to the embedded IPv4 address by the host's stack or a translator
 * on its path, so each must be judged like that IPv4 address.
 */
static struct peff policy_effective(const struct paddr *raw)
{
    struct peff r = {1, false, {*raw}};
    if (raw->len != 16)
        return r;
    const uint8_t *b = raw->b;
    static const uint8_t ffff[2] = {0xff, 0xff};
    static const uint8_t nat64[4] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    static const uint8_t teredo[4] = {0x20, 0x01, 0x00, 0x00};
    r.embedded = true;

    /* ::ffff:a.b.c.d IPv4-mapped (RFC 4291): what dual-stack sockets use. */
    if (policy_zero(b, 10) && !memcmp(b + 10, ffff, 2))
        r.a[0] = policy_v4(b + 12, 0);
    /* ::a.b.c.d IPv4-compatible (deprecated, still accepted by some stacks);
     * :: and ::1 are IPv6's own unspecified and loopback, judged as such. */
    else if (policy_zero(b, 12) && !(policy_zero(b + 12, 3) && b[15] <= 1))
        r.a[0] = policy_v4(b + 12, 0);
    /* ::ffff:0:a.b.c.d IPv4-translated (RFC 2765 SIIT). */
    else if (policy_zero(b, 8) && !memcmp(b + 8, ffff, 2) && policy_zero(b + 10, 2))
        r.a[0] = policy_v4(b + 12, 0);
    /* 64:ff9b::a.b.c.d NAT64 well-known prefix (RFC 6052). */
    else if (!memcmp(b, nat64, 4) && policy_zero(b + 4, 8))
        r.a[0] = policy_v4(b + 12, 0);
    /* 64:ff9b:1::/48 local-use NAT64 (RFC 8215): the operator picks the
     * prefix length, so the IPv4 address may sit where RFC 6052 puts it
     * for /96, /64, /56 or /48 (bits 64-71 skipped). A /96 address has
     * zeros in bits 48-95; otherwise each longer layout is a candidate and
     * every candidate must pass. */
    else if (!memcmp(b, nat64_local, 6)) {
        if (policy_zero(b + 6, 6)) {
            r.a[0] = policy_v4(b + 12, 0);
        } else {
            const uint8_t v64[4] = {b[9], b[10], b[11], b[12]};
            const uint8_t v56[4] = {b[7], b[9], b[10], b[11]};
            const uint8_t v48[4] = {b[6], b[7], b[9], b[10]};
            r.a[0] = policy_v4(v64, 0);
            r.a[1] = policy_v4(v56, 0);
            r.a[2] = policy_v4(v48, 0);
            r.n = 3;
        }
    }
    /* 2002:AABB:CCDD::/48 6to4 (RFC 3056): IPv4 in bits 16-48. */
    else if (b[0] == 0x20 && b[1] == 0x02)
        r.a[0] = policy_v4(b + 2, 0);
    /* 2001:0::/32 Teredo (RFC 4380): client IPv4 stored inverted. */
    else if (!memcmp(b, teredo, 4))
        r.a[0] = policy_v4(b + 12, 0xff);
    else
        r.embedded = false;
    return r;
}

/* a as a sockaddr, for conf_cidr_match. */
static void policy_to_sockaddr(const struct paddr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->len == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a->b, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a->b, 16);
    }
}

static bool policy_list_match(const struct conf_cidr *list, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; list && i < n; i++)
        if (conf_cidr_match(&list[i], sa))
            return true;
    return false;
}

static bool policy_same(const struct paddr *a, const struct paddr *b)
{
    return a->len && a->len == b->len && !memcmp(a->b, b->b, a->len);
}

/* Is own the address eff (compared by effective address, so ::ffff:a.b.c.d
 * and a.b.c.d are the same host)? Wildcards (0.0.0.0, ::, ::ffff:0.0.0.0)
 * are "any address", not an address of the relay, so they never match. */
static bool policy_is_own(const struct sockaddr *own, const struct paddr *eff)
{
    struct paddr o = policy_raw(own);
    if (o.len == 0 || policy_zero(o.b, o.len))
        return false;
    struct peff oe = policy_effective(&o);
    if (oe.n != 1 || policy_zero(oe.a[0].b, oe.a[0].len))
        return false;
    return policy_same(&oe.a[0], eff);
}

static bool policy_host_is(const struct policy *p, const struct paddr *eff)
{
    for (size_t i = 0; p->own && i < p->n_own; i++)
        if (policy_is_own((const struct sockaddr *)&p->own[i], eff))
            return true;
    for (size_t i = 0; p->own_ext && i < p->n_own_ext; i++)
        if (policy_is_own((const struct sockaddr *)&p->own_ext[i], eff))
            return true;
    for (size_t i = 0; p->listen && i < p->n_listen; i++)
        if (policy_is_own((const struct sockaddr *)&p->listen[i].addr, eff))
            return true;
    for (size_t i = 0; i < p->n_host; i++)
        if (policy_is_own((const struct sockaddr *)&p->host[i], eff))
            return true;
    return false;
}

void policy_init(struct policy *p, const struct conf *c)
{
    memset(p, 0, sizeof(*p));
    p->allow_loopback = c->peers_allow_loopback;
    p->allow = c->peers_allow;
    p->n_allow = c->n_peers_allow;
    p->deny = c->peers_deny;
    p->n_deny = c->n_peers_deny;
    p->own = c->relay_ip;
    p->n_own = c->n_relay_ip;
    p->own_ext = c->external_ip;
    p->n_own_ext = c->n_external_ip;
    p->listen = c->listen;
    p->n_listen = c->n_listen;
}

void policy_set_host(struct policy *p, const struct sockaddr_in6 *addrs, size_t n)
{
    p->n_host = n < POLICY_MAX_HOST ? n : POLICY_MAX_HOST;
    memcpy(p->host, addrs, p->n_host * sizeof *addrs);
}

/* One effective address, after the deny list: allowed? */
static bool policy_eff_allowed(const struct policy *p, const struct paddr *eff)
{
    struct sockaddr_storage ss;
    policy_to_sockaddr(eff, &ss);
    if (policy_list_match(p->allow, p->n_allow, (const struct sockaddr *)&ss))
        return true;

    static const uint8_t v6_loopback[16] = {[15] = 1};
    bool loopback = eff->len == 4 ? eff->b[0] == 127 : !memcmp(eff->b, v6_loopback, 16);
    /* allow_loopback is the operator saying "this host's loopback is fair
     * game" (tests, a media server beside ternd): it covers a loopback relay
     * address too, as coturn's allow-loopback-peers does. */
    if (loopback && p->allow_loopback)
        return true;
    /* Relaying to the host itself would reach its own listeners, other
     * allocations' relay ports and any UDP service on it (RFC 8656 §21). */
    if (loopback || policy_host_is(p, eff))
        return false;

    for (size_t i = 0; i < sizeof(policy_builtin_deny) / sizeof(policy_builtin_deny[0]); i++) {
        const struct prange *r = &policy_builtin_deny[i];
        if (r->len == eff->len && policy_prefix_match(eff->b, r->net, r->prefix))
            return false;
    }
    return true;
}

bool policy_peer_allowed(const struct policy *p, const struct sockaddr *peer)
{
    if (!p || !peer)
        return false;
    struct paddr raw = policy_raw(peer);
    if (raw.len == 0)
        return false; /* not IPv4/IPv6: nothing we can judge, so no */
    struct peff eff = policy_effective(&raw);

    /* The operator's deny list matches the address in any form it is
     * written in, and always wins. */
    if (eff.embedded && policy_list_match(p->deny, p->n_deny, peer))
        return false;
    for (size_t i = 0; i < eff.n; i++) {
        struct sockaddr_storage ss;
        policy_to_sockaddr(&eff.a[i], &ss);
        if (policy_list_match(p->deny, p->n_deny, (const struct sockaddr *)&ss))
            return false;
    }
    for (size_t i = 0; i < eff.n; i++)
        if (!policy_eff_allowed(p, &eff.a[i]))
            return false;
    return true;
}
