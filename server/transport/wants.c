/*
 * wants.c - which listeners a configuration asks for: the addresses each
 * listen entry binds, and whether the transport's configuration still has a
 * given listener (after a reload). A leaf of transport/: udp.c, stream.c,
 * dtls.c and transport.c all ask it.
 */
#include "server/core/net.h"
#include "server/transport/transport_int.h"

/*
 * The RFC 5780 address set of a UDP listen address: itself, its alternate
 * port, the alternate IP, and both. Only for a specific IP of the same family
 * as the alternate: a wildcard listener has no single address to report as
 * RESPONSE-ORIGIN. Returns how many addresses were written (1 or 4).
 */
static size_t rfc5780_addrs(const struct conf *c, const struct sockaddr_storage *listen,
                            struct sockaddr_storage out[4])
{
    out[0] = *listen;
    const struct sockaddr *l = (const struct sockaddr *)listen;
    const struct sockaddr *alt = (const struct sockaddr *)&c->alternate;
    if (!c->has_alternate || alt->sa_family != l->sa_family || net_addr_is_any(l))
        return 1;
    out[1] = *listen;
    net_addr_set_port((struct sockaddr *)&out[1], net_addr_port(alt));
    out[2] = c->alternate;
    net_addr_set_port((struct sockaddr *)&out[2], net_addr_port(l));
    out[3] = c->alternate;
    return 4;
}

size_t transport_listen_addrs(const struct conf *c, const struct conf_listen *l,
                              struct sockaddr_storage out[4])
{
    if (l->proto == CONF_UDP)
        return rfc5780_addrs(c, &l->addr, out);
    out[0] = l->addr;
    return 1;
}

const struct conf_listen *transport_listen_find(const struct conf *c, enum conf_proto proto,
                                                const struct sockaddr_storage *addr)
{
    for (size_t i = 0; i < c->n_listen; i++)
        if (c->listen[i].proto == proto &&
            net_addr_equal((const struct sockaddr *)&c->listen[i].addr,
                           (const struct sockaddr *)addr))
            return &c->listen[i];
    return NULL;
}

const char *transport_listen_realm(const struct conf *c, enum conf_proto proto,
                                   const struct sockaddr_storage *addr)
{
    const struct conf_listen *l = transport_listen_find(c, proto, addr);
    return l ? l->realm : "";
}

void transport_sni_realm(const struct conf *c, SSL *ssl, struct turn_session *ts)
{
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    int r = host && !ts->realm[0] ? conf_realm_by_host(c, host) : -1;
    if (r <= 0)
        return;
    struct conf_realm_view v;
    conf_realm_get(c, (size_t)r, &v);
    turn_session_set_realm(ts, v.name);
}

bool transport_wants(const struct transport *t, enum conf_proto proto,
                     const struct sockaddr_storage *addrs, size_t n)
{
    const struct conf *c = t->env.conf;
    for (size_t i = 0; i < c->n_listen; i++) {
        struct sockaddr_storage want[4];
        if (c->listen[i].proto != proto || transport_listen_addrs(c, &c->listen[i], want) != n)
            continue;
        size_t k = 0;
        while (k < n && net_addr_equal((const struct sockaddr *)&want[k],
                                       (const struct sockaddr *)&addrs[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

