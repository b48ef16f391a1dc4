/*
 * turn_int.h - what the parts of the TURN service share (turn.c: dispatch,
 * transaction cache, replies and the small methods; turn_auth.c:
 * authentication and the unauthenticated rate limit; turn_alloc.c:
 * Allocate). Not for use outside server/turn*.c.
 */
#ifndef TERN_SERVER_TURN_INT_H
#define TERN_SERVER_TURN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "server/turn.h"

#define TURN_PARK (-1000) /* turn_authenticate(): credentials are being fetched */

/* The outcome of authentication; user borrowed from the request or store. */
struct turn_auth {
    const char *user;
    size_t user_len;
    uint8_t key[32];
    size_t key_len;
    enum auth_alg alg;
    bool sha256; /* request carried MESSAGE-INTEGRITY-SHA256: answer with it */
};

/* Replies (turn.c). Errors are signed when au is not NULL. */
void turn_enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                    size_t cap);
size_t turn_enc_finish(const struct turn_client *tc, struct stun_enc *e, const struct stun_msg *m,
                       const struct turn_auth *au);
size_t turn_reply_error(const struct turn_client *tc, const struct stun_msg *m, int code,
                        const struct turn_auth *au, uint8_t *out, size_t cap);

/* Authentication (turn_auth.c). turn_authenticate returns 0, TURN_PARK, or
 * the negative of the error code to answer with. */
int turn_authenticate(const struct turn_client *tc, const struct stun_msg *m,
                      const struct sockaddr *client, struct turn_auth *au);
bool turn_rate_take(struct worker *w, const struct sockaddr *client);
size_t turn_reply_challenge(const struct turn_client *tc, const struct stun_msg *m, int code,
                            const struct sockaddr *client, uint8_t *out, size_t cap);
size_t turn_unauth_error(const struct turn_client *tc, const struct stun_msg *m,
                         const struct sockaddr *client, int code, uint8_t *out, size_t cap);

/* Allocate (turn_alloc.c). */
uint32_t turn_lifetime(const struct turn_client *tc, const struct stun_msg *m, bool allocate);
size_t turn_allocate(const struct turn_client *tc, const struct stun_msg *m,
                     const struct sockaddr *client, const struct turn_auth *au, uint8_t *out,
                     size_t cap);

#endif
