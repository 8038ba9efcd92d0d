/*
 * load.h - private to rules/: the state of one load and what the readers of
 * the rule file's groups (load*.c, template.c, route_index.c) share.
 *
 * A setter reads one key's setting into its field, reporting any problem as
 * FILE:LINE through rules_error or rules_warn; it never stops the load. Which
 * setter serves which key is schema.def's (the loader's table in load.c).
 */
#ifndef ONEGATE_RULES_LOAD_H
#define ONEGATE_RULES_LOAD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "rules_int.h"
#include "schema.h"

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
	const struct rules_schema_key *key;  /* the key whose setter runs (until it applies a group itself) */
	unsigned workers;
	unsigned drain_ms, connect_ms, idle_ms;     /* connect/idle: defaults for every pool */
	unsigned request_ms;                        /* default for every route */
	unsigned hello_ms, header_ms, keepalive_ms, send_ms; /* defaults for every service */
	const config_setting_t *pools_set;
	const config_setting_t *plugins_set;
	const config_setting_t *certs_set;
	struct rules_cert_name *cert_names;     /* the certificates' names sorted, to find one by name */
	size_t ncert_names;
	bool *plugin_used;
	const config_setting_t *templates;     /* the file's templates list, or NULL */
	config_t *builtin;              /* the shipped templates, parsed: rules_nbuiltins of them */
	config_t defaults;              /* the schema's default values, parsed: "k<index> = { KEY = VALUE; };" */
	bool *pool_used;
	struct rules_seen_addr *seen;   /* every listen address so far, to refuse a second use */
	size_t nseen, capseen;
	char where[PATH_MAX + 32];      /* scratch for rules_where() */
	char file[PATH_MAX];            /* scratch for rules_file_of() */
};

/* What "default = { ... }" fills in: a route that matches nothing itself, or a reject. */
struct rules_default {
	struct rules_route route;       /* first: the action keys' offsets are a route's */
	bool reject;
};

/* "; did you mean "a" or "b"?" built from the candidates close to a word. */
struct rules_hint {
	const char *word;
	char text[256];
	size_t n;
};

/* A server given as a group, for what a plain "host:port" cannot say. */
struct rules_server_entry {
	char *address, *name;
	unsigned weight, max_conns;
	bool backup;
};

/* The service's tls group, before its names are checked against the certificates. */
struct rules_service_tls {
	const config_setting_t *certificates;
	char *dflt;
	char *ticket_key_file;
};

/* The admin group, before its address is checked. */
struct rules_admin_entry {
	char *listen, *token_file;
};

/* The log group, before its targets are checked. */
struct rules_log_entry {
	int level, facility;
	bool access;
	char *file, *syslog;
};

typedef void (*rules_setter)(struct rules_load *L, const config_setting_t *s, void *field);

/* The loader's half of a key of rules_schema[]: where its value goes. */
struct rules_key {
	rules_setter set;
	size_t offset;                  /* of the field set inside the group's object */
	const char *missing;            /* NULL: optional; else it is required and this is the fix */
};

/* ---- messages, hints and the key walk (load.c) */
const char *rules_setting_file(struct rules_load *L, const config_setting_t *s);
const char *rules_where(struct rules_load *L, const config_setting_t *s);
__attribute__((format(printf, 3, 4)))
void rules_error(struct rules_load *L, const config_setting_t *s, const char *fmt, ...);
__attribute__((format(printf, 3, 4)))
void rules_warn(struct rules_load *L, const config_setting_t *s, const char *fmt, ...);
void rules_hint_try(struct rules_hint *h, const char *cand);
const char *rules_hint_done(struct rules_hint *h);
void rules_section_apply_from(struct rules_load *L, const config_setting_t *group, enum rules_group g, void *obj,
                              const config_setting_t *tmpl);
/* group NULL: every key of g takes its default. */
void rules_section_apply(struct rules_load *L, const config_setting_t *group, enum rules_group g, void *obj);
bool rules_is_group_list(struct rules_load *L, const config_setting_t *s, const char *example);
bool rules_is_group(struct rules_load *L, const config_setting_t *s, const char *what);
bool rules_is_string_list(struct rules_load *L, const config_setting_t *s, const char *example);
void *rules_calloc(struct rules_load *L, const config_setting_t *s, size_t n, size_t size);
void rules_set_string(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_bool(struct rules_load *L, const config_setting_t *s, void *field);
bool rules_get_int(struct rules_load *L, const config_setting_t *s, long long *v);
void rules_set_nothing(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_setting(struct rules_load *L, const config_setting_t *s, void *field);
int rules_word(struct rules_load *L, const config_setting_t *s, const char *const *names);
void rules_set_word(struct rules_load *L, const config_setting_t *s, void *field);
void rules_path_resolve(struct rules_load *L, const config_setting_t *s, char **path);

/* ---- values and addresses (load_value.c) */
void rules_set_duration(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_number(struct rules_load *L, const config_setting_t *s, void *field);
void rules_listen_claim(struct rules_load *L, const config_setting_t *s, const struct rules_addr *a);
void rules_set_listen(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_size(struct rules_load *L, const config_setting_t *s, void *field);
bool rules_addr_loopback(const struct rules_addr *a);
void rules_set_source(struct rules_load *L, const config_setting_t *s, void *field);

/* ---- the onegate group (load_onegate.c) */
void rules_set_admin(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_facility(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_log(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_user(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_group(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_state(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field);

/* ---- pools (load_pool.c) */
void rules_set_route_pool(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_servers(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_pools(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_pool_tls(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_cookie(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_expect(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_health(struct rules_load *L, const config_setting_t *s, void *field);
void rules_warn_pool_keys_unused(struct rules_load *L);

/* ---- certificates and a service's tls (load_cert.c) */
void rules_set_intermediates(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_acme_names(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_acme(struct rules_load *L, const config_setting_t *s, void *field);
void rules_check_acme(struct rules_load *L);
void rules_set_certificates(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_service_tls(struct rules_load *L, const config_setting_t *s, void *field);

/* ---- plugins (load_plugin.c) */
void rules_set_plugins(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_route_plugins(struct rules_load *L, const config_setting_t *s, void *field);

/* ---- templates (template.c) */
void rules_templates_check(struct rules_load *L, const config_setting_t *s);
void rules_set_templates(struct rules_load *L, const config_setting_t *s, void *field);
const config_setting_t *rules_template_get(struct rules_load *L, const config_setting_t *group);
const config_setting_t *rules_template_of(struct rules_load *L, const config_setting_t *group);

/* ---- services and routes (load_service.c) */
void rules_set_path(struct rules_load *L, const config_setting_t *s, void *field);
bool rules_sni_same(const char *a, const char *b);
const config_setting_t *rules_route_setting(const config_setting_t *list, size_t i, const char *key);
void rules_set_routes(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_default(struct rules_load *L, const config_setting_t *s, void *field);
void rules_set_services(struct rules_load *L, const config_setting_t *s, void *field);

/* ---- the route index (route_index.c) */
void rules_host_index(struct rules_load *L, const config_setting_t *list, struct rules_service *svc);

#endif
