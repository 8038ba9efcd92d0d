#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "log.h"
#include "worker.h"

#define DAEMON_BACKLOG 4096
#define DAEMON_POLL_MS 50

/* Another process holding the address (without SO_REUSEPORT, or as another
 * user) makes this probe fail; our own SO_REUSEPORT sockets would not, so the
 * probe is what turns a port clash into a clear error instead of a silent
 * share with whatever else listens there. */
static int daemon_probe_free(const struct rules_addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	int r = bind(fd, (const struct sockaddr *)&a->ss, a->len);
	int err = errno;
	close(fd);
	errno = err;
	return r;
}

static int daemon_listen_socket(const struct rules_addr *a)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    (a->ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, DAEMON_BACKLOG) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Binds every listen address once per worker before anything is served, so a
 * bad or busy address stops start-up with its name. */
static int daemon_bind_all(const struct rules_config *cfg, struct worker **ws, unsigned nw)
{
	for (size_t s = 0; s < cfg->nservices; s++) {
		const struct rules_service *svc = &cfg->services[s];
		for (size_t a = 0; a < svc->nlisten; a++) {
			const struct rules_addr *addr = &svc->listen[a];
			if (daemon_probe_free(addr) != 0) {
				log_msg(LOG_ERROR, "%s:%d: service %s cannot listen on %s: %s%s", cfg->path,
				        svc->line, svc->name, addr->text, strerror(errno),
				        errno == EADDRINUSE ? " (another program holds it; stop it or pick another port)"
				                            : "");
				return -1;
			}
			for (unsigned i = 0; i < nw; i++) {
				int fd = daemon_listen_socket(addr);
				if (fd < 0 || worker_add_listener(ws[i], fd, s) != 0) {
					log_msg(LOG_ERROR, "%s:%d: service %s cannot listen on %s: %s", cfg->path,
					        svc->line, svc->name, addr->text, strerror(errno));
					return -1;
				}
			}
		}
	}
	return 0;
}

static bool daemon_all_finished(struct worker **ws, unsigned nw)
{
	for (unsigned i = 0; i < nw; i++)
		if (!worker_finished(ws[i]))
			return false;
	return true;
}

/* Waits for the workers to finish on their own; a second stop signal or the
 * end of the drain time closes what is left. */
static void daemon_drain(struct worker **ws, unsigned nw, unsigned drain_ms, const sigset_t *sigs)
{
	struct timespec tick = { 0, DAEMON_POLL_MS * 1000000L };
	unsigned waited = 0;
	while (!daemon_all_finished(ws, nw)) {
		if (waited >= drain_ms) {
			log_msg(LOG_WARN, "drain time over: closing the connections still open");
			break;
		}
		int sig = sigtimedwait(sigs, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_msg(LOG_WARN, "second stop signal: closing the connections still open");
			break;
		}
		waited += DAEMON_POLL_MS;
	}
	for (unsigned i = 0; i < nw; i++)
		worker_kill(ws[i]);
}

static int daemon_wait_signal(const sigset_t *sigs)
{
	for (;;) {
		int sig = sigwaitinfo(sigs, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			return sig;
		if (sig == SIGHUP)
			log_msg(LOG_WARN, "SIGHUP: reloading the rule file is not available yet; still serving the loaded rules");
	}
}

int daemon_run(struct rules_config *cfg, daemon_ready_fn ready, void *arg)
{
	unsigned nw = cfg->workers ? cfg->workers : 1;
	struct worker **ws = calloc(nw, sizeof(*ws));
	int rc = 1;
	if (!ws) {
		rules_config_unref(cfg);
		return 1;
	}

	/* Workers inherit this mask: only the main thread takes signals, synchronously. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (unsigned i = 0; i < nw; i++) {
		ws[i] = worker_new(i, cfg);
		if (!ws[i]) {
			log_msg(LOG_ERROR, "cannot create worker %u: out of memory or descriptors", i);
			goto out;
		}
	}
	if (daemon_bind_all(cfg, ws, nw) != 0)
		goto out;
	for (unsigned i = 0; i < nw; i++) {
		if (worker_start(ws[i]) != 0) {
			log_msg(LOG_ERROR, "cannot start worker thread %u", i);
			for (unsigned j = 0; j < i; j++)
				worker_kill(ws[j]);
			goto out;
		}
	}
	size_t naddr = 0;
	for (size_t s = 0; s < cfg->nservices; s++)
		naddr += cfg->services[s].nlisten;
	log_msg(LOG_INFO, "onegate serving %zu services on %zu addresses with %u workers (rules: %s)",
	        cfg->nservices, naddr, nw, cfg->path);
	if (ready)
		ready(arg);

	int sig = daemon_wait_signal(&sigs);
	log_msg(LOG_INFO, "%s: no new connections; draining open ones for up to %u ms",
	        sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->drain_timeout_ms);
	for (unsigned i = 0; i < nw; i++)
		worker_stop(ws[i]);
	daemon_drain(ws, nw, cfg->drain_timeout_ms, &sigs);
	rc = 0;
out:
	for (unsigned i = 0; i < nw; i++)
		worker_free(ws[i]);
	free(ws);
	if (rc == 0)
		log_msg(LOG_INFO, "stopped");
	rules_config_unref(cfg);
	return rc;
}
