/*
 * ternctl - the control tool of tern (ternctl(8)). Two kinds of command:
 *
 * - requests to a running ternd over its control socket (server/control.h):
 *   status, sessions, kill, reload, loglevel, drain, undrain. ternctl only
 *   carries them: the arguments go to ternd as they are, ternd checks them
 *   and answers "ok\n" or "error\n" and a body, which is printed on stdout
 *   or, for an error, as one line on stderr. Keeping the checks on one side
 *   means a ternd and a ternctl of different versions disagree in one place
 *   only, the answer.
 * - offline commands that need no ternd: TURN REST credentials
 *   (ternctl_creds.c) and users and secrets in Redis, written in coturn's
 *   schema so that ternctl and coturn's turnadmin manage the same Redis
 *   (ternctl_redis.c); and a relay test against any TURN server, ternd or
 *   another (ternctl_icetest.c, with the TURN client client/turnc.c).
 *
 * Errors are one line, "ternctl: ...", and exit status 1; a wrong command
 * line exits 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/ternctl.h"
#include "server/control.h"
#include "server/core/json.h"

#ifndef TERN_VERSION
#error "TERN_VERSION comes from server/server.h through the Makefile"
#endif

#define CTL_DEFAULT_SOCKET "/run/tern/ternd.sock"
/* ternd's limit on arguments per request (control_int.h's CONTROL_MAX_ARGS,
 * not for use outside server/); more would be refused as malformed. */
#define CTL_MAX_ARGS 16
/* A reload waits for every worker and may load certificates: generous. */
#define CTL_TIMEOUT_S 30

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ternctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
            "Requests to a running ternd (SOCKET: default " CTL_DEFAULT_SOCKET "):\n"
            "  status                            version, uptime, allocations, ports, Redis\n"
            "  sessions [--user U] [--realm R]   one line per allocation\n"
            "  kill ID | kill --user U           end allocations and their connections\n"
            "  reload                            re-read the configuration file\n"
            "  loglevel error|warn|info|debug\n"
            "  drain [--deadline SECONDS]        refuse new allocations, exit when empty\n"
            "  undrain                           take new allocations again\n"
            "Offline commands:\n"
            "  credentials --secret S [--ttl SECONDS] [--name N] [--url URL]...\n"
            "  user add --redis URL --realm R --user U --password P [--sha256]\n"
            "  user delete --redis URL --realm R --user U\n"
            "  user list --redis URL --realm R\n"
            "  secret add|delete --redis URL --realm R --secret S\n"
            "  secret list --redis URL --realm R\n"
            "A relay test against any TURN server:\n"
            "  icetest turn:HOST[:PORT][?transport=udp|tcp] [--secret S | --user U --password P]\n"
            "          [--duration S] [--rate PPS] [--size BYTES] [--max-loss PERCENT]\n"
            "--json anywhere prints one JSON document; -h, --help; --version.\n"
            "Exit status: 0 done, 1 refused or failed, 2 bad usage. See ternctl(8).\n");
}

static void vsay(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("ternctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

_Noreturn void ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    exit(CTL_EXIT_FAIL);
}

_Noreturn void ctl_usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    exit(CTL_EXIT_USAGE);
}

/* --- options of the offline commands -------------------------------------- */

/* The spec of name in want: 0 unknown, 1 flag, 2 value, 3 repeatable value
 * ("--url+"). */
static int opt_kind(const char *const *want, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; want[i]; i++) {
        if (strncmp(want[i], name, n) != 0)
            continue;
        const char *tail = want[i] + n;
        if (!*tail)
            return 1;
        if (!strcmp(tail, "="))
            return 2;
        if (!strcmp(tail, "+"))
            return 3;
    }
    return 0;
}

void ctl_opts_parse(struct ctl_opts *o, const char *cmd, const char *const *want, int argc,
                    char **argv, int from)
{
    memset(o, 0, sizeof *o);
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            continue; /* main's */
        int kind = a[0] == '-' ? opt_kind(want, a) : 0;
        if (!kind)
            ctl_usage_fail("%s: unexpected '%s' (see ternctl --help)", cmd, a);
        if (kind != 3 && ctl_opt(o, a))
            ctl_usage_fail("%s: %s given twice", cmd, a);
        if (o->n == CTL_MAX_OPTS)
            ctl_usage_fail("%s: too many options", cmd);
        const char *v = "";
        if (kind >= 2) {
            if (i + 1 >= argc)
                ctl_usage_fail("%s: %s needs a value", cmd, a);
            v = argv[++i];
        }
        o->name[o->n] = a;
        o->value[o->n++] = v;
    }
}

const char *ctl_opt(const struct ctl_opts *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->name[i], name))
            return o->value[i];
    return NULL;
}

const char *ctl_opt_need(const struct ctl_opts *o, const char *cmd, const char *name)
{
    const char *v = ctl_opt(o, name);
    if (!v || !*v)
        ctl_usage_fail("%s: %s is required (see ternctl --help)", cmd, name);
    return v;
}

const char *ctl_opt_secret(const char *value, const char *name)
{
    /* kept here, not in the caller's frame: it lives until exit */
    static char *line;
    if (!value || strcmp(value, "-") != 0)
        return value;
    if (line)
        ctl_usage_fail("%s -: standard input is already taken by another option", name);
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0)
        ctl_usage_fail("%s -: nothing on standard input", name);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    if (n == 0)
        ctl_usage_fail("%s -: an empty line on standard input", name);
    return line;
}

void ctl_json_string(FILE *f, const char *s)
{
    size_t len = strlen(s), cap = 6 * len + 3; /* at worst every byte becomes a six-character \u escape */
    char *q = malloc(cap);
    if (!q)
        ctl_fail("out of memory");
    json_quote(s, len, q, cap);
    fputs(q, f);
    free(q);
}

/* --- the control socket ----------------------------------------------------- */

static const char *connect_hint(int err)
{
    switch (err) {
    case ENOENT:
        return " (is ternd running with control.path set to it? see -s)";
    case ECONNREFUSED:
        return " (a socket file with no ternd behind it)";
    case EACCES:
    case EPERM:
        return " (the socket's mode, control.mode, lets only its owner in)";
    default:
        return "";
    }
}

static int control_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path)
        ctl_fail("cannot reach ternd at %s: the path is too long for a Unix socket", path);
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        ctl_fail("cannot reach ternd at %s: %s", path, strerror(errno));
    struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int err = errno;
        ctl_fail("cannot reach ternd at %s: %s%s", path, strerror(err), connect_hint(err));
    }
    return fd;
}

/* The request: each argument ended by a NUL, then an empty one. */
static size_t control_encode(char *buf, size_t cap, char **args, int n, bool add_json)
{
    size_t len = 0;
    int count = 0;
    for (int i = 0; i < n + (add_json ? 1 : 0); i++) {
        const char *a = i < n ? args[i] : "--json";
        size_t al = strlen(a);
        if (al == 0)
            ctl_usage_fail("%s: an argument may not be empty", args[0]);
        if (len + al + 2 > cap)
            ctl_usage_fail("%s: the request is longer than ternd takes (%zu bytes)", args[0], cap);
        if (strcmp(a, "--json") != 0 && ++count > CTL_MAX_ARGS)
            ctl_usage_fail("%s: more than %d arguments", args[0], CTL_MAX_ARGS);
        memcpy(buf + len, a, al + 1);
        len += al + 1;
    }
    buf[len++] = 0;
    return len;
}

/* The message of a JSON error body {"error": "..."}, in place; NULL if the
 * body is not of that form. */
static char *json_error_message(char *body)
{
    char *p = strstr(body, "\"error\"");
    if (!p || !(p = strchr(p + 7, '"')))
        return NULL;
    char *out = ++p, *o = p;
    for (; *p && *p != '"'; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        char c = *++p;
        if (c == 'u' && strlen(p) >= 5) {
            char hex[5] = { p[1], p[2], p[3], p[4], 0 };
            unsigned long v = strtoul(hex, NULL, 16);
            *o++ = v >= 0x20 && v < 0x7f ? (char)v : '?'; /* one line of ASCII suffices */
            p += 4;
        } else if (c == 'n' || c == 't' || c == 'r' || c == 'b' || c == 'f') {
            *o++ = ' ';
        } else if (c) {
            *o++ = c;
        } else {
            break;
        }
    }
    *o = 0;
    return out;
}

/* The error body as the one line of ternctl's error: the first line, with
 * nothing in it that could start another on a terminal. */
static const char *error_line(char *body, bool json)
{
    char *msg = json ? json_error_message(body) : NULL;
    if (!msg)
        msg = body;
    msg[strcspn(msg, "\n")] = 0;
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return *msg ? msg : "ternd refused the request without saying why";
}

static int control_request(const char *path, char **args, int n, bool json, bool add_json)
{
    char req[CONTROL_MAX_REQUEST];
    size_t len = control_encode(req, sizeof req, args, n, add_json);
    int fd = control_connect(path);
    /* No shutdown(SHUT_WR) after the request: ternd ends a connection on
     * its end-of-file, and with it the answer of a request still at the
     * workers (sessions, kill, reload). */
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            ctl_fail("cannot send to ternd at %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    size_t cap = 65536, got = 0;
    char *ans = malloc(cap);
    if (!ans)
        ctl_fail("out of memory");
    for (;;) {
        if (got + 1 == cap) {
            char *bigger = realloc(ans, cap *= 2);
            if (!bigger)
                ctl_fail("out of memory");
            ans = bigger;
        }
        ssize_t r = recv(fd, ans + got, cap - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            ctl_fail("no answer from ternd at %s within %d s", path, CTL_TIMEOUT_S);
        if (r < 0)
            ctl_fail("cannot read from ternd at %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    ans[got] = 0;
    if (got == 0)
        ctl_fail("ternd at %s closed the connection without an answer", path);
    if (!strncmp(ans, "ok\n", 3)) {
        if (fwrite(ans + 3, 1, got - 3, stdout) != got - 3 || fflush(stdout) != 0)
            ctl_fail("cannot write the answer: %s", strerror(errno));
        free(ans);
        return CTL_EXIT_OK;
    }
    if (!strncmp(ans, "error\n", 6))
        ctl_fail("%s", error_line(ans + 6, json));
    ctl_fail("ternd at %s answered something that is not ok or error", path);
}

/* The requests ternd knows, with how many arguments each takes at most
 * (--json aside): more is a usage error here, the rest is ternd's to judge. */
static const struct {
    const char *name;
    int max_args;
} control_cmds[] = {
    { "status", 0 }, { "sessions", 4 }, { "kill", 2 },    { "reload", 0 },
    { "loglevel", 1 }, { "drain", 2 },  { "undrain", 0 },
};

static int control_cmd_max_args(const char *name)
{
    for (size_t i = 0; i < sizeof control_cmds / sizeof control_cmds[0]; i++)
        if (!strcmp(control_cmds[i].name, name))
            return control_cmds[i].max_args;
    return -1;
}

int main(int argc, char **argv)
{
    const char *path = CTL_DEFAULT_SOCKET;
    bool json = false, json_first = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return CTL_EXIT_OK;
        } else if (!strcmp(a, "--version")) {
            printf("ternctl %s\n", TERN_VERSION);
            return CTL_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = json_first = true;
        } else {
            ctl_usage_fail("unknown option '%s' (see ternctl --help)", a);
        }
    }
    if (i == argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    char **args = argv + i;
    int n = argc - i, extra = 0;
    for (int k = 1; k < n; k++) {
        if (!strcmp(args[k], "--json"))
            json = true;
        else
            extra++;
    }
    const char *cmd = args[0];
    int max = control_cmd_max_args(cmd);
    if (max >= 0) {
        if (extra > max)
            ctl_usage_fail("%s: too many arguments (see ternctl --help)", cmd);
        return control_request(path, args, n, json, json_first);
    }
    if (!strcmp(cmd, "credentials"))
        return ctl_credentials(n, args, json);
    if (!strcmp(cmd, "user"))
        return ctl_redis_user(n, args, json);
    if (!strcmp(cmd, "secret"))
        return ctl_redis_secret(n, args, json);
    if (!strcmp(cmd, "icetest"))
        return ctl_icetest(n, args, json);
    fprintf(stderr, "ternctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
