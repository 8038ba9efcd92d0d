#include "proxy/pass.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/addr.h"
#include "io/keep.h"
#include "io/log.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "io/relay.h"
#include "io/sock.h"

/* Bytes queued towards one side before we stop reading the other: the relay's
 * whole memory bound per direction. */
#define PASS_RELAY_MAX (512 * 1024)

enum pass_phase { PASS_CONNECT, PASS_RELAY, PASS_CLOSING };

struct pass {
	struct home_link link;          /* in home->live; first, so a link is its pass */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	enum pass_phase phase;
	struct sock *cli, *srv;
	struct event timer;             /* the connect's deadline, the idle check, or closing's next look:
	                                 * in the struct, not one more allocation per connection */
	struct sockaddr_storage peer;   /* the client: real peer, or the one a PROXY header named */
	struct sockaddr_storage local;  /* the address the client connected to */
	socklen_t peerlen, locallen;
	char sni[256];                  /* "" : none */
	long route;                     /* the matched route */
	long pool;
	long tried[RULES_RETRIES_MAX + 1];      /* servers tried for this connection, in order */
	size_t ntried;
	long server;                    /* current server (counted in its active connections), -1 when none */
	uint64_t bytes_in, bytes_out;   /* client->server, server->client */
	struct timeval start, last;
	struct relay relay;             /* PASS_RELAY, PASS_CLOSING; cli.eof is recorded from PASS_CONNECT on */
	void *next_kept;                /* in this thread's list of ended ones (keep.h) */
};

/* Ended connections' memory is kept per thread for the next ones: a calloc() and a
 * free() of this size from glibc's sorted bins were ~450 instructions of a connection's
 * ~20,000 in scenario 3b. */
#define PASS_KEPT 256

static const struct keep_kind pass_keep_kind = {
	.max = PASS_KEPT, .link = offsetof(struct pass, next_kept), .free = free,
};
static _Thread_local struct keep_list pass_kept = { .kind = &pass_keep_kind };

/* ---------------------------------------------------------------- helpers */

static const struct rules_pool *pass_pool(const struct pass *p)
{
	return &p->snap->cfg->pools[p->pool];
}

static size_t pass_service_index(const struct pass *p)
{
	return (size_t)(p->svc - p->snap->cfg->services);
}

void pass_log(const struct pass_line *l)
{
	if (!log_access_enabled())
		return;
	char client[64];
	addr_text(l->peer, l->peerlen, client, sizeof(client), NULL, 0);
	log_access_line("conn client=%s service=%s sni=%s route=%s pool=%s server=%s in=%llu out=%llu ms=%ld outcome=%s",
	        client, l->service, l->sni ? l->sni : "-", l->route ? l->route : "-", l->pool ? l->pool : "-",
	        l->server ? l->server : "-", (unsigned long long)l->in, (unsigned long long)l->out, l->ms,
	        outcome_name(l->outcome));
}

/* The one place a connection's memory is released; it is counted and logged. */
static void pass_free(struct pass *p, enum outcome outcome)
{
	struct home *home = p->home;
	const struct rules_pool *rp = pass_pool(p);
	/* A connection a server cut short, or that found none: the pool's error, not the client's. */
	pool_session_done(p->snap->pools, pass_service_index(p), p->pool, p->server,
	                  outcome_table[outcome].server_fault);
	if (log_access_enabled()) {
		struct timeval now;
		event_base_gettimeofday_cached(home->base, &now);
		struct pass_line l = {
			.peer = &p->peer, .peerlen = p->peerlen, .service = p->svc->name, .sni = p->sni[0] ? p->sni : NULL,
			.route = p->route == p->svc->default_route ? "default" : p->svc->routes[p->route].sni,
			.pool = rp->name, .server = p->server >= 0 ? rp->servers[p->server].addr.text : NULL,
			.in = p->bytes_in, .out = p->bytes_out,
			.ms = (now.tv_sec - p->start.tv_sec) * 1000L + (now.tv_usec - p->start.tv_usec) / 1000L,
			.outcome = outcome,
		};
		pass_log(&l);
	}
	pool_service_open(p->snap->pools, pass_service_index(p), -1);
	if (p->server >= 0)
		pool_conn_end(p->snap->pools, (size_t)p->pool, (size_t)p->server);
	event_del(&p->timer);
	sock_free(p->cli);
	sock_free(p->srv);
	home_snap_unref(p->snap);
	home_live_remove(home, &p->link);
	if (!keep_give(&pass_kept, p))
		free(p);
}

static void pass_close_now(struct home_link *l)
{
	struct pass *p = (struct pass *)l;
	relay_cut(&p->relay);
	pass_free(p, OUTCOME_DRAIN_TIMEOUT);
}

static void pass_arm(struct pass *p, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	event_add(&p->timer, &tv);
}

static void pass_touch(struct pass *p)
{
	event_base_gettimeofday_cached(p->home->base, &p->last);
}

/* ---------------------------------------------------------------- relay (relay.h) */

static void pass_relay(struct pass *p, struct relay_end *from)
{
	size_t n;
	unsigned watch;
	enum outcome end;
	bool going = relay_move(&p->relay, from, &n, &watch, &end);
	if (p->server >= 0)
		pool_relay_bytes(p->snap->pools, pass_service_index(p), (size_t)p->pool, (size_t)p->server,
		                 from == &p->relay.cli ? n : 0, from == &p->relay.cli ? 0 : n);
	pass_touch(p);
	if (!going)
		pass_free(p, end);
	else if (watch)
		pass_arm(p, watch);
}

/* Both sides have ended: the connection lasts until each has taken what the other
 * sent, or until one stops taking it (relay_linger()). */
static void pass_linger_check(struct pass *p)
{
	unsigned next;
	enum outcome end;
	if (!relay_linger(&p->relay, &next, &end)) {
		pass_free(p, end);
		return;
	}
	pass_arm(p, next);
}

/* The idle timer is not stopped here: the linger check re-arms it (event_add() moves a
 * pending timer) or frees the connection, which stops it. */
static void pass_ended(struct pass *p, struct relay_end *e)
{
	if (!relay_ended(&p->relay, e))
		return;
	p->phase = PASS_CLOSING;
	pass_linger_check(p);
}

/* The side whose output drained may take more: read its peer again. */
static void pass_drained(struct sock *s, void *arg)
{
	struct pass *p = arg;
	if (p->phase == PASS_CLOSING) {
		pass_linger_check(p);
		return;
	}
	if (p->phase != PASS_RELAY)
		return;
	pass_touch(p);          /* a slow reader taking what the other side sent is not idle */
	relay_drained(&p->relay, s == p->cli ? &p->relay.cli : &p->relay.srv);
}

static void pass_idle_check(struct pass *p)
{
	const struct rules_pool *rp = pass_pool(p);
	struct timeval now;
	event_base_gettimeofday_cached(p->home->base, &now);
	long quiet = (now.tv_sec - p->last.tv_sec) * 1000L + (now.tv_usec - p->last.tv_usec) / 1000L;
	if (quiet >= (long)rp->idle_timeout_ms) {
		pass_free(p, OUTCOME_IDLE_TIMEOUT);
		return;
	}
	/* One timer per connection, re-armed lazily: activity only stamps p->last. */
	pass_arm(p, rp->idle_timeout_ms - (unsigned)quiet);
}

/* A relay waiting for a slow end is watched on that end's time (relay_watch()), which
 * cuts it once it takes nothing for send_timeout; otherwise the idle rule holds. */
static void pass_relay_watch(struct pass *p)
{
	unsigned watch;
	enum outcome end;
	if (!relay_watch(&p->relay, &watch, &end)) {
		pass_free(p, end);
		return;
	}
	if (watch)
		pass_arm(p, watch);
	else
		pass_idle_check(p);
}

/* ---------------------------------------------------------------- back end */

static void pass_try_connect(struct pass *p);
static void pass_srv_read(struct sock *s, void *arg);
static void pass_srv_event(struct sock *s, enum sock_event ev, int err, void *arg);

static void pass_start_relay(struct pass *p)
{
	const struct rules_pool *rp = pass_pool(p);
	p->phase = PASS_RELAY;
	pool_server_succeeded(p->snap->pools, (size_t)p->pool, (size_t)p->server);

	if (rp->proxy_protocol) {
		uint8_t hdr[PP_MAX_HEADER];
		int n = rp->proxy_protocol == 1
		            ? pp_write_v1((struct sockaddr *)&p->peer, (struct sockaddr *)&p->local, hdr, sizeof(hdr))
		            : pp_write_v2((struct sockaddr *)&p->peer, (struct sockaddr *)&p->local, hdr, sizeof(hdr));
		if (n < 0) {
			pass_free(p, OUTCOME_PROXY_HEADER_FAILED);
			return;
		}
		evbuffer_add(sock_output(p->srv), hdr, (size_t)n);
	}
	sock_set_read_max(p->cli, PASS_RELAY_MAX);
	sock_set_read_max(p->srv, PASS_RELAY_MAX);
	p->relay.cli.sock = p->cli;
	p->relay.srv.sock = p->srv;
	p->relay.cli.count = &p->bytes_in;
	p->relay.srv.count = &p->bytes_out;
	p->relay.max = PASS_RELAY_MAX;
	p->relay.stall_ms = p->svc->send_timeout_ms;
	relay_start(&p->relay);
	/* The connect's deadline, still armed, comes sooner than the idle time: when it fires
	 * the idle check re-arms for what is left, so the timer is left as it is (a connection
	 * that lasts less than it, as most do, never moves its timer again). */
	if (rp->connect_timeout_ms > rp->idle_timeout_ms)
		pass_arm(p, rp->idle_timeout_ms);
	/* Replay the peeked ClientHello (still in the client's input) untouched. */
	pass_relay(p, &p->relay.cli);
}

static void pass_connect_failed(struct pass *p, const char *why)
{
	const struct rules_pool *rp = pass_pool(p);
	log_msg(LOG_WARN, "pool %s server %s: connect failed: %s", rp->name,
	        rp->servers[p->server].addr.text, why);
	sock_free(p->srv);
	p->srv = NULL;
	pool_server_failed(p->snap->pools, (size_t)p->pool, (size_t)p->server, why);
	pool_conn_end(p->snap->pools, (size_t)p->pool, (size_t)p->server);
	p->server = -1;
	pass_try_connect(p);
}

static void pass_try_connect(struct pass *p)
{
	const struct rules_pool *rp = pass_pool(p);
	while (p->ntried <= rp->retries) {
		struct pool_pick pk = { .client = (const struct sockaddr *)&p->peer, .preferred = -1,
		                        .exclude = p->tried, .nexclude = p->ntried };
		long idx = pool_pick_server(p->snap->pools, p->snap->cursor, (size_t)p->pool, &pk);
		if (idx < 0)
			break;
		if (p->ntried)
			pool_server_retried(p->snap->pools, (size_t)p->pool, (size_t)p->tried[p->ntried - 1]);
		p->tried[p->ntried++] = idx;
		const struct rules_server *s = &rp->servers[idx];
		struct sockaddr_storage to = s->addr.ss;
		unsigned port = p->svc->routes[p->route].port;
		if (port)
			addr_set_port(&to, (uint16_t)port);
		p->srv = sock_connect(p->home->base, (const struct sockaddr *)&to, s->addr.len,
		                      (const struct sockaddr *)&rp->source.ss, rp->source.len);
		if (p->srv) {
			p->server = idx;
			pool_conn_begin(p->snap->pools, (size_t)p->pool, (size_t)idx);
			sock_setcb(p->srv, pass_srv_read, pass_drained, pass_srv_event, p);
			pass_arm(p, rp->connect_timeout_ms);
			return;
		}
		log_msg(LOG_WARN, "pool %s server %s: connect failed: %s", rp->name, s->addr.text,
		        strerror(errno));
		pool_server_failed(p->snap->pools, (size_t)p->pool, (size_t)idx, strerror(errno));
	}
	pass_free(p, OUTCOME_NO_SERVER);
}

static void pass_srv_read(struct sock *s, void *arg)
{
	struct pass *p = arg;
	(void)s;
	pass_relay(p, &p->relay.srv);
}

static void pass_srv_event(struct sock *s, enum sock_event ev, int err, void *arg)
{
	struct pass *p = arg;
	if (p->phase == PASS_CONNECT) {
		if (ev == SOCK_CONNECTED)
			pass_start_relay(p);
		else
			pass_connect_failed(p, err ? strerror(err) : "closed");
		return;
	}
	if (p->phase == PASS_CLOSING) {
		pass_linger_check(p);
		return;
	}
	if (ev == SOCK_ERROR) {
		pass_free(p, relay_reset(&p->relay, &p->relay.srv));
		return;
	}
	if (ev == SOCK_EOF)
		pass_ended(p, &p->relay.srv);
}

/* ---------------------------------------------------------------- client */

static void pass_cli_read(struct sock *sk, void *arg)
{
	struct pass *p = arg;
	(void)sk;
	if (p->phase == PASS_RELAY)
		pass_relay(p, &p->relay.cli);
}

static void pass_cli_event(struct sock *sk, enum sock_event ev, int err, void *arg)
{
	struct pass *p = arg;
	(void)sk;
	(void)err;
	if (p->phase == PASS_CONNECT) {
		/* The hello is whole and routed: the client's half-close follows it to the back end. */
		if (ev == SOCK_EOF)
			p->relay.cli.eof = true;
		else
			pass_free(p, OUTCOME_CLIENT_CLOSED);
		return;
	}
	if (p->phase == PASS_CLOSING) {
		pass_linger_check(p);
		return;
	}
	if (ev == SOCK_ERROR) {
		pass_free(p, relay_reset(&p->relay, &p->relay.cli));
		return;
	}
	pass_ended(p, &p->relay.cli);
}

static void pass_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pass *p = arg;
	(void)fd;
	(void)what;
	switch (p->phase) {
	case PASS_CONNECT:
		pass_connect_failed(p, "timed out");
		return;
	case PASS_RELAY:
		pass_relay_watch(p);
		return;
	case PASS_CLOSING:
		pass_linger_check(p);
		return;
	}
}

int pass_start(const struct pass_start *st)
{
	struct pass *p = keep_take_zeroed(&pass_kept, sizeof(*p));
	if (!p || evtimer_assign(&p->timer, st->home->base, pass_timer, p) != 0) {
		free(p);
		return -1;
	}
	p->home = st->home;
	p->snap = st->snap;
	p->snap->refs++;
	p->svc = st->svc;
	pool_service_open(p->snap->pools, pass_service_index(p), 1);
	p->phase = PASS_CONNECT;
	p->cli = st->cli;
	memcpy(&p->peer, st->peer, st->peerlen < sizeof(p->peer) ? st->peerlen : sizeof(p->peer));
	p->peerlen = st->peerlen;
	if (st->locallen && st->locallen <= sizeof(p->local)) {
		memcpy(&p->local, st->local, st->locallen);
		p->locallen = st->locallen;
	}
	if (st->sni) {
		/* A copy, not snprintf(): the format machinery was ~250 instructions a connection. */
		size_t len = strnlen(st->sni, sizeof(p->sni) - 1);
		memcpy(p->sni, st->sni, len);
		p->sni[len] = '\0';
	}
	p->route = st->route;
	p->pool = st->svc->routes[st->route].pool;
	p->server = -1;
	p->start = st->start;
	p->last = st->start;
	p->link.close_now = pass_close_now;
	home_live_add(p->home, &p->link);
	sock_setcb(p->cli, pass_cli_read, pass_drained, pass_cli_event, p);
	/* Nothing more is read from the client until the back end is there: the
	 * peeked bytes are all we hold. */
	sock_read_enable(p->cli, false);
	pass_try_connect(p);
	return 0;
}
