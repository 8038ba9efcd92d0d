#include "control/control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "control/admin.h"
#include "proxy/health.h"
#include "io/log.h"
#include "io/mailbox.h"
#include "proxy/pool.h"
#include "proxy/tlsconf.h"

struct control_update {
	struct pool_table *table;
	struct tlsconf *tls;
	int admin_fd;
	char *token;
	bool stop;
	uint64_t outcome_seq;           /* a reload's outcome to hand the admin listener, 0: none */
	bool outcome_applied;
	char *outcome_text;
};

struct control {
	pthread_t thread;
	struct event_base *base;
	struct mailbox *mailbox;        /* the daemon's doorbell; its lock guards pending */
	struct health *health;
	struct admin *admin;
	struct pool_table *table;       /* the newest: its objects' live numbers are sampled */
	struct event *sample_ev;        /* once a second */
	uint64_t ticks;
	struct control_update pending;
	_Atomic uint64_t reloads_begun; /* the daemon's thread counts, the admin listener reads */
};

static void control_update_clear(struct control_update *u)
{
	pool_table_unref(u->table);
	tlsconf_unref(u->tls);
	if (u->admin_fd >= 0)
		close(u->admin_fd);
	free(u->token);
	free(u->outcome_text);
	memset(u, 0, sizeof(*u));
	u->admin_fd = -1;
}

static uint64_t control_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Live numbers: every object's counters into its ring, once a second. */
static void control_sample(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	(void)fd;
	(void)what;
	pool_table_sample(c->table, ++c->ticks, control_now_ms());
}

static uint64_t control_reloads_begun(void *arg)
{
	struct control *c = arg;
	return atomic_load(&c->reloads_begun);
}

/* Runs on the control thread. */
static void control_apply(struct control *c, struct control_update *u)
{
	pool_table_unref(c->table);
	c->table = pool_table_ref(u->table);
	if (u->admin_fd == -2) {
		admin_free(c->admin);
		c->admin = NULL;
	} else if (u->admin_fd >= 0) {
		int fd = u->admin_fd;
		u->admin_fd = -1;
		if (c->admin ? admin_rebind(c->admin, fd) != 0
		             : !(c->admin = admin_new(c->base, fd, control_reloads_begun, c)))
			log_msg(LOG_ERROR, "admin listener: cannot serve the new address");
	}
	if (c->admin)
		admin_set(c->admin, u->table, u->token);
	if (health_set(c->health, u->table, u->tls) != 0)
		log_msg(LOG_ERROR, "health checks: out of memory; some servers are not checked");
}

static void control_bell(void *arg)
{
	struct control *c = arg;
	mailbox_lock(c->mailbox);
	struct control_update u = c->pending;
	memset(&c->pending, 0, sizeof(c->pending));
	c->pending.admin_fd = -1;
	mailbox_unlock(c->mailbox);
	if (u.stop) {
		control_update_clear(&u);
		event_base_loopexit(c->base, NULL);
		return;
	}
	if (u.table)
		control_apply(c, &u);
	/* After the table: whoever hears that a reload was applied sees its rules. */
	if (u.outcome_seq && c->admin)
		admin_reload_done(c->admin, u.outcome_seq, u.outcome_applied, u.outcome_text);
	control_update_clear(&u);
}

static void *control_main(void *arg)
{
	struct control *c = arg;
	event_base_dispatch(c->base);
	return NULL;
}

static void control_free(struct control *c)
{
	health_free(c->health);
	admin_free(c->admin);
	if (c->sample_ev)
		event_free(c->sample_ev);
	pool_table_unref(c->table);
	mailbox_free(c->mailbox);
	control_update_clear(&c->pending);
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
	c->pending.admin_fd = -1;
	struct control_update first = { .table = pool_table_ref(t), .tls = tlsconf_ref(tls), .admin_fd = admin_fd,
	                                 .token = token ? strdup(token) : NULL };
	c->base = event_base_new();
	c->mailbox = c->base ? mailbox_new(c->base, control_bell, c) : NULL;
	c->health = c->base ? health_new(c->base) : NULL;
	if (!c->base || !c->mailbox || !c->health || (token && !first.token))
		goto fail;
	c->table = pool_table_ref(t);
	struct timeval second = { 1, 0 };
	c->sample_ev = event_new(c->base, -1, EV_PERSIST, control_sample, c);
	if (!c->sample_ev || event_add(c->sample_ev, &second) != 0)
		goto fail;
	control_sample(-1, 0, c);
	/* The first snapshot is applied here, before the thread runs. */
	if (admin_fd >= 0) {
		first.admin_fd = -1;
		if (!(c->admin = admin_new(c->base, admin_fd, control_reloads_begun, c)))
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
	mailbox_lock(c->mailbox);
	struct control_update old = c->pending;
	c->pending = u;
	/* An outcome not yet handed over still has its waiters. */
	c->pending.outcome_seq = old.outcome_seq;
	c->pending.outcome_applied = old.outcome_applied;
	c->pending.outcome_text = old.outcome_text;
	old.outcome_text = NULL;
	mailbox_unlock(c->mailbox);
	/* A reload not yet applied is superseded, but a listener it brought must not leak. */
	control_update_clear(&old);
	mailbox_ring(c->mailbox);
}

void control_reload_begin(struct control *c)
{
	atomic_fetch_add(&c->reloads_begun, 1);
}

void control_reload_end(struct control *c, bool applied, char *text)
{
	mailbox_lock(c->mailbox);
	free(c->pending.outcome_text);
	c->pending.outcome_seq = atomic_load(&c->reloads_begun);
	c->pending.outcome_applied = applied;
	c->pending.outcome_text = text;
	mailbox_unlock(c->mailbox);
	mailbox_ring(c->mailbox);
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	mailbox_lock(c->mailbox);
	c->pending.stop = true;
	mailbox_unlock(c->mailbox);
	mailbox_ring(c->mailbox);
	pthread_join(c->thread, NULL);
	control_free(c);
}
