/*
 * load_plugin.c - plugin entries and the plugins = [ ... ] list of a route.
 * Only names and arguments are read here; the gateway loads the modules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* A scalar argument as the plugin gets it: text. */
static char *rules_arg_text(struct rules_load *L, const config_setting_t *e, const char *name)
{
	char buf[64];
	const char *t = buf;
	switch (config_setting_type(e)) {
	case CONFIG_TYPE_STRING:
		t = config_setting_get_string(e);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		snprintf(buf, sizeof(buf), "%lld", config_setting_get_int64(e));
		break;
	case CONFIG_TYPE_FLOAT:
		snprintf(buf, sizeof(buf), "%g", config_setting_get_float(e));
		break;
	case CONFIG_TYPE_BOOL:
		t = config_setting_get_bool(e) ? "true" : "false";
		break;
	default:
		rules_error(L, e, "plugin argument %s: write a string, a number, true/false or a list [ ... ] of them", name);
		return NULL;
	}
	char *out = strdup(t);
	if (!out)
		rules_error(L, e, "out of memory");
	return out;
}

static void rules_plugin_arg_read(struct rules_load *L, const config_setting_t *e, struct rules_plugin_arg *a)
{
	int t = config_setting_type(e);
	a->line = config_setting_source_line(e);
	a->is_list = t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY;
	size_t n = a->is_list ? (size_t)config_setting_length(e) : 1;
	if (!(a->name = strdup(config_setting_name(e))) || !(a->values = rules_calloc(L, e, n, sizeof(*a->values))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *v = a->is_list ? config_setting_get_elem(e, (unsigned)i) : e;
		if (!(a->values[a->nvalues] = rules_arg_text(L, v, a->name)))
			return;
		a->nvalues++;
	}
}

static void rules_plugin_args(struct rules_load *L, const config_setting_t *s, struct rules_plugin *p)
{
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "args must be a group: args = { allow = [ \"192.168.0.0/16\" ]; };");
		return;
	}
	size_t n = (size_t)config_setting_length(s);
	if (!(p->args = rules_calloc(L, s, n, sizeof(*p->args))))
		return;
	for (size_t i = 0; i < n; i++, p->nargs++)
		rules_plugin_arg_read(L, config_setting_get_elem(s, (unsigned)i), &p->args[i]);
}

/* A bundled module is a bare name: it must not reach outside the plugin folder. */
static bool rules_module_name_ok(const char *m)
{
	if (!*m)
		return false;
	for (; *m; m++)
		if (!((*m >= 'a' && *m <= 'z') || (*m >= '0' && *m <= '9') || *m == '_' || *m == '-'))
			return false;
	return true;
}

static void rules_plugin_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_plugin *p = &L->cfg->plugins[i];
	p->line = config_setting_source_line(s);
	if (!(p->file = strdup(rules_setting_file(L, s)))) {
		rules_error(L, s, "out of memory");
		return;
	}
	if (!rules_is_group(L, s, "plugins"))
		return;
	rules_section_apply(L, s, RULES_G_PLUGIN, p);
	const config_setting_t *args = config_setting_get_member(s, "args");
	if (args)
		rules_plugin_args(L, args, p);
	for (size_t j = 0; p->name && j < i; j++)
		if (L->cfg->plugins[j].name && strcmp(L->cfg->plugins[j].name, p->name) == 0) {
			rules_error(L, s, "duplicate plugin name \"%s\"; the first is at %s", p->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
			break;
		}
	if (p->module && p->path)
		rules_error(L, s, "plugin \"%s\" has both module and path; keep one", p->name ? p->name : "");
	else if (!p->module && !p->path)
		rules_error(L, s, "plugin \"%s\" needs module = \"NAME\"; (a bundled plugin: ip_filter, path_filter, "
		            "security_headers, header_rules) or path = \"FILE.so\";", p->name ? p->name : "");
	else if (p->module && !rules_module_name_ok(p->module))
		rules_error(L, config_setting_get_member(s, "module"), "module \"%s\" is not a bundled plugin's name "
		            "(letters, digits, _ and -); for a file of your own write path = \"%s\";", p->module, p->module);
	if (p->path)
		rules_path_resolve(L, s, &p->path);
}

void rules_set_plugins(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	if (!rules_is_group_list(L, s, "plugins = ( { name = \"NAME\"; module = \"ip_filter\"; args = { ... }; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	struct rules_config *c = L->cfg;
	if (!(c->plugins = rules_calloc(L, s, n, sizeof(*c->plugins))) ||
	    !(L->plugin_used = rules_calloc(L, s, n, sizeof(*L->plugin_used))))
		return;
	L->plugins_set = s;
	for (size_t i = 0; i < n; i++, c->nplugins++)
		rules_plugin_read(L, s, i);
}

static long rules_plugin_find(const struct rules_config *c, const char *name)
{
	for (size_t i = 0; i < c->nplugins; i++)
		if (c->plugins[i].name && strcmp(c->plugins[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void rules_plugin_unknown(struct rules_load *L, const config_setting_t *s, const char *name)
{
	struct rules_hint h = { .word = name };
	for (size_t i = 0; i < L->cfg->nplugins; i++)
		if (L->cfg->plugins[i].name)
			rules_hint_try(&h, L->cfg->plugins[i].name);
	if (h.n)
		rules_error(L, s, "no plugin named \"%s\"%s", name, rules_hint_done(&h));
	else
		rules_error(L, s, "no plugin named \"%s\"; define it in plugins = ( { name = \"%s\"; module = \"...\"; } );",
		            name, name);
}

/* plugins = [ "a", "b" ] on a route: they run in this order. */
void rules_set_route_plugins(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_route *r = field;
	if (!rules_is_string_list(L, s, "plugins = [ \"lan-only\", \"sec\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (!(r->plugins = rules_calloc(L, s, n, sizeof(*r->plugins))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			rules_error(L, e, "each entry of plugins must be a plugin name in double quotes");
			continue;
		}
		const char *name = config_setting_get_string(e);
		long k = rules_plugin_find(L->cfg, name);
		if (k < 0) {
			rules_plugin_unknown(L, e, name);
			continue;
		}
		for (size_t j = 0; j < r->nplugins; j++)
			if (r->plugins[j] == (size_t)k) {
				rules_error(L, e, "plugin \"%s\" is listed twice on this route; keep one", name);
				k = -1;
				break;
			}
		if (k >= 0) {
			L->plugin_used[k] = true;
			r->plugins[r->nplugins++] = (size_t)k;
		}
	}
}
