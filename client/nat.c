/*
 * nat.c - RFC 5780 NAT behaviour discovery: the tests of sections 4.3 to 4.6
 * against a server that has an alternate address (OTHER-ADDRESS).
 *
 * Design: each test is one Binding transaction (nat_ask) with a timeout per
 * attempt and a retry count; answers are matched by transaction ID, so a late
 * answer to one test is never taken for the answer to the next. Over UDP the
 * first test, the filtering tests and the mapping tests share one socket X, in
 * that order: the filtering tests must run while X has only ever sent to the
 * primary address (a NAT opens its filter towards every address a mapping has
 * sent to), and the mapping tests then send to the alternate addresses.
 * Hairpinning and the lifetime probes use sockets of their own, because what
 * they look for is sent from one socket and arrives at another.
 *
 * Trade-offs: a test that gets no answer cannot be told from loss; the
 * retries make it unlikely that loss passes for a filter. The lifetime search
 * trades precision for run time: a few bindings are made at once and probed
 * after increasing idle times, and the bracket around the expiry is narrowed
 * in at most NAT_LIFE_ROUNDS rounds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/stun.h"
#include "client/nat.h"

#define NAT_LIFE_PROBES 8 /* bindings made and watched together in one round */
#define NAT_LIFE_ROUNDS 3 /* at most: bounds the search to about 3 x --max-wait */

/* What came back for one request. */
struct nat_answer {
    struct sockaddr_storage from;   /* who sent it */
    struct sockaddr_storage mapped; /* XOR-MAPPED-ADDRESS (MAPPED-ADDRESS if absent) */
    struct sockaddr_storage other;  /* OTHER-ADDRESS */
    bool has_mapped, has_other;
    int error;   /* STUN error code of an error answer, else 0 */
    bool on_rx;  /* arrived on the rx socket of nat_wait */
    double sent; /* when the attempt that was answered went out */
    double got;  /* when the answer arrived */
};

/* --- addresses and time ------------------------------------------------- */

static double nat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nat_sleep_until(double t)
{
    for (double now = nat_now(); now < t; now = nat_now())
        poll(NULL, 0, (int)((t - now) * 1000) + 1);
}

static socklen_t nat_addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static unsigned nat_addr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

static void nat_addr_set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static bool nat_addr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

static bool nat_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return nat_addr_same_ip(a, b) && nat_addr_port(a) == nat_addr_port(b);
}

static bool nat_addr_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &in6addr_any,
                       sizeof(struct in6_addr));
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

char *nat_addr_format(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    inet_ntop(ss->ss_family, a, ip, sizeof ip);
    snprintf(buf, cap, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, nat_addr_port(ss));
    return buf;
}

const char *nat_behaviour_name(enum nat_behaviour b)
{
    switch (b) {
    case NAT_ENDPOINT_INDEPENDENT: return "endpoint-independent";
    case NAT_ADDRESS_DEPENDENT: return "address-dependent";
    case NAT_ADDRESS_PORT_DEPENDENT: return "address-and-port-dependent";
    default: return NULL;
    }
}

/* The address the server would see if there were no NAT: the socket's own,
 * with the source address the kernel picks towards the server when the socket
 * is bound to the wildcard address. */
static int nat_local_addr(const struct nat_opts *o, int fd, struct sockaddr_storage *out)
{
    socklen_t l = sizeof *out;
    if (getsockname(fd, (struct sockaddr *)out, &l) < 0)
        return -1;
    if (!nat_addr_is_any(out))
        return 0;
    struct sockaddr_storage src;
    l = sizeof src;
    int s = socket(o->server.ss_family, SOCK_DGRAM, 0);
    int rc = s < 0 || connect(s, (const struct sockaddr *)&o->server, nat_addr_len(&o->server)) < 0 ||
                     getsockname(s, (struct sockaddr *)&src, &l) < 0
                 ? -1
                 : 0;
    if (s >= 0)
        close(s);
    if (rc == 0) {
        nat_addr_set_port(&src, nat_addr_port(out));
        *out = src;
    }
    return rc;
}

/* --- one Binding transaction over UDP ----------------------------------- */

/* A UDP socket on --bind's address, with --bind's port for the tests' socket
 * X (keep_port) and any port for the others. */
static int nat_open_udp(const struct nat_opts *o, bool keep_port)
{
    struct sockaddr_storage local = o->bind;
    if (!keep_port)
        nat_addr_set_port(&local, 0);
    int fd = socket(local.ss_family, SOCK_DGRAM, 0);
    if (fd >= 0 && bind(fd, (const struct sockaddr *)&local, nat_addr_len(&local)) == 0)
        return fd;
    char b[64];
    fprintf(stderr, "ternc nat: cannot bind %s: %s\n", nat_addr_format(&local, b, sizeof b),
            strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static size_t nat_build_request(uint8_t *buf, size_t cap, uint8_t *tid, unsigned change,
                                unsigned rport)
{
    struct stun_enc e;
    RAND_bytes(tid, STUN_TID_LEN);
    if (stun_enc_init(&e, buf, cap, STUN_BINDING, STUN_CLASS_REQUEST, tid, false) < 0 ||
        (change && stun_enc_add_u32(&e, STUN_ATTR_CHANGE_REQUEST, change) < 0) ||
        (rport && stun_enc_add_u32(&e, STUN_ATTR_RESPONSE_PORT, rport << 16) < 0))
        return 0;
    return e.len;
}

static void nat_read_answer(const struct stun_msg *m, struct nat_answer *a)
{
    const struct stun_attr *at;
    a->has_mapped = a->has_other = false;
    a->error = 0;
    if (m->cls == STUN_CLASS_ERROR) {
        const char *reason;
        size_t rl;
        int code = 0;
        at = stun_attr_find(m, STUN_ATTR_ERROR_CODE);
        a->error = at && stun_attr_get_error(m, at, &code, &reason, &rl) == 0 && code ? code : 1;
        return;
    }
    at = stun_attr_find(m, STUN_ATTR_XOR_MAPPED_ADDRESS);
    if (at && stun_attr_get_xaddr(m, at, &a->mapped) == 0)
        a->has_mapped = true;
    else if ((at = stun_attr_find(m, STUN_ATTR_MAPPED_ADDRESS)) &&
             stun_attr_get_addr(m, at, &a->mapped) == 0)
        a->has_mapped = true;
    at = stun_attr_find(m, STUN_ATTR_OTHER_ADDRESS);
    a->has_other = at && stun_attr_get_addr(m, at, &a->other) == 0;
}

/* Reads one datagram from fd. Returns 1 if it is a Binding message with
 * transaction ID tid, a request if want_request (hairpinning) or else an
 * answer, and fills a; 0 for anything else, which is dropped; -1 on error. */
static int nat_take(int fd, const uint8_t *tid, bool want_request, struct nat_answer *a)
{
    uint8_t buf[2048];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED
                   ? 0
                   : -1;
    struct stun_msg m;
    if (stun_msg_decode(&m, buf, (size_t)n) < 0 || m.classic || m.method != STUN_BINDING ||
        memcmp(m.tid, tid, STUN_TID_LEN) != 0 || m.cls == STUN_CLASS_INDICATION ||
        (m.cls == STUN_CLASS_REQUEST) != want_request)
        return 0;
    a->from = from;
    a->got = nat_now();
    nat_read_answer(&m, a);
    return 1;
}

/* Waits until deadline for what nat_take looks for, on fd and on rx. */
static int nat_wait(int fd, int rx, const uint8_t *tid, bool want_request, double deadline,
                    struct nat_answer *a)
{
    struct pollfd p[2] = { { .fd = rx, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
    nfds_t n = rx == fd ? 1 : 2;
    for (;;) {
        double left = deadline - nat_now();
        if (left <= 0)
            return 0;
        int k = poll(p, n, (int)(left * 1000) + 1);
        if (k < 0 && errno != EINTR)
            return -1;
        for (nfds_t i = 0; k > 0 && i < n; i++) {
            if (!p[i].revents)
                continue;
            int rc = nat_take(p[i].fd, tid, want_request, a);
            a->on_rx = i == 0;
            if (rc != 0)
                return rc;
        }
    }
}

/* One Binding request from fd to dst, with CHANGE-REQUEST flags and a
 * RESPONSE-PORT when not 0, sent up to 1 + retries times, timeout_ms apart;
 * the answer is awaited on fd and on rx (RESPONSE-PORT sends it to another
 * socket). Returns 1 answered, 0 no answer, -1 error (a message said why). */
static int nat_ask(const struct nat_opts *o, int fd, int rx, const struct sockaddr_storage *dst,
                   unsigned change, unsigned rport, struct nat_answer *a)
{
    uint8_t tid[STUN_TID_LEN], req[64];
    size_t len = nat_build_request(req, sizeof req, tid, change, rport);
    for (unsigned n = 0; n <= o->retries; n++) {
        a->sent = nat_now();
        if (sendto(fd, req, len, 0, (const struct sockaddr *)dst, nat_addr_len(dst)) < 0) {
            char d[64];
            fprintf(stderr, "ternc nat: cannot send to %s: %s\n", nat_addr_format(dst, d, sizeof d),
                    strerror(errno));
            return -1;
        }
        int rc = nat_wait(fd, rx, tid, false, a->sent + o->timeout_ms / 1e3, a);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* nat_ask for a mapped address: 0, or -1 with a message, which ends with
 * "<test> not run" when test is not NULL. */
static int nat_ask_mapped(const struct nat_opts *o, int fd, const struct sockaddr_storage *dst,
                          const char *test, struct nat_answer *a)
{
    char d[64], why[64];
    int rc = nat_ask(o, fd, fd, dst, 0, 0, a);
    if (rc == 1 && !a->error && a->has_mapped)
        return 0;
    if (rc < 0)
        return -1;
    if (rc == 0)
        snprintf(why, sizeof why, "no answer from");
    else if (a->error)
        snprintf(why, sizeof why, "error %d from", a->error);
    else
        snprintf(why, sizeof why, "no mapped address from");
    fprintf(stderr, "ternc nat: %s %s%s%s%s\n", why, nat_addr_format(dst, d, sizeof d),
            test ? ": " : "", test ? test : "", test ? " not run" : "");
    return -1;
}

/* --- the UDP tests ------------------------------------------------------- */

/* An answer to CHANGE-REQUEST must come from where the flags said, or the
 * server ignored them and the filtering verdict would be wrong. */
static bool nat_check_origin(const struct nat_answer *a, const struct sockaddr_storage *want)
{
    char f[64], w[64];
    if (a->error) {
        fprintf(stderr, "ternc nat: CHANGE-REQUEST answered with error %d: filtering not run\n",
                a->error);
        return false;
    }
    if (nat_addr_equal(&a->from, want))
        return true;
    fprintf(stderr,
            "ternc nat: the answer to CHANGE-REQUEST came from %s, not %s: filtering not run\n",
            nat_addr_format(&a->from, f, sizeof f), nat_addr_format(want, w, sizeof w));
    return false;
}

/* RFC 5780 section 4.4, while X has sent to the primary address only: an
 * answer from the alternate address and port passes an endpoint-independent
 * filter only; one from the primary IP's alternate port passes an
 * address-dependent filter as well. */
static void nat_test_filtering(const struct nat_opts *o, int x, struct nat_result *r)
{
    struct nat_answer a;
    int rc = nat_ask(o, x, x, &o->server, STUN_CHANGE_IP | STUN_CHANGE_PORT, 0, &a);
    if (rc == 1 && nat_check_origin(&a, &r->other))
        r->filtering = NAT_ENDPOINT_INDEPENDENT;
    if (rc != 0)
        return;
    struct sockaddr_storage want = o->server;
    nat_addr_set_port(&want, nat_addr_port(&r->other));
    rc = nat_ask(o, x, x, &o->server, STUN_CHANGE_PORT, 0, &a);
    if (rc == 1 && nat_check_origin(&a, &want))
        r->filtering = NAT_ADDRESS_DEPENDENT;
    else if (rc == 0)
        r->filtering = NAT_ADDRESS_PORT_DEPENDENT;
}

/* RFC 5780 section 4.3: X asks the alternate IP at the primary port (test
 * II), then the alternate address (test III); which of the mapped addresses
 * equal the first test's says what the NAT's mapping depends on. */
static void nat_test_mapping(const struct nat_opts *o, int x, struct nat_result *r)
{
    struct nat_answer a2, a3;
    struct sockaddr_storage dst = r->other;
    nat_addr_set_port(&dst, nat_addr_port(&o->server));
    if (nat_ask_mapped(o, x, &dst, "mapping", &a2) < 0)
        return;
    if (nat_addr_equal(&a2.mapped, &r->mapped)) {
        r->mapping = NAT_ENDPOINT_INDEPENDENT;
        return;
    }
    if (nat_ask_mapped(o, x, &r->other, "mapping", &a3) < 0)
        return;
    r->mapping = nat_addr_equal(&a3.mapped, &a2.mapped) ? NAT_ADDRESS_DEPENDENT
                                                        : NAT_ADDRESS_PORT_DEPENDENT;
}

/* RFC 5780 section 4.5: a request sent from another socket to X's mapped
 * address reaches X only through a NAT that hairpins (or no NAT at all). */
static void nat_test_hairpin(const struct nat_opts *o, int x, struct nat_result *r)
{
    uint8_t tid[STUN_TID_LEN], req[64];
    size_t len = nat_build_request(req, sizeof req, tid, 0, 0);
    struct nat_answer a;
    int h = nat_open_udp(o, false), rc = -1;
    for (unsigned n = 0; h >= 0 && n <= o->retries; n++) {
        const struct sockaddr *to = (const struct sockaddr *)&r->mapped;
        if (sendto(h, req, len, 0, to, nat_addr_len(&r->mapped)) < 0) {
            fprintf(stderr, "ternc nat: hairpinning not run: %s\n", strerror(errno));
            rc = -1;
            break;
        }
        rc = nat_wait(x, x, tid, true, nat_now() + o->timeout_ms / 1e3, &a);
        if (rc != 0)
            break;
    }
    if (rc >= 0)
        r->hairpinning = rc;
    if (h >= 0)
        close(h);
}

/* --- binding lifetime (RFC 5780 section 4.6) ------------------------------ */

/* A binding under watch: made by its own socket, then left idle. */
struct nat_life_probe {
    int fd;
    unsigned port; /* its mapped port: the RESPONSE-PORT of the probe */
    double t0;     /* when the NAT last saw it: its answer arrived */
};

/* Waits of the first round, geometric from 1 s up to max_wait, so that one
 * round brackets any lifetime within their ratio (2 for the default 120 s).
 * The ratio is found by bisection: no libm. */
static void nat_life_ladder(double max_wait, double *w, int n)
{
    double first = max_wait > 2 ? 1.0 : max_wait / n;
    double span = max_wait / first, lo = 1, hi = span;
    for (int k = 0; k < 60; k++) {
        double mid = (lo + hi) / 2, p = 1;
        for (int i = 1; i < n; i++)
            p *= mid;
        *(p < span ? &lo : &hi) = mid;
    }
    w[0] = first;
    for (int i = 1; i < n; i++)
        w[i] = w[i - 1] * lo;
    w[n - 1] = max_wait;
}

/* One round: n bindings made together, binding i probed after w[i] idle
 * seconds (ascending) by a request from y whose RESPONSE-PORT is its mapped
 * port, so that only the binding under test can let the answer in. Stops at
 * the first binding gone: the later ones, idle longer, tell nothing more.
 * Raises *lo to the longest idle time survived, lowers *hi (0: none yet) to
 * the shortest found gone. 0, or -1 with a message. */
static int nat_life_round(const struct nat_opts *o, int y, const double *w, int n, double *lo,
                          double *hi)
{
    struct nat_life_probe p[NAT_LIFE_PROBES];
    struct nat_answer a;
    int made, rc = 0;
    for (made = 0; made < n && rc == 0; made++) {
        p[made].fd = nat_open_udp(o, false);
        if (p[made].fd < 0 || nat_ask_mapped(o, p[made].fd, &o->server, "lifetime", &a) < 0) {
            rc = -1;
            continue;
        }
        p[made].port = nat_addr_port(&a.mapped);
        p[made].t0 = a.got;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        nat_sleep_until(p[i].t0 + w[i]);
        double first = nat_now() - p[i].t0;
        int k = nat_ask(o, y, p[i].fd, &o->server, 0, p[i].port, &a);
        if (k < 0) {
            rc = -1;
        } else if (k == 0) {
            if (*hi == 0 || first < *hi)
                *hi = first;
            break;
        } else if (a.error || !a.on_rx) {
            fprintf(stderr, "ternc nat: the server did not answer to RESPONSE-PORT (%s): "
                            "lifetime not run\n",
                    a.error ? "error answer" : "answered the sender");
            rc = -1;
        } else if (a.sent - p[i].t0 > *lo) {
            *lo = a.sent - p[i].t0;
        }
    }
    for (int i = 0; i < made; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    return rc;
}

/* The first round brackets the lifetime between two rungs of the ladder;
 * each later round spreads its probes evenly inside the bracket, until it is
 * narrower than a second or 5 % of the lifetime. */
static void nat_test_lifetime(const struct nat_opts *o, struct nat_result *r)
{
    double w[NAT_LIFE_PROBES], lo = 0, hi = 0;
    int y = nat_open_udp(o, false);
    if (y < 0)
        return;
    nat_life_ladder(o->max_wait_s, w, NAT_LIFE_PROBES);
    int rc = nat_life_round(o, y, w, NAT_LIFE_PROBES, &lo, &hi);
    for (int round = 1; rc == 0 && hi > 0 && round < NAT_LIFE_ROUNDS; round++) {
        if (hi - lo <= (lo / 20 > 1 ? lo / 20 : 1))
            break;
        for (int i = 0; i < NAT_LIFE_PROBES; i++)
            w[i] = lo + (hi - lo) * (i + 1) / (NAT_LIFE_PROBES + 1);
        rc = nat_life_round(o, y, w, NAT_LIFE_PROBES, &lo, &hi);
    }
    close(y);
    if (rc < 0)
        return;
    r->lifetime_s = hi > 0 ? lo : o->max_wait_s;
    r->lifetime_gone_s = hi;
}

/* OTHER-ADDRESS is usable for RFC 5780 if it is of our family and differs
 * from the primary address in both IP and port (CHANGE-REQUEST changes each). */
static bool nat_take_other(const struct nat_opts *o, const struct nat_answer *a,
                           struct nat_result *r)
{
    char s[64], b[64];
    nat_addr_format(&o->server, s, sizeof s);
    if (!a->has_other)
        fprintf(stderr, "ternc nat: %s sent no OTHER-ADDRESS: it has no alternate address, and "
                        "the tests that need one are not run\n", s);
    else if (a->other.ss_family != o->server.ss_family || nat_addr_same_ip(&a->other, &o->server) ||
             nat_addr_port(&a->other) == nat_addr_port(&o->server))
        fprintf(stderr, "ternc nat: OTHER-ADDRESS %s of %s differs from it in IP or port only: "
                        "the tests that need an alternate address are not run\n",
                nat_addr_format(&a->other, b, sizeof b), s);
    else
        r->other = a->other;
    r->have_other = r->other.ss_family != 0;
    return r->have_other;
}

static int nat_run_udp(const struct nat_opts *o, struct nat_result *r)
{
    struct nat_answer a;
    struct sockaddr_storage local;
    int x = nat_open_udp(o, true);
    if (x < 0)
        return -1;
    if (nat_ask_mapped(o, x, &o->server, NULL, &a) < 0 || nat_local_addr(o, x, &local) < 0) {
        close(x);
        return -1;
    }
    r->mapped = a.mapped;
    r->nat = !nat_addr_equal(&a.mapped, &local);
    if (nat_take_other(o, &a, r)) {
        nat_test_filtering(o, x, r);
        nat_test_mapping(o, x, r);
        if (r->mapping == NAT_NOT_RUN && r->filtering != NAT_ENDPOINT_INDEPENDENT &&
            r->filtering != NAT_NOT_RUN) {
            /* The alternate address does not answer: its answers missing in
             * the filtering tests prove nothing about the NAT. */
            fprintf(stderr, "ternc nat: filtering not run either\n");
            r->filtering = NAT_NOT_RUN;
        }
    }
    nat_test_hairpin(o, x, r);
    close(x);
    if (o->lifetime && r->have_other)
        nat_test_lifetime(o, r);
    else if (o->lifetime)
        fprintf(stderr, "ternc nat: lifetime not run: it needs RESPONSE-PORT, which a server "
                        "answers only with an alternate address\n");
    return 0;
}

/* --- TCP mapping --------------------------------------------------------- */

static int nat_poll_until(int fd, short events, double deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    double left = deadline - nat_now();
    return left <= 0 ? 0 : poll(&p, 1, (int)(left * 1000) + 1);
}

/* One Binding transaction over a new TCP connection from local. All the
 * connections of the TCP mapping test leave from one local port (SO_REUSEADDR
 * lets a socket bind it while another is connected from it) and stay open to
 * the end, so the NAT cannot have let one mapping go before the next is made.
 * The exchange gets (retries + 1) timeouts in all: TCP retransmits by itself.
 * Returns the connected socket, or -1 with a message. */
static int nat_tcp_ask(const struct nat_opts *o, const struct sockaddr_storage *local,
                       const struct sockaddr_storage *dst, struct sockaddr_storage *mapped)
{
    double deadline = nat_now() + (o->retries + 1) * o->timeout_ms / 1e3;
    uint8_t tid[STUN_TID_LEN], buf[2048];
    size_t len = nat_build_request(buf, sizeof buf, tid, 0, 0), have = 0;
    int one = 1, err = 0;
    socklen_t el = sizeof err;
    long need = 0;
    struct stun_msg m;
    struct nat_answer a;
    int fd = socket(dst->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)local, nat_addr_len(local)) < 0 ||
        (connect(fd, (const struct sockaddr *)dst, nat_addr_len(dst)) < 0 && errno != EINPROGRESS))
        goto fail;
    errno = ETIMEDOUT;
    if (nat_poll_until(fd, POLLOUT, deadline) <= 0)
        goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        errno = err;
        goto fail;
    }
    if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
        goto fail;
    while (need == 0 || have < (size_t)need) {
        errno = ETIMEDOUT;
        if (nat_poll_until(fd, POLLIN, deadline) <= 0)
            goto fail;
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0) {
            errno = n == 0 ? ECONNRESET : errno;
            goto fail;
        }
        have += (size_t)n;
        need = have >= 4 ? stun_frame_len(buf, have) : 0;
        errno = EPROTO;
        if (need < 0 || (size_t)need > sizeof buf)
            goto fail;
    }
    errno = EPROTO;
    if (stun_msg_decode(&m, buf, (size_t)need) < 0 || memcmp(m.tid, tid, STUN_TID_LEN) != 0)
        goto fail;
    nat_read_answer(&m, &a);
    if (a.error || !a.has_mapped)
        goto fail;
    *mapped = a.mapped;
    return fd;
fail:;
    char d[64];
    fprintf(stderr, "ternc nat: no Binding answer over tcp from %s: %s\n",
            nat_addr_format(dst, d, sizeof d), strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Over TCP only the mapping can be tested (RFC 5780 section 4.3 over
 * streams): the server cannot answer a connection from another address, so
 * there is no filtering or hairpinning test, and RESPONSE-PORT is UDP only.
 * The alternate address comes from a UDP Binding: ternd sends OTHER-ADDRESS
 * on UDP only, and it needs TCP listeners on the alternate IP at both ports. */
static int nat_run_tcp(const struct nat_opts *o, struct nat_result *r)
{
    struct nat_answer a;
    struct sockaddr_storage local = o->bind, m2, m3;
    int fds[3] = { -1, -1, -1 };
    int u = nat_open_udp(o, false);
    if (u >= 0 && nat_ask_mapped(o, u, &o->server, NULL, &a) == 0)
        nat_take_other(o, &a, r);
    else
        fprintf(stderr, "ternc nat: the alternate address is learned over udp: mapping not run\n");
    if (u >= 0)
        close(u);
    fds[0] = nat_tcp_ask(o, &local, &o->server, &r->mapped);
    socklen_t l = sizeof local;
    if (fds[0] < 0 || getsockname(fds[0], (struct sockaddr *)&local, &l) < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        return -1;
    }
    r->nat = !nat_addr_equal(&r->mapped, &local);
    if (r->have_other) {
        struct sockaddr_storage dst = r->other;
        nat_addr_set_port(&dst, nat_addr_port(&o->server));
        fds[1] = nat_tcp_ask(o, &local, &dst, &m2);
        if (fds[1] >= 0 && nat_addr_equal(&m2, &r->mapped))
            r->mapping = NAT_ENDPOINT_INDEPENDENT;
        else if (fds[1] >= 0 && (fds[2] = nat_tcp_ask(o, &local, &r->other, &m3)) >= 0)
            r->mapping = nat_addr_equal(&m3, &m2) ? NAT_ADDRESS_DEPENDENT
                                                  : NAT_ADDRESS_PORT_DEPENDENT;
        if (r->mapping == NAT_NOT_RUN)
            fprintf(stderr, "ternc nat: mapping not run\n");
    }
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}

int nat_run(const struct nat_opts *o, struct nat_result *r)
{
    memset(r, 0, sizeof *r);
    r->mapping = r->filtering = NAT_NOT_RUN;
    r->hairpinning = -1;
    r->lifetime_s = -1;
    return o->tcp ? nat_run_tcp(o, r) : nat_run_udp(o, r);
}
