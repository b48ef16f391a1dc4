/*
 * drain.h - taking a node out of rotation without cutting calls (ternctl
 * drain, SIGUSR1): new Allocates are answered 300 Try Alternate when
 * alternate_servers are set, 508 otherwise; Binding, Refresh and everything
 * on existing allocations go on; ternd exits by itself when the last
 * allocation ends or at the deadline. GET /health says 503 meanwhile, so a
 * load balancer stops sending new clients.
 */
#ifndef TERN_SERVER_DRAIN_H
#define TERN_SERVER_DRAIN_H

#include <stdbool.h>

struct server;

/* Start (or move the deadline of) a drain: deadline_s from now (main
 * thread). 0, or -1 on out-of-memory. */
int drain_start(struct server *srv, unsigned deadline_s);
/* Back in rotation. */
void drain_stop(struct server *srv);
bool drain_active(const struct server *srv);
/* Live allocations of the node (main thread: summed from the counters). */
unsigned long long drain_allocations(const struct server *srv);
void drain_free(struct server *srv);

#endif
