/*
 * turnc.h - a small TURN client (RFC 8656) for tools: one allocation on one
 * server, over UDP or TCP, with long-term credentials (RFC 8489 section 9.2),
 * driven step by step by its caller (the engine of `ternctl icetest`).
 *
 * Design: every request is one blocking transaction (send, retransmit over
 * UDP, wait for the answer with the same transaction ID, up to timeout_ms);
 * the data path is non-blocking so that a caller can poll several clients
 * from one loop: turnc_send_channel queues or drops, turnc_recv_channel hands
 * out what has arrived. Messages go through proto/'s codec only; this module
 * owns the socket and two buffers, nothing else.
 *
 * Errors: functions return 0, or -1 with a one-line reason in c->why that a
 * person can act on ("401 Unauthorized: wrong credentials", "timeout: no
 * answer from ..."), and the STUN error code, if the server gave one, in
 * c->error.
 */
#ifndef TERN_CLIENT_TURNC_H
#define TERN_CLIENT_TURNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/stun.h"

/* A whole STUN message or ChannelData frame of the largest size, so that a
 * TCP stream can always hold the next frame. */
#define TURNC_BUF (STUN_MAX_MSG + 4)

/*
 * One client, one allocation. Owned by its caller, who keeps user and
 * password (borrowed) alive until turnc_close; the struct is large (two
 * stream buffers), so it belongs on the heap or in static storage.
 */
struct turnc {
    int fd;
    bool tcp;
    struct sockaddr_storage server;
    unsigned timeout_ms; /* one transaction, retransmissions included */
    const char *user, *password; /* NULL: no credentials */
    char realm[256], nonce[256];
    uint8_t key[16]; /* MD5(user:realm:password), once a 401 gave the realm */
    bool have_key;
    bool refused; /* UDP: ICMP said nothing listens at the server's port */
    struct sockaddr_storage relayed, mapped; /* from the Allocate answer */
    uint32_t lifetime;
    int error;     /* STUN error code of the last refusal, else 0 */
    char why[256]; /* the last failure, one line */
    /* TCP only: bytes read and not yet handed out (in_skip: the frame
     * handed out last, dropped at the next read), bytes not yet written. */
    size_t in_len, in_skip, out_len;
    uint8_t in[TURNC_BUF];
    uint8_t out[TURNC_BUF];
    uint8_t ans[2048]; /* the answer of the current transaction */
};

/* Connects to server (TCP: within timeout_ms). 0 or -1. */
int turnc_open(struct turnc *c, const struct sockaddr_storage *server, bool tcp,
               const char *user, const char *password, unsigned timeout_ms);
void turnc_close(struct turnc *c);

/* Allocate a UDP relay (challenge, credentials, stale-nonce retry). */
int turnc_allocate(struct turnc *c);
int turnc_permit(struct turnc *c, const struct sockaddr_storage *peer);
int turnc_bind_channel(struct turnc *c, uint16_t channel, const struct sockaddr_storage *peer);
/* lifetime 0 deletes the allocation (RFC 8656 section 7). */
int turnc_refresh(struct turnc *c, uint32_t lifetime);

/* ChannelData of len bytes (padded to 4 on TCP, RFC 8656 section 12.5).
 * 0 sent or queued, 1 dropped (the socket or the queue is full), -1 error. */
int turnc_send_channel(struct turnc *c, uint16_t channel, const void *data, size_t len);
/* TCP: writes what the socket takes of the queue. 0 or -1. */
int turnc_flush(struct turnc *c);
static inline bool turnc_want_write(const struct turnc *c)
{
    return c->out_len > 0;
}
/* The next ChannelData that has arrived: 1 (*data valid until the next call),
 * 0 nothing more for now, -1 the connection failed. Other frames (STUN
 * indications, late answers) are skipped. */
int turnc_recv_channel(struct turnc *c, uint16_t *channel, const uint8_t **data, size_t *len);

#endif
