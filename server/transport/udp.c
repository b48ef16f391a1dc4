/*
 * udp.c - the UDP datagram path.
 *
 * One read event drains the socket in batches of UDP_BATCH with recvmmsg and
 * answers each batch with a single sendmmsg from the same socket: two system
 * calls per batch, no allocation per packet (the worker's udp_io scratch is
 * allocated once). Sockets bound to a wildcard address learn the destination
 * of each datagram with IP_PKTINFO/IPV6_PKTINFO and answer from it, so a
 * client that sent to 127.0.0.2 hears back from 127.0.0.2.
 */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/core/clock.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/stun/dispatch.h"
#include "server/transport/transport_int.h"

#define UDP_BATCH 32
#define UDP_BUF 2048
#define UDP_ROUNDS 8 /* batches per wake-up, so one busy socket cannot starve others */
#define UDP_CTRL 64

/* One socket of a listener: also the TURN session of every client that
 * reaches it (UDP allocations are found by 5-tuple). group[] are the RFC
 * 5780 siblings (itself included), borrowed from the same transport. Owned
 * by its worker's transport. */
struct udp_sock {
    int fd;
    struct event *ev;
    struct transport *t;
    bool wildcard;
    struct binding_env env; /* addrs, self, rfc5780; local set per datagram */
    struct turn_session ts; /* conn = this socket; local = &env.local */
    struct udp_sock *group[4];
};

struct udp_io {
    struct mmsghdr rx[UDP_BATCH];
    struct iovec rx_iov[UDP_BATCH];
    struct sockaddr_storage rx_peer[UDP_BATCH];
    uint8_t rx_ctrl[UDP_BATCH][UDP_CTRL];
    uint8_t rx_buf[UDP_BATCH][UDP_BUF];
    struct mmsghdr tx[UDP_BATCH];
    struct iovec tx_iov[UDP_BATCH];
    struct sockaddr_storage tx_peer[UDP_BATCH];
    uint8_t tx_ctrl[UDP_BATCH][UDP_CTRL];
    uint8_t tx_buf[UDP_BATCH][UDP_BUF];
    int rx_mode; /* rx[] headers are set up for: 0 none, 1 plain, 2 with PKTINFO */
};

/* recvmmsg only rewrites the name and control lengths and the flags of the
 * entries it fills, so the headers are built once per socket kind and only
 * those fields are put back after each batch. */
static void udp_rx_prepare(struct udp_io *io, bool wildcard)
{
    if (io->rx_mode == 1 + wildcard)
        return;
    for (unsigned i = 0; i < UDP_BATCH; i++) {
        io->rx_iov[i] = (struct iovec){ io->rx_buf[i], UDP_BUF };
        io->rx[i].msg_hdr = (struct msghdr){
            .msg_name = &io->rx_peer[i],
            .msg_namelen = sizeof io->rx_peer[i],
            .msg_iov = &io->rx_iov[i],
            .msg_iovlen = 1,
            .msg_control = wildcard ? io->rx_ctrl[i] : NULL,
            .msg_controllen = wildcard ? UDP_CTRL : 0,
        };
    }
    io->rx_mode = 1 + wildcard;
}

static void udp_rx_rearm(struct udp_io *io, int n, bool wildcard)
{
    for (int i = 0; i < n; i++) {
        io->rx[i].msg_hdr.msg_namelen = sizeof io->rx_peer[i];
        io->rx[i].msg_hdr.msg_controllen = wildcard ? UDP_CTRL : 0;
    }
}

struct udp_io *udp_io_new(void)
{
    return calloc(1, sizeof(struct udp_io));
}

void udp_io_free(struct udp_io *io)
{
    free(io);
}

/* The destination address of a datagram from its PKTINFO. */
static void pktinfo_read(struct msghdr *h, const struct udp_sock *s, struct sockaddr_storage *local)
{
    memcpy(local, &s->env.addrs[s->env.self], sizeof *local);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            ((struct sockaddr_in *)local)->sin_addr = pi.ipi_addr;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            ((struct sockaddr_in6 *)local)->sin6_addr = pi.ipi6_addr;
        }
    }
}

/* Ask the kernel to send from `local` (wildcard sockets only). */
static size_t pktinfo_write(uint8_t *ctrl, const struct sockaddr_storage *local)
{
    memset(ctrl, 0, UDP_CTRL);
    struct cmsghdr *c = (struct cmsghdr *)ctrl;
    if (local->ss_family == AF_INET) {
        struct in_pktinfo pi = { 0 };
        pi.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        return CMSG_SPACE(sizeof pi);
    }
    struct in6_pktinfo pi = { 0 };
    pi.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr;
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
}

static void udp_flush(struct udp_sock *s, struct udp_io *io, unsigned n)
{
    unsigned done = 0;
    while (done < n) {
        int r = sendmmsg(s->fd, io->tx + done, n - done, MSG_DONTWAIT);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            /* A full send buffer or an unreachable client: the datagram is
             * lost as it would be on the network; the client retransmits. */
            done++;
            continue;
        }
        done += (unsigned)r;
    }
}

/* Answer from a sibling socket (RFC 5780 CHANGE-REQUEST): rare, unbatched. */
static void udp_send_other(struct udp_sock *s, unsigned from, const uint8_t *buf, size_t len,
                           const struct sockaddr_storage *to)
{
    struct udp_sock *o = s->group[from];
    if (!o)
        return;
    ssize_t r = sendto(o->fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)to,
                       net_addr_len((const struct sockaddr *)to));
    (void)r;
}

static void udp_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct udp_sock *s = arg;
    struct transport *t = s->t;
    struct udp_io *io = t->io;

    for (int round = 0; round < UDP_ROUNDS; round++) {
        udp_rx_prepare(io, s->wildcard);
        int n = recvmmsg(fd, io->rx, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        clock_scaled_hold(t->env.clock);
        unsigned out = 0;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &io->rx[i].msg_hdr;
            if (h->msg_flags & MSG_TRUNC) {
                /* larger than any STUN datagram we accept */
                stats_add(&t->env.stats->drops[STATS_DROP_MALFORMED], 1);
                continue;
            }
            struct binding_env *env = &s->env;
            if (s->wildcard)
                pktinfo_read(h, s, &env->local);
            if ((io->rx_buf[i][0] & 0xC0) == 0x40) {
                turn_channel_data(&s->ts, (const struct sockaddr *)&io->rx_peer[i],
                                  io->rx_buf[i], io->rx[i].msg_len);
                continue;
            }
            struct binding_route route;
            size_t len;
            if (stun_dispatch(env, &s->ts, io->rx_buf[i], io->rx[i].msg_len,
                              (const struct sockaddr *)&io->rx_peer[i], io->tx_buf[out], UDP_BUF,
                              &len, &route) != TURN_ANSWER)
                continue;
            if (route.from != env->self) {
                udp_send_other(s, route.from, io->tx_buf[out], len, &route.to);
                continue;
            }
            io->tx_peer[out] = route.to;
            io->tx_iov[out] = (struct iovec){ io->tx_buf[out], len };
            io->tx[out].msg_hdr = (struct msghdr){
                .msg_name = &io->tx_peer[out],
                .msg_namelen = net_addr_len((const struct sockaddr *)&route.to),
                .msg_iov = &io->tx_iov[out],
                .msg_iovlen = 1,
            };
            if (s->wildcard) {
                io->tx[out].msg_hdr.msg_control = io->tx_ctrl[out];
                io->tx[out].msg_hdr.msg_controllen = pktinfo_write(io->tx_ctrl[out], &env->local);
            }
            out++;
        }
        if (out)
            udp_flush(s, io, out);
        clock_scaled_release(t->env.clock);
        udp_rx_rearm(io, n, s->wildcard);
        if (n < UDP_BATCH)
            return;
    }
}

/* client_ops for allocations made over UDP: one sendmsg from the
 * listening socket, from the address the client talks to. */
static int udp_client_send(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                           const struct iovec *iov, int n_iov, bool channel)
{
    (void)channel;
    struct udp_sock *s = conn;
    uint8_t ctrl[UDP_CTRL];
    struct msghdr h = { .msg_name = (void *)client,
                        .msg_namelen = net_addr_len(client),
                        .msg_iov = (struct iovec *)iov,
                        .msg_iovlen = (size_t)n_iov };
    if (s->wildcard) {
        h.msg_control = ctrl;
        h.msg_controllen = pktinfo_write(ctrl, (const struct sockaddr_storage *)local);
    }
    return sendmsg(s->fd, &h, MSG_DONTWAIT) < 0 ? -1 : 0;
}

/* The batch of one relay wake-up, to one client, in one sendmmsg. */
static int udp_client_send_many(void *conn, const struct sockaddr *client,
                                const struct sockaddr *local, struct mmsghdr *msgs, unsigned n)
{
    struct udp_sock *s = conn;
    uint8_t ctrl[UDP_CTRL];
    size_t ctrl_len = s->wildcard ? pktinfo_write(ctrl, (const struct sockaddr_storage *)local) : 0;
    for (unsigned i = 0; i < n; i++) {
        msgs[i].msg_hdr.msg_name = (void *)client;
        msgs[i].msg_hdr.msg_namelen = net_addr_len(client);
        msgs[i].msg_hdr.msg_control = ctrl_len ? ctrl : NULL;
        msgs[i].msg_hdr.msg_controllen = ctrl_len;
    }
    unsigned done = 0;
    while (done < n) {
        int r = sendmmsg(s->fd, msgs + done, n - done, MSG_DONTWAIT);
        if (r <= 0)
            break; /* full buffer: the rest is lost, as on the network */
        done += (unsigned)r;
    }
    return (int)done;
}

static const struct client_ops udp_client_ops = { .send = udp_client_send,
                                                  .send_many = udp_client_send_many,
                                                  .kernel_relay = true };

static void udp_sock_free(struct udp_sock *s, const char *why)
{
    turn_session_end(&s->ts, why);
    if (s->ev)
        event_free(s->ev);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

int udp_listen(struct transport *t, const struct sockaddr_storage *addrs, size_t n_addrs,
               struct sockaddr_storage *failed)
{
    struct udp_sock *group[4] = { 0 };
    const struct conf *c = t->env.conf;
    if (t->n_udp + n_addrs > TRANSPORT_MAX_UDP)
        return -ENOSPC;
    for (size_t i = 0; i < n_addrs; i++) {
        struct udp_sock *s = calloc(1, sizeof *s);
        if (!s)
            goto fail_nomem;
        s->fd = -1;
        group[i] = s;
        s->t = t;
        s->env.software = c->software;
        s->env.software_len = strlen(c->software);
        s->env.rfc5780 = n_addrs == 4;
        s->env.self = (unsigned)i;
        for (size_t j = 0; j < n_addrs; j++)
            s->env.addrs[j] = addrs[j];
        s->env.local = addrs[i];
        s->env.stats = t->env.stats;
        turn_session_init(&s->ts, t->env.turn, &udp_client_ops, s,
                          (const struct sockaddr *)&s->env.local, false, STATS_UDP);
        turn_session_set_realm(&s->ts, transport_listen_realm(c, CONF_UDP, &addrs[0]));
        const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];
        s->wildcard = net_addr_is_any(sa);
        s->fd = net_socket_bind(sa, SOCK_DGRAM);
        if (s->fd < 0) {
            int e = s->fd;
            *failed = addrs[i];
            for (size_t k = 0; k <= i; k++)
                if (group[k])
                    udp_sock_free(group[k], "not opened");
            return e;
        }
        int one = 1;
        if (s->wildcard) {
            if (sa->sa_family == AF_INET)
                setsockopt(s->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
            else
                setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
        }
        s->ev = event_new(t->env.base, s->fd, EV_READ | EV_PERSIST, udp_on_read, s);
        if (!s->ev || event_add(s->ev, NULL) < 0)
            goto fail_nomem;
    }
    for (size_t i = 0; i < n_addrs; i++) {
        memcpy(group[i]->group, group, sizeof group);
        t->udp[t->n_udp++] = group[i];
    }
    return 0;
fail_nomem:
    for (size_t k = 0; k < n_addrs; k++)
        if (group[k])
            udp_sock_free(group[k], "not opened");
    *failed = addrs[0];
    return -ENOMEM;
}

bool udp_has(const struct transport *t, const struct sockaddr_storage *addrs, size_t n)
{
    for (size_t i = 0; i < t->n_udp; i++) {
        const struct udp_sock *s = t->udp[i];
        if (s->env.self != 0 || (s->env.rfc5780 ? 4u : 1u) != n)
            continue;
        size_t k = 0;
        while (k < n && net_addr_equal((const struct sockaddr *)&s->env.addrs[k],
                                       (const struct sockaddr *)&addrs[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

void udp_reconfigure(struct transport *t)
{
    const struct conf *c = t->env.conf;
    size_t kept = 0;
    for (size_t i = 0; i < t->n_udp;) {
        struct udp_sock *s = t->udp[i];
        size_t n = s->env.rfc5780 ? 4 : 1; /* a group is contiguous, self 0 first */
        bool keep = transport_wants(t, CONF_UDP, s->env.addrs, n);
        for (size_t k = 0; k < n; k++) {
            struct udp_sock *m = t->udp[i + k];
            if (keep) {
                m->env.software = c->software;
                m->env.software_len = strlen(c->software);
                turn_session_set_realm(&m->ts, transport_listen_realm(c, CONF_UDP, &s->env.addrs[0]));
                t->udp[kept++] = m;
            } else {
                udp_sock_free(m, "listener removed by a reload");
            }
        }
        i += n;
    }
    t->n_udp = kept;
}

void udp_close_all(struct transport *t)
{
    for (size_t i = 0; i < t->n_udp; i++)
        udp_sock_free(t->udp[i], "shutdown");
    t->n_udp = 0;
}
