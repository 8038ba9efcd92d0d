/*
 * admin_reply.h - how the admin listener answers (admin.h): JSON for browsers
 * and scripts, text lines for a client that accepts text/plain first (the
 * command line), every answer uncached and not sniffed. Control thread only.
 */
#ifndef ONEGATE_ADMIN_REPLY_H
#define ONEGATE_ADMIN_REPLY_H

#include <stdbool.h>

struct evbuffer;
struct evhttp_request;

/* A string literal, its length counted by the compiler. */
#define ADMIN_LIT(b, s) evbuffer_add((b), s, sizeof(s) - 1)

/* Sends body (NULL: none; the caller frees it) as type. */
void admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type, struct evbuffer *body);
/* Sends json, a whole JSON document. */
void admin_reply_json(struct evhttp_request *req, int code, const char *reason, const char *json);
/* {"error":"msg"}: msg is plain text without quotes. */
void admin_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg);
/* The client asked for text/plain first. */
bool admin_reply_wants_text(struct evhttp_request *req);
/* Sends text as text/plain lines. */
void admin_reply_lines(struct evhttp_request *req, int code, const char *reason, const char *text);
/* msg as a line or as {"error":...}, as the client asked. */
void admin_reply_fail(struct evhttp_request *req, int code, const char *reason, const char *msg);

/* s (NULL: "") as a JSON string, quoted and escaped. */
void admin_reply_json_str(struct evbuffer *b, const char *s);
/* v as a JSON number, or null when negative (unknown). */
void admin_reply_json_num(struct evbuffer *b, double v);

#endif
