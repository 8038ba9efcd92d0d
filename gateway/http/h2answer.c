#include "http/h2answer.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http/head.h"
#include "http/session.h"
#include "proto/h2head.h"

/* RFC 9113 7: the reset of a stream whose answer could not be passed on whole. */
#define H2A_INTERNAL_ERROR 2

/* Room for the lower-cased names of most heads, on the stack. */
#define H2A_SCRATCH 2048

void h2a_init(struct h2a_answer *a, bool head_request, bool tunnel)
{
	*a = (struct h2a_answer){ .head_request = head_request, .tunnel = tunnel };
}

void h2a_free(struct h2a_answer *a)
{
	h2t_trailer_free(&a->trailer);
	free(a->text);
	a->text = NULL;
}

void h2a_fail(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, uint32_t code)
{
	evbuffer_drain(out, evbuffer_get_length(out));
	if (a->ended)
		return;
	a->ended = true;
	if (h2)
		h2_reset(h2, id, code);
}

/* The head's fields (n of them, or n < 0: they did not fit) go out as HEADERS;
 * m says its status and the body's framing. Returns false when the stream failed. */
static bool h2a_send_head(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out,
                          const struct h1_msg *m, const struct h2head_field *fields, int n)
{
	bool upgraded = a->tunnel && m->status == 101;
	bool interim = m->status < 200 && !upgraded;
	if (!interim) {
		if (upgraded)
			a->framing = H2A_CLOSE;         /* the tunnel's bytes, until the session shuts its side */
		else if (m->no_body)
			a->framing = H2A_NONE;
		else if (m->chunked)
			a->framing = H2A_CHUNKED;
		else if (m->has_content_length)
			a->framing = m->content_length ? H2A_LENGTH : H2A_NONE;
		else
			a->framing = H2A_CLOSE;
		a->left = m->content_length;
		h1_chunked_init(&a->chunks);
	}
	bool end = !interim && a->framing == H2A_NONE;
	if (n <= 0 || !h2 || h2_respond(h2, id, fields, (size_t)n, end) != 0) {
		h2a_fail(a, h2, id, out, H2A_INTERNAL_ERROR);
		return false;
	}
	if (!interim) {
		a->head_done = true;
		a->ended = end;
	}
	return true;
}

int h2a_head(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, const char *head,
             const struct h1_msg *m, const char *set_cookie)
{
	if (a->ended)
		return 0;
	if (a->head_done || evbuffer_get_length(out))
		return -1;
	char small[H2A_SCRATCH];
	size_t cap = m->head_len + 4;
	char *scratch = cap <= sizeof(small) ? small : malloc(cap);
	struct h2head_field fields[H1_MAX_HEADERS + 2];
	int n = scratch ? h2head_resp_fields(m, head, a->tunnel, scratch, cap, fields, H1_MAX_HEADERS + 1) : -1;
	/* What an HTTP/1.1 client would not get either: the head as text drops
	 * these before h2head_resp_fields() sees it. */
	int kept = n > 0 ? 1 : n;
	for (int i = 1; i < n; i++)
		if (!http_head_hop_by_hop(fields[i].name, fields[i].name_len))
			fields[kept++] = fields[i];
	size_t clen = set_cookie ? strlen(set_cookie) : 0;
	if (kept > 0 && clen > 14) {
		/* "Set-Cookie: " value CRLF, as pool.c writes it. */
		size_t len = clen;
		fields[kept++] = (struct h2head_field){ "set-cookie", set_cookie + 12, 10, len - 14, true };
	}
	h2a_send_head(a, h2, id, out, m, fields, kept);
	if (scratch != small)
		free(scratch);
	return 0;
}

/* A head the session wrote as text, read back. Returns false when nothing more moves now. */
static bool h2a_take_head(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out)
{
	size_t len = evbuffer_get_length(out);
	if (!len)
		return false;
	if (!a->text) {
		if (!(a->text = malloc(sizeof(*a->text)))) {
			h2a_fail(a, h2, id, out, H2A_INTERNAL_ERROR);
			return false;
		}
		h1_resp_init(a->text, HTTP_HEAD_MAX, a->head_request);
	}
	struct h1_msg *m = a->text;
	size_t take = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	/* The head is read where it lies when its first chain holds it whole, as it
	 * does when the session wrote it at once: a pullup would copy the body too. */
	struct evbuffer_iovec v;
	enum h1_result rc = H1_NEED_MORE;
	const char *head = NULL;
	if (evbuffer_peek(out, -1, NULL, &v, 1) >= 1 && v.iov_len < take) {
		head = v.iov_base;
		rc = h1_parse(m, head, v.iov_len);
	}
	if (rc == H1_NEED_MORE) {
		head = (const char *)evbuffer_pullup(out, (ev_ssize_t)take);
		rc = h1_parse(m, head, take);
	}
	if (rc == H1_NEED_MORE && take < HTTP_HEAD_MAX)
		return false;
	char small[H2A_SCRATCH];
	size_t cap = rc == H1_DONE ? m->head_len + 4 : 0;
	char *scratch = cap <= sizeof(small) ? small : malloc(cap);
	struct h2head_field fields[H1_MAX_HEADERS + 1];
	int n = rc == H1_DONE && scratch
	                ? h2head_resp_fields(m, head, a->tunnel, scratch, cap, fields, H1_MAX_HEADERS + 1)
	                : -1;
	bool interim = m->status < 200 && !(a->tunnel && m->status == 101);
	bool sent = h2a_send_head(a, h2, id, out, m, fields, n);
	if (scratch != small)
		free(scratch);
	if (!sent)
		return false;
	evbuffer_drain(out, m->head_len);
	if (interim)
		h1_resp_init(m, HTTP_HEAD_MAX, a->head_request);
	return true;
}

/* Body bytes of the answer become DATA as far as the stream's buffer takes them;
 * chunked framing is read and dropped. Returns false when nothing more moves now. */
static bool h2a_take_body(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || !v.iov_len)
		return false;
	if (a->framing == H2A_CHUNKED && !h1_chunked_data_left(&a->chunks)) {
		size_t used;
		int kept = h2t_trailer_byte(&a->trailer, &a->chunks, *(const char *)v.iov_base);
		enum h1_result rc = h1_chunked_feed(&a->chunks, v.iov_base, 1, &used);
		evbuffer_drain(out, 1);
		if (kept != 0) {
			h2a_fail(a, h2, id, out, H2A_INTERNAL_ERROR);
		} else if (rc == H1_DONE) {
			a->ended = true;
			if (h2t_send_end(h2, id, &a->trailer) != 0)
				h2_reset(h2, id, H2A_INTERNAL_ERROR);
		} else if (rc != H1_NEED_MORE) {
			h2a_fail(a, h2, id, out, H2A_INTERNAL_ERROR);
		}
		return !a->ended;
	}
	size_t want = v.iov_len;
	if (a->framing == H2A_CHUNKED && want > h1_chunked_data_left(&a->chunks))
		want = (size_t)h1_chunked_data_left(&a->chunks);
	if (a->framing == H2A_LENGTH && want > a->left)
		want = (size_t)a->left;
	size_t n = h2_send_data(h2, id, v.iov_base, want);
	if (a->framing == H2A_CHUNKED && n) {
		size_t used;
		h1_chunked_feed(&a->chunks, v.iov_base, n, &used);
	}
	evbuffer_drain(out, n);
	if (a->framing == H2A_LENGTH) {
		a->left -= n;
		if (!a->left) {
			a->ended = true;
			h2_send_end(h2, id, NULL, 0);
			return false;
		}
	}
	return n == want;
}

void h2a_take(struct h2a_answer *a, struct h2_conn *h2, int32_t id, struct evbuffer *out, bool shut)
{
	if (!h2) {
		h2a_fail(a, NULL, id, out, 8 /* CANCEL */);
		return;
	}
	while (!a->ended && (a->head_done ? h2a_take_body(a, h2, id, out) : h2a_take_head(a, h2, id, out)))
		;
	if (a->ended) {
		evbuffer_drain(out, evbuffer_get_length(out));
	} else if (shut && !evbuffer_get_length(out)) {
		/* The session ended its side: an answer that ends with its connection ends
		 * here; one cut short of its framing is reset, never passed off as whole. */
		if (a->head_done && a->framing == H2A_CLOSE) {
			a->ended = true;
			h2_send_end(h2, id, NULL, 0);
		} else {
			h2a_fail(a, h2, id, out, H2A_INTERNAL_ERROR);
		}
	}
}
