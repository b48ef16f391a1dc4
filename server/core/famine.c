/*
 * famine.c - see famine.h.
 */
#include "server/core/famine.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_mutex_t famine_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool famine_on;
static int spare_fd = -1; /* under famine_mutex */

void famine_set(bool on)
{
    atomic_store_explicit(&famine_on, on, memory_order_relaxed);
}

bool famine_active(void)
{
    return atomic_load_explicit(&famine_on, memory_order_relaxed);
}

void famine_lock(void)
{
    pthread_mutex_lock(&famine_mutex);
}

void famine_unlock(void)
{
    pthread_mutex_unlock(&famine_mutex);
}

int famine_spare_take(void)
{
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return spare_fd >= 0 ? 0 : -1;
}

void famine_spare_drop(void)
{
    if (spare_fd >= 0)
        close(spare_fd);
    spare_fd = -1;
}

void famine_spare_adopt(int fd)
{
    if (spare_fd >= 0)
        close(spare_fd);
    spare_fd = fd;
}

int famine_socket(int domain, int type, int protocol)
{
    if (!famine_active())
        return socket(domain, type, protocol);
    famine_lock();
    int fd = socket(domain, type, protocol);
    famine_unlock();
    return fd;
}
