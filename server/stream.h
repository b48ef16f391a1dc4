/*
 * stream.h - TCP and TLS listeners (evconnlistener + bufferevents, TLS with
 * bufferevent_openssl). STUN messages and ChannelData frames share one
 * stream (RFC 8489 section 6.2.2, RFC 8656 section 12.5).
 */
#ifndef TERN_SERVER_STREAM_H
#define TERN_SERVER_STREAM_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;

/* Listen on addr (TCP, or TLS when tls is true) on worker w. 0 or -errno. */
int stream_listen(struct worker *w, const struct sockaddr_storage *addr, bool tls);
void stream_close_all(struct worker *w);

#endif
