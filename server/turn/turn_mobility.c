/*
 * turn_mobility.c - RFC 8016: a Refresh from a new 5-tuple with a ticket
 * (turn_ticket.c) moves its allocation there (relay sockets, permissions and
 * channels with it): within the worker at once, or from the worker that
 * holds it, which is asked with a turn_move while the Refresh is parked.
 * A ticket that does not open, names no allocation or a spent generation
 * gets 405; another user's, 441.
 */

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/relay/quota.h"
#include "server/turn/turn_int.h"

/* May the holder of a ticket for generation gen, authenticated as au in
 * realm, move a? 0, 405 or 441. */
static int may_move(struct alloc *a, uint32_t gen, const char *realm, size_t realm_len,
                    const struct turn_auth *au)
{
    if (!a || !a->mobile || a->mob_gen != gen)
        return 405;
    struct realm r;
    memset(&r, 0, sizeof r);
    memcpy(r.name, realm, realm_len);
    r.len = (uint8_t)realm_len;
    return turn_owner_ok(a, &r, au) ? 0 : 441;
}

/* By the id of the session log (turn_log_session), which a move keeps. */
static void log_move(const struct alloc *a, const struct sockaddr *to, int from_w, int to_w)
{
    char cs[NET_ADDRSTRLEN];
    log_info("allocation %018llu (%.*s): moved to %s (RFC 8016), worker %d -> %d",
             (unsigned long long)a->sid, (int)a->user_len, a->user,
             net_addr_format(to, cs, sizeof cs), from_w, to_w);
}

/* The answer of a Refresh parked while another worker was asked. */
static size_t resume_move(struct turn_session *s, const struct stun_msg *m,
                          const struct sockaddr *client, struct turn_auth *au,
                          const struct park_answer *ans, uint8_t *out, size_t cap)
{
    struct turn *t = s->svc;
    struct alloc *a = ans->move ? NULL : turn_find_alloc(s, client);
    if (!a)
        return turn_reply_error(t, m, ans->move ? ans->move : 437, au, out, cap);
    return turn_do_refresh(s, a, m, au, out, cap);
}

/* Ask worker `to` for allocation tk names, parking the Refresh. */
static enum turn_verdict ask_worker(struct turn_session *s, const struct stun_msg *m,
                                    const struct sockaddr *client, const struct turn_auth *au,
                                    const struct turn_ticket *tk, int *code)
{
    struct turn *t = s->svc;
    const struct realm *r = turn_realm(t, au->realm);
    struct turn_move *mv = calloc(1, sizeof *mv);
    if (!mv || au->user_len > AUTH_MAX_USERNAME || au->key_len > sizeof mv->key) {
        free(mv);
        *code = 500;
        return TURN_DROP;
    }
    mv->kind = TURN_MOVE_ASK;
    mv->from = t->env.worker_id;
    mv->alloc_id = tk->id;
    mv->gen = tk->gen;
    mv->oauth = au->oauth;
    mv->key_len = (uint8_t)au->key_len;
    memcpy(mv->key, au->key, au->key_len);
    mv->token_left = au->token_left;
    mv->realm_len = r->len;
    memcpy(mv->realm, r->name, r->len);
    mv->user_len = (uint16_t)au->user_len;
    memcpy(mv->user, au->user, au->user_len);
    if (park_move(t->park, s, m, client, au, resume_move, &mv->park_id) < 0) {
        turn_move_free(mv, t->env.quota);
        *code = 500;
        return TURN_DROP;
    }
    /* The worker exists (checked): if posting failed anyway, the parked
     * Refresh times out with 500. */
    if (t->env.move_post(t->env.move_arg, (int)tk->worker, mv) < 0)
        turn_move_free(mv, t->env.quota);
    return TURN_PARKED;
}

enum turn_verdict turn_mobility_refresh(struct turn_session *s, const struct stun_msg *m,
                                        const struct sockaddr *client,
                                        const struct turn_auth *au, uint8_t *out, size_t cap,
                                        size_t *len)
{
    struct turn *t = s->svc;
    const struct stun_attr *mt = stun_attr_find(m, STUN_ATTR_MOBILITY_TICKET);
    struct turn_ticket tk;
    int code = 0;
    if (!t->env.conf->mobility || s->one_alloc ||
        turn_ticket_open(t, m->buf + mt->off, mt->len, &tk) < 0)
        code = 405;
    if (!code && tk.worker != (unsigned)t->env.worker_id) {
        if (tk.worker >= (unsigned)t->env.n_workers || !t->env.move_post)
            code = 405;
        else if (ask_worker(s, m, client, au, &tk, &code) == TURN_PARKED)
            return TURN_PARKED;
    }
    struct alloc *a = NULL;
    if (!code) {
        a = alloc_table_find_id(t->env.relay, tk.id);
        const struct realm *r = turn_realm(t, au->realm);
        code = may_move(a, tk.gen, r->name, r->len, au);
    }
    if (code) {
        *len = turn_reply_error(t, m, code, au, out, cap);
        return *len ? TURN_ANSWER : TURN_DROP;
    }
    alloc_table_rekey(a, s->ops, s->conn, s, client, s->local);
    log_move(a, client, t->env.worker_id, t->env.worker_id);
    *len = turn_do_refresh(s, a, m, au, out, cap);
    return *len ? TURN_ANSWER : TURN_DROP;
}

/* On the worker that holds the allocation: give it, or say why not. */
static void on_ask(struct turn *t, struct turn_move *mv)
{
    struct turn_auth au;
    memset(&au, 0, sizeof au);
    au.user = mv->user;
    au.user_len = mv->user_len;
    au.oauth = mv->oauth;
    au.key_len = mv->key_len;
    memcpy(au.key, mv->key, mv->key_len);
    au.token_left = mv->token_left;
    struct alloc *a = alloc_table_find_id(t->env.relay, mv->alloc_id);
    int code = may_move(a, mv->gen, mv->realm, mv->realm_len, &au);
    OPENSSL_cleanse(&au, sizeof au);
    OPENSSL_cleanse(mv->key, sizeof mv->key);
    int to = mv->from;
    mv->from = t->env.worker_id;
    if (code) {
        mv->kind = TURN_MOVE_REFUSE;
        mv->code = code;
    } else {
        mv->kind = TURN_MOVE_GIVE;
        a->mob_gen++; /* spent even if the other side cannot take it */
        alloc_table_detach(a, &mv->clock_at);
        mv->alloc = a;
    }
    if (t->env.move_post(t->env.move_arg, to, mv) < 0)
        turn_move_free(mv, t->env.quota);
}

/* On the asking worker: the allocation joins the parked Refresh's 5-tuple,
 * which is then answered from the loop. */
static void on_answer(struct turn *t, struct turn_move *mv)
{
    const struct sockaddr *client = NULL;
    bool give = mv->kind == TURN_MOVE_GIVE;
    struct turn_session *s = park_move_answer(t->park, mv->park_id, give ? 0 : mv->code, &client);
    struct alloc *a = give ? mv->alloc : NULL;
    mv->alloc = NULL;
    if (a && s) {
        if (alloc_table_adopt(t->env.relay, a, mv->clock_at, s->ops, s->conn, s, client,
                              s->local) == 0)
            log_move(a, client, mv->from, t->env.worker_id);
    } else if (a) {
        /* Its Refresh stopped waiting (timeout, or its session ended): it
         * ends here, with the session log and statistics of any other end. */
        if (alloc_table_adopt(t->env.relay, a, mv->clock_at, a->ops, NULL, NULL,
                              (const struct sockaddr *)&a->client,
                              (const struct sockaddr *)&a->local) == 0)
            alloc_destroy(a, "its moving Refresh stopped waiting");
    }
    turn_move_free(mv, t->env.quota);
}

void turn_on_move(struct turn *t, struct turn_move *mv)
{
    if (mv->kind == TURN_MOVE_ASK)
        on_ask(t, mv);
    else
        on_answer(t, mv);
}

void turn_move_free(struct turn_move *mv, struct quota *q)
{
    if (mv->alloc) {
        /* the worker stopped before it could take it */
        log_info("allocation %018llu (%.*s): ended while moving between workers",
                 (unsigned long long)mv->alloc->sid, (int)mv->alloc->user_len, mv->alloc->user);
        alloc_detached_free(mv->alloc, q);
    }
    OPENSSL_cleanse(mv, sizeof *mv);
    free(mv);
}
