#include "proto/h2head.h"

#include <string.h>
#include <strings.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* RFC 9110 5.6.2 token characters, lower case only: RFC 9113 8.2.1 makes an
 * upper-case name malformed. A table: every name of every request comes through. */
static const bool h2head_name_table[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
	['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['a' ... 'z'] = 1,
};

static bool h2head_name_char(unsigned char c)
{
	return h2head_name_table[c];
}

static bool h2head_token_char(unsigned char c)
{
	return h2head_name_char(c) || (c >= 'A' && c <= 'Z');
}

/* Field values: visible ASCII, space, tab and obs-text inside, no whitespace at
 * either end (RFC 9113 8.2.1), no control byte, no DEL. */
static bool h2head_value_ok(const char *v, size_t n)
{
	if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		return false;
	return h1_field_bytes(v, n);
}

/* Request targets and authorities: visible ASCII only, as h1_parse reads a target. */
static bool h2head_visible(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return false;
	return n > 0;
}

/* Inline, so that the literal's length is a constant and the compare a few moves. */
static inline bool h2head_is(const char *p, size_t n, const char *lit)
{
	size_t len = strlen(lit);
	return n == len && memcmp(p, lit, len) == 0;
}

static bool h2head_span_is(const struct h2head_req *r, struct h2head_span s, const char *lit)
{
	return h2head_is(r->arena + s.off, s.len, lit);
}

static enum h2head_result h2head_fail(struct h2head_req *r, enum h2head_result e, const char *why)
{
	r->why = why;
	return e;
}

void h2head_req_init(struct h2head_req *r, char *arena, uint32_t arena_cap)
{
	memset(r, 0, offsetof(struct h2head_req, fields));
	r->arena = arena;
	r->arena_cap = arena_cap;
}

/* Copies n bytes into the arena; the caller checked the room. */
static struct h2head_span h2head_keep(struct h2head_req *r, const char *p, size_t n)
{
	struct h2head_span s = { r->arena_used, (uint32_t)n };
	if (n)
		memcpy(r->arena + r->arena_used, p, n);
	r->arena_used += (uint32_t)n;
	return s;
}

static enum h2head_result h2head_pseudo(struct h2head_req *r, const char *name, size_t nlen, const char *value,
					size_t vlen)
{
	struct h2head_span *slot;
	if (h2head_is(name, nlen, ":method"))
		slot = &r->method;
	else if (h2head_is(name, nlen, ":scheme"))
		slot = &r->scheme;
	else if (h2head_is(name, nlen, ":authority"))
		slot = &r->authority;
	else if (h2head_is(name, nlen, ":path"))
		slot = &r->path;
	else if (h2head_is(name, nlen, ":protocol"))
		slot = &r->protocol;
	else
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "unknown pseudo-header");
	if (r->regular_seen)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "pseudo-header after a regular field");
	if (slot->len)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "pseudo-header given twice");
	bool ok = slot == &r->method ? vlen > 0 : h2head_visible(value, vlen);
	for (size_t i = 0; slot == &r->method && i < vlen; i++)
		ok = ok && h2head_token_char((unsigned char)value[i]);
	if (!ok)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "malformed pseudo-header value");
	if (slot == &r->authority && memchr(value, '@', vlen))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, ":authority with userinfo");
	*slot = h2head_keep(r, value, vlen);
	return H2HEAD_OK;
}

static enum h2head_result h2head_content_length(struct h2head_req *r, const char *v, size_t n)
{
	if (r->has_content_length)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "content-length given twice");
	if (n == 0 || n > 18)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "malformed content-length");
	uint64_t cl = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return h2head_fail(r, H2HEAD_ERR_MALFORMED, "malformed content-length");
		cl = cl * 10 + (uint64_t)(v[i] - '0');
	}
	r->has_content_length = true;
	r->content_length = cl;
	return H2HEAD_OK;
}

/* RFC 9113 8.2.2: fields that only mean something on one HTTP/1.1 connection. */
static bool h2head_connection_specific(const char *name, size_t n)
{
	return h2head_is(name, n, "connection") || h2head_is(name, n, "keep-alive") ||
	       h2head_is(name, n, "proxy-connection") || h2head_is(name, n, "upgrade") ||
	       h2head_is(name, n, "transfer-encoding");
}

enum h2head_result h2head_req_add(struct h2head_req *r, const char *name, size_t name_len, const char *value,
				  size_t value_len)
{
	if (name_len == 0)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "empty field name");
	/* A pseudo-header keeps its value only, a regular field both. */
	size_t keep = name[0] == ':' ? value_len : name_len + value_len;
	if ((uint64_t)r->arena_used + keep > r->arena_cap)
		return H2HEAD_ERR_FULL;
	if (!h2head_value_ok(value, value_len))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "control byte or edge whitespace in a field value");
	if (name[0] == ':')
		return h2head_pseudo(r, name, name_len, value, value_len);
	for (size_t i = 0; i < name_len; i++)
		if (!h2head_name_char((unsigned char)name[i]))
			return h2head_fail(r, H2HEAD_ERR_MALFORMED, "field name not a lower-case token");
	r->regular_seen = true;
	if (h2head_connection_specific(name, name_len))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "connection-specific field");
	if (h2head_is(name, name_len, "te")) {
		if (!h2head_is(value, value_len, "trailers"))
			return h2head_fail(r, H2HEAD_ERR_MALFORMED, "TE other than trailers");
		r->te_trailers = true;
		return H2HEAD_OK;
	}
	if (h2head_is(name, name_len, "host")) {
		if (r->has_host || !h2head_visible(value, value_len))
			return h2head_fail(r, H2HEAD_ERR_MALFORMED, "host repeated or malformed");
		r->has_host = true;
		r->host = h2head_keep(r, value, value_len);
		return H2HEAD_OK;
	}
	if (h2head_is(name, name_len, "content-length")) {
		enum h2head_result e = h2head_content_length(r, value, value_len);
		if (e != H2HEAD_OK)
			return e;
	}
	if (h2head_is(name, name_len, "expect") && value_len == 12 && strncasecmp(value, "100-continue", 12) == 0)
		r->expect_continue = true;
	if (r->nfields == H2HEAD_MAX_FIELDS)
		return h2head_fail(r, H2HEAD_ERR_TOO_MANY, "more fields than an HTTP/1.1 head may carry");
	bool cookie = h2head_is(name, name_len, "cookie");
	r->fields[r->nfields].name = h2head_keep(r, name, name_len);
	r->fields[r->nfields].value = h2head_keep(r, value, value_len);
	r->fields[r->nfields].cookie = cookie;
	r->nfields++;
	r->ncookies += cookie;
	return H2HEAD_OK;
}

enum h2head_result h2head_req_end(struct h2head_req *r)
{
	if (!r->method.len)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "no :method");
	bool connect = h2head_span_is(r, r->method, "CONNECT");
	/* In any case, as h1_parse reads it: a back end might too. */
	bool connect_any_case = r->method.len == 7 && strncasecmp(r->arena + r->method.off, "CONNECT", 7) == 0;
	if (connect_any_case && !r->protocol.len)
		return h2head_fail(r, H2HEAD_ERR_METHOD, "CONNECT is not served by a reverse proxy");
	if (r->protocol.len && !connect)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, ":protocol without CONNECT");
	if (r->protocol.len && !h2head_span_is(r, r->protocol, "websocket"))
		return h2head_fail(r, H2HEAD_ERR_METHOD, ":protocol other than websocket");
	if (!r->scheme.len || !r->path.len)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "no :scheme or :path");
	if (!h2head_span_is(r, r->scheme, "https") && !h2head_span_is(r, r->scheme, "http"))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, ":scheme neither https nor http");
	const char *path = r->arena + r->path.off;
	if (path[0] != '/' && !(r->path.len == 1 && path[0] == '*' && h2head_span_is(r, r->method, "OPTIONS")))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, ":path neither origin-form nor * for OPTIONS");
	if (!r->authority.len && !r->has_host)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "neither :authority nor host");
	if (r->authority.len && r->has_host &&
	    (r->authority.len != r->host.len ||
	     strncasecmp(r->arena + r->authority.off, r->arena + r->host.off, r->host.len) != 0))
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "host disagrees with :authority");
	if (r->protocol.len && r->has_content_length)
		return h2head_fail(r, H2HEAD_ERR_MALFORMED, "content-length on an extended CONNECT");
	return H2HEAD_OK;
}

bool h2head_req_is_websocket(const struct h2head_req *r)
{
	return r->protocol.len != 0;
}

/* Appends to out while it fits; *len past cap says it did not. */
static void h2head_put(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
	if (*len + n <= cap)
		memcpy(out + *len, p, n);
	*len += n;
}

/* The head being written, and the spans h1_parse would find in it. */
struct h2head_out {
	char *out;
	size_t cap, len;
	struct h1_msg *m;
};

static void h2head_out_put(struct h2head_out *o, const char *p, size_t n)
{
	h2head_put(o->out, o->cap, &o->len, p, n);
}

/* Records a header of the head written, as h1_parse would: past H1_MAX_HEADERS only
 * counted, so that h1_req_written refuses the head. */
static void h2head_out_header(struct h2head_out *o, struct h1_header h)
{
	if (!o->m)
		return;
	if (o->m->nheaders < H1_MAX_HEADERS)
		o->m->headers[o->m->nheaders] = h;
	o->m->nheaders++;
}

/* One "name: value" line; the value never has edge whitespace (h2head_req_add
 * refuses it), so its span is what h1_parse would trim it to. */
static void h2head_line(struct h2head_out *o, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct h1_header h = { { (uint32_t)o->len, (uint32_t)nlen }, { 0, (uint32_t)vlen } };
	h2head_out_put(o, name, nlen);
	h2head_out_put(o, ": ", 2);
	h.value.off = (uint32_t)o->len;
	h2head_out_put(o, value, vlen);
	h2head_out_put(o, "\r\n", 2);
	h2head_out_header(o, h);
}

#define H2HEAD_LINE(name, value) h2head_line(&o, name, sizeof(name) - 1, value, sizeof(value) - 1)

static bool h2head_has_field(const struct h2head_req *r, const char *name, size_t len)
{
	for (uint32_t i = 0; i < r->nfields; i++)
		if (r->fields[i].name.len == len && memcmp(r->arena + r->fields[i].name.off, name, len) == 0)
			return true;
	return false;
}

size_t h2head_req_write(const struct h2head_req *r, const struct h2head_write *w, char *out, size_t cap,
			struct h1_msg *m)
{
	struct h2head_out o = { out, cap, 0, m };
	bool ws = h2head_req_is_websocket(r);
	if (ws && !w->ws_key)
		return 0;
	if (m) {
		m->nheaders = 0;
		m->method = (struct h1_span){ 0, ws ? 3 : r->method.len };
	}
	if (ws)
		h2head_out_put(&o, "GET", 3);
	else
		h2head_out_put(&o, r->arena + r->method.off, r->method.len);
	h2head_out_put(&o, " ", 1);
	if (m)
		m->target = (struct h1_span){ (uint32_t)o.len, r->path.len };
	h2head_out_put(&o, r->arena + r->path.off, r->path.len);
	h2head_out_put(&o, " HTTP/1.1\r\n", 11);
	struct h2head_span host = r->authority.len ? r->authority : r->host;
	h2head_line(&o, "host", 4, r->arena + host.off, host.len);
	for (uint32_t i = 0; i < r->nfields; i++) {
		if (r->fields[i].cookie)
			continue;
		struct h2head_span n = r->fields[i].name, v = r->fields[i].value;
		h2head_line(&o, r->arena + n.off, n.len, r->arena + v.off, v.len);
	}
	/* RFC 9113 8.2.3: crumbs become one cookie field again, joined by "; ". */
	if (r->ncookies) {
		struct h1_header h = { { (uint32_t)o.len, 6 }, { (uint32_t)o.len + 8, 0 } };
		h2head_out_put(&o, "cookie: ", 8);
		uint32_t n = 0, last = 0;
		for (uint32_t i = 0; i < r->nfields; i++) {
			if (!r->fields[i].cookie)
				continue;
			if (n++)
				h2head_out_put(&o, "; ", 2);
			last = r->fields[i].value.len;
			h2head_out_put(&o, r->arena + r->fields[i].value.off, last);
		}
		/* An empty last crumb leaves "; " at the end, whose space h1_parse trims. */
		h.value.len = (uint32_t)o.len - h.value.off - (n > 1 && last == 0);
		h2head_out_put(&o, "\r\n", 2);
		h2head_out_header(&o, h);
	}
	if (ws) {
		H2HEAD_LINE("connection", "upgrade");
		H2HEAD_LINE("upgrade", "websocket");
		h2head_line(&o, "sec-websocket-key", 17, w->ws_key, strlen(w->ws_key));
		/* RFC 8441 5 has the client send it; RFC 6455 4.1 has the back end refuse a request without it. */
		if (!h2head_has_field(r, "sec-websocket-version", 21))
			H2HEAD_LINE("sec-websocket-version", "13");
	} else if (w->body_follows && !r->has_content_length) {
		H2HEAD_LINE("transfer-encoding", "chunked");
	}
	if (w->close)
		H2HEAD_LINE("connection", "close");
	h2head_out_put(&o, "\r\n", 2);
	if (o.len > cap || o.len > UINT32_MAX)
		return 0;
	if (m && h1_req_written(m, out, (uint32_t)o.len) != H1_DONE)
		return 0;
	return o.len;
}

#ifdef __SSE2__
/* The 16 bytes at p, A-Z lower-cased, to out. */
static void h2head_lower_block(char *out, const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	/* x in ['A', 'Z']: x + (0x80 - 'A') lands on the 26 lowest signed bytes. */
	__m128i upper = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - 'A'))),
	                               _mm_set1_epi8((char)(-128 + 26)));
	v = _mm_or_si128(v, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
	_mm_storeu_si128((__m128i *)(void *)out, v);
}
#endif

/* Names lower-cased, sixteen or eight bytes at a time: every field of every answer
 * comes through here. Names are tokens (h1_parse read them), but any byte is safe:
 * only A-Z change. room: the bytes that may be read at name and written at out,
 * past n too (the head goes on after a name, the scratch after its copy). */
static void h2head_lower(char *out, const char *name, size_t n, size_t room)
{
	size_t k = 0;
#ifdef __SSE2__
	for (; k < n && k + 16 <= room; k += 16)
		h2head_lower_block(out + k, name + k);
	if (k >= n)
		return;
#endif
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	for (; k + 8 <= n; k += 8) {
		uint64_t w;
		memcpy(&w, name + k, 8);
		uint64_t low7 = w & ~highs;
		/* High bit of each byte: at least 'A', above 'Z', and ASCII at all. */
		uint64_t upper = (low7 + (0x80 - 'A') * ones) & ~(low7 + (0x80 - 'Z' - 1) * ones) & ~w & highs;
		w |= upper >> 2;
		memcpy(out + k, &w, 8);
	}
	for (; k < n; k++)
		out[k] = (name[k] >= 'A' && name[k] <= 'Z') ? (char)(name[k] - 'A' + 'a') : name[k];
}

/* Response fields that end at the hop (RFC 9110 7.6.1) or that HTTP/2 forbids. */
static bool h2head_hop_by_hop(const char *n, size_t len)
{
	/* By length first: every field of every answer comes through here. */
	switch (len) {
	case 2:
		return h1_name_is(n, "te", 2);
	case 7:
		return h1_name_is(n, "upgrade", 7) || h1_name_is(n, "trailer", 7);
	case 10:
		return h1_name_is(n, "connection", 10) || h1_name_is(n, "keep-alive", 10);
	case 16:
		return h1_name_is(n, "proxy-connection", 16);
	case 17:
		return h1_name_is(n, "transfer-encoding", 17);
	default:
		return false;
	}
}

/* The answer fields seen most, as literals: a field named by one goes out without
 * a copy of its name, here or in nghttp2 (which lower-cases what it copies). */
static const char *h2head_known_name(const char *n, size_t len)
{
	static const char *const by_len[][4] = {
		[3] = { "p3p", "age" },
		[4] = { "date", "etag", "vary", "link" },
		[6] = { "server", "pragma" },
		[7] = { "expires", "refresh" },
		[8] = { "location" },
		[10] = { "set-cookie", "request-id" },
		[12] = { "content-type", "x-powered-by" },
		[13] = { "last-modified", "accept-ranges", "cache-control" },
		[14] = { "content-length" },
		[15] = { "x-frame-options", "x-ua-compatible" },
		[16] = { "content-encoding", "www-authenticate", "content-language", "x-aspnet-version" },
		[19] = { "content-disposition" },
		[22] = { "x-content-type-options" },
		[23] = { "content-security-policy" },
		[25] = { "strict-transport-security" },
		[27] = { "access-control-allow-origin" },
	};
	if (len >= sizeof(by_len) / sizeof(by_len[0]))
		return NULL;
	for (size_t i = 0; i < 4 && by_len[len][i]; i++)
		if (h1_name_is(n, by_len[len][i], len))
			return by_len[len][i];
	return NULL;
}

int h2head_resp_fields(const struct h1_msg *m, const char *head, bool extended_connect, char *scratch,
		       size_t scratch_cap, struct h2head_field *out, size_t out_cap)
{
	bool ws = extended_connect && m->status == 101;
	int status = ws ? 200 : m->status;
	if (out_cap < 1 || scratch_cap < 3 || status < 100 || status > 999)
		return -1;
	size_t used = 3, n = 0;
	scratch[0] = (char)('0' + status / 100);
	scratch[1] = (char)('0' + status / 10 % 10);
	scratch[2] = (char)('0' + status % 10);
	out[n++] = (struct h2head_field){ ":status", scratch, 7, 3, true };
	for (size_t i = 0; i < m->nheaders; i++) {
		const char *name = head + m->headers[i].name.off;
		size_t nlen = m->headers[i].name.len;
		if (h2head_hop_by_hop(name, nlen) || h1_connection_lists(m, head, name, nlen))
			continue;
		if (ws && nlen == 20 && h1_name_is(name, "sec-websocket-accept", 20))
			continue;
		if (n == out_cap)
			return -1;
		const char *out_name = h2head_known_name(name, nlen);
		bool name_static = out_name != NULL;
		if (!name_static) {
			if (used + nlen > scratch_cap)
				return -1;
			char *lower = scratch + used;
			uint32_t off = m->headers[i].name.off;
			size_t readable = m->head_len > off ? m->head_len - off : 0, writable = scratch_cap - used;
			h2head_lower(lower, name, nlen, readable < writable ? readable : writable);
			used += nlen;
			out_name = lower;
		}
		out[n++] = (struct h2head_field){ out_name, head + m->headers[i].value.off, nlen,
						  m->headers[i].value.len, name_static };
	}
	return (int)n;
}

bool h2head_trailer_forbidden(const char *name, size_t len)
{
	static const char *const names[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
		"content-length", "content-type", "content-encoding", "content-range", "host", "authorization",
		"proxy-authorization", "www-authenticate", "proxy-authenticate", "cookie", "set-cookie", "expect",
		"max-forwards", "cache-control",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len == strlen(names[i]) && strncasecmp(name, names[i], len) == 0)
			return true;
	return false;
}

int h2head_trailer_fields(const char *block, size_t len, char *scratch, size_t scratch_cap,
			  struct h2head_field *out, size_t out_cap)
{
	size_t n = 0, used = 0, at = 0;
	while (at < len) {
		const char *line = block + at;
		const char *eol = memchr(line, '\n', len - at);
		size_t llen = eol ? (size_t)(eol - line) : len - at;
		at += llen + (eol ? 1 : 0);
		if (llen && line[llen - 1] == '\r')
			llen--;
		const char *colon = memchr(line, ':', llen);
		if (!colon || colon == line)
			continue;
		size_t nlen = (size_t)(colon - line);
		bool token = true;
		for (size_t k = 0; k < nlen && token; k++)
			token = h2head_token_char((unsigned char)line[k]);
		if (!token || h2head_trailer_forbidden(line, nlen))
			continue;
		const char *v = colon + 1;
		size_t vlen = llen - nlen - 1;
		while (vlen && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (!h2head_value_ok(v, vlen))
			continue;
		if (n == out_cap || used + nlen > scratch_cap)
			return -1;
		char *lower = scratch + used;
		for (size_t k = 0; k < nlen; k++)
			lower[k] = (line[k] >= 'A' && line[k] <= 'Z') ? (char)(line[k] - 'A' + 'a') : line[k];
		used += nlen;
		out[n++] = (struct h2head_field){ lower, v, nlen, vlen, false };
	}
	return (int)n;
}
