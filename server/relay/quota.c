/*
 * quota.c - see quota.h. Users (keyed by realm, NUL, user) and realms
 * (keyed by realm alone) are counted in one chained hash table, told apart
 * by the key; an entry is freed when its count drops to zero, so the table
 * never holds more entries than twice the live allocations.
 */
#include "server/relay/quota.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QUOTA_BUCKETS 4096
#define QUOTA_KEY 1024 /* realm, NUL, user name */

/* One user's or one realm's count; owned by the table. */
struct quota_user {
    struct quota_user *next;
    unsigned count;
    size_t len;
    char name[]; /* "realm\0user" or "realm" */
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

static struct quota_user **find(struct quota *q, const char *key, size_t len)
{
    struct quota_user **pp = &q->buckets[name_hash(key, len)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, key, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* The entry of key, made with a count of 0 if new; NULL out of memory. */
static struct quota_user *entry(struct quota *q, const char *key, size_t len)
{
    struct quota_user **pp = find(q, key, len);
    if (!*pp) {
        *pp = calloc(1, sizeof **pp + len);
        if (!*pp)
            return NULL;
        memcpy((*pp)->name, key, len);
        (*pp)->len = len;
    }
    return *pp;
}

static void drop(struct quota *q, const char *key, size_t len)
{
    struct quota_user **pp = find(q, key, len);
    if (*pp && --(*pp)->count == 0) {
        struct quota_user *u = *pp;
        *pp = u->next;
        free(u);
    }
}

/* "realm\0user" into buf (AUTH_MAX_USERNAME and the realm bound fit). */
static size_t user_key(char *buf, size_t cap, const char *realm, size_t rlen, const char *user,
                       size_t len)
{
    if (rlen + 1 + len > cap)
        return 0;
    memcpy(buf, realm, rlen);
    buf[rlen] = 0;
    memcpy(buf + rlen + 1, user, len);
    return rlen + 1 + len;
}

int quota_acquire(struct quota *q, const char *realm, size_t realm_len, const char *user,
                  size_t len, unsigned user_quota, unsigned total_quota)
{
    char key[QUOTA_KEY];
    size_t klen = user_key(key, sizeof key, realm, realm_len, user, len);
    if (!klen)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&q->lock);
    struct quota_user *r = entry(q, realm, realm_len);
    struct quota_user *u = r ? entry(q, key, klen) : NULL;
    if (u && (!total_quota || r->count < total_quota) && (!user_quota || u->count < user_quota)) {
        r->count++;
        u->count++;
        q->total++;
        rc = 0;
    } else {
        /* entries made for this attempt go again: count them in, then out */
        if (r) {
            r->count++;
            drop(q, realm, realm_len);
        }
        if (u) {
            u->count++;
            drop(q, key, klen);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void quota_release(struct quota *q, const char *realm, size_t realm_len, const char *user,
                   size_t len)
{
    char key[QUOTA_KEY];
    size_t klen = user_key(key, sizeof key, realm, realm_len, user, len);
    pthread_mutex_lock(&q->lock);
    if (klen && *find(q, key, klen)) {
        drop(q, key, klen);
        drop(q, realm, realm_len);
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
