/*
 * quota.c - the user quota across nodes (cluster.h).
 *
 * A member added by the script is "consumed" by the allocation it was asked
 * for, which keeps its score at the allocation's expiry and removes it at
 * the end (publish.c). Every other grant is given back at once: one whose
 * asker went away or stopped waiting (cancelled), and one the asker could
 * not use (cluster_quota_release). Otherwise a grant would count against
 * the user until its score expired, up to limits.max_lifetime later.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/cluster/cluster_int.h"
#include "server/core/core.h"

static const char quota_script[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end "
    "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[5]) "
    "return 1";

/* tern/realm/<realm>/user/<user>/allocations into buf; its length, 0 if
 * it does not fit. */
size_t cluster_quota_key(const char *realm, size_t realm_len, const char *user, size_t len,
                         char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "tern/realm/%.*s/user/", (int)realm_len, realm);
    if (n < 0 || (size_t)n + len + 13 > cap)
        return 0;
    memcpy(buf + n, user, len);
    memcpy(buf + (size_t)n + len, "/allocations", 12);
    return (size_t)n + len + 12;
}

void cluster_quota_release(struct cluster *c, const char *realm, size_t realm_len,
                           const char *user, size_t len, uint64_t sid)
{
    char qkey[AUTH_MAX_USERNAME + CONF_STR + 64], member[24];
    size_t qlen = cluster_quota_key(realm, realm_len, user, len, qkey, sizeof qkey);
    snprintf(member, sizeof member, "%018llu", (unsigned long long)sid);
    const char *zrem[] = { "ZREM", qkey, member };
    size_t zl[] = { 4, qlen, strlen(member) };
    if (qlen)
        cluster_send(c, 3, zrem, zl);
}

/* Deliver a quota answer, or give an unwanted grant back. */
static void quota_answer(struct cluster_ask *q)
{
    if (q->cancelled || !q->quota_done) {
        if (q->granted)
            cluster_quota_release(q->c, q->realm_name, q->realm_len, q->user, q->user_len,
                                  q->sid);
        return;
    }
    q->quota_done(q->arg, q->failed    ? CLUSTER_QUOTA_FAILED
                          : q->granted ? CLUSTER_QUOTA_GRANTED
                                       : CLUSTER_QUOTA_FULL);
}

static void on_quota(struct redisReply *r, void *arg)
{
    struct cluster_ask *q = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        q->failed = true;
    else
        q->granted = r->integer == 1;
    cluster_ask_reply_done(q);
}

struct cluster_ask *cluster_quota_ask(struct cluster *c, const char *realm, size_t realm_len,
                                      const char *user, size_t len, uint64_t sid,
                                      uint32_t lifetime_s, unsigned limit,
                                      cluster_quota_fn done, void *arg)
{
    char key[AUTH_MAX_USERNAME + CONF_STR + 64];
    size_t klen = cluster_quota_key(realm, realm_len, user, len, key, sizeof key);
    if (!klen || realm_len > REALM_NAME_MAX)
        return NULL;
    struct cluster_ask *q = cluster_ask_new(c, quota_answer, user, len);
    if (!q)
        return NULL;
    q->sid = sid;
    memcpy(q->realm_name, realm, realm_len);
    q->realm_len = (uint8_t)realm_len;
    char now[24], lim[16], score[24], member[24], ttl[16];
    time_t t = time(NULL);
    snprintf(now, sizeof now, "%lld", (long long)t);
    snprintf(lim, sizeof lim, "%u", limit);
    snprintf(score, sizeof score, "%lld", (long long)t + lifetime_s);
    snprintf(member, sizeof member, "%018llu", (unsigned long long)sid);
    snprintf(ttl, sizeof ttl, "%u", lifetime_s + 60);
    const char *argv[] = { "EVAL", quota_script, "1", key, now, lim, score, member, ttl };
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    lens[3] = klen;
    if (cluster_ask_send(q, on_quota, 9, argv, lens) < 0)
        return NULL;
    q->quota_done = done;
    q->arg = arg;
    return q;
}
