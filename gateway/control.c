#include "control.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <event2/event.h>

#include "admin.h"
#include "health.h"
#include "log.h"
#include "pool.h"
#include "tlsconf.h"

struct control_update {
	struct pool_table *table;
	struct tlsconf *tls;
	int admin_fd;
	char *token;
	bool stop;
};

struct control {
	pthread_t thread;
	struct event_base *base;
	int bell;                       /* eventfd: the daemon's doorbell */
	struct event *bell_ev;
	struct health *health;
	struct admin *admin;
	pthread_mutex_t lock;           /* guards pending */
	struct control_update pending;
};

static void control_update_clear(struct control_update *u)
{
	pool_table_unref(u->table);
	tlsconf_unref(u->tls);
	if (u->admin_fd >= 0)
		close(u->admin_fd);
	free(u->token);
	memset(u, 0, sizeof(*u));
	u->admin_fd = -1;
}

/* Runs on the control thread. */
static void control_apply(struct control *c, struct control_update *u)
{
	if (u->admin_fd == -2) {
		admin_free(c->admin);
		c->admin = NULL;
	} else if (u->admin_fd >= 0) {
		int fd = u->admin_fd;
		u->admin_fd = -1;
		if (c->admin ? admin_rebind(c->admin, fd) != 0 : !(c->admin = admin_new(c->base, fd)))
			log_msg(LOG_ERROR, "admin listener: cannot serve the new address");
	}
	if (c->admin)
		admin_set(c->admin, u->table, u->token);
	if (health_set(c->health, u->table, u->tls) != 0)
		log_msg(LOG_ERROR, "health checks: out of memory; some servers are not checked");
}

static void control_bell(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	(void)what;
	pthread_mutex_lock(&c->lock);
	struct control_update u = c->pending;
	memset(&c->pending, 0, sizeof(c->pending));
	c->pending.admin_fd = -1;
	pthread_mutex_unlock(&c->lock);
	if (u.stop) {
		control_update_clear(&u);
		event_base_loopexit(c->base, NULL);
		return;
	}
	if (u.table)
		control_apply(c, &u);
	control_update_clear(&u);
}

static void *control_main(void *arg)
{
	struct control *c = arg;
	event_base_dispatch(c->base);
	return NULL;
}

static void control_ring(struct control *c)
{
	uint64_t one = 1;
	ssize_t r = write(c->bell, &one, sizeof(one));
	(void)r;
}

static void control_free(struct control *c)
{
	health_free(c->health);
	admin_free(c->admin);
	if (c->bell_ev)
		event_free(c->bell_ev);
	if (c->bell >= 0)
		close(c->bell);
	control_update_clear(&c->pending);
	pthread_mutex_destroy(&c->lock);
	if (c->base)
		event_base_free(c->base);
	free(c);
}

struct control *control_start(struct pool_table *t, struct tlsconf *tls, int admin_fd, const char *token)
{
	struct control *c = calloc(1, sizeof(*c));
	if (!c) {
		if (admin_fd >= 0)
			close(admin_fd);
		return NULL;
	}
	c->bell = -1;
	c->pending.admin_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	struct control_update first = { .table = pool_table_ref(t), .tls = tlsconf_ref(tls), .admin_fd = admin_fd,
	                                 .token = token ? strdup(token) : NULL };
	c->base = event_base_new();
	c->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->health = c->base ? health_new(c->base) : NULL;
	if (!c->base || c->bell < 0 || !c->health || (token && !first.token))
		goto fail;
	c->bell_ev = event_new(c->base, c->bell, EV_READ | EV_PERSIST, control_bell, c);
	if (!c->bell_ev || event_add(c->bell_ev, NULL) != 0)
		goto fail;
	/* The first snapshot is applied here, before the thread runs. */
	if (admin_fd >= 0) {
		first.admin_fd = -1;
		if (!(c->admin = admin_new(c->base, admin_fd)))
			goto fail;
		admin_set(c->admin, t, token);
	}
	if (health_set(c->health, t, tls) != 0 || pthread_create(&c->thread, NULL, control_main, c) != 0)
		goto fail;
	control_update_clear(&first);
	return c;
fail:
	control_update_clear(&first);
	control_free(c);
	return NULL;
}

void control_reload(struct control *c, struct pool_table *t, struct tlsconf *tls, int admin_fd,
                    const char *token)
{
	struct control_update u = { .table = pool_table_ref(t), .tls = tlsconf_ref(tls), .admin_fd = admin_fd,
	                            .token = token ? strdup(token) : NULL };
	pthread_mutex_lock(&c->lock);
	struct control_update old = c->pending;
	c->pending = u;
	pthread_mutex_unlock(&c->lock);
	/* A reload not yet applied is superseded, but a listener it brought must not leak. */
	control_update_clear(&old);
	control_ring(c);
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->pending.stop = true;
	pthread_mutex_unlock(&c->lock);
	control_ring(c);
	pthread_join(c->thread, NULL);
	control_free(c);
}
