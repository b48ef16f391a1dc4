/*
 * txcache.c - see txcache.h.
 */
#include "server/turn/txcache.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proto/stun.h"
#include "server/core/clock.h"
#include "server/core/net.h"

/* One slot; the cache is touched page by page, so the address is kept in a
 * sockaddr_in6-sized field rather than a sockaddr_storage. */
struct tx_entry {
    uint8_t tid[STUN_TID_LEN];
    const void *conn;
    struct sockaddr_in6 client;
    uint64_t at_ms;
    uint16_t len;
    uint8_t resp[TXCACHE_RESP];
};

/* Owned by the TURN service of one worker. */
struct txcache {
    struct tx_entry e[TXCACHE_SLOTS];
};

static struct tx_entry *slot(struct txcache *c, const uint8_t *tid)
{
    uint32_t h;
    memcpy(&h, tid, 4);
    return &c->e[h % TXCACHE_SLOTS];
}

struct txcache *txcache_new(void)
{
    return calloc(1, sizeof(struct txcache));
}

void txcache_free(struct txcache *c)
{
    free(c);
}

size_t txcache_find(struct txcache *c, const void *conn, const struct sockaddr *client,
                    const uint8_t *tid, uint8_t *out, size_t cap)
{
    const struct tx_entry *e = slot(c, tid);
    if (!e->len || e->conn != conn || memcmp(e->tid, tid, STUN_TID_LEN) != 0 ||
        !net_addr_equal((const struct sockaddr *)&e->client, client) || e->len > cap ||
        clock_mono_ms() - e->at_ms > TXCACHE_MS)
        return 0;
    memcpy(out, e->resp, e->len);
    return e->len;
}

void txcache_put(struct txcache *c, const void *conn, const struct sockaddr *client,
                 const uint8_t *tid, const uint8_t *resp, size_t len)
{
    if (len > TXCACHE_RESP)
        return;
    struct tx_entry *e = slot(c, tid);
    memcpy(e->tid, tid, STUN_TID_LEN);
    e->conn = conn;
    memset(&e->client, 0, sizeof e->client);
    memcpy(&e->client, client, net_addr_len(client));
    e->at_ms = clock_mono_ms();
    memcpy(e->resp, resp, len);
    e->len = (uint16_t)len;
}
