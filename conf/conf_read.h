/*
 * conf_read.h - typed readers over a libconfig tree, for conf.c's loaders.
 *
 * Every reader checks the type and range of one setting and, when it is
 * wrong, writes "file:line: what is wrong" into the context and returns -1;
 * 0 means the value was stored or the key was absent (the destination then
 * keeps its default). "take" readers look a key up in a group, "get" readers
 * read a setting already in hand. Settings are named by their full path
 * ("listen[2].port") so an operator finds them without counting lines.
 *
 * Ownership: struct conf_ctx borrows name and err from the caller for the
 * duration of one load.
 */
#ifndef TERN_CONF_READ_H
#define TERN_CONF_READ_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

struct conf_ctx {
    const char *name; /* path or caller-supplied name for messages */
    char *err;
    size_t err_len;
};

/* Full path of a setting into buf: "listen[1].port", "auth.users[0]". */
void conf_path(const config_setting_t *s, char *buf, size_t cap);
#define CONF_PATH(s, buf) (conf_path((s), (buf), sizeof(buf)), (buf))

/* Formats the error at s's line (the file's line 0 when s is NULL); always -1. */
int conf_fail(const struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Rejects any member of group g whose name is not in the NULL-ended keys. */
int conf_check_keys(const struct conf_ctx *x, const config_setting_t *g, const char *const *keys);
/* g.key as a group whose members are among keys; *out NULL when absent. */
int conf_take_group(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                    const char *const *keys, config_setting_t **out);
/* g.key as a list of at most max values; *out NULL when absent. */
int conf_take_seq(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  size_t max, config_setting_t **out);

int conf_get_str(const struct conf_ctx *x, const config_setting_t *s, char *dst, size_t cap,
                 bool nonempty);
int conf_take_str(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  char *dst, size_t cap, bool nonempty);
int conf_take_u64(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  long long min, long long max, uint64_t *out);
int conf_take_uint(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                   unsigned min, unsigned max, unsigned *out);
int conf_take_bool(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                   bool *out);
/* An IPv4 or IPv6 literal with the given port. */
int conf_get_ip(const struct conf_ctx *x, const config_setting_t *s, unsigned port,
                struct sockaddr_storage *ss);
/* A group { ip; port; }: def_ip NULL makes ip required. */
int conf_get_endpoint(const struct conf_ctx *x, const config_setting_t *g, const char *def_ip,
                      unsigned def_port, struct sockaddr_storage *out);

/* A user group { user; password | key; } into u. */
int conf_get_user(const struct conf_ctx *x, const config_setting_t *e, struct conf_user *u);
/* A list of users into a heap array (*out, owned by the caller even on
 * failure) of *n entries; names must be unique. */
int conf_get_users(const struct conf_ctx *x, const config_setting_t *l, struct conf_user **out,
                   size_t *n);
/* A list of at most CONF_MAX_SECRETS non-empty REST secrets. */
int conf_get_secrets(const struct conf_ctx *x, const config_setting_t *l, char secrets[][CONF_STR],
                     size_t *n);

#endif
