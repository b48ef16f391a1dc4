/*
 * tls.h - the TLS and DTLS server contexts of the process (TLS 1.2+, DTLS
 * 1.2), built from tls.cert/tls.key at start and again on SIGHUP. A failed
 * reload keeps the old contexts, so a typo in a renewed certificate never
 * takes a running server down. Contexts are swapped under a mutex; each
 * connection takes a reference to the current one when it starts, so a
 * reload never disturbs live sessions.
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

struct conf;

/* Owned by main; conf borrowed. The contexts are owned (refcounted). */
struct tls_server {
    const struct conf *conf;
    pthread_mutex_t lock;
    SSL_CTX *tls;  /* NULL when no TLS listener */
    SSL_CTX *dtls; /* NULL when no DTLS listener */
    SSL_CTX *next_tls, *next_dtls; /* built by tls_server_try, not in use yet */
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
/* A reference to the current context (SSL_CTX_free it when done). */
SSL_CTX *tls_server_ctx(struct tls_server *s, bool dtls);
void tls_server_free(struct tls_server *s);

#endif
