/*
 * park.c - see park.h.
 */
#include "server/turn/park.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/clock.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/turn/turn_int.h"

/*
 * One parked request. Owned by its park table; listed there (all) and in
 * its session's list (s->parked); freed when answered or when its session
 * ends. ask is the cluster's handle until the answer or a cancel.
 */
struct turn_park {
    struct turn_park *next, *prev;   /* the table's list */
    struct turn_park *snext, *sprev; /* the session's list */
    struct park_table *pt;
    struct turn_session *s;
    struct cluster_ask *ask;
    park_resume_fn resume;           /* the step that waited */
    bool ready;                      /* answered: waiting for the drain */
    uint64_t id;                     /* park_move: named in the other worker's answer */
    uint64_t deadline_ms;
    struct sockaddr_storage client;
    /* the authentication so far; au.user points at user[] */
    struct turn_auth au;
    size_t user_len;
    char user[AUTH_MAX_USERNAME + 1];
    struct park_answer ans;
    size_t len;
    uint8_t msg[PARK_MSG];
};

/* The parked requests of one worker; owned by its TURN service. */
struct park_table {
    struct turn *svc;
    struct worker_stats *stats;
    struct turn_park *all;
    unsigned n;
    uint64_t next_id;
    struct event *ready_ev;  /* drains the answered ones, from the loop */
    struct event *sweep_ev;  /* deadlines, armed while anything waits */
    uint8_t out[2048];
};

static void on_ready(evutil_socket_t fd, short what, void *arg);
static void on_sweep(evutil_socket_t fd, short what, void *arg);

struct park_table *park_table_new(struct turn *svc, struct event_base *base,
                                  struct worker_stats *stats)
{
    struct park_table *pt = calloc(1, sizeof *pt);
    if (!pt)
        return NULL;
    pt->svc = svc;
    pt->stats = stats;
    pt->ready_ev = event_new(base, -1, 0, on_ready, pt);
    pt->sweep_ev = evtimer_new(base, on_sweep, pt);
    if (!pt->ready_ev || !pt->sweep_ev) {
        park_table_free(pt);
        return NULL;
    }
    return pt;
}

void park_table_free(struct park_table *pt)
{
    if (!pt)
        return;
    if (pt->ready_ev)
        event_free(pt->ready_ev);
    if (pt->sweep_ev)
        event_free(pt->sweep_ev);
    free(pt);
}

static void park_unlink(struct turn_park *p)
{
    struct park_table *pt = p->pt;
    if (p->prev)
        p->prev->next = p->next;
    else
        pt->all = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->sprev)
        p->sprev->snext = p->snext;
    else
        p->s->parked = p->snext;
    if (p->snext)
        p->snext->sprev = p->sprev;
    pt->n--;
    atomic_store_explicit(&pt->stats->redis_parked, pt->n, memory_order_relaxed);
}

static void park_free(struct turn_park *p)
{
    cluster_ask_cancel(p->ask);
    park_unlink(p);
    OPENSSL_cleanse(p, sizeof *p); /* keys: its own, or a token's */
    free(p);
}

bool park_find(const struct park_table *pt, const struct turn_session *s,
               const struct sockaddr *client, const uint8_t *tid)
{
    for (const struct turn_park *p = pt->all; p; p = p->next)
        if (p->s == s && memcmp(p->msg + 8, tid, STUN_TID_LEN) == 0 &&
            net_addr_equal((const struct sockaddr *)&p->client, client))
            return true;
    return false;
}

/* A new parked request of step for m, listed; NULL if it cannot wait. */
static struct turn_park *park_new(struct park_table *pt, struct turn_session *s,
                                  const struct stun_msg *m, const struct sockaddr *client,
                                  const struct turn_auth *au, park_resume_fn resume)
{
    if (pt->n >= PARK_MAX || m->len > PARK_MSG || au->user_len > AUTH_MAX_USERNAME)
        return NULL;
    struct turn_park *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pt = pt;
    p->id = ++pt->next_id;
    p->s = s;
    p->resume = resume;
    p->deadline_ms = clock_mono_ms() + PARK_TIMEOUT_MS;
    memcpy(&p->client, client, net_addr_len(client));
    memcpy(p->msg, m->buf, m->len);
    p->len = m->len;
    p->au = *au;
    if (au->user_len) /* none yet while the realm is being looked up */
        memcpy(p->user, au->user, au->user_len);
    p->user_len = au->user_len;
    p->au.user = p->user;
    p->next = pt->all;
    if (pt->all)
        pt->all->prev = p;
    pt->all = p;
    p->snext = s->parked;
    if (s->parked)
        s->parked->sprev = p;
    s->parked = p;
    if (pt->n++ == 0) {
        struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
        event_add(pt->sweep_ev, &tv);
    }
    atomic_store_explicit(&pt->stats->redis_parked, pt->n, memory_order_relaxed);
    return p;
}

static void park_mark_ready(struct turn_park *p)
{
    p->ask = NULL;
    p->ready = true;
    event_active(p->pt->ready_ev, EV_TIMEOUT, 1);
}

/* Called from inside the Redis reply: store the answer, resume later. */
static void on_keys(void *arg, const struct cluster_keys *k)
{
    struct turn_park *p = arg;
    p->ans.keys = *k;
    park_mark_ready(p);
}

static void on_origin(void *arg, const struct cluster_origin *o)
{
    struct turn_park *p = arg;
    p->ans.origin = *o;
    park_mark_ready(p);
}

static void on_oauth(void *arg, const struct cluster_oauth *o)
{
    struct turn_park *p = arg;
    p->ans.oauth = *o;
    park_mark_ready(p);
}

static void on_quota(void *arg, enum cluster_quota_status status)
{
    struct turn_park *p = arg;
    p->ans.quota = status;
    park_mark_ready(p);
}

int park_origin(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
                const struct sockaddr *client, const struct turn_auth *au, const char *origin,
                size_t len, park_resume_fn resume)
{
    struct turn_park *p = park_new(pt, s, m, client, au, resume);
    if (!p)
        return -1;
    p->ask = cluster_origin_ask(pt->svc->env.cluster, origin, len, on_origin, p);
    if (!p->ask) {
        park_free(p);
        return -1;
    }
    return 0;
}

int park_oauth(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
               const struct sockaddr *client, const struct turn_auth *au, park_resume_fn resume)
{
    struct turn_park *p = park_new(pt, s, m, client, au, resume);
    if (!p)
        return -1;
    p->ask = cluster_oauth_ask(pt->svc->env.cluster, au->user, au->user_len, on_oauth, p);
    if (!p->ask) {
        park_free(p);
        return -1;
    }
    return 0;
}

int park_keys(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
              const struct sockaddr *client, const struct turn_auth *au, uint64_t now,
              park_resume_fn resume)
{
    struct turn_park *p = park_new(pt, s, m, client, au, resume);
    if (!p)
        return -1;
    p->ask = cluster_keys_ask(pt->svc->env.cluster, au->realm, au->user, au->user_len, au->alg,
                              now, on_keys, p);
    if (!p->ask) {
        park_free(p);
        return -1;
    }
    return 0;
}

int park_quota(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
               const struct sockaddr *client, const struct turn_auth *au, uint64_t sid,
               uint32_t lifetime_s, unsigned limit, park_resume_fn resume)
{
    struct turn_park *p = park_new(pt, s, m, client, au, resume);
    if (!p)
        return -1;
    p->ans.sid = sid;
    const struct realm *r = turn_realm(pt->svc, au->realm);
    p->ask = cluster_quota_ask(pt->svc->env.cluster, r->name, r->len, au->user, au->user_len,
                               sid, lifetime_s, limit, on_quota, p);
    if (!p->ask) {
        park_free(p);
        return -1;
    }
    return 0;
}

void park_session_end(struct turn_session *s)
{
    while (s->parked)
        park_free(s->parked);
}

/* Continue p at the step that waited; send what it answers. */
static void park_resume(struct park_table *pt, struct turn_park *p)
{
    struct turn_session *s = p->s;
    const struct sockaddr *client = (const struct sockaddr *)&p->client;
    struct stun_msg m;
    /* Realm indexes changed under it (a reload): let the client's
     * retransmission start over rather than land in another realm. */
    if (p->au.epoch != pt->svc->realm_epoch || stun_msg_decode(&m, p->msg, p->len) < 0)
        return;
    size_t len = p->resume(s, &m, client, &p->au, &p->ans, pt->out, sizeof pt->out);
    if (!len)
        return;
    txcache_put(pt->svc->tx, s->conn, client, m.tid, pt->out, len);
    struct iovec iov = { pt->out, len };
    s->ops->send(s->conn, client, s->local, &iov, 1, false);
    if (s->data_id && s->ops->bound)
        s->ops->bound(s->conn); /* a ConnectionBind: raw bytes from now on */
}

int park_move(struct park_table *pt, struct turn_session *s, const struct stun_msg *m,
              const struct sockaddr *client, const struct turn_auth *au, park_resume_fn resume,
              uint64_t *id)
{
    struct turn_park *p = park_new(pt, s, m, client, au, resume);
    if (!p)
        return -1;
    *id = p->id;
    return 0;
}

struct turn_session *park_move_answer(struct park_table *pt, uint64_t id, int code,
                                      const struct sockaddr **client)
{
    for (struct turn_park *p = pt->all; p; p = p->next) {
        if (p->id != id || p->ready)
            continue;
        p->ans.move = code;
        park_mark_ready(p);
        *client = (const struct sockaddr *)&p->client;
        return p->s;
    }
    return NULL;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct park_table *pt = arg;
    for (;;) {
        struct turn_park *p = pt->all;
        while (p && !p->ready)
            p = p->next;
        if (!p)
            return;
        /* Off every list before it runs: whatever the request does next
         * (park again, end its allocation), this one is done. */
        park_unlink(p);
        park_resume(pt, p);
        OPENSSL_cleanse(p, sizeof *p);
        free(p);
    }
}

static void park_fail(struct turn_park *p)
{
    cluster_ask_cancel(p->ask);
    p->ans.origin.status = CLUSTER_ORIGIN_FAILED;
    p->ans.oauth.status = CLUSTER_KEYS_FAILED;
    p->ans.keys.status = CLUSTER_KEYS_FAILED;
    p->ans.quota = CLUSTER_QUOTA_FAILED;
    p->ans.move = 500;
    park_mark_ready(p);
}

void park_fail_all(struct park_table *pt)
{
    for (struct turn_park *p = pt->all; p; p = p->next)
        if (!p->ready)
            park_fail(p);
}

/* Requests past their deadline stop waiting: the question is cancelled (a
 * late quota grant is given back by cluster/) and the request resumes with
 * a failed answer. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct park_table *pt = arg;
    uint64_t now = clock_mono_ms();
    for (struct turn_park *p = pt->all; p; p = p->next) {
        if (p->ready || now < p->deadline_ms)
            continue;
        park_fail(p);
    }
    if (pt->n) {
        struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
        event_add(pt->sweep_ev, &tv);
    }
}
