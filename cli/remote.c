/*
 * remote.c - the commands that talk to the running gateway's admin listener:
 * `onegate status`, `onegate server drain|enable|disable`, `onegate reload`.
 */
#define _GNU_SOURCE /* open_memstream */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "control/admin.h"
#include "cli.h"

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
static int status_watch_loop(const struct rules_config *cfg, unsigned watch_interval)
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

int cli_status(int argc, char **argv)
{
	struct cli_options opt;
	struct rules_config *cfg = cli_load("status", argc, argv, &opt);
	if (!cfg)
		return 1;
	int rc = opt.watch ? status_watch_loop(cfg, opt.interval) : admin_call(cfg, "GET", "/api/status.txt");
	rules_config_unref(cfg);
	return rc;
}

/* onegate server drain|enable|disable POOL SERVER -c FILE */
int cli_server(int argc, char **argv)
{
	if (argc < 4 || (strcmp(argv[1], "drain") && strcmp(argv[1], "enable") && strcmp(argv[1], "disable"))) {
		fprintf(stderr, "usage: onegate server drain|enable|disable POOL SERVER -c FILE\n");
		return 2;
	}
	const char *action = argv[1], *pool = argv[2], *server = argv[3];
	struct cli_options opt;
	struct rules_config *cfg = cli_load("server", argc - 3, argv + 3, &opt);
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
int cli_reload(int argc, char **argv)
{
	struct cli_options opt;
	struct rules_config *cfg = cli_load("reload", argc, argv, &opt);
	if (!cfg) {
		fprintf(stderr, "onegate reload: the rule file has errors; the running gateway keeps its rules\n");
		return 1;
	}
	int rc = admin_call(cfg, "POST", "/api/reload");
	rules_config_unref(cfg);
	return rc;
}
