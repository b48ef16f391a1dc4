/*
 * accept.c - see accept.h.
 */
#include "server/transport/accept.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/core/log.h"

#define REST_MS 100
#define SHED_MAX 64 /* per wake-up, so one listener cannot hold the loop */

static void on_rest_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct accept_guard *g = arg;
    evconnlistener_enable(g->l);
}

int accept_guard_init(struct accept_guard *g, struct event_base *base,
                      struct evconnlistener *l, const char *name)
{
    g->l = l;
    g->name = name;
    g->starved = false;
    g->shed = 0;
    g->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g->rest = evtimer_new(base, on_rest_over, g);
    return g->rest && g->spare_fd >= 0 ? 0 : -1;
}

void accept_guard_free(struct accept_guard *g)
{
    if (g->rest)
        event_free(g->rest);
    if (g->spare_fd >= 0)
        close(g->spare_fd);
    g->rest = NULL;
    g->spare_fd = -1;
}

bool accept_guard_on_error(struct accept_guard *g, int err)
{
    if (err != EMFILE && err != ENFILE)
        return false;
    if (!g->starved)
        log_warn("%s: out of descriptors (%s); new connections are closed at once", g->name,
                 err == EMFILE ? "RLIMIT_NOFILE" : "system-wide limit");
    g->starved = true;
    int lfd = evconnlistener_get_fd(g->l);
    int n = 0;
    for (; n < SHED_MAX; n++) {
        if (g->spare_fd >= 0)
            close(g->spare_fd);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        g->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        g->shed++;
    }
    if (n == 0 && g->rest) {
        /* Not even the spare helped (another thread took the slot): rest,
         * rather than spin on a readable listener. */
        struct timeval tv = { .tv_sec = 0, .tv_usec = REST_MS * 1000 };
        evconnlistener_disable(g->l);
        evtimer_add(g->rest, &tv);
    }
    return true;
}

void accept_guard_ok(struct accept_guard *g)
{
    if (!g->starved)
        return;
    log_info("%s: descriptors available again; %u connections were closed at once meanwhile",
             g->name, g->shed);
    g->starved = false;
    g->shed = 0;
}
