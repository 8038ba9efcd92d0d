/* libFuzzer: the heads the gateway writes (gateway/http/head.c) from heads
 * h1_parse() accepted. The first byte picks request or response and the
 * options (forwarding headers, a Host rewrite, a normalized target, keep-alive,
 * a status); the rest is the head. Invariants: a written request head starts
 * with the client's method and a written response head with "HTTP/1.1 ", and
 * both end with the blank line; no byte is read outside the input (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/h1.h"
#include "http/head.h"

static void fuzz_check_end(struct evbuffer *out, const char *start, size_t start_len)
{
	size_t n = evbuffer_get_length(out);
	const char *p = (const char *)evbuffer_pullup(out, -1);
	if (n < start_len + 4 || memcmp(p, start, start_len) != 0 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0)
		abort();
	evbuffer_drain(out, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t opt = data[0];
	const char *head = (const char *)data + 1;
	size_t n = size - 1;
	struct evbuffer *out = evbuffer_new();
	if (!out)
		return 0;
	struct h1_msg m;
	if (opt & 1) {
		h1_req_init(&m, 0);
		if (h1_parse(&m, head, n) == H1_DONE) {
			struct http_head_request in = {
				.head = head, .q = &m, .target = (opt & 2) ? "/fuzz%20target?q" : NULL,
				.host_rewrite = (opt & 4) ? "inside.test" : NULL, .forwarded = opt & 8,
				.client_ip = (opt & 16) ? "2001:db8::7" : "192.0.2.7", .tls = opt & 32,
				.host = "a.test", .host_len = (opt & 64) ? 6 : 0, .upgrade = m.upgrade,
			};
			(void)http_head_write_request(out, &in);
			fuzz_check_end(out, head + m.method.off, m.method.len);
		}
	} else {
		h1_resp_init(&m, 0, opt & 2);
		if (h1_parse(&m, head, n) == H1_DONE) {
			struct http_head_response in = {
				.head = head, .r = &m, .status = m.status,
				.set_cookie = (opt & 4) ? "Set-Cookie: s=0123456789abcdef\r\n" : NULL, .keepalive = opt & 8,
			};
			(void)http_head_write_response(out, &in);
			fuzz_check_end(out, "HTTP/1.1 ", 9);
		}
		http_head_write_answer(out, 100 + opt % 500, (opt & 16) ? "X-A: b\r\n" : NULL, n, opt & 32);
		fuzz_check_end(out, "HTTP/1.1 ", 9);
		(void)http_head_reason(opt);
	}
	evbuffer_free(out);
	return 0;
}
