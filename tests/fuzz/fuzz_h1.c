/* libFuzzer: the HTTP/1 head parser (request and response) and the chunked
 * decoder. Invariants: feeding the input in two parts gives the same answer as
 * in one; spans stay inside the head; the chunked decoder never uses more
 * bytes than it was given. The first byte picks what is fuzzed and where to cut. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h1.h"

static void fuzz_head(const char *p, size_t n, size_t cut, int request)
{
	struct h1_msg a, b;
	if (request) {
		h1_req_init(&a, 4096);
		h1_req_init(&b, 4096);
	} else {
		h1_resp_init(&a, 4096, cut & 1);
		h1_resp_init(&b, 4096, cut & 1);
	}
	enum h1_result whole = h1_parse(&a, p, n);
	enum h1_result r = h1_parse(&b, p, cut);
	if (r == H1_NEED_MORE)
		r = h1_parse(&b, p, n);
	if (r != whole)
		abort();
	if (whole != H1_DONE)
		return;
	if (a.head_len > n || a.head_len != b.head_len || a.nheaders > H1_MAX_HEADERS)
		abort();
	for (size_t i = 0; i < a.nheaders; i++) {
		const struct h1_header *h = &a.headers[i];
		if (h->name.off + h->name.len > a.head_len || h->value.off + h->value.len > a.head_len)
			abort();
	}
	if (request && (a.path.off + a.path.len > a.head_len || a.target.off + a.target.len > a.head_len))
		abort();
	for (size_t i = 0; i < a.nheaders; i++)
		h1_auth_binds_connection(p + a.headers[i].value.off, a.headers[i].value.len);
	if (a.has_host) {
		char out[256];
		uint16_t port;
		h1_host_normalize(p + a.host.off, a.host.len, out, sizeof(out), &port);
	}
}

static void fuzz_chunked(const char *p, size_t n, size_t cut)
{
	struct h1_chunked a, b;
	h1_chunked_init(&a);
	h1_chunked_init(&b);
	size_t ua = 0, u1 = 0, u2 = 0;
	enum h1_result whole = h1_chunked_feed(&a, p, n, &ua);
	enum h1_result r = h1_chunked_feed(&b, p, cut, &u1);
	if (u1 > cut)
		abort();
	if (r == H1_NEED_MORE)
		r = h1_chunked_feed(&b, p + cut, n - cut, &u2);
	if (ua > n || r != whole || (whole == H1_DONE && u1 + u2 != ua))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	size_t cut = n ? (size_t)data[0] * 131 % (n + 1) : 0;
	switch (mode % 3) {
	case 0:
		fuzz_head(p, n, cut, 1);
		break;
	case 1:
		fuzz_head(p, n, cut, 0);
		break;
	default:
		fuzz_chunked(p, n, cut);
		break;
	}
	return 0;
}
