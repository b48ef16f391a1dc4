/*
 * relay.h - server/relay: TURN allocations and what moves their packets.
 *
 *   alloc.h    allocations of one worker: 5-tuple table, lifetimes on a
 *              timer wheel, permissions, channels, the two data paths
 *   policy.h   which peers a relay may reach (pure functions)
 *   quota.h    local allocation quotas (process-wide, mutex inside)
 *   reserve.h  EVEN-PORT reservations (process-wide, mutex inside)
 *   tcp_relay.h  TCP allocations (RFC 6062): peer connections, pairing
 *   offload.h  the tc program relaying established UDP channels in the
 *              kernel (process-wide; map calls need no lock)
 *
 * A leaf above core/: it knows no Redis, no TURN methods and no transport.
 * It talks back to a client through the struct client_ops it was given, and
 * tells its owner (turn/) that an allocation ended through env.on_death.
 *
 * Errors: what a client asked for is answered 0 or with a STUN error code
 * (400, 403, 508); system calls (relay sockets) return 0 or -errno; creation
 * returns NULL on out-of-memory.
 */
#ifndef TERN_SERVER_RELAY_RELAY_H
#define TERN_SERVER_RELAY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct conf;
struct clock_scaled;
struct worker_stats;
struct realm_set;
struct quota;
struct alloc;
struct tcp_relay_note;
struct offload;

/*
 * What the relay layer of one worker needs, handed over at init. Every
 * pointer is borrowed and outlives the relay table.
 */
struct relay_env {
    struct event_base *base;
    const struct conf *conf;     /* relay ports, time scale */
    struct clock_scaled *clock;  /* the worker's TURN clock */
    struct worker_stats *stats;
    const struct realm_set *realms; /* each realm's max_bps, read per packet */
    struct quota *quota;         /* released when an allocation ends */
    /* An allocation is ending (before it is freed): the owner forgets it. */
    void (*on_death)(void *arg, struct alloc *a, const char *why);
    void *death_arg;
    /* RFC 6062 (tcp_relay.h): a Connect ended, or a peer connected to a
     * TCP allocation; called from the loop, with death_arg. */
    void (*on_tcp)(void *arg, struct alloc *a, const struct tcp_relay_note *n);
    int worker_id; /* the top byte of the CONNECTION-IDs this table gives */
    /* The kernel relay (offload.h), NULL when off; its counter slots of
     * this worker are offload_slots_of(worker_id). */
    struct offload *offload;
};

#endif
