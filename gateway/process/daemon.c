#include "process/daemon.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/mem.h>

#include "io/addr.h"
#include "acme/acme.h"
#include "control/admin.h"
#include "control/control.h"
#include "control/live.h"
#include "io/log.h"
#include "process/notify.h"
#include "proxy/pool.h"
#include "process/privs.h"
#include "schema.h"
#include "control/snapshot.h"
#include "control/state.h"
#include "proxy/stats.h"
#include "proxy/tlsconf.h"
#include "process/worker.h"

#define DAEMON_BACKLOG 4096
#define DAEMON_POLL_MS 50

/* Another process holding the address (without SO_REUSEPORT, or as another
 * user) makes this probe fail; our own SO_REUSEPORT sockets would not, so the
 * probe is what turns a port clash into a clear error instead of a silent
 * share with whatever else listens there. */
static int daemon_ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
	return x < y ? -1 : x > y;
}

/* How many certificates of next are the very items cur holds: files a reload found unchanged. */
static size_t daemon_certs_kept(const struct rules_config *cur, const struct rules_config *next)
{
	const void **held = malloc((cur->ncerts ? cur->ncerts : 1) * sizeof(*held));
	size_t n = 0, kept = 0;
	if (!held)
		return 0;
	for (size_t i = 0; i < cur->ncerts; i++)
		if (cur->certs[i].item)
			held[n++] = cur->certs[i].item;
	qsort(held, n, sizeof(*held), daemon_ptr_cmp);
	for (size_t i = 0; i < next->ncerts; i++)
		kept += next->certs[i].item && bsearch(&next->certs[i].item, held, n, sizeof(*held), daemon_ptr_cmp);
	free(held);
	return kept;
}

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

/* What the daemon runs: the rules in force and what was built from them. */
struct daemon_state {
	struct rules_config *cfg;
	struct tlsconf *tls;
	struct pool_table *pools;
	struct control *control;
	struct acme *acme;              /* certificates: ACME orders and renewals, expiry warnings */
	struct worker **ws;
	unsigned nw;
};

/* Logs a line; during a reload (notes not NULL) it is also one of the messages
 * that whoever asked for the reload reads under the verdict. */
static void daemon_note(FILE *notes, enum log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void daemon_note(FILE *notes, enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", line);
	if (notes)
		fprintf(notes, "%s\n", line);
}

static int daemon_admin_socket(const struct rules_config *cfg, FILE *notes)
{
	const struct rules_admin *a = &cfg->admin;
	int fd = daemon_probe_free(&a->listen) == 0 ? daemon_listen_socket(&a->listen) : -1;
	if (fd < 0)
		daemon_note(notes, LOG_ERROR, "%s:%d: the admin listener cannot listen on %s: %s", cfg->path, a->line,
		            a->listen.text, strerror(errno));
	return fd;
}

static bool daemon_admin_moved(const struct rules_config *cur, const struct rules_config *next)
{
	return next->admin.on && (!cur->admin.on || cur->admin.listen.len != next->admin.listen.len ||
	                          memcmp(&cur->admin.listen.ss, &next->admin.listen.ss, next->admin.listen.len) != 0);
}

static bool daemon_had_address(const struct rules_config *cfg, const struct sockaddr_storage *ss)
{
	return addr_find_service(cfg, ss) >= 0;
}

/* Binds, for every worker, the listen addresses that next has and cur has not.
 * All or nothing: on any failure every socket opened here is closed. */
static int daemon_bind_new(const struct rules_config *cur, const struct rules_config *next, unsigned nw,
                           int **fds_out, size_t **svcs_out, size_t *n_out, FILE *notes)
{
	size_t cap = 0, n = 0;
	for (size_t s = 0; s < next->nservices; s++)
		cap += next->services[s].nlisten;
	int *fds = calloc(cap * nw + 1, sizeof(*fds));
	size_t *svcs = calloc(cap + 1, sizeof(*svcs));
	if (!fds || !svcs)
		goto fail;
	for (size_t s = 0; s < next->nservices; s++) {
		const struct rules_service *svc = &next->services[s];
		for (size_t a = 0; a < svc->nlisten; a++) {
			const struct rules_addr *addr = &svc->listen[a];
			if (daemon_had_address(cur, &addr->ss))
				continue;
			if (daemon_probe_free(addr) != 0)
				goto busy;
			for (unsigned i = 0; i < nw; i++) {
				fds[n * nw + i] = daemon_listen_socket(addr);
				if (fds[n * nw + i] < 0) {
					for (unsigned j = 0; j < i; j++)
						close(fds[n * nw + j]);
					goto busy;
				}
			}
			svcs[n++] = s;
			continue;
		busy:
			daemon_note(notes, LOG_ERROR, "%s:%d: service %s cannot listen on %s: %s", next->path, svc->line,
			            svc->name, addr->text, strerror(errno));
			goto fail;
		}
	}
	*fds_out = fds;
	*svcs_out = svcs;
	*n_out = n;
	return 0;
fail:
	for (size_t k = 0; fds && k < n * nw; k++)
		close(fds[k]);
	free(fds);
	free(svcs);
	return -1;
}

static void daemon_log_target(const struct rules_config *cfg, struct log_target *t, bool give_to_user)
{
	*t = (struct log_target){ .file = cfg->log.file, .facility = cfg->log.facility,
		                  .owner = (uid_t)-1, .group = (gid_t)-1 };
	if (cfg->log.syslog) {
		t->syslog = (const struct sockaddr *)&cfg->log.syslog_ss;
		t->syslog_len = cfg->log.syslog_len;
	}
	if (give_to_user && cfg->run_as.user) {
		t->owner = cfg->run_as.uid;
		t->group = cfg->run_as.gid;
	}
}

static void daemon_log_levels(const struct rules_config *cfg)
{
	log_set_level((enum log_level)cfg->log.level);
	log_set_access(cfg->log.access);
}

static void daemon_log_diag(const struct rules_diag *d, FILE *notes)
{
	for (size_t i = 0; d && i < rules_diag_count(d); i++)
		daemon_note(notes, rules_diag_severity(d, i) == RULES_ERROR ? LOG_ERROR : LOG_WARN, "%s",
		            rules_diag_message(d, i));
}

/* Once switched to the user, a reload reads every file as that user: it is
 * checked now, so that an unreadable key stops the start and not a reload weeks later. */
static int daemon_check_as_user(const struct rules_config *cfg)
{
	char prefix[300], err[512] = "";
	int line = 0;
	snprintf(prefix, sizeof(prefix), "as user %s: ", cfg->run_as.user);
	struct rules_diag *d = rules_diag_new();
	struct snapshot again;
	int rc = d ? snapshot_build(&again, cfg->path, NULL, d, err, sizeof(err), &line) : -1;
	if (d)
		for (size_t i = 0; i < rules_diag_count(d); i++)
			if (rules_diag_severity(d, i) == RULES_ERROR)
				log_msg(LOG_ERROR, "%s%s", prefix, rules_diag_message(d, i));
	rules_diag_free(d);
	if (rc != 0 && err[0] && line)
		log_msg(LOG_ERROR, "%s%s:%d: %s", prefix, cfg->path, line, err);
	else if (rc != 0 && err[0])
		log_msg(LOG_ERROR, "%s%s: %s", prefix, cfg->path, err);
	if (rc != 0)
		log_msg(LOG_ERROR, "%s:%d: onegate runs as user %s once its listeners are bound, and reloads read the rule "
		        "file, certificates and keys as that user: make them readable by it (for a key: chgrp %s KEY; "
		        "chmod 0640 KEY)", cfg->path, cfg->run_as.line, cfg->run_as.user, cfg->run_as.group ? cfg->run_as.group : cfg->run_as.user);
	snapshot_clear(&again);
	return rc;
}

/* SIGHUP: the new file must load without a single error, every new address
 * must bind and the admin token must be readable; otherwise the running rules
 * stay exactly as they are. Returns whether it was applied; verdict gets the
 * line that says so ("applied ..." or "refused ..."), notes every message. */
static bool daemon_reload(struct daemon_state *st, char *verdict, size_t vlen, FILE *notes)
{
	struct rules_config *cur = st->cfg;
	struct rules_diag *d = rules_diag_new();
	struct rules_config *next = d ? snapshot_rules_load(cur->path, d) : NULL;
	daemon_log_diag(d, notes);
	rules_diag_free(d);
	char err[512], why[700] = "";
	int line;
	if (!next) {
		snprintf(why, sizeof(why), "the rule file has errors");
		goto refused_early;
	}
	/* Who onegate runs as and where its state lives are fixed for the life of the process. */
	const char *fixed = rules_schema_restart_change(cur, next);
	struct snapshot snap = { 0 };
	int admin_fd = -1;
	int *fds = NULL;
	size_t *svcs = NULL, n = 0;
	struct log_target lt;
	if (fixed) {
		snprintf(why, sizeof(why), "%s changed, which takes a restart", fixed);
		rules_config_unref(next);
		goto refused;
	}
	if (snapshot_make(&snap, next, st->pools, err, sizeof(err), &line) != 0) {
		snprintf(why, sizeof(why), "%s", err);
		goto refused;
	}
	struct tlsconf *tls = snap.tls;
	struct pool_table *pools = snap.pools;
	if (daemon_admin_moved(cur, next) && (admin_fd = daemon_admin_socket(next, notes)) < 0) {
		snprintf(why, sizeof(why), "the admin address cannot be bound");
		goto refused;
	}
	if (daemon_bind_new(cur, next, st->nw, &fds, &svcs, &n, notes) != 0) {
		snprintf(why, sizeof(why), "a new listen address cannot be bound");
		goto refused;
	}
	daemon_log_target(next, &lt, false);
	if (log_configure(&lt, err, sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "%s", err);
		goto refused;
	}
	daemon_log_levels(next);
	if (next->workers != cur->workers)
		daemon_note(notes, LOG_WARN, "reload: workers = %u takes effect at the next restart; keeping %u",
		            next->workers, st->nw);
	int *wfds = malloc((n ? n : 1) * sizeof(*wfds));
	for (unsigned i = 0; i < st->nw; i++) {
		for (size_t k = 0; wfds && k < n; k++)
			wfds[k] = fds[k * st->nw + i];
		if (!wfds || worker_reload(st->ws[i], next, tls, pools, wfds, svcs, n) != 0)
			daemon_note(notes, LOG_ERROR, "reload: worker %u is out of memory and keeps the previous rules", i);
	}
	if (!wfds)
		for (size_t k = 0; k < n * st->nw; k++)
			close(fds[k]);
	free(wfds);
	free(fds);
	free(svcs);
	control_reload(st->control, pools, tls, admin_fd >= 0 ? admin_fd : next->admin.on ? -1 : -2,
	               snap.token);
	if (st->acme)
		acme_reload(st->acme, next);
	else
		st->acme = acme_start(next);
	snprintf(verdict, vlen, "applied %s: %zu pools, %zu services, %zu certificates", next->path, next->npools,
	         next->nservices, next->ncerts);
	log_msg(LOG_INFO, "reloaded %s: %zu pools, %zu services, %zu certificates (%zu unchanged, not read again); "
	        "open connections finish on the previous rules", next->path, next->npools, next->nservices, next->ncerts,
	        daemon_certs_kept(cur, next));
	rules_config_unref(cur);
	tlsconf_unref(st->tls);
	pool_table_unref(st->pools);
	st->cfg = next;
	st->tls = tls;
	st->pools = pools;
	OPENSSL_cleanse(snap.token, sizeof(snap.token));
	return true;
refused:
	for (size_t k = 0; k < n * st->nw; k++)
		close(fds[k]);
	free(fds);
	free(svcs);
	if (admin_fd >= 0)
		close(admin_fd);
	snapshot_clear(&snap);
refused_early:
	snprintf(verdict, vlen, "refused %s: %s; still serving the previous rules", cur->path, why);
	log_msg(LOG_ERROR, "reload of %s refused: %s; still serving the previous rules", cur->path, why);
	return false;
}

/* One reload and its outcome, for whoever waits on the admin listener. */
static void daemon_reload_and_tell(struct daemon_state *st)
{
	notify_send("RELOADING=1");
	control_reload_begin(st->control);
	char *notes_text = NULL, verdict[1024];
	size_t notes_len = 0;
	FILE *notes = open_memstream(&notes_text, &notes_len);
	bool applied = daemon_reload(st, verdict, sizeof(verdict), notes);
	if (notes)
		fclose(notes);
	size_t len = strlen(verdict) + 2 + (notes_text ? strlen(notes_text) : 0);
	char *text = malloc(len);
	if (text)
		snprintf(text, len, "%s\n%s", verdict, notes_text ? notes_text : "");
	free(notes_text);
	/* Ready again either way: a refused file leaves the previous rules serving. */
	char status[1100];
	snprintf(status, sizeof(status), "READY=1\nSTATUS=%s", verdict);
	status[strcspn(status + 8, "\n") + 8] = '\0';
	notify_send(status);
	control_reload_end(st->control, applied, text);
}

/* Serves until a stop signal; SIGHUP reloads. */
static int daemon_serve(struct daemon_state *st, const sigset_t *sigs)
{
	for (;;) {
		int sig = sigwaitinfo(sigs, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			return sig;
		if (sig == SIGHUP)
			daemon_reload_and_tell(st);
		char err[512];
		if (sig == SIGUSR1 && log_reopen(err, sizeof(err)) != 0)
			log_msg(LOG_ERROR, "SIGUSR1: %s; still writing to the previous file", err);
	}
}

/* Every connection is one or two descriptors: take all the system lets this process have. */
static void daemon_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_msg(LOG_WARN, "cannot raise the open-files limit: %s", strerror(errno));
	}
}

/* A relay's input chains are 128 KiB mallocs (64 KiB of room, rounded up by libevent),
 * freed as soon as their bytes are written. glibc's defaults put such a block at the
 * mmap threshold and give a worker arena's free top back to the kernel past 128 KiB
 * (raised a little after the first mmapped block), so a bulk transfer kept unmapping
 * and faulting in its own buffers: a third of the CPU of a 1 GiB passthrough download.
 * Blocks up to 1 MiB now come from the arena, and each arena keeps up to 4 MiB free.
 * An admin's own GLIBC_TUNABLES for either setting wins. */
#define DAEMON_MMAP_THRESHOLD (1024 * 1024)
#define DAEMON_TRIM_THRESHOLD (4 * 1024 * 1024)

/* DAEMON_TRIM_THRESHOLD once daemon_tune_malloc() set it; 0 when the admin's
 * GLIBC_TUNABLES chose the trim threshold (daemon_heap_give_back() leaves it alone). */
static int daemon_trim_threshold;
static pthread_mutex_t daemon_give_back_lock = PTHREAD_MUTEX_INITIALIZER;

static void daemon_tune_malloc(void)
{
	const char *t = getenv("GLIBC_TUNABLES");
	if (!t || !strstr(t, "glibc.malloc.mmap_threshold"))
		(void)mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP_THRESHOLD);
	if (!t || !strstr(t, "glibc.malloc.trim_threshold")) {
		(void)mallopt(M_TRIM_THRESHOLD, DAEMON_TRIM_THRESHOLD);
		daemon_trim_threshold = DAEMON_TRIM_THRESHOLD;
	}
}

/* The free top of a worker's arena (up to the trim threshold, what its last peak of
 * buffers left) stays resident, and malloc_trim() does not give it back: glibc trims
 * the top of the main arena only, and madvises just the free chunks inside the others.
 * A worker's arena gives back its top only when a free of 64 KiB or more finds it over
 * the trim threshold; so the threshold is lowered for one such free on this thread's
 * arena, under a lock so that two quiet workers do not restore it under each other.
 * Another worker's free meanwhile may trim its top too: glibc's default, for a moment.
 * malloc_trim() then gives back the free pages inside every arena and the main top. */
void daemon_heap_give_back(void)
{
	if (daemon_trim_threshold) {
		pthread_mutex_lock(&daemon_give_back_lock);
		(void)mallopt(M_TRIM_THRESHOLD, 0);
		/* volatile: a malloc whose block is only freed may be left out by the compiler */
		void *volatile nudge = malloc(64 * 1024);
		free(nudge);
		(void)mallopt(M_TRIM_THRESHOLD, daemon_trim_threshold);
		pthread_mutex_unlock(&daemon_give_back_lock);
	}
	(void)malloc_trim(0);
}

int daemon_run(struct rules_config *cfg, daemon_ready_fn ready, void *arg)
{
	struct daemon_state st = { .cfg = cfg, .nw = cfg->workers ? cfg->workers : 1 };
	int rc = 1;
	bool pid_written = false;
	daemon_raise_nofile();
	daemon_tune_malloc();
	char err[512];
	struct log_target lt;
	daemon_log_target(cfg, &lt, geteuid() == 0);
	if (log_configure(&lt, err, sizeof(err)) != 0) {
		log_msg(LOG_ERROR, "%s:%d: %s", cfg->path, cfg->log.line, err);
		goto out;
	}
	daemon_log_levels(cfg);
	if (cfg->state_dir &&
	    state_prepare(cfg->state_dir, geteuid() == 0 && cfg->run_as.user ? cfg->run_as.uid : (uid_t)-1,
	                  cfg->run_as.gid, err, sizeof(err)) != 0) {
		log_msg(LOG_ERROR, "%s: %s", cfg->path, err);
		goto out;
	}
	/* Before the first pool table: every live counter then has a slot per worker. */
	stats_workers(st.nw);
	/* The same build as check's and a reload's; the token is read here, once per load. */
	struct snapshot snap;
	char token[ADMIN_TOKEN_MAX];
	int line;
	if (snapshot_make(&snap, rules_config_ref(cfg), NULL, err, sizeof(err), &line) != 0) {
		if (line)
			log_msg(LOG_ERROR, "%s:%d: %s", cfg->path, line, err);
		else
			log_msg(LOG_ERROR, "%s: %s", cfg->path, err);
		goto out;
	}
	st.tls = snap.tls;
	st.pools = snap.pools;
	memcpy(token, snap.token, sizeof(token));
	OPENSSL_cleanse(snap.token, sizeof(snap.token));
	rules_config_unref(snap.cfg);
	if (!(st.ws = calloc(st.nw, sizeof(*st.ws)))) {
		log_msg(LOG_ERROR, "out of memory");
		goto out;
	}
	if (cfg->state_dir)
		state_servers_restore(st.pools, cfg->state_dir);

	/* Workers inherit this mask: only the main thread takes signals, synchronously. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (live_start(st.nw) != 0) {
		log_msg(LOG_ERROR, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < st.nw; i++) {
		st.ws[i] = worker_new(i, cfg, st.tls, st.pools);
		if (!st.ws[i]) {
			log_msg(LOG_ERROR, "cannot create worker %u: out of memory or descriptors", i);
			goto out;
		}
	}
	if (daemon_bind_all(cfg, st.ws, st.nw) != 0)
		goto out;
	/* Before any thread starts: capabilities are per thread, and new threads inherit them. */
	if (cfg->run_as.user) {
		if (privs_drop(cfg->run_as.user, cfg->run_as.uid, cfg->run_as.gid, err, sizeof(err)) != 0) {
			log_msg(LOG_ERROR, "%s:%d: %s", cfg->path, cfg->run_as.line, err);
			goto out;
		}
		if (daemon_check_as_user(cfg) != 0)
			goto out;
	}
	if (cfg->state_dir) {
		if (state_pid_write(cfg->state_dir, err, sizeof(err)) != 0) {
			log_msg(LOG_ERROR, "%s: %s", cfg->path, err);
			goto out;
		}
		pid_written = true;
	}
	int admin_fd = cfg->admin.on ? daemon_admin_socket(cfg, NULL) : -1;
	if (cfg->admin.on && admin_fd < 0)
		goto out;
	if (!(st.control = control_start(st.pools, st.tls, admin_fd, token))) {
		log_msg(LOG_ERROR, "cannot start the control thread (health checks, admin listener)");
		goto out;
	}
	st.acme = acme_start(cfg);
	for (unsigned i = 0; i < st.nw; i++) {
		if (worker_start(st.ws[i]) != 0) {
			log_msg(LOG_ERROR, "cannot start worker thread %u", i);
			for (unsigned j = 0; j < i; j++)
				worker_kill(st.ws[j]);
			goto out;
		}
	}
	size_t naddr = 0;
	for (size_t s = 0; s < cfg->nservices; s++)
		naddr += cfg->services[s].nlisten;
	log_msg(LOG_INFO, "onegate serving %zu services on %zu addresses with %u workers (rules: %s)",
	        cfg->nservices, naddr, st.nw, cfg->path);
	if (cfg->admin.on)
		log_msg(LOG_INFO, "admin listener on http://%s/ (status page, /api/status, /metrics)", cfg->admin.listen.text);
	if (ready)
		ready(arg);
	live_set_serving();
	char status[200];
	snprintf(status, sizeof(status), "READY=1\nSTATUS=serving %zu services on %zu addresses with %u workers",
	         cfg->nservices, naddr, st.nw);
	if (notify_send(status) != 0)
		log_msg(LOG_WARN, "cannot tell the service manager onegate is ready ($NOTIFY_SOCKET): %s", strerror(errno));

	int sig = daemon_serve(&st, &sigs);
	live_set_draining();
	notify_send("STOPPING=1");
	log_msg(LOG_INFO, "%s: no new connections; draining open ones for up to %u ms",
	        sig == SIGTERM ? "SIGTERM" : "SIGINT", st.cfg->drain_timeout_ms);
	for (unsigned i = 0; i < st.nw; i++)
		worker_stop(st.ws[i]);
	daemon_drain(st.ws, st.nw, st.cfg->drain_timeout_ms, &sigs);
	rc = 0;
out:
	for (unsigned i = 0; st.ws && i < st.nw; i++)
		worker_free(st.ws[i]);
	free(st.ws);
	acme_stop(st.acme);
	control_stop(st.control);
	pool_table_unref(st.pools);
	tlsconf_unref(st.tls);
	live_stop();
	if (pid_written)
		state_pid_remove(st.cfg->state_dir);
	if (rc == 0)
		log_msg(LOG_INFO, "stopped");
	rules_config_unref(st.cfg);
	return rc;
}
