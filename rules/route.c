/*
 * route.c - picks the route for one HTTP request from the structures the
 * loader compiled: a host name map (exact > wildcard > regex) to sets of
 * routes ordered longest path first, and the routes that take any host.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "rules.h"

/* A prefix matches the resolved path at a segment boundary: "/owa" takes "/owa", "/owa/x" but not
 * "/owa2". IIS compares paths without case, and Outlook and phones send both spellings. */
static bool rules_path_prefix(const struct rules_route *r, const char *path, size_t len)
{
	if (!r->path_len)
		return true;
	if (len < r->path_len || strncasecmp(path, r->path, r->path_len) != 0)
		return false;
	return len == r->path_len || r->path[r->path_len - 1] == '/' || path[r->path_len] == '/';
}

static bool rules_route_sni_ok(const struct rules_route *r, const char *sni, size_t sni_len)
{
	if (!r->sni_only)
		return true;
	return sni && rules_namemap_lookup(r->sni_only, sni, sni_len) >= 0;
}

static long rules_set_pick(const struct rules_service *svc, const struct rules_route_set *set, const char *path,
                           size_t path_len, const char *sni, size_t sni_len)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct rules_route *r = &svc->routes[set->routes[i]];
		if (rules_path_prefix(r, path, path_len) && rules_route_sni_ok(r, sni, sni_len))
			return (long)set->routes[i];
	}
	return -1;
}

long rules_route_match_http(const struct rules_service *svc, const char *host, size_t host_len, const char *path,
                            size_t path_len, const char *sni, size_t sni_len)
{
	long r = -1;
	if (host && host_len && svc->host_map) {
		int set = rules_namemap_lookup(svc->host_map, host, host_len);
		if (set >= 0)
			r = rules_set_pick(svc, &svc->host_sets[set], path, path_len, sni, sni_len);
	}
	if (r < 0 && svc->any_host)
		r = rules_set_pick(svc, svc->any_host, path, path_len, sni, sni_len);
	return r >= 0 ? r : svc->default_route;
}

long rules_route_request(const struct rules_service *svc, const char *host, size_t host_len, const char *path,
                         size_t path_len, const char *sni, size_t sni_len, char *out, size_t cap, size_t *out_len,
                         const char **why)
{
	unsigned flags = svc->windows_paths ? RULES_PATH_WINDOWS : 0;
	int rc = rules_urlpath_resolve(path, path_len, flags, out, cap, out_len, why);
	if (rc == RULES_PATH_BAD)
		return RULES_ROUTE_BAD_PATH;
	long r = rules_route_match_http(svc, host, host_len, out, *out_len, sni, sni_len);
	if (rc == RULES_PATH_OK)
		return r;
	/* IIS reads %2F as "/", other servers as part of a name: both readings must agree. */
	size_t n;
	if (rules_urlpath_resolve(path, path_len, flags | RULES_PATH_SEP_OPAQUE, out, cap, &n, why) == RULES_PATH_BAD)
		return RULES_ROUTE_BAD_PATH;
	if (rules_route_match_http(svc, host, host_len, out, n, sni, sni_len) != r) {
		*why = "an encoded \"/\" or \"\\\" that decides the route";
		return RULES_ROUTE_BAD_PATH;
	}
	rules_urlpath_resolve(path, path_len, flags, out, cap, out_len, why);
	return r;
}
