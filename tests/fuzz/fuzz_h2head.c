/* libFuzzer: HTTP/2 header lists to HTTP/1.1 heads (h2head). The input is a
 * flag byte, then fields as [name length][value length][name][value]. The
 * invariant that matters for smuggling: every list h2head accepts becomes a
 * head that h1_parse reads back as DONE with the same method, path, host,
 * content-length and number of fields, so no byte of a field could start a
 * field or a message of its own; and the h1_msg h2head_req_write hands the
 * session instead of the text (h1_req_written) is exactly the one h1_parse
 * reads from that text, every span and flag. Leftover bytes are read as a response head
 * whose HTTP/2 fields must come out lower case and without hop-by-hop fields,
 * and as a trailer section whose fields must be lower-case tokens with clean
 * values, none of them one h2head_trailer_forbidden() names. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/h1.h"
#include "proto/h2head.h"

static void check_response(const char *p, size_t n, int ext_connect)
{
	struct h1_msg m;
	h1_resp_init(&m, 4096, false);
	if (h1_parse(&m, p, n) != H1_DONE)
		return;
	char scratch[4200];
	struct h2head_field f[H1_MAX_HEADERS + 1];
	int k = h2head_resp_fields(&m, p, ext_connect, scratch, sizeof(scratch), f, H1_MAX_HEADERS + 1);
	if (k < 1 || k > (int)m.nheaders + 1 || strncmp(f[0].name, ":status", 7) != 0)
		abort();
	for (int i = 1; i < k; i++) {
		for (size_t j = 0; j < f[i].name_len; j++)
			if (f[i].name[j] >= 'A' && f[i].name[j] <= 'Z')
				abort();
		if ((f[i].name_len == 10 && memcmp(f[i].name, "connection", 10) == 0) ||
		    (f[i].name_len == 17 && memcmp(f[i].name, "transfer-encoding", 17) == 0))
			abort();
	}
}

static void check_trailers(const char *p, size_t n)
{
	static char scratch[4200];
	struct h2head_field f[64];
	int k = h2head_trailer_fields(p, n, scratch, n < sizeof(scratch) ? n : sizeof(scratch), f, 64);
	for (int i = 0; i < k; i++) {
		if (!f[i].name_len || h2head_trailer_forbidden(f[i].name, f[i].name_len))
			abort();
		for (size_t j = 0; j < f[i].name_len; j++)
			if ((f[i].name[j] >= 'A' && f[i].name[j] <= 'Z') || f[i].name[j] <= ' ' || f[i].name[j] == ':')
				abort();
		for (size_t j = 0; j < f[i].value_len; j++)
			if ((unsigned char)f[i].value[j] < 0x20 && f[i].value[j] != '\t')
				abort();
		if (f[i].value_len && (f[i].value[0] == ' ' || f[i].value[f[i].value_len - 1] == ' '))
			abort();
	}
}

static int span_is(const char *buf, struct h1_span s, const char *arena, struct h2head_span t)
{
	return s.len == t.len && memcmp(buf + s.off, arena + t.off, s.len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	static char arena[8192];
	struct h2head_req r;
	h2head_req_init(&r, arena, (flags & 4) ? 64 : sizeof(arena));
	size_t i = 1;
	enum h2head_result e = H2HEAD_OK;
	while (e == H2HEAD_OK && i + 2 <= size) {
		size_t nl = data[i], vl = data[i + 1];
		if (i + 2 + nl + vl > size)
			break;
		e = h2head_req_add(&r, (const char *)data + i + 2, nl, (const char *)data + i + 2 + nl, vl);
		i += 2 + nl + vl;
	}
	check_response((const char *)data + i, size - i, flags & 8);
	check_trailers((const char *)data + i, size - i);
	if (e != H2HEAD_OK || h2head_req_end(&r) != H2HEAD_OK)
		return 0;
	static char out[16384];
	int ws = h2head_req_is_websocket(&r);
	struct h2head_write w = { .body_follows = flags & 1, .close = flags & 16,
				  .ws_key = ws ? "dGhlIHNhbXBsZSBub25jZQ==" : NULL };
	static struct h1_msg written;
	h1_req_init(&written, 0);
	size_t len = h2head_req_write(&r, &w, out, sizeof(out), &written);
	if (len == 0)
		abort();
	static struct h1_msg m;
	h1_req_init(&m, 0);
	if (h1_parse(&m, out, len) != H1_DONE || m.head_len != len)
		abort();
	if (memcmp(&m, &written, offsetof(struct h1_msg, headers)) != 0 ||
	    memcmp(m.headers, written.headers, m.nheaders * sizeof(m.headers[0])) != 0)
		abort();
	int version = 0;
	for (uint32_t k = 0; k < r.nfields; k++)
		version |= r.fields[k].name.len == 21 && memcmp(r.arena + r.fields[k].name.off, "sec-websocket-version", 21) == 0;
	uint32_t cookies = r.ncookies ? 1 : 0;
	uint32_t extra = 1 + cookies + (ws ? 3 + !version : ((flags & 1) && !r.has_content_length)) + !!(flags & 16);
	if (m.nheaders != r.nfields - r.ncookies + extra)
		abort();
	if (!ws && !span_is(out, m.method, r.arena, r.method))
		abort();
	if (r.path.len != 1 || r.arena[r.path.off] != '*') {
		if (!span_is(out, m.path, r.arena, r.path))
			abort();
	}
	if (!span_is(out, m.host, r.arena, r.authority.len ? r.authority : r.host))
		abort();
	if (m.has_content_length != r.has_content_length || (r.has_content_length && m.content_length != r.content_length))
		abort();
	return 0;
}
