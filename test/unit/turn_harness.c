/*
 * turn_harness.c - see turn_harness.h.
 */
#include "test/unit/turn_harness.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "server/relay/alloc.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/turn/rate.h"
#include "server/turn/turn.h"
#include "test/unit/fake_cluster.h"

int turn_harness_init(struct turn_harness *h, const char *conf_text, char *err, size_t err_len)
{
    memset(h, 0, sizeof *h);
    if (conf_load_string(&h->conf, conf_text, "t.conf", err, err_len) < 0)
        return -1;
    if (auth_realms_init(&h->auth, &h->conf) < 0) {
        snprintf(err, err_len, "cannot build the user store");
        return -1;
    }
    h->base = event_base_new();
    h->quota = quota_new();
    h->resv = reserve_new();
    clock_scaled_init(&h->clock, h->conf.time_scale);
    for (size_t i = 0; i < conf_realm_count(&h->conf); i++) {
        struct conf_realm_view v;
        conf_realm_get(&h->conf, i, &v);
        struct limits l = { v.max_bps, v.user_quota, v.total_quota };
        unsigned id = i ? stats_realms_intern(&h->realm_names, v.name) : 0;
        realm_set_add(&h->realms, v.name, strlen(v.name), &l, (uint8_t)id);
    }
    h->cl = fake_cluster_new(h->base);
    memset(h->nonce_key, 7, sizeof h->nonce_key);
    h->rate = rate_sources_new(h->conf.unauth_rate);
    struct turn_env te = { .worker_id = 0, .n_workers = 1, .node_id = 1, .base = h->base,
                           .conf = &h->conf, .stats = &h->stats, .clock = &h->clock,
                           .realms = &h->realms, .auth = &h->auth, .nonce_key = h->nonce_key,
                           .quota = h->quota, .resv = h->resv, .cluster = h->cl,
                           .rate_sources = h->rate };
    h->turn = turn_new(&te);
    struct relay_env re = { .base = h->base, .conf = &h->conf, .clock = &h->clock,
                            .stats = &h->stats, .realms = &h->realms, .quota = h->quota,
                            .on_death = turn_on_alloc_death, .death_arg = h->turn,
                            .on_tcp = turn_on_tcp };
    h->relay = h->turn ? relay_table_new(&re) : NULL;
    if (!h->base || !h->quota || !h->resv || !h->rate || !h->turn || !h->relay) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    turn_set_relay(h->turn, h->relay);
    return 0;
}

void turn_harness_free(struct turn_harness *h)
{
    relay_table_free(h->relay);
    turn_free(h->turn);
    if (h->cl)
        fake_cluster_free(h->cl);
    quota_free(h->quota);
    reserve_free(h->resv);
    rate_sources_free(h->rate);
    auth_realms_free(&h->auth);
    conf_free(&h->conf);
    if (h->base)
        event_base_free(h->base);
}
