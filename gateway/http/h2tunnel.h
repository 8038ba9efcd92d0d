/*
 * http/h2tunnel.h - what an HTTP/2 stream (http/h2session.c) adds to the
 * bytes its HTTP/1.1 session reads, and takes from those it writes, beyond a
 * plain request and answer: the request body's chunk framing and trailers,
 * the answer's trailers, and the WebSocket tunnel of an extended CONNECT.
 *
 * WebSocket over HTTP/2 (RFC 8441): h2.c turns the extended CONNECT into an
 * HTTP/1.1 GET with Upgrade: websocket and a Sec-WebSocket-Key of its own;
 * here it gets Sec-WebSocket-Version 13 when the client sent none. The session
 * sends it like any Upgrade (same routes, timeouts, access line and outcome
 * words); the back end's 101 comes back as :status 200 and from then on the
 * session is a relay (io/relay.h) whose client end is the stream: its DATA
 * both ways is the tunnel, held to the stream's windows one way and to the
 * stream's output buffer the other. The client's END_STREAM is the tunnel's
 * half-close (TSTREAM_EOF to the session), the session's shutdown is our
 * END_STREAM, a client's RST_STREAM breaks the tunnel and a broken tunnel
 * resets the stream with CONNECT_ERROR. Any answer but 101 is the stream's.
 *
 * Trailers: a chunked answer's trailer section becomes a trailing HEADERS
 * frame with END_STREAM; a request's trailers go to the back end as chunked
 * trailers when its body is sent chunked (it had no content-length); with a
 * content-length HTTP/1.1 has no place for them and they are dropped. Either
 * way the fields h2head_trailer_forbidden() names never pass.
 */
#ifndef ONEGATE_HTTP_H2TUNNEL_H
#define ONEGATE_HTTP_H2TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/h1.h"
#include "proto/h2.h"

struct evbuffer;
struct rules_service;

/* RFC 9113 7: the reset of a stream whose tunnel broke. */
#define H2T_CONNECT_ERROR 0xa

/* Whether the service's connections offer SETTINGS_ENABLE_CONNECT_PROTOCOL:
 * some route of it may reach an HTTP/1.1 back end (a pool, not passthrough). */
bool h2t_offer_websocket(const struct rules_service *svc);

/* Request body bytes into in, in a chunk of their own when chunked. Returns
 * the bytes of framing added (they count against no window). */
size_t h2t_request_data(struct evbuffer *in, bool chunked, const uint8_t *p, size_t len);

/* The end of a chunked request body, with the trailers that may pass. Returns
 * the bytes added (all of them framing). */
size_t h2t_request_end(struct evbuffer *in, const struct h2head_field *trailers, size_t n);

/* A chunked answer's trailer section, gathered from the framing bytes the
 * decoder reads. */
struct h2t_trailer {
	struct evbuffer *lines;         /* NULL until the answer has a trailer line */
};

/* One framing byte, before it is fed to the decoder ck: kept when it is part
 * of the trailer section. Returns -1 without memory. */
int h2t_trailer_byte(struct h2t_trailer *t, const struct h1_chunked *ck, char ch);
/* The answer's end: END_STREAM, on a trailing HEADERS frame when the section
 * has fields that may go. Returns 0 or -1 (the stream is then to be reset). */
int h2t_send_end(struct h2_conn *h2, int32_t id, struct h2t_trailer *t);
void h2t_trailer_free(struct h2t_trailer *t);

#endif
