/*
 * shared.c - see shared.h. Every write here is fire-and-forget: a node that
 * cannot reach Redis relays exactly as before and only stops reporting.
 */
#include "server/shared.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/redis.h"
#include "server/alloc.h"
#include "server/creds.h"
#include "server/server.h"

const char shared_quota_script[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end "
    "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[5]) "
    "return 1";

size_t shared_quota_key(const struct worker *w, const char *user, size_t len, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "tern/realm/%s/user/", w->conf->realm);
    if (n < 0 || (size_t)n + len + 13 > cap)
        return 0;
    memcpy(buf + n, user, len);
    memcpy(buf + (size_t)n + len, "/allocations", 12);
    return (size_t)n + len + 12;
}

/* turn/user/<user>/allocation/<id>/<leaf> */
static size_t alloc_key(const struct alloc *a, const char *leaf, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "turn/user/");
    int m;
    if ((size_t)n + a->user_len + 64 > cap)
        return 0;
    memcpy(buf + n, a->user, a->user_len);
    m = snprintf(buf + (size_t)n + a->user_len, cap - (size_t)n - a->user_len,
                 "/allocation/%018llu/%s", (unsigned long long)a->sid, leaf);
    return (size_t)n + a->user_len + (size_t)m;
}

static void send_cmd(struct worker *w, int argc, const char **argv, const size_t *lens)
{
    struct redis_conn *r = creds_redis(w);
    if (r)
        redis_conn_command(r, NULL, NULL, argc, argv, lens);
}

void shared_quota_drop(struct worker *w, const char *user, size_t len, uint64_t sid)
{
    char qkey[AUTH_MAX_USERNAME + CONF_STR + 64], member[24];
    size_t qlen = shared_quota_key(w, user, len, qkey, sizeof qkey);
    snprintf(member, sizeof member, "%018llu", (unsigned long long)sid);
    const char *zrem[] = { "ZREM", qkey, member };
    size_t zl[] = { 4, qlen, strlen(member) };
    if (qlen)
        send_cmd(w, 3, zrem, zl);
}

static void publish(struct worker *w, const char *key, size_t klen, const char *msg)
{
    const char *argv[] = { "PUBLISH", key, msg };
    size_t lens[] = { 7, klen, strlen(msg) };
    send_cmd(w, 3, argv, lens);
}

static void traffic(struct alloc *a, const char *leaf, bool total)
{
    char key[AUTH_MAX_USERNAME + 128], msg[160];
    size_t klen = alloc_key(a, leaf, key, sizeof key);
    if (!klen)
        return;
    /* coturn's counters: received from the client, sent to it */
    uint64_t rp = a->pkts_out, rb = a->bytes_out, sp = a->pkts_in, sb = a->bytes_in;
    if (!total) {
        rp -= a->rep_pkts_out;
        rb -= a->rep_bytes_out;
        sp -= a->rep_pkts_in;
        sb -= a->rep_bytes_in;
        a->rep_pkts_out = a->pkts_out;
        a->rep_bytes_out = a->bytes_out;
        a->rep_pkts_in = a->pkts_in;
        a->rep_bytes_in = a->bytes_in;
    }
    snprintf(msg, sizeof msg, "rcvp=%llu, rcvb=%llu, sentp=%llu, sentb=%llu",
             (unsigned long long)rp, (unsigned long long)rb, (unsigned long long)sp,
             (unsigned long long)sb);
    publish(a->w, key, klen, msg);
}

void shared_alloc_status(struct alloc *a, const char *status, uint32_t lifetime)
{
    struct worker *w = a->w;
    if (!creds_redis_up(w))
        return;
    char key[AUTH_MAX_USERNAME + 128], msg[64], ttl[16], score[24];
    size_t klen = alloc_key(a, "status", key, sizeof key);
    if (!klen)
        return;
    uint32_t real = lifetime / w->conf->time_scale + 1; /* TTL in real seconds */
    snprintf(msg, sizeof msg, "%s lifetime=%u", status, lifetime);
    snprintf(ttl, sizeof ttl, "%u", real);
    const char *set[] = { "SET", key, msg, "EX", ttl };
    size_t set_lens[] = { 3, klen, strlen(msg), 2, strlen(ttl) };
    send_cmd(w, 5, set, set_lens);
    publish(w, key, klen, msg);
    if (strcmp(status, "refreshed") == 0)
        traffic(a, "traffic", false);
    if (a->quota_shared) {
        /* keep the member's score at the allocation's expiry */
        char qkey[AUTH_MAX_USERNAME + CONF_STR + 64], sid[24];
        size_t qlen = shared_quota_key(w, a->user, a->user_len, qkey, sizeof qkey);
        snprintf(score, sizeof score, "%lld", (long long)time(NULL) + real);
        snprintf(sid, sizeof sid, "%018llu", (unsigned long long)a->sid);
        const char *zadd[] = { "ZADD", qkey, "XX", score, sid };
        size_t zl[] = { 4, qlen, 2, strlen(score), strlen(sid) };
        if (qlen)
            send_cmd(w, 5, zadd, zl);
    }
}

void shared_alloc_deleted(struct alloc *a)
{
    struct worker *w = a->w;
    if (!creds_redis_up(w))
        return;
    char key[AUTH_MAX_USERNAME + 128];
    size_t klen = alloc_key(a, "status", key, sizeof key);
    if (!klen)
        return;
    const char *del[] = { "DEL", key };
    size_t dl[] = { 3, klen };
    send_cmd(w, 2, del, dl);
    publish(w, key, klen, "deleted");
    traffic(a, "total_traffic", true);
    if (a->quota_shared) {
        char qkey[AUTH_MAX_USERNAME + CONF_STR + 64], sid[24];
        size_t qlen = shared_quota_key(w, a->user, a->user_len, qkey, sizeof qkey);
        snprintf(sid, sizeof sid, "%018llu", (unsigned long long)a->sid);
        const char *zrem[] = { "ZREM", qkey, sid };
        size_t zl[] = { 4, qlen, strlen(sid) };
        if (qlen)
            send_cmd(w, 3, zrem, zl);
    }
}

/* --- per-realm limits ---------------------------------------------------- */

static void on_limit(struct redisReply *r, void *arg, int which)
{
    struct worker *w = arg;
    const struct conf *c = w->conf;
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        char tmp[32];
        size_t n = r->len < 31 ? (size_t)r->len : 31;
        memcpy(tmp, r->str, n);
        tmp[n] = 0;
        char *e;
        v = strtoll(tmp, &e, 10);
        if (*e || v < 0)
            v = -1;
    }
    if (!r)
        return; /* Redis gone: keep what we had */
    switch (which) {
    case 0: w->limits.max_bps = v >= 0 ? (uint64_t)v : c->max_bps; break;
    case 1: w->limits.user_quota = v >= 0 ? (unsigned)v : c->user_quota; break;
    default: w->limits.total_quota = v >= 0 ? (unsigned)v : c->total_quota; break;
    }
}

static void on_max_bps(struct redisReply *r, void *arg) { on_limit(r, arg, 0); }
static void on_user_quota(struct redisReply *r, void *arg) { on_limit(r, arg, 1); }
static void on_total_quota(struct redisReply *r, void *arg) { on_limit(r, arg, 2); }

static void poll_limits(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    struct redis_conn *r = creds_redis(w);
    if (!redis_conn_up(r))
        return;
    static const char *const leaf[] = { "max-bps", "user-quota", "total-quota" };
    static const redis_reply_fn fns[] = { on_max_bps, on_user_quota, on_total_quota };
    for (int i = 0; i < 3; i++) {
        char key[CONF_STR + 64];
        int n = snprintf(key, sizeof key, "turn/realm/%s/%s", w->conf->realm, leaf[i]);
        const char *argv[] = { "GET", key };
        size_t lens[] = { 3, (size_t)n };
        redis_conn_command(r, fns[i], w, 2, argv, lens);
    }
}

int shared_start(struct worker *w)
{
    const struct conf *c = w->conf;
    w->limits = (struct shared_limits){ c->max_bps, c->user_quota, c->total_quota };
    if (!creds_redis(w))
        return 0;
    w->limits_timer = event_new(w->base, -1, EV_PERSIST, poll_limits, w);
    struct timeval tv = { .tv_sec = c->cache_ttl };
    if (!w->limits_timer || event_add(w->limits_timer, &tv) < 0)
        return -1;
    /* and once right away, as soon as the connection is up */
    struct timeval soon = { .tv_sec = 0, .tv_usec = 200000 };
    event_base_once(w->base, -1, EV_TIMEOUT, poll_limits, w, &soon);
    return 0;
}

void shared_stop(struct worker *w)
{
    if (w->limits_timer)
        event_free(w->limits_timer);
    w->limits_timer = NULL;
}
