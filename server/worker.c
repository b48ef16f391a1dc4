/*
 * worker.c - a worker thread: its event base and its share of every listen
 * address. See server.h for the threading model.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "server/creds.h"
#include "server/dtls.h"
#include "server/log.h"
#include "server/net.h"
#include "server/server.h"
#include "server/stream.h"
#include "server/turn.h"
#include "server/udp.h"

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

int worker_init(struct worker *w, struct server *srv, int id)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->srv = srv;
    w->conf = srv->conf;
    w->base = event_base_new();
    w->io = udp_io_new();
    w->turn = calloc(1, sizeof *w->turn);
    if (!w->base || !w->io || !w->turn || alloc_table_init(w) < 0 || !(w->creds = creds_new(w)) ||
        shared_start(w) < 0) {
        log_error("worker %d: out of memory", id);
        return -1;
    }
    const struct conf *c = w->conf;
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *l = &c->listen[i];
        struct sockaddr_storage addrs[4], failed = l->addr;
        int rc;
        switch (l->proto) {
        case CONF_UDP:
            rc = udp_listen(w, addrs, rfc5780_addrs(c, &l->addr, addrs), &failed);
            break;
        case CONF_TCP:
        case CONF_TLS:
            rc = stream_listen(w, &l->addr, l->proto == CONF_TLS);
            break;
        default:
            rc = dtls_listen(w, &l->addr);
            break;
        }
        if (rc < 0) {
            char a[NET_ADDRSTRLEN];
            log_error("cannot listen on %s %s: %s", conf_proto_name(l->proto),
                      net_addr_format((struct sockaddr *)&failed, a, sizeof a), strerror(-rc));
            return -1;
        }
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
        log_error("worker %d: cannot start thread: %s", w->id, strerror(rc));
        return -1;
    }
    return 0;
}

void worker_stop(struct worker *w)
{
    /* loopexit, not loopbreak: it is queued as an event, so it also stops a
     * worker whose thread has not entered its loop yet. */
    if (w->base)
        event_base_loopexit(w->base, NULL);
}

void worker_join_free(struct worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    alloc_table_free(w);
    shared_stop(w);
    creds_free(w->creds);
    free(w->turn);
    udp_close_all(w);
    stream_close_all(w);
    dtls_close_all(w);
    udp_io_free(w->io);
    if (w->base)
        event_base_free(w->base);
    memset(w, 0, sizeof *w);
}

/* The addresses a worker will bind, for the pre-flight "in use" check. */
int worker_probe_addrs(const struct conf *c, char *err, size_t err_len)
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
                char a[NET_ADDRSTRLEN];
                snprintf(err, err_len, "cannot listen on %s %s: %s", conf_proto_name(l->proto),
                         net_addr_format((struct sockaddr *)&addrs[k], a, sizeof a),
                         strerror(-rc));
                return -1;
            }
        }
    }
    return 0;
}
