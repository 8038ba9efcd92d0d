/*
 * template.c - templates: named sets of route and pool settings, the file's
 * own and the built-in ones; which keys a template may hold is the schema's
 * RULES_G_TEMPLATE.
 */
#include <string.h>

#include "load.h"
#include "rules_builtin.h"

/* What a template may hold: what routes and pools inherit, not what names them or picks their servers. */
static bool rules_template_key_ok(const char *k)
{
	return rules_schema_find(RULES_G_TEMPLATE, k) != NULL;
}

static const char *rules_template_name(const config_setting_t *t)
{
	const config_setting_t *n = config_setting_get_member(t, "name");
	return n && config_setting_type(n) == CONFIG_TYPE_STRING ? config_setting_get_string(n) : NULL;
}

/* Values are checked where a route or pool uses the template; names and keys here, once. */
void rules_templates_check(struct rules_load *L, const config_setting_t *s)
{
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *t = config_setting_get_elem(s, (unsigned)i);
		if (!rules_is_group(L, t, "templates"))
			continue;
		const char *name = rules_template_name(t);
		if (!name)
			rules_error(L, t, "a template needs name = \"NAME\";");
		for (int j = 0; name && j < i; j++) {
			const char *other = rules_template_name(config_setting_get_elem(s, (unsigned)j));
			if (other && strcmp(other, name) == 0)
				rules_error(L, t, "duplicate template name \"%s\"; the first is at %s", name,
				            rules_where(L, config_setting_get_elem(s, (unsigned)j)));
		}
		for (int k = 0; k < config_setting_length(t); k++) {
			const config_setting_t *e = config_setting_get_elem(t, (unsigned)k);
			const char *key = config_setting_name(e);
			if (strcmp(key, "name") == 0 || rules_template_key_ok(key))
				continue;
			if (rules_schema_find(RULES_G_ROUTE, key) || rules_schema_find(RULES_G_POOL, key)) {
				rules_error(L, e, "%s belongs to each route or pool, not to a template", key);
				continue;
			}
			struct rules_hint h = { .word = key };
			for (int g = 0; g < 2; g++)
				for (size_t r = 0; r < rules_schema_count; r++)
					if ((rules_schema[r].places & RULES_IN(g ? RULES_G_POOL : RULES_G_ROUTE)) &&
					    (rules_schema[r].places & RULES_IN(RULES_G_TEMPLATE)))
						rules_hint_try(&h, rules_schema[r].name);
			rules_error(L, e, "unknown key \"%s\" in template%s", key,
			            h.n ? rules_hint_done(&h) : "; a template holds route and pool settings");
		}
	}
}

void rules_set_templates(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	if (!rules_is_group_list(L, s, "templates = ( { name = \"NAME\"; idle_timeout = \"30m\"; } );"))
		return;
	L->templates = s;
	rules_templates_check(L, s);
}

/* The template named name: the file's own first, since a template of the same
 * name replaces the built-in one. NULL when there is none; h (may be NULL)
 * collects the names close to it. */
static const config_setting_t *rules_template_lookup(struct rules_load *L, const char *name, struct rules_hint *h)
{
	for (size_t b = 0; b <= rules_nbuiltins; b++) {
		const config_setting_t *list = b == 0 ? L->templates
		                               : L->builtin ? config_lookup(&L->builtin[b - 1], "templates") : NULL;
		for (int i = 0; list && i < config_setting_length(list); i++) {
			const config_setting_t *c = config_setting_get_elem(list, (unsigned)i);
			const char *n = rules_template_name(c);
			if (n && strcmp(n, name) == 0)
				return c;
			if (n && h)
				rules_hint_try(h, n);
		}
	}
	return NULL;
}

const config_setting_t *rules_template_get(struct rules_load *L, const config_setting_t *group)
{
	const config_setting_t *t = config_setting_get_member(group, "template");
	if (!t || config_setting_type(t) != CONFIG_TYPE_STRING)
		return NULL;
	return rules_template_lookup(L, config_setting_get_string(t), NULL);
}

const config_setting_t *rules_template_of(struct rules_load *L, const config_setting_t *group)
{
	const config_setting_t *t = config_setting_get_member(group, "template");
	if (!t)
		return NULL;
	if (config_setting_type(t) != CONFIG_TYPE_STRING) {
		rules_error(L, t, "template must be a template name in double quotes");
		return NULL;
	}
	const char *name = config_setting_get_string(t);
	struct rules_hint h = { .word = name };
	const config_setting_t *found = rules_template_lookup(L, name, &h);
	if (found)
		return found;
	if (h.n)
		rules_error(L, t, "no template named \"%s\"%s", name, rules_hint_done(&h));
	else
		rules_error(L, t, "no template named \"%s\"; define it in templates = ( { name = \"%s\"; ... } );", name,
		            name);
	return NULL;
}
