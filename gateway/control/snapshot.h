/*
 * snapshot.h - what a rule file makes before it can serve, built one way for
 * every command: the rules (with their plugin instances), the TLS contexts,
 * the admin token's text and the pool table, in that order.
 *
 * Contract: `onegate check`, run, reload (SIGHUP and `onegate reload`), the
 * run-as-user check and the demo all build through here, so check verifies
 * exactly what run would load. A build either fills every part or none: on
 * failure nothing is left to free and err says why. The parts are the
 * caller's: hand them on (the daemon gives them to workers and the control
 * thread) or release them with snapshot_clear(). Called from the main thread.
 */
#ifndef ONEGATE_SNAPSHOT_H
#define ONEGATE_SNAPSHOT_H

#include "control/admin.h"
#include "proxy/pool.h"
#include "rules.h"
#include "proxy/tlsconf.h"

struct snapshot {
	struct rules_config *cfg;       /* one reference */
	struct tlsconf *tls;            /* one reference */
	struct pool_table *pools;       /* one reference */
	char token[ADMIN_TOKEN_MAX];    /* the admin token_file's text, "" when there is none */
};

/* Step 1: loads the rule file (plugin instances included). Every message goes
 * to diag; NULL when there was any error. */
struct rules_config *snapshot_rules_load(const char *path, struct rules_diag *diag);

/* Steps 2 to 4 on loaded rules: takes the caller's reference to cfg either
 * way. prev: the running pool table, whose server states carry over, or
 * NULL. Returns 0, or -1 with a sentence in err and the rule file's line it
 * is about in *line (0: the file as a whole). */
int snapshot_make(struct snapshot *s, struct rules_config *cfg, const struct pool_table *prev, char *err,
                  size_t errlen, int *line);

/* All four steps: the file at path as run would load it. On -1 the rules'
 * messages are in diag and, when the rules loaded, err and *line say which
 * later step failed (err is "" when the rules had errors). */
int snapshot_build(struct snapshot *s, const char *path, const struct pool_table *prev, struct rules_diag *diag,
                   char *err, size_t errlen, int *line);

/* Releases every part and zeroes s; a zeroed snapshot is left alone. */
void snapshot_clear(struct snapshot *s);

#endif
