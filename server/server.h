/*
 * server.h - the process-wide server and its per-core workers.
 *
 * Threading model: one worker thread per core, each with its own libevent
 * base and its own SO_REUSEPORT sockets for every listen address, so the
 * kernel spreads clients and no state is shared on the packet path. The main
 * thread only handles signals, TLS certificate reloads and shutdown.
 */
#ifndef TERN_SERVER_SERVER_H
#define TERN_SERVER_SERVER_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/redis.h"
#include "conf/conf.h"
#include "server/alloc.h"
#include "server/policy.h"
#include "server/shared.h"
#include "server/stats.h"

struct event_base;
struct event;
struct udp_sock;
struct dtls_ep;
struct stream_listener;
struct stream_conn;
struct turn_worker;
struct creds_worker;
struct quota;
struct reserve;
struct metrics;

/* Reported by --version, the ready line and tern_build_info. */
#define TERN_VERSION "0.1.0"

#define WORKER_MAX_LISTENERS (CONF_MAX_LISTEN * 4)

/*
 * A worker: owned by the server, runs on its own thread. Everything it points
 * to (sockets, events, connections) is created and freed by this worker's
 * thread only; conf and srv are borrowed and outlive it.
 */
struct worker {
    int id;
    pthread_t thread;
    struct event_base *base; /* lock-free: only this worker's thread touches it */
    int stop_fd;             /* eventfd: the main thread's only way in (worker_stop) */
    struct event *stop_ev;
    const struct conf *conf;
    struct server *srv;
    struct udp_sock *udp[WORKER_MAX_LISTENERS];
    size_t n_udp;
    struct dtls_ep *dtls[CONF_MAX_LISTEN];
    size_t n_dtls;
    struct stream_listener *listeners[CONF_MAX_LISTEN];
    size_t n_listeners;
    struct stream_conn *conns; /* live TCP/TLS connections (stream.c) */
    unsigned n_sessions;   /* live TCP/TLS/DTLS sessions, bounded by max_connections */
    struct udp_io *io;     /* recvmmsg/sendmmsg scratch, owned */
    struct alloc_table allocs;  /* this worker's TURN allocations */
    uint64_t clock_base_ms;     /* alloc_now() epoch */
    uint32_t held_now;          /* alloc_now() held for a batch (alloc_clock_hold); else 0 */
    struct turn_worker *turn;   /* transaction cache, rate limits; owned */
    struct worker_stats stats;  /* written by this worker only (stats.h) */
    struct creds_worker *creds; /* Redis connection and credential cache; owned */
    struct shared_limits limits; /* effective limits (conf, or Redis per realm) */
    struct event *limits_timer;  /* polls Redis for them; owned */
    unsigned alternate_next;     /* round robin over alternate_servers */
    unsigned relay_next;         /* round robin over relay.ip */
};

/*
 * The server: owns the workers and the TLS/DTLS contexts. The contexts are
 * replaced on SIGHUP under tls_lock; a connection takes a reference to the
 * current one when it starts, so a reload never disturbs live sessions.
 */
struct server {
    const struct conf *conf; /* borrowed from main */
    struct worker *workers;
    int n_workers;
    pthread_mutex_t tls_lock;
    SSL_CTX *tls_ctx;  /* NULL when no TLS listener */
    SSL_CTX *dtls_ctx; /* NULL when no DTLS listener */
    uint8_t cookie_secret[32]; /* DTLS HelloVerifyRequest cookies */
    uint8_t nonce_key[32];     /* TURN nonces (auth_nonce_make) */
    struct auth_store auth;    /* static users and REST secrets, read-only */
    struct policy policy;      /* relay peer policy, read-only */
    struct quota *quota;       /* allocation quotas (mutex inside) */
    struct reserve *resv;      /* EVEN-PORT reservations (mutex inside) */
    bool has_redis;            /* auth.redis set and parsed */
    uint32_t node_id;          /* random: makes allocation ids unique across nodes */
    struct redis_url redis_url;
    struct metrics *metrics;   /* the /metrics endpoint (metrics.c); NULL when off; owned */
};

/* Worker lifecycle (worker.c). */
int worker_init(struct worker *w, struct server *srv, int id);
int worker_start(struct worker *w);
void worker_stop(struct worker *w);
void worker_join_free(struct worker *w);
/* Pre-flight: is any listen address already in use? 0, or -1 with err set. */
int worker_probe_addrs(const struct conf *c, char *err, size_t err_len);

/* TLS contexts (tls.c). Build both from conf; 0 or -1 with the reason logged. */
int tls_server_load(struct server *srv);
/* Take a reference to the current context (SSL_CTX_free it when done). */
SSL_CTX *tls_server_ctx(struct server *srv, bool dtls);
void tls_server_free(struct server *srv);

#endif
