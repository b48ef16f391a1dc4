/*
 * log.h - one place where ternd writes what it decided: stderr, a file or
 * syslog, filtered by level. Thread-safe: each line is formatted into a local
 * buffer and written with one write(2), so lines from workers never interleave.
 * The log state is process-wide (set once at start, file reopened on SIGHUP).
 */
#ifndef TERN_SERVER_CORE_LOG_H
#define TERN_SERVER_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* file "" or NULL: stderr. Returns 0, or -1 if the file cannot be opened. */
int log_open(int level, const char *file, bool use_syslog);
/* Reopen the log file (after rotation). Returns 0 or -1. */
int log_reopen(void);
/* A new configuration (reload; main thread): the level, and the file or
 * syslog. A file that cannot be opened keeps the current one: -1. */
void log_set_level(int level);
int log_set_file(const char *file, bool use_syslog);
void log_close(void);
bool log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
