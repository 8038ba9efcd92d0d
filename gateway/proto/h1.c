#include "proto/h1.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Parser states between calls. */
enum { ST_START, ST_HEADERS, ST_DONE, ST_ERROR };

/* RFC 9110 5.6.2 token characters. */
static const uint8_t h1_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
	['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
	['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool h1_is_vchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* Field values: visible ASCII, space, tab, and obs-text (RFC 9110 5.5). */
static bool h1_is_value_char(unsigned char c)
{
	return c == '\t' || c == ' ' || h1_is_vchar(c) || c >= 0x80;
}

/* Whether the 8 bytes at p may all be in a field value, tabs aside: no byte below
 * 0x20 (bytes of 0x80 and up never match) and no DEL. */
static bool h1_word_plain(const char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w;
	memcpy(&w, p, 8);
	uint64_t del = w ^ (0x7f * ones);
	return !((((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs);
}

/* The lowest byte of the 8 at p that is below 0x20 or DEL, as a bit in each byte's
 * top position; 0 when there is none. Borrows can flag bytes above a flagged one,
 * never below it, so the lowest flag is exact. */
static uint64_t h1_word_specials(const char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w;
	memcpy(&w, p, 8);
	uint64_t del = w ^ (0x7f * ones);
	return (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs;
}

#ifdef __SSE2__
/* Bit k set for each byte k of the 16 at p below 0x20 or DEL: two compares where the
 * word-at-a-time check needs a dozen operations for half the bytes. SSE2 is part of
 * x86-64 itself, so no machine lacks it where this is built. */
static unsigned h1_block_specials(const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
	__m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(low, del));
}

/* Bit k set for each byte k of the 16 at p that is a letter, a digit or '-': what
 * nearly every header name is made of (the other token bytes take the table). */
static unsigned h1_block_name_plain(const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	/* x in [lo, lo + n): x + (0x80 - lo) lands on the n lowest signed bytes. */
	__m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
	__m128i alpha = _mm_cmplt_epi8(_mm_add_epi8(lower, _mm_set1_epi8((char)(0x80 - 'a'))),
	                               _mm_set1_epi8((char)(-128 + 26)));
	__m128i digit = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - '0'))),
	                               _mm_set1_epi8((char)(-128 + 10)));
	__m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), dash));
}
#endif

/* The end of the token that starts a header line at start: the first byte that is no
 * token byte (the line's CR at the latest). avail: the bytes buf holds. */
static uint32_t h1_name_end(const char *buf, uint32_t start, size_t avail)
{
	uint32_t i = start;
#ifdef __SSE2__
	while (i + 16 <= avail) {
		unsigned stop = ~h1_block_name_plain(buf + i) & 0xffffu;
		if (!stop) {
			i += 16;
			continue;
		}
		i += (uint32_t)__builtin_ctz(stop);
		if (buf[i] == ':')
			return i;
		break;
	}
#endif
	while (h1_tchar[(unsigned char)buf[i]])
		i++;
	return i;
}

/* The first byte in [i, end) below 0x20 (a tab too) or DEL, or end. */
static size_t h1_plain_run(const char *buf, size_t i, size_t end)
{
#ifdef __SSE2__
	for (; i + 16 <= end; i += 16) {
		unsigned s = h1_block_specials(buf + i);
		if (s)
			return i + (size_t)__builtin_ctz(s);
	}
#endif
	for (; i + 8 <= end; i += 8) {
		uint64_t s = h1_word_specials(buf + i);
		if (s)
			return i + ((size_t)__builtin_ctzll(s) >> 3);
	}
	while (i < end && buf[i] != '\t' && h1_is_value_char((unsigned char)buf[i]))
		i++;
	return i;
}

/* Where the line from i stops being plain: the first byte in [i, end) below 0x20 but
 * tab, or DEL, or end. One pass finds both the line's end (its CR) and whether the
 * line holds nothing else a head may not. */
static size_t h1_line_stop(const char *buf, size_t i, size_t end)
{
	for (;;) {
		i = h1_plain_run(buf, i, end);
		if (i == end || buf[i] != '\t')
			return i;
		i++;
	}
}

/* Eight at a time, since nearly every byte of a head comes through here (the last
 * word overlaps the one before); a line with a tab (or a bad byte) is looked at byte
 * by byte. */
bool h1_field_bytes(const char *p, size_t n)
{
	if (n >= 8) {
		size_t i = 0;
		while (i + 8 < n && h1_word_plain(p + i))
			i += 8;
		if (i + 8 >= n && h1_word_plain(p + n - 8))
			return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!h1_is_value_char((unsigned char)p[i]))
			return false;
	return true;
}

static enum h1_result h1_fail(struct h1_msg *m, enum h1_result r, const char *why)
{
	m->state = ST_ERROR;
	m->why = why;
	return r;
}

static void h1_init(struct h1_msg *m, uint32_t limit, bool is_request, bool head_request)
{
	memset(m, 0, offsetof(struct h1_msg, headers));
	m->limit = limit ? limit : H1_HEAD_LIMIT;
	m->is_request = is_request;
	m->head_request = head_request;
}

void h1_req_init(struct h1_msg *m, uint32_t limit)
{
	h1_init(m, limit, true, false);
}

void h1_resp_init(struct h1_msg *m, uint32_t limit, bool head_request)
{
	h1_init(m, limit, false, head_request);
}

static bool h1_span_is(const char *buf, struct h1_span s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && h1_name_is(buf + s.off, lit, n);
}

/* "HTTP/1.0" or "HTTP/1.1"; another HTTP version is 505, anything else 400. */
static enum h1_result h1_version(struct h1_msg *m, const char *p, size_t n)
{
	if (n == 8 && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1')) {
		m->minor = p[7] - '0';
		return H1_DONE;
	}
	if (n == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' && p[6] == '.' && p[7] >= '0' &&
	    p[7] <= '9')
		return h1_fail(m, H1_ERR_VERSION, "HTTP version not supported");
	return h1_fail(m, H1_ERR_BAD, "malformed HTTP version");
}

static enum h1_result h1_request_line(struct h1_msg *m, const char *buf, uint32_t start, uint32_t end)
{
	uint32_t i = start;
	while (i < end && h1_tchar[(unsigned char)buf[i]])
		i++;
	if (i == start || i >= end || buf[i] != ' ')
		return h1_fail(m, H1_ERR_BAD, "malformed method");
	m->method = (struct h1_span){ start, i - start };
	uint32_t t = ++i;
	while (i < end && h1_is_vchar((unsigned char)buf[i]))
		i++;
	if (i == t || i >= end || buf[i] != ' ')
		return h1_fail(m, H1_ERR_BAD, "malformed request target");
	m->target = (struct h1_span){ t, i - t };
	i++;
	enum h1_result v = h1_version(m, buf + i, end - i);
	return v == H1_DONE ? H1_NEED_MORE : v;
}

static enum h1_result h1_status_line(struct h1_msg *m, const char *buf, uint32_t start, uint32_t end)
{
	if (end - start < 12 || buf[start + 8] != ' ')
		return h1_fail(m, H1_ERR_BAD, "malformed status line");
	enum h1_result v = h1_version(m, buf + start, 8);
	if (v != H1_DONE)
		return v;
	const char *d = buf + start + 9;
	if (d[0] < '1' || d[0] > '5' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9' ||
	    (end - start > 12 && d[3] != ' '))
		return h1_fail(m, H1_ERR_BAD, "malformed status code");
	m->status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	for (uint32_t i = start + 12; i < end; i++)
		if (!h1_is_value_char((unsigned char)buf[i]))
			return h1_fail(m, H1_ERR_BAD, "control byte in the reason phrase");
	m->status_rest = (struct h1_span){ start + 9, end - start - 9 };
	return H1_NEED_MORE;
}

/* clean: h1_field_bytes() already passed the whole line; avail: the bytes buf holds. */
static enum h1_result h1_header_line(struct h1_msg *m, const char *buf, uint32_t start, uint32_t end, bool clean,
                                     size_t avail)
{
	if (buf[start] == ' ' || buf[start] == '\t')
		return h1_fail(m, H1_ERR_BAD, "obs-fold (a header line starting with whitespace)");
	/* The line's CR is at end and is no token byte: the name stops there at the latest. */
	uint32_t i = h1_name_end(buf, start, avail);
	if (i == start)
		return h1_fail(m, H1_ERR_BAD, "empty or malformed header name");
	if (i >= end || buf[i] != ':')
		return h1_fail(m, H1_ERR_BAD, i < end && (buf[i] == ' ' || buf[i] == '\t')
		                                      ? "whitespace before the colon of a header"
		                                      : "malformed header name");
	struct h1_span name = { start, i - start };
	uint32_t v = i + 1, e = end;
	if (!clean && !h1_field_bytes(buf + v, end - v))
		return h1_fail(m, H1_ERR_BAD, "control byte in a header value");
	while (v < e && (buf[v] == ' ' || buf[v] == '\t'))
		v++;
	while (e > v && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
		e--;
	if (m->nheaders == H1_MAX_HEADERS)
		return h1_fail(m, H1_ERR_TOO_LARGE, "too many headers");
	m->headers[m->nheaders++] = (struct h1_header){ name, { v, e - v } };
	return H1_NEED_MORE;
}

/* Calls fn for each comma-separated token of a value, trimmed; stops when fn returns false. */
static bool h1_each_token(const char *buf, struct h1_span v, bool (*fn)(void *, const char *, size_t, bool), void *arg)
{
	const char *p = buf + v.off, *end = p + v.len;
	while (p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *q = c ? c : end;
		const char *a = p, *b = q;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (!fn(arg, a, (size_t)(b - a), c == NULL))
			return false;
		if (!c)
			break;
		p = c + 1;
	}
	return true;
}

struct h1_te {
	struct h1_msg *m;
	bool chunked_seen, other, last_chunked, empty;
};

static bool h1_te_token(void *arg, const char *t, size_t n, bool last)
{
	struct h1_te *te = arg;
	(void)last;
	if (n == 0) {
		te->empty = true;
		return true;
	}
	bool ch = n == 7 && h1_name_is(t, "chunked", 7);
	if (ch && te->chunked_seen)
		te->other = true;       /* chunked twice: the body would be decoded twice */
	if (!ch)
		te->other = true;
	te->chunked_seen |= ch;
	te->last_chunked = ch;
	return true;
}

static bool h1_conn_token(void *arg, const char *t, size_t n, bool last)
{
	struct h1_msg *m = arg;
	(void)last;
	if (n == 5 && h1_name_is(t, "close", 5))
		m->conn_close = true;
	else if (n == 10 && h1_name_is(t, "keep-alive", 10))
		m->conn_keepalive = true;
	else if (n == 7 && h1_name_is(t, "upgrade", 7))
		m->conn_upgrade = true;
	else if (n > 0)
		m->conn_other = true;
	return true;
}

static enum h1_result h1_content_length(struct h1_msg *m, const char *buf, struct h1_span v)
{
	if (m->has_content_length)
		return h1_fail(m, H1_ERR_BAD, "Content-Length given more than once");
	if (v.len == 0 || v.len > 19)
		return h1_fail(m, H1_ERR_BAD, "malformed Content-Length");
	uint64_t n = 0;
	for (uint32_t i = 0; i < v.len; i++) {
		char c = buf[v.off + i];
		if (c < '0' || c > '9')
			return h1_fail(m, H1_ERR_BAD, "malformed Content-Length");
		n = n * 10 + (uint64_t)(c - '0');
	}
	m->has_content_length = true;
	m->content_length = n;
	return H1_DONE;
}

/* The authority of an absolute-form target ("http://host:port/path") must be Host. */
static enum h1_result h1_absolute_target(struct h1_msg *m, const char *buf)
{
	const char *t = buf + m->target.off;
	uint32_t skip = 0;
	if (m->target.len >= 7 && strncasecmp(t, "http://", 7) == 0)
		skip = 7;
	else if (m->target.len >= 8 && strncasecmp(t, "https://", 8) == 0)
		skip = 8;
	else
		return h1_fail(m, H1_ERR_BAD, "malformed request target");
	uint32_t a = skip;
	while (a < m->target.len && t[a] != '/' && t[a] != '?')
		a++;
	uint32_t alen = a - skip;
	if (alen == 0 || memchr(t + skip, '@', alen))
		return h1_fail(m, H1_ERR_BAD, "absolute-form target without a plain authority");
	if (!m->has_host || m->host.len != alen || strncasecmp(buf + m->host.off, t + skip, alen) != 0)
		return h1_fail(m, H1_ERR_BAD, "absolute-form target names another host than Host");
	m->path = (struct h1_span){ m->target.off + a, m->target.len - a };
	return H1_DONE;
}

/* Once the head is complete: what its headers say, and whether they may be trusted. */
static enum h1_result h1_finish(struct h1_msg *m, const char *buf)
{
	struct h1_te te = { .m = m };
	bool has_te = false;
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct h1_header *h = &m->headers[i];
		const char *n = buf + h->name.off;
		switch (h->name.len) {
		case 4:
			if (h1_name_is(n, "host", 4)) {
				if (m->has_host)
					return h1_fail(m, H1_ERR_BAD, "Host given more than once");
				m->has_host = true;
				m->host = h->value;
			}
			break;
		case 6:
			if (h1_name_is(n, "expect", 6) && h1_span_is(buf, h->value, "100-continue"))
				m->expect_continue = true;
			break;
		case 7:
			if (h1_name_is(n, "upgrade", 7)) {
				m->upgrade = true;
				m->upgrade_value = h->value;
			}
			break;
		case 10:
			if (h1_name_is(n, "connection", 10))
				h1_each_token(buf, h->value, h1_conn_token, m);
			break;
		case 14:
			if (h1_name_is(n, "content-length", 14) && h1_content_length(m, buf, h->value) != H1_DONE)
				return H1_ERR_BAD;
			break;
		case 17:
			if (h1_name_is(n, "transfer-encoding", 17)) {
				has_te = true;
				h1_each_token(buf, h->value, h1_te_token, &te);
			}
			break;
		}
	}
	m->upgrade = m->upgrade && m->conn_upgrade;
	if (has_te && m->has_content_length)
		return h1_fail(m, H1_ERR_BAD, "both Content-Length and Transfer-Encoding");
	if (has_te) {
		if (te.empty && !te.chunked_seen)
			return h1_fail(m, H1_ERR_BAD, "empty Transfer-Encoding");
		if (m->is_request) {
			/* RFC 9112 6.3: a request whose final coding is not chunked cannot be framed. */
			if (!te.last_chunked)
				return h1_fail(m, H1_ERR_BAD, "Transfer-Encoding does not end in chunked");
			if (te.other)
				return h1_fail(m, H1_ERR_CODING, "a transfer coding other than chunked");
			m->chunked = true;
		} else if (te.last_chunked && !te.other) {
			m->chunked = true;
		} else {
			m->close_delimited = true;
		}
	}
	if (m->is_request) {
		if (m->minor == 1 && !m->has_host)
			return h1_fail(m, H1_ERR_BAD, "HTTP/1.1 request without Host");
		const char *t = buf + m->target.off;
		bool connect = h1_span_is(buf, m->method, "connect");
		if (connect)
			return h1_fail(m, H1_ERR_CODING, "CONNECT is not served by a reverse proxy");
		if (t[0] == '/') {
			m->path = m->target;
		} else if (m->target.len == 1 && t[0] == '*') {
			if (!h1_span_is(buf, m->method, "options"))
				return h1_fail(m, H1_ERR_BAD, "asterisk-form target with a method other than OPTIONS");
			m->path = (struct h1_span){ m->target.off, 0 };
		} else if (h1_absolute_target(m, buf) != H1_DONE) {
			return H1_ERR_BAD;
		}
		m->keepalive = m->minor == 1 && !m->conn_close;
	} else {
		if (m->head_request || (m->status >= 100 && m->status < 200) || m->status == 204 || m->status == 304)
			m->no_body = true;
		if (!m->no_body && !m->chunked && !m->has_content_length)
			m->close_delimited = true;
		m->keepalive = m->minor == 1 && !m->conn_close && !m->close_delimited;
	}
	m->state = ST_DONE;
	return H1_DONE;
}

enum h1_result h1_parse(struct h1_msg *m, const char *buf, size_t len)
{
	if (m->state == ST_DONE)
		return H1_DONE;
	if (m->state == ST_ERROR)
		return H1_ERR_BAD;
	size_t end = len < m->limit ? len : m->limit;
	while (m->pos < end) {
		/* The usual line ends in CRLF and holds no control byte but tabs: then it has no
		 * bare CR and no NUL, and a header line's value needs no look of its own. */
		size_t stop_at = h1_line_stop(buf, m->line, end);
		bool clean = stop_at + 1 < end && buf[stop_at] == '\r' && buf[stop_at + 1] == '\n';
		uint32_t eol = (uint32_t)stop_at + 1;
		if (!clean && (stop_at == end || (stop_at + 1 == end && buf[stop_at] == '\r'))) {
			/* Plain so far, the line's end yet to come (a CR at the very end is looked at
			 * again once the next byte is here). */
			m->pos = (uint32_t)stop_at;
			break;
		}
		if (!clean) {
			const char *nl = memchr(buf + m->pos, '\n', end - m->pos);
			eol = nl ? (uint32_t)(nl - buf) : 0;
			const char *cr = memchr(buf + m->pos, '\r', (nl ? (size_t)eol : end) - m->pos);
			/* A CR is only ever the first half of a line's CRLF. */
			if (cr && (!nl ? (size_t)(cr - buf) + 1 < end : cr + 1 != nl))
				return h1_fail(m, H1_ERR_BAD, "bare CR");
			if (!nl) {
				/* A CR at the very end is looked at again once the next byte is here. */
				m->pos = (uint32_t)(cr ? end - 1 : end);
				break;
			}
			if (eol == m->line || buf[eol - 1] != '\r')
				return h1_fail(m, H1_ERR_BAD, "bare LF (lines must end in CRLF)");
			if (memchr(buf + m->line, '\0', eol - 1 - m->line))
				return h1_fail(m, H1_ERR_BAD, "NUL byte in the head");
		}
		uint32_t start = m->line, stop = eol - 1;
		m->pos = m->line = eol + 1;
		enum h1_result r;
		if (m->state == ST_START) {
			if (stop == start && m->is_request && start < 4)
				continue;       /* an empty line or two before a request (RFC 9112 2.2) */
			r = m->is_request ? h1_request_line(m, buf, start, stop) : h1_status_line(m, buf, start, stop);
			m->state = ST_HEADERS;
		} else if (stop == start) {
			m->head_len = m->pos;
			return h1_finish(m, buf);
		} else {
			r = h1_header_line(m, buf, start, stop, clean, end);
		}
		if (r != H1_NEED_MORE)
			return r;
		if (m->state == ST_ERROR)
			return H1_ERR_BAD;
	}
	if (end == m->limit && len >= m->limit)
		return h1_fail(m, H1_ERR_TOO_LARGE, "head larger than the limit");
	return H1_NEED_MORE;
}

enum h1_result h1_req_written(struct h1_msg *m, const char *buf, uint32_t head_len)
{
	if (head_len > m->limit || m->nheaders > H1_MAX_HEADERS)
		return h1_fail(m, H1_ERR_TOO_LARGE, "head larger than the limit");
	m->minor = 1;
	m->pos = m->line = m->head_len = head_len;
	m->state = ST_HEADERS;
	return h1_finish(m, buf);
}

void h1_msg_copy(struct h1_msg *dst, const struct h1_msg *src)
{
	memcpy(dst, src, offsetof(struct h1_msg, headers) + src->nheaders * sizeof(src->headers[0]));
}

int h1_error_status(enum h1_result r)
{
	switch (r) {
	case H1_ERR_TOO_LARGE:
		return 431;
	case H1_ERR_CODING:
		return 501;
	case H1_ERR_VERSION:
		return 505;
	default:
		return 400;
	}
}

const char *h1_error_text(const struct h1_msg *m, enum h1_result r)
{
	if (m && m->why)
		return m->why;
	return r == H1_ERR_TOO_LARGE ? "head too large" : "malformed";
}

struct h1_listed {
	const char *name;
	size_t len;
	bool found;
};

static bool h1_listed_token(void *arg, const char *t, size_t n, bool last)
{
	struct h1_listed *l = arg;
	(void)last;
	if (n == l->len && strncasecmp(t, l->name, n) == 0)
		l->found = true;
	return !l->found;
}

bool h1_connection_lists_looked_up(const struct h1_msg *m, const char *buf, const char *name, size_t len)
{
	/* Called for every header of a message: the tokens the head was read for answer from
	 * their flags, and only a Connection header with other tokens is looked at again. */
	if (len == 5 && h1_name_is(name, "close", 5))
		return m->conn_close;
	if (len == 10 && h1_name_is(name, "keep-alive", 10))
		return m->conn_keepalive;
	if (len == 7 && h1_name_is(name, "upgrade", 7))
		return m->conn_upgrade;
	if (!m->conn_other)
		return false;
	struct h1_listed l = { name, len, false };
	for (size_t i = 0; i < m->nheaders && !l.found; i++)
		if (h1_span_is(buf, m->headers[i].name, "connection"))
			h1_each_token(buf, m->headers[i].value, h1_listed_token, &l);
	return l.found;
}

/* Credentials are one "scheme [token68 | params]"; challenges a comma list of
 * them, where an element may also be an auth-param of the challenge before it
 * (name "=" value). An element's first token names a scheme unless '=' follows it. */
bool h1_auth_binds_connection(const char *value, size_t len)
{
	const unsigned char *p = (const unsigned char *)value, *end = p + len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const unsigned char *tok = p;
		while (p < end && h1_tchar[*p])
			p++;
		size_t n = (size_t)(p - tok);
		const unsigned char *after = p;
		while (after < end && (*after == ' ' || *after == '\t'))
			after++;
		bool param = after < end && *after == '=' && n > 0;
		if (!param && ((n == 4 && strncasecmp((const char *)tok, "ntlm", 4) == 0) ||
		               (n == 9 && strncasecmp((const char *)tok, "negotiate", 9) == 0)))
			return true;
		/* The rest of the element: a token68 or the param's value, quoted strings whole. */
		while (p < end && *p != ',') {
			if (*p++ != '"')
				continue;
			while (p < end && *p != '"')
				p += *p == '\\' && p + 1 < end ? 2 : 1;
			if (p < end)
				p++;
		}
	}
	return false;
}

int h1_host_normalize(const char *host, size_t len, char *out, size_t cap, uint16_t *port)
{
	size_t hlen = len;
	*port = 0;
	if (len == 0 || cap == 0)
		return -1;
	if (host[0] == '[') {
		const char *close = memchr(host, ']', len);
		if (!close)
			return -1;
		hlen = (size_t)(close - host) + 1;
		for (size_t i = 1; i + 1 < hlen; i++)
			if (!((host[i] >= '0' && host[i] <= '9') || (host[i] >= 'a' && host[i] <= 'f') ||
			      (host[i] >= 'A' && host[i] <= 'F') || host[i] == ':' || host[i] == '.'))
				return -1;
	} else {
		const char *colon = memchr(host, ':', len);
		if (colon)
			hlen = (size_t)(colon - host);
	}
	if (hlen < len) {
		if (host[hlen] != ':' || hlen + 1 == len || len - hlen - 1 > 5)
			return -1;
		unsigned p = 0;
		for (size_t i = hlen + 1; i < len; i++) {
			if (host[i] < '0' || host[i] > '9')
				return -1;
			p = p * 10 + (unsigned)(host[i] - '0');
		}
		if (p == 0 || p > 65535)
			return -1;
		*port = (uint16_t)p;
	}
	if (host[0] != '[' && hlen && host[hlen - 1] == '.')
		hlen--;
	if (hlen == 0 || hlen >= cap)
		return -1;
	for (size_t i = 0; i < hlen; i++) {
		char c = host[i];
		if (host[0] != '[' && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		                        c == '-' || c == '.' || c == '_'))
			return -1;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	out[hlen] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- chunked */

enum { CK_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILER, CK_TRAILER_LF, CK_DONE, CK_ERROR };

#define H1_CHUNK_EXT_MAX 4096
#define H1_TRAILER_MAX (16 * 1024)

void h1_chunked_init(struct h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static enum h1_result h1_ck_fail(struct h1_chunked *c, const char *why)
{
	c->state = CK_ERROR;
	c->why = why;
	return H1_ERR_BAD;
}

static int h1_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

uint64_t h1_chunked_data_left(const struct h1_chunked *c)
{
	return c->state == CK_DATA ? c->left : 0;
}

bool h1_chunked_in_trailer(const struct h1_chunked *c)
{
	return c->state == CK_TRAILER || c->state == CK_TRAILER_LF;
}

enum h1_result h1_chunked_feed(struct h1_chunked *c, const char *p, size_t len, size_t *used)
{
	size_t i = 0;
	*used = 0;
	if (c->state == CK_DONE)
		return H1_DONE;
	if (c->state == CK_ERROR)
		return H1_ERR_BAD;
	while (i < len) {
		char ch = p[i];
		switch (c->state) {
		case CK_SIZE: {
			int h = h1_hex(ch);
			if (h >= 0) {
				/* 15 hex digits are petabytes already; more is an overflow attack. */
				if (++c->digits > 15)
					return h1_ck_fail(c, "chunk size too large");
				c->left = c->left * 16 + (uint64_t)h;
				i++;
				break;
			}
			if (c->digits == 0)
				return h1_ck_fail(c, "malformed chunk size");
			if (ch == ';') {
				c->state = CK_EXT;
				c->count = 0;
			} else if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				return h1_ck_fail(c, "malformed chunk size");
			}
			i++;
			break;
		}
		case CK_EXT:
			if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else if ((unsigned char)ch < 0x20 && ch != '\t') {
				return h1_ck_fail(c, "control byte in a chunk extension");
			} else if (++c->count > H1_CHUNK_EXT_MAX) {
				return h1_ck_fail(c, "chunk extension too long");
			}
			i++;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return h1_ck_fail(c, "bare CR after a chunk size");
			i++;
			c->digits = 0;
			if (c->left == 0) {
				c->state = CK_TRAILER;
				c->count = 0;
			} else {
				c->state = CK_DATA;
			}
			break;
		case CK_DATA: {
			size_t take = len - i;
			if (take > c->left)
				take = (size_t)c->left;
			c->left -= take;
			i += take;
			if (c->left == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return h1_ck_fail(c, "chunk data longer than its size");
			c->state = CK_DATA_LF;
			i++;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return h1_ck_fail(c, "bare CR after chunk data");
			c->state = CK_SIZE;
			i++;
			break;
		case CK_TRAILER:
			/* count: bytes on the current trailer line; an empty line ends the body. */
			if (ch == '\r') {
				c->state = CK_TRAILER_LF;
			} else if (ch == '\n' || ch == '\0') {
				return h1_ck_fail(c, "bare LF or NUL in the trailer");
			} else if (++c->trailer > H1_TRAILER_MAX) {
				return h1_ck_fail(c, "trailer section too large");
			} else {
				c->count++;
			}
			i++;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return h1_ck_fail(c, "bare CR in the trailer");
			i++;
			if (c->count == 0) {
				c->state = CK_DONE;
				*used = i;
				return H1_DONE;
			}
			c->count = 0;
			c->state = CK_TRAILER;
			break;
		}
	}
	*used = i;
	return H1_NEED_MORE;
}
