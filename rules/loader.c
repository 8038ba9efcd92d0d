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
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <libconfig.h>

#include "certs.h"
#include "rules_builtin.h"
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
	unsigned request_ms;                        /* default for every route */
	unsigned hello_ms, header_ms, keepalive_ms, send_ms; /* defaults for every service */
	const config_setting_t *pools_set;
	const config_setting_t *plugins_set;
	const config_setting_t *certs_set;
	bool *plugin_used;
	const config_setting_t *templates;     /* the file's templates list, or NULL */
	config_t *builtin;              /* the shipped templates, parsed: rules_nbuiltins of them */
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

/* What "default = { ... }" fills in: a route that matches nothing itself, or a reject. */
struct rules_default {
	struct rules_route route;       /* first: the action keys' offsets are a route's */
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

/* The file a setting was read from: the rule file, an @include, or a built-in template. */
static const char *rules_setting_file(struct rules_load *L, const config_setting_t *s)
{
	for (size_t i = 0; s && L->builtin && i < rules_nbuiltins; i++)
		if (s->config == &L->builtin[i])
			return rules_builtins[i].file;
	return rules_file_of(L, s ? config_setting_source_file(s) : NULL);
}

static const char *rules_where(struct rules_load *L, const config_setting_t *s)
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
	char quoted[128];
	snprintf(quoted, sizeof(quoted), "\"%s\"", cand);
	if (h->n >= RULES_HINTS_MAX || d > 2 || d >= strlen(cand) || strstr(h->text, quoted))
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

/* Checks every key of a group against the table, then sets the known ones in
 * table order; a key the group does not set comes from its template, if any. */
static void rules_section_apply_from(struct rules_load *L, const config_setting_t *group,
                                     const struct rules_section *sec, void *obj, const config_setting_t *tmpl)
{
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		if (!rules_key_find(sec, config_setting_name(s)))
			rules_unknown_key(L, s, sec);
	}
	for (size_t k = 0; k < sec->nkeys; k++) {
		const struct rules_key *key = &sec->keys[k];
		const config_setting_t *s = config_setting_get_member(group, key->name);
		if (!s && tmpl)
			s = config_setting_get_member(tmpl, key->name);
		if (s)
			key->set(L, s, (char *)obj + key->offset);
		else if (key->missing)
			rules_error(L, group, "missing \"%s\" %s; add %s", key->name, sec->where, key->missing);
	}
}

static void rules_section_apply(struct rules_load *L, const config_setting_t *group,
                                const struct rules_section *sec, void *obj)
{
	rules_section_apply_from(L, group, sec, obj, NULL);
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
	*(long *)field = rules_pool_ref(L, s);
}

static void rules_set_port(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 1 || v > 65535) {
		rules_error(L, s, "port must be from 1 to 65535, not %lld", v);
		return;
	}
	*(unsigned *)field = (unsigned)v;
}

static void rules_set_status(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 200 || v > 599) {
		rules_error(L, s, "status must be an HTTP status from 200 to 599, not %lld", v);
		return;
	}
	*(int *)field = (int)v;
}

/* A path prefix, compared with the resolved request path: so written as one, since a
 * prefix the resolution would change ("/%65cp", "/a/../ecp", "/ecp.") could never match. */
static void rules_set_path(struct rules_load *L, const config_setting_t *s, void *field)
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

#define RULES_WEIGHT_MAX 256

static void rules_set_weight(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 1 || v > RULES_WEIGHT_MAX) {
		rules_error(L, s, "weight must be from 1 to %d, not %lld", RULES_WEIGHT_MAX, v);
		return;
	}
	*(unsigned *)field = (unsigned)v;
}

/* A count that must be at least min. */
static void rules_set_count(struct rules_load *L, const config_setting_t *s, unsigned *field, long long min)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < min || v > 1000000) {
		rules_error(L, s, "%s must be a number from %lld to 1000000, not %lld", config_setting_name(s), min, v);
		return;
	}
	*field = (unsigned)v;
}

static void rules_set_count0(struct rules_load *L, const config_setting_t *s, void *field)
{
	rules_set_count(L, s, field, 0);
}

static void rules_set_count1(struct rules_load *L, const config_setting_t *s, void *field)
{
	rules_set_count(L, s, field, 1);
}

static void rules_set_retries(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 0 || v > RULES_RETRIES_MAX) {
		rules_error(L, s, "retries must be from 0 (never try again) to %d, not %lld", RULES_RETRIES_MAX, v);
		return;
	}
	*(unsigned *)field = (unsigned)v;
}

static void rules_set_retry_budget(struct rules_load *L, const config_setting_t *s, void *field)
{
	long long v;
	if (!rules_get_int(L, s, &v))
		return;
	if (v < 0 || v > RULES_RETRY_BUDGET_MAX) {
		rules_error(L, s, "retry_budget is a percentage from 0 to %d, not %lld", RULES_RETRY_BUDGET_MAX, v);
		return;
	}
	*(unsigned *)field = (unsigned)v;
}

/* A byte count: a whole number, or a string with a binary unit. */
static void rules_set_size(struct rules_load *L, const config_setting_t *s, void *field)
{
	char err[256], text[32];
	const char *v;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (config_setting_get_int64(s) < 0) {
			rules_error(L, s, "%s must be 0 or more bytes", config_setting_name(s));
			return;
		}
		snprintf(text, sizeof(text), "%lld", config_setting_get_int64(s));
		v = text;
		break;
	case CONFIG_TYPE_STRING:
		v = config_setting_get_string(s);
		break;
	default:
		rules_error(L, s, "%s must be a number of bytes or a string like \"16k\"", config_setting_name(s));
		return;
	}
	if (rules_size_text(v, RULES_RETRY_BODY_MAX, field, err, sizeof(err)) < 0)
		rules_error(L, s, "%s: %s", config_setting_name(s), err);
}

/* A server given as a group, for what a plain "host:port" cannot say. */
struct rules_server_entry {
	char *address, *name;
	unsigned weight, max_conns;
	bool backup;
};

static const struct rules_key rules_server_keys[] = {
	{ "address", rules_set_string, offsetof(struct rules_server_entry, address), "address = \"host:port\";" },
	{ "name", rules_set_string, offsetof(struct rules_server_entry, name), NULL },
	{ "weight", rules_set_weight, offsetof(struct rules_server_entry, weight), NULL },
	{ "max_conns", rules_set_count0, offsetof(struct rules_server_entry, max_conns), NULL },
	{ "backup", rules_set_bool, offsetof(struct rules_server_entry, backup), NULL },
};
static const struct rules_section rules_server_section = {
	"in server", rules_server_keys, sizeof(rules_server_keys) / sizeof(rules_server_keys[0])
};

static bool rules_server_read(struct rules_load *L, const config_setting_t *e, struct rules_server *sv)
{
	struct rules_server_entry en = { .weight = 1 };
	const char *text = NULL;
	char err[512];
	bool ok = false;
	if (config_setting_type(e) == CONFIG_TYPE_STRING) {
		text = config_setting_get_string(e);
	} else if (config_setting_is_group(e)) {
		size_t before = rules_diag_errors(L->diag);
		rules_section_apply(L, e, &rules_server_section, &en);
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

static void rules_set_servers(struct rules_load *L, const config_setting_t *s, void *field)
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

/* ---------------------------------------------------------------- tables */

/* A key read elsewhere (template is looked at before the rest of its group). */
static void rules_set_nothing(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)L;
	(void)s;
	(void)field;
}

static void rules_set_port(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_status(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_path(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_route_plugins(struct rules_load *L, const config_setting_t *s, void *field);

/* What a route does is shared with default = { ... }, which matches nothing itself. */
#define RULES_ROUTE_ACTION_KEYS \
	{ "pool", rules_set_route_pool, offsetof(struct rules_route, pool), NULL }, \
	{ "port", rules_set_port, offsetof(struct rules_route, port), NULL }, \
	{ "redirect", rules_set_string, offsetof(struct rules_route, redirect), NULL }, \
	{ "status", rules_set_status, offsetof(struct rules_route, status), NULL }, \
	{ "host_rewrite", rules_set_string, offsetof(struct rules_route, host_rewrite), NULL }, \
	{ "request_timeout", rules_set_duration, offsetof(struct rules_route, request_timeout_ms), NULL }, \
	{ "idle_timeout", rules_set_duration, offsetof(struct rules_route, idle_timeout_ms), NULL }, \
	{ "forwarded", rules_set_bool, offsetof(struct rules_route, forwarded), NULL }, \
	{ "normalize_path", rules_set_bool, offsetof(struct rules_route, normalize_path), NULL }, \
	{ "retry_on_timeout", rules_set_bool, offsetof(struct rules_route, retry_on_timeout), NULL }, \
	{ "plugins", rules_set_route_plugins, 0, NULL }

static const struct rules_key rules_route_keys[] = {
	{ "sni", rules_set_string, offsetof(struct rules_route, sni), NULL },
	{ "host", rules_set_string, offsetof(struct rules_route, host), NULL },
	{ "path", rules_set_path, 0, NULL },
	{ "passthrough", rules_set_bool, offsetof(struct rules_route, passthrough), NULL },
	{ "template", rules_set_nothing, 0, NULL },
	RULES_ROUTE_ACTION_KEYS,
};
static const struct rules_section rules_route_section = {
	"in route", rules_route_keys, sizeof(rules_route_keys) / sizeof(rules_route_keys[0])
};

static const struct rules_key rules_default_keys[] = {
	{ "reject", rules_set_bool, offsetof(struct rules_default, reject), NULL },
	{ "template", rules_set_nothing, 0, NULL },
	RULES_ROUTE_ACTION_KEYS,
};
static const struct rules_section rules_default_section = {
	"in default", rules_default_keys, sizeof(rules_default_keys) / sizeof(rules_default_keys[0])
};

static void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_service_tls(struct rules_load *L, const config_setting_t *s, void *field);

static const struct rules_key rules_service_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_service, name), "name = \"NAME\";" },
	{ "listen", rules_set_listen, 0, "listen = [ \"0.0.0.0:443\" ];" },
	{ "tls", rules_set_service_tls, 0, NULL },
	{ "accept_proxy", rules_set_bool, offsetof(struct rules_service, accept_proxy), NULL },
	{ "plain_http", rules_set_bool, offsetof(struct rules_service, plain_http), NULL },
	{ "windows_paths", rules_set_bool, offsetof(struct rules_service, windows_paths), NULL },
	{ "proxy_timeout", rules_set_duration, offsetof(struct rules_service, proxy_timeout_ms), NULL },
	{ "hello_timeout", rules_set_duration, offsetof(struct rules_service, hello_timeout_ms), NULL },
	{ "header_timeout", rules_set_duration, offsetof(struct rules_service, header_timeout_ms), NULL },
	{ "keepalive_timeout", rules_set_duration, offsetof(struct rules_service, keepalive_timeout_ms), NULL },
	{ "send_timeout", rules_set_duration, offsetof(struct rules_service, send_timeout_ms), NULL },
	{ "routes", rules_set_routes, 0, NULL },
	{ "default", rules_set_default, 0, NULL },
};
static const struct rules_section rules_service_section = {
	"in service", rules_service_keys, sizeof(rules_service_keys) / sizeof(rules_service_keys[0])
};

/* The service's tls group, before its names are checked against the certificates. */
struct rules_service_tls {
	const config_setting_t *certificates;
	char *dflt;
	char *ticket_key_file;
};

static void rules_set_setting(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)L;
	*(const config_setting_t **)field = s;
}

static const struct rules_key rules_service_tls_keys[] = {
	{ "certificates", rules_set_setting, offsetof(struct rules_service_tls, certificates),
	  "certificates = [ \"NAME\" ]; naming entries of the top-level certificates list" },
	{ "default", rules_set_string, offsetof(struct rules_service_tls, dflt), NULL },
	{ "ticket_key_file", rules_set_string, offsetof(struct rules_service_tls, ticket_key_file), NULL },
};
static const struct rules_section rules_service_tls_section = {
	"in tls", rules_service_tls_keys, sizeof(rules_service_tls_keys) / sizeof(rules_service_tls_keys[0])
};

static void rules_set_pool_tls(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_source(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_balance(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_cookie(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_health(struct rules_load *L, const config_setting_t *s, void *field);

static const struct rules_key rules_pool_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_pool, name), "name = \"NAME\";" },
	{ "servers", rules_set_servers, 0, "servers = ( \"host:port\" );" },
	{ "proxy_protocol", rules_set_proxy_protocol, offsetof(struct rules_pool, proxy_protocol), NULL },
	{ "share_connections", rules_set_bool, offsetof(struct rules_pool, share_connections), NULL },
	{ "connect_timeout", rules_set_duration, offsetof(struct rules_pool, connect_timeout_ms), NULL },
	{ "idle_timeout", rules_set_duration, offsetof(struct rules_pool, idle_timeout_ms), NULL },
	{ "tls", rules_set_pool_tls, offsetof(struct rules_pool, tls), NULL },
	{ "source", rules_set_source, offsetof(struct rules_pool, source), NULL },
	{ "balance", rules_set_balance, offsetof(struct rules_pool, balance), NULL },
	{ "cookie", rules_set_cookie, offsetof(struct rules_pool, cookie), NULL },
	{ "health", rules_set_health, offsetof(struct rules_pool, health), NULL },
	{ "retries", rules_set_retries, offsetof(struct rules_pool, retries), NULL },
	{ "retry_budget", rules_set_retry_budget, offsetof(struct rules_pool, retry_budget), NULL },
	{ "retry_body", rules_set_size, offsetof(struct rules_pool, retry_body), NULL },
	{ "template", rules_set_nothing, 0, NULL },
};
static const struct rules_section rules_pool_section = {
	"in pool", rules_pool_keys, sizeof(rules_pool_keys) / sizeof(rules_pool_keys[0])
};

static const struct rules_key rules_pool_tls_keys[] = {
	{ "sni", rules_set_string, offsetof(struct rules_pool_tls, sni), NULL },
	{ "verify", rules_set_bool, offsetof(struct rules_pool_tls, verify), NULL },
	{ "ca_file", rules_set_string, offsetof(struct rules_pool_tls, ca_file), NULL },
	{ "cert", rules_set_string, offsetof(struct rules_pool_tls, cert), NULL },
	{ "key", rules_set_string, offsetof(struct rules_pool_tls, key), NULL },
};
static const struct rules_section rules_pool_tls_section = { "in pool tls", rules_pool_tls_keys, 5 };

static void rules_set_intermediates(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_acme(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_acme_names(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_acme_key(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_acme_challenge(struct rules_load *L, const config_setting_t *s, void *field);

static const struct rules_key rules_acme_keys[] = {
	{ "names", rules_set_acme_names, 0, "names = [ \"home.example.com\" ];" },
	{ "email", rules_set_string, offsetof(struct rules_acme, email), "email = \"admin@example.com\";" },
	{ "directory", rules_set_string, offsetof(struct rules_acme, directory), NULL },
	{ "staging", rules_set_bool, offsetof(struct rules_acme, staging), NULL },
	{ "key", rules_set_acme_key, offsetof(struct rules_acme, key), NULL },
	{ "challenge", rules_set_acme_challenge, offsetof(struct rules_acme, challenge), NULL },
	{ "dns_hook", rules_set_string, offsetof(struct rules_acme, dns_hook), NULL },
	{ "ca_file", rules_set_string, offsetof(struct rules_acme, ca_file), NULL },
};
static const struct rules_section rules_acme_section = {
	"in acme", rules_acme_keys, sizeof(rules_acme_keys) / sizeof(rules_acme_keys[0])
};

static const struct rules_key rules_cert_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_cert, name), "name = \"NAME\";" },
	{ "pfx", rules_set_string, offsetof(struct rules_cert, pfx), NULL },
	{ "password", rules_set_string, offsetof(struct rules_cert, password), NULL },
	{ "password_file", rules_set_string, offsetof(struct rules_cert, password_file), NULL },
	{ "password_env", rules_set_string, offsetof(struct rules_cert, password_env), NULL },
	{ "cert", rules_set_string, offsetof(struct rules_cert, cert), NULL },
	{ "key", rules_set_string, offsetof(struct rules_cert, key), NULL },
	{ "chain", rules_set_string, offsetof(struct rules_cert, chain), NULL },
	{ "intermediates", rules_set_intermediates, 0, NULL },
	{ "ca_file", rules_set_string, offsetof(struct rules_cert, ca_file), NULL },
	{ "allow_incomplete_chain", rules_set_bool, offsetof(struct rules_cert, allow_incomplete_chain), NULL },
	{ "ocsp", rules_set_string, offsetof(struct rules_cert, ocsp), NULL },
	{ "acme", rules_set_acme, offsetof(struct rules_cert, acme), NULL },
};
static const struct rules_section rules_cert_section = {
	"in certificate", rules_cert_keys, sizeof(rules_cert_keys) / sizeof(rules_cert_keys[0])
};

/* The admin group, before its address is checked. */
struct rules_admin_entry {
	char *listen, *token_file;
};

static const struct rules_key rules_admin_keys[] = {
	{ "listen", rules_set_string, offsetof(struct rules_admin_entry, listen), NULL },
	{ "token_file", rules_set_string, offsetof(struct rules_admin_entry, token_file), NULL },
};
static const struct rules_section rules_admin_section = { "in admin", rules_admin_keys, 2 };

static void rules_path_resolve(struct rules_load *L, const config_setting_t *s, char **path);

static bool rules_addr_loopback(const struct rules_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/* Loopback by default; anywhere else only behind a token, since the API drains and disables servers. */
static void rules_set_admin(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_admin *a = &L->cfg->admin;
	struct rules_admin_entry en = { 0 };
	char err[512];
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "admin must be a group: admin = { listen = \"127.0.0.1:8404\"; };");
		return;
	}
	rules_section_apply(L, s, &rules_admin_section, &en);
	a->line = config_setting_source_line(s);
	const config_setting_t *ls = config_setting_get_member(s, "listen");
	if (rules_addr_parse(en.listen ? en.listen : "127.0.0.1:8404", &a->listen, NULL, NULL, err, sizeof(err)) < 0) {
		rules_error(L, ls ? ls : s, "%s", err);
	} else {
		a->on = true;
		rules_listen_claim(L, ls ? ls : s, &a->listen);
	}
	a->token_file = en.token_file;
	rules_path_resolve(L, s, &a->token_file);
	if (a->on && !a->token_file && !rules_addr_loopback(&a->listen))
		rules_error(L, ls, "the admin listener on %s is not loopback, so it needs a token: token_file = \"admin.token\";",
		            a->listen.text);
	free(en.listen);
}

static int rules_word(struct rules_load *L, const config_setting_t *s, const char *const *names, size_t n);

/* The log group, before its targets are checked. */
struct rules_log_entry {
	int level, facility;
	bool access;
	char *file, *syslog;
};

static void rules_set_log_level(struct rules_load *L, const config_setting_t *s, void *field)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	int i = rules_word(L, s, names, sizeof(names) / sizeof(names[0]));
	if (i >= 0)
		*(int *)field = i;
}

static const struct { const char *name; int code; } rules_facilities[] = {
	{ "daemon", 3 }, { "user", 1 }, { "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
	{ "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

static void rules_set_facility(struct rules_load *L, const config_setting_t *s, void *field)
{
	const char *names[sizeof(rules_facilities) / sizeof(rules_facilities[0])];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		names[i] = rules_facilities[i].name;
	int i = rules_word(L, s, names, sizeof(names) / sizeof(names[0]));
	if (i >= 0)
		*(int *)field = rules_facilities[i].code;
}

static const struct rules_key rules_log_keys[] = {
	{ "level", rules_set_log_level, offsetof(struct rules_log_entry, level), NULL },
	{ "access", rules_set_bool, offsetof(struct rules_log_entry, access), NULL },
	{ "file", rules_set_string, offsetof(struct rules_log_entry, file), NULL },
	{ "syslog", rules_set_string, offsetof(struct rules_log_entry, syslog), NULL },
	{ "facility", rules_set_facility, offsetof(struct rules_log_entry, facility), NULL },
};
static const struct rules_section rules_log_section = {
	"in log", rules_log_keys, sizeof(rules_log_keys) / sizeof(rules_log_keys[0])
};

/* A syslog target is a local datagram socket (a path) or a UDP collector (HOST:PORT). */
static void rules_log_syslog(struct rules_load *L, const config_setting_t *s, struct rules_log *lg)
{
	char err[512];
	if (lg->syslog[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&lg->syslog_ss;
		struct stat st;
		if (strlen(lg->syslog) >= sizeof(un->sun_path)) {
			rules_error(L, s, "syslog path \"%s\" is too long for a socket path", lg->syslog);
			return;
		}
		/* Missing may only mean this is not the machine it runs on; onegate run refuses to start then. */
		if (stat(lg->syslog, &st) != 0)
			rules_warn(L, s, "syslog = \"%s\": %s; is a syslog daemon (rsyslog, systemd-journald) running here?",
			           lg->syslog, strerror(errno));
		else if (!S_ISSOCK(st.st_mode)) {
			rules_error(L, s, "syslog = \"%s\" is not a socket; name the syslog socket (\"/dev/log\") or log to a "
			            "file: file = \"/var/log/onegate/onegate.log\";", lg->syslog);
			return;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, lg->syslog, strlen(lg->syslog) + 1);
		lg->syslog_len = (socklen_t)sizeof(*un);
		return;
	}
	struct rules_addr a = { 0 };
	if (rules_addr_parse(lg->syslog, &a, NULL, NULL, err, sizeof(err)) < 0) {
		rules_error(L, s, "syslog: %s (a local socket path like \"/dev/log\" or a UDP collector HOST:PORT)", err);
		return;
	}
	lg->syslog_ss = a.ss;
	lg->syslog_len = a.len;
	rules_addr_clear(&a);
}

static void rules_set_log(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_log *lg = &L->cfg->log;
	struct rules_log_entry en = { .level = RULES_LOG_INFO, .facility = 3, .access = true };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "log must be a group: log = { level = \"info\"; file = \"/var/log/onegate/onegate.log\"; };");
		return;
	}
	rules_section_apply(L, s, &rules_log_section, &en);
	lg->line = config_setting_source_line(s);
	lg->level = (enum rules_log_level)en.level;
	lg->access = en.access;
	lg->facility = en.facility;
	lg->file = en.file;
	lg->syslog = en.syslog;
	if (lg->file && lg->syslog) {
		rules_error(L, s, "log has both file and syslog; onegate writes to one of them: keep one");
		return;
	}
	rules_path_resolve(L, s, &lg->file);
	if (lg->syslog)
		rules_log_syslog(L, config_setting_get_member(s, "syslog"), lg);
	if (config_setting_get_member(s, "facility") && !lg->syslog)
		rules_warn(L, config_setting_get_member(s, "facility"), "facility only matters with syslog = \"/dev/log\";");
}

/* Names are looked up at load, so a typo fails the check and not the start. */
static void rules_set_user(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_identity *id = &L->cfg->run_as;
	rules_set_string(L, s, &id->user);
	if (!id->user)
		return;
	id->line = config_setting_source_line(s);
	struct passwd *pw = getpwnam(id->user);
	if (!pw) {
		rules_error(L, s, "there is no user \"%s\" on this system: create it (useradd --system --no-create-home "
		            "--shell /usr/sbin/nologin %s) or name another", id->user, id->user);
		return;
	}
	if (pw->pw_uid == 0) {
		rules_error(L, s, "user \"%s\" is root; name an unprivileged user, or leave user out to stay as started",
		            id->user);
		return;
	}
	id->uid = pw->pw_uid;
	if (!id->group)
		id->gid = pw->pw_gid;
}

static void rules_set_group(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_identity *id = &L->cfg->run_as;
	rules_set_string(L, s, &id->group);
	if (!id->group)
		return;
	struct group *gr = getgrnam(id->group);
	if (!gr)
		rules_error(L, s, "there is no group \"%s\" on this system: create it (groupadd --system %s) or name another",
		            id->group, id->group);
	else
		id->gid = gr->gr_gid;
}

static void rules_set_state(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	rules_set_string(L, s, &L->cfg->state_dir);
	rules_path_resolve(L, s, &L->cfg->state_dir);
	struct stat st;
	if (L->cfg->state_dir && stat(L->cfg->state_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		rules_error(L, s, "state = \"%s\" is not a folder; name a folder (onegate creates it when missing)",
		            L->cfg->state_dir);
}

/* connect/idle here are file-wide defaults for pools, so they must be read before pools. */
static const struct rules_key rules_onegate_keys[] = {
	{ "workers", rules_set_workers, offsetof(struct rules_load, workers), NULL },
	{ "drain_timeout", rules_set_duration, offsetof(struct rules_load, drain_ms), NULL },
	{ "connect_timeout", rules_set_duration, offsetof(struct rules_load, connect_ms), NULL },
	{ "idle_timeout", rules_set_duration, offsetof(struct rules_load, idle_ms), NULL },
	{ "request_timeout", rules_set_duration, offsetof(struct rules_load, request_ms), NULL },
	{ "hello_timeout", rules_set_duration, offsetof(struct rules_load, hello_ms), NULL },
	{ "header_timeout", rules_set_duration, offsetof(struct rules_load, header_ms), NULL },
	{ "keepalive_timeout", rules_set_duration, offsetof(struct rules_load, keepalive_ms), NULL },
	{ "send_timeout", rules_set_duration, offsetof(struct rules_load, send_ms), NULL },
	{ "admin", rules_set_admin, 0, NULL },
	{ "log", rules_set_log, 0, NULL },
	{ "user", rules_set_user, 0, NULL },
	{ "group", rules_set_group, 0, NULL },
	{ "state", rules_set_state, 0, NULL },
};
static const struct rules_section rules_onegate_section = {
	"in onegate", rules_onegate_keys, sizeof(rules_onegate_keys) / sizeof(rules_onegate_keys[0])
};

static void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_certificates(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_pools(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_templates(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_services(struct rules_load *L, const config_setting_t *s, void *field);
static void rules_set_plugins(struct rules_load *L, const config_setting_t *s, void *field);

/* Order matters: routes name pools and plugins, services name certificates, so all are read before services. */
static const struct rules_key rules_top_keys[] = {
	{ "onegate", rules_set_onegate, 0, NULL },
	{ "certificates", rules_set_certificates, 0, NULL },
	{ "plugins", rules_set_plugins, 0, NULL },
	{ "templates", rules_set_templates, 0, NULL },
	{ "pools", rules_set_pools, 0, NULL },
	{ "services", rules_set_services, 0,
	  "services = ( { name = \"NAME\"; listen = [ \"0.0.0.0:443\" ]; default = { pool = \"NAME\"; }; } );" },
};
static const struct rules_section rules_top_section = {
	"at top level", rules_top_keys, sizeof(rules_top_keys) / sizeof(rules_top_keys[0])
};

/* ---------------------------------------------------------------- sections' setters */

/* ---------------------------------------------------------------- templates */

/* What a template may hold: what routes and pools inherit, not what names them or picks their servers. */
static bool rules_template_key_ok(const char *k)
{
	static const char *const own[] = { "name", "servers", "sni", "host", "path", "pool", "template" };
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcmp(k, own[i]) == 0)
			return false;
	return rules_key_find(&rules_route_section, k) || rules_key_find(&rules_pool_section, k);
}

static const char *rules_template_name(const config_setting_t *t)
{
	const config_setting_t *n = config_setting_get_member(t, "name");
	return n && config_setting_type(n) == CONFIG_TYPE_STRING ? config_setting_get_string(n) : NULL;
}

/* Values are checked where a route or pool uses the template; names and keys here, once. */
static void rules_templates_check(struct rules_load *L, const config_setting_t *s)
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
			if (rules_key_find(&rules_route_section, key) || rules_key_find(&rules_pool_section, key)) {
				rules_error(L, e, "%s belongs to each route or pool, not to a template", key);
				continue;
			}
			struct rules_hint h = { .word = key };
			for (size_t r = 0; r < rules_route_section.nkeys; r++)
				if (rules_template_key_ok(rules_route_section.keys[r].name))
					rules_hint_try(&h, rules_route_section.keys[r].name);
			for (size_t p = 0; p < rules_pool_section.nkeys; p++)
				if (rules_template_key_ok(rules_pool_section.keys[p].name))
					rules_hint_try(&h, rules_pool_section.keys[p].name);
			rules_error(L, e, "unknown key \"%s\" in template%s", key,
			            h.n ? rules_hint_done(&h) : "; a template holds route and pool settings");
		}
	}
}

static void rules_set_templates(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	if (!rules_is_group_list(L, s, "templates = ( { name = \"NAME\"; idle_timeout = \"30m\"; } );"))
		return;
	L->templates = s;
	rules_templates_check(L, s);
}

/* The template a route or pool names, or NULL (none, or an unknown name: reported). */
static const config_setting_t *rules_template_of(struct rules_load *L, const config_setting_t *group)
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
	/* The file's own templates first: a template of the same name replaces the built-in one. */
	for (size_t b = 0; b <= rules_nbuiltins; b++) {
		const config_setting_t *list = b == 0 ? L->templates
		                               : L->builtin ? config_lookup(&L->builtin[b - 1], "templates") : NULL;
		for (int i = 0; list && i < config_setting_length(list); i++) {
			const config_setting_t *c = config_setting_get_elem(list, (unsigned)i);
			const char *n = rules_template_name(c);
			if (n && strcmp(n, name) == 0)
				return c;
			if (n)
				rules_hint_try(&h, n);
		}
	}
	if (h.n)
		rules_error(L, t, "no template named \"%s\"%s", name, rules_hint_done(&h));
	else
		rules_error(L, t, "no template named \"%s\"; define it in templates = ( { name = \"%s\"; ... } );", name,
		            name);
	return NULL;
}

static void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "onegate must be a group: onegate = { workers = 0; };");
		return;
	}
	rules_section_apply(L, s, &rules_onegate_section, field);
}

/* What a pool's settings say only together. */
static void rules_pool_finish(struct rules_load *L, const config_setting_t *s, struct rules_pool *p)
{
	struct rules_health *h = &p->health;
	if (!p->cookie.name && p->balance == RULES_BALANCE_COOKIE) {
		p->cookie.name = strdup("ONEGATEID");
		p->cookie.path = strdup("/");
		p->cookie.httponly = true;
		if (!p->cookie.name || !p->cookie.path)
			rules_error(L, s, "out of memory");
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
	p->connect_timeout_ms = L->connect_ms;
	p->idle_timeout_ms = L->idle_ms;
	p->share_connections = true;
	p->retries = RULES_RETRIES;
	p->retry_budget = RULES_RETRY_BUDGET;
	p->retry_body = RULES_RETRY_BODY;
	if (!rules_is_group(L, s, "pools"))
		return;
	rules_section_apply_from(L, s, &rules_pool_section, p, rules_template_of(L, s));
	rules_pool_finish(L, s, p);
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

static void rules_set_pool_tls(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_pool_tls *t = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "tls must be a group: tls = { sni = \"mail.contoso.com\"; verify = true; };");
		return;
	}
	t->on = true;
	t->verify = true;
	rules_section_apply(L, s, &rules_pool_tls_section, t);
	if (!t->cert != !t->key)
		rules_error(L, s, "a client certificate needs both cert and key");
	if (!t->verify && t->ca_file)
		rules_warn(L, config_setting_get_member(s, "ca_file"), "ca_file has no effect with verify = false: the "
		           "server's certificate is not checked at all; remove ca_file, or verify");
	rules_path_resolve(L, s, &t->ca_file);
	rules_path_resolve(L, s, &t->cert);
	rules_path_resolve(L, s, &t->key);
}

static void rules_set_source(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_addr *a = field;
	char err[512], text[300];
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		rules_error(L, s, "source must be an address in double quotes: source = \"10.0.1.5\";");
		return;
	}
	const char *v = config_setting_get_string(s);
	/* An address without a port (port 0): the kernel picks the port. */
	snprintf(text, sizeof(text), strchr(v, ':') && v[0] != '[' ? "[%s]" : "%s", v);
	uint16_t port = 0;
	if (rules_server_parse(text, a, NULL, &port, err, sizeof(err)) < 0 || port != 0) {
		rules_error(L, s, "bad source address \"%s\": write an IPv4 or IPv6 address this host owns, without a port", v);
		return;
	}
	free(a->text);
	if (!(a->text = strdup(v)))
		rules_error(L, s, "out of memory");
}

/* A setting that is one of a few words: its index in names, or -1 after reporting what it may be. */
static int rules_word(struct rules_load *L, const config_setting_t *s, const char *const *names, size_t n)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : "";
	char list[256] = "";
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0)
			return (int)i;
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
	}
	rules_error(L, s, "%s must be %s", config_setting_name(s), list);
	return -1;
}

static void rules_set_balance(struct rules_load *L, const config_setting_t *s, void *field)
{
	static const char *const names[] = { "roundrobin", "leastconn", "source", "cookie" };
	int i = rules_word(L, s, names, sizeof(names) / sizeof(names[0]));
	if (i >= 0)
		*(enum rules_balance *)field = (enum rules_balance)i;
}

static const struct rules_key rules_cookie_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_cookie, name), NULL },
	{ "path", rules_set_string, offsetof(struct rules_cookie, path), NULL },
	{ "domain", rules_set_string, offsetof(struct rules_cookie, domain), NULL },
	{ "secure", rules_set_bool, offsetof(struct rules_cookie, secure), NULL },
	{ "httponly", rules_set_bool, offsetof(struct rules_cookie, httponly), NULL },
	{ "max_age", rules_set_count0, offsetof(struct rules_cookie, max_age), NULL },
};
static const struct rules_section rules_cookie_section = {
	"in cookie", rules_cookie_keys, sizeof(rules_cookie_keys) / sizeof(rules_cookie_keys[0])
};

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

static void rules_set_cookie(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_cookie *c = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "cookie must be a group: cookie = { name = \"MS-WSMAN\"; httponly = false; };");
		return;
	}
	free(c->name);
	free(c->path);
	c->name = c->path = NULL;
	rules_section_apply(L, s, &rules_cookie_section, c);
	if (!c->name)
		c->name = strdup("ONEGATEID");
	if (!c->path && !config_setting_get_member(s, "path"))
		c->path = strdup("/");
	if (!rules_cookie_text_ok(c->name, true))
		rules_error(L, s, "cookie name \"%s\" must be a token: letters, digits and !#$%%&'*+-.^_`|~", c->name);
	if ((c->path && !rules_cookie_text_ok(c->path, false)) || (c->domain && !rules_cookie_text_ok(c->domain, false)))
		rules_error(L, s, "cookie path and domain may not hold spaces, \";\", \",\" or control bytes");
}

/* "200", 200 or "200-399". */
static void rules_set_expect(struct rules_load *L, const config_setting_t *s, void *field)
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

static void rules_set_health_type(struct rules_load *L, const config_setting_t *s, void *field)
{
	static const char *const names[] = { "none", "tcp", "http", "https" };
	int i = rules_word(L, s, names, sizeof(names) / sizeof(names[0]));
	if (i >= 0)
		*(enum rules_health_type *)field = (enum rules_health_type)i;
}

static const struct rules_key rules_health_keys[] = {
	{ "type", rules_set_health_type, offsetof(struct rules_health, type), NULL },
	{ "port", rules_set_port, offsetof(struct rules_health, port), NULL },
	{ "method", rules_set_string, offsetof(struct rules_health, method), NULL },
	{ "path", rules_set_string, offsetof(struct rules_health, path), NULL },
	{ "host", rules_set_string, offsetof(struct rules_health, host), NULL },
	{ "sni", rules_set_string, offsetof(struct rules_health, sni), NULL },
	{ "expect", rules_set_expect, 0, NULL },
	{ "body", rules_set_string, offsetof(struct rules_health, body), NULL },
	{ "interval", rules_set_duration, offsetof(struct rules_health, interval_ms), NULL },
	{ "timeout", rules_set_duration, offsetof(struct rules_health, timeout_ms), NULL },
	{ "rise", rules_set_count1, offsetof(struct rules_health, rise), NULL },
	{ "fall", rules_set_count1, offsetof(struct rules_health, fall), NULL },
	{ "passive_fall", rules_set_count0, offsetof(struct rules_health, passive_fall), NULL },
};
static const struct rules_section rules_health_section = {
	"in health", rules_health_keys, sizeof(rules_health_keys) / sizeof(rules_health_keys[0])
};

static void rules_set_health(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_health *h = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "health must be a group: health = { path = \"/owa/healthcheck.htm\"; interval = \"5s\"; };");
		return;
	}
	const config_setting_t *type = config_setting_get_member(s, "type");
	h->line = config_setting_source_line(s);
	h->interval_ms = 5000;
	h->timeout_ms = 3000;
	h->rise = 2;
	h->fall = 3;
	h->passive_fall = 5;
	h->status_min = 200;
	h->status_max = 399;
	h->type = RULES_HEALTH_TCP;
	rules_section_apply(L, s, &rules_health_section, h);
	/* Without a type, a path means an HTTP probe, over TLS when the pool re-encrypts (its tls is read first). */
	const struct rules_pool *pool = (const struct rules_pool *)((const char *)field - offsetof(struct rules_pool, health));
	if (!type && h->path)
		h->type = pool->tls.on ? RULES_HEALTH_HTTPS : RULES_HEALTH_HTTP;
	if (h->path && h->path[0] != '/')
		rules_error(L, config_setting_get_member(s, "path"), "path must start with \"/\", e.g. path = \"/owa/healthcheck.htm\";");
	if (h->method && (!*h->method || strpbrk(h->method, " \t\r\n")))
		rules_error(L, config_setting_get_member(s, "method"), "method must be one word, e.g. method = \"GET\";");
	if (h->host && strpbrk(h->host, " \t\r\n/"))
		rules_error(L, config_setting_get_member(s, "host"), "host must be a host name, e.g. host = \"mail.contoso.com\";");
	if (h->type == RULES_HEALTH_TCP && (h->path || h->body || h->method || h->host))
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

static void rules_set_intermediates(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_cert *c = field;
	if (!rules_is_string_list(L, s, "intermediates = [ \"issuing-ca.pem\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (!(c->intermediates = rules_calloc(L, s, n, sizeof(*c->intermediates))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			rules_error(L, e, "each entry of intermediates must be a file name in double quotes");
		else if (!(c->intermediates[c->nintermediates++] = strdup(config_setting_get_string(e))))
			rules_error(L, e, "out of memory");
	}
}

/* Files named in the rule file are relative to the rule file's folder, not to where onegate started. */
static void rules_path_resolve(struct rules_load *L, const config_setting_t *s, char **path)
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

struct rules_cert_report {
	struct rules_load *L;
	const config_setting_t *s;
};

static void rules_cert_say(void *arg, bool warning, const char *msg)
{
	struct rules_cert_report *r = arg;
	if (warning)
		rules_warn(r->L, r->s, "%s", msg);
	else
		rules_error(r->L, r->s, "%s", msg);
}

static void rules_cert_load(struct rules_load *L, const config_setting_t *s, struct rules_cert *c)
{
	rules_path_resolve(L, s, &c->pfx);
	rules_path_resolve(L, s, &c->password_file);
	rules_path_resolve(L, s, &c->cert);
	rules_path_resolve(L, s, &c->key);
	rules_path_resolve(L, s, &c->chain);
	rules_path_resolve(L, s, &c->ca_file);
	rules_path_resolve(L, s, &c->ocsp);
	for (size_t i = 0; i < c->nintermediates; i++)
		rules_path_resolve(L, s, &c->intermediates[i]);
	struct certs_source src = {
		.name = c->name, .pfx = c->pfx, .password = c->password, .password_file = c->password_file,
		.password_env = c->password_env, .cert = c->cert, .key = c->key, .chain = c->chain,
		.intermediates = (const char *const *)c->intermediates, .nintermediates = c->nintermediates,
		.ca_file = c->ca_file, .ocsp = c->ocsp, .allow_incomplete_chain = c->allow_incomplete_chain,
		.key_group_set = L->cfg->run_as.user != NULL, .key_group = L->cfg->run_as.gid,
	};
	struct rules_cert_report r = { L, s };
	struct certs_report rep = { rules_cert_say, &r };
	c->item = certs_item_load(&src, &rep);
}


/* ---------------------------------------------------------------- acme */

/* A DNS name a CA can issue for: letters, digits, hyphens, dots, and "*." only in front. */
static bool rules_acme_name_ok(const char *n)
{
	const char *p = strncmp(n, "*.", 2) == 0 ? n + 2 : n;
	if (!*p || *p == '.' || strlen(n) > 253 || !strchr(p, '.'))
		return false;
	for (; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || (*p == '.' && p[1] != '.' && p[1] != '\0')))
			return false;
	return true;
}

static void rules_set_acme_names(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_acme *a = field;
	if (!rules_is_string_list(L, s, "names = [ \"home.example.com\", \"*.home.example.com\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (n == 0) {
		rules_error(L, s, "names is empty; name at least one host the certificate is for");
		return;
	}
	if (!(a->names = rules_calloc(L, s, n, sizeof(*a->names))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			rules_error(L, e, "each entry of names must be a host name in double quotes");
			continue;
		}
		char *v = strdup(config_setting_get_string(e));
		if (!v) {
			rules_error(L, e, "out of memory");
			return;
		}
		size_t len = strlen(v);
		if (len && v[len - 1] == '.')
			v[len - 1] = '\0';
		for (char *p = v; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!rules_acme_name_ok(v)) {
			rules_error(L, e, "\"%s\" is not a name a CA issues for: use a full DNS name (a.example.com), "
			            "or *.example.com for a wildcard", config_setting_get_string(e));
			free(v);
			continue;
		}
		bool dup = false;
		for (size_t k = 0; k < a->nnames; k++)
			dup |= strcmp(a->names[k], v) == 0;
		if (dup) {
			rules_error(L, e, "\"%s\" is named twice in names; keep one", v);
			free(v);
			continue;
		}
		a->names[a->nnames++] = v;
	}
}

static void rules_set_acme_key(struct rules_load *L, const config_setting_t *s, void *field)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : "";
	enum rules_acme_key *k = field;
	if (strcmp(v, "ecdsa-p256") == 0)
		*k = RULES_ACME_ECDSA_P256;
	else if (strcmp(v, "ecdsa-p384") == 0)
		*k = RULES_ACME_ECDSA_P384;
	else if (strcmp(v, "rsa2048") == 0)
		*k = RULES_ACME_RSA2048;
	else
		rules_error(L, s, "key must be \"ecdsa-p256\", \"ecdsa-p384\" or \"rsa2048\"");
}

static void rules_set_acme_challenge(struct rules_load *L, const config_setting_t *s, void *field)
{
	const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : "";
	enum rules_acme_challenge *c = field;
	if (strcmp(v, "http-01") == 0)
		*c = RULES_ACME_HTTP01;
	else if (strcmp(v, "tls-alpn-01") == 0)
		*c = RULES_ACME_TLSALPN01;
	else if (strcmp(v, "dns-01") == 0)
		*c = RULES_ACME_DNS01;
	else
		rules_error(L, s, "challenge must be \"http-01\", \"tls-alpn-01\" or \"dns-01\"");
}

static void rules_set_acme(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_acme **out = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "acme must be a group: acme = { names = [ \"home.example.com\" ]; email = "
		            "\"admin@example.com\"; };");
		return;
	}
	struct rules_acme *a = rules_calloc(L, s, 1, sizeof(*a));
	if (!(*out = a))
		return;
	rules_section_apply(L, s, &rules_acme_section, a);
	rules_path_resolve(L, s, &a->ca_file);
	rules_path_resolve(L, s, &a->dns_hook);
	if (a->email && (!strchr(a->email, '@') || strchr(a->email, ' ') || strchr(a->email, ':')))
		rules_error(L, config_setting_get_member(s, "email"),
		            "email \"%s\" is not an address; the CA writes to it about expiring certificates", a->email);
	if (a->directory && strncmp(a->directory, "https://", 8) != 0)
		rules_error(L, config_setting_get_member(s, "directory"),
		            "directory must be the CA's https:// URL, e.g. \"%s\"", RULES_ACME_LETSENCRYPT);
	if (!a->directory && !(a->directory = strdup(a->staging ? RULES_ACME_LETSENCRYPT_STAGING : RULES_ACME_LETSENCRYPT)))
		rules_error(L, s, "out of memory");
	bool wildcard = false;
	for (size_t i = 0; i < a->nnames; i++)
		wildcard |= a->names[i][0] == '*';
	if ((wildcard || a->challenge == RULES_ACME_DNS01) && !a->dns_hook)
		rules_error(L, s, "%s needs dns-01: add dns_hook = \"/usr/local/bin/dns-update\"; (see docs/rules.md, ACME)",
		            wildcard ? "a wildcard name" : "challenge = \"dns-01\"");
	if (a->dns_hook && access(a->dns_hook, X_OK) != 0)
		rules_error(L, config_setting_get_member(s, "dns_hook"),
		            "dns_hook \"%s\" is not an executable file (%s); make it one (chmod +x)", a->dns_hook,
		            strerror(errno));
	if (a->ca_file && access(a->ca_file, R_OK) != 0)
		rules_error(L, config_setting_get_member(s, "ca_file"), "cannot read ca_file \"%s\": %s", a->ca_file,
		            strerror(errno));
}

static void rules_cert_quiet(void *arg, bool warning, const char *msg)
{
	(void)arg;
	(void)warning;
	(void)msg;
}

/* The certificate issued before (kept in the state folder) when it still fits the
 * names, else a placeholder until the gateway has ordered one. Nothing here talks
 * to the CA. */
static void rules_acme_load(struct rules_load *L, const config_setting_t *s, struct rules_cert *c)
{
	const struct rules_acme *a = c->acme;
	const char *sd = L->cfg->state_dir;
	if (!sd) {
		rules_error(L, s, "certificate \"%s\" is obtained by ACME and needs a state folder for its keys: add "
		            "onegate = { state = \"/var/lib/onegate\"; };", c->name);
		return;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", sd);
	struct stat st;
	while (stat(dir, &st) != 0 && strrchr(dir, '/') && strrchr(dir, '/') != dir)
		*strrchr(dir, '/') = '\0';
	if (access(dir, W_OK) != 0)
		rules_error(L, s, "certificate \"%s\" is obtained by ACME, but the state folder \"%s\" is not writable "
		            "here (%s is not); give it to the user onegate runs as", c->name, sd, dir);
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/" RULES_ACME_DIR "/%s/cert.pem", sd, c->name);
	snprintf(key, sizeof(key), "%s/" RULES_ACME_DIR "/%s/key.pem", sd, c->name);
	if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
		struct certs_source src = { .name = c->name, .cert = cert, .key = key, .ca_file = a->ca_file,
		                            .allow_incomplete_chain = true };
		struct certs_report rep = { rules_cert_quiet, NULL };
		c->item = certs_item_load(&src, &rep);
		bool same = c->item && certs_item_nnames(c->item) == a->nnames;
		for (size_t i = 0; same && i < a->nnames; i++) {
			bool found = false;
			for (size_t k = 0; k < a->nnames; k++)
				found |= strcmp(certs_item_name_at(c->item, k), a->names[i]) == 0;
			same = found;
		}
		if (!same) {
			certs_item_unref(c->item);
			c->item = NULL;
		}
	}
	if (!c->item && a->nnames && !(c->item = certs_item_placeholder(c->name, (const char *const *)a->names, a->nnames)))
		rules_error(L, s, "out of memory");
}

/* Whether a route's host or sni pattern takes a name the CA issues for. */
static bool rules_acme_pattern_takes(const char *pattern, const char *name)
{
	if (!pattern || strcmp(pattern, "*") == 0 || pattern[0] == '~')
		return true;
	if (strcasecmp(pattern, name) == 0)
		return true;
	return name[0] != '*' && certs_name_matches(pattern, name, strlen(name));
}

/* An ACME name no route takes would be proved and paid for to serve nothing; one
 * whose challenge cannot reach the gateway would never be issued. */
static void rules_check_acme(struct rules_load *L)
{
	const struct rules_config *cfg = L->cfg;
	bool plain = false;
	for (size_t v = 0; v < cfg->nservices; v++)
		plain |= cfg->services[v].mode == RULES_MODE_HTTP || cfg->services[v].plain_http;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *c = &cfg->certs[i];
		if (!c->acme)
			continue;
		const config_setting_t *s = config_setting_get_elem(L->certs_set, (unsigned)i);
		bool used = false;
		for (size_t n = 0; n < c->acme->nnames; n++) {
			const char *name = c->acme->names[n];
			bool routed = false;
			for (size_t v = 0; v < cfg->nservices && !routed; v++) {
				const struct rules_service *svc = &cfg->services[v];
				bool listed = false;
				for (size_t k = 0; k < svc->ncerts; k++)
					listed |= svc->certs[k] == i;
				used |= listed;
				for (size_t r = 0; listed && r < svc->nroutes && !routed; r++)
					routed = !svc->routes[r].passthrough &&
					         rules_acme_pattern_takes(svc->routes[r].host, name);
			}
			if (!routed)
				rules_error(L, s, "ACME name \"%s\" of certificate \"%s\" is not routed by any service that uses "
				            "the certificate; add a route with host = \"%s\"; or drop the name", name, c->name, name);
			if (name[0] != '*' && c->acme->challenge == RULES_ACME_HTTP01 && !plain)
				rules_error(L, s, "certificate \"%s\" proves \"%s\" with http-01, but no service takes plain HTTP: add "
				            "one listening on port 80, or set challenge = \"tls-alpn-01\";", c->name, name);
		}
		if (!used)
			rules_warn(L, s, "certificate \"%s\" is obtained by ACME but no service uses it", c->name);
	}
}

static void rules_cert_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_cert *c = &L->cfg->certs[i];
	c->line = config_setting_source_line(s);
	if (!rules_is_group(L, s, "certificates"))
		return;
	size_t before = rules_diag_errors(L->diag);
	rules_section_apply(L, s, &rules_cert_section, c);
	for (size_t j = 0; c->name && j < i; j++)
		if (L->cfg->certs[j].name && strcmp(L->cfg->certs[j].name, c->name) == 0)
			rules_error(L, s, "duplicate certificate name \"%s\"; the first is at %s", c->name,
			            rules_where(L, config_setting_get_elem(list, (unsigned)j)));
	int npass = !!c->password + !!c->password_file + !!c->password_env;
	if (c->acme) {
		if (c->pfx || c->cert || c->key || c->chain || c->nintermediates || c->ocsp || npass)
			rules_error(L, s, "certificate \"%s\" is obtained by ACME; files (pfx, cert, key, chain, ocsp) belong "
			            "to another entry", c->name ? c->name : "");
		if (rules_diag_errors(L->diag) == before && c->name)
			rules_acme_load(L, s, c);
		return;
	}
	if (c->pfx && (c->cert || c->key))
		rules_error(L, s, "certificate \"%s\" has both pfx and cert/key; keep one", c->name ? c->name : "");
	else if (!c->pfx && !c->cert)
		rules_error(L, s, "certificate \"%s\" needs pfx = \"FILE.pfx\"; or cert = \"FILE.pem\"; key = \"FILE.key\";",
		            c->name ? c->name : "");
	else if (c->cert && !c->key)
		rules_error(L, s, "certificate \"%s\" has cert but no key; add key = \"FILE.key\"; (or use pfx)",
		            c->name ? c->name : "");
	if (npass > 1)
		rules_error(L, s, "certificate \"%s\" gives its password more than one way; keep one of password, "
		            "password_file, password_env", c->name ? c->name : "");
	else if (npass && !c->pfx)
		rules_error(L, s, "a password only applies to a pfx file");
	if (rules_diag_errors(L->diag) == before)
		rules_cert_load(L, s, c);
}

static void rules_set_certificates(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	if (!rules_is_group_list(L, s, "certificates = ( { name = \"NAME\"; pfx = \"FILE.pfx\"; password_file = \"FILE\"; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	struct rules_config *c = L->cfg;
	L->certs_set = s;
	if (!(c->certs = rules_calloc(L, s, n, sizeof(*c->certs))))
		return;
	for (size_t i = 0; i < n; i++, c->ncerts++)
		rules_cert_read(L, s, i);
}

static long rules_cert_find(const struct rules_config *c, const char *name)
{
	for (size_t i = 0; i < c->ncerts; i++)
		if (c->certs[i].name && strcmp(c->certs[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void rules_cert_unknown(struct rules_load *L, const config_setting_t *s, const char *name)
{
	struct rules_hint h = { .word = name };
	for (size_t i = 0; i < L->cfg->ncerts; i++)
		if (L->cfg->certs[i].name)
			rules_hint_try(&h, L->cfg->certs[i].name);
	if (h.n)
		rules_error(L, s, "no certificate named \"%s\"%s", name, rules_hint_done(&h));
	else
		rules_error(L, s, "no certificate named \"%s\"; define it in certificates = ( { name = \"%s\"; ... } );",
		            name, name);
}

/* Session ticket keys several gateways share, so that a session one of them
 * started resumes on another: 80-byte keys one after another, the first
 * encrypts and every one decrypts. Read at load, so a reload picks up a
 * rotated file. */
static void rules_ticket_keys_read(struct rules_load *L, const config_setting_t *s, struct rules_service *svc)
{
	rules_path_resolve(L, s, &svc->ticket_key_file);
	const char *path = svc->ticket_key_file;
	uint8_t buf[RULES_TICKET_KEY_LEN * RULES_TICKET_KEYS_MAX + 1];
	FILE *f = fopen(path, "rb");
	if (!f) {
		rules_error(L, s, "cannot read ticket_key_file \"%s\": %s", path, strerror(errno));
		return;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	struct stat st;
	const struct rules_identity *id = &L->cfg->run_as;
	bool shared = fstat(fileno(f), &st) == 0 &&
	              ((st.st_mode & 007) || ((st.st_mode & 070) && !(id->user && st.st_gid == id->gid)));
	fclose(f);
	if (n == 0 || n % RULES_TICKET_KEY_LEN || n > RULES_TICKET_KEY_LEN * RULES_TICKET_KEYS_MAX) {
		rules_error(L, s, "ticket_key_file \"%s\" holds %s%zu bytes; it must hold 1 to %d keys of %d random bytes "
		            "one after another (openssl rand %d > \"%s\")", path, n == sizeof(buf) ? "more than " : "",
		            n == sizeof(buf) ? n - 1 : n, RULES_TICKET_KEYS_MAX, RULES_TICKET_KEY_LEN, RULES_TICKET_KEY_LEN,
		            path);
	} else if (!(svc->ticket_keys = malloc(n))) {
		rules_error(L, s, "out of memory");
	} else {
		memcpy(svc->ticket_keys, buf, n);
		svc->nticket_keys = n / RULES_TICKET_KEY_LEN;
		if (shared)
			rules_warn(L, s, "ticket_key_file \"%s\" can be read by other users (mode %03o), and it decrypts "
			           "every session it protects; run chmod 600 \"%s\"", path, (unsigned)(st.st_mode & 0777), path);
	}
	explicit_bzero(buf, sizeof(buf));
}

static void rules_set_service_tls(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	struct rules_service_tls t = { 0 };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "tls must be a group: tls = { certificates = [ \"NAME\" ]; };");
		return;
	}
	svc->mode = RULES_MODE_TLS;
	rules_section_apply(L, s, &rules_service_tls_section, &t);
	const config_setting_t *list = t.certificates;
	if (list && rules_is_string_list(L, list, "certificates = [ \"contoso\", \"lab\" ];")) {
		size_t n = (size_t)config_setting_length(list);
		if (n == 0)
			rules_error(L, list, "certificates is empty; name at least one certificate");
		if ((svc->certs = rules_calloc(L, list, n, sizeof(*svc->certs))))
			for (size_t i = 0; i < n; i++) {
				const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
				long k = config_setting_type(e) == CONFIG_TYPE_STRING
				                 ? rules_cert_find(L->cfg, config_setting_get_string(e)) : -2;
				if (k == -2)
					rules_error(L, e, "each entry of certificates must be a certificate name in double quotes");
				else if (k < 0)
					rules_cert_unknown(L, e, config_setting_get_string(e));
				else
					svc->certs[svc->ncerts++] = (size_t)k;
			}
	}
	svc->default_cert = svc->ncerts ? (long)svc->certs[0] : -1;
	if (t.dflt) {
		const config_setting_t *d = config_setting_get_member(s, "default");
		long k = rules_cert_find(L->cfg, t.dflt);
		bool listed = false;
		for (size_t i = 0; k >= 0 && i < svc->ncerts; i++)
			listed |= svc->certs[i] == (size_t)k;
		if (k < 0)
			rules_cert_unknown(L, d, t.dflt);
		else if (!listed)
			rules_error(L, d, "default certificate \"%s\" is not in this service's certificates; add it there",
			            t.dflt);
		else
			svc->default_cert = k;
		free(t.dflt);
	}
	if ((svc->ticket_key_file = t.ticket_key_file))
		rules_ticket_keys_read(L, config_setting_get_member(s, "ticket_key_file"), svc);
}

/* ---------------------------------------------------------------- plugins */

static const struct rules_key rules_plugin_keys[] = {
	{ "name", rules_set_string, offsetof(struct rules_plugin, name), "name = \"NAME\"; (what routes call it)" },
	{ "module", rules_set_string, offsetof(struct rules_plugin, module), NULL },
	{ "path", rules_set_string, offsetof(struct rules_plugin, path), NULL },
	{ "args", rules_set_nothing, 0, NULL },      /* read whole by rules_plugin_args */
};
static const struct rules_section rules_plugin_section = {
	"in plugin", rules_plugin_keys, sizeof(rules_plugin_keys) / sizeof(rules_plugin_keys[0])
};

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
	rules_section_apply(L, s, &rules_plugin_section, p);
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

static void rules_set_plugins(struct rules_load *L, const config_setting_t *s, void *field)
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
static void rules_set_route_plugins(struct rules_load *L, const config_setting_t *s, void *field)
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

/* ---------------------------------------------------------------- routes */

static bool rules_sni_same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	la -= la && a[la - 1] == '.' && a[0] != '~';
	lb -= lb && b[lb - 1] == '.' && b[0] != '~';
	return la == lb && (a[0] == '~' ? memcmp(a, b, la) == 0 : strncasecmp(a, b, la) == 0);
}

static const config_setting_t *rules_route_setting(const config_setting_t *list, size_t i, const char *key)
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

/* A passthrough route never sees an HTTP request, so what only applies to one is a
 * mistake: the admin meant something that would silently not happen. Timeouts and
 * forwarded count where the route sets them itself; a template serves pools and HTTP
 * routes too, and what it says that a relay cannot use stays unused, as a pool
 * ignores a template's route keys. */
static void rules_passthrough_http_only(struct rules_load *L, const config_setting_t *list, size_t i,
                                        const struct rules_route *r)
{
	const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
	const char *keys[12];
	size_t n = 0;
	if (r->host)
		keys[n++] = "host";
	if (r->path)
		keys[n++] = "path";
	if (r->redirect)
		keys[n++] = "redirect";
	if (r->status)
		keys[n++] = "status";
	if (r->host_rewrite)
		keys[n++] = "host_rewrite";
	if (config_setting_get_member(e, "request_timeout"))
		keys[n++] = "request_timeout";
	if (config_setting_get_member(e, "forwarded"))
		keys[n++] = "forwarded";
	if (config_setting_get_member(e, "normalize_path"))
		keys[n++] = "normalize_path";
	if (config_setting_get_member(e, "retry_on_timeout"))
		keys[n++] = "retry_on_timeout";
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
	static const char *const keys[] = { "host_rewrite", "request_timeout", "idle_timeout", "forwarded",
		                             "retry_on_timeout" };
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const config_setting_t *m = config_setting_get_member(e, keys[k]);
		if (m)
			rules_warn(L, m, "%s has no effect on a route that %s: no back end is asked; remove it", keys[k],
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
static void rules_host_index(struct rules_load *L, const config_setting_t *list, struct rules_service *svc)
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

static void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field)
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
		r->forwarded = true;
		r->request_timeout_ms = L->request_ms;
		if (rules_is_group(L, e, "routes"))
			rules_section_apply_from(L, e, &rules_route_section, r, rules_template_of(L, e));
	}
}

static void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	struct rules_default d = { .route = { .pool = -1, .forwarded = true, .request_timeout_ms = L->request_ms,
		                                      .line = config_setting_source_line(s) } };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "default must be a group: default = { pool = \"NAME\"; }; or default = { reject = true; };");
		return;
	}
	size_t before = rules_diag_errors(L->diag);
	rules_section_apply_from(L, s, &rules_default_section, &d, rules_template_of(L, s));
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

static void rules_service_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_service *svc = &L->cfg->services[i];
	svc->line = config_setting_source_line(s);
	svc->proxy_timeout_ms = 5000;
	svc->hello_timeout_ms = L->hello_ms;
	svc->header_timeout_ms = L->header_ms;
	svc->keepalive_timeout_ms = L->keepalive_ms;
	svc->send_timeout_ms = L->send_ms;
	svc->default_route = -1;
	svc->default_cert = -1;
	svc->mode = RULES_MODE_HTTP;
	svc->windows_paths = true;
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
	if (svc->plain_http && svc->mode != RULES_MODE_TLS)
		rules_error(L, config_setting_get_member(s, "plain_http"),
		            "plain_http lets a TLS service also take plain HTTP on its port; this service has no tls group, "
		            "so it is plain already: remove plain_http");
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
		if (d->redirect || d->status || d->host_rewrite || config_setting_get_member(dg, "request_timeout") ||
		    config_setting_get_member(dg, "forwarded") || config_setting_get_member(dg, "idle_timeout") ||
		    config_setting_get_member(dg, "normalize_path") || config_setting_get_member(dg, "retry_on_timeout"))
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

/* Pool keys that only HTTP requests use, on a pool that only passthrough routes use:
 * the relay passes the client's bytes untouched, so the setting would silently do
 * nothing. Only what the pool's own entry writes (a template serves both kinds). */
static void rules_warn_pool_keys_unused(struct rules_load *L)
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

static void rules_read_root(struct rules_load *L, const config_t *lc)
{
	/* A shipped template with a wrong key would be ignored silently where it is used. */
	for (size_t i = 0; L->builtin && i < rules_nbuiltins; i++) {
		const config_setting_t *list = config_lookup(&L->builtin[i], "templates");
		if (list)
			rules_templates_check(L, list);
	}
	const config_setting_t *root = config_root_setting(lc);
	L->connect_ms = 5000;
	L->idle_ms = 1800 * 1000;       /* Skype for Business/Lync keeps idle media and signalling up for 30 min */
	L->drain_ms = 10000;
	L->request_ms = RULES_REQUEST_TIMEOUT_MS;
	L->hello_ms = 10000;
	L->header_ms = 30000;
	L->keepalive_ms = 120000;
	L->send_ms = 10000;
	L->cfg->log.level = RULES_LOG_INFO;
	L->cfg->log.access = true;
	L->cfg->log.facility = 3;
	rules_section_apply(L, root, &rules_top_section, L);
	if (L->certs_set)
		rules_check_acme(L);
	L->cfg->workers = L->workers ? (unsigned)L->workers : rules_cpu_count();
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
	rules_builtins_read(L);
	rules_read_root(L, lc);
	rules_builtins_free(L);
	free(L->pool_used);
	free(L->plugin_used);
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
