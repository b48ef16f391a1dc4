/*
 * ternbench - a small Binding load generator (loopback only).
 * Mode binding-udp: S sockets, each keeping W requests in flight, for D
 * seconds; requests go out with sendmmsg and answers come back with
 * recvmmsg. A lost request is replaced after 200 ms so the window never
 * drains. Prints responses/s and p50/p99 round-trip latency.
 * Usage: ternbench binding-udp HOST PORT [-s sockets] [-w window] [-d seconds]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/stun.h"

#define MAX_SOCKS 256
#define MAX_WIN 256
#define BATCH 64
#define LAT_SAMPLES 200000

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The transaction ID carries the send time, so no per-request table is needed. */
static size_t make_req(uint8_t *buf, uint64_t t, uint32_t seq)
{
    uint8_t tid[12];
    memcpy(tid, &t, 8);
    memcpy(tid + 8, &seq, 4);
    struct stun_enc e;
    stun_enc_init(&e, buf, 64, STUN_BINDING, STUN_CLASS_REQUEST, tid, false);
    return e.len;
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "binding-udp") != 0) {
        fprintf(stderr, "usage: ternbench binding-udp HOST PORT [-s sockets] [-w window] [-d seconds]\n");
        return 2;
    }
    int socks = 16, win = 32;
    double dur = 5;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-s")) socks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-w")) win = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-d")) dur = atof(argv[i + 1]);
    }
    if (socks < 1 || socks > MAX_SOCKS || win < 1 || win > MAX_WIN || dur <= 0 || dur > 600) {
        fprintf(stderr, "ternbench: bad arguments\n");
        return 2;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
    if (getaddrinfo(argv[2], argv[3], &hints, &ai) != 0)
        return 2;
    int fds[MAX_SOCKS];
    int inflight[MAX_SOCKS];
    uint64_t last_rx[MAX_SOCKS];
    struct pollfd pfd[MAX_SOCKS];
    static uint64_t lat[LAT_SAMPLES];
    size_t n_lat = 0;
    uint64_t sent = 0, recvd = 0;
    uint32_t seq = 0;
    static uint8_t txb[BATCH][64], rxb[BATCH][512];
    struct mmsghdr tx[BATCH], rx[BATCH];
    struct iovec txv[BATCH], rxv[BATCH];
    for (int s = 0; s < socks; s++) {
        fds[s] = socket(ai->ai_family, SOCK_DGRAM, 0);
        if (fds[s] < 0 || connect(fds[s], ai->ai_addr, ai->ai_addrlen) < 0) {
            perror("ternbench: socket");
            return 1;
        }
        int sz = 4 << 20;
        setsockopt(fds[s], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        inflight[s] = 0;
        pfd[s] = (struct pollfd){ .fd = fds[s], .events = POLLIN };
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(dur * 1e9);
    for (int s = 0; s < socks; s++)
        last_rx[s] = start;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        for (int s = 0; s < socks; s++) {
            if (t - last_rx[s] > 200000000u) { /* losses: refill the window */
                inflight[s] = 0;
                last_rx[s] = t;
            }
            int n = win - inflight[s];
            if (n <= 0)
                continue;
            if (n > BATCH)
                n = BATCH;
            for (int k = 0; k < n; k++) {
                size_t len = make_req(txb[k], t, seq++);
                txv[k] = (struct iovec){ txb[k], len };
                tx[k].msg_hdr = (struct msghdr){ .msg_iov = &txv[k], .msg_iovlen = 1 };
            }
            int r = sendmmsg(fds[s], tx, (unsigned)n, MSG_DONTWAIT);
            if (r > 0) {
                inflight[s] += r;
                sent += (uint64_t)r;
            }
        }
        if (poll(pfd, (nfds_t)socks, 10) <= 0)
            continue;
        for (int s = 0; s < socks; s++) {
            if (!(pfd[s].revents & POLLIN))
                continue;
            for (int k = 0; k < BATCH; k++) {
                rxv[k] = (struct iovec){ rxb[k], sizeof rxb[k] };
                rx[k].msg_hdr = (struct msghdr){ .msg_iov = &rxv[k], .msg_iovlen = 1 };
            }
            int r = recvmmsg(fds[s], rx, BATCH, MSG_DONTWAIT, NULL);
            if (r <= 0)
                continue;
            uint64_t tr = now_ns();
            last_rx[s] = tr;
            for (int k = 0; k < r; k++) {
                if (rx[k].msg_len < STUN_HDR_LEN || rxb[k][0] != 0x01 || rxb[k][1] != 0x01)
                    continue;
                uint64_t ts;
                memcpy(&ts, rxb[k] + 8, 8);
                if (n_lat < LAT_SAMPLES)
                    lat[n_lat++] = tr - ts;
                recvd++;
                if (inflight[s] > 0)
                    inflight[s]--;
            }
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    qsort(lat, n_lat, sizeof lat[0], cmp_u64);
    double p50 = n_lat ? lat[n_lat / 2] / 1e3 : 0, p99 = n_lat ? lat[n_lat * 99 / 100] / 1e3 : 0;
    printf("binding-udp: sent=%llu answered=%llu seconds=%.2f rate=%.0f/s p50=%.1fus p99=%.1fus\n",
           (unsigned long long)sent, (unsigned long long)recvd, secs, recvd / secs, p50, p99);
    freeaddrinfo(ai);
    return recvd > 0 ? 0 : 1;
}
