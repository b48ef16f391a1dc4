/*
 * reload.c - see reload.h.
 *
 * A reload is all or nothing. Everything that can fail is tried before
 * anything changes: the file is parsed and validated, the static user store
 * built, the Redis URL parsed, every new listen address and a new metrics
 * address probed, the TLS and DTLS contexts built. Only then is the new
 * generation published: the main thread switches what it owns (log,
 * per-source rate, metrics, TLS contexts), and a task switches every worker
 * on its own thread (worker_reconfigure). The old generation is freed when
 * the last worker has let go of it.
 *
 * What cannot change live keeps its old value and is named in the answer:
 * the number of workers and limits.time_scale (the clocks run on).
 */
#include "server/reload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/core/log.h"
#include "server/core/net.h"
#include "server/core/clock.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/server.h"
#include "server/tasks.h"
#include "server/transport/transport.h"
#include "server/turn/rate.h"

/* A reload on its way to the workers; owned by reload.c until done. */
struct reload {
    struct server *srv;
    struct gen *old;
    reload_done_fn done;
    void *arg;
    char msg[1024];
};

static bool reloading;

struct gen *gen_load(const char *path, char *err, size_t err_len)
{
    struct gen *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    if (conf_load_file(&g->conf, path, err, err_len) < 0) {
        free(g);
        return NULL;
    }
    if (auth_realms_init(&g->auth, &g->conf) < 0) {
        snprintf(err, err_len, "%s: cannot build the user store", path);
        gen_free(g);
        return NULL;
    }
    if (g->conf.redis[0]) {
        if (redis_url_parse(g->conf.redis, &g->redis_url) < 0) {
            snprintf(err, err_len,
                     "%s: auth.redis: cannot parse \"%s\" (redis://[:password@]host[:port][/db] "
                     "or unix:///path?db=N)", path, g->conf.redis);
            gen_free(g);
            return NULL;
        }
        g->has_redis = true;
    }
    return g;
}

void gen_free(struct gen *g)
{
    if (!g)
        return;
    auth_realms_free(&g->auth);
    conf_free(&g->conf);
    free(g);
}

void gen_commit(struct gen *g, struct stats_realms *names)
{
    /* the default realm is id 0 whatever it is called (stats.h) */
    g->realm_stats[0] = 0;
    for (size_t i = 1; i < conf_realm_count(&g->conf); i++) {
        struct conf_realm_view v;
        conf_realm_get(&g->conf, i, &v);
        g->realm_stats[i] = (uint8_t)stats_realms_intern(names, v.name);
    }
}

static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Add to the answer; what does not fit is cut (the answer is for people). */
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Listeners in a and not in b, for the answer ("+udp 1.2.3.4:3478"). */
static void listeners_diff(const struct conf *a, const struct conf *b, const char *sign,
                           char *buf, size_t cap)
{
    for (size_t i = 0; i < a->n_listen; i++) {
        bool found = false;
        for (size_t k = 0; k < b->n_listen && !found; k++)
            found = a->listen[i].proto == b->listen[k].proto &&
                    net_addr_equal((const struct sockaddr *)&a->listen[i].addr,
                                   (const struct sockaddr *)&b->listen[k].addr);
        if (!found) {
            char addr[NET_ADDRSTRLEN], item[NET_ADDRSTRLEN + 16];
            snprintf(item, sizeof item, "%s%s", sign, conf_proto_name(a->listen[i].proto));
            append(buf, cap, " %s %s", item,
                   net_addr_format((const struct sockaddr *)&a->listen[i].addr, addr, sizeof addr));
        }
    }
}

static bool metrics_moved(const struct conf *a, const struct conf *b)
{
    return a->has_metrics != b->has_metrics ||
           (b->has_metrics && !net_addr_equal((const struct sockaddr *)&a->metrics,
                                              (const struct sockaddr *)&b->metrics));
}

static void reload_on_worker(struct worker *w, void *arg)
{
    struct reload *r = arg;
    worker_reconfigure(w, r->srv->gen);
}

static void reload_on_done(void *arg)
{
    struct reload *r = arg;
    gen_free(r->old);
    reloading = false;
    log_info("reload: %s", r->msg);
    notify_send("READY=1\nSTATUS=serving");
    if (r->done)
        r->done(r->arg, true, r->msg);
    free(r);
}

int reload_start(struct server *srv, reload_done_fn done, void *arg)
{
    char err[CONF_ERR_LEN + 64];
    if (reloading) {
        snprintf(err, sizeof err, "a reload is already under way");
        if (done)
            done(arg, false, err);
        return -1;
    }
    struct gen *g = gen_load(srv->conf_path, err, sizeof err);
    if (!g)
        goto refuse;
    const struct conf *old = srv->conf;
    struct conf *c = &g->conf;
    struct reload *r = calloc(1, sizeof *r);
    struct task *task = r ? tasks_new(srv, reload_on_worker, reload_on_done, r) : NULL;
    if (!task) {
        snprintf(err, sizeof err, "out of memory");
        free(r);
        gen_free(g);
        goto refuse;
    }
    snprintf(r->msg, sizeof r->msg, "%s applied", srv->conf_path);
    /* not live: keep the running values and say so */
    if (c->workers != old->workers) {
        append(r->msg, sizeof r->msg, "; workers stays %d (the file says %d: restart to change)",
               old->workers, c->workers);
        c->workers = old->workers;
    }
    if (strcmp(c->run_user, old->run_user) != 0 || strcmp(c->run_group, old->run_group) != 0) {
        append(r->msg, sizeof r->msg, "; user and group stay (restart to change)");
        snprintf(c->run_user, sizeof c->run_user, "%s", old->run_user);
        snprintf(c->run_group, sizeof c->run_group, "%s", old->run_group);
    }
    if (c->has_control != old->has_control || strcmp(c->control_path, old->control_path) != 0 ||
        c->control_mode != old->control_mode) {
        append(r->msg, sizeof r->msg, "; control stays %s (restart to change)",
               old->has_control ? old->control_path : "off");
        c->has_control = old->has_control;
        snprintf(c->control_path, sizeof c->control_path, "%s", old->control_path);
        c->control_mode = old->control_mode;
    }
    if (c->time_scale != old->time_scale) {
        append(r->msg, sizeof r->msg,
               "; limits.time_scale stays %u (the file says %u: restart to change)",
               old->time_scale, c->time_scale);
        c->time_scale = old->time_scale;
    }
    if (c->offload != old->offload || c->n_offload_ifs != old->n_offload_ifs ||
        memcmp(c->offload_ifs, old->offload_ifs, sizeof c->offload_ifs) != 0) {
        append(r->msg, sizeof r->msg, "; relay.offload stays as it is (restart to change)");
        c->offload = old->offload;
        c->n_offload_ifs = old->n_offload_ifs;
        memcpy(c->offload_ifs, old->offload_ifs, sizeof c->offload_ifs);
    }
    /* everything that can fail, before anything changes */
    bool tls_failed = false;
    if (transport_probe_new(old, c, err, sizeof err) < 0 ||
        (metrics_moved(old, c) && c->has_metrics &&
         metrics_probe(&c->metrics, err, sizeof err) < 0) ||
        (tls_failed = tls_server_try(&srv->tls, c, err, sizeof err) < 0)) {
        if (tls_failed)
            append(err, sizeof err, "; keeping the old certificates");
        tasks_discard(task);
        free(r);
        gen_free(g);
        goto refuse;
    }
    if (tls_server_pending(&srv->tls))
        append(r->msg, sizeof r->msg, "; certificates reloaded");
    size_t mark = strlen(r->msg);
    append(r->msg, sizeof r->msg, "; listeners");
    size_t before = strlen(r->msg);
    listeners_diff(c, old, "+", r->msg, sizeof r->msg);
    listeners_diff(old, c, "-", r->msg, sizeof r->msg);
    if (strlen(r->msg) == before)
        r->msg[mark] = 0;

    /* commit: the main thread's part, then every worker's */
    bool moved = metrics_moved(old, c);
    r->srv = srv;
    r->old = srv->gen;
    r->done = done;
    r->arg = arg;
    gen_commit(g, &srv->stats_realms);
    srv->gen = g;
    srv->conf = c;
    tls_server_commit(&srv->tls, c);
    log_set_level((int)c->log_level);
    log_set_json(c->log_format == CONF_LOG_JSON);
    if (log_set_file(c->log_file, c->log_syslog) < 0)
        append(r->msg, sizeof r->msg, "; log.file %s cannot be opened, logging on as before",
               c->log_file);
    rate_sources_set(srv->rate, c->unauth_rate);
    if (moved) {
        metrics_stop(srv);
        if (c->has_metrics && metrics_start(srv, srv->base) < 0)
            append(r->msg, sizeof r->msg, "; metrics could not listen");
    }
    reloading = true;
    notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)clock_mono_ms() * 1000u);
    tasks_send(srv, task);
    return 0;
refuse:
    log_error("reload refused, the running configuration stays: %s", err);
    if (done)
        done(arg, false, err);
    return -1;
}
