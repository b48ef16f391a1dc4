/*
 * worker.c - a worker thread: its event base, its instance of every layer
 * wired together here, and the main thread's ways in (stop, re-read the
 * host's addresses, tasks: tasks.h). See server.h for the threading model:
 *
 *   cluster   (Redis: credentials, quotas, statistics, realm limits)
 *   relay     (allocations; tells turn of their end through a hook)
 *   turn      (TURN service; uses relay and cluster)
 *   transport (sockets; sessions hand messages to stun, then turn)
 *
 * Shutdown runs the other way: the transport ends every session (their
 * parked requests are cancelled, their allocations end), then the relay
 * table, the TURN service and the cluster go.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/cluster/cluster.h"
#include "server/core/log.h"
#include "server/relay/alloc.h"
#include "server/server.h"
#include "server/transport/transport.h"
#include "server/turn/turn.h"

/* One posted task, shared by every worker, with one list node per worker
 * allocated with it; owned by this file from tasks_post until its done()
 * has run (by then no worker's list holds a node of it). */
struct task {
    task_run_fn run;
    task_done_fn done;
    void *arg;
    atomic_int remaining;
    struct task *next; /* the main thread's list of finished tasks */
    struct task_node node[];
};

static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *srv = arg;
    pthread_mutex_lock(&srv->tasks_lock);
    struct task *t = srv->tasks_finished;
    srv->tasks_finished = NULL;
    pthread_mutex_unlock(&srv->tasks_lock);
    while (t) {
        struct task *next = t->next;
        t->done(t->arg);
        free(t);
        t = next;
    }
}

int tasks_init(struct server *srv)
{
    pthread_mutex_init(&srv->tasks_lock, NULL);
    srv->tasks_ev = event_new(srv->base, -1, 0, on_finished, srv);
    return srv->tasks_ev ? 0 : -1;
}

void tasks_free(struct server *srv)
{
    if (srv->tasks_ev)
        event_free(srv->tasks_ev);
    srv->tasks_ev = NULL;
    pthread_mutex_destroy(&srv->tasks_lock);
}

struct task *tasks_new(struct server *srv, task_run_fn run, task_done_fn done, void *arg)
{
    struct task *t = calloc(1, sizeof *t + (size_t)srv->n_workers * sizeof t->node[0]);
    if (!t)
        return NULL;
    t->run = run;
    t->done = done;
    t->arg = arg;
    atomic_init(&t->remaining, srv->n_workers);
    return t;
}

int tasks_post(struct server *srv, task_run_fn run, task_done_fn done, void *arg)
{
    struct task *t = tasks_new(srv, run, done, arg);
    if (!t)
        return -1;
    tasks_send(srv, t);
    return 0;
}

void tasks_discard(struct task *t)
{
    free(t);
}

void tasks_send(struct server *srv, struct task *t)
{
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        struct task_node *n = &t->node[i];
        n->task = t;
        pthread_mutex_lock(&w->tasks_lock);
        if (w->tasks_tail)
            w->tasks_tail->next = n;
        else
            w->tasks_head = n;
        w->tasks_tail = n;
        pthread_mutex_unlock(&w->tasks_lock);
        worker_post(w, WORKER_TASKS);
    }
}

void tasks_run_pending(struct worker *w)
{
    pthread_mutex_lock(&w->tasks_lock);
    struct task_node *n = w->tasks_head;
    w->tasks_head = w->tasks_tail = NULL;
    pthread_mutex_unlock(&w->tasks_lock);
    struct server *srv = w->srv;
    while (n) {
        struct task_node *next = n->next;
        struct task *t = n->task;
        t->run(w, t->arg);
        if (atomic_fetch_sub(&t->remaining, 1) == 1) {
            pthread_mutex_lock(&srv->tasks_lock);
            t->next = srv->tasks_finished;
            srv->tasks_finished = t;
            pthread_mutex_unlock(&srv->tasks_lock);
            event_active(srv->tasks_ev, EV_TIMEOUT, 1);
        }
        n = next;
    }
}

/* transport_env.handoff: a connection for worker `to` (RFC 6062
 * ConnectionBind), from any worker's thread. */
static int worker_handoff(void *arg, int to, struct stream_handoff *h)
{
    struct server *srv = arg;
    if (to < 0 || to >= srv->n_workers)
        return -1;
    struct worker *w = &srv->workers[to];
    pthread_mutex_lock(&w->handoff_lock);
    h->next = w->handoff_head;
    w->handoff_head = h;
    pthread_mutex_unlock(&w->handoff_lock);
    worker_post(w, WORKER_HANDOFF);
    return 0;
}

static struct stream_handoff *handoff_take(struct worker *w)
{
    pthread_mutex_lock(&w->handoff_lock);
    struct stream_handoff *h = w->handoff_head;
    w->handoff_head = NULL;
    pthread_mutex_unlock(&w->handoff_lock);
    return h;
}

/* turn_env.move_post: an RFC 8016 message for worker `to`, from any
 * worker's thread. */
static int worker_move_post(void *arg, int to, struct turn_move *mv)
{
    struct server *srv = arg;
    if (to < 0 || to >= srv->n_workers)
        return -1;
    struct worker *w = &srv->workers[to];
    pthread_mutex_lock(&w->handoff_lock);
    mv->next = w->move_head;
    w->move_head = mv;
    pthread_mutex_unlock(&w->handoff_lock);
    worker_post(w, WORKER_MOVE);
    return 0;
}

static struct turn_move *move_take(struct worker *w)
{
    pthread_mutex_lock(&w->handoff_lock);
    struct turn_move *mv = w->move_head;
    w->move_head = NULL;
    pthread_mutex_unlock(&w->handoff_lock);
    return mv;
}

static void worker_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_error("worker %d: cannot read its wake-up: %s", w->id, strerror(errno));
    unsigned r = atomic_exchange(&w->requests, 0);
    if (r & WORKER_REFRESH_HOST)
        turn_refresh_host(w->turn);
    if (r & WORKER_TASKS)
        tasks_run_pending(w);
    for (struct stream_handoff *h = (r & WORKER_HANDOFF) ? handoff_take(w) : NULL, *next; h; h = next) {
        next = h->next;
        transport_adopt(w->transport, h);
    }
    for (struct turn_move *mv = (r & WORKER_MOVE) ? move_take(w) : NULL, *next; mv; mv = next) {
        next = mv->next;
        turn_on_move(w->turn, mv);
    }
    if (r & WORKER_STOP)
        event_base_loopbreak(w->base);
}

/* A base without locks: every event of a worker is added, fired and removed
 * on its own thread, so libevent's per-call mutex would be pure cost on the
 * packet path. Requests from the main thread come through an eventfd. */
static struct event_base *worker_base_new(struct worker *w)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base)
        return NULL;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        return NULL;
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, worker_on_wake, w);
    if (!w->wake_ev || event_add(w->wake_ev, NULL) < 0)
        return NULL;
    return w->base;
}

static struct cluster *worker_cluster_new(struct worker *w)
{
    struct cluster_env ce = { .worker_id = w->id, .base = w->base, .conf = w->conf,
                              .url = &w->gen->redis_url, .stats = &w->stats,
                              .realms = &w->realms };
    return cluster_new(&ce);
}

/* The configuration's realms, in its order (the indexes of auth_realms),
 * with their limits until Redis says otherwise. */
static void worker_fill_realms(struct worker *w, const struct gen *g)
{
    struct realm_set *old = malloc(sizeof *old); /* 7 KB: not on a worker's stack */
    if (old)
        *old = w->realms;
    realm_set_reset(&w->realms);
    for (size_t i = 0; i < conf_realm_count(&g->conf); i++) {
        struct conf_realm_view v;
        conf_realm_get(&g->conf, i, &v);
        struct limits l = { v.max_bps, v.user_quota, v.total_quota };
        realm_set_add(&w->realms, v.name, strlen(v.name), &l, g->realm_stats[i]);
    }
    if (old)
        realm_set_carry(&w->realms, old);
    free(old);
}

void worker_reconfigure(struct worker *w, struct gen *g)
{
    const struct conf *c = &g->conf;
    w->gen = g;
    w->conf = c;
    worker_fill_realms(w, g);
    relay_table_set_conf(w->relay, c);
    turn_reconfigure(w->turn, c, &g->auth);
    if (g->has_redis && w->cluster) {
        cluster_reconfigure(w->cluster, c, &g->redis_url);
    } else if (g->has_redis) {
        w->cluster = worker_cluster_new(w);
        if (!w->cluster)
            log_error("worker %d: out of memory: no Redis until the next reload", w->id);
        turn_set_cluster(w->turn, w->cluster);
    } else if (w->cluster) {
        turn_set_cluster(w->turn, NULL); /* its parked requests let go first */
        cluster_free(w->cluster);
        w->cluster = NULL;
        atomic_store_explicit(&w->stats.redis_up, 0, memory_order_relaxed);
    }
    char err[256];
    if (transport_reconfigure(w->transport, c, err, sizeof err) < 0)
        log_error("reload: worker %d: %s", w->id, err);
}

int worker_init(struct worker *w, struct server *srv, int id)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->srv = srv;
    w->gen = srv->gen;
    w->conf = &w->gen->conf;
    w->wake_fd = -1;
    pthread_mutex_init(&w->tasks_lock, NULL);
    pthread_mutex_init(&w->handoff_lock, NULL);
    const struct conf *c = w->conf;
    clock_scaled_init(&w->clock, c->time_scale);
    worker_fill_realms(w, w->gen);
    if (!worker_base_new(w))
        goto nomem;
    if (w->gen->has_redis && !(w->cluster = worker_cluster_new(w)))
        goto nomem;
    struct turn_env te = { .worker_id = id, .n_workers = srv->n_workers, .node_id = srv->node_id,
                           .base = w->base, .conf = c, .stats = &w->stats, .clock = &w->clock,
                           .realms = &w->realms, .auth = &w->gen->auth,
                           .nonce_key = srv->nonce_key, .quota = srv->quota,
                           .resv = srv->resv, .cluster = w->cluster,
                           .rate_sources = srv->rate, .draining = &srv->draining,
                           .move_post = worker_move_post, .move_arg = srv };
    if (!(w->turn = turn_new(&te)))
        goto nomem;
    struct relay_env re = { .base = w->base, .conf = c, .clock = &w->clock, .stats = &w->stats,
                            .realms = &w->realms, .quota = srv->quota,
                            .on_death = turn_on_alloc_death, .death_arg = w->turn,
                            .on_tcp = turn_on_tcp, .worker_id = id,
                            .offload = srv->offload };
    if (!(w->relay = relay_table_new(&re)))
        goto nomem;
    turn_set_relay(w->turn, w->relay);
    struct transport_env xe = { .worker_id = id, .n_workers = srv->n_workers, .base = w->base, .conf = c, .stats = &w->stats,
                                .clock = &w->clock, .turn = w->turn, .tls = &srv->tls,
                                .cookie_secret = srv->cookie_secret,
                                .handoff = worker_handoff, .handoff_arg = srv };
    if (!(w->transport = transport_new(&xe)))
        goto nomem;
    char err[256];
    if (transport_listen_all(w->transport, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
nomem:
    log_error("worker %d: out of memory", id);
    return -1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc) {
        log_error("worker %d: cannot start thread: %s", w->id, strerror(rc));
        return -1;
    }
    return 0;
}

void worker_post(struct worker *w, enum worker_request r)
{
    /* The eventfd stays readable until read, so this also reaches a worker
     * whose thread has not entered its loop yet. */
    uint64_t one = 1;
    atomic_fetch_or(&w->requests, (unsigned)r);
    if (w->base && w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof one) < 0)
        log_error("worker %d: cannot wake: %s", w->id, strerror(errno));
}

void worker_join(struct worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    w->thread = 0;
}

void worker_join_free(struct worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    for (struct stream_handoff *h = w->base ? handoff_take(w) : NULL, *next; h; h = next) {
        next = h->next;
        transport_handoff_free(h);
    }
    for (struct turn_move *mv = w->base ? move_take(w) : NULL, *next; mv; mv = next) {
        next = mv->next;
        turn_move_free(mv, w->srv->quota);
    }
    transport_free(w->transport);
    relay_table_free(w->relay);
    turn_free(w->turn);
    cluster_free(w->cluster);
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->base && w->wake_fd >= 0) /* a worker never initialised is all zero */
        close(w->wake_fd);
    if (w->base) {
        event_base_free(w->base);
        pthread_mutex_destroy(&w->tasks_lock);
        pthread_mutex_destroy(&w->handoff_lock);
    }
    memset(w, 0, sizeof *w);
}
