/*
 * ternctl_creds.c - `ternctl credentials`: a TURN REST API username and
 * password (draft-uberti-behave-turn-rest-00, what coturn's
 * use-auth-secret and ternd's auth.secrets accept) made from a shared
 * secret, the way an application server hands them to its WebRTC clients,
 * and the RTCIceServer entry that carries them.
 *
 *   username = "<unix expiry>" or "<unix expiry>:<name>"
 *   password = base64(HMAC-SHA1(secret, username))
 *
 * The HMAC and the base64 are auth/'s auth_rest_password (OpenSSL's HMAC
 * and EVP_EncodeBlock), the very function ternd checks them with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "client/ternctl.h"

#define CREDS_DEFAULT_TTL 86400
#define CREDS_MAX_TTL (10u * 365 * 86400) /* beyond, a secret is a password */
#define CREDS_DEFAULT_URL "turn:127.0.0.1:3478"
#define CREDS_MAX_URLS 8

static unsigned long creds_ttl(const char *v)
{
    if (!v)
        return CREDS_DEFAULT_TTL;
    char *end;
    unsigned long ttl = strtoul(v, &end, 10);
    if (!*v || *end || v[0] == '-' || ttl < 1 || ttl > CREDS_MAX_TTL)
        ctl_usage_fail("credentials: --ttl takes seconds, 1 to %u", CREDS_MAX_TTL);
    return ttl;
}

/* RFC 7065's turn: and turns: URIs, as RTCIceServer.urls takes them. */
static const char *creds_url(const char *v)
{
    if (strncmp(v, "turn:", 5) != 0 && strncmp(v, "turns:", 6) != 0)
        ctl_usage_fail("credentials: --url '%s' is not a turn: or turns: URL (RFC 7065)", v);
    if (!v[strcspn(v, ":") + 1])
        ctl_usage_fail("credentials: --url '%s' has no host", v);
    return v;
}

static void creds_print_entry(const char *const *urls, int n_urls, const char *user,
                              const char *pw)
{
    fputs("{\"urls\": [", stdout);
    for (int i = 0; i < n_urls; i++) {
        if (i)
            fputs(", ", stdout);
        ctl_json_string(stdout, urls[i]);
    }
    fputs("], \"username\": ", stdout);
    ctl_json_string(stdout, user);
    fputs(", \"credential\": ", stdout);
    ctl_json_string(stdout, pw);
    fputs("}", stdout);
}

time_t ctl_creds_make(const char *secret, unsigned long ttl, const char *name,
                      char user[CTL_REST_USER_MAX], char pw[CTL_REST_PASSWORD_MAX])
{
    time_t expiry = time(NULL) + (time_t)ttl;
    int len = name ? snprintf(user, CTL_REST_USER_MAX, "%lld:%s", (long long)expiry, name)
                   : snprintf(user, CTL_REST_USER_MAX, "%lld", (long long)expiry);
    /* RFC 8489 section 14.3: a username is less than 513 bytes */
    if (len < 0 || len >= AUTH_MAX_USERNAME)
        ctl_usage_fail("credentials: --name is too long (the username must stay under %d bytes)",
                       AUTH_MAX_USERNAME);
    if (auth_rest_password(secret, user, (size_t)len, pw, CTL_REST_PASSWORD_MAX) < 0)
        ctl_fail("credentials: cannot compute the HMAC (OpenSSL)");
    return expiry;
}

int ctl_credentials(int argc, char **argv, bool json)
{
    static const char *const want[] = { "--secret=", "--ttl=", "--name=", "--url+", NULL };
    struct ctl_opts o;
    ctl_opts_parse(&o, "credentials", want, argc, argv, 1);
    const char *secret = ctl_opt_secret(ctl_opt_need(&o, "credentials", "--secret"), "--secret");
    unsigned long ttl = creds_ttl(ctl_opt(&o, "--ttl"));
    const char *name = ctl_opt(&o, "--name");
    if (name && !*name)
        ctl_usage_fail("credentials: --name may not be empty (leave it out instead)");
    const char *urls[CREDS_MAX_URLS];
    int n_urls = 0;
    for (int i = 0; i < o.n; i++) {
        if (strcmp(o.name[i], "--url") != 0)
            continue;
        if (n_urls == CREDS_MAX_URLS)
            ctl_usage_fail("credentials: at most %d --url", CREDS_MAX_URLS);
        urls[n_urls++] = creds_url(o.value[i]);
    }
    if (n_urls == 0)
        urls[n_urls++] = CREDS_DEFAULT_URL;

    char user[CTL_REST_USER_MAX], pw[CTL_REST_PASSWORD_MAX];
    time_t expiry = ctl_creds_make(secret, ttl, name, user, pw);

    if (json) {
        fputs("{\"username\": ", stdout);
        ctl_json_string(stdout, user);
        fputs(", \"password\": ", stdout);
        ctl_json_string(stdout, pw);
        printf(", \"ttl\": %lu, \"iceServers\": [", ttl);
        creds_print_entry(urls, n_urls, user, pw);
        fputs("]}\n", stdout);
    } else {
        char when[32];
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&expiry, &tm));
        printf("username    %s\npassword    %s\nexpires     %s (ttl %lu s)\niceServers  ", user,
               pw, when, ttl);
        creds_print_entry(urls, n_urls, user, pw);
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0)
        ctl_fail("cannot write the credentials: standard output failed");
    return CTL_EXIT_OK;
}
