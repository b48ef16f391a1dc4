/*
 * fake_cluster.c - see fake_cluster.h. Implements cluster.h; linked instead
 * of server/cluster/ into the unit tests and the TURN fuzz target.
 */
#include "test/unit/fake_cluster.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct cluster_ask {
    struct cluster_ask *next;
    struct cluster *c;
    bool quota, cancelled;
    cluster_keys_fn keys_done;
    cluster_quota_fn quota_done;
    void *arg;
    enum auth_alg alg;
    uint64_t sid;
    size_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
};

struct cluster {
    struct event_base *base;
    struct fake_cluster_state st;
    struct cluster_ask *asks;
};

struct cluster *fake_cluster_new(struct event_base *base)
{
    struct cluster *c = calloc(1, sizeof *c);
    c->base = base;
    c->st.up = true;
    c->st.mode = FAKE_LATER;
    c->st.quota_answer = CLUSTER_QUOTA_GRANTED;
    return c;
}

struct fake_cluster_state *fake_cluster_state(struct cluster *c)
{
    return &c->st;
}

bool cluster_up(const struct cluster *c)
{
    return c && c->st.up;
}

static void answer(struct cluster_ask *q)
{
    struct fake_cluster_state *st = &q->c->st;
    st->waiting--;
    if (q->cancelled) {
        if (q->quota && st->quota_answer == CLUSTER_QUOTA_GRANTED)
            st->released++; /* a late grant is given back, as cluster/ does */
        free(q);
        return;
    }
    if (q->quota) {
        q->quota_done(q->arg, st->quota_answer);
    } else {
        struct cluster_keys k = { .status = CLUSTER_KEYS_UNKNOWN };
        if (q->user_len == strlen(st->user) && memcmp(q->user, st->user, q->user_len) == 0) {
            k.status = CLUSTER_KEYS_FOUND;
            k.n = 1;
            memset(k.key[0], 0, 32);
            if (q->alg == AUTH_ALG_SHA256)
                memcpy(k.key[0], st->sha256, 32);
            else
                memcpy(k.key[0], st->md5, 16);
        }
        q->keys_done(q->arg, &k);
    }
    free(q);
}

static void on_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct cluster_ask *q = arg;
    struct cluster *c = q->c;
    for (struct cluster_ask **pp = &c->asks; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            answer(q);
            return;
        }
}

static struct cluster_ask *ask_new(struct cluster *c, bool quota, const char *user, size_t len)
{
    if (!c->st.up)
        return NULL;
    struct cluster_ask *q = calloc(1, sizeof *q);
    q->c = c;
    q->quota = quota;
    memcpy(q->user, user, len < AUTH_MAX_USERNAME ? len : AUTH_MAX_USERNAME);
    q->user_len = len;
    q->next = c->asks;
    c->asks = q;
    c->st.waiting++;
    if (c->st.mode == FAKE_NOW) {
        struct timeval zero = { 0, 0 };
        event_base_once(c->base, -1, EV_TIMEOUT, on_now, q, &zero);
    }
    return q;
}

int fake_cluster_answer_all(struct cluster *c)
{
    int n = 0;
    while (c->asks) {
        struct cluster_ask *q = c->asks;
        c->asks = q->next;
        n += !q->cancelled;
        answer(q);
    }
    return n;
}

void fake_cluster_free(struct cluster *c)
{
    while (c->asks) {
        struct cluster_ask *q = c->asks;
        c->asks = q->next;
        free(q);
    }
    free(c);
}

void cluster_keys_cached(struct cluster *c, unsigned realm, const char *user, size_t len,
                         enum auth_alg alg, uint64_t now, struct cluster_keys *out)
{
    (void)realm, (void)user, (void)len, (void)alg, (void)now;
    memset(out, 0, sizeof *out);
    out->status = c->st.up ? CLUSTER_KEYS_MISS : CLUSTER_KEYS_FAILED;
}

struct cluster_ask *cluster_keys_ask(struct cluster *c, unsigned realm, const char *user,
                                     size_t len, enum auth_alg alg, uint64_t now,
                                     cluster_keys_fn done, void *arg)
{
    (void)now, (void)realm;
    struct cluster_ask *q = ask_new(c, false, user, len);
    if (!q)
        return NULL;
    c->st.keys_asked++;
    q->alg = alg;
    q->keys_done = done;
    q->arg = arg;
    return q;
}

struct cluster_ask *cluster_quota_ask(struct cluster *c, const char *realm, size_t realm_len,
                                      const char *user, size_t len, uint64_t sid,
                                      uint32_t lifetime_s, unsigned limit,
                                      cluster_quota_fn done, void *arg)
{
    (void)lifetime_s, (void)limit, (void)realm, (void)realm_len;
    struct cluster_ask *q = ask_new(c, true, user, len);
    if (!q)
        return NULL;
    c->st.quota_asked++;
    q->sid = sid;
    q->quota_done = done;
    q->arg = arg;
    return q;
}

void cluster_quota_release(struct cluster *c, const char *realm, size_t realm_len,
                           const char *user, size_t len, uint64_t sid)
{
    (void)realm, (void)realm_len, (void)user, (void)len, (void)sid;
    c->st.released++;
}

/* The fake has no origin map: every origin is unmapped. */
void cluster_origin_cached(struct cluster *c, const char *origin, size_t len,
                           struct cluster_origin *out)
{
    (void)c, (void)origin, (void)len;
    out->status = CLUSTER_ORIGIN_NONE;
    out->realm = 0;
}

struct cluster_ask *cluster_origin_ask(struct cluster *c, const char *origin, size_t len,
                                       cluster_origin_fn done, void *arg)
{
    (void)c, (void)origin, (void)len, (void)done, (void)arg;
    return NULL;
}

void cluster_ask_cancel(struct cluster_ask *q)
{
    if (q && !q->cancelled) {
        q->cancelled = true;
        q->c->st.cancelled++;
    }
}

void cluster_alloc_status(struct cluster *c, const struct cluster_alloc *a, const char *status,
                          uint32_t lifetime)
{
    (void)a, (void)lifetime;
    if (strcmp(status, "new") == 0)
        c->st.status_new++;
    else
        c->st.status_refreshed++;
}

void cluster_alloc_deleted(struct cluster *c, const struct cluster_alloc *a)
{
    (void)a;
    c->st.deleted++;
}

/* Nor does it hold RFC 7635 keys: every kid it is asked about is unknown. */
void cluster_oauth_cached(struct cluster *c, const char *kid, size_t len,
                          struct cluster_oauth *out)
{
    (void)c, (void)kid, (void)len;
    memset(out, 0, sizeof *out);
    out->status = CLUSTER_KEYS_UNKNOWN;
}

struct cluster_ask *cluster_oauth_ask(struct cluster *c, const char *kid, size_t len,
                                      cluster_oauth_fn done, void *arg)
{
    (void)c, (void)kid, (void)len, (void)done, (void)arg;
    return NULL;
}
