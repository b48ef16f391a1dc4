/*
 * dispatch.h - server/stun: the STUN service a transport calls for every
 * STUN message: Binding here (binding.h, a pure function), every other
 * method to the TURN service of the message's session (turn/).
 *
 * Depends on turn/ and below. Errors: a verdict (turn.h): answer, drop, or
 * parked (answered later through the session's client_ops).
 */
#ifndef TERN_SERVER_STUN_DISPATCH_H
#define TERN_SERVER_STUN_DISPATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/stun/binding.h"
#include "server/turn/turn.h"

/*
 * Answer one STUN message (not ChannelData) from client, arriving on a
 * session whose Binding context is env. On TURN_ANSWER, out[0..*len) goes
 * from route->from to route->to (Binding may answer from another RFC 5780
 * address or to another port; TURN answers the client where it is).
 */
enum turn_verdict stun_dispatch(const struct binding_env *env, struct turn_session *s,
                                const uint8_t *req, size_t req_len,
                                const struct sockaddr *client, uint8_t *out, size_t cap,
                                size_t *len, struct binding_route *route);

#endif
