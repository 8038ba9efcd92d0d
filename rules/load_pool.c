/*
 * load_pool.c - pools: their servers, balancing, cookie, health checks and
 * TLS to the back end, and the references routes make to them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

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

void rules_set_route_pool(struct rules_load *L, const config_setting_t *s, void *field)
{
	*(long *)field = rules_pool_ref(L, s);
}

static bool rules_server_read(struct rules_load *L, const config_setting_t *e, struct rules_server *sv)
{
	struct rules_server_entry en = { 0 };
	const char *text = NULL;
	char err[512];
	bool ok = false;
	if (config_setting_type(e) == CONFIG_TYPE_STRING) {
		rules_section_apply(L, NULL, RULES_G_SERVER, &en);
		text = config_setting_get_string(e);
	} else if (config_setting_is_group(e)) {
		size_t before = rules_diag_errors(L->diag);
		rules_section_apply(L, e, RULES_G_SERVER, &en);
		if (rules_diag_errors(L->diag) != before)
			goto out;
		text = en.address;
	} else {
		rules_error(L, e, "each entry of servers must be \"host:port\" or { address = \"host:port\"; weight = 2; }");
		goto out;
	}
	if (rules_server_parse(text, &sv->addr, &sv->host, &sv->port, err, sizeof(err)) < 0) {
		rules_error(L, e, "%s", err);
		goto out;
	}
	sv->name = en.name ? en.name : strdup(sv->addr.text);
	en.name = NULL;
	if (!sv->name) {
		rules_error(L, e, "out of memory");
		goto out;
	}
	sv->weight = en.weight;
	sv->max_conns = en.max_conns;
	sv->backup = en.backup;
	sv->line = config_setting_source_line(e);
	ok = true;
out:
	free(en.address);
	free(en.name);
	return ok;
}

void rules_set_servers(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_pool *p = field;
	if (config_setting_type(s) != CONFIG_TYPE_LIST && config_setting_type(s) != CONFIG_TYPE_ARRAY) {
		rules_error(L, s, "servers must be a list: servers = ( \"10.0.0.1:443\", { address = \"10.0.0.2:443\"; backup = true; } );");
		return;
	}
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
		if (!rules_server_read(L, e, sv))
			continue;
		for (size_t j = 0; j < p->nservers; j++)
			if (strcmp(p->servers[j].name, sv->name) == 0) {
				rules_error(L, e, "server \"%s\" is listed twice in this pool; give one a name = \"...\"; "
				            "if both are meant", sv->name);
				break;
			}
		p->nservers++;
	}
}

/* What a pool's settings say only together. */
static void rules_pool_finish(struct rules_load *L, const config_setting_t *s, struct rules_pool *p)
{
	struct rules_health *h = &p->health;
	if (!p->cookie.name && p->balance == RULES_BALANCE_COOKIE) {
		rules_section_apply(L, NULL, RULES_G_COOKIE, &p->cookie);
	} else if (p->cookie.name && p->balance != RULES_BALANCE_COOKIE) {
		rules_error(L, config_setting_get_member(s, "cookie"), "cookie applies with balance = \"cookie\"; add it or remove cookie");
	}
	const config_setting_t *hs = config_setting_get_member(s, "health");
	if (h->type == RULES_HEALTH_NONE || !h->line)
		return;
	if (!h->port)
		for (size_t k = 0; k < p->nservers; k++)
			if (p->servers[k].port == 0) {
				rules_error(L, hs ? hs : s,
				            "server \"%s\" has no port of its own, so health needs one: port = 4443;",
				            p->servers[k].addr.text);
				break;
			}
}

static void rules_pool_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_pool *p = &L->cfg->pools[i];
	p->line = config_setting_source_line(s);
	if (!rules_is_group(L, s, "pools"))
		return;
	rules_section_apply_from(L, s, RULES_G_POOL, p, rules_template_of(L, s));
	rules_pool_finish(L, s, p);
	for (size_t j = 0; p->name && j < i; j++)
		if (L->cfg->pools[j].name && strcmp(L->cfg->pools[j].name, p->name) == 0) {
			rules_error(L, s, "duplicate pool name \"%s\"; the first is at %s", p->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			break;
		}
}

void rules_set_pools(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_pool_tls(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_pool_tls *t = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "tls must be a group: tls = { sni = \"mail.contoso.com\"; verify = true; };");
		return;
	}
	t->on = true;
	rules_section_apply(L, s, RULES_G_POOL_TLS, t);
	if (!t->cert != !t->key)
		rules_error(L, s, "a client certificate needs both cert and key");
	if (!t->verify && t->ca_file)
		rules_warn(L, config_setting_get_member(s, "ca_file"), "ca_file has no effect with verify = false: the "
		           "server's certificate is not checked at all; remove ca_file, or verify");
	rules_path_resolve(L, s, &t->ca_file);
	rules_path_resolve(L, s, &t->cert);
	rules_path_resolve(L, s, &t->key);
}

/* A cookie name or attribute value goes into Set-Cookie as it is: RFC 6265 token and cookie-av bytes only. */
static bool rules_cookie_text_ok(const char *v, bool name)
{
	if (!v || !*v)
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == ';' || *p == ',' || (name && strchr("()<>@:\\\"/[]?={}", *p)))
			return false;
	return true;
}

void rules_set_cookie(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_cookie *c = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "cookie must be a group: cookie = { name = \"MS-WSMAN\"; httponly = false; };");
		return;
	}
	rules_section_apply(L, s, RULES_G_COOKIE, c);
	if (!rules_cookie_text_ok(c->name, true))
		rules_error(L, s, "cookie name \"%s\" must be a token: letters, digits and !#$%%&'*+-.^_`|~", c->name);
	if ((c->path && !rules_cookie_text_ok(c->path, false)) || (c->domain && !rules_cookie_text_ok(c->domain, false)))
		rules_error(L, s, "cookie path and domain may not hold spaces, \";\", \",\" or control bytes");
}

/* "200", 200 or "200-399". */
void rules_set_expect(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_health *h = field;
	long long a, b;
	char tail = 0;
	int t = config_setting_type(s);
	if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
		a = b = config_setting_get_int64(s);
	} else if (t == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		int n = sscanf(v, "%lld-%lld%c", &a, &b, &tail);
		if (n == 1 && sscanf(v, "%lld%c", &a, &tail) == 1)
			b = a;
		else if (n != 2)
			a = b = -1;
	} else {
		a = b = -1;
	}
	if (a < 100 || b > 599 || a > b) {
		rules_error(L, s, "expect must be a status or a range of statuses, e.g. expect = \"200-399\"; or expect = 200;");
		return;
	}
	h->status_min = (int)a;
	h->status_max = (int)b;
}

void rules_set_health(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_health *h = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "health must be a group: health = { path = \"/owa/healthcheck.htm\"; interval = \"5s\"; };");
		return;
	}
	const config_setting_t *type = config_setting_get_member(s, "type");
	h->line = config_setting_source_line(s);
	rules_section_apply(L, s, RULES_G_HEALTH, h);
	/* Without a type, a path means an HTTP probe, over TLS when the pool re-encrypts (its tls is read first). */
	const struct rules_pool *pool = (const struct rules_pool *)((const char *)field - offsetof(struct rules_pool, health));
	const config_setting_t *path = config_setting_get_member(s, "path");
	if (!type && path)
		h->type = pool->tls.on ? RULES_HEALTH_HTTPS : RULES_HEALTH_HTTP;
	if (path && h->path && h->path[0] != '/')
		rules_error(L, path, "path must start with \"/\", e.g. path = \"/owa/healthcheck.htm\";");
	if (h->method && (!*h->method || strpbrk(h->method, " \t\r\n")))
		rules_error(L, config_setting_get_member(s, "method"), "method must be one word, e.g. method = \"GET\";");
	if (h->host && strpbrk(h->host, " \t\r\n/"))
		rules_error(L, config_setting_get_member(s, "host"), "host must be a host name, e.g. host = \"mail.contoso.com\";");
	if (h->type == RULES_HEALTH_TCP && (path || h->body || config_setting_get_member(s, "method") || h->host))
		rules_error(L, s, "a tcp check only connects; path, method, host and body need type = \"http\" or \"https\"");
	if (h->type == RULES_HEALTH_TCP && config_setting_get_member(s, "expect"))
		rules_warn(L, config_setting_get_member(s, "expect"), "expect has no effect on a tcp check, which reads no "
		           "answer; give the check a path (or type = \"http\"), or remove expect");
	if (h->sni && h->type != RULES_HEALTH_HTTPS)
		rules_warn(L, config_setting_get_member(s, "sni"), "sni is the TLS name an https check sends, and this check "
		           "is not https; remove sni, or give the pool tls (or type = \"https\")");
	if (h->timeout_ms > h->interval_ms)
		rules_error(L, s, "timeout (%u ms) is longer than interval (%u ms); a check must end before the next starts",
		            h->timeout_ms, h->interval_ms);
	if (h->type == RULES_HEALTH_NONE) {
		h->passive_fall = 0;    /* nothing would bring the server back */
		/* The first key after type: one message says it for all of them. */
		for (int k = 0; k < config_setting_length(s); k++) {
			const config_setting_t *m = config_setting_get_elem(s, (unsigned)k);
			if (strcmp(config_setting_name(m), "type") != 0) {
				rules_warn(L, m, "type = \"none\" turns checks off, so %s and the other keys of this health "
				           "group do nothing; remove them, or choose type = \"tcp\", \"http\" or \"https\"",
				           config_setting_name(m));
				break;
			}
		}
	}
}

/* Pool keys that only HTTP requests use, on a pool that only passthrough routes use:
 * the relay passes the client's bytes untouched, so the setting would silently do
 * nothing. Only what the pool's own entry writes (a template serves both kinds). */
void rules_warn_pool_keys_unused(struct rules_load *L)
{
	const struct rules_config *c = L->cfg;
	for (size_t i = 0; i < c->npools; i++) {
		bool http = false, pass = false;
		for (size_t k = 0; k < c->nservices; k++)
			for (size_t r = 0; r < c->services[k].nroutes; r++)
				if (c->services[k].routes[r].pool == (long)i) {
					pass = pass || c->services[k].routes[r].passthrough;
					http = http || !c->services[k].routes[r].passthrough;
				}
		const config_setting_t *s = config_setting_get_elem(L->pools_set, (unsigned)i);
		if (!pass || http || !s || !config_setting_is_group(s))
			continue;
		const config_setting_t *k;
		if ((k = config_setting_get_member(s, "share_connections")))
			rules_warn(L, k, "share_connections has no effect on pool \"%s\": only passthrough routes use it, and "
			           "each of their connections is relayed on a server connection of its own; remove it",
			           c->pools[i].name);
		if ((k = config_setting_get_member(s, "tls")))
			rules_warn(L, k, "tls has no effect on pool \"%s\": only passthrough routes use it, and they relay "
			           "the client's TLS untouched; remove it, or terminate TLS on the service (no passthrough)",
			           c->pools[i].name);
		if (c->pools[i].balance == RULES_BALANCE_COOKIE && (k = config_setting_get_member(s, "balance")))
			rules_warn(L, k, "balance = \"cookie\" cannot work on pool \"%s\": only passthrough routes use it, "
			           "and a relay sees no HTTP to put a cookie in; use balance = \"source\" for affinity",
			           c->pools[i].name);
		for (int t = 0; t < 2; t++)
			if ((k = config_setting_get_member(s, t ? "retry_budget" : "retry_body")))
				rules_warn(L, k, "%s has no effect on pool \"%s\": only passthrough routes use it, and a relay "
				           "retries only a failed connect, before anything was sent (retries bounds that); "
				           "remove it", t ? "retry_budget" : "retry_body", c->pools[i].name);
	}
}
