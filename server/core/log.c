/*
 * log.c - see log.h. The file descriptor is swapped atomically on reopen so a
 * worker writing concurrently writes to either the old or the new file, never
 * to a closed descriptor number that has been reused.
 */
#include "server/core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = 2;
static atomic_int log_level = LOG_LVL_INFO;
static atomic_bool log_syslog;
static char log_path[4096];

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int log_open(int level, const char *file, bool use_syslog)
{
    log_level = level;
    log_syslog = use_syslog;
    if (use_syslog)
        openlog("ternd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    if (file && *file) {
        int fd = open_file(file);
        if (fd < 0)
            return -1;
        snprintf(log_path, sizeof log_path, "%s", file);
        atomic_store(&log_fd, fd);
    }
    return 0;
}

int log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open_file(log_path);
    if (fd < 0)
        return -1;
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_set_file(const char *file, bool use_syslog)
{
    if (use_syslog && !atomic_load(&log_syslog))
        openlog("ternd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    atomic_store(&log_syslog, use_syslog);
    if (!file || !*file) {
        log_path[0] = 0;
        int old = atomic_exchange(&log_fd, 2);
        if (old > 2)
            close(old);
        return 0;
    }
    if (strcmp(file, log_path) == 0)
        return 0;
    int fd = open_file(file);
    if (fd < 0)
        return -1;
    snprintf(log_path, sizeof log_path, "%s", file);
    int old = atomic_exchange(&log_fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

void log_close(void)
{
    int old = atomic_exchange(&log_fd, 2);
    if (old > 2)
        close(old);
    if (log_syslog)
        closelog();
}

bool log_enabled(int level)
{
    return level <= log_level;
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    if (log_syslog) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        vsyslog(prio[level], fmt, ap);
        va_end(ap);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m
                                                                      : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, len);
    (void)w;
}
