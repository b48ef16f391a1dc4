/*
 * dtls.h - STUN over DTLS (RFC 7350) on a UDP socket per worker.
 */
#ifndef TERN_SERVER_DTLS_H
#define TERN_SERVER_DTLS_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;

/* What the cookie callbacks need to know about a handshake: stored as the
 * SSL's app data, owned by the DTLS session that owns the SSL. */
struct dtls_session_id {
    struct sockaddr_storage peer;
    const uint8_t *secret; /* 32 bytes, borrowed from the server */
};

/* Listen for DTLS on addr on worker w. 0 or -errno. */
int dtls_listen(struct worker *w, const struct sockaddr_storage *addr);
void dtls_close_all(struct worker *w);

#endif
