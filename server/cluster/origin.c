/*
 * origin.c - coturn's origin map (cluster.h): turn/origin/<origin> holds the
 * name of the realm that requests carrying that STUN ORIGIN belong to.
 *
 * Answers are cached per worker, direct-mapped by the origin (bounded, a
 * collision evicts), for auth.cache_ttl seconds, "not in the map" as well:
 * a client sends its ORIGIN on every request and most origins are not
 * mapped. A realm the map names that the configuration lacks is learned
 * into the worker's realm set (realm.h), with its Redis limits read in the
 * same question, so that its first allocation already counts against them;
 * when the set is full, or the name cannot be a realm (empty, too long for a
 * 401), the origin counts as unmapped and the request stays in the default
 * realm.
 */
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "server/cluster/cluster_int.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/stats.h"

static struct cluster_origin_entry *origin_slot(struct cluster *c, const char *origin, size_t len)
{
    return &c->origins[cluster_hash(origin, len) % CLUSTER_ORIGIN_SLOTS];
}

/* The answer for a realm name from the map ("" none); a realm learned now
 * takes the limits q read (q NULL: none read, the poll brings them). */
static void origin_resolve(struct cluster *c, const char *name, const struct cluster_ask *q,
                           struct cluster_origin *out)
{
    struct realm_set *rs = c->env.realms;
    unsigned before = rs->n;
    int i = name[0] ? realm_set_learn(rs, name, strlen(name)) : -1;
    out->status = i < 0 ? CLUSTER_ORIGIN_NONE : CLUSTER_ORIGIN_FOUND;
    out->realm = i < 0 ? 0 : (unsigned)i;
    if (i < 0 || (unsigned)i < before || !q)
        return;
    static const enum realm_limit bit[3] = { REALM_MAX_BPS, REALM_USER_QUOTA, REALM_TOTAL_QUOTA };
    for (int k = 0; k < 3; k++)
        if (q->origin_limits_set & bit[k])
            realm_set_limit(&rs->r[i], bit[k], true, q->origin_limits[k]);
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
        origin_resolve(c, e->realm, NULL, out);
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
        origin_resolve(c, q->origin_realm, q, &o);
    q->origin_done(q->arg, &o);
}

/* The limits of a realm about to be learned (an MGET of its three keys);
 * a value that is not a limit is ignored here, and logged by the poll. */
static void on_origin_limits(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    static const uint64_t max[3] = { UINT64_MAX, UINT_MAX, UINT_MAX };
    static const enum realm_limit bit[3] = { REALM_MAX_BPS, REALM_USER_QUOTA, REALM_TOTAL_QUOTA };
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && i < 3; i++) {
        const struct redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING &&
            cluster_limit_parse(e->str, (size_t)e->len, max[i], &q->origin_limits[i]) == 0)
            q->origin_limits_set |= bit[i];
    }
    cluster_ask_reply_done(q);
}

/* A realm new to the worker: read its limits before answering. */
static void origin_ask_limits(struct cluster_ask *q)
{
    struct cluster *c = q->c;
    if (realm_set_find(c->env.realms, q->origin_realm, strlen(q->origin_realm)) >= 0)
        return;
    char keys[3][CONF_STR + 64];
    size_t lens[4];
    cluster_limit_keys(q->origin_realm, keys, lens + 1);
    const char *argv[] = { "MGET", keys[0], keys[1], keys[2] };
    lens[0] = 4;
    if (redis_conn_command(c->redis, on_origin_limits, q, 4, argv, lens) == 0)
        q->waiting++;
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
            origin_ask_limits(q);
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
    if (cluster_ask_send(q, on_origin, 2, argv, lens) < 0)
        return NULL;
    q->origin_done = done;
    q->arg = arg;
    return q;
}
