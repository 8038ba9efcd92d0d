/*
 * load_value.c - the rule file's scalar values (durations, counts, sizes,
 * ports, statuses) and addresses, each checked against its bounds.
 */
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "load.h"

#define RULES_WORKERS_MAX 1024
#define RULES_WEIGHT_MAX 256

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

void rules_set_workers(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_proxy_protocol(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_port(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_status(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_weight(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_count0(struct rules_load *L, const config_setting_t *s, void *field)
{
	rules_set_count(L, s, field, 0);
}

void rules_set_count1(struct rules_load *L, const config_setting_t *s, void *field)
{
	rules_set_count(L, s, field, 1);
}

void rules_set_retries(struct rules_load *L, const config_setting_t *s, void *field)
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

void rules_set_retry_budget(struct rules_load *L, const config_setting_t *s, void *field)
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
