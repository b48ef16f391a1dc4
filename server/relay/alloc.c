/*
 * alloc.c - see alloc.h: the table of a worker's allocations, their
 * lifetimes on the timer wheel, permissions and channels. The data paths and
 * relay sockets are in relay_data.c.
 */
#include "server/relay/alloc.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "server/core/clock.h"
#include "server/core/core.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/relay/quota.h"
#include "server/relay/relay_int.h"

#define ALLOC_BUCKETS 4096 /* grows x2 when count exceeds it */

uint32_t alloc_now(const struct alloc *a)
{
    return clock_scaled_now(a->t->env.clock);
}

uint64_t relay_rng_next(struct relay_table *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

static void to_mapped(const struct sockaddr *sa, struct in6_addr *out)
{
    if (sa->sa_family == AF_INET6) {
        *out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        return;
    }
    memset(out, 0, sizeof *out);
    out->s6_addr[10] = out->s6_addr[11] = 0xFF;
    memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
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

static void wheel_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct relay_table *t = arg;
    uint32_t now = clock_scaled_now(t->env.clock);
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
    free(t);
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
                           unsigned n_relay, uint32_t lifetime, const char *user,
                           size_t user_len)
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
    a->tokens = t->env.limits->max_bps;
    a->bucket_ms = clock_mono_ms();
    a->expires = clock_scaled_now(t->env.clock) + lifetime;
    if (t->count >= t->n_buckets)
        table_grow(t);
    size_t h = tuple_hash(conn, client, t->n_buckets);
    a->hnext = t->buckets[h];
    t->buckets[h] = a;
    wheel_link(t, a);
    t->count++;
    stats_add(&t->env.stats->allocations, 1);
    return a;
}

void alloc_destroy(struct alloc *a, const char *why)
{
    struct relay_table *t = a->t;
    struct alloc **pp = &t->buckets[tuple_hash(a->conn, (struct sockaddr *)&a->client, t->n_buckets)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    wheel_unlink(t, a);
    t->count--;
    stats_sub(&t->env.stats->allocations, 1);
    for (unsigned i = 0; i < a->n_relay; i++)
        alloc_relay_close(&a->relay[i]);
    quota_release(t->env.quota, a->user, a->user_len);
    char c[NET_ADDRSTRLEN];
    log_info("allocation %u for %s (%.*s) deleted: %s; %llu bytes in, %llu bytes out", a->id,
             net_addr_format((struct sockaddr *)&a->client, c, sizeof c), (int)a->user_len, a->user,
             why, (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out);
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
}

/* --- permissions and channels ------------------------------------------- */

int alloc_perm_add(struct alloc *a, const struct sockaddr *peer)
{
    uint32_t now = alloc_now(a);
    struct in6_addr ip;
    to_mapped(peer, &ip);
    struct perm *free_slot = NULL;
    for (unsigned i = 0; i < a->n_perms; i++) {
        struct perm *p = &a->perms[i];
        if (memcmp(&p->ip, &ip, sizeof ip) == 0) {
            p->expires = now + ALLOC_PERM_LIFETIME;
            return 0;
        }
        if (!free_slot && p->expires <= now)
            free_slot = p;
    }
    if (!free_slot) {
        if (a->n_perms >= ALLOC_MAX_PERMS)
            return 508;
        if (a->n_perms == a->cap_perms) {
            uint16_t cap = a->cap_perms ? a->cap_perms * 2 : 2;
            struct perm *p = realloc(a->perms, cap * sizeof *p);
            if (!p)
                return 508;
            a->perms = p;
            a->cap_perms = cap;
        }
        free_slot = &a->perms[a->n_perms++];
    }
    free_slot->ip = ip;
    free_slot->expires = now + ALLOC_PERM_LIFETIME;
    return 0;
}

/* The packet path reads the clock once per batch, not per check, and
 * compares addresses as two words rather than through memcmp. */
bool relay_perm_ok_at(const struct alloc *a, const struct sockaddr *peer, uint32_t now)
{
    struct in6_addr ip;
    to_mapped(peer, &ip);
    uint64_t want[2], have[2];
    memcpy(want, &ip, sizeof want);
    for (unsigned i = 0; i < a->n_perms; i++) {
        memcpy(have, &a->perms[i].ip, sizeof have);
        if (have[0] == want[0] && have[1] == want[1] && a->perms[i].expires > now)
            return true;
    }
    return false;
}

bool alloc_perm_ok(const struct alloc *a, const struct sockaddr *peer)
{
    return relay_perm_ok_at(a, peer, alloc_now(a));
}

bool alloc_is_own_relay(const struct alloc *a, const struct sockaddr *addr)
{
    for (unsigned i = 0; i < a->n_relay; i++)
        if (net_addr_equal((const struct sockaddr *)&a->relay[i].addr, addr))
            return true;
    return false;
}

static bool chan_peer_is(const struct chan *c, const struct sockaddr *peer)
{
    return net_addr_equal((const struct sockaddr *)&c->peer, peer);
}

/*
 * The permission is installed before anything about the channel changes:
 * a ChannelBind refused for want of a permission slot (508) must leave the
 * channel table exactly as it was, not a half-built entry with no expiry.
 */
int alloc_chan_bind(struct alloc *a, uint16_t number, const struct sockaddr *peer)
{
    uint32_t now = alloc_now(a);
    struct chan *slot = NULL, *free_slot = NULL;
    for (unsigned i = 0; i < a->n_chans; i++) {
        struct chan *c = &a->chans[i];
        bool held = c->expires + ALLOC_CHANNEL_QUARANTINE > now;
        if (!held) {
            if (!free_slot)
                free_slot = c;
            continue;
        }
        bool same_num = c->number == number, same_peer = chan_peer_is(c, peer);
        /* RFC 8656 section 11.2: a number maps to one peer and back, also
         * for 5 minutes after the binding expires. */
        if (same_num != same_peer)
            return 400;
        if (same_num)
            slot = c;
    }
    if (!slot && !free_slot && a->n_chans >= ALLOC_MAX_CHANNELS)
        return 508;
    int rc = alloc_perm_add(a, peer);
    if (rc)
        return rc;
    if (!slot) {
        if (!free_slot) {
            if (a->n_chans == a->cap_chans) {
                uint16_t cap = a->cap_chans ? a->cap_chans * 2 : 1;
                struct chan *ch = realloc(a->chans, cap * sizeof *ch);
                if (!ch)
                    return 508;
                a->chans = ch;
                a->cap_chans = cap;
            }
            free_slot = &a->chans[a->n_chans++];
        }
        slot = free_slot;
        slot->number = number;
        memset(&slot->peer, 0, sizeof slot->peer);
        memcpy(&slot->peer, peer, net_addr_len(peer));
    }
    slot->expires = now + ALLOC_CHANNEL_LIFETIME;
    return 0;
}

const struct chan *relay_chan_by_number(const struct alloc *a, uint16_t number, uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].number == number && a->chans[i].expires > now)
            return &a->chans[i];
    return NULL;
}

const struct chan *relay_chan_by_peer(const struct alloc *a, const struct sockaddr *peer,
                                      uint32_t now)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].expires > now && chan_peer_is(&a->chans[i], peer))
            return &a->chans[i];
    return NULL;
}
