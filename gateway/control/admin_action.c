#include "control/admin_action.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "control/admin_reply.h"
#include "proxy/pool.h"
#include "rules.h"
#include "control/state.h"

/* What an action did, in words: the state before and after, and what happens to open connections. */
static void admin_action_text(char *out, size_t len, const char *pool, const char *server, const char *before,
                              const struct pool_server_view *v)
{
	if (strcmp(before, v->state) == 0) {
		snprintf(out, len, "pool %s, server %s: already %s; nothing changed\n", pool, server, v->state);
		return;
	}
	const char *what = v->admin == POOL_ADMIN_ENABLED
	                       ? "it takes new connections and requests again"
	                       : "no new connections or requests go to it; the open ones finish";
	snprintf(out, len, "pool %s, server %s: %s -> %s; %s (%u open now)\n", pool, server, before, v->state, what,
	         v->active);
}

/* POST /api/pools/POOL/servers/SERVER/ACTION */
void admin_action(struct pool_table *t, struct evhttp_request *req, const char *path)
{
	char *dec = evhttp_uridecode(path, 0, NULL);
	char pool[256], server[256], action[32];
	int n = -1;
	if (dec && sscanf(dec, "/api/pools/%255[^/]/servers/%255[^/]/%31[a-z]%n", pool, server, action, &n) == 3 &&
	    dec[n] == '\0') {
		const struct rules_config *cfg = pool_table_config(t);
		long p = rules_pool_find(cfg, pool);
		long s = p >= 0 ? pool_server_find(t, (size_t)p, server) : -1;
		int a = strcmp(action, "enable") == 0 ? POOL_ADMIN_ENABLED : strcmp(action, "drain") == 0 ? POOL_ADMIN_DRAINING
		        : strcmp(action, "disable") == 0 ? POOL_ADMIN_DISABLED : -1;
		if (p < 0 || s < 0)
			admin_reply_fail(req, 404, "Not Found", "no such pool or server");
		else if (a < 0)
			admin_reply_fail(req, 400, "Bad Request", "the action is drain, enable or disable");
		else {
			struct pool_server_view v;
			pool_server_view(t, (size_t)p, (size_t)s, &v);
			const char *before = v.state;
			pool_server_set_admin(t, (size_t)p, (size_t)s, (enum pool_admin)a);
			if (cfg->state_dir)
				state_servers_save(t, cfg->state_dir);
			pool_server_view(t, (size_t)p, (size_t)s, &v);
			if (admin_reply_wants_text(req)) {
				char text[800];
				admin_action_text(text, sizeof(text), pool, server, before, &v);
				admin_reply_lines(req, 200, "OK", text);
			} else {
				struct evbuffer *b = evbuffer_new();
				if (b) {
					ADMIN_LIT(b, "{\"pool\":");
					admin_reply_json_str(b, pool);
					ADMIN_LIT(b, ",\"server\":");
					admin_reply_json_str(b, server);
					evbuffer_add_printf(b, ",\"before\":\"%s\",\"state\":\"%s\",\"active\":%u}\n", before, v.state,
					                    v.active);
				}
				admin_reply(req, 200, "OK", "application/json", b);
				if (b)
					evbuffer_free(b);
			}
		}
	} else {
		admin_reply_fail(req, 404, "Not Found", "POST /api/pools/POOL/servers/SERVER/drain|enable|disable");
	}
	free(dec);
}
