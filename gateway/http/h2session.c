#include "http/h2session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io/addr.h"
#include "proto/h2.h"
#include "http/backend.h"
#include "http/h2answer.h"
#include "http/h2tunnel.h"
#include "http/session.h"
#include "io/log.h"
#include "proxy/pool.h"
#include "io/tstream.h"

/* HTTP/2 bytes queued to the client before the connection stops taking answers
 * from its streams (each stream's own buffer is h2_config.stream_out_buffer). */
#define H2S_OUT_MAX (256 * 1024)

/* Client bytes decrypted per pass before h2_recv takes them, as an HTTP/1.1
 * session reads (a head plus HTTP_RELAY_MAX): with 64 KiB an upload took
 * twice HTTP/1.1's reads, each half the size. */
#define H2S_READ_MAX (HTTP_HEAD_MAX + HTTP_RELAY_MAX)

/* How often the connection looks at its clock: reloads, idle time, stalls. */
#define H2S_TICK_MS 500

/* The longest an answer waits for the loop to go idle before it is written anyway. */
#define H2S_FLUSH_LATE_MS 1

/* Ended streams a connection keeps for its next ones, until none is open. */
#define H2S_SPARE_STREAMS 32

/* One stream, from its request until both its session and its HTTP/2 side are done. */
struct h2s_stream {
	struct h2s_stream *prev, *next; /* the connection's streams, for its end */
	struct h2s_conn *c;             /* NULL once the connection is gone */
	int32_t id;
	struct tstream *t;              /* its session's client stream; NULL once the session freed it */
	bool h2_gone;                   /* the client reset it, or the connection ended it */
	bool req_ended;                 /* the client's END_STREAM came: its request is whole */
	bool chunked;                   /* the request body goes to the session chunked */
	size_t unconsumed;              /* DATA bytes not yet given back to the windows */
	size_t framing_bytes;           /* bytes of ours in the input (head, chunk framing): no window's */
	bool shut;                      /* the session ended its side */
	struct h2a_answer a;            /* its answer, from the session to HEADERS and DATA */
};

struct h2s_conn {
	struct home_link link;          /* first: a link is its connection */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	struct tstream *cli;
	struct h2_conn *h2;
	struct event *tick;
	struct event *flush;            /* at HOME_PRIORITY_IDLE: what the streams gave h2 goes out */
	struct event *flush_late;       /* the same, H2S_FLUSH_LATE_MS after it was asked for at most */
	struct sockaddr_storage peer, local;
	socklen_t locallen;
	char sni[256];
	char client[64];                /* the peer as text, for logs and for every stream's session */
	char client_ip[INET6_ADDRSTRLEN];
	struct timeval start;
	struct h2s_stream *streams;
	struct h2s_stream *spare;       /* ended, kept for the next streams (linked by next) */
	unsigned requests, nstreams, nspare;
	uint64_t idle_since, stalled_since, closing_since;
	bool goaway, closing, cli_eof;
	bool tls;                       /* ALPN h2 over TLS; false: h2c with prior knowledge */
	enum outcome outcome;
	struct h2_stats reported;       /* what /metrics has of this connection's counters */
	/* Windows authentication: the server connection private to this client connection. */
	struct http_private *priv;              /* kept between its streams, or NULL */
	struct http_session *priv_holder;       /* the stream session using it now, or NULL */
	long priv_pool;                         /* the pool of the one held */
	struct http_session **waiting;          /* stream sessions waiting for it, in order */
	size_t nwaiting, capwaiting;
	struct http_session *wake;              /* the next of them, told from the loop */
};

static void h2s_free(struct h2s_conn *c, enum outcome outcome);
static void h2s_take_output(struct h2s_stream *st);

/* ---- writing: what nghttp2 has for the client goes to the TLS stream */

/* Moves HTTP/2 output to the client while its queue has room (a slow client
 * stops it here, and with it the streams' answers and so their servers). */
static void h2s_write(struct h2s_conn *c)
{
	struct evbuffer *out = tstream_output(c->cli);
	while (tstream_unsent(c->cli) < H2S_OUT_MAX) {
		const uint8_t *p;
		ssize_t n = h2_output(c->h2, &p);
		if (n <= 0)
			break;
		evbuffer_add(out, p, (size_t)n);
	}
	if (tstream_flush(c->cli) != 0)
		c->closing = true;
}

/* Calls into h2 from the streams' sessions are written out once, from the loop, when
 * it has nothing else to do (HOME_PRIORITY_IDLE): the answers that this pass and the
 * passes after it finish go to the client in one write, not one write a pass (bench
 * scenario 10: 3-6% less CPU a request). flush_late bounds the wait under a load that
 * never lets the loop go idle. */
static void h2s_flush_soon(struct h2s_conn *c)
{
	if (!c)
		return;
	event_active(c->flush, EV_TIMEOUT, 0);
	if (!evtimer_pending(c->flush_late, NULL)) {
		struct timeval late = { 0, H2S_FLUSH_LATE_MS * 1000 };
		evtimer_add(c->flush_late, &late);
	}
}

static struct h2s_stream *h2s_stream_of(struct h2s_conn *c, int32_t id)
{
	return h2_stream_ctx(c->h2, id);
}

static void h2s_spare_free(struct h2s_conn *c)
{
	while (c->spare) {
		struct h2s_stream *st = c->spare;
		c->spare = st->next;
		free(st);
	}
	c->nspare = 0;
}

static void h2s_stream_unlink(struct h2s_stream *st)
{
	struct h2s_conn *c = st->c;
	if (!c)
		return;
	h2_stream_set_ctx(c->h2, st->id, NULL);
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	c->nstreams--;
	if (!c->nstreams)
		c->idle_since = http_now_ms();
	st->c = NULL;
}

/* ---- the streams' sessions' client side (tstream_peer_ops) */

/* The session took request body bytes: the windows open again by as many. Our own
 * bytes count first, so a window never opens ahead of what left. */
static void h2s_in_taken(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct h2s_stream *st = arg;
	(void)buf;
	size_t n = info->n_deleted, ours = n < st->framing_bytes ? n : st->framing_bytes;
	st->framing_bytes -= ours;
	n -= ours;
	if (n > st->unconsumed)
		n = st->unconsumed;
	if (!n)
		return;
	st->unconsumed -= n;
	if (st->c) {
		h2_consume(st->c->h2, st->id, n);
		h2s_flush_soon(st->c);
	}
}

/* The stream's HTTP/2 side, or NULL when it can no longer send (reset, or the connection gone). */
static struct h2_conn *h2s_h2(const struct h2s_stream *st)
{
	return st->c && !st->h2_gone ? st->c->h2 : NULL;
}

/* Takes what the session wrote: the head, then body bytes while the stream has room. */
static void h2s_take_output(struct h2s_stream *st)
{
	if (!st->t)
		return;
	struct h2_conn *h2 = h2s_h2(st);
	h2a_take(&st->a, h2, st->id, tstream_output(st->t), st->shut);
	if (!h2)
		return;         /* dropped: the session hears of the reset, not of room */
	tstream_peer_taken(st->t);
	h2s_flush_soon(st->c);
}

int h2s_answer_head(struct h2s_stream *st, const char *head, const struct h1_msg *m, const char *set_cookie)
{
	if (!st->t || h2a_head(&st->a, h2s_h2(st), st->id, tstream_output(st->t), head, m, set_cookie) != 0)
		return -1;
	h2s_flush_soon(st->c);
	return 0;
}

static void h2s_peer_output(void *peer)
{
	h2s_take_output(peer);
}

static void h2s_peer_shutdown(void *peer)
{
	struct h2s_stream *st = peer;
	st->shut = true;
	h2s_take_output(st);
}

static bool h2s_peer_delivered(void *peer, bool *broken)
{
	struct h2s_stream *st = peer;
	*broken = !st->c || (st->h2_gone && !st->a.ended);
	return st->a.ended && !*broken;
}

static void h2s_peer_closed(void *peer)
{
	struct h2s_stream *st = peer;
	struct h2s_conn *c = st->c;
	evbuffer_remove_cb(tstream_input(st->t), h2s_in_taken, st);
	if (c && st->unconsumed)
		h2_consume(c->h2, st->id, st->unconsumed);
	if (c && !st->a.ended && !st->h2_gone)
		h2_reset(c->h2, st->id, st->a.tunnel && st->a.head_done ? H2T_CONNECT_ERROR : 2);
	h2a_free(&st->a);
	st->t = NULL;
	h2s_stream_unlink(st);
	if (c && c->nspare < H2S_SPARE_STREAMS) {
		st->next = c->spare;
		c->spare = st;
		c->nspare++;
	} else {
		free(st);
	}
	h2s_flush_soon(c);
}

static const struct tstream_peer_ops h2s_peer_ops = {
	.output = h2s_peer_output,
	.shutdown = h2s_peer_shutdown,
	.closed = h2s_peer_closed,
	.delivered = h2s_peer_delivered,
};

bool h2s_tls(const struct h2s_stream *st)
{
	return !st->c || st->c->tls;
}

/* ---- Windows authentication: the private server connection, one stream at a time */

/* A private connection waiting for the next stream that speaks or closes is done with. */
static void h2s_priv_drop(struct h2s_conn *c)
{
	if (!c->priv)
		return;
	tstream_free(c->priv->t);
	free(c->priv);
	c->priv = NULL;
}

static void h2s_priv_readable(struct tstream *t, void *arg)
{
	(void)t;
	h2s_priv_drop(arg);
}

static void h2s_priv_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	(void)t;
	(void)ev;
	h2s_priv_drop(arg);
}

static void h2s_unwait(struct h2s_conn *c, const struct http_session *s)
{
	for (size_t i = 0; i < c->nwaiting; i++)
		if (c->waiting[i] == s) {
			memmove(c->waiting + i, c->waiting + i + 1, (c->nwaiting - i - 1) * sizeof(*c->waiting));
			c->nwaiting--;
			return;
		}
	if (c->wake == s)
		c->wake = NULL;
}

struct http_private *h2s_private_take(struct h2s_stream *st, struct http_session *s, long pool, bool *wait)
{
	struct h2s_conn *c = st->c;
	*wait = false;
	if (!c)
		return NULL;
	if (c->priv_holder && c->priv_holder != s && c->priv_pool == pool) {
		if (c->nwaiting == c->capwaiting) {
			size_t cap = c->capwaiting ? c->capwaiting * 2 : 4;
			struct http_session **w = realloc(c->waiting, cap * sizeof(*w));
			if (!w)
				return NULL;
			c->waiting = w;
			c->capwaiting = cap;
		}
		c->waiting[c->nwaiting++] = s;
		*wait = true;
		return NULL;
	}
	if (!c->priv || c->priv->pool != pool)
		return NULL;
	struct http_private *p = c->priv;
	c->priv = NULL;
	c->priv_holder = s;
	c->priv_pool = pool;
	return p;
}

void h2s_private_hold(struct h2s_stream *st, struct http_session *s, long pool)
{
	struct h2s_conn *c = st->c;
	if (!c || c->priv_holder)
		return;
	c->priv_holder = s;
	c->priv_pool = pool;
}

void h2s_private_give(struct h2s_stream *st, struct http_session *s, struct http_private *priv)
{
	struct h2s_conn *c = st->c;
	if (!c) {
		if (priv) {
			tstream_free(priv->t);
			free(priv);
		}
		return;
	}
	h2s_unwait(c, s);
	if (c->priv_holder != s && !priv)
		return;
	if (c->priv_holder == s)
		c->priv_holder = NULL;
	if (priv) {
		/* One is kept: a private connection to another pool takes the place of the one before. */
		h2s_priv_drop(c);
		c->priv = priv;
		tstream_setcb(priv->t, h2s_priv_readable, NULL, h2s_priv_event, c);
	}
	if (c->nwaiting && !c->wake) {
		c->wake = c->waiting[0];
		memmove(c->waiting, c->waiting + 1, (c->nwaiting - 1) * sizeof(*c->waiting));
		c->nwaiting--;
		h2s_flush_soon(c);
	}
}

/* ---- h2.c's events (struct h2_stream_ops): from inside h2_recv and h2_output */

static void h2s_start_info(const struct h2s_conn *c, struct http_start *st)
{
	*st = (struct http_start){
		.home = c->home, .snap = c->snap, .svc = c->svc, .peer = &c->peer, .peerlen = sizeof(c->peer),
		.local = &c->local, .locallen = c->locallen, .sni = c->sni[0] ? c->sni : NULL,
		.client = c->client, .client_ip = c->client_ip,
	};
}

static int h2s_on_request(void *ctx, int32_t id, const struct h2_request *req)
{
	struct h2s_conn *c = ctx;
	if (c->closing)
		return -1;
	struct h2s_stream *st = c->spare;
	if (st) {
		c->spare = st->next;
		c->nspare--;
		memset(st, 0, sizeof(*st));
	} else if (!(st = calloc(1, sizeof(*st)))) {
		return -1;
	}
	st->c = c;
	st->id = id;
	st->t = tstream_new_peer(c->home->base, &h2s_peer_ops, st);
	if (!st->t) {
		free(st);
		return -1;
	}
	const struct h2head_req *f = req->fields;
	h2a_init(&st->a, f->method.len == 4 && memcmp(f->arena + f->method.off, "HEAD", 4) == 0, req->websocket);
	st->req_ended = req->end_stream;
	st->chunked = !req->end_stream && !f->has_content_length && !req->websocket;
	/* One request per session: it answers with Connection: close (dropped as
	 * hop-by-hop), so its end is the answer's end. */
	struct evbuffer *in = tstream_input(st->t);
	evbuffer_add(in, req->head, req->head_len);
	st->framing_bytes = evbuffer_get_length(in);
	evbuffer_add_cb(in, h2s_in_taken, st);
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	h2_stream_set_ctx(c->h2, id, st);
	c->nstreams++;
	c->requests++;
	struct http_start hs;
	h2s_start_info(c, &hs);
	http_stream_start(&hs, st->t, st, req->msg);
	return 0;
}

static void h2s_on_data(void *ctx, int32_t id, const uint8_t *p, size_t len)
{
	struct h2s_conn *c = ctx;
	struct h2s_stream *st = h2s_stream_of(c, id);
	if (!st || !st->t) {
		h2_consume(c->h2, id, len);
		return;
	}
	st->unconsumed += len;
	st->framing_bytes += h2t_request_data(tstream_input(st->t), st->chunked, p, len);
	tstream_peer_input(st->t);
}

static void h2s_on_end(void *ctx, int32_t id, const struct h2head_field *trailers, size_t n)
{
	struct h2s_conn *c = ctx;
	struct h2s_stream *st = h2s_stream_of(c, id);
	if (!st || !st->t)
		return;
	st->req_ended = true;
	if (st->a.tunnel) {
		/* The client's half-close: the relay shuts the server's write side after what it sent. */
		tstream_peer_end(st->t, TSTREAM_EOF, NULL);
		return;
	}
	if (!st->chunked)
		return;
	st->framing_bytes += h2t_request_end(tstream_input(st->t), trailers, n);
	tstream_peer_input(st->t);
}

static void h2s_on_reset(void *ctx, int32_t id, uint32_t code)
{
	struct h2s_conn *c = ctx;
	struct h2s_stream *st = h2s_stream_of(c, id);
	(void)code;
	if (!st)
		return;
	st->h2_gone = true;
	if (st->t)
		tstream_peer_end(st->t, TSTREAM_ERROR, "the client reset the stream");
}

static void h2s_on_writable(void *ctx, int32_t id)
{
	struct h2s_conn *c = ctx;
	struct h2s_stream *st = h2s_stream_of(c, id);
	if (st)
		h2s_take_output(st);
}

static const struct h2_stream_ops h2s_ops = {
	.request = h2s_on_request,
	.data = h2s_on_data,
	.end = h2s_on_end,
	.reset = h2s_on_reset,
	.writable = h2s_on_writable,
};

/* ---- the client connection */

/* No more streams: a GOAWAY goes (unless one went), then the connection ends
 * once its open streams are done and the client has our last bytes. */
static void h2s_goaway(struct h2s_conn *c)
{
	if (c->goaway)
		return;
	c->goaway = true;
	h2_shutdown(c->h2);
	h2s_write(c);
}

/* Nothing more is read; what is queued goes, then the connection closes. */
static void h2s_close(struct h2s_conn *c, enum outcome outcome)
{
	if (c->closing_since)
		return;
	c->closing = true;
	c->closing_since = http_now_ms();
	c->outcome = outcome;
	tstream_read_enable(c->cli, false);
	h2s_write(c);
	tstream_shutdown(c->cli);
	/* A client already gone fails the close_notify's write, and no event comes for that. */
	if (!tstream_unsent(c->cli) || tstream_flush(c->cli) != 0)
		h2s_free(c, outcome);
}

/* After a pass of work: closes a connection that has nothing left to do. */
static void h2s_settle(struct h2s_conn *c)
{
	if (c->closing_since)
		return;
	if (c->closing || (c->goaway && !c->nstreams) || (c->cli_eof && !c->nstreams) || h2_done(c->h2))
		h2s_close(c, c->outcome);
}

static void h2s_cli_readable(struct tstream *t, void *arg)
{
	struct h2s_conn *c = arg;
	struct evbuffer *in = tstream_input(t);
	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	uint64_t now = http_now_ms();
	struct evbuffer_iovec v[8];
	int n;
	while (!c->closing && (n = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
		size_t took = 0;
		for (int i = 0; i < n && i < 8; i++) {
			took += v[i].iov_len;
			if (h2_recv(c->h2, v[i].iov_base, v[i].iov_len, now) != 0) {
				c->closing = true;
				break;
			}
		}
		evbuffer_drain(in, took);
	}
	h2s_write(c);
	h2s_settle(c);
}

static void h2s_cli_drained(struct tstream *t, void *arg)
{
	struct h2s_conn *c = arg;
	(void)t;
	if (c->closing_since) {
		if (!tstream_unsent(c->cli))
			h2s_free(c, c->outcome);
		return;
	}
	h2s_write(c);
	h2s_settle(c);
}

static void h2s_cli_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	struct h2s_conn *c = arg;
	(void)t;
	if (ev == TSTREAM_READY)
		return;
	if (c->closing_since || ev == TSTREAM_ERROR) {
		h2s_free(c, c->closing_since ? c->outcome : OUTCOME_CLIENT_RESET);
		return;
	}
	/* The client ended its side: the answers under way still go to it, but a
	 * request still waiting for body bytes can never be whole, so its session
	 * ends now (its server connection closed) rather than at request_timeout;
	 * a tunnel takes it as the client's half-close, as END_STREAM. */
	c->cli_eof = true;
	for (struct h2s_stream *st = c->streams; st; st = st->next) {
		if (!st->t || st->req_ended || st->h2_gone)
			continue;
		st->req_ended = true;
		if (st->a.tunnel)
			tstream_peer_end(st->t, TSTREAM_EOF, NULL);
		else
			tstream_peer_end(st->t, TSTREAM_ERROR, "the client closed its connection mid-request");
	}
	h2s_settle(c);
}

static void h2s_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct h2s_conn *c = arg;
	(void)fd;
	(void)what;
	/* Whichever of the two came first: the other is not wanted any more. */
	event_del(c->flush);
	event_del(c->flush_late);
	if (c->closing_since)
		return;
	if (c->wake) {
		struct http_session *s = c->wake;
		c->wake = NULL;
		http_private_ready(s);
	}
	h2s_write(c);
	h2s_settle(c);
}

static void h2s_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct h2s_conn *c = arg;
	(void)fd;
	(void)what;
	uint64_t now = http_now_ms();
	if (c->closing_since) {
		if (now - c->closing_since >= c->svc->send_timeout_ms)
			h2s_free(c, OUTCOME_CLIENT_STALLED);
		return;
	}
	/* A reload or a stop: streams under way finish, new ones go to a new connection. */
	if (c->home->snap != c->snap || c->home->stopping)
		h2s_goaway(c);
	/* A connection with no stream open keeps no memory for the streams to come. */
	if (!c->nstreams) {
		h2s_spare_free(c);
		h2_trim(c->h2);
	}
	if (!c->nstreams && now - c->idle_since >= c->svc->keepalive_timeout_ms) {
		c->outcome = OUTCOME_KEEPALIVE_TIMEOUT;
		h2s_goaway(c);
	}
	if (h2_window_stalled(c->h2)) {
		if (!c->stalled_since)
			c->stalled_since = now;
		else if (now - c->stalled_since >= c->svc->send_timeout_ms) {
			h2_stalled(c->h2);
			c->outcome = OUTCOME_CLIENT_STALLED;
			c->closing = true;
		}
	} else {
		c->stalled_since = 0;
		/* One stream's window shut, the others read: that stream alone is reset. */
		h2_reset_stalled(c->h2, now, c->svc->send_timeout_ms);
	}
	h2s_metrics_add(h2_conn_stats(c->h2), &c->reported);
	h2s_write(c);
	h2s_settle(c);
}

static void h2s_close_now(struct home_link *l)
{
	h2s_free((struct h2s_conn *)l, OUTCOME_DRAIN_TIMEOUT);
}

static void h2s_free(struct h2s_conn *c, enum outcome outcome)
{
	/* Streams whose sessions are still open hear that the connection is gone. */
	while (c->streams) {
		struct h2s_stream *st = c->streams;
		c->streams = st->next;
		st->c = NULL;
		if (st->t)
			tstream_peer_end(st->t, TSTREAM_ERROR, "the client connection closed");
		else
			free(st);
	}
	h2s_spare_free(c);
	h2s_priv_drop(c);
	free(c->waiting);
	const struct h2_stats *hs = c->h2 ? h2_conn_stats(c->h2) : &c->reported;
	h2s_metrics_add(hs, &c->reported);
	if (log_access_enabled()) {
		struct timeval now;
		http_clock(&now);
		long ms = (now.tv_sec - c->start.tv_sec) * 1000L + (now.tv_usec - c->start.tv_usec) / 1000L;
		log_access_line(
		        "conn client=%s service=%s sni=%s proto=%s requests=%u malformed=%llu resets=%llu ms=%ld outcome=%s",
		        c->client, c->svc->name, c->sni[0] ? c->sni : "-", c->tls ? "h2" : "h2c", c->requests,
		        (unsigned long long)hs->malformed, (unsigned long long)hs->resets_received, ms,
		        outcome_name(outcome));
	}
	h2_free(c->h2);
	tstream_free(c->cli);
	if (c->tick)
		event_free(c->tick);
	if (c->flush)
		event_free(c->flush);
	if (c->flush_late)
		event_free(c->flush_late);
	pool_service_open(c->snap->pools, (size_t)(c->svc - c->snap->cfg->services), -1);
	home_snap_unref(c->snap);
	home_live_remove(c->home, &c->link);
	free(c);
}

void h2s_start(const struct http_start *st, struct tstream *cli)
{
	struct h2s_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		tstream_free(cli);
		return;
	}
	c->home = st->home;
	c->snap = st->snap;
	c->snap->refs++;
	c->svc = st->svc;
	c->cli = cli;
	c->tls = tstream_ssl(cli) != NULL;
	c->outcome = OUTCOME_OK;
	h2s_metrics_connection();
	pool_service_open(c->snap->pools, (size_t)(c->svc - c->snap->cfg->services), 1);
	memcpy(&c->peer, st->peer, st->peerlen < sizeof(c->peer) ? st->peerlen : sizeof(c->peer));
	if (st->local && st->locallen && st->locallen <= sizeof(c->local)) {
		memcpy(&c->local, st->local, st->locallen);
		c->locallen = st->locallen;
	}
	addr_text(st->peer, st->peerlen, c->client, sizeof(c->client), c->client_ip, sizeof(c->client_ip));
	if (st->sni)
		snprintf(c->sni, sizeof(c->sni), "%s", st->sni);
	http_clock(&c->start);
	c->idle_since = http_now_ms();
	c->link.close_now = h2s_close_now;
	home_live_add(c->home, &c->link);
	struct h2_config cfg;
	h2_config_default(&cfg);
	cfg.enable_connect_protocol = h2t_offer_websocket(c->svc);
	c->h2 = h2_new(&cfg, &h2s_ops, c);
	c->tick = event_new(c->home->base, -1, EV_PERSIST, h2s_on_tick, c);
	c->flush = event_new(c->home->base, -1, 0, h2s_on_flush, c);
	c->flush_late = evtimer_new(c->home->base, h2s_on_flush, c);
	struct timeval tv = { 0, H2S_TICK_MS * 1000 };
	if (!c->h2 || !c->tick || !c->flush || !c->flush_late ||
	    event_priority_set(c->flush, HOME_PRIORITY_IDLE) != 0 || event_add(c->tick, &tv) != 0) {
		h2s_free(c, OUTCOME_NO_MEMORY);
		return;
	}
	tstream_setcb(cli, h2s_cli_readable, h2s_cli_drained, h2s_cli_event, c);
	tstream_set_read_max(cli, H2S_READ_MAX);
	tstream_set_low_mark(cli, H2S_OUT_MAX / 2);
	tstream_read_enable(cli, true);
	h2s_write(c);
	/* Bytes that came with the handshake (the preface, often) are read now. */
	if (evbuffer_get_length(tstream_input(cli)))
		h2s_cli_readable(cli, c);
}
