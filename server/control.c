/*
 * control.c - see control.h: the Unix socket, reading one request, writing
 * its answer. The requests themselves are in control_cmd.c.
 *
 * The socket lives on the main thread's base. A request that needs the
 * workers (sessions, kill, reload) goes to them as a task and is answered
 * when they are done; its connection may close meanwhile, which only means
 * the answer goes nowhere.
 */
#include "server/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/control_int.h"
#include "server/core/log.h"
#include "server/server.h"

#define CONTROL_TIMEOUT_S 10 /* a client that sends nothing is let go */

/* The socket; owned by the server (srv->control). */
struct control {
    struct server *srv;
    struct evconnlistener *l;
    struct control_conn *conns;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One client; owned by its control, freed by conn_free (or when its answer
 * has been written). */
struct control_conn {
    struct control_conn *next, *prev;
    struct control *ctl;
    struct bufferevent *bev;
    struct control_req *req; /* its request while the workers are at it */
};

static void conn_free(struct control_conn *c)
{
    if (c->req)
        c->req->conn = NULL; /* the answer, when it comes, goes nowhere */
    if (c->prev)
        c->prev->next = c->next;
    else
        c->ctl->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

static void conn_on_flushed(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_free(arg);
}

static void control_answer(struct control_req *req, bool ok, struct evbuffer *body)
{
    struct control_conn *c = req->conn;
    if (c) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_add_printf(out, "%s\n", ok ? "ok" : "error");
        if (body)
            evbuffer_add_buffer(out, body);
        c->req = NULL;
        /* close once the answer is out */
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setcb(c->bev, NULL, conn_on_flushed, NULL, c);
        if (evbuffer_get_length(out) == 0)
            conn_free(c);
    }
    free(req);
}

/* The arguments, once "\0\0" (an empty argument) has arrived: 1 done, 0
 * more to read, -1 malformed. */
static int conn_parse(struct control_conn *c, struct control_req *req)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    if (len > sizeof req->buf)
        return -1;
    evbuffer_copyout(in, req->buf, len);
    size_t start = 0;
    int argc = 0;
    for (size_t i = 0; i < len; i++) {
        if (req->buf[i])
            continue;
        if (i == start) { /* the empty argument: the end */
            req->argc = argc;
            return 1;
        }
        if (argc >= CONTROL_MAX_ARGS)
            return -1;
        if (strcmp(req->buf + start, "--json") == 0)
            req->json = true;
        else
            req->argv[argc++] = req->buf + start;
        start = i + 1;
    }
    return len == sizeof req->buf ? -1 : 0;
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct control_conn *c = arg;
    if (c->req)
        return; /* one request per connection */
    struct control_req *req = calloc(1, sizeof *req);
    if (!req) {
        conn_free(c);
        return;
    }
    req->srv = c->ctl->srv;
    req->answer = control_answer;
    req->conn = c;
    int rc = conn_parse(c, req);
    if (rc == 0) {
        free(req);
        return;
    }
    c->req = req;
    if (rc < 0 || req->argc == 0) {
        control_answer_line(req, false, "a request is its arguments, each ended by a NUL byte, "
                                        "then an empty one (see ternctl)");
        return;
    }
    control_cmd_run(req);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct control_conn *c = arg;
    /* A client that half-closed after its request (nc -N, socat) still
     * reads the answer: keep the connection while the workers are at it. */
    if ((what & BEV_EVENT_EOF) && c->req) {
        bufferevent_disable(bev, EV_READ);
        return;
    }
    conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l, (void)sa, (void)salen;
    struct control *ctl = arg;
    struct control_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(ctl->srv->base, fd,
                                                         BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    c->ctl = ctl;
    c->bev = bev;
    c->next = ctl->conns;
    if (ctl->conns)
        ctl->conns->prev = c;
    ctl->conns = c;
    struct timeval tv = { .tv_sec = CONTROL_TIMEOUT_S };
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setcb(bev, conn_on_read, NULL, conn_on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int control_start(struct server *srv)
{
    const struct conf *cf = srv->conf;
    if (!cf->has_control)
        return 0;
    struct control *ctl = calloc(1, sizeof *ctl);
    if (!ctl)
        return -1;
    ctl->srv = srv;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(cf->control_path) >= sizeof sun.sun_path) {
        log_error("control: path %s is too long for a Unix socket", cf->control_path);
        free(ctl);
        return -1;
    }
    strcpy(sun.sun_path, cf->control_path);
    strcpy(ctl->path, cf->control_path);
    /* A socket file left by a ternd that died is replaced; anything else at
     * that path is not ours to remove. */
    struct stat st;
    if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(ctl->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Bound under a mask that lets nobody in, then opened as configured,
     * so that there is no moment when the socket is more open than that. */
    mode_t old = umask(0777);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0 || chmod(ctl->path, cf->control_mode) < 0 || listen(fd, 16) < 0) {
        log_error("control: cannot listen on %s: %s", ctl->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(ctl);
        return -1;
    }
    ctl->l = evconnlistener_new(srv->base, on_accept, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!ctl->l) {
        close(fd);
        unlink(ctl->path);
        free(ctl);
        return -1;
    }
    srv->control = ctl;
    log_info("control socket %s (mode %04o)", ctl->path, cf->control_mode);
    return 0;
}

void control_stop(struct server *srv)
{
    struct control *ctl = srv->control;
    if (!ctl)
        return;
    while (ctl->conns)
        conn_free(ctl->conns);
    evconnlistener_free(ctl->l);
    unlink(ctl->path);
    free(ctl);
    srv->control = NULL;
}
