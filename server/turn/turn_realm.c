/*
 * turn_realm.c - which realm a request is in, when one server serves
 * several tenants. First match wins:
 *
 *   1. the session's realm: its listener's `realm`, or the realm whose
 *      `hosts` hold the TLS SNI name the client asked for (transport/);
 *   2. the realm of the 5-tuple's allocation, so that a client that sends
 *      ORIGIN only with its Allocate stays where it landed;
 *   3. the request's ORIGIN among the configuration's realms[].origins;
 *   4. ORIGIN in Redis's origin map (coturn's turn/origin/<origin>), from
 *      the worker's cache, or by parking the request while Redis is asked;
 *   5. the default realm.
 *
 * The realm is chosen before anything else is looked at, so that the 401
 * challenge already names it, and the credentials must then verify in it:
 * keys are derived with the realm's name and looked up among its own users
 * and secrets only, so a user or secret of one realm never authenticates in
 * another.
 */
#include <string.h>

#include "conf/conf.h"
#include "server/turn/turn_int.h"

int turn_realm_origin(const struct stun_msg *m, char *out, size_t cap)
{
    const struct stun_attr *o = stun_attr_find(m, STUN_ATTR_ORIGIN);
    if (!o || o->len == 0)
        return 0;
    return conf_origin_canonical((const char *)m->buf + o->off, o->len, out, cap);
}

enum turn_auth_step turn_realm_pick(struct turn *t, const struct turn_session *s,
                                    const struct alloc *a, const struct stun_msg *m,
                                    struct turn_auth *au)
{
    struct realm_set *rs = t->env.realms;
    au->realm = 0;
    int i = -1;
    if (s->realm[0]) {
        i = realm_set_find(rs, s->realm, strlen(s->realm));
        au->realm = i < 0 ? 0 : (unsigned)i; /* its realm left in a reload */
        return TURN_AUTH_OK;
    }
    if (a) {
        au->realm = a->realm < rs->n ? a->realm : 0;
        return TURN_AUTH_OK;
    }
    char origin[CONF_STR];
    int len = turn_realm_origin(m, origin, sizeof origin);
    if (len <= 0)
        return TURN_AUTH_OK;
    int ci = conf_realm_by_origin(t->env.conf, origin, (size_t)len);
    if (ci >= 0) {
        struct conf_realm_view v;
        conf_realm_get(t->env.conf, (size_t)ci, &v);
        i = realm_set_find(rs, v.name, strlen(v.name));
        au->realm = i < 0 ? 0 : (unsigned)i;
        return TURN_AUTH_OK;
    }
    if (!t->env.cluster)
        return TURN_AUTH_OK;
    struct cluster_origin co;
    cluster_origin_cached(t->env.cluster, origin, (size_t)len, &co);
    if (co.status == CLUSTER_ORIGIN_MISS)
        return TURN_AUTH_ASK;
    if (co.status == CLUSTER_ORIGIN_FOUND)
        au->realm = co.realm;
    return TURN_AUTH_OK;
}
