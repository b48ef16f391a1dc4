/*
 * redis.h - one asynchronous Redis connection on an event base (hiredis with
 * its libevent adapter), reconnecting with backoff.
 *
 * Commands are always built from argument vectors (never by formatting a
 * USERNAME into a command string). A command issued while the connection is
 * down fails at once; commands in flight when it drops complete with a NULL
 * reply. The owner is told of every up/down transition.
 */
#ifndef TERN_AUTH_REDIS_H
#define TERN_AUTH_REDIS_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct redisReply;

#define REDIS_STR 256

struct redis_url {
    bool unix_socket;
    char host[REDIS_STR]; /* host name or IP, or the socket path */
    int port;
    char password[REDIS_STR]; /* "" for none */
    int db;
};

/* redis://[:password@]host[:port][/db] or unix:///path[?db=N]. 0 or -1. */
int redis_url_parse(const char *url, struct redis_url *out);

typedef void (*redis_reply_fn)(struct redisReply *reply, void *arg);
typedef void (*redis_state_fn)(void *arg, bool up);

struct redis_conn;

/* Connects in the background. url and the callbacks' arg are borrowed and
 * must outlive the connection. */
struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  redis_state_fn on_state, void *arg);
void redis_conn_free(struct redis_conn *c);
bool redis_conn_up(const struct redis_conn *c);
/* Queue a command; cb(reply or NULL, arg) runs exactly once if this returns
 * 0. Returns -1 (cb never runs) when the connection is down. cb may be NULL
 * for fire-and-forget writes. */
int redis_conn_command(struct redis_conn *c, redis_reply_fn cb, void *arg, int argc,
                       const char **argv, const size_t *lens);
/* Round-trip time of the last PING, in microseconds (0: none yet). */
unsigned long redis_conn_rtt_us(const struct redis_conn *c);

#endif
