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
#include "server/core/realm.h"

#define CLUSTER_CACHE_SLOTS 1024
#define CLUSTER_CACHE_USER (AUTH_MAX_USERNAME + 1)
#define CLUSTER_ORIGIN_SLOTS 256
#define CLUSTER_OAUTH_SLOTS 64
#define CLUSTER_ORIGIN_MAX 255 /* longer origins are not looked up */

/* What the cache knows about one user of one realm (positive or negative). */
struct cluster_cache_entry {
    uint64_t expires_ms;
    uint8_t realm;
    uint16_t user_len;
    char user[CLUSTER_CACHE_USER];
    bool negative;
    bool has_md5, has_sha256;
    uint8_t md5[16], sha256[32];
};

/* Redis's REST secrets of one realm, cached; owned by the cluster. */
struct cluster_secrets {
    char s[CONF_MAX_SECRETS][CONF_STR];
    size_t n;
    uint64_t expires_ms;
};

/* What the origin map says about one origin (realm "" : not in it). */
struct cluster_origin_entry {
    uint64_t expires_ms;
    uint16_t len;
    char origin[CLUSTER_ORIGIN_MAX];
    char realm[REALM_NAME_MAX + 1];
};

/* What Redis says about one kid (found: key; else not there). */
struct cluster_oauth_entry {
    uint64_t expires_ms;
    bool found;
    struct oauth_key key; /* key.kid is the entry's kid either way */
};

/* One poll of one realm limit: which realm it was for when asked, so that a
 * reply that comes after a reload changed the set is not misfiled. */
struct cluster_limit_ask {
    struct cluster *c;
    uint8_t realm, which;
    char name[REALM_NAME_MAX + 1];
    char logged[32]; /* the last bad value logged for it */
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
    cluster_origin_fn origin_done;
    cluster_oauth_fn oauth_done;
    void *arg;
    bool cancelled;
    int waiting;          /* replies outstanding */
    bool failed;          /* some reply missing: Redis trouble */
    /* keys: the question and what Redis said */
    unsigned realm;
    enum auth_alg alg;
    uint64_t now;
    bool want_secrets;
    bool has_key, has_password;
    char key_hex[80];
    char password[CONF_STR];
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    /* quota (and its realm) */
    uint64_t sid;
    bool granted;
    uint8_t realm_len;
    char realm_name[REALM_NAME_MAX + 1];
    /* origin: the realm the map names ("" none), and its Redis limits
     * when it is new to the worker (enum realm_limit bits in limits_set) */
    char origin_realm[REALM_NAME_MAX + 1];
    uint64_t origin_limits[3];
    uint8_t origin_limits_set;
    /* oauth: what the hash held */
    bool oauth_found;
    struct oauth_key oauth;
    size_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
};

/* Per-worker cluster state; owned by the worker (cluster_new/free). */
struct cluster {
    struct cluster_env env;
    struct redis_conn *redis;
    struct cluster_cache_entry cache[CLUSTER_CACHE_SLOTS];
    struct cluster_secrets *secrets[REALM_MAX]; /* by realm index, made on first answer */
    struct cluster_origin_entry origins[CLUSTER_ORIGIN_SLOTS];
    struct cluster_oauth_entry oauth[CLUSTER_OAUTH_SLOTS];
    struct cluster_limit_ask limit_asks[REALM_MAX][3];
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
/* Send the one command of a new question: 0, or -1 when it could not go
 * out (q is freed then, its answer never delivered). */
int cluster_ask_send(struct cluster_ask *q, redis_reply_fn fn, int argc, const char **argv,
                     const size_t *lens);
/* Shutdown: mark every question cancelled / free what is left. */
void cluster_asks_cancel_all(struct cluster *c);
void cluster_asks_free_all(struct cluster *c);
/* Fire-and-forget write; dropped while Redis is down. */
void cluster_send(struct cluster *c, int argc, const char **argv, const size_t *lens);

/* quota.c: a user's allocation set's key into buf; its length, or 0. */
size_t cluster_quota_key(const char *realm, size_t realm_len, const char *user, size_t len,
                         char *buf, size_t cap);
/* creds.c: forget every cached credential, secret and origin (reload). */
void cluster_cache_clear(struct cluster *c);
/* FNV-1a, for the caches' slots. */
uint32_t cluster_hash(const char *s, size_t n);
/* limits.c: a Redis value as a limit of at most max: 0 and *out, or -1. */
int cluster_limit_parse(const char *s, size_t len, uint64_t max, uint64_t *out);
/* limits.c: the three limit keys of realm into keys[] (for an MGET). */
void cluster_limit_keys(const char *realm, char keys[3][CONF_STR + 64], size_t lens[3]);
int cluster_limits_start(struct cluster *c);
void cluster_limits_stop(struct cluster *c);

#endif
