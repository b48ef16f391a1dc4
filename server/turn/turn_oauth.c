/*
 * turn_oauth.c - RFC 7635 third-party authorization: a client that got an
 * access token from an authorization server presents it in ACCESS-TOKEN,
 * with the key id (kid) as USERNAME, and signs its request with the MAC key
 * sealed inside the token. The token is opened with the AS-RS key of that
 * kid (oauth.keys, or coturn's turn/oauth/kid/<kid> in Redis), its lifetime
 * bounds the allocation's, and a kid with a realm moves the allocation into
 * that realm, as coturn does.
 *
 * Interoperability with coturn's clients decides two details RFC 7635 leaves
 * to the implementation:
 *   - coturn signs with only the first 16 bytes of a 20-byte MAC key (its
 *     long-term-credential key size); the whole key is tried first, then
 *     the 16 bytes, and the answer is signed with whichever matched;
 *   - its client changes kid on every Refresh (a fresh token each time) and
 *     sends later requests without a token, signed with the last MAC key:
 *     an allocation made with a token accepts any valid token, or its
 *     current MAC key, and takes the new key (dispatch, turn_request_authed),
 *     but only until its token expires: the allocation keeps the token's end
 *     and a request without a new token neither passes nor lives past it;
 *   - without oauth.server_name the associated data is the REALM the request
 *     carries (the challenge's), not the realm a kid moved the allocation
 *     to, so tokens sealed for the name a client was told keep working.
 */
#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "server/turn/turn_int.h"

bool turn_oauth_on(const struct turn *t)
{
    return t->env.conf->has_oauth;
}

const char *turn_oauth_server_name(const struct turn *t, unsigned realm, size_t *len)
{
    const char *sn = t->env.conf->oauth_server_name;
    if (!sn[0]) {
        const struct realm *r = turn_realm(t, realm);
        *len = r->len;
        return r->name;
    }
    *len = strlen(sn);
    return sn;
}

/* MESSAGE-INTEGRITY(-SHA256) of m under key[0..len): 0 or -1. */
static int check_mi(const struct stun_msg *m, const uint8_t *key, size_t len, bool sha256)
{
    return sha256 ? stun_msg_check_integrity_sha256(m, key, len)
                  : stun_msg_check_integrity(m, key, len);
}

/* Verify m with a MAC key, whole or coturn's 16 bytes; au->key on 0. */
static int verify_mac(const struct stun_msg *m, const uint8_t *key, size_t len,
                      struct turn_auth *au)
{
    au->sha256 = m->integrity256 >= 0;
    size_t tries[2] = { len, len == 20 ? 16 : 0 };
    for (int i = 0; i < 2; i++) {
        if (!tries[i] || tries[i] > sizeof au->key || check_mi(m, key, tries[i], au->sha256) < 0)
            continue;
        memcpy(au->key, key, tries[i]);
        au->key_len = tries[i];
        au->oauth = true;
        return 0;
    }
    return 401;
}

int turn_oauth_with_key(struct turn *t, const struct stun_msg *m, const struct oauth_key *k,
                        struct turn_auth *au)
{
    uint64_t now = (uint64_t)time(NULL);
    const struct stun_attr *tok = stun_attr_find(m, STUN_ATTR_ACCESS_TOKEN);
    if (!tok || oauth_key_check_time(k, now) < 0)
        return 401;
    const char *sn = t->env.conf->oauth_server_name;
    size_t sn_len = strlen(sn);
    const struct stun_attr *realm = stun_attr_find(m, STUN_ATTR_REALM);
    if (!sn_len && realm) {
        sn = (const char *)m->buf + realm->off;
        sn_len = realm->len;
    }
    char aad[CONF_STR];
    if (sn_len >= sizeof aad)
        return 401;
    memcpy(aad, sn, sn_len);
    aad[sn_len] = 0;
    struct oauth_token tk;
    int code = 401;
    /* a token within its last second (the skew allows it) would make an
     * allocation that dies as it is made: stale, like an expired one */
    if (oauth_token_decrypt(k, aad, m->buf + tok->off, tok->len, &tk) == 0 &&
        oauth_token_check_time(&tk, now) == 0 &&
        oauth_token_issued(&tk) + tk.lifetime > now &&
        verify_mac(m, tk.mac_key, tk.mac_key_len, au) == 0) {
        uint64_t left = oauth_token_issued(&tk) + tk.lifetime - now;
        au->token_left = left < UINT32_MAX ? (uint32_t)left : UINT32_MAX - 1;
        if (k->realm[0]) {
            int i = realm_set_learn(t->env.realms, k->realm, strlen(k->realm));
            if (i >= 0)
                au->realm = (unsigned)i;
        }
        code = 0;
    }
    OPENSSL_cleanse(&tk, sizeof tk);
    return code;
}

enum turn_auth_step turn_oauth_authenticate(struct turn *t, const struct stun_msg *m,
                                            struct turn_auth *au, int *code)
{
    const struct oauth_key *k = auth_realms_oauth(t->env.auth, au->user, au->user_len);
    if (k) {
        *code = turn_oauth_with_key(t, m, k, au);
        return *code ? TURN_AUTH_ERROR : TURN_AUTH_OK;
    }
    *code = 401;
    if (!t->env.cluster)
        return TURN_AUTH_ERROR;
    struct cluster_oauth co;
    cluster_oauth_cached(t->env.cluster, au->user, au->user_len, &co);
    if (co.status == CLUSTER_KEYS_MISS)
        return TURN_AUTH_ASK_OAUTH;
    if (co.status == CLUSTER_KEYS_FAILED)
        *code = 500;
    else if (co.status == CLUSTER_KEYS_FOUND)
        *code = turn_oauth_with_key(t, m, &co.key, au);
    OPENSSL_cleanse(&co, sizeof co);
    return *code ? TURN_AUTH_ERROR : TURN_AUTH_OK;
}

int turn_oauth_with_alloc(const struct stun_msg *m, const struct alloc *a, struct turn_auth *au)
{
    uint64_t now = (uint64_t)time(NULL);
    if (a->token_end <= now || verify_mac(m, a->key, a->key_len, au) != 0)
        return 401; /* its token is over: a new one, or nothing */
    au->realm = a->realm;
    au->token_left = (uint32_t)(a->token_end - now);
    return 0;
}
