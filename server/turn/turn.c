/*
 * turn.c - see turn.h: the service of a worker, its sessions, and the order
 * of checks for a request (RFC 8489 section 9.2.4, RFC 8656 section 7):
 * unknown comprehension-required attributes (420), the transaction cache
 * (a retransmission gets the first answer again, or nothing while the first
 * is parked), authentication (401, 438, 400), the allocation owner (441),
 * then the method. No relay port is opened before a request has
 * authenticated. Authentication is in turn_auth.c, Allocate in turn_alloc.c,
 * the other methods in turn_methods.c.
 */
#include "server/turn/turn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/turn/turn_int.h"

struct turn *turn_new(const struct turn_env *env)
{
    struct turn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    const struct conf *c = env->conf;
    policy_init(&t->policy, c);
    turn_refresh_host(t);
    t->tx = txcache_new();
    t->rate = rate_new(c->unauth_rate, c->unauth_global_rate, c->unauth_global_bps,
                       (unsigned)env->n_workers);
    t->park = park_table_new(t, env->base, env->stats);
    if (!t->tx || !t->rate || !t->park) {
        turn_free(t);
        return NULL;
    }
    return t;
}

void turn_set_relay(struct turn *t, struct relay_table *relay)
{
    t->env.relay = relay;
}

void turn_free(struct turn *t)
{
    if (!t)
        return;
    txcache_free(t->tx);
    rate_free(t->rate);
    park_table_free(t->park);
    free(t);
}

void turn_refresh_host(struct turn *t)
{
    struct sockaddr_in6 host[POLICY_MAX_HOST];
    int n = net_host_addrs(host, POLICY_MAX_HOST);
    if (n < 0) {
        log_warn("cannot list the host's addresses: %s; keeping the previous list",
                 strerror(-n));
        return;
    }
    policy_set_host(&t->policy, host, (size_t)n);
}

void turn_session_init(struct turn_session *s, struct turn *svc, const struct client_ops *ops,
                       void *conn, const struct sockaddr *local, bool one_alloc)
{
    memset(s, 0, sizeof *s);
    s->svc = svc;
    s->ops = ops;
    s->conn = conn;
    s->local = local;
    s->one_alloc = one_alloc;
}

void turn_session_end(struct turn_session *s, const char *why)
{
    park_session_end(s);
    if (!s->one_alloc)
        relay_table_drop_conn(s->svc->env.relay, s->conn, why);
    else if (s->alloc)
        alloc_destroy(s->alloc, why); /* clears s->alloc (turn_on_alloc_death) */
}

void turn_alloc_report(struct alloc *a, bool total, struct cluster_alloc *out)
{
    /* coturn's counters: received from the client, sent to it */
    *out = (struct cluster_alloc){ .user = a->user, .user_len = a->user_len, .sid = a->sid,
                                   .quota_shared = a->quota_shared,
                                   .rcvp = a->pkts_out, .rcvb = a->bytes_out,
                                   .sentp = a->pkts_in, .sentb = a->bytes_in };
    if (total)
        return;
    out->rcvp -= a->rep_pkts_out;
    out->rcvb -= a->rep_bytes_out;
    out->sentp -= a->rep_pkts_in;
    out->sentb -= a->rep_bytes_in;
    a->rep_pkts_out = a->pkts_out;
    a->rep_bytes_out = a->bytes_out;
    a->rep_pkts_in = a->pkts_in;
    a->rep_bytes_in = a->bytes_in;
}

void turn_on_alloc_death(void *svc, struct alloc *a, const char *why)
{
    (void)why;
    struct turn *t = svc;
    struct turn_session *s = a->owner;
    if (s && s->alloc == a)
        s->alloc = NULL;
    if (t->env.cluster) {
        struct cluster_alloc ca;
        turn_alloc_report(a, true, &ca);
        cluster_alloc_deleted(t->env.cluster, &ca);
    }
}

void turn_enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                    size_t cap)
{
    stun_enc_init(e, out, cap, m->method, cls, m->tid, false);
}

size_t turn_enc_finish(const struct turn *t, struct stun_enc *e, const struct stun_msg *m,
                       const struct turn_auth *au)
{
    const struct conf *c = t->env.conf;
    if (c->software[0])
        stun_enc_add(e, STUN_ATTR_SOFTWARE, c->software, strlen(c->software));
    if (au) {
        int rc = au->sha256 ? stun_enc_add_integrity_sha256(e, au->key, au->key_len)
                            : stun_enc_add_integrity(e, au->key, au->key_len);
        if (rc < 0)
            return 0;
    }
    if (m->fingerprint >= 0 && stun_enc_add_fingerprint(e) < 0)
        return 0;
    return e->len;
}

size_t turn_reply_error(const struct turn *t, const struct stun_msg *m, int code,
                        const struct turn_auth *au, uint8_t *out, size_t cap)
{
    stats_request(t->env.stats, m->method, code);
    log_debug("method 0x%03x from %.*s: %d %s", m->method, au ? (int)au->user_len : 1,
              au ? au->user : "-", code, stun_error_reason(code));
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (code == 420)
        stun_enc_add_unknown(&e, m->unknown, m->n_unknown);
    return turn_enc_finish(t, &e, m, au);
}

struct alloc *turn_find_alloc(struct turn_session *s, const struct sockaddr *client)
{
    return s->one_alloc ? s->alloc : alloc_table_find(s->svc->env.relay, s->conn, client);
}

void turn_channel_data(struct turn_session *s, const struct sockaddr *client,
                       const uint8_t *frame, size_t len)
{
    struct alloc *a = turn_find_alloc(s, client);
    if (a)
        alloc_relay_channel(a, frame, len);
    else
        stats_add(&s->svc->env.stats->drops[STATS_DROP_NO_ALLOCATION], 1);
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
        if (park_keys(t->park, s, m, client, &au, (uint64_t)time(NULL)) == 0)
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
