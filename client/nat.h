/*
 * nat.h - RFC 5780 NAT behaviour discovery, the engine of `ternc nat`.
 *
 * The caller (ternc.c) parses the command line into struct nat_opts and
 * prints struct nat_result; this module only talks to the server. Every test
 * is a Binding transaction with a per-attempt timeout and a retry count, so a
 * run always ends: a test that cannot be done is reported as not run (with one
 * line on stderr saying why), never waited for.
 */
#ifndef TERN_CLIENT_NAT_H
#define TERN_CLIENT_NAT_H

#include <stdbool.h>
#include <sys/socket.h>

/* Mapping (RFC 5780 section 4.3) and filtering (section 4.4) behaviour, in
 * RFC 4787's terms. */
enum nat_behaviour {
    NAT_NOT_RUN = 0,
    NAT_ENDPOINT_INDEPENDENT,
    NAT_ADDRESS_DEPENDENT,
    NAT_ADDRESS_PORT_DEPENDENT,
};

struct nat_opts {
    struct sockaddr_storage server; /* the primary address: HOST[:PORT] resolved */
    struct sockaddr_storage bind;   /* local address of the tests' socket; port 0: any */
    bool tcp;                       /* mapping over TCP instead of the UDP tests */
    bool lifetime;                  /* also measure the UDP binding lifetime */
    unsigned timeout_ms;            /* wait for one answer */
    unsigned retries;               /* retransmissions after the first request */
    double max_wait_s;              /* longest idle time the lifetime search tries */
};

/* Tests not run have NAT_NOT_RUN, hairpinning -1, lifetime_s < 0. */
struct nat_result {
    struct sockaddr_storage mapped; /* XOR-MAPPED-ADDRESS of the first test */
    struct sockaddr_storage other;  /* OTHER-ADDRESS, if have_other */
    bool have_other;
    bool nat;                       /* mapped differs from the local address */
    enum nat_behaviour mapping, filtering;
    int hairpinning;                /* 1 yes, 0 no, -1 not run */
    double lifetime_s;              /* longest idle time a binding survived */
    double lifetime_gone_s;         /* shortest idle time one was found gone; 0: none was */
};

/* Runs the tests o asks for. Returns 0 (r filled; tests that could not run
 * are marked so), or -1 when the server never answered the first test or a
 * socket failed (a message on stderr). */
int nat_run(const struct nat_opts *o, struct nat_result *r);

/* "endpoint-independent", "address-dependent", "address-and-port-dependent",
 * or NULL for NAT_NOT_RUN. */
const char *nat_behaviour_name(enum nat_behaviour b);

/* "ip:port", "[ipv6]:port" into buf (64 bytes is enough); returns buf. */
char *nat_addr_format(const struct sockaddr_storage *ss, char *buf, size_t cap);

#endif
