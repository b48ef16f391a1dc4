/*
 * offload_maps.h - the ABI between ternd (offload.c writes the maps, reads
 * the counters) and the tc program (offload.bpf.c reads the maps, adds to
 * the counters) that relays established UDP channels in the kernel.
 *
 * Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d, so one map serves both
 * families; ports are in network order, channel numbers in host order.
 * Entries are written only by ternd. The program checks expires_ns on every
 * packet, so an entry ternd has not yet deleted relays nothing once its
 * permission or channel has run out. Counters are not in the entries (a
 * refresh rewrites the entry while the program counts): each entry names a
 * slot of the counts array, which ternd reads through mmap.
 */
#ifndef TERN_SERVER_RELAY_OFFLOAD_MAPS_H
#define TERN_SERVER_RELAY_OFFLOAD_MAPS_H

#include <linux/types.h>

#define OFFLOAD_MAX_CHANNELS 16384               /* entries per direction, whole process */
#define OFFLOAD_SLOTS (2 * OFFLOAD_MAX_CHANNELS) /* one counter slot per entry */
#define OFFLOAD_PROG_NAME "tern_relay"

/* Client -> peer: a ChannelData from a client's 5-tuple. */
struct offload_chan_key {
    __u8 local[16];  /* the server address the client sends to */
    __u8 client[16];
    __be16 local_port, client_port;
    __u16 chan;
    __u16 pad; /* zero */
};

/* Peer -> client: any datagram from a peer that has a channel, to its relay address. */
struct offload_peer_key {
    __u8 relay[16];
    __u8 peer[16];
    __be16 relay_port, peer_port;
};

/* The program makes the peer key from the channel key's first bytes. */
_Static_assert(__builtin_offsetof(struct offload_chan_key, local_port) ==
                   __builtin_offsetof(struct offload_peer_key, relay_port) &&
               __builtin_offsetof(struct offload_chan_key, client_port) ==
                   __builtin_offsetof(struct offload_peer_key, peer_port) &&
               sizeof(struct offload_peer_key) <= sizeof(struct offload_chan_key),
               "the peer key is a prefix of the channel key");

#define OFFLOAD_F_DF 1 /* IPv4: set Don't Fragment on the relayed packet */

/* What the relayed packet becomes. */
struct offload_fwd {
    __u8 src[16], dst[16];
    __be16 src_port, dst_port;
    __u16 chan;  /* peer -> client: the number to prepend; 0 for client -> peer */
    __u8 flags;  /* OFFLOAD_F_* */
    __u8 pad;
    __u32 oif;   /* the interface holding src: the FIB output lookup's interface */
    __u32 slot;  /* its counters: counts[slot] */
    __u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns): min(permission, channel) */
};

/* Relayed by the program; bytes are application data (no ChannelData header). */
struct offload_count {
    __u64 packets, bytes;
};

/* Why a packet was not relayed in the kernel (and went up to ternd), or
 * that it was: the index of the per-CPU reasons array. */
enum offload_reason {
    OFFLOAD_R_OTHER,   /* not IPv4/IPv6 UDP without options or extension headers */
    OFFLOAD_R_MISS,    /* no entry: not an offloaded channel */
    OFFLOAD_R_EXPIRED, /* entry past expires_ns */
    OFFLOAD_R_FRAG,    /* a fragment */
    OFFLOAD_R_LEN,     /* lengths inconsistent, padded ChannelData, GSO, too big to move */
    OFFLOAD_R_FIB,     /* no route or neighbour failure */
    OFFLOAD_R_MTU,     /* would exceed the egress MTU */
    OFFLOAD_R_FAILED,  /* a helper failed after the packet was changed: dropped */
    OFFLOAD_R_TO_PEER, /* relayed client -> peer */
    OFFLOAD_R_TO_CLIENT, /* relayed peer -> client */
    OFFLOAD_R_MAX
};

#endif
