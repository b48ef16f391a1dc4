/*
 * console_int.h - what console.c (routes, sign-in, pages) and console_api.c
 * (the JSON API) share. Not for use elsewhere. console.c calls into
 * console_api.c, never the other way.
 */
#ifndef TERN_SERVER_CONSOLE_INT_H
#define TERN_SERVER_CONSOLE_INT_H

#include <stddef.h>

#include "server/console.h"
#include "server/console_auth.h"

/* API requests waiting for the workers at once; beyond, 503 (each holds a
 * 4 KB request and a task through every worker). */
#define CONSOLE_MAX_CALLS 64

struct console_call;
struct evhttp_request;
struct evbuffer;

/* The pages of server/www, compiled in by the Makefile (NUL-terminated). */
extern const unsigned char www_console_html[], www_icetest_html[], www_login_html[];
extern const size_t www_console_html_len, www_icetest_html_len, www_login_html_len;

/* Owned by metrics.c's endpoint (console_new, console_free); main thread. */
struct console {
    struct server *srv;         /* borrowed */
    struct console_auth auth;
    struct console_call *calls; /* API requests the workers are at (console_api.c) */
    unsigned n_calls;           /* at most CONSOLE_MAX_CALLS */
};

/* A JSON answer with the console's headers (no-store). body may be NULL. */
void console_reply_json(struct evhttp_request *req, int code, const char *reason,
                        struct evbuffer *body);
/* {"error": msg} as code. */
void console_reply_error(struct evhttp_request *req, int code, const char *reason,
                         const char *msg);
/* An authenticated request under /api/ (console_api.c). */
void console_api_route(struct console *c, struct evhttp_request *req, const char *path);
/* Answer 503 to every call still waiting and forget them (console_free). */
void console_api_drop_calls(struct console *c);

#endif
