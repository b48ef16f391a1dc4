/*
 * conf_oauth.c - oauth = { server_name; keys = ( { kid; key; alg; timestamp;
 * lifetime; realm; } ); }: RFC 7635 third-party authorization, with the
 * AS-RS keys in coturn's representation (base64 keying material used as the
 * AES key, no derivation), so that keys move between the two unchanged.
 *
 * The server name rides in every 401 (THIRD-PARTY-AUTHORIZATION) next to the
 * realm, and a challenge must stay within 128 bytes of the smallest
 * Allocate (the amplification bound, conf.c), so the two together are
 * bounded here rather than found too long by a client.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_int.h"

/* A 401 to a 28-byte Allocate has 60 bytes left for REALM's and
 * THIRD-PARTY-AUTHORIZATION's values (each padded to 4) and a header. */
#define OAUTH_NAMES_MAX 56

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* How many bytes the base64 text decodes to; -1 if it is not base64. */
static long base64_len(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n > CONF_STR)
        return -1;
    unsigned char out[CONF_STR];
    int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
        len--;
    return len;
}

static int oauth_load_key(const struct conf_ctx *x, const config_setting_t *e,
                          struct conf_oauth_key *k)
{
    static const char *const keys[] = {"kid", "key", "alg", "timestamp", "lifetime", "realm",
                                       NULL};
    char path[CONF_STR];
    if (config_setting_type(e) != CONFIG_TYPE_GROUP)
        return conf_fail(x, e, "'%s' must be a group { kid = ...; key = ...; }",
                         CONF_PATH(e, path));
    if (conf_check_keys(x, e, keys) < 0)
        return -1;
    if (!config_setting_get_member(e, "kid") || !config_setting_get_member(e, "key"))
        return conf_fail(x, e, "'%s' needs a 'kid' and a 'key'", CONF_PATH(e, path));
    snprintf(k->alg, sizeof(k->alg), "A256GCM"); /* the default coturn's schema documents */
    uint64_t lifetime = 0;
    if (conf_take_str(x, e, "kid", k->kid, sizeof(k->kid), true) < 0 ||
        conf_take_str(x, e, "key", k->key, sizeof(k->key), true) < 0 ||
        conf_take_str(x, e, "alg", k->alg, sizeof(k->alg), true) < 0 ||
        conf_take_u64(x, e, "timestamp", 0, INT64_MAX, &k->timestamp) < 0 ||
        conf_take_u64(x, e, "lifetime", 0, UINT32_MAX, &lifetime) < 0 ||
        conf_take_str(x, e, "realm", k->realm, sizeof(k->realm), false) < 0)
        return -1;
    k->lifetime = (unsigned)lifetime;
    size_t need = strcmp(k->alg, "A256GCM") == 0 ? 32 : strcmp(k->alg, "A128GCM") == 0 ? 16 : 0;
    if (!need)
        return conf_fail(x, config_setting_get_member(e, "alg"),
                         "'%s.alg' must be \"A256GCM\" or \"A128GCM\"", CONF_PATH(e, path));
    long have = base64_len(k->key);
    if (have < (long)need)
        return conf_fail(x, config_setting_get_member(e, "key"),
                         "'%s.key' must be base64 of at least %zu bytes for %s (%s)",
                         CONF_PATH(e, path), need, k->alg,
                         have < 0 ? "not base64" : "too short");
    return 0;
}

int conf_load_oauth(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"server_name", "keys", NULL};
    config_setting_t *g, *l;
    if (conf_take_group(x, root, "oauth", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    c->has_oauth = true;
    if (conf_take_str(x, g, "server_name", c->oauth_server_name, sizeof(c->oauth_server_name),
                      false) < 0 ||
        conf_take_seq(x, g, "keys", 1024, &l) < 0)
        return -1;
    size_t n = l ? (size_t)config_setting_length(l) : 0;
    if (n) {
        c->oauth_keys = calloc(n, sizeof(*c->oauth_keys));
        if (!c->oauth_keys)
            return conf_fail(x, l, "out of memory for %zu keys", n);
    }
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        if (oauth_load_key(x, e, &c->oauth_keys[i]) < 0)
            return -1;
        c->n_oauth_keys = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->oauth_keys[j].kid, c->oauth_keys[i].kid) == 0)
                return conf_fail(x, e, "kid '%s' is defined twice", c->oauth_keys[i].kid);
    }
    for (size_t i = 0; i < conf_realm_count(c); i++) {
        struct conf_realm_view v;
        conf_realm_get(c, i, &v);
        size_t sn = c->oauth_server_name[0] ? strlen(c->oauth_server_name) : strlen(v.name);
        if (pad4(strlen(v.name)) + pad4(sn) > OAUTH_NAMES_MAX)
            return conf_fail(x, g,
                             "realm '%s' and the oauth server name (%s) are too long together: "
                             "a 401 carries both and must stay within 128 bytes of a request "
                             "(at most %d bytes, each rounded up to 4); set a shorter "
                             "oauth.server_name",
                             v.name, c->oauth_server_name[0] ? c->oauth_server_name : "the realm",
                             OAUTH_NAMES_MAX);
    }
    return 0;
}
