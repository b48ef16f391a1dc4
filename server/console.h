/*
 * console.h - the web console on the HTTP listener (metrics.c owns the
 * listener and serves /metrics and /health itself; everything else comes
 * here). Off, every route 404, unless http.admin_token is set.
 *
 *   GET  /                          the console page (server/www/console.html)
 *   GET  /icetest                   the ICE self-test page (server/www/icetest.html)
 *   GET  /login, POST /login        the sign-in form; a right token sets the
 *                                   tern_admin cookie (HttpOnly, SameSite=Strict)
 *   GET  /api/status                what `ternctl --json status` prints
 *   GET  /api/sessions?user=&realm= what `ternctl --json sessions` prints
 *   POST /api/sessions/ID/kill      what `ternctl --json kill ID` prints; 404
 *   GET  /api/icetest               TURN REST credentials for the page and the
 *                                   iceServers of this server's listeners
 *
 * Access: "Authorization: Bearer TOKEN" or the cookie; a POST with the
 * cookie must come from the console's own origin (console_auth.h); 5 wrong
 * tokens from one address in 10 s earn it 429 for 10 s. The JSON documents
 * are control_cmd.c's, made by the same code as ternctl's answers.
 */
#ifndef TERN_SERVER_CONSOLE_H
#define TERN_SERVER_CONSOLE_H

struct console;
struct evhttp_request;
struct server;

/* The console of srv's HTTP listener (main thread). NULL on out-of-memory. */
struct console *console_new(struct server *srv);
/* Serve a request of any path but /metrics and /health. */
void console_handle(struct console *c, struct evhttp_request *req);
/* Requests still waiting for the workers are answered 503 (their answers,
 * when they come, go nowhere); then c is freed. Before evhttp_free. */
void console_free(struct console *c);

#endif
