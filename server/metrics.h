/*
 * metrics.h - the HTTP listener (conf->metrics; `http = { ... }` in the
 * file, `metrics = { ... }` before): the Prometheus endpoint, GET /metrics
 * in the text exposition format 0.0.4, summed from every worker's counters
 * (stats.h) at scrape time, and GET /health; every other path goes to the
 * web console (console.h). Runs on the main thread's event base, so a
 * scrape never touches the packet path beyond relaxed loads.
 */
#ifndef TERN_SERVER_METRICS_H
#define TERN_SERVER_METRICS_H

#include <stddef.h>

struct sockaddr_storage;

struct server;
struct event_base;

/*
 * Listen on srv->conf->metrics and serve scrapes from base (the main
 * thread's). Call once every worker has started: a scrape reads all of
 * srv->workers. Returns 0, or -1 with one line logged ("cannot listen on
 * metrics 127.0.0.1:9641: Address already in use").
 */
int metrics_start(struct server *srv, struct event_base *base);

/* Could the endpoint listen on addr (a reload that moves it)? 0, or -1 with
 * "cannot listen on metrics ADDR: reason" in err. */
int metrics_probe(const struct sockaddr_storage *addr, char *err, size_t err_len);

/* Close the endpoint and its connections; before base is freed and before
 * the workers are. Does nothing when metrics_start did not succeed. */
void metrics_stop(struct server *srv);

#endif
