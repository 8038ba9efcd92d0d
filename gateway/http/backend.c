#include "http/backend.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "acme/acme.h"
#include "io/addr.h"
#include "io/keep.h"
#include "http/http.h"
#include "http/body.h"
#include "http/h2session.h"
#include "http/head.h"
#include "io/log.h"
#include "proxy/plugin.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "proxy/tlsconf.h"
#include "io/tstream.h"

/* Per worker, connections a server kept open after an exchange wait here for the
 * next request to the same server (same rules snapshot, pool, server, port and,
 * with TLS, the same server name). Nothing is shared between workers. */
#define HTTP_IDLE_MAX 512

#define HTTP_IDLE_MS 30000

static enum http_connect_result http_connect_server(struct http_session *s, long idx, bool reuse);

void http_private_free(struct http_session *s)
{
	if (!s->priv)
		return;
	tstream_free(s->priv->t);
	free(s->priv);
	s->priv = NULL;
}

/* The server's active count covers a request from its connect (or reuse) to its end. */
static void http_server_release(struct http_session *s)
{
	if (!s->rq.counted)
		return;
	s->rq.counted = false;
	pool_conn_end(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server);
}

void http_drop_server(struct http_session *s)
{
	http_server_release(s);
	tstream_free(s->srv);
	s->srv = NULL;
	s->srv_private = false;
}

/* From now on until it closes: a connection does not become shared again. */
void http_make_private(struct http_session *s)
{
	s->srv_private = true;
	s->rq.req_private = true;
	if (s->h2)
		h2s_private_hold(s->h2, s, s->rq.pool);
}

/* A pool whose server connections are never shared: each is private from its connect.
 * A PROXY header names the client that opened the connection, so it is one of them. */
bool http_pool_private(const struct rules_pool *p)
{
	return !p->share_connections || p->proxy_protocol;
}

struct http_idle {
	struct home_link link;          /* first: a link is its entry; in home->idle */
	struct home *home;
	struct tstream *t;
	struct rules_config *cfg;       /* a reference: a freed snapshot's address could come back */
	uint64_t until;                 /* http_now_ms() when it is closed */
	long pool, server;
	unsigned port;
	struct http_idle *bnext, **bprev;       /* in its bucket of http_idle_buckets */
	void *spare_next;               /* kept after its end (http_idle_spares) */
	char name[256];                 /* the TLS server name it was opened for, or "" */
};

/* The thread's idle connections (each thread has one home) by what they reach, so
 * that a take looks at those to its server and not at every idle connection: in
 * scenario 10 (HTTP/2 streams to three pools, parked in bursts) the whole list was
 * walked past some 100 others per request. */
#define HTTP_IDLE_BUCKETS 64
static _Thread_local struct http_idle *http_idle_buckets[HTTP_IDLE_BUCKETS];

static struct http_idle **http_idle_bucket(const struct rules_config *cfg, long pool, long server, unsigned port)
{
	uint64_t h = ((uint64_t)(uintptr_t)cfg >> 4) ^ (uint64_t)pool << 40 ^ (uint64_t)server << 20 ^ port;
	h *= 0x9E3779B97F4A7C15ULL;
	return &http_idle_buckets[h >> 58];
}

/* Ended entries, kept per thread for the next parks (io/keep.h): a request parks
 * one and the next takes one, and glibc is slow at this size. HTTP/2 streams park
 * and take in bursts of hundreds, so as many are kept as the idle list holds. */
static const struct keep_kind http_idle_kind = {
	.max = HTTP_IDLE_MAX, .link = offsetof(struct http_idle, spare_next), .free = free,
};
static _Thread_local struct keep_list http_idle_spares = { .kind = &http_idle_kind };

static struct http_idle *http_idle_new(void)
{
	struct http_idle *i = keep_take(&http_idle_spares);
	return i ? i : malloc(sizeof(*i));
}

static void http_idle_free(struct http_idle *i)
{
	struct home *home = i->home;
	home_idle_remove(home, &i->link);
	*i->bprev = i->bnext;
	if (i->bnext)
		i->bnext->bprev = i->bprev;
	tstream_free(i->t);
	rules_config_unref(i->cfg);
	if (!keep_give(&http_idle_spares, i))
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
	return p->tls.sni ? p->tls.sni : s->rqt.host[0] ? s->rqt.host : s->sni;
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
bool http_take_private(struct http_session *s)
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
void http_park_server(struct http_session *s)
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
	    evbuffer_get_length(tstream_input(s->srv)) > 0 || !(i = http_idle_new())) {
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
	struct http_idle **b = http_idle_bucket(i->cfg, i->pool, i->server, i->port);
	i->bnext = *b;
	if (*b)
		(*b)->bprev = &i->bnext;
	i->bprev = b;
	*b = i;
}

/* An idle connection to exactly this server, or NULL. */
static struct tstream *http_take_idle(struct http_session *s, long server, unsigned port)
{
	const char *name = http_backend_name(s, &s->snap->cfg->pools[s->rq.pool]);
	for (struct http_idle *i = *http_idle_bucket(s->snap->cfg, s->rq.pool, server, port); i; i = i->bnext) {
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

/* RFC 9110 9.2.2: the methods whose intended effect is the same sent once or several times. */
static bool http_method_idempotent(const struct http_session *s)
{
	static const char *const idempotent[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
		if (strcmp(s->rqt.method, idempotent[i]) == 0)
			return true;
	return false;
}

/* Decided as the request first goes out: whether it may go again should that server
 * fail it, and so whether what goes out is kept. An idempotent request may; another
 * only when the pool keeps bodies (retry_body), its body included. A body the pool
 * does not keep can be sent once only; an Upgrade, and a request on a private
 * connection (http_srv_private()), never go twice. */
bool http_request_resendable(const struct http_session *s)
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

/* The server connection failed the request. A kept connection the server closed as
 * the request went out (nothing came back) is the server's right, not its failure:
 * the request goes again on a new connection to the same server. Any other failure
 * counts towards the server's passive fall, and the request goes to another server
 * when http_retry_allowed() says so and, if it had gone out, the pool's budget has
 * room; otherwise the client gets 502 (504 after a timeout). */
void http_server_failed(struct http_session *s, enum http_retry_cause why, const char *what)
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
			        p->name, p->retry_budget, s->rqt.method);
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
void http_connect_next(struct http_session *s)
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
