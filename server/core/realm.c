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
