#include "control/admin.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
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

#include "acme/acme.h"
#include "certs.h"
#include "control/live.h"
#include "io/log.h"
#include "proxy/pool.h"
#include "schema.h"
#include "control/state.h"
#include "proxy/stats.h"

/* A string literal, its length counted by the compiler. */
#define ADMIN_LIT(b, s) evbuffer_add((b), s, sizeof(s) - 1)

/* How long a POST /api/reload waits for its outcome (certificates of many services take a while). */
#define ADMIN_RELOAD_WAIT_S 25

/* A POST /api/reload waiting for the outcome of a reload that began after it. */
struct admin_wait {
	struct admin_wait *next;
	struct admin *ad;
	struct evhttp_request *req;
	struct event *timer;
	uint64_t want;                  /* the first reload number that answers it */
	bool text;
};

struct admin {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct pool_table *table;
	char token[ADMIN_TOKEN_MAX];    /* "" : no token asked */
	time_t started;
	admin_reloads_fn reloads_begun;
	void *reloads_arg;
	struct admin_wait *waits;
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

/* ---------------------------------------------------------------- facts */

static const char *admin_mode(enum rules_service_mode m)
{
	return m == RULES_MODE_TLS ? "tls" : m == RULES_MODE_HTTP ? "http" : "passthrough";
}

/* The rule file's words for them: what the admin wrote is what the page shows. */
static const char *admin_balance(enum rules_balance b)
{
	return rules_schema_word(RULES_G_POOL, "balance", (int)b);
}

static const char *admin_check_type(enum rules_health_type t)
{
	return rules_schema_word(RULES_G_HEALTH, "type", (int)t);
}

/* "up": every server usable; "degraded": some; "down": none. */
static const char *admin_pool_state(const struct pool_table *t, size_t p, size_t *nup)
{
	const struct rules_pool *rp = &pool_table_config(t)->pools[p];
	size_t up = 0;
	for (size_t i = 0; i < rp->nservers; i++) {
		struct pool_server_view v;
		pool_server_view(t, p, i, &v);
		up += strcmp(v.state, "up") == 0 || strcmp(v.state, "unchecked") == 0;
	}
	if (nup)
		*nup = up;
	return up == rp->nservers ? "up" : up ? "degraded" : "down";
}

static const char *admin_service_state(const struct pool_table *t, const struct rules_service *svc)
{
	size_t pools = 0, down = 0, degraded = 0;
	for (size_t r = 0; r < svc->nroutes; r++) {
		if (svc->routes[r].pool < 0)
			continue;
		const char *st = admin_pool_state(t, (size_t)svc->routes[r].pool, NULL);
		pools++;
		down += strcmp(st, "down") == 0;
		degraded += strcmp(st, "degraded") == 0;
	}
	return pools && down == pools ? "down" : down || degraded ? "degraded" : "up";
}

/* What a route matches and does, in the rule file's words. */
static void admin_route_text(const struct rules_config *cfg, const struct rules_service *svc, size_t r,
                             char *match, size_t mlen, char *action, size_t alen)
{
	const struct rules_route *rt = &svc->routes[r];
	if ((long)r == svc->default_route)
		snprintf(match, mlen, "default");
	else
		snprintf(match, mlen, "%s%s%s%s%s%s", rt->sni ? "sni " : "", rt->sni ? rt->sni : "",
		         rt->host ? (rt->sni ? " host " : "host ") : "", rt->host ? rt->host : "",
		         rt->path ? " path " : "", rt->path ? rt->path : "");
	if (rt->pool >= 0 && rt->port)
		snprintf(action, alen, "%s pool %s port %u", rt->passthrough ? "passthrough to" : "to",
		         cfg->pools[rt->pool].name, rt->port);
	else if (rt->pool >= 0)
		snprintf(action, alen, "%s pool %s", rt->passthrough ? "passthrough to" : "to", cfg->pools[rt->pool].name);
	else if (rt->redirect)
		snprintf(action, alen, "redirect %s", rt->redirect);
	else if (rt->status)
		snprintf(action, alen, "status %d", rt->status);
	else
		snprintf(action, alen, "reject");
}

static void admin_json_str(struct evbuffer *b, const char *s)
{
	ADMIN_LIT(b, "\"");
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			evbuffer_add_printf(b, "\\u%04x", *p);
		else
			evbuffer_add(b, p, 1);
	}
	ADMIN_LIT(b, "\"");
}

/* ---------------------------------------------------------------- live numbers */

/* The chart: requests per second in 10-second steps over the ring's 10 minutes. */
#define ADMIN_CHART_STEP_S 10
#define ADMIN_CHART_POINTS (STATS_RING_S / ADMIN_CHART_STEP_S)

/* The latest state change among a pool's servers (0: never). */
static int64_t admin_pool_changed(const struct pool_table *t, size_t p)
{
	const struct rules_pool *rp = &pool_table_config(t)->pools[p];
	int64_t last = 0;
	for (size_t i = 0; i < rp->nservers; i++) {
		struct pool_server_view v;
		pool_server_view(t, p, i, &v);
		if (v.last_change > last)
			last = v.last_change;
	}
	return last;
}

static int64_t admin_service_changed(const struct pool_table *t, const struct rules_service *svc)
{
	int64_t last = 0;
	for (size_t r = 0; r < svc->nroutes; r++) {
		int64_t c = svc->routes[r].pool >= 0 ? admin_pool_changed(t, (size_t)svc->routes[r].pool) : 0;
		if (c > last)
			last = c;
	}
	return last;
}

static void admin_json_num(struct evbuffer *b, double v)
{
	if (v < 0)
		ADMIN_LIT(b, "null");
	else
		evbuffer_add_printf(b, "%.6g", v);
}

/* "live": the last minute's numbers and the 10 minutes' series. */
static void admin_live_json(struct evbuffer *b, const struct stats_ring *r, int64_t last_change)
{
	struct stats_live l;
	stats_ring_live(r, STATS_WINDOW_S, &l);
	evbuffer_add_printf(b, ",\"last_change\":%lld,\"live\":{\"window_s\":%.1f,\"rps\":%.6g,\"in_bps\":%.6g,"
	                       "\"out_bps\":%.6g,\"error_rate\":%.6g,\"p50_ms\":",
	                    (long long)last_change, l.span_s, l.rps, l.in_bps, l.out_bps, l.error_rate);
	admin_json_num(b, l.p50_ms);
	ADMIN_LIT(b, ",\"p99_ms\":");
	admin_json_num(b, l.p99_ms);
	double rps[ADMIN_CHART_POINTS], eps[ADMIN_CHART_POINTS];
	stats_ring_series(r, ADMIN_CHART_STEP_S, ADMIN_CHART_POINTS, rps, eps);
	evbuffer_add_printf(b, ",\"open\":%u,\"history\":{\"step_s\":%d,\"rps\":[", l.open, ADMIN_CHART_STEP_S);
	for (size_t i = 0; i < ADMIN_CHART_POINTS; i++) {
		evbuffer_add(b, ",", i ? 1 : 0);
		admin_json_num(b, rps[i]);
	}
	ADMIN_LIT(b, "],\"errors\":[");
	for (size_t i = 0; i < ADMIN_CHART_POINTS; i++) {
		evbuffer_add(b, ",", i ? 1 : 0);
		admin_json_num(b, eps[i]);
	}
	ADMIN_LIT(b, "]}}");
}

/* Short forms for a table cell. */
static void admin_fmt_rate(char *out, size_t len, double v)
{
	if (v <= 0)
		snprintf(out, len, "0");
	else if (v < 10)
		snprintf(out, len, "%.2f", v);
	else if (v < 1000)
		snprintf(out, len, "%.0f", v);
	else
		snprintf(out, len, "%.1fk", v / 1000);
}

static void admin_fmt_bytes(char *out, size_t len, double v)
{
	if (v < 1000)
		snprintf(out, len, "%.0f B/s", v);
	else if (v < 1e6)
		snprintf(out, len, "%.1f kB/s", v / 1e3);
	else if (v < 1e9)
		snprintf(out, len, "%.1f MB/s", v / 1e6);
	else
		snprintf(out, len, "%.2f GB/s", v / 1e9);
}

static void admin_fmt_ms(char *out, size_t len, double ms)
{
	if (ms < 0)
		snprintf(out, len, "-");
	else if (ms < 10)
		snprintf(out, len, "%.2f ms", ms);
	else if (ms < 1000)
		snprintf(out, len, "%.0f ms", ms);
	else
		snprintf(out, len, "%.2f s", ms / 1000);
}

static void admin_fmt_errors(char *out, size_t len, const struct stats_live *l)
{
	if (!l->requests)
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%.1f%%", l->error_rate * 100);
}

static void admin_fmt_ago(char *out, size_t len, int64_t when)
{
	long long d = (long long)time(NULL) - when;
	if (!when)
		snprintf(out, len, "never");
	else if (d < 120)
		snprintf(out, len, "%lld s ago", d < 0 ? 0 : d);
	else if (d < 7200)
		snprintf(out, len, "%lld min ago", d / 60);
	else if (d < 172800)
		snprintf(out, len, "%lld h ago", d / 3600);
	else
		snprintf(out, len, "%lld d ago", d / 86400);
}

static void admin_label(struct evbuffer *b, const char *s);
static void admin_html(struct evbuffer *b, const char *s);

/* ---------------------------------------------------------------- certificates */

/* A certificate as the views show it: a file's as loaded, an ACME one as its client knows it. */
struct admin_cert {
	time_t not_after;               /* 0: none issued yet (ACME) */
	bool has_view;
	struct acme_cert_view v;
};

static void admin_cert_get(const struct rules_cert *rc, struct admin_cert *c)
{
	memset(c, 0, sizeof(*c));
	if (rc->acme) {
		c->has_view = acme_cert_view(rc->name, &c->v);
		c->not_after = c->v.not_after;
	} else if (rc->item) {
		c->not_after = certs_item_not_after(rc->item);
	}
}

static size_t admin_cert_nnames(const struct rules_cert *rc)
{
	return rc->acme ? rc->acme->nnames : rc->item ? certs_item_nnames(rc->item) : 0;
}

static const char *admin_cert_name_at(const struct rules_cert *rc, size_t i)
{
	return rc->acme ? rc->acme->names[i] : certs_item_name_at(rc->item, i);
}

static void admin_time_text(time_t t, char *out, size_t cap)
{
	struct tm tm;
	if (!t) {
		snprintf(out, cap, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* ,"certificates":[{name, source, names, not_after, expires_in_s, acme: {...}}] */
static void admin_certs_json(const struct rules_config *cfg, struct evbuffer *b)
{
	time_t now = time(NULL);
	ADMIN_LIT(b, ",\"certificates\":[");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_cert c;
		admin_cert_get(rc, &c);
		evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
		admin_json_str(b, rc->name);
		evbuffer_add_printf(b, ",\"source\":\"%s\",\"names\":[", rc->acme ? "acme" : "file");
		for (size_t n = 0; n < admin_cert_nnames(rc); n++) {
			evbuffer_add(b, n ? "," : "", n ? 1 : 0);
			admin_json_str(b, admin_cert_name_at(rc, n));
		}
		if (c.not_after)
			evbuffer_add_printf(b, "],\"not_after\":%lld,\"expires_in_s\":%lld", (long long)c.not_after,
			                    (long long)(c.not_after - now));
		else
			ADMIN_LIT(b, "],\"not_after\":null,\"expires_in_s\":null");
		if (rc->acme) {
			evbuffer_add_printf(b, ",\"acme\":{\"issued\":%s,\"next_renewal\":%lld,\"failures\":%u,\"last_error\":",
			                    c.v.issued ? "true" : "false", (long long)c.v.next_attempt, c.v.failures);
			admin_json_str(b, c.v.last_error);
			ADMIN_LIT(b, "}");
		}
		ADMIN_LIT(b, "}");
	}
	ADMIN_LIT(b, "]");
}

static void admin_certs_text(const struct rules_config *cfg, struct evbuffer *b)
{
	if (!cfg->ncerts)
		return;
	evbuffer_add_printf(b, "\n%-20s %-6s %-22s %-22s %s\n", "CERTIFICATE", "SOURCE", "EXPIRES", "NEXT RENEWAL",
	                    "NAMES / LAST ERROR");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_cert c;
		admin_cert_get(rc, &c);
		char exp[32], next[32];
		admin_time_text(c.not_after, exp, sizeof(exp));
		admin_time_text(rc->acme ? c.v.next_attempt : 0, next, sizeof(next));
		evbuffer_add_printf(b, "%-20s %-6s %-22s %-22s", rc->name, rc->acme ? "acme" : "file",
		                    rc->acme && !c.v.issued ? "(not issued yet)" : exp, next);
		for (size_t n = 0; n < admin_cert_nnames(rc); n++)
			evbuffer_add_printf(b, " %s", admin_cert_name_at(rc, n));
		if (rc->acme && c.v.last_error[0])
			evbuffer_add_printf(b, "\n%-20s last error: %s", "", c.v.last_error);
		ADMIN_LIT(b, "\n");
	}
}

static void admin_certs_metrics(const struct rules_config *cfg, struct evbuffer *b)
{
	time_t now = time(NULL);
	ADMIN_LIT(b, "# HELP onegate_certificate_expiry_seconds seconds until the certificate served expires "
	             "(negative: expired); an ACME certificate not issued yet has none\n"
	             "# TYPE onegate_certificate_expiry_seconds gauge\n");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		struct admin_cert c;
		admin_cert_get(&cfg->certs[i], &c);
		if (!c.not_after)
			continue;
		ADMIN_LIT(b, "onegate_certificate_expiry_seconds{certificate=\"");
		admin_label(b, cfg->certs[i].name);
		evbuffer_add_printf(b, "\"} %lld\n", (long long)(c.not_after - now));
	}
}

static void admin_certs_page(const struct rules_config *cfg, struct evbuffer *b)
{
	if (!cfg->ncerts)
		return;
	time_t now = time(NULL);
	ADMIN_LIT(b, "<h2>Certificates</h2><div class=wrap><table><tr><th>Certificate</th><th>Source</th><th>Names</th>"
	             "<th>Expires</th><th>Next renewal</th><th>Last error</th></tr>");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_cert c;
		admin_cert_get(rc, &c);
		char exp[32], next[32];
		admin_time_text(c.not_after, exp, sizeof(exp));
		admin_time_text(rc->acme ? c.v.next_attempt : 0, next, sizeof(next));
		const char *st = !c.not_after ? "warn" : c.not_after - now < 7 * 86400 ? "down"
		               : c.not_after - now < 30 * 86400 ? "warn" : "up";
		ADMIN_LIT(b, "<tr><td>");
		admin_html(b, rc->name);
		evbuffer_add_printf(b, "</td><td>%s</td><td>", rc->acme ? "ACME" : "file");
		for (size_t n = 0; n < admin_cert_nnames(rc); n++) {
			admin_html(b, admin_cert_name_at(rc, n));
			ADMIN_LIT(b, "<br>");
		}
		evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td><td>%s</td><td>", st,
		                    rc->acme && !c.v.issued ? "not issued yet" : exp, next);
		admin_html(b, rc->acme ? c.v.last_error : "");
		ADMIN_LIT(b, "</td></tr>");
	}
	ADMIN_LIT(b, "</table></div>");
}

static void admin_status_json(const struct admin *ad, struct evbuffer *b)
{
	const struct pool_table *t = ad->table;
	const struct rules_config *cfg = pool_table_config(t);
	evbuffer_add_printf(b, "{\"version\":\"%s\",\"rules\":", ONEGATE_VERSION);
	admin_json_str(b, cfg->path);
	evbuffer_add_printf(b, ",\"uptime_s\":%lld,\"services\":[", (long long)(time(NULL) - ad->started));
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		evbuffer_add_printf(b, "%s{\"name\":", s ? "," : "");
		admin_json_str(b, svc->name);
		evbuffer_add_printf(b, ",\"mode\":\"%s\",\"state\":\"%s\"", admin_mode(svc->mode),
		                    admin_service_state(t, svc));
		admin_live_json(b, pool_service_ring(t, s), admin_service_changed(t, svc));
		ADMIN_LIT(b, ",\"listen\":[");
		for (size_t a = 0; a < svc->nlisten; a++) {
			evbuffer_add(b, a ? "," : "", a ? 1 : 0);
			admin_json_str(b, svc->listen[a].text);
		}
		ADMIN_LIT(b, "],\"routes\":[");
		for (size_t r = 0; r < svc->nroutes; r++) {
			char match[600], action[300];
			admin_route_text(cfg, svc, r, match, sizeof(match), action, sizeof(action));
			evbuffer_add_printf(b, "%s{\"line\":%d,\"match\":", r ? "," : "", svc->routes[r].line);
			admin_json_str(b, match);
			ADMIN_LIT(b, ",\"action\":");
			admin_json_str(b, action);
			ADMIN_LIT(b, ",\"pool\":");
			if (svc->routes[r].pool >= 0)
				admin_json_str(b, cfg->pools[svc->routes[r].pool].name);
			else
				ADMIN_LIT(b, "null");
			ADMIN_LIT(b, "}");
		}
		ADMIN_LIT(b, "]}");
	}
	ADMIN_LIT(b, "],\"pools\":[");
	for (size_t p = 0; p < cfg->npools; p++) {
		const struct rules_pool *rp = &cfg->pools[p];
		size_t up;
		const char *st = admin_pool_state(t, p, &up);
		evbuffer_add_printf(b, "%s{\"name\":", p ? "," : "");
		admin_json_str(b, rp->name);
		evbuffer_add_printf(b, ",\"state\":\"%s\",\"servers_up\":%zu,\"balance\":\"%s\",\"check\":\"%s\"",
		                    st, up, admin_balance(rp->balance), admin_check_type(rp->health.type));
		admin_live_json(b, pool_ring(t, p), admin_pool_changed(t, p));
		ADMIN_LIT(b, ",\"servers\":[");
		for (size_t i = 0; i < rp->nservers; i++) {
			const struct rules_server *sv = &rp->servers[i];
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
			admin_json_str(b, sv->name);
			ADMIN_LIT(b, ",\"address\":");
			admin_json_str(b, sv->addr.text);
			evbuffer_add_printf(b,
			                    ",\"state\":\"%s\",\"weight\":%u,\"backup\":%s,\"active\":%u,\"connections\":%llu,"
			                    "\"requests\":%llu,\"errors\":%llu,\"failures\":%llu,\"retries\":%llu",
			                    v.state, sv->weight, sv->backup ? "true" : "false", v.active,
			                    (unsigned long long)v.connections, (unsigned long long)v.requests,
			                    (unsigned long long)v.errors, (unsigned long long)v.failures,
			                    (unsigned long long)v.retries);
			admin_live_json(b, pool_server_ring(t, p, i), v.last_change);
			ADMIN_LIT(b, ",\"last_check\":");
			admin_json_str(b, v.last_check);
			ADMIN_LIT(b, "}");
		}
		ADMIN_LIT(b, "]}");
	}
	ADMIN_LIT(b, "]");
	admin_certs_json(cfg, b);
	ADMIN_LIT(b, "}\n");
}

/* The terminal table `onegate status` prints: states, then the last minute. */
static void admin_status_text(const struct admin *ad, struct evbuffer *b)
{
	const struct pool_table *t = ad->table;
	const struct rules_config *cfg = pool_table_config(t);
	char rps[16], err[16], p50[16], p99[16], in[24], out[24];
	struct stats_live l;
	evbuffer_add_printf(b, "onegate %s, rules %s, up %lld s; rates over the last minute\n\n", ONEGATE_VERSION,
	                    cfg->path, (long long)(time(NULL) - ad->started));
	evbuffer_add_printf(b, "%-24s %-12s %-9s %6s %8s %6s %9s %9s %11s %11s  %s\n", "SERVICE", "MODE", "STATE", "OPEN",
	                    "REQ/S", "ERR", "P50", "P99", "IN", "OUT", "LISTEN");
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		stats_ring_live(pool_service_ring(t, s), STATS_WINDOW_S, &l);
		admin_fmt_rate(rps, sizeof(rps), l.rps);
		admin_fmt_errors(err, sizeof(err), &l);
		admin_fmt_ms(p50, sizeof(p50), l.p50_ms);
		admin_fmt_ms(p99, sizeof(p99), l.p99_ms);
		admin_fmt_bytes(in, sizeof(in), l.in_bps);
		admin_fmt_bytes(out, sizeof(out), l.out_bps);
		evbuffer_add_printf(b, "%-24s %-12s %-9s %6u %8s %6s %9s %9s %11s %11s ", svc->name, admin_mode(svc->mode),
		                    admin_service_state(t, svc), l.open, rps, err, p50, p99, in, out);
		for (size_t a = 0; a < svc->nlisten; a++)
			evbuffer_add_printf(b, " %s", svc->listen[a].text);
		ADMIN_LIT(b, "\n");
	}
	evbuffer_add_printf(b, "\n%-20s %-28s %-10s %6s %9s %7s %8s %6s %9s  %s\n", "POOL", "SERVER", "STATE", "ACTIVE",
	                    "REQUESTS", "ERRORS", "REQ/S", "ERR", "P99", "LAST CHECK");
	for (size_t p = 0; p < cfg->npools; p++) {
		const struct rules_pool *rp = &cfg->pools[p];
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			stats_ring_live(pool_server_ring(t, p, i), STATS_WINDOW_S, &l);
			admin_fmt_rate(rps, sizeof(rps), l.rps);
			admin_fmt_errors(err, sizeof(err), &l);
			admin_fmt_ms(p99, sizeof(p99), l.p99_ms);
			evbuffer_add_printf(b, "%-20s %-28s %-10s %6u %9llu %7llu %8s %6s %9s  %s\n", rp->name,
			                    rp->servers[i].name, v.state, v.active, (unsigned long long)v.requests,
			                    (unsigned long long)v.errors, rps, err, p99, v.last_check[0] ? v.last_check : "-");
		}
	}
	admin_certs_text(cfg, b);
}

/* Prometheus label values: backslash, double quote and newline escaped. */
static void admin_label(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			ADMIN_LIT(b, "\\n");
		else
			evbuffer_add(b, s, 1);
	}
}

static void admin_metric(struct evbuffer *b, const char *name, const char *pool, const char *server,
                         unsigned long long v)
{
	evbuffer_add_printf(b, "%s{pool=\"", name);
	admin_label(b, pool);
	ADMIN_LIT(b, "\",server=\"");
	admin_label(b, server);
	evbuffer_add_printf(b, "\"} %llu\n", v);
}

static void admin_metrics(const struct admin *ad, struct evbuffer *b)
{
	const struct pool_table *t = ad->table;
	const struct rules_config *cfg = pool_table_config(t);
	static const struct {
		const char *name, *type, *help;
	} m[] = {
		{ "onegate_server_up", "gauge", "1 when the server may take new work (up or unchecked, enabled)" },
		{ "onegate_server_active_connections", "gauge", "connections or requests the server is serving now" },
		{ "onegate_server_connections_total", "counter", "back-end connections and requests sent to the server" },
		{ "onegate_server_requests_total", "counter", "HTTP requests the server answered" },
		{ "onegate_server_errors_total", "counter", "HTTP answers with a 5xx status" },
		{ "onegate_server_failures_total", "counter", "connects that failed and exchanges the server broke off" },
		{ "onegate_server_retries_total", "counter",
		  "requests (passthrough: connects) the server failed that were tried again, on another server or, "
		  "for a kept connection found closed, on a new one" },
	};
	evbuffer_add_printf(b, "# HELP onegate_info onegate version\n# TYPE onegate_info gauge\n"
	                       "onegate_info{version=\"%s\"} 1\n", ONEGATE_VERSION);
	evbuffer_add_printf(b, "# HELP onegate_uptime_seconds seconds since start\n# TYPE onegate_uptime_seconds gauge\n"
	                       "onegate_uptime_seconds %lld\n", (long long)(time(NULL) - ad->started));
	enum { NFAM = sizeof(m) / sizeof(m[0]) };
	/* One look at each server; its samples go to their families, which are written in turn. */
	struct evbuffer *fam[NFAM];
	for (size_t k = 0; k < NFAM; k++)
		fam[k] = evbuffer_new();
	for (size_t p = 0; p < cfg->npools; p++) {
		const struct rules_pool *rp = &cfg->pools[p];
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			unsigned long long val[NFAM] = {
				strcmp(v.state, "up") == 0 || strcmp(v.state, "unchecked") == 0, v.active, v.connections,
				v.requests, v.errors, v.failures, v.retries,
			};
			for (size_t k = 0; k < NFAM; k++)
				if (fam[k])
					admin_metric(fam[k], m[k].name, rp->name, rp->servers[i].name, val[k]);
		}
	}
	for (size_t k = 0; k < NFAM; k++) {
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name, m[k].type);
		if (fam[k]) {
			evbuffer_add_buffer(b, fam[k]);
			evbuffer_free(fam[k]);
		}
	}
	ADMIN_LIT(b, "# HELP onegate_pool_request_duration_seconds HTTP requests routed to the pool, from their first "
	             "byte to their answer's last\n# TYPE onegate_pool_request_duration_seconds histogram\n");
	for (size_t p = 0; p < cfg->npools; p++) {
		uint64_t buckets[STATS_NBUCKETS], sum_us, count, cum = 0;
		pool_latency_histogram(t, p, buckets, &sum_us, &count);
		for (size_t i = 0; i < STATS_NBUCKETS; i++) {
			cum += buckets[i];
			ADMIN_LIT(b, "onegate_pool_request_duration_seconds_bucket{pool=\"");
			admin_label(b, cfg->pools[p].name);
			if (i == STATS_NBUCKETS - 1)
				evbuffer_add_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
			else
				evbuffer_add_printf(b, "\",le=\"%g\"} %llu\n", (double)stats_bucket_us[i] / 1e6,
				                    (unsigned long long)cum);
		}
		ADMIN_LIT(b, "onegate_pool_request_duration_seconds_sum{pool=\"");
		admin_label(b, cfg->pools[p].name);
		evbuffer_add_printf(b, "\"} %.6f\n", (double)sum_us / 1e6);
		ADMIN_LIT(b, "onegate_pool_request_duration_seconds_count{pool=\"");
		admin_label(b, cfg->pools[p].name);
		evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)count);
	}
	admin_certs_metrics(cfg, b);
}

/* ---------------------------------------------------------------- the page */

static void admin_html(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': ADMIN_LIT(b, "&lt;"); break;
		case '>': ADMIN_LIT(b, "&gt;"); break;
		case '&': ADMIN_LIT(b, "&amp;"); break;
		case '"': ADMIN_LIT(b, "&quot;"); break;
		default: evbuffer_add(b, s, 1);
		}
	}
}

static const char *admin_color(const char *state)
{
	if (strcmp(state, "up") == 0)
		return "up";
	if (strcmp(state, "down") == 0)
		return "down";
	return "warn";      /* degraded, draining, disabled, unchecked */
}

/* The last 10 minutes as a small inline chart, drawn here: no script, no outside asset.
 * Requests per second as a filled blue line, errors per second in red, on one scale. */
static void admin_chart(struct evbuffer *b, const struct stats_ring *r)
{
	enum { W = 150, H = 32 };
	double rps[ADMIN_CHART_POINTS], eps[ADMIN_CHART_POINTS], peak = 0;
	stats_ring_series(r, ADMIN_CHART_STEP_S, ADMIN_CHART_POINTS, rps, eps);
	size_t first = ADMIN_CHART_POINTS;
	for (size_t i = 0; i < ADMIN_CHART_POINTS; i++) {
		if (rps[i] < 0)
			continue;
		if (first == ADMIN_CHART_POINTS)
			first = i;
		if (rps[i] > peak)
			peak = rps[i];
	}
	char top[16];
	admin_fmt_rate(top, sizeof(top), peak);
	evbuffer_add_printf(b, "<svg class=chart width=%d height=%d viewBox=\"0 0 %d %d\" role=img>"
	                       "<title>requests per second (red: errors) in %d s steps over the last %d minutes; "
	                       "peak %s/s</title><rect width=%d height=%d fill=\"#f4f6f8\"/>",
	                    W, H, W, H, ADMIN_CHART_STEP_S, STATS_RING_S / 60, top, W, H);
	if (first == ADMIN_CHART_POINTS) {
		ADMIN_LIT(b, "</svg>");
		return;
	}
	double scale = peak > 0 ? (H - 3) / peak : 0, step = (double)W / (ADMIN_CHART_POINTS - 1);
	evbuffer_add_printf(b, "<polygon fill=\"#bbdefb\" points=\"%.1f,%d", first * step, H);
	for (size_t i = first; i < ADMIN_CHART_POINTS; i++)
		evbuffer_add_printf(b, " %.1f,%.1f", i * step, H - rps[i] * scale);
	evbuffer_add_printf(b, " %d,%d\"/><polyline fill=none stroke=\"#1565c0\" stroke-width=1.5 points=\"", W, H);
	for (size_t i = first; i < ADMIN_CHART_POINTS; i++)
		evbuffer_add_printf(b, "%s%.1f,%.1f", i > first ? " " : "", i * step, H - 1 - rps[i] * scale);
	ADMIN_LIT(b, "\"/>");
	bool errors = false;
	for (size_t i = first; i < ADMIN_CHART_POINTS; i++)
		errors = errors || eps[i] > 0;
	if (errors) {
		ADMIN_LIT(b, "<polyline fill=none stroke=\"#c62828\" stroke-width=1.5 points=\"");
		for (size_t i = first; i < ADMIN_CHART_POINTS; i++)
			evbuffer_add_printf(b, "%s%.1f,%.1f", i > first ? " " : "", i * step, H - 1 - eps[i] * scale);
		ADMIN_LIT(b, "\"/>");
	}
	evbuffer_add_printf(b, "<text x=2 y=9 font-size=8 fill=\"#555\">%s/s</text></svg>", top);
}

/* The last minute's numbers, the chart and the last state change, as table cells. */
static void admin_live_cells(struct evbuffer *b, const struct stats_ring *r, int64_t changed)
{
	struct stats_live l;
	char rps[16], err[16], p50[16], p99[16], in[24], out[24], ago[32];
	stats_ring_live(r, STATS_WINDOW_S, &l);
	admin_fmt_rate(rps, sizeof(rps), l.rps);
	admin_fmt_errors(err, sizeof(err), &l);
	admin_fmt_ms(p50, sizeof(p50), l.p50_ms);
	admin_fmt_ms(p99, sizeof(p99), l.p99_ms);
	admin_fmt_bytes(in, sizeof(in), l.in_bps);
	admin_fmt_bytes(out, sizeof(out), l.out_bps);
	admin_fmt_ago(ago, sizeof(ago), changed);
	evbuffer_add_printf(b, "<td class=\"n rps\">%s</td><td class=\"n%s\">%s</td><td class=n>%s</td><td class=n>%s</td>"
	                       "<td class=n>%s</td><td class=n>%s</td><td class=n>%u</td><td>",
	                    rps, l.errors ? " bad" : "", err, p50, p99, in, out, l.open);
	admin_chart(b, r);
	ADMIN_LIT(b, "</td><td");
	if (changed) {
		char when[40];
		time_t tt = (time_t)changed;
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&tt, &tm));
		evbuffer_add_printf(b, " title=\"%s\"", when);
	}
	evbuffer_add_printf(b, ">%s</td>", ago);
}

#define ADMIN_LIVE_HEADS "<th class=n>req/s</th><th class=n>errors</th><th class=n>p50</th><th class=n>p99</th>" \
                         "<th class=n>in</th><th class=n>out</th><th class=n>open</th><th>last 10 min</th>" \
                         "<th>changed</th>"

static void admin_page(const struct admin *ad, struct evbuffer *b)
{
	const struct pool_table *t = ad->table;
	const struct rules_config *cfg = pool_table_config(t);
	evbuffer_add_printf(b,
	    "<!doctype html><html><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	    "<meta http-equiv=\"refresh\" content=\"5\"><title>onegate status</title><style>"
	    "body{font-family:system-ui,sans-serif;margin:1em;color:#222}"
	    "h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}"
	    "table{border-collapse:collapse;width:100%%;margin-bottom:1em}"
	    "th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid #ddd;font-size:.9em;white-space:nowrap}"
	    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.bad{color:#c62828;font-weight:bold}"
	    "tr.all td{background:#f4f6f8;font-weight:bold}svg.chart{display:block}"
	    ".st{font-weight:bold;border-radius:.3em;padding:.15em .5em;color:#fff}"
	    ".up{background:#2e7d32}.warn{background:#ef8f00}.down{background:#c62828}"
	    ".wrap{overflow-x:auto}small{color:#666}"
	    "</style></head><body><h1>onegate</h1><small>version %s &middot; rules ", ONEGATE_VERSION);
	admin_html(b, cfg->path);
	evbuffer_add_printf(b, " &middot; up %lld s &middot; numbers over the last minute, chart over the last 10 "
	                       "minutes &middot; refreshes every 5 s</small>",
	                    (long long)(time(NULL) - ad->started));
	ADMIN_LIT(b, "<h2>Services</h2><div class=wrap><table><tr><th>Service</th><th>State</th><th>Mode</th>"
	             ADMIN_LIVE_HEADS "<th>Listen</th><th>Routes</th></tr>");
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		const char *st = admin_service_state(t, svc);
		ADMIN_LIT(b, "<tr><td>");
		admin_html(b, svc->name);
		evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td><td>%s</td>", admin_color(st), st,
		                    admin_mode(svc->mode));
		admin_live_cells(b, pool_service_ring(t, s), admin_service_changed(t, svc));
		ADMIN_LIT(b, "<td>");
		for (size_t a = 0; a < svc->nlisten; a++) {
			admin_html(b, svc->listen[a].text);
			ADMIN_LIT(b, "<br>");
		}
		ADMIN_LIT(b, "</td><td>");
		for (size_t r = 0; r < svc->nroutes; r++) {
			char match[600], action[300];
			admin_route_text(cfg, svc, r, match, sizeof(match), action, sizeof(action));
			admin_html(b, match);
			ADMIN_LIT(b, " &rarr; ");
			admin_html(b, action);
			ADMIN_LIT(b, "<br>");
		}
		ADMIN_LIT(b, "</td></tr>");
	}
	ADMIN_LIT(b, "</table></div><h2>Pools and real servers</h2>");
	for (size_t p = 0; p < cfg->npools; p++) {
		const struct rules_pool *rp = &cfg->pools[p];
		size_t up;
		const char *st = admin_pool_state(t, p, &up);
		unsigned long long reqs = 0, errs = 0, fails = 0;
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			reqs += v.requests;
			errs += v.errors;
			fails += v.failures;
		}
		ADMIN_LIT(b, "<div class=wrap><table><tr><th colspan=15>");
		admin_html(b, rp->name);
		evbuffer_add_printf(b, " <span class=\"st %s\">%s</span> <small>%zu of %zu up &middot; %s &middot; check %s"
		                       "</small></th></tr><tr><th>Server</th><th>State</th>" ADMIN_LIVE_HEADS
		                       "<th class=n>Requests</th><th class=n>Errors</th><th class=n>Failures</th>"
		                       "<th>Last check</th></tr><tr class=all><td>all servers</td><td></td>",
		                    admin_color(st), st, up, rp->nservers, admin_balance(rp->balance),
		                    admin_check_type(rp->health.type));
		admin_live_cells(b, pool_ring(t, p), admin_pool_changed(t, p));
		evbuffer_add_printf(b, "<td class=n>%llu</td><td class=n>%llu</td><td class=n>%llu</td><td></td></tr>", reqs,
		                    errs, fails);
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			ADMIN_LIT(b, "<tr><td>");
			admin_html(b, rp->servers[i].name);
			if (rp->servers[i].backup)
				ADMIN_LIT(b, " <small>backup</small>");
			evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td>", admin_color(v.state), v.state);
			admin_live_cells(b, pool_server_ring(t, p, i), v.last_change);
			evbuffer_add_printf(b, "<td class=n>%llu</td><td class=n>%llu</td><td class=n>%llu</td><td>",
			                    (unsigned long long)v.requests, (unsigned long long)v.errors,
			                    (unsigned long long)v.failures);
			admin_html(b, v.last_check[0] ? v.last_check : "-");
			ADMIN_LIT(b, "</td></tr>");
		}
		ADMIN_LIT(b, "</table></div>");
	}
	admin_certs_page(cfg, b);
	ADMIN_LIT(b, "</body></html>\n");
}

/* ---------------------------------------------------------------- requests */

static void admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                        struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, reason, body);
}

static void admin_reply_text(struct evhttp_request *req, int code, const char *reason, const char *json)
{
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, json, strlen(json));
	admin_reply(req, code, reason, "application/json", b);
	if (b)
		evbuffer_free(b);
}

static void admin_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	char json[300];
	snprintf(json, sizeof(json), "{\"error\":\"%s\"}\n", msg);
	admin_reply_text(req, code, reason, json);
}

/* The command line asks for lines to print; browsers and scripts get JSON. */
static bool admin_wants_text(struct evhttp_request *req)
{
	const char *acc = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	return acc && strncasecmp(acc, "text/plain", 10) == 0;
}

static void admin_reply_lines(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, text, strlen(text));
	admin_reply(req, code, reason, "text/plain; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

static void admin_fail(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	if (admin_wants_text(req)) {
		char line[300];
		snprintf(line, sizeof(line), "%s\n", msg);
		admin_reply_lines(req, code, reason, line);
	} else {
		admin_error(req, code, reason, msg);
	}
}

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
static void admin_action(struct admin *ad, struct evhttp_request *req, const char *path)
{
	char *dec = evhttp_uridecode(path, 0, NULL);
	char pool[256], server[256], action[32];
	int n = -1;
	if (dec && sscanf(dec, "/api/pools/%255[^/]/servers/%255[^/]/%31[a-z]%n", pool, server, action, &n) == 3 &&
	    dec[n] == '\0') {
		const struct rules_config *cfg = pool_table_config(ad->table);
		long p = rules_pool_find(cfg, pool);
		long s = p >= 0 ? pool_server_find(ad->table, (size_t)p, server) : -1;
		int a = strcmp(action, "enable") == 0 ? POOL_ADMIN_ENABLED : strcmp(action, "drain") == 0 ? POOL_ADMIN_DRAINING
		        : strcmp(action, "disable") == 0 ? POOL_ADMIN_DISABLED : -1;
		if (p < 0 || s < 0)
			admin_fail(req, 404, "Not Found", "no such pool or server");
		else if (a < 0)
			admin_fail(req, 400, "Bad Request", "the action is drain, enable or disable");
		else {
			struct pool_server_view v;
			pool_server_view(ad->table, (size_t)p, (size_t)s, &v);
			const char *before = v.state;
			pool_server_set_admin(ad->table, (size_t)p, (size_t)s, (enum pool_admin)a);
			if (cfg->state_dir)
				state_servers_save(ad->table, cfg->state_dir);
			pool_server_view(ad->table, (size_t)p, (size_t)s, &v);
			if (admin_wants_text(req)) {
				char text[800];
				admin_action_text(text, sizeof(text), pool, server, before, &v);
				admin_reply_lines(req, 200, "OK", text);
			} else {
				struct evbuffer *b = evbuffer_new();
				if (b) {
					ADMIN_LIT(b, "{\"pool\":");
					admin_json_str(b, pool);
					ADMIN_LIT(b, ",\"server\":");
					admin_json_str(b, server);
					evbuffer_add_printf(b, ",\"before\":\"%s\",\"state\":\"%s\",\"active\":%u}\n", before, v.state,
					                    v.active);
				}
				admin_reply(req, 200, "OK", "application/json", b);
				if (b)
					evbuffer_free(b);
			}
		}
	} else {
		admin_fail(req, 404, "Not Found", "POST /api/pools/POOL/servers/SERVER/drain|enable|disable");
	}
	free(dec);
}

/* ---------------------------------------------------------------- reloads */

static void admin_wait_remove(struct admin_wait *w)
{
	for (struct admin_wait **pp = &w->ad->waits; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->timer)
		event_free(w->timer);
	free(w);
}

/* Answers a waiting reload request and forgets it. */
static void admin_wait_answer(struct admin_wait *w, int code, const char *reason, bool applied, const char *text)
{
	struct evhttp_request *req = w->req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
	if (w->text) {
		admin_reply_lines(req, code, reason, text);
	} else {
		struct evbuffer *b = evbuffer_new();
		if (b) {
			evbuffer_add_printf(b, "{\"reload\":\"%s\",\"messages\":[",
			                    code == 504 || code == 503 ? "unknown" : applied ? "applied" : "refused");
			/* One string per line of the text: the verdict first, then FILE:LINE messages. */
			const char *p = text;
			for (bool first = true; *p; first = false) {
				size_t n = strcspn(p, "\n");
				char *line = strndup(p, n);
				evbuffer_add(b, first ? "" : ",", first ? 0 : 1);
				admin_json_str(b, line ? line : "");
				free(line);
				p += n + (p[n] == '\n');
			}
			ADMIN_LIT(b, "]}\n");
		}
		admin_reply(req, code, reason, "application/json", b);
		if (b)
			evbuffer_free(b);
	}
	admin_wait_remove(w);
}

static void admin_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	char text[200];
	snprintf(text, sizeof(text), "no outcome within %d s: the reload may still be under way; the log will say\n",
	         ADMIN_RELOAD_WAIT_S);
	admin_wait_answer(arg, 504, "Gateway Timeout", false, text);
}

/* The client went away: libevent frees its request. */
static void admin_wait_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	admin_wait_remove(arg);
}

static void admin_reload(struct admin *ad, struct evhttp_request *req)
{
	struct admin_wait *w = calloc(1, sizeof(*w));
	struct timeval tv = { ADMIN_RELOAD_WAIT_S, 0 };
	if (!w || !(w->timer = evtimer_new(ad->base, admin_wait_timeout, w)) || evtimer_add(w->timer, &tv) != 0) {
		if (w && w->timer)
			event_free(w->timer);
		free(w);
		admin_fail(req, 503, "Service Unavailable", "out of memory");
		return;
	}
	w->ad = ad;
	w->req = req;
	w->text = admin_wants_text(req);
	w->want = ad->reloads_begun(ad->reloads_arg) + 1;
	w->next = ad->waits;
	ad->waits = w;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), admin_wait_closed, w);
	/* The daemon's main thread takes SIGHUP: the same reload, all or nothing, as an admin's kill -HUP. */
	kill(getpid(), SIGHUP);
}

void admin_reload_done(struct admin *ad, uint64_t seq, bool applied, const char *text)
{
	struct admin_wait *w = ad->waits;
	while (w) {
		struct admin_wait *next = w->next;
		if (w->want <= seq)
			admin_wait_answer(w, applied ? 200 : 409, applied ? "OK" : "Conflict", applied, text ? text : "");
		w = next;
	}
}

/* GET /api/health: 200 while this gateway should hold a floating address, 503
 * with the reason otherwise. */
static void admin_health(struct evhttp_request *req)
{
	char why[200];
	bool ok = live_check(live_now_ms(), why, sizeof(why));
	struct evbuffer *b = evbuffer_new();
	if (b) {
		evbuffer_add_printf(b, "{\"health\":\"%s\",\"reason\":", ok ? "ok" : "fail");
		admin_json_str(b, why);
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
		admin_error(req, 401, "Unauthorized", "this admin listener needs its token");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && strcmp(path, "/api/reload") == 0) {
		admin_reload(ad, req);
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
		admin_action(ad, req, path);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		admin_error(req, 405, "Method Not Allowed", "GET or POST");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	if (strcmp(path, "/api/reload") == 0) {
		admin_error(req, 405, "Method Not Allowed", "POST /api/reload");
		evbuffer_free(b);
		return;
	}
	if (strcmp(path, "/") == 0) {
		admin_page(ad, b);
		admin_reply(req, 200, "OK", "text/html; charset=utf-8", b);
	} else if (strcmp(path, "/api/status") == 0) {
		admin_status_json(ad, b);
		admin_reply(req, 200, "OK", "application/json", b);
	} else if (strcmp(path, "/api/status.txt") == 0) {
		admin_status_text(ad, b);
		admin_reply(req, 200, "OK", "text/plain; charset=utf-8", b);
	} else if (strcmp(path, "/metrics") == 0) {
		admin_metrics(ad, b);
		admin_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	} else {
		admin_error(req, 404, "Not Found", "try /, /api/status, /api/status.txt, /api/health or /metrics");
	}
	evbuffer_free(b);
}

/* ---------------------------------------------------------------- lifetime */

struct admin *admin_new(struct event_base *base, int fd, admin_reloads_fn reloads_begun, void *arg)
{
	struct admin *ad = calloc(1, sizeof(*ad));
	if (!ad) {
		close(fd);
		return NULL;
	}
	ad->base = base;
	ad->started = time(NULL);
	ad->reloads_begun = reloads_begun;
	ad->reloads_arg = arg;
	ad->http = evhttp_new(base);
	if (!ad->http || admin_rebind(ad, fd) != 0) {
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
	while (ad->waits)
		admin_wait_answer(ad->waits, 503, "Service Unavailable", false,
		                  "the admin listener closed before the reload ended; the log will say\n");
	if (ad->http)
		evhttp_free(ad->http);
	pool_table_unref(ad->table);
	free(ad);
}

/* ---------------------------------------------------------------- command line client */

static int admin_client_send(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int admin_client(const struct rules_admin *a, const char *method, const char *path, FILE *out, char *err,
                 size_t errlen)
{
	char token[ADMIN_TOKEN_MAX] = "", req[1024];
	if (!a->on) {
		snprintf(err, errlen, "the rule file has no admin listener; add onegate = { admin = { listen = \"127.0.0.1:8404\"; }; };");
		return -1;
	}
	if (a->token_file && admin_token_read(a->token_file, token, sizeof(token), err, errlen) != 0)
		return -1;
	int fd = socket(a->listen.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Longer than a reload's wait on the other side, which then answers on its own. */
	struct timeval tv = { ADMIN_RELOAD_WAIT_S + 5, 0 };
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (const struct sockaddr *)&a->listen.ss, a->listen.len) != 0) {
		snprintf(err, errlen, "cannot reach the admin listener on %s: %s (is onegate running with this rule file?)",
		         a->listen.text, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int n = snprintf(req, sizeof(req),
	                 "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain, application/json;q=0.5\r\n%s%s%s"
	                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
	                 method, path, a->listen.text, token[0] ? "Authorization: Bearer " : "", token, token[0] ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req) || admin_client_send(fd, req, (size_t)n) != 0) {
		snprintf(err, errlen, "cannot send to the admin listener on %s: %s", a->listen.text, strerror(errno));
		close(fd);
		return -1;
	}
	struct evbuffer *in = evbuffer_new();
	int status = -1;
	while (in) {
		int r = evbuffer_read(in, fd, 65536);
		if (r <= 0)
			break;
	}
	close(fd);
	/* Terminated, so the head can be searched as a string. */
	if (in && evbuffer_add(in, "", 1) != 0) {
		evbuffer_free(in);
		in = NULL;
	}
	size_t len = in ? evbuffer_get_length(in) - 1 : 0;
	const char *all = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
	const char *body = all ? strstr(all, "\r\n\r\n") : NULL;
	if (!body || sscanf(all, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, "the admin listener on %s gave no answer", a->listen.text);
		status = -1;
	} else {
		body += 4;
		fwrite(body, 1, len - (size_t)(body - all), out);
	}
	if (in)
		evbuffer_free(in);
	return status;
}
