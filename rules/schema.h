/*
 * schema.h - every key of the rule file, once: its group, type, default,
 * where else it may appear, whether a reload can change it, and what it does.
 *
 * Contract: rules_schema[] is the one list of keys. The loader's key tables,
 * the template and HTTP-only checks, the restart-only keys a reload refuses,
 * the words an enum key takes (and their names elsewhere, e.g. --print and
 * the admin page), and the key tables of docs/rules.md (rules_schema_doc, run
 * by the onegate-schema-doc program at build time) all come from it. The
 * table is constant data: any thread may read it.
 */
#ifndef ONEGATE_RULES_SCHEMA_H
#define ONEGATE_RULES_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The groups a key sits in, as messages name them ("in pool tls"). */
enum rules_group {
	RULES_G_TOP,
	RULES_G_ONEGATE,
	RULES_G_ADMIN,
	RULES_G_LOG,
	RULES_G_CERTIFICATE,
	RULES_G_ACME,
	RULES_G_PLUGIN,
	RULES_G_POOL,
	RULES_G_SERVER,
	RULES_G_POOL_TLS,
	RULES_G_COOKIE,
	RULES_G_HEALTH,
	RULES_G_SERVICE,
	RULES_G_SERVICE_TLS,
	RULES_G_ROUTE,
	RULES_G_DEFAULT,
	RULES_G_TEMPLATE,
	RULES_G_COUNT
};

#define RULES_IN(g) (1u << (g))

enum rules_type {
	RULES_T_STRING,         /* "text" */
	RULES_T_FILE,           /* "file", relative to the rule file's folder */
	RULES_T_BOOL,
	RULES_T_NUMBER,         /* a whole number */
	RULES_T_DURATION,       /* seconds, or "500ms", "30s", "15m", "2h" */
	RULES_T_SIZE,           /* bytes, or "16k" */
	RULES_T_WORD,           /* one of the key's words */
	RULES_T_ADDRESS,        /* "host:port" */
	RULES_T_LIST,           /* [ "a", "b" ] */
	RULES_T_NAME,           /* the name of another entry (pool, certificate, template) */
	RULES_T_GROUP,          /* { ... } */
	RULES_T_GROUPS,         /* ( { ... }, { ... } ) */
};

/* What a key's value does beyond its group. */
#define RULES_KEY_RESTART       0x1u    /* a reload that changes it is refused: it takes a restart */
#define RULES_KEY_NEXT_START    0x2u    /* a reload keeps the running value until the next start */
#define RULES_KEY_HTTP          0x4u    /* an error on a passthrough route, set there or by its template */
#define RULES_KEY_HTTP_OWN      0x8u    /* an error on a passthrough route that sets it itself */
#define RULES_KEY_EXCHANGE      0x10u   /* shapes a back-end exchange: does nothing on a redirect or status */
#define RULES_KEY_SECRET        0x20u   /* never printed by --print */

struct rules_schema_key {
	unsigned places;                /* RULES_IN(group) bits: where it may be written */
	const char *name;
	enum rules_type type;
	const char *const *words;       /* RULES_T_WORD: the words, NULL-terminated, in enum order */
	const char *dflt;               /* what it is when not written (see rules_schema_default); NULL: nothing */
	unsigned flags;                 /* RULES_KEY_* */
	const char *doc;                /* one line */
};

struct rules_schema_group {
	const char *name;               /* "pool tls" */
	const char *where;              /* "in pool tls", as messages say it */
	const char *syntax;             /* where it is written, for the docs */
};

/* The words of the enum keys, NULL-terminated, indexed by the enum's value:
 * what other modules name these values by (log lines, ACME challenge types),
 * without a search, so a hot path may use them. */
extern const char *const rules_words_log_level[];       /* enum rules_log_level (and gateway's log_level) */
extern const char *const rules_words_facility[];        /* index of rules_facility_codes */
extern const char *const rules_words_acme_key[];        /* enum rules_acme_key */
extern const char *const rules_words_acme_challenge[];  /* enum rules_acme_challenge: RFC 8555 type names */
extern const char *const rules_words_balance[];         /* enum rules_balance */
extern const char *const rules_words_health[];          /* enum rules_health_type */

extern const struct rules_schema_key rules_schema[];
extern const size_t rules_schema_count;
extern const struct rules_schema_group rules_schema_groups[RULES_G_COUNT];

/* What a key's default says. */
enum rules_default_kind {
	RULES_DEFAULT_NONE,     /* no default: the field stays zero */
	RULES_DEFAULT_VALUE,    /* a value as the rule file writes it, the first *len bytes of dflt */
	RULES_DEFAULT_KEY,      /* "onegate.KEY": the value that key of onegate has */
	RULES_DEFAULT_TEXT,     /* a sentence: what the code does when the key is not written */
};
enum rules_default_kind rules_schema_default(const struct rules_schema_key *k, size_t *len);

/* The key named name that may be written in group g, or NULL. */
const struct rules_schema_key *rules_schema_find(enum rules_group g, const char *name);

/* The word an enum key takes for value v ("roundrobin" for pool balance 0); "?" when out of range. */
const char *rules_schema_word(enum rules_group g, const char *key, int v);

/* The key tables of docs/rules.md, in Markdown. */
void rules_schema_doc(FILE *out);

/* The first key a reload cannot change that differs between the running rules
 * and the new ones ("onegate.user"), or NULL when a reload may apply them. */
const char *rules_schema_restart_change(const struct rules_config *cur, const struct rules_config *next);

#ifdef __cplusplus
}
#endif
#endif
