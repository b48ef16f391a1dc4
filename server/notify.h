/*
 * notify.h - the systemd notify protocol (sd_notify(3)) without libsystemd:
 * one datagram per message to the socket named by $NOTIFY_SOCKET (a path,
 * or an abstract name after '@'). READY=1 when serving, RELOADING=1 and
 * READY=1 around a reload, STOPPING=1, STATUS= with the node's numbers, and
 * WATCHDOG=1 while every worker still answers (when WatchdogSec is set).
 * Without $NOTIFY_SOCKET every call does nothing.
 */
#ifndef TERN_SERVER_NOTIFY_H
#define TERN_SERVER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read the environment once, at start. */
void notify_init(void);
bool notify_enabled(void);
/* How often systemd wants WATCHDOG=1, in microseconds (0: not at all). */
uint64_t notify_watchdog_usec(void);
/* Send one message ("READY=1", "STATUS=..."); newline-separated lines are
 * one message. */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
