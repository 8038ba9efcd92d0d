/*
 * load_service.c - services, their routes and default, and the checks that
 * need the whole service: its mode, what a passthrough route may say, routes
 * that can never match, and certificate coverage.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "certs.h"
#include "load.h"

/* A path prefix, compared with the resolved request path: so written as one, since a
 * prefix the resolution would change ("/%65cp", "/a/../ecp", "/ecp.") could never match. */
void rules_set_path(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_route *r = field;
	rules_set_string(L, s, &r->path);
	if (!r->path)
		return;
	const char *p = r->path;
	if (p[0] != '/') {
		rules_error(L, s, "path \"%s\" must start with \"/\", e.g. path = \"/owa\";", p);
		return;
	}
	for (const char *q = p; *q; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f || strchr("?#%\\;:", *q)) {
			rules_error(L, s, "path \"%s\" is compared with the resolved request path, so it is written plain: "
			            "no spaces, control bytes, %%-escapes, UTF-8, \"?\", \"#\", \"\\\", \";\" or \":\"", p);
			return;
		}
	size_t len = strlen(p), n;
	char *resolved = malloc(len + 2);
	const char *why;
	if (!resolved) {
		rules_error(L, s, "out of memory");
		return;
	}
	if (rules_urlpath_resolve(p, len, RULES_PATH_WINDOWS, resolved, len + 2, &n, &why) != RULES_PATH_OK)
		rules_error(L, s, "path \"%s\" cannot be resolved (%s); write the plain path it stands for, e.g. "
		            "path = \"/owa\";", p, why);
	else if (strcmp(resolved, p) != 0)
		rules_error(L, s, "path \"%s\" resolves to \"%s\", which is what requests are compared with (no \"//\", "
		            "\".\" or \"..\" segments, no name ending in a dot or space); write that", p, resolved);
	free(resolved);
	r->path_len = len;
}

bool rules_sni_same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	la -= la && a[la - 1] == '.' && a[0] != '~';
	lb -= lb && b[lb - 1] == '.' && b[0] != '~';
	return la == lb && (a[0] == '~' ? memcmp(a, b, la) == 0 : strncasecmp(a, b, la) == 0);
}

const config_setting_t *rules_route_setting(const config_setting_t *list, size_t i, const char *key)
{
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
	const config_setting_t *k = e ? config_setting_get_member(e, key) : NULL;
	return k ? k : e;
}

static void rules_passthrough_index(struct rules_load *L, const config_setting_t *list, struct rules_service *svc,
                                    size_t i)
{
	const config_setting_t *s = rules_route_setting(list, i, "sni");
	const char *sni = svc->routes[i].sni;
	char err[512];
	int rc = rules_namemap_add(svc->sni_map, sni, (int)i, err, sizeof(err));
	if (rc == -1) {
		rules_error(L, s, "bad sni \"%s\": %s", sni, err);
		return;
	}
	if (rc != -2)
		return;
	for (size_t j = 0; j < i; j++)
		if (svc->routes[j].passthrough && svc->routes[j].sni && rules_sni_same(svc->routes[j].sni, sni)) {
			rules_error(L, s, "duplicate sni \"%s\" in this service; the first is at %s", sni,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			return;
		}
}

/* A pool whose servers have no port of their own needs every route to it to give one. */
static void rules_route_port_check(struct rules_load *L, const config_setting_t *list, size_t i,
                                   const struct rules_route *r)
{
	if (r->pool < 0 || r->port)
		return;
	const struct rules_pool *p = &L->cfg->pools[r->pool];
	for (size_t k = 0; k < p->nservers; k++)
		if (p->servers[k].port == 0) {
			rules_error(L, config_setting_get_elem(list, (unsigned)i),
			            "pool \"%s\" lists server \"%s\" without a port, so this route must give one: port = 443;",
			            p->name, p->servers[k].addr.text);
			return;
		}
}

/* The keys flagged in mask that a route or default (group g) sets: written in
 * it, or for a RULES_KEY_HTTP key also by its template. Up to max names, in
 * schema order, into keys; returns how many. */
static size_t rules_route_http_keys(struct rules_load *L, const config_setting_t *e, enum rules_group g, unsigned mask,
                                    const char **keys, size_t max)
{
	const config_setting_t *tmpl = rules_template_get(L, e);
	size_t n = 0;
	for (size_t k = 0; k < rules_schema_count && n < max; k++) {
		const struct rules_schema_key *key = &rules_schema[k];
		if (!(key->places & RULES_IN(g)) || !(key->flags & mask))
			continue;
		if (config_setting_get_member(e, key->name) ||
		    ((key->flags & RULES_KEY_HTTP) && tmpl && config_setting_get_member(tmpl, key->name)))
			keys[n++] = key->name;
	}
	return n;
}

/* A passthrough route never sees an HTTP request, so what only applies to one is a
 * mistake: the admin meant something that would silently not happen. Timeouts and
 * forwarded count where the route sets them itself; a template serves pools and HTTP
 * routes too, and what it says that a relay cannot use stays unused, as a pool
 * ignores a template's route keys. */
static void rules_passthrough_http_only(struct rules_load *L, const config_setting_t *list, size_t i,
                                        const struct rules_route *r)
{
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
	const char *keys[16];
	size_t n = rules_route_http_keys(L, e, RULES_G_ROUTE, RULES_KEY_HTTP | RULES_KEY_HTTP_OWN, keys, 16);
	if (n) {
		char names[160] = "";
		for (size_t k = 0; k < n; k++) {
			size_t used = strlen(names);
			snprintf(names + used, sizeof(names) - used, "%s%s", k == 0 ? "" : k + 1 == n ? " and " : ", ",
			         keys[k]);
		}
		rules_error(L, rules_route_setting(list, i, keys[0]),
		            "a passthrough route relays TLS untouched, so %s cannot apply (HTTP only); remove %s or "
		            "remove passthrough", names, n > 1 ? "them" : "it");
	}
	if (config_setting_get_member(e, "idle_timeout"))
		rules_error(L, rules_route_setting(list, i, "idle_timeout"),
		            "a passthrough route's relay ends after its pool's idle_timeout, not the route's; set "
		            "idle_timeout on pool \"%s\" instead", r->pool >= 0 ? L->cfg->pools[r->pool].name : "NAME");
}

/* A redirect or status is answered here: what shapes a back-end exchange would do nothing. */
static void rules_warn_exchange_keys(struct rules_load *L, const config_setting_t *e, const struct rules_route *r)
{
	for (size_t k = 0; k < rules_schema_count; k++) {
		const struct rules_schema_key *key = &rules_schema[k];
		const config_setting_t *m = (key->places & RULES_IN(RULES_G_ROUTE)) && (key->flags & RULES_KEY_EXCHANGE)
		                                    ? config_setting_get_member(e, key->name) : NULL;
		if (m)
			rules_warn(L, m, "%s has no effect on a route that %s: no back end is asked; remove it", key->name,
			           r->redirect ? "redirects" : "answers a status");
	}
}

/* Checks what one route says against the service it is in. */
static void rules_route_check(struct rules_load *L, const config_setting_t *list, struct rules_service *svc,
                              size_t i)
{
	struct rules_route *r = &svc->routes[i];
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
	int actions = (r->pool >= 0) + !!r->redirect + (r->status && !r->redirect);
	if (!r->sni && !r->host && !r->path) {
		rules_error(L, e, "this route matches nothing; give it sni, host or path (use default = { ... } for the rest)");
		return;
	}
	/* A pool that was named but not found is reported already. */
	if (actions == 0 && !config_setting_get_member(e, "pool"))
		rules_error(L, e, "this route does nothing; add pool = \"NAME\";, redirect = \"https\"; or status = 404;");
	else if (actions > 1)
		rules_error(L, e, "a route either forwards to a pool, redirects, or answers a status; keep one");
	if (r->redirect && r->status && r->status != 301 && r->status != 302 && r->status != 303 &&
	    r->status != 307 && r->status != 308)
		rules_error(L, rules_route_setting(list, i, "status"),
		            "a redirect's status must be 301, 302, 303, 307 or 308, not %d", r->status);
	if (r->redirect && strcmp(r->redirect, "https") != 0 && strncmp(r->redirect, "https://", 8) != 0 &&
	    strncmp(r->redirect, "http://", 7) != 0)
		rules_error(L, rules_route_setting(list, i, "redirect"),
		            "redirect must be \"https\" (same host and path) or a URL starting with https:// or http://");
	rules_route_port_check(L, list, i, r);
	if (r->pool < 0 && !r->passthrough && actions == 1)
		rules_warn_exchange_keys(L, e, r);
	if (r->port && r->pool < 0)
		rules_error(L, rules_route_setting(list, i, "port"), "port rewrites the back-end port; it needs pool = \"NAME\";");
	if (r->passthrough) {
		if (!r->sni)
			rules_error(L, e, "a passthrough route is matched on the TLS server name; add sni = \"NAME\";");
		rules_passthrough_http_only(L, list, i, r);
		if (r->nplugins)
			rules_error(L, rules_route_setting(list, i, "plugins"), "plugins apply to HTTP routes; this route "
			            "relays TLS untouched: remove plugins, or terminate TLS here (remove passthrough)");
		return;
	}
	if (svc->mode == RULES_MODE_HTTP && r->sni)
		rules_error(L, rules_route_setting(list, i, "sni"),
		            "sni needs TLS: this service has no tls group; add tls = { certificates = [ ... ]; }; or remove sni");
	if (r->host) {
		if (strchr(r->host, ':') && r->host[0] != '~')
			rules_error(L, rules_route_setting(list, i, "host"),
			            "host \"%s\" has a port; the port in a Host header is ignored when matching, so drop it",
			            r->host);
	}
	if (r->sni && (r->host || r->path)) {
		char err[512];
		if (!(r->sni_only = rules_namemap_new()))
			rules_error(L, e, "out of memory");
		else if (rules_namemap_add(r->sni_only, r->sni, 0, err, sizeof(err)) == -1)
			rules_error(L, rules_route_setting(list, i, "sni"), "bad sni \"%s\": %s", r->sni, err);
	}
}

/* A service without a tls group either relays TLS by SNI or serves plain HTTP, never both. */
static void rules_service_mode(struct rules_load *L, const config_setting_t *list, struct rules_service *svc)
{
	if (svc->mode == RULES_MODE_TLS)
		return;
	long pass = -1, http = -1;
	for (size_t i = 0; i < svc->nroutes; i++) {
		struct rules_route *r = &svc->routes[i];
		if (r->passthrough || (r->sni && !r->host && !r->path))
			pass = pass < 0 ? (long)i : pass;
		else if (r->host || r->path)
			http = http < 0 ? (long)i : http;
	}
	if (pass >= 0 && http >= 0) {
		char first[PATH_MAX + 32];
		snprintf(first, sizeof(first), "%s", rules_where(L, config_setting_get_elem(list, (unsigned)pass)));
		rules_error(L, config_setting_get_elem(list, (unsigned)http),
		            "this service has no tls group, so it either relays TLS by sni (like the route at %s) or "
		            "serves plain HTTP by host and path (like this one); add tls = { ... } to terminate, or "
		            "split it into two services", first);
		/* Reported once: the routes' own checks then take the passthrough view, which has no sni error. */
		svc->mode = RULES_MODE_PASSTHROUGH;
		return;
	}
	svc->mode = pass >= 0 ? RULES_MODE_PASSTHROUGH : RULES_MODE_HTTP;
	if (svc->mode == RULES_MODE_PASSTHROUGH)
		for (size_t i = 0; i < svc->nroutes; i++)
			svc->routes[i].passthrough = true;
}

void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	if (!rules_is_group_list(L, s, "routes = ( { host = \"host.example.com\"; pool = \"NAME\"; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	/* One more for the default, which the default key appends. */
	if (!(svc->routes = rules_calloc(L, s, n + 1, sizeof(*svc->routes))))
		return;
	for (size_t i = 0; i < n; i++, svc->nroutes++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct rules_route *r = &svc->routes[i];
		r->line = config_setting_source_line(e);
		r->pool = -1;
		if (rules_is_group(L, e, "routes"))
			rules_section_apply_from(L, e, RULES_G_ROUTE, r, rules_template_of(L, e));
	}
}

void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	struct rules_default d = { .route = { .pool = -1, .line = config_setting_source_line(s) } };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "default must be a group: default = { pool = \"NAME\"; }; or default = { reject = true; };");
		return;
	}
	size_t before = rules_diag_errors(L->diag);
	rules_section_apply_from(L, s, RULES_G_DEFAULT, &d, rules_template_of(L, s));
	struct rules_route *r = &d.route;
	int actions = (r->pool >= 0) + !!r->redirect + (r->status && !r->redirect) + d.reject;
	if (rules_diag_errors(L->diag) == before) {
		if (actions == 0)
			rules_error(L, s, "default needs pool = \"NAME\";, reject = true;, redirect = \"https\"; or status = 404;");
		else if (actions > 1)
			rules_error(L, s, "default has more than one of pool, reject, redirect and status; keep one");
	}
	if (!svc->routes && !(svc->routes = rules_calloc(L, s, 1, sizeof(*svc->routes)))) {
		free(r->redirect);
		free(r->host_rewrite);
		free(r->plugins);
		return;
	}
	svc->default_reject = d.reject;
	if (d.reject) {
		free(r->redirect);
		free(r->host_rewrite);
		free(r->plugins);
		return;
	}
	svc->routes[svc->nroutes] = *r;
	svc->default_route = (long)svc->nroutes++;
}

/* A connection whose SNI a passthrough route takes is relayed before any request is
 * read, so an HTTP route that needs that SNI never sees a request. */
static void rules_sni_shadow_check(struct rules_load *L, const config_setting_t *list, const struct rules_service *svc,
                                   size_t nmatching)
{
	for (size_t i = 0; svc->mode == RULES_MODE_TLS && i < nmatching; i++) {
		const struct rules_route *r = &svc->routes[i];
		if (r->passthrough || !r->sni)
			continue;
		/* A name is looked up as a client's would be; a pattern is shadowed by the same pattern. */
		long by = -1;
		if (r->sni[0] != '~' && r->sni[0] != '*')
			by = rules_namemap_lookup(svc->sni_map, r->sni, strlen(r->sni));
		for (size_t j = 0; by < 0 && (r->sni[0] == '~' || r->sni[0] == '*') && j < nmatching; j++)
			if (svc->routes[j].passthrough && svc->routes[j].sni && rules_sni_same(svc->routes[j].sni, r->sni))
				by = (long)j;
		if (by >= 0)
			rules_error(L, rules_route_setting(list, i, "sni"),
			            "this route can never match: a connection with sni \"%s\" is relayed untouched by the "
			            "passthrough route at %s; change this route's sni or remove it", r->sni,
			            rules_where(L, config_setting_get_elem(list, (unsigned)by)));
	}
}

/* host = "*" with no path and no sni takes every request the other routes leave, so a
 * default after it is never used. (A route with no host, path or sni is an error already.) */
static void rules_default_shadow_check(struct rules_load *L, const config_setting_t *list,
                                       const config_setting_t *dflt, const struct rules_service *svc)
{
	if (svc->default_route < 0 || svc->mode == RULES_MODE_PASSTHROUGH || !svc->any_host)
		return;
	for (size_t k = 0; k < svc->any_host->n; k++) {
		const struct rules_route *r = &svc->routes[svc->any_host->routes[k]];
		if (r->host && !r->path_len && !r->sni) {
			rules_error(L, dflt, "default can never be used: the route at %s takes every request the other "
			            "routes leave; remove default, or give that route a host or path",
			            rules_where(L, config_setting_get_elem(list, (unsigned)svc->any_host->routes[k])));
			return;
		}
	}
}

/* A terminated route whose host name none of the service's certificates covers
 * would fail for every client with a name mismatch: say so now. */
static void rules_check_coverage(struct rules_load *L, const config_setting_t *list, const struct rules_service *svc)
{
	for (size_t i = 0; i < svc->nroutes; i++) {
		const struct rules_route *r = &svc->routes[i];
		if ((long)i == svc->default_route || r->passthrough || !r->host || r->host[0] == '~' ||
		    strcmp(r->host, "*") == 0)
			continue;
		bool covered = false, loaded = true;
		for (size_t k = 0; k < svc->ncerts && !covered; k++) {
			const struct certs_item *item = L->cfg->certs[svc->certs[k]].item;
			loaded &= item != NULL;
			for (size_t n = 0; item && n < certs_item_nnames(item) && !covered; n++)
				covered = r->host[0] == '*' ? strcasecmp(certs_item_name_at(item, n), r->host) == 0
				                            : certs_item_covers(item, r->host, strlen(r->host));
		}
		if (!covered && loaded && svc->ncerts)
			rules_error(L, rules_route_setting(list, i, "host"),
			            "no certificate of this service covers host \"%s\"; clients would get a name mismatch: "
			            "add a certificate for it to tls.certificates", r->host);
	}
}

/* h2c is read only where plain HTTP is (its mode is known once the routes are read). */
static void rules_service_h2c_check(struct rules_load *L, const config_setting_t *s, const struct rules_service *svc)
{
	const config_setting_t *key = config_setting_get_member(s, "h2c");
	if (!svc->h2c)
		return;
	if (svc->mode == RULES_MODE_TLS && !svc->plain_http)
		rules_error(L, key,
		            "h2c is HTTP/2 with prior knowledge on plain HTTP connections; this service takes only TLS, "
		            "where ALPN offers HTTP/2 (http2): add plain_http = true; or remove h2c");
	else if (svc->mode == RULES_MODE_PASSTHROUGH)
		rules_error(L, key,
		            "h2c is HTTP/2 with prior knowledge on plain HTTP connections; this service relays TLS "
		            "connections without reading them: remove h2c");
	else if (!svc->http2)
		rules_error(L, key, "h2c = true turns HTTP/2 on for plain connections and http2 = false turns it off: "
		                    "remove one of them");
}

static void rules_service_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_service *svc = &L->cfg->services[i];
	svc->line = config_setting_source_line(s);
	svc->default_route = -1;
	svc->default_cert = -1;
	svc->mode = RULES_MODE_HTTP;
	if (!rules_is_group(L, s, "services"))
		return;
	if (!(svc->sni_map = rules_namemap_new()))
		rules_error(L, s, "out of memory");
	rules_section_apply(L, s, RULES_G_SERVICE, svc);
	for (size_t j = 0; svc->name && j < i; j++)
		if (L->cfg->services[j].name && strcmp(L->cfg->services[j].name, svc->name) == 0) {
			rules_error(L, s, "duplicate service name \"%s\"; the first is at %s", svc->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			break;
		}
	if (svc->plain_http && svc->mode != RULES_MODE_TLS)
		rules_error(L, config_setting_get_member(s, "plain_http"),
		            "plain_http lets a TLS service also take plain HTTP on its port; this service has no tls group, "
		            "so it is plain already: remove plain_http");
	if (!svc->http2 && svc->mode != RULES_MODE_TLS)
		rules_warn(L, config_setting_get_member(s, "http2"),
		           "http2 = false turns HTTP/2 off where TLS is terminated; this service has no tls group, so it "
		           "never offers HTTP/2: remove http2");
	if (!svc->accept_proxy && config_setting_get_member(s, "proxy_timeout"))
		rules_warn(L, config_setting_get_member(s, "proxy_timeout"),
		           "proxy_timeout bounds the wait for a PROXY header, which this service does not read; add "
		           "accept_proxy = true; or remove proxy_timeout");
	const config_setting_t *routes = config_setting_get_member(s, "routes");
	size_t nmatching = svc->nroutes - (svc->default_route >= 0);
	if (!routes) {
		/* No routes and no tls: every connection is relayed to the default, as sniproxy would. */
		if (svc->mode != RULES_MODE_TLS)
			svc->mode = RULES_MODE_PASSTHROUGH;
	} else {
		rules_service_mode(L, routes, svc);
		for (size_t r = 0; r < nmatching; r++)
			rules_route_check(L, routes, svc, r);
		for (size_t r = 0; svc->sni_map && r < nmatching; r++)
			if (svc->routes[r].passthrough && svc->routes[r].sni)
				rules_passthrough_index(L, routes, svc, r);
		rules_host_index(L, routes, svc);
		rules_sni_shadow_check(L, routes, svc, nmatching);
		rules_default_shadow_check(L, routes, config_setting_get_member(s, "default"), svc);
	}
	rules_service_h2c_check(L, s, svc);
	if (svc->default_route >= 0) {
		const config_setting_t *d = config_setting_get_member(s, "default");
		const struct rules_route *r = &svc->routes[svc->default_route];
		for (size_t k = 0; r->pool >= 0 && !r->port && k < L->cfg->pools[r->pool].nservers; k++)
			if (L->cfg->pools[r->pool].servers[k].port == 0) {
				rules_error(L, d, "pool \"%s\" lists a server without a port, so the default must give one: "
				            "port = 443;", L->cfg->pools[r->pool].name);
				break;
			}
	}
	const config_setting_t *k;
	if (svc->mode == RULES_MODE_HTTP && (k = config_setting_get_member(s, "hello_timeout")))
		rules_warn(L, k, "hello_timeout bounds the wait for a TLS ClientHello, and this plain HTTP service reads "
		           "none; header_timeout bounds the request head: remove hello_timeout");
	for (int t = 0; svc->mode == RULES_MODE_PASSTHROUGH && t < 2; t++)
		if ((k = config_setting_get_member(s, t ? "keepalive_timeout" : "header_timeout")))
			rules_warn(L, k, "%s applies to HTTP requests, and this service relays TLS by sni without reading "
			           "any; remove it (a relay's idle time is its pool's idle_timeout)",
			           t ? "keepalive_timeout" : "header_timeout");
	if (svc->mode == RULES_MODE_PASSTHROUGH && (k = config_setting_get_member(s, "windows_paths")))
		rules_warn(L, k, "windows_paths says how request paths are resolved, and this service relays TLS by sni "
		           "without reading any: remove it");
	if (svc->mode != RULES_MODE_PASSTHROUGH && svc->default_route >= 0 &&
	    svc->routes[svc->default_route].pool < 0)
		rules_warn_exchange_keys(L, config_setting_get_member(s, "default"), &svc->routes[svc->default_route]);
	if (svc->default_reject && svc->mode != RULES_MODE_PASSTHROUGH)
		rules_error(L, config_setting_get_member(s, "default"),
		            "reject = true only applies to a passthrough service; an HTTP service answers %d when no "
		            "route matches, so leave default out", svc->mode == RULES_MODE_TLS ? 421 : 404);
	if (svc->mode == RULES_MODE_PASSTHROUGH && svc->default_route >= 0) {
		const struct rules_route *d = &svc->routes[svc->default_route];
		const config_setting_t *dg = config_setting_get_member(s, "default");
		const char *keys[1];
		if (rules_route_http_keys(L, dg, RULES_G_DEFAULT, RULES_KEY_HTTP | RULES_KEY_HTTP_OWN | RULES_KEY_EXCHANGE,
		                          keys, 1))
			rules_error(L, config_setting_get_member(s, "default"),
			            "this service relays TLS by sni, so its default can only say pool = \"NAME\"; (and port) or "
			            "reject = true;");
		if (d->nplugins)
			rules_error(L, config_setting_get_member(config_setting_get_member(s, "default"), "plugins"),
			            "plugins apply to HTTP routes; this service relays TLS untouched by sni: remove plugins");
	}
	if (svc->mode == RULES_MODE_TLS && routes)
		rules_check_coverage(L, routes, svc);
	if (svc->mode == RULES_MODE_TLS && svc->ncerts == 0 && config_setting_get_member(s, "tls"))
		rules_error(L, config_setting_get_member(s, "tls"),
		            "a tls service needs certificates = [ \"NAME\" ]; in its tls group");
}

void rules_set_services(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (!rules_is_group_list(L, s, "services = ( { name = \"NAME\"; listen = [ \"0.0.0.0:443\" ]; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	struct rules_config *c = L->cfg;
	if (!(c->services = rules_calloc(L, s, n, sizeof(*c->services))))
		return;
	for (size_t i = 0; i < n; i++, c->nservices++)
		rules_service_read(L, s, i);
	if (n == 0)
		rules_warn(L, s, "services is empty; onegate will not listen anywhere");
}
