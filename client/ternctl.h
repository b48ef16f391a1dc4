/*
 * ternctl.h - what the files of ternctl(8) share: its exit statuses, its
 * one-line errors, option values and JSON strings. ternctl.c holds main and
 * the control socket client, ternctl_creds.c the TURN REST credentials,
 * ternctl_redis.c the users and secrets in coturn's Redis schema,
 * ternctl_icetest.c the relay test.
 */
#ifndef TERN_CLIENT_TERNCTL_H
#define TERN_CLIENT_TERNCTL_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Exit statuses (ternctl.8, EXIT STATUS). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1  /* ternd, Redis or the system said no */
#define CTL_EXIT_USAGE 2 /* the command line is wrong */

/* "ternctl: <message>" on stderr, then exit with CTL_EXIT_FAIL. */
_Noreturn void ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "ternctl: <message>" on stderr, then exit with CTL_EXIT_USAGE. */
_Noreturn void ctl_usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The options of an offline command, "--name value" pairs and flags, taken
 * in any order from argv[from..argc). `want` names the ones the command
 * knows ("--secret=", "--ttl=", "--sha256": a trailing '=' takes a value);
 * anything else is a usage error naming cmd. Values are pointers into argv.
 */
#define CTL_MAX_OPTS 12
struct ctl_opts {
    const char *name[CTL_MAX_OPTS];
    const char *value[CTL_MAX_OPTS]; /* NULL: not given; "" for a given flag */
    int n;
};
void ctl_opts_parse(struct ctl_opts *o, const char *cmd, const char *const *want, int argc,
                    char **argv, int from);
/* The value of an option, or NULL. */
const char *ctl_opt(const struct ctl_opts *o, const char *name);
/* The value of an option that must be there (else a usage error). */
const char *ctl_opt_need(const struct ctl_opts *o, const char *cmd, const char *name);
/* A secret-bearing value: "-" reads one line from standard input instead,
 * so that the secret need not appear in the process list. The result lives
 * until exit. */
const char *ctl_opt_secret(const char *value, const char *name);

/* s as a JSON string, quoted and escaped (server/core/json.h). */
void ctl_json_string(FILE *f, const char *s);

/* A TURN REST username, "<expiry>" or "<expiry>:<name>" (name may be NULL),
 * valid for ttl seconds, and its password made with secret
 * (ternctl_creds.c). Returns the expiry; a name too long is a usage error. */
#define CTL_REST_USER_MAX (513 + 32)
#define CTL_REST_PASSWORD_MAX 64
time_t ctl_creds_make(const char *secret, unsigned long ttl, const char *name,
                      char user[CTL_REST_USER_MAX], char pw[CTL_REST_PASSWORD_MAX]);

/* The offline commands; argv[0] is the command's name. Return an exit
 * status (or exit by themselves through ctl_fail). */
int ctl_credentials(int argc, char **argv, bool json);
int ctl_redis_user(int argc, char **argv, bool json);
int ctl_redis_secret(int argc, char **argv, bool json);
/* `ternctl icetest`: a relay test against a TURN server (ternctl_icetest.c). */
int ctl_icetest(int argc, char **argv, bool json);

#endif
