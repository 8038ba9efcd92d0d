#include "control/admin_view.h"

#include <stdio.h>
#include <string.h>

#include "certs.h"
#include "proxy/pool.h"
#include "schema.h"

const char *admin_view_mode(enum rules_service_mode m)
{
	return m == RULES_MODE_TLS ? "tls" : m == RULES_MODE_HTTP ? "http" : "passthrough";
}

/* The rule file's words for them: what the admin wrote is what the page shows. */
const char *admin_view_balance(enum rules_balance b)
{
	return rules_schema_word(RULES_G_POOL, "balance", (int)b);
}

const char *admin_view_check_type(enum rules_health_type t)
{
	return rules_schema_word(RULES_G_HEALTH, "type", (int)t);
}

/* "up": every server usable; "degraded": some; "down": none. */
const char *admin_view_pool_state(const struct pool_table *t, size_t p, size_t *nup)
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

const char *admin_view_service_state(const struct pool_table *t, const struct rules_service *svc)
{
	size_t pools = 0, down = 0, degraded = 0;
	for (size_t r = 0; r < svc->nroutes; r++) {
		if (svc->routes[r].pool < 0)
			continue;
		const char *st = admin_view_pool_state(t, (size_t)svc->routes[r].pool, NULL);
		pools++;
		down += strcmp(st, "down") == 0;
		degraded += strcmp(st, "degraded") == 0;
	}
	return pools && down == pools ? "down" : down || degraded ? "degraded" : "up";
}

/* What a route matches and does, in the rule file's words. */
void admin_view_route_text(const struct rules_config *cfg, const struct rules_service *svc, size_t r,
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

/* The latest state change among a pool's servers (0: never). */
int64_t admin_view_pool_changed(const struct pool_table *t, size_t p)
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

int64_t admin_view_service_changed(const struct pool_table *t, const struct rules_service *svc)
{
	int64_t last = 0;
	for (size_t r = 0; r < svc->nroutes; r++) {
		int64_t c = svc->routes[r].pool >= 0 ? admin_view_pool_changed(t, (size_t)svc->routes[r].pool) : 0;
		if (c > last)
			last = c;
	}
	return last;
}

/* Short forms for a table cell. */
void admin_view_rate(char *out, size_t len, double v)
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

void admin_view_bytes(char *out, size_t len, double v)
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

void admin_view_ms(char *out, size_t len, double ms)
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

void admin_view_errors(char *out, size_t len, const struct stats_live *l)
{
	if (!l->requests)
		snprintf(out, len, "-");
	else
		snprintf(out, len, "%.1f%%", l->error_rate * 100);
}

void admin_view_ago(char *out, size_t len, int64_t when)
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

void admin_view_time(time_t t, char *out, size_t cap)
{
	struct tm tm;
	if (!t) {
		snprintf(out, cap, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

void admin_view_cert_get(const struct rules_cert *rc, struct admin_view_cert *c)
{
	memset(c, 0, sizeof(*c));
	if (rc->acme) {
		c->has_view = acme_cert_view(rc->name, &c->v);
		c->not_after = c->v.not_after;
	} else if (rc->item) {
		c->not_after = certs_item_not_after(rc->item);
	}
}

size_t admin_view_cert_nnames(const struct rules_cert *rc)
{
	return rc->acme ? rc->acme->nnames : rc->item ? certs_item_nnames(rc->item) : 0;
}

const char *admin_view_cert_name_at(const struct rules_cert *rc, size_t i)
{
	return rc->acme ? rc->acme->names[i] : certs_item_name_at(rc->item, i);
}
