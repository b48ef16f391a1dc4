/*
 * alloc.c - see alloc.h: the table of a worker's allocations and their
 * lifetimes on the timer wheel. The data paths and relay sockets are in
 * relay_data.c, permissions and channels in perm.c.
 */
#include "server/relay/alloc.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "server/core/clock.h"
#include "server/core/realm.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/quota.h"
#include "server/relay/relay_int.h"

#define ALLOC_BUCKETS 4096 /* grows x2 when count exceeds it */

uint32_t alloc_now(const struct alloc *a)
{
    return relay_now(a->t);
}

/* Looked up for every packet from a client: a few multiplies over the
 * address words rather than a byte loop over the whole sockaddr. */
static size_t tuple_hash(const void *conn, const struct sockaddr *client, size_t n)
{
    uint64_t h = (uintptr_t)conn * 0x9E3779B97F4A7C15ull;
    if (client->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)client;
        uint64_t a, b;
        memcpy(&a, &s6->sin6_addr, 8);
        memcpy(&b, (const uint8_t *)&s6->sin6_addr + 8, 8);
        h = (h ^ a) * 0xFF51AFD7ED558CCDull;
        h = (h ^ b ^ s6->sin6_port) * 0xC4CEB9FE1A85EC53ull;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)client;
        h = (h ^ ((uint64_t)s4->sin_addr.s_addr << 16 | s4->sin_port)) * 0xFF51AFD7ED558CCDull;
    }
    return (size_t)(h ^ (h >> 32)) & (n - 1);
}

/* --- timer wheel ------------------------------------------------------- */

static void wheel_unlink(struct relay_table *t, struct alloc *a)
{
    if (a->wprev)
        a->wprev->wnext = a->wnext;
    else
        t->wheel[a->expires % ALLOC_WHEEL_SLOTS] = a->wnext;
    if (a->wnext)
        a->wnext->wprev = a->wprev;
    a->wnext = a->wprev = NULL;
}

static void wheel_link(struct relay_table *t, struct alloc *a)
{
    struct alloc **slot = &t->wheel[a->expires % ALLOC_WHEEL_SLOTS];
    a->wprev = NULL;
    a->wnext = *slot;
    if (*slot)
        (*slot)->wprev = a;
    *slot = a;
}

static void relay_offload_each(struct alloc *a, void *arg)
{
    (void)arg;
    relay_offload_sweep(a, false);
}

static void relay_offload_again(struct alloc *a, void *arg)
{
    (void)arg;
    relay_offload_sweep(a, false);
    relay_offload_all(a);
}

static void wheel_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct relay_table *t = arg;
    uint32_t now = clock_scaled_now(t->env.clock);
    /* The kernel's counts back at every tick: they are plain memory reads */
    /* After a reload every allocation is looked at, also when none is in the
     * kernel now: a limit removed gives their channels back to the kernel. */
    if (t->off_chans || (t->off_recheck && t->env.offload))
        relay_table_foreach(t, t->off_recheck ? relay_offload_again : relay_offload_each, NULL);
    t->off_recheck = false;
    /* Every second up to now, in case a tick was late. */
    while (t->wheel_pos < now) {
        t->wheel_pos++;
        struct alloc *a = t->wheel[t->wheel_pos % ALLOC_WHEEL_SLOTS];
        while (a) {
            struct alloc *next = a->wnext;
            if (a->expires <= t->wheel_pos)
                alloc_destroy(a, "lifetime expired");
            /* else: a lifetime longer than the wheel, seen again next turn */
            a = next;
        }
    }
}

struct relay_table *relay_table_new(const struct relay_env *env)
{
    struct relay_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    t->n_buckets = ALLOC_BUCKETS;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    t->rx = relay_rx_new();
    RAND_bytes((uint8_t *)&t->rng, sizeof t->rng);
    t->rng |= 1;
    t->wheel_pos = clock_scaled_now(env->clock);
    if (relay_offload_init(t) < 0) {
        relay_table_free(t);
        return NULL;
    }
    t->tick = event_new(env->base, -1, EV_PERSIST, wheel_on_tick, t);
    unsigned scale = env->clock->scale;
    struct timeval tv = { .tv_sec = 0, .tv_usec = (suseconds_t)(1000000 / scale) };
    if (scale == 1)
        tv = (struct timeval){ .tv_sec = 1 };
    if (!t->buckets || !t->rx || !t->tick || event_add(t->tick, &tv) < 0) {
        relay_table_free(t);
        return NULL;
    }
    return t;
}

void relay_table_free(struct relay_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->buckets && i < ALLOC_WHEEL_SLOTS; i++)
        while (t->wheel[i])
            alloc_destroy(t->wheel[i], "shutdown");
    if (t->tick)
        event_free(t->tick);
    free(t->buckets);
    relay_rx_free(t->rx);
    relay_offload_fini(t);
    free(t);
}

/* A reload may have given a realm a bandwidth limit, which the kernel
 * cannot enforce: its channels come back to user space at the next tick,
 * once the TURN layer has found every allocation's realm again. */
void relay_table_set_conf(struct relay_table *t, const struct conf *c)
{
    t->env.conf = c;
    t->off_recheck = true;
}

void relay_table_drop_conn(struct relay_table *t, const void *conn, const char *why)
{
    for (size_t i = 0; i < ALLOC_WHEEL_SLOTS; i++) {
        struct alloc *a = t->wheel[i];
        while (a) {
            struct alloc *next = a->wnext;
            if (a->conn == conn)
                alloc_destroy(a, why);
            a = next;
        }
    }
}

void relay_table_foreach(struct relay_table *t, void (*fn)(struct alloc *a, void *arg), void *arg)
{
    for (size_t i = 0; i < ALLOC_WHEEL_SLOTS; i++)
        for (struct alloc *a = t->wheel[i]; a; a = a->wnext)
            fn(a, arg);
}

size_t relay_table_count(const struct relay_table *t)
{
    return t->count;
}

static void table_grow(struct relay_table *t)
{
    size_t n = t->n_buckets * 2;
    struct alloc **nb = calloc(n, sizeof *nb);
    if (!nb)
        return; /* keep the longer chains; correctness is unaffected */
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct alloc *a = t->buckets[i];
        while (a) {
            struct alloc *next = a->hnext;
            size_t h = tuple_hash(a->conn, (struct sockaddr *)&a->client, n);
            a->hnext = nb[h];
            nb[h] = a;
            a = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->n_buckets = n;
}

/* In the 5-tuple hash and on the wheel, counted in the gauges. */
static void table_link(struct relay_table *t, struct alloc *a)
{
    if (t->count >= t->n_buckets)
        table_grow(t);
    size_t h = tuple_hash(a->conn, (struct sockaddr *)&a->client, t->n_buckets);
    a->hnext = t->buckets[h];
    t->buckets[h] = a;
    wheel_link(t, a);
    t->count++;
    stats_add(&t->env.stats->allocations[a->stats_realm], 1);
    stats_add(&t->env.stats->relay_sockets, a->n_relay);
}

static void table_unlink(struct relay_table *t, struct alloc *a)
{
    struct alloc **pp = &t->buckets[tuple_hash(a->conn, (struct sockaddr *)&a->client, t->n_buckets)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    wheel_unlink(t, a);
    t->count--;
    stats_sub(&t->env.stats->allocations[a->stats_realm], 1);
    stats_sub(&t->env.stats->relay_sockets, a->n_relay);
}

struct alloc *alloc_table_find(struct relay_table *t, const void *conn,
                               const struct sockaddr *client)
{
    struct alloc *a = t->buckets[tuple_hash(conn, client, t->n_buckets)];
    for (; a; a = a->hnext)
        if (a->conn == conn && net_addr_equal((struct sockaddr *)&a->client, client))
            return a;
    return NULL;
}

struct alloc *alloc_create(struct relay_table *t, const struct client_ops *ops, void *conn,
                           void *owner, const struct sockaddr *client,
                           const struct sockaddr *local, const struct relay *relays,
                           unsigned n_relay, uint32_t lifetime, unsigned realm,
                           const char *user, size_t user_len)
{
    struct alloc *a = calloc(1, sizeof *a + user_len);
    if (!a)
        return NULL;
    memcpy(a->user, user, user_len);
    a->user_len = (uint16_t)user_len;
    a->t = t;
    a->ops = ops;
    a->conn = conn;
    a->owner = owner;
    memcpy(&a->client, client, net_addr_len(client));
    memcpy(&a->local, local, net_addr_len(local));
    for (unsigned i = 0; i < n_relay; i++)
        a->relay[i] = relays[i];
    a->n_relay = n_relay;
    a->id = ++t->next_id;
    const struct realm *r = &t->env.realms->r[realm];
    a->realm = (uint8_t)realm;
    a->stats_realm = r->stats_id;
    a->realm_len = r->len;
    memcpy(a->realm_name, r->name, r->len);
    a->tokens = r->now.max_bps;
    a->bucket_ms = clock_mono_ms();
    a->created_ms = a->bucket_ms;
    a->expires = clock_scaled_now(t->env.clock) + lifetime;
    table_link(t, a);
    return a;
}

void alloc_destroy(struct alloc *a, const char *why)
{
    struct relay_table *t = a->t;
    relay_offload_sweep(a, true);
    table_unlink(t, a);
    tcp_relay_alloc_end(a);
    for (unsigned i = 0; i < a->n_relay; i++)
        alloc_relay_close(&a->relay[i]);
    quota_release(t->env.quota, a->realm_name, a->realm_len, a->user, a->user_len);
    /* the owner logs the end, with what only it knows (transport, realm) */
    if (t->env.on_death)
        t->env.on_death(t->env.death_arg, a, why);
    free(a->perms);
    free(a->chans);
    free(a);
}

void alloc_set_lifetime(struct alloc *a, uint32_t lifetime)
{
    struct relay_table *t = a->t;
    wheel_unlink(t, a);
    a->expires = clock_scaled_now(t->env.clock) + lifetime;
    wheel_link(t, a);
    relay_offload_all(a);
}

/* --- mobility (RFC 8016) ------------------------------------------------ */

struct alloc *alloc_table_find_id(struct relay_table *t, uint32_t id)
{
    for (size_t i = 0; i < ALLOC_WHEEL_SLOTS; i++)
        for (struct alloc *a = t->wheel[i]; a; a = a->wnext)
            if (a->id == id)
                return a;
    return NULL;
}

static void alloc_set_client(struct alloc *a, const struct client_ops *ops, void *conn,
                             void *owner, const struct sockaddr *client,
                             const struct sockaddr *local)
{
    /* client and local may be the allocation's own: copied out first */
    struct sockaddr_in6 c = { 0 }, l = { 0 };
    memcpy(&c, client, net_addr_len(client));
    memcpy(&l, local, net_addr_len(local));
    a->ops = ops;
    a->conn = conn;
    a->owner = owner;
    a->client = c;
    a->local = l;
}

void alloc_table_rekey(struct alloc *a, const struct client_ops *ops, void *conn, void *owner,
                       const struct sockaddr *client, const struct sockaddr *local)
{
    relay_offload_sweep(a, true);
    table_unlink(a->t, a);
    alloc_set_client(a, ops, conn, owner, client, local);
    table_link(a->t, a);
    relay_offload_all(a);
}

void alloc_table_detach(struct alloc *a, uint32_t *clock_at)
{
    struct relay_table *t = a->t;
    *clock_at = clock_scaled_now(t->env.clock);
    relay_offload_sweep(a, true);
    table_unlink(t, a);
    /* the sockets stay open: what peers send meanwhile waits in the kernel */
    for (unsigned i = 0; i < a->n_relay; i++) {
        if (a->relay[i].ev)
            event_free(a->relay[i].ev);
        a->relay[i].ev = NULL;
    }
    a->t = NULL;
    a->owner = NULL; /* a session of this worker: the new one sets its own */
    a->hnext = a->wnext = a->wprev = NULL;
}

/* A time of the old table's clock on this one's: the same distance from
 * now, never 0 (0 would read as "never set"). */
static uint32_t clock_carry(uint32_t v, uint32_t from, uint32_t to)
{
    int64_t r = (int64_t)v - from + to;
    return r > 0 ? (uint32_t)r : 1;
}

int alloc_table_adopt(struct relay_table *t, struct alloc *a, uint32_t clock_at,
                      const struct client_ops *ops, void *conn, void *owner,
                      const struct sockaddr *client, const struct sockaddr *local)
{
    uint32_t now = clock_scaled_now(t->env.clock);
    a->expires = clock_carry(a->expires, clock_at, now);
    for (unsigned i = 0; i < a->n_perms; i++)
        a->perms[i].expires = clock_carry(a->perms[i].expires, clock_at, now);
    for (unsigned i = 0; i < a->n_chans; i++)
        a->chans[i].expires = clock_carry(a->chans[i].expires, clock_at, now);
    /* realm indexes are the worker's own; names are shared (as on reload) */
    int realm = realm_set_find(t->env.realms, a->realm_name, a->realm_len);
    a->realm = (uint8_t)(realm < 0 ? 0 : realm);
    a->stats_realm = t->env.realms->r[a->realm].stats_id;
    a->t = t;
    a->id = ++t->next_id;
    alloc_set_client(a, ops, conn, owner, client, local);
    table_link(t, a);
    if (alloc_relay_start(a) < 0) {
        alloc_destroy(a, "out of memory");
        return -1;
    }
    relay_offload_all(a);
    return 0;
}

void alloc_detached_free(struct alloc *a, struct quota *q)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        alloc_relay_close(&a->relay[i]);
    quota_release(q, a->realm_name, a->realm_len, a->user, a->user_len);
    free(a->perms);
    free(a->chans);
    free(a);
}
