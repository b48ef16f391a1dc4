/*
 * fuzz_frame.c - libFuzzer target for stream reassembly with stun_frame_len.
 *
 * Design: the input is treated as a TCP byte stream delivered in chunks
 * whose sizes come from the first input byte; like a server's read loop, it
 * appends each chunk to a bounded buffer, then consumes every complete frame
 * (decoding STUN frames, parsing ChannelData frames) and stops the stream on
 * STUN_ERR_NOT_STUN. Frame lengths must always make progress and stay sane.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/stun.h"

#define FRAME_BUF (STUN_MAX_MSG + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[FRAME_BUF];
    size_t have = 0;
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    size_t pos = 0;
    while (pos < size) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        if (n > sizeof(buf) - have)
            return 0; /* a server would drop a peer this far behind */
        memcpy(buf + have, data + pos, n);
        have += n;
        pos += n;
        for (;;) {
            long fl = stun_frame_len(buf, have);
            if (fl == STUN_ERR_NOT_STUN)
                return 0; /* the caller closes the stream */
            if (fl < 0 || (fl > 0 && fl < 4) || fl > (long)(STUN_HDR_LEN + 0xFFFF + 3))
                abort();
            if (fl == 0) {
                if (have >= 4)
                    abort(); /* 4 bytes always decide */
                break;
            }
            if ((size_t)fl > have)
                break;
            if (stun_is_stun(buf, (size_t)fl)) {
                struct stun_msg m;
                if (stun_msg_decode(&m, buf, (size_t)fl) == 0) {
                    (void)stun_msg_check_fingerprint(&m);
                    if (m.len != (size_t)fl)
                        abort();
                }
            } else {
                uint16_t ch, dlen;
                const uint8_t *payload;
                /* Stream ChannelData is padded to 4, so it always fits. */
                if (stun_channel_decode(buf, (size_t)fl, &ch, &payload, &dlen) != 0)
                    abort();
                if (payload + dlen > buf + fl)
                    abort();
            }
            memmove(buf, buf + fl, have - (size_t)fl);
            have -= (size_t)fl;
        }
    }
    return 0;
}
