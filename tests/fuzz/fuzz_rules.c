/* libFuzzer: the rule-file loader on arbitrary text. It must report, never crash or leak. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

/* Fuzzed server names must never become DNS queries leaving the machine: this
 * binary's getaddrinfo() only accepts address literals. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
	typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
	static gai_fn real;
	if (!real)
		real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	struct addrinfo h = { 0 };
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct rules_diag *d = rules_diag_new();
	struct rules_config *cfg = rules_load_string(text, "fuzz.conf", d);
	if (!cfg && rules_diag_errors(d) == 0)
		abort();        /* a refused file always says why */
	rules_config_unref(cfg);
	rules_diag_free(d);
	free(text);
	return 0;
}
