/*
 * path_filter - answers requests for paths the route must not pass on.
 *
 * args: deny = [ "/prefix", "~regex", ... ], status = 403. Both are matched
 * without case against the path as onegate matched the route with it
 * (path_resolved: the back end's resolution, one for the core and every
 * plugin), so /%61dmin, //admin, /x/../admin and /admin./ are all /admin. A
 * prefix matches at a segment boundary (/admin: /admin, /Admin/x, not
 * /administrator). A path that cannot be resolved never gets here: onegate
 * answers it 400 before any plugin runs.
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

static int pf_rule_read(const struct onegate_host *host, const char *text, struct pf_rule *r, char *err,
                        size_t errlen)
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
	if (!norm || host->path_resolve(text, strlen(text), norm, strlen(text) + 2, &n) != 0) {
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
				if (pf_rule_read(host, a->values[k], &f->v[f->n], err->msg, sizeof(err->msg)) != 0)
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
	size_t n;
	const char *path = f->host->path_resolved(req, &n);
	for (size_t i = 0; i < f->n; i++) {
		const struct pf_rule *r = &f->v[i];
		if (r->prefix) {
			if (pf_prefix_match(r, path, n))
				return f->status;
			continue;
		}
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
		if (!md)
			return 503;
		int rc = pcre2_match(r->re, (PCRE2_SPTR)path, n, 0, 0, md, NULL);
		pcre2_match_data_free(md);
		if (rc >= 0)
			return f->status;
	}
	return 0;
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
