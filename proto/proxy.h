/*
 * proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends first on a TCP connection to
 * tell the server who its client is.
 *
 * Design: a pure codec, like stun.h: no sockets, no globals, no malloc. The
 * caller reads the stream; proxy_header_len says, from the bytes seen so
 * far, how long the header is (so the caller consumes exactly the header
 * and not one byte of the TLS or STUN stream behind it), and
 * proxy_header_parse turns a whole header into addresses. Nothing is
 * guessed: a header that is not exactly one of the two versions is refused,
 * and the caller closes the connection.
 *
 * Version 1 is one line of text, at most 107 bytes with its CRLF:
 *   "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"
 *   "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"
 *   "PROXY UNKNOWN ...\r\n"        (the connection's own addresses apply)
 *
 * Version 2 is binary, a 16-byte fixed part then len bytes:
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |     12-byte signature \r\n\r\n\0\r\nQUIT\n  ...                |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |ver=2 | cmd  | family| proto |            len (bytes after)    |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | addresses: IPv4 src, dst (4+4), ports (2+2) = 12;             |
 *  |            IPv6 16+16+2+2 = 36; AF_UNIX 108+108 = 216         |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | TLVs up to len (skipped)                                      |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * The LOCAL command (a balancer's own health check), the UNSPEC and
 * AF_UNIX families and v1's UNKNOWN all mean: the connection's own
 * addresses apply (proxy_header.local).
 */
#ifndef TERN_PROTO_PROXY_H
#define TERN_PROTO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107     /* the longest v1 line, CRLF included */
#define PROXY_V2_FIXED 16    /* signature, version/command, family, len */
#define PROXY_V2_ADDR_MAX 216 /* the largest address block (AF_UNIX) */
/* Enough to parse any header: v1 whole, v2 up to its addresses. */
#define PROXY_PARSE_MAX (PROXY_V2_FIXED + PROXY_V2_ADDR_MAX)

/* Negative error codes returned by this module. */
enum proxy_err {
    PROXY_ERR_NOT_PROXY = -1, /* neither signature: not a PROXY header */
    PROXY_ERR_MALFORMED = -2, /* the signature, then something invalid */
    PROXY_ERR_SHORT = -3,     /* parse: fewer bytes than the header needs */
};

/* What a header says. src and dst are meaningful only when !local. */
struct proxy_header {
    int version;                 /* 1 or 2 */
    bool local;                  /* keep the connection's own addresses */
    struct sockaddr_storage src; /* the client, as the balancer saw it */
    struct sockaddr_storage dst; /* the address the client connected to */
};

/* From the first len bytes of a stream: the header's whole length (> 0),
 * 0 when more bytes are needed to know, or a PROXY_ERR_* (not a header, or
 * a v1 line with no CRLF in its first PROXY_V1_MAX bytes). */
long proxy_header_len(const uint8_t *buf, size_t len);

/* Parses the header at buf; len is the bytes held: all of a v1 line, and
 * for v2 at least the fixed part and the address block (TLVs after it may
 * be left out: they are skipped). Returns the header's whole length, or a
 * PROXY_ERR_*. */
long proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_header *out);

#endif
