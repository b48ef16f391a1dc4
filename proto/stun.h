/*
 * stun.h - a pure STUN/TURN codec (RFC 8489, RFC 5389, RFC 3489 compatibility,
 * RFC 8656, RFC 5780, RFC 6062, RFC 6156, RFC 8016 attribute types).
 *
 * Design: decoding validates a message held in a caller-owned buffer and
 * indexes its attributes by offset; nothing is copied and nothing is
 * allocated. Encoding appends attributes into a caller-owned buffer with a
 * bounds check on every append. No sockets, no globals, no libevent: the only
 * dependencies are libc and OpenSSL's hash functions, so this module can be
 * fuzzed on its own.
 *
 * Wire header (RFC 8489 section 5):
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0|     STUN Message Type     |         Message Length        |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                         Magic Cookie                          |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                     Transaction ID (96 bits)                  |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * A classic RFC 3489 message has no magic cookie: its transaction ID is the
 * whole 128 bits from offset 4.
 */
#ifndef TERN_PROTO_STUN_H
#define TERN_PROTO_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define STUN_HDR_LEN 20
#define STUN_MAGIC 0x2112A442u
#define STUN_FINGERPRINT_XOR 0x5354554Eu
#define STUN_TID_LEN 12
#define STUN_CLASSIC_TID_LEN 16
#define STUN_MAX_ATTRS 40   /* more attributes than this: message rejected */
#define STUN_MAX_UNKNOWN 8  /* unknown comprehension-required types reported */
#define STUN_MAX_MSG 65535 + STUN_HDR_LEN

/* Negative error codes returned by this module. */
enum stun_err {
    STUN_ERR_SHORT = -1,     /* fewer bytes than the header or the length says */
    STUN_ERR_NOT_STUN = -2,  /* top two bits set, or ChannelData, or bad type */
    STUN_ERR_LENGTH = -3,    /* length not a multiple of 4 / mismatch */
    STUN_ERR_ATTR = -4,      /* attribute overruns, bad padding/length */
    STUN_ERR_TOO_MANY = -5,  /* more than STUN_MAX_ATTRS attributes */
    STUN_ERR_SPACE = -6,     /* encoder: buffer too small */
    STUN_ERR_VALUE = -7,     /* attribute value malformed (bad family, length) */
    STUN_ERR_NOT_FOUND = -8, /* attribute absent */
    STUN_ERR_INTEGRITY = -9, /* MESSAGE-INTEGRITY(-SHA256) mismatch */
    STUN_ERR_FINGERPRINT = -10,
};

enum stun_class {
    STUN_CLASS_REQUEST = 0,
    STUN_CLASS_INDICATION = 1,
    STUN_CLASS_SUCCESS = 2,
    STUN_CLASS_ERROR = 3,
};

enum stun_method {
    STUN_BINDING = 0x001,
    STUN_ALLOCATE = 0x003,
    STUN_REFRESH = 0x004,
    STUN_SEND = 0x006,
    STUN_DATA = 0x007,
    STUN_CREATE_PERMISSION = 0x008,
    STUN_CHANNEL_BIND = 0x009,
    STUN_CONNECT = 0x00A,
    STUN_CONNECTION_BIND = 0x00B,
    STUN_CONNECTION_ATTEMPT = 0x00C,
};

enum stun_attr_type {
    /* comprehension-required (0x0000-0x7FFF) */
    STUN_ATTR_MAPPED_ADDRESS = 0x0001,
    STUN_ATTR_RESPONSE_ADDRESS = 0x0002, /* RFC 3489, obsolete */
    STUN_ATTR_CHANGE_REQUEST = 0x0003,   /* RFC 5780 */
    STUN_ATTR_SOURCE_ADDRESS = 0x0004,   /* RFC 3489 */
    STUN_ATTR_CHANGED_ADDRESS = 0x0005,  /* RFC 3489 */
    STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_PASSWORD = 0x0007, /* RFC 3489 */
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
    STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    STUN_ATTR_REFLECTED_FROM = 0x000B, /* RFC 3489 */
    STUN_ATTR_CHANNEL_NUMBER = 0x000C,
    STUN_ATTR_LIFETIME = 0x000D,
    STUN_ATTR_XOR_PEER_ADDRESS = 0x0012,
    STUN_ATTR_DATA = 0x0013,
    STUN_ATTR_REALM = 0x0014,
    STUN_ATTR_NONCE = 0x0015,
    STUN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
    STUN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017, /* RFC 6156 */
    STUN_ATTR_EVEN_PORT = 0x0018,
    STUN_ATTR_REQUESTED_TRANSPORT = 0x0019,
    STUN_ATTR_DONT_FRAGMENT = 0x001A,
    STUN_ATTR_ACCESS_TOKEN = 0x001B, /* RFC 7635 */
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E,
    STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_ATTR_RESERVATION_TOKEN = 0x0022,
    STUN_ATTR_PRIORITY = 0x0024,
    STUN_ATTR_USE_CANDIDATE = 0x0025,
    STUN_ATTR_PADDING = 0x0026,       /* RFC 5780 */
    STUN_ATTR_RESPONSE_PORT = 0x0027, /* RFC 5780 */
    STUN_ATTR_CONNECTION_ID = 0x002A, /* RFC 6062 */
    /* comprehension-optional (0x8000-0xFFFF) */
    STUN_ATTR_ADDITIONAL_ADDRESS_FAMILY = 0x8000, /* RFC 8656 */
    STUN_ATTR_ADDRESS_ERROR_CODE = 0x8001,        /* RFC 8656 */
    STUN_ATTR_PASSWORD_ALGORITHMS = 0x8002,
    STUN_ATTR_ALTERNATE_DOMAIN = 0x8003,
    STUN_ATTR_ICMP = 0x8004, /* RFC 8656 */
    STUN_ATTR_SOFTWARE = 0x8022,
    STUN_ATTR_ALTERNATE_SERVER = 0x8023,
    STUN_ATTR_TRANSACTION_TRANSMIT_COUNTER = 0x8025, /* RFC 7982 */
    STUN_ATTR_CACHE_TIMEOUT = 0x8027,                /* RFC 5780 */
    STUN_ATTR_FINGERPRINT = 0x8028,
    STUN_ATTR_ICE_CONTROLLED = 0x8029,
    STUN_ATTR_ICE_CONTROLLING = 0x802A,
    STUN_ATTR_RESPONSE_ORIGIN = 0x802B, /* RFC 5780 */
    STUN_ATTR_OTHER_ADDRESS = 0x802C,   /* RFC 5780 */
    STUN_ATTR_ECN_CHECK = 0x802D,       /* RFC 6679 */
    STUN_ATTR_THIRD_PARTY_AUTHORIZATION = 0x802E, /* RFC 7635 */
    STUN_ATTR_ORIGIN = 0x802F,                    /* draft-ietf-tram-stun-origin, as coturn */
    STUN_ATTR_MOBILITY_TICKET = 0x8030,           /* RFC 8016 */
};

/* CHANGE-REQUEST flags (RFC 5780 section 7.2). */
#define STUN_CHANGE_IP 0x04u
#define STUN_CHANGE_PORT 0x02u

/* One attribute of a decoded message: value at msg->buf + off, len bytes
 * (padding excluded). */
struct stun_attr {
    uint16_t type;
    uint16_t len;
    uint16_t off;
};

/*
 * A decoded message: a view over the caller's buffer. buf is borrowed, not
 * owned: the caller keeps it alive and unchanged while the view is used.
 * Attributes after MESSAGE-INTEGRITY are ignored except MESSAGE-INTEGRITY-
 * SHA256 and FINGERPRINT, and after MESSAGE-INTEGRITY-SHA256 only
 * FINGERPRINT (RFC 8489 section 14.5/14.6); attributes after FINGERPRINT
 * are ignored. Ignored attributes are not in attrs[].
 */
struct stun_msg {
    const uint8_t *buf;
    size_t len;            /* header + body, exactly as the length field says */
    uint16_t method;       /* 12 bits */
    uint8_t cls;           /* enum stun_class */
    bool classic;          /* RFC 3489: no magic cookie */
    const uint8_t *tid;    /* buf+8 (12 bytes) or buf+4 (16 bytes) if classic */
    uint16_t n_attrs;
    struct stun_attr attrs[STUN_MAX_ATTRS];
    int integrity;         /* index in attrs[] of MESSAGE-INTEGRITY, or -1 */
    int integrity256;      /* index of MESSAGE-INTEGRITY-SHA256, or -1 */
    int fingerprint;       /* index of FINGERPRINT, or -1 */
    uint16_t n_unknown;    /* unknown comprehension-required types */
    uint16_t unknown[STUN_MAX_UNKNOWN];
};

/* Is the first byte pair a STUN message (top bits 00) rather than ChannelData
 * (01) or something else? Cheap demultiplexing test for the data path. */
static inline bool stun_is_stun(const uint8_t *buf, size_t len)
{
    return len >= STUN_HDR_LEN && (buf[0] & 0xC0) == 0;
}

/* Decode and validate a whole message of exactly `len` bytes (a datagram or
 * one stream frame). Returns 0, or a negative enum stun_err. Trailing bytes
 * beyond the header length are an error (STUN_ERR_LENGTH). Unknown
 * comprehension-required attributes do not fail decoding: they are listed in
 * unknown[] for a 420 answer. */
int stun_msg_decode(struct stun_msg *m, const uint8_t *buf, size_t len);

/* First attribute of this type, or NULL. */
const struct stun_attr *stun_attr_find(const struct stun_msg *m, uint16_t type);

/* Value accessors; each returns 0 or a negative enum stun_err. */
int stun_attr_get_u32(const struct stun_msg *m, const struct stun_attr *a, uint32_t *out);
/* MAPPED-ADDRESS style (also OTHER-ADDRESS, RESPONSE-ORIGIN, ALTERNATE-SERVER). */
int stun_attr_get_addr(const struct stun_msg *m, const struct stun_attr *a,
                       struct sockaddr_storage *out);
/* XOR-MAPPED/XOR-PEER/XOR-RELAYED-ADDRESS: un-XORed with cookie and tid. */
int stun_attr_get_xaddr(const struct stun_msg *m, const struct stun_attr *a,
                        struct sockaddr_storage *out);
/* ERROR-CODE: *code = class*100+number; reason borrowed from the buffer. */
int stun_attr_get_error(const struct stun_msg *m, const struct stun_attr *a, int *code,
                        const char **reason, size_t *reason_len);

/* FINGERPRINT present and correct (CRC-32 of the message up to it, xor
 * 0x5354554e, with the length field covering the FINGERPRINT attribute). */
bool stun_msg_check_fingerprint(const struct stun_msg *m);
/* MESSAGE-INTEGRITY (HMAC-SHA1) / MESSAGE-INTEGRITY-SHA256 over the message
 * with the length field adjusted as RFC 8489 section 14.5 says. key is the
 * short-term password or the long-term key. Returns 0, STUN_ERR_NOT_FOUND or
 * STUN_ERR_INTEGRITY. Constant-time comparison. */
int stun_msg_check_integrity(const struct stun_msg *m, const uint8_t *key, size_t key_len);
int stun_msg_check_integrity_sha256(const struct stun_msg *m, const uint8_t *key,
                                    size_t key_len);

/* Reason phrase for an error code (RFC 8489, 8656, 5780, 6062), or "Error". */
const char *stun_error_reason(int code);
/* Name of an attribute type for logs ("XOR-MAPPED-ADDRESS"), or "UNKNOWN". */
const char *stun_attr_name(uint16_t type);

/*
 * Encoder: appends into buf[0..cap). The header's length field is kept up to
 * date after each append, so the message is valid at every step.
 * buf is borrowed from the caller for the encoder's lifetime.
 */
struct stun_enc {
    uint8_t *buf;
    size_t cap;
    size_t len;
};

/* Start a message. tid is 12 bytes; or 16 bytes (whole cookie+tid area) if
 * classic is true (RFC 3489 response echoing a classic request). */
int stun_enc_init(struct stun_enc *e, uint8_t *buf, size_t cap, uint16_t method,
                  uint8_t cls, const uint8_t *tid, bool classic);
/* Append an attribute with value; pads to 4 with zero bytes. */
int stun_enc_add(struct stun_enc *e, uint16_t type, const void *val, size_t len);
int stun_enc_add_u32(struct stun_enc *e, uint16_t type, uint32_t v);
int stun_enc_add_addr(struct stun_enc *e, uint16_t type, const struct sockaddr *sa);
int stun_enc_add_xaddr(struct stun_enc *e, uint16_t type, const struct sockaddr *sa);
/* ERROR-CODE with reason (NULL: stun_error_reason(code)). */
int stun_enc_add_error(struct stun_enc *e, int code, const char *reason);
/* UNKNOWN-ATTRIBUTES listing types[0..n). */
int stun_enc_add_unknown(struct stun_enc *e, const uint16_t *types, size_t n);
int stun_enc_add_integrity(struct stun_enc *e, const uint8_t *key, size_t key_len);
int stun_enc_add_integrity_sha256(struct stun_enc *e, const uint8_t *key, size_t key_len);
int stun_enc_add_fingerprint(struct stun_enc *e);

/*
 * TURN ChannelData (RFC 8656 section 12.4): 4-byte header, channel number
 * 0x4000-0x4FFF, length of application data. Over UDP the datagram may carry
 * padding beyond len; over streams the frame is padded to a multiple of 4.
 */
/* RFC 8656 allots 0x4000-0x4FFF; RFC 5766 allowed up to 0x7FFE and real
 * clients still pick from there (coturn's turnutils_uclient does), so the
 * codec accepts the older, wider range. 0x7FFF and above stay invalid. */
#define STUN_CHANNEL_MIN 0x4000u
#define STUN_CHANNEL_MAX 0x7FFEu
#define STUN_CHANNEL_MAX_RFC8656 0x4FFFu
#define STUN_CHANNEL_HDR_LEN 4
int stun_channel_decode(const uint8_t *buf, size_t len, uint16_t *channel,
                        const uint8_t **data, uint16_t *data_len);
/* Write a ChannelData header for data_len bytes at buf (4 bytes). */
void stun_channel_encode_hdr(uint8_t *buf, uint16_t channel, uint16_t data_len);

/*
 * Stream framing for TCP/TLS (RFC 8489 section 6.2.2, RFC 8656 section 12.5):
 * looks at the first bytes of a stream and says how long the next frame is.
 * Returns the frame length in bytes (STUN: 20+length; ChannelData: 4+length
 * rounded up to 4), 0 if more bytes are needed to tell, or STUN_ERR_NOT_STUN
 * if the bytes are neither STUN nor ChannelData (the caller closes the
 * stream).
 */
long stun_frame_len(const uint8_t *buf, size_t avail);

/*
 * Helpers shared by proto/stun*.c, usable by callers too (added after the
 * contract above; nothing above depends on them).
 */
/* Is this one of the attribute types of enum stun_attr_type? Types below
 * 0x8000 that are not known make a request fail with 420 (RFC 8489 15). */
bool stun_attr_is_known(uint16_t type);
/* CRC-32 (ISO-HDLC, the one FINGERPRINT uses): start with crc = 0, feed the
 * previous result back in to continue over several pieces. */
uint32_t stun_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
