#include "control/admin_status.h"

#include <stdio.h>

#include <event2/buffer.h>

#include "control/admin_reply.h"
#include "control/admin_view.h"
#include "proxy/pool.h"
#include "proxy/stats.h"

/* "live": the last minute's numbers and the 10 minutes' series. */
static void admin_status_live_json(struct evbuffer *b, const struct stats_ring *r, int64_t last_change)
{
	struct stats_live l;
	stats_ring_live(r, STATS_WINDOW_S, &l);
	evbuffer_add_printf(b, ",\"last_change\":%lld,\"live\":{\"window_s\":%.1f,\"rps\":%.6g,\"in_bps\":%.6g,"
	                       "\"out_bps\":%.6g,\"error_rate\":%.6g,\"p50_ms\":",
	                    (long long)last_change, l.span_s, l.rps, l.in_bps, l.out_bps, l.error_rate);
	admin_reply_json_num(b, l.p50_ms);
	ADMIN_LIT(b, ",\"p99_ms\":");
	admin_reply_json_num(b, l.p99_ms);
	double rps[ADMIN_VIEW_CHART_POINTS], eps[ADMIN_VIEW_CHART_POINTS];
	stats_ring_series(r, ADMIN_VIEW_CHART_STEP_S, ADMIN_VIEW_CHART_POINTS, rps, eps);
	evbuffer_add_printf(b, ",\"open\":%u,\"history\":{\"step_s\":%d,\"rps\":[", l.open, ADMIN_VIEW_CHART_STEP_S);
	for (size_t i = 0; i < ADMIN_VIEW_CHART_POINTS; i++) {
		evbuffer_add(b, ",", i ? 1 : 0);
		admin_reply_json_num(b, rps[i]);
	}
	ADMIN_LIT(b, "],\"errors\":[");
	for (size_t i = 0; i < ADMIN_VIEW_CHART_POINTS; i++) {
		evbuffer_add(b, ",", i ? 1 : 0);
		admin_reply_json_num(b, eps[i]);
	}
	ADMIN_LIT(b, "]}}");
}

/* ,"certificates":[{name, source, names, not_after, expires_in_s, acme: {...}}] */
static void admin_status_certs_json(const struct rules_config *cfg, struct evbuffer *b)
{
	time_t now = time(NULL);
	ADMIN_LIT(b, ",\"certificates\":[");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_view_cert c;
		admin_view_cert_get(rc, &c);
		evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
		admin_reply_json_str(b, rc->name);
		evbuffer_add_printf(b, ",\"source\":\"%s\",\"names\":[", rc->acme ? "acme" : "file");
		for (size_t n = 0; n < admin_view_cert_nnames(rc); n++) {
			evbuffer_add(b, n ? "," : "", n ? 1 : 0);
			admin_reply_json_str(b, admin_view_cert_name_at(rc, n));
		}
		if (c.not_after)
			evbuffer_add_printf(b, "],\"not_after\":%lld,\"expires_in_s\":%lld", (long long)c.not_after,
			                    (long long)(c.not_after - now));
		else
			ADMIN_LIT(b, "],\"not_after\":null,\"expires_in_s\":null");
		if (rc->acme) {
			evbuffer_add_printf(b, ",\"acme\":{\"issued\":%s,\"next_renewal\":%lld,\"failures\":%u,\"last_error\":",
			                    c.v.issued ? "true" : "false", (long long)c.v.next_attempt, c.v.failures);
			admin_reply_json_str(b, c.v.last_error);
			ADMIN_LIT(b, "}");
		}
		ADMIN_LIT(b, "}");
	}
	ADMIN_LIT(b, "]");
}

static void admin_status_certs_text(const struct rules_config *cfg, struct evbuffer *b)
{
	if (!cfg->ncerts)
		return;
	evbuffer_add_printf(b, "\n%-20s %-6s %-22s %-22s %s\n", "CERTIFICATE", "SOURCE", "EXPIRES", "NEXT RENEWAL",
	                    "NAMES / LAST ERROR");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_view_cert c;
		admin_view_cert_get(rc, &c);
		char exp[32], next[32];
		admin_view_time(c.not_after, exp, sizeof(exp));
		admin_view_time(rc->acme ? c.v.next_attempt : 0, next, sizeof(next));
		evbuffer_add_printf(b, "%-20s %-6s %-22s %-22s", rc->name, rc->acme ? "acme" : "file",
		                    rc->acme && !c.v.issued ? "(not issued yet)" : exp, next);
		for (size_t n = 0; n < admin_view_cert_nnames(rc); n++)
			evbuffer_add_printf(b, " %s", admin_view_cert_name_at(rc, n));
		if (rc->acme && c.v.last_error[0])
			evbuffer_add_printf(b, "\n%-20s last error: %s", "", c.v.last_error);
		ADMIN_LIT(b, "\n");
	}
}

void admin_status_json(const struct pool_table *t, time_t started, struct evbuffer *b)
{
	const struct rules_config *cfg = pool_table_config(t);
	evbuffer_add_printf(b, "{\"version\":\"%s\",\"rules\":", ONEGATE_VERSION);
	admin_reply_json_str(b, cfg->path);
	evbuffer_add_printf(b, ",\"uptime_s\":%lld,\"services\":[", (long long)(time(NULL) - started));
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		evbuffer_add_printf(b, "%s{\"name\":", s ? "," : "");
		admin_reply_json_str(b, svc->name);
		evbuffer_add_printf(b, ",\"mode\":\"%s\",\"state\":\"%s\"", admin_view_mode(svc->mode),
		                    admin_view_service_state(t, svc));
		admin_status_live_json(b, pool_service_ring(t, s), admin_view_service_changed(t, svc));
		ADMIN_LIT(b, ",\"listen\":[");
		for (size_t a = 0; a < svc->nlisten; a++) {
			evbuffer_add(b, a ? "," : "", a ? 1 : 0);
			admin_reply_json_str(b, svc->listen[a].text);
		}
		ADMIN_LIT(b, "],\"routes\":[");
		for (size_t r = 0; r < svc->nroutes; r++) {
			char match[600], action[300];
			admin_view_route_text(cfg, svc, r, match, sizeof(match), action, sizeof(action));
			evbuffer_add_printf(b, "%s{\"line\":%d,\"match\":", r ? "," : "", svc->routes[r].line);
			admin_reply_json_str(b, match);
			ADMIN_LIT(b, ",\"action\":");
			admin_reply_json_str(b, action);
			ADMIN_LIT(b, ",\"pool\":");
			if (svc->routes[r].pool >= 0)
				admin_reply_json_str(b, cfg->pools[svc->routes[r].pool].name);
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
		const char *st = admin_view_pool_state(t, p, &up);
		evbuffer_add_printf(b, "%s{\"name\":", p ? "," : "");
		admin_reply_json_str(b, rp->name);
		evbuffer_add_printf(b, ",\"state\":\"%s\",\"servers_up\":%zu,\"balance\":\"%s\",\"check\":\"%s\"",
		                    st, up, admin_view_balance(rp->balance), admin_view_check_type(rp->health.type));
		admin_status_live_json(b, pool_ring(t, p), admin_view_pool_changed(t, p));
		ADMIN_LIT(b, ",\"servers\":[");
		for (size_t i = 0; i < rp->nservers; i++) {
			const struct rules_server *sv = &rp->servers[i];
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
			admin_reply_json_str(b, sv->name);
			ADMIN_LIT(b, ",\"address\":");
			admin_reply_json_str(b, sv->addr.text);
			evbuffer_add_printf(b,
			                    ",\"state\":\"%s\",\"weight\":%u,\"backup\":%s,\"active\":%u,\"connections\":%llu,"
			                    "\"requests\":%llu,\"errors\":%llu,\"failures\":%llu,\"retries\":%llu",
			                    v.state, sv->weight, sv->backup ? "true" : "false", v.active,
			                    (unsigned long long)v.connections, (unsigned long long)v.requests,
			                    (unsigned long long)v.errors, (unsigned long long)v.failures,
			                    (unsigned long long)v.retries);
			admin_status_live_json(b, pool_server_ring(t, p, i), v.last_change);
			ADMIN_LIT(b, ",\"last_check\":");
			admin_reply_json_str(b, v.last_check);
			ADMIN_LIT(b, "}");
		}
		ADMIN_LIT(b, "]}");
	}
	ADMIN_LIT(b, "]");
	admin_status_certs_json(cfg, b);
	ADMIN_LIT(b, "}\n");
}

/* The terminal table `onegate status` prints: states, then the last minute. */
void admin_status_text(const struct pool_table *t, time_t started, struct evbuffer *b)
{
	const struct rules_config *cfg = pool_table_config(t);
	char rps[16], err[16], p50[16], p99[16], in[24], out[24];
	struct stats_live l;
	evbuffer_add_printf(b, "onegate %s, rules %s, up %lld s; rates over the last minute\n\n", ONEGATE_VERSION,
	                    cfg->path, (long long)(time(NULL) - started));
	evbuffer_add_printf(b, "%-24s %-12s %-9s %6s %8s %6s %9s %9s %11s %11s  %s\n", "SERVICE", "MODE", "STATE", "OPEN",
	                    "REQ/S", "ERR", "P50", "P99", "IN", "OUT", "LISTEN");
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		stats_ring_live(pool_service_ring(t, s), STATS_WINDOW_S, &l);
		admin_view_rate(rps, sizeof(rps), l.rps);
		admin_view_errors(err, sizeof(err), &l);
		admin_view_ms(p50, sizeof(p50), l.p50_ms);
		admin_view_ms(p99, sizeof(p99), l.p99_ms);
		admin_view_bytes(in, sizeof(in), l.in_bps);
		admin_view_bytes(out, sizeof(out), l.out_bps);
		evbuffer_add_printf(b, "%-24s %-12s %-9s %6u %8s %6s %9s %9s %11s %11s ", svc->name, admin_view_mode(svc->mode),
		                    admin_view_service_state(t, svc), l.open, rps, err, p50, p99, in, out);
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
			admin_view_rate(rps, sizeof(rps), l.rps);
			admin_view_errors(err, sizeof(err), &l);
			admin_view_ms(p99, sizeof(p99), l.p99_ms);
			evbuffer_add_printf(b, "%-20s %-28s %-10s %6u %9llu %7llu %8s %6s %9s  %s\n", rp->name,
			                    rp->servers[i].name, v.state, v.active, (unsigned long long)v.requests,
			                    (unsigned long long)v.errors, rps, err, p99, v.last_check[0] ? v.last_check : "-");
		}
	}
	admin_status_certs_text(cfg, b);
}
