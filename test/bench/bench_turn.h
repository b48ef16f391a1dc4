/*
 * A many-session TURN client for the benchmark: each session is one UDP
 * socket (one 5-tuple, so one allocation on the server). Sessions go through
 * Allocate (401, then authenticated), optionally ChannelBind to a peer, and
 * then sit ready, refreshed at half their lifetime. At most max_active
 * transactions are in flight; lost requests are retransmitted after 500 ms,
 * five times, then the session counts as failed.
 */
#ifndef TERN_BENCH_TURN_H
#define TERN_BENCH_TURN_H

#include "test/bench/bench.h"

enum bsess_state { BS_NEW, BS_ALLOC, BS_BIND, BS_READY, BS_REFRESH, BS_DELETE, BS_DONE, BS_FAILED };

struct bsess {
    int fd;                      /* connected to the server; owned */
    int peer_fd;                 /* relay mode: our peer socket, connected to relay; owned */
    uint8_t state, tries;
    uint16_t chan;
    uint32_t seq;                /* makes transaction IDs unique */
    uint64_t deadline;           /* retransmission (in flight) or next refresh (ready) */
    struct sockaddr_storage relay;
    struct sockaddr_storage peer; /* where peer_fd is bound */
    uint8_t nonce_len;
    char nonce[127];
};

/* Everything the engine allocates it owns; opts is borrowed. */
struct bturn {
    const struct bench_opts *o;
    struct bsess *s;
    unsigned n;
    int ep;                 /* epoll over the session sockets */
    unsigned *active;       /* sessions with a transaction in flight */
    unsigned n_active, max_active;
    unsigned *ring;         /* ready sessions in refresh-deadline order */
    unsigned ring_head, ring_len;
    unsigned next_new;      /* sessions [next_new, n) not started yet */
    bool with_peer;         /* relay: peer socket + ChannelBind */
    bool cycle;             /* allocate: Refresh(0) and start over with a new socket */
    bool refresh;           /* hold: keep ready sessions refreshed */
    uint8_t key[16];
    char realm[128];
    uint64_t ready, failed, handshakes, refreshes, deleted;
};

int bturn_init(struct bturn *t, const struct bench_opts *o, unsigned n, unsigned max_active);
/* Start sessions and process answers, retransmissions and refreshes for up to
 * timeout_ms. */
void bturn_poll(struct bturn *t, int timeout_ms);
/* Run until every session is ready or failed, or until deadline. */
void bturn_setup(struct bturn *t, uint64_t deadline);
/* Refresh(0) every ready session and wait for the answers until deadline. */
void bturn_delete_all(struct bturn *t, uint64_t deadline);
void bturn_free(struct bturn *t);

#endif
