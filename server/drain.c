/*
 * drain.c - see drain.h. The flag is read by every worker on each Allocate
 * (an atomic load); the main thread checks once a second whether the node
 * is empty or the deadline has come.
 */
#include "server/drain.h"

#include <event2/event.h>
#include <stdatomic.h>

#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/stats.h"
#include "server/server.h"

unsigned long long drain_allocations(const struct server *srv)
{
    unsigned long long n = 0;
    for (int i = 0; i < srv->n_workers; i++)
        n += stats_read_realms(srv->workers[i].stats.allocations);
    return n;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *srv = arg;
    unsigned long long n = drain_allocations(srv);
    if (n == 0) {
        log_info("drain: no allocation left; stopping");
        event_base_loopbreak(srv->base);
        return;
    }
    if (clock_mono_ms() >= srv->drain_deadline_ms) {
        log_info("drain: deadline reached with %llu allocations left; stopping", n);
        event_base_loopbreak(srv->base);
        return;
    }
    struct timeval tv = { .tv_sec = 1 };
    evtimer_add(srv->drain_timer, &tv);
}

int drain_start(struct server *srv, unsigned deadline_s)
{
    if (!srv->drain_timer && !(srv->drain_timer = evtimer_new(srv->base, on_drain_tick, srv)))
        return -1;
    srv->drain_deadline_ms = clock_mono_ms() + (uint64_t)deadline_s * 1000u;
    if (!atomic_exchange(&srv->draining, true))
        log_info("drain: new allocations go %s; stopping when the last of %llu ends, in %u s at most",
                 srv->conf->n_alternate_servers ? "to the alternate servers (300)" : "away (508)",
                 drain_allocations(srv), deadline_s);
    else
        log_info("drain: deadline moved to %u s from now", deadline_s);
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    evtimer_add(srv->drain_timer, &tv);
    return 0;
}

void drain_stop(struct server *srv)
{
    if (!atomic_exchange(&srv->draining, false))
        return;
    if (srv->drain_timer)
        event_del(srv->drain_timer);
    log_info("drain: cancelled; new allocations are welcome again");
}

bool drain_active(const struct server *srv)
{
    return atomic_load(&srv->draining);
}

void drain_free(struct server *srv)
{
    if (srv->drain_timer)
        event_free(srv->drain_timer);
    srv->drain_timer = NULL;
}
