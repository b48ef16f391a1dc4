/*
 * metrics.c - see metrics.h.
 *
 * Design: the workers only ever increment their own counters (stats.h); all
 * the work of a scrape happens here, on the main thread: sum every worker's
 * counters with relaxed loads into a plain snapshot, then print each family
 * with its HELP and TYPE lines into one evbuffer that evhttp sends. Nothing
 * is cached between scrapes and nothing is reset, so counters only go up for
 * the life of the process, as Prometheus' rate() expects. Every label value
 * of a family is printed on every scrape, zeros included, so a series exists
 * from the first scrape and its first increment shows in rate().
 *
 * The listening socket is made here rather than by evhttp_bind_socket so
 * that a failed bind reports its own errno, and without SO_REUSEPORT (unlike
 * the workers' sockets): a second ternd on the same metrics port must fail
 * to start, not silently take half the scrapes.
 *
 * Adding a family (the Redis metrics, say): a metrics_write_* function
 * called from metrics_write_all, with its names documented in README.md.
 *
 * /metrics and /health stay open to whoever reaches the listener (a
 * scraper or a load balancer has no token); every other path is the web
 * console's (console.h), which the endpoint owns and frees before evhttp.
 */
#include "server/metrics.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/console.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/stats.h"
#include "server/drain.h"
#include "server/relay/offload.h"
#include "server/server.h"
#include "server/transport/accept.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_TIMEOUT_S 10  /* a scraper that stalls loses its connection */
#define METRICS_BACKLOG 16
#define METRICS_MAX_BODY 4096 /* the sign-in form's token and next= */

/* The endpoint; owned by the server (srv->metrics), freed by metrics_stop. */
struct metrics {
    struct server *srv;       /* borrowed; its workers outlive the endpoint */
    struct evhttp *http;      /* owned; owns the listening socket and connections */
    struct timespec started;  /* CLOCK_MONOTONIC at metrics_start, for uptime */
    struct accept_guard guard; /* out of descriptors: no spinning */
    struct console *console;  /* owned; every other path is its (console.h) */
    char name[NET_ADDRSTRLEN + 16];
};

/* Label values, in the order of the enums in stats.h. */
static const char *const method_names[STATS_N_METHODS] = {
    "binding", "allocate", "refresh", "create_permission", "channel_bind", "other",
};
static const char *const code_names[STATS_N_CODES] = {
    "200", "300", "400", "401", "403", "420", "437", "438",
    "440", "441", "442", "443", "486", "508", "other",
};
static const char *const transport_names[STATS_N_TRANSPORTS] = { "udp", "tcp", "tls", "dtls" };
static const char *const drop_names[STATS_N_DROPS] = {
    "no_permission", "no_allocation", "no_channel", "bandwidth",
    "rate_limit", "malformed", "send_failed", "unauth_budget",
};
static const char *const dir_names[STATS_N_DIRS] = { "to_peer", "to_client" };

/* A scrape's sum over every worker: plain numbers, read once each. Per
 * realm where the realm label is (stats.h: ids below n_realms). */
struct metrics_totals {
    unsigned n_realms;
    const char *realm[STATS_MAX_REALMS]; /* label values, quoted for the exposition */
    char realm_buf[STATS_MAX_REALMS][2 * 64 + 2];
    uint64_t requests[STATS_MAX_REALMS][STATS_N_METHODS][STATS_N_CODES];
    uint64_t auth_failures[STATS_MAX_REALMS];
    uint64_t allocations_created[STATS_MAX_REALMS];
    uint64_t permissions_created;
    uint64_t channels_bound;
    uint64_t bytes[STATS_MAX_REALMS][STATS_N_DIRS];
    uint64_t packets[STATS_MAX_REALMS][STATS_N_DIRS];
    uint64_t drops[STATS_N_DROPS];
    uint64_t tls_handshakes[2][2];
};

/* A realm name as a label value: backslash, quote and newline escaped. */
static void metrics_label(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n')
            out[n++] = '\\';
        out[n++] = *s == '\n' ? 'n' : *s;
    }
    out[n] = 0;
}

/* Realm label values: id 0 is the default realm under its name of the day. */
static void metrics_realm_names(const struct server *srv, struct metrics_totals *t)
{
    unsigned n = atomic_load_explicit(&((struct server *)srv)->stats_realms.n, memory_order_acquire);
    t->n_realms = n ? n : 1;
    for (unsigned r = 0; r < t->n_realms; r++) {
        metrics_label(r ? srv->stats_realms.name[r] : srv->conf->realm, t->realm_buf[r],
                      sizeof t->realm_buf[r]);
        t->realm[r] = t->realm_buf[r];
    }
}

static void metrics_sum_workers(const struct server *srv, struct metrics_totals *t)
{
    memset(t, 0, sizeof *t);
    metrics_realm_names(srv, t);
    for (int i = 0; i < srv->n_workers; i++) {
        const struct worker_stats *s = &srv->workers[i].stats;
        for (unsigned r = 0; r < STATS_MAX_REALMS; r++) {
            for (int m = 0; m < STATS_N_METHODS; m++)
                for (int c = 0; c < STATS_N_CODES; c++)
                    t->requests[r][m][c] += stats_read(&s->requests[r][m][c]);
            t->auth_failures[r] += stats_read(&s->auth_failures[r]);
            t->allocations_created[r] += stats_read(&s->allocations_created[r]);
            for (int d = 0; d < STATS_N_DIRS; d++) {
                t->bytes[r][d] += stats_read(&s->bytes[r][d]);
                t->packets[r][d] += stats_read(&s->packets[r][d]);
            }
        }
        t->permissions_created += stats_read(&s->permissions_created);
        t->channels_bound += stats_read(&s->channels_bound);
        for (int r = 0; r < STATS_N_DROPS; r++)
            t->drops[r] += stats_read(&s->drops[r]);
        for (int d = 0; d < 2; d++)
            for (int r = 0; r < 2; r++)
                t->tls_handshakes[d][r] += stats_read(&s->tls_handshakes[d][r]);
    }
}

static void metrics_write_family(struct evbuffer *b, const char *name, const char *type,
                                 const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one unlabelled series. */
static void metrics_write_single(struct evbuffer *b, const char *name, const char *type,
                                 const char *help, uint64_t value)
{
    metrics_write_family(b, name, type, help);
    evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

/* Process-level families: what is running and for how long. */
static void metrics_write_process(const struct metrics *m, struct evbuffer *b)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double up = (double)(now.tv_sec - m->started.tv_sec) +
                (double)(now.tv_nsec - m->started.tv_nsec) / 1e9;
    metrics_write_family(b, "tern_build_info", "gauge", "Always 1; the version of ternd.");
    evbuffer_add_printf(b, "tern_build_info{version=\"%s\"} 1\n", TERN_VERSION);
    metrics_write_family(b, "tern_uptime_seconds", "gauge",
                         "Seconds since ternd started serving.");
    evbuffer_add_printf(b, "tern_uptime_seconds %.3f\n", up);
    metrics_write_single(b, "tern_workers", "gauge", "Worker threads (one event loop each).",
                         (uint64_t)m->srv->n_workers);
    metrics_write_single(b, "tern_draining", "gauge",
                         "1 while the node is drained (no new allocations), else 0.",
                         drain_active(m->srv) ? 1 : 0);
}

/* Gauges: one series per worker, since SO_REUSEPORT may spread load unevenly
 * and an overloaded worker is what an operator needs to see. */
static void metrics_write_gauges(const struct server *srv, const struct metrics_totals *t,
                                 struct evbuffer *b)
{
    metrics_write_family(b, "tern_allocations", "gauge",
                         "Live TURN allocations, per worker and realm.");
    for (int i = 0; i < srv->n_workers; i++)
        for (unsigned r = 0; r < t->n_realms; r++)
            evbuffer_add_printf(b, "tern_allocations{worker=\"%d\",realm=\"%s\"} %llu\n", i,
                                t->realm[r],
                                (unsigned long long)stats_read(&srv->workers[i].stats.allocations[r]));
    metrics_write_family(b, "tern_sessions", "gauge",
                         "Live TCP, TLS and DTLS client sessions, per worker and transport "
                         "(UDP has no sessions).");
    for (int i = 0; i < srv->n_workers; i++)
        for (int t = STATS_TCP; t < STATS_N_TRANSPORTS; t++)
            evbuffer_add_printf(b, "tern_sessions{worker=\"%d\",transport=\"%s\"} %llu\n", i,
                                transport_names[t],
                                (unsigned long long)stats_read(&srv->workers[i].stats.sessions[t]));
}

/* Redis, per worker (each worker has its own connection); only when
 * auth.redis is configured. */
static void metrics_write_redis(const struct server *srv, struct evbuffer *b)
{
    if (!srv->gen->has_redis)
        return;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } fam[] = {
        { "tern_redis_up", "gauge", "1 while the worker's Redis connection is up.",
          offsetof(struct worker_stats, redis_up) },
        { "tern_redis_rtt_seconds", "gauge", "Round trip of the last Redis PING.",
          offsetof(struct worker_stats, redis_rtt_us) },
        { "tern_redis_parked_requests", "gauge", "Requests waiting for a Redis answer.",
          offsetof(struct worker_stats, redis_parked) },
        { "tern_redis_lookups_total", "counter", "Credential lookups sent to Redis.",
          offsetof(struct worker_stats, redis_lookups) },
        { "tern_redis_failures_total", "counter",
          "Requests answered 500 because Redis was down or too slow.",
          offsetof(struct worker_stats, redis_failures) },
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        metrics_write_family(b, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; i < srv->n_workers; i++) {
            const stats_counter *c =
                (const stats_counter *)((const char *)&srv->workers[i].stats + fam[f].off);
            if (fam[f].off == offsetof(struct worker_stats, redis_rtt_us))
                evbuffer_add_printf(b, "%s{worker=\"%d\"} %.6f\n", fam[f].name, i,
                                    (double)stats_read(c) / 1e6);
            else
                evbuffer_add_printf(b, "%s{worker=\"%d\"} %llu\n", fam[f].name, i,
                                    (unsigned long long)stats_read(c));
        }
    }
}

/* A family of one series per realm. */
static void metrics_write_per_realm(const struct metrics_totals *t, struct evbuffer *b,
                                    const char *name, const char *help, const uint64_t *v)
{
    metrics_write_family(b, name, "counter", help);
    for (unsigned r = 0; r < t->n_realms; r++)
        evbuffer_add_printf(b, "%s{realm=\"%s\"} %llu\n", name, t->realm[r],
                            (unsigned long long)v[r]);
}

static void metrics_write_counters(const struct metrics_totals *t, struct evbuffer *b)
{
    metrics_write_family(b, "tern_requests_total", "counter",
                         "STUN/TURN requests answered, by realm, method and response code "
                         "(200: success; Binding counts in the default realm).");
    for (unsigned r = 0; r < t->n_realms; r++)
        for (int m = 0; m < STATS_N_METHODS; m++)
            for (int c = 0; c < STATS_N_CODES; c++)
                evbuffer_add_printf(b,
                                    "tern_requests_total{realm=\"%s\",method=\"%s\",code=\"%s\"} %llu\n",
                                    t->realm[r], method_names[m], code_names[c],
                                    (unsigned long long)t->requests[r][m][c]);
    metrics_write_per_realm(t, b, "tern_auth_failures_total",
                            "TURN requests whose credentials were wrong (first challenges not "
                            "counted), by realm.",
                            t->auth_failures);
    metrics_write_per_realm(t, b, "tern_allocations_created_total",
                            "TURN allocations created, by realm.", t->allocations_created);
    metrics_write_single(b, "tern_permissions_created_total", "counter",
                         "TURN permissions installed or refreshed (one per peer address).",
                         t->permissions_created);
    metrics_write_single(b, "tern_channels_bound_total", "counter",
                         "Successful ChannelBind requests (new or refreshed channels).",
                         t->channels_bound);
    metrics_write_family(b, "tern_relay_bytes_total", "counter",
                         "Payload bytes relayed, by realm and direction.");
    for (unsigned r = 0; r < t->n_realms; r++)
        for (int d = 0; d < STATS_N_DIRS; d++)
            evbuffer_add_printf(b, "tern_relay_bytes_total{realm=\"%s\",direction=\"%s\"} %llu\n",
                                t->realm[r], dir_names[d], (unsigned long long)t->bytes[r][d]);
    metrics_write_family(b, "tern_relay_packets_total", "counter",
                         "Datagrams relayed, by realm and direction.");
    for (unsigned r = 0; r < t->n_realms; r++)
        for (int d = 0; d < STATS_N_DIRS; d++)
            evbuffer_add_printf(b, "tern_relay_packets_total{realm=\"%s\",direction=\"%s\"} %llu\n",
                                t->realm[r], dir_names[d], (unsigned long long)t->packets[r][d]);
    metrics_write_family(b, "tern_dropped_packets_total", "counter",
                         "Packets dropped without an answer, by reason.");
    for (int r = 0; r < STATS_N_DROPS; r++)
        evbuffer_add_printf(b, "tern_dropped_packets_total{reason=\"%s\"} %llu\n", drop_names[r],
                            (unsigned long long)t->drops[r]);
    metrics_write_family(b, "tern_tls_handshakes_total", "counter",
                         "TLS and DTLS handshakes completed, full or resumed by session ticket.");
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 2; r++)
            evbuffer_add_printf(b, "tern_tls_handshakes_total{transport=\"%s\",resumed=\"%s\"} %llu\n",
                                d ? "dtls" : "tls", r ? "true" : "false",
                                (unsigned long long)t->tls_handshakes[d][r]);
}

/* The kernel relay (relay/offload.h): its own packets are also in
 * tern_relay_packets_total, counted back about once a second. */
static void metrics_write_offload(const struct server *srv, struct evbuffer *b)
{
    static const char *const reason_names[OFFLOAD_R_TO_PEER] = {
        "other", "miss", "expired", "fragment", "length", "route", "mtu", "failed"
    };
    uint64_t pkts[STATS_N_DIRS] = { 0 }, chans = 0;
    for (int i = 0; i < srv->n_workers; i++) {
        for (int d = 0; d < STATS_N_DIRS; d++)
            pkts[d] += stats_read(&srv->workers[i].stats.offload_packets[d]);
        chans += stats_read(&srv->workers[i].stats.offload_channels);
    }
    metrics_write_single(b, "tern_offload_interfaces", "gauge",
                         "Interfaces where the kernel relays channels (relay.offload).",
                         offload_n_interfaces(srv->offload));
    metrics_write_single(b, "tern_offload_channels", "gauge",
                         "Channels relayed in the kernel now.", chans);
    metrics_write_family(b, "tern_offload_packets_total", "counter",
                         "Datagrams relayed in the kernel, by direction (also counted in "
                         "tern_relay_packets_total).");
    for (int d = 0; d < STATS_N_DIRS; d++)
        evbuffer_add_printf(b, "tern_offload_packets_total{direction=\"%s\"} %llu\n",
                            dir_names[d], (unsigned long long)pkts[d]);
    if (!srv->offload)
        return;
    metrics_write_family(b, "tern_offload_passed_packets_total", "counter",
                         "UDP datagrams the kernel program handed to ternd, by reason.");
    for (int r = 0; r < OFFLOAD_R_TO_PEER; r++)
        evbuffer_add_printf(b, "tern_offload_passed_packets_total{reason=\"%s\"} %llu\n",
                            reason_names[r],
                            (unsigned long long)offload_reason_total(srv->offload, r));
}

static void metrics_write_all(const struct metrics *m, struct evbuffer *b)
{
    struct metrics_totals *t = malloc(sizeof *t); /* 30 KB: not on the stack */
    if (!t)
        return;
    metrics_sum_workers(m->srv, t);
    metrics_write_process(m, b);
    metrics_write_gauges(m->srv, t, b);
    metrics_write_redis(m->srv, b);
    metrics_write_counters(t, b);
    metrics_write_offload(m->srv, b);
    free(t);
}

static void metrics_on_request(struct evhttp_request *req, void *arg)
{
    const struct metrics *m = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    bool open = path && (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0);
    if (!open) {
        console_handle(m->console, req);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        evhttp_send_error(req, 405, NULL);
        return;
    }
    if (strcmp(path, "/health") == 0) {
        /* a readiness probe: a draining node takes no new clients */
        bool draining = drain_active(m->srv);
        struct evbuffer *body = evbuffer_new();
        if (body)
            evbuffer_add_printf(body, "%s\n", draining ? "draining" : "ok");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; charset=utf-8");
        evhttp_send_reply(req, draining ? 503 : HTTP_OK, draining ? "Service Unavailable" : "OK",
                          body);
        if (body)
            evbuffer_free(body);
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    metrics_write_all(m, body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      METRICS_CONTENT_TYPE);
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

static void metrics_on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    struct metrics *m = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (!accept_guard_on_error(&m->guard, err))
        log_warn("%s: accept: %s", m->name, strerror(err));
}

/* A listening socket on addr: 0 and *fd, or -errno. */
static int metrics_listen_socket(const struct sockaddr *addr, int *fd)
{
    int s = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    /* SO_REUSEADDR only: a restart binds past TIME_WAIT, a second live
     * process still gets EADDRINUSE. */
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6)
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(s, addr, net_addr_len(addr)) < 0 || listen(s, METRICS_BACKLOG) < 0) {
        int e = errno;
        close(s);
        return -e;
    }
    *fd = s;
    return 0;
}

int metrics_probe(const struct sockaddr_storage *addr, char *err, size_t err_len)
{
    int fd = -1;
    int rc = metrics_listen_socket((const struct sockaddr *)addr, &fd);
    if (rc < 0) {
        char a[NET_ADDRSTRLEN];
        snprintf(err, err_len, "cannot listen on metrics %s: %s",
                 net_addr_format((const struct sockaddr *)addr, a, sizeof a), strerror(-rc));
        return -1;
    }
    close(fd);
    return 0;
}

int metrics_start(struct server *srv, struct event_base *base)
{
    const struct sockaddr *addr = (const struct sockaddr *)&srv->conf->metrics;
    char a[NET_ADDRSTRLEN];
    int fd = -1;
    int rc = metrics_listen_socket(addr, &fd);
    if (rc < 0) {
        log_error("cannot listen on metrics %s: %s", net_addr_format(addr, a, sizeof a),
                  strerror(-rc));
        return -1;
    }
    struct metrics *m = calloc(1, sizeof *m);
    struct console *con = m ? console_new(srv) : NULL;
    struct evhttp *http = con ? evhttp_new(base) : NULL;
    struct evhttp_bound_socket *bound = http ? evhttp_accept_socket_with_handle(http, fd) : NULL;
    if (!bound) {
        log_error("cannot listen on metrics %s: out of memory", net_addr_format(addr, a, sizeof a));
        if (http)
            evhttp_free(http);
        console_free(con);
        free(m);
        close(fd);
        return -1;
    }
    /* A scrape is a small GET, a console request a GET or a small POST (the
     * sign-in form, a kill): refuse anything else early and bound what a
     * misbehaving client can make us hold. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_timeout(http, METRICS_TIMEOUT_S);
    evhttp_set_max_headers_size(http, 8192);
    evhttp_set_max_body_size(http, METRICS_MAX_BODY);
    evhttp_set_gencb(http, metrics_on_request, m);
    m->srv = srv;
    m->http = http;
    m->console = con;
    snprintf(m->name, sizeof m->name, "metrics %s", net_addr_format(addr, a, sizeof a));
    struct evconnlistener *l = evhttp_bound_socket_get_listener(bound);
    /* A connection accepted when the famine ends is closed: evhttp takes
     * connections only from its own listener (the scraper retries). */
    if (accept_guard_init(&m->guard, base, l, NULL, NULL, m->name) == 0)
        evconnlistener_set_error_cb(l, metrics_on_accept_error);
    clock_gettime(CLOCK_MONOTONIC, &m->started);
    srv->metrics = m;
    log_info("metrics on http://%s/metrics", net_addr_format(addr, a, sizeof a));
    return 0;
}

void metrics_stop(struct server *srv)
{
    struct metrics *m = srv->metrics;
    if (!m)
        return;
    accept_guard_free(&m->guard);
    console_free(m->console); /* answers what waits, while its connections exist */
    evhttp_free(m->http);
    free(m);
    srv->metrics = NULL;
}
