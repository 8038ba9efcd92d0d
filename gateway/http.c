#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "addr.h"
#include "acme.h"
#include "h1.h"
#include "log.h"
#include "outcome.h"
#include "plugin.h"
#include "pool.h"
#include "proxyproto.h"
#include "relay.h"
#include "sock.h"
#include "tlsconf.h"
#include "tstream.h"

/* Bytes queued towards one side before we stop reading the other. */
#define HTTP_RELAY_MAX (256 * 1024)
/* Request and response heads: past this a request gets 431, a response 502. */
#define HTTP_HEAD_MAX (32 * 1024)
/* Without a route or template saying otherwise. */

enum http_phase {
	HP_HEAD,        /* waiting for (the rest of) a request head */
	HP_CONNECT,     /* connecting to a server */
	HP_EXCHANGE,    /* request body out, response in */
	HP_TUNNEL,      /* after a 101: bytes both ways */
	HP_CLOSING,     /* our last bytes are leaving (both ways, at a tunnel's end); then we close */
};

enum http_framing { HF_NONE, HF_LENGTH, HF_CHUNKED, HF_CLOSE };

/* Why a server connection failed a request before any byte of the answer reached the client. */
enum http_retry_cause {
	HR_CONNECT,     /* it never carried the request: refused, reset or timed out while opening */
	HR_BROKEN,      /* closed or reset with the request out, before the answer's head */
	HR_TIMEOUT,     /* no answer's head within the route's request_timeout */
};

/* What came of giving a request a connection to one server. */
enum http_connect_result {
	HC_STARTED,     /* connecting, or the exchange is under way on a kept connection */
	HC_NEXT,        /* not even a connect could start (a failure already counted): try another server */
	HC_STOP,        /* nothing could start on any server (no PROXY header for this client) */
};

/* The parsed heads of the exchange under way (some 3.5 KiB): allocated when a
 * request starts and released while the connection waits idle, so ten
 * thousand idle keep-alive clients do not hold them. */
struct http_msgs {
	struct h1_msg req, resp;
};

/* A server connection private to its client connection, kept between that
 * client's requests: Windows authentication (NTLM, Negotiate) authenticates the
 * TCP connection, a PROXY header names the client that opened it, a pool with
 * share_connections = false has other state bound to it. It must never serve
 * another client, and the client's next request to the pool goes back to it.
 * Allocated only while one is kept. */
struct http_private {
	struct tstream *t;
	long pool, server;
	unsigned port;
	char name[256];                 /* the TLS server name it was opened for, or "" */
};

/* One request, from its first byte to its access line: what the next one starts
 * afresh with is one assignment (http_request_reset()). */
struct http_request {
	struct timeval req_start, srv_start;
	char method[24], host[256], path[256];
	size_t host_len;
	long route, pool, server;
	long tried[RULES_RETRIES_MAX + 1];      /* servers tried for this request */
	size_t ntried;
	unsigned attempts;              /* server connections the request was given: the first and its retries */
	long failed_server;             /* the server whose failure the next attempt retries, or -1 */
	enum http_retry_cause fail_cause;       /* the last failure: answered so when nothing more is tried */
	bool srv_reused;                /* the server connection is a kept one */
	bool req_sent;                  /* the request head went to a server */
	bool head_held;                 /* it still heads the client's input (a bodyless request that may go again) */
	bool resending;                 /* counted among the pool's resends under way */
	bool resp_forwarded;            /* an interim (1xx) answer reached the client */
	struct evbuffer *kept;          /* a request with a body that may go again: its head, then the body sent */
	long cookie_server;             /* the server the request's persistence cookie names, or -1 */
	bool counted;                   /* the server counts this request among its active ones */
	unsigned port;                  /* the server's port after the route's rewrite */
	enum http_framing req_framing, resp_framing;
	uint64_t req_left, resp_left;
	struct h1_chunked req_chunks, resp_chunks;
	bool req_done, resp_head_done, resp_done, keepalive, upgrade, head_request;
	int status;
	uint64_t bytes_in, bytes_out;   /* body bytes up, response bytes down */
	bool srv_reusable;              /* the server may take another request on this connection */
	bool req_private;               /* it went over a private server connection (the log says so) */
	struct plugin_req *plug;        /* the route's plugins' edits; NULL without plugins */
	char *target;                   /* normalize_path: the target the back end gets; NULL: the client's */
	const char *answered_by;        /* OUTCOME_PLUGIN: "plugin:NAME", the plugin's own string */
};

/* Before any request, and what each starts from. */
static const struct http_request http_request_none = {
	.route = -1, .pool = -1, .server = -1, .failed_server = -1, .cookie_server = -1, .fail_cause = HR_CONNECT,
};

struct http_session {
	struct home_link link;          /* first: a link is its session */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	struct tstream *cli, *srv;
	struct event *timer;
	uint64_t deadline;              /* http_now_ms() when the phase times out, or 0 */
	uint64_t timer_at;              /* when the timer fires (at or before the deadline), or 0 */
	enum http_phase phase;
	bool tls;
	bool handshaken;                /* the client's TLS handshake is done (always, without TLS) */
	char client[64];                /* "ip:port" for logs */
	char client_ip[INET6_ADDRSTRLEN];
	struct sockaddr_storage peer;   /* for balance = "source" and the PROXY header */
	struct sockaddr_storage local;  /* the address the client connected to, for the PROXY header */
	socklen_t locallen;             /* 0: unknown */
	char sni[256];
	unsigned requests;
	struct timeval start;
	enum outcome close_outcome;
	struct sock_linger cli_linger, srv_linger;
	bool log_at_close;              /* the request's access line waits for the client to take the answer */

	struct h1_msg *req, *resp;      /* in msgs, while a request is under way */
	struct http_msgs *msgs;
	bool cli_paused, srv_paused, cli_eof, req_started;
	struct relay relay;             /* HP_TUNNEL: the client and server streams after a 101 */
	bool srv_private;               /* s->srv belongs to this client connection alone: http_srv_private() */
	struct http_private *priv;      /* a private server connection waiting for this client's next request */
	struct http_request rq;         /* the request in flight */
};

static void http_read_request(struct http_session *s);
static void http_connect_next(struct http_session *s);
static void http_cookie_set(struct http_session *s, struct evbuffer *out);

/* ---------------------------------------------------------------- lifetime */

/* A span as a C string for the log, cut to fit. */
static void http_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Request times come from the precise monotonic clock, not libevent's cached time: that one is
 * read from the coarse clock (4 ms ticks here), so most requests to a near server measured 0 us
 * and the latency histogram's sub-millisecond buckets said nothing. */
static void http_clock(struct timeval *tv)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
}

static long http_ms_since(const struct timeval *t)
{
	struct timeval now;
	http_clock(&now);
	return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_usec - t->tv_usec) / 1000L;
}

static void http_private_free(struct http_session *s)
{
	if (!s->priv)
		return;
	tstream_free(s->priv->t);
	free(s->priv);
	s->priv = NULL;
}

static size_t http_service_index(const struct http_session *s)
{
	return (size_t)(s->svc - s->snap->cfg->services);
}

static void http_access_log(struct http_session *s, enum outcome outcome);

/* The outcome as logged: a plugin's answer names the plugin. */
static const char *http_outcome_text(const struct http_session *s, enum outcome outcome)
{
	return outcome == OUTCOME_PLUGIN ? s->rq.answered_by : outcome_name(outcome);
}

/* The request can no longer go again (its answer's head came, or it is over): what
 * was kept for that goes. */
static void http_resend_end(struct http_session *s)
{
	if (s->rq.head_held) {
		evbuffer_drain(tstream_input(s->cli), s->req->head_len);
		s->rq.head_held = false;
	}
	if (s->rq.kept) {
		evbuffer_free(s->rq.kept);
		s->rq.kept = NULL;
	}
	if (s->rq.resending) {
		s->rq.resending = false;
		pool_retry_end(s->snap->pools, (size_t)s->rq.pool);
	}
}

/* The one place a session's memory is released. */
static void http_free(struct http_session *s, enum outcome outcome)
{
	if (s->log_at_close) {
		s->log_at_close = false;
		http_access_log(s, outcome);
	}
	pool_service_open(s->snap->pools, http_service_index(s), -1);
	http_resend_end(s);
	if (log_access_enabled())
		log_msg(LOG_INFO, "conn client=%s service=%s sni=%s requests=%u ms=%ld outcome=%s", s->client,
		        s->svc->name, s->sni[0] ? s->sni : "-", s->requests, http_ms_since(&s->start),
		        http_outcome_text(s, outcome));
	if (s->timer)
		event_free(s->timer);
	tstream_free(s->cli);
	tstream_free(s->srv);
	http_private_free(s);
	free(s->msgs);
	plugin_req_free(s->rq.plug);
	free(s->rq.target);
	home_snap_unref(s->snap);
	home_live_remove(s->home, &s->link);
	free(s);
}

static void http_linger_cut(struct http_session *s, enum outcome outcome);

static void http_close_now(struct home_link *l)
{
	struct http_session *s = (struct http_session *)l;
	/* A request cut here is logged with what its client got so far. */
	if (s->phase == HP_TUNNEL && s->relay.closing) {
		relay_cut(&s->relay);
		http_free(s, OUTCOME_DRAIN_TIMEOUT);
		return;
	}
	if (s->phase == HP_CONNECT || s->phase == HP_EXCHANGE || s->phase == HP_TUNNEL)
		s->log_at_close = true;
	if (s->phase != HP_CLOSING)
		sock_linger_start(&s->cli_linger);
	(void)tstream_linger_check(s->cli, &s->cli_linger, s->svc->send_timeout_ms);
	http_linger_cut(s, OUTCOME_DRAIN_TIMEOUT);
}

/* Monotonic milliseconds; the coarse clock (a few ms) is plenty for timeouts. */
static uint64_t http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void http_timer_set(struct http_session *s, uint64_t now, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	s->timer_at = now + ms;
	event_add(s->timer, &tv);
}

/* The phase's deadline, ms from now. A request moves it several times, mostly later:
 * then the timer keeps its earlier time and, if it fires before the deadline, sleeps
 * again for the rest. Only a nearer deadline re-arms it, so a kept-alive request
 * costs no timer work at all. */
static void http_arm(struct http_session *s, unsigned ms)
{
	uint64_t now = http_now_ms();
	s->deadline = now + ms;
	if (s->timer_at && s->timer_at <= s->deadline)
		return;
	http_timer_set(s, now, ms);
}

static void http_disarm(struct http_session *s)
{
	s->deadline = 0;
}

/* The server's active count covers a request from its connect (or reuse) to its end. */
static void http_server_release(struct http_session *s)
{
	if (!s->rq.counted)
		return;
	s->rq.counted = false;
	pool_conn_end(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server);
}

static void http_drop_server(struct http_session *s)
{
	http_server_release(s);
	tstream_free(s->srv);
	s->srv = NULL;
	s->srv_private = false;
}

/* Whether the server connection under way is private to this client connection:
 * what it carries (an authenticated Windows session, a PROXY header naming this
 * client) would be wrong on any other server connection, so a request on it is
 * never sent again elsewhere, and it is never parked for another client. */
static bool http_srv_private(const struct http_session *s)
{
	return s->srv_private;
}

/* From now on until it closes: a connection does not become shared again. */
static void http_make_private(struct http_session *s)
{
	s->srv_private = true;
	s->rq.req_private = true;
}

/* A pool whose server connections are never shared: each is private from its connect.
 * A PROXY header names the client that opened the connection, so it is one of them. */
static bool http_pool_private(const struct rules_pool *p)
{
	return !p->share_connections || p->proxy_protocol;
}

/* Authorization / Proxy-Authorization (credentials) and WWW-Authenticate /
 * Proxy-Authenticate (challenges) that make a server connection private. */
static bool http_auth_header_binds(const char *head, const struct h1_header *h, bool challenge)
{
	const char *name = head + h->name.off;
	bool auth = challenge ? (h->name.len == 16 && strncasecmp(name, "www-authenticate", 16) == 0) ||
	                                (h->name.len == 18 && strncasecmp(name, "proxy-authenticate", 18) == 0)
	                      : (h->name.len == 13 && strncasecmp(name, "authorization", 13) == 0) ||
	                                (h->name.len == 19 && strncasecmp(name, "proxy-authorization", 19) == 0);
	return auth && h1_auth_binds_connection(head + h->value.off, h->value.len);
}

/* ---------------------------------------------------------------- idle back-end connections */

/* Per worker, connections a server kept open after an exchange wait here for the
 * next request to the same server (same rules snapshot, pool, server, port and,
 * with TLS, the same server name). Nothing is shared between workers. */
#define HTTP_IDLE_MAX 512
#define HTTP_IDLE_MS 30000

struct http_idle {
	struct home_link link;          /* first: a link is its entry; in home->idle */
	struct home *home;
	struct tstream *t;
	struct rules_config *cfg;       /* a reference: a freed snapshot's address could come back */
	uint64_t until;                 /* http_now_ms() when it is closed */
	long pool, server;
	unsigned port;
	char name[256];                 /* the TLS server name it was opened for, or "" */
};

static void http_idle_free(struct http_idle *i)
{
	struct home *home = i->home;
	home_idle_remove(home, &i->link);
	tstream_free(i->t);
	rules_config_unref(i->cfg);
	free(i);
	if (!home->idle) {
		event_free(home->idle_timer);
		home->idle_timer = NULL;
	}
}

static void http_idle_close_now(struct home_link *l)
{
	http_idle_free((struct http_idle *)l);
}

/* An idle server connection that speaks or closes is not reusable. */
static void http_idle_readable(struct tstream *t, void *arg)
{
	(void)t;
	http_idle_free(arg);
}

static void http_idle_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	(void)t;
	(void)ev;
	http_idle_free(arg);
}

static void http_idle_timer_set(struct home *home, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	event_add(home->idle_timer, &tv);
}

/* One timer per worker closes what was kept too long, set for the earliest end, so
 * that parking and taking a connection (once per request) cost no timer work. */
static void http_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct home *home = arg;
	(void)fd;
	(void)what;
	uint64_t now = http_now_ms(), next = 0;
	for (struct home_link *l = home->idle, *after; l; l = after) {
		struct http_idle *i = (struct http_idle *)l;
		after = l->next;
		if (i->until <= now)
			http_idle_free(i);      /* the last one takes the timer with it */
		else if (!next || i->until < next)
			next = i->until;
	}
	if (next)
		http_idle_timer_set(home, next - now);
}

/* The server name a pool's TLS connection is opened with (the reuse key too). */
static const char *http_backend_name(const struct http_session *s, const struct rules_pool *p)
{
	if (!p->tls.on)
		return "";
	return p->tls.sni ? p->tls.sni : s->rq.host[0] ? s->rq.host : s->sni;
}

/* A private connection waiting for its client that speaks or closes is done with:
 * the client's next request to the pool is balanced as usual (and authenticates again). */
static void http_private_readable(struct tstream *t, void *arg)
{
	(void)t;
	http_private_free(arg);
}

static void http_private_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	(void)t;
	(void)ev;
	http_private_free(arg);
}

/* Keeps the session's private server connection for its client's next request to
 * the pool, or closes it. One is kept: a private connection to another pool takes
 * the place of the one before. A draining or disabled server keeps it, as it keeps
 * any connection open until its client is done. */
static void http_keep_private(struct http_session *s)
{
	http_server_release(s);
	if (!s->rq.srv_reusable || evbuffer_get_length(tstream_input(s->srv)) > 0 ||
	    (!s->priv && !(s->priv = calloc(1, sizeof(*s->priv))))) {
		http_drop_server(s);
		return;
	}
	if (s->priv->t)
		tstream_free(s->priv->t);
	struct http_private *v = s->priv;
	v->t = s->srv;
	v->pool = s->rq.pool;
	v->server = s->rq.server;
	v->port = s->rq.port;
	const char *name = http_backend_name(s, &s->snap->cfg->pools[s->rq.pool]);
	http_copy(v->name, sizeof(v->name), name, strlen(name));
	s->srv = NULL;
	s->srv_private = false;
	tstream_setcb(v->t, http_private_readable, NULL, http_private_event, s);
	tstream_read_enable(v->t, true);
}

/* The request's pool has a private connection of this client's: the request goes
 * there, ahead of balancing and the persistence cookie. Returns false when there is
 * none for this pool, port and server name. */
static bool http_take_private(struct http_session *s)
{
	struct http_private *v = s->priv;
	if (!v || v->pool != s->rq.pool)
		return false;
	const struct rules_pool *p = &s->snap->cfg->pools[s->rq.pool];
	unsigned port = s->svc->routes[s->rq.route].port ? s->svc->routes[s->rq.route].port : p->servers[v->server].port;
	if (v->port != port || strcmp(v->name, http_backend_name(s, p)) != 0)
		return false;
	http_drop_server(s);
	s->srv = v->t;
	s->srv_private = true;
	s->rq.server = v->server;
	s->rq.port = v->port;
	free(v);
	s->priv = NULL;
	pool_conn_begin(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server);
	s->rq.counted = true;
	return true;
}

/* Parks the session's server connection for reuse, or closes it. */
static void http_park_server(struct http_session *s)
{
	const struct rules_pool *p = &s->snap->cfg->pools[s->rq.pool];
	struct http_idle *i = NULL;
	if (s->srv && http_srv_private(s)) {
		http_keep_private(s);
		return;
	}
	http_server_release(s);
	/* A draining or disabled server gets nothing new, kept connections included. */
	struct home *home = s->home;
	if (!s->srv || !s->rq.srv_reusable || home->nidle >= HTTP_IDLE_MAX ||
	    !pool_server_usable(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server) ||
	    evbuffer_get_length(tstream_input(s->srv)) > 0 || !(i = malloc(sizeof(*i)))) {
		http_drop_server(s);
		return;
	}
	if (!home->idle_timer) {
		if (!(home->idle_timer = evtimer_new(home->base, http_idle_sweep, home))) {
			free(i);
			http_drop_server(s);
			return;
		}
		http_idle_timer_set(home, HTTP_IDLE_MS);
	}
	i->link.close_now = http_idle_close_now;
	i->home = home;
	i->t = s->srv;
	i->cfg = rules_config_ref(s->snap->cfg);
	i->until = http_now_ms() + HTTP_IDLE_MS;
	i->pool = s->rq.pool;
	i->server = s->rq.server;
	i->port = s->rq.port;
	const char *name = http_backend_name(s, p);
	http_copy(i->name, sizeof(i->name), name, strlen(name));
	s->srv = NULL;
	tstream_setcb(i->t, http_idle_readable, NULL, http_idle_event, i);
	tstream_read_enable(i->t, true);
	home_idle_add(home, &i->link);
}

/* An idle connection to exactly this server, or NULL. */
static struct tstream *http_take_idle(struct http_session *s, long server, unsigned port)
{
	const char *name = http_backend_name(s, &s->snap->cfg->pools[s->rq.pool]);
	for (struct home_link *l = s->home->idle; l; l = l->next) {
		struct http_idle *i = (struct http_idle *)l;
		if (i->cfg != s->snap->cfg || i->pool != s->rq.pool || i->server != server || i->port != port ||
		    strcmp(i->name, name) != 0)
			continue;
		struct tstream *t = i->t;
		i->t = NULL;
		http_idle_free(i);
		return t;
	}
	return NULL;
}

/* A closing connection whose peer did not take all: the answer's line counts what it got
 * (TLS records' overhead counted as answer bytes, so it errs low by under 0.2%). */
static void http_linger_cut(struct http_session *s, enum outcome outcome)
{
	uint64_t left = s->cli_linger.left;
	s->rq.bytes_out -= left < s->rq.bytes_out ? left : s->rq.bytes_out;
	if (left)
		log_msg(LOG_INFO, "client %s: cut with %llu bytes not taken (%s)", s->client, (unsigned long long)left,
		        outcome_name(outcome));
	http_free(s, outcome);
}

/* Looks at what the peers have still to take: the kernel's queue has no event of its
 * own, so the timer comes back until they have it all, stop taking it, or reset. */
static void http_linger_check(struct http_session *s)
{
	unsigned stall = s->svc->send_timeout_ms;
	enum sock_linger_state c = tstream_linger_check(s->cli, &s->cli_linger, stall);
	enum sock_linger_state v = s->srv ? tstream_linger_check(s->srv, &s->srv_linger, stall) : SOCK_LINGER_DONE;
	if (c == SOCK_LINGER_BROKEN || c == SOCK_LINGER_STALLED) {
		http_linger_cut(s, c == SOCK_LINGER_BROKEN ? OUTCOME_CLIENT_RESET : OUTCOME_CLIENT_STALLED);
		return;
	}
	if (v == SOCK_LINGER_BROKEN || v == SOCK_LINGER_STALLED) {
		http_free(s, v == SOCK_LINGER_BROKEN ? OUTCOME_SERVER_RESET : OUTCOME_SERVER_STALLED);
		return;
	}
	if (c == SOCK_LINGER_DONE && v == SOCK_LINGER_DONE) {
		http_free(s, s->close_outcome);
		return;
	}
	unsigned next = c == SOCK_LINGER_TAKING ? s->cli_linger.next_ms : s->srv_linger.next_ms;
	if (v == SOCK_LINGER_TAKING && s->srv_linger.next_ms < next)
		next = s->srv_linger.next_ms;
	s->timer_at = 0;        /* the linger's looks are nearer than any deadline set before */
	event_del(s->timer);
	http_arm(s, next);
}

/* Our last bytes go (both ways at a tunnel's end, where both sides have shut down):
 * the session ends once the peers have them, or one stops taking them. */
static void http_linger_begin(struct http_session *s, enum outcome outcome)
{
	s->phase = HP_CLOSING;
	s->close_outcome = outcome;
	tstream_read_enable(s->cli, false);
	tstream_set_low_mark(s->cli, 0);
	sock_linger_start(&s->cli_linger);
	if (s->srv) {
		tstream_read_enable(s->srv, false);
		tstream_set_low_mark(s->srv, 0);
		sock_linger_start(&s->srv_linger);
	}
	http_linger_check(s);
}

/* Sends what is queued to the client, then closes. */
static void http_close(struct http_session *s, enum outcome outcome)
{
	if (s->phase == HP_CLOSING)
		return;
	http_drop_server(s);
	if (tstream_flush(s->cli) != 0) {
		http_free(s, OUTCOME_CLIENT_RESET);
		return;
	}
	tstream_shutdown(s->cli);
	http_linger_begin(s, outcome);
}

/* The request ends the connection: its access line waits until the client has taken
 * the answer (or stopped taking it), so a cut answer is never logged ok. */
static void http_close_request(struct http_session *s, enum outcome outcome)
{
	if (s->phase == HP_CLOSING)
		return;
	s->log_at_close = true;
	http_close(s, outcome);
}

/* ---------------------------------------------------------------- our own answers */

/* The reason phrases of RFC 9110 (and 6585, 7725 for 429, 431, 451): a route's `status` and a
 * plugin may answer any of them. */
static const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

static void http_access_log(struct http_session *s, enum outcome outcome)
{
	const struct rules_pool *p = s->rq.pool >= 0 ? &s->snap->cfg->pools[s->rq.pool] : NULL;
	const struct rules_route *r = s->rq.route >= 0 ? &s->svc->routes[s->rq.route] : NULL;
	http_resend_end(s);
	struct timeval now;
	http_clock(&now);
	long long us = (now.tv_sec - s->rq.req_start.tv_sec) * 1000000LL + (now.tv_usec - s->rq.req_start.tv_usec);
	struct pool_request done = { .service = http_service_index(s), .pool = p ? s->rq.pool : -1,
		                     .server = p ? s->rq.server : -1, .status = s->rq.status, .us = us > 0 ? (uint64_t)us : 0,
		                     .bytes_in = s->rq.bytes_in, .bytes_out = s->rq.bytes_out };
	pool_request_done(s->snap->pools, &done);
	if (!log_access_enabled() || !log_enabled(LOG_INFO))
		return;
	char route[32] = "-", server[300] = "-";
	if (r && s->rq.route == s->svc->default_route)
		snprintf(route, sizeof(route), "default");
	else if (r)
		snprintf(route, sizeof(route), "line%d", r->line);
	if (p && s->rq.server >= 0)
		snprintf(server, sizeof(server), "%s:%u", p->servers[s->rq.server].host, s->rq.port);
	long backend_ms = s->rq.srv_start.tv_sec ? http_ms_since(&s->rq.srv_start) : -1;
	log_msg(LOG_INFO,
	        "http client=%s sni=%s host=%s method=%s path=%s status=%d in=%llu out=%llu route=%s pool=%s "
	        "server=%s%s backend_ms=%ld ms=%ld retries=%u outcome=%s",
	        s->client, s->sni[0] ? s->sni : "-", s->rq.host[0] ? s->rq.host : "-", s->rq.method[0] ? s->rq.method : "-",
	        s->rq.path[0] ? s->rq.path : "-", s->rq.status, (unsigned long long)s->rq.bytes_in,
	        (unsigned long long)s->rq.bytes_out, route, p ? p->name : "-", server,
	        s->rq.req_private ? " private=1" : "", backend_ms,
	        http_ms_since(&s->rq.req_start), s->rq.attempts ? s->rq.attempts - 1 : 0,
	        http_outcome_text(s, outcome));
}

/* A short answer of our own. Never names an internal address. The connection closes after it
 * unless keep says otherwise (only when the request had no body left unread). */
static void http_respond_text(struct http_session *s, int status, const char *extra, const char *text,
                              enum outcome outcome, bool keep)
{
	struct evbuffer *out = tstream_output(s->cli);
	/* A request answered here, before it went anywhere: its head is done with. */
	if (s->phase == HP_HEAD && s->req && s->req->head_len)
		evbuffer_drain(tstream_input(s->cli), s->req->head_len);
	/* The client's Connection: close (or HTTP/1.0) holds for our own answers too. */
	keep = keep && s->rq.keepalive;
	char body[300];
	int n = text ? snprintf(body, sizeof(body), "%s", text) : snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
	/* 204 and 304 never have a body: one here would be read as the start of the next answer. */
	bool bodyless = status == 204 || status == 304;
	if (bodyless)
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s%s\r\n", status, http_reason(status), extra ? extra : "",
		                    keep ? "" : "Connection: close\r\n");
	else
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		                    "Content-Length: %d\r\n%s%s\r\n",
		                    status, http_reason(status), n, extra ? extra : "", keep ? "" : "Connection: close\r\n");
	if (!s->rq.head_request && !bodyless)
		evbuffer_add(out, body, (size_t)n);
	s->rq.status = status;
	if (!keep) {
		http_close_request(s, outcome);
		return;
	}
	http_access_log(s, outcome);
	if (tstream_flush(s->cli) != 0) {
		http_free(s, OUTCOME_CLIENT_RESET);
		return;
	}
	s->phase = HP_HEAD;
	http_read_request(s);
}

static void http_respond(struct http_session *s, int status, const char *extra, enum outcome outcome, bool keep)
{
	http_respond_text(s, status, extra, NULL, outcome, keep);
}

/* ---------------------------------------------------------------- back end */

static const struct rules_pool *http_pool(const struct http_session *s)
{
	return &s->snap->cfg->pools[s->rq.pool];
}

static unsigned http_timeout(const struct http_session *s, bool first_byte)
{
	const struct rules_route *r = &s->svc->routes[s->rq.route];
	if (first_byte)
		return r->request_timeout_ms ? r->request_timeout_ms : RULES_REQUEST_TIMEOUT_MS;
	return r->idle_timeout_ms ? r->idle_timeout_ms : http_pool(s)->idle_timeout_ms;
}

/* Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's. */
static bool http_hop_by_hop(const char *name, size_t len)
{
	switch (len) {
	case 2:
		return strncasecmp(name, "te", 2) == 0;
	case 7:
		return strncasecmp(name, "upgrade", 7) == 0;
	case 10:
		return strncasecmp(name, "connection", 10) == 0 || strncasecmp(name, "keep-alive", 10) == 0;
	case 16:
		return strncasecmp(name, "proxy-connection", 16) == 0;
	case 18:
		return strncasecmp(name, "proxy-authenticate", 18) == 0;
	case 19:
		return strncasecmp(name, "proxy-authorization", 19) == 0;
	default:
		return false;
	}
}

/* Headers a client must not be able to forge: we set them. */
static bool http_forwarding_header(const char *name, size_t len)
{
	switch (len) {
	case 9:
		return strncasecmp(name, "forwarded", 9) == 0;
	case 15:
		return strncasecmp(name, "x-forwarded-for", 15) == 0;
	case 16:
		return strncasecmp(name, "x-forwarded-host", 16) == 0;
	case 17:
		return strncasecmp(name, "x-forwarded-proto", 17) == 0;
	default:
		return false;
	}
}

/* Heads are written in place into space reserved in the output: one piece,
 * no formatting. A head longer than the first estimate takes more space. */
struct http_put {
	struct evbuffer *buf;
	struct evbuffer_iovec v;
	char *p, *end;
	bool failed;                    /* out of memory: the rest is dropped, as evbuffer_add would */
};

static void http_put_open(struct http_put *o, struct evbuffer *buf, size_t want)
{
	o->buf = buf;
	o->failed = evbuffer_reserve_space(buf, (ev_ssize_t)want, &o->v, 1) < 1;
	o->p = o->failed ? NULL : o->v.iov_base;
	o->end = o->failed ? NULL : o->p + o->v.iov_len;
}

static void http_put_close(struct http_put *o)
{
	if (o->failed)
		return;
	o->v.iov_len = (size_t)(o->p - (char *)o->v.iov_base);
	evbuffer_commit_space(o->buf, &o->v, 1);
}

static void http_put(struct http_put *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if ((size_t)(o->end - o->p) < n) {
		http_put_close(o);
		http_put_open(o, o->buf, n > 4096 ? n : 4096);
		if (o->failed)
			return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define HTTP_PUT_LIT(o, lit) http_put((o), (lit), sizeof(lit) - 1)

static void http_put_str(struct http_put *o, const char *s)
{
	http_put(o, s, strlen(s));
}

/* Header lines pass as they came (the parser checked every byte of them), and
 * neighbours in one copy: a run is the bytes from its first header's name to
 * where the line after its last one starts. */
struct http_run {
	uint32_t from, to;              /* from == to: none */
};

static uint32_t http_line_end(const struct h1_msg *m, size_t i)
{
	return i + 1 < m->nheaders ? m->headers[i + 1].name.off : m->head_len - 2;
}

static void http_run_add(struct http_run *run, const struct h1_msg *m, size_t i)
{
	if (run->from == run->to)
		run->from = m->headers[i].name.off;
	run->to = http_line_end(m, i);
}

static void http_run_put(struct http_run *run, struct http_put *o, const char *head)
{
	http_put(o, head + run->from, run->to - run->from);
	run->from = run->to;
}

/* Writes the request head as the back end gets it: the client's request line and
 * end-to-end headers, Host kept (or rewritten by the route), forwarding headers set. */
static void http_write_request_head(struct http_session *s, const char *head)
{
	struct evbuffer *out = tstream_output(s->srv);
	const struct h1_msg *q = s->req;
	const struct rules_route *r = &s->svc->routes[s->rq.route];
	struct http_put o;
	/* The head as it came and what we add. */
	http_put_open(&o, out, q->head_len + q->upgrade_value.len + sizeof(s->rq.host) + 256 +
	                       (r->host_rewrite ? strlen(r->host_rewrite) : 0));
	/* The request line as it came: the version is the client's. An absolute-form target goes in
	 * origin form (its authority is Host), and normalize_path sends the path as it was matched. */
	struct http_run run = { q->method.off, q->nheaders ? q->headers[0].name.off : q->head_len - 2 };
	if (s->rq.target || q->path.off != q->target.off) {
		http_put(&o, head + q->method.off, q->method.len + 1);
		if (s->rq.target)
			http_put_str(&o, s->rq.target);
		else if (!q->path.len || head[q->path.off] != '/')
			HTTP_PUT_LIT(&o, "/");
		if (!s->rq.target)
			http_put(&o, head + q->path.off, q->path.len);
		run.from = q->target.off + q->target.len;
	}
	for (size_t i = 0; i < q->nheaders; i++) {
		const struct h1_header *h = &q->headers[i];
		const char *name = head + h->name.off;
		/* Windows authentication on this request: the server connection is this client's from now on. */
		if ((h->name.len == 13 || h->name.len == 19) && http_auth_header_binds(head, h, false))
			http_make_private(s);
		if (http_hop_by_hop(name, h->name.len) || http_forwarding_header(name, h->name.len) ||
		    h1_connection_lists(q, head, name, h->name.len) ||
		    (s->rq.plug && !plugin_header_kept(s->rq.plug, ONEGATE_REQUEST_HEADERS, name, h->name.len))) {
			http_run_put(&run, &o, head);
			continue;
		}
		if (r->host_rewrite && h->name.len == 4 && strncasecmp(name, "host", 4) == 0) {
			http_run_put(&run, &o, head);
			HTTP_PUT_LIT(&o, "Host: ");
			http_put_str(&o, r->host_rewrite);
			HTTP_PUT_LIT(&o, "\r\n");
			continue;
		}
		http_run_add(&run, q, i);
	}
	http_run_put(&run, &o, head);
	if (s->rq.plug) {
		http_put_close(&o);
		plugin_headers_write(s->rq.plug, ONEGATE_REQUEST_HEADERS, out);
		http_put_open(&o, out, sizeof(s->rq.host) + 256 + q->upgrade_value.len);
	}
	/* A client's own forwarding headers never pass; ours are added unless the route says not to. */
	if (r->forwarded) {
		bool v6 = strchr(s->client_ip, ':') != NULL;
		HTTP_PUT_LIT(&o, "X-Forwarded-For: ");
		http_put_str(&o, s->client_ip);
		if (s->tls)
			HTTP_PUT_LIT(&o, "\r\nX-Forwarded-Proto: https\r\n");
		else
			HTTP_PUT_LIT(&o, "\r\nX-Forwarded-Proto: http\r\n");
		if (s->rq.host[0]) {
			HTTP_PUT_LIT(&o, "X-Forwarded-Host: ");
			http_put(&o, s->rq.host, s->rq.host_len);
			HTTP_PUT_LIT(&o, "\r\n");
		}
		HTTP_PUT_LIT(&o, "Forwarded: for=");
		if (v6)
			HTTP_PUT_LIT(&o, "\"[");
		http_put_str(&o, s->client_ip);
		if (v6)
			HTTP_PUT_LIT(&o, "]\"");
		if (s->tls)
			HTTP_PUT_LIT(&o, ";proto=https\r\n");
		else
			HTTP_PUT_LIT(&o, ";proto=http\r\n");
	}
	if (s->rq.upgrade) {
		HTTP_PUT_LIT(&o, "Connection: Upgrade\r\nUpgrade: ");
		http_put(&o, head + q->upgrade_value.off, q->upgrade_value.len);
		HTTP_PUT_LIT(&o, "\r\n");
	} else if (q->minor == 0) {
		HTTP_PUT_LIT(&o, "Connection: close\r\n");
	}
	HTTP_PUT_LIT(&o, "\r\n");
	http_put_close(&o);
}

/* ---------------------------------------------------------------- retries */

/* RFC 9110 9.2.2: the methods whose intended effect is the same sent once or several times. */
static bool http_method_idempotent(const struct http_session *s)
{
	static const char *const idempotent[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
		if (strcmp(s->rq.method, idempotent[i]) == 0)
			return true;
	return false;
}

/* Decided as the request first goes out: whether it may go again should that server
 * fail it, and so whether what goes out is kept. An idempotent request may; another
 * only when the pool keeps bodies (retry_body), its body included. A body the pool
 * does not keep can be sent once only; an Upgrade, and a request on a private
 * connection (http_srv_private()), never go twice. */
static bool http_request_resendable(const struct http_session *s)
{
	const struct rules_pool *p = http_pool(s);
	if (!p->retries || s->rq.upgrade || http_srv_private(s) || (!http_method_idempotent(s) && !p->retry_body))
		return false;
	return s->rq.req_framing != HF_LENGTH || s->rq.req_left <= p->retry_body;
}

/* Whether the request may be tried again after this failure (asked while the failed
 * connection is still in s->srv): within the pool's retries, never once an answer
 * reached the client, never from a private connection, and, once it went out, only
 * with what went out still in hand (held or kept; a body that outgrew retry_body is
 * not) and, after a timeout, only for an idempotent request on a route that says so. */
static bool http_retry_allowed(const struct http_session *s, enum http_retry_cause why)
{
	if (s->rq.attempts > http_pool(s)->retries || s->rq.resp_head_done || s->rq.resp_forwarded || http_srv_private(s))
		return false;
	if (!s->rq.req_sent)
		return true;
	if (!s->rq.head_held && !s->rq.kept)
		return false;
	if (why == HR_TIMEOUT)
		return s->svc->routes[s->rq.route].retry_on_timeout && http_method_idempotent(s);
	return true;
}

/* Copies n bytes of from, starting off bytes in, to the end of to. */
static void http_copy_span(struct evbuffer *from, size_t off, size_t n, struct evbuffer *to)
{
	struct evbuffer_ptr at;
	size_t done = 0;
	while (done < n && evbuffer_ptr_set(from, &at, off + done, EVBUFFER_PTR_SET) == 0) {
		struct evbuffer_iovec v[8];
		int k = evbuffer_peek(from, (ev_ssize_t)(n - done), &at, v, 8);
		if (k <= 0)
			return;
		for (int i = 0; i < k && i < 8 && done < n; i++) {
			size_t len = v[i].iov_len < n - done ? v[i].iov_len : n - done;
			evbuffer_add(to, v[i].iov_base, len);
			done += len;
		}
	}
}

/* Nothing more is tried: the client hears of the last failure. A request no server took
 * (every connect failed) is no server's error. */
static void http_answer_failure(struct http_session *s)
{
	static const enum outcome outcome[] = { OUTCOME_NO_SERVER, OUTCOME_SERVER_CLOSED, OUTCOME_BACKEND_TIMEOUT };
	/* Its line may wait for the client to take the answer; the pool's budget does not. */
	http_resend_end(s);
	if (s->rq.fail_cause == HR_CONNECT)
		s->rq.server = -1;
	http_respond(s, s->rq.fail_cause == HR_TIMEOUT ? 504 : 502, NULL, outcome[s->rq.fail_cause], false);
}

static enum http_connect_result http_connect_server(struct http_session *s, long idx, bool reuse);

/* The server connection failed the request. A kept connection the server closed as
 * the request went out (nothing came back) is the server's right, not its failure:
 * the request goes again on a new connection to the same server. Any other failure
 * counts towards the server's passive fall, and the request goes to another server
 * when http_retry_allowed() says so and, if it had gone out, the pool's budget has
 * room; otherwise the client gets 502 (504 after a timeout). */
static void http_server_failed(struct http_session *s, enum http_retry_cause why, const char *what)
{
	const struct rules_pool *p = http_pool(s);
	long failed = s->rq.server;
	bool stale = why == HR_BROKEN && s->rq.srv_reused && s->srv && evbuffer_get_length(tstream_input(s->srv)) == 0;
	bool again = http_retry_allowed(s, why);
	if (stale) {
		log_msg(LOG_INFO, "pool %s server %s:%u: %s on a kept connection before the response head%s", p->name,
		        p->servers[failed].host, s->rq.port, what, again ? ": trying a new one" : "");
	} else {
		log_msg(LOG_WARN, "pool %s server %s:%u: %s%s", p->name, p->servers[failed].host, s->rq.port, what,
		        why == HR_BROKEN ? " before the response head" : "");
		pool_server_failed(s->snap->pools, (size_t)s->rq.pool, (size_t)failed, what);
	}
	http_drop_server(s);
	s->rq.fail_cause = why;
	if (!again) {
		http_answer_failure(s);
		return;
	}
	if (s->rq.req_sent && !stale && why != HR_CONNECT && !s->rq.resending) {
		if (!pool_retry_begin(s->snap->pools, (size_t)s->rq.pool)) {
			log_msg(LOG_WARN, "pool %s: retry budget spent (retry_budget = %u): a %s request is not sent again",
			        p->name, p->retry_budget, s->rq.method);
			http_answer_failure(s);
			return;
		}
		s->rq.resending = true;
	}
	s->rq.failed_server = failed;
	if (stale && pool_server_usable(s->snap->pools, (size_t)s->rq.pool, (size_t)failed) &&
	    http_connect_server(s, failed, false) == HC_STARTED)
		return;
	http_connect_next(s);
}

static void http_pump_request(struct http_session *s);
static void http_pump_response(struct http_session *s);
static void http_tunnel_move(struct http_session *s, struct relay_end *from);
static void http_tunnel_end(struct http_session *s, enum outcome end);
static void http_tunnel_linger(struct http_session *s);

static void http_srv_readable(struct tstream *t, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (s->phase == HP_TUNNEL) {
		if (!s->relay.closing)
			http_tunnel_move(s, &s->relay.srv);
	} else if (s->phase == HP_EXCHANGE)
		http_pump_response(s);
	else if (s->phase != HP_CLOSING)    /* an idle kept connection should say nothing; if it does, it is not reusable */
		http_drop_server(s);
}

static void http_srv_drained(struct tstream *t, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (s->phase == HP_TUNNEL) {
		if (s->relay.closing)
			http_tunnel_linger(s);
		else
			relay_drained(&s->relay, &s->relay.srv);
		return;
	}
	if (s->cli_paused && !s->cli_eof) {
		s->cli_paused = false;
		tstream_read_enable(s->cli, true);
	}
	if (s->phase == HP_CLOSING)
		http_linger_check(s);
}

/* The request head (and what body is already here) goes out once the server is there;
 * again, with the body kept, to the next server when the first failed it. */
static void http_start_exchange(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	bool replay = s->rq.req_sent && !s->rq.head_held;
	const char *head = (const char *)evbuffer_pullup(replay ? s->rq.kept : in, (ev_ssize_t)s->req->head_len);
	s->phase = HP_EXCHANGE;
	http_clock(&s->rq.srv_start);
	if (http_pool_private(http_pool(s)))
		http_make_private(s);
	http_write_request_head(s, head);
	if (replay) {
		http_copy_span(s->rq.kept, s->req->head_len, evbuffer_get_length(s->rq.kept) - s->req->head_len,
		               tstream_output(s->srv));
	} else if (!s->rq.req_sent) {
		s->rq.req_sent = true;
		/* What may go again is kept: a bodyless request's head stays where it is, in front of
		 * what the client pipelined; a head with a body is copied, the body follows as it goes. */
		if (http_request_resendable(s)) {
			if (s->rq.req_framing == HF_NONE)
				s->rq.head_held = true;
			else if ((s->rq.kept = evbuffer_new()))
				evbuffer_add(s->rq.kept, head, s->req->head_len);
		}
		if (!s->rq.head_held)
			evbuffer_drain(in, s->req->head_len);
	}
	tstream_set_low_mark(s->srv, HTTP_RELAY_MAX / 2);
	tstream_read_enable(s->srv, true);
	/* The body (and the client's EOF) may come now; the pump pauses reading if the server lags. */
	s->cli_paused = false;
	tstream_read_enable(s->cli, true);
	http_arm(s, http_timeout(s, true));
	http_pump_request(s);
}

static void http_srv_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (ev == TSTREAM_READY) {
		if (s->phase == HP_CONNECT)
			http_start_exchange(s);
		return;
	}
	if (s->phase == HP_CONNECT) {
		http_server_failed(s, HR_CONNECT, ev == TSTREAM_EOF ? "closed during connect" : tstream_error(s->srv));
		return;
	}
	if (s->phase == HP_TUNNEL) {
		if (s->relay.closing)
			http_tunnel_linger(s);
		else if (ev == TSTREAM_ERROR)
			http_tunnel_end(s, relay_reset(&s->relay, &s->relay.srv));
		else if (relay_ended(&s->relay, &s->relay.srv))
			http_tunnel_linger(s);
		return;
	}
	if (s->phase == HP_CLOSING) {
		if (ev == TSTREAM_ERROR)
			http_linger_check(s);
		return;
	}
	if (s->phase != HP_EXCHANGE) {
		http_drop_server(s);     /* a kept connection the server closed */
		return;
	}
	if (s->rq.resp_head_done && s->rq.resp_framing == HF_CLOSE && ev == TSTREAM_EOF) {
		s->rq.resp_done = true;
		http_close_request(s, OUTCOME_OK);
		return;
	}
	/* Cut off mid-exchange: before the head the request may go again, or we can say so; after it, only close. */
	if (!s->rq.resp_head_done) {
		http_server_failed(s, HR_BROKEN, ev == TSTREAM_EOF ? "closed" : tstream_error(s->srv));
		return;
	}
	http_close_request(s, OUTCOME_SERVER_CLOSED);
}

static SSL *http_backend_ssl(struct http_session *s)
{
	/* The server sees the name the client asked for unless the pool names one. */
	return tlsconf_pool_ssl(s->snap->tls, (size_t)s->rq.pool, http_backend_name(s, http_pool(s)));
}

/* A new server connection of a pool with proxy_protocol starts with the header of
 * the client connection that opens it, before any TLS to the back end. */
static int http_proxy_header(struct http_session *s, struct sock *sk)
{
	const struct rules_pool *p = http_pool(s);
	uint8_t hdr[PP_MAX_HEADER];
	const struct sockaddr *src = (const struct sockaddr *)&s->peer, *dst = (const struct sockaddr *)&s->local;
	int n;
	if (!s->locallen)
		return -1;
	if (p->proxy_protocol == 1) {
		n = pp_write_v1(src, dst, hdr, sizeof(hdr));
	} else {
		SSL *ssl = s->tls ? tstream_ssl(s->cli) : NULL;
		char alpn[64] = "";
		if (ssl) {
			const uint8_t *proto = NULL;
			unsigned len = 0;
			SSL_get0_alpn_selected(ssl, &proto, &len);
			if (proto)
				http_copy(alpn, sizeof(alpn), (const char *)proto, len);
		}
		struct pp_tlvs t = { alpn, s->sni, ssl ? SSL_get_version(ssl) : NULL };
		n = pp_write_v2_tlvs(src, dst, &t, hdr, sizeof(hdr));
	}
	if (n < 0)
		return -1;
	return evbuffer_add(sock_output(sk), hdr, (size_t)n);
}

/* Gives the request a connection to server idx: one it kept open when reuse allows,
 * else a new one. */
static enum http_connect_result http_connect_server(struct http_session *s, long idx, bool reuse)
{
	const struct rules_pool *p = http_pool(s);
	const struct rules_server *sv = &p->servers[idx];
	unsigned port = s->svc->routes[s->rq.route].port ? s->svc->routes[s->rq.route].port : sv->port;
	if (s->rq.failed_server >= 0) {
		pool_server_retried(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.failed_server);
		s->rq.failed_server = -1;
	}
	http_drop_server(s);
	s->rq.attempts++;
	s->rq.server = idx;
	s->rq.port = port;
	s->rq.srv_reused = false;
	pool_conn_begin(s->snap->pools, (size_t)s->rq.pool, (size_t)idx);
	s->rq.counted = true;
	if (reuse && (s->srv = http_take_idle(s, idx, port))) {
		s->rq.srv_reused = true;
		tstream_setcb(s->srv, http_srv_readable, http_srv_drained, http_srv_event, s);
		http_start_exchange(s);
		return HC_STARTED;
	}
	struct sockaddr_storage to = sv->addr.ss;
	addr_set_port(&to, (uint16_t)port);
	struct sock *sk = sock_connect(s->home->base, (const struct sockaddr *)&to, sv->addr.len,
	                               (const struct sockaddr *)&p->source.ss, p->source.len);
	if (!sk) {
		log_msg(LOG_WARN, "pool %s server %s:%u: connect failed: %s", p->name, sv->host, port, strerror(errno));
		pool_server_failed(s->snap->pools, (size_t)s->rq.pool, (size_t)idx, strerror(errno));
		http_server_release(s);
		s->rq.failed_server = idx;
		s->rq.fail_cause = HR_CONNECT;
		return HC_NEXT;
	}
	if (p->proxy_protocol && http_proxy_header(s, sk) != 0) {
		sock_free(sk);
		log_msg(LOG_WARN, "pool %s: cannot write a PROXY header for client %s", p->name, s->client);
		http_server_release(s);
		return HC_STOP;
	}
	SSL *ssl = NULL;
	if (p->tls.on && !(ssl = http_backend_ssl(s))) {
		sock_free(sk);
		log_msg(LOG_WARN, "pool %s: cannot start TLS to the back end", p->name);
		http_server_release(s);
		return HC_NEXT;
	}
	s->srv = tstream_new(sk, ssl);
	if (!s->srv) {
		http_server_release(s);
		return HC_NEXT;
	}
	tstream_setcb(s->srv, http_srv_readable, http_srv_drained, http_srv_event, s);
	tstream_set_read_max(s->srv, HTTP_HEAD_MAX + HTTP_RELAY_MAX);
	s->phase = HP_CONNECT;
	http_arm(s, p->connect_timeout_ms);
	return HC_STARTED;
}

/* Tries the pool's servers in the algorithm's order from the request's pick, each once,
 * within the pool's retries. */
static void http_connect_next(struct http_session *s)
{
	const struct rules_pool *p = http_pool(s);
	while (s->rq.attempts <= p->retries) {
		struct pool_pick pk = { .client = (const struct sockaddr *)&s->peer, .preferred = s->rq.cookie_server,
		                        .exclude = s->rq.tried, .nexclude = s->rq.ntried };
		long idx = pool_pick_server(s->snap->pools, s->snap->cursor, (size_t)s->rq.pool, &pk);
		if (idx < 0)
			break;
		s->rq.tried[s->rq.ntried++] = idx;
		enum http_connect_result rc = http_connect_server(s, idx, true);
		if (rc == HC_STARTED)
			return;
		if (rc == HC_STOP)
			break;
	}
	/* Every server tried failed (502, or 504 after a timeout), or none may take anything (503):
	 * then the request went nowhere and the connection may stay when no body is left to read past. */
	if (s->rq.attempts) {
		http_answer_failure(s);
		return;
	}
	s->rq.server = -1;
	http_respond(s, 503, NULL, OUTCOME_NO_SERVER, !s->req->chunked && s->req->content_length == 0);
}

/* ---------------------------------------------------------------- bodies */

/* Moves up to n bytes of body from one side to the other; returns what moved. */
static size_t http_move(struct evbuffer *from, struct evbuffer *to, size_t n)
{
	size_t have = evbuffer_get_length(from);
	if (n > have)
		n = have;
	if (n)
		evbuffer_remove_buffer(from, to, n);
	return n;
}

/* How many of the bytes at the front of buf belong to a chunked body, feeding the decoder. */
static enum h1_result http_chunked_span(struct h1_chunked *ck, struct evbuffer *buf, size_t *take)
{
	struct evbuffer_iovec v[16];
	int n = evbuffer_peek(buf, -1, NULL, v, 16);
	*take = 0;
	for (int i = 0; i < n && i < 16; i++) {
		size_t used = 0;
		enum h1_result rc = h1_chunked_feed(ck, v[i].iov_base, v[i].iov_len, &used);
		*take += used;
		if (rc != H1_NEED_MORE)
			return rc;
	}
	return H1_NEED_MORE;
}

/* Moves up to n bytes of request body to the server. A request that may go again keeps
 * a copy of them, until its body outgrows the pool's retry_body: then it goes once only. */
static size_t http_body_move(struct http_session *s, struct evbuffer *in, struct evbuffer *out, size_t n)
{
	size_t have = evbuffer_get_length(in);
	if (n > have)
		n = have;
	if (s->rq.kept && n) {
		if (evbuffer_get_length(s->rq.kept) - s->req->head_len + n > http_pool(s)->retry_body) {
			evbuffer_free(s->rq.kept);
			s->rq.kept = NULL;
		} else {
			http_copy_span(in, 0, n, s->rq.kept);
		}
	}
	return http_move(in, out, n);
}

static void http_exchange_end(struct http_session *s);

static void http_pump_request(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	struct evbuffer *out = tstream_output(s->srv);
	if (!s->rq.req_done) {
		size_t moved = 0;
		if (s->rq.req_framing == HF_LENGTH) {
			moved = http_body_move(s, in, out, s->rq.req_left > SIZE_MAX ? SIZE_MAX : (size_t)s->rq.req_left);
			s->rq.req_left -= moved;
			s->rq.req_done = s->rq.req_left == 0;
		} else if (s->rq.req_framing == HF_CHUNKED) {
			size_t take;
			int rc = http_chunked_span(&s->rq.req_chunks, in, &take);
			moved = http_body_move(s, in, out, take);
			if (rc == H1_DONE) {
				s->rq.req_done = true;
			} else if (rc != H1_NEED_MORE) {
				http_drop_server(s);
				http_respond(s, 400, NULL, OUTCOME_BAD_CHUNKED_BODY, false);
				return;
			}
		} else {
			s->rq.req_done = true;
		}
		s->rq.bytes_in += moved;
	}
	if (tstream_flush(s->srv) != 0) {
		if (!s->rq.resp_head_done) {
			http_server_failed(s, HR_BROKEN, tstream_error(s->srv));
			return;
		}
		http_close_request(s, OUTCOME_SERVER_CLOSED);
		return;
	}
	if (tstream_unsent(s->srv) >= HTTP_RELAY_MAX) {
		s->cli_paused = true;
		tstream_read_enable(s->cli, false);
	} else if (!s->rq.req_done) {
		tstream_read_enable(s->cli, true);     /* the input was taken: reading goes on */
	}
	if (s->rq.req_done && s->rq.resp_done)
		http_exchange_end(s);
}

static void http_write_response_head(struct http_session *s, const char *head)
{
	struct evbuffer *out = tstream_output(s->cli);
	const struct h1_msg *r = s->resp;
	if (s->rq.plug)
		plugin_on_response(s->rq.plug, s->rq.status, head, r);
	struct http_put o;
	http_put_open(&o, out, r->head_len + 32);
	/* HTTP/1.1 whatever the server's version: the rest of the line as it came. */
	HTTP_PUT_LIT(&o, "HTTP/1.1 ");
	struct http_run run = { r->status_rest.off, r->nheaders ? r->headers[0].name.off : r->head_len - 2 };
	/* A challenge to NTLM or Negotiate: the handshake's next legs and the session it
	 * opens belong to this server connection, so only this client may use it. */
	for (size_t i = 0; (s->rq.status == 401 || s->rq.status == 407) && i < r->nheaders; i++)
		if (http_auth_header_binds(head, &r->headers[i], true))
			http_make_private(s);
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct h1_header *h = &r->headers[i];
		const char *name = head + h->name.off;
		bool upgrade = s->rq.status == 101 && h->name.len == 7 && strncasecmp(name, "upgrade", 7) == 0;
		if (!upgrade && (http_hop_by_hop(name, h->name.len) || h1_connection_lists(r, head, name, h->name.len) ||
		                 (s->rq.plug && !plugin_header_kept(s->rq.plug, ONEGATE_RESPONSE_HEADERS, name, h->name.len)))) {
			http_run_put(&run, &o, head);
			continue;
		}
		http_run_add(&run, r, i);
	}
	http_run_put(&run, &o, head);
	http_put_close(&o);
	if (s->rq.plug)
		plugin_headers_write(s->rq.plug, ONEGATE_RESPONSE_HEADERS, out);
	http_cookie_set(s, out);
	if (s->rq.status == 101)
		evbuffer_add(out, "Connection: Upgrade\r\n\r\n", 23);
	else if (!s->rq.keepalive)
		evbuffer_add(out, "Connection: close\r\n\r\n", 21);
	else
		evbuffer_add(out, "\r\n", 2);
}

/* Reads the response head; returns false when the session went on elsewhere. */
static bool http_read_response_head(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->srv);
	size_t len = evbuffer_get_length(in);
	size_t take = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
	enum h1_result rc = h1_parse(s->resp, head, take);
	if (rc == H1_NEED_MORE) {
		if (take < HTTP_HEAD_MAX)
			return false;
		rc = H1_ERR_TOO_LARGE;
	}
	if (rc != H1_DONE) {
		const struct rules_pool *p = http_pool(s);
		log_msg(LOG_WARN, "pool %s server %s:%u: bad response head: %s", p->name, p->servers[s->rq.server].host,
		        s->rq.port, h1_error_text(s->resp, rc));
		http_drop_server(s);
		http_respond(s, 502, NULL, OUTCOME_BAD_RESPONSE, false);
		return false;
	}
	s->rq.status = s->resp->status;
	if (s->rq.status >= 100 && s->rq.status < 200 && s->rq.status != 101) {
		/* 100 Continue and friends pass through as they are; the real answer follows. */
		evbuffer_remove_buffer(in, tstream_output(s->cli), s->resp->head_len);
		s->rq.resp_forwarded = true;
		h1_resp_init(s->resp, HTTP_HEAD_MAX, s->rq.head_request);
		return true;
	}
	if (s->rq.status == 101 && !s->rq.upgrade) {
		http_drop_server(s);
		http_respond(s, 502, NULL, OUTCOME_BAD_UPGRADE, false);
		return false;
	}
	s->rq.resp_head_done = true;
	http_resend_end(s);
	pool_server_succeeded(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server);
	if (s->rq.status == 101)
		s->rq.resp_framing = HF_NONE;
	else if (s->resp->no_body)
		s->rq.resp_framing = HF_NONE;
	else if (s->resp->chunked)
		s->rq.resp_framing = HF_CHUNKED;
	else if (s->resp->has_content_length)
		s->rq.resp_framing = HF_LENGTH;
	else
		s->rq.resp_framing = HF_CLOSE;
	s->rq.resp_left = s->resp->content_length;
	h1_chunked_init(&s->rq.resp_chunks);
	s->rq.srv_reusable = s->resp->keepalive && s->rq.status != 101;
	/* A body that ends when the server closes cannot be framed for a client that stays. */
	if (s->rq.resp_framing == HF_CLOSE)
		s->rq.keepalive = false;
	http_write_response_head(s, head);
	evbuffer_drain(in, s->resp->head_len);
	/* Long polls (Exchange ActiveSync, Skype push) may now stay quiet for the route's idle time. */
	http_arm(s, http_timeout(s, false));
	if (s->rq.status == 101) {
		/* From here the session is a relay (relay.h), its rules those of a passthrough connection. */
		s->phase = HP_TUNNEL;
		s->relay = (struct relay){ .cli = { .ts = s->cli, .count = &s->rq.bytes_in, .eof = s->cli_eof },
		                           .srv = { .ts = s->srv, .count = &s->rq.bytes_out },
		                           .max = HTTP_RELAY_MAX, .stall_ms = s->svc->send_timeout_ms };
		relay_start(&s->relay);
		http_tunnel_move(s, &s->relay.cli);
		if (s->phase == HP_TUNNEL && !s->relay.closing)
			http_tunnel_move(s, &s->relay.srv);
		return false;
	}
	return true;
}

static void http_pump_response(struct http_session *s)
{
	while (!s->rq.resp_head_done)
		if (!http_read_response_head(s))
			return;
	struct evbuffer *in = tstream_input(s->srv);
	struct evbuffer *out = tstream_output(s->cli);
	size_t moved = 0;
	switch (s->rq.resp_framing) {
	case HF_NONE:
		s->rq.resp_done = true;
		break;
	case HF_LENGTH:
		moved = http_move(in, out, s->rq.resp_left > SIZE_MAX ? SIZE_MAX : (size_t)s->rq.resp_left);
		s->rq.resp_left -= moved;
		s->rq.resp_done = s->rq.resp_left == 0;
		break;
	case HF_CHUNKED: {
		size_t take;
		int rc = http_chunked_span(&s->rq.resp_chunks, in, &take);
		moved = http_move(in, out, take);
		if (rc == H1_DONE)
			s->rq.resp_done = true;
		else if (rc != H1_NEED_MORE) {
			s->rq.bytes_out += moved;
			http_close_request(s, OUTCOME_BAD_RESPONSE_BODY);
			return;
		}
		break;
	}
	case HF_CLOSE:
		moved = http_move(in, out, SIZE_MAX);
		break;
	}
	s->rq.bytes_out += moved;
	if (moved)
		http_arm(s, http_timeout(s, false));
	if (tstream_flush(s->cli) != 0) {
		http_access_log(s, OUTCOME_CLIENT_RESET);
		http_free(s, OUTCOME_CLIENT_RESET);
		return;
	}
	if (tstream_unsent(s->cli) >= HTTP_RELAY_MAX) {
		s->srv_paused = true;
		tstream_read_enable(s->srv, false);
	} else if (!s->rq.resp_done && s->srv) {
		tstream_read_enable(s->srv, true);
	}
	if (s->rq.resp_done && !s->rq.req_done && !s->cli_paused) {
		/* The server answered before the whole body arrived (an error, say): what is left
		 * of the body cannot be told from the next request, so this connection ends. */
		s->rq.keepalive = false;
		s->rq.req_done = true;
		http_drop_server(s);
	}
	if (s->rq.resp_done && s->rq.req_done)
		http_exchange_end(s);
}

/* A tunnel that broke: the request's line and the connection's say how. */
static void http_tunnel_end(struct http_session *s, enum outcome end)
{
	http_access_log(s, end);
	http_free(s, end);
}

static void http_tunnel_move(struct http_session *s, struct relay_end *from)
{
	size_t n;
	enum outcome end;
	bool going = relay_move(&s->relay, from, &n, &end);
	http_arm(s, http_timeout(s, false));
	if (!going)
		http_tunnel_end(s, end);
}

/* Both sides of the tunnel ended: it lasts until each has taken what the other sent. */
static void http_tunnel_linger(struct http_session *s)
{
	unsigned next;
	enum outcome end;
	if (!relay_linger(&s->relay, &next, &end)) {
		http_free(s, end);
		return;
	}
	s->timer_at = 0;        /* the linger's looks are nearer than any deadline set before */
	event_del(s->timer);
	http_arm(s, next);
}

static void http_exchange_end(struct http_session *s)
{
	http_disarm(s);
	if (!s->rq.keepalive) {
		http_park_server(s);
		http_close_request(s, OUTCOME_OK);
		return;
	}
	http_access_log(s, OUTCOME_OK);
	http_park_server(s);
	s->phase = HP_HEAD;
	if (s->cli_paused) {
		s->cli_paused = false;
		tstream_read_enable(s->cli, true);
	}
	http_read_request(s);
}

/* ---------------------------------------------------------------- persistence cookie */

/* Set on every response to a request that came without the cookie (or named a server
 * it could not have); the cookie itself is pool.c's. */
static void http_cookie_set(struct http_session *s, struct evbuffer *out)
{
	const struct rules_pool *p = http_pool(s);
	if (p->balance != RULES_BALANCE_COOKIE || s->rq.server < 0 || s->rq.cookie_server == s->rq.server)
		return;
	char line[4096];
	size_t n = pool_cookie_header(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server, line, sizeof(line));
	if (n)
		evbuffer_add(out, line, n);
}

/* ---------------------------------------------------------------- requests */

/* normalize_path: the resolved path, escaped where a byte is not plain in a path, and the query as sent. */
static char *http_normalized_target(const char *rpath, size_t rlen, const char *path, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *query = memchr(path, '?', len);
	size_t qlen = query ? len - (size_t)(query - path) : 0;
	char *t = malloc(rlen * 3 + qlen + 1), *o = t;
	if (!t)
		return NULL;
	for (size_t i = 0; i < rlen; i++) {
		unsigned char c = (unsigned char)rpath[i];
		bool plain = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
		             (c && strchr("/-._~!$&'()*+,=@", c));
		if (plain) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	if (query)
		memcpy(o, query, qlen);
	o[qlen] = '\0';
	return t;
}

static void http_route_resolved(struct http_session *s, const char *head, char *rpath)
{
	const struct h1_msg *q = s->req;
	const char *path = head + q->path.off;
	/* Our own answers keep the connection only when no body is left to read past. */
	bool body = q->chunked || q->content_length > 0;
	/* ACME HTTP-01 for a certificate this gateway is obtaining: ahead of every route. */
	char keyauth[256];
	if (!s->tls && acme_http01_answer(path, q->path.len, keyauth, sizeof(keyauth)) >= 0) {
		http_respond_text(s, 200, NULL, keyauth, OUTCOME_ACME_CHALLENGE, !body);
		return;
	}
	/* A Host another certificate of this service serves came on a connection meant for another site. */
	if (s->tls && !tlsconf_host_fits(s->snap->tls, (size_t)(s->svc - s->snap->cfg->services), s->sni,
	                                 strlen(s->sni), s->rq.host, s->rq.host_len)) {
		http_respond(s, 421, NULL, OUTCOME_MISDIRECTED, !body);
		return;
	}
	size_t rlen;
	const char *bad;
	s->rq.route = rules_route_request(s->svc, s->rq.host, s->rq.host_len, path, q->path.len, s->sni[0] ? s->sni : NULL,
	                               strlen(s->sni), rpath, q->path.len + 2, &rlen, &bad);
	if (s->rq.route == RULES_ROUTE_BAD_PATH) {
		/* Never guessed, and never handed to a less specific route. */
		log_msg(LOG_DEBUG, "client %s: bad path: %s", s->client, bad);
		http_respond(s, 400, NULL, OUTCOME_BAD_PATH, !body);
		return;
	}
	if (s->rq.route < 0) {
		/* Never forwarded anywhere the rule file did not say. */
		int st = s->svc->mode == RULES_MODE_TLS ? 421 : 404;
		http_respond(s, st, NULL, OUTCOME_NO_ROUTE, !body);
		return;
	}
	const struct rules_route *r = &s->svc->routes[s->rq.route];
	/* Before the redirect or status: a filter guards those too. */
	if (r->nplugins) {
		const char *why = NULL;
		struct plugin_view v = { &s->peer, s->tls, head, q, s->rq.host, rpath, rlen };
		int st = plugin_on_request(s->snap->cfg, r, &v, &s->rq.plug, &why);
		if (st) {
			s->rq.answered_by = why;
			http_respond(s, st, NULL, why ? OUTCOME_PLUGIN : OUTCOME_NO_MEMORY, !body);
			return;
		}
	}
	if (r->redirect) {
		char loc[600];
		int code = r->status ? r->status : 301;
		if (strcmp(r->redirect, "https") == 0)
			snprintf(loc, sizeof(loc), "Location: https://%s%.*s\r\n", s->rq.host, (int)q->path.len, path);
		else
			snprintf(loc, sizeof(loc), "Location: %s%.*s\r\n", r->redirect, (int)q->path.len, path);
		if (!s->rq.host[0] && strcmp(r->redirect, "https") == 0) {
			http_respond(s, 400, NULL, OUTCOME_REDIRECT_WITHOUT_HOST, false);
			return;
		}
		http_respond(s, code, loc, OUTCOME_REDIRECT, !body);
		return;
	}
	if (r->pool < 0) {
		http_respond(s, r->status, NULL, OUTCOME_STATUS, !body);
		return;
	}
	bool asterisk = q->path.off == q->target.off && !q->path.len;
	if (r->normalize_path && !asterisk && !(s->rq.target = http_normalized_target(rpath, rlen, path, q->path.len))) {
		http_respond(s, 503, NULL, OUTCOME_NO_MEMORY, false);
		return;
	}
	s->rq.pool = r->pool;
	const struct rules_pool *p = http_pool(s);
	/* Requests are balanced one by one (Skype for Business mobile clients expect it),
	 * unless the pool keeps a client on its server with a cookie. */
	s->rq.cookie_server = p->balance == RULES_BALANCE_COOKIE
	                           ? pool_cookie_find(s->snap->pools, (size_t)s->rq.pool, head, s->req) : -1;
	tstream_read_enable(s->cli, false);
	if (http_take_private(s)) {
		s->rq.attempts = 1;
		tstream_setcb(s->srv, http_srv_readable, http_srv_drained, http_srv_event, s);
		http_start_exchange(s);
		return;
	}
	http_connect_next(s);
}

/* The resolved path lives while the request is routed: on the stack unless it is long. */
static void http_route_request(struct http_session *s, const char *head)
{
	char small[512];
	size_t need = s->req->path.len + 2;
	char *rpath = need <= sizeof(small) ? small : malloc(need);
	if (!rpath) {
		http_respond(s, 503, NULL, OUTCOME_NO_MEMORY, false);
		return;
	}
	http_route_resolved(s, head, rpath);
	if (rpath != small)
		free(rpath);
}

static int http_request_reset(struct http_session *s)
{
	if (!s->msgs && !(s->msgs = malloc(sizeof(*s->msgs))))
		return -1;
	s->req = &s->msgs->req;
	s->resp = &s->msgs->resp;
	h1_req_init(s->req, HTTP_HEAD_MAX);
	/* What the request before owned; the rest of it the last access line closed. */
	plugin_req_free(s->rq.plug);
	free(s->rq.target);
	s->rq = http_request_none;
	return 0;
}

/* Reads (the rest of) a request head from what the client sent. */
static void http_read_request(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	size_t len = evbuffer_get_length(in);
	if (len == 0) {
		if (s->cli_eof) {
			http_free(s, OUTCOME_OK);
			return;
		}
		if (!s->req_started) {
			free(s->msgs);
			s->msgs = NULL;
			s->req = s->resp = NULL;
		}
		http_arm(s, s->requests ? s->svc->keepalive_timeout_ms : s->svc->header_timeout_ms);
		tstream_read_enable(s->cli, true);
		return;
	}
	if (!s->req_started) {
		if (http_request_reset(s) != 0) {
			http_free(s, OUTCOME_NO_MEMORY);
			return;
		}
		s->req_started = true;
		http_clock(&s->rq.req_start);
		http_arm(s, s->svc->header_timeout_ms);
	}
	size_t take = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
	enum h1_result rc = h1_parse(s->req, head, take);
	if (rc == H1_NEED_MORE) {
		if (take >= HTTP_HEAD_MAX)
			rc = H1_ERR_TOO_LARGE;
		else if (s->cli_eof) {
			http_free(s, OUTCOME_CLIENT_CLOSED);
			return;
		} else {
			tstream_read_enable(s->cli, true);
			return;
		}
	}
	s->req_started = false;
	s->requests++;
	const struct h1_msg *q = s->req;
	if (rc != H1_DONE) {
		snprintf(s->rq.method, sizeof(s->rq.method), "-");
		log_msg(LOG_DEBUG, "client %s: bad request: %s", s->client, h1_error_text(s->req, rc));
		http_respond(s, h1_error_status(rc), NULL, OUTCOME_BAD_REQUEST, false);
		return;
	}
	http_copy(s->rq.method, sizeof(s->rq.method), head + q->method.off, q->method.len);
	http_copy(s->rq.path, sizeof(s->rq.path), head + q->path.off, q->path.len);
	s->rq.head_request = q->method.len == 4 && memcmp(head + q->method.off, "HEAD", 4) == 0;
	s->rq.keepalive = q->keepalive;
	h1_resp_init(s->resp, HTTP_HEAD_MAX, s->rq.head_request);
	s->rq.upgrade = q->upgrade;
	if (q->has_host) {
		uint16_t port;
		if (h1_host_normalize(head + q->host.off, q->host.len, s->rq.host, sizeof(s->rq.host), &port) < 0) {
			http_respond(s, 400, NULL, OUTCOME_BAD_HOST, false);
			return;
		}
		s->rq.host_len = strlen(s->rq.host);
	}
	s->rq.req_framing = q->chunked ? HF_CHUNKED : q->has_content_length && q->content_length ? HF_LENGTH : HF_NONE;
	s->rq.req_left = q->content_length;
	http_route_request(s, head);
}

/* ---------------------------------------------------------------- client events */

static void http_cli_readable(struct tstream *t, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	switch (s->phase) {
	case HP_HEAD:
		http_read_request(s);
		return;
	case HP_EXCHANGE:
		http_pump_request(s);
		return;
	case HP_TUNNEL:
		if (!s->relay.closing)
			http_tunnel_move(s, &s->relay.cli);
		return;
	case HP_CONNECT:
	case HP_CLOSING:
		return;
	}
}

static void http_cli_drained(struct tstream *t, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (s->phase == HP_CLOSING) {
		http_linger_check(s);
		return;
	}
	if (s->phase == HP_TUNNEL) {
		if (s->relay.closing)
			http_tunnel_linger(s);
		else
			relay_drained(&s->relay, &s->relay.cli);
		return;
	}
	if (s->srv_paused && s->srv) {
		s->srv_paused = false;
		tstream_read_enable(s->srv, true);
	}
}

static void http_cli_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (ev == TSTREAM_READY) {
		s->handshaken = true;
		http_read_request(s);
		return;
	}
	s->cli_eof = true;
	switch (s->phase) {
	case HP_HEAD:
		if (ev == TSTREAM_EOF && evbuffer_get_length(tstream_input(s->cli)) > 0)
			return;         /* the head is complete or not; http_read_request decides */
		http_free(s, ev == TSTREAM_EOF ? OUTCOME_OK : OUTCOME_CLIENT_ERROR);
		return;
	case HP_TUNNEL:
		/* The server may still be sending (paused while the client is slow to read). */
		if (s->relay.closing)
			http_tunnel_linger(s);
		else if (ev == TSTREAM_ERROR)
			http_tunnel_end(s, relay_reset(&s->relay, &s->relay.cli));
		else if (relay_ended(&s->relay, &s->relay.cli))
			http_tunnel_linger(s);
		return;
	case HP_CLOSING:
		/* A client that half-closes may still be reading; a reset is checked for. */
		if (ev == TSTREAM_ERROR)
			http_linger_check(s);
		return;
	default:
		/* A client that half-closes after its request still gets the answer;
		 * one whose request is not complete is gone. */
		if (ev == TSTREAM_EOF && s->rq.req_done)
			return;
		http_access_log(s, OUTCOME_CLIENT_CLOSED);
		http_free(s, OUTCOME_CLIENT_CLOSED);
		return;
	}
}

static void http_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_session *s = arg;
	(void)fd;
	(void)what;
	s->timer_at = 0;
	if (!s->deadline)
		return;
	uint64_t now = http_now_ms();
	if (now < s->deadline) {
		http_timer_set(s, now, s->deadline - now);
		return;
	}
	s->deadline = 0;
	switch (s->phase) {
	case HP_HEAD:
		if (evbuffer_get_length(tstream_input(s->cli)) == 0) {
			http_free(s, s->handshaken ? OUTCOME_KEEPALIVE_TIMEOUT : OUTCOME_HANDSHAKE_TIMEOUT);
			return;
		}
		http_respond(s, 408, NULL, OUTCOME_HEADER_TIMEOUT, false);
		return;
	case HP_CONNECT:
		http_server_failed(s, HR_CONNECT, "connect timed out");
		return;
	case HP_EXCHANGE:
		if (!s->rq.resp_head_done) {
			http_server_failed(s, HR_TIMEOUT, "no answer in time");
			return;
		}
		http_close_request(s, OUTCOME_IDLE_TIMEOUT);
		return;
	case HP_TUNNEL:
		if (s->relay.closing) {
			http_tunnel_linger(s);
			return;
		}
		http_access_log(s, OUTCOME_IDLE_TIMEOUT);
		http_free(s, OUTCOME_IDLE_TIMEOUT);
		return;
	case HP_CLOSING:
		http_linger_check(s);
		return;
	}
}

/* ---------------------------------------------------------------- start */

void http_session_start(const struct http_start *st)
{
	struct http_session *s = calloc(1, sizeof(*s));
	if (!s) {
		sock_free(st->cli);
		SSL_free(st->ssl);
		return;
	}
	s->home = st->home;
	s->snap = st->snap;
	s->snap->refs++;
	s->svc = st->svc;
	pool_service_open(s->snap->pools, http_service_index(s), 1);
	s->tls = st->ssl != NULL;
	s->handshaken = !s->tls;
	s->rq = http_request_none;
	addr_text(st->peer, st->peerlen, s->client, sizeof(s->client), s->client_ip, sizeof(s->client_ip));
	memcpy(&s->peer, st->peer, st->peerlen < sizeof(s->peer) ? st->peerlen : sizeof(s->peer));
	if (st->local && st->locallen && st->locallen <= sizeof(s->local)) {
		memcpy(&s->local, st->local, st->locallen);
		s->locallen = st->locallen;
	}
	if (st->sni)
		snprintf(s->sni, sizeof(s->sni), "%s", st->sni);
	http_clock(&s->start);
	s->rq.req_start = s->start;
	s->link.close_now = http_close_now;
	home_live_add(s->home, &s->link);
	s->timer = evtimer_new(s->home->base, http_timer, s);
	s->cli = tstream_new(st->cli, st->ssl);
	if (!s->timer || !s->cli) {
		http_free(s, OUTCOME_NO_MEMORY);
		return;
	}
	tstream_setcb(s->cli, http_cli_readable, http_cli_drained, http_cli_event, s);
	tstream_set_read_max(s->cli, HTTP_HEAD_MAX + HTTP_RELAY_MAX);
	tstream_set_low_mark(s->cli, HTTP_RELAY_MAX / 2);
	http_arm(s, s->tls ? s->svc->hello_timeout_ms : s->svc->header_timeout_ms);
	tstream_start(s->cli);
}
