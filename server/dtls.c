/*
 * dtls.c - see dtls.h.
 *
 * One UDP socket per listen address per worker (SO_REUSEPORT keeps a client's
 * 5-tuple on one worker). Each client is a session: an SSL whose read side is
 * a memory BIO fed one datagram at a time, and whose write side is a tiny BIO
 * that sends every record flight as its own datagram (a memory BIO would glue
 * datagrams together). Sessions live in a per-worker hash table keyed by the
 * client address. Only a ClientHello opens a session; the cookie exchange
 * (tls.c) keeps spoofed sources from getting more than a small reply; the
 * session count is bounded by limits.max_connections and unfinished
 * handshakes by limits.handshake_timeout.
 */
#include "server/dtls.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/stun.h"
#include "server/binding.h"
#include "server/log.h"
#include "server/net.h"
#include "server/server.h"
#include "server/turn.h"

#define DTLS_BUCKETS 1024
#define DTLS_MTU 1200
#define DTLS_BUF 2048

struct dtls_ep;

/* One client; owned by its endpoint, freed by session_free. */
struct dtls_session {
    struct dtls_session *next; /* hash chain */
    struct dtls_ep *ep;
    struct dtls_session_id id;
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    struct event *timer;
    struct binding_env env;
    struct alloc *alloc;   /* at most one per session, ends with it */
    struct turn_client tc; /* slot = &alloc */
    bool established;
    time_t deadline;
};

/* One DTLS socket of a worker; owned by the worker. */
struct dtls_ep {
    struct worker *w;
    int fd;
    struct event *ev;
    struct sockaddr_storage addr;
    struct dtls_session *buckets[DTLS_BUCKETS];
    uint8_t buf[DTLS_BUF];
    uint8_t out[DTLS_BUF];
};

static BIO_METHOD *out_method;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

static int out_write(BIO *b, const char *data, int len)
{
    struct dtls_session *s = BIO_get_data(b);
    ssize_t r = sendto(s->ep->fd, data, (size_t)len, MSG_DONTWAIT,
                       (const struct sockaddr *)&s->id.peer,
                       net_addr_len((const struct sockaddr *)&s->id.peer));
    (void)r; /* a lost datagram is retransmitted by DTLS itself */
    return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DGRAM_QUERY_MTU:
        return cmd == BIO_CTRL_FLUSH ? 1 : DTLS_MTU;
    default:
        return 0;
    }
}

static void out_method_init(void)
{
    out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern-dgram-out");
    if (out_method) {
        BIO_meth_set_write(out_method, out_write);
        BIO_meth_set_ctrl(out_method, out_ctrl);
    }
}

static unsigned addr_hash(const struct sockaddr_storage *a)
{
    const uint8_t *p = (const uint8_t *)a;
    size_t n = net_addr_len((const struct sockaddr *)a);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % DTLS_BUCKETS;
}

static struct dtls_session **session_slot(struct dtls_ep *ep, const struct sockaddr_storage *peer)
{
    struct dtls_session **pp = &ep->buckets[addr_hash(peer)];
    while (*pp && !net_addr_equal((struct sockaddr *)&(*pp)->id.peer, (const struct sockaddr *)peer))
        pp = &(*pp)->next;
    return pp;
}

static void session_free(struct dtls_session *s)
{
    if (s->alloc)
        alloc_destroy(s->alloc, "DTLS session closed");
    struct dtls_session **pp = session_slot(s->ep, &s->id.peer);
    if (*pp == s)
        *pp = s->next;
    if (s->timer)
        event_free(s->timer);
    SSL_free(s->ssl);
    s->ep->w->n_sessions--;
    stats_sub(&s->ep->w->stats.sessions[STATS_DTLS], 1);
    free(s);
}

static void session_on_timer(evutil_socket_t fd, short what, void *arg);

/* Arm the one timer of a session: DTLS retransmission or its deadline. */
static void session_arm(struct dtls_session *s)
{
    time_t now = time(NULL);
    struct timeval tv = { .tv_sec = s->deadline > now ? s->deadline - now : 0 };
    struct timeval rt;
    if (!s->established && DTLSv1_get_timeout(s->ssl, &rt) == 1 && evutil_timercmp(&rt, &tv, <))
        tv = rt;
    event_add(s->timer, &tv);
}

static void session_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dtls_session *s = arg;
    if (time(NULL) >= s->deadline) {
        char a[NET_ADDRSTRLEN];
        log_debug("dtls %s: %s timed out", net_addr_format((struct sockaddr *)&s->id.peer, a, sizeof a),
                  s->established ? "session" : "handshake");
        session_free(s);
        return;
    }
    if (!s->established && DTLSv1_handle_timeout(s->ssl) < 0) {
        session_free(s);
        return;
    }
    session_arm(s);
}

/* client_ops for allocations made over DTLS: one record per message. */
static int dtls_client_send(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                            const struct iovec *iov, int n_iov, bool channel)
{
    (void)client, (void)local, (void)channel;
    struct dtls_session *s = conn;
    uint8_t buf[DTLS_BUF];
    size_t len = 0;
    for (int i = 0; i < n_iov; i++) {
        if (len + iov[i].iov_len > sizeof buf)
            return -1;
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return SSL_write(s->ssl, buf, (int)len) > 0 ? 0 : -1;
}

static void dtls_client_gone(void *conn)
{
    ((struct dtls_session *)conn)->alloc = NULL;
}

static const struct client_ops dtls_client_ops = { .send = dtls_client_send,
                                                    .gone = dtls_client_gone };

static struct dtls_session *session_new(struct dtls_ep *ep, const struct sockaddr_storage *peer)
{
    struct worker *w = ep->w;
    if (w->n_sessions >= w->conf->max_connections)
        return NULL;
    pthread_once(&out_once, out_method_init);
    SSL_CTX *ctx = tls_server_ctx(w->srv, true);
    if (!ctx || !out_method) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct dtls_session *s = calloc(1, sizeof *s);
    SSL *ssl = s ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(out_method);
    if (!ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        free(s);
        return NULL;
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_data(wbio, s);
    BIO_set_init(wbio, 1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_options(ssl, SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(ssl, DTLS_MTU);
    SSL_set_accept_state(ssl);
    s->ep = ep;
    s->ssl = ssl;
    s->rbio = rbio;
    s->id.peer = *peer;
    s->id.secret = w->srv->cookie_secret;
    SSL_set_app_data(ssl, &s->id);
    s->env.software = w->conf->software;
    s->env.software_len = strlen(w->conf->software);
    s->env.stream = true;
    s->env.local = ep->addr;
    s->env.turn = &s->tc;
    s->env.turn_fn = turn_handle;
    s->env.stats = &w->stats;
    s->tc = (struct turn_client){ .w = w, .ops = &dtls_client_ops, .conn = s, .slot = &s->alloc,
                                  .local = (const struct sockaddr *)&s->env.local };
    s->deadline = time(NULL) + w->conf->handshake_timeout;
    s->timer = event_new(w->base, -1, 0, session_on_timer, s);
    if (!s->timer) {
        SSL_free(ssl);
        free(s);
        return NULL;
    }
    struct dtls_session **pp = session_slot(ep, peer);
    s->next = *pp;
    *pp = s;
    w->n_sessions++;
    stats_add(&w->stats.sessions[STATS_DTLS], 1);
    return s;
}

/* Feed one datagram; returns -1 when the session is over. */
static int session_input(struct dtls_session *s, const uint8_t *data, size_t len)
{
    if (BIO_write(s->rbio, data, (int)len) <= 0)
        return -1;
    if (!s->established) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
            return 0;
        }
        s->established = true;
    }
    for (;;) {
        int n = SSL_read(s->ssl, s->ep->buf, sizeof s->ep->buf);
        if (n <= 0) {
            int e = SSL_get_error(s->ssl, n);
            return e == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        if ((s->ep->buf[0] & 0xC0) == 0x40) {
            turn_channel_data(&s->tc, (const struct sockaddr *)&s->id.peer, s->ep->buf, (size_t)n);
            continue;
        }
        struct binding_route route;
        size_t out = binding_handle(&s->env, s->ep->buf, (size_t)n,
                                    (const struct sockaddr *)&s->id.peer, s->ep->out,
                                    sizeof s->ep->out, &route);
        if (out && SSL_write(s->ssl, s->ep->out, (int)out) <= 0)
            return -1;
    }
}

/* A DTLS record header with content type handshake(22) and, after the
 * 13-byte record header, handshake type client_hello(1). */
static bool is_client_hello(const uint8_t *b, size_t len)
{
    return len >= 25 && b[0] == 22 && b[1] == 0xFE && b[13] == 1;
}

static void ep_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct dtls_ep *ep = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        ssize_t n = recvfrom(fd, ep->buf, sizeof ep->buf, MSG_DONTWAIT, (struct sockaddr *)&peer, &pl);
        if (n <= 0)
            return;
        struct dtls_session *s = *session_slot(ep, &peer);
        if (!s) {
            if (!is_client_hello(ep->buf, (size_t)n)) {
                /* neither opens nor belongs to a session: not ours to read */
                stats_add(&ep->w->stats.drops[STATS_DROP_MALFORMED], 1);
                continue;
            }
            if (!(s = session_new(ep, &peer)))
                continue;
        }
        if (s->established)
            s->deadline = time(NULL) + ep->w->conf->idle_timeout;
        /* session_input reuses ep->buf for plaintext: feed a copy. */
        uint8_t dgram[DTLS_BUF];
        memcpy(dgram, ep->buf, (size_t)n);
        bool was = s->established;
        if (session_input(s, dgram, (size_t)n) < 0) {
            session_free(s);
            continue;
        }
        if (!was && s->established)
            s->deadline = time(NULL) + ep->w->conf->idle_timeout;
        session_arm(s);
    }
}

int dtls_listen(struct worker *w, const struct sockaddr_storage *addr)
{
    if (w->n_dtls >= CONF_MAX_LISTEN)
        return -ENOSPC;
    struct dtls_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return -ENOMEM;
    ep->w = w;
    ep->addr = *addr;
    ep->fd = net_socket_bind((const struct sockaddr *)addr, SOCK_DGRAM);
    if (ep->fd < 0) {
        int e = ep->fd;
        free(ep);
        return e;
    }
    ep->ev = event_new(w->base, ep->fd, EV_READ | EV_PERSIST, ep_on_read, ep);
    if (!ep->ev || event_add(ep->ev, NULL) < 0) {
        if (ep->ev)
            event_free(ep->ev);
        close(ep->fd);
        free(ep);
        return -ENOMEM;
    }
    w->dtls[w->n_dtls++] = ep;
    return 0;
}

void dtls_close_all(struct worker *w)
{
    for (size_t i = 0; i < w->n_dtls; i++) {
        struct dtls_ep *ep = w->dtls[i];
        for (size_t b = 0; b < DTLS_BUCKETS; b++)
            while (ep->buckets[b])
                session_free(ep->buckets[b]);
        event_free(ep->ev);
        close(ep->fd);
        free(ep);
    }
    w->n_dtls = 0;
}
