/*
 * admin.h - the admin listener: a status page (GET /), the same facts as JSON
 * (GET /api/status) and as a terminal table (GET /api/status.txt), Prometheus
 * metrics (GET /metrics), server actions (POST
 * /api/pools/POOL/servers/SERVER/drain|enable|disable) and reloads (POST
 * /api/reload, answered with the outcome once the daemon has it). Actions and
 * reloads answer JSON, or text lines for a client that accepts text/plain
 * first (the command line). Served by libevent's
 * evhttp on the control thread; every request needs the token when the rule
 * file names a token file ("Authorization: Bearer TOKEN" or ?token=TOKEN).
 *
 * admin.c: the listener, the token, which path goes where; the views are
 * admin_page.h, admin_status.h and admin_metrics.h (their shared facts in
 * admin_view.h), server actions admin_action.h, reloads admin_wait.h, answers
 * admin_reply.h; admin_client.c is the command line's side.
 */
#ifndef ONEGATE_ADMIN_H
#define ONEGATE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rules.h"

struct event_base;
struct pool_table;
struct admin;

/* How many reloads the daemon has begun (control_reload_begin() counts them). */
typedef uint64_t (*admin_reloads_fn)(void *arg);

/* Serves on fd (bound and listening; admin takes it). A POST /api/reload waits
 * for the outcome of a reload later than what reloads_begun(arg) says when it
 * comes. NULL when out of memory. */
struct admin *admin_new(struct event_base *base, int fd, admin_reloads_fn reloads_begun, void *arg);
/* Reload number seq ended: every POST /api/reload waiting for it or an earlier
 * number gets text (the verdict's line, then its messages). */
void admin_reload_done(struct admin *ad, uint64_t seq, bool applied, const char *text);
/* Serves this table (takes a reference); every request must carry token
 * (NULL or "": none), which the daemon read with admin_token_read(). */
void admin_set(struct admin *ad, struct pool_table *t, const char *token);
/* Replaces the listening socket (a reload moved the admin address). */
int admin_rebind(struct admin *ad, int fd);
void admin_free(struct admin *ad);

/* The command line's side: one request to the admin listener the rule file
 * names (with its token, accepting text/plain first), the answer's body
 * written to out. Returns the HTTP status, or -1 with a reason in err. */
int admin_client(const struct rules_admin *a, const char *method, const char *path, FILE *out, char *err,
                 size_t errlen);

/* How long a POST /api/reload waits for its outcome (certificates of many
 * services take a while); the command line waits a little longer. */
#define ADMIN_RELOAD_WAIT_S 25

/* Room for a token and its terminator. */
#define ADMIN_TOKEN_MAX 256

/* Reads a token file: its first line, without surrounding white space. */
int admin_token_read(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
