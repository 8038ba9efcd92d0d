/*
 * header_rules - fixed header edits on the way to the back end and back.
 *
 * args (lists): request_remove = [ "Name" ], request_set = [ "Name: value" ],
 * request_add = [ "Name: value" ], and the same with response_. On each side
 * removes go first, then sets (replacing every header of that name), then
 * adds. E.g. response_remove = [ "Server", "X-Powered-By" ]; hides what the
 * back end runs. Headers onegate owns (Host, Content-Length,
 * Transfer-Encoding, Connection and the other hop-by-hop headers,
 * X-Forwarded-*, Forwarded) are refused at load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "onegate_plugin.h"

enum hr_op { HR_REMOVE, HR_SET, HR_ADD };

struct hr_edit {
	enum onegate_side side;
	enum hr_op op;
	char *name;
	const char *value;              /* points into the argument, after "Name:" and spaces */
};

struct hr {
	const struct onegate_host *host;
	struct hr_edit *v;
	size_t n;
};

static const char *const hr_args[] = { "request_remove", "request_set", "request_add",
	                               "response_remove", "response_set", "response_add" };

static int hr_token(const char *s, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", s[i])))
			return 0;
	return 1;
}

static int hr_owned(const char *name)
{
	static const char *const owned[] = { "host", "content-length", "transfer-encoding", "connection", "keep-alive",
		                             "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
		                             "proxy-authorization", "x-forwarded-for", "x-forwarded-proto",
		                             "x-forwarded-host", "forwarded" };
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (strcasecmp(owned[i], name) == 0)
			return 1;
	return 0;
}

static int hr_edit_read(const char *text, struct hr_edit *e, char *err, size_t errlen)
{
	const char *colon = strchr(text, ':');
	size_t n = e->op == HR_REMOVE ? strlen(text) : colon ? (size_t)(colon - text) : 0;
	if (e->op != HR_REMOVE && !colon) {
		snprintf(err, errlen, "\"%s\" must be \"Name: value\"", text);
		return -1;
	}
	if (!hr_token(text, n)) {
		snprintf(err, errlen, "\"%.*s\" is not a header name (letters, digits and !#$%%&'*+-.^_`|~)", (int)n, text);
		return -1;
	}
	if (!(e->name = strndup(text, n))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (hr_owned(e->name)) {
		snprintf(err, errlen, "%s is onegate's to set (framing, routing or forwarding); leave it out", e->name);
		return -1;
	}
	if (colon) {
		e->value = colon + 1;
		while (*e->value == ' ' || *e->value == '\t')
			e->value++;
		if (strpbrk(e->value, "\r\n")) {
			snprintf(err, errlen, "the value of %s must be one line", e->name);
			return -1;
		}
	}
	return 0;
}

static void hr_destroy(void *inst)
{
	struct hr *h = inst;
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].name);
	free(h->v);
	free(h);
}

static void *hr_create(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err)
{
	struct hr *h = calloc(1, sizeof(*h));
	size_t total = 0;
	for (size_t i = 0; i < args->n; i++)
		total += args->v[i].nvalues;
	if (!h || !(h->v = calloc(total ? total : 1, sizeof(*h->v)))) {
		free(h);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	h->host = host;
	/* Table order is the order edits are made: each side's removes, sets, adds. */
	for (size_t t = 0; t < sizeof(hr_args) / sizeof(hr_args[0]); t++)
		for (size_t i = 0; i < args->n; i++) {
			const struct onegate_arg *a = &args->v[i];
			if (strcmp(a->name, hr_args[t]) != 0)
				continue;
			err->arg = (int)i;
			for (size_t k = 0; k < a->nvalues; k++) {
				struct hr_edit *e = &h->v[h->n];
				e->side = t < 3 ? ONEGATE_REQUEST_HEADERS : ONEGATE_RESPONSE_HEADERS;
				e->op = (enum hr_op)(t % 3);
				h->n++;
				if (hr_edit_read(a->values[k], e, err->msg, sizeof(err->msg)) != 0)
					goto fail;
			}
		}
	for (size_t i = 0; i < args->n; i++) {
		size_t t = 0;
		while (t < sizeof(hr_args) / sizeof(hr_args[0]) && strcmp(args->v[i].name, hr_args[t]) != 0)
			t++;
		if (t == sizeof(hr_args) / sizeof(hr_args[0])) {
			err->arg = (int)i;
			snprintf(err->msg, sizeof(err->msg), "unknown argument \"%s\"; header_rules takes request_remove, "
			         "request_set, request_add, response_remove, response_set and response_add", args->v[i].name);
			goto fail;
		}
	}
	err->arg = -1;
	if (!h->n) {
		snprintf(err->msg, sizeof(err->msg), "no edits: give e.g. response_remove = [ \"Server\" ];");
		goto fail;
	}
	return h;
fail:
	hr_destroy(h);
	return NULL;
}

static void hr_apply(const struct hr *h, enum onegate_side side, struct onegate_edits *edits)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct hr_edit *e = &h->v[i];
		if (e->side != side)
			continue;
		if (e->op == HR_REMOVE)
			h->host->header_remove(edits, side, e->name);
		else if (e->op == HR_SET)
			h->host->header_set(edits, side, e->name, e->value);
		else
			h->host->header_add(edits, side, e->name, e->value);
	}
}

static int hr_on_request(void *inst, const struct onegate_request *req, struct onegate_edits *edits)
{
	(void)req;
	hr_apply(inst, ONEGATE_REQUEST_HEADERS, edits);
	return 0;
}

static void hr_on_response(void *inst, const struct onegate_request *req, int status, struct onegate_edits *edits)
{
	(void)req;
	(void)status;
	hr_apply(inst, ONEGATE_RESPONSE_HEADERS, edits);
}

static const struct onegate_plugin hr_plugin = {
	.abi = ONEGATE_PLUGIN_ABI,
	.name = "header_rules",
	.create = hr_create,
	.destroy = hr_destroy,
	.on_request = hr_on_request,
	.on_response = hr_on_response,
};

ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void)
{
	return &hr_plugin;
}
