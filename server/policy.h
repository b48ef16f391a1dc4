/*
 * policy.h - which relay peers are allowed (pure functions; unit tested
 * without a server).
 *
 * Default deny for addresses a relay must never reach (RFC 8656 section 21,
 * the CVE-2020-26262 family): 0.0.0.0/8, 127.0.0.0/8, ::, ::1, RFC 1918,
 * 100.64.0.0/10, 169.254.0.0/16, fc00::/7, fe80::/10, multicast (224/4,
 * ff00::/8), 240/4 and broadcast, and the relay's own addresses. IPv6 forms
 * that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
 * ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96, 6to4
 * 2002::/16) are judged by the IPv4 address inside them.
 * Order: deny list first (always wins), then the allow list, then loopback
 * when allow_loopback (a loopback relay address included), then the relay's
 * own addresses, then the built-in deny ranges.
 */
#ifndef TERN_SERVER_POLICY_H
#define TERN_SERVER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conf/conf.h"

/* Peer policy: borrowed pointers into the configuration. */
struct policy {
    bool allow_loopback;
    const struct conf_cidr *allow;
    size_t n_allow;
    const struct conf_cidr *deny;
    size_t n_deny;
    const struct sockaddr_storage *own; /* relay addresses: never a peer */
    size_t n_own;
    /* Added: the other addresses that are also the relay itself. */
    const struct sockaddr_storage *own_ext; /* conf external_ip */
    size_t n_own_ext;
    const struct conf_listen *listen; /* conf listen (wildcards skipped) */
    size_t n_listen;
};

void policy_init(struct policy *p, const struct conf *c);
/* May a relay send to / accept from this peer IP (port ignored)? */
bool policy_peer_allowed(const struct policy *p, const struct sockaddr *peer);

#endif
