/*
 * json.h - writing JSON strings: user names, addresses and log messages are
 * bytes from the network or the configuration, so every one is escaped
 * (quotes, backslashes, control characters, and bytes that are not UTF-8,
 * which JSON cannot carry, as U+FFFD) before it goes into a JSON document
 * (control socket answers, JSON log lines).
 */
#ifndef TERN_SERVER_CORE_JSON_H
#define TERN_SERVER_CORE_JSON_H

#include <stddef.h>

/* "s" as a JSON string, quotes included, into out (NUL-terminated, cut at
 * cap on a character boundary). Returns the length written. */
size_t json_quote(const char *s, size_t len, char *out, size_t cap);

#endif
