/*
 * notify.c - see notify.h.
 */
#include "server/notify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/core/famine.h"

static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static uint64_t watchdog_usec;

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path && (path[0] == '/' || path[0] == '@') && strlen(path) < sizeof notify_addr.sun_path) {
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, path, strlen(path));
        if (path[0] == '@')
            notify_addr.sun_path[0] = 0; /* the abstract namespace */
        notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    }
    /* WATCHDOG_PID, when set, names the process meant: ours or not at all */
    const char *pid = getenv("WATCHDOG_PID");
    const char *usec = getenv("WATCHDOG_USEC");
    if (usec && (!pid || strtol(pid, NULL, 10) == (long)getpid()))
        watchdog_usec = strtoull(usec, NULL, 10);
}

bool notify_enabled(void)
{
    return notify_len > 0;
}

uint64_t notify_watchdog_usec(void)
{
    return notify_len ? watchdog_usec : 0;
}

void notify_send(const char *fmt, ...)
{
    if (!notify_len)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    /* Through the famine lock: this runs every watchdog period, and must
     * not take the slot a starved listener frees for a moment. */
    int fd = famine_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    ssize_t r = sendto(fd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, MSG_NOSIGNAL,
                       (struct sockaddr *)&notify_addr, notify_len);
    (void)r; /* systemd gone: nothing to tell */
    close(fd);
}
