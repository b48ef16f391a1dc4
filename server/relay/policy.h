/*
 * policy.h - which relay peers are allowed (pure functions; unit tested
 * without a server).
 *
 * Default deny for addresses a relay must never reach (RFC 8656 section 21,
 * the CVE-2020-26262 family): 0.0.0.0/8, 127.0.0.0/8, ::, ::1, RFC 1918,
 * 100.64.0.0/10, 169.254.0.0/16, fc00::/7, fe80::/10, multicast (224/4,
 * ff00::/8), 240/4 and broadcast, and the host itself: the relay, external
 * and listen addresses of the configuration and every address on the
 * host's interfaces (policy_set_host).
 *
 * IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96,
 * IPv4-compatible ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96
 * and the local-use 64:ff9b:1::/48 of RFC 8215 at every RFC 6052 prefix
 * length, 6to4 2002::/16, Teredo 2001::/32) are judged by the IPv4 address
 * inside them in every step: an allow rule must name that IPv4 address (a
 * rule matching only the IPv6 form, such as 2000::/3, admits nothing
 * inside), whereas a deny rule matches either form.
 *
 * Order for each address judged: deny list first (always wins), then the
 * allow list, then loopback when allow_loopback, then the host's own
 * addresses, then the built-in deny ranges.
 */
#ifndef TERN_SERVER_RELAY_POLICY_H
#define TERN_SERVER_RELAY_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conf/conf.h"

#define POLICY_MAX_HOST 64

/*
 * Peer policy of one worker: lists borrowed from the configuration (which
 * outlives it), and a copy of the host's interface addresses (owned).
 */
struct policy {
    bool allow_loopback;
    const struct conf_cidr *allow;
    size_t n_allow;
    const struct conf_cidr *deny;
    size_t n_deny;
    const struct sockaddr_storage *own; /* relay addresses: never a peer */
    size_t n_own;
    const struct sockaddr_storage *own_ext; /* conf external_ip */
    size_t n_own_ext;
    const struct conf_listen *listen; /* conf listen (wildcards skipped) */
    size_t n_listen;
    struct sockaddr_in6 host[POLICY_MAX_HOST]; /* interface addresses */
    size_t n_host;
};

void policy_init(struct policy *p, const struct conf *c);
/* Replace the host's addresses (net_host_addrs), e.g. after a reload. */
void policy_set_host(struct policy *p, const struct sockaddr_in6 *addrs, size_t n);
/* May a relay send to / accept from this peer IP (port ignored)? */
bool policy_peer_allowed(const struct policy *p, const struct sockaddr *peer);

#endif
