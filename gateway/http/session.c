#include "http/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "acme/acme.h"
#include "io/addr.h"
#include "http/http.h"
#include "http/backend.h"
#include "http/body.h"
#include "http/h2session.h"
#include "http/head.h"
#include "io/log.h"
#include "proxy/plugin.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "proxy/tlsconf.h"
#include "io/sock.h"
#include "io/tstream.h"

/* Before any request, and what each starts from. */
static const struct http_request http_request_none = {
	.route = -1, .pool = -1, .server = -1, .failed_server = -1, .cookie_server = -1, .fail_cause = HR_CONNECT,
};

static long http_ms_between(const struct timeval *t, const struct timeval *now)
{
	return (now->tv_sec - t->tv_sec) * 1000L + (now->tv_usec - t->tv_usec) / 1000L;
}

static long http_ms_since(const struct timeval *t)
{
	struct timeval now;
	http_clock(&now);
	return http_ms_between(t, &now);
}

/* The outcome as logged: a plugin's answer names the plugin. */
static const char *http_outcome_text(const struct http_session *s, enum outcome outcome)
{
	return outcome == OUTCOME_PLUGIN ? s->rq.answered_by : outcome_name(outcome);
}

/* The request can no longer go again (its answer's head came, or it is over): what
 * was kept for that goes. */
void http_resend_end(struct http_session *s)
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
void http_free(struct http_session *s, enum outcome outcome)
{
	if (s->log_at_close) {
		s->log_at_close = false;
		http_access_log(s, outcome);
	}
	if (!s->h2)
		pool_service_open(s->snap->pools, http_service_index(s), -1);
	http_resend_end(s);
	if (s->h2) {
		/* The connection's, for its next stream; a waiting session leaves the queue. */
		h2s_private_give(s->h2, s, s->priv);
		s->priv = NULL;
	}
	if (log_access_enabled() && !s->h2 && !s->moved)
		log_access_line("conn client=%s service=%s sni=%s requests=%u ms=%ld outcome=%s", s->client,
		        s->svc->name, s->sni[0] ? s->sni : "-", s->requests, http_ms_since(&s->start),
		        http_outcome_text(s, outcome));
	tstream_free(s->cli);
	http_drop_server(s);    /* a request cut here leaves its server's active count too */
	http_private_free(s);
	sock_block_free(s->msgs);
	plugin_req_free(s->rq.plug);
	free(s->rq.target);
	home_snap_unref(s->snap);
	home_live_remove(s->home, &s->link);
	http_spare_give(s);
}

static void http_close_now(struct home_link *l)
{
	struct http_session *s = (struct http_session *)l;
	/* A request cut here is logged with what its client got so far. */
	if (s->phase == HP_TUNNEL && s->relay.closing) {
		relay_cut(&s->relay);
		http_free(s, OUTCOME_DRAIN_TIMEOUT);
		return;
	}
	/* One only dropping what its client still sends has ended as it was going to. */
	if (s->cli_has_all) {
		http_free(s, s->close_outcome);
		return;
	}
	if (s->phase == HP_CONNECT || s->phase == HP_EXCHANGE || s->phase == HP_TUNNEL)
		s->log_at_close = true;
	if (s->phase != HP_CLOSING)
		sock_linger_start(&s->cli_linger);
	(void)tstream_linger_check(s->cli, &s->cli_linger, s->svc->send_timeout_ms);
	http_linger_cut(s, OUTCOME_DRAIN_TIMEOUT);
}

void http_timer_set(struct http_session *s, uint64_t now, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
	s->timer_at = now + ms;
	event_add(s->timer, &tv);
}

void http_timer_soon(struct http_session *s, uint64_t now, uint64_t ms)
{
	if (!s->timer_at || now + ms < s->timer_at)
		http_timer_set(s, now, ms);
}

void http_access_log(struct http_session *s, enum outcome outcome)
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
	if (!log_access_enabled())
		return;
	/* Piece by piece: printf's formatting cost more than the rest of a logged request. */
	struct log_line l;
	if (!log_line_begin(&l))
		return;
	log_line_lit(&l, "http client=");
	log_line_str(&l, s->client);
	log_line_lit(&l, " sni=");
	log_line_str(&l, s->sni[0] ? s->sni : "-");
	log_line_lit(&l, " host=");
	log_line_str(&l, s->rqt.host[0] ? s->rqt.host : "-");
	log_line_lit(&l, " method=");
	log_line_str(&l, s->rqt.method[0] ? s->rqt.method : "-");
	log_line_lit(&l, " path=");
	log_line_str(&l, s->rqt.path[0] ? s->rqt.path : "-");
	if (s->h2)
		log_line_lit(&l, " proto=HTTP/2.0 status=");
	else
		log_line_lit(&l, " proto=HTTP/1.1 status=");
	log_line_int(&l, s->rq.status);
	log_line_lit(&l, " in=");
	log_line_uint(&l, s->rq.bytes_in);
	log_line_lit(&l, " out=");
	log_line_uint(&l, s->rq.bytes_out);
	if (r && s->rq.route == s->svc->default_route) {
		log_line_lit(&l, " route=default");
	} else if (r) {
		log_line_lit(&l, " route=line");
		log_line_int(&l, r->line);
	} else {
		log_line_lit(&l, " route=-");
	}
	log_line_lit(&l, " pool=");
	log_line_str(&l, p ? p->name : "-");
	log_line_lit(&l, " server=");
	if (p && s->rq.server >= 0) {
		log_line_str(&l, p->servers[s->rq.server].host);
		log_line_lit(&l, ":");
		log_line_uint(&l, s->rq.port);
	} else {
		log_line_lit(&l, "-");
	}
	if (s->rq.req_private)
		log_line_lit(&l, " private=1");
	/* The clock read above: two more reads would cost more than the line's other numbers. */
	log_line_lit(&l, " backend_ms=");
	log_line_int(&l, s->rq.srv_start.tv_sec ? http_ms_between(&s->rq.srv_start, &now) : -1);
	log_line_lit(&l, " ms=");
	log_line_int(&l, http_ms_between(&s->rq.req_start, &now));
	log_line_lit(&l, " retries=");
	log_line_uint(&l, s->rq.attempts ? s->rq.attempts - 1 : 0);
	log_line_lit(&l, " outcome=");
	log_line_str(&l, http_outcome_text(s, outcome));
	log_line_end(&l);
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
	int n = text ? snprintf(body, sizeof(body), "%s", text)
	             : snprintf(body, sizeof(body), "%d %s\n", status, http_head_reason(status));
	bool bodyless = status == 204 || status == 304;
	http_head_write_answer(out, status, extra, (size_t)n, keep);
	/* out= counts the body, as for a server's answer; a linger cut takes off what was not taken. */
	if (!s->rq.head_request && !bodyless) {
		evbuffer_add(out, body, (size_t)n);
		s->rq.bytes_out += (uint64_t)n;
	}
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
	/* Not read from here: pipelined requests answered so, each calling the next, overflowed
	 * the stack (12000 tiny ones crashed the gateway at the 4291st). */
	s->phase = HP_HEAD;
	event_active(s->next, EV_TIMEOUT, 0);
}

void http_respond(struct http_session *s, int status, const char *extra, enum outcome outcome, bool keep)
{
	http_respond_text(s, status, extra, NULL, outcome, keep);
}

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
	                                 strlen(s->sni), s->rqt.host, s->rq.host_len)) {
		http_respond(s, 421, NULL, OUTCOME_MISDIRECTED, !body);
		return;
	}
	size_t rlen;
	const char *bad;
	s->rq.route = rules_route_request(s->svc, s->rqt.host, s->rq.host_len, path, q->path.len, s->sni[0] ? s->sni : NULL,
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
		struct plugin_view v = { &s->peer, s->tls, head, q, s->rqt.host, rpath, rlen };
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
			snprintf(loc, sizeof(loc), "Location: https://%s%.*s\r\n", s->rqt.host, (int)q->path.len, path);
		else
			snprintf(loc, sizeof(loc), "Location: %s%.*s\r\n", r->redirect, (int)q->path.len, path);
		if (!s->rqt.host[0] && strcmp(r->redirect, "https") == 0) {
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
	http_private_ready(s);
}

/* The request goes over the client's private connection to its pool when it has one
 * (an HTTP/2 stream may first wait for another stream to be done with it), else to
 * the pool's pick. */
void http_private_ready(struct http_session *s)
{
	if (s->h2 && !s->priv) {
		bool wait;
		s->priv = h2s_private_take(s->h2, s, s->rq.pool, &wait);
		if (wait) {
			s->phase = HP_CONNECT;
			http_disarm(s);
			return;
		}
	}
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

/* A request's parsed heads: a block of the thread's free list, given back while the
 * connection waits for its next request (idle connections hold none), since malloc
 * is slow at this size and a kept-alive connection takes one per request. */
_Static_assert(sizeof(struct http_msgs) <= SOCK_BLOCK, "the heads fit in a sock block");

static int http_request_reset(struct http_session *s)
{
	if (!s->msgs && !(s->msgs = sock_block_alloc()))
		return -1;
	s->req = &s->msgs->req;
	s->resp = &s->msgs->resp;
	h1_req_init(s->req, HTTP_HEAD_MAX);
	/* What the request before owned; the rest of it the last access line closed. */
	plugin_req_free(s->rq.plug);
	free(s->rq.target);
	s->rq = http_request_none;
	s->rqt.method[0] = s->rqt.host[0] = s->rqt.path[0] = '\0';
	return 0;
}

/* Reads (the rest of) a request head from what the client sent. */
void http_read_request(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	size_t len = evbuffer_get_length(in);
	if (len == 0) {
		if (s->cli_eof) {
			http_free(s, OUTCOME_OK);
			return;
		}
		if (!s->req_started) {
			sock_block_free(s->msgs);
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
	/* A head read already (an HTTP/2 stream's) needs its own bytes only. */
	size_t take = s->req->head_len ? s->req->head_len : len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
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
		snprintf(s->rqt.method, sizeof(s->rqt.method), "-");
		log_msg(LOG_DEBUG, "client %s: bad request: %s", s->client, h1_error_text(s->req, rc));
		http_respond(s, h1_error_status(rc), NULL, OUTCOME_BAD_REQUEST, false);
		return;
	}
	http_copy(s->rqt.method, sizeof(s->rqt.method), head + q->method.off, q->method.len);
	http_copy(s->rqt.path, sizeof(s->rqt.path), head + q->path.off, q->path.len);
	s->rq.head_request = q->method.len == 4 && memcmp(head + q->method.off, "HEAD", 4) == 0;
	s->rq.keepalive = q->keepalive;
	h1_resp_init(s->resp, HTTP_HEAD_MAX, s->rq.head_request);
	s->rq.upgrade = q->upgrade;
	if (q->has_host) {
		uint16_t port;
		if (h1_host_normalize(head + q->host.off, q->host.len, s->rqt.host, sizeof(s->rqt.host), &port) < 0) {
			http_respond(s, 400, NULL, OUTCOME_BAD_HOST, false);
			return;
		}
		s->rq.host_len = strlen(s->rqt.host);
	}
	s->rq.req_framing = q->chunked ? HF_CHUNKED : q->has_content_length && q->content_length ? HF_LENGTH : HF_NONE;
	s->rq.req_left = q->content_length;
	http_route_request(s, head);
}

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
	case HP_CLOSING:
		if (s->cli_draining) {
			http_drain_client(s);
			if (!s->cli_draining)
				http_linger_check(s);
		}
		return;
	case HP_CONNECT:
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

/* Whether the client chose HTTP/2 in the handshake (tlsconf.c offers it first). */
static bool http_alpn_h2(const struct tstream *t)
{
	const uint8_t *proto = NULL;
	unsigned len = 0;
	SSL_get0_alpn_selected(tstream_ssl(t), &proto, &len);
	return len == 2 && memcmp(proto, "h2", 2) == 0;
}

/* The connection goes on as HTTP/2 (http/h2session.c); this session ends without a line. */
static void http_to_h2(struct http_session *s)
{
	struct http_start st = {
		.home = s->home, .snap = s->snap, .svc = s->svc, .peer = &s->peer, .peerlen = sizeof(s->peer),
		.local = &s->local, .locallen = s->locallen, .sni = s->sni[0] ? s->sni : NULL,
	};
	struct tstream *cli = s->cli;
	s->cli = NULL;
	s->moved = true;
	h2s_start(&st, cli);
	http_free(s, OUTCOME_OK);
}

static void http_cli_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	struct http_session *s = arg;
	(void)t;
	if (ev == TSTREAM_READY) {
		s->handshaken = true;
		if (s->tls && !s->h2 && http_alpn_h2(s->cli)) {
			http_to_h2(s);
			return;
		}
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
		/* A client that half-closes may still be reading; a reset is checked for. The
		 * end of a drained client's bytes ends the drain. */
		if (s->cli_draining) {
			s->cli_draining = false;
			tstream_read_enable(s->cli, false);
			http_linger_check(s);
			return;
		}
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

static void http_next(evutil_socket_t fd, short what, void *arg)
{
	struct http_session *s = arg;
	(void)fd;
	(void)what;
	if (s->phase == HP_HEAD)        /* unless the client's input came first and took it on */
		http_read_request(s);
}

static void http_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_session *s = arg;
	(void)fd;
	(void)what;
	s->timer_at = 0;
	if (s->phase == HP_EXCHANGE && s->rq.head_waits && !http_head_wait_end(s))
		return;
	/* A tunnel waiting for a slow end is watched on its own time, the idle deadline aside. */
	if (s->phase == HP_TUNNEL && !http_tunnel_watch(s))
		return;
	if (!s->deadline)
		return;
	uint64_t now = http_now_ms();
	if (now < s->deadline) {
		http_timer_soon(s, now, s->deadline - now);
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

/* What every session starts with; false (and the session freed) without memory. */
static bool http_session_init(struct http_session *s, const struct http_start *st)
{
	s->home = st->home;
	s->snap = st->snap;
	s->snap->refs++;
	s->svc = st->svc;
	s->rq = http_request_none;
	if (st->client && st->client_ip) {
		http_copy(s->client, sizeof(s->client), st->client, strlen(st->client));
		http_copy(s->client_ip, sizeof(s->client_ip), st->client_ip, strlen(st->client_ip));
	} else {
		addr_text(st->peer, st->peerlen, s->client, sizeof(s->client), s->client_ip, sizeof(s->client_ip));
	}
	memcpy(&s->peer, st->peer, st->peerlen < sizeof(s->peer) ? st->peerlen : sizeof(s->peer));
	if (st->local && st->locallen && st->locallen <= sizeof(s->local)) {
		memcpy(&s->local, st->local, st->locallen);
		s->locallen = st->locallen;
	}
	if (st->sni)
		http_copy(s->sni, sizeof(s->sni), st->sni, strlen(st->sni));
	http_clock(&s->start);
	s->rq.req_start = s->start;
	s->link.close_now = http_close_now;
	home_live_add(s->home, &s->link);
	if (event_assign(s->timer, s->home->base, -1, 0, http_timer, s) != 0 ||
	    event_assign(s->next, s->home->base, -1, 0, http_next, s) != 0 || !s->cli) {
		http_free(s, OUTCOME_NO_MEMORY);
		return false;
	}
	tstream_setcb(s->cli, http_cli_readable, http_cli_drained, http_cli_event, s);
	tstream_set_read_max(s->cli, HTTP_HEAD_MAX + HTTP_RELAY_MAX);
	tstream_set_low_mark(s->cli, HTTP_RELAY_MAX / 2);
	return true;
}

void http_session_start(const struct http_start *st)
{
	struct http_session *s = http_spare_take();
	if (!s) {
		sock_free(st->cli);
		SSL_free(st->ssl);
		return;
	}
	s->tls = st->ssl != NULL;
	s->handshaken = !s->tls;
	pool_service_open(st->snap->pools, (size_t)(st->svc - st->snap->cfg->services), 1);
	s->cli = tstream_new(st->cli, st->ssl);
	if (!http_session_init(s, st))
		return;
	http_arm(s, s->tls ? s->svc->hello_timeout_ms : s->svc->header_timeout_ms);
	tstream_start(s->cli);
}

void http_stream_start(const struct http_start *st, struct tstream *cli, struct h2s_stream *h2,
		       const struct h1_msg *req)
{
	struct http_session *s = http_spare_take();
	if (!s) {
		tstream_free(cli);
		return;
	}
	s->tls = h2s_tls(h2);
	s->handshaken = true;
	s->h2 = h2;
	s->cli = cli;
	if (!http_session_init(s, st))
		return;
	/* The head is whole in cli's input and read already: http_read_request finds it done. */
	if (http_request_reset(s) != 0) {
		http_free(s, OUTCOME_NO_MEMORY);
		return;
	}
	h1_msg_copy(s->req, req);
	s->req_started = true;
	http_clock(&s->rq.req_start);
	http_arm(s, s->svc->header_timeout_ms);
	tstream_start(s->cli);
}
