/*
 * turn_reply.c - building TURN answers: the common header and tail
 * (SOFTWARE, MESSAGE-INTEGRITY(-SHA256) for authenticated requests,
 * FINGERPRINT when the request had one) and error answers.
 */
#include <string.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/stats.h"
#include "server/turn/turn_int.h"

void turn_enc_start(struct stun_enc *e, const struct stun_msg *m, uint8_t cls, uint8_t *out,
                    size_t cap)
{
    stun_enc_init(e, out, cap, m->method, cls, m->tid, false);
}

size_t turn_enc_finish(const struct turn *t, struct stun_enc *e, const struct stun_msg *m,
                       const struct turn_auth *au)
{
    const struct conf *c = t->env.conf;
    if (c->software[0])
        stun_enc_add(e, STUN_ATTR_SOFTWARE, c->software, strlen(c->software));
    if (au) {
        int rc = au->sha256 ? stun_enc_add_integrity_sha256(e, au->key, au->key_len)
                            : stun_enc_add_integrity(e, au->key, au->key_len);
        if (rc < 0)
            return 0;
    }
    if (m->fingerprint >= 0 && stun_enc_add_fingerprint(e) < 0)
        return 0;
    return e->len;
}

size_t turn_reply_error(const struct turn *t, const struct stun_msg *m, int code,
                        const struct turn_auth *au, uint8_t *out, size_t cap)
{
    stats_request(t->env.stats, au ? turn_realm_stats(t, au->realm) : 0, m->method, code);
    log_debug("method 0x%03x from %.*s: %d %s", m->method, au ? (int)au->user_len : 1,
              au ? au->user : "-", code, stun_error_reason(code));
    struct stun_enc e;
    turn_enc_start(&e, m, STUN_CLASS_ERROR, out, cap);
    if (stun_enc_add_error(&e, code, NULL) < 0)
        return 0;
    if (code == 420)
        stun_enc_add_unknown(&e, m->unknown, m->n_unknown);
    return turn_enc_finish(t, &e, m, au);
}
