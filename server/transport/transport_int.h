/*
 * transport_int.h - what the parts of transport/ share (transport.c: the
 * set of a worker; udp.c, stream.c, dtls.c: one kind of socket each). Not
 * for use outside server/transport/.
 */
#ifndef TERN_SERVER_TRANSPORT_TRANSPORT_INT_H
#define TERN_SERVER_TRANSPORT_TRANSPORT_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "proto/proxy.h"
#include "server/transport/transport.h"
#include "server/turn/turn.h"

#define TRANSPORT_MAX_UDP (CONF_MAX_LISTEN * 4) /* RFC 5780: four per listener */

struct udp_sock;
struct udp_io;
struct dtls_ep;
struct stream_listener;
struct stream_conn;

/* A worker's sockets and sessions; owned by the worker. */
struct transport {
    struct transport_env env;
    struct udp_sock *udp[TRANSPORT_MAX_UDP];
    size_t n_udp;
    struct udp_io *io;          /* recvmmsg/sendmmsg scratch, owned */
    struct dtls_ep *dtls[CONF_MAX_LISTEN];
    size_t n_dtls;
    unsigned n_dtls_sessions;   /* bounded by max_connections */
    struct stream_listener *listeners[CONF_MAX_LISTEN];
    size_t n_listeners;
    struct stream_conn *conns;  /* live TCP/TLS connections */
    unsigned n_conns;           /* bounded by max_connections */
};

/* transport.c: the addresses a listen entry binds (RFC 5780 gives a UDP
 * listener four); how many, 1 or 4. */
size_t transport_listen_addrs(const struct conf *c, const struct conf_listen *l,
                              struct sockaddr_storage out[4]);
/* The listen entry of this protocol on addr in c, NULL when c has none:
 * what a listener reads at each accept, so that a reload that changes an
 * entry's realm or proxy_protocol applies to the next connection. */
const struct conf_listen *transport_listen_find(const struct conf *c, enum conf_proto proto,
                                                const struct sockaddr_storage *addr);
/* The realm of the listener of this protocol on addr (its first address),
 * "" when it names none. */
const char *transport_listen_realm(const struct conf *c, enum conf_proto proto,
                                   const struct sockaddr_storage *addr);
/* After a handshake: a session not pinned to a realm by its listener goes
 * to the realm whose hosts hold the SNI name the client asked for. */
void transport_sni_realm(const struct conf *c, SSL *ssl, struct turn_session *ts);
/* Is this listen entry in the configuration the transport now has? */
bool transport_wants(const struct transport *t, enum conf_proto proto,
                     const struct sockaddr_storage *addrs, size_t n);

/* Each kind: is a listener for these addresses open; and after a reload,
 * point its sessions at the new configuration and close the listeners it
 * no longer has (a UDP listener's allocations end with it; a stream
 * listener's connections stay; a DTLS listener's sessions end). */
bool udp_has(const struct transport *t, const struct sockaddr_storage *addrs, size_t n);
void udp_reconfigure(struct transport *t);
bool stream_has(const struct transport *t, const struct sockaddr_storage *addr, bool tls);
void stream_reconfigure(struct transport *t);
bool dtls_has(const struct transport *t, const struct sockaddr_storage *addr);
void dtls_reconfigure(struct transport *t);

/* udp.c: the sockets of one UDP listen address (one, or four for RFC
 * 5780: the listen address, its alternate port, the alternate IP, both). */
int udp_listen(struct transport *t, const struct sockaddr_storage *addrs, size_t n_addrs,
               struct sockaddr_storage *failed);
void udp_close_all(struct transport *t);
struct udp_io *udp_io_new(void);
void udp_io_free(struct udp_io *io);

/* proxy_wait.c: a PROXY header read off a new connection (proto/proxy.h)
 * without taking one byte past it, however it is split into segments.
 * Embedded in its connection, zeroed before the first read. */
struct proxy_wait {
    uint8_t buf[PROXY_PARSE_MAX]; /* the header's first bytes; TLVs beyond are not kept */
    size_t have;                  /* bytes of the header consumed so far */
};
/* 1: the header is whole and in *out; 0: wait for the socket to be readable
 * again; -EPROTO: not a valid header; -ECONNRESET: the peer closed first;
 * another -errno: recv failed. */
int proxy_wait_read(int fd, struct proxy_wait *w, struct proxy_header *out);

/* stream.c: TCP, or TLS when tls is true. */
int stream_listen(struct transport *t, const struct sockaddr_storage *addr, bool tls);
void stream_close_all(struct transport *t);

/* dtls.c */
int dtls_listen(struct transport *t, const struct sockaddr_storage *addr);
void dtls_close_all(struct transport *t);

#endif
