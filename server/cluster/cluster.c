/*
 * cluster.c - see cluster.h: the worker's Redis connection, its state in the
 * log and the metrics, and the lifecycle of questions.
 *
 * A question is answered when its last reply is in. Cancelling only marks
 * it: the replies still arrive (Redis cannot be told to forget a command),
 * and the question is freed then, so a reply never reaches freed memory and
 * a cancelled asker never hears back.
 */
#include "server/cluster/cluster_int.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    cluster_limits_stop(c);
    for (struct cluster_ask *q = c->asks; q; q = q->next)
        q->cancelled = true; /* no answers while shutting down */
    /* Freeing the connection completes every command with a NULL reply,
     * which frees the questions. */
    redis_conn_free(c->redis);
    while (c->asks) {
        struct cluster_ask *q = c->asks;
        c->asks = q->next;
        free(q);
    }
    if (c->gauge_timer)
        event_free(c->gauge_timer);
    free(c);
}

bool cluster_up(const struct cluster *c)
{
    return c && redis_conn_up(c->redis);
}

struct cluster_ask *cluster_ask_new(struct cluster *c, enum cluster_ask_kind kind,
                                    const char *user, size_t len)
{
    if (!cluster_up(c) || c->n_asks >= CLUSTER_MAX_ASKS || len > AUTH_MAX_USERNAME)
        return NULL;
    struct cluster_ask *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->c = c;
    q->kind = kind;
    memcpy(q->user, user, len);
    q->user_len = len;
    q->next = c->asks;
    if (c->asks)
        c->asks->prev = q;
    c->asks = q;
    c->n_asks++;
    return q;
}

static void ask_free(struct cluster_ask *q)
{
    struct cluster *c = q->c;
    if (q->prev)
        q->prev->next = q->next;
    else
        c->asks = q->next;
    if (q->next)
        q->next->prev = q->prev;
    c->n_asks--;
    free(q);
}

void cluster_ask_reply_done(struct cluster_ask *q)
{
    if (--q->waiting > 0)
        return;
    if (q->kind == CLUSTER_ASK_KEYS)
        cluster_creds_answer(q);
    else
        cluster_quota_answer(q);
    ask_free(q);
}

void cluster_ask_cancel(struct cluster_ask *q)
{
    if (q)
        q->cancelled = true;
}

void cluster_send(struct cluster *c, int argc, const char **argv, const size_t *lens)
{
    if (cluster_up(c))
        redis_conn_command(c->redis, NULL, NULL, argc, argv, lens);
}
