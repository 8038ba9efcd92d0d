/*
 * load.c - reads a libconfig rule file into a struct rules_config.
 *
 * Every group of the file is read by the keys schema.def lists for it (the
 * setter and where the value goes), so the schema, its checks and its
 * defaults sit in one place. A load keeps going after an error so the admin
 * sees every problem at once; any error makes the whole load fail and nothing
 * of it survives. The groups' readers live in load_*.c, template.c and
 * route_index.c; this file holds the messages, the key walk and the snapshot.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs.h"
#include "load.h"
#include "rules_builtin.h"

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

/* The file a setting was read from: the rule file, an @include, or a built-in template. */
const char *rules_setting_file(struct rules_load *L, const config_setting_t *s)
{
	if (s && s->config == &L->defaults)
		return "rules/schema.def (a default)";
	for (size_t i = 0; s && L->builtin && i < rules_nbuiltins; i++)
		if (s->config == &L->builtin[i])
			return rules_builtins[i].file;
	return rules_file_of(L, s ? config_setting_source_file(s) : NULL);
}

const char *rules_where(struct rules_load *L, const config_setting_t *s)
{
	snprintf(L->where, sizeof(L->where), "%s:%d", rules_setting_file(L, s), config_setting_source_line(s));
	return L->where;
}

__attribute__((format(printf, 4, 0)))
static void rules_vreport(struct rules_load *L, enum rules_severity sev, const config_setting_t *s,
                          const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	const char *file = rules_setting_file(L, s);
	rules_diag_add(L->diag, sev, file, s ? config_setting_source_line(s) : 0, "%s", msg);
}

__attribute__((format(printf, 3, 4)))
void rules_error(struct rules_load *L, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rules_vreport(L, RULES_ERROR, s, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 3, 4)))
void rules_warn(struct rules_load *L, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rules_vreport(L, RULES_WARNING, s, fmt, ap);
	va_end(ap);
}

void rules_hint_try(struct rules_hint *h, const char *cand)
{
	size_t d = rules_edit_distance(h->word, cand);
	char quoted[128];
	snprintf(quoted, sizeof(quoted), "\"%s\"", cand);
	if (h->n >= RULES_HINTS_MAX || d > 2 || d >= strlen(cand) || strstr(h->text, quoted))
		return;
	size_t used = strlen(h->text);
	snprintf(h->text + used, sizeof(h->text) - used, h->n ? " or \"%s\"" : "; did you mean \"%s\"", cand);
	h->n++;
}

const char *rules_hint_done(struct rules_hint *h)
{
	size_t used = strlen(h->text);
	if (h->n)
		snprintf(h->text + used, sizeof(h->text) - used, "?");
	return h->text;
}

/* The loader's half of a key (where its value goes), in rules_schema[] order. */
static const struct rules_key rules_keys[] = {
#define RULES_KEY(places, name, type, words, dflt, flags, doc, set, off, missing) { set, off, missing },
#include "schema.def"
#undef RULES_KEY
};

static void rules_unknown_key(struct rules_load *L, const config_setting_t *s, enum rules_group g)
{
	struct rules_hint h = { .word = config_setting_name(s) };
	for (size_t i = 0; i < rules_schema_count; i++)
		if (rules_schema[i].places & RULES_IN(g))
			rules_hint_try(&h, rules_schema[i].name);
	if (h.n) {
		rules_error(L, s, "unknown key \"%s\" %s%s", h.word, rules_schema_groups[g].where, rules_hint_done(&h));
		return;
	}
	char known[256] = "";
	for (size_t i = 0; i < rules_schema_count; i++) {
		if (!(rules_schema[i].places & RULES_IN(g)))
			continue;
		size_t used = strlen(known);
		snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", rules_schema[i].name);
	}
	rules_error(L, s, "unknown key \"%s\" %s; known keys: %s", h.word, rules_schema_groups[g].where, known);
}

/* A key neither its group nor a template writes: its default, as the schema says it. */
static void rules_default_set(struct rules_load *L, size_t k, void *field)
{
	size_t len;
	char name[96];
	const config_setting_t *d;
	switch (rules_schema_default(&rules_schema[k], &len)) {
	case RULES_DEFAULT_VALUE:
		snprintf(name, sizeof(name), "k%zu.%s", k, rules_schema[k].name);
		if ((d = config_lookup(&L->defaults, name)))
			rules_keys[k].set(L, d, field);
		break;
	case RULES_DEFAULT_KEY: {
		/* Durations only (the schema's test checks it); onegate's are read first. */
		const struct rules_schema_key *src = rules_schema_find(RULES_G_ONEGATE, rules_schema[k].dflt + 8);
		if (src)
			*(unsigned *)field = *(const unsigned *)((const char *)L + rules_keys[src - rules_schema].offset);
		break;
	}
	case RULES_DEFAULT_NONE:
	case RULES_DEFAULT_TEXT:
		break;
	}
}

/* The schema's default values as one small rule text, parsed once per load. */
static void rules_defaults_read(struct rules_load *L)
{
	char *text = NULL;
	size_t n = 0, len;
	FILE *f = open_memstream(&text, &n);
	config_init(&L->defaults);
	if (!f) {
		rules_diag_add(L->diag, RULES_ERROR, L->name, 0, "out of memory");
		return;
	}
	for (size_t k = 0; k < rules_schema_count; k++)
		if (rules_schema_default(&rules_schema[k], &len) == RULES_DEFAULT_VALUE)
			fprintf(f, "k%zu = { %s = %.*s; };\n", k, rules_schema[k].name, (int)len, rules_schema[k].dflt);
	fclose(f);
	if (!text || !config_read_string(&L->defaults, text))
		rules_diag_add(L->diag, RULES_ERROR, "rules/schema.def", config_error_line(&L->defaults),
		               "a default is not a value: %s", config_error_text(&L->defaults));
	free(text);
}

/* Checks every key of a group against the schema, then sets the known ones in
 * schema order; a key the group does not set comes from its template, if any,
 * else from its default. */
void rules_section_apply_from(struct rules_load *L, const config_setting_t *group, enum rules_group g, void *obj,
                              const config_setting_t *tmpl)
{
	for (int i = 0; group && i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		if (!rules_schema_find(g, config_setting_name(s)))
			rules_unknown_key(L, s, g);
	}
	for (size_t k = 0; k < rules_schema_count; k++) {
		const struct rules_schema_key *key = &rules_schema[k];
		if (!(key->places & RULES_IN(g)))
			continue;
		const config_setting_t *s = group ? config_setting_get_member(group, key->name) : NULL;
		if (!s && tmpl)
			s = config_setting_get_member(tmpl, key->name);
		L->key = key;
		if (s)
			rules_keys[k].set(L, s, (char *)obj + rules_keys[k].offset);
		else if (rules_keys[k].missing && group)
			rules_error(L, group, "missing \"%s\" %s; add %s", key->name, rules_schema_groups[g].where,
			            rules_keys[k].missing);
		else
			rules_default_set(L, k, (char *)obj + rules_keys[k].offset);
	}
}

void rules_section_apply(struct rules_load *L, const config_setting_t *group,
                                enum rules_group g, void *obj)
{
	rules_section_apply_from(L, group, g, obj, NULL);
}

/* A list of groups, as "pools = ( { ... }, { ... } );". */
bool rules_is_group_list(struct rules_load *L, const config_setting_t *s, const char *example)
{
	if (config_setting_type(s) == CONFIG_TYPE_LIST)
		return true;
	rules_error(L, s, "%s must be a list of groups: %s", config_setting_name(s), example);
	return false;
}

bool rules_is_group(struct rules_load *L, const config_setting_t *s, const char *what)
{
	if (config_setting_is_group(s))
		return true;
	rules_error(L, s, "each entry of %s must be a group { ... }", what);
	return false;
}

/* A list () or array [] of strings, as servers and listen are written. */
bool rules_is_string_list(struct rules_load *L, const config_setting_t *s, const char *example)
{
	int t = config_setting_type(s);
	if (t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY)
		return true;
	rules_error(L, s, "%s must be a list of strings: %s", config_setting_name(s), example);
	return false;
}

void *rules_calloc(struct rules_load *L, const config_setting_t *s, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		rules_error(L, s, "out of memory");
	return p;
}

void rules_set_string(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_bool(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		rules_error(L, s, "%s must be true or false", config_setting_name(s));
		return;
	}
	*(bool *)field = config_setting_get_bool(s);
}

bool rules_get_int(struct rules_load *L, const config_setting_t *s, long long *v)
{
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		rules_error(L, s, "%s must be a whole number", config_setting_name(s));
		return false;
	}
	*v = config_setting_get_int64(s);
	return true;
}

/* A key read elsewhere (template is looked at before the rest of its group). */
void rules_set_nothing(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)L;
	(void)s;
	(void)field;
}

void rules_set_setting(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)L;
	*(const config_setting_t **)field = s;
}

/* A setting that is one of a few words (NULL-terminated): its index, or -1 after reporting what it may be. */
int rules_word(struct rules_load *L, const config_setting_t *s, const char *const *names)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : "";
	char list[256] = "";
	for (size_t i = 0; names[i]; i++) {
		if (strcmp(v, names[i]) == 0)
			return (int)i;
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
	}
	rules_error(L, s, "%s must be %s", config_setting_name(s), list);
	return -1;
}

/* A key of type RULES_T_WORD: its word's index, into an enum field. */
void rules_set_word(struct rules_load *L, const config_setting_t *s, void *field)
{
	int i = rules_word(L, s, L->key->words);
	if (i >= 0)
		*(int *)field = i;
}

/* Files named in the rule file are relative to the rule file's folder, not to where onegate started. */
void rules_path_resolve(struct rules_load *L, const config_setting_t *s, char **path)
{
	if (!*path || (*path)[0] == '/' || !L->dir)
		return;
	char *full;
	if (asprintf(&full, "%s/%s", L->dir, *path) < 0) {
		rules_error(L, s, "out of memory");
		return;
	}
	free(*path);
	*path = full;
}

static void rules_pool_clear(struct rules_pool *p)
{
	for (size_t i = 0; i < p->nservers; i++) {
		rules_addr_clear(&p->servers[i].addr);
		free(p->servers[i].host);
		free(p->servers[i].name);
	}
	free(p->servers);
	free(p->name);
	free(p->cookie.name);
	free(p->cookie.path);
	free(p->cookie.domain);
	free(p->health.method);
	free(p->health.path);
	free(p->health.host);
	free(p->health.body);
	free(p->health.sni);
	free(p->tls.sni);
	free(p->tls.ca_file);
	free(p->tls.cert);
	free(p->tls.key);
	rules_addr_clear(&p->source);
}

static void rules_route_clear(struct rules_route *r)
{
	free(r->sni);
	free(r->host);
	free(r->path);
	free(r->redirect);
	free(r->host_rewrite);
	free(r->plugins);
	rules_namemap_free(r->sni_only);
}

static void rules_service_clear(struct rules_service *s)
{
	for (size_t i = 0; i < s->nlisten; i++)
		rules_addr_clear(&s->listen[i]);
	free(s->listen);
	for (size_t i = 0; i < s->nroutes; i++)
		rules_route_clear(&s->routes[i]);
	free(s->routes);
	rules_namemap_free(s->sni_map);
	rules_namemap_free(s->host_map);
	for (size_t i = 0; i < s->nhost_sets; i++)
		free(s->host_sets[i].routes);
	free(s->host_sets);
	if (s->any_host)
		free(s->any_host->routes);
	free(s->any_host);
	free(s->certs);
	free(s->name);
	free(s->ticket_key_file);
	if (s->ticket_keys)
		explicit_bzero(s->ticket_keys, s->nticket_keys * RULES_TICKET_KEY_LEN);
	free(s->ticket_keys);
}

static void rules_cert_clear(struct rules_cert *c)
{
	free(c->name);
	free(c->pfx);
	free(c->password);
	free(c->password_file);
	free(c->password_env);
	free(c->cert);
	free(c->key);
	free(c->chain);
	free(c->ca_file);
	free(c->ocsp);
	for (size_t i = 0; i < c->nintermediates; i++)
		free(c->intermediates[i]);
	free(c->intermediates);
	if (c->acme) {
		for (size_t i = 0; i < c->acme->nnames; i++)
			free(c->acme->names[i]);
		free(c->acme->names);
		free(c->acme->email);
		free(c->acme->directory);
		free(c->acme->dns_hook);
		free(c->acme->ca_file);
		free(c->acme);
	}
	certs_item_unref(c->item);
}

static void rules_plugin_clear(struct rules_plugin *p)
{
	for (size_t i = 0; i < p->nargs; i++) {
		for (size_t v = 0; v < p->args[i].nvalues; v++)
			free(p->args[i].values[v]);
		free(p->args[i].values);
		free(p->args[i].name);
	}
	free(p->args);
	free(p->name);
	free(p->module);
	free(p->path);
	free(p->file);
}

static void rules_config_free(struct rules_config *c)
{
	if (!c)
		return;
	/* Instances first: they may hold on to their arguments. */
	if (c->plugins_release)
		c->plugins_release(c->plugins_live);
	for (size_t i = 0; i < c->nplugins; i++)
		rules_plugin_clear(&c->plugins[i]);
	free(c->plugins);
	for (size_t i = 0; i < c->npools; i++)
		rules_pool_clear(&c->pools[i]);
	free(c->pools);
	for (size_t i = 0; i < c->nservices; i++)
		rules_service_clear(&c->services[i]);
	free(c->services);
	for (size_t i = 0; i < c->ncerts; i++)
		rules_cert_clear(&c->certs[i]);
	free(c->certs);
	rules_addr_clear(&c->admin.listen);
	free(c->admin.token_file);
	free(c->log.file);
	free(c->log.syslog);
	free(c->run_as.user);
	free(c->run_as.group);
	free(c->state_dir);
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
	/* A shipped template with a wrong key would be ignored silently where it is used. */
	for (size_t i = 0; L->builtin && i < rules_nbuiltins; i++) {
		const config_setting_t *list = config_lookup(&L->builtin[i], "templates");
		if (list)
			rules_templates_check(L, list);
	}
	const config_setting_t *root = config_root_setting(lc);
	/* Pools, routes and services take some defaults from onegate's keys, so those exist without the group. */
	if (!config_setting_get_member(root, "onegate"))
		rules_set_onegate(L, NULL, L);
	rules_section_apply(L, root, RULES_G_TOP, L);
	if (L->certs_set)
		rules_check_acme(L);
	L->cfg->workers = L->workers ? L->workers : rules_cpu_count();
	L->cfg->drain_timeout_ms = L->drain_ms;
	if (L->pool_used)
		rules_warn_unused_pools(L);
	if (L->pools_set)
		rules_warn_pool_keys_unused(L);
	for (size_t i = 0; L->plugin_used && i < L->cfg->nplugins; i++)
		if (!L->plugin_used[i] && L->cfg->plugins[i].name)
			rules_warn(L, config_setting_get_elem(L->plugins_set, (unsigned)i),
			           "plugin \"%s\" is not used by any route or default", L->cfg->plugins[i].name);
}

static void rules_syntax_error(struct rules_load *L, const config_t *lc)
{
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO && config_error_line(lc) == 0)
		rules_diag_add(L->diag, RULES_ERROR, L->name, 0, "cannot read the rule file: %s", strerror(L->io_errno));
	else
		rules_diag_add(L->diag, RULES_ERROR, rules_file_of(L, config_error_file(lc)), config_error_line(lc),
		               "%s", config_error_text(lc) ? config_error_text(lc) : "no rule text");
}

/* The shipped templates are parsed for each load: they are small, and a load owns everything it reads. */
static void rules_builtins_read(struct rules_load *L)
{
	if (!(L->builtin = calloc(rules_nbuiltins ? rules_nbuiltins : 1, sizeof(*L->builtin)))) {
		rules_diag_add(L->diag, RULES_ERROR, L->name, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < rules_nbuiltins; i++) {
		config_init(&L->builtin[i]);
		if (!config_read_string(&L->builtin[i], rules_builtins[i].text))
			rules_diag_add(L->diag, RULES_ERROR, rules_builtins[i].file, config_error_line(&L->builtin[i]),
			               "built-in template: %s", config_error_text(&L->builtin[i]));
	}
}

static void rules_builtins_free(struct rules_load *L)
{
	for (size_t i = 0; L->builtin && i < rules_nbuiltins; i++)
		config_destroy(&L->builtin[i]);
	free(L->builtin);
	L->builtin = NULL;
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
	rules_defaults_read(L);
	rules_builtins_read(L);
	rules_read_root(L, lc);
	rules_builtins_free(L);
	config_destroy(&L->defaults);
	free(L->pool_used);
	free(L->plugin_used);
	free(L->seen);
	free(L->cert_names);
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
