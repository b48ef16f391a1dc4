/*
 * redis.c - see redis.h.
 *
 * State machine: DOWN -> (connect) -> CONNECTING -> (connect callback ok,
 * AUTH and SELECT queued first so every later command runs authenticated in
 * the right database) -> UP -> (error, server gone) -> DOWN, and a timer
 * retries with backoff from 100 ms doubling to 5 s. A PING every 2 s while
 * up measures the round trip for the metrics.
 */
#include "auth/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_MS 2000

/* Owned by its creator; ac is owned by hiredis once connected (freed by it
 * on disconnect). */
struct redis_conn {
    struct event_base *base;
    const struct redis_url *url;
    redis_state_fn on_state;
    void *arg;
    redisAsyncContext *ac;
    bool up;
    unsigned backoff_ms;
    struct event *retry;
    struct event *ping;
    struct timespec ping_sent;
    unsigned long rtt_us;
    bool freeing;
};

int redis_url_parse(const char *url, struct redis_url *out)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        out->unix_socket = true;
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || n >= sizeof out->host || path[0] != '/')
            return -1;
        memcpy(out->host, path, n);
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || sscanf(q + 4, "%d", &out->db) != 1 || out->db < 0)
                return -1;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *cred = p;
        const char *colon = memchr(cred, ':', (size_t)(at - cred));
        /* redis://:password@host (user names, Redis 6 ACLs, are ignored) */
        const char *pw = colon ? colon + 1 : cred;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof out->password)
            return -1;
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    const char *end = p + strcspn(p, "/");
    const char *hs = p, *he = end;
    if (*p == '[') { /* [::1]:6379 */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        hs = p + 1;
        he = rb;
        p = rb + 1;
        if (p < end && *p != ':')
            return -1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon) {
            he = colon;
            p = colon;
        } else {
            p = end;
        }
    }
    if (p < end && *p == ':') {
        char port[8] = { 0 };
        size_t n = (size_t)(end - p - 1);
        if (n == 0 || n >= sizeof port)
            return -1;
        memcpy(port, p + 1, n);
        char *e;
        long v = strtol(port, &e, 10);
        if (*e || v < 1 || v > 65535)
            return -1;
        out->port = (int)v;
    }
    size_t hn = (size_t)(he - hs);
    if (hn == 0 || hn >= sizeof out->host)
        return -1;
    memcpy(out->host, hs, hn);
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 1000000)
            return -1;
        out->db = (int)db;
    }
    return 0;
}

static void conn_start(struct redis_conn *c);

static void set_state(struct redis_conn *c, bool up)
{
    if (c->up == up)
        return;
    c->up = up;
    if (c->on_state)
        c->on_state(c->arg, up);
}

static void schedule_retry(struct redis_conn *c)
{
    if (c->freeing)
        return;
    struct timeval tv = { .tv_sec = c->backoff_ms / 1000, .tv_usec = (c->backoff_ms % 1000) * 1000 };
    event_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees ac itself after a failed connect */
        c->ac = NULL;
        set_state(c, false);
        schedule_retry(c);
        return;
    }
    c->backoff_ms = BACKOFF_MIN_MS;
    set_state(c, true);
    struct timeval tv = { .tv_sec = PING_MS / 1000, .tv_usec = (PING_MS % 1000) * 1000 };
    event_add(c->ping, &tv);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_conn *c = ac->data;
    c->ac = NULL;
    event_del(c->ping);
    set_state(c, false);
    schedule_retry(c);
}

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac, (void)priv;
    struct redis_conn *c = ac->data;
    if (!r || !c)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long us = (now.tv_sec - c->ping_sent.tv_sec) * 1000000L +
              (now.tv_nsec - c->ping_sent.tv_nsec) / 1000L;
    c->rtt_us = us > 0 ? (unsigned long)us : 1;
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct redis_conn *c = arg;
    if (!c->ac || !c->up)
        return;
    clock_gettime(CLOCK_MONOTONIC, &c->ping_sent);
    redisAsyncCommand(c->ac, on_pong, NULL, "PING");
    struct timeval tv = { .tv_sec = PING_MS / 1000, .tv_usec = (PING_MS % 1000) * 1000 };
    event_add(c->ping, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_start(arg);
}

static void conn_start(struct redis_conn *c)
{
    const struct redis_url *u = c->url;
    redisAsyncContext *ac = u->unix_socket ? redisAsyncConnectUnix(u->host)
                                           : redisAsyncConnect(u->host, u->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisLibeventAttach(ac, c->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued now, sent first once connected: AUTH and SELECT precede any
     * command of ours. */
    if (u->password[0]) {
        const char *argv[] = { "AUTH", u->password };
        size_t lens[] = { 4, strlen(u->password) };
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
    }
    if (u->db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = { "SELECT", db };
        size_t lens[] = { 6, (size_t)n };
        redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
    }
}

struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  redis_state_fn on_state, void *arg)
{
    struct redis_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->url = url;
    c->on_state = on_state;
    c->arg = arg;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->retry = evtimer_new(base, on_retry, c);
    c->ping = evtimer_new(base, on_ping_timer, c);
    if (!c->retry || !c->ping) {
        redis_conn_free(c);
        return NULL;
    }
    conn_start(c);
    return c;
}

void redis_conn_free(struct redis_conn *c)
{
    if (!c)
        return;
    c->freeing = true;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        /* runs pending callbacks with NULL replies, then on_disconnect */
        ac->data = c;
        redisAsyncFree(ac);
    }
    if (c->retry)
        event_free(c->retry);
    if (c->ping)
        event_free(c->ping);
    free(c);
}

bool redis_conn_up(const struct redis_conn *c)
{
    return c && c->up && c->ac;
}

/* hiredis calls back with (ac, reply, privdata); adapt to (reply, arg). */
struct call {
    redis_reply_fn cb;
    void *arg;
};

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct call *k = priv;
    k->cb(reply, k->arg);
    free(k);
}

int redis_conn_command(struct redis_conn *c, redis_reply_fn cb, void *arg, int argc,
                       const char **argv, const size_t *lens)
{
    if (!redis_conn_up(c))
        return -1;
    if (!cb)
        return redisAsyncCommandArgv(c->ac, NULL, NULL, argc, argv, lens) == REDIS_OK ? 0 : -1;
    struct call *k = malloc(sizeof *k);
    if (!k)
        return -1;
    k->cb = cb;
    k->arg = arg;
    if (redisAsyncCommandArgv(c->ac, on_reply, k, argc, argv, lens) != REDIS_OK) {
        free(k);
        return -1;
    }
    return 0;
}

unsigned long redis_conn_rtt_us(const struct redis_conn *c)
{
    return c ? c->rtt_us : 0;
}
