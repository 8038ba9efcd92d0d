/*
 * schema.c - the rule file's keys as data (schema.def), and what is derived
 * from them outside the loader: enum words, the docs' key tables, and which
 * changes a reload refuses.
 */
#include <string.h>

#include "schema.h"

/* In enum order: a value is its word's index. */
const char *const rules_words_log_level[] = { "error", "warn", "info", "debug", NULL };
const char *const rules_words_facility[] = { "daemon", "user", "local0", "local1", "local2", "local3",
	                                     "local4", "local5", "local6", "local7", NULL };
const char *const rules_words_acme_key[] = { "ecdsa-p256", "ecdsa-p384", "rsa2048", NULL };
const char *const rules_words_acme_challenge[] = { "http-01", "tls-alpn-01", "dns-01", NULL };
const char *const rules_words_balance[] = { "roundrobin", "leastconn", "source", "cookie", NULL };
const char *const rules_words_health[] = { "none", "tcp", "http", "https", NULL };

const struct rules_schema_key rules_schema[] = {
#define RULES_KEY(places, name, type, words, dflt, flags, doc, set, off, missing) \
	{ places, name, type, words, dflt, flags, doc },
#include "schema.def"
#undef RULES_KEY
};
const size_t rules_schema_count = sizeof(rules_schema) / sizeof(rules_schema[0]);

const struct rules_schema_group rules_schema_groups[RULES_G_COUNT] = {
	[RULES_G_TOP] = { "top level", "at top level", "the file itself" },
	[RULES_G_ONEGATE] = { "onegate", "in onegate", "onegate = { ... };" },
	[RULES_G_ADMIN] = { "admin", "in admin", "onegate = { admin = { ... }; };" },
	[RULES_G_LOG] = { "log", "in log", "onegate = { log = { ... }; };" },
	[RULES_G_CERTIFICATE] = { "certificate", "in certificate", "certificates = ( { ... } );" },
	[RULES_G_ACME] = { "acme", "in acme", "certificates = ( { acme = { ... }; } );" },
	[RULES_G_PLUGIN] = { "plugin", "in plugin", "plugins = ( { ... } );" },
	[RULES_G_POOL] = { "pool", "in pool", "pools = ( { ... } );" },
	[RULES_G_SERVER] = { "server", "in server", "pools = ( { servers = ( { ... } ); } );" },
	[RULES_G_POOL_TLS] = { "pool tls", "in pool tls", "pools = ( { tls = { ... }; } );" },
	[RULES_G_COOKIE] = { "cookie", "in cookie", "pools = ( { cookie = { ... }; } );" },
	[RULES_G_HEALTH] = { "health", "in health", "pools = ( { health = { ... }; } );" },
	[RULES_G_SERVICE] = { "service", "in service", "services = ( { ... } );" },
	[RULES_G_SERVICE_TLS] = { "tls", "in tls", "services = ( { tls = { ... }; } );" },
	[RULES_G_ROUTE] = { "route", "in route", "services = ( { routes = ( { ... } ); } );" },
	[RULES_G_DEFAULT] = { "default", "in default", "services = ( { default = { ... }; } );" },
	[RULES_G_TEMPLATE] = { "template", "in template", "templates = ( { name = \"NAME\"; ... } );" },
};

const struct rules_schema_key *rules_schema_find(enum rules_group g, const char *name)
{
	for (size_t i = 0; i < rules_schema_count; i++)
		if ((rules_schema[i].places & RULES_IN(g)) && strcmp(rules_schema[i].name, name) == 0)
			return &rules_schema[i];
	return NULL;
}

const char *rules_schema_word(enum rules_group g, const char *key, int v)
{
	const struct rules_schema_key *k = rules_schema_find(g, key);
	for (int i = 0; k && k->words && k->words[i]; i++)
		if (i == v)
			return k->words[i];
	return "?";
}

enum rules_default_kind rules_schema_default(const struct rules_schema_key *k, size_t *len)
{
	const char *d = k->dflt;
	size_t n = 0;
	if (!d)
		return RULES_DEFAULT_NONE;
	if (strncmp(d, "onegate.", 8) == 0)
		return RULES_DEFAULT_KEY;
	if (d[0] == '"' && strchr(d + 1, '"'))
		n = (size_t)(strchr(d + 1, '"') - d) + 1;
	else if ((d[0] >= '0' && d[0] <= '9') || d[0] == '-')
		n = strcspn(d, " ");
	else if (strncmp(d, "true", 4) == 0 || strncmp(d, "false", 5) == 0)
		n = d[0] == 't' ? 4 : 5;
	/* A value stands alone or is followed by why, in parentheses. */
	if (n == 0 || (d[n] != '\0' && strncmp(d + n, " (", 2) != 0))
		return RULES_DEFAULT_TEXT;
	*len = n;
	return RULES_DEFAULT_VALUE;
}

static const char *rules_schema_type_text(const struct rules_schema_key *k)
{
	switch (k->type) {
	case RULES_T_STRING: return "string";
	case RULES_T_FILE: return "file";
	case RULES_T_BOOL: return "true/false";
	case RULES_T_NUMBER: return "number";
	case RULES_T_DURATION: return "duration";
	case RULES_T_SIZE: return "size";
	case RULES_T_WORD: return "word";
	case RULES_T_ADDRESS: return "address";
	case RULES_T_LIST: return "list";
	case RULES_T_NAME: return "name";
	case RULES_T_GROUP: return "group";
	case RULES_T_GROUPS: return "list of groups";
	}
	return "?";
}

/* A Markdown table cell: "|" would end it. */
static void rules_schema_cell(FILE *out, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '|')
			fputc('\\', out);
		fputc(*p, out);
	}
}

void rules_schema_doc(FILE *out)
{
	fprintf(out, "Generated from rules/schema.def by `onegate-schema-doc`; a test keeps this copy equal.\n"
	             "\"reload\" says what a reload does with a change: applied, refused (restart), or kept until "
	             "the next start. A default in `code` is the value the key takes, written as the file would; "
	             "onegate.KEY is that key's value; a sentence says what happens without the key.\n");
	for (int g = 0; g < RULES_G_COUNT; g++) {
		const struct rules_schema_group *grp = &rules_schema_groups[g];
		fprintf(out, "\n### Keys %s\n\n`%s`\n\n", grp->where, grp->syntax);
		fprintf(out, "| key | type | default | also in | reload | what it does |\n|---|---|---|---|---|---|\n");
		for (size_t i = 0; i < rules_schema_count; i++) {
			const struct rules_schema_key *k = &rules_schema[i];
			if (!(k->places & RULES_IN(g)))
				continue;
			fprintf(out, "| `%s` | %s", k->name, rules_schema_type_text(k));
			for (int w = 0; k->words && k->words[w]; w++)
				fprintf(out, "%s`%s`", w ? ", " : ": ", k->words[w]);
			fprintf(out, " | ");
			size_t len;
			if (rules_schema_default(k, &len) == RULES_DEFAULT_VALUE) {
				fprintf(out, "`%.*s`", (int)len, k->dflt);
				rules_schema_cell(out, k->dflt + len);
			} else {
				rules_schema_cell(out, k->dflt ? k->dflt : "");
			}
			fprintf(out, " | ");
			bool first = true;
			for (int o = 0; o < RULES_G_COUNT; o++)
				if (o != g && (k->places & RULES_IN(o))) {
					fprintf(out, "%s%s", first ? "" : ", ", rules_schema_groups[o].name);
					first = false;
				}
			fprintf(out, " | %s | ", k->flags & RULES_KEY_RESTART ? "restart"
			                         : k->flags & RULES_KEY_NEXT_START ? "next start" : "applied");
			rules_schema_cell(out, k->doc);
			if (k->flags & (RULES_KEY_HTTP | RULES_KEY_HTTP_OWN))
				fprintf(out, "; HTTP only: an error on a passthrough route");
			fprintf(out, " |\n");
		}
	}
}

static bool rules_schema_str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* How each restart-only key is compared; the schema's unit test checks that
 * this list and the keys flagged RULES_KEY_RESTART are the same. */
const char *rules_schema_restart_change(const struct rules_config *cur, const struct rules_config *next)
{
	if (rules_schema_str_differs(cur->run_as.user, next->run_as.user))
		return "onegate.user";
	if (cur->run_as.gid != next->run_as.gid)
		return "onegate.group";
	if (rules_schema_str_differs(cur->state_dir, next->state_dir))
		return "onegate.state";
	return NULL;
}
