/*
 * tls.c - see tls.h.
 */
#include "server/transport/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"

static int ctx_load_files(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                          size_t err_len)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, err_len, "tls: cannot load certificate %s: %s", cert,
                 ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_len, "tls: cannot load key %s: %s", key,
                 ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "tls: key %s does not match certificate %s", key, cert);
        return -1;
    }
    return 0;
}

/* SNI host name -> the context with that realm's certificate. Hangs off
 * the default context (ex_data) and dies with it, so a handshake that began
 * before a reload still finds it; holds a reference on each context. */
struct tls_sni {
    size_t n;
    struct {
        char host[CONF_STR];
        SSL_CTX *ctx;
    } e[];
};

static int sni_index = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

static void sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct tls_sni *m = ptr;
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        SSL_CTX_free(m->e[i].ctx);
    free(m);
}

static void sni_init(void)
{
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_free);
}

/* An unknown or absent name keeps the default certificate: refusing the
 * handshake would only turn a wrong name into a harder error to read. */
static int sni_on_name(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct tls_sni *m = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    for (size_t i = 0; host && m && i < m->n; i++)
        if (strcasecmp(m->e[i].host, host) == 0) {
            SSL_set_SSL_CTX(ssl, m->e[i].ctx);
            break;
        }
    return SSL_TLSEXT_ERR_OK;
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

/* RFC 7443: a client that names its application must name STUN or TURN;
 * one that names none goes on (most WebRTC stacks send no ALPN to TURN). */
static int alpn_on_select(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                          const unsigned char *in, unsigned int in_len, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char ours[] = "\x09stun.turn\x12stun.nat-discovery";
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, out_len, ours, sizeof ours - 1, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* tls.min_version, tls.ciphers, tls.ciphersuites (conf.c checked the lists). */
static int ctx_set_protocols(SSL_CTX *ctx, const struct conf *c, bool dtls, char *err,
                             size_t err_len)
{
    SSL_CTX_set_min_proto_version(ctx, dtls ? DTLS1_2_VERSION : c->tls_min_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if ((c->tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) ||
        (!dtls && c->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, c->tls_ciphersuites) != 1)) {
        snprintf(err, err_len, "tls: cipher list refused: %s", ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_on_select, NULL);
    return 0;
}

static SSL_CTX *ctx_build(struct tls_server *s, const struct conf *c, const char *cert,
                          const char *key, bool dtls, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(dtls ? DTLS_server_method() : TLS_server_method());
    if (!ctx) {
        snprintf(err, err_len, "tls: out of memory");
        return NULL;
    }
    if (ctx_set_protocols(ctx, c, dtls, err, err_len) < 0 ||
        ctx_load_files(ctx, cert, key, err, err_len) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (tls_tickets_attach(&s->tickets, ctx) < 0) {
        snprintf(err, err_len, "tls: cannot set up session tickets");
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

static void ctxs_free(struct tls_ctxs *x)
{
    SSL_CTX_free(x->def);
    for (size_t i = 0; i < sizeof x->realm / sizeof x->realm[0]; i++)
        SSL_CTX_free(x->realm[i]);
    memset(x, 0, sizeof *x);
}

/* The SNI map of c onto the default context x->def. 0 or -1. */
static int ctxs_sni(struct tls_ctxs *x, const struct conf *c, char *err, size_t err_len)
{
    size_t n = 0;
    for (size_t i = 1; i < conf_realm_count(c); i++) {
        struct conf_realm_view v;
        conf_realm_get(c, i, &v);
        n += x->realm[i] ? v.n_hosts : 0;
    }
    if (n == 0)
        return 0;
    pthread_once(&sni_once, sni_init);
    struct tls_sni *m = calloc(1, sizeof *m + n * sizeof m->e[0]);
    if (!m || sni_index < 0 || SSL_CTX_set_ex_data(x->def, sni_index, m) != 1) {
        free(m);
        snprintf(err, err_len, "tls: out of memory");
        return -1;
    }
    for (size_t i = 1; i < conf_realm_count(c); i++) {
        struct conf_realm_view v;
        conf_realm_get(c, i, &v);
        for (size_t k = 0; x->realm[i] && k < v.n_hosts; k++) {
            snprintf(m->e[m->n].host, sizeof m->e[0].host, "%s", v.hosts[k]);
            SSL_CTX_up_ref(x->realm[i]);
            m->e[m->n++].ctx = x->realm[i];
        }
    }
    SSL_CTX_set_tlsext_servername_callback(x->def, sni_on_name);
    SSL_CTX_set_tlsext_servername_arg(x->def, m);
    return 0;
}

/* Every context of one protocol for c: 0 or -1 (x left empty). */
static int ctxs_build(struct tls_server *s, struct tls_ctxs *x, const struct conf *c, bool dtls,
                      char *err, size_t err_len)
{
    memset(x, 0, sizeof *x);
    /* the default certificate may be absent when every listener of this
     * protocol has a realm with its own (conf.c checks that) */
    if (c->tls_cert[0] && !(x->def = ctx_build(s, c, c->tls_cert, c->tls_key, dtls, err, err_len)))
        return -1;
    for (size_t i = 1; i < conf_realm_count(c); i++) {
        struct conf_realm_view v;
        conf_realm_get(c, i, &v);
        if (v.own_tls && !(x->realm[i] = ctx_build(s, c, v.tls_cert, v.tls_key, dtls, err, err_len))) {
            ctxs_free(x);
            return -1;
        }
    }
    if (x->def && ctxs_sni(x, c, err, err_len) < 0) {
        ctxs_free(x);
        return -1;
    }
    return 0;
}

int tls_server_init(struct tls_server *s, const struct conf *conf)
{
    memset(s, 0, sizeof *s);
    s->conf = conf;
    pthread_mutex_init(&s->lock, NULL);
    if (tls_tickets_init(&s->tickets, conf->tls_ticket_rotation) < 0) {
        log_error("tls: no random bytes for the session ticket keys");
        return -1;
    }
    return tls_server_load(s);
}

int tls_server_try(struct tls_server *s, const struct conf *c, char *err, size_t err_len)
{
    bool want_tls = false, want_dtls = false;
    for (size_t i = 0; i < c->n_listen; i++) {
        want_tls |= c->listen[i].proto == CONF_TLS;
        want_dtls |= c->listen[i].proto == CONF_DTLS;
    }
    ctxs_free(&s->next_tls);
    ctxs_free(&s->next_dtls);
    /* The contexts built now tell clients the new ticket lifetime. */
    tls_tickets_set_rotation(&s->tickets, c->tls_ticket_rotation);
    if (want_tls && ctxs_build(s, &s->next_tls, c, false, err, err_len) < 0)
        return -1;
    if (want_dtls && ctxs_build(s, &s->next_dtls, c, true, err, err_len) < 0) {
        ctxs_free(&s->next_tls);
        return -1;
    }
    return 0;
}

static bool ctxs_any(const struct tls_ctxs *x)
{
    bool any = x->def != NULL;
    for (size_t i = 0; i < sizeof x->realm / sizeof x->realm[0]; i++)
        any |= x->realm[i] != NULL;
    return any;
}

bool tls_server_pending(const struct tls_server *s)
{
    return ctxs_any(&s->next_tls) || ctxs_any(&s->next_dtls);
}

void tls_server_commit(struct tls_server *s, const struct conf *conf)
{
    pthread_mutex_lock(&s->lock);
    struct tls_ctxs old_tls = s->tls, old_dtls = s->dtls;
    s->tls = s->next_tls;
    s->dtls = s->next_dtls;
    s->conf = conf;
    pthread_mutex_unlock(&s->lock);
    memset(&s->next_tls, 0, sizeof s->next_tls);
    memset(&s->next_dtls, 0, sizeof s->next_dtls);
    ctxs_free(&old_tls);
    ctxs_free(&old_dtls);
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

SSL_CTX *tls_server_ctx(struct tls_server *s, bool dtls, const char *realm)
{
    pthread_mutex_lock(&s->lock);
    const struct tls_ctxs *x = dtls ? &s->dtls : &s->tls;
    SSL_CTX *ctx = x->def;
    int i = realm && realm[0] ? conf_realm_find(s->conf, realm, strlen(realm)) : -1;
    if (i > 0 && x->realm[i])
        ctx = x->realm[i];
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&s->lock);
    return ctx;
}

void tls_server_free(struct tls_server *s)
{
    if (!s->conf)
        return;
    ctxs_free(&s->tls);
    ctxs_free(&s->dtls);
    ctxs_free(&s->next_tls);
    ctxs_free(&s->next_dtls);
    pthread_mutex_destroy(&s->lock);
    tls_tickets_free(&s->tickets);
    s->conf = NULL;
}
