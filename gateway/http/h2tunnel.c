#include "http/h2tunnel.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "proto/h2head.h"
#include "rules.h"

/* Fields a trailer section may carry to an HTTP/2 client. */
#define H2T_TRAILER_FIELDS 64

bool h2t_offer_websocket(const struct rules_service *svc)
{
	for (size_t i = 0; i < svc->nroutes; i++)
		if (svc->routes[i].pool >= 0 && !svc->routes[i].passthrough)
			return true;
	return false;
}

size_t h2t_request_data(struct evbuffer *in, bool chunked, const uint8_t *p, size_t len)
{
	size_t before = evbuffer_get_length(in);
	if (chunked)
		evbuffer_add_printf(in, "%zx\r\n", len);
	evbuffer_add(in, p, len);
	if (chunked)
		evbuffer_add(in, "\r\n", 2);
	return evbuffer_get_length(in) - before - len;
}

size_t h2t_request_end(struct evbuffer *in, const struct h2head_field *trailers, size_t n)
{
	size_t before = evbuffer_get_length(in);
	evbuffer_add(in, "0\r\n", 3);
	for (size_t i = 0; i < n; i++)
		if (!h2head_trailer_forbidden(trailers[i].name, trailers[i].name_len))
			evbuffer_add_printf(in, "%.*s: %.*s\r\n", (int)trailers[i].name_len, trailers[i].name,
			                    (int)trailers[i].value_len, trailers[i].value);
	evbuffer_add(in, "\r\n", 2);
	return evbuffer_get_length(in) - before;
}

int h2t_trailer_byte(struct h2t_trailer *t, const struct h1_chunked *ck, char ch)
{
	if (!h1_chunked_in_trailer(ck))
		return 0;
	/* Before any line, CR and LF can only be the empty line that ends the body:
	 * most answers have no trailers and allocate nothing. */
	if (!t->lines && (ch == '\r' || ch == '\n'))
		return 0;
	if (!t->lines && !(t->lines = evbuffer_new()))
		return -1;
	return evbuffer_add(t->lines, &ch, 1);
}

int h2t_send_end(struct h2_conn *h2, int32_t id, struct h2t_trailer *t)
{
	size_t len = t->lines ? evbuffer_get_length(t->lines) : 0;
	if (!len)
		return h2_send_end(h2, id, NULL, 0);
	const char *block = (const char *)evbuffer_pullup(t->lines, -1);
	char *scratch = malloc(len);
	struct h2head_field fields[H2T_TRAILER_FIELDS];
	int n = scratch ? h2head_trailer_fields(block, len, scratch, len, fields, H2T_TRAILER_FIELDS) : -1;
	int rc = n < 0 ? -1 : h2_send_end(h2, id, fields, (size_t)n);
	free(scratch);
	return rc;
}

void h2t_trailer_free(struct h2t_trailer *t)
{
	if (t->lines)
		evbuffer_free(t->lines);
	t->lines = NULL;
}
