#include "proto/h2.h"

#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "proto/h2mem.h"

/* How many events of one kind in the current interval; the interval restarts
 * when the clock has moved past it. */
struct h2_rate {
	uint64_t start_ms;
	uint32_t count;
};

/* The first size of a stream's response body buffer (it doubles up to stream_out_buffer). */
#define H2_OUT_FIRST 4096

/* Streams done with, kept by their connection for its next ones (h2_trim() lets
 * them go): malloc is slow at a stream's size, and each would take its field
 * arena and answer buffer afresh. Buffers past these sizes are not kept. */
#define H2_SPARE_STREAMS 32
#define H2_SPARE_ARENA 4096

struct h2_stream {
	/* Kept from one use of the struct to the next (h2_stream_new()). */
	char *arena;
	uint32_t arena_cap;                     /* as req.arena_cap when the stream began */
	uint8_t *out;
	size_t out_cap;                         /* grows up to cfg.stream_out_buffer */

	/* From here to req, zeroed for each stream. */
	struct h2_conn *c;
	struct h2_stream *prev, *next;
	int32_t id;
	void *caller;                           /* h2_stream_set_ctx() */

	/* the request */
	struct h2head_req *trailers;            /* allocated when a second HEADERS comes */
	char *trailer_arena;
	uint64_t field_bytes;                   /* RFC 9113 6.5.2: name + value + 32 per field */
	uint64_t data_bytes;
	bool too_large;                         /* answered 431 when the block ends */
	bool refused;                           /* reset or answered here: no more events */
	bool delivered;                         /* the caller has the request */
	bool caller_done;                       /* the caller ended or reset it: no reset event */

	/* the response body, in out */
	size_t out_off, out_len;
	bool out_end, deferred, want_writable;
	bool end_sent;                          /* the body's end has gone to nghttp2 */
	uint64_t stalled_since;                 /* since when its answer waits on its shut window, or 0 */
	nghttp2_nv *out_trailers;               /* one block: the array, then names and values */
	size_t n_out_trailers;

	/* Last: its field table is not cleared (h2head_req_init()). */
	struct h2head_req req;
};

struct h2_conn {
	nghttp2_session *session;
	struct h2mem *mem;                      /* nghttp2's allocations */
	struct h2_config cfg;
	const struct h2_stream_ops *ops;
	void *ctx;
	struct h2_stats stats;
	struct h2_stream *streams;
	/* The stream h2_stream_of() found last: a request's frames and the calls for its
	 * answer ask for the same one a dozen times in a row, and nghttp2's map costs
	 * some 35 instructions a look. Never a freed one (h2_stream_free). */
	struct h2_stream *last;
	struct h2_stream *spare;                /* done with, kept for the next streams */
	unsigned nspare;
	uint64_t now_ms;
	struct h2_rate resets, pings, settings, empty_data;
	bool goaway_ours;                       /* the GOAWAY about to go is one this module chose */
	bool dead;                              /* nghttp2 failed fatally: nothing more in or out */
};

void h2_config_default(struct h2_config *cfg)
{
	*cfg = (struct h2_config){
		.max_concurrent_streams = 100,
		.max_header_list_size = 32 * 1024,
		/* At 256 KiB an upload's client waited on the stream window (curl
		 * spins meanwhile): 40% of HTTP/1.1's speed. 1 MiB keeps it sending;
		 * the connection's 4 MiB lets four such uploads run at once and is
		 * what one connection's request bodies can hold (docs/http2.md). */
		.stream_window = 1024 * 1024,
		.connection_window = 4 * 1024 * 1024,
		.stream_out_buffer = 64 * 1024,
		.max_continuations = 8,
		.flood_interval_ms = 1000,
		.max_resets = 100,
		.max_pings = 20,
		.max_settings = 20,
		.max_empty_data = 100,
		.enable_connect_protocol = true,
	};
}

static bool h2_rate_over(struct h2_conn *c, struct h2_rate *r, uint32_t max)
{
	if (c->now_ms - r->start_ms >= c->cfg.flood_interval_ms) {
		r->start_ms = c->now_ms;
		r->count = 0;
	}
	return ++r->count > max;
}

/* Ends the connection for a flood: GOAWAY(ENHANCE_YOUR_CALM), then nothing more is read. */
static int h2_calm(struct h2_conn *c, uint64_t *counter)
{
	(*counter)++;
	c->goaway_ours = true;
	nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static struct h2_stream *h2_stream_of(struct h2_conn *c, int32_t id)
{
	if (c->last && c->last->id == id)
		return c->last;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(c->session, id);
	if (s)
		c->last = s;
	return s;
}

/* A stream's struct, a spare one when the connection has one; NULL without memory. */
static struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id)
{
	struct h2_stream *s = c->spare;
	if (s) {
		c->spare = s->next;
		c->nspare--;
	} else if ((s = malloc(sizeof(*s)))) {
		s->arena = NULL;
		s->arena_cap = 0;
		s->out = NULL;
		s->out_cap = 0;
	} else {
		return NULL;
	}
	memset(&s->c, 0, offsetof(struct h2_stream, req) - offsetof(struct h2_stream, c));
	s->c = c;
	s->id = id;
	h2head_req_init(&s->req, s->arena, s->arena_cap);
	return s;
}

static void h2_stream_release(struct h2_stream *s)
{
	free(s->arena);
	free(s->out);
	free(s);
}

static void h2_stream_free(struct h2_stream *s)
{
	struct h2_conn *c = s->c;
	if (c->last == s)
		c->last = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->trailers);
	free(s->trailer_arena);
	free(s->out_trailers);
	if (c->nspare == H2_SPARE_STREAMS) {
		h2_stream_release(s);
		return;
	}
	/* Buffers that grew for a large head or answer go. */
	s->arena_cap = s->req.arena_cap;
	if (s->arena_cap > H2_SPARE_ARENA) {
		free(s->arena);
		s->arena = NULL;
		s->arena_cap = 0;
	}
	if (s->out_cap > H2_OUT_FIRST) {
		free(s->out);
		s->out = NULL;
		s->out_cap = 0;
	}
	s->next = c->spare;
	c->spare = s;
	c->nspare++;
}

void h2_trim(struct h2_conn *c)
{
	while (c->spare) {
		struct h2_stream *s = c->spare;
		c->spare = s->next;
		h2_stream_release(s);
	}
	c->nspare = 0;
	h2mem_trim(c->mem);
}

/* The stream breaks RFC 9113 8: RST_STREAM(PROTOCOL_ERROR), never a request. */
static void h2_malformed(struct h2_conn *c, struct h2_stream *s)
{
	if (s->refused)
		return;
	s->refused = true;
	c->stats.malformed++;
	nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
}

/* An answer of our own, without body, for a stream the caller never sees. */
static void h2_answer(struct h2_conn *c, struct h2_stream *s, const char *status)
{
	s->refused = true;
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_submit_response(c->session, s->id, &nv, 1, NULL);
}

static int h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *c = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2_stream *s = h2_stream_of(c, frame->hd.stream_id);
	if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		s = h2_stream_new(c, frame->hd.stream_id);
		if (!s)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		s->next = c->streams;
		if (c->streams)
			c->streams->prev = s;
		c->streams = s;
		nghttp2_session_set_stream_user_data(session, s->id, s);
		return 0;
	}
	if (!s || s->refused)
		return 0;
	/* A second block: trailers, which must end the stream (RFC 9113 8.1). */
	if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) || s->trailers) {
		h2_malformed(c, s);
		return 0;
	}
	s->trailers = malloc(sizeof(*s->trailers));
	if (!s->trailers)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	h2head_req_init(s->trailers, NULL, 0);
	s->field_bytes = 0;
	return 0;
}

/* Adds a field to a block, growing its arena up to the header list limit. */
static enum h2head_result h2_add_field(struct h2_conn *c, struct h2head_req *r, char **arena, const uint8_t *name,
				       size_t nlen, const uint8_t *value, size_t vlen)
{
	for (;;) {
		enum h2head_result e = h2head_req_add(r, (const char *)name, nlen, (const char *)value, vlen);
		if (e != H2HEAD_ERR_FULL)
			return e;
		uint32_t cap = r->arena_cap ? r->arena_cap * 2 : 1024;
		if (cap > c->cfg.max_header_list_size)
			cap = c->cfg.max_header_list_size;
		if (cap <= r->arena_cap)
			return H2HEAD_ERR_TOO_MANY;
		char *grown = realloc(*arena, cap);
		if (!grown)
			return H2HEAD_ERR_TOO_MANY;
		*arena = grown;
		r->arena = grown;
		r->arena_cap = cap;
	}
}

static int h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
			const uint8_t *value, size_t vlen, uint8_t flags, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *s = h2_stream_of(c, frame->hd.stream_id);
	if (!s || s->refused || s->too_large)
		return 0;
	s->field_bytes += nlen + vlen + 32;
	if (s->field_bytes > c->cfg.max_header_list_size) {
		s->too_large = true;
		return 0;
	}
	bool trailer = s->trailers != NULL;
	if (trailer && nlen && name[0] == ':') {
		h2_malformed(c, s);
		return 0;
	}
	enum h2head_result e = trailer ? h2_add_field(c, s->trailers, &s->trailer_arena, name, nlen, value, vlen)
				       : h2_add_field(c, &s->req, &s->arena, name, nlen, value, vlen);
	if (e == H2HEAD_ERR_TOO_MANY)
		s->too_large = true;
	else if (e != H2HEAD_OK)
		h2_malformed(c, s);
	return 0;
}

/* A Sec-WebSocket-Key of our own, 16 random bytes in base64: the HTTP/2 client
 * sends none (RFC 8441 5), an HTTP/1.1 back end wants one (RFC 6455 4.1). */
static void h2_websocket_key(char out[25])
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t r[18] = { 0 };
	arc4random_buf(r, 16);
	for (int i = 0; i < 6; i++) {
		uint32_t v = (uint32_t)r[3 * i] << 16 | (uint32_t)r[3 * i + 1] << 8 | r[3 * i + 2];
		for (int k = 0; k < 4; k++)
			out[4 * i + k] = b64[(v >> (18 - 6 * k)) & 63];
	}
	out[22] = out[23] = '=';
	out[24] = 0;
}

/* The head as HTTP/1.1, handed to the caller. */
static int h2_deliver(struct h2_conn *c, struct h2_stream *s, bool end_stream)
{
	enum h2head_result e = h2head_req_end(&s->req);
	if (e == H2HEAD_ERR_METHOD) {
		c->stats.not_implemented++;
		h2_answer(c, s, "501");
		return 0;
	}
	if (e != H2HEAD_OK) {
		h2_malformed(c, s);
		return 0;
	}
	bool ws = h2head_req_is_websocket(&s->req);
	char ws_key[25];
	if (ws)
		h2_websocket_key(ws_key);
	size_t cap = (size_t)s->req.arena_used + 4 * s->req.nfields + 2 * s->req.ncookies + 224;
	char small[2048];
	char *head = cap <= sizeof(small) ? small : malloc(cap);
	if (!head)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	struct h1_msg msg;
	h1_req_init(&msg, 0);
	struct h2head_write w = { .body_follows = !end_stream, .close = true, .ws_key = ws ? ws_key : NULL };
	size_t len = h2head_req_write(&s->req, &w, head, cap, &msg);
	struct h2_request req = {
		.head = head,
		.head_len = len,
		.msg = &msg,
		.end_stream = end_stream,
		.websocket = ws,
		.expect_continue = s->req.expect_continue,
		.fields = &s->req,
	};
	c->stats.streams++;
	s->delivered = true;
	int rc = len ? c->ops->request(c->ctx, s->id, &req) : -1;
	if (head != small)
		free(head);
	if (rc != 0) {
		s->refused = true;
		s->caller_done = true;
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
	}
	return 0;
}

/* The request's end, with its trailers; content-length must match the DATA
 * (RFC 9113 8.1.1). */
static int h2_request_end(struct h2_conn *c, struct h2_stream *s)
{
	if (s->req.has_content_length && s->data_bytes != s->req.content_length) {
		h2_malformed(c, s);
		return 0;
	}
	struct h2head_field *fields = NULL;
	size_t n = s->trailers ? s->trailers->nfields : 0;
	if (n) {
		fields = calloc(n, sizeof(*fields));
		if (!fields)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		const struct h2head_req *t = s->trailers;
		for (size_t i = 0; i < n; i++)
			fields[i] = (struct h2head_field){
				t->arena + t->fields[i].name.off, t->arena + t->fields[i].value.off,
				t->fields[i].name.len, t->fields[i].value.len, false,
			};
	}
	c->ops->end(c->ctx, s->id, fields, n);
	free(fields);
	return 0;
}

static int h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *s = frame->hd.stream_id ? h2_stream_of(c, frame->hd.stream_id) : NULL;
	bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (!s || s->refused)
			return 0;
		if (s->too_large) {
			c->stats.too_large++;
			h2_answer(c, s, "431");
			return 0;
		}
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			int rc = h2_deliver(c, s, end_stream);
			if (rc || s->refused || !end_stream)
				return rc;
		}
		return h2_request_end(c, s);
	case NGHTTP2_DATA:
		/* No data, no end (padding alone counts as none): nothing a client needs to send,
		 * and each costs a pass through the parser (CVE-2019-9518). */
		if (!end_stream && frame->hd.length == frame->data.padlen &&
		    h2_rate_over(c, &c->empty_data, c->cfg.max_empty_data))
			return h2_calm(c, &c->stats.empty_data_flood);
		if (s && !s->refused && s->delivered && end_stream)
			return h2_request_end(c, s);
		return 0;
	case NGHTTP2_RST_STREAM:
		c->stats.resets_received++;
		if (h2_rate_over(c, &c->resets, c->cfg.max_resets))
			return h2_calm(c, &c->stats.rapid_reset);
		return 0;
	case NGHTTP2_PING:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && h2_rate_over(c, &c->pings, c->cfg.max_pings))
			return h2_calm(c, &c->stats.ping_flood);
		return 0;
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && h2_rate_over(c, &c->settings, c->cfg.max_settings))
			return h2_calm(c, &c->stats.settings_flood);
		return 0;
	default:
		return 0;
	}
}

static int h2_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
			    size_t len, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (!s || s->refused || !s->delivered) {
		nghttp2_session_consume(session, stream_id, len);
		if (s && !s->refused)
			h2_malformed(c, s);
		return 0;
	}
	s->data_bytes += len;
	if (s->req.has_content_length && s->data_bytes > s->req.content_length) {
		nghttp2_session_consume(session, stream_id, len);
		h2_malformed(c, s);
		return 0;
	}
	c->ops->data(c->ctx, stream_id, data, len);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (!s)
		return 0;
	/* The caller still finds its own pointer during the event (h2_stream_ctx()). */
	if (s->delivered && !s->caller_done)
		c->ops->reset(c->ctx, stream_id, error_code == NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : error_code);
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	h2_stream_free(s);
	return 0;
}

static int h2_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct h2_conn *c = user_data;
	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && !c->goaway_ours)
		c->stats.protocol_errors++;
	return 0;
}

/* Response body bytes for nghttp2, from the stream's buffer. */
static ssize_t h2_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
			    uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct h2_stream *s = source->ptr;
	size_t avail = s->out_len - s->out_off;
	if (avail == 0 && !s->out_end) {
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = avail < length ? avail : length;
	if (n)
		memcpy(buf, s->out + s->out_off, n);
	s->out_off += n;
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_end && s->out_len == 0) {
		s->end_sent = true;
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->n_out_trailers) {
			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(session, stream_id, s->out_trailers, s->n_out_trailers);
		}
	}
	return (ssize_t)n;
}

struct h2_conn *h2_new(const struct h2_config *cfg, const struct h2_stream_ops *ops, void *ctx)
{
	struct h2_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cfg = *cfg;
	c->ops = ops;
	c->ctx = ctx;
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	if (!(c->mem = h2mem_new()) || nghttp2_session_callbacks_new(&cb) != 0) {
		h2mem_free(c->mem);
		free(c);
		return NULL;
	}
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		h2mem_free(c->mem);
		free(c);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
	/* h2head checks every field: one validator, whose refusals are counted. */
	nghttp2_option_set_no_http_messaging(opt, 1);
	/* Windows open as the caller passes body bytes on, not as they arrive. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_no_closed_streams(opt, 1);
	nghttp2_option_set_max_continuations(opt, cfg->max_continuations);
	/* nghttp2's own reset limiter counts in wall-clock seconds; ours counts in
	 * intervals of the caller's clock, the one configured and tested, so the
	 * library's is set out of its way. */
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT32_MAX, UINT32_MAX);
	int rc = nghttp2_session_server_new3(&c->session, cb, c, opt, h2mem_nghttp2(c->mem));
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc != 0) {
		h2mem_free(c->mem);
		free(c);
		return NULL;
	}
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_list_size },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->stream_window },
		{ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
		{ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, cfg->enable_connect_protocol },
	};
	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, (int32_t)cfg->connection_window) != 0) {
		h2_free(c);
		return NULL;
	}
	return c;
}

void h2_free(struct h2_conn *c)
{
	if (!c)
		return;
	nghttp2_session_del(c->session);
	while (c->streams)
		h2_stream_free(c->streams);
	h2_trim(c);
	h2mem_free(c->mem);
	free(c);
}

int h2_recv(struct h2_conn *c, const uint8_t *p, size_t len, uint64_t now_ms)
{
	/* After a GOAWAY of ours nothing more is read: only its bytes go out. */
	if (c->dead || c->goaway_ours)
		return -1;
	c->now_ms = now_ms;
	ssize_t n = nghttp2_session_mem_recv(c->session, p, len);
	if (n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
		/* nghttp2 counts them (nghttp2_option_set_max_continuations) and stops
		 * reading; the GOAWAY is ours to send. */
		h2_calm(c, &c->stats.continuation_flood);
	} else if (n < 0 && !c->goaway_ours) {
		c->stats.protocol_errors++;
		c->dead = true;
	}
	return n < 0 || !nghttp2_session_want_read(c->session) ? -1 : 0;
}

/* Streams whose buffer filled up hear that it has room again. */
static void h2_notify_writable(struct h2_conn *c)
{
	bool again = true;
	while (again) {
		again = false;
		for (struct h2_stream *s = c->streams; s; s = s->next) {
			if (s->want_writable && s->out_len < c->cfg.stream_out_buffer) {
				s->want_writable = false;
				c->ops->writable(c->ctx, s->id);
				again = true;   /* the callback may have ended streams: walk again */
				break;
			}
		}
	}
}

ssize_t h2_output(struct h2_conn *c, const uint8_t **p)
{
	if (c->dead)
		return 0;
	ssize_t n = nghttp2_session_mem_send(c->session, p);
	if (n == 0) {
		h2_notify_writable(c);
		n = nghttp2_session_mem_send(c->session, p);
	}
	if (n < 0) {
		c->stats.protocol_errors++;
		c->dead = true;
		return 0;
	}
	return n;
}

bool h2_done(const struct h2_conn *c)
{
	return c->dead || (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session));
}

/* Fields as nghttp2 takes them, in room (room_n of them) when they fit, else allocated;
 * names that are literals (name_static) nghttp2 neither copies nor lower-cases. */
static nghttp2_nv *h2_nv(const struct h2head_field *f, size_t n, nghttp2_nv *room, size_t room_n)
{
	nghttp2_nv *nv = n <= room_n ? room : calloc(n, sizeof(*nv));
	for (size_t i = 0; nv && i < n; i++)
		nv[i] = (nghttp2_nv){ (uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len, f[i].value_len,
				      f[i].name_static ? NGHTTP2_NV_FLAG_NO_COPY_NAME : NGHTTP2_NV_FLAG_NONE };
	return nv;
}

int h2_respond(struct h2_conn *c, int32_t stream_id, const struct h2head_field *fields, size_t n, bool end_stream)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (!s || !s->delivered || s->caller_done || n == 0)
		return -1;
	nghttp2_nv room[32];
	nghttp2_nv *nv = h2_nv(fields, n, room, sizeof(room) / sizeof(room[0]));
	if (!nv)
		return -1;
	int rc;
	bool informational = fields[0].value_len == 3 && fields[0].value[0] == '1';
	if (informational) {
		rc = nghttp2_submit_headers(c->session, NGHTTP2_FLAG_NONE, stream_id, NULL, nv, n, NULL);
	} else {
		nghttp2_data_provider body = { .source.ptr = s, .read_callback = h2_read_body };
		rc = nghttp2_submit_response(c->session, stream_id, nv, n, end_stream ? NULL : &body);
		if (end_stream)
			s->caller_done = true;
	}
	if (nv != room)
		free(nv);
	return rc == 0 ? 0 : -1;
}

size_t h2_send_data(struct h2_conn *c, int32_t stream_id, const uint8_t *p, size_t len)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (!s || s->caller_done || s->out_end)
		return 0;
	size_t cap = c->cfg.stream_out_buffer;
	if (s->out_off) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	/* The buffer grows with what it holds: a whole stream_out_buffer for every stream of a
	 * busy connection, taken and given back at each answer, made the heap grow and shrink
	 * (page faults) where most answers are a few KiB. */
	size_t want = s->out_len + len < cap ? s->out_len + len : cap;
	if (want > s->out_cap) {
		size_t grown = s->out_cap ? s->out_cap : H2_OUT_FIRST;
		while (grown < want)
			grown *= 2;
		if (grown > cap)
			grown = cap;
		uint8_t *out = realloc(s->out, grown);
		if (!out)
			return 0;
		s->out = out;
		s->out_cap = grown;
	}
	size_t n = s->out_cap - s->out_len < len ? s->out_cap - s->out_len : len;
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
	s->want_writable = n < len;
	if (s->deferred && n) {
		s->deferred = false;
		nghttp2_session_resume_data(c->session, stream_id);
	}
	return n;
}

/* Copies trailers into one block nghttp2 can take after the body has gone. */
static nghttp2_nv *h2_copy_fields(const struct h2head_field *f, size_t n)
{
	size_t bytes = n * sizeof(nghttp2_nv);
	for (size_t i = 0; i < n; i++)
		bytes += f[i].name_len + f[i].value_len;
	nghttp2_nv *nv = malloc(bytes);
	if (!nv)
		return NULL;
	uint8_t *at = (uint8_t *)(nv + n);
	for (size_t i = 0; i < n; i++) {
		nv[i] = (nghttp2_nv){ at, at + f[i].name_len, f[i].name_len, f[i].value_len, NGHTTP2_NV_FLAG_NONE };
		memcpy(at, f[i].name, f[i].name_len);
		memcpy(at + f[i].name_len, f[i].value, f[i].value_len);
		at += f[i].name_len + f[i].value_len;
	}
	return nv;
}

int h2_send_end(struct h2_conn *c, int32_t stream_id, const struct h2head_field *trailers, size_t n)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (!s || s->caller_done || s->out_end)
		return -1;
	if (n) {
		s->out_trailers = h2_copy_fields(trailers, n);
		if (!s->out_trailers)
			return -1;
		s->n_out_trailers = n;
	}
	s->out_end = true;
	s->caller_done = true;
	s->want_writable = false;
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(c->session, stream_id);
	}
	return 0;
}

void h2_stream_set_ctx(struct h2_conn *c, int32_t stream_id, void *ctx)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (s)
		s->caller = ctx;
}

void *h2_stream_ctx(struct h2_conn *c, int32_t stream_id)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	return s ? s->caller : NULL;
}

void h2_reset(struct h2_conn *c, int32_t stream_id, uint32_t error_code)
{
	struct h2_stream *s = h2_stream_of(c, stream_id);
	if (s) {
		s->caller_done = true;
		s->refused = true;
	}
	nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void h2_consume(struct h2_conn *c, int32_t stream_id, size_t n)
{
	/* The connection's window opens even when the stream has gone. */
	nghttp2_session_consume(c->session, stream_id, n);
}

void h2_shutdown(struct h2_conn *c)
{
	nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
			      NGHTTP2_NO_ERROR, NULL, 0);
}

/* Whether the stream has answer bytes that wait on a window. */
static bool h2_stream_waiting(const struct h2_stream *s)
{
	return s->out_len != s->out_off || (s->out_end && !s->end_sent);
}

bool h2_window_stalled(const struct h2_conn *c)
{
	if (nghttp2_session_get_remote_window_size(c->session) > 0)
		return false;
	for (const struct h2_stream *s = c->streams; s; s = s->next)
		if (h2_stream_waiting(s))
			return true;
	return false;
}

void h2_stalled(struct h2_conn *c)
{
	c->stats.zero_window_stalls++;
	c->goaway_ours = true;
	nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
}

void h2_reset_stalled(struct h2_conn *c, uint64_t now_ms, uint64_t after_ms)
{
	bool conn_open = nghttp2_session_get_remote_window_size(c->session) > 0;
	for (struct h2_stream *s = c->streams; s; s = s->next) {
		if (!conn_open || s->refused || !h2_stream_waiting(s) ||
		    nghttp2_session_get_stream_remote_window_size(c->session, s->id) > 0) {
			s->stalled_since = 0;
			continue;
		}
		if (!s->stalled_since) {
			s->stalled_since = now_ms;
			continue;
		}
		if (now_ms - s->stalled_since < after_ms)
			continue;
		c->stats.stream_stalls++;
		bool tell = s->delivered && !s->caller_done;
		s->caller_done = true;
		s->refused = true;
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_ENHANCE_YOUR_CALM);
		/* The stream closes once the reset has gone: no event then, this one now. */
		if (tell)
			c->ops->reset(c->ctx, s->id, NGHTTP2_ENHANCE_YOUR_CALM);
	}
}

const struct h2_stats *h2_conn_stats(const struct h2_conn *c)
{
	return &c->stats;
}
