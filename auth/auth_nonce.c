/*
 * auth_nonce.c - stateless nonces (RFC 8489 section 9.2) and TURN REST API
 * ephemeral credentials (draft-uberti-behave-turn-rest-00 section 2.2).
 *
 * Design: a nonce carries its own expiry and a MAC binding that expiry to the
 * client IP under a per-process key, so the server keeps no nonce table and
 * any worker can check any nonce. Layout, exactly AUTH_NONCE_LEN (36) chars:
 *
 *   "obMatJos2"  the RFC 8489 section 9.2 nonce cookie (9)
 *   "wAAA"       base64 of the 24-bit security feature set (4): bit 0 the
 *                MSB (RFC 8489 section 18.10 numbering); bit 0 "Password
 *                algorithms" and bit 1 "Username anonymity" set -> 0xC00000
 *   8 hex        expiry, uint32 seconds on the caller's clock, big-endian
 *   15 hex       first 60 bits of HMAC-SHA256(key, expiry BE32 || client IP)
 *
 * The client IP is 4 bytes for IPv4 and for IPv4-mapped IPv6 (a dual-stack
 * socket may show the same client either way), else 16. Checking re-makes
 * the nonce from its own expiry and compares all 36 bytes in constant time,
 * so a forged MAC is INVALID before its expiry is even considered; only a
 * genuine nonce can be STALE (RFC 8489 section 9.2.5 answers 438 to that).
 * 60 bits of MAC make a blind forgery a 2^-60 guess per request.
 *
 * Expiries beyond 2106 (uint32 overflow) are truncated to 32 bits.
 */
#include "auth/auth.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define AUTH_NONCE_PREFIX "obMatJos2wAAA"
#define AUTH_NONCE_PREFIX_LEN 13
#define AUTH_NONCE_EXPIRY_HEX 8
#define AUTH_NONCE_MAC_HEX 15

/* HMAC-SHA1 output, and its base64 (28 chars) plus NUL. */
#define AUTH_SHA1_LEN 20
#define AUTH_REST_PASSWORD_LEN 28

/* The client IP bytes the nonce is bound to; 0 for an unknown family. */
static size_t auth_client_ip(const struct sockaddr *sa, uint8_t ip[16])
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        memcpy(ip, &a->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            memcpy(ip, a->sin6_addr.s6_addr + 12, 4);
            return 4;
        }
        memcpy(ip, &a->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static void auth_hex_put(char *out, const uint8_t *b, size_t n_chars)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n_chars; i++)
        out[i] = hex[(i % 2 ? b[i / 2] : b[i / 2] >> 4) & 0x0F];
}

/* The nonce for (expiry, ip), AUTH_NONCE_LEN chars, no NUL. */
static void auth_nonce_build(const uint8_t key[32], const uint8_t *ip, size_t ip_len,
                             uint32_t expiry, char *out)
{
    uint8_t data[4 + 16];
    data[0] = (uint8_t)(expiry >> 24);
    data[1] = (uint8_t)(expiry >> 16);
    data[2] = (uint8_t)(expiry >> 8);
    data[3] = (uint8_t)expiry;
    memcpy(data + 4, ip, ip_len);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(EVP_sha256(), key, 32, data, 4 + ip_len, mac, &mac_len))
        memset(mac, 0, sizeof(mac)); /* cannot happen; never a valid nonce */
    memcpy(out, AUTH_NONCE_PREFIX, AUTH_NONCE_PREFIX_LEN);
    auth_hex_put(out + AUTH_NONCE_PREFIX_LEN, data, AUTH_NONCE_EXPIRY_HEX);
    auth_hex_put(out + AUTH_NONCE_PREFIX_LEN + AUTH_NONCE_EXPIRY_HEX, mac,
                 AUTH_NONCE_MAC_HEX);
}

void auth_nonce_make(const uint8_t key[32], const struct sockaddr *client, uint64_t expiry,
                     char *out)
{
    uint8_t ip[16];
    size_t ip_len = auth_client_ip(client, ip);
    auth_nonce_build(key, ip, ip_len, (uint32_t)expiry, out);
    out[AUTH_NONCE_LEN] = '\0';
}

static int auth_hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* we only emit lower case */
}

int auth_nonce_check(const uint8_t key[32], const struct sockaddr *client, const char *nonce,
                     size_t len, uint64_t now)
{
    if (!nonce || len != AUTH_NONCE_LEN ||
        memcmp(nonce, AUTH_NONCE_PREFIX, AUTH_NONCE_PREFIX_LEN) != 0)
        return AUTH_ERR_INVALID;
    uint32_t expiry = 0;
    for (size_t i = AUTH_NONCE_PREFIX_LEN; i < AUTH_NONCE_LEN; i++) {
        int v = auth_hex_val(nonce[i]);
        if (v < 0)
            return AUTH_ERR_INVALID;
        if (i < AUTH_NONCE_PREFIX_LEN + AUTH_NONCE_EXPIRY_HEX)
            expiry = (expiry << 4) | (uint32_t)v;
    }
    uint8_t ip[16];
    size_t ip_len = auth_client_ip(client, ip);
    if (ip_len == 0)
        return AUTH_ERR_INVALID;
    char want[AUTH_NONCE_LEN];
    auth_nonce_build(key, ip, ip_len, expiry, want);
    if (CRYPTO_memcmp(want, nonce, AUTH_NONCE_LEN) != 0)
        return AUTH_ERR_INVALID;
    return (uint64_t)expiry < now ? AUTH_ERR_STALE : 0;
}

int auth_rest_expiry(const char *user, size_t user_len, uint64_t *expiry)
{
    /* "<unix-expiry>" or "<unix-expiry>:<anything>": 1-20 decimal digits,
     * within uint64. */
    uint64_t v = 0;
    size_t i = 0;
    for (; i < user_len && user[i] != ':'; i++) {
        if (user[i] < '0' || user[i] > '9' || i >= 20)
            return AUTH_ERR_INVALID;
        unsigned d = (unsigned)(user[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return AUTH_ERR_INVALID;
        v = v * 10 + d;
    }
    if (i == 0)
        return AUTH_ERR_INVALID;
    *expiry = v;
    return 0;
}

int auth_rest_password(const char *secret, const char *user, size_t user_len, char *out,
                       size_t cap)
{
    if (cap < AUTH_REST_PASSWORD_LEN + 1)
        return AUTH_ERR_INVALID;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)user, user_len,
              mac, &mac_len) ||
        mac_len != AUTH_SHA1_LEN)
        return AUTH_ERR_INVALID;
    /* EVP_EncodeBlock writes the NUL too: 28 + 1 bytes. */
    int n = EVP_EncodeBlock((unsigned char *)out, mac, AUTH_SHA1_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));
    return n;
}
