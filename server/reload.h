/*
 * reload.h - re-reading the whole configuration without a restart (SIGHUP,
 * ternctl reload). Users, secrets, realms, limits, peer policy, log level and
 * destination, alternate servers, Redis URL, metrics address, TLS
 * certificates and listeners take effect; existing allocations keep
 * relaying with the credentials they were made with; a listener that stays
 * keeps its sockets. A file that does not validate, a listen address in
 * use or a certificate that does not load refuses the whole reload, and the
 * running configuration stays.
 */
#ifndef TERN_SERVER_RELOAD_H
#define TERN_SERVER_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct gen;
struct stats_realms;

/* A generation from a file: NULL with "file:line: what is wrong" in err. */
struct gen *gen_load(const char *path, char *err, size_t err_len);
/* It is going to run: give its realms their metrics ids (main thread). */
void gen_commit(struct gen *g, struct stats_realms *names);
void gen_free(struct gen *g);

/* ok, and what was done (applied, with what could not change live) or why
 * it was refused. msg is valid during the call. */
typedef void (*reload_done_fn)(void *arg, bool ok, const char *msg);

/* Start a reload of srv->conf_path (main thread). done runs once: at once
 * when refused, or when every worker has switched. 0 started, -1 refused. */
int reload_start(struct server *srv, reload_done_fn done, void *arg);

#endif
