/*
 * control_int.h - what control.c (the socket and the protocol) and
 * control_cmd.c (the requests) share; the web console (console_api.c) makes
 * requests of its own with an answer function of its own, and main.c hands
 * control_cmd_run to it (srv->control_run). Not for use elsewhere.
 */
#ifndef TERN_SERVER_CONTROL_INT_H
#define TERN_SERVER_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "server/control.h"

struct evbuffer;
struct server;

#define CONTROL_MAX_ARGS 16

/*
 * One request. Owned by control.c from the moment its arguments are in
 * until it is answered (control_answer); a request that waits for the
 * workers keeps living if its client leaves (it then answers nobody).
 */
struct control_req;

/* Writes the answer and frees req (control.c's, handed to control_cmd.c in
 * the request, so that the requests never call back into the socket). */
typedef void (*control_answer_fn)(struct control_req *req, bool ok, struct evbuffer *body);

struct control_req {
    struct server *srv;
    control_answer_fn answer;
    struct control_conn *conn; /* NULL once the client has gone */
    bool json;
    int argc;                  /* without --json */
    char *argv[CONTROL_MAX_ARGS];
    char buf[CONTROL_MAX_REQUEST];
};

/* control_cmd.c: run the request; it answers (req->answer) now or later. */
void control_cmd_run(struct control_req *req);
/* Answer with a body of one line (an error as {"error": ...} in JSON). */
void control_answer_line(struct control_req *req, bool ok, const char *line);

#endif
