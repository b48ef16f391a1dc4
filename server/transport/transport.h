/*
 * transport.h - server/transport: the sockets of a worker. UDP listeners
 * (recvmmsg/sendmmsg), TCP and TLS listeners and their connections
 * (bufferevents), DTLS listeners and their sessions, and the TLS/DTLS
 * contexts (tls.h). Every session embeds the TURN session head (turn.h)
 * and hands its messages to the STUN service (stun/dispatch.h).
 *
 * Bounds: limits.max_connections TCP/TLS connections per worker, and as
 * many DTLS sessions, counted apart so neither can starve the other; a DTLS
 * client holds nothing until it has echoed a cookie; limits.handshake_timeout
 * is a deadline from the first packet; limits.idle_timeout closes idle
 * sessions; a stream client that does not read loses its connection once
 * 256 KiB wait for it. A connection handed to another worker (RFC 6062
 * ConnectionBind) carries at most 320 KiB of buffered bytes, and the
 * receiving worker takes it only below its own max_connections.
 *
 * Depends on stun/ and below. Errors: 0 or -errno.
 */
#ifndef TERN_SERVER_TRANSPORT_TRANSPORT_H
#define TERN_SERVER_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/core/realm.h"

struct event_base;
struct conf;
struct worker_stats;
struct clock_scaled;
struct turn;
struct tls_server;
struct stream_handoff;

/* Borrowed pointers, all outliving the transport. */
struct transport_env {
    int worker_id;
    int n_workers;
    struct event_base *base;
    const struct conf *conf;
    struct worker_stats *stats;
    struct clock_scaled *clock;   /* held for a UDP batch */
    struct turn *turn;            /* the worker's TURN service */
    struct tls_server *tls;       /* contexts; NULL without TLS/DTLS listeners */
    const uint8_t *cookie_secret; /* 32 bytes: DTLS cookies */
    /* Send a connection to another worker (its transport_adopt runs on
     * that worker's thread): 0, or -1 (h stays the caller's). */
    int (*handoff)(void *arg, int worker, struct stream_handoff *h);
    void *handoff_arg;
};

/*
 * A TCP/TLS client connection on its way from the worker that accepted it
 * to the one whose allocation it names (an RFC 6062 ConnectionBind): the
 * socket, its TLS state (an SSL *, handshake done), and the bytes read and
 * not yet written. Owned by whoever holds it: the sender until handoff()
 * returns 0, then the receiving worker; transport_handoff_free closes it.
 */
struct stream_handoff {
    struct stream_handoff *next; /* the receiving worker's inbox */
    int fd;
    void *ssl; /* SSL *, or NULL for TCP */
    struct sockaddr_storage peer, local;
    char realm[REALM_NAME_MAX + 1];
    size_t in_len, out_len;
    uint8_t bytes[]; /* in_len read, then out_len to write */
};

struct transport;

/* NULL on out-of-memory. */
struct transport *transport_new(const struct transport_env *env);
/* Open every listener of the configuration on this worker. 0, or -errno
 * with "cannot listen on udp 1.2.3.4:3478: reason" in err. */
int transport_listen_all(struct transport *t, char *err, size_t err_len);
/* A new configuration (reload), on the worker's thread: read from now on;
 * listeners no longer in it are closed, new ones opened, the others keep
 * their sockets. 0, or -errno with the listener that failed in err (the
 * others are applied). */
int transport_reconfigure(struct transport *t, const struct conf *c, char *err, size_t err_len);
/* Close every listener and end every session. */
void transport_free(struct transport *t);
/* On the receiving worker: take the connection in h (freeing h) and handle
 * what it read. */
void transport_adopt(struct transport *t, struct stream_handoff *h);
void transport_handoff_free(struct stream_handoff *h);

/* Pre-flight, before any worker binds: is any listen address in use (by
 * anything, another ternd included)? 0, or -1 with err set. With old, only
 * the addresses old does not listen on yet (a reload). */
int transport_probe_addrs(const struct conf *c, char *err, size_t err_len);
int transport_probe_new(const struct conf *old, const struct conf *c, char *err, size_t err_len);

#endif
