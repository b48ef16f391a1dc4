/*
 * net.h - socket address helpers and listening-socket creation shared by the
 * UDP, stream and DTLS listeners.
 */
#ifndef TERN_SERVER_NET_H
#define TERN_SERVER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NET_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" */

/* Socket buffer asked for on UDP listening sockets. */
#define NET_UDP_BUF_BYTES (4 << 20)

socklen_t net_addr_len(const struct sockaddr *sa);
unsigned net_addr_port(const struct sockaddr *sa);
void net_addr_set_port(struct sockaddr *sa, unsigned port);
bool net_addr_is_any(const struct sockaddr *sa);
/* Same family, IP and port. */
bool net_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* "1.2.3.4:5" or "[::1]:5" into buf; returns buf. */
const char *net_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* IP only, no port or brackets. */
const char *net_addr_format_ip(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Check that nobody (another ternd included) holds addr: a bind without
 * SO_REUSEPORT fails if any socket is bound there, whereas the per-worker
 * SO_REUSEPORT sockets would silently join another process's group.
 * type is SOCK_DGRAM or SOCK_STREAM. Returns 0 or -errno.
 */
int net_probe_bind(const struct sockaddr *addr, int type);

/* A non-blocking, close-on-exec socket bound to addr with SO_REUSEPORT (and
 * IPV6_V6ONLY for IPv6, so "::" and "0.0.0.0" can both be listened on).
 * Returns the fd or -errno. */
int net_socket_bind(const struct sockaddr *addr, int type);

#endif
