/*
 * oauth.c - RFC 7635 self-contained access tokens and their AS-RS keys.
 *
 * The ACCESS-TOKEN value (RFC 7635 section 6.2), all integers big-endian:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        nonce_length (12)      |                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+    nonce (AES-GCM IV)         |
 *   |                       (nonce_length bytes)                    |
 *   +---------------------------------------------------------------+
 *   |  AES-GCM ciphertext of { key_length(16) mac_key[key_length]   |
 *   |  timestamp(64) lifetime(32) }, exactly as long as that block  |
 *   +---------------------------------------------------------------+
 *   |                     GCM tag (16 bytes)                        |
 *   +---------------------------------------------------------------+
 *
 * The nonce bytes after the length are the GCM IV, sent in clear; the
 * associated data is the STUN server name (the THIRD-PARTY-AUTHORIZATION
 * value, no NUL), so a token minted for one server of a domain does not open
 * another. coturn (src/client/ns_turn_msg.c, encode_oauth_token_gcm /
 * decode_oauth_token_gcm) does exactly this, with a 12-byte nonce and the tag
 * after the ciphertext (RFC 5116 section 5.1's C || T).
 *
 * Design: decrypt checks every length against len before touching a byte,
 * authenticates before it parses the plaintext (so a flipped bit in the
 * encrypted block is an authentication failure, never a parse of forged
 * data), and requires the block to be exactly as long as its key_length says.
 * Only RFC 5116's 12-byte GCM nonce is accepted: coturn never sends another,
 * and a fixed length leaves nothing to negotiate. The plaintext, the decoded
 * ikm and failed outputs are wiped, since they hold keys.
 */
#include "auth/oauth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

/* coturn's OAUTH_KEY_SIZE: the largest decoded ikm it stores. */
#define OAUTH_IKM_MAX 256
/* The encrypted block around the mac key: key_length, timestamp, lifetime. */
#define OAUTH_BLOCK_FIXED (2 + 8 + 4)
#define OAUTH_BLOCK_MAX (OAUTH_BLOCK_FIXED + OAUTH_MAC_KEY_MAX)
/* The smallest token: a one-byte mac key. */
#define OAUTH_TOKEN_MIN (2 + OAUTH_NONCE_LEN + OAUTH_BLOCK_FIXED + 1 + OAUTH_TAG_LEN)

static uint64_t oauth_get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void oauth_put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--, v >>= 8)
        p[i - 1] = (uint8_t)v;
}

int oauth_alg_parse(const char *name, enum oauth_alg *out)
{
    if (!name || !out)
        return -1;
    if (strcasecmp(name, "A256GCM") == 0)
        *out = OAUTH_A256GCM;
    else if (strcasecmp(name, "A128GCM") == 0)
        *out = OAUTH_A128GCM;
    else
        return -1;
    return 0;
}

size_t oauth_alg_key_len(enum oauth_alg a)
{
    switch (a) {
    case OAUTH_A256GCM: return 32;
    case OAUTH_A128GCM: return 16;
    }
    return 0;
}

static int oauth_b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/*
 * Standard base64 with padding (RFC 4648 section 4), the form coturn stores
 * (its decoder too wants a multiple of 4 characters). Unlike coturn's, an
 * unknown character is an error, not a zero. Returns the length or -1.
 */
static int oauth_base64_decode(const char *in, uint8_t *out, size_t cap)
{
    size_t n = strlen(in), pad = 0, o = 0;
    if (n == 0 || n % 4)
        return -1;
    pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    size_t total = n / 4 * 3 - pad;
    if (total > cap)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = i + j >= n - pad ? 0 : oauth_b64_digit(in[i + j]);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        for (size_t j = 0; j < 3 && o < total; j++)
            out[o++] = (uint8_t)(v >> (16 - 8 * j));
    }
    return (int)o;
}

/*
 * coturn (convert_oauth_key_data) takes the AS-RS key straight from the ikm:
 * its first 16 or 32 bytes, no HKDF. A shorter ikm coturn pads with zeros;
 * we refuse it rather than run AES-256 on a half-zero key.
 */
int oauth_key_init(struct oauth_key *k, const char *kid, const char *ikm_base64, const char *alg,
                   uint64_t timestamp, uint32_t lifetime, const char *realm)
{
    uint8_t ikm[OAUTH_IKM_MAX];
    if (!k)
        return -1;
    memset(k, 0, sizeof(*k));
    if (!kid || !ikm_base64 || !*kid || strlen(kid) >= sizeof(k->kid))
        return -1;
    if (realm && strlen(realm) >= sizeof(k->realm))
        return -1;
    /* turndb/schema.userdb.redis documents A256GCM as the default. */
    k->alg = OAUTH_A256GCM;
    if (alg && *alg && oauth_alg_parse(alg, &k->alg) < 0)
        return -1;
    k->key_len = oauth_alg_key_len(k->alg);
    int n = oauth_base64_decode(ikm_base64, ikm, sizeof(ikm));
    if (n < (int)k->key_len) {
        OPENSSL_cleanse(ikm, sizeof(ikm));
        OPENSSL_cleanse(k, sizeof(*k));
        return -1;
    }
    memcpy(k->key, ikm, k->key_len);
    OPENSSL_cleanse(ikm, sizeof(ikm));
    strcpy(k->kid, kid);
    if (realm)
        strcpy(k->realm, realm);
    k->timestamp = timestamp;
    k->lifetime = lifetime;
    return 0;
}

/* coturn's get_user_key (src/apps/relay/userdb.c): refused once
 * now >= timestamp + lifetime + OAUTH_TIME_DELTA; lifetime 0 never expires. */
int oauth_key_check_time(const struct oauth_key *k, uint64_t now)
{
    if (k->lifetime == 0)
        return 0;
    uint64_t end = k->timestamp + k->lifetime + OAUTH_TIME_SKEW;
    if (end < k->timestamp) /* a timestamp near 2^64: far future */
        return 0;
    return now < end ? 0 : -1;
}

/*
 * AES-GCM of in[0..n) into out (same length), associated data the server
 * name. Encrypting writes tag; decrypting checks it. 0, -1 on a setup
 * failure, OAUTH_ERR_AUTH when the tag does not verify.
 */
static int oauth_gcm(int enc, const struct oauth_key *k, const char *aad, const uint8_t *nonce,
                     const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[OAUTH_TAG_LEN])
{
    const EVP_CIPHER *c = k->alg == OAUTH_A128GCM ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, rc = -1;
    if (!ctx)
        return -1;
    if (EVP_CipherInit_ex(ctx, c, NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, OAUTH_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, k->key, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
        EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        goto done;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, OAUTH_TAG_LEN, tag) != 1)
        goto done;
    if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1) {
        rc = enc ? -1 : OAUTH_ERR_AUTH;
        goto done;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, OAUTH_TAG_LEN, tag) != 1)
        goto done;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* The key and the server name a token can be opened or made with. */
static int oauth_args_ok(const struct oauth_key *k, const char *server_name)
{
    return k && k->key_len && k->key_len == oauth_alg_key_len(k->alg) && server_name &&
           *server_name && strlen(server_name) <= 0xFFFF; /* a STUN attribute value */
}

int oauth_token_decrypt(const struct oauth_key *k, const char *server_name, const uint8_t *tok,
                        size_t len, struct oauth_token *out)
{
    if (!oauth_args_ok(k, server_name) || !tok || !out)
        return OAUTH_ERR_MALFORMED;
    if (len < OAUTH_TOKEN_MIN || len > OAUTH_TOKEN_MAX)
        return OAUTH_ERR_MALFORMED;
    if (oauth_get_be(tok, 2) != OAUTH_NONCE_LEN)
        return OAUTH_ERR_MALFORMED;
    const uint8_t *nonce = tok + 2;
    const uint8_t *ct = nonce + OAUTH_NONCE_LEN;
    size_t n = len - 2 - OAUTH_NONCE_LEN - OAUTH_TAG_LEN; /* OAUTH_BLOCK_FIXED+1..BLOCK_MAX */
    uint8_t tag[OAUTH_TAG_LEN], plain[OAUTH_BLOCK_MAX];
    memcpy(tag, ct + n, OAUTH_TAG_LEN);

    int rc = oauth_gcm(0, k, server_name, nonce, ct, n, plain, tag);
    if (rc == 0) {
        size_t klen = (size_t)oauth_get_be(plain, 2);
        if (klen == 0 || klen > OAUTH_MAC_KEY_MAX || n != OAUTH_BLOCK_FIXED + klen) {
            rc = OAUTH_ERR_MALFORMED;
        } else {
            memset(out, 0, sizeof(*out));
            memcpy(out->mac_key, plain + 2, klen);
            out->mac_key_len = klen;
            out->timestamp = oauth_get_be(plain + 2 + klen, 8);
            out->lifetime = (uint32_t)oauth_get_be(plain + 2 + klen + 8, 4);
        }
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return rc;
}

int oauth_token_encrypt(const struct oauth_key *k, const char *server_name,
                        const struct oauth_token *t, const uint8_t *nonce, size_t nonce_len,
                        uint8_t *out, size_t cap)
{
    if (!oauth_args_ok(k, server_name) || !t || !nonce || !out)
        return -1;
    if (nonce_len != OAUTH_NONCE_LEN || t->mac_key_len == 0 || t->mac_key_len > OAUTH_MAC_KEY_MAX)
        return -1;
    size_t n = OAUTH_BLOCK_FIXED + t->mac_key_len;
    size_t total = 2 + OAUTH_NONCE_LEN + n + OAUTH_TAG_LEN;
    if (cap < total)
        return -1;

    uint8_t plain[OAUTH_BLOCK_MAX];
    oauth_put_be(plain, t->mac_key_len, 2);
    memcpy(plain + 2, t->mac_key, t->mac_key_len);
    oauth_put_be(plain + 2 + t->mac_key_len, t->timestamp, 8);
    oauth_put_be(plain + 2 + t->mac_key_len + 8, t->lifetime, 4);

    oauth_put_be(out, OAUTH_NONCE_LEN, 2);
    memcpy(out + 2, nonce, OAUTH_NONCE_LEN);
    uint8_t *ct = out + 2 + OAUTH_NONCE_LEN;
    int rc = oauth_gcm(1, k, server_name, nonce, plain, n, ct, ct + n);
    OPENSSL_cleanse(plain, sizeof(plain));
    if (rc < 0) {
        OPENSSL_cleanse(out, total);
        return -1;
    }
    return (int)total;
}

/* RFC 7635 section 6.2: 48 bits of seconds since 1970, then 16 bits of
 * 1/64000 s ("Native format - Unix"). */
uint64_t oauth_token_issued(const struct oauth_token *t)
{
    return t->timestamp >> 16;
}

uint64_t oauth_timestamp_make(uint64_t unix_seconds)
{
    return unix_seconds << 16;
}

/*
 * coturn refuses a token once now >= issued + lifetime + OAUTH_TIME_DELTA
 * (get_user_key) and never looks at the other side. We also refuse one
 * issued more than the same allowance in the future: an authorization
 * server with a clock ahead of ours would otherwise stretch every lifetime.
 */
int oauth_token_check_time(const struct oauth_token *t, uint64_t now)
{
    uint64_t issued = oauth_token_issued(t); /* < 2^48: no overflow below */
    if (issued > now && issued - now > OAUTH_TIME_SKEW)
        return -1;
    return now < issued + t->lifetime + OAUTH_TIME_SKEW ? 0 : -1;
}
