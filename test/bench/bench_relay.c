/*
 * ternbench relay mode: n allocations, each ChannelBound to a peer socket of
 * ours, ChannelData pumped both ways. Closed loop (-r 0): every allocation
 * keeps -w packets in flight per direction and sends one more for each one
 * that arrives. Open loop (-r PPS): packets are offered at a fixed total
 * rate, spread over the allocations and both directions. Payloads carry the
 * send time, so latency is one-way (same clock: loopback only).
 *
 * Options for a test bed of network namespaces (test/bench/offload), all off
 * by default so that the figures of the loopback benchmark stay comparable:
 * --peer-netns puts the peer sockets in another namespace; --batch N lets
 * the open loop hand up to N due datagrams of one socket to one sendmmsg
 * (a cheaper generator); --rx-stamp takes the latency to the kernel's
 * receive time stamp (SO_TIMESTAMPNS) rather than to when this thread got
 * round to reading; --sync prints "tuple CLIENT SERVER RELAY PEER CHANNEL"
 * per allocation and "ready" once set up, then waits for a line on stdin
 * before pumping, so a script can start its meters (or a forwarder) first.
 */
#include <arpa/inet.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "test/bench/bench_turn.h"

#define BATCH 64
#define C2P 0 /* client -> server -> peer */
#define P2C 1 /* peer -> server -> client */

struct pair {
    int fd[2];             /* sender of each direction: client fd, peer fd (borrowed) */
    uint32_t inflight[2];
    uint64_t last_rx[2];
};

struct pump {
    const struct bench_opts *o;
    struct pair *p;
    unsigned n;
    uint16_t chan;
    uint64_t sent[2], delivered[2];
    uint64_t limit;        /* packets per direction; 0: no limit */
    struct bench_hist h;
    uint8_t tx[BATCH][1500];
    uint8_t rx[BATCH][1500];
    uint8_t ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
};

/* Send up to `want` packets in direction dir from pair k; returns how many. */
static unsigned pump_send(struct pump *u, unsigned k, int dir, unsigned want)
{
    if (u->limit && u->sent[dir] + want > u->limit)
        want = u->sent[dir] < u->limit ? (unsigned)(u->limit - u->sent[dir]) : 0;
    if (want > BATCH)
        want = BATCH;
    if (want == 0)
        return 0;
    struct mmsghdr mh[BATCH];
    struct iovec iov[BATCH];
    uint64_t now = bench_now_ns();
    size_t hdr = dir == C2P ? 4 : 0, len = hdr + u->o->bytes;
    for (unsigned j = 0; j < want; j++) {
        uint8_t *b = u->tx[j];
        if (hdr) {
            b[0] = (uint8_t)(u->chan >> 8);
            b[1] = (uint8_t)u->chan;
            b[2] = (uint8_t)(u->o->bytes >> 8);
            b[3] = (uint8_t)u->o->bytes;
        }
        memcpy(b + hdr, &now, 8);
        iov[j] = (struct iovec){ b, len };
        mh[j].msg_hdr = (struct msghdr){ .msg_iov = &iov[j], .msg_iovlen = 1 };
    }
    int r = sendmmsg(u->p[k].fd[dir], mh, want, MSG_DONTWAIT);
    if (r <= 0)
        return 0;
    u->sent[dir] += (unsigned)r;
    u->p[k].inflight[dir] += (unsigned)r;
    return (unsigned)r;
}

/* Read what arrived on one socket; returns the packets delivered. */
static unsigned pump_recv(struct pump *u, unsigned k, int dir)
{
    struct mmsghdr mh[BATCH];
    struct iovec iov[BATCH];
    bool stamp = u->o->rx_stamp;
    for (unsigned j = 0; j < BATCH; j++) {
        iov[j] = (struct iovec){ u->rx[j], sizeof u->rx[j] };
        mh[j].msg_hdr = (struct msghdr){ .msg_iov = &iov[j], .msg_iovlen = 1 };
        if (stamp) {
            mh[j].msg_hdr.msg_control = u->ctl[j];
            mh[j].msg_hdr.msg_controllen = sizeof u->ctl[j];
        }
    }
    /* Direction dir's packets arrive on the other end of the pair. */
    int r = recvmmsg(u->p[k].fd[!dir], mh, BATCH, MSG_DONTWAIT, NULL);
    if (r <= 0)
        return 0;
    uint64_t now = bench_now_ns();
    int64_t rt_off = 0; /* CLOCK_REALTIME - CLOCK_MONOTONIC: the stamps are in real time */
    if (stamp) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        rt_off = (int64_t)((uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec) -
                 (int64_t)bench_now_ns();
    }
    unsigned got = 0;
    size_t hdr = dir == P2C ? 4 : 0;
    for (int j = 0; j < r; j++) {
        const uint8_t *b = u->rx[j];
        if (mh[j].msg_len < hdr + 8 || (hdr && (b[0] & 0xC0) != 0x40))
            continue; /* a STUN answer, not data */
        uint64_t ts, at = now;
        memcpy(&ts, b + hdr, 8);
        if (stamp)
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh[j].msg_hdr); c;
                 c = CMSG_NXTHDR(&mh[j].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec kt;
                    memcpy(&kt, CMSG_DATA(c), sizeof kt);
                    at = (uint64_t)((int64_t)((uint64_t)kt.tv_sec * 1000000000u +
                                              (uint64_t)kt.tv_nsec) - rt_off);
                }
        bench_hist_add(&u->h, at > ts ? at - ts : 0);
        got++;
    }
    u->delivered[dir] += got;
    u->p[k].inflight[dir] -= got < u->p[k].inflight[dir] ? got : u->p[k].inflight[dir];
    u->p[k].last_rx[dir] = now;
    return got;
}

static void pump_run(struct pump *u, int ep, uint64_t end)
{
    const struct bench_opts *o = u->o;
    struct epoll_event ev[256];
    uint64_t start = bench_now_ns(), next_check = start;
    unsigned rr = 0;
    if (o->rate == 0)
        for (unsigned k = 0; k < u->n; k++) {
            pump_send(u, k, C2P, o->win);
            pump_send(u, k, P2C, o->win);
        }
    for (;;) {
        uint64_t now = bench_now_ns();
        if (bench_stop || now >= end ||
            (u->limit && u->sent[C2P] >= u->limit && u->sent[P2C] >= u->limit))
            break;
        if (o->rate > 0) {
            uint64_t due = (uint64_t)(o->rate * (double)(now - start) / 1e9);
            uint64_t done = u->sent[C2P] + u->sent[P2C];
            for (unsigned m = 0; done < due && m < 4096; m++, rr++) {
                unsigned k = (rr / 2) % u->n;
                uint64_t want = due - done;
                done += pump_send(u, k, (int)(rr & 1), want < o->batch ? (unsigned)want : o->batch);
                if (u->limit && u->sent[C2P] >= u->limit && u->sent[P2C] >= u->limit)
                    break;
            }
        } else if (now >= next_check) {
            /* Lost packets would shrink the window for good: refill it. */
            for (unsigned k = 0; k < u->n; k++)
                for (int d = 0; d < 2; d++)
                    if (now - u->p[k].last_rx[d] > 200000000u) {
                        u->p[k].inflight[d] = 0;
                        u->p[k].last_rx[d] = now;
                        pump_send(u, k, d, o->win);
                    }
            next_check = now + 50000000u;
        }
        int n = epoll_wait(ep, ev, 256, 1);
        for (int e = 0; e < n; e++) {
            unsigned k = ev[e].data.u32 >> 1;
            int dir = (ev[e].data.u32 & 1) ? C2P : P2C; /* on the peer socket: C2P arrives */
            unsigned got = pump_recv(u, k, dir);
            if (o->rate == 0 && got)
                pump_send(u, k, dir, got);
        }
    }
}

static void addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%u", ip, port);
    }
}

/* --sync: tell the driving script the 5-tuples and that we are set up, then
 * wait for its go (a line, or EOF, on stdin). */
static int relay_sync(const struct bturn *t, const struct bench_opts *o)
{
    for (unsigned i = 0; i < t->n; i++) {
        const struct bsess *s = &t->s[i];
        struct sockaddr_storage cl;
        socklen_t cl_len = sizeof cl;
        char a[4][INET6_ADDRSTRLEN + 10];
        if (s->state != BS_READY || getsockname(s->fd, (struct sockaddr *)&cl, &cl_len) < 0)
            continue;
        addr_str(&cl, a[0], sizeof a[0]);
        addr_str(&o->server, a[1], sizeof a[1]);
        addr_str(&s->relay, a[2], sizeof a[2]);
        addr_str(&s->peer, a[3], sizeof a[3]);
        printf("tuple %s %s %s %s 0x%x\n", a[0], a[1], a[2], a[3], s->chan);
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin) && ferror(stdin)) {
        perror("ternbench: --sync");
        return -1;
    }
    return 0;
}

int bench_relay(const struct bench_opts *o)
{
    struct bturn t;
    unsigned n = o->n ? o->n : 500;
    if (bturn_init(&t, o, n, 256) < 0) {
        perror("ternbench");
        return 1;
    }
    t.with_peer = true;
    uint64_t t0 = bench_now_ns();
    bturn_setup(&t, t0 + 120000000000u);
    fprintf(stderr, "relay: %llu of %u allocations bound in %.2f s\n",
            (unsigned long long)t.ready, n, (double)(bench_now_ns() - t0) / 1e9);
    struct pump *u = calloc(1, sizeof *u);
    int ep = epoll_create1(0);
    if (!u || ep < 0 || t.ready == 0 || bench_hist_init(&u->h) < 0) {
        fprintf(stderr, "ternbench: relay setup failed\n");
        return 1;
    }
    u->o = o;
    u->chan = 0x4000;
    u->limit = o->count;
    u->p = calloc(n, sizeof *u->p);
    for (unsigned i = 0; i < n; i++) {
        struct bsess *s = &t.s[i];
        if (s->state != BS_READY)
            continue;
        struct pair *p = &u->p[u->n];
        p->fd[C2P] = s->fd;
        p->fd[P2C] = s->peer_fd;
        p->last_rx[C2P] = p->last_rx[P2C] = bench_now_ns();
        int sz = 1 << 20, one = 1;
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt(s->peer_fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        if (o->rx_stamp && (setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0 ||
                            setsockopt(s->peer_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)) {
            perror("ternbench: SO_TIMESTAMPNS");
            return 1;
        }
        struct epoll_event ce = { .events = EPOLLIN, .data.u32 = u->n << 1 };
        struct epoll_event pe = { .events = EPOLLIN, .data.u32 = u->n << 1 | 1 };
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ce);
        epoll_ctl(ep, EPOLL_CTL_ADD, s->peer_fd, &pe);
        u->n++;
    }
    if (o->sync && relay_sync(&t, o) < 0)
        return 1;
    uint64_t start = bench_now_ns();
    pump_run(u, ep, start + (uint64_t)(o->seconds * 1e9));
    double secs = (double)(bench_now_ns() - start) / 1e9;
    /* Whatever is still in flight gets 300 ms to arrive before it counts as lost. */
    struct epoll_event ev[256];
    uint64_t drain = bench_now_ns() + 300000000u;
    while (bench_now_ns() < drain) {
        int m = epoll_wait(ep, ev, 256, 10);
        for (int e = 0; e < m; e++)
            pump_recv(u, ev[e].data.u32 >> 1, (ev[e].data.u32 & 1) ? C2P : P2C);
    }
    uint64_t sent = u->sent[C2P] + u->sent[P2C], got = u->delivered[C2P] + u->delivered[P2C];
    double loss = sent ? 100.0 * (double)(sent - (got < sent ? got : sent)) / (double)sent : 0;
    double p50 = bench_hist_pct(&u->h, 50), p99 = bench_hist_pct(&u->h, 99);
    fprintf(stderr,
            "relay: %u allocations, %u-byte payload: sent %llu, delivered %llu (%.0f/s), "
            "loss %.3f%%, one-way p50 %.1f us, p99 %.1f us\n",
            u->n, o->bytes, (unsigned long long)sent, (unsigned long long)got, got / secs, loss,
            p50, p99);
    printf("result mode=relay allocations=%u bytes=%u sent=%llu delivered=%llu loss_pct=%.4f "
           "rate=%.0f p50_us=%.1f p99_us=%.1f seconds=%.3f sent_c2p=%llu delivered_c2p=%llu "
           "sent_p2c=%llu delivered_p2c=%llu\n",
           u->n, o->bytes, (unsigned long long)sent, (unsigned long long)got, loss, got / secs,
           p50, p99, secs, (unsigned long long)u->sent[C2P], (unsigned long long)u->delivered[C2P],
           (unsigned long long)u->sent[P2C], (unsigned long long)u->delivered[P2C]);
    fflush(stdout); /* now, not at exit: deleting the allocations can take seconds */
    bench_stop = 0;
    bturn_delete_all(&t, bench_now_ns() + 10000000000u);
    close(ep);
    bench_hist_free(&u->h);
    free(u->p);
    free(u);
    bturn_free(&t);
    return got > 0 ? 0 : 1;
}
