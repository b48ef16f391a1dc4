/*
 * test_conf.c - unit tests for the configuration loader (conf/).
 *
 * Error tests pin the whole "name:line: " prefix, because operators jump to
 * that line: a loader that reports the enclosing group's line instead of the
 * offending key's is a regression even when the message text is right.
 * Run from the repository root (the default-file test opens conf/ternd.conf).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

/* Address of ss as text, port of ss, for compact assertions. */
static const char *test_ntop(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (!inet_ntop(ss->ss_family, a, buf, (socklen_t)cap))
        snprintf(buf, cap, "<family %d>", ss->ss_family);
    return buf;
}

static unsigned test_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

#define assert_addr(ss, ip, port)                                                        \
    do {                                                                                 \
        char b_[INET6_ADDRSTRLEN];                                                       \
        assert_string_equal(test_ntop((ss), b_, sizeof(b_)), (ip));                      \
        assert_int_equal(test_port(ss), (port));                                         \
    } while (0)

/* Load text as "t.conf", expect failure, and check the error starts with
 * prefix and (when given) contains needle. */
static void test_expect_error(const char *text, const char *prefix, const char *needle)
{
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    int rc = conf_load_string(&c, text, "t.conf", err, sizeof(err));
    if (rc != -1)
        fail_msg("loaded although an error was expected:\n%s", text);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, prefix);
    if (needle && !strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    /* A failed load must not leave owned memory behind. */
    assert_null(c.users);
    assert_int_equal(c.n_users, 0);
    conf_free(&c);
}

static void test_default_file_loads(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_file(&c, "conf/ternd.conf", err, sizeof(err)) != 0)
        fail_msg("conf/ternd.conf: %s", err);
    assert_string_equal(c.realm, "tern.local");
    assert_string_equal(c.software, "ternd");
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.n_listen, 2);
    assert_int_equal(c.listen[0].proto, CONF_UDP);
    assert_addr(&c.listen[0].addr, "0.0.0.0", 3478);
    assert_int_equal(c.listen[1].proto, CONF_TCP);
    assert_addr(&c.listen[1].addr, "0.0.0.0", 3478);
    assert_false(c.has_alternate);
    assert_int_equal(c.n_relay_ip, 0);
    assert_int_equal(c.n_users, 1);
    assert_string_equal(c.users[0].user, "demo");
    assert_string_equal(c.users[0].password, "demo-password-change-me");
    assert_int_equal(c.users[0].key_len, 0);
    assert_false(c.peers_allow_loopback);
    assert_false(c.has_metrics);
    assert_int_equal(c.log_level, CONF_LOG_INFO);
    assert_string_equal(c.log_file, "");
    conf_free(&c);
}

/* The commented-out examples in ternd.conf must be valid too: uncomment
 * them (and the tls/dtls listeners need the comma they document). */
static void test_default_file_examples_load(void **state)
{
    (void)state;
    FILE *f = fopen("conf/ternd.conf", "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 16), line[512];
    assert_non_null(text);
    while (fgets(line, sizeof(line), f)) {
        const char *p = line + strspn(line, " ");
        bool example = strncmp(p, "# , {", 5) == 0 || strncmp(p, "# alternate =", 13) == 0 ||
                       strncmp(p, "# tls =", 7) == 0 || strncmp(p, "# external_ip =", 15) == 0 ||
                       strncmp(p, "# secrets =", 11) == 0 || strncmp(p, "# redis =", 9) == 0 ||
                       strncmp(p, "# http =", 8) == 0 || strncmp(p, "# realms =", 10) == 0 ||
                       strncmp(p, "# oauth =", 9) == 0;
        strcat(text, example ? p + 2 : line);
    }
    fclose(f);
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c, text, "examples", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.n_listen, 6);
    assert_int_equal(c.listen[2].proto, CONF_TLS);
    assert_int_equal(c.listen[3].proto, CONF_DTLS);
    assert_addr(&c.listen[4].addr, "::", 3478);
    assert_false(c.listen[4].proxy_protocol);
    assert_int_equal(c.listen[5].proto, CONF_TCP);
    assert_true(c.listen[5].proxy_protocol);
    assert_true(c.has_alternate);
    assert_true(c.has_metrics);
    assert_string_equal(c.http_admin_token, "change-me-a-long-random-token");
    assert_int_equal(c.n_external_ip, 1);
    assert_int_equal(c.n_secrets, 1);
    assert_string_equal(c.redis, "redis://127.0.0.1:6379/0");
    assert_int_equal(c.n_realms, 1);
    assert_true(c.has_oauth);
    assert_int_equal(c.n_oauth_keys, 1);
    conf_free(&c);
    free(text);
}

static const char full_conf[] =
    "realm = \"example.org\";\n"
    "software = \"\";\n"
    "workers = 8;\n"
    "listen = ( { proto = \"udp\"; ip = \"0.0.0.0\"; port = 3478; },\n"
    "           { proto = \"tcp\"; ip = \"::\"; port = 3478; },\n"
    "           { proto = \"tls\"; ip = \"192.0.2.1\"; port = 5349; proxy_protocol = true; },\n"
    "           { proto = \"dtls\"; ip = \"2001:db8::1\"; },\n"
    "           { proto = \"udp\"; } );\n"
    "alternate = { ip = \"192.0.2.11\"; port = 3479; };\n"
    "relay = { ip = [ \"0.0.0.0\", \"2001:db8::2\" ]; external_ip = [ \"203.0.113.5\" ];\n"
    "          min_port = 50000; max_port = 50999; };\n"
    "tls = { cert = \"/etc/tern/cert.pem\"; key = \"/etc/tern/key.pem\"; };\n"
    "auth = { users = ( { user = \"alice\"; password = \"secret\"; },\n"
    "                   { user = \"bob\"; key = \"000102030405060708090a0b0c0d0E0F\"; },\n"
    "                   { user = \"carol\";\n"
    "                     key = \"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\"; } );\n"
    "         secrets = [ \"shared\", \"older\" ]; redis = \"redis://127.0.0.1:6379/0\"; };\n"
    "peers = { allow_loopback = true; allow = [ \"10.1.2.0/24\", \"::1\" ];\n"
    "          deny = [ \"10.0.0.0/8\", \"fe80::/10\", \"192.168.7.9\", \"10.9.9.9/8\" ]; };\n"
    "limits = { user_quota = 5; total_quota = 100; max_bps = 10000000000L; max_lifetime = 600;\n"
    "           max_connections = 20000; idle_timeout = 60; handshake_timeout = 5; };\n"
    "metrics = { ip = \"::1\"; port = 9642; };\n"
    "log = { level = \"debug\"; file = \"/var/log/ternd.log\"; syslog = true; };\n";

static void test_full_config(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c, full_conf, "full", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.realm, "example.org");
    assert_string_equal(c.software, "");
    assert_int_equal(c.workers, 8);

    assert_int_equal(c.n_listen, 5);
    assert_int_equal(c.listen[0].proto, CONF_UDP);
    assert_addr(&c.listen[0].addr, "0.0.0.0", 3478);
    assert_int_equal(c.listen[1].proto, CONF_TCP);
    assert_int_equal(c.listen[1].addr.ss_family, AF_INET6);
    assert_addr(&c.listen[1].addr, "::", 3478);
    assert_int_equal(c.listen[2].proto, CONF_TLS);
    assert_addr(&c.listen[2].addr, "192.0.2.1", 5349);
    assert_true(c.listen[2].proxy_protocol);
    assert_false(c.listen[1].proxy_protocol);
    assert_int_equal(c.listen[3].proto, CONF_DTLS);
    assert_addr(&c.listen[3].addr, "2001:db8::1", 5349); /* default TLS port */
    assert_addr(&c.listen[4].addr, "0.0.0.0", 3478);     /* default ip and port */

    assert_true(c.has_alternate);
    assert_addr(&c.alternate, "192.0.2.11", 3479);

    assert_int_equal(c.n_relay_ip, 2);
    assert_addr(&c.relay_ip[0], "0.0.0.0", 0);
    assert_addr(&c.relay_ip[1], "2001:db8::2", 0);
    assert_int_equal(c.n_external_ip, 1);
    assert_addr(&c.external_ip[0], "203.0.113.5", 0);
    assert_int_equal(c.relay_min_port, 50000);
    assert_int_equal(c.relay_max_port, 50999);

    assert_string_equal(c.tls_cert, "/etc/tern/cert.pem");
    assert_string_equal(c.tls_key, "/etc/tern/key.pem");

    assert_int_equal(c.n_users, 3);
    assert_string_equal(c.users[0].user, "alice");
    assert_string_equal(c.users[0].password, "secret");
    assert_int_equal(c.users[0].key_len, 0);
    assert_string_equal(c.users[1].user, "bob");
    assert_string_equal(c.users[1].password, "");
    assert_int_equal(c.users[1].key_len, 16);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(c.users[1].key[i], i);
    assert_int_equal(c.users[2].key_len, 32);
    assert_int_equal(c.users[2].key[0], 0x00);
    assert_int_equal(c.users[2].key[1], 0x11);
    assert_int_equal(c.users[2].key[15], 0xff);
    assert_int_equal(c.users[2].key[31], 0xff);
    assert_int_equal(c.n_secrets, 2);
    assert_string_equal(c.secrets[0], "shared");
    assert_string_equal(c.secrets[1], "older");
    assert_string_equal(c.redis, "redis://127.0.0.1:6379/0");

    assert_true(c.peers_allow_loopback);
    assert_int_equal(c.n_peers_allow, 2);
    assert_addr(&c.peers_allow[0].addr, "10.1.2.0", 0);
    assert_int_equal(c.peers_allow[0].prefix, 24);
    assert_addr(&c.peers_allow[1].addr, "::1", 0);
    assert_int_equal(c.peers_allow[1].prefix, 128);
    assert_int_equal(c.n_peers_deny, 4);
    assert_int_equal(c.peers_deny[0].prefix, 8);
    assert_addr(&c.peers_deny[1].addr, "fe80::", 0);
    assert_int_equal(c.peers_deny[1].prefix, 10);
    assert_int_equal(c.peers_deny[2].prefix, 32);
    assert_addr(&c.peers_deny[3].addr, "10.0.0.0", 0); /* host bits cleared */

    assert_int_equal(c.user_quota, 5);
    assert_int_equal(c.total_quota, 100);
    assert_true(c.max_bps == 10000000000ULL);
    assert_int_equal(c.max_lifetime, 600);
    assert_int_equal(c.max_connections, 20000);
    assert_int_equal(c.idle_timeout, 60);
    assert_int_equal(c.handshake_timeout, 5);

    assert_true(c.has_metrics);
    assert_addr(&c.metrics, "::1", 9642);

    assert_int_equal(c.log_level, CONF_LOG_DEBUG);
    assert_string_equal(c.log_file, "/var/log/ternd.log");
    assert_true(c.log_syslog);
    conf_free(&c);
    conf_free(&c); /* twice is harmless */
}

static void test_check_defaults(const struct conf *c)
{
    assert_string_equal(c->realm, "tern.local");
    assert_string_equal(c->software, "ternd");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->n_listen, 2);
    assert_int_equal(c->listen[0].proto, CONF_UDP);
    assert_addr(&c->listen[0].addr, "0.0.0.0", 3478);
    assert_int_equal(c->listen[1].proto, CONF_TCP);
    assert_addr(&c->listen[1].addr, "0.0.0.0", 3478);
    assert_false(c->has_alternate);
    assert_int_equal(c->n_relay_ip, 0);
    assert_int_equal(c->n_external_ip, 0);
    assert_int_equal(c->relay_min_port, 49152);
    assert_int_equal(c->relay_max_port, 65535);
    assert_string_equal(c->tls_cert, "");
    assert_string_equal(c->tls_key, "");
    assert_null(c->users);
    assert_int_equal(c->n_users, 0);
    assert_int_equal(c->n_secrets, 0);
    assert_string_equal(c->redis, "");
    assert_false(c->peers_allow_loopback);
    assert_int_equal(c->n_peers_allow, 0);
    assert_int_equal(c->n_peers_deny, 0);
    assert_int_equal(c->user_quota, 0);
    assert_int_equal(c->total_quota, 0);
    assert_true(c->max_bps == 0);
    assert_int_equal(c->max_lifetime, 3600);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->idle_timeout, 300);
    assert_int_equal(c->handshake_timeout, 10);
    assert_false(c->has_metrics);
    assert_int_equal(c->log_level, CONF_LOG_INFO);
    assert_string_equal(c->log_file, "");
    assert_false(c->log_syslog);
}

static void test_defaults(void **state)
{
    (void)state;
    struct conf c;
    conf_init_defaults(&c);
    test_check_defaults(&c);
    conf_free(&c);

    char err[CONF_ERR_LEN] = "";
    assert_int_equal(conf_load_string(&c, "# nothing\n", "empty", err, sizeof(err)), 0);
    test_check_defaults(&c);
    conf_free(&c);

    /* Empty groups keep every default; a metrics group alone turns it on. */
    assert_int_equal(conf_load_string(&c,
                                      "relay = { }; auth = { }; peers = { }; limits = { };\n"
                                      "log = { }; tls = { }; metrics = { };\n",
                                      "groups", err, sizeof(err)),
                     0);
    assert_true(c.has_metrics);
    assert_addr(&c.metrics, "127.0.0.1", 9641);
    c.has_metrics = false;
    test_check_defaults(&c);
    conf_free(&c);

    /* Partial groups keep the rest. */
    assert_int_equal(conf_load_string(&c, "limits = { idle_timeout = 30; };\n", "partial", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(c.idle_timeout, 30);
    assert_int_equal(c.max_lifetime, 3600);
    conf_free(&c);
}

static void test_free_is_safe(void **state)
{
    (void)state;
    struct conf c;
    memset(&c, 0, sizeof(c));
    conf_free(&c);
    conf_free(&c);
    conf_free(NULL);
}

static void test_err_unknown_key(void **state)
{
    (void)state;
    test_expect_error("realm = \"x\";\n\nrelm = \"y\";\n", "t.conf:3: ", "'relm'");
    test_expect_error("limits = {\n  idle_timeout = 5;\n  idle_timout = 5;\n};\n", "t.conf:3: ",
                      "limits.idle_timout");
    test_expect_error("listen = (\n { proto = \"udp\"; },\n { proto = \"tcp\";\n   adress = \"::\"; }\n);\n",
                      "t.conf:4: ", "listen[1].adress");
    test_expect_error("auth = { users = (\n { user = \"a\"; pass = \"b\"; } ); };\n", "t.conf:2: ",
                      "auth.users[0].pass");
    test_expect_error("metrics = { ip = \"::1\";\n  bind = 1; };\n", "t.conf:2: ", "metrics.bind");
}

/* A balancer's header opens a stream: tcp and tls only, a boolean. */
static void test_err_proxy_protocol(void **state)
{
    (void)state;
    test_expect_error("listen = ( { proto = \"tcp\"; },\n { proto = \"udp\";\n proxy_protocol = true; } );\n",
                      "t.conf:3: ", "'listen[1].proxy_protocol' is for tcp and tls listeners, not udp");
    test_expect_error("listen = ( { proto = \"dtls\";\n proxy_protocol = false; } );\n", "t.conf:2: ",
                      "not dtls");
    test_expect_error("listen = ( { proto = \"tcp\";\n proxy_protocol = 1; } );\n", "t.conf:2: ",
                      "'listen[0].proxy_protocol' must be true or false");
}

static void test_err_wrong_type(void **state)
{
    (void)state;
    test_expect_error("listen = ( { proto = \"udp\";\n  port = \"3478\"; } );\n", "t.conf:2: ",
                      "listen[0].port' must be an integer");
    test_expect_error("\nrealm = 5;\n", "t.conf:2: ", "must be a string");
    /* 53 characters: its 401 challenge would break the amplification bound */
    test_expect_error("\n\nrealm = \"realm-of-fifty-three-characters.tenant.example.org.xy\";\n",
                      "t.conf:3: ", "at most 52");
    test_expect_error("\n\nrelay = [ ];\n", "t.conf:3: ", "must be a group");
    test_expect_error("peers = {\n allow_loopback = 1; };\n", "t.conf:2: ", "true or false");
    test_expect_error("peers = {\n deny = \"10.0.0.0/8\"; };\n", "t.conf:2: ", "must be a list");
    test_expect_error("limits = {\n max_lifetime = 60.5; };\n", "t.conf:2: ", "integer");
    test_expect_error("listen = ( { proto = \"udp\"; },\n  \"tcp\" );\n", "t.conf:2: ",
                      "listen[1]' must be a group");
}

static void test_err_port(void **state)
{
    (void)state;
    test_expect_error("listen = ( { proto = \"udp\"; ip = \"0.0.0.0\";\n  port = 0; } );\n",
                      "t.conf:2: ", "1..65535 (got 0)");
    test_expect_error("listen = (\n { proto = \"udp\"; port = 70000; } );\n", "t.conf:2: ",
                      "1..65535 (got 70000)");
    test_expect_error("\nalternate = { ip = \"192.0.2.11\"; port = 0; };\n", "t.conf:2: ",
                      "alternate.port");
    test_expect_error("relay = {\n min_port = 80; };\n", "t.conf:2: ", "1024..65535");
}

static void test_err_proto(void **state)
{
    (void)state;
    test_expect_error("listen = (\n { proto = \"sctp\"; port = 3478; } );\n", "t.conf:2: ",
                      "udp, tcp, tls, dtls");
    test_expect_error("listen = (\n { ip = \"::\"; } );\n", "t.conf:2: ", "needs a 'proto'");
}

static void test_err_ip(void **state)
{
    (void)state;
    test_expect_error("listen = ( { proto = \"udp\";\n ip = \"1.2.3\"; } );\n", "t.conf:2: ",
                      "\"1.2.3\"");
    test_expect_error("relay = { ip = [ \"0.0.0.0\",\n \"2001:db8::g\" ]; };\n", "t.conf:2: ",
                      "relay.ip[1]");
    test_expect_error("alternate = {\n ip = \"example.org\"; port = 3479; };\n", "t.conf:2: ",
                      "not an IPv4 or IPv6 address");
    test_expect_error("\nalternate = { port = 3479; };\n", "t.conf:2: ", "needs an 'ip'");
}

static void test_err_cidr(void **state)
{
    (void)state;
    test_expect_error("peers = { deny = [\n \"10.0.0.0/33\" ]; };\n", "t.conf:2: ",
                      "peers.deny[0]");
    test_expect_error("peers = { allow = [ \"::/0\",\n \"fe80::/129\" ]; };\n", "t.conf:2: ",
                      "peers.allow[1]");
    test_expect_error("peers = {\n deny = [ \"10.0.0.0/\" ]; };\n", "t.conf:2: ", "CIDR");
    test_expect_error("peers = {\n deny = [ \"10.0.0.0/-1\" ]; };\n", "t.conf:2: ", "CIDR");
    test_expect_error("peers = {\n deny = [ \"10.0.0/8\" ]; };\n", "t.conf:2: ", "CIDR");
}

static void test_err_users(void **state)
{
    (void)state;
    test_expect_error("auth = { users = (\n { user = \"a\"; password = \"p\";\n"
                      "   key = \"000102030405060708090a0b0c0d0e0f\"; } ); };\n",
                      "t.conf:3: ", "both 'password' and 'key'");
    test_expect_error("auth = { users = ( { user = \"a\";\n key = \"0001020304050607\"; } ); };\n",
                      "t.conf:2: ", "hex digits");
    test_expect_error("auth = { users = ( { user = \"a\";\n"
                      " key = \"000102030405060708090a0b0c0d0e0g\"; } ); };\n",
                      "t.conf:2: ", "hex digits");
    test_expect_error("auth = { users = (\n { user = \"a\"; } ); };\n", "t.conf:2: ",
                      "needs a 'password' or a 'key'");
    test_expect_error("auth = { users = (\n { password = \"p\"; } ); };\n", "t.conf:2: ",
                      "needs a 'user'");
    test_expect_error("auth = { users = ( { user = \"a\"; password = \"p\"; },\n"
                      " { user = \"a\"; password = \"q\"; } ); };\n",
                      "t.conf:2: ", "defined twice");
    /* A later error after users were allocated must free them (ASan). */
    test_expect_error("auth = { users = ( { user = \"a\"; password = \"p\"; } ); };\n"
                      "log = { level = \"loud\"; };\n",
                      "t.conf:2: ", "error, warn, info, debug");
    test_expect_error("auth = {\n secrets = [ \"\" ]; };\n", "t.conf:2: ", "must not be empty");
}

static void test_err_tls_without_cert(void **state)
{
    (void)state;
    test_expect_error("listen = ( { proto = \"udp\"; },\n { proto = \"tls\"; } );\n", "t.conf:2: ",
                      "tls.cert and tls.key");
    test_expect_error("tls = { cert = \"/c.pem\"; };\nlisten = (\n { proto = \"dtls\"; } );\n",
                      "t.conf:3: ", "listen[0]' is dtls");

    /* The files need not exist: the server reports that itself. */
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    assert_int_equal(conf_load_string(&c,
                                      "tls = { cert = \"/nonexistent/c.pem\"; key = \"/nonexistent/k.pem\"; };\n"
                                      "listen = ( { proto = \"tls\"; } );\n",
                                      "t.conf", err, sizeof(err)),
                     0);
    conf_free(&c);
}

static void test_err_syntax(void **state)
{
    (void)state;
    /* libconfig treats ';' as optional, so the errors must be real ones. */
    test_expect_error("realm = \"x\";\nworkers = 1;\n\nlisten = ( { proto = \"udp\"; port = ; } );\n",
                      "t.conf:4: ", "syntax error");
    test_expect_error("realm = \"x\";\nlimits = {\n  idle_timeout = 5;\n", "t.conf:4: ", NULL);
    test_expect_error("realm = \"x\";\nrealm = \"y\";\n", "t.conf:2: ", "duplicate");
}

static void test_err_relay_range(void **state)
{
    (void)state;
    test_expect_error("relay = {\n min_port = 60000;\n max_port = 50000; };\n", "t.conf:2: ",
                      "greater than");
    /* Only max given: compared against the default min, reported at max. */
    test_expect_error("relay = {\n\n max_port = 2000; };\n", "t.conf:3: ", "greater than");
}

static void test_err_ranges(void **state)
{
    (void)state;
    test_expect_error("\nworkers = 257;\n", "t.conf:2: ", "0..256");
    test_expect_error("\nworkers = -1;\n", "t.conf:2: ", "0..256");
    test_expect_error("\nrealm = \"\";\n", "t.conf:2: ", "must not be empty");
    char big[400];
    snprintf(big, sizeof(big), "\nrealm = \"%0256d\";\n", 0);
    test_expect_error(big, "t.conf:2: ", "too long");
    test_expect_error("limits = {\n max_lifetime = 0; };\n", "t.conf:2: ", "1..86400");
    test_expect_error("limits = {\n idle_timeout = 86401; };\n", "t.conf:2: ", "1..86400");
    test_expect_error("limits = {\n handshake_timeout = 3601; };\n", "t.conf:2: ", "1..3600");
    test_expect_error("limits = {\n max_connections = 1000001; };\n", "t.conf:2: ",
                      "1..1000000");
    test_expect_error("limits = {\n max_bps = -1; };\n", "t.conf:2: ", "max_bps");
    test_expect_error("\nlisten = ( );\n", "t.conf:2: ", "at least one");
}

static void test_err_too_many(void **state)
{
    (void)state;
    char text[8192] = "listen = (\n";
    for (int i = 0; i <= CONF_MAX_LISTEN; i++) /* one too many, one per line */
        snprintf(text + strlen(text), sizeof(text) - strlen(text),
                 "{ proto = \"udp\"; port = %d; }%s\n", 10000 + i, i < CONF_MAX_LISTEN ? "," : "");
    strcat(text, ");\n");
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "t.conf:%d: ", CONF_MAX_LISTEN + 2);
    test_expect_error(text, prefix, "too many entries (max 32)");

    strcpy(text, "peers = { deny = [\n");
    for (int i = 0; i <= CONF_MAX_CIDRS; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "\"10.%d.0.0/16\"%s\n", i,
                 i < CONF_MAX_CIDRS ? "," : "]; };");
    snprintf(prefix, sizeof(prefix), "t.conf:%d: ", CONF_MAX_CIDRS + 2);
    test_expect_error(text, prefix, "too many entries");
}

static void test_file_errors(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    assert_int_equal(conf_load_file(&c, "/nonexistent/dir/ternd.conf", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/dir/ternd.conf: cannot open: No such file or directory");
    conf_free(&c);

    /* Errors in a real file carry the path exactly as given. */
    char path[] = "/tmp/test_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "realm = \"x\";\nlimits = {\n  bogus = 1;\n};\n";
    assert_int_equal(write(fd, body, sizeof(body) - 1), (ssize_t)(sizeof(body) - 1));
    close(fd);
    assert_int_equal(conf_load_file(&c, path, err, sizeof(err)), -1);
    char want[64];
    snprintf(want, sizeof(want), "%s:3: ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, want);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char bad[] = "realm = \"x\";\nworkers = ;\n";
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    assert_int_equal(conf_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: syntax error", path);
    assert_string_equal(err, want);
    unlink(path);

    /* A tiny or absent error buffer is not written past. */
    char tiny[8];
    assert_int_equal(conf_load_string(&c, "bogus = 1;", "long-name.conf", tiny, sizeof(tiny)), -1);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_int_equal(conf_load_string(&c, "bogus = 1;", "x", NULL, 0), -1);
}

static void test_parse_ip(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(conf_parse_ip("192.0.2.1", 80, &ss), 0);
    assert_addr(&ss, "192.0.2.1", 80);
    assert_int_equal(conf_parse_ip("2001:db8::1", 65535, &ss), 0);
    assert_addr(&ss, "2001:db8::1", 65535);
    assert_int_equal(conf_parse_ip("::ffff:10.0.0.1", 0, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(conf_parse_ip("fe80::1%1", 0, &ss), 0);
    assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 1);
    assert_int_equal(conf_parse_ip("1.2.3", 0, &ss), -1);
    assert_int_equal(conf_parse_ip("1.2.3.4 ", 0, &ss), -1);
    assert_int_equal(conf_parse_ip("localhost", 0, &ss), -1);
    assert_int_equal(conf_parse_ip("", 0, &ss), -1);
    assert_int_equal(conf_parse_ip("1.2.3.4", 65536, &ss), -1);
    assert_int_equal(conf_parse_ip("fe80::1%no-such-if0", 0, &ss), -1);
}

static void test_cidr_match(void **state)
{
    (void)state;
    struct conf_cidr c;
    struct sockaddr_storage ss;
    assert_int_equal(conf_parse_cidr("10.0.0.0/8", &c), 0);
    assert_int_equal(conf_parse_ip("10.200.1.1", 9, &ss), 0);
    assert_true(conf_cidr_match(&c, (struct sockaddr *)&ss));
    assert_int_equal(conf_parse_ip("11.0.0.1", 9, &ss), 0);
    assert_false(conf_cidr_match(&c, (struct sockaddr *)&ss));
    /* IPv4 rules apply to IPv4-mapped peers seen on dual-stack sockets. */
    assert_int_equal(conf_parse_ip("::ffff:10.1.1.1", 9, &ss), 0);
    assert_true(conf_cidr_match(&c, (struct sockaddr *)&ss));
    assert_int_equal(conf_parse_ip("2001:db8::1", 9, &ss), 0);
    assert_false(conf_cidr_match(&c, (struct sockaddr *)&ss));

    assert_int_equal(conf_parse_cidr("fe80::/10", &c), 0);
    assert_int_equal(conf_parse_ip("febf::1", 0, &ss), 0);
    assert_true(conf_cidr_match(&c, (struct sockaddr *)&ss));
    assert_int_equal(conf_parse_ip("fec0::1", 0, &ss), 0);
    assert_false(conf_cidr_match(&c, (struct sockaddr *)&ss));

    assert_int_equal(conf_parse_cidr("0.0.0.0/0", &c), 0);
    assert_int_equal(conf_parse_ip("203.0.113.9", 0, &ss), 0);
    assert_true(conf_cidr_match(&c, (struct sockaddr *)&ss));

    assert_int_equal(conf_parse_cidr("192.168.1.7", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(conf_parse_ip("192.168.1.8", 0, &ss), 0);
    assert_false(conf_cidr_match(&c, (struct sockaddr *)&ss));

    assert_int_equal(conf_parse_cidr("10.0.0.0/+8", &c), -1);
    assert_int_equal(conf_parse_cidr("10.0.0.0/8x", &c), -1);
    assert_int_equal(conf_parse_cidr("::/129", &c), -1);
}

static void test_hex_key(void **state)
{
    (void)state;
    uint8_t key[32];
    size_t len = 99;
    assert_int_equal(conf_parse_hex_key("ffFF00112233445566778899aabbccdd", key, &len), 0);
    assert_int_equal(len, 16);
    assert_int_equal(key[0], 0xff);
    assert_int_equal(key[1], 0xff);
    assert_int_equal(key[15], 0xdd);
    len = 99;
    assert_int_equal(conf_parse_hex_key("ffFF00112233445566778899aabbccd", key, &len), -1);
    assert_int_equal(conf_parse_hex_key("", key, &len), -1);
    assert_int_equal(conf_parse_hex_key(NULL, key, &len), -1);
    assert_int_equal(len, 99);
}

static void test_proto_name(void **state)
{
    (void)state;
    assert_string_equal(conf_proto_name(CONF_UDP), "udp");
    assert_string_equal(conf_proto_name(CONF_TCP), "tcp");
    assert_string_equal(conf_proto_name(CONF_TLS), "tls");
    assert_string_equal(conf_proto_name(CONF_DTLS), "dtls");
}

static const char realms_conf[] =
    "realm = \"default.example\";\n"
    "auth = { users = ( { user = \"root\"; password = \"r\"; } ); secrets = [ \"s0\" ]; };\n"
    "limits = { user_quota = 5; total_quota = 50; max_bps = 1000; };\n"
    "tls = { cert = \"/d.pem\"; key = \"/d.key\"; };\n"
    "listen = ( { proto = \"udp\"; realm = \"a.example\"; }, { proto = \"tls\"; } );\n"
    "realms = (\n"
    "  { name = \"a.example\"; hosts = [ \"TURN.A.example\" ]; origins = [ \"https://a.example\" ];\n"
    "    users = ( { user = \"bob\"; password = \"b\"; } ); limits = { user_quota = 1; };\n"
    "    tls = { cert = \"/a.pem\"; key = \"/a.key\"; }; },\n"
    "  { name = \"b.example\"; users = (); secrets = [ \"sb\" ]; }\n"
    ");\n";

/* A realm's view: its own keys, the top level's for what it leaves out. */
static void test_realms_inherit(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c, realms_conf, "t.conf", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(conf_realm_count(&c), 3);
    assert_string_equal(c.listen[0].realm, "a.example");
    assert_string_equal(c.listen[1].realm, "");
    struct conf_realm_view d, a, b;
    conf_realm_get(&c, 0, &d);
    conf_realm_get(&c, 1, &a);
    conf_realm_get(&c, 2, &b);
    assert_string_equal(d.name, "default.example");
    assert_int_equal(d.n_users, 1);
    assert_false(d.own_tls);
    assert_string_equal(a.name, "a.example");
    assert_int_equal(a.n_users, 1);
    assert_string_equal(a.users[0].user, "bob");
    assert_int_equal(a.n_secrets, 1); /* inherited */
    assert_string_equal(a.secrets[0], "s0");
    assert_int_equal(a.user_quota, 1);
    assert_int_equal(a.total_quota, 50); /* inherited */
    assert_int_equal(a.max_bps, 1000);
    assert_true(a.own_tls);
    assert_string_equal(a.tls_cert, "/a.pem");
    assert_string_equal(a.hosts[0], "turn.a.example"); /* SNI compares in lower case */
    assert_int_equal(b.n_users, 0); /* an empty list is "none", not "inherit" */
    assert_string_equal(b.secrets[0], "sb");
    assert_false(b.own_tls);
    assert_string_equal(b.tls_cert, "/d.pem");

    assert_int_equal(conf_realm_find(&c, "default.example", 15), 0);
    assert_int_equal(conf_realm_find(&c, "b.example", 9), 2);
    assert_int_equal(conf_realm_find(&c, "c.example", 9), -1);
    assert_int_equal(conf_realm_by_host(&c, "turn.a.EXAMPLE"), 1);
    assert_int_equal(conf_realm_by_host(&c, "turn.b.example"), -1);
    /* origins are kept as coturn keys them: default port added */
    assert_string_equal(a.origins[0], "https://a.example:443");
    assert_int_equal(conf_realm_by_origin(&c, "https://a.example:443", 21), 1);
    assert_int_equal(conf_realm_by_origin(&c, "https://a.example", 17), -1);
    conf_free(&c);
    assert_null(c.realms);
}

/* The form turnadmin -O stores an origin under: coturn's clients and ours
 * must agree on it byte for byte. */
static void test_origin_canonical(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "https://a.example", "https://a.example:443" },
        { "HTTPS://A.Example", "https://a.example:443" },
        { "http://a.example/path?q", "http://a.example:80" },
        { "https://a.example:8443", "https://a.example:8443" },
        { "turns://t.example", "turns://t.example:5349" },
        { "wss://w.example", "wss://w.example" }, /* no default port in coturn's table */
        { "not a uri", "not a uri" },
        { "a.example", "a.example" },
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = conf_origin_canonical(cases[i][0], strlen(cases[i][0]), out, sizeof out);
        assert_int_equal(n, (int)strlen(cases[i][1]));
        assert_string_equal(out, cases[i][1]);
    }
    assert_int_equal(conf_origin_canonical("https://a.example", 17, out, 10), -1);
}

static void test_err_realms(void **state)
{
    (void)state;
    test_expect_error("realm = \"x\";\nrealms = ( { name = \"a\"; },\n { name = \"a\"; } );\n",
                      "t.conf:3: ", "realm 'a' is defined twice");
    test_expect_error("realm = \"x\";\nrealms = ( { name = \"x\"; } );\n", "t.conf:2: ",
                      "defined twice");
    test_expect_error("realms = ( { name = \"a\"; hosts = [ \"h\" ]; },\n"
                      " { name = \"b\"; hosts = [ \"H\" ]; } );\n",
                      "t.conf:2: ", "host 'h' of 'realms[1]' belongs to another realm");
    test_expect_error("realms = ( { name = \"a\"; origins = [ \"o\" ]; },\n"
                      " { name = \"b\"; origins = [ \"o\" ]; } );\n",
                      "t.conf:2: ", "origin 'o'");
    test_expect_error("realms = ( { hosts = [ \"h\" ]; } );\n", "t.conf:1: ", "needs a 'name'");
    test_expect_error("realms = ( { name = \"a\";\n tls = { cert = \"/c\"; }; } );\n", "t.conf:2: ",
                      "needs both 'cert' and 'key'");
    test_expect_error("realms = ( { name = \"a\";\n colour = 1; } );\n", "t.conf:2: ",
                      "unknown key 'realms[0].colour'");
    test_expect_error("realms = ( { name = \"a23456789012345678901234567890123456789012345678901234\"; } );\n",
                      "t.conf:1: ", "at most 52");
    test_expect_error("listen = ( { proto = \"udp\";\n realm = \"nowhere\"; } );\n", "t.conf:2: ",
                      "names no realm");
    /* a TLS listener of a realm with its own certificate needs no default one */
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c,
                         "listen = ( { proto = \"tls\"; realm = \"a\"; } );\n"
                         "realms = ( { name = \"a\"; tls = { cert = \"/a\"; key = \"/k\"; }; } );\n",
                         "t.conf", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    conf_free(&c);
    test_expect_error("listen = ( { proto = \"tls\"; realm = \"a\"; } );\n"
                      "realms = ( { name = \"a\"; } );\n",
                      "t.conf:1: ", "tls.cert and tls.key");
}

static void test_oauth_keys(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c,
                         "realm = \"north.gov\";\n"
                         "oauth = { server_name = \"blackdow.carleon.gov\"; keys = (\n"
                         " { kid = \"north\"; key = \"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK\";\n"
                         "   realm = \"crinna.org\"; },\n"
                         " { kid = \"union\"; key = \"MTIzNDU2Nzg5MDEyMzQ1Ngo=\"; alg = \"A128GCM\";\n"
                         "   timestamp = 1000; lifetime = 3600; } ); };\n",
                         "t.conf", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(c.has_oauth);
    assert_string_equal(c.oauth_server_name, "blackdow.carleon.gov");
    assert_int_equal(c.n_oauth_keys, 2);
    assert_string_equal(c.oauth_keys[0].alg, "A256GCM"); /* the default */
    assert_string_equal(c.oauth_keys[0].realm, "crinna.org");
    assert_int_equal(c.oauth_keys[1].timestamp, 1000);
    assert_int_equal(c.oauth_keys[1].lifetime, 3600);
    conf_free(&c);
    assert_null(c.oauth_keys);
}

static void test_err_oauth(void **state)
{
    (void)state;
    test_expect_error("oauth = { keys = ( { kid = \"k\";\n key = \"MTIz\"; } ); };\n", "t.conf:2: ",
                      "at least 32 bytes for A256GCM (too short)");
    test_expect_error("oauth = { keys = ( { kid = \"k\";\n key = \"not base64!\"; } ); };\n",
                      "t.conf:2: ", "not base64");
    test_expect_error("oauth = { keys = ( { kid = \"k\"; key = \"MTIzNDU2Nzg5MDEyMzQ1Ngo=\";\n"
                      " alg = \"A192GCM\"; } ); };\n",
                      "t.conf:2: ", "A256GCM\" or \"A128GCM\"");
    test_expect_error("oauth = { keys = ( { kid = \"k\"; key = \"MTIzNDU2Nzg5MDEyMzQ1Ngo=\"; alg = \"A128GCM\"; },\n"
                      " { kid = \"k\"; key = \"MTIzNDU2Nzg5MDEyMzQ1Ngo=\"; alg = \"A128GCM\"; } ); };\n",
                      "t.conf:2: ", "kid 'k' is defined twice");
    test_expect_error("oauth = { keys = ( { key = \"MTIzNDU2Nzg5MDEyMzQ1Ngo=\"; } ); };\n",
                      "t.conf:1: ", "needs a 'kid' and a 'key'");
    /* realm and server name share the 401's room: 52 + 4 rounded up is too much */
    test_expect_error("realm = \"a23456789012345678901234567890123456789012345678901\";\n"
                      "oauth = { server_name = \"turn.x\"; };\n",
                      "t.conf:2: ", "too long together");
    test_expect_error("realm = \"a2345678901234567890123456789\";\noauth = { };\n", "t.conf:2: ",
                      "too long together");
}

/* http is the listener metrics named before: either group, not both; the
 * console's token has a floor; the ICE test's secret becomes a REST secret
 * of the default realm (once), so that ternd accepts what it mints. */
static void test_http_group(void **state)
{
    (void)state;
    struct conf c;
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(&c, "auth = { secrets = [ \"a\" ]; };\n"
                             "http = { port = 9700; admin_token = \"0123456789abcdef\";\n"
                             "  icetest_secret = \"ice\"; };\n",
                         "t.conf", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(c.has_metrics);
    assert_addr(&c.metrics, "127.0.0.1", 9700);
    assert_string_equal(c.http_admin_token, "0123456789abcdef");
    assert_string_equal(c.http_icetest_secret, "ice");
    assert_int_equal(c.n_secrets, 2);
    assert_string_equal(c.secrets[1], "ice");
    conf_free(&c);
    if (conf_load_string(&c, "auth = { secrets = [ \"ice\" ]; };\nhttp = { icetest_secret = \"ice\"; };\n",
                         "t.conf", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.n_secrets, 1);
    assert_string_equal(c.http_admin_token, "");
    conf_free(&c);
    test_expect_error("metrics = { port = 9641; };\n\nhttp = { port = 9641; };\n", "t.conf:3: ",
                      "'http' and 'metrics'");
    test_expect_error("http = {\n  admin_token = \"0123456789abcde\"; };\n", "t.conf:2: ",
                      "'http.admin_token' is 15 characters; at least 16");
    test_expect_error("http = {\n  admin_token = \"\"; };\n", "t.conf:2: ", "http.admin_token");
    test_expect_error("metrics = {\n  admin_token = \"0123456789abcdef0\"; };\n", "t.conf:2: ",
                      "metrics.admin_token");
    test_expect_error("http = {\n  bind = 1; };\n", "t.conf:2: ", "http.bind");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_file_loads),
        cmocka_unit_test(test_http_group),
        cmocka_unit_test(test_default_file_examples_load),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_free_is_safe),
        cmocka_unit_test(test_err_unknown_key),
        cmocka_unit_test(test_err_proxy_protocol),
        cmocka_unit_test(test_err_wrong_type),
        cmocka_unit_test(test_err_port),
        cmocka_unit_test(test_err_proto),
        cmocka_unit_test(test_err_ip),
        cmocka_unit_test(test_err_cidr),
        cmocka_unit_test(test_err_users),
        cmocka_unit_test(test_err_tls_without_cert),
        cmocka_unit_test(test_err_syntax),
        cmocka_unit_test(test_err_relay_range),
        cmocka_unit_test(test_err_ranges),
        cmocka_unit_test(test_err_too_many),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_parse_ip),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_hex_key),
        cmocka_unit_test(test_proto_name),
        cmocka_unit_test(test_realms_inherit),
        cmocka_unit_test(test_err_realms),
        cmocka_unit_test(test_origin_canonical),
        cmocka_unit_test(test_oauth_keys),
        cmocka_unit_test(test_err_oauth),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
