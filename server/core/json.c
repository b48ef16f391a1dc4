/*
 * json.c - see json.h.
 */
#include "server/core/json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of a well-formed UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    size_t len = s[0] < 0xC2 ? 0 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : s[0] < 0xF5 ? 4 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* overlong forms and surrogates are not UTF-8 */
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

size_t json_quote(const char *s, size_t len, char *out, size_t cap)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t o = 0;
    if (cap < 3) {
        if (cap)
            out[0] = 0;
        return 0;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *piece = esc;
        size_t n = 0, used = 1;
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else if (c < 0x80) {
            esc[0] = (char)c;
            n = 1;
        } else if ((used = utf8_len(p + i, len - i)) > 0) {
            piece = (const char *)p + i;
            n = used;
        } else {
            piece = "\\ufffd";
            n = 6;
            used = 1;
        }
        if (o + n + 2 > cap)
            break;
        memcpy(out + o, piece, n);
        o += n;
        i += used;
    }
    out[o++] = '"';
    out[o] = 0;
    return o;
}
