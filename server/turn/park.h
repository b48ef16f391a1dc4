/*
 * park.h - TURN requests waiting for Redis: the realm of an ORIGIN (origin
 * map), a credentials lookup (cache miss) or the cross-node user quota of
 * an Allocate; or another worker, for an RFC 8016 Refresh whose allocation
 * lives there.
 *
 * A parked request is owned by the worker's park table and listed in its
 * session's list; it holds a copy of the message, its cluster question
 * handle, and the step to continue at (a callback of the code that parked
 * it, so this file calls nothing above it). Its answer arrives as a
 * callback argument (never through hidden state), is stored in the request,
 * and the request goes on the ready list; one event of the worker's loop
 * drains that list and continues each request at the step that waited
 * (never from inside the Redis reply), then sends what it answers through
 * the session's client_ops and keeps it in the transaction cache. Ending a session cancels its questions and
 * frees its parked requests, so no answer can reach a session that is gone.
 * A request not answered within PARK_TIMEOUT_MS stops waiting: credentials
 * get 500, a quota question is decided locally, an origin stays in the
 * default realm.
 */
#ifndef TERN_SERVER_TURN_PARK_H
#define TERN_SERVER_TURN_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/stun.h"
#include "server/cluster/cluster.h"

struct event_base;
struct worker_stats;
struct turn;
struct turn_session;
struct turn_auth;

#define PARK_TIMEOUT_MS 1000
#define PARK_MAX 256     /* per worker; beyond, requests get 500 at once */
#define PARK_MSG 2048    /* longer requests are not parked */

struct park_table;

/* What a parked request waited for. */
struct park_answer {
    struct cluster_origin origin;    /* park_origin: FAILED after the timeout */
    struct cluster_oauth oauth;      /* park_oauth: FAILED after the timeout */
    struct cluster_keys keys;        /* park_keys: FAILED after the timeout */
    enum cluster_quota_status quota; /* park_quota: FAILED after the timeout */
    uint64_t sid;                    /* park_quota: the member asked for */
    int move;                        /* park_move: 0 (moved here) or an error code; 500 after the timeout */
};

/* Continue a parked request: m is its copy, au its authentication so far
 * (au->user points into the parked request). Returns the length of the
 * answer written to out, or 0 for none. */
typedef size_t (*park_resume_fn)(struct turn_session *s, const struct stun_msg *m,
                                 const struct sockaddr *client, struct turn_auth *au,
                                 const struct park_answer *ans, uint8_t *out, size_t cap);

struct park_table *park_table_new(struct turn *svc, struct event_base *base,
                                  struct worker_stats *stats);
/* Every session must have ended (park_session_end) before. */
void park_table_free(struct park_table *pt);

/* Is this transaction of this session and client waiting already? Then a
 * retransmission is neither run again nor asked again. */
bool park_find(const struct park_table *pt, const struct turn_session *s,
               const struct sockaddr *client, const uint8_t *tid);
/* Park m until the origin map says which realm origin is in. 0, or -1 when
 * it cannot wait (the default realm). */
int park_origin(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
                const struct sockaddr *client, const struct turn_auth *au, const char *origin,
                size_t len, park_resume_fn resume);
/* Park m until Redis says what the AS-RS key of kid au->user is. 0, or -1
 * when it cannot wait (answer 500). */
int park_oauth(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
               const struct sockaddr *client, const struct turn_auth *au, park_resume_fn resume);
/* Park m until the keys of au->user (realm au->realm, alg au->alg) are in.
 * 0, or -1 when it cannot wait (answer 500). */
int park_keys(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
              const struct sockaddr *client, const struct turn_auth *au, uint64_t now,
              park_resume_fn resume);
/* Park an authenticated Allocate until the user quota question for member
 * sid is answered. 0, or -1 when it cannot wait (decide locally). */
int park_quota(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
               const struct sockaddr *client, const struct turn_auth *au, uint64_t sid,
               uint32_t lifetime_s, unsigned limit, park_resume_fn resume);
/* Park a mobility Refresh while the worker holding its allocation is
 * asked (turn_move); *id names it in that worker's answer. 0, or -1 when
 * it cannot wait (answer 500). */
int park_move(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
              const struct sockaddr *client, const struct turn_auth *au, park_resume_fn resume,
              uint64_t *id);
/* The answer for the parked Refresh id: code 0 or an error. Returns its
 * session and client (borrowed, valid on this thread until the loop runs
 * on) for the allocation to join, or NULL when it stopped waiting. */
struct turn_session *park_move_answer(struct park_table *pt, uint64_t id, int code,
                                      const struct sockaddr **client);
/* Redis goes away (reload): every waiting request stops waiting and
 * resumes with a failed answer, its question cancelled. */
void park_fail_all(struct park_table *pt);
/* The session ends: cancel and free its parked requests. */
void park_session_end(struct turn_session *s);

#endif
