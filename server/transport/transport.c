/*
 * transport.c - see transport.h: the listeners of one worker, opened from
 * the configuration, and the pre-flight check of their addresses.
 */
#include "server/transport/transport_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/net.h"

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

struct transport *transport_new(const struct transport_env *env)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    t->io = udp_io_new();
    if (!t->io) {
        free(t);
        return NULL;
    }
    return t;
}

static void listen_error(const struct conf_listen *l, const struct sockaddr_storage *addr,
                         int rc, char *err, size_t err_len)
{
    char a[NET_ADDRSTRLEN];
    snprintf(err, err_len, "cannot listen on %s %s: %s", conf_proto_name(l->proto),
             net_addr_format((const struct sockaddr *)addr, a, sizeof a), strerror(-rc));
}

int transport_listen_all(struct transport *t, char *err, size_t err_len)
{
    const struct conf *c = t->env.conf;
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *l = &c->listen[i];
        struct sockaddr_storage addrs[4], failed = l->addr;
        int rc;
        switch (l->proto) {
        case CONF_UDP:
            rc = udp_listen(t, addrs, rfc5780_addrs(c, &l->addr, addrs), &failed);
            break;
        case CONF_TCP:
        case CONF_TLS:
            rc = stream_listen(t, &l->addr, l->proto == CONF_TLS);
            break;
        default:
            rc = dtls_listen(t, &l->addr);
            break;
        }
        if (rc < 0) {
            listen_error(l, &failed, rc, err, err_len);
            return rc;
        }
    }
    return 0;
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    udp_close_all(t);
    stream_close_all(t);
    dtls_close_all(t);
    udp_io_free(t->io);
    free(t);
}

int transport_probe_addrs(const struct conf *c, char *err, size_t err_len)
{
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *l = &c->listen[i];
        struct sockaddr_storage addrs[4];
        size_t n = l->proto == CONF_UDP ? rfc5780_addrs(c, &l->addr, addrs) : 1;
        if (n == 1)
            addrs[0] = l->addr;
        int type = (l->proto == CONF_UDP || l->proto == CONF_DTLS) ? SOCK_DGRAM : SOCK_STREAM;
        for (size_t k = 0; k < n; k++) {
            int rc = net_probe_bind((const struct sockaddr *)&addrs[k], type);
            if (rc < 0) {
                listen_error(l, &addrs[k], rc, err, err_len);
                return -1;
            }
        }
    }
    return 0;
}
