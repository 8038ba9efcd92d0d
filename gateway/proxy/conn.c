#include "proxy/conn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "acme/acme.h"
#include "io/addr.h"
#include "proto/hello.h"
#include "proxy/home.h"
#include "http/http.h"
#include "io/log.h"
#include "io/outcome.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "io/relay.h"
#include "rules.h"
#include "io/sock.h"
#include "proxy/tlsconf.h"

/* Bytes queued towards one side before we stop reading the other: the relay's
 * whole memory bound per direction. */
#define CONN_RELAY_MAX (512 * 1024)
/* How long a rejected client gets to read our alert before we close. */
#define CONN_LINGER_MS 2000

enum conn_phase { PH_PROXY, PH_HELLO, PH_CONNECT, PH_RELAY, PH_CLOSING, PH_LINGER };

struct conn {
	struct home_link link;          /* in home->live; first, so a link is its conn */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	enum conn_phase phase;
	struct sock *cli, *srv;
	struct event *timer;            /* the current phase's deadline, or the idle check */
	struct hello_reader hello;
	size_t fed;                     /* bytes of the client's input already fed to hello */
	struct sockaddr_storage peer;   /* the client: real peer, or the one a PROXY header named */
	struct sockaddr_storage local;  /* the address the client connected to */
	socklen_t peerlen, locallen;
	long route;                     /* matched route, -1 for the default */
	long pool;                      /* -1 until routed */
	long tried[RULES_RETRIES_MAX + 1];      /* servers tried for this connection, in order */
	size_t ntried;
	long server;                    /* current server (counted in its active connections), -1 when none */
	uint64_t bytes_in, bytes_out;   /* client->server, server->client */
	struct timeval start, last;
	struct relay relay;             /* PH_RELAY, PH_CLOSING; cli.eof is recorded from PH_CONNECT on */
};

/* ---------------------------------------------------------------- helpers */

static const struct rules_pool *conn_pool(const struct conn *c)
{
	return c->pool >= 0 ? &c->snap->cfg->pools[c->pool] : NULL;
}

static long conn_elapsed_ms(const struct conn *c)
{
	struct timeval now;
	event_base_gettimeofday_cached(c->home->base, &now);
	return (now.tv_sec - c->start.tv_sec) * 1000L + (now.tv_usec - c->start.tv_usec) / 1000L;
}

static size_t conn_service_index(const struct conn *c)
{
	return (size_t)(c->svc - c->snap->cfg->services);
}

static void conn_log(const struct conn *c, enum outcome outcome)
{
	if (!log_access_enabled())
		return;
	char client[64];
	addr_text(&c->peer, c->peerlen, client, sizeof(client), NULL, 0);
	const struct rules_pool *p = conn_pool(c);
	const char *route = c->pool < 0 ? "-" : c->route == c->svc->default_route ? "default" : c->svc->routes[c->route].sni;
	const char *server = p && c->server >= 0 ? p->servers[c->server].addr.text : "-";
	log_msg(LOG_INFO,
	        "conn client=%s service=%s sni=%s route=%s pool=%s server=%s in=%llu out=%llu ms=%ld outcome=%s",
	        client, c->svc->name, c->hello.has_sni ? c->hello.sni : "-", route, p ? p->name : "-",
	        server, (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
	        conn_elapsed_ms(c), outcome_name(outcome));
}

/* The one place a connection's memory is released. */
static void conn_release(struct conn *c)
{
	struct home *home = c->home;
	pool_service_open(c->snap->pools, conn_service_index(c), -1);
	if (c->server >= 0)
		pool_conn_end(c->snap->pools, (size_t)c->pool, (size_t)c->server);
	if (c->timer)
		event_free(c->timer);
	sock_free(c->cli);
	sock_free(c->srv);
	home_snap_unref(c->snap);
	home_live_remove(home, &c->link);
	free(c);
}

static void conn_free(struct conn *c, enum outcome outcome)
{
	/* A connection a server cut short, or that found none: the pool's error, not the client's. */
	pool_session_done(c->snap->pools, conn_service_index(c), c->pool, c->server,
	                  outcome_table[outcome].server_fault);
	conn_log(c, outcome);
	conn_release(c);
}

static void conn_linger_check(struct conn *c);

static void conn_close_now(struct home_link *l)
{
	struct conn *c = (struct conn *)l;
	relay_cut(&c->relay);
	conn_free(c, OUTCOME_DRAIN_TIMEOUT);
}

static void conn_arm(struct conn *c, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	event_add(c->timer, &tv);
}

static void conn_touch(struct conn *c)
{
	event_base_gettimeofday_cached(c->home->base, &c->last);
}

/* ---------------------------------------------------------------- relay (relay.h) */

static void conn_relay(struct conn *c, struct relay_end *from)
{
	size_t n;
	unsigned watch;
	enum outcome end;
	bool going = relay_move(&c->relay, from, &n, &watch, &end);
	if (c->server >= 0)
		pool_relay_bytes(c->snap->pools, conn_service_index(c), (size_t)c->pool, (size_t)c->server,
		                 from == &c->relay.cli ? n : 0, from == &c->relay.cli ? 0 : n);
	conn_touch(c);
	if (!going)
		conn_free(c, end);
	else if (watch)
		conn_arm(c, watch);
}

/* Both sides have ended: the connection lasts until each has taken what the other
 * sent, or until one stops taking it (relay_linger()). */
static void conn_linger_check(struct conn *c)
{
	unsigned next;
	enum outcome end;
	if (!relay_linger(&c->relay, &next, &end)) {
		conn_free(c, end);
		return;
	}
	conn_arm(c, next);
}

static void conn_ended(struct conn *c, struct relay_end *e)
{
	if (!relay_ended(&c->relay, e))
		return;
	c->phase = PH_CLOSING;
	event_del(c->timer);
	conn_linger_check(c);
}

/* The side whose output drained may take more: read its peer again. */
static void conn_drained(struct sock *s, void *arg)
{
	struct conn *c = arg;
	if (c->phase == PH_CLOSING) {
		conn_linger_check(c);
		return;
	}
	if (c->phase != PH_RELAY)
		return;
	conn_touch(c);          /* a slow reader taking what the other side sent is not idle */
	relay_drained(&c->relay, s == c->cli ? &c->relay.cli : &c->relay.srv);
}

static void conn_idle_check(struct conn *c)
{
	const struct rules_pool *p = conn_pool(c);
	struct timeval now;
	event_base_gettimeofday_cached(c->home->base, &now);
	long quiet = (now.tv_sec - c->last.tv_sec) * 1000L + (now.tv_usec - c->last.tv_usec) / 1000L;
	if (quiet >= (long)p->idle_timeout_ms) {
		conn_free(c, OUTCOME_IDLE_TIMEOUT);
		return;
	}
	/* One timer per connection, re-armed lazily: activity only stamps c->last. */
	conn_arm(c, p->idle_timeout_ms - (unsigned)quiet);
}

/* A relay waiting for a slow end is watched on that end's time (relay_watch()), which
 * cuts it once it takes nothing for send_timeout; otherwise the idle rule holds. */
static void conn_relay_watch(struct conn *c)
{
	unsigned watch;
	enum outcome end;
	if (!relay_watch(&c->relay, &watch, &end)) {
		conn_free(c, end);
		return;
	}
	if (watch)
		conn_arm(c, watch);
	else
		conn_idle_check(c);
}

/* ---------------------------------------------------------------- back end */

static void conn_try_connect(struct conn *c);
static void conn_srv_read(struct sock *s, void *arg);
static void conn_srv_event(struct sock *s, enum sock_event ev, int err, void *arg);

static void conn_start_relay(struct conn *c)
{
	const struct rules_pool *p = conn_pool(c);
	event_del(c->timer);
	c->phase = PH_RELAY;
	pool_server_succeeded(c->snap->pools, (size_t)c->pool, (size_t)c->server);

	if (p->proxy_protocol) {
		uint8_t hdr[PP_MAX_HEADER];
		int n = p->proxy_protocol == 1
		            ? pp_write_v1((struct sockaddr *)&c->peer, (struct sockaddr *)&c->local, hdr, sizeof(hdr))
		            : pp_write_v2((struct sockaddr *)&c->peer, (struct sockaddr *)&c->local, hdr, sizeof(hdr));
		if (n < 0) {
			conn_free(c, OUTCOME_PROXY_HEADER_FAILED);
			return;
		}
		evbuffer_add(sock_output(c->srv), hdr, (size_t)n);
	}
	sock_set_read_max(c->cli, CONN_RELAY_MAX);
	sock_set_read_max(c->srv, CONN_RELAY_MAX);
	c->relay.cli.sock = c->cli;
	c->relay.srv.sock = c->srv;
	c->relay.cli.count = &c->bytes_in;
	c->relay.srv.count = &c->bytes_out;
	c->relay.max = CONN_RELAY_MAX;
	c->relay.stall_ms = c->svc->send_timeout_ms;
	relay_start(&c->relay);
	conn_arm(c, p->idle_timeout_ms);
	/* Replay the peeked ClientHello (still in the client's input) untouched. */
	conn_relay(c, &c->relay.cli);
}

static void conn_connect_failed(struct conn *c, const char *why)
{
	const struct rules_pool *p = conn_pool(c);
	log_msg(LOG_WARN, "pool %s server %s: connect failed: %s", p->name,
	        p->servers[c->server].addr.text, why);
	sock_free(c->srv);
	c->srv = NULL;
	pool_server_failed(c->snap->pools, (size_t)c->pool, (size_t)c->server, why);
	pool_conn_end(c->snap->pools, (size_t)c->pool, (size_t)c->server);
	c->server = -1;
	conn_try_connect(c);
}

static void conn_try_connect(struct conn *c)
{
	const struct rules_pool *p = conn_pool(c);
	while (c->ntried <= p->retries) {
		struct pool_pick pk = { .client = (const struct sockaddr *)&c->peer, .preferred = -1,
		                        .exclude = c->tried, .nexclude = c->ntried };
		long idx = pool_pick_server(c->snap->pools, c->snap->cursor, (size_t)c->pool, &pk);
		if (idx < 0)
			break;
		if (c->ntried)
			pool_server_retried(c->snap->pools, (size_t)c->pool, (size_t)c->tried[c->ntried - 1]);
		c->tried[c->ntried++] = idx;
		const struct rules_server *s = &p->servers[idx];
		struct sockaddr_storage to = s->addr.ss;
		unsigned port = c->route >= 0 ? c->svc->routes[c->route].port : 0;
		if (port)
			addr_set_port(&to, (uint16_t)port);
		c->srv = sock_connect(c->home->base, (const struct sockaddr *)&to, s->addr.len,
		                      (const struct sockaddr *)&p->source.ss, p->source.len);
		if (c->srv) {
			c->server = idx;
			pool_conn_begin(c->snap->pools, (size_t)c->pool, (size_t)idx);
			sock_setcb(c->srv, conn_srv_read, conn_drained, conn_srv_event, c);
			conn_arm(c, p->connect_timeout_ms);
			return;
		}
		log_msg(LOG_WARN, "pool %s server %s: connect failed: %s", p->name, s->addr.text,
		        strerror(errno));
		pool_server_failed(c->snap->pools, (size_t)c->pool, (size_t)idx, strerror(errno));
	}
	conn_free(c, OUTCOME_NO_SERVER);
}

static void conn_srv_read(struct sock *s, void *arg)
{
	struct conn *c = arg;
	(void)s;
	conn_relay(c, &c->relay.srv);
}

static void conn_srv_event(struct sock *s, enum sock_event ev, int err, void *arg)
{
	struct conn *c = arg;
	if (c->phase == PH_CONNECT) {
		if (ev == SOCK_CONNECTED)
			conn_start_relay(c);
		else
			conn_connect_failed(c, err ? strerror(err) : "closed");
		return;
	}
	if (c->phase == PH_CLOSING) {
		conn_linger_check(c);
		return;
	}
	if (ev == SOCK_ERROR) {
		conn_free(c, relay_reset(&c->relay, &c->relay.srv));
		return;
	}
	if (ev == SOCK_EOF)
		conn_ended(c, &c->relay.srv);
}

/* ---------------------------------------------------------------- routing */

/* TLS alert record: fatal (2), unrecognized_name (112). */
static const uint8_t conn_alert_unrecognized_name[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70 };

/* Sends what is queued for the client, then FIN, and waits (bounded) for the
 * client to close: closing first with unread bytes would reset the connection
 * and could destroy the alert before the client reads it. */
static void conn_linger(struct conn *c)
{
	c->phase = PH_LINGER;
	event_del(c->timer);
	conn_arm(c, CONN_LINGER_MS);
	sock_shutdown_write(c->cli);
	if (sock_flush(c->cli) != 0)
		conn_free(c, OUTCOME_REJECT);
}

/* HTTP (plain, or TLS terminated here) is the HTTP session's from now on: the
 * client socket, with whatever was peeked still in its input, moves there and
 * this conn is released without a log line of its own. */
static void conn_to_http(struct conn *c, bool tls)
{
	SSL *ssl = NULL;
	if (tls) {
		ssl = tlsconf_server_ssl(c->snap->tls, (size_t)(c->svc - c->snap->cfg->services));
		if (!ssl) {
			conn_free(c, OUTCOME_TLS_SETUP_FAILED);
			return;
		}
	}
	struct http_start st = {
		.home = c->home, .snap = c->snap, .svc = c->svc, .cli = c->cli, .ssl = ssl,
		.peer = &c->peer, .peerlen = c->peerlen, .local = &c->local, .locallen = c->locallen,
		.sni = c->hello.has_sni ? c->hello.sni : NULL,
	};
	c->cli = NULL;
	sock_setcb(st.cli, NULL, NULL, NULL, NULL);
	http_session_start(&st);
	conn_release(c);
}

static void conn_route(struct conn *c)
{
	const struct rules_service *svc = c->svc;
	c->route = -1;
	/* A TLS-ALPN-01 validation of a name this gateway is proving is its own, even
	 * where a passthrough route would take that name. */
	if (svc->mode == RULES_MODE_TLS && c->hello.alpn_acme && c->hello.has_sni &&
	    acme_alpn_pending(c->hello.sni, c->hello.sni_len)) {
		conn_to_http(c, true);
		return;
	}
	if (c->hello.has_sni)
		c->route = rules_namemap_lookup(svc->sni_map, c->hello.sni, c->hello.sni_len);
	if (c->route < 0 && svc->mode == RULES_MODE_TLS) {
		conn_to_http(c, true);
		return;
	}
	if (c->route < 0)
		c->route = svc->default_route;
	c->pool = c->route >= 0 ? svc->routes[c->route].pool : -1;

	if (c->pool < 0) {
		struct evbuffer *in = sock_input(c->cli);
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add(sock_output(c->cli), conn_alert_unrecognized_name, sizeof(conn_alert_unrecognized_name));
		conn_linger(c);
		return;
	}
	c->phase = PH_CONNECT;
	event_del(c->timer);
	/* Nothing more is read from the client until the back end is there: the
	 * peeked bytes are all we hold. */
	sock_read_enable(c->cli, false);
	conn_try_connect(c);
}

/* ---------------------------------------------------------------- client */

static void conn_feed_hello(struct conn *c)
{
	struct evbuffer *in = sock_input(c->cli);
	size_t len = evbuffer_get_length(in);
	if (len <= c->fed)
		return;
	struct evbuffer_ptr pos;
	evbuffer_ptr_set(in, &pos, c->fed, EVBUFFER_PTR_SET);
	struct evbuffer_iovec vec[8];
	enum hello_status st = HELLO_NEED_MORE;
	while (c->fed < len && st == HELLO_NEED_MORE) {
		int n = evbuffer_peek(in, -1, &pos, vec, 8);
		for (int i = 0; i < n && i < 8 && st == HELLO_NEED_MORE; i++) {
			st = hello_reader_feed(&c->hello, vec[i].iov_base, vec[i].iov_len);
			c->fed += vec[i].iov_len;
		}
		evbuffer_ptr_set(in, &pos, c->fed, EVBUFFER_PTR_SET);
	}
	switch (st) {
	case HELLO_NEED_MORE:
		return;
	case HELLO_DONE:
		conn_route(c);
		return;
	case HELLO_NOT_TLS:
		/* One port for both (plain_http): a first byte that is not a TLS record means HTTP. */
		if (c->svc->mode == RULES_MODE_TLS && c->svc->plain_http)
			conn_to_http(c, false);
		else
			conn_free(c, OUTCOME_NOT_TLS);
		return;
	case HELLO_MALFORMED:
		log_msg(LOG_DEBUG, "malformed ClientHello: %s", c->hello.error ? c->hello.error : "?");
		conn_free(c, OUTCOME_MALFORMED);
		return;
	}
}

static void conn_read_proxy(struct conn *c)
{
	struct evbuffer *in = sock_input(c->cli);
	size_t len = evbuffer_get_length(in);
	size_t take = len < PP_MAX_HEADER ? len : PP_MAX_HEADER;
	struct pp_info pi;
	enum pp_status st = pp_parse(evbuffer_pullup(in, (ev_ssize_t)take), take, &pi);
	if (st == PP_NEED_MORE && take < PP_MAX_HEADER)
		return;
	if (st != PP_OK) {
		conn_free(c, OUTCOME_PROXY_INVALID);
		return;
	}
	if (!pi.local) {
		memcpy(&c->peer, &pi.src, sizeof(pi.src));
		c->peerlen = pi.srclen;
		memcpy(&c->local, &pi.dst, sizeof(pi.dst));
		c->locallen = pi.dstlen;
	}
	evbuffer_drain(in, pi.header_len);
	if (c->svc->mode == RULES_MODE_HTTP) {
		conn_to_http(c, false);
		return;
	}
	c->phase = PH_HELLO;
	event_del(c->timer);
	conn_arm(c, c->svc->hello_timeout_ms);
	conn_feed_hello(c);
}

static void conn_cli_read(struct sock *sk, void *arg)
{
	struct conn *c = arg;
	switch (c->phase) {
	case PH_PROXY:
		conn_read_proxy(c);
		return;
	case PH_HELLO:
		conn_feed_hello(c);
		return;
	case PH_RELAY:
		conn_relay(c, &c->relay.cli);
		return;
	case PH_LINGER:
		evbuffer_drain(sock_input(sk), evbuffer_get_length(sock_input(sk)));
		return;
	case PH_CONNECT:
	case PH_CLOSING:
		return;
	}
}

static void conn_cli_event(struct sock *sk, enum sock_event ev, int err, void *arg)
{
	struct conn *c = arg;
	if (c->phase == PH_CONNECT && ev == SOCK_EOF) {
		/* The hello is whole and routed: the client's half-close follows it to the back end. */
		c->relay.cli.eof = true;
		return;
	}
	static const enum outcome early[] = {
		[PH_PROXY] = OUTCOME_CLIENT_CLOSED, [PH_HELLO] = OUTCOME_CLIENT_CLOSED,
		[PH_CONNECT] = OUTCOME_CLIENT_CLOSED, [PH_LINGER] = OUTCOME_REJECT,
	};
	if (c->phase == PH_CLOSING) {
		conn_linger_check(c);
		return;
	}
	if (c->phase != PH_RELAY) {
		conn_free(c, early[c->phase]);
		return;
	}
	if (ev == SOCK_ERROR) {
		conn_free(c, relay_reset(&c->relay, &c->relay.cli));
		return;
	}
	conn_ended(c, &c->relay.cli);
}

static void conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	switch (c->phase) {
	case PH_PROXY:
		conn_free(c, OUTCOME_PROXY_TIMEOUT);
		return;
	case PH_HELLO:
		conn_free(c, OUTCOME_HELLO_TIMEOUT);
		return;
	case PH_CONNECT:
		conn_connect_failed(c, "timed out");
		return;
	case PH_RELAY:
		conn_relay_watch(c);
		return;
	case PH_CLOSING:
		conn_linger_check(c);
		return;
	case PH_LINGER:
		conn_free(c, OUTCOME_REJECT);
		return;
	}
}

void conn_accept(struct home *home, evutil_socket_t fd, const struct sockaddr *peer,
                 socklen_t peerlen, size_t svc_index)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->home = home;
	c->snap = home->snap;
	c->snap->refs++;
	c->svc = &c->snap->cfg->services[svc_index];
	pool_service_open(c->snap->pools, svc_index, 1);
	c->pool = -1;
	c->route = -1;
	c->server = -1;
	if (peerlen > (socklen_t)sizeof(c->peer))
		peerlen = sizeof(c->peer);
	memcpy(&c->peer, peer, peerlen);
	c->peerlen = peerlen;
	c->locallen = sizeof(c->local);
	if (getsockname(fd, (struct sockaddr *)&c->local, &c->locallen) != 0)
		c->locallen = 0;
	hello_reader_init(&c->hello);
	event_base_gettimeofday_cached(home->base, &c->start);
	c->last = c->start;

	c->link.close_now = conn_close_now;
	home_live_add(home, &c->link);

	c->cli = sock_new(home->base, fd);
	c->timer = evtimer_new(home->base, conn_timer, c);
	if (!c->cli || !c->timer) {
		if (!c->cli)
			evutil_closesocket(fd);
		conn_free(c, OUTCOME_NO_MEMORY);
		return;
	}
	sock_setcb(c->cli, conn_cli_read, conn_drained, conn_cli_event, c);
	/* The peek never holds more than a ClientHello (plus a PROXY header). */
	sock_set_read_max(c->cli, HELLO_MAX_BYTES + PP_MAX_HEADER + 16 * 1024);
	if (c->svc->accept_proxy) {
		c->phase = PH_PROXY;
		conn_arm(c, c->svc->proxy_timeout_ms);
	} else if (c->svc->mode == RULES_MODE_HTTP) {
		conn_to_http(c, false);
		return;
	} else {
		c->phase = PH_HELLO;
		conn_arm(c, c->svc->hello_timeout_ms);
	}
	sock_read_enable(c->cli, true);
}
