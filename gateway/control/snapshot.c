/*
 * snapshot.c - load -> TLS contexts -> admin token -> pool table, once for
 * every command (snapshot.h).
 */
#include "control/snapshot.h"

#include <stdio.h>
#include <string.h>

#include <openssl/mem.h>

#include "proxy/plugin.h"

struct rules_config *snapshot_rules_load(const char *path, struct rules_diag *diag)
{
	return plugin_rules_load(path, diag);
}

int snapshot_make(struct snapshot *s, struct rules_config *cfg, const struct pool_table *prev, char *err,
                  size_t errlen, int *line)
{
	memset(s, 0, sizeof(*s));
	*line = 0;
	err[0] = '\0';
	s->cfg = cfg;
	if (!(s->tls = tlsconf_new(cfg, err, errlen)))
		goto fail;
	/* Read once per load; the admin listener gets its text, never the file. */
	if (cfg->admin.on && cfg->admin.token_file &&
	    admin_token_read(cfg->admin.token_file, s->token, sizeof(s->token), err, errlen) != 0) {
		*line = cfg->admin.line;
		goto fail;
	}
	if (!(s->pools = pool_table_new(cfg, prev))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	snapshot_clear(s);
	return -1;
}

int snapshot_build(struct snapshot *s, const char *path, const struct pool_table *prev, struct rules_diag *diag,
                   char *err, size_t errlen, int *line)
{
	memset(s, 0, sizeof(*s));
	*line = 0;
	err[0] = '\0';
	struct rules_config *cfg = snapshot_rules_load(path, diag);
	if (!cfg)
		return -1;
	return snapshot_make(s, cfg, prev, err, errlen, line);
}

void snapshot_clear(struct snapshot *s)
{
	pool_table_unref(s->pools);
	tlsconf_unref(s->tls);
	rules_config_unref(s->cfg);
	OPENSSL_cleanse(s->token, sizeof(s->token));
	memset(s, 0, sizeof(*s));
}
