/*
 * reserve.h - EVEN-PORT R-bit reservations (RFC 8656 section 14.6): the
 * relay port after an even one, held for 30 s under a RESERVATION-TOKEN. The
 * Allocate that claims it may arrive on any worker, so the table is
 * process-wide behind a mutex (control path only).
 */
#ifndef TERN_SERVER_RELAY_RESERVE_H
#define TERN_SERVER_RELAY_RESERVE_H

#include <stdint.h>
#include <sys/socket.h>

#define RESERVE_LIFETIME 30
#define RESERVE_MAX 1024

struct reserve;

struct reserve *reserve_new(void);
void reserve_free(struct reserve *r);
/* Hold fd (bound to addr) and write its token. 0, or -1 if full (fd closed). */
int reserve_put(struct reserve *r, int fd, const struct sockaddr *addr, uint8_t token[8]);
/* Close the sockets of expired reservations, so their ports are free again
 * (once a second, from the main thread); returns how many are held still. */
unsigned reserve_reap(struct reserve *r);
/* Claim a token: the socket and its address, or -1 if unknown or expired. */
int reserve_take(struct reserve *r, const uint8_t token[8], struct sockaddr_storage *addr);

#endif
