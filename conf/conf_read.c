/*
 * conf_read.c - typed readers over a libconfig tree (see conf_read.h).
 *
 * libconfig 1.5 caveat: an integer literal beyond 32 bits without the L
 * suffix is truncated by the parser itself and cannot be detected here; the
 * ranges at least catch most of the resulting garbage.
 */
#include "conf/conf_read.h"

#include "conf/conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Human-readable path of a setting: "listen[1].port", "auth.users[0]". */
void conf_path(const config_setting_t *s, char *buf, size_t cap)
{
    const config_setting_t *parent = config_setting_parent(s);
    if (!parent) {
        buf[0] = '\0';
        return;
    }
    conf_path(parent, buf, cap);
    size_t n = strlen(buf);
    const char *name = config_setting_name(s);
    if (name)
        snprintf(buf + n, cap - n, "%s%s", n ? "." : "", name);
    else
        snprintf(buf + n, cap - n, "[%d]", config_setting_index(s));
}

int conf_fail(const struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
    if (!x->err || x->err_len == 0)
        return -1;
    /* An @include'd file has its own name; everything else is x->name. */
    const char *file = s ? config_setting_source_file(s) : NULL;
    int line = s ? config_setting_source_line(s) : 0;
    int n = snprintf(x->err, x->err_len, "%s:%d: ", file ? file : x->name, line);
    if (n < 0 || (size_t)n >= x->err_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err + n, x->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int conf_check_keys(const struct conf_ctx *x, const config_setting_t *g,
                    const char *const *keys)
{
    char path[CONF_STR];
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, i);
        const char *name = config_setting_name(m);
        const char *const *k = keys;
        while (*k && strcmp(*k, name) != 0)
            k++;
        if (!*k)
            return conf_fail(x, m, "unknown key '%s'", CONF_PATH(m, path));
    }
    return 0;
}

/* Look up g.key and demand it be a group; *out is NULL when absent. */
int conf_take_group(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                    const char *const *keys, config_setting_t **out)
{
    char path[CONF_STR];
    *out = config_setting_get_member(g, key);
    if (!*out)
        return 0;
    if (config_setting_type(*out) != CONFIG_TYPE_GROUP)
        return conf_fail(x, *out, "'%s' must be a group { ... }", CONF_PATH(*out, path));
    return conf_check_keys(x, *out, keys);
}

int conf_get_str(const struct conf_ctx *x, const config_setting_t *s, char *dst,
                 size_t cap, bool nonempty)
{
    char path[CONF_STR];
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return conf_fail(x, s, "'%s' must be a string", CONF_PATH(s, path));
    const char *v = config_setting_get_string(s);
    size_t len = strlen(v);
    if (nonempty && len == 0)
        return conf_fail(x, s, "'%s' must not be empty", CONF_PATH(s, path));
    if (len >= cap)
        return conf_fail(x, s, "'%s' is too long (max %zu characters)", CONF_PATH(s, path),
                         cap - 1);
    memcpy(dst, v, len + 1);
    return 0;
}

int conf_take_str(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  char *dst, size_t cap, bool nonempty)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    return s ? conf_get_str(x, s, dst, cap, nonempty) : 0;
}

int conf_take_u64(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  long long min, long long max, uint64_t *out)
{
    char path[CONF_STR];
    const config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return conf_fail(x, s, "'%s' must be an integer", CONF_PATH(s, path));
    long long v = config_setting_get_int64(s);
    if (v < min || v > max)
        return conf_fail(x, s, "'%s' must be %lld..%lld (got %lld)", CONF_PATH(s, path), min,
                         max, v);
    *out = (uint64_t)v;
    return 0;
}

int conf_take_uint(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                   unsigned min, unsigned max, unsigned *out)
{
    uint64_t v = *out;
    if (conf_take_u64(x, g, key, min, max, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int conf_take_bool(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                   bool *out)
{
    char path[CONF_STR];
    const config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return conf_fail(x, s, "'%s' must be true or false", CONF_PATH(s, path));
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

int conf_get_ip(const struct conf_ctx *x, const config_setting_t *s, unsigned port,
                struct sockaddr_storage *ss)
{
    char path[CONF_STR];
    char ip[CONF_STR];
    if (conf_get_str(x, s, ip, sizeof(ip), true) < 0)
        return -1;
    if (conf_parse_ip(ip, port, ss) < 0)
        return conf_fail(x, s, "'%s' is not an IPv4 or IPv6 address: \"%s\"",
                         CONF_PATH(s, path), ip);
    return 0;
}

/* g.key as a list of values: [ ... ] or ( ... ); *out NULL when absent. */
int conf_take_seq(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                  size_t max, config_setting_t **out)
{
    char path[CONF_STR];
    *out = config_setting_get_member(g, key);
    if (!*out)
        return 0;
    int t = config_setting_type(*out);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
        return conf_fail(x, *out, "'%s' must be a list: [ ... ] or ( ... )",
                         CONF_PATH(*out, path));
    if ((size_t)config_setting_length(*out) > max)
        return conf_fail(x, config_setting_get_elem(*out, (unsigned)max),
                         "'%s' has too many entries (max %zu)", CONF_PATH(*out, path), max);
    return 0;
}

/* A group with ip and port, as used by alternate and metrics. */
int conf_get_endpoint(const struct conf_ctx *x, const config_setting_t *g,
                      const char *def_ip, unsigned def_port,
                      struct sockaddr_storage *out)
{
    char path[CONF_STR];
    unsigned port = def_port;
    if (conf_take_uint(x, g, "port", 1, 65535, &port) < 0)
        return -1;
    const config_setting_t *ip = config_setting_get_member(g, "ip");
    if (ip)
        return conf_get_ip(x, ip, port, out);
    if (!def_ip)
        return conf_fail(x, g, "'%s' needs an 'ip'", CONF_PATH(g, path));
    return conf_parse_ip(def_ip, port, out);
}

int conf_get_user(const struct conf_ctx *x, const config_setting_t *e, struct conf_user *u)
{
    static const char *const keys[] = {"user", "password", "key", NULL};
    char path[CONF_STR];
    if (config_setting_type(e) != CONFIG_TYPE_GROUP)
        return conf_fail(x, e, "'%s' must be a group { user = ...; password = ...; }",
                         CONF_PATH(e, path));
    if (conf_check_keys(x, e, keys) < 0)
        return -1;

    const config_setting_t *name = config_setting_get_member(e, "user");
    const config_setting_t *pw = config_setting_get_member(e, "password");
    const config_setting_t *key = config_setting_get_member(e, "key");
    if (!name)
        return conf_fail(x, e, "'%s' needs a 'user'", CONF_PATH(e, path));
    if (conf_get_str(x, name, u->user, sizeof(u->user), true) < 0)
        return -1;
    if (pw && key)
        return conf_fail(x, key, "'%s' has both 'password' and 'key'; give one",
                         CONF_PATH(e, path));
    if (!pw && !key)
        return conf_fail(x, e, "'%s' needs a 'password' or a 'key'", CONF_PATH(e, path));
    if (pw)
        return conf_get_str(x, pw, u->password, sizeof(u->password), true);

    char hex[CONF_STR];
    if (conf_get_str(x, key, hex, sizeof(hex), true) < 0)
        return -1;
    if (conf_parse_hex_key(hex, u->key, &u->key_len) < 0)
        return conf_fail(x, key, "'%s' must be 32 (MD5) or 64 (SHA-256) hex digits",
                         CONF_PATH(key, path));
    return 0;
}

int conf_get_users(const struct conf_ctx *x, const config_setting_t *l, struct conf_user **out,
                   size_t *n_out)
{
    /* Users live on the heap: the count is only bounded by memory. */
    size_t n = (size_t)config_setting_length(l);
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return 0;
    struct conf_user *users = calloc(n, sizeof(*users));
    if (!users)
        return conf_fail(x, l, "out of memory for %zu users", n);
    *out = users;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        if (conf_get_user(x, e, &users[i]) < 0)
            return -1;
        *n_out = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(users[j].user, users[i].user) == 0)
                return conf_fail(x, e, "user '%s' is defined twice", users[i].user);
    }
    return 0;
}

int conf_get_secrets(const struct conf_ctx *x, const config_setting_t *l,
                     char secrets[][CONF_STR], size_t *n)
{
    *n = 0;
    for (int i = 0; i < config_setting_length(l); i++) {
        /* An empty secret would make every REST-style credential forgeable. */
        if (conf_get_str(x, config_setting_get_elem(l, i), secrets[i], CONF_STR, true) < 0)
            return -1;
        *n = (size_t)i + 1;
    }
    return 0;
}
