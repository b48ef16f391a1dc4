/*
 * control.h - the control socket of ternctl: a Unix stream socket
 * (`control = { path; mode; }`, off when unset), on the main thread. Nothing
 * on it is reachable from the network; its file mode says who may use it.
 *
 * Protocol (one request per connection): the client writes its arguments,
 * each ended by a NUL byte, then one more NUL (an empty argument); any
 * bytes are allowed in an argument, a user name with spaces included. The
 * server answers "ok\n" or "error\n", then the body, and closes: with the
 * argument --json anywhere, the body is one JSON document, otherwise text
 * for people (tables). Requests:
 *
 *   status                          version, uptime, workers, allocations,
 *                                   sessions per transport, relay ports in
 *                                   use and free, Redis state and round trip,
 *                                   draining or not
 *   sessions [--user U] [--realm R] one line per allocation
 *   kill ID | kill --user U         end allocations and their connections
 *   reload                          re-read the configuration (reload.h)
 *   loglevel error|warn|info|debug
 *   drain [--deadline SECONDS]      (drain.h); default limits.max_lifetime
 *   undrain
 */
#ifndef TERN_SERVER_CONTROL_H
#define TERN_SERVER_CONTROL_H

struct server;

#define CONTROL_MAX_REQUEST 4096

/* Listen on srv->conf's control path (a stale socket file is replaced).
 * 0, or -1 with one line logged. Nothing happens without a control group. */
int control_start(struct server *srv);
/* Close the socket, its connections, and remove the file. */
void control_stop(struct server *srv);

#endif
