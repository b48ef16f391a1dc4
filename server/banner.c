/*
 * banner.c - see banner.h.
 */
#include "server/banner.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "server/core/net.h"
#include "server/server.h"

/* The host a browser would use: a configured external IP, a specific listen
 * IP, or the first non-loopback interface address. */
static void ice_host(const struct conf *c, char *buf, size_t len)
{
    const struct sockaddr *pick = NULL;
    if (c->n_external_ip)
        pick = (const struct sockaddr *)&c->external_ip[0];
    for (size_t i = 0; !pick && i < c->n_listen; i++)
        if (!net_addr_is_any((const struct sockaddr *)&c->listen[i].addr))
            pick = (const struct sockaddr *)&c->listen[i].addr;
    struct ifaddrs *ifs = NULL, *it;
    if (!pick && getifaddrs(&ifs) == 0) {
        for (it = ifs; it && !pick; it = it->ifa_next)
            if (it->ifa_addr && it->ifa_addr->sa_family == AF_INET && !(it->ifa_flags & IFF_LOOPBACK))
                pick = it->ifa_addr;
    }
    if (pick) {
        char ip[NET_ADDRSTRLEN];
        net_addr_format_ip(pick, ip, sizeof ip);
        snprintf(buf, len, pick->sa_family == AF_INET6 ? "[%s]" : "%s", ip);
    } else {
        snprintf(buf, len, "127.0.0.1");
    }
    freeifaddrs(ifs);
}

/* One line: where we listen and the iceServers entry a browser would use. */
void banner_print(const struct conf *c, int n_workers)
{
    char line[4096], host[NET_ADDRSTRLEN + 2], a[NET_ADDRSTRLEN];
    size_t n = (size_t)snprintf(line, sizeof line, "ternd %s listening on", TERN_VERSION);
    for (size_t i = 0; i < c->n_listen && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %s %s", i ? "," : "",
                              conf_proto_name(c->listen[i].proto),
                              net_addr_format((const struct sockaddr *)&c->listen[i].addr, a, sizeof a));
    ice_host(c, host, sizeof host);
    n += (size_t)snprintf(line + n, sizeof line - n, " (%d workers); iceServers: [{\"urls\": [", n_workers);
    bool first = true;
    for (size_t i = 0; i < c->n_listen && n < sizeof line; i++) {
        const struct conf_listen *l = &c->listen[i];
        const char *scheme = (l->proto == CONF_TLS || l->proto == CONF_DTLS) ? "stuns" : "stun";
        if (l->proto == CONF_TCP || l->proto == CONF_DTLS)
            continue; /* stun: URIs name no transport; UDP and TLS stand for them */
        n += (size_t)snprintf(line + n, sizeof line - n, "%s\"%s:%s:%u\"", first ? "" : ", ", scheme,
                              host, net_addr_port((const struct sockaddr *)&l->addr));
        first = false;
    }
    n += (size_t)snprintf(line + n, sizeof line - n, "]}");
    /* The TURN entry with the first static user that has a password. */
    const struct conf_user *u = NULL;
    for (size_t i = 0; !u && i < c->n_users; i++)
        if (c->users[i].password[0])
            u = &c->users[i];
    if (u && n < sizeof line) {
        n += (size_t)snprintf(line + n, sizeof line - n, ", {\"urls\": [");
        first = true;
        for (size_t i = 0; i < c->n_listen && n < sizeof line; i++) {
            const struct conf_listen *l = &c->listen[i];
            if (l->proto == CONF_DTLS)
                continue; /* browsers have no turns: over DTLS */
            static const char *const uri[] = { "turn:%s:%u?transport=udp", "turn:%s:%u?transport=tcp",
                                               "turns:%s:%u?transport=tcp" };
            char one[128];
            snprintf(one, sizeof one, uri[l->proto], host, net_addr_port((const struct sockaddr *)&l->addr));
            n += (size_t)snprintf(line + n, sizeof line - n, "%s\"%s\"", first ? "" : ", ", one);
            first = false;
        }
        if (n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n,
                                  "], \"username\": \"%s\", \"credential\": \"%s\"}", u->user,
                                  u->password);
    }
    if (n < sizeof line)
        snprintf(line + n, sizeof line - n, "]");
    printf("%s\n", line);
    fflush(stdout);
}

