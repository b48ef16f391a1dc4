/*
 * dtls.c - STUN over DTLS (RFC 7350) on a UDP socket per listen address per
 * worker (SO_REUSEPORT keeps a client's 5-tuple on one worker).
 *
 * Each client is a session: an SSL whose read side is a memory BIO fed one
 * datagram at a time, and whose write side is a tiny BIO that sends every
 * record flight as its own datagram (a memory BIO would glue datagrams
 * together). Sessions live in a per-endpoint hash table keyed by the client
 * address.
 *
 * No state exists for a client before it has echoed a cookie (RFC 6347
 * section 4.2.1): a ClientHello from an unknown address goes to the
 * endpoint's one listening SSL (DTLSv1_listen), which answers a
 * HelloVerifyRequest and forgets it; only a ClientHello carrying a valid
 * cookie, which proves the client receives at its address, turns that SSL
 * into a session (and a fresh listening SSL is made for the next). So
 * spoofed ClientHellos cost one small answer each and hold nothing, and the
 * session bound (limits.max_connections DTLS sessions per worker, counted
 * apart from TCP/TLS connections) only ever counts real clients.
 *
 * Deadlines: the handshake must end limits.handshake_timeout after the
 * cookie was echoed; after it, a session idle for limits.idle_timeout ends.
 * Only a record that decrypts moves the idle deadline, so datagrams spoofed
 * from a client's address cannot keep a dead session alive.
 */
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
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/stun/dispatch.h"
#include "server/transport/tls.h"
#include "server/transport/transport_int.h"

#define DTLS_BUCKETS 1024
#define DTLS_MTU 1200
#define DTLS_BUF 2048

/* Where an SSL's records go: the write BIO's data. */
struct dtls_peer {
    int fd;
    struct dtls_cookie_id id; /* the SSL's app data: the cookie callbacks' */
};

/* One client; owned by its endpoint, freed by session_free. ts.alloc is
 * its one allocation, which ends with it. */
struct dtls_session {
    struct dtls_session *next; /* hash chain */
    struct dtls_ep *ep;
    struct dtls_peer peer;
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    struct event *timer;
    struct binding_env env;
    struct turn_session ts;
    bool established;
    uint64_t deadline_ms;
};

/* One DTLS socket of a worker; owned by the worker's transport. listener
 * is the SSL that answers ClientHellos from unknown addresses (owned; NULL
 * until needed), lpeer its destination. */
struct dtls_ep {
    struct transport *t;
    int fd;
    struct event *ev;
    struct sockaddr_storage addr;
    SSL *listener;
    BIO *lrbio;
    struct dtls_peer lpeer;
    BIO_ADDR *lclient;
    struct dtls_session *buckets[DTLS_BUCKETS];
    uint8_t buf[DTLS_BUF];
    uint8_t out[DTLS_BUF];
};

static BIO_METHOD *out_method;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

static int out_write(BIO *b, const char *data, int len)
{
    const struct dtls_peer *p = BIO_get_data(b);
    ssize_t r = sendto(p->fd, data, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)&p->id.peer,
                       net_addr_len((const struct sockaddr *)&p->id.peer));
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
    while (*pp && !net_addr_equal((struct sockaddr *)&(*pp)->peer.id.peer,
                                  (const struct sockaddr *)peer))
        pp = &(*pp)->next;
    return pp;
}

static void session_end(struct dtls_session *s, const char *why)
{
    struct transport *t = s->ep->t;
    turn_session_end(&s->ts, why);
    struct dtls_session **pp = session_slot(s->ep, &s->peer.id.peer);
    if (*pp == s)
        *pp = s->next;
    if (s->timer)
        event_free(s->timer);
    SSL_free(s->ssl);
    t->n_dtls_sessions--;
    stats_sub(&t->env.stats->sessions[STATS_DTLS], 1);
    free(s);
}

static void session_free(struct dtls_session *s)
{
    session_end(s, "DTLS session closed");
}

/* Arm the one timer of a session: DTLS retransmission or its deadline. */
static void session_arm(struct dtls_session *s)
{
    uint64_t now = clock_mono_ms();
    uint64_t left = s->deadline_ms > now ? s->deadline_ms - now : 0;
    struct timeval tv = { .tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000 };
    struct timeval rt;
    if (!s->established && DTLSv1_get_timeout(s->ssl, &rt) == 1 && evutil_timercmp(&rt, &tv, <))
        tv = rt;
    event_add(s->timer, &tv);
}

static void session_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dtls_session *s = arg;
    if (clock_mono_ms() >= s->deadline_ms) {
        char a[NET_ADDRSTRLEN];
        log_debug("dtls %s: %s timed out",
                  net_addr_format((struct sockaddr *)&s->peer.id.peer, a, sizeof a),
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

static void dtls_client_close(void *conn, const char *why)
{
    session_end(conn, why);
}

static const struct client_ops dtls_client_ops = { .send = dtls_client_send,
                                                    .close = dtls_client_close };

/* The endpoint's listening SSL, made when first needed. */
static SSL *ep_listener(struct dtls_ep *ep)
{
    if (ep->listener)
        return ep->listener;
    pthread_once(&out_once, out_method_init);
    SSL_CTX *ctx = tls_server_ctx(ep->t->env.tls, true,
                                  transport_listen_realm(ep->t->env.conf, CONF_DTLS, &ep->addr));
    if (!ctx || !out_method) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(out_method);
    if (!ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_data(wbio, &ep->lpeer);
    BIO_set_init(wbio, 1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_options(ssl, SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(ssl, DTLS_MTU);
    SSL_set_accept_state(ssl);
    SSL_set_app_data(ssl, &ep->lpeer.id);
    ep->listener = ssl;
    ep->lrbio = rbio;
    return ssl;
}

/* A session for the listening SSL that just verified peer's cookie: the SSL
 * moves into it. NULL if the session bound is reached. */
static struct dtls_session *session_adopt(struct dtls_ep *ep)
{
    struct transport *t = ep->t;
    const struct conf *cf = t->env.conf;
    if (t->n_dtls_sessions >= cf->max_connections)
        return NULL;
    struct dtls_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->timer = event_new(t->env.base, -1, 0, session_on_timer, s);
    if (!s->timer) {
        free(s);
        return NULL;
    }
    s->ep = ep;
    s->ssl = ep->listener;
    s->rbio = ep->lrbio;
    ep->listener = NULL;
    ep->lrbio = NULL;
    s->peer = ep->lpeer;
    BIO_set_data(SSL_get_wbio(s->ssl), &s->peer);
    SSL_set_app_data(s->ssl, &s->peer.id);
    s->env.software = cf->software;
    s->env.software_len = strlen(cf->software);
    s->env.stream = true;
    s->env.local = ep->addr;
    s->env.stats = t->env.stats;
    turn_session_init(&s->ts, t->env.turn, &dtls_client_ops, s,
                      (const struct sockaddr *)&s->env.local, true, STATS_DTLS);
    turn_session_set_realm(&s->ts, transport_listen_realm(cf, CONF_DTLS, &ep->addr));
    s->deadline_ms = clock_mono_ms() + (uint64_t)cf->handshake_timeout * 1000u;
    struct dtls_session **pp = session_slot(ep, &s->peer.id.peer);
    s->next = *pp;
    *pp = s;
    t->n_dtls_sessions++;
    stats_add(&t->env.stats->sessions[STATS_DTLS], 1);
    return s;
}

/* Run a session's handshake and records after new input; -1 when it is
 * over. */
static int session_run(struct dtls_session *s)
{
    struct dtls_ep *ep = s->ep;
    if (!s->established) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
        }
        s->established = true;
        s->deadline_ms = clock_mono_ms() + (uint64_t)ep->t->env.conf->idle_timeout * 1000u;
        transport_sni_realm(ep->t->env.conf, s->ssl, &s->ts);
        stats_add(&ep->t->env.stats->tls_handshakes[1][SSL_session_reused(s->ssl) == 1], 1);
    }
    for (;;) {
        int n = SSL_read(s->ssl, ep->buf, sizeof ep->buf);
        if (n <= 0) {
            int e = SSL_get_error(s->ssl, n);
            return e == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        /* A record decrypted: the client is alive. */
        s->deadline_ms = clock_mono_ms() + (uint64_t)ep->t->env.conf->idle_timeout * 1000u;
        if ((ep->buf[0] & 0xC0) == 0x40) {
            turn_channel_data(&s->ts, (const struct sockaddr *)&s->peer.id.peer, ep->buf,
                              (size_t)n);
            continue;
        }
        struct binding_route route;
        size_t out;
        if (stun_dispatch(&s->env, &s->ts, ep->buf, (size_t)n,
                          (const struct sockaddr *)&s->peer.id.peer, ep->out, sizeof ep->out,
                          &out, &route) == TURN_ANSWER &&
            SSL_write(s->ssl, ep->out, (int)out) <= 0)
            return -1;
    }
}

/* A DTLS record header with content type handshake(22) and, after the
 * 13-byte record header, handshake type client_hello(1). */
static bool is_client_hello(const uint8_t *b, size_t len)
{
    return len >= 25 && b[0] == 22 && b[1] == 0xFE && b[13] == 1;
}

/* A ClientHello from an address without a session: answered statelessly,
 * or, with a valid cookie, the start of a session. */
static struct dtls_session *ep_hello(struct dtls_ep *ep, const struct sockaddr_storage *peer,
                                     const uint8_t *data, size_t len)
{
    SSL *ssl = ep_listener(ep);
    if (!ssl || !ep->lclient)
        return NULL;
    ep->lpeer.id.peer = *peer;
    (void)BIO_reset(ep->lrbio);
    if (BIO_write(ep->lrbio, data, (int)len) <= 0)
        return NULL;
    int r = DTLSv1_listen(ssl, ep->lclient);
    (void)BIO_reset(ep->lrbio);
    if (r != 1) {
        ERR_clear_error(); /* a HelloVerifyRequest went out, or it was not a hello */
        return NULL;
    }
    struct dtls_session *s = session_adopt(ep);
    if (!s) {
        char a[NET_ADDRSTRLEN];
        log_debug("worker %d: DTLS session limit %u reached, refusing %s", ep->t->env.worker_id,
                  ep->t->env.conf->max_connections,
                  net_addr_format((const struct sockaddr *)peer, a, sizeof a));
    }
    return s;
}

static void ep_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct dtls_ep *ep = arg;
    struct worker_stats *st = ep->t->env.stats;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        ssize_t n = recvfrom(fd, ep->buf, sizeof ep->buf, MSG_DONTWAIT, (struct sockaddr *)&peer, &pl);
        if (n <= 0)
            return;
        /* session_run reuses ep->buf for plaintext: feed a copy. */
        uint8_t dgram[DTLS_BUF];
        memcpy(dgram, ep->buf, (size_t)n);
        struct dtls_session *s = *session_slot(ep, &peer);
        if (!s) {
            if (!is_client_hello(dgram, (size_t)n)) {
                /* neither opens nor belongs to a session: not ours to read */
                stats_add(&st->drops[STATS_DROP_MALFORMED], 1);
                continue;
            }
            if (!(s = ep_hello(ep, &peer, dgram, (size_t)n)))
                continue;
        } else if (BIO_write(s->rbio, dgram, (int)n) <= 0) {
            session_free(s);
            continue;
        }
        if (session_run(s) < 0) {
            session_free(s);
            continue;
        }
        session_arm(s);
    }
}

int dtls_listen(struct transport *t, const struct sockaddr_storage *addr)
{
    if (t->n_dtls >= CONF_MAX_LISTEN)
        return -ENOSPC;
    struct dtls_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return -ENOMEM;
    ep->t = t;
    ep->addr = *addr;
    ep->lclient = BIO_ADDR_new();
    ep->fd = net_socket_bind((const struct sockaddr *)addr, SOCK_DGRAM);
    if (ep->fd < 0) {
        int e = ep->fd;
        BIO_ADDR_free(ep->lclient);
        free(ep);
        return e;
    }
    ep->lpeer.fd = ep->fd;
    ep->lpeer.id.secret = t->env.cookie_secret;
    ep->ev = event_new(t->env.base, ep->fd, EV_READ | EV_PERSIST, ep_on_read, ep);
    if (!ep->lclient || !ep->ev || event_add(ep->ev, NULL) < 0) {
        if (ep->ev)
            event_free(ep->ev);
        BIO_ADDR_free(ep->lclient);
        close(ep->fd);
        free(ep);
        return -ENOMEM;
    }
    t->dtls[t->n_dtls++] = ep;
    return 0;
}

static void ep_free(struct dtls_ep *ep)
{
    for (size_t b = 0; b < DTLS_BUCKETS; b++)
        while (ep->buckets[b])
            session_free(ep->buckets[b]);
    SSL_free(ep->listener);
    BIO_ADDR_free(ep->lclient);
    event_free(ep->ev);
    close(ep->fd);
    free(ep);
}

bool dtls_has(const struct transport *t, const struct sockaddr_storage *addr)
{
    for (size_t i = 0; i < t->n_dtls; i++)
        if (net_addr_equal((const struct sockaddr *)&t->dtls[i]->addr, (const struct sockaddr *)addr))
            return true;
    return false;
}

void dtls_reconfigure(struct transport *t)
{
    const struct conf *c = t->env.conf;
    size_t kept = 0;
    for (size_t i = 0; i < t->n_dtls; i++) {
        struct dtls_ep *ep = t->dtls[i];
        if (!transport_wants(t, CONF_DTLS, &ep->addr, 1)) {
            ep_free(ep); /* its sessions go with its socket */
            continue;
        }
        t->dtls[kept++] = ep;
        /* a new certificate is for new handshakes: the listening SSL is
         * made again from the current context when next needed */
        SSL_free(ep->listener);
        ep->listener = NULL;
        ep->lrbio = NULL;
        for (size_t b = 0; b < DTLS_BUCKETS; b++)
            for (struct dtls_session *s = ep->buckets[b]; s; s = s->next) {
                s->env.software = c->software;
                s->env.software_len = strlen(c->software);
            }
    }
    t->n_dtls = kept;
}

void dtls_close_all(struct transport *t)
{
    for (size_t i = 0; i < t->n_dtls; i++)
        ep_free(t->dtls[i]);
    t->n_dtls = 0;
}
