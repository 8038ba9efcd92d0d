/*
 * demo.c - `onegate demo`: a loopback-only demonstration with a throw-away
 * test PKI, built-in TLS demo back ends and the demo rule file, which is
 * looked for where onegate's data is installed (beside the binary in a build).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs.h"
#include "cli.h"
#include "process/daemon.h"
#include "rules.h"
#include "control/snapshot.h"

#define DEMO_LISTEN "127.0.0.1:8443"
#define DEMO_LISTEN_HTTP "127.0.0.1:8080"
#define DEMO_REQUEST_MAX 16384

struct demo_backend {
	const char *name;       /* shown in every answer */
	const char *pool;
	const char *cert;       /* base name in the state folder */
	uint16_t port;
	int fd;
	SSL_CTX *ctx;
	pthread_t thread;
};

static struct demo_backend demo_backends[] = {
	{ "adfs-1", "adfs", "adfs", 19101, -1, NULL, 0 },
	{ "adfs-2", "adfs", "adfs", 19102, -1, NULL, 0 },
	{ "lab-1", "lab", "lab", 19103, -1, NULL, 0 },
	{ "apps-1", "apps", "apps", 19104, -1, NULL, 0 },
	{ "mail-1", "mail", "mail", 19105, -1, NULL, 0 },
};
#define DEMO_NBACKENDS (sizeof(demo_backends) / sizeof(demo_backends[0]))

struct demo_conn {
	struct demo_backend *be;
	int fd;
};

/* Reads one request head (or gives up after the socket's timeout) and answers it. */
static void *demo_serve(void *arg)
{
	struct demo_conn *dc = arg;
	struct demo_backend *be = dc->be;
	SSL *ssl = SSL_new(be->ctx);
	char req[DEMO_REQUEST_MAX + 1];
	size_t got = 0;
	if (ssl && SSL_set_fd(ssl, dc->fd) && SSL_accept(ssl) == 1) {
		while (got < DEMO_REQUEST_MAX) {
			int n = SSL_read(ssl, req + got, (int)(DEMO_REQUEST_MAX - got));
			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
		char body[512], resp[1024];
		int blen = snprintf(body, sizeof(body),
		                    "onegate demo: back end \"%s\" (pool %s) answered; SNI was \"%s\"\n", be->name,
		                    be->pool, sni ? sni : "(none)");
		int rlen = snprintf(resp, sizeof(resp),
		                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
		                    "Connection: close\r\n\r\n%s",
		                    blen, body);
		SSL_write(ssl, resp, rlen);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	ERR_clear_error();
	close(dc->fd);
	free(dc);
	return NULL;
}

static void *demo_accept_loop(void *arg)
{
	struct demo_backend *be = arg;
	for (;;) {
		int fd = accept(be->fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return NULL;
		}
		struct timeval tv = { 10, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		struct demo_conn *dc = malloc(sizeof(*dc));
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (dc) {
			dc->be = be;
			dc->fd = fd;
		}
		if (!dc || pthread_create(&t, &attr, demo_serve, dc) != 0) {
			free(dc);
			close(fd);
		}
		pthread_attr_destroy(&attr);
	}
}

static int demo_start_backend(struct demo_backend *be, const char *state)
{
	char cert[PATH_MAX], key[PATH_MAX];
	if ((size_t)snprintf(cert, sizeof(cert), "%s/%s.pem", state, be->cert) >= sizeof(cert) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s.key", state, be->cert) >= sizeof(key)) {
		fprintf(stderr, "demo: state folder path too long: %s\n", state);
		return -1;
	}
	be->ctx = SSL_CTX_new(TLS_server_method());
	if (!be->ctx || !SSL_CTX_use_certificate_chain_file(be->ctx, cert) ||
	    !SSL_CTX_use_PrivateKey_file(be->ctx, key, SSL_FILETYPE_PEM)) {
		fprintf(stderr, "demo: back end %s cannot load %s: %s\n", be->name, cert,
		        ERR_reason_error_string(ERR_get_error()));
		return -1;
	}
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(be->port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	be->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (be->fd < 0 || setsockopt(be->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(be->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(be->fd, 512) != 0) {
		fprintf(stderr, "demo: back end %s cannot listen on 127.0.0.1:%u: %s (is another demo running?)\n",
		        be->name, be->port, strerror(errno));
		return -1;
	}
	if (pthread_create(&be->thread, NULL, demo_accept_loop, be) != 0)
		return -1;
	pthread_detach(be->thread);
	return 0;
}

static int demo_make_pki(const char *state)
{
	static const char *const adfs[] = { "sts.contoso.test" };
	static const char *const lab[] = { "*.home.test", "lab.test" };
	static const char *const apps[] = { "*.apps.test" };
	static const char *const mail[] = { "exch1.contoso.test" };
	static const char *const gateway[] = { "mail.contoso.test", "lyncdiscover.contoso.test" };
	const struct certs_leaf_spec leaves[] = {
		{ "adfs", adfs, 1, CERTS_KEY_ECDSA_P256, 30 },
		{ "lab", lab, 2, CERTS_KEY_ECDSA_P256, 30 },
		{ "apps", apps, 1, CERTS_KEY_RSA2048, 30 },
		{ "mail", mail, 1, CERTS_KEY_ECDSA_P256, 30 },
		{ "gateway", gateway, 2, CERTS_KEY_ECDSA_P256, 90 },
	};
	char err[512];
	if (certs_testpki_generate(state, leaves, sizeof(leaves) / sizeof(leaves[0]), err, sizeof(err)) != 0) {
		fprintf(stderr, "demo: %s\n", err);
		return -1;
	}
	return 0;
}

static void demo_ready(void *arg)
{
	const char *state = arg;
	const char *port = strrchr(DEMO_LISTEN, ':') + 1;
	printf("\nonegate demo is serving %s (TLS: passthrough by SNI, or terminated here) and %s (HTTP).\n"
	       "Try each route:\n\n", DEMO_LISTEN, DEMO_LISTEN_HTTP);
	static const char *const names[][3] = {
		{ "sts.contoso.test", "/", "passthrough, exact name -> pool adfs (run it twice: round robin)" },
		{ "nas.home.test", "/", "passthrough, wildcard *.home.test -> pool lab" },
		{ "app42.apps.test", "/", "passthrough, regex ~^app[0-9]+\\.apps\\.test$ -> pool apps" },
		{ "mail.contoso.test", "/owa/", "terminated here (gateway certificate), re-encrypted -> pool mail" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf("  # %s\n  curl --cacert %s/ca.pem --resolve %s:%s:127.0.0.1 https://%s:%s%s\n\n", names[i][2],
		       state, names[i][0], port, names[i][0], port, names[i][1]);
	const char *hport = strrchr(DEMO_LISTEN_HTTP, ':') + 1;
	printf("  # plain HTTP, Host routing -> pool mail over TLS\n"
	       "  curl -H 'Host: lyncdiscover.contoso.test' http://%s/\n\n"
	       "  # plain HTTP -> redirect to https\n"
	       "  curl -si -H 'Host: mail.contoso.test' http://127.0.0.1:%s/owa/\n\n"
	       "  # every service and real server, up or down: http://127.0.0.1:8404/ in a browser,\n"
	       "  # onegate status -c %s/demo.conf, or\n"
	       "  curl http://127.0.0.1:8404/api/status.txt\n\n"
	       "Rules: copied to %s/demo.conf, next to its certificates. Ctrl-C stops.\n\n",
	       DEMO_LISTEN_HTTP, hport, state, state);
	fflush(stdout);
}

/* The examples are installed in DATADIR/onegate, and a build puts demo.conf
 * the same way beside its binary: ../share/onegate from the binary first, so
 * a moved installation or a build tree finds its own, then the configured
 * install folder. */
static int demo_find_rules(char *out, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, cap, "%s/../share/onegate/examples/demo.conf", exe);
			if (access(out, R_OK) == 0)
				return 0;
		}
	}
	snprintf(out, cap, "%s/examples/demo.conf", ONEGATE_DATA_DIR);
	if (access(out, R_OK) == 0)
		return 0;
	fprintf(stderr, "demo: cannot find the demo's rule file (looked beside the binary and in %s/examples); "
	        "name it: onegate demo --rules rules/examples/demo.conf\n", ONEGATE_DATA_DIR);
	return -1;
}

/* The rule file names its certificates relative to itself, so it runs from the state folder. */
static int demo_copy_rules(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	FILE *out = in ? fopen(to, "wb") : NULL;
	char buf[8192];
	size_t n;
	int rc = in && out ? 0 : -1;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	if (rc != 0)
		fprintf(stderr, "demo: cannot copy %s to %s: %s\n", from, to, strerror(errno));
	return rc;
}

int cli_demo(int argc, char **argv)
{
	static const struct option opts[] = { { "state", required_argument, NULL, 's' },
		                               { "rules", required_argument, NULL, 'r' },
		                               { NULL, 0, NULL, 0 } };
	const char *state_arg = "state/demo";
	const char *rules_path = NULL;
	char found[PATH_MAX + 64];
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "s:r:", opts, NULL)) != -1) {
		if (o == 's')
			state_arg = optarg;
		else if (o == 'r')
			rules_path = optarg;
		else
			return 2;
	}
	if (!rules_path) {
		if (demo_find_rules(found, sizeof(found)) != 0)
			return 1;
		rules_path = found;
	}
	/* The parent of the default state folder may not exist yet. */
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", state_arg);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		mkdir(parent, 0700);
	}
	if (demo_make_pki(state_arg) != 0)
		return 1;
	char state[PATH_MAX];
	if (!realpath(state_arg, state))
		snprintf(state, sizeof(state), "%s", state_arg);

	/* Back-end threads must not take the stop signals the daemon waits for. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < DEMO_NBACKENDS; i++)
		if (demo_start_backend(&demo_backends[i], state) != 0)
			return 1;

	char copy[PATH_MAX + 16];
	snprintf(copy, sizeof(copy), "%s/demo.conf", state);
	if (demo_copy_rules(rules_path, copy) != 0)
		return 1;
	struct rules_diag *d = rules_diag_new();
	struct rules_config *cfg = d ? snapshot_rules_load(copy, d) : NULL;
	for (size_t i = 0; d && i < rules_diag_count(d); i++)
		fprintf(stderr, "%s\n", rules_diag_message(d, i));
	rules_diag_free(d);
	if (!cfg)
		return 1;
	/* The back-end threads end with the process. */
	return daemon_run(cfg, demo_ready, state);
}
