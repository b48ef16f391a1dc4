/*
 * shared.h - state shared across ternd nodes through Redis (optional; all
 * of it is skipped while Redis is down, and nothing here blocks a worker).
 *
 * - Allocation events in coturn's statistics layout, so existing dashboards
 *   keep working: key turn/user/<user>/allocation/<id>/status set to
 *   "new lifetime=N" / "refreshed lifetime=N" with a TTL of the lifetime and
 *   published on a channel of the same name; deleted with "deleted"
 *   published; traffic published on .../traffic at each refresh and on
 *   .../total_traffic at deletion ("rcvp=, rcvb=, sentp=, sentb=").
 * - User quotas across nodes: tern/realm/<realm>/user/<user>/allocations is
 *   a sorted set of live allocation ids scored by their expiry; a Lua script
 *   drops expired members, counts, and adds atomically, so a crashed node's
 *   allocations drain by themselves when their lifetimes run out.
 * - Per-realm limits in coturn's keys turn/realm/<realm>/max-bps,
 *   user-quota and total-quota, polled every auth.cache_ttl seconds; they
 *   override limits.* while set.
 */
#ifndef TERN_SERVER_SHARED_H
#define TERN_SERVER_SHARED_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct alloc;

/* Effective limits of a worker: the configuration, or Redis's per-realm
 * values when present. */
struct shared_limits {
    uint64_t max_bps;
    unsigned user_quota;
    unsigned total_quota;
};

int shared_start(struct worker *w);
void shared_stop(struct worker *w);

void shared_alloc_status(struct alloc *a, const char *status, uint32_t lifetime);
void shared_alloc_deleted(struct alloc *a);

/* The Lua script of the cross-node user quota, for creds.c to run. */
extern const char shared_quota_script[];
/* Take a granted member back (the allocation failed after all). */
void shared_quota_drop(struct worker *w, const char *user, size_t len, uint64_t sid);
/* Key of a user's allocation set into buf; returns its length. */
size_t shared_quota_key(const struct worker *w, const char *user, size_t len, char *buf,
                        size_t cap);

#endif
