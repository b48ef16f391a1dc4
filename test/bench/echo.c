/* ternecho: the kernel's floor for the Binding benchmark.
 *
 * A UDP echo that does no parsing at all: whatever ternd spends per request
 * beyond what this spends is the cost of STUN itself.  It uses the same
 * socket layout a fast server would (one SO_REUSEPORT socket per thread, so
 * the kernel spreads flows across cores without a shared queue) and the same
 * batching (recvmmsg/sendmmsg), so the comparison is against the best the
 * kernel allows, not against a naive recvfrom loop.
 *
 * Usage: ternecho IP PORT [-t threads]   (threads default: online CPUs)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 2048

static struct sockaddr_storage bind_addr;
static socklen_t bind_len;

/* Every thread binds its own socket; with SO_REUSEPORT the kernel hashes each
 * source 4-tuple to one of them, like ternd's per-worker sockets. */
static int echo_socket_open(void)
{
    int one = 1;
    int fd = socket(bind_addr.ss_family, SOCK_DGRAM, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&bind_addr, bind_len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *echo_thread(void *arg)
{
    int fd = (int)(long)arg;
    /* Each thread needs its own buffers; 140 KiB fits the default 8 MiB
     * thread stack, and stack memory is first touched by the thread that
     * uses it, so it lands on that thread's NUMA node. */
    char bufs[BATCH][BUFSZ];
    struct sockaddr_storage names[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];

    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = BUFSZ;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_name = &names[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        /* Send each datagram back where it came from: msg_name still holds
         * the source and iov_len is trimmed to what was received. */
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        for (int done = 0; done < n;) {
            int sent = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
            if (sent <= 0)
                break; /* an error drops the rest of the batch: UDP may lose */
            done += sent;
        }
    }
    return NULL;
}

static int parse_addr(const char *ip, const char *port_s)
{
    char *end;
    long port = strtol(port_s, &end, 10);

    if (*end || port <= 0 || port > 65535)
        return -1;
    memset(&bind_addr, 0, sizeof(bind_addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&bind_addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&bind_addr;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        bind_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        bind_len = sizeof(*v6);
    } else {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long threads = sysconf(_SC_NPROCESSORS_ONLN);

    if (argc == 5 && strcmp(argv[3], "-t") == 0)
        threads = strtol(argv[4], NULL, 10);
    if ((argc != 3 && argc != 5) || threads < 1 || threads > 1024 ||
        parse_addr(argv[1], argv[2]) < 0) {
        fprintf(stderr, "usage: ternecho IP PORT [-t threads]\n");
        return 2;
    }
    /* Bind every socket before starting any thread, so "listening" is only
     * printed once all of them are in the reuseport group. */
    int fds[1024];
    for (long i = 0; i < threads; i++) {
        fds[i] = echo_socket_open();
        if (fds[i] < 0) {
            perror("ternecho: bind");
            return 1;
        }
    }
    for (long i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, echo_thread, (void *)(long)fds[i]) != 0) {
            fprintf(stderr, "ternecho: pthread_create failed\n");
            return 1;
        }
    }
    printf("ternecho: listening on %s:%s threads=%ld\n", argv[1], argv[2], threads);
    fflush(stdout);
    /* SIGTERM/SIGINT keep their default action: nothing needs cleaning up. */
    for (;;)
        pause();
}
