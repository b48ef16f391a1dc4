/*
 * relay_offload.c - which channels of a worker's allocations the kernel
 * relays (offload.h), and their traffic counted back into the allocation,
 * the worker's statistics and so the metrics, session logs, Redis traffic
 * statistics and quotas, as if ternd had relayed it.
 *
 * An entry's expiry is the earliest of the channel's, its permission's and
 * the allocation's, on CLOCK_MONOTONIC as the program reads it, so the
 * kernel stops by itself even when an entry outlives its use by a tick.
 * Counter slots are reused: a channel starts from the slot's current value
 * rather than zeroing it, so a packet the program counted after the last
 * read of the slot's previous channel is lost, never charged to the next.
 */
#include <stdlib.h>
#include <string.h>

#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/offload.h"
#include "server/relay/relay_int.h"

int relay_offload_init(struct relay_table *t)
{
    if (!t->env.offload)
        return 0;
    uint32_t first, n;
    offload_slots_of(t->env.offload, t->env.worker_id, &first, &n);
    t->off_free = malloc((n / 2) * sizeof *t->off_free);
    if (!t->off_free)
        return -1;
    for (uint32_t i = 0; i < n / 2; i++)
        t->off_free[i] = first + n - 2 * (i + 1); /* lowest on top */
    t->off_n_free = n / 2;
    return 0;
}

void relay_offload_fini(struct relay_table *t)
{
    free(t->off_free);
}

static void addr16(uint8_t out[16], const struct sockaddr_in6 *sa)
{
    offload_addr16(out, (const struct sockaddr *)sa);
}

static uint16_t port_of(const struct sockaddr_in6 *sa)
{
    return sa->sin6_port; /* sin_port sits at the same offset */
}

static void keys_of(const struct alloc *a, const struct chan *c, const struct relay *r,
                    struct offload_chan_key *ck, struct offload_peer_key *pk)
{
    memset(ck, 0, sizeof *ck);
    memset(pk, 0, sizeof *pk);
    addr16(ck->local, &a->local);
    addr16(ck->client, &a->client);
    ck->local_port = port_of(&a->local);
    ck->client_port = port_of(&a->client);
    ck->chan = c->number;
    addr16(pk->relay, &r->addr);
    addr16(pk->peer, &c->peer);
    pk->relay_port = port_of(&r->addr);
    pk->peer_port = port_of(&c->peer);
}

/* Scaled TURN seconds to the monotonic nanosecond at which
 * clock_scaled_now first reads them. */
static uint64_t deadline_ns(const struct clock_scaled *clk, uint32_t t)
{
    return clk->base_ms * 1000000u + (uint64_t)(t - 1) * 1000000000u / clk->scale;
}

static uint32_t perm_expiry(const struct alloc *a, const struct sockaddr_in6 *peer)
{
    uint8_t ip[16];
    addr16(ip, peer);
    for (unsigned i = 0; i < a->n_perms; i++)
        if (memcmp(&a->perms[i].ip, ip, 16) == 0)
            return a->perms[i].expires;
    return 0;
}

static void count_back(struct alloc *a, struct chan *c)
{
    struct worker_stats *st = a->t->env.stats;
    struct offload_count to_peer = offload_read(a->t->env.offload, c->off_slot - 1);
    struct offload_count to_client = offload_read(a->t->env.offload, c->off_slot);
    uint64_t dp = to_peer.packets - c->off_seen[0], db = to_peer.bytes - c->off_seen[1];
    uint64_t cp = to_client.packets - c->off_seen[2], cb = to_client.bytes - c->off_seen[3];
    c->off_seen[0] = to_peer.packets;
    c->off_seen[1] = to_peer.bytes;
    c->off_seen[2] = to_client.packets;
    c->off_seen[3] = to_client.bytes;
    if (dp) {
        a->pkts_out += dp;
        a->bytes_out += db;
        stats_add(&st->packets[a->stats_realm][STATS_TO_PEER], dp);
        stats_add(&st->bytes[a->stats_realm][STATS_TO_PEER], db);
        stats_add(&st->offload_packets[STATS_TO_PEER], dp);
    }
    if (cp) {
        a->pkts_in += cp;
        a->bytes_in += cb;
        stats_add(&st->packets[a->stats_realm][STATS_TO_CLIENT], cp);
        stats_add(&st->bytes[a->stats_realm][STATS_TO_CLIENT], cb);
        stats_add(&st->offload_packets[STATS_TO_CLIENT], cp);
    }
}

/* Out of the kernel, with its last counts taken first; the keys are made
 * from the allocation as it is now, so this runs before its 5-tuple
 * changes. */
void relay_offload_drop(struct alloc *a, struct chan *c)
{
    struct relay_table *t = a->t;
    const struct relay *r = relay_of_family(a, c->peer.sin6_family);
    struct offload_chan_key ck;
    struct offload_peer_key pk;
    if (r) {
        keys_of(a, c, r, &ck, &pk);
        offload_del(t->env.offload, &ck, &pk);
    }
    count_back(a, c);
    t->off_free[t->off_n_free++] = c->off_slot - 1;
    c->off_slot = 0;
    a->n_off--;
    t->off_chans--;
    stats_sub(&t->env.stats->offload_channels, 1);
}

void relay_offload_chan(struct alloc *a, struct chan *c)
{
    struct relay_table *t = a->t;
    struct offload *o = t->env.offload;
    if (!o)
        return;
    uint32_t now = relay_now(t);
    uint32_t until = perm_expiry(a, &c->peer);
    if (c->expires < until)
        until = c->expires;
    if (a->expires < until)
        until = a->expires;
    const struct relay *r = relay_of_family(a, c->peer.sin6_family);
    bool ok = a->ops->kernel_relay && !a->tcp && until > now && r &&
              a->client.sin6_family == c->peer.sin6_family &&
              t->env.realms->r[a->realm].now.max_bps == 0;
    struct offload_fwd cv = { .flags = a->dont_fragment ? OFFLOAD_F_DF : 0 };
    struct offload_fwd pv = { .chan = c->number, .flags = OFFLOAD_F_DF };
    if (ok) {
        cv.oif = offload_ifindex_of(o, (const struct sockaddr *)&r->addr);
        pv.oif = offload_ifindex_of(o, (const struct sockaddr *)&a->local);
        ok = cv.oif && pv.oif && (c->off_slot || t->off_n_free);
    }
    if (!ok) {
        if (c->off_slot)
            relay_offload_drop(a, c);
        return;
    }
    bool fresh = !c->off_slot;
    if (fresh)
        c->off_slot = t->off_free[--t->off_n_free] + 1;
    struct offload_chan_key ck;
    struct offload_peer_key pk;
    keys_of(a, c, r, &ck, &pk);
    memcpy(cv.src, pk.relay, 16);
    memcpy(cv.dst, pk.peer, 16);
    cv.src_port = pk.relay_port;
    cv.dst_port = pk.peer_port;
    memcpy(pv.src, ck.local, 16);
    memcpy(pv.dst, ck.client, 16);
    pv.src_port = ck.local_port;
    pv.dst_port = ck.client_port;
    cv.slot = c->off_slot - 1;
    pv.slot = c->off_slot;
    cv.expires_ns = pv.expires_ns = deadline_ns(t->env.clock, until);
    if (fresh) {
        struct offload_count p = offload_read(o, cv.slot), q = offload_read(o, pv.slot);
        c->off_seen[0] = p.packets;
        c->off_seen[1] = p.bytes;
        c->off_seen[2] = q.packets;
        c->off_seen[3] = q.bytes;
    }
    if (offload_put(o, &ck, &cv, &pk, &pv) < 0) {
        /* full, or the kernel refused: user space relays it */
        if (fresh) {
            t->off_free[t->off_n_free++] = c->off_slot - 1;
            c->off_slot = 0;
        } else {
            relay_offload_drop(a, c);
        }
        return;
    }
    if (fresh) {
        a->n_off++;
        t->off_chans++;
        stats_add(&t->env.stats->offload_channels, 1);
    }
}

void relay_offload_all(struct alloc *a)
{
    if (!a->t->env.offload)
        return;
    uint32_t now = relay_now(a->t);
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].expires > now || a->chans[i].off_slot)
            relay_offload_chan(a, &a->chans[i]);
}

void relay_offload_sweep(struct alloc *a, bool all)
{
    if (!a->n_off)
        return;
    uint32_t now = relay_now(a->t);
    for (unsigned i = 0; i < a->n_chans; i++) {
        struct chan *c = &a->chans[i];
        if (!c->off_slot)
            continue;
        if (all || c->expires <= now || perm_expiry(a, &c->peer) <= now)
            relay_offload_drop(a, c);
        else
            count_back(a, c);
    }
}

void relay_offload_perm(struct alloc *a, const struct in6_addr *ip)
{
    if (!a->t->env.offload)
        return;
    uint32_t now = relay_now(a->t);
    for (unsigned i = 0; i < a->n_chans; i++) {
        struct chan *c = &a->chans[i];
        uint8_t peer[16];
        addr16(peer, &c->peer);
        if ((c->expires > now || c->off_slot) && memcmp(peer, ip, 16) == 0)
            relay_offload_chan(a, c);
    }
}
