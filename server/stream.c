/*
 * stream.c - see stream.h.
 *
 * Bounds: each worker holds at most limits.max_connections sessions (extra
 * connections are accepted and closed at once, so the backlog cannot fill);
 * a TLS handshake must finish within limits.handshake_timeout and a session
 * idle for limits.idle_timeout is closed; a client that does not read its
 * answers is cut off once STREAM_MAX_OUTPUT bytes wait for it.
 */
#include "server/stream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/stun.h"
#include "server/binding.h"
#include "server/log.h"
#include "server/net.h"
#include "server/server.h"
#include "server/turn.h"

#define STREAM_MAX_OUTPUT (256 * 1024)
#define STREAM_BACKLOG 1024

/* One listening address on one worker; owned by the worker (freed with the
 * evconnlistener it is the argument of). */
struct stream_listener {
    struct evconnlistener *l;
    struct worker *w;
    bool tls;
    struct sockaddr_storage addr;
};

/* One client connection; owned by its worker, freed by conn_free. */
struct stream_conn {
    struct stream_conn *next, *prev; /* the worker's list, for shutdown */
    struct worker *w;
    struct bufferevent *bev;
    bool tls;
    struct sockaddr_storage peer;
    struct binding_env env;
    struct alloc *alloc;   /* at most one per connection (RFC 8656 section 3.1) */
    struct turn_client tc; /* slot = &alloc */
    uint8_t out[2048];
};

static void conn_free(struct stream_conn *c)
{
    /* RFC 8656 section 3.1: the allocation ends with its connection. */
    if (c->alloc)
        alloc_destroy(c->alloc, "connection closed");
    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->w->n_sessions--;
    stats_sub(&c->w->stats.sessions[c->tls ? STATS_TLS : STATS_TCP], 1);
    bufferevent_free(c->bev);
    free(c);
}

static void conn_set_timeout(struct stream_conn *c, unsigned seconds)
{
    struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };
    bufferevent_set_timeouts(c->bev, &tv, NULL);
}

/* Handle every whole frame in the input buffer. Returns -1 to close. */
static int conn_drain_frames(struct stream_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail < 4)
            return 0;
        const uint8_t *head = evbuffer_pullup(in, 4);
        long flen = stun_frame_len(head, 4);
        if (flen < 0) {
            /* neither STUN nor ChannelData: the stream is lost */
            stats_add(&c->w->stats.drops[STATS_DROP_MALFORMED], 1);
            return -1;
        }
        if (flen == 0 || avail < (size_t)flen)
            return 0;
        const uint8_t *frame = evbuffer_pullup(in, flen);
        if (stun_is_stun(frame, (size_t)flen)) {
            struct binding_route route;
            size_t n = binding_handle(&c->env, frame, (size_t)flen,
                                      (const struct sockaddr *)&c->peer, c->out, sizeof c->out,
                                      &route);
            if (n)
                bufferevent_write(c->bev, c->out, n);
        } else {
            turn_channel_data(&c->tc, (const struct sockaddr *)&c->peer, frame, (size_t)flen);
        }
        evbuffer_drain(in, (size_t)flen);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > STREAM_MAX_OUTPUT)
            return -1;
    }
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct stream_conn *c = arg;
    if (conn_drain_frames(c) < 0) {
        char a[NET_ADDRSTRLEN];
        log_debug("stream %s: closed (unframed bytes or unread output)",
                  net_addr_format((struct sockaddr *)&c->peer, a, sizeof a));
        conn_free(c);
    }
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct stream_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        conn_set_timeout(c, c->w->conf->idle_timeout);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (what & BEV_EVENT_TIMEOUT) {
            char a[NET_ADDRSTRLEN];
            log_debug("stream %s: timed out", net_addr_format((struct sockaddr *)&c->peer, a,
                                                               sizeof a));
        }
        conn_free(c);
    }
}

/* client_ops for allocations made over TCP/TLS. A client that does not
 * read loses datagrams, as it would over UDP, rather than grow our buffer. */
static int stream_client_send(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                              const struct iovec *iov, int n_iov, bool channel)
{
    (void)client, (void)local;
    static const uint8_t zeros[4];
    struct stream_conn *c = conn;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) > STREAM_MAX_OUTPUT)
        return -1;
    size_t total = 0;
    for (int i = 0; i < n_iov; i++) {
        bufferevent_write(c->bev, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    /* RFC 8656 section 12.5: over streams ChannelData is padded to 4. */
    if (channel && (total & 3))
        bufferevent_write(c->bev, zeros, 4 - (total & 3));
    return 0;
}

static void stream_client_gone(void *conn)
{
    ((struct stream_conn *)conn)->alloc = NULL;
}

static const struct client_ops stream_client_ops = { .send = stream_client_send,
                                                      .gone = stream_client_gone };

static void listener_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    (void)l;
    struct stream_listener *sl = arg;
    struct worker *w = sl->w;
    if (w->n_sessions >= w->conf->max_connections) {
        log_debug("worker %d: connection limit %u reached, refusing", w->id,
                  w->conf->max_connections);
        close(fd);
        return;
    }
    struct stream_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->w = w;
    c->tls = sl->tls;
    memcpy(&c->peer, sa, (size_t)salen < sizeof c->peer ? (size_t)salen : sizeof c->peer);
    c->env.software = w->conf->software;
    c->env.software_len = strlen(w->conf->software);
    c->env.stream = true;
    c->env.turn = &c->tc;
    c->env.turn_fn = turn_handle;
    c->env.stats = &w->stats;
    c->tc = (struct turn_client){ .w = w, .ops = &stream_client_ops, .conn = c, .slot = &c->alloc,
                                  .local = (const struct sockaddr *)&c->env.local };
    socklen_t ll = sizeof c->env.local;
    if (getsockname(fd, (struct sockaddr *)&c->env.local, &ll) < 0)
        c->env.local = sl->addr;

    if (sl->tls) {
        SSL_CTX *ctx = tls_server_ctx(w->srv, false);
        SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        SSL_CTX_free(ctx);
        if (ssl)
            c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            if (ssl)
                SSL_free(ssl);
            close(fd);
            free(c);
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            close(fd);
            free(c);
            return;
        }
    }
    w->n_sessions++;
    stats_add(&w->stats.sessions[c->tls ? STATS_TLS : STATS_TCP], 1);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    bufferevent_setcb(c->bev, conn_on_read, NULL, conn_on_event, c);
    conn_set_timeout(c, sl->tls ? w->conf->handshake_timeout : w->conf->idle_timeout);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void listener_on_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    struct stream_listener *sl = arg;
    char a[NET_ADDRSTRLEN];
    /* EMFILE and friends: keep listening, the condition is usually brief. */
    log_warn("accept on %s: %s", net_addr_format((struct sockaddr *)&sl->addr, a, sizeof a),
             strerror(errno));
}

int stream_listen(struct worker *w, const struct sockaddr_storage *addr, bool tls)
{
    if (w->n_listeners >= CONF_MAX_LISTEN)
        return -ENOSPC;
    int fd = net_socket_bind((const struct sockaddr *)addr, SOCK_STREAM);
    if (fd < 0)
        return fd;
    struct stream_listener *sl = calloc(1, sizeof *sl);
    if (!sl) {
        close(fd);
        return -ENOMEM;
    }
    sl->w = w;
    sl->tls = tls;
    sl->addr = *addr;
    struct evconnlistener *l = evconnlistener_new(w->base, listener_on_accept, sl,
                                                  LEV_OPT_CLOSE_ON_FREE, STREAM_BACKLOG, fd);
    if (!l) {
        int e = errno ? -errno : -EINVAL;
        close(fd);
        free(sl);
        return e;
    }
    evconnlistener_set_error_cb(l, listener_on_error);
    sl->l = l;
    w->listeners[w->n_listeners++] = sl;
    return 0;
}

void stream_close_all(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        evconnlistener_free(w->listeners[i]->l);
        free(w->listeners[i]);
    }
    w->n_listeners = 0;
    while (w->conns)
        conn_free(w->conns);
}
