/*
 * worker.c - a worker thread: its event base, and its instance of every
 * layer, wired together here (see server.h for the threading model):
 *
 *   cluster   (Redis: credentials, quotas, statistics, realm limits)
 *   relay     (allocations; tells turn of their end through a hook)
 *   turn      (TURN service; uses relay and cluster)
 *   transport (sockets; sessions hand messages to stun, then turn)
 *
 * Shutdown runs the other way: the transport ends every session (their
 * parked requests are cancelled, their allocations end), then the relay
 * table, the TURN service and the cluster go.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/cluster/cluster.h"
#include "server/core/log.h"
#include "server/relay/alloc.h"
#include "server/server.h"
#include "server/transport/transport.h"
#include "server/turn/turn.h"

static void worker_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_error("worker %d: cannot read its wake-up: %s", w->id, strerror(errno));
    unsigned r = atomic_exchange(&w->requests, 0);
    if (r & WORKER_REFRESH_HOST)
        turn_refresh_host(w->turn);
    if (r & WORKER_STOP)
        event_base_loopbreak(w->base);
}

/* A base without locks: every event of a worker is added, fired and removed
 * on its own thread, so libevent's per-call mutex would be pure cost on the
 * packet path. Requests from the main thread come through an eventfd. */
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
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return NULL;
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, worker_on_wake, w);
    if (!w->wake_ev || event_add(w->wake_ev, NULL) < 0)
        return NULL;
    return w->base;
}

int worker_init(struct worker *w, struct server *srv, int id)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->srv = srv;
    w->conf = srv->conf;
    w->wake_fd = -1;
    const struct conf *c = w->conf;
    clock_scaled_init(&w->clock, c->time_scale);
    w->limits = (struct limits){ c->max_bps, c->user_quota, c->total_quota };
    if (!worker_base_new(w))
        goto nomem;
    if (srv->has_redis) {
        struct cluster_env ce = { .worker_id = id, .base = w->base, .conf = c,
                                  .url = &srv->redis_url, .stats = &w->stats,
                                  .limits = &w->limits };
        if (!(w->cluster = cluster_new(&ce)))
            goto nomem;
    }
    struct turn_env te = { .worker_id = id, .n_workers = srv->n_workers, .node_id = srv->node_id,
                           .base = w->base, .conf = c, .stats = &w->stats, .clock = &w->clock,
                           .limits = &w->limits, .auth = &srv->auth,
                           .nonce_key = srv->nonce_key, .quota = srv->quota,
                           .resv = srv->resv, .cluster = w->cluster,
                           .rate_sources = srv->rate };
    if (!(w->turn = turn_new(&te)))
        goto nomem;
    struct relay_env re = { .base = w->base, .conf = c, .clock = &w->clock, .stats = &w->stats,
                            .limits = &w->limits, .quota = srv->quota,
                            .on_death = turn_on_alloc_death, .death_arg = w->turn };
    if (!(w->relay = relay_table_new(&re)))
        goto nomem;
    turn_set_relay(w->turn, w->relay);
    struct transport_env xe = { .worker_id = id, .base = w->base, .conf = c, .stats = &w->stats,
                                .clock = &w->clock, .turn = w->turn, .tls = &srv->tls,
                                .cookie_secret = srv->cookie_secret };
    if (!(w->transport = transport_new(&xe)))
        goto nomem;
    char err[256];
    if (transport_listen_all(w->transport, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
nomem:
    log_error("worker %d: out of memory", id);
    return -1;
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

void worker_post(struct worker *w, enum worker_request r)
{
    /* The eventfd stays readable until read, so this also reaches a worker
     * whose thread has not entered its loop yet. */
    uint64_t one = 1;
    atomic_fetch_or(&w->requests, (unsigned)r);
    if (w->base && w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof one) < 0)
        log_error("worker %d: cannot wake: %s", w->id, strerror(errno));
}

void worker_join_free(struct worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    transport_free(w->transport);
    relay_table_free(w->relay);
    turn_free(w->turn);
    cluster_free(w->cluster);
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->base && w->wake_fd >= 0) /* a worker never initialised is all zero */
        close(w->wake_fd);
    if (w->base)
        event_base_free(w->base);
    memset(w, 0, sizeof *w);
}
