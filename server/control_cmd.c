/*
 * control_cmd.c - the requests of the control socket (control.h). status,
 * loglevel, drain and undrain are answered on the main thread from the
 * counters; sessions and kill go to every worker as a task (tasks.h), since
 * only a worker may touch its allocations; reload is reload.h's.
 */
#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/control_int.h"
#include "server/core/clock.h"
#include "server/core/json.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/drain.h"
#include "server/relay/alloc.h"
#include "server/relay/offload.h"
#include "server/relay/reserve.h"
#include "server/reload.h"
#include "server/server.h"
#include "server/turn/turn.h"

static const char *const transport_names[STATS_N_TRANSPORTS] = { "udp", "tcp", "tls", "dtls" };

void control_answer_line(struct control_req *req, bool ok, const char *line)
{
    struct evbuffer *b = evbuffer_new();
    if (b && req->json && !ok) {
        char q[2 * CONTROL_MAX_REQUEST];
        json_quote(line, strlen(line), q, sizeof q);
        evbuffer_add_printf(b, "{\"error\": %s}\n", q);
    } else if (b) {
        evbuffer_add_printf(b, "%s\n", line);
    }
    req->answer(req, ok, b);
    if (b)
        evbuffer_free(b);
}

/* --- status -------------------------------------------------------------- */

static void cmd_status(struct control_req *req)
{
    struct server *srv = req->srv;
    const struct conf *c = srv->conf;
    uint64_t sessions[STATS_N_TRANSPORTS] = { 0 }, allocs = 0, relay = 0, rtt_us = 0, kchans = 0;
    bool redis_up = false;
    for (int i = 0; i < srv->n_workers; i++) {
        const struct worker_stats *st = &srv->workers[i].stats;
        for (int t = 0; t < STATS_N_TRANSPORTS; t++)
            sessions[t] += stats_read(&st->sessions[t]);
        allocs += stats_read_realms(st->allocations);
        relay += stats_read(&st->relay_sockets);
        kchans += stats_read(&st->offload_channels);
        redis_up |= stats_read(&st->redis_up) != 0;
        uint64_t r = stats_read(&st->redis_rtt_us);
        rtt_us = r > rtt_us ? r : rtt_us;
    }
    relay += reserve_reap(srv->resv);
    uint64_t range = (uint64_t)(c->relay_max_port - c->relay_min_port + 1) *
                     (c->n_relay_ip ? c->n_relay_ip : 1);
    uint64_t free_ports = range > relay ? range - relay : 0;
    uint64_t uptime = (clock_mono_ms() - srv->started_ms) / 1000u;
    const char *redis = !srv->gen->has_redis ? "off" : redis_up ? "up" : "down";
    bool draining = drain_active(srv);
    unsigned kifs = offload_n_interfaces(srv->offload);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        control_answer_line(req, false, "out of memory");
        return;
    }
    if (req->json) {
        evbuffer_add_printf(b,
                            "{\"version\": \"%s\", \"uptime_s\": %llu, \"workers\": %d, "
                            "\"allocations\": %llu, \"sessions\": {\"tcp\": %llu, \"tls\": %llu, "
                            "\"dtls\": %llu}, \"relay_ports\": {\"in_use\": %llu, \"free\": %llu}, "
                            "\"redis\": {\"state\": \"%s\", \"rtt_ms\": ",
                            TERN_VERSION, (unsigned long long)uptime, srv->n_workers,
                            (unsigned long long)allocs, (unsigned long long)sessions[STATS_TCP],
                            (unsigned long long)sessions[STATS_TLS],
                            (unsigned long long)sessions[STATS_DTLS], (unsigned long long)relay,
                            (unsigned long long)free_ports, redis);
        if (redis_up && rtt_us)
            evbuffer_add_printf(b, "%.3f", rtt_us / 1000.0);
        else
            evbuffer_add_printf(b, "null");
        evbuffer_add_printf(b, "}, \"offload\": {\"interfaces\": %u, \"channels\": %llu}, "
                               "\"draining\": %s}\n",
                            kifs, (unsigned long long)kchans, draining ? "true" : "false");
    } else {
        evbuffer_add_printf(b, "version      %s\nuptime       %llum %02llus\nworkers      %d\n"
                               "allocations  %llu\nsessions     tcp %llu, tls %llu, dtls %llu\n"
                               "relay ports  %llu in use, %llu free\nredis        %s",
                            TERN_VERSION, (unsigned long long)uptime / 60,
                            (unsigned long long)uptime % 60, srv->n_workers,
                            (unsigned long long)allocs, (unsigned long long)sessions[STATS_TCP],
                            (unsigned long long)sessions[STATS_TLS],
                            (unsigned long long)sessions[STATS_DTLS], (unsigned long long)relay,
                            (unsigned long long)free_ports, redis);
        if (redis_up && rtt_us)
            evbuffer_add_printf(b, ", round trip %.3f ms", rtt_us / 1000.0);
        if (kifs)
            evbuffer_add_printf(b, "\noffload      %u interfaces, %llu channels in the kernel", kifs,
                                (unsigned long long)kchans);
        else
            evbuffer_add_printf(b, "\noffload      off");
        evbuffer_add_printf(b, "\ndraining     %s\n", draining ? "yes" : "no");
    }
    req->answer(req, true, b);
    evbuffer_free(b);
}

/* --- sessions and kill: tasks of every worker ------------------------------ */

/* A worker's part of an answer: text it appended (malloc'd, its own). */
struct piece {
    char *p;
    size_t len, cap;
    unsigned count;
};

/* A sessions or kill request on its way through the workers; owned by this
 * file until its done callback. */
struct sweep {
    struct control_req *req;
    const char *user; /* filter, into req->buf; NULL: any */
    bool has_id;
    unsigned long long id;
    const char *realm; /* filter, into req->buf; NULL: any */
    struct piece piece[];
};

static void piece_printf(struct piece *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void piece_printf(struct piece *pc, const char *fmt, ...)
{
    va_list ap;
    for (int round = 0; round < 2; round++) {
        va_start(ap, fmt);
        int n = vsnprintf(pc->p ? pc->p + pc->len : NULL, pc->p ? pc->cap - pc->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (pc->p && pc->len + (size_t)n < pc->cap) {
            pc->len += (size_t)n;
            return;
        }
        size_t cap = (pc->cap ? pc->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(pc->p, cap);
        if (!p)
            return;
        pc->p = p;
        pc->cap = cap;
    }
}

static bool sweep_matches(const struct sweep *sw, const struct alloc *a)
{
    if (sw->realm && (a->realm_len != strlen(sw->realm) ||
                      memcmp(a->realm_name, sw->realm, a->realm_len) != 0))
        return false;
    if (sw->has_id && a->sid != sw->id)
        return false;
    return !sw->user || (a->user_len == strlen(sw->user) &&
                         memcmp(a->user, sw->user, a->user_len) == 0);
}

/* One allocation as a line of the answer. */
static void describe(struct worker *w, struct sweep *sw, struct piece *pc, struct alloc *a)
{
    const struct turn_session *s = a->owner;
    const char *transport = transport_names[s ? s->transport : STATS_UDP];
    char client[NET_ADDRSTRLEN], relay[2][NET_ADDRSTRLEN];
    net_addr_format((const struct sockaddr *)&a->client, client, sizeof client);
    for (unsigned i = 0; i < a->n_relay; i++)
        net_addr_format((const struct sockaddr *)&a->relay[i].reported, relay[i], sizeof relay[i]);
    uint64_t age = (clock_mono_ms() - a->created_ms) / 1000u;
    uint32_t now = alloc_now(a);
    unsigned scale = w->conf->time_scale ? w->conf->time_scale : 1;
    uint32_t left = a->expires > now ? (a->expires - now) / scale : 0;
    if (sw->req->json) {
        char user[4 * 520], rq[2 * CONF_STR];
        json_quote(a->user, a->user_len, user, sizeof user);
        json_quote(a->realm_name, a->realm_len, rq, sizeof rq);
        piece_printf(pc, "%s{\"id\": \"%018llu\", \"user\": %s, \"realm\": %s, \"client\": \"%s\", "
                         "\"transport\": \"%s\", \"relay\": [\"%s\"%s%s%s], \"age_s\": %llu, "
                         "\"lifetime_left_s\": %u, \"permissions\": %u, \"channels\": %u, "
                         "\"bytes_to_peer\": %llu, \"bytes_to_client\": %llu, "
                         "\"packets_to_peer\": %llu, \"packets_to_client\": %llu}",
                     pc->count ? ",\n" : "", (unsigned long long)a->sid, user, rq, client,
                     transport, relay[0], a->n_relay > 1 ? ", \"" : "",
                     a->n_relay > 1 ? relay[1] : "", a->n_relay > 1 ? "\"" : "",
                     (unsigned long long)age, left, alloc_count_perms(a), alloc_count_chans(a),
                     (unsigned long long)a->bytes_out, (unsigned long long)a->bytes_in,
                     (unsigned long long)a->pkts_out, (unsigned long long)a->pkts_in);
    } else {
        piece_printf(pc, "%018llu  %-16.*s  %-21s  %-4s  %-21s  %6llus  %6us  %5u  %5u  %llu/%llu  "
                         "%llu/%llu\n",
                     (unsigned long long)a->sid, (int)a->user_len, a->user, client, transport,
                     relay[0], (unsigned long long)age, left, alloc_count_perms(a),
                     alloc_count_chans(a), (unsigned long long)a->bytes_out,
                     (unsigned long long)a->bytes_in, (unsigned long long)a->pkts_out,
                     (unsigned long long)a->pkts_in);
    }
    pc->count++;
}

struct sessions_walk {
    struct worker *w;
    struct sweep *sw;
};

static void on_alloc_describe(struct alloc *a, void *arg)
{
    struct sessions_walk *walk = arg;
    if (sweep_matches(walk->sw, a))
        describe(walk->w, walk->sw, &walk->sw->piece[walk->w->id], a);
}

static void sessions_on_worker(struct worker *w, void *arg)
{
    struct sessions_walk walk = { w, arg };
    relay_table_foreach(w->relay, on_alloc_describe, &walk);
}

static void sessions_done(void *arg)
{
    struct sweep *sw = arg;
    struct control_req *req = sw->req;
    struct evbuffer *b = evbuffer_new();
    unsigned total = 0;
    if (b && req->json)
        evbuffer_add_printf(b, "{\"sessions\": [\n");
    else if (b)
        evbuffer_add_printf(b, "%-18s  %-16s  %-21s  %-4s  %-21s  %7s  %7s  %5s  %5s  %s  %s\n",
                            "ID", "USER", "CLIENT", "TP", "RELAY", "AGE", "LEFT", "PERMS",
                            "CHANS", "BYTES OUT/IN", "PACKETS OUT/IN");
    for (int i = 0; i < req->srv->n_workers; i++) {
        struct piece *pc = &sw->piece[i];
        if (b && pc->len) {
            if (req->json && total && pc->count)
                evbuffer_add_printf(b, ",\n");
            evbuffer_add(b, pc->p, pc->len);
        }
        total += pc->count;
        free(pc->p);
    }
    if (b && req->json)
        evbuffer_add_printf(b, "\n]}\n");
    req->answer(req, b != NULL, b);
    if (b)
        evbuffer_free(b);
    free(sw);
}

/* Matching allocations are collected first and ended after the walk: ending
 * one changes the table. */
struct kill_walk {
    struct sweep *sw;
    struct alloc **found;
    size_t n, cap;
};

static void on_alloc_kill(struct alloc *a, void *arg)
{
    struct kill_walk *k = arg;
    if (!sweep_matches(k->sw, a))
        return;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        struct alloc **f = realloc(k->found, cap * sizeof *f);
        if (!f)
            return;
        k->found = f;
        k->cap = cap;
    }
    k->found[k->n++] = a;
}

static void kill_on_worker(struct worker *w, void *arg)
{
    struct sweep *sw = arg;
    struct kill_walk k = { .sw = sw };
    relay_table_foreach(w->relay, on_alloc_kill, &k);
    for (size_t i = 0; i < k.n; i++) {
        struct alloc *a = k.found[i];
        /* a TCP/TLS/DTLS client loses its connection, and the allocation
         * with it; a UDP client only its allocation */
        if (a->ops->close)
            a->ops->close(a->conn, "killed by an operator (ternctl or the console)");
        else
            alloc_destroy(a, "killed by an operator (ternctl or the console)");
    }
    sw->piece[w->id].count = (unsigned)k.n;
    free(k.found);
}

static void kill_done(void *arg)
{
    struct sweep *sw = arg;
    struct control_req *req = sw->req;
    unsigned total = 0;
    for (int i = 0; i < req->srv->n_workers; i++)
        total += sw->piece[i].count;
    char line[96];
    if (total == 0 && sw->has_id) {
        snprintf(line, sizeof line, "no session %018llu", sw->id);
        control_answer_line(req, false, line);
    } else {
        snprintf(line, sizeof line, req->json ? "{\"killed\": %u}" : "killed %u", total);
        control_answer_line(req, true, line);
    }
    free(sw);
}

/* Options of sessions and kill into a new sweep; NULL (answered) when they
 * are wrong. */
static struct sweep *sweep_new(struct control_req *req, bool kill)
{
    struct sweep *sw = calloc(1, sizeof *sw + (size_t)req->srv->n_workers * sizeof sw->piece[0]);
    if (!sw) {
        control_answer_line(req, false, "out of memory");
        return NULL;
    }
    sw->req = req;
    for (int i = 1; i < req->argc; i++) {
        const char *a = req->argv[i];
        if (strcmp(a, "--user") == 0 && i + 1 < req->argc) {
            sw->user = req->argv[++i];
        } else if (strcmp(a, "--realm") == 0 && !kill && i + 1 < req->argc) {
            sw->realm = req->argv[++i];
        } else if (kill && !sw->has_id && a[0] >= '0' && a[0] <= '9') {
            char *end;
            sw->id = strtoull(a, &end, 10);
            sw->has_id = *end == 0;
            if (!sw->has_id)
                break;
        } else {
            char line[128];
            snprintf(line, sizeof line, "%s: unexpected '%.40s' (%s)", req->argv[0], a,
                     kill ? "kill ID | kill --user USER" : "sessions [--user U] [--realm R]");
            control_answer_line(req, false, line);
            free(sw);
            return NULL;
        }
    }
    if (kill && !sw->has_id && !sw->user) {
        control_answer_line(req, false, "kill: which? (kill ID | kill --user USER)");
        free(sw);
        return NULL;
    }
    return sw;
}

static void cmd_sweep(struct control_req *req, bool kill)
{
    struct sweep *sw = sweep_new(req, kill);
    if (sw && tasks_post(req->srv, kill ? kill_on_worker : sessions_on_worker,
                         kill ? kill_done : sessions_done, sw) < 0) {
        free(sw);
        control_answer_line(req, false, "out of memory");
    }
}

/* --- reload, loglevel, drain ------------------------------------------------ */

static void reload_answer(void *arg, bool ok, const char *msg)
{
    struct control_req *req = arg;
    if (req->json && ok) {
        char q[2048];
        json_quote(msg, strlen(msg), q, sizeof q);
        char line[2100];
        snprintf(line, sizeof line, "{\"reloaded\": true, \"message\": %s}", q);
        control_answer_line(req, true, line);
    } else {
        control_answer_line(req, ok, msg);
    }
}

static void cmd_loglevel(struct control_req *req)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; req->argc == 2 && i < 4; i++) {
        if (strcmp(req->argv[1], names[i]) != 0)
            continue;
        /* said under the louder of the two levels, so that it shows */
        bool quieter = log_enabled(i);
        if (!quieter)
            log_set_level(i);
        log_info("log level now %s (ternctl)", names[i]);
        log_set_level(i);
        char line[64];
        snprintf(line, sizeof line, req->json ? "{\"loglevel\": \"%s\"}" : "log level %s", names[i]);
        control_answer_line(req, true, line);
        return;
    }
    control_answer_line(req, false, "loglevel: one of error, warn, info, debug");
}

static void cmd_drain(struct control_req *req)
{
    unsigned deadline = req->srv->conf->max_lifetime;
    if (req->argc == 3 && strcmp(req->argv[1], "--deadline") == 0) {
        char *end;
        unsigned long v = strtoul(req->argv[2], &end, 10);
        if (*end || !*req->argv[2] || v < 1 || v > 7 * 86400) {
            control_answer_line(req, false, "drain: --deadline takes seconds, 1 to 604800");
            return;
        }
        deadline = (unsigned)v;
    } else if (req->argc != 1) {
        control_answer_line(req, false, "drain [--deadline SECONDS]");
        return;
    }
    if (drain_start(req->srv, deadline) < 0) {
        control_answer_line(req, false, "out of memory");
        return;
    }
    char line[96];
    snprintf(line, sizeof line, req->json ? "{\"draining\": true, \"deadline_s\": %u}"
                                          : "draining; exit when no allocation is left, in %u s at most",
             deadline);
    control_answer_line(req, true, line);
}

void control_cmd_run(struct control_req *req)
{
    const char *cmd = req->argv[0];
    bool bare = strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
                strcmp(cmd, "undrain") == 0;
    if (bare && req->argc > 1) {
        char line[128];
        snprintf(line, sizeof line, "%s takes no argument ('%.40s')", cmd, req->argv[1]);
        control_answer_line(req, false, line);
        return;
    }
    if (strcmp(cmd, "status") == 0) {
        cmd_status(req);
    } else if (strcmp(cmd, "sessions") == 0) {
        cmd_sweep(req, false);
    } else if (strcmp(cmd, "kill") == 0) {
        cmd_sweep(req, true);
    } else if (strcmp(cmd, "reload") == 0) {
        reload_start(req->srv, reload_answer, req);
    } else if (strcmp(cmd, "loglevel") == 0) {
        cmd_loglevel(req);
    } else if (strcmp(cmd, "drain") == 0) {
        cmd_drain(req);
    } else if (strcmp(cmd, "undrain") == 0) {
        drain_stop(req->srv);
        control_answer_line(req, true, req->json ? "{\"draining\": false}" : "serving new allocations");
    } else {
        char line[160];
        snprintf(line, sizeof line, "unknown request '%.40s' (status, sessions, kill, reload, "
                                    "loglevel, drain, undrain)", cmd);
        control_answer_line(req, false, line);
    }
}
