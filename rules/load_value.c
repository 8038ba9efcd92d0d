/*
 * load_value.c - the rule file's scalar values (durations, whole numbers,
 * sizes) and addresses, each checked against its bounds: every whole-number
 * key is read by one setter from one table of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "load.h"

#define RULES_WORKERS_MAX 1024
#define RULES_WEIGHT_MAX 256
#define RULES_COUNT_MAX 1000000

void rules_set_duration(struct rules_load *L, const config_setting_t *s, void *field)
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

/* The bounds of every whole-number key, and how its error says them:
 * "NAME LEAD MIN NOTE SEP MAX, not V" ("port must be from 1 to 65535, not 0"). */
struct rules_number {
	const char *name;
	long long min, max;
	const char *lead, *note, *sep;
};

static const struct rules_number rules_numbers[] = {
	{ "workers", 0, RULES_WORKERS_MAX, "must be ", " (one per CPU) or a number up", " to " },
	{ "proxy_protocol", 0, 2, "must be ", " (off), 1 or", " " },
	{ "port", 1, 65535, "must be from ", "", " to " },
	{ "status", 200, 599, "must be an HTTP status from ", "", " to " },
	{ "weight", 1, RULES_WEIGHT_MAX, "must be from ", "", " to " },
	{ "max_conns", 0, RULES_COUNT_MAX, "must be a number from ", "", " to " },
	{ "max_age", 0, RULES_COUNT_MAX, "must be a number from ", "", " to " },
	{ "rise", 1, RULES_COUNT_MAX, "must be a number from ", "", " to " },
	{ "fall", 1, RULES_COUNT_MAX, "must be a number from ", "", " to " },
	{ "passive_fall", 0, RULES_COUNT_MAX, "must be a number from ", "", " to " },
	{ "retries", 0, RULES_RETRIES_MAX, "must be from ", " (never try again)", " to " },
	{ "retry_budget", 0, RULES_RETRY_BUDGET_MAX, "is a percentage from ", "", " to " },
};

/* A whole number within its key's bounds, into an int or unsigned field. */
void rules_set_number(struct rules_load *L, const config_setting_t *s, void *field)
{
	const char *name = L->key->name;
	const struct rules_number *n = NULL;
	for (size_t i = 0; !n && i < sizeof(rules_numbers) / sizeof(rules_numbers[0]); i++)
		if (strcmp(rules_numbers[i].name, name) == 0)
			n = &rules_numbers[i];
	long long v;
	if (!n) {
		rules_error(L, s, "%s has no bounds in rules/load_value.c; add them to rules_numbers", name);
		return;
	}
	if (!rules_get_int(L, s, &v))
		return;
	if (v < n->min || v > n->max) {
		rules_error(L, s, "%s %s%lld%s%s%lld, not %lld", name, n->lead, n->min, n->note, n->sep, n->max, v);
		return;
	}
	*(unsigned *)field = (unsigned)v;
}

static bool rules_addr_same(const struct rules_addr *a, const struct rules_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

void rules_listen_claim(struct rules_load *L, const config_setting_t *s, const struct rules_addr *a)
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

void rules_set_listen(struct rules_load *L, const config_setting_t *s, void *field)
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

/* A byte count: a whole number, or a string with a binary unit. */
void rules_set_size(struct rules_load *L, const config_setting_t *s, void *field)
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

bool rules_addr_loopback(const struct rules_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

void rules_set_source(struct rules_load *L, const config_setting_t *s, void *field)
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
