/*
 * conf_tls.c - the tls group: the default certificate, the protocol
 * versions, the cipher lists and the session ticket key's rotation.
 *
 * The cipher lists are tried on a scratch OpenSSL context here, so that a
 * typo is a file:line error at start (or a refused reload) instead of a
 * server whose TLS listeners cannot be built.
 */
#include <openssl/ssl.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/conf_int.h"

/* 0 when OpenSSL accepts the list (ciphersuites: TLS 1.3's, else 1.2's). */
static int tls_list_ok(const char *list, bool ciphersuites)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx)
        return -1;
    int ok = ciphersuites ? SSL_CTX_set_ciphersuites(ctx, list) : SSL_CTX_set_cipher_list(ctx, list);
    SSL_CTX_free(ctx);
    return ok == 1 ? 0 : -1;
}

int conf_load_tls(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"cert", "key", "min_version", "ciphers", "ciphersuites",
                                       "ticket_key_rotation", NULL};
    config_setting_t *g;
    char version[8] = "";
    if (conf_take_group(x, root, "tls", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_take_str(x, g, "cert", c->tls_cert, sizeof(c->tls_cert), false) < 0 ||
        conf_take_str(x, g, "key", c->tls_key, sizeof(c->tls_key), false) < 0 ||
        conf_take_str(x, g, "min_version", version, sizeof(version), false) < 0 ||
        conf_take_str(x, g, "ciphers", c->tls_ciphers, sizeof(c->tls_ciphers), false) < 0 ||
        conf_take_str(x, g, "ciphersuites", c->tls_ciphersuites, sizeof(c->tls_ciphersuites),
                      false) < 0 ||
        conf_take_uint(x, g, "ticket_key_rotation", 1, 7 * 86400, &c->tls_ticket_rotation) < 0)
        return -1;
    if (strcmp(version, "1.3") == 0)
        c->tls_min_version = TLS1_3_VERSION;
    else if (strcmp(version, "1.2") == 0)
        c->tls_min_version = TLS1_2_VERSION;
    else if (version[0] || config_setting_get_member(g, "min_version"))
        return conf_fail(x, config_setting_get_member(g, "min_version"),
                         "'tls.min_version' must be \"1.2\" or \"1.3\"");
    if (c->tls_ciphers[0] && tls_list_ok(c->tls_ciphers, false) < 0)
        return conf_fail(x, config_setting_get_member(g, "ciphers"),
                         "'tls.ciphers' names no cipher OpenSSL knows for TLS 1.2: \"%s\"",
                         c->tls_ciphers);
    if (c->tls_ciphersuites[0] && tls_list_ok(c->tls_ciphersuites, true) < 0)
        return conf_fail(x, config_setting_get_member(g, "ciphersuites"),
                         "'tls.ciphersuites' is not a list of TLS 1.3 suites OpenSSL knows "
                         "(such as TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256): \"%s\"",
                         c->tls_ciphersuites);
    return 0;
}
