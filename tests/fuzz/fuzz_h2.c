/* libFuzzer: the HTTP/2 server connection (h2) fed client bytes after the
 * connection preface, in two parts cut where the first byte says, with the
 * clock moving between them. Every request is answered (head, a little body,
 * trailers on odd streams) so the output side runs too, and the output is
 * drained after each part. Invariants: no crash, no leak, no request that
 * h1_parse would not read or would read otherwise than the h1_msg handed
 * over with it, and h2_done once h2_recv has given up. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h1.h"
#include "proto/h2.h"

static struct h2_conn *conn;

static int on_request(void *ctx, int32_t id, const struct h2_request *req)
{
	struct h1_msg m;
	h1_req_init(&m, 0);
	if (h1_parse(&m, req->head, req->head_len) != H1_DONE)
		abort();
	if (memcmp(&m, req->msg, offsetof(struct h1_msg, headers)) != 0 ||
	    memcmp(m.headers, req->msg->headers, m.nheaders * sizeof(m.headers[0])) != 0)
		abort();
	struct h2head_field f[] = { { ":status", "200", 7, 3, true }, { "content-type", "text/plain", 12, 10, true } };
	h2_respond(conn, id, f, 2, false);
	h2_send_data(conn, id, (const uint8_t *)"ok", 2);
	struct h2head_field t[] = { { "x-sum", "1", 5, 1, false } };
	h2_send_end(conn, id, t, id & 2 ? 1 : 0);
	return 0;
}

static void on_data(void *ctx, int32_t id, const uint8_t *p, size_t len)
{
	h2_consume(conn, id, len);
}

static void on_end(void *ctx, int32_t id, const struct h2head_field *t, size_t n)
{
}

static void on_reset(void *ctx, int32_t id, uint32_t code)
{
}

static void on_writable(void *ctx, int32_t id)
{
}

static const struct h2_stream_ops ops = { on_request, on_data, on_end, on_reset, on_writable };

static void drain(void)
{
	const uint8_t *p;
	while (h2_output(conn, &p) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	if (size < 1)
		return 0;
	struct h2_config cfg;
	h2_config_default(&cfg);
	cfg.max_header_list_size = 4096;
	cfg.stream_out_buffer = 1024;
	cfg.max_resets = 8;
	cfg.max_pings = 8;
	cfg.max_settings = 8;
	cfg.max_empty_data = 8;
	conn = h2_new(&cfg, &ops, NULL);
	if (!conn)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1, cut = n ? (size_t)data[0] * 257 % (n + 1) : 0;
	int rc = h2_recv(conn, (const uint8_t *)preface, sizeof(preface) - 1, 0);
	drain();
	if (rc == 0) {
		rc = h2_recv(conn, p, cut, 10);
		drain();
	}
	if (rc == 0) {
		rc = h2_recv(conn, p + cut, n - cut, 2000);
		drain();
	}
	if (rc != 0 && !h2_done(conn))
		abort();
	h2_free(conn);
	conn = NULL;
	return 0;
}
