#include "control/admin_metrics.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "control/admin_reply.h"
#include "control/admin_view.h"
#include "http/h2session.h"
#include "proxy/pool.h"
#include "proxy/stats.h"

/* Prometheus label values: backslash, double quote and newline escaped. */
static void admin_metrics_label(struct evbuffer *b, const char *s)
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

static void admin_metrics_one(struct evbuffer *b, const char *name, const char *pool, const char *server,
                         unsigned long long v)
{
	evbuffer_add_printf(b, "%s{pool=\"", name);
	admin_metrics_label(b, pool);
	ADMIN_LIT(b, "\",server=\"");
	admin_metrics_label(b, server);
	evbuffer_add_printf(b, "\"} %llu\n", v);
}

static void admin_metrics_certs(const struct rules_config *cfg, struct evbuffer *b)
{
	time_t now = time(NULL);
	ADMIN_LIT(b, "# HELP onegate_certificate_expiry_seconds seconds until the certificate served expires "
	             "(negative: expired); an ACME certificate not issued yet has none\n"
	             "# TYPE onegate_certificate_expiry_seconds gauge\n");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		struct admin_view_cert c;
		admin_view_cert_get(&cfg->certs[i], &c);
		if (!c.not_after)
			continue;
		ADMIN_LIT(b, "onegate_certificate_expiry_seconds{certificate=\"");
		admin_metrics_label(b, cfg->certs[i].name);
		evbuffer_add_printf(b, "\"} %lld\n", (long long)(c.not_after - now));
	}
}

void admin_metrics(const struct pool_table *t, time_t started, struct evbuffer *b)
{
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
	                       "onegate_uptime_seconds %lld\n", (long long)(time(NULL) - started));
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
					admin_metrics_one(fam[k], m[k].name, rp->name, rp->servers[i].name, val[k]);
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
			admin_metrics_label(b, cfg->pools[p].name);
			if (i == STATS_NBUCKETS - 1)
				evbuffer_add_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
			else
				evbuffer_add_printf(b, "\",le=\"%g\"} %llu\n", (double)stats_bucket_us[i] / 1e6,
				                    (unsigned long long)cum);
		}
		ADMIN_LIT(b, "onegate_pool_request_duration_seconds_sum{pool=\"");
		admin_metrics_label(b, cfg->pools[p].name);
		evbuffer_add_printf(b, "\"} %.6f\n", (double)sum_us / 1e6);
		ADMIN_LIT(b, "onegate_pool_request_duration_seconds_count{pool=\"");
		admin_metrics_label(b, cfg->pools[p].name);
		evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)count);
	}
	admin_metrics_certs(cfg, b);
	h2s_metrics_write(b);
}
