#include "process/worker.h"

#include "proxy/tlsconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "io/addr.h"
#include "io/keep.h"
#include "proxy/conn.h"
#include "proxy/home.h"
#include "control/live.h"
#include "io/log.h"
#include "io/mailbox.h"
#include "proxy/pool.h"
#include "proxy/stats.h"
#include "process/daemon.h"

/* After EMFILE/ENFILE a listener pauses this long, then tries again, so a
 * gateway out of descriptors keeps serving the connections it has. */
#define WORKER_ACCEPT_RETRY_MS 100

enum { WORKER_CMD_STOP = 1u, WORKER_CMD_KILL = 2u, WORKER_CMD_RELOAD = 4u };

struct worker_listener {
	struct worker *w;
	struct evconnlistener *lev;
	struct event *retry;
	size_t svc;
	struct sockaddr_storage ss;     /* bound address, to match it across reloads */
};

/* A reload handed over by the daemon, waiting for the worker's thread. */
struct worker_reload {
	struct rules_config *cfg;
	struct tlsconf *tls;
	struct pool_table *pools;
	int *fds;
	size_t *svcs;
	size_t n;
};

struct worker {
	unsigned id;
	pthread_t thread;
	bool started;
	atomic_bool finished;
	atomic_uint commands;
	struct event_base *base;
	struct mailbox *mailbox;        /* the daemon's doorbell; its lock guards pending, never the data path */
	struct event *beat_ev;          /* tells live.c this loop turns */
	struct worker_listener **ls;     /* each allocated alone: libevent holds pointers to them */
	size_t nls;
	bool stopping;
	bool served;                    /* a connection came since the heap was last given back */
	struct home home;
	struct worker_reload pending;
};

static void worker_listener_free(struct worker_listener *l)
{
	if (l->retry)
		event_free(l->retry);
	if (l->lev)
		evconnlistener_free(l->lev);
	free(l);
}

static void worker_close_listeners(struct worker *w)
{
	for (size_t i = 0; i < w->nls; i++)
		worker_listener_free(w->ls[i]);
	w->nls = 0;
}

static void worker_on_empty(void *arg)
{
	struct worker *w = arg;
	if (w->stopping)
		event_base_loopexit(w->base, NULL);
}

static void worker_pending_clear(struct worker_reload *r)
{
	for (size_t i = 0; i < r->n; i++)
		close(r->fds[i]);
	free(r->fds);
	free(r->svcs);
	if (r->cfg)
		rules_config_unref(r->cfg);
	tlsconf_unref(r->tls);
	pool_table_unref(r->pools);
	memset(r, 0, sizeof(*r));
}

/* Runs on the worker's thread: nothing here races with its connections. */
static void worker_apply_reload(struct worker *w)
{
	mailbox_lock(w->mailbox);
	struct worker_reload r = w->pending;
	memset(&w->pending, 0, sizeof(w->pending));
	mailbox_unlock(w->mailbox);
	if (!r.cfg)
		return;

	struct home_snap *snap = home_snap_new(r.cfg, r.tls, r.pools);
	if (!snap) {
		log_msg(LOG_ERROR, "worker %u: out of memory applying the new rules; keeping the old ones", w->id);
		worker_pending_clear(&r);
		return;
	}
	size_t kept = 0;
	for (size_t i = 0; i < w->nls; i++) {
		struct worker_listener *l = w->ls[i];
		long svc = addr_find_service(r.cfg, &l->ss);
		if (svc < 0) {
			worker_listener_free(l);
			continue;
		}
		l->svc = (size_t)svc;
		w->ls[kept++] = l;
	}
	w->nls = kept;
	for (size_t i = 0; i < r.n; i++) {
		if (worker_add_listener(w, r.fds[i], r.svcs[i]) != 0)
			log_msg(LOG_ERROR, "worker %u: cannot serve a new listen address of service %s",
			        w->id, r.cfg->services[r.svcs[i]].name);
		r.fds[i] = -1;
	}
	r.n = 0;
	home_snap_unref(w->home.snap);
	w->home.snap = snap;
	worker_pending_clear(&r);
}

static void worker_ctl(void *arg)
{
	struct worker *w = arg;
	unsigned cmd = atomic_exchange(&w->commands, 0);
	if ((cmd & WORKER_CMD_RELOAD) && !w->stopping)
		worker_apply_reload(w);
	if (cmd & (WORKER_CMD_STOP | WORKER_CMD_KILL)) {
		w->stopping = true;
		w->home.stopping = true;
		worker_close_listeners(w);
	}
	if (cmd & WORKER_CMD_KILL) {
		/* Slow readers still taking their last bytes are among them: say how many are cut. */
		if (w->home.nlive)
			log_msg(LOG_WARN, "worker %u: drain time over: cutting %zu connections still open", w->id,
			        w->home.nlive);
		home_close_all(&w->home);
	}
	if (w->stopping && w->home.nlive == 0)
		event_base_loopexit(w->base, NULL);
}

/* The beat also bounds how long an access line waits in this thread's buffer. */
_Static_assert(LIVE_BEAT_MS <= LOG_BUFFER_FLUSH_MS, "the beat flushes the access-line buffer");

/* A worker whose connections have all closed gives back what its arena kept after their
 * peak: the gateway's RSS, quiet, is that of a quiet gateway, whatever came before. The
 * memory kept for the next connections (sessions, peer streams, socks, read blocks: up to
 * ~1.6 MiB a thread after HTTP/2 traffic) goes first, so that the arena's top can. */
static void worker_beat(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	live_beat(w->id);
	log_buffer_flush();
	if (w->served && w->home.nlive == 0) {
		w->served = false;
		keep_drop_all();
		daemon_heap_give_back();
	}
}

static void worker_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	struct worker_listener *l = arg;
	l->w->served = true;
	conn_accept(&l->w->home, fd, sa, (socklen_t)salen, l->svc);
}

static void worker_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct worker_listener *l = arg;
	if (l->lev)
		evconnlistener_enable(l->lev);
}

static void worker_accept_error(struct evconnlistener *lev, void *arg)
{
	struct worker_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		log_msg(LOG_WARN, "worker %u: accept: %s; pausing new connections for %d ms",
		        l->w->id, strerror(err), WORKER_ACCEPT_RETRY_MS);
		evconnlistener_disable(lev);
		struct timeval tv = { 0, WORKER_ACCEPT_RETRY_MS * 1000 };
		event_add(l->retry, &tv);
		return;
	}
	log_msg(LOG_WARN, "worker %u: accept: %s", l->w->id, strerror(err));
}

struct worker *worker_new(unsigned id, struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	struct event_config *ec = event_config_new();
	if (ec) {
		/* One thread per base: libevent's own locks would be pure cost. */
		event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
		/* io/sock.c relies on epoll applying each epoll_ctl at once (a read stopped at its
		 * bound arms its event again so that epoll reports the bytes left): libevent's
		 * EVENT_EPOLL_USE_CHANGELIST would fold that into nothing, and its other variables
		 * choose backends without edge-triggered events. */
		event_config_set_flag(ec, EVENT_BASE_FLAG_IGNORE_ENV);
		w->base = event_base_new_with_config(ec);
		event_config_free(ec);
	}
	w->home.snap = home_snap_new(cfg, tls, pools);
	if (!w->base || event_base_priority_init(w->base, HOME_PRIORITIES) != 0 || !w->home.snap ||
	    !(w->mailbox = mailbox_new(w->base, worker_ctl, w)))
		goto fail;
	struct timeval beat = { 0, LIVE_BEAT_MS * 1000 };
	w->beat_ev = event_new(w->base, -1, EV_PERSIST, worker_beat, w);
	if (!w->beat_ev || event_add(w->beat_ev, &beat) != 0)
		goto fail;
	w->home.base = w->base;
	w->home.on_empty = worker_on_empty;
	w->home.on_empty_arg = w;
	return w;
fail:
	worker_free(w);
	return NULL;
}

int worker_add_listener(struct worker *w, int fd, size_t svc_index)
{
	struct worker_listener **ls = realloc(w->ls, (w->nls + 1) * sizeof(*ls));
	struct worker_listener *l = calloc(1, sizeof(*l));
	if (ls)
		w->ls = ls;
	if (!ls || !l) {
		free(l);
		close(fd);
		return -1;
	}
	l->w = w;
	l->svc = svc_index;
	socklen_t sl = sizeof(l->ss);
	if (getsockname(fd, (struct sockaddr *)&l->ss, &sl) != 0)
		memset(&l->ss, 0, sizeof(l->ss));
	l->retry = evtimer_new(w->base, worker_accept_retry, l);
	l->lev = evconnlistener_new(w->base, worker_accept, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l->retry || !l->lev) {
		if (!l->lev)
			close(fd);
		worker_listener_free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, worker_accept_error);
	w->ls[w->nls++] = l;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	stats_thread_worker(w->id);
	live_beat(w->id);
	log_buffer_start();
	event_base_dispatch(w->base);
	/* Stopped (SIGTERM) or cut: the lines of its last requests go out before the thread ends. */
	log_buffer_end();
	atomic_store(&w->finished, true);
	return NULL;
}

int worker_start(struct worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	w->started = true;
	return 0;
}

static void worker_signal(struct worker *w, unsigned cmd)
{
	atomic_fetch_or(&w->commands, cmd);
	mailbox_ring(w->mailbox);
}

/* The daemon binds only the addresses a rule file adds to the one it loaded before. When
 * that one is superseded before this worker took it, its sockets for the addresses r still
 * lists move to r: no later reload would bind them again. The others stay in old, to close. */
static void worker_pending_carry(const struct worker *w, struct worker_reload *r, struct worker_reload *old)
{
	if (!old->n)
		return;
	int *fds = realloc(r->fds, (r->n + old->n) * sizeof(*fds));
	if (fds)
		r->fds = fds;
	size_t *svcs = realloc(r->svcs, (r->n + old->n) * sizeof(*svcs));
	if (svcs)
		r->svcs = svcs;
	if (!fds || !svcs) {
		log_msg(LOG_ERROR, "worker %u: out of memory keeping the listen sockets of a reload it had not "
		        "applied yet; it does not serve the addresses that reload added", w->id);
		return;
	}
	size_t left = 0;
	for (size_t i = 0; i < old->n; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		long svc = getsockname(old->fds[i], (struct sockaddr *)&ss, &sl) == 0 ? addr_find_service(r->cfg, &ss) : -1;
		if (svc < 0) {
			old->fds[left++] = old->fds[i];
			continue;
		}
		r->fds[r->n] = old->fds[i];
		r->svcs[r->n++] = (size_t)svc;
	}
	old->n = left;
}

int worker_reload(struct worker *w, struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools,
                  const int *fds, const size_t *svcs, size_t n)
{
	struct worker_reload r = { .n = n };
	r.fds = malloc((n ? n : 1) * sizeof(*r.fds));
	r.svcs = malloc((n ? n : 1) * sizeof(*r.svcs));
	if (!r.fds || !r.svcs) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		free(r.fds);
		free(r.svcs);
		return -1;
	}
	memcpy(r.fds, fds, n * sizeof(*fds));
	memcpy(r.svcs, svcs, n * sizeof(*svcs));
	r.cfg = rules_config_ref(cfg);
	r.tls = tlsconf_ref(tls);
	r.pools = pool_table_ref(pools);
	mailbox_lock(w->mailbox);
	/* A reload not yet applied is superseded by this newer one. */
	struct worker_reload old = w->pending;
	worker_pending_carry(w, &r, &old);
	w->pending = r;
	mailbox_unlock(w->mailbox);
	worker_pending_clear(&old);
	worker_signal(w, WORKER_CMD_RELOAD);
	return 0;
}

void worker_stop(struct worker *w)
{
	worker_signal(w, WORKER_CMD_STOP);
}

void worker_kill(struct worker *w)
{
	worker_signal(w, WORKER_CMD_KILL);
}

bool worker_finished(const struct worker *w)
{
	return atomic_load(&w->finished);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->started)
		pthread_join(w->thread, NULL);
	/* The thread is gone: anything left is ours to close, on this thread. */
	w->home.on_empty = NULL;
	home_close_all(&w->home);
	worker_close_listeners(w);
	free(w->ls);
	worker_pending_clear(&w->pending);
	mailbox_free(w->mailbox);
	if (w->beat_ev)
		event_free(w->beat_ev);
	home_snap_unref(w->home.snap);
	if (w->base)
		event_base_free(w->base);
	free(w);
}
