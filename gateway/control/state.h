/*
 * state.h - the state folder (onegate.state in the rule file): what a restart
 * must not forget. It holds onegate.pid (the running gateway's process, so a
 * second one on the same folder is refused) and servers.state (the servers an
 * admin drained or disabled: they stay out of rotation after a restart until
 * an admin enables them).
 *
 * Files are replaced whole (written aside, then renamed), so a crash leaves the
 * previous version or the new one, never half of one.
 */
#ifndef ONEGATE_STATE_H
#define ONEGATE_STATE_H

#include <stddef.h>
#include <sys/types.h>

struct pool_table;

/* Creates the folder when missing (mode 0750, given to owner/group unless they
 * are (uid_t)-1), then refuses it when another running onegate holds its pid file. */
int state_prepare(const char *dir, uid_t owner, gid_t group, char *err, size_t errlen);
/* As whoever onegate now runs as: can it write there? Then writes onegate.pid. */
int state_pid_write(const char *dir, char *err, size_t errlen);
void state_pid_remove(const char *dir);

/* Drained and disabled servers of the table; errors are logged (the action stands). */
void state_servers_save(const struct pool_table *t, const char *dir);
/* Applies a saved file to a new table; servers no longer in the rules are skipped. */
void state_servers_restore(const struct pool_table *t, const char *dir);

#endif
