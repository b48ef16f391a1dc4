/*
 * fuzz_stun.c - libFuzzer target for the STUN decoder and its accessors.
 *
 * Design: whatever decodes is then read through every accessor, every
 * integrity check and the framing helpers, so a length the decoder let
 * through but an accessor trusts wrongly shows up under ASan. When the input
 * decodes, it is re-encoded attribute by attribute and must decode again to
 * the same attribute list: that ties the encoder to the decoder too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/stun.h"

static const uint8_t fuzz_key[] = "VOkJxbRl1RmTxUk/WvJxBt";

static void fuzz_read_attrs(const struct stun_msg *m)
{
    for (uint16_t i = 0; i < m->n_attrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        if ((size_t)a->off + a->len > m->len)
            abort();
        uint32_t v;
        struct sockaddr_storage ss;
        int code;
        const char *reason;
        size_t reason_len;
        (void)stun_attr_get_u32(m, a, &v);
        (void)stun_attr_get_addr(m, a, &ss);
        (void)stun_attr_get_xaddr(m, a, &ss);
        if (stun_attr_get_error(m, a, &code, &reason, &reason_len) == 0) {
            if (code < 300 || code > 699 || reason + reason_len > (const char *)m->buf + m->len)
                abort();
            (void)stun_error_reason(code);
        }
        (void)stun_attr_name(a->type);
        if (stun_attr_find(m, a->type) == NULL)
            abort();
    }
}

/* Re-encode the indexed attributes and check the decoder agrees. */
static void fuzz_reencode(const struct stun_msg *m)
{
    static uint8_t out[STUN_MAX_MSG];
    struct stun_enc e;
    if (stun_enc_init(&e, out, sizeof(out), m->method, m->cls, m->tid, m->classic) != 0)
        abort();
    for (uint16_t i = 0; i < m->n_attrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        if (stun_enc_add(&e, a->type, m->buf + a->off, a->len) != 0)
            abort();
    }
    struct stun_msg r;
    if (stun_msg_decode(&r, out, e.len) != 0 || r.n_attrs != m->n_attrs ||
        r.method != m->method || r.cls != m->cls || r.classic != m->classic)
        abort();
    for (uint16_t i = 0; i < r.n_attrs; i++)
        if (r.attrs[i].type != m->attrs[i].type || r.attrs[i].len != m->attrs[i].len ||
            memcmp(r.buf + r.attrs[i].off, m->buf + m->attrs[i].off, r.attrs[i].len) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stun_msg m;
    if (stun_msg_decode(&m, data, size) == 0) {
        if (m.len != size || m.n_attrs > STUN_MAX_ATTRS || m.n_unknown > STUN_MAX_UNKNOWN)
            abort();
        fuzz_read_attrs(&m);
        (void)stun_msg_check_fingerprint(&m);
        (void)stun_msg_check_integrity(&m, fuzz_key, sizeof(fuzz_key) - 1);
        (void)stun_msg_check_integrity_sha256(&m, fuzz_key, sizeof(fuzz_key) - 1);
        fuzz_reencode(&m);
    }
    long fl = stun_frame_len(data, size);
    if (fl < 0 && fl != STUN_ERR_NOT_STUN)
        abort();
    uint16_t ch, dlen;
    const uint8_t *payload;
    if (stun_channel_decode(data, size, &ch, &payload, &dlen) == 0) {
        if (ch < STUN_CHANNEL_MIN || ch > STUN_CHANNEL_MAX || payload + dlen > data + size)
            abort();
    }
    return 0;
}
