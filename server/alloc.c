/*
 * alloc.c - see alloc.h.
 *
 * The data paths do no allocation and one system call per packet: a relay
 * socket wake-up drains up to ALLOC_RX_BATCH datagrams with one recvmmsg;
 * each goes to the client as ChannelData (4-byte header) or as a Data
 * indication, written with scatter-gather so the payload is never copied in
 * user space for UDP clients.
 */
#include "server/clock.h"
#include "server/alloc.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/stun.h"
#include "server/log.h"
#include "server/net.h"
#include "server/quota.h"
#include "server/server.h"

#define ALLOC_RX_BATCH 32
#define ALLOC_RX_BUF 2048
#define ALLOC_BUCKETS 4096 /* grows x2 when count exceeds it */

/* Receive scratch shared by all allocations of a worker (one thread). */
struct alloc_rx {
    struct mmsghdr msg[ALLOC_RX_BATCH];
    struct iovec iov[ALLOC_RX_BATCH];
    struct sockaddr_storage peer[ALLOC_RX_BATCH];
    uint8_t buf[ALLOC_RX_BATCH][ALLOC_RX_BUF];
    /* the same batch on its way to the client */
    struct mmsghdr tx[ALLOC_RX_BATCH];
    struct iovec tx_iov[ALLOC_RX_BATCH][3];
    uint8_t tx_hdr[ALLOC_RX_BATCH][64];
    size_t tx_len[ALLOC_RX_BATCH];
};

uint32_t alloc_now(const struct worker *w)
{
    if (w->held_now)
        return w->held_now;
    uint64_t ms = clock_mono_ms() - w->clock_base_ms;
    return (uint32_t)(ms * w->conf->time_scale / 1000u) + 1;
}

void alloc_clock_hold(struct worker *w)
{
    w->held_now = 0; /* a fresh reading, not the previous hold's */
    w->held_now = alloc_now(w);
}

void alloc_clock_release(struct worker *w)
{
    w->held_now = 0;
}

static void to_mapped(const struct sockaddr *sa, struct in6_addr *out)
{
    if (sa->sa_family == AF_INET6) {
        *out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        return;
    }
    memset(out, 0, sizeof *out);
    out->s6_addr[10] = out->s6_addr[11] = 0xFF;
    memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

/* Looked up for every packet from a client: a few multiplies over the
 * address words rather than a byte loop over the whole sockaddr. */
static size_t tuple_hash(const void *conn, const struct sockaddr *client, size_t n)
{
    uint64_t h = (uintptr_t)conn * 0x9E3779B97F4A7C15ull;
    if (client->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)client;
        uint64_t a, b;
        memcpy(&a, &s6->sin6_addr, 8);
        memcpy(&b, (const uint8_t *)&s6->sin6_addr + 8, 8);
        h = (h ^ a) * 0xFF51AFD7ED558CCDull;
        h = (h ^ b ^ s6->sin6_port) * 0xC4CEB9FE1A85EC53ull;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)client;
        h = (h ^ ((uint64_t)s4->sin_addr.s_addr << 16 | s4->sin_port)) * 0xFF51AFD7ED558CCDull;
    }
    return (size_t)(h ^ (h >> 32)) & (n - 1);
}

/* --- timer wheel ------------------------------------------------------- */

static void wheel_unlink(struct alloc_table *t, struct alloc *a)
{
    if (a->wprev)
        a->wprev->wnext = a->wnext;
    else
        t->wheel[a->expires % ALLOC_WHEEL_SLOTS] = a->wnext;
    if (a->wnext)
        a->wnext->wprev = a->wprev;
    a->wnext = a->wprev = NULL;
}

static void wheel_link(struct alloc_table *t, struct alloc *a)
{
    struct alloc **slot = &t->wheel[a->expires % ALLOC_WHEEL_SLOTS];
    a->wprev = NULL;
    a->wnext = *slot;
    if (*slot)
        (*slot)->wprev = a;
    *slot = a;
}

static void wheel_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    struct alloc_table *t = &w->allocs;
    uint32_t now = alloc_now(w);
    /* Every second up to now, in case a tick was late. */
    while (t->wheel_pos < now) {
        t->wheel_pos++;
        struct alloc *a = t->wheel[t->wheel_pos % ALLOC_WHEEL_SLOTS];
        while (a) {
            struct alloc *next = a->wnext;
            if (a->expires <= t->wheel_pos)
                alloc_destroy(a, "lifetime expired");
            /* else: a lifetime longer than the wheel, seen again next turn */
            a = next;
        }
    }
}

int alloc_table_init(struct worker *w)
{
    struct alloc_table *t = &w->allocs;
    memset(t, 0, sizeof *t);
    w->clock_base_ms = clock_mono_ms();
    t->n_buckets = ALLOC_BUCKETS;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    t->rx = calloc(1, sizeof *t->rx);
    if (!t->rx || !t->buckets)
        return -1;
    for (unsigned i = 0; i < ALLOC_RX_BATCH; i++) {
        t->rx->iov[i] = (struct iovec){ t->rx->buf[i], ALLOC_RX_BUF };
        t->rx->msg[i].msg_hdr = (struct msghdr){ .msg_name = &t->rx->peer[i],
                                                 .msg_namelen = sizeof t->rx->peer[i],
                                                 .msg_iov = &t->rx->iov[i],
                                                 .msg_iovlen = 1 };
    }
    RAND_bytes((uint8_t *)&t->rng, sizeof t->rng);
    t->rng |= 1;
    t->wheel_pos = alloc_now(w);
    t->tick = event_new(w->base, -1, EV_PERSIST, wheel_on_tick, w);
    unsigned scale = w->conf->time_scale;
    struct timeval tv = { .tv_sec = 0, .tv_usec = (suseconds_t)(1000000 / scale) };
    if (scale == 1)
        tv = (struct timeval){ .tv_sec = 1 };
    if (!t->buckets || !t->rx || !t->tick || event_add(t->tick, &tv) < 0)
        return -1;
    return 0;
}

void alloc_table_free(struct worker *w)
{
    struct alloc_table *t = &w->allocs;
    for (size_t i = 0; t->buckets && i < ALLOC_WHEEL_SLOTS; i++)
        while (t->wheel[i])
            alloc_destroy(t->wheel[i], "shutdown");
    if (t->tick)
        event_free(t->tick);
    free(t->buckets);
    free(t->rx);
    memset(t, 0, sizeof *t);
}

static void table_grow(struct alloc_table *t)
{
    size_t n = t->n_buckets * 2;
    struct alloc **nb = calloc(n, sizeof *nb);
    if (!nb)
        return; /* keep the longer chains; correctness is unaffected */
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct alloc *a = t->buckets[i];
        while (a) {
            struct alloc *next = a->hnext;
            size_t h = tuple_hash(a->conn, (struct sockaddr *)&a->client, n);
            a->hnext = nb[h];
            nb[h] = a;
            a = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->n_buckets = n;
}

uint64_t alloc_next_sid(struct worker *w)
{
    /* node (19 bits) . worker . counter, within coturn's 18 decimal digits */
    uint32_t n = ++w->allocs.next_sid;
    return (uint64_t)w->srv->node_id * 1000000000000ull + (uint64_t)w->id * 1000000000ull +
           n % 1000000000u;
}

struct alloc *alloc_table_find(struct worker *w, const void *conn, const struct sockaddr *client)
{
    struct alloc_table *t = &w->allocs;
    struct alloc *a = t->buckets[tuple_hash(conn, client, t->n_buckets)];
    for (; a; a = a->hnext)
        if (a->conn == conn && net_addr_equal((struct sockaddr *)&a->client, client))
            return a;
    return NULL;
}

struct alloc *alloc_create(struct worker *w, const struct client_ops *ops, void *conn,
                           const struct sockaddr *client, const struct sockaddr *local,
                           const struct relay *relays, unsigned n_relay, uint32_t lifetime,
                           const char *user, size_t user_len)
{
    struct alloc_table *t = &w->allocs;
    struct alloc *a = calloc(1, sizeof *a + user_len);
    if (!a)
        return NULL;
    memcpy(a->user, user, user_len);
    a->user_len = (uint16_t)user_len;
    a->w = w;
    a->ops = ops;
    a->conn = conn;
    memcpy(&a->client, client, net_addr_len(client));
    memcpy(&a->local, local, net_addr_len(local));
    for (unsigned i = 0; i < n_relay; i++)
        a->relay[i] = relays[i];
    a->n_relay = n_relay;
    a->id = ++t->next_id;
    a->sid = alloc_next_sid(w);
    a->tokens = w->limits.max_bps;
    a->bucket_ms = clock_mono_ms();
    a->expires = alloc_now(w) + lifetime;
    if (t->count >= t->n_buckets)
        table_grow(t);
    size_t h = tuple_hash(conn, client, t->n_buckets);
    a->hnext = t->buckets[h];
    t->buckets[h] = a;
    wheel_link(t, a);
    t->count++;
    stats_add(&w->stats.allocations, 1);
    return a;
}

void alloc_destroy(struct alloc *a, const char *why)
{
    struct worker *w = a->w;
    struct alloc_table *t = &w->allocs;
    struct alloc **pp = &t->buckets[tuple_hash(a->conn, (struct sockaddr *)&a->client, t->n_buckets)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    wheel_unlink(t, a);
    t->count--;
    stats_sub(&w->stats.allocations, 1);
    for (unsigned i = 0; i < a->n_relay; i++)
        alloc_relay_close(&a->relay[i]);
    quota_release(w->srv->quota, a->user, a->user_len);
    shared_alloc_deleted(a);
    char c[NET_ADDRSTRLEN];
    log_info("allocation %u for %s (%.*s) deleted: %s; %llu bytes in, %llu bytes out", a->id,
             net_addr_format((struct sockaddr *)&a->client, c, sizeof c), (int)a->user_len, a->user,
             why, (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out);
    if (a->ops->gone)
        a->ops->gone(a->conn);
    free(a->perms);
    free(a->chans);
    free(a);
}

void alloc_set_lifetime(struct alloc *a, uint32_t lifetime)
{
    struct alloc_table *t = &a->w->allocs;
    wheel_unlink(t, a);
    a->expires = alloc_now(a->w) + lifetime;
    wheel_link(t, a);
}

/* --- permissions and channels ------------------------------------------- */

int alloc_perm_add(struct alloc *a, const struct sockaddr *peer)
{
    uint32_t now = alloc_now(a->w);
    struct in6_addr ip;
    to_mapped(peer, &ip);
    struct perm *free_slot = NULL;
    for (unsigned i = 0; i < a->n_perms; i++) {
        struct perm *p = &a->perms[i];
        if (memcmp(&p->ip, &ip, sizeof ip) == 0) {
            p->expires = now + ALLOC_PERM_LIFETIME;
            return 0;
        }
        if (!free_slot && p->expires <= now)
            free_slot = p;
    }
    if (!free_slot) {
        if (a->n_perms >= ALLOC_MAX_PERMS)
            return 508;
        if (a->n_perms == a->cap_perms) {
            uint16_t cap = a->cap_perms ? a->cap_perms * 2 : 2;
            struct perm *p = realloc(a->perms, cap * sizeof *p);
            if (!p)
                return 508;
            a->perms = p;
            a->cap_perms = cap;
        }
        free_slot = &a->perms[a->n_perms++];
    }
    free_slot->ip = ip;
    free_slot->expires = now + ALLOC_PERM_LIFETIME;
    return 0;
}

/* The packet path reads the clock once per batch, not per check, and
 * compares addresses as two words rather than through memcmp. */
static bool perm_ok_at(const struct alloc *a, const struct sockaddr *peer, uint32_t now)
{
    struct in6_addr ip;
    to_mapped(peer, &ip);
    uint64_t want[2], have[2];
    memcpy(want, &ip, sizeof want);
    for (unsigned i = 0; i < a->n_perms; i++) {
        memcpy(have, &a->perms[i].ip, sizeof have);
        if (have[0] == want[0] && have[1] == want[1] && a->perms[i].expires > now)
            return true;
    }
    return false;
}

bool alloc_perm_ok(const struct alloc *a, const struct sockaddr *peer)
{
    return perm_ok_at(a, peer, alloc_now(a->w));
}

static bool chan_peer_is(const struct chan *c, const struct sockaddr *peer)
{
    return net_addr_equal((const struct sockaddr *)&c->peer, peer);
}

int alloc_chan_bind(struct alloc *a, uint16_t number, const struct sockaddr *peer)
{
    uint32_t now = alloc_now(a->w);
    struct chan *slot = NULL, *free_slot = NULL;
    for (unsigned i = 0; i < a->n_chans; i++) {
        struct chan *c = &a->chans[i];
        bool held = c->expires + ALLOC_CHANNEL_QUARANTINE > now;
        if (!held) {
            if (!free_slot)
                free_slot = c;
            continue;
        }
        bool same_num = c->number == number, same_peer = chan_peer_is(c, peer);
        /* RFC 8656 section 11.2: a number maps to one peer and back, also
         * for 5 minutes after the binding expires. */
        if (same_num != same_peer)
            return 400;
        if (same_num)
            slot = c;
    }
    if (!slot) {
        if (!free_slot) {
            if (a->n_chans >= ALLOC_MAX_CHANNELS)
                return 508;
            if (a->n_chans == a->cap_chans) {
                uint16_t cap = a->cap_chans ? a->cap_chans * 2 : 1;
                struct chan *ch = realloc(a->chans, cap * sizeof *ch);
                if (!ch)
                    return 508;
                a->chans = ch;
                a->cap_chans = cap;
            }
            free_slot = &a->chans[a->n_chans++];
        }
        slot = free_slot;
        slot->number = number;
        memset(&slot->peer, 0, sizeof slot->peer);
        memcpy(&slot->peer, peer, net_addr_len(peer));
    }
    int rc = alloc_perm_add(a, peer);
    if (rc)
        return rc;
    slot->expires = now + ALLOC_CHANNEL_LIFETIME;
    return 0;
}

static const struct chan *chan_by_number(const struct alloc *a, uint16_t number, uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].number == number && a->chans[i].expires > now)
            return &a->chans[i];
    return NULL;
}

static const struct chan *chan_by_peer(const struct alloc *a, const struct sockaddr *peer,
                                       uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].expires > now && chan_peer_is(&a->chans[i], peer))
            return &a->chans[i];
    return NULL;
}

/* --- data paths --------------------------------------------------------- */

/* limits.max_bps (bytes per second, as coturn's max-bps): token bucket with
 * one second of burst. */
static bool bandwidth_refill_take(struct alloc *a, size_t len, uint64_t rate)
{
    uint64_t now = clock_mono_ms();
    uint64_t add = (now - a->bucket_ms) * rate / 1000u;
    if (add) {
        a->tokens = a->tokens + add > rate ? rate : a->tokens + add;
        a->bucket_ms = now;
    }
    if (a->tokens < len)
        return false;
    a->tokens -= len;
    return true;
}

/* Inline so that the common case, no limit, costs one load and a branch. */
static inline bool bandwidth_take(struct alloc *a, size_t len)
{
    uint64_t rate = a->w->limits.max_bps;
    return !rate || bandwidth_refill_take(a, len, rate);
}

static const struct relay *relay_for(const struct alloc *a, int family)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (a->relay[i].addr.sin6_family == family)
            return &a->relay[i];
    return NULL;
}

static void relay_to_peer(struct alloc *a, const struct sockaddr *peer, const uint8_t *data,
                          size_t len, uint32_t now)
{
    struct worker_stats *st = &a->w->stats;
    const struct relay *r = relay_for(a, peer->sa_family);
    if (!r || !perm_ok_at(a, peer, now)) {
        stats_add(&st->drops[STATS_DROP_NO_PERMISSION], 1);
        return;
    }
    if (!bandwidth_take(a, len)) {
        stats_add(&st->drops[STATS_DROP_BANDWIDTH], 1);
        return;
    }
    if (sendto(r->fd, data, len, MSG_DONTWAIT, peer, net_addr_len(peer)) >= 0) {
        a->bytes_out += len;
        a->pkts_out++;
        stats_add(&st->bytes[STATS_TO_PEER], len);
        stats_add(&st->packets[STATS_TO_PEER], 1);
    } else {
        stats_add(&st->drops[STATS_DROP_SEND_FAILED], 1);
    }
}

void alloc_relay_channel(struct alloc *a, const uint8_t *frame, size_t len)
{
    uint16_t number, dlen;
    const uint8_t *data;
    if (stun_channel_decode(frame, len, &number, &data, &dlen) < 0)
        return;
    uint32_t now = alloc_now(a->w);
    const struct chan *c = chan_by_number(a, number, now);
    if (c)
        relay_to_peer(a, (const struct sockaddr *)&c->peer, data, dlen, now);
    else
        stats_add(&a->w->stats.drops[STATS_DROP_NO_CHANNEL], 1);
}

void alloc_relay_send(struct alloc *a, const struct sockaddr *peer, const uint8_t *data, size_t len)
{
    relay_to_peer(a, peer, data, len, alloc_now(a->w));
}

static uint64_t rng_next(struct alloc_table *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

/* The header for one peer datagram to the client: ChannelData if the peer
 * has a channel, else a Data indication (RFC 8656 sections 11.6 and 12.6).
 * Fills iov (header, payload, padding) and returns how many are used, or 0
 * if the datagram cannot be framed. */
static int frame_for_client(struct alloc *a, const struct sockaddr *peer, uint8_t *data,
                            size_t len, uint32_t now, uint8_t hdr[64], struct iovec iov[3],
                            bool *channel)
{
    static const uint8_t zeros[4];
    const struct chan *c = chan_by_peer(a, peer, now);
    *channel = c != NULL;
    if (c) {
        stun_channel_encode_hdr(hdr, c->number, (uint16_t)len);
        iov[0] = (struct iovec){ hdr, STUN_CHANNEL_HDR_LEN };
        iov[1] = (struct iovec){ data, len };
        return 2;
    }
    uint8_t tid[STUN_TID_LEN];
    uint64_t r1 = rng_next(&a->w->allocs), r2 = rng_next(&a->w->allocs);
    memcpy(tid, &r1, 8);
    memcpy(tid + 8, &r2, 4);
    struct stun_enc e;
    stun_enc_init(&e, hdr, 64, STUN_DATA, STUN_CLASS_INDICATION, tid, false);
    if (stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, peer) < 0)
        return 0;
    size_t pad = (4 - (len & 3)) & 3;
    size_t body = e.len - STUN_HDR_LEN + 4 + len + pad;
    hdr[2] = (uint8_t)(body >> 8);
    hdr[3] = (uint8_t)body;
    uint8_t *ah = hdr + e.len;
    ah[0] = STUN_ATTR_DATA >> 8;
    ah[1] = STUN_ATTR_DATA & 0xFF;
    ah[2] = (uint8_t)(len >> 8);
    ah[3] = (uint8_t)len;
    iov[0] = (struct iovec){ hdr, e.len + 4 };
    iov[1] = (struct iovec){ data, len };
    iov[2] = (struct iovec){ (void *)zeros, pad };
    return pad ? 3 : 2;
}

static void count_to_client(struct alloc *a, size_t len, bool sent)
{
    struct worker_stats *st = &a->w->stats;
    if (sent) {
        a->bytes_in += len;
        a->pkts_in++;
        stats_add(&st->bytes[STATS_TO_CLIENT], len);
        stats_add(&st->packets[STATS_TO_CLIENT], 1);
    } else {
        stats_add(&st->drops[STATS_DROP_SEND_FAILED], 1);
    }
}

/*
 * Peer datagrams to the client. A wake-up drains up to ALLOC_RX_BATCH with
 * one recvmmsg; for a UDP client the whole batch then goes out with one
 * sendmmsg (client_ops.send_many), for the others one write per datagram.
 */
static void relay_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct alloc *a = arg;
    struct alloc_rx *rx = a->w->allocs.rx;
    const struct sockaddr *client = (const struct sockaddr *)&a->client;
    const struct sockaddr *local = (const struct sockaddr *)&a->local;
    for (int round = 0; round < 4; round++) {
        int n = recvmmsg(fd, rx->msg, ALLOC_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        uint32_t now = alloc_now(a->w);
        unsigned out = 0;
        for (int i = 0; i < n; i++) {
            const struct sockaddr *peer = (const struct sockaddr *)&rx->peer[i];
            size_t len = rx->msg[i].msg_len;
            if ((rx->msg[i].msg_hdr.msg_flags & MSG_TRUNC) || len > 0xFFFF - 64)
                continue;
            /* RFC 8656 section 11.6: no permission, no delivery. */
            if (!perm_ok_at(a, peer, now)) {
                stats_add(&a->w->stats.drops[STATS_DROP_NO_PERMISSION], 1);
                continue;
            }
            if (!bandwidth_take(a, len)) {
                stats_add(&a->w->stats.drops[STATS_DROP_BANDWIDTH], 1);
                continue;
            }
            bool channel;
            int n_iov = frame_for_client(a, peer, rx->buf[i], len, now, rx->tx_hdr[out],
                                         rx->tx_iov[out], &channel);
            if (!n_iov)
                continue;
            if (!a->ops->send_many) {
                count_to_client(a, len, a->ops->send(a->conn, client, local, rx->tx_iov[out],
                                                     n_iov, channel) == 0);
                continue;
            }
            rx->tx[out].msg_hdr.msg_iov = rx->tx_iov[out]; /* the rest is zero from init */
            rx->tx[out].msg_hdr.msg_iovlen = (size_t)n_iov;
            rx->tx_len[out++] = len;
        }
        if (out) {
            int sent = a->ops->send_many(a->conn, client, local, rx->tx, out);
            for (unsigned k = 0; k < out; k++)
                count_to_client(a, rx->tx_len[k], (int)k < sent);
        }
        /* recvmmsg rewrote only the name lengths (headers built at init). */
        for (int i = 0; i < n; i++)
            rx->msg[i].msg_hdr.msg_namelen = sizeof rx->peer[i];
        if (n < ALLOC_RX_BATCH)
            return;
    }
}

/* --- relay sockets ------------------------------------------------------ */

static int bind_port(const struct sockaddr *ip, unsigned port, struct sockaddr_in6 *out)
{
    memcpy(out, ip, net_addr_len(ip));
    net_addr_set_port((struct sockaddr *)out, port);
    int fd = socket(ip->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (ip->sa_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (bind(fd, (struct sockaddr *)out, net_addr_len(ip)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int alloc_relay_open(struct worker *w, const struct sockaddr *ip, bool even, bool reserve_next,
                     struct relay *out, int *next_fd)
{
    const struct conf *c = w->conf;
    unsigned lo = c->relay_min_port, hi = c->relay_max_port;
    unsigned span = hi - lo + 1;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    /* Random probes first (unpredictable ports), then a sweep so that a
     * nearly full range still finds its last free port. */
    for (unsigned attempt = 0; attempt < 32 + span; attempt++) {
        unsigned port = attempt < 32 ? lo + (unsigned)(rng_next(&w->allocs) % span)
                                     : lo + (attempt - 32);
        if (even || reserve_next)
            port &= ~1u;
        if (port < lo || (reserve_next && port + 1 > hi))
            continue;
        int fd = bind_port(ip, port, &out->addr);
        if (fd == -EADDRINUSE)
            continue;
        if (fd < 0)
            return fd;
        if (reserve_next) {
            struct sockaddr_in6 tmp;
            int fd2 = bind_port(ip, port + 1, &tmp);
            if (fd2 < 0) {
                close(fd);
                continue;
            }
            *next_fd = fd2;
        }
        out->fd = fd;
        out->reported = out->addr;
        return 0;
    }
    return -EADDRNOTAVAIL;
}

void alloc_relay_close(struct relay *r)
{
    if (r->ev)
        event_free(r->ev);
    if (r->fd >= 0)
        close(r->fd);
    r->ev = NULL;
    r->fd = -1;
}

int alloc_relay_start(struct alloc *a)
{
    for (unsigned i = 0; i < a->n_relay; i++) {
        a->relay[i].ev = event_new(a->w->base, a->relay[i].fd, EV_READ | EV_PERSIST, relay_on_read, a);
        if (!a->relay[i].ev || event_add(a->relay[i].ev, NULL) < 0)
            return -1;
    }
    return 0;
}
