/*
 * onegate - one public address, many published services.
 * Subcommands: run, check, demo, version.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "daemon.h"
#include "demo.h"
#include "log.h"
#include "rules.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: onegate <command> [options]\n"
	        "\n"
	        "  run   -c FILE     serve the rule file until SIGTERM/SIGINT\n"
	        "  check -c FILE     validate the rule file; print every problem as FILE:LINE: message\n"
	        "  demo [--state DIR]  loopback demo with generated certificates and demo back ends\n"
	        "  version           print versions of onegate and its libraries\n");
}

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
		                               { NULL, 0, NULL, 0 } };
	const char *path = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:d", opts, NULL)) != -1) {
		if (o == 'c')
			path = optarg;
		else if (o == 'd')
			log_set_level(LOG_DEBUG);
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
	struct rules_config *cfg = rules_load_file(path, d);
	print_diag(d);
	rules_diag_free(d);
	return cfg;
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
	if (!strcmp(cmd, "check")) {
		struct rules_config *cfg = load_from_args(cmd, argc - 1, argv + 1);
		if (!cfg)
			return 1;
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
