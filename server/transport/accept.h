/*
 * accept.h - a listener that runs out of descriptors (EMFILE, ENFILE) must
 * neither spin nor leave clients hanging. The connection the kernel
 * completed stays in the backlog and keeps the listening socket readable,
 * so an event loop that only retries accept() burns a core. Each guarded
 * listener holds one spare descriptor for that moment: it is let go, the
 * waiting connections are accepted and closed at once (the client sees the
 * refusal), and it is taken again; if even that fails, the listener rests
 * for 100 ms. Logged once when it starts and once when it ends.
 */
#ifndef TERN_SERVER_TRANSPORT_ACCEPT_H
#define TERN_SERVER_TRANSPORT_ACCEPT_H

#include <stdbool.h>

struct event_base;
struct event;
struct evconnlistener;

/* Embedded in its listener's owner; l and name are borrowed. */
struct accept_guard {
    struct evconnlistener *l;
    struct event *rest;  /* re-enables the listener, owned */
    int spare_fd;        /* /dev/null, owned */
    bool starved;        /* out of descriptors since the last accept */
    unsigned shed;       /* connections closed at once since starved */
    const char *name;    /* "tcp 1.2.3.4:3478", for the log */
};

/* 0, or -1 on out-of-memory (the listener still works, unguarded). */
int accept_guard_init(struct accept_guard *g, struct event_base *base,
                      struct evconnlistener *l, const char *name);
void accept_guard_free(struct accept_guard *g);
/* From the listener's error callback: true when the error was descriptor
 * exhaustion and is handled. */
bool accept_guard_on_error(struct accept_guard *g, int err);
/* From the accept callback: descriptors are available again. */
void accept_guard_ok(struct accept_guard *g);

#endif
