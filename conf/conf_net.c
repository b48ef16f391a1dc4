/*
 * conf_net.c - address parsing for the configuration: plain IPs, CIDR
 * prefixes and prefix matching.
 *
 * Design: only numeric addresses are accepted (inet_pton, never DNS), so a
 * config file loads the same way with or without a resolver and cannot block
 * at startup. IPv4 and IPv6 go through the same paths; an IPv6 zone
 * ("fe80::1%eth0") is accepted because link-local listeners need one.
 * A CIDR is stored as its network address (host bits cleared), so matching is
 * a masked compare with no further normalisation. Hex user keys are decoded
 * here too, so a half-written key never reaches struct conf_user.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

const char *conf_proto_name(enum conf_proto p)
{
    switch (p) {
    case CONF_UDP: return "udp";
    case CONF_TCP: return "tcp";
    case CONF_TLS: return "tls";
    case CONF_DTLS: return "dtls";
    }
    return "?";
}

/* A zone is an interface name or a numeric index; a name that does not
 * exist on this host is an error now rather than a bind failure later. */
static int conf_parse_zone(const char *zone, uint32_t *out)
{
    if (*zone == '\0')
        return -1;
    if (isdigit((unsigned char)*zone)) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(zone, &end, 10);
        if (errno || *end || v > UINT32_MAX)
            return -1;
        *out = (uint32_t)v;
        return 0;
    }
    unsigned idx = if_nametoindex(zone);
    if (idx == 0)
        return -1;
    *out = idx;
    return 0;
}

int conf_parse_ip(const char *s, unsigned port, struct sockaddr_storage *ss)
{
    if (!s || !ss || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));

    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return 0;
    }

    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);
    uint32_t scope = 0;
    char *pct = strchr(buf, '%');
    if (pct) {
        *pct = '\0';
        if (conf_parse_zone(pct + 1, &scope) < 0)
            return -1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1) {
        memset(ss, 0, sizeof(*ss));
        return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sin6->sin6_scope_id = scope;
    return 0;
}

/* Raw address bytes of an AF_INET/AF_INET6 sockaddr; NULL for others. */
static uint8_t *conf_addr_bytes(struct sockaddr_storage *ss, size_t *len)
{
    if (ss->ss_family == AF_INET) {
        *len = 4;
        return (uint8_t *)&((struct sockaddr_in *)ss)->sin_addr;
    }
    if (ss->ss_family == AF_INET6) {
        *len = 16;
        return (uint8_t *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    }
    return NULL;
}

/* Is the first prefix bits of a and b equal? */
static bool conf_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int conf_parse_cidr(const char *s, struct conf_cidr *out)
{
    if (!s || !out)
        return -1;
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 8];
    if (strlen(s) >= sizeof(buf))
        return -1;
    strcpy(buf, s);

    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *p = slash + 1;
        /* strtol would take " 8", "+8" and "8x"; a prefix is digits only. */
        if (*p == '\0' || strlen(p) > 3)
            return -1;
        for (const char *q = p; *q; q++)
            if (!isdigit((unsigned char)*q))
                return -1;
        prefix = strtol(p, NULL, 10);
    }

    struct conf_cidr c;
    memset(&c, 0, sizeof(c));
    if (conf_parse_ip(buf, 0, &c.addr) < 0)
        return -1;
    size_t len = 0;
    uint8_t *bytes = conf_addr_bytes(&c.addr, &len);
    if (!bytes)
        return -1;
    long max = (long)len * 8;
    if (prefix < 0)
        prefix = max;
    if (prefix > max)
        return -1;
    c.prefix = (unsigned)prefix;

    /* Clear host bits so "10.1.2.3/8" and "10.0.0.0/8" are the same rule. */
    for (size_t i = 0; i < len; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= c.prefix)
            bytes[i] = 0;
        else if (c.prefix - bit < 8)
            bytes[i] &= (uint8_t)(0xff << (8 - (c.prefix - bit)));
    }
    *out = c;
    return 0;
}

bool conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa)
{
    if (!c || !sa)
        return false;
    struct sockaddr_storage net = c->addr;
    size_t net_len = 0;
    const uint8_t *nb = conf_addr_bytes(&net, &net_len);
    if (!nb)
        return false;

    const uint8_t *ab;
    if (sa->sa_family == AF_INET) {
        ab = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (net_len != 4)
            return false;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (net_len == 16) {
            ab = a6->s6_addr;
        } else if (IN6_IS_ADDR_V4MAPPED(a6)) {
            /* A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; an IPv4
             * rule must still apply to them or a deny could be bypassed. */
            ab = a6->s6_addr + 12;
        } else {
            return false;
        }
    } else {
        return false;
    }
    return conf_prefix_equal(ab, nb, c->prefix);
}

static int conf_hex_nibble(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
}

int conf_parse_hex_key(const char *hex, uint8_t key[32], size_t *key_len)
{
    size_t len = hex ? strlen(hex) : 0;
    if (len != 32 && len != 64)
        return -1;
    uint8_t tmp[32];
    for (size_t i = 0; i < len; i += 2) {
        int hi = conf_hex_nibble((unsigned char)hex[i]);
        int lo = conf_hex_nibble((unsigned char)hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        tmp[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(key, tmp, len / 2);
    *key_len = len / 2;
    return 0;
}
