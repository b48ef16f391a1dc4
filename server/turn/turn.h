/*
 * turn.h - server/turn: the TURN service (RFC 8656, RFC 6156, RFC 6062):
 * Allocate, Refresh, CreatePermission, ChannelBind, Connect and
 * ConnectionBind requests and Send indications, with
 * long-term authentication (RFC 8489 section 9.2), the transaction cache,
 * the unauthenticated-answer rate limits, and parked requests.
 *
 * Depends on relay/ (allocations, policy, quotas) and cluster/ (Redis
 * questions, statistics); knows nothing of sockets: every session reaches
 * its client through the struct client_ops its transport gave it.
 *
 * Errors: STUN error codes are data (0 or a code, inside this layer);
 * request handling returns a verdict. A request that waits for Redis is
 * parked: owned by this layer and by its session, its question cancelled if
 * the session ends first, resumed from the worker's loop at the step that
 * waited, and answered then through the session's client_ops.
 */
#ifndef TERN_SERVER_TURN_TURN_H
#define TERN_SERVER_TURN_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/auth.h"
#include "proto/stun.h"
#include "server/core/realm.h"
#include "server/relay/alloc.h"

struct event_base;
struct conf;
struct worker_stats;
struct clock_scaled;
struct auth_realms;
struct quota;
struct reserve;
struct cluster;
struct rate_sources;
struct turn;
struct turn_park;
struct bufferevent;
struct tcp_relay_note;
struct turn_move;

/* What request handling decided. */
enum turn_verdict {
    TURN_DROP = 0, /* no answer */
    TURN_ANSWER,   /* the answer is in out[0..*len) */
    TURN_PARKED,   /* answered later, through the session's client_ops */
};

/*
 * The session head every transport embeds in its own session object (a UDP
 * listening socket, a TCP/TLS connection, a DTLS session), initialised with
 * turn_session_init and ended with turn_session_end before the transport
 * frees it. Owned by that session; the pointers in it are borrowed:
 * svc and local outlive it, conn is the transport object itself.
 */
struct turn_session {
    struct turn *svc;
    const struct client_ops *ops;
    void *conn;
    const struct sockaddr *local; /* the server address the client reached */
    bool one_alloc;   /* connection-oriented: at most one allocation (alloc) */
    uint8_t transport; /* enum stats_transport, for logs and ternctl */
    struct alloc *alloc;           /* that allocation, or NULL */
    struct turn_park *parked;      /* this session's parked requests */
    /* The realm of every request here, when the transport knows it (the
     * listener's realm, the TLS SNI host's); "" lets each request's
     * ORIGIN decide. A name, not an index: the session outlives reloads. */
    char realm[REALM_NAME_MAX + 1];
    /* RFC 6062: the CONNECTION-ID this connection was bound to by a
     * ConnectionBind (0: none); the transport then hands its bytes over
     * with turn_session_data. */
    uint32_t data_id;
};

/*
 * What the TURN service of one worker gets at init. Pointers are borrowed
 * and outlive the service; cluster is NULL without Redis.
 */
struct turn_env {
    int worker_id;
    int n_workers;                   /* of the process: shares of node-wide limits */
    uint32_t node_id;                /* random per process: statistics ids */
    struct event_base *base;
    const struct conf *conf;
    struct worker_stats *stats;
    struct clock_scaled *clock;
    struct realm_set *realms;        /* the worker's realms and their limits */
    const struct auth_realms *auth;  /* static users and secrets, by realm */
    const uint8_t *nonce_key;        /* 32 bytes */
    struct relay_table *relay;
    struct quota *quota;
    struct reserve *resv;
    struct cluster *cluster;
    struct rate_sources *rate_sources; /* per-source unauthenticated limits, process-wide */
    const _Atomic bool *draining;      /* the node is being drained: no new allocations */
    /* RFC 8016: hand a turn_move to worker `to`'s service (its thread runs
     * turn_on_move); 0, or -1 when there is no such worker (mv stays the
     * caller's). */
    int (*move_post)(void *arg, int to, struct turn_move *mv);
    void *move_arg;
};

/*
 * RFC 8016: a client moved to a 5-tuple that another worker receives. The
 * new worker parks the Refresh and ASKs the worker named in the ticket; that
 * one answers GIVE (the allocation, detached from its table) or REFUSE
 * (code). Owned by the sender until move_post returns 0, then by the
 * receiving worker, which reuses it for the answer or frees it with
 * turn_move_free (which ends an allocation it carries).
 */
enum turn_move_kind { TURN_MOVE_ASK, TURN_MOVE_GIVE, TURN_MOVE_REFUSE };
struct turn_move {
    struct turn_move *next; /* the receiving worker's inbox */
    enum turn_move_kind kind;
    int from;               /* the worker that sent it */
    uint64_t park_id;       /* the parked Refresh on the asking worker */
    uint32_t alloc_id, gen; /* ASK: from the ticket */
    /* ASK: who asks, for the owner check (RFC 8016 section 3.2) */
    bool oauth;
    uint8_t key_len;
    uint8_t key[32];
    uint32_t token_left;
    uint8_t realm_len;
    char realm[REALM_NAME_MAX + 1];
    uint16_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
    int code;               /* REFUSE */
    struct alloc *alloc;    /* GIVE: owned by the message */
    uint32_t clock_at;      /* GIVE: the old table's clock at the detach */
};
/* On the receiving worker's thread. */
void turn_on_move(struct turn *t, struct turn_move *mv);
/* A message nobody will receive (the worker stopped). */
void turn_move_free(struct turn_move *mv, struct quota *q);

/* The worker's service (NULL on out-of-memory) and its relay-table hook:
 * pass turn_on_alloc_death with the service as relay_env.on_death. */
struct turn *turn_new(const struct turn_env *env);
void turn_set_relay(struct turn *t, struct relay_table *relay);
void turn_on_alloc_death(void *svc, struct alloc *a, const char *why);
/* relay_env.on_tcp: RFC 6062 news from the relay (turn_tcp.c). */
void turn_on_tcp(void *svc, struct alloc *a, const struct tcp_relay_note *n);
/* Every session must have ended before. */
void turn_free(struct turn *t);
/* A new configuration (reload), on the worker's thread, after its realm set
 * was refilled: read from now on (the peer policy is rebuilt and the host's
 * addresses re-read; allocations find their realm again by name, or fall
 * to the default realm when theirs is gone). conf and auth outlive their
 * use. */
void turn_reconfigure(struct turn *t, const struct conf *conf, const struct auth_realms *auth);
/* Redis appears, goes or is replaced (reload): requests waiting for the
 * old one resume as if it had failed. */
void turn_set_cluster(struct turn *t, struct cluster *c);
/* Re-read the host's addresses for the peer policy (start, SIGHUP). */
void turn_refresh_host(struct turn *t);

void turn_session_init(struct turn_session *s, struct turn *svc, const struct client_ops *ops,
                       void *conn, const struct sockaddr *local, bool one_alloc,
                       unsigned transport);
/* Pin the session's requests to a realm (by name; "" or NULL: none). */
void turn_session_set_realm(struct turn_session *s, const char *realm);
/* The session is going away: its parked requests are cancelled (never
 * answered) and its allocation ends (RFC 8656 section 3.1). */
void turn_session_end(struct turn_session *s, const char *why);

/* Handle a decoded non-Binding STUN message (requests and Send
 * indications) from client. */
enum turn_verdict turn_handle(struct turn_session *s, const struct stun_msg *m,
                              const struct sockaddr *client, uint8_t *out, size_t cap,
                              size_t *len);

/* RFC 6062. The worker whose allocation a ConnectionBind request (a whole
 * frame) names, or -1 when it is not one. */
int turn_bind_worker(const uint8_t *frame, size_t len);
/* The session answered its ConnectionBind (s->data_id): bev, a bufferevent
 * over its connection that frees its socket, joins the peer connection
 * (taken in every case). 0, or 400 when the peer connection is gone. */
int turn_session_data(struct turn_session *s, struct bufferevent *bev);

/* ChannelData from a client: relay it if the 5-tuple has an allocation. */
void turn_channel_data(struct turn_session *s, const struct sockaddr *client,
                       const uint8_t *frame, size_t len);

#endif
