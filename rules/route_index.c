/*
 * route_index.c - builds what the matcher (route.c) reads: per host pattern,
 * the routes in the order they are tried (longest path first, then file
 * order), and the routes for any host; reports routes that can never match.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load.h"

/* Host patterns as written, normalized so that two spellings of one name group together. */
struct rules_host_key {
	char *norm;
	size_t route;
};

static int rules_host_key_cmp(const void *a, const void *b)
{
	const struct rules_host_key *x = a, *y = b;
	int c = strcmp(x->norm, y->norm);
	return c ? c : (x->route > y->route) - (x->route < y->route);
}

static char *rules_host_norm(const char *host)
{
	char *n = strdup(host);
	if (!n || n[0] == '~')
		return n;
	size_t len = strlen(n);
	if (len && n[len - 1] == '.')
		n[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		n[i] = (char)tolower((unsigned char)n[i]);
	return n;
}

/* Per set: longest path first, then file order, as the matcher tries them. */
static const struct rules_service *rules_sort_svc;

static int rules_route_order(const void *a, const void *b)
{
	const struct rules_route *x = &rules_sort_svc->routes[*(const size_t *)a];
	const struct rules_route *y = &rules_sort_svc->routes[*(const size_t *)b];
	if (x->path_len != y->path_len)
		return x->path_len < y->path_len ? 1 : -1;
	return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

static bool rules_set_push(struct rules_route_set *set, size_t route)
{
	size_t *n = realloc(set->routes, (set->n + 1) * sizeof(*n));
	if (!n)
		return false;
	set->routes = n;
	set->routes[set->n++] = route;
	return true;
}

/* Two routes of one set with the same path, and the earlier one's sni (or none) taking the
 * later one's: the later one can never match. Each is reported once, against the first. */
static void rules_set_shadow_check(struct rules_load *L, const config_setting_t *list,
                                   const struct rules_service *svc, const struct rules_route_set *set)
{
	size_t run = 0;     /* where the routes with y's path length start: the set is longest first */
	for (size_t b = 1; b < set->n; b++) {
		const struct rules_route *y = &svc->routes[set->routes[b]];
		if (svc->routes[set->routes[run]].path_len != y->path_len)
			run = b;
		/* Within one path length the set keeps file order: every x here is tried before y. */
		for (size_t a = run; a < b; a++) {
			const struct rules_route *x = &svc->routes[set->routes[a]];
			if ((x->path_len && strcasecmp(x->path, y->path) != 0) ||
			    (x->sni && (!y->sni || !rules_sni_same(x->sni, y->sni))))
				continue;
			char first[PATH_MAX + 32];
			snprintf(first, sizeof(first), "%s",
			         rules_where(L, config_setting_get_elem(list, (unsigned)set->routes[a])));
			rules_error(L, config_setting_get_elem(list, (unsigned)set->routes[b]),
			            "this route can never match: the route at %s has the same host%s%s first; "
			            "remove one or change its path", first, x->path_len ? " and path" : "",
			            x->sni ? " and sni" : y->sni ? " and no sni, so it takes every sni" : "");
			break;
		}
	}
}

/* Builds the host index: one set of routes per host pattern, plus the routes for any host. */
void rules_host_index(struct rules_load *L, const config_setting_t *list, struct rules_service *svc)
{
	size_t n = 0;
	struct rules_host_key *keys = rules_calloc(L, list, svc->nroutes, sizeof(*keys));
	if (!keys || !(svc->host_map = rules_namemap_new()) ||
	    !(svc->any_host = rules_calloc(L, list, 1, sizeof(*svc->any_host)))) {
		free(keys);
		return;
	}
	for (size_t i = 0; i < svc->nroutes; i++) {
		const struct rules_route *r = &svc->routes[i];
		if (r->passthrough || (long)i == svc->default_route)
			continue;
		if (!r->host || strcmp(r->host, "*") == 0) {
			if (!rules_set_push(svc->any_host, i))
				rules_error(L, list, "out of memory");
			continue;
		}
		if (!(keys[n].norm = rules_host_norm(r->host))) {
			rules_error(L, list, "out of memory");
			break;
		}
		keys[n++].route = i;
	}
	if (n)
		qsort(keys, n, sizeof(*keys), rules_host_key_cmp);
	size_t nsets = 0;
	for (size_t i = 0; i < n; i++)
		nsets += i == 0 || strcmp(keys[i].norm, keys[i - 1].norm) != 0;
	svc->host_sets = rules_calloc(L, list, nsets, sizeof(*svc->host_sets));
	for (size_t i = 0; svc->host_sets && i < n; i++) {
		if (i == 0 || strcmp(keys[i].norm, keys[i - 1].norm) != 0) {
			char err[512];
			int rc = rules_namemap_add(svc->host_map, svc->routes[keys[i].route].host, (int)svc->nhost_sets,
			                           err, sizeof(err));
			if (rc == -1)
				rules_error(L, rules_route_setting(list, keys[i].route, "host"), "bad host \"%s\": %s",
				            svc->routes[keys[i].route].host, err);
			svc->nhost_sets++;
		}
		if (!rules_set_push(&svc->host_sets[svc->nhost_sets - 1], keys[i].route))
			rules_error(L, list, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i].norm);
	free(keys);
	rules_sort_svc = svc;
	for (size_t i = 0; i < svc->nhost_sets; i++) {
		qsort(svc->host_sets[i].routes, svc->host_sets[i].n, sizeof(size_t), rules_route_order);
		rules_set_shadow_check(L, list, svc, &svc->host_sets[i]);
	}
	if (svc->any_host->n)
		qsort(svc->any_host->routes, svc->any_host->n, sizeof(size_t), rules_route_order);
	rules_set_shadow_check(L, list, svc, svc->any_host);
	rules_sort_svc = NULL;
}
