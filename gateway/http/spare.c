#include "http/session.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "io/keep.h"

/* Sessions that ended, kept per thread for the next ones: every HTTP/2 stream is
 * a session of its own, and glibc serves a session's size (some 1.9 KiB) from
 * its sorted bins, its two events from malloc too. At most this many, some
 * 2.2 KiB each (2.2 MiB a thread): a worker's streams in flight come and go in
 * bursts of hundreds, and a bound of 256 sent a fifth of bench scenario 10's
 * streams (32 connections of 10) to malloc. Their events (memory of ours,
 * event_assign()) are not pending, so nothing kept refers to a loop. */
#define HTTP_SPARES_KEPT 1024

static void http_spare_free(void *obj)
{
	struct http_session *s = obj;
	free(s->timer);
	free(s->next);
	free(s);
}

static const struct keep_kind http_spare_kind = {
	.max = HTTP_SPARES_KEPT, .link = offsetof(struct http_session, spare_next), .free = http_spare_free,
};
static _Thread_local struct keep_list http_spares = { .kind = &http_spare_kind };

struct http_session *http_spare_take(void)
{
	struct http_session *s = keep_take(&http_spares);
	if (s) {
		struct event *timer = s->timer, *next = s->next;
		memset(s, 0, sizeof(*s));
		s->timer = timer;
		s->next = next;
		return s;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->timer = malloc(event_get_struct_event_size());
	s->next = malloc(event_get_struct_event_size());
	if (!s->timer || !s->next) {
		http_spare_free(s);
		return NULL;
	}
	return s;
}

void http_spare_give(struct http_session *s)
{
	event_del(s->timer);
	event_del(s->next);
	if (!keep_give(&http_spares, s))
		http_spare_free(s);
}
