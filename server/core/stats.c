/*
 * stats.c - the realm names behind the metrics' realm ids (stats.h).
 */
#include "server/core/stats.h"

#include <string.h>

unsigned stats_realms_intern(struct stats_realms *r, const char *name)
{
    unsigned n = atomic_load_explicit(&r->n, memory_order_relaxed);
    if (n == 0)
        n = 1; /* id 0 is the default realm, named by the configuration of the day */
    for (unsigned i = 1; i < n; i++)
        if (strcmp(r->name[i], name) == 0)
            return i;
    if (n >= STATS_MAX_REALMS || strlen(name) >= sizeof r->name[0])
        return 0;
    strcpy(r->name[n], name);
    atomic_store_explicit(&r->n, n + 1, memory_order_release);
    return n;
}
