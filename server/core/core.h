/*
 * core.h - server/core, the bottom layer of ternd: what every other layer
 * uses and that knows none of them.
 *
 *   log.h     where decisions are written (stderr, a file, syslog)
 *   clock.h   the monotonic clock, and each worker's scaled TURN clock
 *   net.h     socket address helpers, listening sockets, the host's addresses
 *   stats.h   per-worker counters read by the metrics endpoint
 *   core.h    the effective limits below
 *
 * Dependencies: libc and the kernel only (no libevent, no other layer).
 * Errors: 0 or a negative errno (-EADDRINUSE); lookups return NULL or false.
 *
 * Layers of server/, each depending only on those before it:
 *   core <- relay, cluster <- turn <- stun <- transport <- the root (main,
 *   worker, metrics). A lower layer reaches a higher one only through a
 *   callback or a vtable it was handed at init.
 */
#ifndef TERN_SERVER_CORE_CORE_H
#define TERN_SERVER_CORE_CORE_H

#include <stdint.h>

/*
 * The limits a worker applies now: the configuration's, or its realm's
 * values from Redis while they are set. One per worker, written by cluster/
 * (limits.c) and read by relay/ and turn/, all on that worker's thread.
 */
struct limits {
    uint64_t max_bps;     /* bytes/s per allocation; 0: unlimited */
    unsigned user_quota;  /* concurrent allocations per user; 0: unlimited */
    unsigned total_quota; /* concurrent allocations on this node; 0: unlimited */
};

#endif
