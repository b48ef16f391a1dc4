/*
 * privs.c - see privs.h.
 */
#include "server/privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "server/core/log.h"

int privs_drop(const struct conf *c)
{
    if (!c->run_user[0]) {
        if (geteuid() == 0)
            log_warn("running as root: set 'user' (and 'group') in the configuration, or run ternd "
                     "as a service user with CAP_NET_BIND_SERVICE");
        return 0;
    }
    errno = 0;
    const struct passwd *pw = getpwnam(c->run_user);
    if (!pw) {
        log_error("user %s: %s", c->run_user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (c->run_group[0]) {
        errno = 0;
        const struct group *gr = getgrnam(c->run_group);
        if (!gr) {
            log_error("group %s: %s", c->run_group, errno ? strerror(errno) : "no such group");
            return -1;
        }
        gid = gr->gr_gid;
    }
    /* groups first: after setuid there is no right left to change them */
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        log_error("cannot become %s: %s", c->run_user, strerror(errno));
        return -1;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        log_error("privileges could be regained after becoming %s: refusing to run", c->run_user);
        return -1;
    }
    log_info("running as user %s (uid %u, gid %u)", c->run_user, (unsigned)uid, (unsigned)gid);
    return 0;
}
