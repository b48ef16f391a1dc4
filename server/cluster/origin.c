/*
 * origin.c - coturn's origin map (cluster.h): turn/origin/<origin> holds the
 * name of the realm that requests carrying that STUN ORIGIN belong to.
 *
 * Answers are cached per worker, direct-mapped by the origin (bounded, a
 * collision evicts), for auth.cache_ttl seconds, "not in the map" as well:
 * a client sends its ORIGIN on every request and most origins are not
 * mapped. A realm the map names that the configuration lacks is learned
 * into the worker's realm set (realm.h); when the set is full, or the name
 * cannot be a realm (empty, too long for a 401), the origin counts as
 * unmapped and the request stays in the default realm.
 */
#include <hiredis/hiredis.h>
#include <string.h>

#include "server/cluster/cluster_int.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/stats.h"

static struct cluster_origin_entry *origin_slot(struct cluster *c, const char *origin, size_t len)
{
    return &c->origins[cluster_hash(origin, len) % CLUSTER_ORIGIN_SLOTS];
}

/* The answer for a realm name from the map ("" none). */
static void origin_resolve(struct cluster *c, const char *name, struct cluster_origin *out)
{
    int i = name[0] ? realm_set_learn(c->env.realms, name, strlen(name)) : -1;
    out->status = i < 0 ? CLUSTER_ORIGIN_NONE : CLUSTER_ORIGIN_FOUND;
    out->realm = i < 0 ? 0 : (unsigned)i;
}

void cluster_origin_cached(struct cluster *c, const char *origin, size_t len,
                           struct cluster_origin *out)
{
    out->realm = 0;
    out->status = CLUSTER_ORIGIN_NONE;
    if (len == 0 || len > CLUSTER_ORIGIN_MAX)
        return;
    const struct cluster_origin_entry *e = origin_slot(c, origin, len);
    if (e->expires_ms > clock_mono_ms() && e->len == len && memcmp(e->origin, origin, len) == 0) {
        origin_resolve(c, e->realm, out);
        return;
    }
    out->status = cluster_up(c) ? CLUSTER_ORIGIN_MISS : CLUSTER_ORIGIN_FAILED;
}

static void origin_answer(struct cluster_ask *q)
{
    struct cluster *c = q->c;
    if (!q->failed) {
        struct cluster_origin_entry *e = origin_slot(c, q->user, q->user_len);
        e->expires_ms = clock_mono_ms() + (uint64_t)c->env.conf->cache_ttl * 1000u;
        e->len = (uint16_t)q->user_len;
        memcpy(e->origin, q->user, q->user_len);
        memcpy(e->realm, q->origin_realm, sizeof e->realm);
    }
    if (q->cancelled || !q->origin_done)
        return;
    struct cluster_origin o = { .status = CLUSTER_ORIGIN_FAILED };
    if (!q->failed)
        origin_resolve(c, q->origin_realm, &o);
    q->origin_done(q->arg, &o);
}

static void on_origin(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        q->failed = true;
    } else if (r->type == REDIS_REPLY_STRING && r->len > 0) {
        if ((size_t)r->len <= REALM_NAME_MAX) {
            memcpy(q->origin_realm, r->str, (size_t)r->len);
            q->origin_realm[r->len] = 0;
        } else if (q->c->env.worker_id == 0) {
            log_warn("redis: turn/origin/%.*s names a realm of %d characters; at most %d "
                     "(a 401 must stay small): treated as unmapped",
                     (int)q->user_len, q->user, (int)r->len, REALM_NAME_MAX);
        }
    }
    cluster_ask_reply_done(q);
}

struct cluster_ask *cluster_origin_ask(struct cluster *c, const char *origin, size_t len,
                                       cluster_origin_fn done, void *arg)
{
    if (len == 0 || len > CLUSTER_ORIGIN_MAX)
        return NULL;
    struct cluster_ask *q = cluster_ask_new(c, origin_answer, origin, len);
    if (!q)
        return NULL;
    stats_add(&c->env.stats->redis_lookups, 1);
    /* The origin goes in as one argument: no quoting, whatever it holds. */
    char key[16 + CLUSTER_ORIGIN_MAX];
    memcpy(key, "turn/origin/", 12);
    memcpy(key + 12, origin, len);
    const char *argv[] = { "GET", key };
    size_t lens[] = { 3, 12 + len };
    q->waiting = 1;
    if (redis_conn_command(c->redis, on_origin, q, 2, argv, lens) < 0) {
        q->failed = true;
        q->cancelled = true;
        cluster_ask_reply_done(q);
        return NULL;
    }
    q->origin_done = done;
    q->arg = arg;
    return q;
}
