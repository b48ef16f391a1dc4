/*
 * turn_int.h - what the parts of the TURN service share: turn.c (the
 * service and its sessions), turn_dispatch.c (the order of checks),
 * turn_reply.c (answers), turn_auth.c (authentication), turn_alloc.c
 * (Allocate), turn_methods.c (Refresh, CreatePermission, ChannelBind, Send),
 * turn_tcp.c (RFC 6062: Connect, ConnectionBind, ConnectionAttempt),
 * turn_ticket.c and turn_mobility.c (RFC 8016),
 * txcache.c, rate.c and park.c. Calls between them go one way (dispatch
 * -> methods -> reply); park.c continues a request only through the
 * callback it was handed. Not for use outside server/turn/.
 */
#ifndef TERN_SERVER_TURN_TURN_INT_H
#define TERN_SERVER_TURN_TURN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "server/cluster/cluster.h"
#include "server/core/stats.h"
#include "server/relay/policy.h"
#include "server/turn/park.h"
#include "server/turn/rate.h"
#include "server/turn/turn.h"
#include "server/turn/txcache.h"

/* The worker's TURN service; owned by the worker (turn_new/free). */
struct turn {
    struct turn_env env;
    struct policy policy;        /* this worker's copy: host addresses */
    struct txcache *tx;          /* owned */
    struct rate *rate;           /* owned */
    struct park_table *park;     /* owned */
    uint32_t next_sid;
    unsigned alternate_next;     /* round robin over alternate_servers */
    unsigned relay_next;         /* round robin over relay.ip */
    uint32_t realm_epoch;        /* bumped when the realm set is refilled */
    uint8_t mob_key[16];         /* RFC 8016 tickets (turn_ticket.c), per process */
};

/* The outcome of authentication; user borrowed from the request, the
 * static store or a parked request's copy. realm is chosen first
 * (turn_realm.c), an index of env.realms. */
struct turn_auth {
    unsigned realm;
    uint32_t epoch; /* of the realm set realm indexes (turn.realm_epoch) */
    const char *user;
    size_t user_len;
    uint8_t key[32];
    size_t key_len;
    enum auth_alg alg;
    bool sha256; /* request carried MESSAGE-INTEGRITY-SHA256: answer with it */
    bool oauth;  /* an RFC 7635 token (or its allocation's key): key is its MAC key */
    uint32_t token_left; /* oauth: real seconds the token has left */
};

/* What the first step of authentication decided (turn_auth.c). */
enum turn_auth_step {
    TURN_AUTH_OK,      /* au complete */
    TURN_AUTH_ERROR,   /* answer *code without integrity */
    TURN_AUTH_ASK,     /* the keys must come from Redis: park */
    TURN_AUTH_ASK_OAUTH, /* the kid's AS-RS key must come from Redis: park */
};

/* Is the session a TCP or TLS connection (RFC 6062 needs one)? */
static inline bool turn_session_stream(const struct turn_session *s)
{
    return s->transport == STATS_TCP || s->transport == STATS_TLS;
}

/* Replies (turn_reply.c). Errors are signed when au is not NULL. */
void turn_enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                    size_t cap);
size_t turn_enc_finish(const struct turn *t, struct stun_enc *e, const struct stun_msg *m,
                       const struct turn_auth *au);
size_t turn_reply_error(const struct turn *t, const struct stun_msg *m, int code,
                        const struct turn_auth *au, uint8_t *out, size_t cap);
/* Everything after authentication (turn_dispatch.c): 441, 437, then the
 * method. */
enum turn_verdict turn_request_authed(struct turn_session *s, const struct stun_msg *m,
                                      const struct sockaddr *client, const struct turn_auth *au,
                                      uint8_t *out, size_t cap, size_t *len);
/* The allocation of the session or its 5-tuple (turn.c). */
struct alloc *turn_find_alloc(struct turn_session *s, const struct sockaddr *client);
/* One line for the start (why NULL) or the end of an allocation: the
 * session log of operators and their log shippers (turn.c). */
void turn_log_session(const struct turn *t, const struct alloc *a, const char *why);
/* The statistics view of an allocation, with the traffic since the last
 * report (which becomes this one) or in total. */
void turn_alloc_report(struct alloc *a, bool total, struct cluster_alloc *out);

/* The realm of a request (turn_realm.c): OK with au->realm set, or ASK
 * when Redis's origin map must be asked (park_origin). */
enum turn_auth_step turn_realm_pick(struct turn *t, const struct turn_session *s,
                                    const struct alloc *a, const struct stun_msg *m,
                                    struct turn_auth *au);
/* The request's ORIGIN, canonical as coturn keys its origin map: its
 * length, 0 when there is none, -1 when it is too long. */
int turn_realm_origin(const struct stun_msg *m, char *out, size_t cap);
/* A realm's metrics series and name. */
static inline const struct realm *turn_realm(const struct turn *t, unsigned realm)
{
    const struct realm_set *rs = t->env.realms;
    return &rs->r[realm < rs->n ? realm : 0];
}
static inline unsigned turn_realm_stats(const struct turn *t, unsigned realm)
{
    return turn_realm(t, realm)->stats_id;
}

/* Authentication (turn_auth.c); a is the 5-tuple's allocation or NULL. */
enum turn_auth_step turn_authenticate(struct turn *t, const struct stun_msg *m,
                                      const struct sockaddr *client, const struct alloc *a,
                                      struct turn_auth *au, int *code);
/* A parked request's keys are in: verify with them. 0 or the error code. */
int turn_auth_with_keys(struct turn *t, const struct stun_msg *m, const struct cluster_keys *k,
                        struct turn_auth *au);
/* RFC 7635 (turn_oauth.c). A request with ACCESS-TOKEN, after the realm,
 * nonce and USERNAME (the kid) were read into au: OK, ERROR (*code) or
 * ASK_OAUTH. */
bool turn_oauth_on(const struct turn *t);
enum turn_auth_step turn_oauth_authenticate(struct turn *t, const struct stun_msg *m,
                                            struct turn_auth *au, int *code);
/* With the kid's key in hand (configured, or Redis's for a parked
 * request): 0 (au complete) or the error code. */
int turn_oauth_with_key(struct turn *t, const struct stun_msg *m, const struct oauth_key *k,
                        struct turn_auth *au);
/* A request without a token on an allocation made with one: its key. */
int turn_oauth_with_alloc(const struct stun_msg *m, const struct alloc *a, struct turn_auth *au);
/* The THIRD-PARTY-AUTHORIZATION value of a realm (the AEAD associated data). */
const char *turn_oauth_server_name(const struct turn *t, unsigned realm, size_t *len);

/* 401/438 with the realm's name and a fresh nonce; unauthenticated errors
 * (counted in realm). Both rate limited and held to the unauthenticated
 * size bound (0: drop). */
size_t turn_reply_challenge(struct turn *t, const struct stun_msg *m, int code, unsigned realm,
                            const struct sockaddr *client, uint8_t *out, size_t cap);
size_t turn_unauth_error(struct turn *t, const struct stun_msg *m, unsigned realm,
                         const struct sockaddr *client, int code, uint8_t *out, size_t cap);

/* Is au the owner of a (same user and realm, or an RFC 7635 token)? */
bool turn_owner_ok(struct alloc *a, const struct realm *r, const struct turn_auth *au);
/* Every XOR-PEER-ADDRESS of a request, checked (family, policy): 0, or an
 * error code; peers[ALLOC_MAX_PERMS]. */
int turn_peers_check(const struct turn *t, const struct alloc *a, const struct stun_msg *m,
                     struct sockaddr_storage *peers, size_t *n);

/* RFC 6062 (turn_tcp.c): Connect answers later (TURN_PARKED) unless it
 * fails at once; ConnectionBind answers now and marks the session. */
enum turn_verdict turn_connect(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                               const struct turn_auth *au, uint8_t *out, size_t cap, size_t *len);
size_t turn_connection_bind(struct turn_session *s, const struct stun_msg *m,
                            const struct turn_auth *au, uint8_t *out, size_t cap);

/* Requests on an allocation (turn_methods.c). */
size_t turn_do_refresh(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                       const struct turn_auth *au, uint8_t *out, size_t cap);
size_t turn_do_permission(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                          const struct turn_auth *au, uint8_t *out, size_t cap);
size_t turn_do_channel_bind(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                            const struct turn_auth *au, uint8_t *out, size_t cap);
void turn_send_indication(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client);

/* RFC 8016 tickets (turn_ticket.c): the key, from the process's nonce key;
 * an Allocate's MOBILITY-TICKET: 0 (none, or asked for rightly), 400 or
 * 405; a new ticket for a mobile allocation into an answer (older ones are
 * spent); what a ticket names, or -1 when it does not open. */
struct turn_ticket {
    unsigned worker;
    uint32_t id, gen;
};
void turn_ticket_init(struct turn *t);
int turn_ticket_asked(const struct turn_session *s, const struct stun_msg *m);
void turn_ticket_add(struct turn *t, struct alloc *a, struct stun_enc *e);
int turn_ticket_open(const struct turn *t, const uint8_t *v, size_t len, struct turn_ticket *out);
/* RFC 8016 moves (turn_mobility.c). */
/* An authenticated Refresh with MOBILITY-TICKET from a 5-tuple that has no
 * allocation: move the ticket's allocation here (or park while its worker
 * is asked), then refresh it. */
enum turn_verdict turn_mobility_refresh(struct turn_session *s, const struct stun_msg *m,
                                        const struct sockaddr *client,
                                        const struct turn_auth *au, uint8_t *out, size_t cap,
                                        size_t *len);

/* Allocate (turn_alloc.c). */
/* LIFETIME asked, within max_lifetime and an RFC 7635 token's. */
uint32_t turn_lifetime(const struct turn *t, const struct stun_msg *m,
                       const struct turn_auth *au, bool allocate);
enum turn_verdict turn_allocate(struct turn_session *s, const struct stun_msg *m,
                                const struct sockaddr *client, const struct turn_auth *au,
                                uint8_t *out, size_t cap, size_t *len);

#endif
