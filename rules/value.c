/*
 * value.c - the scalar syntaxes of the rule file: durations, addresses, and
 * the edit distance behind "did you mean" hints.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_int.h"

#define RULES_DISTANCE_MAX 64

size_t rules_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > RULES_DISTANCE_MAX || lb > RULES_DISTANCE_MAX)
		return SIZE_MAX;
	size_t row[RULES_DISTANCE_MAX + 1];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* ---------------------------------------------------------------- durations */

int rules_duration_seconds(double seconds, unsigned *ms, char *err, size_t errlen)
{
	if (!(seconds > 0)) {
		snprintf(err, errlen, "must be greater than 0");
		return -1;
	}
	double v = seconds * 1000.0 + 0.5;    /* round to the nearest millisecond */
	if (v < 1) {
		snprintf(err, errlen, "must be at least 1ms");
		return -1;
	}
	if (v > (double)UINT_MAX) {
		snprintf(err, errlen, "too long; the limit is %u seconds", UINT_MAX / 1000);
		return -1;
	}
	*ms = (unsigned)v;
	return 0;
}

static double rules_duration_unit(const char *unit)
{
	static const struct {
		const char *name;
		double seconds;
	} units[] = { { "ms", 0.001 }, { "s", 1 }, { "", 1 }, { "m", 60 }, { "h", 3600 } };
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(unit, units[i].name) == 0)
			return units[i].seconds;
	return 0;
}

int rules_duration_text(const char *s, unsigned *ms, char *err, size_t errlen)
{
	char *end = NULL;
	double n = 0;
	errno = 0;
	if (s[0] >= '0' && s[0] <= '9')
		n = strtod(s, &end);
	double unit = end && errno == 0 ? rules_duration_unit(end) : 0;
	if (unit == 0) {
		snprintf(err, errlen, "bad duration \"%s\": write a number of seconds or a string like "
		                      "\"500ms\", \"30s\", \"15m\", \"2h\"", s);
		return -1;
	}
	return rules_duration_seconds(n * unit, ms, err, errlen);
}

/* ---------------------------------------------------------------- sizes */

int rules_size_text(const char *s, unsigned long long max, unsigned *bytes, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned long long bytes;
	} units[] = { { "", 1 }, { "k", 1024 }, { "K", 1024 }, { "KiB", 1024 }, { "m", 1 << 20 }, { "M", 1 << 20 },
		      { "MiB", 1 << 20 } };
	char *end = NULL;
	unsigned long long n = 0, unit = 0;
	errno = 0;
	if (s[0] >= '0' && s[0] <= '9')
		n = strtoull(s, &end, 10);
	for (size_t i = 0; end && errno == 0 && i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].name) == 0)
			unit = units[i].bytes;
	if (unit == 0) {
		snprintf(err, errlen, "bad size \"%s\": write a number of bytes or a string like \"16k\", \"64KiB\", \"1m\"", s);
		return -1;
	}
	if (n > max / unit) {
		snprintf(err, errlen, "\"%s\" is too large; the limit is %llu bytes", s, max);
		return -1;
	}
	*bytes = (unsigned)(n * unit);
	return 0;
}

/* ---------------------------------------------------------------- addresses */

static int rules_port_parse(const char *p, const char *text, uint16_t *port, char *err, size_t errlen)
{
	char *end = NULL;
	unsigned long v = p[0] >= '0' && p[0] <= '9' ? strtoul(p, &end, 10) : 0;
	if (v < 1 || v > 65535 || *end != '\0' || strlen(p) > 5) {
		snprintf(err, errlen, "bad port \"%s\" in \"%s\": use a number from 1 to 65535", p, text);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* Splits text into host and port; host is copied into buf. */
static int rules_addr_split(const char *text, char *buf, size_t buflen, const char **portp, bool *v6,
                            char *err, size_t errlen)
{
	const char *colon, *host = text;
	size_t hostlen;
	*v6 = text[0] == '[';
	if (*v6) {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "bad address \"%s\": write an IPv6 address as \"[IPv6]:port\"", text);
			return -1;
		}
		host = text + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon) {
			snprintf(err, errlen, "missing port in \"%s\"; write \"%s:PORT\"", text, text);
			return -1;
		}
		if (strchr(text, ':') != colon) {
			snprintf(err, errlen, "bad address \"%s\": put an IPv6 address in brackets, as in \"[::1]:443\"",
			         text);
			return -1;
		}
		hostlen = (size_t)(colon - text);
	}
	if (hostlen == 0 || hostlen >= buflen) {
		snprintf(err, errlen, "bad address \"%s\": %s", text,
		         hostlen ? "host name too long" : "missing host (\"0.0.0.0:PORT\" or \"[::]:PORT\" means every address)");
		return -1;
	}
	memcpy(buf, host, hostlen);
	buf[hostlen] = '\0';
	*portp = colon + 1;
	return 0;
}

static int rules_addr_resolve(const char *host, bool v6, const char *text, struct rules_addr *addr, char *err,
                              size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	struct in_addr a4;
	bool literal4 = !v6 && inet_pton(AF_INET, host, &a4) == 1;
	hints.ai_family = v6 ? AF_INET6 : literal4 ? AF_INET : AF_UNSPEC;
	hints.ai_flags = v6 || literal4 ? AI_NUMERICHOST : 0;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		if (v6)
			snprintf(err, errlen, "bad IPv6 address \"%s\" in \"%s\"", host, text);
		else
			snprintf(err, errlen, "cannot resolve \"%s\" in \"%s\": %s", host, text, gai_strerror(rc));
		return -1;
	}
	memcpy(&addr->ss, res->ai_addr, res->ai_addrlen);
	addr->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void rules_addr_set_port(struct rules_addr *addr, uint16_t port)
{
	if (addr->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&addr->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&addr->ss)->sin6_port = htons(port);
}

int rules_addr_parse(const char *text, struct rules_addr *addr, char **host, uint16_t *port, char *err,
                     size_t errlen)
{
	char h[NI_MAXHOST];
	const char *p;
	bool v6;
	uint16_t portv;
	memset(addr, 0, sizeof(*addr));
	if (rules_addr_split(text, h, sizeof(h), &p, &v6, err, errlen) < 0 ||
	    rules_port_parse(p, text, &portv, err, errlen) < 0 ||
	    rules_addr_resolve(h, v6, text, addr, err, errlen) < 0)
		return -1;
	rules_addr_set_port(addr, portv);
	addr->text = strdup(text);
	char *hcopy = host ? strdup(h) : NULL;
	if (!addr->text || (host && !hcopy)) {
		free(hcopy);
		rules_addr_clear(addr);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (host)
		*host = hcopy;
	if (port)
		*port = portv;
	return 0;
}

void rules_addr_clear(struct rules_addr *addr)
{
	free(addr->text);
	memset(addr, 0, sizeof(*addr));
}

int rules_server_parse(const char *text, struct rules_addr *addr, char **host, uint16_t *port, char *err,
                       size_t errlen)
{
	size_t n = strlen(text);
	bool bare = text[0] == '[' ? n > 1 && text[n - 1] == ']' : n > 0 && !strchr(text, ':');
	if (!bare)
		return rules_addr_parse(text, addr, host, port, err, errlen);
	/* "host" alone: each route that uses the pool gives the port. */
	char with[NI_MAXHOST + 16];
	if ((size_t)snprintf(with, sizeof(with), "%s:1", text) >= sizeof(with)) {
		snprintf(err, errlen, "bad address \"%s\": host name too long", text);
		return -1;
	}
	if (rules_addr_parse(with, addr, host, port, err, errlen) < 0)
		return -1;
	rules_addr_set_port(addr, 0);
	*port = 0;
	char *t = strdup(text);
	if (!t) {
		rules_addr_clear(addr);
		if (host) {
			free(*host);
			*host = NULL;
		}
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(addr->text);
	addr->text = t;
	return 0;
}
