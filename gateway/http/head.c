#include "http/head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* The reason phrases of RFC 9110 (and 6585, 7725 for 429, 431, 451): a route's `status` and a
 * plugin may answer any of them. */
const char *http_head_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

/* Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's. */
bool http_head_hop_by_hop(const char *name, size_t len)
{
	switch (len) {
	case 2:
		return h1_name_is(name, "te", 2);
	case 7:
		return h1_name_is(name, "upgrade", 7);
	case 10:
		return h1_name_is(name, "connection", 10) || h1_name_is(name, "keep-alive", 10);
	case 16:
		return h1_name_is(name, "proxy-connection", 16);
	case 18:
		return h1_name_is(name, "proxy-authenticate", 18);
	case 19:
		return h1_name_is(name, "proxy-authorization", 19);
	default:
		return false;
	}
}

/* Headers a client must not be able to forge: we set them. */
bool http_head_forwarding(const char *name, size_t len)
{
	switch (len) {
	case 9:
		return h1_name_is(name, "forwarded", 9);
	case 15:
		return h1_name_is(name, "x-forwarded-for", 15);
	case 16:
		return h1_name_is(name, "x-forwarded-host", 16);
	case 17:
		return h1_name_is(name, "x-forwarded-proto", 17);
	default:
		return false;
	}
}

/* Authorization / Proxy-Authorization (credentials) and WWW-Authenticate /
 * Proxy-Authenticate (challenges) that make a server connection private. */
bool http_head_auth_binds(const char *head, const struct h1_header *h, bool challenge)
{
	const char *name = head + h->name.off;
	bool auth = challenge ? (h->name.len == 16 && h1_name_is(name, "www-authenticate", 16)) ||
	                                (h->name.len == 18 && h1_name_is(name, "proxy-authenticate", 18))
	                      : (h->name.len == 13 && h1_name_is(name, "authorization", 13)) ||
	                                (h->name.len == 19 && h1_name_is(name, "proxy-authorization", 19));
	return auth && h1_auth_binds_connection(head + h->value.off, h->value.len);
}

/* Heads are written in place into space reserved in the output: one piece,
 * no formatting. A head longer than the first estimate takes more space. */
struct http_put {
	struct evbuffer *buf;
	struct evbuffer_iovec v;
	char *p, *end;
	bool failed;                    /* out of memory: the rest is dropped, as evbuffer_add would */
};

static void http_put_open(struct http_put *o, struct evbuffer *buf, size_t want)
{
	o->buf = buf;
	o->failed = evbuffer_reserve_space(buf, (ev_ssize_t)want, &o->v, 1) < 1;
	o->p = o->failed ? NULL : o->v.iov_base;
	o->end = o->failed ? NULL : o->p + o->v.iov_len;
}

static void http_put_close(struct http_put *o)
{
	if (o->failed)
		return;
	o->v.iov_len = (size_t)(o->p - (char *)o->v.iov_base);
	evbuffer_commit_space(o->buf, &o->v, 1);
}

/* Out of room (rare: the first reservation counts the head and what is added). */
static void http_put_more(struct http_put *o, const char *s, size_t n)
{
	http_put_close(o);
	http_put_open(o, o->buf, n > 4096 ? n : 4096);
	if (o->failed)
		return;
	memcpy(o->p, s, n);
	o->p += n;
}

/* Inline: a head is a dozen puts, most of literals, whose copies then become a
 * few moves. */
static inline void http_put(struct http_put *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if ((size_t)(o->end - o->p) < n) {
		http_put_more(o, s, n);
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define HTTP_PUT_LIT(o, lit) http_put((o), (lit), sizeof(lit) - 1)

static void http_put_str(struct http_put *o, const char *s)
{
	http_put(o, s, strlen(s));
}

/* Header lines pass as they came (the parser checked every byte of them), and
 * neighbours in one copy: a run is the bytes from its first header's name to
 * where the line after its last one starts. */
struct http_run {
	uint32_t from, to;              /* from == to: none */
};

static uint32_t http_line_end(const struct h1_msg *m, size_t i)
{
	return i + 1 < m->nheaders ? m->headers[i + 1].name.off : m->head_len - 2;
}

static void http_run_add(struct http_run *run, const struct h1_msg *m, size_t i)
{
	if (run->from == run->to)
		run->from = m->headers[i].name.off;
	run->to = http_line_end(m, i);
}

static void http_run_put(struct http_run *run, struct http_put *o, const char *head)
{
	http_put(o, head + run->from, run->to - run->from);
	run->from = run->to;
}

bool http_head_write_request(struct evbuffer *out, const struct http_head_request *in)
{
	const char *head = in->head;
	const struct h1_msg *q = in->q;
	bool binds = false;
	struct http_put o;
	/* The head as it came and what we add. */
	http_put_open(&o, out, q->head_len + q->upgrade_value.len + HTTP_HEAD_HOST_MAX + 256 +
	                       (in->host_rewrite ? strlen(in->host_rewrite) : 0));
	/* The request line as it came: the version is the client's. An absolute-form target goes in
	 * origin form (its authority is Host), and normalize_path sends the path as it was matched. */
	struct http_run run = { q->method.off, q->nheaders ? q->headers[0].name.off : q->head_len - 2 };
	if (in->target || q->path.off != q->target.off) {
		http_put(&o, head + q->method.off, q->method.len + 1);
		if (in->target)
			http_put_str(&o, in->target);
		else if (!q->path.len || head[q->path.off] != '/')
			HTTP_PUT_LIT(&o, "/");
		if (!in->target)
			http_put(&o, head + q->path.off, q->path.len);
		run.from = q->target.off + q->target.len;
	}
	for (size_t i = 0; i < q->nheaders; i++) {
		const struct h1_header *h = &q->headers[i];
		const char *name = head + h->name.off;
		/* Windows authentication on this request: the server connection is this client's from now on. */
		if ((h->name.len == 13 || h->name.len == 19) && http_head_auth_binds(head, h, false))
			binds = true;
		if (http_head_hop_by_hop(name, h->name.len) || http_head_forwarding(name, h->name.len) ||
		    h1_connection_lists(q, head, name, h->name.len) ||
		    (in->edits && !in->edits->kept(in->edits->arg, name, h->name.len))) {
			http_run_put(&run, &o, head);
			continue;
		}
		if (in->host_rewrite && h->name.len == 4 && h1_name_is(name, "host", 4)) {
			http_run_put(&run, &o, head);
			HTTP_PUT_LIT(&o, "Host: ");
			http_put_str(&o, in->host_rewrite);
			HTTP_PUT_LIT(&o, "\r\n");
			continue;
		}
		http_run_add(&run, q, i);
	}
	http_run_put(&run, &o, head);
	if (in->edits) {
		http_put_close(&o);
		in->edits->write(in->edits->arg, out);
		http_put_open(&o, out, HTTP_HEAD_HOST_MAX + 256 + q->upgrade_value.len);
	}
	/* A client's own forwarding headers never pass; ours are added unless the route says not to. */
	if (in->forwarded) {
		bool v6 = strchr(in->client_ip, ':') != NULL;
		HTTP_PUT_LIT(&o, "X-Forwarded-For: ");
		http_put_str(&o, in->client_ip);
		if (in->tls)
			HTTP_PUT_LIT(&o, "\r\nX-Forwarded-Proto: https\r\n");
		else
			HTTP_PUT_LIT(&o, "\r\nX-Forwarded-Proto: http\r\n");
		if (in->host_len) {
			HTTP_PUT_LIT(&o, "X-Forwarded-Host: ");
			http_put(&o, in->host, in->host_len);
			HTTP_PUT_LIT(&o, "\r\n");
		}
		HTTP_PUT_LIT(&o, "Forwarded: for=");
		if (v6)
			HTTP_PUT_LIT(&o, "\"[");
		http_put_str(&o, in->client_ip);
		if (v6)
			HTTP_PUT_LIT(&o, "]\"");
		if (in->tls)
			HTTP_PUT_LIT(&o, ";proto=https\r\n");
		else
			HTTP_PUT_LIT(&o, ";proto=http\r\n");
	}
	if (in->upgrade) {
		HTTP_PUT_LIT(&o, "Connection: Upgrade\r\nUpgrade: ");
		http_put(&o, head + q->upgrade_value.off, q->upgrade_value.len);
		HTTP_PUT_LIT(&o, "\r\n");
	} else if (q->minor == 0) {
		HTTP_PUT_LIT(&o, "Connection: close\r\n");
	}
	HTTP_PUT_LIT(&o, "\r\n");
	http_put_close(&o);
	return binds;
}

bool http_head_response_binds(const char *head, const struct h1_msg *r, int status)
{
	/* A challenge to NTLM or Negotiate: the handshake's next legs and the session it
	 * opens belong to this server connection, so only this client may use it. */
	for (size_t i = 0; (status == 401 || status == 407) && i < r->nheaders; i++)
		if (http_head_auth_binds(head, &r->headers[i], true))
			return true;
	return false;
}

bool http_head_write_response(struct evbuffer *out, const struct http_head_response *in)
{
	const char *head = in->head;
	const struct h1_msg *r = in->r;
	struct http_put o;
	http_put_open(&o, out, r->head_len + 32 + (in->set_cookie ? strlen(in->set_cookie) : 0));
	/* HTTP/1.1 whatever the server's version: the rest of the line as it came. */
	HTTP_PUT_LIT(&o, "HTTP/1.1 ");
	struct http_run run = { r->status_rest.off, r->nheaders ? r->headers[0].name.off : r->head_len - 2 };
	bool binds = http_head_response_binds(head, r, in->status);
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct h1_header *h = &r->headers[i];
		const char *name = head + h->name.off;
		bool upgrade = in->status == 101 && h->name.len == 7 && h1_name_is(name, "upgrade", 7);
		if (!upgrade && (http_head_hop_by_hop(name, h->name.len) || h1_connection_lists(r, head, name, h->name.len) ||
		                 (in->edits && !in->edits->kept(in->edits->arg, name, h->name.len)))) {
			http_run_put(&run, &o, head);
			continue;
		}
		http_run_add(&run, r, i);
	}
	http_run_put(&run, &o, head);
	if (in->edits) {
		http_put_close(&o);
		in->edits->write(in->edits->arg, out);
		http_put_open(&o, out, 64);
	}
	if (in->set_cookie)
		http_put_str(&o, in->set_cookie);
	if (in->status == 101)
		HTTP_PUT_LIT(&o, "Connection: Upgrade\r\n\r\n");
	else if (!in->keepalive)
		HTTP_PUT_LIT(&o, "Connection: close\r\n\r\n");
	else
		HTTP_PUT_LIT(&o, "\r\n");
	http_put_close(&o);
	return binds;
}

void http_head_write_answer(struct evbuffer *out, int status, const char *extra, size_t body_len, bool keep)
{
	/* 204 and 304 never have a body: one here would be read as the start of the next answer. */
	if (status == 204 || status == 304)
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s%s\r\n", status, http_head_reason(status), extra ? extra : "",
		                    keep ? "" : "Connection: close\r\n");
	else
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		                    "Content-Length: %zu\r\n%s%s\r\n",
		                    status, http_head_reason(status), body_len, extra ? extra : "",
		                    keep ? "" : "Connection: close\r\n");
}
