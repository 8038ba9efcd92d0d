/*
 * security_headers - adds the usual security headers to the back end's answers.
 *
 * args (each a header value; "" or false leaves that header out):
 *   hsts = "max-age=31536000"                  Strict-Transport-Security, HTTPS only (RFC 6797 7.2)
 *   x_content_type_options = "nosniff"
 *   x_frame_options = "SAMEORIGIN"
 *   referrer_policy = "strict-origin-when-cross-origin"
 *   content_security_policy                    (none unless given)
 *   override = false                           true: replace the back end's own; false: it wins
 * A back end that sets one of them itself knows its pages (OWA and the Skype
 * web app frame themselves), so by default its value is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onegate_plugin.h"

enum { SH_HSTS, SH_NOSNIFF, SH_FRAME, SH_REFERRER, SH_CSP, SH_N };

static const struct {
	const char *arg, *header, *dflt;
} sh_table[SH_N] = {
	{ "hsts", "Strict-Transport-Security", "max-age=31536000" },
	{ "x_content_type_options", "X-Content-Type-Options", "nosniff" },
	{ "x_frame_options", "X-Frame-Options", "SAMEORIGIN" },
	{ "referrer_policy", "Referrer-Policy", "strict-origin-when-cross-origin" },
	{ "content_security_policy", "Content-Security-Policy", NULL },
};

struct sh {
	const struct onegate_host *host;
	const char *value[SH_N];        /* NULL: not added; points into args, which outlive the instance */
	int override;
};

static void *sh_create(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err)
{
	struct sh *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	s->host = host;
	for (int k = 0; k < SH_N; k++)
		s->value[k] = sh_table[k].dflt;
	for (size_t i = 0; i < args->n; i++) {
		const struct onegate_arg *a = &args->v[i];
		const char *v = a->nvalues == 1 && !a->is_list ? a->values[0] : NULL;
		err->arg = (int)i;
		if (!v) {
			snprintf(err->msg, sizeof(err->msg), "%s takes one value in double quotes, or false", a->name);
			goto fail;
		}
		if (strcmp(a->name, "override") == 0) {
			if (strcmp(v, "true") && strcmp(v, "false")) {
				snprintf(err->msg, sizeof(err->msg), "override must be true or false");
				goto fail;
			}
			s->override = strcmp(v, "true") == 0;
			continue;
		}
		int k = 0;
		while (k < SH_N && strcmp(sh_table[k].arg, a->name) != 0)
			k++;
		if (k == SH_N) {
			snprintf(err->msg, sizeof(err->msg), "unknown argument \"%s\"; security_headers takes hsts, "
			         "x_content_type_options, x_frame_options, referrer_policy, content_security_policy and override",
			         a->name);
			goto fail;
		}
		if (strpbrk(v, "\r\n")) {
			snprintf(err->msg, sizeof(err->msg), "%s must be one line", a->name);
			goto fail;
		}
		s->value[k] = strcmp(v, "false") == 0 || !*v ? NULL : v;
	}
	return s;
fail:
	free(s);
	return NULL;
}

static void sh_destroy(void *inst)
{
	free(inst);
}

static void sh_on_response(void *inst, const struct onegate_request *req, int status, struct onegate_edits *edits)
{
	(void)status;
	const struct sh *s = inst;
	const struct onegate_host *h = s->host;
	for (int k = 0; k < SH_N; k++) {
		size_t len;
		if (!s->value[k] || (k == SH_HSTS && !h->is_tls(req)))
			continue;
		if (s->override)
			h->header_set(edits, ONEGATE_RESPONSE_HEADERS, sh_table[k].header, s->value[k]);
		else if (!h->header(req, sh_table[k].header, 0, &len))
			h->header_add(edits, ONEGATE_RESPONSE_HEADERS, sh_table[k].header, s->value[k]);
	}
}

static const struct onegate_plugin sh_plugin = {
	.abi = ONEGATE_PLUGIN_ABI,
	.name = "security_headers",
	.create = sh_create,
	.destroy = sh_destroy,
	.on_response = sh_on_response,
};

ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void)
{
	return &sh_plugin;
}
