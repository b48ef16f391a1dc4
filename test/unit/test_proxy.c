/*
 * test_proxy.c - the PROXY header codec (proto/proxy.c) on the examples of
 * HAProxy's proxy-protocol.txt and on what must be refused: the length is
 * known from the fewest bytes that tell it and never reaches past the
 * header, the addresses come out in the right family and port, and LOCAL,
 * UNSPEC, AF_UNIX and UNKNOWN keep the connection's own addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "proto/proxy.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A v2 header into buf: the fixed part, then body (addresses and TLVs). */
static size_t v2(uint8_t *buf, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t n)
{
    memcpy(buf, sig, 12);
    buf[12] = ver_cmd;
    buf[13] = fam;
    buf[14] = (uint8_t)(n >> 8);
    buf[15] = (uint8_t)n;
    memcpy(buf + 16, body, n);
    return 16 + n;
}

static void assert_v4(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    char s[INET_ADDRSTRLEN];
    assert_int_equal(a->sin_family, AF_INET);
    assert_string_equal(inet_ntop(AF_INET, &a->sin_addr, s, sizeof s), ip);
    assert_int_equal(ntohs(a->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    char s[INET6_ADDRSTRLEN];
    assert_int_equal(a->sin6_family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET6, &a->sin6_addr, s, sizeof s), ip);
    assert_int_equal(ntohs(a->sin6_port), port);
}

static long parse_str(const char *s, struct proxy_header *h)
{
    return proxy_header_parse((const uint8_t *)s, strlen(s), h);
}

static void test_v1_tcp4_and_tcp6(void **state)
{
    (void)state;
    struct proxy_header h;
    const char *l4 = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
    assert_int_equal(parse_str(l4, &h), (long)strlen(l4));
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_v4(&h.src, "192.0.2.1", 56324);
    assert_v4(&h.dst, "198.51.100.1", 443);
    const char *l6 = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
    assert_int_equal(parse_str(l6, &h), (long)strlen(l6));
    assert_v6(&h.src, "2001:db8::1", 65535);
    assert_v6(&h.dst, "2001:db8::2", 0);
}

/* The length ends at the CRLF, whatever follows (a ClientHello, STUN). */
static void test_v1_length_stops_at_crlf(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\x16\x03\x01";
    assert_int_equal(proxy_header_len((const uint8_t *)s, strlen(s)), 32);
    for (size_t n = 0; n < 32; n++)
        assert_int_equal(proxy_header_len((const uint8_t *)s, n), 0);
}

static void test_v1_unknown_keeps_socket_address(void **state)
{
    (void)state;
    struct proxy_header h;
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &h), 15);
    assert_true(h.local);
    const char *s = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_str(s, &h), (long)strlen(s));
    assert_true(h.local);
}

static void test_v1_refuses_what_is_not_exact(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",           /* LF without CR */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",        /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",        /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",           /* a port missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",       /* one field too many */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",     /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",        /* signed port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",        /* leading zero */
        "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",     /* IPv6 under TCP4 */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",             /* IPv4 under TCP6 */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",         /* no such protocol */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",       /* control byte */
        "PROXY \r\n",
    };
    struct proxy_header h;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_str(bad[i], &h), PROXY_ERR_MALFORMED);
    /* 107 bytes and still no CRLF: never a header */
    uint8_t longline[PROXY_V1_MAX];
    memset(longline, 'A', sizeof longline);
    memcpy(longline, "PROXY ", 6);
    assert_int_equal(proxy_header_len(longline, sizeof longline), PROXY_ERR_MALFORMED);
    assert_int_equal(proxy_header_len(longline, sizeof longline - 1), 0);
}

static void test_not_a_header(void **state)
{
    (void)state;
    /* a STUN Binding request, a TLS ClientHello, "GET " */
    static const uint8_t stun[] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42 };
    static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
    assert_int_equal(proxy_header_len(stun, sizeof stun), PROXY_ERR_NOT_PROXY);
    assert_int_equal(proxy_header_len(hello, sizeof hello), PROXY_ERR_NOT_PROXY);
    assert_int_equal(proxy_header_len((const uint8_t *)"GET ", 4), PROXY_ERR_NOT_PROXY);
    assert_int_equal(proxy_header_len((const uint8_t *)"PROXX", 5), PROXY_ERR_NOT_PROXY);
    assert_int_equal(proxy_header_len(sig, 11), 0); /* a v2 prefix: wait */
    uint8_t almost[12];
    memcpy(almost, sig, 12);
    almost[11] = 0x0B;
    assert_int_equal(proxy_header_len(almost, 12), PROXY_ERR_NOT_PROXY);
}

static void test_v2_ipv4_with_tlvs_skipped(void **state)
{
    (void)state;
    uint8_t body[12 + 7] = { 127, 0, 0, 5, 10, 0, 0, 1, 0x30, 0x39, 0x0D, 0x96,
                             0x04, 0x00, 0x04, 'n', 'o', 'o', 'p' }; /* PP2_TYPE_NOOP */
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x11, body, sizeof body);
    struct proxy_header h;
    for (size_t k = 0; k < 16; k++)
        assert_int_equal(proxy_header_len(buf, k), 0);
    assert_int_equal(proxy_header_len(buf, 16), (long)n);
    assert_int_equal(proxy_header_parse(buf, n, &h), (long)n);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_v4(&h.src, "127.0.0.5", 12345);
    assert_v4(&h.dst, "10.0.0.1", 3478);
    /* the TLVs need not be held to parse */
    assert_int_equal(proxy_header_parse(buf, 16 + 12, &h), (long)n);
    assert_int_equal(proxy_header_parse(buf, 16 + 11, &h), PROXY_ERR_SHORT);
}

static void test_v2_ipv6(void **state)
{
    (void)state;
    uint8_t body[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7, [16] = 0x20, [17] = 0x01, [18] = 0x0d,
                         [19] = 0xb8, [31] = 8, [32] = 0xFF, [33] = 0xFF, [34] = 0x0D, [35] = 0x96 };
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x21, body, sizeof body);
    struct proxy_header h;
    assert_int_equal(proxy_header_parse(buf, n, &h), (long)n);
    assert_v6(&h.src, "2001:db8::7", 65535);
    assert_v6(&h.dst, "2001:db8::8", 3478);
}

/* LOCAL (a health check), UNSPEC and AF_UNIX: the socket's address. */
static void test_v2_local_unspec_unix(void **state)
{
    (void)state;
    uint8_t body[216] = { 0 };
    uint8_t buf[256];
    struct proxy_header h;
    size_t n = v2(buf, 0x20, 0x00, body, 0);
    assert_int_equal(proxy_header_parse(buf, n, &h), 16);
    assert_true(h.local);
    n = v2(buf, 0x20, 0x11, body, 12); /* LOCAL with an address: ignored */
    assert_int_equal(proxy_header_parse(buf, n, &h), 28);
    assert_true(h.local);
    n = v2(buf, 0x21, 0x00, body, 0);
    assert_int_equal(proxy_header_parse(buf, n, &h), 16);
    assert_true(h.local);
    n = v2(buf, 0x21, 0x31, body, 216);
    assert_int_equal(proxy_header_parse(buf, n, &h), 232);
    assert_true(h.local);
}

static void test_v2_refuses_bad_fields(void **state)
{
    (void)state;
    uint8_t body[36] = { 0 };
    uint8_t buf[64];
    struct proxy_header h;
    size_t n = v2(buf, 0x11, 0x11, body, 12); /* version 1 in binary */
    assert_int_equal(proxy_header_len(buf, n), PROXY_ERR_MALFORMED);
    n = v2(buf, 0x22, 0x11, body, 12); /* command 2 */
    assert_int_equal(proxy_header_parse(buf, n, &h), PROXY_ERR_MALFORMED);
    n = v2(buf, 0x21, 0x41, body, 12); /* family 4 */
    assert_int_equal(proxy_header_parse(buf, n, &h), PROXY_ERR_MALFORMED);
    n = v2(buf, 0x21, 0x13, body, 12); /* transport 3 */
    assert_int_equal(proxy_header_parse(buf, n, &h), PROXY_ERR_MALFORMED);
    n = v2(buf, 0x21, 0x11, body, 11); /* IPv4 needs 12 bytes */
    assert_int_equal(proxy_header_parse(buf, n, &h), PROXY_ERR_MALFORMED);
    n = v2(buf, 0x21, 0x21, body, 12); /* IPv6 needs 36 */
    assert_int_equal(proxy_header_parse(buf, n, &h), PROXY_ERR_MALFORMED);
    /* the length says 65535 bytes follow: known, and bounded by 16 bits */
    n = v2(buf, 0x21, 0x11, body, 12);
    buf[14] = buf[15] = 0xFF;
    assert_int_equal(proxy_header_len(buf, 16), 16 + 65535);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4_and_tcp6),
        cmocka_unit_test(test_v1_length_stops_at_crlf),
        cmocka_unit_test(test_v1_unknown_keeps_socket_address),
        cmocka_unit_test(test_v1_refuses_what_is_not_exact),
        cmocka_unit_test(test_not_a_header),
        cmocka_unit_test(test_v2_ipv4_with_tlvs_skipped),
        cmocka_unit_test(test_v2_ipv6),
        cmocka_unit_test(test_v2_local_unspec_unix),
        cmocka_unit_test(test_v2_refuses_bad_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
