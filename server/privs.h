/*
 * privs.h - running unprivileged: ternd binds its listeners (port 443
 * included) and opens its log as root, then becomes the configured user and
 * group for good. Relay ports (unprivileged), reloads and certificate
 * reloads go on as that user, so the configuration, certificate and key
 * files must be readable by it; a reload that adds a listener on a port
 * below 1024 is refused unless the process has CAP_NET_BIND_SERVICE.
 */
#ifndef TERN_SERVER_PRIVS_H
#define TERN_SERVER_PRIVS_H

struct conf;

/* Become c->run_user / c->run_group (supplementary groups: that group
 * only), and check that root cannot be regained. Without a user: nothing,
 * and a warning when running as root. 0, or -1 with the reason logged. */
int privs_drop(const struct conf *c);

#endif
