/*
 * redis.c - see redis.h.
 *
 * States: DOWN -> (connect queued, AUTH, SELECT and a PING queued behind
 * it) -> HANDSHAKE -> (the PING answered) -> UP -> (an error, the server
 * gone, a reply nobody asked for, or no answer within REDIS_HANG_MS) -> DOWN,
 * and a timer retries with backoff from 100 ms doubling to 5 s. Only the
 * PING's answer makes the connection UP, so a Redis that accepts TCP
 * connections but is stopped never looks alive. A tick every 250 ms sends a
 * PING every REDIS_PING_MS while up and checks the oldest command's deadline.
 */
#include "server/cluster/redis.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "server/core/clock.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define TICK_MS 250
#define MAX_UNPARSED (4u << 20) /* a reply this large is not one of ours */

enum redis_state { REDIS_DOWN, REDIS_HANDSHAKE, REDIS_UP };

/* One command waiting for its reply. */
struct redis_cmd {
    redis_reply_fn cb;
    void *arg;
    uint64_t deadline_ms;
};

/* Owned by its creator (redis_conn_new/free); owns bev, reader, events. */
struct redis_conn {
    struct event_base *base;
    const struct redis_url *url;
    redis_state_fn on_state;
    void *arg;
    struct bufferevent *bev; /* NULL while DOWN */
    redisReader *reader;
    enum redis_state state;
    bool reported_up;        /* what on_state was last told */
    unsigned gen;            /* bumped on every drop: callbacks check it */
    unsigned backoff_ms;
    struct event *retry;
    struct event *tick;
    uint64_t ping_sent_ms;   /* 0: no PING outstanding */
    uint64_t last_ping_ms;
    unsigned long rtt_us;
    unsigned head, count;    /* FIFO of commands in ring[] */
    struct redis_cmd ring[REDIS_MAX_INFLIGHT];
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

static void tell(struct redis_conn *c, bool up, const char *why)
{
    if (c->reported_up == up)
        return;
    c->reported_up = up;
    if (c->on_state)
        c->on_state(c->arg, up, why);
}

static void schedule_retry(struct redis_conn *c)
{
    struct timeval tv = { .tv_sec = c->backoff_ms / 1000, .tv_usec = (c->backoff_ms % 1000) * 1000 };
    event_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* Leave the connection: every waiting command completes with NULL. */
static void conn_drop(struct redis_conn *c, const char *why, bool retry)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    redisReaderFree(c->reader);
    c->reader = redisReaderCreate();
    c->state = REDIS_DOWN;
    c->ping_sent_ms = 0;
    c->gen++;
    while (c->count) {
        struct redis_cmd k = c->ring[c->head];
        c->head = (c->head + 1) % REDIS_MAX_INFLIGHT;
        c->count--;
        if (k.cb)
            k.cb(NULL, k.arg);
    }
    tell(c, false, why);
    if (retry)
        schedule_retry(c);
}

static int conn_enqueue(struct redis_conn *c, redis_reply_fn cb, void *arg, int argc,
                        const char **argv, const size_t *lens)
{
    if (!c->bev || c->count >= REDIS_MAX_INFLIGHT)
        return -1;
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return -1;
    int rc = bufferevent_write(c->bev, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc < 0)
        return -1;
    struct redis_cmd *k = &c->ring[(c->head + c->count++) % REDIS_MAX_INFLIGHT];
    *k = (struct redis_cmd){ cb, arg, clock_mono_ms() + REDIS_HANG_MS };
    return 0;
}

static void on_pong(struct redisReply *r, void *arg)
{
    struct redis_conn *c = arg;
    if (!r)
        return;
    uint64_t now = clock_mono_ms();
    if (c->ping_sent_ms) {
        uint64_t ms = now - c->ping_sent_ms;
        c->rtt_us = ms ? (unsigned long)ms * 1000 : 1;
        c->ping_sent_ms = 0;
    }
    if (c->state == REDIS_HANDSHAKE) {
        c->state = REDIS_UP;
        c->backoff_ms = BACKOFF_MIN_MS;
        tell(c, true, NULL);
    }
}

/* AUTH and SELECT: an error answer means this Redis will not serve us. */
static void on_setup(struct redisReply *r, void *arg)
{
    struct redis_conn *c = arg;
    if (r && r->type == REDIS_REPLY_ERROR)
        conn_drop(c, "AUTH or SELECT refused", true);
}

static void send_ping(struct redis_conn *c, uint64_t now)
{
    static const char *const ping[] = { "PING" };
    static const size_t len[] = { 4 };
    if (conn_enqueue(c, on_pong, c, 1, (const char **)ping, len) == 0) {
        c->ping_sent_ms = now;
        c->last_ping_ms = now;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct redis_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned gen = c->gen;
    while (evbuffer_get_length(in)) {
        size_t n = evbuffer_get_contiguous_space(in);
        if (redisReaderFeed(c->reader, (const char *)evbuffer_pullup(in, (ssize_t)n), n) != REDIS_OK) {
            conn_drop(c, "protocol error", true);
            return;
        }
        evbuffer_drain(in, n);
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
                conn_drop(c, "protocol error", true);
                return;
            }
            if (!reply)
                break;
            if (!c->count) {
                /* hiredis's own async layer asserts here; we leave. */
                freeReplyObject(reply);
                conn_drop(c, "a reply nobody asked for", true);
                return;
            }
            struct redis_cmd k = c->ring[c->head];
            c->head = (c->head + 1) % REDIS_MAX_INFLIGHT;
            c->count--;
            if (k.cb)
                k.cb(reply, k.arg);
            freeReplyObject(reply);
            if (gen != c->gen)
                return; /* dropped meanwhile; bev is gone */
        }
        if (c->reader->len - c->reader->pos > MAX_UNPARSED) {
            conn_drop(c, "reply too large", true);
            return;
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct redis_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    char why[96];
    int e = EVUTIL_SOCKET_ERROR();
    if ((what & BEV_EVENT_ERROR) && e)
        snprintf(why, sizeof why, "%s", strerror(e));
    else
        snprintf(why, sizeof why, "connection closed");
    conn_drop(c, why, true);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct redis_conn *c = arg;
    uint64_t now = clock_mono_ms();
    if (c->state == REDIS_DOWN)
        return;
    if (c->count && now > c->ring[c->head].deadline_ms) {
        char why[64];
        snprintf(why, sizeof why, "no answer in %u s", REDIS_HANG_MS / 1000);
        conn_drop(c, why, true);
        return;
    }
    if (c->state == REDIS_UP && !c->ping_sent_ms && now - c->last_ping_ms >= REDIS_PING_MS)
        send_ping(c, now);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_start(arg);
}

/* The server's address; host names are resolved here, blocking, as hiredis
 * did (an IP or a Unix socket path resolves at once). 0 or -1. */
static int conn_address(const struct redis_url *u, struct sockaddr_storage *ss, int *len)
{
    memset(ss, 0, sizeof *ss);
    if (u->unix_socket) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        if (strlen(u->host) >= sizeof sun->sun_path)
            return -1;
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, u->host);
        *len = (int)sizeof *sun;
        return 0;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    if (getaddrinfo(u->host, port, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void conn_start(struct redis_conn *c)
{
    const struct redis_url *u = c->url;
    struct sockaddr_storage ss;
    int len;
    if (conn_address(u, &ss, &len) < 0) {
        conn_drop(c, "cannot resolve the host", true);
        return;
    }
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        conn_drop(c, "out of memory", true);
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = REDIS_HANDSHAKE;
    unsigned gen = c->gen;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) < 0) {
        if (gen == c->gen)
            conn_drop(c, "cannot connect", true);
        return;
    }
    if (gen != c->gen)
        return; /* refused at once: on_event dropped it */
    /* Queued now, sent once connected: AUTH and SELECT precede everything,
     * and the PING's answer is what makes the connection UP. */
    if (u->password[0]) {
        const char *argv[] = { "AUTH", u->password };
        size_t lens[] = { 4, strlen(u->password) };
        conn_enqueue(c, on_setup, c, 2, argv, lens);
    }
    if (u->db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = { "SELECT", db };
        size_t lens[] = { 6, (size_t)n };
        conn_enqueue(c, on_setup, c, 2, argv, lens);
    }
    send_ping(c, clock_mono_ms());
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
    c->reader = redisReaderCreate();
    c->retry = evtimer_new(base, on_retry, c);
    c->tick = event_new(base, -1, EV_PERSIST, on_tick, c);
    struct timeval tv = { .tv_sec = 0, .tv_usec = TICK_MS * 1000 };
    if (!c->reader || !c->retry || !c->tick || event_add(c->tick, &tv) < 0) {
        redis_conn_free(c);
        return NULL;
    }
    conn_start(c);
    return c;
}

bool redis_url_same(const struct redis_url *a, const struct redis_url *b)
{
    return a->unix_socket == b->unix_socket && a->port == b->port && a->db == b->db &&
           strcmp(a->host, b->host) == 0 && strcmp(a->password, b->password) == 0;
}

void redis_conn_set_url(struct redis_conn *c, const struct redis_url *url)
{
    bool same = redis_url_same(c->url, url);
    c->url = url;
    if (same)
        return;
    c->backoff_ms = BACKOFF_MIN_MS;
    event_del(c->retry);
    conn_drop(c, "switching to the server of the new configuration", false);
    conn_start(c);
}

void redis_conn_free(struct redis_conn *c)
{
    if (!c)
        return;
    c->on_state = NULL; /* no news while shutting down */
    conn_drop(c, "shutdown", false);
    if (c->retry)
        event_free(c->retry);
    if (c->tick)
        event_free(c->tick);
    redisReaderFree(c->reader);
    free(c);
}

bool redis_conn_up(const struct redis_conn *c)
{
    return c && c->state == REDIS_UP;
}

int redis_conn_command(struct redis_conn *c, redis_reply_fn cb, void *arg, int argc,
                       const char **argv, const size_t *lens)
{
    if (!redis_conn_up(c))
        return -1;
    return conn_enqueue(c, cb, arg, argc, argv, lens);
}

unsigned long redis_conn_rtt_us(const struct redis_conn *c)
{
    return c ? c->rtt_us : 0;
}
