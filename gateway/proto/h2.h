/*
 * h2.h - the server side of one HTTP/2 connection, over bytes (nghttp2 inside).
 *
 * The caller moves bytes: what the TLS stream read goes in through h2_recv,
 * what h2_output yields goes out to the TLS stream. Nothing here knows
 * sockets, TLS or libevent, and time comes in as an argument, so the whole
 * protocol runs in unit tests and fuzzers from bytes alone.
 *
 * Each stream's request reaches the caller as events of struct h2_stream_ops:
 * a complete head already translated to HTTP/1.1 (h2head.h), body bytes, the
 * end, or a reset. A stream that breaks a rule of RFC 9113 (malformed fields,
 * a content-length that disagrees with its DATA) is reset here and never
 * reaches the caller as a request. Answers go back per stream: a head
 * (h2_respond), body bytes (h2_send_data), the end with optional trailers
 * (h2_send_end).
 *
 * Memory is bounded by the configuration: request bodies are flow-controlled
 * by what the caller says it has passed on (h2_consume), response bodies by
 * a per-stream buffer whose room h2_send_data reports. The denial-of-service
 * shapes of HTTP/2 (rapid reset CVE-2023-44487, CONTINUATION floods, PING and
 * SETTINGS floods, empty DATA frames CVE-2019-9518, a connection window kept
 * shut) end the connection with GOAWAY, a stream window kept shut ends its
 * stream with RST_STREAM; each is counted in struct h2_stats.
 *
 * Threads: a connection belongs to one thread. Callbacks run inside h2_recv,
 * h2_output, h2_consume and h2_reset_stalled; from a callback the caller may call h2_respond,
 * h2_send_data, h2_send_end, h2_reset and h2_consume, never h2_free.
 */
#ifndef ONEGATE_H2_H
#define ONEGATE_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/h2head.h"

#ifdef __cplusplus
extern "C" {
#endif

struct h2_config {
	uint32_t max_concurrent_streams;        /* SETTINGS_MAX_CONCURRENT_STREAMS */
	uint32_t max_header_list_size;          /* SETTINGS_MAX_HEADER_LIST_SIZE; past it: 431 */
	uint32_t stream_window;                 /* request body bytes a stream may have in flight */
	uint32_t connection_window;             /* the same for all streams of the connection */
	uint32_t stream_out_buffer;             /* response body bytes held per stream */
	uint32_t max_continuations;             /* CONTINUATION frames after one HEADERS */
	uint32_t flood_interval_ms;             /* the window the four counts below are taken over */
	uint32_t max_resets;                    /* RST_STREAM from the client per interval */
	uint32_t max_pings;                     /* PING per interval */
	uint32_t max_settings;                  /* SETTINGS per interval */
	uint32_t max_empty_data;                /* DATA frames with no data and no END_STREAM per interval */
	bool enable_connect_protocol;           /* RFC 8441 extended CONNECT (WebSocket) */
};

/* Sensible limits: 100 streams, 32 KiB of fields, 1 MiB stream and 4 MiB
 * connection windows, 64 KiB out per stream, 8 CONTINUATIONs, and per second
 * at most 100 resets, 20 PINGs, 20 SETTINGS and 100 empty DATA frames. */
void h2_config_default(struct h2_config *cfg);

/* Counts since the connection began; the caller adds them to /metrics. */
struct h2_stats {
	uint64_t streams;                       /* requests handed to the caller */
	uint64_t malformed;                     /* streams reset for breaking RFC 9113 8 */
	uint64_t too_large;                     /* streams answered 431: fields past the limit */
	uint64_t not_implemented;               /* streams answered 501: CONNECT and the like */
	uint64_t resets_received;               /* RST_STREAM from the client */
	uint64_t rapid_reset;                   /* GOAWAY: too many resets in an interval */
	uint64_t continuation_flood;            /* GOAWAY: too many CONTINUATION frames */
	uint64_t ping_flood;                    /* GOAWAY: too many PINGs in an interval */
	uint64_t settings_flood;                /* GOAWAY: too many SETTINGS in an interval */
	uint64_t empty_data_flood;              /* GOAWAY: too many empty DATA frames in an interval */
	uint64_t zero_window_stalls;            /* GOAWAY: the client kept its window shut too long */
	uint64_t stream_stalls;                 /* RST_STREAM: the client kept a stream's window shut too long */
	uint64_t protocol_errors;               /* GOAWAY: any other connection error */
};

/* A request head, valid during the callback. */
struct h2_request {
	const char *head;                       /* HTTP/1.1 request head with Connection: close, final CRLF included */
	size_t head_len;
	const struct h1_msg *msg;               /* head as h1_parse would read it (h2head_req_write) */
	bool end_stream;                        /* no body follows */
	bool websocket;                         /* extended CONNECT; the head asks for an Upgrade */
	bool expect_continue;
	const struct h2head_req *fields;        /* method, authority, path... as the client sent them */
};

struct h2_stream_ops {
	/* A stream's request. Returns 0, or -1 to refuse it (the stream is reset). */
	int (*request)(void *ctx, int32_t stream_id, const struct h2_request *req);
	/* Body bytes; they count against the windows until h2_consume gives them back. */
	void (*data)(void *ctx, int32_t stream_id, const uint8_t *p, size_t len);
	/* The request has ended; trailers (n fields, maybe 0) valid during the call. */
	void (*end)(void *ctx, int32_t stream_id, const struct h2head_field *trailers, size_t n);
	/* The client reset the stream, the connection ended it before both sides
	 * finished, or h2_reset_stalled did (ENHANCE_YOUR_CALM); error_code as
	 * RFC 9113 7. The stream id is dead after this. */
	void (*reset)(void *ctx, int32_t stream_id, uint32_t error_code);
	/* A stream that h2_send_data filled up has room again. */
	void (*writable)(void *ctx, int32_t stream_id);
};

struct h2_conn;

/* NULL when memory runs out. The connection's SETTINGS are queued for output. */
struct h2_conn *h2_new(const struct h2_config *cfg, const struct h2_stream_ops *ops, void *ctx);
void h2_free(struct h2_conn *c);

/* Lets go of the memory kept from streams that ended for the streams to come
 * (at most 32 streams' worth): for a connection with none open, say. */
void h2_trim(struct h2_conn *c);

/* Bytes from the client; now_ms is any monotonic clock. Returns 0, or -1 when
 * the connection must close once h2_output is drained (a GOAWAY is queued). */
int h2_recv(struct h2_conn *c, const uint8_t *p, size_t len, uint64_t now_ms);
/* The next bytes for the client, valid until the next call into c; 0 when
 * nothing is to be sent now. Call until it returns 0. */
ssize_t h2_output(struct h2_conn *c, const uint8_t **p);
/* Whether the connection is over: nothing more to read or to write. */
bool h2_done(const struct h2_conn *c);

/* The response head for a stream: fields as h2head_resp_fields makes them.
 * end_stream: no body. A 1xx head may precede the final one. Returns 0 or -1. */
int h2_respond(struct h2_conn *c, int32_t stream_id, const struct h2head_field *fields, size_t n, bool end_stream);
/* Queues body bytes and returns how many fit (the rest: after writable). */
size_t h2_send_data(struct h2_conn *c, int32_t stream_id, const uint8_t *p, size_t len);
/* The body ends after what is queued, with trailers when n > 0. Returns 0 or -1. */
int h2_send_end(struct h2_conn *c, int32_t stream_id, const struct h2head_field *trailers, size_t n);
/* The caller's own pointer for a stream, kept with h2.c's in nghttp2's
 * per-stream user data: found in constant time from a stream id. NULL until
 * set, and once the stream is gone from h2 (after its reset event, or its end). */
void h2_stream_set_ctx(struct h2_conn *c, int32_t stream_id, void *ctx);
void *h2_stream_ctx(struct h2_conn *c, int32_t stream_id);
/* Ends a stream with RST_STREAM (error_code as RFC 9113 7). */
void h2_reset(struct h2_conn *c, int32_t stream_id, uint32_t error_code);
/* The caller has passed on n body bytes of the stream: open the windows again.
 * Every byte a data event gave counts, also after the stream has ended. */
void h2_consume(struct h2_conn *c, int32_t stream_id, size_t n);

/* Graceful close (reload, shutdown): GOAWAY with the last stream taken; open
 * streams finish, new ones are refused. */
void h2_shutdown(struct h2_conn *c);
/* Whether response bytes wait on the connection's window, which the client
 * keeps at zero: the caller arms its stall timer while this is true and calls
 * h2_stalled (GOAWAY ENHANCE_YOUR_CALM) when it fires. */
bool h2_window_stalled(const struct h2_conn *c);
void h2_stalled(struct h2_conn *c);
/* The same for each stream, while the connection's window is open (a client
 * that stops reading one stream, a WebSocket tunnel say, and goes on with the
 * others): the caller calls this on its clock (now_ms, never 0), and a stream
 * whose answer has waited on its own shut window for after_ms since the call
 * that first saw it is reset alone (RST_STREAM ENHANCE_YOUR_CALM, counted in
 * stream_stalls), with a reset event when the caller has not ended it. */
void h2_reset_stalled(struct h2_conn *c, uint64_t now_ms, uint64_t after_ms);

const struct h2_stats *h2_conn_stats(const struct h2_conn *c);

#ifdef __cplusplus
}
#endif
#endif
