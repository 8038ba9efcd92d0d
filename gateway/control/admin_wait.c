#include "control/admin_wait.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "control/admin_reply.h"

/* A POST /api/reload waiting for the outcome of a reload that began after it. */
struct admin_wait {
	struct admin_wait *next;
	struct admin_waits *ws;
	struct evhttp_request *req;
	struct event *timer;
	uint64_t want;                  /* the first reload number that answers it */
	bool text;
};

struct admin_waits {
	struct event_base *base;
	admin_reloads_fn reloads_begun;
	void *reloads_arg;
	struct admin_wait *head;
};

struct admin_waits *admin_wait_new(struct event_base *base, admin_reloads_fn reloads_begun, void *arg)
{
	struct admin_waits *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	ws->base = base;
	ws->reloads_begun = reloads_begun;
	ws->reloads_arg = arg;
	return ws;
}

static void admin_wait_remove(struct admin_wait *w)
{
	for (struct admin_wait **pp = &w->ws->head; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->timer)
		event_free(w->timer);
	free(w);
}

/* Answers a waiting reload request and forgets it. */
static void admin_wait_answer(struct admin_wait *w, int code, const char *reason, bool applied, const char *text)
{
	struct evhttp_request *req = w->req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
	if (w->text) {
		admin_reply_lines(req, code, reason, text);
	} else {
		struct evbuffer *b = evbuffer_new();
		if (b) {
			evbuffer_add_printf(b, "{\"reload\":\"%s\",\"messages\":[",
			                    code == 504 || code == 503 ? "unknown" : applied ? "applied" : "refused");
			/* One string per line of the text: the verdict first, then FILE:LINE messages. */
			const char *p = text;
			for (bool first = true; *p; first = false) {
				size_t n = strcspn(p, "\n");
				char *line = strndup(p, n);
				evbuffer_add(b, first ? "" : ",", first ? 0 : 1);
				admin_reply_json_str(b, line ? line : "");
				free(line);
				p += n + (p[n] == '\n');
			}
			ADMIN_LIT(b, "]}\n");
		}
		admin_reply(req, code, reason, "application/json", b);
		if (b)
			evbuffer_free(b);
	}
	admin_wait_remove(w);
}

static void admin_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	char text[200];
	snprintf(text, sizeof(text), "no outcome within %d s: the reload may still be under way; the log will say\n",
	         ADMIN_RELOAD_WAIT_S);
	admin_wait_answer(arg, 504, "Gateway Timeout", false, text);
}

/* The client went away: libevent frees its request. */
static void admin_wait_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	admin_wait_remove(arg);
}

void admin_wait_add(struct admin_waits *ws, struct evhttp_request *req)
{
	struct admin_wait *w = calloc(1, sizeof(*w));
	struct timeval tv = { ADMIN_RELOAD_WAIT_S, 0 };
	if (!w || !(w->timer = evtimer_new(ws->base, admin_wait_timeout, w)) || evtimer_add(w->timer, &tv) != 0) {
		if (w && w->timer)
			event_free(w->timer);
		free(w);
		admin_reply_fail(req, 503, "Service Unavailable", "out of memory");
		return;
	}
	w->ws = ws;
	w->req = req;
	w->text = admin_reply_wants_text(req);
	w->want = ws->reloads_begun(ws->reloads_arg) + 1;
	w->next = ws->head;
	ws->head = w;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), admin_wait_closed, w);
	/* The daemon's main thread takes SIGHUP: the same reload, all or nothing, as an admin's kill -HUP. */
	kill(getpid(), SIGHUP);
}

void admin_wait_done(struct admin_waits *ws, uint64_t seq, bool applied, const char *text)
{
	struct admin_wait *w = ws->head;
	while (w) {
		struct admin_wait *next = w->next;
		if (w->want <= seq)
			admin_wait_answer(w, applied ? 200 : 409, applied ? "OK" : "Conflict", applied, text ? text : "");
		w = next;
	}
}

void admin_wait_free(struct admin_waits *ws)
{
	if (!ws)
		return;
	while (ws->head)
		admin_wait_answer(ws->head, 503, "Service Unavailable", false,
		                  "the admin listener closed before the reload ended; the log will say\n");
	free(ws);
}
