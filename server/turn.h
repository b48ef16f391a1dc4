/*
 * turn.h - the TURN service (RFC 8656, RFC 6156): Allocate, Refresh,
 * CreatePermission, ChannelBind requests and Send indications, with
 * long-term authentication (RFC 8489 section 9.2).
 */
#ifndef TERN_SERVER_TURN_H
#define TERN_SERVER_TURN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/stun.h"
#include "server/alloc.h"

struct worker;

/*
 * Where a request came from: the transport's client_ops and conn (see
 * alloc.h). slot is where a connection-oriented transport keeps its one
 * allocation (NULL for UDP, whose allocations are found by 5-tuple).
 * local: the server address the client reached. All borrowed.
 */
struct turn_client {
    struct worker *w;
    const struct client_ops *ops;
    void *conn;
    struct alloc **slot;
    const struct sockaddr *local;
};

#define TURN_TXCACHE 1024
#define TURN_TXCACHE_RESP 256 /* the largest Allocate answer fits; longer ones go uncached */
#define TURN_RATE_SLOTS 4096

/* Per-worker TURN state: transaction cache and unauthenticated rate limit.
 * Owned by the worker. */
struct turn_worker {
    struct {
        uint8_t tid[STUN_TID_LEN];
        const void *conn;
        struct sockaddr_in6 client; /* or a sockaddr_in: the cache is touched page by page, keep it tight */
        uint64_t at_ms;
        uint16_t len;
        uint8_t resp[TURN_TXCACHE_RESP];
    } tx[TURN_TXCACHE];
    struct {
        uint32_t ip_hash;
        uint32_t tokens;
        uint64_t at_ms;
    } rate[TURN_RATE_SLOTS];
};

/* Handle a decoded non-Binding STUN message (requests and Send
 * indications). Returns the response length in out, or 0 for no answer. */
size_t turn_handle(const struct turn_client *tc, const struct stun_msg *m,
                   const struct sockaddr *client, uint8_t *out, size_t cap);

/* ChannelData from a client: relay it if the 5-tuple has an allocation. */
void turn_channel_data(const struct turn_client *tc, const struct sockaddr *client,
                       const uint8_t *frame, size_t len);

#endif
