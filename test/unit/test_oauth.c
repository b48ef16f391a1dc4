/*
 * test_oauth.c - unit tests of the RFC 7635 access-token codec (auth/oauth.c).
 *
 * Design: the interop fixtures are tokens made by a third-party tool,
 * coturn 4.6.1's turnutils_oauth (Debian package coturn), with the exact
 * command line above each; decrypting them must give back what that command
 * line said, and encrypting the same body under the same nonce must give
 * the same bytes (GCM is deterministic). Malformed-but-authentic tokens are
 * sealed here with OpenSSL directly, independently of the code under test.
 * Every decrypt reads from a heap copy of exactly len bytes, so under
 * AddressSanitizer any read past the token is a crash, not a silent pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth.h"

/* coturn's built-in turnutils_uclient -J keys (src/apps/uclient/mainuclient.c). */
#define NORTH_IKM "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK" /* 33 bytes */
#define UNION_IKM "MTIzNDU2Nzg5MDEyMzQ1Ngo="                     /* 17 bytes */
#define OLDEMPIRE_IKM "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIK" /* 33 bytes */

/*
 * turnutils_oauth -e --server-name blackdow.carleon.gov --auth-key-id north
 *   --auth-key MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK
 *   --auth-key-timestamp 1700000000 --auth-key-lifetime 86400
 *   --auth-key-as-rs-alg A256GCM --token-nonce dGVybi1ub25jZS1B
 *   --token-mac-key WuNxDJtC2Bb3LmSpO8WAHX4ptGY=
 *   --token-timestamp 111411206585600 --token-lifetime 3600
 * (nonce "tern-nonce-A"; timestamp (1700000100 << 16) + 32000, half a second)
 */
static const char vec_a256_hex[] =
    "000c7465726e2d6e6f6e63652d4101481db6f4f775fbd3b297793c1081232b9fedc5c6"
    "211893f2c8fa4e201c9ec715cf38aa7115fda65d3e4bd4d5f007ef9807";
static const char vec_a256_mac_hex[] = "5ae3710c9b42d816f72e64a93bc5801d7e29b466";
/*
 * turnutils_oauth -e --server-name north.gov --auth-key-id union
 *   --auth-key MTIzNDU2Nzg5MDEyMzQ1Ngo=
 *   --auth-key-timestamp 1700000000 --auth-key-lifetime 86400
 *   --auth-key-as-rs-alg A128GCM --token-nonce dGVybi1ub25jZS1C
 *   --token-mac-key xBcLiOJfOp1h8MsuekkT1Y7GPyE=
 *   --token-timestamp 111411435929601 --token-lifetime 600
 * (nonce "tern-nonce-B"; timestamp (1700003600 << 16) + 1)
 */
static const char vec_a128_hex[] =
    "000c7465726e2d6e6f6e63652d427c450371a0841a41b2401f96265ff42d8938ba1817"
    "7c3732056e9675921f25207924a3594a8ad451f7405527a4ea984d7fc6";
static const char vec_a128_mac_hex[] = "c4170b88e25f3a9d61f0cb2e7a4913d58ec63f21";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* oauth_token_decrypt over a heap copy of exactly len bytes. */
static int decrypt_exact(const struct oauth_key *k, const char *sn, const uint8_t *tok, size_t len,
                         struct oauth_token *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, tok, len);
    int rc = oauth_token_decrypt(k, sn, copy, len, out);
    free(copy);
    return rc;
}

static void key_north(struct oauth_key *k)
{
    assert_int_equal(oauth_key_init(k, "north", NORTH_IKM, "A256GCM", 0, 0, "crinna.org"), 0);
}

static void key_union(struct oauth_key *k)
{
    assert_int_equal(oauth_key_init(k, "union", UNION_IKM, "A128GCM", 0, 0, "north.gov"), 0);
}

/* ---- algorithms and keys ------------------------------------------------- */

static void test_alg_names_and_key_lengths(void **state)
{
    (void)state;
    enum oauth_alg a;
    assert_int_equal(oauth_alg_parse("A256GCM", &a), 0);
    assert_int_equal(a, OAUTH_A256GCM);
    assert_int_equal(oauth_alg_parse("a128gcm", &a), 0);
    assert_int_equal(a, OAUTH_A128GCM);
    assert_int_equal(oauth_alg_parse("A192GCM", &a), -1);
    assert_int_equal(oauth_alg_parse("", &a), -1);
    assert_int_equal(oauth_alg_key_len(OAUTH_A256GCM), 32);
    assert_int_equal(oauth_alg_key_len(OAUTH_A128GCM), 16);
}

/* The ikms end in '\n' (made with echo | base64): coturn uses the first 32
 * or 16 bytes, and so must we for -J clients to get in. */
static void test_key_uclient_builtin_keys_decode_to_alg_length(void **state)
{
    (void)state;
    struct oauth_key k;
    key_north(&k);
    assert_string_equal(k.kid, "north");
    assert_int_equal(k.alg, OAUTH_A256GCM);
    assert_int_equal(k.key_len, 32);
    assert_memory_equal(k.key, "01234567890123456789012345678901", 32);
    assert_string_equal(k.realm, "crinna.org");

    key_union(&k);
    assert_int_equal(k.alg, OAUTH_A128GCM);
    assert_int_equal(k.key_len, 16);
    assert_memory_equal(k.key, "1234567890123456", 16);
    assert_string_equal(k.realm, "north.gov");

    assert_int_equal(oauth_key_init(&k, "oldempire", OLDEMPIRE_IKM, "A256GCM", 0, 0, ""), 0);
    assert_int_equal(k.key_len, 32);
    assert_memory_equal(k.key, "12345678901234567890123456789012", 32);
    assert_string_equal(k.realm, "");
}

static void test_key_init_rejects_bad_input(void **state)
{
    (void)state;
    struct oauth_key k;
    char long_kid[200];
    memset(long_kid, 'k', sizeof(long_kid) - 1);
    long_kid[sizeof(long_kid) - 1] = '\0';
    assert_int_equal(oauth_key_init(&k, "", NORTH_IKM, NULL, 0, 0, NULL), -1);
    assert_int_equal(oauth_key_init(&k, long_kid, NORTH_IKM, NULL, 0, 0, NULL), -1);
    assert_int_equal(oauth_key_init(&k, "x", "MDEy*zQ1", NULL, 0, 0, NULL), -1); /* alphabet */
    assert_int_equal(oauth_key_init(&k, "x", "MDEyMzQ", NULL, 0, 0, NULL), -1);  /* not 4n */
    assert_int_equal(oauth_key_init(&k, "x", "MD=yMzQ1", NULL, 0, 0, NULL), -1); /* '=' inside */
    assert_int_equal(oauth_key_init(&k, "x", NORTH_IKM, "A512GCM", 0, 0, NULL), -1);
    /* 17 bytes: enough for A128GCM, too short for A256GCM (coturn pads zeros) */
    assert_int_equal(oauth_key_init(&k, "x", UNION_IKM, "A256GCM", 0, 0, NULL), -1);
    assert_int_equal(k.key_len, 0);
    /* no algorithm: A256GCM, the documented default */
    assert_int_equal(oauth_key_init(&k, "x", NORTH_IKM, NULL, 0, 0, NULL), 0);
    assert_int_equal(k.alg, OAUTH_A256GCM);
}

static void test_key_lifetime_zero_never_expires_else_skew_after_end(void **state)
{
    (void)state;
    struct oauth_key k;
    assert_int_equal(oauth_key_init(&k, "x", NORTH_IKM, NULL, 1000, 0, NULL), 0);
    assert_int_equal(oauth_key_check_time(&k, UINT64_C(4000000000)), 0);
    assert_int_equal(oauth_key_init(&k, "x", NORTH_IKM, NULL, 1000, 100, NULL), 0);
    assert_int_equal(oauth_key_check_time(&k, 1000 + 100 + OAUTH_TIME_SKEW - 1), 0);
    assert_int_equal(oauth_key_check_time(&k, 1000 + 100 + OAUTH_TIME_SKEW), -1);
}

/* ---- third-party vectors --------------------------------------------------- */

static void check_vector(const struct oauth_key *k, const char *sn, const char *tok_hex,
                         const char *mac_hex, uint64_t ts, uint32_t lifetime)
{
    uint8_t tok[OAUTH_TOKEN_MAX], mac[20];
    size_t len = unhex(tok_hex, tok, sizeof(tok));
    unhex(mac_hex, mac, sizeof(mac));
    struct oauth_token t;
    assert_int_equal(decrypt_exact(k, sn, tok, len, &t), 0);
    assert_int_equal(t.mac_key_len, 20);
    assert_memory_equal(t.mac_key, mac, 20);
    assert_int_equal(t.timestamp, ts);
    assert_int_equal(t.lifetime, lifetime);

    /* The same body under the same nonce: the tool's bytes exactly. */
    uint8_t again[OAUTH_TOKEN_MAX];
    assert_int_equal(oauth_token_encrypt(k, sn, &t, tok + 2, OAUTH_NONCE_LEN, again, sizeof(again)),
                     (int)len);
    assert_memory_equal(again, tok, len);
}

static void test_decrypt_turnutils_oauth_a256gcm_vector(void **state)
{
    (void)state;
    struct oauth_key k;
    key_north(&k);
    check_vector(&k, "blackdow.carleon.gov", vec_a256_hex, vec_a256_mac_hex,
                 (UINT64_C(1700000100) << 16) + 32000, 3600);
    struct oauth_token t = {.timestamp = (UINT64_C(1700000100) << 16) + 32000};
    assert_int_equal(oauth_token_issued(&t), 1700000100);
}

static void test_decrypt_turnutils_oauth_a128gcm_vector(void **state)
{
    (void)state;
    struct oauth_key k;
    key_union(&k);
    check_vector(&k, "north.gov", vec_a128_hex, vec_a128_mac_hex, (UINT64_C(1700003600) << 16) + 1,
                 600);
}

/* ---- round trips and tampering --------------------------------------------- */

static void test_round_trip_both_algs_all_key_lengths(void **state)
{
    (void)state;
    struct oauth_key keys[2];
    key_north(&keys[0]);
    key_union(&keys[1]);
    static const size_t lens[] = {1, 16, 20, 32, 64, OAUTH_MAC_KEY_MAX};
    const uint8_t nonce[OAUTH_NONCE_LEN] = "0123456789a";
    for (size_t a = 0; a < 2; a++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            struct oauth_token in = {.mac_key_len = lens[i],
                                     .timestamp = oauth_timestamp_make(1700000000) | 0x1234,
                                     .lifetime = 86400};
            for (size_t j = 0; j < in.mac_key_len; j++)
                in.mac_key[j] = (uint8_t)(j * 7 + a);
            uint8_t tok[OAUTH_TOKEN_MAX];
            int n = oauth_token_encrypt(&keys[a], "turn.example", &in, nonce, sizeof(nonce), tok,
                                        sizeof(tok));
            assert_int_equal(n, 2 + OAUTH_NONCE_LEN + 2 + lens[i] + 12 + OAUTH_TAG_LEN);
            assert_memory_equal(tok + 2, nonce, OAUTH_NONCE_LEN); /* nonce in clear */
            struct oauth_token out;
            assert_int_equal(decrypt_exact(&keys[a], "turn.example", tok, (size_t)n, &out), 0);
            assert_int_equal(out.mac_key_len, in.mac_key_len);
            assert_memory_equal(out.mac_key, in.mac_key, in.mac_key_len);
            assert_int_equal(out.timestamp, in.timestamp);
            assert_int_equal(out.lifetime, in.lifetime);
        }
    }
}

static void test_encrypt_refuses_bad_arguments(void **state)
{
    (void)state;
    struct oauth_key k;
    key_north(&k);
    struct oauth_token t = {.mac_key_len = 20, .lifetime = 1};
    const uint8_t nonce[16] = {0};
    uint8_t out[OAUTH_TOKEN_MAX];
    assert_int_equal(oauth_token_encrypt(&k, "s", &t, nonce, 16, out, sizeof(out)), -1);
    assert_int_equal(oauth_token_encrypt(&k, "s", &t, nonce, 12, out, 63), -1); /* needs 64 */
    assert_int_equal(oauth_token_encrypt(&k, "", &t, nonce, 12, out, sizeof(out)), -1);
    t.mac_key_len = 0;
    assert_int_equal(oauth_token_encrypt(&k, "s", &t, nonce, 12, out, sizeof(out)), -1);
    t.mac_key_len = OAUTH_MAC_KEY_MAX + 1;
    assert_int_equal(oauth_token_encrypt(&k, "s", &t, nonce, 12, out, sizeof(out)), -1);
}

/* Bytes 0-1 are nonce_length (any other value is malformed, -1); every other
 * byte is under the GCM tag (-2). Both the low and the high bit of each. */
static void test_decrypt_flipped_byte_anywhere_fails(void **state)
{
    (void)state;
    struct oauth_key k;
    key_north(&k);
    uint8_t tok[OAUTH_TOKEN_MAX];
    size_t len = unhex(vec_a256_hex, tok, sizeof(tok));
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            struct oauth_token t;
            tok[i] ^= (uint8_t)(1u << bit);
            int rc = decrypt_exact(&k, "blackdow.carleon.gov", tok, len, &t);
            tok[i] ^= (uint8_t)(1u << bit);
            if (rc != (i < 2 ? OAUTH_ERR_MALFORMED : OAUTH_ERR_AUTH))
                fail_msg("byte %zu bit %d: got %d", i, bit, rc);
        }
    }
}

static void test_decrypt_wrong_key_or_server_name_fails_and_leaves_out(void **state)
{
    (void)state;
    struct oauth_key north, other;
    key_north(&north);
    assert_int_equal(oauth_key_init(&other, "oldempire", OLDEMPIRE_IKM, NULL, 0, 0, NULL), 0);
    uint8_t tok[OAUTH_TOKEN_MAX];
    size_t len = unhex(vec_a256_hex, tok, sizeof(tok));
    struct oauth_token t, before;
    memset(&t, 0xAA, sizeof(t));
    before = t;
    assert_int_equal(decrypt_exact(&other, "blackdow.carleon.gov", tok, len, &t), OAUTH_ERR_AUTH);
    assert_int_equal(decrypt_exact(&north, "blackdow.carleon.gov.", tok, len, &t), OAUTH_ERR_AUTH);
    assert_int_equal(decrypt_exact(&north, "crinna.org", tok, len, &t), OAUTH_ERR_AUTH);
    assert_memory_equal(&t, &before, sizeof(t));
    assert_int_equal(decrypt_exact(&north, "", tok, len, &t), OAUTH_ERR_MALFORMED);
    assert_int_equal(decrypt_exact(&north, NULL, tok, len, &t), OAUTH_ERR_MALFORMED);
}

/* Shorter than the smallest possible token: -1 before any crypto. Cut
 * anywhere above that, the tag no longer matches: -2. Never a read past len. */
static void test_decrypt_truncated_token_fails_within_bounds(void **state)
{
    (void)state;
    struct oauth_key k;
    key_union(&k);
    uint8_t tok[OAUTH_TOKEN_MAX];
    size_t len = unhex(vec_a128_hex, tok, sizeof(tok));
    for (size_t n = 0; n < len; n++) {
        struct oauth_token t;
        int rc = decrypt_exact(&k, "north.gov", tok, n, &t);
        int want = n < 2 + OAUTH_NONCE_LEN + 2 + 1 + 12 + OAUTH_TAG_LEN ? OAUTH_ERR_MALFORMED
                                                                        : OAUTH_ERR_AUTH;
        if (rc != want)
            fail_msg("length %zu: got %d, want %d", n, rc, want);
    }
    /* and from the front: the nonce length no longer reads 12 */
    struct oauth_token t;
    assert_int_equal(decrypt_exact(&k, "north.gov", tok + 1, len - 1, &t), OAUTH_ERR_MALFORMED);
}

/* Seals an arbitrary block with OpenSSL directly: an authentic token the
 * authorization server got wrong. Returns the token length. */
static size_t seal_raw(const struct oauth_key *k, const char *sn, const uint8_t *block, size_t n,
                       uint8_t *out)
{
    static const uint8_t nonce[OAUTH_NONCE_LEN] = "raw-nonce-1";
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    out[0] = 0;
    out[1] = OAUTH_NONCE_LEN;
    memcpy(out + 2, nonce, OAUTH_NONCE_LEN);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &len, (const uint8_t *)sn, (int)strlen(sn)), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out + 14, &len, block, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + 14 + n, &len), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 14 + n), 1);
    EVP_CIPHER_CTX_free(ctx);
    return 14 + n + 16;
}

static void test_decrypt_authentic_block_with_inconsistent_key_length_is_malformed(void **state)
{
    (void)state;
    struct oauth_key k;
    key_north(&k);
    uint8_t block[2 + 20 + 12] = {0, 20}, tok[OAUTH_TOKEN_MAX];
    struct oauth_token t;
    /* the reference: a well-formed block sealed independently opens */
    size_t n = seal_raw(&k, "s", block, sizeof(block), tok);
    assert_int_equal(decrypt_exact(&k, "s", tok, n, &t), 0);
    assert_int_equal(t.mac_key_len, 20);
    block[1] = 21; /* says one byte more than there is */
    n = seal_raw(&k, "s", block, sizeof(block), tok);
    assert_int_equal(decrypt_exact(&k, "s", tok, n, &t), OAUTH_ERR_MALFORMED);
    block[1] = 19; /* one byte of trailing junk */
    n = seal_raw(&k, "s", block, sizeof(block), tok);
    assert_int_equal(decrypt_exact(&k, "s", tok, n, &t), OAUTH_ERR_MALFORMED);
    uint8_t empty[2 + 1 + 12] = {0, 0}; /* no mac key at all */
    n = seal_raw(&k, "s", empty, sizeof(empty), tok);
    assert_int_equal(decrypt_exact(&k, "s", tok, n, &t), OAUTH_ERR_MALFORMED);
}

/* ---- time ------------------------------------------------------------------ */

static void test_token_time_valid_expired_and_future(void **state)
{
    (void)state;
    const uint64_t at = 1700000000;
    struct oauth_token t = {.timestamp = oauth_timestamp_make(at) | 0xFFFF, .lifetime = 600};
    assert_int_equal(oauth_timestamp_make(at), at << 16);
    assert_int_equal(oauth_token_issued(&t), at);
    assert_int_equal(oauth_token_check_time(&t, at), 0);
    assert_int_equal(oauth_token_check_time(&t, at + 600 + OAUTH_TIME_SKEW - 1), 0);
    assert_int_equal(oauth_token_check_time(&t, at + 600 + OAUTH_TIME_SKEW), -1); /* expired */
    assert_int_equal(oauth_token_check_time(&t, at - OAUTH_TIME_SKEW), 0);
    assert_int_equal(oauth_token_check_time(&t, at - OAUTH_TIME_SKEW - 1), -1); /* future */
    assert_int_equal(oauth_token_check_time(&t, 0), -1);
    t.lifetime = 0; /* not "forever": only the skew around its issue */
    assert_int_equal(oauth_token_check_time(&t, at + OAUTH_TIME_SKEW - 1), 0);
    assert_int_equal(oauth_token_check_time(&t, at + 3600), -1);
}

/* ---- property: no input makes decrypt misbehave ---------------------------- */

/*
 * One fuzz input, in the shape of LLVMFuzzerTestOneInput (data[0] picks the
 * key, the rest is the token): decrypt must answer 0, -1 or -2, read nothing
 * outside its exact-size heap copy (ASan), and on 0 give a consistent body.
 */
static void fuzz_one(const uint8_t *data, size_t size)
{
    struct oauth_key keys[2];
    key_north(&keys[0]);
    key_union(&keys[1]);
    if (size == 0)
        return;
    struct oauth_token t;
    int rc = decrypt_exact(&keys[data[0] & 1], "blackdow.carleon.gov", data + 1, size - 1, &t);
    assert_true(rc == 0 || rc == OAUTH_ERR_MALFORMED || rc == OAUTH_ERR_AUTH);
    if (rc == 0)
        assert_true(t.mac_key_len >= 1 && t.mac_key_len <= OAUTH_MAC_KEY_MAX &&
                    size - 1 == 2 + OAUTH_NONCE_LEN + 2 + t.mac_key_len + 12 + OAUTH_TAG_LEN);
}

static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void test_decrypt_random_and_mutated_inputs_stay_in_bounds(void **state)
{
    (void)state;
    uint8_t seed[1 + OAUTH_TOKEN_MAX], buf[1 + OAUTH_TOKEN_MAX + 8] = {0};
    size_t seed_len = 1 + unhex(vec_a256_hex, seed + 1, sizeof(seed) - 1);
    seed[0] = 0;
    fuzz_one(seed, seed_len);
    uint32_t s = 0x7635;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n;
        if (iter & 1) { /* mutate the genuine token: flips, a new length */
            memcpy(buf, seed, seed_len);
            n = seed_len;
            for (uint32_t m = xorshift(&s) % 4; m > 0; m--)
                buf[1 + xorshift(&s) % (seed_len - 1)] ^= (uint8_t)xorshift(&s);
            if (xorshift(&s) % 2)
                n = xorshift(&s) % sizeof(buf);
            if (xorshift(&s) % 2) { /* keep nonce_length plausible */
                buf[1] = 0;
                buf[2] = OAUTH_NONCE_LEN;
            }
        } else { /* noise of any length up to past the largest token */
            n = xorshift(&s) % sizeof(buf);
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)xorshift(&s);
        }
        fuzz_one(buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names_and_key_lengths),
        cmocka_unit_test(test_key_uclient_builtin_keys_decode_to_alg_length),
        cmocka_unit_test(test_key_init_rejects_bad_input),
        cmocka_unit_test(test_key_lifetime_zero_never_expires_else_skew_after_end),
        cmocka_unit_test(test_decrypt_turnutils_oauth_a256gcm_vector),
        cmocka_unit_test(test_decrypt_turnutils_oauth_a128gcm_vector),
        cmocka_unit_test(test_round_trip_both_algs_all_key_lengths),
        cmocka_unit_test(test_encrypt_refuses_bad_arguments),
        cmocka_unit_test(test_decrypt_flipped_byte_anywhere_fails),
        cmocka_unit_test(test_decrypt_wrong_key_or_server_name_fails_and_leaves_out),
        cmocka_unit_test(test_decrypt_truncated_token_fails_within_bounds),
        cmocka_unit_test(test_decrypt_authentic_block_with_inconsistent_key_length_is_malformed),
        cmocka_unit_test(test_token_time_valid_expired_and_future),
        cmocka_unit_test(test_decrypt_random_and_mutated_inputs_stay_in_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
