/*
 * tls_ticket.h - the session ticket keys of the process (RFC 5077, and
 * TLS 1.3's resumption tickets): a resumed handshake skips the certificate
 * and the key exchange's signature, which is most of what a TLS or DTLS
 * handshake costs the server, and a WebRTC client reconnecting after a
 * network change is back sooner.
 *
 * Two keys: the current one seals new tickets; the previous one still
 * opens tickets, which are then renewed under the current one; anything
 * older no longer opens, so a ticket (and what a stolen key would reveal)
 * lives at most two rotations. Rotation is lazy: the first handshake after
 * tls.ticket_key_rotation seconds makes a new key, so an idle server does
 * nothing. The keys are shared by every context (each realm's, TLS and
 * DTLS) and kept across reloads, so a SIGHUP does not cost every client a
 * full handshake. Keys come from OpenSSL's RNG and never leave memory.
 *
 * Thread-safe: a mutex taken once per handshake that issues or opens a
 * ticket, never on the data path. Errors: 0 or -1.
 */
#ifndef TERN_SERVER_TRANSPORT_TLS_TICKET_H
#define TERN_SERVER_TRANSPORT_TLS_TICKET_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>

struct tls_ticket_key {
    uint8_t name[16];
    uint8_t aes[32];  /* AES-256-CBC */
    uint8_t hmac[32]; /* HMAC-SHA256 */
};

/* Owned by the TLS server (tls.h); holds no pointers. */
struct tls_tickets {
    pthread_mutex_t lock;
    struct tls_ticket_key key[2]; /* [0] current, [1] previous */
    uint64_t born_ms;             /* when key[0] was made (clock_mono_ms) */
    unsigned rotation_s;
};

int tls_tickets_init(struct tls_tickets *t, unsigned rotation_s);
/* A reload's new tls.ticket_key_rotation; the keys stay. */
void tls_tickets_set_rotation(struct tls_tickets *t, unsigned rotation_s);
/* ctx seals and opens its tickets with t (borrowed: t outlives ctx). */
int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx);
void tls_tickets_free(struct tls_tickets *t);

#endif
