/*
 * alloc.h - TURN allocations (RFC 8656): relay sockets, permissions, channels,
 * lifetimes, and the two data paths (client -> peer, peer -> client).
 *
 * An allocation is owned by the worker whose thread received its Allocate;
 * its relay sockets are registered on that worker's event base and nothing
 * about it is touched from another thread. Lifetimes run on a per-worker
 * timer wheel of one-second slots (one O(1) relink per refresh, one tick
 * per second however many allocations exist); permissions and channel
 * bindings are timestamps checked when used.
 */
#ifndef TERN_SERVER_ALLOC_H
#define TERN_SERVER_ALLOC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "auth/auth.h"

struct worker;
struct event;

#define ALLOC_MAX_PERMS 64
#define ALLOC_MAX_CHANNELS 64
#define ALLOC_PERM_LIFETIME 300    /* RFC 8656 section 9 */
#define ALLOC_CHANNEL_LIFETIME 600 /* RFC 8656 section 12 */
#define ALLOC_CHANNEL_QUARANTINE 300
#define ALLOC_DEFAULT_LIFETIME 600
#define ALLOC_WHEEL_SLOTS 1024

/*
 * How an allocation talks back to its client. conn is the transport's own
 * object (a UDP listening socket, a TCP/TLS connection, a DTLS session),
 * borrowed: the transport deletes the allocation before freeing conn.
 * send() writes one message (the iovecs back to back) to the client and
 * returns 0 or -1; ChannelData padding for streams is the transport's job.
 */
struct client_ops {
    int (*send)(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                const struct iovec *iov, int n_iov, bool channel);
    /* The allocation is gone (expired, deleted): forget it. NULL for UDP. */
    void (*gone)(void *conn);
    /* Optional: send msgs[0..n) (iovecs filled; the callee sets address
     * and control) in one system call; returns how many went out. */
    int (*send_many)(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                     struct mmsghdr *msgs, unsigned n);
};

struct perm {
    struct in6_addr ip; /* IPv4 as ::ffff:a.b.c.d */
    uint32_t expires;
};

struct chan {
    uint16_t number;
    uint32_t expires; /* bound until; then quarantined until + 300 s */
    struct sockaddr_in6 peer; /* IPv4 stored as sockaddr_in inside */
};

struct relay {
    int fd;
    struct event *ev;
    /* sockaddr_in6-sized, holding a sockaddr_in for IPv4: a sockaddr_storage
     * is 128 bytes, and an allocation keeps six addresses. */
    struct sockaddr_in6 addr;     /* bound address */
    struct sockaddr_in6 reported; /* external_ip when configured */
};

/*
 * One allocation. Owned by its worker (listed in its hash table and timer
 * wheel), freed by alloc_destroy. ops/conn: see struct client_ops.
 */
struct alloc {
    struct alloc *hnext;          /* worker's 5-tuple hash chain (UDP clients) */
    struct alloc *wnext, *wprev;  /* timer wheel slot */
    struct worker *w;
    const struct client_ops *ops;
    void *conn;
    struct sockaddr_in6 client;   /* or sockaddr_in, as in struct relay */
    struct sockaddr_in6 local;    /* server address the client talks to */
    struct relay relay[2];
    unsigned n_relay;
    uint32_t expires; /* worker clock seconds */
    uint32_t id;
    uint64_t sid;      /* node-unique id in published statistics */
    bool quota_shared; /* counted in the Redis user quota set */
    uint8_t alg;      /* enum auth_alg of the key */
    uint8_t key[32];  /* long-term key, to sign answers */
    /* Permissions and channels grow in small steps up to their maxima: a
     * typical WebRTC allocation has one or two of each, so an idle
     * allocation stays small (owned; freed with the allocation). */
    uint16_t n_perms, cap_perms, n_chans, cap_chans;
    struct perm *perms;
    struct chan *chans;
    /* bandwidth token bucket (bytes), limits.max_bps */
    uint64_t tokens;
    uint64_t bucket_ms;
    uint64_t bytes_in, bytes_out, pkts_in, pkts_out;
    uint64_t rep_bytes_in, rep_bytes_out, rep_pkts_in, rep_pkts_out; /* last published */
    uint16_t user_len;
    char user[]; /* user_len bytes, allocated with the struct */
};

/* Per-worker allocation state. Owned by the worker. */
struct alloc_table {
    struct alloc **buckets;
    size_t n_buckets;
    size_t count;
    struct alloc *wheel[ALLOC_WHEEL_SLOTS];
    uint32_t wheel_pos; /* last second processed */
    struct event *tick;
    uint32_t next_id;
    uint32_t next_sid;
    uint64_t rng;          /* xorshift state: relay ports, Data indication ids */
    struct alloc_rx *rx;   /* relay receive scratch, owned */
};

int alloc_table_init(struct worker *w);
void alloc_table_free(struct worker *w);

/* UDP clients: the allocation of (listening socket, client address). */
struct alloc *alloc_table_find(struct worker *w, const void *conn, const struct sockaddr *client);

/* Create with relay sockets already opened by the caller (relay[] filled).
 * Returns NULL on out-of-memory (the caller closes its sockets). */
struct alloc *alloc_create(struct worker *w, const struct client_ops *ops, void *conn,
                           const struct sockaddr *client, const struct sockaddr *local,
                           const struct relay *relays, unsigned n_relay, uint32_t lifetime,
                           const char *user, size_t user_len);
void alloc_destroy(struct alloc *a, const char *why);
void alloc_set_lifetime(struct alloc *a, uint32_t lifetime);

/* Permissions and channels; 0 or a STUN error code (400, 403 is the caller's, 508). */
int alloc_perm_add(struct alloc *a, const struct sockaddr *peer);
bool alloc_perm_ok(const struct alloc *a, const struct sockaddr *peer);
int alloc_chan_bind(struct alloc *a, uint16_t number, const struct sockaddr *peer);

/* Client -> peer. ChannelData (whole frame as received) and Send indication. */
void alloc_relay_channel(struct alloc *a, const uint8_t *frame, size_t len);
void alloc_relay_send(struct alloc *a, const struct sockaddr *peer, const uint8_t *data,
                      size_t len);

/* Open a relay socket on ip (port chosen in [min,max], even if asked);
 * reserve_next also binds port+1 and returns it in *next_fd. 0 or -errno. */
int alloc_relay_open(struct worker *w, const struct sockaddr *ip, bool even, bool reserve_next,
                     struct relay *out, int *next_fd);
void alloc_relay_close(struct relay *r);
/* Register a relay socket's read event (after alloc_create). */
int alloc_relay_start(struct alloc *a);

/* A fresh node-unique allocation id for published statistics. */
uint64_t alloc_next_sid(struct worker *w);

/* The worker clock, in (scaled) seconds; never 0. */
uint32_t alloc_now(const struct worker *w);
/* Read the clock once for a batch of packets: until alloc_clock_release,
 * alloc_now returns that reading (expiries have one-second resolution, so a
 * batch needs no fresher one). */
void alloc_clock_hold(struct worker *w);
void alloc_clock_release(struct worker *w);

#endif
