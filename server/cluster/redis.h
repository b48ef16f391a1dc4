/*
 * redis.h - one Redis connection on a worker's event base, reconnecting with
 * backoff.
 *
 * The socket is ours (a libevent bufferevent); hiredis is used for what it
 * is best at: formatting commands from argument vectors
 * (redisFormatCommandArgv: a USERNAME is never spliced into a command
 * string) and parsing replies (its reply reader). Replies are matched to a
 * FIFO of our own, so a reply nobody asked for is a protocol error that
 * drops the connection instead of aborting the process, every command has a
 * deadline, and a Redis that accepts the connection but stops answering is
 * detected and left.
 *
 * A command issued while the connection is not up fails at once; commands
 * in flight when it drops complete with a NULL reply. The owner is told of
 * every up/down transition, with the reason for a down.
 */
#ifndef TERN_SERVER_CLUSTER_REDIS_H
#define TERN_SERVER_CLUSTER_REDIS_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct redisReply;

#define REDIS_STR 256
#define REDIS_PING_MS 2000  /* a PING this often while up: round trip, liveness */
#define REDIS_HANG_MS 3000  /* no answer to the oldest command this long: dead */
#define REDIS_MAX_INFLIGHT 4096

struct redis_url {
    bool unix_socket;
    char host[REDIS_STR]; /* host name or IP, or the socket path */
    int port;
    char password[REDIS_STR]; /* "" for none */
    int db;
};

/* redis://[:password@]host[:port][/db] or unix:///path[?db=N]. 0 or -1. */
int redis_url_parse(const char *url, struct redis_url *out);

/* reply is NULL when the connection dropped before an answer; it is freed
 * after the callback returns. A callback must not free the connection. */
typedef void (*redis_reply_fn)(struct redisReply *reply, void *arg);
/* up, or down with a short reason ("connection refused", "no answer in 3 s"). */
typedef void (*redis_state_fn)(void *arg, bool up, const char *why);

struct redis_conn;

/* Connects in the background. url and the callbacks' arg are borrowed and
 * must outlive the connection. NULL on out-of-memory. */
struct redis_conn *redis_conn_new(struct event_base *base, const struct redis_url *url,
                                  redis_state_fn on_state, void *arg);
/* The configured server after a reload (url borrowed, as in
 * redis_conn_new): when it is another one, the connection is dropped (its
 * commands complete with NULL) and made again to it. */
void redis_conn_set_url(struct redis_conn *c, const struct redis_url *url);
/* True when a and b name the same server, database and password. */
bool redis_url_same(const struct redis_url *a, const struct redis_url *b);
/* Every command still waiting completes with a NULL reply first. */
void redis_conn_free(struct redis_conn *c);
bool redis_conn_up(const struct redis_conn *c);
/* Queue a command; cb(reply or NULL, arg) runs exactly once if this returns
 * 0. Returns -1 (cb never runs) when the connection is not up or too many
 * commands wait. cb may be NULL for fire-and-forget writes. */
int redis_conn_command(struct redis_conn *c, redis_reply_fn cb, void *arg, int argc,
                       const char **argv, const size_t *lens);
/* Round-trip time of the last PING, in microseconds (0: none yet). */
unsigned long redis_conn_rtt_us(const struct redis_conn *c);

#endif
