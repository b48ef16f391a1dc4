/*
 * console_auth.h - who may use the web console (console.h), as pure
 * functions over strings and a table: the admin token, the login cookie,
 * the rate limit on wrong tokens, the same-origin rule for POST, and the
 * small parsers of the console's paths and form bodies. No sockets and no
 * clock of its own (the caller passes now), so unit tests call them as is.
 *
 * Tokens are never compared as they are: both sides go through HMAC-SHA256
 * under a key drawn at start, and the digests are compared in constant time
 * (CRYPTO_memcmp), so neither the length nor a prefix of the token leaks
 * through timing. The cookie is that digest in hex: not the token, and
 * worthless after a restart (new key) or a change of the token.
 */
#ifndef TERN_SERVER_CONSOLE_AUTH_H
#define TERN_SERVER_CONSOLE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define CONSOLE_COOKIE "tern_admin"
#define CONSOLE_COOKIE_LEN 64     /* hex of an HMAC-SHA256 */
#define CONSOLE_RATE_SLOTS 256    /* sources remembered; the oldest goes first */
#define CONSOLE_RATE_FAILS 5      /* wrong tokens a source may send ... */
#define CONSOLE_RATE_WINDOW_MS 10000 /* ... within this, then 429 for as long */

/* One source of wrong tokens. */
struct console_rate_slot {
    uint8_t ip[16];       /* IPv4 as IPv4-mapped IPv6 */
    bool used;
    unsigned fails;       /* within the window that began at first_ms */
    uint64_t first_ms, last_ms, blocked_until_ms;
};

/* Owned by the console, on the main thread only. */
struct console_auth {
    uint8_t key[32];
    struct console_rate_slot slot[CONSOLE_RATE_SLOTS];
};

/* A fresh key (RAND_bytes) and an empty table. 0, or -1. */
int console_auth_init(struct console_auth *a);

/* Is given (len bytes) the token admin? */
bool console_auth_token_ok(const struct console_auth *a, const char *admin, const char *given,
                           size_t len);
/* The cookie value that stands for admin: CONSOLE_COOKIE_LEN hex digits and a NUL. */
void console_auth_cookie(const struct console_auth *a, const char *admin,
                         char out[CONSOLE_COOKIE_LEN + 1]);
/* Does a Cookie header carry a tern_admin value that stands for admin? */
bool console_auth_cookie_ok(const struct console_auth *a, const char *admin, const char *header);

/* Is this source refused for now? */
bool console_rate_blocked(struct console_auth *a, const struct sockaddr *src, uint64_t now_ms);
/* A wrong token from src; true when it has now used up its tries. */
bool console_rate_fail(struct console_auth *a, const struct sockaddr *src, uint64_t now_ms);

/*
 * May a state-changing request with a cookie run? Browsers send a cookie
 * along with a cross-site POST (SameSite=Strict aside, which old browsers
 * ignore), so the request must also show where it comes from: Sec-Fetch-Site
 * "same-origin" or "none" (typed by the user), or an Origin whose host:port
 * is the Host it was sent to. Neither header, or "null": refused. Any
 * argument may be NULL (header absent).
 */
bool console_same_origin(const char *origin, const char *fetch_site, const char *host);

/* A redirect target after login: a path of this server ("/..."), not
 * "//host" nor "/\host" (which browsers read as another host), no control
 * characters, at most 512 bytes. */
bool console_next_ok(const char *next);

/* key's value in an application/x-www-form-urlencoded body ("a=1&b=%2F"),
 * decoded ('+' is a space) into out. Its length, or -1 when absent, cut by
 * cap or badly escaped. */
int console_form_value(const char *body, size_t len, const char *key, char *out, size_t cap);

/* "/api/sessions/ID/kill" with ID of 1 to 20 digits: 0 and *id, else -1. */
int console_kill_path(const char *path, unsigned long long *id);

/* The host of a Host header ("h:1", "[::1]:2", "h"), without the port and
 * brackets, into out when it is made of host name or address characters.
 * 0, or -1. */
int console_host_name(const char *host, char *out, size_t cap);

#endif
