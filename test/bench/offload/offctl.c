/*
 * offctl - test loader for server/relay/offload.bpf.c (issue 14), standing in
 * for ternd: loads the program, attaches it to tc ingress, fills chan_map and
 * peer_map as ternd would on ChannelBind, and reads the counters the way ternd
 * will (counts through mmap, reasons per CPU). Commands on stdin, one a line:
 *   attach IFNAME          tc filter (handle/priority -H/-P), or a tcx link with -t
 *   chan CLIENT LISTEN RELAY PEER CHAN MS [df]
 *                          endpoints a.b.c.d:port or [v6]:port; both directions;
 *                          MS lifetime from now, negative = already expired.
 *                          The same tuple again is a refresh: same counter slots.
 *   del CLIENT LISTEN RELAY PEER CHAN
 *   stats                  "entry N c2p packets=.. bytes=.. p2c packets=.. bytes=..", reasons
 *   quit                   (or EOF) detach and exit
 * -n: load only, print the verifier's statistics. Nothing is pinned.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "offload_maps.h"
#include "offload.skel.h"

#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46 /* kernel >= 6.6; libbpf 1.1 predates it */
#endif

static const char *reason_names[OFFLOAD_R_MAX] = {
    "other", "miss", "expired", "frag", "len", "fib", "mtu", "failed", "to_peer", "to_client",
};

struct ep {
    unsigned char addr[16];
    uint16_t port; /* network order */
};

#define MAX_IF 8
#define MAX_ENTRIES 64
static struct bpf_tc_hook hooks[MAX_IF];
static struct bpf_tc_opts opts[MAX_IF];
static int links[MAX_IF], nif, use_tcx;
static unsigned handle = 0x7e41, prio = 0xc001;
static struct offload *skel;
static struct offload_count *counts; /* mmap of the counts array */
static struct offload_chan_key entries[MAX_ENTRIES]; /* entry i: slots 2i (c2p), 2i+1 (p2c) */
static int nentries;

static int parse_ep(const char *s, struct ep *e)
{
    char buf[80];
    const char *port;
    struct in_addr a4;

    memset(e, 0, sizeof(*e));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(buf))
            return -1;
        memcpy(buf, s + 1, (size_t)(close - s - 1));
        buf[close - s - 1] = 0;
        if (inet_pton(AF_INET6, buf, e->addr) != 1)
            return -1;
        port = close + 2;
    } else {
        snprintf(buf, sizeof(buf), "%s", s);
        char *c = strrchr(buf, ':');
        if (!c)
            return -1;
        *c = 0;
        if (inet_pton(AF_INET, buf, &a4) != 1)
            return -1;
        e->addr[10] = e->addr[11] = 0xff;
        memcpy(e->addr + 12, &a4, 4);
        port = s + (c - buf) + 1;
    }
    e->port = htons((uint16_t)atoi(port));
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The interface holding an address: where ternd's socket for it lives. */
static uint32_t ifindex_of(const unsigned char *a)
{
    struct ifaddrs *ifa, *i;
    uint32_t r = 0;
    int v4 = a[10] == 0xff && a[11] == 0xff && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10);

    if (getifaddrs(&ifa))
        return 0;
    for (i = ifa; i && !r; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (v4 && i->ifa_addr->sa_family == AF_INET &&
            !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, a + 12, 4))
            r = if_nametoindex(i->ifa_name);
        if (!v4 && i->ifa_addr->sa_family == AF_INET6 &&
            !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, a, 16))
            r = if_nametoindex(i->ifa_name);
    }
    freeifaddrs(ifa);
    return r;
}

static int do_attach(const char *ifname)
{
    int ifindex = (int)if_nametoindex(ifname), fd = bpf_program__fd(skel->progs.tern_relay);

    if (!ifindex || nif == MAX_IF)
        return -1;
    if (use_tcx) {
        links[nif] = bpf_link_create(fd, ifindex, BPF_TCX_INGRESS, NULL);
        if (links[nif] < 0)
            return -1;
    } else {
        hooks[nif] = (struct bpf_tc_hook){ .sz = sizeof(struct bpf_tc_hook), .ifindex = ifindex,
                                           .attach_point = BPF_TC_INGRESS };
        int err = bpf_tc_hook_create(&hooks[nif]);
        if (err && err != -EEXIST)
            return -1;
        opts[nif] = (struct bpf_tc_opts){ .sz = sizeof(struct bpf_tc_opts), .handle = handle,
                                          .priority = prio, .prog_fd = fd,
                                          .flags = BPF_TC_F_REPLACE };
        if (bpf_tc_attach(&hooks[nif], &opts[nif]))
            return -1;
    }
    nif++;
    return 0;
}

static void detach_all(void)
{
    for (int i = 0; i < nif; i++) {
        if (use_tcx) {
            close(links[i]);
            continue;
        }
        opts[i].flags = opts[i].prog_fd = opts[i].prog_id = 0;
        bpf_tc_detach(&hooks[i], &opts[i]); /* the clsact qdisc stays: others may use it */
    }
    nif = 0;
}

static int do_chan(const char *args, int del)
{
    char c[80], l[80], r[80], p[80], df[8] = "";
    unsigned chan;
    long ms = 0;
    struct ep ce, le, re, pe;
    int n = sscanf(args, "%79s %79s %79s %79s %i %ld %7s", c, l, r, p, &chan, &ms, df);

    if (n < 5 || (!del && n < 6))
        return -1;
    if (parse_ep(c, &ce) || parse_ep(l, &le) || parse_ep(r, &re) || parse_ep(p, &pe))
        return -1;
    struct offload_chan_key ck = { .local_port = le.port, .client_port = ce.port,
                                   .chan = (uint16_t)chan };
    struct offload_peer_key pk = { .relay_port = re.port, .peer_port = pe.port };
    memcpy(ck.local, le.addr, 16);
    memcpy(ck.client, ce.addr, 16);
    memcpy(pk.relay, re.addr, 16);
    memcpy(pk.peer, pe.addr, 16);
    if (del) {
        bpf_map__delete_elem(skel->maps.chan_map, &ck, sizeof(ck), 0);
        bpf_map__delete_elem(skel->maps.peer_map, &pk, sizeof(pk), 0);
        return 0;
    }
    int e;
    for (e = 0; e < nentries && memcmp(&entries[e], &ck, sizeof(ck)); e++)
        ;
    if (e == nentries) {
        if (nentries == MAX_ENTRIES)
            return -1;
        entries[nentries++] = ck;
    }
    uint64_t exp = ms >= 0 ? mono_ns() + (uint64_t)ms * 1000000ull
                           : mono_ns() - (uint64_t)(-ms) * 1000000ull;
    struct offload_fwd cv = { .src_port = re.port, .dst_port = pe.port, .expires_ns = exp,
                              .oif = ifindex_of(re.addr), .slot = 2u * (unsigned)e,
                              .flags = strcmp(df, "df") ? 0 : OFFLOAD_F_DF };
    struct offload_fwd pv = { .src_port = le.port, .dst_port = ce.port, .chan = (uint16_t)chan,
                              .expires_ns = exp, .oif = ifindex_of(le.addr),
                              .slot = 2u * (unsigned)e + 1, .flags = cv.flags };
    memcpy(cv.src, re.addr, 16);
    memcpy(cv.dst, pe.addr, 16);
    memcpy(pv.src, le.addr, 16);
    memcpy(pv.dst, ce.addr, 16);
    if (!cv.oif || !pv.oif)
        return -1;
    if (bpf_map__update_elem(skel->maps.chan_map, &ck, sizeof(ck), &cv, sizeof(cv), BPF_ANY) ||
        bpf_map__update_elem(skel->maps.peer_map, &pk, sizeof(pk), &pv, sizeof(pv), BPF_ANY))
        return -1;
    return 0;
}

static void do_stats(void)
{
    for (int e = 0; e < nentries; e++)
        printf("entry %d chan=0x%x c2p packets=%llu bytes=%llu p2c packets=%llu bytes=%llu\n", e,
               entries[e].chan, (unsigned long long)counts[2 * e].packets,
               (unsigned long long)counts[2 * e].bytes, (unsigned long long)counts[2 * e + 1].packets,
               (unsigned long long)counts[2 * e + 1].bytes);
    int ncpu = libbpf_num_possible_cpus();
    uint64_t vals[256];
    printf("reasons");
    for (uint32_t r = 0; r < OFFLOAD_R_MAX && ncpu > 0 && ncpu <= 256; r++) {
        uint64_t sum = 0;
        if (!bpf_map__lookup_elem(skel->maps.reasons, &r, sizeof(r), vals,
                                  sizeof(uint64_t) * (size_t)ncpu, 0))
            for (int i = 0; i < ncpu; i++)
                sum += vals[i];
        printf(" %s=%llu", reason_names[r], (unsigned long long)sum);
    }
    printf("\n");
}

static int print_fn(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
    if (lvl == LIBBPF_DEBUG && !getenv("OFFCTL_DEBUG"))
        return 0;
    return vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
    static char vlog[1 << 20];
    int o, check_only = 0;

    while ((o = getopt(argc, argv, "H:P:nt")) != -1) {
        if (o == 'n')
            check_only = 1;
        else if (o == 't')
            use_tcx = 1;
        else if (o == 'H')
            handle = (unsigned)strtoul(optarg, NULL, 0);
        else if (o == 'P')
            prio = (unsigned)strtoul(optarg, NULL, 0);
        else
            return 2;
    }
    libbpf_set_print(print_fn);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    skel = offload__open();
    if (!skel) {
        printf("err open: %s\n", strerror(errno));
        return 1;
    }
    if (check_only) {
        bpf_program__set_log_buf(skel->progs.tern_relay, vlog, sizeof(vlog));
        bpf_program__set_log_level(skel->progs.tern_relay, 4); /* BPF_LOG_STATS */
    }
    if (offload__load(skel)) {
        printf("err load: %s\n", strerror(errno));
        return 1;
    }
    if (check_only) {
        struct bpf_prog_info info = { 0 };
        __u32 len = sizeof(info);
        bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.tern_relay), &info, &len);
        printf("%sxlated_bytes=%u jited_bytes=%u verified_insns=%u\n", vlog, info.xlated_prog_len,
               info.jited_prog_len, info.verified_insns);
        offload__destroy(skel);
        return 0;
    }
    counts = mmap(NULL, OFFLOAD_SLOTS * sizeof(*counts), PROT_READ, MAP_SHARED,
                  bpf_map__fd(skel->maps.counts), 0);
    if (counts == MAP_FAILED) {
        printf("err mmap counts: %s\n", strerror(errno));
        return 1;
    }
    printf("ok loaded\n");
    char line[512];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "attach ", 7))
            printf(do_attach(line + 7) ? "err attach\n" : "ok attached\n");
        else if (!strncmp(line, "chan ", 5))
            printf(do_chan(line + 5, 0) ? "err chan\n" : "ok chan\n");
        else if (!strncmp(line, "del ", 4))
            printf(do_chan(line + 4, 1) ? "err del\n" : "ok del\n");
        else if (!strcmp(line, "stats")) {
            do_stats();
            printf("ok stats\n");
        } else if (!strcmp(line, "quit"))
            break;
        else
            printf("err unknown\n");
    }
    detach_all();
    offload__destroy(skel);
    printf("ok bye\n");
    return 0;
}
