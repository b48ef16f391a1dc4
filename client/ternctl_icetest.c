/*
 * ternctl_icetest.c - `ternctl icetest URL`: "does this TURN server relay?"
 * answered from the command line, against any TURN server.
 *
 * Design: two allocations on the same server, A and B (client/turnc.c). Each
 * permits the other's relayed address and binds a channel to it; A sends
 * numbered, timestamped packets at --rate through its channel to B's relayed
 * address, B's client echoes each one back through its own channel, and A
 * times the round trip. Loss is counted in each direction from the sequence
 * numbers (A->B at B, B->A of what B echoed), so one run sees a relay that
 * works one way only. At the end both allocations are deleted (Refresh with
 * LIFETIME 0) whatever happened, so a test leaves nothing on the server.
 *
 * Trade-offs: the client<->server leg is the URL's transport, the relay leg
 * UDP (what browsers use; RFC 8656 relays UDP only unless RFC 6062). Both
 * clients run in this one process from the same host, so the test proves the
 * server relays, not that a remote network lets it through; RTT includes the
 * server twice and the path to it four times.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/nat.h"
#include "client/ternctl.h"
#include "client/turnc.h"

#define ICETEST_DEFAULT_PORT "3478" /* RFC 8656 section 18 */
#define ICETEST_TIMEOUT_MS 3000     /* one transaction, retransmissions included */
#define ICETEST_DRAIN_S 1.0         /* after the last packet, for the last echoes */
#define ICETEST_CHANNEL 0x4000
#define ICETEST_HDR 16 /* token, sequence number, send time */
#define ICETEST_MAX_PACKETS 1000000u
#define ICETEST_REST_NAME "ternctl-icetest"

struct icetest_opts {
    const char *url;
    char host[256], port[8];
    bool tcp;
    const char *user, *password; /* NULL: no credentials */
    bool rest;
    char rest_user[CTL_REST_USER_MAX], rest_pw[CTL_REST_PASSWORD_MAX];
    double duration, max_loss;
    unsigned rate, size;
};

/* One direction's counts. */
struct icetest_dir {
    uint32_t sent, received, duplicates, dropped;
    uint8_t *seen; /* bitmap by sequence number */
};

/* Everything one run owns: freed by icetest_free. */
struct icetest_run {
    struct sockaddr_storage server;
    struct turnc *a, *b;
    bool open[2], alloc[2]; /* A's and B's socket and allocation */
    const char *stage;  /* where it failed, NULL: it did not */
    char reason[320];   /* why, one line */
    double setup_ms;
    uint32_t token;     /* marks this run's packets */
    uint32_t total;     /* packets A sends */
    struct icetest_dir ab, ba;
    uint32_t *rtt_us;
    size_t n_rtt;
    double send_s;      /* from the first packet sent to the last */
    bool cleanup;
};

static double icetest_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the command line ------------------------------------------------------- */

static double icetest_number(const char *v, const char *name, double min, double max)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(d >= min && d <= max))
        ctl_usage_fail("icetest: %s takes a number from %g to %g", name, min, max);
    return d;
}

/* RFC 7065: turn:HOST[:PORT][?transport=udp|tcp], HOST a name, an IPv4
 * address or an IPv6 address in brackets. */
static void icetest_parse_url(struct icetest_opts *o, const char *url)
{
    if (!strncmp(url, "turns:", 6))
        ctl_usage_fail("icetest: turns: (TLS) is not supported; use turn:...?transport=udp|tcp");
    if (strncmp(url, "turn:", 5) != 0)
        ctl_usage_fail("icetest: '%s' is not a turn: URL (turn:HOST:PORT?transport=udp|tcp)", url);
    o->url = url;
    const char *hp = url + 5, *query = strchr(hp, '?');
    size_t n = query ? (size_t)(query - hp) : strlen(hp);
    char buf[300];
    if (n == 0 || n >= sizeof buf)
        ctl_usage_fail("icetest: '%s' has no host, or one too long", url);
    memcpy(buf, hp, n);
    buf[n] = 0;
    char *host = buf, *port = NULL;
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (!end || (end[1] && end[1] != ':'))
            ctl_usage_fail("icetest: '%s': an IPv6 address goes in brackets, [::1]:3478", url);
        *end = 0;
        host = buf + 1;
        port = end[1] ? end + 2 : NULL;
    } else if ((port = strchr(buf, ':')) != NULL) {
        if (strchr(port + 1, ':'))
            ctl_usage_fail("icetest: '%s': an IPv6 address goes in brackets, [::1]:3478", url);
        *port++ = 0;
    }
    if (!port)
        port = ICETEST_DEFAULT_PORT;
    size_t hl = strlen(host), pl = strlen(port);
    if (!hl || hl >= sizeof o->host || !pl || pl >= sizeof o->port ||
        strspn(port, "0123456789") != pl)
        ctl_usage_fail("icetest: '%s': bad host or port", url);
    icetest_number(port, "the URL's port", 1, 65535);
    memcpy(o->host, host, hl + 1);
    memcpy(o->port, port, pl + 1);
    if (!query || !strcasecmp(query, "?transport=udp"))
        o->tcp = false;
    else if (!strcasecmp(query, "?transport=tcp"))
        o->tcp = true;
    else
        ctl_usage_fail("icetest: '%s': the query may only be ?transport=udp or ?transport=tcp", url);
}

static void icetest_parse(struct icetest_opts *o, int argc, char **argv)
{
    static const char *const want[] = { "--secret=", "--user=",   "--password=", "--duration=",
                                        "--rate=",   "--size=",   "--max-loss=", NULL };
    memset(o, 0, sizeof *o);
    /* the URL: the one argument that is neither an option nor an option's
     * value (every option but --json takes one) */
    char *rest[argc + 1];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        bool value = i > 1 && argv[i - 1][0] == '-' && strcmp(argv[i - 1], "--json") != 0;
        if (i > 0 && argv[i][0] != '-' && !value && !o->url)
            icetest_parse_url(o, argv[i]);
        else
            rest[n++] = argv[i];
    }
    if (!o->url)
        ctl_usage_fail("icetest: which server? turn:HOST:PORT?transport=udp|tcp");
    struct ctl_opts opts;
    ctl_opts_parse(&opts, "icetest", want, n, rest, 1);
    const char *secret = ctl_opt(&opts, "--secret");
    o->user = ctl_opt(&opts, "--user");
    o->password = ctl_opt(&opts, "--password");
    if (secret && (o->user || o->password))
        ctl_usage_fail("icetest: --secret or --user/--password, not both");
    if (!o->user != !o->password)
        ctl_usage_fail("icetest: --user and --password go together");
    o->duration = ctl_opt(&opts, "--duration")
                      ? icetest_number(ctl_opt(&opts, "--duration"), "--duration", 0.1, 3600)
                      : 5;
    o->rate = (unsigned)(ctl_opt(&opts, "--rate")
                             ? icetest_number(ctl_opt(&opts, "--rate"), "--rate", 1, 10000)
                             : 50);
    /* 1400: a ChannelData datagram that still fits a 1500-byte path with
     * IPv6 and UDP headers around it */
    o->size = (unsigned)(ctl_opt(&opts, "--size")
                             ? icetest_number(ctl_opt(&opts, "--size"), "--size", ICETEST_HDR, 1400)
                             : 200);
    o->max_loss = ctl_opt(&opts, "--max-loss")
                      ? icetest_number(ctl_opt(&opts, "--max-loss"), "--max-loss", 0, 100)
                      : 5;
    if (o->duration * o->rate > ICETEST_MAX_PACKETS)
        ctl_usage_fail("icetest: --rate x --duration is more than %u packets", ICETEST_MAX_PACKETS);
    if (secret) {
        secret = ctl_opt_secret(secret, "--secret");
        /* valid for the run and a margin: a leaked one soon expires */
        ctl_creds_make(secret, (unsigned long)o->duration + 600, ICETEST_REST_NAME, o->rest_user,
                       o->rest_pw);
        o->user = o->rest_user;
        o->password = o->rest_pw;
        o->rest = true;
    } else if (o->password) {
        o->password = ctl_opt_secret(o->password, "--password");
    }
}

/* --- the run ------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int icetest_fail(struct icetest_run *r,
                                                              const char *stage, const char *fmt,
                                                              ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->stage = stage;
    return -1;
}

static int icetest_resolve(struct icetest_run *r, const struct icetest_opts *o)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = o->tcp ? SOCK_STREAM : SOCK_DGRAM,
                              .ai_flags = AI_NUMERICSERV },
                    *res;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0)
        return icetest_fail(r, "resolve", "cannot resolve %s: %s", o->host, gai_strerror(rc));
    memcpy(&r->server, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* A and B: allocations, a permission and a channel each towards the other. */
static int icetest_setup(struct icetest_run *r, const struct icetest_opts *o)
{
    double t0 = icetest_now();
    struct turnc *c[2] = { r->a, r->b };
    for (int i = 0; i < 2; i++) {
        if (turnc_open(c[i], &r->server, o->tcp, o->user, o->password, ICETEST_TIMEOUT_MS) < 0)
            return icetest_fail(r, "connect", "%s", c[i]->why);
        r->open[i] = true;
        if (turnc_allocate(c[i]) < 0)
            return icetest_fail(r, "allocate", "%s%s", i ? "second allocation: " : "", c[i]->why);
        r->alloc[i] = true;
    }
    for (int i = 0; i < 2; i++)
        if (turnc_permit(c[i], &c[1 - i]->relayed) < 0)
            return icetest_fail(r, "permission", "%s", c[i]->why);
    for (int i = 0; i < 2; i++)
        if (turnc_bind_channel(c[i], ICETEST_CHANNEL, &c[1 - i]->relayed) < 0)
            return icetest_fail(r, "channel", "%s", c[i]->why);
    r->setup_ms = (icetest_now() - t0) * 1e3;
    return 0;
}

static uint64_t icetest_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void icetest_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static uint32_t icetest_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* This run's packet number seq, new to d: true once per number. Anything
 * else (a stray, a duplicate the network made) is counted or dropped. */
static bool icetest_take(struct icetest_run *r, struct icetest_dir *d, const uint8_t *p,
                         size_t len, size_t size, uint32_t *seq)
{
    if (len != size || icetest_get32(p) != r->token || (*seq = icetest_get32(p + 4)) >= r->total)
        return false;
    uint8_t bit = (uint8_t)(1u << (*seq & 7));
    if (d->seen[*seq >> 3] & bit) {
        d->duplicates++;
        return false;
    }
    d->seen[*seq >> 3] |= bit;
    d->received++;
    return true;
}

/* What arrived at one side: B echoes each packet of the run back, A times
 * the echoes. -1 when that side's connection fails. */
static int icetest_receive(struct icetest_run *r, const struct icetest_opts *o, bool at_b)
{
    struct turnc *c = at_b ? r->b : r->a;
    struct icetest_dir *d = at_b ? &r->ab : &r->ba;
    uint16_t ch;
    const uint8_t *p;
    size_t len;
    uint32_t seq;
    int rc;
    while ((rc = turnc_recv_channel(c, &ch, &p, &len)) == 1) {
        if (ch != ICETEST_CHANNEL || !icetest_take(r, d, p, len, o->size, &seq))
            continue;
        if (!at_b) {
            uint64_t sent = 0;
            for (int i = 8; i < 16; i++)
                sent = sent << 8 | p[i];
            r->rtt_us[r->n_rtt++] = (uint32_t)((icetest_ns() - sent) / 1000);
            continue;
        }
        int w = turnc_send_channel(c, ICETEST_CHANNEL, p, len);
        if (w < 0)
            return -1;
        if (w == 0)
            r->ba.sent++;
        else
            r->ba.dropped++;
    }
    return rc;
}

/* The packets: A sends on schedule, both read, until the last echo is in or
 * the drain time after the last packet is over. */
static int icetest_pump(struct icetest_run *r, const struct icetest_opts *o)
{
    uint8_t pkt[1400];
    memset(pkt, 0x5a, sizeof pkt);
    icetest_put32(pkt, r->token);
    double t0 = icetest_now(), end = t0 + r->total / (double)o->rate + ICETEST_DRAIN_S;
    uint32_t next = 0;
    for (;;) {
        double now = icetest_now();
        for (; next < r->total && t0 + next / (double)o->rate <= now; next++) {
            icetest_put32(pkt + 4, next);
            uint64_t ns = icetest_ns();
            for (int i = 0; i < 8; i++)
                pkt[8 + i] = (uint8_t)(ns >> (56 - 8 * i));
            int w = turnc_send_channel(r->a, ICETEST_CHANNEL, pkt, o->size);
            if (w < 0)
                return icetest_fail(r, "relay", "%s", r->a->why);
            if (w == 0)
                r->ab.sent++;
            else
                r->ab.dropped++;
            if (next + 1 == r->total)
                r->send_s = icetest_now() - t0;
        }
        if (now >= end || (next == r->total && r->ba.received == r->ab.sent))
            return 0;
        double until = next < r->total ? t0 + next / (double)o->rate : end;
        struct pollfd p[2] = {
            { .fd = r->a->fd, .events = POLLIN | (turnc_want_write(r->a) ? POLLOUT : 0) },
            { .fd = r->b->fd, .events = POLLIN | (turnc_want_write(r->b) ? POLLOUT : 0) },
        };
        double wait = until > now ? until - now : 0;
        struct timespec ts = { .tv_sec = (time_t)wait,
                               .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9) };
        if (ppoll(p, 2, &ts, NULL) < 0 && errno != EINTR)
            return icetest_fail(r, "relay", "poll: %s", strerror(errno));
        if (((p[0].revents & POLLOUT) && turnc_flush(r->a) < 0) ||
            ((p[1].revents & POLLOUT) && turnc_flush(r->b) < 0))
            return icetest_fail(r, "relay", "%s", r->a->why[0] ? r->a->why : r->b->why);
        if ((p[1].revents & (POLLIN | POLLERR | POLLHUP)) && icetest_receive(r, o, true) < 0)
            return icetest_fail(r, "relay", "B: %s", r->b->why);
        if ((p[0].revents & (POLLIN | POLLERR | POLLHUP)) && icetest_receive(r, o, false) < 0)
            return icetest_fail(r, "relay", "A: %s", r->a->why);
    }
}

static double icetest_loss(const struct icetest_dir *d)
{
    return d->sent ? 100.0 * (d->sent - d->received) / d->sent : NAN;
}

/* The verdict on what the pump measured. */
static int icetest_judge(struct icetest_run *r, const struct icetest_opts *o)
{
    char a[64], b[64];
    if (r->ab.received == 0)
        return icetest_fail(r, "relay", "no packets relayed A->B: %u sent to %s, none arrived",
                            r->ab.sent, nat_addr_format(&r->b->relayed, b, sizeof b));
    if (r->ba.received == 0)
        return icetest_fail(r, "relay", "no packets relayed B->A: %u sent to %s, none arrived",
                            r->ba.sent, nat_addr_format(&r->a->relayed, a, sizeof a));
    if (icetest_loss(&r->ab) > o->max_loss || icetest_loss(&r->ba) > o->max_loss)
        return icetest_fail(r, "relay", "loss A->B %.2f%%, B->A %.2f%%: over --max-loss %g%%",
                            icetest_loss(&r->ab), icetest_loss(&r->ba), o->max_loss);
    return 0;
}

/* Both allocations deleted, whatever happened before (RFC 8656 section 7). */
static void icetest_cleanup(struct icetest_run *r)
{
    r->cleanup = true;
    struct turnc *c[2] = { r->a, r->b };
    for (int i = 0; i < 2; i++) {
        if (r->alloc[i] && turnc_refresh(c[i], 0) < 0) {
            r->cleanup = false;
            fprintf(stderr, "ternctl: icetest: warning: allocation %c not deleted: %s\n", 'A' + i,
                    c[i]->why);
        }
        if (r->open[i])
            turnc_close(c[i]);
    }
}

/* --- the report ----------------------------------------------------------------- */

static int icetest_cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Nearest-rank percentile of the sorted samples, in ms (NAN: none). */
static double icetest_pct(const struct icetest_run *r, double pct)
{
    if (r->n_rtt == 0)
        return NAN;
    size_t k = (size_t)ceil(pct / 100.0 * (double)r->n_rtt);
    return r->rtt_us[k ? k - 1 : 0] / 1e3;
}

/* What arrived over the time the sending was meant to take, or took if the
 * client fell behind: bits of application data a second. */
static double icetest_bps(const struct icetest_run *r, const struct icetest_dir *d,
                          const struct icetest_opts *o)
{
    double nominal = r->total / (double)o->rate;
    if (d->sent == 0)
        return NAN; /* not measured */
    return d->received * 8.0 * o->size / (r->send_s > nominal ? r->send_s : nominal);
}

static void icetest_json_num(const char *key, double v, const char *fmt)
{
    printf("\"%s\": ", key);
    if (isnan(v))
        fputs("null", stdout);
    else
        printf(fmt, v);
}

static void icetest_json_pair(const char *key, double ab, double ba, const char *fmt)
{
    printf(", \"%s\": {", key);
    icetest_json_num("a_to_b", ab, fmt);
    fputs(", ", stdout);
    icetest_json_num("b_to_a", ba, fmt);
    fputs("}", stdout);
}

static void icetest_json_addrs(const char *key, const struct sockaddr_storage *a,
                               const struct sockaddr_storage *b)
{
    char s[64];
    printf(", \"%s\": {\"a\": ", key);
    if (a->ss_family)
        ctl_json_string(stdout, nat_addr_format(a, s, sizeof s));
    else
        fputs("null", stdout);
    fputs(", \"b\": ", stdout);
    if (b->ss_family)
        ctl_json_string(stdout, nat_addr_format(b, s, sizeof s));
    else
        fputs("null", stdout);
    fputs("}", stdout);
}

static void icetest_print_json(const struct icetest_run *r, const struct icetest_opts *o)
{
    char s[64];
    fputs("{\"url\": ", stdout);
    ctl_json_string(stdout, o->url);
    fputs(", \"server\": ", stdout);
    ctl_json_string(stdout, r->server.ss_family ? nat_addr_format(&r->server, s, sizeof s) : "");
    printf(", \"transport\": \"%s\", \"user\": ", o->tcp ? "tcp" : "udp");
    if (o->user)
        ctl_json_string(stdout, o->user);
    else
        fputs("null", stdout);
    printf(", \"rest\": %s, \"pass\": %s, \"stage\": ", o->rest ? "true" : "false",
           r->stage ? "false" : "true");
    if (r->stage) {
        ctl_json_string(stdout, r->stage);
        fputs(", \"reason\": ", stdout);
        ctl_json_string(stdout, r->reason);
    } else {
        fputs("null, \"reason\": null", stdout);
    }
    icetest_json_addrs("relayed", &r->a->relayed, &r->b->relayed);
    icetest_json_addrs("mapped", &r->a->mapped, &r->b->mapped);
    printf(", \"channel\": %u, ", ICETEST_CHANNEL);
    icetest_json_num("setup_ms", r->setup_ms > 0 ? r->setup_ms : NAN, "%.3f");
    printf(", \"rate\": %u, \"size\": %u, \"duration_s\": %g", o->rate, o->size, o->duration);
    icetest_json_pair("sent", r->ab.sent, r->ba.sent, "%.0f");
    icetest_json_pair("received", r->ab.received, r->ba.received, "%.0f");
    icetest_json_pair("duplicates", r->ab.duplicates, r->ba.duplicates, "%.0f");
    icetest_json_pair("dropped", r->ab.dropped, r->ba.dropped, "%.0f");
    icetest_json_pair("loss_pct", icetest_loss(&r->ab), icetest_loss(&r->ba), "%.3f");
    icetest_json_pair("throughput_bps", icetest_bps(r, &r->ab, o), icetest_bps(r, &r->ba, o),
                      "%.0f");
    fputs(", \"rtt_ms\": {", stdout);
    icetest_json_num("p50", icetest_pct(r, 50), "%.3f");
    fputs(", ", stdout);
    icetest_json_num("p95", icetest_pct(r, 95), "%.3f");
    fputs(", ", stdout);
    icetest_json_num("p99", icetest_pct(r, 99), "%.3f");
    fputs(", ", stdout);
    icetest_json_num("min", icetest_pct(r, 0), "%.3f");
    fputs(", ", stdout);
    icetest_json_num("max", icetest_pct(r, 100), "%.3f");
    printf("}, \"cleanup\": %s}\n", r->cleanup ? "true" : "false");
}

static void icetest_print_text(const struct icetest_run *r, const struct icetest_opts *o)
{
    char s[64], a[64], b[64];
    printf("server      %s over %s, user %s%s\n", nat_addr_format(&r->server, s, sizeof s),
           o->tcp ? "tcp" : "udp", o->user ? o->user : "(none)", o->rest ? " (REST)" : "");
    printf("relayed     A %s, B %s, channel 0x%04x each way\n",
           nat_addr_format(&r->a->relayed, a, sizeof a), nat_addr_format(&r->b->relayed, b, sizeof b),
           ICETEST_CHANNEL);
    printf("setup       %.1f ms: 2 allocations, 2 permissions, 2 channel binds\n", r->setup_ms);
    printf("packets     %u x %u bytes at %u/s A->B, each echoed B->A\n", r->total, o->size, o->rate);
    printf("loss        A->B %.2f%% (%u/%u), B->A %.2f%% (%u/%u)\n", icetest_loss(&r->ab),
           r->ab.received, r->ab.sent, icetest_loss(&r->ba), r->ba.received, r->ba.sent);
    printf("rtt         p50 %.3f ms, p95 %.3f ms, p99 %.3f ms (min %.3f, max %.3f)\n",
           icetest_pct(r, 50), icetest_pct(r, 95), icetest_pct(r, 99), icetest_pct(r, 0),
           icetest_pct(r, 100));
    printf("throughput  A->B %.1f kbit/s, B->A %.1f kbit/s\n", icetest_bps(r, &r->ab, o) / 1e3,
           icetest_bps(r, &r->ba, o) / 1e3);
    printf("cleanup     %s\n", r->cleanup ? "both allocations deleted" : "incomplete (see above)");
    printf("result      %s\n", r->stage ? "FAIL" : "pass");
}

static void icetest_free(struct icetest_run *r)
{
    free(r->ab.seen);
    free(r->ba.seen);
    free(r->rtt_us);
    free(r->a);
    free(r->b);
}

int ctl_icetest(int argc, char **argv, bool json)
{
    struct icetest_opts o;
    icetest_parse(&o, argc, argv);
    struct icetest_run r = { .total = (uint32_t)ceil(o.duration * o.rate) };
    r.a = calloc(1, sizeof *r.a);
    r.b = calloc(1, sizeof *r.b);
    r.ab.seen = calloc(r.total / 8 + 1, 1);
    r.ba.seen = calloc(r.total / 8 + 1, 1);
    r.rtt_us = calloc(r.total, sizeof *r.rtt_us);
    if (!r.a || !r.b || !r.ab.seen || !r.ba.seen || !r.rtt_us)
        ctl_fail("icetest: out of memory");
    r.a->fd = r.b->fd = -1;
    if (RAND_bytes((unsigned char *)&r.token, sizeof r.token) != 1)
        ctl_fail("icetest: no random numbers (OpenSSL)");

    bool measured = false;
    if (icetest_resolve(&r, &o) == 0 && icetest_setup(&r, &o) == 0 && icetest_pump(&r, &o) == 0) {
        measured = true;
        qsort(r.rtt_us, r.n_rtt, sizeof *r.rtt_us, icetest_cmp_u32);
        icetest_judge(&r, &o);
    }
    icetest_cleanup(&r);
    if (json)
        icetest_print_json(&r, &o);
    else if (measured)
        icetest_print_text(&r, &o);
    if (fflush(stdout) != 0)
        ctl_fail("icetest: cannot write the report");
    int status = r.stage ? CTL_EXIT_FAIL : CTL_EXIT_OK;
    if (r.stage)
        fprintf(stderr, "ternctl: icetest failed: %s\n", r.reason);
    icetest_free(&r);
    return status;
}
