/*
 * namemap.c - the compiled SNI matcher.
 *
 * Exact names and wildcard suffixes live in two open-addressing hash tables,
 * so a lookup costs O(labels in the name) however many routes there are.
 * Regexes are the only part scanned in order, and only when no name matched.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules.h"

#define RULES_NAME_MAX 253      /* longest DNS name in text form */
#define RULES_LABEL_MAX 63
/* A name comes from the network: it must not buy unbounded backtracking. */
#define RULES_REGEX_MATCH_LIMIT 100000

struct rules_hentry {
	char *key;              /* NULL: empty slot */
	size_t len;
	uint32_t hash;
	int value;
};

struct rules_htab {
	struct rules_hentry *slots;
	size_t cap;             /* a power of two, or 0 before the first insert */
	size_t n;
};

struct rules_regex {
	char *source;           /* pattern without "~", to spot duplicates */
	pcre2_code *code;
	int value;
};

struct rules_namemap {
	struct rules_htab exact;
	struct rules_htab wild;         /* keyed by the suffix after "*." */
	struct rules_regex *regexes;
	size_t nregex, capregex;
	pcre2_match_context *mctx;      /* read-only once built, so threads share it */
};

/* ---------------------------------------------------------------- hash table */

static uint32_t rules_fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static struct rules_hentry *rules_htab_slot(const struct rules_htab *t, const char *key, size_t len,
                                            uint32_t hash)
{
	size_t mask = t->cap - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct rules_hentry *e = &t->slots[i];
		if (!e->key || (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0))
			return e;
	}
}

static int rules_htab_find(const struct rules_htab *t, const char *key, size_t len)
{
	if (t->n == 0)
		return -1;
	const struct rules_hentry *e = rules_htab_slot(t, key, len, rules_fnv1a(key, len));
	return e->key ? e->value : -1;
}

static int rules_htab_grow(struct rules_htab *t)
{
	/* Keep the load under 1/2 so probe runs stay short. */
	if ((t->n + 1) * 2 <= t->cap)
		return 0;
	struct rules_htab bigger = { .cap = t->cap ? t->cap * 2 : 16, .n = t->n };
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			*rules_htab_slot(&bigger, t->slots[i].key, t->slots[i].len, t->slots[i].hash) = t->slots[i];
	free(t->slots);
	*t = bigger;
	return 0;
}

/* 0 added, -2 already present, -1 out of memory. */
static int rules_htab_add(struct rules_htab *t, const char *key, size_t len, int value)
{
	if (rules_htab_find(t, key, len) >= 0)
		return -2;
	if (rules_htab_grow(t) < 0)
		return -1;
	char *copy = strndup(key, len);
	if (!copy)
		return -1;
	uint32_t hash = rules_fnv1a(key, len);
	*rules_htab_slot(t, key, len, hash) = (struct rules_hentry){ copy, len, hash, value };
	t->n++;
	return 0;
}

static void rules_htab_free(struct rules_htab *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].key);
	free(t->slots);
}

/* ---------------------------------------------------------------- names */

/* Lower-cases into out and drops one trailing dot; -1 when empty or too long. */
static int rules_name_norm(const char *in, size_t len, char out[RULES_NAME_MAX + 1], size_t *outlen)
{
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > RULES_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	out[len] = '\0';
	*outlen = len;
	return 0;
}

static bool rules_name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Checks a normalized exact name or wildcard suffix. */
static int rules_name_check(const char *s, size_t len, char *err, size_t errlen)
{
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '*') {
			snprintf(err, errlen, "\"*\" is allowed only as the whole first label, as in \"*.example.com\"; "
			                      "use \"~REGEX\" for other shapes");
			return -1;
		}
		if (c == '.') {
			if (label == 0)
				break;
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			/* Clients send an internationalized name in its ASCII form; UTF-8 here would never match. */
			snprintf(err, errlen, "non-ASCII byte 0x%02x in name; write an internationalized name in punycode, "
			                      "as clients send it (idn2 NAME prints it, e.g. \"xn--mnchen-3ya.de\")", c);
			return -1;
		}
		if (!rules_name_char_ok((char)c)) {
			snprintf(err, errlen, c >= ' ' && c < 0x7f
			                          ? "invalid character '%c' in name; use letters, digits, '-', '_' and '.'"
			                          : "invalid byte 0x%02x in name; use letters, digits, '-', '_' and '.'",
			         c);
			return -1;
		}
		if (++label > RULES_LABEL_MAX) {
			snprintf(err, errlen, "label longer than %d characters", RULES_LABEL_MAX);
			return -1;
		}
	}
	if (label == 0) {
		snprintf(err, errlen, "empty label in name (a leading dot or two dots in a row)");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- regexes */

static pthread_key_t rules_md_key;
static pthread_once_t rules_md_once = PTHREAD_ONCE_INIT;
static bool rules_md_key_ok;

static void rules_md_free(void *md)
{
	pcre2_match_data_free(md);
}

static void rules_md_key_init(void)
{
	rules_md_key_ok = pthread_key_create(&rules_md_key, rules_md_free) == 0;
}

/*
 * One match block per thread, made on the thread's first regex lookup and
 * freed by the key's destructor when the thread exits; the key itself lives
 * as long as the process. NULL (out of memory) makes the lookup a miss.
 */
static pcre2_match_data *rules_md_get(void)
{
	if (pthread_once(&rules_md_once, rules_md_key_init) != 0 || !rules_md_key_ok)
		return NULL;
	pcre2_match_data *md = pthread_getspecific(rules_md_key);
	if (md)
		return md;
	/* One pair: lookups only ask whether it matched, never for captures. */
	md = pcre2_match_data_create(1, NULL);
	if (md && pthread_setspecific(rules_md_key, md) != 0) {
		pcre2_match_data_free(md);
		md = NULL;
	}
	return md;
}

static int rules_regex_match(const struct rules_namemap *m, const char *name, size_t len)
{
	if (m->nregex == 0)
		return -1;
	pcre2_match_data *md = rules_md_get();
	if (!md)
		return -1;
	for (size_t i = 0; i < m->nregex; i++)
		if (pcre2_match(m->regexes[i].code, (PCRE2_SPTR)name, len, 0, 0, md, m->mctx) >= 0)
			return m->regexes[i].value;
	return -1;
}

static int rules_regex_grow(struct rules_namemap *m)
{
	if (m->nregex < m->capregex)
		return 0;
	size_t cap = m->capregex ? m->capregex * 2 : 4;
	struct rules_regex *r = realloc(m->regexes, cap * sizeof(*r));
	if (!r)
		return -1;
	m->regexes = r;
	m->capregex = cap;
	return 0;
}

static int rules_regex_add(struct rules_namemap *m, const char *source, int value, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->nregex; i++)
		if (strcmp(m->regexes[i].source, source) == 0)
			return -2;
	int code;
	PCRE2_SIZE off;
	/* DOLLAR_ENDONLY: "$" must not accept a name that ends in a newline. */
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)source, PCRE2_ZERO_TERMINATED,
	                               PCRE2_CASELESS | PCRE2_DOLLAR_ENDONLY, &code, &off, NULL);
	if (!re) {
		char msg[256];
		pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
		snprintf(err, errlen, "regex error at offset %zu: %s", (size_t)off, msg);
		return -1;
	}
	/* Without JIT (e.g. an SELinux policy forbidding executable memory) the interpreter still matches. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	char *copy = strdup(source);
	if (!copy || rules_regex_grow(m) < 0) {
		free(copy);
		pcre2_code_free(re);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->regexes[m->nregex++] = (struct rules_regex){ copy, re, value };
	return 0;
}

/* ---------------------------------------------------------------- public */

struct rules_namemap *rules_namemap_new(void)
{
	struct rules_namemap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->mctx = pcre2_match_context_create(NULL);
	if (!m->mctx) {
		free(m);
		return NULL;
	}
	pcre2_set_match_limit(m->mctx, RULES_REGEX_MATCH_LIMIT);
	return m;
}

void rules_namemap_free(struct rules_namemap *m)
{
	if (!m)
		return;
	rules_htab_free(&m->exact);
	rules_htab_free(&m->wild);
	for (size_t i = 0; i < m->nregex; i++) {
		free(m->regexes[i].source);
		pcre2_code_free(m->regexes[i].code);
	}
	free(m->regexes);
	pcre2_match_context_free(m->mctx);
	free(m);
}

static int rules_name_add(struct rules_namemap *m, const char *pattern, int value, char *err, size_t errlen)
{
	char name[RULES_NAME_MAX + 1];
	size_t len;
	if (rules_name_norm(pattern, strlen(pattern), name, &len) < 0) {
		if (*pattern)
			snprintf(err, errlen, "name longer than %d characters", RULES_NAME_MAX);
		else
			snprintf(err, errlen, "empty name");
		return -1;
	}
	bool wild = len >= 2 && name[0] == '*' && name[1] == '.';
	const char *key = wild ? name + 2 : name;
	size_t keylen = wild ? len - 2 : len;
	if (rules_name_check(key, keylen, err, errlen) < 0)
		return -1;
	int rc = rules_htab_add(wild ? &m->wild : &m->exact, key, keylen, value);
	if (rc == -1)
		snprintf(err, errlen, "out of memory");
	return rc;
}

int rules_namemap_add(struct rules_namemap *m, const char *pattern, int value, char *err, size_t errlen)
{
	if (!m || !pattern || value < 0) {
		snprintf(err, errlen, "invalid argument");
		return -1;
	}
	if (pattern[0] != '~')
		return rules_name_add(m, pattern, value, err, errlen);
	if (pattern[1] == '\0') {
		snprintf(err, errlen, "empty regex after \"~\"");
		return -1;
	}
	return rules_regex_add(m, pattern + 1, value, err, errlen);
}

/* Longest suffix first: the first hit is the most specific wildcard. */
static int rules_wild_match(const struct rules_namemap *m, const char *name, size_t len)
{
	if (m->wild.n == 0)
		return -1;
	for (size_t i = 1; i + 1 < len; i++) {
		if (name[i] != '.')
			continue;
		int v = rules_htab_find(&m->wild, name + i + 1, len - i - 1);
		if (v >= 0)
			return v;
	}
	return -1;
}

int rules_namemap_lookup(const struct rules_namemap *m, const char *name, size_t len)
{
	char buf[RULES_NAME_MAX + 1];
	size_t n;
	if (!m || !name || rules_name_norm(name, len, buf, &n) < 0)
		return -1;
	int v = rules_htab_find(&m->exact, buf, n);
	if (v < 0)
		v = rules_wild_match(m, buf, n);
	if (v < 0)
		v = rules_regex_match(m, buf, n);
	return v;
}

size_t rules_namemap_size(const struct rules_namemap *m)
{
	return m ? m->exact.n + m->wild.n + m->nregex : 0;
}
