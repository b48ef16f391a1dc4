/*
 * reserve.c - see reserve.h. A fixed array: expired entries are reclaimed
 * whenever a new reservation looks for room.
 */
#include "server/relay/reserve.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/core/clock.h"

#include "server/core/net.h"

/* A relay socket held for the allocation that will present its token. */
struct reserve_entry {
    bool used;
    uint8_t token[8];
    int fd; /* owned while used */
    struct sockaddr_storage addr;
    time_t expires;
};

/* Owns the held sockets. */
struct reserve {
    pthread_mutex_t lock;
    struct reserve_entry e[RESERVE_MAX];
};

struct reserve *reserve_new(void)
{
    struct reserve *r = calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->lock, NULL);
    return r;
}

void reserve_free(struct reserve *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < RESERVE_MAX; i++)
        if (r->e[i].used)
            close(r->e[i].fd);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Closes a held socket whose token nobody came for in time; caller holds lock. */
static void reserve_expire_entry(struct reserve_entry *e, time_t now)
{
    if (e->used && e->expires <= now) {
        close(e->fd);
        e->used = false;
    }
}

int reserve_put(struct reserve *r, int fd, const struct sockaddr *addr, uint8_t token[8])
{
    int rc = -1;
    time_t now = (time_t)(clock_mono_ms() / 1000u);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < RESERVE_MAX; i++) {
        reserve_expire_entry(&r->e[i], now);
        if (!r->e[i].used && rc < 0 && RAND_bytes(token, 8) == 1) {
            r->e[i].used = true;
            memcpy(r->e[i].token, token, 8);
            r->e[i].fd = fd;
            memcpy(&r->e[i].addr, addr, net_addr_len(addr));
            r->e[i].expires = now + RESERVE_LIFETIME;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (rc < 0)
        close(fd);
    return rc;
}

unsigned reserve_reap(struct reserve *r)
{
    unsigned held = 0;
    time_t now = (time_t)(clock_mono_ms() / 1000u);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < RESERVE_MAX; i++) {
        reserve_expire_entry(&r->e[i], now);
        held += r->e[i].used;
    }
    pthread_mutex_unlock(&r->lock);
    return held;
}

int reserve_take(struct reserve *r, const uint8_t token[8], struct sockaddr_storage *addr)
{
    int fd = -1;
    time_t now = (time_t)(clock_mono_ms() / 1000u);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < RESERVE_MAX; i++) {
        if (r->e[i].used && memcmp(r->e[i].token, token, 8) == 0) {
            r->e[i].used = false;
            if (r->e[i].expires > now) {
                fd = r->e[i].fd;
                *addr = r->e[i].addr;
            } else {
                close(r->e[i].fd);
            }
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return fd;
}
