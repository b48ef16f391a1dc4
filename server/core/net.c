/*
 * net.c - see net.h.
 */
#include "server/core/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

unsigned net_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

void net_addr_set_port(struct sockaddr *sa, unsigned port)
{
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

bool net_addr_is_any(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

const char *net_addr_format_ip(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *ip = sa->sa_family == AF_INET6
                         ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                         : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, ip, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

const char *net_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    net_addr_format_ip(sa, ip, sizeof ip);
    if (sa->sa_family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ip, net_addr_port(sa));
    else
        snprintf(buf, len, "%s:%u", ip, net_addr_port(sa));
    return buf;
}

static int socket_open(const struct sockaddr *addr, int type, bool reuseport)
{
    int fd = socket(addr->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (type == SOCK_DGRAM) {
        /* One listening socket per worker takes every client's packets: a
         * burst from many clients overflows the default ~200 KB queue long
         * before the worker is behind on average. The kernel caps this at
         * net.core.rmem_max / wmem_max. */
        int sz = NET_UDP_BUF_BYTES;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (bind(fd, addr, net_addr_len(addr)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int net_probe_bind(const struct sockaddr *addr, int type)
{
    int fd = socket_open(addr, type, false);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int net_socket_bind(const struct sockaddr *addr, int type)
{
    return socket_open(addr, type, true);
}

int net_host_addrs(struct sockaddr_in6 *out, size_t max)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) < 0)
        return -errno;
    size_t n = 0;
    for (struct ifaddrs *it = ifs; it && n < max; it = it->ifa_next) {
        const struct sockaddr *sa = it->ifa_addr;
        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], sa, net_addr_len(sa));
        net_addr_set_port((struct sockaddr *)&out[n], 0);
        n++;
    }
    freeifaddrs(ifs);
    return (int)n;
}
