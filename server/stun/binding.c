/*
 * binding.c - see binding.h.
 *
 * Every response is bounded: mandatory attributes first, then SOFTWARE only
 * if it still fits within BINDING_MAX_GROWTH of the request, then FINGERPRINT
 * (which is always budgeted), so the amplification factor of an unauthenticated
 * exchange stays a small constant whatever the configuration says.
 *
 * Counting (env->stats, when set): every answer this service builds is one
 * request by method and code, and every datagram it drops because it is not
 * STUN or fails its FINGERPRINT is one malformed drop. Indications, stray
 * responses and the messages handed back to the caller (BINDING_OTHER) are
 * not counted here (their service counts its own), so nothing is counted
 * twice. A few relaxed increments.
 */
#include "server/stun/binding.h"

#include <string.h>

#include "proto/stun.h"
#include "server/core/net.h"
#include "server/core/stats.h"

/* The header is believable enough to answer: a request whose transaction ID
 * we can echo, even if its attributes are broken (RFC 8489 section 6.3.1:
 * malformed requests get 400). */
static bool header_is_request(const uint8_t *b, size_t len)
{
    if (len < STUN_HDR_LEN || (b[0] & 0xC0) != 0)
        return false;
    size_t body = ((size_t)b[2] << 8) | b[3];
    if (body + STUN_HDR_LEN != len || (body & 3) != 0)
        return false;
    uint16_t type = (uint16_t)((b[0] << 8) | b[1]);
    return (type & 0x0110) == 0; /* class bits 00: request */
}

static bool header_is_classic(const uint8_t *b)
{
    uint32_t cookie = ((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7];
    return cookie != STUN_MAGIC;
}

static uint16_t header_method(const uint8_t *b)
{
    uint16_t t = (uint16_t)((b[0] << 8) | b[1]);
    return (uint16_t)((t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2));
}

/* Optional SOFTWARE within budget, then FINGERPRINT if asked for. */
static size_t finish(const struct binding_env *env, struct stun_enc *e, size_t req_len,
                     bool fingerprint)
{
    size_t limit = req_len + BINDING_MAX_GROWTH;
    size_t fp = fingerprint ? 8 : 0;
    if (env->software && env->software_len) {
        size_t sw = 4 + ((env->software_len + 3) & ~(size_t)3);
        if (e->len + sw + fp <= limit)
            stun_enc_add(e, STUN_ATTR_SOFTWARE, env->software, env->software_len);
    }
    if (fingerprint && stun_enc_add_fingerprint(e) < 0)
        return 0;
    return e->len <= limit ? e->len : 0;
}

size_t binding_error(const struct binding_env *env, const uint8_t *req, size_t req_len,
                     int code, const uint16_t *unknown, size_t n_unknown, bool fingerprint,
                     uint8_t *out, size_t cap)
{
    struct stun_enc e;
    bool classic = header_is_classic(req);
    if (stun_enc_init(&e, out, cap, header_method(req), STUN_CLASS_ERROR,
                      classic ? req + 4 : req + 8, classic) < 0)
        return 0;
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (n_unknown && stun_enc_add_unknown(&e, unknown, n_unknown) < 0)
        return 0;
    return finish(env, &e, req_len, fingerprint);
}

/* RFC 5780 section 7.2: which socket answers, given CHANGE-REQUEST flags. */
static unsigned route_from(unsigned self, uint32_t flags)
{
    unsigned from = self;
    if (flags & STUN_CHANGE_IP)
        from ^= BINDING_ALT_IP;
    if (flags & STUN_CHANGE_PORT)
        from ^= BINDING_ALT_PORT;
    return from;
}

/* One answer built: count it under the request's method and code. */
static size_t binding_count_answer(const struct binding_env *env, unsigned method, int code,
                                   size_t len)
{
    if (env->stats && len)
        stats_request(env->stats, 0, method, code);
    return len;
}

/* An error answer, counted. */
static size_t binding_answer_error(const struct binding_env *env, const uint8_t *req,
                                   size_t req_len, int code, const uint16_t *unknown,
                                   size_t n_unknown, bool fingerprint, uint8_t *out, size_t cap)
{
    size_t len = binding_error(env, req, req_len, code, unknown, n_unknown, fingerprint, out, cap);
    return binding_count_answer(env, header_method(req), code, len);
}

/* Dropped: not STUN, or a FINGERPRINT that does not match. */
static size_t binding_count_malformed(const struct binding_env *env)
{
    if (env->stats)
        stats_add(&env->stats->drops[STATS_DROP_MALFORMED], 1);
    return 0;
}

size_t binding_handle(const struct binding_env *env, const uint8_t *req, size_t req_len,
                      const struct sockaddr *client, uint8_t *out, size_t cap,
                      struct binding_route *route, struct stun_msg *other)
{
    struct stun_msg local, *m = other ? other : &local;
    route->from = env->self;
    memcpy(&route->to, client, net_addr_len(client));

    if (stun_msg_decode(m, req, req_len) < 0) {
        if (!header_is_request(req, req_len))
            return binding_count_malformed(env);
        return binding_answer_error(env, req, req_len, 400, NULL, 0, false, out, cap);
    }
    bool fingerprint = m->fingerprint >= 0;
    if (fingerprint && !stun_msg_check_fingerprint(m))
        return binding_count_malformed(env);
    if (m->method != STUN_BINDING && other)
        return BINDING_OTHER;
    if (m->cls != STUN_CLASS_REQUEST)
        return 0; /* indications and stray responses are dropped */
    if (m->method != STUN_BINDING)
        return binding_answer_error(env, req, req_len, 400, NULL, 0, fingerprint, out, cap);
    if (m->n_unknown)
        return binding_answer_error(env, req, req_len, 420, m->unknown, m->n_unknown, fingerprint,
                                    out, cap);

    uint32_t flags = 0;
    const struct stun_attr *a = stun_attr_find(m, STUN_ATTR_CHANGE_REQUEST);
    if (a && stun_attr_get_u32(m, a, &flags) < 0)
        return binding_answer_error(env, req, req_len, 400, NULL, 0, fingerprint, out, cap);
    flags &= STUN_CHANGE_IP | STUN_CHANGE_PORT;
    const struct stun_attr *rp = stun_attr_find(m, STUN_ATTR_RESPONSE_PORT);
    if ((flags || rp) && !env->rfc5780) {
        /* Without a second address we cannot honour these: say we do not
         * understand them, which tells RFC 5780 clients discovery is off. */
        uint16_t unk[2];
        size_t n = 0;
        if (flags)
            unk[n++] = STUN_ATTR_CHANGE_REQUEST;
        if (rp)
            unk[n++] = STUN_ATTR_RESPONSE_PORT;
        return binding_answer_error(env, req, req_len, 420, unk, n, fingerprint, out, cap);
    }
    if ((flags || rp) && env->stream)
        return binding_answer_error(env, req, req_len, 400, NULL, 0, fingerprint, out, cap);
    if (rp) {
        if (rp->len != 4)
            return binding_answer_error(env, req, req_len, 400, NULL, 0, fingerprint, out, cap);
        unsigned port = ((unsigned)req[rp->off] << 8) | req[rp->off + 1];
        if (port == 0)
            return binding_answer_error(env, req, req_len, 400, NULL, 0, fingerprint, out, cap);
        net_addr_set_port((struct sockaddr *)&route->to, port);
    }
    if (env->rfc5780)
        route->from = route_from(env->self, flags);

    struct stun_enc e;
    if (stun_enc_init(&e, out, cap, STUN_BINDING, STUN_CLASS_SUCCESS, m->tid, m->classic) < 0)
        return 0;
    const struct sockaddr *origin = env->rfc5780
                                        ? (const struct sockaddr *)&env->addrs[route->from]
                                        : (const struct sockaddr *)&env->local;
    const struct sockaddr *other_addr = (const struct sockaddr *)&env->addrs[env->self ^ 3u];
    int rc;
    if (m->classic) {
        /* RFC 3489 section 11.2: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS. */
        rc = stun_enc_add_addr(&e, STUN_ATTR_MAPPED_ADDRESS, client);
        if (rc >= 0)
            rc = stun_enc_add_addr(&e, STUN_ATTR_SOURCE_ADDRESS, origin);
        if (rc >= 0 && env->rfc5780)
            rc = stun_enc_add_addr(&e, STUN_ATTR_CHANGED_ADDRESS, other_addr);
    } else {
        rc = stun_enc_add_xaddr(&e, STUN_ATTR_XOR_MAPPED_ADDRESS, client);
        if (rc >= 0 && env->rfc5780) {
            rc = stun_enc_add_addr(&e, STUN_ATTR_RESPONSE_ORIGIN, origin);
            if (rc >= 0)
                rc = stun_enc_add_addr(&e, STUN_ATTR_OTHER_ADDRESS, other_addr);
        }
    }
    if (rc < 0)
        return 0;
    const struct stun_attr *pad = stun_attr_find(m, STUN_ATTR_PADDING);
    if (pad && !env->stream) {
        /* RFC 5780 section 7.6: pad the response as the request was padded
         * (zero bytes; the request already paid for every one of them). */
        static const uint8_t zeros[1024];
        size_t n = pad->len < sizeof zeros ? pad->len : sizeof zeros;
        if (stun_enc_add(&e, STUN_ATTR_PADDING, zeros, n) < 0)
            return 0;
    }
    return binding_count_answer(env, STUN_BINDING, 0, finish(env, &e, req_len, fingerprint));
}
