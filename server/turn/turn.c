/*
 * turn.c - see turn.h: the service of a worker and its sessions, and what
 * every part of it asks of an allocation (find it, report it). Requests are
 * dispatched in turn_dispatch.c; authentication is in turn_auth.c, Allocate
 * in turn_alloc.c, the other methods in turn_methods.c, answers are built in
 * turn_reply.c.
 */
#include "server/turn/turn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "server/core/clock.h"
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
    turn_ticket_init(t);
    t->tx = txcache_new();
    t->rate = rate_new(env->rate_sources, c->unauth_global_rate, c->unauth_global_bps,
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

/* An allocation finds its realm again in the refilled set (realm.h). */
static void alloc_find_realm(struct alloc *a, void *arg)
{
    const struct realm_set *rs = arg;
    int i = realm_set_find(rs, a->realm_name, a->realm_len);
    a->realm = (uint8_t)(i < 0 ? 0 : i);
}

void turn_reconfigure(struct turn *t, const struct conf *conf, const struct auth_realms *auth)
{
    t->env.conf = conf;
    t->env.auth = auth;
    t->realm_epoch++;
    if (t->env.relay)
        relay_table_foreach(t->env.relay, alloc_find_realm, t->env.realms);
    size_t n_host = t->policy.n_host;
    struct sockaddr_in6 host[POLICY_MAX_HOST];
    memcpy(host, t->policy.host, n_host * sizeof host[0]);
    policy_init(&t->policy, conf);
    policy_set_host(&t->policy, host, n_host);
    turn_refresh_host(t);
    rate_set_budget(t->rate, conf->unauth_global_rate, conf->unauth_global_bps,
                    (unsigned)t->env.n_workers);
}

void turn_set_cluster(struct turn *t, struct cluster *c)
{
    if (t->env.cluster == c)
        return;
    park_fail_all(t->park);
    t->env.cluster = c;
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
                       void *conn, const struct sockaddr *local, bool one_alloc,
                       unsigned transport)
{
    memset(s, 0, sizeof *s);
    s->svc = svc;
    s->ops = ops;
    s->conn = conn;
    s->local = local;
    s->one_alloc = one_alloc;
    s->transport = (uint8_t)transport;
}

void turn_session_set_realm(struct turn_session *s, const char *realm)
{
    size_t n = realm ? strlen(realm) : 0;
    if (n > REALM_NAME_MAX)
        n = 0;
    memcpy(s->realm, realm ? realm : "", n);
    s->realm[n] = 0;
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
    *out = (struct cluster_alloc){ .user = a->user, .user_len = a->user_len,
                                   .realm = a->realm_name, .realm_len = a->realm_len, .sid = a->sid,
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

void turn_log_session(const struct turn *t, const struct alloc *a, const char *why)
{
    static const char *const transports[] = { "udp", "tcp", "tls", "dtls" };
    const struct turn_session *s = a->owner;
    char id[24], client[NET_ADDRSTRLEN], relay[2 * NET_ADDRSTRLEN + 2];
    snprintf(id, sizeof id, "%018llu", (unsigned long long)a->sid);
    net_addr_format((const struct sockaddr *)&a->client, client, sizeof client);
    net_addr_format((const struct sockaddr *)&a->relay[0].reported, relay, sizeof relay);
    if (a->n_relay > 1) {
        size_t n = strlen(relay);
        relay[n++] = ',';
        net_addr_format((const struct sockaddr *)&a->relay[1].reported, relay + n, sizeof relay - n);
    }
    struct log_kv kv[12] = {
        LOG_STR("id", id), LOG_STRN("user", a->user, a->user_len),
        LOG_STRN("realm", a->realm_name, a->realm_len),
        LOG_STR("client", client), LOG_STR("transport", transports[s ? s->transport & 3 : 0]),
        LOG_STR("relay", relay),
    };
    size_t n = 6;
    if (!why) {
        unsigned scale = t->env.conf->time_scale ? t->env.conf->time_scale : 1;
        kv[n++] = LOG_NUM("lifetime_s", (a->expires - alloc_now(a)) / scale);
        log_event(LOG_LVL_INFO, "session_start", kv, n);
        return;
    }
    kv[n++] = LOG_NUM("duration_s", (clock_mono_ms() - a->created_ms) / 1000u);
    kv[n++] = LOG_NUM("bytes_to_peer", a->bytes_out);
    kv[n++] = LOG_NUM("packets_to_peer", a->pkts_out);
    kv[n++] = LOG_NUM("bytes_to_client", a->bytes_in);
    kv[n++] = LOG_NUM("packets_to_client", a->pkts_in);
    kv[n++] = LOG_STR("reason", why);
    log_event(LOG_LVL_INFO, "session_end", kv, n);
}

void turn_on_alloc_death(void *svc, struct alloc *a, const char *why)
{
    struct turn *t = svc;
    turn_log_session(t, a, why);
    struct turn_session *s = a->owner;
    if (s && s->alloc == a)
        s->alloc = NULL;
    if (t->env.cluster) {
        struct cluster_alloc ca;
        turn_alloc_report(a, true, &ca);
        cluster_alloc_deleted(t->env.cluster, &ca);
    }
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
