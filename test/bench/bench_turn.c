/*
 * The benchmark's TURN client engine (see bench_turn.h). Plain blocking-free
 * UDP with epoll; correctness over cleverness, since the server is what is
 * being measured, but cheap enough to drive 100,000 sessions.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "auth/auth.h"
#include "proto/stun.h"
#include "test/bench/bench_turn.h"

#define RTO_NS 500000000u
#define MAX_TRIES 6

static void tid_make(unsigned i, uint32_t seq, uint8_t tid[12])
{
    uint32_t idx = i;
    memcpy(tid, &idx, 4);
    memcpy(tid + 4, &seq, 4);
    memcpy(tid + 8, "tbnc", 4);
}

/* A UDP socket for a peer, in the network namespace --peer-netns names
 * (a test bed's peer namespace) or in ours. */
static int peer_socket(const struct bench_opts *o, int family)
{
    if (!o->peer_netns)
        return socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    char path[256];
    snprintf(path, sizeof path, "/var/run/netns/%s", o->peer_netns);
    int there = open(path, O_RDONLY | O_CLOEXEC), home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = -1;
    if (there >= 0 && home >= 0 && setns(there, CLONE_NEWNET) == 0) {
        fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (setns(home, CLONE_NEWNET) < 0) {
            perror("ternbench: back to our network namespace");
            exit(1);
        }
    } else {
        perror("ternbench: --peer-netns");
    }
    if (there >= 0)
        close(there);
    if (home >= 0)
        close(home);
    return fd;
}

static int sess_open(struct bturn *t, unsigned i)
{
    struct bsess *s = &t->s[i];
    if (t->cycle && t->o->server.ss_family == AF_INET) {
        /* A new client per handshake, from a 5-tuple not used for minutes:
         * servers may keep a deleted allocation's 5-tuple busy for a while
         * (coturn answers 437 meanwhile), and ephemeral ports come round fast. */
        static uint32_t next;
        struct sockaddr_in src = { .sin_family = AF_INET };
        for (int tries = 0; tries < 16; tries++) {
            uint32_t c = next++;
            src.sin_addr.s_addr = htonl(0x7F000002u + (c / 20000) % 250);
            src.sin_port = htons((uint16_t)(10000 + c % 20000));
            s->fd = bench_udp_socket_from(&t->o->server, t->o->server_len, &src);
            if (s->fd >= 0)
                break;
        }
    } else {
        s->fd = bench_udp_socket(&t->o->server, t->o->server_len, i, t->o->src_ips);
    }
    s->nonce_len = 0;
    if (s->fd < 0)
        return -1;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        return -1;
    if (t->with_peer) {
        s->peer = t->o->peer_ip;
        socklen_t len = sizeof s->peer;
        s->peer_fd = peer_socket(t->o, s->peer.ss_family);
        if (s->peer_fd < 0 || bind(s->peer_fd, (struct sockaddr *)&s->peer, bench_sa_len(&s->peer)) < 0 ||
            getsockname(s->peer_fd, (struct sockaddr *)&s->peer, &len) < 0)
            return -1;
        s->chan = 0x4000;
    }
    return 0;
}

static void sess_close(struct bturn *t, struct bsess *s)
{
    if (s->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
    }
    if (s->peer_fd >= 0)
        close(s->peer_fd);
    s->fd = s->peer_fd = -1;
}

static void sess_send(struct bturn *t, unsigned i)
{
    struct bsess *s = &t->s[i];
    static const uint16_t method[] = { [BS_ALLOC] = STUN_ALLOCATE, [BS_BIND] = STUN_CHANNEL_BIND,
                                       [BS_REFRESH] = STUN_REFRESH, [BS_DELETE] = STUN_REFRESH };
    uint8_t buf[512], tid[12];
    struct stun_enc e;
    tid_make(i, ++s->seq, tid);
    stun_enc_init(&e, buf, sizeof buf, method[s->state], STUN_CLASS_REQUEST, tid, false);
    if (s->state == BS_ALLOC)
        stun_enc_add_u32(&e, STUN_ATTR_REQUESTED_TRANSPORT, 17u << 24);
    if (s->state == BS_ALLOC || s->state == BS_REFRESH)
        stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, t->o->lifetime);
    if (s->state == BS_DELETE)
        stun_enc_add_u32(&e, STUN_ATTR_LIFETIME, 0);
    if (s->state == BS_BIND) {
        stun_enc_add_u32(&e, STUN_ATTR_CHANNEL_NUMBER, (uint32_t)s->chan << 16);
        stun_enc_add_xaddr(&e, STUN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&s->peer);
    }
    if (s->nonce_len) {
        stun_enc_add(&e, STUN_ATTR_USERNAME, t->o->user, strlen(t->o->user));
        stun_enc_add(&e, STUN_ATTR_REALM, t->realm, strlen(t->realm));
        stun_enc_add(&e, STUN_ATTR_NONCE, s->nonce, s->nonce_len);
        stun_enc_add_integrity(&e, t->key, sizeof t->key);
    }
    send(s->fd, buf, e.len, 0);
    s->deadline = bench_now_ns() + RTO_NS;
}

static void active_add(struct bturn *t, unsigned i, uint8_t state)
{
    t->s[i].state = state;
    t->s[i].tries = 0;
    t->active[t->n_active++] = i;
    sess_send(t, i);
}

static void active_remove(struct bturn *t, unsigned i)
{
    for (unsigned k = 0; k < t->n_active; k++)
        if (t->active[k] == i) {
            t->active[k] = t->active[--t->n_active];
            return;
        }
}

static void sess_ready(struct bturn *t, unsigned i)
{
    struct bsess *s = &t->s[i];
    s->state = BS_READY;
    if (t->refresh) {
        s->deadline = bench_now_ns() + (uint64_t)t->o->lifetime * 500000000u;
        t->ring[(t->ring_head + t->ring_len++) % t->n] = i;
    }
}

/* Allocate mode: the handshake is done (or failed); begin again as a new client. */
static void sess_restart(struct bturn *t, unsigned i)
{
    sess_close(t, &t->s[i]);
    if (sess_open(t, i) < 0) {
        t->s[i].state = BS_FAILED;
        return;
    }
    active_add(t, i, BS_ALLOC);
}

static void sess_fail(struct bturn *t, unsigned i)
{
    t->failed++;
    if (t->cycle && !bench_stop) {
        sess_restart(t, i);
        return;
    }
    t->s[i].state = BS_FAILED;
}

/* 401/438: take the realm and nonce and try again; false if they are missing
 * or a signed request was refused (wrong credentials). */
static bool sess_take_nonce(struct bturn *t, struct bsess *s, const struct stun_msg *m, int code,
                            bool was_signed)
{
    const struct stun_attr *realm = stun_attr_find(m, STUN_ATTR_REALM);
    const struct stun_attr *nonce = stun_attr_find(m, STUN_ATTR_NONCE);
    if (!realm || !nonce || nonce->len > sizeof s->nonce || realm->len >= sizeof t->realm ||
        (code == 401 && was_signed))
        return false;
    if (realm->len != strlen(t->realm) || memcmp(t->realm, m->buf + realm->off, realm->len)) {
        memcpy(t->realm, m->buf + realm->off, realm->len);
        t->realm[realm->len] = 0;
        if (auth_key_md5(t->o->user, strlen(t->o->user), t->realm, t->o->pass, t->key) < 0)
            return false;
    }
    memcpy(s->nonce, m->buf + nonce->off, nonce->len);
    s->nonce_len = (uint8_t)nonce->len;
    return true;
}

static void sess_answer(struct bturn *t, unsigned i, const struct stun_msg *m)
{
    struct bsess *s = &t->s[i];
    uint8_t tid[12];
    tid_make(i, s->seq, tid);
    if (memcmp(tid, m->tid, 12) != 0 || s->state == BS_READY || s->state >= BS_DONE)
        return; /* a late answer to a retransmission */
    if (m->cls == STUN_CLASS_ERROR) {
        int code = 0;
        const char *reason;
        size_t rlen;
        const struct stun_attr *ea = stun_attr_find(m, STUN_ATTR_ERROR_CODE);
        if (ea)
            stun_attr_get_error(m, ea, &code, &reason, &rlen);
        bool was_signed = s->nonce_len > 0;
        if ((code == 401 || code == 438) && sess_take_nonce(t, s, m, code, was_signed)) {
            s->tries = 0;
            sess_send(t, i);
            return;
        }
        if (s->state == BS_DELETE && code == 437) { /* already gone: as good as deleted */
            m = NULL;
        } else {
            if (t->failed < 5)
                fprintf(stderr, "ternbench: session %u state %u: error %d\n", i, s->state, code);
            active_remove(t, i);
            sess_fail(t, i);
            return;
        }
    }
    if (m && m->cls != STUN_CLASS_SUCCESS)
        return;
    active_remove(t, i);
    switch (s->state) {
    case BS_ALLOC: {
        const struct stun_attr *ra = stun_attr_find(m, STUN_ATTR_XOR_RELAYED_ADDRESS);
        if (!ra || stun_attr_get_xaddr(m, ra, &s->relay) < 0) {
            sess_fail(t, i);
            return;
        }
        if (t->cycle)
            active_add(t, i, BS_DELETE);
        else if (t->with_peer)
            active_add(t, i, BS_BIND);
        else {
            t->ready++;
            sess_ready(t, i);
        }
        return;
    }
    case BS_BIND:
        if (connect(s->peer_fd, (struct sockaddr *)&s->relay, bench_sa_len(&s->relay)) < 0) {
            sess_fail(t, i);
            return;
        }
        t->ready++;
        sess_ready(t, i);
        return;
    case BS_REFRESH:
        t->refreshes++;
        sess_ready(t, i);
        return;
    case BS_DELETE:
        if (t->cycle) {
            t->handshakes++;
            if (!bench_stop)
                sess_restart(t, i);
            else
                s->state = BS_DONE;
            return;
        }
        t->deleted++;
        s->state = BS_DONE;
        return;
    }
}

int bturn_init(struct bturn *t, const struct bench_opts *o, unsigned n, unsigned max_active)
{
    memset(t, 0, sizeof *t);
    t->o = o;
    t->n = n;
    t->max_active = max_active;
    t->s = calloc(n, sizeof *t->s);
    t->active = calloc(max_active, sizeof *t->active);
    t->ring = calloc(n, sizeof *t->ring);
    t->ep = epoll_create1(0);
    if (!t->s || !t->active || !t->ring || t->ep < 0)
        return -1;
    for (unsigned i = 0; i < n; i++)
        t->s[i].fd = t->s[i].peer_fd = -1;
    return 0;
}

static void bturn_start(struct bturn *t)
{
    uint64_t now = bench_now_ns();
    while (!bench_stop && t->next_new < t->n && t->n_active < t->max_active) {
        unsigned i = t->next_new++;
        if (sess_open(t, i) < 0) {
            if (t->failed++ < 5)
                perror("ternbench: session socket");
            t->s[i].state = BS_FAILED;
            continue;
        }
        active_add(t, i, BS_ALLOC);
    }
    while (t->refresh && t->ring_len && t->n_active < t->max_active) {
        unsigned i = t->ring[t->ring_head];
        if (t->s[i].state == BS_READY && t->s[i].deadline > now)
            break;
        t->ring_head = (t->ring_head + 1) % t->n;
        t->ring_len--;
        if (t->s[i].state == BS_READY)
            active_add(t, i, BS_REFRESH);
    }
}

void bturn_poll(struct bturn *t, int timeout_ms)
{
    struct epoll_event ev[256];
    uint8_t buf[1500];
    bturn_start(t);
    int n = epoll_wait(t->ep, ev, 256, timeout_ms);
    for (int k = 0; k < n; k++) {
        unsigned i = ev[k].data.u32;
        for (int j = 0; j < 8; j++) {
            ssize_t r = recv(t->s[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r <= 0)
                break;
            struct stun_msg m;
            if (stun_is_stun(buf, (size_t)r) && stun_msg_decode(&m, buf, (size_t)r) == 0)
                sess_answer(t, i, &m);
            if (t->s[i].fd < 0 || ev[k].data.u32 != i)
                break;
        }
    }
    uint64_t now = bench_now_ns();
    for (unsigned k = 0; k < t->n_active; k++) {
        unsigned i = t->active[k];
        if (t->s[i].deadline > now)
            continue;
        if (++t->s[i].tries >= MAX_TRIES) {
            if (t->failed < 5)
                fprintf(stderr, "ternbench: session %u state %u: no answer\n", i, t->s[i].state);
            t->active[k--] = t->active[--t->n_active];
            sess_fail(t, i);
            continue;
        }
        sess_send(t, i);
    }
}

void bturn_setup(struct bturn *t, uint64_t deadline)
{
    while (!bench_stop && t->ready + t->failed < t->n && bench_now_ns() < deadline)
        bturn_poll(t, 10);
}

void bturn_delete_all(struct bturn *t, uint64_t deadline)
{
    t->refresh = false;
    t->cycle = false;
    t->next_new = t->n;
    unsigned next = 0;
    while (bench_now_ns() < deadline) {
        while (next < t->n && t->n_active < t->max_active) {
            if (t->s[next].state == BS_READY)
                active_add(t, next, BS_DELETE);
            next++;
        }
        if (next >= t->n && t->n_active == 0)
            break;
        bturn_poll(t, 10);
    }
}

void bturn_free(struct bturn *t)
{
    for (unsigned i = 0; t->s && i < t->n; i++)
        sess_close(t, &t->s[i]);
    if (t->ep >= 0)
        close(t->ep);
    free(t->s);
    free(t->active);
    free(t->ring);
}
