/*
 * ternbench internals shared by its modes: options, clock, latency
 * histogram and the result line the scripts parse.
 */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Parsed command line. Strings point into argv (borrowed, never freed). */
struct bench_opts {
    const char *mode;
    struct sockaddr_storage server;
    socklen_t server_len;
    double seconds;        /* -d */
    unsigned socks, win;   /* -s, -w */
    uint64_t count;        /* --count: stop after this many (0: run for -d) */
    unsigned n;            /* -n */
    unsigned bytes;        /* -b */
    double rate;           /* -r: offered packets/s, 0 = closed loop */
    const char *user, *pass;
    struct sockaddr_storage peer_ip; /* -P, port 0 */
    unsigned src_ips;      /* --src-ips */
    unsigned lifetime;     /* -L */
    /* relay only; the defaults leave the generator as it always was */
    const char *peer_netns; /* --peer-netns: peer sockets in /var/run/netns/NAME */
    unsigned batch;        /* --batch: open loop, up to N datagrams per sendmmsg (1) */
    bool sync;             /* --sync: print the 5-tuples and "ready", wait for a stdin line */
    bool rx_stamp;         /* --rx-stamp: latency to the kernel's receive time stamp */
};

/* Set by SIGINT/SIGTERM: every mode winds down and still prints its result. */
extern volatile sig_atomic_t bench_stop;

uint64_t bench_now_ns(void);

/* One-way or round-trip latency in 1 µs buckets up to 1 s (the last bucket
 * takes everything slower), so percentiles are exact to 1 µs without
 * storing samples. */
#define BENCH_HIST_BUCKETS 1000000u
struct bench_hist {
    uint32_t *bucket; /* BENCH_HIST_BUCKETS counters, owned */
    uint64_t n;
};
int bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
double bench_hist_pct(const struct bench_hist *h, double pct); /* µs */
void bench_hist_free(struct bench_hist *h);

/* A non-blocking UDP socket connected to `to`, bound to 127.0.0.(1 + k %
 * src_ips) when src_ips > 1 so that more sockets fit than one address has
 * ephemeral ports. Returns the fd or -1. */
int bench_udp_socket(const struct sockaddr_storage *to, socklen_t to_len, unsigned k,
                     unsigned src_ips);
/* The same from an explicit IPv4 source address (NULL: any). */
int bench_udp_socket_from(const struct sockaddr_storage *to, socklen_t to_len,
                          const struct sockaddr_in *src);
socklen_t bench_sa_len(const struct sockaddr_storage *ss);

/* The modes. Each prints progress to stderr and, last on stdout, one line
 * "result mode=... key=value ...". Return 0 if the run delivered. */
int bench_binding_udp(const struct bench_opts *o);
int bench_binding_tcp(const struct bench_opts *o);
int bench_relay(const struct bench_opts *o);
int bench_allocate(const struct bench_opts *o);
int bench_hold(const struct bench_opts *o);

#endif
