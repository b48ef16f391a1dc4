/*
 * offload.h - established UDP channels relayed by a tc program in the kernel
 * (issue 14): the process's side of it.
 *
 * The process owns one struct offload: the program (offload.bpf.c, compiled
 * into ternd), attached to the ingress of the chosen interfaces by tcx links
 * (kernel 6.6 and later: owned by this process's descriptors, so they go
 * when it dies, even by SIGKILL) or clsact filters (older kernels), its maps,
 * and the counters array mapped into memory. ternd stays the authority: the
 * workers write an entry for every channel they let the kernel relay
 * (relay_offload.c) and read its counters back, and anything the program
 * does not relay reaches the relay and listening sockets as before.
 *
 * Thread use: offload_start/stop on the main thread before the workers
 * start and after they end. The map calls are system calls the kernel
 * serialises, so workers call them without a lock; counter slots are split
 * into one range per worker, so no two threads own a slot.
 *
 * Errors: offload_start returns 0 (started, or off for a reason logged in
 * msg) or -1 (relay.offload = "tc" could not be honoured; msg says why).
 * Map calls return 0 or -errno.
 */
#ifndef TERN_SERVER_RELAY_OFFLOAD_H
#define TERN_SERVER_RELAY_OFFLOAD_H

#include <stdint.h>
#include <sys/socket.h>

#include "server/relay/offload_maps.h"

struct conf;
struct offload;

/* The program's ELF object, compiled into ternd by the Makefile (only
 * ternd links it: tests and fuzzers of relay/ run without the kernel). */
extern const unsigned char offload_obj[];
extern const size_t offload_obj_len;

/* Loads obj (offload_obj) and attaches it as c says. *out is NULL when
 * offload is off. msg is the one "offload: ..." line to log either way. */
int offload_start(const struct conf *c, int n_workers, const void *obj, size_t obj_len,
                  struct offload **out, char *msg, size_t cap);
/* Detaches and closes everything; NULL is fine. */
void offload_stop(struct offload *o);

/* The interface holding addr (its ifindex), or 0 if no interface has it
 * (a wildcard, or an address gone since the start). */
unsigned offload_ifindex_of(const struct offload *o, const struct sockaddr *addr);

/* Both directions of one channel (created or rewritten), or neither. */
int offload_put(struct offload *o, const struct offload_chan_key *ck, const struct offload_fwd *cv,
                const struct offload_peer_key *pk, const struct offload_fwd *pv);
void offload_del(struct offload *o, const struct offload_chan_key *ck,
                 const struct offload_peer_key *pk);

/* counts[slot] as the program has added it up (read from the mapping). */
struct offload_count offload_read(const struct offload *o, uint32_t slot);
/* The counter slots that belong to worker w: [*first, *first + *n). */
void offload_slots_of(const struct offload *o, int w, uint32_t *first, uint32_t *n);

/* For /metrics (one system call): packets the program saw, by reason,
 * summed over the CPUs; 0 on error. */
uint64_t offload_reason_total(const struct offload *o, enum offload_reason r);
unsigned offload_n_interfaces(const struct offload *o);

#endif
