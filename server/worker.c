/*
 * worker.c - a worker thread: its event base and its share of every listen
 * address. See server.h for the threading model.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

static void worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct worker *)arg)->base);
}

/* A base without locks: every event of a worker is added, fired and removed
 * on its own thread, so libevent's per-call mutex would be pure cost on the
 * packet path. The one cross-thread request, stop, comes through an eventfd. */
static struct event_base *worker_base_new(struct worker *w)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return NULL;
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->stop_fd < 0)
        return NULL;
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ, worker_on_stop, w);
    if (!w->stop_ev || event_add(w->stop_ev, NULL) < 0)
        return NULL;
    return w->base;
}

int worker_init(struct worker *w, struct server *srv, int id)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->srv = srv;
    w->conf = srv->conf;
    w->stop_fd = -1;
    worker_base_new(w);
    w->io = udp_io_new();
    w->turn = calloc(1, sizeof *w->turn);
    if (!w->stop_ev || !w->io || !w->turn || alloc_table_init(w) < 0 || !(w->creds = creds_new(w)) ||
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
    /* The eventfd stays readable until read, so this also stops a worker
     * whose thread has not entered its loop yet. */
    uint64_t one = 1;
    if (w->base && w->stop_fd >= 0 && write(w->stop_fd, &one, sizeof one) < 0)
        log_error("worker %d: cannot signal stop: %s", w->id, strerror(errno));
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
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->base && w->stop_fd >= 0) /* a worker never initialised is all zero */
        close(w->stop_fd);
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
