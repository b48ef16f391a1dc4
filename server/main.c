/*
 * main.c - ternd: load the configuration, start one worker per core, and
 * wait for signals. SIGTERM/SIGINT stop cleanly; SIGHUP reopens the log and
 * reloads the whole configuration (reload.h).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/banner.h"
#include "server/control.h"
#include "server/control_int.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/drain.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/privs.h"
#include "server/relay/offload.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/reload.h"
#include "server/server.h"
#include "server/tasks.h"
#include "server/transport/transport.h"
#include "server/turn/rate.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ternd -c FILE [--check-config]\n"
               "  -c, --config FILE   configuration file (libconfig syntax)\n"
               "      --check-config  validate the configuration and exit\n"
               "  -v, --version       print the version and exit\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct server *srv = arg;
    if (sig == SIGHUP) {
        /* the log first (rotation), then the whole configuration */
        if (log_reopen() < 0)
            log_error("SIGHUP: cannot reopen log: %s", strerror(errno));
        reload_start(srv, NULL, NULL);
        return;
    }
    if (sig == SIGUSR1) {
        drain_start(srv, srv->conf->max_lifetime);
        return;
    }
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(srv->base);
}

/* The watchdog's ping: every worker ran a task, so every loop turns. */
static void on_worker_alive(struct worker *w, void *arg)
{
    (void)w, (void)arg;
}

static void on_all_alive(void *arg)
{
    (void)arg;
    notify_send("WATCHDOG=1");
}

/* Every WatchdogSec/2: a task through every worker, then WATCHDOG=1. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    tasks_post(arg, on_worker_alive, on_all_alive, NULL);
}

/* Once a second on the main thread: expired EVEN-PORT reservations give
 * their ports back, and systemd hears the node's numbers. */
static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *srv = arg;
    static unsigned ticks;
    ticks++;
    reserve_reap(srv->resv);
    if (!notify_enabled())
        return;
    if (ticks % 10 == 1) {
        unsigned long long sessions = 0;
        for (int i = 0; i < srv->n_workers; i++)
            for (int t = 0; t < STATS_N_TRANSPORTS; t++)
                sessions += stats_read(&srv->workers[i].stats.sessions[t]);
        notify_send("STATUS=%llu allocations, %llu sessions%s", drain_allocations(srv), sessions,
                    drain_active(srv) ? ", draining" : "");
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--check-config")) {
            check_only = true;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--version")) {
            printf("ternd %s\n", TERN_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ternd: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    char err[CONF_ERR_LEN + 64];
    struct gen *gen = gen_load(path, err, sizeof err);
    if (!gen) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check_only) {
        printf("%s: ok\n", path);
        gen_free(gen);
        return 0;
    }
    const struct conf *conf = &gen->conf;
    log_set_json(conf->log_format == CONF_LOG_JSON);
    if (log_open((int)conf->log_level, conf->log_file, conf->log_syslog) < 0) {
        fprintf(stderr, "%s: cannot open log file: %s\n", conf->log_file, strerror(errno));
        gen_free(gen);
        return 1;
    }

    notify_init();
    static struct server srv;
    srv.conf_path = path;
    gen_commit(gen, &srv.stats_realms);
    srv.gen = gen;
    srv.conf = conf;
    srv.control_run = control_cmd_run;
    int rc = 1;
    if (RAND_bytes(srv.cookie_secret, sizeof srv.cookie_secret) != 1) {
        log_error("cannot seed the DTLS cookie key");
        goto out;
    }
    if (RAND_bytes(srv.nonce_key, sizeof srv.nonce_key) != 1 ||
        RAND_bytes((uint8_t *)&srv.node_id, sizeof srv.node_id) != 1)
        goto out;
    srv.node_id &= 0x7FFFF; /* allocation ids stay within coturn's 18 digits */
    srv.quota = quota_new();
    srv.resv = reserve_new();
    srv.rate = rate_sources_new(conf->unauth_rate);
    if (!srv.quota || !srv.resv || !srv.rate)
        goto out;
    if (tls_server_init(&srv.tls, conf) < 0)
        goto out;
    if (transport_probe_addrs(conf, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    /* One descriptor per allocation: take all the kernel allows us. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    srv.n_workers = conf->workers ? conf->workers : (cores > 0 ? (int)cores : 1);
    /* Before the privileges go: loading and attaching need CAP_BPF and
     * CAP_NET_ADMIN; the map calls after that do not. */
    if (offload_start(conf, srv.n_workers, offload_obj, offload_obj_len, &srv.offload, err,
                      sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    log_info("%s", err);
    srv.workers = calloc((size_t)srv.n_workers, sizeof *srv.workers);
    /* The main base is thread-safe (evthread): workers hand finished
     * tasks back to it. */
    srv.base = event_base_new();
    if (!srv.workers || !srv.base || tasks_init(&srv) < 0)
        goto out;

    /* Every worker binds its sockets before any thread starts. */
    int inited = 0, started = 0;
    while (inited < srv.n_workers && worker_init(&srv.workers[inited], &srv, inited) == 0)
        inited++;

    struct event *sigs[4] = { 0 }, *house = NULL, *watchdog = NULL;
    /* Metrics and the control socket after the workers (they read them
     * all); a port in use stops the start like any other listener's. Then
     * the privileges go, before a worker reads its first packet. */
    if (inited == srv.n_workers && (!conf->has_metrics || metrics_start(&srv, srv.base) == 0) &&
        control_start(&srv) == 0 && privs_drop(conf) == 0) {
        sigset_t set, old;
        sigemptyset(&set);
        int which[4] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
        for (int i = 0; i < 4; i++)
            sigaddset(&set, which[i]);
        /* workers must not take the signals: blocked while the threads start */
        pthread_sigmask(SIG_BLOCK, &set, &old);
        while (started < srv.n_workers && worker_start(&srv.workers[started]) == 0)
            started++;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        for (int i = 0; started == srv.n_workers && i < 4; i++) {
            sigs[i] = evsignal_new(srv.base, which[i], on_signal, &srv);
            event_add(sigs[i], NULL);
        }
        struct timeval second = { .tv_sec = 1 };
        house = event_new(srv.base, -1, EV_PERSIST, on_housekeeping, &srv);
        uint64_t half = notify_watchdog_usec() / 2;
        if (half) {
            struct timeval tv = { .tv_sec = (time_t)(half / 1000000u),
                                  .tv_usec = (suseconds_t)(half % 1000000u) };
            watchdog = event_new(srv.base, -1, EV_PERSIST, on_watchdog, &srv);
            if (watchdog)
                event_add(watchdog, &tv);
        }
        if (started == srv.n_workers && house && event_add(house, &second) == 0) {
            srv.started_ms = clock_mono_ms();
            banner_print(conf, srv.n_workers);
            log_info("ready");
            notify_send("READY=1\nSTATUS=serving\nMAINPID=%ld", (long)getpid());
            rc = 0;
            event_base_dispatch(srv.base);
            notify_send("STOPPING=1");
        }
    }
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (house)
        event_free(house);
    if (watchdog)
        event_free(watchdog);
    control_stop(&srv);
    metrics_stop(&srv); /* before its base and the workers it reads */
    drain_free(&srv);
    for (int i = 0; i < srv.n_workers; i++)
        worker_post(&srv.workers[i], WORKER_STOP);
    /* Every thread stops before any worker is freed: a worker may still
     * hand a connection to another until its own thread ends. */
    for (int i = 0; srv.workers && i < srv.n_workers; i++)
        worker_join(&srv.workers[i]);
    for (int i = 0; srv.workers && i < srv.n_workers; i++)
        worker_join_free(&srv.workers[i]);
    free(srv.workers);
out:
    offload_stop(srv.offload);
    if (srv.tasks_ev)
        tasks_free(&srv);
    if (srv.base)
        event_base_free(srv.base);
    tls_server_free(&srv.tls);
    quota_free(srv.quota);
    reserve_free(srv.resv);
    rate_sources_free(srv.rate);
    log_info("stopped");
    log_close();
    gen_free(srv.gen);
    return rc;
}
