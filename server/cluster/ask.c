/*
 * ask.c - the lifecycle of the cluster's questions (cluster.h), and the two
 * things every part of cluster/ uses: is Redis up, and a fire-and-forget
 * write.
 *
 * A question is answered when its last reply is in, by the function of the
 * part that asked it (creds.c, quota.c). Cancelling only marks it: the
 * replies still arrive (Redis cannot be told to forget a command), and the
 * question is freed then, so a reply never reaches freed memory and a
 * cancelled asker never hears back.
 */
#include <stdlib.h>
#include <string.h>

#include "server/cluster/cluster_int.h"

bool cluster_up(const struct cluster *c)
{
    return c && redis_conn_up(c->redis);
}

struct cluster_ask *cluster_ask_new(struct cluster *c, void (*answer)(struct cluster_ask *q),
                                    const char *user, size_t len)
{
    if (!cluster_up(c) || c->n_asks >= CLUSTER_MAX_ASKS || len > AUTH_MAX_USERNAME)
        return NULL;
    struct cluster_ask *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->c = c;
    q->answer = answer;
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
    q->answer(q);
    ask_free(q);
}

int cluster_ask_send(struct cluster_ask *q, redis_reply_fn fn, int argc, const char **argv,
                     const size_t *lens)
{
    q->waiting = 1;
    if (redis_conn_command(q->c->redis, fn, q, argc, argv, lens) == 0)
        return 0;
    q->failed = true;
    q->cancelled = true;
    cluster_ask_reply_done(q);
    return -1;
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

void cluster_asks_cancel_all(struct cluster *c)
{
    for (struct cluster_ask *q = c->asks; q; q = q->next)
        q->cancelled = true;
}

void cluster_asks_free_all(struct cluster *c)
{
    while (c->asks)
        ask_free(c->asks);
}
