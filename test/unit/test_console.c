/*
 * test_console.c - the web console's access rules and parsers
 * (server/console_auth.c) as functions: tokens and cookies, the wrong-token
 * limit and its bounded table, the same-origin rule for POST, where a
 * sign-in may send the browser next, form bodies, kill paths, Host headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "server/console_auth.h"

#define ADMIN "0123456789abcdef-admin"

static struct sockaddr_in v4(uint32_t ip)
{
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(ip), .sin_port = 7 };
    return s;
}

static void test_token_and_cookie(void **state)
{
    (void)state;
    static struct console_auth a, b;
    assert_int_equal(console_auth_init(&a), 0);
    assert_int_equal(console_auth_init(&b), 0);
    assert_true(console_auth_token_ok(&a, ADMIN, ADMIN, strlen(ADMIN)));
    assert_false(console_auth_token_ok(&a, ADMIN, ADMIN, strlen(ADMIN) - 1)); /* a prefix */
    assert_false(console_auth_token_ok(&a, ADMIN, "", 0));
    assert_false(console_auth_token_ok(&a, "", "", 0)); /* no token configured: nobody */
    char cookie[CONSOLE_COOKIE_LEN + 1], other[CONSOLE_COOKIE_LEN + 1], header[200];
    console_auth_cookie(&a, ADMIN, cookie);
    assert_int_equal(strlen(cookie), CONSOLE_COOKIE_LEN);
    assert_null(strstr(cookie, ADMIN));
    console_auth_cookie(&b, ADMIN, other); /* another process, another key */
    assert_string_not_equal(cookie, other);
    snprintf(header, sizeof header, "theme=dark; tern_admin=%s; x=1", cookie);
    assert_true(console_auth_cookie_ok(&a, ADMIN, header));
    assert_false(console_auth_cookie_ok(&b, ADMIN, header));
    assert_false(console_auth_cookie_ok(&a, ADMIN "x", header)); /* the token changed */
    snprintf(header, sizeof header, "tern_admin=%s", other);
    assert_false(console_auth_cookie_ok(&a, ADMIN, header));
    snprintf(header, sizeof header, "xtern_admin=%s", cookie);
    assert_false(console_auth_cookie_ok(&a, ADMIN, header));
    assert_false(console_auth_cookie_ok(&a, ADMIN, NULL));
}

static void test_five_wrong_tokens_block_for_the_window(void **state)
{
    (void)state;
    static struct console_auth a;
    console_auth_init(&a);
    struct sockaddr_in src = v4(0x0A000001), other = v4(0x0A000002);
    const struct sockaddr *s = (const struct sockaddr *)&src;
    for (int i = 0; i < CONSOLE_RATE_FAILS - 1; i++)
        assert_false(console_rate_fail(&a, s, 1000 + (uint64_t)i));
    assert_false(console_rate_blocked(&a, s, 1010));
    assert_true(console_rate_fail(&a, s, 1010));
    assert_true(console_rate_blocked(&a, s, 1011));
    assert_false(console_rate_blocked(&a, (const struct sockaddr *)&other, 1011));
    assert_true(console_rate_blocked(&a, s, 1010 + CONSOLE_RATE_WINDOW_MS - 1));
    assert_false(console_rate_blocked(&a, s, 1010 + CONSOLE_RATE_WINDOW_MS));
    /* failures spread wider than the window never add up */
    for (int i = 0; i < 20; i++)
        assert_false(console_rate_fail(&a, (const struct sockaddr *)&other,
                                       100000 + (uint64_t)i * CONSOLE_RATE_WINDOW_MS / 2));
}

static void test_full_table_forgets_the_oldest(void **state)
{
    (void)state;
    static struct console_auth a;
    console_auth_init(&a);
    struct sockaddr_in first = v4(0x0B000000);
    for (int i = 0; i < CONSOLE_RATE_FAILS; i++)
        console_rate_fail(&a, (const struct sockaddr *)&first, 10);
    assert_true(console_rate_blocked(&a, (const struct sockaddr *)&first, 11));
    /* as many other sources as there are slots, each newer */
    for (uint32_t i = 1; i <= CONSOLE_RATE_SLOTS; i++) {
        struct sockaddr_in s = v4(0x0B000000 + i);
        console_rate_fail(&a, (const struct sockaddr *)&s, 20 + i);
    }
    assert_false(console_rate_blocked(&a, (const struct sockaddr *)&first, 300));
}

static void test_same_origin(void **state)
{
    (void)state;
    const char *host = "127.0.0.1:9641";
    assert_true(console_same_origin("http://127.0.0.1:9641", NULL, host));
    assert_true(console_same_origin("https://127.0.0.1:9641", "same-origin", host));
    assert_true(console_same_origin(NULL, "same-origin", host));
    assert_true(console_same_origin(NULL, "none", host));
    assert_false(console_same_origin("http://evil.example", NULL, host));
    assert_false(console_same_origin("http://127.0.0.1:9641", "cross-site", host));
    assert_false(console_same_origin("http://127.0.0.1:96410", NULL, host));
    assert_false(console_same_origin("null", NULL, host));
    assert_false(console_same_origin(NULL, "same-site", host));
    assert_false(console_same_origin(NULL, NULL, host));
    assert_false(console_same_origin("http://127.0.0.1:9641", NULL, NULL));
}

static void test_next_paths(void **state)
{
    (void)state;
    assert_true(console_next_ok("/"));
    assert_true(console_next_ok("/icetest?x=1"));
    assert_false(console_next_ok("//evil.example/"));
    assert_false(console_next_ok("/\\evil.example"));
    assert_false(console_next_ok("http://evil.example/"));
    assert_false(console_next_ok("/a\r\nSet-Cookie: x"));
    assert_false(console_next_ok(""));
    assert_false(console_next_ok(NULL));
}

static void test_form_values(void **state)
{
    (void)state;
    char out[16];
    const char *body = "next=%2Ficetest&token=a+b%21&tokenx=no";
    assert_int_equal(console_form_value(body, strlen(body), "token", out, sizeof out), 4);
    assert_string_equal(out, "a b!");
    assert_int_equal(console_form_value(body, strlen(body), "next", out, sizeof out), 8);
    assert_string_equal(out, "/icetest");
    assert_int_equal(console_form_value(body, strlen(body), "nope", out, sizeof out), -1);
    assert_int_equal(console_form_value("token=%4", 8, "token", out, sizeof out), -1);
    assert_int_equal(console_form_value("token=%00", 9, "token", out, sizeof out), -1);
    assert_int_equal(console_form_value("token=0123456789abcdef", 22, "token", out, sizeof out), -1);
    assert_int_equal(console_form_value("token=", 6, "token", out, sizeof out), 0);
    /* the length bounds the read, not a NUL */
    assert_int_equal(console_form_value("token=abcdef", 7, "token", out, sizeof out), 1);
    assert_string_equal(out, "a");
}

static void test_kill_paths(void **state)
{
    (void)state;
    unsigned long long id = 0;
    assert_int_equal(console_kill_path("/api/sessions/000123/kill", &id), 0);
    assert_int_equal(id, 123);
    assert_int_equal(console_kill_path("/api/sessions/18446744073709551615/kill", &id), 0);
    assert_true(id == 18446744073709551615ULL);
    assert_int_equal(console_kill_path("/api/sessions/18446744073709551616/kill", &id), -1);
    assert_int_equal(console_kill_path("/api/sessions//kill", &id), -1);
    assert_int_equal(console_kill_path("/api/sessions/12a/kill", &id), -1);
    assert_int_equal(console_kill_path("/api/sessions/12/kill/", &id), -1);
    assert_int_equal(console_kill_path("/api/sessions/-1/kill", &id), -1);
    assert_int_equal(console_kill_path("/api/sessions", &id), -1);
}

static void test_host_names(void **state)
{
    (void)state;
    char h[64];
    assert_int_equal(console_host_name("turn.example.com:9641", h, sizeof h), 0);
    assert_string_equal(h, "turn.example.com");
    assert_int_equal(console_host_name("10.0.0.1", h, sizeof h), 0);
    assert_string_equal(h, "10.0.0.1");
    assert_int_equal(console_host_name("[2001:db8::1]:9641", h, sizeof h), 0);
    assert_string_equal(h, "2001:db8::1");
    assert_int_equal(console_host_name("[::1]", h, sizeof h), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(console_host_name("evil\"host", h, sizeof h), -1);
    assert_int_equal(console_host_name("a/b", h, sizeof h), -1);
    assert_int_equal(console_host_name("[::1", h, sizeof h), -1);
    assert_int_equal(console_host_name(":80", h, sizeof h), -1);
    assert_int_equal(console_host_name("", h, sizeof h), -1);
    assert_int_equal(console_host_name(NULL, h, sizeof h), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_cookie),
        cmocka_unit_test(test_five_wrong_tokens_block_for_the_window),
        cmocka_unit_test(test_full_table_forgets_the_oldest),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_next_paths),
        cmocka_unit_test(test_form_values),
        cmocka_unit_test(test_kill_paths),
        cmocka_unit_test(test_host_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
