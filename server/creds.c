/*
 * creds.c - see creds.h.
 *
 * The cache is direct-mapped by a hash of the user name (bounded memory, a
 * collision simply evicts); entries live auth.cache_ttl seconds, so a user
 * or secret deleted in Redis stops working within that time. A parked
 * request owns a copy of its message; when every reply it waits for has
 * come back (or failed), the results go into the cache and, through
 * c->resume, straight to the re-run of the request.
 */
#include "server/clock.h"
#include "server/creds.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/redis.h"
#include "server/log.h"
#include "server/net.h"
#include "server/server.h"
#include "server/shared.h"
#include "server/turn.h"

#define CACHE_SLOTS 1024
#define CACHE_USER (AUTH_MAX_USERNAME + 1)
#define PARK_MSG 2048

struct cache_entry {
    uint64_t expires_ms;
    uint16_t user_len;
    char user[CACHE_USER];
    bool negative;
    bool has_md5, has_sha256;
    uint8_t md5[16], sha256[32];
};

/* A parked request: owned by the worker's list until its replies are in. */
struct pending {
    struct pending *next, *prev;
    struct creds_worker *c;
    struct turn_client tc;
    struct sockaddr_storage client, local;
    uint64_t deadline_ms;
    int waiting;       /* replies outstanding */
    bool answered;     /* timed out or its connection left */
    bool failed;       /* some reply was missing: Redis trouble */
    bool want_user, want_secrets;
    bool quota;        /* a quota question, not a credentials one */
    int quota_ok;      /* the script's answer: 1 granted, 0 full */
    uint64_t sid;
    /* what Redis said */
    bool has_key, has_password;
    char key_hex[80];
    char password[CONF_STR];
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    size_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
    size_t len;
    uint8_t msg[PARK_MSG];
};

/* Per-worker credential state; owned by the worker. */
struct creds_worker {
    struct worker *w;
    struct redis_conn *redis;
    struct cache_entry cache[CACHE_SLOTS];
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    uint64_t secrets_expires_ms;
    struct pending *parked;
    unsigned n_parked;
    struct pending *resume; /* the request being re-run, if any */
    struct event *sweep;
};

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Redis up/down, logged once per process per transition. */
static atomic_int redis_logged = -1;

static void on_redis_state(void *arg, bool up)
{
    struct creds_worker *c = arg;
    atomic_store_explicit(&c->w->stats.redis_up, up, memory_order_relaxed);
    if (atomic_exchange(&redis_logged, up) != up) {
        if (up)
            log_info("redis: connected to %s", c->w->conf->redis);
        else
            log_warn("redis: unreachable (%s); serving static users and cached credentials, "
                     "retrying with backoff",
                     c->w->conf->redis);
    }
}

static void pending_free(struct creds_worker *c, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->parked = p->next;
    if (p->next)
        p->next->prev = p->prev;
    c->n_parked--;
    free(p);
}

/* Answer a parked request now (its credentials are in, or will not come). */
static void pending_run(struct creds_worker *c, struct pending *p)
{
    struct stun_msg m;
    if (stun_msg_decode(&m, p->msg, p->len) < 0)
        return;
    uint8_t out[1024];
    c->resume = p;
    size_t n = turn_handle(&p->tc, &m, (struct sockaddr *)&p->client, out, sizeof out);
    c->resume = NULL;
    if (n) {
        struct iovec iov = { out, n };
        p->tc.ops->send(p->tc.conn, (struct sockaddr *)&p->client, (struct sockaddr *)&p->local,
                        &iov, 1, false);
    }
}

static bool key_from_hex(const char *hex, struct cache_entry *e)
{
    uint8_t key[32];
    size_t len;
    if (conf_parse_hex_key(hex, key, &len) < 0)
        return false;
    if (len == 16) {
        memcpy(e->md5, key, 16);
        e->has_md5 = true;
    } else {
        memcpy(e->sha256, key, 32);
        e->has_sha256 = true;
    }
    return true;
}

/* The user's keys from what Redis returned for p (not the cache). */
static void entry_from_pending(const struct creds_worker *c, const struct pending *p,
                               struct cache_entry *e)
{
    memset(e, 0, sizeof *e);
    const char *realm = c->w->conf->realm;
    if (p->has_key && key_from_hex(p->key_hex, e)) {
        /* a key wins over a password, as in coturn */
    } else if (p->has_password) {
        e->has_md5 = auth_key_md5(p->user, p->user_len, realm, p->password, e->md5) == 0;
        e->has_sha256 = auth_key_sha256(p->user, p->user_len, realm, p->password, e->sha256) == 0;
    }
    e->negative = !e->has_md5 && !e->has_sha256;
}

static void pending_done(struct pending *p)
{
    struct creds_worker *c = p->c;
    uint64_t ttl = (uint64_t)c->w->conf->cache_ttl * 1000u;
    if (!p->failed) {
        if (p->want_secrets) {
            memcpy(c->secrets, p->secrets, sizeof c->secrets);
            c->n_secrets = p->n_secrets;
            c->secrets_expires_ms = clock_mono_ms() + ttl;
        }
        if (p->want_user && p->user_len < CACHE_USER) {
            struct cache_entry *e = &c->cache[name_hash(p->user, p->user_len) % CACHE_SLOTS];
            entry_from_pending(c, p, e);
            memcpy(e->user, p->user, p->user_len);
            e->user_len = (uint16_t)p->user_len;
            e->expires_ms = clock_mono_ms() + ttl;
        }
    }
    if (!p->answered) {
        p->answered = true;
        pending_run(c, p);
    }
    pending_free(c, p);
}

static void on_string(struct redisReply *r, struct pending *p, bool *has, char *out, size_t cap)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        p->failed = true;
    } else if (r->type == REDIS_REPLY_STRING && r->len > 0 && (size_t)r->len < cap) {
        memcpy(out, r->str, (size_t)r->len);
        out[r->len] = 0;
        *has = true;
    }
    if (--p->waiting == 0)
        pending_done(p);
}

static void on_key(struct redisReply *r, void *arg)
{
    struct pending *p = arg;
    on_string(r, p, &p->has_key, p->key_hex, sizeof p->key_hex);
}

static void on_password(struct redisReply *r, void *arg)
{
    struct pending *p = arg;
    on_string(r, p, &p->has_password, p->password, sizeof p->password);
}

static void on_secrets(struct redisReply *r, void *arg)
{
    struct pending *p = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        p->failed = true;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && p->n_secrets < CONF_MAX_SECRETS; i++) {
            struct redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && e->len > 0 && (size_t)e->len < CONF_STR) {
                memcpy(p->secrets[p->n_secrets], e->str, (size_t)e->len);
                p->secrets[p->n_secrets++][e->len] = 0;
            }
        }
    }
    if (--p->waiting == 0)
        pending_done(p);
}

/* Parked requests past their deadline get 500 now; their replies, when they
 * come, only fill the cache. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct creds_worker *c = arg;
    uint64_t now = clock_mono_ms();
    atomic_store_explicit(&c->w->stats.redis_rtt_us, redis_conn_rtt_us(c->redis),
                          memory_order_relaxed);
    atomic_store_explicit(&c->w->stats.redis_parked, c->n_parked, memory_order_relaxed);
    for (struct pending *p = c->parked; p; p = p->next) {
        if (!p->answered && now >= p->deadline_ms) {
            p->failed = true;
            stats_add(&c->w->stats.redis_failures, 1);
            p->answered = true;
            pending_run(c, p);
        }
    }
}

struct creds_worker *creds_new(struct worker *w)
{
    struct creds_worker *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->w = w;
    if (w->srv->has_redis) {
        c->redis = redis_conn_new(w->base, &w->srv->redis_url, on_redis_state, c);
        c->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, c);
        struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
        if (!c->redis || !c->sweep || event_add(c->sweep, &tv) < 0) {
            creds_free(c);
            return NULL;
        }
    }
    return c;
}

void creds_free(struct creds_worker *c)
{
    if (!c)
        return;
    for (struct pending *p = c->parked; p; p = p->next)
        p->answered = true; /* no answers while shutting down */
    /* Freeing the connection completes every command with a NULL reply,
     * which frees the parked requests. */
    redis_conn_free(c->redis);
    while (c->parked)
        pending_free(c, c->parked);
    if (c->sweep)
        event_free(c->sweep);
    free(c);
}

static int keys_from_entry(const struct cache_entry *e, enum auth_alg alg, uint8_t keys[][32])
{
    if (alg == AUTH_ALG_SHA256 && e->has_sha256) {
        memcpy(keys[0], e->sha256, 32);
        return 1;
    }
    if (alg == AUTH_ALG_MD5 && e->has_md5) {
        memset(keys[0], 0, 32);
        memcpy(keys[0], e->md5, 16);
        return 1;
    }
    return 0;
}

/* REST credentials under secrets[]: one candidate key per secret. */
static int keys_from_secrets(const struct creds_worker *c, char secrets[][CONF_STR], size_t n_secrets,
                             const char *user, size_t len, enum auth_alg alg, uint8_t keys[][32],
                             size_t max)
{
    int n = 0;
    for (size_t i = 0; i < n_secrets && (size_t)n < max; i++) {
        char pw[64];
        if (auth_rest_password(secrets[i], user, len, pw, sizeof pw) < 0)
            continue;
        memset(keys[n], 0, 32);
        int rc = alg == AUTH_ALG_SHA256
                     ? auth_key_sha256(user, len, c->w->conf->realm, pw, keys[n])
                     : auth_key_md5(user, len, c->w->conf->realm, pw, keys[n]);
        if (rc == 0)
            n++;
    }
    return n;
}

enum creds_result creds_lookup(struct worker *w, const char *user, size_t len, enum auth_alg alg,
                               uint64_t now, uint8_t keys[][32], size_t max, int *n)
{
    struct creds_worker *c = w->creds;
    *n = auth_store_keys(&w->srv->auth, user, len, alg, now, keys, max);
    if (*n > 0)
        return CREDS_FOUND;
    if (*n == AUTH_ERR_STALE)
        return CREDS_STALE;
    *n = 0;
    if (!c || !c->redis)
        return CREDS_UNKNOWN;

    uint64_t expiry;
    bool rest = auth_rest_expiry(user, len, &expiry) == 0;
    struct pending *p = c->resume;
    if (p && !p->quota && p->user_len == len && memcmp(p->user, user, len) == 0) {
        /* Re-running a parked request: use exactly what Redis said. */
        if (p->failed)
            return CREDS_UNAVAILABLE;
        struct cache_entry e;
        entry_from_pending(c, p, &e);
        if ((*n = keys_from_entry(&e, alg, keys)) > 0)
            return CREDS_FOUND;
        if (rest && expiry < now)
            return CREDS_STALE;
        if (rest && (*n = keys_from_secrets(c, p->secrets, p->n_secrets, user, len, alg, keys, max)) > 0)
            return CREDS_FOUND;
        return CREDS_UNKNOWN;
    }

    uint64_t ms = clock_mono_ms();
    const struct cache_entry *e = &c->cache[name_hash(user, len) % CACHE_SLOTS];
    bool cached = e->expires_ms > ms && e->user_len == len && memcmp(e->user, user, len) == 0;
    if (cached && !e->negative) {
        *n = keys_from_entry(e, alg, keys);
        return *n > 0 ? CREDS_FOUND : CREDS_UNKNOWN;
    }
    if (cached && !rest)
        return CREDS_UNKNOWN;
    if (cached && rest && c->secrets_expires_ms > ms) {
        if (expiry < now)
            return CREDS_STALE;
        *n = keys_from_secrets(c, c->secrets, c->n_secrets, user, len, alg, keys, max);
        return *n > 0 ? CREDS_FOUND : CREDS_UNKNOWN;
    }
    return redis_conn_up(c->redis) ? CREDS_PENDING : CREDS_UNAVAILABLE;
}

static int ask(struct creds_worker *c, struct pending *p, redis_reply_fn fn, const char *key,
               size_t key_len)
{
    const char *argv[2] = { fn == on_secrets ? "SMEMBERS" : "GET", key };
    size_t lens[2] = { strlen(argv[0]), key_len };
    if (redis_conn_command(c->redis, fn, p, 2, argv, lens) < 0)
        return -1;
    p->waiting++;
    return 0;
}

static struct pending *pending_new(struct worker *w, const struct turn_client *tc,
                                   const struct sockaddr *client, const uint8_t *msg, size_t len,
                                   const char *user, size_t user_len)
{
    struct creds_worker *c = w->creds;
    if (!c || !c->redis || c->n_parked >= CREDS_MAX_PENDING || len > PARK_MSG ||
        user_len > AUTH_MAX_USERNAME)
        return NULL;
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c = c;
    p->tc = *tc;
    memcpy(&p->client, client, net_addr_len(client));
    memcpy(&p->local, tc->local, net_addr_len(tc->local));
    p->tc.local = (struct sockaddr *)&p->local;
    memcpy(p->msg, msg, len);
    p->len = len;
    memcpy(p->user, user, user_len);
    p->user_len = user_len;
    p->deadline_ms = clock_mono_ms() + CREDS_TIMEOUT_MS;
    p->next = c->parked;
    if (c->parked)
        c->parked->prev = p;
    c->parked = p;
    c->n_parked++;
    return p;
}

static void on_quota(struct redisReply *r, void *arg)
{
    struct pending *p = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        p->failed = true;
    else
        p->quota_ok = r->integer == 1;
    if (--p->waiting == 0)
        pending_done(p);
}

int creds_park_quota(struct worker *w, const struct turn_client *tc, const struct sockaddr *client,
                     const uint8_t *msg, size_t len, const char *user, size_t user_len,
                     uint64_t sid, uint32_t lifetime_s)
{
    struct creds_worker *c = w->creds;
    struct pending *p = pending_new(w, tc, client, msg, len, user, user_len);
    if (!p)
        return -1;
    p->quota = true;
    p->sid = sid;
    char key[AUTH_MAX_USERNAME + CONF_STR + 64], now[24], limit[16], score[24], member[24], ttl[16];
    size_t klen = shared_quota_key(w, user, user_len, key, sizeof key);
    time_t t = time(NULL);
    snprintf(now, sizeof now, "%lld", (long long)t);
    snprintf(limit, sizeof limit, "%u", w->limits.user_quota);
    snprintf(score, sizeof score, "%lld", (long long)t + lifetime_s);
    snprintf(member, sizeof member, "%018llu", (unsigned long long)sid);
    snprintf(ttl, sizeof ttl, "%u", lifetime_s + 60);
    const char *argv[] = { "EVAL", shared_quota_script, "1", key, now, limit, score, member, ttl };
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    lens[3] = klen;
    if (!klen || redis_conn_command(c->redis, on_quota, p, 9, argv, lens) < 0) {
        pending_free(c, p);
        return -1;
    }
    p->waiting = 1;
    return 0;
}

int creds_quota_decision(const struct worker *w, uint64_t *sid)
{
    const struct pending *p = w->creds ? w->creds->resume : NULL;
    if (!p || !p->quota)
        return -1;
    *sid = p->sid;
    return p->failed ? 2 : p->quota_ok;
}

int creds_park(struct worker *w, const struct turn_client *tc, const struct sockaddr *client,
               const uint8_t *msg, size_t len, const char *user, size_t user_len)
{
    struct creds_worker *c = w->creds;
    struct pending *p = pending_new(w, tc, client, msg, len, user, user_len);
    if (!p)
        return -1;

    /* The key names hold the raw user name as one argument: no quoting,
     * no injection, whatever bytes it contains. */
    uint64_t expiry;
    p->want_user = true;
    p->want_secrets = auth_rest_expiry(user, user_len, &expiry) == 0;
    stats_add(&w->stats.redis_lookups, 1);
    char key[64 + CONF_STR + AUTH_MAX_USERNAME];
    size_t base = (size_t)snprintf(key, sizeof key, "turn/realm/%s/user/", w->conf->realm);
    memcpy(key + base, user, user_len); /* raw bytes, NULs included */
    int rc = 0;
    memcpy(key + base + user_len, "/key", 4);
    rc |= ask(c, p, on_key, key, base + user_len + 4);
    memcpy(key + base + user_len, "/password", 9);
    rc |= ask(c, p, on_password, key, base + user_len + 9);
    if (p->want_secrets) {
        int n = snprintf(key, sizeof key, "turn/realm/%s/secret", w->conf->realm);
        rc |= ask(c, p, on_secrets, key, (size_t)n);
    }
    if (rc < 0) {
        p->failed = true;
        p->answered = true; /* the caller answers 500 itself */
        if (p->waiting == 0)
            pending_free(c, p);
        return -1;
    }
    return 0;
}

void creds_forget_conn(struct worker *w, const void *conn)
{
    if (!w->creds)
        return;
    for (struct pending *p = w->creds->parked; p; p = p->next)
        if (p->tc.conn == conn)
            p->answered = true;
}

bool creds_redis_up(const struct worker *w)
{
    return w->creds && redis_conn_up(w->creds->redis);
}

unsigned long creds_redis_rtt_us(const struct worker *w)
{
    return w->creds ? redis_conn_rtt_us(w->creds->redis) : 0;
}

struct redis_conn *creds_redis(const struct worker *w)
{
    return w->creds ? w->creds->redis : NULL;
}
