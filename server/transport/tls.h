/*
 * tls.h - the TLS and DTLS server contexts of the process (TLS 1.3 and 1.2
 * or tls.min_version, DTLS 1.2), built from tls.cert/tls.key and each
 * realm's own tls { cert; key; } at start and again on SIGHUP, with
 * tls.ciphers, tls.ciphersuites, session tickets (tls_ticket.h) and ALPN
 * (RFC 7443: "stun.turn" and "stun.nat-discovery" are taken, a client that
 * offers only other protocols is refused, one that offers none goes on). A failed reload keeps the old contexts, so
 * a typo in a renewed certificate never takes a running server down.
 * Contexts are swapped under a mutex; each connection takes a reference to
 * the current one when it starts, so a reload never disturbs live sessions.
 *
 * Several realms (conf.h): the default context answers the TLS SNI host
 * names of every realm's hosts; for a realm with a certificate of its own
 * it switches the handshake to that realm's context (its certificate), so
 * each tenant's clients see their own name. A listener of a realm uses that
 * realm's context directly. Which realm the connection is in is the
 * transport's business (SSL_get_servername, conf_realm_by_host).
 *
 * DTLS uses a stateless HelloVerifyRequest cookie: an HMAC of the client's
 * address under a per-process random key (RFC 6347 section 4.2.1).
 */
#ifndef TERN_SERVER_TRANSPORT_TLS_H
#define TERN_SERVER_TRANSPORT_TLS_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "server/transport/tls_ticket.h"

/* One protocol's contexts: the default one (NULL when no such listener)
 * and each realm's own, by conf realm index (NULL: it uses the default).
 * Owned, refcounted. */
struct tls_ctxs {
    SSL_CTX *def;
    SSL_CTX *realm[CONF_MAX_REALMS + 1];
};

/* Owned by main; conf borrowed. */
struct tls_server {
    const struct conf *conf;
    pthread_mutex_t lock;
    struct tls_ctxs tls, dtls;
    struct tls_ctxs next_tls, next_dtls; /* built by tls_server_try, not in use yet */
    struct tls_tickets tickets;          /* every context's, kept across reloads */
};

/* What the cookie callbacks need about a DTLS handshake: stored as the SSL's
 * app data, owned by whoever owns the SSL. */
struct dtls_cookie_id {
    struct sockaddr_storage peer;
    const uint8_t *secret; /* 32 bytes, borrowed from the process */
};

/* Init and build both contexts from conf; 0 or -1 with the reason logged. */
int tls_server_init(struct tls_server *s, const struct conf *conf);
/* Rebuild from s->conf. 0, or -1 with the reason logged and the old ones kept. */
int tls_server_load(struct tls_server *s);
/* A reload in two steps: build the contexts of conf aside (0, or -1 with
 * the reason in err), then put them in service with conf (borrowed). */
int tls_server_try(struct tls_server *s, const struct conf *conf, char *err, size_t err_len);
void tls_server_commit(struct tls_server *s, const struct conf *conf);
/* A reference to the current context for a listener of realm ("" or NULL:
 * none, the default context that chooses by SNI); SSL_CTX_free it when
 * done. NULL when there is none. */
SSL_CTX *tls_server_ctx(struct tls_server *s, bool dtls, const char *realm);
/* Were contexts built by the last tls_server_try? */
bool tls_server_pending(const struct tls_server *s);
void tls_server_free(struct tls_server *s);

#endif
