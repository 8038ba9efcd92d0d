#include "io/mailbox.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <event2/event.h>

struct mailbox {
	int bell;                       /* eventfd */
	struct event *bell_ev;
	pthread_mutex_t lock;           /* guards the owner's pending state, never the data path */
	void (*on_ring)(void *arg);
	void *arg;
};

static void mailbox_bell(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *m = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	(void)what;
	m->on_ring(m->arg);
}

struct mailbox *mailbox_new(struct event_base *base, void (*on_ring)(void *arg), void *arg)
{
	struct mailbox *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->on_ring = on_ring;
	m->arg = arg;
	m->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->bell < 0)
		goto fail;
	m->bell_ev = event_new(base, m->bell, EV_READ | EV_PERSIST, mailbox_bell, m);
	if (!m->bell_ev || event_add(m->bell_ev, NULL) != 0)
		goto fail;
	return m;
fail:
	mailbox_free(m);
	return NULL;
}

void mailbox_free(struct mailbox *m)
{
	if (!m)
		return;
	if (m->bell_ev)
		event_free(m->bell_ev);
	if (m->bell >= 0)
		close(m->bell);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void mailbox_lock(struct mailbox *m)
{
	pthread_mutex_lock(&m->lock);
}

void mailbox_unlock(struct mailbox *m)
{
	pthread_mutex_unlock(&m->lock);
}

void mailbox_ring(struct mailbox *m)
{
	uint64_t one = 1;
	ssize_t r = write(m->bell, &one, sizeof(one));
	(void)r;
}
