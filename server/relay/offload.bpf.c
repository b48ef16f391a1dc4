/*
 * offload.bpf.c - the tc ingress program that relays established TURN UDP
 * channels in the kernel (issue 14), so that ChannelData never reaches ternd.
 *
 * Attached (tcx link or tc filter, direct action) to the ingress of every
 * interface holding a listen or relay address. ternd writes two hash maps
 * (offload_maps.h is the ABI):
 *   chan_map: ChannelData from a client's 5-tuple with a bound channel ->
 *             strip the 4-byte header, send from the relay address to the peer;
 *   peer_map: a datagram from a peer to a relay address with a channel ->
 *             prepend the header, send from the listener to the client.
 * Both IPv4 and IPv6; an entry never translates between families.
 *
 * Everything not relayed returns TC_ACT_UNSPEC (== TCX_NEXT) untouched, so
 * ternd sees it exactly as without the program, and several ternds' programs
 * on one interface chain (TC_ACT_OK would end the chain for later programs).
 * All checks, the FIB lookup included, come before the first change to the
 * packet; a helper failing after that drops it (TC_ACT_SHOT, OFFLOAD_R_FAILED)
 * because a half-rewritten packet must not reach the stack.
 *
 * Build: clang -O2 -g -Wall -Werror -target bpf -c, uapi headers only (no
 * vmlinux.h: CI machines may lack /sys/kernel/btf). The kernel pitfalls are in
 * test/bench/offload/SPIKE.md ("Verifier and kernel limits met").
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "offload_maps.h"

/* Not in the uapi headers this file may use (linux/socket.h has no AF_*). */
#define AF_INET 2
#define AF_INET6 10

#define PASS TC_ACT_UNSPEC /* == TCX_NEXT: the next program, then the stack */
#define UDP_HLEN 8
#define CD_HLEN 4
#define IP4_HLEN 20
#define IP6_HLEN 40
#define IP_DF 0x4000
#define IP_MF_OFFSET 0x3fff
#define NEW_TTL 64 /* what the server's own sockets would use */
/* RFC 8656 12.4: channels 0x4000-0x4FFF; RFC 5766 clients (coturn's
 * uclient among them) use up to 0x7FFE, and ternd binds those too. */
#define CHAN_MASK 0xc0
#define CHAN_BITS 0x40
/* route(): the FIB helper would not answer, the kernel routes at redirect */
#define ROUTE_BY_KERNEL -1

/* The payload move (CHECKSUM_PARTIAL packets, see looks_partial) copies in
 * chunks through the stack: 12 x 128 bytes covers a 1500-byte MTU in both
 * families; bigger payloads of PARTIAL packets go to ternd. */
#define CHUNK 128
#define MAX_CHUNKS 12

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, OFFLOAD_MAX_CHANNELS);
    __type(key, struct offload_chan_key);
    __type(value, struct offload_fwd);
} chan_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, OFFLOAD_MAX_CHANNELS);
    __type(key, struct offload_peer_key);
    __type(value, struct offload_fwd);
} peer_map SEC(".maps");

/* Shared by all CPUs and read by ternd through mmap without a system call;
 * hence atomics rather than a per-CPU array. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, OFFLOAD_SLOTS);
    __type(key, __u32);
    __type(value, struct offload_count);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, OFFLOAD_R_MAX);
    __type(key, __u32);
    __type(value, __u64);
} reasons SEC(".maps");

/* The headers of one packet, copied to the stack: the copies stay valid
 * across helpers that move or reallocate the packet data. */
struct hdrs {
    union {
        struct iphdr v4;
        struct ipv6hdr v6;
    } ip;
    struct udphdr udp;
    __u8 cd[CD_HLEN]; /* the ChannelData header, or the payload's first bytes */
};

struct pkt {
    struct hdrs h;
    __u32 l4off;   /* Ethernet + fixed IP header */
    __u16 ulen;    /* UDP length, header included */
    __u8 v6;
    __u8 has_cd;   /* at least CD_HLEN bytes of payload */
    __u8 partial;  /* CHECKSUM_PARTIAL, probably: see looks_partial */
};

/* parse() verdict for a packet that is not UDP at all: not counted, so the
 * reasons add up to the UDP packets the program looked at. */
#define NOT_UDP (-1)
#define PARSED (-2)

static __always_inline int count(__u32 reason, int verdict)
{
    __u64 *c = bpf_map_lookup_elem(&reasons, &reason);

    if (c)
        (*c)++; /* per-CPU: no atomic needed */
    return verdict;
}

static __always_inline __u16 csum_fold(__u64 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)~s;
}

static __always_inline int is_v4mapped(const __u8 *a)
{
    return !(*(const __u32 *)a | *(const __u32 *)(a + 4)) &&
           *(const __u32 *)(a + 8) == bpf_htonl(0xffff);
}

static __always_inline void addr_v4mapped(__u8 *out, __be32 a)
{
    __builtin_memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    __builtin_memcpy(out + 12, &a, 4);
}

/*
 * CHECKSUM_PARTIAL (veth, lo or virtio from a local sender): the check field
 * holds only the folded pseudo-header sum and the payload is summed later from
 * skb->csum_start. bpf_skb_adjust_room moves the headers but not csum_start,
 * so the sum would start 4 bytes off (measured in the spike as UdpInCsumErrors
 * at the peer). __sk_buff does not expose ip_summed, so guess: a check field
 * equal to the pseudo-header sum is PARTIAL. A full checksum matches by chance
 * about once in 65536; such a packet merely takes the slower payload-move
 * path, which is correct for any packet.
 */
static __always_inline int looks_partial(const struct pkt *p)
{
    __s64 s;

    if (p->v6) {
        /* RFC 8200 8.1: src, dst, 32-bit length, 3 zero bytes, next header */
        __be32 tail[2] = { bpf_htonl(p->ulen), bpf_htonl(IPPROTO_UDP) };

        s = bpf_csum_diff(NULL, 0, (__be32 *)&p->h.ip.v6.saddr, 32, 0);
        s = bpf_csum_diff(NULL, 0, tail, sizeof(tail), s);
    } else {
        __be32 ph[3] = { p->h.ip.v4.saddr, p->h.ip.v4.daddr,
                         bpf_htonl(IPPROTO_UDP << 16 | p->ulen) };

        s = bpf_csum_diff(NULL, 0, ph, sizeof(ph), 0);
    }
    return p->h.udp.check == (__u16)~csum_fold(s);
}

/*
 * Only what a relay may rewrite with fixed offsets: no IPv4 options or IPv6
 * extension headers (adjust_room works at the fixed header's end), no
 * fragments, IP and UDP lengths that agree with the skb (a mismatch, e.g.
 * Ethernet padding of a tiny IPv4 frame, would carry trailing bytes along),
 * no GSO super-packets (one rewrite cannot fix every segment), no VLAN tag
 * still on the skb (the packet belongs to a VLAN device, not this one).
 */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
    __u32 l3len;

    __builtin_memset(p, 0, sizeof(*p));
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = &p->h.ip.v4;

        if (bpf_skb_load_bytes(skb, ETH_HLEN, ip, IP4_HLEN) < 0 || ip->version != 4 ||
            ip->protocol != IPPROTO_UDP)
            return NOT_UDP;
        if (ip->ihl != 5)
            return OFFLOAD_R_OTHER;
        if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
            return OFFLOAD_R_FRAG;
        l3len = bpf_ntohs(ip->tot_len);
        if (l3len != skb->len - ETH_HLEN || l3len < IP4_HLEN + UDP_HLEN)
            return OFFLOAD_R_LEN;
        p->l4off = ETH_HLEN + IP4_HLEN;
        p->ulen = l3len - IP4_HLEN;
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = &p->h.ip.v6;

        if (bpf_skb_load_bytes(skb, ETH_HLEN, ip6, IP6_HLEN) < 0 || ip6->version != 6)
            return NOT_UDP;
        switch (ip6->nexthdr) {
        case IPPROTO_UDP:
            break;
        case IPPROTO_FRAGMENT:
            return OFFLOAD_R_FRAG;
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS: {
            /* Not walked. Peek one level so that MLD (ICMPv6 behind a
             * hop-by-hop header) is not counted as a UDP packet refused. */
            __u8 next;

            if (bpf_skb_load_bytes(skb, ETH_HLEN + IP6_HLEN, &next, 1) < 0 ||
                next == IPPROTO_ICMPV6)
                return NOT_UDP;
            return OFFLOAD_R_OTHER;
        }
        default:
            return NOT_UDP;
        }
        l3len = bpf_ntohs(ip6->payload_len);
        if (l3len != skb->len - ETH_HLEN - IP6_HLEN || l3len < UDP_HLEN)
            return OFFLOAD_R_LEN;
        p->l4off = ETH_HLEN + IP6_HLEN;
        p->ulen = l3len;
        p->v6 = 1;
    } else {
        return NOT_UDP;
    }
    if (skb->vlan_present)
        return OFFLOAD_R_OTHER;
    if (skb->gso_size)
        return OFFLOAD_R_LEN;

    p->has_cd = p->ulen >= UDP_HLEN + CD_HLEN;
    if (bpf_skb_load_bytes(skb, p->l4off, &p->h.udp, p->has_cd ? UDP_HLEN + CD_HLEN : UDP_HLEN) < 0)
        return OFFLOAD_R_LEN;
    if (bpf_ntohs(p->h.udp.len) != p->ulen)
        return OFFLOAD_R_LEN;
    /* RFC 8200 8.1: zero is no checksum, invalid in IPv6; the stack decides. */
    if (p->v6 && !p->h.udp.check)
        return OFFLOAD_R_OTHER;
    p->partial = p->h.udp.check && looks_partial(p);
    return PARSED;
}

/* [from, from+len) moves by shift (+-CD_HLEN) bytes; front to back when moving
 * down, back to front when moving up, so no byte is overwritten before read. */
static __always_inline int move_payload(struct __sk_buff *skb, __u64 from, __u64 len, int shift)
{
    __u8 buf[CHUNK];

    for (int i = 0; i < MAX_CHUNKS; i++) {
        __u64 done = (__u64)i * CHUNK;

        if (done >= len)
            break;
        __u64 n = len - done;
        if (n > CHUNK)
            n = CHUNK;
        /* clang 14 bounds-checked a zero-extended copy of a 32-bit n and gave
         * the helper the register without the extension ("R4 min value is
         * negative"): 64-bit variables, n hidden from the optimiser and
         * bounded again on the very register the helpers get. */
        asm volatile("" : "+r"(n));
        if (n == 0 || n > CHUNK)
            break;
        __u64 off = shift < 0 ? done : len - done - n;
        if (bpf_skb_load_bytes(skb, from + off, buf, n) < 0 ||
            bpf_skb_store_bytes(skb, from + off + shift, buf, n, 0) < 0)
            return -1;
    }
    return 0;
}

/*
 * Route the rewritten packet as if the server had sent it. OUTPUT lookup: the
 * ifindex is the output interface (flowi oif) and constrains the route, so it
 * must be the one holding the new source address (v->oif), not the ingress
 * one. tot_len is the new packet's length, so FRAG_NEEDED says the relayed
 * packet would not fit the egress MTU. The helper answers FWD_DISABLED when
 * forwarding is off on that interface, OUTPUT or not, and a server that is
 * not a router has it off: then the device MTU is checked here and
 * bpf_redirect_neigh routes the packet the way the server's own sockets'
 * packets are routed, which asks nothing about forwarding (ROUTE_BY_KERNEL).
 */
static __always_inline int route(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
                                 const struct pkt *p, const struct hdrs *n, __u32 oif,
                                 __u16 tot_len)
{
    __builtin_memset(fib, 0, sizeof(*fib));
    fib->l4_protocol = IPPROTO_UDP;
    fib->sport = n->udp.source; /* multipath hashing */
    fib->dport = n->udp.dest;
    fib->tot_len = tot_len;
    fib->ifindex = oif;
    if (p->v6) {
        fib->family = AF_INET6;
        /* the traffic class for policy routing; the flow label is zeroed */
        fib->flowinfo = *(const __be32 *)&n->ip.v6 & bpf_htonl(0x0ff00000);
        __builtin_memcpy(fib->ipv6_src, &n->ip.v6.saddr, 16);
        __builtin_memcpy(fib->ipv6_dst, &n->ip.v6.daddr, 16);
    } else {
        fib->family = AF_INET;
        fib->tos = n->ip.v4.tos;
        fib->ipv4_src = n->ip.v4.saddr;
        fib->ipv4_dst = n->ip.v4.daddr;
    }
    return bpf_fib_lookup(skb, fib, sizeof(*fib), BPF_FIB_LOOKUP_OUTPUT);
}

/*
 * The UDP checksum, incrementally, before the length changes (the check field
 * is still at l4off + 6). Two parts, because a CHECKSUM_PARTIAL packet's check
 * field holds only the pseudo-header sum: BPF_F_PSEUDO_HDR applies the
 * pseudo-header change (addresses, length) in both cases; the rest (ports,
 * length field, the ChannelData word) only for full checksums, the payload of
 * a PARTIAL one being summed later from its real bytes. The ChannelData word
 * is 16-bit aligned and the payload keeps its alignment when it moves by 4,
 * so adding or removing that word is the whole payload change.
 * BPF_F_MARK_MANGLED_0 keeps an IPv4 "no checksum" 0 as it is and writes a
 * computed 0 as 0xffff (a 0 would mean "none", invalid in IPv6).
 */
static __always_inline int udp_csum(struct __sk_buff *skb, const struct pkt *p,
                                    const struct hdrs *n, int to_peer)
{
    __be32 olen = bpf_htonl(p->ulen), nlen = bpf_htonl(bpf_ntohs(n->udp.len));
    __u64 F = BPF_F_MARK_MANGLED_0, off = p->l4off + offsetof(struct udphdr, check);
    __s64 ph, rest;

    if (p->v6)
        ph = bpf_csum_diff((__be32 *)&p->h.ip.v6.saddr, 32, (__be32 *)&n->ip.v6.saddr, 32, 0);
    else
        ph = bpf_csum_diff((__be32 *)&p->h.ip.v4.saddr, 8, (__be32 *)&n->ip.v4.saddr, 8, 0);
    /* The IPv4 pseudo-header has a 16-bit length, IPv6 a 32-bit one: same sum. */
    ph = bpf_csum_diff(&olen, 4, &nlen, 4, ph);

    rest = bpf_csum_diff((__be32 *)&p->h.udp.source, 4, (__be32 *)&n->udp.source, 4, 0);
    rest = bpf_csum_diff(&olen, 4, &nlen, 4, rest);
    if (to_peer)
        rest = bpf_csum_diff((__be32 *)p->h.cd, 4, NULL, 0, rest);
    else
        rest = bpf_csum_diff(NULL, 0, (__be32 *)n->cd, 4, rest);

    if (bpf_l4_csum_replace(skb, off, 0, ph, F | BPF_F_PSEUDO_HDR) < 0 ||
        bpf_l4_csum_replace(skb, off, 0, rest, F) < 0)
        return -1;
    return 0;
}

static __always_inline int set_macs(struct __sk_buff *skb, const struct bpf_fib_lookup *fib)
{
    __u8 macs[2 * ETH_ALEN];

    __builtin_memcpy(macs, fib->dmac, ETH_ALEN);
    __builtin_memcpy(macs + ETH_ALEN, fib->smac, ETH_ALEN);
    return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/*
 * Out of the interface the FIB chose. NO_NEIGH (e.g. the first packet to a
 * peer) hands the packet to the kernel's neighbour code with the FIB's nexthop:
 * the lookup left the gateway (or the destination itself) in ipv4_dst/ipv6_dst
 * and may have switched family for an IPv4 route via an IPv6 gateway.
 */
static __always_inline int xmit(struct bpf_fib_lookup *fib, int rc, __u32 oif)
{
    if (rc == BPF_FIB_LKUP_RET_SUCCESS)
        return bpf_redirect(fib->ifindex, 0);
    if (rc == ROUTE_BY_KERNEL)
        return bpf_redirect_neigh(oif, NULL, 0, 0);
    struct bpf_redir_neigh nh = { .nh_family = fib->family };

    if (fib->family == AF_INET6)
        __builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, 16);
    else
        nh.ipv4_nh = fib->ipv4_dst;
    return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
}

/* The entry matched: check it, build the new headers, route, rewrite, send. */
static __always_inline int relay(struct __sk_buff *skb, const struct pkt *p,
                                 const struct offload_fwd *v, int to_peer)
{
    struct bpf_fib_lookup fib;
    struct hdrs n = p->h;
    __u32 nulen, dlen;

    /* Never translate between families: a 16-byte key whose family differs
     * from the packet's cannot match, but a value could be written wrong. */
    if (is_v4mapped(v->src) != !p->v6 || is_v4mapped(v->dst) != !p->v6)
        return count(OFFLOAD_R_OTHER, PASS);
    if (to_peer) {
        dlen = (__u32)p->h.cd[2] << 8 | p->h.cd[3];
        /* Padded ChannelData (RFC 8656 12.5, optional over UDP) or a truncated
         * one: ternd handles it. */
        if (dlen + CD_HLEN + UDP_HLEN != p->ulen)
            return count(OFFLOAD_R_LEN, PASS);
        nulen = p->ulen - CD_HLEN;
    } else {
        dlen = p->ulen - UDP_HLEN;
        nulen = p->ulen + CD_HLEN;
    }
    if (bpf_ktime_get_ns() >= v->expires_ns)
        return count(OFFLOAD_R_EXPIRED, PASS);
    /* The IP length fields are 16 bits (IPv4 includes its header). */
    if (nulen + (p->v6 ? 0 : IP4_HLEN) > 0xffff)
        return count(OFFLOAD_R_LEN, PASS);
    if (p->partial && dlen > MAX_CHUNKS * CHUNK)
        return count(OFFLOAD_R_LEN, PASS);

    n.udp.source = v->src_port;
    n.udp.dest = v->dst_port;
    n.udp.len = bpf_htons(nulen);
    if (!to_peer) {
        n.cd[0] = v->chan >> 8;
        n.cd[1] = v->chan & 0xff;
        n.cd[2] = dlen >> 8;
        n.cd[3] = dlen & 0xff;
    }
    if (p->v6) {
        __builtin_memcpy(&n.ip.v6.saddr, v->src, 16);
        __builtin_memcpy(&n.ip.v6.daddr, v->dst, 16);
        n.ip.v6.payload_len = bpf_htons(nulen);
        n.ip.v6.hop_limit = NEW_TTL;
        /* The flow label named the sender's flow; the relayed packet is the
         * server's. The traffic class (like the IPv4 TOS) is kept. */
        n.ip.v6.flow_lbl[0] &= 0xf0;
        n.ip.v6.flow_lbl[1] = n.ip.v6.flow_lbl[2] = 0;
    } else {
        __builtin_memcpy(&n.ip.v4.saddr, v->src + 12, 4);
        __builtin_memcpy(&n.ip.v4.daddr, v->dst + 12, 4);
        n.ip.v4.tot_len = bpf_htons(nulen + IP4_HLEN);
        n.ip.v4.ttl = NEW_TTL;
        /* ternd decides DF (RFC 8656 DONT-FRAGMENT), not the sender. */
        n.ip.v4.frag_off = (v->flags & OFFLOAD_F_DF) ? bpf_htons(IP_DF) : 0;
        n.ip.v4.check = 0;
        n.ip.v4.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&n.ip.v4, IP4_HLEN, 0));
    }

    int rc = route(skb, &fib, p, &n, v->oif, nulen + (p->v6 ? IP6_HLEN : IP4_HLEN));
    if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED) {
        __u32 mtu_len = 0;

        if (bpf_check_mtu(skb, v->oif, &mtu_len, (__s32)nulen - (__s32)p->ulen, 0) !=
            BPF_MTU_CHK_RET_SUCCESS)
            return count(OFFLOAD_R_MTU, PASS);
        rc = ROUTE_BY_KERNEL;
    }
    if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
        return count(OFFLOAD_R_MTU, PASS);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
        rc != ROUTE_BY_KERNEL)
        return count(OFFLOAD_R_FIB, PASS);

    /* From here on the packet changes: a failure drops it. */
    if (udp_csum(skb, p, &n, to_peer) < 0 ||
        bpf_skb_load_bytes(skb, p->l4off + offsetof(struct udphdr, check), &n.udp.check, 2) < 0)
        return count(OFFLOAD_R_FAILED, TC_ACT_SHOT);

    int err;
    if (p->partial) {
        /* Keep the UDP header where csum_start points; move the payload
         * and change the tail instead. */
        if (to_peer)
            err = move_payload(skb, p->l4off + UDP_HLEN + CD_HLEN, dlen, -CD_HLEN) ||
                  bpf_skb_change_tail(skb, skb->len - CD_HLEN, 0);
        else
            err = bpf_skb_change_tail(skb, skb->len + CD_HLEN, 0) ||
                  move_payload(skb, p->l4off + UDP_HLEN, dlen, CD_HLEN);
    } else {
        /* Removes or inserts at the fixed IP header's end, i.e. before the
         * UDP header; the new UDP header is written over what is there. */
        err = bpf_skb_adjust_room(skb, to_peer ? -CD_HLEN : CD_HLEN, BPF_ADJ_ROOM_NET, 0);
    }
    if (err || bpf_skb_store_bytes(skb, p->l4off, &n.udp, to_peer ? UDP_HLEN : UDP_HLEN + CD_HLEN,
                                   0) < 0 ||
        bpf_skb_store_bytes(skb, ETH_HLEN, &n.ip, p->v6 ? IP6_HLEN : IP4_HLEN, 0) < 0 ||
        (rc == BPF_FIB_LKUP_RET_SUCCESS && set_macs(skb, &fib) < 0))
        return count(OFFLOAD_R_FAILED, TC_ACT_SHOT);

    __u32 slot = v->slot;
    if (slot < OFFLOAD_SLOTS) {
        struct offload_count *c = bpf_map_lookup_elem(&counts, &slot);

        if (c) {
            __sync_fetch_and_add(&c->packets, 1);
            __sync_fetch_and_add(&c->bytes, dlen);
        }
    }
    count(to_peer ? OFFLOAD_R_TO_PEER : OFFLOAD_R_TO_CLIENT, 0);
    return xmit(&fib, rc, v->oif);
}

SEC("tc")
int tern_relay(struct __sk_buff *skb)
{
    struct pkt p;
    int r = parse(skb, &p);

    if (r == NOT_UDP)
        return PASS;
    if (r != PARSED)
        return count(r, PASS);

    /* Both keys start alike: (our address, theirs, our port, their port),
     * so the peer key is the channel key's prefix. */
    struct offload_chan_key k;

    __builtin_memset(&k, 0, sizeof(k));
    if (p.v6) {
        __builtin_memcpy(k.local, &p.h.ip.v6.daddr, 16);
        __builtin_memcpy(k.client, &p.h.ip.v6.saddr, 16);
    } else {
        addr_v4mapped(k.local, p.h.ip.v4.daddr);
        addr_v4mapped(k.client, p.h.ip.v4.saddr);
    }
    k.local_port = p.h.udp.dest;
    k.client_port = p.h.udp.source;

    /* Client -> peer: ChannelData on a bound channel of this client. A miss
     * falls through: a peer's datagram may start with 0x4X as well. */
    if (p.has_cd && (p.h.cd[0] & CHAN_MASK) == CHAN_BITS) {
        k.chan = (__u16)p.h.cd[0] << 8 | p.h.cd[1];
        struct offload_fwd *v = bpf_map_lookup_elem(&chan_map, &k);
        if (v)
            return relay(skb, &p, v, 1);
    }

    /* Peer -> client: anything from a peer that has a channel on this relay
     * address; a peer without one takes ternd's Data indication path. */
    struct offload_peer_key pk;

    __builtin_memcpy(&pk, &k, sizeof(pk));
    struct offload_fwd *v = bpf_map_lookup_elem(&peer_map, &pk);
    if (!v)
        return count(OFFLOAD_R_MISS, PASS);
    return relay(skb, &p, v, 0);
}

char LICENSE[] SEC("license") = "GPL";
