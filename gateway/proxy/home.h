/*
 * home.h - what a worker lends the connections it runs: its event loop, the
 * configuration snapshot new connections take, the list of live client
 * connections (so a drain can end them all) and the list of idle back-end
 * connections kept for reuse.
 *
 * Neither the front door (conn.c) nor the HTTP session (http/) owns it: the
 * worker (worker.c) does, and both link their connections into it. Everything
 * here is touched only by the owning worker's thread.
 */
#ifndef ONEGATE_HOME_H
#define ONEGATE_HOME_H

#include <stdbool.h>
#include <stddef.h>

struct event;
struct event_base;
struct rules_config;
struct tlsconf;
struct pool_table;
struct pool_cursor;

/* A configuration snapshot as one worker uses it: the rules plus the worker's
 * own balancing state, so that nothing on the data path is shared between
 * threads. Connections hold a reference until they close. */
struct home_snap {
	struct rules_config *cfg;
	struct tlsconf *tls;            /* the TLS contexts built from cfg */
	struct pool_table *pools;       /* servers' live state, shared with the other workers */
	struct pool_cursor *cursor;     /* this worker's balancing position */
	int refs;                       /* only touched by the owning worker's thread */
};

/* Takes a reference to cfg, tls and pools. */
struct home_snap *home_snap_new(struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools);
void home_snap_unref(struct home_snap *s);

/* A connection in one of the lists: the first member of its struct, so that a
 * link is its connection. */
struct home_link {
	struct home_link *next, *prev;
	void (*close_now)(struct home_link *l);    /* frees the connection; it logs drain-timeout */
};

/* A worker's loop has HOME_PRIORITIES priorities (event_base_priority_init), and events
 * take the middle one. One at HOME_PRIORITY_IDLE runs only once a pass of the loop found
 * nothing else to do: for work that gathers, such as the answers of an HTTP/2
 * connection's streams, written to its client in one go. */
#define HOME_PRIORITIES 3
#define HOME_PRIORITY_IDLE 2

struct home {
	struct event_base *base;
	struct home_snap *snap;         /* snapshot for newly accepted connections */
	struct home_link *live;         /* all live client connections (intrusive list) */
	size_t nlive;
	struct home_link *idle;         /* idle back-end connections kept for reuse (the HTTP back end's) */
	size_t nidle;
	struct event *idle_timer;       /* the HTTP back end's: closes those kept too long; there while idle is not empty */
	void (*on_empty)(void *arg);    /* called when the last live connection closes */
	void *on_empty_arg;
	bool stopping;                  /* the worker drains: connections that can say so (HTTP/2 GOAWAY) do */
};

void home_live_add(struct home *home, struct home_link *l);
/* Calls home->on_empty when l was the last. */
void home_live_remove(struct home *home, struct home_link *l);
/* The idle list: not client connections, so they never hold a drain open. */
void home_idle_add(struct home *home, struct home_link *l);
void home_idle_remove(struct home *home, struct home_link *l);

/* Closes every live connection at once (end of the drain time), then the idle ones. */
void home_close_all(struct home *home);

#endif
