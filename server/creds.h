/*
 * creds.h - where TURN keys come from: the static store (auth/), then, when
 * auth.redis is set, Redis in coturn's schema behind a short per-worker
 * positive and negative cache (auth.cache_ttl seconds).
 *
 * A lookup that needs Redis never blocks: the request is parked (copied),
 * the worker goes on serving others, and the request is handled again when
 * Redis answers - or answered 500 if Redis is down or does not answer in
 * CREDS_TIMEOUT_MS. Keys read (coturn's schema):
 *   turn/realm/<realm>/user/<user>/key        hex MD5 key, or 64 hex: SHA-256
 *   turn/realm/<realm>/user/<user>/password   plain password (when no key)
 *   turn/realm/<realm>/secret                 set of TURN REST shared secrets
 */
#ifndef TERN_SERVER_CREDS_H
#define TERN_SERVER_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/auth.h"

struct worker;
struct turn_client;
struct redis_conn;

#define CREDS_TIMEOUT_MS 1000
#define CREDS_MAX_PENDING 256

enum creds_result {
    CREDS_FOUND = 1,       /* keys filled, *n > 0 */
    CREDS_UNKNOWN = 0,     /* no such user (401) */
    CREDS_STALE = -1,      /* expired REST credential (401) */
    CREDS_PENDING = -2,    /* ask Redis: park the request (creds_park) */
    CREDS_UNAVAILABLE = -3 /* Redis needed but down (500) */
};

struct creds_worker;

/* Per-worker state; NULL redis_url: static users only. */
struct creds_worker *creds_new(struct worker *w);
void creds_free(struct creds_worker *c);

/* Keys for user under alg at unix time now. See enum creds_result. */
enum creds_result creds_lookup(struct worker *w, const char *user, size_t len,
                               enum auth_alg alg, uint64_t now, uint8_t keys[][32], size_t max,
                               int *n);

/* Park a request whose credentials are being fetched; it is handled again
 * (turn_handle) when they arrive. 0, or -1 if too many are parked. */
int creds_park(struct worker *w, const struct turn_client *tc, const struct sockaddr *client,
               const uint8_t *msg, size_t len, const char *user, size_t user_len);

/* Park an Allocate while the cross-node user quota is asked (shared.h):
 * sid is the allocation id to add to the user's set. 0 or -1. */
int creds_park_quota(struct worker *w, const struct turn_client *tc, const struct sockaddr *client,
                     const uint8_t *msg, size_t len, const char *user, size_t user_len,
                     uint64_t sid, uint32_t lifetime_s);
/* While a parked Allocate is re-run: -1 no decision here, 0 over quota,
 * 1 granted (*sid: the id that was added), 2 Redis failed: decide locally. */
int creds_quota_decision(const struct worker *w, uint64_t *sid);

/* A connection is going away: its parked requests get no answer. */
void creds_forget_conn(struct worker *w, const void *conn);

/* For metrics: Redis connected, and last round trip in microseconds. */
bool creds_redis_up(const struct worker *w);
unsigned long creds_redis_rtt_us(const struct worker *w);
/* The worker's Redis connection (NULL without auth.redis), for other users
 * of the same connection (statistics, shared quotas). */
struct redis_conn *creds_redis(const struct worker *w);

#endif
