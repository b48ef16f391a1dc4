/*
 * limits.c - per-realm limits from Redis (cluster.h), in coturn's keys
 * turn/realm/<realm>/max-bps, user-quota and total-quota, polled every
 * auth.cache_ttl seconds for every realm of the worker's realm set; the
 * configuration's value applies while a key is unset.
 *
 * A value is taken only if it is a decimal integer that fits its field
 * (max-bps: 64 bits; quotas: 32 bits): anything else, 4294967296 for a
 * quota among them, would wrap to some other limit, 0 (unlimited) included.
 * It is ignored with one log line per key and value.
 */
#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cluster/cluster_int.h"
#include "server/core/core.h"
#include "server/core/log.h"

enum { LIMIT_MAX_BPS, LIMIT_USER_QUOTA, LIMIT_TOTAL_QUOTA, N_LIMITS };

static const char *const limit_leaf[N_LIMITS] = { "max-bps", "user-quota", "total-quota" };

/*
 * A Redis value as a limit: 0 and *out set, or -1 when it is not one (the
 * caller keeps the configured value). max is the field's largest value.
 */
int cluster_limit_parse(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    for (size_t i = 0; i < len; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            return -1;
    errno = 0;
    unsigned long long v = strtoull(tmp, NULL, 10);
    if (errno == ERANGE || v > max)
        return -1;
    *out = v;
    return 0;
}

void cluster_limit_keys(const char *realm, char keys[3][CONF_STR + 64], size_t lens[3])
{
    for (int i = 0; i < N_LIMITS; i++)
        lens[i] = (size_t)snprintf(keys[i], CONF_STR + 64, "turn/realm/%s/%s", realm, limit_leaf[i]);
}

static void on_limit(struct redisReply *r, void *arg)
{
    struct cluster_limit_ask *la = arg;
    struct cluster *c = la->c;
    struct realm_set *rs = c->env.realms;
    /* Redis gone: keep what we had; the set changed since: not ours. */
    if (!r || la->realm >= rs->n || strcmp(rs->r[la->realm].name, la->name) != 0)
        return;
    struct realm *rl = &rs->r[la->realm];
    uint64_t v = 0, max = la->which == LIMIT_MAX_BPS ? UINT64_MAX : UINT_MAX;
    bool set = false;
    if (r->type == REDIS_REPLY_STRING) {
        set = cluster_limit_parse(r->str, (size_t)r->len, max, &v) == 0;
        if (!set && c->env.worker_id == 0) {
            char shown[32];
            snprintf(shown, sizeof shown, "%.*s", r->len < 31 ? (int)r->len : 31, r->str);
            if (strcmp(shown, la->logged) != 0) {
                memcpy(la->logged, shown, sizeof shown);
                log_warn("redis: turn/realm/%s/%s = \"%s\" is not a limit (0 to %llu); "
                         "using the configured value",
                         rl->name, limit_leaf[la->which], shown, (unsigned long long)max);
            }
        }
    }
    static const enum realm_limit bit[N_LIMITS] = { REALM_MAX_BPS, REALM_USER_QUOTA,
                                                    REALM_TOTAL_QUOTA };
    realm_set_limit(rl, bit[la->which], set, v);
}

static void poll_limits(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cluster *c = arg;
    struct timeval tv = { .tv_sec = c->env.conf->cache_ttl };
    event_add(c->limits_timer, &tv);
    if (!cluster_up(c))
        return;
    const struct realm_set *rs = c->env.realms;
    for (unsigned ri = 0; ri < rs->n; ri++) {
        for (int i = 0; i < N_LIMITS; i++) {
            struct cluster_limit_ask *la = &c->limit_asks[ri][i];
            if (strcmp(la->name, rs->r[ri].name) != 0) {
                memcpy(la->name, rs->r[ri].name, sizeof la->name);
                la->logged[0] = 0;
            }
            la->c = c;
            la->realm = (uint8_t)ri;
            la->which = (uint8_t)i;
            char key[CONF_STR + 64];
            int n = snprintf(key, sizeof key, "turn/realm/%s/%s", rs->r[ri].name, limit_leaf[i]);
            const char *argv[] = { "GET", key };
            size_t lens[] = { 3, (size_t)n };
            redis_conn_command(c->redis, on_limit, la, 2, argv, lens);
        }
    }
}

int cluster_limits_start(struct cluster *c)
{
    /* First soon, as the connection comes up; then every cache_ttl. */
    c->limits_timer = evtimer_new(c->env.base, poll_limits, c);
    struct timeval soon = { .tv_sec = 0, .tv_usec = 200000 };
    return c->limits_timer && event_add(c->limits_timer, &soon) == 0 ? 0 : -1;
}

void cluster_limits_stop(struct cluster *c)
{
    if (c->limits_timer)
        event_free(c->limits_timer);
    c->limits_timer = NULL;
}
