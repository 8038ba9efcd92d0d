/*
 * head.h - HTTP/1.1 heads as the gateway writes them: the request head a back
 * end gets, the response head a client gets, our own short answers, and the
 * rules they follow (reason phrases, hop-by-hop headers, forwarding headers,
 * credentials that bind a server connection).
 *
 * Pure: no session, no socket, no clock; a head goes into the evbuffer given,
 * in place (one reserved piece, no formatting on the request and response
 * paths). Input is a head h1_parse() accepted, so every byte copied was
 * checked. Header edits (plugins) come in as two callbacks, so this file
 * depends on h1.h and libevent's buffers alone and is fuzzed on its own
 * (tests/fuzz/fuzz_http_head.c). Any thread; nothing is kept between calls.
 */
#ifndef ONEGATE_HTTP_HEAD_H
#define ONEGATE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/h1.h"

struct evbuffer;

/* The longest normalized Host a session keeps (its buffer, NUL included). */
#define HTTP_HEAD_HOST_MAX 256

/* RFC 9110's reason phrase for status (6585 and 7725's too), or "Status". */
const char *http_head_reason(int status);
/* Hop-by-hop headers (RFC 9110 7.6.1): the connection's, not the message's.
 * name: token bytes, as every name of a parsed head (h1_name_is()). */
bool http_head_hop_by_hop(const char *name, size_t len);
/* Forwarding headers a client must not be able to forge: we set them.
 * name: token bytes, as every name of a parsed head. */
bool http_head_forwarding(const char *name, size_t len);
/* Authorization / Proxy-Authorization (credentials, challenge false) or
 * WWW-Authenticate / Proxy-Authenticate (challenge true) offering NTLM or
 * Negotiate: the server connection that carries it is its client's alone. */
bool http_head_auth_binds(const char *head, const struct h1_header *h, bool challenge);

/* Edits to a message's headers (a route's plugins): called only when given. */
struct http_head_edits {
	/* Whether a header of the message goes out: false when an edit removed or replaced it. */
	bool (*kept)(const void *arg, const char *name, size_t len);
	/* Appends the headers the edits add ("Name: value\r\n" each). */
	void (*write)(const void *arg, struct evbuffer *out);
	const void *arg;
};

struct http_head_request {
	const char *head;               /* the client's request head */
	const struct h1_msg *q;         /* as h1_parse() left it */
	const char *target;             /* normalize_path's target, or NULL: the client's, in origin form */
	const char *host_rewrite;       /* the route's Host, or NULL: the client's */
	bool forwarded;                 /* add X-Forwarded-For/-Proto/-Host and Forwarded */
	const char *client_ip;
	bool tls;                       /* the client came over TLS (proto=https) */
	const char *host;               /* normalized Host (X-Forwarded-Host), host_len 0: none */
	size_t host_len;
	bool upgrade;                   /* pass the client's Upgrade on */
	const struct http_head_edits *edits;    /* or NULL */
};

/* Writes the request head the back end gets: the client's request line and
 * end-to-end headers, Host kept or rewritten, ours added. True when it carries
 * credentials that bind the server connection (http_head_auth_binds()). */
bool http_head_write_request(struct evbuffer *out, const struct http_head_request *in);

struct http_head_response {
	const char *head;               /* the server's response head */
	const struct h1_msg *r;         /* as h1_parse() left it */
	int status;
	const struct http_head_edits *edits;    /* or NULL */
	const char *set_cookie;         /* a whole Set-Cookie line to add (CRLF included), or NULL */
	bool keepalive;                 /* the client's connection stays open after this answer */
};

/* Whether a response is a 401/407 challenge that binds the server connection
 * (http_head_auth_binds()). */
bool http_head_response_binds(const char *head, const struct h1_msg *r, int status);

/* Writes the response head the client gets: HTTP/1.1, the server's status and
 * end-to-end headers, ours added. True when it is a 401/407 challenge that
 * binds the server connection (http_head_response_binds()). */
bool http_head_write_response(struct evbuffer *out, const struct http_head_response *in);

/* The head of one of our own answers, its body body_len bytes of text/plain
 * (none for 204 and 304); keep false adds Connection: close. */
void http_head_write_answer(struct evbuffer *out, int status, const char *extra, size_t body_len, bool keep);

#endif
