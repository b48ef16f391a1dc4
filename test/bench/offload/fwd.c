/* The user-space floor of the offload benchmark (issue 14) in the namespace bed.
 *
 * No TURN at all: takes the 5-tuples ternbench wrote after ternd set up the allocations
 * (CLIENT LISTEN RELAY PEER CHAN per line), binds the listen and relay addresses (ternd is gone
 * by then) and forwards ChannelData <-> UDP with recvmmsg/sendmmsg (batched both ways), one thread per direction.
 * Whatever ternd spends per packet beyond this is TURN bookkeeping; what this spends is the
 * receive + send system calls any user-space relay pays.
 *
 * Usage: ternfwd TUPLES_FILE   (bench.py builds it as build/ternfwd)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXT 256
#define BATCH 64

static struct sockaddr_in client[MAXT], listen_a, relay[MAXT], peer[MAXT];
static uint16_t chan[MAXT];
static int nt, lfd, rfd[MAXT];

static int ep_parse(const char *s, struct sockaddr_in *a)
{
    char ip[64];
    unsigned port;
    if (sscanf(s, "%63[^:]:%u", ip, &port) != 2)
        return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

static int bound(const struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (fd < 0 || bind(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
        perror("fwd: bind");
        exit(1);
    }
    return fd;
}

/* client -> peer: strip the header, send from the matching relay socket; consecutive
 * datagrams for the same relay socket go out in one sendmmsg */
static void *c2p(void *arg)
{
    (void)arg;
    static uint8_t buf[BATCH][1600];
    struct sockaddr_in from[BATCH];
    struct iovec iov[BATCH], oiov[BATCH];
    struct mmsghdr mh[BATCH], out[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){ buf[i], sizeof buf[i] };
            mh[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i],
                                             .msg_iov = &iov[i], .msg_iovlen = 1 };
        }
        int n = recvmmsg(lfd, mh, BATCH, MSG_WAITFORONE, NULL);
        int run = 0, run_k = -1;
        for (int i = 0; i <= n; i++) {
            int k = -1;
            if (i < n && mh[i].msg_len >= 4 && (buf[i][0] & 0xC0) == 0x40)
                for (int j = 0; j < nt; j++)
                    if (from[i].sin_port == client[j].sin_port &&
                        from[i].sin_addr.s_addr == client[j].sin_addr.s_addr) {
                        k = j;
                        break;
                    }
            if (run && (i == n || k != run_k)) {
                sendmmsg(rfd[run_k], out, (unsigned)run, 0);
                run = 0;
            }
            if (k < 0)
                continue;
            run_k = k;
            oiov[run] = (struct iovec){ buf[i] + 4, mh[i].msg_len - 4 };
            out[run].msg_hdr = (struct msghdr){ .msg_name = &peer[k], .msg_namelen = sizeof peer[k],
                                                .msg_iov = &oiov[run], .msg_iovlen = 1 };
            run++;
        }
    }
    return NULL;
}

/* peer -> client: prepend the header, send from the listen socket */
static void *p2c(void *arg)
{
    (void)arg;
    int ep = epoll_create1(0);
    for (int k = 0; k < nt; k++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };
        epoll_ctl(ep, EPOLL_CTL_ADD, rfd[k], &ev);
    }
    static uint8_t buf[BATCH][1600];
    struct iovec iov[BATCH];
    struct mmsghdr mh[BATCH];
    struct epoll_event evs[64];
    for (;;) {
        int ne = epoll_wait(ep, evs, 64, -1);
        for (int e = 0; e < ne; e++) {
            int k = (int)evs[e].data.u32;
            for (int i = 0; i < BATCH; i++) {
                iov[i] = (struct iovec){ buf[i] + 4, sizeof buf[i] - 4 };
                mh[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
            }
            int n = recvmmsg(rfd[k], mh, BATCH, MSG_DONTWAIT, NULL);
            for (int i = 0; i < n; i++) {
                unsigned len = mh[i].msg_len;
                buf[i][0] = (uint8_t)(chan[k] >> 8);
                buf[i][1] = (uint8_t)chan[k];
                buf[i][2] = (uint8_t)(len >> 8);
                buf[i][3] = (uint8_t)len;
                iov[i] = (struct iovec){ buf[i], len + 4 };
                mh[i].msg_hdr = (struct msghdr){ .msg_name = &client[k],
                                                 .msg_namelen = sizeof client[k],
                                                 .msg_iov = &iov[i], .msg_iovlen = 1 };
            }
            if (n > 0)
                sendmmsg(lfd, mh, (unsigned)n, 0);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    FILE *f = fopen(argv[1], "r");
    char a[4][64];
    unsigned c;
    while (f && nt < MAXT && fscanf(f, "%63s %63s %63s %63s %x", a[0], a[1], a[2], a[3], &c) == 5) {
        if (ep_parse(a[0], &client[nt]) || ep_parse(a[1], &listen_a) || ep_parse(a[2], &relay[nt]) ||
            ep_parse(a[3], &peer[nt]))
            return 1;
        chan[nt++] = (uint16_t)c;
    }
    if (!nt)
        return 1;
    lfd = bound(&listen_a);
    for (int k = 0; k < nt; k++)
        rfd[k] = bound(&relay[k]);
    printf("fwd: %d tuples\n", nt);
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, p2c, NULL);
    c2p(NULL);
    return 0;
}
