/*
 * offload.c - loads the kernel relay program compiled into ternd, attaches
 * it to the chosen interfaces and keeps its maps (offload.h).
 *
 * Attachment: a tcx link first (kernel 6.6 and later). It belongs to this
 * process's descriptor, so it is gone the moment ternd exits, even by
 * SIGKILL, and several ternds' links on one interface chain (the program
 * answers "next" for what it does not relay). Older kernels get a clsact
 * filter, which outlives a killed process: its handle is derived from the
 * first UDP listener's address and port, so the next start of the same
 * configuration replaces a predecessor's stale filter, and another ternd on
 * the host (another listener) never takes its handle.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/relay/offload.h"

#define TCX_INGRESS 46 /* BPF_TCX_INGRESS: libbpf 1.1's headers predate it */
#define TC_PRIORITY 0xc001
#define MAX_IFS CONF_MAX_OFFLOAD_IFS
#define MAX_ADDRS 64


struct host_addr {
    uint8_t ip[16];
    unsigned ifindex;
};

/* Owns obj (the program and its maps), the link descriptors or filters,
 * and the counters' mapping. */
struct offload {
    struct bpf_object *obj;
    int chan_fd, peer_fd, reasons_fd;
    const struct offload_count *counts; /* mmap of the counts array */
    int n_workers;
    unsigned n_ifs;
    unsigned ifindex[MAX_IFS];
    int link[MAX_IFS]; /* tcx link fd, or -1 for a clsact filter */
    uint32_t tc_handle;
    struct host_addr addrs[MAX_ADDRS];
    unsigned n_addrs;
};

void offload_addr16(uint8_t out[16], const struct sockaddr *sa)
{
    memset(out, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return;
    }
    out[10] = out[11] = 0xFF;
    memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

unsigned offload_ifindex_of(const struct offload *o, const struct sockaddr *addr)
{
    uint8_t ip[16];
    offload_addr16(ip, addr);
    for (unsigned i = 0; i < o->n_addrs; i++)
        if (memcmp(o->addrs[i].ip, ip, 16) == 0)
            return o->addrs[i].ifindex;
    return 0;
}

/* libbpf speaks on its own through this; its warnings matter once, at start. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_debug("offload: libbpf: %s", line);
    return 0;
}

/* The program reads a 14-byte Ethernet header (loopback has one too): a
 * tunnel or other layer-3 device would be parsed wrong. getifaddrs lists
 * each interface once as AF_PACKET, with its hardware type. */
static bool is_ethernet(const struct ifaddrs *ifs, const char *name)
{
    for (const struct ifaddrs *it = ifs; it; it = it->ifa_next)
        if (it->ifa_addr && it->ifa_addr->sa_family == AF_PACKET && strcmp(it->ifa_name, name) == 0) {
            unsigned short t = ((const struct sockaddr_ll *)it->ifa_addr)->sll_hatype;
            return t == ARPHRD_ETHER || t == ARPHRD_LOOPBACK;
        }
    return false;
}

static bool has_if(const struct offload *o, unsigned idx)
{
    for (unsigned i = 0; i < o->n_ifs; i++)
        if (o->ifindex[i] == idx)
            return true;
    return false;
}

/* The host's addresses by interface (for the FIB lookups' output interface)
 * and, unless interfaces are named, the ones to attach to: those holding a
 * UDP listener's or relay address, every one for a wildcard. "auto" leaves
 * loopback out: only tests relay there, and peers on it are refused by
 * default. */
static int choose_interfaces(struct offload *o, const struct conf *c, char *msg, size_t cap)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) < 0) {
        snprintf(msg, cap, "offload: cannot list interfaces: %s", strerror(errno));
        return -1;
    }
    const struct sockaddr *want[CONF_MAX_LISTEN + CONF_MAX_RELAY_IPS];
    size_t n_want = 0;
    for (size_t i = 0; i < c->n_listen; i++)
        if (c->listen[i].proto == CONF_UDP)
            want[n_want++] = (const struct sockaddr *)&c->listen[i].addr;
    for (size_t i = 0; i < c->n_relay_ip; i++)
        want[n_want++] = (const struct sockaddr *)&c->relay_ip[i];
    uint8_t want16[CONF_MAX_LISTEN + CONF_MAX_RELAY_IPS][16];
    for (size_t k = 0; k < n_want; k++)
        offload_addr16(want16[k], want[k]);
    bool skipped_lo = false;
    unsigned other[MAX_IFS], n_other = 0; /* not Ethernet: said once each */
    for (struct ifaddrs *it = ifs; it; it = it->ifa_next) {
        const struct sockaddr *sa = it->ifa_addr;
        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        unsigned idx = if_nametoindex(it->ifa_name);
        if (o->n_addrs == MAX_ADDRS)
            break;
        offload_addr16(o->addrs[o->n_addrs].ip, sa);
        o->addrs[o->n_addrs++].ifindex = idx;
        if (c->n_offload_ifs || has_if(o, idx))
            continue;
        bool held = false;
        for (size_t k = 0; k < n_want && !held; k++)
            held = want[k]->sa_family == sa->sa_family &&
                   (net_addr_is_any(want[k]) ||
                    memcmp(o->addrs[o->n_addrs - 1].ip, want16[k], 16) == 0);
        if (!held)
            continue;
        if ((it->ifa_flags & IFF_LOOPBACK) && c->offload == CONF_OFFLOAD_AUTO) {
            skipped_lo = true;
            continue;
        }
        if (!is_ethernet(ifs, it->ifa_name)) {
            bool told = false;
            for (unsigned k = 0; k < n_other; k++)
                told |= other[k] == idx;
            if (!told && n_other < MAX_IFS) {
                other[n_other++] = idx;
                log_info("offload: %s is not an Ethernet interface: what arrives there stays in "
                         "user space", it->ifa_name);
            }
            continue;
        }
        if (o->n_ifs < MAX_IFS)
            o->ifindex[o->n_ifs++] = idx;
    }
    for (size_t i = 0; i < c->n_offload_ifs; i++) {
        unsigned idx = if_nametoindex(c->offload_ifs[i]);
        if (!idx || !is_ethernet(ifs, c->offload_ifs[i])) {
            snprintf(msg, cap, "offload: relay.offload_interfaces: %s \"%s\"",
                     idx ? "not an Ethernet interface:" : "no interface named", c->offload_ifs[i]);
            freeifaddrs(ifs);
            return -2;
        }
        o->ifindex[o->n_ifs++] = idx;
    }
    freeifaddrs(ifs);
    if (o->n_ifs == 0) {
        snprintf(msg, cap, "offload: off: %s", skipped_lo
                 ? "the listen and relay addresses are on loopback only (relay.offload = \"tc\" "
                   "relays there too)"
                 : "no interface holds a UDP listen or relay address");
        return c->offload == CONF_OFFLOAD_TC ? -1 : 1;
    }
    return 0;
}

/* A clsact filter's handle for this configuration (see the top). */
static uint32_t tc_handle_of(const struct conf *c)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < c->n_listen; i++) {
        if (c->listen[i].proto != CONF_UDP)
            continue;
        const uint8_t *p = (const uint8_t *)&c->listen[i].addr;
        for (size_t k = 0; k < sizeof c->listen[i].addr; k++)
            h = (h ^ p[k]) * 16777619u;
        break;
    }
    return 0x7e000000u | (h & 0xffffffu);
}

/* TERN_OFFLOAD_CLSACT=1 in the environment takes the clsact path where tcx
 * exists too: the older kernels' path, rehearsed by the tests. */
static int attach_one(struct offload *o, unsigned i, int prog_fd, bool *tcx)
{
    const char *force = getenv("TERN_OFFLOAD_CLSACT");
    o->link[i] = force && strcmp(force, "1") == 0
                     ? -EOPNOTSUPP
                     : bpf_link_create(prog_fd, (int)o->ifindex[i],
                                       (enum bpf_attach_type)TCX_INGRESS, NULL);
    if (o->link[i] >= 0) {
        *tcx = true;
        return 0;
    }
    o->link[i] = -1;
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)o->ifindex[i],
                        .attach_point = BPF_TC_INGRESS);
    int rc = bpf_tc_hook_create(&hook);
    if (rc < 0 && rc != -EEXIST)
        return rc;
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = o->tc_handle,
                        .priority = TC_PRIORITY, .flags = BPF_TC_F_REPLACE);
    return bpf_tc_attach(&hook, &opts);
}

/* Never the hook itself: destroying it would take every other owner's
 * filters on that interface with it. */
static void detach_one(struct offload *o, unsigned i)
{
    if (o->link[i] >= 0) {
        close(o->link[i]);
        return;
    }
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)o->ifindex[i],
                        .attach_point = BPF_TC_INGRESS);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = o->tc_handle, .priority = TC_PRIORITY);
    bpf_tc_detach(&hook, &opts);
}

static int load(struct offload *o, const void *obj, size_t obj_len, char *msg, size_t cap)
{
    libbpf_set_print(libbpf_log);
    o->obj = bpf_object__open_mem(obj, obj_len, NULL);
    int rc = o->obj ? 0 : -errno;
    if (rc == 0)
        rc = bpf_object__load(o->obj);
    if (rc < 0) {
        snprintf(msg, cap, "offload: cannot load the kernel program: %s", strerror(-rc));
        return rc;
    }
    o->chan_fd = bpf_object__find_map_fd_by_name(o->obj, "chan_map");
    o->peer_fd = bpf_object__find_map_fd_by_name(o->obj, "peer_map");
    o->reasons_fd = bpf_object__find_map_fd_by_name(o->obj, "reasons");
    int counts_fd = bpf_object__find_map_fd_by_name(o->obj, "counts");
    void *m = counts_fd < 0 ? MAP_FAILED
                            : mmap(NULL, OFFLOAD_SLOTS * sizeof(struct offload_count), PROT_READ,
                                   MAP_SHARED, counts_fd, 0);
    if (o->chan_fd < 0 || o->peer_fd < 0 || o->reasons_fd < 0 || m == MAP_FAILED) {
        snprintf(msg, cap, "offload: the kernel program's maps are not as expected");
        return -EINVAL;
    }
    o->counts = m;
    return 0;
}

int offload_start(const struct conf *c, int n_workers, const void *obj, size_t obj_len,
                  struct offload **out, char *msg, size_t cap)
{
    *out = NULL;
    if (c->offload == CONF_OFFLOAD_OFF) {
        snprintf(msg, cap, "offload: off (relay.offload = \"off\")");
        return 0;
    }
    struct offload *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(msg, cap, "offload: out of memory");
        return c->offload == CONF_OFFLOAD_TC ? -1 : 0;
    }
    o->n_workers = n_workers;
    o->tc_handle = tc_handle_of(c);
    int rc = choose_interfaces(o, c, msg, cap);
    if (rc == 0 && load(o, obj, obj_len, msg, cap) < 0)
        rc = -1;
    /* -2: a named interface does not exist, a mistake whatever the mode */
    if (rc != 0) {
        bool fatal = rc == -2 || (rc < 0 && c->offload == CONF_OFFLOAD_TC);
        if (rc < 0 && !fatal) {
            size_t len = strlen(msg);
            snprintf(msg + len, cap - len, "; relaying in user space");
        }
        o->n_ifs = 0;
        offload_stop(o);
        return fatal ? -1 : 0;
    }
    int prog_fd = bpf_program__fd(bpf_object__find_program_by_name(o->obj, OFFLOAD_PROG_NAME));
    bool tcx = false;
    size_t len = (size_t)snprintf(msg, cap, "offload: relaying channels in the kernel on");
    for (unsigned i = 0; i < o->n_ifs; i++) {
        char name[IF_NAMESIZE] = "?";
        if_indextoname(o->ifindex[i], name);
        if ((rc = attach_one(o, i, prog_fd, &tcx)) < 0) {
            snprintf(msg, cap, "offload: cannot attach to %s: %s%s", name, strerror(-rc),
                     c->offload == CONF_OFFLOAD_TC ? "" : "; relaying in user space");
            o->n_ifs = i;
            offload_stop(o);
            return c->offload == CONF_OFFLOAD_TC ? -1 : 0;
        }
        if (len < cap)
            len += (size_t)snprintf(msg + len, cap - len, "%s %s", i ? "," : "", name);
    }
    if (len < cap)
        snprintf(msg + len, cap - len, " (%s)", tcx ? "tcx" : "tc clsact");
    *out = o;
    return 0;
}

void offload_stop(struct offload *o)
{
    if (!o)
        return;
    for (unsigned i = 0; i < o->n_ifs; i++)
        detach_one(o, i);
    if (o->counts)
        munmap((void *)o->counts, OFFLOAD_SLOTS * sizeof(struct offload_count));
    bpf_object__close(o->obj);
    free(o);
}

int offload_put(struct offload *o, const struct offload_chan_key *ck, const struct offload_fwd *cv,
                const struct offload_peer_key *pk, const struct offload_fwd *pv)
{
    if (bpf_map_update_elem(o->chan_fd, ck, cv, BPF_ANY) < 0)
        return -errno;
    if (bpf_map_update_elem(o->peer_fd, pk, pv, BPF_ANY) < 0) {
        int rc = -errno;
        bpf_map_delete_elem(o->chan_fd, ck);
        return rc;
    }
    return 0;
}

void offload_del(struct offload *o, const struct offload_chan_key *ck,
                 const struct offload_peer_key *pk)
{
    bpf_map_delete_elem(o->chan_fd, ck);
    bpf_map_delete_elem(o->peer_fd, pk);
}

struct offload_count offload_read(const struct offload *o, uint32_t slot)
{
    const struct offload_count *c = &o->counts[slot];
    return (struct offload_count){ __atomic_load_n(&c->packets, __ATOMIC_RELAXED),
                                   __atomic_load_n(&c->bytes, __ATOMIC_RELAXED) };
}

void offload_slots_of(const struct offload *o, int w, uint32_t *first, uint32_t *n)
{
    uint32_t per = OFFLOAD_SLOTS / (uint32_t)o->n_workers & ~1u;
    *first = per * (uint32_t)w;
    *n = per;
}

uint64_t offload_reason_total(const struct offload *o, enum offload_reason r)
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0 || ncpu > 4096)
        return 0;
    uint64_t v[ncpu], sum = 0;
    uint32_t key = r;
    if (bpf_map_lookup_elem(o->reasons_fd, &key, v) < 0)
        return 0;
    for (int i = 0; i < ncpu; i++)
        sum += v[i];
    return sum;
}

unsigned offload_n_interfaces(const struct offload *o)
{
    return o ? o->n_ifs : 0;
}
