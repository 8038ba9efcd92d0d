/*
 * cli.h - the command line: `onegate <command>`. Not part of the gateway
 * library; every command calls the library through its module headers.
 *
 * Contract: each command is a function of (argc, argv) with argv[0] its own
 * name, returning the process's exit code (0 done, 1 failed, 2 bad usage). The
 * table in main.c names them, with the one-line help `onegate help` prints.
 */
#ifndef ONEGATE_CLI_H
#define ONEGATE_CLI_H

#include <stdbool.h>

#include "rules.h"

/* The options the commands that read a rule file share. */
struct cli_options {
	bool print;                     /* check --print */
	bool watch;                     /* status --watch */
	unsigned interval;              /* status --interval, seconds */
};

/* Loads the rule file -c names as every command builds it (snapshot.h),
 * printing every message to stderr; NULL on any error or a bad option. */
struct rules_config *cli_load(const char *cmd, int argc, char **argv, struct cli_options *opt);

int cli_check(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_certs(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_server(int argc, char **argv);
int cli_reload(int argc, char **argv);

#endif
