/*
 * cluster_int.h - what the parts of cluster/ share (cluster.c: the
 * connection, its state and the question handles; creds.c, quota.c,
 * publish.c, limits.c: one job each). Not for use outside server/cluster/.
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

enum cluster_ask_kind { CLUSTER_ASK_KEYS, CLUSTER_ASK_QUOTA };

/*
 * One question. Owned by the cluster (listed in c->asks) from its creation
 * until every Redis reply it waits for has come back; its asker holds the
 * pointer as a handle until the callback ran or it cancelled.
 */
struct cluster_ask {
    struct cluster_ask *next, *prev;
    struct cluster *c;
    enum cluster_ask_kind kind;
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

/* A new question listed in c->asks, or NULL (too many, out of memory). */
struct cluster_ask *cluster_ask_new(struct cluster *c, enum cluster_ask_kind kind,
                                    const char *user, size_t len);
/* One reply of q is in: when it was the last, answer (unless cancelled)
 * and free q. */
void cluster_ask_reply_done(struct cluster_ask *q);
/* Fire-and-forget write; dropped while Redis is down. */
void cluster_send(struct cluster *c, int argc, const char **argv, const size_t *lens);

/* quota.c: a user's allocation set's key into buf; its length, or 0. */
size_t cluster_quota_key(const struct cluster *c, const char *user, size_t len, char *buf,
                         size_t cap);
/* creds.c: deliver a keys question's answer and cache it. */
void cluster_creds_answer(struct cluster_ask *q);
/* quota.c: deliver a quota answer, or give an unwanted grant back. */
void cluster_quota_answer(struct cluster_ask *q);
/* limits.c: a Redis value as a limit of at most max: 0 and *out, or -1. */
int cluster_limit_parse(const char *s, size_t len, uint64_t max, uint64_t *out);
int cluster_limits_start(struct cluster *c);
void cluster_limits_stop(struct cluster *c);

#endif
