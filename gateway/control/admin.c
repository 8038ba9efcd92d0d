#include "control/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/mem.h>

#include "control/admin_action.h"
#include "control/admin_metrics.h"
#include "control/admin_page.h"
#include "control/admin_reply.h"
#include "control/admin_status.h"
#include "control/admin_wait.h"
#include "control/live.h"
#include "io/log.h"
#include "proxy/pool.h"

struct admin {
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct pool_table *table;
	char token[ADMIN_TOKEN_MAX];    /* "" : no token asked */
	time_t started;
	struct admin_waits *waits;      /* POST /api/reload requests waiting for the outcome */
};

/* ---------------------------------------------------------------- token */

int admin_token_read(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read the admin token file %s: %s", path, strerror(errno));
		return -1;
	}
	char line[ADMIN_TOKEN_MAX + 2] = "";
	char *got = fgets(line, sizeof(line), f);
	fclose(f);
	char *p = line, *e;
	while (*p == ' ' || *p == '\t')
		p++;
	e = p + strlen(p);
	while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (!got || (size_t)(e - p) < 16 || (size_t)(e - p) >= outlen) {
		snprintf(err, errlen, "the admin token in %s must be one line of 16 to %zu characters", path, outlen - 1);
		return -1;
	}
	memcpy(out, p, (size_t)(e - p) + 1);
	return 0;
}

static bool admin_token_ok(const struct admin *ad, struct evhttp_request *req)
{
	if (!ad->token[0])
		return true;
	size_t tl = strlen(ad->token);
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) == tl &&
	    CRYPTO_memcmp(auth + 7, ad->token, tl) == 0)
		return true;
	/* A browser opening the page cannot send a header: the token may come in the query. */
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq q;
	bool ok = false;
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *t = evhttp_find_header(&q, "token");
		ok = t && strlen(t) == tl && CRYPTO_memcmp(t, ad->token, tl) == 0;
		evhttp_clear_headers(&q);
	}
	return ok;
}

/* ---------------------------------------------------------------- requests */

/* GET /api/health: 200 while this gateway should hold a floating address, 503
 * with the reason otherwise. */
static void admin_health(struct evhttp_request *req)
{
	char why[200];
	bool ok = live_check(live_now_ms(), why, sizeof(why));
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add_printf(b, "{\"health\":\"%s\",\"reason\":", ok ? "ok" : "fail");
		admin_reply_json_str(b, why);
		ADMIN_LIT(b, "}\n");
	}
	admin_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "application/json", b);
	if (b)
		evbuffer_free(b);
}

static void admin_request(struct evhttp_request *req, void *arg)
{
	struct admin *ad = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (!path)
		path = "/";
	/* Asked every second by a tracking script on the same host; it tells nothing but
	 * ok or not, so it needs no token (changing it does). */
	if ((cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) && strcmp(path, "/api/health") == 0) {
		admin_health(req);
		return;
	}
	if (!admin_token_ok(ad, req)) {
		admin_reply_error(req, 401, "Unauthorized", "this admin listener needs its token");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && strcmp(path, "/api/reload") == 0) {
		admin_wait_add(ad->waits, req);
		return;
	}
	if (cmd == EVHTTP_REQ_POST && (strcmp(path, "/api/health/standby") == 0 || strcmp(path, "/api/health/active") == 0)) {
		bool standby = strcmp(path, "/api/health/standby") == 0;
		live_set_standby(standby);
		log_msg(LOG_WARN, "admin: %s", standby ? "standby: /api/health fails from now on, so a floating address moves away; "
		                                         "connections are still served"
		                                       : "active: /api/health answers from the gateway's state again");
		admin_health(req);
		return;
	}
	if (cmd == EVHTTP_REQ_POST) {
		admin_action(ad->table, req, path);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		admin_reply_error(req, 405, "Method Not Allowed", "GET or POST");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	if (strcmp(path, "/api/reload") == 0) {
		admin_reply_error(req, 405, "Method Not Allowed", "POST /api/reload");
		evbuffer_free(b);
		return;
	}
	if (strcmp(path, "/") == 0) {
		admin_page(ad->table, ad->started, b);
		admin_reply(req, 200, "OK", "text/html; charset=utf-8", b);
	} else if (strcmp(path, "/api/status") == 0) {
		admin_status_json(ad->table, ad->started, b);
		admin_reply(req, 200, "OK", "application/json", b);
	} else if (strcmp(path, "/api/status.txt") == 0) {
		admin_status_text(ad->table, ad->started, b);
		admin_reply(req, 200, "OK", "text/plain; charset=utf-8", b);
	} else if (strcmp(path, "/metrics") == 0) {
		admin_metrics(ad->table, ad->started, b);
		admin_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	} else {
		admin_reply_error(req, 404, "Not Found", "try /, /api/status, /api/status.txt, /api/health or /metrics");
	}
	evbuffer_free(b);
}

void admin_reload_done(struct admin *ad, uint64_t seq, bool applied, const char *text)
{
	admin_wait_done(ad->waits, seq, applied, text);
}

/* ---------------------------------------------------------------- lifetime */

struct admin *admin_new(struct event_base *base, int fd, admin_reloads_fn reloads_begun, void *arg)
{
	struct admin *ad = calloc(1, sizeof(*ad));
	if (!ad) {
		close(fd);
		return NULL;
	}
	ad->started = time(NULL);
	ad->http = evhttp_new(base);
	ad->waits = admin_wait_new(base, reloads_begun, arg);
	if (!ad->http || !ad->waits || admin_rebind(ad, fd) != 0) {
		admin_free(ad);
		return NULL;
	}
	evhttp_set_allowed_methods(ad->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_max_headers_size(ad->http, 16 * 1024);
	evhttp_set_max_body_size(ad->http, 4096);
	evhttp_set_timeout(ad->http, 10);
	evhttp_set_gencb(ad->http, admin_request, ad);
	return ad;
}

int admin_rebind(struct admin *ad, int fd)
{
	struct evhttp_bound_socket *nb = evhttp_accept_socket_with_handle(ad->http, fd);
	if (!nb) {
		close(fd);
		return -1;
	}
	if (ad->bound)
		evhttp_del_accept_socket(ad->http, ad->bound);
	ad->bound = nb;
	return 0;
}

void admin_set(struct admin *ad, struct pool_table *t, const char *token)
{
	snprintf(ad->token, sizeof(ad->token), "%s", token ? token : "");
	pool_table_unref(ad->table);
	ad->table = pool_table_ref(t);
}

void admin_free(struct admin *ad)
{
	if (!ad)
		return;
	admin_wait_free(ad->waits);
	if (ad->http)
		evhttp_free(ad->http);
	pool_table_unref(ad->table);
	free(ad);
}
