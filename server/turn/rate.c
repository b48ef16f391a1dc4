/*
 * rate.c - see rate.h.
 */
#include "server/turn/rate.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct rate_bucket {
    uint32_t tokens;
    uint64_t at_ms; /* 0: never used */
};

/* Tokens of a budget bucket; burst of one second. */
struct budget {
    uint64_t rate; /* per second; 0: off */
    uint64_t tokens;
    uint64_t at_ms;
};

/* Owned by the TURN service of one worker; mac is its SipHash state. */
struct rate {
    unsigned per_source;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    uint8_t key[16];
    struct budget answers, bytes;
    struct rate_bucket slot[RATE_SLOTS];
};

struct rate *rate_new(unsigned per_source, unsigned global_rate, uint64_t global_bps,
                      unsigned n_workers)
{
    struct rate *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    n_workers = n_workers ? n_workers : 1;
    r->per_source = per_source;
    r->answers.rate = global_rate ? (global_rate + n_workers - 1) / n_workers : 0;
    r->bytes.rate = global_bps ? (global_bps + n_workers - 1) / n_workers : 0;
    r->answers.tokens = r->answers.rate;
    r->bytes.tokens = r->bytes.rate;
    r->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    r->ctx = r->mac ? EVP_MAC_CTX_new(r->mac) : NULL;
    if (!r->ctx || RAND_bytes(r->key, sizeof r->key) != 1) {
        rate_free(r);
        return NULL;
    }
    return r;
}

void rate_free(struct rate *r)
{
    if (!r)
        return;
    EVP_MAC_CTX_free(r->ctx);
    EVP_MAC_free(r->mac);
    free(r);
}

static uint64_t source_hash(const struct rate *r, const struct sockaddr *sa)
{
    const uint8_t *p;
    size_t n;
    if (sa->sa_family == AF_INET6) {
        p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        n = 16;
    } else {
        p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    }
    size_t outsz = 8;
    OSSL_PARAM params[] = { OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outsz),
                            OSSL_PARAM_construct_end() };
    uint8_t out[8] = { 0 };
    size_t len = 0;
    if (EVP_MAC_init(r->ctx, r->key, sizeof r->key, params) != 1 ||
        EVP_MAC_update(r->ctx, p, n) != 1 || EVP_MAC_final(r->ctx, out, &len, sizeof out) != 1)
        return 1; /* cannot happen with a fetched SipHash; one shared bucket if it does */
    uint64_t h;
    memcpy(&h, out, 8);
    return h | 1;
}

size_t rate_slot(const struct rate *r, const struct sockaddr *client)
{
    return (size_t)(source_hash(r, client) >> 1) % RATE_SLOTS;
}

bool rate_take_source(struct rate *r, const struct sockaddr *client, uint64_t now_ms)
{
    unsigned rate = r->per_source;
    if (!rate)
        return true;
    uint64_t h = source_hash(r, client);
    struct rate_bucket *b = &r->slot[(size_t)(h >> 1) % RATE_SLOTS];
    uint32_t burst = rate * RATE_BURST_FACTOR;
    if (!b->at_ms) {
        b->tokens = rate;
        b->at_ms = now_ms;
    }
    uint64_t add = (now_ms - b->at_ms) * rate / 1000u;
    if (add) {
        b->tokens = b->tokens + add > burst ? burst : (uint32_t)(b->tokens + add);
        b->at_ms = now_ms;
    }
    if (!b->tokens)
        return false;
    b->tokens--;
    return true;
}

static bool budget_take(struct budget *b, uint64_t n, uint64_t now_ms)
{
    if (!b->rate)
        return true;
    uint64_t add = (now_ms - b->at_ms) * b->rate / 1000u;
    if (add) {
        b->tokens = b->tokens + add > b->rate ? b->rate : b->tokens + add;
        b->at_ms = now_ms;
    }
    return b->tokens >= n;
}

bool rate_take_budget(struct rate *r, size_t bytes, uint64_t now_ms)
{
    if (!budget_take(&r->answers, 1, now_ms) || !budget_take(&r->bytes, bytes, now_ms))
        return false;
    if (r->answers.rate)
        r->answers.tokens--;
    if (r->bytes.rate)
        r->bytes.tokens -= bytes;
    return true;
}
