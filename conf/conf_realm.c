/*
 * conf_realm.c - realms[]: several tenants on one server, each with its own
 * host names (TLS SNI), origins (STUN ORIGIN), users, REST secrets, limits
 * and certificate; and the view that resolves what a realm inherits.
 *
 * Names are checked across realms here because a request must land in one
 * realm only: a host name or origin claimed by two realms, or a realm named
 * twice, is an error at load time rather than a coin toss at run time.
 */
#include <ctype.h>
#include <event2/http.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "conf/conf_int.h"

/* The default ports coturn adds (the table its origin map keys are made
 * with: an origin must come out the same to find turnadmin's entries). */
static int origin_default_port(const char *scheme)
{
    static const struct {
        const char *scheme;
        int port;
    } ports[] = { { "ftp", 21 },     { "svn", 3690 },     { "ssh", 22 },     { "sip", 5060 },
                  { "http", 80 },    { "ldap", 389 },     { "sips", 5061 },  { "turn", 3478 },
                  { "stun", 3478 },  { "https", 443 },    { "ldaps", 636 },  { "turns", 5349 },
                  { "stuns", 5349 }, { "telnet", 23 },    { "radius", 1645 }, { "svn+ssh", 22 } };
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        if (strcmp(ports[i].scheme, scheme) == 0)
            return ports[i].port;
    return 0;
}

int conf_origin_canonical(const char *in, size_t len, char *out, size_t cap)
{
    char raw[CONF_STR], scheme[32], host[CONF_STR];
    if (len >= sizeof raw || cap == 0)
        return -1;
    memcpy(raw, in, len);
    raw[len] = 0;
    struct evhttp_uri *uri = memchr(raw, 0, len) ? NULL : evhttp_uri_parse(raw);
    const char *s = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *h = uri ? evhttp_uri_get_host(uri) : NULL;
    int n = -1;
    if (s && s[0] && h && h[0] && strlen(s) < sizeof scheme && strlen(h) < sizeof host) {
        for (size_t i = 0; i <= strlen(s); i++)
            scheme[i] = (char)tolower((unsigned char)s[i]);
        for (size_t i = 0; i <= strlen(h); i++)
            host[i] = (char)tolower((unsigned char)h[i]);
        int port = evhttp_uri_get_port(uri);
        if (port < 1)
            port = origin_default_port(scheme);
        n = port > 0 ? snprintf(out, cap, "%s://%s:%d", scheme, host, port)
                     : snprintf(out, cap, "%s://%s", scheme, host);
    } else {
        n = snprintf(out, cap, "%s", raw);
    }
    if (uri)
        evhttp_uri_free(uri);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* A list of names (hosts: lower case, as SNI compares). */
static int realm_get_names(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                           bool lower, char names[][CONF_STR], size_t *n)
{
    config_setting_t *l;
    if (conf_take_seq(x, g, key, CONF_MAX_NAMES, &l) < 0)
        return -1;
    for (int i = 0; l && i < config_setting_length(l); i++) {
        if (conf_get_str(x, config_setting_get_elem(l, i), names[i], CONF_STR, true) < 0)
            return -1;
        for (char *p = names[i]; lower && *p; p++)
            *p = (char)tolower((unsigned char)*p);
        *n = (size_t)i + 1;
    }
    return 0;
}

static int realm_load_limits(const struct conf_ctx *x, struct conf_realm *r,
                             const config_setting_t *e)
{
    static const char *const keys[] = {"user_quota", "total_quota", "max_bps", NULL};
    config_setting_t *g;
    if (conf_take_group(x, e, "limits", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    r->has_user_quota = config_setting_get_member(g, "user_quota") != NULL;
    r->has_total_quota = config_setting_get_member(g, "total_quota") != NULL;
    r->has_max_bps = config_setting_get_member(g, "max_bps") != NULL;
    if (conf_take_uint(x, g, "user_quota", 0, INT_MAX, &r->user_quota) < 0 ||
        conf_take_uint(x, g, "total_quota", 0, INT_MAX, &r->total_quota) < 0 ||
        conf_take_u64(x, g, "max_bps", 0, INT64_MAX, &r->max_bps) < 0)
        return -1;
    return 0;
}

static int realm_load_tls(const struct conf_ctx *x, struct conf_realm *r,
                          const config_setting_t *e)
{
    static const char *const keys[] = {"cert", "key", NULL};
    char path[CONF_STR];
    config_setting_t *g;
    if (conf_take_group(x, e, "tls", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_take_str(x, g, "cert", r->tls_cert, sizeof(r->tls_cert), true) < 0 ||
        conf_take_str(x, g, "key", r->tls_key, sizeof(r->tls_key), true) < 0)
        return -1;
    if (!r->tls_cert[0] || !r->tls_key[0])
        return conf_fail(x, g, "'%s' needs both 'cert' and 'key'", CONF_PATH(g, path));
    return 0;
}

/* Is name (of realm i, by kind) claimed by an earlier realm? */
static bool realm_name_taken(const struct conf *c, size_t i, const char *name, bool host)
{
    for (size_t j = 0; j < i; j++) {
        const struct conf_realm *o = &c->realms[j];
        size_t n = host ? o->n_hosts : o->n_origins;
        for (size_t k = 0; k < n; k++)
            if (host ? strcasecmp(o->hosts[k], name) == 0 : strcmp(o->origins[k], name) == 0)
                return true;
    }
    return false;
}

static int realm_load_one(const struct conf_ctx *x, struct conf *c, size_t i,
                          const config_setting_t *e)
{
    static const char *const keys[] = {"name", "hosts", "origins", "users", "secrets",
                                       "limits", "tls", NULL};
    char path[CONF_STR];
    struct conf_realm *r = &c->realms[i];
    if (config_setting_type(e) != CONFIG_TYPE_GROUP)
        return conf_fail(x, e, "'%s' must be a group { name = ...; ... }", CONF_PATH(e, path));
    if (conf_check_keys(x, e, keys) < 0)
        return -1;
    const config_setting_t *name = config_setting_get_member(e, "name");
    if (!name)
        return conf_fail(x, e, "'%s' needs a 'name'", CONF_PATH(e, path));
    char full[CONF_STR];
    if (conf_get_str(x, name, full, sizeof(full), true) < 0)
        return -1;
    /* The same bound as the top-level realm's (conf.c): a 401 names it. */
    if (strlen(full) > CONF_MAX_REALM)
        return conf_fail(x, name,
                         "'%s' is %zu characters; at most %d (a 401 challenge must stay within "
                         "128 bytes of the smallest request)",
                         CONF_PATH(name, path), strlen(full), CONF_MAX_REALM);
    memcpy(r->name, full, strlen(full) + 1);
    /* The first realm of that name: the default realm, an earlier entry, or this one. */
    int first = conf_realm_find(c, r->name, strlen(r->name));
    if (first != (int)i + 1)
        return conf_fail(x, name, "realm '%s' is defined twice", r->name);

    config_setting_t *l;
    if (realm_get_names(x, e, "hosts", true, r->hosts, &r->n_hosts) < 0 ||
        realm_get_names(x, e, "origins", false, r->origins, &r->n_origins) < 0)
        return -1;
    /* compared as coturn compares them: "https://A.example" is
     * "https://a.example:443" */
    for (size_t k = 0; k < r->n_origins; k++) {
        char canon[CONF_STR];
        if (conf_origin_canonical(r->origins[k], strlen(r->origins[k]), canon, sizeof canon) < 0)
            return conf_fail(x, e, "origin '%s' of '%s' is too long", r->origins[k],
                             CONF_PATH(e, path));
        memcpy(r->origins[k], canon, strlen(canon) + 1);
    }
    for (size_t k = 0; k < r->n_hosts; k++)
        if (realm_name_taken(c, i, r->hosts[k], true))
            return conf_fail(x, e, "host '%s' of '%s' belongs to another realm already",
                             r->hosts[k], CONF_PATH(e, path));
    for (size_t k = 0; k < r->n_origins; k++)
        if (realm_name_taken(c, i, r->origins[k], false))
            return conf_fail(x, e, "origin '%s' of '%s' belongs to another realm already",
                             r->origins[k], CONF_PATH(e, path));

    /* An empty list is a statement too: "no static users here". */
    if (conf_take_seq(x, e, "users", (size_t)INT_MAX, &l) < 0)
        return -1;
    r->has_users = l != NULL;
    if (l && conf_get_users(x, l, &r->users, &r->n_users) < 0)
        return -1;
    if (conf_take_seq(x, e, "secrets", CONF_MAX_SECRETS, &l) < 0)
        return -1;
    r->has_secrets = l != NULL;
    if (l && conf_get_secrets(x, l, r->secrets, &r->n_secrets) < 0)
        return -1;
    return realm_load_limits(x, r, e) < 0 ? -1 : realm_load_tls(x, r, e);
}

int conf_load_realms(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    config_setting_t *l;
    if (conf_take_seq(x, root, "realms", CONF_MAX_REALMS, &l) < 0)
        return -1;
    if (!l || config_setting_length(l) == 0)
        return 0;
    size_t n = (size_t)config_setting_length(l);
    c->realms = calloc(n, sizeof(*c->realms));
    if (!c->realms)
        return conf_fail(x, l, "out of memory for %zu realms", n);
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        c->n_realms = i + 1; /* counted before loading, so conf_free frees its users */
        if (realm_load_one(x, c, i, e) < 0)
            return -1;
    }
    return 0;
}

void conf_realms_free(struct conf *c)
{
    for (size_t i = 0; i < c->n_realms; i++)
        free(c->realms[i].users);
    free(c->realms);
    c->realms = NULL;
    c->n_realms = 0;
}

size_t conf_realm_count(const struct conf *c)
{
    return 1 + c->n_realms;
}

void conf_realm_get(const struct conf *c, size_t i, struct conf_realm_view *v)
{
    memset(v, 0, sizeof(*v));
    v->name = c->realm;
    v->users = c->users;
    v->n_users = c->n_users;
    v->secrets = (const char (*)[CONF_STR])c->secrets;
    v->n_secrets = c->n_secrets;
    v->user_quota = c->user_quota;
    v->total_quota = c->total_quota;
    v->max_bps = c->max_bps;
    v->tls_cert = c->tls_cert;
    v->tls_key = c->tls_key;
    if (i == 0 || i > c->n_realms)
        return;
    const struct conf_realm *r = &c->realms[i - 1];
    v->name = r->name;
    v->hosts = (const char (*)[CONF_STR])r->hosts;
    v->n_hosts = r->n_hosts;
    v->origins = (const char (*)[CONF_STR])r->origins;
    v->n_origins = r->n_origins;
    if (r->has_users) {
        v->users = r->users;
        v->n_users = r->n_users;
    }
    if (r->has_secrets) {
        v->secrets = (const char (*)[CONF_STR])r->secrets;
        v->n_secrets = r->n_secrets;
    }
    if (r->has_user_quota)
        v->user_quota = r->user_quota;
    if (r->has_total_quota)
        v->total_quota = r->total_quota;
    if (r->has_max_bps)
        v->max_bps = r->max_bps;
    if (r->tls_cert[0]) {
        v->tls_cert = r->tls_cert;
        v->tls_key = r->tls_key;
        v->own_tls = true;
    }
}

int conf_realm_find(const struct conf *c, const char *name, size_t len)
{
    if (strlen(c->realm) == len && memcmp(c->realm, name, len) == 0)
        return 0;
    for (size_t i = 0; i < c->n_realms; i++)
        if (strlen(c->realms[i].name) == len && memcmp(c->realms[i].name, name, len) == 0)
            return (int)i + 1;
    return -1;
}

int conf_realm_by_host(const struct conf *c, const char *host)
{
    for (size_t i = 0; i < c->n_realms; i++)
        for (size_t k = 0; k < c->realms[i].n_hosts; k++)
            if (strcasecmp(c->realms[i].hosts[k], host) == 0)
                return (int)i + 1;
    return -1;
}

int conf_realm_by_origin(const struct conf *c, const char *origin, size_t len)
{
    for (size_t i = 0; i < c->n_realms; i++)
        for (size_t k = 0; k < c->realms[i].n_origins; k++)
            if (strlen(c->realms[i].origins[k]) == len &&
                memcmp(c->realms[i].origins[k], origin, len) == 0)
                return (int)i + 1;
    return -1;
}
