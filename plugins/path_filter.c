/*
 * path_filter - answers requests for paths the route must not pass on.
 *
 * args: deny = [ "/prefix", "~regex", ... ], status = 403. Both are matched
 * without case against the path as a back end would resolve it: query cut,
 * %XX decoded once, "\" read as "/" (IIS does), repeated slashes as one, "."
 * and ".." segments resolved; so /%61dmin, //admin and /x/../admin are all
 * /admin. A prefix matches at a segment boundary (/admin: /admin, /Admin/x,
 * not /administrator). A path that cannot be resolved (a bad %XX, an encoded
 * NUL, ".." above the root) is answered 400.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bundled_args.h"
#include "onegate_plugin.h"

struct pf_rule {
	char *prefix;                   /* or NULL for a regex */
	size_t len;
	pcre2_code *re;
};

struct pf {
	const struct onegate_host *host;
	struct pf_rule *v;
	size_t n;
	int status;
};

static int pf_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Resolves p (len bytes) into out (at least len + 2 bytes); -1 when it cannot be resolved. */
static int pf_normalize(const char *p, size_t len, char *out, size_t *outlen)
{
	size_t o = 0;
	out[o++] = '/';
	for (size_t i = 0; i < len && p[i] != '?' && p[i] != '#'; i++) {
		char c = p[i];
		if (c == '%') {
			int hi = i + 2 < len ? pf_hex(p[i + 1]) : -1, lo = hi >= 0 ? pf_hex(p[i + 2]) : -1;
			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\\')
			c = '/';
		if (c == '/' && out[o - 1] == '/')
			continue;
		out[o++] = c;
		/* A segment just ended: "." goes, ".." takes the previous one with it. */
		if (c != '/')
			continue;
		if (o >= 3 && out[o - 2] == '.' && out[o - 3] == '/') {
			o -= 2;
		} else if (o >= 4 && out[o - 2] == '.' && out[o - 3] == '.' && out[o - 4] == '/') {
			if (o == 4)
				return -1;
			o -= 4;
			while (out[o - 1] != '/')
				o--;
		}
	}
	/* The last segment, when it is "." or "..". */
	if (o >= 2 && out[o - 1] == '.' && out[o - 2] == '/') {
		o -= 1;
	} else if (o >= 3 && out[o - 1] == '.' && out[o - 2] == '.' && out[o - 3] == '/') {
		if (o == 3)
			return -1;
		o -= 3;
		while (out[o - 1] != '/')
			o--;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

static int pf_prefix_match(const struct pf_rule *r, const char *path, size_t len)
{
	return len >= r->len && strncasecmp(path, r->prefix, r->len) == 0 &&
	       (len == r->len || path[r->len] == '/' || r->prefix[r->len - 1] == '/');
}

static void pf_destroy(void *inst)
{
	struct pf *f = inst;
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].prefix);
		pcre2_code_free(f->v[i].re);
	}
	free(f->v);
	free(f);
}

static int pf_rule_read(const char *text, struct pf_rule *r, char *err, size_t errlen)
{
	if (text[0] == '~') {
		int code;
		PCRE2_SIZE off;
		r->re = pcre2_compile((PCRE2_SPTR)(text + 1), PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
		if (!r->re) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(code, msg, sizeof(msg));
			snprintf(err, errlen, "bad regex \"%s\": %s at offset %zu", text, (const char *)msg, (size_t)off);
			return -1;
		}
		pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);  /* without JIT it still matches, slower */
		return 0;
	}
	if (text[0] != '/') {
		snprintf(err, errlen, "\"%s\" must be a path prefix starting with \"/\" or a regex starting with \"~\"", text);
		return -1;
	}
	char *norm = malloc(strlen(text) + 2);
	size_t n;
	if (!norm || pf_normalize(text, strlen(text), norm, &n) != 0) {
		free(norm);
		snprintf(err, errlen, "\"%s\" is not a plain path: write it decoded, without \"..\"", text);
		return -1;
	}
	/* "/admin/" keeps its slash: it means what is under /admin, not /admin itself. */
	r->prefix = norm;
	r->len = n;
	return 0;
}

static void *pf_create(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err)
{
	struct pf *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	f->host = host;
	f->status = 403;
	for (size_t i = 0; i < args->n; i++) {
		const struct onegate_arg *a = &args->v[i];
		err->arg = (int)i;
		if (strcmp(a->name, "deny") == 0) {
			struct pf_rule *v = realloc(f->v, (f->n + a->nvalues + 1) * sizeof(*v));
			if (!v) {
				snprintf(err->msg, sizeof(err->msg), "out of memory");
				goto fail;
			}
			f->v = v;
			for (size_t k = 0; k < a->nvalues; k++) {
				memset(&f->v[f->n], 0, sizeof(f->v[f->n]));
				if (pf_rule_read(a->values[k], &f->v[f->n], err->msg, sizeof(err->msg)) != 0)
					goto fail;
				f->n++;
			}
		} else if (strcmp(a->name, "status") == 0) {
			if (bundled_status_arg(a, 404, &f->status, err->msg, sizeof(err->msg)) != 0)
				goto fail;
		} else {
			snprintf(err->msg, sizeof(err->msg), "unknown argument \"%s\"; path_filter takes deny and status",
			         a->name);
			goto fail;
		}
	}
	err->arg = -1;
	if (!f->n) {
		snprintf(err->msg, sizeof(err->msg), "give deny = [ \"/admin\", \"~\\\\.php$\" ];");
		goto fail;
	}
	return f;
fail:
	pf_destroy(f);
	return NULL;
}

static int pf_on_request(void *inst, const struct onegate_request *req, struct onegate_edits *edits)
{
	(void)edits;
	const struct pf *f = inst;
	size_t len, n;
	const char *path = f->host->path(req, &len);
	char *norm = malloc(len + 2);
	if (!norm)
		return 503;
	int status = 0;
	if (pf_normalize(path, len, norm, &n) != 0) {
		status = 400;
	} else {
		for (size_t i = 0; i < f->n && !status; i++) {
			const struct pf_rule *r = &f->v[i];
			if (r->prefix) {
				status = pf_prefix_match(r, norm, n) ? f->status : 0;
				continue;
			}
			pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
			if (!md) {
				status = 503;
				break;
			}
			status = pcre2_match(r->re, (PCRE2_SPTR)norm, n, 0, 0, md, NULL) >= 0 ? f->status : 0;
			pcre2_match_data_free(md);
		}
	}
	free(norm);
	return status;
}

static const struct onegate_plugin pf_plugin = {
	.abi = ONEGATE_PLUGIN_ABI,
	.name = "path_filter",
	.create = pf_create,
	.destroy = pf_destroy,
	.on_request = pf_on_request,
};

ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void)
{
	return &pf_plugin;
}
