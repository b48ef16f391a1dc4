/*
 * turn_ticket.c - RFC 8016 tickets: whether an Allocate may ask for one, a
 * new one for an answer, and opening one that a Refresh brings back. A leaf
 * of server/turn/: it calls nothing else of the service.
 *
 * The ticket is one AES-128 block under a key of this process: the worker,
 * the allocation's id and its generation, and seven zero bytes. Without the
 * key a made-up ticket opens with probability 2^-56, and what it names
 * cannot be read. Each ticket given out bumps the generation, so only the
 * latest opens, and once: the move bumps it again. It travels as 24
 * characters of base64 because coturn's client keeps it as a C string of
 * at most 32 bytes.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "conf/conf.h"
#include "server/turn/turn_int.h"

#define TICKET_TEXT 24 /* base64 of one 16-byte block */

void turn_ticket_init(struct turn *t)
{
    static const char label[] = "tern RFC 8016 mobility ticket";
    uint8_t k[EVP_MAX_MD_SIZE];
    unsigned kl = 0;
    HMAC(EVP_sha256(), t->env.nonce_key, 32, (const uint8_t *)label, sizeof label - 1, k, &kl);
    memcpy(t->mob_key, k, sizeof t->mob_key);
    OPENSSL_cleanse(k, sizeof k);
}

/* One block through AES-128 (enc 1) or back (0); 0 or -1. */
static int ticket_aes(const struct turn *t, const uint8_t in[16], uint8_t out[16], int enc)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c && EVP_CipherInit_ex(c, EVP_aes_128_ecb(), NULL, t->mob_key, NULL, enc) &&
                    EVP_CIPHER_CTX_set_padding(c, 0) && EVP_CipherUpdate(c, out, &n, in, 16) &&
                    n == 16;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void turn_ticket_add(struct turn *t, struct alloc *a, struct stun_enc *e)
{
    uint8_t block[16] = { 0 }, sealed[16];
    char text[TICKET_TEXT + 1];
    a->mob_gen++;
    block[0] = (uint8_t)t->env.worker_id;
    be32_put(block + 1, a->id);
    be32_put(block + 5, a->mob_gen);
    if (ticket_aes(t, block, sealed, 1) < 0)
        return; /* the client goes on without mobility */
    EVP_EncodeBlock((unsigned char *)text, sealed, sizeof sealed);
    stun_enc_add(e, STUN_ATTR_MOBILITY_TICKET, text, TICKET_TEXT);
}

int turn_ticket_open(const struct turn *t, const uint8_t *v, size_t len, struct turn_ticket *out)
{
    static const uint8_t zero[7];
    char text[TICKET_TEXT + 1];
    uint8_t sealed[18], block[16]; /* DecodeBlock writes the padding's bytes too */
    if (len != TICKET_TEXT)
        return -1;
    memcpy(text, v, TICKET_TEXT);
    text[TICKET_TEXT] = 0;
    if (EVP_DecodeBlock(sealed, (const unsigned char *)text, TICKET_TEXT) != 18 ||
        ticket_aes(t, sealed, block, 0) < 0 || memcmp(block + 9, zero, sizeof zero) != 0)
        return -1;
    out->worker = block[0];
    out->id = be32_get(block + 1);
    out->gen = be32_get(block + 5);
    return 0;
}

int turn_ticket_asked(const struct turn_session *s, const struct stun_msg *m)
{
    const struct stun_attr *mt = stun_attr_find(m, STUN_ATTR_MOBILITY_TICKET);
    if (!mt)
        return 0;
    /* A new 5-tuple of a connection is a new connection, whose closing
     * ends the allocation (RFC 8656 section 3.1): UDP clients only. */
    if (!s->svc->env.conf->mobility || s->one_alloc)
        return 405;
    return mt->len ? 400 : 0;
}
