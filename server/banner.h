/*
 * banner.h - the one line ternd prints on stdout when it serves: where it
 * listens and the iceServers a browser would use (the first static user
 * with a password, if any), so that a new user can copy it into a page.
 */
#ifndef TERN_SERVER_BANNER_H
#define TERN_SERVER_BANNER_H

struct conf;

void banner_print(const struct conf *c, int n_workers);

#endif
