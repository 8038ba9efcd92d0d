/*
 * print.c - the effective configuration, after templates and defaults, in the
 * rule file's own syntax: what `onegate check --print` shows an admin so that
 * what a template set is never a guess.
 *
 * Every group is printed by walking its keys in schema.def: a plain value
 * (string, file, bool, number, duration, size, word, address) is read where
 * the loader put it and printed by its type, so a key added to the schema is
 * printed without a line here. What the loader keeps somewhere else, or as
 * something other than a value (indexes, lists, groups), has a way below.
 */
#include <stdio.h>
#include <string.h>

#include "certs.h"
#include "load.h"

struct rules_printer {
	FILE *out;
	const struct rules_config *c;
	const struct rules_service *svc;        /* the service being printed */
	const struct rules_route *route;        /* the route or default being printed */
};

/* Prints key k, whose effective value is at field; NULL: the value, by its type. */
typedef void (*rules_print_fn)(struct rules_printer *p, const struct rules_schema_key *k, const void *field);

/* Where a key is printed: on its group's first line, with its other values, or on a line of its own. */
enum rules_print_pass { RULES_PRINT_INLINE, RULES_PRINT_HEAD, RULES_PRINT_BLOCK };

#define RULES_PRINT_LOADERS ((size_t)-1)   /* the value is where the loader's offset says */

/* A key whose value is not printed plainly from the loader's offset. */
struct rules_print_way {
	enum rules_group g;
	const char *name;
	size_t offset;                  /* in the object the group is printed from, or RULES_PRINT_LOADERS */
	rules_print_fn print;           /* NULL: by its type */
	enum rules_print_pass pass;
};

/* The loader's offsets, in rules_schema[] order. */
static const size_t rules_print_loader_offset[] = {
#define RULES_KEY(places, name, type, words, dflt, flags, doc, set, off, missing) off,
#include "schema.def"
#undef RULES_KEY
};

/* "1800s", "250ms": the shortest exact form. */
static void rules_print_ms(FILE *out, const char *key, unsigned ms)
{
	if (ms % 1000)
		fprintf(out, " %s = \"%ums\";", key, ms);
	else
		fprintf(out, " %s = \"%us\";", key, ms / 1000);
}

/* A string as libconfig reads it back: a regex's backslashes and any quote escaped. */
static void rules_print_quoted(FILE *out, const char *v)
{
	fputc('"', out);
	for (const char *p = v; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

static void rules_print_str(FILE *out, const char *key, const char *v)
{
	if (!v)
		return;
	fprintf(out, " %s = ", key);
	rules_print_quoted(out, v);
	fputc(';', out);
}

/* A value by its type. A bool is printed when it is not its default; a number
 * unless it is 0 and 0 is its default or it has none (0 then means unset). */
static void rules_print_value(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	size_t len = 0;
	bool value = rules_schema_default(k, &len) == RULES_DEFAULT_VALUE;
	switch (k->type) {
	case RULES_T_STRING:
	case RULES_T_FILE:
	case RULES_T_NAME:
		rules_print_str(p->out, k->name, *(char *const *)field);
		break;
	case RULES_T_BOOL:
		if (*(const bool *)field != (value && strncmp(k->dflt, "true", 4) == 0))
			fprintf(p->out, " %s = %s;", k->name, *(const bool *)field ? "true" : "false");
		break;
	case RULES_T_NUMBER:
	case RULES_T_SIZE:
		if (*(const unsigned *)field || (value && k->dflt[0] != '0'))
			fprintf(p->out, " %s = %u;", k->name, *(const unsigned *)field);
		break;
	case RULES_T_DURATION:
		if (*(const unsigned *)field)
			rules_print_ms(p->out, k->name, *(const unsigned *)field);
		break;
	case RULES_T_WORD:
		fprintf(p->out, " %s = \"%s\";", k->name, k->words[*(const int *)field]);
		break;
	case RULES_T_ADDRESS: {
		const struct rules_addr *a = field;
		if (a->len)
			rules_print_str(p->out, k->name, a->text);
		break;
	}
	case RULES_T_LIST:
	case RULES_T_GROUP:
	case RULES_T_GROUPS:
		break;          /* each has a way of its own */
	}
}

/* A key another key's way prints. */
static void rules_print_nothing(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)p;
	(void)k;
	(void)field;
}

static void rules_print_keys(struct rules_printer *p, enum rules_group g, const void *obj, enum rules_print_pass pass);

static void rules_print_names(FILE *out, const char *key, char *const *names, size_t n)
{
	fprintf(out, " %s = [", key);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s \"%s\"", i ? "," : "", names[i]);
	fprintf(out, " ];");
}

/* ---- onegate */

static void rules_print_admin(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_admin *a = field;
	if (!a->on)
		return;
	fprintf(p->out, " %s = {", k->name);
	rules_print_keys(p, RULES_G_ADMIN, a, RULES_PRINT_INLINE);
	fprintf(p->out, " };");
}

static void rules_print_log(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	fprintf(p->out, " %s = {", k->name);
	rules_print_keys(p, RULES_G_LOG, field, RULES_PRINT_INLINE);
	fprintf(p->out, " };");
}

/* The facility is kept as syslog's code; it only matters with syslog. */
static void rules_print_facility(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	for (int i = 0; p->c->log.syslog && i < RULES_FACILITIES; i++)
		if (rules_facility_codes[i] == *(const int *)field)
			fprintf(p->out, " %s = \"%s\";", k->name, k->words[i]);
}

/* ---- certificates and plugins */

static void rules_print_intermediates(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_cert *ct = field;
	if (ct->nintermediates)
		rules_print_names(p->out, k->name, ct->intermediates, ct->nintermediates);
}

static void rules_print_acme(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_acme *a = *(struct rules_acme *const *)field;
	if (!a)
		return;
	fprintf(p->out, " %s = {", k->name);
	rules_print_keys(p, RULES_G_ACME, a, RULES_PRINT_INLINE);
	fprintf(p->out, " };");
}

static void rules_print_acme_names(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_acme *a = field;
	rules_print_names(p->out, k->name, a->names, a->nnames);
}

static void rules_print_certificates(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	const struct rules_config *c = p->c;
	fprintf(p->out, "\n%s = (\n", k->name);
	for (size_t i = 0; i < c->ncerts; i++) {
		const struct rules_cert *ct = &c->certs[i];
		fprintf(p->out, "  {");
		rules_print_keys(p, RULES_G_CERTIFICATE, ct, RULES_PRINT_INLINE);
		/* A password written in the file stays out of what an admin pastes into a ticket. */
		fprintf(p->out, " }%s  # line %d%s:", i + 1 < c->ncerts ? "," : "", ct->line,
		        ct->password ? ", password given inline (not shown)" : "");
		for (size_t n = 0; n < certs_item_nnames(ct->item); n++)
			fprintf(p->out, " %s", certs_item_name_at(ct->item, n));
		fprintf(p->out, "\n");
	}
	fprintf(p->out, ");\n");
}

/* Arguments as the plugin gets them: every value is text. */
static void rules_print_args(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_plugin *pl = field;
	fprintf(p->out, " %s = {", k->name);
	for (size_t i = 0; i < pl->nargs; i++) {
		const struct rules_plugin_arg *a = &pl->args[i];
		fprintf(p->out, " %s = %s", a->name, a->is_list ? "[" : "");
		for (size_t v = 0; v < a->nvalues; v++) {
			fprintf(p->out, "%s", v ? ", " : a->is_list ? " " : "");
			rules_print_quoted(p->out, a->values[v]);
		}
		fprintf(p->out, "%s;", a->is_list ? " ]" : "");
	}
	fprintf(p->out, " };");
}

static void rules_print_plugins(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	const struct rules_config *c = p->c;
	if (!c->nplugins)
		return;
	fprintf(p->out, "\n%s = (\n", k->name);
	for (size_t i = 0; i < c->nplugins; i++) {
		fprintf(p->out, "  {");
		rules_print_keys(p, RULES_G_PLUGIN, &c->plugins[i], RULES_PRINT_INLINE);
		fprintf(p->out, " }%s  # line %d\n", i + 1 < c->nplugins ? "," : "", c->plugins[i].line);
	}
	fprintf(p->out, ");\n");
}

/* ---- pools */

static void rules_print_servers(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_pool *pool = field;
	fprintf(p->out, "    %s = (", k->name);
	for (size_t i = 0; i < pool->nservers; i++) {
		fprintf(p->out, "%s {", i ? "," : "");
		rules_print_keys(p, RULES_G_SERVER, &pool->servers[i], RULES_PRINT_INLINE);
		fprintf(p->out, " }");
	}
	fprintf(p->out, " );\n");
}

/* A server's name is its address unless it was given one. */
static void rules_print_server_name(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_server *s = (const struct rules_server *)((const char *)field - offsetof(struct rules_server, name));
	if (strcmp(s->name, s->addr.text) != 0)
		rules_print_str(p->out, k->name, s->name);
}

static void rules_print_pool_group(struct rules_printer *p, const struct rules_schema_key *k, const void *obj,
                                   enum rules_group g)
{
	fprintf(p->out, "    %s = {", k->name);
	rules_print_keys(p, g, obj, RULES_PRINT_INLINE);
	fprintf(p->out, " };\n");
}

static void rules_print_pool_tls(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	if (((const struct rules_pool_tls *)field)->on)
		rules_print_pool_group(p, k, field, RULES_G_POOL_TLS);
}

static void rules_print_cookie(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_pool *pool = (const struct rules_pool *)((const char *)field - offsetof(struct rules_pool, cookie));
	if (pool->balance == RULES_BALANCE_COOKIE)
		rules_print_pool_group(p, k, field, RULES_G_COOKIE);
}

static void rules_print_health(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	if (((const struct rules_health *)field)->type != RULES_HEALTH_NONE)
		rules_print_pool_group(p, k, field, RULES_G_HEALTH);
}

/* A tcp check reads no answer: what an HTTP(S) check sends and expects does not apply. */
static bool rules_print_health_http(const struct rules_health *h)
{
	return h->type == RULES_HEALTH_HTTP || h->type == RULES_HEALTH_HTTPS;
}

static void rules_print_health_key(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_health *h = field;
	if (!rules_print_health_http(h))
		return;
	if (strcmp(k->name, "expect") == 0)
		fprintf(p->out, " %s = \"%d-%d\";", k->name, h->status_min, h->status_max);
	else
		rules_print_value(p, k, (const char *)h + rules_print_loader_offset[k - rules_schema]);
}

static void rules_print_pools(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	const struct rules_config *c = p->c;
	fprintf(p->out, "\n%s = (\n", k->name);
	for (size_t i = 0; i < c->npools; i++) {
		fprintf(p->out, "  {");
		rules_print_keys(p, RULES_G_POOL, &c->pools[i], RULES_PRINT_HEAD);
		rules_print_keys(p, RULES_G_POOL, &c->pools[i], RULES_PRINT_INLINE);
		fprintf(p->out, "  # line %d\n", c->pools[i].line);
		rules_print_keys(p, RULES_G_POOL, &c->pools[i], RULES_PRINT_BLOCK);
		fprintf(p->out, "  }%s\n", i + 1 < c->npools ? "," : "");
	}
	fprintf(p->out, ");\n");
}

/* ---- services, routes and defaults */

static void rules_print_listen(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_service *svc = field;
	fprintf(p->out, " %s = [", k->name);
	for (size_t a = 0; a < svc->nlisten; a++)
		fprintf(p->out, "%s \"%s\"", a ? "," : "", svc->listen[a].text);
	fprintf(p->out, " ];");
}

static void rules_print_service_tls(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	if (p->svc->mode != RULES_MODE_TLS)
		return;
	fprintf(p->out, " %s = {", k->name);
	rules_print_keys(p, RULES_G_SERVICE_TLS, p->svc, RULES_PRINT_INLINE);
	fprintf(p->out, " };");
}

static void rules_print_service_certs(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	fprintf(p->out, " %s = [", k->name);
	for (size_t i = 0; i < p->svc->ncerts; i++)
		fprintf(p->out, "%s \"%s\"", i ? "," : "", p->c->certs[p->svc->certs[i]].name);
	fprintf(p->out, " ];");
}

static void rules_print_service_default_cert(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	fprintf(p->out, " %s = \"%s\";", k->name, p->svc->default_cert >= 0 ? p->c->certs[p->svc->default_cert].name : "");
}

/* What a service waits for and reads only where it does: a PROXY header, a
 * ClientHello (not on plain HTTP), request heads and paths (not on a relay). */
static void rules_print_service_key(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	enum rules_service_mode mode = p->svc->mode;
	if (strcmp(k->name, "proxy_timeout") == 0 && !p->svc->accept_proxy)
		return;
	if (strcmp(k->name, "hello_timeout") == 0 && mode == RULES_MODE_HTTP)
		return;
	if ((strcmp(k->name, "windows_paths") == 0 || strcmp(k->name, "header_timeout") == 0 ||
	     strcmp(k->name, "keepalive_timeout") == 0) && mode == RULES_MODE_PASSTHROUGH)
		return;
	rules_print_value(p, k, field);
}

static void rules_print_route_line(struct rules_printer *p, enum rules_group g, const struct rules_route *r)
{
	p->route = r;
	rules_print_keys(p, g, r, RULES_PRINT_INLINE);
	p->route = NULL;
}

/* Commas between routes and default as its own key: what is printed loads again.
 * No routes are no key: an empty list would make a relay a plain HTTP service. */
static void rules_print_routes(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_service *svc = field;
	size_t nmatching = svc->nroutes - (svc->default_route >= 0);
	fprintf(p->out, "\n");
	if (!nmatching)
		return;
	fprintf(p->out, "    %s = (\n", k->name);
	for (size_t r = 0; r < nmatching; r++) {
		fprintf(p->out, "      {");
		rules_print_route_line(p, RULES_G_ROUTE, &svc->routes[r]);
		fprintf(p->out, " }%s  # line %d\n", r + 1 < nmatching ? "," : "", svc->routes[r].line);
	}
	fprintf(p->out, "    );\n");
}

static void rules_print_default(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_service *svc = field;
	if (svc->default_route >= 0) {
		fprintf(p->out, "    %s = {", k->name);
		rules_print_route_line(p, RULES_G_DEFAULT, &svc->routes[svc->default_route]);
		fprintf(p->out, " };  # line %d\n", svc->routes[svc->default_route].line);
	} else if (svc->default_reject) {
		fprintf(p->out, "    %s = { reject = true; };  # unrecognized_name\n", k->name);
	} else {
		fprintf(p->out, "    # no %s: %s\n", k->name, svc->mode == RULES_MODE_HTTP ? "404" : svc->mode == RULES_MODE_TLS
		                                               ? "421 (passthrough: unrecognized_name)" : "unrecognized_name");
	}
}

static void rules_print_route_pool(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	long pool = *(const long *)field;
	if (pool >= 0)
		rules_print_str(p->out, k->name, p->c->pools[pool].name);
}

static void rules_print_route_plugins(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	const struct rules_route *r = field;
	if (!r->nplugins)
		return;
	fprintf(p->out, " %s = [", k->name);
	for (size_t i = 0; i < r->nplugins; i++)
		fprintf(p->out, "%s \"%s\"", i ? "," : "", p->c->plugins[r->plugins[i]].name);
	fprintf(p->out, " ];");
}

/* A route's idle_timeout unset is its pool's. */
static void rules_print_route_idle(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	unsigned ms = *(const unsigned *)field;
	rules_print_ms(p->out, k->name, ms ? ms : p->c->pools[p->route->pool].idle_timeout_ms);
}

static void rules_print_services(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	(void)field;
	const struct rules_config *c = p->c;
	fprintf(p->out, "\n%s = (\n", k->name);
	for (size_t s = 0; s < c->nservices; s++) {
		const struct rules_service *svc = &c->services[s];
		p->svc = svc;
		fprintf(p->out, "  {");
		rules_print_keys(p, RULES_G_SERVICE, svc, RULES_PRINT_HEAD);
		fprintf(p->out, "  # line %d, %s\n   ", svc->line,
		        svc->mode == RULES_MODE_TLS ? "TLS terminated here" : svc->mode == RULES_MODE_HTTP ? "plain HTTP"
		                                                                                      : "TLS passthrough");
		rules_print_keys(p, RULES_G_SERVICE, svc, RULES_PRINT_INLINE);
		rules_print_keys(p, RULES_G_SERVICE, svc, RULES_PRINT_BLOCK);
		fprintf(p->out, "  }%s\n", s + 1 < c->nservices ? "," : "");
		p->svc = NULL;
	}
	fprintf(p->out, ");\n");
}

static void rules_print_onegate(struct rules_printer *p, const struct rules_schema_key *k, const void *field)
{
	fprintf(p->out, "%s = {", k->name);
	rules_print_keys(p, RULES_G_ONEGATE, field, RULES_PRINT_INLINE);
	fprintf(p->out, " };\n");
}

#define RULES_AT(g, name, type, member, fn) { g, name, offsetof(type, member), fn, RULES_PRINT_INLINE }
#define RULES_BY(g, name, fn, pass) { g, name, RULES_PRINT_LOADERS, fn, pass }
#define RULES_WHOLE(g, name, fn, pass) { g, name, 0, fn, pass }

static const struct rules_print_way rules_print_ways[] = {
	RULES_WHOLE(RULES_G_TOP, "onegate", rules_print_onegate, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_TOP, "certificates", rules_print_certificates, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_TOP, "plugins", rules_print_plugins, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_TOP, "pools", rules_print_pools, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_TOP, "services", rules_print_services, RULES_PRINT_INLINE),
	/* The loader reads onegate into its own state; the snapshot keeps these. */
	RULES_AT(RULES_G_ONEGATE, "workers", struct rules_config, workers, NULL),
	RULES_AT(RULES_G_ONEGATE, "drain_timeout", struct rules_config, drain_timeout_ms, NULL),
	RULES_AT(RULES_G_ONEGATE, "admin", struct rules_config, admin, rules_print_admin),
	RULES_AT(RULES_G_ONEGATE, "log", struct rules_config, log, rules_print_log),
	RULES_AT(RULES_G_ONEGATE, "user", struct rules_config, run_as.user, NULL),
	RULES_AT(RULES_G_ONEGATE, "group", struct rules_config, run_as.group, NULL),
	RULES_AT(RULES_G_ONEGATE, "state", struct rules_config, state_dir, NULL),
	RULES_AT(RULES_G_ADMIN, "listen", struct rules_admin, listen, NULL),
	RULES_AT(RULES_G_ADMIN, "token_file", struct rules_admin, token_file, NULL),
	RULES_AT(RULES_G_LOG, "level", struct rules_log, level, NULL),
	RULES_AT(RULES_G_LOG, "access", struct rules_log, access, NULL),
	RULES_AT(RULES_G_LOG, "file", struct rules_log, file, NULL),
	RULES_AT(RULES_G_LOG, "syslog", struct rules_log, syslog, NULL),
	RULES_AT(RULES_G_LOG, "facility", struct rules_log, facility, rules_print_facility),
	RULES_WHOLE(RULES_G_CERTIFICATE, "intermediates", rules_print_intermediates, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_CERTIFICATE, "acme", rules_print_acme, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_ACME, "names", rules_print_acme_names, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_PLUGIN, "args", rules_print_args, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_POOL, "name", NULL, RULES_PRINT_HEAD),
	RULES_WHOLE(RULES_G_POOL, "servers", rules_print_servers, RULES_PRINT_BLOCK),
	RULES_BY(RULES_G_POOL, "tls", rules_print_pool_tls, RULES_PRINT_BLOCK),
	RULES_BY(RULES_G_POOL, "cookie", rules_print_cookie, RULES_PRINT_BLOCK),
	RULES_BY(RULES_G_POOL, "health", rules_print_health, RULES_PRINT_BLOCK),
	/* The loader reads a server into an entry first; the snapshot keeps these. */
	RULES_AT(RULES_G_SERVER, "address", struct rules_server, addr, NULL),
	RULES_AT(RULES_G_SERVER, "name", struct rules_server, name, rules_print_server_name),
	RULES_AT(RULES_G_SERVER, "weight", struct rules_server, weight, NULL),
	RULES_AT(RULES_G_SERVER, "max_conns", struct rules_server, max_conns, NULL),
	RULES_AT(RULES_G_SERVER, "backup", struct rules_server, backup, NULL),
	RULES_WHOLE(RULES_G_HEALTH, "method", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_HEALTH, "path", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_HEALTH, "host", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_HEALTH, "sni", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_HEALTH, "expect", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_HEALTH, "body", rules_print_health_key, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "name", NULL, RULES_PRINT_HEAD),
	RULES_WHOLE(RULES_G_SERVICE, "listen", rules_print_listen, RULES_PRINT_HEAD),
	RULES_WHOLE(RULES_G_SERVICE, "tls", rules_print_service_tls, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "windows_paths", rules_print_service_key, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "proxy_timeout", rules_print_service_key, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "hello_timeout", rules_print_service_key, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "header_timeout", rules_print_service_key, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_SERVICE, "keepalive_timeout", rules_print_service_key, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_SERVICE, "routes", rules_print_routes, RULES_PRINT_BLOCK),
	RULES_WHOLE(RULES_G_SERVICE, "default", rules_print_default, RULES_PRINT_BLOCK),
	/* The loader reads a service's tls into an entry first; the snapshot keeps these. */
	RULES_WHOLE(RULES_G_SERVICE_TLS, "certificates", rules_print_service_certs, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_SERVICE_TLS, "default", rules_print_service_default_cert, RULES_PRINT_INLINE),
	RULES_AT(RULES_G_SERVICE_TLS, "ticket_key_file", struct rules_service, ticket_key_file, NULL),
	RULES_AT(RULES_G_ROUTE, "path", struct rules_route, path, NULL),
	RULES_WHOLE(RULES_G_DEFAULT, "reject", rules_print_nothing, RULES_PRINT_INLINE),   /* with default */
	RULES_BY(RULES_G_ROUTE, "pool", rules_print_route_pool, RULES_PRINT_INLINE),
	RULES_BY(RULES_G_ROUTE, "idle_timeout", rules_print_route_idle, RULES_PRINT_INLINE),
	RULES_WHOLE(RULES_G_ROUTE, "plugins", rules_print_route_plugins, RULES_PRINT_INLINE),
};

/* The way key k of group g is printed; a route's ways serve the default too. */
static const struct rules_print_way *rules_print_way_of(enum rules_group g, const struct rules_schema_key *k)
{
	enum rules_group as = g == RULES_G_DEFAULT && (k->places & RULES_IN(RULES_G_ROUTE)) ? RULES_G_ROUTE : g;
	for (size_t i = 0; i < sizeof(rules_print_ways) / sizeof(rules_print_ways[0]); i++)
		if (rules_print_ways[i].g == as && strcmp(rules_print_ways[i].name, k->name) == 0)
			return &rules_print_ways[i];
	return NULL;
}

/* Whether onegate's key k is only the default of other keys: it is printed where it applies. */
static bool rules_print_only_default(const struct rules_schema_key *k)
{
	for (size_t i = 0; i < rules_schema_count; i++) {
		size_t len;
		if (rules_schema_default(&rules_schema[i], &len) == RULES_DEFAULT_KEY &&
		    strcmp(rules_schema[i].dflt + 8, k->name) == 0)
			return true;
	}
	return false;
}

/* Whether key k applies to the route being printed: a passthrough route (or a
 * passthrough service's default) relays TLS untouched, and a route without a
 * pool asks no back end. */
static bool rules_print_route_applies(const struct rules_printer *p, const struct rules_schema_key *k)
{
	const struct rules_route *r = p->route;
	bool relay = r->passthrough || p->svc->mode == RULES_MODE_PASSTHROUGH;
	if ((k->flags & (RULES_KEY_HTTP | RULES_KEY_HTTP_OWN)) && relay)
		return false;
	return !(k->flags & RULES_KEY_EXCHANGE) || (r->pool >= 0 && !relay);
}

static void rules_print_keys(struct rules_printer *p, enum rules_group g, const void *obj, enum rules_print_pass pass)
{
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		/* A password stays out of what an admin pastes into a ticket; a template is applied, not kept. */
		if (!(k->places & RULES_IN(g)) || (k->flags & RULES_KEY_SECRET) || strcmp(k->name, "template") == 0)
			continue;
		const struct rules_print_way *way = rules_print_way_of(g, k);
		if ((way ? way->pass : RULES_PRINT_INLINE) != pass)
			continue;
		if (g == RULES_G_ONEGATE && !way && rules_print_only_default(k))
			continue;
		if (p->route && !rules_print_route_applies(p, k))
			continue;
		size_t off = way && way->offset != RULES_PRINT_LOADERS ? way->offset : rules_print_loader_offset[i];
		const void *field = (const char *)obj + off;
		if (way && way->print)
			way->print(p, k, field);
		else
			rules_print_value(p, k, field);
	}
}

void rules_print(FILE *out, const struct rules_config *c)
{
	struct rules_printer p = { .out = out, .c = c };
	fprintf(out, "# %s, effective: templates and defaults applied\n", c->path);
	rules_print_keys(&p, RULES_G_TOP, c, RULES_PRINT_INLINE);
}
