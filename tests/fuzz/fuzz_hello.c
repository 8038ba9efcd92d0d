/* libFuzzer: the ClientHello reader over arbitrary bytes in arbitrary pieces; fed whole
 * (fields and extensions taken at once) it decides as it does a byte at a time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* The first byte picks the piece size, so the fuzzer explores splits too. */
	size_t step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	struct hello_reader r;
	hello_reader_init(&r);
	enum hello_status st = HELLO_NEED_MORE;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		enum hello_status next = hello_reader_feed(&r, data + off, n);
		if (st != HELLO_NEED_MORE && next != st)
			abort();        /* a decided status must never change */
		st = next;
	}
	if (st == HELLO_DONE && r.has_sni && (r.sni_len == 0 || r.sni_len > HELLO_MAX_NAME ||
	                                      strlen(r.sni) != r.sni_len))
		abort();
	if ((st == HELLO_MALFORMED || st == HELLO_NOT_TLS) && r.has_sni)
		abort();        /* a broken hello never yields a name to route on */
	struct hello_reader whole, bytes;
	hello_reader_init(&whole);
	hello_reader_init(&bytes);
	enum hello_status w = hello_reader_feed(&whole, data, size), b = HELLO_NEED_MORE;
	for (size_t off = 0; off < size && b == HELLO_NEED_MORE; off++)
		b = hello_reader_feed(&bytes, data + off, 1);
	if (w != b || whole.has_sni != bytes.has_sni || whole.alpn_acme != bytes.alpn_acme ||
	    (whole.has_sni && strcmp(whole.sni, bytes.sni) != 0))
		abort();
	return 0;
}
