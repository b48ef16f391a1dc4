/*
 * accept.h - a listener that runs out of descriptors (EMFILE, ENFILE) must
 * neither spin nor leave clients hanging. The connection the kernel
 * completed stays in the backlog and keeps the listening socket readable,
 * so an event loop that only retries accept() burns a core.
 *
 * The process keeps one spare descriptor for that moment. A starved
 * listener stops libevent's own accepting and accepts by itself, under a
 * process-wide mutex, so that the workers' listeners (each worker has its
 * own SO_REUSEPORT socket, all starving together) never take the slot the
 * spare frees from one another: the spare is let go, a waiting connection
 * accepted into its slot and reset at once (the client sees the refusal),
 * and its descriptor, now unconnected, kept as the spare, so that the slot
 * is never free when the client, woken by the reset, comes again. A
 * listener not yet starved still accepts on its own and can win the slot
 * in the instant between letting the spare go and accepting: it serves that
 * connection, and this listener, its spare lost, rests 100 ms at a time
 * until a slot is free again. The first accept that succeeds without the
 * spare ends the famine and hands its connection to the listener's own
 * callback. Logged once when the
 * famine starts and once when it ends.
 */
#ifndef TERN_SERVER_TRANSPORT_ACCEPT_H
#define TERN_SERVER_TRANSPORT_ACCEPT_H

#include <event2/listener.h>
#include <stdbool.h>

struct event_base;
struct event;

/* Embedded in its listener's owner; l, arg and name are borrowed. */
struct accept_guard {
    struct evconnlistener *l;
    evconnlistener_cb on_accept; /* a connection accepted while starved; NULL: close it */
    void *arg;
    struct event *shed_ev;       /* our own read event on the listener while starved */
    struct event *rest;          /* re-arms shed_ev */
    bool starved;
    unsigned shed;               /* connections reset at once since starved */
    const char *name;            /* "tcp 1.2.3.4:3478", for the log */
};

/* 0, or -1 on out-of-memory (the listener still works, unguarded). */
int accept_guard_init(struct accept_guard *g, struct event_base *base, struct evconnlistener *l,
                      evconnlistener_cb on_accept, void *arg, const char *name);
void accept_guard_free(struct accept_guard *g);
/* From the listener's error callback: true when the error was descriptor
 * exhaustion and is handled. */
bool accept_guard_on_error(struct accept_guard *g, int err);

#endif
