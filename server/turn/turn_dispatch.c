/*
 * turn_dispatch.c - the order of checks for a TURN request (RFC 8489
 * section 9.2.4, RFC 8656 section 7): unknown comprehension-required
 * attributes (420), the transaction cache (a retransmission gets the first
 * answer again, or nothing while the first is parked), the realm (or parked
 * while Redis's origin map is asked), authentication (401, 438, 400, or
 * parked while Redis is asked), the allocation owner (441), a Refresh
 * that brings its allocation from another 5-tuple (RFC 8016), then the
 * method. No relay port is opened before a request has authenticated.
 */
#include <string.h>
#include <time.h>

#include "server/core/stats.h"
#include "server/turn/turn_int.h"

/* A parked request's keys are in (park.h): authentication goes on with
 * them, then the request as if they had been there all along. */
static size_t resume_with(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client, struct turn_auth *au, int code,
                          uint8_t *out, size_t cap);

static size_t resume_keys(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client, struct turn_auth *au,
                          const struct park_answer *ans, uint8_t *out, size_t cap)
{
    return resume_with(s, m, client, au, turn_auth_with_keys(s->svc, m, &ans->keys, au), out,
                       cap);
}

/* Authentication of a parked request ended with code: the answer. */
static size_t resume_with(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client, struct turn_auth *au, int code,
                          uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    if (code == 500)
        stats_add(&t->env.stats->redis_failures, 1);
    if (code == 401) {
        stats_add(&t->env.stats->auth_failures[turn_realm_stats(t, au->realm)], 1);
        return turn_reply_challenge(t, m, 401, au->realm, client, out, cap);
    }
    if (code)
        return turn_unauth_error(t, m, au->realm, client, code, out, cap);
    size_t len = 0;
    return turn_request_authed(s, m, client, au, out, cap, &len) == TURN_ANSWER ? len : 0;
}

/* A parked request's AS-RS key is in (park.h): the token is opened with it. */
static size_t resume_oauth(struct turn_session *s, const struct stun_msg *m,
                           const struct sockaddr *client, struct turn_auth *au,
                           const struct park_answer *ans, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    int code = ans->oauth.status == CLUSTER_KEYS_FAILED ? 500 : 401;
    if (ans->oauth.status == CLUSTER_KEYS_FOUND)
        code = turn_oauth_with_key(t, m, &ans->oauth.key, au);
    return resume_with(s, m, client, au, code, out, cap);
}

enum turn_verdict turn_request_authed(struct turn_session *s, const struct stun_msg *m,
                                      const struct sockaddr *client, const struct turn_auth *au,
                                      uint8_t *out, size_t cap, size_t *len)
{
    struct turn *t = s->svc;
    if (m->method == STUN_CONNECTION_BIND) {
        *len = turn_connection_bind(s, m, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    struct alloc *a = turn_find_alloc(s, client);
    if (a && !turn_owner_ok(a, turn_realm(t, au->realm), au))
        *len = turn_reply_error(t, m, 441, au, out, cap);
    else if (m->method == STUN_ALLOCATE && !a)
        return turn_allocate(s, m, client, au, out, cap, len);
    else if (!a && m->method == STUN_REFRESH && stun_attr_find(m, STUN_ATTR_MOBILITY_TICKET))
        return turn_mobility_refresh(s, m, client, au, out, cap, len);
    else if (m->method == STUN_ALLOCATE || !a)
        *len = turn_reply_error(t, m, 437, au, out, cap);
    else if (m->method == STUN_REFRESH)
        *len = turn_do_refresh(s, a, m, au, out, cap);
    else if (m->method == STUN_CREATE_PERMISSION)
        *len = turn_do_permission(s, a, m, au, out, cap);
    else if (m->method == STUN_CONNECT)
        return turn_connect(s, a, m, au, out, cap, len);
    else
        *len = turn_do_channel_bind(s, a, m, au, out, cap);
    return *len ? TURN_ANSWER : TURN_DROP;
}

/* Authentication and the request, once its realm is known. */
static enum turn_verdict handle_in_realm(struct turn_session *s, const struct stun_msg *m,
                                         const struct sockaddr *client, struct turn_auth *au,
                                         uint8_t *out, size_t cap, size_t *len)
{
    struct turn *t = s->svc;
    int code = 0;
    enum turn_auth_step step = turn_authenticate(t, m, client, turn_find_alloc(s, client), au, &code);
    if (step == TURN_AUTH_ASK_OAUTH) {
        if (park_oauth(t->park, s, m, client, au, resume_oauth) == 0)
            return TURN_PARKED;
        stats_add(&t->env.stats->redis_failures, 1);
        step = TURN_AUTH_ERROR;
        code = 500;
    }
    if (step == TURN_AUTH_ASK) {
        if (park_keys(t->park, s, m, client, au, (uint64_t)time(NULL), resume_keys) == 0)
            return TURN_PARKED;
        stats_add(&t->env.stats->redis_failures, 1);
        step = TURN_AUTH_ERROR;
        code = 500;
    }
    if (step == TURN_AUTH_ERROR) {
        /* A first request without credentials is the normal challenge, not a failure. */
        if (m->integrity >= 0 || m->integrity256 >= 0)
            stats_add(&t->env.stats->auth_failures[turn_realm_stats(t, au->realm)], 1);
        *len = code == 401 || code == 438
                   ? turn_reply_challenge(t, m, code, au->realm, client, out, cap)
                   : turn_unauth_error(t, m, au->realm, client, code, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    return turn_request_authed(s, m, client, au, out, cap, len);
}

/* A parked request's origin is placed (park.h): it goes on in that realm
 * (the default one when the map has nothing, or Redis failed). */
static size_t resume_origin(struct turn_session *s, const struct stun_msg *m,
                            const struct sockaddr *client, struct turn_auth *au,
                            const struct park_answer *ans, uint8_t *out, size_t cap)
{
    au->realm = ans->origin.status == CLUSTER_ORIGIN_FOUND ? ans->origin.realm : 0;
    size_t len = 0;
    return handle_in_realm(s, m, client, au, out, cap, &len) == TURN_ANSWER ? len : 0;
}

enum turn_verdict turn_handle(struct turn_session *s, const struct stun_msg *m,
                              const struct sockaddr *client, uint8_t *out, size_t cap,
                              size_t *len)
{
    struct turn *t = s->svc;
    *len = 0;
    if (m->cls == STUN_CLASS_INDICATION) {
        if (m->method == STUN_SEND)
            turn_send_indication(s, m, client);
        return TURN_DROP;
    }
    if (m->cls != STUN_CLASS_REQUEST || m->classic)
        return TURN_DROP;
    switch (m->method) {
    case STUN_ALLOCATE:
    case STUN_REFRESH:
    case STUN_CREATE_PERMISSION:
    case STUN_CHANNEL_BIND:
    case STUN_CONNECT:
    case STUN_CONNECTION_BIND:
        break;
    default:
        *len = turn_unauth_error(t, m, 0, client, 400, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    if (m->n_unknown) {
        *len = turn_unauth_error(t, m, 0, client, 420, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    if ((*len = txcache_find(t->tx, s->conn, client, m->tid, out, cap)) > 0)
        return TURN_ANSWER;
    if (park_find(t->park, s, client, m->tid))
        return TURN_PARKED; /* a retransmission: the first copy will answer */

    struct turn_auth au;
    memset(&au, 0, sizeof au);
    au.epoch = t->realm_epoch;
    if (turn_realm_pick(t, s, turn_find_alloc(s, client), m, &au) == TURN_AUTH_ASK) {
        char origin[CONF_STR];
        int olen = turn_realm_origin(m, origin, sizeof origin);
        if (olen > 0 && park_origin(t->park, s, m, client, &au, origin, (size_t)olen,
                                    resume_origin) == 0)
            return TURN_PARKED;
        /* cannot wait: the default realm, as with Redis down */
    }
    enum turn_verdict v = handle_in_realm(s, m, client, &au, out, cap, len);
    if (v == TURN_ANSWER)
        txcache_put(t->tx, s->conn, client, m->tid, out, *len);
    return v;
}
