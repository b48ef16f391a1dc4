/*
 * log.h - one place where ternd writes what it decided: stderr, a file or
 * syslog, filtered by level, as text or as JSON lines (log.format). Thread-
 * safe: each line is formatted into a local buffer and written with one
 * write(2), so lines from workers never interleave. The log state is
 * process-wide (set at start and by reloads; the file reopened on SIGHUP).
 *
 * JSON lines have stable fields: time, level, event, and msg for a plain
 * message or the event's own fields (log_event), so that log shippers need
 * no regular expression. In text, an event is its name and key=value pairs
 * (values with spaces or quotes are written as JSON strings).
 */
#ifndef TERN_SERVER_CORE_LOG_H
#define TERN_SERVER_CORE_LOG_H

#include <stdbool.h>
#include <string.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* file "" or NULL: stderr. Returns 0, or -1 if the file cannot be opened. */
int log_open(int level, const char *file, bool use_syslog);
/* Text (false) or JSON lines (true). */
void log_set_json(bool json);
/* Reopen the log file (after rotation). Returns 0 or -1. */
int log_reopen(void);
/* A new configuration (reload; main thread): the level, and the file or
 * syslog. A file that cannot be opened keeps the current one: -1. */
void log_set_level(int level);
int log_set_file(const char *file, bool use_syslog);
void log_close(void);
bool log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One field of an event: a string (s, len) or a number. */
struct log_kv {
    const char *key;
    const char *s; /* NULL: the number n */
    size_t len;
    unsigned long long n;
};

#define LOG_STR(k, v) ((struct log_kv){ .key = (k), .s = (v), .len = strlen(v) })
#define LOG_STRN(k, v, l) ((struct log_kv){ .key = (k), .s = (v), .len = (l) })
#define LOG_NUM(k, v) ((struct log_kv){ .key = (k), .n = (unsigned long long)(v) })

/* A structured line: event (session_start, session_end, ...) and fields. */
void log_event(int level, const char *event, const struct log_kv *kv, size_t n);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
