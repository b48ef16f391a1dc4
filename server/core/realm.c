/*
 * realm.c - see realm.h. A linear search: a set holds at most 64 short
 * names and is searched once per request, never per packet.
 */
#include "server/core/realm.h"

#include <string.h>

void realm_set_reset(struct realm_set *s)
{
    s->n_conf = 0;
    s->n = 0;
}

static int realm_put(struct realm_set *s, const char *name, size_t len, const struct limits *l,
                     uint8_t stats_id)
{
    if (s->n >= REALM_MAX || len == 0 || len > REALM_NAME_MAX)
        return -1;
    struct realm *r = &s->r[s->n];
    memcpy(r->name, name, len);
    r->name[len] = 0;
    r->len = (uint8_t)len;
    r->stats_id = stats_id;
    r->from_redis = 0;
    r->conf = *l;
    r->now = *l;
    return (int)s->n++;
}

int realm_set_add(struct realm_set *s, const char *name, size_t len, const struct limits *l,
                  uint8_t stats_id)
{
    int i = realm_put(s, name, len, l, stats_id);
    if (i >= 0)
        s->n_conf = s->n;
    return i;
}

int realm_set_find(const struct realm_set *s, const char *name, size_t len)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->r[i].len == len && memcmp(s->r[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int realm_set_learn(struct realm_set *s, const char *name, size_t len)
{
    int i = realm_set_find(s, name, len);
    if (i >= 0 || s->n == 0)
        return i;
    return realm_put(s, name, len, &s->r[0].conf, s->r[0].stats_id);
}

void realm_set_limit(struct realm *r, enum realm_limit which, bool set, uint64_t v)
{
    switch (which) {
    case REALM_MAX_BPS: r->now.max_bps = set ? v : r->conf.max_bps; break;
    case REALM_USER_QUOTA: r->now.user_quota = set ? (unsigned)v : r->conf.user_quota; break;
    default: r->now.total_quota = set ? (unsigned)v : r->conf.total_quota; break;
    }
    r->from_redis = (uint8_t)(set ? r->from_redis | which : r->from_redis & ~which);
}

void realm_set_carry(struct realm_set *s, const struct realm_set *old)
{
    for (unsigned i = 0; i < old->n; i++) {
        const struct realm *o = &old->r[i];
        int k = i >= old->n_conf ? realm_set_learn(s, o->name, o->len)
                                 : realm_set_find(s, o->name, o->len);
        if (k < 0)
            continue;
        struct realm *r = &s->r[k];
        if (o->from_redis & REALM_MAX_BPS)
            realm_set_limit(r, REALM_MAX_BPS, true, o->now.max_bps);
        if (o->from_redis & REALM_USER_QUOTA)
            realm_set_limit(r, REALM_USER_QUOTA, true, o->now.user_quota);
        if (o->from_redis & REALM_TOTAL_QUOTA)
            realm_set_limit(r, REALM_TOTAL_QUOTA, true, o->now.total_quota);
    }
}
