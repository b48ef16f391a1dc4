/*
 * fuzz_proxy.c - libFuzzer target for the PROXY header codec (proto/proxy.c).
 *
 * Design: the input is the start of a connection. The length the codec
 * gives must not change as more bytes arrive (the server consumes exactly
 * that much on the strength of a prefix, see proxy_wait.c), must never be
 * known from fewer bytes than it names for v1, and a header that parses
 * must have the length proxy_header_len gave and addresses of a family the
 * server can use.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long total = proxy_header_len(data, size);
    for (size_t n = 0; n < size && n <= PROXY_PARSE_MAX; n++) {
        long part = proxy_header_len(data, n);
        if (part != 0 && part != total)
            abort(); /* a prefix decided something the whole input contradicts */
    }
    if (total > 0 && data[0] == 'P' && (size_t)total > size)
        abort(); /* a v1 length is only known once its CRLF is seen */
    struct proxy_header h;
    memset(&h, 0, sizeof h);
    long r = proxy_header_parse(data, size, &h);
    if (r > 0) {
        if (r != total || (h.version != 1 && h.version != 2))
            abort();
        if (!h.local && ((h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6) ||
                         h.src.ss_family != h.dst.ss_family))
            abort();
    } else if (r == 0 || r < PROXY_ERR_SHORT) {
        abort();
    }
    return 0;
}
