/*
 * turn_harness.h - one worker's TURN service put together for unit tests
 * and the TURN fuzz target: a configuration from text, the static store,
 * quotas, reservations, a relay table and the fake Redis (fake_cluster.h),
 * wired the way worker.c wires them, with no transport.
 */
#ifndef TERN_TEST_TURN_HARNESS_H
#define TERN_TEST_TURN_HARNESS_H

#include "auth/auth.h"
#include "conf/conf.h"
#include "server/core/clock.h"
#include "server/core/core.h"
#include "server/core/realm.h"
#include "server/core/stats.h"

struct event_base;
struct quota;
struct reserve;
struct cluster;
struct turn;
struct relay_table;
struct rate_sources;

/* Everything is owned by the harness (turn_harness_free). */
struct turn_harness {
    struct event_base *base;
    struct conf conf;
    struct auth_realms auth;
    struct quota *quota;
    struct reserve *resv;
    struct clock_scaled clock;
    struct realm_set realms;
    struct stats_realms realm_names;
    struct worker_stats stats;
    struct cluster *cl;
    struct turn *turn;
    struct relay_table *relay;
    struct rate_sources *rate;
    uint8_t nonce_key[32];
};

/* 0, or -1 with the reason in err (a config that does not load). */
int turn_harness_init(struct turn_harness *h, const char *conf_text, char *err, size_t err_len);
void turn_harness_free(struct turn_harness *h);

#endif
