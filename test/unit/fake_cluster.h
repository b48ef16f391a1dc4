/*
 * fake_cluster.h - a stand-in for server/cluster (cluster.h) in unit tests
 * and the TURN fuzz target: credentials and quota questions answered now
 * (from the event loop, as Redis would), later (when the test says), or
 * never; and a record of what the TURN service asked and gave back.
 */
#ifndef TERN_TEST_FAKE_CLUSTER_H
#define TERN_TEST_FAKE_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "server/cluster/cluster.h"

struct event_base;

enum fake_mode { FAKE_NOW, FAKE_LATER, FAKE_NEVER };

/* What the fake knows and what happened; the test reads and sets it. */
struct fake_cluster_state {
    bool up;
    enum fake_mode mode;
    /* the one user Redis knows (MD5 and SHA-256 keys) */
    char user[64];
    uint8_t md5[16], sha256[32];
    enum cluster_quota_status quota_answer;
    unsigned keys_asked, quota_asked, cancelled, released, deleted, status_new,
        status_refreshed, waiting;
};

struct cluster *fake_cluster_new(struct event_base *base);
void fake_cluster_free(struct cluster *c);
struct fake_cluster_state *fake_cluster_state(struct cluster *c);
/* Answer every question still waiting, as if Redis replied now. Returns
 * how many callbacks ran. */
int fake_cluster_answer_all(struct cluster *c);

#endif
