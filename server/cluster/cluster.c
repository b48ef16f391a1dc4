/*
 * cluster.c - see cluster.h: the cluster of a worker put together (its
 * Redis connection, the realm-limits poll), and the connection's state in
 * the log and the metrics.
 */
#include "server/cluster/cluster_int.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/core.h"
#include "server/core/log.h"
#include "server/core/stats.h"

#define GAUGE_MS 500

/* Redis up/down, logged once per process per transition: every worker has
 * its own connection and they change state together. */
static atomic_int redis_logged = -1;

static void on_redis_state(void *arg, bool up, const char *why)
{
    struct cluster *c = arg;
    atomic_store_explicit(&c->env.stats->redis_up, up, memory_order_relaxed);
    if (atomic_exchange(&redis_logged, up) == up)
        return;
    if (up)
        log_info("redis: connected to %s", c->env.conf->redis);
    else
        log_warn("redis: unreachable (%s: %s); serving static users and cached credentials, "
                 "retrying with backoff",
                 c->env.conf->redis, why ? why : "down");
}

static void on_gauge_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cluster *c = arg;
    atomic_store_explicit(&c->env.stats->redis_rtt_us, redis_conn_rtt_us(c->redis),
                          memory_order_relaxed);
}

struct cluster *cluster_new(const struct cluster_env *env)
{
    struct cluster *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->env = *env;
    c->redis = redis_conn_new(env->base, env->url, on_redis_state, c);
    c->gauge_timer = event_new(env->base, -1, EV_PERSIST, on_gauge_timer, c);
    struct timeval tv = { .tv_sec = 0, .tv_usec = GAUGE_MS * 1000 };
    if (!c->redis || !c->gauge_timer || event_add(c->gauge_timer, &tv) < 0 ||
        cluster_limits_start(c) < 0) {
        cluster_free(c);
        return NULL;
    }
    return c;
}

void cluster_reconfigure(struct cluster *c, const struct conf *conf, const struct redis_url *url)
{
    /* Realm indexes were made anew (realm.h): what is cached by index goes.
     * The realm set holds the configured limits until the next poll. */
    c->env.conf = conf;
    cluster_cache_clear(c);
    c->env.url = url;
    redis_conn_set_url(c->redis, url);
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    cluster_limits_stop(c);
    cluster_asks_cancel_all(c); /* no answers while shutting down */
    /* Freeing the connection completes every command with a NULL reply,
     * which frees the questions. */
    redis_conn_free(c->redis);
    cluster_asks_free_all(c);
    if (c->gauge_timer)
        event_free(c->gauge_timer);
    cluster_cache_clear(c);
    free(c);
}
