/*
 * test_auth.c - unit tests of the credentials module (auth/auth*.c).
 *
 * Design: every expected key, hash and password is computed here
 * independently (EVP_Digest / HMAC / EVP_EncodeBlock over the literal input
 * string, or a value from an RFC), never by calling the function under test
 * twice; the RFC 5769 section 2.4 message is the end-to-end check that
 * SASLprep + key derivation produce a key the real MESSAGE-INTEGRITY
 * verifies with. Configurations are built in memory from conf_init_defaults
 * or conf_load_string.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "proto/stun.h"
#include "test/unit/rfc5769.h"

/* ---- SASLprep (RFC 4013) ------------------------------------------------ */

static void test_assert_prep(const char *in, const char *want)
{
    char out[256];
    int n = auth_saslprep(in, out, sizeof(out));
    if (n < 0)
        fail_msg("SASLprep failed (%d) on \"%s\"", n, in);
    assert_int_equal((size_t)n, strlen(want));
    assert_string_equal(out, want);
}

static void test_assert_prep_err(const char *in, int err)
{
    char out[256];
    int n = auth_saslprep(in, out, sizeof(out));
    if (n != err)
        fail_msg("SASLprep gave %d, want %d, on input starting %02x", n, err,
                 (unsigned)(uint8_t)in[0]);
}

/* RFC 4013 section 3 examples. */
static void test_saslprep_rfc4013(void **state)
{
    (void)state;
    test_assert_prep("I\xC2\xADX", "IX");     /* 1: SOFT HYPHEN mapped to nothing */
    test_assert_prep("user", "user");         /* 2: no transformation */
    test_assert_prep("USER", "USER");         /* 3: case preserved */
    test_assert_prep("\xC2\xAA", "a");        /* 4: NFKC */
    test_assert_prep("\xE2\x85\xA8", "IX");   /* 5: NFKC, ROMAN NUMERAL NINE */
    test_assert_prep_err("\x07", AUTH_ERR_PROHIBITED);          /* 6: prohibited */
    test_assert_prep_err("\xD8\xA7" "1", AUTH_ERR_PROHIBITED); /* 7: bidi */
}

static void test_saslprep_mapping(void **state)
{
    (void)state;
    /* Printable ASCII is untouched (RFC 4013: NFKC leaves it alone). */
    char ascii[96];
    for (int i = 0; i < 95; i++)
        ascii[i] = (char)(0x20 + i);
    ascii[95] = '\0';
    test_assert_prep(ascii, ascii);
    test_assert_prep("", "");
    /* C.1.2 non-ASCII spaces -> SPACE; U+200B is in C.1.2 and B.1, space wins. */
    test_assert_prep("a\xC2\xA0" "b\xE3\x80\x80" "c\xE2\x80\x82" "d", "a b c d");
    test_assert_prep("a\xE2\x80\x8B" "b", "a b");
    test_assert_prep("a\xE1\x9A\x80\xE2\x80\xAF\xE2\x81\x9F" "b", "a   b");
    /* B.1 mapped to nothing. */
    test_assert_prep("a\xCD\x8F" "b\xE1\xA0\x86" "c\xE2\x80\x8C\xE2\x80\x8D\xE2\x81\xA0"
                     "d\xEF\xB8\x80\xEF\xBB\xBF" "e",
                     "abcde");
    /* NFKC subset. */
    test_assert_prep("x\xC2\xB2\xC2\xB3\xC2\xB9\xC2\xBA", "x231o");
    test_assert_prep("\xC2\xBC", "1\xE2\x81\x84" "4");
    test_assert_prep("\xC2\xB5", "\xCE\xBC");
    test_assert_prep("\xC2\xA8", " \xCC\x88");
    test_assert_prep("\xE2\x84\xA6\xE2\x84\xAA\xE2\x84\xAB", "\xCE\xA9K\xC3\x85");
    test_assert_prep("\xEF\xBC\xA1\xEF\xBD\x82\xEF\xBC\x91\xEF\xBC\x81\xEF\xBD\x9E", "Ab1!~");
    test_assert_prep("\xE2\x85\xA0\xE2\x85\xA7\xE2\x85\xAF", "IVIIIM");
    test_assert_prep("\xE2\x85\xB1\xE2\x85\xBB\xE2\x85\xBC", "iixiil");
    /* Other non-ASCII passes through unchanged. */
    test_assert_prep("caf\xC3\xA9 \xE3\x83\x9E \xF0\x9F\x98\x80",
                     "caf\xC3\xA9 \xE3\x83\x9E \xF0\x9F\x98\x80");
    /* RFC 5769 section 2.4 password. */
    test_assert_prep("The\xC2\xADM\xC2\xAAtr\xE2\x85\xA8", "TheMatrIX");
}

static void test_saslprep_prohibited(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x01", "a\x1F", "\x7F", "\xC2\x80", "\xC2\x9F", "\xDB\x9D", "\xDC\x8F",
        "\xE1\xA0\x8E", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x81\xA1", "\xE2\x81\xA3",
        "\xEF\xBF\xB9", "\xEF\xBF\xBC", "\xF0\x9D\x85\xB3", "\xF0\x9D\x85\xBA", /* C.2.2 */
        "\xEE\x80\x80", "\xEF\xA3\xBF", "\xF3\xB0\x80\x80", "\xF4\x8F\xBF\xBD", /* C.3 */
        "\xEF\xB7\x90", "\xEF\xB7\xAF", "\xEF\xBF\xBE", "\xEF\xBF\xBF", "\xF0\x9F\xBF\xBE",
        "\xF4\x8F\xBF\xBF",                                         /* C.4 */
        "\xEF\xBF\xBD",                                             /* C.6 */
        "\xE2\xBF\xB0", "\xE2\xBF\xBB",                             /* C.7 */
        "\xCD\x80", "\xCD\x81", "\xE2\x80\x8E", "\xE2\x80\x8F", "\xE2\x80\xAA",
        "\xE2\x80\xAE", "\xE2\x81\xAA", "\xE2\x81\xAF",             /* C.8 */
        "\xF3\xA0\x80\x81", "\xF3\xA0\x80\xA0", "\xF3\xA0\x81\xBF", /* C.9 */
        /* Invalid UTF-8: overlong, surrogate, > U+10FFFF, truncated, stray. */
        "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82",
        "a\xC3", "\x80", "\xFF", "\xF8\x88\x80\x80\x80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        test_assert_prep_err(bad[i], AUTH_ERR_PROHIBITED);
}

/* RFC 3454 section 6 with RFC 4013 section 2.4. */
static void test_saslprep_bidi(void **state)
{
    (void)state;
    test_assert_prep("\xD7\x90\xD7\x91", "\xD7\x90\xD7\x91");         /* Hebrew only */
    test_assert_prep("\xD8\xA7" "1\xD8\xA8", "\xD8\xA7" "1\xD8\xA8"); /* R, EN, R */
    test_assert_prep("\xD8\xA7", "\xD8\xA7");
    test_assert_prep_err("\xD8\xA7" "a\xD8\xA8", AUTH_ERR_PROHIBITED); /* R and L */
    test_assert_prep_err("\xD7\x90\xC3\xA9\xD7\x90", AUTH_ERR_PROHIBITED);
    test_assert_prep_err("1\xD8\xA7", AUTH_ERR_PROHIBITED);            /* starts with EN */
    test_assert_prep_err("\xD8\xA7 ", AUTH_ERR_PROHIBITED);            /* ends with WS */
    test_assert_prep("abc 123", "abc 123");                          /* L only: fine */
}

static void test_saslprep_cap(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(auth_saslprep("1234567", out, sizeof(out)), 7);
    assert_string_equal(out, "1234567");
    assert_int_equal(auth_saslprep("12345678", out, sizeof(out)), AUTH_ERR_INVALID);
    /* Expansion is bounded too: VIII is 3 bytes in, 4 out. */
    assert_int_equal(auth_saslprep("abcd\xE2\x85\xA7", out, sizeof(out)), AUTH_ERR_INVALID);
    assert_int_equal(auth_saslprep("abc\xE2\x85\xA7", out, sizeof(out)), 7);
    assert_int_equal(auth_saslprep("", out, 0), AUTH_ERR_INVALID);
}

/* ---- keys and USERHASH (RFC 8489 sections 9.2.2, 14.4) ------------------- */

/* U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9 */
static const char lt_username[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf"
                                  "\xe3\x82\xb9";

static void test_rfc5769_long_term(void **state)
{
    (void)state;
    uint8_t key[AUTH_MD5_KEY_LEN];
    /* The password as typed: "The" SOFT-HYPHEN "M" U+00AA "tr" U+2168. */
    assert_int_equal(auth_key_md5(lt_username, strlen(lt_username), "example.org",
                                  "The\xC2\xADM\xC2\xAAtr\xE2\x85\xA8", key),
                     0);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, rfc5769_long_term, sizeof(rfc5769_long_term)), 0);
    assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key)), 0);
    /* A password SASLprep does not turn into TheMatrIX must fail. */
    assert_int_equal(auth_key_md5(lt_username, strlen(lt_username), "example.org",
                                  "TheMatr\xE2\x85\xA9", key),
                     0);
    assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key)), STUN_ERR_INTEGRITY);
}

static void test_digest(const EVP_MD *md, const char *in, uint8_t *out)
{
    unsigned n = 0;
    assert_int_equal(EVP_Digest(in, strlen(in), out, &n, md, NULL), 1);
}

static void test_key_md5(void **state)
{
    (void)state;
    uint8_t want[16], key[16];
    test_digest(EVP_md5(), "alice:example.org:secret", want);
    /* Also fixed from an outside tool (Python hashlib.md5). */
    static const uint8_t fixed[16] = {0x54, 0x3e, 0x1a, 0xec, 0x5d, 0x36, 0x14, 0xf0,
                                      0x31, 0x41, 0x65, 0x2d, 0x6a, 0xda, 0x51, 0xb2};
    assert_memory_equal(want, fixed, 16);
    assert_int_equal(auth_key_md5("alice", 5, "example.org", "secret", key), 0);
    assert_memory_equal(key, want, 16);
    /* user_len is honoured: trailing bytes are not part of the name. */
    assert_int_equal(auth_key_md5("alicex", 5, "example.org", "secret", key), 0);
    assert_memory_equal(key, want, 16);
    /* SASLprep applies: a soft hyphen in the password changes nothing. */
    assert_int_equal(auth_key_md5("alice", 5, "example.org", "se\xC2\xAD" "cret", key), 0);
    assert_memory_equal(key, want, 16);
    assert_int_equal(auth_key_md5("alice", 5, "example.org", "se\x01" "cret", key),
                     AUTH_ERR_PROHIBITED);
}

static void test_key_sha256(void **state)
{
    (void)state;
    uint8_t want[32], key[32];
    test_digest(EVP_sha256(), "alice:example.org:secret", want);
    assert_int_equal(auth_key_sha256("alice", 5, "example.org", "secret", key), 0);
    assert_memory_equal(key, want, 32);
    assert_int_equal(auth_key_sha256("alice", 5, "example.org", "\xEF\xBD\x93" "ecret", key), 0);
    assert_memory_equal(key, want, 32); /* full-width 's' */
    assert_int_equal(auth_key_sha256("alice", 5, "example.org", "\xEE\x80\x80", key),
                     AUTH_ERR_PROHIBITED);
}

static void test_userhash(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    test_digest(EVP_sha256(), "alice:example.org", want);
    auth_userhash("alice", 5, "example.org", got);
    assert_memory_equal(got, want, 32);
    /* RFC 8489 appendix B.1: USERHASH of the RFC 5769 username. */
    static const uint8_t b1[32] = {
        0x4a, 0x3c, 0xf3, 0x8f, 0xef, 0x69, 0x92, 0xbd, 0xa9, 0x52, 0xc6,
        0x78, 0x04, 0x17, 0xda, 0x0f, 0x24, 0x81, 0x94, 0x15, 0x56, 0x9e,
        0x60, 0xb2, 0x05, 0xc4, 0x6e, 0x41, 0x40, 0x7f, 0x17, 0x04,
    };
    auth_userhash(lt_username, strlen(lt_username), "example.org", got);
    assert_memory_equal(got, b1, 32);
}

/* ---- nonces (RFC 8489 section 9.2) --------------------------------------- */

static struct sockaddr_storage test_addr(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static const uint8_t nonce_key[32] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

static void test_nonce_format(void **state)
{
    (void)state;
    struct sockaddr_storage a = test_addr("192.0.2.1", 3478);
    char n[AUTH_NONCE_LEN + 1];
    auth_nonce_make(nonce_key, SA(a), 0x65a1b2c3u, n);
    assert_int_equal(strlen(n), AUTH_NONCE_LEN);
    /* Cookie, then base64 of the feature set 0xC00000 (bits 0 and 1 set,
     * RFC 8489 section 18.10 numbering), then the expiry in hex. */
    unsigned char feat[8];
    assert_int_equal(EVP_EncodeBlock(feat, (const unsigned char[]){0xC0, 0, 0}, 3), 4);
    assert_string_equal((char *)feat, "wAAA");
    assert_memory_equal(n, "obMatJos2wAAA65a1b2c3", 21);
    /* MAC: first 15 hex digits of HMAC-SHA256(key, expiry BE || IPv4). */
    uint8_t data[8] = {0x65, 0xa1, 0xb2, 0xc3, 192, 0, 2, 1}, mac[32];
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), nonce_key, 32, data, 8, mac, &mac_len));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_memory_equal(n + 21, hex, 15);
}

static void test_nonce_roundtrip(void **state)
{
    (void)state;
    struct sockaddr_storage v4 = test_addr("192.0.2.1", 3478);
    struct sockaddr_storage v4port = test_addr("192.0.2.1", 9999);
    struct sockaddr_storage v4other = test_addr("192.0.2.2", 3478);
    struct sockaddr_storage mapped = test_addr("::ffff:192.0.2.1", 1);
    struct sockaddr_storage v6 = test_addr("2001:db8::1", 3478);
    struct sockaddr_storage v6other = test_addr("2001:db8::2", 3478);
    char n[AUTH_NONCE_LEN + 1];
    const uint64_t exp = 1000000;

    auth_nonce_make(nonce_key, SA(v4), exp, n);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp - 10), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4port), n, AUTH_NONCE_LEN, exp), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(mapped), n, AUTH_NONCE_LEN, exp), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4other), n, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp + 1),
                     AUTH_ERR_STALE);
    /* A forged nonce is INVALID even when its expiry has passed. */
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4other), n, AUTH_NONCE_LEN, exp + 1),
                     AUTH_ERR_INVALID);

    uint8_t other_key[32];
    memcpy(other_key, nonce_key, 32);
    other_key[31] ^= 1;
    assert_int_equal(auth_nonce_check(other_key, SA(v4), n, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);

    auth_nonce_make(nonce_key, SA(mapped), exp, n);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp), 0);

    auth_nonce_make(nonce_key, SA(v6), exp, n);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v6), n, AUTH_NONCE_LEN, exp), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v6other), n, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);

    /* An address of no IP family cannot hold a nonce. */
    struct sockaddr_storage un;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(auth_nonce_check(nonce_key, SA(un), n, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);
}

static void test_nonce_malformed(void **state)
{
    (void)state;
    struct sockaddr_storage v4 = test_addr("198.51.100.7", 3478);
    char n[AUTH_NONCE_LEN + 2];
    const uint64_t exp = 0xfffffff0u;
    auth_nonce_make(nonce_key, SA(v4), exp, n);

    /* Any single changed character, anywhere, is INVALID (never STALE). */
    for (size_t i = 0; i < AUTH_NONCE_LEN; i++) {
        char t[AUTH_NONCE_LEN + 1];
        memcpy(t, n, sizeof(t));
        t[i] = t[i] == '0' ? '1' : '0';
        assert_int_equal(auth_nonce_check(nonce_key, SA(v4), t, AUTH_NONCE_LEN, exp),
                         AUTH_ERR_INVALID);
        assert_int_equal(auth_nonce_check(nonce_key, SA(v4), t, AUTH_NONCE_LEN, exp + 100),
                         AUTH_ERR_INVALID);
    }
    /* Upper-case hex is not what we emit. */
    char up[AUTH_NONCE_LEN + 1];
    memcpy(up, n, sizeof(up));
    for (size_t i = 13; i < AUTH_NONCE_LEN; i++)
        if (up[i] >= 'a' && up[i] <= 'f')
            up[i] = (char)(up[i] - 'a' + 'A');
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), up, AUTH_NONCE_LEN, exp),
                     AUTH_ERR_INVALID);
    /* Wrong length: shorter, longer (a trailing byte), empty. */
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN - 1, exp),
                     AUTH_ERR_INVALID);
    n[AUTH_NONCE_LEN] = '0';
    n[AUTH_NONCE_LEN + 1] = '\0';
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN + 1, exp),
                     AUTH_ERR_INVALID);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), n, AUTH_NONCE_LEN, exp), 0);
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), "", 0, exp), AUTH_ERR_INVALID);
    /* Someone else's nonce format (RFC 5769's). */
    assert_int_equal(auth_nonce_check(nonce_key, SA(v4), "f//499k954d6OL34oL9FSTvy64sA", 28,
                                      exp),
                     AUTH_ERR_INVALID);
}

/* ---- TURN REST API ------------------------------------------------------- */

static void test_rest_password_expected(const char *secret, const char *user, char *out)
{
    uint8_t mac[20];
    unsigned n = 0;
    assert_non_null(HMAC(EVP_sha1(), secret, (int)strlen(secret), (const uint8_t *)user,
                         strlen(user), mac, &n));
    assert_int_equal(n, 20);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)out, mac, 20), 28);
}

static void test_rest_password(void **state)
{
    (void)state;
    char want[32], got[32];
    test_rest_password_expected("north", "1700000000:alice", want);
    /* Also fixed from an outside tool (Python hmac + base64). */
    assert_string_equal(want, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
    assert_int_equal(auth_rest_password("north", "1700000000:alice", 16, got, sizeof(got)), 28);
    assert_string_equal(got, want);
    /* user_len, not the NUL, ends the username. */
    assert_int_equal(auth_rest_password("north", "1700000000:alicebob", 16, got, 29), 28);
    assert_string_equal(got, want);
    assert_int_equal(auth_rest_password("north", "1700000000:alice", 16, got, 28) < 0, 1);
    assert_int_equal(auth_rest_password("north", "1700000000:alice", 16, got, 0) < 0, 1);
}

static void test_rest_expiry(void **state)
{
    (void)state;
    static const struct {
        const char *user;
        int rc;
        uint64_t expiry;
    } cases[] = {
        {"123:alice", 0, 123},
        {"123", 0, 123},
        {"123:", 0, 123},
        {"0", 0, 0},
        {"1700000000:a:b", 0, 1700000000},
        {"18446744073709551615", 0, UINT64_MAX},
        {"00000000000000000001", 0, 1},
        {"18446744073709551616", AUTH_ERR_INVALID, 0},
        {"99999999999999999999", AUTH_ERR_INVALID, 0},
        {"99999999999999999999999", AUTH_ERR_INVALID, 0},
        {"000000000000000000001", AUTH_ERR_INVALID, 0}, /* 21 digits */
        {"abc", AUTH_ERR_INVALID, 0},
        {"", AUTH_ERR_INVALID, 0},
        {":alice", AUTH_ERR_INVALID, 0},
        {"12a:alice", AUTH_ERR_INVALID, 0},
        {"-1", AUTH_ERR_INVALID, 0},
        {" 12", AUTH_ERR_INVALID, 0},
        {"alice", AUTH_ERR_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t e = 42;
        int rc = auth_rest_expiry(cases[i].user, strlen(cases[i].user), &e);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].user, rc, cases[i].rc);
        if (rc == 0 && e != cases[i].expiry)
            fail_msg("\"%s\": expiry %llu", cases[i].user, (unsigned long long)e);
    }
    uint64_t e = 0;
    assert_int_equal(auth_rest_expiry("12x", 2, &e), 0); /* length-bounded */
    assert_int_equal(e, 12);
}

/* ---- the store ----------------------------------------------------------- */

#define NOW 1700000000u

/* alice: password; bob: MD5 key; carol: SHA-256 key; two secrets. */
static void test_conf_build(struct conf *c, size_t extra_users)
{
    conf_init_defaults(c);
    snprintf(c->realm, sizeof(c->realm), "example.org");
    c->n_users = 3 + extra_users;
    c->users = calloc(c->n_users, sizeof(*c->users));
    assert_non_null(c->users);
    snprintf(c->users[0].user, CONF_STR, "alice");
    snprintf(c->users[0].password, CONF_STR, "secret");
    snprintf(c->users[1].user, CONF_STR, "bob");
    uint8_t k[32];
    test_digest(EVP_md5(), "bob:example.org:hunter2", k);
    memcpy(c->users[1].key, k, 16);
    c->users[1].key_len = 16;
    snprintf(c->users[2].user, CONF_STR, "carol");
    test_digest(EVP_sha256(), "carol:example.org:hunter3", k);
    memcpy(c->users[2].key, k, 32);
    c->users[2].key_len = 32;
    for (size_t i = 0; i < extra_users; i++) {
        snprintf(c->users[3 + i].user, CONF_STR, "user%zu", i);
        snprintf(c->users[3 + i].password, CONF_STR, "pw%zu", i);
    }
    snprintf(c->secrets[0], CONF_STR, "old-secret");
    snprintf(c->secrets[1], CONF_STR, "new-secret");
    c->n_secrets = 2;
}

static void test_store_static(void **state)
{
    (void)state;
    struct conf c;
    test_conf_build(&c, 0);
    struct auth_store s;
    assert_int_equal(auth_store_init(&s, &c), 0);
    assert_int_equal(s.n_users, 3);
    assert_int_equal(s.n_slots, 16);
    assert_string_equal(s.realm, "example.org");

    const struct auth_user *u = auth_store_find(&s, "alice", 5);
    assert_non_null(u);
    assert_string_equal(u->name, "alice");
    assert_true(u->has_md5 && u->has_sha256);
    uint8_t want[32], keys[4][32];
    test_digest(EVP_md5(), "alice:example.org:secret", want);
    assert_memory_equal(u->md5, want, 16);
    assert_int_equal(auth_store_keys(&s, "alice", 5, AUTH_ALG_MD5, NOW, keys, 4), 1);
    assert_memory_equal(keys[0], want, 16);
    test_digest(EVP_sha256(), "alice:example.org:secret", want);
    assert_int_equal(auth_store_keys(&s, "alice", 5, AUTH_ALG_SHA256, NOW, keys, 4), 1);
    assert_memory_equal(keys[0], want, 32);

    /* USERHASH lookup (RFC 8489 section 14.4). */
    uint8_t h[32];
    test_digest(EVP_sha256(), "carol:example.org", h);
    assert_ptr_equal(auth_store_find_userhash(&s, h), auth_store_find(&s, "carol", 5));
    h[0] ^= 1;
    assert_null(auth_store_find_userhash(&s, h));

    /* Unknown names, prefixes, and lengths. */
    assert_null(auth_store_find(&s, "mallory", 7));
    assert_null(auth_store_find(&s, "alic", 4));
    assert_null(auth_store_find(&s, "alicee", 6));
    assert_int_equal(auth_store_keys(&s, "mallory", 7, AUTH_ALG_MD5, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);

    /* A configured key gives only its own algorithm. */
    test_digest(EVP_md5(), "bob:example.org:hunter2", want);
    assert_int_equal(auth_store_keys(&s, "bob", 3, AUTH_ALG_MD5, NOW, keys, 4), 1);
    assert_memory_equal(keys[0], want, 16);
    assert_int_equal(auth_store_keys(&s, "bob", 3, AUTH_ALG_SHA256, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);
    test_digest(EVP_sha256(), "carol:example.org:hunter3", want);
    assert_int_equal(auth_store_keys(&s, "carol", 5, AUTH_ALG_SHA256, NOW, keys, 4), 1);
    assert_memory_equal(keys[0], want, 32);
    assert_int_equal(auth_store_keys(&s, "carol", 5, AUTH_ALG_MD5, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);
    assert_int_equal(auth_store_keys(&s, "alice", 5, (enum auth_alg)3, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);

    auth_store_free(&s);
    conf_free(&c);
}

/* A request signed with key; which of keys[0..n) verify it? Bit mask. */
static unsigned test_which_verify(const uint8_t *key, size_t key_len, uint8_t keys[][32],
                                  int n)
{
    static const uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t buf[256];
    struct stun_enc e;
    assert_int_equal(stun_enc_init(&e, buf, sizeof(buf), STUN_ALLOCATE, STUN_CLASS_REQUEST,
                                   tid, false),
                     0);
    assert_int_equal(stun_enc_add_u32(&e, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24), 0);
    assert_int_equal(stun_enc_add_integrity(&e, key, key_len), 0);
    struct stun_msg m;
    assert_int_equal(stun_msg_decode(&m, buf, e.len), 0);
    unsigned mask = 0;
    for (int i = 0; i < n; i++)
        if (stun_msg_check_integrity(&m, keys[i], key_len) == 0)
            mask |= 1u << i;
    return mask;
}

static void test_store_rest(void **state)
{
    (void)state;
    struct conf c;
    test_conf_build(&c, 0);
    struct auth_store s;
    assert_int_equal(auth_store_init(&s, &c), 0);

    char user[64], pw[32];
    int ulen = snprintf(user, sizeof(user), "%u:dave", NOW + 3600);
    uint8_t keys[4][32], key[32];

    /* The client got its password from the new secret: two candidates, and
     * only the second verifies. */
    test_rest_password_expected("new-secret", user, pw);
    assert_int_equal(auth_key_md5(user, (size_t)ulen, "example.org", pw, key), 0);
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_MD5, NOW, keys, 4), 2);
    assert_memory_equal(keys[1], key, 16);
    assert_int_equal(test_which_verify(key, 16, keys, 2), 2u);

    test_rest_password_expected("old-secret", user, pw);
    assert_int_equal(auth_key_sha256(user, (size_t)ulen, "example.org", pw, key), 0);
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_SHA256, NOW, keys, 4), 2);
    assert_memory_equal(keys[0], key, 32);
    assert_int_equal(test_which_verify(key, 32, keys, 2), 1u);

    /* max_keys bounds the output. */
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_MD5, NOW, keys, 1), 1);

    /* Expiry exactly now is still valid; one second later it is stale. */
    ulen = snprintf(user, sizeof(user), "%u", NOW);
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_MD5, NOW, keys, 4), 2);
    ulen = snprintf(user, sizeof(user), "%u:dave", NOW - 1);
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_MD5, NOW, keys, 4),
                     AUTH_ERR_STALE);
    assert_int_equal(auth_store_keys(&s, "x123:dave", 9, AUTH_ALG_MD5, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);
    auth_store_free(&s);

    /* Without secrets, a REST-shaped name is just an unknown user. */
    c.n_secrets = 0;
    assert_int_equal(auth_store_init(&s, &c), 0);
    ulen = snprintf(user, sizeof(user), "%u:dave", NOW + 3600);
    assert_int_equal(auth_store_keys(&s, user, (size_t)ulen, AUTH_ALG_MD5, NOW, keys, 4),
                     AUTH_ERR_UNKNOWN);
    auth_store_free(&s);
    conf_free(&c);
}

static void test_store_many(void **state)
{
    (void)state;
    struct conf c;
    test_conf_build(&c, 200);
    /* A duplicate name: the first definition wins. */
    snprintf(c.users[c.n_users - 1].user, CONF_STR, "alice");
    struct auth_store s;
    assert_int_equal(auth_store_init(&s, &c), 0);
    assert_int_equal(s.n_slots, 512); /* power of two >= 2 * 203 */
    assert_int_equal(s.n_users, 202);
    uint8_t want[16];
    test_digest(EVP_md5(), "alice:example.org:secret", want);
    assert_memory_equal(auth_store_find(&s, "alice", 5)->md5, want, 16);
    for (size_t i = 0; i < 199; i++) {
        char name[32], line[96];
        int n = snprintf(name, sizeof(name), "user%zu", i);
        const struct auth_user *u = auth_store_find(&s, name, (size_t)n);
        assert_non_null(u);
        assert_string_equal(u->name, name);
        snprintf(line, sizeof(line), "%s:example.org:pw%zu", name, i);
        test_digest(EVP_md5(), line, want);
        assert_memory_equal(u->md5, want, 16);
        uint8_t h[32];
        auth_userhash(name, (size_t)n, "example.org", h);
        assert_ptr_equal(auth_store_find_userhash(&s, h), u);
    }
    auth_store_free(&s);
    conf_free(&c);
}

static void test_store_conf_string(void **state)
{
    (void)state;
    static const char text[] =
        "realm = \"example.org\";\n"
        "auth = {\n"
        "  users = ( { user = \"alice\"; password = \"secret\"; },\n"
        "            { user = \"bob\"; key = \"543e1aec5d3614f03141652d6ada51b2\"; } );\n"
        "  secrets = [ \"s1\" ];\n"
        "};\n";
    struct conf c;
    char err[CONF_ERR_LEN];
    if (conf_load_string(&c, text, "test", err, sizeof(err)) != 0)
        fail_msg("conf: %s", err);
    struct auth_store s;
    assert_int_equal(auth_store_init(&s, &c), 0);
    uint8_t keys[2][32];
    assert_int_equal(auth_store_keys(&s, "alice", 5, AUTH_ALG_MD5, NOW, keys, 2), 1);
    /* bob's key is alice's MD5 key, so both give the same bytes. */
    uint8_t k2[2][32];
    assert_int_equal(auth_store_keys(&s, "bob", 3, AUTH_ALG_MD5, NOW, k2, 2), 1);
    assert_memory_equal(keys[0], k2[0], 16);
    assert_int_equal(auth_store_keys(&s, "bob", 3, AUTH_ALG_SHA256, NOW, k2, 2),
                     AUTH_ERR_UNKNOWN);
    assert_int_equal(auth_store_keys(&s, "4000000000", 10, AUTH_ALG_MD5, NOW, k2, 2), 1);
    auth_store_free(&s);
    conf_free(&c);
}

static void test_store_empty(void **state)
{
    (void)state;
    struct conf c;
    conf_init_defaults(&c);
    c.n_users = 0;
    c.users = NULL;
    c.n_secrets = 0;
    struct auth_store s;
    assert_int_equal(auth_store_init(&s, &c), 0);
    uint8_t keys[1][32], h[32] = {0};
    assert_null(auth_store_find(&s, "alice", 5));
    assert_null(auth_store_find_userhash(&s, h));
    assert_int_equal(auth_store_keys(&s, "alice", 5, AUTH_ALG_MD5, NOW, keys, 1),
                     AUTH_ERR_UNKNOWN);
    auth_store_free(&s);
    auth_store_free(&s); /* idempotent */
    conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saslprep_rfc4013),
        cmocka_unit_test(test_saslprep_mapping),
        cmocka_unit_test(test_saslprep_prohibited),
        cmocka_unit_test(test_saslprep_bidi),
        cmocka_unit_test(test_saslprep_cap),
        cmocka_unit_test(test_rfc5769_long_term),
        cmocka_unit_test(test_key_md5),
        cmocka_unit_test(test_key_sha256),
        cmocka_unit_test(test_userhash),
        cmocka_unit_test(test_nonce_format),
        cmocka_unit_test(test_nonce_roundtrip),
        cmocka_unit_test(test_nonce_malformed),
        cmocka_unit_test(test_rest_password),
        cmocka_unit_test(test_rest_expiry),
        cmocka_unit_test(test_store_static),
        cmocka_unit_test(test_store_rest),
        cmocka_unit_test(test_store_many),
        cmocka_unit_test(test_store_conf_string),
        cmocka_unit_test(test_store_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
