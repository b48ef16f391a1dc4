/*
 * main.c - ternd: load the configuration, start one worker per core, and
 * wait for signals. SIGTERM/SIGINT stop cleanly; SIGHUP reopens the log and
 * reloads the whole configuration (reload.h).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/metrics.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/reload.h"
#include "server/server.h"
#include "server/tasks.h"
#include "server/transport/transport.h"
#include "server/turn/rate.h"

/* The main thread's base: signals only. */
static struct event_base *main_base;

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
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(main_base);
}

/* The host a browser would use: a configured external IP, a specific listen
 * IP, or the first non-loopback interface address. */
static void ice_host(const struct conf *c, char *buf, size_t len)
{
    const struct sockaddr *pick = NULL;
    if (c->n_external_ip)
        pick = (const struct sockaddr *)&c->external_ip[0];
    for (size_t i = 0; !pick && i < c->n_listen; i++)
        if (!net_addr_is_any((const struct sockaddr *)&c->listen[i].addr))
            pick = (const struct sockaddr *)&c->listen[i].addr;
    struct ifaddrs *ifs = NULL, *it;
    if (!pick && getifaddrs(&ifs) == 0) {
        for (it = ifs; it && !pick; it = it->ifa_next)
            if (it->ifa_addr && it->ifa_addr->sa_family == AF_INET && !(it->ifa_flags & IFF_LOOPBACK))
                pick = it->ifa_addr;
    }
    if (pick) {
        char ip[NET_ADDRSTRLEN];
        net_addr_format_ip(pick, ip, sizeof ip);
        snprintf(buf, len, pick->sa_family == AF_INET6 ? "[%s]" : "%s", ip);
    } else {
        snprintf(buf, len, "127.0.0.1");
    }
    freeifaddrs(ifs);
}

/* One line: where we listen and the iceServers entry a browser would use. */
static void print_ready(const struct conf *c, int n_workers)
{
    char line[4096], host[NET_ADDRSTRLEN + 2], a[NET_ADDRSTRLEN];
    size_t n = (size_t)snprintf(line, sizeof line, "ternd %s listening on", TERN_VERSION);
    for (size_t i = 0; i < c->n_listen && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %s %s", i ? "," : "",
                              conf_proto_name(c->listen[i].proto),
                              net_addr_format((const struct sockaddr *)&c->listen[i].addr, a, sizeof a));
    ice_host(c, host, sizeof host);
    n += (size_t)snprintf(line + n, sizeof line - n, " (%d workers); iceServers: [{\"urls\": [", n_workers);
    bool first = true;
    for (size_t i = 0; i < c->n_listen && n < sizeof line; i++) {
        const struct conf_listen *l = &c->listen[i];
        const char *scheme = (l->proto == CONF_TLS || l->proto == CONF_DTLS) ? "stuns" : "stun";
        if (l->proto == CONF_TCP || l->proto == CONF_DTLS)
            continue; /* stun: URIs name no transport; UDP and TLS stand for them */
        n += (size_t)snprintf(line + n, sizeof line - n, "%s\"%s:%s:%u\"", first ? "" : ", ", scheme,
                              host, net_addr_port((const struct sockaddr *)&l->addr));
        first = false;
    }
    n += (size_t)snprintf(line + n, sizeof line - n, "]}");
    /* The TURN entry with the first static user that has a password. */
    const struct conf_user *u = NULL;
    for (size_t i = 0; !u && i < c->n_users; i++)
        if (c->users[i].password[0])
            u = &c->users[i];
    if (u && n < sizeof line) {
        n += (size_t)snprintf(line + n, sizeof line - n, ", {\"urls\": [");
        first = true;
        for (size_t i = 0; i < c->n_listen && n < sizeof line; i++) {
            const struct conf_listen *l = &c->listen[i];
            if (l->proto == CONF_DTLS)
                continue; /* browsers have no turns: over DTLS */
            static const char *const uri[] = { "turn:%s:%u?transport=udp", "turn:%s:%u?transport=tcp",
                                               "turns:%s:%u?transport=tcp" };
            char one[128];
            snprintf(one, sizeof one, uri[l->proto], host, net_addr_port((const struct sockaddr *)&l->addr));
            n += (size_t)snprintf(line + n, sizeof line - n, "%s\"%s\"", first ? "" : ", ", one);
            first = false;
        }
        if (n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n,
                                  "], \"username\": \"%s\", \"credential\": \"%s\"}", u->user,
                                  u->password);
    }
    if (n < sizeof line)
        snprintf(line + n, sizeof line - n, "]");
    printf("%s\n", line);
    fflush(stdout);
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
    if (log_open((int)conf->log_level, conf->log_file, conf->log_syslog) < 0) {
        fprintf(stderr, "%s: cannot open log file: %s\n", conf->log_file, strerror(errno));
        gen_free(gen);
        return 1;
    }

    static struct server srv;
    srv.conf_path = path;
    srv.gen = gen;
    srv.conf = conf;
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
    srv.workers = calloc((size_t)srv.n_workers, sizeof *srv.workers);
    /* The main base is thread-safe (evthread): workers hand finished
     * tasks back to it. */
    srv.base = main_base = event_base_new();
    if (!srv.workers || !srv.base || tasks_init(&srv) < 0)
        goto out;

    /* Every worker binds its sockets before any thread starts; workers must
     * not take the signals, so they are blocked while the threads start. */
    int inited = 0, started = 0;
    while (inited < srv.n_workers && worker_init(&srv.workers[inited], &srv, inited) == 0)
        inited++;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    while (inited == srv.n_workers && started < srv.n_workers &&
           worker_start(&srv.workers[started]) == 0)
        started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct event *sigs[3] = { 0 };
    /* Metrics after the workers (a scrape reads them all); a port in use
     * stops the start like any other listener's. */
    if (started == srv.n_workers && (!conf->has_metrics || metrics_start(&srv, srv.base) == 0)) {
        int which[3] = { SIGINT, SIGTERM, SIGHUP };
        for (int i = 0; i < 3; i++) {
            sigs[i] = evsignal_new(srv.base, which[i], on_signal, &srv);
            event_add(sigs[i], NULL);
        }
        print_ready(conf, srv.n_workers);
        log_info("ready");
        rc = 0;
        event_base_dispatch(srv.base);
    }
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    metrics_stop(&srv); /* before its base and the workers it reads */
    for (int i = 0; i < srv.n_workers; i++)
        worker_post(&srv.workers[i], WORKER_STOP);
    for (int i = 0; srv.workers && i < srv.n_workers; i++)
        worker_join_free(&srv.workers[i]);
    free(srv.workers);
out:
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
