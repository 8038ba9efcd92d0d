/*
 * certs.c - `onegate certs inspect FILE` (what a certificate file holds) and
 * `onegate certs list -c FILE` (which host name gets which certificate, and
 * when ACME renews it, as the running gateway reports it).
 */
#define _GNU_SOURCE /* open_memstream */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "control/admin.h"
#include "certs.h"
#include "cli.h"

static int cmd_certs_inspect(int argc, char **argv)
{
	static const struct option opts[] = { { "password-file", required_argument, NULL, 'p' },
		                               { "ca-file", required_argument, NULL, 'a' },
		                               { NULL, 0, NULL, 0 } };
	const char *pass_file = NULL, *ca = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "p:a:", opts, NULL)) != -1) {
		if (o == 'p')
			pass_file = optarg;
		else if (o == 'a')
			ca = optarg;
		else
			return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "onegate certs inspect: name the certificate file\n");
		return 2;
	}
	char pass[1024] = "";
	if (pass_file) {
		FILE *f = fopen(pass_file, "r");
		if (!f || !fgets(pass, sizeof(pass), f)) {
			fprintf(stderr, "onegate certs inspect: cannot read the password file %s\n", pass_file);
			if (f)
				fclose(f);
			return 1;
		}
		fclose(f);
		pass[strcspn(pass, "\r\n")] = '\0';
	}
	return certs_inspect(stdout, argv[optind], pass, ca);
}

/* The running gateway's view of its certificates (ACME renewals, last errors),
 * from its admin listener; NULL when there is none or it does not answer. */
static json_t *certs_running_view(const struct rules_config *cfg)
{
	if (!cfg->admin.on)
		return NULL;
	char *text = NULL, err[512];
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return NULL;
	int st = admin_client(&cfg->admin, "GET", "/api/status", mem, err, sizeof(err));
	fclose(mem);
	json_error_t je;
	json_t *j = st == 200 ? json_loadb(text, len, 0, &je) : NULL;
	free(text);
	json_t *certs = json_incref(json_object_get(j, "certificates"));
	json_decref(j);
	return certs;
}

static void certs_time_text(time_t t, char *out, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Every certificate: names, expiry, and for ACME the next renewal and the last error. */
static void certs_list_summary(const struct rules_config *cfg)
{
	json_t *live = certs_running_view(cfg);
	printf("certificates%s\n", live ? " (renewals as the running gateway reports them)"
	                                 : cfg->admin.on ? " (the running gateway did not answer: from the files)" : "");
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *c = &cfg->certs[i];
		json_t *e = NULL;
		for (size_t k = 0; k < json_array_size(live) && !e; k++) {
			const char *n = json_string_value(json_object_get(json_array_get(live, k), "name"));
			if (n && strcmp(n, c->name) == 0)
				e = json_array_get(live, k);
		}
		bool issued = c->item && !certs_item_is_placeholder(c->item);
		time_t until = issued ? certs_item_not_after(c->item) : 0;
		time_t next = issued ? certs_item_not_before(c->item) + (until - certs_item_not_before(c->item)) * 2 / 3 : 0;
		const char *error = "";
		if (e && json_is_integer(json_object_get(e, "not_after"))) {
			until = (time_t)json_integer_value(json_object_get(e, "not_after"));
			issued = true;
		}
		json_t *acme = json_object_get(e, "acme");
		if (acme) {
			next = (time_t)json_integer_value(json_object_get(acme, "next_renewal"));
			error = json_string_value(json_object_get(acme, "last_error")) ? json_string_value(json_object_get(acme, "last_error")) : "";
		}
		char when[40] = "not issued yet", nextt[40] = "now";
		if (until)
			certs_time_text(until, when, sizeof(when));
		if (next)
			certs_time_text(next, nextt, sizeof(nextt));
		printf("  %-20s %-4s expires %-22s", c->name, c->acme ? "acme" : "file", when);
		if (c->acme)
			printf(" renews %-22s", nextt);
		size_t nn = c->acme ? c->acme->nnames : certs_item_nnames(c->item);
		for (size_t n = 0; n < nn; n++)
			printf(" %s", c->acme ? c->acme->names[n] : certs_item_name_at(c->item, n));
		printf("\n");
		if (error[0])
			printf("  %-20s last error: %s\n", "", error);
	}
	json_decref(live);
}

/* Which certificate each routed host name gets, service by service. */
static int cmd_certs_list(int argc, char **argv)
{
	struct cli_options opt;
	struct rules_config *cfg = cli_load("certs list", argc, argv, &opt);
	if (!cfg)
		return 1;
	certs_list_summary(cfg);
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		if (svc->mode != RULES_MODE_TLS)
			continue;
		printf("service %s\n", svc->name);
		for (size_t k = 0; k < svc->ncerts; k++) {
			const struct rules_cert *c = &cfg->certs[svc->certs[k]];
			printf("  certificate %s%s (%s):", c->name, (long)svc->certs[k] == svc->default_cert ? " [default]" : "",
			       certs_item_is_ecdsa(c->item) ? "ECDSA" : "RSA");
			for (size_t n = 0; n < certs_item_nnames(c->item); n++)
				printf(" %s", certs_item_name_at(c->item, n));
			printf("\n");
		}
		for (size_t r = 0; r < svc->nroutes; r++) {
			const struct rules_route *rt = &svc->routes[r];
			if (rt->passthrough) {
				printf("  %-40s passthrough (the back end's own certificate)\n", rt->sni);
				continue;
			}
			if (!rt->host || rt->host[0] == '~' || (long)r == svc->default_route)
				continue;
			const char *who = NULL;
			for (size_t k = 0; k < svc->ncerts && !who; k++) {
				const struct rules_cert *c = &cfg->certs[svc->certs[k]];
				if (certs_item_covers(c->item, rt->host, strlen(rt->host)))
					who = c->name;
			}
			printf("  %-40s %-20s (route at line %d)\n", rt->host, who ? who : "(none: name mismatch)", rt->line);
		}
	}
	rules_config_unref(cfg);
	return 0;
}

/* onegate certs inspect|list ... */
int cli_certs(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
		return cmd_certs_inspect(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return cmd_certs_list(argc - 1, argv + 1);
	fprintf(stderr, "usage: onegate certs inspect FILE [--password-file F] [--ca-file F]\n"
	                "       onegate certs list -c FILE\n");
	return 2;
}
