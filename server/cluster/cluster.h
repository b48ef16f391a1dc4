/*
 * cluster.h - server/cluster: what ternd nodes share through Redis, over
 * one connection per worker (redis.h). Optional: without auth.redis there is
 * no cluster, and while Redis is down every question here fails at once so
 * that the caller decides locally; nothing here ever blocks a worker.
 *
 *   credentials  users and REST secrets in coturn's schema, behind a short
 *                per-worker positive and negative cache (auth.cache_ttl):
 *     turn/realm/<realm>/user/<user>/key       hex MD5 key, or 64 hex: SHA-256
 *     turn/realm/<realm>/user/<user>/password  plain password (when no key)
 *     turn/realm/<realm>/secret                set of TURN REST shared secrets
 *   user quota   tern/realm/<realm>/user/<user>/allocations, a sorted set of
 *                live allocation ids scored by expiry; a Lua script drops
 *                expired members, counts and adds atomically, so a crashed
 *                node's allocations drain by themselves
 *   statistics   coturn's layout: turn/user/<user>/allocation/<id>/status
 *                ("new lifetime=N", "refreshed lifetime=N", TTL = lifetime)
 *                published on a channel of the same name, "deleted" at the
 *                end, traffic on .../traffic and .../total_traffic
 *   realm limits turn/realm/<realm>/max-bps, user-quota and total-quota,
 *                for every realm the worker knows, polled every
 *                auth.cache_ttl seconds; they override the configured
 *                limits while set (written into the worker's realm set)
 *   oauth keys   turn/oauth/kid/<kid>, a hash of ikm_key, as_rs_alg,
 *                timestamp, lifetime and realm (coturn's RFC 7635 layout),
 *                cached like credentials
 *   origin map   turn/origin/<origin> -> realm name (coturn's multi-tenant
 *                layout), cached like credentials; a realm named here that
 *                the configuration lacks is learned into the realm set
 *
 * Depends on core/ only. Questions (credentials, quota) are asynchronous: the
 * caller gets a handle and a callback. The callback runs from inside the
 * Redis reply, once, with the answer as its argument, and never after the
 * handle was cancelled; the caller must not re-enter its own request
 * handling from it (turn/ moves the answer to its ready list). A handle is
 * valid until its callback has run or it was cancelled.
 *
 * Errors: 0 or -1 (the question could not be asked: Redis down, too many
 * waiting); answers carry their own status.
 */
#ifndef TERN_SERVER_CLUSTER_CLUSTER_H
#define TERN_SERVER_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

struct event_base;
struct conf;
struct worker_stats;
struct realm_set;
struct redis_url;

#define CLUSTER_MAX_KEYS 4       /* candidate keys per user (REST: one per secret) */
#define CLUSTER_MAX_ASKS 1024    /* questions waiting per worker */

/* Borrowed pointers, all outliving the cluster. */
struct cluster_env {
    int worker_id;
    struct event_base *base;
    const struct conf *conf;
    const struct redis_url *url;
    struct worker_stats *stats;   /* redis_* gauges and counters */
    struct realm_set *realms;     /* limits written, realms learned */
};

struct cluster;
struct cluster_ask;

/* NULL on out-of-memory. Free cancels nothing: every handle must have been
 * cancelled or answered (their callbacks would not run anyway). */
struct cluster *cluster_new(const struct cluster_env *env);
void cluster_free(struct cluster *c);
/* A new configuration (reload), on the worker's thread: another Redis is
 * connected to (its questions fail), another realm empties the cache.
 * conf and url are borrowed as in cluster_env. */
void cluster_reconfigure(struct cluster *c, const struct conf *conf, const struct redis_url *url);
/* Connected to Redis now. */
bool cluster_up(const struct cluster *c);

/* --- credentials -------------------------------------------------------- */

enum cluster_keys_status {
    CLUSTER_KEYS_FOUND,   /* keys[0..n) are candidates */
    CLUSTER_KEYS_UNKNOWN, /* no such user, no secret gives a key */
    CLUSTER_KEYS_STALE,   /* an expired REST user name */
    CLUSTER_KEYS_MISS,    /* not cached: ask (cluster_keys_ask) */
    CLUSTER_KEYS_FAILED,  /* Redis down or did not answer */
};

struct cluster_keys {
    enum cluster_keys_status status;
    int n;
    uint8_t key[CLUSTER_MAX_KEYS][32];
};

/* What the cache says about user of realm (an index of env.realms) under
 * alg at unix time now. */
void cluster_keys_cached(struct cluster *c, unsigned realm, const char *user, size_t len,
                         enum auth_alg alg, uint64_t now, struct cluster_keys *out);
typedef void (*cluster_keys_fn)(void *arg, const struct cluster_keys *k);
/* Ask Redis (the answer also goes into the cache). NULL: cannot ask. */
struct cluster_ask *cluster_keys_ask(struct cluster *c, unsigned realm, const char *user,
                                     size_t len, enum auth_alg alg, uint64_t now,
                                     cluster_keys_fn done, void *arg);

/* --- RFC 7635 keys ---------------------------------------------------------- */

struct cluster_oauth {
    enum cluster_keys_status status; /* FOUND, UNKNOWN, MISS or FAILED */
    struct oauth_key key;            /* when FOUND */
};

void cluster_oauth_cached(struct cluster *c, const char *kid, size_t len,
                          struct cluster_oauth *out);
typedef void (*cluster_oauth_fn)(void *arg, const struct cluster_oauth *o);
/* NULL: cannot ask. */
struct cluster_ask *cluster_oauth_ask(struct cluster *c, const char *kid, size_t len,
                                      cluster_oauth_fn done, void *arg);

/* --- the origin map ----------------------------------------------------- */

enum cluster_origin_status {
    CLUSTER_ORIGIN_FOUND,  /* realm is the index of the realm it names */
    CLUSTER_ORIGIN_NONE,   /* not in the map (or names no usable realm) */
    CLUSTER_ORIGIN_MISS,   /* not cached: ask (cluster_origin_ask) */
    CLUSTER_ORIGIN_FAILED, /* Redis down or did not answer */
};

struct cluster_origin {
    enum cluster_origin_status status;
    unsigned realm;
};

void cluster_origin_cached(struct cluster *c, const char *origin, size_t len,
                           struct cluster_origin *out);
typedef void (*cluster_origin_fn)(void *arg, const struct cluster_origin *o);
/* NULL: cannot ask. */
struct cluster_ask *cluster_origin_ask(struct cluster *c, const char *origin, size_t len,
                                       cluster_origin_fn done, void *arg);

/* --- cross-node user quota ---------------------------------------------- */

enum cluster_quota_status { CLUSTER_QUOTA_GRANTED, CLUSTER_QUOTA_FULL, CLUSTER_QUOTA_FAILED };
typedef void (*cluster_quota_fn)(void *arg, enum cluster_quota_status status);
/* Ask to add allocation sid (living lifetime_s real seconds) to the user's
 * set if it has fewer than limit members. A grant whose question was
 * cancelled before the answer came is given back here, so that no member
 * outlives the allocation that would have consumed it. NULL: cannot ask. */
struct cluster_ask *cluster_quota_ask(struct cluster *c, const char *realm, size_t realm_len,
                                      const char *user, size_t len, uint64_t sid,
                                      uint32_t lifetime_s, unsigned limit,
                                      cluster_quota_fn done, void *arg);
/* Give back a granted member that no allocation consumed. */
void cluster_quota_release(struct cluster *c, const char *realm, size_t realm_len,
                           const char *user, size_t len, uint64_t sid);

/* The question's callback will not run; its resources go when Redis answers. */
void cluster_ask_cancel(struct cluster_ask *q);

/* --- statistics ----------------------------------------------------------- */

/* An allocation as statistics see it. rcv*: from the client (to peers),
 * sent*: to the client, since the last report (or in total at the end). */
struct cluster_alloc {
    const char *user;
    size_t user_len;
    const char *realm;
    size_t realm_len;
    uint64_t sid;
    bool quota_shared; /* its member in the user's set follows its expiry */
    uint64_t rcvp, rcvb, sentp, sentb;
};

/* "new" or "refreshed" with its lifetime (scaled seconds); refreshed also
 * publishes the traffic since the last report. */
void cluster_alloc_status(struct cluster *c, const struct cluster_alloc *a, const char *status,
                          uint32_t lifetime);
/* Deleted: status key removed, total traffic published, quota member gone. */
void cluster_alloc_deleted(struct cluster *c, const struct cluster_alloc *a);

#endif
