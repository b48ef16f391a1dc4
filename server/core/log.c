/*
 * log.c - see log.h. The file descriptor is swapped atomically on reopen so a
 * worker writing concurrently writes to either the old or the new file, never
 * to a closed descriptor number that has been reused.
 */
#include "server/core/log.h"

#include "server/core/json.h"

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

static atomic_bool log_json;

void log_set_json(bool json)
{
    atomic_store(&log_json, json);
}

/* "2026-11-26T05:38:40.846Z" into buf; its length. */
static int log_time(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (int)(ts.tv_nsec / 1000000));
}

/* A line of n bytes (possibly cut) out with one write, newline added. */
static void log_write(char *line, size_t n, size_t cap)
{
    if (n > cap - 2)
        n = cap - 2;
    line[n++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, n);
    (void)w;
}

/* Append s to line at *n: as it is, or as a JSON string when json or when
 * it holds a space, a quote or a control character. */
static void log_put_str(char *line, size_t *n, size_t cap, const char *s, size_t len, bool json)
{
    bool plain = !json && len > 0;
    for (size_t i = 0; plain && i < len; i++)
        plain = (unsigned char)s[i] > ' ' && s[i] != '"' && s[i] != '\\' && s[i] != 0x7f;
    if (*n >= cap)
        return;
    if (plain) {
        size_t k = len < cap - *n ? len : cap - *n;
        memcpy(line + *n, s, k);
        *n += k;
    } else {
        *n += json_quote(s, len, line + *n, cap - *n);
    }
}

static void log_put(char *line, size_t *n, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void log_put(char *line, size_t *n, size_t cap, const char *fmt, ...)
{
    if (*n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (m > 0)
        *n = *n + (size_t)m < cap ? *n + (size_t)m : cap;
}

void log_event(int level, const char *event, const struct log_kv *kv, size_t nkv)
{
    if (level > atomic_load(&log_level))
        return;
    char line[4096], ts[64];
    size_t n = 0;
    bool json = atomic_load(&log_json);
    log_time(ts, sizeof ts);
    if (json)
        log_put(line, &n, sizeof line, "{\"time\": \"%s\", \"level\": \"%s\", \"event\": \"%s\"",
                ts, level_names[level], event);
    else if (!atomic_load(&log_syslog))
        log_put(line, &n, sizeof line, "%s %s %s", ts, level_names[level], event);
    else
        log_put(line, &n, sizeof line, "%s", event);
    for (size_t i = 0; i < nkv; i++) {
        log_put(line, &n, sizeof line, json ? ", \"%s\": " : " %s=", kv[i].key);
        if (kv[i].s)
            log_put_str(line, &n, sizeof line, kv[i].s, kv[i].len, json);
        else
            log_put(line, &n, sizeof line, "%llu", kv[i].n);
    }
    if (json)
        log_put(line, &n, sizeof line, "}");
    if (atomic_load(&log_syslog) && !json) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "%.*s", (int)n, line);
        return;
    }
    log_write(line, n, sizeof line);
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > atomic_load(&log_level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t mlen = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    if (atomic_load(&log_json)) {
        const struct log_kv kv[] = { LOG_STRN("msg", msg, mlen) };
        log_event(level, "log", kv, 1);
        return;
    }
    if (atomic_load(&log_syslog)) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "%s", msg);
        return;
    }
    char line[2200], ts[64];
    size_t n = 0;
    log_time(ts, sizeof ts);
    log_put(line, &n, sizeof line, "%s %s %.*s", ts, level_names[level], (int)mlen, msg);
    log_write(line, n, sizeof line);
}
