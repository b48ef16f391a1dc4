/*
 * console_auth.c - see console_auth.h.
 *
 * The rate table is a fixed array searched linearly: 256 slots on a path
 * that runs only for wrong tokens and console requests, so a scan is cheaper
 * than a hash and has no worst case. A full table gives the slot touched
 * longest ago to the newcomer, so an attacker spreading over many addresses
 * pushes out only stale sources; every address is still held to 5 tries.
 */
#include "server/console_auth.h"

#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int console_auth_init(struct console_auth *a)
{
    memset(a, 0, sizeof *a);
    return RAND_bytes(a->key, sizeof a->key) == 1 ? 0 : -1;
}

static void auth_digest(const struct console_auth *a, const char *s, size_t len, uint8_t out[32])
{
    unsigned n = 32;
    if (!HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)s, len, out, &n))
        memset(out, 0, 32);
}

bool console_auth_token_ok(const struct console_auth *a, const char *admin, const char *given,
                           size_t len)
{
    uint8_t want[32], got[32];
    if (!admin[0])
        return false;
    auth_digest(a, admin, strlen(admin), want);
    auth_digest(a, given, len, got);
    return CRYPTO_memcmp(want, got, sizeof want) == 0;
}

void console_auth_cookie(const struct console_auth *a, const char *admin,
                         char out[CONSOLE_COOKIE_LEN + 1])
{
    uint8_t d[32];
    auth_digest(a, admin, strlen(admin), d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

bool console_auth_cookie_ok(const struct console_auth *a, const char *admin, const char *header)
{
    if (!header || !admin[0])
        return false;
    char want[CONSOLE_COOKIE_LEN + 1];
    console_auth_cookie(a, admin, want);
    bool ok = false;
    /* every tern_admin pair counts: a stale one beside a good one is fine */
    for (const char *p = header; *p;) {
        p += strspn(p, " \t;");
        size_t n = strcspn(p, ";");
        const size_t name = sizeof CONSOLE_COOKIE - 1;
        if (n == name + 1 + CONSOLE_COOKIE_LEN && strncmp(p, CONSOLE_COOKIE "=", name + 1) == 0)
            ok |= CRYPTO_memcmp(p + name + 1, want, CONSOLE_COOKIE_LEN) == 0;
        p += n;
    }
    return ok;
}

/* src's address as 16 bytes (IPv4 mapped), port left out. */
static void rate_key(const struct sockaddr *src, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (src && src->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)src)->sin6_addr, 16);
    } else if (src && src->sa_family == AF_INET) {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *)src)->sin_addr, 4);
    }
}

static struct console_rate_slot *rate_find(struct console_auth *a, const uint8_t ip[16])
{
    for (int i = 0; i < CONSOLE_RATE_SLOTS; i++)
        if (a->slot[i].used && memcmp(a->slot[i].ip, ip, 16) == 0)
            return &a->slot[i];
    return NULL;
}

bool console_rate_blocked(struct console_auth *a, const struct sockaddr *src, uint64_t now_ms)
{
    uint8_t ip[16];
    rate_key(src, ip);
    const struct console_rate_slot *s = rate_find(a, ip);
    return s && s->blocked_until_ms > now_ms;
}

bool console_rate_fail(struct console_auth *a, const struct sockaddr *src, uint64_t now_ms)
{
    uint8_t ip[16];
    rate_key(src, ip);
    struct console_rate_slot *s = rate_find(a, ip);
    if (!s) {
        s = &a->slot[0];
        for (int i = 0; i < CONSOLE_RATE_SLOTS && s->used; i++)
            if (!a->slot[i].used || a->slot[i].last_ms < s->last_ms)
                s = &a->slot[i];
        memset(s, 0, sizeof *s);
        memcpy(s->ip, ip, 16);
        s->used = true;
        s->first_ms = now_ms;
    }
    if (now_ms - s->first_ms >= CONSOLE_RATE_WINDOW_MS) {
        s->first_ms = now_ms;
        s->fails = 0;
    }
    s->last_ms = now_ms;
    if (++s->fails < CONSOLE_RATE_FAILS)
        return false;
    s->blocked_until_ms = now_ms + CONSOLE_RATE_WINDOW_MS;
    s->fails = 0;
    s->first_ms = s->blocked_until_ms;
    return true;
}

bool console_same_origin(const char *origin, const char *fetch_site, const char *host)
{
    if (!origin && !fetch_site)
        return false;
    if (fetch_site && strcmp(fetch_site, "same-origin") != 0 && strcmp(fetch_site, "none") != 0)
        return false;
    if (!origin)
        return true;
    const char *rest = NULL;
    if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8; /* behind a TLS proxy */
    return rest && host && *rest && strcasecmp(rest, host) == 0;
}

bool console_next_ok(const char *next)
{
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\' || strlen(next) > 512)
        return false;
    for (const unsigned char *p = (const unsigned char *)next; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            return false;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int console_form_value(const char *body, size_t len, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end - i > klen && memcmp(body + i, key, klen) == 0 && body[i + klen] == '=') {
            size_t n = 0;
            for (size_t j = i + klen + 1; j < end; j++) {
                char c = body[j];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    int h = j + 2 < end ? hex_digit(body[j + 1]) : -1;
                    int l = h >= 0 ? hex_digit(body[j + 2]) : -1;
                    if (l < 0)
                        return -1;
                    c = (char)(h * 16 + l);
                    j += 2;
                }
                if (c == 0 || n + 1 >= cap)
                    return -1;
                out[n++] = c;
            }
            out[n] = 0;
            return (int)n;
        }
        i = end + 1;
    }
    return -1;
}

int console_kill_path(const char *path, unsigned long long *id)
{
    static const char head[] = "/api/sessions/", tail[] = "/kill";
    if (strncmp(path, head, sizeof head - 1) != 0)
        return -1;
    const char *d = path + sizeof head - 1;
    size_t n = strspn(d, "0123456789");
    if (n < 1 || n > 20 || strcmp(d + n, tail) != 0)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned digit = (unsigned)(d[i] - '0');
        if (v > (~0ULL - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *id = v;
    return 0;
}

int console_host_name(const char *host, char *out, size_t cap)
{
    if (!host || !*host)
        return -1;
    const char *start = host, *end;
    if (host[0] == '[') {
        start = host + 1;
        end = strchr(start, ']');
        if (!end || (end[1] && end[1] != ':'))
            return -1;
    } else {
        end = strchr(host, ':');
        end = end ? end : host + strlen(host);
    }
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= cap || strspn(start, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789.-:") < n)
        return -1;
    memcpy(out, start, n);
    out[n] = 0;
    return 0;
}
