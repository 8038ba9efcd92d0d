/*
 * admin_view.h - the facts the admin views (status page, JSON, text table,
 * metrics) share, read from a pool table: states, the rule file's words,
 * short forms for a table cell, certificates as the views show them.
 * Control thread only.
 */
#ifndef ONEGATE_ADMIN_VIEW_H
#define ONEGATE_ADMIN_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "acme/acme.h"
#include "rules.h"
#include "proxy/stats.h"

struct pool_table;

/* The chart: requests per second in 10-second steps over the ring's 10 minutes. */
#define ADMIN_VIEW_CHART_STEP_S 10
#define ADMIN_VIEW_CHART_POINTS (STATS_RING_S / ADMIN_VIEW_CHART_STEP_S)

const char *admin_view_mode(enum rules_service_mode m);
/* The rule file's words for them: what the admin wrote is what the page shows. */
const char *admin_view_balance(enum rules_balance b);
const char *admin_view_check_type(enum rules_health_type t);
/* "up": every server usable; "degraded": some; "down": none. *nup (may be NULL): how many are. */
const char *admin_view_pool_state(const struct pool_table *t, size_t p, size_t *nup);
/* From the states of the pools its routes go to. */
const char *admin_view_service_state(const struct pool_table *t, const struct rules_service *svc);
/* What route r matches and does, in the rule file's words. */
void admin_view_route_text(const struct rules_config *cfg, const struct rules_service *svc, size_t r,
                           char *match, size_t mlen, char *action, size_t alen);
/* The latest state change among the servers (0: never). */
int64_t admin_view_pool_changed(const struct pool_table *t, size_t p);
int64_t admin_view_service_changed(const struct pool_table *t, const struct rules_service *svc);

/* Short forms for a table cell. */
void admin_view_rate(char *out, size_t len, double v);
void admin_view_bytes(char *out, size_t len, double v);
void admin_view_ms(char *out, size_t len, double ms);
void admin_view_errors(char *out, size_t len, const struct stats_live *l);
void admin_view_ago(char *out, size_t len, int64_t when);
/* "YYYY-MM-DD HH:MM UTC", or "-" for 0. */
void admin_view_time(time_t t, char *out, size_t cap);

/* A certificate as the views show it: a file's as loaded, an ACME one as its client knows it. */
struct admin_view_cert {
	time_t not_after;               /* 0: none issued yet (ACME) */
	bool has_view;
	struct acme_cert_view v;
};

void admin_view_cert_get(const struct rules_cert *rc, struct admin_view_cert *c);
size_t admin_view_cert_nnames(const struct rules_cert *rc);
const char *admin_view_cert_name_at(const struct rules_cert *rc, size_t i);

#endif
