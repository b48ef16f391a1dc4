/*
 * famine.h - the process running out of descriptors (EMFILE, ENFILE).
 *
 * The process keeps one spare descriptor. A listener that cannot accept
 * lets it go, accepts a waiting connection into the slot it freed, resets
 * that connection at once and takes the spare back (transport/accept.c).
 * While the famine lasts, every other place on the workers that makes a
 * descriptor (relay sockets) does so under the same lock, so that nothing
 * takes the slot the spare frees in that instant; outside a famine they
 * pay one relaxed load.
 */
#ifndef TERN_SERVER_CORE_FAMINE_H
#define TERN_SERVER_CORE_FAMINE_H

#include <stdbool.h>

/* The famine is on (a listener saw EMFILE/ENFILE) or over (an accept
 * without the spare worked). */
void famine_set(bool on);
bool famine_active(void);
/* The lock of the spare and of descriptor making during a famine. */
void famine_lock(void);
void famine_unlock(void);
/* Under the lock: hold the spare (0, or -1 when no slot is free), and let
 * it go (its slot is free until famine_spare_take). */
int famine_spare_take(void);
void famine_spare_drop(void);
/* Under the lock, the spare dropped: fd (any descriptor we own) becomes the
 * spare, so that its slot never falls free. */
void famine_spare_adopt(int fd);
/* socket(2) that waits for the lock during a famine. */
int famine_socket(int domain, int type, int protocol);

#endif
