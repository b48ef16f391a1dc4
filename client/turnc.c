/*
 * turnc.c - a small TURN client: transactions with retransmission and
 * long-term authentication, the four requests a relay test needs, and
 * ChannelData over UDP or a TCP stream.
 *
 * Design: a request is built afresh for every attempt from a struct
 * turnc_req, so the 401 challenge and a 438 stale nonce are answered by
 * building it again with the new realm and nonce (RFC 8489 section 9.2.4-5)
 * rather than by patching bytes. Answers are matched by transaction ID; over
 * UDP a late answer to an earlier attempt is the same transaction, which is
 * what a retransmission wants. The UDP socket is connected, so datagrams from
 * anyone but the server never reach us and an ICMP port unreachable shows up
 * as ECONNREFUSED: it is remembered for the timeout's reason, not trusted
 * alone (one stray ICMP must not end a test that would have been answered).
 *
 * Trade-offs: one transaction at a time, and ChannelData that arrives while
 * one waits is dropped: the caller sets everything up before its data flows
 * and tears it down after.
 */
#include "client/turnc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "client/nat.h"

/* RFC 8489 section 6.2.1's RTO, shorter than its 500 ms default: a tool
 * that answers "is this server working" should say so in seconds. */
#define TURNC_RTO_MS 250

/* What one request carries besides authentication. */
struct turnc_req {
    uint16_t method;
    const char *what; /* for reasons: "allocation", "permission", ... */
    bool transport;   /* REQUESTED-TRANSPORT UDP */
    bool lifetime_set;
    uint32_t lifetime;
    uint16_t channel; /* CHANNEL-NUMBER, 0: none */
    const struct sockaddr_storage *peer;
};

static double turnc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static socklen_t turnc_addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

__attribute__((format(printf, 2, 3))) static int turnc_fail(struct turnc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *turnc_transport(const struct turnc *c)
{
    return c->tcp ? "tcp" : "udp";
}

/* --- the socket -------------------------------------------------------------- */

static int turnc_connect_wait(struct turnc *c, const char *server)
{
    struct pollfd p = { .fd = c->fd, .events = POLLOUT };
    int k;
    do
        k = poll(&p, 1, (int)c->timeout_ms);
    while (k < 0 && errno == EINTR);
    if (k == 0)
        return turnc_fail(c, "timeout: no answer from %s over tcp within %.1f s", server,
                          c->timeout_ms / 1e3);
    int err = 0;
    socklen_t l = sizeof err;
    if (k < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err == ECONNREFUSED)
        return turnc_fail(c, "connection refused: nothing listens at %s over tcp", server);
    if (err)
        return turnc_fail(c, "cannot connect to %s over tcp: %s", server, strerror(err));
    return 0;
}

int turnc_open(struct turnc *c, const struct sockaddr_storage *server, bool tcp,
               const char *user, const char *password, unsigned timeout_ms)
{
    memset(c, 0, offsetof(struct turnc, in));
    c->server = *server;
    c->tcp = tcp;
    c->user = user;
    c->password = password;
    c->timeout_ms = timeout_ms;
    char s[64];
    nat_addr_format(server, s, sizeof s);
    c->fd = socket(server->ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0);
    if (c->fd < 0)
        return turnc_fail(c, "cannot open a %s socket: %s", turnc_transport(c), strerror(errno));
    /* small frames paced by the caller: Nagle would hold each one for the
     * previous one's ACK, which delayed ACKs keep back 40 ms */
    int one = 1;
    if (tcp)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)server, turnc_addr_len(server)) == 0)
        return 0;
    if (tcp && errno == EINPROGRESS && turnc_connect_wait(c, s) == 0)
        return 0;
    if (!tcp || errno != EINPROGRESS)
        turnc_fail(c, "cannot reach %s over %s: %s", s, turnc_transport(c), strerror(errno));
    close(c->fd);
    c->fd = -1;
    return -1;
}

void turnc_close(struct turnc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int turnc_flush(struct turnc *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0)
            return turnc_fail(c, "the tcp connection to the server failed: %s", strerror(errno));
        off += (size_t)w;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    return 0;
}

/* One frame out: 0 sent or queued, 1 no room, -1 error. A stream takes the
 * frame whole or not at all, so framing survives a full socket. */
static int turnc_write(struct turnc *c, const uint8_t *p, size_t len)
{
    if (c->tcp) {
        if (len > sizeof c->out - c->out_len)
            return 1;
        memcpy(c->out + c->out_len, p, len);
        c->out_len += len;
        return turnc_flush(c);
    }
    for (;;) {
        if (send(c->fd, p, len, MSG_DONTWAIT) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == ECONNREFUSED) {
            c->refused = true; /* reported by a timeout, if one comes */
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return 1;
        return turnc_fail(c, "cannot send to the server: %s", strerror(errno));
    }
}

/* The next whole frame: a datagram, or one STUN message or ChannelData frame
 * of the stream. 1 (*f valid until the next call), 0 none yet, -1 error. */
static int turnc_next_frame(struct turnc *c, const uint8_t **f, size_t *len)
{
    if (!c->tcp) {
        for (;;) {
            ssize_t n = recv(c->fd, c->in, sizeof c->in, MSG_DONTWAIT);
            if (n >= 0) {
                *f = c->in;
                *len = (size_t)n;
                return 1;
            }
            if (errno == EINTR)
                continue;
            if (errno == ECONNREFUSED) {
                c->refused = true;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return turnc_fail(c, "cannot receive from the server: %s", strerror(errno));
        }
    }
    memmove(c->in, c->in + c->in_skip, c->in_len - c->in_skip);
    c->in_len -= c->in_skip;
    c->in_skip = 0;
    for (;;) {
        long fl = stun_frame_len(c->in, c->in_len);
        if (fl < 0)
            return turnc_fail(c, "the server sent bytes that are neither STUN nor ChannelData");
        if (fl > 0 && (size_t)fl <= c->in_len) {
            *f = c->in;
            *len = (size_t)fl;
            c->in_skip = (size_t)fl;
            return 1;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, MSG_DONTWAIT);
        if (n == 0)
            return turnc_fail(c, "the server closed the tcp connection");
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return turnc_fail(c, "the tcp connection to the server failed: %s", strerror(errno));
        c->in_len += (size_t)n;
    }
}

int turnc_send_channel(struct turnc *c, uint16_t channel, const void *data, size_t len)
{
    uint8_t frame[STUN_CHANNEL_HDR_LEN + 1500];
    size_t padded = c->tcp ? (len + 3) & ~(size_t)3 : len;
    if (len > 0xFFFF || STUN_CHANNEL_HDR_LEN + padded > sizeof frame)
        return turnc_fail(c, "ChannelData of %zu bytes is too large for this client", len);
    stun_channel_encode_hdr(frame, channel, (uint16_t)len);
    memcpy(frame + STUN_CHANNEL_HDR_LEN, data, len);
    memset(frame + STUN_CHANNEL_HDR_LEN + len, 0, padded - len);
    return turnc_write(c, frame, STUN_CHANNEL_HDR_LEN + padded);
}

int turnc_recv_channel(struct turnc *c, uint16_t *channel, const uint8_t **data, size_t *len)
{
    const uint8_t *f;
    size_t flen;
    int rc;
    while ((rc = turnc_next_frame(c, &f, &flen)) == 1) {
        uint16_t dlen;
        if (stun_channel_decode(f, flen, channel, data, &dlen) == 0) {
            *len = dlen;
            return 1;
        }
    }
    return rc;
}

/* --- transactions ------------------------------------------------------------ */

/* Sends req and waits for the answer with its transaction ID, into c->ans
 * and m. Over UDP the request is sent again after 250, 500, 1000 ms ... */
static int turnc_transact(struct turnc *c, const uint8_t *req, size_t len, struct stun_msg *m)
{
    double start = turnc_now(), deadline = start + c->timeout_ms / 1e3, next = start;
    double rto = TURNC_RTO_MS / 1e3;
    for (;;) {
        double now = turnc_now();
        if (now >= deadline) {
            char s[64];
            return turnc_fail(c, "timeout: no answer from %s over %s within %.1f s%s",
                              nat_addr_format(&c->server, s, sizeof s), turnc_transport(c),
                              c->timeout_ms / 1e3,
                              c->refused ? " (ICMP port unreachable: nothing listens there?)"
                                         : "");
        }
        if (now >= next) {
            int w = turnc_write(c, req, len);
            if (w < 0)
                return -1;
            if (w > 0 && c->tcp)
                return turnc_fail(c, "cannot queue a request: the tcp connection is stuck");
            next = c->tcp ? deadline : now + rto;
            rto *= 2;
        }
        double until = next < deadline ? next : deadline;
        struct pollfd p = { .fd = c->fd, .events = POLLIN | (turnc_want_write(c) ? POLLOUT : 0) };
        if (poll(&p, 1, (int)((until - now) * 1000) + 1) < 0 && errno != EINTR)
            return turnc_fail(c, "poll: %s", strerror(errno));
        if ((p.revents & POLLOUT) && turnc_flush(c) < 0)
            return -1;
        const uint8_t *f;
        size_t flen;
        int rc;
        while ((rc = turnc_next_frame(c, &f, &flen)) == 1) {
            if (!stun_is_stun(f, flen) || flen > sizeof c->ans)
                continue; /* ChannelData, or nothing we asked for */
            memcpy(c->ans, f, flen);
            if (stun_msg_decode(m, c->ans, flen) == 0 && !m->classic &&
                (m->cls == STUN_CLASS_SUCCESS || m->cls == STUN_CLASS_ERROR) &&
                memcmp(m->tid, req + 8, STUN_TID_LEN) == 0)
                return 0;
        }
        if (rc < 0)
            return -1;
    }
}

static size_t turnc_build(struct turnc *c, const struct turnc_req *r, uint8_t *buf, size_t cap)
{
    uint8_t tid[STUN_TID_LEN];
    struct stun_enc e;
    if (RAND_bytes(tid, sizeof tid) != 1 ||
        stun_enc_init(&e, buf, cap, r->method, STUN_CLASS_REQUEST, tid, false) < 0)
        return 0;
    /* RFC 8656 section 7.1: 17 is UDP, the only relay a TURN server must offer */
    if ((r->transport && stun_enc_add_u32(&e, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24) < 0) ||
        (r->lifetime_set && stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, r->lifetime) < 0) ||
        (r->channel && stun_enc_add_u32(&e, STUN_ATTR_CHANNEL_NUMBER, (uint32_t)r->channel << 16) < 0) ||
        (r->peer && stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS,
                                       (const struct sockaddr *)r->peer) < 0))
        return 0;
    if (c->have_key &&
        (stun_enc_add(&e, STUN_ATTR_USERNAME, c->user, strlen(c->user)) < 0 ||
         stun_enc_add(&e, STUN_ATTR_REALM, c->realm, strlen(c->realm)) < 0 ||
         stun_enc_add(&e, STUN_ATTR_NONCE, c->nonce, strlen(c->nonce)) < 0 ||
         stun_enc_add_integrity(&e, c->key, sizeof c->key) < 0))
        return 0;
    return stun_enc_add_fingerprint(&e) < 0 ? 0 : e.len;
}

/* A text attribute (REALM, NONCE) into out, NUL-terminated: 0 or -1. */
static int turnc_take_text(const struct stun_msg *m, uint16_t type, char *out, size_t cap)
{
    const struct stun_attr *a = stun_attr_find(m, type);
    if (!a || a->len >= cap || memchr(m->buf + a->off, 0, a->len))
        return -1;
    memcpy(out, m->buf + a->off, a->len);
    out[a->len] = 0;
    return 0;
}

/* The realm and nonce of a 401 or 438, and the key they make. */
static int turnc_take_challenge(struct turnc *c, const struct stun_msg *m, int code)
{
    if (turnc_take_text(m, STUN_ATTR_NONCE, c->nonce, sizeof c->nonce) < 0 ||
        (turnc_take_text(m, STUN_ATTR_REALM, c->realm, sizeof c->realm) < 0 && !c->have_key))
        return turnc_fail(c, "%d %s without a usable REALM and NONCE", code,
                          stun_error_reason(code));
    if (auth_key_md5(c->user, strlen(c->user), c->realm, c->password, c->key) < 0)
        return turnc_fail(c, "the password has a character SASLprep (RFC 4013) prohibits");
    c->have_key = true;
    return 0;
}

/* The one line of a refusal: "<what> refused: CODE Reason", with what the
 * common codes mean for whoever runs the test. */
static int turnc_refusal(struct turnc *c, const struct turnc_req *r, const struct stun_msg *m,
                         int code)
{
    const char *reason = NULL;
    size_t rlen = 0;
    const struct stun_attr *a = stun_attr_find(m, STUN_ATTR_ERROR_CODE);
    if (!a || stun_attr_get_error(m, a, &code, &reason, &rlen) < 0 || rlen == 0) {
        reason = stun_error_reason(code);
        rlen = strlen(reason);
    }
    if (code == 0)
        return turnc_fail(c, "%s refused with an error answer that has no ERROR-CODE", r->what);
    char text[96];
    snprintf(text, sizeof text, "%.*s", (int)rlen, reason);
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?'; /* the server's words, kept to one line */
    c->error = code;
    if (code == 401)
        return turnc_fail(c, "401 %s: %s", text,
                          c->user ? "wrong credentials"
                                  : "the server wants credentials (--user/--password or --secret)");
    if (code == 403 && r->peer)
        return turnc_fail(c, "%s refused: 403 %s (does the server relay to its own relay "
                          "addresses? ternd: peers.allow_loopback for 127.0.0.1, coturn: "
                          "--allow-loopback-peers)", r->what, text);
    return turnc_fail(c, "%s refused: %d %s", r->what, code, text);
}

/* One request, authenticated once the server asks: 0 success (m holds the
 * answer), -1 refused or failed. */
static int turnc_request(struct turnc *c, const struct turnc_req *r, struct stun_msg *m)
{
    uint8_t req[512];
    c->error = 0;
    /* the challenge, then at most two stale nonces in a row */
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t len = turnc_build(c, r, req, sizeof req);
        if (len == 0)
            return turnc_fail(c, "cannot encode the %s request", r->what);
        if (turnc_transact(c, req, len, m) < 0)
            return -1;
        if (m->fingerprint >= 0 && !stun_msg_check_fingerprint(m))
            return turnc_fail(c, "the answer to the %s request has a wrong FINGERPRINT", r->what);
        if (m->cls == STUN_CLASS_SUCCESS) {
            /* RFC 8489 section 9.2.5: an answer we cannot authenticate is
             * not from the server we share the key with */
            if (c->have_key && m->integrity >= 0 &&
                stun_msg_check_integrity(m, c->key, sizeof c->key) != 0)
                return turnc_fail(c, "the answer to the %s request fails MESSAGE-INTEGRITY",
                                  r->what);
            return 0;
        }
        int code = 0;
        const char *reason;
        size_t rlen;
        const struct stun_attr *a = stun_attr_find(m, STUN_ATTR_ERROR_CODE);
        if (a)
            stun_attr_get_error(m, a, &code, &reason, &rlen);
        bool retry = (code == 401 && c->user && !c->have_key) || (code == 438 && c->user);
        if (!retry)
            return turnc_refusal(c, r, m, code);
        if (turnc_take_challenge(c, m, code) < 0)
            return -1;
    }
    return turnc_fail(c, "%s: the server kept answering 438 Stale Nonce", r->what);
}

int turnc_allocate(struct turnc *c)
{
    struct turnc_req r = { .method = STUN_ALLOCATE, .what = "allocation", .transport = true };
    struct stun_msg m;
    if (turnc_request(c, &r, &m) < 0)
        return -1;
    const struct stun_attr *relayed = stun_attr_find(&m, STUN_ATTR_XOR_RELAYED_ADDRESS);
    const struct stun_attr *mapped = stun_attr_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS);
    const struct stun_attr *life = stun_attr_find(&m, STUN_ATTR_LIFETIME);
    if (!relayed || stun_attr_get_xaddr(&m, relayed, &c->relayed) < 0)
        return turnc_fail(c, "the Allocate answer has no usable XOR-RELAYED-ADDRESS");
    if (!mapped || stun_attr_get_xaddr(&m, mapped, &c->mapped) < 0)
        memset(&c->mapped, 0, sizeof c->mapped);
    if (!life || stun_attr_get_u32(&m, life, &c->lifetime) < 0)
        c->lifetime = 0;
    return 0;
}

int turnc_permit(struct turnc *c, const struct sockaddr_storage *peer)
{
    struct turnc_req r = { .method = STUN_CREATE_PERMISSION, .what = "permission", .peer = peer };
    struct stun_msg m;
    return turnc_request(c, &r, &m);
}

int turnc_bind_channel(struct turnc *c, uint16_t channel, const struct sockaddr_storage *peer)
{
    struct turnc_req r = { .method = STUN_CHANNEL_BIND, .what = "channel bind", .channel = channel,
                           .peer = peer };
    struct stun_msg m;
    return turnc_request(c, &r, &m);
}

int turnc_refresh(struct turnc *c, uint32_t lifetime)
{
    struct turnc_req r = { .method = STUN_REFRESH, .what = "refresh", .lifetime_set = true,
                           .lifetime = lifetime };
    struct stun_msg m;
    if (turnc_request(c, &r, &m) == 0)
        return 0;
    /* RFC 8656 section 7.3: a 437 to a deletion means it is already gone */
    return lifetime == 0 && c->error == 437 ? 0 : -1;
}
