/* libFuzzer: the request path resolution routes and plugins compare with
 * (rules_urlpath_resolve). The first byte picks the flags. Invariants: the
 * result fits len + 1 bytes, starts with "/", is NUL-terminated, has no empty,
 * "." or ".." segment, no ";" (nor, on Windows, "\", ":" or a name ending in a
 * dot or space); both readings of an encoded separator agree on whether one is
 * there; a result with nothing left to decode resolves to itself; and a path
 * that starts with "/" reads as it does after "/." (which the shortcut for
 * paths already resolved never takes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

static void fuzz_check(const char *out, size_t n, unsigned flags)
{
	if (n == 0 || out[0] != '/' || out[n] != '\0' || strlen(out) != n)
		abort();
	for (size_t i = 0; i < n; i++) {
		char c = out[i];
		if (c == ';' || ((flags & RULES_PATH_WINDOWS) && (c == '\\' || c == ':')))
			abort();
		if (c != '/')
			continue;
		if (i + 1 < n && out[i + 1] == '/')
			abort();
		/* the segment that ends here */
		size_t s = i;
		while (s > 0 && out[s - 1] != '/')
			s--;
		size_t len = i - s;
		if (i > 0 && ((len == 1 && out[s] == '.') || (len == 2 && out[s] == '.' && out[s + 1] == '.')))
			abort();
		if (i > 0 && (flags & RULES_PATH_WINDOWS) && (out[i - 1] == '.' || out[i - 1] == ' '))
			abort();
	}
	const char *last = strrchr(out, '/') + 1;
	if (!strcmp(last, ".") || !strcmp(last, ".."))
		abort();
	if ((flags & RULES_PATH_WINDOWS) && *last && (out[n - 1] == '.' || out[n - 1] == ' '))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0] & (RULES_PATH_WINDOWS | RULES_PATH_SEP_OPAQUE);
	const char *raw = (const char *)data + 1;
	size_t len = size - 1;
	char *out = malloc(len + 2), *again = malloc(len + 2);
	size_t n, m;
	const char *why;
	int rc = rules_urlpath_resolve(raw, len, flags, out, len + 2, &n, &why);
	if (rc == RULES_PATH_BAD) {
		if (!why)
			abort();
	} else {
		fuzz_check(out, n, flags);
		/* The other reading of encoded separators finds them too (or refuses the path). */
		int other = rules_urlpath_resolve(raw, len, flags ^ RULES_PATH_SEP_OPAQUE, again, len + 2, &m, &why);
		if (other != RULES_PATH_BAD && other != rc)
			abort();
		if (!(flags & RULES_PATH_SEP_OPAQUE) && !strpbrk(out, "%?#")) {
			if (rules_urlpath_resolve(out, n, flags, again, n + 2, &m, &why) != RULES_PATH_OK || m != n ||
			    memcmp(out, again, n) != 0)
				abort();
		}
	}
	if (len && raw[0] == '/') {
		char *dotted = malloc(len + 2), *via = malloc(len + 4);
		memcpy(dotted, "/.", 2);
		memcpy(dotted + 2, raw, len);
		int rd = rules_urlpath_resolve(dotted, len + 2, flags, via, len + 4, &m, &why);
		if (rd != rc || (rc != RULES_PATH_BAD && (m != n || memcmp(out, via, n) != 0)))
			abort();
		free(dotted);
		free(via);
	}
	free(out);
	free(again);
	return 0;
}
