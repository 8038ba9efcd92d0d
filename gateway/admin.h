/*
 * admin.h - the admin listener: a status page (GET /), the same facts as JSON
 * (GET /api/status) and as a terminal table (GET /api/status.txt), Prometheus
 * metrics (GET /metrics), and server actions (POST
 * /api/pools/POOL/servers/SERVER/drain|enable|disable). Served by libevent's
 * evhttp on the control thread; every request needs the token when the rule
 * file names a token file ("Authorization: Bearer TOKEN" or ?token=TOKEN).
 */
#ifndef ONEGATE_ADMIN_H
#define ONEGATE_ADMIN_H

#include <stddef.h>
#include <stdio.h>

#include "rules.h"

struct event_base;
struct pool_table;
struct admin;

/* Serves on fd (bound and listening; admin takes it). NULL when out of memory. */
struct admin *admin_new(struct event_base *base, int fd);
/* Serves this table (takes a reference); every request must carry token
 * (NULL or "": none), which the daemon read with admin_token_read(). */
void admin_set(struct admin *ad, struct pool_table *t, const char *token);
/* Replaces the listening socket (a reload moved the admin address). */
int admin_rebind(struct admin *ad, int fd);
void admin_free(struct admin *ad);

/* The command line's side: one request to the admin listener the rule file
 * names (with its token), the answer's body written to out. Returns the HTTP
 * status, or -1 with a reason in err. */
int admin_client(const struct rules_admin *a, const char *method, const char *path, FILE *out, char *err,
                 size_t errlen);

/* Room for a token and its terminator. */
#define ADMIN_TOKEN_MAX 256

/* Reads a token file: its first line, without surrounding white space. */
int admin_token_read(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
