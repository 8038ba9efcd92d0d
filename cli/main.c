/*
 * main.c - `onegate <command>`: the table of commands, their help, and the
 * commands that are one call into the library (check, run, version).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cli.h"
#include "process/daemon.h"
#include "io/evmem.h"
#include "io/log.h"
#include "control/snapshot.h"

struct cli_command {
	const char *name;
	const char *synopsis;           /* its arguments; "\n" starts another form of it */
	const char *help;               /* what it does; "\n" starts another line of it */
	int (*fn)(int argc, char **argv);
};

static int cli_version(int argc, char **argv);
static int cli_help(int argc, char **argv);

static const struct cli_command cli_commands[] = {
	{ "run", "-c FILE", "serve the rule file until SIGTERM/SIGINT", cli_run },
	{ "check", "-c FILE [--print]",
	  "validate the rule file (and build what run would: TLS, token, pools); print every problem as\n"
	  "FILE:LINE: message; --print shows the configuration after templates and defaults", cli_check },
	{ "demo", "[--state DIR] [--rules FILE]",
	  "loopback demo with generated certificates and demo back ends; FILE: the demo's rule file\n"
	  "(default: examples/demo.conf where onegate's data is installed)", cli_demo },
	{ "certs", "inspect FILE [--password-file F] [--ca-file F]\nlist -c FILE",
	  "inspect: what a PEM/DER/PFX file holds and whether its chain is complete;\n"
	  "list: which host name gets which certificate, per TLS service", cli_certs },
	{ "status", "-c FILE [--watch [--interval S]]",
	  "the services, pools and real servers with their state and live numbers (from the admin\n"
	  "listener); --watch redraws every S seconds (1) until Ctrl-C", cli_status },
	{ "server", "drain|enable|disable POOL SERVER -c FILE",
	  "take a real server out of rotation (open connections finish) or back in", cli_server },
	{ "reload", "-c FILE",
	  "check the rule file, have the running onegate load it and say what it did;\n"
	  "exits 1 when the gateway refused it (every reason on stderr)", cli_reload },
	{ "version", "", "print versions of onegate and its libraries", cli_version },
	{ "help", "", "this list", cli_help },
};
#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

/* Each form of each command, then its help indented under it. */
static void usage(FILE *out)
{
	fprintf(out, "usage: onegate <command> [options]\n\n");
	for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
		const struct cli_command *c = &cli_commands[i];
		const char *p = c->synopsis;
		do {
			size_t n = strcspn(p, "\n");
			fprintf(out, "  %s%s%.*s\n", c->name, n ? " " : "", (int)n, p);
			p += n + (p[n] == '\n');
		} while (*p);
		for (p = c->help; *p;) {
			size_t n = strcspn(p, "\n");
			fprintf(out, "        %.*s\n", (int)n, p);
			p += n + (p[n] == '\n');
		}
	}
}

static void print_diag(const struct rules_diag *d)
{
	for (size_t i = 0; i < rules_diag_count(d); i++)
		fprintf(stderr, "%s\n", rules_diag_message(d, i));
}

struct rules_config *cli_load(const char *cmd, int argc, char **argv, struct cli_options *opt)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
		                               { "debug", no_argument, NULL, 'd' },
		                               { "print", no_argument, NULL, 'p' },
		                               { "watch", no_argument, NULL, 'w' },
		                               { "interval", required_argument, NULL, 'i' },
		                               { NULL, 0, NULL, 0 } };
	const char *path = NULL;
	int o;
	*opt = (struct cli_options){ .interval = 1 };
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:dpwi:", opts, NULL)) != -1) {
		if (o == 'c')
			path = optarg;
		else if (o == 'p' && !strcmp(cmd, "check"))
			opt->print = true;
		else if (o == 'w' && !strcmp(cmd, "status"))
			opt->watch = true;
		else if (o == 'i' && !strcmp(cmd, "status") && atoi(optarg) >= 1 && atoi(optarg) <= 3600)
			opt->interval = (unsigned)atoi(optarg);
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

int cli_check(int argc, char **argv)
{
	struct cli_options opt;
	struct rules_config *cfg = cli_load("check", argc, argv, &opt);
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
	if (opt.print)
		rules_print(stdout, cfg);
	printf("%s: OK (%zu pools, %zu services)\n", cfg->path, cfg->npools, cfg->nservices);
	rules_config_unref(cfg);
	return 0;
}

int cli_run(int argc, char **argv)
{
	struct cli_options opt;
	struct rules_config *cfg = cli_load("run", argc, argv, &opt);
	if (!cfg)
		return 1;
	return daemon_run(cfg, NULL, NULL);
}

static int cli_version(int argc, char **argv)
{
	printf("onegate %s\n", ONEGATE_VERSION);
	printf("  TLS:     %s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("  libevent %s\n", event_get_version());
	char pcre[64] = "";
	pcre2_config(PCRE2_CONFIG_VERSION, pcre);
	printf("  PCRE2    %s\n", pcre);
	return 0;
}

static int cli_help(int argc, char **argv)
{
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/* Before any command's first libevent call: its buffers' blocks are kept per thread. */
	(void)evmem_install();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version"))
		cmd = "version";
	else if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		cmd = "help";
	for (size_t i = 0; i < CLI_NCOMMANDS; i++)
		if (!strcmp(cmd, cli_commands[i].name))
			return cli_commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "onegate: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
