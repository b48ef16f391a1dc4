/*
 * relay_data.c - relay sockets and the two data paths of an allocation.
 *
 * The data paths do no allocation and one system call per packet: a relay
 * socket wake-up drains up to RELAY_RX_BATCH datagrams with one recvmmsg;
 * each goes to the client as ChannelData (4-byte header) or as a Data
 * indication, written with scatter-gather so the payload is never copied in
 * user space for UDP clients.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "proto/stun.h"
#include "server/core/clock.h"
#include "server/core/realm.h"
#include "server/core/famine.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/relay_int.h"
#include "server/relay/tcp_relay.h"

#define RELAY_RX_BATCH 32
#define RELAY_RX_BUF 2048

/* Receive scratch shared by all allocations of a table (one thread). */
struct relay_rx {
    struct mmsghdr msg[RELAY_RX_BATCH];
    struct iovec iov[RELAY_RX_BATCH];
    struct sockaddr_storage peer[RELAY_RX_BATCH];
    uint8_t buf[RELAY_RX_BATCH][RELAY_RX_BUF];
    /* the same batch on its way to the client */
    struct mmsghdr tx[RELAY_RX_BATCH];
    struct iovec tx_iov[RELAY_RX_BATCH][3];
    uint8_t tx_hdr[RELAY_RX_BATCH][64];
    size_t tx_len[RELAY_RX_BATCH];
};

struct relay_rx *relay_rx_new(void)
{
    struct relay_rx *rx = calloc(1, sizeof *rx);
    if (!rx)
        return NULL;
    for (unsigned i = 0; i < RELAY_RX_BATCH; i++) {
        rx->iov[i] = (struct iovec){ rx->buf[i], RELAY_RX_BUF };
        rx->msg[i].msg_hdr = (struct msghdr){ .msg_name = &rx->peer[i],
                                              .msg_namelen = sizeof rx->peer[i],
                                              .msg_iov = &rx->iov[i],
                                              .msg_iovlen = 1 };
    }
    return rx;
}

void relay_rx_free(struct relay_rx *rx)
{
    free(rx);
}

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
    uint64_t rate = a->t->env.realms->r[a->realm].now.max_bps;
    return !rate || bandwidth_refill_take(a, len, rate);
}

/* DF on (IPv4: IP_PMTUDISC_DO; IPv6: IPV6_DONTFRAG) or off (IPv4:
 * IP_PMTUDISC_DONT, the RFC 8656 section 14 "alternate behavior" of a DF
 * of 0; IPv6: fragment at the source when needed) for the relay socket. */
static int relay_set_df(const struct relay *r, bool on)
{
    if (r->addr.sin6_family == AF_INET) {
        int mode = on ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
        return setsockopt(r->fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode);
    }
    int v = on;
    return setsockopt(r->fd, IPPROTO_IPV6, IPV6_DONTFRAG, &v, sizeof v);
}

void alloc_relay_set_df(struct alloc *a, bool on)
{
    a->dont_fragment = on;
    for (unsigned i = 0; i < a->n_relay; i++)
        relay_set_df(&a->relay[i], on);
}

/* One datagram whose DF differs from its socket's mode: IPv6 says so in
 * ancillary data; Linux has no such thing for IPv4, so the mode is switched
 * around this datagram (a Send indication, never the ChannelData path). */
static ssize_t relay_send_df(const struct alloc *a, const struct relay *r,
                             const struct sockaddr *peer, const uint8_t *data, size_t len, bool df)
{
    if (r->addr.sin6_family == AF_INET) {
        if (relay_set_df(r, df) < 0)
            return -1;
        ssize_t n = sendto(r->fd, data, len, MSG_DONTWAIT, peer, net_addr_len(peer));
        relay_set_df(r, a->dont_fragment);
        return n;
    }
    union {
        struct cmsghdr h;
        uint8_t buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    struct msghdr mh = { .msg_name = (void *)peer, .msg_namelen = net_addr_len(peer),
                         .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_DONTFRAG;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int v = df;
    memcpy(CMSG_DATA(c), &v, sizeof v);
    return sendmsg(r->fd, &mh, MSG_DONTWAIT);
}

/* df: -1 the allocation's DF (ChannelData), else this datagram's. */
static void relay_to_peer(struct alloc *a, const struct sockaddr *peer, const uint8_t *data,
                          size_t len, uint32_t now, int df)
{
    struct worker_stats *st = a->t->env.stats;
    const struct relay *r = relay_of_family(a, peer->sa_family);
    if (!r || !relay_perm_ok_at(a, peer, now)) {
        stats_add(&st->drops[STATS_DROP_NO_PERMISSION], 1);
        return;
    }
    if (!bandwidth_take(a, len)) {
        stats_add(&st->drops[STATS_DROP_BANDWIDTH], 1);
        return;
    }
    ssize_t n = df < 0 || (df > 0) == a->dont_fragment
                    ? sendto(r->fd, data, len, MSG_DONTWAIT, peer, net_addr_len(peer))
                    : relay_send_df(a, r, peer, data, len, df > 0);
    if (n >= 0) {
        a->bytes_out += len;
        a->pkts_out++;
        stats_add(&st->bytes[a->stats_realm][STATS_TO_PEER], len);
        stats_add(&st->packets[a->stats_realm][STATS_TO_PEER], 1);
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
    uint32_t now = relay_now(a->t);
    const struct chan *c = relay_chan_by_number(a, number, now);
    if (c)
        relay_to_peer(a, (const struct sockaddr *)&c->peer, data, dlen, now, -1);
    else
        stats_add(&a->t->env.stats->drops[STATS_DROP_NO_CHANNEL], 1);
}

void alloc_relay_send(struct alloc *a, const struct sockaddr *peer, const uint8_t *data, size_t len,
                      bool df)
{
    /* A datagram to its own relay port would come back as if from a peer. */
    if (alloc_is_own_relay(a, peer)) {
        stats_add(&a->t->env.stats->drops[STATS_DROP_NO_PERMISSION], 1);
        return;
    }
    relay_to_peer(a, peer, data, len, relay_now(a->t), df);
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
    const struct chan *c = relay_chan_by_peer(a, peer, now);
    *channel = c != NULL;
    if (c) {
        stun_channel_encode_hdr(hdr, c->number, (uint16_t)len);
        iov[0] = (struct iovec){ hdr, STUN_CHANNEL_HDR_LEN };
        iov[1] = (struct iovec){ data, len };
        return 2;
    }
    uint8_t tid[STUN_TID_LEN];
    uint64_t r1 = relay_rng_next(a->t), r2 = relay_rng_next(a->t);
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
    struct worker_stats *st = a->t->env.stats;
    if (sent) {
        a->bytes_in += len;
        a->pkts_in++;
        stats_add(&st->bytes[a->stats_realm][STATS_TO_CLIENT], len);
        stats_add(&st->packets[a->stats_realm][STATS_TO_CLIENT], 1);
    } else {
        stats_add(&st->drops[STATS_DROP_SEND_FAILED], 1);
    }
}

/*
 * Peer datagrams to the client. A wake-up drains up to RELAY_RX_BATCH with
 * one recvmmsg; for a UDP client the whole batch then goes out with one
 * sendmmsg (client_ops.send_many), for the others one write per datagram.
 */
static void relay_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct alloc *a = arg;
    struct relay_rx *rx = a->t->rx;
    struct worker_stats *st = a->t->env.stats;
    const struct sockaddr *client = (const struct sockaddr *)&a->client;
    const struct sockaddr *local = (const struct sockaddr *)&a->local;
    for (int round = 0; round < 4; round++) {
        int n = recvmmsg(fd, rx->msg, RELAY_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        uint32_t now = relay_now(a->t);
        unsigned out = 0;
        for (int i = 0; i < n; i++) {
            const struct sockaddr *peer = (const struct sockaddr *)&rx->peer[i];
            size_t len = rx->msg[i].msg_len;
            if ((rx->msg[i].msg_hdr.msg_flags & MSG_TRUNC) || len > 0xFFFF - 64)
                continue;
            /* RFC 8656 section 11.6: no permission, no delivery. */
            if (!relay_perm_ok_at(a, peer, now)) {
                stats_add(&st->drops[STATS_DROP_NO_PERMISSION], 1);
                continue;
            }
            if (!bandwidth_take(a, len)) {
                stats_add(&st->drops[STATS_DROP_BANDWIDTH], 1);
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
        if (n < RELAY_RX_BATCH)
            return;
    }
}

/* --- relay sockets ------------------------------------------------------ */

static int bind_port(const struct sockaddr *ip, unsigned port, int type, struct sockaddr_in6 *out)
{
    memcpy(out, ip, net_addr_len(ip));
    net_addr_set_port((struct sockaddr *)out, port);
    int fd = famine_socket(ip->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (ip->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* A TCP port in TIME_WAIT from an earlier allocation is free again. */
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)out, net_addr_len(ip)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int alloc_relay_open(struct relay_table *t, const struct sockaddr *ip, bool even,
                     bool reserve_next, bool stream, struct relay *out, int *next_fd)
{
    int type = stream ? SOCK_STREAM : SOCK_DGRAM;
    const struct conf *c = t->env.conf;
    unsigned lo = c->relay_min_port, hi = c->relay_max_port;
    unsigned span = hi - lo + 1;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    /* Random probes first (unpredictable ports), then a sweep so that a
     * nearly full range still finds its last free port. */
    for (unsigned attempt = 0; attempt < 32 + span; attempt++) {
        unsigned port = attempt < 32 ? lo + (unsigned)(relay_rng_next(t) % span)
                                     : lo + (attempt - 32);
        if (even || reserve_next)
            port &= ~1u;
        if (port < lo || (reserve_next && port + 1 > hi))
            continue;
        int fd = bind_port(ip, port, type, &out->addr);
        if (fd == -EADDRINUSE)
            continue;
        if (fd < 0)
            return fd;
        if (reserve_next) {
            struct sockaddr_in6 tmp;
            int fd2 = bind_port(ip, port + 1, type, &tmp);
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
    if (a->tcp)
        return tcp_relay_listen(a);
    for (unsigned i = 0; i < a->n_relay; i++) {
        a->relay[i].ev = event_new(a->t->env.base, a->relay[i].fd, EV_READ | EV_PERSIST,
                                   relay_on_read, a);
        if (!a->relay[i].ev || event_add(a->relay[i].ev, NULL) < 0)
            return -1;
    }
    return 0;
}
