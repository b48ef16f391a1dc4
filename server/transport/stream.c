/*
 * stream.c - TCP and TLS listeners (evconnlistener + bufferevents, TLS with
 * bufferevent_openssl). STUN messages and ChannelData frames share one
 * stream (RFC 8489 section 6.2.2, RFC 8656 section 12.5).
 *
 * Bounds: each worker holds at most limits.max_connections connections
 * (extra connections are accepted and closed at once, so the backlog cannot
 * fill); a TLS handshake must finish within limits.handshake_timeout of the
 * accept, however slowly its bytes trickle in (a timer, not the
 * bufferevent's inactivity timeout), and a session idle for
 * limits.idle_timeout is closed; a client that does not read its answers is
 * cut off once STREAM_MAX_OUTPUT bytes wait for it.
 *
 * Behind a balancer (the listen entry's proxy_protocol, read at each accept
 * so a reload applies to the next connection), a connection first waits,
 * with no bufferevent yet, for the PROXY header (proxy_wait.c), which must
 * come whole within the same handshake_timeout as a TLS handshake (one timer
 * for both: a header trickled in slowly leaves less time for TLS). Until it
 * has, the connection counts against max_connections like any other. Its
 * source address then stands for the client everywhere: answers, peer
 * policy, rate limits, logs.
 *
 * RFC 6062: a connection whose ConnectionBind succeeded leaves this file:
 * a new bufferevent over the same socket (and TLS state), holding what was
 * read and what waits to be written, goes to the relay (turn_session_data).
 * A ConnectionBind for another worker's allocation hands the connection to
 * that worker before it is handled (transport_env.handoff): socket, TLS
 * state and buffered bytes travel in one message, and the other worker
 * adopts the connection as if it had accepted it. So a connection owns its
 * descriptor and SSL itself (its bufferevent never closes them).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/stun.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/stun/dispatch.h"
#include "server/transport/accept.h"
#include "server/transport/tls.h"
#include "server/transport/transport_int.h"

#define STREAM_MAX_OUTPUT (256 * 1024)
/* The kernel grows a socket's send buffer to megabytes (tcp_wmem) for a
 * client that does not read; this bounds it (the kernel doubles it), with
 * STREAM_MAX_OUTPUT in user space, and is room enough for media over TCP. */
#define STREAM_SNDBUF (256 * 1024)
#define STREAM_BACKLOG 1024
/* A connection handed to another worker carries at most this much. */
#define STREAM_HANDOFF_MAX (STREAM_MAX_OUTPUT + 64 * 1024)

/* One listening address on one worker; owned by the worker's transport
 * (freed with the evconnlistener it is the argument of). */
struct stream_listener {
    struct evconnlistener *l;
    struct transport *t;
    bool tls;
    struct sockaddr_storage addr;
    struct accept_guard guard;
    char name[NET_ADDRSTRLEN + 8];
};

/* One client connection; owned by its worker's transport, freed by
 * conn_free. ts.alloc is its one allocation (RFC 8656 section 3.1). fd and
 * ssl are owned here (bev never closes them), bev and the events too. */
struct stream_conn {
    struct stream_conn *next, *prev; /* the transport's list, for shutdown */
    struct transport *t;
    struct bufferevent *bev;    /* NULL while the PROXY header is awaited */
    struct event *handshake;    /* TLS, PROXY header: the deadline, until connected */
    struct event *proxy;        /* the read event on fd while the header is awaited */
    evutil_socket_t fd;
    SSL *ssl;                   /* TLS, once the session proper starts */
    struct proxy_wait pw;
    bool tls;
    struct sockaddr_storage peer;
    struct binding_env env;
    struct turn_session ts;
    uint8_t out[2048];
};

/* Unlist and free c; its socket and TLS state too unless keep (they go on
 * elsewhere). */
static void conn_release(struct stream_conn *c, const char *why, bool keep)
{
    struct transport *t = c->t;
    /* RFC 8656 section 3.1: the allocation ends with its connection, and
     * nothing it asked Redis for can answer it any more. */
    turn_session_end(&c->ts, why);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->n_conns--;
    stats_sub(&t->env.stats->sessions[c->tls ? STATS_TLS : STATS_TCP], 1);
    if (c->handshake)
        event_free(c->handshake);
    if (c->proxy)
        event_free(c->proxy);
    /* Inside its own callback a bufferevent is finalized only once the
     * callback returns, and its events deleted then: by that time the
     * socket is closed (epoll_ctl on a dead descriptor, or worse on its
     * number reused by the next accept) or kept by another worker or
     * bufferevent. So the socket leaves this worker's epoll set now. */
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->bev)
        bufferevent_free(c->bev);
    if (!keep) {
        if (c->ssl)
            SSL_free(c->ssl);
        close(c->fd);
    }
    free(c);
}

static void conn_end(struct stream_conn *c, const char *why)
{
    conn_release(c, why, false);
}

static void conn_free(struct stream_conn *c)
{
    conn_end(c, "connection closed");
}

static void conn_set_timeout(struct stream_conn *c, unsigned seconds)
{
    struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };
    bufferevent_set_timeouts(c->bev, &tv, NULL);
}

/* Append to bev's input (src's chains, or data): a socket bufferevent
 * freezes the end of its input (only its reads add there), so it is thawed
 * for this one append if need be. */
static void input_append(struct bufferevent *bev, struct evbuffer *src, const void *data, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    if ((src ? evbuffer_add_buffer(in, src) : evbuffer_add(in, data, len)) == 0)
        return;
    evbuffer_unfreeze(in, 0);
    if (src)
        evbuffer_add_buffer(in, src);
    else
        evbuffer_add(in, data, len);
    evbuffer_freeze(in, 0);
}

/* The ConnectionBind was answered: the connection carries raw bytes for
 * the relay from now on. 1 (c is gone), or -1 to close it. */
static int conn_become_data(struct stream_conn *c)
{
    struct event_base *base = c->t->env.base;
    struct bufferevent *bev =
        c->ssl ? bufferevent_openssl_socket_new(base, c->fd, c->ssl, BUFFEREVENT_SSL_OPEN,
                                                BEV_OPT_CLOSE_ON_FREE)
               : bufferevent_socket_new(base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        c->ssl = NULL; /* a failed bufferevent_openssl_socket_new frees it (CLOSE_ON_FREE) */
        return -1;
    }
    if (c->ssl)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    /* The old output's front is frozen too (only its writes drain it); it
     * is going away. */
    evbuffer_unfreeze(bufferevent_get_output(c->bev), 1);
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_output(c->bev));
    input_append(bev, bufferevent_get_input(c->bev), NULL, 0);
    struct turn_session ts = c->ts; /* what turn_session_data reads */
    conn_release(c, "bound to a peer connection", true);
    turn_session_data(&ts, bev);
    return 1;
}

/* A ConnectionBind for another worker's allocation: the connection goes to
 * that worker with what it read and what it still has to write. 1 (c is
 * gone), or -1 to close it. */
static int conn_handoff(struct stream_conn *c, int worker)
{
    struct transport *t = c->t;
    struct evbuffer *in = bufferevent_get_input(c->bev), *out = bufferevent_get_output(c->bev);
    size_t il = evbuffer_get_length(in), ol = evbuffer_get_length(out);
    if (!t->env.handoff || il + ol > STREAM_HANDOFF_MAX)
        return -1;
    struct stream_handoff *h = malloc(sizeof *h + il + ol);
    if (!h)
        return -1;
    memset(h, 0, sizeof *h);
    h->fd = c->fd;
    h->ssl = c->ssl;
    h->peer = c->peer;
    h->local = c->env.local;
    memcpy(h->realm, c->ts.realm, sizeof h->realm);
    h->in_len = il;
    h->out_len = ol;
    /* a socket bufferevent freezes its output's front (only its writes
     * drain it), and copyout refuses a frozen front: this one is going */
    evbuffer_unfreeze(out, 1);
    if (evbuffer_copyout(in, h->bytes, il) != (ev_ssize_t)il ||
        evbuffer_copyout(out, h->bytes + il, ol) != (ev_ssize_t)ol) {
        free(h);
        return -1;
    }
    char a[NET_ADDRSTRLEN];
    log_debug("stream %s: ConnectionBind for worker %d: handed over",
              net_addr_format((struct sockaddr *)&c->peer, a, sizeof a), worker);
    conn_release(c, "handed to another worker", true);
    if (t->env.handoff(t->env.handoff_arg, worker, h) < 0)
        transport_handoff_free(h);
    return 1;
}

/* Handle every whole frame in the input buffer. Returns -1 to close, 1
 * when c is gone (handed on). */
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
            stats_add(&c->t->env.stats->drops[STATS_DROP_MALFORMED], 1);
            return -1;
        }
        if (flen == 0 || avail < (size_t)flen)
            return 0;
        const uint8_t *frame = evbuffer_pullup(in, flen);
        if (stun_is_stun(frame, (size_t)flen) && frame[1] == STUN_CONNECTION_BIND && !c->ts.alloc) {
            int w = turn_bind_worker(frame, (size_t)flen);
            if (w >= 0 && w != c->t->env.worker_id && w < c->t->env.n_workers)
                return conn_handoff(c, w);
        }
        if (stun_is_stun(frame, (size_t)flen)) {
            struct binding_route route;
            size_t n;
            if (stun_dispatch(&c->env, &c->ts, frame, (size_t)flen,
                              (const struct sockaddr *)&c->peer, c->out, sizeof c->out, &n,
                              &route) == TURN_ANSWER)
                bufferevent_write(c->bev, c->out, n);
        } else {
            turn_channel_data(&c->ts, (const struct sockaddr *)&c->peer, frame, (size_t)flen);
        }
        evbuffer_drain(in, (size_t)flen);
        if (c->ts.data_id)
            return conn_become_data(c);
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
        if (c->handshake)
            event_free(c->handshake);
        c->handshake = NULL;
        SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
        if (ssl) {
            transport_sni_realm(c->t->env.conf, ssl, &c->ts);
            stats_add(&c->t->env.stats->tls_handshakes[0][SSL_session_reused(ssl) == 1], 1);
        }
        conn_set_timeout(c, c->t->env.conf->idle_timeout);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && c->ts.alloc && c->ts.alloc->tcp) {
        /* RFC 6062: the control connection of a TCP allocation is quiet
         * while its data connections work; the allocation's lifetime bounds
         * it, and the first timeout after the allocation closes it. */
        bufferevent_enable(c->bev, EV_READ);
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

static void stream_client_close(void *conn, const char *why)
{
    conn_end(conn, why);
}

/* A ConnectionBind answered after waiting for Redis (park.c). */
static void stream_client_bound(void *conn)
{
    struct stream_conn *c = conn;
    if (conn_become_data(c) < 0)
        conn_free(c);
}

static const struct client_ops stream_client_ops = { .send = stream_client_send,
                                                      .close = stream_client_close,
                                                      .bound = stream_client_bound };

static void conn_on_handshake_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stream_conn *c = arg;
    char a[NET_ADDRSTRLEN];
    log_debug("stream %s: %s in %u s", net_addr_format((struct sockaddr *)&c->peer, a, sizeof a),
              c->proxy ? "no PROXY header" : "TLS handshake not done",
              c->t->env.conf->handshake_timeout);
    conn_free(c);
}

/* The session proper: the bufferevent over fd; for TLS over ssl (taken),
 * accepting under the deadline already running, or open (a connection
 * handed over). -1: c is to be freed. */
static int conn_start_tls(struct stream_conn *c, SSL *ssl, enum bufferevent_ssl_state state)
{
    struct transport *t = c->t;
    if (ssl) {
        c->ssl = ssl;
        c->bev = bufferevent_openssl_socket_new(t->env.base, c->fd, ssl, state, 0);
        if (!c->bev)
            return -1;
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        if (c->handshake)
            event_free(c->handshake);
        c->handshake = NULL;
        c->bev = bufferevent_socket_new(t->env.base, c->fd, 0);
        if (!c->bev)
            return -1;
    }
    bufferevent_setcb(c->bev, conn_on_read, NULL, conn_on_event, c);
    conn_set_timeout(c, t->env.conf->idle_timeout);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

static int conn_start(struct stream_conn *c, const char *realm)
{
    SSL *ssl = NULL;
    if (c->tls) {
        SSL_CTX *ctx = tls_server_ctx(c->t->env.tls, false, realm);
        ssl = ctx ? SSL_new(ctx) : NULL;
        SSL_CTX_free(ctx);
        if (!ssl)
            return -1;
    }
    return conn_start_tls(c, ssl, BUFFEREVENT_SSL_ACCEPTING);
}

static void conn_on_proxy_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct stream_conn *c = arg;
    struct proxy_header h;
    char a[NET_ADDRSTRLEN], b[NET_ADDRSTRLEN];
    int rc = proxy_wait_read(fd, &c->pw, &h);
    if (rc == 0)
        return;
    net_addr_format((struct sockaddr *)&c->peer, a, sizeof a);
    if (rc < 0) {
        if (rc == -EPROTO)
            stats_add(&c->t->env.stats->drops[STATS_DROP_MALFORMED], 1);
        log_debug("stream %s: closed: %s", a, rc == -EPROTO ? "not a PROXY header" : strerror(-rc));
        conn_free(c);
        return;
    }
    event_free(c->proxy);
    c->proxy = NULL;
    if (!h.local)
        c->peer = h.src;
    log_debug("stream %s: PROXY v%d header from %s%s",
              net_addr_format((struct sockaddr *)&c->peer, b, sizeof b), h.version, a,
              h.local ? " (its own address stands)" : "");
    if (conn_start(c, c->ts.realm) < 0)
        conn_free(c);
}

/* A connection of t over fd (taken), listed and counted, its session set
 * up; the bufferevent comes with conn_start. NULL on out-of-memory. */
static struct stream_conn *conn_new(struct transport *t, evutil_socket_t fd, bool tls,
                                    const struct sockaddr_storage *peer,
                                    const struct sockaddr_storage *local, const char *realm)
{
    const struct conf *cf = t->env.conf;
    struct stream_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->t = t;
    c->fd = fd;
    c->tls = tls;
    c->peer = *peer;
    c->env.local = *local;
    c->env.software = cf->software;
    c->env.software_len = strlen(cf->software);
    c->env.stream = true;
    c->env.stats = t->env.stats;
    turn_session_init(&c->ts, t->env.turn, &stream_client_ops, c,
                      (const struct sockaddr *)&c->env.local, true, tls ? STATS_TLS : STATS_TCP);
    turn_session_set_realm(&c->ts, realm);
    t->n_conns++;
    stats_add(&t->env.stats->sessions[c->tls ? STATS_TLS : STATS_TCP], 1);
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    return c;
}

static void listener_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    (void)l;
    struct stream_listener *sl = arg;
    struct transport *t = sl->t;
    const struct conf *cf = t->env.conf;
    if (t->n_conns >= cf->max_connections) {
        log_debug("worker %d: connection limit %u reached, refusing", t->env.worker_id,
                  cf->max_connections);
        close(fd);
        return;
    }
    int sndbuf = STREAM_SNDBUF, one = 1;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    /* Each write is a whole message for a real-time client: Nagle's
     * algorithm would hold one behind the client's delayed ACK of the
     * previous (40 ms). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_storage peer = { 0 }, local;
    memcpy(&peer, sa, (size_t)salen < sizeof peer ? (size_t)salen : sizeof peer);
    socklen_t ll = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0)
        local = sl->addr;
    const struct conf_listen *li = transport_listen_find(cf, sl->tls ? CONF_TLS : CONF_TCP, &sl->addr);
    const char *realm = li ? li->realm : "";
    struct stream_conn *c = conn_new(t, fd, sl->tls, &peer, &local, realm);
    if (!c)
        return;

    bool proxy = li && li->proxy_protocol;
    struct timeval tv = { .tv_sec = cf->handshake_timeout };
    if (sl->tls || proxy) {
        c->handshake = evtimer_new(t->env.base, conn_on_handshake_deadline, c);
        if (!c->handshake || evtimer_add(c->handshake, &tv) < 0)
            goto fail;
    }
    if (proxy) {
        c->proxy = event_new(t->env.base, fd, EV_READ | EV_PERSIST, conn_on_proxy_readable, c);
        if (!c->proxy || event_add(c->proxy, NULL) < 0)
            goto fail;
        return;
    }
    if (conn_start(c, realm) == 0)
        return;
fail:
    conn_free(c);
}

void transport_adopt(struct transport *t, struct stream_handoff *h)
{
    if (t->n_conns >= t->env.conf->max_connections) {
        transport_handoff_free(h);
        return;
    }
    char a[NET_ADDRSTRLEN];
    log_debug("worker %d: adopting %s (%zu bytes read, %zu to write)", t->env.worker_id,
              net_addr_format((struct sockaddr *)&h->peer, a, sizeof a), h->in_len, h->out_len);
    SSL *ssl = h->ssl;
    struct stream_conn *c = conn_new(t, h->fd, ssl != NULL, &h->peer, &h->local, h->realm);
    h->fd = -1;
    h->ssl = NULL;
    if (!c) {
        SSL_free(ssl);
    } else if (conn_start_tls(c, ssl, BUFFEREVENT_SSL_OPEN) < 0) {
        conn_free(c);
    } else {
        bufferevent_write(c->bev, h->bytes + h->in_len, h->out_len);
        input_append(c->bev, NULL, h->bytes, h->in_len);
        if (conn_drain_frames(c) < 0)
            conn_free(c);
    }
    transport_handoff_free(h);
}

void transport_handoff_free(struct stream_handoff *h)
{
    if (h->ssl)
        SSL_free(h->ssl);
    if (h->fd >= 0)
        close(h->fd);
    free(h);
}

static void listener_on_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    struct stream_listener *sl = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (accept_guard_on_error(&sl->guard, err))
        return;
    log_warn("%s: accept: %s", sl->name, strerror(err));
}

int stream_listen(struct transport *t, const struct sockaddr_storage *addr, bool tls)
{
    if (t->n_listeners >= CONF_MAX_LISTEN)
        return -ENOSPC;
    int fd = net_socket_bind((const struct sockaddr *)addr, SOCK_STREAM);
    if (fd < 0)
        return fd;
    struct stream_listener *sl = calloc(1, sizeof *sl);
    if (!sl) {
        close(fd);
        return -ENOMEM;
    }
    sl->t = t;
    sl->tls = tls;
    sl->addr = *addr;
    struct evconnlistener *l = evconnlistener_new(t->env.base, listener_on_accept, sl,
                                                  LEV_OPT_CLOSE_ON_FREE, STREAM_BACKLOG, fd);
    if (!l) {
        int e = errno ? -errno : -EINVAL;
        close(fd);
        free(sl);
        return e;
    }
    evconnlistener_set_error_cb(l, listener_on_error);
    sl->l = l;
    char a[NET_ADDRSTRLEN];
    snprintf(sl->name, sizeof sl->name, "%s %s", tls ? "tls" : "tcp",
             net_addr_format((const struct sockaddr *)addr, a, sizeof a));
    if (accept_guard_init(&sl->guard, t->env.base, l, listener_on_accept, sl, sl->name) < 0)
        log_warn("%s: no spare descriptor: running out of them would make accept() spin", sl->name);
    t->listeners[t->n_listeners++] = sl;
    return 0;
}

static void listener_free(struct stream_listener *sl)
{
    accept_guard_free(&sl->guard);
    evconnlistener_free(sl->l);
    free(sl);
}

bool stream_has(const struct transport *t, const struct sockaddr_storage *addr, bool tls)
{
    for (size_t i = 0; i < t->n_listeners; i++)
        if (t->listeners[i]->tls == tls &&
            net_addr_equal((const struct sockaddr *)&t->listeners[i]->addr,
                           (const struct sockaddr *)addr))
            return true;
    return false;
}

void stream_reconfigure(struct transport *t)
{
    const struct conf *c = t->env.conf;
    size_t kept = 0;
    for (size_t i = 0; i < t->n_listeners; i++) {
        struct stream_listener *sl = t->listeners[i];
        if (transport_wants(t, sl->tls ? CONF_TLS : CONF_TCP, &sl->addr, 1))
            t->listeners[kept++] = sl;
        else
            listener_free(sl); /* its connections stay */
    }
    t->n_listeners = kept;
    for (struct stream_conn *conn = t->conns; conn; conn = conn->next) {
        conn->env.software = c->software;
        conn->env.software_len = strlen(c->software);
    }
}

void stream_close_all(struct transport *t)
{
    for (size_t i = 0; i < t->n_listeners; i++)
        listener_free(t->listeners[i]);
    t->n_listeners = 0;
    while (t->conns)
        conn_free(t->conns);
}
