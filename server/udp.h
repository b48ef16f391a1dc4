/*
 * udp.h - plain UDP listeners: datagrams drained with recvmmsg, answers
 * batched with sendmmsg.
 */
#ifndef TERN_SERVER_UDP_H
#define TERN_SERVER_UDP_H

#include <stddef.h>
#include <sys/socket.h>

struct worker;
struct udp_sock;

/*
 * Open the sockets of one UDP listen address on worker w: one socket, or
 * four when RFC 5780 is on (addrs[0] is the listen address, addrs[1] the
 * alternate port, addrs[2] the alternate IP, addrs[3] both). Returns 0 or
 * -errno with the failing address in failed.
 */
int udp_listen(struct worker *w, const struct sockaddr_storage *addrs, size_t n_addrs,
               struct sockaddr_storage *failed);
void udp_close_all(struct worker *w);

/* Scratch buffers for one worker's batches. */
struct udp_io *udp_io_new(void);
void udp_io_free(struct udp_io *io);

#endif
