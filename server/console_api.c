/*
 * console_api.c - the console's JSON API (console.h), for requests that
 * console.c has already authenticated.
 *
 * status, sessions and kill are the control socket's own requests: each API
 * call is a struct control_req run by control_cmd.c exactly as one from
 * ternctl --json, with an answer function of this file, so the documents are
 * the same bytes by construction (control_cmd_run, through srv->control_run). sessions and kill wait for the workers
 * (tasks.h); meanwhile the call sits on the console's list, so that a
 * listener that stops (shutdown, or a reload that moves it) answers it 503
 * and the workers' answer, when it comes, goes nowhere. A client that leaves
 * meanwhile costs nothing: evhttp keeps an unanswered request until it is
 * answered, then frees it.
 *
 * /api/icetest mints TURN REST credentials (the draft-uberti scheme that
 * auth/ checks) from http.icetest_secret or the default realm's first REST
 * secret; the secret itself never leaves.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "server/console_int.h"
#include "server/control_int.h"
#include "server/core/json.h"
#include "server/core/net.h"
#include "server/server.h"

#define ICETEST_TTL_S 300
#define ICETEST_MAX_URLS (3 * CONF_MAX_LISTEN)

/* One API request at the control code; owned by this file from call_start
 * to call_answer. req first: control_cmd.c hands back &call->req. */
struct console_call {
    struct control_req req;
    struct console *con;
    struct evhttp_request *http; /* NULL once answered 503 by console_api_drop_calls */
    int fail_code;               /* the HTTP status of a refusal (404 for kill) */
    struct console_call *next, *prev;
};

void console_reply_json(struct evhttp_request *req, int code, const char *reason,
                        struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, code, reason, body);
}

void console_reply_error(struct evhttp_request *req, int code, const char *reason,
                         const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    char q[1024];
    json_quote(msg, strlen(msg), q, sizeof q);
    if (b)
        evbuffer_add_printf(b, "{\"error\": %s}\n", q);
    console_reply_json(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

static void call_unlink(struct console_call *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else if (call->con)
        call->con->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
    if (call->con)
        call->con->n_calls--;
}

/* control_answer_fn: the control code's answer, as HTTP. */
static void call_answer(struct control_req *r, bool ok, struct evbuffer *body)
{
    struct console_call *call = (struct console_call *)r;
    if (call->http) {
        if (ok)
            console_reply_json(call->http, HTTP_OK, "OK", body);
        else if (body && evbuffer_get_length(body))
            console_reply_json(call->http, call->fail_code,
                               call->fail_code == HTTP_NOTFOUND ? "Not Found" : "Error", body);
        else
            console_reply_error(call->http, HTTP_INTERNAL, "Error", "out of memory");
        call_unlink(call);
    }
    free(call);
}

void console_api_drop_calls(struct console *c)
{
    while (c->calls) {
        struct console_call *call = c->calls;
        console_reply_error(call->http, 503, "Service Unavailable",
                            "the HTTP listener is closing");
        call->http = NULL;
        call_unlink(call);
        call->con = NULL;
    }
}

/* Run a control request of argc arguments (copied into the request) for
 * an HTTP request; its answer comes through call_answer. */
static void call_start(struct console *c, struct evhttp_request *req, int fail_code, int argc,
                       const char *const *argv)
{
    if (c->n_calls >= CONSOLE_MAX_CALLS) {
        console_reply_error(req, 503, "Service Unavailable",
                            "too many console requests at once; try again");
        return;
    }
    struct console_call *call = calloc(1, sizeof *call);
    if (!call) {
        console_reply_error(req, HTTP_INTERNAL, "Error", "out of memory");
        return;
    }
    size_t used = 0;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (used + n > sizeof call->req.buf) {
            free(call);
            console_reply_error(req, HTTP_BADREQUEST, "Bad Request", "the query is too long");
            return;
        }
        call->req.argv[i] = memcpy(call->req.buf + used, argv[i], n);
        used += n;
    }
    call->req.argc = argc;
    call->req.json = true;
    call->req.srv = c->srv;
    call->req.answer = call_answer;
    call->con = c;
    call->http = req;
    call->fail_code = fail_code;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->n_calls++;
    c->srv->control_run(&call->req);
}

static void api_sessions(struct console *c, struct evhttp_request *req)
{
    const char *argv[5] = { "sessions" };
    int argc = 1;
    struct evkeyvalq q = { 0 };
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query && evhttp_parse_query_str(query, &q) < 0) {
        console_reply_error(req, HTTP_BADREQUEST, "Bad Request", "a query that does not parse");
        return;
    }
    const char *user = evhttp_find_header(&q, "user"), *realm = evhttp_find_header(&q, "realm");
    if (user && *user) {
        argv[argc++] = "--user";
        argv[argc++] = user;
    }
    if (realm && *realm) {
        argv[argc++] = "--realm";
        argv[argc++] = realm;
    }
    call_start(c, req, HTTP_INTERNAL, argc, argv);
    evhttp_clear_headers(&q);
}

/* "HOST:PORT" of a listener for a URL: its own address, or when it listens
 * on every address, the host the browser reached us by. */
static void icetest_hostport(const struct sockaddr *addr, const char *host, char *out,
                             size_t cap)
{
    if (!net_addr_is_any(addr) || !host) {
        net_addr_format(addr, out, cap);
        return;
    }
    snprintf(out, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, net_addr_port(addr));
}

/* The iceServers URLs of the default realm's listeners, without repeats;
 * DTLS left out (browsers do not speak TURN over DTLS). */
static size_t icetest_urls(const struct conf *cf, const char *host,
                           char urls[][NET_ADDRSTRLEN + 32])
{
    size_t n = 0;
    for (size_t i = 0; i < cf->n_listen; i++) {
        const struct conf_listen *li = &cf->listen[i];
        if (li->realm[0] && strcmp(li->realm, cf->realm) != 0)
            continue; /* the credentials are the default realm's */
        char hp[NET_ADDRSTRLEN + 8];
        icetest_hostport((const struct sockaddr *)&li->addr, host, hp, sizeof hp);
        char mine[2][NET_ADDRSTRLEN + 32];
        int k = 0;
        if (li->proto == CONF_UDP) {
            snprintf(mine[k++], sizeof mine[0], "stun:%s", hp);
            snprintf(mine[k++], sizeof mine[0], "turn:%s?transport=udp", hp);
        } else if (li->proto == CONF_TCP) {
            snprintf(mine[k++], sizeof mine[0], "turn:%s?transport=tcp", hp);
        } else if (li->proto == CONF_TLS) {
            snprintf(mine[k++], sizeof mine[0], "turns:%s?transport=tcp", hp);
        }
        for (int j = 0; j < k; j++) {
            bool seen = false;
            for (size_t u = 0; u < n && !seen; u++)
                seen = strcmp(urls[u], mine[j]) == 0;
            if (!seen && n < ICETEST_MAX_URLS)
                memcpy(urls[n++], mine[j], sizeof mine[j]);
        }
    }
    return n;
}

static void api_icetest(struct console *c, struct evhttp_request *req)
{
    const struct conf *cf = c->srv->conf;
    const char *secret = cf->http_icetest_secret[0] ? cf->http_icetest_secret
                         : cf->n_secrets                ? cf->secrets[0]
                                                        : NULL;
    if (!secret) {
        console_reply_error(req, 503, "Service Unavailable",
                            "no secret to mint ICE test credentials with: set http.icetest_secret "
                            "or auth.secrets");
        return;
    }
    char user[64], pw[128];
    snprintf(user, sizeof user, "%lld:icetest", (long long)time(NULL) + ICETEST_TTL_S);
    if (auth_rest_password(secret, user, strlen(user), pw, sizeof pw) < 0) {
        console_reply_error(req, HTTP_INTERNAL, "Error", "cannot compute the credential");
        return;
    }
    char host[256];
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    char urls[ICETEST_MAX_URLS][NET_ADDRSTRLEN + 32];
    size_t n = icetest_urls(cf, console_host_name(h, host, sizeof host) == 0 ? host : NULL, urls);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        console_reply_error(req, HTTP_INTERNAL, "Error", "out of memory");
        return;
    }
    char q[2 * CONF_STR + 2 * sizeof urls[0]];
    evbuffer_add_printf(b, "{\"iceServers\": [{\"urls\": [");
    for (size_t i = 0; i < n; i++) {
        json_quote(urls[i], strlen(urls[i]), q, sizeof q);
        evbuffer_add_printf(b, "%s%s", i ? ", " : "", q);
    }
    json_quote(user, strlen(user), q, sizeof q);
    evbuffer_add_printf(b, "], \"username\": %s, ", q);
    json_quote(pw, strlen(pw), q, sizeof q);
    evbuffer_add_printf(b, "\"credential\": %s}], \"ttl\": %d, ", q, ICETEST_TTL_S);
    json_quote(cf->realm, strlen(cf->realm), q, sizeof q);
    evbuffer_add_printf(b, "\"realm\": %s}\n", q);
    console_reply_json(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

void console_api_route(struct console *c, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    unsigned long long id;
    const char *want = "GET";
    if (console_kill_path(path, &id) == 0) {
        want = "POST";
        if (m == EVHTTP_REQ_POST) {
            char digits[24];
            snprintf(digits, sizeof digits, "%llu", id);
            const char *argv[] = { "kill", digits };
            call_start(c, req, HTTP_NOTFOUND, 2, argv);
            return;
        }
    } else if (strcmp(path, "/api/status") == 0) {
        if (m == EVHTTP_REQ_GET) {
            const char *argv[] = { "status" };
            call_start(c, req, HTTP_INTERNAL, 1, argv);
            return;
        }
    } else if (strcmp(path, "/api/sessions") == 0) {
        if (m == EVHTTP_REQ_GET) {
            api_sessions(c, req);
            return;
        }
    } else if (strcmp(path, "/api/icetest") == 0) {
        if (m == EVHTTP_REQ_GET) {
            api_icetest(c, req);
            return;
        }
    } else {
        console_reply_error(req, HTTP_NOTFOUND, "Not Found", "no such API path");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", want);
    console_reply_error(req, 405, "Method Not Allowed", "wrong method for this path");
}
