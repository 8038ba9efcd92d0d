#include "proxy/conn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "acme/acme.h"
#include "proto/hello.h"
#include "proxy/home.h"
#include "http/h2session.h"
#include "http/http.h"
#include "io/keep.h"
#include "io/log.h"
#include "io/outcome.h"
#include "proxy/pass.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "rules.h"
#include "io/sock.h"
#include "io/tstream.h"
#include "proxy/tlsconf.h"

/* How long a rejected client gets to read our alert before we close. */
#define CONN_LINGER_MS 2000

/* The HTTP/2 connection preface (RFC 9113 3.4): a plain client with prior knowledge opens with it. */
static const char conn_h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define CONN_H2_PREFACE_LEN (sizeof(conn_h2_preface) - 1)

enum conn_phase { PH_PROXY, PH_HELLO, PH_PREFACE, PH_LINGER };

struct conn {
	struct home_link link;          /* in home->live; first, so a link is its conn */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	enum conn_phase phase;
	struct sock *cli;
	struct event timer;             /* the current phase's deadline (in the struct: no allocation) */
	struct hello_reader hello;
	size_t fed;                     /* bytes of the client's input already fed to hello */
	struct sockaddr_storage peer;   /* the client: real peer, or the one a PROXY header named */
	struct sockaddr_storage local;  /* the address the client connected to, once local_known */
	socklen_t peerlen, locallen;
	bool local_known;               /* asked of the kernel only where it is used (conn_local()) */
	long route;                     /* matched route, -1 for the default */
	long pool;                      /* -1 until routed */
	struct timeval start;
	void *next_kept;                /* in this thread's list of ended ones (keep.h) */
};

/* Ended connections' memory is kept per thread for the next ones, as pass.c does:
 * a calloc() and a free() of this size were ~400 instructions a connection. */
#define CONN_KEPT 256

static const struct keep_kind conn_keep_kind = {
	.max = CONN_KEPT, .link = offsetof(struct conn, next_kept), .free = free,
};
static _Thread_local struct keep_list conn_kept = { .kind = &conn_keep_kind };

/* ---------------------------------------------------------------- helpers */

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

/* The one place a connection's memory is released. */
static void conn_release(struct conn *c)
{
	struct home *home = c->home;
	pool_service_open(c->snap->pools, conn_service_index(c), -1);
	event_del(&c->timer);
	sock_free(c->cli);
	home_snap_unref(c->snap);
	home_live_remove(home, &c->link);
	if (!keep_give(&conn_kept, c))
		free(c);
}

/* A connection that ends here, before it was dispatched: counted for its
 * service and logged with the passthrough line (no route, pool or server). */
static void conn_free(struct conn *c, enum outcome outcome)
{
	pool_session_done(c->snap->pools, conn_service_index(c), -1, -1, outcome_table[outcome].server_fault);
	if (log_access_enabled()) {
		struct pass_line l = {
			.peer = &c->peer, .peerlen = c->peerlen, .service = c->svc->name,
			.sni = c->hello.has_sni ? c->hello.sni : NULL, .ms = conn_elapsed_ms(c), .outcome = outcome,
		};
		pass_log(&l);
	}
	conn_release(c);
}

static void conn_close_now(struct home_link *l)
{
	conn_free((struct conn *)l, OUTCOME_DRAIN_TIMEOUT);
}

static void conn_arm(struct conn *c, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	event_add(&c->timer, &tv);
}

/* The address the client connected to, unless a PROXY header named it: asked of the
 * kernel only for the sessions that use it (HTTP, a PROXY header to a server), one
 * getsockname() less for each passthrough connection. */
static void conn_local(struct conn *c)
{
	if (c->local_known)
		return;
	c->local_known = true;
	c->locallen = sizeof(c->local);
	if (getsockname(sock_fd(c->cli), (struct sockaddr *)&c->local, &c->locallen) != 0)
		c->locallen = 0;
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
	event_del(&c->timer);
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
	conn_local(c);
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

/* h2c with prior knowledge: the plain connection, its preface still in the
 * input, is an HTTP/2 connection's (http/h2session.h) from now on. */
static void conn_to_h2c(struct conn *c)
{
	conn_local(c);
	struct http_start st = {
		.home = c->home, .snap = c->snap, .svc = c->svc, .peer = &c->peer, .peerlen = c->peerlen,
		.local = &c->local, .locallen = c->locallen,
	};
	sock_setcb(c->cli, NULL, NULL, NULL, NULL);
	struct tstream *t = tstream_new(c->cli, NULL);
	c->cli = NULL;
	if (!t) {
		conn_free(c, OUTCOME_NO_MEMORY);
		return;
	}
	h2s_start(&st, t);
	conn_release(c);
}

/* Whether the input so far is the HTTP/2 preface: h2c once it is whole, plain
 * HTTP/1.x at the first byte that differs (the session reads it all). */
static void conn_read_preface(struct conn *c)
{
	struct evbuffer *in = sock_input(c->cli);
	size_t len = evbuffer_get_length(in);
	size_t n = len < CONN_H2_PREFACE_LEN ? len : CONN_H2_PREFACE_LEN;
	char got[CONN_H2_PREFACE_LEN];
	if (evbuffer_copyout(in, got, n) != (ev_ssize_t)n || memcmp(got, conn_h2_preface, n) != 0)
		conn_to_http(c, false);
	else if (n == CONN_H2_PREFACE_LEN)
		conn_to_h2c(c);
}

/* Plain HTTP: HTTP/1.x, or HTTP/2 with prior knowledge where the service takes it (h2c). */
static void conn_to_plain(struct conn *c)
{
	if (!c->svc->h2c) {
		conn_to_http(c, false);
		return;
	}
	c->phase = PH_PREFACE;
	event_del(&c->timer);
	conn_arm(c, c->svc->header_timeout_ms);
	sock_read_enable(c->cli, true);
	if (evbuffer_get_length(sock_input(c->cli)))
		conn_read_preface(c);
}

/* A passthrough route: the client socket, the peeked ClientHello still in its
 * input, moves to a passthrough connection (pass.h), which logs it from now on. */
static void conn_to_pass(struct conn *c)
{
	if (c->snap->cfg->pools[c->pool].proxy_protocol)
		conn_local(c);
	struct pass_start st = {
		.home = c->home, .snap = c->snap, .svc = c->svc, .route = c->route, .cli = c->cli,
		.peer = &c->peer, .peerlen = c->peerlen, .local = &c->local, .locallen = c->locallen,
		.sni = c->hello.has_sni ? c->hello.sni : NULL, .start = c->start,
	};
	if (pass_start(&st) != 0) {
		conn_free(c, OUTCOME_NO_MEMORY);
		return;
	}
	c->cli = NULL;
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
	conn_to_pass(c);
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
			conn_to_plain(c);
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
		c->local_known = true;
	}
	evbuffer_drain(in, pi.header_len);
	if (c->svc->mode == RULES_MODE_HTTP) {
		conn_to_plain(c);
		return;
	}
	c->phase = PH_HELLO;
	event_del(&c->timer);
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
	case PH_PREFACE:
		conn_read_preface(c);
		return;
	case PH_LINGER:
		evbuffer_drain(sock_input(sk), evbuffer_get_length(sock_input(sk)));
		return;
	}
}

static void conn_cli_event(struct sock *sk, enum sock_event ev, int err, void *arg)
{
	struct conn *c = arg;
	(void)sk;
	(void)ev;
	(void)err;
	conn_free(c, c->phase == PH_LINGER ? OUTCOME_REJECT : OUTCOME_CLIENT_CLOSED);
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
	case PH_PREFACE:
		conn_free(c, OUTCOME_HEADER_TIMEOUT);
		return;
	case PH_LINGER:
		conn_free(c, OUTCOME_REJECT);
		return;
	}
}

void conn_accept(struct home *home, evutil_socket_t fd, const struct sockaddr *peer,
                 socklen_t peerlen, size_t svc_index)
{
	struct conn *c = keep_take_zeroed(&conn_kept, sizeof(*c));
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
	if (peerlen > (socklen_t)sizeof(c->peer))
		peerlen = sizeof(c->peer);
	memcpy(&c->peer, peer, peerlen);
	c->peerlen = peerlen;
	hello_reader_init(&c->hello);
	event_base_gettimeofday_cached(home->base, &c->start);

	c->link.close_now = conn_close_now;
	home_live_add(home, &c->link);

	evtimer_assign(&c->timer, home->base, conn_timer, c);
	c->cli = sock_new(home->base, fd);
	if (!c->cli) {
		evutil_closesocket(fd);
		conn_free(c, OUTCOME_NO_MEMORY);
		return;
	}
	sock_setcb(c->cli, conn_cli_read, NULL, conn_cli_event, c);
	/* The peek never holds more than a ClientHello (plus a PROXY header). */
	sock_set_read_max(c->cli, HELLO_MAX_BYTES + PP_MAX_HEADER + 16 * 1024);
	if (c->svc->accept_proxy) {
		c->phase = PH_PROXY;
		conn_arm(c, c->svc->proxy_timeout_ms);
	} else if (c->svc->mode == RULES_MODE_HTTP) {
		conn_to_plain(c);
		return;
	} else {
		c->phase = PH_HELLO;
		conn_arm(c, c->svc->hello_timeout_ms);
	}
	sock_read_enable(c->cli, true);
}
