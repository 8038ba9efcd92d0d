/*
 * h2head.h - HTTP/2 header lists to HTTP/1.1 heads and back, strictly.
 *
 * Requests: the fields of a HEADERS block are added one by one as HPACK yields
 * them (h2head_req_add), checked as RFC 9113 8.2 and 8.3 say, and written as an
 * HTTP/1.1 request head (h2head_req_write) that h1_parse reads back unchanged,
 * with the spans h1_parse would find in it.
 * Everything a back end could read another way than the gateway (request
 * smuggling) is refused, never repaired: CR, LF, NUL and other control bytes,
 * leading or trailing whitespace, upper case or empty names, connection-specific
 * fields, TE other than "trailers", pseudo-headers that are unknown, repeated,
 * missing or after a regular field, a malformed or repeated content-length, a
 * host that disagrees with :authority.
 *
 * Responses: an HTTP/1.1 response head read by h1_parse becomes a field list
 * for HTTP/2 (h2head_resp_fields), hop-by-hop fields dropped, names lower-cased.
 *
 * Pure functions over bytes, no allocation: the caller owns every buffer and may
 * move the request's arena between calls (it holds offsets, not pointers).
 */
#ifndef ONEGATE_H2HEAD_H
#define ONEGATE_H2HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/h1.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Regular fields a request may carry: the written head adds Host, the joined
 * cookie and Transfer-Encoding, and stays within H1_MAX_HEADERS. */
#define H2HEAD_MAX_FIELDS (H1_MAX_HEADERS - 4)

/* One field as HPACK gives it and nghttp2 takes it (nghttp2_nv has this shape). */
struct h2head_field {
	const char *name, *value;
	size_t name_len, value_len;
	bool name_static;               /* name is a literal: outlives every call (nghttp2 need not copy it) */
};

enum h2head_result {
	H2HEAD_OK = 0,
	H2HEAD_ERR_MALFORMED = -1,      /* stream error PROTOCOL_ERROR (RFC 9113 8.1.1) */
	H2HEAD_ERR_FULL = -2,           /* the arena is too small: grow it and add the field again */
	H2HEAD_ERR_TOO_MANY = -3,       /* 431: more fields than an HTTP/1.1 head may carry */
	H2HEAD_ERR_METHOD = -4,         /* 501: CONNECT without :protocol, or a :protocol other than websocket */
};

struct h2head_span {
	uint32_t off, len;              /* in the arena */
};

struct h2head_req {
	/* The caller's storage for the copied fields; arena_cap may grow between calls. */
	char *arena;
	uint32_t arena_cap, arena_used;

	struct h2head_span method, scheme, authority, path, protocol;
	bool has_host;                  /* a host field, checked against :authority */
	struct h2head_span host;
	bool regular_seen;              /* pseudo-headers may no longer come */
	bool has_content_length;
	uint64_t content_length;        /* the DATA frames must add up to this */
	bool te_trailers;               /* TE: trailers (dropped: hop-by-hop in HTTP/1.1) */
	bool expect_continue;
	uint32_t ncookies;
	uint32_t nfields;
	const char *why;                /* the reason for an error, for logs */
	struct {
		struct h2head_span name, value;
		bool cookie;
	} fields[H2HEAD_MAX_FIELDS];
};

void h2head_req_init(struct h2head_req *r, char *arena, uint32_t arena_cap);
/* One field, as decoded. After H2HEAD_ERR_FULL nothing was kept: the caller
 * grows the arena (copying its arena_used bytes) and adds the same field again. */
enum h2head_result h2head_req_add(struct h2head_req *r, const char *name, size_t name_len, const char *value,
				  size_t value_len);
/* The block has ended: whether the pseudo-headers a request needs are there. */
enum h2head_result h2head_req_end(struct h2head_req *r);
/* Whether the request is an extended CONNECT (RFC 8441) for a WebSocket. */
bool h2head_req_is_websocket(const struct h2head_req *r);
/* What the written head carries beyond the client's fields. */
struct h2head_write {
	bool body_follows;      /* the HEADERS frame did not end the stream: a body without content-length goes chunked */
	bool close;             /* "connection: close": the back end's answer is the stream's whole answer */
	const char *ws_key;     /* an extended CONNECT's Sec-WebSocket-Key (24 base64 characters), chosen by the caller */
};

/* Writes the HTTP/1.1 head into out (cap bytes) and returns its length, or 0
 * when it does not fit (or an extended CONNECT has no ws_key). An extended
 * CONNECT also gets "sec-websocket-version: 13" when the client sent none.
 * m, when not NULL and h1_req_init()ed: the head as h1_parse() would read it
 * (h1_req_written()), so the reader need not parse the text again; 0 is
 * returned if h1's checks refuse it. */
size_t h2head_req_write(const struct h2head_req *r, const struct h2head_write *w, char *out, size_t cap,
			struct h1_msg *m);

/* A response head (parsed whole by h1_parse into m from head, which holds its
 * m->head_len bytes) as HTTP/2 fields:
 * ":status" first, hop-by-hop fields and those Connection lists dropped, names
 * lower-cased: the common ones as literals (name_static), the others into scratch
 * (at least as large as the head plus 4 bytes); values point into head. extended_connect: the request was an extended CONNECT, whose
 * 101 answer becomes 200 without its Upgrade fields (RFC 8441 5). Returns the
 * number of fields written to out, or -1 when out or scratch is too small. */
int h2head_resp_fields(const struct h1_msg *m, const char *head, bool extended_connect, char *scratch,
		       size_t scratch_cap, struct h2head_field *out, size_t out_cap);

/* Whether a field may not travel in a trailer section either way: the
 * connection-specific ones, and those RFC 9110 6.5.1 says a recipient must not
 * take from trailers (framing, routing, authentication, content and request
 * controls): connection, keep-alive, proxy-connection, transfer-encoding,
 * upgrade, te, trailer, content-length, content-type, content-encoding,
 * content-range, host, authorization, proxy-authorization, www-authenticate,
 * proxy-authenticate, cookie, set-cookie, expect, max-forwards, cache-control.
 * Any case. */
bool h2head_trailer_forbidden(const char *name, size_t len);

/* An HTTP/1.1 trailer section (the lines after a chunked body's last chunk,
 * the empty line that ends it included or not) as HTTP/2 fields: names
 * lower-cased into scratch (at least len bytes), values without their edge
 * whitespace pointing into block. A line that is not "token: value" with a
 * visible value, and a field h2head_trailer_forbidden() names, is dropped,
 * never repaired. Returns the number of fields written to out, or -1 when out
 * is too small. */
int h2head_trailer_fields(const char *block, size_t len, char *scratch, size_t scratch_cap,
			  struct h2head_field *out, size_t out_cap);

#ifdef __cplusplus
}
#endif
#endif
