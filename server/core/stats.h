/*
 * stats.h - per-worker counters for the metrics endpoint.
 *
 * Each worker owns one struct worker_stats and is its only writer; the
 * metrics thread reads every worker's counters and sums them on scrape.
 * Counters are _Atomic with relaxed ordering: a single writer makes the
 * increment a plain load and store (no lock prefix on the packet path), and
 * the reader never sees a torn value.
 */
#ifndef TERN_SERVER_CORE_STATS_H
#define TERN_SERVER_CORE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum stats_method {
    STATS_BINDING,
    STATS_ALLOCATE,
    STATS_REFRESH,
    STATS_CREATE_PERMISSION,
    STATS_CHANNEL_BIND,
    STATS_OTHER,
    STATS_N_METHODS
};

/* STUN error codes counted by code; anything else counts as "other". */
enum stats_code {
    STATS_OK, STATS_300, STATS_400, STATS_401, STATS_403, STATS_420, STATS_437, STATS_438,
    STATS_440, STATS_441, STATS_442, STATS_443, STATS_486, STATS_508, STATS_CODE_OTHER,
    STATS_N_CODES
};

enum stats_transport { STATS_UDP, STATS_TCP, STATS_TLS, STATS_DTLS, STATS_N_TRANSPORTS };

enum stats_drop {
    STATS_DROP_NO_PERMISSION,  /* peer datagram or client data without permission */
    STATS_DROP_NO_ALLOCATION,  /* ChannelData/Send on a 5-tuple without allocation */
    STATS_DROP_NO_CHANNEL,     /* ChannelData on an unbound channel */
    STATS_DROP_BANDWIDTH,      /* limits.max_bps */
    STATS_DROP_RATE_LIMIT,     /* limits.unauth_rate */
    STATS_DROP_MALFORMED,      /* not STUN, bad fingerprint, truncated */
    STATS_DROP_SEND_FAILED,    /* the kernel refused the datagram */
    STATS_DROP_UNAUTH_BUDGET,  /* the worker's budget for unauthenticated answers */
    STATS_N_DROPS
};

enum stats_dir { STATS_TO_PEER, STATS_TO_CLIENT, STATS_N_DIRS };

typedef _Atomic uint64_t stats_counter;

/*
 * Series per realm: a realm's stats id is its slot in struct stats_realms.
 * Id 0 is the default realm (whatever the top-level realm is called now);
 * ids 1.. name the realms[] entries in the order they were first
 * configured, kept for the life of the process so that a counter never
 * moves to another realm across reloads. Requests outside any realm
 * (Binding) and realms only Redis knows count under id 0, so the number of
 * series stays bounded by the configuration.
 */
#define STATS_MAX_REALMS 32

/* Owned by the server; written by the main thread only (stats_realms_intern),
 * read by the metrics code: a name is complete before n covers it. */
struct stats_realms {
    _Atomic unsigned n;
    char name[STATS_MAX_REALMS][64];
};

/* The id of a realm of realms[] (interned on first sight); 0 when every id
 * is taken. Main thread only. */
unsigned stats_realms_intern(struct stats_realms *r, const char *name);

/* One worker's counters. Owned by the worker (embedded in struct worker). */
struct worker_stats {
    stats_counter requests[STATS_MAX_REALMS][STATS_N_METHODS][STATS_N_CODES];
    stats_counter auth_failures[STATS_MAX_REALMS];
    stats_counter allocations_created[STATS_MAX_REALMS];
    stats_counter permissions_created;
    stats_counter channels_bound;
    stats_counter bytes[STATS_MAX_REALMS][STATS_N_DIRS];
    stats_counter packets[STATS_MAX_REALMS][STATS_N_DIRS];
    stats_counter drops[STATS_N_DROPS];
    stats_counter tls_handshakes[2][2];         /* [dtls][resumed by ticket] */
    stats_counter sessions[STATS_N_TRANSPORTS]; /* gauge: live sessions */
    stats_counter allocations[STATS_MAX_REALMS]; /* gauge: live allocations */
    stats_counter relay_sockets;                /* gauge: relay sockets of live allocations */
    stats_counter redis_up;                     /* gauge: 1 connected, 0 not */
    stats_counter redis_rtt_us;                 /* gauge: last PING round trip */
    stats_counter redis_parked;                 /* gauge: requests waiting on Redis */
    stats_counter redis_lookups;                /* credential lookups sent to Redis */
    stats_counter redis_failures;               /* lookups answered 500 (down, slow) */
    stats_counter offload_packets[STATS_N_DIRS]; /* of packets[]: relayed in the kernel */
    stats_counter offload_channels;             /* gauge: channels relayed in the kernel */
};

static inline void stats_add(stats_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void stats_sub(stats_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static inline uint64_t stats_read(const stats_counter *c)
{
    return atomic_load_explicit((stats_counter *)c, memory_order_relaxed);
}

static inline enum stats_method stats_method_of(unsigned stun_method)
{
    switch (stun_method) {
    case 0x001: return STATS_BINDING;
    case 0x003: return STATS_ALLOCATE;
    case 0x004: return STATS_REFRESH;
    case 0x008: return STATS_CREATE_PERMISSION;
    case 0x009: return STATS_CHANNEL_BIND;
    default: return STATS_OTHER;
    }
}

static inline enum stats_code stats_code_of(int code)
{
    static const int codes[] = { 0, 300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 486, 508 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == code)
            return (enum stats_code)i;
    return STATS_CODE_OTHER;
}

/* One answered request in a realm (stats id): code 0 for success. */
static inline void stats_request(struct worker_stats *s, unsigned realm, unsigned stun_method,
                                 int code)
{
    stats_add(&s->requests[realm][stats_method_of(stun_method)][stats_code_of(code)], 1);
}

/* Sum of a per-realm counter. */
static inline uint64_t stats_read_realms(const stats_counter *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < STATS_MAX_REALMS; i++)
        n += stats_read(&c[i]);
    return n;
}

#endif
