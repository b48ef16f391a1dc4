/*
 * transport.c - see transport.h: the listeners of one worker, opened from
 * the configuration, and the pre-flight check of their addresses.
 */
#include "server/transport/transport_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/net.h"

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

/* Open every listener of the configuration that is not open yet. */
int transport_listen_all(struct transport *t, char *err, size_t err_len)
{
    const struct conf *c = t->env.conf;
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *l = &c->listen[i];
        struct sockaddr_storage addrs[4], failed = l->addr;
        size_t n = transport_listen_addrs(c, l, addrs);
        int rc = 0;
        switch (l->proto) {
        case CONF_UDP:
            if (!udp_has(t, addrs, n))
                rc = udp_listen(t, addrs, n, &failed);
            break;
        case CONF_TCP:
        case CONF_TLS:
            if (!stream_has(t, &l->addr, l->proto == CONF_TLS))
                rc = stream_listen(t, &l->addr, l->proto == CONF_TLS);
            break;
        default:
            if (!dtls_has(t, &l->addr))
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

int transport_reconfigure(struct transport *t, const struct conf *c, char *err, size_t err_len)
{
    t->env.conf = c;
    udp_reconfigure(t);
    stream_reconfigure(t);
    dtls_reconfigure(t);
    return transport_listen_all(t, err, err_len);
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

/* Does old listen on addr with a socket of this type already? */
static bool conf_listens(const struct conf *old, const struct sockaddr_storage *addr, int type)
{
    for (size_t i = 0; old && i < old->n_listen; i++) {
        const struct conf_listen *l = &old->listen[i];
        struct sockaddr_storage addrs[4];
        size_t n = transport_listen_addrs(old, l, addrs);
        int t = (l->proto == CONF_UDP || l->proto == CONF_DTLS) ? SOCK_DGRAM : SOCK_STREAM;
        for (size_t k = 0; k < n; k++)
            if (t == type && net_addr_equal((const struct sockaddr *)&addrs[k],
                                            (const struct sockaddr *)addr))
                return true;
    }
    return false;
}

int transport_probe_addrs(const struct conf *c, char *err, size_t err_len)
{
    return transport_probe_new(NULL, c, err, err_len);
}

int transport_probe_new(const struct conf *old, const struct conf *c, char *err, size_t err_len)
{
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *l = &c->listen[i];
        struct sockaddr_storage addrs[4];
        size_t n = transport_listen_addrs(c, l, addrs);
        int type = (l->proto == CONF_UDP || l->proto == CONF_DTLS) ? SOCK_DGRAM : SOCK_STREAM;
        for (size_t k = 0; k < n; k++) {
            if (conf_listens(old, &addrs[k], type))
                continue;
            int rc = net_probe_bind((const struct sockaddr *)&addrs[k], type);
            if (rc < 0) {
                listen_error(l, &addrs[k], rc, err, err_len);
                return -1;
            }
        }
    }
    return 0;
}
