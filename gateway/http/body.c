#include "http/body.h"

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
#include "http/h2session.h"
#include "http/head.h"
#include "io/log.h"
#include "proxy/plugin.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "proxy/tlsconf.h"
#include "io/tstream.h"

static void http_pump_response(struct http_session *s);
static void http_exchange_end(struct http_session *s);

/* The route's plugins' header edits as head.c takes them. */
static bool http_request_kept(const void *plug, const char *name, size_t len)
{
	return plugin_header_kept(plug, ONEGATE_REQUEST_HEADERS, name, len);
}

static void http_request_added(const void *plug, struct evbuffer *out)
{
	plugin_headers_write(plug, ONEGATE_REQUEST_HEADERS, out);
}

static bool http_response_kept(const void *plug, const char *name, size_t len)
{
	return plugin_header_kept(plug, ONEGATE_RESPONSE_HEADERS, name, len);
}

static void http_response_added(const void *plug, struct evbuffer *out)
{
	plugin_headers_write(plug, ONEGATE_RESPONSE_HEADERS, out);
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

void http_srv_readable(struct tstream *t, void *arg)
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

void http_srv_drained(struct tstream *t, void *arg)
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
void http_start_exchange(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	bool replay = s->rq.req_sent && !s->rq.head_held;
	const char *head = (const char *)evbuffer_pullup(replay ? s->rq.kept : in, (ev_ssize_t)s->req->head_len);
	s->phase = HP_EXCHANGE;
	http_clock(&s->rq.srv_start);
	if (http_pool_private(http_pool(s)))
		http_make_private(s);
	const struct rules_route *r = &s->svc->routes[s->rq.route];
	struct http_head_request hq = {
		.head = head, .q = s->req, .target = s->rq.target, .host_rewrite = r->host_rewrite,
		.forwarded = r->forwarded, .client_ip = s->client_ip, .tls = s->tls, .host = s->rqt.host,
		.host_len = s->rq.host_len, .upgrade = s->rq.upgrade,
	};
	struct http_head_edits edits = { http_request_kept, http_request_added, s->rq.plug };
	if (s->rq.plug)
		hq.edits = &edits;
	if (http_head_write_request(tstream_output(s->srv), &hq))
		http_make_private(s);
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

void http_srv_event(struct tstream *t, enum tstream_event ev, void *arg)
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

void http_pump_request(struct http_session *s)
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

/* The Set-Cookie line for every response to a request that came without the cookie (or
 * named a server it could not have), into buf; NULL when none is due. The cookie is pool.c's. */
static const char *http_cookie_line(const struct http_session *s, char *buf, size_t cap)
{
	const struct rules_pool *p = http_pool(s);
	if (p->balance != RULES_BALANCE_COOKIE || s->rq.server < 0 || s->rq.cookie_server == s->rq.server)
		return NULL;
	return pool_cookie_header(s->snap->pools, (size_t)s->rq.pool, (size_t)s->rq.server, buf, cap) ? buf : NULL;
}

static void http_write_response_head(struct http_session *s, const char *head)
{
	if (s->rq.plug)
		plugin_on_response(s->rq.plug, s->rq.status, head, s->resp);
	char cookie[4096];
	const char *set_cookie = http_cookie_line(s, cookie, sizeof(cookie));
	/* An HTTP/2 stream takes the head as read, without HTTP/1.1 text in between;
	 * a head the route's plugins edit goes the HTTP/1.1 way. */
	if (s->h2 && !s->rq.plug && h2s_answer_head(s->h2, head, s->resp, set_cookie) == 0) {
		if (http_head_response_binds(head, s->resp, s->rq.status))
			http_make_private(s);
		return;
	}
	struct http_head_response hr = {
		.head = head, .r = s->resp, .status = s->rq.status, .set_cookie = set_cookie, .keepalive = s->rq.keepalive,
	};
	struct http_head_edits edits = { http_response_kept, http_response_added, s->rq.plug };
	if (s->rq.plug)
		hr.edits = &edits;
	if (http_head_write_response(tstream_output(s->cli), &hr))
		http_make_private(s);
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
		/* Now, not with the answer: a client that sent Expect: 100-continue waits
		 * for it before its body. A broken client shows at the answer's flush. */
		(void)tstream_flush(s->cli);
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

/* The client's output goes out; false when the client is gone (and the session with it). */
static bool http_response_flush(struct http_session *s)
{
	if (tstream_flush(s->cli) == 0)
		return true;
	http_access_log(s, OUTCOME_CLIENT_RESET);
	http_free(s, OUTCOME_CLIENT_RESET);
	return false;
}

/* The head no longer waits: the timer goes back to the phase's deadline. */
static void http_head_wait_clear(struct http_session *s)
{
	s->rq.head_waits = false;
	s->timer_at = 0;
	event_del(s->timer);
	if (s->deadline) {
		uint64_t now = http_now_ms();
		http_timer_set(s, now, s->deadline > now ? s->deadline - now : 0);
	}
}

bool http_head_wait_end(struct http_session *s)
{
	s->rq.head_waits = false;
	return http_response_flush(s);
}

static void http_pump_response(struct http_session *s)
{
	bool had_head = s->rq.resp_head_done;
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
	if (s->rq.head_waits)
		http_head_wait_clear(s);
	if (moved)
		http_arm(s, http_timeout(s, false));
	if (!had_head && !moved && !s->rq.resp_done) {
		/* A head that came without its body waits for it, HTTP_HEAD_WAIT_MS at most: back
		 * ends often write them apart (nginx writev()s the head, then sendfile()s the body),
		 * and a head sent alone costs a segment, a wake-up of the client and its ACK. In
		 * scenario 4 a quarter of the answers went out in two segments. nginx holds such a
		 * head until the body (postpone_output), HAProxy merges them (MSG_MORE). */
		s->rq.head_waits = true;
		http_timer_soon(s, http_now_ms(), HTTP_HEAD_WAIT_MS);
	} else if (!http_response_flush(s)) {
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
void http_tunnel_end(struct http_session *s, enum outcome end)
{
	http_access_log(s, end);
	http_free(s, end);
}

void http_tunnel_move(struct http_session *s, struct relay_end *from)
{
	size_t n;
	unsigned watch;
	enum outcome end;
	bool going = relay_move(&s->relay, from, &n, &watch, &end);
	http_arm(s, http_timeout(s, false));
	if (!going) {
		http_tunnel_end(s, end);
		return;
	}
	if (watch)
		http_timer_soon(s, http_now_ms(), watch);
}

bool http_tunnel_watch(struct http_session *s)
{
	unsigned watch;
	enum outcome end;
	if (!relay_watch(&s->relay, &watch, &end)) {
		http_tunnel_end(s, end);
		return false;
	}
	if (watch)
		http_timer_soon(s, http_now_ms(), watch);
	return true;
}

/* Both sides of the tunnel ended: it lasts until each has taken what the other sent. */
void http_tunnel_linger(struct http_session *s)
{
	unsigned next;
	enum outcome end;
	if (!relay_linger(&s->relay, &next, &end)) {
		http_tunnel_end(s, end);
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

/* ---------------------------------------------------------------- the connection's close */

/* A closing connection whose peer did not take all: the answer's line counts what it got
 * (TLS records' overhead counted as answer bytes, so it errs low by under 0.2%). */
void http_linger_cut(struct http_session *s, enum outcome outcome)
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
void http_linger_check(struct http_session *s)
{
	unsigned stall = s->svc->send_timeout_ms;
	uint64_t now = http_now_ms();
	if (s->cli_has_all) {
		/* Only the drain is left: it ends at the client's end (or reset) or on time. */
		if (!s->cli_draining || now >= s->drain_until) {
			http_free(s, s->close_outcome);
			return;
		}
		s->timer_at = 0;
		event_del(s->timer);
		http_arm(s, (unsigned)(s->drain_until - now));
		return;
	}
	enum sock_linger_state c = tstream_linger_check(s->cli, &s->cli_linger, stall);
	enum sock_linger_state v = s->srv ? tstream_linger_check(s->srv, &s->srv_linger, stall) : SOCK_LINGER_DONE;
	/* A drained client that had taken all of ours and then reset (it closed with the end
	 * of the answer unread by its program) ended as a close without a drain sees it. */
	if (c == SOCK_LINGER_BROKEN && s->drain_until && s->cli_linger.left == 0)
		c = SOCK_LINGER_DONE;
	if (c == SOCK_LINGER_BROKEN || c == SOCK_LINGER_STALLED) {
		http_linger_cut(s, c == SOCK_LINGER_BROKEN ? OUTCOME_CLIENT_RESET : OUTCOME_CLIENT_STALLED);
		return;
	}
	if (v == SOCK_LINGER_BROKEN || v == SOCK_LINGER_STALLED) {
		http_free(s, v == SOCK_LINGER_BROKEN ? OUTCOME_SERVER_RESET : OUTCOME_SERVER_STALLED);
		return;
	}
	if (c == SOCK_LINGER_DONE && v == SOCK_LINGER_DONE) {
		if (!s->cli_draining || now >= s->drain_until) {
			http_free(s, s->close_outcome);
			return;
		}
		/* The client has the answer: its line says so now, the drain goes on. */
		s->cli_has_all = true;
		if (s->log_at_close) {
			s->log_at_close = false;
			http_access_log(s, s->close_outcome);
		}
		http_linger_check(s);
		return;
	}
	unsigned next = c == SOCK_LINGER_TAKING ? s->cli_linger.next_ms : s->srv_linger.next_ms;
	if (v == SOCK_LINGER_TAKING && s->srv_linger.next_ms < next)
		next = s->srv_linger.next_ms;
	s->timer_at = 0;        /* the linger's looks are nearer than any deadline set before */
	event_del(s->timer);
	http_arm(s, next);
}

/* What the client sends while the connection closes is dropped; past HTTP_DRAIN_MAX the
 * drain ends and the close resets what is left, as before. */
void http_drain_client(struct http_session *s)
{
	struct evbuffer *in = tstream_input(s->cli);
	size_t n = evbuffer_get_length(in);
	evbuffer_drain(in, n);
	s->drained += n;
	if (s->drained > HTTP_DRAIN_MAX) {
		s->cli_draining = false;
		tstream_read_enable(s->cli, false);
	}
}

/* Our last bytes go (both ways at a tunnel's end, where both sides have shut down):
 * the session ends once the peers have them, or one stops taking them.
 *
 * A close on a request not read to its end (a head past HTTP_HEAD_MAX answered 431 once
 * its first 32 KiB came, say) would leave the client's further bytes unread, and a
 * socket closed with bytes unread sends a reset: a client still sending then fails its
 * write ("Send failure: Broken pipe") and may never read the answer (Windows drops what
 * it received at a reset). As nginx's lingering close does, the client's bytes are read
 * and dropped until its end, for HTTP_DRAIN_MS and HTTP_DRAIN_MAX at most. */
static void http_linger_begin(struct http_session *s, enum outcome outcome)
{
	s->phase = HP_CLOSING;
	s->close_outcome = outcome;
	s->cli_draining = !s->h2 && !s->cli_eof && evbuffer_get_length(tstream_input(s->cli)) > 0;
	if (s->cli_draining) {
		s->drain_until = http_now_ms() + HTTP_DRAIN_MS;
		http_drain_client(s);
	}
	tstream_read_enable(s->cli, s->cli_draining);
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
void http_close_request(struct http_session *s, enum outcome outcome)
{
	if (s->phase == HP_CLOSING)
		return;
	s->log_at_close = true;
	http_close(s, outcome);
}
