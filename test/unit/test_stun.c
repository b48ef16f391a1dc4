/*
 * test_stun.c - unit tests of the STUN codec (proto/stun*.c).
 *
 * Design: the RFC 5769 vectors are the ground truth for decoding, integrity,
 * fingerprint and XOR addresses, and the encoder must reproduce 2.4 byte for
 * byte; malformed inputs are a table of hex strings, each with the exact
 * error it must give; everything else is encoder -> decoder round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "proto/stun.h"
#include "test/unit/rfc5769.h"

static const char short_term_pw[] = "VOkJxbRl1RmTxUk/WvJxBt";

/* Hex string (whitespace allowed) to bytes; returns the byte count. */
static size_t test_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static void test_assert_attr_str(const struct stun_msg *m, uint16_t type, const char *want)
{
    const struct stun_attr *a = stun_attr_find(m, type);
    assert_non_null(a);
    assert_int_equal(a->len, strlen(want));
    assert_memory_equal(m->buf + a->off, want, a->len);
}

static void test_assert_sockaddr(const struct sockaddr_storage *ss, const char *ip, int port)
{
    char got[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        assert_int_equal(ss->ss_family, AF_INET6);
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(got, ip);
}

static void test_make_sockaddr(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
    }
}

static void test_rfc5769_sample_request(void **state)
{
    (void)state;
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, rfc5769_request, sizeof(rfc5769_request)), 0);
    assert_false(m.classic);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    assert_int_equal(m.method, STUN_BINDING);
    assert_ptr_equal(m.tid, rfc5769_request + 8);
    assert_int_equal(m.n_attrs, 6);
    assert_int_equal(m.n_unknown, 0);
    /* Padding here is 0x20, which must not leak into the values. */
    test_assert_attr_str(&m, STUN_ATTR_SOFTWARE, "STUN test client");
    test_assert_attr_str(&m, STUN_ATTR_USERNAME, "evtj:h6vY");
    uint32_t prio = 0;
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_PRIORITY), &prio), 0);
    assert_int_equal(prio, 0x6e0001ff);
    const struct stun_attr *ice = stun_attr_find(&m, STUN_ATTR_ICE_CONTROLLED);
    assert_non_null(ice);
    static const uint8_t tie[8] = {0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36};
    assert_int_equal(ice->len, 8);
    assert_memory_equal(m.buf + ice->off, tie, 8);
    assert_int_equal(m.integrity, 4);
    assert_int_equal(m.fingerprint, 5);
    assert_int_equal(m.integrity256, -1);
    assert_true(stun_msg_check_fingerprint(&m));
    assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)short_term_pw,
                                              strlen(short_term_pw)),
                     0);
    assert_int_equal(stun_msg_check_integrity_sha256(&m, (const uint8_t *)short_term_pw,
                                                     strlen(short_term_pw)),
                     STUN_ERR_NOT_FOUND);
}

static void test_rfc5769_response(const uint8_t *vec, size_t len, const char *ip)
{
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, vec, len), 0);
    assert_false(m.classic);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    assert_int_equal(m.method, STUN_BINDING);
    test_assert_attr_str(&m, STUN_ATTR_SOFTWARE, "test vector");
    struct sockaddr_storage ss;
    assert_int_equal(
        stun_attr_get_xaddr(&m, stun_attr_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS), &ss), 0);
    test_assert_sockaddr(&ss, ip, 32853);
    assert_true(stun_msg_check_fingerprint(&m));
    assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)short_term_pw,
                                              strlen(short_term_pw)),
                     0);
}

static void test_rfc5769_ipv4_response(void **state)
{
    (void)state;
    test_rfc5769_response(rfc5769_ipv4_response, sizeof(rfc5769_ipv4_response), "192.0.2.1");
}

static void test_rfc5769_ipv6_response(void **state)
{
    (void)state;
    test_rfc5769_response(rfc5769_ipv6_response, sizeof(rfc5769_ipv6_response),
                          "2001:db8:1234:5678:11:2233:4455:6677");
}

static const uint8_t lt_username[] = {0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa,
                                      0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9};
static const char lt_nonce[] = "f//499k954d6OL34oL9FSTvy64sA";
static const char lt_realm[] = "example.org";

/* RFC 8489 section 9.2.2: key = MD5(username ":" realm ":" password). */
static void test_long_term_key(uint8_t key[16])
{
    uint8_t in[128];
    size_t n = 0;
    memcpy(in + n, lt_username, sizeof(lt_username));
    n += sizeof(lt_username);
    in[n++] = ':';
    memcpy(in + n, lt_realm, strlen(lt_realm));
    n += strlen(lt_realm);
    in[n++] = ':';
    memcpy(in + n, "TheMatrIX", 9);
    n += 9;
    unsigned int klen = 0;
    assert_int_equal(EVP_Digest(in, n, key, &klen, EVP_md5(), NULL), 1);
    assert_int_equal(klen, 16);
}

static void test_rfc5769_long_term(void **state)
{
    (void)state;
    uint8_t key[16];
    test_long_term_key(key);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, rfc5769_long_term, sizeof(rfc5769_long_term)), 0);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    assert_int_equal(m.method, STUN_BINDING);
    const struct stun_attr *u = stun_attr_find(&m, STUN_ATTR_USERNAME);
    assert_non_null(u);
    assert_int_equal(u->len, sizeof(lt_username));
    assert_memory_equal(m.buf + u->off, lt_username, sizeof(lt_username));
    test_assert_attr_str(&m, STUN_ATTR_NONCE, lt_nonce);
    test_assert_attr_str(&m, STUN_ATTR_REALM, lt_realm);
    assert_int_equal(m.fingerprint, -1);
    assert_false(stun_msg_check_fingerprint(&m));
    assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key)), 0);

    /* The encoder must reproduce the vector exactly (zero padding, length
     * field as MESSAGE-INTEGRITY expects). */
    uint8_t buf[256];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_BINDING, STUN_CLASS_REQUEST,
                                   rfc5769_long_term + 8, false),
                     0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_USERNAME, lt_username, sizeof(lt_username)), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_NONCE, lt_nonce, strlen(lt_nonce)), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_REALM, lt_realm, strlen(lt_realm)), 0);
    assert_int_equal(stun_enc_add_integrity(&e, key, sizeof(key)), 0);
    assert_int_equal(e.len, sizeof(rfc5769_long_term));
    assert_memory_equal(buf, rfc5769_long_term, sizeof(rfc5769_long_term));
}

static void test_integrity_wrong_key(void **state)
{
    (void)state;
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, rfc5769_request, sizeof(rfc5769_request)), 0);
    assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBu", 22),
                     STUN_ERR_INTEGRITY);
    assert_int_equal(stun_msg_check_integrity(&m, NULL, 0), STUN_ERR_INTEGRITY);
    /* A flipped bit anywhere before MESSAGE-INTEGRITY must be caught too. */
    uint8_t copy[sizeof(rfc5769_request)];
    memcpy(copy, rfc5769_request, sizeof(copy));
    copy[30] ^= 0x01;
    assert_int_equal(stun_msg_decode(&m, copy, sizeof(copy)), 0);
    assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)short_term_pw,
                                              strlen(short_term_pw)),
                     STUN_ERR_INTEGRITY);
    assert_false(stun_msg_check_fingerprint(&m));
}

/* Each malformed message and what decoding (then reading XOR-MAPPED-ADDRESS,
 * when decoding succeeds) must answer. */
struct malformed_case {
    const char *name;
    const char *hex;
    int decode_rc;
    int xaddr_rc;
};

#define HDR(len) "0001" len "2112a442 000102030405060708090a0b "

static const struct malformed_case malformed_cases[] = {
    {"empty", "", STUN_ERR_SHORT, 0},
    {"truncated header", "0001 0000 2112a442 000102030405060708090a", STUN_ERR_SHORT, 0},
    {"length field > actual", HDR("000c") "80220004 74657374", STUN_ERR_SHORT, 0},
    {"length not multiple of 4", HDR("0002") "0000", STUN_ERR_LENGTH, 0},
    {"trailing garbage", HDR("0000") "00000000", STUN_ERR_LENGTH, 0},
    {"top bits 10", "8001 0000 2112a442 000102030405060708090a0b", STUN_ERR_NOT_STUN, 0},
    {"top bits 01 (ChannelData)", "4001 0000 2112a442 000102030405060708090a0b",
     STUN_ERR_NOT_STUN, 0},
    {"attr length overrun", HDR("0008") "80220008 74657374", STUN_ERR_ATTR, 0},
    {"attr padding overrun", HDR("0008") "80220005 74657374", STUN_ERR_ATTR, 0},
    {"attr header without value", HDR("0004") "80220001", STUN_ERR_ATTR, 0},
    {"attr overrun after a good one", HDR("000c") "80220000 00060008 74657374 ",
     STUN_ERR_ATTR, 0},
    {"MI length 16", HDR("0014") "00080010 00000000000000000000000000000000", STUN_ERR_ATTR,
     0},
    {"FINGERPRINT length 8", HDR("000c") "80280008 0000000000000000", STUN_ERR_ATTR, 0},
    {"MI-SHA256 length 12", HDR("0010") "001c000c 000000000000000000000000", STUN_ERR_ATTR, 0},
    {"MI-SHA256 length 18", HDR("0018") "001c0012 00000000000000000000000000000000 00000000",
     STUN_ERR_ATTR, 0},
    {"MI-SHA256 length 36",
     HDR("0028") "001c0024 0000000000000000000000000000000000000000000000000000000000000000"
                 "00000000",
     STUN_ERR_ATTR, 0},
    {"LIFETIME length 8", HDR("000c") "000d0008 0000000000000000", STUN_ERR_ATTR, 0},
    {"PRIORITY length 2", HDR("0008") "00240002 00000000", STUN_ERR_ATTR, 0},
    {"CHANGE-REQUEST length 0", HDR("0004") "00030000", STUN_ERR_ATTR, 0},
    {"CHANNEL-NUMBER length 2", HDR("0008") "000c0002 40000000", STUN_ERR_ATTR, 0},
    {"xaddr family 3", HDR("000c") "00200008 0003a147e112a643", 0, STUN_ERR_VALUE},
    {"xaddr family 1 length 20",
     HDR("0018") "00200014 0001a147 0113a9faa5d3f179bc25f4b5bed2b9d9", 0, STUN_ERR_VALUE},
    {"xaddr family 2 length 8", HDR("000c") "00200008 0002a147e112a643", 0, STUN_ERR_VALUE},
    {"xaddr too short", HDR("0004") "00200000", 0, STUN_ERR_VALUE},
    {"xaddr absent", HDR("0000"), 0, STUN_ERR_NOT_FOUND},
};

static void test_decode_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(malformed_cases) / sizeof(malformed_cases[0]); i++) {
        const struct malformed_case *c = &malformed_cases[i];
        uint8_t buf[128];
        size_t n = test_hex_decode(c->hex, buf, sizeof(buf));
        struct stun_msg m;
        int rc = stun_msg_decode(&m, buf, n);
        if (rc != c->decode_rc)
            fail_msg("%s: decode %d, want %d", c->name, rc, c->decode_rc);
        if (rc == STUN_ERR_ATTR) {
            /* Enough survives to answer 400, nothing of the bad index. */
            assert_ptr_equal(m.tid, buf + 8);
            assert_int_equal(m.n_attrs, 0);
            assert_int_equal(m.integrity, -1);
        }
        if (rc == 0) {
            struct sockaddr_storage ss;
            rc = stun_attr_get_xaddr(&m, stun_attr_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS), &ss);
            if (rc != c->xaddr_rc)
                fail_msg("%s: xaddr %d, want %d", c->name, rc, c->xaddr_rc);
        }
    }
}

static void test_decode_too_many(void **state)
{
    (void)state;
    uint8_t buf[STUN_HDR_LEN + 4 * (STUN_MAX_ATTRS + 1)];
    static const uint8_t tid[12] = {0};
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_BINDING, 0, tid, false), 0);
    for (int i = 0; i < STUN_MAX_ATTRS; i++)
        assert_int_equal(stun_enc_add(&e, STUN_ATTR_SOFTWARE, NULL, 0), 0);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(m.n_attrs, STUN_MAX_ATTRS);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_SOFTWARE, NULL, 0), 0);
    assert_int_equal(stun_msg_decode(&m, buf, e.len), STUN_ERR_TOO_MANY);
}

/* Near the 64 KiB limit: attribute offsets must still fit struct stun_attr. */
static void test_decode_huge(void **state)
{
    (void)state;
    static uint8_t buf[STUN_HDR_LEN + 0xFFFC];
    static const uint8_t payload[65528 - 24] = {1};
    static const uint8_t tid[12] = {0};
    struct stun_enc e;
    struct stun_msg m;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_SEND, 1, tid, false), 0);
    /* Values up to offset 65535 are fine: DATA then one attribute there. */
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DATA, payload, sizeof(payload)), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DONT_FRAGMENT, NULL, 0), 0);
    assert_int_equal(e.len, 65532);
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(m.n_attrs, 2);
    assert_int_equal(m.attrs[1].off, 65532);
    /* One more would sit at 65536: refused rather than wrapped. */
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DONT_FRAGMENT, NULL, 0), 0);
    assert_int_equal(stun_msg_decode(&m, buf, e.len), STUN_ERR_ATTR);
    for (int i = 0; i < 4; i++)
        assert_int_equal(stun_enc_add(&e, STUN_ATTR_DONT_FRAGMENT, NULL, 0), 0);
    assert_int_equal(e.len, sizeof(buf));
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DONT_FRAGMENT, NULL, 0), STUN_ERR_SPACE);
    assert_int_equal(stun_frame_len(buf, 4), (long)sizeof(buf));
}

static void test_decode_unknown(void **state)
{
    (void)state;
    uint8_t buf[256];
    static const uint8_t tid[12] = {1, 2, 3};
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_ALLOCATE, 0, tid, false), 0);
    assert_int_equal(stun_enc_add(&e, 0x7777, "x", 1), 0);
    assert_int_equal(stun_enc_add(&e, 0x9999, "y", 1), 0); /* optional: not listed */
    assert_int_equal(stun_enc_add(&e, 0x7777, "x", 1), 0); /* listed once */
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24), 0);
    for (uint16_t t = 0x7000; t < 0x7000 + STUN_MAX_UNKNOWN + 2; t++)
        assert_int_equal(stun_enc_add(&e, t, NULL, 0), 0);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(m.method, STUN_ALLOCATE);
    assert_int_equal(m.n_unknown, STUN_MAX_UNKNOWN);
    assert_int_equal(m.unknown[0], 0x7777);
    assert_int_equal(m.unknown[1], 0x7000);
    assert_true(stun_attr_is_known(STUN_ATTR_XOR_MAPPED_ADDRESS));
    assert_false(stun_attr_is_known(0x7777));
}

static void test_roundtrip_all(void **state)
{
    (void)state;
    static const uint8_t tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
    static const uint8_t key[] = "secret";
    static const uint16_t unk[3] = {0x7777, 0x0042, 0x1234};
    struct sockaddr_storage a4, a6, x4, x6, got;
    test_make_sockaddr(&a4, "198.51.100.7", 3478);
    test_make_sockaddr(&a6, "2001:db8::1", 5349);
    test_make_sockaddr(&x4, "203.0.113.200", 65535);
    test_make_sockaddr(&x6, "fe80::1234:5678:9abc:def0", 1);

    uint8_t buf[512];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_CHANNEL_BIND, STUN_CLASS_ERROR,
                                   tid, false),
                     0);
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, 600), 0);
    assert_int_equal(stun_enc_add_addr(&e, STUN_ATTR_MAPPED_ADDRESS, (struct sockaddr *)&a4), 0);
    assert_int_equal(stun_enc_add_addr(&e, STUN_ATTR_ALTERNATE_SERVER, (struct sockaddr *)&a6),
                     0);
    assert_int_equal(
        stun_enc_add_xaddr(&e, STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&x4), 0);
    assert_int_equal(stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&x6),
                     0);
    assert_int_equal(stun_enc_add_error(&e, 438, NULL), 0);
    assert_int_equal(stun_enc_add_error(&e, 599, "Custom, odd"), 0);
    assert_int_equal(stun_enc_add_unknown(&e, unk, 3), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DATA, "\x01\x02\x03\x04\x05", 5), 0);
    assert_int_equal(stun_enc_add_integrity(&e, key, sizeof(key) - 1), 0);
    assert_int_equal(stun_enc_add_integrity_sha256(&e, key, sizeof(key) - 1), 0);
    assert_int_equal(stun_enc_add_fingerprint(&e), 0);
    assert_int_equal(e.len % 4, 0);
    assert_int_equal((buf[2] << 8 | buf[3]) + STUN_HDR_LEN, e.len);

    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(m.method, STUN_CHANNEL_BIND);
    assert_int_equal(m.cls, STUN_CLASS_ERROR);
    assert_memory_equal(m.tid, tid, 12);
    assert_int_equal(m.n_attrs, 12);
    assert_int_equal(m.n_unknown, 0);

    uint32_t v = 0;
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_LIFETIME), &v), 0);
    assert_int_equal(v, 600);
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_DATA), &v),
                     STUN_ERR_VALUE);
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_PRIORITY), &v),
                     STUN_ERR_NOT_FOUND);
    assert_int_equal(stun_attr_get_addr(&m, stun_attr_find(&m, STUN_ATTR_MAPPED_ADDRESS), &got),
                     0);
    test_assert_sockaddr(&got, "198.51.100.7", 3478);
    assert_int_equal(
        stun_attr_get_addr(&m, stun_attr_find(&m, STUN_ATTR_ALTERNATE_SERVER), &got), 0);
    test_assert_sockaddr(&got, "2001:db8::1", 5349);
    assert_int_equal(
        stun_attr_get_xaddr(&m, stun_attr_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS), &got), 0);
    test_assert_sockaddr(&got, "203.0.113.200", 65535);
    assert_int_equal(
        stun_attr_get_xaddr(&m, stun_attr_find(&m, STUN_ATTR_XOR_PEER_ADDRESS), &got), 0);
    test_assert_sockaddr(&got, "fe80::1234:5678:9abc:def0", 1);
    /* Read as plain, an XOR address must not come back unchanged. */
    assert_int_equal(
        stun_attr_get_addr(&m, stun_attr_find(&m, STUN_ATTR_XOR_MAPPED_ADDRESS), &got), 0);
    assert_int_not_equal(((struct sockaddr_in *)&got)->sin_port, htons(65535));

    const struct stun_attr *err = stun_attr_find(&m, STUN_ATTR_ERROR_CODE);
    int code = 0;
    const char *reason = NULL;
    size_t rlen = 0;
    assert_int_equal(stun_attr_get_error(&m, err, &code, &reason, &rlen), 0);
    assert_int_equal(code, 438);
    assert_int_equal(rlen, strlen("Stale Nonce"));
    assert_memory_equal(reason, "Stale Nonce", rlen);
    assert_int_equal(stun_attr_get_error(&m, err + 1, &code, &reason, &rlen), 0);
    assert_int_equal(code, 599);
    assert_int_equal(rlen, 11);
    assert_memory_equal(reason, "Custom, odd", 11);
    assert_int_equal(stun_attr_get_error(&m, NULL, &code, &reason, &rlen), STUN_ERR_NOT_FOUND);

    const struct stun_attr *ua = stun_attr_find(&m, STUN_ATTR_UNKNOWN_ATTRIBUTES);
    assert_non_null(ua);
    assert_int_equal(ua->len, 6);
    assert_memory_equal(m.buf + ua->off, "\x77\x77\x00\x42\x12\x34\x00\x00", 8);
    const struct stun_attr *data = stun_attr_find(&m, STUN_ATTR_DATA);
    assert_int_equal(data->len, 5);
    assert_memory_equal(m.buf + data->off, "\x01\x02\x03\x04\x05\x00\x00\x00", 8);

    assert_int_equal(m.integrity, 9);
    assert_int_equal(m.integrity256, 10);
    assert_int_equal(m.fingerprint, 11);
    assert_int_equal(m.attrs[10].len, 32);
    assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key) - 1), 0);
    assert_int_equal(stun_msg_check_integrity_sha256(&m, key, sizeof(key) - 1), 0);
    assert_int_equal(stun_msg_check_integrity_sha256(&m, key, sizeof(key) - 2),
                     STUN_ERR_INTEGRITY);
    assert_true(stun_msg_check_fingerprint(&m));
}

static void test_ignored_after_integrity(void **state)
{
    (void)state;
    static const uint8_t tid[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    static const uint8_t key[] = "k";
    uint8_t buf[512];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_REFRESH, 0, tid, false), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_USERNAME, "user", 4), 0);
    assert_int_equal(stun_enc_add_integrity(&e, key, 1), 0);
    /* RFC 8489 section 14.5: these are not covered, so not indexed. */
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, 0), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_MESSAGE_INTEGRITY, "01234567890123456789", 20),
                     0);
    assert_int_equal(stun_enc_add(&e, 0x7777, NULL, 0), 0);
    assert_int_equal(stun_enc_add_integrity_sha256(&e, key, 1), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_SOFTWARE, "after-256", 9), 0);
    assert_int_equal(stun_enc_add_fingerprint(&e), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_SOFTWARE, "after-fp", 8), 0);
    /* Malformed but ignored: must not fail the decode either. */
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_FINGERPRINT, "12345678", 8), 0);

    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(m.n_attrs, 4);
    assert_int_equal(m.n_unknown, 0);
    assert_null(stun_attr_find(&m, STUN_ATTR_LIFETIME));
    assert_null(stun_attr_find(&m, STUN_ATTR_SOFTWARE));
    assert_int_equal(m.integrity, 1);
    assert_int_equal(m.integrity256, 2);
    assert_int_equal(m.fingerprint, 3);
    assert_int_equal(stun_msg_check_integrity(&m, key, 1), 0);
    assert_int_equal(stun_msg_check_integrity_sha256(&m, key, 1), 0);
    assert_true(stun_msg_check_fingerprint(&m));
}

/* RFC 8489 section 14.6: MESSAGE-INTEGRITY-SHA256 may be truncated to 16. */
static void test_integrity_sha256_truncated(void **state)
{
    (void)state;
    static const uint8_t tid[12] = {0};
    static const uint8_t key[] = "truncate-me";
    uint8_t buf[128];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_BINDING, 0, tid, false), 0);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_USERNAME, "u", 1), 0);
    size_t start = e.len;
    static const uint8_t zeros[16] = {0};
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, zeros, 16), 0);
    uint8_t mac[32];
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, sizeof(key) - 1, buf, start, mac, &mac_len));
    memcpy(buf + start + 4, mac, 16);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    assert_int_equal(stun_msg_check_integrity_sha256(&m, key, sizeof(key) - 1), 0);
    assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key) - 1), STUN_ERR_NOT_FOUND);
    buf[start + 4 + 15] ^= 0x80;
    assert_int_equal(stun_msg_check_integrity_sha256(&m, key, sizeof(key) - 1),
                     STUN_ERR_INTEGRITY);
}

static void test_classic_rfc3489(void **state)
{
    (void)state;
    /* An RFC 3489 Binding Request with CHANGE-REQUEST (change IP and port). */
    uint8_t req[64];
    size_t n = test_hex_decode("0001 0008 a1b2c3d4 e5f60718 292a3b4c 5d6e7f80"
                               "0003 0004 00000006",
                               req, sizeof(req));
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, req, n), 0);
    assert_true(m.classic);
    assert_ptr_equal(m.tid, req + 4);
    assert_int_equal(m.method, STUN_BINDING);
    assert_int_equal(m.cls, STUN_CLASS_REQUEST);
    uint32_t flags = 0;
    assert_int_equal(stun_attr_get_u32(&m, stun_attr_find(&m, STUN_ATTR_CHANGE_REQUEST), &flags),
                     0);
    assert_int_equal(flags, STUN_CHANGE_IP | STUN_CHANGE_PORT);

    /* The response echoes the 16-byte tid in place of cookie + tid. */
    uint8_t buf[128];
    struct stun_enc e;
    struct sockaddr_storage a, got;
    test_make_sockaddr(&a, "192.0.2.33", 40000);
    assert_int_equal(
        stun_enc_init(&e, buf, sizeof(buf), STUN_BINDING, STUN_CLASS_SUCCESS, m.tid, true), 0);
    assert_int_equal(stun_enc_add_addr(&e, STUN_ATTR_MAPPED_ADDRESS, (struct sockaddr *)&a), 0);
    assert_int_equal(stun_enc_add_addr(&e, STUN_ATTR_SOURCE_ADDRESS, (struct sockaddr *)&a), 0);
    assert_int_equal(stun_enc_add_xaddr(&e, STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&a),
                     0);
    assert_memory_equal(buf, "\x01\x01\x00\x24", 4);
    assert_memory_equal(buf + 4, req + 4, 16);
    struct stun_msg r;
    assert_int_equal(stun_msg_decode(&r, buf, e.len), 0);
    assert_true(r.classic);
    assert_int_equal(r.cls, STUN_CLASS_SUCCESS);
    assert_memory_equal(r.tid, req + 4, STUN_CLASSIC_TID_LEN);
    assert_int_equal(stun_attr_get_addr(&r, stun_attr_find(&r, STUN_ATTR_MAPPED_ADDRESS), &got),
                     0);
    test_assert_sockaddr(&got, "192.0.2.33", 40000);
    assert_int_equal(
        stun_attr_get_xaddr(&r, stun_attr_find(&r, STUN_ATTR_XOR_MAPPED_ADDRESS), &got), 0);
    test_assert_sockaddr(&got, "192.0.2.33", 40000);
}

static void test_channel_decode(void **state)
{
    (void)state;
    uint8_t buf[16] = {0};
    uint16_t ch = 0, dlen = 0;
    const uint8_t *data = NULL;
    stun_channel_encode_hdr(buf, 0x4001, 5);
    memcpy(buf + 4, "hello", 5);
    assert_memory_equal(buf, "\x40\x01\x00\x05", 4);
    /* UDP: the datagram may carry padding past the data. */
    assert_int_equal(stun_channel_decode(buf, 12, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x4001);
    assert_int_equal(dlen, 5);
    assert_ptr_equal(data, buf + 4);
    assert_int_equal(stun_channel_decode(buf, 9, &ch, &data, &dlen), 0);
    assert_int_equal(stun_channel_decode(buf, 8, &ch, &data, &dlen), STUN_ERR_SHORT);
    assert_int_equal(stun_channel_decode(buf, 3, &ch, &data, &dlen), STUN_ERR_SHORT);
    stun_channel_encode_hdr(buf, 0x4FFF, 0);
    assert_int_equal(stun_channel_decode(buf, 4, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x4FFF);
    assert_int_equal(dlen, 0);
    stun_channel_encode_hdr(buf, 0x3FFF, 0);
    assert_int_equal(stun_channel_decode(buf, 4, &ch, &data, &dlen), STUN_ERR_NOT_STUN);
    stun_channel_encode_hdr(buf, 0x7FFE, 0); /* RFC 5766's range, still in use */
    assert_int_equal(stun_channel_decode(buf, 4, &ch, &data, &dlen), 0);
    stun_channel_encode_hdr(buf, 0x7FFF, 0);
    assert_int_equal(stun_channel_decode(buf, 4, &ch, &data, &dlen), STUN_ERR_NOT_STUN);
}

static void test_frame_len(void **state)
{
    (void)state;
    uint8_t b[4];
    for (size_t avail = 0; avail < 4; avail++)
        assert_int_equal(stun_frame_len(rfc5769_request, avail), 0);
    assert_int_equal(stun_frame_len(rfc5769_request, 4), sizeof(rfc5769_request));
    assert_int_equal(stun_frame_len(rfc5769_long_term, sizeof(rfc5769_long_term)),
                     sizeof(rfc5769_long_term));
    memcpy(b, "\x00\x01\x00\x06", 4);
    assert_int_equal(stun_frame_len(b, 4), STUN_ERR_NOT_STUN);
    stun_channel_encode_hdr(b, 0x4000, 5);
    assert_int_equal(stun_frame_len(b, 4), 12);
    stun_channel_encode_hdr(b, 0x4abc, 8);
    assert_int_equal(stun_frame_len(b, 4), 12);
    stun_channel_encode_hdr(b, 0x4abc, 0);
    assert_int_equal(stun_frame_len(b, 4), 4);
    stun_channel_encode_hdr(b, 0x4fff, 0xffff);
    assert_int_equal(stun_frame_len(b, 4), 4 + 0x10000);
    stun_channel_encode_hdr(b, 0x7FFF, 4);
    assert_int_equal(stun_frame_len(b, 4), STUN_ERR_NOT_STUN);
    /* Text such as "GET " or "POST" looks like ChannelData (0x4745, 0x504F):
     * the idle timeout, not the framer, ends such a stream. */
    assert_int_equal(stun_frame_len((const uint8_t *)"\x80\x00\x00\x04", 4), STUN_ERR_NOT_STUN);
    assert_int_equal(stun_frame_len((const uint8_t *)"\x16\x03\x01\x02", 4), STUN_ERR_NOT_STUN);
}

static void test_encoder_space(void **state)
{
    (void)state;
    static const uint8_t tid[12] = {0};
    uint8_t buf[64];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, 19, STUN_BINDING, 0, tid, false), STUN_ERR_SPACE);
    assert_int_equal(stun_enc_init(&e, buf, 20, STUN_BINDING, 0, tid, false), 0);
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, 1), STUN_ERR_SPACE);
    assert_int_equal(e.len, 20);
    assert_int_equal(stun_enc_init(&e, buf, 30, STUN_BINDING, 0, tid, false), 0);
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, 1), 0);
    /* 28 used, 2 left: nothing else fits and nothing may change. */
    uint8_t before[30];
    memcpy(before, buf, 30);
    assert_int_equal(stun_enc_add_fingerprint(&e), STUN_ERR_SPACE);
    assert_int_equal(stun_enc_add_integrity(&e, (const uint8_t *)"k", 1), STUN_ERR_SPACE);
    assert_int_equal(stun_enc_add_integrity_sha256(&e, (const uint8_t *)"k", 1), STUN_ERR_SPACE);
    assert_int_equal(stun_enc_add_error(&e, 400, NULL), STUN_ERR_SPACE);
    assert_int_equal(stun_enc_add(&e, STUN_ATTR_DATA, NULL, 0), STUN_ERR_SPACE);
    uint16_t t = 0x7777;
    assert_int_equal(stun_enc_add_unknown(&e, &t, 1), STUN_ERR_SPACE);
    struct sockaddr_storage a;
    test_make_sockaddr(&a, "::1", 1);
    assert_int_equal(stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&a),
                     STUN_ERR_SPACE);
    assert_int_equal(e.len, 28);
    assert_memory_equal(buf, before, 30);
    /* Values the encoder refuses whatever the space. */
    assert_int_equal(stun_enc_add_error(&e, 700, NULL), STUN_ERR_VALUE);
    assert_int_equal(stun_enc_add_error(&e, 299, NULL), STUN_ERR_VALUE);
    a.ss_family = AF_UNIX;
    assert_int_equal(stun_enc_add_addr(&e, STUN_ATTR_MAPPED_ADDRESS, (struct sockaddr *)&a),
                     STUN_ERR_VALUE);
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), 0x1000, 0, tid, false), STUN_ERR_VALUE);
}

static void test_names_and_reasons(void **state)
{
    (void)state;
    assert_string_equal(stun_attr_name(STUN_ATTR_XOR_MAPPED_ADDRESS), "XOR-MAPPED-ADDRESS");
    assert_string_equal(stun_attr_name(STUN_ATTR_MESSAGE_INTEGRITY_SHA256),
                        "MESSAGE-INTEGRITY-SHA256");
    assert_string_equal(stun_attr_name(STUN_ATTR_MOBILITY_TICKET), "MOBILITY-TICKET");
    assert_string_equal(stun_attr_name(STUN_ATTR_UNKNOWN_ATTRIBUTES), "UNKNOWN-ATTRIBUTES");
    assert_string_equal(stun_attr_name(0x7777), "UNKNOWN");
    assert_true(stun_attr_is_known(STUN_ATTR_UNKNOWN_ATTRIBUTES));
    assert_string_equal(stun_error_reason(401), "Unauthorized");
    assert_string_equal(stun_error_reason(438), "Stale Nonce");
    assert_string_equal(stun_error_reason(508), "Insufficient Capacity");
    assert_string_equal(stun_error_reason(499), "Error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5769_sample_request),
        cmocka_unit_test(test_rfc5769_ipv4_response),
        cmocka_unit_test(test_rfc5769_ipv6_response),
        cmocka_unit_test(test_rfc5769_long_term),
        cmocka_unit_test(test_integrity_wrong_key),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_too_many),
        cmocka_unit_test(test_decode_huge),
        cmocka_unit_test(test_decode_unknown),
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_ignored_after_integrity),
        cmocka_unit_test(test_integrity_sha256_truncated),
        cmocka_unit_test(test_classic_rfc3489),
        cmocka_unit_test(test_channel_decode),
        cmocka_unit_test(test_frame_len),
        cmocka_unit_test(test_encoder_space),
        cmocka_unit_test(test_names_and_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
