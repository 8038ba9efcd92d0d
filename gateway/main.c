/*
 * onegate - one public address, many published services.
 * Subcommands: run, check, demo, certs, version.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "admin.h"
#include "daemon.h"
#include "demo.h"
#include "log.h"
#include "certs.h"
#include "rules.h"
#include "snapshot.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: onegate <command> [options]\n"
	        "\n"
	        "  run   -c FILE     serve the rule file until SIGTERM/SIGINT\n"
	        "  check -c FILE [--print]\n"
	        "                    validate the rule file; print every problem as FILE:LINE: message;\n"
	        "                    --print shows the configuration after templates and defaults\n"
	        "  demo [--state DIR]  loopback demo with generated certificates and demo back ends\n"
	        "  certs inspect FILE [--password-file F] [--ca-file F]\n"
	        "                    what a PEM/DER/PFX file holds and whether its chain is complete\n"
	        "  certs list -c FILE  which host name gets which certificate, per TLS service\n"
	        "  status -c FILE [--watch [--interval S]]\n"
	        "                    the services, pools and real servers with their state and live numbers\n"
	        "                    (from the admin listener); --watch redraws every S seconds (1) until Ctrl-C\n"
	        "  server drain|enable|disable POOL SERVER -c FILE\n"
	        "                    take a real server out of rotation (open connections finish) or back in\n"
	        "  reload -c FILE    check the rule file, have the running onegate load it and say what it did;\n"
	        "                    exits 1 when the gateway refused it (every reason on stderr)\n"
	        "  version           print versions of onegate and its libraries\n");
}

/* check --print: show the configuration after templates and defaults. */
static bool print_effective;
/* status --watch: redraw every watch_interval seconds. */
static bool status_watch;
static unsigned watch_interval = 1;

static void print_diag(const struct rules_diag *d)
{
	for (size_t i = 0; i < rules_diag_count(d); i++)
		fprintf(stderr, "%s\n", rules_diag_message(d, i));
}

/* Loads FILE from -c; prints diagnostics; NULL on any error. */
static struct rules_config *load_from_args(const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		                               { "debug", no_argument, NULL, 'd' },
		                               { "print", no_argument, NULL, 'p' },
		                               { "watch", no_argument, NULL, 'w' },
		                               { "interval", required_argument, NULL, 'i' },
		                               { NULL, 0, NULL, 0 } };
	const char *path = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:dpwi:", opts, NULL)) != -1) {
		if (o == 'c')
			path = optarg;
		else if (o == 'p' && !strcmp(cmd, "check"))
			print_effective = true;
		else if (o == 'w' && !strcmp(cmd, "status"))
			status_watch = true;
		else if (o == 'i' && !strcmp(cmd, "status") && atoi(optarg) >= 1 && atoi(optarg) <= 3600)
			watch_interval = (unsigned)atoi(optarg);
		else if (o == 'd')
			log_force_debug();
		else
			return NULL;
	}
	if (!path) {
		fprintf(stderr, "onegate %s: missing -c FILE (the rule file)\n", cmd);
		return NULL;
	}
	struct rules_diag *d = rules_diag_new();
	if (!d)
		return NULL;
	struct rules_config *cfg = snapshot_rules_load(path, d);
	print_diag(d);
	rules_diag_free(d);
	return cfg;
}

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
	struct rules_config *cfg = load_from_args("certs list", argc, argv);
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

/* One request to the running gateway's admin listener; its answer goes to
 * stdout, or to stderr when the gateway said no. */
static int admin_call(const struct rules_config *cfg, const char *method, const char *path)
{
	char err[512], *body = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&body, &len);
	if (!mem) {
		fprintf(stderr, "onegate: out of memory\n");
		return 1;
	}
	int st = admin_client(&cfg->admin, method, path, mem, err, sizeof(err));
	fclose(mem);
	bool ok = st >= 200 && st < 300;
	if (st < 0)
		fprintf(stderr, "onegate: %s\n", err);
	else
		fwrite(body, 1, len, ok ? stdout : stderr);
	free(body);
	return ok ? 0 : 1;
}

static volatile sig_atomic_t watch_stop;

static void watch_on_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Like top: the alternate screen, redrawn from its top left corner, each line
 * cleared past its end, so nothing scrolls or flickers; the screen the admin
 * had comes back on Ctrl-C. */
static int status_watch_loop(const struct rules_config *cfg)
{
	struct sigaction sa = { .sa_handler = watch_on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fputs("\033[?1049h\033[?25l", stdout);
	while (!watch_stop) {
		char err[512], *body = NULL, now[32];
		size_t len = 0;
		FILE *mem = open_memstream(&body, &len);
		int st = mem ? admin_client(&cfg->admin, "GET", "/api/status.txt", mem, err, sizeof(err)) : -1;
		if (mem)
			fclose(mem);
		time_t t = time(NULL);
		strftime(now, sizeof(now), "%H:%M:%S", localtime(&t));
		printf("\033[H%s  every %u s, Ctrl-C quits\033[K\n", now, watch_interval);
		const char *text = st >= 200 && st < 300 ? body : st < 0 ? err : "the admin listener said no";
		for (const char *p = text ? text : ""; *p;) {
			size_t n = strcspn(p, "\n");
			printf("%.*s\033[K\n", (int)n, p);
			p += n + (p[n] == '\n');
		}
		fputs("\033[J", stdout);
		fflush(stdout);
		free(body);
		for (unsigned waited = 0; waited < watch_interval * 10 && !watch_stop; waited++)
			usleep(100000);
	}
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	struct rules_config *cfg = load_from_args("status", argc, argv);
	if (!cfg)
		return 1;
	int rc = status_watch ? status_watch_loop(cfg) : admin_call(cfg, "GET", "/api/status.txt");
	rules_config_unref(cfg);
	return rc;
}

/* onegate server drain|enable|disable POOL SERVER -c FILE */
static int cmd_server(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "drain") && strcmp(argv[1], "enable") && strcmp(argv[1], "disable"))) {
		fprintf(stderr, "usage: onegate server drain|enable|disable POOL SERVER -c FILE\n");
		return 2;
	}
	const char *action = argv[1], *pool = argv[2], *server = argv[3];
	struct rules_config *cfg = load_from_args("server", argc - 3, argv + 3);
	if (!cfg)
		return 1;
	char *ep = evhttp_encode_uri(pool), *es = evhttp_encode_uri(server);
	char path[1024];
	snprintf(path, sizeof(path), "/api/pools/%s/servers/%s/%s", ep ? ep : "", es ? es : "", action);
	free(ep);
	free(es);
	int rc = admin_call(cfg, "POST", path);
	rules_config_unref(cfg);
	return rc;
}

/* Checks first, here, so that a bad file is reported to whoever typed the command. */
static int cmd_reload(int argc, char **argv)
{
	struct rules_config *cfg = load_from_args("reload", argc, argv);
	if (!cfg) {
		fprintf(stderr, "onegate reload: the rule file has errors; the running gateway keeps its rules\n");
		return 1;
	}
	int rc = admin_call(cfg, "POST", "/api/reload");
	rules_config_unref(cfg);
	return rc;
}

static int cmd_version(void)
{
	printf("onegate %s\n", ONEGATE_VERSION);
	printf("  TLS:     %s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("  libevent %s\n", event_get_version());
	char pcre[64] = "";
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	printf("  PCRE2    %s\n", pcre);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
		return cmd_version();
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "demo"))
		return demo_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "certs") && argc >= 3 && !strcmp(argv[2], "inspect"))
		return cmd_certs_inspect(argc - 2, argv + 2);
	if (!strcmp(cmd, "certs") && argc >= 3 && !strcmp(argv[2], "list"))
		return cmd_certs_list(argc - 2, argv + 2);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "server"))
		return cmd_server(argc - 1, argv + 1);
	if (!strcmp(cmd, "reload"))
		return cmd_reload(argc - 1, argv + 1);
	if (!strcmp(cmd, "check")) {
		struct rules_config *cfg = load_from_args(cmd, argc - 1, argv + 1);
		if (!cfg)
			return 1;
		/* What run would build, token file included. */
		char err[512];
		int line;
		struct snapshot snap;
		if (snapshot_make(&snap, rules_config_ref(cfg), NULL, err, sizeof(err), &line) != 0) {
			if (line)
				fprintf(stderr, "%s:%d: %s\n", cfg->path, line, err);
			else
				fprintf(stderr, "%s: %s\n", cfg->path, err);
			rules_config_unref(cfg);
			return 1;
		}
		snapshot_clear(&snap);
		if (print_effective)
			rules_print(stdout, cfg);
		printf("%s: OK (%zu pools, %zu services)\n", cfg->path, cfg->npools, cfg->nservices);
		rules_config_unref(cfg);
		return 0;
	}
	if (!strcmp(cmd, "run")) {
		struct rules_config *cfg = load_from_args(cmd, argc - 1, argv + 1);
		if (!cfg)
			return 1;
		return daemon_run(cfg, NULL, NULL);
	}
	fprintf(stderr, "onegate: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
