/*
 * ternc - tern's own STUN test client. Sends Binding requests over UDP, TCP,
 * TLS or DTLS and prints what came back as key=value lines, so shell and
 * Python tests can assert on every attribute:
 *   class=success|error  xor-mapped=IP:PORT  mapped=...  response-origin=...
 *   other-address=...  source-address=...  changed-address=...  software=...
 *   error=CODE  unknown=0xTYPE  from=IP:PORT (UDP: who answered)  fingerprint=ok
 * With --allocate USER:PASSWORD it sends a TURN Allocate instead: the first
 * one unauthenticated, then again with the REALM and NONCE of the 401 and
 * long-term credentials, and prints the second answer; with --leave it
 * closes right after sending the second (TLS and DTLS with a close_notify),
 * for tests of a client that goes away while its request waits.
 * Exit status: 0 answered, 3 timed out, 1 any other failure.
 *
 * `ternc nat` runs the RFC 5780 NAT behaviour tests instead (client/nat.c;
 * this file parses its options and prints its table or JSON object); see
 * ternc(1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "proto/stun.h"
#include "client/nat.h"

struct opts {
    const char *transport, *host, *port;
    unsigned change, response_port, padding, count, timeout_ms;
    bool fingerprint, classic, software, bind_any, leave;
    const char *bind;
    const char *allocate; /* "user:password", or NULL for Binding */
};

static void usage(void)
{
    fprintf(stderr, "usage: ternc [-t udp|tcp|tls|dtls] [--change-ip] [--change-port]\n"
                    "  [--response-port N] [--padding N] [--fingerprint] [--classic] [--software]\n"
                    "  [--bind IP:PORT] [--count N] [--timeout MS]\n"
                    "  [--allocate USER:PASSWORD [--leave]] HOST PORT\n"
                    "       ternc nat [--json] [-t udp|tcp] [--lifetime] [--max-wait S]\n"
                    "  [--bind IP:PORT] [--timeout MS] [--retries N] HOST[:PORT]\n");
    exit(1);
}

static void print_addr(const char *key, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN];
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr
                                              : (const void *)&((struct sockaddr_in *)ss)->sin_addr;
    unsigned port = ntohs(ss->ss_family == AF_INET6 ? ((struct sockaddr_in6 *)ss)->sin6_port
                                                    : ((struct sockaddr_in *)ss)->sin_port);
    inet_ntop(ss->ss_family, a, ip, sizeof ip);
    if (ss->ss_family == AF_INET6)
        printf("%s=[%s]:%u\n", key, ip, port);
    else
        printf("%s=%s:%u\n", key, ip, port);
}

/* Realm and nonce of a 401, for the authenticated retry of --allocate. */
struct challenge {
    char realm[256];
    size_t realm_len;
    char nonce[256];
    size_t nonce_len;
};

static size_t build_allocate(const struct opts *o, const struct challenge *ch, uint8_t *buf,
                             size_t cap, uint8_t *tid)
{
    struct stun_enc e;
    RAND_bytes(tid, 16);
    stun_enc_init(&e, buf, cap, STUN_ALLOCATE, STUN_CLASS_REQUEST, tid, false);
    static const uint8_t udp[4] = { 17, 0, 0, 0 };
    stun_enc_add(&e, STUN_ATTR_REQUESTED_TRANSPORT, udp, sizeof udp);
    if (ch) {
        char user[256];
        snprintf(user, sizeof user, "%s", o->allocate);
        char *colon = strchr(user, ':');
        if (!colon)
            usage();
        *colon = 0;
        char realm[257];
        snprintf(realm, sizeof realm, "%.*s", (int)ch->realm_len, ch->realm);
        uint8_t key[16];
        auth_key_md5(user, strlen(user), realm, colon + 1, key);
        stun_enc_add(&e, STUN_ATTR_USERNAME, user, strlen(user));
        stun_enc_add(&e, STUN_ATTR_REALM, ch->realm, ch->realm_len);
        stun_enc_add(&e, STUN_ATTR_NONCE, ch->nonce, ch->nonce_len);
        stun_enc_add_integrity(&e, key, sizeof key);
    }
    return e.len;
}

/* The realm and nonce of a 401 answer: 0 or -1. */
static int read_challenge(const uint8_t *buf, size_t len, struct challenge *ch)
{
    struct stun_msg m;
    if (stun_msg_decode(&m, buf, len) < 0)
        return -1;
    const struct stun_attr *r = stun_attr_find(&m, STUN_ATTR_REALM);
    const struct stun_attr *n = stun_attr_find(&m, STUN_ATTR_NONCE);
    if (!r || !n || r->len >= sizeof ch->realm || n->len >= sizeof ch->nonce)
        return -1;
    memcpy(ch->realm, buf + r->off, r->len);
    ch->realm_len = r->len;
    memcpy(ch->nonce, buf + n->off, n->len);
    ch->nonce_len = n->len;
    return 0;
}

static size_t build_request(const struct opts *o, uint8_t *buf, size_t cap, uint8_t *tid)
{
    struct stun_enc e;
    RAND_bytes(tid, 16);
    stun_enc_init(&e, buf, cap, STUN_BINDING, STUN_CLASS_REQUEST, tid, o->classic);
    if (o->change)
        stun_enc_add_u32(&e, STUN_ATTR_CHANGE_REQUEST, o->change);
    if (o->response_port)
        stun_enc_add_u32(&e, STUN_ATTR_RESPONSE_PORT, o->response_port << 16);
    if (o->padding) {
        static uint8_t zeros[1500];
        stun_enc_add(&e, STUN_ATTR_PADDING, zeros, o->padding);
    }
    if (o->software)
        stun_enc_add(&e, STUN_ATTR_SOFTWARE, "ternc", 5);
    if (o->fingerprint)
        stun_enc_add_fingerprint(&e);
    return e.len;
}

static int print_response(const uint8_t *buf, size_t len, const uint8_t *tid, bool classic)
{
    struct stun_msg m;
    int rc = stun_msg_decode(&m, buf, len);
    if (rc < 0) {
        printf("decode-error=%d\n", rc);
        return 1;
    }
    if (memcmp(m.tid, classic ? tid : tid, classic ? 16 : 12) != 0) {
        printf("tid-mismatch=1\n");
        return 1;
    }
    printf("class=%s\nlength=%zu\n", m.cls == STUN_CLASS_SUCCESS ? "success" : m.cls == STUN_CLASS_ERROR ? "error" : "other", len);
    for (unsigned i = 0; i < m.n_attrs; i++) {
        const struct stun_attr *a = &m.attrs[i];
        struct sockaddr_storage ss;
        switch (a->type) {
        case STUN_ATTR_XOR_MAPPED_ADDRESS:
            if (stun_attr_get_xaddr(&m, a, &ss) == 0)
                print_addr("xor-mapped", &ss);
            break;
        case STUN_ATTR_MAPPED_ADDRESS:
        case STUN_ATTR_RESPONSE_ORIGIN:
        case STUN_ATTR_OTHER_ADDRESS:
        case STUN_ATTR_SOURCE_ADDRESS:
        case STUN_ATTR_CHANGED_ADDRESS: {
            const char *k = a->type == STUN_ATTR_MAPPED_ADDRESS      ? "mapped"
                            : a->type == STUN_ATTR_RESPONSE_ORIGIN  ? "response-origin"
                            : a->type == STUN_ATTR_OTHER_ADDRESS    ? "other-address"
                            : a->type == STUN_ATTR_SOURCE_ADDRESS   ? "source-address"
                                                                    : "changed-address";
            if (stun_attr_get_addr(&m, a, &ss) == 0)
                print_addr(k, &ss);
            break;
        }
        case STUN_ATTR_SOFTWARE:
            printf("software=%.*s\n", a->len, (const char *)buf + a->off);
            break;
        case STUN_ATTR_PADDING:
            printf("padding=%u\n", a->len);
            break;
        case STUN_ATTR_ERROR_CODE: {
            int code;
            const char *r;
            size_t rl;
            if (stun_attr_get_error(&m, a, &code, &r, &rl) == 0)
                printf("error=%d\nreason=%.*s\n", code, (int)rl, r);
            break;
        }
        case STUN_ATTR_UNKNOWN_ATTRIBUTES:
            for (unsigned k = 0; k + 1 < a->len; k += 2)
                printf("unknown=0x%04x\n", (buf[a->off + k] << 8) | buf[a->off + k + 1]);
            break;
        case STUN_ATTR_FINGERPRINT:
            printf("fingerprint=%s\n", stun_msg_check_fingerprint(&m) ? "ok" : "bad");
            break;
        default:
            printf("attr=0x%04x\n", a->type);
        }
    }
    return 0;
}

static int wait_readable(int fd, unsigned ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, (int)ms);
}

/* Read one framed STUN message from a stream (fd or SSL). */
static long stream_read(int fd, SSL *ssl, uint8_t *buf, size_t cap, unsigned ms)
{
    size_t have = 0;
    for (;;) {
        long need = have >= 4 ? stun_frame_len(buf, have) : 0;
        if (need < 0)
            return -1;
        if (need > 0 && have >= (size_t)need)
            return need;
        if (have >= cap)
            return -1;
        if (!(ssl && SSL_pending(ssl)) && wait_readable(fd, ms) <= 0)
            return -3;
        int n = ssl ? SSL_read(ssl, buf + have, (int)(cap - have)) : (int)read(fd, buf + have, cap - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

/* --- ternc nat: options and report ---------------------------------------- */

/* A whole decimal number in [min, max], or usage(). */
static unsigned ternc_parse_uint(const char *s, unsigned min, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        usage();
    return (unsigned)v;
}

/* HOST[:PORT], [IPV6]:PORT or a bare IPv6 address, resolved in family (or
 * any when AF_UNSPEC); numeric_host for --bind. 0, or -1 with a message. */
static int ternc_resolve(const char *arg, const char *default_port, int family, bool numeric_host,
                         struct sockaddr_storage *out)
{
    char host[256];
    const char *port = default_port;
    snprintf(host, sizeof host, "%s", arg);
    char *colon = strrchr(host, ':');
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (!end || (end[1] && end[1] != ':'))
            return fprintf(stderr, "ternc nat: bad address %s\n", arg), -1;
        if (end[1] == ':')
            port = end + 2;
        *end = 0;
        memmove(host, host + 1, strlen(host));
    } else if (colon && colon == strchr(host, ':')) {
        *colon = 0; /* one colon: HOST:PORT; more: an IPv6 address alone */
        port = colon + 1;
    }
    struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_DGRAM,
                              .ai_flags = AI_NUMERICSERV | (numeric_host ? AI_NUMERICHOST : 0) };
    struct addrinfo *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return fprintf(stderr, "ternc nat: cannot resolve %s\n", arg), -1;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static const char *ternc_json_name(enum nat_behaviour b, char *buf, size_t cap)
{
    const char *n = nat_behaviour_name(b);
    snprintf(buf, cap, n ? "\"%s\"" : "null", n);
    return buf;
}

static void ternc_print_nat_json(const struct nat_opts *o, const struct nat_result *r)
{
    char m[64], s[64], mp[64], fl[64], life[32];
    snprintf(life, sizeof life, r->lifetime_s >= 0 ? "%.1f" : "null", r->lifetime_s);
    printf("{\"mapped\": \"%s\", \"nat\": %s, \"mapping\": %s, \"filtering\": %s, "
           "\"hairpinning\": %s, \"binding_lifetime_s\": %s, \"server\": \"%s\", "
           "\"transport\": \"%s\"}\n",
           nat_addr_format(&r->mapped, m, sizeof m), r->nat ? "true" : "false",
           ternc_json_name(r->mapping, mp, sizeof mp), ternc_json_name(r->filtering, fl, sizeof fl),
           r->hairpinning < 0 ? "null" : r->hairpinning ? "true" : "false", life,
           nat_addr_format(&o->server, s, sizeof s), o->tcp ? "tcp" : "udp");
}

static void ternc_print_nat_table(const struct nat_opts *o, const struct nat_result *r)
{
    char a[64], b[64];
    const char *udp_only = o->tcp ? "udp only" : "not run";
    printf("server       %s over %s", nat_addr_format(&o->server, a, sizeof a), o->tcp ? "tcp" : "udp");
    if (r->have_other)
        printf(", other address %s\n", nat_addr_format(&r->other, b, sizeof b));
    else
        printf(", no other address\n");
    printf("mapped       %s\n", nat_addr_format(&r->mapped, a, sizeof a));
    printf("nat          %s\n", r->nat ? "yes" : "no (the mapped address is our own)");
    printf("mapping      %s\n", r->mapping ? nat_behaviour_name(r->mapping) : "not run");
    printf("filtering    %s\n", r->filtering ? nat_behaviour_name(r->filtering) : udp_only);
    printf("hairpinning  %s\n", r->hairpinning < 0 ? udp_only : r->hairpinning ? "yes" : "no");
    if (!o->lifetime)
        printf("lifetime     not asked (--lifetime)\n");
    else if (r->lifetime_s < 0)
        printf("lifetime     not run\n");
    else if (r->lifetime_gone_s > 0)
        printf("lifetime     %.1f s (survived %.1f s idle, gone after %.1f s)\n", r->lifetime_s,
               r->lifetime_s, r->lifetime_gone_s);
    else
        printf("lifetime     at least %.1f s (--max-wait)\n", r->lifetime_s);
}

/* ternc nat: 0 every test asked for ran, 2 some could not, 1 errors. */
static int ternc_nat(int argc, char **argv)
{
    struct nat_opts o = { .timeout_ms = 500, .retries = 2, .max_wait_s = 120 };
    const char *bind_arg = NULL;
    bool json = false;
    int i;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        bool arg = i + 1 < argc;
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--lifetime")) o.lifetime = true;
        else if (!strcmp(a, "-t") && arg && !strcmp(argv[i + 1], "udp")) o.tcp = false, i++;
        else if (!strcmp(a, "-t") && arg && !strcmp(argv[i + 1], "tcp")) o.tcp = true, i++;
        else if (!strcmp(a, "--bind") && arg) bind_arg = argv[++i];
        else if (!strcmp(a, "--timeout") && arg) o.timeout_ms = ternc_parse_uint(argv[++i], 1, 60000);
        else if (!strcmp(a, "--retries") && arg) o.retries = ternc_parse_uint(argv[++i], 0, 100);
        else if (!strcmp(a, "--max-wait") && arg) o.max_wait_s = ternc_parse_uint(argv[++i], 1, 86400);
        else usage();
    }
    if (argc - i != 1)
        usage();
    if (o.tcp && o.lifetime) {
        fprintf(stderr, "ternc nat: --lifetime needs udp (RESPONSE-PORT is a UDP attribute)\n");
        return 1;
    }
    if (bind_arg && ternc_resolve(bind_arg, "0", AF_UNSPEC, true, &o.bind) < 0)
        return 1;
    if (ternc_resolve(argv[i], "3478", bind_arg ? o.bind.ss_family : AF_UNSPEC, false, &o.server) < 0)
        return 1;
    if (!bind_arg)
        o.bind.ss_family = o.server.ss_family; /* the wildcard address, any port */
    struct nat_result r;
    if (nat_run(&o, &r) < 0)
        return 1;
    if (json)
        ternc_print_nat_json(&o, &r);
    else
        ternc_print_nat_table(&o, &r);
    bool missing = r.mapping == NAT_NOT_RUN ||
                   (!o.tcp && (r.filtering == NAT_NOT_RUN || r.hairpinning < 0)) ||
                   (o.lifetime && r.lifetime_s < 0);
    return missing ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "nat"))
        return ternc_nat(argc - 1, argv + 1);
    struct opts o = { .transport = "udp", .count = 1, .timeout_ms = 2000 };
    int i;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-t") && i + 1 < argc) o.transport = argv[++i];
        else if (!strcmp(a, "--change-ip")) o.change |= STUN_CHANGE_IP;
        else if (!strcmp(a, "--change-port")) o.change |= STUN_CHANGE_PORT;
        else if (!strcmp(a, "--response-port") && i + 1 < argc) o.response_port = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--padding") && i + 1 < argc) o.padding = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--fingerprint")) o.fingerprint = true;
        else if (!strcmp(a, "--classic")) o.classic = true;
        else if (!strcmp(a, "--software")) o.software = true;
        else if (!strcmp(a, "--bind") && i + 1 < argc) o.bind = argv[++i];
        else if (!strcmp(a, "--count") && i + 1 < argc) o.count = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--timeout") && i + 1 < argc) o.timeout_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--allocate") && i + 1 < argc) o.allocate = argv[++i];
        else if (!strcmp(a, "--leave")) o.leave = true;
        else usage();
    }
    if (argc - i != 2)
        usage();
    o.host = argv[i];
    o.port = argv[i + 1];
    bool stream = !strcmp(o.transport, "tcp") || !strcmp(o.transport, "tls");
    bool tls = !strcmp(o.transport, "tls") || !strcmp(o.transport, "dtls");
    struct addrinfo hints = { .ai_socktype = stream ? SOCK_STREAM : SOCK_DGRAM }, *ai;
    if (getaddrinfo(o.host, o.port, &hints, &ai) != 0) {
        fprintf(stderr, "ternc: cannot resolve %s\n", o.host);
        return 1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (o.bind) {
        char ip[64];
        snprintf(ip, sizeof ip, "%s", o.bind);
        char *colon = strrchr(ip, ':');
        if (!colon)
            usage();
        *colon = 0;
        struct addrinfo *bi;
        struct addrinfo bh = { .ai_socktype = ai->ai_socktype, .ai_flags = AI_PASSIVE };
        if (getaddrinfo(ip, colon + 1, &bh, &bi) != 0 || bind(fd, bi->ai_addr, bi->ai_addrlen) < 0) {
            fprintf(stderr, "ternc: cannot bind %s\n", o.bind);
            return 1;
        }
        freeaddrinfo(bi);
    }
    /* UDP stays unconnected so answers from other addresses (RFC 5780) arrive. */
    if ((stream || tls) && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        fprintf(stderr, "ternc: connect: %s\n", strerror(errno));
        return 1;
    }
    SSL *ssl = NULL;
    SSL_CTX *ctx = NULL;
    if (tls) {
        ctx = SSL_CTX_new(stream ? TLS_client_method() : DTLS_client_method());
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (!stream) {
            BIO *b = BIO_new_dgram(fd, BIO_NOCLOSE);
            BIO_ctrl(b, BIO_CTRL_DGRAM_SET_CONNECTED, 0, ai->ai_addr);
            struct timeval tv = { .tv_sec = o.timeout_ms / 1000, .tv_usec = (o.timeout_ms % 1000) * 1000 };
            BIO_ctrl(b, BIO_CTRL_DGRAM_SET_RECV_TIMEOUT, 0, &tv);
            SSL_set_bio(ssl, b, b);
        }
        if (SSL_connect(ssl) != 1) {
            fprintf(stderr, "ternc: handshake failed: %s\n", ERR_reason_error_string(ERR_get_error()));
            return 1;
        }
    }
    int rc = 0;
    struct challenge ch;
    bool have_ch = false;
    unsigned rounds = o.allocate ? 2 : o.count;
    for (unsigned n = 0; n < rounds && rc == 0; n++) {
        uint8_t req[2048], resp[4096], tid[16];
        size_t len = o.allocate ? build_allocate(&o, have_ch ? &ch : NULL, req, sizeof req, tid)
                                : build_request(&o, req, sizeof req, tid);
        bool leave = o.leave && have_ch;
        long got;
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        if (ssl) {
            if (SSL_write(ssl, req, (int)len) <= 0)
                return 1;
            if (leave)
                break;
            if (stream) {
                got = stream_read(fd, ssl, resp, sizeof resp, o.timeout_ms);
            } else {
                got = SSL_read(ssl, resp, sizeof resp);
                if (got <= 0)
                    got = -3;
            }
        } else if (stream) {
            if (write(fd, req, len) != (ssize_t)len)
                return 1;
            if (leave)
                break;
            got = stream_read(fd, NULL, resp, sizeof resp, o.timeout_ms);
        } else {
            sendto(fd, req, len, 0, ai->ai_addr, ai->ai_addrlen);
            if (leave)
                break;
            if (wait_readable(fd, o.timeout_ms) <= 0)
                got = -3;
            else
                got = recvfrom(fd, resp, sizeof resp, 0, (struct sockaddr *)&from, &fl);
            if (got > 0)
                print_addr("from", &from);
        }
        if (got == -3) {
            printf("timeout=1\n");
            return 3;
        }
        if (got <= 0)
            return 1;
        if (o.allocate && !have_ch) {
            if (read_challenge(resp, (size_t)got, &ch) < 0) {
                printf("no-challenge=1\n");
                return 1;
            }
            have_ch = true;
            continue;
        }
        rc = print_response(resp, (size_t)got, tid, o.classic);
    }
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    close(fd);
    freeaddrinfo(ai);
    return rc;
}
