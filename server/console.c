/*
 * console.c - see console.h: who gets in, the sign-in form and the pages;
 * the JSON API itself is console_api.c's.
 *
 * Order of the checks, each for a reason: the console off (no admin_token)
 * looks like no console at all (404); a source that guessed wrong too often
 * is refused before its guess is looked at (429), so that the limit bounds
 * guessing and not just failing; then the credential; then, for a POST that
 * rode on the cookie, where it came from (CSRF).
 *
 * Only token guesses count against the limit (a Bearer header or the login
 * form), not stale cookies: a console left open across a restart must not
 * lock its owner out. The cookie is an HMAC that cannot be guessed anyway.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/console_int.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/net.h"
#include "server/server.h"

#define CONSOLE_CSP                                                                  \
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "       \
    "'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
#define LOGIN_ERROR_MARK "<!--error-->"
#define LOGIN_MAX_TOKEN 512

struct console *console_new(struct server *srv)
{
    struct console *c = calloc(1, sizeof *c);
    if (!c || console_auth_init(&c->auth) < 0) {
        free(c);
        return NULL;
    }
    c->srv = srv;
    return c;
}

void console_free(struct console *c)
{
    if (!c)
        return;
    console_api_drop_calls(c);
    OPENSSL_cleanse(&c->auth, sizeof c->auth);
    free(c);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%s\n", text);
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

/* A page: the headers that keep it from being framed, cached or fed
 * scripts from elsewhere. When mark is in the page, note replaces it. */
static void reply_page(struct evhttp_request *req, int code, const char *reason,
                       const unsigned char *page, size_t len, const char *note)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Content-Security-Policy", CONSOLE_CSP);
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    /* same-origin, not no-referrer: under no-referrer a browser sends
     * "Origin: null" with the sign-in form's POST, which login_post refuses
     * as cross-site; same-origin still sends nothing to other sites */
    evhttp_add_header(h, "Referrer-Policy", "same-origin");
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    const char *at = note ? memmem(page, len, LOGIN_ERROR_MARK, sizeof LOGIN_ERROR_MARK - 1) : NULL;
    if (at) {
        size_t head = (size_t)(at - (const char *)page), skip = head + sizeof LOGIN_ERROR_MARK - 1;
        evbuffer_add(b, page, head);
        evbuffer_add_printf(b, "<p class=\"err\">%s</p>", note);
        evbuffer_add(b, page + skip, len - skip);
    } else {
        evbuffer_add(b, page, len);
    }
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void redirect(struct evhttp_request *req, const char *location, const char *cookie)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Location", location);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (cookie)
        evhttp_add_header(h, "Set-Cookie", cookie);
    evhttp_send_reply(req, 303, "See Other", NULL);
}

static const char *header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static const struct sockaddr *peer(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    return conn ? evhttp_connection_get_addr(conn) : NULL;
}

/* A wrong token (Bearer or form): counted against its source, and said
 * once here, with the source and what it tried to reach. */
static void wrong_token(struct console *c, struct evhttp_request *req, const char *what)
{
    const struct sockaddr *src = peer(req);
    char a[NET_ADDRSTRLEN] = "?";
    if (src)
        net_addr_format(src, a, sizeof a);
    if (console_rate_fail(&c->auth, src, clock_mono_ms()))
        log_warn("console: wrong token from %s (%.200s); %d in %d s, refused for %d s", a, what,
                 CONSOLE_RATE_FAILS, CONSOLE_RATE_WINDOW_MS / 1000, CONSOLE_RATE_WINDOW_MS / 1000);
    else
        log_info("console: wrong token from %s (%.200s)", a, what);
}

/* The page asked for went to the sign-in form first; where to after. */
static void login_next(struct evhttp_request *req, const char *body, size_t len, char *out,
                       size_t cap)
{
    snprintf(out, cap, "/");
    if (console_form_value(body, len, "next", out, cap) >= 0 && console_next_ok(out))
        return;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && console_form_value(query, strlen(query), "next", out, cap) >= 0 &&
        console_next_ok(out))
        return;
    snprintf(out, cap, "/");
}

static void login_post(struct console *c, struct evhttp_request *req)
{
    const char *admin = c->srv->conf->http_admin_token;
    /* a sign-in is not state to forge, but a cross-site one is never ours */
    const char *origin = header(req, "Origin"), *site = header(req, "Sec-Fetch-Site");
    if ((origin || site) && !console_same_origin(origin, site, header(req, "Host"))) {
        reply_text(req, 403, "Forbidden", "cross-site sign-in refused");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, (ssize_t)len) : "";
    char token[LOGIN_MAX_TOKEN], next[600];
    int n = body ? console_form_value(body, len, "token", token, sizeof token) : -1;
    if (n < 0 || !console_auth_token_ok(&c->auth, admin, token, (size_t)n)) {
        wrong_token(c, req, "sign-in form");
        OPENSSL_cleanse(token, sizeof token);
        reply_page(req, 401, "Unauthorized", www_login_html, www_login_html_len,
                   "Wrong token.");
        return;
    }
    OPENSSL_cleanse(token, sizeof token);
    login_next(req, body, len, next, sizeof next);
    char cookie[CONSOLE_COOKIE_LEN + 80];
    char value[CONSOLE_COOKIE_LEN + 1];
    console_auth_cookie(&c->auth, admin, value);
    snprintf(cookie, sizeof cookie, CONSOLE_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/", value);
    redirect(req, next, cookie);
}

/* Not signed in: a browser goes to the form, and comes back after. */
static void to_login(struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    char *enc = evhttp_encode_uri(uri && console_next_ok(uri) ? uri : "/");
    size_t cap = (enc ? strlen(enc) : 0) + 16;
    char *loc = malloc(cap);
    if (!enc || !loc) {
        free(enc);
        free(loc);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    snprintf(loc, cap, "/login?next=%s", enc);
    redirect(req, loc, NULL);
    free(enc);
    free(loc);
}

enum route { ROUTE_NONE, ROUTE_API, ROUTE_CONSOLE, ROUTE_ICETEST };

static enum route route_of(const char *path)
{
    if (strncmp(path, "/api/", 5) == 0)
        return ROUTE_API;
    if (strcmp(path, "/") == 0)
        return ROUTE_CONSOLE;
    if (strcmp(path, "/icetest") == 0)
        return ROUTE_ICETEST;
    return ROUTE_NONE;
}

/* Bearer or cookie: 1 in (*cookie when by cookie), 0 no credential or a
 * stale cookie, -1 a wrong token (counted). */
static int authenticate(struct console *c, struct evhttp_request *req, bool *cookie)
{
    const char *admin = c->srv->conf->http_admin_token;
    const char *authz = header(req, "Authorization");
    *cookie = false;
    if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        const char *t = authz + 7;
        if (console_auth_token_ok(&c->auth, admin, t, strlen(t)))
            return 1;
        wrong_token(c, req, evhttp_request_get_uri(req));
        return -1;
    }
    *cookie = console_auth_cookie_ok(&c->auth, admin, header(req, "Cookie"));
    return *cookie ? 1 : 0;
}

void console_handle(struct console *c, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!c->srv->conf->http_admin_token[0] || !path) {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
        return;
    }
    enum route r = route_of(path);
    bool login = strcmp(path, "/login") == 0;
    if (r == ROUTE_NONE && !login) {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (console_rate_blocked(&c->auth, peer(req), clock_mono_ms())) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "10");
        if (r == ROUTE_API)
            console_reply_error(req, 429, "Too Many Requests", "too many wrong tokens; wait 10 s");
        else
            reply_text(req, 429, "Too Many Requests", "too many wrong tokens; wait 10 s");
        return;
    }
    if (login) {
        if (m == EVHTTP_REQ_POST)
            login_post(c, req);
        else
            reply_page(req, HTTP_OK, "OK", www_login_html, www_login_html_len, NULL);
        return;
    }
    bool by_cookie;
    int auth = authenticate(c, req, &by_cookie);
    if (auth == 0 && r != ROUTE_API) {
        to_login(req);
        return;
    }
    if (auth <= 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          auth < 0 ? "Bearer realm=\"tern\", error=\"invalid_token\""
                                   : "Bearer realm=\"tern\"");
        if (r == ROUTE_API)
            console_reply_error(req, 401, "Unauthorized",
                                auth < 0 ? "wrong token" : "sign in or send Authorization: Bearer");
        else
            reply_text(req, 401, "Unauthorized", "wrong token");
        return;
    }
    if (m == EVHTTP_REQ_POST && by_cookie &&
        !console_same_origin(header(req, "Origin"), header(req, "Sec-Fetch-Site"),
                             header(req, "Host"))) {
        char a[NET_ADDRSTRLEN] = "?";
        if (peer(req))
            net_addr_format(peer(req), a, sizeof a);
        log_warn("console: cross-site POST %.200s from %s refused (Origin %.200s, Sec-Fetch-Site "
                 "%.40s)", path, a, header(req, "Origin") ? header(req, "Origin") : "-",
                 header(req, "Sec-Fetch-Site") ? header(req, "Sec-Fetch-Site") : "-");
        console_reply_error(req, 403, "Forbidden",
                            "a POST with the console's cookie must come from the console's page");
        return;
    }
    if (r == ROUTE_API) {
        console_api_route(c, req, path);
    } else if (m != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        reply_text(req, 405, "Method Not Allowed", "GET only");
    } else if (r == ROUTE_CONSOLE) {
        reply_page(req, HTTP_OK, "OK", www_console_html, www_console_html_len, NULL);
    } else {
        reply_page(req, HTTP_OK, "OK", www_icetest_html, www_icetest_html_len, NULL);
    }
}
