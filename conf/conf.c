/*
 * conf.c - load and validate the ternd configuration (libconfig syntax).
 *
 * Design: libconfig only parses; every check is ours. The loader walks the
 * tree top-down, one function per group, and each group first rejects keys it
 * does not know, so a typo ("idle_timout") is an error with a line number
 * instead of a silently ignored setting. Absent keys keep the value set by
 * conf_init_defaults, so a file only states what differs.
 *
 * Errors are always "file:line: what is wrong", where the line is the one of
 * the offending setting (or of its enclosing group when something is
 * missing) and the setting is named by its full path ("listen[2].port").
 * Checks that span groups (a TLS listener needs tls.cert) run after the walk
 * so that key order in the file does not matter.
 *
 * The typed readers (one setting, its type and range) are in conf_read.c.
 */
#include "conf/conf.h"

#include "conf/conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <openssl/tls1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conf_load_listen(const struct conf_ctx *x, struct conf *c, const config_setting_t *root,
                            config_setting_t **where)
{
    static const char *const keys[] = {"proto", "ip", "port", "realm", "proxy_protocol", NULL};
    char path[CONF_STR];
    config_setting_t *l;
    if (conf_take_seq(x, root, "listen", CONF_MAX_LISTEN, &l) < 0)
        return -1;
    if (!l)
        return 0; /* keep the default udp+tcp listeners */
    if (config_setting_length(l) == 0)
        return conf_fail(x, l, "'listen' needs at least one entry");

    c->n_listen = 0;
    for (int i = 0; i < config_setting_length(l); i++) {
        config_setting_t *e = config_setting_get_elem(l, i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP)
            return conf_fail(x, e, "'%s' must be a group { proto = ...; ip = ...; port = ...; }",
                             CONF_PATH(e, path));
        if (conf_check_keys(x, e, keys) < 0)
            return -1;

        struct conf_listen *li = &c->listen[c->n_listen];
        memset(li, 0, sizeof *li); /* not the default listener's values */
        const config_setting_t *p = config_setting_get_member(e, "proto");
        char proto[16];
        if (!p)
            return conf_fail(x, e, "'%s' needs a 'proto'", CONF_PATH(e, path));
        if (conf_get_str(x, p, proto, sizeof(proto), true) < 0)
            goto bad_proto;
        if (strcmp(proto, "udp") == 0)
            li->proto = CONF_UDP;
        else if (strcmp(proto, "tcp") == 0)
            li->proto = CONF_TCP;
        else if (strcmp(proto, "tls") == 0)
            li->proto = CONF_TLS;
        else if (strcmp(proto, "dtls") == 0)
            li->proto = CONF_DTLS;
        else
            goto bad_proto;

        /* The standard ports make ip/port optional in the common case. */
        unsigned def_port = (li->proto == CONF_TLS || li->proto == CONF_DTLS) ? 5349 : 3478;
        if (conf_get_endpoint(x, e, "0.0.0.0", def_port, &li->addr) < 0 ||
            conf_take_str(x, e, "realm", li->realm, sizeof(li->realm), true) < 0 ||
            conf_take_bool(x, e, "proxy_protocol", &li->proxy_protocol) < 0)
            return -1;
        /* A balancer's header opens a stream; a datagram has nowhere to put it. */
        const config_setting_t *pp = config_setting_get_member(e, "proxy_protocol");
        if (pp && (li->proto == CONF_UDP || li->proto == CONF_DTLS))
            return conf_fail(x, pp, "'%s' is for tcp and tls listeners, not %s",
                             CONF_PATH(pp, path), proto);
        where[c->n_listen++] = e;
        continue;
    bad_proto:
        return conf_fail(x, p, "'%s' must be one of udp, tcp, tls, dtls", CONF_PATH(p, path));
    }
    return 0;
}

static int conf_load_ip_list(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                             struct sockaddr_storage *out, size_t *n)
{
    config_setting_t *l;
    if (conf_take_seq(x, g, key, CONF_MAX_RELAY_IPS, &l) < 0)
        return -1;
    if (!l)
        return 0;
    *n = 0;
    for (int i = 0; i < config_setting_length(l); i++) {
        if (conf_get_ip(x, config_setting_get_elem(l, i), 0, &out[*n]) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

static int conf_load_relay(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"ip",       "external_ip", "min_port",
                                       "max_port", "offload",     "offload_interfaces", NULL};
    config_setting_t *g;
    if (conf_take_group(x, root, "relay", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_load_ip_list(x, g, "ip", c->relay_ip, &c->n_relay_ip) < 0 ||
        conf_load_ip_list(x, g, "external_ip", c->external_ip, &c->n_external_ip) < 0 ||
        conf_load_offload(x, c, g) < 0)
        return -1;
    /* Below 1024 would need privileges and collide with system services. */
    if (conf_take_uint(x, g, "min_port", 1024, 65535, &c->relay_min_port) < 0 ||
        conf_take_uint(x, g, "max_port", 1024, 65535, &c->relay_max_port) < 0)
        return -1;
    if (c->relay_min_port > c->relay_max_port) {
        const config_setting_t *s = config_setting_get_member(g, "min_port");
        if (!s)
            s = config_setting_get_member(g, "max_port");
        return conf_fail(x, s, "'relay.min_port' (%u) is greater than 'relay.max_port' (%u)",
                         c->relay_min_port, c->relay_max_port);
    }
    return 0;
}

/* alternate_servers = [ "192.0.2.1:3478", "[2001:db8::1]:3478" ] */
static int conf_load_servers(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    config_setting_t *l;
    char s[CONF_STR], path[CONF_STR];
    if (conf_take_seq(x, root, "alternate_servers", CONF_MAX_RELAY_IPS, &l) < 0)
        return -1;
    for (int i = 0; l && i < config_setting_length(l); i++) {
        const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        if (conf_get_str(x, e, s, sizeof(s), true) < 0)
            return -1;
        char *colon = strrchr(s, ':');
        char *ip = s;
        if (colon) {
            *colon = 0;
            if (s[0] == '[' && colon > s && colon[-1] == ']') {
                ip = s + 1;
                colon[-1] = 0;
            }
        }
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || *end || port < 1 || port > 65535 ||
            conf_parse_ip(ip, (unsigned)port, &c->alternate_servers[i]) < 0)
            return conf_fail(x, e, "'%s' must be \"ip:port\" or \"[ipv6]:port\"",
                             CONF_PATH(e, path));
        c->n_alternate_servers = (size_t)i + 1;
    }
    return 0;
}

static int conf_load_auth(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"users", "secrets", "redis", "nonce_lifetime", "cache_ttl",
                                       NULL};
    config_setting_t *g, *l;
    if (conf_take_group(x, root, "auth", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;

    if (conf_take_seq(x, g, "users", (size_t)INT_MAX, &l) < 0 ||
        (l && conf_get_users(x, l, &c->users, &c->n_users) < 0))
        return -1;
    if (conf_take_seq(x, g, "secrets", CONF_MAX_SECRETS, &l) < 0 ||
        (l && conf_get_secrets(x, l, c->secrets, &c->n_secrets) < 0))
        return -1;
    if (conf_take_uint(x, g, "nonce_lifetime", 1, 86400, &c->nonce_lifetime) < 0 ||
        conf_take_uint(x, g, "cache_ttl", 1, 3600, &c->cache_ttl) < 0)
        return -1;
    return conf_take_str(x, g, "redis", c->redis, sizeof(c->redis), false);
}

static int conf_load_cidrs(const struct conf_ctx *x, const config_setting_t *g, const char *key,
                           struct conf_cidr *out, size_t *n)
{
    char path[CONF_STR];
    char s[CONF_STR];
    config_setting_t *l;
    if (conf_take_seq(x, g, key, CONF_MAX_CIDRS, &l) < 0)
        return -1;
    for (int i = 0; l && i < config_setting_length(l); i++) {
        const config_setting_t *e = config_setting_get_elem(l, i);
        if (conf_get_str(x, e, s, sizeof(s), true) < 0)
            return -1;
        if (conf_parse_cidr(s, &out[i]) < 0)
            return conf_fail(x, e,
                             "'%s' is not an address or CIDR (\"10.0.0.0/8\", \"fe80::/10\"): \"%s\"",
                             CONF_PATH(e, path), s);
        *n = (size_t)i + 1;
    }
    return 0;
}

static int conf_load_peers(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"allow_loopback", "allow", "deny", NULL};
    config_setting_t *g;
    if (conf_take_group(x, root, "peers", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_take_bool(x, g, "allow_loopback", &c->peers_allow_loopback) < 0 ||
        conf_load_cidrs(x, g, "allow", c->peers_allow, &c->n_peers_allow) < 0 ||
        conf_load_cidrs(x, g, "deny", c->peers_deny, &c->n_peers_deny) < 0)
        return -1;
    return 0;
}

static int conf_load_limits(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"user_quota",      "total_quota",  "max_bps",
                                       "max_lifetime",    "max_connections", "idle_timeout",
                                       "handshake_timeout", "unauth_rate", "unauth_global_rate",
                                       "unauth_global_bps", "time_scale", NULL};
    config_setting_t *g;
    if (conf_take_group(x, root, "limits", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_take_uint(x, g, "user_quota", 0, INT_MAX, &c->user_quota) < 0 ||
        conf_take_uint(x, g, "total_quota", 0, INT_MAX, &c->total_quota) < 0 ||
        conf_take_u64(x, g, "max_bps", 0, INT64_MAX, &c->max_bps) < 0 ||
        conf_take_uint(x, g, "max_lifetime", 1, 86400, &c->max_lifetime) < 0 ||
        conf_take_uint(x, g, "max_connections", 1, 1000000, &c->max_connections) < 0 ||
        conf_take_uint(x, g, "idle_timeout", 1, 86400, &c->idle_timeout) < 0 ||
        conf_take_uint(x, g, "handshake_timeout", 1, 3600, &c->handshake_timeout) < 0 ||
        conf_take_uint(x, g, "unauth_rate", 0, 1000000, &c->unauth_rate) < 0 ||
        conf_take_uint(x, g, "unauth_global_rate", 0, 100000000, &c->unauth_global_rate) < 0 ||
        conf_take_u64(x, g, "unauth_global_bps", 0, INT64_MAX, &c->unauth_global_bps) < 0 ||
        conf_take_uint(x, g, "time_scale", 1, 1000, &c->time_scale) < 0)
        return -1;
    return 0;
}

static int conf_load_log(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"level", "file", "syslog", "format", NULL};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char path[CONF_STR];
    config_setting_t *g;
    if (conf_take_group(x, root, "log", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    const config_setting_t *lv = config_setting_get_member(g, "level");
    if (lv) {
        char level[16];
        size_t i = 0;
        if (conf_get_str(x, lv, level, sizeof(level), true) == 0)
            while (i < 4 && strcmp(level, levels[i]) != 0)
                i++;
        if (i >= 4 || config_setting_type(lv) != CONFIG_TYPE_STRING)
            return conf_fail(x, lv, "'%s' must be one of error, warn, info, debug",
                             CONF_PATH(lv, path));
        c->log_level = (enum conf_log_level)i;
    }
    const config_setting_t *fm = config_setting_get_member(g, "format");
    if (fm) {
        char format[16] = "";
        if (config_setting_type(fm) != CONFIG_TYPE_STRING ||
            conf_get_str(x, fm, format, sizeof(format), true) < 0 ||
            (strcmp(format, "text") != 0 && strcmp(format, "json") != 0))
            return conf_fail(x, fm, "'%s' must be \"text\" or \"json\"", CONF_PATH(fm, path));
        c->log_format = strcmp(format, "json") == 0 ? CONF_LOG_JSON : CONF_LOG_TEXT;
    }
    if (conf_take_str(x, g, "file", c->log_file, sizeof(c->log_file), false) < 0 ||
        conf_take_bool(x, g, "syslog", &c->log_syslog) < 0)
        return -1;
    return 0;
}

/* control = { path; mode; }: mode is written as chmod takes it (0600), and
 * libconfig reads integers as decimal, so its digits are read as octal. */
static int conf_load_control(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"path", "mode", NULL};
    char path[CONF_STR];
    config_setting_t *g;
    if (conf_take_group(x, root, "control", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    if (conf_take_str(x, g, "path", c->control_path, sizeof(c->control_path), true) < 0)
        return -1;
    const config_setting_t *p = config_setting_get_member(g, "path");
    if (!p)
        return conf_fail(x, g, "'control.path' is required in a control group");
    const config_setting_t *m = config_setting_get_member(g, "mode");
    if (m) {
        char digits[32];
        if (config_setting_type(m) != CONFIG_TYPE_INT)
            return conf_fail(x, m, "'%s' must be an octal mode such as 0600", CONF_PATH(m, path));
        snprintf(digits, sizeof(digits), "%d", config_setting_get_int(m));
        char *end;
        unsigned long v = strtoul(digits, &end, 8);
        if (*end || v > 0777)
            return conf_fail(x, m, "'%s' must be an octal mode from 0 to 0777, such as 0600",
                             CONF_PATH(m, path));
        c->control_mode = (unsigned)v;
    }
    c->has_control = true;
    return 0;
}

/* http = { ip; port; admin_token; icetest_secret; }, or metrics = { ip;
 * port; } as it was first called: one listener, so not both. After auth:
 * the ICE test's own secret joins auth.secrets. */
static int conf_load_http(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const old_keys[] = {"ip", "port", NULL};
    static const char *const keys[] = {"ip", "port", "admin_token", "icetest_secret", NULL};
    char path[CONF_STR];
    config_setting_t *old, *g;
    if (conf_take_group(x, root, "metrics", old_keys, &old) < 0 ||
        conf_take_group(x, root, "http", keys, &g) < 0)
        return -1;
    if (old && g)
        return conf_fail(x, g, "'http' and 'metrics' are the same listener (metrics is its old "
                               "name): keep only 'http'");
    g = g ? g : old;
    if (!g)
        return 0;
    /* Loopback by default: neither metrics nor the console are meant for
     * the internet. */
    if (conf_get_endpoint(x, g, "127.0.0.1", 9641, &c->metrics) < 0 ||
        conf_take_str(x, g, "admin_token", c->http_admin_token, sizeof c->http_admin_token,
                      true) < 0 ||
        conf_take_str(x, g, "icetest_secret", c->http_icetest_secret,
                      sizeof c->http_icetest_secret, true) < 0)
        return -1;
    c->has_metrics = true;
    /* A short token falls to the rate limit's 5 guesses per 10 s. */
    const config_setting_t *t = config_setting_get_member(g, "admin_token");
    if (t && strlen(c->http_admin_token) < 16)
        return conf_fail(x, t, "'%s' is %zu characters; at least 16 (it is the console's "
                               "password)", CONF_PATH(t, path), strlen(c->http_admin_token));
    if (!c->http_icetest_secret[0])
        return 0;
    for (size_t i = 0; i < c->n_secrets; i++)
        if (strcmp(c->secrets[i], c->http_icetest_secret) == 0)
            return 0;
    if (c->n_secrets == CONF_MAX_SECRETS)
        return conf_fail(x, config_setting_get_member(g, "icetest_secret"),
                         "'%s' would be REST secret number %d of the default realm; at most %d",
                         CONF_PATH(config_setting_get_member(g, "icetest_secret"), path),
                         CONF_MAX_SECRETS + 1, CONF_MAX_SECRETS);
    snprintf(c->secrets[c->n_secrets++], CONF_STR, "%s", c->http_icetest_secret);
    return 0;
}

static int conf_load_root(const struct conf_ctx *x, struct conf *c, const config_setting_t *root)
{
    static const char *const keys[] = {"realm", "software", "workers", "listen", "alternate",
                                       "relay", "tls",      "auth",    "peers",  "limits",
                                       "metrics", "http", "log", "alternate_servers", "control",
                                       "user", "group", "realms", "oauth",
                                       "alternate_threshold", "alternate_domain", "mobility",
                                       NULL};
    static const char *const ep_keys[] = {"ip", "port", NULL};
    char path[CONF_STR];
    config_setting_t *listen_at[CONF_MAX_LISTEN];
    config_setting_t *g;

    if (conf_check_keys(x, root, keys) < 0 ||
        conf_take_str(x, root, "realm", c->realm, sizeof(c->realm), true) < 0 ||
        conf_take_str(x, root, "software", c->software, sizeof(c->software), false) < 0 ||
        conf_take_str(x, root, "user", c->run_user, sizeof(c->run_user), false) < 0 ||
        conf_take_str(x, root, "group", c->run_group, sizeof(c->run_group), false) < 0 ||
        conf_take_bool(x, root, "mobility", &c->mobility) < 0)
        return -1;
    /* A 401 challenge carries the realm, a nonce and the password
     * algorithms, and must stay within 128 bytes of the smallest request
     * (the amplification bound): a longer realm could not be answered. */
    if (strlen(c->realm) > CONF_MAX_REALM)
        return conf_fail(x, config_setting_get_member(root, "realm"),
                         "'realm' is %zu characters; at most %d (a 401 challenge must stay within "
                         "128 bytes of the smallest request)",
                         strlen(c->realm), CONF_MAX_REALM);
    unsigned workers = (unsigned)c->workers;
    if (conf_take_uint(x, root, "workers", 0, 256, &workers) < 0)
        return -1;
    c->workers = (int)workers;

    if (conf_load_listen(x, c, root, listen_at) < 0)
        return -1;

    if (conf_take_group(x, root, "alternate", ep_keys, &g) < 0)
        return -1;
    if (g) {
        if (conf_get_endpoint(x, g, NULL, 3479, &c->alternate) < 0)
            return -1;
        c->has_alternate = true;
    }

    if (conf_load_relay(x, c, root) < 0 || conf_load_servers(x, c, root) < 0 ||
        conf_take_uint(x, root, "alternate_threshold", 0, INT_MAX, &c->alternate_threshold) < 0 ||
        conf_take_str(x, root, "alternate_domain", c->alternate_domain,
                      sizeof(c->alternate_domain), false) < 0)
        return -1;

    if (conf_load_tls(x, c, root) < 0)
        return -1;

    if (conf_load_auth(x, c, root) < 0 || conf_load_peers(x, c, root) < 0 ||
        conf_load_limits(x, c, root) < 0)
        return -1;

    if (conf_load_http(x, c, root) < 0)
        return -1;

    if (conf_load_log(x, c, root) < 0 || conf_load_control(x, c, root) < 0 ||
        conf_load_realms(x, c, root) < 0 || conf_load_oauth(x, c, root) < 0)
        return -1;

    /* Only the presence of the paths is checked: the server reports an
     * unreadable certificate itself, with the OpenSSL reason. A listener
     * of a realm with a certificate of its own needs no default one. */
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct conf_listen *li = &c->listen[i];
        int r = li->realm[0] ? conf_realm_find(c, li->realm, strlen(li->realm)) : 0;
        if (r < 0)
            return conf_fail(x, config_setting_get_member(listen_at[i], "realm"),
                             "'%s.realm' names no realm: \"%s\" is neither 'realm' nor in "
                             "'realms'", CONF_PATH(listen_at[i], path), li->realm);
        struct conf_realm_view v;
        conf_realm_get(c, (size_t)r, &v);
        if ((li->proto == CONF_TLS || li->proto == CONF_DTLS) && (!v.tls_cert[0] || !v.tls_key[0]))
            return conf_fail(x, listen_at[i],
                             "'%s' is %s but tls.cert and tls.key are not both set",
                             CONF_PATH(listen_at[i], path), conf_proto_name(li->proto));
    }
    return 0;
}

void conf_init_defaults(struct conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->realm, sizeof(c->realm), "tern.local");
    snprintf(c->software, sizeof(c->software), "ternd");
    c->workers = 0;

    c->listen[0].proto = CONF_UDP;
    conf_parse_ip("0.0.0.0", 3478, &c->listen[0].addr);
    c->listen[1].proto = CONF_TCP;
    conf_parse_ip("0.0.0.0", 3478, &c->listen[1].addr);
    c->n_listen = 2;

    c->relay_min_port = 49152;
    c->relay_max_port = 65535;
    c->max_lifetime = 3600;
    c->max_connections = 10000;
    c->idle_timeout = 300;
    c->handshake_timeout = 10;
    c->unauth_rate = 50;
    c->tls_min_version = TLS1_2_VERSION;
    c->tls_ticket_rotation = 3600;
    c->unauth_global_rate = 10000;
    c->unauth_global_bps = 4u << 20;
    c->time_scale = 1;
    c->nonce_lifetime = 600;
    c->cache_ttl = 5;
    c->control_mode = 0600;
    c->log_level = CONF_LOG_INFO;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->users);
    c->users = NULL;
    c->n_users = 0;
    conf_realms_free(c);
    free(c->oauth_keys);
    c->oauth_keys = NULL;
    c->n_oauth_keys = 0;
}

/* Shared tail of both loaders: cfg has been read (or failed to). */
static int conf_load_parsed(struct conf *c, config_t *cfg, int ok, const struct conf_ctx *x)
{
    int rc;
    if (!ok) {
        const char *file = config_error_file(cfg);
        if (x->err && x->err_len)
            snprintf(x->err, x->err_len, "%s:%d: %s", file ? file : x->name,
                     config_error_line(cfg), config_error_text(cfg));
        rc = -1;
    } else {
        rc = conf_load_root(x, c, config_root_setting(cfg));
    }
    config_destroy(cfg);
    if (rc < 0) {
        /* Leave no half-loaded state behind: only defaults, nothing owned. */
        conf_free(c);
        conf_init_defaults(c);
    }
    return rc;
}

int conf_load_file(struct conf *c, const char *path, char *err, size_t err_len)
{
    struct conf_ctx x = {path, err, err_len};
    conf_init_defaults(c);
    /* Opened here rather than by config_read_file to report errno. */
    FILE *f = fopen(path, "r");
    if (!f) {
        if (err && err_len)
            snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    config_t cfg;
    config_init(&cfg);
    int ok = config_read(&cfg, f);
    fclose(f);
    return conf_load_parsed(c, &cfg, ok, &x);
}

int conf_load_string(struct conf *c, const char *text, const char *name, char *err,
                     size_t err_len)
{
    struct conf_ctx x = {name ? name : "<string>", err, err_len};
    conf_init_defaults(c);
    config_t cfg;
    config_init(&cfg);
    int ok = config_read_string(&cfg, text ? text : "");
    return conf_load_parsed(c, &cfg, ok, &x);
}
