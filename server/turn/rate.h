/*
 * rate.h - limits on answers to TURN requests that did not authenticate
 * (401/438 challenges, errors): a flood of bad credentials, spoofed or not,
 * costs little and gets silence once its allowance is spent.
 *
 * - Per source IP: a token bucket of limits.unauth_rate answers/s (burst 2x)
 *   in a direct-mapped table keyed by a secret hash (SipHash under a random
 *   key), so that nobody can aim a source at another's slot. The table is
 *   one for the process (struct rate_sources), updated with atomic
 *   compare-and-swap: a source whose ports land on several workers still
 *   gets one allowance. Two sources in one slot share its bucket: a newcomer
 *   never gets a fresh one, and a slot never used before starts with one
 *   second's worth, not the burst.
 * - In total: limits.unauth_global_rate answers/s and limits.unauth_global_bps
 *   bytes/s per node; each worker takes its share (struct rate, no locks).
 */
#ifndef TERN_SERVER_TURN_RATE_H
#define TERN_SERVER_TURN_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RATE_SLOTS 4096
#define RATE_BURST_FACTOR 2

struct rate_sources;
struct rate;

/* The process's table; per_source answers/s, 0: off. NULL on failure. */
struct rate_sources *rate_sources_new(unsigned per_source);
void rate_sources_free(struct rate_sources *s);

/* A worker's view: the shared table (borrowed, outlives it) and its share
 * of the node's budget (rates per node; 0 turns a limit off). */
struct rate *rate_new(struct rate_sources *sources, unsigned global_rate, uint64_t global_bps,
                      unsigned n_workers);
void rate_free(struct rate *r);
/* A new configuration (reload): the per-source rate (any thread), a
 * worker's share of the node's budget (its own thread). */
void rate_sources_set(struct rate_sources *s, unsigned per_source);
void rate_set_budget(struct rate *r, unsigned global_rate, uint64_t global_bps, unsigned n_workers);
/* May this source get one more answer at now_ms? */
bool rate_take_source(struct rate *r, const struct sockaddr *client, uint64_t now_ms);
/* May the worker send one more answer of this size at now_ms? */
bool rate_take_budget(struct rate *r, size_t bytes, uint64_t now_ms);
/* The table slot of a source (for tests). */
size_t rate_slot(const struct rate *r, const struct sockaddr *client);

#endif
