/*
 * stun.c - STUN decoder: header and attribute validation, value accessors,
 * FINGERPRINT and MESSAGE-INTEGRITY checks, ChannelData and stream framing.
 *
 * Design: stun_msg_decode walks the TLVs once, checks every length against
 * the buffer and records (type, len, off) triples; accessors re-check the
 * value they read so a caller cannot overrun by asking for the wrong type.
 * Nothing is copied except for the integrity check, which needs the header
 * length rewritten (RFC 8489 section 14.5) and so hashes a stack copy.
 */
#include "proto/stun.h"

#include <limits.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static uint16_t stun_get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t stun_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Lengths the RFCs fix; -1: variable. A wrong one means the sender is broken
 * or hostile, and accessors would otherwise have to guess (RFC 8489 15). */
static int stun_attr_fixed_len(uint16_t type)
{
    switch (type) {
    case STUN_ATTR_MESSAGE_INTEGRITY: return 20;
    case STUN_ATTR_FINGERPRINT:
    case STUN_ATTR_LIFETIME:
    case STUN_ATTR_PRIORITY:
    case STUN_ATTR_CHANGE_REQUEST:
    case STUN_ATTR_CHANNEL_NUMBER:
    case STUN_ATTR_REQUESTED_TRANSPORT:
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY:
    case STUN_ATTR_CONNECTION_ID:
    case STUN_ATTR_RESPONSE_PORT:
    case STUN_ATTR_CACHE_TIMEOUT:
        return 4;
    case STUN_ATTR_RESERVATION_TOKEN:
    case STUN_ATTR_ICE_CONTROLLED:
    case STUN_ATTR_ICE_CONTROLLING:
        return 8;
    case STUN_ATTR_EVEN_PORT: return 1;
    case STUN_ATTR_DONT_FRAGMENT:
    case STUN_ATTR_USE_CANDIDATE:
        return 0;
    }
    return -1;
}

static int stun_attr_check_len(uint16_t type, uint16_t len)
{
    if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
        /* RFC 8489 section 14.6: truncation allowed down to 16, in 4s. */
        if (len < 16 || len > 32 || len % 4)
            return STUN_ERR_ATTR;
        return 0;
    }
    int fixed = stun_attr_fixed_len(type);
    if (fixed >= 0 && len != fixed)
        return STUN_ERR_ATTR;
    return 0;
}

static void stun_msg_note_unknown(struct stun_msg *m, uint16_t type)
{
    if (type >= 0x8000 || stun_attr_is_known(type))
        return;
    for (uint16_t i = 0; i < m->n_unknown; i++)
        if (m->unknown[i] == type)
            return;
    if (m->n_unknown < STUN_MAX_UNKNOWN)
        m->unknown[m->n_unknown++] = type;
}

static int stun_msg_index_attrs(struct stun_msg *m);

int stun_msg_decode(struct stun_msg *m, const uint8_t *buf, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->integrity = m->integrity256 = m->fingerprint = -1;
    if (buf == NULL || len < STUN_HDR_LEN)
        return STUN_ERR_SHORT;
    if (buf[0] & 0xC0)
        return STUN_ERR_NOT_STUN;
    size_t body = stun_get_be16(buf + 2);
    if (body % 4)
        return STUN_ERR_LENGTH;
    if (body > len - STUN_HDR_LEN)
        return STUN_ERR_SHORT;
    if (body < len - STUN_HDR_LEN)
        return STUN_ERR_LENGTH;

    uint16_t t = stun_get_be16(buf);
    m->buf = buf;
    m->len = len;
    m->method = (uint16_t)((t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2));
    m->cls = (uint8_t)(((t & 0x0010) >> 4) | ((t & 0x0100) >> 7));
    /* RFC 5389 section 12: no magic cookie means an RFC 3489 peer, whose
     * transaction ID covers the cookie's place too. */
    m->classic = stun_get_be32(buf + 4) != STUN_MAGIC;
    m->tid = m->classic ? buf + 4 : buf + 8;

    int rc = stun_msg_index_attrs(m);
    if (rc < 0) {
        /* Header fields stay valid so the caller can still answer 400 with
         * the right transaction ID (RFC 8489 section 6.3.1); a half-built
         * index must not be trusted though. */
        m->n_attrs = m->n_unknown = 0;
        m->integrity = m->integrity256 = m->fingerprint = -1;
    }
    return rc;
}

static int stun_msg_index_attrs(struct stun_msg *m)
{
    const uint8_t *buf = m->buf;
    size_t len = m->len;
    size_t off = STUN_HDR_LEN;
    while (off < len) {
        if (len - off < 4)
            return STUN_ERR_ATTR;
        uint16_t type = stun_get_be16(buf + off);
        uint16_t alen = stun_get_be16(buf + off + 2);
        size_t padded = ((size_t)alen + 3) & ~(size_t)3;
        if (padded > len - off - 4)
            return STUN_ERR_ATTR;
        size_t voff = off + 4;
        off = voff + padded;

        /* RFC 8489 sections 14.5-14.7: only MESSAGE-INTEGRITY-SHA256 and
         * FINGERPRINT may follow MESSAGE-INTEGRITY, only FINGERPRINT may
         * follow MESSAGE-INTEGRITY-SHA256, nothing follows FINGERPRINT;
         * anything else there is not covered by the hash and is ignored. */
        if (m->fingerprint >= 0)
            continue;
        if (m->integrity256 >= 0 && type != STUN_ATTR_FINGERPRINT)
            continue;
        if (m->integrity >= 0 && type != STUN_ATTR_FINGERPRINT &&
            type != STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
            continue;

        /* struct stun_attr keeps 16-bit offsets; only a stream frame near
         * the 64 KiB limit can reach past them, and no sane peer sends one. */
        if (voff > UINT16_MAX)
            return STUN_ERR_ATTR;
        int rc = stun_attr_check_len(type, alen);
        if (rc < 0)
            return rc;
        if (m->n_attrs >= STUN_MAX_ATTRS)
            return STUN_ERR_TOO_MANY;
        int idx = m->n_attrs++;
        m->attrs[idx] = (struct stun_attr){.type = type, .len = alen, .off = (uint16_t)voff};
        if (type == STUN_ATTR_MESSAGE_INTEGRITY)
            m->integrity = idx;
        else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
            m->integrity256 = idx;
        else if (type == STUN_ATTR_FINGERPRINT)
            m->fingerprint = idx;
        else
            stun_msg_note_unknown(m, type);
    }
    return 0;
}

const struct stun_attr *stun_attr_find(const struct stun_msg *m, uint16_t type)
{
    for (uint16_t i = 0; i < m->n_attrs; i++)
        if (m->attrs[i].type == type)
            return &m->attrs[i];
    return NULL;
}

int stun_attr_get_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out)
{
    if (a == NULL)
        return STUN_ERR_NOT_FOUND;
    if (a->len != 4)
        return STUN_ERR_VALUE;
    *out = stun_get_be32(m->buf + a->off);
    return 0;
}

/* Shared by both address forms; xor_key is the 16 bytes from offset 4 (cookie
 * and transaction ID, RFC 8489 section 14.2) or NULL for plain addresses. */
static int stun_attr_parse_addr(const struct stun_msg *m, const struct stun_attr *a,
                                const uint8_t *xor_key, struct sockaddr_storage *out)
{
    if (a == NULL)
        return STUN_ERR_NOT_FOUND;
    if (a->len < 4)
        return STUN_ERR_VALUE;
    const uint8_t *v = m->buf + a->off;
    uint16_t port = stun_get_be16(v + 2);
    uint8_t addr[16];
    size_t alen;
    if (v[1] == 0x01 && a->len == 8)
        alen = 4;
    else if (v[1] == 0x02 && a->len == 20)
        alen = 16;
    else
        return STUN_ERR_VALUE;
    memcpy(addr, v + 4, alen);
    if (xor_key) {
        port ^= stun_get_be16(xor_key);
        for (size_t i = 0; i < alen; i++)
            addr[i] ^= xor_key[i];
    }
    memset(out, 0, sizeof(*out));
    if (alen == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        memcpy(&sin6->sin6_addr, addr, 16);
    }
    return 0;
}

int stun_attr_get_addr(const struct stun_msg *m, const struct stun_attr *a,
                       struct sockaddr_storage *out)
{
    return stun_attr_parse_addr(m, a, NULL, out);
}

int stun_attr_get_xaddr(const struct stun_msg *m, const struct stun_attr *a,
                        struct sockaddr_storage *out)
{
    /* buf+4 is the cookie then the 96-bit tid: exactly the XOR mask. For a
     * classic message the same bytes are its tid, which is what the encoder
     * uses too, so classic peers round-trip. */
    return stun_attr_parse_addr(m, a, m->buf + 4, out);
}

int stun_attr_get_error(const struct stun_msg *m, const struct stun_attr *a, int *code,
                        const char **reason, size_t *reason_len)
{
    if (a == NULL)
        return STUN_ERR_NOT_FOUND;
    if (a->len < 4)
        return STUN_ERR_VALUE;
    const uint8_t *v = m->buf + a->off;
    int cls = v[2] & 0x07, num = v[3];
    /* RFC 8489 section 14.8: class 3-6, number 0-99. */
    if (cls < 3 || cls > 6 || num > 99)
        return STUN_ERR_VALUE;
    *code = cls * 100 + num;
    if (reason)
        *reason = (const char *)v + 4;
    if (reason_len)
        *reason_len = (size_t)a->len - 4;
    return 0;
}

bool stun_msg_check_fingerprint(const struct stun_msg *m)
{
    if (m->fingerprint < 0)
        return false;
    const struct stun_attr *a = &m->attrs[m->fingerprint];
    size_t hdr_off = (size_t)a->off - 4;
    /* RFC 8489 section 14.7: the length field covers FINGERPRINT itself;
     * attributes ignored after it must not count. */
    uint8_t hdr[STUN_HDR_LEN];
    memcpy(hdr, m->buf, STUN_HDR_LEN);
    size_t covered = (size_t)a->off + 4 - STUN_HDR_LEN;
    hdr[2] = (uint8_t)(covered >> 8);
    hdr[3] = (uint8_t)covered;
    uint32_t crc = stun_crc32(0, hdr, STUN_HDR_LEN);
    crc = stun_crc32(crc, m->buf + STUN_HDR_LEN, hdr_off - STUN_HDR_LEN);
    return (crc ^ STUN_FINGERPRINT_XOR) == stun_get_be32(m->buf + a->off);
}

static int stun_msg_check_hmac(const struct stun_msg *m, int idx, const EVP_MD *md,
                               const uint8_t *key, size_t key_len)
{
    static const uint8_t no_key = 0;
    if (idx < 0)
        return STUN_ERR_NOT_FOUND;
    if ((key == NULL && key_len) || key_len > INT_MAX)
        return STUN_ERR_INTEGRITY;
    const struct stun_attr *a = &m->attrs[idx];
    size_t hdr_off = (size_t)a->off - 4;
    size_t covered = (size_t)a->off + a->len - STUN_HDR_LEN;
    /* RFC 8489 section 14.5: hash everything before the attribute, with the
     * length field as if the attribute were the last one. A copy because
     * the caller's buffer is const and HMAC() takes one contiguous range. */
    uint8_t copy[STUN_MAX_MSG];
    memcpy(copy, m->buf, hdr_off);
    copy[2] = (uint8_t)(covered >> 8);
    copy[3] = (uint8_t)covered;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(md, key_len ? (const void *)key : &no_key, (int)key_len, copy, hdr_off, mac,
             &mac_len) == NULL || mac_len < a->len)
        return STUN_ERR_INTEGRITY;
    if (CRYPTO_memcmp(mac, m->buf + a->off, a->len) != 0)
        return STUN_ERR_INTEGRITY;
    return 0;
}

int stun_msg_check_integrity(const struct stun_msg *m, const uint8_t *key, size_t key_len)
{
    return stun_msg_check_hmac(m, m->integrity, EVP_sha1(), key, key_len);
}

int stun_msg_check_integrity_sha256(const struct stun_msg *m, const uint8_t *key,
                                    size_t key_len)
{
    return stun_msg_check_hmac(m, m->integrity256, EVP_sha256(), key, key_len);
}

int stun_channel_decode(const uint8_t *buf, size_t len, uint16_t *channel,
                        const uint8_t **data, uint16_t *data_len)
{
    if (len < STUN_CHANNEL_HDR_LEN)
        return STUN_ERR_SHORT;
    uint16_t ch = stun_get_be16(buf);
    if (ch < STUN_CHANNEL_MIN || ch > STUN_CHANNEL_MAX)
        return STUN_ERR_NOT_STUN;
    uint16_t dlen = stun_get_be16(buf + 2);
    /* RFC 8656 section 12.5: bytes beyond dlen are padding, not an error. */
    if ((size_t)dlen > len - STUN_CHANNEL_HDR_LEN)
        return STUN_ERR_SHORT;
    *channel = ch;
    *data = buf + STUN_CHANNEL_HDR_LEN;
    *data_len = dlen;
    return 0;
}

void stun_channel_encode_hdr(uint8_t *buf, uint16_t channel, uint16_t data_len)
{
    buf[0] = (uint8_t)(channel >> 8);
    buf[1] = (uint8_t)channel;
    buf[2] = (uint8_t)(data_len >> 8);
    buf[3] = (uint8_t)data_len;
}

long stun_frame_len(const uint8_t *buf, size_t avail)
{
    if (avail < 4)
        return 0;
    uint16_t first = stun_get_be16(buf);
    uint16_t len = stun_get_be16(buf + 2);
    switch (buf[0] & 0xC0) {
    case 0x00:
        /* RFC 8489 section 5: STUN bodies are whole 32-bit words. */
        if (len % 4)
            return STUN_ERR_NOT_STUN;
        return STUN_HDR_LEN + (long)len;
    case 0x40:
        /* RFC 8656 section 12.5: over streams ChannelData is padded to 4. */
        if (first < STUN_CHANNEL_MIN || first > STUN_CHANNEL_MAX)
            return STUN_ERR_NOT_STUN;
        return STUN_CHANNEL_HDR_LEN + (((long)len + 3) & ~3L);
    }
    return STUN_ERR_NOT_STUN;
}
