/*
 * turn_tcp.c - the RFC 6062 methods: Connect (section 5.2), ConnectionBind
 * (5.4), and what relay/ reports of TCP peers: the Connect's answer once
 * the peer connection is decided, and the ConnectionAttempt indication
 * (5.3) of a peer that connected to the relay address.
 *
 * A Connect does not wait in park.c: its question goes to the network, not
 * to Redis. relay/ keeps the request's transaction and key with the peer
 * connection (struct tcp_relay_req), and the answer is signed and sent from
 * the loop when the connect ends; an allocation that ends first takes its
 * connections, and so the question, with it.
 */
#include <openssl/rand.h>
#include <string.h>

#include "server/core/log.h"
#include "server/core/net.h"
#include "server/relay/tcp_relay.h"
#include "server/turn/turn_int.h"

enum turn_verdict turn_connect(struct turn_session *s, struct alloc *a, const struct stun_msg *m,
                               const struct turn_auth *au, uint8_t *out, size_t cap, size_t *len)
{
    struct turn *t = s->svc;
    struct sockaddr_storage peers[ALLOC_MAX_PERMS];
    size_t n = 0;
    int code = a->tcp ? turn_peers_check(t, a, m, peers, &n) : 400;
    if (!code && n != 1)
        code = 400;
    const struct sockaddr *peer = (const struct sockaddr *)&peers[0];
    if (!code && !alloc_perm_ok(a, peer))
        code = 403;
    if (!code) {
        struct tcp_relay_req r = { .fingerprint = m->fingerprint >= 0, .sha256 = au->sha256,
                                   .alg = (uint8_t)au->alg, .key_len = (uint8_t)au->key_len,
                                   .realm = au->realm };
        memcpy(r.tid, m->tid, sizeof r.tid);
        memcpy(r.key, au->key, au->key_len);
        code = tcp_relay_connect(a, peer, &r);
    }
    if (code) {
        char p[NET_ADDRSTRLEN];
        log_debug("allocation %u: connect to %s: %d", a->id,
                  n ? net_addr_format(peer, p, sizeof p) : "-", code);
        *len = turn_reply_error(t, m, code, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    return TURN_PARKED;
}

size_t turn_connection_bind(struct turn_session *s, const struct stun_msg *m,
                            const struct turn_auth *au, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    const struct stun_attr *ci = stun_attr_find(m, STUN_ATTR_CONNECTION_ID);
    uint32_t id = 0;
    struct alloc *a = NULL;
    int code = 0;
    /* Section 5.4: on a new TCP/TLS connection, for a connection waiting
     * for its bind, by the allocation's own user. */
    if (!turn_session_stream(s) || s->alloc || s->data_id || !ci || stun_attr_get_u32(m, ci, &id) < 0 ||
        !(a = tcp_relay_waiting(t->env.relay, id)))
        code = 400;
    else if (!turn_owner_ok(a, turn_realm(t, au->realm), au))
        code = 441;
    if (code)
        return turn_reply_error(t, m, code, au, out, cap);
    stats_request(t->env.stats, a->stats_realm, m->method, 0);
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_SUCCESS, out, cap);
    size_t len = turn_enc_finish(t, &e, m, au);
    if (len)
        s->data_id = id;
    return len;
}

int turn_session_data(struct turn_session *s, struct bufferevent *bev)
{
    uint32_t id = s->data_id;
    s->data_id = 0;
    return tcp_relay_bind(s->svc->env.relay, id, bev, s->transport);
}

int turn_bind_worker(const uint8_t *frame, size_t len)
{
    struct stun_msg m;
    uint32_t id;
    if (len < STUN_HDR_LEN || frame[0] != 0 || frame[1] != STUN_CONNECTION_BIND ||
        stun_msg_decode(&m, frame, len) < 0)
        return -1;
    const struct stun_attr *ci = stun_attr_find(&m, STUN_ATTR_CONNECTION_ID);
    if (!ci || stun_attr_get_u32(&m, ci, &id) < 0)
        return -1;
    return tcp_relay_worker(id);
}

/* The Connect's answer: success with its CONNECTION-ID, or 447. */
static size_t connect_answer(struct turn *t, struct alloc *a, const struct tcp_relay_note *n,
                             uint8_t *out, size_t cap)
{
    const struct tcp_relay_req *r = n->req;
    struct stun_msg m = { .method = STUN_CONNECT, .cls = STUN_CLASS_REQUEST, .tid = r->tid,
                          .integrity = -1, .integrity256 = -1,
                          .fingerprint = r->fingerprint ? 0 : -1 };
    struct turn_auth au = { .realm = r->realm, .user = a->user, .user_len = a->user_len,
                            .key_len = r->key_len, .alg = (enum auth_alg)r->alg,
                            .sha256 = r->sha256 };
    memcpy(au.key, r->key, r->key_len);
    if (n->what == TCP_RELAY_FAILED)
        return turn_reply_error(t, &m, 447, &au, out, cap);
    stats_request(t->env.stats, a->stats_realm, STUN_CONNECT, 0);
    struct stun_enc e;
    turn_enc_start(&e, &m, STUN_CLASS_SUCCESS, out, cap);
    if (stun_enc_add_u32(&e, STUN_ATTR_CONNECTION_ID, n->id) < 0)
        return 0;
    return turn_enc_finish(t, &e, &m, &au);
}

void turn_on_tcp(void *svc, struct alloc *a, const struct tcp_relay_note *n)
{
    struct turn *t = svc;
    uint8_t out[512];
    size_t len = 0;
    if (n->what != TCP_RELAY_ATTEMPT) {
        len = connect_answer(t, a, n, out, sizeof out);
    } else {
        uint8_t tid[STUN_TID_LEN];
        struct stun_enc e;
        RAND_bytes(tid, sizeof tid);
        stun_enc_init(&e, out, sizeof out, STUN_CONNECTION_ATTEMPT, STUN_CLASS_INDICATION, tid,
                      false);
        if (stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, n->peer) == 0 &&
            stun_enc_add_u32(&e, STUN_ATTR_CONNECTION_ID, n->id) == 0)
            len = e.len;
    }
    if (!len)
        return;
    struct iovec iov = { out, len };
    a->ops->send(a->conn, (const struct sockaddr *)&a->client, (const struct sockaddr *)&a->local,
                 &iov, 1, false);
}
