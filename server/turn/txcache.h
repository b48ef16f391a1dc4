/*
 * txcache.h - the TURN transaction cache (RFC 8489 section 6.3.1): a
 * retransmitted request gets the first answer again instead of being
 * executed twice (a second Allocate would get 437, a second Refresh 0 would
 * find nothing to delete). Direct-mapped by transaction ID, entries live
 * about 40 s (Rc * RTO). Per worker; no locks.
 */
#ifndef TERN_SERVER_TURN_TXCACHE_H
#define TERN_SERVER_TURN_TXCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TXCACHE_SLOTS 1024
#define TXCACHE_RESP 256 /* the largest Allocate answer fits; longer ones go uncached */
#define TXCACHE_MS 40000

struct txcache;

struct txcache *txcache_new(void);
void txcache_free(struct txcache *c);
/* conn identifies the session (compared, never dereferenced). The cached
 * answer to (conn, client, tid) copied into out: its length, or 0. */
size_t txcache_find(struct txcache *c, const void *conn, const struct sockaddr *client,
                    const uint8_t *tid, uint8_t *out, size_t cap);
void txcache_put(struct txcache *c, const void *conn, const struct sockaddr *client,
                 const uint8_t *tid, const uint8_t *resp, size_t len);

#endif
