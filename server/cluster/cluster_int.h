/*
 * cluster_int.h - what the parts of cluster/ share: cluster.c puts the
 * cluster together; creds.c, quota.c, publish.c and limits.c do one job
 * each over ask.c (question handles, the up state, plain writes) and
 * redis.c (the connection). Not for use outside server/cluster/.
 */
#ifndef TERN_SERVER_CLUSTER_CLUSTER_INT_H
#define TERN_SERVER_CLUSTER_CLUSTER_INT_H

#include "conf/conf.h"
#include "server/cluster/cluster.h"
#include "server/cluster/redis.h"

#define CLUSTER_CACHE_SLOTS 1024
#define CLUSTER_CACHE_USER (AUTH_MAX_USERNAME + 1)

/* What the cache knows about one user (positive or negative). */
struct cluster_cache_entry {
    uint64_t expires_ms;
    uint16_t user_len;
    char user[CLUSTER_CACHE_USER];
    bool negative;
    bool has_md5, has_sha256;
    uint8_t md5[16], sha256[32];
};

/*
 * One question. Owned by the cluster (listed in c->asks) from its creation
 * until every Redis reply it waits for has come back; its asker holds the
 * pointer as a handle until the callback ran or it cancelled.
 */
struct cluster_ask {
    struct cluster_ask *next, *prev;
    struct cluster *c;
    void (*answer)(struct cluster_ask *q); /* of the part that asked */
    cluster_keys_fn keys_done;
    cluster_quota_fn quota_done;
    void *arg;
    bool cancelled;
    int waiting;          /* replies outstanding */
    bool failed;          /* some reply missing: Redis trouble */
    /* keys: the question and what Redis said */
    enum auth_alg alg;
    uint64_t now;
    bool want_secrets;
    bool has_key, has_password;
    char key_hex[80];
    char password[CONF_STR];
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    /* quota */
    uint64_t sid;
    bool granted;
    size_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
};

/* Per-worker cluster state; owned by the worker (cluster_new/free). */
struct cluster {
    struct cluster_env env;
    struct redis_conn *redis;
    struct cluster_cache_entry cache[CLUSTER_CACHE_SLOTS];
    char secrets[CONF_MAX_SECRETS][CONF_STR]; /* Redis's REST secrets, cached */
    size_t n_secrets;
    uint64_t secrets_expires_ms;
    struct cluster_ask *asks;
    unsigned n_asks;
    struct event *gauge_timer; /* redis round trip into the stats */
    struct event *limits_timer;
};

/* ask.c: a new question listed in c->asks, answered by answer(q) when its
 * last reply is in (answer checks q->cancelled); NULL if Redis is down or
 * too many wait. */
struct cluster_ask *cluster_ask_new(struct cluster *c, void (*answer)(struct cluster_ask *q),
                                    const char *user, size_t len);
/* One reply of q is in: when it was the last, answer and free q. */
void cluster_ask_reply_done(struct cluster_ask *q);
/* Shutdown: mark every question cancelled / free what is left. */
void cluster_asks_cancel_all(struct cluster *c);
void cluster_asks_free_all(struct cluster *c);
/* Fire-and-forget write; dropped while Redis is down. */
void cluster_send(struct cluster *c, int argc, const char **argv, const size_t *lens);

/* quota.c: a user's allocation set's key into buf; its length, or 0. */
size_t cluster_quota_key(const struct cluster *c, const char *user, size_t len, char *buf,
                         size_t cap);
/* limits.c: a Redis value as a limit of at most max: 0 and *out, or -1. */
int cluster_limit_parse(const char *s, size_t len, uint64_t max, uint64_t *out);
int cluster_limits_start(struct cluster *c);
void cluster_limits_stop(struct cluster *c);

#endif
