/*
 * publish.c - allocation statistics in coturn's layout (cluster.h), so that
 * existing dashboards keep working. Every write is fire-and-forget: a node
 * that cannot reach Redis relays exactly as before and only stops reporting.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/cluster/cluster_int.h"

/* turn/user/<user>/allocation/<id>/<leaf> */
static size_t alloc_key(const struct cluster_alloc *a, const char *leaf, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "turn/user/");
    if ((size_t)n + a->user_len + 64 > cap)
        return 0;
    memcpy(buf + n, a->user, a->user_len);
    int m = snprintf(buf + (size_t)n + a->user_len, cap - (size_t)n - a->user_len,
                     "/allocation/%018llu/%s", (unsigned long long)a->sid, leaf);
    return (size_t)n + a->user_len + (size_t)m;
}

static void publish(struct cluster *c, const char *key, size_t klen, const char *msg)
{
    const char *argv[] = { "PUBLISH", key, msg };
    size_t lens[] = { 7, klen, strlen(msg) };
    cluster_send(c, 3, argv, lens);
}

static void traffic(struct cluster *c, const struct cluster_alloc *a, const char *leaf)
{
    char key[AUTH_MAX_USERNAME + 128], msg[160];
    size_t klen = alloc_key(a, leaf, key, sizeof key);
    if (!klen)
        return;
    snprintf(msg, sizeof msg, "rcvp=%llu, rcvb=%llu, sentp=%llu, sentb=%llu",
             (unsigned long long)a->rcvp, (unsigned long long)a->rcvb,
             (unsigned long long)a->sentp, (unsigned long long)a->sentb);
    publish(c, key, klen, msg);
}

/* The allocation's member in its user's set, scored by its expiry. */
static void quota_member(struct cluster *c, const struct cluster_alloc *a, const char *cmd,
                         const char *score)
{
    char qkey[AUTH_MAX_USERNAME + CONF_STR + 64], sid[24];
    size_t qlen = cluster_quota_key(a->realm, a->realm_len, a->user, a->user_len, qkey, sizeof qkey);
    snprintf(sid, sizeof sid, "%018llu", (unsigned long long)a->sid);
    if (!qlen)
        return;
    if (score) {
        const char *zadd[] = { cmd, qkey, "XX", score, sid };
        size_t zl[] = { strlen(cmd), qlen, 2, strlen(score), strlen(sid) };
        cluster_send(c, 5, zadd, zl);
    } else {
        const char *zrem[] = { cmd, qkey, sid };
        size_t zl[] = { strlen(cmd), qlen, strlen(sid) };
        cluster_send(c, 3, zrem, zl);
    }
}

void cluster_alloc_status(struct cluster *c, const struct cluster_alloc *a, const char *status,
                          uint32_t lifetime)
{
    if (!cluster_up(c))
        return;
    char key[AUTH_MAX_USERNAME + 128], msg[64], ttl[16], score[24];
    size_t klen = alloc_key(a, "status", key, sizeof key);
    if (!klen)
        return;
    uint32_t real = lifetime / c->env.conf->time_scale + 1; /* TTL in real seconds */
    snprintf(msg, sizeof msg, "%s lifetime=%u", status, lifetime);
    snprintf(ttl, sizeof ttl, "%u", real);
    const char *set[] = { "SET", key, msg, "EX", ttl };
    size_t set_lens[] = { 3, klen, strlen(msg), 2, strlen(ttl) };
    cluster_send(c, 5, set, set_lens);
    publish(c, key, klen, msg);
    if (strcmp(status, "refreshed") == 0)
        traffic(c, a, "traffic");
    if (a->quota_shared) {
        snprintf(score, sizeof score, "%lld", (long long)time(NULL) + real);
        quota_member(c, a, "ZADD", score);
    }
}

void cluster_alloc_deleted(struct cluster *c, const struct cluster_alloc *a)
{
    if (!cluster_up(c))
        return;
    char key[AUTH_MAX_USERNAME + 128];
    size_t klen = alloc_key(a, "status", key, sizeof key);
    if (!klen)
        return;
    const char *del[] = { "DEL", key };
    size_t dl[] = { 3, klen };
    cluster_send(c, 2, del, dl);
    publish(c, key, klen, "deleted");
    traffic(c, a, "total_traffic");
    if (a->quota_shared)
        quota_member(c, a, "ZREM", NULL);
}
