/*
 * turn_dispatch.c - the order of checks for a TURN request (RFC 8489
 * section 9.2.4, RFC 8656 section 7): unknown comprehension-required
 * attributes (420), the transaction cache (a retransmission gets the first
 * answer again, or nothing while the first is parked), authentication (401,
 * 438, 400, or parked while Redis is asked), the allocation owner (441),
 * then the method. No relay port is opened before a request has
 * authenticated.
 */
#include <string.h>
#include <time.h>

#include "server/core/stats.h"
#include "server/turn/turn_int.h"

/* A parked request's keys are in (park.h): authentication goes on with
 * them, then the request as if they had been there all along. */
static size_t resume_keys(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client, struct turn_auth *au,
                          const struct park_answer *ans, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    int code = turn_auth_with_keys(t, m, &ans->keys, au);
    if (code == 500)
        stats_add(&t->env.stats->redis_failures, 1);
    if (code == 401) {
        stats_add(&t->env.stats->auth_failures, 1);
        return turn_reply_challenge(t, m, 401, client, out, cap);
    }
    if (code)
        return turn_unauth_error(t, m, client, code, out, cap);
    size_t len = 0;
    return turn_request_authed(s, m, client, au, out, cap, &len) == TURN_ANSWER ? len : 0;
}

enum turn_verdict turn_request_authed(struct turn_session *s, const struct stun_msg *m,
                                      const struct sockaddr *client, const struct turn_auth *au,
                                      uint8_t *out, size_t cap, size_t *len)
{
    struct turn *t = s->svc;
    struct alloc *a = turn_find_alloc(s, client);
    if (a && (a->user_len != au->user_len || memcmp(a->user, au->user, au->user_len) != 0))
        *len = turn_reply_error(t, m, 441, au, out, cap);
    else if (m->method == STUN_ALLOCATE && !a)
        return turn_allocate(s, m, client, au, out, cap, len);
    else if (m->method == STUN_ALLOCATE || !a)
        *len = turn_reply_error(t, m, 437, au, out, cap);
    else if (m->method == STUN_REFRESH)
        *len = turn_do_refresh(s, a, m, au, out, cap);
    else if (m->method == STUN_CREATE_PERMISSION)
        *len = turn_do_permission(s, a, m, au, out, cap);
    else
        *len = turn_do_channel_bind(s, a, m, au, out, cap);
    return *len ? TURN_ANSWER : TURN_DROP;
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
        break;
    default:
        *len = turn_unauth_error(t, m, client, 400, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    if (m->n_unknown) {
        *len = turn_unauth_error(t, m, client, 420, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    if ((*len = txcache_find(t->tx, s->conn, client, m->tid, out, cap)) > 0)
        return TURN_ANSWER;
    if (park_find(t->park, s, client, m->tid))
        return TURN_PARKED; /* a retransmission: the first copy will answer */

    struct turn_auth au;
    memset(&au, 0, sizeof au);
    int code = 0;
    enum turn_auth_step step = turn_authenticate(t, m, client, &au, &code);
    if (step == TURN_AUTH_ASK) {
        if (park_keys(t->park, s, m, client, &au, (uint64_t)time(NULL), resume_keys) == 0)
            return TURN_PARKED;
        stats_add(&t->env.stats->redis_failures, 1);
        step = TURN_AUTH_ERROR;
        code = 500;
    }
    if (step == TURN_AUTH_ERROR) {
        /* A first request without credentials is the normal challenge, not a failure. */
        if (m->integrity >= 0 || m->integrity256 >= 0)
            stats_add(&t->env.stats->auth_failures, 1);
        *len = code == 401 || code == 438 ? turn_reply_challenge(t, m, code, client, out, cap)
                                          : turn_unauth_error(t, m, client, code, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    enum turn_verdict v = turn_request_authed(s, m, client, &au, out, cap, len);
    if (v == TURN_ANSWER)
        txcache_put(t->tx, s->conn, client, m->tid, out, *len);
    return v;
}
