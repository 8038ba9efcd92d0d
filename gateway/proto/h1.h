/*
 * h1.h - HTTP/1.x message heads and chunked bodies, read strictly.
 *
 * The parser is incremental and zero-copy: the caller keeps the head's bytes
 * in one contiguous buffer that only grows at its end, calls again with the
 * longer buffer, and the parser resumes at the byte where it stopped. Results
 * are offset/length spans into that buffer. Nothing here allocates.
 *
 * Strict on purpose: everything a front end and a back end could read two
 * ways (request smuggling) is refused rather than repaired: CL with TE, a
 * repeated or malformed Content-Length (identical repeats too: nothing needs
 * them and each extra rule is one more way to disagree), Transfer-Encoding not
 * ending in chunked, obs-fold, bare CR or LF, control bytes, whitespace before
 * a colon, a missing or repeated Host, an absolute-form target naming
 * another host than Host.
 */
#ifndef ONEGATE_H1_H
#define ONEGATE_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define H1_MAX_HEADERS 100
#define H1_HEAD_LIMIT (32 * 1024)

enum h1_result {
	H1_NEED_MORE = 0,
	H1_DONE = 1,
	H1_ERR_BAD = -1,        /* 400 (a back end's: 502) */
	H1_ERR_TOO_LARGE = -2,  /* 431: head past the limit or too many headers */
	H1_ERR_CODING = -3,     /* 501: a transfer coding other than chunked, or CONNECT */
	H1_ERR_VERSION = -4,    /* 505 */
};

struct h1_span {
	uint32_t off, len;
};

struct h1_header {
	struct h1_span name, value;     /* value without surrounding whitespace */
};

struct h1_msg {
	/* where parsing stands: private */
	uint32_t pos, line;             /* next byte to scan; start of the current line */
	uint32_t limit;
	uint8_t state;
	bool is_request, head_request;
	const char *why;                /* the reason for an error, for logs */

	/* the start line */
	struct h1_span method, target, path;    /* request; path: the target's path (and query) */
	struct h1_span status_rest;     /* response: "200 OK", the line after the version */
	int status;
	int minor;                      /* HTTP/1.minor */

	size_t nheaders;                /* in headers[], the last member */

	/* what the head says about the message */
	bool has_host;
	struct h1_span host;            /* the Host value as sent */
	bool has_content_length;
	uint64_t content_length;
	bool chunked;                   /* Transfer-Encoding ends in chunked */
	bool close_delimited;           /* response: the body runs until the server closes */
	bool no_body;                   /* response: 1xx, 204, 304, or the answer to HEAD */
	bool conn_close, conn_keepalive, conn_upgrade;  /* tokens of Connection */
	bool conn_other;                /* Connection lists another token too */
	bool upgrade;                   /* Upgrade header and the upgrade token both present */
	struct h1_span upgrade_value;
	bool expect_continue;
	bool keepalive;                 /* the connection may carry another message after this one */
	uint32_t head_len;              /* when done: bytes of the head, final CRLF included */

	/* Last, so that a new message clears everything but these 1.6 KiB: past nheaders
	 * nothing is read. Each header's line runs from its name to the next one's (or to
	 * the final CRLF): lines are contiguous in the buffer. */
	struct h1_header headers[H1_MAX_HEADERS];
};

void h1_req_init(struct h1_msg *m, uint32_t limit);
/* head_request: the response answers a HEAD, so it has no body whatever it says. */
void h1_resp_init(struct h1_msg *m, uint32_t limit, bool head_request);
/* buf holds the message from its first byte; len grows from call to call. */
enum h1_result h1_parse(struct h1_msg *m, const char *buf, size_t len);

/* A request head written by the caller rather than read (h2head writes the
 * HTTP/1.1 head of an HTTP/2 stream): m was h1_req_init()ed, then given
 * method, target and headers[]/nheaders as spans into buf, whose head_len
 * bytes are the whole head. Concludes from them what h1_parse() would from
 * the same bytes, with every check h1_parse() makes once the head is complete
 * (Host, Content-Length, Transfer-Encoding, Connection, the target's form),
 * without scanning the bytes again: the writer answers for the bytes (tokens,
 * no CR, LF, NUL or other control bytes). The message is then as h1_parse()
 * leaves a complete head (h1_parse() returns H1_DONE for it at once). */
enum h1_result h1_req_written(struct h1_msg *m, const char *buf, uint32_t head_len);
/* Copies a message (only the headers in use). */
void h1_msg_copy(struct h1_msg *dst, const struct h1_msg *src);

/* The status a request error is answered with, and a short reason for the log. */
int h1_error_status(enum h1_result r);
const char *h1_error_text(const struct h1_msg *m, enum h1_result r);

/* Whether the n bytes are all ones a field value may hold (RFC 9110 5.5): no
 * control byte but tab, no DEL; obs-text passes. */
bool h1_field_bytes(const char *p, size_t n);

/* Whether the n bytes at p are lit in any case. lit is lower case, of letters, digits
 * and '-'; p holds token or field-value bytes (no control byte), as every name and
 * value of a parsed head does: then setting each byte's 0x20 bit makes p equal lit
 * exactly where the two match but for case. Inline, so that a literal's compare
 * is a word or two instead of a strncasecmp() call. */
static inline bool h1_name_is(const char *p, const char *lit, size_t n)
{
	const uint64_t case_bits = 0x2020202020202020ULL;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t a, b;
		memcpy(&a, p + i, 8);
		memcpy(&b, lit + i, 8);
		if ((a | case_bits) != b)
			return false;
	}
	for (; i < n; i++)
		if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

/* Whether the header name is one the message's Connection header lists
 * (those are hop-by-hop and go no further). Inline for its usual answer:
 * every header of every message is asked about, and only a name of the
 * length of close, upgrade or keep-alive, or a Connection header with other
 * tokens, needs a look. */
bool h1_connection_lists_looked_up(const struct h1_msg *m, const char *buf, const char *name, size_t len);
static inline bool h1_connection_lists(const struct h1_msg *m, const char *buf, const char *name, size_t len)
{
	if (!m->conn_other && len != 5 && len != 7 && len != 10)
		return false;
	return h1_connection_lists_looked_up(m, buf, name, len);
}

/* Whether an Authorization / Proxy-Authorization value (credentials) or a
 * WWW-Authenticate / Proxy-Authenticate value (a list of challenges) names the
 * NTLM or Negotiate scheme, in any case. Those authenticate the TCP connection,
 * not the request (Windows authentication as IIS does it), so a proxy must keep
 * the server connection for that one client. Quoted auth-params are skipped. */
bool h1_auth_binds_connection(const char *value, size_t len);

/* Host (or SNI) as routes match it: lower case, no trailing dot, no ":port"
 * (returned in *port, 0 when absent). IPv6 literals keep their brackets.
 * Returns -1 when it is not a host name or address. */
int h1_host_normalize(const char *host, size_t len, char *out, size_t cap, uint16_t *port);

/* ---- chunked bodies ---- */

struct h1_chunked {
	uint64_t left;                  /* data bytes left in the current chunk */
	uint32_t count;                 /* extension bytes, or bytes of the current trailer line */
	uint32_t trailer;               /* trailer section bytes so far */
	uint8_t state;
	uint8_t digits;
	const char *why;
};

void h1_chunked_init(struct h1_chunked *c);
/* Reads framing and data; *used says how many of the len bytes belong to the
 * body (all of them unless it ended: pipelined bytes after it are left).
 * Returns H1_NEED_MORE, H1_DONE or H1_ERR_BAD. */
enum h1_result h1_chunked_feed(struct h1_chunked *c, const char *p, size_t len, size_t *used);
/* Bytes of the current chunk's data still to come while the decoder is inside
 * them; 0 while it reads framing (sizes, CRLFs, trailers). Lets a caller that
 * unframes the body (HTTP/2 DATA) tell data from framing. */
uint64_t h1_chunked_data_left(const struct h1_chunked *c);
/* Whether the decoder reads the trailer section (after the last chunk, before
 * the empty line that ends it): the next byte fed belongs to a trailer line. */
bool h1_chunked_in_trailer(const struct h1_chunked *c);

#ifdef __cplusplus
}
#endif
#endif
