/*
 * relay_int.h - what the parts of relay/ share: alloc.c (the table, the
 * timer wheel, lifetimes) uses relay_data.c (relay sockets and the data
 * paths), which uses perm.c (permissions and channels); perm.c and alloc.c
 * use relay_offload.c (channels relayed in the kernel); never the other
 * way. Not for use outside server/relay/.
 */
#ifndef TERN_SERVER_RELAY_RELAY_INT_H
#define TERN_SERVER_RELAY_RELAY_INT_H

#include "server/core/clock.h"
#include "server/relay/alloc.h"
#include "server/relay/tcp_relay.h"

struct relay_rx;

/* A worker's allocations. Owned by the worker (relay_table_new/free). */
struct relay_table {
    struct relay_env env;
    struct alloc **buckets;
    size_t n_buckets;
    size_t count;
    struct alloc *wheel[ALLOC_WHEEL_SLOTS];
    uint32_t wheel_pos; /* last second processed */
    struct event *tick;
    uint32_t next_id;
    uint64_t rng;          /* xorshift state: relay ports, Data indication ids */
    struct relay_rx *rx;   /* relay receive scratch, owned */
    struct tcp_conn *tcp_ids[TCP_RELAY_BUCKETS]; /* RFC 6062 connections by id (tcp_relay.c) */
    /* The kernel relay's counter slots of this worker (relay_offload.c): a
     * stack of free slot pairs, owned. */
    uint32_t *off_free;
    uint32_t off_n_free;
    uint32_t off_chans; /* channels relayed in the kernel now */
    bool off_recheck;   /* a reload: are they all still the kernel's? */
};

/* The table's TURN clock, in (scaled) seconds. */
static inline uint32_t relay_now(const struct relay_table *t)
{
    return clock_scaled_now(t->env.clock);
}

/* xorshift: relay ports and Data indication ids need to be unpredictable
 * to an outsider, not cryptographic (the state is seeded from RAND_bytes). */
static inline uint64_t relay_rng_next(struct relay_table *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

/* The allocation's relay socket of that family, or NULL. */
static inline const struct relay *relay_of_family(const struct alloc *a, int family)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (a->relay[i].addr.sin6_family == family)
            return &a->relay[i];
    return NULL;
}

/* relay_data.c: the receive scratch of a table. */
struct relay_rx *relay_rx_new(void);
void relay_rx_free(struct relay_rx *rx);
/* perm.c: the live channel of a number / of a peer at time now, or NULL;
 * a permission for peer at time now. */
const struct chan *relay_chan_by_number(const struct alloc *a, uint16_t number, uint32_t now);
const struct chan *relay_chan_by_peer(const struct alloc *a, const struct sockaddr *peer,
                                      uint32_t now);
bool relay_perm_ok_at(const struct alloc *a, const struct sockaddr *peer, uint32_t now);

/* relay_offload.c. Errors: none reported; a channel the kernel cannot take
 * is relayed in user space. */
int relay_offload_init(struct relay_table *t);
void relay_offload_fini(struct relay_table *t);
/* Let the kernel relay channel c of a (or refresh its expiry), when a is
 * a plain UDP allocation without a bandwidth limit and c's peer has a
 * permission. */
void relay_offload_chan(struct alloc *a, struct chan *c);
/* c out of the kernel, its counts taken (before c is reused). */
void relay_offload_drop(struct alloc *a, struct chan *c);
/* The channels to peers at ip, after their permission was refreshed. */
void relay_offload_perm(struct alloc *a, const struct in6_addr *ip);
/* Every live channel of a, after its 5-tuple, table or lifetime changed. */
void relay_offload_all(struct alloc *a);
/* Counters read back for every channel of a; the expired ones (or all, with
 * all = true, before a ends or moves) taken out of the kernel. */
void relay_offload_sweep(struct alloc *a, bool all);

#endif
