#include "control/admin_reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

void admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                        struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, reason, body);
}

void admin_reply_json(struct evhttp_request *req, int code, const char *reason, const char *json)
{
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, json, strlen(json));
	admin_reply(req, code, reason, "application/json", b);
	if (b)
		evbuffer_free(b);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	char json[300];
	snprintf(json, sizeof(json), "{\"error\":\"%s\"}\n", msg);
	admin_reply_json(req, code, reason, json);
}

/* The command line asks for lines to print; browsers and scripts get JSON. */
bool admin_reply_wants_text(struct evhttp_request *req)
{
	const char *acc = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
	return acc && strncasecmp(acc, "text/plain", 10) == 0;
}

void admin_reply_lines(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, text, strlen(text));
	admin_reply(req, code, reason, "text/plain; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

void admin_reply_fail(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	if (admin_reply_wants_text(req)) {
		char line[300];
		snprintf(line, sizeof(line), "%s\n", msg);
		admin_reply_lines(req, code, reason, line);
	} else {
		admin_reply_error(req, code, reason, msg);
	}
}

void admin_reply_json_str(struct evbuffer *b, const char *s)
{
	ADMIN_LIT(b, "\"");
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			evbuffer_add_printf(b, "\\u%04x", *p);
		else
			evbuffer_add(b, p, 1);
	}
	ADMIN_LIT(b, "\"");
}

void admin_reply_json_num(struct evbuffer *b, double v)
{
	if (v < 0)
		ADMIN_LIT(b, "null");
	else
		evbuffer_add_printf(b, "%.6g", v);
}
