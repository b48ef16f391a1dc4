/*
 * accept.c - see accept.h.
 */
#include "server/transport/accept.h"

#include <errno.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/core/famine.h"
#include "server/core/log.h"

#define REST_MS 100
#define SHED_MAX 64 /* per wake-up, so one listener cannot hold the loop */

static void guard_rest(struct accept_guard *g)
{
    struct timeval tv = { .tv_sec = 0, .tv_usec = REST_MS * 1000 };
    event_del(g->shed_ev);
    evtimer_add(g->rest, &tv);
}

/* Reset a connection we cannot serve: the client hears of it now, and no
 * TIME_WAIT is left behind. The reset must not free the descriptor's slot:
 * the client, woken by the reset, connects again at once, and another
 * worker's listener (accepting on its own, outside the famine lock) would
 * take the slot and the spare be lost. connect(AF_UNSPEC) aborts the
 * connection (RST) and keeps the descriptor, which becomes the spare. */
static void refuse(int fd)
{
    struct sockaddr sa = { .sa_family = AF_UNSPEC };
    if (connect(fd, &sa, sizeof sa) == 0) {
        famine_spare_adopt(fd);
        return;
    }
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    famine_spare_take();
}

static void guard_on_readable(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct accept_guard *g = arg;
    famine_lock();
    for (int i = 0; i < SHED_MAX; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            /* Descriptors are back: this connection is served. */
            famine_spare_take();
            famine_set(false);
            famine_unlock();
            log_info("%s: descriptors available again; %u connections were refused meanwhile",
                     g->name, g->shed);
            g->starved = false;
            g->shed = 0;
            event_del(g->shed_ev);
            evconnlistener_enable(g->l);
            if (g->on_accept)
                g->on_accept(g->l, fd, (struct sockaddr *)&sa, (int)len, g->arg);
            else
                close(fd);
            return;
        }
        if (errno == ECONNABORTED || errno == EINTR)
            continue;
        if (errno != EMFILE && errno != ENFILE)
            break; /* EAGAIN: the backlog is empty */
        if (famine_spare_take() < 0) {
            guard_rest(g);
            break;
        }
        famine_spare_drop();
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            famine_spare_take();
            break;
        }
        refuse(fd);
        g->shed++;
    }
    famine_unlock();
}

static void on_rest_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct accept_guard *g = arg;
    event_add(g->shed_ev, NULL);
}

int accept_guard_init(struct accept_guard *g, struct event_base *base, struct evconnlistener *l,
                      evconnlistener_cb on_accept, void *arg, const char *name)
{
    g->l = l;
    g->on_accept = on_accept;
    g->arg = arg;
    g->name = name;
    g->starved = false;
    g->shed = 0;
    g->shed_ev = event_new(base, evconnlistener_get_fd(l), EV_READ | EV_PERSIST, guard_on_readable, g);
    g->rest = evtimer_new(base, on_rest_over, g);
    famine_lock();
    bool ok = famine_spare_take() == 0;
    famine_unlock();
    return g->shed_ev && g->rest && ok ? 0 : -1;
}

void accept_guard_free(struct accept_guard *g)
{
    if (g->shed_ev)
        event_free(g->shed_ev);
    if (g->rest)
        event_free(g->rest);
    g->shed_ev = g->rest = NULL;
}

bool accept_guard_on_error(struct accept_guard *g, int err)
{
    if (err != EMFILE && err != ENFILE)
        return false;
    if (!g->shed_ev || !g->rest)
        return false;
    if (!g->starved)
        log_warn("%s: out of descriptors (%s); new connections are refused at once", g->name,
                 err == EMFILE ? "RLIMIT_NOFILE" : "system-wide limit");
    g->starved = true;
    famine_set(true);
    /* From now on this listener accepts by itself, under the famine lock. */
    evconnlistener_disable(g->l);
    event_add(g->shed_ev, NULL);
    return true;
}
