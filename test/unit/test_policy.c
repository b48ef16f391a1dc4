/*
 * test_policy.c - unit tests for the relay peer policy (server/relay/policy.c).
 *
 * The tables are the point: CVE-2020-26262 was a policy that denied
 * 127.0.0.1 but not 0.0.0.0 or ::ffff:127.0.0.1, so every forbidden range is
 * tested in each IPv6 spelling that carries an IPv4 address, and every deny
 * has an allowed neighbour next to it so an over-broad rule fails too.
 * Configurations are built with conf_load_string, the way ternd builds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "server/relay/policy.h"

struct pcase {
    const char *ip;
    bool allowed;
};

/* Judge each case with port 3478 and again with another port: the policy is
 * about addresses, so the port must never change the answer. */
static void check_table(const struct policy *p, const struct pcase *t, size_t n)
{
    static const unsigned ports[] = {3478, 1};
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < 2; j++) {
            struct sockaddr_storage ss;
            if (conf_parse_ip(t[i].ip, ports[j], &ss) < 0)
                fail_msg("test address \"%s\" does not parse", t[i].ip);
            bool got = policy_peer_allowed(p, (const struct sockaddr *)&ss);
            if (got != t[i].allowed)
                fail_msg("%s port %u: %s, expected %s", t[i].ip, ports[j],
                         got ? "allowed" : "denied", t[i].allowed ? "allowed" : "denied");
        }
    }
}

#define CHECK(p, t) check_table((p), (t), sizeof(t) / sizeof((t)[0]))

/* Load text (may be "") into *c and init *p from it. */
static void load(struct conf *c, struct policy *p, const char *text)
{
    char err[CONF_ERR_LEN] = "";
    if (conf_load_string(c, text, "t.conf", err, sizeof(err)) < 0)
        fail_msg("config does not load: %s\n%s", err, text);
    policy_init(p, c);
}

static void test_default_deny(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"127.0.0.1", false},
        {"127.255.255.254", false},
        {"0.0.0.0", false},
        {"0.1.2.3", false},
        {"10.0.0.1", false},
        {"172.16.5.4", false},
        {"172.31.255.255", false},
        {"192.168.1.1", false},
        {"100.64.0.1", false},
        {"100.127.255.255", false},
        {"169.254.169.254", false}, /* cloud metadata */
        {"192.0.0.8", false},
        {"198.18.0.1", false},
        {"198.19.255.255", false},
        {"224.0.0.1", false},
        {"239.255.255.250", false},
        {"255.255.255.255", false},
        {"240.0.0.1", false},
        {"192.0.2.1", false},
        {"198.51.100.7", false},
        {"203.0.113.5", false},
        {"::", false},
        {"::1", false},
        {"fe80::1", false},
        {"febf:ffff::1", false},
        {"fec0::1", false},
        {"fc00::1", false},
        {"fd12:3456::1", false},
        {"ff02::1", false},
        {"ff0e::1", false},
        {"100::1", false},
        {"2001:db8::1", false},
        /* The same forbidden IPv4 addresses, spelled as IPv6. */
        {"::ffff:127.0.0.1", false},
        {"::ffff:10.0.0.1", false},
        {"::ffff:0.0.0.0", false},
        {"::ffff:169.254.169.254", false},
        {"::ffff:192.168.0.1", false},
        {"::127.0.0.1", false},      /* IPv4-compatible */
        {"::10.0.0.1", false},
        {"::0.0.0.2", false},
        {"::ffff:0:127.0.0.1", false}, /* IPv4-translated */
        {"::ffff:0:10.1.1.1", false},
        {"64:ff9b::7f00:1", false},   /* NAT64 of 127.0.0.1 */
        {"64:ff9b::a9fe:a9fe", false}, /* NAT64 of 169.254.169.254 */
        {"2002:7f00:0001::1", false}, /* 6to4 of 127.0.0.1 */
        {"2002:0a00:0001::1", false}, /* 6to4 of 10.0.0.1 */
        {"2002:a9fe:a9fe::", false},
        {"2001:0:4136:e378:8000:63bf:80ff:fffe", false}, /* Teredo, client 127.0.0.1 */
        {"2001:0:4136:e378:8000:63bf:f5ff:fffe", false}, /* Teredo, client 10.0.0.1 */
        {"2001:0:4136:e378:8000:63bf:ffff:ffff", false}, /* Teredo, client 0.0.0.0 */
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "");
    CHECK(&p, t);
    conf_free(&c);
}

static void test_default_allow(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"8.8.8.8", true},
        {"1.1.1.1", true},
        {"9.255.255.255", true},  /* next to 10/8 */
        {"11.0.0.0", true},
        {"100.63.255.255", true}, /* next to 100.64/10 */
        {"100.128.0.0", true},
        {"126.255.255.255", true},
        {"128.0.0.1", true},
        {"169.253.255.255", true},
        {"172.15.255.255", true}, /* next to 172.16/12 */
        {"172.32.0.0", true},
        {"192.0.1.1", true},
        {"192.0.3.1", true},
        {"192.167.255.255", true},
        {"192.169.0.0", true},
        {"198.17.255.255", true},
        {"198.20.0.0", true},
        {"198.51.101.1", true},
        {"203.0.114.5", true},    /* next to TEST-NET-3 */
        {"223.255.255.255", true},
        {"2606:4700:4700::1111", true},
        {"2001:4860:4860::8888", true},
        {"fbff::1", true},        /* next to fc00::/7 */
        {"fe00::1", true},
        {"100:0:0:1::1", true},   /* past 100::/64 */
        {"2001:db9::1", true},
        {"::ffff:8.8.8.8", true},
        {"::8.8.8.8", true},
        {"::ffff:0:8.8.8.8", true},
        {"64:ff9b::808:808", true},
        {"64:ff9b:0:0:1::7f00:1", true}, /* not the /96: plain IPv6 */
        {"2002:0808:0808::1", true},
        {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", true}, /* Teredo, client 8.8.8.8 */
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "");
    CHECK(&p, t);
    conf_free(&c);
}

static void test_allow_loopback(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"127.0.0.1", true},   {"127.1.2.3", true},          {"::1", true},
        {"::ffff:127.0.0.1", true}, {"64:ff9b::7f00:1", true}, {"10.0.0.1", false},
        {"0.0.0.0", false},    {"::", false},                {"169.254.169.254", false},
        {"8.8.8.8", true},
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "peers = { allow_loopback = true; };");
    CHECK(&p, t);
    conf_free(&c);
}

static void test_allow_list(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"10.1.2.3", true},           {"::ffff:10.1.2.3", true}, {"2002:0a01:0203::1", true},
        {"11.0.0.1", true},           {"192.168.1.1", false},    {"127.0.0.1", false},
        {"fd00::1", true},            {"fd01::1", false},        {"169.254.169.254", false},
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "peers = { allow = [\"10.0.0.0/8\", \"fd00::/16\"]; };");
    CHECK(&p, t);
    conf_free(&c);
}

static void test_deny_list(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"8.8.8.8", false},          {"::ffff:8.8.8.8", false},
        {"::8.8.8.8", false},        {"64:ff9b::808:808", false},
        {"2002:0808:0808::", false}, {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", false},
        {"8.8.9.1", true},           {"2606:4700::1", false},
        {"2606:4701::1", true},
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "peers = { deny = [\"8.8.8.0/24\", \"2606:4700::/32\"]; };");
    CHECK(&p, t);
    conf_free(&c);
}

static void test_deny_wins(void **state)
{
    (void)state;
    struct conf c;
    struct policy p;

    static const struct pcase same[] = {{"10.0.0.1", false}, {"::ffff:10.0.0.1", false}};
    load(&c, &p, "peers = { allow = [\"10.0.0.0/8\"]; deny = [\"10.0.0.0/8\"]; };");
    CHECK(&p, same);
    conf_free(&c);

    static const struct pcase hole[] = {
        {"10.0.0.5", false}, {"::ffff:10.0.0.5", false}, {"10.0.0.6", true}, {"10.0.0.4", true},
    };
    load(&c, &p, "peers = { allow = [\"10.0.0.0/8\"]; deny = [\"10.0.0.5/32\"]; };");
    CHECK(&p, hole);
    conf_free(&c);

    static const struct pcase lo[] = {{"127.0.0.1", false}, {"::ffff:127.0.0.1", false},
                                      {"::1", true}};
    load(&c, &p, "peers = { allow_loopback = true; deny = [\"127.0.0.0/8\"]; };");
    CHECK(&p, lo);
    conf_free(&c);
}

static void test_own_addresses(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"8.8.4.4", false},         {"::ffff:8.8.4.4", false}, {"64:ff9b::808:404", false},
        {"2606:4700::4", false},    {"9.9.9.9", false},        {"1.0.0.1", false},
        {"8.8.4.5", true},          {"2606:4700::5", true},    {"9.9.9.10", true},
        {"1.0.0.2", true},          {"203.0.114.5", true},
    };
    struct conf c;
    struct policy p;
    /* The wildcard listener must not make every peer "own". */
    load(&c, &p,
         "listen = ( { proto = \"udp\"; ip = \"0.0.0.0\"; port = 3478; },\n"
         "           { proto = \"udp\"; ip = \"::\"; port = 3478; },\n"
         "           { proto = \"tcp\"; ip = \"1.0.0.1\"; port = 3478; } );\n"
         "relay = { ip = [\"8.8.4.4\", \"2606:4700::4\"]; external_ip = [\"9.9.9.9\"]; };");
    CHECK(&p, t);
    conf_free(&c);
}

/* policy_init must work on a struct conf filled by hand as well; an own
 * relay address on loopback is allowed once loopback is (explicit opt-in). */
static void test_by_hand(void **state)
{
    (void)state;
    struct conf *c = malloc(sizeof(*c));
    assert_non_null(c);
    conf_init_defaults(c);
    c->peers_allow_loopback = true;
    assert_int_equal(conf_parse_ip("127.0.0.2", 0, &c->relay_ip[0]), 0);
    c->n_relay_ip = 1;
    assert_int_equal(conf_parse_cidr("192.168.0.0/16", &c->peers_allow[0]), 0);
    c->n_peers_allow = 1;
    struct policy p;
    policy_init(&p, c);
    static const struct pcase t[] = {
        {"127.0.0.1", true}, {"127.0.0.2", true}, {"192.168.7.7", true}, {"10.0.0.1", false},
    };
    CHECK(&p, t);
    conf_free(c);
    free(c);
}

/* RFC 8215's local-use NAT64 prefix carries IPv4 like the well-known one, at
 * whatever RFC 6052 prefix length the operator chose. */
static void test_nat64_local_use(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"64:ff9b:1::a9fe:a9fe", false},          /* /96: 169.254.169.254 */
        {"64:ff9b:1::a00:1", false},              /* /96: 10.0.0.1 */
        {"64:ff9b:1::7f00:1", false},             /* /96: 127.0.0.1 */
        {"64:ff9b:1::808:808", true},             /* /96: 8.8.8.8 */
        {"64:ff9b:1:abcd:a:0:100:0", false},      /* /64: 10.0.0.1 */
        {"64:ff9b:1:abcd:8:808:800:0", true},     /* /64: 8.8.8.8 */
        {"64:ff9b:1:a9fe:a9:fe00::", false},      /* /48: 169.254.169.254 */
        {"64:ff9b:1:a9:fe:a9fe::", false},        /* /56: 169.254.169.254 */
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "");
    CHECK(&p, t);
    conf_free(&c);
}

/* An allow rule that covers only the IPv6 spelling admits nothing of the
 * IPv4 address inside it: the IPv4 address itself must be allowed. */
static void test_allow_ipv6_form_admits_no_ipv4(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"64:ff9b::a00:1", false},                            /* 10.0.0.1 */
        {"64:ff9b::a9fe:a9fe", false},                        /* 169.254.169.254 */
        {"2002:0a00:0001::1", false},                         /* 6to4 10.0.0.1 */
        {"2001:0:4136:e378:8000:63bf:f5ff:fffe", false},      /* Teredo 10.0.0.1 */
        {"2002:0808:0808::1", true},                          /* 6to4 8.8.8.8 */
        {"2606:4700::1", true},                               /* plain IPv6 */
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "peers = { allow = [\"64:ff9b::/96\", \"2000::/3\"]; };");
    CHECK(&p, t);
    conf_free(&c);
    static const struct pcase v4[] = {{"64:ff9b::a00:1", true}, {"2002:0a00:0001::1", true}};
    load(&c, &p, "peers = { allow = [\"10.0.0.0/8\"]; };");
    CHECK(&p, v4);
    conf_free(&c);
}

/* The host's own interface addresses are never peers (RFC 8656 section 21),
 * in any spelling; their neighbours are. */
static void test_host_addresses(void **state)
{
    (void)state;
    static const struct pcase t[] = {
        {"11.0.0.1", false}, {"::ffff:11.0.0.1", false}, {"64:ff9b::b00:1", false},
        {"2606:4700::4", false}, {"11.0.0.2", true}, {"2606:4700::5", true},
    };
    struct conf c;
    struct policy p;
    load(&c, &p, "");
    struct sockaddr_in6 host[2];
    memset(host, 0, sizeof host);
    struct sockaddr_storage ss;
    conf_parse_ip("11.0.0.1", 0, &ss);
    memcpy(&host[0], &ss, sizeof(struct sockaddr_in));
    conf_parse_ip("2606:4700::4", 0, &ss);
    memcpy(&host[1], &ss, sizeof(struct sockaddr_in6));
    policy_set_host(&p, host, 2);
    CHECK(&p, t);
    conf_free(&c);
}

static void test_odd_input(void **state)
{
    (void)state;
    struct conf c;
    struct policy p;
    load(&c, &p, "");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_false(policy_peer_allowed(&p, (const struct sockaddr *)&ss));
    assert_false(policy_peer_allowed(&p, NULL));
    assert_int_equal(conf_parse_ip("8.8.8.8", 1, &ss), 0);
    assert_false(policy_peer_allowed(NULL, (const struct sockaddr *)&ss));
    conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_deny),   cmocka_unit_test(test_default_allow),
        cmocka_unit_test(test_allow_loopback), cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_deny_list),      cmocka_unit_test(test_deny_wins),
        cmocka_unit_test(test_own_addresses),  cmocka_unit_test(test_by_hand),
        cmocka_unit_test(test_odd_input),      cmocka_unit_test(test_nat64_local_use),
        cmocka_unit_test(test_allow_ipv6_form_admits_no_ipv4),
        cmocka_unit_test(test_host_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
