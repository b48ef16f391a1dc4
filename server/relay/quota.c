/*
 * quota.c - see quota.h. Users are counted in a chained hash table; an entry
 * is freed when its count drops to zero, so the table never holds more
 * entries than there are live allocations.
 */
#include "server/relay/quota.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QUOTA_BUCKETS 4096

/* One user's count; owned by the table. */
struct quota_user {
    struct quota_user *next;
    unsigned count;
    size_t len;
    char name[];
};

/* Owns its users; created once by main, shared by workers. */
struct quota {
    pthread_mutex_t lock;
    unsigned total;
    struct quota_user *buckets[QUOTA_BUCKETS];
};

static size_t name_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % QUOTA_BUCKETS;
}

struct quota *quota_new(void)
{
    struct quota *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void quota_free(struct quota *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < QUOTA_BUCKETS; i++)
        while (q->buckets[i]) {
            struct quota_user *u = q->buckets[i];
            q->buckets[i] = u->next;
            free(u);
        }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static struct quota_user **find(struct quota *q, const char *user, size_t len)
{
    struct quota_user **pp = &q->buckets[name_hash(user, len)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, user, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

int quota_acquire(struct quota *q, const char *user, size_t len, unsigned user_quota,
                  unsigned total_quota)
{
    int rc = -1;
    pthread_mutex_lock(&q->lock);
    if (total_quota && q->total >= total_quota)
        goto out;
    struct quota_user **pp = find(q, user, len);
    if (!*pp) {
        *pp = calloc(1, sizeof **pp + len);
        if (!*pp)
            goto out;
        memcpy((*pp)->name, user, len);
        (*pp)->len = len;
    }
    if (user_quota && (*pp)->count >= user_quota)
        goto out;
    (*pp)->count++;
    q->total++;
    rc = 0;
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void quota_release(struct quota *q, const char *user, size_t len)
{
    pthread_mutex_lock(&q->lock);
    struct quota_user **pp = find(q, user, len);
    if (*pp) {
        if (--(*pp)->count == 0) {
            struct quota_user *u = *pp;
            *pp = u->next;
            free(u);
        }
        q->total--;
    }
    pthread_mutex_unlock(&q->lock);
}

unsigned quota_total(struct quota *q)
{
    pthread_mutex_lock(&q->lock);
    unsigned n = q->total;
    pthread_mutex_unlock(&q->lock);
    return n;
}
