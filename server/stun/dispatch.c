/*
 * dispatch.c - see dispatch.h.
 */
#include "server/stun/dispatch.h"

#include "proto/stun.h"

enum turn_verdict stun_dispatch(const struct binding_env *env, struct turn_session *s,
                                const uint8_t *req, size_t req_len,
                                const struct sockaddr *client, uint8_t *out, size_t cap,
                                size_t *len, struct binding_route *route)
{
    struct stun_msg m;
    size_t n = binding_handle(env, req, req_len, client, out, cap, route, s ? &m : NULL);
    if (n != BINDING_OTHER) {
        *len = n;
        return n ? TURN_ANSWER : TURN_DROP;
    }
    return turn_handle(s, &m, client, out, cap, len);
}
