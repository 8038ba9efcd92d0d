#include "http/session.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* Sessions that ended, kept per thread for the next ones: every HTTP/2 stream is
 * a session of its own, and glibc serves a session's size (some 1.9 KiB) from
 * its sorted bins, its two events from malloc too. At most this many, some
 * 2.2 KiB each. */
#define HTTP_SPARES_KEPT 256

/* Their events (memory of ours, event_assign()) are not pending, so nothing
 * kept refers to a loop, and the thread's end frees them without it. */
static _Thread_local struct http_session *http_spares;
static _Thread_local unsigned http_nspares;
static pthread_key_t http_spares_key;
static pthread_once_t http_spares_once = PTHREAD_ONCE_INIT;
static bool http_spares_keyed;

static void http_spare_free(struct http_session *s)
{
	free(s->timer);
	free(s->next);
	free(s);
}

static void http_spares_free(void *unused)
{
	(void)unused;
	while (http_spares) {
		struct http_session *s = http_spares;
		http_spares = s->spare_next;
		http_spare_free(s);
	}
	http_nspares = 0;
}

void http_spares_drop(void)
{
	http_spares_free(NULL);
}

static void http_spares_key_new(void)
{
	http_spares_keyed = pthread_key_create(&http_spares_key, http_spares_free) == 0;
}

struct http_session *http_spare_take(void)
{
	struct http_session *s = http_spares;
	if (s) {
		http_spares = s->spare_next;
		http_nspares--;
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
	if (http_nspares == HTTP_SPARES_KEPT) {
		http_spare_free(s);
		return;
	}
	if (!http_spares) {
		/* The key's value only makes its destructor run when the thread ends. */
		pthread_once(&http_spares_once, http_spares_key_new);
		if (!http_spares_keyed || pthread_setspecific(http_spares_key, &http_spares) != 0) {
			http_spare_free(s);
			return;
		}
	}
	s->spare_next = http_spares;
	http_spares = s;
	http_nspares++;
}
