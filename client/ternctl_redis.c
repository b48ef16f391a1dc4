/*
 * ternctl_redis.c - `ternctl user` and `ternctl secret`: long-term users and
 * TURN REST secrets in Redis, in the schema of coturn 4.6 (what its
 * turnadmin writes and what both coturn and ternd's auth.redis read), so
 * that either tool manages the same Redis:
 *
 *   turn/realm/<realm>/user/<user>/key       string: hex MD5(user:realm:password)
 *                                            (turnadmin -a), or with --sha256
 *                                            the 64-hex SHA-256 key (ternd only)
 *   turn/realm/<realm>/user/<user>/password  string: a plain password (written
 *                                            by hand; ternd reads it when there
 *                                            is no key, coturn 4.6 no longer)
 *   turn/realm/<realm>/secret                set of REST secrets (turnadmin -s,
 *                                            -X, -S)
 *
 * Where ternctl differs from turnadmin 4.6.1, on purpose:
 * - every value travels as one argument (redisCommandArgv): turnadmin
 *   formats commands into one string, so a name with a space breaks it;
 * - `user delete` removes the plain password too (turnadmin -d removes only
 *   the key, and ternd then still authenticates the user by the password);
 * - `user list` shows the users with a plain password too (turnadmin -l only
 *   those with a key): ternd takes both;
 *   `user add` removes it as well, so no stale password is left behind;
 * - lists walk with SCAN, not KEYS, which stops a busy Redis;
 * - no SAVE after a write: it blocks Redis for every client (the credential
 *   lookups of a whole cluster); persistence is the Redis operator's setting.
 * The password is turned into the key with SASLprep (RFC 4013) as ternd does
 * (auth/'s auth_key_md5), which for ASCII passwords is the identity.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "client/ternctl.h"

#define REDIS_STR 256
#define REDIS_TIMEOUT_S 5

/* What --redis said; the same forms as ternd's auth.redis. */
struct redis_url {
    bool unix_socket;
    char host[REDIS_STR]; /* host name or IP, or the socket path */
    int port;
    char password[REDIS_STR];
    int db;
};

static int redis_parse_number(const char *s, size_t n, long min, long max, long *out)
{
    char buf[16];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    long v = strtol(buf, &end, 10);
    if (*end || buf[0] < '0' || buf[0] > '9' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] (IPv6 hosts in brackets) or
 * unix:///path[?db=N]. 0 or -1. */
static int redis_url_parse(const char *url, struct redis_url *u)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    long v;
    if (!strncmp(url, "unix://", 7)) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || n >= sizeof u->host || path[0] != '/')
            return -1;
        memcpy(u->host, path, n);
        u->unix_socket = true;
        if (q && (strncmp(q, "?db=", 4) != 0 ||
                  redis_parse_number(q + 4, strlen(q + 4), 0, 1000000, &v) < 0))
            return -1;
        u->db = q ? (int)v : 0;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) {
        /* the user name of a Redis 6 ACL is ignored, as ternd does */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof u->password)
            return -1;
        memcpy(u->password, pw, (size_t)(at - pw));
        p = at + 1;
    }
    const char *end = p + strcspn(p, "/"), *hs = p, *he;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        hs = p + 1;
        he = rb;
        p = rb + 1;
    } else {
        p = memchr(p, ':', (size_t)(end - p));
        if (!p)
            p = end;
        he = p;
    }
    if (p < end) {
        if (*p != ':' || redis_parse_number(p + 1, (size_t)(end - p - 1), 1, 65535, &v) < 0)
            return -1;
        u->port = (int)v;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof u->host)
        return -1;
    memcpy(u->host, hs, (size_t)(he - hs));
    if (*end == '/' && end[1]) {
        if (redis_parse_number(end + 1, strlen(end + 1), 0, 1000000, &v) < 0)
            return -1;
        u->db = (int)v;
    }
    return 0;
}

/* One connection and where it goes (for messages: never the password). */
struct redis {
    redisContext *c;
    char where[REDIS_STR + 16];
};

/* A command, each argument whole; the reply, or exit on an error. */
static redisReply *redis_run(struct redis *r, int argc, const char **argv)
{
    size_t lens[8];
    if (argc > 8)
        ctl_fail("internal: a Redis command of %d arguments", argc);
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep)
        ctl_fail("Redis at %s: %s", r->where, r->c->errstr[0] ? r->c->errstr : "no answer");
    if (rep->type == REDIS_REPLY_ERROR)
        ctl_fail("Redis at %s refused %s: %s", r->where, argv[0], rep->str);
    return rep;
}

static void redis_open(struct redis *r, const char *url)
{
    struct redis_url u;
    if (redis_url_parse(url, &u) < 0)
        ctl_usage_fail("--redis '%s' is not redis://[:password@]host[:port][/db] or "
                       "unix:///path[?db=N]",
                       url);
    struct timeval tv = { .tv_sec = REDIS_TIMEOUT_S };
    if (u.unix_socket) {
        snprintf(r->where, sizeof r->where, "%s", u.host);
        r->c = redisConnectUnixWithTimeout(u.host, tv);
    } else {
        snprintf(r->where, sizeof r->where, strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host,
                 u.port);
        r->c = redisConnectWithTimeout(u.host, u.port, tv);
    }
    if (!r->c || r->c->err)
        ctl_fail("cannot reach Redis at %s: %s", r->where, r->c ? r->c->errstr : "out of memory");
    redisSetTimeout(r->c, tv);
    if (u.password[0])
        freeReplyObject(redis_run(r, 2, (const char *[]){ "AUTH", u.password }));
    if (u.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u.db);
        freeReplyObject(redis_run(r, 2, (const char *[]){ "SELECT", db }));
    }
}

/* --- names and keys ------------------------------------------------------------ */

/* The options every user and secret command takes, checked. */
struct target {
    struct ctl_opts o;
    const char *cmd;
    const char *realm;
    struct redis r;
};

static void target_open(struct target *t, const char *cmd, const char *const *want, int argc,
                        char **argv)
{
    t->cmd = cmd;
    ctl_opts_parse(&t->o, cmd, want, argc, argv, 2);
    t->realm = ctl_opt_need(&t->o, cmd, "--realm");
    /* A '/' would make the key of one realm the key of another
     * (turn/realm/a/b/user/...), and coturn cuts realms at the first '/'. */
    if (strchr(t->realm, '/') || strlen(t->realm) >= REDIS_STR)
        ctl_usage_fail("%s: --realm may not contain '/' nor be that long", cmd);
    redis_open(&t->r, ctl_opt_need(&t->o, cmd, "--redis"));
}

/* Ends the connection; returns rc, for `return target_close(t, rc)`. */
static int target_close(struct target *t, int rc)
{
    redisFree(t->r.c);
    t->r.c = NULL;
    return rc;
}

static const char *target_user(struct target *t)
{
    const char *user = ctl_opt_need(&t->o, t->cmd, "--user");
    if (strlen(user) >= AUTH_MAX_USERNAME) /* RFC 8489 section 14.3 */
        ctl_usage_fail("%s: --user is longer than %d bytes", t->cmd, AUTH_MAX_USERNAME - 1);
    return user;
}

/* turn/realm/<realm>/<tail>, malloc'd. */
static char *key_of(const char *realm, const char *tail)
{
    size_t n = strlen(realm) + strlen(tail) + 16;
    char *k = malloc(n);
    if (!k)
        ctl_fail("out of memory");
    snprintf(k, n, "turn/realm/%s/%s", realm, tail);
    return k;
}

static char *user_key(const char *realm, const char *user, const char *what)
{
    char tail[AUTH_MAX_USERNAME + 16]; /* target_user bounds user */
    snprintf(tail, sizeof tail, "user/%s/%s", user, what);
    return key_of(realm, tail);
}

/* A realm as a SCAN pattern that matches only itself. */
static void glob_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 2 < cap; s++) {
        if (strchr("*?[]\\", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = 0;
}

/* --- lists ------------------------------------------------------------------------ */

struct names {
    char **v;
    size_t n, cap;
};

static void names_add(struct names *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            ctl_fail("out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strndup(s, len)))
        ctl_fail("out of memory");
    l->n++;
}

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, each once (a user may have a key and a password). */
static void names_sort(struct names *l)
{
    if (!l->n)
        return;
    qsort(l->v, l->n, sizeof *l->v, names_cmp);
    size_t o = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i], l->v[o - 1]) != 0)
            l->v[o++] = l->v[i];
        else
            free(l->v[i]);
    }
    l->n = o;
}

static void names_print(const struct names *l, bool json, const char *realm, const char *what)
{
    if (json) {
        fputs("{\"realm\": ", stdout);
        ctl_json_string(stdout, realm);
        printf(", \"%s\": [", what);
        for (size_t i = 0; i < l->n; i++) {
            fputs(i ? ", " : "", stdout);
            ctl_json_string(stdout, l->v[i]);
        }
        fputs("]}\n", stdout);
    } else {
        for (size_t i = 0; i < l->n; i++)
            printf("%s\n", l->v[i]);
    }
}

/* The users of keys turn/realm/<realm>/user/<user>/<what>, by SCAN. */
static void scan_users(struct redis *r, const char *realm, const char *what, struct names *out)
{
    char esc[2 * REDIS_STR], pattern[2 * REDIS_STR + 32], cursor[32] = "0";
    glob_escape(realm, esc, sizeof esc);
    snprintf(pattern, sizeof pattern, "turn/realm/%s/user/*/%s", esc, what);
    char *prefix = key_of(realm, "user/");
    size_t plen = strlen(prefix), wlen = strlen(what);
    do {
        redisReply *rep = redis_run(
            r, 6, (const char *[]){ "SCAN", cursor, "MATCH", pattern, "COUNT", "1000" });
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY)
            ctl_fail("Redis at %s: SCAN answered something else than a cursor and keys", r->where);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const redisReply *k = rep->element[1]->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < plen + wlen + 2 ||
                memcmp(k->str, prefix, plen) != 0 || k->str[k->len - wlen - 1] != '/')
                continue;
            names_add(out, k->str + plen, k->len - plen - wlen - 1);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    free(prefix);
}

/* --- user ------------------------------------------------------------------------- */

static void say_done(bool json, const char *realm, const char *field, const char *value,
                     const char *extra_json, const char *text)
{
    if (json) {
        fputs("{\"realm\": ", stdout);
        ctl_json_string(stdout, realm);
        printf(", \"%s\": ", field);
        ctl_json_string(stdout, value);
        printf("%s}\n", extra_json);
    } else {
        printf("%s\n", text);
    }
}

static int user_add(struct target *t, bool json)
{
    const char *user = target_user(t);
    const char *pw = ctl_opt_secret(ctl_opt_need(&t->o, t->cmd, "--password"), "--password");
    bool sha256 = ctl_opt(&t->o, "--sha256") != NULL;
    uint8_t key[AUTH_SHA256_KEY_LEN];
    size_t klen = sha256 ? AUTH_SHA256_KEY_LEN : AUTH_MD5_KEY_LEN;
    int rc = sha256 ? auth_key_sha256(user, strlen(user), t->realm, pw, key)
                    : auth_key_md5(user, strlen(user), t->realm, pw, key);
    if (rc == AUTH_ERR_PROHIBITED)
        ctl_usage_fail("user add: the password has a character SASLprep prohibits (RFC 4013)");
    if (rc < 0)
        ctl_usage_fail("user add: the user, realm or password is too long");
    char hex[2 * AUTH_SHA256_KEY_LEN + 1];
    for (size_t i = 0; i < klen; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    char *k = user_key(t->realm, user, "key"), *p = user_key(t->realm, user, "password");
    freeReplyObject(redis_run(&t->r, 3, (const char *[]){ "SET", k, hex }));
    freeReplyObject(redis_run(&t->r, 2, (const char *[]){ "DEL", p }));
    char text[AUTH_MAX_USERNAME + REDIS_STR + 64];
    snprintf(text, sizeof text, "user %s added to realm %s (%s key)", user, t->realm,
             sha256 ? "SHA-256" : "MD5");
    say_done(json, t->realm, "user", user, sha256 ? ", \"key\": \"sha256\"" : ", \"key\": \"md5\"",
             text);
    free(k);
    free(p);
    return CTL_EXIT_OK;
}

static int user_delete(struct target *t, bool json)
{
    const char *user = target_user(t);
    char *k = user_key(t->realm, user, "key"), *p = user_key(t->realm, user, "password");
    redisReply *rep = redis_run(&t->r, 3, (const char *[]){ "DEL", k, p });
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    free(k);
    free(p);
    if (n == 0)
        ctl_fail("user delete: no user %s in realm %s", user, t->realm);
    char text[AUTH_MAX_USERNAME + REDIS_STR + 64];
    snprintf(text, sizeof text, "user %s deleted from realm %s", user, t->realm);
    say_done(json, t->realm, "user", user, ", \"deleted\": true", text);
    return CTL_EXIT_OK;
}

static int user_list(struct target *t, bool json)
{
    struct names l = { 0 };
    scan_users(&t->r, t->realm, "key", &l);
    scan_users(&t->r, t->realm, "password", &l);
    names_sort(&l);
    names_print(&l, json, t->realm, "users");
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    return CTL_EXIT_OK;
}

int ctl_redis_user(int argc, char **argv, bool json)
{
    struct target t;
    const char *verb = argc > 1 ? argv[1] : "";
    if (!strcmp(verb, "add")) {
        static const char *const want[] = { "--redis=", "--realm=", "--user=", "--password=",
                                            "--sha256", NULL };
        target_open(&t, "user add", want, argc, argv);
        return target_close(&t, user_add(&t, json));
    }
    if (!strcmp(verb, "delete")) {
        static const char *const want[] = { "--redis=", "--realm=", "--user=", NULL };
        target_open(&t, "user delete", want, argc, argv);
        return target_close(&t, user_delete(&t, json));
    }
    if (!strcmp(verb, "list")) {
        static const char *const want[] = { "--redis=", "--realm=", NULL };
        target_open(&t, "user list", want, argc, argv);
        return target_close(&t, user_list(&t, json));
    }
    ctl_usage_fail("user: add, delete or list (see ternctl --help)");
}

/* --- secret ----------------------------------------------------------------------- */

int ctl_redis_secret(int argc, char **argv, bool json)
{
    static const char *const want[] = { "--redis=", "--realm=", "--secret=", NULL };
    static const char *const want_list[] = { "--redis=", "--realm=", NULL };
    const char *verb = argc > 1 ? argv[1] : "";
    bool add = !strcmp(verb, "add"), del = !strcmp(verb, "delete");
    if (!add && !del && strcmp(verb, "list") != 0)
        ctl_usage_fail("secret: add, delete or list (see ternctl --help)");
    struct target t;
    target_open(&t, add ? "secret add" : del ? "secret delete" : "secret list",
                add || del ? want : want_list, argc, argv);
    char *k = key_of(t.realm, "secret");
    if (!add && !del) {
        redisReply *rep = redis_run(&t.r, 2, (const char *[]){ "SMEMBERS", k });
        struct names l = { 0 };
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING)
                names_add(&l, rep->element[i]->str, rep->element[i]->len);
        freeReplyObject(rep);
        names_sort(&l);
        names_print(&l, json, t.realm, "secrets");
        for (size_t i = 0; i < l.n; i++)
            free(l.v[i]);
        free(l.v);
        free(k);
        return target_close(&t, CTL_EXIT_OK);
    }
    const char *secret = ctl_opt_secret(ctl_opt_need(&t.o, t.cmd, "--secret"), "--secret");
    redisReply *rep = redis_run(&t.r, 3, (const char *[]){ add ? "SADD" : "SREM", k, secret });
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    free(k);
    if (del && n == 0)
        ctl_fail("secret delete: no such secret in realm %s", t.realm);
    /* the secret itself is not repeated: answers end up in logs */
    if (json) {
        fputs("{\"realm\": ", stdout);
        ctl_json_string(stdout, t.realm);
        printf(", \"%s\": %s}\n", del ? "deleted" : "added", n ? "true" : "false");
    } else {
        printf("secret %s realm %s\n", del ? "deleted from" : n ? "added to" : "already in",
               t.realm);
    }
    return target_close(&t, CTL_EXIT_OK);
}
