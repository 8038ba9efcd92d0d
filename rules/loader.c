/*
 * loader.c - reads a libconfig rule file into a struct rules_config.
 *
 * Every section of the file is described by a key table (name, setter, where
 * the value goes, and the fix to print when a required key is absent), so the
 * schema, its checks and its defaults sit in one place. A load keeps going
 * after an error so the admin sees every problem at once; any error makes the
 * whole load fail and nothing of it survives.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "rules_int.h"

#define RULES_WORKERS_MAX 1024
#define RULES_HINTS_MAX 3
#define RULES_LIST_MAX 8        /* names listed when nothing is close */

struct rules_seen_addr {
	const struct rules_addr *addr;
	const config_setting_t *s;
};

struct rules_load {
	struct rules_diag *diag;
	const char *name;               /* the main file as messages call it */
	const char *dir;                /* where @include looks; NULL: the working directory */
	int io_errno;                   /* why the main file could not be read */
	struct rules_config *cfg;
	long long workers;
	unsigned drain_ms, connect_ms, idle_ms;     /* connect/idle: defaults for every pool */
	const config_setting_t *pools_set;
	bool *pool_used;
	struct rules_seen_addr *seen;   /* every listen address so far, to refuse a second use */
	size_t nseen, capseen;
	char where[PATH_MAX + 32];      /* scratch for rules_where() */
	char file[PATH_MAX];            /* scratch for rules_file_of() */
};

typedef void (*rules_setter)(struct rules_load *L, const config_setting_t *s, void *field);

struct rules_key {
	const char *name;
	rules_setter set;
	size_t offset;                  /* of the field set inside the section's object */
	const char *missing;            /* NULL: optional; else it is required and this is the fix */
};

struct rules_section {
	const char *where;              /* "in route", as messages say it */
	const struct rules_key *keys;
	size_t nkeys;
};

/* What "default = { ... }" fills in before it becomes rules_service.default_pool. */
struct rules_default {
	long pool;
	bool reject;
};

/* ---------------------------------------------------------------- messages */

/* Included files are named as written in @include; messages name them from the main file's folder. */
static const char *rules_file_of(struct rules_load *L, const char *src)
{
	if (!src || strcmp(src, L->name) == 0)
		return L->name;
	if (!L->dir || src[0] == '/')
		return src;
	snprintf(L->file, sizeof(L->file), "%s/%s", L->dir, src);
	return L->file;
}

static const char *rules_where(struct rules_load *L, const config_setting_t *s)
{
	snprintf(L->where, sizeof(L->where), "%s:%d", rules_file_of(L, config_setting_source_file(s)),
	         config_setting_source_line(s));
	return L->where;
}

__attribute__((format(printf, 4, 0)))
static void rules_vreport(struct rules_load *L, enum rules_severity sev, const config_setting_t *s,
                          const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	const char *file = rules_file_of(L, s ? config_setting_source_file(s) : NULL);
	rules_diag_add(L->diag, sev, file, s ? config_setting_source_line(s) : 0, "%s", msg);
}

__attribute__((format(printf, 3, 4)))
static void rules_error(struct rules_load *L, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rules_vreport(L, RULES_ERROR, s, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void rules_warn(struct rules_load *L, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rules_vreport(L, RULES_WARNING, s, fmt, ap);
	va_end(ap);
}

/* "; did you mean "a" or "b"?" built from the candidates close to a word. */
struct rules_hint {
	const char *word;
	char text[256];
	size_t n;
};

static void rules_hint_try(struct rules_hint *h, const char *cand)
{
	size_t d = rules_edit_distance(h->word, cand);
	if (h->n >= RULES_HINTS_MAX || d > 2 || d >= strlen(cand))
		return;
	size_t used = strlen(h->text);
	snprintf(h->text + used, sizeof(h->text) - used, h->n ? " or \"%s\"" : "; did you mean \"%s\"", cand);
	h->n++;
}

static const char *rules_hint_done(struct rules_hint *h)
{
	size_t used = strlen(h->text);
	if (h->n)
		snprintf(h->text + used, sizeof(h->text) - used, "?");
	return h->text;
}

/* ---------------------------------------------------------------- sections */

static const struct rules_key *rules_key_find(const struct rules_section *sec, const char *name)
{
	for (size_t i = 0; i < sec->nkeys; i++)
		if (strcmp(sec->keys[i].name, name) == 0)
			return &sec->keys[i];
	return NULL;
}

static void rules_unknown_key(struct rules_load *L, const config_setting_t *s, const struct rules_section *sec)
{
	struct rules_hint h = { .word = config_setting_name(s) };
	for (size_t i = 0; i < sec->nkeys; i++)
		rules_hint_try(&h, sec->keys[i].name);
	if (h.n) {
		rules_error(L, s, "unknown key \"%s\" %s%s", h.word, sec->where, rules_hint_done(&h));
		return;
	}
	char known[256] = "";
	for (size_t i = 0; i < sec->nkeys; i++) {
		size_t used = strlen(known);
		snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", sec->keys[i].name);
	}
	rules_error(L, s, "unknown key \"%s\" %s; known keys: %s", h.word, sec->where, known);
}

/* Checks every key of a group against the table, then sets the known ones in table order. */
static void rules_section_apply(struct rules_load *L, const config_setting_t *group,
                                const struct rules_section *sec, void *obj)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		if (!rules_key_find(sec, config_setting_name(s)))
			rules_unknown_key(L, s, sec);
	}
	for (size_t k = 0; k < sec->nkeys; k++) {
		const struct rules_key *key = &sec->keys[k];
		const config_setting_t *s = config_setting_get_member(group, key->name);
		if (s)
			key->set(L, s, (char *)obj + key->offset);
		else if (key->missing)
			rules_error(L, group, "missing \"%s\" %s; add %s", key->name, sec->where, key->missing);
	}
}

/* A list of groups, as "pools = ( { ... }, { ... } );". */
static bool rules_is_group_list(struct rules_load *L, const config_setting_t *s, const char *example)
{
	if (config_setting_type(s) == CONFIG_TYPE_LIST)
		return true;
	rules_error(L, s, "%s must be a list of groups: %s", config_setting_name(s), example);
	return false;
}

static bool rules_is_group(struct rules_load *L, const config_setting_t *s, const char *what)
{
	if (config_setting_is_group(s))
		return true;
	rules_error(L, s, "each entry of %s must be a group { ... }", what);
	return false;
}

/* A list () or array [] of strings, as servers and listen are written. */
static bool rules_is_string_list(struct rules_load *L, const config_setting_t *s, const char *example)
{
	int t = config_setting_type(s);
	if (t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY)
		return true;
	rules_error(L, s, "%s must be a list of strings: %s", config_setting_name(s), example);
	return false;
}

static void *rules_calloc(struct rules_load *L, const config_setting_t *s, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		rules_error(L, s, "out of memory");
	return p;
}

/* ---------------------------------------------------------------- scalar setters */

static void rules_set_string(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		rules_error(L, s, "%s must be a string in double quotes", config_setting_name(s));
		return;
	}
	char **out = field;
	*out = strdup(config_setting_get_string(s));
	if (!*out)
		rules_error(L, s, "out of memory");
}

static void rules_set_bool(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		rules_error(L, s, "%s must be true or false", config_setting_name(s));
		return;
	}
	*(bool *)field = config_setting_get_bool(s);
}

static bool rules_get_int(struct rules_load *L, const config_setting_t *s, long long *v)
{
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		rules_error(L, s, "%s must be a whole number", config_setting_name(s));
		return false;
	}
	*v = config_setting_get_int64(s);
	return true;
}

static void rules_set_duration(struct rules_load *L, const config_setting_t *s, void *field)
{
	char err[256];
	int rc;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		rc = rules_duration_seconds((double)config_setting_get_int64(s), field, err, sizeof(err));
		break;
	case CONFIG_TYPE_FLOAT:
		rc = rules_duration_seconds(config_setting_get_float(s), field, err, sizeof(err));
		break;
	case CONFIG_TYPE_STRING:
		rc = rules_duration_text(config_setting_get_string(s), field, err, sizeof(err));
		break;
	default:
		rc = -1;
		snprintf(err, sizeof(err), "write a number of seconds or a string like \"500ms\", \"30s\", \"15m\", \"2h\"");
	}
	if (rc < 0)
		rules_error(L, s, "%s: %s", config_setting_name(s), err);
}

static void rules_set_workers(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 0 || v > RULES_WORKERS_MAX) {
		rules_error(L, s, "workers must be 0 (one per CPU) or a number up to %d, not %lld", RULES_WORKERS_MAX, v);
		return;
	}
	*(long long *)field = v;
}

static void rules_set_proxy_protocol(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 0 || v > 2) {
		rules_error(L, s, "proxy_protocol must be 0 (off), 1 or 2, not %lld", v);
		return;
	}
	*(int *)field = (int)v;
}

/* ---------------------------------------------------------------- pool references */

static void rules_pool_unknown(struct rules_load *L, const config_setting_t *s, const char *name)
{
	const struct rules_config *c = L->cfg;
	struct rules_hint h = { .word = name };
	for (size_t i = 0; i < c->npools; i++)
		if (c->pools[i].name)
			rules_hint_try(&h, c->pools[i].name);
	if (h.n) {
		rules_error(L, s, "no pool named \"%s\"%s", name, rules_hint_done(&h));
		return;
	}
	char list[512] = "";
	for (size_t i = 0; i < c->npools && i < RULES_LIST_MAX; i++) {
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i ? ", " : "",
		         c->pools[i].name ? c->pools[i].name : "");
	}
	if (c->npools > RULES_LIST_MAX)
		strncat(list, ", ...", sizeof(list) - strlen(list) - 1);
	if (c->npools)
		rules_error(L, s, "no pool named \"%s\"; the pools are %s", name, list);
	else
		rules_error(L, s, "no pool named \"%s\"; define it in pools = ( { name = \"%s\"; ... } );", name, name);
}

/* Index of the pool a "pool = NAME" setting names, or -1 (reported). */
static long rules_pool_ref(struct rules_load *L, const config_setting_t *s)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		rules_error(L, s, "pool must be a pool name in double quotes");
		return -1;
	}
	const char *name = config_setting_get_string(s);
	long i = rules_pool_find(L->cfg, name);
	if (i < 0) {
		rules_pool_unknown(L, s, name);
		return -1;
	}
	L->pool_used[i] = true;
	return i;
}

static void rules_set_route_pool(struct rules_load *L, const config_setting_t *s, void *field)
{
	long i = rules_pool_ref(L, s);
	if (i >= 0)
		*(size_t *)field = (size_t)i;
}

static void rules_set_default_pool(struct rules_load *L, const config_setting_t *s, void *field)
{
	*(long *)field = rules_pool_ref(L, s);
}

/* ---------------------------------------------------------------- addresses */

static bool rules_addr_same(const struct rules_addr *a, const struct rules_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void rules_listen_claim(struct rules_load *L, const config_setting_t *s, const struct rules_addr *a)
{
	for (size_t i = 0; i < L->nseen; i++) {
		if (rules_addr_same(L->seen[i].addr, a)) {
			rules_error(L, s, "listen address \"%s\" is already used at %s; each address belongs to one service",
			            a->text, rules_where(L, L->seen[i].s));
			return;
		}
	}
	if (L->nseen == L->capseen) {
		size_t cap = L->capseen ? L->capseen * 2 : 8;
		struct rules_seen_addr *n = realloc(L->seen, cap * sizeof(*n));
		if (!n) {
			rules_error(L, s, "out of memory");
			return;
		}
		L->seen = n;
		L->capseen = cap;
	}
	L->seen[L->nseen++] = (struct rules_seen_addr){ a, s };
}

static void rules_set_listen(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	if (!rules_is_string_list(L, s, "listen = [ \"0.0.0.0:443\", \"[::]:443\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (n == 0) {
		rules_error(L, s, "listen is empty; list at least one \"address:port\"");
		return;
	}
	if (!(svc->listen = rules_calloc(L, s, n, sizeof(*svc->listen))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char err[512];
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			rules_error(L, e, "each entry of listen must be a string \"address:port\"");
		else if (rules_addr_parse(config_setting_get_string(e), &svc->listen[svc->nlisten], NULL, NULL, err,
		                          sizeof(err)) < 0)
			rules_error(L, e, "%s", err);
		else
			rules_listen_claim(L, e, &svc->listen[svc->nlisten++]);
	}
}

static void rules_set_servers(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_pool *p = field;
	if (!rules_is_string_list(L, s, "servers = ( \"10.0.0.1:443\", \"10.0.0.2:443\" );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (n == 0) {
		rules_error(L, s, "servers is empty; list at least one \"host:port\"");
		return;
	}
	if (!(p->servers = rules_calloc(L, s, n, sizeof(*p->servers))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct rules_server *sv = &p->servers[p->nservers];
		char err[512];
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			rules_error(L, e, "each entry of servers must be a string \"host:port\"");
		} else if (rules_addr_parse(config_setting_get_string(e), &sv->addr, &sv->host, &sv->port, err,
		                            sizeof(err)) < 0) {
			rules_error(L, e, "%s", err);
		} else {
			sv->line = config_setting_source_line(e);
			p->nservers++;
		}
	}
}

/* ---------------------------------------------------------------- tables */

static const struct rules_key rules_route_keys[] = {
	{ "sni", rules_set_string, offsetof(struct rules_route, sni), "sni = \"host.example.com\";" },
	{ "pool", rules_set_route_pool, offsetof(struct rules_route, pool), "pool = \"NAME\";" },
};
static const struct rules_section rules_route_section = { "in route", rules_route_keys, 2 };

static const struct rules_key rules_default_keys[] = {
	{ "pool", rules_set_default_pool, offsetof(struct rules_default, pool), NULL },
	{ "reject", rules_set_bool, offsetof(struct rules_default, reject), NULL },
};
static const struct rules_section rules_default_section = { "in default", rules_default_keys, 2 };

static void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field);

static const struct rules_key rules_service_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_service, name), "name = \"NAME\";" },
	{ "listen", rules_set_listen, 0, "listen = [ \"0.0.0.0:443\" ];" },
	{ "accept_proxy", rules_set_bool, offsetof(struct rules_service, accept_proxy), NULL },
	{ "proxy_timeout", rules_set_duration, offsetof(struct rules_service, proxy_timeout_ms), NULL },
	{ "hello_timeout", rules_set_duration, offsetof(struct rules_service, hello_timeout_ms), NULL },
	{ "routes", rules_set_routes, 0, NULL },
	{ "default", rules_set_default, 0, NULL },
};
static const struct rules_section rules_service_section = { "in service", rules_service_keys, 7 };

static const struct rules_key rules_pool_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_pool, name), "name = \"NAME\";" },
	{ "servers", rules_set_servers, 0, "servers = ( \"host:port\" );" },
	{ "proxy_protocol", rules_set_proxy_protocol, offsetof(struct rules_pool, proxy_protocol), NULL },
	{ "connect_timeout", rules_set_duration, offsetof(struct rules_pool, connect_timeout_ms), NULL },
	{ "idle_timeout", rules_set_duration, offsetof(struct rules_pool, idle_timeout_ms), NULL },
};
static const struct rules_section rules_pool_section = { "in pool", rules_pool_keys, 5 };

/* connect/idle here are file-wide defaults for pools, so they must be read before pools. */
static const struct rules_key rules_onegate_keys[] = {
	{ "workers", rules_set_workers, offsetof(struct rules_load, workers), NULL },
	{ "drain_timeout", rules_set_duration, offsetof(struct rules_load, drain_ms), NULL },
	{ "connect_timeout", rules_set_duration, offsetof(struct rules_load, connect_ms), NULL },
	{ "idle_timeout", rules_set_duration, offsetof(struct rules_load, idle_ms), NULL },
};
static const struct rules_section rules_onegate_section = { "in onegate", rules_onegate_keys, 4 };

static void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_pools(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_services(struct rules_load *L, const config_setting_t *s, void *field);

/* Order matters: routes name pools, so pools are read before services. */
static const struct rules_key rules_top_keys[] = {
	{ "onegate", rules_set_onegate, 0, NULL },
	{ "pools", rules_set_pools, 0, NULL },
	{ "services", rules_set_services, 0,
	  "services = ( { name = \"NAME\"; listen = [ \"0.0.0.0:443\" ]; default = { pool = \"NAME\"; }; } );" },
};
static const struct rules_section rules_top_section = { "at top level", rules_top_keys, 3 };

/* ---------------------------------------------------------------- sections' setters */

static void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "onegate must be a group: onegate = { workers = 0; };");
		return;
	}
	rules_section_apply(L, s, &rules_onegate_section, field);
}

static void rules_pool_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_pool *p = &L->cfg->pools[i];
	p->line = config_setting_source_line(s);
	p->connect_timeout_ms = L->connect_ms;
	p->idle_timeout_ms = L->idle_ms;
	if (!rules_is_group(L, s, "pools"))
		return;
	rules_section_apply(L, s, &rules_pool_section, p);
	for (size_t j = 0; p->name && j < i; j++)
		if (L->cfg->pools[j].name && strcmp(L->cfg->pools[j].name, p->name) == 0) {
			rules_error(L, s, "duplicate pool name \"%s\"; the first is at %s", p->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			break;
		}
}

static void rules_set_pools(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (!rules_is_group_list(L, s, "pools = ( { name = \"NAME\"; servers = ( \"host:port\" ); } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	struct rules_config *c = L->cfg;
	if (!(c->pools = rules_calloc(L, s, n, sizeof(*c->pools))) ||
	    !(L->pool_used = rules_calloc(L, s, n, sizeof(*L->pool_used))))
		return;
	L->pools_set = s;
	/* npools grows as pools are read so a pool's duplicate check sees only earlier pools. */
	for (size_t i = 0; i < n; i++, c->npools++)
		rules_pool_read(L, s, i);
}

static bool rules_sni_same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	la -= la && a[la - 1] == '.' && a[0] != '~';
	lb -= lb && b[lb - 1] == '.' && b[0] != '~';
	return la == lb && (a[0] == '~' ? memcmp(a, b, la) == 0 : strncasecmp(a, b, la) == 0);
}

static void rules_route_index(struct rules_load *L, const config_setting_t *list, struct rules_service *svc,
                              size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	const char *sni = svc->routes[i].sni;
	char err[512];
	int rc = rules_namemap_add(svc->sni_map, sni, (int)i, err, sizeof(err));
	if (rc == -1) {
		rules_error(L, config_setting_get_member(s, "sni"), "bad sni \"%s\": %s", sni, err);
		return;
	}
	if (rc != -2)
		return;
	for (size_t j = 0; j < i; j++)
		if (svc->routes[j].sni && rules_sni_same(svc->routes[j].sni, sni)) {
			rules_error(L, config_setting_get_member(s, "sni"),
			            "duplicate sni \"%s\" in this service; the first is at %s", sni,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			return;
		}
}

static void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	if (!rules_is_group_list(L, s, "routes = ( { sni = \"host.example.com\"; pool = \"NAME\"; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (!(svc->routes = rules_calloc(L, s, n, sizeof(*svc->routes))))
		return;
	for (size_t i = 0; i < n; i++, svc->nroutes++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct rules_route *r = &svc->routes[i];
		r->line = config_setting_source_line(e);
		r->pool = SIZE_MAX;
		if (!rules_is_group(L, e, "routes"))
			continue;
		rules_section_apply(L, e, &rules_route_section, r);
		if (r->sni && svc->sni_map)
			rules_route_index(L, s, svc, i);
	}
}

static void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	struct rules_default d = { .pool = -1 };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "default must be a group: default = { pool = \"NAME\"; }; or default = { reject = true; };");
		return;
	}
	size_t before = rules_diag_errors(L->diag);
	rules_section_apply(L, s, &rules_default_section, &d);
	if (rules_diag_errors(L->diag) != before)
		return;
	if (d.pool >= 0 && d.reject)
		rules_error(L, s, "default has both pool and reject = true; keep one");
	else if (d.pool < 0 && !d.reject)
		rules_error(L, s, "default needs pool = \"NAME\"; or reject = true;");
	svc->default_pool = d.pool;
}

static void rules_service_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_service *svc = &L->cfg->services[i];
	svc->line = config_setting_source_line(s);
	svc->proxy_timeout_ms = 5000;
	svc->hello_timeout_ms = 10000;
	svc->default_pool = -1;
	if (!rules_is_group(L, s, "services"))
		return;
	if (!(svc->sni_map = rules_namemap_new()))
		rules_error(L, s, "out of memory");
	rules_section_apply(L, s, &rules_service_section, svc);
	for (size_t j = 0; svc->name && j < i; j++)
		if (L->cfg->services[j].name && strcmp(L->cfg->services[j].name, svc->name) == 0) {
			rules_error(L, s, "duplicate service name \"%s\"; the first is at %s", svc->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			break;
		}
}

static void rules_set_services(struct rules_load *L, const config_setting_t *s, void *field)
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

/* ---------------------------------------------------------------- snapshot */

static void rules_pool_clear(struct rules_pool *p)
{
	for (size_t i = 0; i < p->nservers; i++) {
		rules_addr_clear(&p->servers[i].addr);
		free(p->servers[i].host);
	}
	free(p->servers);
	free(p->name);
}

static void rules_service_clear(struct rules_service *s)
{
	for (size_t i = 0; i < s->nlisten; i++)
		rules_addr_clear(&s->listen[i]);
	free(s->listen);
	for (size_t i = 0; i < s->nroutes; i++)
		free(s->routes[i].sni);
	free(s->routes);
	rules_namemap_free(s->sni_map);
	free(s->name);
}

static void rules_config_free(struct rules_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->npools; i++)
		rules_pool_clear(&c->pools[i]);
	free(c->pools);
	for (size_t i = 0; i < c->nservices; i++)
		rules_service_clear(&c->services[i]);
	free(c->services);
	free(c->path);
	free(c);
}

struct rules_config *rules_config_ref(struct rules_config *c)
{
	if (c)
		__atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void rules_config_unref(struct rules_config *c)
{
	/* Release so this thread's reads happen before the free; acquire so the freeing thread sees them. */
	if (c && __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL) == 1)
		rules_config_free(c);
}

long rules_pool_find(const struct rules_config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->npools; i++)
		if (c->pools[i].name && strcmp(c->pools[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* ---------------------------------------------------------------- load */

static unsigned rules_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void rules_warn_unused_pools(struct rules_load *L)
{
	for (size_t i = 0; i < L->cfg->npools; i++)
		if (!L->pool_used[i] && L->cfg->pools[i].name)
			rules_warn(L, config_setting_get_elem(L->pools_set, (unsigned)i),
			           "pool \"%s\" is not used by any route or default", L->cfg->pools[i].name);
}

static void rules_read_root(struct rules_load *L, const config_t *lc)
{
	const config_setting_t *root = config_root_setting(lc);
	L->connect_ms = 5000;
	L->idle_ms = 1800 * 1000;       /* Skype for Business/Lync keeps idle media and signalling up for 30 min */
	L->drain_ms = 10000;
	rules_section_apply(L, root, &rules_top_section, L);
	L->cfg->workers = L->workers ? (unsigned)L->workers : rules_cpu_count();
	L->cfg->drain_timeout_ms = L->drain_ms;
	if (L->pool_used)
		rules_warn_unused_pools(L);
}

static void rules_syntax_error(struct rules_load *L, const config_t *lc)
{
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO && config_error_line(lc) == 0)
		rules_diag_add(L->diag, RULES_ERROR, L->name, 0, "cannot read the rule file: %s", strerror(L->io_errno));
	else
		rules_diag_add(L->diag, RULES_ERROR, rules_file_of(L, config_error_file(lc)), config_error_line(lc),
		               "%s", config_error_text(lc) ? config_error_text(lc) : "no rule text");
}

static struct rules_config *rules_load(config_t *lc, int parsed, struct rules_load *L)
{
	struct rules_config *c = NULL;
	if (!parsed) {
		rules_syntax_error(L, lc);
		return NULL;
	}
	size_t before = rules_diag_errors(L->diag);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(L->name))) {
		free(c);
		rules_diag_add(L->diag, RULES_ERROR, L->name, 0, "out of memory");
		return NULL;
	}
	c->refs = 1;
	L->cfg = c;
	rules_read_root(L, lc);
	free(L->pool_used);
	free(L->seen);
	if (rules_diag_errors(L->diag) == before)
		return c;
	rules_config_free(c);
	return NULL;
}

struct rules_config *rules_load_string(const char *text, const char *name, struct rules_diag *diag)
{
	struct rules_load L = { .diag = diag, .name = name ? name : "-" };
	config_t lc;
	config_init(&lc);
	struct rules_config *c = rules_load(&lc, text ? config_read_string(&lc, text) : 0, &L);
	config_destroy(&lc);
	return c;
}

struct rules_config *rules_load_file(const char *path, struct rules_diag *diag)
{
	struct rules_load L = { .diag = diag, .name = path };
	char dir[PATH_MAX];
	const char *slash = path ? strrchr(path, '/') : NULL;
	if (!path)
		return NULL;
	/* @include names files relative to the including file, not to where onegate was started. */
	if (slash && (size_t)(slash - path) < sizeof(dir)) {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		memcpy(dir, path, n);
		dir[n] = '\0';
		L.dir = dir;
	}
	config_t lc;
	config_init(&lc);
	if (L.dir)      /* libconfig 1.5 crashes on a NULL include dir */
		config_set_include_dir(&lc, L.dir);
	int parsed = config_read_file(&lc, path);
	L.io_errno = errno;
	struct rules_config *c = rules_load(&lc, parsed, &L);
	config_destroy(&lc);
	return c;
}
