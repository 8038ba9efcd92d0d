/*
 * ip_filter - answers requests from client addresses the route does not take.
 *
 * args: allow = [ CIDR, ... ] (when given, only these), deny = [ CIDR, ... ]
 * (never these; deny wins), status = 403. A CIDR is "192.168.0.0/16",
 * "fd00::/8", or one address. IPv4 clients seen through an IPv6 socket
 * (::ffff:a.b.c.d) match IPv4 ranges.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundled_args.h"
#include "onegate_plugin.h"

struct ipf_net {
	uint8_t addr[16];               /* IPv4 as ::ffff:a.b.c.d, so one compare serves both */
	unsigned bits;                  /* of the 128 */
};

struct ipf_list {
	struct ipf_net *v;
	size_t n;
};

struct ipf {
	const struct onegate_host *host;
	struct ipf_list allow, deny;
	int status;
};

static void ipf_mapped(uint8_t out[16], const void *v4)
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, v4, 4);
}

/* "a.b.c.d/n", "v6/n" or an address alone; -1 with the reason in err. */
static int ipf_parse(const char *text, struct ipf_net *net, char *err, size_t errlen)
{
	char buf[64];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(buf)) {
		snprintf(err, errlen, "\"%s\" is not an address or CIDR range (e.g. \"192.168.0.0/16\", \"fd00::/8\")", text);
		return -1;
	}
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	uint8_t a4[4];
	unsigned max;
	if (inet_pton(AF_INET, buf, a4) == 1) {
		ipf_mapped(net->addr, a4);
		max = 32;
	} else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
		max = 128;
	} else {
		snprintf(err, errlen, "\"%s\" is not an address or CIDR range (e.g. \"192.168.0.0/16\", \"fd00::/8\")", text);
		return -1;
	}
	unsigned bits = max;
	if (slash) {
		char *end;
		unsigned long b = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || b > max) {
			snprintf(err, errlen, "\"%s\": the prefix length must be 0 to %u", text, max);
			return -1;
		}
		bits = (unsigned)b;
	}
	net->bits = bits + (128 - max);
	/* Host bits set is almost always a typo for the network: say which one was meant. */
	for (unsigned i = net->bits; i < 128; i++)
		if (net->addr[i / 8] & (0x80 >> (i % 8))) {
			for (unsigned j = net->bits; j < 128; j++)
				net->addr[j / 8] &= (uint8_t) ~(0x80 >> (j % 8));
			char shown[INET6_ADDRSTRLEN];
			if (max == 32)
				inet_ntop(AF_INET, net->addr + 12, shown, sizeof(shown));
			else
				inet_ntop(AF_INET6, net->addr, shown, sizeof(shown));
			snprintf(err, errlen, "\"%s\" has bits set past its /%u prefix; write \"%s/%u\"", text, bits, shown, bits);
			return -1;
		}
	return 0;
}

static int ipf_match(const struct ipf_net *n, const uint8_t a[16])
{
	unsigned full = n->bits / 8, rest = n->bits % 8;
	if (memcmp(n->addr, a, full) != 0)
		return 0;
	return !rest || ((n->addr[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static int ipf_any(const struct ipf_list *l, const uint8_t a[16])
{
	for (size_t i = 0; i < l->n; i++)
		if (ipf_match(&l->v[i], a))
			return 1;
	return 0;
}

static void ipf_destroy(void *inst)
{
	struct ipf *f = inst;
	free(f->allow.v);
	free(f->deny.v);
	free(f);
}

static int ipf_list_read(const struct onegate_arg *a, struct ipf_list *l, char *err, size_t errlen)
{
	if (!(l->v = calloc(a->nvalues ? a->nvalues : 1, sizeof(*l->v)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->nvalues; i++, l->n++)
		if (ipf_parse(a->values[i], &l->v[i], err, errlen) != 0)
			return -1;
	return 0;
}

static void *ipf_create(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err)
{
	struct ipf *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	f->host = host;
	f->status = 403;
	for (size_t i = 0; i < args->n; i++) {
		const struct onegate_arg *a = &args->v[i];
		err->arg = (int)i;
		if (strcmp(a->name, "allow") == 0 || strcmp(a->name, "deny") == 0) {
			if (ipf_list_read(a, a->name[0] == 'a' ? &f->allow : &f->deny, err->msg, sizeof(err->msg)) != 0)
				goto fail;
		} else if (strcmp(a->name, "status") == 0) {
			if (bundled_status_arg(a, 403, &f->status, err->msg, sizeof(err->msg)) != 0)
				goto fail;
		} else {
			snprintf(err->msg, sizeof(err->msg), "unknown argument \"%s\"; ip_filter takes allow, deny and status",
			         a->name);
			goto fail;
		}
	}
	err->arg = -1;
	if (!f->allow.n && !f->deny.n) {
		snprintf(err->msg, sizeof(err->msg), "give allow = [ \"192.168.0.0/16\" ]; or deny = [ ... ]; (or both)");
		goto fail;
	}
	return f;
fail:
	ipf_destroy(f);
	return NULL;
}

static int ipf_on_request(void *inst, const struct onegate_request *req, struct onegate_edits *edits)
{
	(void)edits;
	const struct ipf *f = inst;
	socklen_t len;
	const struct sockaddr *sa = f->host->client_addr(req, &len);
	uint8_t a[16];
	if (sa->sa_family == AF_INET)
		ipf_mapped(a, &((const struct sockaddr_in *)sa)->sin_addr);
	else if (sa->sa_family == AF_INET6)
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return f->status;
	if (ipf_any(&f->deny, a) || (f->allow.n && !ipf_any(&f->allow, a)))
		return f->status;
	return 0;
}

static const struct onegate_plugin ipf_plugin = {
	.abi = ONEGATE_PLUGIN_ABI,
	.name = "ip_filter",
	.create = ipf_create,
	.destroy = ipf_destroy,
	.on_request = ipf_on_request,
};

ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void)
{
	return &ipf_plugin;
}
