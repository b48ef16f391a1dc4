/*
 * proxy_wait.c - reads a PROXY header (proto/proxy.h) off a connection a
 * balancer opened, before anything else touches the socket.
 *
 * The header must be consumed exactly: the bytes behind it are a TLS
 * ClientHello that OpenSSL reads from the descriptor itself, or STUN that
 * the bufferevent will read. So each read peeks first, asks the codec how
 * long the header is, and takes only that much. While the length is not
 * known yet, every byte peeked is still header (no CRLF yet in a v1 line,
 * fewer than 16 bytes of a v2 one) and is taken too: leaving peeked bytes in
 * the socket would keep it readable and spin the loop until the rest came.
 * So a header split over any number of segments costs one read per segment.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "server/transport/transport_int.h"

int proxy_wait_read(int fd, struct proxy_wait *w, struct proxy_header *out)
{
    uint8_t peek[PROXY_PARSE_MAX];
    ssize_t n = recv(fd, peek, sizeof peek, MSG_PEEK);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
    /* What the codec sees: the header so far, then what waits in the socket,
     * as far as the buffer goes (its size decides both versions' lengths). */
    size_t held = w->have < sizeof w->buf ? w->have : sizeof w->buf;
    size_t copy = (size_t)n < sizeof w->buf - held ? (size_t)n : sizeof w->buf - held;
    memcpy(w->buf + held, peek, copy);
    long total = proxy_header_len(w->buf, held + copy);
    if (total < 0)
        return -EPROTO;
    size_t take = (size_t)n;
    if (total > 0 && (size_t)total - w->have < take)
        take = (size_t)total - w->have;
    if (recv(fd, peek, take, 0) != (ssize_t)take)
        return -EIO; /* the kernel holds what it showed us: not reached */
    w->have += take;
    if (total == 0 || w->have < (size_t)total)
        return 0;
    held = w->have < sizeof w->buf ? w->have : sizeof w->buf;
    return proxy_header_parse(w->buf, held, out) < 0 ? -EPROTO : 1;
}
