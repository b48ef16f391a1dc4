/*
 * server.h - the composition root: the process-wide server and its per-core
 * workers. Only main.c, worker.c and metrics.c include this; every layer
 * below gets what it needs from them at init.
 *
 * Threading model: one worker thread per core, each with its own libevent
 * base and its own SO_REUSEPORT sockets for every listen address, so the
 * kernel spreads clients and no state is shared on the packet path. The main
 * thread only handles signals, reloads, the metrics endpoint and shutdown.
 */
#ifndef TERN_SERVER_SERVER_H
#define TERN_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "server/cluster/redis.h"
#include "server/core/clock.h"
#include "server/core/core.h"
#include "server/core/realm.h"
#include "server/core/stats.h"
#include "server/tasks.h"
#include "server/transport/tls.h"

struct event_base;
struct event;
struct cluster;
struct relay_table;
struct turn;
struct transport;
struct quota;
struct reserve;
struct metrics;
struct rate_sources;
struct task;
struct control;
struct control_req;
struct stream_handoff;
struct turn_move;

/* Reported by --version, the ready line and tern_build_info. */
#define TERN_VERSION "0.1.0"

/*
 * A generation: a configuration file as parsed and what is built from it
 * once for every worker. Read-only once published. Owned by the server; a
 * reload publishes a new one and frees the old when every worker has
 * switched (reload.c).
 */
struct gen {
    struct conf conf;
    struct auth_realms auth;   /* static users and REST secrets, by realm */
    uint8_t realm_stats[CONF_MAX_REALMS + 1]; /* each realm's metrics id (gen_commit) */
    bool has_redis;            /* auth.redis set and parsed */
    struct redis_url redis_url;
};

/* What the main thread may ask of a worker (worker_post). */
enum worker_request { WORKER_STOP = 1u, WORKER_REFRESH_HOST = 2u, WORKER_TASKS = 4u,
                      WORKER_HANDOFF = 8u, WORKER_MOVE = 16u };

/*
 * A worker: owned by the server, runs on its own thread. Its modules are
 * created and freed by worker.c and touched by this worker's thread only;
 * conf and srv are borrowed and outlive it. stats is read by the metrics
 * thread (relaxed atomics, stats.h); requests is the main thread's only way
 * in, with wake_fd.
 */
struct worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    int wake_fd;               /* eventfd */
    struct event *wake_ev;
    atomic_uint requests;      /* enum worker_request bits */
    pthread_mutex_t tasks_lock;             /* the main thread hands tasks in (tasks.h) */
    struct task_node *tasks_head, *tasks_tail;
    pthread_mutex_t handoff_lock;           /* other workers hand connections in */
    struct stream_handoff *handoff_head;    /* owned until adopted (transport.h) */
    struct turn_move *move_head;            /* RFC 8016 messages, under handoff_lock (turn.h) */
    const struct conf *conf;   /* of gen */
    struct gen *gen;           /* the generation this worker runs on */
    struct server *srv;
    struct clock_scaled clock;
    struct realm_set realms;   /* the realms this worker knows, their limits (realm.h) */
    struct worker_stats stats;
    struct cluster *cluster;       /* NULL without auth.redis */
    struct relay_table *relay;
    struct turn *turn;
    struct transport *transport;
};

/* The server: owns the workers and everything they share (read-only, or
 * behind their own mutex). */
struct offload;

struct server {
    const char *conf_path;     /* the file, for reloads */
    struct gen *gen;           /* the current generation, owned */
    const struct conf *conf;   /* &gen->conf */
    struct worker *workers;
    int n_workers;
    struct tls_server tls;
    uint8_t cookie_secret[32]; /* DTLS HelloVerifyRequest cookies */
    uint8_t nonce_key[32];     /* TURN nonces (auth_nonce_make) */
    struct quota *quota;       /* allocation quotas (mutex inside) */
    struct reserve *resv;      /* EVEN-PORT reservations (mutex inside) */
    struct rate_sources *rate; /* unauthenticated answers per source (atomics) */
    uint32_t node_id;          /* random: makes allocation ids unique across nodes */
    struct metrics *metrics;   /* the /metrics endpoint (metrics.c); NULL when off; owned */
    struct event_base *base;   /* the main thread's (signals, metrics, control, tasks) */
    pthread_mutex_t tasks_lock;
    struct event *tasks_ev;    /* finished tasks, back on the main thread */
    struct task *tasks_finished;
    uint64_t started_ms;       /* clock_mono_ms when serving began */
    atomic_bool draining;      /* read by workers on Allocate (drain.h) */
    uint64_t drain_deadline_ms;
    struct event *drain_timer;
    struct control *control;   /* the control socket (control.h); NULL when off; owned */
    /* control_cmd_run, for the web console's API (console_api.c): handed in by
     * main.c, since the control requests reach reload.c, which restarts the
     * HTTP listener, and a direct call back would close that circle. */
    void (*control_run)(struct control_req *req);
    struct stats_realms stats_realms; /* the names behind the metrics' realm ids */
    struct offload *offload;   /* the kernel relay (relay/offload.h); NULL when off; owned */
};

/* Worker lifecycle (worker.c). */
int worker_init(struct worker *w, struct server *srv, int id);
int worker_start(struct worker *w);
/* Switch to generation g (reload), on the worker's own thread. */
void worker_reconfigure(struct worker *w, struct gen *g);
/* Ask the worker's thread for something (any thread). */
void worker_post(struct worker *w, enum worker_request r);
/* Wait for the worker's thread to end (then worker_join_free frees it). */
void worker_join(struct worker *w);
void worker_join_free(struct worker *w);

#endif
