/*
 * privs.h - running as an unprivileged user once the listeners are bound.
 *
 * privs_drop() switches the whole process (every thread: call it before any
 * thread starts) to uid/gid with the user's supplementary groups, and keeps one
 * capability, CAP_NET_BIND_SERVICE, so that a reload can still open a new
 * listener on a port below 1024. Nothing else of root's survives: files are
 * read, and the state folder written, as that user from then on.
 */
#ifndef ONEGATE_PRIVS_H
#define ONEGATE_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

int privs_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errlen);

#endif
