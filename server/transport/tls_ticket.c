/*
 * tls_ticket.c - see tls_ticket.h.
 */
#include "server/transport/tls_ticket.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "server/core/clock.h"

static int tickets_index = -1;
static pthread_once_t tickets_once = PTHREAD_ONCE_INIT;

static void tickets_index_init(void)
{
    tickets_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int key_make(struct tls_ticket_key *k)
{
    return RAND_bytes((unsigned char *)k, sizeof *k) == 1 ? 0 : -1;
}

/* Under the lock: the keys as they are at now_ms. */
static void tickets_rotate(struct tls_tickets *t, uint64_t now_ms)
{
    uint64_t period = (uint64_t)t->rotation_s * 1000u;
    uint64_t age = now_ms - t->born_ms;
    if (age < period)
        return;
    if (age >= 2 * period) {
        /* Both are too old: a previous key nobody holds tickets for. */
        if (key_make(&t->key[0]) < 0 || key_make(&t->key[1]) < 0)
            return;
    } else {
        struct tls_ticket_key fresh;
        if (key_make(&fresh) < 0)
            return;
        t->key[1] = t->key[0];
        t->key[0] = fresh;
        OPENSSL_cleanse(&fresh, sizeof fresh);
    }
    t->born_ms = now_ms;
}

static int mac_init(EVP_MAC_CTX *hctx, uint8_t *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: enc 1 seals a new ticket (1, or -1 on
 * failure), enc 0 opens one (1: good, 2: good but renew it, 0: unknown key,
 * a full handshake follows). */
static int tickets_on_key(SSL *ssl, unsigned char name[16], unsigned char *iv,
                          EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tickets_index);
    if (!t)
        return enc ? -1 : 0;
    struct tls_ticket_key k;
    int found = -1;
    pthread_mutex_lock(&t->lock);
    tickets_rotate(t, clock_mono_ms());
    if (enc) {
        k = t->key[0];
        found = 0;
    } else {
        for (int i = 0; i < 2 && found < 0; i++)
            if (CRYPTO_memcmp(name, t->key[i].name, 16) == 0) {
                k = t->key[i];
                found = i;
            }
    }
    pthread_mutex_unlock(&t->lock);
    if (found < 0)
        return 0;
    int r;
    if (enc) {
        memcpy(name, k.name, 16);
        r = RAND_bytes(iv, 16) == 1 &&
                    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
                    mac_init(hctx, k.hmac) == 0
                ? 1
                : -1;
    } else {
        r = EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
                    mac_init(hctx, k.hmac) == 0
                ? (found == 0 ? 1 : 2)
                : 0;
    }
    OPENSSL_cleanse(&k, sizeof k);
    return r;
}

int tls_tickets_init(struct tls_tickets *t, unsigned rotation_s)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->rotation_s = rotation_s ? rotation_s : 3600;
    t->born_ms = clock_mono_ms();
    if (key_make(&t->key[0]) < 0 || key_make(&t->key[1]) < 0)
        return -1;
    return 0;
}

void tls_tickets_set_rotation(struct tls_tickets *t, unsigned rotation_s)
{
    pthread_mutex_lock(&t->lock);
    t->rotation_s = rotation_s ? rotation_s : 3600;
    pthread_mutex_unlock(&t->lock);
}

int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx)
{
    pthread_once(&tickets_once, tickets_index_init);
    if (tickets_index < 0 || SSL_CTX_set_ex_data(ctx, tickets_index, t) != 1)
        return -1;
    /* Tickets only: no per-session state on the server to bound. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ternd", 5);
    /* A ticket is worth nothing after two rotations: say so to clients. */
    SSL_CTX_set_timeout(ctx, 2L * t->rotation_s);
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tickets_on_key) == 1 ? 0 : -1;
}

void tls_tickets_free(struct tls_tickets *t)
{
    OPENSSL_cleanse(t->key, sizeof t->key);
    pthread_mutex_destroy(&t->lock);
}
