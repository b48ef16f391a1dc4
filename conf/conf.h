/*
 * conf.h - the ternd configuration: one typed, validated struct loaded from a
 * libconfig file. Every key has a default (conf_init_defaults), a range, and a
 * one-line description in conf/ternd.conf. Unknown keys, wrong types and
 * impossible values are rejected with "file:line: what is wrong".
 */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONF_MAX_LISTEN 32
#define CONF_MAX_RELAY_IPS 16
#define CONF_MAX_SECRETS 16
#define CONF_MAX_CIDRS 64
#define CONF_STR 256
#define CONF_ERR_LEN 512
#define CONF_MAX_REALM 52 /* longer: a challenge would break the amplification bound */
#define CONF_MAX_REALMS 31 /* realms[] entries; with the default realm, 32 */
#define CONF_MAX_NAMES 16  /* hosts and origins of one realm */

enum conf_proto { CONF_UDP = 0, CONF_TCP = 1, CONF_TLS = 2, CONF_DTLS = 3 };

enum conf_log_level { CONF_LOG_ERROR = 0, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };
enum conf_log_format { CONF_LOG_TEXT = 0, CONF_LOG_JSON };

enum conf_offload { CONF_OFFLOAD_AUTO, CONF_OFFLOAD_TC, CONF_OFFLOAD_OFF };
#define CONF_MAX_OFFLOAD_IFS 16
#define CONF_IFNAME 16 /* IFNAMSIZ */

struct conf_listen {
    enum conf_proto proto;
    struct sockaddr_storage addr; /* ip + port */
    char realm[CONF_MAX_REALM + 1]; /* every request here is in this realm; "" none */
    bool proxy_protocol; /* tcp, tls: a PROXY header (v1 or v2) names the client */
};

/* A static user: password (plain) or a precomputed key (hex in the file). */
struct conf_user {
    char user[CONF_STR];
    char password[CONF_STR]; /* "" when key is given */
    uint8_t key[32];
    size_t key_len; /* 0: none; 16: MD5 key; 32: SHA-256 key */
};

struct conf_cidr {
    struct sockaddr_storage addr; /* network address, port 0 */
    unsigned prefix;              /* 0-32 or 0-128 */
};

/*
 * One entry of realms[]: a tenant with its own host names, origins,
 * credentials, limits and certificate. What it leaves out it inherits from
 * the top level (the default realm): has_* and the empty strings say so,
 * and conf_realm_get resolves it. Owns users (heap, n_users) when
 * has_users.
 */
struct conf_realm {
    char name[CONF_MAX_REALM + 1];
    char hosts[CONF_MAX_NAMES][CONF_STR]; /* TLS SNI host names, lower case */
    size_t n_hosts;
    char origins[CONF_MAX_NAMES][CONF_STR]; /* STUN ORIGIN values, canonical */
    size_t n_origins;
    bool has_users, has_secrets, has_user_quota, has_total_quota, has_max_bps;
    struct conf_user *users;
    size_t n_users;
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    unsigned user_quota, total_quota;
    uint64_t max_bps;
    char tls_cert[PATH_MAX]; /* "" inherits tls.cert and tls.key */
    char tls_key[PATH_MAX];
};

/* An RFC 7635 AS-RS key (oauth.keys), in coturn's representation. */
struct conf_oauth_key {
    char kid[128];
    char key[CONF_STR];  /* base64 input keying material */
    char alg[16];        /* "A256GCM" or "A128GCM" */
    uint64_t timestamp;  /* unix seconds the key was issued */
    unsigned lifetime;   /* seconds it lives from then; 0: no limit */
    char realm[CONF_MAX_REALM + 1]; /* sessions with this kid land there; "" none */
};

/* A realm as it applies, inheritance resolved; pointers into the conf. */
struct conf_realm_view {
    const char *name;
    const char (*hosts)[CONF_STR];
    size_t n_hosts;
    const char (*origins)[CONF_STR];
    size_t n_origins;
    const struct conf_user *users;
    size_t n_users;
    const char (*secrets)[CONF_STR];
    size_t n_secrets;
    unsigned user_quota, total_quota;
    uint64_t max_bps;
    const char *tls_cert, *tls_key; /* "" when no certificate at all */
    bool own_tls;                   /* a certificate of its own (chosen by SNI) */
};

/*
 * The whole configuration. Owns users (heap array of n_users), realms
 * (n_realms) and oauth_keys (n_oauth_keys), freed by conf_free; everything
 * else is inline.
 */
struct conf {
    char realm[CONF_STR];
    char software[CONF_STR]; /* "" means no SOFTWARE attribute */
    int workers;             /* 0: one per core */

    struct conf_listen listen[CONF_MAX_LISTEN];
    size_t n_listen;

    bool has_alternate; /* RFC 5780 second address */
    struct sockaddr_storage alternate;

    struct sockaddr_storage relay_ip[CONF_MAX_RELAY_IPS];
    size_t n_relay_ip;
    struct sockaddr_storage external_ip[CONF_MAX_RELAY_IPS];
    size_t n_external_ip;
    unsigned relay_min_port, relay_max_port;
    /* relay.offload (issue 14): channels relayed by a tc program in the
     * kernel; interfaces by name, none: those holding the addresses. */
    enum conf_offload offload;
    char offload_ifs[CONF_MAX_OFFLOAD_IFS][CONF_IFNAME];
    size_t n_offload_ifs;

    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    int tls_min_version;           /* TLS1_2_VERSION or TLS1_3_VERSION (DTLS stays 1.2) */
    char tls_ciphers[512];         /* TLS 1.2 and DTLS cipher list; "": OpenSSL's default */
    char tls_ciphersuites[256];    /* TLS 1.3 suites; "": OpenSSL's default */
    unsigned tls_ticket_rotation;  /* seconds between session ticket keys */

    struct conf_realm *realms; /* heap, n_realms; the default realm is not among them */
    size_t n_realms;

    /* RFC 7635 third-party authorization: on when oauth is set. */
    bool has_oauth;
    char oauth_server_name[CONF_STR]; /* THIRD-PARTY-AUTHORIZATION; "": the realm's name */
    struct conf_oauth_key *oauth_keys; /* heap, n_oauth_keys */
    size_t n_oauth_keys;

    struct conf_user *users;
    size_t n_users;
    char secrets[CONF_MAX_SECRETS][CONF_STR];
    size_t n_secrets;
    char redis[CONF_STR]; /* "" means no Redis */

    bool peers_allow_loopback;
    /* RFC 8016: Allocates over UDP may ask for a MOBILITY-TICKET and move
     * to a new client address with it. */
    bool mobility;
    struct conf_cidr peers_allow[CONF_MAX_CIDRS];
    size_t n_peers_allow;
    struct conf_cidr peers_deny[CONF_MAX_CIDRS];
    size_t n_peers_deny;

    unsigned user_quota, total_quota; /* 0: unlimited */
    uint64_t max_bps;                 /* 0: unlimited */
    unsigned max_lifetime;            /* seconds */
    unsigned max_connections;         /* TCP+TLS connections, and DTLS sessions, per worker */
    unsigned idle_timeout;            /* seconds, idle stream connections */
    unsigned handshake_timeout;       /* seconds, TLS/DTLS handshakes */
    unsigned unauth_rate;             /* unauthenticated TURN requests/s per source IP; 0: off */
    unsigned unauth_global_rate;      /* unauthenticated TURN answers/s per node; 0: off */
    uint64_t unauth_global_bps;       /* and their bytes/s per node; 0: off */
    unsigned time_scale;              /* TURN timers run this many times faster (tests only) */
    unsigned nonce_lifetime;          /* seconds before a nonce is stale (438) */
    unsigned cache_ttl;               /* seconds Redis answers are cached per worker */

    /* RFC 8489 section 10 load spreading: above alternate_threshold
     * allocations on this node, Allocate gets 300 with the next of these. */
    struct sockaddr_storage alternate_servers[CONF_MAX_RELAY_IPS];
    size_t n_alternate_servers;
    unsigned alternate_threshold; /* 0: never */
    char alternate_domain[CONF_STR]; /* ALTERNATE-DOMAIN for TLS clients; "" none */

    /* The HTTP listener (http = { ... }, or its older name metrics = { ip;
     * port; }): /metrics and /health, and the web console when
     * http_admin_token is set (server/console.h). */
    bool has_metrics;
    struct sockaddr_storage metrics;
    char http_admin_token[CONF_STR];    /* "": no console (its routes are 404) */
    char http_icetest_secret[CONF_STR]; /* "": the default realm's first REST secret;
                                         * else also among secrets[] (ternd accepts
                                         * what /api/icetest mints) */

    /* The control socket (ternctl): a Unix socket, off unless set. */
    bool has_control;
    char control_path[PATH_MAX];
    unsigned control_mode; /* permission bits, 0600 by default */

    /* Privileges: after binding, run as this user and group ("" stays). */
    char run_user[CONF_STR];
    char run_group[CONF_STR];

    enum conf_log_level log_level;
    enum conf_log_format log_format;
    char log_file[PATH_MAX]; /* "" means stderr */
    bool log_syslog;
};

/* Fill every field with its default (the values documented in ternd.conf). */
void conf_init_defaults(struct conf *c);

/* Load and validate a file (conf_init_defaults first). On failure returns -1
 * and writes "file:line: what is wrong" into err. */
int conf_load_file(struct conf *c, const char *path, char *err, size_t err_len);

/* Same, from a string; name is used in error messages in place of a path. */
int conf_load_string(struct conf *c, const char *text, const char *name, char *err,
                     size_t err_len);

void conf_free(struct conf *c);

const char *conf_proto_name(enum conf_proto p);

/* Parse "1.2.3.4" / "::1" (no port) into ss with the given port. 0 or -1. */
int conf_parse_ip(const char *s, unsigned port, struct sockaddr_storage *ss);

/* Realms: 0 is the default realm (the top-level realm, auth.users,
 * auth.secrets, limits and tls), 1..n_realms the entries of realms[]. */
size_t conf_realm_count(const struct conf *c);
void conf_realm_get(const struct conf *c, size_t i, struct conf_realm_view *out);
/* The index of the realm named name, or -1. */
int conf_realm_find(const struct conf *c, const char *name, size_t len);
/* The realm whose hosts include host (case-insensitive; SNI), or -1. */
int conf_realm_by_host(const struct conf *c, const char *host);
/* The realm whose origins include origin (canonical, see below), or -1. */
int conf_realm_by_origin(const struct conf *c, const char *origin, size_t len);
/* An origin as coturn stores and compares it: "scheme://host:port", scheme
 * and host in lower case, the scheme's default port added when absent;
 * anything that does not parse as such a URI stays as it is. Writes a
 * NUL-terminated string; its length, or -1 when it does not fit. */
int conf_origin_canonical(const char *in, size_t len, char *out, size_t cap);

/* Added with conf_net.c (nothing above changed): */

/* Parse "10.0.0.0/8", "fe80::/10" or a bare IP (/32 or /128). Host bits are
 * cleared, so out->addr is the network address. 0 or -1. */
int conf_parse_cidr(const char *s, struct conf_cidr *out);

/* Does sa's address fall inside c? An IPv4 rule also matches the same
 * address seen as IPv4-mapped IPv6 (::ffff:a.b.c.d). Ports are ignored. */
bool conf_cidr_match(const struct conf_cidr *c, const struct sockaddr *sa);

/* Decode a user key given as 32 or 64 hex digits into key (16 or 32 bytes)
 * and set *key_len. 0 or -1 (nothing written on failure). */
int conf_parse_hex_key(const char *hex, uint8_t key[32], size_t *key_len);

#endif
