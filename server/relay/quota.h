/*
 * quota.h - allocation quotas of one process, per realm: per user
 * (user_quota) and per realm in total (total_quota). Shared by all workers
 * behind a mutex: taken only on Allocate and on deletion, never on the
 * packet path.
 */
#ifndef TERN_SERVER_RELAY_QUOTA_H
#define TERN_SERVER_RELAY_QUOTA_H

#include <stddef.h>

struct quota;

struct quota *quota_new(void);
void quota_free(struct quota *q);
/* 0 taken, -1 over quota (486). Limits of 0 mean unlimited; they are passed
 * in because Redis may change them at run time (per-realm limits). The
 * same user name in two realms is two users. */
int quota_acquire(struct quota *q, const char *realm, size_t realm_len, const char *user,
                  size_t len, unsigned user_quota, unsigned total_quota);
void quota_release(struct quota *q, const char *realm, size_t realm_len, const char *user,
                   size_t len);
/* Live allocations in this process, all realms. */
unsigned quota_total(struct quota *q);

#endif
