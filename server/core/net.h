/*
 * net.h - socket address helpers and listening-socket creation shared by the
 * UDP, stream and DTLS listeners.
 */
#ifndef TERN_SERVER_CORE_NET_H
#define TERN_SERVER_CORE_NET_H

#include <stdbool.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#define NET_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" */

/* Socket buffer asked for on UDP listening sockets. */
#define NET_UDP_BUF_BYTES (4 << 20)

/* Inline: both run for every relayed packet. */
static inline socklen_t net_addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Same family, IP and port. */
static inline bool net_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

unsigned net_addr_port(const struct sockaddr *sa);
void net_addr_set_port(struct sockaddr *sa, unsigned port);
bool net_addr_is_any(const struct sockaddr *sa);
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

/*
 * Every IPv4 and IPv6 address on the host's interfaces (getifaddrs), ports
 * 0, into out[0..max). Returns how many were written, or -errno. Used to keep
 * relays from reaching the host itself (RFC 8656 section 21).
 */
int net_host_addrs(struct sockaddr_in6 *out, size_t max);

#endif
