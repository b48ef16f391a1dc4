/*
 * binding.h - the STUN Binding service (RFC 8489 section 3, RFC 3489
 * compatibility, RFC 5780 NAT behaviour discovery). A pure function from a
 * request datagram to a response: no sockets, so unit tests and the fuzzer
 * call it directly; the caller sends the answer the way it says.
 */
#ifndef TERN_SERVER_STUN_BINDING_H
#define TERN_SERVER_STUN_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct stun_msg;
struct worker_stats;

/*
 * A response to an unauthenticated request is never more than this many
 * bytes longer than the request (amplification bound; optional attributes
 * such as SOFTWARE are left out rather than break it).
 */
#define BINDING_MAX_GROWTH 128

/* Index bits of the four RFC 5780 sockets of one UDP listener. */
#define BINDING_ALT_IP 2u
#define BINDING_ALT_PORT 1u

/*
 * What the service knows about where a request arrived. software is borrowed
 * from the configuration, which outlives every worker; stats from the worker
 * that owns the socket (NULL: nothing is counted, as in unit tests).
 */
struct binding_env {
    const char *software; /* NULL or "": no SOFTWARE attribute */
    size_t software_len;
    bool stream;       /* TCP/TLS/DTLS session: no CHANGE-REQUEST/RESPONSE-PORT */
    bool rfc5780;      /* the four addresses below are valid */
    unsigned self;     /* which of addrs[] received the request */
    struct sockaddr_storage addrs[4];
    struct sockaddr_storage local; /* the address the request was sent to */
    /* Binding requests by code and malformed drops are counted here; other
     * methods by the service the caller routes them to. */
    struct worker_stats *stats;
};

/* Where to send the response from and to. */
struct binding_route {
    unsigned from;               /* index into addrs[] (self unless CHANGE-REQUEST) */
    struct sockaddr_storage to;  /* the client, or its IP with RESPONSE-PORT */
};

/* binding_handle's answer for a message of another method (see there). */
#define BINDING_OTHER ((size_t)-1)

/*
 * Answer one STUN message from `client`. Returns the response length written
 * to out, or 0 when the message must be dropped silently (not STUN, not a
 * request, bad FINGERPRINT). A well-formed message of another method is
 * decoded into *other and BINDING_OTHER returned, for the caller to route;
 * with other NULL, such requests get 400 (no other service).
 */
size_t binding_handle(const struct binding_env *env, const uint8_t *req, size_t req_len,
                      const struct sockaddr *client, uint8_t *out, size_t cap,
                      struct binding_route *route, struct stun_msg *other);

/* Build an error response to a decoded-enough request header (used for 400
 * on undecodable requests by other services too). Returns length or 0. */
size_t binding_error(const struct binding_env *env, const uint8_t *req, size_t req_len,
                     int code, const uint16_t *unknown, size_t n_unknown, bool fingerprint,
                     uint8_t *out, size_t cap);

#endif
