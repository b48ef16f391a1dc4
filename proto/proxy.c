/*
 * proxy.c - see proxy.h. Strict on purpose: the header decides which
 * address a session is charged to (peer policy, rate limits, quotas), so a
 * line with a stray space, a port with a sign or an address of the wrong
 * family is refused rather than read generously. Only a listener the
 * operator put behind a balancer reads a header at all.
 */
#include "proto/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof v1_sig - 1)

/* Does buf start like sig, as far as len bytes tell? */
static bool prefix_matches(const uint8_t *buf, size_t len, const void *sig, size_t sig_len)
{
    return memcmp(buf, sig, len < sig_len ? len : sig_len) == 0;
}

static long v1_len(const uint8_t *buf, size_t len)
{
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    const uint8_t *lf = memchr(buf, '\n', n);
    if (lf)
        return lf > buf && lf[-1] == '\r' ? (long)(lf - buf) + 1 : PROXY_ERR_MALFORMED;
    return len >= PROXY_V1_MAX ? PROXY_ERR_MALFORMED : 0;
}

long proxy_header_len(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (prefix_matches(buf, len, v1_sig, V1_SIG_LEN))
        return len < V1_SIG_LEN ? 0 : v1_len(buf, len);
    if (!prefix_matches(buf, len, v2_sig, sizeof v2_sig))
        return PROXY_ERR_NOT_PROXY;
    if (len < PROXY_V2_FIXED)
        return 0;
    if (buf[12] >> 4 != 2)
        return PROXY_ERR_MALFORMED;
    return PROXY_V2_FIXED + ((long)buf[14] << 8 | buf[15]);
}

/* The next space-separated token of a v1 line into tok (NUL-ended): exactly
 * one space before each token but the first. Returns its length, or -1. */
static int v1_token(const char **p, const char *end, char *tok, size_t cap)
{
    const char *s = *p;
    const char *e = memchr(s, ' ', (size_t)(end - s));
    if (!e)
        e = end;
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= cap || (e < end && e + 1 == end)) /* a space must lead to a token */
        return -1;
    memcpy(tok, s, n);
    tok[n] = '\0';
    *p = e < end ? e + 1 : end;
    return (int)n;
}

/* A v1 port: 1 to 5 decimal digits, at most 65535, no sign, no leading 0. */
static int v1_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int v1_addr(int family, const char *ip, const char *port, struct sockaddr_storage *ss)
{
    uint16_t p;
    if (v1_port(port, &p) < 0)
        return -1;
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(p);
        return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(p);
    return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1 ? 0 : -1;
}

static long v1_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    long total = v1_len(buf, len);
    if (total <= 0)
        return total < 0 ? total : PROXY_ERR_SHORT;
    const char *p = (const char *)buf + V1_SIG_LEN;
    const char *end = (const char *)buf + total - 2;
    for (const char *q = p; q < end; q++)
        if (*q < 0x20 || *q > 0x7E)
            return PROXY_ERR_MALFORMED;
    char proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sport[8], dport[8];
    out->version = 1;
    if (v1_token(&p, end, proto, sizeof proto) < 0)
        return PROXY_ERR_MALFORMED;
    if (strcmp(proto, "UNKNOWN") == 0) {
        out->local = true; /* the rest of the line is to be ignored */
        return total;
    }
    int family = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : 0;
    if (!family || v1_token(&p, end, src, sizeof src) < 0 ||
        v1_token(&p, end, dst, sizeof dst) < 0 || v1_token(&p, end, sport, sizeof sport) < 0 ||
        v1_token(&p, end, dport, sizeof dport) < 0 || p != end ||
        v1_addr(family, src, sport, &out->src) < 0 || v1_addr(family, dst, dport, &out->dst) < 0)
        return PROXY_ERR_MALFORMED;
    out->local = false;
    return total;
}

static void v2_addr4(const uint8_t *ip, const uint8_t *port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, ip, 4);
    memcpy(&a->sin_port, port, 2); /* both in network order */
}

static void v2_addr6(const uint8_t *ip, const uint8_t *port, struct sockaddr_storage *ss)
{
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, ip, 16);
    memcpy(&a->sin6_port, port, 2);
}

static long v2_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    long total = proxy_header_len(buf, len);
    if (total <= 0)
        return total < 0 ? total : PROXY_ERR_SHORT;
    unsigned cmd = buf[12] & 0x0F, family = buf[13] >> 4, transport = buf[13] & 0x0F;
    if (cmd > 1 || family > 3 || transport > 2)
        return PROXY_ERR_MALFORMED;
    out->version = 2;
    out->local = true;
    /* LOCAL: the balancer speaking for itself; UNSPEC, AF_UNIX: no address
     * of ours to use. Their address block, if any, is skipped with the TLVs. */
    if (cmd == 0 || family == 0 || family == 3)
        return total;
    size_t need = family == 1 ? 12 : 36;
    if ((size_t)total - PROXY_V2_FIXED < need)
        return PROXY_ERR_MALFORMED;
    if (len < PROXY_V2_FIXED + need)
        return PROXY_ERR_SHORT;
    const uint8_t *a = buf + PROXY_V2_FIXED;
    if (family == 1) {
        v2_addr4(a, a + 8, &out->src);
        v2_addr4(a + 4, a + 10, &out->dst);
    } else {
        v2_addr6(a, a + 32, &out->src);
        v2_addr6(a + 16, a + 34, &out->dst);
    }
    out->local = false;
    return total;
}

long proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_header *out)
{
    long n = proxy_header_len(buf, len);
    if (n < 0)
        return n;
    if (len < V1_SIG_LEN)
        return PROXY_ERR_SHORT;
    return buf[0] == 'P' ? v1_parse(buf, len, out) : v2_parse(buf, len, out);
}
