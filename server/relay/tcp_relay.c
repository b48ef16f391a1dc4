/*
 * tcp_relay.c - see tcp_relay.h: RFC 6062 peer connections and the pipe
 * between a peer connection and its client data connection.
 *
 * A connection lives in three states: CONNECTING (a Connect's non-blocking
 * connect, under its timer), WAITING (connected, nothing read, under the
 * bind timer) and BOUND (piped). Reads stay off until the bind, so an
 * unbound peer cannot make us buffer anything: the kernel holds its bytes.
 * Outgoing connections are bound to the relay IP with a port of the
 * kernel's choosing: the relay port itself has a listener on it, and
 * sharing it would take SO_REUSEPORT, which would also let another
 * allocation bind the same relay port.
 */
#include "server/relay/tcp_relay.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/core/famine.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/relay_int.h"

enum tcp_state { TCP_CONNECTING, TCP_WAITING, TCP_BOUND };

/*
 * One peer data connection. Owned by its allocation (listed in
 * a->tcp_conns and in the table's id hash), freed by conn_free; peer,
 * client and timer are owned.
 */
struct tcp_conn {
    struct tcp_conn *next;  /* the allocation's list */
    struct tcp_conn *hnext; /* the table's id chain */
    struct alloc *a;
    uint32_t id;
    uint8_t state;          /* enum tcp_state */
    uint8_t transport;      /* the client's enum stats_transport, once bound */
    bool closing;           /* one side ended: flush the other, then close */
    struct bufferevent *peer;
    struct bufferevent *client;
    struct event *timer;    /* CONNECTING, WAITING: the deadline */
    struct sockaddr_in6 peer_addr; /* or sockaddr_in, as in struct relay */
    struct tcp_relay_req req;      /* CONNECTING: the Connect to answer */
};

static struct tcp_conn **bucket(struct relay_table *t, uint32_t id)
{
    return &t->tcp_ids[id % TCP_RELAY_BUCKETS];
}

static struct tcp_conn *conn_find(struct relay_table *t, uint32_t id)
{
    struct tcp_conn *c = *bucket(t, id);
    while (c && c->id != id)
        c = c->hnext;
    return c;
}

static void conn_free(struct tcp_conn *c)
{
    struct alloc *a = c->a;
    struct relay_table *t = a->t;
    struct tcp_conn **pp = &a->tcp_conns;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    for (pp = bucket(t, c->id); *pp != c; pp = &(*pp)->hnext)
        ;
    *pp = c->hnext;
    a->n_tcp--;
    if (c->state == TCP_BOUND)
        stats_sub(&t->env.stats->sessions[c->transport], 1);
    event_free(c->timer);
    /* Out of the rate-limit group now: bufferevent_free leaves it only
     * once finalized, later, and the group may go first. */
    struct bufferevent *both[2] = { c->peer, c->client };
    for (int i = 0; i < 2; i++) {
        if (!both[i])
            continue;
        if (a->tcp_rl)
            bufferevent_remove_from_rate_limit_group(both[i]);
        bufferevent_free(both[i]);
    }
    free(c);
}

static void notify(struct tcp_conn *c, enum tcp_relay_what what)
{
    struct relay_table *t = c->a->t;
    struct tcp_relay_note n = { .what = what, .id = c->id,
                                .peer = (const struct sockaddr *)&c->peer_addr, .req = &c->req };
    if (t->env.on_tcp)
        t->env.on_tcp(t->env.death_arg, c->a, &n);
}

/* Arm the deadline: seconds on the TURN clock. */
static void timer_arm(struct tcp_conn *c, unsigned seconds)
{
    unsigned scale = c->a->t->env.clock->scale ? c->a->t->env.clock->scale : 1;
    uint64_t ms = (uint64_t)seconds * 1000u / scale;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };
    evtimer_add(c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct tcp_conn *c = arg;
    char p[NET_ADDRSTRLEN];
    log_debug("allocation %u: peer %s %s", c->a->id,
              net_addr_format((struct sockaddr *)&c->peer_addr, p, sizeof p),
              c->state == TCP_CONNECTING ? "did not answer the connect in time" : "never bound");
    if (c->state == TCP_CONNECTING)
        notify(c, TCP_RELAY_FAILED);
    conn_free(c);
}

/* A new connection of a, listed, with an unused id; NULL when a has its
 * maximum or memory is out. */
/* A relay passes bytes on as they come: Nagle's algorithm would hold a
 * write behind the other side's delayed ACK of the previous one. */
static void no_nagle(int fd)
{
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct tcp_conn *conn_new(struct alloc *a, const struct sockaddr *peer)
{
    struct relay_table *t = a->t;
    if (a->n_tcp >= TCP_RELAY_MAX_CONNS)
        return NULL;
    struct tcp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->timer = evtimer_new(t->env.base, on_timer, c);
    if (!c->timer) {
        free(c);
        return NULL;
    }
    do
        c->id = (uint32_t)t->env.worker_id << 24 | (uint32_t)(relay_rng_next(t) & 0xFFFFFF);
    while (!(c->id & 0xFFFFFF) || conn_find(t, c->id));
    c->a = a;
    memcpy(&c->peer_addr, peer, net_addr_len(peer));
    c->next = a->tcp_conns;
    a->tcp_conns = c;
    c->hnext = *bucket(t, c->id);
    *bucket(t, c->id) = c;
    a->n_tcp++;
    return c;
}

/* --- the pipe ------------------------------------------------------------ */

static struct bufferevent *other(const struct tcp_conn *c, const struct bufferevent *bev)
{
    return bev == c->peer ? c->client : c->peer;
}

/* Move what src read to the other side's output (chains, not bytes), and
 * stop src while that output is over the high-water mark. */
static void pipe_move(struct tcp_conn *c, struct bufferevent *src)
{
    struct alloc *a = c->a;
    struct worker_stats *st = a->t->env.stats;
    struct bufferevent *dst = other(c, src);
    struct evbuffer *in = bufferevent_get_input(src), *out = bufferevent_get_output(dst);
    size_t n = evbuffer_get_length(in);
    if (!n)
        return;
    evbuffer_add_buffer(out, in);
    bool to_peer = src == c->client;
    stats_add(&st->bytes[a->stats_realm][to_peer ? STATS_TO_PEER : STATS_TO_CLIENT], n);
    stats_add(&st->packets[a->stats_realm][to_peer ? STATS_TO_PEER : STATS_TO_CLIENT], 1);
    if (to_peer) {
        a->bytes_out += n;
        a->pkts_out++;
    } else {
        a->bytes_in += n;
        a->pkts_in++;
    }
    if (evbuffer_get_length(out) >= TCP_RELAY_HIGH_WATER) {
        bufferevent_disable(src, EV_READ);
        bufferevent_setwatermark(dst, EV_WRITE, TCP_RELAY_HIGH_WATER / 2, 0);
    }
}

static void pipe_on_read(struct bufferevent *bev, void *arg)
{
    pipe_move(arg, bev);
}

/* bev's output fell to its low-water mark: the other side reads again, or
 * a closing connection is done once it is empty. */
static void pipe_on_write(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_free(c);
        return;
    }
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_enable(other(c, bev), EV_READ);
}

/* One side ended. An orderly end (EOF) first delivers what the other side
 * still has to write; an error closes both at once. */
static void pipe_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct tcp_conn *c = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    struct bufferevent *dst = other(c, bev);
    if ((what & BEV_EVENT_ERROR) || c->closing ||
        evbuffer_get_length(bufferevent_get_output(dst)) == 0) {
        conn_free(c);
        return;
    }
    c->closing = true;
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_disable(dst, EV_READ);
    bufferevent_setwatermark(dst, EV_WRITE, 0, 0);
}

/* limits.max_bps: every connection of the allocation reads from one bucket
 * of that many bytes per second (both directions together, as over UDP). */
static void rate_join(struct tcp_conn *c)
{
    struct alloc *a = c->a;
    uint64_t rate = a->t->env.realms->r[a->realm].now.max_bps;
    if (!rate)
        return;
    if (rate > EV_RATE_LIMIT_MAX)
        rate = EV_RATE_LIMIT_MAX;
    if (!a->tcp_rl) {
        struct ev_token_bucket_cfg *cfg = ev_token_bucket_cfg_new(
            (size_t)rate, (size_t)rate, EV_RATE_LIMIT_MAX, EV_RATE_LIMIT_MAX, NULL);
        if (!cfg)
            return;
        a->tcp_rl = bufferevent_rate_limit_group_new(a->t->env.base, cfg);
        ev_token_bucket_cfg_free(cfg);
        if (!a->tcp_rl)
            return;
    }
    bufferevent_add_to_rate_limit_group(c->peer, a->tcp_rl);
    bufferevent_add_to_rate_limit_group(c->client, a->tcp_rl);
}

int tcp_relay_bind(struct relay_table *t, uint32_t id, struct bufferevent *client,
                   unsigned transport)
{
    struct tcp_conn *c = conn_find(t, id);
    if (!c || c->state != TCP_WAITING) {
        log_debug("connection %08x: no longer waiting for its bind", id);
        bufferevent_free(client);
        return 400;
    }
    evtimer_del(c->timer);
    log_debug("allocation %u: connection %08x bound", c->a->id, id);
    c->client = client;
    c->state = TCP_BOUND;
    c->transport = (uint8_t)transport;
    stats_add(&t->env.stats->sessions[transport], 1);
    struct bufferevent *both[2] = { c->peer, c->client };
    for (int i = 0; i < 2; i++) {
        bufferevent_setcb(both[i], pipe_on_read, pipe_on_write, pipe_on_event, c);
        bufferevent_setwatermark(both[i], EV_READ, 0, TCP_RELAY_HIGH_WATER);
        bufferevent_set_max_single_read(both[i], 64 * 1024);
        bufferevent_set_timeouts(both[i], NULL, NULL);
    }
    rate_join(c);
    bufferevent_enable(c->peer, EV_READ | EV_WRITE);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    pipe_move(c, c->client); /* bytes that came right behind the ConnectionBind */
    return 0;
}

struct alloc *tcp_relay_waiting(struct relay_table *t, uint32_t id)
{
    struct tcp_conn *c = conn_find(t, id);
    return c && c->state == TCP_WAITING ? c->a : NULL;
}

/* --- Connect -------------------------------------------------------------- */

static void on_connect_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct tcp_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = TCP_WAITING;
        bufferevent_disable(c->peer, EV_READ);
        timer_arm(c, TCP_RELAY_BIND_TIMEOUT);
        notify(c, TCP_RELAY_CONNECTED);
        return;
    }
    notify(c, TCP_RELAY_FAILED);
    conn_free(c);
}

static bool peer_connected(const struct alloc *a, const struct sockaddr *peer)
{
    for (const struct tcp_conn *c = a->tcp_conns; c; c = c->next)
        if (net_addr_equal((const struct sockaddr *)&c->peer_addr, peer))
            return true;
    return false;
}

int tcp_relay_connect(struct alloc *a, const struct sockaddr *peer, const struct tcp_relay_req *req)
{
    struct relay_table *t = a->t;
    /* RFC 6062 section 5.2: one connection per peer address. */
    if (peer_connected(a, peer))
        return 446;
    if (a->relay[0].addr.sin6_family != peer->sa_family)
        return 447;
    struct tcp_conn *c = conn_new(a, peer);
    if (!c)
        return a->n_tcp >= TCP_RELAY_MAX_CONNS ? 508 : 447;
    c->req = *req;
    c->state = TCP_CONNECTING;
    int fd = famine_socket(peer->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    no_nagle(fd);
    struct sockaddr_in6 src = a->relay[0].addr;
    net_addr_set_port((struct sockaddr *)&src, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, net_addr_len((struct sockaddr *)&src)) < 0 ||
        !(c->peer = bufferevent_socket_new(t->env.base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        if (fd >= 0)
            close(fd);
        conn_free(c);
        return 447;
    }
    /* Callbacks after the call: a connect that fails at once reports
     * through the return value, not from inside it. */
    if (bufferevent_socket_connect(c->peer, peer, (int)net_addr_len(peer)) < 0) {
        conn_free(c);
        return 447;
    }
    bufferevent_setcb(c->peer, NULL, NULL, on_connect_event, c);
    timer_arm(c, TCP_RELAY_CONNECT_TIMEOUT);
    return 0;
}

/* --- peers connecting to the relay address ------------------------------- */

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct alloc *a = arg;
    struct relay_table *t = a->t;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* level-triggered: without a descriptor it would spin */
                log_warn("allocation %u: out of descriptors: no more TCP peers", a->id);
                event_del(a->relay[0].ev);
            }
            return;
        }
        const struct sockaddr *peer = (const struct sockaddr *)&ss;
        struct tcp_conn *c = NULL;
        no_nagle(cfd);
        /* RFC 6062 section 5.3: no permission, no connection. */
        if (!relay_perm_ok_at(a, peer, relay_now(t))) {
            stats_add(&t->env.stats->drops[STATS_DROP_NO_PERMISSION], 1);
        } else if ((c = conn_new(a, peer)) != NULL &&
                   !(c->peer = bufferevent_socket_new(t->env.base, cfd, BEV_OPT_CLOSE_ON_FREE))) {
            conn_free(c);
            c = NULL;
        }
        if (!c) {
            close(cfd);
            continue;
        }
        c->state = TCP_WAITING;
        timer_arm(c, TCP_RELAY_BIND_TIMEOUT);
        notify(c, TCP_RELAY_ATTEMPT);
    }
}

int tcp_relay_listen(struct alloc *a)
{
    struct relay *r = &a->relay[0];
    if (listen(r->fd, TCP_RELAY_MAX_CONNS) < 0)
        return -1;
    r->ev = event_new(a->t->env.base, r->fd, EV_READ | EV_PERSIST, on_accept, a);
    if (!r->ev || event_add(r->ev, NULL) < 0)
        return -1;
    return 0;
}

void tcp_relay_alloc_end(struct alloc *a)
{
    while (a->tcp_conns)
        conn_free(a->tcp_conns);
    if (a->tcp_rl)
        bufferevent_rate_limit_group_free(a->tcp_rl);
    a->tcp_rl = NULL;
}
