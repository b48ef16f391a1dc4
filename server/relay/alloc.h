/*
 * alloc.h - TURN allocations (RFC 8656): relay sockets, permissions, channels,
 * lifetimes, and the two data paths (client -> peer, peer -> client).
 *
 * An allocation belongs to the relay table of the worker whose thread
 * received its Allocate; its relay sockets are registered on that worker's
 * event base and nothing about it is touched from another thread. Lifetimes
 * run on a per-table timer wheel of one-second slots (one O(1) relink per
 * refresh, one tick per second however many allocations exist); permissions
 * and channel bindings are timestamps checked when used. Errors: relay.h.
 */
#ifndef TERN_SERVER_RELAY_ALLOC_H
#define TERN_SERVER_RELAY_ALLOC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "server/core/realm.h"
#include "server/relay/relay.h"

struct event;
struct relay_table;
struct tcp_conn;
struct bufferevent_rate_limit_group;

#define ALLOC_MAX_PERMS 64
#define ALLOC_MAX_CHANNELS 64
#define ALLOC_PERM_LIFETIME 300    /* RFC 8656 section 9 */
#define ALLOC_CHANNEL_LIFETIME 600 /* RFC 8656 section 12 */
#define ALLOC_CHANNEL_QUARANTINE 300
#define ALLOC_DEFAULT_LIFETIME 600
#define ALLOC_WHEEL_SLOTS 1024

/*
 * How an allocation talks back to its client: a vtable of the transport
 * (transport/), handed down so that relay/ never includes it. conn is the
 * transport's object (a UDP listening socket, a TCP/TLS connection, a DTLS
 * session), borrowed: its session deletes the allocation before freeing it.
 * send() writes one message (the iovecs back to back) to the client and
 * returns 0 or -1; ChannelData padding for streams is the transport's job.
 */
struct client_ops {
    int (*send)(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                const struct iovec *iov, int n_iov, bool channel);
    /* Optional: send msgs[0..n) (iovecs filled; the callee sets address
     * and control) in one system call; returns how many went out. */
    int (*send_many)(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                     struct mmsghdr *msgs, unsigned n);
    /* Optional: end the client's connection or session now, with why in
     * the log (its allocation ends with it); NULL for UDP. */
    void (*close)(void *conn, const char *why);
    /* Optional (TCP/TLS): the session answered a ConnectionBind (RFC 6062
     * section 5.4) and carries raw bytes from now on; called once the
     * answer is written, and conn is gone when it returns. */
    void (*bound)(void *conn);
    /* A plain UDP client (no TLS, no framing): its channels may be relayed
     * by the kernel (offload.h). */
    bool kernel_relay;
};

struct perm {
    struct in6_addr ip; /* IPv4 as ::ffff:a.b.c.d */
    uint32_t expires;
};

struct chan {
    uint16_t number;
    uint32_t expires; /* bound until; then quarantined until + 300 s */
    struct sockaddr_in6 peer; /* IPv4 stored as sockaddr_in inside */
    /* Relayed in the kernel (relay_offload.c): counter slots off_slot - 1
     * (to the peer) and off_slot (to the client); 0 when not. off_seen: the
     * counters as last read (packets, bytes; to peer, then to client). */
    uint32_t off_slot;
    uint64_t off_seen[4];
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
 * One allocation. Owned by its relay table (listed in its hash table and
 * timer wheel), freed by alloc_destroy. ops/conn: see struct client_ops.
 * owner is the TURN session that made it, opaque here (env.on_death).
 */
struct alloc {
    struct alloc *hnext;          /* table's 5-tuple hash chain */
    struct alloc *wnext, *wprev;  /* timer wheel slot */
    struct relay_table *t;
    const struct client_ops *ops;
    void *conn;
    void *owner;
    struct sockaddr_in6 client;   /* or sockaddr_in, as in struct relay */
    struct sockaddr_in6 local;    /* server address the client talks to */
    struct relay relay[2];
    unsigned n_relay;
    uint32_t expires; /* table clock seconds */
    uint64_t created_ms; /* clock_mono_ms at creation */
    uint32_t id;
    uint64_t sid;      /* node-unique id in published statistics (turn/) */
    bool quota_shared; /* counted in the Redis user quota set (turn/) */
    uint8_t alg;      /* enum auth_alg of the key */
    uint8_t key_len;  /* of key */
    bool oauth;       /* made with an RFC 7635 token: key is the token's MAC key */
    bool tcp;         /* RFC 6062: its relay socket listens for TCP peers */
    uint16_t n_tcp;   /* its peer data connections (tcp_relay.h), at most TCP_RELAY_MAX_CONNS */
    struct tcp_conn *tcp_conns;               /* owned; ended with the allocation */
    struct bufferevent_rate_limit_group *tcp_rl; /* limits.max_bps over them; owned */
    bool dont_fragment; /* the Allocate carried DONT-FRAGMENT: the relay sockets' DF */
    bool mobile;        /* RFC 8016: it was given a MOBILITY-TICKET (turn/) */
    uint32_t mob_gen;   /* the generation of its latest ticket: older ones are spent */
    uint64_t token_end; /* oauth: unix time its latest token ends */
    uint8_t realm;       /* index in env.realms (found again by name after a reload) */
    uint8_t stats_realm; /* its metrics series (stats.h) */
    uint8_t realm_len;
    char realm_name[REALM_NAME_MAX + 1];
    uint8_t key[32];  /* the key its requests are signed with (turn/) */
    /* Permissions and channels grow in small steps up to their maxima: a
     * typical WebRTC allocation has one or two of each, so an idle
     * allocation stays small (owned; freed with the allocation). */
    uint16_t n_perms, cap_perms, n_chans, cap_chans;
    uint16_t n_off; /* channels relayed in the kernel */
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

/* A worker's table; NULL on out-of-memory. env is copied. Free destroys
 * every allocation left (their owners hear of it through on_death). */
struct relay_table *relay_table_new(const struct relay_env *env);
void relay_table_free(struct relay_table *t);
/* A new configuration (reload): relay ports and the like for new
 * allocations; the clock's scale is not changed live. */
void relay_table_set_conf(struct relay_table *t, const struct conf *c);
/* End every allocation whose client talks through conn (a UDP listening
 * socket that is closing). */
void relay_table_drop_conn(struct relay_table *t, const void *conn, const char *why);
/* Call fn for every allocation of the table; fn must not create or
 * destroy any (collect, then act). */
void relay_table_foreach(struct relay_table *t, void (*fn)(struct alloc *a, void *arg), void *arg);
/* Live permissions and channels of an allocation now. */
unsigned alloc_count_perms(const struct alloc *a);
unsigned alloc_count_chans(const struct alloc *a);
/* Live allocations in this table. */
size_t relay_table_count(const struct relay_table *t);

/* The allocation of (conn, client), or NULL. */
struct alloc *alloc_table_find(struct relay_table *t, const void *conn,
                               const struct sockaddr *client);

/*
 * RFC 8016 mobility: an allocation changes its client 5-tuple.
 * find_id walks the table (rare: only for a ticket that opened). rekey
 * moves it within its table. Between workers, detach takes it out of its
 * table on the old worker's thread (unlisted, relay events freed, gauges
 * given back; *clock_at is that table's clock then) and the caller owns it
 * until adopt lists it in another table on that table's thread (its times
 * carried over from clock_at, its realm found again by name, a new id) or
 * alloc_detached_free ends it (relay sockets closed, quota given back,
 * owner not told: it has none then). adopt returns 0, or -1 when its relay
 * events cannot be registered (then it is destroyed).
 */
struct alloc *alloc_table_find_id(struct relay_table *t, uint32_t id);
void alloc_table_rekey(struct alloc *a, const struct client_ops *ops, void *conn, void *owner,
                       const struct sockaddr *client, const struct sockaddr *local);
void alloc_table_detach(struct alloc *a, uint32_t *clock_at);
int alloc_table_adopt(struct relay_table *t, struct alloc *a, uint32_t clock_at,
                      const struct client_ops *ops, void *conn, void *owner,
                      const struct sockaddr *client, const struct sockaddr *local);
void alloc_detached_free(struct alloc *a, struct quota *q);

/* Create with relay sockets already opened by the caller (relay[] filled),
 * in realm (an index of env.realms, holding its quota already).
 * Returns NULL on out-of-memory (the caller closes its sockets). */
struct alloc *alloc_create(struct relay_table *t, const struct client_ops *ops, void *conn,
                           void *owner, const struct sockaddr *client,
                           const struct sockaddr *local, const struct relay *relays,
                           unsigned n_relay, uint32_t lifetime, unsigned realm,
                           const char *user, size_t user_len);
void alloc_destroy(struct alloc *a, const char *why);
void alloc_set_lifetime(struct alloc *a, uint32_t lifetime);

/* Permissions and channels: 0, 400 (number/peer mismatch) or 508 (full). */
int alloc_perm_add(struct alloc *a, const struct sockaddr *peer);
bool alloc_perm_ok(const struct alloc *a, const struct sockaddr *peer);
int alloc_chan_bind(struct alloc *a, uint16_t number, const struct sockaddr *peer);
/* Is addr (IP and port) one of this allocation's own relay addresses? */
bool alloc_is_own_relay(const struct alloc *a, const struct sockaddr *addr);

/* Client -> peer. ChannelData (whole frame as received; DF as the
 * Allocate asked) and Send indication (df: it carried DONT-FRAGMENT). */
void alloc_relay_channel(struct alloc *a, const uint8_t *frame, size_t len);
void alloc_relay_send(struct alloc *a, const struct sockaddr *peer, const uint8_t *data,
                      size_t len, bool df);
/* The Allocate's DONT-FRAGMENT: the relay sockets' DF for ChannelData. */
void alloc_relay_set_df(struct alloc *a, bool on);

/* Open a relay socket on ip (port chosen in [min,max], even if asked);
 * reserve_next also binds port+1 and returns it in *next_fd; stream: a TCP
 * socket (RFC 6062), listening once started. 0 or -errno. */
int alloc_relay_open(struct relay_table *t, const struct sockaddr *ip, bool even,
                     bool reserve_next, bool stream, struct relay *out, int *next_fd);
void alloc_relay_close(struct relay *r);
/* Register a relay socket's read event (after alloc_create; a TCP
 * allocation's socket listens for peers then). 0 or -1. */
int alloc_relay_start(struct alloc *a);

/* The table's TURN clock, in (scaled) seconds; never 0. */
uint32_t alloc_now(const struct alloc *a);

#endif
