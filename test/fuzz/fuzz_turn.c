/*
 * fuzz_turn - libFuzzer target for the TURN request handler as a whole
 * (server/turn/ over server/relay/), with the fake credential source of the
 * unit tests (test/unit/fake_cluster.c) and a known key, so that
 * authenticated Allocate / CreatePermission / ChannelBind / Send /
 * ChannelData / Refresh sequences are reached, not only 401s.
 *
 * The input is a program of steps (see LLVMFuzzerTestOneInput): raw
 * messages, requests built from fuzzed attributes and signed with the right
 * key and a valid nonce (static user "alice" of the default realm or of
 * realm "other.example" reached with ORIGIN, "carol" whose keys come from
 * the fake Redis and so park, or an RFC 7635 token of kid "k1", intact or
 * with a byte flipped), ChannelData, turns of the event loop,
 * session switches and ends. Checked on every answer: it decodes as a
 * response to the request's transaction; one without MESSAGE-INTEGRITY
 * stays within the unauthenticated amplification bound. Checked at the end:
 * once every session has ended, no allocation and no parked request is left.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "proto/stun.h"
#include "server/core/clock.h"
#include "server/core/core.h"
#include "server/core/log.h"
#include "server/core/stats.h"
#include "server/relay/alloc.h"
#include "server/relay/quota.h"
#include "server/relay/reserve.h"
#include "server/turn/turn.h"
#include "test/unit/fake_cluster.h"
#include "test/unit/turn_harness.h"

#define REALM "fuzz.example"
#define OTHER "other.example"
#define ORIGIN "https://other.example"
#define SERVER_NAME "fz.example"
#define KID "k1"
#define UNAUTH_GROWTH 128

static struct {
    struct turn_harness h;
    struct sockaddr_in local;
} g;

/* Answers sent later (resumed requests) are checked like direct ones. */
static int later_send(void *conn, const struct sockaddr *client, const struct sockaddr *local,
                      const struct iovec *iov, int n_iov, bool channel)
{
    (void)conn, (void)client, (void)local;
    size_t len = 0;
    uint8_t buf[4096];
    for (int i = 0; i < n_iov; i++) {
        if (len + iov[i].iov_len > sizeof buf)
            abort();
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    if (!channel && (buf[0] & 0xC0) == 0) {
        struct stun_msg m;
        if (stun_msg_decode(&m, buf, len) < 0)
            abort();
    }
    return 0;
}

static const struct client_ops ops = { .send = later_send };

/* FUZZ_TURN_STATS=1: what the run reached, to check the seeds get past 401. */
static void print_stats(void)
{
    fprintf(stderr,
            "fuzz_turn: allocations %llu, permissions %llu, channels %llu, relayed to peers %llu, "
            "redis lookups %llu, auth failures %llu\n",
            (unsigned long long)stats_read_realms(g.h.stats.allocations_created),
            (unsigned long long)stats_read(&g.h.stats.permissions_created),
            (unsigned long long)stats_read(&g.h.stats.channels_bound),
            (unsigned long long)(stats_read(&g.h.stats.packets[0][STATS_TO_PEER]) +
                                 stats_read(&g.h.stats.packets[1][STATS_TO_PEER])),
            (unsigned long long)fake_cluster_state(g.h.cl)->keys_asked,
            (unsigned long long)stats_read_realms(g.h.stats.auth_failures));
}

static void setup(void)
{
    if (getenv("FUZZ_TURN_STATS"))
        atexit(print_stats);
    /* reservations hold a socket for 30 s: room for them */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    char err[CONF_ERR_LEN];
    const char *text =
        "realm = \"" REALM "\";\nsoftware = \"ternd-fuzz\";\nworkers = 1;\n"
        "listen = ( { proto = \"udp\"; ip = \"127.0.0.1\"; port = 3478; } );\n"
        "auth = { users = ( { user = \"alice\"; password = \"secret\"; } ); };\n"
        "relay = { ip = [ \"127.0.0.1\" ]; min_port = 45000; max_port = 45999; };\n"
        "peers = { allow_loopback = true; };\n"
        "limits = { user_quota = 3; unauth_rate = 0; unauth_global_rate = 0; };\n"
        "realms = ( { name = \"" OTHER "\"; origins = [ \"" ORIGIN "\" ];\n"
        "             users = ( { user = \"alice\"; password = \"other\"; } ); } );\n"
        "oauth = { server_name = \"" SERVER_NAME "\"; keys = ( { kid = \"" KID "\";\n"
        "          key = \"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK\"; } ); };\n"
        "log = { level = \"error\"; };\n";
    if (turn_harness_init(&g.h, text, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_turn: %s\n", err);
        abort();
    }
    log_open(LOG_LVL_ERROR, NULL, false);
    struct fake_cluster_state *st = fake_cluster_state(g.h.cl);
    st->mode = FAKE_NOW;
    snprintf(st->user, sizeof st->user, "carol");
    auth_key_md5("carol", 5, REALM, "carolpw", st->md5);
    auth_key_sha256("carol", 5, REALM, "carolpw", st->sha256);
    g.local.sin_family = AF_INET;
    g.local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g.local.sin_port = htons(3478);
}

/* A cursor over the input. */
struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static size_t take_bytes(struct in *in, uint8_t *out, size_t want)
{
    size_t n = want < in->n ? want : in->n;
    memcpy(out, in->p, n);
    in->p += n;
    in->n -= n;
    return n;
}

static void check_answer(const uint8_t *req, size_t req_len, const uint8_t *out, size_t len)
{
    struct stun_msg m;
    if (stun_msg_decode(&m, out, len) < 0 || m.cls < STUN_CLASS_SUCCESS)
        abort(); /* not a response */
    if (memcmp(out + 8, req + 8, STUN_TID_LEN) != 0)
        abort(); /* not to this request */
    if (m.integrity < 0 && m.integrity256 < 0 && len > req_len + UNAUTH_GROWTH)
        abort(); /* unauthenticated answer beyond the amplification bound */
}

static void handle(struct turn_session *s, const struct sockaddr *client, const uint8_t *buf,
                   size_t len)
{
    if (len >= 4 && (buf[0] & 0xC0) == 0x40) {
        turn_channel_data(s, client, buf, len);
        return;
    }
    struct stun_msg m;
    if (stun_msg_decode(&m, buf, len) < 0 || m.method == STUN_BINDING)
        return;
    uint8_t out[2048];
    size_t n = 0;
    if (turn_handle(s, &m, client, out, sizeof out, &n) == TURN_ANSWER)
        check_answer(buf, len, out, n);
}

/* The tail of a request with an RFC 7635 token of kid KID: a fuzzed MAC
 * key length and lifetime, a byte flipped at a fuzzed place when flags
 * say so, signed with the whole MAC key or coturn's first 16 bytes. */
static size_t build_token(struct in *in, struct stun_enc *e, uint8_t flags, const char *nonce)
{
    static struct oauth_key k;
    if (!k.key_len && oauth_key_init(&k, KID, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK",
                                     NULL, 0, 0, NULL) < 0)
        abort();
    struct oauth_token t = { .mac_key_len = 1 + take(in) % 32,
                             .timestamp = oauth_timestamp_make((uint64_t)time(NULL) - take(in)),
                             .lifetime = take(in) * 4u };
    memset(t.mac_key, 0x5A, sizeof t.mac_key);
    uint8_t nonce12[OAUTH_NONCE_LEN] = { 1, 2, 3 }, tok[OAUTH_TOKEN_MAX];
    int n = oauth_token_encrypt(&k, SERVER_NAME, &t, nonce12, sizeof nonce12, tok, sizeof tok);
    if (n < 0)
        abort();
    if (flags & 8)
        tok[take(in) % n] ^= 1u << (take(in) % 8);
    stun_enc_add(e, STUN_ATTR_ACCESS_TOKEN, tok, (size_t)n);
    stun_enc_add(e, STUN_ATTR_USERNAME, KID, strlen(KID));
    stun_enc_add(e, STUN_ATTR_REALM, REALM, strlen(REALM));
    stun_enc_add(e, STUN_ATTR_NONCE, nonce, AUTH_NONCE_LEN);
    size_t klen = t.mac_key_len == 20 && (flags & 64) ? 16 : t.mac_key_len;
    stun_enc_add_integrity(e, t.mac_key, klen);
    if (flags & 4)
        stun_enc_add_fingerprint(e);
    return e->len;
}

/* A request built from fuzzed attributes, signed with the user's key and
 * a valid nonce for client. */
static size_t build_signed(struct in *in, const struct sockaddr *client, uint8_t *buf, size_t cap)
{
    static const uint16_t methods[] = { STUN_ALLOCATE, STUN_REFRESH, STUN_CREATE_PERMISSION,
                                        STUN_CHANNEL_BIND, STUN_SEND };
    uint16_t method = methods[take(in) % 5];
    uint8_t flags = take(in);
    uint8_t tid[STUN_TID_LEN];
    take_bytes(in, tid, 2);
    memset(tid + 2, flags, STUN_TID_LEN - 2);
    struct stun_enc e;
    stun_enc_init(&e, buf, cap, method, method == STUN_SEND ? STUN_CLASS_INDICATION
                                                            : STUN_CLASS_REQUEST, tid, false);
    unsigned n_attrs = take(in) % 6;
    for (unsigned i = 0; i < n_attrs; i++) {
        uint8_t kind = take(in) % 10, v[64];
        struct sockaddr_in peer = { .sin_family = AF_INET };
        switch (kind) {
        case 0: v[0] = take(in) & 1 ? 6 : 17; memset(v + 1, 0, 3);
                stun_enc_add(&e, STUN_ATTR_REQUESTED_TRANSPORT, v, 4); break;
        case 1: stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, take(in) * 8u); break;
        case 2: peer.sin_addr.s_addr = htonl(0x7F000000u | take(in));
                peer.sin_port = htons((uint16_t)(40000 + take(in)));
                stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&peer); break;
        case 3: stun_enc_add_u32(&e, STUN_ATTR_CHANNEL_NUMBER, (0x4000u + take(in) % 8) << 16); break;
        case 4: v[0] = take(in) & 0x80; stun_enc_add(&e, STUN_ATTR_EVEN_PORT, v, 1); break;
        case 5: take_bytes(in, v, 8); stun_enc_add(&e, STUN_ATTR_RESERVATION_TOKEN, v, 8); break;
        case 6: v[0] = (take(in) & 1) + 1; memset(v + 1, 0, 3);
                stun_enc_add(&e, STUN_ATTR_REQUESTED_ADDRESS_FAMILY, v, 4); break;
        case 7: stun_enc_add(&e, STUN_ATTR_DONT_FRAGMENT, v, 0); break;
        case 8: { size_t l = take(in) % 64; l = take_bytes(in, v, l);
                  stun_enc_add(&e, STUN_ATTR_DATA, v, l); break; }
        default: { uint16_t type = (uint16_t)(take(in) << 8 | take(in));
                   size_t l = take(in) % 32; l = take_bytes(in, v, l);
                   stun_enc_add(&e, type, v, l); break; }
        }
    }
    if (method == STUN_SEND)
        return e.len;
    const char *user = flags & 1 ? "carol" : "alice";
    const char *pw = flags & 1 ? "carolpw" : "secret";
    const char *realm = REALM;
    if (flags & 8)
        pw = "wrong";
    if (flags & 16) {
        stun_enc_add(&e, STUN_ATTR_ORIGIN, ORIGIN, strlen(ORIGIN));
        realm = OTHER;
        pw = flags & 8 ? "secret" : "other"; /* the default realm's password is wrong here */
    }
    char nonce[AUTH_NONCE_LEN + 1];
    auth_nonce_make(g.h.nonce_key, client, (uint64_t)time(NULL) + 600, nonce);
    uint8_t key[32];
    if (flags & 32)
        return build_token(in, &e, flags, nonce);
    stun_enc_add(&e, STUN_ATTR_USERNAME, user, strlen(user));
    stun_enc_add(&e, STUN_ATTR_REALM, realm, strlen(realm));
    stun_enc_add(&e, STUN_ATTR_NONCE, nonce, AUTH_NONCE_LEN);
    if (flags & 2) {
        static const uint8_t algs[] = { 0, AUTH_ALG_SHA256, 0, 0, 0, AUTH_ALG_MD5, 0, 0 };
        static const uint8_t alg[] = { 0, AUTH_ALG_SHA256, 0, 0 };
        stun_enc_add(&e, STUN_ATTR_PASSWORD_ALGORITHMS, algs, sizeof algs);
        stun_enc_add(&e, STUN_ATTR_PASSWORD_ALGORITHM, alg, sizeof alg);
        auth_key_sha256(user, strlen(user), realm, pw, key);
        stun_enc_add_integrity_sha256(&e, key, 32);
    } else {
        auth_key_md5(user, strlen(user), realm, pw, key);
        stun_enc_add_integrity(&e, key, 16);
    }
    if (flags & 4)
        stun_enc_add_fingerprint(&e);
    return e.len;
}

static void loop_turn(void)
{
    for (int i = 0; i < 3; i++)
        event_base_loop(g.h.base, EVLOOP_NONBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.h.base)
        setup();
    struct in in = { data, size };
    /* two sessions: one like a UDP socket (allocations by 5-tuple), one
     * like a TCP/TLS/DTLS connection (one allocation) */
    struct turn_session s[2];
    turn_session_init(&s[0], g.h.turn, &ops, &s[0], (struct sockaddr *)&g.local, false, 0);
    turn_session_init(&s[1], g.h.turn, &ops, &s[1], (struct sockaddr *)&g.local, true, 1);
    struct sockaddr_in client = { .sin_family = AF_INET, .sin_port = htons(50000) };
    client.sin_addr.s_addr = htonl(0x7F000002u);
    unsigned cur = 0, steps = 0;
    uint8_t buf[2048];
    while (in.n && steps++ < 64) {
        switch (take(&in) % 6) {
        case 0: {
            size_t len = (size_t)take(&in) << 2;
            len = take_bytes(&in, buf, len);
            handle(&s[cur], (struct sockaddr *)&client, buf, len);
            break;
        }
        case 1: {
            size_t len = build_signed(&in, (struct sockaddr *)&client, buf, sizeof buf);
            handle(&s[cur], (struct sockaddr *)&client, buf, len);
            break;
        }
        case 2: {
            uint16_t ch = (uint16_t)(0x4000 + take(&in) % 8), dlen = take(&in) % 64;
            stun_channel_encode_hdr(buf, ch, dlen);
            memset(buf + 4, 0xAB, dlen);
            turn_channel_data(&s[cur], (struct sockaddr *)&client, buf, 4u + dlen);
            break;
        }
        case 3:
            loop_turn();
            break;
        case 4:
            cur ^= 1;
            client.sin_port = htons((uint16_t)(50000 + take(&in) % 4));
            break;
        default:
            turn_session_end(&s[cur], "fuzz");
            turn_session_init(&s[cur], g.h.turn, &ops, &s[cur], (struct sockaddr *)&g.local,
                              cur == 1, cur);
            break;
        }
    }
    loop_turn();
    turn_session_end(&s[0], "fuzz over");
    turn_session_end(&s[1], "fuzz over");
    loop_turn();
    if (relay_table_count(g.h.relay) != 0 || quota_total(g.h.quota) != 0)
        abort(); /* an allocation outlived its session */
    if (stats_read(&g.h.stats.redis_parked) != 0)
        abort(); /* a parked request outlived its session */
    return 0;
}
