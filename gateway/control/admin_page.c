#include "control/admin_page.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "control/admin_reply.h"
#include "control/admin_view.h"
#include "proxy/pool.h"
#include "proxy/stats.h"

static void admin_page_html(struct evbuffer *b, const char *s)
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

static const char *admin_page_color(const char *state)
{
	if (strcmp(state, "up") == 0)
		return "up";
	if (strcmp(state, "down") == 0)
		return "down";
	return "warn";      /* degraded, draining, disabled, unchecked */
}

/* The last 10 minutes as a small inline chart, drawn here: no script, no outside asset.
 * Requests per second as a filled blue line, errors per second in red, on one scale. */
static void admin_page_chart(struct evbuffer *b, const struct stats_ring *r)
{
	enum { W = 150, H = 32 };
	double rps[ADMIN_VIEW_CHART_POINTS], eps[ADMIN_VIEW_CHART_POINTS], peak = 0;
	stats_ring_series(r, ADMIN_VIEW_CHART_STEP_S, ADMIN_VIEW_CHART_POINTS, rps, eps);
	size_t first = ADMIN_VIEW_CHART_POINTS;
	for (size_t i = 0; i < ADMIN_VIEW_CHART_POINTS; i++) {
		if (rps[i] < 0)
			continue;
		if (first == ADMIN_VIEW_CHART_POINTS)
			first = i;
		if (rps[i] > peak)
			peak = rps[i];
	}
	char top[16];
	admin_view_rate(top, sizeof(top), peak);
	evbuffer_add_printf(b, "<svg class=chart width=%d height=%d viewBox=\"0 0 %d %d\" role=img>"
	                       "<title>requests per second (red: errors) in %d s steps over the last %d minutes; "
	                       "peak %s/s</title><rect width=%d height=%d fill=\"#f4f6f8\"/>",
	                    W, H, W, H, ADMIN_VIEW_CHART_STEP_S, STATS_RING_S / 60, top, W, H);
	if (first == ADMIN_VIEW_CHART_POINTS) {
		ADMIN_LIT(b, "</svg>");
		return;
	}
	double scale = peak > 0 ? (H - 3) / peak : 0, step = (double)W / (ADMIN_VIEW_CHART_POINTS - 1);
	evbuffer_add_printf(b, "<polygon fill=\"#bbdefb\" points=\"%.1f,%d", first * step, H);
	for (size_t i = first; i < ADMIN_VIEW_CHART_POINTS; i++)
		evbuffer_add_printf(b, " %.1f,%.1f", i * step, H - rps[i] * scale);
	evbuffer_add_printf(b, " %d,%d\"/><polyline fill=none stroke=\"#1565c0\" stroke-width=1.5 points=\"", W, H);
	for (size_t i = first; i < ADMIN_VIEW_CHART_POINTS; i++)
		evbuffer_add_printf(b, "%s%.1f,%.1f", i > first ? " " : "", i * step, H - 1 - rps[i] * scale);
	ADMIN_LIT(b, "\"/>");
	bool errors = false;
	for (size_t i = first; i < ADMIN_VIEW_CHART_POINTS; i++)
		errors = errors || eps[i] > 0;
	if (errors) {
		ADMIN_LIT(b, "<polyline fill=none stroke=\"#c62828\" stroke-width=1.5 points=\"");
		for (size_t i = first; i < ADMIN_VIEW_CHART_POINTS; i++)
			evbuffer_add_printf(b, "%s%.1f,%.1f", i > first ? " " : "", i * step, H - 1 - eps[i] * scale);
		ADMIN_LIT(b, "\"/>");
	}
	evbuffer_add_printf(b, "<text x=2 y=9 font-size=8 fill=\"#555\">%s/s</text></svg>", top);
}

/* The last minute's numbers, the chart and the last state change, as table cells. */
static void admin_page_live_cells(struct evbuffer *b, const struct stats_ring *r, int64_t changed)
{
	struct stats_live l;
	char rps[16], err[16], p50[16], p99[16], in[24], out[24], ago[32];
	stats_ring_live(r, STATS_WINDOW_S, &l);
	admin_view_rate(rps, sizeof(rps), l.rps);
	admin_view_errors(err, sizeof(err), &l);
	admin_view_ms(p50, sizeof(p50), l.p50_ms);
	admin_view_ms(p99, sizeof(p99), l.p99_ms);
	admin_view_bytes(in, sizeof(in), l.in_bps);
	admin_view_bytes(out, sizeof(out), l.out_bps);
	admin_view_ago(ago, sizeof(ago), changed);
	evbuffer_add_printf(b, "<td class=\"n rps\">%s</td><td class=\"n%s\">%s</td><td class=n>%s</td><td class=n>%s</td>"
	                       "<td class=n>%s</td><td class=n>%s</td><td class=n>%u</td><td>",
	                    rps, l.errors ? " bad" : "", err, p50, p99, in, out, l.open);
	admin_page_chart(b, r);
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

static void admin_page_certs(const struct rules_config *cfg, struct evbuffer *b)
{
	if (!cfg->ncerts)
		return;
	time_t now = time(NULL);
	ADMIN_LIT(b, "<h2>Certificates</h2><div class=wrap><table><tr><th>Certificate</th><th>Source</th><th>Names</th>"
	             "<th>Expires</th><th>Next renewal</th><th>Last error</th></tr>");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		struct admin_view_cert c;
		admin_view_cert_get(rc, &c);
		char exp[32], next[32];
		admin_view_time(c.not_after, exp, sizeof(exp));
		admin_view_time(rc->acme ? c.v.next_attempt : 0, next, sizeof(next));
		const char *st = !c.not_after ? "warn" : c.not_after - now < 7 * 86400 ? "down"
		               : c.not_after - now < 30 * 86400 ? "warn" : "up";
		ADMIN_LIT(b, "<tr><td>");
		admin_page_html(b, rc->name);
		evbuffer_add_printf(b, "</td><td>%s</td><td>", rc->acme ? "ACME" : "file");
		for (size_t n = 0; n < admin_view_cert_nnames(rc); n++) {
			admin_page_html(b, admin_view_cert_name_at(rc, n));
			ADMIN_LIT(b, "<br>");
		}
		evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td><td>%s</td><td>", st,
		                    rc->acme && !c.v.issued ? "not issued yet" : exp, next);
		admin_page_html(b, rc->acme ? c.v.last_error : "");
		ADMIN_LIT(b, "</td></tr>");
	}
	ADMIN_LIT(b, "</table></div>");
}

#define ADMIN_PAGE_LIVE_HEADS "<th class=n>req/s</th><th class=n>errors</th><th class=n>p50</th><th class=n>p99</th>" \
                              "<th class=n>in</th><th class=n>out</th><th class=n>open</th><th>last 10 min</th>" \
                              "<th>changed</th>"

void admin_page(const struct pool_table *t, time_t started, struct evbuffer *b)
{
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
	admin_page_html(b, cfg->path);
	evbuffer_add_printf(b, " &middot; up %lld s &middot; numbers over the last minute, chart over the last 10 "
	                       "minutes &middot; refreshes every 5 s</small>",
	                    (long long)(time(NULL) - started));
	ADMIN_LIT(b, "<h2>Services</h2><div class=wrap><table><tr><th>Service</th><th>State</th><th>Mode</th>"
	             ADMIN_PAGE_LIVE_HEADS "<th>Listen</th><th>Routes</th></tr>");
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		const char *st = admin_view_service_state(t, svc);
		ADMIN_LIT(b, "<tr><td>");
		admin_page_html(b, svc->name);
		evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td><td>%s</td>", admin_page_color(st), st,
		                    admin_view_mode(svc->mode));
		admin_page_live_cells(b, pool_service_ring(t, s), admin_view_service_changed(t, svc));
		ADMIN_LIT(b, "<td>");
		for (size_t a = 0; a < svc->nlisten; a++) {
			admin_page_html(b, svc->listen[a].text);
			ADMIN_LIT(b, "<br>");
		}
		ADMIN_LIT(b, "</td><td>");
		for (size_t r = 0; r < svc->nroutes; r++) {
			char match[600], action[300];
			admin_view_route_text(cfg, svc, r, match, sizeof(match), action, sizeof(action));
			admin_page_html(b, match);
			ADMIN_LIT(b, " &rarr; ");
			admin_page_html(b, action);
			ADMIN_LIT(b, "<br>");
		}
		ADMIN_LIT(b, "</td></tr>");
	}
	ADMIN_LIT(b, "</table></div><h2>Pools and real servers</h2>");
	for (size_t p = 0; p < cfg->npools; p++) {
		const struct rules_pool *rp = &cfg->pools[p];
		size_t up;
		const char *st = admin_view_pool_state(t, p, &up);
		unsigned long long reqs = 0, errs = 0, fails = 0;
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			reqs += v.requests;
			errs += v.errors;
			fails += v.failures;
		}
		ADMIN_LIT(b, "<div class=wrap><table><tr><th colspan=15>");
		admin_page_html(b, rp->name);
		evbuffer_add_printf(b, " <span class=\"st %s\">%s</span> <small>%zu of %zu up &middot; %s &middot; check %s"
		                       "</small></th></tr><tr><th>Server</th><th>State</th>" ADMIN_PAGE_LIVE_HEADS
		                       "<th class=n>Requests</th><th class=n>Errors</th><th class=n>Failures</th>"
		                       "<th>Last check</th></tr><tr class=all><td>all servers</td><td></td>",
		                    admin_page_color(st), st, up, rp->nservers, admin_view_balance(rp->balance),
		                    admin_view_check_type(rp->health.type));
		admin_page_live_cells(b, pool_ring(t, p), admin_view_pool_changed(t, p));
		evbuffer_add_printf(b, "<td class=n>%llu</td><td class=n>%llu</td><td class=n>%llu</td><td></td></tr>", reqs,
		                    errs, fails);
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_server_view v;
			pool_server_view(t, p, i, &v);
			ADMIN_LIT(b, "<tr><td>");
			admin_page_html(b, rp->servers[i].name);
			if (rp->servers[i].backup)
				ADMIN_LIT(b, " <small>backup</small>");
			evbuffer_add_printf(b, "</td><td><span class=\"st %s\">%s</span></td>", admin_page_color(v.state), v.state);
			admin_page_live_cells(b, pool_server_ring(t, p, i), v.last_change);
			evbuffer_add_printf(b, "<td class=n>%llu</td><td class=n>%llu</td><td class=n>%llu</td><td>",
			                    (unsigned long long)v.requests, (unsigned long long)v.errors,
			                    (unsigned long long)v.failures);
			admin_page_html(b, v.last_check[0] ? v.last_check : "-");
			ADMIN_LIT(b, "</td></tr>");
		}
		ADMIN_LIT(b, "</table></div>");
	}
	admin_page_certs(cfg, b);
	ADMIN_LIT(b, "</body></html>\n");
}
