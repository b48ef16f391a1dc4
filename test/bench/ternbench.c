/*
 * ternbench - tern's load generator (loopback only). Every mode runs for a
 * fixed time (or count) and stops by itself; the last stdout line is
 * "result mode=... key=value ..." for scripts/bench-vs-coturn.
 *
 *   ternbench MODE HOST PORT [options]
 *   binding-udp, binding-tcp  Binding requests, -s sockets x -w in flight
 *   relay     -n allocations ChannelBound to peer sockets of our own,
 *             ChannelData both ways, -b payload bytes, -r offered pkts/s
 *   allocate  -n concurrent full Allocate handshakes (401, authenticated,
 *             Refresh 0) per second
 *   hold      -n allocations kept refreshed for -d seconds
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/stun.h"
#include "test/bench/bench.h"

volatile sig_atomic_t bench_stop;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_hist_init(struct bench_hist *h)
{
    h->n = 0;
    h->bucket = calloc(BENCH_HIST_BUCKETS, sizeof h->bucket[0]);
    return h->bucket ? 0 : -1;
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    h->bucket[us < BENCH_HIST_BUCKETS ? us : BENCH_HIST_BUCKETS - 1]++;
    h->n++;
}

double bench_hist_pct(const struct bench_hist *h, double pct)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * pct / 100.0), seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen > want)
            return i + 0.5;
    }
    return BENCH_HIST_BUCKETS;
}

void bench_hist_free(struct bench_hist *h)
{
    free(h->bucket);
    h->bucket = NULL;
}

socklen_t bench_sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int bench_udp_socket_from(const struct sockaddr_storage *to, socklen_t to_len,
                          const struct sockaddr_in *src)
{
    int fd = socket(to->ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if ((src && bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) ||
        connect(fd, (const struct sockaddr *)to, to_len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int bench_udp_socket(const struct sockaddr_storage *to, socklen_t to_len, unsigned k,
                     unsigned src_ips)
{
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7F000001u + k % src_ips);
    bool spread = src_ips > 1 && to->ss_family == AF_INET;
    return bench_udp_socket_from(to, to_len, spread ? &src : NULL);
}

/* The transaction ID carries the send time, so no per-request table is needed. */
static size_t binding_make(uint8_t *buf, uint64_t t, uint32_t seq)
{
    uint8_t tid[12];
    memcpy(tid, &t, 8);
    memcpy(tid + 8, &seq, 4);
    struct stun_enc e;
    stun_enc_init(&e, buf, 64, STUN_BINDING, STUN_CLASS_REQUEST, tid, false);
    return e.len;
}

#define MAX_SOCKS 1024
#define BATCH 64

/* An answer is a Binding success (0x0101) or, from the echo floor, our own
 * request (0x0001) coming back. */
static bool binding_is_answer(const uint8_t *p, size_t len)
{
    return len >= STUN_HDR_LEN && p[1] == 0x01 && (p[0] == 0x01 || p[0] == 0x00);
}

static void binding_report(const char *mode, uint64_t sent, uint64_t recvd, double secs,
                           const struct bench_hist *h)
{
    double p50 = bench_hist_pct(h, 50), p99 = bench_hist_pct(h, 99);
    fprintf(stderr, "%s: %llu answered in %.2f s, %.0f/s, p50 %.1f us, p99 %.1f us\n", mode,
            (unsigned long long)recvd, secs, recvd / secs, p50, p99);
    printf("result mode=%s sent=%llu answered=%llu seconds=%.3f rate=%.0f p50_us=%.1f "
           "p99_us=%.1f\n",
           mode, (unsigned long long)sent, (unsigned long long)recvd, secs, recvd / secs, p50,
           p99);
}

int bench_binding_udp(const struct bench_opts *o)
{
    static int fds[MAX_SOCKS];
    static unsigned inflight[MAX_SOCKS];
    static uint64_t last_rx[MAX_SOCKS];
    static struct pollfd pfd[MAX_SOCKS];
    static uint8_t txb[BATCH][64], rxb[BATCH][512];
    struct mmsghdr tx[BATCH], rx[BATCH];
    struct iovec txv[BATCH], rxv[BATCH];
    struct bench_hist h;
    uint64_t sent = 0, recvd = 0;
    uint32_t seq = 0;
    if (bench_hist_init(&h) < 0)
        return 1;
    for (unsigned s = 0; s < o->socks; s++) {
        fds[s] = bench_udp_socket(&o->server, o->server_len, s, 1);
        if (fds[s] < 0) {
            perror("ternbench: socket");
            return 1;
        }
        int sz = 4 << 20;
        setsockopt(fds[s], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        pfd[s] = (struct pollfd){ .fd = fds[s], .events = POLLIN };
    }
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(o->seconds * 1e9);
    for (unsigned s = 0; s < o->socks; s++)
        last_rx[s] = start;
    while (!bench_stop) {
        uint64_t t = bench_now_ns();
        if (t >= end || (o->count && recvd >= o->count))
            break;
        for (unsigned s = 0; s < o->socks; s++) {
            if (t - last_rx[s] > 200000000u) { /* losses: refill the window */
                inflight[s] = 0;
                last_rx[s] = t;
            }
            unsigned n = o->win - inflight[s];
            if (o->count && sent + n > o->count)
                n = sent < o->count ? (unsigned)(o->count - sent) : 0;
            if (n == 0)
                continue;
            if (n > BATCH)
                n = BATCH;
            for (unsigned k = 0; k < n; k++) {
                size_t len = binding_make(txb[k], t, seq++);
                txv[k] = (struct iovec){ txb[k], len };
                tx[k].msg_hdr = (struct msghdr){ .msg_iov = &txv[k], .msg_iovlen = 1 };
            }
            int r = sendmmsg(fds[s], tx, n, 0);
            if (r > 0) {
                inflight[s] += (unsigned)r;
                sent += (uint64_t)r;
            }
        }
        if (poll(pfd, o->socks, 10) <= 0)
            continue;
        for (unsigned s = 0; s < o->socks; s++) {
            if (!(pfd[s].revents & POLLIN))
                continue;
            for (int k = 0; k < BATCH; k++) {
                rxv[k] = (struct iovec){ rxb[k], sizeof rxb[k] };
                rx[k].msg_hdr = (struct msghdr){ .msg_iov = &rxv[k], .msg_iovlen = 1 };
            }
            int r = recvmmsg(fds[s], rx, BATCH, MSG_DONTWAIT, NULL);
            if (r <= 0)
                continue;
            uint64_t tr = bench_now_ns();
            last_rx[s] = tr;
            for (int k = 0; k < r; k++) {
                if (!binding_is_answer(rxb[k], rx[k].msg_len))
                    continue;
                uint64_t ts;
                memcpy(&ts, rxb[k] + 8, 8);
                bench_hist_add(&h, tr - ts);
                recvd++;
                if (inflight[s] > 0)
                    inflight[s]--;
            }
        }
    }
    double secs = (double)(bench_now_ns() - start) / 1e9;
    binding_report("binding-udp", sent, recvd, secs, &h);
    for (unsigned s = 0; s < o->socks; s++)
        close(fds[s]);
    bench_hist_free(&h);
    return recvd > 0 ? 0 : 1;
}

/* Per-connection state for binding-tcp: responses arrive as a byte stream
 * and are cut at STUN header lengths; requests not yet written wait in tx. */
struct tcp_conn {
    int fd;
    size_t rx_len, tx_len;
    uint8_t rx[8192], tx[4096];
};

static void tcp_flush(struct tcp_conn *c)
{
    while (c->tx_len) {
        ssize_t w = send(c->fd, c->tx, c->tx_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            return;
        memmove(c->tx, c->tx + w, c->tx_len - (size_t)w);
        c->tx_len -= (size_t)w;
    }
}

static uint64_t tcp_queue(struct tcp_conn *c, unsigned n, uint32_t *seq)
{
    uint64_t q = 0;
    uint64_t t = bench_now_ns();
    while (n-- && c->tx_len + 64 <= sizeof c->tx) {
        c->tx_len += binding_make(c->tx + c->tx_len, t, (*seq)++);
        q++;
    }
    return q;
}

int bench_binding_tcp(const struct bench_opts *o)
{
    static struct tcp_conn conns[MAX_SOCKS];
    static struct pollfd pfd[MAX_SOCKS];
    struct bench_hist h;
    uint64_t sent = 0, recvd = 0;
    uint32_t seq = 0;
    if (bench_hist_init(&h) < 0)
        return 1;
    for (unsigned s = 0; s < o->socks; s++) {
        struct tcp_conn *c = &conns[s];
        c->fd = socket(o->server.ss_family, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)&o->server, o->server_len) < 0) {
            perror("ternbench: connect");
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pfd[s] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
    }
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(o->seconds * 1e9);
    for (unsigned s = 0; s < o->socks; s++) {
        sent += tcp_queue(&conns[s], o->win, &seq);
        tcp_flush(&conns[s]);
    }
    while (!bench_stop && bench_now_ns() < end && !(o->count && recvd >= o->count)) {
        for (unsigned s = 0; s < o->socks; s++)
            pfd[s].events = POLLIN | (conns[s].tx_len ? POLLOUT : 0);
        if (poll(pfd, o->socks, 10) <= 0)
            continue;
        for (unsigned s = 0; s < o->socks; s++) {
            struct tcp_conn *c = &conns[s];
            if (pfd[s].revents & (POLLERR | POLLHUP)) {
                fprintf(stderr, "ternbench: connection %u closed by the server\n", s);
                goto out;
            }
            if (pfd[s].revents & POLLIN) {
                ssize_t r = recv(c->fd, c->rx + c->rx_len, sizeof c->rx - c->rx_len, MSG_DONTWAIT);
                if (r == 0) {
                    fprintf(stderr, "ternbench: connection %u closed by the server\n", s);
                    goto out;
                }
                if (r > 0)
                    c->rx_len += (size_t)r;
                uint64_t tr = bench_now_ns();
                size_t off = 0;
                unsigned answers = 0;
                while (c->rx_len - off >= STUN_HDR_LEN) {
                    size_t flen = STUN_HDR_LEN + (size_t)(c->rx[off + 2] << 8 | c->rx[off + 3]);
                    if (c->rx_len - off < flen)
                        break;
                    if (binding_is_answer(c->rx + off, flen)) {
                        uint64_t ts;
                        memcpy(&ts, c->rx + off + 8, 8);
                        bench_hist_add(&h, tr - ts);
                        recvd++;
                        answers++;
                    }
                    off += flen;
                }
                memmove(c->rx, c->rx + off, c->rx_len - off);
                c->rx_len -= off;
                if (o->count && sent + answers > o->count)
                    answers = sent < o->count ? (unsigned)(o->count - sent) : 0;
                sent += tcp_queue(c, answers, &seq);
            }
            tcp_flush(c);
        }
    }
out:;
    double secs = (double)(bench_now_ns() - start) / 1e9;
    binding_report("binding-tcp", sent, recvd, secs, &h);
    for (unsigned s = 0; s < o->socks; s++)
        close(conns[s].fd);
    bench_hist_free(&h);
    return recvd > 0 ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ternbench MODE HOST PORT [options]\n"
            "  MODE: binding-udp | binding-tcp | relay | allocate | hold\n"
            "  -d SECONDS  duration (5)          --count N  stop after N answers/packets\n"
            "  -s N -w W   binding: sockets (16) x requests in flight (32); relay: -w window\n"
            "  -n N        relay: allocations (500); allocate: concurrent (64); hold: allocations\n"
            "  -b BYTES    relay payload (100)   -r PPS  relay offered packets/s (0: max)\n"
            "  -u USER -p PASS  credentials (bench / bench-pass)\n"
            "  -P IP       relay: peer socket address (127.0.0.1)\n"
            "  --src-ips K client sockets on 127.0.0.1..127.0.0.K\n"
            "  -L SECONDS  hold: requested lifetime (600), refreshed at half\n"
            "  relay in a namespace test bed (test/bench/offload):\n"
            "  --peer-netns NAME  peer sockets in network namespace NAME\n"
            "  --batch N   open loop: up to N due datagrams per sendmmsg (1)\n"
            "  --rx-stamp 1  latency to the kernel's receive time stamp\n"
            "  --sync 1    print the 5-tuples and \"ready\", wait for a line on stdin\n");
    exit(2);
}

static int parse_addr(const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST }, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    if (len)
        *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

int main(int argc, char **argv)
{
    struct bench_opts o = { .seconds = 5, .socks = 16, .win = 32, .n = 0, .bytes = 100,
                            .user = "bench", .pass = "bench-pass", .src_ips = 1,
                            .lifetime = 600, .batch = 1 };
    if (argc < 4)
        usage();
    o.mode = argv[1];
    if (parse_addr(argv[2], argv[3], &o.server, &o.server_len) < 0) {
        fprintf(stderr, "ternbench: bad address %s %s\n", argv[2], argv[3]);
        return 2;
    }
    const char *peer = o.server.ss_family == AF_INET6 ? "::1" : "127.0.0.1";
    bool win_set = false;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "-d")) o.seconds = atof(v);
        else if (!strcmp(a, "-s")) o.socks = (unsigned)atoi(v);
        else if (!strcmp(a, "-w")) { o.win = (unsigned)atoi(v); win_set = true; }
        else if (!strcmp(a, "--count")) o.count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "-n")) o.n = (unsigned)atoi(v);
        else if (!strcmp(a, "-b")) o.bytes = (unsigned)atoi(v);
        else if (!strcmp(a, "-r")) o.rate = atof(v);
        else if (!strcmp(a, "-u")) o.user = v;
        else if (!strcmp(a, "-p")) o.pass = v;
        else if (!strcmp(a, "-P")) peer = v;
        else if (!strcmp(a, "--src-ips")) o.src_ips = (unsigned)atoi(v);
        else if (!strcmp(a, "-L")) o.lifetime = (unsigned)atoi(v);
        else if (!strcmp(a, "--peer-netns")) o.peer_netns = v;
        else if (!strcmp(a, "--batch")) o.batch = (unsigned)atoi(v);
        else if (!strcmp(a, "--rx-stamp")) o.rx_stamp = atoi(v) != 0;
        else if (!strcmp(a, "--sync")) o.sync = atoi(v) != 0;
        else usage();
    }
    if (parse_addr(peer, "0", &o.peer_ip, NULL) < 0 || o.peer_ip.ss_family != o.server.ss_family) {
        fprintf(stderr, "ternbench: bad peer address %s\n", peer);
        return 2;
    }
    bool binding = !strncmp(o.mode, "binding-", 8);
    if (!binding && !win_set)
        o.win = 4;
    if (o.seconds <= 0 || o.seconds > 86400 || o.socks < 1 || o.socks > MAX_SOCKS || o.win < 1 ||
        o.win > 256 || o.bytes < 16 || o.bytes > 1400 || o.rate < 0 || o.src_ips < 1 ||
        o.src_ips > 254 || o.n > 1000000 || o.lifetime < 10 || o.batch < 1 || o.batch > 64) {
        fprintf(stderr, "ternbench: argument out of range\n");
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(o.mode, "binding-udp"))
        return bench_binding_udp(&o);
    if (!strcmp(o.mode, "binding-tcp"))
        return bench_binding_tcp(&o);
    if (!strcmp(o.mode, "relay"))
        return bench_relay(&o);
    if (!strcmp(o.mode, "allocate"))
        return bench_allocate(&o);
    if (!strcmp(o.mode, "hold"))
        return bench_hold(&o);
    usage();
}
