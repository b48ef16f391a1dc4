/*
 * realm.h - the realms a worker knows, and the limits that apply in each.
 *
 * Index 0 is the default realm, 1..n_conf-1 the configuration's realms[] in
 * order (the indexes of conf_realm_get and auth_realms), and after them the
 * realms only Redis knows (coturn's origin map names them), learned as
 * requests land in them, REALM_MAX in all. A learned realm starts with the
 * default realm's configured limits and its metrics series.
 *
 * One set per worker, touched on that worker's thread only: the root fills
 * it from each configuration, cluster/ writes the limits Redis holds and
 * learns realms, relay/ and turn/ read. Indexes are valid until the next
 * realm_set_reset (a reload), after which holders find theirs again by name.
 */
#ifndef TERN_SERVER_CORE_REALM_H
#define TERN_SERVER_CORE_REALM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/core/core.h"

#define REALM_MAX 64
#define REALM_NAME_MAX 52 /* conf.h's CONF_MAX_REALM: the 401 size bound */

enum realm_limit { REALM_MAX_BPS = 1, REALM_USER_QUOTA = 2, REALM_TOTAL_QUOTA = 4 };

struct realm {
    char name[REALM_NAME_MAX + 1];
    uint8_t len;
    uint8_t stats_id;     /* its series in the metrics (stats.h) */
    uint8_t from_redis;   /* enum realm_limit bits of now that Redis set */
    struct limits conf;   /* the configuration's limits for it */
    struct limits now;    /* what applies: conf, or Redis's values while set */
};

struct realm_set {
    unsigned n_conf; /* configured realms: [0, n_conf) */
    unsigned n;      /* and learned ones: [n_conf, n) */
    struct realm r[REALM_MAX];
};

/* Empty the set (a new configuration follows). */
void realm_set_reset(struct realm_set *s);
/* Add a configured realm (in configuration order, the default first).
 * Its index, or -1 when full or the name is too long. */
int realm_set_add(struct realm_set *s, const char *name, size_t len, const struct limits *l,
                  uint8_t stats_id);
/* The index of the realm named name, or -1. */
int realm_set_find(const struct realm_set *s, const char *name, size_t len);
/* The index of name, learning it if it is new; -1 when the set is full or
 * the name is empty or too long (the caller uses the default realm). */
int realm_set_learn(struct realm_set *s, const char *name, size_t len);
/* After a refill from a new configuration: take over from the old set the
 * realms only Redis knew (learned again) and, for every realm still there,
 * the limits Redis had set, so that a reload neither forgets a realm its
 * allocations live in nor lifts a Redis limit until the next poll. */
void realm_set_carry(struct realm_set *s, const struct realm_set *old);
/* Redis says limit which (one bit) of realm i is v, or unset (conf applies). */
void realm_set_limit(struct realm *r, enum realm_limit which, bool set, uint64_t v);

#endif
