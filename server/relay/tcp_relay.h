/*
 * tcp_relay.h - TCP allocations (RFC 6062): the peer data connections of an
 * allocation whose relay socket is a TCP listener, and the byte pipe
 * between each of them and its client data connection.
 *
 * A peer connection comes from a Connect (the server connects out, from
 * the relay IP) or from a permitted peer connecting to the relay address
 * (a ConnectionAttempt). Either way it waits, unread, for a ConnectionBind
 * on a new client connection; then the two bufferevents are joined and
 * bytes move between them with evbuffer_add_buffer (chains moved, never
 * copied). A side whose output holds TCP_RELAY_HIGH_WATER bytes stops the
 * other side's reads until it drains to half: a slow reader holds at most
 * that much of ours per direction, and the kernel's window pushes back on
 * the sender. limits.max_bps applies to the allocation's connections
 * together (one libevent rate-limit group per allocation).
 *
 * Bounds: TCP_RELAY_MAX_CONNS connections per allocation (connecting,
 * waiting for their bind, or bound); a Connect gets TCP_RELAY_CONNECT_TIMEOUT
 * seconds, an unbound connection TCP_RELAY_BIND_TIMEOUT (RFC 6062 section
 * 5.3: 30 s), both on the TURN clock (limits.time_scale). Everything here
 * belongs to its allocation's worker; the allocation's end closes them all.
 *
 * A CONNECTION-ID carries the worker id in its top byte, so that a
 * ConnectionBind reaching another worker's listener can be handed to this
 * one (transport/). Errors: 0 or a STUN code (400, 446, 447, 508).
 */
#ifndef TERN_SERVER_RELAY_TCP_RELAY_H
#define TERN_SERVER_RELAY_TCP_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/relay/alloc.h"

struct bufferevent;

#define TCP_RELAY_MAX_CONNS 32
#define TCP_RELAY_CONNECT_TIMEOUT 30 /* seconds, TURN clock */
#define TCP_RELAY_BIND_TIMEOUT 30    /* seconds, TURN clock */
#define TCP_RELAY_HIGH_WATER (128 * 1024)
#define TCP_RELAY_BUCKETS 256

/* The Connect request to answer when the peer connection is decided: kept
 * by this layer for turn/, which fills it and reads it back. */
struct tcp_relay_req {
    uint8_t tid[12];
    bool fingerprint;
    bool sha256;
    uint8_t alg;
    uint8_t key_len;
    uint8_t key[32];
    unsigned realm;
};

enum tcp_relay_what {
    TCP_RELAY_CONNECTED, /* the Connect succeeded: answer with id */
    TCP_RELAY_FAILED,    /* the Connect failed or timed out: 447 */
    TCP_RELAY_ATTEMPT,   /* a peer connected: ConnectionAttempt */
};

/* What relay_env.on_tcp is told; borrowed for the call. */
struct tcp_relay_note {
    enum tcp_relay_what what;
    uint32_t id;
    const struct sockaddr *peer;
    const struct tcp_relay_req *req; /* CONNECTED, FAILED */
};

/* The worker a CONNECTION-ID belongs to. */
static inline int tcp_relay_worker(uint32_t id)
{
    return (int)(id >> 24);
}

/* alloc_relay_start of a TCP allocation: listen on its relay socket. */
int tcp_relay_listen(struct alloc *a);
/* Connect to peer (permission and policy checked by the caller): 0, the
 * answer comes through env.on_tcp; or 446 (peer already connected), 447
 * (cannot even start), 508 (TCP_RELAY_MAX_CONNS). */
int tcp_relay_connect(struct alloc *a, const struct sockaddr *peer, const struct tcp_relay_req *req);
/* The allocation of a connection waiting for its bind, or NULL. */
struct alloc *tcp_relay_waiting(struct relay_table *t, uint32_t id);
/* Join client (a bufferevent over the client data connection, taken in
 * every case; bytes may wait in its input) to connection id. transport is
 * the client's enum stats_transport (counted as a session while bound).
 * 0, or 400 when id waits no more (client is freed). */
int tcp_relay_bind(struct relay_table *t, uint32_t id, struct bufferevent *client,
                   unsigned transport);
/* The allocation ends: close every connection of it. */
void tcp_relay_alloc_end(struct alloc *a);

#endif
