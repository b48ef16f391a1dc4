/*
 * tasks.h - work the main thread hands to every worker (worker.c): run(w, arg) on each
 * worker's own thread (where its allocations and sessions may be touched),
 * then done(arg) once on the main thread when all have run. The control
 * socket's questions (status, sessions, kill), reloads and the watchdog
 * use it; nothing on the packet path does.
 *
 * A worker finds its tasks when its eventfd wakes it; the last worker to
 * finish a task hands it back through an event of the main base (made with
 * libevent's thread support, so activating it from a worker is safe).
 */
#ifndef TERN_SERVER_TASKS_H
#define TERN_SERVER_TASKS_H

struct server;
struct worker;

typedef void (*task_run_fn)(struct worker *w, void *arg);
typedef void (*task_done_fn)(void *arg);

/* A task's place in one worker's list (tasks.c). */
struct task_node {
    struct task *task;
    struct task_node *next;
};

/* Ready the main thread's side (after the main base exists). 0 or -1. */
int tasks_init(struct server *srv);
void tasks_free(struct server *srv);
/* Hand a task to every worker; done runs later on the main thread. arg is
 * the caller's until done. 0, or -1 on out-of-memory (done never runs). */
int tasks_post(struct server *srv, task_run_fn run, task_done_fn done, void *arg);
/* The same in two steps, for a caller that must know it can post before it
 * changes anything: tasks_new (NULL on out-of-memory), then tasks_send. */
struct task *tasks_new(struct server *srv, task_run_fn run, task_done_fn done, void *arg);
void tasks_send(struct server *srv, struct task *t);
/* A task made with tasks_new and not sent after all. */
void tasks_discard(struct task *t);
/* A worker's side: run what waits for it (from its wake-up event). */
void tasks_run_pending(struct worker *w);

#endif
