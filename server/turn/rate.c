/*
 * rate.c - see rate.h.
 *
 * A slot of the shared table is one 64-bit word, so that workers update it
 * with a single compare-and-swap: bits 0-30 the tokens, bit 31 "used", bits
 * 32-63 the time of the last refill in milliseconds of the table's own
 * epoch (32 bits wrap after 49 days; differences are taken modulo 2^32).
 */
#include "server/turn/rate.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_USED 0x80000000u
#define SLOT_TOKENS 0x7FFFFFFFu

/* Owned by main; shared by every worker. */
struct rate_sources {
    _Atomic unsigned per_source;
    uint8_t key[16];
    _Atomic uint64_t slot[RATE_SLOTS];
};

/* Tokens of a budget bucket; burst of one second. */
struct budget {
    uint64_t rate; /* per second; 0: off */
    uint64_t tokens;
    uint64_t at_ms;
};

/* Owned by the TURN service of one worker; mac and ctx are its SipHash. */
struct rate {
    struct rate_sources *src;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    struct budget answers, bytes;
};

struct rate_sources *rate_sources_new(unsigned per_source)
{
    struct rate_sources *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    rate_sources_set(s, per_source);
    if (RAND_bytes(s->key, sizeof s->key) != 1) {
        free(s);
        return NULL;
    }
    return s;
}

void rate_sources_set(struct rate_sources *s, unsigned per_source)
{
    unsigned max = SLOT_TOKENS / RATE_BURST_FACTOR;
    atomic_store_explicit(&s->per_source, per_source > max ? max : per_source,
                          memory_order_relaxed);
}

void rate_set_budget(struct rate *r, unsigned global_rate, uint64_t global_bps, unsigned n_workers)
{
    n_workers = n_workers ? n_workers : 1;
    r->answers.rate = global_rate ? (global_rate + n_workers - 1) / n_workers : 0;
    r->bytes.rate = global_bps ? (global_bps + n_workers - 1) / n_workers : 0;
}

void rate_sources_free(struct rate_sources *s)
{
    free(s);
}

struct rate *rate_new(struct rate_sources *sources, unsigned global_rate, uint64_t global_bps,
                      unsigned n_workers)
{
    struct rate *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->src = sources;
    rate_set_budget(r, global_rate, global_bps, n_workers);
    r->answers.tokens = r->answers.rate;
    r->bytes.tokens = r->bytes.rate;
    r->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    r->ctx = r->mac ? EVP_MAC_CTX_new(r->mac) : NULL;
    if (!r->ctx) {
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
    if (EVP_MAC_init(r->ctx, r->src->key, sizeof r->src->key, params) != 1 ||
        EVP_MAC_update(r->ctx, p, n) != 1 || EVP_MAC_final(r->ctx, out, &len, sizeof out) != 1)
        return 0; /* cannot happen with a fetched SipHash; one shared bucket if it does */
    uint64_t h;
    memcpy(&h, out, 8);
    return h;
}

size_t rate_slot(const struct rate *r, const struct sockaddr *client)
{
    return (size_t)(source_hash(r, client) % RATE_SLOTS);
}

bool rate_take_source(struct rate *r, const struct sockaddr *client, uint64_t now_ms)
{
    uint64_t rate = atomic_load_explicit(&r->src->per_source, memory_order_relaxed);
    if (!rate)
        return true;
    _Atomic uint64_t *slot = &r->src->slot[rate_slot(r, client)];
    uint32_t now = (uint32_t)now_ms, burst = (uint32_t)(rate * RATE_BURST_FACTOR);
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    for (;;) {
        uint32_t at = (uint32_t)(old >> 32), tokens = (uint32_t)old & SLOT_TOKENS;
        if (!(old & SLOT_USED)) {
            tokens = (uint32_t)rate;
            at = now;
        }
        uint64_t add = (uint64_t)(uint32_t)(now - at) * rate / 1000u;
        if (add) {
            tokens = tokens + add > burst ? burst : (uint32_t)(tokens + add);
            at = now;
        }
        if (!tokens)
            return false;
        uint64_t next = (uint64_t)at << 32 | SLOT_USED | (tokens - 1);
        if (atomic_compare_exchange_weak_explicit(slot, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
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
