/*
 * control.h - the control thread: health checks and the admin listener, on
 * an event_base of their own so that neither ever runs on a worker. The
 * daemon hands it each new snapshot the way it hands one to a worker.
 */
#ifndef ONEGATE_CONTROL_H
#define ONEGATE_CONTROL_H

#include <stdbool.h>

struct control;
struct pool_table;
struct tlsconf;

/* admin_fd: the admin listener, bound and listening (control takes it), or -1
 * for none; token: what admin requests must carry (NULL or "": nothing). NULL
 * (with the reason logged) on failure. */
struct control *control_start(struct pool_table *t, struct tlsconf *tls, int admin_fd, const char *token);
/* From the daemon's thread: the new table, contexts and token take over on the
 * control thread. admin_fd >= 0 replaces the admin listener (the address moved);
 * -2 closes it (the rules no longer have one); -1 keeps it. */
void control_reload(struct control *c, struct pool_table *t, struct tlsconf *tls, int admin_fd,
                    const char *token);
void control_stop(struct control *c);

/* Around each reload, whatever asked for it (SIGHUP from an admin or systemd,
 * POST /api/reload): from the daemon's thread, begin before the rule file is
 * read, end with the outcome once it is known (after control_reload() when it
 * was applied). Whoever waits on the admin listener for a reload asked after
 * a begin gets the outcome of a reload that began after it. text (taken):
 * the verdict's line, then one line per message (FILE:LINE: ...). */
void control_reload_begin(struct control *c);
void control_reload_end(struct control *c, bool applied, char *text);

#endif
