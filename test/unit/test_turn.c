/*
 * test_turn.c - the TURN service and allocations driven directly: no client
 * sockets and no Redis. Requests go to turn_handle as a transport would
 * hand them; answers come back as verdicts or through a capturing
 * client_ops; Redis is fake_cluster.c, answering now, later or never. Relay
 * sockets are real (bound on 127.0.0.1) but nothing is sent to them.
 *
 * Covered: park, resume, cancel on close, timeout (500), retransmissions
 * while parked, quota rollback, and the 437/441/486/508 paths, including a
 * ChannelBind refused for want of a permission slot; the realm a request
 * lands in and credentials that do not cross realms; RFC 7635 tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "proto/stun.h"
#include "server/core/clock.h"
#include "server/core/core.h"
#include "server/core/stats.h"
#include "server/relay/alloc.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/turn/park.h"
#include "server/turn/turn.h"
#include "test/unit/fake_cluster.h"
#include "test/unit/turn_harness.h"

#define REALM "test.example"

struct sent {
    uint8_t buf[1024];
    size_t len;
};

/* One test: the service under test (the harness) and what it sent. */
struct fx {
    struct turn_harness h;
    struct event_base *base;
    struct turn *turn;
    struct relay_table *relay;
    struct cluster *cl;
    struct quota *quota;
    struct worker_stats *stats;
    struct turn_session s;
    struct sockaddr_in local, client;
    uint8_t nonce[AUTH_NONCE_LEN];
    struct sent sent[16];
    int n_sent;
};

static int capture_send(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                        const struct iovec *iov, int n_iov, bool channel)
{
    (void)client, (void)local, (void)channel;
    struct fx *f = conn;
    if (f->n_sent >= 16)
        return -1;
    struct sent *s = &f->sent[f->n_sent++];
    s->len = 0;
    for (int i = 0; i < n_iov; i++) {
        memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
        s->len += iov[i].iov_len;
    }
    return 0;
}

static const struct client_ops capture_ops = { .send = capture_send };

static const char *base_conf =
    "realm = \"" REALM "\";\nsoftware = \"\";\nworkers = 1;\n"
    "listen = ( { proto = \"udp\"; ip = \"127.0.0.1\"; port = 3478; } );\n"
    "auth = { users = ( { user = \"alice\"; password = \"secret\"; },\n"
    "                   { user = \"bob\"; password = \"hunter2\"; } ); };\n"
    "peers = { allow_loopback = true; };\n";

/* A fixture with its relay port range, limits and more configuration;
 * Redis (the fake) is up. */
static struct fx *fx_new_with(unsigned min_port, unsigned max_port, const char *limits,
                              const char *extra)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char text[4096], err[CONF_ERR_LEN];
    snprintf(text, sizeof text,
             "%srelay = { ip = [ \"127.0.0.1\" ]; min_port = %u; max_port = %u; };\n"
             "limits = { %s };\n%s",
             base_conf, min_port, max_port, limits, extra);
    if (turn_harness_init(&f->h, text, err, sizeof err) < 0)
        fail_msg("harness: %s", err);
    f->base = f->h.base;
    f->turn = f->h.turn;
    f->relay = f->h.relay;
    f->cl = f->h.cl;
    f->quota = f->h.quota;
    f->stats = &f->h.stats;
    f->local.sin_family = f->client.sin_family = AF_INET;
    f->local.sin_addr.s_addr = f->client.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->local.sin_port = htons(3478);
    f->client.sin_port = htons(50000);
    /* a connection-oriented session, as TCP/TLS/DTLS make */
    turn_session_init(&f->s, f->turn, &capture_ops, f, (struct sockaddr *)&f->local, true, 1);
    return f;
}

static struct fx *fx_new(unsigned min_port, unsigned max_port, const char *limits)
{
    return fx_new_with(min_port, max_port, limits, "");
}

static void fx_free(struct fx *f)
{
    turn_session_end(&f->s, "test over");
    turn_harness_free(&f->h);
    free(f);
}

/* Run the loop until nothing is ready (the fake's answers, the ready list). */
static void fx_loop(struct fx *f)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
}

struct req {
    uint16_t method;
    uint8_t tid[12];
    const char *user, *password; /* NULL: no credentials */
    bool transport;              /* REQUESTED-TRANSPORT UDP (or proto) */
    uint8_t proto;               /* 0: UDP */
    uint32_t cid;                /* CONNECTION-ID, or 0 */
    int lifetime;                /* -1: none */
    const struct sockaddr *peer; /* XOR-PEER-ADDRESS */
    uint16_t channel;
    const char *realm;           /* REALM sent (NULL: REALM) */
    const char *origin;          /* ORIGIN, or NULL */
    const uint8_t *token;        /* ACCESS-TOKEN (then user is the kid) */
    size_t token_len;
    const uint8_t *mac;          /* key for MESSAGE-INTEGRITY instead of the user's */
    size_t mac_len;
};

static struct req req_new(uint16_t method, const char *user, const char *password)
{
    struct req r = { .method = method, .user = user, .password = password, .lifetime = -1 };
    static uint32_t n;
    n++;
    memcpy(r.tid, &n, sizeof n);
    r.transport = method == STUN_ALLOCATE;
    return r;
}

/* A new transaction for a request built before (the transaction cache
 * would answer the same one again). */
static void req_retid(struct req *r)
{
    struct req n = req_new(r->method, NULL, NULL);
    memcpy(r->tid, n.tid, sizeof r->tid);
}

/* Build r and hand it to the service in session s as a transport would. */
static enum turn_verdict fx_send_on(struct fx *f, struct turn_session *s, const struct req *r,
                                    uint8_t *out, size_t *len)
{
    uint8_t buf[1024];
    struct stun_enc e;
    stun_enc_init(&e, buf, sizeof buf, r->method, STUN_CLASS_REQUEST, r->tid, false);
    if (r->transport) {
        const uint8_t udp[4] = { r->proto ? r->proto : 17, 0, 0, 0 };
        stun_enc_add(&e, STUN_ATTR_REQUESTED_TRANSPORT, udp, 4);
    }
    if (r->cid)
        stun_enc_add_u32(&e, STUN_ATTR_CONNECTION_ID, r->cid);
    if (r->lifetime >= 0)
        stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, (uint32_t)r->lifetime);
    if (r->channel)
        stun_enc_add_u32(&e, STUN_ATTR_CHANNEL_NUMBER, (uint32_t)r->channel << 16);
    if (r->peer)
        stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, r->peer);
    if (r->origin)
        stun_enc_add(&e, STUN_ATTR_ORIGIN, r->origin, strlen(r->origin));
    if (r->token)
        stun_enc_add(&e, STUN_ATTR_ACCESS_TOKEN, r->token, r->token_len);
    if (r->user) {
        const char *realm = r->realm ? r->realm : REALM;
        uint8_t key[16];
        if (r->password)
            auth_key_md5(r->user, strlen(r->user), realm, r->password, key);
        stun_enc_add(&e, STUN_ATTR_USERNAME, r->user, strlen(r->user));
        stun_enc_add(&e, STUN_ATTR_REALM, realm, strlen(realm));
        stun_enc_add(&e, STUN_ATTR_NONCE, f->nonce, AUTH_NONCE_LEN);
        if (r->mac)
            stun_enc_add_integrity(&e, r->mac, r->mac_len);
        else
            stun_enc_add_integrity(&e, key, 16);
    }
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    return turn_handle(s, &m, (struct sockaddr *)&f->client, out, 1024, len);
}

static enum turn_verdict fx_send(struct fx *f, const struct req *r, uint8_t *out, size_t *len)
{
    return fx_send_on(f, &f->s, r, out, len);
}

/* The class and error code of an answer (0 for success). */
static int answer_code(const uint8_t *buf, size_t len)
{
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, len), 0);
    if (m.cls == STUN_CLASS_SUCCESS)
        return 0;
    const struct stun_attr *a = stun_attr_find(&m, STUN_ATTR_ERROR_CODE);
    int code = -1;
    const char *reason;
    size_t rl;
    assert_non_null(a);
    assert_int_equal(stun_attr_get_error(&m, a, &code, &reason, &rl), 0);
    return code;
}

/* One request answered now: its code. */
static int fx_code(struct fx *f, const struct req *r)
{
    uint8_t out[1024];
    size_t len;
    if (fx_send(f, r, out, &len) != TURN_ANSWER)
        fail_msg("method 0x%03x: no answer now", r->method);
    return answer_code(out, len);
}

/* The 401 challenge: learn the nonce. */
static void fx_challenge(struct fx *f)
{
    uint8_t out[1024];
    size_t len;
    struct req r = req_new(STUN_ALLOCATE, NULL, NULL);
    assert_int_equal(fx_send(f, &r, out, &len), TURN_ANSWER);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, out, len), 0);
    assert_int_equal(answer_code(out, len), 401);
    const struct stun_attr *n = stun_attr_find(&m, STUN_ATTR_NONCE);
    assert_non_null(n);
    assert_int_equal(n->len, AUTH_NONCE_LEN);
    memcpy(f->nonce, out + n->off, AUTH_NONCE_LEN);
}

static void redis_user(struct fx *f, const char *user, const char *password)
{
    struct fake_cluster_state *st = fake_cluster_state(f->cl);
    snprintf(st->user, sizeof st->user, "%s", user);
    auth_key_md5(user, strlen(user), REALM, password, st->md5);
    auth_key_sha256(user, strlen(user), REALM, password, st->sha256);
}

static void test_static_user_allocates(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &r), 0);
    assert_non_null(f->s.alloc);
    assert_int_equal(relay_table_count(f->relay), 1);
    assert_int_equal(fake_cluster_state(f->cl)->keys_asked, 0);
    /* a wrong password for a static user goes on to Redis (first match wins) */
    struct req bad = req_new(STUN_REFRESH, "alice", "wrong");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &bad, out, &len), TURN_PARKED);
    assert_int_equal(fake_cluster_state(f->cl)->keys_asked, 1);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 401);
    fx_free(f);
}

static void test_redis_user_parks_and_resumes(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "");
    redis_user(f, "carol", "carolpw");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "carol", "carolpw");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(stats_read(&f->stats->redis_parked), 1);
    /* A retransmission while it waits is neither run nor asked again. */
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    assert_int_equal(fake_cluster_state(f->cl)->keys_asked, 1);
    /* The answer comes inside "Redis's reply"; the request resumes only
     * from the loop. */
    assert_int_equal(fake_cluster_answer_all(f->cl), 1);
    assert_int_equal(f->n_sent, 0);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 0);
    assert_memory_equal(f->sent[0].buf + 8, r.tid, 12);
    assert_non_null(f->s.alloc);
    assert_int_equal(stats_read(&f->stats->redis_parked), 0);
    /* and a later retransmission gets the same answer from the cache */
    assert_int_equal(fx_send(f, &r, out, &len), TURN_ANSWER);
    assert_int_equal(len, f->sent[0].len);
    assert_memory_equal(out, f->sent[0].buf, len);
    fx_free(f);
}

static void test_session_end_cancels_parked(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "");
    redis_user(f, "carol", "carolpw");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "carol", "carolpw");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    turn_session_end(&f->s, "client left");
    assert_int_equal(fake_cluster_state(f->cl)->cancelled, 1);
    /* Redis answers after the session is gone: nobody hears of it. */
    assert_int_equal(fake_cluster_answer_all(f->cl), 0);
    fx_loop(f);
    assert_int_equal(f->n_sent, 0);
    assert_int_equal(relay_table_count(f->relay), 0);
    assert_int_equal(stats_read(&f->stats->redis_parked), 0);
    fx_free(f);
}

static void test_no_answer_is_500_after_timeout(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "");
    fake_cluster_state(f->cl)->mode = FAKE_NEVER;
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "carol", "carolpw");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    uint64_t until = clock_mono_ms() + PARK_TIMEOUT_MS + 1500;
    while (clock_mono_ms() < until && f->n_sent == 0) {
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(10000);
    }
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 500);
    assert_int_equal(fake_cluster_state(f->cl)->cancelled, 1);
    assert_int_equal(stats_read(&f->stats->redis_failures), 1);
    fx_free(f);
}

static void test_quota_asked_then_granted(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "user_quota = 2;");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED); /* retransmitted */
    assert_int_equal(fake_cluster_state(f->cl)->quota_asked, 1);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 0);
    assert_int_equal(fake_cluster_state(f->cl)->released, 0);
    assert_int_equal(fake_cluster_state(f->cl)->status_new, 1);
    fx_free(f);
}

static void test_quota_full_is_486(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "user_quota = 2;");
    fake_cluster_state(f->cl)->quota_answer = CLUSTER_QUOTA_FULL;
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 486);
    assert_null(f->s.alloc);
    fx_free(f);
}

/* A grant that no allocation consumes goes back: here the only relay port
 * is taken, so the Allocate fails with 508 after the grant. */
static void test_quota_grant_given_back_on_failure(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    unsigned port = ntohs(sin.sin_port);
    struct fx *f = fx_new(port, port, "user_quota = 2;");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    uint8_t out[1024];
    size_t len;
    assert_int_equal(fx_send(f, &r, out, &len), TURN_PARKED);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 508);
    assert_int_equal(fake_cluster_state(f->cl)->released, 1);
    /* ... and a grant that arrives for a session that went away */
    struct req r2 = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_send(f, &r2, out, &len), TURN_PARKED);
    turn_session_end(&f->s, "client left");
    fake_cluster_answer_all(f->cl);
    assert_int_equal(fake_cluster_state(f->cl)->released, 2);
    fx_free(f);
    close(fd);
}

static void test_437_441_486(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "user_quota = 1;");
    fake_cluster_state(f->cl)->up = false; /* local quota only */
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &r), 0);
    struct req again = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &again), 437); /* one allocation per connection */
    struct req other = req_new(STUN_REFRESH, "bob", "hunter2");
    assert_int_equal(fx_code(f, &other), 441); /* not its owner */
    /* alice's quota of 1 is used: a second connection of hers gets 486 */
    struct turn_session s2;
    turn_session_init(&s2, f->turn, &capture_ops, f, (struct sockaddr *)&f->local, true, 1);
    struct turn_session keep = f->s;
    f->s = s2;
    struct req second = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &second), 486);
    struct req norefresh = req_new(STUN_REFRESH, "alice", "secret");
    assert_int_equal(fx_code(f, &norefresh), 437); /* no allocation here */
    turn_session_end(&f->s, "done");
    f->s = keep;
    /* Refresh 0 ends it and gives the quota back */
    struct req zero = req_new(STUN_REFRESH, "alice", "secret");
    zero.lifetime = 0;
    assert_int_equal(fx_code(f, &zero), 0);
    assert_null(f->s.alloc);
    assert_int_equal(quota_total(f->quota), 0);
    fx_free(f);
}

/* RFC 8656 section 11.2 with 64 permissions in use: a ChannelBind to a
 * 65th peer is 508 and leaves nothing behind, so later ChannelBinds to
 * permitted peers still work. */
static void test_channel_bind_508_leaves_no_half_channel(void **state)
{
    (void)state;
    struct fx *f = fx_new(42000, 42100, "");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &r), 0);
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(9000) };
    for (int i = 0; i < ALLOC_MAX_PERMS; i++) {
        peer.sin_addr.s_addr = htonl(0x7F000100u + (uint32_t)i);
        struct req p = req_new(STUN_CREATE_PERMISSION, "alice", "secret");
        p.peer = (struct sockaddr *)&peer;
        assert_int_equal(fx_code(f, &p), 0);
    }
    peer.sin_addr.s_addr = htonl(0x7F000200u);
    struct req full = req_new(STUN_CHANNEL_BIND, "alice", "secret");
    full.peer = (struct sockaddr *)&peer;
    full.channel = 0x4001;
    assert_int_equal(fx_code(f, &full), 508);
    assert_int_equal(f->s.alloc->n_chans, 0);
    for (int i = 0; i < 3; i++) {
        peer.sin_addr.s_addr = htonl(0x7F000100u + (uint32_t)i);
        struct req ok = req_new(STUN_CHANNEL_BIND, "alice", "secret");
        ok.peer = (struct sockaddr *)&peer;
        ok.channel = (uint16_t)(0x4001 + i);
        assert_int_equal(fx_code(f, &ok), 0);
    }
    fx_free(f);
}

static void test_508_when_ports_run_out(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    struct fx *f = fx_new(ntohs(sin.sin_port), ntohs(sin.sin_port), "");
    fx_challenge(f);
    struct req r = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &r), 508);
    assert_int_equal(quota_total(f->quota), 0);
    close(fd);
    struct req again = req_new(STUN_ALLOCATE, "alice", "secret");
    assert_int_equal(fx_code(f, &again), 0); /* the port is free now */
    fx_free(f);
}

/* The REALM of an answer, for the realm tests. */
static void answer_realm(const uint8_t *buf, size_t len, char *out, size_t cap)
{
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, len), 0);
    const struct stun_attr *a = stun_attr_find(&m, STUN_ATTR_REALM);
    assert_non_null(a);
    assert_true(a->len < cap);
    memcpy(out, buf + a->off, a->len);
    out[a->len] = 0;
}

static const char *realms_extra =
    "realms = ( { name = \"a.example\"; origins = [ \"https://a.example\" ];\n"
    "             users = ( { user = \"bob\"; password = \"bob-a\"; } ); } );\n";

/* ORIGIN picks the realm before anything else: the 401 names it, and the
 * user must be one of that realm's, with a key derived with its name. */
static void test_origin_selects_realm(void **state)
{
    (void)state;
    struct fx *f = fx_new_with(42000, 42100, "", realms_extra);
    uint8_t out[1024];
    size_t len;
    char realm[64];
    struct req r = req_new(STUN_ALLOCATE, NULL, NULL);
    r.origin = "https://a.example";
    assert_int_equal(fx_send(f, &r, out, &len), TURN_ANSWER);
    assert_int_equal(answer_code(out, len), 401);
    answer_realm(out, len, realm, sizeof realm);
    assert_string_equal(realm, "a.example");
    r.origin = "https://elsewhere.example"; /* not mapped: the default realm */
    req_retid(&r);
    assert_int_equal(fx_send(f, &r, out, &len), TURN_ANSWER);
    answer_realm(out, len, realm, sizeof realm);
    assert_string_equal(realm, REALM);

    fx_challenge(f);
    /* bob of a.example, in a.example */
    struct req ok = req_new(STUN_ALLOCATE, "bob", "bob-a");
    ok.origin = "https://a.example";
    ok.realm = "a.example";
    assert_int_equal(fx_code(f, &ok), 0);
    assert_non_null(f->s.alloc);
    assert_string_equal(f->s.alloc->realm_name, "a.example");
    /* later requests without ORIGIN stay in the allocation's realm */
    struct req ref = req_new(STUN_REFRESH, "bob", "bob-a");
    ref.realm = "a.example";
    assert_int_equal(fx_code(f, &ref), 0);
    fx_free(f);
}

/* alice exists only in the default realm, bob only in a.example (and the
 * default realm's bob has another password): neither crosses over. */
static void test_user_of_one_realm_refused_in_another(void **state)
{
    (void)state;
    struct fx *f = fx_new_with(42000, 42100, "", realms_extra);
    fx_challenge(f);
    uint8_t out[1024];
    size_t len;
    /* not a static user of a.example: Redis (which has no such user) is asked */
    struct req alice = req_new(STUN_ALLOCATE, "alice", "secret");
    alice.origin = "https://a.example";
    alice.realm = "a.example";
    assert_int_equal(fx_send(f, &alice, out, &len), TURN_PARKED);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(answer_code(f->sent[0].buf, f->sent[0].len), 401);
    /* bob with a.example's password, in the default realm: the same */
    struct req bob = req_new(STUN_ALLOCATE, "bob", "bob-a");
    bob.realm = REALM;
    assert_int_equal(fx_send(f, &bob, out, &len), TURN_PARKED);
    fake_cluster_answer_all(f->cl);
    fx_loop(f);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(answer_code(f->sent[1].buf, f->sent[1].len), 401);
    /* the REALM must be the chosen one, whatever the credentials */
    struct req wrong = req_new(STUN_ALLOCATE, "bob", "bob-a");
    wrong.realm = "a.example"; /* no ORIGIN: the default realm was chosen */
    assert_int_equal(fx_code(f, &wrong), 401);
    assert_null(f->s.alloc);
    fx_free(f);
}

/* An RFC 7635 token sealed with a configured key allocates; the same with
 * one bit flipped, or signed with another key, does not. */
static void test_oauth_token(void **state)
{
    (void)state;
    struct fx *f = fx_new_with(42000, 42100, "",
                               "oauth = { server_name = \"sn.example\"; keys = ( { kid = \"k1\";\n"
                               "  key = \"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK\"; } ); };\n");
    uint8_t out[1024];
    size_t len;
    struct req c = req_new(STUN_ALLOCATE, NULL, NULL);
    assert_int_equal(fx_send(f, &c, out, &len), TURN_ANSWER);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, out, len), 0);
    const struct stun_attr *tpa = stun_attr_find(&m, STUN_ATTR_THIRD_PARTY_AUTHORIZATION);
    assert_non_null(tpa);
    assert_int_equal(tpa->len, 10);
    assert_memory_equal(out + tpa->off, "sn.example", 10);
    fx_challenge(f);

    struct oauth_key k;
    assert_int_equal(oauth_key_init(&k, "k1", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK",
                                    NULL, 0, 0, NULL), 0);
    struct oauth_token t = { .mac_key_len = 20, .lifetime = 120,
                             .timestamp = oauth_timestamp_make((uint64_t)time(NULL)) };
    memset(t.mac_key, 0x42, 20);
    uint8_t nonce[OAUTH_NONCE_LEN] = { 9 }, tok[OAUTH_TOKEN_MAX];
    int n = oauth_token_encrypt(&k, "sn.example", &t, nonce, sizeof nonce, tok, sizeof tok);
    assert_true(n > 0);

    struct req r = req_new(STUN_ALLOCATE, "k1", NULL);
    r.token = tok;
    r.token_len = (size_t)n;
    r.mac = t.mac_key;
    r.mac_len = 20;
    tok[n - 1] ^= 1; /* the tag */
    assert_int_equal(fx_code(f, &r), 401);
    tok[n - 1] ^= 1;
    uint8_t other[20];
    memset(other, 0x43, sizeof other);
    r.mac = other;
    req_retid(&r);
    assert_int_equal(fx_code(f, &r), 401);
    r.mac = t.mac_key;
    r.mac_len = 16; /* coturn's clients sign with the first 16 bytes */
    r.lifetime = 600;
    req_retid(&r);
    assert_int_equal(fx_send(f, &r, out, &len), TURN_ANSWER);
    assert_int_equal(answer_code(out, len), 0);
    assert_int_equal(stun_msg_decode(&m, out, len), 0);
    uint32_t lifetime = 0;
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_LIFETIME), &lifetime), 0);
    assert_true(lifetime <= 120); /* never beyond the token */
    assert_int_equal(stun_msg_check_integrity(&m, t.mac_key, 16), 0);
    assert_true(f->s.alloc && f->s.alloc->oauth);
    /* a CreatePermission without a token, with the allocation's key */
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
    peer.sin_addr.s_addr = htonl(0x7F000005);
    struct req p = req_new(STUN_CREATE_PERMISSION, "k1", NULL);
    p.peer = (struct sockaddr *)&peer;
    p.mac = t.mac_key;
    p.mac_len = 16;
    assert_int_equal(fx_code(f, &p), 0);
    p.mac = other;
    req_retid(&p);
    assert_int_equal(fx_code(f, &p), 401);
    fx_free(f);
}

/* A parked request of a Redis user answered from the loop: its code. */
static int fx_parked_code(struct fx *f, struct turn_session *s, const struct req *r)
{
    uint8_t out[1024];
    size_t len;
    int before = f->n_sent;
    assert_int_equal(fx_send_on(f, s, r, out, &len), TURN_PARKED);
    fake_cluster_answer_all(f->cl);
    for (int i = 0; i < 200 && f->n_sent == before; i++) {
        fx_loop(f);
        if (f->n_sent == before)
            usleep(5000);
    }
    assert_int_equal(f->n_sent, before + 1);
    return answer_code(f->sent[before].buf, f->sent[before].len);
}

static int bound_calls;
static void capture_bound(void *conn)
{
    (void)conn;
    bound_calls++;
}

/* RFC 6062 for a Redis user: Allocate TCP, Connect (answered when the peer
 * connection is up) and a ConnectionBind that waited for Redis, answered
 * and then handed to the transport (client_ops.bound). */
static void test_connection_bind_parked_then_bound(void **state)
{
    (void)state;
    struct fx *f = fx_new(42200, 42300, "");
    redis_user(f, "carol", "carolpw");
    fx_challenge(f);
    struct req a = req_new(STUN_ALLOCATE, "carol", "carolpw");
    a.proto = 6;
    assert_int_equal(fx_parked_code(f, &f->s, &a), 0);
    assert_true(f->s.alloc->tcp);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t pl = sizeof peer;
    assert_int_equal(bind(l, (struct sockaddr *)&peer, sizeof peer), 0);
    assert_int_equal(listen(l, 4), 0);
    getsockname(l, (struct sockaddr *)&peer, &pl);
    struct req p = req_new(STUN_CREATE_PERMISSION, "carol", "carolpw");
    p.peer = (struct sockaddr *)&peer;
    assert_int_equal(fx_parked_code(f, &f->s, &p), 0);
    struct req c = req_new(STUN_CONNECT, "carol", "carolpw");
    c.peer = (struct sockaddr *)&peer;
    assert_int_equal(fx_parked_code(f, &f->s, &c), 0);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, f->sent[f->n_sent - 1].buf, f->sent[f->n_sent - 1].len), 0);
    const struct stun_attr *ci = stun_attr_find(&m, STUN_ATTR_CONNECTION_ID);
    assert_non_null(ci);
    uint32_t cid;
    assert_int_equal(stun_attr_get_u32(&m, ci, &cid), 0);

    static const struct client_ops data_ops = { .send = capture_send, .bound = capture_bound };
    struct turn_session d;
    turn_session_init(&d, f->turn, &data_ops, f, (struct sockaddr *)&f->local, true, STATS_TCP);
    struct req b = req_new(STUN_CONNECTION_BIND, "carol", "carolpw");
    b.cid = cid;
    bound_calls = 0;
    assert_int_equal(fx_parked_code(f, &d, &b), 0);
    assert_int_equal(bound_calls, 1);
    assert_int_equal(d.data_id, cid);
    /* the transport's bufferevent joins the peer connection */
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct bufferevent *bev = bufferevent_socket_new(f->base, sp[0], BEV_OPT_CLOSE_ON_FREE);
    assert_int_equal(turn_session_data(&d, bev), 0);
    /* bound once: a second ConnectionBind for it is 400 */
    struct turn_session d2;
    turn_session_init(&d2, f->turn, &data_ops, f, (struct sockaddr *)&f->local, true, STATS_TCP);
    struct req b2 = req_new(STUN_CONNECTION_BIND, "carol", "carolpw");
    b2.cid = cid;
    assert_int_equal(fx_parked_code(f, &d2, &b2), 400);
    turn_session_end(&d2, "test over");
    turn_session_end(&d, "test over");
    fx_free(f); /* the allocation ends and takes its connections */
    close(sp[1]);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_user_allocates),
        cmocka_unit_test(test_redis_user_parks_and_resumes),
        cmocka_unit_test(test_session_end_cancels_parked),
        cmocka_unit_test(test_no_answer_is_500_after_timeout),
        cmocka_unit_test(test_quota_asked_then_granted),
        cmocka_unit_test(test_quota_full_is_486),
        cmocka_unit_test(test_quota_grant_given_back_on_failure),
        cmocka_unit_test(test_437_441_486),
        cmocka_unit_test(test_channel_bind_508_leaves_no_half_channel),
        cmocka_unit_test(test_508_when_ports_run_out),
        cmocka_unit_test(test_origin_selects_realm),
        cmocka_unit_test(test_user_of_one_realm_refused_in_another),
        cmocka_unit_test(test_oauth_token),
        cmocka_unit_test(test_connection_bind_parked_then_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
