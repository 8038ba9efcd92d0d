/*
 * print.c - the effective configuration, after templates and defaults, in the
 * rule file's own syntax: what `onegate check --print` shows an admin so that
 * what a template set is never a guess.
 */
#include <stdio.h>
#include <string.h>

#include "certs.h"
#include "rules_int.h"
#include "schema.h"

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

static void rules_print_pool(FILE *out, const struct rules_pool *p)
{
	fprintf(out, "  { name = \"%s\"; balance = \"%s\";", p->name,
	        rules_schema_word(RULES_G_POOL, "balance", (int)p->balance));
	rules_print_ms(out, "connect_timeout", p->connect_timeout_ms);
	rules_print_ms(out, "idle_timeout", p->idle_timeout_ms);
	if (p->proxy_protocol)
		fprintf(out, " proxy_protocol = %d;", p->proxy_protocol);
	if (!p->share_connections)
		fprintf(out, " share_connections = false;");
	if (p->source.len)
		fprintf(out, " source = \"%s\";", p->source.text);
	fprintf(out, " retries = %u; retry_budget = %u; retry_body = %u;", p->retries, p->retry_budget, p->retry_body);
	fprintf(out, "  # line %d\n    servers = (", p->line);
	for (size_t i = 0; i < p->nservers; i++) {
		const struct rules_server *s = &p->servers[i];
		fprintf(out, "%s { address = \"%s\";", i ? "," : "", s->addr.text);
		if (strcmp(s->name, s->addr.text) != 0)
			fprintf(out, " name = \"%s\";", s->name);
		fprintf(out, " weight = %u;", s->weight);
		if (s->max_conns)
			fprintf(out, " max_conns = %u;", s->max_conns);
		if (s->backup)
			fprintf(out, " backup = true;");
		fprintf(out, " }");
	}
	fprintf(out, " );\n");
	if (p->tls.on) {
		fprintf(out, "    tls = {");
		rules_print_str(out, "sni", p->tls.sni);
		fprintf(out, " verify = %s;", p->tls.verify ? "true" : "false");
		rules_print_str(out, "ca_file", p->tls.ca_file);
		rules_print_str(out, "cert", p->tls.cert);
		rules_print_str(out, "key", p->tls.key);
		fprintf(out, " };\n");
	}
	if (p->balance == RULES_BALANCE_COOKIE) {
		fprintf(out, "    cookie = {");
		rules_print_str(out, "name", p->cookie.name);
		rules_print_str(out, "path", p->cookie.path);
		rules_print_str(out, "domain", p->cookie.domain);
		fprintf(out, " secure = %s; httponly = %s; max_age = %u; };\n", p->cookie.secure ? "true" : "false",
		        p->cookie.httponly ? "true" : "false", p->cookie.max_age);
	}
	const struct rules_health *h = &p->health;
	if (h->type != RULES_HEALTH_NONE) {
		fprintf(out, "    health = { type = \"%s\";", rules_schema_word(RULES_G_HEALTH, "type", (int)h->type));
		if (h->port)
			fprintf(out, " port = %u;", h->port);
		if (h->type != RULES_HEALTH_TCP) {
			fprintf(out, " method = \"%s\"; path = \"%s\";", h->method ? h->method : "GET", h->path ? h->path : "/");
			rules_print_str(out, "host", h->host);
			rules_print_str(out, "sni", h->sni);
			fprintf(out, " expect = \"%d-%d\";", h->status_min, h->status_max);
			rules_print_str(out, "body", h->body);
		}
		rules_print_ms(out, "interval", h->interval_ms);
		rules_print_ms(out, "timeout", h->timeout_ms);
		fprintf(out, " rise = %u; fall = %u; passive_fall = %u; };\n", h->rise, h->fall, h->passive_fall);
	}
	fprintf(out, "  }");
}

/* A route's settings, inside its braces: what it matches (none for the default), then what it does. */
static void rules_print_route(FILE *out, const struct rules_config *c, const struct rules_route *r, bool dflt)
{
	rules_print_str(out, "sni", r->sni);
	rules_print_str(out, "host", r->host);
	rules_print_str(out, "path", r->path);
	if (r->passthrough && !dflt)
		fprintf(out, " passthrough = true;");
	if (r->pool >= 0)
		fprintf(out, " pool = \"%s\";", c->pools[r->pool].name);
	if (r->port)
		fprintf(out, " port = %u;", r->port);
	rules_print_str(out, "redirect", r->redirect);
	if (r->status)
		fprintf(out, " status = %d;", r->status);
	rules_print_str(out, "host_rewrite", r->host_rewrite);
	if (r->nplugins) {
		fprintf(out, " plugins = [");
		for (size_t k = 0; k < r->nplugins; k++)
			fprintf(out, "%s \"%s\"", k ? "," : "", c->plugins[r->plugins[k]].name);
		fprintf(out, " ];");
	}
	if (r->pool >= 0 && !r->passthrough) {
		rules_print_ms(out, "request_timeout", r->request_timeout_ms);
		rules_print_ms(out, "idle_timeout", r->idle_timeout_ms ? r->idle_timeout_ms : c->pools[r->pool].idle_timeout_ms);
		if (!r->forwarded)
			fprintf(out, " forwarded = false;");
		if (r->normalize_path)
			fprintf(out, " normalize_path = true;");
		if (r->retry_on_timeout)
			fprintf(out, " retry_on_timeout = true;");
	}
}

/* Arguments as the plugin gets them: every value is text. */
static void rules_print_plugin(FILE *out, const struct rules_plugin *p)
{
	fprintf(out, "  { name = \"%s\";", p->name);
	rules_print_str(out, "module", p->module);
	rules_print_str(out, "path", p->path);
	fprintf(out, " args = {");
	for (size_t i = 0; i < p->nargs; i++) {
		const struct rules_plugin_arg *a = &p->args[i];
		fprintf(out, " %s = %s", a->name, a->is_list ? "[" : "");
		for (size_t v = 0; v < a->nvalues; v++) {
			fprintf(out, "%s", v ? ", " : a->is_list ? " " : "");
			rules_print_quoted(out, a->values[v]);
		}
		fprintf(out, "%s;", a->is_list ? " ]" : "");
	}
	fprintf(out, " }; }");
}

void rules_print(FILE *out, const struct rules_config *c)
{
	fprintf(out, "# %s, effective: templates and defaults applied\n", c->path);
	fprintf(out, "onegate = { workers = %u;", c->workers);
	rules_print_ms(out, "drain_timeout", c->drain_timeout_ms);
	if (c->admin.on) {
		fprintf(out, " admin = { listen = \"%s\";", c->admin.listen.text);
		rules_print_str(out, "token_file", c->admin.token_file);
		fprintf(out, " };");
	}
	fprintf(out, " log = { level = \"%s\"; access = %s;", rules_schema_word(RULES_G_LOG, "level", (int)c->log.level),
	        c->log.access ? "true" : "false");
	rules_print_str(out, "file", c->log.file);
	rules_print_str(out, "syslog", c->log.syslog);
	for (int i = 0; c->log.syslog && i < RULES_FACILITIES; i++)
		if (rules_facility_codes[i] == c->log.facility)
			fprintf(out, " facility = \"%s\";", rules_schema_word(RULES_G_LOG, "facility", i));
	fprintf(out, " };");
	rules_print_str(out, "user", c->run_as.user);
	rules_print_str(out, "group", c->run_as.group);
	rules_print_str(out, "state", c->state_dir);
	fprintf(out, " };\n\ncertificates = (\n");
	for (size_t i = 0; i < c->ncerts; i++) {
		const struct rules_cert *ct = &c->certs[i];
		fprintf(out, "  { name = \"%s\";", ct->name);
		rules_print_str(out, "pfx", ct->pfx);
		rules_print_str(out, "password_file", ct->password_file);
		rules_print_str(out, "password_env", ct->password_env);
		rules_print_str(out, "cert", ct->cert);
		rules_print_str(out, "key", ct->key);
		rules_print_str(out, "chain", ct->chain);
		if (ct->nintermediates) {
			fprintf(out, " intermediates = [");
			for (size_t k = 0; k < ct->nintermediates; k++)
				fprintf(out, "%s \"%s\"", k ? "," : "", ct->intermediates[k]);
			fprintf(out, " ];");
		}
		rules_print_str(out, "ca_file", ct->ca_file);
		if (ct->allow_incomplete_chain)
			fprintf(out, " allow_incomplete_chain = true;");
		rules_print_str(out, "ocsp", ct->ocsp);
		if (ct->acme) {
			fprintf(out, " acme = { names = [");
			for (size_t k = 0; k < ct->acme->nnames; k++)
				fprintf(out, "%s \"%s\"", k ? "," : "", ct->acme->names[k]);
			fprintf(out, " ];");
			rules_print_str(out, "email", ct->acme->email);
			rules_print_str(out, "directory", ct->acme->directory);
			if (ct->acme->staging)
				fprintf(out, " staging = true;");
			fprintf(out, " key = \"%s\"; challenge = \"%s\";", rules_schema_word(RULES_G_ACME, "key", (int)ct->acme->key),
			        rules_schema_word(RULES_G_ACME, "challenge", (int)ct->acme->challenge));
			rules_print_str(out, "dns_hook", ct->acme->dns_hook);
			rules_print_str(out, "ca_file", ct->acme->ca_file);
			fprintf(out, " };");
		}
		/* A password written in the file stays out of what an admin pastes into a ticket. */
		fprintf(out, " }%s  # line %d%s:", i + 1 < c->ncerts ? "," : "", ct->line,
		        ct->password ? ", password given inline (not shown)" : "");
		for (size_t n = 0; n < certs_item_nnames(ct->item); n++)
			fprintf(out, " %s", certs_item_name_at(ct->item, n));
		fprintf(out, "\n");
	}
	if (c->nplugins) {
		fprintf(out, ");\n\nplugins = (\n");
		for (size_t i = 0; i < c->nplugins; i++) {
			rules_print_plugin(out, &c->plugins[i]);
			fprintf(out, "%s  # line %d\n", i + 1 < c->nplugins ? "," : "", c->plugins[i].line);
		}
	}
	fprintf(out, ");\n\npools = (\n");
	for (size_t i = 0; i < c->npools; i++) {
		rules_print_pool(out, &c->pools[i]);
		fprintf(out, "%s\n", i + 1 < c->npools ? "," : "");
	}
	fprintf(out, ");\n\nservices = (\n");
	for (size_t s = 0; s < c->nservices; s++) {
		const struct rules_service *svc = &c->services[s];
		fprintf(out, "  { name = \"%s\"; listen = [", svc->name);
		for (size_t a = 0; a < svc->nlisten; a++)
			fprintf(out, "%s \"%s\"", a ? "," : "", svc->listen[a].text);
		fprintf(out, " ];  # line %d, %s\n   ", svc->line,
		        svc->mode == RULES_MODE_TLS ? "TLS terminated here" : svc->mode == RULES_MODE_HTTP ? "plain HTTP"
		                                                                                      : "TLS passthrough");
		if (svc->mode == RULES_MODE_TLS) {
			fprintf(out, " tls = { certificates = [");
			for (size_t k = 0; k < svc->ncerts; k++)
				fprintf(out, "%s \"%s\"", k ? "," : "", c->certs[svc->certs[k]].name);
			fprintf(out, " ]; default = \"%s\";", svc->default_cert >= 0 ? c->certs[svc->default_cert].name : "");
			rules_print_str(out, "ticket_key_file", svc->ticket_key_file);
			fprintf(out, " };");
			if (svc->plain_http)
				fprintf(out, " plain_http = true;");
		}
		if (svc->accept_proxy) {
			fprintf(out, " accept_proxy = true;");
			rules_print_ms(out, "proxy_timeout", svc->proxy_timeout_ms);
		}
		if (!svc->windows_paths && svc->mode != RULES_MODE_PASSTHROUGH)
			fprintf(out, " windows_paths = false;");
		rules_print_ms(out, "hello_timeout", svc->hello_timeout_ms);
		rules_print_ms(out, "header_timeout", svc->header_timeout_ms);
		rules_print_ms(out, "keepalive_timeout", svc->keepalive_timeout_ms);
		rules_print_ms(out, "send_timeout", svc->send_timeout_ms);
		/* Commas between routes and default as its own key: what is printed loads again. */
		size_t nmatching = svc->nroutes - (svc->default_route >= 0);
		fprintf(out, "\n    routes = (\n");
		for (size_t r = 0; r < nmatching; r++) {
			fprintf(out, "      {");
			rules_print_route(out, c, &svc->routes[r], false);
			fprintf(out, " }%s  # line %d\n", r + 1 < nmatching ? "," : "", svc->routes[r].line);
		}
		fprintf(out, "    );\n");
		if (svc->default_route >= 0) {
			fprintf(out, "    default = {");
			rules_print_route(out, c, &svc->routes[svc->default_route], true);
			fprintf(out, " };  # line %d\n", svc->routes[svc->default_route].line);
		} else if (svc->default_reject) {
			fprintf(out, "    default = { reject = true; };  # unrecognized_name\n");
		} else {
			fprintf(out, "    # no default: %s\n", svc->mode == RULES_MODE_HTTP ? "404" : svc->mode == RULES_MODE_TLS
			                                               ? "421 (passthrough: unrecognized_name)" : "unrecognized_name");
		}
		fprintf(out, "  }%s\n", s + 1 < c->nservices ? "," : "");
	}
	fprintf(out, ");\n");
}
