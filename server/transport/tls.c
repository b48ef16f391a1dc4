/*
 * tls.c - see tls.h.
 */
#include "server/transport/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"

static int ctx_load_files(SSL_CTX *ctx, const struct conf *c, char *err, size_t err_len)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        snprintf(err, err_len, "tls: cannot load certificate %s: %s", c->tls_cert,
                 ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_len, "tls: cannot load key %s: %s", c->tls_key,
                 ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "tls: key %s does not match certificate %s", c->tls_key,
                 c->tls_cert);
        return -1;
    }
    return 0;
}

static int cookie_make(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    const struct dtls_cookie_id *id = SSL_get_app_data(ssl);
    if (!id)
        return 0;
    unsigned int n = 0;
    uint8_t mac[EVP_MAX_MD_SIZE];
    if (!HMAC(EVP_sha256(), id->secret, 32, (const uint8_t *)&id->peer,
              net_addr_len((const struct sockaddr *)&id->peer), mac, &n))
        return 0;
    memcpy(cookie, mac, 16);
    *len = 16;
    return 1;
}

static int cookie_check(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    uint8_t want[16];
    unsigned int n = 0;
    if (len != sizeof want || !cookie_make(ssl, want, &n))
        return 0;
    return CRYPTO_memcmp(want, cookie, sizeof want) == 0;
}

static SSL_CTX *ctx_build(const struct conf *c, bool dtls, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(dtls ? DTLS_server_method() : TLS_server_method());
    if (!ctx) {
        snprintf(err, err_len, "tls: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, dtls ? DTLS1_2_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (ctx_load_files(ctx, c, err, err_len) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (dtls) {
        SSL_CTX_set_cookie_generate_cb(ctx, cookie_make);
        SSL_CTX_set_cookie_verify_cb(ctx, cookie_check);
        SSL_CTX_set_read_ahead(ctx, 1);
    }
    return ctx;
}

int tls_server_init(struct tls_server *s, const struct conf *conf)
{
    memset(s, 0, sizeof *s);
    s->conf = conf;
    pthread_mutex_init(&s->lock, NULL);
    return tls_server_load(s);
}

int tls_server_try(struct tls_server *s, const struct conf *c, char *err, size_t err_len)
{
    bool want_tls = false, want_dtls = false;
    for (size_t i = 0; i < c->n_listen; i++) {
        want_tls |= c->listen[i].proto == CONF_TLS;
        want_dtls |= c->listen[i].proto == CONF_DTLS;
    }
    SSL_CTX_free(s->next_tls);
    SSL_CTX_free(s->next_dtls);
    s->next_tls = s->next_dtls = NULL;
    if (want_tls && !(s->next_tls = ctx_build(c, false, err, err_len)))
        return -1;
    if (want_dtls && !(s->next_dtls = ctx_build(c, true, err, err_len))) {
        SSL_CTX_free(s->next_tls);
        s->next_tls = NULL;
        return -1;
    }
    return 0;
}

void tls_server_commit(struct tls_server *s, const struct conf *conf)
{
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old_tls = s->tls, *old_dtls = s->dtls;
    s->tls = s->next_tls;
    s->dtls = s->next_dtls;
    s->conf = conf;
    pthread_mutex_unlock(&s->lock);
    s->next_tls = s->next_dtls = NULL;
    SSL_CTX_free(old_tls);
    SSL_CTX_free(old_dtls);
}

int tls_server_load(struct tls_server *s)
{
    char err[PATH_MAX + 128];
    if (tls_server_try(s, s->conf, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    tls_server_commit(s, s->conf);
    return 0;
}

SSL_CTX *tls_server_ctx(struct tls_server *s, bool dtls)
{
    pthread_mutex_lock(&s->lock);
    SSL_CTX *ctx = dtls ? s->dtls : s->tls;
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&s->lock);
    return ctx;
}

void tls_server_free(struct tls_server *s)
{
    if (!s->conf)
        return;
    SSL_CTX_free(s->tls);
    SSL_CTX_free(s->dtls);
    SSL_CTX_free(s->next_tls);
    SSL_CTX_free(s->next_dtls);
    s->tls = s->dtls = s->next_tls = s->next_dtls = NULL;
    pthread_mutex_destroy(&s->lock);
    s->conf = NULL;
}
