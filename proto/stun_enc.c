/*
 * stun_enc.c - STUN encoder: header, attributes, MESSAGE-INTEGRITY(-SHA256)
 * and FINGERPRINT appended into a caller-owned buffer.
 *
 * Design: every append goes through stun_enc_reserve, the only place that
 * checks space, so no writer can overrun; the header length field is
 * rewritten after each append so the buffer always holds a valid message,
 * which is what the integrity and fingerprint computations hash in place.
 */
#include "proto/stun.h"

#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define STUN_MAX_BODY 0xFFFFu
#define STUN_MAX_REASON 763 /* RFC 8489 section 14.8 */

static void stun_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void stun_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void stun_enc_set_len(struct stun_enc *e)
{
    stun_put_be16(e->buf + 2, (uint16_t)(e->len - STUN_HDR_LEN));
}

int stun_enc_init(struct stun_enc *e, uint8_t *buf, size_t cap, uint16_t method,
                  uint8_t cls, const uint8_t *tid, bool classic)
{
    e->buf = buf;
    e->cap = cap;
    e->len = 0;
    if (method > 0xFFF || cls > 3 || tid == NULL)
        return STUN_ERR_VALUE;
    if (buf == NULL || cap < STUN_HDR_LEN)
        return STUN_ERR_SPACE;
    /* RFC 8489 section 5: class bits C1 C0 sit at 8 and 4, the method bits
     * are spread around them. */
    uint16_t t = (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
                            ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
    stun_put_be16(buf, t);
    stun_put_be16(buf + 2, 0);
    if (classic) {
        memcpy(buf + 4, tid, STUN_CLASSIC_TID_LEN);
    } else {
        stun_put_be32(buf + 4, STUN_MAGIC);
        memcpy(buf + 8, tid, STUN_TID_LEN);
    }
    e->len = STUN_HDR_LEN;
    return 0;
}

/* Room for one attribute of vlen value bytes: writes its TLV header and zero
 * padding, grows the message, returns where the value goes (or NULL). */
static uint8_t *stun_enc_reserve(struct stun_enc *e, uint16_t type, size_t vlen)
{
    if (e->buf == NULL || e->len < STUN_HDR_LEN)
        return NULL;
    size_t padded = (vlen + 3) & ~(size_t)3;
    if (vlen > STUN_MAX_BODY || e->len - STUN_HDR_LEN + 4 + padded > STUN_MAX_BODY ||
        4 + padded > e->cap - e->len)
        return NULL;
    uint8_t *p = e->buf + e->len;
    stun_put_be16(p, type);
    stun_put_be16(p + 2, (uint16_t)vlen);
    /* RFC 8489 section 14: padding is sent as zeros. */
    memset(p + 4 + vlen, 0, padded - vlen);
    e->len += 4 + padded;
    stun_enc_set_len(e);
    return p + 4;
}

int stun_enc_add(struct stun_enc *e, uint16_t type, const void *val, size_t len)
{
    if (len && val == NULL)
        return STUN_ERR_VALUE;
    uint8_t *p = stun_enc_reserve(e, type, len);
    if (p == NULL)
        return STUN_ERR_SPACE;
    if (len)
        memcpy(p, val, len);
    return 0;
}

int stun_enc_add_u32(struct stun_enc *e, uint16_t type, uint32_t v)
{
    uint8_t b[4];
    stun_put_be32(b, v);
    return stun_enc_add(e, type, b, sizeof(b));
}

/* RFC 8489 sections 14.1/14.2; xor_key is the 16 bytes at offset 4 of the
 * message (cookie then tid) for the XOR form, NULL for the plain one. */
static int stun_enc_put_addr(struct stun_enc *e, uint16_t type, const struct sockaddr *sa,
                             bool xored)
{
    uint8_t v[20];
    size_t alen;
    uint16_t port;
    if (sa == NULL)
        return STUN_ERR_VALUE;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        v[1] = 0x01;
        port = ntohs(sin->sin_port);
        memcpy(v + 4, &sin->sin_addr, 4);
        alen = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        v[1] = 0x02;
        port = ntohs(sin6->sin6_port);
        memcpy(v + 4, &sin6->sin6_addr, 16);
        alen = 16;
    } else {
        return STUN_ERR_VALUE;
    }
    v[0] = 0;
    if (xored) {
        if (e->buf == NULL || e->len < STUN_HDR_LEN)
            return STUN_ERR_SPACE;
        const uint8_t *key = e->buf + 4;
        port ^= (uint16_t)((key[0] << 8) | key[1]);
        for (size_t i = 0; i < alen; i++)
            v[4 + i] ^= key[i];
    }
    stun_put_be16(v + 2, port);
    return stun_enc_add(e, type, v, 4 + alen);
}

int stun_enc_add_addr(struct stun_enc *e, uint16_t type, const struct sockaddr *sa)
{
    return stun_enc_put_addr(e, type, sa, false);
}

int stun_enc_add_xaddr(struct stun_enc *e, uint16_t type, const struct sockaddr *sa)
{
    return stun_enc_put_addr(e, type, sa, true);
}

int stun_enc_add_error(struct stun_enc *e, int code, const char *reason)
{
    if (code < 300 || code > 699)
        return STUN_ERR_VALUE;
    if (reason == NULL)
        reason = stun_error_reason(code);
    size_t rlen = strlen(reason);
    if (rlen > STUN_MAX_REASON)
        return STUN_ERR_VALUE;
    uint8_t *p = stun_enc_reserve(e, STUN_ATTR_ERROR_CODE, 4 + rlen);
    if (p == NULL)
        return STUN_ERR_SPACE;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, rlen);
    return 0;
}

int stun_enc_add_unknown(struct stun_enc *e, const uint16_t *types, size_t n)
{
    if (n && types == NULL)
        return STUN_ERR_VALUE;
    if (n > STUN_MAX_BODY / 2)
        return STUN_ERR_SPACE;
    /* RFC 8489 section 14.9 allows zero padding (RFC 3489 repeated a type). */
    uint8_t *p = stun_enc_reserve(e, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
    if (p == NULL)
        return STUN_ERR_SPACE;
    for (size_t i = 0; i < n; i++)
        stun_put_be16(p + 2 * i, types[i]);
    return 0;
}

static int stun_enc_put_hmac(struct stun_enc *e, uint16_t type, const EVP_MD *md,
                             size_t mac_len, const uint8_t *key, size_t key_len)
{
    static const uint8_t no_key = 0;
    if ((key_len && key == NULL) || key_len > INT_MAX)
        return STUN_ERR_VALUE;
    size_t start = e->len;
    /* RFC 8489 section 14.5: the length field already counts the attribute
     * being added, which reserve has done, then the hash covers everything
     * before its header. */
    uint8_t *p = stun_enc_reserve(e, type, mac_len);
    if (p == NULL)
        return STUN_ERR_SPACE;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int out_len = 0;
    if (HMAC(md, key_len ? (const void *)key : &no_key, (int)key_len, e->buf, start, mac,
             &out_len) == NULL ||
        out_len < mac_len) {
        e->len = start;
        stun_enc_set_len(e);
        return STUN_ERR_VALUE;
    }
    memcpy(p, mac, mac_len);
    return 0;
}

int stun_enc_add_integrity(struct stun_enc *e, const uint8_t *key, size_t key_len)
{
    return stun_enc_put_hmac(e, STUN_ATTR_MESSAGE_INTEGRITY, EVP_sha1(), 20, key, key_len);
}

int stun_enc_add_integrity_sha256(struct stun_enc *e, const uint8_t *key, size_t key_len)
{
    return stun_enc_put_hmac(e, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, EVP_sha256(), 32, key,
                             key_len);
}

int stun_enc_add_fingerprint(struct stun_enc *e)
{
    size_t start = e->len;
    uint8_t *p = stun_enc_reserve(e, STUN_ATTR_FINGERPRINT, 4);
    if (p == NULL)
        return STUN_ERR_SPACE;
    /* RFC 8489 section 14.7: CRC over the message up to this attribute, with
     * the length field already counting it. */
    stun_put_be32(p, stun_crc32(0, e->buf, start) ^ STUN_FINGERPRINT_XOR);
    return 0;
}
