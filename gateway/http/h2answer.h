/*
 * http/h2answer.h - one HTTP/2 stream's answer (http/h2session.c): what its
 * HTTP/1.1 session answers becomes HEADERS and DATA.
 *
 * A server's final answer head comes as the session read it (h2a_head()): its
 * parsed fields go to h2head_resp_fields() and out as HEADERS, with no
 * HTTP/1.1 text written and read again in between. Everything else the
 * session writes to the stream's tstream as it would to any HTTP/1.1 client:
 * the body bytes (a chunked body's framing is read and dropped), and the heads
 * that come as text (our own answers, 1xx heads, a head a route's plugins
 * edited), which are read back here with h1_parse. Either way the same rules
 * hold: hop-by-hop fields and those Connection lists never pass, a body cut
 * short of its framing resets the stream (INTERNAL_ERROR), never ends it.
 */
#ifndef ONEGATE_HTTP_H2ANSWER_H
#define ONEGATE_HTTP_H2ANSWER_H

#include <stdbool.h>
#include <stdint.h>

#include "http/h2tunnel.h"
#include "proto/h1.h"
#include "proto/h2.h"

struct evbuffer;

enum h2a_framing { H2A_NONE, H2A_LENGTH, H2A_CHUNKED, H2A_CLOSE };

/* Where the answer of one stream stands. */
struct h2a_answer {
	bool head_request;              /* HEAD: the answer's head says a length, no body follows */
	bool tunnel;                    /* an extended CONNECT: after a 101, DATA both ways is a tunnel */
	bool head_done, ended;
	enum h2a_framing framing;
	uint64_t left;
	struct h1_chunked chunks;
	struct h2t_trailer trailer;     /* a chunked answer's trailer section */
	struct h1_msg *text;            /* a head that came as text, as it reads back; NULL until one does */
};

void h2a_init(struct h2a_answer *a, bool head_request, bool tunnel);
void h2a_free(struct h2a_answer *a);

/* The stream ends here: what the session wrote (out) is dropped, and the
 * stream is reset with code unless it ended already. h2: the connection's, or
 * NULL when the stream is gone from it (the client reset it, or it closed). */
void h2a_fail(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, uint32_t code);

/* A server's final answer head (status 200 and up, or a tunnel's 101) as the
 * session read it: m parsed from head, set_cookie a whole Set-Cookie line the
 * session adds (CRLF included) or NULL. Returns 0 when the stream took it, -1
 * when the session is to write it as text (something it wrote before is still
 * in out). */
int h2a_head(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, const char *head,
             const struct h1_msg *m, const char *set_cookie);

/* Takes what the session wrote into out: a head that came as text, then body
 * bytes while the stream's buffer has room. shut: the session has ended its
 * side, so an empty out ends the answer (or resets a cut one). */
void h2a_take(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, bool shut);

#endif
